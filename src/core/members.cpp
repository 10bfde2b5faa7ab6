// The API's changes and answers over servers and services (members.hpp,
// declared in state.hpp).  Each change builds the group's next list apart,
// checks it whole, and only then stores it: a refused change leaves the
// state as it was.
#include <set>

#include "address.hpp"
#include "state.hpp"
#include "state_json.hpp"
#include "suggest.hpp"

namespace dynroute {

void ServerGroup::assign_ids()
{
    std::set<std::uint32_t> used;

    for (const auto &s : servers) {
        if (s.second.id != 0) {
            used.insert(s.second.id);
        }
    }

    for (auto &s : servers) {
        while (s.second.id == 0) {
            std::uint32_t id = next_id++;
            if (id != 0 && used.insert(id).second) {
                s.second.id = id;
            }
        }
    }
}

const ServersInfo *Schema::servers_of(std::string_view name) const noexcept
{
    auto it = servers.find(name);
    return it == servers.end() ? nullptr : &it->second;
}

std::string Schema::name_clash(std::string_view name) const
{
    for (const auto &u : upstream_blocks) {
        if (equal_caseless(u, name)) {
            return "upstream{} " + dynroute::quoted(u);
        }
    }
    for (const auto &u : upstreams) {
        if (equal_caseless(u, name)) {
            return "upstream{} " + dynroute::quoted(u);
        }
    }
    for (const auto &r : rollouts) {
        if (equal_caseless(r.name, name)) {
            return "dynroute_rollout " + dynroute::quoted(r.name);
        }
    }
    return "";
}

bool is_runtime_target(const State &state, const Schema &schema,
                       std::string_view name)
{
    return schema.is_target(name)
           || state.services.find(name) != state.services.end();
}

namespace {

// ---- a server's fields ----------------------------------------------------

std::string field_of(const char *field, const std::string &addr)
{
    return std::string("the \"") + field + "\" of server " + dynroute::quoted(addr);
}

std::uint32_t count_field(const input &v, const char *field,
                          const std::string &addr, std::uint32_t lo,
                          std::uint32_t hi)
{
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() < lo
        || v.get<std::uint64_t>() > hi)
    {
        throw ApiError(400, field_of(field, addr) + " must be an integer from "
                            + std::to_string(lo) + " to "
                            + std::to_string(hi));
    }
    return static_cast<std::uint32_t>(v.get<std::uint64_t>());
}

// seconds: 10 or "10s" (or "10")
std::uint32_t timeout_field(const input &v, const std::string &addr)
{
    std::uint64_t n = max_fail_timeout + 1;

    if (v.is_number_unsigned()) {
        n = v.get<std::uint64_t>();

    } else if (v.is_string()) {
        std::string s = v.get<std::string>();
        if (!s.empty() && s.back() == 's') {
            s.pop_back();
        }
        if (!s.empty() && s.size() < 10
            && s.find_first_not_of("0123456789") == std::string::npos)
        {
            n = std::stoull(s);
        }
    }

    if (n > max_fail_timeout) {
        throw ApiError(400, field_of("fail_timeout", addr)
                            + " must be seconds from 0 to "
                            + std::to_string(max_fail_timeout)
                            + ", as 10 or \"10s\"");
    }
    return static_cast<std::uint32_t>(n);
}

bool flag_field(const input &v, const char *field, const std::string &addr)
{
    if (!v.is_boolean()) {
        throw ApiError(400, field_of(field, addr) + " must be true or false");
    }
    return v.get<bool>();
}

// spec with the fields body gives; POST's body names the server as well
ServerSpec server_fields(const input &body, ServerSpec spec,
                         const std::string &addr, bool post = false)
{
    if (!body.is_object()) {
        throw ApiError(400, "the entry of server " + dynroute::quoted(addr)
                            + " must be a JSON object");
    }

    for (const auto &[key, v] : body.items()) {
        if (key == "weight") {
            spec.weight = count_field(v, "weight", addr, 1, max_server_weight);
        } else if (key == "max_fails") {
            spec.max_fails = count_field(v, "max_fails", addr, 0,
                                         max_server_fails);
        } else if (key == "fail_timeout") {
            spec.fail_timeout = timeout_field(v, addr);
        } else if (key == "backup") {
            spec.backup = flag_field(v, "backup", addr);
        } else if (key == "down") {
            spec.down = flag_field(v, "down", addr);
        } else if (key == "drain") {
            spec.drain = flag_field(v, "drain", addr);
        } else if (!(post && key == "server")) {
            throw ApiError(400, "unknown field " + dynroute::quoted(key) + " of server "
                                + dynroute::quoted(addr) + ": \"weight\", "
                                  "\"max_fails\", \"fail_timeout\", "
                                  "\"backup\", \"down\" and \"drain\" only");
        }
    }

    return spec;
}

// a body's servers by canonical address; two spellings of one are refused
std::map<std::string, const input *> body_servers(const input &body)
{
    std::map<std::string, const input *> out;
    std::map<std::string, std::string> spelling;

    for (const auto &[text, v] : body.items()) {
        std::string name = parse_address(text).name;
        auto [it, added] = spelling.emplace(name, text);

        if (!added) {
            throw ApiError(400, "server addresses " + dynroute::quoted(it->second)
                                + " and " + dynroute::quoted(text)
                                + " are the same server, " + name);
        }
        out.emplace(name, &v);
    }

    return out;
}

// ---- the group a request names ----------------------------------------------

// An upstream with dynroute_servers (conf), or a service.
struct GroupRef {
    std::string name;
    const ServersInfo *conf = nullptr;
    bool hash = false;

