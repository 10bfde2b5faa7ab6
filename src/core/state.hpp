// The runtime state that the API changes without a reload: per rollout, new
// weights, upstream flips and a new primary; runtime host entries; the
// draining flag; the runtime lists of servers and the runtime services
// (members.hpp).  What it is checked against (the configuration's
// rollouts, tables and upstreams) is a Schema, so that a state written
// under one configuration can be loaded under the next and pruned.
//
// JSON in and out goes through nlohmann::json.  Everything here may
// allocate and throw: it runs in the API handler and at configuration time,
// never on the routing path.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "members.hpp"
#include "runtime_hosts.hpp"
#include "text.hpp"

namespace dynroute {

// A rollout's "ramp" line (ramp.hpp): none when steps is empty.
struct RampInfo {
    std::string variant;
    std::vector<std::uint32_t> steps;      // 0.01 %, increasing
    std::uint64_t hold_ms = 0;
};

struct RolloutInfo {
    std::string name;
    std::vector<std::string> variants;
    std::vector<std::uint32_t> weights;    // configured, 0.01 %
    std::vector<std::string> upstreams;    // configured
    std::size_t primary = 0;               // configured
    RampInfo ramp;                         // its ramp, if any

    std::size_t find(std::string_view variant) const noexcept;
};

// The configuration as the runtime state sees it.
struct Schema {
    std::vector<RolloutInfo> rollouts;
    std::vector<std::string> tables;
    std::vector<std::size_t> table_rules;
    // by table, its key=$variable ("$name"), or "" (or none): the Host
    std::vector<std::string> table_keys;
    std::set<std::string, std::less<>> upstreams;  // upstream{} blocks
    // every upstream{} block, a target or not (dynroute_balancer's, the
    // carrier): names a service may not take
    std::vector<std::string> upstream_blocks;
    // the upstreams with dynroute_servers
    std::map<std::string, ServersInfo, std::less<>> servers;
    ServicesInfo services;  // the carrier, if any

    const RolloutInfo *rollout(std::string_view name) const noexcept;
    bool has_table(std::string_view name) const noexcept;
    // a runtime host's target: an upstream{} block or a rollout (or a
    // service of the State: is_runtime_target)
    bool is_target(std::string_view name) const noexcept;
    const ServersInfo *servers_of(std::string_view name) const noexcept;
    // Why a service may not be called name: the upstream{} or rollout it
    // would be taken for (letter case aside); "" if it may.
    std::string name_clash(std::string_view name) const;
};

// stream{}'s tables, upstreams and rollouts are in the same runtime state
// as http{}'s, their names with this prefix (docs/design/stream.md): the
// API's {prefix}stream/... resources see them without it, and its other
// resources do not see them.  A namespace ("" or stream_ns) is the
// argument ns of the functions below.
inline constexpr std::string_view stream_ns = "stream/";

// Whether name is of namespace ns: ns "" holds every name without the
// stream prefix.
bool in_ns(std::string_view name, std::string_view ns) noexcept;

// name without ns's prefix (name as it is when it is not of ns)
std::string_view strip_ns(std::string_view name, std::string_view ns)
    noexcept;

// Why a rollout's guard took a variant out (docs/design/canary.md).
enum class GuardReason : std::uint8_t { errors = 0, latency = 1 };
inline constexpr std::size_t guard_reasons = 2;

// "errors", "latency"
std::string_view guard_reason_name(GuardReason r) noexcept;

// A guard's trip: the variant it took to 0 %, kept until an operator
// writes to the rollout.
struct GuardTrip {
    std::string variant;  // empty: not tripped
    GuardReason reason = GuardReason::errors;
    bool fleet = false;      // recorded from a PATCH (the fleet's agent),
                             // not judged on this node
    std::uint64_t at_ms = 0;  // unix time, ms
    std::string detail;       // the figures, for people

    bool tripped() const noexcept { return !variant.empty(); }

    bool operator==(const GuardTrip &o) const noexcept
    {
        return variant == o.variant && reason == o.reason
               && fleet == o.fleet && at_ms == o.at_ms && detail == o.detail;
    }
};

// Where a rollout's ramp stands.  A ramp is configured (its steps and
// hold); this is what the runtime made of it.
enum class RampPhase : std::uint8_t { ready = 0, running, paused, aborted,
                                      done };
inline constexpr std::size_t ramp_phases = 5;

// "ready", "running", "paused", "aborted", "done"
std::string_view ramp_phase_name(RampPhase p) noexcept;

struct RampState {
    RampPhase phase = RampPhase::ready;
    std::uint32_t step = 0;      // the step in force, unless ready
    std::uint64_t since_ms = 0;  // unix ms when its hold (re)started
    std::uint64_t held_ms = 0;   // hold served before a pause
    std::string why;             // the last move's reason, for people

