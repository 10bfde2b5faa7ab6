// Metrics: what the counters in a dynroute_zone mean, and their two
// renderings, the Prometheus text exposition format ({prefix}metrics) and
// the JSON the status page reads ({prefix}stats).
//
// The counters themselves are 64-bit words in shared memory, added to with
// one atomic instruction each on the request path; the layouts below say
// which word counts what.  Label values come from the configuration (table,
// rule, rollout, variant and upstream names, servers' addresses), from the
// runtime API (services, servers' canonical addresses) and from fixed lists
// (reason, status class, bucket, state), never from a request, so a client
// cannot add series.
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

// A guarded variant's guard series ("dynroute_guard_trips_total" and the
// last window worker 0 judged, for the API): a series of its own, so that
// the variants' counters keep their width across a reload.
enum GuardSlot : std::size_t {
    g_trips = 0,                     // + GuardReason: trips it took
    g_outcome = g_trips + 2,         // guard::Outcome of the last judgement
    g_responses = g_outcome + 1,     // in the last window
    g_errors = g_responses + 1,      // 5xx in it
    g_quantile_us = g_errors + 1,    // the guard's quantile, microseconds
    g_span_ms = g_quantile_us + 1,   // the window's length
    g_at_ms = g_span_ms + 1,         // when judged, unix ms; 0: never
    guard_width = g_at_ms + 1
};
inline constexpr std::size_t guard_reasons = 2;  // errors, latency

// A table's counters, one array.
enum TableSlot : std::size_t {
    t_requests = 0,     // every request it decided for
    t_misdirected = 1,  // no rule: 421
    t_regex_errors = 2,
    t_runtime = 3,      // routed by a runtime host
    table_width = 4
};

// A server's cell: the words every worker adds to for one server of a
// group (an upstream with dynroute_servers, or a runtime service).  The
// writer makes it in the zone's slab when it adds the server; workers only
// add to it (picked, released, responses, fails) or store to it
// (disabled_until), with relaxed atomics, and the writer stores retired.
// Fourteen words are used (the glue keeps two more); a cell takes cell_bytes, the slab's size class for
// them (nginx's slab rounds an allocation up to a power of two), so two
// cells never share a cache line.
enum ServerSlot : std::size_t {
    s_picked = 0,     // tries handed to the server (the balancer's get)
    s_released = 1,   // tries given back (free), whatever their outcome
    s_responses = 2,  // + status class: the status of the try's response
    s_fails = s_responses + classes,  // tries free() was told had failed,
                                      // as nginx counts them for max_fails
    s_disabled_until = s_fails + 1,   // seconds since the epoch (nginx's
                                      // ngx_time()) when the last max_fails
                                      // take-out ends; stored, 0: never
    s_retired_ms = s_disabled_until + 1,  // the writer's clock, ms, when the
                                          // server left its list; 0: in one
    // dynroute_health_check (health_check.hpp), stored by the worker that
    // probes the server:
    s_health = s_retired_ms + 1,  // state, consecutive count, last probe
                                  // (health::pack)
    s_up_since_ms = s_health + 1,  // ms since the epoch when it came back
                                   // up after being down (slow start); 0:
                                   // never
    s_checks = s_up_since_ms + 1,   // probes, in all
    s_check_failures = s_checks + 1,  // probes that failed
    server_width = s_check_failures + 1
};
inline constexpr std::size_t cell_bytes = 128;
static_assert(server_width * sizeof(std::uint64_t) <= cell_bytes);

// How long a retired cell stays after it was retired, at least: the time
// between a worker's generation check and its picked increment is one
// synchronous call, far below it.
inline constexpr std::uint64_t retire_ms = 1000;

// Tries in flight: picked - released, 0 if released is ahead.  The words
// are read one at a time, without a lock, while workers add to them, so a
// reader can see a try's release and miss its pick; a gauge below zero
// would be that artefact, not a state of the server.
std::uint64_t inflight(std::uint64_t picked, std::uint64_t released) noexcept;

// Whether a writer may free a retired cell at now_ms (same clock as
// retired_ms): retired, every try handed out given back, and retire_ms
// passed since.  A cell still in a list (retired_ms 0) never is.
bool cell_may_free(std::uint64_t picked, std::uint64_t released,
                   std::uint64_t retired_ms, std::uint64_t now_ms) noexcept;

// A server's one state, as the metrics and the status page show it.
enum class ServerState : std::uint8_t {
    up, down, drain, failed, removed,
    unhealthy  // dynroute_health_check found it down
};
inline constexpr std::size_t server_states = 6;

// "up", "down", "drain", "failed", "removed", "unhealthy".
const char *state_name(ServerState s) noexcept;

