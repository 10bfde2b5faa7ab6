#include "ramp.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "rollout.hpp"
#include "state_json.hpp"

namespace dynroute {

namespace {

const char *const ramp_usage =
    "write \"ramp VARIANT STEP... hold=TIME\", such as "
    "\"ramp canary 1% 5% 25% 50% 100% hold=30s\"";

// the rollout's ramp, or ApiError 404 / 409
const RolloutInfo &ramp_rollout(const Schema &schema, std::string_view name)
{
    const RolloutInfo *info = schema.rollout(name);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(name));
    }

    if (info->ramp.steps.empty()) {
        throw ApiError(409, "rollout " + dynroute::quoted(name)
                            + " has no ramp: add \"ramp VARIANT STEP... "
                              "hold=TIME;\" to its block");
    }

    return *info;
}

std::string at_step(const RolloutInfo &info, const RampState &rs)
{
    return format_weight(info.ramp.steps[rs.step]);
}

[[noreturn]] void not_now(const RolloutInfo &info, const RampState &rs,
                          const char *action, const char *instead)
{
    throw ApiError(409, "cannot " + std::string(action) + " the ramp of "
                        "rollout " + dynroute::quoted(info.name) + ": it is "
                        + std::string(ramp_phase_name(rs.phase)) + instead);
}

double seconds(std::uint64_t ms)
{
    return static_cast<double>(ms) / 1000.0;
}

}  // namespace

std::uint64_t parse_duration_ms(std::string_view text)
{
    static const struct {
        const char *unit;
        std::uint64_t ms;
    } units[] = {{"ms", 1},           {"s", 1000},
                 {"m", 60 * 1000},    {"h", 3600 * 1000},
                 {"d", 86400 * 1000}};

    std::string_view t = text;
    std::uint64_t total = 0;

    if (t.empty()) {
        throw ConfigError("empty time");
    }

    while (!t.empty()) {
        std::uint64_t n = 0;
        std::size_t i = 0;

        while (i < t.size() && is_digit(t[i])) {
            n = n * 10 + static_cast<std::uint64_t>(t[i] - '0');
            if (n > 100000000) {
                throw ConfigError("time " + dynroute::quoted(text)
                                  + " is too long");
            }
            i++;
        }

        if (i == 0) {
            throw ConfigError("invalid time " + dynroute::quoted(text));
        }

        t.remove_prefix(i);

        std::size_t j = 0;
        while (j < t.size() && !is_digit(t[j])) {
            j++;
        }

        std::string_view unit = t.substr(0, j);
        std::uint64_t scale = 0;

        if (unit.empty()) {
            scale = 1000;  // nginx: a bare number is seconds
        }

        for (const auto &u : units) {
            if (unit == u.unit) {
                scale = u.ms;
            }
        }

        if (scale == 0) {
            throw ConfigError("invalid time " + dynroute::quoted(text));
        }

        total += n * scale;
        t.remove_prefix(j);
    }

    return total;
}

std::string format_duration(std::uint64_t ms)
{
    if (ms < 1000) {
        return std::to_string(ms) + "ms";
    }

    std::string s = std::to_string(ms / 1000);

    if (ms % 1000) {
        char frac[8];
        std::snprintf(frac, sizeof(frac), ".%03u",
                      static_cast<unsigned>(ms % 1000));
        std::string f = frac;
        while (f.back() == '0') {
            f.pop_back();
        }
        s += f;
    }

    return s + "s";
}

