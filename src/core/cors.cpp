#include "cors.hpp"

#include <utility>

#include "host.hpp"

namespace dynroute::cors {

namespace {

// "*" in a list must stand alone: true (and any set) for a "*" that does;
// throws when "*" and other items meet.
bool star(std::string_view item, bool empty, bool &any, const char *what)
{
    if (item == "*" ? !empty : any) {
        throw ConfigError(std::string("\"*\" must be the only ") + what);
    }
    if (item == "*") {
        any = true;
        return true;
    }
    return false;
}

constexpr unsigned any_port = 0x10000;  // beyond every real port

bool is_tchar(char c) noexcept
{
    if (is_alpha(c) || is_digit(c)) {
        return true;
    }
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

bool is_scheme(std::string_view s) noexcept
{
    if (s.empty() || !is_alpha(s[0])) {
        return false;
    }
    for (char c : s) {
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    return true;
}

// A DNS name or a dotted quad as a browser serializes it: labels of
// letters, digits, '-' and '_', separated by single dots.
bool is_name(std::string_view s) noexcept
{
    if (s.empty() || s.front() == '.' || s.back() == '.') {
        return false;
    }
    char prev = '.';
    for (char c : s) {
        if (c == '.') {
            if (prev == '.') {
                return false;
            }
        } else if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') {
            return false;
        }
        prev = c;
    }
    return true;
}

unsigned default_port(std::string_view scheme) noexcept
{
    if (equal_caseless(scheme, "https")) {
        return 443;
    }
    if (equal_caseless(scheme, "http")) {
        return 80;
    }
    return 0;
}

struct Parsed {
    Origin origin;
    bool subdomains = false;  // host was "*.name": origin.host is ".name"
    bool any_port = false;    // port was "*"
    const char *error = nullptr;
};

// The host of "host[:port]" or "[v6][:port]" into p.origin.host, and the
// port's text after it; nullptr, or what is wrong.
const char *parse_host(std::string_view rest, bool pattern, Parsed &p,
                       std::string_view &port) noexcept
{
    std::size_t end;

    if (!rest.empty() && rest[0] == '[') {
        end = rest.find(']');
        if (end == std::string_view::npos
            || !is_ipv6(rest.substr(1, end - 1))) {
            return "invalid IPv6 address";
        }
        p.origin.host = rest.substr(0, end + 1);
        end++;
        if (end < rest.size() && rest[end] != ':') {
            return "invalid host";
        }

    } else {
        end = rest.find(':');
        p.origin.host = rest.substr(0, end);

        if (end + 1 == rest.size()) {
            return "invalid port";  // before the host's own checks
        }

        std::string_view name = p.origin.host;

        if (pattern && name.size() > 2 && name.substr(0, 2) == "*.") {
            p.subdomains = true;
            name.remove_prefix(2);
            p.origin.host.remove_prefix(1);  // ".example.com"
        }

        if (!is_name(name)) {
            return (name.find('*') != std::string_view::npos)
                       ? "a wildcard is only allowed as \"*.\" before the "
                         "domain"
                       : "invalid host";
        }
    }

    if (end < rest.size()) {
        port = rest.substr(end + 1);
        if (port.empty()) {
            return "invalid port";
        }
    }

    return nullptr;
}

// The port: none (the scheme's), "*" in a pattern, or 1 to 65535;
// nullptr, or what is wrong.
const char *parse_port(std::string_view port, bool pattern,
                       Parsed &p) noexcept
{
    if (port.empty()) {
        p.origin.port = default_port(p.origin.scheme);
        return nullptr;
    }

    if (pattern && port == "*") {
        p.any_port = true;
        p.origin.port = any_port;
        return nullptr;
    }

    if (port.size() > 5) {
        return "invalid port";
    }

    unsigned v = 0;
    for (char c : port) {
        if (!is_digit(c)) {
            return "invalid port";
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }

    if (v == 0 || v > 65535) {
        return "invalid port";
    }

    p.origin.port = v;
    return nullptr;
}

// Parses "scheme://host[:port]"; patterns (configuration) may use
// "*." before the host and "*" as the port.
Parsed parse(std::string_view s, bool pattern) noexcept
{
    Parsed p;

    std::size_t colon = s.find("://");
    if (colon == std::string_view::npos) {
        p.error = "an origin is \"scheme://host\" or \"scheme://host:port\"";
        return p;
    }

    p.origin.scheme = s.substr(0, colon);
    if (!is_scheme(p.origin.scheme)) {
        p.error = "invalid scheme";
        return p;
    }

    std::string_view rest = s.substr(colon + 3);

    if (rest.find_first_of("/?#") != std::string_view::npos) {
        p.error = "an origin has no path, query or fragment";
        return p;
    }
    if (rest.find('@') != std::string_view::npos) {
        p.error = "an origin has no user name";
        return p;
    }

    std::string_view port;

    p.error = parse_host(rest, pattern, p, port);
    if (p.error == nullptr) {
        p.error = parse_port(port, pattern, p);
    }

    return p;
}

std::string lowercase(std::string_view s)
{
    std::string out(s);
    for (char &c : out) {
        c = ascii_lower(c);
    }
    return out;
}

// Calls f(element) for each element of a comma-separated list, elements
// trimmed of spaces and tabs, empty ones skipped.  Stops when f is false.
template <typename F>
bool each_element(std::string_view list, F f) noexcept
{
    while (!list.empty()) {
        std::size_t comma = list.find(',');
        std::string_view e = list.substr(0, comma);
        while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) {
            e.remove_prefix(1);
        }
        while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) {
            e.remove_suffix(1);
        }
        if (!e.empty() && !f(e)) {
            return false;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
    return true;
}

}  // namespace


std::optional<Origin> parse_origin(std::string_view value) noexcept
{
    Parsed p = parse(value, false);
    if (p.error) {
        return std::nullopt;
    }
    return p.origin;
}


void OriginList::add(std::string_view pattern)
{
    if (star(pattern, entries_.empty(), any_, "origin")) {
        return;
    }

    if (pattern == "null") {
        throw ConfigError("the \"null\" origin of sandboxed and local "
                          "documents cannot be allowed safely");
    }

    Parsed p = parse(pattern, true);
    if (p.error) {
        throw ConfigError(p.error);
    }

    Entry e;
    e.scheme = lowercase(p.origin.scheme);
    e.host = lowercase(p.origin.host);
    e.port = p.origin.port;
    e.any_port = p.any_port;
    e.subdomains = p.subdomains;

    entries_.push_back(std::move(e));
}


bool OriginList::allows(std::string_view origin) const noexcept
{
    if (any_) {
        return true;
    }

    Parsed p = parse(origin, false);
    if (p.error) {
        return false;
    }

    const Origin &o = p.origin;

    for (const Entry &e : entries_) {
        if (!e.any_port && e.port != o.port) {
            continue;
        }
        if (!equal_caseless(o.scheme, e.scheme)) {
            continue;
        }
        if (e.subdomains) {
            // ".example.com" after at least one more character, which
            // is_name already proved to be a valid label
            if (o.host.size() > e.host.size()
                && equal_caseless(o.host.substr(o.host.size() - e.host.size()),
                                  e.host)) {
                return true;
            }
            continue;
        }
        if (equal_caseless(o.host, e.host)) {
            return true;
        }
    }

    return false;
}


void TokenList::add(std::string_view token)
{
    if (star(token, tokens_.empty(), any_, "value")) {
        return;
    }

    if (!is_token(token)) {
        throw ConfigError("not an HTTP token");
    }

    if (contains(token)) {
        throw ConfigError("duplicate value");
    }

    tokens_.emplace_back(caseless_ ? lowercase(token) : std::string(token));
}


bool TokenList::contains(std::string_view token) const noexcept
{
    if (any_) {
        return is_token(token);
    }
    for (const std::string &t : tokens_) {
        if (caseless_ ? equal_caseless(t, token) : t == token) {
            return true;
        }
    }
    return false;
}


bool TokenList::contains_all(std::string_view list) const noexcept
{
    if (!is_token_list(list)) {
        return false;
    }
    return each_element(list, [this](std::string_view e) noexcept {
        return contains(e);
    });
}


std::string TokenList::joined() const
{
    if (any_) {
        return "*";
    }
    std::string out;
    for (const std::string &t : tokens_) {
        if (!out.empty()) {
            out += ", ";
        }
        out += t;
    }
    return out;
}


bool method_allowed(const TokenList &methods, std::string_view method) noexcept
{
    return methods.contains(method)
           || (method == "HEAD" && methods.contains("GET"));
}


bool is_token(std::string_view s) noexcept
{
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (!is_tchar(c)) {
            return false;
        }
    }
    return true;
}


bool is_token_list(std::string_view s) noexcept
{
    for (char c : s) {
        if (!is_tchar(c) && c != ',' && c != ' ' && c != '\t') {
            return false;
        }
    }
    // no token may contain inner whitespace: "a b" is not a list
    return each_element(s, [](std::string_view e) noexcept {
        return is_token(e);
    });
}


bool vary_lists(std::string_view vary, std::string_view name) noexcept
{
    return !each_element(vary, [name](std::string_view e) noexcept {
        return !(e == "*" || equal_caseless(e, name));
    });
}



bool owns_header(std::string_view name) noexcept
{
    constexpr std::string_view allow = "Access-Control-Allow-";

    return (name.size() > allow.size()
            && equal_caseless(name.substr(0, allow.size()), allow))
           || equal_caseless(name, "Access-Control-Max-Age");
}


void Request::header(std::string_view name, std::string_view value) noexcept
{
    std::optional<std::string_view> *found;

    if (equal_caseless(name, "Origin")) {
        found = &origin;
    } else if (equal_caseless(name, "Access-Control-Request-Method")) {
        found = &request_method;
    } else if (equal_caseless(name, "Access-Control-Request-Headers")) {
        found = &request_headers;
    } else {
        return;
    }

    if (*found) {
        repeated = true;    // ambiguous: never allowed
    }
    *found = value;
}


void Request::vary(std::string_view value) noexcept
{
    if (vary_lists(value, "Origin")) {
        vary_origin = true;
    }
}


Policy::Policy(Settings settings) : s_(std::move(settings))
{
    // "*" with credentials is what let a reflecting CORS middleware hand
    // any site its users' data
    if (s_.origins.any() && s_.credentials) {
        throw ConfigError("\"*\" origins cannot be used with credentials");
    }
    if (s_.enabled && s_.origins.empty()) {
        throw ConfigError("CORS on without origins allows no origin");
    }

    methods_ = s_.methods.joined();
    headers_ = s_.headers.joined();
}


Decision Policy::decide(const Request &in) const noexcept
{
    // a preflight's answer depends on all three request headers
    static constexpr std::string_view vary_preflight =
        "Origin, Access-Control-Request-Method, "
        "Access-Control-Request-Headers";
    static constexpr std::string_view vary_request =
        vary_preflight.substr(sizeof("Origin, ") - 1);

    Decision d;

    if (!s_.enabled || !in.main) {
        return d;
    }

    d.applies = true;

    bool any = s_.origins.any();
    bool origin_allowed = any
                          || (in.origin && !in.repeated
                              && s_.origins.allows(*in.origin));

    if (in.method == "OPTIONS" && in.origin && in.request_method) {
        d.preflight = true;
        d.vary = (any || in.vary_origin) ? vary_request : vary_preflight;

        if (in.repeated) {
            d.denied = "a CORS request header is repeated";
        } else if (!origin_allowed) {
            d.denied = "origin not allowed";
        } else if (!method_allowed(s_.methods, *in.request_method)) {
            d.denied = "method not allowed";
        } else if (in.request_headers
                   && !s_.headers.contains_all(*in.request_headers)) {
            d.denied = "headers not allowed";
        }

        if (d.denied) {
            return d;
        }

        d.allow_methods = methods_;

        // with credentials "*" is taken literally: name the headers asked
        if (!s_.headers.any() || !s_.credentials) {
            d.allow_headers = headers_;
        } else if (in.request_headers) {
            d.allow_headers = *in.request_headers;
        }

        d.max_age = s_.max_age;

    } else {
        // an actual response, proxied or local, errors included
        if (!any && !in.vary_origin) {
            d.vary = "Origin";
        }

        if (!origin_allowed || !method_allowed(s_.methods, in.method)) {
            return d;
        }
    }

    d.allow_origin = any ? std::string_view("*") : *in.origin;

    if (s_.credentials) {
        d.allow_credentials = "true";
    }

    return d;
}

}  // namespace dynroute::cors
