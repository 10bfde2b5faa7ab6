// Helpers shared by the libFuzzer targets in fuzz/.  A failed check aborts,
// which libFuzzer reports as a crash and saves the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,      \
                         __LINE__, #cond);                                   \
            std::abort();                                                    \
        }                                                                    \
    } while (0)

namespace fuzz {

inline std::vector<std::string_view> split_lines(std::string_view s,
                                                 std::size_t max)
{
    std::vector<std::string_view> out;
    while (!s.empty() && out.size() < max) {
        std::size_t nl = s.find('\n');
        out.push_back(s.substr(0, nl));
        if (nl == std::string_view::npos) {
            break;
        }
        s.remove_prefix(nl + 1);
    }
    return out;
}

inline std::string ascii_lower(std::string_view s)
{
    std::string out(s);
    for (char &c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c | 0x20);
        }
    }
    return out;
}

inline std::string ascii_upper(std::string_view s)
{
    std::string out(s);
    for (char &c : out) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c & ~0x20);
        }
    }
    return out;
}

}  // namespace fuzz
