#define PCRE2_CODE_UNIT_WIDTH 8
#include <gtest/gtest.h>
#include <pcre2.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "host.hpp"
#include "table.hpp"

using namespace dynroute;

namespace {

// Builds a table from (pattern, rule) pairs; "ip" and "default" are keywords.
Table make(const std::vector<std::pair<std::string, RuleId>> &rules)
{
    TableBuilder b;
    for (const auto &[p, r] : rules) {
        if (p == "ip") {
            b.set_ip(r);
        } else if (p == "default") {
            b.set_default(r);
        } else {
            b.add(p, r);
        }
    }
    return b.build();
}

RuleId rule_of(const Table &t, std::string_view host)
{
    return t.find(host).rule;
}

// The lowercase fast path, as the glue calls it.
Decision lower_find(const Table &t, std::string_view host)
{
    return t.find_lower(host, Table::hash_host(host));
}

// What nginx makes of a Host for $host: lowercase, no trailing dot.
std::string as_nginx_host(std::string h)
{
    if (!h.empty() && h.back() == '.') {
        h.pop_back();
    }
    for (char &c : h) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return h;
}

// find_lower() decides as find() does on a lowercase host without a
// trailing dot: the same rule, regex and error.
::testing::AssertionResult same_on_lower(const Table &t, std::string_view h)
{
    Decision a = t.find(h), b = lower_find(t, h);
    if (a.rule == b.rule && a.regex == b.regex && a.error() == b.error()) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "host \"" << h << "\": find " << a.rule << "/" << a.regex
           << "/" << a.error() << ", find_lower " << b.rule << "/" << b.regex
           << "/" << b.error();
}

}  // namespace

TEST(Table, Precedence)
{
    Table t = make({
        {"~^www", 1},          // regex, first
        {"~example", 2},       // regex, second
        {"www.example.*", 3},  // trailing wildcard
        {"www.*", 4},          // shorter trailing wildcard
        {"*.example.com", 5},  // leading wildcard
        {"*.a.example.com", 6},
        {"www.example.com", 7},  // exact
        {".example.org", 8},
        {"default", 9},
    });

    EXPECT_EQ(rule_of(t, "www.example.com"), 7u);      // exact beats all
    EXPECT_EQ(rule_of(t, "x.a.example.com"), 6u);      // longest leading
    EXPECT_EQ(rule_of(t, "a.example.com"), 5u);        // *.a.x needs a subdomain
    EXPECT_EQ(rule_of(t, "x.y.example.com"), 5u);
    EXPECT_EQ(rule_of(t, "example.com"), 2u);          // * is not the name itself
    EXPECT_EQ(rule_of(t, "www.example.net"), 3u);      // longest trailing
    EXPECT_EQ(rule_of(t, "www.other.net"), 4u);
    EXPECT_EQ(rule_of(t, "www.example"), 4u);          // x.* needs one more label
    EXPECT_EQ(rule_of(t, "wwwx.net"), 1u);             // first regex in order
    EXPECT_EQ(rule_of(t, "my-example.net"), 2u);
    EXPECT_EQ(rule_of(t, "example.org"), 8u);          // .x is the name too
    EXPECT_EQ(rule_of(t, "deep.sub.example.org"), 8u);
    EXPECT_EQ(rule_of(t, "nothing.net"), 9u);
    EXPECT_EQ(rule_of(t, ""), 9u);

    for (const char *h : {"www.example.com", "x.a.example.com",
                          "a.example.com", "x.y.example.com", "example.com",
                          "www.example.net", "www.other.net", "www.example",
                          "wwwx.net", "my-example.net", "example.org",
                          "deep.sub.example.org", "nothing.net", ""}) {
        EXPECT_TRUE(same_on_lower(t, h));
    }
    EXPECT_EQ(lower_find(t, "www.example.com").rule, 7u);
    EXPECT_EQ(lower_find(t, "x.a.example.com").rule, 6u);
    EXPECT_EQ(lower_find(t, "www.example.net").rule, 3u);
    EXPECT_EQ(lower_find(t, "wwwx.net").rule, 1u);
    EXPECT_EQ(lower_find(t, "wwwx.net").regex, 0);
    EXPECT_EQ(lower_find(t, "").rule, 9u);
}

