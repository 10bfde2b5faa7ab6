// "Did you mean": of the names a configuration knows, the one a name that
// it does not know is most likely a typo of.  Pure C++17.
#pragma once

#include <cstddef>
#include <string_view>

namespace dynroute {

// The edit distance between a and b, ASCII letter case aside: each
// insertion, deletion, substitution, and transposition of two neighbours
// counts 1 (the optimal string alignment distance: "egde" is 1 from
// "edge").
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest of the candidates considered, if it is close enough to be a
// typo of name: at most 2 edits, and at most one for every three
// characters of the longer of the two ("u" suggests nothing for "v", "egde"
// suggests "edge").  Of candidates as close, the first; the name itself is
// never suggested.  The views must outlive the object.
class ClosestName {
public:
    explicit ClosestName(std::string_view name) noexcept : name_(name) {}

    void consider(std::string_view candidate);

    // empty if no candidate was close enough
    std::string_view best() const noexcept { return best_; }

private:
    std::string_view  name_;
    std::string_view  best_;
    std::size_t       distance_ = 0;
};

}  // namespace dynroute
