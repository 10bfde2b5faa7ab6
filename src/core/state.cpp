#include "state.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "rollout.hpp"
#include "state_json.hpp"

namespace dynroute {

namespace {

// {"host": {"table": T, "target": G}, ...} written out directly: host
// names are plain ASCII (normalize_host), the rest is escaped by the
// library one string at a time.
std::string hosts_text(const HostMap &hosts)
{
    std::string out = "{";

    for (const auto &[host, e] : hosts) {
        if (out.size() > 1) {
            out += ',';
        }
        out += text(json(host));
        out += ":{\"table\":";
        out += text(json(e.table));
        out += ",\"target\":";
        out += text(json(e.target));
        out += '}';
    }

    out += '}';
    return out;
}

// j's text with "hosts" as the last member
std::string with_hosts(const json &j, const HostMap &hosts)
{
    std::string out = text(j);
    out.pop_back();
    out += ",\"hosts\":";
    out += hosts_text(hosts);
    out += '}';
    return out;
}

// The hosts of the tables of namespace ns, their names without its prefix;
// every host for ns "" when there is no stream name at all (the usual case:
// no copy).
HostMap hosts_of(const HostMap &hosts, std::string_view ns)
{
    HostMap out;

    for (const auto &[host, e] : hosts) {
        if (in_ns(e.table, ns)) {
            out.emplace(host, HostEntry{std::string(strip_ns(e.table, ns)),
                                        std::string(strip_ns(e.target, ns))});
        }
    }

    return out;
}

std::string with_hosts(const json &j, const HostMap &hosts,
                       std::string_view ns)
{
    for (const auto &h : hosts) {
        if (!in_ns(h.second.table, "")) {
            return with_hosts(j, hosts_of(hosts, ns));
        }
    }

    return with_hosts(j, ns.empty() ? hosts : HostMap());
}

json weight_json(std::uint32_t w)
{
    if (w % 100 == 0) {
        return json(w / 100);
    }
    return json(static_cast<double>(w) / 100.0);
}

std::uint32_t weight_value(const std::string &variant, const input &v)
{
    if (v.is_number()) {
        return json_weight(variant, v.get<double>());
    }

    // what the API takes ("*", the rest, is the configuration's only)
    std::string why = "the weight of variant " + dynroute::quoted(variant)
                      + " must be a number of percent from 0 to 100, like "
                        "25 or 12.5, or a string such as \"12.5%\"";

    if (v.is_string()) {
        const std::string &text = v.get_ref<const std::string &>();

        try {
            WeightSpec w = parse_weight(text);
            if (!w.rest) {
                return w.value;
            }
        } catch (const ConfigError &) {
            // said below, with what the API takes
        }

        why += ", not " + dynroute::quoted(text);
    }

    throw ApiError(400, why);
}

std::string host_key(std::string_view host)
{
    std::string key, why;

    if (!normalize_host(host, key, why)) {
        throw ApiError(400, why);
    }

    return key;
}

// ", nor a runtime service" in a refusal when services may be created
const char *nor_service(const Schema &schema)
{
    return schema.services.upstream.empty() ? "" : ", nor a runtime service";
}

// 409 when host is a runtime host of a table of the other namespace: a
// host is in one table, and a write of one namespace never takes it from
// the other
void other_ns_host(const HostMap &hosts, const std::string &host,
                   std::string_view ns)
{
    auto it = hosts.find(host);

    if (it != hosts.end() && !in_ns(it->second.table, ns)) {
        throw ApiError(409, "host " + dynroute::quoted(host)
                            + " is a runtime host of "
                            + (ns.empty() ? "stream table " : "table ")
                            + dynroute::quoted(strip_ns(it->second.table,
                                                        stream_ns))
                            + ": delete it there first");
    }
}

HostEntry host_entry(const Schema &schema, const State &state,
                     const std::string &host, const input &body,
                     std::string_view ns)
{
    if (!body.is_object()) {
        throw ApiError(400, "the entry of host " + dynroute::quoted(host)
                            + " must be a JSON object");
    }

    HostEntry e;
    bool target = false;

    for (const auto &[key, v] : body.items()) {
        if (key == "target") {
            e.target = std::string(ns) + string_field(v, "\"target\"");
            target = true;

        } else if (key == "table") {
            e.table = std::string(ns) + string_field(v, "\"table\"");

        } else {
            throw ApiError(400, "unknown field " + dynroute::quoted(key)
                                + " in the entry of host " + dynroute::quoted(host)
                                + ": \"target\" and \"table\" only");
        }
    }

    if (!target) {
        throw ApiError(400, "the entry of host " + dynroute::quoted(host)
                            + " has no \"target\"");
    }

    const char *where = ns.empty() ? "" : " in stream{}";

    if (!in_ns(e.target, ns) || !is_runtime_target(state, schema, e.target)
        || e.target.size() > 255)
    {
        throw ApiError(400, dynroute::quoted(strip_ns(e.target, ns))
                            + " is neither an upstream{} nor a "
                              "dynroute_rollout of the configuration"
                            + std::string(where)
                            + (ns.empty() ? nor_service(schema) : ""));
    }

    std::vector<const std::string *> tables;

    for (const auto &t : schema.tables) {
        if (in_ns(t, ns)) {
            tables.push_back(&t);
        }
    }

    // no "table", or "": the only table of the namespace
    if (e.table.size() <= ns.size()) {
        if (tables.size() == 1) {
            e.table = *tables[0];

        } else if (tables.empty()) {
            throw ApiError(400, "the configuration has no dynroute_table"
                                + std::string(where));

        } else {
            std::string names;
            for (const auto *t : tables) {
                names += (names.empty() ? "" : ", ")
                         + dynroute::quoted(strip_ns(*t, ns));
            }
            throw ApiError(400, "say which \"table\" host " + dynroute::quoted(host)
                                + " belongs to: " + names);
        }

    } else if (!in_ns(e.table, ns) || !schema.has_table(e.table)
               || e.table.size() > 255)
    {
        throw ApiError(400, "no dynroute_table "
                            + dynroute::quoted(strip_ns(e.table, ns))
                            + std::string(where));
    }

    return e;
}

// A time in unix ms as the answers and the state file give it: seconds,
// with the milliseconds as decimals.
double seconds(std::uint64_t ms)
{
    return static_cast<double>(ms) / 1000.0;
}

// A time in seconds (a JSON number) back to ms, or false when it is not a
// number of seconds from 0 to max_generation's range.
bool ms_of(const input &v, std::uint64_t &ms)
{
    if (!v.is_number() || !(v.get<double>() >= 0)
        || v.get<double>() > 9.0e12)
    {
        return false;
    }

    ms = static_cast<std::uint64_t>(std::llround(v.get<double>() * 1000.0));
    return true;
}

json trip_json(const GuardTrip &t)
{
    return {
        {"variant", t.variant},
        {"reason", guard_reason_name(t.reason)},
        {"detail", t.detail},
        {"at", seconds(t.at_ms)},
        {"origin", t.fleet ? "fleet" : "local"},
    };
}

json ramp_json(const RampState &r)
{
    return {
        {"state", ramp_phase_name(r.phase)},
        {"step", r.step},
        {"since", seconds(r.since_ms)},
        {"held", seconds(r.held_ms)},
        {"why", r.why},
    };
}

// a trip as a body or a state file gives it; the variant is checked by
// the caller.  `bad` says what is wrong (it throws).
GuardTrip trip_of(const input &v, const std::function<void(const std::string &)>
                                      &bad)
{
    GuardTrip t;

    if (!v.is_object()) {
        bad("\"tripped\" must be an object with \"variant\", \"reason\", "
            "\"detail\" and \"at\"");
    }

    for (const auto &[key, f] : v.items()) {
        if (key == "variant" && f.is_string() && !f.get<std::string>().empty())
        {
            t.variant = f.get<std::string>();

        } else if (key == "reason" && f.is_string()
                   && (f == "errors" || f == "latency"))
        {
            t.reason = f == "errors" ? GuardReason::errors
                                     : GuardReason::latency;

        } else if (key == "detail" && f.is_string()
                   && f.get<std::string>().size() <= 512)
        {
            t.detail = f.get<std::string>();

        } else if (key == "at" && ms_of(f, t.at_ms)) {
            /* read */

        } else if (key == "origin" && f.is_string()
                   && (f == "local" || f == "fleet"))
        {
            t.fleet = f == "fleet";

        } else {
            bad("bad \"tripped\" member " + dynroute::quoted(key)
                + ": \"variant\" (a name), \"reason\" (\"errors\" or "
                  "\"latency\"), \"detail\" (a string of 512 bytes at "
                  "most), \"at\" (unix seconds)");
        }
    }

    if (t.variant.empty()) {
        bad("\"tripped\" has no \"variant\"");
    }

    return t;
}

json rollout_json(const State &state, const RolloutInfo &info)
{
    auto it = state.rollouts.find(info.name);
    const RolloutOverride *o = it == state.rollouts.end() ? nullptr
                                                          : &it->second;
    Effective e = effective(info, o);
    json variants = json::object();
    std::string_view ns = in_ns(info.name, stream_ns) ? stream_ns
                                                      : std::string_view();

    for (std::size_t i = 0; i < info.variants.size(); i++) {
        variants[info.variants[i]] = {
            {"weight", weight_json(e.weights[i])},
            {"upstream", strip_ns(e.upstreams[i], ns)},
            {"configured_weight", weight_json(info.weights[i])},
            {"configured_upstream", strip_ns(info.upstreams[i], ns)},
        };
    }

    json r = {
        {"primary", info.variants[e.primary]},
        {"runtime", o != nullptr},
        {"variants", std::move(variants)},
    };

    if (o && o->trip.tripped()) {
        r["guard"] = {{"tripped", trip_json(o->trip)}};
    }

    if (o && o->ramp.phase != RampPhase::ready) {
        r["ramp"] = ramp_json(o->ramp);
    }

    return r;
}

}  // namespace

std::string_view guard_reason_name(GuardReason r) noexcept
{
    return r == GuardReason::latency ? "latency" : "errors";
}

std::string_view ramp_phase_name(RampPhase p) noexcept
{
    switch (p) {
    case RampPhase::running: return "running";
    case RampPhase::paused: return "paused";
    case RampPhase::aborted: return "aborted";
    case RampPhase::done: return "done";
    default: return "ready";
    }
}

std::size_t RolloutInfo::find(std::string_view variant) const noexcept
{
    for (std::size_t i = 0; i < variants.size(); i++) {
        if (variants[i] == variant) {
            return i;
        }
    }
    return static_cast<std::size_t>(-1);
}

const RolloutInfo *Schema::rollout(std::string_view name) const noexcept
{
    for (const auto &r : rollouts) {
        if (r.name == name) {
            return &r;
        }
    }
    return nullptr;
}

bool in_ns(std::string_view name, std::string_view ns) noexcept
{
    bool stream = name.substr(0, stream_ns.size()) == stream_ns;

    return ns.empty() ? !stream : stream && ns == stream_ns;
}

std::string_view strip_ns(std::string_view name, std::string_view ns)
    noexcept
{
    if (!ns.empty() && name.substr(0, ns.size()) == ns) {
        name.remove_prefix(ns.size());
    }

    return name;
}

bool Schema::has_table(std::string_view name) const noexcept
{
    for (const auto &t : tables) {
        if (t == name) {
            return true;
        }
    }
    return false;
}

bool Schema::is_target(std::string_view name) const noexcept
{
    return upstreams.find(name) != upstreams.end() || rollout(name);
}

std::uint32_t json_weight(std::string_view variant, double number)
{
    if (!(number >= 0.0 && number <= 100.0)) {
        throw ApiError(400, "the weight of variant " + dynroute::quoted(variant)
                            + " is not between 0 and 100");
    }

    double v = number * 100.0;
    double r = std::round(v);

    if (std::fabs(v - r) > 1e-6) {
        throw ApiError(400, "the weight of variant " + dynroute::quoted(variant)
                            + " has more than two decimals");
    }

    return static_cast<std::uint32_t>(r);
}

Effective effective(const RolloutInfo &info, const RolloutOverride *o)
{
    Effective e{info.weights, info.upstreams, info.primary};

    if (o == nullptr) {
        return e;
    }

    for (std::size_t i = 0; i < info.variants.size(); i++) {
        auto w = o->weights.find(info.variants[i]);
        if (w != o->weights.end()) {
            e.weights[i] = w->second;
        }

        auto u = o->upstreams.find(info.variants[i]);
        if (u != o->upstreams.end()) {
            e.upstreams[i] = u->second;
        }
    }

    if (!o->primary.empty()) {
        std::size_t p = info.find(o->primary);
        if (p != static_cast<std::size_t>(-1)) {
            e.primary = p;
        }
    }

    return e;
}

std::string dump_state(const State &state, bool with_hosts)
{
    json rollouts = json::object();

    for (const auto &[name, o] : state.rollouts) {
        json r = json::object();

        if (!o.weights.empty()) {
            json w = json::object();
            for (const auto &[variant, value] : o.weights) {
                w[variant] = weight_json(value);
            }
            r["weights"] = std::move(w);
        }

        if (!o.upstreams.empty()) {
            r["upstreams"] = o.upstreams;
        }

        if (!o.primary.empty()) {
            r["primary"] = o.primary;
        }

        if (o.trip.tripped()) {
            r["guard"] = {{"tripped", trip_json(o.trip)}};
        }

        if (o.ramp.phase != RampPhase::ready) {
            r["ramp"] = ramp_json(o.ramp);
        }

        rollouts[name] = std::move(r);
    }

    json j = {
        {"version", 2},
        {"generation", state.generation},
        {"draining", state.draining},
        {"rollouts", std::move(rollouts)},
    };

    if (state.fleet.set) {
        j["fleet"] = {{"revision", state.fleet.revision},
                      {"stale", state.fleet.stale}};
    }

    dump_members(state, j);

    return with_hosts ? dynroute::with_hosts(j, state.hosts) : text(j);
}

namespace {

// a state file's rollout: its weights, upstreams and primary
RolloutOverride load_rollout(const std::string &name, const input &r)
{
    if (!r.is_object()) {
        corrupt("rollout " + dynroute::quoted(name) + " is not an object");
    }

    RolloutOverride o;
    const input &w = member(r, "weights", &input::is_object, "an object");
    const input &u = member(r, "upstreams", &input::is_object, "an object");
    const input &p = member(r, "primary", &input::is_string, "a string");

    try {
        if (!w.is_null()) {
            for (const auto &[variant, v] : w.items()) {
                o.weights[variant] = weight_value(variant, v);
            }
        }
    } catch (const ApiError &e) {
        corrupt(e.what());
    }

    if (!u.is_null()) {
        for (const auto &[variant, v] : u.items()) {
            if (!v.is_string()) {
                corrupt("an upstream of rollout " + dynroute::quoted(name)
                        + " is not a string");
            }
            o.upstreams[variant] = v.get<std::string>();
        }
    }

    if (!p.is_null()) {
        o.primary = p.get<std::string>();
    }

    const input &g = member(r, "guard", &input::is_object, "an object");

    if (!g.is_null()) {
        const input &t = member(g, "tripped", &input::is_object, "an object");

        if (!t.is_null()) {
            o.trip = trip_of(t, [&](const std::string &why) {
                corrupt("the guard of rollout " + dynroute::quoted(name)
                        + ": " + why);
            });
        }
    }

    const input &ramp = member(r, "ramp", &input::is_object, "an object");

    if (!ramp.is_null()) {
        const input &st = member(ramp, "state", &input::is_string,
                                 "a string");
        const input &step = member(ramp, "step", &input::is_number_unsigned,
                                   "a number");
        const input &why = member(ramp, "why", &input::is_string, "a string");
        bool found = false;

        for (std::size_t i = 0; i < ramp_phases && !st.is_null(); i++) {
            if (st == ramp_phase_name(static_cast<RampPhase>(i))) {
                o.ramp.phase = static_cast<RampPhase>(i);
                found = true;
            }
        }

        if (!found || step.is_null() || step.get<std::uint64_t>() > 10000
            || !ms_of(ramp.value("since", input()), o.ramp.since_ms)
            || !ms_of(ramp.value("held", input()), o.ramp.held_ms))
        {
            corrupt("the ramp of rollout " + dynroute::quoted(name)
                    + " needs \"state\", \"step\", \"since\" and "
                      "\"held\"");
        }

        o.ramp.step = static_cast<std::uint32_t>(step.get<std::uint64_t>());

        if (!why.is_null()) {
            o.ramp.why = why.get<std::string>();
        }
    }

    return o;
}

// a state file's runtime hosts, into s.hosts
void load_hosts(const input &hosts, State &s)
{
    for (const auto &[host, h] : hosts.items()) {
        std::string key, why;

        if (!normalize_host(host, key, why)) {
            corrupt(why);
        }

        if (!h.is_object() || !h.contains("table") || !h.contains("target")
            || !h["table"].is_string() || !h["target"].is_string())
        {
            corrupt("host " + dynroute::quoted(host)
                    + " has no table and target");
        }

        s.hosts[key] = {h["table"].get<std::string>(),
                        h["target"].get<std::string>()};
    }
}

}  // namespace

State load_state(std::string_view text, const Schema &schema,
                 std::vector<std::string> &notices)
{
    input j;

    try {
        j = parse_object(text, "the state file");
    } catch (const ApiError &e) {
        throw ConfigError(e.what());
    }

    const input &version = member(j, "version", &input::is_number_unsigned,
                                 "a version number");
    if (version.is_null() || version.get<std::uint64_t>() < 1
        || version.get<std::uint64_t>() > 2)
    {
        corrupt("no \"version\": 1 or 2");
    }

    State s;
    const input &gen = member(j, "generation", &input::is_number_unsigned,
                             "a number");
    const input &draining = member(j, "draining", &input::is_boolean,
                                  "true or false");
    s.generation = gen.is_null() ? 0 : gen.get<std::uint64_t>();
    if (s.generation > max_generation) {
        corrupt("\"generation\" is over " + std::to_string(max_generation));
    }
    s.draining = draining.is_null() ? false : draining.get<bool>();

    const input &fleet = member(j, "fleet", &input::is_object, "an object");
    if (!fleet.is_null()) {
        const input &rev = member(fleet, "revision",
                                  &input::is_number_unsigned, "a number");
        const input &stale = member(fleet, "stale", &input::is_boolean,
                                    "true or false");
        s.fleet.set = true;
        s.fleet.revision = rev.is_null() ? 0 : rev.get<std::uint64_t>();
        s.fleet.stale = stale.is_null() ? false : stale.get<bool>();
    }

    const input &rollouts = member(j, "rollouts", &input::is_object,
                                  "an object");
    if (!rollouts.is_null()) {
        for (const auto &[name, r] : rollouts.items()) {
            s.rollouts[name] = load_rollout(name, r);
        }
    }

    const input &hosts = member(j, "hosts", &input::is_object, "an object");
    if (!hosts.is_null()) {
        load_hosts(hosts, s);
    }

    load_members(j, schema, s);
    prune(s, schema, notices);

    return s;
}

void prune(State &state, const Schema &schema,
           std::vector<std::string> &notices)
{
    // first: a host or a flip whose service goes goes too
    prune_members(state, schema, notices);

    for (auto it = state.rollouts.begin(); it != state.rollouts.end(); ) {
        const std::string &name = it->first;
        RolloutOverride &o = it->second;
        const RolloutInfo *info = schema.rollout(name);

        if (info == nullptr) {
            notices.push_back("dropped the runtime state of rollout "
                              + dynroute::quoted(name) + ": no longer configured");
            it = state.rollouts.erase(it);
            continue;
        }

        if (!o.weights.empty()) {
            bool same = o.weights.size() == info->variants.size();
            std::uint32_t sum = 0;

            for (const auto &[variant, w] : o.weights) {
                same = same && info->find(variant) != std::size_t(-1);
                sum += w;
            }

            if (!same || sum != weight_scale) {
                notices.push_back("dropped the runtime weights of rollout "
                                  + dynroute::quoted(name)
                                  + ": its variants changed");
                o.weights.clear();
            }
        }

        for (auto u = o.upstreams.begin(); u != o.upstreams.end(); ) {
            if (info->find(u->first) == std::size_t(-1)) {
                notices.push_back("dropped the runtime upstream of variant "
                                  + dynroute::quoted(u->first) + " of rollout "
                                  + dynroute::quoted(name)
                                  + ": no longer configured");
                u = o.upstreams.erase(u);

            } else if (schema.upstreams.find(u->second)
                           == schema.upstreams.end()
                       && state.services.find(u->second)
                              == state.services.end())
            {
                notices.push_back("dropped the runtime upstream "
                                  + dynroute::quoted(u->second) + " of variant "
                                  + dynroute::quoted(u->first) + " of rollout "
                                  + dynroute::quoted(name)
                                  + ": no such upstream{} any more");
                u = o.upstreams.erase(u);

            } else {
                ++u;
            }
        }

        if (!o.primary.empty() && info->find(o.primary) == std::size_t(-1)) {
            notices.push_back("dropped the runtime primary " + dynroute::quoted(o.primary)
                              + " of rollout " + dynroute::quoted(name)
                              + ": no such variant any more");
            o.primary.clear();
        }

        if (o.trip.tripped() && info->find(o.trip.variant) == std::size_t(-1))
        {
            notices.push_back("dropped the guard's trip of variant "
                              + dynroute::quoted(o.trip.variant)
                              + " of rollout " + dynroute::quoted(name)
                              + ": no such variant any more");
            o.trip = GuardTrip();
        }

        if (o.empty()) {
            it = state.rollouts.erase(it);
        } else {
            ++it;
        }
    }

    for (auto it = state.hosts.begin(); it != state.hosts.end(); ) {
        const HostEntry &e = it->second;

        if (!schema.has_table(e.table)) {
            notices.push_back("dropped runtime host " + dynroute::quoted(it->first)
                              + ": no dynroute_table " + dynroute::quoted(e.table)
                              + " any more");
            it = state.hosts.erase(it);

        } else if (!is_runtime_target(state, schema, e.target)) {
            notices.push_back("dropped runtime host " + dynroute::quoted(it->first)
                              + ": its target " + dynroute::quoted(e.target)
                              + " is no longer configured");
            it = state.hosts.erase(it);

        } else {
            ++it;
        }
    }
}

namespace {

// the index of a rollout's variant, or a 400
std::size_t variant_of(const RolloutInfo &info, const std::string &v)
{
    std::size_t i = info.find(v);

    if (i == std::size_t(-1)) {
        throw ApiError(400, "rollout " + dynroute::quoted(info.name)
                            + " has no variant " + dynroute::quoted(v));
    }

    return i;
}

// PATCH's "weights": every variant's, summing to 100 %
void patch_weights(const RolloutInfo &info, const input &v,
                   RolloutOverride &o)
{
    if (!v.is_object() || v.empty()) {
        throw ApiError(400, "\"weights\" must be an object of "
                            "variants and percents");
    }

    std::vector<std::uint32_t> w(info.variants.size(), 0);
    std::uint32_t sum = 0;

    for (const auto &[variant, value] : v.items()) {
        std::size_t i = variant_of(info, variant);
        w[i] = weight_value(variant, value);
        sum += w[i];
    }

    if (sum != weight_scale) {
        throw ApiError(400, "the weights sum to " + format_weight(sum)
                            + ", not 100% (a variant left out gets 0%)");
    }

    o.weights.clear();
    for (std::size_t i = 0; i < w.size(); i++) {
        o.weights[info.variants[i]] = w[i];
    }
}

// PATCH's "upstreams": some variants', each an upstream{} of the
// configuration (its configured one drops the override)
void patch_upstreams(const Schema &schema, const State &state,
                     const RolloutInfo &info, const input &v,
                     RolloutOverride &o)
{
    if (!v.is_object() || v.empty()) {
        throw ApiError(400, "\"upstreams\" must be an object of "
                            "variants and upstream names");
    }

    for (const auto &[variant, value] : v.items()) {
        std::size_t i = variant_of(info, variant);
        const std::string &u = string_field(
            value, "the upstream of variant " + dynroute::quoted(variant));

        if (!in_ns(u, "")
            || (schema.upstreams.find(u) == schema.upstreams.end()
                && state.services.find(u) == state.services.end()))
        {
            throw ApiError(400, dynroute::quoted(u)
                                + " is not an upstream{} of the "
                                  "configuration" + nor_service(schema));
        }

        if (u == info.upstreams[i]) {
            o.upstreams.erase(variant);
        } else {
            o.upstreams[variant] = u;
        }
    }
}

}  // namespace

void patch_rollout(State &state, const Schema &schema, std::string_view name,
                   std::string_view body)
{
    const RolloutInfo *info = schema.rollout(name);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(name));
    }

    input j = parse_object(body, "the request body");

    if (j.empty()) {
        throw ApiError(400, "nothing to change: send \"weights\", "
                            "\"upstreams\" or \"primary\"");
    }

    auto found = state.rollouts.find(info->name);
    RolloutOverride o = found == state.rollouts.end() ? RolloutOverride()
                                                      : found->second;

    // an operator's write clears a trip; the fleet's agent replays one
    o.trip = GuardTrip();

    bool stream = in_ns(info->name, stream_ns);

    for (const auto &[key, v] : j.items()) {
        if (stream && (key == "upstreams" || key == "guard")) {
            throw ApiError(400, "a stream rollout changes its \"weights\" "
                                "and its \"primary\" at run time, not its "
                                + dynroute::quoted(key));
        }

        if (key == "weights") {
            patch_weights(*info, v, o);

            if (o.ramp.phase == RampPhase::running) {
                o.ramp.phase = RampPhase::paused;
                o.ramp.why = "paused: the weights were written";
            }

        } else if (key == "guard") {
            const input *t = v.is_object() && v.size() == 1
                                 && v.contains("tripped")
                                 ? &v["tripped"] : nullptr;

            if (t == nullptr) {
                throw ApiError(400, "\"guard\" must be {\"tripped\": "
                                    "{...}}, as the rollout's answer shows "
                                    "it");
            }

            o.trip = trip_of(*t, [](const std::string &why) {
                throw ApiError(400, why);
            });
            o.trip.fleet = true;
            variant_of(*info, o.trip.variant);

            if (o.ramp.phase == RampPhase::running
                || o.ramp.phase == RampPhase::paused)
            {
                o.ramp.phase = RampPhase::aborted;
                o.ramp.why = o.trip.detail;
            }

        } else if (key == "upstreams") {
            patch_upstreams(schema, state, *info, v, o);

        } else if (key == "primary") {
            const std::string &p = string_field(v, "\"primary\"");
            std::size_t i = variant_of(*info, p);
            o.primary = (i == info->primary) ? std::string() : p;

        } else {
            throw ApiError(400, "unknown field " + dynroute::quoted(key)
                                + ": \"weights\", \"upstreams\", "
                                  "\"primary\" or \"guard\"");
        }
    }

    if (!o.weights.empty() && effective(*info, nullptr).weights
        == effective(*info, &o).weights)
    {
        o.weights.clear();
    }

    if (o.empty()) {
        state.rollouts.erase(info->name);
    } else {
        state.rollouts[info->name] = std::move(o);
    }
}

