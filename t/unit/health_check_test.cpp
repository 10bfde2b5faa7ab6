// Active health checks: the parameters, the judgement of a response fed
// in pieces, the health word's steps and slow start's ramp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "balance.hpp"
#include "health_check.hpp"
#include "metrics.hpp"
#include "text.hpp"

using namespace dynroute;
using health::Judge;
using health::Params;

namespace {

Params parse(std::vector<std::string_view> args)
{
    return health::parse(args);
}

std::string error(std::vector<std::string_view> args)
{
    try {
        health::parse(args);
    } catch (const ConfigError &e) {
        return e.what();
    }
    return "";
}

// the response fed in pieces of n bytes, then the close if still undecided
Judge::Verdict judge(const Params &p, const std::string &r, std::size_t n,
                     bool close = true)
{
    Judge j(p);
    for (std::size_t i = 0; i < r.size(); i += n) {
        std::size_t len = std::min(n, r.size() - i);
        if (j.feed(r.data() + i, len) != Judge::Verdict::more) {
            return j.verdict();
        }
    }
    return close ? j.end() : j.verdict();
}

}  // namespace

TEST(HealthParams, Defaults)
{
    Params p = parse({});
    EXPECT_EQ(p.interval_ms, 5000u);
    EXPECT_EQ(p.timeout_ms, 5000u);
    EXPECT_EQ(p.fails, 1u);
    EXPECT_EQ(p.passes, 1u);
    EXPECT_EQ(p.uri, "/");
    EXPECT_TRUE(p.status_ok(200));
    EXPECT_TRUE(p.status_ok(399));
    EXPECT_FALSE(p.status_ok(400));
    EXPECT_FALSE(p.status_ok(199));
    EXPECT_EQ(p.body, "");
    EXPECT_EQ(p.port, 0u);
    EXPECT_EQ(p.slow_start_ms, 0u);
}

TEST(HealthParams, All)
{
    Params p = parse({"interval=1s", "timeout=500ms", "fails=2", "passes=3",
                      "uri=/healthz?x=1", "status=200,204,301-302",
                      "body=ok", "port=8081", "slow_start=30s"});
    EXPECT_EQ(p.interval_ms, 1000u);
    EXPECT_EQ(p.timeout_ms, 500u);
    EXPECT_EQ(p.fails, 2u);
    EXPECT_EQ(p.passes, 3u);
    EXPECT_EQ(p.uri, "/healthz?x=1");
    EXPECT_TRUE(p.status_ok(200));
    EXPECT_TRUE(p.status_ok(204));
    EXPECT_TRUE(p.status_ok(301));
    EXPECT_TRUE(p.status_ok(302));
    EXPECT_FALSE(p.status_ok(201));
    EXPECT_FALSE(p.status_ok(303));
    EXPECT_EQ(p.body, "ok");
    EXPECT_EQ(p.port, 8081u);
    EXPECT_EQ(p.slow_start_ms, 30000u);

    EXPECT_EQ(parse({"interval=2m"}).timeout_ms, 120000u);
    EXPECT_EQ(parse({"interval=1h"}).interval_ms, 3600000u);
    EXPECT_EQ(parse({"interval=3"}).interval_ms, 3000u);
}

TEST(HealthParams, Errors)
{
    EXPECT_EQ(error({"interval=50ms"}),
              "invalid parameter \"interval=50ms\": a time from 100ms to 1h, "
              "such as interval=5s");
    EXPECT_NE(error({"interval=2h"}), "");
    EXPECT_NE(error({"interval=1x"}), "");
    EXPECT_NE(error({"interval="}), "");
    EXPECT_EQ(error({"interval=1s", "timeout=2s"}),
              "timeout=2000ms is longer than interval=1000ms: a probe must "
              "end before the next one; write a shorter timeout= or a longer "
              "interval=");
    EXPECT_NE(error({"timeout=5ms"}), "");
    EXPECT_EQ(error({"fails=0"}),
              "invalid parameter \"fails=0\": a number of probes in a row "
              "from 1 to 100, such as fails=2");
    EXPECT_NE(error({"passes=101"}), "");
    EXPECT_NE(error({"passes=-1"}), "");
    EXPECT_EQ(error({"uri=healthz"}),
              "invalid parameter \"uri=healthz\": a path that starts with "
              "\"/\", such as uri=/healthz");
    EXPECT_NE(error({"uri=/a\tb"}), "");
    EXPECT_NE(error({"uri=/a\x7f"}), "");
    EXPECT_NE(error({"uri="}), "");
    EXPECT_NE(error({"status=99"}), "");
    EXPECT_NE(error({"status=600"}), "");
    EXPECT_NE(error({"status=300-200"}), "");
    EXPECT_NE(error({"status=200,"}), "");
    EXPECT_NE(error({"status=2xx"}), "");
    EXPECT_NE(error({"body="}), "");
    EXPECT_NE(error({"body=" + std::string(257, 'a')}), "");
    EXPECT_NE(error({"port=0"}), "");
    EXPECT_NE(error({"port=65536"}), "");
    EXPECT_NE(error({"slow_start=2h"}), "");
    EXPECT_EQ(error({"fails=1", "fails=2"}),
              "parameter \"fails=\" is given twice: keep one");
    EXPECT_EQ(error({"max=1"}),
              "invalid parameter \"max=1\": expected interval=, timeout=, "
              "fails=, passes=, uri=, status=, body=, port= or slow_start=");
    EXPECT_NE(error({"interval"}), "");
}

