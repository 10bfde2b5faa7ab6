// The guard of a rollout: parameters, samples, quantile, judgement.
#include "guard.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

namespace dynroute::guard {

namespace {

// "12", "12.5": a non-negative decimal, or -1
double parse_decimal(std::string_view v) noexcept
{
    double r = 0, scale = 0;
    bool digits = false;

    for (char c : v) {
        if (c == '.' && scale == 0) {
            scale = 1;
            continue;
        }
        if (!is_digit(c) || v.size() > 12) {
            return -1;
        }
        digits = true;
        if (scale) {
            scale /= 10;
            r += (c - '0') * scale;
        } else {
            r = r * 10 + (c - '0');
        }
    }

    return (digits && v.back() != '.') ? r : -1;
}

std::string time_text(std::uint64_t ms)
{
    return (ms % 1000 == 0) ? std::to_string(ms / 1000) + "s"
                            : std::to_string(ms) + "ms";
}

[[noreturn]] void bad(std::string_view param, const char *expected)
{
    throw ConfigError("invalid guard parameter " + quoted(param)
                      + ": expected " + expected);
}

}  // namespace


std::int64_t parse_ms(std::string_view v) noexcept
{
    std::int64_t unit;
    std::size_t n = v.size();

    if (n > 2 && v.substr(n - 2) == "ms") {
        unit = 1;
        n -= 2;
    } else if (n > 1 && v[n - 1] == 's') {
        unit = 1000;
        n -= 1;
    } else if (n > 1 && v[n - 1] == 'm') {
        unit = 60000;
        n -= 1;
    } else {
        return -1;
    }

    if (n == 0 || n > 9) {
        return -1;
    }

    std::int64_t r = 0;

    for (std::size_t i = 0; i < n; i++) {
        if (!is_digit(v[i])) {
            return -1;
        }
        r = r * 10 + (v[i] - '0');
    }

    return r * unit;
}


void parse_param(Params &p, std::string_view param)
{
    auto eq = param.find('=');

    if (eq == std::string_view::npos || eq == 0) {
        throw ConfigError("invalid guard parameter " + quoted(param)
                          + ": expected errors=PERCENT, latency=pNN:TIME, "
                            "window=TIME, interval=TIME, min_requests=N or "
                            "baseline=primary|none");
    }

    std::string_view name = param.substr(0, eq);
    std::string_view v = param.substr(eq + 1);

    if (name == "errors") {
        if (p.errors) {
            throw ConfigError("duplicate guard parameter " + quoted(param));
        }
        double pct = (!v.empty() && v.back() == '%')
                         ? parse_decimal(v.substr(0, v.size() - 1)) : -1;
        if (pct < 0.01 || pct > 100) {
            bad(param, "errors=PERCENT, the share of 5xx allowed, from "
                       "0.01% to 100%, such as errors=5%");
        }
        p.errors = true;
        p.errors_pct = pct;

    } else if (name == "latency") {
        if (p.latency) {
            throw ConfigError("duplicate guard parameter " + quoted(param));
        }
        const char *expected =
            "latency=pNN:TIME, NN from 50 to 99.9 and TIME from 5ms to 10s, "
            "such as latency=p99:500ms";
        auto colon = v.find(':');
        if (colon == std::string_view::npos || colon < 2 || v[0] != 'p'
            || colon > 6)
        {
            bad(param, expected);
        }
        double nn = parse_decimal(v.substr(1, colon - 1));
        std::int64_t ms = parse_ms(v.substr(colon + 1));
        auto frac = v.substr(1, colon - 1).find('.');
        if (nn < 50 || nn > 99.9
            || (frac != std::string_view::npos && colon - 1 - frac > 2)
            || ms < min_latency_ms || ms > max_latency_ms)
        {
            bad(param, expected);
        }
        p.latency = true;
        p.quantile = nn / 100;
        p.latency_ms = static_cast<std::uint32_t>(ms);
        std::memcpy(p.quantile_name, v.data(), colon);
        p.quantile_name[colon] = '\0';

    } else if (name == "window") {
        std::int64_t ms = parse_ms(v);
        if (ms < min_window_ms || ms > max_window_ms) {
            bad(param, "window=TIME from 1s to 1h, such as window=30s");
        }
        p.window_ms = static_cast<std::uint32_t>(ms);

    } else if (name == "interval") {
        std::int64_t ms = parse_ms(v);
        if (ms < min_interval_ms || ms > max_window_ms / 4) {
            bad(param, "interval=TIME of 100ms at least, such as "
                       "interval=250ms");
        }
        p.interval_ms = static_cast<std::uint32_t>(ms);

    } else if (name == "min_requests") {
        double n = parse_decimal(v);
        if (n < 1 || n > max_min_requests || v.find('.') != v.npos) {
            bad(param, "min_requests=N from 1 to 1000000, such as "
                       "min_requests=20");
        }
        p.min_requests = static_cast<std::uint32_t>(n);

    } else if (name == "baseline") {
        if (v == "primary") {
            p.baseline_primary = true;
        } else if (v == "none") {
            p.baseline_primary = false;
        } else {
            bad(param, "baseline=primary or baseline=none");
        }

    } else {
        throw ConfigError("unknown guard parameter " + quoted(param)
                          + ": expected errors=PERCENT, latency=pNN:TIME, "
                            "window=TIME, interval=TIME, min_requests=N or "
                            "baseline=primary|none");
    }
}


Params parse(const std::vector<std::string_view> &params)
{
    Params p;

    for (auto param : params) {
        parse_param(p, param);
    }

    if (!p.errors && !p.latency) {
        throw ConfigError("guard without errors= or latency=: add one at "
                          "least, such as errors=5% or latency=p99:500ms");
    }

    if (p.window_ms < 4 * static_cast<std::uint64_t>(p.interval_ms)) {
        throw ConfigError("guard window=" + time_text(p.window_ms)
                          + " is shorter than 4 x interval="
                          + time_text(p.interval_ms) + ": make window="
                          + time_text(4 * std::uint64_t(p.interval_ms))
                          + " at least, or interval="
                          + time_text(p.window_ms / 4) + " at most");
    }

    return p;
}


Counts counts_of(const std::uint64_t *words) noexcept
{
    Counts c;

    for (std::size_t i = 0; i < metrics::classes; i++) {
        c.responses += words[metrics::v_responses + i];
    }

    c.errors = words[metrics::v_responses + 4];

    for (std::size_t i = 0; i < metrics::buckets; i++) {
        c.buckets[i] = words[metrics::v_buckets + i];
    }

    return c;
}


Counts minus(const Counts &a, const Counts &b) noexcept
{
    auto sub = [](std::uint64_t x, std::uint64_t y) {
        return x > y ? x - y : 0;
    };

    Counts d;
    d.responses = sub(a.responses, b.responses);
    d.errors = sub(a.errors, b.errors);

    for (std::size_t i = 0; i < metrics::buckets; i++) {
        d.buckets[i] = sub(a.buckets[i], b.buckets[i]);
    }

    if (d.errors > d.responses) {
        d.errors = d.responses;
    }

    return d;
}


double quantile_ms(const std::array<std::uint64_t, metrics::buckets> &b,
                   double q) noexcept
{
    std::uint64_t total = 0;

    for (auto n : b) {
        total += n;
    }

    if (total == 0) {
        return 0;
    }

    if (q < 0) {
        q = 0;
    } else if (q > 1) {
        q = 1;
    }

    double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;

    for (std::size_t i = 0; i < metrics::buckets; i++) {
        std::uint64_t cum = below + b[i];

        if (static_cast<double>(cum) >= rank && b[i] > 0) {
            if (i == metrics::bucket_ms.size()) {
                // the +Inf bucket: its lower bound, as Prometheus does
                return metrics::bucket_ms.back();
            }

            double lower = (i == 0) ? 0 : metrics::bucket_ms[i - 1];
            double upper = metrics::bucket_ms[i];

            return lower + (upper - lower)
                               * (rank - static_cast<double>(below))
                               / static_cast<double>(b[i]);
        }

        below = cum;
    }

    return metrics::bucket_ms.back();
}


void Ring::reset(const Params &p)
{
    samples_.assign(p.window_ms / p.interval_ms + 2, Sample{0, Counts{}});
    head_ = 0;
    count_ = 0;
}


void Ring::push(std::uint64_t at_ms, const Counts &c) noexcept
{
    if (samples_.empty()) {
        return;
    }

    samples_[head_] = Sample{at_ms, c};
    head_ = (head_ + 1) % samples_.size();

    if (count_ < samples_.size()) {
        count_++;
    }
}


bool Ring::window(std::uint32_t window_ms, Counts &delta,
                  std::uint64_t *span_ms) const noexcept
{
    if (count_ < 2) {
        return false;
    }

    std::size_t n = samples_.size();
    const Sample &newest = samples_[(head_ + n - 1) % n];
    const Sample *from = &samples_[(head_ + n - 2) % n];

    // walk back while the next older sample is still within the window
    for (std::size_t k = 3; k <= count_; k++) {
        const Sample &s = samples_[(head_ + n - k) % n];

        if (s.at_ms + window_ms < newest.at_ms) {
            break;
        }

        from = &s;
    }

    delta = minus(newest.counts, from->counts);
    *span_ms = newest.at_ms > from->at_ms ? newest.at_ms - from->at_ms : 0;

    return true;
}


const char *outcome_name(Outcome o) noexcept
{
    switch (o) {
    case Outcome::waiting:
        return "waiting";
    case Outcome::pass:
        return "pass";
    case Outcome::fail:
        return "fail";
    default:
        return "not_judged";
    }
}


namespace {

double share(std::uint64_t errors, std::uint64_t responses) noexcept
{
    return responses ? 100.0 * static_cast<double>(errors)
                           / static_cast<double>(responses)
                     : 0;
}

// "10s", "2.5s"
void span_text(char *buf, std::size_t size, std::uint64_t ms) noexcept
{
    if (ms % 1000 == 0) {
        std::snprintf(buf, size, "%llus",
                      static_cast<unsigned long long>(ms / 1000));
    } else {
        std::snprintf(buf, size, "%.1fs", static_cast<double>(ms) / 1000);
    }
}

}  // namespace


Verdict judge(const Params &p, const Counts &variant, const Counts &primary,
              std::uint64_t span_ms) noexcept
{
    Verdict v;
    char span[32];

    v.responses = variant.responses;
    v.errors = variant.errors;
    v.span_ms = span_ms;
    v.primary_responses = primary.responses;
    v.primary_errors = primary.errors;

    if (p.latency) {
        v.quantile_ms = quantile_ms(variant.buckets, p.quantile);
        v.primary_quantile_ms = quantile_ms(primary.buckets, p.quantile);
    }

    span_text(span, sizeof(span), span_ms);

    if (variant.responses < p.min_requests) {
        v.outcome = Outcome::waiting;
        std::snprintf(v.detail, sizeof(v.detail),
                      "%llu responses in %s, fewer than min_requests=%u",
                      static_cast<unsigned long long>(variant.responses),
                      span, p.min_requests);
        return v;
    }

    bool baseline = p.baseline_primary
                    && primary.responses >= p.min_requests;

    if (p.errors) {
        double mine = share(variant.errors, variant.responses);
        double theirs = share(primary.errors, primary.responses);
        bool fail = baseline ? (mine - theirs > p.errors_pct)
                             : (mine > p.errors_pct);

        if (fail) {
            v.outcome = Outcome::fail;
            v.reason = GuardReason::errors;

            if (baseline) {
                std::snprintf(v.detail, sizeof(v.detail),
                              "5xx %.1f%% of %llu responses in %s; primary "
                              "%.1f%% of %llu",
                              mine,
                              static_cast<unsigned long long>(
                                  variant.responses),
                              span, theirs,
                              static_cast<unsigned long long>(
                                  primary.responses));
            } else {
                std::snprintf(v.detail, sizeof(v.detail),
                              "5xx %.1f%% of %llu responses in %s", mine,
                              static_cast<unsigned long long>(
                                  variant.responses),
                              span);
            }

            return v;
        }
    }

    if (p.latency && v.quantile_ms > p.latency_ms
        && !(baseline && v.primary_quantile_ms > p.latency_ms))
    {
        v.outcome = Outcome::fail;
        v.reason = GuardReason::latency;

        if (baseline) {
            std::snprintf(v.detail, sizeof(v.detail),
                          "%s %.0fms of %llu responses in %s, above %ums; "
                          "primary %s %.0fms of %llu",
                          p.quantile_name, v.quantile_ms,
                          static_cast<unsigned long long>(variant.responses),
                          span, p.latency_ms, p.quantile_name,
                          v.primary_quantile_ms,
                          static_cast<unsigned long long>(
                              primary.responses));
        } else {
            std::snprintf(v.detail, sizeof(v.detail),
                          "%s %.0fms of %llu responses in %s, above %ums",
                          p.quantile_name, v.quantile_ms,
                          static_cast<unsigned long long>(variant.responses),
                          span, p.latency_ms);
        }

        return v;
    }

    // The primary is over a threshold itself (a dependency both share is
    // down, say): the variant is no worse, so no trip, but not a pass
    // either, so that a ramp holds its step until the primary recovers.
    if (baseline
        && ((p.errors
             && share(primary.errors, primary.responses) > p.errors_pct)
            || (p.latency && v.primary_quantile_ms > p.latency_ms)))
    {
        char slow[24] = "";

        if (p.latency) {
            std::snprintf(slow, sizeof(slow), ", %s %.0fms", p.quantile_name,
                          v.primary_quantile_ms);
        }

        v.outcome = Outcome::waiting;
        std::snprintf(v.detail, sizeof(v.detail),
                      "primary fails too: 5xx %.1f%% of %llu in %s%s; "
                      "not judged against it",
                      share(primary.errors, primary.responses),
                      static_cast<unsigned long long>(primary.responses),
                      span, slow);
        return v;
    }

    v.outcome = Outcome::pass;
    std::snprintf(v.detail, sizeof(v.detail),
                  "5xx %.1f%% of %llu responses in %s",
                  share(variant.errors, variant.responses),
                  static_cast<unsigned long long>(variant.responses), span);

    return v;
}


std::string with_guard(const std::string &rendered, const Params &p,
                       const std::vector<Published> &variants)
{
    using nlohmann::ordered_json;

    ordered_json doc = ordered_json::parse(rendered);

    if (!doc.is_object()) {
        return rendered;
    }

    ordered_json g = ordered_json::object();
    ordered_json window = ordered_json::object();
    bool tripped = doc.contains("guard") && doc["guard"].is_object()
                   && doc["guard"].contains("tripped");
    bool waiting = false;
    std::string q = std::string(p.quantile_name) + "_ms";

    for (const auto &v : variants) {
        auto outcome = static_cast<Outcome>(v.words[metrics::g_outcome]);

        if (v.primary || v.words[metrics::g_at_ms] == 0
            || outcome == Outcome::not_judged)
        {
            continue;
        }

        waiting = waiting || outcome == Outcome::waiting;

        ordered_json w = {
            {"state", outcome_name(outcome)},
            {"responses", v.words[metrics::g_responses]},
            {"errors", v.words[metrics::g_errors]}};

        if (p.latency) {
            w[q] = std::round(v.words[metrics::g_quantile_us] / 100.0) / 10;
        }

        w["span_s"] = v.words[metrics::g_span_ms] / 1000.0;
        window[v.variant] = std::move(w);
    }

    g["state"] = tripped ? "tripped" : (waiting ? "waiting" : "ok");

    if (tripped) {
        g["tripped"] = doc["guard"]["tripped"];
    }

    if (p.errors) {
        g["errors"] = p.errors_pct;
    }

    if (p.latency) {
        g["latency"] = std::string(p.quantile_name) + ":"
                       + std::to_string(p.latency_ms) + "ms";
    }

    g["window_s"] = p.window_ms / 1000.0;
    g["interval_ms"] = p.interval_ms;
    g["min_requests"] = p.min_requests;
    g["baseline"] = p.baseline_primary ? "primary" : "none";
    g["window"] = std::move(window);

    doc["guard"] = std::move(g);

    return doc.dump();
}

}  // namespace dynroute::guard
