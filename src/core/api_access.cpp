#include "api_access.hpp"

#include "host.hpp"

namespace dynroute {

namespace {

char lower(char c) noexcept
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_nocase(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) {
        return false;
    }

    for (std::size_t i = 0; i < a.size(); i++) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }

    return true;
}

std::string lowered(std::string_view s)
{
    std::string l(s);
    for (auto &c : l) {
        c = lower(c);
    }
    return l;
}

// letters, digits, '-' and '.', as a DNS name (or an IPv4 address) has
bool is_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') {
        return false;
    }

    for (char c : s) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.'))
        {
            return false;
        }
    }

    return s.find("..") == std::string_view::npos;
}

}  // namespace

void ApiAccess::add_host(std::string_view name)
{
    if (!is_name(name)) {
        throw ConfigError("invalid host name " + quoted(name));
    }

    hosts_.push_back(lowered(name));
}

void ApiAccess::add_origin(std::string_view origin)
{
    std::string_view rest;

    if (origin.substr(0, 7) == "http://") {
        rest = origin.substr(7);
    } else if (origin.substr(0, 8) == "https://") {
        rest = origin.substr(8);
    } else {
        throw ConfigError("invalid origin " + quoted(origin)
                          + ": expected http://NAME or https://NAME, "
                            "with an optional :PORT");
    }

    std::string_view host = rest, port;
    std::size_t colon = rest.rfind(':');

    if (!rest.empty() && rest.front() == '[') {
        std::size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            throw ConfigError("invalid origin " + quoted(origin));
        }
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 1);
        if (!is_ipv6(host) || (!port.empty() && port.front() != ':')) {
            throw ConfigError("invalid origin " + quoted(origin));
        }
        if (!port.empty()) {
            port.remove_prefix(1);
        }

    } else if (colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (port.empty()) {
            throw ConfigError("invalid origin " + quoted(origin));
        }
    }

    if (host.empty() || (rest.front() != '[' && !is_name(host))) {
        throw ConfigError("invalid origin " + quoted(origin)
                          + ": expected http://NAME or https://NAME, "
                            "with an optional :PORT");
    }

    if (port.size() > 5) {
        throw ConfigError("invalid port in origin " + quoted(origin));
    }

    for (char c : port) {
        if (c < '0' || c > '9') {
            throw ConfigError("invalid port in origin " + quoted(origin));
        }
    }

    origins_.push_back(lowered(origin));
}

bool ApiAccess::host_allowed(std::string_view host) const noexcept
{
    if (host.empty() || host == "localhost"
        || classify_host(host) != HostKind::name)
    {
        return true;
    }

    for (const auto &h : hosts_) {
        if (equal_nocase(h, host)) {
            return true;
        }
    }

    return false;
}

bool ApiAccess::origin_allowed(std::string_view origin,
                               std::string_view scheme,
                               std::string_view host) const noexcept
{
    // the API's own origin: scheme "://" host, compared in pieces
    if (!host.empty() && origin.size() == scheme.size() + 3 + host.size()
        && equal_nocase(origin.substr(0, scheme.size()), scheme)
        && origin.substr(scheme.size(), 3) == "://"
        && equal_nocase(origin.substr(scheme.size() + 3), host))
    {
        return true;
    }

    for (const auto &o : origins_) {
        if (equal_nocase(o, origin)) {
            return true;
        }
    }

    return false;
}

bool is_json_media_type(std::string_view content_type) noexcept
{
    constexpr std::string_view json = "application/json";

    if (content_type.size() < json.size()
        || !equal_nocase(content_type.substr(0, json.size()), json))
    {
        return false;
    }

    std::string_view rest = content_type.substr(json.size());

    return rest.empty() || rest.front() == ';' || rest.front() == ' '
           || rest.front() == '\t';
}

}  // namespace dynroute
