// The smooth weighted round robin of balance.hpp against nginx's own loop:
// ngx_http_upstream_get_round_robin_peer, ngx_http_upstream_get_peer and
// ngx_http_upstream_free_round_robin_peer (nginx 1.22 to 1.26), written
// out below as nginx has them, over peer->next chains and a backup
// peers->next, with max_conns left out.  Both run the same requests (random
// weights, down servers, max_fails and fail_timeout, failed tries, the
// clock moving) and must pick the same servers, in the same order, with the
// same state after every step.
#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <random>
#include <vector>

#include "balance.hpp"

namespace balance = dynroute::balance;

namespace {

// ---- nginx's, as in src/http/ngx_http_upstream_round_robin.c ----------

struct NgxPeer {
    std::intptr_t current_weight = 0;
    std::intptr_t effective_weight = 0;
    std::intptr_t weight = 0;
    std::uintptr_t fails = 0;
    std::time_t accessed = 0;
    std::time_t checked = 0;
    std::uintptr_t max_fails = 0;
    std::time_t fail_timeout = 0;
    std::uintptr_t down = 0;
    int id = 0;
    NgxPeer *next = nullptr;
};

struct NgxPeers {
    bool single = false;
    std::uintptr_t number = 0;
    NgxPeer *peer = nullptr;
    NgxPeers *next = nullptr;
};

struct NgxRrp {
    NgxPeers *peers = nullptr;
    NgxPeer *current = nullptr;
    std::uintptr_t *tried = nullptr;
};

constexpr std::size_t bits = 8 * sizeof(std::uintptr_t);

NgxPeer *ngx_get_peer(NgxRrp *rrp, std::time_t now)
{
    std::uintptr_t m;
    std::intptr_t total;
    std::uintptr_t i, n, p;
    NgxPeer *peer, *best;

    best = nullptr;
    total = 0;
    p = 0;

    for (peer = rrp->peers->peer, i = 0; peer; peer = peer->next, i++) {
        n = i / bits;
        m = (std::uintptr_t) 1 << i % bits;

        if (rrp->tried[n] & m) {
            continue;
        }
        if (peer->down) {
            continue;
        }
        if (peer->max_fails && peer->fails >= peer->max_fails
            && now - peer->checked <= peer->fail_timeout)
        {
            continue;
        }

        peer->current_weight += peer->effective_weight;
        total += peer->effective_weight;

        if (peer->effective_weight < peer->weight) {
            peer->effective_weight++;
        }

        if (best == nullptr || peer->current_weight > best->current_weight) {
            best = peer;
            p = i;
        }
    }

    if (best == nullptr) {
        return nullptr;
    }

    rrp->current = best;
    n = p / bits;
    m = (std::uintptr_t) 1 << p % bits;
    rrp->tried[n] |= m;
    best->current_weight -= total;

    if (now - best->checked > best->fail_timeout) {
        best->checked = now;
    }

    return best;
}

// NGX_OK: true; NGX_BUSY: false
bool ngx_get_round_robin_peer(NgxRrp *rrp, std::time_t now)
{
    std::uintptr_t i, n;
    NgxPeer *peer;
    NgxPeers *peers = rrp->peers;

    if (peers->single) {
        peer = peers->peer;
        if (peer->down) {
            goto failed;
        }
        rrp->current = peer;
    } else {
        peer = ngx_get_peer(rrp, now);
        if (peer == nullptr) {
            goto failed;
        }
    }
    return true;

failed:
    if (peers->next) {
        rrp->peers = peers->next;
        n = (rrp->peers->number + (bits - 1)) / bits;
        for (i = 0; i < n; i++) {
            rrp->tried[i] = 0;
        }
        return ngx_get_round_robin_peer(rrp, now);
    }
    return false;
}

void ngx_free_round_robin_peer(NgxRrp *rrp, bool failed, std::time_t now,
                               std::uintptr_t &tries)
{
    NgxPeer *peer = rrp->current;

    if (rrp->peers->single) {
        tries = 0;
        return;
    }

    if (failed) {
        peer->fails++;
        peer->accessed = now;
        peer->checked = now;
        if (peer->max_fails) {
            peer->effective_weight -= peer->weight / peer->max_fails;
        }
        if (peer->effective_weight < 0) {
            peer->effective_weight = 0;
        }
    } else {
        if (peer->accessed < peer->checked) {
            peer->fails = 0;
        }
    }

    if (tries) {
        tries--;
    }
}

// ---- one upstream, both ways ------------------------------------------

struct Server {
    std::intptr_t weight;
    std::uintptr_t max_fails;
    std::time_t fail_timeout;
    bool down;
    bool backup;
};

struct Both {
    // nginx's: ngx_http_upstream_init_round_robin's order and fields
    std::vector<NgxPeer> primary, backup;
    NgxPeers peers, backups;
    // ours: primaries then backups, one array
    std::vector<balance::Entry> entries;
    balance::List<balance::Entry> list;
    std::uintptr_t ngx_tries = 0;

