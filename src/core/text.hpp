// Small things every part of the core needs: the one configuration error
// and the API's refusal, ASCII character classes and caseless comparison
// (nginx's, not the locale's), and quoting a value for an error message.
// Pure C++17.
#pragma once

#if __cplusplus < 201703L
#error "dynroute's core needs C++17 (g++ 7 or later: -std=gnu++17)"
#endif

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dynroute {

// What building a table, a rollout or a CORS list throws on bad input; the
// nginx glue turns it into an [emerg] naming the file and the line.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What the API answers on a refused change: an HTTP status and a reason.
class ApiError : public std::runtime_error {
public:
    ApiError(int status, const std::string &what)
        : std::runtime_error(what), status(status)
    {
    }
    int status;
};

inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

inline bool is_alpha(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

inline char ascii_lower(char c) noexcept
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool equal_caseless(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

// "value" with its double quotes, as nginx quotes values in its messages.
inline std::string quoted(std::string_view s)
{
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out.append(s.data(), s.size());
    out += '"';
    return out;
}

}  // namespace dynroute
