#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <new>
#include <utility>

#include "regex.hpp"
#include "text.hpp"

namespace dynroute {

namespace {

pcre2_code *as_code(void *p) noexcept { return static_cast<pcre2_code *>(p); }

pcre2_match_data *as_data(void *p) noexcept
{
    return static_cast<pcre2_match_data *>(p);
}

// Move assignment through the move constructor: free what self holds, then
// take what o holds.  For the PCRE2 handles below, whose move constructors
// cannot throw.
template <typename T>
T &assign_moved(T &self, T &&o) noexcept
{
    if (&self != &o) {
        self.~T();
        ::new (static_cast<void *>(&self)) T(std::move(o));
    }
    return self;
}

}  // namespace

Regex::Regex(std::string_view pattern, bool caseless)
{
    int err = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = caseless ? PCRE2_CASELESS : 0;

    pcre2_code *code = pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
        &err, &offset, nullptr);

    if (code == nullptr) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(err, buf, sizeof(buf));
        throw ConfigError(std::string(reinterpret_cast<char *>(buf)) +
                          " at offset " + std::to_string(offset));
    }

    code_ = code;
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;

    uint32_t all = 0;
    pcre2_pattern_info(code, PCRE2_INFO_ALLOPTIONS, &all);
    jit_fast_ = jit_ && ((all & PCRE2_UTF) == 0 ||
                         (all & PCRE2_MATCH_INVALID_UTF) != 0);

    uint32_t n = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
    captures_ = n;

    uint32_t count = 0, entry = 0;
    PCRE2_SPTR table = nullptr;
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);

    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *p = table + i * entry;
        unsigned number = (static_cast<unsigned>(p[0]) << 8) | p[1];
        names_.push_back({std::string(reinterpret_cast<const char *>(p + 2)),
                          number});
    }
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

Regex::Regex(Regex &&o) noexcept
    : code_(o.code_), captures_(o.captures_), jit_(o.jit_),
      jit_fast_(o.jit_fast_), names_(std::move(o.names_))
{
    o.code_ = nullptr;
}

Regex &Regex::operator=(Regex &&o) noexcept
{
    return assign_moved(*this, std::move(o));
}

MatchData::MatchData(unsigned max_captures) : pairs_(max_captures + 1)
{
    data_ = pcre2_match_data_create(pairs_, nullptr);
    if (data_ == nullptr) {
        throw std::bad_alloc();
    }
}

MatchData::~MatchData() { pcre2_match_data_free(as_data(data_)); }

MatchData::MatchData(MatchData &&o) noexcept
    : data_(o.data_), pairs_(o.pairs_), last_rc_(o.last_rc_)
{
    o.data_ = nullptr;
    o.last_rc_ = 0;
}

MatchData &MatchData::operator=(MatchData &&o) noexcept
{
    return assign_moved(*this, std::move(o));
}

int MatchData::match(const Regex &re, std::string_view subject) noexcept
{
    last_rc_ = 0;

    // pcre2_jit_match() does not check its arguments: the subject must
    // point somewhere even when empty (an empty string_view may hold
    // nullptr), the start offset (0) is within it, no options are passed
    // and the match data is ours.  It saves pcre2_match()'s checks and
    // set-up, about a third of a short match.
    auto subj = reinterpret_cast<PCRE2_SPTR>(
        subject.data() != nullptr ? subject.data() : "");
    int rc = re.jit_fast_path()
                 ? pcre2_jit_match(as_code(re.code()), subj, subject.size(),
                                   0, 0, as_data(data_), nullptr)
                 : pcre2_match(as_code(re.code()), subj, subject.size(), 0,
                               0, as_data(data_), nullptr);

    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }

    // rc == 0 means the ovector was too small; it is sized for the largest
    // regex of the table, so that cannot happen, but stay safe.
    last_rc_ = rc == 0 ? pairs_ : static_cast<unsigned>(rc);
    return 1;
}

bool MatchData::group(unsigned n, std::size_t &begin,
                      std::size_t &end) const noexcept
{
    if (n >= last_rc_) {
        return false;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(as_data(data_));
    if (ov[2 * n] == PCRE2_UNSET) {
        return false;
    }
    begin = ov[2 * n];
    end = ov[2 * n + 1];
    return true;
}

}  // namespace dynroute
