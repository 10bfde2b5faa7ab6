// Rollouts from arbitrary text: weights, CIDRs, cookies and keys.
//
// Input: lines.  The first is the rollout's name; then
//   "v NAME WEIGHT"   a variant          "s CIDR VARIANT"  a source
//   "p VARIANT"       the primary        "k KEY"           a key to pick
//   "h VALUE"         an override value  "c COOKIE-HEADER" a Cookie header
//   "x VALUE"         a stickiness cookie's value (and the "dr" cookie of
//                     each Cookie header)
//   "t SECONDS [LIFE]" the clock (unix seconds, up to 2^32 - 1; default
//                     1767225600) and the cookie's lifetime (default 3600)
// Whatever the text, building either throws ConfigError or gives a rollout
// whose weights sum to 100%, whose picks are in range and never land on a
// 0% variant by weight, that a rebuild agrees with, and that keeps its
// keys in a variant whose weight is raised.  A stickiness value names a
// variant only if it is exactly the value signed for that variant, that
// key and its issue time, the issue time is within the skew ahead and the
// lifetime behind, and the variant is above 0%.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "rollout.hpp"

using dynroute::Rollout;

namespace {

struct Spec {
    std::string name;
    std::vector<std::pair<std::string, std::string>> variants;
    std::vector<std::pair<std::string, std::string>> sources;
    std::string primary;
    bool has_primary = false;
};

bool build(const Spec &s, Rollout &r)
{
    try {
        for (const auto &v : s.variants) {
            r.add_variant(v.first, v.second);
        }
        if (s.has_primary) {
            r.set_primary(s.primary);
        }
        for (const auto &src : s.sources) {
            r.add_source(dynroute::parse_cidr(src.first), src.second);
        }
        r.finish();
        return true;
    } catch (const dynroute::ConfigError &) {
        return false;
    }
}

std::pair<std::string_view, std::string_view> two(std::string_view s)
{
    std::size_t sp = s.find(' ');
    if (sp == std::string_view::npos) {
        return {s, {}};
    }
    return {s.substr(0, sp), s.substr(sp + 1)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view in(reinterpret_cast<const char *>(data), size);
    auto lines = fuzz::split_lines(in, 64);
    if (lines.empty()) {
        return 0;
    }

    Spec spec;
    spec.name = std::string(lines[0]);
    std::vector<std::string_view> keys, values, cookies, stickies;
    std::int64_t now = 1767225600;
    std::uint32_t lifetime = 3600;

    for (std::size_t i = 1; i < lines.size(); i++) {
        std::string_view l = lines[i];
        if (l.size() < 2 || l[1] != ' ') {
            continue;
        }
        std::string_view rest = l.substr(2);
        auto [a, b] = two(rest);
        switch (l[0]) {
        case 'v':
            spec.variants.emplace_back(std::string(a), std::string(b));
            break;
        case 's':
            spec.sources.emplace_back(std::string(a), std::string(b));
            break;
        case 'p':
            spec.primary = std::string(rest);
            spec.has_primary = true;
            break;
        case 'k':
            keys.push_back(rest);
            break;
        case 'h':
            values.push_back(rest);
            break;
        case 'c':
            cookies.push_back(rest);
            break;
        case 'x':
            stickies.push_back(rest);
            break;
        case 't': {
            std::string t(a), l(b);
            now = std::strtoll(t.c_str(), nullptr, 10);
            now = now < 0 ? 0 : (now > 0xffffffffLL ? 0xffffffffLL : now);
            if (!l.empty()) {
                lifetime = static_cast<std::uint32_t>(
                    std::strtoul(l.c_str(), nullptr, 10));
            }
            break;
        }
        }
    }

    // the parsers alone, on every token
    for (const auto &v : spec.variants) {
        try {
            auto w = dynroute::parse_weight(v.second);
            FUZZ_CHECK(w.rest || w.value <= dynroute::weight_scale);
            if (!w.rest) {
                auto again = dynroute::parse_weight(
                    dynroute::format_weight(w.value));
                FUZZ_CHECK(again.value == w.value);
            }
        } catch (const dynroute::ConfigError &) {
        }
    }
    for (std::string_view c : cookies) {
        std::string_view value;
        if (dynroute::find_cookie(c, spec.name, value)) {
            FUZZ_CHECK(value.data() >= c.data()
                       && value.data() + value.size() <= c.data() + c.size());
        }
        if (dynroute::find_cookie(c, "dr", value)) {
            stickies.push_back(value);
        }
    }

    Rollout r(spec.name);
    if (!build(spec, r)) {
        return 0;
    }

    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < r.size(); i++) {
        sum += r.weight(i);
    }
    FUZZ_CHECK(sum == dynroute::weight_scale);
    FUZZ_CHECK(r.size() >= 2 && r.primary() < r.size());

    Rollout same(spec.name);
    FUZZ_CHECK(build(spec, same));

    // the same rollout with variant 0 raised by what variant j gives up
    std::size_t j = 1;
    while (j < r.size() && r.weight(j) == 0) {
        j++;
    }
    Spec raised = spec;
    bool can_raise = j < r.size();
    if (can_raise) {
        std::uint32_t give = (r.weight(j) + 1) / 2;
        for (std::size_t i = 0; i < raised.variants.size(); i++) {
            std::uint32_t w = r.weight(i);
            if (i == 0) {
                w += give;
            } else if (i == j) {
                w -= give;
            }
            raised.variants[i].second = dynroute::format_weight(w);
        }
    }
    Rollout up(spec.name);
    can_raise = can_raise && build(raised, up);

    // the stickiness cookie, signed with a key of the input's own, bound to
    // the key or not
    keys.push_back({});
    bool bind = spec.name.size() % 2 == 0;
    r.set_sticky(dynroute::sip_key_from(spec.name + "-sticky-secret"),
                 lifetime, bind);
    auto expect = [&](std::size_t v, std::int64_t age) {
        return r.weight(v) > 0 && age >= -Rollout::sticky_skew
                       && age < static_cast<std::int64_t>(lifetime)
                   ? v
                   : Rollout::npos;
    };
    for (std::size_t v = 0; v < r.size(); v++) {
        for (std::string_view k : keys) {
            dynroute::StickyValue sv = r.sticky_issue(v, k, now);
            std::string text(dynroute::sticky_value_size, '?');
            dynroute::format_sticky(sv, text.data());
            dynroute::StickyValue back;
            FUZZ_CHECK(dynroute::parse_sticky(text, back)
                       && back.issued == sv.issued && back.tag == sv.tag);
            FUZZ_CHECK(r.by_sticky(text, k, now) == expect(v, 0));
            FUZZ_CHECK(r.by_sticky(text, k, now + lifetime)
                       == Rollout::npos);
            FUZZ_CHECK(r.by_sticky(text, k, now - Rollout::sticky_skew - 1)
                       == Rollout::npos);
            for (std::string_view other : keys) {
                if (bind && other != k) {
                    FUZZ_CHECK(r.by_sticky(text, other, now)
                               == Rollout::npos);
                }
            }
        }
    }
    for (std::string_view x : stickies) {
        for (std::string_view k : keys) {
            std::size_t v = r.by_sticky(x, k, now);
            if (v != Rollout::npos) {
                dynroute::StickyValue sv;
                FUZZ_CHECK(dynroute::parse_sticky(x, sv));
                dynroute::StickyValue again = r.sticky_issue(v, k, sv.issued);
                FUZZ_CHECK(again.tag == sv.tag);
                FUZZ_CHECK(expect(v, now - static_cast<std::int64_t>(
                                           sv.issued)) == v);
            }
            Rollout::Inputs i;
            i.sticky = &x;
            i.key = k;
            i.now = now;
            Rollout::Reason why = Rollout::Reason::fallback;
            std::size_t p = r.pick(i, &why);
            FUZZ_CHECK(p < r.size() && r.weight(p) > 0);
            FUZZ_CHECK(why == (v != Rollout::npos ? Rollout::Reason::sticky
                                                  : Rollout::Reason::weight));
        }
    }

    for (std::string_view k : keys) {
        std::size_t v = r.by_weight(k);
        FUZZ_CHECK(v < r.size());
        FUZZ_CHECK(r.weight(v) > 0);
        FUZZ_CHECK(same.by_weight(k) == v);
        if (can_raise && v == 0) {
            FUZZ_CHECK(up.by_weight(k) == 0);
        }

        for (std::string_view h : values) {
            Rollout::Inputs i;
            i.header = &h;
            i.key = k;
            std::size_t p = r.pick(i);
            FUZZ_CHECK(p < r.size());
            std::size_t o = r.by_override(h);
            FUZZ_CHECK(o == Rollout::npos || p == o);
        }
    }

    return 0;
}