TEST(Table, HostIsCaseInsensitiveAndTrailingDotIgnored)
{
    Table t = make({{"A.Example.com", 1}, {"*.B.example.com", 2},
                    {"C.Example.*", 3}, {"~*^D", 4}});
    EXPECT_EQ(rule_of(t, "a.example.com"), 1u);
    EXPECT_EQ(rule_of(t, "A.EXAMPLE.COM"), 1u);
    EXPECT_EQ(rule_of(t, "a.example.com."), 1u);
    EXPECT_EQ(rule_of(t, "X.B.EXAMPLE.COM."), 2u);
    EXPECT_EQ(rule_of(t, "c.example.net"), 3u);
    EXPECT_EQ(rule_of(t, "d.anything"), 4u);
    EXPECT_EQ(rule_of(t, "nothing"), no_rule);
}

// find_lower() takes nginx's $host only; anything else still gets a valid
// decision (one of the table's rules, or none), though names with upper
// case or a trailing dot may miss.
TEST(Table, FindLowerIsTotalOnOtherInput)
{
    Table t = make({{"a.example.com", 1}, {"*.b.example.com", 2},
                    {"c.example.*", 3}, {"~*^d", 4}, {"default", 5}});
    for (const char *h : {"A.EXAMPLE.COM", "a.example.com.",
                          "X.B.EXAMPLE.COM.", "x.b.example.com.",
                          "C.EXAMPLE.net", "D.x", ".", "..", "...", "a..b",
                          ".a.example.com"}) {
        Decision d = lower_find(t, h);
        EXPECT_TRUE(d.rule >= 1 && d.rule <= 5) << h;
        EXPECT_FALSE(d.error()) << h;
    }
    EXPECT_EQ(lower_find(t, "x.b.example.com").rule, 2u);
    EXPECT_EQ(lower_find(t, "D.x").rule, 4u);  // regexes see the bytes
    // another hash than hash_host's: wrong, not unsafe
    EXPECT_EQ(t.find_lower("a.example.com", 12345).rule, 5u);

    std::string labels;
    for (int i = 0; i < 10000; i++) {
        labels += "A.";
    }
    EXPECT_EQ(lower_find(t, labels + "b.example.com").rule, 2u);
    EXPECT_EQ(lower_find(t, std::string(100000, '.')).rule, 5u);
    EXPECT_EQ(lower_find(t, std::string("\0\0\xff.www", 7)).rule, 5u);
}

// The hash the glue computes once per request is the table's and the
// runtime hosts' (SnapshotView::hash, checked in snapshot_test.cpp), and
// the one the table's keys are stored under.
TEST(Table, HashHostIsTheKeysHash)
{
    std::mt19937 rng(5);
    for (std::size_t len = 0; len <= 80; len++) {
        for (int k = 0; k < 20; k++) {
            std::string s(len, 'a');
            for (char &c : s) {
                c = "abcdefghijklmnopqrstuvwxyz0123456789.-"[rng() % 38];
            }
            EXPECT_EQ(Table::hash_host(s), HostIndex::hash_name(s));
            // the length counts: a zero byte is not padding
            std::string z = s + '\0';
            EXPECT_NE(Table::hash_host(s), Table::hash_host(z)) << len;
            // every byte counts
            if (len > 0) {
                std::string t = s;
                t[rng() % len] ^= 0x40;
                EXPECT_NE(Table::hash_host(s), Table::hash_host(t)) << s;
            }
        }
    }
}

// The word compare and the short loads at every length and position:
// names of 1 to 40 bytes, each hit, and each near miss (one byte changed
// anywhere, one byte more or less) missed, through both lookups.
TEST(Table, NamesOfEveryLengthUpTo40)
{
    TableBuilder b;
    std::vector<std::string> names;
    RuleId id = 0;
    for (std::size_t len = 1; len <= 40; len++) {
        std::string n;
        for (std::size_t i = 0; i < len; i++) {
            n += "abcdefghij.klmnopqrst"[(i * 7 + len) % 21];
        }
        if (n.front() == '.' || n.back() == '.' ||
            n.find("..") != std::string::npos) {
            n.front() = 'x';
            n.back() = 'y';
        }
        names.push_back(n);
        b.add(n, id++);
        b.add("*." + n, 100 + id);
        b.add(n + ".*", 200 + id);
    }
    b.set_default(999);
    Table t = b.build();

    for (std::size_t k = 0; k < names.size(); k++) {
        const std::string &n = names[k];
        RuleId r = static_cast<RuleId>(k);
        EXPECT_EQ(lower_find(t, n).rule, r) << n;
        EXPECT_EQ(rule_of(t, n), r) << n;
        EXPECT_EQ(lower_find(t, "x." + n).rule, 100 + r + 1) << n;
        EXPECT_EQ(lower_find(t, n + ".x").rule, 200 + r + 1) << n;
        EXPECT_TRUE(same_on_lower(t, "x." + n));
        EXPECT_TRUE(same_on_lower(t, n + ".x"));
        for (std::size_t i = 0; i < n.size(); i++) {
            std::string m = n;
            m[i] = m[i] == 'z' ? 'w' : 'z';
            EXPECT_TRUE(same_on_lower(t, m));
            EXPECT_TRUE(same_on_lower(t, "x." + m));
            EXPECT_TRUE(same_on_lower(t, m + ".x"));
            EXPECT_NE(lower_find(t, m).rule, r) << m;
        }
        EXPECT_TRUE(same_on_lower(t, n + "z"));
        EXPECT_TRUE(same_on_lower(t, n.substr(1)));
        // as nginx's $host: no trailing dot
        if (n.size() < 2 || n[n.size() - 2] != '.') {
            EXPECT_TRUE(same_on_lower(t, n.substr(0, n.size() - 1)));
        }
    }
}