TEST(HealthJudge, StatusInPieces)
{
    Params p = parse({});
    const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    for (std::size_t n = 1; n <= ok.size(); n++) {
        EXPECT_EQ(judge(p, ok, n), Judge::Verdict::pass) << n;
    }

    EXPECT_EQ(judge(p, "HTTP/1.0 503 Busy\r\n\r\n", 3), Judge::Verdict::fail);
    EXPECT_EQ(judge(p, "HTTP/1.0 302\n\n", 3), Judge::Verdict::pass);
    EXPECT_EQ(judge(p, "HTTP/1.0 399 X\r\n", 1), Judge::Verdict::pass);

    Judge j(p);
    j.feed("HTTP/1.1 404 Not", 16);
    EXPECT_EQ(j.verdict(), Judge::Verdict::more);
    j.feed(" Found\r\n", 8);
    EXPECT_EQ(j.verdict(), Judge::Verdict::fail);
    EXPECT_EQ(j.status(), 404u);
    EXPECT_STREQ(j.why(), "the status is not in the list");
}

TEST(HealthJudge, Garbage)
{
    Params p = parse({});
    for (const char *r : {"garbage\r\n", "HTTP/1.1 2000 OK\r\n",
                          "HTTP/1.1 20 OK\r\n", "HTTP/x.1 200 OK\r\n",
                          "HTTP/1.1 200OK\r\n", "HTTP/1.1 099 X\r\n",
                          "SSH-2.0-OpenSSH\r\n", "\r\n", "HTTP/1.1 abc\r\n"}) {
        EXPECT_EQ(judge(p, r, 1), Judge::Verdict::fail) << r;
        EXPECT_EQ(judge(p, r, 100), Judge::Verdict::fail) << r;
    }

    // closed early, or never a newline
    EXPECT_EQ(judge(p, "", 1), Judge::Verdict::fail);
    EXPECT_EQ(judge(p, "HTTP/1.1 200", 1), Judge::Verdict::fail)
        << "a status line without its end";
    EXPECT_EQ(judge(p, "HTTP/1.1 2", 1), Judge::Verdict::fail);
    EXPECT_EQ(judge(p, std::string(5000, 'x'), 7, false),
              Judge::Verdict::fail);

    // binary
    std::string bin(64, '\0');
    EXPECT_EQ(judge(p, bin + "\n", 5), Judge::Verdict::fail);
}

TEST(HealthJudge, Body)
{
    Params p = parse({"body=all good"});
    std::string head = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";

    for (std::size_t n : {1, 2, 5, 13, 4096}) {
        EXPECT_EQ(judge(p, head + "status: all good\n", n),
                  Judge::Verdict::pass) << n;
        EXPECT_EQ(judge(p, head + "status: all bad\n", n),
                  Judge::Verdict::fail) << n;
        // the text across the 4 KiB limit, and after it
        std::string pad(4096 - 4, 'x');
        EXPECT_EQ(judge(p, head + pad + "all good", n), Judge::Verdict::fail)
            << n;
        std::string pad2(4096 - 8, 'x');
        EXPECT_EQ(judge(p, head + pad2 + "all good", n), Judge::Verdict::pass)
            << n;
        // the text in the headers is not the body's
        EXPECT_EQ(judge(p, "HTTP/1.1 200 OK\r\nX: all good\r\n\r\nno", n),
                  Judge::Verdict::fail) << n;
        // LF only
        EXPECT_EQ(judge(p, "HTTP/1.1 200 OK\nX: y\n\nall good", n),
                  Judge::Verdict::pass) << n;
    }

    // a bad status fails before the body is read
    EXPECT_EQ(judge(p, "HTTP/1.1 500 X\r\n\r\nall good", 1),
              Judge::Verdict::fail);

    // headers without end
    std::string endless = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 2000; i++) {
        endless += "X-A: bbbbbbbbbbbbbb\r\n";
    }
    Judge j(p);
    EXPECT_EQ(j.feed(endless.data(), endless.size()), Judge::Verdict::fail);
    EXPECT_STREQ(j.why(), "the headers are too long");

    Judge k(p);
    std::string cut = head + "all go";
    k.feed(cut.data(), cut.size());
    EXPECT_EQ(k.end(), Judge::Verdict::fail);
}

