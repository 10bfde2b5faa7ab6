// Active health checks (docs/design/canary.md, part 1): the parameters of
// dynroute_health_check, the judgement of a probe's response fed to it as
// it arrives, a server's health as one word of its cell, the step a probe's
// outcome makes, and slow start's share of a server's weight.
//
// The health word (metrics::s_health) packs what one atomic store must
// change at once: the state (bits 0-1), whether the last probe passed
// (bit 2), the consecutive passes or fails of that kind (bits 8-15, at most
// 255) and the time of the last probe, ms since the epoch (bits 16-63).
//
// Pure C++17, no nginx headers.  parse() throws ConfigError; the rest
// neither throws nor allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dynroute::health {

struct StatusRange {
    unsigned lo = 200;
    unsigned hi = 399;
};

struct Params {
    std::uint64_t interval_ms = 5000;
    std::uint64_t timeout_ms = 5000;  // at most interval_ms
    unsigned fails = 1;                // 1..100
    unsigned passes = 1;               // 1..100
    std::string uri = "/";
    std::vector<StatusRange> status{StatusRange{}};
    std::string body;                  // empty: not looked for
    unsigned port = 0;                 // 0: the server's
    std::uint64_t slow_start_ms = 0;   // 0: off

    bool status_ok(unsigned code) const noexcept;
};

// The directive's parameters (each "name=value"), checked; a bad one
// throws ConfigError naming it and what to write instead.
Params parse(const std::vector<std::string_view> &args);

// "500ms", "1s", "2m", "1h", "30" (seconds): ms; false if it is none.
bool parse_time(std::string_view v, std::uint64_t &ms) noexcept;

// How much of a response the judge reads at most.
inline constexpr std::size_t line_max = 1024;     // the status line
inline constexpr std::size_t headers_max = 16384; // the header block
inline constexpr std::size_t body_max = 4096;     // where body= is looked for

// A probe's response, judged as its bytes arrive: feed() each read, end()
// at the peer's close.  Stops at the first verdict.
class Judge {
public:
    enum class Verdict : std::uint8_t { more, pass, fail };

    explicit Judge(const Params &p) noexcept : p_(&p) {}

    Verdict feed(const char *data, std::size_t n) noexcept;
    Verdict end() noexcept;  // the peer closed
    Verdict verdict() const noexcept { return verdict_; }
    unsigned status() const noexcept { return status_; }
    // why it failed, for the log ("" while more or pass)
    const char *why() const noexcept { return why_; }

private:
    Verdict fail(const char *why) noexcept;
    Verdict status_line() noexcept;

    enum class Part : std::uint8_t { line, headers, body };

    const Params *p_;
    Part part_ = Part::line;
    Verdict verdict_ = Verdict::more;
    const char *why_ = "";
    unsigned status_ = 0;
    std::size_t line_len_ = 0;
    std::size_t headers_len_ = 0;
    unsigned blank_ = 0;       // of "\r\n\r\n" / "\n\n" seen at the end
    std::size_t body_len_ = 0;
    char line_[line_max];
    char body_[body_max];
};

// ---- a server's health word ----

enum class State : std::uint8_t { unknown = 0, up = 1, down = 2 };

struct Health {
    State state = State::unknown;
    bool last_passed = false;
    unsigned count = 0;            // consecutive, of last_passed's kind
    std::uint64_t last_probe_ms = 0;
};

inline constexpr std::uint64_t pack(const Health &h) noexcept {
    return static_cast<std::uint64_t>(h.state)
           | (h.last_passed ? 4u : 0u)
           | (static_cast<std::uint64_t>(h.count > 255 ? 255 : h.count) << 8)
           | (h.last_probe_ms << 16);
}

inline constexpr Health unpack(std::uint64_t w) noexcept {
    Health h;
    unsigned s = static_cast<unsigned>(w & 3);
    h.state = s <= 2 ? static_cast<State>(s) : State::unknown;
    h.last_passed = (w & 4) != 0;
    h.count = static_cast<unsigned>((w >> 8) & 0xff);
    h.last_probe_ms = w >> 16;
    return h;
}

// whether the pick skips a server of this word: down
inline constexpr bool down(std::uint64_t w) noexcept {
    return (w & 3) == static_cast<std::uint64_t>(State::down);
}

// "unknown", "up", "down"
const char *state_name(State s) noexcept;

struct Step {
    Health next;
    bool changed = false;  // its state
    bool came_up = false;  // down -> up: slow start begins
};

// A probe's outcome at now_ms: passes good ones in a row make a server
// that is not up up, fails failed ones in a row make one that is not down
// down.
Step step(const Health &h, bool passed, unsigned fails, unsigned passes,
          std::uint64_t now_ms) noexcept;

// ---- slow start ----

// With slow start, the pick adds weight * scale to a server's current
// weight, and a server that came up less than slow_start_ms ago a share of
// it that grows linearly with the time since, at least 1: a server of
// weight 1 ramps too.  Scaling every weight alike leaves the smooth
// weighted round robin's picks unchanged.
inline constexpr std::intptr_t scale = 100;

inline constexpr std::intptr_t ramp(std::intptr_t weight,
                                    std::uint64_t up_since_ms,
                                    std::uint64_t now_ms,
                                    std::uint64_t slow_start_ms) noexcept {
    std::intptr_t full = weight * scale;
    if (up_since_ms == 0 || now_ms < up_since_ms
        || now_ms - up_since_ms >= slow_start_ms || full <= 0) {
        return full;
    }
    std::intptr_t w = static_cast<std::intptr_t>(
        static_cast<std::uint64_t>(full) * (now_ms - up_since_ms)
        / slow_start_ms);
    return w < 1 ? 1 : w;
}

}  // namespace dynroute::health
