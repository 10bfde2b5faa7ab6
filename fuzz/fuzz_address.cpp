// Server addresses (address.hpp) on arbitrary bytes.
//
// Checks: parse_address() accepts or throws ApiError 400 only, with a
// message that holds no NUL and no line break; an accepted address's
// canonical name parses back to itself with the same bytes (canonical
// names are fixed points), fits the glue's buffers (max_address_name,
// max_socklen), and its family is the form's; an IPv4 or IPv6 host is
// accepted exactly when inet_pton() takes it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "address.hpp"
#include "fuzz_util.hpp"

using namespace dynroute;

namespace {

bool pton(int af, const std::string &s)
{
    unsigned char buf[16];
    return inet_pton(af, s.c_str(), buf) == 1;
}

int family(const ServerAddress &a)
{
    sa_family_t f;
    std::memcpy(&f, a.sockaddr.data(), sizeof f);
    return f;
}

void check_accepted(std::string_view raw, const ServerAddress &a)
{
    FUZZ_CHECK(!a.name.empty() && a.name.size() <= max_address_name);
    FUZZ_CHECK(a.socklen() <= max_socklen);

    ServerAddress again = parse_address(a.name);
    FUZZ_CHECK(again.name == a.name);
    FUZZ_CHECK(again.sockaddr == a.sockaddr);

    if (raw.substr(0, 5) == "unix:") {
        FUZZ_CHECK(family(a) == AF_UNIX && a.name == raw);
    } else if (raw[0] == '[') {
        FUZZ_CHECK(family(a) == AF_INET6);
        FUZZ_CHECK(a.socklen() == sizeof(sockaddr_in6));
        std::string host(raw.substr(1, raw.find(']') - 1));
        FUZZ_CHECK(pton(AF_INET6, host));
    } else {
        FUZZ_CHECK(family(a) == AF_INET);
        FUZZ_CHECK(a.socklen() == sizeof(sockaddr_in));
        FUZZ_CHECK(pton(AF_INET, std::string(raw.substr(0, raw.find(':')))));
    }
}

// a refused host that inet_pton takes must have been refused for its port
void check_refused(std::string_view raw, const ApiError &e)
{
    std::string why = e.what();

    FUZZ_CHECK(e.status == 400);
    FUZZ_CHECK(why.find('\n') == std::string::npos);
    FUZZ_CHECK(why.find("give a.b.c.d[:port]") != std::string::npos
               || why.find("is not from 1 to 65535") != std::string::npos);

    std::size_t colon = raw.find(':');
    bool control = false;
    for (char c : raw) {
        control = control || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    }

    if (!control && raw.size() <= 512 && raw.substr(0, 5) != "unix:"
        && (raw.empty() || raw[0] != '[') && colon == std::string_view::npos)
    {
        FUZZ_CHECK(!pton(AF_INET, std::string(raw)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view raw(reinterpret_cast<const char *>(data), size);

    try {
        ServerAddress a = parse_address(raw);
        check_accepted(raw, a);
    } catch (const ApiError &e) {
        check_refused(raw, e);
    }

    return 0;
}