void reset_rollout(State &state, const Schema &schema, std::string_view name)
{
    const RolloutInfo *info = schema.rollout(name);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(name));
    }

    state.rollouts.erase(info->name);
}

void trip_guard(State &state, const Schema &schema, std::string_view rollout,
                std::string_view variant, GuardReason reason,
                std::string_view detail, std::uint64_t at_ms)
{
    const RolloutInfo *info = schema.rollout(rollout);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(rollout));
    }

    std::size_t v = info->find(variant);

    if (v == std::size_t(-1)) {
        throw ApiError(404, "rollout " + dynroute::quoted(rollout)
                            + " has no variant " + dynroute::quoted(variant));
    }

    RolloutOverride &o = state.rollouts[info->name];
    Effective e = effective(*info, &o);

    if (v == e.primary) {
        throw ApiError(409, "variant " + dynroute::quoted(variant)
                            + " is the primary of rollout "
                            + dynroute::quoted(rollout));
    }

    e.weights[e.primary] += e.weights[v];
    e.weights[v] = 0;

    o.weights.clear();
    for (std::size_t i = 0; i < info->variants.size(); i++) {
        o.weights[info->variants[i]] = e.weights[i];
    }

    if (effective(*info, nullptr).weights == e.weights) {
        o.weights.clear();
    }

    o.trip.variant = std::string(variant);
    o.trip.reason = reason;
    o.trip.fleet = false;
    o.trip.at_ms = at_ms;
    o.trip.detail = std::string(detail);

    if (o.ramp.phase == RampPhase::running
        || o.ramp.phase == RampPhase::paused)
    {
        o.ramp.phase = RampPhase::aborted;
        o.ramp.why = o.trip.detail;
    }
}