// Leading wildcards deeper than any fixed number of labels, and hosts far
// deeper than the keys: the longest suffix in the table still wins.
TEST(Table, DeepWildcards)
{
    std::string deep;
    for (int i = 0; i < 40; i++) {
        deep += "l" + std::to_string(i) + ".";
    }
    deep += "example.com";
    std::string mid = deep.substr(deep.find("l20."));
    Table t = make({{"*." + deep, 1}, {"*." + mid, 2}, {".example.com", 3},
                    {"*.com", 4}, {deep + ".*", 5}, {"l0.*", 6},
                    {"default", 7}});

    std::string many;
    for (int i = 0; i < 300; i++) {
        many += "x" + std::to_string(i) + ".";
    }
    for (const std::string &h : std::vector<std::string>{
             "a." + deep, many + deep, "a." + mid, many + mid, "l19." + mid,
             deep, mid, std::string("example.com"), "a.example.com",
             many + "example.com", std::string("com"), std::string("a.com"),
             deep + ".net", "l0.net", many + "net"}) {
        EXPECT_TRUE(same_on_lower(t, h)) << h;
    }
    EXPECT_EQ(lower_find(t, "a." + deep).rule, 1u);
    EXPECT_EQ(lower_find(t, many + deep).rule, 1u);
    EXPECT_EQ(lower_find(t, "l19." + mid).rule, 2u);
    EXPECT_EQ(lower_find(t, deep).rule, 2u);  // * needs a subdomain
    EXPECT_EQ(lower_find(t, mid).rule, 3u);
    EXPECT_EQ(lower_find(t, "example.com").rule, 3u);
    EXPECT_EQ(lower_find(t, "a.com").rule, 4u);
    EXPECT_EQ(lower_find(t, deep + ".net").rule, 5u);
    EXPECT_EQ(lower_find(t, "l0.net").rule, 6u);
    EXPECT_EQ(lower_find(t, many + "net").rule, 7u);
}

// The search for dots reads words: a dot is a dot and nothing else is,
// whatever byte follows it or where it falls in a word ('/' ^ '.' is 1,
// which a borrow from a dot before it would turn into a dot).
TEST(Table, DotsAreFoundExactlyAnywhereInAWord)
{
    Table t = make({{"*.x", 1}, {"x.*", 2}, {"*.ab", 3}, {"default", 4}});
    for (std::size_t k = 0; k < 24; k++) {
        std::string pad(k, 'a');
        for (char c : {'/', '-', '.', '\0', '\x2f', '\xae', '\x80'}) {
            std::string h = pad + "." + c + "x";
            RuleId want = c == '.' ? 1u : 4u;  // "a..x" ends in ".x"
            EXPECT_EQ(rule_of(t, h), want) << k << " " << int(c);
            EXPECT_EQ(lower_find(t, h).rule, want) << k << " " << int(c);
            EXPECT_TRUE(same_on_lower(t, pad + ".x" + c + "ab"));
            if (k > 0 || c != '.') {  // no trailing dot
                EXPECT_TRUE(same_on_lower(t, "x" + std::string(1, c) + pad));
            }
        }
        EXPECT_EQ(lower_find(t, pad + ".x").rule, 1u);  // ".x" too, as nginx
        EXPECT_EQ(lower_find(t, pad + "./ab").rule, 4u);
        EXPECT_EQ(lower_find(t, pad + ".ab").rule, 3u);
        EXPECT_EQ(lower_find(t, "x." + pad).rule, 2u);
        EXPECT_EQ(lower_find(t, "x/" + pad).rule, 4u);
    }
    // the fuzzer's case
    EXPECT_EQ(rule_of(t, std::string("e1\xbbxaU]\x1c./x")), 4u);
}

