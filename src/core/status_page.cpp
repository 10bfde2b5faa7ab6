#include "status_page.hpp"

namespace dynroute {

namespace {

// The page, as it is served.  Everything it shows comes from stats and
// reaches the document as text (textContent, text nodes, attributes), never
// as markup.  It loads nothing but stats, so it works under the API's
// Content-Security-Policy (default-src 'none'; connect-src 'self'; inline
// script and style).  The raw string's first character, the newline after
// its delimiter, is not part of the page.
constexpr std::string_view page = std::string_view(R"DYNROUTE_PAGE(
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dynroute status</title>
<link rel="icon" href="data:,">
<style>
:root{--bg:#f5f6f8;--fg:#1c2330;--mut:#667085;--card:#fff;--line:#e2e5ea;--acc:#2f6fde;--ok:#1a7f46;--warn:#b45309;--bad:#c0392b}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--fg:#e6e9ee;--mut:#9aa3b2;--card:#1b2029;--line:#2c3340;--acc:#6ea0ff;--ok:#2f9e68;--warn:#c7791f;--bad:#e0503f}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,sans-serif}
main{max-width:1180px;margin:0 auto;padding:18px 24px 32px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 22px;margin-bottom:4px}
h1{font-size:20px;margin:0 8px 0 0}
h2{font-size:16px;margin:0 0 2px}
.kv{color:var(--mut)}
.kv b{color:var(--fg)}
.badge{padding:1px 9px;border-radius:10px;font-weight:600;font-size:12px;color:#fff;background:var(--ok)}
.badge.draining{background:var(--warn)}
#note{color:var(--mut);margin:0 0 14px}
#error{display:none;background:var(--bad);color:#fff;padding:8px 12px;border-radius:6px;margin:0 0 14px}
#error.on{display:block}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:0 0 14px}
.sub{color:var(--mut);margin:0 0 8px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums;table-layout:fixed}
th{width:110px}
th:first-child,th.l{width:auto}
th.w{width:150px}
th.t{width:125px}
th,td{text-align:right;padding:6px 10px;border-bottom:1px solid var(--line);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
th{color:var(--mut);font-weight:600;font-size:12px}
th:first-child,th.l,td.name,td.upstream{text-align:left}
tbody tr:last-child td{border-bottom:0}
.bar{display:inline-block;vertical-align:middle;width:60px;height:8px;margin-left:8px;background:var(--line);border-radius:4px;overflow:hidden}
.bar i{display:block;height:100%;background:var(--acc)}
.hot{color:var(--bad);font-weight:600}
.mut{color:var(--mut)}
td.state.up{color:var(--ok)}
td.state.drain{color:var(--warn)}
.tripped{color:var(--bad)}
td.state.failed,td.state.unhealthy{color:var(--bad);font-weight:600}
td.state.down,td.state.removed{color:var(--mut)}
</style>
</head>
<body>
<main>
<header>
<h1>dynroute</h1>
<span class="kv">zone <b id="zone">–</b></span>
<span class="kv">generation <b id="generation">–</b></span>
<span id="state" class="badge">–</span>
<span class="kv">runtime hosts <b id="hosts">–</b></span>
<span class="kv">refreshed <b id="refreshed">never</b></span>
</header>
<p id="note">Loading…</p>
<div id="error" role="alert"></div>
<section id="tables">
<h2>Tables</h2>
<table>
<thead><tr><th>Table</th><th>Rules</th><th>Requests/s</th><th class="t">421 in window</th>
<th class="t">Requests total</th><th>421 total</th></tr></thead>
<tbody></tbody>
</table>
</section>
<div id="rollouts"></div>
<div id="groups"></div>
<div id="stream"></div>
</main>
<script>
'use strict';
// Polls stats (next to this page's URL) and keeps the samples that cover
// the last WINDOW seconds of the server's clock; every rate, share and
// quantile is computed from the counters' increase between the oldest and
// the newest sample.
const WINDOW = 60;
const PERIOD = 2000;
const REASONS = ['weight', 'header', 'cookie', 'source', 'sticky', 'fallback'];
const CODES = ['1xx', '2xx', '3xx', '4xx', '5xx'];
// a stream session's $status; those from 500 on are failures
const STATUSES = ['200', '400', '403', '500', '502', '503'];
const FAILED = ['500', '502', '503'];
let samples = [];
let shown = null;

const $ = (id) => document.getElementById(id);

// Server data only ever reaches the page as text nodes and attributes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    e.setAttribute(k, v);
  }
  e.append(...kids.map((k) => (k instanceof Node ? k : String(k))));
  return e;
}

const num = (x) => (Number.isFinite(+x) ? +x : 0);
const tkey = (t) => 't\0' + t.name + '\0';
const vkey = (r, v) => 'v\0' + r.name + '\0' + v.name + '\0';
const skey = (g, sv) => 's\0' + g.name + '\0' + sv.name + '\0';
const xkey = (t) => 'x\0' + t.name + '\0';
const ykey = (r, v) => 'y\0' + r.name + '\0' + v.name + '\0';
// A key's series: all but what follows its last \0.
const series = (k) => k.slice(0, k.lastIndexOf('\0') + 1);

// Every counter of a stats answer, by a key of its own.
function flatten(s) {
  const f = new Map();
  for (const t of s.tables || []) {
    f.set(tkey(t) + 'req', num(t.requests));
    f.set(tkey(t) + '421', num(t.misdirected));
  }
  for (const r of s.rollouts || []) {
    for (const v of r.variants || []) {
      const k = vkey(r, v);
      for (const x of REASONS) f.set(k + x, num((v.requests || {})[x]));
      for (const x of CODES) f.set(k + x, num((v.responses || {})[x]));
      f.set(k + 'fb', num(v.fallbacks));
      ((v.latency || {}).buckets || []).forEach((n, i) => f.set(k + 'b' + i, num(n)));
    }
  }
  for (const g of s.groups || []) {
    for (const sv of g.servers || []) {
      const k = skey(g, sv);
      f.set(k + 'req', num(sv.requests));
      for (const x of CODES) f.set(k + x, num((sv.responses || {})[x]));
      f.set(k + 'fails', num(sv.fails));
    }
  }
  const st = s.stream || {};
  for (const t of st.tables || []) {
    const k = xkey(t);
    for (const x of STATUSES) f.set(k + x, num((t.status || {})[x]));
    f.set(k + 'unrouted', num(t.unrouted));
    f.set(k + 'preread', num(t.preread_timeouts));
  }
  for (const r of st.rollouts || []) {
    for (const v of r.variants || []) {
      const k = ykey(r, v);
      for (const x of STATUSES) f.set(k + x, num((v.status || {})[x]));
      ((v.session || {}).buckets || []).forEach((n, i) => f.set(k + 'b' + i, num(n)));
    }
  }
  return f;
}

function add(s) {
  const t = s.time;
  const flat = flatten(s);
  const last = samples[samples.length - 1];
  // A counter that went down: the server restarted; start a new window.
  // A server's went down: it was removed and added again, and counts in a
  // new cell; only its own series start again, from 0 in older samples.
  let reset = !last || t < last.t;
  const renewed = new Set();
  if (!reset) {
    for (const [k, v] of flat) {
      if (v < (last.flat.get(k) ?? 0)) {
        if (k.startsWith('s\0')) {
          renewed.add(series(k));
        } else {
          reset = true;
          break;
        }
      }
    }
  }
  if (!reset && renewed.size) {
    for (const old of samples) {
      for (const k of [...old.flat.keys()]) {
        if (renewed.has(series(k))) old.flat.delete(k);
      }
    }
  }
  if (reset) {
    samples = [];
  } else if (t === last.t) {
    samples.pop();
  }
  samples.push({ t, flat });
  // The oldest sample kept is the newest one at least WINDOW old.
  while (samples.length > 1 && samples[1].t <= t - WINDOW) {
    samples.shift();
  }
}

// Increase of a counter over the window (a series new since the oldest
// sample started from 0).
function delta(k) {
  const a = samples[0].flat.get(k) ?? 0;
  return (samples[samples.length - 1].flat.get(k) ?? 0) - a;
}

const sum = (k, xs) => xs.reduce((a, x) => a + delta(k + x), 0);

// As PromQL's histogram_quantile: linear within the bucket the rank falls
// in, 0 as the lower bound of the first; Infinity in the overflow bucket.
function quantile(q, le, counts) {
  const total = counts.reduce((a, x) => a + x, 0);
  if (!(total > 0)) {
    return null;
  }
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] > 0 && below + counts[i] >= rank) {
      if (i >= le.length) {
        return Infinity;
      }
      const lo = i ? le[i - 1] : 0;
      return lo + (le[i] - lo) * (rank - below) / counts[i];
    }
    below += counts[i];
  }
  return Infinity;
}

function fmtRate(x) {
  const digits = x === 0 || x >= 100 ? 0 : x < 10 ? 2 : 1;
  return x.toFixed(digits) + '/s';
}

const fmtShare = (x) => (100 * x).toFixed(1) + '%';

function fmtSeconds(x, le) {
  if (x === null) {
    return '–';
  }
  if (x === Infinity) {
    return '> ' + le[le.length - 1] + ' s';
  }
  const ms = 1000 * x;
  return ms < 10 ? ms.toFixed(2) + ' ms' : ms < 100 ? ms.toFixed(1) + ' ms'
       : ms < 1000 ? ms.toFixed(0) + ' ms' : x.toFixed(2) + ' s';
}

function clock(t) {
  return new Date(1000 * t).toLocaleTimeString([], { hour12: false });
}

function bar(w) {
  const i = el('i', {});
  i.style.width = Math.max(0, Math.min(100, w)) + '%';
  return el('span', { class: 'bar' }, i);
}

function tableRow(t, span) {
  const k = tkey(t);
  const miss = span > 0 ? delta(k + '421') : '–';
  return el('tr', { 'data-table': t.name },
    el('td', { class: 'name', title: t.name }, t.name),
    el('td', { class: 'rules' }, num(t.rules)),
    el('td', { class: 'rate' }, span > 0 ? fmtRate(delta(k + 'req') / span) : '–'),
    el('td', { class: 'misdirected' + (miss > 0 ? ' hot' : '') }, miss),
    el('td', { class: 'total mut' }, num(t.requests)),
    el('td', { class: 'mut' }, num(t.misdirected)));
}

function variantRow(r, v, span) {
  const k = vkey(r, v);
  const lat = v.latency || {};
  const le = lat.le || [];
  const requests = sum(k, REASONS);
  const responses = sum(k, CODES);
  const errors = delta(k + '5xx');
  const weight = num(v.weight);
  const total = REASONS.reduce((a, x) => a + num((v.requests || {})[x]), 0);
  const on = span > 0;
  const p99 = quantile(0.99, le, (lat.buckets || []).map((_, i) => delta(k + 'b' + i)));
  const overrides = sum(k, ['header', 'cookie', 'source']);
  return el('tr', { 'data-variant': v.name },
    el('td', { class: 'name', title: v.name }, v.name,
       v.name === r.primary ? el('span', { class: 'mut' }, ' (primary)') : ''),
    el('td', { class: 'upstream', title: v.upstream }, v.upstream),
    el('td', { class: 'weight' }, +weight.toFixed(2) + '%', bar(weight)),
    el('td', { class: 'rate' }, on ? fmtRate(requests / span) : '–'),
    el('td', { class: 'errors' + (on && errors > 0 ? ' hot' : '') },
       on && responses > 0 ? fmtShare(errors / responses) : '–'),
    el('td', { class: 'p99' },
       on ? fmtSeconds(p99, le) : '–'),
    el('td', { class: 'overrides' },
       on && requests > 0 ? fmtShare(overrides / requests) : '–'),
    el('td', { class: 'fallbacks' }, on ? delta(k + 'fb') : '–'),
    el('td', { class: 'total mut' }, total));
}

// Column heads, with what they mean when hovered.
const HEAD = [
  ['Variant', ''], ['Upstream', 'live'], ['Weight', 'live'],
  ['Requests/s', 'requests it served, over the window'],
  ['5xx', 'share of its responses with a 5xx status, over the window'],
  ['p99', 'upstream response time, 99th percentile over the window'],
  ['Overrides', 'share of its requests routed by header, cookie or source'],
  ['Fallbacks', 'requests it was chosen for that the primary served, in the window'],
  ['Requests total', 'since the zone was created']];

function rollout(r, span) {
  const variants = r.variants || [];
  return el('section', { class: 'rollout', 'data-rollout': r.name },
    el('h2', {}, 'Rollout ', r.name),
    el('p', { class: 'sub' }, 'primary ', el('b', { class: 'primary' }, r.primary),
       ' · ' + variants.length + ' variants'),
    r.tripped ? el('p', { class: 'tripped', title: r.tripped.detail },
                   'guard tripped: ', el('b', {}, r.tripped.variant), ' on ',
                   el('b', { class: 'reason' }, r.tripped.reason), ' · ',
                   r.tripped.detail) : '',
    el('table', {},
       el('thead', {}, el('tr', {},
          ...HEAD.map(([h, title], i) =>
            el('th', { class: ['', 'l', 'w'][i] || (i === HEAD.length - 1 ? 't' : ''), title },
               h)))),
       el('tbody', {}, ...variants.map((v) => variantRow(r, v, span)))));
}

function serverRow(g, sv, span, now) {
  const k = skey(g, sv);
  const on = span > 0;
  const responses = sum(k, CODES);
  const errors = delta(k + '5xx');
  const fails = on ? delta(k + 'fails') : '–';
  const state = String(sv.state);
  const until = num(sv.disabled_until);
  return el('tr', { 'data-server': sv.name },
    el('td', { class: 'name', title: sv.name }, sv.name,
       sv.backup ? el('span', { class: 'mut' }, ' (backup)') : ''),
    el('td', Object.assign({ class: 'state ' + state },
                           until > now ? { title: 'taken out by max_fails until ' + clock(until) }
                           : sv.health ? { title: 'health check: ' + sv.health.state + ', '
                                           + num(sv.health.failures) + ' of '
                                           + num(sv.health.checks) + ' probes failed' }
                           : {}), state),
    el('td', { class: 'weight' }, num(sv.weight)),
    el('td', { class: 'rate' }, on ? fmtRate(delta(k + 'req') / span) : '–'),
    el('td', { class: 'errors' + (on && errors > 0 ? ' hot' : '') },
       on && responses > 0 ? fmtShare(errors / responses) : '–'),
    el('td', { class: 'inflight' }, num(sv.inflight)),
    el('td', { class: 'fails' + (fails > 0 ? ' hot' : '') }, fails),
    el('td', { class: 'total mut' }, num(sv.requests)));
}

const GROUP_HEAD = [
  ['Server', 'canonical address'], ['State', 'up, down, drain, unhealthy (health check), failed (max_fails), removed'],
  ['Weight', ''], ['Requests/s', 'tries it was given, over the window'],
  ['5xx', 'share of its responses with a 5xx status, over the window'],
  ['In flight', 'tries given and not yet done'],
  ['Fails', 'tries that failed as max_fails counts them, in the window'],
  ['Requests total', 'since it was added']];

function group(g, span, now) {
  const servers = g.servers || [];
  const removed = servers.filter((sv) => sv.state === 'removed').length;
  return el('section', { class: 'group', 'data-group': g.name },
    el('h2', {}, g.kind === 'service' ? 'Service ' : 'Upstream ', g.name),
    el('p', { class: 'sub' }, (servers.length - removed)
       + (servers.length - removed === 1 ? ' server' : ' servers')
       + (removed ? ' · ' + removed + ' removed, finishing their requests' : '')),
    el('table', {},
       el('thead', {}, el('tr', {},
          ...GROUP_HEAD.map(([h, title], i) =>
            el('th', { class: i === GROUP_HEAD.length - 1 ? 't' : '', title }, h)))),
       el('tbody', {}, ...servers.map((sv) => serverRow(g, sv, span, now)))));
}

// stream{}: its tables, then a section per rollout
function streamTableRow(t, span) {
  const k = xkey(t);
  const on = span > 0;
  const conns = sum(k, STATUSES);
  const failed = sum(k, FAILED);
  const unrouted = on ? delta(k + 'unrouted') : '–';
  const preread = on ? delta(k + 'preread') : '–';
  return el('tr', { 'data-stream-table': t.name },
    el('td', { class: 'name', title: t.name }, t.name),
    el('td', { class: 'rules' }, num(t.rules)),
    el('td', { class: 'rate' }, on ? fmtRate(conns / span) : '–'),
    el('td', { class: 'errors' + (on && failed > 0 ? ' hot' : '') },
       on && conns > 0 ? fmtShare(failed / conns) : '–'),
    el('td', { class: 'unrouted' + (unrouted > 0 ? ' hot' : '') }, unrouted),
    el('td', { class: 'preread' }, preread),
    el('td', { class: 'total mut' }, num(t.connections)));
}

const STREAM_HEAD = [
  ['Stream table', 'stream{}, by SNI or key='],
  ['Rules', ''], ['Conns/s', 'sessions that ended, over the window'],
  ['Failed', 'share of those sessions that ended with 500, 502 or 503'],
  ['Unrouted', 'closed in the window: no rule and no default'],
  ['Preread t/o', 'ClientHellos not whole at preread_timeout, in the window'],
  ['Conns total', 'since the zone was created']];

function streamVariantRow(r, v, span) {
  const k = ykey(r, v);
  const on = span > 0;
  const ses = v.session || {};
  const le = ses.le || [];
  const conns = sum(k, STATUSES);
  const failed = sum(k, FAILED);
  const weight = num(v.weight);
  const p99 = quantile(0.99, le, (ses.buckets || []).map((_, i) => delta(k + 'b' + i)));
  return el('tr', { 'data-variant': v.name },
    el('td', { class: 'name', title: v.name }, v.name),
    el('td', { class: 'upstream', title: v.upstream }, v.upstream),
    el('td', { class: 'weight' }, +weight.toFixed(2) + '%', bar(weight)),
    el('td', { class: 'rate' }, on ? fmtRate(conns / span) : '–'),
    el('td', { class: 'errors' + (on && failed > 0 ? ' hot' : '') },
       on && conns > 0 ? fmtShare(failed / conns) : '–'),
    el('td', { class: 'p99' }, on ? fmtSeconds(p99, le) : '–'),
    el('td', { class: 'total mut' }, num(v.connections)));
}

const STREAM_VARIANT_HEAD = [
  ['Variant', ''], ['Upstream', 'configured'], ['Weight', 'live'],
  ['Conns/s', 'sessions it served that ended, over the window'],
  ['Failed', 'share of them that ended with 500, 502 or 503'],
  ['p99', 'session time, 99th percentile over the window'],
  ['Conns total', 'since the zone was created']];

function heads(list, first) {
  return el('thead', {}, el('tr', {}, ...list.map(([h, title], i) =>
    el('th', { class: i === 0 ? first : i === list.length - 1 ? 't' : '', title }, h))));
}

function stream(st, span) {
  const tables = st.tables || [];
  const rollouts = st.rollouts || [];
  const out = [];
  if (tables.length) {
    out.push(el('section', { id: 'stream-tables' },
      el('h2', {}, 'Stream tables'),
      el('table', {}, heads(STREAM_HEAD, ''),
         el('tbody', {}, ...tables.map((t) => streamTableRow(t, span))))));
  }
  for (const r of rollouts) {
    const variants = r.variants || [];
    out.push(el('section', { class: 'stream-rollout', 'data-rollout': r.name },
      el('h2', {}, 'Stream rollout ', r.name),
      el('p', { class: 'sub' }, variants.length + ' variants'),
      el('table', {}, heads(STREAM_VARIANT_HEAD, ''),
         el('tbody', {}, ...variants.map((v) => streamVariantRow(r, v, span))))));
  }
  return out;
}

function render(s) {
  const span = samples[samples.length - 1].t - samples[0].t;
  document.title = 'dynroute ' + s.zone;
  $('zone').textContent = s.zone;
  $('generation').textContent = s.generation;
  $('state').textContent = s.draining ? 'draining' : 'serving';
  $('state').className = 'badge' + (s.draining ? ' draining' : '');
  $('hosts').textContent = num(s.runtime_hosts);
  $('refreshed').textContent = clock(s.time);
  const filling = span < WINDOW - PERIOD / 1000;
  $('note').textContent = span <= 0
    ? 'Collecting samples: rates appear after the next refresh.'
    : (filling ? 'Window still filling: rates' : 'Rates') + ' over the last '
      + Math.round(span) + ' s' + (filling ? ' (of ' + WINDOW + ' s).' : '.');
  $('tables').querySelector('tbody').replaceChildren(
    ...(s.tables || []).map((t) => tableRow(t, span)));
  $('rollouts').replaceChildren(...(s.rollouts || []).map((r) => rollout(r, span)));
  $('groups').replaceChildren(...(s.groups || []).map((g) => group(g, span, s.time)));
  $('stream').replaceChildren(...stream(s.stream || {}, span));
}

function problem(message) {
  const e = $('error');
  e.textContent = message === null ? ''
    : 'Cannot refresh: ' + message + (shown === null ? '.'
      : '. Showing the data of ' + clock(shown) + '.');
  e.className = message === null ? '' : 'on';
}

async function refresh() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 5000);
  try {
    const res = await fetch(new URL('stats', location.href),
                            { cache: 'no-store', signal: abort.signal });
    if (!res.ok) {
      let why = 'HTTP ' + res.status;
      try {
        why += ' ' + (await res.json()).error;
      } catch (e) { /* not JSON */ }
      throw new Error(why);
    }
    const s = await res.json();
    if (typeof s !== 'object' || s === null || !Number.isFinite(s.time)) {
      throw new Error('the answer has no time');
    }
    add(s);
    render(s);
    shown = s.time;
    problem(null);
  } catch (e) {
    problem(e.name === 'AbortError' ? 'timed out' : e.message);
  } finally {
    clearTimeout(timer);
    setTimeout(refresh, PERIOD);
  }
}

refresh();
</script>
</body>
</html>
)DYNROUTE_PAGE").substr(1);

}  // namespace

std::string_view status_page() noexcept
{
    return page;
}

}  // namespace dynroute
