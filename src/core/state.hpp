// The runtime state that the API changes without a reload: per rollout, new
// weights, upstream flips and a new primary; runtime host entries; the
// draining flag.  What it is checked against (the configuration's rollouts,
// tables and upstreams) is a Schema, so that a state written under one
// configuration can be loaded under the next and pruned.
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

#include "runtime_hosts.hpp"
#include "text.hpp"

namespace dynroute {

struct RolloutInfo {
    std::string name;
    std::vector<std::string> variants;
    std::vector<std::uint32_t> weights;    // configured, 0.01 %
    std::vector<std::string> upstreams;    // configured
    std::size_t primary = 0;               // configured

    std::size_t find(std::string_view variant) const noexcept;
};

// The configuration as the runtime state sees it.
struct Schema {
    std::vector<RolloutInfo> rollouts;
    std::vector<std::string> tables;
    std::vector<std::size_t> table_rules;
    std::set<std::string, std::less<>> upstreams;  // upstream{} blocks

    const RolloutInfo *rollout(std::string_view name) const noexcept;
    bool has_table(std::string_view name) const noexcept;
    // a runtime host's target: an upstream{} block or a rollout
    bool is_target(std::string_view name) const noexcept;
};

// What the runtime changed in one rollout; empty parts keep the configured
// values.
struct RolloutOverride {
    std::map<std::string, std::uint32_t> weights;   // every variant, or none
    std::map<std::string, std::string> upstreams;   // variant -> upstream
    std::string primary;                             // empty: configured

    bool empty() const noexcept
    {
        return weights.empty() && upstreams.empty() && primary.empty();
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
};

// The live values of a rollout: the configured ones with the override on
// top.
struct Effective {
    std::vector<std::uint32_t> weights;
    std::vector<std::string> upstreams;
    std::size_t primary = 0;
};

Effective effective(const RolloutInfo &info, const RolloutOverride *o);

// The state as JSON: {"version": 1, "generation", "draining", "rollouts",
// and "hosts" unless with_hosts is false}.  The state file's format, and
// the zone's copy of everything but the hosts.
std::string dump_state(const State &state, bool with_hosts);

// Reads dump_state's output.  Throws ConfigError when the text is not such
// a document (a corrupt or truncated file); drops, with one line in
// `notices` each, what the schema no longer has.
State load_state(std::string_view text, const Schema &schema,
                 std::vector<std::string> &notices);

// Drops what the schema does not have, one line in `notices` each.
void prune(State &state, const Schema &schema,
           std::vector<std::string> &notices);

// API changes, applied to `state` only when the whole change is valid;
// throw ApiError (400 bad body, 404 unknown name) and leave it untouched.
void patch_rollout(State &state, const Schema &schema, std::string_view name,
                   std::string_view body);
void reset_rollout(State &state, const Schema &schema, std::string_view name);
// Returns true when the host is new.
bool put_host(State &state, const Schema &schema, std::string_view host,
              std::string_view body);
void delete_host(State &state, std::string_view host);
// {"revision": N, "stale": false}
void put_fleet(State &state, std::string_view body);

struct BulkResult {
    std::size_t added = 0, replaced = 0, removed = 0;
};
BulkResult patch_hosts(State &state, const Schema &schema,
                       std::string_view body);

// API answers.
std::string render_state(const State &state, const Schema &schema,
                         std::string_view zone);
std::string render_rollout(const State &state, const Schema &schema,
                           std::string_view name);  // throws ApiError 404
// A change's answer: {"generation": N, "rollout": {...}}.
std::string render_rollout_change(const State &state, const Schema &schema,
                                  std::string_view name);
std::string render_hosts(const State &state);
std::string render_host(const State &state, std::string_view host);
std::string render_generation(const State &state);
std::string render_bulk(const State &state, const BulkResult &r);
std::string render_error(std::string_view message);
std::string render_fleet(const State &state);  // throws ApiError 404

// A weight from JSON: a number of percent (25, 12.5; two decimals at most)
// or a string "25%".  Throws ApiError 400.
std::uint32_t json_weight(std::string_view variant, double number);

}  // namespace dynroute