TEST(Table, IpRuleComesFirst)
{
    Table t = make({{"ip", 1}, {"10.0.0.1", 2}, {"~^1", 3}, {"default", 4}});
    EXPECT_EQ(rule_of(t, "10.0.0.1"), 1u);
    EXPECT_EQ(rule_of(t, "[::1]"), 1u);
    EXPECT_EQ(rule_of(t, "[2001:db8::1]:443"), 1u);
    EXPECT_EQ(rule_of(t, "1password.com"), 3u);
    EXPECT_EQ(rule_of(t, "10.0.0.1.nip.io"), 3u);
    EXPECT_EQ(rule_of(t, "localhost"), 4u);
    for (const char *h : {"10.0.0.1", "[::1]", "[2001:db8::1]:443",
                          "1password.com", "10.0.0.1.nip.io", "localhost"}) {
        EXPECT_TRUE(same_on_lower(t, h));
    }

    Table no_ip = make({{"10.0.0.1", 2}, {"default", 4}});
    EXPECT_EQ(rule_of(no_ip, "10.0.0.1"), 2u);
    EXPECT_EQ(rule_of(no_ip, "10.0.0.2"), 4u);
    EXPECT_EQ(lower_find(no_ip, "10.0.0.1").rule, 2u);
    EXPECT_EQ(lower_find(no_ip, "10.0.0.2").rule, 4u);
}

TEST(Table, EscapedKeywordsAreHosts)
{
    Table t = make({{"\\ip", 1}, {"\\default", 2}, {"default", 3}});
    EXPECT_EQ(rule_of(t, "ip"), 1u);
    EXPECT_EQ(rule_of(t, "default"), 2u);
    EXPECT_EQ(rule_of(t, "other"), 3u);
}

TEST(Table, RegexCaptures)
{
    Table t = make({{"~^(?<sub>[a-z]+)\\.(?<zone>[a-z]+)\\.example\\.com$", 1},
                    {"~^(x)(y)?", 2}});
    ASSERT_EQ(t.regex_count(), 2u);
    const auto &names = t.regex(0).named_groups();
    ASSERT_EQ(names.size(), 2u);

    std::string host = "api.eu.example.com";
    Decision d = t.find(host);
    ASSERT_EQ(d.rule, 1u);
    ASSERT_EQ(d.regex, 0);
    std::map<std::string, std::string> got;
    for (const auto &g : names) {
        std::size_t b, e;
        ASSERT_TRUE(t.group(g.number, b, e));
        got[g.name] = host.substr(b, e - b);
    }
    EXPECT_EQ(got["sub"], "api");
    EXPECT_EQ(got["zone"], "eu");

    d = t.find("xz");
    ASSERT_EQ(d.rule, 2u);
    std::size_t b, e;
    EXPECT_TRUE(t.group(1, b, e));
    EXPECT_FALSE(t.group(2, b, e));  // optional group that did not match
    EXPECT_FALSE(t.group(7, b, e));  // no such group
}

TEST(Table, RegexesAreJitCompiledWhereThePcre2BuildCan)
{
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    Regex re("^(?<sub>[a-z]+)\\.example\\.com$", false);
    EXPECT_EQ(re.jit(), jit == 1);
}

// pcre2_jit_match() does not check a UTF subject: a pattern in UTF mode
// ("(*UTF)") goes through pcre2_match(), which refuses invalid UTF-8 (an
// error: the default is used, as map does), whatever the JIT.
TEST(Table, RegexesInUtfModeCheckTheSubject)
{
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    Regex plain("^caf.$", false), utf("(*UTF)^caf\\x{e9}$", false);
    EXPECT_EQ(plain.jit_fast_path(), jit == 1);
    EXPECT_FALSE(utf.jit_fast_path());

    Table t = make({{"~(*UTF)^caf\\x{e9}$", 1}, {"default", 2}});
    EXPECT_EQ(rule_of(t, "caf\xc3\xa9"), 1u);
    for (const char *h : {"caf\xe9", "caf\xc3", "caf\xff\xfe", "\xc3"}) {
        Decision d = t.find(h);
        EXPECT_EQ(d.rule, 2u) << h;
        EXPECT_TRUE(d.error()) << h;
        d = lower_find(t, h);
        EXPECT_EQ(d.rule, 2u) << h;
        EXPECT_TRUE(d.error()) << h;
    }

    // bytes that are no UTF-8 are any other bytes to a byte-mode regex
    Table b = make({{"~^caf.$", 1}, {"default", 2}});
    Decision d = lower_find(b, "caf\xe9");
    EXPECT_EQ(d.rule, 1u);
    EXPECT_FALSE(d.error());
    MatchData md(0);
    EXPECT_EQ(md.match(plain, std::string_view()), 0);
    EXPECT_EQ(md.match(plain, "cafe"), 1);
}

