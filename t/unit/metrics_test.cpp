// The metrics' layouts and renderings (src/core/metrics.*).
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "metrics.hpp"

using namespace dynroute::metrics;

namespace {

Snapshot sample()
{
    Snapshot s;
    s.zone = "routes";
    s.generation = 7;
    s.draining = true;
    s.time = 1700000000.5;
    s.runtime_hosts = 2;
    s.per_rule = true;

    TableStats t;
    t.name = "main";
    t.rules = 2;
    t.values = {10, 1, 0, 3};
    t.per_rule = {{"api.example.com", 4}, {"~^(?<t>[a-z]+)\\.x\"y$", 2}};
    s.tables.push_back(t);

    RolloutStats ro;
    ro.name = "shop";
    ro.primary = "stable";

    VariantStats a;
    a.name = "stable";
    a.upstream = "service_a";
    a.weight = 8750;
    a.values[v_requests + 0] = 5;               // weight
    a.values[v_requests + 5] = 1;               // fallback
    a.values[v_responses + 1] = 6;              // 2xx
    a.values[v_buckets + 0] = 2;                // <= 5 ms
    a.values[v_buckets + 3] = 3;                // <= 50 ms
    a.values[v_buckets + buckets - 1] = 1;      // > 10 s
    a.values[v_sum_ms] = 12345;
    ro.variants.push_back(a);

    VariantStats b;
    b.name = "canary";
    b.upstream = "service_b";
    b.weight = 1250;
    b.values[v_requests + 1] = 2;               // header
    b.values[v_responses + 4] = 2;              // 5xx
    b.values[v_fallbacks] = 1;
    ro.variants.push_back(b);

    s.rollouts.push_back(ro);
    return s;
}

ServerStats server(const char *name, ServerState state,
                   std::uint64_t picked, std::uint64_t released)
{
    ServerStats sv;
    sv.name = name;
    sv.state = state;
    sv.values[s_picked] = picked;
    sv.values[s_released] = released;
    return sv;
}

// sample() and two groups: an upstream whose servers are written in the
// three address forms, one failed and one retired, and a service
Snapshot with_groups()
{
    Snapshot s = sample();

    GroupStats g;
    g.name = "shop_api";
    g.kind = GroupKind::upstream;

    ServerStats a = server("10.0.0.5:8080", ServerState::up, 12, 10);
    a.weight = 2;
    a.values[s_responses + 1] = 7;   // 2xx
    a.values[s_responses + 4] = 3;   // 5xx
    a.values[s_fails] = 1;
    g.servers.push_back(a);

    ServerStats b = server("[2001:db8::5]:8080", ServerState::failed, 4, 4);
    b.backup = true;
    b.values[s_fails] = 4;
    b.values[s_disabled_until] = 1700000010;
    g.servers.push_back(b);

    // released read ahead of picked: the gauge shows 0, not a wrap
    g.servers.push_back(server("unix:/run/app.sock", ServerState::removed,
                               6, 7));
    s.groups.push_back(g);

    GroupStats svc;
    svc.name = "tenant-42";
    svc.kind = GroupKind::service;
    svc.servers.push_back(server("unix:/run/a\"b\\c.sock",
                                 ServerState::drain, 1, 0));
    s.groups.push_back(svc);

    GroupStats empty;
    empty.name = "spare";
    s.groups.push_back(empty);

    return s;
}

bool has_line(const std::string &text, const std::string &line)
{
    return text.find("\n" + line + "\n") != std::string::npos
           || text.compare(0, line.size() + 1, line + "\n") == 0;
}

Snapshot with_stream();  // below, with the stream tests

}  // namespace

TEST(Metrics, LatencyBucketBoundsAreInclusive)
{
    EXPECT_EQ(latency_bucket(0), 0u);
    EXPECT_EQ(latency_bucket(5), 0u);
    EXPECT_EQ(latency_bucket(6), 1u);
    EXPECT_EQ(latency_bucket(10), 1u);
    EXPECT_EQ(latency_bucket(1000), 7u);
    EXPECT_EQ(latency_bucket(10000), 10u);
    EXPECT_EQ(latency_bucket(10001), 11u);
    EXPECT_EQ(latency_bucket(~0ULL), buckets - 1);
}

