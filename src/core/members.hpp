// Servers that change at run time (issue 23; docs/design/membership.md):
// the runtime list of an upstream with dynroute_servers, and the runtime
// services that the upstream with dynroute_services carries.  The types
// here are what the State and the Schema hold; the API's changes and
// answers over them are declared in state.hpp and made in members.cpp.
//
// A list is keyed by canonical address (address.hpp): the address is a
// server's identity, so a list cannot hold one twice, and its order (by
// address, primaries and backups apart in a group block) is the same on
// every node of a fleet whatever order the writes came in.
//
// Server ids: each server carries an id, unique within its group, that it
// keeps for as long as it stays in the group with the same address (a
// change of weight, down or drain, or a PUT that replaces its fields, keeps
// it); a removal and a new add of the same address give a new one.  The
// group's counter (next_id) lives beside the list, so a group block holds
// both and a writer decodes both back from the zone; the state file holds
// neither (a restart starts every worker afresh), and loading gives ids
// from 1.  The configured servers carry the ids the glue gives them (their
// order in the upstream block, from 1), so that a runtime list made from
// them keeps them.  Workers map ids to their slots; a service's servers
// are told apart from another service's by the service's id as well.
// Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace dynroute {

// A server's fields, NGINX Plus's and nginx's server line's.
struct ServerSpec {
    std::uint32_t id = 0;            // 0: none yet (given when added)
    std::uint32_t weight = 1;        // 1 to max_server_weight
    std::uint32_t max_fails = 1;     // 0: failures never take it out
    std::uint32_t fail_timeout = 10; // seconds
    bool backup = false;
    bool down = false;
    bool drain = false;  // out of new picks, as down, shown as draining
};

// 10,000 keeps smooth weighted round robin's total within 31 bits at
// 65,536 servers.
inline constexpr std::uint32_t max_server_weight = 10000;
inline constexpr std::uint32_t max_server_fails = 65535;
inline constexpr std::uint32_t max_fail_timeout = 7 * 86400;  // a week

// the fields alone: what a change compares, ids aside
inline bool same_fields(const ServerSpec &a, const ServerSpec &b) noexcept
{
    return a.weight == b.weight && a.max_fails == b.max_fails
           && a.fail_timeout == b.fail_timeout && a.backup == b.backup
           && a.down == b.down && a.drain == b.drain;
}

inline bool operator==(const ServerSpec &a, const ServerSpec &b) noexcept
{
    return a.id == b.id && same_fields(a, b);
}

// canonical address -> server
using ServerList = std::map<std::string, ServerSpec>;

// A runtime list and the counter its new servers take their ids from.
struct ServerGroup {
    ServerList servers;
    std::uint32_t next_id = 1;

    // Gives every server without an id (0) the next id that no server of
    // the list holds: a counter that wraps never hands out one in use.
    void assign_ids();
};

inline bool operator==(const ServerGroup &a, const ServerGroup &b)
{
    return a.next_id == b.next_id && a.servers == b.servers;
}

enum class Balance : std::uint32_t { round_robin = 0, hash = 1 };

// A service created at run time; its id keys its group block (with
// service_key_bit) and is given, as server ids are, by a counter in the
// State.
struct Service {
    std::uint32_t id = 0;
    Balance balance = Balance::round_robin;
    ServerGroup group;
};

inline bool operator==(const Service &a, const Service &b)
{
    return a.id == b.id && a.balance == b.balance && a.group == b.group;
}

inline constexpr std::uint32_t service_key_bit = 0x80000000u;

// An upstream with dynroute_servers, as the configuration has it.
struct ServersInfo {
    std::uint32_t max = 256;   // servers the group may hold
    bool hash = false;         // hash=KEY: no backup
    ServerList configured;     // its server lines
};

// The upstream with dynroute_services, which carries every service.
struct ServicesInfo {
    std::string upstream;            // empty: no carrier, no services
    std::uint32_t max_services = 0;
    std::uint32_t max_servers = 0;   // every service's servers together
    bool hash = false;               // services may ask for "hash"
};

}  // namespace dynroute
