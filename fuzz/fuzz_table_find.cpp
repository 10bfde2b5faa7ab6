// Decisions on arbitrary hosts against a fixed, realistic compiled table.
//
// Input: the host bytes, as raw Host header and as $host.  Checks: find()
// never fails a memory check, its rule is one of the table, a regex match's
// groups lie inside the host, and the decision ignores letter case and one
// trailing dot, as nginx does.  For the host lowercased without its trailing
// dot (and for the header as nginx's Host validation hands it over),
// find_lower() with hash_host() gives find()'s decision and groups.
#include <string>
#include <utility>
#include <vector>

#include "fuzz_util.hpp"
#include "host.hpp"
#include "nginx_host.hpp"
#include "table.hpp"

using namespace dynroute;

namespace {

const char *const patterns[] = {
    "a.example.com",
    "b.example.com",
    "*.a.example.com",
    ".example.org",
    "*.deep.x.y.z.example.net",
    "www.example.*",
    "mail.*",
    "\\default",
    "\\ip",
    "[::1]",
    "xn--caf-dma.example.com",
    "~*^(?<tenant>[a-z0-9-]+)\\.t\\.example\\.com$",
    "~*^(?<a>a+)+b$",             // backtracks: PCRE2's limits must hold
    "~*^api-(\\d+)\\.(?<region>[^.]+)\\.example\\.io$",
    "~*^(x)?(y)?(z)?\\.opt$",
    "~*^a",
};
constexpr RuleId ip_rule = 100;
constexpr RuleId default_rule = 101;

Table make_table()
{
    TableBuilder b;
    RuleId id = 0;
    for (const char *p : patterns) {
        b.add(p, id++);
    }
    // Enough names that the hashes grow past their first sizes.
    for (int i = 0; i < 2000; i++) {
        b.add("h" + std::to_string(i) + ".example.com", 1000 + i);
        if (i % 10 == 0) {
            b.add("*.w" + std::to_string(i) + ".example.com", 5000 + i);
        }
    }
    b.set_ip(ip_rule);
    b.set_default(default_rule);
    return b.build();
}

bool valid_rule(RuleId r)
{
    return r < sizeof(patterns) / sizeof(patterns[0]) || r == ip_rule ||
           r == default_rule || (r >= 1000 && r < 3000) ||
           (r >= 5000 && r < 7000 && r % 10 == 0);
}

Decision check(const Table &t, std::string_view host)
{
    Decision d = t.find(host);
    FUZZ_CHECK(valid_rule(d.rule));
    if (d.regex >= 0) {
        FUZZ_CHECK(static_cast<std::size_t>(d.regex) < t.regex_count());
        std::size_t b = 0, e = 0;
        for (unsigned g = 0; g <= t.regex(d.regex).capture_count() + 1; g++) {
            if (t.group(g, b, e)) {
                FUZZ_CHECK(b <= e && e <= host.size());
            }
        }
    }
    return d;
}

// The groups of the regex that made d, as (begin, end), (1, 0) for a group
// that did not take part.
std::vector<std::pair<std::size_t, std::size_t>> groups(const Table &t,
                                                        const Decision &d)
{
    std::vector<std::pair<std::size_t, std::size_t>> out;
    if (d.regex >= 0) {
        for (unsigned g = 0; g <= t.regex(d.regex).capture_count(); g++) {
            std::size_t b = 1, e = 0;
            if (!t.group(g, b, e)) {
                b = 1;
                e = 0;
            }
            out.emplace_back(b, e);
        }
    }
    return out;
}

// find_lower()'s contract: for a host that is lowercase and has no
// trailing dot, with hash_host() of it, the decision of find().  A host
// outside the contract is not compared: nginx's validation does leave a
// trailing dot when the header's port ends with one ("a.:80." gives "a."),
// since it strips the host's trailing dot only if no dot follows in the
// header.
void check_lower(const Table &t, std::string_view host)
{
    for (char c : host) {
        FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    }
    if (!host.empty() && host.back() == '.') {
        return;
    }

    Decision d = check(t, host);
    auto g = groups(t, d);

    Decision dl = t.find_lower(host, Table::hash_host(host));
    FUZZ_CHECK(valid_rule(dl.rule));
    FUZZ_CHECK(dl.rule == d.rule);
    FUZZ_CHECK(dl.regex == d.regex);
    FUZZ_CHECK(dl.error() == d.error());
    FUZZ_CHECK(groups(t, dl) == g);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    static const Table table = make_table();

    std::string_view raw(reinterpret_cast<const char *>(data), size);
    Decision d = check(table, raw);

    // Letter case and one trailing dot do not matter (every regex here is
    // caseless).  A PCRE2 error (match limit) may differ between runs of
    // different subjects, so compare only clean decisions.
    if (!d.error()) {
        std::string upper = fuzz::ascii_upper(raw);
        Decision du = check(table, upper);
        if (!du.error()) {
            FUZZ_CHECK(du.rule == d.rule);
        }
        if (raw.empty() || raw.back() != '.') {
            std::string dotted(raw);
            dotted += '.';
            Decision dd = check(table, dotted);
            if (!dd.error()) {
                FUZZ_CHECK(dd.rule == d.rule);
            }
        }
    }

    // The fast path: the host lowercased, without one trailing dot.
    std::string lower = fuzz::ascii_lower(raw);
    if (!lower.empty() && lower.back() == '.') {
        lower.pop_back();
    }
    check_lower(table, lower);

    // The way the glue sees it: the header normalised into $host.
    std::string out(raw.size(), '\0');
    if (std::optional<std::string_view> host = normalize_host(raw, out.data())) {
        check(table, *host);
        check_lower(table, *host);
    }
    return 0;
}