    bool operator==(const RampState &o) const noexcept
    {
        return phase == o.phase && step == o.step && since_ms == o.since_ms
               && held_ms == o.held_ms && why == o.why;
    }
};

// What the runtime changed in one rollout; empty parts keep the configured
// values.
struct RolloutOverride {
    std::map<std::string, std::uint32_t> weights;   // every variant, or none
    std::map<std::string, std::string> upstreams;   // variant -> upstream
    std::string primary;                             // empty: configured
    GuardTrip trip;
    RampState ramp;

    bool empty() const noexcept
    {
        return weights.empty() && upstreams.empty() && primary.empty()
               && !trip.tripped() && ramp.phase == RampPhase::ready;
    }
};

// What a fleet agent (dynroute-agent) reports: the etcd revision this
// node has applied, and whether the agent has lost etcd.
struct FleetStatus {
    bool set = false;  // never reported: absent from the answers
    std::uint64_t revision = 0;
    bool stale = false;

    bool operator==(const FleetStatus &o) const noexcept
    {
        return set == o.set && revision == o.revision && stale == o.stale;
    }
};

// The largest generation: the largest integer that every JSON reader
// (JavaScript's numbers among them) keeps exactly.  A state file holding
// more is not valid, and a change at this generation is refused, so a
// generation never wraps around to an older one.
inline constexpr std::uint64_t max_generation = (1ULL << 53) - 1;

struct State {
    std::uint64_t generation = 0;
    bool draining = false;
    std::map<std::string, RolloutOverride> rollouts;
    HostMap hosts;
    FleetStatus fleet;
    // upstream with dynroute_servers -> its runtime list (none: its server
    // lines)
    std::map<std::string, ServerGroup, std::less<>> servers;
    std::map<std::string, Service, std::less<>> services;
    std::uint32_t next_service_id = 1;
};

// What a runtime host or a flip may name in this state: the schema's
// targets and the state's services.
bool is_runtime_target(const State &state, const Schema &schema,
                       std::string_view name);

// The live values of a rollout: the configured ones with the override on
// top.
struct Effective {
    std::vector<std::uint32_t> weights;
    std::vector<std::string> upstreams;
    std::size_t primary = 0;
};

Effective effective(const RolloutInfo &info, const RolloutOverride *o);

// The state as JSON: {"version": 2, "generation", "draining", "rollouts",
// "servers" and "services" when there are any, and "hosts" unless
// with_hosts is false}.  The state file's format, and the zone's copy of
// everything but the hosts.  Server and service ids are not written.
std::string dump_state(const State &state, bool with_hosts);

// Reads dump_state's output, version 1 (no servers, no services) or 2.
// Throws ConfigError when the text is not such a document (a corrupt or
// truncated file); drops, with one line in `notices` each, what the schema
// no longer has.  Servers and services get ids from 1.
State load_state(std::string_view text, const Schema &schema,
                 std::vector<std::string> &notices);

// Drops what the schema does not have, one line in `notices` each.  Of a
// group over its limit (a lowered max=, servers= or max_services=), the
// servers or services beyond it in the list's order (primaries first, by
// address; services by name) go; a group that hashes loses its backups.
void prune(State &state, const Schema &schema,
           std::vector<std::string> &notices);

// API changes, applied to `state` only when the whole change is valid;
// throw ApiError (400 bad body, 404 unknown name) and leave it untouched.
// patch_rollout: "weights", "upstreams", "primary"; any PATCH clears a
// guard's trip unless it carries "guard": {"tripped": {...}}, which
// records that trip as the fleet's (how the agent replays one), and
// "weights" pause a running ramp.  reset_rollout forgets trip and ramp.
void patch_rollout(State &state, const Schema &schema, std::string_view name,
                   std::string_view body);
void reset_rollout(State &state, const Schema &schema, std::string_view name);
// The guard's write: the variant's live weight goes to 0 and is added to
// the primary's, the trip is recorded (not fleet), and a running or paused
// ramp is aborted with the detail as its why.  Throws ApiError 404: no
// such rollout or variant; 409: the variant is the primary.
void trip_guard(State &state, const Schema &schema, std::string_view rollout,
                std::string_view variant, GuardReason reason,
                std::string_view detail, std::uint64_t at_ms);
// Runtime hosts of the tables of namespace ns: the body's "table" and
// "target" are named without ns's prefix, the default table is the only
// table of ns, the target must be of ns.  A host is in one table: a host
// of another namespace's table is 409.  Returns true when the host is new.
bool put_host(State &state, const Schema &schema, std::string_view host,
              std::string_view body, std::string_view ns = {});
// 404 when the host is not a runtime host of a table of ns
void delete_host(State &state, std::string_view host,
                 std::string_view ns = {});
// {"revision": N, "stale": false}
void put_fleet(State &state, std::string_view body);

struct BulkResult {
    std::size_t added = 0, replaced = 0, removed = 0;
};
BulkResult patch_hosts(State &state, const Schema &schema,
                       std::string_view body, std::string_view ns = {});

// Servers and services (members.cpp).  GROUP is an upstream with
// dynroute_servers or a runtime service; ADDR any spelling parse_address()
// takes (the answers and the state use the canonical one).  Each throws
// ApiError and leaves the state untouched: 400 a body, an address or a
// field that does not parse, the same address twice in a body (both
// spellings named), backup in a group that hashes; 404 no such group or
// server; 405 resetting a service; 409 POST of a server that is there, a
// service named like an upstream{} or rollout, or still targeted, or no
// carrier for services; 507 more servers than max= or the carrier holds.

// PUT upstreams/GROUP/servers: {"ADDR": {fields}, ...} replaces the list.
BulkResult put_servers(State &state, const Schema &schema,
                       std::string_view group, std::string_view body);
// PATCH upstreams/GROUP/servers: {"ADDR": {fields} or null, ...}; a
// server there keeps the fields not given, a new one the defaults.
BulkResult patch_servers(State &state, const Schema &schema,
                         std::string_view group, std::string_view body);
// POST upstreams/GROUP/servers: {"server": "ADDR", fields...}; returns
// the canonical address.
std::string post_server(State &state, const Schema &schema,
                        std::string_view group, std::string_view body);
// PUT upstreams/GROUP/servers/ADDR: true when the server is new.
bool put_server(State &state, const Schema &schema, std::string_view group,
                std::string_view addr, std::string_view body);
void patch_server(State &state, const Schema &schema, std::string_view group,
                  std::string_view addr, std::string_view body);
void delete_server(State &state, const Schema &schema,
                   std::string_view group, std::string_view addr);
// DELETE upstreams/GROUP/servers: back to the server lines.
void reset_servers(State &state, const Schema &schema,
                   std::string_view group);
// PUT services/NAME: {"balance": "round_robin" | "hash", "servers":
// {...}}, both optional; a service there keeps what is not given.  True
// when the service is new.
bool put_service(State &state, const Schema &schema, std::string_view name,
                 std::string_view body);
void delete_service(State &state, const Schema &schema,
                    std::string_view name);

// The servers GROUP serves: its runtime list, else its server lines;
// nullptr if GROUP is neither an upstream with dynroute_servers nor a
// service.
const ServerList *current_servers(const State &state, const Schema &schema,
                                  std::string_view group);

// API answers.
std::string render_upstreams(const State &state, const Schema &schema);
std::string render_servers(const State &state, const Schema &schema,
                           std::string_view group);
std::string render_server(const State &state, const Schema &schema,
                          std::string_view group, std::string_view addr);
std::string render_services(const State &state, const Schema &schema);
std::string render_service(const State &state, const Schema &schema,
                           std::string_view name);
// The answers of namespace ns show its names without the prefix and
// nothing of the other namespace.  A rollout's name is given with it.
std::string render_state(const State &state, const Schema &schema,
                         std::string_view zone, std::string_view ns = {});
std::string render_rollout(const State &state, const Schema &schema,
                           std::string_view name);  // throws ApiError 404
// A change's answer: {"generation": N, "rollout": {...}}.
std::string render_rollout_change(const State &state, const Schema &schema,
                                  std::string_view name);
std::string render_hosts(const State &state, std::string_view ns = {});
std::string render_host(const State &state, std::string_view host,
                        std::string_view ns = {});
std::string render_generation(const State &state);
std::string render_bulk(const State &state, const BulkResult &r);
std::string render_error(std::string_view message);
std::string render_fleet(const State &state);  // throws ApiError 404

// A weight from JSON: a number of percent (25, 12.5; two decimals at most)
// or a string "25%".  Throws ApiError 400.
std::uint32_t json_weight(std::string_view variant, double number);

}  // namespace dynroute
