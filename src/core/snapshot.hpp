// The runtime state as the zone publishes it: one block of bytes, written
// once and never changed, that every worker reads in place, without a lock,
// without parsing and without allocating.
//
// Names are ids.  The ids are the zone's own (Names): a name keeps its id
// for as long as the zone lives, whatever configuration is loaded, so that
// a block written under one configuration is read under the next, each
// configuration mapping the ids it knows to its own targets once, when it
// is loaded.  A worker then finds a runtime host's target, or a rollout's
// live weights, by index.
//
// The JSON of the API and of the state file is made from a State
// (state.hpp); a State is made from a block only by a writer, under the
// zone's mutex.
//
// Two blocks make one snapshot, so that a change that leaves the runtime
// hosts alone (weights, a drain) does not copy them: the head, and the
// hosts, which the next snapshot shares when its hosts are the same.
// Layout (native byte order: a block never leaves the machine), offsets
// from a block's start, every one checked against the block's size:
//   head      magic, size, generation, config, fleet revision, flags,
//             rollout count; then per rollout: name, flags, primary (a
//             variant's name, or none), variant count; per variant: name,
//             weight, upstream (a name, or none); then, if its flags say
//             so, the guard's trip and the ramp's state: trip variant (a
//             name, or none), reason and origin, time, ramp phase, step,
//             since, held, the lengths of the trip's detail and the
//             ramp's why, those bytes, padding to 4
//   hosts     magic, size, a hash of host names: slots (tag, record offset
//             + 1), then records (table, target, host length, host)
//   group     one per upstream with a runtime list and per runtime service
//             (docs/design/membership.md): magic, size, key, method,
//             written, next server id, primary count, backup count, name
//             length, where the ring is (0: none), its point count; then
//             per server, primaries first, each kind by address, a fixed
//             entry: id, weight, max_fails, fail_timeout, flags (backup,
//             down, drain), where its bytes are, socklen, name length,
//             cell; then the group's name; then each server's sockaddr
//             bytes and canonical name; then, for a hash group, at an
//             8-byte boundary, its ring (chash.hpp's flat form: 8 bytes a
//             point, sorted by hash), whose points name servers by their
//             index in the block
// Readers may be handed a block that a writer is freeing: they stay inside
// the bytes they were given whatever those hold, and the glue checks the
// zone's generation around what it read.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "chash.hpp"
#include "state.hpp"
#include "table.hpp"

namespace dynroute {

using NameId = std::uint32_t;
inline constexpr NameId no_name = 0xffffffffu;

// The zone's names, id = index: a block too, encoded again (with the new
// names at the end) when a configuration brings names the zone had not
// seen.  Read under the zone's mutex only.
std::string encode_names(const std::vector<std::string> &names);

class NamesView {
public:
    NamesView() noexcept = default;
    NamesView(const void *data, std::size_t size) noexcept;

    std::size_t size() const noexcept { return count_; }

    // the name of id, or "" (no such id, or a damaged block)
    std::string_view operator[](NameId id) const noexcept;

    std::vector<std::string> all() const;

private:
    const unsigned char *data_ = nullptr;
    std::size_t size_ = 0;
    std::uint32_t count_ = 0;
};

// The head block for st, written under configuration `config`, and the
// hosts block for st.hosts; id gives each name its id.  A name without one
// (no_name) is left out: st has been checked against the writer's
// configuration, all of whose names have ids.
// target, when given, gives the ids of the names a host or a variant
// routes to (a runtime service's: service_key_bit | its id), id those of
// the other names.
std::string encode_snapshot(
    const State &st, std::uint64_t config,
    const std::function<NameId(std::string_view)> &id,
    const std::function<NameId(std::string_view)> &target = nullptr);
std::string encode_snapshot_hosts(
    const HostMap &hosts, const std::function<NameId(std::string_view)> &id,
    const std::function<NameId(std::string_view)> &target = nullptr);

// A group block: key is the upstream's NameId, or service_key_bit | the
// service's id; written the generation that writes it; method how it
// balances: hash builds the ring of the primaries (nginx's, over their
// canonical names and weights) into the block.  The servers' cells are 0
// here: the glue sets them (set_group_cell) when it has them.  Throws
// ApiError if a server's name is not an address (a State made by
// state.hpp's functions has none such) or the block would pass 4 GB, and
// ConfigError if the ring would have more than chash_max_points points:
// a writer checks group_ring_points() first.
std::string encode_snapshot_group(std::uint32_t key, std::uint64_t written,
                                  Balance method, std::string_view name,
                                  const ServerGroup &group);

// The points a hash group's ring may have (160 a unit of weight of each
// primary; points of equal hash make it fewer): 8 bytes each in a block.
std::uint64_t group_ring_points(const ServerGroup &group) noexcept;

// Where server i's cell is in a group block of this layout, and setting it.
std::size_t group_cell_offset(std::size_t i) noexcept;
void set_group_cell(std::string &block, std::size_t i, std::uint64_t cell);

// A group block read in place, with SnapshotView's rules: a block whose
// header does not fit is not valid(); a server whose entry or bytes do not
// fit is not read (server() is false); nothing is read outside the bytes.
class GroupView {
public:
    GroupView() noexcept = default;
    GroupView(const void *data, std::size_t size) noexcept;

