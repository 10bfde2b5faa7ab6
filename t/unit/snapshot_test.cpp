// The zone's binary snapshot: what is written is read back, in place, by
// id; a damaged or truncated block is read as far as it fits, never beyond.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

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