    std::string what() const
    {
        return (conf ? "upstream " : "service ") + dynroute::quoted(name);
    }
};

std::string did_you_mean(const State &state, const Schema &schema,
                         std::string_view name)
{
    ClosestName closest(name);

    for (const auto &g : schema.servers) {
        closest.consider(g.first);
    }
    for (const auto &s : state.services) {
        closest.consider(s.first);
    }

    return closest.best().empty()
               ? "" : " (did you mean " + dynroute::quoted(closest.best()) + "?)";
}

[[noreturn]] void no_group(const State &state, const Schema &schema,
                           std::string_view name)
{
    std::string clash = schema.name_clash(name);

    if (!clash.empty() && clash.compare(0, 9, "upstream{") == 0) {
        throw ApiError(404, clash + " has no dynroute_servers: its servers "
                                    "are its server lines");
    }

    throw ApiError(404, "no upstream with dynroute_servers and no service "
                        + dynroute::quoted(name) + did_you_mean(state, schema, name));
}

GroupRef find_group(const State &state, const Schema &schema,
                    std::string_view name)
{
    if (const ServersInfo *conf = schema.servers_of(name)) {
        return {std::string(name), conf, conf->hash};
    }

    auto it = state.services.find(name);
    if (it == state.services.end()) {
        no_group(state, schema, name);
    }

    return {it->first, nullptr, it->second.balance == Balance::hash};
}

// the servers before the change: the runtime list, else the server lines
// (their ids given by the glue)
ServerGroup group_now(const State &state, const GroupRef &g)
{
    if (!g.conf) {
        return state.services.find(g.name)->second.group;
    }

    auto it = state.servers.find(g.name);
    if (it != state.servers.end()) {
        return it->second;
    }

    ServerGroup now{g.conf->configured, 1};
    for (const auto &s : now.servers) {
        now.next_id = std::max(now.next_id, s.second.id + 1);
    }
    return now;
}

// the servers every service but `except` holds
std::size_t service_servers(const State &state, std::string_view except)
{
    std::size_t n = 0;

    for (const auto &s : state.services) {
        n += s.first == except ? 0 : s.second.group.servers.size();
    }
    return n;
}

// what the next list must be: no backup if it hashes, within its limit
void check_group(const State &state, const Schema &schema, const GroupRef &g,
                 const ServerList &next)
{
    for (const auto &[addr, spec] : next) {
        if (g.hash && spec.backup) {
            throw ApiError(400, g.what() + " balances by hash: server "
                                + dynroute::quoted(addr) + " cannot be a backup");
        }
    }

    if (g.conf && next.size() > g.conf->max) {
        throw ApiError(507, g.what() + " would have "
                            + std::to_string(next.size())
                            + " servers, more than its max="
                            + std::to_string(g.conf->max)
                            + ": nothing changed");
    }

    std::size_t total = service_servers(state, g.name) + next.size();
    if (!g.conf && total > schema.services.max_servers) {
        throw ApiError(507, "the services would have "
                            + std::to_string(total)
                            + " servers, more than dynroute_services "
                              "servers="
                            + std::to_string(schema.services.max_servers)
                            + ": nothing changed");
    }
}

void commit(State &state, const Schema &schema, const GroupRef &g,
            ServerGroup next)
{
    check_group(state, schema, g, next.servers);
    next.assign_ids();

    if (g.conf) {
        state.servers[g.name] = std::move(next);
    } else {
        state.services.find(g.name)->second.group = std::move(next);
    }
}

// body's servers as the whole list after `now`: ids kept by address
ServerGroup whole_list(const input &body, const ServerGroup &now,
                       BulkResult &r)
{
    ServerGroup next{{}, now.next_id};

    for (const auto &[addr, v] : body_servers(body)) {
        ServerSpec spec = server_fields(*v, ServerSpec(), addr);
        auto old = now.servers.find(addr);

        if (old != now.servers.end()) {
            spec.id = old->second.id;
        }
        (old != now.servers.end() ? r.replaced : r.added)++;
        next.servers.emplace(addr, spec);
    }

    r.removed = now.servers.size() - r.replaced;
    return next;
}

}  // namespace

