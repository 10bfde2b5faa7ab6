#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "cors.hpp"

using namespace dynroute::cors;
using dynroute::ConfigError;

namespace {

OriginList origins(const std::vector<std::string> &patterns)
{
    OriginList l;
    for (const auto &p : patterns) {
        l.add(p);
    }
    return l;
}

TokenList tokens(bool caseless, const std::vector<std::string> &list)
{
    TokenList l(caseless);
    for (const auto &t : list) {
        l.add(t);
    }
    return l;
}

}  // namespace

TEST(ParseOrigin, SerializedOrigins)
{
    auto o = parse_origin("https://app.example.com");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->scheme, "https");
    EXPECT_EQ(o->host, "app.example.com");
    EXPECT_EQ(o->port, 443u);

    o = parse_origin("http://127.0.0.1:8080");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->host, "127.0.0.1");
    EXPECT_EQ(o->port, 8080u);

    o = parse_origin("http://[::1]:3000");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->host, "[::1]");
    EXPECT_EQ(o->port, 3000u);

    o = parse_origin("http://localhost");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->port, 80u);

    o = parse_origin("chrome-extension://abcdef");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->port, 0u);
}

TEST(ParseOrigin, RejectsWhatIsNotAnOrigin)
{
    for (const char *v :
         {"", "null", "*", "example.com", "https://", "https://a.com/",
          "https://a.com/x", "https://a.com?x", "https://a.com#x",
          "https://u@a.com", "https://a.com:", "https://a.com:0",
          "https://a.com:65536", "https://a.com:123456", "https://a.com:8o",
          "https://a..com", "https://.a.com", "https://a.com.",
          "https://a com", "https://*.a.com", "https://[::1", "https://[x]",
          "https://[::1]x", "1https://a.com", "https//a.com",
          "https://a.com:80:80", "https://a.com\r\nX: y"}) {
        EXPECT_FALSE(parse_origin(v)) << v;
    }
}

TEST(Origins, ExactOriginsCompareSchemeHostAndPort)
{
    auto l = origins({"https://app.example.com", "http://localhost:8080"});

    EXPECT_TRUE(l.allows("https://app.example.com"));
    EXPECT_TRUE(l.allows("https://app.example.com:443"));
    EXPECT_TRUE(l.allows("HTTPS://App.Example.COM"));
    EXPECT_TRUE(l.allows("http://localhost:8080"));

    EXPECT_FALSE(l.allows("http://app.example.com"));       // scheme
    EXPECT_FALSE(l.allows("https://app.example.com:8443"));  // port
    EXPECT_FALSE(l.allows("http://localhost"));
    EXPECT_FALSE(l.allows("http://localhost:8081"));
    EXPECT_FALSE(l.allows("https://example.com"));
    EXPECT_FALSE(l.allows("https://x.app.example.com"));
    EXPECT_FALSE(l.allows("null"));
    EXPECT_FALSE(l.allows(""));
}

// The mistakes that made reflecting CORS implementations exploitable: a
// suffix or prefix match instead of an origin match.
TEST(Origins, NoPrefixOrSuffixConfusion)
{
    auto l = origins({"https://example.com", "https://*.trusted.com"});

    for (const char *v :
         {"https://example.com.evil.com", "https://evilexample.com",
          "https://example.comevil.com", "https://example.com@evil.com",
          "https://evil.com/https://example.com", "https://eviltrusted.com",
          "https://trusted.com", "https://trusted.com.evil.com",
          "https://.trusted.com", "https://a..trusted.com",
          "http://a.trusted.com", "https://a.trusted.com:8443",
          "https://a.trusted.com.", "null"}) {
        EXPECT_FALSE(l.allows(v)) << v;
    }
}

