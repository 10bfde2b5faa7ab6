// Host normalisation and classification on arbitrary bytes.
//
// Checks: no memory error (the output buffer is exactly as large as the
// input, so a write past it is caught); normalize_host() only shortens and
// lowercases, never lets through what nginx refuses, and is idempotent
// (but for nginx's trailing-dot quirk);
// is_ipv4() / is_ipv6() agree with inet_pton(); classify_host() agrees with
// them.
#include <arpa/inet.h>

#include <memory>
#include <string>

#include "fuzz_util.hpp"
#include "host.hpp"
#include "nginx_host.hpp"

using namespace dynroute;

namespace {

bool pton(int af, std::string_view s)
{
    unsigned char buf[16];
    std::string z(s);
    return inet_pton(af, z.c_str(), buf) == 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view raw(reinterpret_cast<const char *>(data), size);

    // Exactly size bytes on the heap so that ASan sees any overflow.
    std::unique_ptr<char[]> out(new char[size ? size : 1]);
    std::optional<std::string_view> host = normalize_host(raw, out.get());

    if (host) {
        FUZZ_CHECK(!host->empty());
        FUZZ_CHECK(host->size() <= raw.size());
        FUZZ_CHECK(host->data() == out.get());
        for (char c : *host) {
            unsigned char ch = static_cast<unsigned char>(c);
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
            FUZZ_CHECK(ch > 0x20 && ch != 0x7f && ch != '/');
        }
        FUZZ_CHECK(host->find("..") == std::string_view::npos);
        FUZZ_CHECK(fuzz::ascii_lower(raw.substr(0, host->size())) == *host);

        // Idempotent but for one trailing dot: like nginx, a dot is only
        // dropped when it is the last dot of the whole header, so
        // "a.:80.1" gives "a." (the table ignores that dot anyway).
        std::unique_ptr<char[]> again(new char[host->size()]);
        std::optional<std::string_view> h2 = normalize_host(*host, again.get());
        // ".:." gives "." the same way, which on its own is refused.
        FUZZ_CHECK(h2 || *host == ".");
        FUZZ_CHECK(!h2 || *h2 == *host ||
                   (host->back() == '.' &&
                    *h2 == host->substr(0, host->size() - 1)));

        (void) classify_host(*host);
    } else {
        // What nginx refuses, it refuses in any letter case.
        std::string upper = fuzz::ascii_upper(raw);
        std::unique_ptr<char[]> tmp(new char[size ? size : 1]);
        FUZZ_CHECK(!normalize_host(upper, tmp.get()));
    }

    // The IP detectors are exactly inet_pton() (which stops at a NUL).
    if (raw.find('\0') == std::string_view::npos) {
        FUZZ_CHECK(is_ipv4(raw) == pton(AF_INET, raw));
        FUZZ_CHECK(is_ipv6(raw) == pton(AF_INET6, raw));
    } else {
        FUZZ_CHECK(!is_ipv4(raw));
        FUZZ_CHECK(!is_ipv6(raw));
    }

    HostKind k = classify_host(raw);
    if (k == HostKind::ipv4) {
        std::string_view a = raw.substr(0, raw.find(':'));
        FUZZ_CHECK(is_ipv4(a));
    } else if (k == HostKind::ipv6) {
        FUZZ_CHECK(raw[0] == '[');
        std::size_t close = raw.find(']');
        FUZZ_CHECK(close != std::string_view::npos);
        FUZZ_CHECK(is_ipv6(raw.substr(1, close - 1)));
    } else if (is_ipv4(raw)) {
        FUZZ_CHECK(false);  // a bare dotted quad is always an IP literal
    }

    return 0;
}
