#include "rollout.hpp"

#include <arpa/inet.h>

#include <cmath>
#include <cstring>

namespace dynroute {

namespace {

std::uint64_t load_le(const unsigned char *p, std::size_t n) noexcept
{
    std::uint64_t v = 0;
    for (std::size_t i = n; i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

// A 64-bit finalizer with full avalanche (every input bit flips each output
// bit with probability close to 1/2).
std::uint64_t mix(std::uint64_t z) noexcept
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ULL;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z;
}

bool valid_variant_name(std::string_view s) noexcept
{
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || is_digit(c) || c == '_' || c == '-' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

}  // namespace

WeightSpec parse_weight(std::string_view text)
{
    WeightSpec w;

    if (text == "*") {
        w.rest = true;
        return w;
    }

    auto bad = [&]() {
        return ConfigError("invalid weight " + quoted(text)
                           + ": expected a percentage with up to two "
                             "decimals, such as \"12.5%\", or \"*\"");
    };

    std::size_t i = 0, n = text.size();
    std::uint32_t whole = 0, frac = 0;

    if (n < 2 || text[n - 1] != '%') {
        throw bad();
    }
    n--;

    std::size_t start = i;
    while (i < n && is_digit(text[i])) {
        if (i - start == 3) {
            throw bad();
        }
        whole = whole * 10 + static_cast<std::uint32_t>(text[i] - '0');
        i++;
    }
    if (i == start) {
        throw bad();
    }

    if (i < n) {
        if (text[i] != '.') {
            throw bad();
        }
        i++;
        std::size_t digits = n - i;
        if (digits < 1 || digits > 2) {
            throw bad();
        }
        for (; i < n; i++) {
            if (!is_digit(text[i])) {
                throw bad();
            }
            frac = frac * 10 + static_cast<std::uint32_t>(text[i] - '0');
        }
        if (digits == 1) {
            frac *= 10;
        }
    }

    w.value = whole * 100 + frac;

    if (w.value > weight_scale) {
        throw ConfigError("invalid weight " + quoted(text)
                          + ": more than 100%");
    }

    return w;
}

std::string format_weight(std::uint32_t value)
{
    std::string s = std::to_string(value / 100);
    std::uint32_t frac = value % 100;

    if (frac) {
        s += '.';
        s += static_cast<char>('0' + frac / 10);
        if (frac % 10) {
            s += static_cast<char>('0' + frac % 10);
        }
    }

    return s + "%";
}

Cidr parse_cidr(std::string_view text)
{
    Cidr c;
    std::string addr(text.substr(0, text.find('/')));
    std::string_view prefix;
    bool has_prefix = text.find('/') != std::string_view::npos;

    if (has_prefix) {
        prefix = text.substr(text.find('/') + 1);
    }

    auto bad = [&]() {
        return ConfigError("invalid address " + quoted(text)
                           + ": expected an IPv4 or IPv6 address with an "
                             "optional /prefix, such as \"10.0.0.0/8\"");
    };

    if (inet_pton(AF_INET, addr.c_str(), c.net.bytes) == 1) {
        c.net.family = 4;
    } else if (inet_pton(AF_INET6, addr.c_str(), c.net.bytes) == 1) {
        c.net.family = 6;
    } else {
        throw bad();
    }

    unsigned max = c.net.family == 4 ? 32 : 128;

    if (!has_prefix) {
        c.prefix = max;
        return c;
    }

    if (prefix.empty() || prefix.size() > 3) {
        throw bad();
    }

    unsigned p = 0;
    for (char ch : prefix) {
        if (!is_digit(ch)) {
            throw bad();
        }
        p = p * 10 + static_cast<unsigned>(ch - '0');
    }
    if (p > max) {
        throw bad();
    }

    c.prefix = p;

    for (unsigned bit = p; bit < max; bit++) {
        unsigned char m = static_cast<unsigned char>(0x80u >> (bit % 8));
        if (c.net.bytes[bit / 8] & m) {
            c.host_bits = true;
            c.net.bytes[bit / 8] &= static_cast<unsigned char>(~m);
        }
    }

    return c;
}

bool cidr_match(const Cidr &cidr, const Address &addr) noexcept
{
    const unsigned char *bytes = addr.bytes;

    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0,
                                             0, 0, 0, 0, 0xff, 0xff};

    unsigned char family = addr.family;

    // an IPv4 client of a dual-stack listener is IPv4, as for nginx's
    // allow/deny: IPv4 CIDRs match it, IPv6 ones (::/0 too) do not
    if (family == 6 && std::memcmp(addr.bytes, mapped, sizeof(mapped)) == 0) {
        bytes = addr.bytes + 12;
        family = 4;
    }

    if (cidr.net.family != family) {
        return false;
    }

    unsigned full = cidr.prefix / 8, rest = cidr.prefix % 8;

    if (std::memcmp(bytes, cidr.net.bytes, full) != 0) {
        return false;
    }

    if (rest) {
        unsigned char m = static_cast<unsigned char>(0xff00u >> rest);
        if ((bytes[full] & m) != cidr.net.bytes[full]) {
            return false;
        }
    }

    return true;
}

bool find_cookie(std::string_view header, std::string_view name,
                 std::string_view &value) noexcept
{
    std::size_t i = 0, n = header.size();

    while (i < n) {
        while (i < n && (header[i] == ' ' || header[i] == '\t'
                         || header[i] == ';'))
        {
            i++;
        }

        std::size_t end = header.find(';', i);
        if (end == std::string_view::npos) {
            end = n;
        }

        std::string_view pair = header.substr(i, end - i);
        std::size_t eq = pair.find('=');

        if (eq != std::string_view::npos) {
            std::string_view k = pair.substr(0, eq);
            while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) {
                k.remove_suffix(1);
            }

            if (k == name) {
                std::string_view v = pair.substr(eq + 1);
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
                    v.remove_prefix(1);
                }
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
                    v.remove_suffix(1);
                }
                if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
                    v = v.substr(1, v.size() - 2);
                }
                value = v;
                return true;
            }
        }

        i = end;
    }

    return false;
}