const ServerList *current_servers(const State &state, const Schema &schema,
                                  std::string_view group)
{
    auto it = state.servers.find(group);
    const ServersInfo *conf = schema.servers_of(group);

    if (conf) {
        return it != state.servers.end() ? &it->second.servers
                                         : &conf->configured;
    }

    auto s = state.services.find(group);
    return s == state.services.end() ? nullptr : &s->second.group.servers;
}

BulkResult put_servers(State &state, const Schema &schema,
                       std::string_view group, std::string_view body)
{
    GroupRef g = find_group(state, schema, group);
    input j = parse_object(body, "the request body");
    BulkResult r;

    commit(state, schema, g, whole_list(j, group_now(state, g), r));
    return r;
}

BulkResult patch_servers(State &state, const Schema &schema,
                         std::string_view group, std::string_view body)
{
    GroupRef g = find_group(state, schema, group);
    input j = parse_object(body, "the request body");
    ServerGroup next = group_now(state, g);
    BulkResult r;

    for (const auto &[addr, v] : body_servers(j)) {
        auto it = next.servers.find(addr);

        if (v->is_null()) {
            if (it == next.servers.end()) {
                throw ApiError(404, g.what() + " has no server "
                                    + dynroute::quoted(addr));
            }
            next.servers.erase(it);
            r.removed++;

        } else if (it == next.servers.end()) {
            next.servers.emplace(addr, server_fields(*v, ServerSpec(), addr));
            r.added++;

        } else {
            it->second = server_fields(*v, it->second, addr);
            r.replaced++;
        }
    }

    commit(state, schema, g, std::move(next));
    return r;
}

std::string post_server(State &state, const Schema &schema,
                        std::string_view group, std::string_view body)
{
    GroupRef g = find_group(state, schema, group);
    input j = parse_object(body, "the request body");
    auto at = j.find("server");

    if (at == j.end()) {
        throw ApiError(400, "the body has no \"server\": its address");
    }

    std::string addr = parse_address(string_field(*at, "\"server\"")).name;
    ServerGroup next = group_now(state, g);

    if (next.servers.count(addr) != 0) {
        throw ApiError(409, g.what() + " already has server " + dynroute::quoted(addr)
                            + ": PUT or PATCH it to change it");
    }

    next.servers.emplace(addr, server_fields(j, ServerSpec(), addr, true));
    commit(state, schema, g, std::move(next));
    return addr;
}

bool put_server(State &state, const Schema &schema, std::string_view group,
                std::string_view addr, std::string_view body)
{
    GroupRef g = find_group(state, schema, group);
    std::string name = parse_address(addr).name;
    ServerSpec spec = server_fields(parse_object(body, "the request body"),
                                    ServerSpec(), name);
    ServerGroup next = group_now(state, g);
    auto [it, added] = next.servers.try_emplace(name, spec);

    if (!added) {
        spec.id = it->second.id;
        it->second = spec;
    }

    commit(state, schema, g, std::move(next));
    return added;
}