    explicit Both(const std::vector<Server> &servers)
    {
        int id = 0;
        for (const Server &s : servers) {
            NgxPeer p;
            p.weight = p.effective_weight = s.weight;
            p.max_fails = s.max_fails;
            p.fail_timeout = s.fail_timeout;
            p.down = s.down;
            p.id = id++;
            (s.backup ? backup : primary).push_back(p);
        }
        link(peers, primary);
        link(backups, backup);
        peers.single = primary.size() == 1 && backup.empty();
        peers.next = backup.empty() ? nullptr : &backups;
        for (const auto *part : {&primary, &backup}) {
            for (const NgxPeer &p : *part) {
                balance::Entry e;
                e.weight = e.effective_weight = p.weight;
                e.max_fails = p.max_fails;
                e.fail_timeout = p.fail_timeout;
                e.down = p.down;
                e.slot = static_cast<std::uint32_t>(p.id);
                entries.push_back(e);
            }
        }
        list.entries = entries.data();
        list.primaries = primary.size();
        list.backups = backup.size();
        list.tries = balance::tries(list);
        for (const Server &s : servers) {
            ngx_tries += !s.down;   // ngx_http_upstream_tries()
        }
    }

    static void link(NgxPeers &ps, std::vector<NgxPeer> &v)
    {
        ps.number = v.size();
        ps.peer = v.empty() ? nullptr : &v[0];
        for (std::size_t i = 0; i + 1 < v.size(); i++) {
            v[i].next = &v[i + 1];
        }
    }

    // every field of every server alike
    void expect_same_state() const
    {
        std::size_t i = 0;
        for (const auto *part : {&primary, &backup}) {
            for (const NgxPeer &p : *part) {
                const balance::Entry &e = entries[i++];
                ASSERT_EQ(e.current_weight, p.current_weight) << "server " << p.id;
                ASSERT_EQ(e.effective_weight, p.effective_weight) << "server " << p.id;
                ASSERT_EQ(e.fails, p.fails) << "server " << p.id;
                ASSERT_EQ(e.accessed, p.accessed) << "server " << p.id;
                ASSERT_EQ(e.checked, p.checked) << "server " << p.id;
            }
        }
    }
};

// One request: tries until one succeeds, nginx's tries run out, or no
// server is left; each try fails with probability fail_rate.  Returns the
// ids picked by both, which must be equal.
std::vector<int> request(Both &b, std::mt19937 &rng, double fail_rate,
                         std::time_t now)
{
    std::size_t words = balance::tried_words(b.list.primaries, b.list.backups);
    std::vector<std::uintptr_t> ngx_tried(words ? words : 1, 0);
    std::vector<std::uintptr_t> our_tried(words ? words : 1, 0);

    NgxRrp rrp;
    rrp.peers = &b.peers;
    rrp.tried = ngx_tried.data();
    std::uintptr_t ngx_tries = b.ngx_tries;

    balance::Try t;
    t.tried = our_tried.data();
    std::uintptr_t our_tries = balance::tries(b.list);
    EXPECT_EQ(our_tries, ngx_tries);

    std::vector<int> picked;
    std::bernoulli_distribution fail(fail_rate);

    // as ngx_http_upstream_connect and ngx_http_upstream_next: the first try
    // always, then while tries are left
    for (int attempt = 0; attempt == 0 || (ngx_tries && attempt < 1000);
         attempt++) {
        bool ngx_ok = ngx_get_round_robin_peer(&rrp, now);
        balance::Entry *e = balance::get(b.list, t, now);
        EXPECT_EQ(e != nullptr, ngx_ok);
        if (!ngx_ok || e == nullptr) {
            picked.push_back(-1);
            break;
        }
        EXPECT_EQ(static_cast<int>(e->slot), rrp.current->id);
        EXPECT_EQ(&b.entries[t.current], e);
        picked.push_back(rrp.current->id);

        bool failed = fail(rng);
        ngx_free_round_robin_peer(&rrp, failed, now, ngx_tries);
        balance::free(b.list, t, failed, now, our_tries);
        EXPECT_EQ(our_tries, ngx_tries);
        if (!failed) {
            break;
        }
    }
    return picked;
}

std::vector<Server> random_servers(std::mt19937 &rng, std::size_t n,
                                   double backup_rate, double down_rate)
{
    std::uniform_int_distribution<int> weight(1, 10), fails(0, 3),
        timeout(0, 20);
    std::bernoulli_distribution backup(backup_rate), down(down_rate);
    std::vector<Server> v;
    for (std::size_t i = 0; i < n; i++) {
        v.push_back({weight(rng), static_cast<std::uintptr_t>(fails(rng)),
                     timeout(rng), down(rng), backup(rng)});
    }
    // nginx refuses an upstream without a primary
    v[0].backup = false;
    return v;
}

}  // namespace

