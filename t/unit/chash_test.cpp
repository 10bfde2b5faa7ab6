// Consistent hashing (src/core/chash.*) against a transliteration of
// nginx's own functions (ngx_http_upstream_hash_module.c of nginx 1.22 to
// 1.26, ngx_crc32.h), written here apart from the code under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chash.hpp"
#include "text.hpp"

using dynroute::ChashCursor;
using dynroute::ChashPoint;
using dynroute::ChashRingView;
using dynroute::ChashServer;

namespace {

// ---- nginx, as written in C (the parts consistent hashing uses) ----------

namespace ngx {

typedef unsigned char u_char;
typedef std::uintptr_t ngx_uint_t;
typedef std::intptr_t ngx_int_t;

struct ngx_str_t {
    size_t len;
    u_char *data;
};

// ngx_crc32_update, bit by bit rather than by nginx's table
void ngx_crc32_update(uint32_t *crc, const u_char *p, size_t len)
{
    uint32_t c = *crc;
    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        }
    }
    *crc = c;
}

uint32_t ngx_crc32_long(const u_char *p, size_t len)
{
    uint32_t crc = 0xffffffff;
    ngx_crc32_update(&crc, p, len);
    return crc ^ 0xffffffff;
}

int ngx_strncasecmp(const u_char *s1, const u_char *s2, size_t n)
{
    while (n--) {
        int c1 = *s1++, c2 = *s2++;
        c1 = (c1 >= 'A' && c1 <= 'Z') ? (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (c2 | 0x20) : c2;
        if (c1 == c2) {
            if (c1) {
                continue;
            }
            return 0;
        }
        return c1 - c2;
    }
    return 0;
}

struct ngx_http_upstream_rr_peer_t {
    ngx_str_t server;
    ngx_int_t current_weight;
    ngx_int_t effective_weight;
    ngx_int_t weight;
    ngx_uint_t conns;
    ngx_uint_t max_conns;
    ngx_uint_t fails;
    time_t checked;
    ngx_uint_t max_fails;
    time_t fail_timeout;
    unsigned down;
    ngx_http_upstream_rr_peer_t *next;
};

struct ngx_http_upstream_rr_peers_t {
    ngx_uint_t number;
    ngx_uint_t total_weight;
    unsigned single;
    ngx_http_upstream_rr_peer_t *peer;
};

struct ngx_http_upstream_chash_point_t {
    uint32_t hash;
    ngx_str_t *server;
};

struct ngx_http_upstream_chash_points_t {
    ngx_uint_t number;
    ngx_http_upstream_chash_point_t point[1];
};

struct ngx_http_upstream_hash_peer_data_t {
    ngx_http_upstream_rr_peers_t *peers;   // hp->rrp.peers
    uintptr_t *tried;                      // hp->rrp.tried
    ngx_http_upstream_chash_points_t *points;
    ngx_str_t key;
    ngx_uint_t tries;
    uint32_t hash;
};

int ngx_http_upstream_chash_cmp_points(const void *one, const void *two)
{
    ngx_http_upstream_chash_point_t *first =
                                       (ngx_http_upstream_chash_point_t *) one;
    ngx_http_upstream_chash_point_t *second =
                                       (ngx_http_upstream_chash_point_t *) two;

    if (first->hash < second->hash) {
        return -1;

    } else if (first->hash > second->hash) {
        return 1;

    } else {
        return 0;
    }
}

// ngx_http_upstream_init_chash after ngx_http_upstream_init_round_robin
ngx_http_upstream_chash_points_t *
ngx_http_upstream_init_chash(ngx_http_upstream_rr_peers_t *peers)
{
    u_char *host, *port, c;
    size_t host_len, port_len, size;
    uint32_t hash, base_hash;
    ngx_str_t *server;
    ngx_uint_t npoints, i, j;
    ngx_http_upstream_rr_peer_t *peer;
    ngx_http_upstream_chash_points_t *points;
    union {
        uint32_t value;
        u_char byte[4];
    } prev_hash;

    npoints = peers->total_weight * 160;

    size = sizeof(ngx_http_upstream_chash_points_t)
           + sizeof(ngx_http_upstream_chash_point_t) * (npoints - 1);

    points = (ngx_http_upstream_chash_points_t *) std::malloc(size);
    if (points == NULL) {
        return NULL;
    }

    points->number = 0;

    for (peer = peers->peer; peer; peer = peer->next) {
        server = &peer->server;

        if (server->len >= 5
            && ngx_strncasecmp(server->data, (u_char *) "unix:", 5) == 0)
        {
            host = server->data + 5;
            host_len = server->len - 5;
            port = NULL;
            port_len = 0;
            goto done;
        }

        for (j = 0; j < server->len; j++) {
            c = server->data[server->len - j - 1];

            if (c == ':') {
                host = server->data;
                host_len = server->len - j - 1;
                port = server->data + server->len - j;
                port_len = j;
                goto done;
            }

            if (c < '0' || c > '9') {
                break;
            }
        }

        host = server->data;
        host_len = server->len;
        port = NULL;
        port_len = 0;

    done:

        base_hash = 0xffffffff;
        ngx_crc32_update(&base_hash, host, host_len);
        ngx_crc32_update(&base_hash, (u_char *) "", 1);
        ngx_crc32_update(&base_hash, port, port_len);

        prev_hash.value = 0;
        npoints = peer->weight * 160;

        for (j = 0; j < npoints; j++) {
            hash = base_hash;

            ngx_crc32_update(&hash, prev_hash.byte, 4);
            hash ^= 0xffffffff;

            points->point[points->number].hash = hash;
            points->point[points->number].server = server;
            points->number++;

            prev_hash.byte[0] = (u_char) (hash & 0xff);
            prev_hash.byte[1] = (u_char) ((hash >> 8) & 0xff);
            prev_hash.byte[2] = (u_char) ((hash >> 16) & 0xff);
            prev_hash.byte[3] = (u_char) ((hash >> 24) & 0xff);
        }
    }

    std::qsort(points->point,
               points->number,
               sizeof(ngx_http_upstream_chash_point_t),
               ngx_http_upstream_chash_cmp_points);

    for (i = 0, j = 1; j < points->number; j++) {
        if (points->point[i].hash != points->point[j].hash) {
            points->point[++i] = points->point[j];
        }
    }

    points->number = i + 1;

    return points;
}

ngx_uint_t
ngx_http_upstream_find_chash_point(ngx_http_upstream_chash_points_t *points,
    uint32_t hash)
{
    ngx_uint_t i, j, k;
    ngx_http_upstream_chash_point_t *point;

    point = &points->point[0];

    i = 0;
    j = points->number;

    while (i < j) {
        k = (i + j) / 2;

        if (hash > point[k].hash) {
            i = k + 1;

        } else if (hash < point[k].hash) {
            j = k;

        } else {
            return k;
        }
    }

    return i;
}

// ngx_http_upstream_init_chash_peer's part
void ngx_http_upstream_init_chash_peer(ngx_http_upstream_hash_peer_data_t *hp)
{
    uint32_t hash;

    hp->tries = 0;
    hash = ngx_crc32_long(hp->key.data, hp->key.len);
    hp->hash = ngx_http_upstream_find_chash_point(hp->points, hash);
}

constexpr ngx_int_t round_robin = -1;

// ngx_http_upstream_get_chash_peer: the index of the peer chosen, or
// round_robin where nginx calls hp->get_rr_peer
ngx_int_t ngx_http_upstream_get_chash_peer(
    ngx_http_upstream_hash_peer_data_t *hp, time_t now)
{
    intptr_t m;
    ngx_str_t *server;
    ngx_int_t total;
    ngx_uint_t i, n, best_i;
    ngx_http_upstream_rr_peer_t *peer, *best;
    ngx_http_upstream_chash_point_t *point;
    ngx_http_upstream_chash_points_t *points;

    if (hp->tries > 20 || hp->peers->single || hp->key.len == 0) {
        return round_robin;
    }

    points = hp->points;
    point = &points->point[0];

    for ( ;; ) {
        server = point[hp->hash % points->number].server;

        best = NULL;
        best_i = 0;
        total = 0;

        for (peer = hp->peers->peer, i = 0;
             peer;
             peer = peer->next, i++)
        {
            n = i / (8 * sizeof(uintptr_t));
            m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));

            if (hp->tried[n] & m) {
                continue;
            }

            if (peer->down) {
                continue;
            }

            if (peer->max_fails
                && peer->fails >= peer->max_fails
                && now - peer->checked <= peer->fail_timeout)
            {
                continue;
            }

            if (peer->max_conns && peer->conns >= peer->max_conns) {
                continue;
            }

            if (peer->server.len != server->len
                || std::strncmp((char *) peer->server.data,
                                (char *) server->data, server->len)
                   != 0)
            {
                continue;
            }

            peer->current_weight += peer->effective_weight;
            total += peer->effective_weight;

            if (peer->effective_weight < peer->weight) {
                peer->effective_weight++;
            }

            if (best == NULL || peer->current_weight > best->current_weight) {
                best = peer;
                best_i = i;
            }
        }

        if (best) {
            best->current_weight -= total;
            goto found;
        }

        hp->hash++;
        hp->tries++;

        if (hp->tries > 20) {
            return round_robin;
        }
    }

