// Server addresses as the API and etcd give them: every accepted form, its
// canonical name and native bytes, and every refusal with its reason.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "address.hpp"

using namespace dynroute;

namespace {

std::string refusal(const std::string &text)
{
    try {
        parse_address(text);
    } catch (const ApiError &e) {
        EXPECT_EQ(e.status, 400) << text;
        return e.what();
    }
    ADD_FAILURE() << "accepted " << text;
    return "";
}

bool has(const std::string &s, const std::string &part)
{
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST(Address, IPv4)
{
    ServerAddress a = parse_address("10.0.0.5:8080");
    EXPECT_EQ(a.name, "10.0.0.5:8080");
    ASSERT_EQ(a.socklen(), sizeof(sockaddr_in));

    sockaddr_in sin;
    std::memcpy(&sin, a.sockaddr.data(), sizeof sin);
    EXPECT_EQ(sin.sin_family, AF_INET);
    EXPECT_EQ(ntohs(sin.sin_port), 8080);
    EXPECT_EQ(ntohl(sin.sin_addr.s_addr), 0x0a000005u);

    // no port is 80, as on a server line; a port's leading zeros go
    EXPECT_EQ(parse_address("10.0.0.5").name, "10.0.0.5:80");
    EXPECT_EQ(parse_address("10.0.0.5:080").name, "10.0.0.5:80");
    EXPECT_EQ(parse_address("10.0.0.5:65535").name, "10.0.0.5:65535");
    EXPECT_EQ(parse_address("10.0.0.5").sockaddr,
              parse_address("10.0.0.5:80").sockaddr);
}

TEST(Address, IPv6IsCanonical)
{
    ServerAddress a = parse_address("[2001:DB8:0:0::5]:8080");
    EXPECT_EQ(a.name, "[2001:db8::5]:8080");
    ASSERT_EQ(a.socklen(), sizeof(sockaddr_in6));

    sockaddr_in6 sin6;
    std::memcpy(&sin6, a.sockaddr.data(), sizeof sin6);
    EXPECT_EQ(sin6.sin6_family, AF_INET6);
    EXPECT_EQ(ntohs(sin6.sin6_port), 8080);
    EXPECT_EQ(sin6.sin6_addr.s6_addr[15], 5);

    EXPECT_EQ(parse_address("[0:0::1]:80").name, "[::1]:80");
    EXPECT_EQ(parse_address("[::1]").name, "[::1]:80");
    EXPECT_EQ(parse_address("[0:0::1]:80").sockaddr,
              parse_address("[::1]").sockaddr);
    EXPECT_EQ(parse_address("[::ffff:10.0.0.5]:81").name, "[::ffff:10.0.0.5]:81");
}

TEST(Address, Unix)
{
    ServerAddress a = parse_address("unix:/run/app.sock");
    EXPECT_EQ(a.name, "unix:/run/app.sock");
    // nginx's socklen for a unix: server
    ASSERT_EQ(a.socklen(), sizeof(sockaddr_un));

    sockaddr_un sun;
    std::memcpy(&sun, a.sockaddr.data(), sizeof sun);
    EXPECT_EQ(sun.sun_family, AF_UNIX);
    EXPECT_STREQ(sun.sun_path, "/run/app.sock");

    // the longest path sun_path holds with its NUL, and one byte more
    std::string longest = "/" + std::string(sizeof sun.sun_path - 2, 'a');
    EXPECT_EQ(parse_address("unix:" + longest).name.size(), max_address_name);
    EXPECT_TRUE(has(refusal("unix:" + longest + "a"), "longer than 107 bytes"));
    EXPECT_TRUE(has(refusal("unix:"), "unix: without a path"));
    EXPECT_TRUE(has(refusal("unix:run/app.sock"), "must be absolute"));
}

// the design's "Bad input" table, and more
TEST(Address, RefusalsSayWhyAndWhatIsAccepted)
{
    std::string forms = "give a.b.c.d[:port], [IPv6][:port] or unix:/path "
                        "(no port is 80, as on a server line)";

    std::string e = refusal("10.0.0.300:80");
    EXPECT_EQ(e, "bad server address \"10.0.0.300:80\": \"10.0.0.300\" is "
                 "not an IPv4 address; " + forms);
    EXPECT_EQ(refusal("host.example:80"),
              "bad server address \"host.example:80\": host names are not "
              "resolved at run time (no DNS); " + forms);
    EXPECT_TRUE(has(refusal("localhost"), "no DNS"));
    EXPECT_TRUE(has(refusal("[::1:80"), "no \"]\" after the IPv6 address"));
    EXPECT_TRUE(has(refusal("[::1:80"), forms));
    EXPECT_TRUE(has(refusal("::1"), "an IPv6 address goes in brackets"));
    EXPECT_TRUE(has(refusal("[::g]:80"), "\"::g\" is not an IPv6 address"));
    EXPECT_TRUE(has(refusal("[fe80::1%eth0]:80"), "is not an IPv6 address"));
    EXPECT_TRUE(has(refusal("[10.0.0.5]:80"), "is not an IPv6 address"));
    EXPECT_TRUE(has(refusal("[::1]80"), "not \":port\""));
    EXPECT_TRUE(has(refusal("[::1]:"), "not \":port\""));
    EXPECT_TRUE(has(refusal("10.0.0.5:"), "not \":port\""));
    EXPECT_TRUE(has(refusal("10.0.0.5:http"), "the port \"http\" is not a number"));
    EXPECT_TRUE(has(refusal("10.0.0.5:+80"), "is not a number"));
    EXPECT_TRUE(has(refusal(""), "it is empty"));
    EXPECT_TRUE(has(refusal("010.0.0.5"), "is not an IPv4 address"));
    EXPECT_TRUE(has(refusal("10.0.0.5 "), "is not an IPv4 address"));
    EXPECT_EQ(refusal(std::string("10.0.0.5\0:80", 12)),
              "bad server address \"10.0.0.5\\x00:80\": it holds a control "
              "character; " + forms);
    EXPECT_TRUE(has(refusal(std::string(1000, '1')), "longer than any address"));
}

TEST(Address, PortsOutsideTheirRange)
{
    for (const char *bad : {"10.0.0.5:0", "10.0.0.5:65536", "[::1]:0",
                            "[::1]:99999999999999999999", "10.0.0.5:00"}) {
        std::string e = refusal(bad);
        EXPECT_TRUE(has(e, "is not from 1 to 65535")) << e;
        EXPECT_TRUE(has(e, bad)) << e;
    }
    EXPECT_EQ(refusal("10.0.0.5:0"),
              "the port \"0\" of server address \"10.0.0.5:0\" is not from 1 "
              "to 65535");
}
