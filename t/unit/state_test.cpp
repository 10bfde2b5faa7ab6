// The runtime state: API changes, the state file, pruning on a new
// configuration (the zone's snapshot: snapshot_test.cpp).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "runtime_hosts.hpp"
#include "rollout.hpp"
#include "state.hpp"

#include <nlohmann/json.hpp>

using namespace dynroute;

namespace {

Schema schema()
{
    Schema s;
    s.rollouts.push_back({"checkout", {"stable", "canary"}, {9000, 1000},
                          {"service_a", "service_b"}, 0});
    s.tables = {"main"};
    s.table_rules = {3};
    s.upstreams = {"service_a", "service_b", "service_b_green"};
    return s;
}

int status_of(const std::function<void()> &f)
{
    try {
        f();
    } catch (const ApiError &e) {
        return e.status;
    }
    return 200;
}

}  // namespace

TEST(State, WeightsReplaceTheConfiguredOnes)
{
    State st;
    Schema sc = schema();
    patch_rollout(st, sc, "checkout", R"({"weights":{"stable":75,"canary":25}})");
    Effective e = effective(sc.rollouts[0], &st.rollouts["checkout"]);
    EXPECT_EQ(e.weights, (std::vector<std::uint32_t>{7500, 2500}));

    patch_rollout(st, sc, "checkout", R"({"weights":{"canary":"100%"}})");
    e = effective(sc.rollouts[0], &st.rollouts["checkout"]);
    EXPECT_EQ(e.weights, (std::vector<std::uint32_t>{0, 10000}));

    // back to the configured weights: no override left
    patch_rollout(st, sc, "checkout", R"({"weights":{"stable":90,"canary":10}})");
    EXPECT_TRUE(st.rollouts.empty());
}

TEST(State, RefusesBadChangesAndKeepsTheState)
{
    State st;
    Schema sc = schema();
    patch_rollout(st, sc, "checkout", R"({"weights":{"stable":50,"canary":50}})");
    State before = st;

    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "nope", "{}"); }), 404);
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "checkout", "{"); }), 400);
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "checkout", "[]"); }), 400);
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "checkout", "{}"); }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout", R"({"weights":{"stable":50}})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout",
                      R"({"weights":{"stable":50.001,"canary":49.999}})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout", R"({"weights":{"blue":100}})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout",
                      R"({"weights":{"stable":100},"upstreams":{"canary":"x.example.com"}})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout", R"({"colour":"blue"})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_rollout(st, sc, "checkout", std::string(100, '[') + std::string(100, ']'));
    }), 400);

    EXPECT_EQ(dump_state(st, true), dump_state(before, true));
}

TEST(State, ErrorsNameWhatIsWrong)
{
    State st;
    Schema sc = schema();
    try {
        patch_rollout(st, sc, "checkout", R"({"weights":{"stable":60,"canary":30}})");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_STREQ(e.what(),
                     "the weights sum to 90%, not 100% (a variant left out gets 0%)");
    }
    try {
        patch_rollout(st, sc, "checkout", R"({"weights": tru})");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos);
    }
    EXPECT_EQ(render_error("bad \xff byte"), "{\"error\":\"bad \xEF\xBF\xBD byte\"}");
}

TEST(State, FlipAndPrimary)
{
    State st;
    Schema sc = schema();
    patch_rollout(st, sc, "checkout",
                  R"({"upstreams":{"canary":"service_b_green"},"primary":"canary"})");
    Effective e = effective(sc.rollouts[0], &st.rollouts["checkout"]);
    EXPECT_EQ(e.upstreams[1], "service_b_green");
    EXPECT_EQ(e.primary, 1u);
    reset_rollout(st, sc, "checkout");
    EXPECT_TRUE(st.rollouts.empty());
}