void patch_server(State &state, const Schema &schema, std::string_view group,
                  std::string_view addr, std::string_view body)
{
    GroupRef g = find_group(state, schema, group);
    std::string name = parse_address(addr).name;
    input j = parse_object(body, "the request body");
    ServerGroup next = group_now(state, g);
    auto it = next.servers.find(name);

    if (it == next.servers.end()) {
        throw ApiError(404, g.what() + " has no server " + dynroute::quoted(name));
    }

    it->second = server_fields(j, it->second, name);
    commit(state, schema, g, std::move(next));
}

void delete_server(State &state, const Schema &schema,
                   std::string_view group, std::string_view addr)
{
    GroupRef g = find_group(state, schema, group);
    std::string name = parse_address(addr).name;
    ServerGroup next = group_now(state, g);

    if (next.servers.erase(name) == 0) {
        throw ApiError(404, g.what() + " has no server " + dynroute::quoted(name));
    }

    commit(state, schema, g, std::move(next));
}

void reset_servers(State &state, const Schema &schema,
                   std::string_view group)
{
    GroupRef g = find_group(state, schema, group);

    if (!g.conf) {
        throw ApiError(405, g.what() + " has no server lines to go back to: "
                            "PUT its servers, or DELETE the service");
    }

    state.servers.erase(g.name);
}

// ---- services ----------------------------------------------------------------

namespace {

const char no_carrier[] = "runtime services need an upstream{} with "
                          "dynroute_services to carry them: add one to the "
                          "configuration";

// letters, digits, '_', '-' and '.': a name that goes into a path, a
// metric's label and a log line as it is
void check_service_name(std::string_view name)
{
    bool ok = !name.empty() && name.size() <= 255;

    for (char c : name) {
        ok = ok && (is_alpha(c) || is_digit(c) || c == '_' || c == '-'
                    || c == '.');
    }

    if (!ok) {
        throw ApiError(400, "a service's name is 1 to 255 letters, digits, "
                            "\"_\", \"-\" and \".\", not "
                            + dynroute::quoted(name));
    }
}

Balance balance_field(const input &v, const ServicesInfo &carrier)
{
    const std::string &b = string_field(v, "\"balance\"");

    if (b == "round_robin") {
        return Balance::round_robin;
    }

    if (b != "hash") {
        throw ApiError(400, "\"balance\" is \"round_robin\" or \"hash\", not "
                            + dynroute::quoted(b));
    }

    if (!carrier.hash) {
        throw ApiError(400, "\"balance\": \"hash\" is not available for "
                            "services: upstream{} "
                            + dynroute::quoted(carrier.upstream)
                            + " (dynroute_services) balances them round "
                              "robin; leave \"balance\" out, or give the "
                              "servers an upstream{} with dynroute_servers "
                              "hash=KEY");
    }

    return Balance::hash;
}

// what may keep a service from being created: no carrier, its name, room
void check_new_service(const State &state, const Schema &schema,
                       std::string_view name)
{
    std::string clash = schema.name_clash(name);

    if (!clash.empty()) {
        throw ApiError(409, "a service cannot be called "
                            + dynroute::quoted(name) + ": that is the "
                            "configuration's " + clash);
    }

    if (state.services.size() >= schema.services.max_services) {
        throw ApiError(507, "there are already "
                            + std::to_string(state.services.size())
                            + " services, dynroute_services max_services="
                            + std::to_string(schema.services.max_services)
                            + ": nothing changed");
    }
}

std::uint32_t next_service_id(State &state)
{
    std::set<std::uint32_t> used;

    for (const auto &s : state.services) {
        used.insert(s.second.id);
    }

    for (;;) {
        std::uint32_t id = state.next_service_id++ & ~service_key_bit;
        if (id != 0 && used.count(id) == 0) {
            return id;
        }
    }
}

// "runtime host "a", rollout "r"'s variant "v"": what names the service
std::string targeted_by(const State &state, const std::string &name)
{
    std::string by;
    auto add = [&by](const std::string &what) {
        by += (by.empty() ? "" : ", ") + what;
    };

    for (const auto &[host, e] : state.hosts) {
        if (e.target == name) {
            add("runtime host " + dynroute::quoted(host));
        }
    }

    for (const auto &[rollout, o] : state.rollouts) {
        for (const auto &[variant, u] : o.upstreams) {
            if (u == name) {
                add("variant " + dynroute::quoted(variant) + " of rollout "
                    + dynroute::quoted(rollout));
            }
        }
    }

    return by;
}

}  // namespace

