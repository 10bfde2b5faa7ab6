#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <string>
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
