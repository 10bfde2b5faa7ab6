// The runtime API's browser checks: Host names (DNS rebinding), Origin
// (cross-site pages) and the JSON media type of writes.
#include <gtest/gtest.h>

#include "api_access.hpp"

using dynroute::ApiAccess;
using dynroute::ConfigError;

TEST(ApiAccess, IpAddressesLocalhostAndNoHostAreAllowed)
{
    ApiAccess a;

    for (const char *h : {"", "localhost", "127.0.0.1", "10.1.2.3", "[::1]",
                          "[2001:db8::1]"}) {
        EXPECT_TRUE(a.host_allowed(h)) << h;
    }
}

TEST(ApiAccess, OtherNamesOnlyWhenListed)
{
    ApiAccess a;

    EXPECT_FALSE(a.host_allowed("rebind.attacker.example"));
    EXPECT_FALSE(a.host_allowed("localhost.attacker.example"));
    EXPECT_FALSE(a.host_allowed("127.0.0.1.nip.io"));

    a.add_host("Edge1.Example.COM");
    EXPECT_TRUE(a.host_allowed("edge1.example.com"));
    EXPECT_FALSE(a.host_allowed("edge1.example.com.attacker.example"));
    EXPECT_FALSE(a.host_allowed("xedge1.example.com"));
    EXPECT_FALSE(a.host_allowed("edge1.example.co"));
}

TEST(ApiAccess, HostNamesAreChecked)
{
    ApiAccess a;

    for (const char *bad : {"", "*.example.com", ".example.com", "a b",
                            "a..b", "example.com.", "a/b", "a:80"}) {
        EXPECT_THROW(a.add_host(bad), ConfigError) << bad;
    }
}

TEST(ApiAccess, OwnOriginIsAllowed)
{
    ApiAccess a;

    EXPECT_TRUE(a.origin_allowed("http://127.0.0.1:8080", "http",
                                 "127.0.0.1:8080"));
    EXPECT_TRUE(a.origin_allowed("HTTP://LocalHost", "http", "localhost"));
    EXPECT_TRUE(a.origin_allowed("https://[::1]:8443", "https",
                                 "[::1]:8443"));

    // another port, scheme or name is another origin
    EXPECT_FALSE(a.origin_allowed("http://127.0.0.1:8081", "http",
                                  "127.0.0.1:8080"));
    EXPECT_FALSE(a.origin_allowed("https://127.0.0.1:8080", "http",
                                  "127.0.0.1:8080"));
    EXPECT_FALSE(a.origin_allowed("http://evil.example", "http",
                                  "127.0.0.1"));
    EXPECT_FALSE(a.origin_allowed("http://127.0.0.1", "http", ""));
    EXPECT_FALSE(a.origin_allowed("null", "http", "127.0.0.1"));
    EXPECT_FALSE(a.origin_allowed("http://127.0.0.1:8080.evil", "http",
                                  "127.0.0.1:8080"));
    // the scheme's default port, written in one and not the other
    EXPECT_TRUE(a.origin_allowed("http://localhost:80", "http", "localhost"));
    EXPECT_TRUE(a.origin_allowed("https://localhost", "https",
                                 "localhost:443"));
    EXPECT_FALSE(a.origin_allowed("https://localhost", "https",
                                  "localhost:8443"));
}

TEST(ApiAccess, ListedOrigins)
{
    ApiAccess a;

    a.add_origin("https://Ops.Example.com");
    a.add_origin("http://[::1]:9000");
    a.add_origin("http://10.0.0.5:8080");

    EXPECT_TRUE(a.origin_allowed("https://ops.example.com", "http",
                                 "127.0.0.1"));
    EXPECT_TRUE(a.origin_allowed("http://[::1]:9000", "http", "127.0.0.1"));
    EXPECT_TRUE(a.origin_allowed("http://10.0.0.5:8080", "http",
                                 "127.0.0.1"));
    EXPECT_FALSE(a.origin_allowed("http://ops.example.com", "http",
                                  "127.0.0.1"));
    EXPECT_FALSE(a.origin_allowed("https://ops.example.com:444", "http",
                                  "127.0.0.1"));
    EXPECT_FALSE(a.origin_allowed("https://ops.example.com.evil", "http",
                                  "127.0.0.1"));

    for (const char *bad : {"*", "null", "ops.example.com", "https://",
                            "https://a/", "https://a:", "https://a:x",
                            "https://a:123456", "https://[::1", "https://[x]",
                            "https://a b"}) {
        EXPECT_THROW(a.add_origin(bad), ConfigError) << bad;
    }

    // the default port, written or not, is the same origin
    EXPECT_TRUE(a.origin_allowed("http://10.0.0.5:8080", "https", "x"));
    ApiAccess b;
    b.add_origin("https://ops.example.com:443");
    EXPECT_TRUE(b.origin_allowed("https://ops.example.com", "http", "x"));
}

TEST(ApiAccess, JsonMediaType)
{
    for (const char *ok : {"application/json", "Application/JSON",
                           "application/json; charset=utf-8",
                           "application/json;charset=UTF-8"}) {
        EXPECT_TRUE(dynroute::is_json_media_type(ok)) << ok;
    }

    for (const char *bad : {"", "application/x-www-form-urlencoded",
                            "text/plain", "multipart/form-data",
                            "application/jsonp", "application/json-patch+json",
                            "text/plain; application/json"}) {
        EXPECT_FALSE(dynroute::is_json_media_type(bad)) << bad;
    }
}