found:

    best->conns++;

    if (now - best->checked > best->fail_timeout) {
        best->checked = now;
    }

    n = best_i / (8 * sizeof(uintptr_t));
    m = (uintptr_t) 1 << best_i % (8 * sizeof(uintptr_t));

    hp->tried[n] |= m;

    return (ngx_int_t) best_i;
}

}  // namespace ngx

// ---- an upstream of both ---------------------------------------------------

struct Server {
    std::string name;
    std::uint32_t weight = 1;
};

// nginx's peers for a list (each name one address, as an IP literal is)
struct NginxUpstream {
    std::vector<std::string> names;
    std::vector<ngx::ngx_http_upstream_rr_peer_t> peer;
    ngx::ngx_http_upstream_rr_peers_t peers{};
    ngx::ngx_http_upstream_chash_points_t *points = nullptr;
    std::size_t points_before_dedup = 0;

    explicit NginxUpstream(const std::vector<Server> &list)
        : peer(list.size())
    {
        for (const Server &s : list) {
            names.push_back(s.name);
        }
        ngx::ngx_uint_t w = 0;
        for (std::size_t i = 0; i < list.size(); i++) {
            ngx::ngx_http_upstream_rr_peer_t &p = peer[i];
            p = {};
            p.server.len = names[i].size();
            p.server.data = reinterpret_cast<ngx::u_char *>(&names[i][0]);
            p.weight = p.effective_weight = list[i].weight;
            p.max_fails = 1;
            p.fail_timeout = 10;
            p.next = i + 1 < list.size() ? &peer[i + 1] : nullptr;
            w += list[i].weight;
        }
        peers.number = list.size();
        peers.total_weight = w;
        peers.single = list.size() == 1;
        peers.peer = &peer[0];
        points_before_dedup = w * 160;
        points = ngx::ngx_http_upstream_init_chash(&peers);
    }
    ~NginxUpstream() { std::free(points); }
    NginxUpstream(const NginxUpstream &) = delete;
    NginxUpstream &operator=(const NginxUpstream &) = delete;
};