TEST(Table, Conflicts)
{
    struct {
        const char *first, *second;
    } pairs[] = {
        {"a.example.com", "A.example.com"}, {"example.com", ".example.com"},
        {".example.com", "example.com"},    {".example.com", "*.example.com"},
        {"*.example.com", ".example.com"},  {"*.example.com", "*.EXAMPLE.com"},
        {"www.example.*", "www.example.*"}, {"\\default", "default.x"},
    };

    for (const auto &p : pairs) {
        TableBuilder b;
        b.add(p.first, 7);
        if (std::string(p.first) == "\\default") {
            b.add("\\default.x", 9);  // no conflict: different names
            continue;
        }
        try {
            b.add(p.second, 8);
            ADD_FAILURE() << p.first << " + " << p.second << " accepted";
        } catch (const ConflictError &e) {
            EXPECT_EQ(e.previous, 7u) << p.first << " + " << p.second;
        }
    }

    // These coexist in nginx and here.
    TableBuilder b;
    b.add("example.com", 1);
    b.add("*.example.com", 2);
    b.add("example.*", 3);
    b.add("~^example.com$", 4);
    b.add("~^example.com$", 5);
    EXPECT_EQ(rule_of(b.build(), "example.com"), 1u);

    TableBuilder d;
    d.set_default(1);
    EXPECT_THROW(d.set_default(2), ConflictError);
    d.set_ip(3);
    EXPECT_THROW(d.set_ip(4), ConflictError);
}

TEST(Table, BadRegexSaysWhy)
{
    TableBuilder b;
    try {
        b.add("~^(a", 1);
        FAIL() << "accepted";
    } catch (const ConfigError &e) {
        EXPECT_EQ(std::string(e.what()),
                  "invalid regex \"~^(a\": missing closing parenthesis at "
                  "offset 3");
    }
}

TEST(Table, HostileHostsAreTotal)
{
    Table t = make({{"*.example.com", 1}, {"www.*", 2}, {"~a{3}", 3},
                    {"ip", 4}, {"default", 5}});
    std::string labels;
    for (int i = 0; i < 10000; i++) {
        labels += "a.";
    }
    labels += "example.com";
    EXPECT_EQ(rule_of(t, labels), 1u);
    EXPECT_EQ(rule_of(t, std::string(100000, '.')), 5u);
    EXPECT_EQ(rule_of(t, std::string("\0\0\xff.www", 7)), 5u);
    EXPECT_EQ(rule_of(t, "."), 5u);
    EXPECT_EQ(rule_of(t, ".."), 5u);
    EXPECT_EQ(rule_of(t, "[::1]:"), 5u);
}

TEST(Table, LargeTable)
{
    TableBuilder b;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        b.add("host" + std::to_string(i) + ".example.com", i);
        if (i % 10 == 0) {
            b.add("*.w" + std::to_string(i) + ".example.com", n + i);
        }
    }
    Table t = b.build();
    EXPECT_EQ(t.stats().exact, static_cast<std::size_t>(n));
    EXPECT_EQ(t.stats().head, static_cast<std::size_t>(n / 10));
    for (int i = 0; i < n; i += 997) {
        EXPECT_EQ(rule_of(t, "host" + std::to_string(i) + ".example.com"),
                  static_cast<RuleId>(i));
        EXPECT_EQ(rule_of(t, "HOST" + std::to_string(i) + ".EXAMPLE.COM."),
                  static_cast<RuleId>(i));
    }
    EXPECT_EQ(rule_of(t, "x.w50.example.com"), static_cast<RuleId>(n + 50));
    EXPECT_EQ(rule_of(t, "w50.example.com"), no_rule);
    EXPECT_EQ(rule_of(t, "host.example.com"), no_rule);
    for (int i = 0; i < n; i += 997) {
        std::string h = "host" + std::to_string(i) + ".example.com";
        EXPECT_EQ(lower_find(t, h).rule, static_cast<RuleId>(i));
    }
    EXPECT_EQ(lower_find(t, "x.w50.example.com").rule,
              static_cast<RuleId>(n + 50));
    EXPECT_EQ(lower_find(t, "w50.example.com").rule, no_rule);
}