TEST(Origins, WildcardSubdomainsAtAnyDepth)
{
    auto l = origins({"https://*.example.com", "http://*.dev.test:*"});

    EXPECT_TRUE(l.allows("https://a.example.com"));
    EXPECT_TRUE(l.allows("https://a.b.example.com"));
    EXPECT_TRUE(l.allows("https://A.EXAMPLE.com"));
    EXPECT_FALSE(l.allows("https://example.com"));

    EXPECT_TRUE(l.allows("http://x.dev.test"));
    EXPECT_TRUE(l.allows("http://x.dev.test:5173"));
    EXPECT_FALSE(l.allows("https://x.dev.test:5173"));
    EXPECT_FALSE(l.allows("http://dev.test:5173"));
}

TEST(Origins, AnyPortAndIpLiterals)
{
    auto l = origins({"http://127.0.0.1:*", "http://[::1]:8080"});

    EXPECT_TRUE(l.allows("http://127.0.0.1"));
    EXPECT_TRUE(l.allows("http://127.0.0.1:9999"));
    EXPECT_FALSE(l.allows("http://127.0.0.2:9999"));
    EXPECT_TRUE(l.allows("http://[::1]:8080"));
    EXPECT_FALSE(l.allows("http://[::1]:8081"));
}

TEST(Origins, Star)
{
    auto l = origins({"*"});
    EXPECT_TRUE(l.any());
    EXPECT_TRUE(l.allows("https://anything.example"));
    EXPECT_TRUE(l.allows("null"));

    OriginList empty;
    EXPECT_TRUE(empty.empty());
    EXPECT_FALSE(empty.allows("https://a.com"));
}

TEST(Origins, ConfigurationErrors)
{
    for (const char *p :
         {"example.com", "*.example.com", "https://example.com/",
          "https://example.com/path", "null", "https://a.*.com",
          "https://*example.com", "https://*", "https://*.", "https://a.com:0",
          "https://a.com:x", "ftp//a.com", "https://[zz]", "https://a b"}) {
        OriginList l;
        EXPECT_THROW(l.add(p), ConfigError) << p;
    }

    OriginList a;
    a.add("https://a.com");
    EXPECT_THROW(a.add("*"), ConfigError);

    OriginList b;
    b.add("*");
    EXPECT_THROW(b.add("https://a.com"), ConfigError);
}

TEST(Tokens, MethodsAreCaseSensitiveAndHeadFollowsGet)
{
    auto m = tokens(false, {"GET", "POST", "PATCH"});

    EXPECT_TRUE(method_allowed(m, "GET"));
    EXPECT_TRUE(method_allowed(m, "HEAD"));
    EXPECT_TRUE(method_allowed(m, "PATCH"));
    EXPECT_FALSE(method_allowed(m, "patch"));
    EXPECT_FALSE(method_allowed(m, "PUT"));
    EXPECT_FALSE(method_allowed(m, ""));
    EXPECT_EQ(m.joined(), "GET, POST, PATCH");

    auto post = tokens(false, {"POST"});
    EXPECT_FALSE(method_allowed(post, "HEAD"));
}

TEST(Tokens, HeaderNamesAreCaseInsensitive)
{
    auto h = tokens(true, {"Content-Type", "X-Request-Id"});

    EXPECT_TRUE(h.contains("content-type"));
    EXPECT_TRUE(h.contains("CONTENT-TYPE"));
    EXPECT_EQ(h.joined(), "content-type, x-request-id");

    EXPECT_TRUE(h.contains_all("content-type,x-request-id"));
    EXPECT_TRUE(h.contains_all(" x-request-id , content-type "));
    EXPECT_TRUE(h.contains_all(""));
    EXPECT_FALSE(h.contains_all("content-type,authorization"));
    EXPECT_FALSE(h.contains_all("content type"));
    EXPECT_FALSE(h.contains_all("content-type\r\nx: y"));
}

TEST(Tokens, StarAllowsAnyWellFormedToken)
{
    auto h = tokens(true, {"*"});
    EXPECT_TRUE(h.any());
    EXPECT_TRUE(h.contains_all("authorization, x-anything"));
    EXPECT_FALSE(h.contains_all("a b"));
    EXPECT_EQ(h.joined(), "*");
}

