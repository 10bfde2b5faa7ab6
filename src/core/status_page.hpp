// The live status page served at {prefix}ui: one self-contained HTML
// document (inline CSS and script, nothing loaded from elsewhere) that polls
// {prefix}stats, relative to its own URL, every 2 seconds and shows rates,
// error shares and p99 latency over the last 60 seconds, and each group's
// servers with their state.  Read-only: it
// only ever GETs stats.  Pure C++17.
#pragma once

#include <string_view>

namespace dynroute {

// The page, a static string: valid for the life of the program.
std::string_view status_page() noexcept;

}  // namespace dynroute