RampInfo parse_ramp(const std::vector<std::string_view> &params)
{
    RampInfo r;
    bool hold = false;

    if (params.empty()) {
        throw ConfigError(std::string("a ramp needs a variant, its steps "
                                      "and hold=: ") + ramp_usage);
    }

    r.variant = std::string(params[0]);

    if (r.variant.find('=') != std::string::npos
        || r.variant.find('%') != std::string::npos)
    {
        throw ConfigError("invalid variant " + dynroute::quoted(params[0])
                          + " of the ramp: " + ramp_usage);
    }

    for (std::size_t i = 1; i < params.size(); i++) {
        std::string_view p = params[i];

        if (p.substr(0, 5) == "hold=") {
            if (hold) {
                throw ConfigError("duplicate \"hold=\" in the ramp");
            }

            try {
                r.hold_ms = parse_duration_ms(p.substr(5));
            } catch (const ConfigError &) {
                throw ConfigError("invalid \"" + std::string(p) + "\" of "
                                  "the ramp: write a time such as "
                                  "\"hold=30s\" or \"hold=5m\"");
            }

            if (r.hold_ms == 0) {
                throw ConfigError("invalid \"" + std::string(p) + "\" of "
                                  "the ramp: a step must be held for a "
                                  "time, such as \"hold=30s\"");
            }

            hold = true;
            continue;
        }

        if (p.find('=') != std::string_view::npos) {
            throw ConfigError("unknown parameter " + dynroute::quoted(p)
                              + " of the ramp: " + ramp_usage);
        }

        WeightSpec w;

        try {
            w = parse_weight(p);
        } catch (const ConfigError &) {
            throw ConfigError("invalid step " + dynroute::quoted(p)
                              + " of the ramp: a step is a percent from "
                                "0.01% to 100%, such as \"5%\"");
        }

        if (w.rest || w.value == 0 || w.value > weight_scale) {
            throw ConfigError("invalid step " + dynroute::quoted(p)
                              + " of the ramp: a step is a percent from "
                                "0.01% to 100%, such as \"5%\"");
        }

        if (!r.steps.empty() && w.value <= r.steps.back()) {
            throw ConfigError("step " + dynroute::quoted(p)
                              + " of the ramp does not go up from "
                              + dynroute::quoted(format_weight(r.steps.back()))
                              + ": write the steps in increasing order, "
                                "each larger than the one before");
        }

        r.steps.push_back(w.value);
    }

    if (r.steps.empty()) {
        throw ConfigError("the ramp has no step: " + std::string(ramp_usage));
    }

    if (!hold) {
        throw ConfigError("the ramp has no \"hold=\": say how long each "
                          "step is held, such as \"hold=30s\"");
    }

    return r;
}

std::vector<std::uint32_t> ramp_weights(const std::vector<std::uint32_t> &now,
                                        std::size_t primary,
                                        std::size_t variant,
                                        std::uint32_t weight)
{
    std::vector<std::uint32_t> w = now;
    std::uint32_t others = 0;

    w[variant] = weight;

    for (std::size_t i = 0; i < w.size(); i++) {
        if (i != variant && i != primary) {
            others += w[i];
        }
    }

    /* the other variants give what the step needs beyond the primary's */

    for (std::size_t i = w.size(); others + weight > weight_scale && i-- > 0;)
    {
        if (i == variant || i == primary) {
            continue;
        }

        std::uint32_t over = others + weight - weight_scale;
        std::uint32_t give = std::min(over, w[i]);
        w[i] -= give;
        others -= give;
    }

    if (variant != primary) {
        w[primary] = weight_scale - others - weight;
    }

    return w;
}

RampMove ramp_start(RampState &rs, const RolloutInfo &info,
                    const Effective &e, std::uint64_t now_ms)
{
    if (rs.phase == RampPhase::running || rs.phase == RampPhase::paused) {
        not_now(info, rs, "start", ": resume, pause or abort it");
    }

    std::size_t v = info.find(info.ramp.variant);

    if (v == e.primary) {
        throw ApiError(409, "cannot start the ramp of rollout "
                            + dynroute::quoted(info.name) + ": its variant "
                            + dynroute::quoted(info.ramp.variant) + " is the "
                              "primary now; PATCH another \"primary\" first");
    }

    rs.phase = RampPhase::running;
    rs.step = 0;
    rs.since_ms = now_ms;
    rs.held_ms = 0;
    rs.why = "started by an operator at " + at_step(info, rs);

    return {ramp_weights(e.weights, e.primary, v, info.ramp.steps[0]), rs.why};
}

