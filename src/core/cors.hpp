// CORS policy pieces that need no nginx: parsing and matching origins,
// lists of methods and header names, and reading Vary.  Pure C++17.
//
// Lists are built once at configuration time (adding may throw
// ConfigError) and are immutable afterwards; every query is noexcept,
// allocates nothing and only borrows its arguments for the call.
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
    std::size_t size() const noexcept { return entries_.size(); }

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
    const std::vector<std::string> &tokens() const noexcept { return tokens_; }

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

}  // namespace dynroute::cors