struct Ours {
    std::vector<ChashPoint> ring;
    std::string flat;

    explicit Ours(const std::vector<Server> &list)
    {
        std::vector<ChashServer> servers;
        for (const Server &s : list) {
            dynroute::ChashName n = dynroute::split_chash_name(s.name);
            servers.push_back({n.host, n.port, s.weight});
        }
        ring = dynroute::build_chash_ring(servers);
        // read in place at an odd address, as from a block of bytes
        flat = "x";
        dynroute::append_chash_points(flat, ring);
    }

    ChashRingView view() const
    {
        return ChashRingView(flat.data() + 1, flat.size() - 1, ring.size());
    }
};

std::string random_name(std::mt19937 &rng, std::set<std::string> &taken)
{
    for (;;) {
        std::string name;
        auto r = [&](unsigned n) { return unsigned(rng() % n); };
        switch (r(8)) {
        case 0:
        case 1:
        case 2:
            name = std::to_string(r(256)) + "." + std::to_string(r(256)) + "."
                   + std::to_string(r(256)) + "." + std::to_string(r(256)) + ":"
                   + std::to_string(1 + r(65535));
            break;
        case 3:
        case 4: {
            char buf[64];
            std::snprintf(buf, sizeof buf, "[2001:db8:%x::%x]:%u", r(0x10000),
                          r(0x10000), 1 + r(65535));
            name = buf;
            break;
        }
        case 5: {
            const char *prefix[] = {"unix:", "UNIX:", "Unix:"};
            name = std::string(prefix[r(3)]) + "/run/app" + std::to_string(r(1000))
                   + ".sock";
            break;
        }
        case 6:
            name = "10.1." + std::to_string(r(256)) + "." + std::to_string(r(256));
            break;
        default:
            name = "[::ffff:" + std::to_string(r(256)) + "]:" + std::to_string(r(100));
            break;
        }
        if (taken.insert(name).second) {
            return name;
        }
    }
}