bool put_service(State &state, const Schema &schema, std::string_view name,
                 std::string_view body)
{
    if (schema.services.upstream.empty()) {
        throw ApiError(409, no_carrier);
    }

    check_service_name(name);
    input j = parse_object(body, "the request body");
    auto it = state.services.find(name);
    bool added = it == state.services.end();
    Service next = added ? Service() : it->second;
    const input *servers = nullptr;

    if (added) {
        check_new_service(state, schema, name);
    }

    for (const auto &[key, v] : j.items()) {
        if (key == "balance") {
            next.balance = balance_field(v, schema.services);
        } else if (key == "servers") {
            servers = &v;
        } else {
            throw ApiError(400, "unknown field " + dynroute::quoted(key)
                                + ": \"balance\" and \"servers\" only");
        }
    }

    GroupRef g{std::string(name), nullptr, next.balance == Balance::hash};
    BulkResult r;

    if (servers != nullptr) {
        if (!servers->is_object()) {
            throw ApiError(400, "\"servers\" must be an object of addresses");
        }
        next.group = whole_list(*servers, next.group, r);
    }

    check_group(state, schema, g, next.group.servers);
    next.group.assign_ids();
    next.id = added ? next_service_id(state) : next.id;
    state.services[g.name] = std::move(next);

    return added;
}

void delete_service(State &state, const Schema &schema,
                    std::string_view name)
{
    auto it = state.services.find(name);

    if (it == state.services.end()) {
        throw ApiError(404, schema.services.upstream.empty()
                                ? std::string(no_carrier)
                                : "no service " + dynroute::quoted(name)
                                      + did_you_mean(state, schema, name));
    }

    std::string by = targeted_by(state, it->first);

    if (!by.empty()) {
        throw ApiError(409, "service " + dynroute::quoted(it->first)
                            + " is still the target of " + by
                            + ": point them elsewhere first");
    }

    state.services.erase(it);
}

// ---- answers -------------------------------------------------------------------

namespace {

const char *balance_name(Balance b)
{
    return b == Balance::hash ? "hash" : "round_robin";
}

json server_json(const ServerSpec &s)
{
    return {
        {"weight", s.weight},
        {"max_fails", s.max_fails},
        {"fail_timeout", std::to_string(s.fail_timeout) + "s"},
        {"backup", s.backup},
        {"down", s.down},
        {"drain", s.drain},
    };
}

// {"ADDR": {fields}, ...}: what PUT .../servers takes back
json list_json(const ServerList &list)
{
    json j = json::object();

    for (const auto &[addr, spec] : list) {
        j[addr] = server_json(spec);
    }
    return j;
}

std::size_t backups(const ServerList &list)
{
    std::size_t n = 0;

    for (const auto &s : list) {
        n += s.second.backup;
    }
    return n;
}

// a group in GET upstreams: what it is and its counts
json group_json(const ServerList &list, bool service, bool runtime,
                Balance balance)
{
    return {
        {"service", service},
        {"runtime", runtime},
        {"balance", balance_name(balance)},
        {"servers", list.size() - backups(list)},
        {"backup", backups(list)},
    };
}

}  // namespace

std::string render_upstreams(const State &state, const Schema &schema)
{
    json groups = json::object();

    for (const auto &[name, info] : schema.servers) {
        auto it = state.servers.find(name);
        bool runtime = it != state.servers.end();
        groups[name] = group_json(runtime ? it->second.servers
                                          : info.configured,
                                  false, runtime,
                                  info.hash ? Balance::hash
                                            : Balance::round_robin);
        groups[name]["max"] = info.max;
    }

    for (const auto &[name, s] : state.services) {
        groups[name] = group_json(s.group.servers, true, true, s.balance);
    }

    return text({{"generation", state.generation},
                  {"upstreams", std::move(groups)}});
}

std::string render_servers(const State &state, const Schema &schema,
                           std::string_view group)
{
    GroupRef g = find_group(state, schema, group);

    return text({
        {"generation", state.generation},
        {"upstream", g.name},
        {"runtime", !g.conf || state.servers.count(g.name) != 0},
        {"servers", list_json(*current_servers(state, schema, group))},
    });
}

