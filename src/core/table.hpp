// The compiled route table: host patterns with nginx's own semantics.
//
// Precedence, exactly as in server_name and map { hostnames; }:
//   the ip rule (when the host is an IP literal), then the exact name,
//   the longest leading wildcard ("*.example.com", ".example.com"),
//   the longest trailing wildcard ("www.example.*"),
//   the first matching regex in configuration order, then the default.
//
// Tables are built once at configuration time (building may throw
// ConfigError) and are immutable afterwards; find() and find_lower() never
// throw and never allocate.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "regex.hpp"
#include "text.hpp"

namespace dynroute {

using RuleId = std::uint32_t;
inline constexpr RuleId no_rule = UINT32_MAX;

// A host pattern that nginx's hash would refuse as conflicting (NGX_BUSY):
// the same name twice, "example.com" with ".example.com", ".example.com"
// with "*.example.com".  `previous` is the rule it collides with.
class ConflictError : public ConfigError {
public:
    ConflictError(const std::string &what, RuleId prev)
        : ConfigError(what), previous(prev)
    {
    }
    RuleId previous;
};

enum class PatternKind : unsigned char {
    exact,  // "a.example.com"
    dot,    // ".example.com": example.com and every subdomain
    star,   // "*.example.com": every subdomain, not example.com itself
    tail,   // "www.example.*"
    regex   // "~re" (case-sensitive) or "~*re" (caseless)
};

struct Pattern {
    PatternKind kind;
    std::string key;  // lowercase name without the wildcard part, or the regex
    bool caseless = false;
};

// Parses a table key the way map { hostnames; } reads it: "~" and "~*" start
// a regex, a leading backslash escapes the rest ("\default" is the host
// "default"), and wildcards are the three forms nginx supports.  Beyond what
// nginx accepts, it refuses names that could never match a validated Host (a
// trailing dot, a port, a '/', a space).  Throws ConfigError.
Pattern parse_pattern(std::string_view text);

namespace detail {

// The word hash of host names, here so that the glue inlines hash_host().

// A word of sizeof(W) bytes, the first one in the low bits whatever the
// byte order.
template <class W> inline std::uint64_t load_word(const char *p) noexcept
{
    W w;
    std::memcpy(&w, p, sizeof(w));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if constexpr (sizeof(W) == 8) {
        w = __builtin_bswap64(w);
    } else {
        w = __builtin_bswap32(w);
    }
#endif
    return w;
}

inline std::uint64_t load8(const char *p) noexcept
{
    return load_word<std::uint64_t>(p);
}

inline std::uint64_t load4(const char *p) noexcept
{
    return load_word<std::uint32_t>(p);
}

// Bytes [p, p + n), n <= 8, zero-padded, without a loop and without
// reading outside them: two overlapping loads (whose common bytes are the
// same) for 4 to 8 bytes, three single bytes for 1 to 3.
inline std::uint64_t load_upto8(const char *p, std::size_t n) noexcept
{
    if (n >= 4) {
        return load4(p) | (load4(p + n - 4) << ((n - 4) * 8));
    }
    if (n == 0) {
        return 0;
    }
    auto byte = [p](std::size_t i) {
        return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    return byte(0) | byte(n / 2) << (n / 2 * 8) | byte(n - 1) << ((n - 1) * 8);
}

// ASCII 'A'..'Z' to lowercase in eight bytes at once; other bytes unchanged.
template <bool Fold> inline std::uint64_t fold8(std::uint64_t w) noexcept
{
    if (!Fold) {
        return w;
    }
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    std::uint64_t seven = w & (0x7f * ones);
    std::uint64_t ge_a = seven + ((0x80 - 'A') * ones);      // >= 'A'
    std::uint64_t gt_z = seven + ((0x80 - 'Z' - 1) * ones);  // > 'Z'
    std::uint64_t upper = (ge_a ^ gt_z) & ~w & (0x80 * ones);
    return w | (upper >> 2);
}

// The 128-bit product folded to 64 bits: one multiply mixes a whole word.
inline std::uint64_t mum(std::uint64_t a, std::uint64_t b) noexcept
{
    __extension__ typedef unsigned __int128 u128;
    u128 p = static_cast<u128>(a) * b;
    return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
}

// Multipliers (wyhash's constants) and the start value.
inline constexpr std::uint64_t k_chunk = 0xa0761d6478bd642fULL;
inline constexpr std::uint64_t k_last = 0xe7037ed1a0b428dbULL;
inline constexpr std::uint64_t basis = 0xcbf29ce484222325ULL;

// The hash of the n bytes at p (case-folded with Fold), two words to a
// multiply: up to 8 bytes are one word, 9 to 16 the first and the last
// eight (overlapping), longer strings 16 bytes a step and then their last
// 16.  The length is mixed into the last step.  It reads only [p, p + n),
// so the hash of a suffix or prefix of a host is computed in place, and
// equals the hash of the same bytes as a key of their own.
template <bool Fold>
inline std::uint64_t hash_bytes(const char *p, std::size_t n) noexcept
{
    if (n <= 8) {
        return mum(basis ^ fold8<Fold>(load_upto8(p, n)), k_last ^ n);
    }
    std::uint64_t h = basis;
    for (std::size_t i = 0; n - i > 16; i += 16) {
        h = mum(h ^ fold8<Fold>(load8(p + i)),
                k_chunk ^ fold8<Fold>(load8(p + i + 8)));
    }
    std::size_t last = n > 16 ? n - 16 : 0;
    return mum(h ^ fold8<Fold>(load8(p + last)),
               k_last ^ n ^ fold8<Fold>(load8(p + n - 8)));
}

// Whether the n bytes at stored (lowercase) equal the n bytes at p,
// case-folded with Fold: a word at a time, the last word overlapping the
// one before it; 4 to 8 bytes as two 4-byte loads, fewer byte by byte.
// It reads only [stored, stored + n) and [p, p + n).
template <bool Fold>
inline bool equal_words(const char *stored, const char *p,
                        std::size_t n) noexcept
{
    if (n < 4) {
        auto same = [&](std::size_t i) {
            auto c = static_cast<unsigned char>(p[i]);
            return static_cast<unsigned char>(stored[i]) == fold8<Fold>(c);
        };
        return n == 0 || (same(0) && same(n / 2) && same(n - 1));
    }
    if (n <= 8) {
        return ((load4(stored) ^ fold8<Fold>(load4(p))) |
                (load4(stored + n - 4) ^ fold8<Fold>(load4(p + n - 4)))) == 0;
    }
    std::size_t i = 0;
    do {
        if (load8(stored + i) != fold8<Fold>(load8(p + i))) {
            return false;
        }
        i += 8;
    } while (n - i > 8);
    return load8(stored + n - 8) == fold8<Fold>(load8(p + n - 8));
}

}  // namespace detail

// Open-addressing hash of lowercase names.  One hash function for the
// three kinds of keys (detail::hash_bytes): exact names are hashed whole,
// leading wildcards' keys ("example.com" of "*.example.com") are found as
// suffixes of the host, trailing wildcards' keys as prefixes, each hashed
// in place when it is looked up.
class HostIndex {
public:
    HostIndex() noexcept = default;

