// The zone's binary snapshot: what is written is read back, in place, by
// id; a damaged or truncated block is read as far as it fits, never beyond.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "address.hpp"
#include "name_ids.hpp"
#include "snapshot.hpp"

using namespace dynroute;

namespace {

using Ids = NameIds;

State sample()
{
    State st;
    st.generation = 42;
    st.draining = true;
    st.fleet = {true, 1042, true};
    st.rollouts["checkout"].weights = {{"stable", 7500}, {"canary", 2500}};
    st.rollouts["checkout"].primary = "canary";
    st.rollouts["site"].upstreams = {{"green", "service_b_green"}};
    for (int i = 0; i < 1000; i++) {
        st.hosts["tenant" + std::to_string(i) + ".example.com"] =
            {i % 2 ? "main" : "internal", i % 3 ? "service_a" : "checkout"};
    }
    return st;
}

// a snapshot's two blocks, kept together
struct Blocks {
    std::string head, hosts;

    Blocks(const State &st, std::uint64_t config, Ids &ids)
        : head(encode_snapshot(st, config, std::ref(ids))),
          hosts(encode_snapshot_hosts(st.hosts, std::ref(ids)))
    {
    }

    SnapshotView view() const
    {
        return SnapshotView(head.data(), head.size(), hosts.data(),
                            hosts.size());
    }
};

}  // namespace

TEST(Snapshot, WhatIsWrittenIsReadBack)
{
    Ids ids;
    State st = sample();
    Blocks b(st, 7, ids);
    SnapshotView v = b.view();

    ASSERT_TRUE(v.valid());
    EXPECT_EQ(v.generation(), 42u);
    EXPECT_EQ(v.config(), 7u);
    EXPECT_TRUE(v.draining());
    EXPECT_EQ(v.fleet(), st.fleet);
    EXPECT_EQ(v.rollouts(), 2u);
    EXPECT_EQ(v.hosts(), 1000u);

    SnapshotView::Host h;
    ASSERT_TRUE(v.find_host("tenant7.example.com", h));
    EXPECT_EQ(ids.names[h.table], "main");
    EXPECT_EQ(ids.names[h.target], "service_a");
    ASSERT_TRUE(v.find_host("tenant9.example.com", h));
    EXPECT_EQ(ids.names[h.target], "checkout");
    EXPECT_FALSE(v.find_host("tenant1000.example.com", h));
    EXPECT_FALSE(v.find_host("tenant7.example.co", h));

    std::string names = encode_names(ids.names);
    NamesView nv(names.data(), names.size());
    State back;
    ASSERT_TRUE(decode_snapshot(v, [&](NameId id) { return nv[id]; }, back));
    EXPECT_EQ(back.generation, st.generation);
    EXPECT_EQ(back.draining, st.draining);
    EXPECT_EQ(back.fleet, st.fleet);
    EXPECT_EQ(back.hosts, st.hosts);
    ASSERT_EQ(back.rollouts.size(), 2u);
    EXPECT_EQ(back.rollouts["checkout"].weights, st.rollouts["checkout"].weights);
    EXPECT_EQ(back.rollouts["checkout"].primary, "canary");
    EXPECT_TRUE(back.rollouts["checkout"].upstreams.empty());
    EXPECT_EQ(back.rollouts["site"].upstreams, st.rollouts["site"].upstreams);
    EXPECT_TRUE(back.rollouts["site"].weights.empty());
    EXPECT_TRUE(back.rollouts["site"].primary.empty());
}