    bool valid() const noexcept { return data_ != nullptr; }

    std::uint32_t key() const noexcept;
    std::uint64_t written() const noexcept;
    Balance method() const noexcept;
    std::uint32_t next_id() const noexcept;
    std::uint32_t primaries() const noexcept { return primaries_; }
    std::uint32_t backups() const noexcept { return backups_; }
    std::size_t servers() const noexcept
    {
        return std::size_t(primaries_) + backups_;
    }
    std::string_view name() const noexcept { return name_; }

    // The ring (a hash group's; empty for another, or if its start is not
    // in the block): its points, as many as the block holds, name servers
    // by their index here, which a reader checks against servers().
    const ChashRingView &ring() const noexcept { return ring_; }

    struct Server {
        std::uint32_t id = 0;
        std::uint32_t weight = 0;
        std::uint32_t max_fails = 0;
        std::uint32_t fail_timeout = 0;
        bool backup = false, down = false, drain = false;
        std::uint64_t cell = 0;
        const unsigned char *sockaddr = nullptr;  // in the block
        std::uint32_t socklen = 0;                // at most max_socklen
        std::string_view name;                    // at most max_address_name
    };

    // Server i (i < servers()): primaries, then backups.  False if it
    // does not fit in the block.
    bool server(std::size_t i, Server &out) const noexcept;

private:
    const unsigned char *data_ = nullptr;
    std::size_t size_ = 0;
    std::uint32_t primaries_ = 0;
    std::uint32_t backups_ = 0;
    std::string_view name_;
    ChashRingView ring_;
};

// A writer's group from a block: its name and its servers with their ids
// and the counter.  False if a server does not fit, its name is not a
// canonical address, its bytes are not that address's, or it is there
// twice.
bool decode_group(const GroupView &v, std::string &name, ServerGroup &out);

// A block's size, from its first bytes (at least block_prefix of them): the
// glue checks that the whole block lies in the zone before reading it.
inline constexpr std::size_t block_prefix = 8;
std::size_t block_size(const void *prefix) noexcept;

class SnapshotView {
public:
    SnapshotView() noexcept = default;
    SnapshotView(const void *head, std::size_t head_size, const void *hosts,
                 std::size_t hosts_size) noexcept;

    bool valid() const noexcept { return data_ != nullptr; }

    std::uint64_t generation() const noexcept;
    std::uint64_t config() const noexcept;
    bool draining() const noexcept;
    FleetStatus fleet() const noexcept;
    std::size_t rollouts() const noexcept { return rollouts_; }
    std::size_t hosts() const noexcept { return host_count_; }

    struct Variant {
        NameId name = no_name;
        std::uint32_t weight = 0;      // if the rollout's weights are set
        NameId upstream = no_name;     // no_name: the configured one
    };

    struct Rollout {
        NameId name = no_name;
        bool weights = false;          // the runtime set every weight
        NameId primary = no_name;      // no_name: the configured one
        std::uint32_t variants = 0;
        const unsigned char *at = nullptr;
        // the guard's trip and the ramp (docs/design/canary.md): null
        // when the rollout has neither
        const unsigned char *canary = nullptr;
        std::uint32_t canary_size = 0;
    };

    // The trip and the ramp of r, as the writer gave them: false when r
    // has none or its record does not fit.
    static bool canary(const Rollout &r, NameId &trip_variant,
                       GuardTrip &trip, RampState &ramp);

    // Calls f(rollout) for each rollout the runtime changed; stops, and
    // returns false, at the first record that does not fit.
    template <class F> bool each_rollout(F &&f) const noexcept
    {
        std::size_t off = rollouts_at_;
        for (std::uint32_t i = 0; i < rollouts_; i++) {
            Rollout r;
            if (!rollout(off, r, off)) {
                return false;
            }
            f(r);
        }
        return true;
    }

