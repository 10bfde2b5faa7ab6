// The guard of a rollout (docs/design/canary.md, part 2): its parameters,
// the ring of samples of a variant's counters, the quantile read from the
// latency buckets, and the judgement of a variant over the window.
//
// The samples are the cumulative counters of the zone (metrics.hpp's
// VariantSlot words); a window's counts are the difference between the
// newest sample and the one `window` before it.  Parsing allocates and
// throws ConfigError; sampling and judging do neither.  Pure C++17, no
// nginx headers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "metrics.hpp"
#include "state.hpp"
#include "text.hpp"

namespace dynroute::guard {

// errors, latency (state.hpp): what a trip is for
using dynroute::GuardReason;

// "guard errors=5% latency=p99:500ms window=10s interval=250ms
//  min_requests=20 baseline=primary"
struct Params {
    bool errors = false;           // errors= given
    double errors_pct = 0;         // 0.01 .. 100
    bool latency = false;          // latency= given
    double quantile = 0.99;        // 0.5 .. 0.999
    std::uint32_t latency_ms = 0;  // 5 .. 10000
    std::uint32_t window_ms = 30000;
    std::uint32_t interval_ms = 250;
    std::uint32_t min_requests = 20;
    bool baseline_primary = true;
    char quantile_name[8] = "p99";  // as written: "p99", "p99.9"
};

inline constexpr std::uint32_t min_window_ms = 1000;
inline constexpr std::uint32_t min_interval_ms = 100;
inline constexpr std::uint32_t max_window_ms = 3600 * 1000;
inline constexpr std::uint32_t min_latency_ms = 5;
inline constexpr std::uint32_t max_latency_ms = 10000;
inline constexpr std::uint32_t max_min_requests = 1000000;

// One parameter of the line, "name=value".  Throws ConfigError with a
// message that says what to write instead.
void parse_param(Params &p, std::string_view param);

// Every parameter, then the checks between them (one of errors= and
// latency=; window at least 4 x interval).  Throws ConfigError.
Params parse(const std::vector<std::string_view> &params);

// "5ms", "250ms", "10s", "1m": milliseconds, or -1 if it is not a time.
std::int64_t parse_ms(std::string_view v) noexcept;

// What the window needs of a variant: its responses, those with a 5xx,
// and the latency buckets (not cumulative, metrics::bucket_ms).
struct Counts {
    std::uint64_t responses = 0;
    std::uint64_t errors = 0;
    std::array<std::uint64_t, metrics::buckets> buckets{};
};

// The counts of a variant's VariantSlot words (variant_width of them).
Counts counts_of(const std::uint64_t *words) noexcept;

// a - b, word by word, 0 where b is ahead (a zone made again)
Counts minus(const Counts &a, const Counts &b) noexcept;

// The quantile q (0..1) of the buckets, as Prometheus' histogram_quantile
// reads a histogram: linear inside the bucket the rank falls in (from 0 in
// the first), the last finite bound for the one past it; 0 without a
// response.
double quantile_ms(const std::array<std::uint64_t, metrics::buckets> &b,
                   double q) noexcept;

// The samples of one variant, every interval: a ring of a fixed size,
// allocated once (reset), never on a sample.
class Ring {
public:
    // room for window / interval samples and two more; throws bad_alloc
    void reset(const Params &p);
    void clear() noexcept { count_ = 0; }

    void push(std::uint64_t at_ms, const Counts &c) noexcept;

    // The window: the newest sample minus the oldest kept that is no more
    // than window_ms older.  False with fewer than two samples.
    bool window(std::uint32_t window_ms, Counts &delta,
                std::uint64_t *span_ms) const noexcept;

    std::size_t size() const noexcept { return count_; }

private:
    struct Sample {
        std::uint64_t at_ms;
        Counts counts;
    };
    std::vector<Sample> samples_;
    std::size_t head_ = 0;   // the next to write
    std::size_t count_ = 0;
};

enum class Outcome : std::uint8_t { not_judged, waiting, pass, fail };

// "not_judged", "waiting", "pass", "fail"
const char *outcome_name(Outcome o) noexcept;

// The last judgement of a variant.  detail is NUL-terminated: for a fail,
// "5xx 61.2% of 49 responses in 10s; primary 0.0% of 431".
struct Verdict {
    Outcome outcome = Outcome::not_judged;
    GuardReason reason = GuardReason::errors;
    std::uint64_t responses = 0, errors = 0;
    double quantile_ms = 0;
    char detail[160] = {0};
    // the window it was judged over, and the primary's figures in it
    std::uint64_t span_ms = 0;
    std::uint64_t primary_responses = 0, primary_errors = 0;
    double primary_quantile_ms = 0;
};

// The judgement of a variant that is not the primary and has a weight
// above 0, over its window's counts; primary is the primary's counts over
// the same window (ignored with baseline=none).  Never throws or
// allocates.
Verdict judge(const Params &p, const Counts &variant, const Counts &primary,
              std::uint64_t span_ms) noexcept;

// What worker 0 published of a variant's last judgement (the GuardSlot
// words of the zone), for the API.
struct Published {
    std::string variant;
    bool primary = false;
    std::array<std::uint64_t, metrics::guard_width> words{};
};

// A rollout's answer (render_rollout's JSON object) with its guard:
// "guard": {"state": "ok"|"tripped"|"waiting", "tripped" (kept),
// "errors", "latency", "window_s", "interval_ms", "min_requests",
// "baseline", "window": {variant: {"state", "responses", "errors",
// "pNN_ms", "span_s"}}} for the variants judged.  Throws.
std::string with_guard(const std::string &rendered, const Params &p,
                       const std::vector<Published> &variants);

}  // namespace dynroute::guard