    // Returns no_rule when inserted, or the rule already holding the key.
    // Both compare the key case-insensitively; hash is hash_name() of the
    // key in lowercase.
    RuleId insert(std::string_view key, std::uint64_t hash, RuleId rule);
    RuleId find(std::string_view key, std::uint64_t hash) const noexcept;

    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    std::size_t memory() const noexcept;

    // hash_bytes of a key (lowercase, so with or without case folding).
    static std::uint64_t hash_name(std::string_view s) noexcept
    {
        return detail::hash_bytes<false>(s.data(), s.size());
    }

    // Whether a key of this length may be in the index: no key is longer
    // than max_len_, and len_bits_ has the bit of every key's length (255
    // for 255 bytes and more).  The wildcard passes skip the suffixes and
    // prefixes that cannot be keys without hashing them, and never look at
    // more than max_len_ bytes of a host however many labels it has: a
    // host hashes at most as many suffixes as there are key lengths.
    bool may_hold(std::size_t len) const noexcept
    {
        std::size_t b = len < 255 ? len : 255;
        return len <= max_len_ && ((len_bits_[b >> 6] >> (b & 63)) & 1) != 0;
    }
    std::size_t max_len() const noexcept { return max_len_; }

private:
    struct Slot {
        std::uint32_t tag;
        std::uint32_t len;
        std::uint32_t off;
        RuleId rule;
    };

    void grow();

    // find() itself, inline so that Table's lookups (and find_lower() in
    // the caller's code) inline it even in a -fPIC module, where a call to
    // an exported function would stay a call.  Fold compares the probe
    // case-folded.
    // The rule of the len bytes at key, hashed here, or no_rule.
    template <bool Fold>
    RuleId find_key(const char *key, std::size_t len) const noexcept
    {
        return lookup<Fold>(key, len, detail::hash_bytes<Fold>(key, len));
    }

    // The leading wildcards' pass: the rule of the longest suffix of the
    // n bytes at p that starts after a dot and is a key, or no_rule.
    template <bool Fold>
    RuleId find_suffix(const char *p, std::size_t n) const noexcept;
    template <bool Fold>
    RuleId find_suffix_bytes(const char *p, std::size_t n) const noexcept;

    // The trailing wildcards' pass: the rule of the longest prefix of the
    // n bytes at p that ends before a dot and is a key, or no_rule.
    template <bool Fold>
    RuleId find_prefix(const char *p, std::size_t n) const noexcept;
    template <bool Fold>
    RuleId find_prefix_bytes(const char *p, std::size_t n) const noexcept;