bool put_host(State &state, const Schema &schema, std::string_view host,
              std::string_view body, std::string_view ns)
{
    std::string key = host_key(host);
    HostEntry e = host_entry(schema, state, key,
                             parse_object(body, "the request body"), ns);

    other_ns_host(state.hosts, key, ns);

    auto [it, added] = state.hosts.try_emplace(key, e);

    if (!added) {
        it->second = std::move(e);
    }

    return added;
}

void delete_host(State &state, std::string_view host, std::string_view ns)
{
    std::string key = host_key(host);
    auto it = state.hosts.find(key);

    if (it == state.hosts.end() || !in_ns(it->second.table, ns)) {
        throw ApiError(404, "no runtime host " + dynroute::quoted(key)
                            + (ns.empty() ? "" : " in stream{}"));
    }

    state.hosts.erase(it);
}

void put_fleet(State &state, std::string_view body)
{
    input j = parse_object(body, "the request body");
    FleetStatus f;
    bool revision = false;

    for (const auto &[key, v] : j.items()) {
        if (key == "revision") {
            if (!v.is_number_unsigned()) {
                throw ApiError(400, "\"revision\" must be a revision "
                                    "number (0 or more)");
            }
            f.revision = v.get<std::uint64_t>();
            revision = true;

        } else if (key == "stale") {
            if (!v.is_boolean()) {
                throw ApiError(400, "\"stale\" must be true or false");
            }
            f.stale = v.get<bool>();

        } else {
            throw ApiError(400, "unknown field " + dynroute::quoted(key)
                                + ": \"revision\" and \"stale\" only");
        }
    }

    if (!revision) {
        throw ApiError(400, "the body has no \"revision\"");
    }

    f.set = true;
    state.fleet = f;
}