TEST(Tokens, ConfigurationErrors)
{
    TokenList l(true);
    EXPECT_THROW(l.add("Bad Header"), ConfigError);
    EXPECT_THROW(l.add(""), ConfigError);
    EXPECT_THROW(l.add("a:b"), ConfigError);
    l.add("X-A");
    EXPECT_THROW(l.add("x-a"), ConfigError);
    EXPECT_THROW(l.add("*"), ConfigError);
}

TEST(Syntax, TokenLists)
{
    EXPECT_TRUE(is_token("GET"));
    EXPECT_TRUE(is_token("x-custom_1"));
    EXPECT_FALSE(is_token(""));
    EXPECT_FALSE(is_token("a b"));
    EXPECT_FALSE(is_token("a,b"));

    EXPECT_TRUE(is_token_list(""));
    EXPECT_TRUE(is_token_list("a"));
    EXPECT_TRUE(is_token_list("a, b,c ,, d"));
    EXPECT_FALSE(is_token_list("a b"));
    EXPECT_FALSE(is_token_list("a;b"));
    EXPECT_FALSE(is_token_list("a\nb"));
}

TEST(Syntax, Vary)
{
    EXPECT_TRUE(vary_lists("Origin", "Origin"));
    EXPECT_TRUE(vary_lists("accept-encoding, origin", "Origin"));
    EXPECT_TRUE(vary_lists("*", "Origin"));
    EXPECT_FALSE(vary_lists("Accept-Encoding", "Origin"));
    EXPECT_FALSE(vary_lists("Origin-Agent", "Origin"));
    EXPECT_FALSE(vary_lists("", "Origin"));
}

// Random strings built from the pieces of origins: whatever a list allows
// must be one of the listed origins, checked against a plain model.
TEST(Origins, RandomStringsMatchAModel)
{
    auto l = origins({"https://*.example.com", "http://app.test:8080"});

    const std::vector<std::string> pieces = {
        "https://", "http://", "HTTPS://", "a", "b-c", ".", "..", "example",
        ".com", "com", "app", ".test", ":", ":8080", ":443", ":0", "/", "@",
        "*", "[", "]", "::1", "null", " ", "%2e", "\t", "x", "_"};

    auto lower = [](std::string s) {
        for (char &c : s) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return s;
    };

    auto model = [&](const std::string &s) {
        std::string v = lower(s);
        const std::string https = "https://";
        if (v.rfind(https, 0) == 0) {
            std::string host = v.substr(https.size());
            if (host.size() > 4 && host.compare(host.size() - 4, 4, ":443") == 0) {
                host.resize(host.size() - 4);
            }
            const std::string suffix = ".example.com";
            if (host.size() <= suffix.size()
                || host.compare(host.size() - suffix.size(), suffix.size(),
                                suffix) != 0) {
                return false;
            }
            std::string label = host.substr(0, host.size() - suffix.size());
            if (label.front() == '.' || label.back() == '.'
                || label.find("..") != std::string::npos) {
                return false;
            }
            for (char c : label) {
                if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-'
                    && c != '_' && c != '.') {
                    return false;
                }
            }
            return true;
        }
        return v == "http://app.test:8080";
    };

    std::mt19937 rng(2024);
    int allowed = 0;
    for (int i = 0; i < 200000; i++) {
        std::string s;
        int n = 1 + static_cast<int>(rng() % 7);
        for (int k = 0; k < n; k++) {
            s += pieces[rng() % pieces.size()];
        }
        if (i % 3 == 0) {
            s = "https://" + s + ".example.com";
        }
        bool got = l.allows(s);
        allowed += got;
        ASSERT_EQ(got, model(s)) << s;
    }
    EXPECT_GT(allowed, 100);
}

// ---- the policy ------------------------------------------------------------

namespace {

Settings policy_settings(const std::vector<std::string> &origin_list,
                         const std::vector<std::string> &method_list,
                         const std::vector<std::string> &header_list,
                         bool credentials, const std::string &max_age)
{
    Settings s;
    s.enabled = true;
    s.origins = origins(origin_list);
    s.methods = tokens(false, method_list);
    s.headers = tokens(true, header_list);
    s.credentials = credentials;
    s.max_age = max_age;
    return s;
}

// Views of string literals, which outlive the Request.
using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

Request request(std::string_view method, const Headers &hs,
                const std::vector<std::string_view> &vary = {})
{
    Request r;
    r.method = method;
    for (const auto &h : hs) {
        r.header(h.first, h.second);
    }
    for (const auto &v : vary) {
        r.vary(v);
    }
    return r;
}

const std::string vary_preflight =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

}  // namespace