// The state of a server from its flags and its cell: removed (retired,
// still listed until its cell is freed), else down, else drain, else
// failed while disabled_until (seconds) is after now_s, else up.
ServerState server_state(bool removed, bool down, bool drain,
                         std::uint64_t disabled_until,
                         std::uint64_t now_s) noexcept;

// The same, with the cell's health word: unhealthy (health::down) comes
// after drain and before failed.
ServerState server_state(bool removed, bool down, bool drain,
                         std::uint64_t disabled_until, std::uint64_t now_s,
                         std::uint64_t health) noexcept;

struct ServerStats {
    std::string name;  // canonical: 10.0.0.5:8080, [2001:db8::5]:8080,
                       // unix:/run/app.sock
    ServerState state = ServerState::up;
    std::uint32_t weight = 1;
    bool backup = false;
    std::array<std::uint64_t, server_width> values{};  // the cell's words
};

enum class GroupKind : std::uint8_t {
    upstream,  // an upstream{} with dynroute_servers
    service    // a runtime service
};

// A group and its servers: those of its list, then its retired cells not
// freed yet (state removed).  Its name is the upstream label.
struct GroupStats {
    std::string name;
    GroupKind kind = GroupKind::upstream;
    bool checked = false;  // dynroute_health_check: its servers' checks
    std::vector<ServerStats> servers;
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
    bool guarded = false;  // its rollout has a guard: the words below
    std::array<std::uint64_t, guard_width> guard{};
};

struct RolloutStats {
    std::string name;
    std::string primary;  // live
    std::vector<VariantStats> variants;
    // the guard's trip in force (the runtime state): the variant, empty if
    // none, its reason ("errors", "latency") and detail
    std::string tripped;
    std::string tripped_reason;
    std::string tripped_detail;
};

// Stream (ngx_stream_dynroute_module): what a session counts into, the
// same layout for a table, a rule and a rollout's variant.  The status is
// the stream session's ($status): 200, 400, 403, 500, 502, 503.
inline constexpr std::array<unsigned, 6> stream_statuses = {200, 400, 403,
                                                            500, 502, 503};
// The histogram of session times: upper bounds in milliseconds, 10 ms to an
// hour (sessions last longer than requests), plus one for everything
// longer.
inline constexpr std::array<std::uint32_t, 9> session_bucket_ms = {
    10, 100, 500, 1000, 5000, 30000, 300000, 1800000, 3600000};
inline constexpr std::size_t session_buckets = session_bucket_ms.size() + 1;

enum SessionSlot : std::size_t {
    x_status = 0,  // + stream_statuses' index: sessions ended with it
    x_received = x_status + stream_statuses.size(),  // bytes from clients
    x_sent = x_received + 1,                           // bytes to clients
    x_buckets = x_sent + 1,  // + session bucket (not cumulative)
    x_sum_ms = x_buckets + session_buckets,  // session time, ms
    session_width = x_sum_ms + 1,
    // a stream table's own, after the sessions' words:
    x_unnamed = session_width,   // decided with no name (no SNI, an empty
                                 // key or one that is no name)
    x_unrouted = x_unnamed + 1,  // no rule and no default: closed
    x_preread_timeouts = x_unrouted + 1,  // preread_timeout passed before
                                          // the ClientHello was whole
    x_regex_errors = x_preread_timeouts + 1,
    stream_table_width = x_regex_errors + 1
};

// The index of a stream status in stream_statuses, or -1.
int stream_status_index(unsigned status) noexcept;

// The bucket a session time falls in: 0 .. session_buckets - 1.
std::size_t session_bucket(std::uint64_t ms) noexcept;

struct StreamRuleStats {
    std::string rule;  // as written
    std::array<std::uint64_t, session_width> values{};
};

struct StreamTableStats {
    std::string name;
    std::size_t rules = 0;  // configured
    std::array<std::uint64_t, stream_table_width> values{};
    std::vector<StreamRuleStats> per_rule;  // empty unless Snapshot::per_rule
};

struct StreamVariantStats {
    std::string name;
    std::string upstream;  // configured (never flipped)
    std::uint32_t weight = 0;  // live, in 0.01 %
    std::array<std::uint64_t, session_width> values{};
};

struct StreamRolloutStats {
    std::string name;
    std::vector<StreamVariantStats> variants;
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
    std::vector<GroupStats> groups;  // rendered after the rest, if any
    // stream{}'s tables and rollouts, counted in the same zone; rendered
    // (dynroute_stream_*) when there are any
    std::vector<StreamTableStats> stream_tables;
    std::vector<StreamRolloutStats> stream_rollouts;
};

// "dynroute_..." families, text format 0.0.4.
std::string render_prometheus(const Snapshot &s);

// The status page's JSON.
std::string render_stats(const Snapshot &s);

// A label value for the text format: \ " and newline escaped.
std::string escape_label(std::string_view v);

}  // namespace dynroute::metrics
