#include "hosts.hpp"

#include <cstring>
#include <vector>

#include "host.hpp"
#include "rollout.hpp"
#include "text.hpp"

namespace dynroute {

namespace {

constexpr std::uint32_t magic = 0x68737472;  // "rtsh"
constexpr std::size_t header_size = 16;
constexpr std::size_t record_header = 4;

std::uint32_t load32(const unsigned char *p) noexcept
{
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void store32(std::string &out, std::size_t at, std::uint32_t v)
{
    std::memcpy(&out[at], &v, sizeof v);
}

}  // namespace

bool normalize_host(std::string_view in, std::string &out, std::string &why)
{
    if (!in.empty() && in.back() == '.') {
        in.remove_suffix(1);
    }

    if (in.empty() || in.size() > 253) {
        why = "a host name is 1 to 253 bytes long";
        return false;
    }

    out.clear();
    std::size_t label = 0;

    for (char c : in) {
        c = ascii_lower(c);

        if (c == '.') {
            if (label == 0) {
                why = "empty label in host name " + quoted(in);
                return false;
            }
            label = 0;

        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            if (++label > 63) {
                why = "a label over 63 bytes in host name " + quoted(in);
                return false;
            }

        } else {
            why = "invalid character in host name " + quoted(in)
                  + ": letters, digits, '-', '_' and '.' only (no port, "
                    "no wildcard)";
            return false;
        }

        out += c;
    }

    if (label == 0) {
        why = "empty label in host name " + quoted(in);
        return false;
    }

    if (is_ipv4(out)) {
        why = quoted(in) + " is an IP address: the table's ip rule routes "
              "those";
        return false;
    }

    return true;
}

// Eight bytes at a time, in the machine's order (a block never leaves the
// machine that wrote it): every request with runtime hosts hashes its Host.
std::uint64_t HostsView::hash(std::string_view host) noexcept
{
    const char *p = host.data();
    std::size_t n = host.size();
    std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    std::uint64_t k;

    for (; n >= 8; n -= 8, p += 8) {
        std::memcpy(&k, p, 8);
        h = (h ^ k) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    if (n) {
        k = 0;
        std::memcpy(&k, p, n);
        h = (h ^ k) * 0xc4ceb9fe1a85ec53ULL;
    }

    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;

    return h;
}

std::size_t hosts_block_size(std::size_t count, std::size_t name_bytes)
{
    std::size_t slots = 16;
    while (slots < count * 2) {
        slots *= 2;
    }
    std::size_t arena = count * record_header + name_bytes;
    return header_size + slots * 8 + arena;
}

std::string encode_hosts(const HostMap &hosts)
{
    std::size_t names = 0;
    for (const auto &h : hosts) {
        names += h.first.size() + h.second.table.size()
                 + h.second.target.size();
    }

    std::size_t slots = 16;
    while (slots < hosts.size() * 2) {
        slots *= 2;
    }

    std::size_t arena_at = header_size + slots * 8;
    std::string out(hosts_block_size(hosts.size(), names), '\0');

    store32(out, 0, magic);
    store32(out, 4, static_cast<std::uint32_t>(slots - 1));
    store32(out, 8, static_cast<std::uint32_t>(hosts.size()));
    store32(out, 12, static_cast<std::uint32_t>(out.size() - arena_at));

    std::size_t off = 0;

    for (const auto &h : hosts) {
        const std::string &table = h.second.table, &target = h.second.target;
        std::size_t at = arena_at + off;

        out[at] = static_cast<char>(table.size());
        out[at + 1] = static_cast<char>(h.first.size());
        out[at + 2] = static_cast<char>(target.size());
        at += record_header;
        std::memcpy(&out[at], table.data(), table.size());
        at += table.size();
        std::memcpy(&out[at], h.first.data(), h.first.size());
        at += h.first.size();
        std::memcpy(&out[at], target.data(), target.size());

        std::uint64_t hv = HostsView::hash(h.first);
        std::size_t i = hv & (slots - 1);

        while (load32(reinterpret_cast<const unsigned char *>(
                   &out[header_size + i * 8 + 4])) != 0)
        {
            i = (i + 1) & (slots - 1);
        }

        store32(out, header_size + i * 8, static_cast<std::uint32_t>(hv >> 32));
        store32(out, header_size + i * 8 + 4,
                static_cast<std::uint32_t>(off + 1));

        off += record_header + table.size() + h.first.size() + target.size();
    }

    return out;
}

HostsView::HostsView(const void *data, std::size_t size) noexcept
{
    const auto *p = static_cast<const unsigned char *>(data);

    if (p == nullptr || size < header_size || load32(p) != magic) {
        return;
    }

    std::uint32_t mask = load32(p + 4);
    std::uint64_t slots = std::uint64_t(mask) + 1;

    if ((slots & mask) != 0
        || slots * 8 > size - header_size
        || load32(p + 12) > size - header_size - slots * 8)
    {
        return;
    }

    mask_ = mask;
    count_ = load32(p + 8);
    arena_size_ = load32(p + 12);
    slots_ = p + header_size;
    arena_ = slots_ + slots * 8;
}

bool HostsView::record(std::size_t off, Record &out, std::size_t &next) const
    noexcept
{
    if (off >= arena_size_ || arena_size_ - off < record_header) {
        return false;
    }

    const unsigned char *r = arena_ + off;
    std::size_t t = r[0], h = r[1], g = r[2];

    if (arena_size_ - off - record_header < t + h + g) {
        return false;
    }

    const char *s = reinterpret_cast<const char *>(r + record_header);
    out.table = std::string_view(s, t);
    out.host = std::string_view(s + t, h);
    out.target = std::string_view(s + t + h, g);
    next = off + record_header + t + h + g;

    return true;
}

bool HostsView::find(std::string_view host, Record &out) const noexcept
{
    if (count_ == 0) {
        return false;
    }

    std::uint64_t hv = hash(host);
    std::uint32_t tag = static_cast<std::uint32_t>(hv >> 32);
    std::size_t i = hv & mask_;
    std::size_t next;

    for (std::size_t probes = 0; probes <= mask_; probes++) {
        std::uint32_t off = load32(slots_ + i * 8 + 4);

        if (off == 0) {
            return false;
        }

        if (load32(slots_ + i * 8) == tag && record(off - 1, out, next)
            && out.host == host)
        {
            return true;
        }

        i = (i + 1) & mask_;
    }

    return false;
}

}  // namespace dynroute