std::vector<Server> random_list(std::mt19937 &rng, std::size_t n, bool weighted)
{
    std::set<std::string> taken;
    std::vector<Server> list;
    for (std::size_t i = 0; i < n; i++) {
        std::uint32_t weight = 1;
        if (weighted) {
            weight = rng() % 4 == 0 ? 1 + rng() % 100 : 1 + rng() % 5;
        }
        list.push_back({random_name(rng, taken), weight});
    }
    return list;
}

std::string random_key(std::mt19937 &rng)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789/._-?=&";
    std::string key;
    std::size_t len = rng() % 40;
    if (rng() % 50 == 0) {
        len = 0;
    }
    for (std::size_t i = 0; i < len; i++) {
        key += chars[rng() % (sizeof chars - 1)];
    }
    return key;
}

// both rings: the same hashes in the same order, each naming the same server
void expect_same_ring(const NginxUpstream &ngx, const Ours &ours)
{
    ASSERT_EQ(ngx.points->number, ours.ring.size());
    ChashRingView view = ours.view();
    ASSERT_EQ(view.size(), ours.ring.size());
    for (std::size_t i = 0; i < ours.ring.size(); i++) {
        const ngx::ngx_http_upstream_chash_point_t &p = ngx.points->point[i];
        ASSERT_EQ(p.hash, view.hash_at(i)) << "point " << i;
        ASSERT_LT(view.server_at(i), ngx.names.size());
        ASSERT_EQ(std::string(reinterpret_cast<char *>(p.server->data),
                              p.server->len),
                  ngx.names[view.server_at(i)])
            << "point " << i;
    }
}

std::size_t server_of(const Ours &ours, std::string_view key)
{
    ChashRingView view = ours.view();
    ChashCursor c = dynroute::chash_cursor(view, key);
    return dynroute::chash_pick(view, std::uint32_t(ours.ring.size()), c,
                                [](std::uint32_t) { return true; });
}

}  // namespace

// ---- (c) nginx's CRC32 -----------------------------------------------------

TEST(Chash, Crc32KnownValues)
{
    EXPECT_EQ(dynroute::crc32("123456789"), 0xcbf43926u);
    EXPECT_EQ(dynroute::crc32(""), 0u);
    EXPECT_EQ(dynroute::crc32("a"), 0xe8b7be43u);
    EXPECT_EQ(dynroute::crc32("The quick brown fox jumps over the lazy dog"),
              0x414fa339u);

    dynroute::Crc32 c;
    c.update("1234");
    c.update("");
    c.update("56789");
    EXPECT_EQ(c.final(), 0xcbf43926u);
}

