// The compiled route table: host patterns with nginx's own semantics.
//
// Precedence, exactly as in server_name and map { hostnames; }:
//   the ip rule (when the host is an IP literal), then the exact name,
//   the longest leading wildcard ("*.example.com", ".example.com"),
//   the longest trailing wildcard ("www.example.*"),
//   the first matching regex in configuration order, then the default.
//
// Tables are built once at configuration time (building may throw
// ConfigError) and are immutable afterwards; find() never throws and never
// allocates.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
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

// Open-addressing hash of lowercase names, case-insensitive lookups.
class HostIndex {
public:
    // Which of the hash functions below the keys are hashed with.
    enum class Hash : unsigned char { name, reverse, forward };

    explicit HostIndex(Hash kind) noexcept : kind_(kind) {}

    // Returns no_rule when inserted, or the rule already holding the key.
    RuleId insert(std::string_view key, std::uint64_t hash, RuleId rule);
    RuleId find(std::string_view key, std::uint64_t hash) const noexcept;

    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    std::size_t memory() const noexcept;

    // Hash functions shared by insert and find.  `name` hashes the whole
    // name eight bytes at a time, for exact names.  `reverse` hashes label
    // by label from the last to the first, so that one right-to-left pass
    // over a host yields the hash of every suffix that starts after a dot,
    // for leading wildcards.  `forward` is byte-wise FNV-1a from `basis`,
    // for the prefixes of trailing wildcards.
    static std::uint64_t hash_name(std::string_view s) noexcept;
    static std::uint64_t hash_reverse(std::string_view s) noexcept;
    static std::uint64_t hash_forward(std::string_view s) noexcept;
    static constexpr std::uint64_t basis = 0xcbf29ce484222325ULL;

private:
    struct Slot {
        std::uint32_t tag;
        std::uint32_t len;
        std::uint32_t off;
        RuleId rule;
    };

    void grow();

    // find() itself, defined inline in table.cpp so that Table::find
    // inlines it even in a -fPIC module, where a call to an exported
    // function would stay a call.
    RuleId lookup(std::string_view key, std::uint64_t hash) const noexcept;

    std::vector<Slot> slots_;
    std::string arena_;
    std::size_t count_ = 0;
    std::size_t mask_ = 0;
    Hash kind_ = Hash::reverse;

    friend class Table;
    friend class TableBuilder;
};

struct Decision {
    RuleId rule = no_rule;
    int regex = -1;       // index of the regex that matched, or -1
    bool error = false;   // a regex failed to run; the default was used
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

    HostIndex exact_{HostIndex::Hash::name};
    HostIndex head_{HostIndex::Hash::reverse};  // keys of "*.x" and ".x"
                                                // (match subdomains of x)
    HostIndex tail_{HostIndex::Hash::forward};  // keys of "x.*"
    unsigned head_depth_ = 0;  // most labels in a head key
    unsigned tail_depth_ = 0;
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
