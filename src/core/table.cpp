#include "table.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "host.hpp"

namespace dynroute {

namespace {

using detail::fold8;
using detail::equal_words;
using detail::hash_bytes;
using detail::load8;
using detail::load_upto8;

constexpr std::uint64_t ones = 0x0101010101010101ULL;

struct LowerTable {
    unsigned char map[256];
    constexpr LowerTable() : map()
    {
        for (int i = 0; i < 256; i++) {
            map[i] = static_cast<unsigned char>(
                (i >= 'A' && i <= 'Z') ? i + ('a' - 'A') : i);
        }
    }
};

constexpr LowerTable lower{};

inline unsigned char low(char c) noexcept
{
    return lower.map[static_cast<unsigned char>(c)];
}

// The bytes of w equal to '.', as the top bit of each byte.  Exact for the
// lowest such byte only (a borrow can mark bytes above a real dot): for a
// search that takes the first one in a whole word.
inline std::uint64_t dots_low(std::uint64_t w) noexcept
{
    std::uint64_t x = w ^ ('.' * ones);
    return (x - ones) & ~x & (0x80 * ones);
}

// Exact for every byte, for the backward search and for a word whose first
// bytes are left out: no carry crosses bytes.
inline std::uint64_t dots_all(std::uint64_t w) noexcept
{
    std::uint64_t x = w ^ ('.' * ones);
    return ~(((x & (0x7f * ones)) + (0x7f * ones)) | x | (0x7f * ones));
}

// The first '.' in s[i, n), or n: a word at a time.  Dots are a few per
// host, so a byte loop would mispredict at the end of every label.
inline std::size_t next_dot(const char *s, std::size_t i,
                            std::size_t n) noexcept
{
    for (; i + 8 <= n; i += 8) {
        std::uint64_t m = dots_low(load8(s + i));
        if (m != 0) {
            return i + static_cast<std::size_t>(__builtin_ctzll(m)) / 8;
        }
    }
    if (i < n) {
        // The rest, in one word that ends at n when the host is long
        // enough, without the bytes before i.  dots_all: a dot among those
        // would mark the byte after it too in dots_low (a borrow: '/' ^ '.'
        // is 1), and that byte may be at i.
        if (n >= 8) {
            std::size_t skip = i - (n - 8);
            std::uint64_t m = dots_all(load8(s + n - 8)) >> (skip * 8)
                              << (skip * 8);
            if (m != 0) {
                return n - 8 +
                       static_cast<std::size_t>(__builtin_ctzll(m)) / 8;
            }
            return n;
        }
        for (; i < n; i++) {
            if (s[i] == '.') {
                return i;
            }
        }
    }
    return n;
}

// The last '.' in s[0, end), or npos: a word at a time from the right,
// and the first bytes (fewer than eight) in the host's first word when it
// has one (n, its size, is at least 8).
constexpr std::size_t npos = static_cast<std::size_t>(-1);

inline std::size_t prev_dot(const char *s, std::size_t end,
                            std::size_t n) noexcept
{
    for (; end >= 8; end -= 8) {
        std::uint64_t m = dots_all(load8(s + end - 8));
        if (m != 0) {
            return end - 8 +
                   static_cast<std::size_t>(63 - __builtin_clzll(m)) / 8;
        }
    }
    if (end == 0) {
        return npos;
    }
    if (n >= 8) {
        std::uint64_t m = dots_all(load8(s)) &
                          ((std::uint64_t{1} << (end * 8)) - 1);
        return m != 0 ? static_cast<std::size_t>(63 - __builtin_clzll(m)) / 8
                      : npos;
    }
    while (end > 0) {
        if (s[--end] == '.') {
            return end;
        }
    }
    return npos;
}

std::string to_lower(std::string_view s)
{
    std::string out(s);
    for (char &c : out) {
        c = static_cast<char>(low(c));
    }
    return out;
}

}  // namespace

Pattern parse_pattern(std::string_view text)
{
    Pattern p{PatternKind::exact, {}, false};

    if (!text.empty() && text[0] == '~') {
        text.remove_prefix(1);
        if (!text.empty() && text[0] == '*') {
            text.remove_prefix(1);
            p.caseless = true;
        }
        p.kind = PatternKind::regex;
        p.key.assign(text.data(), text.size());
        return p;
    }

    std::string_view original = text;

    if (!text.empty() && text[0] == '\\') {
        text.remove_prefix(1);
    }

    if (text.empty()) {
        throw ConfigError("empty hostname");
    }

    // The wildcard rules of nginx's ngx_hash_add_key().
    unsigned stars = 0;
    for (std::size_t i = 0; i < text.size(); i++) {
        if (text[i] == '*' && ++stars > 1) {
            throw ConfigError("invalid hostname or wildcard " +
                              quoted(original));
        }
        if (text[i] == '.' && i + 1 < text.size() && text[i + 1] == '.') {
            throw ConfigError("invalid hostname or wildcard " +
                              quoted(original));
        }
        if (text[i] == '\0') {
            throw ConfigError("invalid hostname or wildcard " +
                              quoted(original));
        }
    }

    std::string_view key = text;

    if (text.size() > 1 && text[0] == '.') {
        p.kind = PatternKind::dot;
        key = text.substr(1);
    } else if (text.size() > 2 && text[0] == '*' && text[1] == '.') {
        p.kind = PatternKind::star;
        key = text.substr(2);
    } else if (text.size() > 2 && text[text.size() - 2] == '.' &&
               text.back() == '*') {
        p.kind = PatternKind::tail;
        key = text.substr(0, text.size() - 2);
    } else if (stars) {
        throw ConfigError("invalid hostname or wildcard " + quoted(original));
    }

    // nginx would accept these and then never match them: say so instead.
    if (key.back() == '.') {
        throw ConfigError("invalid hostname " + quoted(original) +
                          ": hosts are matched without the trailing dot");
    }
    if (key.find(':') != std::string_view::npos && key[0] != '[') {
        throw ConfigError("invalid hostname " + quoted(original) +
                          ": hosts are matched without the port");
    }
    for (char c : key) {
        unsigned char ch = static_cast<unsigned char>(c);
        if (ch == '/' || ch <= 0x20 || ch == 0x7f) {
            throw ConfigError("invalid hostname " + quoted(original) +
                              ": a Host header cannot contain that");
        }
    }

    p.key = to_lower(key);
    return p;
}

/* HostIndex */

RuleId HostIndex::insert(std::string_view key, std::uint64_t hash, RuleId rule)
{
    if ((count_ + 1) * 2 > slots_.size()) {
        grow();
    }

    if (arena_.size() + key.size() > UINT32_MAX) {
        throw ConfigError("too many host names");
    }

    std::uint32_t tag = static_cast<std::uint32_t>(hash >> 32);
    std::size_t i = hash & mask_;
    while (slots_[i].rule != no_rule) {
        const Slot &s = slots_[i];
        if (s.tag == tag && s.len == key.size() &&
            equal_words<true>(arena_.data() + s.off, key.data(), s.len)) {
            return s.rule;
        }
        i = (i + 1) & mask_;
    }

    slots_[i] = Slot{tag, static_cast<std::uint32_t>(key.size()),
                     static_cast<std::uint32_t>(arena_.size()), rule};
    arena_.append(key.data(), key.size());
    count_++;
    if (key.size() > max_len_) {
        max_len_ = key.size();
    }
    std::size_t b = key.size() < 255 ? key.size() : 255;
    len_bits_[b >> 6] |= std::uint64_t{1} << (b & 63);
    if (key.size() < 64) {
        by_end_ |= std::uint64_t{1} << (63 - key.size());
    }
    return no_rule;
}

void HostIndex::grow()
{
    std::size_t cap = slots_.empty() ? 16 : slots_.size() * 2;
    std::vector<Slot> next(cap, Slot{0, 0, 0, no_rule});
    std::size_t mask = cap - 1;

    for (const Slot &s : slots_) {
        if (s.rule == no_rule) {
            continue;
        }
        std::size_t i = hash_name(std::string_view(arena_.data() + s.off,
                                                   s.len)) & mask;
        while (next[i].rule != no_rule) {
            i = (i + 1) & mask;
        }
        next[i] = s;
    }

    slots_.swap(next);
    mask_ = mask;
}

#if defined(__SSE2__)
// The dots of the 16 bytes at p, as the low 16 bits (bit i: byte i).
inline std::uint64_t dots16(const char *p) noexcept
{
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    return static_cast<std::uint32_t>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))));
}
#endif