RampMove ramp_pause(RampState &rs, const RolloutInfo &info,
                    std::uint64_t now_ms)
{
    if (rs.phase != RampPhase::running) {
        not_now(info, rs, "pause", rs.phase == RampPhase::paused
                ? " already" : ", not running");
    }

    rs.held_ms = ramp_held(rs, now_ms);
    rs.since_ms = now_ms;
    rs.phase = RampPhase::paused;
    rs.why = "paused by an operator at " + at_step(info, rs) + " after "
             + format_duration(rs.held_ms);

    return {{}, rs.why};
}

RampMove ramp_resume(RampState &rs, const RolloutInfo &info,
                     std::uint64_t now_ms)
{
    if (rs.phase != RampPhase::paused) {
        not_now(info, rs, "resume", ", not paused");
    }

    rs.phase = RampPhase::running;
    rs.since_ms = now_ms;
    rs.why = "resumed by an operator at " + at_step(info, rs);

    return {{}, rs.why};
}

RampMove ramp_abort(RampState &rs, const RolloutInfo &info,
                    const Effective &e)
{
    if (rs.phase != RampPhase::running && rs.phase != RampPhase::paused) {
        not_now(info, rs, "abort", ", neither running nor paused");
    }

    rs.phase = RampPhase::aborted;
    rs.why = "aborted by an operator at " + at_step(info, rs);

    std::size_t v = info.find(info.ramp.variant);

    return {ramp_weights(e.weights, e.primary, v, 0), rs.why};
}

std::uint64_t ramp_held(const RampState &rs, std::uint64_t now_ms) noexcept
{
    if (rs.phase != RampPhase::running) {
        return rs.held_ms;
    }

    return rs.held_ms + (now_ms > rs.since_ms ? now_ms - rs.since_ms : 0);
}

bool ramp_due(const RampState &rs, const RampInfo &ramp,
              std::uint64_t now_ms) noexcept
{
    return rs.phase == RampPhase::running && rs.step < ramp.steps.size()
           && ramp_held(rs, now_ms) >= ramp.hold_ms;
}

bool ramp_next(RampState &rs, const RolloutInfo &info, const Effective &e,
               std::uint64_t now_ms, std::string_view figures,
               RampMove &move)
{
    if (!ramp_due(rs, info.ramp, now_ms)) {
        return false;
    }

    std::string held = "held " + format_duration(ramp_held(rs, now_ms))
                       + " at " + at_step(info, rs);

    if (!figures.empty()) {
        held += ", " + std::string(figures);
    }

    move.weights.clear();

    if (rs.step + 1 >= info.ramp.steps.size()) {
        rs.phase = RampPhase::done;
        rs.why = "done: " + held;

    } else {
        std::size_t v = info.find(info.ramp.variant);

        rs.step++;
        rs.why = held;
        move.weights = ramp_weights(e.weights, e.primary, v,
                                    info.ramp.steps[rs.step]);
    }

    rs.since_ms = now_ms;
    rs.held_ms = 0;
    move.why = rs.why;

    return true;
}

namespace {

// the move's weights into the override (none when they are the
// configuration's)
void write_weights(RolloutOverride &o, const RolloutInfo &info,
                   const RampMove &m)
{
    if (m.weights.empty()) {
        return;
    }

    o.weights.clear();

    if (m.weights == info.weights) {
        return;
    }

    for (std::size_t i = 0; i < info.variants.size(); i++) {
        o.weights[info.variants[i]] = m.weights[i];
    }
}

}  // namespace