std::string render_fleet(const State &state)
{
    if (!state.fleet.set) {
        throw ApiError(404, "no fleet agent has reported to this node");
    }

    return text({{"generation", state.generation},
                 {"revision", state.fleet.revision},
                 {"stale", state.fleet.stale}});
}

BulkResult patch_hosts(State &state, const Schema &schema,
                       std::string_view body, std::string_view ns)
{
    input j = parse_object(body, "the request body");
    HostMap hosts = state.hosts;
    BulkResult r;

    for (const auto &[host, v] : j.items()) {
        std::string key = host_key(host);
        auto at = hosts.find(key);

        if (v.is_null()) {
            if (at == hosts.end() || !in_ns(at->second.table, ns)) {
                throw ApiError(404, "no runtime host " + dynroute::quoted(key)
                                    + (ns.empty() ? "" : " in stream{}"));
            }
            hosts.erase(at);
            r.removed++;
            continue;
        }

        HostEntry e = host_entry(schema, state, key, v, ns);
        other_ns_host(hosts, key, ns);

        auto [it, added] = hosts.try_emplace(key);
        it->second = std::move(e);
        (added ? r.added : r.replaced)++;
    }

    state.hosts.swap(hosts);

    return r;
}

std::string render_state(const State &state, const Schema &schema,
                         std::string_view zone, std::string_view ns)
{
    json tables = json::object();
    std::map<std::string, std::size_t> counts;

    for (const auto &h : state.hosts) {
        counts[h.second.table]++;
    }

    for (std::size_t i = 0; i < schema.tables.size(); i++) {
        if (!in_ns(schema.tables[i], ns)) {
            continue;
        }

        std::string name(strip_ns(schema.tables[i], ns));

        tables[name] = {
            {"rules", schema.table_rules[i]},
            {"hosts", counts[schema.tables[i]]},
        };
        if (i < schema.table_keys.size() && !schema.table_keys[i].empty()) {
            tables[name]["key"] = schema.table_keys[i];
        }
    }

    json rollouts = json::object();
    for (const auto &info : schema.rollouts) {
        if (in_ns(info.name, ns)) {
            rollouts[std::string(strip_ns(info.name, ns))] =
                rollout_json(state, info);
        }
    }

    // what a flip may name (a fleet's tools check changes against it)
    json upstreams = json::array();
    for (const auto &u : schema.upstreams) {
        if (in_ns(u, ns)) {
            upstreams.push_back(strip_ns(u, ns));
        }
    }

    json j = {
        {"generation", state.generation},
        {"draining", state.draining},
        {"zone", std::string(zone)},
        {"tables", std::move(tables)},
        {"rollouts", std::move(rollouts)},
        {"upstreams", std::move(upstreams)},
    };

    if (state.fleet.set) {
        j["fleet"] = {{"revision", state.fleet.revision},
                      {"stale", state.fleet.stale}};
    }

    return with_hosts(j, state.hosts, ns);
}