// The suffixes that start after a dot, longest first, so that the first
// one in the index wins.  Out of line, with a frame of its own, so that a
// hit does not pay for the frame of the passes after it.
template <bool Fold>
__attribute__((noinline)) RuleId
HostIndex::find_suffix(const char *p, std::size_t n) const noexcept
{
#if defined(__SSE2__)
    // Hosts of 16 bytes and more, keys shorter than 64: the dots of the
    // last 64 bytes, 16 at a time, as bits of one word (bit j: byte
    // n - 64 + j, whose suffix after it has 63 - j bytes), and with them
    // by_end_, the key lengths in the same order: what is left are the
    // suffixes worth hashing, the longest first.  Loads stay within the
    // host and within the longest key's reach.
    if (n >= 16 && max_len_ < 64) {
        std::size_t stop = n > max_len_ + 1 ? n - max_len_ - 1 : 0;
        std::size_t off = n - 16;
        std::uint64_t m = 0;

        for (;;) {
            m |= dots16(p + off) << (off + 64 - n);
            if (off <= stop) {
                break;
            }
            off = off >= stop + 16 ? off - 16 : stop;
        }

        for (m &= by_end_; m != 0; m &= m - 1) {
            std::size_t len = 63 - static_cast<std::size_t>(__builtin_ctzll(m));
            RuleId r = find_key<Fold>(p + n - len, len);
            if (r != no_rule) {
                return r;
            }
        }
        return no_rule;
    }
#endif

    return find_suffix_bytes<Fold>(p, n);
}

