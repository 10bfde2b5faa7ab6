// The guard of a rollout (src/core/guard.*): its parameters and their
// messages, the ring's windows, the quantile against Prometheus'
// histogram_quantile, and the judgement.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "guard.hpp"

using namespace dynroute::guard;
namespace m = dynroute::metrics;

namespace {

std::string error_of(const std::vector<std::string_view> &params)
{
    try {
        parse(params);
    } catch (const dynroute::ConfigError &e) {
        return e.what();
    }
    return "";
}

Counts counts(std::uint64_t responses, std::uint64_t errors,
              std::uint64_t bucket = 0)
{
    Counts c;
    c.responses = responses;
    c.errors = errors;
    c.buckets[bucket] = responses;
    return c;
}

}  // namespace

TEST(GuardParams, Defaults)
{
    Params p = parse({"errors=5%"});
    EXPECT_TRUE(p.errors);
    EXPECT_DOUBLE_EQ(p.errors_pct, 5);
    EXPECT_FALSE(p.latency);
    EXPECT_EQ(p.window_ms, 30000u);
    EXPECT_EQ(p.interval_ms, 250u);
    EXPECT_EQ(p.min_requests, 20u);
    EXPECT_TRUE(p.baseline_primary);
}

TEST(GuardParams, Everything)
{
    Params p = parse({"errors=0.5%", "latency=p99.9:500ms", "window=10s",
                      "interval=100ms", "min_requests=7", "baseline=none"});
    EXPECT_DOUBLE_EQ(p.errors_pct, 0.5);
    EXPECT_TRUE(p.latency);
    EXPECT_NEAR(p.quantile, 0.999, 1e-12);
    EXPECT_STREQ(p.quantile_name, "p99.9");
    EXPECT_EQ(p.latency_ms, 500u);
    EXPECT_EQ(p.window_ms, 10000u);
    EXPECT_EQ(p.interval_ms, 100u);
    EXPECT_EQ(p.min_requests, 7u);
    EXPECT_FALSE(p.baseline_primary);

    EXPECT_EQ(parse({"latency=p50:5ms"}).latency_ms, 5u);
    EXPECT_EQ(parse({"latency=p50:10s"}).latency_ms, 10000u);
    EXPECT_DOUBLE_EQ(parse({"errors=100%"}).errors_pct, 100);
    EXPECT_DOUBLE_EQ(parse({"errors=0.01%"}).errors_pct, 0.01);
    EXPECT_EQ(parse({"errors=1%", "window=1m", "interval=15s"}).window_ms,
              60000u);
}

TEST(GuardParams, Refused)
{
    EXPECT_EQ(error_of({"errors=0%"}),
              "invalid guard parameter \"errors=0%\": expected "
              "errors=PERCENT, the share of 5xx allowed, from 0.01% to "
              "100%, such as errors=5%");
    EXPECT_NE(error_of({"errors=101%"}), "");
    EXPECT_NE(error_of({"errors=5"}), "");
    EXPECT_NE(error_of({"errors=0.001%"}), "");
    EXPECT_EQ(error_of({"latency=p100:1s"}),
              "invalid guard parameter \"latency=p100:1s\": expected "
              "latency=pNN:TIME, NN from 50 to 99.9 and TIME from 5ms to "
              "10s, such as latency=p99:500ms");
    EXPECT_NE(error_of({"latency=p49:1s"}), "");
    EXPECT_NE(error_of({"latency=p99:4ms"}), "");
    EXPECT_NE(error_of({"latency=p99:11s"}), "");
    EXPECT_NE(error_of({"latency=99:1s"}), "");
    EXPECT_NE(error_of({"latency=p99.99:1s"}), "");
    EXPECT_NE(error_of({"latency=p99"}), "");
    EXPECT_NE(error_of({"errors=5%", "window=500ms"}), "");
    EXPECT_NE(error_of({"errors=5%", "interval=50ms"}), "");
    EXPECT_NE(error_of({"errors=5%", "min_requests=0"}), "");
    EXPECT_NE(error_of({"errors=5%", "min_requests=1.5"}), "");
    EXPECT_EQ(error_of({"errors=5%", "baseline=canary"}),
              "invalid guard parameter \"baseline=canary\": expected "
              "baseline=primary or baseline=none");
    EXPECT_EQ(error_of({"errors=5%", "window=2s", "interval=1s"}),
              "guard window=2s is shorter than 4 x interval=1s: make "
              "window=4s at least, or interval=500ms at most");
    EXPECT_EQ(error_of({"window=10s"}),
              "guard without errors= or latency=: add one at least, such "
              "as errors=5% or latency=p99:500ms");
    EXPECT_EQ(error_of({"errors=5%", "sample=1"}),
              "unknown guard parameter \"sample=1\": expected "
              "errors=PERCENT, latency=pNN:TIME, window=TIME, "
              "interval=TIME, min_requests=N or baseline=primary|none");
    EXPECT_NE(error_of({"errors=5%", "errors=6%"}), "");
}

