#include "chash.hpp"

#include <algorithm>
#include <array>

#include "text.hpp"

namespace dynroute {

namespace {

// ngx_crc32_table256: CRC-32 of each byte, reflected polynomial 0xEDB88320
constexpr std::array<std::uint32_t, 256> make_crc32_table() noexcept
{
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; n++) {
        std::uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        table[n] = c;
    }
    return table;
}

constexpr std::array<std::uint32_t, 256> crc32_table = make_crc32_table();

std::uint32_t crc32_update(std::uint32_t crc, const unsigned char *p,
                           std::size_t len) noexcept
{
    while (len--) {
        crc = crc32_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

std::uint32_t crc32_update(std::uint32_t crc, std::string_view data) noexcept
{
    return crc32_update(
        crc, reinterpret_cast<const unsigned char *>(data.data()), data.size());
}

}  // namespace

std::uint32_t crc32(std::string_view data) noexcept
{
    return crc32_update(0xffffffffu, data) ^ 0xffffffffu;
}

void Crc32::update(std::string_view data) noexcept
{
    crc_ = crc32_update(crc_, data);
}

ChashName split_chash_name(std::string_view name) noexcept
{
    if (name.size() >= 5 && equal_caseless(name.substr(0, 5), "unix:")) {
        return {name.substr(5), {}};
    }
    for (std::size_t j = 0; j < name.size(); j++) {
        char c = name[name.size() - j - 1];
        if (c == ':') {
            return {name.substr(0, name.size() - j - 1),
                    name.substr(name.size() - j)};
        }
        if (!is_digit(c)) {
            break;
        }
    }
    return {name, {}};
}

std::vector<ChashPoint> build_chash_ring(const std::vector<ChashServer> &servers)
{
    std::uint64_t total = 0;
    for (const ChashServer &s : servers) {
        total += std::uint64_t{s.weight} * chash_points_per_weight;
    }
    if (total > chash_max_points) {
        throw ConfigError("consistent hash: " + std::to_string(total)
                          + " points (160 a unit of weight), more than "
                          + std::to_string(chash_max_points));
    }

    std::vector<ChashPoint> points;
    points.reserve(static_cast<std::size_t>(total));

    for (std::size_t i = 0; i < servers.size(); i++) {
        const ChashServer &s = servers[i];

        // crc32(HOST \0 PORT PREV_HASH), as Cache::Memcached::Fast
        Crc32 base;
        base.update(s.host);
        base.update(std::string_view("", 1));
        base.update(s.port);

        std::uint32_t prev = 0;
        std::uint64_t n = std::uint64_t{s.weight} * chash_points_per_weight;
        for (std::uint64_t j = 0; j < n; j++) {
            // nginx hashes prev_hash's bytes as a little-endian machine
            // stores them, on every machine
            const char bytes[4] = {
                static_cast<char>(prev & 0xff),
                static_cast<char>((prev >> 8) & 0xff),
                static_cast<char>((prev >> 16) & 0xff),
                static_cast<char>((prev >> 24) & 0xff),
            };
            Crc32 h = base;
            h.update(std::string_view(bytes, 4));
            std::uint32_t hash = h.final();
            points.push_back({hash, static_cast<std::uint32_t>(i)});
            prev = hash;
        }
    }

    std::stable_sort(points.begin(), points.end(),
                     [](const ChashPoint &a, const ChashPoint &b) {
                         return a.hash < b.hash;
                     });
    points.erase(std::unique(points.begin(), points.end(),
                             [](const ChashPoint &a, const ChashPoint &b) {
                                 return a.hash == b.hash;
                             }),
                 points.end());
    return points;
}

void append_chash_points(std::string &out, const std::vector<ChashPoint> &points)
{
    for (const ChashPoint &p : points) {
        out.append(reinterpret_cast<const char *>(&p.hash), sizeof p.hash);
        out.append(reinterpret_cast<const char *>(&p.server), sizeof p.server);
    }
}

}  // namespace dynroute
