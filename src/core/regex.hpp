// A PCRE2 regex compiled once at configuration time and JIT-compiled where
// the library supports it.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text.hpp"

namespace dynroute {

struct NamedGroup {
    std::string name;
    unsigned number;
};

class Regex {
public:
    // Throws ConfigError with PCRE2's reason and the offset of the error.
    Regex(std::string_view pattern, bool caseless);
    ~Regex();
    Regex(Regex &&) noexcept;
    Regex &operator=(Regex &&) noexcept;
    Regex(const Regex &) = delete;
    Regex &operator=(const Regex &) = delete;

    unsigned capture_count() const noexcept { return captures_; }
    const std::vector<NamedGroup> &named_groups() const noexcept
    {
        return names_;
    }
    bool jit() const noexcept { return jit_; }

    // Whether MatchData::match() calls pcre2_jit_match(), which skips
    // pcre2_match()'s checks of its arguments: JIT-compiled, and not in
    // UTF mode (which "(*UTF)" in the pattern turns on), where
    // pcre2_jit_match() would not check that the subject is valid UTF-8
    // unless the pattern was compiled with PCRE2_MATCH_INVALID_UTF.
    bool jit_fast_path() const noexcept { return jit_fast_; }

    // The code for pcre2_match(); opaque here so that users of this header
    // need not include pcre2.h.
    void *code() const noexcept { return code_; }

private:
    void *code_ = nullptr;
    unsigned captures_ = 0;
    bool jit_ = false;
    bool jit_fast_ = false;
    std::vector<NamedGroup> names_;
};

// Match data shared by the regexes of one table.  A worker is single
// threaded, so one block per table serves every request; the offsets of the
// last match stay readable until the next match on the same table.
class MatchData {
public:
    explicit MatchData(unsigned max_captures);
    ~MatchData();
    MatchData(MatchData &&) noexcept;
    MatchData &operator=(MatchData &&) noexcept;
    MatchData(const MatchData &) = delete;
    MatchData &operator=(const MatchData &) = delete;

    // 1 on a match, 0 on no match, negative on a PCRE2 error.  Never throws,
    // never allocates.
    int match(const Regex &re, std::string_view subject) noexcept;

    // Byte offsets of group n of the last match; false if the group did not
    // take part in the match.
    bool group(unsigned n, std::size_t &begin, std::size_t &end) const noexcept;

private:
    void *data_ = nullptr;
    unsigned pairs_ = 0;
    unsigned last_rc_ = 0;
};

}  // namespace dynroute