// The README's example, header for header.
TEST(Policy, ReadmeExamplePreflight)
{
    Policy p(policy_settings(
        {"https://app.example.com", "https://*.preview.example.com"},
        {"GET", "POST", "PUT", "DELETE"}, {"Content-Type", "X-Request-Id"},
        true, "600"));

    auto in = request("OPTIONS",
                      {{"Origin", "https://app.example.com"},
                       {"Access-Control-Request-Method", "PUT"},
                       {"Access-Control-Request-Headers", "content-type"}});
    Decision d = p.decide(in);

    EXPECT_TRUE(d.applies);
    EXPECT_TRUE(d.preflight);
    EXPECT_EQ(d.denied, nullptr);
    EXPECT_EQ(d.vary, vary_preflight);
    EXPECT_EQ(d.allow_origin, "https://app.example.com");
    EXPECT_EQ(d.allow_credentials, "true");
    EXPECT_EQ(d.allow_methods, "GET, POST, PUT, DELETE");
    EXPECT_EQ(d.allow_headers, "content-type, x-request-id");
    EXPECT_EQ(d.max_age, "600");

    // the same from another origin: only Vary, and why
    in.origin = "https://evil.example";
    d = p.decide(in);
    EXPECT_TRUE(d.preflight);
    EXPECT_STREQ(d.denied, "origin not allowed");
    EXPECT_EQ(d.vary, vary_preflight);
    EXPECT_EQ(d.allow_origin, "");
    EXPECT_EQ(d.allow_credentials, "");
    EXPECT_EQ(d.allow_methods, "");
    EXPECT_EQ(d.allow_headers, "");
    EXPECT_EQ(d.max_age, "");

    // a GET from it is answered without Access-Control-Allow-Origin
    d = p.decide(request("GET", {{"Origin", "https://evil.example"}}));
    EXPECT_FALSE(d.preflight);
    EXPECT_EQ(d.vary, "Origin");
    EXPECT_EQ(d.allow_origin, "");
}

TEST(Policy, DenialReasonsInOrder)
{
    Policy p(policy_settings({"https://a.com"}, {"GET"}, {"X-A"}, false, ""));

    auto deny = [&](const Headers &hs) {
        const char *why = p.decide(request("OPTIONS", hs)).denied;
        return std::string(why ? why : "allowed");
    };

    EXPECT_EQ(deny({{"Origin", "https://a.com"},
                    {"Access-Control-Request-Method", "GET"},
                    {"Access-Control-Request-Headers", "x-a"}}),
              "allowed");
    EXPECT_EQ(deny({{"Origin", "https://a.com"},
                    {"origin", "https://a.com"},
                    {"Access-Control-Request-Method", "PUT"}}),
              "a CORS request header is repeated");
    EXPECT_EQ(deny({{"Origin", "https://b.com"},
                    {"Access-Control-Request-Method", "PUT"}}),
              "origin not allowed");
    EXPECT_EQ(deny({{"Origin", "https://a.com"},
                    {"Access-Control-Request-Method", "PUT"},
                    {"Access-Control-Request-Headers", "x-b"}}),
              "method not allowed");
    EXPECT_EQ(deny({{"Origin", "https://a.com"},
                    {"Access-Control-Request-Method", "HEAD"},
                    {"Access-Control-Request-Headers", "x-a, x-b"}}),
              "headers not allowed");
}