// The first points of a server, as zlib computes crc32(HOST \0 PORT PREV)
TEST(Chash, KnownPoints)
{
    std::vector<ChashPoint> ring =
        dynroute::build_chash_ring({{"10.0.0.5", "8080", 1}});
    ASSERT_EQ(ring.size(), 160u);
    auto has = [&](std::uint32_t hash) {
        return std::any_of(ring.begin(), ring.end(),
                           [&](const ChashPoint &p) { return p.hash == hash; });
    };
    EXPECT_TRUE(has(0xf801faf5u));   // PREV = 0
    EXPECT_TRUE(has(0x5b97a109u));   // PREV = the first
    EXPECT_TRUE(std::is_sorted(ring.begin(), ring.end(),
                               [](const ChashPoint &a, const ChashPoint &b) {
                                   return a.hash < b.hash;
                               }));

    // a unix socket: the path, \0, no port
    ring = dynroute::build_chash_ring({{"/run/app.sock", "", 2}});
    ASSERT_EQ(ring.size(), 320u);
    EXPECT_TRUE(has(0xad39754fu));
    EXPECT_EQ(ring[0].server, 0u);
}

TEST(Chash, SplitsNamesAsNginx)
{
    struct Case {
        const char *name, *host, *port;
    } cases[] = {
        {"10.0.0.5:8080", "10.0.0.5", "8080"},
        {"[::1]:80", "[::1]", "80"},
        {"[2001:db8::5]:8080", "[2001:db8::5]", "8080"},
        {"unix:/run/app.sock", "/run/app.sock", ""},
        {"UNIX:/run/app.sock:80", "/run/app.sock:80", ""},
        {"unix:", "", ""},
        {"uni:80", "uni", "80"},
        {"localhost", "localhost", ""},
        {"[::1]", "[::1]", ""},
        {"host:", "host", ""},
        {"a:b1", "a:b1", ""},
        {"::1", ":", "1"},
        {"", "", ""},
    };
    for (const Case &c : cases) {
        dynroute::ChashName n = dynroute::split_chash_name(c.name);
        EXPECT_EQ(n.host, c.host) << c.name;
        EXPECT_EQ(n.port, c.port) << c.name;
    }
}

// ---- (a) the same ring and the same server as nginx's --------------------

