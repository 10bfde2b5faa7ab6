// Consistent hashing as nginx's `hash KEY consistent` does it (nginx
// 1.22 to 1.26, src/http/modules/ngx_http_upstream_hash_module.c): the
// ring of ngx_http_upstream_init_chash, the search of
// ngx_http_upstream_find_chash_point and the walk of
// ngx_http_upstream_get_chash_peer, with nginx's CRC32 (ngx_crc32_long:
// the reflected 0xEDB88320 polynomial).  Over the same list of servers a
// key lands on the same server as through nginx's own upstream, so that
// moving an upstream to runtime membership keeps the caches behind it warm.
//
// Only the consistent form: caches are why people hash, and with servers
// that come and go only the consistent form keeps them warm.  Plain `hash
// KEY` maps a key by its hash modulo the total weight, so any change of the
// list moves almost every key (docs/design/membership.md, "Balancing").
//
// The ring:
//   - each server gives 160 points per unit of weight, whether it is down
//     or not (nginx counts down servers in the ring; the pick skips them);
//   - point j of a server is crc32(HOST \0 PORT PREV), PREV being point
//     j - 1's value as 4 little-endian bytes (0 for the first point), the
//     name split as split_chash_name() does;
//   - the points are sorted by hash, stably (nginx's ngx_qsort is glibc's
//     qsort, a merge sort), and of points of equal hash only the first
//     stays: the one of the server earlier in the list.
// A point names its server by its index in the list given, not by its
// name: two servers of the same name (which dynroute's lists refuse) give
// the same points, and the points are the first's; nginx would choose
// among the peers of that name.
//
// A ring is stored as a flat array of ChashPoint (the hash, then the
// server's index, native byte order, 8 bytes a point, sorted by hash) that
// a worker reads in place with ChashRingView, whose reads stay inside the
// bytes it was given, whatever those hold.
//
// Pure C++17, no nginx headers; nothing here allocates but the builder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace dynroute {

// nginx's ngx_crc32_long
std::uint32_t crc32(std::string_view data) noexcept;

// nginx's ngx_crc32_init, ngx_crc32_update and ngx_crc32_final
class Crc32 {
public:
    void update(std::string_view data) noexcept;
    std::uint32_t final() const noexcept { return crc_ ^ 0xffffffffu; }

private:
    std::uint32_t crc_ = 0xffffffffu;
};

// A server's name as ngx_http_upstream_init_chash splits it: after a
// "unix:" prefix (in any case) all is the host and there is no port;
// otherwise the port is the digits after the last ':' when only digits
// follow it ("10.0.0.5:8080", "[::1]:80"), else the whole name is the host.
struct ChashName {
    std::string_view host;
    std::string_view port;
};

ChashName split_chash_name(std::string_view name) noexcept;

struct ChashServer {
    std::string_view host;
    std::string_view port;
    std::uint32_t weight = 1;   // nginx's weight=, 1 or more
};

struct ChashPoint {
    std::uint32_t hash;
    std::uint32_t server;   // index in the list the ring was built from
};
static_assert(sizeof(ChashPoint) == 8, "a point is 8 bytes");

inline constexpr std::uint32_t chash_points_per_weight = 160;

// The ring over servers, sorted by hash.  Throws ConfigError if the ring
// would have more than chash_max_points points (the weights' sum times
// 160); a weight of 0 gives no point.
inline constexpr std::uint64_t chash_max_points = 0x7fffffff / sizeof(ChashPoint);
std::vector<ChashPoint> build_chash_ring(const std::vector<ChashServer> &servers);

// The ring's flat form: points.size() * 8 bytes appended to out.
void append_chash_points(std::string &out, const std::vector<ChashPoint> &points);

// A ring's flat form, read in place: `count` points at data, of which only
// those inside `size` bytes are read (a count larger than the bytes hold
// is cut to what they hold).
class ChashRingView {
public:
    ChashRingView() noexcept = default;
    ChashRingView(const void *data, std::size_t size, std::size_t count) noexcept
        : data_(static_cast<const unsigned char *>(data)),
          count_(count < size / sizeof(ChashPoint) ? count
                                                    : size / sizeof(ChashPoint))
    {}
    explicit ChashRingView(const std::vector<ChashPoint> &points) noexcept
        : ChashRingView(points.data(), points.size() * sizeof(ChashPoint),
                        points.size())
    {}

    std::size_t size() const noexcept { return count_; }
    // where the points are (size() * 8 bytes from here)
    const void *data() const noexcept { return data_; }

    // point i's fields; i < size()
    std::uint32_t hash_at(std::size_t i) const noexcept
    {
        return load(i * sizeof(ChashPoint));
    }
    std::uint32_t server_at(std::size_t i) const noexcept
    {
        return load(i * sizeof(ChashPoint) + sizeof(std::uint32_t));
    }

    // ngx_http_upstream_find_chash_point: the index of the first point
    // whose hash is >= hash, size() if there is none (the pick takes it
    // modulo size(): the first point).
    std::size_t find(std::uint32_t hash) const noexcept
    {
        std::size_t i = 0, j = count_;
        while (i < j) {
            std::size_t k = i + (j - i) / 2;
            std::uint32_t h = hash_at(k);
            if (hash > h) {
                i = k + 1;
            } else if (hash < h) {
                j = k;
            } else {
                return k;
            }
        }
        return i;
    }

private:
    std::uint32_t load(std::size_t at) const noexcept
    {
        std::uint32_t v;
        std::memcpy(&v, data_ + at, sizeof v);
        return v;
    }

    const unsigned char *data_ = nullptr;
    std::size_t count_ = 0;
};

// A request's place on the ring, kept across its tries as nginx keeps
// hp->hash and hp->tries.
struct ChashCursor {
    std::size_t point = 0;      // hp->hash: an index, taken modulo the count
    std::uint32_t tries = 0;    // hp->tries
    bool keyless = false;       // the key is "": round robin
};

// ngx_http_upstream_init_chash_peer: crc32 of the key, its point.
inline ChashCursor chash_cursor(const ChashRingView &ring, std::string_view key) noexcept
{
    ChashCursor c;
    c.point = ring.find(crc32(key));
    c.keyless = key.empty();
    return c;
}

inline constexpr std::uint32_t chash_max_tries = 20;
// what chash_pick returns when nginx would go to round robin
inline constexpr std::uint32_t chash_round_robin = 0xffffffffu;

// ngx_http_upstream_get_chash_peer: the server of the cursor's point if
// usable(index) says it may be tried (nginx's tests: not tried yet, not
// down, not failed, max_conns), else the next point's, and so on; after
// chash_max_tries points skipped over the request's tries, or with an
// empty key or ring, chash_round_robin.  A point naming an index >=
// servers (a damaged block) is skipped without asking usable.  The caller
// marks the server tried and does nginx's weight accounting; nginx goes
// to round robin first when the upstream has a single server
// (peers->single), which the caller checks too.
template <class Usable>
std::uint32_t chash_pick(const ChashRingView &ring, std::uint32_t servers,
                         ChashCursor &cursor, Usable &&usable)
{
    if (cursor.tries > chash_max_tries || cursor.keyless || ring.size() == 0) {
        return chash_round_robin;
    }
    for (;;) {
        std::uint32_t server = ring.server_at(cursor.point % ring.size());
        if (server < servers && usable(server)) {
            return server;
        }
        cursor.point++;
        cursor.tries++;
        if (cursor.tries > chash_max_tries) {
            return chash_round_robin;
        }
    }
}

}  // namespace dynroute