TEST(HealthState, Steps)
{
    using health::State;
    health::Health h;

    // fails=2 passes=3
    auto s = health::step(h, false, 2, 3, 1000);
    EXPECT_EQ(s.next.state, State::unknown);
    EXPECT_EQ(s.next.count, 1u);
    EXPECT_EQ(s.next.last_probe_ms, 1000u);
    s = health::step(s.next, false, 2, 3, 2000);
    EXPECT_EQ(s.next.state, State::down);
    EXPECT_TRUE(s.changed);
    EXPECT_FALSE(s.came_up);

    // two passes, a fail: the count starts again
    s = health::step(s.next, true, 2, 3, 3000);
    s = health::step(s.next, true, 2, 3, 4000);
    EXPECT_EQ(s.next.state, State::down);
    EXPECT_EQ(s.next.count, 2u);
    s = health::step(s.next, false, 2, 3, 5000);
    EXPECT_EQ(s.next.count, 1u);
    EXPECT_EQ(s.next.state, State::down);
    for (int i = 0; i < 2; i++) {
        s = health::step(s.next, true, 2, 3, 6000 + i);
        EXPECT_EQ(s.next.state, State::down);
    }
    s = health::step(s.next, true, 2, 3, 9000);
    EXPECT_EQ(s.next.state, State::up);
    EXPECT_TRUE(s.came_up);

    // a single fail does not take it down; unknown -> up is no comeback
    s = health::step(s.next, false, 2, 3, 10000);
    EXPECT_EQ(s.next.state, State::up);
    s = health::step(health::Health(), true, 1, 1, 1);
    EXPECT_EQ(s.next.state, State::up);
    EXPECT_FALSE(s.came_up);

    // the count stops at 255
    health::Health many;
    for (int i = 0; i < 300; i++) {
        many = health::step(many, true, 1, 1, 1).next;
    }
    EXPECT_EQ(many.count, 255u);
}

TEST(HealthState, Pack)
{
    health::Health h;
    h.state = health::State::down;
    h.last_passed = true;
    h.count = 7;
    h.last_probe_ms = 1796640000123;
    auto w = health::pack(h);
    auto u = health::unpack(w);
    EXPECT_EQ(u.state, h.state);
    EXPECT_EQ(u.last_passed, true);
    EXPECT_EQ(u.count, 7u);
    EXPECT_EQ(u.last_probe_ms, h.last_probe_ms);
    EXPECT_TRUE(health::down(w));
    h.state = health::State::up;
    EXPECT_FALSE(health::down(health::pack(h)));
    EXPECT_FALSE(health::down(0));
    EXPECT_EQ(health::unpack(3).state, health::State::unknown);
}

TEST(HealthSlowStart, Ramp)
{
    using health::ramp;
    using health::scale;
    EXPECT_EQ(ramp(1, 0, 5000, 10000), scale);       // never down
    EXPECT_EQ(ramp(1, 1000, 1000, 10000), 1);        // just up: at least 1
    EXPECT_EQ(ramp(1, 1000, 6000, 10000), scale / 2);
    EXPECT_EQ(ramp(4, 1000, 3500, 10000), 4 * scale / 4);
    EXPECT_EQ(ramp(3, 1000, 11000, 10000), 3 * scale);
    EXPECT_EQ(ramp(3, 5000, 1000, 10000), 3 * scale);  // clock went back
    EXPECT_EQ(ramp(0, 1000, 2000, 10000), 0);
}