void ramp_action(State &state, const Schema &schema, std::string_view rollout,
                 std::string_view body, std::uint64_t now_ms)
{
    const RolloutInfo *info = schema.rollout(rollout);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(rollout));
    }

    input j = parse_object(body, "the request body");
    std::string action;

    for (const auto &[key, v] : j.items()) {
        if (key != "action") {
            throw ApiError(400, "unknown field " + dynroute::quoted(key)
                                + ": send {\"action\": \"start\"}, \"pause\", "
                                  "\"resume\" or \"abort\"");
        }
        action = string_field(v, "\"action\"");
    }

    if (action != "start" && action != "pause" && action != "resume"
        && action != "abort")
    {
        throw ApiError(400, (j.contains("action")
                             ? "unknown action " + dynroute::quoted(action)
                             : std::string("no \"action\""))
                            + ": send {\"action\": \"start\"}, \"pause\", "
                              "\"resume\" or \"abort\"");
    }

    const RolloutInfo &ri = ramp_rollout(schema, rollout);
    RolloutOverride o;

    if (auto it = state.rollouts.find(ri.name); it != state.rollouts.end()) {
        o = it->second;
    }

    Effective e = effective(ri, &o);
    RampMove m;

    if (action == "start") {
        if (o.trip.tripped()) {
            throw ApiError(409, "cannot start the ramp of rollout "
                                + dynroute::quoted(ri.name) + ": the guard "
                                  "has tripped on variant "
                                + dynroute::quoted(o.trip.variant)
                                + "; clear the trip with a PATCH of the "
                                  "rollout first");
        }
        m = ramp_start(o.ramp, ri, e, now_ms);

    } else if (action == "pause") {
        m = ramp_pause(o.ramp, ri, now_ms);

    } else if (action == "resume") {
        m = ramp_resume(o.ramp, ri, now_ms);

    } else {
        m = ramp_abort(o.ramp, ri, e);
    }

    write_weights(o, ri, m);

    if (o.empty()) {
        state.rollouts.erase(ri.name);
    } else {
        state.rollouts[ri.name] = std::move(o);
    }
}

bool ramp_is_due(const State &state, const Schema &schema,
                 std::string_view rollout, std::uint64_t now_ms) noexcept
{
    const RolloutInfo *info = schema.rollout(rollout);

    if (info == nullptr || info->ramp.steps.empty()) {
        return false;
    }

    auto it = state.rollouts.find(info->name);

    return it != state.rollouts.end() && !it->second.trip.tripped()
           && ramp_due(it->second.ramp, info->ramp, now_ms);
}

bool ramp_advance(State &state, const Schema &schema,
                  std::string_view rollout, std::uint64_t now_ms,
                  std::string_view figures, RampMove *move)
{
    if (!ramp_is_due(state, schema, rollout, now_ms)) {
        return false;
    }

    const RolloutInfo &ri = *schema.rollout(rollout);
    RolloutOverride &o = state.rollouts.find(ri.name)->second;
    RolloutOverride next = o;
    RampMove m;

    if (!ramp_next(next.ramp, ri, effective(ri, &o), now_ms, figures, m)) {
        return false;
    }

    write_weights(next, ri, m);
    o = std::move(next);

    if (move) {
        *move = std::move(m);
    }

    return true;
}

std::string render_rollout_ramp(const State &state, const Schema &schema,
                                std::string_view rollout,
                                std::uint64_t now_ms)
{
    std::string text = render_rollout(state, schema, rollout);
    const RolloutInfo &info = *schema.rollout(rollout);

    if (info.ramp.steps.empty()) {
        return text;
    }

    json j = json::parse(text);
    RampState rs;

    if (auto it = state.rollouts.find(info.name); it != state.rollouts.end())
    {
        rs = it->second.ramp;
    }

    json steps = json::array();
    for (auto s : info.ramp.steps) {
        if (s % 100 == 0) {
            steps.push_back(s / 100);
        } else {
            steps.push_back(static_cast<double>(s) / 100.0);
        }
    }

    json r = j.contains("ramp") ? j["ramp"] : json::object();
    r["variant"] = info.ramp.variant;
    r["steps"] = std::move(steps);
    r["hold"] = seconds(info.ramp.hold_ms);
    r["state"] = std::string(ramp_phase_name(rs.phase));

    if (rs.phase != RampPhase::ready) {
        r["step"] = rs.step;
        r["held"] = seconds(ramp_held(rs, now_ms));

        if (!r.contains("since")) {
            r["since"] = seconds(rs.since_ms);
        }
        if (!r.contains("why")) {
            r["why"] = rs.why;
        }
    }

    if (rs.phase == RampPhase::running) {
        std::uint64_t held = ramp_held(rs, now_ms);
        r["next_in"] = held >= info.ramp.hold_ms
                       ? 0.0 : seconds(info.ramp.hold_ms - held);
    }

    j["ramp"] = std::move(r);

    return dynroute::text(j);
}

}  // namespace dynroute