std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed) noexcept
{
    const std::uint64_t m = 0xc6a4a7935bd1e995ULL;
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    std::size_t n = s.size();
    std::uint64_t h = seed ^ (n * m);

    for (; n >= 8; n -= 8, p += 8) {
        std::uint64_t k = load_le(p, 8);
        k *= m;
        k ^= k >> 47;
        k *= m;
        h ^= k;
        h *= m;
    }

    if (n) {
        h ^= load_le(p, n);
        h *= m;
    }

    return mix(h);
}

Rollout::Rollout(std::string_view name)
    : name_(name), seed_(hash_bytes(name, 0x64796e726f757465ULL))
{
}

std::size_t Rollout::find(std::string_view variant) const noexcept
{
    for (std::size_t i = 0; i < variants_.size(); i++) {
        if (variants_[i].name == variant) {
            return i;
        }
    }
    return npos;
}

std::size_t Rollout::add_variant(std::string_view name,
                                 std::string_view weight)
{
    if (!valid_variant_name(name)) {
        throw ConfigError("invalid variant name " + quoted(name)
                          + ": use letters, digits, '_', '-' and '.'");
    }

    if (name == "always" || name == "never") {
        throw ConfigError("variant name " + quoted(name)
                          + " is reserved: it is an override value");
    }

    if (find(name) != npos) {
        throw ConfigError("duplicate variant " + quoted(name));
    }

    WeightSpec w = parse_weight(weight);

    if (w.rest) {
        for (const auto &v : variants_) {
            if (v.rest) {
                throw ConfigError("a second \"*\" weight: only one variant "
                                  "may take the rest");
            }
        }
    }

    variants_.push_back({std::string(name), w.value, w.rest,
                         hash_bytes(name, seed_)});

    return variants_.size() - 1;
}

void Rollout::add_source(const Cidr &cidr, std::string_view variant)
{
    std::size_t i = find(variant);

    if (i == npos) {
        throw ConfigError("unknown variant " + quoted(variant));
    }

    sources_.push_back({cidr, i});
}

void Rollout::set_primary(std::string_view variant)
{
    std::size_t i = find(variant);

    if (i == npos) {
        throw ConfigError("unknown variant " + quoted(variant));
    }

    primary_ = i;
}

