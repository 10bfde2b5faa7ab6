// SipHash-2-4, the signed stickiness cookie and override_from
// (src/core/siphash.*, src/core/rollout.*).
#include <gtest/gtest.h>

#include <string>

#include "rollout.hpp"
#include "siphash.hpp"

using dynroute::Rollout;
using dynroute::SipKey;

namespace {

dynroute::Address v4(const char *text)
{
    dynroute::Cidr c = dynroute::parse_cidr(text);
    return c.net;
}

Rollout split(const char *name, const char *stable, const char *canary)
{
    Rollout r(name);
    r.add_variant("stable", stable);
    r.add_variant("canary", canary);
    r.finish();
    return r;
}

}  // namespace

// The reference implementation's vectors: key 00..0f, message 00..(n-1).
TEST(SipHash, ReferenceVectors)
{
    SipKey key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    std::string msg;
    for (int i = 0; i < 17; i++) {
        msg += char(i);
    }

    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 0)), 0x726fdb47dd0e0e31ULL);
    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 1)), 0x74f839c593dc67fdULL);
    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 7)), 0xab0200f58b01d137ULL);
    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 8)), 0x93f5f5799a932462ULL);
    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 15)), 0xa129ca6149be45e5ULL);
    EXPECT_EQ(dynroute::siphash24(key, msg.substr(0, 16)), 0x3f2acc7f57c29bdbULL);
}

TEST(SipHash, KeysFromSecrets)
{
    SipKey a = dynroute::sip_key_from("secret one");
    SipKey b = dynroute::sip_key_from("secret two");
    EXPECT_NE(a.k0, b.k0);
    EXPECT_NE(a.k1, b.k1);
    EXPECT_NE(a.k0, a.k1);
    SipKey c = dynroute::sip_key_from("secret one");
    EXPECT_EQ(a.k0, c.k0);
    EXPECT_EQ(a.k1, c.k1);
}

TEST(SipHash, EqualConstantTime)
{
    EXPECT_TRUE(dynroute::equal_constant_time("abc", "abc"));
    EXPECT_FALSE(dynroute::equal_constant_time("abc", "abd"));
    EXPECT_FALSE(dynroute::equal_constant_time("abc", "ab"));
    EXPECT_TRUE(dynroute::equal_constant_time("", ""));
}

TEST(Sticky, ValuesAreSignedPerRolloutVariantAndKey)
{
    SipKey key = dynroute::sip_key_from("0123456789abcdef-secret");
    Rollout shop = split("shop", "90%", "10%");
    Rollout cart = split("cart", "90%", "10%");
    EXPECT_EQ(shop.sticky_value(0), "");  // no key yet
    shop.set_sticky_key(key);
    cart.set_sticky_key(key);

    std::string s0(shop.sticky_value(0)), s1(shop.sticky_value(1));
    EXPECT_EQ(s0.size(), 16u);
    EXPECT_EQ(s0.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(s0, s1);
    EXPECT_NE(s0, std::string(cart.sticky_value(0)));  // another rollout
    EXPECT_EQ(shop.sticky_value(7), "");

    EXPECT_EQ(shop.by_sticky(s0), 0u);
    EXPECT_EQ(shop.by_sticky(s1), 1u);

    // forged, truncated, oversized, another rollout's, another key's
    EXPECT_EQ(shop.by_sticky(""), Rollout::npos);
    EXPECT_EQ(shop.by_sticky("canary"), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(s1.substr(0, 15)), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(s1 + "0"), Rollout::npos);
    std::string flipped = s1;
    flipped[3] = flipped[3] == 'a' ? 'b' : 'a';
    EXPECT_EQ(shop.by_sticky(flipped), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(cart.sticky_value(1)), Rollout::npos);
    Rollout other = split("shop", "90%", "10%");
    other.set_sticky_key(dynroute::sip_key_from("another secret......"));
    EXPECT_EQ(shop.by_sticky(other.sticky_value(1)), Rollout::npos);

    // the same configuration elsewhere (another worker, instance, reload)
    Rollout again = split("shop", "50%", "50%");
    again.set_sticky_key(key);
    EXPECT_EQ(again.sticky_value(1), shop.sticky_value(1));
}

TEST(Sticky, HoldsWhileTheWeightIsAboveZero)
{
    Rollout r = split("shop", "90%", "10%");
    r.set_sticky_key(dynroute::sip_key_from("0123456789abcdef-secret"));
    std::string canary(r.sticky_value(1));

    Rollout::Inputs in;
    std::string_view sv = canary;
    in.sticky = &sv;
    Rollout::Reason why{};

    // a ramp down to 1 %: the cookie still holds
    Rollout down = r;
    down.set_weights({9900, 100});
    EXPECT_EQ(down.pick(in, &why), 1u);
    EXPECT_EQ(why, Rollout::Reason::sticky);

    // 0 %: not any more, the weight decides
    Rollout off = r;
    off.set_weights({10000, 0});
    EXPECT_EQ(off.pick(in, &why), 0u);
    EXPECT_EQ(why, Rollout::Reason::weight);

    // an override and a source come first
    std::string_view never = "never";
    in.header = &never;
    EXPECT_EQ(r.pick(in, &why), 0u);
    EXPECT_EQ(why, Rollout::Reason::header);
}

TEST(OverrideFrom, NobodyUnlessConfigured)
{
    Rollout r = split("shop", "90%", "10%");
    dynroute::Address office = v4("10.1.2.3"), home = v4("192.0.2.7");

    EXPECT_FALSE(r.override_from_set());
    EXPECT_FALSE(r.override_allowed(&office));

    r.add_override_from(dynroute::parse_cidr("10.0.0.0/8"));
    EXPECT_TRUE(r.override_from_set());
    EXPECT_TRUE(r.override_allowed(&office));
    EXPECT_FALSE(r.override_allowed(&home));
    EXPECT_FALSE(r.override_allowed(nullptr));  // a unix socket

    r.override_from_all();
    EXPECT_TRUE(r.override_allowed(&home));
    EXPECT_TRUE(r.override_allowed(nullptr));
}
