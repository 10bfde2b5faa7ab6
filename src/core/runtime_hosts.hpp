// Runtime hosts: the entries the API adds to a table (host -> table and
// target), and the check of a runtime host's name.  How the zone holds them
// for the workers is snapshot.hpp's.  Pure C++17, no nginx headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace dynroute {

struct HostEntry {
    std::string table;   // the dynroute_table that consults it
    std::string target;  // an upstream{} or a rollout of the configuration
};

inline bool operator==(const HostEntry &a, const HostEntry &b)
{
    return a.table == b.table && a.target == b.target;
}

using HostMap = std::map<std::string, HostEntry>;

// Checks a runtime host name and returns it lowercased, without one
// trailing dot: letters, digits, '-', '_' and '.', labels of 1 to 63
// bytes, 253 bytes in all; not an IP address (the table's ip rule serves
// those), no wildcard.  Returns false with a reason in `why`.
bool normalize_host(std::string_view in, std::string &out, std::string &why);

}  // namespace dynroute
