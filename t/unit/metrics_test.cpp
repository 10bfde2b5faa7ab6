// The metrics' layouts and renderings (src/core/metrics.*).
#include <gtest/gtest.h>

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

bool has_line(const std::string &text, const std::string &line)
{
    return text.find("\n" + line + "\n") != std::string::npos
           || text.compare(0, line.size() + 1, line + "\n") == 0;
}

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