// A request hashes its Host once: the runtime hosts and the table take
// the same hash.
TEST(Snapshot, FindHostWithTheTablesHash)
{
    Ids ids;
    State st = sample();
    Blocks b(st, 7, ids);
    SnapshotView v = b.view();
    ASSERT_TRUE(v.valid());

    for (const auto &[host, e] : st.hosts) {
        std::uint64_t h = Table::hash_host(host);
        EXPECT_EQ(SnapshotView::hash(host), h);
        SnapshotView::Host got;
        ASSERT_TRUE(v.find_host(host, h, got)) << host;
        EXPECT_EQ(ids.names[got.table], e.table);
        EXPECT_EQ(ids.names[got.target], e.target);
    }

    SnapshotView::Host got;
    for (const char *h : {"tenant1000.example.com", "tenant7.example.co",
                          "Tenant7.example.com", "tenant7.example.com.", "",
                          "t"}) {
        EXPECT_FALSE(v.find_host(h, Table::hash_host(h), got)) << h;
    }
    // another hash: a miss, never a wrong entry
    for (std::uint64_t h : {std::uint64_t{0}, ~std::uint64_t{0},
                            Table::hash_host("tenant8.example.com")}) {
        EXPECT_FALSE(v.find_host("tenant7.example.com", h, got));
    }

    // a hosts block of the previous format (another hash) is not read
    std::string old = b.hosts;
    old[3] = '1';
    EXPECT_FALSE(SnapshotView(b.head.data(), b.head.size(), old.data(),
                              old.size()).valid());
}

// Hosts are compared a word at a time: names of 1 to 40 bytes are found,
// and a name with any one byte changed, or one byte more or less, is not.
TEST(Snapshot, FindHostAtEveryLength)
{
    HostMap hosts;
    for (std::size_t len = 1; len <= 40; len++) {
        std::string h;
        for (std::size_t i = 0; i < len; i++) {
            h += "abcdefghij.klmnopqrst"[(i * 7 + len) % 21];
        }
        hosts[h] = {"main", len % 2 ? "service_a" : "service_b"};
    }
    Ids ids;
    State st;
    st.hosts = hosts;
    Blocks b(st, 1, ids);
    SnapshotView v = b.view();
    ASSERT_TRUE(v.valid());

    SnapshotView::Host got;
    for (const auto &[h, e] : hosts) {
        ASSERT_TRUE(v.find_host(h, got)) << h;
        EXPECT_EQ(ids.names[got.target], e.target) << h;
        for (std::size_t i = 0; i < h.size(); i++) {
            std::string m = h;
            m[i] = 'z';
            EXPECT_FALSE(v.find_host(m, got)) << m;
        }
        EXPECT_FALSE(v.find_host(h + "z", got)) << h;
        EXPECT_FALSE(v.find_host(h.substr(1), got) &&
                     hosts.count(h.substr(1)) == 0) << h;
    }
}

TEST(Snapshot, RolloutsByIdInPlace)
{
    Ids ids;
    Blocks b(sample(), 1, ids);
    SnapshotView v = b.view();
    std::map<std::string, std::uint32_t> weights;

    EXPECT_TRUE(v.each_rollout([&](const SnapshotView::Rollout &r) {
        if (ids.names[r.name] != "checkout") {
            return;
        }
        EXPECT_TRUE(r.weights);
        EXPECT_EQ(ids.names[r.primary], "canary");
        for (std::size_t i = 0; i < r.variants; i++) {
            auto var = SnapshotView::variant(r, i);
            weights[ids.names[var.name]] = var.weight;
            EXPECT_EQ(var.upstream, no_name);
        }
    }));
    EXPECT_EQ(weights, (std::map<std::string, std::uint32_t>{
                           {"canary", 2500}, {"stable", 7500}}));
}

TEST(Snapshot, EmptyState)
{
    Ids ids;
    Blocks b(State(), 3, ids);
    SnapshotView v = b.view();
    SnapshotView::Host h;

    ASSERT_TRUE(v.valid());
    EXPECT_EQ(v.rollouts(), 0u);
    EXPECT_EQ(v.hosts(), 0u);
    EXPECT_FALSE(v.find_host("a.example.com", h));
    EXPECT_FALSE(v.fleet().set);
    EXPECT_FALSE(SnapshotView(nullptr, 0, nullptr, 0).valid());
    EXPECT_FALSE(SnapshotView(b.head.data(), b.head.size(), nullptr, 0)
                     .valid());
    // the blocks say what they are, and their size
    EXPECT_EQ(block_size(b.head.data()), b.head.size());
    EXPECT_EQ(block_size(b.hosts.data()), b.hosts.size());
    EXPECT_EQ(block_size("\0\0\0\0\0\0\0\0"), 0u);
    // two heads, or hosts where the head goes, are no snapshot
    EXPECT_FALSE(SnapshotView(b.hosts.data(), b.hosts.size(), b.hosts.data(),
                              b.hosts.size()).valid());
}

