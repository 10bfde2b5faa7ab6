// Table compilation from arbitrary pattern lists, then lookups.
//
// Input: one pattern per line ("default" and "ip" set those rules; at most
// 64 lines).  Each pattern is added as its own rule; ConfigError is the only
// allowed failure.  The compiled table is then asked about hosts derived
// from the patterns, and its answer is compared with a brute-force model of
// nginx's precedence for everything but regexes.
#include <optional>
#include <string>

#include "fuzz_util.hpp"
#include "host.hpp"
#include "table.hpp"

using namespace dynroute;

namespace {

struct Entry {
    Pattern p;
    RuleId rule;
};

bool exactish(PatternKind k)
{
    return k == PatternKind::exact || k == PatternKind::dot;
}

bool headish(PatternKind k)
{
    return k == PatternKind::star || k == PatternKind::dot;
}

// nginx's rules for names and wildcards (regexes are left out: the model
// answers "no name matched" and the table may then pick a regex).
struct Model {
    std::vector<Entry> entries;
    std::optional<RuleId> ip, dflt;
    bool regexes = false;

    bool conflicts(const Pattern &p) const
    {
        for (const Entry &e : entries) {
            if (p.kind == PatternKind::regex ||
                e.p.kind == PatternKind::regex || e.p.key != p.key) {
                continue;
            }
            if ((exactish(p.kind) && exactish(e.p.kind)) ||
                (headish(p.kind) && headish(e.p.kind)) ||
                (p.kind == PatternKind::tail &&
                 e.p.kind == PatternKind::tail)) {
                return true;
            }
        }
        return false;
    }

    // The rule of the best name match, or nullopt when only a regex or the
    // default could answer.
    std::optional<RuleId> find_name(std::string_view h) const
    {
        if (!h.empty() && h.back() == '.') {
            h.remove_suffix(1);
        }
        if (ip && classify_host(h) != HostKind::name) {
            return *ip;
        }
        std::string low = fuzz::ascii_lower(h);
        for (const Entry &e : entries) {
            if (exactish(e.p.kind) && e.p.key == low) {
                return e.rule;
            }
        }
        const Entry *best = nullptr;
        for (const Entry &e : entries) {
            std::string suffix = "." + e.p.key;
            if (headish(e.p.kind) && low.size() >= suffix.size() &&
                low.compare(low.size() - suffix.size(), suffix.size(),
                            suffix) == 0 &&
                (!best || e.p.key.size() > best->p.key.size())) {
                best = &e;
            }
        }
        if (best) {
            return best->rule;
        }
        for (const Entry &e : entries) {
            std::string prefix = e.p.key + ".";
            if (e.p.kind == PatternKind::tail &&
                low.compare(0, prefix.size(), prefix) == 0 &&
                (!best || e.p.key.size() > best->p.key.size())) {
                best = &e;
            }
        }
        if (best) {
            return best->rule;
        }
        return std::nullopt;
    }
};

void check(const Table &t, const Model &m, std::string_view host,
           RuleId nrules)
{
    Decision d = t.find(host);
    FUZZ_CHECK(d.rule == no_rule || d.rule < nrules);

    std::optional<RuleId> want = m.find_name(host);
    if (want) {
        FUZZ_CHECK(d.rule == *want);
        FUZZ_CHECK(d.regex < 0);
    } else if (d.regex >= 0) {
        FUZZ_CHECK(static_cast<std::size_t>(d.regex) < t.regex_count());
        std::size_t b = 0, e = 0;
        for (unsigned g = 0; g <= t.regex(d.regex).capture_count(); g++) {
            if (t.group(g, b, e)) {
                FUZZ_CHECK(b <= e && e <= host.size());
            }
        }
    } else {
        FUZZ_CHECK(d.rule == (m.dflt ? *m.dflt : no_rule));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view in(reinterpret_cast<const char *>(data), size);
    std::vector<std::string_view> lines = fuzz::split_lines(in, 64);

    TableBuilder b;
    Model m;
    RuleId id = 0;

    for (std::string_view line : lines) {
        RuleId rule = id++;
        if (line == "default" || line == "ip") {
            bool is_default = line == "default";
            std::optional<RuleId> &slot = is_default ? m.dflt : m.ip;
            try {
                is_default ? b.set_default(rule) : b.set_ip(rule);
                FUZZ_CHECK(!slot);
                slot = rule;
            } catch (const ConflictError &e) {
                FUZZ_CHECK(slot && e.previous == *slot);
            }
            continue;
        }

        std::optional<Pattern> p;
        try {
            p = parse_pattern(line);
        } catch (const ConfigError &) {
        }

        try {
            b.add(line, rule);
            FUZZ_CHECK(p.has_value());
            FUZZ_CHECK(!m.conflicts(*p));
            m.entries.push_back({*p, rule});
            m.regexes |= p->kind == PatternKind::regex;
        } catch (const ConflictError &e) {
            FUZZ_CHECK(p && m.conflicts(*p));
            FUZZ_CHECK(e.previous < rule);
        } catch (const ConfigError &) {
            // a bad pattern or a bad regex: nothing was added
            FUZZ_CHECK(!p || p->kind == PatternKind::regex);
        }
    }

    Table t = b.build();
    Table::Stats st = t.stats();
    FUZZ_CHECK(st.regex == t.regex_count());

    // Hosts near the patterns: the key itself, a subdomain, a longer name,
    // the trailing-dot and upper-case forms, and the raw line.
    for (std::string_view line : lines) {
        std::string l(line);
        std::string key = l;
        if (!key.empty() && (key[0] == '.' || key[0] == '\\')) {
            key.erase(0, 1);
        }
        if (key.size() > 1 && key[0] == '*' && key[1] == '.') {
            key.erase(0, 2);
        }
        if (key.size() > 1 && key[key.size() - 1] == '*') {
            key.erase(key.size() - 1);
        }
        for (const std::string &h :
             {l, key, "x." + key, key + "x", key + ".", "a.b." + key,
              fuzz::ascii_upper(key), key + "y.z"}) {
            check(t, m, h, id);
        }
    }
    check(t, m, "", id);
    check(t, m, ".", id);
    return 0;
}
