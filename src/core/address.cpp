#include "address.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace dynroute {

namespace {

// the text quoted, a control character as \xNN: a message must not end
// at a NUL or carry a line break into a log
std::string shown(std::string_view text)
{
    static const char hex[] = "0123456789abcdef";
    std::string out;

    for (char c : text) {
        auto b = static_cast<unsigned char>(c);
        if (b < 0x20 || b == 0x7f) {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 15];
        } else {
            out += c;
        }
    }

    return quoted(out);
}

[[noreturn]] void bad(std::string_view text, const std::string &why)
{
    throw ApiError(400, "bad server address " + shown(text) + ": " + why
                        + "; give a.b.c.d[:port], [IPv6][:port] or "
                          "unix:/path (no port is 80, as on a server line)");
}

// ":PORT" after the host, or nothing (80)
unsigned port_of(std::string_view text, std::string_view rest)
{
    if (rest.empty()) {
        return 80;
    }

    std::string_view digits = rest.substr(1);
    unsigned port = 0;

    if (rest[0] != ':' || digits.empty()) {
        bad(text, "what follows the host is not \":port\"");
    }

    for (char c : digits) {
        if (!is_digit(c)) {
            bad(text, "the port " + quoted(digits) + " is not a number");
        }
        port = port * 10 + static_cast<unsigned>(c - '0');
        if (port > 65535) {
            break;
        }
    }

    if (port < 1 || port > 65535) {
        throw ApiError(400, "the port " + quoted(digits) + " of server address "
                            + quoted(text) + " is not from 1 to 65535");
    }

    return port;
}

std::string ntop(int family, const void *addr)
{
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family, addr, buf, sizeof buf);
    return buf;
}

template <class T>
std::string bytes_of(const T &sa)
{
    return std::string(reinterpret_cast<const char *>(&sa), sizeof sa);
}

ServerAddress unix_address(std::string_view text)
{
    std::string_view path = text.substr(5);
    sockaddr_un sa;

    if (path.empty()) {
        bad(text, "unix: without a path");
    }
    if (path[0] != '/') {
        bad(text, "the path of a unix: address must be absolute");
    }
    if (path.size() >= sizeof sa.sun_path) {
        bad(text, "the path is longer than "
                  + std::to_string(sizeof sa.sun_path - 1) + " bytes");
    }

    std::memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());

    return {std::string(text), bytes_of(sa)};
}

ServerAddress ipv6_address(std::string_view text)
{
    std::size_t close = text.find(']');

    if (close == std::string_view::npos) {
        bad(text, "no \"]\" after the IPv6 address");
    }

    std::string host(text.substr(1, close - 1));
    unsigned port = port_of(text, text.substr(close + 1));
    sockaddr_in6 sa;

    std::memset(&sa, 0, sizeof sa);
    if (inet_pton(AF_INET6, host.c_str(), &sa.sin6_addr) != 1) {
        bad(text, quoted(host) + " is not an IPv6 address");
    }

    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<std::uint16_t>(port));

    return {"[" + ntop(AF_INET6, &sa.sin6_addr) + "]:" + std::to_string(port),
            bytes_of(sa)};
}

// a.b.c.d[:port]; a name is refused as one
ServerAddress ipv4_address(std::string_view text)
{
    std::size_t colon = text.find(':');
    std::string host(text.substr(0, colon));

    if (colon != std::string_view::npos
        && text.find(':', colon + 1) != std::string_view::npos)
    {
        bad(text, "an IPv6 address goes in brackets");
    }

    sockaddr_in sa;
    std::memset(&sa, 0, sizeof sa);

    if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
        bool name = false;
        for (char c : host) {
            name = name || is_alpha(c);
        }
        bad(text, name ? "host names are not resolved at run time (no DNS)"
                       : quoted(host) + " is not an IPv4 address");
    }

    unsigned port = colon == std::string_view::npos
                        ? 80 : port_of(text, text.substr(colon));

    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));

    return {ntop(AF_INET, &sa.sin_addr) + ":" + std::to_string(port),
            bytes_of(sa)};
}

}  // namespace

ServerAddress parse_address(std::string_view text)
{
    if (text.empty()) {
        bad(text, "it is empty");
    }

    if (text.size() > 512) {
        bad(std::string(text.substr(0, 64)) + "...",
            "it is longer than any address");
    }

    // a NUL would end the text early for inet_pton, a control character
    // would go into the logs as it is
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            bad(text, "it holds a control character");
        }
    }

    if (text.substr(0, 5) == "unix:") {
        return unix_address(text);
    }

    if (text[0] == '[') {
        return ipv6_address(text);
    }

    return ipv4_address(text);
}

}  // namespace dynroute
