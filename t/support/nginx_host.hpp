// A model of what nginx does to a Host header before it becomes $host
// (ngx_http_validate_host), for the unit tests and the fuzzers: the module
// itself gets $host from nginx.  Pure C++17.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace dynroute {

// Rejects empty values, "..", '/', control characters and spaces; drops the
// port and one trailing dot; lowercases.  Writes into out (at least
// raw.size() bytes) and returns a view of it, or nullopt where nginx
// answers 400.
inline std::optional<std::string_view> normalize_host(std::string_view raw,
                                               char *out) noexcept
{
    enum { usual, literal, rest } state = usual;
    std::size_t dot_pos = raw.size();
    std::size_t host_len = raw.size();

    for (std::size_t i = 0; i < raw.size(); i++) {
        unsigned char ch = static_cast<unsigned char>(raw[i]);

        switch (ch) {
        case '.':
            if (dot_pos == i - 1) {
                return std::nullopt;
            }
            dot_pos = i;
            break;

        case ':':
            if (state == usual) {
                host_len = i;
                state = rest;
            }
            break;

        case '[':
            if (i == 0) {
                state = literal;
            }
            break;

        case ']':
            if (state == literal) {
                host_len = i + 1;
                state = rest;
            }
            break;

        default:
            if (ch == '/' || ch <= 0x20 || ch == 0x7f) {
                return std::nullopt;
            }
            break;
        }
    }

    if (dot_pos == host_len - 1) {
        host_len--;
    }

    if (host_len == 0) {
        return std::nullopt;
    }

    for (std::size_t i = 0; i < host_len; i++) {
        char c = raw[i];
        out[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
    }

    return std::string_view(out, host_len);
}

}  // namespace dynroute
