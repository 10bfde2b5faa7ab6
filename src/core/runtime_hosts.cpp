#include "runtime_hosts.hpp"

#include "host.hpp"
#include "text.hpp"

namespace dynroute {

bool normalize_host(std::string_view in, std::string &out, std::string &why)
{
    if (!in.empty() && in.back() == '.') {
        in.remove_suffix(1);
    }

    if (in.empty() || in.size() > 253) {
        why = "a host name is 1 to 253 bytes long";
        return false;
    }

    out.clear();
    std::size_t label = 0;

    for (char c : in) {
        c = ascii_lower(c);

        if (c == '.') {
            if (label == 0) {
                why = "empty label in host name " + quoted(in);
                return false;
            }
            label = 0;

        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            if (++label > 63) {
                why = "a label over 63 bytes in host name " + quoted(in);
                return false;
            }

        } else {
            why = "invalid character in host name " + quoted(in)
                  + ": letters, digits, '-', '_' and '.' only (no port, "
                    "no wildcard)";
            return false;
        }

        out += c;
    }

    if (label == 0) {
        why = "empty label in host name " + quoted(in);
        return false;
    }

    if (is_ipv4(out)) {
        why = quoted(in) + " is an IP address: the table's ip rule routes "
              "those";
        return false;
    }

    return true;
}

}  // namespace dynroute
