// "Did you mean": the edit distance and the closest of the known names.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "suggest.hpp"

using dynroute::ClosestName;
using dynroute::edit_distance;

TEST(EditDistance, CountsEachEditOnce)
{
    EXPECT_EQ(edit_distance("", ""), 0u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
    EXPECT_EQ(edit_distance("abc", ""), 3u);
    EXPECT_EQ(edit_distance("stable", "stable"), 0u);
    EXPECT_EQ(edit_distance("stabl", "stable"), 1u);       // insertion
    EXPECT_EQ(edit_distance("stables", "stable"), 1u);     // deletion
    EXPECT_EQ(edit_distance("stabke", "stable"), 1u);      // substitution
    EXPECT_EQ(edit_distance("egde", "edge"), 1u);          // transposition
    EXPECT_EQ(edit_distance("stabel", "stable"), 1u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
    EXPECT_EQ(edit_distance("ca", "abc"), 3u);    // no edit of a moved pair
    EXPECT_EQ(edit_distance("Service_A", "service_a"), 0u);
}

TEST(EditDistance, IsSymmetric)
{
    const std::vector<std::string> w = {"", "a", "ab", "ba", "abc", "acb",
                                        "edge", "egde", "service_a",
                                        "servce_a", "canary", "cnaary"};

    for (const auto &a : w) {
        for (const auto &b : w) {
            EXPECT_EQ(edit_distance(a, b), edit_distance(b, a))
                << a << " " << b;
        }
    }
}

TEST(ClosestName, SuggestsATypo)
{
    ClosestName c("servce_a");

    for (const char *n : {"u", "service_b", "service_a", "canary"}) {
        c.consider(n);
    }

    EXPECT_EQ(c.best(), "service_a");
}

TEST(ClosestName, TheClosestWinsThenTheFirst)
{
    ClosestName c("stabel");

    c.consider("stale");     // 2
    c.consider("stable");    // 1
    c.consider("stabel2");   // 1, later
    EXPECT_EQ(c.best(), "stable");

    ClosestName d("app3");

    d.consider("app1");
    d.consider("app2");
    EXPECT_EQ(d.best(), "app1");
}

TEST(ClosestName, LetterCaseAside)
{
    ClosestName c("Shop");

    c.consider("shop");
    EXPECT_EQ(c.best(), "shop");
}

TEST(ClosestName, NothingTooFar)
{
    ClosestName c("nosuch");

    for (const char *n : {"u", "edge", "nosuchupstream", "much", "nomuchxy"}) {
        c.consider(n);
    }

    EXPECT_EQ(c.best(), "");
}

TEST(ClosestName, ShortNamesNeedCloserMatches)
{
    ClosestName one("u");

    one.consider("v");       // 1 edit of 1 character: no
    EXPECT_EQ(one.best(), "");

    ClosestName two("ab");

    two.consider("ac");
    EXPECT_EQ(two.best(), "");

    ClosestName three("abc");

    three.consider("abd");   // 1 edit of 3
    EXPECT_EQ(three.best(), "abd");

    ClosestName five("abcde");

    five.consider("xbcdy");  // 2 edits of 5: no
    EXPECT_EQ(five.best(), "");

    ClosestName six("abcdef");

    six.consider("xbcdey");  // 2 edits of 6
    EXPECT_EQ(six.best(), "xbcdey");
}

TEST(ClosestName, NeverTheNameItself)
{
    ClosestName c("edge");

    c.consider("edge");
    EXPECT_EQ(c.best(), "");
    c.consider("edges");
    EXPECT_EQ(c.best(), "edges");
}

TEST(ClosestName, LongNamesAreNotCompared)
{
    const std::string a(300, 'a');
    std::string b(a);

    b[150] = 'b';

    ClosestName c(a);

    c.consider(b);
    EXPECT_EQ(c.best(), "");
}
