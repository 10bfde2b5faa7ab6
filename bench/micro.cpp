// Microbenchmarks of the core (Google Benchmark): the routing decision for
// exact, wildcard and regex hosts at 10, 1,000 and 100,000 rules (find(),
// and find_lower() with hash_host() as the glue calls them), IP-literal
// classification, rollout hashing (2, 3 and 10 variants; and the whole pick
// with an override header), and the compile time and memory of a
// 100,000-host table.
//
// Hosts are looked up from a shuffled list of a few thousand names so that a
// large table is probed all over, as real traffic would, not one hot slot.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "host.hpp"
#include "rollout.hpp"
#include "table.hpp"

using namespace dynroute;

namespace {

constexpr std::size_t probes = 4096;  // a power of two

// "svc-<i>.team-<i%97>.example.com": about 28 bytes, like real service names.
std::string exact_name(std::size_t i)
{
    return "svc-" + std::to_string(i) + ".team-" + std::to_string(i % 97) +
           ".example.com";
}

std::string wildcard_key(std::size_t i)
{
    return "w" + std::to_string(i) + ".example.net";
}

// n rules: n exact names and n/10 "*.w<i>.example.net" (at least one),
// rule ids as in a real table; `regex` adds one regex rule after them.
Table make_table(std::size_t n, bool regex)
{
    TableBuilder b;
    RuleId id = 0;
    for (std::size_t i = 0; i < n; i++) {
        b.add(exact_name(i), id++);
    }
    for (std::size_t i = 0; i < std::max<std::size_t>(n / 10, 1); i++) {
        b.add("*." + wildcard_key(i), id++);
    }
    if (regex) {
        b.add("~^(?<tenant>[a-z0-9]+)\\.t\\.example\\.org$", id++);
    }
    b.set_default(id++);
    return b.build();
}

std::vector<std::string> shuffled(std::vector<std::string> v)
{
    std::mt19937_64 rng(42);
    std::shuffle(v.begin(), v.end(), rng);
    return v;
}

std::vector<std::string> exact_hosts(std::size_t n)
{
    std::mt19937_64 rng(1);
    std::vector<std::string> v;
    for (std::size_t i = 0; i < probes; i++) {
        v.push_back(exact_name(rng() % n));
    }
    return shuffled(v);
}

// Subdomains of the wildcards: the exact lookup misses, a suffix hits.
std::vector<std::string> wildcard_hosts(std::size_t n)
{
    std::mt19937_64 rng(2);
    std::size_t w = std::max<std::size_t>(n / 10, 1);
    std::vector<std::string> v;
    for (std::size_t i = 0; i < probes; i++) {
        v.push_back("api-" + std::to_string(i % 50) + "." +
                    wildcard_key(rng() % w));
    }
    return shuffled(v);
}

// Hosts only the regex matches: every hash misses first.
std::vector<std::string> regex_hosts()
{
    std::vector<std::string> v;
    for (std::size_t i = 0; i < probes; i++) {
        v.push_back("tenant" + std::to_string(i) + ".t.example.org");
    }
    return shuffled(v);
}

// How a benchmark looks a host up: find(), or the glue's lowercase path,
// which hashes the host once (as for the runtime hosts too) and then calls
// find_lower().  Each workload below runs with both, under the names
// BM_Decide* and BM_Lower*.
struct ViaFind {
    static Decision decide(const Table &t, std::string_view h) noexcept
    {
        return t.find(h);
    }
};

struct ViaLower {
    static Decision decide(const Table &t, std::string_view h) noexcept
    {
        return t.find_lower(h, Table::hash_host(h));
    }
};

// never: a rule the workload must not come to (no_rule for no check).
template <class Lookup, typename Hosts>
void run_decisions(benchmark::State &state, const Table &t, const Hosts &hosts,
                   RuleId never)
{
    std::size_t i = 0;
    for (auto _ : state) {
        Decision d = Lookup::decide(t, hosts[i++ & (probes - 1)]);
        benchmark::DoNotOptimize(d);
        if (d.rule == never) {  // a wrong workload would be a wrong figure
            state.SkipWithError("host fell through to the default");
            break;
        }
    }
}

RuleId default_of(const Table &t) { return t.default_rule(); }

template <class Lookup> void bm_exact(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    Table t = make_table(n, false);
    auto hosts = exact_hosts(n);
    run_decisions<Lookup>(state, t, hosts, default_of(t));
}

template <class Lookup> void bm_wildcard(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    Table t = make_table(n, false);
    auto hosts = wildcard_hosts(n);
    run_decisions<Lookup>(state, t, hosts, default_of(t));
}

// The same exact hosts with a regex rule in the table: regexes are tried
// only after the hashes miss, so this must cost what bm_exact costs.
template <class Lookup> void bm_exact_with_regex_rule(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    Table t = make_table(n, true);
    auto hosts = exact_hosts(n);
    run_decisions<Lookup>(state, t, hosts, default_of(t));
}

template <class Lookup> void bm_regex(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    Table t = make_table(n, true);
    auto hosts = regex_hosts();
    run_decisions<Lookup>(state, t, hosts, default_of(t));
}

// Nothing matches: every lookup runs to the default.
template <class Lookup> void bm_default(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    Table t = make_table(n, false);
    std::vector<std::string> hosts;
    for (std::size_t i = 0; i < probes; i++) {
        hosts.push_back("unknown-" + std::to_string(i) + ".example.org");
    }
    run_decisions<Lookup>(state, t, hosts, no_rule);
}

// The registered names (BENCHMARK() names a benchmark after its argument).
using Bench = void(benchmark::State &);
Bench &BM_DecideExact = bm_exact<ViaFind>;
Bench &BM_DecideWildcard = bm_wildcard<ViaFind>;
Bench &BM_DecideExactWithRegexRule = bm_exact_with_regex_rule<ViaFind>;
Bench &BM_DecideRegex = bm_regex<ViaFind>;
Bench &BM_DecideDefault = bm_default<ViaFind>;
Bench &BM_LowerExact = bm_exact<ViaLower>;
Bench &BM_LowerWildcard = bm_wildcard<ViaLower>;
Bench &BM_LowerRegex = bm_regex<ViaLower>;
Bench &BM_LowerDefault = bm_default<ViaLower>;

// A table with an ip rule: every request classifies its host first.
void BM_ClassifyHost(benchmark::State &state)
{
    static const char *const mix[] = {
        "10.1.2.3",          "10.1.2.3:8080", "[fd00::12]:8080",
        "[2001:db8::1]",     "1password.com", "api.example.com",
        "10.0.0.1.nip.io",   "svc-123.team-7.example.com",
    };
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(classify_host(mix[i++ & 7]));
    }
}