TEST(Balance, SameSequenceAsNginxOnRandomUpstreams)
{
    std::mt19937 rng(20231);
    std::size_t picks = 0;
    for (int round = 0; round < 400; round++) {
        std::size_t n = 1 + rng() % (round % 4 == 0 ? 3 : 150);  // > 64 too
        Both b(random_servers(rng, n, 0.2, 0.1));
        double fail_rate = (round % 3) * 0.2;
        std::time_t now = 1000;
        for (int r = 0; r < 300; r++) {
            now += rng() % 4;   // 0..3 s: fail_timeout expires now and then
            auto picked = request(b, rng, fail_rate, now);
            picks += picked.size();
            b.expect_same_state();
            if (HasFatalFailure() || HasFailure()) {
                FAIL() << "round " << round << ", request " << r;
            }
        }
    }
    EXPECT_GT(picks, 100000u);
}

TEST(Balance, SmoothWeightsWithoutFailures)
{
    // nginx's classic example: weights 5, 1, 1 give a a b a c a a
    Both b({{5, 1, 10, false, false}, {1, 1, 10, false, false},
            {1, 1, 10, false, false}});
    std::mt19937 rng(1);
    std::vector<int> seq;
    for (int i = 0; i < 7; i++) {
        seq.push_back(request(b, rng, 0.0, 100)[0]);
    }
    EXPECT_EQ(seq, (std::vector<int>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(Balance, BackupsOnlyOnceNoPrimaryIsLeft)
{
    // primaries 0 (down) and 1; backups 2 and 3, never taken out
    Both b({{1, 1, 10, true, false}, {1, 1, 10, false, false},
            {1, 0, 10, false, true}, {1, 0, 10, false, true}});
    std::mt19937 rng(2);
    for (int i = 0; i < 10; i++) {
        EXPECT_EQ(request(b, rng, 0.0, 100), std::vector<int>{1});
    }
    // 1 fails (max_fails=1): the backups take turns, the primary after
    // fail_timeout
    EXPECT_EQ(request(b, rng, 1.0, 100), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(request(b, rng, 0.0, 101), std::vector<int>{3});
    EXPECT_EQ(request(b, rng, 0.0, 102), std::vector<int>{2});
    EXPECT_EQ(request(b, rng, 0.0, 111), std::vector<int>{1});
    b.expect_same_state();
}

TEST(Balance, AllDownIsBusy)
{
    Both b({{1, 1, 10, true, false}, {2, 1, 10, true, false},
            {1, 1, 10, true, true}});
    std::mt19937 rng(3);
    EXPECT_EQ(request(b, rng, 0.0, 100), std::vector<int>{-1});
    EXPECT_EQ(balance::tries(b.list), 0u);

    Both single({{1, 1, 10, true, false}});
    EXPECT_EQ(request(single, rng, 0.0, 100), std::vector<int>{-1});
}

TEST(Balance, SingleServerIgnoresFailures)
{
    Both b({{3, 1, 10, false, false}});
    std::mt19937 rng(4);
    // it fails, and is picked again: nginx counts no failure for it
    EXPECT_EQ(request(b, rng, 1.0, 100), std::vector<int>{0});
    EXPECT_EQ(request(b, rng, 1.0, 100), std::vector<int>{0});
    EXPECT_EQ(b.entries[0].fails, 0u);
    EXPECT_EQ(b.entries[0].current_weight, 0);
}

TEST(Balance, DrainIsSkippedLikeDown)
{
    std::vector<balance::Entry> e(3);
    for (auto &x : e) {
        x.weight = x.effective_weight = 1;
        x.max_fails = 1;
        x.fail_timeout = 10;
    }
    e[1].drain = true;
    balance::List<balance::Entry> list{e.data(), 2, 1};
    EXPECT_EQ(balance::tries(list), 2u);
    for (int i = 0; i < 5; i++) {
        std::uintptr_t tried = 0;
        balance::Try t;
        t.tried = &tried;
        ASSERT_NE(balance::get(list, t, 100), nullptr);
        EXPECT_EQ(t.current, 0u);
    }
    // the primary that is left drains too: the backup
    e[0].drain = true;
    std::uintptr_t tried = 0;
    balance::Try t;
    t.tried = &tried;
    ASSERT_NE(balance::get(list, t, 100), nullptr);
    EXPECT_EQ(t.current, 2u);
    EXPECT_TRUE(t.backup);
}

TEST(Balance, EmptyListIsBusy)
{
    balance::List<balance::Entry> list;
    std::uintptr_t tried = 0;
    balance::Try t;
    t.tried = &tried;
    EXPECT_EQ(balance::get(list, t, 100), nullptr);
    EXPECT_EQ(balance::tries(list), 0u);

    // backups only: they are picked
    std::vector<balance::Entry> e(2);
    for (auto &x : e) {
        x.weight = x.effective_weight = 1;
    }
    balance::List<balance::Entry> backups{e.data(), 0, 2};
    ASSERT_NE(balance::get(backups, t, 100), nullptr);
    EXPECT_TRUE(t.backup);
}
