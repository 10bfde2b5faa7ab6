#include "api_access.hpp"

#include "host.hpp"

namespace dynroute {

namespace {

// letters, digits, '-' and '.', as a DNS name (or an IPv4 address) has
bool is_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.'
        || s.find("..") != std::string_view::npos)
    {
        return false;
    }

    for (char c : s) {
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.')) {
            return false;
        }
    }

    return true;
}

}  // namespace

void ApiAccess::add_host(std::string_view name)
{
    if (!is_name(name)) {
        throw ConfigError("invalid host name " + quoted(name));
    }

    std::string lower(name);
    for (char &c : lower) {
        c = ascii_lower(c);
    }

    hosts_.push_back(std::move(lower));
}

void ApiAccess::add_origin(std::string_view origin)
{
    if (origin == "*") {
        throw ConfigError("\"*\" would let every web page use the API: "
                          "list the origins of the operators' pages");
    }

    origins_.add(origin);
}

bool ApiAccess::host_allowed(std::string_view host) const noexcept
{
    if (host.empty() || host == "localhost"
        || classify_host(host) != HostKind::name)
    {
        return true;
    }

    for (const auto &h : hosts_) {
        if (equal_caseless(h, host)) {
            return true;
        }
    }

    return false;
}

bool ApiAccess::origin_allowed(std::string_view origin,
                               std::string_view scheme,
                               std::string_view host) const noexcept
{
    auto o = cors::parse_origin(origin);

    if (!o) {
        return false;                   // "null", or not an origin at all
    }

    if (origins_.allows(origin)) {
        return true;
    }

    // the API's own origin: the scheme of the request, the Host as sent,
    // its port or the scheme's default

    std::string_view name = host, port;
    std::size_t colon = host.rfind(':');

    if (colon != std::string_view::npos
        && host.find(']', colon) == std::string_view::npos)
    {
        name = host.substr(0, colon);
        port = host.substr(colon + 1);
    }

    unsigned p = 0;

    if (port.empty()) {
        p = (scheme == "https") ? 443 : 80;

    } else if (port.size() <= 5) {
        for (char c : port) {
            if (!is_digit(c)) {
                return false;
            }
            p = p * 10 + static_cast<unsigned>(c - '0');
        }

    } else {
        return false;
    }

    return !name.empty() && equal_caseless(o->scheme, scheme)
           && equal_caseless(o->host, name) && o->port == p;
}

bool is_json_media_type(std::string_view content_type) noexcept
{
    constexpr std::string_view json = "application/json";

    if (content_type.size() < json.size()
        || !equal_caseless(content_type.substr(0, json.size()), json))
    {
        return false;
    }

    std::string_view rest = content_type.substr(json.size());

    return rest.empty() || rest.front() == ';' || rest.front() == ' '
           || rest.front() == '\t';
}

}  // namespace dynroute
