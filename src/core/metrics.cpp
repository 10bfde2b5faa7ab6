// Metrics: see metrics.hpp.
#include "metrics.hpp"
#include "health_check.hpp"

#include <nlohmann/json.hpp>

#include "rollout.hpp"

namespace dynroute::metrics {

namespace {

const char *const class_names[classes] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// "0.005" for 5 ms: the text format's seconds
std::string seconds(std::uint64_t ms)
{
    std::string out = std::to_string(ms / 1000);
    std::uint64_t frac = ms % 1000;

    if (frac) {
        char buf[5] = {'.', char('0' + frac / 100), char('0' + frac / 10 % 10),
                       char('0' + frac % 10), 0};
        std::string f(buf);

        while (f.back() == '0') {
            f.pop_back();
        }

        out += f;
    }

    return out;
}

// a weight in 0.01 % as a ratio: 2500 -> "0.25"
std::string ratio(std::uint32_t w)
{
    std::string out = std::to_string(w / 10000);
    std::uint32_t frac = w % 10000;

    if (frac) {
        std::string f = std::to_string(frac);
        f.insert(0, 4 - f.size(), '0');

        while (f.back() == '0') {
            f.pop_back();
        }

        out += '.' + f;
    }

    return out;
}

// name="value" pairs of one sample, in order
using Labels = std::vector<std::pair<const char *, std::string>>;

class Writer {
public:
    void family(const char *name, const char *type, const char *help)
    {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // name{k="v",...} value
    void sample(std::string_view name, const Labels &labels,
                std::string_view value)
    {
        out_ += name;

        if (labels.size()) {
            char sep = '{';

            for (const auto &[k, v] : labels) {
                out_ += sep;
                out_ += k;
                out_ += "=\"";
                out_ += escape_label(v);
                out_ += '"';
                sep = ',';
            }

            out_ += '}';
        }

        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }

    // a family of one sample without labels
    void single(const char *name, const char *type, const char *help,
                std::string_view value)
    {
        family(name, type, help);
        sample(name, {}, value);
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace

std::size_t latency_bucket(std::uint64_t ms) noexcept
{
    std::size_t i = 0;

    while (i < bucket_ms.size() && ms > bucket_ms[i]) {
        i++;
    }

    return i;
}

int stream_status_index(unsigned status) noexcept
{
    for (std::size_t i = 0; i < stream_statuses.size(); i++) {
        if (stream_statuses[i] == status) {
            return int(i);
        }
    }

    return -1;
}

std::size_t session_bucket(std::uint64_t ms) noexcept
{
    std::size_t i = 0;

    while (i < session_bucket_ms.size() && ms > session_bucket_ms[i]) {
        i++;
    }

    return i;
}

int status_class(unsigned status) noexcept
{
    return (status >= 100 && status < 600) ? int(status / 100) - 1 : -1;
}

std::uint64_t inflight(std::uint64_t picked, std::uint64_t released) noexcept
{
    return picked > released ? picked - released : 0;
}

bool cell_may_free(std::uint64_t picked, std::uint64_t released,
                   std::uint64_t retired_ms, std::uint64_t now_ms) noexcept
{
    return retired_ms != 0 && picked == released && now_ms >= retired_ms
           && now_ms - retired_ms >= retire_ms;
}

const char *state_name(ServerState s) noexcept
{
    switch (s) {
    case ServerState::up: return "up";
    case ServerState::down: return "down";
    case ServerState::drain: return "drain";
    case ServerState::failed: return "failed";
    case ServerState::removed: return "removed";
    case ServerState::unhealthy: return "unhealthy";
    }

    return "up";
}

ServerState server_state(bool removed, bool down, bool drain,
                         std::uint64_t disabled_until,
                         std::uint64_t now_s) noexcept
{
    if (removed) {
        return ServerState::removed;
    }

    if (down) {
        return ServerState::down;
    }

    if (drain) {
        return ServerState::drain;
    }

    return disabled_until > now_s ? ServerState::failed : ServerState::up;
}

ServerState server_state(bool removed, bool down, bool drain,
                         std::uint64_t disabled_until, std::uint64_t now_s,
                         std::uint64_t health) noexcept
{
    ServerState s = server_state(removed, down, drain, disabled_until, now_s);

    if ((s == ServerState::up || s == ServerState::failed)
        && health::down(health)) {
        return ServerState::unhealthy;
    }

    return s;
}

std::string escape_label(std::string_view v)
{
    std::string out;
    out.reserve(v.size());

    for (char c : v) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        default: out += c;
        }
    }

    return out;
}

namespace {

std::string n(std::uint64_t v)
{
    return std::to_string(v);
}

// the tables' families, and the runtime hosts
void render_tables(Writer &w, const Snapshot &s)
{
    if (s.per_rule) {
        w.family("dynroute_requests_total", "counter",
                 "Requests routed, by table and the rule that matched "
                 "(\"(runtime)\": a runtime host).");

        for (const auto &t : s.tables) {
            for (const auto &r : t.per_rule) {
                w.sample("dynroute_requests_total",
                         {{"table", t.name}, {"rule", r.rule}}, n(r.requests));
            }

            w.sample("dynroute_requests_total",
                     {{"table", t.name}, {"rule", "(runtime)"}},
                     n(t.values[t_runtime]));
        }
    }

    struct TableFamily {
        const char *name, *type, *help;
        std::size_t slot;
    };

    static const TableFamily table_families[] = {
        {"dynroute_table_requests_total", "counter",
         "Requests a table decided for, 421s included.", t_requests},
        {"dynroute_misdirected_requests_total", "counter",
         "Requests no rule of the table matched, answered 421.",
         t_misdirected},
        {"dynroute_regex_errors_total", "counter",
         "Regex matches that failed (the default rule was used).",
         t_regex_errors},
    };

    for (const auto &f : table_families) {
        w.family(f.name, f.type, f.help);

        for (const auto &t : s.tables) {
            w.sample(f.name, {{"table", t.name}}, n(t.values[f.slot]));
        }
    }

    w.family("dynroute_table_rules", "gauge",
             "Rules of the table in the configuration.");

    for (const auto &t : s.tables) {
        w.sample("dynroute_table_rules", {{"table", t.name}}, n(t.rules));
    }

    w.single("dynroute_runtime_hosts", "gauge",
             "Hosts added through the runtime API.", n(s.runtime_hosts));
}

// the rollouts' families, with samples for each variant
void render_variants(Writer &w, const Snapshot &s)
{
    // f(variant, labels) for every variant of every rollout; the labels
    // name both
    auto each_variant = [&s](auto f) {
        for (const auto &ro : s.rollouts) {
            for (const auto &v : ro.variants) {
                f(v, Labels{{"rollout", ro.name}, {"variant", v.name}});
            }
        }
    };
    auto with = [](Labels l, const char *name, const std::string &value) {
        l.emplace_back(name, value);
        return l;
    };

    w.family("dynroute_variant_weight_ratio", "gauge",
             "A variant's live weight, 0 to 1, and its live upstream.");

    each_variant([&](const VariantStats &v, const Labels &l) {
        w.sample("dynroute_variant_weight_ratio",
                 with(l, "upstream", v.upstream), ratio(v.weight));
    });

    w.family("dynroute_variant_requests_total", "counter",
             "Requests a variant served, by why it was chosen (fallback: "
             "the primary after the chosen variant failed).");

    each_variant([&](const VariantStats &v, const Labels &l) {
        for (std::size_t i = 0; i < reasons; i++) {
            std::string why(Rollout::reason_name(
                                static_cast<Rollout::Reason>(i)));
            w.sample("dynroute_variant_requests_total", with(l, "reason", why),
                     n(v.values[v_requests + i]));
        }
    });

    w.family("dynroute_variant_responses_total", "counter",
             "Responses to requests a variant served, by status class.");

    each_variant([&](const VariantStats &v, const Labels &l) {
        for (std::size_t i = 0; i < classes; i++) {
            w.sample("dynroute_variant_responses_total",
                     with(l, "code", class_names[i]),
                     n(v.values[v_responses + i]));
        }
    });

    w.family("dynroute_variant_upstream_response_seconds", "histogram",
             "Upstream response time of the requests a variant served, "
             "summed over the tries.");

    each_variant([&](const VariantStats &v, const Labels &l) {
        std::uint64_t cumulative = 0;

        for (std::size_t i = 0; i < buckets; i++) {
            cumulative += v.values[v_buckets + i];

            w.sample("dynroute_variant_upstream_response_seconds_bucket",
                     with(l, "le", i < bucket_ms.size()
                                   ? seconds(bucket_ms[i]) : "+Inf"),
                     n(cumulative));
        }

        w.sample("dynroute_variant_upstream_response_seconds_sum", l,
                 seconds(v.values[v_sum_ms]));
        w.sample("dynroute_variant_upstream_response_seconds_count", l,
                 n(cumulative));
    });

    w.family("dynroute_variant_fallbacks_total", "counter",
             "Requests a variant was chosen for that its rollout's primary "
             "served (dynroute_balancer fallback=primary).");

    each_variant([&](const VariantStats &v, const Labels &l) {
        w.sample("dynroute_variant_fallbacks_total", l,
                 n(v.values[v_fallbacks]));
    });

    bool guarded = false;

    each_variant([&](const VariantStats &v, const Labels &) {
        guarded = guarded || v.guarded;
    });

    if (!guarded) {
        return;
    }

    w.family("dynroute_guard_trips_total", "counter",
             "Times a rollout's guard took a variant to 0%, by why.");

    each_variant([&](const VariantStats &v, const Labels &l) {
        if (!v.guarded) {
            return;
        }
        w.sample("dynroute_guard_trips_total", with(l, "reason", "errors"),
                 n(v.guard[g_trips]));
        w.sample("dynroute_guard_trips_total", with(l, "reason", "latency"),
                 n(v.guard[g_trips + 1]));
    });
}

const char *kind_name(GroupKind k)
{
    return k == GroupKind::service ? "service" : "upstream";
}

// the groups' families: a series per server of each group, retired ones
// included until their cells are freed
void render_groups(Writer &w, const Snapshot &s)
{
    // f(server, labels) for every server of every group; the labels name
    // both
    auto each_server = [&s](auto f) {
        for (const auto &g : s.groups) {
            for (const auto &sv : g.servers) {
                f(sv, Labels{{"upstream", g.name}, {"server", sv.name}});
            }
        }
    };
    auto with = [](Labels l, const char *name, const std::string &value) {
        l.emplace_back(name, value);
        return l;
    };

    w.family("dynroute_server_requests_total", "counter",
             "Tries handed to a server of a group, each try of "
             "proxy_next_upstream counted.");

    each_server([&](const ServerStats &sv, const Labels &l) {
        w.sample("dynroute_server_requests_total", l,
                 n(sv.values[s_picked]));
    });

    w.family("dynroute_server_responses_total", "counter",
             "Responses to a server's tries, by status class.");

    each_server([&](const ServerStats &sv, const Labels &l) {
        for (std::size_t i = 0; i < classes; i++) {
            w.sample("dynroute_server_responses_total",
                     with(l, "code", class_names[i]),
                     n(sv.values[s_responses + i]));
        }
    });

    w.family("dynroute_server_fails_total", "counter",
             "Tries of a server that failed, as nginx counts failures for "
             "max_fails.");

    each_server([&](const ServerStats &sv, const Labels &l) {
        w.sample("dynroute_server_fails_total", l, n(sv.values[s_fails]));
    });

    w.family("dynroute_server_inflight", "gauge",
             "Tries of a server in flight: handed out, not given back yet.");

    each_server([&](const ServerStats &sv, const Labels &l) {
        w.sample("dynroute_server_inflight", l,
                 n(inflight(sv.values[s_picked], sv.values[s_released])));
    });

    w.family("dynroute_server_state", "gauge",
             "A server's state: 1 for its one state of up, down, drain, "
             "failed and removed, 0 for the others.");

    each_server([&](const ServerStats &sv, const Labels &l) {
        for (std::size_t i = 0; i < server_states; i++) {
            auto st = static_cast<ServerState>(i);
            w.sample("dynroute_server_state", with(l, "state", state_name(st)),
                     st == sv.state ? "1" : "0");
        }
    });

    bool checked = false;

    for (const auto &g : s.groups) {
        checked = checked || g.checked;
    }

    if (checked) {
        w.family("dynroute_server_checks_total", "counter",
                 "Active health checks (dynroute_health_check) of a server, "
                 "by result.");
    }

    for (const auto &g : s.groups) {
        if (!g.checked) {
            continue;
        }

        for (const auto &sv : g.servers) {
            Labels l{{"upstream", g.name}, {"server", sv.name}};
            std::uint64_t checks = sv.values[s_checks];
            std::uint64_t failed = sv.values[s_check_failures];

            w.sample("dynroute_server_checks_total", with(l, "result", "pass"),
                     n(checks > failed ? checks - failed : 0));
            w.sample("dynroute_server_checks_total", with(l, "result", "fail"),
                     n(failed));
        }
    }

    w.family("dynroute_upstream_servers", "gauge",
             "Servers in a group's list (an upstream with dynroute_servers "
             "or a runtime service); removed ones left out.");

    for (const auto &g : s.groups) {
        std::size_t listed = 0;

        for (const auto &sv : g.servers) {
            listed += sv.state != ServerState::removed;
        }

        w.sample("dynroute_upstream_servers", {{"upstream", g.name}},
                 n(listed));
    }
}

// One scope of stream sessions (tables, rules or variants): connections by
// status, bytes each way, the session time's histogram.
using SessionRows =
    std::vector<std::pair<Labels, const std::uint64_t *>>;

void render_sessions(Writer &w, const std::string &prefix, const char *what,
                     const SessionRows &rows)
{
    auto with = [](Labels l, const char *name, const std::string &value) {
        l.emplace_back(name, value);
        return l;
    };

    std::string name = prefix + "_connections_total";
    std::string help = "Stream sessions " + std::string(what)
                       + " that ended, by their status ($status).";
    w.family(name.c_str(), "counter", help.c_str());

    for (const auto &[l, v] : rows) {
        for (std::size_t i = 0; i < stream_statuses.size(); i++) {
            w.sample(name, with(l, "status",
                                std::to_string(stream_statuses[i])),
                     n(v[x_status + i]));
        }
    }

    name = prefix + "_received_bytes_total";
    help = "Bytes received from the clients of the stream sessions "
           + std::string(what) + ".";
    w.family(name.c_str(), "counter", help.c_str());

    for (const auto &[l, v] : rows) {
        w.sample(name, l, n(v[x_received]));
    }

    name = prefix + "_sent_bytes_total";
    help = "Bytes sent to the clients of the stream sessions "
           + std::string(what) + ".";
    w.family(name.c_str(), "counter", help.c_str());

    for (const auto &[l, v] : rows) {
        w.sample(name, l, n(v[x_sent]));
    }

    name = prefix + "_session_seconds";
    help = "How long the stream sessions " + std::string(what)
           + " lasted.";
    w.family(name.c_str(), "histogram", help.c_str());

    for (const auto &[l, v] : rows) {
        std::uint64_t cumulative = 0;

        for (std::size_t i = 0; i < session_buckets; i++) {
            cumulative += v[x_buckets + i];

            w.sample(name + "_bucket",
                     with(l, "le", i < session_bucket_ms.size()
                                   ? seconds(session_bucket_ms[i]) : "+Inf"),
                     n(cumulative));
        }

        w.sample(name + "_sum", l, seconds(v[x_sum_ms]));
        w.sample(name + "_count", l, n(cumulative));
    }
}

void render_stream(Writer &w, const Snapshot &s)
{
    SessionRows rows;

    for (const auto &t : s.stream_tables) {
        rows.emplace_back(Labels{{"table", t.name}}, t.values.data());
    }

    if (!rows.empty()) {
        render_sessions(w, "dynroute_stream_table",
                        "a stream table routed (or closed)", rows);

        const struct {
            const char *name;
            std::size_t slot;
            const char *help;
        } extra[] = {
            {"dynroute_stream_table_unnamed_total", x_unnamed,
             "Stream sessions whose key was no name (no SNI, empty): the "
             "default, or closed."},
            {"dynroute_stream_table_unrouted_total", x_unrouted,
             "Stream sessions closed: no rule matched and the table has no "
             "default."},
            {"dynroute_stream_table_preread_timeouts_total",
             x_preread_timeouts,
             "Stream sessions whose ClientHello was not whole at "
             "preread_timeout."},
            {"dynroute_stream_table_regex_errors_total", x_regex_errors,
             "Regex matches that failed (the default applied)."},
        };

        for (const auto &f : extra) {
            w.family(f.name, "counter", f.help);

            for (const auto &t : s.stream_tables) {
                w.sample(f.name, {{"table", t.name}}, n(t.values[f.slot]));
            }
        }

        w.family("dynroute_stream_table_rules", "gauge",
                 "Rules a stream table has in the configuration.");

        for (const auto &t : s.stream_tables) {
            w.sample("dynroute_stream_table_rules", {{"table", t.name}},
                     n(t.rules));
        }
    }

    rows.clear();

    for (const auto &t : s.stream_tables) {
        for (const auto &r : t.per_rule) {
            rows.emplace_back(Labels{{"table", t.name}, {"rule", r.rule}},
                              r.values.data());
        }
    }

    if (!rows.empty()) {
        render_sessions(w, "dynroute_stream_rule",
                        "a stream table's rule routed", rows);
    }

    rows.clear();

    for (const auto &ro : s.stream_rollouts) {
        for (const auto &v : ro.variants) {
            rows.emplace_back(Labels{{"rollout", ro.name},
                                     {"variant", v.name}},
                              v.values.data());
        }
    }

    if (rows.empty()) {
        return;
    }

    w.family("dynroute_stream_variant_weight_ratio", "gauge",
             "A stream rollout variant's weight, 0 to 1, and its upstream.");

    for (const auto &ro : s.stream_rollouts) {
        for (const auto &v : ro.variants) {
            w.sample("dynroute_stream_variant_weight_ratio",
                     {{"rollout", ro.name}, {"variant", v.name},
                      {"upstream", v.upstream}},
                     ratio(v.weight));
        }
    }

    render_sessions(w, "dynroute_stream_variant",
                    "a stream rollout's variant served", rows);
}

}  // namespace

std::string render_prometheus(const Snapshot &s)
{
    Writer w;

    render_tables(w, s);
    render_variants(w, s);

    w.single("dynroute_state_generation", "gauge",
             "Generation of the runtime state (each API change adds one).",
             n(s.generation));
    w.single("dynroute_draining", "gauge",
             "1 while the instance drains (readiness answers 503).",
             s.draining ? "1" : "0");

    if (s.fleet) {
        w.single("dynroute_fleet_revision", "gauge",
                 "The etcd revision the fleet agent has applied here.",
                 n(s.fleet_revision));
        w.single("dynroute_fleet_stale", "gauge",
                 "1 while the fleet agent cannot reach etcd.",
                 s.fleet_stale ? "1" : "0");
    }

    if (!s.groups.empty()) {
        render_groups(w, s);
    }

    render_stream(w, s);

    return w.take();
}

std::string render_stats(const Snapshot &s)
{
    using nlohmann::ordered_json;

    ordered_json out;
    out["zone"] = s.zone;
    out["generation"] = s.generation;
    out["draining"] = s.draining;
    out["time"] = s.time;
    out["runtime_hosts"] = s.runtime_hosts;

    if (s.fleet) {
        out["fleet"] = {{"revision", s.fleet_revision},
                        {"stale", s.fleet_stale}};
    }

    ordered_json tables = ordered_json::array();

    for (const auto &t : s.tables) {
        tables.push_back({{"name", t.name},
                          {"rules", t.rules},
                          {"requests", t.values[t_requests]},
                          {"misdirected", t.values[t_misdirected]},
                          {"regex_errors", t.values[t_regex_errors]},
                          {"runtime", t.values[t_runtime]}});
    }

    out["tables"] = std::move(tables);

    ordered_json le = ordered_json::array();

    for (auto ms : bucket_ms) {
        le.push_back(ms / 1000.0);
    }

    ordered_json rollouts = ordered_json::array();

    for (const auto &ro : s.rollouts) {
        ordered_json variants = ordered_json::array();

        for (const auto &v : ro.variants) {
            ordered_json requests = ordered_json::object();
            ordered_json responses = ordered_json::object();
            ordered_json hist = ordered_json::array();
            std::uint64_t count = 0;

            for (std::size_t i = 0; i < reasons; i++) {
                requests[std::string(Rollout::reason_name(
                    static_cast<Rollout::Reason>(i)))] =
                    v.values[v_requests + i];
            }

            for (std::size_t i = 0; i < classes; i++) {
                responses[class_names[i]] = v.values[v_responses + i];
            }

            for (std::size_t i = 0; i < buckets; i++) {
                hist.push_back(v.values[v_buckets + i]);
                count += v.values[v_buckets + i];
            }

            variants.push_back(
                {{"name", v.name},
                 {"upstream", v.upstream},
                 {"weight", v.weight / 100.0},
                 {"requests", std::move(requests)},
                 {"responses", std::move(responses)},
                 {"fallbacks", v.values[v_fallbacks]},
                 {"latency", {{"le", le},
                              {"buckets", std::move(hist)},
                              {"sum", v.values[v_sum_ms] / 1000.0},
                              {"count", count}}}});

            if (v.guarded) {
                variants.back()["guard_trips"] = {
                    {"errors", v.guard[g_trips]},
                    {"latency", v.guard[g_trips + 1]}};
            }
        }

        rollouts.push_back({{"name", ro.name},
                            {"primary", ro.primary},
                            {"variants", std::move(variants)}});

        if (!ro.tripped.empty()) {
            rollouts.back()["tripped"] = {{"variant", ro.tripped},
                                          {"reason", ro.tripped_reason},
                                          {"detail", ro.tripped_detail}};
        }
    }

    out["rollouts"] = std::move(rollouts);

    ordered_json groups = ordered_json::array();

    for (const auto &g : s.groups) {
        ordered_json servers = ordered_json::array();

        for (const auto &sv : g.servers) {
            ordered_json responses = ordered_json::object();

            for (std::size_t i = 0; i < classes; i++) {
                responses[class_names[i]] = sv.values[s_responses + i];
            }

            servers.push_back(
                {{"name", sv.name},
                 {"state", state_name(sv.state)},
                 {"weight", sv.weight},
                 {"backup", sv.backup},
                 {"requests", sv.values[s_picked]},
                 {"inflight",
                  inflight(sv.values[s_picked], sv.values[s_released])},
                 {"responses", std::move(responses)},
                 {"fails", sv.values[s_fails]},
                 {"disabled_until", sv.values[s_disabled_until]}});

            if (g.checked) {
                health::Health h = health::unpack(sv.values[s_health]);

                servers.back()["health"] = {
                    {"state", health::state_name(h.state)},
                    {"checks", sv.values[s_checks]},
                    {"failures", sv.values[s_check_failures]},
                    {"last_probe", h.last_probe_ms / 1000.0},
                    {"up_since", sv.values[s_up_since_ms] / 1000.0}};
            }
        }

        groups.push_back({{"name", g.name},
                          {"kind", kind_name(g.kind)},
                          {"servers", std::move(servers)}});
    }

    out["groups"] = std::move(groups);

    if (s.stream_tables.empty() && s.stream_rollouts.empty()) {
        return out.dump();
    }

    ordered_json sle = ordered_json::array();

    for (auto ms : session_bucket_ms) {
        sle.push_back(ms / 1000.0);
    }

    auto sessions = [&](const std::uint64_t *v) {
        ordered_json status = ordered_json::object();
        ordered_json hist = ordered_json::array();
        std::uint64_t count = 0;

        for (std::size_t i = 0; i < stream_statuses.size(); i++) {
            status[std::to_string(stream_statuses[i])] = v[x_status + i];
        }

        for (std::size_t i = 0; i < session_buckets; i++) {
            hist.push_back(v[x_buckets + i]);
            count += v[x_buckets + i];
        }

        return ordered_json{{"connections", count},
                            {"status", std::move(status)},
                            {"received", v[x_received]},
                            {"sent", v[x_sent]},
                            {"session", {{"le", sle},
                                         {"buckets", std::move(hist)},
                                         {"sum", v[x_sum_ms] / 1000.0},
                                         {"count", count}}}};
    };

    ordered_json stables = ordered_json::array();

    for (const auto &t : s.stream_tables) {
        ordered_json j = sessions(t.values.data());

        j["unnamed"] = t.values[x_unnamed];
        j["unrouted"] = t.values[x_unrouted];
        j["preread_timeouts"] = t.values[x_preread_timeouts];
        j["regex_errors"] = t.values[x_regex_errors];

        if (!t.per_rule.empty()) {
            ordered_json rules = ordered_json::array();

            for (const auto &r : t.per_rule) {
                ordered_json rj = {{"rule", r.rule}};
                rj.update(sessions(r.values.data()));
                rules.push_back(std::move(rj));
            }

            j["per_rule"] = std::move(rules);
        }

        ordered_json tj = {{"name", t.name}, {"rules", t.rules}};
        tj.update(j);
        stables.push_back(std::move(tj));
    }

    ordered_json srollouts = ordered_json::array();

    for (const auto &ro : s.stream_rollouts) {
        ordered_json variants = ordered_json::array();

        for (const auto &v : ro.variants) {
            ordered_json vj = {{"name", v.name},
                               {"upstream", v.upstream},
                               {"weight", v.weight / 100.0}};
            vj.update(sessions(v.values.data()));
            variants.push_back(std::move(vj));
        }

        srollouts.push_back({{"name", ro.name},
                             {"variants", std::move(variants)}});
    }

    out["stream"] = {{"tables", std::move(stables)},
                     {"rollouts", std::move(srollouts)}};

    return out.dump();
}

}  // namespace dynroute::metrics