// find_suffix() for short hosts or long keys, the dots found a word at a
// time.  Out of line: its registers would cost find_suffix() a frame.
template <bool Fold>
__attribute__((noinline)) RuleId
HostIndex::find_suffix_bytes(const char *p, std::size_t n) const noexcept
{
    // A key is at most max_len_ bytes, so the search for dots starts that
    // far from the end (at the dot before the longest possible suffix)
    // however long the host is, and a suffix is hashed only if a key has
    // its length.
    std::size_t i = n > max_len_ + 1 ? n - max_len_ - 1 : 0;

    // one call of next_dot() (its constants in registers once)
    while ((i = next_dot(p, i, n)) < n) {
        std::size_t start = ++i;
        std::size_t len = n - start;
        if (may_hold(len)) {
            RuleId r = find_key<Fold>(p + start, len);
            if (r != no_rule) {
                return r;
            }
        }
    }
    return no_rule;
}

// The prefixes that end before a dot, longest first.  As find_suffix():
// out of line, 16 bytes at a time where it can.
template <bool Fold>
__attribute__((noinline)) RuleId
HostIndex::find_prefix(const char *p, std::size_t n) const noexcept
{
#if defined(__SSE2__)
    // Hosts of 16 bytes and more, keys shorter than 64: the dots of the
    // first bytes, as far as the longest key reaches, as bits of one word
    // (bit i: byte i, the prefix before it i bytes long), and with them
    // the key lengths: what is left are the prefixes worth hashing, the
    // longest first.  Loads stay within the host.
    if (n >= 16 && max_len_ < 64) {
        std::size_t limit = n < max_len_ + 1 ? n : max_len_ + 1;
        std::uint64_t m = 0;

        for (std::size_t off = 0; off < limit; off += 16) {
            std::size_t at = off + 16 <= n ? off : n - 16;
            m |= dots16(p + at) << at;
        }

        for (m &= len_bits_[0]; m != 0;) {
            std::size_t len = 63 - static_cast<std::size_t>(__builtin_clzll(m));
            RuleId r = find_key<Fold>(p, len);
            if (r != no_rule) {
                return r;
            }
            m &= ~(std::uint64_t{1} << len);
        }
        return no_rule;
    }
#endif

    return find_prefix_bytes<Fold>(p, n);
}

// find_prefix() for short hosts or long keys: searched from the dot after
// the longest possible prefix, the dots found a word at a time.
template <bool Fold>
__attribute__((noinline)) RuleId
HostIndex::find_prefix_bytes(const char *p, std::size_t n) const noexcept
{
    std::size_t end = n > max_len_ + 1 ? max_len_ + 1 : n;

    for (std::size_t i = prev_dot(p, end, n); i != npos;
         i = prev_dot(p, i, n)) {
        if (may_hold(i)) {
            RuleId r = find_key<Fold>(p, i);
            if (r != no_rule) {
                return r;
            }
        }
    }
    return no_rule;
}

RuleId HostIndex::find(std::string_view key, std::uint64_t hash) const noexcept
{
    return lookup<true>(key.data(), key.size(), hash);
}

std::size_t HostIndex::memory() const noexcept
{
    return slots_.capacity() * sizeof(Slot) + arena_.capacity();
}

/* Table */

Decision Table::find(std::string_view host) const noexcept
{
    if (!host.empty() && host.back() == '.') {
        host.remove_suffix(1);
    }

    if (ip_ != no_rule && classify_host(host) != HostKind::name) {
        return Decision{ip_, Decision::no_regex};
    }

    // The exact name wins over everything else but the ip rule.  A table
    // of wildcards, regexes or a default alone does not hash the host.
    if (!exact_.empty()) {
        RuleId r = exact_.lookup<true>(
            host.data(), host.size(),
            hash_bytes<true>(host.data(), host.size()));
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
    }

    return find_rest<true>(host);
}