TEST(Policy, StarWithoutCredentialsNeverVariesOnOrigin)
{
    Policy p(policy_settings({"*"}, {"GET"}, {"*"}, false, ""));

    Decision d = p.decide(request("GET", {}));
    EXPECT_EQ(d.allow_origin, "*");
    EXPECT_EQ(d.allow_credentials, "");
    EXPECT_EQ(d.vary, "");

    d = p.decide(request("OPTIONS",
                         {{"Origin", "https://x.example"},
                          {"Access-Control-Request-Method", "GET"},
                          {"Access-Control-Request-Headers", "x-any"}}));
    EXPECT_EQ(d.vary, "Access-Control-Request-Method, "
                      "Access-Control-Request-Headers");
    EXPECT_EQ(d.allow_origin, "*");
    EXPECT_EQ(d.allow_headers, "*");

    d = p.decide(request("PUT", {{"Origin", "https://x.example"}}));
    EXPECT_EQ(d.allow_origin, "");
}

TEST(Policy, HeadersStarWithCredentialsNamesWhatWasAsked)
{
    Policy p(policy_settings({"https://a.com"}, {"GET"}, {"*"}, true, ""));

    auto in = request("OPTIONS",
                      {{"Origin", "https://a.com"},
                       {"Access-Control-Request-Method", "GET"},
                       {"Access-Control-Request-Headers", "X-A, x-b"}});
    EXPECT_EQ(p.decide(in).allow_headers, "X-A, x-b");

    in.request_headers = "";
    EXPECT_EQ(p.decide(in).allow_headers, "");

    in.request_headers.reset();
    Decision d = p.decide(in);
    EXPECT_EQ(d.denied, nullptr);
    EXPECT_EQ(d.allow_headers, "");
}

TEST(Policy, VaryIsNotRepeated)
{
    Policy p(policy_settings({"https://a.com"}, {"GET"}, {}, false, ""));

    EXPECT_EQ(p.decide(request("GET", {}, {"accept-encoding, origin"})).vary,
              "");
    EXPECT_EQ(p.decide(request("GET", {}, {"*"})).vary, "");
    EXPECT_EQ(p.decide(request("GET", {}, {"Origin-Agent"})).vary, "Origin");
    EXPECT_EQ(p.decide(request("OPTIONS",
                               {{"Origin", "https://a.com"},
                                {"Access-Control-Request-Method", "GET"}},
                               {"Origin"}))
                  .vary,
              "Access-Control-Request-Method, "
              "Access-Control-Request-Headers");
}

TEST(Policy, RepeatedHeadersAndSubrequests)
{
    Policy p(policy_settings({"https://a.com"}, {"GET"}, {}, true, ""));

    // a repeated Access-Control-Request-Method spoils an actual request too
    Decision d = p.decide(request("GET",
                                  {{"Origin", "https://a.com"},
                                   {"Access-Control-Request-Method", "GET"},
                                   {"Access-Control-Request-Method", "GET"}}));
    EXPECT_FALSE(d.preflight);
    EXPECT_EQ(d.allow_origin, "");
    EXPECT_EQ(d.vary, "Origin");

    auto in = request("GET", {{"Origin", "https://a.com"}});
    EXPECT_EQ(p.decide(in).allow_origin, "https://a.com");
    EXPECT_EQ(p.decide(in).allow_credentials, "true");
    in.main = false;
    EXPECT_FALSE(p.decide(in).applies);

    // OPTIONS without Access-Control-Request-Method is an actual request
    in = request("OPTIONS", {{"Origin", "https://a.com"}});
    EXPECT_FALSE(p.decide(in).preflight);
    EXPECT_EQ(p.decide(in).allow_origin, "");
}

TEST(Policy, ConfigurationErrors)
{
    EXPECT_THROW(Policy(policy_settings({"*"}, {"GET"}, {}, true, "")),
                 ConfigError);

    Settings off = policy_settings({"*"}, {"GET"}, {}, true, "");
    off.enabled = false;
    EXPECT_THROW(Policy{std::move(off)}, ConfigError);

    Settings none;
    none.enabled = true;
    EXPECT_THROW(Policy{std::move(none)}, ConfigError);

    Settings disabled;
    Policy p{std::move(disabled)};
    EXPECT_FALSE(p.decide(request("GET", {{"Origin", "https://a"}})).applies);
}