    // The i-th variant of r (i < r.variants).
    static Variant variant(const Rollout &r, std::size_t i) noexcept;

    struct Host {
        NameId table = no_name;
        NameId target = no_name;
    };

    // A record: the entry's table and target (4 bytes each), the host's
    // length (1 byte), the host.
    static constexpr std::size_t host_record_header = 9;

    // The entry of host (lowercase, no trailing dot), or false.  Hosts are
    // compared byte for byte.
    bool find_host(std::string_view host, Host &out) const noexcept
    {
        return find_host(host, hash(host), out);
    }

    // The same, with hash == hash(host): a request hashes its Host once,
    // for this and for Table::find_lower().  Inline, the probe too: the
    // decision calls it for every request when runtime hosts are set.
    bool find_host(std::string_view host, std::uint64_t hash,
                   Host &out) const noexcept
    {
        if (!may_hold(hash)) {
            return false;
        }

        out = probe_host(host, hash);

        return out.table != no_name;
    }

    // False when no host with this hash can be in the block: it has none,
    // or the hash's first slot is empty (a host that is not there usually
    // finds it so).
    bool may_hold(std::uint64_t hash) const noexcept
    {
        return host_count_ != 0 && word32(slots_ + (hash & mask_) * 8 + 4) != 0;
    }

    // Calls f(host, entry) for each runtime host, in the order they were
    // encoded; false at the first record that does not fit.
    template <class F> bool each_host(F &&f) const
    {
        std::size_t off = 0;
        for (std::uint32_t i = 0; i < host_count_; i++) {
            std::string_view h;
            Host e;
            if (!host_record(off, h, e, off)) {
                return false;
            }
            f(h, e);
        }
        return true;
    }

    // The hosts block's hash: Table::hash_host() itself (blocks are
    // written and read by the same binary; the hosts block's magic says
    // which hash it was written with).
    static std::uint64_t hash(std::string_view host) noexcept
    {
        return Table::hash_host(host);
    }

private:
    bool rollout(std::size_t off, Rollout &out, std::size_t &next) const
        noexcept;
    bool host_record(std::size_t off, std::string_view &host, Host &out,
                     std::size_t &next) const noexcept;
    // The entry of host, or one whose table is no_name: returned in a
    // register, so that a caller's entry need not live in memory.
    static std::uint32_t word32(const unsigned char *p) noexcept
    {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }

    // find_host()'s search from the hash's first slot: host_record()'s
    // checks, inline, and the host compared a word at a time.
    Host probe_host(std::string_view host, std::uint64_t hash) const noexcept
    {
        std::uint32_t tag = static_cast<std::uint32_t>(hash >> 32);
        std::size_t i = hash & mask_;

        for (std::size_t probes = 0; probes <= mask_; probes++) {
            std::uint32_t off = word32(slots_ + i * 8 + 4);

            if (off == 0) {
                return Host{};
            }

            std::size_t at = off - 1;

            if (word32(slots_ + i * 8) == tag && at < arena_size_
                && arena_size_ - at >= host_record_header)
            {
                const unsigned char *r = arena_ + at;
                std::size_t len = r[8];

                if (len == host.size()
                    && arena_size_ - at - host_record_header >= len
                    && detail::equal_words<false>(
                        reinterpret_cast<const char *>(r + host_record_header),
                        host.data(), len))
                {
                    return Host{word32(r), word32(r + 4)};
                }
            }

            i = (i + 1) & mask_;
        }

        return Host{};
    }

    const unsigned char *data_ = nullptr;
    std::size_t size_ = 0;
    std::uint32_t rollouts_ = 0;
    std::size_t rollouts_at_ = 0;
    const unsigned char *slots_ = nullptr;
    const unsigned char *arena_ = nullptr;
    std::uint32_t mask_ = 0;
    std::uint32_t host_count_ = 0;
    std::uint32_t arena_size_ = 0;
};

// A writer's State from a block: names from `name`.  False if the block
// does not fit together, or names an id that `name` does not know ("").
bool decode_snapshot(const SnapshotView &v,
                     const std::function<std::string_view(NameId)> &name,
                     State &out);

// Bytes a block takes for these hosts (for sizing): the hash's slots and
// the records.
std::size_t snapshot_hosts_size(std::size_t count, std::size_t host_bytes);

}  // namespace dynroute