// find_lower() in a table with an ip rule: the host is classified first.
// Out of line, so that the call does not cost find_lower() saved
// registers in the other tables.
__attribute__((noinline)) Decision
Table::find_lower_ip(std::string_view host, std::uint64_t hash) const noexcept
{
    if (classify_host(host) != HostKind::name) {
        return Decision{ip_, Decision::no_regex};
    }

    if (!exact_.empty()) {
        RuleId r = exact_.lookup<false>(host.data(), host.size(), hash);
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
    }

    if (!head_.empty()) {
        RuleId r = head_.find_suffix<false>(host.data(), host.size());
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
    }

    return find_rest<false>(host);
}

template <bool Fold>
__attribute__((noinline)) Decision
Table::find_rest(std::string_view host) const noexcept
{
    const char *p = host.data();
    std::size_t n = host.size();

    // Leading wildcards (find_lower() searched them already).
    if (Fold && !head_.empty()) {
        RuleId r = head_.find_suffix<Fold>(p, n);
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
    }

    // Trailing wildcards: the prefixes that end before a dot.
    if (!tail_.empty()) {
        RuleId r = tail_.find_prefix<Fold>(p, n);
        if (r != no_rule) {
            return Decision{r, Decision::no_regex};
        }
    }

    if (n != 0) {
        for (std::size_t i = 0; i < regexes_.size(); i++) {
            int rc = match_.match(regexes_[i], host);
            if (rc > 0) {
                return Decision{regex_rules_[i], static_cast<std::int32_t>(i)};
            }
            if (rc < 0) {
                // as map does: give up, use the default
                return Decision{default_, Decision::failed};
            }
        }
    }

    return Decision{default_, Decision::no_regex};
}

// What Table::find_lower(), inline in its callers, calls out of line.
template Decision Table::find_rest<false>(std::string_view) const noexcept;
template RuleId HostIndex::find_suffix<false>(const char *,
                                              std::size_t) const noexcept;

Table::Stats Table::stats() const noexcept
{
    return Stats{exact_.size(), head_.size(), tail_.size(), regexes_.size(),
                 exact_.memory() + head_.memory() + tail_.memory()};
}

/* TableBuilder */

TableBuilder::TableBuilder() = default;

void TableBuilder::add(std::string_view text, RuleId rule)
{
    Pattern p = parse_pattern(text);
    Table &t = table_;
    RuleId prev = no_rule;

    switch (p.kind) {
    case PatternKind::regex: {
        Regex re = [&]() {
            try {
                return Regex(p.key, p.caseless);
            } catch (const ConfigError &e) {
                throw ConfigError("invalid regex " + quoted(text) + ": " +
                                  e.what());
            }
        }();
        if (re.capture_count() > max_captures_) {
            max_captures_ = re.capture_count();
        }
        t.regexes_.push_back(std::move(re));
        t.regex_rules_.push_back(rule);
        return;
    }

    case PatternKind::exact:
        prev = t.exact_.insert(p.key, HostIndex::hash_name(p.key), rule);
        break;

    case PatternKind::dot:
        // ".example.com" is "example.com" and "*.example.com" at once, and
        // collides with either, as in nginx.  Check both before inserting
        // either, so that a refused pattern leaves the table unchanged.
        prev = t.head_.find(p.key, HostIndex::hash_name(p.key));
        if (prev != no_rule) {
            break;
        }
        prev = t.exact_.insert(p.key, HostIndex::hash_name(p.key), rule);
        if (prev != no_rule) {
            break;
        }
        [[fallthrough]];

    case PatternKind::star:
        prev = t.head_.insert(p.key, HostIndex::hash_name(p.key), rule);
        break;

    case PatternKind::tail:
        prev = t.tail_.insert(p.key, HostIndex::hash_name(p.key), rule);
        break;
    }

    if (prev != no_rule) {
        throw ConflictError("host " + quoted(text) +
                                " conflicts with an earlier rule", prev);
    }
}

void TableBuilder::set_ip(RuleId rule)
{
    if (table_.ip_ != no_rule) {
        throw ConflictError("duplicate \"ip\" rule", table_.ip_);
    }
    table_.ip_ = rule;
}

void TableBuilder::set_default(RuleId rule)
{
    if (table_.default_ != no_rule) {
        throw ConflictError("duplicate \"default\" rule", table_.default_);
    }
    table_.default_ = rule;
}

Table TableBuilder::build()
{
    table_.match_ = MatchData(max_captures_);
    Table t = std::move(table_);
    table_ = Table();
    max_captures_ = 0;
    return t;
}

}  // namespace dynroute
