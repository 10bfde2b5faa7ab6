// The runtime state of the API: changes, the state file, answers, and the
// shared-memory block of runtime hosts.
//
// Input: the first byte's low four bits (modulo 12) pick the operation and
// its high four bits (modulo 3) the starting state: empty, a few overrides
// and hosts, or 20 hosts and draining.  The rest is the operation's input:
//   0  patch_rollout("checkout", BODY)      1  patch_rollout("pricing", BODY)
//   2  patch_rollout(NAME, BODY)            3  reset_rollout(NAME)
//   4  put_host(HOST, BODY)                 5  delete_host(HOST)
//   6  patch_hosts(BODY)                    7  load_state(BYTES)
//   8  a snapshot over BYTES (as its head,   9  the state's snapshot, every
//      then as its hosts)                      truncation of each block,
//                                              with bytes flipped
//                                              ("POS-HI POS-LO XOR" triples)
//  10  render_rollout / render_rollout_change / render_host(NAME)
//  11  a sequence of requests, one a line: "P NAME BODY", "R NAME",
//      "H HOST BODY", "D HOST", "B BODY"
// NAME and HOST are the first line (op 2, 4) or the whole input (3, 5, 10).
//
// Whatever the input: a host name that normalize_host accepts comes out as
// one it keeps as it is; an API call succeeds or throws ApiError 400 or 404
// and then leaves the state as it was; a changed state still fits the
// schema (whole weights summing to 100 %, known upstreams, normalized hosts
// of known tables and targets), prune() finds nothing in it, dump_state ->
// load_state gives it back, its snapshot finds every host and decodes back
// to it; load_state throws ConfigError or gives a state that prune() leaves
// alone; a SnapshotView stays inside any bytes; every answer is JSON.
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_util.hpp"
#include "name_ids.hpp"
#include "runtime_hosts.hpp"
#include "rollout.hpp"
#include "snapshot.hpp"
#include "state.hpp"

using dynroute::ApiError;
using dynroute::ConfigError;
using dynroute::NameId;
using dynroute::Schema;
using dynroute::SnapshotView;
using dynroute::State;