TEST(Snapshot, UnknownIdsAreNotDecoded)
{
    Ids ids;
    Blocks b(sample(), 1, ids);
    SnapshotView v = b.view();
    State out;
    out.generation = 5;

    // a names block that lacks the last names: the State is refused whole
    std::vector<std::string> fewer(ids.names.begin(), ids.names.end() - 1);
    std::string names = encode_names(fewer);
    NamesView nv(names.data(), names.size());
    EXPECT_FALSE(decode_snapshot(v, [&](NameId id) { return nv[id]; }, out));
    EXPECT_EQ(out.generation, 5u);
}

TEST(Snapshot, DamagedBlocksStayInBounds)
{
    Ids ids;
    Blocks b(sample(), 1, ids);
    std::string names = encode_names(ids.names);
    NamesView nv(names.data(), names.size());
    std::mt19937 rng(7);

    // truncated: the size in the header no longer fits
    for (std::size_t n = 0; n < b.head.size(); n += 7) {
        EXPECT_FALSE(SnapshotView(b.head.data(), n, b.hosts.data(),
                                  b.hosts.size()).valid()) << n;
    }
    for (std::size_t n = 0; n < b.hosts.size(); n += 97) {
        EXPECT_FALSE(SnapshotView(b.head.data(), b.head.size(),
                                  b.hosts.data(), n).valid()) << n;
    }

    // bytes flipped anywhere: read within the blocks whatever they say
    for (int round = 0; round < 2000; round++) {
        std::string head = b.head, hosts = b.hosts;
        for (int k = 0; k < 8; k++) {
            std::string &t = (rng() & 1) ? head : hosts;
            t[rng() % t.size()] = static_cast<char>(rng());
        }
        // buffers of exactly the blocks' sizes: ASan (the fuzz build)
        // sees any read past them
        std::vector<unsigned char> hb(head.begin(), head.end());
        std::vector<unsigned char> sb(hosts.begin(), hosts.end());
        SnapshotView v(hb.data(), hb.size(), sb.data(), sb.size());
        SnapshotView::Host h;
        State out;
        (void) v.find_host("tenant7.example.com", h);
        (void) v.find_host("tenant8.example.com",
                           static_cast<std::uint64_t>(rng()) << 32 | rng(), h);
        (void) v.each_rollout([](const SnapshotView::Rollout &r) {
            for (std::size_t i = 0; i < r.variants; i++) {
                (void) SnapshotView::variant(r, i);
            }
        });
        (void) v.each_host([](std::string_view, const SnapshotView::Host &) {});
        (void) decode_snapshot(v, [&](NameId id) { return nv[id]; }, out);
    }
}

TEST(Snapshot, NamesBlock)
{
    std::vector<std::string> n{"service_a", "", "checkout", std::string(300, 'x')};
    std::string block = encode_names(n);
    NamesView v(block.data(), block.size());

    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0], "service_a");
    EXPECT_EQ(v[2], "checkout");
    EXPECT_EQ(v[3], std::string(300, 'x'));
    EXPECT_EQ(v[4], "");
    EXPECT_EQ(v[no_name], "");
    EXPECT_EQ(v.all(), n);
    EXPECT_EQ(NamesView(block.data(), 7).size(), 0u);
    EXPECT_EQ(NamesView(block.data(), 20).size(), 0u);  // count over the size
}

// ---- group blocks -------------------------------------------------------------

