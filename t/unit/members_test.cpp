// Servers and services that change at run time: the API's changes over
// State.servers and State.services, their refusals (the design's "Bad
// input" table), which leave the state as it was, ids, and the answers.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "state.hpp"

using namespace dynroute;

namespace {

ServerSpec spec(std::uint32_t id, std::uint32_t weight = 1, bool backup = false)
{
    ServerSpec s;
    s.id = id;
    s.weight = weight;
    s.backup = backup;
    return s;
}

Schema schema()
{
    Schema s;
    s.rollouts.push_back({"checkout", {"stable", "canary"}, {9000, 1000},
                          {"service_a", "service_b"}, 0});
    s.tables = {"main"};
    s.table_rules = {3};
    s.upstreams = {"service_a", "service_b", "shop_api", "cache"};
    s.upstream_blocks = {"service_a", "service_b", "shop_api", "cache",
                         "services", "Balanced"};
    s.servers["shop_api"].max = 4;
    s.servers["shop_api"].configured = {{"10.0.0.5:8080", spec(1, 2)},
                                        {"10.0.0.6:8080", spec(2)},
                                        {"10.0.0.9:8080", spec(3, 1, true)}};
    s.servers["cache"].max = 8;
    s.servers["cache"].hash = true;
    s.services = {"services", 2, 5, false};
    return s;
}

// the status of f's ApiError, and its message in `why`
int status_of(const std::function<void()> &f, std::string *why = nullptr)
{
    try {
        f();
    } catch (const ApiError &e) {
        if (why) {
            *why = e.what();
        }
        return e.status;
    }
    return 200;
}

bool has(const std::string &s, const std::string &part)
{
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST(Members, PutReplacesTheListAndKeepsIdsByAddress)
{
    State st;
    Schema sc = schema();

    // the configured list until the runtime sets one
    EXPECT_EQ(current_servers(st, sc, "shop_api"), &sc.servers["shop_api"].configured);

    BulkResult r = put_servers(st, sc, "shop_api",
                               R"({"10.0.0.5:8080":{"weight":3},"10.0.0.7":{}})");
    EXPECT_EQ(r.added, 1u);
    EXPECT_EQ(r.replaced, 1u);
    EXPECT_EQ(r.removed, 2u);

    const ServerGroup &g = st.servers["shop_api"];
    ASSERT_EQ(g.servers.size(), 2u);
    EXPECT_EQ(g.servers.at("10.0.0.5:8080").id, 1u);   // the configured one's
    EXPECT_EQ(g.servers.at("10.0.0.5:8080").weight, 3u);
    EXPECT_EQ(g.servers.at("10.0.0.7:80").id, 4u);     // after the configured
    EXPECT_EQ(g.next_id, 5u);

    EXPECT_EQ(render_servers(st, sc, "shop_api"),
              R"({"generation":0,"upstream":"shop_api","runtime":true,"servers":{)"
              R"("10.0.0.5:8080":{"weight":3,"max_fails":1,"fail_timeout":"10s","backup":false,"down":false,"drain":false},)"
              R"("10.0.0.7:80":{"weight":1,"max_fails":1,"fail_timeout":"10s","backup":false,"down":false,"drain":false}}})");

    // an empty list is a list: the group has no server
    put_servers(st, sc, "shop_api", "{}");
    EXPECT_TRUE(st.servers["shop_api"].servers.empty());
    EXPECT_EQ(st.servers["shop_api"].next_id, 5u);

    reset_servers(st, sc, "shop_api");
    EXPECT_TRUE(st.servers.empty());
    EXPECT_TRUE(has(render_servers(st, sc, "shop_api"),
                    R"("runtime":false,"servers":{"10.0.0.5:8080":{"weight":2,)"));
}

TEST(Members, PatchIsAllOrNothing)
{
    State st;
    Schema sc = schema();

    BulkResult r = patch_servers(st, sc, "shop_api",
                                 R"({"10.0.0.6:8080":null,"10.0.0.5:8080":{"down":true},)"
                                 R"("[2001:db8::5]:8080":{"weight":5,"fail_timeout":"30s"}})");
    EXPECT_EQ(r.added, 1u);
    EXPECT_EQ(r.replaced, 1u);
    EXPECT_EQ(r.removed, 1u);

    const ServerList &l = st.servers["shop_api"].servers;
    ASSERT_EQ(l.size(), 3u);
    EXPECT_TRUE(l.at("10.0.0.5:8080").down);
    EXPECT_EQ(l.at("10.0.0.5:8080").weight, 2u);       // kept: not given
    EXPECT_EQ(l.at("[2001:db8::5]:8080").fail_timeout, 30u);
    EXPECT_TRUE(l.at("10.0.0.9:8080").backup);

    State before = st;
    std::string why;
    EXPECT_EQ(status_of([&] {
        patch_servers(st, sc, "shop_api", R"({"10.0.0.1":{},"10.0.0.6:8080":null})");
    }, &why), 404);
    EXPECT_EQ(why, "upstream \"shop_api\" has no server \"10.0.0.6:8080\"");
    EXPECT_EQ(status_of([&] {
        patch_servers(st, sc, "shop_api", R"({"10.0.0.1":{},"10.0.0.2":{"weight":0}})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_servers(st, sc, "shop_api", R"({"10.0.0.1":{},"10.0.0.2":{}})");
    }, &why), 507);
    EXPECT_EQ(why, "upstream \"shop_api\" would have 5 servers, more than its "
                   "max=4: nothing changed");
    EXPECT_TRUE(st.servers == before.servers);
}

TEST(Members, OneServer)
{
    State st;
    Schema sc = schema();
    sc.servers["shop_api"].max = 8;

    // NGINX Plus's add
    EXPECT_EQ(post_server(st, sc, "shop_api", R"({"server":"10.0.0.10","weight":2})"),
              "10.0.0.10:80");
    EXPECT_EQ(st.servers["shop_api"].servers.at("10.0.0.10:80").weight, 2u);
    std::string why;
    EXPECT_EQ(status_of([&] {
        post_server(st, sc, "shop_api", R"({"server":"10.0.0.10:80"})");
    }, &why), 409);
    EXPECT_TRUE(has(why, "already has server \"10.0.0.10:80\""));
    EXPECT_EQ(status_of([&] { post_server(st, sc, "shop_api", R"({"weight":2})"); }), 400);
    EXPECT_EQ(status_of([&] { post_server(st, sc, "shop_api", R"({"server":7})"); }), 400);

    // PUT creates, then replaces every field, keeping the id
    EXPECT_TRUE(put_server(st, sc, "shop_api", "[::1]", R"({"weight":4,"drain":true})"));
    std::uint32_t id = st.servers["shop_api"].servers.at("[::1]:80").id;
    EXPECT_FALSE(put_server(st, sc, "shop_api", "[0:0::1]:80", R"({"max_fails":0})"));
    const ServerSpec &s = st.servers["shop_api"].servers.at("[::1]:80");
    EXPECT_EQ(s.id, id);
    EXPECT_EQ(s.weight, 1u);
    EXPECT_FALSE(s.drain);
    EXPECT_EQ(s.max_fails, 0u);

    patch_server(st, sc, "shop_api", "[::1]:80", R"({"drain":true})");
    EXPECT_TRUE(st.servers["shop_api"].servers.at("[::1]:80").drain);
    EXPECT_EQ(st.servers["shop_api"].servers.at("[::1]:80").max_fails, 0u);
    EXPECT_EQ(render_server(st, sc, "shop_api", "[::0:1]"),
              R"({"generation":0,"upstream":"shop_api","server":"[::1]:80","weight":1,)"
              R"("max_fails":0,"fail_timeout":"10s","backup":false,"down":false,"drain":true})");

    // a delete and a new add: a new id
    delete_server(st, sc, "shop_api", "[::1]:80");
    EXPECT_EQ(status_of([&] { delete_server(st, sc, "shop_api", "[::1]:80"); }), 404);
    EXPECT_EQ(status_of([&] { patch_server(st, sc, "shop_api", "[::1]:80", "{}"); }), 404);
    EXPECT_EQ(status_of([&] { render_server(st, sc, "shop_api", "[::1]:80"); }), 404);
    put_server(st, sc, "shop_api", "[::1]:80", "{}");
    EXPECT_GT(st.servers["shop_api"].servers.at("[::1]:80").id, id);
}

// the design's "Bad input" table, at the API
TEST(Members, BadInput)
{
    State st;
    Schema sc = schema();
    std::string why;

    EXPECT_EQ(status_of([&] { put_server(st, sc, "shop_api", "10.0.0.300:80", "{}"); }, &why), 400);
    EXPECT_TRUE(has(why, "unix:/path (no port is 80"));
    EXPECT_EQ(status_of([&] { put_server(st, sc, "shop_api", "host.example:80", "{}"); }, &why), 400);
    EXPECT_TRUE(has(why, "no DNS"));
    EXPECT_EQ(status_of([&] { put_servers(st, sc, "shop_api", R"({"[::1:80":{}})"); }), 400);
    EXPECT_EQ(status_of([&] { put_servers(st, sc, "shop_api", R"({"unix:":{}})"); }), 400);
    EXPECT_EQ(status_of([&] { put_server(st, sc, "shop_api", "10.0.0.5:0", "{}"); }, &why), 400);
    EXPECT_TRUE(has(why, "is not from 1 to 65535"));

    EXPECT_EQ(status_of([&] { put_server(st, sc, "cache", "10.0.0.5", R"({"backup":true})"); }, &why), 400);
    EXPECT_EQ(why, "upstream \"cache\" balances by hash: server \"10.0.0.5:80\" cannot be a backup");

    for (const char *w : {"0", "10001", "1.5", "\"2\"", "-1", "true"}) {
        EXPECT_EQ(status_of([&] {
            put_server(st, sc, "shop_api", "10.0.0.5", std::string("{\"weight\":") + w + "}");
        }, &why), 400) << w;
        EXPECT_EQ(why, "the \"weight\" of server \"10.0.0.5:80\" must be an integer from 1 to 10000");
    }
    put_server(st, sc, "shop_api", "10.0.0.5", R"({"weight":10000})");

    EXPECT_EQ(status_of([&] {
        put_servers(st, sc, "shop_api", R"({"[::1]:80":{},"[0:0::1]:80":{}})");
    }, &why), 400);
    EXPECT_EQ(why, "server addresses \"[0:0::1]:80\" and \"[::1]:80\" are the same server, [::1]:80");

    for (const char *body : {R"({"fail_timeout":"10m"})", R"({"fail_timeout":-1})",
                             R"({"fail_timeout":604801})", R"({"max_fails":65536})",
                             R"({"down":1})", R"({"id":3})", R"({"server":"10.0.0.5"})",
                             R"([])", R"({"weight":1,"weight":2})"}) {
        EXPECT_EQ(status_of([&] { put_server(st, sc, "shop_api", "10.0.0.5", body); }), 400) << body;
    }
    EXPECT_EQ(status_of([&] { put_servers(st, sc, "shop_api", R"({"10.0.0.5":[]})"); }), 400);
    put_server(st, sc, "shop_api", "10.0.0.5", R"({"fail_timeout":"0s","max_fails":65535})");
    EXPECT_EQ(st.servers["shop_api"].servers.at("10.0.0.5:80").fail_timeout, 0u);

    // groups that are not there
    EXPECT_EQ(status_of([&] { put_servers(st, sc, "shop_ap", "{}"); }, &why), 404);
    EXPECT_EQ(why, "no upstream with dynroute_servers and no service \"shop_ap\" "
                   "(did you mean \"shop_api\"?)");
    EXPECT_EQ(status_of([&] { render_servers(st, sc, "service_a"); }, &why), 404);
    EXPECT_EQ(why, "upstream{} \"service_a\" has no dynroute_servers: its servers are its server lines");
    EXPECT_EQ(status_of([&] { reset_servers(st, sc, "nope"); }), 404);
}

TEST(Members, IdsSkipThoseInUseWhenTheCounterWraps)
{
    ServerGroup g;
    g.servers = {{"10.0.0.1:80", spec(1)}, {"10.0.0.2:80", spec(0)},
                 {"10.0.0.3:80", spec(0)}};
    g.next_id = 0xffffffffu;
    g.assign_ids();
    EXPECT_EQ(g.servers.at("10.0.0.2:80").id, 0xffffffffu);
    EXPECT_EQ(g.servers.at("10.0.0.3:80").id, 2u);  // 0 and 1 skipped
    EXPECT_EQ(g.next_id, 3u);
}

TEST(Members, Services)
{
    State st;
    Schema sc = schema();
    std::string why;

    EXPECT_TRUE(put_service(st, sc, "cart", R"({"servers":{"10.0.1.1:80":{},"10.0.1.2":{"backup":true}}})"));
    EXPECT_FALSE(put_service(st, sc, "cart", R"({"balance":"round_robin"})"));
    EXPECT_EQ(st.services["cart"].group.servers.size(), 2u);   // kept
    EXPECT_EQ(st.services["cart"].id, 1u);
    EXPECT_EQ(render_service(st, sc, "cart"),
              R"({"generation":0,"name":"cart","balance":"round_robin","servers":{)"
              R"("10.0.1.1:80":{"weight":1,"max_fails":1,"fail_timeout":"10s","backup":false,"down":false,"drain":false},)"
              R"("10.0.1.2:80":{"weight":1,"max_fails":1,"fail_timeout":"10s","backup":true,"down":false,"drain":false}}})");

    // a service's servers through upstreams/NAME/servers
    put_server(st, sc, "cart", "10.0.1.3", "{}");
    EXPECT_EQ(st.services["cart"].group.servers.at("10.0.1.3:80").id, 3u);
    EXPECT_EQ(status_of([&] { reset_servers(st, sc, "cart"); }), 405);

    // names
    EXPECT_EQ(status_of([&] { put_service(st, sc, "Shop_API", "{}"); }, &why), 409);
    EXPECT_EQ(why, "a service cannot be called \"Shop_API\": that is the configuration's upstream{} \"shop_api\"");
    EXPECT_EQ(status_of([&] { put_service(st, sc, "balanced", "{}"); }), 409);
    EXPECT_EQ(status_of([&] { put_service(st, sc, "CHECKOUT", "{}"); }, &why), 409);
    EXPECT_TRUE(has(why, "dynroute_rollout \"checkout\""));
    EXPECT_EQ(status_of([&] { put_service(st, sc, "a/b", "{}"); }), 400);
    EXPECT_EQ(status_of([&] { put_service(st, sc, "", "{}"); }), 400);

    // balance and limits
    EXPECT_EQ(status_of([&] { put_service(st, sc, "cart", R"({"balance":"hash"})"); }, &why), 400);
    EXPECT_TRUE(has(why, "not available for services: upstream{} \"services\" (dynroute_services) balances them round robin"));
    EXPECT_EQ(status_of([&] { put_service(st, sc, "cart", R"({"balance":"random"})"); }), 400);
    EXPECT_EQ(status_of([&] {
        put_service(st, sc, "search", R"({"servers":{"10.0.2.1":{},"10.0.2.2":{},"10.0.2.3":{}}})");
    }, &why), 507);
    EXPECT_EQ(why, "the services would have 6 servers, more than dynroute_services servers=5: nothing changed");
    EXPECT_TRUE(put_service(st, sc, "search", "{}"));
    EXPECT_EQ(st.services["search"].id, 2u);
    EXPECT_EQ(status_of([&] { put_service(st, sc, "third", "{}"); }), 507);
    EXPECT_EQ(status_of([&] { patch_servers(st, sc, "search", R"({"10.0.2.1":{},"10.0.2.2":{},"10.0.2.3":{}})"); }), 507);

    EXPECT_EQ(render_services(st, sc),
              R"({"generation":0,"carrier":"services","max_services":2,"max_servers":5,"servers":3,)"
              R"("services":{"cart":{"balance":"round_robin","servers":3},"search":{"balance":"round_robin","servers":0}}})");
    EXPECT_TRUE(has(render_upstreams(st, sc),
                    R"("cart":{"service":true,"runtime":true,"balance":"round_robin","servers":2,"backup":1})"));
    EXPECT_TRUE(has(render_upstreams(st, sc),
                    R"("shop_api":{"service":false,"runtime":false,"balance":"round_robin","servers":2,"backup":1,"max":4})"));

    delete_service(st, sc, "search");
    EXPECT_EQ(status_of([&] { delete_service(st, sc, "search"); }), 404);
    EXPECT_EQ(status_of([&] { render_service(st, sc, "carts"); }, &why), 404);
    EXPECT_EQ(why, "no service \"carts\" (did you mean \"cart\"?)");
}

TEST(Members, ServicesAreTargetsUntilDeleted)
{
    State st;
    Schema sc = schema();
    std::string why;

    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com", R"({"target":"cart"})"); }, &why), 400);
    EXPECT_EQ(why, "\"cart\" is neither an upstream{} nor a dynroute_rollout of "
                   "the configuration, nor a runtime service");
    put_service(st, sc, "cart", "{}");
    EXPECT_TRUE(is_runtime_target(st, sc, "cart"));
    put_host(st, sc, "a.example.com", R"({"target":"cart"})");
    patch_rollout(st, sc, "checkout", R"({"upstreams":{"canary":"cart"}})");
    EXPECT_EQ(st.rollouts["checkout"].upstreams["canary"], "cart");

    State before = st;
    EXPECT_EQ(status_of([&] { delete_service(st, sc, "cart"); }, &why), 409);
    EXPECT_EQ(why, "service \"cart\" is still the target of runtime host "
                   "\"a.example.com\", variant \"canary\" of rollout "
                   "\"checkout\": point them elsewhere first");
    EXPECT_TRUE(st.services == before.services);

    delete_host(st, "a.example.com");
    reset_rollout(st, sc, "checkout");
    delete_service(st, sc, "cart");
    EXPECT_TRUE(st.services.empty());
}

TEST(Members, NoCarrierNoServices)
{
    State st;
    Schema sc = schema();
    sc.services = ServicesInfo();
    std::string why;

    EXPECT_EQ(status_of([&] { put_service(st, sc, "cart", "{}"); }, &why), 409);
    EXPECT_EQ(why, "runtime services need an upstream{} with dynroute_services "
                   "to carry them: add one to the configuration");
    EXPECT_EQ(status_of([&] { render_services(st, sc); }), 404);
    EXPECT_EQ(status_of([&] { render_service(st, sc, "cart"); }), 404);
    EXPECT_EQ(status_of([&] { delete_service(st, sc, "cart"); }), 404);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com", R"({"target":"cart"})"); }, &why), 400);
    EXPECT_EQ(why, "\"cart\" is neither an upstream{} nor a dynroute_rollout of "
                   "the configuration");
}

// ---- the state file, version 2 ----------------------------------------------

TEST(MembersFile, RoundTrip)
{
    State st;
    Schema sc = schema();
    sc.servers["shop_api"].max = 8;
    patch_servers(st, sc, "shop_api",
                  R"({"10.0.0.6:8080":null,"unix:/run/app.sock":{"weight":7,"max_fails":0,)"
                  R"("fail_timeout":3,"down":true,"drain":true},"[::1]:81":{"backup":true}})");
    put_service(st, sc, "cart", R"({"servers":{"10.0.1.1":{"weight":2}}})");
    put_service(st, sc, "empty", "{}");
    put_host(st, sc, "a.example.com", R"({"target":"cart"})");

    std::string file = dump_state(st, true);
    EXPECT_TRUE(has(file, R"({"version":2,)"));
    EXPECT_TRUE(has(file, R"("services":{"cart":{"balance":"round_robin","servers":{"10.0.1.1:80":{"weight":2,)"));
    EXPECT_FALSE(has(file, "\"id\""));

    std::vector<std::string> notices;
    State back = load_state(file, sc, notices);
    EXPECT_TRUE(notices.empty());
    EXPECT_EQ(dump_state(back, true), file);
    // ids afresh; configured addresses keep the configured ones
    const ServerList &l = back.servers["shop_api"].servers;
    EXPECT_EQ(l.at("10.0.0.5:8080").id, 1u);
    EXPECT_EQ(l.at("10.0.0.9:8080").id, 3u);
    EXPECT_GE(l.at("unix:/run/app.sock").id, 4u);
    EXPECT_NE(l.at("unix:/run/app.sock").id, l.at("[::1]:81").id);
    EXPECT_EQ(back.services["cart"].id, 1u);
    EXPECT_EQ(back.services["empty"].id, 2u);
    EXPECT_EQ(back.next_service_id, 3u);
    EXPECT_EQ(back.hosts["a.example.com"].target, "cart");

    // nothing to say: no "servers", no "services"
    State none;
    EXPECT_FALSE(has(dump_state(none, true), "servers"));
    EXPECT_FALSE(has(dump_state(none, true), "services"));
}

TEST(MembersFile, VersionOneStillLoads)
{
    std::vector<std::string> notices;
    State st = load_state(R"({"version":1,"generation":3,"draining":false,)"
                          R"("rollouts":{},"hosts":{"a.example.com":{"table":"main","target":"service_a"}}})",
                          schema(), notices);
    EXPECT_EQ(st.generation, 3u);
    EXPECT_EQ(st.hosts.size(), 1u);
    EXPECT_TRUE(st.servers.empty());
    EXPECT_TRUE(notices.empty());
}

TEST(MembersFile, DamagedListsAreRefusedWhole)
{
    std::vector<std::string> notices;
    for (const char *bad : {
             R"({"version":2,"servers":[]})",
             R"({"version":2,"servers":{"shop_api":[]}})",
             R"({"version":2,"servers":{"shop_api":{"10.0.0.300":{}}}})",
             R"({"version":2,"servers":{"shop_api":{"10.0.0.1":{"weight":0}}}})",
             R"({"version":2,"servers":{"shop_api":{"[::1]":{},"[0::1]:80":{}}}})",
             R"({"version":2,"services":{"a/b":{}}})",
             R"({"version":2,"services":{"cart":[]}})",
             R"({"version":2,"services":{"cart":{"balance":"random"}}})",
             R"({"version":2,"services":{"cart":{"servers":[]}}})"}) {
        EXPECT_THROW(load_state(bad, schema(), notices), ConfigError) << bad;
    }
}

TEST(MembersFile, PruneSaysWhatItDrops)
{
    State st;
    Schema sc = schema();
    sc.servers["shop_api"].max = 8;
    sc.services.max_servers = 10;
    sc.services.hash = true;
    put_servers(st, sc, "shop_api", R"({"10.0.0.1":{},"10.0.0.2":{},"10.0.0.3":{"backup":true}})");
    put_servers(st, sc, "cache", R"({"10.0.3.1":{}})");
    put_service(st, sc, "cart", R"({"servers":{"10.0.1.1":{},"10.0.1.2":{}}})");
    put_service(st, sc, "search", R"({"balance":"hash","servers":{"10.0.2.1":{},"10.0.2.2":{}}})");
    put_host(st, sc, "a.example.com", R"({"target":"cart"})");
    std::string file = dump_state(st, true);

    // shop_api's max lowered to 2 and it hashes now; cache lost
    // dynroute_servers; an upstream{} took the name "Cart"; the carrier
    // has no hash= and room for one server
    Schema next = sc;
    next.servers["shop_api"].max = 1;
    next.servers["shop_api"].hash = true;
    next.servers.erase("cache");
    next.upstream_blocks.push_back("Cart");
    next.services.hash = false;
    next.services.max_servers = 1;

    std::vector<std::string> notices;
    State back = load_state(file, next, notices);
    ASSERT_EQ(notices.size(), 7u);
    EXPECT_EQ(notices[0], "dropped the runtime servers of upstream \"cache\": it has no dynroute_servers any more");
    EXPECT_EQ(notices[1], "dropped the backup servers \"10.0.0.3:80\" of upstream \"shop_api\": it balances by hash");
    EXPECT_EQ(notices[2], "dropped the servers \"10.0.0.2:80\" of upstream \"shop_api\": over its max=1");
    EXPECT_EQ(notices[3], "dropped runtime service \"cart\": its name is the configuration's upstream{} \"Cart\" now");
    EXPECT_EQ(notices[4], "runtime service \"search\" balances by round robin: dynroute_services has no hash= any more");
    EXPECT_EQ(notices[5], "dropped the servers \"10.0.2.2:80\" of runtime service \"search\": over dynroute_services servers=1");
    EXPECT_EQ(notices[6], "dropped runtime host \"a.example.com\": its target \"cart\" is no longer configured");
    EXPECT_EQ(back.servers["shop_api"].servers.size(), 1u);
    EXPECT_EQ(back.services.size(), 1u);

    // what prune left, prune leaves alone
    notices.clear();
    prune(back, next, notices);
    EXPECT_TRUE(notices.empty());

    // no carrier: every service goes, one notice each
    next.services = ServicesInfo();
    back = load_state(file, sc, notices);
    notices.clear();
    prune(back, next, notices);
    ASSERT_EQ(notices.size(), 6u);
    EXPECT_EQ(notices[3], "dropped runtime service \"cart\": no upstream{} has dynroute_services any more");
    EXPECT_EQ(notices[4], "dropped runtime service \"search\": no upstream{} has dynroute_services any more");
    EXPECT_TRUE(back.services.empty());
}
