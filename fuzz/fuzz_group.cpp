// A group's block (snapshot.hpp) from arbitrary bytes, and from servers.
//
// The first byte picks the mode.  0: the rest is a block, read by
// GroupView in a buffer of exactly its size (ASan sees a read past it)
// with the size in its header made to fit, and decoded.  1: the rest is a
// server per line, "ADDR WEIGHT FLAGS" (FLAGS: a digit, bits backup, down,
// drain), whose group is encoded (as a hash group if the first byte has
// bit 1, backups dropped), read back server by server, decoded to the same
// group, and read again at every truncation (a hash group: its first 8
// servers, weights 1 to 3, so that its ring stays small).
// Checks: every server a view reads lies in the block, within max_socklen
// and max_address_name, and so does every point of its ring; a group's
// block gives back its servers, ids and counter, primaries before backups;
// a hash group's ring is nginx's over its servers in the block's order.
#include <cstring>
#include <string>
#include <vector>

#include "address.hpp"
#include "fuzz_util.hpp"
#include "snapshot.hpp"

using namespace dynroute;

namespace {

void read_inside(const std::vector<unsigned char> &b)
{
    GroupView v(b.data(), b.size());
    const unsigned char *end = b.data() + b.size();

    for (std::size_t i = 0; i < v.servers() && i < 70000; i++) {
        GroupView::Server s;
        if (!v.server(i, s)) {
            continue;
        }
        auto *name = reinterpret_cast<const unsigned char *>(s.name.data());
        FUZZ_CHECK(s.sockaddr >= b.data() && s.sockaddr + s.socklen <= end);
        FUZZ_CHECK(name >= b.data() && name + s.name.size() <= end);
        FUZZ_CHECK(s.socklen <= max_socklen);
        FUZZ_CHECK(s.name.size() <= max_address_name);
    }

    const ChashRingView &ring = v.ring();
    if (ring.size()) {
        auto *at = static_cast<const unsigned char *>(ring.data());
        FUZZ_CHECK(at >= b.data() && at + ring.size() * 8 <= end);
        FUZZ_CHECK(ring.find(ring.hash_at(ring.size() / 2)) <= ring.size());
    }

    std::string n;
    ServerGroup out;
    (void) decode_group(v, n, out);
}

// the block of bytes, with its header's size made to say how long it is
void raw_block(std::string_view bytes)
{
    std::vector<unsigned char> b(bytes.begin(), bytes.end());

    if (b.size() >= 8) {
        std::uint32_t size = static_cast<std::uint32_t>(b.size());
        std::memcpy(b.data() + 4, &size, sizeof size);
    }
    read_inside(b);
}

ServerGroup group_of(std::string_view text)
{
    ServerGroup g;

    for (std::string_view line : fuzz::split_lines(text, 200)) {
        std::size_t sp = line.find(' ');
        try {
            std::string addr = parse_address(line.substr(0, sp)).name;
            ServerSpec s;
            std::string_view rest = sp == std::string_view::npos
                                        ? "" : line.substr(sp + 1);
            s.weight = 1 + (rest.empty() ? 0 : rest[0] % 100);
            int flags = rest.size() > 2 ? rest[2] - '0' : 0;
            s.backup = flags & 1;
            s.down = flags & 2;
            s.drain = flags & 4;
            g.servers.emplace(addr, s);
        } catch (const ApiError &) {
            // not an address: not a server
        }
    }

    g.assign_ids();
    return g;
}

void round_trip(std::string_view text, Balance method)
{
    ServerGroup g = group_of(text);
    if (method == Balance::hash) {
        // a ring every truncation of which is read: 8 servers, weights 1-3
        std::size_t kept = 0;
        for (auto it = g.servers.begin(); it != g.servers.end();) {
            if (it->second.backup || kept == 8) {
                it = g.servers.erase(it);
            } else {
                it->second.weight = 1 + it->second.weight % 3;
                ++it;
                kept++;
            }
        }
    }
    std::string b = encode_snapshot_group(7, 3, method, "g", g);
    GroupView v(b.data(), b.size());
    std::string name;
    ServerGroup back;

    FUZZ_CHECK(v.valid() && v.servers() == g.servers.size());
    FUZZ_CHECK(decode_group(v, name, back));
    FUZZ_CHECK(name == "g" && back == g);

    std::vector<ChashServer> servers;
    for (std::size_t i = 0; i < v.servers(); i++) {
        GroupView::Server s;
        FUZZ_CHECK(v.server(i, s));
        FUZZ_CHECK(s.backup == (i >= v.primaries()));
        ChashName n = split_chash_name(s.name);
        servers.push_back({n.host, n.port, s.weight});
    }

    if (method == Balance::hash) {
        std::vector<ChashPoint> ring = build_chash_ring(servers);
        FUZZ_CHECK(v.ring().size() == ring.size());
        for (std::size_t i = 0; i < ring.size(); i++) {
            FUZZ_CHECK(v.ring().hash_at(i) == ring[i].hash
                       && v.ring().server_at(i) == ring[i].server
                       && ring[i].server < v.servers());
        }
    } else {
        FUZZ_CHECK(v.ring().size() == 0);
    }

    for (std::size_t n = 0; n < b.size(); n++) {
        raw_block(std::string_view(b).substr(0, n));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    if (size == 0) {
        return 0;
    }

    std::string_view rest(reinterpret_cast<const char *>(data) + 1, size - 1);

    if (data[0] & 1) {
        round_trip(rest, data[0] & 2 ? Balance::hash : Balance::round_robin);
    } else {
        raw_block(rest);
    }

    return 0;
}