TEST(Chash, SameRingAndServersAsNginx)
{
    std::mt19937 rng(23);
    std::size_t compared = 0, round_robin = 0, skipped = 0;
    for (int round = 0; round < 300; round++) {
        std::size_t n = 1 + rng() % (round % 3 == 0 ? 5 : 40);
        std::vector<Server> list = random_list(rng, n, round % 2 == 1);
        NginxUpstream ngx(list);
        Ours ours(list);
        ASSERT_NO_FATAL_FAILURE(expect_same_ring(ngx, ours)) << "round " << round;

        ChashRingView view = ours.view();

        // the search, on the points themselves and beside them
        for (int i = 0; i < 50; i++) {
            std::uint32_t h = view.hash_at(rng() % view.size()) + (rng() % 3) - 1;
            ASSERT_EQ(view.find(h), ngx::ngx_http_upstream_find_chash_point(
                                        ngx.points, h));
        }
        for (std::uint32_t h : {0u, 0xffffffffu, view.hash_at(0),
                                view.hash_at(view.size() - 1)}) {
            ASSERT_EQ(view.find(h), ngx::ngx_http_upstream_find_chash_point(
                                        ngx.points, h));
        }

        // requests: each server usable, down, or failed, up to 4 tries
        double down_share = round % 4 == 0 ? 0.9 : 0.2;
        std::vector<uintptr_t> tried((n + 63) / 64);
        for (int r = 0; r < 200; r++) {
            std::string key = random_key(rng);
            std::vector<bool> down(n), failed(n);
            std::bernoulli_distribution bad(down_share);
            for (std::size_t i = 0; i < n; i++) {
                down[i] = bad(rng);
                failed[i] = !down[i] && bad(rng);
                ngx.peer[i].down = down[i];
                ngx.peer[i].fails = failed[i] ? 1 : 0;
                ngx.peer[i].checked = 1000;
            }
            std::fill(tried.begin(), tried.end(), 0);
            std::vector<bool> ours_tried(n);

            ngx::ngx_http_upstream_hash_peer_data_t hp{};
            hp.peers = &ngx.peers;
            hp.tried = tried.data();
            hp.points = ngx.points;
            hp.key.len = key.size();
            hp.key.data = reinterpret_cast<ngx::u_char *>(&key[0]);
            ngx::ngx_http_upstream_init_chash_peer(&hp);

            ChashCursor cursor = dynroute::chash_cursor(view, key);
            auto usable = [&](std::uint32_t i) {
                return !ours_tried[i] && !down[i] && !failed[i];
            };

            for (int t = 0; t < 4; t++) {
                ngx::ngx_int_t want =
                    ngx::ngx_http_upstream_get_chash_peer(&hp, 1005);
                // the caller's part: a single server goes to round robin
                std::uint32_t got =
                    n == 1 ? dynroute::chash_round_robin
                           : dynroute::chash_pick(view, std::uint32_t(n), cursor,
                                                  usable);
                if (want == ngx::round_robin) {
                    ASSERT_EQ(got, dynroute::chash_round_robin)
                        << "round " << round << " key " << key << " try " << t;
                    round_robin++;
                    break;
                }
                ASSERT_EQ(got, std::uint32_t(want))
                    << "round " << round << " key " << key << " try " << t;
                ASSERT_EQ(cursor.tries, hp.tries);
                skipped += cursor.tries;
                ours_tried[got] = true;
                compared++;
            }
        }
    }
    // the walk went past unusable points, and to round robin, many times
    EXPECT_GT(compared, 50000u);
    EXPECT_GT(round_robin, 5000u);
    EXPECT_GT(skipped, 50000u);
}

// Points of equal hash: nginx keeps the first after glibc's qsort (a merge
// sort, stable), that of the server earlier in the list.
TEST(Chash, CollidingPointsAsNginx)
{
    std::mt19937 rng(2323);
    std::vector<Server> list = random_list(rng, 2500, false);
    NginxUpstream ngx(list);
    Ours ours(list);
    // 400,000 points in 2^32: some collide
    ASSERT_GT(ngx.points_before_dedup - ngx.points->number, 3u);
    ASSERT_NO_FATAL_FAILURE(expect_same_ring(ngx, ours));
}

// Down servers keep their points: nginx's ring counts them.
TEST(Chash, DownServersStayOnTheRing)
{
    std::vector<ChashServer> servers = {
        {"10.0.0.1", "80", 1}, {"10.0.0.2", "80", 2}, {"10.0.0.3", "80", 1}};
    std::vector<ChashPoint> ring = dynroute::build_chash_ring(servers);
    ASSERT_EQ(ring.size(), 4u * 160);
    ChashRingView view(ring);

    std::mt19937 rng(5);
    std::size_t moved = 0;
    for (int i = 0; i < 5000; i++) {
        std::string key = "k" + std::to_string(rng());
        ChashCursor a = dynroute::chash_cursor(view, key);
        std::uint32_t up = dynroute::chash_pick(view, 3, a,
                                                [](std::uint32_t) { return true; });
        ChashCursor b = dynroute::chash_cursor(view, key);
        std::uint32_t one_down = dynroute::chash_pick(
            view, 3, b, [](std::uint32_t s) { return s != 1; });
        ASSERT_NE(one_down, 1u);
        if (up != 1) {
            ASSERT_EQ(one_down, up) << key;
        } else {
            moved++;
        }
    }
    EXPECT_GT(moved, 1500u);   // about half of the weight
}