std::string render_rollout(const State &state, const Schema &schema,
                           std::string_view name)
{
    const RolloutInfo *info = schema.rollout(name);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(name));
    }

    json j = rollout_json(state, *info);
    j["name"] = strip_ns(info->name, stream_ns);
    j["generation"] = state.generation;

    return text(j);
}

std::string render_rollout_change(const State &state, const Schema &schema,
                                  std::string_view name)
{
    const RolloutInfo *info = schema.rollout(name);

    if (info == nullptr) {
        throw ApiError(404, "no rollout " + dynroute::quoted(name));
    }

    json r = rollout_json(state, *info);
    r["name"] = strip_ns(info->name, stream_ns);

    json j = {{"generation", state.generation}, {"rollout", std::move(r)}};
    return text(j);
}

std::string render_hosts(const State &state, std::string_view ns)
{
    json j = {{"generation", state.generation}};
    return with_hosts(j, state.hosts, ns);
}

std::string render_host(const State &state, std::string_view host,
                        std::string_view ns)
{
    std::string key = host_key(host);
    auto it = state.hosts.find(key);

    if (it == state.hosts.end() || !in_ns(it->second.table, ns)) {
        throw ApiError(404, "no runtime host " + dynroute::quoted(key)
                            + (ns.empty() ? "" : " in stream{}"));
    }

    json j = {
        {"host", key},
        {"table", strip_ns(it->second.table, ns)},
        {"target", strip_ns(it->second.target, ns)},
        {"generation", state.generation},
    };
    return text(j);
}

std::string render_generation(const State &state)
{
    json j = {{"generation", state.generation}, {"draining", state.draining}};
    return text(j);
}

std::string render_bulk(const State &state, const BulkResult &r)
{
    json j = {
        {"generation", state.generation},
        {"added", r.added},
        {"replaced", r.replaced},
        {"removed", r.removed},
    };
    return text(j);
}

std::string render_error(std::string_view message)
{
    json j = {{"error", std::string(message)}};
    return text(j);
}

}  // namespace dynroute