void Rollout::finish()
{
    if (variants_.size() < 2) {
        throw ConfigError("two variants at least are needed");
    }

    std::uint32_t sum = 0;
    Variant *rest = nullptr;

    for (auto &v : variants_) {
        sum += v.weight;
        if (v.rest) {
            rest = &v;
        }
    }

    if (rest) {
        if (sum > weight_scale) {
            throw ConfigError("the weights sum to " + format_weight(sum)
                              + " before \"*\", more than 100%");
        }
        rest->weight = weight_scale - sum;

    } else if (sum != weight_scale) {
        throw ConfigError("the weights sum to " + format_weight(sum)
                          + ", not 100% (\"*\" takes the rest)");
    }

    weights_.clear();

    for (const auto &v : variants_) {
        weights_.push_back(v.weight);
    }
}

bool Rollout::valid_weights(const std::uint32_t *weights, std::size_t n) const
    noexcept
{
    if (weights == nullptr || n != variants_.size()) {
        return false;
    }

    std::uint32_t sum = 0;

    for (std::size_t i = 0; i < n; i++) {
        if (weights[i] > weight_scale) {
            return false;
        }
        sum += weights[i];
    }

    return sum == weight_scale;
}

std::size_t Rollout::by_override(std::string_view value, const Split &s)
    const noexcept
{
    if (value == "always") {
        return s.primary == 0 ? 1 : 0;   // the first that is not the primary
    }

    if (value == "never") {
        return s.primary;
    }

    return find(value);
}

std::size_t Rollout::by_source(const Address &addr) const noexcept
{
    for (const auto &s : sources_) {
        if (cidr_match(s.cidr, addr)) {
            return s.variant;
        }
    }

    return npos;
}

std::size_t Rollout::by_weight(std::string_view key, const Split &s) const
    noexcept
{
    std::uint64_t k = hash_bytes(key, seed_);
    std::size_t best = npos;
    double best_score = 0.0;

    for (std::size_t i = 0; i < variants_.size(); i++) {
        std::uint32_t w = s.weights[i];

        if (w == 0) {
            continue;
        }

        // u in (0, 1]: the top 53 bits, plus one, times 2^-53; the score
        // times 1 / w, not divided by w: every version since the first
        // computes it so, bit for bit, so that every node agrees
        std::uint64_t x = mix(k ^ variants_[i].seed);
        double u = static_cast<double>((x >> 11) + 1) * 0x1p-53;
        double score = -std::log(u) * (1.0 / static_cast<double>(w));

        if (best == npos || score < best_score) {
            best = i;
            best_score = score;
        }
    }

    return best;
}

void Rollout::add_override_from(const Cidr &cidr)
{
    override_from_.push_back(cidr);
}

bool Rollout::override_allowed(const Address *addr) const noexcept
{
    if (overrides_from_all_) {
        return true;
    }

    if (addr == nullptr) {
        return false;
    }

    for (const auto &c : override_from_) {
        if (cidr_match(c, *addr)) {
            return true;
        }
    }

    return false;
}

namespace {

// The tag's message, each part's length fixed or given, so that no two
// inputs give the same bytes:
//
//   "dynroute-sticky/2" NUL, u32 length + rollout name,
//   u32 length + variant name,                      (sticky_, per variant)
//   u32 issue time, u8 1 + the key | u8 0          (per value)
//
// u32 are little-endian.  The first string changes with the format, so
// that values of another format are simply refused.

constexpr std::string_view sticky_domain{"dynroute-sticky/2\0", 18};

std::string le32(std::uint64_t x)
{
    std::string s(4, '\0');

    for (std::size_t i = 0; i < 4; i++) {
        s[i] = static_cast<char>((x >> (8 * i)) & 0xff);
    }

    return s;
}

int hex_digit(char c) noexcept
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}

}  // namespace

bool parse_sticky(std::string_view text, StickyValue &value) noexcept
{
    if (text.size() != sticky_value_size) {
        return false;
    }

    std::uint64_t issued = 0, tag = 0;

    for (std::size_t i = 0; i < sticky_value_size; i++) {
        int d = hex_digit(text[i]);

        if (d < 0) {
            return false;
        }

        if (i < 8) {
            issued = (issued << 4) | static_cast<std::uint64_t>(d);
        } else {
            tag = (tag << 4) | static_cast<std::uint64_t>(d);
        }
    }

    value.issued = static_cast<std::uint32_t>(issued);
    value.tag = tag;

    return true;
}

