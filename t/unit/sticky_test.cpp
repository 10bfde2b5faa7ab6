// SipHash-2-4, the signed stickiness cookie and override_from
// (src/core/siphash.*, src/core/rollout.*).
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "rollout.hpp"
#include "siphash.hpp"

using dynroute::Rollout;
using dynroute::SipKey;
using dynroute::Split;

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

TEST(SipHash, InPiecesAsWhole)
{
    SipKey key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    std::string msg;
    for (int i = 0; i < 40; i++) {
        msg += char(i * 7 + 1);
    }

    // every split of every prefix into three pieces
    for (std::size_t n = 0; n <= msg.size(); n++) {
        std::string_view m(msg.data(), n);
        std::uint64_t whole = dynroute::siphash24(key, m);
        for (std::size_t a = 0; a <= n; a++) {
            for (std::size_t b = a; b <= n; b++) {
                dynroute::SipHasher h(key);
                h.update(m.substr(0, a));
                h.update(m.substr(a, b - a));
                h.update(m.substr(b));
                ASSERT_EQ(h.finish(), whole) << n << " " << a << " " << b;
            }
        }
    }

    // a copy goes on from where the original was
    dynroute::SipHasher h(key);
    h.update(std::string_view(msg.data(), 11));
    dynroute::SipHasher copy = h;
    copy.update(std::string_view(msg.data() + 11, 5));
    EXPECT_EQ(copy.finish(),
              dynroute::siphash24(key, std::string_view(msg.data(), 16)));
    EXPECT_EQ(h.finish(),
              dynroute::siphash24(key, std::string_view(msg.data(), 11)));
}

namespace {

const SipKey secret = dynroute::sip_key_from("0123456789abcdef-secret");
constexpr std::int64_t t0 = 1767225600;  // 2026-01-01 00:00:00 UTC
constexpr std::uint32_t hour = 3600;

std::string text(const dynroute::StickyValue &v)
{
    std::string s(dynroute::sticky_value_size, '?');
    dynroute::format_sticky(v, s.data());
    return s;
}

// the value variant v gets, issued at `at` to key
std::string issue(const Rollout &r, std::size_t v, std::string_view key,
                  std::int64_t at = t0)
{
    return text(r.sticky_issue(v, key, at));
}

Rollout signed_split(const char *name, const char *stable,
                     const char *canary, std::uint32_t lifetime = hour,
                     bool bind_key = true, SipKey key = secret)
{
    Rollout r = split(name, stable, canary);
    r.set_sticky(key, lifetime, bind_key);
    return r;
}

}  // namespace

TEST(Sticky, TheValuesForm)
{
    Rollout shop = signed_split("shop", "90%", "10%");

    std::string s = issue(shop, 1, "alice", 0x6955b900);
    ASSERT_EQ(s.size(), 24u);
    EXPECT_EQ(s.substr(0, 8), "6955b900");  // the issue time, in hex
    EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos);

    dynroute::StickyValue v;
    ASSERT_TRUE(dynroute::parse_sticky(s, v));
    EXPECT_EQ(v.issued, 0x6955b900u);
    EXPECT_EQ(text(v), s);

    for (std::string bad : {std::string(), s.substr(0, 23), s + "0",
                            std::string(24, 'g'), std::string(24, 'A'),
                            "0x" + s.substr(2), " " + s.substr(1)}) {
        EXPECT_FALSE(dynroute::parse_sticky(bad, v)) << bad;
    }

    // the old form (16 hex digits, one value per variant) is refused
    EXPECT_EQ(shop.by_sticky(s.substr(8), "alice", t0), Rollout::npos);

    // nothing signed before set_sticky
    Rollout plain = split("shop", "90%", "10%");
    EXPECT_FALSE(plain.sticky());
    EXPECT_EQ(plain.by_sticky(s, "alice", t0), Rollout::npos);
    EXPECT_TRUE(shop.sticky());
}