TEST(State, Hosts)
{
    State st;
    Schema sc = schema();
    EXPECT_TRUE(put_host(st, sc, "Tenant1.Example.com.", R"({"target":"service_a"})"));
    EXPECT_FALSE(put_host(st, sc, "tenant1.example.com", R"({"target":"checkout"})"));
    EXPECT_EQ(st.hosts["tenant1.example.com"].target, "checkout");
    EXPECT_EQ(st.hosts["tenant1.example.com"].table, "main");

    EXPECT_EQ(status_of([&] { put_host(st, sc, "*.example.com", R"({"target":"service_a"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "10.0.0.1", R"({"target":"service_a"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com:80", R"({"target":"service_a"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com", R"({"target":"@local"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com", R"({"target":"service_a","table":"x"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "a.example.com", R"({})"); }), 400);
    EXPECT_EQ(status_of([&] { delete_host(st, "b.example.com"); }), 404);

    BulkResult r = patch_hosts(st, sc, R"({"a.example.com":{"target":"service_a"},
                                            "tenant1.example.com":null})");
    EXPECT_EQ(r.added, 1u);
    EXPECT_EQ(r.removed, 1u);
    // all or nothing
    EXPECT_EQ(status_of([&] {
        patch_hosts(st, sc, R"({"c.example.com":{"target":"service_a"},"d.example.com":null})");
    }), 404);
    EXPECT_EQ(st.hosts.size(), 1u);
}

TEST(State, FileRoundTripAndPruning)
{
    State st;
    Schema sc = schema();
    st.generation = 7;
    st.draining = true;
    patch_rollout(st, sc, "checkout",
                  R"({"weights":{"stable":87.5,"canary":12.5},"upstreams":{"canary":"service_b_green"}})");
    put_host(st, sc, "t.example.com", R"({"target":"checkout"})");

    std::vector<std::string> notices;
    State back = load_state(dump_state(st, true), sc, notices);
    EXPECT_TRUE(notices.empty());
    EXPECT_EQ(dump_state(back, true), dump_state(st, true));
    EXPECT_EQ(back.generation, 7u);
    EXPECT_TRUE(back.draining);

    // the next configuration has no service_b_green, a third variant, and
    // no rollout "checkout" for the host to point at
    Schema next = sc;
    next.upstreams.erase("service_b_green");
    next.rollouts[0].variants.push_back("dark");
    next.rollouts[0].weights = {9000, 1000, 0};
    next.rollouts[0].upstreams.push_back("service_a");
    back = load_state(dump_state(st, true), next, notices);
    EXPECT_EQ(notices.size(), 2u);
    EXPECT_TRUE(back.rollouts.empty());
    EXPECT_EQ(back.hosts.size(), 1u);

    notices.clear();
    next.rollouts.clear();
    back = load_state(dump_state(st, true), next, notices);
    EXPECT_EQ(notices.size(), 2u);  // the rollout, the host
    EXPECT_TRUE(back.hosts.empty());
}

TEST(State, CorruptFilesAreRefusedWhole)
{
    Schema sc = schema();
    std::vector<std::string> notices;
    for (const char *bad : {"", "{", "[]", "{\"version\":3}", "{\"generation\":1}",
                            "{\"version\":1,\"rollouts\":[]}",
                            "{\"version\":1,\"hosts\":{\"a b\":{\"table\":\"main\",\"target\":\"service_a\"}}}",
                            "{\"version\":1,\"rollouts\":{\"checkout\":{\"weights\":{\"stable\":\"x\"}}}}"}) {
        EXPECT_THROW(load_state(bad, sc, notices), ConfigError) << bad;
    }
}

TEST(Normalize, HostNames)
{
    std::string out, why;
    EXPECT_TRUE(normalize_host("A.Example.COM.", out, why));
    EXPECT_EQ(out, "a.example.com");
    EXPECT_FALSE(normalize_host("a..b", out, why));
    EXPECT_FALSE(normalize_host("a..", out, why));  // found by fuzz_state
    EXPECT_FALSE(normalize_host(".", out, why));
    EXPECT_FALSE(normalize_host("", out, why));
    EXPECT_FALSE(normalize_host(std::string(64, 'a') + ".com", out, why));
    EXPECT_FALSE(normalize_host("127.0.0.1", out, why));
    EXPECT_FALSE(normalize_host("[::1]", out, why));
    EXPECT_FALSE(normalize_host("a/b", out, why));
}

TEST(RolloutRuntime, SetWeightsMovesKeysOneWay)
{
    Rollout r("checkout");
    r.add_variant("stable", "90%");
    r.add_variant("canary", "10%");
    r.finish();
    // the runtime's split, read in place: the rollout is not copied
    std::vector<std::uint32_t> w{7500, 2500};
    Split ramp{w.data(), 0};
    int moved_back = 0, canary = 0;
    for (int i = 0; i < 10000; i++) {
        std::string k = "user" + std::to_string(i);
        if (r.by_weight(k) == 1 && r.by_weight(k, ramp) == 0) {
            moved_back++;
        }
        canary += r.by_weight(k, ramp) == 1;
    }
    EXPECT_EQ(moved_back, 0);
    EXPECT_NEAR(canary, 2500, 250);
    EXPECT_TRUE(r.valid_weights(w.data(), 2));
    std::vector<std::uint32_t> bad{5000, 4000}, over{10001, 0};
    EXPECT_FALSE(r.valid_weights(bad.data(), 2));
    EXPECT_FALSE(r.valid_weights(over.data(), 2));
    EXPECT_FALSE(r.valid_weights(w.data(), 1));
    EXPECT_FALSE(r.valid_weights(nullptr, 2));
    ramp.primary = 1;
    EXPECT_EQ(r.by_override("always", ramp), 0u);
    EXPECT_EQ(r.by_override("never", ramp), 1u);
    EXPECT_EQ(r.by_override("always"), 1u);   // the configured primary
}

// What a fleet agent reports: validated, kept in the state file, absent
// until reported.
TEST(State, Fleet)
{
    dynroute::State st;
    EXPECT_THROW(dynroute::render_fleet(st), dynroute::ApiError);
    EXPECT_EQ(dynroute::dump_state(st, false).find("fleet"), std::string::npos);

    for (const char *bad : {"{}", "{\"revision\": -1}", "{\"revision\": \"7\"}",
                            "{\"revision\": 7, \"stale\": 1}",
                            "{\"revision\": 7, \"node\": \"a\"}", "[7]"}) {
        try {
            dynroute::put_fleet(st, bad);
            ADD_FAILURE() << bad;
        } catch (const dynroute::ApiError &e) {
            EXPECT_EQ(e.status, 400) << bad;
        }
        EXPECT_FALSE(st.fleet.set) << bad;
    }

    dynroute::put_fleet(st, "{\"revision\": 42, \"stale\": true}");
    EXPECT_TRUE(st.fleet.set);
    EXPECT_EQ(st.fleet.revision, 42u);
    EXPECT_TRUE(st.fleet.stale);
    EXPECT_NE(dynroute::render_fleet(st).find("\"revision\":42"),
              std::string::npos);

    dynroute::Schema schema;
    std::vector<std::string> notices;
    dynroute::State back = dynroute::load_state(dynroute::dump_state(st, true),
                                                schema, notices);
    EXPECT_TRUE(back.fleet == st.fleet);

    dynroute::put_fleet(st, "{\"revision\": 43}");
    EXPECT_FALSE(st.fleet.stale);
}

TEST(State, DuplicateKeysAreRefusedByName)
{
    State st;
    Schema sc = schema();

    // the reported change: which weight of "stable" would count?
    try {
        patch_rollout(st, sc, "checkout",
                      R"({"weights":{"stable":100,"stable":0,"canary":100}})");
        FAIL() << "accepted";
    } catch (const ApiError &e) {
        EXPECT_EQ(e.status, 400);
        EXPECT_STREQ(e.what(),
                     "duplicate key \"stable\" in the request body");
    }
    EXPECT_TRUE(st.rollouts.empty());

    EXPECT_EQ(status_of([&] {
        put_host(st, sc, "a.example.com",
                 R"({"target":"service_a","target":"service_b"})");
    }), 400);
    EXPECT_EQ(status_of([&] {
        patch_hosts(st, sc, R"({"a.example.com":{"target":"service_a"},)"
                            R"("a.example.com":null})");
    }), 400);
    EXPECT_TRUE(st.hosts.empty());

    // the same key in two objects is no duplicate
    patch_hosts(st, sc, R"({"a.example.com":{"target":"service_a"},)"
                        R"("b.example.com":{"target":"service_a"}})");
    EXPECT_EQ(st.hosts.size(), 2u);

    std::vector<std::string> notices;
    EXPECT_THROW(load_state(R"({"version":1,"version":1})", sc, notices),
                 ConfigError);
}

TEST(State, GenerationsStopBeforeTheyWouldWrap)
{
    std::vector<std::string> notices;
    Schema sc = schema();

    State st = load_state(R"({"version":1,"generation":9007199254740991})",
                          sc, notices);
    EXPECT_EQ(st.generation, max_generation);

    // the reported file: 2^64 - 1 is not a generation
    EXPECT_THROW(load_state(R"({"version":1,"generation":18446744073709551615})",
                            sc, notices),
                 ConfigError);
    EXPECT_THROW(load_state(R"({"version":1,"generation":9007199254740992})",
                            sc, notices),
                 ConfigError);
}

TEST(Guard, ATripGivesTheVariantsWeightToThePrimary)
{
    State st;
    Schema sc = schema();
    trip_guard(st, sc, "checkout", "canary", GuardReason::errors,
               "5xx 60.0% of 50 responses in 10s", 1796640000250);
    const RolloutOverride &o = st.rollouts["checkout"];
    EXPECT_EQ(effective(sc.rollouts[0], &o).weights,
              (std::vector<std::uint32_t>{10000, 0}));
    EXPECT_EQ(o.trip.variant, "canary");
    EXPECT_FALSE(o.trip.fleet);

    std::string r = render_rollout(st, sc, "checkout");
    EXPECT_NE(r.find("\"tripped\":{\"variant\":\"canary\",\"reason\":\"errors\""),
              std::string::npos) << r;
    EXPECT_NE(r.find("\"at\":1796640000.25"), std::string::npos) << r;
    EXPECT_NE(r.find("\"origin\":\"local\""), std::string::npos) << r;

    // the primary cannot trip, an unknown variant is a 404
    EXPECT_EQ(status_of([&] { trip_guard(st, sc, "checkout", "stable",
                                         GuardReason::errors, "", 1); }), 409);
    EXPECT_EQ(status_of([&] { trip_guard(st, sc, "checkout", "dark",
                                         GuardReason::errors, "", 1); }), 404);

    // an operator's write clears the trip
    patch_rollout(st, sc, "checkout", R"({"weights":{"stable":95,"canary":5}})");
    EXPECT_FALSE(st.rollouts["checkout"].trip.tripped());
}

TEST(Guard, TheFleetReplaysATripThroughAPatch)
{
    State st;
    Schema sc = schema();
    patch_rollout(st, sc, "checkout",
                  R"({"weights":{"stable":100,"canary":0},"guard":{"tripped":{"variant":"canary","reason":"latency","detail":"p99 900 ms","at":1796640000.5,"origin":"local"}}})");
    const RolloutOverride &o = st.rollouts["checkout"];
    EXPECT_TRUE(o.trip.fleet);
    EXPECT_EQ(o.trip.reason, GuardReason::latency);
    EXPECT_EQ(o.trip.at_ms, 1796640000500u);
    EXPECT_EQ(o.trip.detail, "p99 900 ms");

    for (const char *bad : {
             R"({"guard":{}})", R"({"guard":{"tripped":{}}})",
             R"({"guard":{"tripped":{"variant":"dark"}}})",
             R"({"guard":{"tripped":{"variant":"canary","reason":"slow"}}})",
             R"({"guard":{"tripped":{"variant":"canary","at":-1}}})",
             R"({"guard":{"tripped":{"variant":"canary"},"x":1}})"}) {
        State before = st;
        EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "checkout", bad); }),
                  400) << bad;
        EXPECT_EQ(dump_state(st, true), dump_state(before, true)) << bad;
    }
}

TEST(Guard, ATripAbortsARampAndWeightsPauseIt)
{
    State st;
    Schema sc = schema();
    st.rollouts["checkout"].ramp = {RampPhase::running, 2, 1000, 0, ""};
    patch_rollout(st, sc, "checkout", R"({"weights":{"stable":80,"canary":20}})");
    EXPECT_EQ(st.rollouts["checkout"].ramp.phase, RampPhase::paused);

    trip_guard(st, sc, "checkout", "canary", GuardReason::latency, "slow", 5);
    EXPECT_EQ(st.rollouts["checkout"].ramp.phase, RampPhase::aborted);
    EXPECT_EQ(st.rollouts["checkout"].ramp.why, "slow");

    // DELETE forgets both
    reset_rollout(st, sc, "checkout");
    EXPECT_TRUE(st.rollouts.empty());
}

TEST(Guard, TripAndRampSurviveTheStateFile)
{
    State st;
    Schema sc = schema();
    trip_guard(st, sc, "checkout", "canary", GuardReason::errors,
               "5xx \"all\"", 1796640000001);
    st.rollouts["checkout"].ramp = {RampPhase::aborted, 3, 1796640000000,
                                    1500, "5xx \"all\""};
    std::vector<std::string> notices;
    State back = load_state(dump_state(st, false), sc, notices);
    EXPECT_TRUE(notices.empty());
    EXPECT_EQ(back.rollouts["checkout"].trip, st.rollouts["checkout"].trip);
    EXPECT_EQ(back.rollouts["checkout"].ramp, st.rollouts["checkout"].ramp);
    EXPECT_EQ(dump_state(back, false), dump_state(st, false));

    // a trip of a variant the next configuration lacks is dropped
    Schema next = sc;
    next.rollouts[0].variants = {"stable", "beta"};
    back = load_state(dump_state(st, false), next, notices);
    EXPECT_FALSE(back.rollouts["checkout"].trip.tripped());

    for (const char *bad : {
             R"({"version":2,"generation":1,"rollouts":{"checkout":{"guard":{"tripped":{"reason":"errors"}}}}})",
             R"({"version":2,"generation":1,"rollouts":{"checkout":{"ramp":{"state":"flying","step":0,"since":0,"held":0}}}})",
             R"({"version":2,"generation":1,"rollouts":{"checkout":{"ramp":{"state":"running","step":0}}}})"}) {
        EXPECT_THROW(load_state(bad, sc, notices), ConfigError) << bad;
    }
}

// GET {prefix}: a table keyed by a variable says which (key=$variable);
// a Host table, and a schema without keys, say nothing of it.
TEST(State, RenderNamesATableKey)
{
    State st;
    Schema sc = schema();
    sc.tables = {"main", "tenants"};
    sc.table_rules = {3, 2};

    std::string out = render_state(st, sc, "routes");
    EXPECT_EQ(out.find("\"key\""), std::string::npos) << out;

    sc.table_keys = {"", "$http_x_tenant"};
    out = render_state(st, sc, "routes");
    EXPECT_NE(out.find("\"tenants\":{\"rules\":2,\"hosts\":0,"
                       "\"key\":\"$http_x_tenant\"}"),
              std::string::npos) << out;
    EXPECT_NE(out.find("\"main\":{\"rules\":3,\"hosts\":0}"),
              std::string::npos) << out;
}

namespace {

// schema() with stream{}'s: a table "sni" (the http table is "main"),
// upstreams db_a and db_b, a rollout "db", all with the stream prefix
Schema with_stream()
{
    Schema s = schema();
    RolloutInfo db;
    db.name = "stream/db";
    db.variants = {"stable", "canary"};
    db.weights = {10000, 0};
    db.upstreams = {"stream/db_a", "stream/db_b"};
    s.rollouts.push_back(db);
    s.tables.push_back("stream/sni");
    s.table_rules.push_back(2);
    s.upstreams.insert({"stream/db_a", "stream/db_b"});
    return s;
}

}  // namespace

TEST(State, NamespaceOfAName)
{
    EXPECT_TRUE(in_ns("main", ""));
    EXPECT_FALSE(in_ns("main", stream_ns));
    EXPECT_TRUE(in_ns("stream/sni", stream_ns));
    EXPECT_FALSE(in_ns("stream/sni", ""));
    EXPECT_FALSE(in_ns("streamx/sni", stream_ns));
    EXPECT_TRUE(in_ns("streamx/sni", ""));
    EXPECT_EQ(strip_ns("stream/sni", stream_ns), "sni");
    EXPECT_EQ(strip_ns("main", stream_ns), "main");
    EXPECT_EQ(strip_ns("stream/sni", ""), "stream/sni");
}

// Each namespace's hosts go to its own tables and targets, its default
// table is its only one, and neither sees nor takes the other's.
TEST(State, StreamHostsAreApart)
{
    State st;
    Schema sc = with_stream();

    // one table in each namespace: no "table" needed in either
    EXPECT_TRUE(put_host(st, sc, "api.example.com",
                         R"({"target":"service_a"})"));
    EXPECT_TRUE(put_host(st, sc, "db.example.com", R"({"target":"db_a"})",
                         stream_ns));
    EXPECT_EQ(st.hosts["api.example.com"], (HostEntry{"main", "service_a"}));
    EXPECT_EQ(st.hosts["db.example.com"],
              (HostEntry{"stream/sni", "stream/db_a"}));
    EXPECT_TRUE(put_host(st, sc, "r.example.com",
                         R"({"target":"db","table":"sni"})", stream_ns));
    EXPECT_EQ(st.hosts["r.example.com"],
              (HostEntry{"stream/sni", "stream/db"}));

    // a target or table of the other namespace is not one
    EXPECT_EQ(status_of([&] { put_host(st, sc, "x.example.com",
                                       R"({"target":"service_a"})",
                                       stream_ns); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "x.example.com",
                                       R"({"target":"db_a"})"); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "x.example.com",
                                       R"({"target":"stream/db_a"})"); }),
              400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "x.example.com",
                                       R"({"target":"db_a","table":"main"})",
                                       stream_ns); }), 400);
    EXPECT_EQ(status_of([&] { put_host(st, sc, "x.example.com",
                                       R"({"target":"service_a",)"
                                       R"("table":"stream/sni"})"); }), 400);

    // a host of one namespace is not taken, read or deleted by the other
    EXPECT_EQ(status_of([&] { put_host(st, sc, "db.example.com",
                                       R"({"target":"service_a"})"); }), 409);
    EXPECT_EQ(status_of([&] { patch_hosts(st, sc,
                                          R"({"api.example.com":)"
                                          R"({"target":"db_b"}})",
                                          stream_ns); }), 409);
    EXPECT_EQ(status_of([&] { delete_host(st, "db.example.com"); }), 404);
    EXPECT_EQ(status_of([&] { patch_hosts(st, sc,
                                          R"({"db.example.com":null})"); }),
              404);
    EXPECT_EQ(status_of([&] { render_host(st, "api.example.com",
                                          stream_ns); }), 404);
    EXPECT_EQ(st.hosts.size(), 3u);

    // answers: each namespace its own, without the prefix
    auto http = nlohmann::json::parse(render_hosts(st));
    auto stream = nlohmann::json::parse(render_hosts(st, stream_ns));
    EXPECT_EQ(http["hosts"].size(), 1u);
    EXPECT_EQ(stream["hosts"].size(), 2u);
    EXPECT_EQ(stream["hosts"]["db.example.com"]["table"], "sni");
    EXPECT_EQ(stream["hosts"]["r.example.com"]["target"], "db");
    auto one = nlohmann::json::parse(render_host(st, "db.example.com",
                                                 stream_ns));
    EXPECT_EQ(one["target"], "db_a");

    // the state file keeps both, as they are
    std::vector<std::string> notices;
    State back = load_state(dump_state(st, true), sc, notices);
    EXPECT_EQ(back.hosts, st.hosts);
    EXPECT_TRUE(notices.empty());

    delete_host(st, "db.example.com", stream_ns);
    BulkResult r = patch_hosts(st, sc, R"({"r.example.com":null,)"
                                       R"("b.example.com":{"target":"db_b"}})",
                               stream_ns);
    EXPECT_EQ(r.removed, 1u);
    EXPECT_EQ(r.added, 1u);
    EXPECT_EQ(st.hosts["b.example.com"],
              (HostEntry{"stream/sni", "stream/db_b"}));
}

