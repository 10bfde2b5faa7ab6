// Active health checks: see health_check.hpp.
#include "health_check.hpp"

#include <cstring>

#include "text.hpp"

namespace dynroute::health {

namespace {

constexpr std::uint64_t interval_min_ms = 100;
constexpr std::uint64_t interval_max_ms = 3600 * 1000;
constexpr std::uint64_t timeout_min_ms = 10;
constexpr std::uint64_t slow_start_max_ms = 3600 * 1000;
constexpr std::size_t uri_max = 1024;
constexpr std::size_t body_text_max = 256;

[[noreturn]] void bad(std::string_view arg, const std::string &fix)
{
    throw ConfigError("invalid parameter \"" + std::string(arg) + "\": "
                      + fix);
}

bool number(std::string_view v, std::uint64_t &n) noexcept
{
    if (v.empty() || v.size() > 12) {
        return false;
    }
    n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') {
            return false;
        }
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    return true;
}

unsigned count_param(std::string_view arg, std::string_view v)
{
    std::uint64_t n;
    if (!number(v, n) || n < 1 || n > 100) {
        bad(arg, "a number of probes in a row from 1 to 100, such as "
                 + std::string(arg.substr(0, arg.find('=') + 1)) + "2");
    }
    return static_cast<unsigned>(n);
}

void status_param(Params &p, std::string_view arg, std::string_view v)
{
    p.status.clear();
    const std::string fix =
        "a list of status codes or ranges from 100 to 599, such as "
        "status=200-399 or status=200,204,301-302";

    if (v.empty()) {
        bad(arg, fix);
    }

    while (true) {
        std::size_t comma = v.find(',');
        std::string_view item = v.substr(0, comma);
        std::size_t dash = item.find('-');
        std::uint64_t lo, hi;

        if (!number(item.substr(0, dash), lo)
            || !number(dash == std::string_view::npos
                           ? item
                           : item.substr(dash + 1), hi)
            || lo < 100 || hi > 599 || lo > hi) {
            bad(arg, fix);
        }
        p.status.push_back({static_cast<unsigned>(lo),
                            static_cast<unsigned>(hi)});

        if (comma == std::string_view::npos) {
            break;
        }
        v.remove_prefix(comma + 1);
    }
}

}  // namespace

bool parse_time(std::string_view v, std::uint64_t &ms) noexcept
{
    std::size_t i = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
        i++;
    }
    std::uint64_t n;
    if (!number(v.substr(0, i), n)) {
        return false;
    }
    std::string_view unit = v.substr(i);
    std::uint64_t mul;
    if (unit == "ms") {
        mul = 1;
    } else if (unit.empty() || unit == "s") {
        mul = 1000;
    } else if (unit == "m") {
        mul = 60 * 1000;
    } else if (unit == "h") {
        mul = 3600 * 1000;
    } else {
        return false;
    }
    ms = n * mul;
    return true;
}

bool Params::status_ok(unsigned code) const noexcept
{
    for (const auto &r : status) {
        if (code >= r.lo && code <= r.hi) {
            return true;
        }
    }
    return false;
}

Params parse(const std::vector<std::string_view> &args)
{
    Params p;
    bool timeout = false;
    std::vector<std::string_view> seen;

    for (std::string_view arg : args) {
        std::size_t eq = arg.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            bad(arg, "expected interval=, timeout=, fails=, passes=, uri=, "
                     "status=, body=, port= or slow_start=");
        }
        std::string_view name = arg.substr(0, eq);
        std::string_view v = arg.substr(eq + 1);

        for (std::string_view s : seen) {
            if (s == name) {
                throw ConfigError("parameter \"" + std::string(name)
                                  + "=\" is given twice: keep one");
            }
        }
        seen.push_back(name);

        std::uint64_t n;

        if (name == "interval") {
            if (!parse_time(v, n) || n < interval_min_ms
                || n > interval_max_ms) {
                bad(arg, "a time from 100ms to 1h, such as interval=5s");
            }
            p.interval_ms = n;

        } else if (name == "timeout") {
            if (!parse_time(v, n) || n < timeout_min_ms) {
                bad(arg, "a time of at least 10ms and at most the interval, "
                         "such as timeout=1s");
            }
            p.timeout_ms = n;
            timeout = true;

        } else if (name == "fails") {
            p.fails = count_param(arg, v);

        } else if (name == "passes") {
            p.passes = count_param(arg, v);

        } else if (name == "uri") {
            if (v.empty() || v[0] != '/' || v.size() > uri_max) {
                bad(arg, "a path that starts with \"/\", such as "
                         "uri=/healthz");
            }
            for (unsigned char c : v) {
                if (c <= 0x20 || c == 0x7f) {
                    bad(arg, "a path without spaces or control characters, "
                             "such as uri=/healthz");
                }
            }
            p.uri = std::string(v);

        } else if (name == "status") {
            status_param(p, arg, v);

        } else if (name == "body") {
            if (v.empty() || v.size() > body_text_max) {
                bad(arg, "the text the first 4 KiB of the body must "
                         "contain, 1 to 256 characters, such as body=ok");
            }
            p.body = std::string(v);

        } else if (name == "port") {
            if (!number(v, n) || n < 1 || n > 65535) {
                bad(arg, "a port from 1 to 65535, such as port=8081");
            }
            p.port = static_cast<unsigned>(n);

        } else if (name == "slow_start") {
            if (!parse_time(v, n) || n > slow_start_max_ms) {
                bad(arg, "a time up to 1h, such as slow_start=30s (0: off)");
            }
            p.slow_start_ms = n;

        } else {
            bad(arg, "expected interval=, timeout=, fails=, passes=, uri=, "
                     "status=, body=, port= or slow_start=");
        }
    }

    if (!timeout) {
        p.timeout_ms = p.interval_ms;
    } else if (p.timeout_ms > p.interval_ms) {
        throw ConfigError("timeout=" + std::to_string(p.timeout_ms)
                          + "ms is longer than interval="
                          + std::to_string(p.interval_ms)
                          + "ms: a probe must end before the next one; "
                            "write a shorter timeout= or a longer "
                            "interval=");
    }

    return p;
}