// ---- (b) removing one of n servers -----------------------------------------

TEST(Chash, RemovingAServerMovesOnlyItsKeys)
{
    std::mt19937 rng(77);
    for (std::size_t n : {2, 5, 10, 25}) {
        std::vector<Server> list = random_list(rng, n, false);
        Ours all(list);
        std::vector<std::string> keys;
        std::vector<std::string> where;
        for (int i = 0; i < 20000; i++) {
            keys.push_back("/item/" + std::to_string(rng()));
            where.push_back(list[server_of(all, keys.back())].name);
        }
        for (std::size_t gone = 0; gone < n; gone++) {
            std::vector<Server> fewer = list;
            fewer.erase(fewer.begin() + long(gone));
            Ours rest(fewer);
            std::size_t moved = 0;
            for (std::size_t k = 0; k < keys.size(); k++) {
                const std::string &now = fewer[server_of(rest, keys[k])].name;
                if (where[k] == list[gone].name) {
                    moved++;
                } else {
                    ASSERT_EQ(now, where[k])
                        << "n " << n << " key " << keys[k] << " moved";
                }
            }
            double share = double(moved) / double(keys.size());
            EXPECT_GT(share, 0.6 / double(n)) << "n " << n;
            EXPECT_LT(share, 1.4 / double(n)) << "n " << n;
        }
    }
}

// ---- (d) the flat form, read in place --------------------------------------

TEST(Chash, FlatFormStaysInBounds)
{
    // points 10 -> server 0, 20 -> 1, then two that no count below reaches
    std::vector<ChashPoint> points = {{10, 0}, {20, 1}, {30, 7}, {40, 8}};
    std::string flat;
    dynroute::append_chash_points(flat, points);
    ASSERT_EQ(flat.size(), 32u);
    auto always = [](std::uint32_t) { return true; };

    // count 0: nothing to find, round robin
    ChashRingView none(flat.data(), flat.size(), 0);
    EXPECT_EQ(none.size(), 0u);
    EXPECT_EQ(none.find(15), 0u);
    ChashCursor c = dynroute::chash_cursor(none, "key");
    EXPECT_EQ(dynroute::chash_pick(none, 9, c, always), dynroute::chash_round_robin);
    ChashRingView empty;
    EXPECT_EQ(empty.find(15), 0u);
    c = dynroute::chash_cursor(empty, "key");
    EXPECT_EQ(dynroute::chash_pick(empty, 9, c, always), dynroute::chash_round_robin);

    // count 1: every hash is the one point's
    ChashRingView one(flat.data(), flat.size(), 1);
    EXPECT_EQ(one.find(5), 0u);
    EXPECT_EQ(one.find(10), 0u);
    EXPECT_EQ(one.find(11), 1u);
    EXPECT_EQ(one.find(0xffffffffu), 1u);
    for (std::uint32_t h : {5u, 10u, 11u, 35u, 0xffffffffu}) {
        ChashCursor at;
        at.point = one.find(h);
        EXPECT_EQ(dynroute::chash_pick(one, 9, at, always), 0u) << h;
    }

    // a count larger than the bytes: cut to what they hold
    ChashRingView cut(flat.data(), 2 * sizeof(ChashPoint), 4);
    EXPECT_EQ(cut.size(), 2u);
    EXPECT_EQ(cut.find(25), 2u);
    ChashCursor past;
    past.point = cut.find(25);
    EXPECT_EQ(dynroute::chash_pick(cut, 9, past, always), 0u);
    ChashRingView odd(flat.data(), 2 * sizeof(ChashPoint) + 7, 1000);
    EXPECT_EQ(odd.size(), 2u);
    EXPECT_EQ(odd.find(0xffffffffu), 2u);

    // walking on wraps too: 20 -> server 1 unusable, then 10 -> server 0
    ChashCursor walk;
    walk.point = cut.find(20);
    EXPECT_EQ(dynroute::chash_pick(cut, 9, walk,
                                   [](std::uint32_t s) { return s != 1; }),
              0u);
    EXPECT_EQ(walk.tries, 1u);

    // a point naming a server past the list is skipped, never asked about
    ChashRingView all(flat.data(), flat.size(), 4);
    ChashCursor damaged;
    damaged.point = all.find(30);
    std::vector<std::uint32_t> asked;
    EXPECT_EQ(dynroute::chash_pick(all, 2, damaged,
                                   [&](std::uint32_t s) {
                                       asked.push_back(s);
                                       return true;
                                   }),
              0u);
    EXPECT_EQ(asked, std::vector<std::uint32_t>{0});
    EXPECT_EQ(damaged.tries, 2u);
}

