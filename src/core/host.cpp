#include "host.hpp"

#include <cstdint>

namespace dynroute {

namespace {

int hex_value(char c) noexcept
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// ':' followed by 1..5 digits, value <= 65535.
bool is_port(std::string_view s) noexcept
{
    if (s.size() < 2 || s.size() > 6 || s[0] != ':') {
        return false;
    }
    unsigned v = 0;
    for (std::size_t i = 1; i < s.size(); i++) {
        if (!is_digit(s[i])) {
            return false;
        }
        v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return v <= 65535;
}

}  // namespace

bool is_ipv4(std::string_view s) noexcept
{
    int octets = 0;
    std::size_t i = 0;

    while (octets < 4) {
        if (i >= s.size() || !is_digit(s[i])) {
            return false;
        }
        unsigned v = 0;
        std::size_t start = i;
        while (i < s.size() && is_digit(s[i])) {
            if (i - start == 3) {
                return false;
            }
            v = v * 10 + static_cast<unsigned>(s[i] - '0');
            i++;
        }
        if (v > 255 || (s[start] == '0' && i - start > 1)) {
            return false;
        }
        if (++octets < 4) {
            if (i >= s.size() || s[i] != '.') {
                return false;
            }
            i++;
        }
    }

    return i == s.size();
}

bool is_ipv6(std::string_view s) noexcept
{
    // Up to eight 16-bit groups; one "::" stands for one or more zero groups;
    // a dotted quad may stand for the last two groups.
    int groups = 0;
    bool compressed = false;
    std::size_t i = 0;

    if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
        compressed = true;
        i = 2;
        if (i == s.size()) {
            return true;
        }
    } else if (!s.empty() && s[0] == ':') {
        return false;
    }

    while (i < s.size()) {
        std::size_t start = i;
        int digits = 0;
        while (i < s.size() && hex_value(s[i]) >= 0) {
            if (++digits > 4) {
                return false;
            }
            i++;
        }

        if (i < s.size() && s[i] == '.') {
            // Embedded IPv4 in the last 32 bits.
            if (groups > 6 || !is_ipv4(s.substr(start))) {
                return false;
            }
            groups += 2;
            i = s.size();
            break;
        }

        if (digits == 0) {
            return false;
        }
        if (++groups > 8) {
            return false;
        }
        if (i == s.size()) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < s.size() && s[i] == ':') {
            if (compressed) {
                return false;
            }
            compressed = true;
            i++;
            if (i == s.size()) {
                break;
            }
        } else if (i == s.size()) {
            return false;  // trailing single ':'
        }
    }

    return compressed ? groups <= 7 : groups == 8;
}

HostKind classify_host(std::string_view host) noexcept
{
    if (!host.empty() && host[0] == '[') {
        std::size_t close = host.find(']');
        if (close == std::string_view::npos) {
            return HostKind::name;
        }
        std::string_view rest = host.substr(close + 1);
        if (!rest.empty() && !is_port(rest)) {
            return HostKind::name;
        }
        return is_ipv6(host.substr(1, close - 1)) ? HostKind::ipv6
                                                  : HostKind::name;
    }

    std::size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
        if (!is_port(host.substr(colon))) {
            return HostKind::name;
        }
        host = host.substr(0, colon);
    }

    return is_ipv4(host) ? HostKind::ipv4 : HostKind::name;
}

KeyValue classify_key(std::string_view value) noexcept
{
    if (value.size() > max_key) {
        return KeyValue::too_long;
    }
    if (!value.empty() && value.back() == '.') {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return KeyValue::empty;
    }
    // one load a byte: the bytes a name never has (controls, space, '/',
    // DEL) are set in a 256-bit table
    struct Odd {
        std::uint64_t bits[4] = {};
        constexpr Odd()
        {
            for (unsigned u = 0; u < 256; u++) {
                if (u <= 0x20 || u == 0x7f || u == '/') {
                    bits[u / 64] |= std::uint64_t{1} << (u % 64);
                }
            }
        }
    };
    static constexpr Odd odd{};
    for (char c : value) {
        auto u = static_cast<unsigned char>(c);
        if (odd.bits[u / 64] >> (u % 64) & 1) {
            return KeyValue::odd;
        }
    }
    return KeyValue::name;
}

std::string_view fold_key(std::string_view value, char *buf) noexcept
{
    if (!value.empty() && value.back() == '.') {
        value.remove_suffix(1);
    }
    std::size_t n = value.size() < max_key ? value.size() : max_key;
    for (std::size_t i = 0; i < n; i++) {
        buf[i] = ascii_lower(value[i]);
    }
    return std::string_view(buf, n);
}

}  // namespace dynroute