TEST(State, StreamStateAnswers)
{
    State st;
    Schema sc = with_stream();
    patch_rollout(st, sc, "stream/db", R"({"weights":{"stable":75,"canary":25}})");
    EXPECT_EQ(effective(sc.rollouts[1], &st.rollouts["stream/db"]).weights,
              (std::vector<std::uint32_t>{7500, 2500}));

    // a stream rollout's upstreams are the configuration's; no guard
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "stream/db",
                                  R"({"upstreams":{"canary":"db_a"}})"); }),
              400);
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "stream/db",
                                  R"({"guard":{"tripped":{}}})"); }), 400);
    // an http rollout's flip never names a stream upstream
    EXPECT_EQ(status_of([&] { patch_rollout(st, sc, "checkout",
                                  R"({"upstreams":{"canary":"stream/db_b"}})"); }),
              400);

    auto s = nlohmann::json::parse(render_state(st, sc, "z", stream_ns));
    EXPECT_EQ(s["tables"].size(), 1u);
    EXPECT_EQ(s["tables"]["sni"]["rules"], 2);
    EXPECT_EQ(s["rollouts"].size(), 1u);
    EXPECT_EQ(s["rollouts"]["db"]["variants"]["canary"]["weight"], 25);
    EXPECT_EQ(s["rollouts"]["db"]["variants"]["canary"]["upstream"], "db_b");
    EXPECT_EQ(s["upstreams"], nlohmann::json::array({"db_a", "db_b"}));

    auto h = nlohmann::json::parse(render_state(st, sc, "z"));
    EXPECT_EQ(h["tables"].size(), 1u);
    EXPECT_TRUE(h["tables"].contains("main"));
    EXPECT_EQ(h["rollouts"].size(), 1u);
    EXPECT_TRUE(h["rollouts"].contains("checkout"));
    EXPECT_EQ(h["upstreams"].size(), 3u);

    auto r = nlohmann::json::parse(render_rollout(st, sc, "stream/db"));
    EXPECT_EQ(r["name"], "db");
    EXPECT_EQ(r["variants"]["stable"]["configured_upstream"], "db_a");
}
