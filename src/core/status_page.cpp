// The status page: see status_page.hpp.
#include "status_page.hpp"

namespace dynroute {

namespace {

constexpr std::string_view page = R"DYNROUTE_PAGE(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dynroute</title>
<style>body{font:14px sans-serif;margin:1em}td,th{padding:2px 8px}</style>
</head><body><h1>dynroute</h1><pre id="out">loading</pre>
<script>
'use strict';
async function load() {
  try {
    const r = await fetch(new URL('stats', location.href));
    document.getElementById('out').textContent =
      JSON.stringify(await r.json(), null, 1);
  } catch (e) {
    document.getElementById('out').textContent = String(e);
  }
}
load(); setInterval(load, 2000);
</script></body></html>
)DYNROUTE_PAGE";

}  // namespace

std::string_view status_page() noexcept
{
    return page;
}

}  // namespace dynroute