void format_sticky(const StickyValue &value, char *out) noexcept
{
    static const char hex[] = "0123456789abcdef";

    std::uint32_t issued = value.issued;
    std::uint64_t tag = value.tag;

    for (int i = 7; i >= 0; i--) {
        out[i] = hex[issued & 0xf];
        issued >>= 4;
    }

    for (int i = 23; i >= 8; i--) {
        out[i] = hex[tag & 0xf];
        tag >>= 4;
    }
}

void Rollout::set_sticky(const SipKey &key, std::uint32_t lifetime,
                         bool bind_key)
{
    std::vector<SipHasher> fixed;

    for (const auto &v : variants_) {
        SipHasher h(key);

        h.update(sticky_domain);
        h.update(le32(name_.size()));
        h.update(name_);
        h.update(le32(v.name.size()));
        h.update(v.name);

        fixed.push_back(h);
    }

    sticky_ = std::move(fixed);
    sticky_lifetime_ = lifetime;
    sticky_bind_key_ = bind_key;
}

namespace {

std::uint64_t sticky_tag(SipHasher h, std::uint32_t issued, bool bind_key,
                         std::string_view key) noexcept
{
    char tail[5];

    for (std::size_t i = 0; i < 4; i++) {
        tail[i] = static_cast<char>((issued >> (8 * i)) & 0xff);
    }

    tail[4] = bind_key ? 1 : 0;

    h.update(std::string_view(tail, sizeof(tail)));

    if (bind_key) {
        h.update(key);
    }

    return h.finish();
}

}  // namespace

StickyValue Rollout::sticky_issue(std::size_t v, std::string_view key,
                                  std::int64_t now) const noexcept
{
    StickyValue value;

    if (v >= sticky_.size()) {
        return value;
    }

    // unix seconds fit 32 bits until 2106
    value.issued = static_cast<std::uint32_t>(now);
    value.tag = sticky_tag(sticky_[v], value.issued, sticky_bind_key_, key);

    return value;
}

std::size_t Rollout::by_sticky(std::string_view text, std::string_view key,
                               std::int64_t now, const Split &s) const
    noexcept
{
    StickyValue value;

    if (sticky_.empty() || !parse_sticky(text, value)) {
        return npos;
    }

    // the time is in the clear: checking it first tells nothing
    std::int64_t age = now - static_cast<std::int64_t>(value.issued);
    std::int64_t lifetime = sticky_lifetime_;

    if (age < -sticky_skew || age >= lifetime) {
        return npos;
    }

    std::size_t found = npos;

    // every variant's tag is computed and compared whole, so that the time
    // tells nothing about a forged tag
    for (std::size_t i = 0; i < sticky_.size(); i++) {
        std::uint64_t tag = sticky_tag(sticky_[i], value.issued,
                                       sticky_bind_key_, key);
        bool same = (tag ^ value.tag) == 0;

        if (same && found == npos) {
            found = i;
        }
    }

    if (found != npos && s.weights[found] == 0) {
        return npos;
    }

    return found;
}

std::string_view Rollout::reason_name(Reason r) noexcept
{
    static constexpr std::string_view names[reasons] = {
        "weight", "header", "cookie", "source", "sticky", "fallback"};

    return names[static_cast<std::size_t>(r)];
}

std::size_t Rollout::pick(const Inputs &in, const Split &s, Reason *reason)
    const noexcept
{
    std::size_t v = npos;
    Reason why = Reason::header;

    if (in.header) {
        v = by_override(*in.header, s);
    }

    if (v == npos && in.cookie) {
        why = Reason::cookie;
        v = by_override(*in.cookie, s);
    }

    if (v == npos && in.address) {
        why = Reason::source;
        v = by_source(*in.address);
    }

    if (v == npos && in.sticky) {
        why = Reason::sticky;
        v = by_sticky(*in.sticky, in.key, in.now, s);
    }

    if (v == npos) {
        why = Reason::weight;
        v = by_weight(in.key, s);
    }

    if (reason) {
        *reason = why;
    }

    return v;
}

}  // namespace dynroute