namespace {

const Schema &schema()
{
    static const Schema s = [] {
        Schema s;
        s.rollouts.push_back({"checkout", {"stable", "canary"}, {9000, 1000},
                              {"service_a", "service_b"}, 0});
        s.rollouts.push_back({"pricing", {"control", "v1", "v2"},
                              {5000, 2500, 2500},
                              {"service_a", "service_b", "service_b_green"},
                              0});
        s.tables = {"main", "internal"};
        s.table_rules = {3, 1};
        s.upstreams = {"service_a", "service_b", "service_b_green"};
        return s;
    }();
    return s;
}

State base_state(unsigned which)
{
    State s;

    if (which == 1) {
        s.generation = 7;
        auto &c = s.rollouts["checkout"];
        c.weights = {{"stable", 5000}, {"canary", 5000}};
        c.upstreams = {{"canary", "service_b_green"}};
        s.rollouts["pricing"].primary = "v1";
        s.hosts["www.example.com"] = {"main", "checkout"};
        s.hosts["api.example.com"] = {"internal", "service_a"};
        s.hosts["shop.example.org"] = {"main", "pricing"};

    } else if (which == 2) {
        s.generation = dynroute::max_generation;   // the largest there is
        s.draining = true;
        s.rollouts["pricing"].weights = {
            {"control", 0}, {"v1", 3333}, {"v2", 6667}};
        static const char *const targets[] = {
            "service_a", "service_b", "service_b_green", "checkout",
            "pricing"};
        for (int i = 0; i < 20; i++) {
            s.hosts["h" + std::to_string(i) + ".example.net"] = {
                i % 3 ? "main" : "internal", targets[i % 5]};
        }
    }

    return s;
}

bool is_json(const std::string &s)
{
    return nlohmann::json::accept(s);
}

[[noreturn]] void unexpected(const char *what)
{
    std::fprintf(stderr, "unexpected exception: %s\n", what);
    std::abort();
}

// The bytes of s in a heap buffer of exactly that size, so that ASan sees
// a read past its end.
std::unique_ptr<unsigned char[]> exact_copy(const std::string &s)
{
    std::unique_ptr<unsigned char[]> p(new unsigned char[s.size()]);
    if (!s.empty()) {
        std::memcpy(p.get(), s.data(), s.size());
    }
    return p;
}

bool inside(std::string_view v, const unsigned char *p, std::size_t n)
{
    auto *b = reinterpret_cast<const char *>(p);
    return v.empty() || (v.data() >= b && v.data() + v.size() <= b + n);
}

using Ids = dynroute::NameIds;

// Whatever the bytes of the two blocks: reading stays inside them and
// returns.
void read_any_blocks(const std::string &head, const std::string &hosts,
                     const Ids &ids,
                     const std::vector<std::string_view> &probes)
{
    auto hb = exact_copy(head), sb = exact_copy(hosts);
    SnapshotView v(hb.get(), head.size(), sb.get(), hosts.size());
    SnapshotView::Host e;
    std::vector<std::string_view> seen;
    std::size_t n = 0;

    v.each_host([&](std::string_view h, const SnapshotView::Host &) {
        FUZZ_CHECK(inside(h, sb.get(), hosts.size()));
        if (seen.size() < 64) {
            seen.push_back(h);
        }
        n++;
    });
    FUZZ_CHECK(n <= v.hosts());

    v.each_rollout([&](const SnapshotView::Rollout &r) {
        for (std::size_t i = 0; i < r.variants; i++) {
            (void) SnapshotView::variant(r, i);
        }
    });

    for (std::string_view h : seen) {
        (void) v.find_host(h, e);
    }
    for (std::string_view h : probes) {
        (void) v.find_host(h, e);
    }

    State out;
    (void) dynroute::decode_snapshot(v, [&](NameId id) { return ids[id]; },
                                     out);
}

// The state's snapshot finds each of its hosts, nothing else, and decodes
// back to the state.
void check_block(const State &state)
{
    Ids ids;
    std::string head = dynroute::encode_snapshot(state, 1, std::ref(ids));
    std::string hosts = dynroute::encode_snapshot_hosts(state.hosts,
                                                        std::ref(ids));
    auto hb = exact_copy(head), sb = exact_copy(hosts);
    SnapshotView v(hb.get(), head.size(), sb.get(), hosts.size());
    SnapshotView::Host e;

    FUZZ_CHECK(v.valid());
    FUZZ_CHECK(v.hosts() == state.hosts.size());
    FUZZ_CHECK(v.generation() == state.generation);

    for (const auto &[host, entry] : state.hosts) {
        FUZZ_CHECK(v.find_host(host, e));
        FUZZ_CHECK(ids[e.table] == entry.table);
        FUZZ_CHECK(ids[e.target] == entry.target);
    }
    if (state.hosts.count("absent.example.invalid") == 0) {
        FUZZ_CHECK(!v.find_host("absent.example.invalid", e));
    }

    State back;
    FUZZ_CHECK(dynroute::decode_snapshot(
        v, [&](NameId id) { return ids[id]; }, back));
    FUZZ_CHECK(back.generation == state.generation);
    FUZZ_CHECK(back.draining == state.draining);
    FUZZ_CHECK(back.fleet == state.fleet);
    FUZZ_CHECK(back.hosts == state.hosts);
    FUZZ_CHECK(back.rollouts.size() == state.rollouts.size());
    for (const auto &[name, o] : state.rollouts) {
        auto it = back.rollouts.find(name);
        FUZZ_CHECK(it != back.rollouts.end());
        FUZZ_CHECK(it->second.weights == o.weights);
        FUZZ_CHECK(it->second.upstreams == o.upstreams);
        FUZZ_CHECK(it->second.primary == o.primary);
    }
}

void check_answers(const State &state)
{
    const Schema &sc = schema();
    std::string all = dynroute::render_state(state, sc, "dynroute");
    FUZZ_CHECK(is_json(all));
    auto j = nlohmann::json::parse(all);
    FUZZ_CHECK(j["generation"].get<std::uint64_t>() == state.generation);
    FUZZ_CHECK(j["hosts"].size() == state.hosts.size());
    FUZZ_CHECK(j["rollouts"].size() == sc.rollouts.size());

    for (const auto &info : sc.rollouts) {
        FUZZ_CHECK(is_json(dynroute::render_rollout(state, sc, info.name)));
        FUZZ_CHECK(is_json(
            dynroute::render_rollout_change(state, sc, info.name)));
    }
    FUZZ_CHECK(is_json(dynroute::render_hosts(state)));
    FUZZ_CHECK(is_json(dynroute::render_generation(state)));
    dynroute::BulkResult none;
    FUZZ_CHECK(is_json(dynroute::render_bulk(state, none)));
    std::size_t n = 0;
    for (const auto &h : state.hosts) {
        if (n++ == 4) {
            break;
        }
        FUZZ_CHECK(is_json(dynroute::render_host(state, h.first)));
    }
}

// A state as the API and the loader must leave it.
void check_state(const State &state)
{
    const Schema &sc = schema();

    for (const auto &[name, o] : state.rollouts) {
        const dynroute::RolloutInfo *info = sc.rollout(name);
        FUZZ_CHECK(info != nullptr);
        FUZZ_CHECK(!o.empty());

        if (!o.weights.empty()) {
            FUZZ_CHECK(o.weights.size() == info->variants.size());
            std::uint64_t sum = 0;
            for (const auto &[variant, w] : o.weights) {
                FUZZ_CHECK(info->find(variant) != std::size_t(-1));
                FUZZ_CHECK(w <= dynroute::weight_scale);
                sum += w;
            }
            FUZZ_CHECK(sum == dynroute::weight_scale);
        }
        for (const auto &[variant, u] : o.upstreams) {
            FUZZ_CHECK(info->find(variant) != std::size_t(-1));
            FUZZ_CHECK(sc.upstreams.count(u) == 1);
        }
        FUZZ_CHECK(o.primary.empty()
                   || info->find(o.primary) != std::size_t(-1));

        dynroute::Effective e = dynroute::effective(*info, &o);
        std::uint64_t sum = 0;
        for (std::uint32_t w : e.weights) {
            sum += w;
        }
        FUZZ_CHECK(sum == dynroute::weight_scale);
        FUZZ_CHECK(e.primary < info->variants.size());
    }

    for (const auto &[host, e] : state.hosts) {
        std::string out, why;
        FUZZ_CHECK(dynroute::normalize_host(host, out, why));
        FUZZ_CHECK(out == host);
        FUZZ_CHECK(sc.has_table(e.table));
        FUZZ_CHECK(sc.is_target(e.target));
    }

    std::string dump = dynroute::dump_state(state, true);
    FUZZ_CHECK(is_json(dump));
    FUZZ_CHECK(is_json(dynroute::dump_state(state, false)));

    State pruned = state;
    std::vector<std::string> notices;
    dynroute::prune(pruned, sc, notices);
    FUZZ_CHECK(notices.empty());
    FUZZ_CHECK(dynroute::dump_state(pruned, true) == dump);

    try {
        State back = dynroute::load_state(dump, sc, notices);
        FUZZ_CHECK(notices.empty());
        FUZZ_CHECK(dynroute::dump_state(back, true) == dump);
    } catch (const ConfigError &e) {
        unexpected(e.what());
    }

    check_block(state);
    check_answers(state);
}

// A name that normalize_host accepts comes out as one it keeps as it is:
// the key the API stores is the one a lookup of that host uses.
void check_host_name(std::string_view in)
{
    std::string out, again, why;

    if (dynroute::normalize_host(in, out, why)) {
        FUZZ_CHECK(!out.empty() && out.size() <= 253);
        FUZZ_CHECK(dynroute::normalize_host(out, again, why));
        FUZZ_CHECK(again == out);
    }
}

void check_refusal(const ApiError &e, const State &state,
                   const std::string &before)
{
    FUZZ_CHECK(e.status == 400 || e.status == 404);
    FUZZ_CHECK(dynroute::dump_state(state, true) == before);
    FUZZ_CHECK(is_json(dynroute::render_error(e.what())));
}

// Runs one API call on `state` and checks what it leaves.
template <class F> void api(State &state, F &&call)
{
    std::string before = dynroute::dump_state(state, true);

    try {
        call();
    } catch (const ApiError &e) {
        check_refusal(e, state, before);
        return;
    } catch (const std::exception &e) {
        unexpected(e.what());
    } catch (...) {
        unexpected("not a std::exception");
    }

    check_state(state);
}

std::pair<std::string_view, std::string_view> first_line(std::string_view s)
{
    std::size_t nl = s.find('\n');
    if (nl == std::string_view::npos) {
        return {s, {}};
    }
    return {s.substr(0, nl), s.substr(nl + 1)};
}

std::pair<std::string_view, std::string_view> first_word(std::string_view s)
{
    std::size_t sp = s.find(' ');
    if (sp == std::string_view::npos) {
        return {s, {}};
    }
    return {s.substr(0, sp), s.substr(sp + 1)};
}

void patch(State &state, std::string_view name, std::string_view body)
{
    api(state, [&] { dynroute::patch_rollout(state, schema(), name, body); });
}

void reset(State &state, std::string_view name)
{
    api(state, [&] { dynroute::reset_rollout(state, schema(), name); });
}

void put(State &state, std::string_view host, std::string_view body)
{
    check_host_name(host);
    std::size_t before = state.hosts.size();
    bool added = false;
    api(state, [&] {
        added = dynroute::put_host(state, schema(), host, body);
        FUZZ_CHECK(state.hosts.size() == before + (added ? 1 : 0));
    });
}

void del(State &state, std::string_view host)
{
    check_host_name(host);
    std::size_t before = state.hosts.size();
    api(state, [&] {
        dynroute::delete_host(state, host);
        FUZZ_CHECK(state.hosts.size() + 1 == before);
    });
}

void bulk(State &state, std::string_view body)
{
    std::size_t before = state.hosts.size();
    api(state, [&] {
        dynroute::BulkResult r = dynroute::patch_hosts(state, schema(), body);
        FUZZ_CHECK(state.hosts.size() + r.removed == before + r.added);
        FUZZ_CHECK(is_json(dynroute::render_bulk(state, r)));
    });
}

void load(std::string_view text)
{
    std::vector<std::string> notices;
    State s;

    try {
        s = dynroute::load_state(text, schema(), notices);
    } catch (const ConfigError &e) {
        FUZZ_CHECK(is_json(dynroute::render_error(e.what())));
        return;
    } catch (const std::exception &e) {
        unexpected(e.what());
    } catch (...) {
        unexpected("not a std::exception");
    }

    for (const auto &n : notices) {
        FUZZ_CHECK(is_json(dynroute::render_error(n)));
    }

    std::string dump = dynroute::dump_state(s, true);
    State again = s;
    std::vector<std::string> more;
    dynroute::prune(again, schema(), more);
    FUZZ_CHECK(more.empty());
    FUZZ_CHECK(dynroute::dump_state(again, true) == dump);

    check_state(s);
}

void render(const State &state, std::string_view name)
{
    check_host_name(name);
    std::string before = dynroute::dump_state(state, true);

    try {
        FUZZ_CHECK(is_json(dynroute::render_rollout(state, schema(), name)));
    } catch (const ApiError &e) {
        FUZZ_CHECK(schema().rollout(name) == nullptr);
        check_refusal(e, state, before);
    }
    try {
        FUZZ_CHECK(is_json(
            dynroute::render_rollout_change(state, schema(), name)));
    } catch (const ApiError &e) {
        check_refusal(e, state, before);
    }
    try {
        FUZZ_CHECK(is_json(dynroute::render_host(state, name)));
    } catch (const ApiError &e) {
        check_refusal(e, state, before);
    }
}

// Every truncation of each of the state's blocks, with the input's flips.
void damaged_blocks(const State &state, std::string_view in)
{
    Ids ids;
    std::string head = dynroute::encode_snapshot(state, 1, std::ref(ids));
    std::string hosts = dynroute::encode_snapshot_hosts(state.hosts,
                                                        std::ref(ids));
    std::string fhead = head, fhosts = hosts;

    for (std::size_t i = 0; i + 3 <= in.size() && i < 3 * 8; i += 3) {
        std::string &b = (in[i] & 0x80) ? fhead : fhosts;
        std::size_t pos = (std::size_t(std::uint8_t(in[i]) & 0x7f) << 8
                           | std::uint8_t(in[i + 1]))
                          % b.size();
        b[pos] = static_cast<char>(b[pos] ^ in[i + 2]);
    }

    std::vector<std::string_view> probes;
    for (const auto &h : state.hosts) {
        probes.push_back(h.first);
    }
    probes.push_back("absent.example.invalid");
    probes.push_back({});

    for (std::size_t n = 0; n <= fhosts.size(); n++) {
        read_any_blocks(fhead, fhosts.substr(0, n), ids, probes);
    }
    for (std::size_t n = 0; n <= fhead.size(); n++) {
        read_any_blocks(fhead.substr(0, n), fhosts, ids, probes);
    }
}

void sequence(State &state, std::string_view in)
{
    auto lines = fuzz::split_lines(in, 8);

    for (std::string_view l : lines) {
        if (l.size() < 2 || l[1] != ' ') {
            continue;
        }
        std::string_view rest = l.substr(2);
        auto [a, b] = first_word(rest);

        switch (l[0]) {
        case 'P':
            patch(state, a, b);
            break;
        case 'R':
            reset(state, rest);
            break;
        case 'H':
            put(state, a, b);
            break;
        case 'D':
            del(state, rest);
            break;
        case 'B':
            bulk(state, rest);
            break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    if (size == 0) {
        return 0;
    }

    unsigned op = data[0] & 0x0f;
    State state = base_state((data[0] >> 4) % 3);
    std::string_view in(reinterpret_cast<const char *>(data + 1), size - 1);
    auto [line, rest] = first_line(in);

    switch (op % 12) {
    case 0:
        patch(state, "checkout", in);
        break;
    case 1:
        patch(state, "pricing", in);
        break;
    case 2:
        patch(state, line, rest);
        break;
    case 3:
        reset(state, in);
        break;
    case 4:
        put(state, line, rest);
        break;
    case 5:
        del(state, in);
        break;
    case 6:
        bulk(state, in);
        break;
    case 7:
        load(in);
        break;
    case 8: {
        std::vector<std::string_view> probes{"www.example.com", {}};
        if (in.size() > 16) {
            probes.push_back(in.substr(in.size() - 16));
        }
        // the bytes as a snapshot's head, then as its hosts, beside the
        // starting state's other block
        Ids ids;
        std::string head = dynroute::encode_snapshot(state, 1, std::ref(ids));
        std::string hosts = dynroute::encode_snapshot_hosts(state.hosts,
                                                            std::ref(ids));
        read_any_blocks(std::string(in), hosts, ids, probes);
        read_any_blocks(head, std::string(in), ids, probes);
        break;
    }
    case 9:
        damaged_blocks(state, in);
        break;
    case 10:
        render(state, in);
        break;
    case 11:
        sequence(state, in);
        break;
    }

    return 0;
}
