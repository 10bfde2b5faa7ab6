#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "host.hpp"
#include "runtime_hosts.hpp"
#include "nginx_host.hpp"

using dynroute::classify_host;
using dynroute::HostKind;
using dynroute::is_ipv4;
using dynroute::is_ipv6;
using dynroute::normalize_host;

TEST(Classify, Ipv4Literals)
{
    for (const char *h : {"10.0.0.1", "0.0.0.0", "255.255.255.255",
                          "127.0.0.1", "10.0.0.1:8080", "192.168.1.1:1",
                          "1.2.3.4:65535"}) {
        EXPECT_EQ(classify_host(h), HostKind::ipv4) << h;
    }
}

TEST(Classify, Ipv6Literals)
{
    for (const char *h : {"[::1]", "[::]", "[2001:db8::1]", "[2001:db8::1]:443",
                          "[::ffff:10.0.0.1]", "[fe80::1:2:3:4]:80",
                          "[1:2:3:4:5:6:7:8]", "[2001:DB8::A]"}) {
        EXPECT_EQ(classify_host(h), HostKind::ipv6) << h;
    }
}

TEST(Classify, NamesThatLookNumeric)
{
    for (const char *h :
         {"1password.com", "123.com", "10.0.0.1.nip.io", "10.0.0", "10.0.0.1.",
          "10.0.0.256", "010.0.0.1", "1.2.3.4.5", "0x7f.0.0.1", "127.1",
          "10.0.0.1:", "10.0.0.1:99999", "10.0.0.1:80:80", "10.0.0.1:8o",
          "[::1", "::1", "[::1]x", "[::1]:", "[1.2.3.4]", "[:::1]",
          "[1:2:3:4:5:6:7:8:9]", "[fe80::1%25eth0]", "", "localhost",
          "a.example.com", "[]", "1", "1.2.3.4 "}) {
        EXPECT_EQ(classify_host(h), HostKind::name) << h;
    }
}

// The detector must agree with inet_pton on every string, valid or not.
TEST(Classify, AgreesWithInetPton)
{
    std::mt19937 rng(12345);
    const std::string v4chars = "0123456789..";
    const std::string v6chars = "0123456789abcdefABCDEF:::.";
    unsigned char buf[16];

    for (int n = 0; n < 200000; n++) {
        bool six = n & 1;
        const std::string &alpha = six ? v6chars : v4chars;
        std::string s;
        std::size_t len = rng() % (six ? 40 : 17);
        for (std::size_t i = 0; i < len; i++) {
            s += alpha[rng() % alpha.size()];
        }
        if (six) {
            EXPECT_EQ(is_ipv6(s), inet_pton(AF_INET6, s.c_str(), buf) == 1)
                << '"' << s << '"';
        } else {
            EXPECT_EQ(is_ipv4(s), inet_pton(AF_INET, s.c_str(), buf) == 1)
                << '"' << s << '"';
        }
    }

    // Structured addresses: real ones, then each damaged in one place.
    for (int n = 0; n < 50000; n++) {
        char text[64];
        unsigned char addr[16];
        for (auto &b : addr) {
            b = static_cast<unsigned char>(rng() % 4 == 0 ? 0 : rng());
        }
        ASSERT_NE(inet_ntop(AF_INET6, addr, text, sizeof(text)), nullptr);
        std::string s = text;
        EXPECT_TRUE(is_ipv6(s)) << s;
        s[rng() % s.size()] = ":.0fg"[rng() % 5];
        EXPECT_EQ(is_ipv6(s), inet_pton(AF_INET6, s.c_str(), buf) == 1) << s;
    }
}