namespace {

ServerGroup sample_group()
{
    ServerGroup g;
    g.next_id = 9;
    g.servers["10.0.0.5:8080"] = {3, 2, 3, 5, false, false, false};
    g.servers["[2001:db8::5]:8080"] = {1, 10000, 0, 0, false, true, false};
    g.servers["unix:/run/app.sock"] = {7, 1, 1, 10, false, false, true};
    g.servers["10.0.0.9:80"] = {8, 1, 1, 10, true, false, false};
    return g;
}

// every server the view reads lies inside [p, p + n)
void expect_inside(const GroupView &v, const unsigned char *p, std::size_t n)
{
    for (std::size_t i = 0; i < v.servers() + 2; i++) {
        GroupView::Server s;
        if (!v.server(i, s)) {
            continue;
        }
        ASSERT_LT(i, v.servers());
        ASSERT_GE(s.sockaddr, p);
        ASSERT_LE(s.sockaddr + s.socklen, p + n);
        ASSERT_GE(reinterpret_cast<const unsigned char *>(s.name.data()), p);
        ASSERT_LE(reinterpret_cast<const unsigned char *>(s.name.data())
                      + s.name.size(), p + n);
        ASSERT_LE(s.socklen, max_socklen);
        ASSERT_LE(s.name.size(), max_address_name);
    }
    if (v.valid()) {
        ASSERT_GE(reinterpret_cast<const unsigned char *>(v.name().data()), p);
        ASSERT_LE(reinterpret_cast<const unsigned char *>(v.name().data())
                      + v.name().size(), p + n);
    }
}

}  // namespace

TEST(SnapshotGroup, WhatIsWrittenIsReadBack)
{
    ServerGroup g = sample_group();
    std::string b = encode_snapshot_group(service_key_bit | 5, 42,
                                          Balance::hash, "cart", g);
    GroupView v(b.data(), b.size());

    ASSERT_TRUE(v.valid());
    EXPECT_EQ(block_size(b.data()), b.size());
    EXPECT_EQ(v.key(), service_key_bit | 5);
    EXPECT_EQ(v.written(), 42u);
    EXPECT_EQ(v.method(), Balance::hash);
    EXPECT_EQ(v.next_id(), 9u);
    EXPECT_EQ(v.primaries(), 3u);
    EXPECT_EQ(v.backups(), 1u);
    EXPECT_EQ(v.name(), "cart");

    // primaries by address, then the backups
    std::vector<std::string> names;
    for (std::size_t i = 0; i < v.servers(); i++) {
        GroupView::Server s;
        ASSERT_TRUE(v.server(i, s));
        names.emplace_back(s.name);
        ServerAddress a = parse_address(s.name);
        EXPECT_EQ(std::string(reinterpret_cast<const char *>(s.sockaddr),
                              s.socklen), a.sockaddr);
        EXPECT_EQ(s.cell, 0u);
        const ServerSpec &spec = g.servers.at(std::string(s.name));
        EXPECT_EQ(s.id, spec.id);
        EXPECT_EQ(s.weight, spec.weight);
        EXPECT_EQ(s.max_fails, spec.max_fails);
        EXPECT_EQ(s.fail_timeout, spec.fail_timeout);
        EXPECT_EQ(s.backup, spec.backup);
        EXPECT_EQ(s.down, spec.down);
        EXPECT_EQ(s.drain, spec.drain);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"10.0.0.5:8080", "[2001:db8::5]:8080",
                                               "unix:/run/app.sock", "10.0.0.9:80"}));
    GroupView::Server s;
    EXPECT_FALSE(v.server(4, s));

    // the glue's cell, in place
    set_group_cell(b, 2, 0x123456789abcull);
    ASSERT_TRUE(GroupView(b.data(), b.size()).server(2, s));
    EXPECT_EQ(s.cell, 0x123456789abcull);

    std::string name;
    ServerGroup back;
    ASSERT_TRUE(decode_group(GroupView(b.data(), b.size()), name, back));
    EXPECT_EQ(name, "cart");
    EXPECT_TRUE(back == g);

    // an empty group is a block too
    std::string e = encode_snapshot_group(3, 1, Balance::round_robin, "shop_api",
                                          ServerGroup());
    ASSERT_TRUE(GroupView(e.data(), e.size()).valid());
    EXPECT_EQ(GroupView(e.data(), e.size()).servers(), 0u);
    ASSERT_TRUE(decode_group(GroupView(e.data(), e.size()), name, back));
    EXPECT_TRUE(back.servers.empty());
}

