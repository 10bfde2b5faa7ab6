// Active health checks (health_check.hpp) on arbitrary bytes.
//
// The first byte picks the mode.  Even: the rest is a dynroute_health_check
// line's parameters, split at spaces; parse() accepts them or throws
// ConfigError only, and what it accepts is in range.  Odd: the rest is a
// probe's response, judged with or without body= (the second byte picks
// the parameters and the size of the pieces): the verdict is the same
// whether the bytes come at once or in pieces, a pass has a status in the
// list and, with body=, the text after the status line, and the health
// word's step and pack/unpack agree.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "health_check.hpp"
#include "text.hpp"

using namespace dynroute;

namespace {

void params(std::string_view s)
{
    std::vector<std::string_view> args;
    while (!s.empty() && args.size() < 16) {
        std::size_t sp = s.find(' ');
        if (sp != 0) {
            args.push_back(s.substr(0, sp));
        }
        if (sp == std::string_view::npos) {
            break;
        }
        s.remove_prefix(sp + 1);
    }
    health::Params p;
    try {
        p = health::parse(args);
    } catch (const ConfigError &e) {
        FUZZ_CHECK(std::string_view(e.what()).size() > 0);
        return;
    }
    FUZZ_CHECK(p.interval_ms >= 100 && p.interval_ms <= 3600 * 1000);
    FUZZ_CHECK(p.timeout_ms >= 10 && p.timeout_ms <= p.interval_ms);
    FUZZ_CHECK(p.fails >= 1 && p.fails <= 100);
    FUZZ_CHECK(p.passes >= 1 && p.passes <= 100);
    FUZZ_CHECK(!p.uri.empty() && p.uri[0] == '/');
    for (unsigned char c : p.uri) {
        FUZZ_CHECK(c > 0x20 && c != 0x7f);
    }
    FUZZ_CHECK(!p.status.empty());
    for (const auto &r : p.status) {
        FUZZ_CHECK(r.lo >= 100 && r.lo <= r.hi && r.hi <= 599);
    }
    FUZZ_CHECK(p.port <= 65535);
    FUZZ_CHECK(p.body.size() <= 256);
}

health::Judge::Verdict judge(const health::Params &p, std::string_view r,
                             std::size_t piece)
{
    health::Judge j(p);
    for (std::size_t i = 0; i < r.size(); i += piece) {
        std::size_t n = std::min(piece, r.size() - i);
        if (j.feed(r.data() + i, n) != health::Judge::Verdict::more) {
            break;
        }
    }
    auto v = j.verdict() == health::Judge::Verdict::more ? j.end()
                                                          : j.verdict();
    if (v == health::Judge::Verdict::pass) {
        FUZZ_CHECK(p.status_ok(j.status()));
    }
    return v;
}

void response(unsigned char pick, std::string_view r)
{
    health::Params p;
    if (pick & 1) {
        p.body = "ok";
    }
    if (pick & 2) {
        p.status = {{200, 200}, {204, 204}, {301, 302}};
    }
    std::size_t piece = 1 + (pick >> 2);

    auto whole = judge(p, r, r.size() ? r.size() : 1);
    auto pieces = judge(p, r, piece);
    FUZZ_CHECK(whole == pieces);

    if (whole == health::Judge::Verdict::pass && !p.body.empty()) {
        std::size_t nl = r.find('\n');
        FUZZ_CHECK(nl != std::string_view::npos);
        FUZZ_CHECK(r.substr(nl + 1).find(p.body) != std::string_view::npos);
    }

    // the word's step: a pass never makes a server down, a fail never up
    health::Health h = health::unpack(static_cast<std::uint64_t>(pick)
                                      * 0x9e3779b97f4a7c15ull);
    bool passed = whole == health::Judge::Verdict::pass;
    auto st = health::step(h, passed, 2, 3, 1234);
    if (passed) {
        FUZZ_CHECK(st.next.state != health::State::down
                   || h.state == health::State::down);
    } else {
        FUZZ_CHECK(st.next.state != health::State::up
                   || h.state == health::State::up);
    }
    auto back = health::unpack(health::pack(st.next));
    FUZZ_CHECK(back.state == st.next.state && back.count == st.next.count
               && back.last_passed == st.next.last_passed
               && back.last_probe_ms == st.next.last_probe_ms);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    if (size < 2) {
        return 0;
    }
    std::string_view rest(reinterpret_cast<const char *>(data) + 2, size - 2);
    if ((data[0] & 1) == 0) {
        params(rest);
    } else {
        response(data[1], rest);
    }
    return 0;
}