// the pick skips an unhealthy server as a down one; with slow start, a
// server back up gets a share that grows with time, and the others' picks
// are those of the round robin without it
TEST(HealthBalance, SkipAndRamp)
{
    std::uint64_t cells[3][metrics::server_width] = {};
    std::vector<balance::Entry> e(3);
    for (int i = 0; i < 3; i++) {
        e[i].weight = e[i].effective_weight = 1;
        e[i].cell = cells[i];
    }
    balance::List<balance::Entry> list{e.data(), 3, 0};
    list.tries = 3;

    health::Health down;
    down.state = health::State::down;
    cells[1][metrics::s_health] = health::pack(down);

    std::uintptr_t tried = 0;
    int counts[3] = {};
    for (int i = 0; i < 300; i++) {
        balance::Try t;
        tried = 0;
        t.tried = &tried;
        auto *p = balance::get(list, t, 100);
        ASSERT_NE(p, nullptr);
        counts[p - e.data()]++;
    }
    EXPECT_EQ(counts[0], 150);
    EXPECT_EQ(counts[1], 0);
    EXPECT_EQ(counts[2], 150);

    // all down: none
    for (auto &c : cells) {
        c[metrics::s_health] = health::pack(down);
    }
    balance::Try t;
    tried = 0;
    t.tried = &tried;
    EXPECT_EQ(balance::get(list, t, 100), nullptr);

    // server 1 back up at 10 s, slow start 10 s: about a tenth of a share
    // at 11 s, half at 15 s, a full one at 20 s
    for (auto &c : cells) {
        c[metrics::s_health] = 0;
    }
    cells[1][metrics::s_up_since_ms] = 10000;
    list.slow_start_ms = 10000;
    for (auto [now_ms, lo, hi] : {std::tuple{11000, 5, 20},
                                  std::tuple{15000, 50, 70},
                                  std::tuple{20000, 95, 105}}) {
        int c[3] = {};
        for (int i = 0; i < 300; i++) {
            balance::Try t2;
            tried = 0;
            t2.tried = &tried;
            auto *p = balance::get(list, t2, 100, now_ms);
            ASSERT_NE(p, nullptr);
            c[p - e.data()]++;
        }
        EXPECT_GE(c[1], lo) << now_ms;
        EXPECT_LE(c[1], hi) << now_ms;
        EXPECT_NEAR(c[0], c[2], 2) << now_ms;
    }
}

TEST(HealthMetrics, State)
{
    health::Health h;
    h.state = health::State::down;
    auto w = health::pack(h);
    using metrics::ServerState;
    EXPECT_EQ(metrics::server_state(false, false, false, 0, 0, w),
              ServerState::unhealthy);
    EXPECT_EQ(metrics::server_state(false, true, false, 0, 0, w),
              ServerState::down);
    EXPECT_EQ(metrics::server_state(false, false, true, 0, 0, w),
              ServerState::drain);
    EXPECT_EQ(metrics::server_state(true, false, false, 0, 0, w),
              ServerState::removed);
    EXPECT_EQ(metrics::server_state(false, false, false, 10, 5, w),
              ServerState::unhealthy);
    EXPECT_EQ(metrics::server_state(false, false, false, 0, 0, 0),
              ServerState::up);
    EXPECT_STREQ(metrics::state_name(ServerState::unhealthy), "unhealthy");

    metrics::Snapshot s;
    auto &g = s.groups.emplace_back();
    g.name = "api";
    g.checked = true;
    auto &sv = g.servers.emplace_back();
    sv.name = "127.0.0.1:1";
    sv.state = ServerState::unhealthy;
    sv.values[metrics::s_checks] = 10;
    sv.values[metrics::s_check_failures] = 3;
    sv.values[metrics::s_health] = w;
    std::string text = metrics::render_prometheus(s);
    EXPECT_NE(text.find("dynroute_server_checks_total{upstream=\"api\","
                        "server=\"127.0.0.1:1\",result=\"pass\"} 7"),
              std::string::npos) << text;
    EXPECT_NE(text.find("dynroute_server_checks_total{upstream=\"api\","
                        "server=\"127.0.0.1:1\",result=\"fail\"} 3"),
              std::string::npos);
    EXPECT_NE(text.find("dynroute_server_state{upstream=\"api\",server=\""
                        "127.0.0.1:1\",state=\"unhealthy\"} 1"),
              std::string::npos);
    std::string json = metrics::render_stats(s);
    EXPECT_NE(json.find("\"health\":{\"state\":\"down\",\"checks\":10,"
                        "\"failures\":3"),
              std::string::npos) << json;

    g.checked = false;
    EXPECT_EQ(metrics::render_prometheus(s).find("checks_total"),
              std::string::npos);
}
