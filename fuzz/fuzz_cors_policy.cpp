// The CORS policy from arbitrary settings and requests.
//
// Input: lines.  Settings (a bad value is skipped, as nginx -t would
// refuse it):
//   "o ORIGIN"   an allowed origin or "*"   "m METHOD"  an allowed method
//   "h HEADER"   an allowed header or "*"   "c 1"       credentials on
//   "a SECONDS"  the max age                "e 0"       CORS off
// then the request and its response:
//   "M METHOD"   the method                 "H NAME: VALUE"  a header
//   "V VALUE"    a Vary of the response     "s 1"       a subrequest
// Whatever the text, building either throws ConfigError or gives a policy
// whose decisions never send "*" with credentials, never allow an origin
// that the list does not, send no CORS header with a denied preflight,
// vary on Origin whenever the answer depends on it, and only point into
// the policy or into the request.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "cors.hpp"
#include "fuzz_util.hpp"

using namespace dynroute::cors;

namespace {

template <typename F>
void add(F f)
{
    try {
        f();
    } catch (const dynroute::ConfigError &) {
    }
}

bool inside(std::string_view part, std::string_view whole)
{
    return part.data() >= whole.data()
           && part.data() + part.size() <= whole.data() + whole.size();
}

bool same(const Decision &a, const Decision &b)
{
    return a.applies == b.applies && a.preflight == b.preflight
           && a.denied == b.denied && a.vary == b.vary
           && a.allow_origin == b.allow_origin
           && a.allow_credentials == b.allow_credentials
           && a.allow_methods == b.allow_methods
           && a.allow_headers == b.allow_headers && a.max_age == b.max_age;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto lines = fuzz::split_lines(text, 64);

    Settings s;
    s.enabled = true;
    Request in;
    in.method = "GET";

    for (std::string_view l : lines) {
        if (l.size() < 2 || l[1] != ' ') {
            continue;
        }
        std::string_view v = l.substr(2);

        switch (l[0]) {
        case 'o':
            add([&] { s.origins.add(v); });
            break;
        case 'm':
            add([&] { s.methods.add(v); });
            break;
        case 'h':
            add([&] { s.headers.add(v); });
            break;
        case 'c':
            s.credentials = (v == "1");
            break;
        case 'a':
            s.max_age = std::string(v);
            break;
        case 'e':
            s.enabled = (v != "0");
            break;
        case 'M':
            in.method = v;
            break;
        case 'H': {
            std::size_t colon = v.find(':');
            std::string_view name = v.substr(0, colon);
            std::string_view value = v.substr(name.size());  // "" or ":..."
            if (!value.empty()) {
                value.remove_prefix(1);
                if (!value.empty() && value[0] == ' ') {
                    value.remove_prefix(1);
                }
            }
            FUZZ_CHECK(!owns_header(name)
                       || dynroute::equal_caseless(name.substr(0, 15),
                                                   "Access-Control-"));
            in.header(name, value);
            break;
        }
        case 'V':
            in.vary(v);
            break;
        case 's':
            in.main = (v != "1");
            break;
        }
    }

    // what Request::header kept is what was sent
    for (const auto *h : {&in.origin, &in.request_method,
                          &in.request_headers}) {
        FUZZ_CHECK(!*h || inside(**h, text));
    }

    bool any = s.origins.any();
    bool credentials = s.credentials;
    bool refused = (any && credentials) || (s.enabled && s.origins.empty());

    std::optional<Policy> policy;
    try {
        policy.emplace(std::move(s));
    } catch (const dynroute::ConfigError &) {
        FUZZ_CHECK(refused);
        return 0;
    }
    FUZZ_CHECK(!refused);

    const Settings &set = policy->settings();
    Decision d = policy->decide(in);

    FUZZ_CHECK(same(d, policy->decide(in)));

    // never "*" together with credentials
    FUZZ_CHECK(!(any && credentials));
    FUZZ_CHECK(!(d.allow_origin == "*" && !d.allow_credentials.empty()));
    FUZZ_CHECK(d.allow_credentials.empty()
               || (credentials && d.allow_credentials == "true"
                   && !d.allow_origin.empty()));

    // an origin the list does not allow never gets Access-Control-Allow-
    // Origin; an allowed one gets exactly the value it sent
    if (!d.allow_origin.empty()) {
        if (any) {
            FUZZ_CHECK(d.allow_origin == "*");
        } else {
            FUZZ_CHECK(in.origin && !in.repeated
                       && set.origins.allows(*in.origin));
            FUZZ_CHECK(d.allow_origin.data() == in.origin->data()
                       && d.allow_origin.size() == in.origin->size());
        }
    }

    // nothing outside a location with CORS on, or in a subrequest
    if (!d.applies) {
        FUZZ_CHECK(!set.enabled || !in.main);
        FUZZ_CHECK(same(d, Decision{}));
        return 0;
    }

    // a preflight is OPTIONS with Origin and Access-Control-Request-Method
    FUZZ_CHECK(d.preflight
               == (in.method == "OPTIONS" && in.origin
                   && in.request_method));

    // a denied preflight gets no CORS header, only Vary
    if (d.denied) {
        FUZZ_CHECK(d.preflight && !d.vary.empty());
        FUZZ_CHECK(d.allow_origin.empty() && d.allow_credentials.empty()
                   && d.allow_methods.empty() && d.allow_headers.empty()
                   && d.max_age.empty());
    }

    // an allowed preflight is told the methods and the headers
    if (d.preflight && !d.denied) {
        FUZZ_CHECK(!d.allow_origin.empty());
        FUZZ_CHECK(d.allow_methods == set.methods.joined());
        FUZZ_CHECK(d.max_age == set.max_age);
        FUZZ_CHECK(d.allow_headers.empty()
                   || d.allow_headers == set.headers.joined()
                   || (set.headers.any() && credentials && in.request_headers
                       && d.allow_headers.data()
                              == in.request_headers->data()));
        // with credentials "*" is literal: only if the request asked for it
        FUZZ_CHECK(d.allow_headers != "*" || !credentials
                   || d.allow_headers.data() == in.request_headers->data());
    }
    if (!d.preflight) {
        FUZZ_CHECK(d.allow_methods.empty() && d.allow_headers.empty()
                   && d.max_age.empty());
    }

    // the answer depends on the origin unless it is "*": Vary says so
    if (!any) {
        FUZZ_CHECK(in.vary_origin || vary_lists(d.vary, "Origin"));
    }
    FUZZ_CHECK(d.vary.empty() || is_token_list(d.vary));

    return 0;
}
