// A server's address as the API and etcd give it: IPv4 "a.b.c.d[:port]",
// bracketed IPv6 "[addr][:port]" or "unix:/path"; no port is 80, as on
// nginx's server line.  No host names: nothing resolves names at run time
// (a lookup in the API's handler would block a worker), so a name is
// refused, saying so.
//
// The canonical name is what $upstream_addr, the API and the metrics show
// and what servers are compared by: "10.0.0.5:8080", "[2001:db8::5]:8080"
// (RFC 5952, inet_ntop's), "unix:/run/app.sock".  Two spellings of one
// address ("[0:0::1]:80", "[::1]") have the same canonical name.
//
// The native struct sockaddr bytes go into the zone's group blocks, so that
// a worker never parses an address.  Pure C++17 and POSIX, no nginx headers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <sys/socket.h>
#include <sys/un.h>

#include "text.hpp"

namespace dynroute {

// The longest canonical name: "unix:" and the longest path that sun_path
// holds with its terminating NUL (IPv6 names are shorter).
inline constexpr std::size_t max_address_name =
    5 + sizeof(sockaddr_un::sun_path) - 1;

// The largest socklen: a sockaddr_un's, as nginx gives a unix: server.
inline constexpr std::size_t max_socklen = sizeof(sockaddr_un);

struct ServerAddress {
    std::string name;      // canonical
    std::string sockaddr;  // socklen bytes of a sockaddr_in, _in6 or _un

    socklen_t socklen() const noexcept
    {
        return static_cast<socklen_t>(sockaddr.size());
    }
};

// Parses an address.  Throws ApiError 400 naming the address and the forms
// accepted; a port outside 1-65535 is named with its range.
ServerAddress parse_address(std::string_view text);

}  // namespace dynroute