TEST(Metrics, StatusClass)
{
    EXPECT_EQ(status_class(0), -1);
    EXPECT_EQ(status_class(9), -1);
    EXPECT_EQ(status_class(99), -1);
    EXPECT_EQ(status_class(100), 0);
    EXPECT_EQ(status_class(200), 1);
    EXPECT_EQ(status_class(421), 3);
    EXPECT_EQ(status_class(499), 3);
    EXPECT_EQ(status_class(503), 4);
    EXPECT_EQ(status_class(599), 4);
    EXPECT_EQ(status_class(600), -1);
}

TEST(Metrics, EscapeLabel)
{
    EXPECT_EQ(escape_label("plain"), "plain");
    EXPECT_EQ(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(Metrics, Prometheus)
{
    std::string text = render_prometheus(sample());

    EXPECT_TRUE(has_line(text, "# TYPE dynroute_requests_total counter"));
    EXPECT_TRUE(has_line(text, "dynroute_requests_total{table=\"main\","
                               "rule=\"api.example.com\"} 4"));
    EXPECT_TRUE(has_line(text, "dynroute_requests_total{table=\"main\","
                               "rule=\"~^(?<t>[a-z]+)\\\\.x\\\"y$\"} 2"));
    EXPECT_TRUE(has_line(text, "dynroute_requests_total{table=\"main\","
                               "rule=\"(runtime)\"} 3"));
    EXPECT_TRUE(has_line(text,
                         "dynroute_table_requests_total{table=\"main\"} 10"));
    EXPECT_TRUE(has_line(
        text, "dynroute_misdirected_requests_total{table=\"main\"} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_table_rules{table=\"main\"} 2"));
    EXPECT_TRUE(has_line(text, "dynroute_runtime_hosts 2"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_weight_ratio{rollout=\"shop\","
                               "variant=\"stable\",upstream=\"service_a\"} "
                               "0.875"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_weight_ratio{rollout=\"shop\","
                               "variant=\"canary\",upstream=\"service_b\"} "
                               "0.125"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_requests_total{rollout="
                               "\"shop\",variant=\"stable\",reason="
                               "\"fallback\"} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_requests_total{rollout="
                               "\"shop\",variant=\"canary\",reason="
                               "\"header\"} 2"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_responses_total{rollout="
                               "\"shop\",variant=\"canary\",code=\"5xx\"} 2"));

    // buckets are cumulative, +Inf is the count, seconds in base units
    const std::string h = "dynroute_variant_upstream_response_seconds";
    const std::string l = "{rollout=\"shop\",variant=\"stable\"";
    EXPECT_TRUE(has_line(text, h + "_bucket" + l + ",le=\"0.005\"} 2"));
    EXPECT_TRUE(has_line(text, h + "_bucket" + l + ",le=\"0.025\"} 2"));
    EXPECT_TRUE(has_line(text, h + "_bucket" + l + ",le=\"0.05\"} 5"));
    EXPECT_TRUE(has_line(text, h + "_bucket" + l + ",le=\"10\"} 5"));
    EXPECT_TRUE(has_line(text, h + "_bucket" + l + ",le=\"+Inf\"} 6"));
    EXPECT_TRUE(has_line(text, h + "_sum" + l + "} 12.345"));
    EXPECT_TRUE(has_line(text, h + "_count" + l + "} 6"));
    EXPECT_TRUE(has_line(text, "dynroute_variant_fallbacks_total{rollout="
                               "\"shop\",variant=\"canary\"} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_state_generation 7"));
    EXPECT_TRUE(has_line(text, "dynroute_draining 1"));

    // every series of a variant is there, zeros included: 6 reasons, 5
    // classes, 12 buckets
    std::size_t n = 0;
    for (std::size_t p = 0; (p = text.find("variant=\"canary\"", p))
                            != std::string::npos; p++) {
        n++;
    }
    EXPECT_EQ(n, 1 + 6 + 5 + buckets + 2 + 1u);
}

TEST(Metrics, PrometheusWithoutRules)
{
    Snapshot s = sample();
    s.per_rule = false;

    std::string text = render_prometheus(s);

    EXPECT_EQ(text.find("dynroute_requests_total"), std::string::npos);
    EXPECT_TRUE(has_line(text,
                         "dynroute_table_requests_total{table=\"main\"} 10"));
}

TEST(Metrics, Stats)
{
    auto j = nlohmann::json::parse(render_stats(sample()));

    EXPECT_EQ(j["zone"], "routes");
    EXPECT_EQ(j["generation"], 7);
    EXPECT_EQ(j["draining"], true);
    EXPECT_DOUBLE_EQ(j["time"].get<double>(), 1700000000.5);
    EXPECT_EQ(j["runtime_hosts"], 2);
    EXPECT_EQ(j["tables"][0]["name"], "main");
    EXPECT_EQ(j["tables"][0]["rules"], 2);
    EXPECT_EQ(j["tables"][0]["requests"], 10);
    EXPECT_EQ(j["tables"][0]["misdirected"], 1);

    const auto &ro = j["rollouts"][0];
    EXPECT_EQ(ro["name"], "shop");
    EXPECT_EQ(ro["primary"], "stable");

    const auto &a = ro["variants"][0];
    EXPECT_EQ(a["name"], "stable");
    EXPECT_EQ(a["upstream"], "service_a");
    EXPECT_DOUBLE_EQ(a["weight"].get<double>(), 87.5);
    EXPECT_EQ(a["requests"]["weight"], 5);
    EXPECT_EQ(a["requests"]["fallback"], 1);
    EXPECT_EQ(a["responses"]["2xx"], 6);
    EXPECT_EQ(a["latency"]["le"].size(), bucket_ms.size());
    EXPECT_EQ(a["latency"]["buckets"].size(), buckets);
    EXPECT_EQ(a["latency"]["buckets"][3], 3);
    EXPECT_EQ(a["latency"]["count"], 6);
    EXPECT_DOUBLE_EQ(a["latency"]["sum"].get<double>(), 12.345);
    EXPECT_EQ(ro["variants"][1]["fallbacks"], 1);
}

TEST(Metrics, ServerCellLayout)
{
    // picked, released, 5 classes, fails, disabled_until, retired_ms,
    // then the health check's health, up_since_ms, checks, check_failures
    EXPECT_EQ(s_picked, 0u);
    EXPECT_EQ(s_released, 1u);
    EXPECT_EQ(s_fails, s_responses + classes);
    EXPECT_EQ(s_disabled_until, s_fails + 1);
    EXPECT_EQ(s_health, s_retired_ms + 1);
    EXPECT_EQ(s_check_failures, s_health + 3);
    EXPECT_EQ(server_width, 14u);
    // the slab's size class: the power of two the words round up to
    EXPECT_EQ(cell_bytes, 128u);
    EXPECT_EQ(cell_bytes & (cell_bytes - 1), 0u);
    EXPECT_LE(server_width * 8, cell_bytes);
    EXPECT_GT(server_width * 8, cell_bytes / 2);
}

TEST(Metrics, InflightNeverNegative)
{
    EXPECT_EQ(inflight(0, 0), 0u);
    EXPECT_EQ(inflight(5, 3), 2u);
    EXPECT_EQ(inflight(3, 3), 0u);
    EXPECT_EQ(inflight(3, 5), 0u);
    EXPECT_EQ(inflight(~0ULL, 0), ~0ULL);
    EXPECT_EQ(inflight(0, ~0ULL), 0u);
}

TEST(Metrics, RetiredCellIsFreedOnceDrainedAndASecondLater)
{
    // still in a list
    EXPECT_FALSE(cell_may_free(5, 5, 0, 1000000));
    // retired at 10 s: a try still in flight
    EXPECT_FALSE(cell_may_free(6, 5, 10000, 20000));
    // drained, but not a second yet
    EXPECT_FALSE(cell_may_free(6, 6, 10000, 10000));
    EXPECT_FALSE(cell_may_free(6, 6, 10000, 10999));
    EXPECT_TRUE(cell_may_free(6, 6, 10000, 11000));
    EXPECT_TRUE(cell_may_free(0, 0, 10000, 50000));
    // a clock behind the retirement time is not "a second later"
    EXPECT_FALSE(cell_may_free(6, 6, 10000, 5000));
    // released read ahead of picked is not drained
    EXPECT_FALSE(cell_may_free(6, 7, 10000, 20000));
}

TEST(Metrics, ServerState)
{
    EXPECT_STREQ(state_name(ServerState::up), "up");
    EXPECT_STREQ(state_name(ServerState::down), "down");
    EXPECT_STREQ(state_name(ServerState::drain), "drain");
    EXPECT_STREQ(state_name(ServerState::failed), "failed");
    EXPECT_STREQ(state_name(ServerState::removed), "removed");

    EXPECT_EQ(server_state(false, false, false, 0, 100), ServerState::up);
    EXPECT_EQ(server_state(false, false, false, 100, 100), ServerState::up);
    EXPECT_EQ(server_state(false, false, false, 101, 100),
              ServerState::failed);
    EXPECT_EQ(server_state(false, false, true, 101, 100), ServerState::drain);
    EXPECT_EQ(server_state(false, true, true, 101, 100), ServerState::down);
    EXPECT_EQ(server_state(true, true, true, 101, 100), ServerState::removed);
    EXPECT_EQ(server_state(true, false, false, 0, 100), ServerState::removed);
}

TEST(Metrics, PrometheusGroups)
{
    std::string text = render_prometheus(with_groups());
    const std::string a = "{upstream=\"shop_api\",server=\"10.0.0.5:8080\"";
    const std::string b =
        "{upstream=\"shop_api\",server=\"[2001:db8::5]:8080\"";
    const std::string c =
        "{upstream=\"shop_api\",server=\"unix:/run/app.sock\"";
    const std::string d = "{upstream=\"tenant-42\","
                          "server=\"unix:/run/a\\\"b\\\\c.sock\"";

    for (const char *f : {"requests_total counter", "responses_total counter",
                          "fails_total counter", "inflight gauge",
                          "state gauge"}) {
        EXPECT_TRUE(has_line(text, std::string("# TYPE dynroute_server_") + f))
            << f;
    }
    EXPECT_TRUE(has_line(text, "# TYPE dynroute_upstream_servers gauge"));

    EXPECT_TRUE(has_line(text, "dynroute_server_requests_total" + a + "} 12"));
    EXPECT_TRUE(has_line(text, "dynroute_server_requests_total" + d + "} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_server_responses_total" + a
                                   + ",code=\"2xx\"} 7"));
    EXPECT_TRUE(has_line(text, "dynroute_server_responses_total" + a
                                   + ",code=\"5xx\"} 3"));
    EXPECT_TRUE(has_line(text, "dynroute_server_responses_total" + b
                                   + ",code=\"1xx\"} 0"));
    EXPECT_TRUE(has_line(text, "dynroute_server_fails_total" + a + "} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_server_fails_total" + b + "} 4"));
    EXPECT_TRUE(has_line(text, "dynroute_server_inflight" + a + "} 2"));
    EXPECT_TRUE(has_line(text, "dynroute_server_inflight" + b + "} 0"));
    EXPECT_TRUE(has_line(text, "dynroute_server_inflight" + c + "} 0"));
    EXPECT_TRUE(has_line(text, "dynroute_server_inflight" + d + "} 1"));

    // one series per state, 1 for the server's
    const char *states[] = {"up", "down", "drain", "failed", "removed"};
    for (const char *st : states) {
        auto line = [&](const std::string &l, bool on) {
            return "dynroute_server_state" + l + ",state=\"" + st + "\"} "
                   + (on ? "1" : "0");
        };
        std::string name = st;
        EXPECT_TRUE(has_line(text, line(a, name == "up"))) << st;
        EXPECT_TRUE(has_line(text, line(b, name == "failed"))) << st;
        EXPECT_TRUE(has_line(text, line(c, name == "removed"))) << st;
        EXPECT_TRUE(has_line(text, line(d, name == "drain"))) << st;
    }

    // the removed server is listed, not counted
    EXPECT_TRUE(has_line(text, "dynroute_upstream_servers{upstream="
                               "\"shop_api\"} 2"));
    EXPECT_TRUE(has_line(text, "dynroute_upstream_servers{upstream="
                               "\"tenant-42\"} 1"));
    EXPECT_TRUE(has_line(text, "dynroute_upstream_servers{upstream="
                               "\"spare\"} 0"));

    // every series of a server: 1 + 5 + 1 + 1 + 6 (unchecked: no checks)
    std::size_t n = 0;
    for (std::size_t p = 0; (p = text.find(b, p)) != std::string::npos; p++) {
        n++;
    }
    EXPECT_EQ(n, 14u);
}

TEST(Metrics, PrometheusGroupsComeAfterTheRest)
{
    Snapshot s = with_groups();
    s.fleet = true;
    Snapshot without = s;
    without.groups.clear();

    std::string before = render_prometheus(without);
    std::string text = render_prometheus(s);

    // no group: not a byte of the new families
    EXPECT_EQ(before.find("dynroute_server_"), std::string::npos);
    EXPECT_EQ(before.find("dynroute_upstream_servers"), std::string::npos);

    // groups: the same text, then theirs
    ASSERT_GT(text.size(), before.size());
    EXPECT_EQ(text.compare(0, before.size(), before), 0);
    EXPECT_EQ(text.compare(before.size(), 39,
                           "# HELP dynroute_server_requests_total T"), 0);
}

// The text format's rules (version 0.0.4), as Prometheus and promtool read
// it: every line a HELP, a TYPE or a sample; a family's HELP then TYPE
// before its samples, all of them together; sample names of the family
// (histograms: _bucket, _sum, _count); label names and escapes as the
// format has them; no series twice; counters named _total.
TEST(Metrics, ExpositionFormat)
{
    for (bool fleet : {false, true}) {
        Snapshot s = with_stream();
        s.fleet = fleet;
        std::string text = render_prometheus(s);

        ASSERT_FALSE(text.empty());
        EXPECT_EQ(text.back(), '\n');

        const std::regex help("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]+");
        const std::regex type("# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) "
                              "(counter|gauge|histogram)");
        const std::regex sample_re(
            "([a-zA-Z_:][a-zA-Z0-9_:]*)"
            "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\n]|\\\\[\\\\\"n])*\""
            "(?:,[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\n]|\\\\[\\\\\"n])*\")*"
            "\\})? (-?[0-9]+(?:\\.[0-9]+)?)");

        std::set<std::string> families, series;
        std::string family, ftype, helped;
        std::istringstream in(text);
        std::string line;
        std::size_t samples = 0;

        while (std::getline(in, line)) {
            std::smatch m;

            if (std::regex_match(line, m, help)) {
                ASSERT_TRUE(families.insert(m[1]).second)
                    << "family twice: " << line;
                helped = m[1];
                family.clear();
                continue;
            }

            if (std::regex_match(line, m, type)) {
                ASSERT_EQ(m[1], helped) << "TYPE without its HELP: " << line;
                family = m[1];
                ftype = m[2];
                if (ftype == "counter") {
                    EXPECT_EQ(family.substr(family.size() - 6), "_total")
                        << family;
                }
                continue;
            }

            ASSERT_TRUE(std::regex_match(line, m, sample_re))
                << "not a sample: " << line;
            ASSERT_FALSE(family.empty()) << "sample outside a family: "
                                         << line;
            std::string name = m[1];
            if (ftype == "histogram") {
                EXPECT_TRUE(name == family + "_bucket" || name == family + "_sum"
                            || name == family + "_count") << line;
            } else {
                EXPECT_EQ(name, family) << line;
            }
            EXPECT_TRUE(series.insert(name + std::string(m[2])).second)
                << "series twice: " << line;
            samples++;
        }

        EXPECT_GT(samples, 100u);
        EXPECT_TRUE(families.count("dynroute_server_state"));
    }
}

TEST(Metrics, StatsGroups)
{
    auto j = nlohmann::json::parse(render_stats(with_groups()));

    ASSERT_EQ(j["groups"].size(), 3u);
    const auto &g = j["groups"][0];
    EXPECT_EQ(g["name"], "shop_api");
    EXPECT_EQ(g["kind"], "upstream");
    ASSERT_EQ(g["servers"].size(), 3u);

    const auto &a = g["servers"][0];
    EXPECT_EQ(a["name"], "10.0.0.5:8080");
    EXPECT_EQ(a["state"], "up");
    EXPECT_EQ(a["weight"], 2);
    EXPECT_EQ(a["backup"], false);
    EXPECT_EQ(a["requests"], 12);
    EXPECT_EQ(a["inflight"], 2);
    EXPECT_EQ(a["responses"]["2xx"], 7);
    EXPECT_EQ(a["responses"]["5xx"], 3);
    EXPECT_EQ(a["responses"].size(), 5u);
    EXPECT_EQ(a["fails"], 1);
    EXPECT_EQ(a["disabled_until"], 0);

    const auto &b = g["servers"][1];
    EXPECT_EQ(b["name"], "[2001:db8::5]:8080");
    EXPECT_EQ(b["state"], "failed");
    EXPECT_EQ(b["backup"], true);
    EXPECT_EQ(b["fails"], 4);
    EXPECT_EQ(b["disabled_until"], 1700000010);

    EXPECT_EQ(g["servers"][2]["state"], "removed");
    EXPECT_EQ(g["servers"][2]["inflight"], 0);

    EXPECT_EQ(j["groups"][1]["kind"], "service");
    EXPECT_EQ(j["groups"][1]["servers"][0]["name"], "unix:/run/a\"b\\c.sock");
    EXPECT_EQ(j["groups"][1]["servers"][0]["state"], "drain");
    EXPECT_EQ(j["groups"][2]["servers"].size(), 0u);

    // no group: an empty list, for the page
    auto none = nlohmann::json::parse(render_stats(sample()));
    EXPECT_TRUE(none["groups"].is_array());
    EXPECT_EQ(none["groups"].size(), 0u);
}

namespace {

// with_groups() and stream{}'s: a table with two rules counted per rule,
// a table without sessions, a rollout of two variants
Snapshot with_stream()
{
    Snapshot s = with_groups();

    StreamTableStats t;
    t.name = "sni";
    t.rules = 2;
    t.values[x_status + 0] = 7;           // 200
    t.values[x_status + 5] = 1;           // 503
    t.values[x_received] = 4096;
    t.values[x_sent] = 65536;
    t.values[x_buckets + 0] = 3;          // <= 10 ms
    t.values[x_buckets + 3] = 4;          // <= 1 s
    t.values[x_buckets + session_buckets - 1] = 1;  // > 1 h
    t.values[x_sum_ms] = 3602500;
    t.values[x_unnamed] = 2;
    t.values[x_unrouted] = 1;
    t.values[x_preread_timeouts] = 1;

    StreamRuleStats r;
    r.rule = "*.example.com";
    r.values[x_status + 0] = 5;
    r.values[x_buckets + 0] = 5;
    t.per_rule.push_back(r);
    r.rule = "~^(?<t>[a-z]+)\\.x\"y$";
    r.values = {};
    t.per_rule.push_back(r);
    s.stream_tables.push_back(t);

    StreamTableStats idle;
    idle.name = "idle";
    s.stream_tables.push_back(idle);

    StreamRolloutStats ro;
    ro.name = "db";
    StreamVariantStats a;
    a.name = "stable";
    a.upstream = "db_a";
    a.weight = 9000;
    a.values[x_status + 0] = 9;
    a.values[x_buckets + 1] = 9;
    a.values[x_sum_ms] = 450;
    ro.variants.push_back(a);
    StreamVariantStats b;
    b.name = "canary";
    b.upstream = "db_b";
    b.weight = 1000;
    b.values[x_status + 4] = 1;           // 502
    b.values[x_buckets + 0] = 1;
    ro.variants.push_back(b);
    s.stream_rollouts.push_back(ro);

    return s;
}

}  // namespace

TEST(Metrics, StreamStatusAndSessionBuckets)
{
    EXPECT_EQ(stream_status_index(200), 0);
    EXPECT_EQ(stream_status_index(400), 1);
    EXPECT_EQ(stream_status_index(503), 5);
    EXPECT_EQ(stream_status_index(0), -1);
    EXPECT_EQ(stream_status_index(404), -1);

    EXPECT_EQ(session_bucket(0), 0u);
    EXPECT_EQ(session_bucket(10), 0u);      // bounds are inclusive
    EXPECT_EQ(session_bucket(11), 1u);
    EXPECT_EQ(session_bucket(3600000), session_buckets - 2);
    EXPECT_EQ(session_bucket(3600001), session_buckets - 1);
    EXPECT_EQ(session_bucket(~0ULL), session_buckets - 1);
}

TEST(Metrics, PrometheusStream)
{
    Snapshot s = with_stream();
    Snapshot without = with_groups();
    std::string before = render_prometheus(without);
    std::string text = render_prometheus(s);

    // no stream table: not a byte of the stream families; with them, the
    // same text, then theirs
    EXPECT_EQ(before.find("dynroute_stream_"), std::string::npos);
    ASSERT_GT(text.size(), before.size());
    EXPECT_EQ(text.compare(0, before.size(), before), 0);

    for (const char *line : {
             "dynroute_stream_table_connections_total{table=\"sni\","
             "status=\"200\"} 7",
             "dynroute_stream_table_connections_total{table=\"sni\","
             "status=\"503\"} 1",
             "dynroute_stream_table_connections_total{table=\"idle\","
             "status=\"400\"} 0",
             "dynroute_stream_table_received_bytes_total{table=\"sni\"} 4096",
             "dynroute_stream_table_sent_bytes_total{table=\"sni\"} 65536",
             "dynroute_stream_table_session_seconds_bucket{table=\"sni\","
             "le=\"0.01\"} 3",
             "dynroute_stream_table_session_seconds_bucket{table=\"sni\","
             "le=\"1\"} 7",
             "dynroute_stream_table_session_seconds_bucket{table=\"sni\","
             "le=\"3600\"} 7",
             "dynroute_stream_table_session_seconds_bucket{table=\"sni\","
             "le=\"+Inf\"} 8",
             "dynroute_stream_table_session_seconds_sum{table=\"sni\"} "
             "3602.5",
             "dynroute_stream_table_session_seconds_count{table=\"sni\"} 8",
             "dynroute_stream_table_unnamed_total{table=\"sni\"} 2",
             "dynroute_stream_table_unrouted_total{table=\"sni\"} 1",
             "dynroute_stream_table_preread_timeouts_total{table=\"sni\"} 1",
             "dynroute_stream_table_regex_errors_total{table=\"idle\"} 0",
             "dynroute_stream_table_rules{table=\"sni\"} 2",
             "dynroute_stream_rule_connections_total{table=\"sni\","
             "rule=\"*.example.com\",status=\"200\"} 5",
             "dynroute_stream_rule_connections_total{table=\"sni\","
             "rule=\"~^(?<t>[a-z]+)\\\\.x\\\"y$\",status=\"200\"} 0",
             "dynroute_stream_variant_weight_ratio{rollout=\"db\","
             "variant=\"canary\",upstream=\"db_b\"} 0.1",
             "dynroute_stream_variant_connections_total{rollout=\"db\","
             "variant=\"canary\",status=\"502\"} 1",
             "dynroute_stream_variant_session_seconds_sum{rollout=\"db\","
             "variant=\"stable\"} 0.45",
         }) {
        EXPECT_TRUE(has_line(text, line)) << line;
    }

    // no rule counted: no rule family
    s.stream_tables[0].per_rule.clear();
    EXPECT_EQ(render_prometheus(s).find("dynroute_stream_rule_"),
              std::string::npos);
}

TEST(Metrics, StatsStream)
{
    auto plain = nlohmann::json::parse(render_stats(with_groups()));
    EXPECT_FALSE(plain.contains("stream"));

    auto j = nlohmann::json::parse(render_stats(with_stream()));
    const auto &t = j["stream"]["tables"][0];

    EXPECT_EQ(t["name"], "sni");
    EXPECT_EQ(t["rules"], 2);
    EXPECT_EQ(t["connections"], 8);
    EXPECT_EQ(t["status"]["200"], 7);
    EXPECT_EQ(t["status"]["503"], 1);
    EXPECT_EQ(t["received"], 4096);
    EXPECT_EQ(t["sent"], 65536);
    EXPECT_EQ(t["session"]["le"].size(), session_bucket_ms.size());
    EXPECT_EQ(t["session"]["buckets"].size(), session_buckets);
    EXPECT_DOUBLE_EQ(t["session"]["sum"].get<double>(), 3602.5);
    EXPECT_EQ(t["unnamed"], 2);
    EXPECT_EQ(t["unrouted"], 1);
    EXPECT_EQ(t["preread_timeouts"], 1);
    EXPECT_EQ(t["per_rule"][0]["rule"], "*.example.com");
    EXPECT_EQ(t["per_rule"][0]["connections"], 5);
    EXPECT_FALSE(j["stream"]["tables"][1].contains("per_rule"));

    const auto &v = j["stream"]["rollouts"][0]["variants"][1];
    EXPECT_EQ(j["stream"]["rollouts"][0]["name"], "db");
    EXPECT_EQ(v["name"], "canary");
    EXPECT_EQ(v["upstream"], "db_b");
    EXPECT_DOUBLE_EQ(v["weight"].get<double>(), 10.0);
    EXPECT_EQ(v["status"]["502"], 1);
    EXPECT_EQ(v["connections"], 1);
}