TEST(Sticky, VerifiesForItsKeyOnly)
{
    Rollout shop = signed_split("shop", "90%", "10%");
    std::string alice = issue(shop, 1, "alice");

    EXPECT_EQ(shop.by_sticky(alice, "alice", t0), 1u);
    EXPECT_EQ(shop.by_sticky(alice, "alice", t0 + 100), 1u);
    EXPECT_EQ(shop.by_sticky(alice, "bob", t0), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(alice, "alic", t0), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(alice, "alice ", t0), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(alice, "", t0), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(alice, "ALICE", t0), Rollout::npos);

    // another key, another value, at the same time
    std::string bob = issue(shop, 1, "bob");
    EXPECT_NE(bob, alice);
    EXPECT_EQ(shop.by_sticky(bob, "bob", t0), 1u);
    EXPECT_EQ(shop.by_sticky(bob, "alice", t0), Rollout::npos);

    // 10,000 keys: each value verifies for its key and not for the next
    std::size_t own = 0, other = 0;
    for (int i = 0; i < 10000; i++) {
        std::string k = "user-" + std::to_string(i);
        std::string n = "user-" + std::to_string(i + 1);
        std::string v = issue(shop, static_cast<std::size_t>(i % 2), k);
        own += shop.by_sticky(v, k, t0) == static_cast<std::size_t>(i % 2);
        other += shop.by_sticky(v, n, t0) != Rollout::npos;
    }
    EXPECT_EQ(own, 10000u);
    EXPECT_EQ(other, 0u);
}

TEST(Sticky, VerifiesForItsRolloutAndVariantOnly)
{
    Rollout shop = signed_split("shop", "90%", "10%");
    Rollout cart = signed_split("cart", "90%", "10%");
    std::string s0 = issue(shop, 0, "alice"), s1 = issue(shop, 1, "alice");

    EXPECT_NE(s0, s1);
    EXPECT_EQ(shop.by_sticky(s0, "alice", t0), 0u);
    EXPECT_EQ(shop.by_sticky(s1, "alice", t0), 1u);

    // another rollout with the same secret, variants and key
    EXPECT_NE(issue(cart, 1, "alice"), s1);
    EXPECT_EQ(shop.by_sticky(issue(cart, 1, "alice"), "alice", t0),
              Rollout::npos);
    EXPECT_EQ(cart.by_sticky(s1, "alice", t0), Rollout::npos);

    // the same rollout signed with another secret
    Rollout other = signed_split("shop", "90%", "10%", hour, true,
                                 dynroute::sip_key_from("another secret..."));
    EXPECT_EQ(shop.by_sticky(issue(other, 1, "alice"), "alice", t0),
              Rollout::npos);

    // a variant renamed: the old name's values name nothing
    Rollout renamed("shop");
    renamed.add_variant("stable", "90%");
    renamed.add_variant("canary2", "10%");
    renamed.finish();
    renamed.set_sticky(secret, hour, true);
    EXPECT_EQ(renamed.by_sticky(s1, "alice", t0), Rollout::npos);
    EXPECT_EQ(renamed.by_sticky(s0, "alice", t0), 0u);

    // the same configuration elsewhere (another worker, instance, reload,
    // other weights) signs alike and accepts the values
    Rollout again = signed_split("shop", "50%", "50%");
    EXPECT_EQ(issue(again, 1, "alice"), s1);
    EXPECT_EQ(again.by_sticky(s1, "alice", t0 + 5), 1u);

    // under the runtime API's split too
    std::vector<std::uint32_t> half{5000, 5000};
    EXPECT_EQ(shop.by_sticky(s1, "alice", t0, Split{half.data(), 0}), 1u);
}