Judge::Verdict Judge::fail(const char *why) noexcept
{
    why_ = why;
    verdict_ = Verdict::fail;
    return verdict_;
}

// "HTTP/1.x SSS[ reason]" in line_[0, line_len_)
Judge::Verdict Judge::status_line() noexcept
{
    std::size_t n = line_len_;
    if (n && line_[n - 1] == '\r') {
        n--;
    }
    const char *l = line_;
    if (n < 12 || std::memcmp(l, "HTTP/", 5) != 0 || l[5] < '0' || l[5] > '9'
        || l[6] != '.' || l[7] < '0' || l[7] > '9' || l[8] != ' ') {
        return fail("the status line does not parse");
    }
    unsigned code = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9') {
            return fail("the status line does not parse");
        }
        code = code * 10 + static_cast<unsigned>(l[i] - '0');
    }
    if (n > 12 && l[12] != ' ') {
        return fail("the status line does not parse");
    }
    if (code < 100) {
        return fail("the status line does not parse");
    }
    status_ = code;
    if (!p_->status_ok(code)) {
        return fail("the status is not in the list");
    }
    if (p_->body.empty()) {
        verdict_ = Verdict::pass;
        return verdict_;
    }
    part_ = Part::headers;
    blank_ = 1;  // the status line's newline
    return Verdict::more;
}

Judge::Verdict Judge::feed(const char *data, std::size_t n) noexcept
{
    std::size_t i = 0;

    while (verdict_ == Verdict::more && i < n) {
        char c = data[i];

        switch (part_) {
        case Part::line:
            if (c == '\n') {
                i++;
                status_line();
                continue;
            }
            if (line_len_ == line_max) {
                return fail("the status line is too long");
            }
            line_[line_len_++] = c;
            i++;
            break;

        case Part::headers:
            if (++headers_len_ > headers_max) {
                return fail("the headers are too long");
            }
            i++;
            if (c == '\n') {
                if (blank_) {
                    part_ = Part::body;
                }
                blank_ = 1;
            } else if (c != '\r') {
                blank_ = 0;
            }
            break;

        case Part::body: {
            std::size_t take = n - i;
            if (take > body_max - body_len_) {
                take = body_max - body_len_;
            }
            std::memcpy(body_ + body_len_, data + i, take);
            // look again only where the text may end in the new bytes
            const std::string &t = p_->body;
            std::size_t from = body_len_ >= t.size() ? body_len_ - t.size() + 1
                                                     : 0;
            body_len_ += take;
            i += take;
            std::string_view seen(body_ + from, body_len_ - from);
            if (seen.find(t) != std::string_view::npos) {
                verdict_ = Verdict::pass;
                return verdict_;
            }
            if (body_len_ == body_max) {
                return fail("the body text is not in the first 4 KiB");
            }
            break;
        }
        }
    }

    return verdict_;
}

Judge::Verdict Judge::end() noexcept
{
    if (verdict_ != Verdict::more) {
        return verdict_;
    }
    switch (part_) {
    case Part::line:
        return fail(line_len_ ? "the status line does not parse"
                              : "the server closed without a response");
    case Part::headers:
        return fail("the response ended in its headers");
    case Part::body:
        break;
    }
    return fail("the body text is not in the first 4 KiB");
}

const char *state_name(State s) noexcept
{
    switch (s) {
    case State::unknown: return "unknown";
    case State::up: return "up";
    case State::down: return "down";
    }
    return "unknown";
}

Step step(const Health &h, bool passed, unsigned fails, unsigned passes,
          std::uint64_t now_ms) noexcept
{
    Step s;
    s.next = h;
    s.next.count = h.last_passed != passed || h.count == 0 ? 1
                   : h.count < 255                         ? h.count + 1
                                                           : 255;
    s.next.last_passed = passed;
    s.next.last_probe_ms = now_ms;

    if (passed && h.state != State::up && s.next.count >= passes) {
        s.came_up = h.state == State::down;
        s.next.state = State::up;
    } else if (!passed && h.state != State::down && s.next.count >= fails) {
        s.next.state = State::down;
    }

    s.changed = s.next.state != h.state;
    return s;
}

}  // namespace dynroute::health
