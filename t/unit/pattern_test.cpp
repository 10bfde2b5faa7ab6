#include <gtest/gtest.h>

#include "table.hpp"

using dynroute::ConfigError;
using dynroute::parse_pattern;
using dynroute::PatternKind;

TEST(Pattern, Forms)
{
    struct {
        const char *text;
        PatternKind kind;
        const char *key;
        bool caseless;
    } cases[] = {
        {"a.example.com", PatternKind::exact, "a.example.com", false},
        {"A.Example.COM", PatternKind::exact, "a.example.com", false},
        {"*.example.com", PatternKind::star, "example.com", false},
        {".example.com", PatternKind::dot, "example.com", false},
        {"www.example.*", PatternKind::tail, "www.example", false},
        {"~^a", PatternKind::regex, "^a", false},
        {"~*^A", PatternKind::regex, "^A", true},
        {"~", PatternKind::regex, "", false},
        {"\\default", PatternKind::exact, "default", false},
        {"\\ip", PatternKind::exact, "ip", false},
        {"\\~tilde", PatternKind::exact, "~tilde", false},
        {"\\*.example.com", PatternKind::star, "example.com", false},
        {"[::1]", PatternKind::exact, "[::1]", false},
        {"10.0.0.1", PatternKind::exact, "10.0.0.1", false},
        {".*", PatternKind::dot, "*", false},
        {"a.*", PatternKind::tail, "a", false},
        {"localhost", PatternKind::exact, "localhost", false},
    };

    for (const auto &c : cases) {
        auto p = parse_pattern(c.text);
        EXPECT_EQ(p.kind, c.kind) << c.text;
        EXPECT_EQ(p.key, c.key) << c.text;
        EXPECT_EQ(p.caseless, c.caseless) << c.text;
    }
}

TEST(Pattern, RejectedAsNginxDoes)
{
    for (const char *t : {"*.exa*mple.com", "a..b", "*", "**", "*.", "*.*",
                          "exa*mple.com", "www.*.com", "*example.com",
                          "example*", "..example.com", "a.b..*"}) {
        try {
            parse_pattern(t);
            ADD_FAILURE() << t << " was accepted";
        } catch (const ConfigError &e) {
            EXPECT_EQ(std::string(e.what()),
                      std::string("invalid hostname or wildcard \"") + t + "\"");
        }
    }
}

TEST(Pattern, RejectedBecauseTheyCouldNeverMatch)
{
    EXPECT_THROW(parse_pattern(""), ConfigError);
    EXPECT_THROW(parse_pattern("\\"), ConfigError);
    EXPECT_THROW(parse_pattern("example.com."), ConfigError);
    EXPECT_THROW(parse_pattern("."), ConfigError);
    EXPECT_THROW(parse_pattern(".example.com."), ConfigError);
    EXPECT_THROW(parse_pattern("example.com:8080"), ConfigError);
    EXPECT_THROW(parse_pattern("a/b"), ConfigError);
    EXPECT_THROW(parse_pattern("a b"), ConfigError);

    try {
        parse_pattern("example.com.");
    } catch (const ConfigError &e) {
        EXPECT_STREQ(e.what(), "invalid hostname \"example.com.\": hosts are "
                               "matched without the trailing dot");
    }
}