// A brute-force model of nginx's semantics, written from the documentation
// of server_name, checked against the hashed table on random inputs.
namespace {

struct Model {
    struct Entry {
        Pattern p;
        RuleId rule;
    };
    std::vector<Entry> entries;
    std::optional<RuleId> ip, dflt;

    // Returns false where nginx would report a conflict.
    bool add(const std::string &text, RuleId rule)
    {
        Pattern p = parse_pattern(text);
        for (const auto &e : entries) {
            if (p.kind == PatternKind::regex ||
                e.p.kind == PatternKind::regex || e.p.key != p.key) {
                continue;
            }
            auto exactish = [](PatternKind k) {
                return k == PatternKind::exact || k == PatternKind::dot;
            };
            auto headish = [](PatternKind k) {
                return k == PatternKind::star || k == PatternKind::dot;
            };
            if ((exactish(p.kind) && exactish(e.p.kind)) ||
                (headish(p.kind) && headish(e.p.kind)) ||
                (p.kind == PatternKind::tail && e.p.kind == PatternKind::tail)) {
                return false;
            }
        }
        entries.push_back({p, rule});
        return true;
    }

    RuleId find(std::string host) const
    {
        if (!host.empty() && host.back() == '.') {
            host.pop_back();
        }
        if (ip && classify_host(host) != HostKind::name) {
            return *ip;
        }
        std::string low = host;
        for (char &c : low) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        for (const auto &e : entries) {
            if ((e.p.kind == PatternKind::exact ||
                 e.p.kind == PatternKind::dot) &&
                e.p.key == low) {
                return e.rule;
            }
        }
        const Entry *best = nullptr;
        for (const auto &e : entries) {
            if (e.p.kind != PatternKind::star && e.p.kind != PatternKind::dot) {
                continue;
            }
            std::string suffix = "." + e.p.key;
            if (low.size() > suffix.size() - 1 && low.size() >= suffix.size() &&
                low.compare(low.size() - suffix.size(), suffix.size(),
                            suffix) == 0 &&
                (!best || e.p.key.size() > best->p.key.size())) {
                best = &e;
            }
        }
        if (best) {
            return best->rule;
        }
        for (const auto &e : entries) {
            if (e.p.kind != PatternKind::tail) {
                continue;
            }
            std::string prefix = e.p.key + ".";
            if (low.compare(0, prefix.size(), prefix) == 0 &&
                (!best || e.p.key.size() > best->p.key.size())) {
                best = &e;
            }
        }
        if (best) {
            return best->rule;
        }
        if (!host.empty()) {
            for (const auto &e : entries) {
                if (e.p.kind != PatternKind::regex) {
                    continue;
                }
                Regex re(e.p.key, e.p.caseless);
                MatchData md(re.capture_count());
                if (md.match(re, host) > 0) {
                    return e.rule;
                }
            }
        }
        return dflt ? *dflt : no_rule;
    }
};

}  // namespace

