// Ramps: the "ramp" line, the state machine and the API's functions
// (ramp.hpp).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "ramp.hpp"
#include "rollout.hpp"
#include "state.hpp"

using namespace dynroute;

namespace {

Schema schema()
{
    Schema s;
    RolloutInfo r;
    r.name = "shop";
    r.variants = {"stable", "canary", "beta"};
    r.weights = {10000, 0, 0};
    r.upstreams = {"a", "b", "c"};
    r.primary = 0;
    r.ramp.variant = "canary";
    r.ramp.steps = {100, 500, 2500, 5000, 10000};
    r.ramp.hold_ms = 30000;
    s.rollouts.push_back(r);

    RolloutInfo plain = r;
    plain.name = "plain";
    plain.ramp = RampInfo();
    s.rollouts.push_back(plain);
    s.upstreams = {"a", "b", "c"};
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

std::string config_error(const std::vector<std::string_view> &p)
{
    try {
        parse_ramp(p);
    } catch (const ConfigError &e) {
        return e.what();
    }
    return "";
}

std::uint32_t weight(const State &st, const char *variant)
{
    Schema s = schema();
    auto it = st.rollouts.find("shop");
    Effective e = effective(s.rollouts[0],
                            it == st.rollouts.end() ? nullptr : &it->second);
    return e.weights[s.rollouts[0].find(variant)];
}

const RampState &ramp(const State &st)
{
    return st.rollouts.at("shop").ramp;
}

}  // namespace

TEST(Ramp, ParsesTheLine)
{
    RampInfo r = parse_ramp({"canary", "1%", "5%", "25%", "50%", "100%",
                             "hold=30s"});
    EXPECT_EQ(r.variant, "canary");
    EXPECT_EQ(r.steps, (std::vector<std::uint32_t>{100, 500, 2500, 5000,
                                                   10000}));
    EXPECT_EQ(r.hold_ms, 30000u);

    r = parse_ramp({"canary", "hold=1m30s", "0.01%"});
    EXPECT_EQ(r.steps, (std::vector<std::uint32_t>{1}));
    EXPECT_EQ(r.hold_ms, 90000u);

    EXPECT_EQ(parse_ramp({"c", "50%", "hold=500ms"}).hold_ms, 500u);
}

TEST(Ramp, RefusesBadLines)
{
    EXPECT_NE(config_error({"canary", "5%", "1%", "hold=30s"})
                  .find("step \"1%\" of the ramp does not go up from "
                        "\"5%\""), std::string::npos);
    EXPECT_NE(config_error({"canary", "5%", "5%", "hold=30s"}), "");
    EXPECT_NE(config_error({"canary", "0%", "hold=30s"}).find("0.01%"),
              std::string::npos);
    EXPECT_NE(config_error({"canary", "101%", "hold=30s"}), "");
    EXPECT_NE(config_error({"canary", "0.001%", "hold=30s"}), "");
    EXPECT_NE(config_error({"canary", "*", "hold=30s"}), "");
    EXPECT_NE(config_error({"canary", "hold=30s"}).find("no step"),
              std::string::npos);
    EXPECT_NE(config_error({"canary", "5%"}).find("no \"hold=\""),
              std::string::npos);
    EXPECT_NE(config_error({"canary", "5%", "hold=soon"}), "");
    EXPECT_NE(config_error({"canary", "5%", "hold=0s"}), "");
    EXPECT_NE(config_error({"canary", "5%", "hold=1s", "hold=2s"}), "");
    EXPECT_NE(config_error({"canary", "5%", "wait=1s"}), "");
    EXPECT_NE(config_error({"5%", "10%", "hold=1s"}), "");
}

TEST(Ramp, Durations)
{
    EXPECT_EQ(parse_duration_ms("10"), 10000u);
    EXPECT_EQ(parse_duration_ms("250ms"), 250u);
    EXPECT_EQ(parse_duration_ms("2h"), 7200000u);
    EXPECT_THROW(parse_duration_ms(""), ConfigError);
    EXPECT_THROW(parse_duration_ms("5x"), ConfigError);
    EXPECT_EQ(format_duration(30000), "30s");
    EXPECT_EQ(format_duration(1500), "1.5s");
    EXPECT_EQ(format_duration(250), "250ms");
}

TEST(Ramp, WeightsGiveTheRestToThePrimary)
{
    EXPECT_EQ(ramp_weights({9000, 1000, 0}, 0, 1, 2500),
              (std::vector<std::uint32_t>{7500, 2500, 0}));
    EXPECT_EQ(ramp_weights({8000, 1000, 1000}, 0, 1, 2500),
              (std::vector<std::uint32_t>{6500, 2500, 1000}));
    // the others give what the primary lacks, the last first
    EXPECT_EQ(ramp_weights({0, 1000, 9000}, 0, 1, 10000),
              (std::vector<std::uint32_t>{0, 10000, 0}));
    EXPECT_EQ(ramp_weights({1000, 0, 9000}, 0, 1, 5000),
              (std::vector<std::uint32_t>{0, 5000, 5000}));
    // a primary that is not the first
    EXPECT_EQ(ramp_weights({100, 0, 9900}, 2, 0, 500),
              (std::vector<std::uint32_t>{500, 0, 9500}));
}

TEST(Ramp, WalksTheStepsOnlyWhenHeld)
{
    Schema s = schema();
    State st;

    ramp_action(st, s, "shop", R"({"action": "start"})", 1000);
    EXPECT_EQ(ramp(st).phase, RampPhase::running);
    EXPECT_EQ(ramp(st).step, 0u);
    EXPECT_EQ(ramp(st).since_ms, 1000u);
    EXPECT_EQ(weight(st, "canary"), 100u);
    EXPECT_EQ(weight(st, "stable"), 9900u);
    EXPECT_EQ(ramp(st).why, "started by an operator at 1%");

    // not held long enough: nothing
    EXPECT_FALSE(ramp_is_due(st, s, "shop", 30999));
    EXPECT_FALSE(ramp_advance(st, s, "shop", 30999, ""));
    EXPECT_EQ(ramp(st).step, 0u);

    RampMove m;
    EXPECT_TRUE(ramp_is_due(st, s, "shop", 31000));
    EXPECT_TRUE(ramp_advance(st, s, "shop", 31000,
                             "0.0% 5xx of 240 responses", &m));
    EXPECT_EQ(ramp(st).step, 1u);
    EXPECT_EQ(weight(st, "canary"), 500u);
    EXPECT_EQ(weight(st, "stable"), 9500u);
    EXPECT_EQ(ramp(st).why, "held 30s at 1%, 0.0% 5xx of 240 responses");
    EXPECT_EQ(m.why, ramp(st).why);
    EXPECT_EQ(m.weights, (std::vector<std::uint32_t>{9500, 500, 0}));

    std::uint64_t t = 31000;
    for (std::uint32_t step = 2; step < 5; step++) {
        t += 30000;
        EXPECT_TRUE(ramp_advance(st, s, "shop", t, ""));
        EXPECT_EQ(ramp(st).step, step);
    }
    EXPECT_EQ(weight(st, "canary"), 10000u);
    EXPECT_EQ(weight(st, "stable"), 0u);
    EXPECT_EQ(ramp(st).phase, RampPhase::running);

    // the last step held: done, the weights stay
    t += 30000;
    EXPECT_TRUE(ramp_advance(st, s, "shop", t, ""));
    EXPECT_EQ(ramp(st).phase, RampPhase::done);
    EXPECT_EQ(ramp(st).step, 4u);
    EXPECT_EQ(weight(st, "canary"), 10000u);
    EXPECT_EQ(ramp(st).why.substr(0, 5), "done:");
    EXPECT_FALSE(ramp_advance(st, s, "shop", t + 100000, ""));

    // done: may start again, from the first step
    ramp_action(st, s, "shop", R"({"action": "start"})", t);
    EXPECT_EQ(ramp(st).step, 0u);
    EXPECT_EQ(weight(st, "canary"), 100u);
}

TEST(Ramp, PauseKeepsWhatWasHeld)
{
    Schema s = schema();
    State st;

    ramp_action(st, s, "shop", R"({"action": "start"})", 0);
    ramp_action(st, s, "shop", R"({"action": "pause"})", 20000);
    EXPECT_EQ(ramp(st).phase, RampPhase::paused);
    EXPECT_EQ(ramp(st).held_ms, 20000u);
    EXPECT_FALSE(ramp_advance(st, s, "shop", 1000000, ""));

    ramp_action(st, s, "shop", R"({"action": "resume"})", 100000);
    EXPECT_EQ(ramp(st).phase, RampPhase::running);
    EXPECT_EQ(ramp(st).since_ms, 100000u);
    EXPECT_FALSE(ramp_advance(st, s, "shop", 109999, ""));
    EXPECT_TRUE(ramp_advance(st, s, "shop", 110000, ""));
    EXPECT_EQ(ramp(st).step, 1u);
}

TEST(Ramp, AbortTakesTheVariantToZero)
{
    Schema s = schema();
    State st;

    ramp_action(st, s, "shop", R"({"action": "start"})", 0);
    ASSERT_TRUE(ramp_advance(st, s, "shop", 30000, ""));
    ramp_action(st, s, "shop", R"({"action": "abort"})", 40000);
    EXPECT_EQ(ramp(st).phase, RampPhase::aborted);
    EXPECT_EQ(ramp(st).step, 1u);
    EXPECT_EQ(ramp(st).why, "aborted by an operator at 5%");
    EXPECT_EQ(weight(st, "canary"), 0u);
    EXPECT_EQ(weight(st, "stable"), 10000u);
    EXPECT_FALSE(ramp_advance(st, s, "shop", 1000000, ""));

    // paused, then aborted
    ramp_action(st, s, "shop", R"({"action": "start"})", 50000);
    ramp_action(st, s, "shop", R"({"action": "pause"})", 51000);
    ramp_action(st, s, "shop", R"({"action": "abort"})", 52000);
    EXPECT_EQ(ramp(st).phase, RampPhase::aborted);
    EXPECT_EQ(weight(st, "canary"), 0u);
}

TEST(Ramp, RefusesWhatDoesNotApply)
{
    Schema s = schema();
    State st;

    auto act = [&](const char *rollout, const char *body) {
        return status_of([&] { ramp_action(st, s, rollout, body, 5); });
    };

    EXPECT_EQ(act("nope", R"({"action": "start"})"), 404);
    EXPECT_EQ(act("plain", R"({"action": "start"})"), 409);
    EXPECT_EQ(act("shop", R"({"action": "go"})"), 400);
    EXPECT_EQ(act("shop", R"({})"), 400);
    EXPECT_EQ(act("shop", R"({"action": 1})"), 400);
    EXPECT_EQ(act("shop", R"({"action": "start", "x": 1})"), 400);
    EXPECT_EQ(act("shop", "not json"), 400);
    EXPECT_EQ(act("shop", R"({"action": "pause"})"), 409);
    EXPECT_EQ(act("shop", R"({"action": "resume"})"), 409);
    EXPECT_EQ(act("shop", R"({"action": "abort"})"), 409);
    EXPECT_TRUE(st.rollouts.empty());

    EXPECT_EQ(act("shop", R"({"action": "start"})"), 200);
    EXPECT_EQ(act("shop", R"({"action": "start"})"), 409);
    EXPECT_EQ(act("shop", R"({"action": "resume"})"), 409);
    EXPECT_EQ(act("shop", R"({"action": "pause"})"), 200);
    EXPECT_EQ(act("shop", R"({"action": "pause"})"), 409);

    // a tripped guard: clear it first
    State tripped;
    tripped.rollouts["shop"].trip.variant = "canary";
    try {
        ramp_action(tripped, s, "shop", R"({"action": "start"})", 0);
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_EQ(e.status, 409);
        EXPECT_NE(std::string(e.what()).find("PATCH"), std::string::npos);
    }
    EXPECT_EQ(tripped.rollouts["shop"].ramp.phase, RampPhase::ready);

    // a tripped rollout does not advance
    State st2;
    ramp_action(st2, s, "shop", R"({"action": "start"})", 0);
    st2.rollouts["shop"].trip.variant = "canary";
    EXPECT_FALSE(ramp_advance(st2, s, "shop", 1000000, ""));

    // the variant made the primary at run time
    State st3;
    st3.rollouts["shop"].primary = "canary";
    EXPECT_EQ(status_of([&] {
        ramp_action(st3, s, "shop", R"({"action": "start"})", 0);
    }), 409);
}

TEST(Ramp, RendersWhereItStands)
{
    Schema s = schema();
    State st;

    std::string r = render_rollout_ramp(st, s, "shop", 0);
    EXPECT_NE(r.find(R"("variant":"canary","steps":[1,5,25,50,100],)"
                     R"("hold":30.0,"state":"ready")"), std::string::npos)
        << r;

    ramp_action(st, s, "shop", R"({"action": "start"})", 1000000);
    r = render_rollout_ramp(st, s, "shop", 1010000);
    EXPECT_NE(r.find(R"("state":"running")"), std::string::npos) << r;
    EXPECT_NE(r.find(R"("next_in":20.0)"), std::string::npos) << r;
    EXPECT_NE(r.find(R"("step":0)"), std::string::npos) << r;

    EXPECT_EQ(render_rollout_ramp(st, s, "plain", 0).find("\"ramp\""),
              std::string::npos);
    EXPECT_EQ(status_of([&] { render_rollout_ramp(st, s, "nope", 0); }),
              404);
}
