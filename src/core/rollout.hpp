// Rollouts: canary, A/B/n and blue/green splits between upstreams.
//
// A rollout has two or more variants, each with a weight in hundredths of a
// percent.  A request's variant is chosen, in this order, by an override
// value (from a header or a cookie: "always", "never" or a variant's name),
// by the client's address (source CIDRs), then by its key through weighted
// rendezvous hashing:
//
//   score(v) = -ln(u(v)) / weight(v),  u(v) = hash(rollout, variant, key)
//
// and the lowest score wins.  So the variant is a pure function of the
// rollout's name, the key and the weights: the same in every worker, after a
// reload and on every instance with the same configuration.  The hash is
// salted with the rollout's name, so two rollouts on the same key are
// independent; and raising one variant's weight at the expense of another
// moves keys only into the first and only out of the second.
//
// A Rollout is immutable once finished and holds all of its state.  Pure
// C++17, no nginx headers; pick() and friends never throw or allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "siphash.hpp"
#include "text.hpp"

namespace dynroute {

// 100 % in the unit of weights: 0.01 %.
inline constexpr std::uint32_t weight_scale = 10000;

struct WeightSpec {
    std::uint32_t value = 0;  // in 0.01 %
    bool rest = false;        // "*": whatever the other variants leave
};

// "25%", "0.5%", "33.33%", "100%", or "*".  Throws ConfigError.
WeightSpec parse_weight(std::string_view text);

// Formats a weight in 0.01 % as "12.5%".
std::string format_weight(std::uint32_t value);

// An IPv4 (4 bytes) or IPv6 (16 bytes) address, network byte order.
struct Address {
    unsigned char family = 0;  // 4 or 6; 0 matches no CIDR
    unsigned char bytes[16] = {};
};

struct Cidr {
    Address net;
    unsigned prefix = 0;
    bool host_bits = false;  // "10.0.0.1/8": bits below the prefix were set
};

// "10.0.0.0/8", "2001:db8::/32", "127.0.0.1" (a single address).  Host bits
// below the prefix are cleared and reported.  Throws ConfigError.
Cidr parse_cidr(std::string_view text);

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it
// carries, as nginx's access module has it: it matches IPv4 CIDRs, and no
// IPv6 one (not even ::/0 or ::ffff:0:0/96).
bool cidr_match(const Cidr &cidr, const Address &addr) noexcept;

// The value of cookie `name` in one Cookie header ("a=1; b=2"), or false.
bool find_cookie(std::string_view header, std::string_view name,
                 std::string_view &value) noexcept;

// A 64-bit hash of bytes, independent of the host's byte order.
std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed) noexcept;

// A stickiness cookie's value: when it was issued (unix seconds) and the
// tag that signs it.  Written as 24 lowercase hex digits: 8 of the time, 16
// of the tag.
struct StickyValue {
    std::uint32_t issued = 0;
    std::uint64_t tag = 0;
};

inline constexpr std::size_t sticky_value_size = 24;

// Exactly 24 lowercase hex digits; anything else is false.
bool parse_sticky(std::string_view text, StickyValue &value) noexcept;

// Writes the 24 digits to out.
void format_sticky(const StickyValue &value, char *out) noexcept;

// What a pick goes by besides the request: each variant's weight (in
// 0.01 %, summing to 100 %) and the primary.  The configured values
// (Rollout::configured()), or the runtime state's, which a worker reads in
// place: neither is copied into the Rollout.
struct Split {
    const std::uint32_t *weights = nullptr;  // one per variant
    std::size_t primary = 0;
};

class Rollout {
public:
    explicit Rollout(std::string_view name);

    // Throws ConfigError: a bad weight, a duplicate or reserved name, a
    // second "*".  Returns the variant's index.
    std::size_t add_variant(std::string_view name, std::string_view weight);

    // Throw ConfigError for an unknown variant.
    void add_source(const Cidr &cidr, std::string_view variant);
    void set_primary(std::string_view variant);

    // Checks the weights (they sum to 100 %, or "*" takes the rest) and that
    // there are two variants at least.  Throws ConfigError.
    void finish();

    // The configured weights and primary.
    Split configured() const noexcept { return {weights_.data(), primary_}; }

    // Whether weights are a split of this rollout: one per variant,
    // summing to 100 %.
    bool valid_weights(const std::uint32_t *weights, std::size_t n) const
        noexcept;

    // Who may steer with the override header and cookie: clients in these
    // CIDRs ("override_from"), or anyone (override_from all).  Neither
    // called: nobody.
    void add_override_from(const Cidr &cidr);
    void override_from_all() noexcept { overrides_from_all_ = true; }
    bool override_from_set() const noexcept
    {
        return overrides_from_all_ || !override_from_.empty();
    }
    bool override_allowed(const Address *addr) const noexcept;

