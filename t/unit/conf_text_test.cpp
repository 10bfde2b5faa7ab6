// The line of each parameter of a directive, read as nginx reads it.
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "conf_text.hpp"

using dynroute::directive_lines;

using Lines = std::vector<std::size_t>;

TEST(DirectiveLines, OneLine)
{
    EXPECT_EQ(directive_lines("\n    a.example.com  u;", 4), (Lines{5, 5}));
    EXPECT_EQ(directive_lines("a;", 7), (Lines{7}));
    EXPECT_EQ(directive_lines(" a b c ;", 1), (Lines{1, 1, 1}));
}

TEST(DirectiveLines, AMissingSemicolonSpansLines)
{
    EXPECT_EQ(directive_lines("\n    a.example.com  u\n    b.example.com  u;",
                              4),
              (Lines{5, 5, 6, 6}));
    EXPECT_EQ(directive_lines("\r\n  a u\r\n\r\n  b u;", 1),
              (Lines{2, 2, 4, 4}));
}

TEST(DirectiveLines, CommentsAreSkipped)
{
    EXPECT_EQ(directive_lines("\n# a x;\n  a u  # b;\n  b u;", 1),
              (Lines{3, 3, 4, 4}));
    // a "#" inside a token is part of it
    EXPECT_EQ(directive_lines(" a#b u;", 1), (Lines{1, 1}));
}

TEST(DirectiveLines, QuotesAndEscapes)
{
    EXPECT_EQ(directive_lines(" \"a\nb\" u\n c;", 1), (Lines{1, 2, 3}));
    EXPECT_EQ(directive_lines(" 'a;b' \"c\\\"d\" e;", 1), (Lines{1, 1, 1}));
    EXPECT_EQ(directive_lines(" a\\;b\\\n c;", 1), (Lines{1, 2}));
    EXPECT_EQ(directive_lines(" ~^(?<x>a)${y}\n u;", 1), (Lines{1, 2}));
    EXPECT_EQ(directive_lines(" a}b u;", 1), (Lines{1, 1}));
}

TEST(DirectiveLines, NotOneDirective)
{
    for (const char *t : {"", ";", "  ;", "a u", "a; b;", "a u; ", "a { b;",
                          "} a;", "\"a u;", "\"a\"b;", "# a;"}) {
        EXPECT_EQ(directive_lines(t, 1), Lines{}) << t;
    }
}
