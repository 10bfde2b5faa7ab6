// The status page served at a dynroute_api location's {prefix}ui: one
// self-contained HTML document (no external scripts, styles or fonts) that
// reads {prefix}stats.  Pure C++17, no nginx headers.
#pragma once

#include <string_view>

namespace dynroute {

std::string_view status_page() noexcept;

}  // namespace dynroute
