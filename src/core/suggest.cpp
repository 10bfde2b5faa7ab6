#include "suggest.hpp"

#include <algorithm>
#include <vector>

#include "text.hpp"

namespace dynroute {

namespace {

// Names longer than this are compared by nothing: the table of distances is
// the product of the two lengths.
constexpr std::size_t max_compared = 256;

// The most edits a suggestion may be away.
constexpr std::size_t max_edits = 2;

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b)
{
    const std::size_t n = a.size(), m = b.size();

    // three rows of the table: i - 2, i - 1 and i
    std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);

    for (std::size_t j = 0; j <= m; j++) {
        prev[j] = j;
    }

    for (std::size_t i = 1; i <= n; i++) {
        cur[0] = i;

        for (std::size_t j = 1; j <= m; j++) {
            const bool same = ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]);

            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                               prev[j - 1] + (same ? 0 : 1)});

            if (i > 1 && j > 1
                && ascii_lower(a[i - 1]) == ascii_lower(b[j - 2])
                && ascii_lower(a[i - 2]) == ascii_lower(b[j - 1]))
            {
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
            }
        }

        prev2.swap(prev);
        prev.swap(cur);
    }

    return prev[m];
}

void ClosestName::consider(std::string_view candidate)
{
    if (candidate == name_ || candidate.size() > max_compared
        || name_.size() > max_compared)
    {
        return;
    }

    const std::size_t longer = std::max(candidate.size(), name_.size());
    const std::size_t shorter = std::min(candidate.size(), name_.size());

    if (longer - shorter > max_edits) {
        return;
    }

    const std::size_t d = edit_distance(name_, candidate);

    if (d > max_edits || d * 3 > longer) {
        return;
    }

    if (best_.empty() || d < distance_) {
        best_ = candidate;
        distance_ = d;
    }
}

}  // namespace dynroute