TEST(Sticky, ExpiresAfterItsLifetime)
{
    Rollout shop = signed_split("shop", "90%", "10%", 30);
    std::string v = issue(shop, 1, "alice");

    EXPECT_EQ(shop.sticky_lifetime(), 30u);
    EXPECT_EQ(shop.by_sticky(v, "alice", t0), 1u);
    EXPECT_EQ(shop.by_sticky(v, "alice", t0 + 29), 1u);
    EXPECT_EQ(shop.by_sticky(v, "alice", t0 + 30), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(v, "alice", t0 + 31), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(v, "alice", t0 + 86400 * 365), Rollout::npos);

    // a shorter lifetime after a reload expires older values at once
    Rollout shorter = signed_split("shop", "90%", "10%", 10);
    EXPECT_EQ(shorter.by_sticky(v, "alice", t0 + 9), 1u);
    EXPECT_EQ(shorter.by_sticky(v, "alice", t0 + 10), Rollout::npos);

    // the session default
    Rollout session = signed_split("shop", "90%", "10%",
                                   Rollout::sticky_session_lifetime);
    std::string s = issue(session, 1, "alice");
    EXPECT_EQ(Rollout::sticky_session_lifetime, 86400u);
    EXPECT_EQ(session.by_sticky(s, "alice", t0 + 86399), 1u);
    EXPECT_EQ(session.by_sticky(s, "alice", t0 + 86400), Rollout::npos);

    // a lifetime of 0 (max_age=0): never valid
    Rollout none = signed_split("shop", "90%", "10%", 0);
    EXPECT_EQ(none.by_sticky(issue(none, 1, "alice"), "alice", t0),
              Rollout::npos);

    // changing the issue time in the value breaks the tag
    std::string later = v;
    later[7] = later[7] == '1' ? '2' : '1';
    EXPECT_EQ(shop.by_sticky(later, "alice", t0), Rollout::npos);
    std::string fresh = "6955c0" + v.substr(6);  // some seconds later
    EXPECT_EQ(shop.by_sticky(fresh, "alice", t0 + 1800), Rollout::npos);
}

TEST(Sticky, RefusedFromTheFutureBeyondTheSkew)
{
    Rollout shop = signed_split("shop", "90%", "10%");
    std::int64_t skew = Rollout::sticky_skew;
    EXPECT_EQ(skew, 60);

    // issued by a node whose clock is ahead of this one's
    std::string ahead = issue(shop, 1, "alice", t0 + skew);
    EXPECT_EQ(shop.by_sticky(ahead, "alice", t0), 1u);
    std::string too_far = issue(shop, 1, "alice", t0 + skew + 1);
    EXPECT_EQ(shop.by_sticky(too_far, "alice", t0), Rollout::npos);
    EXPECT_EQ(shop.by_sticky(too_far, "alice", t0 + 1), 1u);
    std::string far = issue(shop, 1, "alice", 0xffffffff);
    EXPECT_EQ(shop.by_sticky(far, "alice", t0), Rollout::npos);

    // and a value from 1970 is long expired
    EXPECT_EQ(shop.by_sticky(issue(shop, 1, "alice", 0), "alice", t0),
              Rollout::npos);
}

TEST(Sticky, ForgedTruncatedAndGarbageValuesAreRefused)
{
    Rollout shop = signed_split("shop", "90%", "10%");
    std::string v = issue(shop, 1, "alice");
    ASSERT_EQ(shop.by_sticky(v, "alice", t0), 1u);

    std::vector<std::string> bad = {
        "", "canary", "stable", v.substr(0, 23), v + "0", v.substr(1),
        v.substr(0, 8), v.substr(8), v + v, std::string(24, '0'),
        std::string(24, 'f'), std::string(24, 'z'), std::string(4096, 'a'),
        std::string(v).replace(0, 1, "G"),
        std::string("\0", 1) + v.substr(1),
    };

    // every single digit of the tag changed
    for (std::size_t i = 8; i < v.size(); i++) {
        std::string f = v;
        f[i] = f[i] == 'a' ? 'b' : 'a';
        bad.push_back(f);
    }

    // upper case, if the value has letters
    std::string up = v;
    for (char &c : up) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    if (up != v) {
        bad.push_back(up);
    }

    for (const std::string &b : bad) {
        EXPECT_EQ(shop.by_sticky(b, "alice", t0), Rollout::npos) << b;
        Rollout::Inputs in;
        std::string_view sv = b;
        in.sticky = &sv;
        in.key = "alice";
        in.now = t0;
        Rollout::Reason why{};
        EXPECT_EQ(shop.pick(in, &why), shop.by_weight("alice"));
        EXPECT_EQ(why, Rollout::Reason::weight);
    }

    // random 24-digit values: none verifies
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    std::size_t accepted = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        dynroute::StickyValue r;
        r.issued = static_cast<std::uint32_t>(t0);
        r.tag = x;
        accepted += shop.by_sticky(text(r), "alice", t0) != Rollout::npos;
    }
    EXPECT_EQ(accepted, 0u);
}

