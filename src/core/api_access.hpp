// Who may drive the runtime API from a web browser.  The API's own access
// rules (allow/deny, auth_basic) decide who may reach it; a browser inside
// them must not become the tool of a web page from elsewhere:
//   - a cross-site page's plain form or fetch() carries an Origin header
//     that is neither the API's own origin nor one the operator listed;
//   - a page of a name that an attacker made resolve to the API's address
//     (DNS rebinding) is same-origin to itself, but its requests carry its
//     name in the Host header, which is none of the API's names;
//   - a write must say Content-Type: application/json, which a plain HTML
//     form cannot send, and which makes a browser ask first (a CORS
//     preflight, which the API never answers).
// Pure C++17, no nginx headers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cors.hpp"
#include "text.hpp"

namespace dynroute {

class ApiAccess {
public:
    // A name the API answers to in the Host header (server_name, host=),
    // without a port.  Throws ConfigError for what is not a host name.
    void add_host(std::string_view name);

    // An origin whose pages may call the API, as the CORS module lists
    // them: "https://ops.example.com", with a port, "https://*.example.com".
    // Throws ConfigError for anything else, "*" and "null" among them.
    void add_origin(std::string_view origin);

    // host: the Host header's name as nginx validated it (lower case, no
    // port, no trailing dot); empty when the request had none.  IP
    // addresses and "localhost" cannot be rebound by a web page's DNS.
    bool host_allowed(std::string_view host) const noexcept;

    // origin: the Origin header; scheme: "http" or "https", how the request
    // came; host: the Host header as sent (with its port).  The API's own
    // origin is scheme://host.
    bool origin_allowed(std::string_view origin, std::string_view scheme,
                        std::string_view host) const noexcept;

    const std::vector<std::string> &hosts() const noexcept { return hosts_; }

private:
    std::vector<std::string> hosts_;    // lower case
    cors::OriginList origins_;
};

// "application/json", letter case aside, with or without parameters
// ("application/json; charset=utf-8").
bool is_json_media_type(std::string_view content_type) noexcept;

}  // namespace dynroute
