// Host header handling: nginx's own normalisation and a strict IP-literal
// detector.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <string_view>

#include "text.hpp"

namespace dynroute {

enum class HostKind : unsigned char { name, ipv4, ipv6 };

// A dotted quad exactly as inet_pton(AF_INET) accepts it: four decimal
// octets 0..255, no leading zeros, nothing else.
bool is_ipv4(std::string_view s) noexcept;

// An IPv6 address as inet_pton(AF_INET6) accepts it (no brackets, no zone).
bool is_ipv6(std::string_view s) noexcept;

// Classifies a host as it appears in a Host header or in nginx's $host:
// "10.0.0.1", "10.0.0.1:8080", "[::1]", "[2001:db8::1]:443" are IP
// literals; "1password.com", "123.com", "10.0.0.1.nip.io" are names.
// A port is ':' followed by 1 to 5 decimal digits.
HostKind classify_host(std::string_view host) noexcept;

// The value of a table's key (dynroute_table NAME key=$variable) taken as
// a host name: a name, or why it can match no name.  One trailing dot is
// ignored, as for a Host; then it is empty, longer than max_key bytes, or
// odd: it holds a byte a host name never has (a space, '/', a control
// character or DEL).  Other bytes, upper case and UTF-8 too, are a name's.
enum class KeyValue : unsigned char { name, empty, too_long, odd };
inline constexpr std::size_t max_key = 255;

KeyValue classify_key(std::string_view value) noexcept;

// A name (classify_key() == name) as runtime hosts are stored: lowercase,
// without its trailing dot, in buf (max_key bytes); a view of buf.
std::string_view fold_key(std::string_view value, char *buf) noexcept;

}  // namespace dynroute