TEST(Normalize, AsNginxValidatesHost)
{
    char out[64];
    struct {
        const char *raw;
        const char *want;  // nullptr: nginx answers 400
    } cases[] = {
        {"Example.COM", "example.com"},
        {"example.com.", "example.com"},
        {"example.com:8080", "example.com"},
        {"example.com.:8080", "example.com"},
        {"[::1]:80", "[::1]"},
        {"[::1]", "[::1]"},
        {"10.0.0.1:80", "10.0.0.1"},
        {".example.com", ".example.com"},
        {"a..b", nullptr},
        {"", nullptr},
        {".", nullptr},
        {":80", nullptr},
        {"a/b", nullptr},
        {"a b", nullptr},
        {"a\tb", nullptr},
        {"a\x7f", nullptr},
        {"caf\xc3\xa9.fr", "caf\xc3\xa9.fr"},
        // Found by fuzzing, and what ngx_http_validate_host() does too: a
        // dot is dropped only when it is the last dot of the whole header,
        // so one before a port with a dot in it stays (the table ignores it).
        {"a.:80.1", "a."},
        {".:.", "."},
        {"a.:80", "a"},
    };

    for (const auto &c : cases) {
        auto r = normalize_host(c.raw, out);
        if (c.want == nullptr) {
            EXPECT_FALSE(r.has_value()) << c.raw;
        } else {
            ASSERT_TRUE(r.has_value()) << c.raw;
            EXPECT_EQ(*r, c.want) << c.raw;
        }
    }
}

// dynroute_table NAME key=$variable: what a key's value is as a host name.

TEST(Key, ClassifiesValues)
{
    using dynroute::classify_key;
    using dynroute::KeyValue;

    EXPECT_EQ(classify_key("acme"), KeyValue::name);
    EXPECT_EQ(classify_key("Acme.Example.COM."), KeyValue::name);
    EXPECT_EQ(classify_key("10.0.0.1"), KeyValue::name);
    EXPECT_EQ(classify_key("t\xc3\xa9nant"), KeyValue::name);
    EXPECT_EQ(classify_key("a:b_c-d~"), KeyValue::name);

    EXPECT_EQ(classify_key(""), KeyValue::empty);
    EXPECT_EQ(classify_key("."), KeyValue::empty);
    EXPECT_EQ(classify_key("a.."), KeyValue::name);

    EXPECT_EQ(classify_key("a b"), KeyValue::odd);
    EXPECT_EQ(classify_key("a/b"), KeyValue::odd);
    EXPECT_EQ(classify_key("/"), KeyValue::odd);
    EXPECT_EQ(classify_key("a\tb"), KeyValue::odd);
    EXPECT_EQ(classify_key(std::string_view("a\0b", 3)), KeyValue::odd);
    EXPECT_EQ(classify_key("a\x7f"), KeyValue::odd);
    EXPECT_EQ(classify_key("a\x1f"), KeyValue::odd);

    EXPECT_EQ(classify_key(std::string(255, 'a')), KeyValue::name);
    EXPECT_EQ(classify_key(std::string(254, 'a') + "."), KeyValue::name);
    EXPECT_EQ(classify_key(std::string(256, 'a')), KeyValue::too_long);
    EXPECT_EQ(classify_key(std::string(255, 'a') + "."), KeyValue::too_long);
}

TEST(Key, FoldsAsRuntimeHostsAreStored)
{
    char buf[dynroute::max_key];
    std::string out, why;

    EXPECT_EQ(dynroute::fold_key("Acme.Example.COM.", buf), "acme.example.com");
    EXPECT_EQ(dynroute::fold_key("acme", buf), "acme");
    EXPECT_EQ(dynroute::fold_key("T\xc3\x89", buf), "t\xc3\x89");

    // the longest name fills the buffer exactly
    std::string longest(255, 'A');
    EXPECT_EQ(dynroute::fold_key(longest, buf), std::string(255, 'a'));
    EXPECT_EQ(dynroute::fold_key(std::string(254, 'B') + ".", buf),
              std::string(254, 'b'));

    // the same form as a runtime host's name
    for (const char *v : {"Tenant-1", "ACME.", "a_b.C"}) {
        ASSERT_TRUE(dynroute::normalize_host(v, out, why)) << v << ": " << why;
        EXPECT_EQ(dynroute::fold_key(v, buf), out) << v;
    }
}
