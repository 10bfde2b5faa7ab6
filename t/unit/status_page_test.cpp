// The status page is a static string: check that it is an HTML document
// that loads nothing from elsewhere and polls stats.  What it shows is
// tested in a browser (t/browser/status.t).
#include <gtest/gtest.h>

#include <string_view>

#include "status_page.hpp"

namespace {

bool contains(std::string_view page, std::string_view what)
{
    return page.find(what) != std::string_view::npos;
}

TEST(StatusPage, IsAnHtmlDocument)
{
    std::string_view page = dynroute::status_page();
    ASSERT_FALSE(page.empty());
    EXPECT_EQ(page.substr(0, 15), "<!DOCTYPE html>");
    EXPECT_TRUE(contains(page, "</html>"));
}

TEST(StatusPage, LoadsNothingFromElsewhere)
{
    std::string_view page = dynroute::status_page();
    EXPECT_FALSE(contains(page, "http://"));
    EXPECT_FALSE(contains(page, "https://"));
    EXPECT_FALSE(contains(page, "<script src"));
    EXPECT_FALSE(contains(page, "innerHTML"));
}

TEST(StatusPage, FetchesStatsNextToItself)
{
    std::string_view page = dynroute::status_page();
    EXPECT_TRUE(contains(page, "fetch(new URL('stats', location.href)"));
}

// The groups' servers: a section for each of stats' groups, and a server
// removed and added again restarts its own series only (t/browser/status.t
// checks what they show).
TEST(StatusPage, ShowsTheGroups)
{
    std::string_view page = dynroute::status_page();
    EXPECT_TRUE(contains(page, "<div id=\"groups\"></div>"));
    EXPECT_TRUE(contains(page, "(s.groups || []).map((g) => group(g, span, s.time))"));
    EXPECT_TRUE(contains(page, "renewed.add(series(k))"));
}

// stream{}'s tables and rollouts: sections of their own, from stats'
// "stream" (t/browser/status.t checks what they show).
TEST(StatusPage, ShowsTheStreamTables)
{
    std::string_view page = dynroute::status_page();
    EXPECT_TRUE(contains(page, "<div id=\"stream\"></div>"));
    EXPECT_TRUE(contains(page, "stream(s.stream || {}, span)"));
    EXPECT_TRUE(contains(page, "const FAILED = ['500', '502', '503'];"));
}

}  // namespace