std::string render_server(const State &state, const Schema &schema,
                          std::string_view group, std::string_view addr)
{
    GroupRef g = find_group(state, schema, group);
    std::string name = parse_address(addr).name;
    const ServerList &list = *current_servers(state, schema, group);
    auto it = list.find(name);

    if (it == list.end()) {
        throw ApiError(404, g.what() + " has no server "
                            + dynroute::quoted(name));
    }

    json j = {{"generation", state.generation}, {"upstream", g.name},
              {"server", name}};
    j.update(server_json(it->second));
    return text(j);
}

std::string render_services(const State &state, const Schema &schema)
{
    if (schema.services.upstream.empty()) {
        throw ApiError(404, no_carrier);
    }

    json services = json::object();

    for (const auto &[name, s] : state.services) {
        services[name] = {{"balance", balance_name(s.balance)},
                          {"servers", s.group.servers.size()}};
    }

    return text({
        {"generation", state.generation},
        {"carrier", schema.services.upstream},
        {"max_services", schema.services.max_services},
        {"max_servers", schema.services.max_servers},
        {"servers", service_servers(state, "")},
        {"services", std::move(services)},
    });
}

std::string render_service(const State &state, const Schema &schema,
                           std::string_view name)
{
    auto it = state.services.find(name);

    if (it == state.services.end()) {
        throw ApiError(404, schema.services.upstream.empty()
                                ? std::string(no_carrier)
                                : "no service " + dynroute::quoted(name)
                                      + did_you_mean(state, schema, name));
    }

    return text({
        {"generation", state.generation},
        {"name", it->first},
        {"balance", balance_name(it->second.balance)},
        {"servers", list_json(it->second.group.servers)},
    });
}

// ---- the state file ------------------------------------------------------------

void dump_members(const State &state, json &j)
{
    if (!state.servers.empty()) {
        json lists = json::object();
        for (const auto &[name, g] : state.servers) {
            lists[name] = list_json(g.servers);
        }
        j["servers"] = std::move(lists);
    }

    if (!state.services.empty()) {
        json services = json::object();
        for (const auto &[name, s] : state.services) {
            services[name] = {{"balance", balance_name(s.balance)},
                              {"servers", list_json(s.group.servers)}};
        }
        j["services"] = std::move(services);
    }
}

namespace {

// a file's list: the API's checks of a body, its refusals corrupt();
// configured addresses take their configured ids, the rest new ones
ServerGroup load_list(const input &body, const ServerList *configured)
{
    ServerGroup g;
    BulkResult unused;

    try {
        if (!body.is_object()) {
            throw ApiError(400, "a list of servers is not an object");
        }
        g = whole_list(body, g, unused);
    } catch (const ApiError &e) {
        corrupt(e.what());
    }

    if (configured != nullptr) {
        for (const auto &[addr, spec] : *configured) {
            auto it = g.servers.find(addr);
            if (it != g.servers.end()) {
                it->second.id = spec.id;
            }
            g.next_id = std::max(g.next_id, spec.id + 1);
        }
    }

    g.assign_ids();
    return g;
}

Service load_service(const std::string &name, const input &v)
{
    Service s;

    try {
        check_service_name(name);
    } catch (const ApiError &e) {
        corrupt(e.what());
    }

    if (!v.is_object()) {
        corrupt("service " + dynroute::quoted(name) + " is not an object");
    }

    const input &b = member(v, "balance", &input::is_string, "a string");
    const input &l = member(v, "servers", &input::is_object, "an object");

    if (!b.is_null() && b != "round_robin" && b != "hash") {
        corrupt("the balance of service " + dynroute::quoted(name)
                + " is neither \"round_robin\" nor \"hash\"");
    }

    s.balance = b == "hash" ? Balance::hash : Balance::round_robin;
    s.group = load_list(l.is_null() ? input::object() : l, nullptr);
    return s;
}

}  // namespace

void load_members(const input &j, const Schema &schema, State &s)
{
    const input &lists = member(j, "servers", &input::is_object, "an object");
    const input &services = member(j, "services", &input::is_object,
                                   "an object");

    if (!lists.is_null()) {
        for (const auto &[name, l] : lists.items()) {
            const ServersInfo *conf = schema.servers_of(name);
            s.servers[name] = load_list(l, conf ? &conf->configured
                                                : nullptr);
        }
    }

    if (!services.is_null()) {
        for (const auto &[name, v] : services.items()) {
            Service &svc = s.services[name] = load_service(name, v);
            svc.id = s.next_service_id++;
        }
    }
}