namespace {

// a ring read from a block: every point it reads lies inside [p, p + n)
void expect_ring_inside(const GroupView &v, const unsigned char *p,
                        std::size_t n)
{
    const ChashRingView &r = v.ring();
    if (r.size() == 0) {
        return;
    }
    auto *at = static_cast<const unsigned char *>(r.data());
    ASSERT_GE(at, p);
    ASSERT_LE(at + r.size() * sizeof(ChashPoint), p + n);
    (void) r.find(0x80000000u);
}

}  // namespace

TEST(SnapshotGroup, AHashGroupCarriesItsRing)
{
    // a hash group has no backups: sample_group() without its backup
    ServerGroup g = sample_group();
    g.servers.erase("10.0.0.9:80");

    std::string b = encode_snapshot_group(7, 42, Balance::hash, "cart", g);
    GroupView v(b.data(), b.size());
    ASSERT_TRUE(v.valid());
    ASSERT_EQ(v.servers(), 3u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.ring().data()) % 8,
              reinterpret_cast<std::uintptr_t>(b.data()) % 8);

    // nginx's ring over the servers in the block's order, names split as
    // nginx splits a server line's, weights as given
    std::vector<std::string> names;
    std::vector<ChashServer> servers;
    for (std::size_t i = 0; i < v.servers(); i++) {
        GroupView::Server s;
        ASSERT_TRUE(v.server(i, s));
        names.emplace_back(s.name);
    }
    for (std::size_t i = 0; i < names.size(); i++) {
        ChashName n = split_chash_name(names[i]);
        servers.push_back({n.host, n.port, g.servers.at(names[i]).weight});
    }
    std::vector<ChashPoint> ring = build_chash_ring(servers);

    ASSERT_EQ(v.ring().size(), ring.size());
    EXPECT_EQ(ring.size(), (2u + 10000u + 1u) * 160u);
    EXPECT_EQ(group_ring_points(g), (2u + 10000u + 1u) * 160u);
    for (std::size_t i = 0; i < ring.size(); i++) {
        ASSERT_EQ(v.ring().hash_at(i), ring[i].hash) << i;
        ASSERT_EQ(v.ring().server_at(i), ring[i].server) << i;
    }

    // the weights change the ring
    ServerGroup w = g;
    w.servers["10.0.0.5:8080"].weight = 3;
    std::string bw = encode_snapshot_group(7, 43, Balance::hash, "cart", w);
    EXPECT_EQ(GroupView(bw.data(), bw.size()).ring().size(), ring.size() + 160);

    // round robin carries none, nor does an empty hash group
    std::string rr = encode_snapshot_group(7, 42, Balance::round_robin,
                                           "cart", g);
    EXPECT_EQ(GroupView(rr.data(), rr.size()).ring().size(), 0u);
    std::string e = encode_snapshot_group(7, 42, Balance::hash, "cart",
                                          ServerGroup());
    ASSERT_TRUE(GroupView(e.data(), e.size()).valid());
    EXPECT_EQ(GroupView(e.data(), e.size()).ring().size(), 0u);

    // the ring leaves the servers and the decoding alone
    std::string name;
    ServerGroup back;
    ASSERT_TRUE(decode_group(v, name, back));
    EXPECT_TRUE(back == g);

    // a ring whose start or count lies beyond the block: what fits, or none
    std::string far = b;
    std::uint32_t past = static_cast<std::uint32_t>(b.size() + 8);
    std::memcpy(&far[40], &past, 4);
    EXPECT_EQ(GroupView(far.data(), far.size()).ring().size(), 0u);
    std::string many = b;
    std::uint32_t lots = 0xffffffffu;
    std::memcpy(&many[44], &lots, 4);
    EXPECT_EQ(GroupView(many.data(), many.size()).ring().size(), ring.size());
}

TEST(SnapshotGroup, ADecodedGroupIsWhatItsBytesSay)
{
    std::string b = encode_snapshot_group(1, 1, Balance::round_robin, "g",
                                          sample_group());
    std::string name;
    ServerGroup out;

    // the name no longer the address of the bytes: refused
    std::string changed = b;
    std::size_t at = changed.find("10.0.0.5:8080");
    changed[at + 7] = '6';
    ASSERT_TRUE(GroupView(changed.data(), changed.size()).valid());
    EXPECT_FALSE(decode_group(GroupView(changed.data(), changed.size()), name, out));

    // a method the reader does not know: no group
    std::string method = b;
    method[12] = 2;
    EXPECT_FALSE(GroupView(method.data(), method.size()).valid());
}

