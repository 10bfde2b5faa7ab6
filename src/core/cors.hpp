// The CORS policy without nginx: parsing and matching origins, lists of
// methods and header names, reading Vary, and the decision itself (what
// to answer a preflight, which Access-Control-* headers and which Vary a
// response gets).  Pure C++17.
//
// Lists and policies are built once at configuration time (building may
// throw ConfigError) and are immutable afterwards; every query is
// noexcept, allocates nothing and only borrows its arguments for the
// call.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text.hpp"

namespace dynroute::cors {

// A serialized origin as browsers send it in the Origin header (RFC 6454):
// "scheme://host" or "scheme://host:port", nothing else (no path, no
// userinfo).  Views into the parsed string.
struct Origin {
    std::string_view scheme;  // letters, digits, "+-.", first a letter
    std::string_view host;    // a DNS name, a dotted quad, or "[IPv6]"
    unsigned port;            // explicit, else the scheme's default (http 80,
                              // https 443), else 0
};

// Strict parse of an Origin header value; nullopt for "null", a path, a
// query, userinfo, a bad port or a host that is not a name or an IP literal.
std::optional<Origin> parse_origin(std::string_view value) noexcept;

// The origins a policy allows:
//   "*"                            any origin (alone in the list)
//   "https://app.example.com"      that origin; the default port may be
//                                  written or not ("https://a:443" is
//                                  "https://a")
//   "http://localhost:8080"        an explicit port
//   "https://*.example.com"        every subdomain of example.com at any
//                                  depth, not example.com itself
//   "http://localhost:*"           any port
// The scheme is required.  Scheme and host compare case-insensitively, as
// browsers serialize them in lowercase.
class OriginList {
public:
    void add(std::string_view pattern);  // throws ConfigError

    bool any() const noexcept { return any_; }
    bool empty() const noexcept { return !any_ && entries_.empty(); }

    // origin is an Origin header value; "null" and malformed values never
    // match a listed origin.
    bool allows(std::string_view origin) const noexcept;

private:
    struct Entry {
        std::string scheme;   // lowercase
        std::string host;     // lowercase; for a wildcard ".example.com"
        unsigned port = 0;
        bool any_port = false;
        bool subdomains = false;
    };

    std::vector<Entry> entries_;
    bool any_ = false;
};

// A list of HTTP tokens: methods (case-sensitive, as in HTTP) or header
// names (case-insensitive).  "*" alone means any token.
class TokenList {
public:
    explicit TokenList(bool caseless) noexcept : caseless_(caseless) {}

    void add(std::string_view token);  // throws ConfigError

    bool any() const noexcept { return any_; }
    bool empty() const noexcept { return !any_ && tokens_.empty(); }

    bool contains(std::string_view token) const noexcept;

    // Every element of a comma-separated list (an
    // Access-Control-Request-Headers value) is a token of this list; a
    // list without elements is contained in any list.  A malformed list is
    // never contained.
    bool contains_all(std::string_view list) const noexcept;

    // The tokens joined with ", ", for Access-Control-Allow-*.
    std::string joined() const;

private:
    std::vector<std::string> tokens_;
    bool caseless_;
    bool any_ = false;
};

// A method list allows HEAD when it allows GET, as nginx's limit_except.
bool method_allowed(const TokenList &methods, std::string_view method) noexcept;

// An HTTP token (RFC 9110 tchar+).
bool is_token(std::string_view s) noexcept;

// A comma-separated list of tokens with optional spaces, elements may be
// empty ("a, b", "a,,b", ""); false on anything else.
bool is_token_list(std::string_view s) noexcept;

// A Vary header value already names `name` (case-insensitively) or is "*".
bool vary_lists(std::string_view vary, std::string_view name) noexcept;

// A response header that the policy owns: Access-Control-Allow-* and
// Access-Control-Max-Age.  The glue removes those of the upstream and of
// add_header before writing the policy's, so each appears once.
// Access-Control-Expose-Headers is not one: the edge has no policy for it.
bool owns_header(std::string_view name) noexcept;

// A location's CORS settings, as its directives give them.
struct Settings {
    bool enabled = false;       // dynroute_cors on
    OriginList origins;         // dynroute_cors_origins
    TokenList methods{false};   // dynroute_cors_methods
    TokenList headers{true};    // dynroute_cors_headers; empty: none
    bool credentials = false;   // dynroute_cors_credentials on
    std::string max_age;        // dynroute_cors_max_age in seconds; empty:
                                // not sent
};

// What the glue reads from a request and its response.  The views are
// borrowed for one call of Policy::decide.
struct Request {
    std::string_view method;    // as in the request line: "GET"
    bool main = true;           // the client's own request, not a subrequest

    std::optional<std::string_view> origin;           // Origin
    std::optional<std::string_view> request_method;   // Access-Control-
                                                      // Request-Method
    std::optional<std::string_view> request_headers;  // Access-Control-
                                                      // Request-Headers
    bool repeated = false;      // one of those three was sent twice

    bool vary_origin = false;   // the response already varies on Origin

    // Takes one request header: keeps the last of each of the three CORS
    // request headers and notes a repeat; ignores the others.
    void header(std::string_view name, std::string_view value) noexcept;

    // Takes one Vary header of the response.
    void vary(std::string_view value) noexcept;
};

// What to do with one response.  An empty view is a header not to send.
// The views point into the policy or into the Request's views.
struct Decision {
    bool applies = false;       // the policy owns this response's
                                // Access-Control-* headers: remove the
                                // others (owns_header), write these
    bool preflight = false;     // a preflight: answer it here, 204
    const char *denied = nullptr;  // why a preflight gets no CORS header,
                                   // for the log; nullptr: allowed

    std::string_view vary;                // tokens to add to Vary
    std::string_view allow_origin;        // Access-Control-Allow-Origin
    std::string_view allow_credentials;   // Access-Control-Allow-Credentials
    std::string_view allow_methods;       // Access-Control-Allow-Methods
    std::string_view allow_headers;       // Access-Control-Allow-Headers
    std::string_view max_age;             // Access-Control-Max-Age
};

// A location's policy: the settings and the header values they give.
class Policy {
public:
    // throws ConfigError when enabled without origins, or for "*" origins
    // with credentials (whether enabled or not)
    explicit Policy(Settings settings);

    const Settings &settings() const noexcept { return s_; }

    Decision decide(const Request &request) const noexcept;

private:
    Settings s_;
    std::string methods_;   // "GET, POST"
    std::string headers_;   // "content-type, x-request-id" or "*"
};

}  // namespace dynroute::cors