TEST(Chash, KeyAboveEveryPointWrapsToTheFirst)
{
    std::vector<ChashPoint> ring = dynroute::build_chash_ring(
        {{"10.0.0.1", "80", 1}, {"[2001:db8::1]", "443", 3}});
    std::string flat;
    dynroute::append_chash_points(flat, ring);
    ChashRingView view(flat.data(), flat.size(), ring.size());
    std::uint32_t top = view.hash_at(view.size() - 1);

    std::string key;
    for (unsigned i = 0; i < 10000000 && key.empty(); i++) {
        std::string k = "/wrap/" + std::to_string(i);
        if (dynroute::crc32(k) > top) {
            key = k;
        }
    }
    ASSERT_FALSE(key.empty()) << "no key hashes above " << top;

    ChashCursor c = dynroute::chash_cursor(view, key);
    EXPECT_EQ(c.point, view.size());
    EXPECT_EQ(dynroute::chash_pick(view, 2, c, [](std::uint32_t) { return true; }),
              view.server_at(0));
    EXPECT_EQ(c.tries, 0u);
}

TEST(Chash, TriesLimitAndEmptyKey)
{
    // one server of weight 1 among servers of weight 100: past 20 points
    // of the others, round robin
    std::vector<ChashServer> servers = {{"10.0.0.1", "80", 100},
                                        {"10.0.0.2", "80", 1}};
    std::vector<ChashPoint> ring = dynroute::build_chash_ring(servers);
    ChashRingView view(ring);
    auto only_second = [](std::uint32_t s) { return s == 1; };
    std::size_t reached = 0, fell = 0;
    for (int i = 0; i < 2000; i++) {
        ChashCursor c = dynroute::chash_cursor(view, "k" + std::to_string(i));
        std::size_t start = c.point;
        std::size_t run = 0;   // points before the second server's
        while (view.server_at((start + run) % view.size()) != 1) {
            run++;
        }
        std::uint32_t got = dynroute::chash_pick(view, 2, c, only_second);
        if (run <= dynroute::chash_max_tries) {
            EXPECT_EQ(got, 1u);
            EXPECT_EQ(c.tries, run);
            reached++;
        } else {
            EXPECT_EQ(got, dynroute::chash_round_robin);
            EXPECT_EQ(c.tries, dynroute::chash_max_tries + 1);
            // and so on every later try
            EXPECT_EQ(dynroute::chash_pick(view, 2, c, only_second),
                      dynroute::chash_round_robin);
            fell++;
        }
    }
    EXPECT_GT(reached, 100u);
    EXPECT_GT(fell, 1000u);

    ChashCursor keyless = dynroute::chash_cursor(view, "");
    EXPECT_EQ(dynroute::chash_pick(view, 2, keyless, [](std::uint32_t) { return true; }),
              dynroute::chash_round_robin);
}

TEST(Chash, RefusesRingsTooLarge)
{
    std::vector<ChashServer> servers(2, ChashServer{"10.0.0.1", "80", 0});
    EXPECT_TRUE(dynroute::build_chash_ring(servers).empty());
    servers[0].weight = 0xffffffffu;
    EXPECT_THROW(dynroute::build_chash_ring(servers), dynroute::ConfigError);
}