// every truncation and flipped bytes: read within the bytes whatever they say
TEST(SnapshotGroup, DamagedBlocksStayInBounds)
{
  for (Balance method : {Balance::round_robin, Balance::hash}) {
    ServerGroup g = sample_group();
    if (method == Balance::hash) {
        g.servers.erase("10.0.0.9:80");
        g.servers.erase("[2001:db8::5]:8080");  // a ring of 480 points
    }
    std::string b = encode_snapshot_group(service_key_bit | 5, 42, method,
                                          "cart", g);
    std::mt19937 rng(23);

    for (std::size_t n = 0; n < b.size(); n++) {
        // buffers of exactly n bytes: ASan (the fuzz build) sees any read
        // past them
        std::vector<unsigned char> t(b.begin(), b.begin() + n);
        GroupView v(t.data(), t.size());
        EXPECT_FALSE(v.valid()) << n;

        // and with the size in the header made to say n
        if (n >= 8) {
            std::uint32_t size = static_cast<std::uint32_t>(n);
            std::memcpy(t.data() + 4, &size, sizeof size);
            GroupView w(t.data(), t.size());
            expect_inside(w, t.data(), t.size());
            expect_ring_inside(w, t.data(), t.size());
            std::string name;
            ServerGroup out;
            (void) decode_group(w, name, out);
        }
    }

    for (std::size_t i = 0; i < b.size(); i++) {
        for (int bit = 0; bit < 8; bit++) {
            std::vector<unsigned char> t(b.begin(), b.end());
            t[i] ^= static_cast<unsigned char>(1u << bit);
            expect_inside(GroupView(t.data(), t.size()), t.data(), t.size());
            expect_ring_inside(GroupView(t.data(), t.size()), t.data(),
                               t.size());
        }
    }

    for (int round = 0; round < 2000; round++) {
        std::vector<unsigned char> t(b.begin(), b.end());
        for (int k = 0; k < 6; k++) {
            t[8 + rng() % (t.size() - 8)] = static_cast<unsigned char>(rng());
        }
        GroupView v(t.data(), t.size());
        expect_inside(v, t.data(), t.size());
        expect_ring_inside(v, t.data(), t.size());
        std::string name;
        ServerGroup out;
        (void) decode_group(v, name, out);
    }
  }
}

TEST(Snapshot, TripAndRampAreCarried)
{
    Ids ids;
    State st = sample();
    RolloutOverride &o = st.rollouts["checkout"];
    o.trip = {"canary", GuardReason::latency, true, 1796640000123,
              "p99 812 ms of 61 responses"};
    o.ramp = {RampPhase::aborted, 2, 1796640000000, 2500, "p99 812 ms"};
    st.rollouts["ramping"].ramp = {RampPhase::running, 0, 77, 0, "odd"};
    Blocks b(st, 7, ids);
    std::string names = encode_names(ids.names);
    NamesView nv(names.data(), names.size());
    auto name = [&](NameId id) { return nv[id]; };

    State back;
    ASSERT_TRUE(decode_snapshot(b.view(), name, back));
    EXPECT_EQ(back.rollouts["checkout"].trip, o.trip);
    EXPECT_EQ(back.rollouts["checkout"].ramp, o.ramp);
    EXPECT_EQ(back.rollouts["checkout"].weights, o.weights);
    EXPECT_EQ(back.rollouts["ramping"].ramp, st.rollouts["ramping"].ramp);
    EXPECT_FALSE(back.rollouts["ramping"].trip.tripped());
    EXPECT_EQ(back.rollouts["site"].upstreams, st.rollouts["site"].upstreams);

    // cut anywhere: never read past the end, never a wrong whole state
    for (std::size_t cut = 0; cut < b.head.size(); cut++) {
        std::string head = b.head.substr(0, cut);
        SnapshotView v(head.data(), head.size(), b.hosts.data(),
                       b.hosts.size());
        State part;
        (void) decode_snapshot(v, name, part);
    }
}
