// Metrics: what the counters in a dynroute_zone mean, and their two
// renderings, the Prometheus text exposition format ({prefix}metrics) and
// the JSON the status page reads ({prefix}stats).
//
// The counters themselves are 64-bit words in shared memory, added to with
// one atomic instruction each on the request path; the layouts below say
// which word counts what.  Label values come from the configuration (table,
// rule, rollout, variant and upstream names) and from fixed lists (reason,
// status class, bucket), never from a request, so a client cannot add
// series.
//
// Pure C++17, no nginx headers.  The request-time helpers never throw or
// allocate; the renderers do.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dynroute::metrics {

// The histogram of upstream response times: upper bounds in milliseconds
// (Prometheus' default buckets for web latencies, 5 ms to 10 s), plus one
// for everything slower.
inline constexpr std::array<std::uint32_t, 11> bucket_ms = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
inline constexpr std::size_t buckets = bucket_ms.size() + 1;

// The bucket a response time falls in: 0 .. buckets - 1.
std::size_t latency_bucket(std::uint64_t ms) noexcept;

// 0 .. 4 for a status of 1xx .. 5xx, -1 for anything else (0, 9, 600...).
int status_class(unsigned status) noexcept;

inline constexpr std::size_t reasons = 6;  // Rollout::Reason, in order
inline constexpr std::size_t classes = 5;  // 1xx .. 5xx

// A variant's counters, one array.
enum VariantSlot : std::size_t {
    v_requests = 0,                    // + reason: requests it served
    v_responses = v_requests + reasons,  // + status class
    v_buckets = v_responses + classes,   // + latency bucket (not cumulative)
    v_sum_ms = v_buckets + buckets,    // upstream response time, ms
    v_fallbacks = v_sum_ms + 1,        // chosen, then served by the primary
    variant_width = v_fallbacks + 1
};

// A table's counters, one array.
enum TableSlot : std::size_t {
    t_requests = 0,     // every request it decided for
    t_misdirected = 1,  // no rule: 421
    t_regex_errors = 2,
    t_runtime = 3,      // routed by a runtime host
    table_width = 4
};

struct RuleStats {
    std::string rule;  // as written
    std::uint64_t requests = 0;
};

struct TableStats {
    std::string name;
    std::size_t rules = 0;  // configured
    std::array<std::uint64_t, table_width> values{};
    std::vector<RuleStats> per_rule;  // empty unless Snapshot::per_rule
};

struct VariantStats {
    std::string name;
    std::string upstream;  // live
    std::uint32_t weight = 0;  // live, in 0.01 %
    std::array<std::uint64_t, variant_width> values{};
};

struct RolloutStats {
    std::string name;
    std::string primary;  // live
    std::vector<VariantStats> variants;
};

struct Snapshot {
    std::string zone;
    std::uint64_t generation = 0;
    bool draining = false;
    double time = 0;  // the server's clock, seconds
    std::size_t runtime_hosts = 0;
    bool fleet = false;  // a fleet agent reported: the two below
    std::uint64_t fleet_revision = 0;
    bool fleet_stale = false;
    bool per_rule = false;  // metrics=rules: dynroute_requests_total
    std::vector<TableStats> tables;
    std::vector<RolloutStats> rollouts;
};

// "dynroute_..." families, text format 0.0.4.
std::string render_prometheus(const Snapshot &s);

// The status page's JSON.
std::string render_stats(const Snapshot &s);

// A label value for the text format: \ " and newline escaped.
std::string escape_label(std::string_view v);

}  // namespace dynroute::metrics