TEST(Table, AgreesWithModelOnRandomTables)
{
    std::mt19937 rng(2024);
    const char *labels[] = {"a", "b", "www", "example", "com", "x1", "10"};
    auto pick = [&](int max_labels) {
        std::string s;
        int n = 1 + static_cast<int>(rng() % max_labels);
        for (int i = 0; i < n; i++) {
            if (i) {
                s += '.';
            }
            s += labels[rng() % 7];
        }
        return s;
    };

    for (int round = 0; round < 300; round++) {
        TableBuilder b;
        Model m;
        std::string trace;
        RuleId next = 0;
        int npatterns = 1 + static_cast<int>(rng() % 25);
        for (int i = 0; i < npatterns; i++) {
            std::string p;
            switch (rng() % 6) {
            case 0: p = pick(4); break;
            case 1: p = "*." + pick(3); break;
            case 2: p = "." + pick(3); break;
            case 3: p = pick(3) + ".*"; break;
            case 4: p = "~^" + std::string(labels[rng() % 7]); break;
            default: p = pick(2); break;
            }
            if (rng() % 5 == 0) {
                char &c = p[rng() % p.size()];  // case noise
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
            RuleId r = next++;
            bool ok = m.add(p, r);
            trace += p + " ";
            try {
                b.add(p, r);
                EXPECT_TRUE(ok) << "table accepted a conflict: " << p;
            } catch (const ConflictError &) {
                EXPECT_FALSE(ok) << "table refused " << p;
            }
        }
        if (rng() % 2) {
            b.set_ip(1000);
            m.ip = 1000;
        }
        if (rng() % 2) {
            b.set_default(1001);
            m.dflt = 1001;
        }
        Table t = b.build();

        for (int i = 0; i < 200; i++) {
            std::string h = pick(5);
            if (rng() % 4 == 0) {
                h = "10.0.0." + std::to_string(rng() % 300);
            }
            if (rng() % 5 == 0) {
                char &c = h[rng() % h.size()];
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
            if (rng() % 6 == 0) {
                h += '.';
            }
            ASSERT_EQ(t.find(h).rule, m.find(h)) << "host " << h << " patterns " << trace;
            std::string lh = as_nginx_host(h);
            ASSERT_TRUE(same_on_lower(t, lh)) << "patterns " << trace;
            ASSERT_EQ(lower_find(t, lh).rule, m.find(lh))
                << "patterns " << trace;
        }
    }
}

// The hashes read eight bytes at a time: labels shorter than a word, of one
// word, longer than one and two words, and hosts shorter than a word, with
// upper case anywhere, must hash alike whether seen whole or as a suffix.
TEST(Table, AgreesWithModelOnLongAndMixedCaseLabels)
{
    std::mt19937 rng(8);
    const char *labels[] = {"a", "abcdefgh", "abcdefghi", "Www", "EXAMPLE",
                            "x-long-label-0123456789", "com", "q1"};
    auto pick = [&](int max_labels) {
        std::string s;
        int n = 1 + static_cast<int>(rng() % max_labels);
        for (int i = 0; i < n; i++) {
            if (i) {
                s += '.';
            }
            s += labels[rng() % 8];
        }
        return s;
    };
    auto noise = [&](std::string &s) {
        for (char &c : s) {
            if (rng() % 4 == 0) {
                c = static_cast<char>(
                    std::toupper(static_cast<unsigned char>(c)));
            }
        }
    };

    for (int round = 0; round < 300; round++) {
        TableBuilder b;
        Model m;
        std::string trace;
        RuleId next = 0;
        int npatterns = 1 + static_cast<int>(rng() % 25);
        for (int i = 0; i < npatterns; i++) {
            std::string p;
            switch (rng() % 4) {
            case 0: p = pick(4); break;
            case 1: p = "*." + pick(3); break;
            case 2: p = "." + pick(3); break;
            default: p = pick(3) + ".*"; break;
            }
            noise(p);
            RuleId r = next++;
            bool ok = m.add(p, r);
            trace += p + " ";
            try {
                b.add(p, r);
                EXPECT_TRUE(ok) << "table accepted a conflict: " << p;
            } catch (const ConflictError &) {
                EXPECT_FALSE(ok) << "table refused " << p;
            }
        }
        b.set_default(1001);
        m.dflt = 1001;
        Table t = b.build();

        for (int i = 0; i < 200; i++) {
            std::string h = pick(6);
            noise(h);
            ASSERT_EQ(t.find(h).rule, m.find(h))
                << "host " << h << " patterns " << trace;
            std::string lh = as_nginx_host(h);
            ASSERT_TRUE(same_on_lower(t, lh)) << "patterns " << trace;
            ASSERT_EQ(lower_find(t, lh).rule, m.find(lh))
                << "patterns " << trace;
        }
    }
}

// A name of len bytes, a dot every fifth byte (never the last).
static std::string dotted(std::size_t len)
{
    std::string k;
    for (std::size_t i = 0; i < len; i++) {
        bool dot = i % 5 == 4 && i + 1 < len;
        k += dot ? '.' : static_cast<char>('a' + i % 26);
    }
    return k;
}

// For keys of lengths around 16 and 64 bytes: the table of make(k) (the
// patterns the model accepts, and a default) decides every host of
// hosts(k) as the model does, with find() and find_lower().
template <class Patterns, class Hosts>
static void wildcards_agree_with_model(Patterns make, Hosts hosts)
{
    for (std::size_t klen : {1u, 7u, 14u, 15u, 16u, 17u, 47u, 48u, 62u, 63u,
                             64u, 65u}) {
        TableBuilder b;
        Model m;
        std::string k = dotted(klen);
        RuleId next = 0;
        for (const std::string &p : make(k)) {
            if (p.back() == '.'
                || p.find("..") != std::string::npos) {
                continue;  // not a pattern
            }
            RuleId r = next++;
            if (m.add(p, r)) {
                b.add(p, r);
            }
        }
        b.set_default(99);
        m.dflt = 99;
        Table t = b.build();

        for (const std::string &q : hosts(k)) {
            if (q.empty() || q.front() == '.' || q.back() == '.'
                || q.find("..") != std::string::npos) {
                continue;
            }
            ASSERT_EQ(t.find(q).rule, m.find(q)) << klen << " " << q;
            ASSERT_EQ(lower_find(t, q).rule, m.find(q)) << klen << " " << q;
        }
    }
}

// Leading wildcards' dots are found 16 bytes at a time in hosts of 16
// bytes and more while every key is shorter than 64 bytes, and a word at a
// time otherwise: keys and hosts around those lengths, with dots at every
// distance from the end, decide as the model does.
TEST(Table, LeadingWildcardsAroundSixteenAndSixtyFourBytes)
{
    wildcards_agree_with_model(
        [](const std::string &k) {
            return std::vector<std::string>{
                "*." + k, "*.e", "." + k.substr(k.size() / 2 + 1)};
        },
        [](const std::string &k) {
            std::vector<std::string> hosts;
            for (std::size_t pre = 0; pre < 90; pre++) {
                std::string h = dotted(pre) + (pre ? "." : "") + k;
                hosts.insert(hosts.end(), {h, h.substr(1), "x" + h});
            }
            return hosts;
        });
}

// The same for trailing wildcards, whose dots are found from the start.
TEST(Table, TrailingWildcardsAroundSixteenAndSixtyFourBytes)
{
    wildcards_agree_with_model(
        [](const std::string &k) {
            return std::vector<std::string>{
                k + ".*", "a.*", k.substr(0, k.size() / 2) + ".*"};
        },
        [](const std::string &k) {
            std::vector<std::string> hosts;
            for (std::size_t post = 0; post < 90; post++) {
                std::string h = k + (post ? "." : "") + dotted(post);
                hosts.insert(hosts.end(),
                             {h, h + "x", h.substr(0, h.size() - 1)});
            }
            return hosts;
        });
}

// A key table's value (key=$variable) is searched with find(): exact names
// and wildcards caseless, one trailing dot ignored, and a regex's groups
// are offsets into the value as given (the glue points the capture
// variables into it).
TEST(Table, KeyValuesAsFindSeesThem)
{
    Table t = make({{"acme", 1},
                    {".corp.example", 2},
                    {"*.eu", 3},
                    {"beta.*", 4},
                    {"~^tenant-(?<n>[0-9]+)$", 5},
                    {"~*^ci-([a-z]+)$", 6},
                    {"default", 9}});

    EXPECT_EQ(rule_of(t, "acme"), 1u);
    EXPECT_EQ(rule_of(t, "ACME"), 1u);
    EXPECT_EQ(rule_of(t, "Acme."), 1u);
    EXPECT_EQ(rule_of(t, "acme.."), 9u);
    EXPECT_EQ(rule_of(t, "CORP.example"), 2u);
    EXPECT_EQ(rule_of(t, "x.Corp.Example."), 2u);
    EXPECT_EQ(rule_of(t, "Shop.EU"), 3u);
    EXPECT_EQ(rule_of(t, "eu"), 9u);
    EXPECT_EQ(rule_of(t, "BETA.x"), 4u);
    EXPECT_EQ(rule_of(t, "beta"), 9u);
    EXPECT_EQ(rule_of(t, "10.0.0.1"), 9u);  // no ip rule: a name like any

    // a case-sensitive regex sees the value as given, "~*" folds
    Decision d = t.find("tenant-42.");
    ASSERT_EQ(d.rule, 5u);
    std::size_t b = 0, e = 0;
    ASSERT_TRUE(t.group(1, b, e));
    EXPECT_EQ(b, 7u);
    EXPECT_EQ(e, 9u);
    EXPECT_EQ(rule_of(t, "Tenant-42"), 9u);

    d = t.find("CI-Linux");
    ASSERT_EQ(d.rule, 6u);
    ASSERT_TRUE(t.group(1, b, e));
    EXPECT_EQ(std::string_view("CI-Linux").substr(b, e - b), "Linux");
}