// ---- a new configuration -----------------------------------------------------

namespace {

// "a", "b", "c" and 4 more
std::string some_of(const std::vector<std::string> &names)
{
    std::string out;

    for (std::size_t i = 0; i < names.size() && i < 5; i++) {
        out += (i ? ", " : "") + dynroute::quoted(names[i]);
    }
    if (names.size() > 5) {
        out += " and " + std::to_string(names.size() - 5) + " more";
    }
    return out;
}

// Drops the backups of a list that hashes, then the servers beyond `max`
// in the list's order, primaries first; a notice for each kind.
void trim_list(ServerList &list, bool hash, std::size_t max,
               const std::string &what, const std::string &limit,
               std::vector<std::string> &notices)
{
    std::vector<std::string> backup, over;
    std::size_t kept = 0;

    for (int pass = 0; pass < 2; pass++) {
        for (auto &[addr, spec] : list) {
            if (spec.backup != (pass == 1)) {
                continue;
            }
            if (hash && spec.backup) {
                backup.push_back(addr);
            } else if (++kept > max) {
                over.push_back(addr);
            }
        }
    }

    for (const auto &a : backup) {
        list.erase(a);
    }
    for (const auto &a : over) {
        list.erase(a);
    }

    if (!backup.empty()) {
        notices.push_back("dropped the backup servers " + some_of(backup)
                          + " of " + what + ": it balances by hash");
    }
    if (!over.empty()) {
        notices.push_back("dropped the servers " + some_of(over) + " of "
                          + what + ": over " + limit);
    }
}

// why a service cannot stay under this configuration, or ""
std::string service_gone(const Schema &schema, const std::string &name,
                         std::size_t count)
{
    if (schema.services.upstream.empty()) {
        return "no upstream{} has dynroute_services any more";
    }

    std::string clash = schema.name_clash(name);
    if (!clash.empty()) {
        return "its name is the configuration's " + clash + " now";
    }

    if (count >= schema.services.max_services) {
        return "over dynroute_services max_services="
               + std::to_string(schema.services.max_services);
    }
    return "";
}

void prune_services(State &state, const Schema &schema,
                    std::vector<std::string> &notices)
{
    std::size_t count = 0, servers = 0;

    for (auto it = state.services.begin(); it != state.services.end(); ) {
        std::string why = service_gone(schema, it->first, count);
        Service &s = it->second;

        if (!why.empty()) {
            notices.push_back("dropped runtime service "
                              + dynroute::quoted(it->first) + ": " + why);
            it = state.services.erase(it);
            continue;
        }

        if (s.balance == Balance::hash && !schema.services.hash) {
            notices.push_back("runtime service " + dynroute::quoted(it->first)
                              + " balances by round robin: dynroute_services "
                                "has no hash= any more");
            s.balance = Balance::round_robin;
        }

        std::size_t room = schema.services.max_servers
                           - std::min<std::size_t>(servers,
                                                   schema.services.max_servers);
        trim_list(s.group.servers, s.balance == Balance::hash, room,
                  "runtime service " + dynroute::quoted(it->first),
                  "dynroute_services servers="
                      + std::to_string(schema.services.max_servers),
                  notices);
        servers += s.group.servers.size();
        count++;
        ++it;
    }
}

}  // namespace

void prune_members(State &state, const Schema &schema,
                   std::vector<std::string> &notices)
{
    for (auto it = state.servers.begin(); it != state.servers.end(); ) {
        const ServersInfo *conf = schema.servers_of(it->first);

        if (conf == nullptr) {
            notices.push_back("dropped the runtime servers of upstream "
                              + dynroute::quoted(it->first)
                              + ": it has no dynroute_servers any more");
            it = state.servers.erase(it);
            continue;
        }

        trim_list(it->second.servers, conf->hash, conf->max,
                  "upstream " + dynroute::quoted(it->first),
                  "its max=" + std::to_string(conf->max), notices);
        ++it;
    }

    prune_services(state, schema, notices);
}

}  // namespace dynroute
