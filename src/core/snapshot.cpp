#include "snapshot.hpp"

#include <cstring>

#include "address.hpp"

namespace dynroute {

namespace {

constexpr std::uint32_t names_magic = 0x314e5244;     // "DRN1"
constexpr std::uint32_t snapshot_magic = 0x31535244;  // "DRS1"
// "DRH2": the hosts hashed with Table::hash_host ("DRH1" had a hash of
// its own)
constexpr std::uint32_t hosts_magic = 0x32485244;
// "DRG2": with the ring of a hash group ("DRG1" had none)
constexpr std::uint32_t group_magic = 0x32475244;

// the head's fields
constexpr std::size_t at_magic = 0, at_size = 4, at_generation = 8,
                      at_config = 16, at_revision = 24, at_flags = 32,
                      at_rollouts = 36, header_size = 40;

constexpr std::uint32_t flag_draining = 1, flag_fleet = 2,
                        flag_fleet_stale = 4;
constexpr std::uint32_t flag_weights = 1, flag_canary = 2;

constexpr std::size_t rollout_header = 16, variant_size = 12;
// a rollout's trip and ramp: fixed words, then the two texts
constexpr std::size_t c_trip_variant = 0, c_trip_bits = 4, c_trip_at = 8,
                      c_ramp_phase = 16, c_ramp_step = 20, c_ramp_since = 24,
                      c_ramp_held = 32, c_detail = 40, c_why = 44,
                      canary_header = 48;
// the hosts block's: magic, size, mask, count, arena size
constexpr std::size_t hosts_header = 20,
                      host_header = SnapshotView::host_record_header;

// a group block's header and its servers' fixed entries
constexpr std::size_t g_size = 4, g_key = 8, g_method = 12, g_written = 16,
                      g_next_id = 24, g_primaries = 28, g_backups = 32,
                      g_name = 36, g_ring = 40, g_points = 44,
                      group_header = 48;
constexpr std::size_t e_id = 0, e_weight = 4, e_max_fails = 8,
                      e_fail_timeout = 12, e_flags = 16, e_at = 20,
                      e_socklen = 24, e_name = 26, e_cell = 32,
                      group_entry = 40;
constexpr std::uint32_t flag_backup = 1, flag_down = 2, flag_drain = 4;

std::uint16_t load16(const unsigned char *p) noexcept
{
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::uint32_t load32(const unsigned char *p) noexcept
{
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::uint64_t load64(const unsigned char *p) noexcept
{
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void put32(std::string &out, std::uint32_t v)
{
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

void set32(std::string &out, std::size_t at, std::uint32_t v)
{
    std::memcpy(&out[at], &v, sizeof v);
}

void set64(std::string &out, std::size_t at, std::uint64_t v)
{
    std::memcpy(&out[at], &v, sizeof v);
}

void set16(std::string &out, std::size_t at, std::uint16_t v)
{
    std::memcpy(&out[at], &v, sizeof v);
}

std::size_t slots_for(std::size_t count)
{
    std::size_t slots = 16;
    while (slots < count * 2) {
        slots *= 2;
    }
    return slots;
}

}  // namespace

// ---- names ------------------------------------------------------------------

// magic, count, then count offsets (from the block's start) and lengths,
// then the bytes
std::string encode_names(const std::vector<std::string> &names)
{
    std::string out;
    std::size_t at = 8 + names.size() * 8;

    put32(out, names_magic);
    put32(out, static_cast<std::uint32_t>(names.size()));

    for (const auto &n : names) {
        put32(out, static_cast<std::uint32_t>(at));
        put32(out, static_cast<std::uint32_t>(n.size()));
        at += n.size();
    }

    for (const auto &n : names) {
        out += n;
    }

    return out;
}

NamesView::NamesView(const void *data, std::size_t size) noexcept
{
    const auto *p = static_cast<const unsigned char *>(data);

    if (p == nullptr || size < 8 || load32(p) != names_magic
        || load32(p + 4) > (size - 8) / 8)
    {
        return;
    }

    data_ = p;
    size_ = size;
    count_ = load32(p + 4);
}

std::string_view NamesView::operator[](NameId id) const noexcept
{
    if (id >= count_) {
        return {};
    }

    std::uint32_t off = load32(data_ + 8 + id * 8);
    std::uint32_t len = load32(data_ + 12 + id * 8);

    if (off > size_ || len > size_ - off) {
        return {};
    }

    return {reinterpret_cast<const char *>(data_ + off), len};
}

std::vector<std::string> NamesView::all() const
{
    std::vector<std::string> out;

    for (NameId i = 0; i < count_; i++) {
        out.emplace_back((*this)[i]);
    }

    return out;
}

// ---- writing a block ---------------------------------------------------------

std::size_t snapshot_hosts_size(std::size_t count, std::size_t host_bytes)
{
    return hosts_header + slots_for(count) * 8 + count * host_header
           + host_bytes;
}

std::size_t block_size(const void *prefix) noexcept
{
    const auto *p = static_cast<const unsigned char *>(prefix);
    std::uint32_t magic = load32(p);

    if (magic != snapshot_magic && magic != hosts_magic
        && magic != group_magic)
    {
        return 0;
    }

    return load32(p + 4);
}

std::string encode_snapshot(
    const State &st, std::uint64_t config,
    const std::function<NameId(std::string_view)> &id,
    const std::function<NameId(std::string_view)> &target)
{
    const auto &tid = target ? target : id;

    std::string out(header_size, '\0');

    std::uint32_t flags = (st.draining ? flag_draining : 0)
                          | (st.fleet.set ? flag_fleet : 0)
                          | (st.fleet.stale ? flag_fleet_stale : 0);

    set32(out, at_magic, snapshot_magic);
    set64(out, at_generation, st.generation);
    set64(out, at_config, config);
    set64(out, at_revision, st.fleet.revision);
    set32(out, at_flags, flags);

    // the rollouts the runtime changed: every variant it says something of

    std::uint32_t rollouts = 0;

    for (const auto &[name, o] : st.rollouts) {
        NameId rid = id(name);

        if (rid == no_name) {
            continue;
        }

        std::vector<std::string_view> variants;

        for (const auto &w : o.weights) {
            variants.push_back(w.first);
        }

        for (const auto &u : o.upstreams) {
            if (o.weights.find(u.first) == o.weights.end()) {
                variants.push_back(u.first);
            }
        }

        std::size_t count_at = out.size() + 12;
        bool canary = o.trip.tripped() || o.ramp.phase != RampPhase::ready;

        put32(out, rid);
        put32(out, (o.weights.empty() ? 0 : flag_weights)
                   | (canary ? flag_canary : 0));
        put32(out, o.primary.empty() ? no_name : id(o.primary));
        put32(out, 0);

        std::uint32_t count = 0;

        for (std::string_view v : variants) {
            NameId vid = id(v);

            if (vid == no_name) {
                continue;
            }

            auto w = o.weights.find(std::string(v));
            auto u = o.upstreams.find(std::string(v));

            put32(out, vid);
            put32(out, w == o.weights.end() ? 0 : w->second);
            put32(out, u == o.upstreams.end() ? no_name : tid(u->second));
            count++;
        }

        set32(out, count_at, count);

        if (canary) {
            std::size_t at = out.size();
            NameId tv = o.trip.tripped() ? id(o.trip.variant) : no_name;
            std::string_view detail = std::string_view(o.trip.detail)
                                          .substr(0, 0xffff);
            std::string_view why = std::string_view(o.ramp.why)
                                       .substr(0, 0xffff);

            out.append(canary_header, '\0');
            set32(out, at + c_trip_variant, tv);
            set32(out, at + c_trip_bits,
                  static_cast<std::uint32_t>(o.trip.reason)
                      | (o.trip.fleet ? 0x100u : 0u));
            set64(out, at + c_trip_at, o.trip.at_ms);
            set32(out, at + c_ramp_phase,
                  static_cast<std::uint32_t>(o.ramp.phase));
            set32(out, at + c_ramp_step, o.ramp.step);
            set64(out, at + c_ramp_since, o.ramp.since_ms);
            set64(out, at + c_ramp_held, o.ramp.held_ms);
            set32(out, at + c_detail, static_cast<std::uint32_t>(detail.size()));
            set32(out, at + c_why, static_cast<std::uint32_t>(why.size()));
            out.append(detail);
            out.append(why);
            out.append((4 - out.size() % 4) % 4, '\0');
        }

        rollouts++;
    }

    set32(out, at_rollouts, rollouts);
    set32(out, at_size, static_cast<std::uint32_t>(out.size()));

    return out;
}

std::string encode_snapshot_hosts(
    const HostMap &hosts, const std::function<NameId(std::string_view)> &id,
    const std::function<NameId(std::string_view)> &target)
{
    const auto &tid = target ? target : id;

    std::vector<std::pair<const std::string *, SnapshotView::Host>> kept;
    std::size_t host_bytes = 0;

    for (const auto &[host, e] : hosts) {
        SnapshotView::Host h{id(e.table), tid(e.target)};

        if (h.table == no_name || h.target == no_name || host.size() > 255) {
            continue;
        }

        kept.emplace_back(&host, h);
        host_bytes += host.size();
    }

    std::size_t slots = slots_for(kept.size());
    std::size_t arena_at = hosts_header + slots * 8;
    std::string out(snapshot_hosts_size(kept.size(), host_bytes), '\0');

    set32(out, 0, hosts_magic);
    set32(out, 4, static_cast<std::uint32_t>(out.size()));
    set32(out, 8, static_cast<std::uint32_t>(slots - 1));
    set32(out, 12, static_cast<std::uint32_t>(kept.size()));
    set32(out, 16, static_cast<std::uint32_t>(out.size() - arena_at));

    std::size_t off = 0;

    for (const auto &[host, h] : kept) {
        std::size_t at = arena_at + off;

        set32(out, at, h.table);
        set32(out, at + 4, h.target);
        out[at + 8] = static_cast<char>(host->size());
        std::memcpy(&out[at + host_header], host->data(), host->size());

        std::uint64_t hv = SnapshotView::hash(*host);
        std::size_t i = hv & (slots - 1);

        while (load32(reinterpret_cast<const unsigned char *>(
                   &out[hosts_header + i * 8 + 4])) != 0)
        {
            i = (i + 1) & (slots - 1);
        }

        set32(out, hosts_header + i * 8, static_cast<std::uint32_t>(hv >> 32));
        set32(out, hosts_header + i * 8 + 4,
              static_cast<std::uint32_t>(off + 1));

        off += host_header + host->size();
    }

    return out;
}

// ---- reading a block in place ---------------------------------------------

SnapshotView::SnapshotView(const void *head, std::size_t head_size,
                           const void *hosts, std::size_t hosts_size) noexcept
{
    const auto *p = static_cast<const unsigned char *>(head);
    const auto *h = static_cast<const unsigned char *>(hosts);

    if (p == nullptr || head_size < header_size
        || load32(p + at_magic) != snapshot_magic
        || load32(p + at_size) != head_size)
    {
        return;
    }

    if (h == nullptr || hosts_size < hosts_header
        || load32(h) != hosts_magic || load32(h + 4) != hosts_size)
    {
        return;
    }

    std::uint32_t mask = load32(h + 8);
    std::uint64_t slots = std::uint64_t(mask) + 1;

    if ((slots & mask) != 0 || slots * 8 > hosts_size - hosts_header
        || load32(h + 16) > hosts_size - hosts_header - slots * 8)
    {
        return;
    }

    data_ = p;
    size_ = head_size;
    rollouts_ = load32(p + at_rollouts);
    rollouts_at_ = header_size;
    mask_ = mask;
    host_count_ = load32(h + 12);
    arena_size_ = load32(h + 16);
    slots_ = h + hosts_header;
    arena_ = slots_ + slots * 8;
}

std::uint64_t SnapshotView::generation() const noexcept
{
    return data_ ? load64(data_ + at_generation) : 0;
}

std::uint64_t SnapshotView::config() const noexcept
{
    return data_ ? load64(data_ + at_config) : 0;
}

bool SnapshotView::draining() const noexcept
{
    return data_ && (load32(data_ + at_flags) & flag_draining);
}

FleetStatus SnapshotView::fleet() const noexcept
{
    FleetStatus f;

    if (data_ && (load32(data_ + at_flags) & flag_fleet)) {
        f.set = true;
        f.revision = load64(data_ + at_revision);
        f.stale = load32(data_ + at_flags) & flag_fleet_stale;
    }

    return f;
}

bool SnapshotView::rollout(std::size_t off, Rollout &out, std::size_t &next)
    const noexcept
{
    if (off > size_ || size_ - off < rollout_header) {
        return false;
    }

    const unsigned char *p = data_ + off;
    std::uint32_t count = load32(p + 12);

    if ((size_ - off - rollout_header) / variant_size < count) {
        return false;
    }

    out.name = load32(p);
    out.weights = load32(p + 4) & flag_weights;
    out.primary = load32(p + 8);
    out.variants = count;
    out.at = p + rollout_header;
    next = off + rollout_header + count * variant_size;

    if (load32(p + 4) & flag_canary) {
        if (size_ - next < canary_header) {
            return false;
        }

        const unsigned char *c = data_ + next;
        std::size_t texts = std::size_t(load32(c + c_detail))
                            + load32(c + c_why);

        if (texts > size_ - next - canary_header) {
            return false;
        }

        std::size_t len = canary_header + texts;
        len += (4 - len % 4) % 4;

        if (len > size_ - next) {
            return false;
        }

        out.canary = c;
        out.canary_size = static_cast<std::uint32_t>(canary_header + texts);
        next += len;
    }

    return true;
}

bool SnapshotView::canary(const Rollout &r, NameId &trip_variant,
                          GuardTrip &trip, RampState &ramp)
{
    if (r.canary == nullptr) {
        return false;
    }

    const unsigned char *c = r.canary;
    std::uint32_t bits = load32(c + c_trip_bits);
    std::uint32_t phase = load32(c + c_ramp_phase);
    std::size_t detail = load32(c + c_detail), why = load32(c + c_why);

    if (phase >= ramp_phases || (bits & 0xff) >= guard_reasons) {
        return false;
    }

    trip_variant = load32(c + c_trip_variant);
    trip.reason = static_cast<GuardReason>(bits & 0xff);
    trip.fleet = bits & 0x100;
    trip.at_ms = load64(c + c_trip_at);
    trip.detail.assign(reinterpret_cast<const char *>(c + canary_header),
                       detail);
    ramp.phase = static_cast<RampPhase>(phase);
    ramp.step = load32(c + c_ramp_step);
    ramp.since_ms = load64(c + c_ramp_since);
    ramp.held_ms = load64(c + c_ramp_held);
    ramp.why.assign(reinterpret_cast<const char *>(c + canary_header + detail),
                    why);

    return true;
}

SnapshotView::Variant SnapshotView::variant(const Rollout &r, std::size_t i)
    noexcept
{
    Variant v;

    if (i < r.variants) {
        const unsigned char *p = r.at + i * variant_size;
        v.name = load32(p);
        v.weight = load32(p + 4);
        v.upstream = load32(p + 8);
    }

    return v;
}

bool SnapshotView::host_record(std::size_t off, std::string_view &host,
                               Host &out, std::size_t &next) const noexcept
{
    if (off >= arena_size_ || arena_size_ - off < host_header) {
        return false;
    }

    const unsigned char *r = arena_ + off;
    std::size_t len = r[8];

    if (arena_size_ - off - host_header < len) {
        return false;
    }

    out.table = load32(r);
    out.target = load32(r + 4);
    host = std::string_view(reinterpret_cast<const char *>(r + host_header),
                            len);
    next = off + host_header + len;

    return true;
}

// ---- a writer's State from a block --------------------------------------------

bool decode_snapshot(const SnapshotView &v,
                     const std::function<std::string_view(NameId)> &name,
                     State &out)
{
    if (!v.valid()) {
        return false;
    }

    State st;
    bool whole = true;

    st.generation = v.generation();
    st.draining = v.draining();
    st.fleet = v.fleet();

    auto named = [&](NameId id) {
        std::string_view n = name(id);
        whole = whole && !n.empty();
        return std::string(n);
    };

    bool fits = v.each_rollout([&](const SnapshotView::Rollout &r) {
        RolloutOverride &o = st.rollouts[named(r.name)];

        if (r.primary != no_name) {
            o.primary = named(r.primary);
        }

        for (std::size_t i = 0; i < r.variants; i++) {
            SnapshotView::Variant var = SnapshotView::variant(r, i);
            std::string vn = named(var.name);

            if (r.weights) {
                o.weights[vn] = var.weight;
            }

            if (var.upstream != no_name) {
                o.upstreams[vn] = named(var.upstream);
            }
        }

        NameId tv = no_name;

        if (SnapshotView::canary(r, tv, o.trip, o.ramp)) {
            if (tv != no_name) {
                o.trip.variant = named(tv);
            } else {
                o.trip = GuardTrip();
            }
        }
    });

    fits = fits && v.each_host([&](std::string_view h,
                                   const SnapshotView::Host &e) {
        st.hosts[std::string(h)] = {named(e.table), named(e.target)};
    });

    if (!fits || !whole) {
        return false;
    }

    out = std::move(st);
    return true;
}

// ---- a group's block ----------------------------------------------------------

namespace {

// the servers in the block's order: primaries, then backups
std::vector<const ServerList::value_type *> block_order(const ServerList &l)
{
    std::vector<const ServerList::value_type *> out;

    for (int backup = 0; backup < 2; backup++) {
        for (const auto &s : l) {
            if (s.second.backup == (backup == 1)) {
                out.push_back(&s);
            }
        }
    }
    return out;
}

void put_entry(std::string &out, std::size_t at, const ServerSpec &s,
               const ServerAddress &a, std::size_t bytes_at)
{
    set32(out, at + e_id, s.id);
    set32(out, at + e_weight, s.weight);
    set32(out, at + e_max_fails, s.max_fails);
    set32(out, at + e_fail_timeout, s.fail_timeout);
    set32(out, at + e_flags, (s.backup ? flag_backup : 0)
                             | (s.down ? flag_down : 0)
                             | (s.drain ? flag_drain : 0));
    set32(out, at + e_at, static_cast<std::uint32_t>(bytes_at));
    set16(out, at + e_socklen, static_cast<std::uint16_t>(a.socklen()));
    set16(out, at + e_name, static_cast<std::uint16_t>(a.name.size()));
}

// the ring of a hash group: its primaries in the block's order (a hash
// group has no backups; a backup would never be picked)
std::vector<ChashPoint>
block_ring(const std::vector<const ServerList::value_type *> &order)
{
    std::vector<ChashServer> servers;

    for (const auto *s : order) {
        if (s->second.backup) {
            break;
        }
        ChashName n = split_chash_name(s->first);
        servers.push_back({n.host, n.port, s->second.weight});
    }
    return build_chash_ring(servers);
}

}  // namespace

std::uint64_t group_ring_points(const ServerGroup &group) noexcept
{
    std::uint64_t n = 0;

    for (const auto &s : group.servers) {
        if (!s.second.backup) {
            n += std::uint64_t{s.second.weight} * chash_points_per_weight;
        }
    }
    return n;
}

std::string encode_snapshot_group(std::uint32_t key, std::uint64_t written,
                                  Balance method, std::string_view name,
                                  const ServerGroup &group)
{
    auto order = block_order(group.servers);
    std::size_t backups = 0;
    std::string out(group_header + order.size() * group_entry, '\0');

    out.append(name.data(), name.size());

    for (std::size_t i = 0; i < order.size(); i++) {
        const auto &[addr, spec] = *order[i];
        ServerAddress a = parse_address(addr);

        put_entry(out, group_header + i * group_entry, spec, a, out.size());
        out += a.sockaddr;
        out += a.name;
        backups += spec.backup;
    }

    std::size_t ring_at = 0, points = 0;

    if (method == Balance::hash) {
        std::vector<ChashPoint> ring = block_ring(order);

        out.resize((out.size() + 7) & ~std::size_t{7}, '\0');
        ring_at = out.size();
        points = ring.size();
        append_chash_points(out, ring);
    }

    if (out.size() > 0xffffffffu) {
        throw ApiError(507, "the block of \"" + std::string(name) + "\" takes "
                            + std::to_string(out.size())
                            + " bytes, more than a block may");
    }

    set32(out, 0, group_magic);
    set32(out, g_size, static_cast<std::uint32_t>(out.size()));
    set32(out, g_key, key);
    set32(out, g_method, static_cast<std::uint32_t>(method));
    set64(out, g_written, written);
    set32(out, g_next_id, group.next_id);
    set32(out, g_primaries, static_cast<std::uint32_t>(order.size() - backups));
    set32(out, g_backups, static_cast<std::uint32_t>(backups));
    set32(out, g_name, static_cast<std::uint32_t>(name.size()));
    set32(out, g_ring, static_cast<std::uint32_t>(ring_at));
    set32(out, g_points, static_cast<std::uint32_t>(points));

    return out;
}

std::size_t group_cell_offset(std::size_t i) noexcept
{
    return group_header + i * group_entry + e_cell;
}

void set_group_cell(std::string &block, std::size_t i, std::uint64_t cell)
{
    set64(block, group_cell_offset(i), cell);
}

GroupView::GroupView(const void *data, std::size_t size) noexcept
{
    const auto *p = static_cast<const unsigned char *>(data);

    if (p == nullptr || size < group_header || load32(p) != group_magic
        || load32(p + g_size) != size || load32(p + g_method) > 1)
    {
        return;
    }

    std::uint64_t count = std::uint64_t(load32(p + g_primaries))
                          + load32(p + g_backups);
    std::uint64_t room = (size - group_header) / group_entry;

    if (count > room
        || load32(p + g_name) > size - group_header - count * group_entry)
    {
        return;
    }

    data_ = p;
    size_ = size;
    primaries_ = load32(p + g_primaries);
    backups_ = load32(p + g_backups);
    name_ = std::string_view(
        reinterpret_cast<const char *>(p + group_header + count * group_entry),
        load32(p + g_name));

    // the ring, if its start lies in the block; its points as far as the
    // block holds them (ChashRingView cuts the count to the bytes)
    std::uint32_t ring_at = load32(p + g_ring);

    if (ring_at >= group_header && ring_at <= size) {
        ring_ = ChashRingView(p + ring_at, size - ring_at,
                              load32(p + g_points));
    }
}

std::uint32_t GroupView::key() const noexcept
{
    return data_ ? load32(data_ + g_key) : 0;
}

std::uint64_t GroupView::written() const noexcept
{
    return data_ ? load64(data_ + g_written) : 0;
}

Balance GroupView::method() const noexcept
{
    return data_ ? static_cast<Balance>(load32(data_ + g_method))
                 : Balance::round_robin;
}

std::uint32_t GroupView::next_id() const noexcept
{
    return data_ ? load32(data_ + g_next_id) : 0;
}

bool GroupView::server(std::size_t i, Server &out) const noexcept
{
    if (i >= servers()) {
        return false;
    }

    const unsigned char *e = data_ + group_header + i * group_entry;
    std::size_t at = load32(e + e_at);
    std::size_t socklen = load16(e + e_socklen);
    std::size_t len = load16(e + e_name);

    if (socklen > max_socklen || len > max_address_name || at > size_
        || socklen + len > size_ - at)
    {
        return false;
    }

    std::uint32_t flags = load32(e + e_flags);

    out.id = load32(e + e_id);
    out.weight = load32(e + e_weight);
    out.max_fails = load32(e + e_max_fails);
    out.fail_timeout = load32(e + e_fail_timeout);
    out.backup = flags & flag_backup;
    out.down = flags & flag_down;
    out.drain = flags & flag_drain;
    out.cell = load64(e + e_cell);
    out.sockaddr = data_ + at;
    out.socklen = static_cast<std::uint32_t>(socklen);
    out.name = std::string_view(reinterpret_cast<const char *>(data_ + at
                                                               + socklen),
                                len);
    return true;
}

namespace {

// a block's server as the writer holds it, if it is one
bool decode_server(const GroupView::Server &s, ServerList &out)
{
    try {
        ServerAddress a = parse_address(s.name);
        std::string_view bytes(reinterpret_cast<const char *>(s.sockaddr),
                               s.socklen);

        if (a.name != s.name || a.sockaddr != bytes) {
            return false;
        }
    } catch (const ApiError &) {
        return false;
    }

    ServerSpec spec;
    spec.id = s.id;
    spec.weight = s.weight;
    spec.max_fails = s.max_fails;
    spec.fail_timeout = s.fail_timeout;
    spec.backup = s.backup;
    spec.down = s.down;
    spec.drain = s.drain;

    return out.emplace(std::string(s.name), spec).second;
}

}  // namespace

bool decode_group(const GroupView &v, std::string &name, ServerGroup &out)
{
    if (!v.valid()) {
        return false;
    }

    ServerGroup g;
    g.next_id = v.next_id();

    for (std::size_t i = 0; i < v.servers(); i++) {
        GroupView::Server s;
        if (!v.server(i, s) || s.backup != (i >= v.primaries())
            || !decode_server(s, g.servers))
        {
            return false;
        }
    }

    name = std::string(v.name());
    out = std::move(g);
    return true;
}

}  // namespace dynroute