TEST(Sticky, TheCookieAsTheKeyIsNotBound)
{
    // key $cookie_<sticky name>: the key of a later visit is the value
    // itself, so the value cannot be bound to it
    Rollout shop = signed_split("shop", "90%", "10%", hour, false);
    EXPECT_FALSE(shop.sticky_binds_key());
    std::string v = issue(shop, 1, "198.51.100.7");  // a first visit

    EXPECT_EQ(shop.by_sticky(v, v, t0), 1u);       // the next visit
    EXPECT_EQ(shop.by_sticky(v, "anyone", t0), 1u);
    EXPECT_EQ(issue(shop, 1, "someone else"), v);  // the key plays no part
    EXPECT_EQ(shop.by_sticky(v, v, t0 + 3600), Rollout::npos);  // expires

    // a bound rollout's values are refused by an unbound one, and back
    Rollout bound = signed_split("shop", "90%", "10%", hour, true);
    EXPECT_TRUE(bound.sticky_binds_key());
    EXPECT_EQ(bound.by_sticky(v, "198.51.100.7", t0), Rollout::npos);
    std::string b = issue(bound, 1, "");
    EXPECT_EQ(bound.by_sticky(b, "", t0), 1u);
    EXPECT_EQ(shop.by_sticky(b, "", t0), Rollout::npos);
}

TEST(Sticky, EveryVariantIsCompared)
{
    // by_sticky hashes the value against every variant and compares whole
    // 64-bit tags, without stopping at the first match or at the first
    // differing digit (rollout.cpp): the first variant's value, the last's
    // and a forged one take the same work.  What can be checked without a
    // clock: a value of each variant, the last included, is found, and a
    // tag one bit off names none.
    Rollout abc("abc");
    abc.add_variant("a", "40%");
    abc.add_variant("b", "30%");
    abc.add_variant("c", "30%");
    abc.finish();
    abc.set_sticky(secret, hour, true);

    for (std::size_t v = 0; v < 3; v++) {
        std::string value = issue(abc, v, "k");
        EXPECT_EQ(abc.by_sticky(value, "k", t0), v);

        dynroute::StickyValue sv;
        ASSERT_TRUE(dynroute::parse_sticky(value, sv));
        for (int bit = 0; bit < 64; bit++) {
            dynroute::StickyValue f = sv;
            f.tag ^= std::uint64_t(1) << bit;
            EXPECT_EQ(abc.by_sticky(text(f), "k", t0), Rollout::npos);
        }
    }
}

TEST(Sticky, HoldsWhileTheWeightIsAboveZero)
{
    Rollout r = signed_split("shop", "90%", "10%");
    std::string canary = issue(r, 1, "alice");

    Rollout::Inputs in;
    std::string_view sv = canary;
    in.sticky = &sv;
    in.key = "alice";
    in.now = t0 + 60;
    Rollout::Reason why{};

    // a ramp down to 1 %: the cookie still holds for its key
    std::vector<std::uint32_t> one{9900, 100};
    Split down{one.data(), 0};
    EXPECT_EQ(r.pick(in, down, &why), 1u);
    EXPECT_EQ(why, Rollout::Reason::sticky);

    // ... not for another key, nor once expired
    in.key = "mallory";
    EXPECT_EQ(r.pick(in, down, &why), r.by_weight("mallory", down));
    EXPECT_EQ(why, Rollout::Reason::weight);
    in.key = "alice";
    in.now = t0 + hour;
    EXPECT_EQ(r.pick(in, down, &why), r.by_weight("alice", down));
    EXPECT_EQ(why, Rollout::Reason::weight);
    in.now = t0 + 60;

    // 0 %: not any more, the weight decides
    std::vector<std::uint32_t> none{10000, 0};
    EXPECT_EQ(r.pick(in, Split{none.data(), 0}, &why), 0u);
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