    template <bool Fold>
    RuleId lookup(const char *key, std::size_t len,
                  std::uint64_t hash) const noexcept
    {
        if (count_ == 0) {
            return no_rule;
        }

        std::uint32_t tag = static_cast<std::uint32_t>(hash >> 32);
        const Slot *slots = slots_.data();

        for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
            const Slot &s = slots[i];
            if (s.rule == no_rule) {
                return no_rule;
            }
            if (s.tag == tag && s.len == len &&
                detail::equal_words<Fold>(arena_.data() + s.off, key, len)) {
                return s.rule;
            }
        }
    }

    std::vector<Slot> slots_;
    std::string arena_;
    std::size_t count_ = 0;
    std::size_t mask_ = 0;
    std::size_t max_len_ = 0;
    std::uint64_t len_bits_[4] = {0, 0, 0, 0};
    std::uint64_t by_end_ = 0;  // bit 63 - len: a key of len < 64 bytes

    friend class Table;
    friend class TableBuilder;
};

// Eight bytes, so that it comes back in one register.
struct Decision {
    static constexpr std::int32_t no_regex = -1;
    static constexpr std::int32_t failed = -2;  // a regex failed to run

    RuleId rule = no_rule;
    std::int32_t regex = no_regex;  // the regex that matched, no_regex, or
                                    // failed (and the default was used)

    bool error() const noexcept { return regex == failed; }
};

class Table {
public:
    Table() = default;
    Table(Table &&) noexcept = default;
    Table &operator=(Table &&) noexcept = default;

    // host is nginx's $host (lowercase, no port); one trailing dot is
    // ignored and letters are compared case-insensitively anyway.  Any bytes
    // are accepted.
    Decision find(std::string_view host) const noexcept;

    // The fast path for a host that is lowercase and has no trailing dot,
    // as nginx hands it over ($host: ngx_http_validate_host() lowercases the
    // Host header and strips its trailing dot; server_name is lowercase),
    // with hash == hash_host(lower_host).  Nothing is case-folded.  For
    // such a host it decides exactly as find() does.  For any other bytes
    // (or another hash) the result is still a valid Decision, but exact
    // names and wildcards may miss a host with upper case or a trailing
    // dot (regexes see the bytes as given).
    __attribute__((always_inline)) Decision
    find_lower(std::string_view lower_host, std::uint64_t hash) const noexcept
    {
        if (ip_ != no_rule) {
            return find_lower_ip(lower_host, hash);
        }
        RuleId r = exact_.lookup<false>(lower_host.data(), lower_host.size(),
                                        hash);
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
        if (!head_.empty()) {
            r = head_.find_suffix<false>(lower_host.data(), lower_host.size());
            if (r != no_rule) {
                return Decision{r, Decision::no_regex};
            }
        }
        return find_rest<false>(lower_host);
    }

    // The hash that find_lower() takes: the same function as
    // SnapshotView::hash(), so that a Host is hashed once per request for
    // the runtime hosts and the table.  Any bytes; no case folding.
    static std::uint64_t hash_host(std::string_view lower_host) noexcept
    {
        return detail::hash_bytes<false>(lower_host.data(), lower_host.size());
    }

    // Group n of the regex that produced the last Decision with regex >= 0.
    bool group(unsigned n, std::size_t &begin, std::size_t &end) const noexcept
    {
        return match_.group(n, begin, end);
    }

    std::size_t regex_count() const noexcept { return regexes_.size(); }
    const Regex &regex(std::size_t i) const noexcept { return regexes_[i]; }

    RuleId ip_rule() const noexcept { return ip_; }
    RuleId default_rule() const noexcept { return default_; }

    struct Stats {
        std::size_t exact, head, tail, regex, bytes;
    };
    Stats stats() const noexcept;

private:
    friend class TableBuilder;

    // What comes after the exact name: the wildcards, the regexes and the
    // default.  Out of line, so that an exact hit does not pay for its
    // frame.  Fold: case-insensitive, for find().
    template <bool Fold>
    Decision find_rest(std::string_view host) const noexcept;
    Decision find_lower_ip(std::string_view host,
                           std::uint64_t hash) const noexcept;

    HostIndex exact_;
    HostIndex head_;  // keys of "*.x" and ".x" (match subdomains of x)
    HostIndex tail_;  // keys of "x.*"
    std::vector<Regex> regexes_;
    std::vector<RuleId> regex_rules_;
    mutable MatchData match_{0};
    RuleId ip_ = no_rule;
    RuleId default_ = no_rule;
};

class TableBuilder {
public:
    TableBuilder();

    // Adds a host pattern (see parse_pattern) for rule; throws ConfigError,
    // or ConflictError when it collides with an earlier pattern.
    void add(std::string_view pattern, RuleId rule);

    // Throw ConflictError when set twice.
    void set_ip(RuleId rule);
    void set_default(RuleId rule);

    // The regexes added so far, in order (their named groups become nginx
    // variables as each rule is read).
    std::size_t regex_count() const noexcept
    {
        return table_.regexes_.size();
    }
    const Regex &regex(std::size_t i) const noexcept
    {
        return table_.regexes_[i];
    }

    // Finishes the table; the builder is empty afterwards.
    Table build();

private:
    Table table_;
    unsigned max_captures_ = 0;
};

}  // namespace dynroute
