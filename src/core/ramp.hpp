// Ramps: a rollout's variant raised step by step (1% 5% 25% 50% 100%),
// each step held for a time and passed by the guard before the next
// (docs/design/canary.md, part 3).
//
// The "ramp" line of a dynroute_rollout block (parse_ramp), the state
// machine over the runtime state's RampState (start, pause, resume,
// abort, advance: each says the weights to write and why), and the API's
// functions over the State (ramp_action, ramp_advance).  What a ramp is
// configured as is the schema's RampInfo (state.hpp).  Pure C++17, no
// nginx headers; everything here may allocate and throw.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "state.hpp"
#include "text.hpp"

namespace dynroute {

// "30s", "500ms", "1m30s", "2h" as nginx reads a time (no unit: seconds);
// in milliseconds.  Throws ConfigError.
std::uint64_t parse_duration_ms(std::string_view text);

// "30s", "1.5s", "250ms": a duration for messages.
std::string format_duration(std::uint64_t ms);

// The parameters of "ramp VARIANT STEP... hold=TIME": the variant, steps
// strictly increasing from 0.01% to 100% (one at least), hold= given once
// (1ms at least).  Throws ConfigError saying what to write instead.  That
// the variant is one of the rollout's and not its primary, and that hold
// is at least the guard's window, are the caller's checks.
RampInfo parse_ramp(const std::vector<std::string_view> &params);

// What a move does: the weights to write, by variant in the schema's
// order (empty: the weights stay), and why, for the state and the log.
struct RampMove {
    std::vector<std::uint32_t> weights;
    std::string why;
};

// The weights with `variant` at `weight` and the primary at the rest; the
// other variants keep theirs, unless the step needs more than the primary
// has: then they give it, the last first.
std::vector<std::uint32_t> ramp_weights(const std::vector<std::uint32_t> &now,
                                        std::size_t primary,
                                        std::size_t variant,
                                        std::uint32_t weight);

// The transitions.  Each changes `rs` and returns the move, or throws
// ApiError 409 when the action does not apply in rs's phase (the state is
// then untouched).  `e` is the rollout's live values.
RampMove ramp_start(RampState &rs, const RolloutInfo &info,
                    const Effective &e, std::uint64_t now_ms);
RampMove ramp_pause(RampState &rs, const RolloutInfo &info,
                    std::uint64_t now_ms);
RampMove ramp_resume(RampState &rs, const RolloutInfo &info,
                     std::uint64_t now_ms);
RampMove ramp_abort(RampState &rs, const RolloutInfo &info,
                    const Effective &e);

// How long the step in force has been held.
std::uint64_t ramp_held(const RampState &rs, std::uint64_t now_ms) noexcept;

// Whether a running ramp has held its step `hold` (the guard's word is
// the caller's).
bool ramp_due(const RampState &rs, const RampInfo &ramp,
              std::uint64_t now_ms) noexcept;

// A running ramp held long enough, the guard passing: the next step (or
// done after the last).  `figures` is what the guard saw ("0.0% 5xx of
// 240 responses"), for the why.  Returns false (rs untouched) when the
// ramp is not due.
bool ramp_next(RampState &rs, const RolloutInfo &info, const Effective &e,
               std::uint64_t now_ms, std::string_view figures,
               RampMove &move);

// The API: POST {prefix}rollouts/NAME/ramp with {"action": "start" |
// "pause" | "resume" | "abort"}.  ApiError 400 a bad body or action, 404
// no such rollout, 409 a rollout without a ramp, an action that does not
// apply now, or a start while the guard has tripped.
void ramp_action(State &state, const Schema &schema, std::string_view rollout,
                 std::string_view body, std::uint64_t now_ms);

// The guard's timer: advances the rollout's ramp when it is due; false
// (and the state untouched) when it is not.  *move, when given, gets the
// move made.
bool ramp_advance(State &state, const Schema &schema,
                  std::string_view rollout, std::uint64_t now_ms,
                  std::string_view figures, RampMove *move = nullptr);

// Whether ramp_advance would move (nothing changed).
bool ramp_is_due(const State &state, const Schema &schema,
                 std::string_view rollout, std::uint64_t now_ms) noexcept;

// render_rollout's text with "ramp" completed from the schema: "variant",
// "steps" (percent), "step", "state", "hold" (seconds), "since", "next_in"
// (seconds until the step may move, while running), "why".  Throws
// ApiError 404.
std::string render_rollout_ramp(const State &state, const Schema &schema,
                                std::string_view rollout,
                                std::uint64_t now_ms);

}  // namespace dynroute