TEST(Policy, OwnsAllowAndMaxAgeHeaders)
{
    EXPECT_TRUE(owns_header("Access-Control-Allow-Origin"));
    EXPECT_TRUE(owns_header("access-control-allow-x"));
    EXPECT_TRUE(owns_header("ACCESS-CONTROL-MAX-AGE"));
    EXPECT_FALSE(owns_header("Access-Control-Allow-"));
    EXPECT_FALSE(owns_header("Access-Control-Expose-Headers"));
    EXPECT_FALSE(owns_header("Access-Control-Max-Age2"));
    EXPECT_FALSE(owns_header("Vary"));
}

// ---- the policy against a model --------------------------------------------
//
// The README's CORS section written out as plainly as possible, and the
// policy's decision compared with it on many generated requests.  Origin
// matching and header-list syntax come from OriginList and TokenList,
// which have their own tests above; every rule of the decision is here.

namespace {

struct ModelPolicy {
    bool enabled;
    bool star;                          // dynroute_cors_origins *
    std::vector<std::string> origins;   // else these
    std::vector<std::string> methods;
    bool headers_star;                  // dynroute_cors_headers *
    std::vector<std::string> headers;   // else these (maybe none)
    bool credentials;
    std::string max_age;
};

struct ModelRequest {
    std::string method;
    bool main;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<std::string> vary;      // the response's Vary headers
};

struct Answer {
    bool applies = false;
    bool preflight = false;
    std::string denied;                 // "" when allowed
    std::string vary, allow_origin, allow_credentials, allow_methods,
        allow_headers, max_age;
};

std::string lower(std::string s)
{
    for (char &c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

std::string join(const std::vector<std::string> &v)
{
    std::string out;
    for (const auto &s : v) {
        out += (out.empty() ? "" : ", ") + s;
    }
    return out;
}

std::vector<std::string> split_commas(const std::string &s)
{
    std::vector<std::string> out;
    std::string cur;
    for (char c : s + ",") {
        if (c != ',') {
            cur += c;
            continue;
        }
        std::size_t b = cur.find_first_not_of(" \t");
        std::size_t e = cur.find_last_not_of(" \t");
        if (b != std::string::npos) {
            out.push_back(cur.substr(b, e - b + 1));
        }
        cur.clear();
    }
    return out;
}

Answer model(const ModelPolicy &p, const ModelRequest &q)
{
    Answer a;

    // CORS off, or a subrequest: the response is left alone
    if (!p.enabled || !q.main) {
        return a;
    }
    a.applies = true;

    // the CORS request headers, the last of each; a repeat is suspicious
    const std::string *origin = nullptr, *acrm = nullptr, *acrh = nullptr;
    bool repeated = false;
    for (const auto &h : q.headers) {
        const std::string name = lower(h.first);
        const std::string **slot =
            name == "origin" ? &origin
            : name == "access-control-request-method" ? &acrm
            : name == "access-control-request-headers" ? &acrh
            : nullptr;
        if (slot) {
            repeated = repeated || *slot;
            *slot = &h.second;
        }
    }

    // the response already varies on Origin (or on everything)
    bool varies_on_origin = false;
    for (const auto &v : q.vary) {
        for (const auto &e : split_commas(v)) {
            varies_on_origin = varies_on_origin || e == "*"
                               || lower(e) == "origin";
        }
    }

    // "*" allows anyone; a list allows an Origin sent once that it lists
    OriginList list;
    for (const auto &o : p.origins) {
        list.add(o);
    }
    bool origin_allowed =
        p.star || (origin && !repeated && list.allows(*origin));

    // methods are case-sensitive, and HEAD goes where GET goes
    auto method_listed = [&](const std::string &m) {
        for (const auto &x : p.methods) {
            if (x == m || (m == "HEAD" && x == "GET")) {
                return true;
            }
        }
        return false;
    };

    TokenList headers(true);
    if (p.headers_star) {
        headers.add("*");
    }
    for (const auto &h : p.headers) {
        headers.add(h);
    }

    bool preflight = q.method == "OPTIONS" && origin && acrm;

    if (preflight) {
        a.preflight = true;
        a.vary = p.star || varies_on_origin
                     ? "Access-Control-Request-Method, "
                       "Access-Control-Request-Headers"
                     : "Origin, Access-Control-Request-Method, "
                       "Access-Control-Request-Headers";

        if (repeated) {
            a.denied = "a CORS request header is repeated";
        } else if (!origin_allowed) {
            a.denied = "origin not allowed";
        } else if (!method_listed(*acrm)) {
            a.denied = "method not allowed";
        } else if (acrh && !headers.contains_all(*acrh)) {
            a.denied = "headers not allowed";
        }
        if (!a.denied.empty()) {
            return a;
        }

        a.allow_origin = p.star ? "*" : *origin;
        a.allow_credentials = p.credentials ? "true" : "";
        a.allow_methods = join(p.methods);
        if (p.headers_star && p.credentials) {
            a.allow_headers = acrh ? *acrh : "";
        } else if (p.headers_star) {
            a.allow_headers = "*";
        } else {
            std::vector<std::string> lowered;
            for (const auto &h : p.headers) {
                lowered.push_back(lower(h));
            }
            a.allow_headers = join(lowered);
        }
        a.max_age = p.max_age;
        return a;
    }

    // an actual response
    if (!p.star && !varies_on_origin) {
        a.vary = "Origin";
    }
    if (origin_allowed && method_listed(q.method)) {
        a.allow_origin = p.star ? "*" : *origin;
        a.allow_credentials = p.credentials ? "true" : "";
    }
    return a;
}

template <typename T>
const T &pick(std::mt19937 &rng, const std::vector<T> &v)
{
    return v[rng() % v.size()];
}

std::vector<std::string> subset(std::mt19937 &rng,
                                const std::vector<std::string> &v)
{
    std::vector<std::string> out;
    for (const auto &s : v) {
        if (rng() % 2) {
            out.push_back(s);
        }
    }
    return out;
}

std::string random_case(std::mt19937 &rng, std::string s)
{
    for (char &c : s) {
        if (rng() % 3 == 0) {
            c = static_cast<char>(
                std::toupper(static_cast<unsigned char>(c)));
        } else if (rng() % 3 == 0) {
            c = static_cast<char>(
                std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return s;
}

}  // namespace

TEST(Policy, GeneratedRequestsMatchTheModel)
{
    const std::vector<std::string> origin_patterns = {
        "https://app.example.com", "http://localhost:8080",
        "https://*.example.com", "http://127.0.0.1:*", "http://[::1]:3000"};
    const std::vector<std::string> request_origins = {
        "https://app.example.com", "https://APP.example.com:443",
        "https://a.b.example.com", "https://example.com",
        "http://localhost:8080", "http://localhost", "http://127.0.0.1:5555",
        "http://[::1]:3000", "http://[::1]:3001", "https://evil.example",
        "null", "", "https://app.example.com/",
        "https://app.example.com.evil.com"};
    const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE",
                                              "PATCH"};
    const std::vector<std::string> request_methods = {
        "OPTIONS", "OPTIONS", "OPTIONS", "GET", "HEAD", "POST", "PUT",
        "DELETE", "PATCH", "options", "TRACE", ""};
    const std::vector<std::string> acrms = {"GET", "HEAD", "PUT", "PATCH",
                                            "put", "", "POST"};
    const std::vector<std::string> header_names = {
        "Content-Type", "X-Request-Id", "Authorization"};
    const std::vector<std::string> acrhs = {
        "", "content-type", "Content-Type, X-Request-Id",
        " x-request-id ,authorization", "content type", "x-other", ",",
        "content-type\r\nx: y"};
    const std::vector<std::string> varies = {
        "Accept-Encoding", "Origin", "accept-encoding, origin", "*",
        "Origin-Agent", "", "ORIGIN"};
    const std::vector<std::string> max_ages = {"", "0", "600"};

    std::mt19937 rng(20261202);
    int preflights = 0, allowed = 0, denied = 0, actual_allowed = 0;

    for (int i = 0; i < 10000; i++) {
        ModelPolicy mp;
        mp.enabled = rng() % 10 != 0;
        mp.credentials = rng() % 2;
        mp.star = !mp.credentials && rng() % 4 == 0;
        if (!mp.star) {
            mp.origins = subset(rng, origin_patterns);
            if (mp.origins.empty()) {
                mp.origins.push_back(pick(rng, origin_patterns));
            }
        }
        mp.methods = rng() % 3 ? subset(rng, methods)
                               : std::vector<std::string>{"GET", "POST"};
        if (mp.methods.empty()) {
            mp.methods.push_back(pick(rng, methods));
        }
        mp.headers_star = rng() % 4 == 0;
        if (!mp.headers_star) {
            mp.headers = subset(rng, header_names);
        }
        mp.max_age = pick(rng, max_ages);

        Settings s;
        s.enabled = mp.enabled;
        if (mp.star) {
            s.origins.add("*");
        }
        for (const auto &o : mp.origins) {
            s.origins.add(o);
        }
        for (const auto &m : mp.methods) {
            s.methods.add(m);
        }
        if (mp.headers_star) {
            s.headers.add("*");
        }
        for (const auto &h : mp.headers) {
            s.headers.add(h);
        }
        s.credentials = mp.credentials;
        s.max_age = mp.max_age;
        Policy policy(std::move(s));

        for (int j = 0; j < 8; j++) {
            ModelRequest mq;
            mq.method = pick(rng, request_methods);
            mq.main = rng() % 10 != 0;

            if (rng() % 2) {
                mq.headers.push_back({"Accept", "*/*"});
            }
            if (rng() % 5) {
                mq.headers.push_back(
                    {random_case(rng, "Origin"), pick(rng, request_origins)});
            }
            if (rng() % 3) {
                mq.headers.push_back(
                    {random_case(rng, "Access-Control-Request-Method"),
                     pick(rng, acrms)});
            }
            if (rng() % 2) {
                mq.headers.push_back(
                    {random_case(rng, "Access-Control-Request-Headers"),
                     pick(rng, acrhs)});
            }
            if (rng() % 12 == 0 && !mq.headers.empty()) {
                mq.headers.push_back(pick(rng, mq.headers));   // a repeat
            }
            for (unsigned k = rng() % 3; k > 0; k--) {
                mq.vary.push_back(pick(rng, varies));
            }

            Request in;
            in.method = mq.method;
            in.main = mq.main;
            for (const auto &h : mq.headers) {
                in.header(h.first, h.second);
            }
            for (const auto &v : mq.vary) {
                in.vary(v);
            }

            Decision d = policy.decide(in);
            Answer a = model(mp, mq);

            std::string what = "request " + std::to_string(i) + "."
                               + std::to_string(j) + " " + mq.method;
            for (const auto &h : mq.headers) {
                what += "\n  " + h.first + ": " + h.second;
            }
            for (const auto &v : mq.vary) {
                what += "\n  (response) Vary: " + v;
            }

            ASSERT_EQ(d.applies, a.applies) << what;
            ASSERT_EQ(d.preflight, a.preflight) << what;
            ASSERT_EQ(std::string(d.denied ? d.denied : ""), a.denied)
                << what;
            ASSERT_EQ(d.vary, a.vary) << what;
            ASSERT_EQ(d.allow_origin, a.allow_origin) << what;
            ASSERT_EQ(d.allow_credentials, a.allow_credentials) << what;
            ASSERT_EQ(d.allow_methods, a.allow_methods) << what;
            ASSERT_EQ(d.allow_headers, a.allow_headers) << what;
            ASSERT_EQ(d.max_age, a.max_age) << what;

            preflights += a.preflight;
            allowed += a.preflight && a.denied.empty();
            denied += !a.denied.empty();
            actual_allowed += !a.preflight && !a.allow_origin.empty();
        }
    }

    // the generator reaches every kind of answer
    EXPECT_GT(allowed, 500);
    EXPECT_GT(denied, 500);
    EXPECT_GT(actual_allowed, 500);
    EXPECT_GT(preflights, allowed + denied - 1);
}
