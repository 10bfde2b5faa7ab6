// Names and the ids a zone would give them, for the unit tests and the
// fuzzers of the snapshot: an id is a name's index in order of first use.
// Pure C++17.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot.hpp"

namespace dynroute {

struct NameIds {
    std::vector<std::string> names;
    std::map<std::string, NameId, std::less<>> ids;

    // The id of n, given now if n has none yet.
    NameId operator()(std::string_view n)
    {
        auto it = ids.find(n);
        if (it != ids.end()) {
            return it->second;
        }
        names.emplace_back(n);
        return ids[std::string(n)] = static_cast<NameId>(names.size() - 1);
    }

    // The name of an id, or "" for one never given.
    std::string_view operator[](NameId id) const
    {
        return id < names.size() ? std::string_view(names[id])
                                 : std::string_view();
    }
};

}  // namespace dynroute