    // The stickiness cookie, after finish(): its values are signed with
    // key, valid for lifetime seconds after they were issued, and bound to
    // the request's key unless bind_key is false (the key is the cookie
    // itself).  Two rollouts with the same name, variants, key and these
    // arguments (another worker, instance or configuration) sign alike.
    void set_sticky(const SipKey &key, std::uint32_t lifetime, bool bind_key);
    bool sticky() const noexcept { return !sticky_.empty(); }
    std::uint32_t sticky_lifetime() const noexcept { return sticky_lifetime_; }
    bool sticky_binds_key() const noexcept { return sticky_bind_key_; }

    // How far in the future (in seconds) an issue time may be: the clocks
    // of a fleet's nodes differ by that much at most.
    static constexpr std::int64_t sticky_skew = 60;

    // The lifetime of a value when the cookie has no max_age (a session
    // cookie, which a browser may keep for long): one day.
    static constexpr std::uint32_t sticky_session_lifetime = 86400;

    // Request time: never throw, never allocate.

    // Each takes the split to go by; without one, the configured split.

    // "always": the first variant that is not the primary; "never": the
    // primary; a variant's name: that variant; anything else: npos.
    std::size_t by_override(std::string_view value, const Split &s) const
        noexcept;
    std::size_t by_override(std::string_view value) const noexcept
    {
        return by_override(value, configured());
    }

    // The variant of the first source CIDR that matches, or npos.
    std::size_t by_source(const Address &addr) const noexcept;

    // The value of the stickiness cookie that variant v gets when it is
    // issued at now (unix seconds) to key (set_sticky first).
    StickyValue sticky_issue(std::size_t v, std::string_view key,
                             std::int64_t now) const noexcept;

    // The variant a stickiness cookie's value names: the value's tag is the
    // one this rollout signs for that variant, the value's issue time and
    // key (when bound), the issue time is at most sticky_skew ahead of now
    // and less than the lifetime behind, and the variant's weight is above
    // 0 %; else npos.  Every variant's tag is computed and compared, so the
    // time taken tells nothing about how close a forged tag came.
    std::size_t by_sticky(std::string_view value, std::string_view key,
                          std::int64_t now, const Split &s) const noexcept;
    std::size_t by_sticky(std::string_view value, std::string_view key,
                          std::int64_t now) const noexcept
    {
        return by_sticky(value, key, now, configured());
    }

    // Weighted rendezvous hashing of the key.
    std::size_t by_weight(std::string_view key, const Split &s) const
        noexcept;
    std::size_t by_weight(std::string_view key) const noexcept
    {
        return by_weight(key, configured());
    }

    // What a request offers, each part optional but the key.
    struct Inputs {
        const std::string_view *header = nullptr;  // the override header
        const std::string_view *cookie = nullptr;  // the override cookie
        const Address *address = nullptr;          // the client
        const std::string_view *sticky = nullptr;  // the stickiness cookie
        std::string_view key;                      // the stickiness key
        std::int64_t now = 0;                      // unix seconds (sticky)
    };

    // Why a request got its variant.  A pick gives the first five;
    // "fallback" is the balancer's: the primary served instead.
    enum class Reason : unsigned char { weight, header, cookie, source,
                                        sticky, fallback };
    static constexpr std::size_t reasons = 6;
    static std::string_view reason_name(Reason r) noexcept;

    // The order: override header, override cookie, source, stickiness
    // cookie, then weight.  Sets *reason to what decided, if reason is not
    // null.  Whether the overrides may be read at all is the caller's
    // (override_allowed).
    std::size_t pick(const Inputs &in, const Split &s,
                     Reason *reason = nullptr) const noexcept;
    std::size_t pick(const Inputs &in, Reason *reason = nullptr) const
        noexcept
    {
        return pick(in, configured(), reason);
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    std::size_t size() const noexcept { return variants_.size(); }
    std::uint32_t weight(std::size_t i) const noexcept
    {
        return weights_[i];
    }
    std::size_t primary() const noexcept { return primary_; }
    std::size_t find(std::string_view variant) const noexcept;

private:
    struct Variant {
        std::string name;
        std::uint32_t weight;  // as written; "*": see weights_
        bool rest;
        std::uint64_t seed;
    };

    struct Source {
        Cidr cidr;
        std::size_t variant;
    };

    std::string name_;
    std::uint64_t seed_;
    std::vector<Variant> variants_;
    std::vector<Source> sources_;
    std::vector<Cidr> override_from_;
    bool overrides_from_all_ = false;
    // by variant: SipHash's state after the tag's fixed part
    std::vector<SipHasher> sticky_;
    std::uint32_t sticky_lifetime_ = 0;
    bool sticky_bind_key_ = true;
    std::vector<std::uint32_t> weights_;  // configured, "*" resolved
    std::size_t primary_ = 0;
};

}  // namespace dynroute