// Compiling n exact names and n/10 wildcards, as nginx reads the table.
void BM_Compile(benchmark::State &state)
{
    auto n = static_cast<std::size_t>(state.range(0));
    std::vector<std::string> names;
    for (std::size_t i = 0; i < n; i++) {
        names.push_back(exact_name(i));
    }
    for (std::size_t i = 0; i < n / 10; i++) {
        names.push_back("*." + wildcard_key(i));
    }

    std::size_t bytes = 0;
    for (auto _ : state) {
        TableBuilder b;
        RuleId id = 0;
        for (const auto &s : names) {
            b.add(s, id++);
        }
        Table t = b.build();
        bytes = t.stats().bytes;
        benchmark::DoNotOptimize(t);
    }
    state.counters["hosts"] = static_cast<double>(names.size());
    state.counters["table_MB"] = static_cast<double>(bytes) / 1e6;
    state.counters["bytes_per_host"] =
        static_cast<double>(bytes) / static_cast<double>(names.size());
}

// A rollout of n variants: one "*" and n - 1 canaries of 5% (or less).
Rollout make_rollout(std::size_t n)
{
    Rollout r("checkout");
    r.add_variant("stable", "*");
    for (std::size_t i = 1; i < n; i++) {
        r.add_variant("canary" + std::to_string(i), n > 10 ? "1%" : "5%");
    }
    r.finish();
    return r;
}

// Client addresses as keys, as with the default "key $remote_addr".
std::vector<std::string> rollout_keys()
{
    std::vector<std::string> v;
    for (std::size_t i = 0; i < probes; i++) {
        v.push_back("10." + std::to_string(i / 65536 % 256) + "." +
                    std::to_string(i / 256 % 256) + "." +
                    std::to_string(i % 256));
    }
    return v;
}

void BM_RolloutByWeight(benchmark::State &state)
{
    Rollout r = make_rollout(static_cast<std::size_t>(state.range(0)));
    auto keys = rollout_keys();
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(r.by_weight(keys[i++ & (probes - 1)]));
    }
}

// The whole choice: an override header that falls through, a source list
// that does not match, then the weights.
void BM_RolloutPick(benchmark::State &state)
{
    Rollout r("checkout");
    r.add_variant("stable", "*");
    r.add_variant("canary", "5%");
    r.add_source(parse_cidr("192.0.2.0/24"), "canary");
    r.finish();
    auto keys = rollout_keys();
    std::string_view header = "junk";
    Address addr;
    addr.family = 4;
    addr.bytes[0] = 10;
    Rollout::Inputs in;
    in.header = &header;
    in.address = &addr;
    std::size_t i = 0;
    for (auto _ : state) {
        in.key = keys[i++ & (probes - 1)];
        benchmark::DoNotOptimize(r.pick(in));
    }
}

}  // namespace

BENCHMARK(BM_RolloutByWeight)->Arg(2)->Arg(3)->Arg(10);
BENCHMARK(BM_RolloutPick);
BENCHMARK(BM_DecideExact)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_DecideWildcard)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_DecideExactWithRegexRule)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_DecideRegex)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_DecideDefault)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LowerExact)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LowerWildcard)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LowerRegex)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LowerDefault)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_ClassifyHost);
BENCHMARK(BM_Compile)->Arg(100000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