TEST(GuardTime, Units)
{
    EXPECT_EQ(parse_ms("5ms"), 5);
    EXPECT_EQ(parse_ms("10s"), 10000);
    EXPECT_EQ(parse_ms("2m"), 120000);
    EXPECT_EQ(parse_ms("10"), -1);
    EXPECT_EQ(parse_ms("ms"), -1);
    EXPECT_EQ(parse_ms("1.5s"), -1);
    EXPECT_EQ(parse_ms("-1s"), -1);
}

// Prometheus' histogram_quantile on a cumulative histogram, written out
// as promql/quantile.go's bucketQuantile does it.
static double prometheus_quantile(double q,
                                  const std::array<std::uint64_t,
                                                   m::buckets> &b)
{
    std::vector<std::pair<double, double>> cum;  // upper bound, count
    double c = 0;
    for (std::size_t i = 0; i < m::buckets; i++) {
        c += b[i];
        cum.push_back({i < m::bucket_ms.size() ? m::bucket_ms[i] : INFINITY,
                       c});
    }
    double observations = cum.back().second;
    if (observations == 0) {
        return NAN;
    }
    double rank = q * observations;
    std::size_t i = 0;
    while (cum[i].second < rank) {
        i++;
    }
    if (i == cum.size() - 1) {
        return cum[cum.size() - 2].first;
    }
    if (i == 0 && cum[0].first <= 0) {
        return cum[0].first;
    }
    double start = 0, count = cum[i].second;
    if (i > 0) {
        start = cum[i - 1].first;
        count -= cum[i - 1].second;
        rank -= cum[i - 1].second;
    }
    return start + (cum[i].first - start) * (rank / count);
}

TEST(GuardQuantile, AgainstPrometheus)
{
    std::mt19937_64 rng(24);

    for (int round = 0; round < 20000; round++) {
        std::array<std::uint64_t, m::buckets> b{};
        for (auto &n : b) {
            n = (rng() % 3 == 0) ? 0 : rng() % 50;
        }
        double q = (50 + rng() % 500 / 10.0) / 100;
        double want = prometheus_quantile(q, b);
        double got = quantile_ms(b, q);
        if (std::isnan(want)) {
            EXPECT_EQ(got, 0);
        } else {
            EXPECT_NEAR(got, want, 1e-9) << "round " << round;
        }
    }
}

TEST(GuardQuantile, Examples)
{
    std::array<std::uint64_t, m::buckets> b{};
    EXPECT_EQ(quantile_ms(b, 0.99), 0);
    b[0] = 100;  // all <= 5 ms
    EXPECT_DOUBLE_EQ(quantile_ms(b, 0.5), 2.5);
    b = {};
    b[7] = 100;  // 500 .. 1000 ms
    EXPECT_DOUBLE_EQ(quantile_ms(b, 0.99), 995);
    b = {};
    b[m::buckets - 1] = 1;  // slower than 10 s
    EXPECT_DOUBLE_EQ(quantile_ms(b, 0.99), 10000);
}

TEST(GuardRing, Window)
{
    Params p = parse({"errors=5%", "window=1s", "interval=250ms"});
    Ring r;
    r.reset(p);
    Counts d;
    std::uint64_t span = 0;

    EXPECT_FALSE(r.window(p.window_ms, d, &span));
    r.push(0, counts(0, 0));
    EXPECT_FALSE(r.window(p.window_ms, d, &span));
    r.push(250, counts(10, 1));
    ASSERT_TRUE(r.window(p.window_ms, d, &span));
    EXPECT_EQ(d.responses, 10u);
    EXPECT_EQ(d.errors, 1u);
    EXPECT_EQ(span, 250u);

    // every 250 ms for 5 s: 10 responses each, the window is 1 s
    for (std::uint64_t t = 500, n = 20; t <= 5000; t += 250, n += 10) {
        r.push(t, counts(n, n / 10));
    }
    ASSERT_TRUE(r.window(p.window_ms, d, &span));
    EXPECT_EQ(span, 1000u);
    EXPECT_EQ(d.responses, 40u);
    EXPECT_EQ(d.errors, 4u);

    // a late tick: the oldest within the window
    r.push(5900, counts(300, 30));
    ASSERT_TRUE(r.window(p.window_ms, d, &span));
    EXPECT_EQ(span, 900u);
    EXPECT_EQ(d.responses, 300u - 200u);

    // counters that went back (a new zone): nothing, not a wrap
    r.push(6000, counts(5, 5));
    ASSERT_TRUE(r.window(p.window_ms, d, &span));
    EXPECT_EQ(d.responses, 0u);
    EXPECT_EQ(d.errors, 0u);

    r.clear();
    EXPECT_FALSE(r.window(p.window_ms, d, &span));
}

TEST(GuardJudge, Errors)
{
    Params p = parse({"errors=5%", "window=10s", "min_requests=20"});

    Verdict v = judge(p, counts(19, 19), counts(0, 0), 10000);
    EXPECT_EQ(v.outcome, Outcome::waiting);

    v = judge(p, counts(49, 30), counts(431, 0), 10000);
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_EQ(v.reason, GuardReason::errors);
    EXPECT_EQ(v.responses, 49u);
    EXPECT_EQ(v.errors, 30u);
    EXPECT_STREQ(v.detail,
                 "5xx 61.2% of 49 responses in 10s; primary 0.0% of 431");

    // a shared dependency failing both: no trip, and no pass (a ramp
    // holds its step)
    v = judge(p, counts(100, 60), counts(1000, 580), 10000);
    EXPECT_EQ(v.outcome, Outcome::waiting);
    EXPECT_STREQ(v.detail, "primary fails too: 5xx 58.0% of 1000 in 10s; "
                           "not judged against it");

    // the primary with fewer than min_requests: the absolute rule
    v = judge(p, counts(100, 6), counts(10, 10), 2500);
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_STREQ(v.detail, "5xx 6.0% of 100 responses in 2.5s");

    v = judge(p, counts(100, 5), counts(1000, 0), 10000);
    EXPECT_EQ(v.outcome, Outcome::pass);

    // baseline=none: the absolute rule whatever the primary does
    Params none = parse({"errors=5%", "baseline=none"});
    v = judge(none, counts(100, 60), counts(1000, 580), 10000);
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_STREQ(v.detail, "5xx 60.0% of 100 responses in 10s");
}

TEST(GuardJudge, Latency)
{
    Params p = parse({"latency=p99:500ms", "min_requests=20"});

    // 600 .. 1000 ms: bucket 7 (500, 1000]
    Verdict v = judge(p, counts(50, 0, 7), counts(500, 0, 1), 10000);
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_EQ(v.reason, GuardReason::latency);
    EXPECT_DOUBLE_EQ(v.quantile_ms, 995);
    EXPECT_STREQ(v.detail, "p99 995ms of 50 responses in 10s, above 500ms; "
                           "primary p99 10ms of 500");

    // the primary as slow: no trip, no pass
    v = judge(p, counts(50, 0, 7), counts(500, 0, 7), 10000);
    EXPECT_EQ(v.outcome, Outcome::waiting);
    EXPECT_STREQ(v.detail, "primary fails too: 5xx 0.0% of 500 in 10s, p99 "
                           "995ms; not judged against it");

    v = judge(p, counts(50, 0, 5), counts(500, 0, 1), 10000);
    EXPECT_EQ(v.outcome, Outcome::pass);

    Params none = parse({"latency=p99:500ms", "baseline=none"});
    v = judge(none, counts(50, 0, 7), counts(500, 0, 7), 10000);
    EXPECT_EQ(v.outcome, Outcome::fail);
}

TEST(GuardAnswer, WithGuard)
{
    Params p = parse({"errors=5%", "latency=p99:500ms", "window=10s"});
    std::vector<Published> vs(3);
    vs[0].variant = "stable";
    vs[0].primary = true;
    vs[0].words[m::g_at_ms] = 1;
    vs[1].variant = "canary";
    vs[1].words[m::g_outcome] = static_cast<std::uint64_t>(Outcome::waiting);
    vs[1].words[m::g_responses] = 7;
    vs[1].words[m::g_errors] = 1;
    vs[1].words[m::g_quantile_us] = 12345;
    vs[1].words[m::g_span_ms] = 2500;
    vs[1].words[m::g_at_ms] = 1;
    vs[2].variant = "dark";  // never judged

    EXPECT_EQ(with_guard("{\"name\":\"shop\"}", p, vs),
              "{\"name\":\"shop\",\"guard\":{\"state\":\"waiting\","
              "\"errors\":5.0,\"latency\":\"p99:500ms\",\"window_s\":10.0,"
              "\"interval_ms\":250,\"min_requests\":20,"
              "\"baseline\":\"primary\",\"window\":{\"canary\":{"
              "\"state\":\"waiting\",\"responses\":7,\"errors\":1,"
              "\"p99_ms\":12.3,\"span_s\":2.5}}}}");

    vs[1].words[m::g_outcome] = static_cast<std::uint64_t>(Outcome::pass);
    std::string tripped = with_guard(
        "{\"guard\":{\"tripped\":{\"variant\":\"canary\"}},\"name\":\"x\"}",
        p, vs);
    EXPECT_NE(tripped.find("{\"guard\":{\"state\":\"tripped\",\"tripped\":"
                           "{\"variant\":\"canary\"},"),
              std::string::npos)
        << tripped;
}
