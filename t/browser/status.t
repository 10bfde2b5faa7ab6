#!/usr/bin/env node
// The live status page in a real browser: headless Chromium loads
// {prefix}ui from dynroute's API, the test sends traffic through a rollout
// whose canary fails part of its requests, and checks that the page shows
// the rollout, its live weights, the rates, the canary's 5xx share, p99 and
// overrides, and the canary's upstream (dynroute_servers) with its server,
// as computed from {prefix}stats.  Then the page is fed made-up
// stats to check the p99 interpolation, the overflow bucket, a counter
// reset and a failed refresh, and made-up groups of servers (the page's
// section per upstream or service; a server removed and added again starts
// its own series, not the window).  Saves a screenshot to
// build/status-page.png.
//
// Prints TAP (run by `make test-browser` through prove).  Loopback only;
// starts one nginx and one Chromium and stops both itself.
// The environment it reads is described in lib.js.
'use strict';

const http = require('http');
const path = require('path');

const {
    REPO, ok, is, run, freePort, sleep, makePrefix, nginxConf, startNginx, stopNginx,
    checkNginxLogs, request, launchChromium, reportError, cleanUp,
} = require('./lib.js');

const DEADLINE_MS = 180000;     // the whole run, however slow the machine
const WAIT_MS = 30000;          // for the page to show something

const SCREENSHOT = path.join(REPO, 'build', 'status-page.png');

// ---- nginx ----------------------------------------------------------------

// The http block: a rollout whose canary fails, its table and proxy, and
// the API with the status page.
function httpConf(prefix, p) {
    return `
    dynroute_zone routes 1m;

    # The two versions of the application: the canary fails a fifth of
    # its requests.
    upstream checkout_v1 { server 127.0.0.1:${p.stable}; }
    upstream checkout_v2 {
        dynroute_servers;           # the page's section of its servers
        server 127.0.0.1:${p.canary};
    }

    split_clients $request_id $canary_fails {
        20%  1;
        *    "";
    }

    server {
        listen 127.0.0.1:${p.stable};
        location / { return 200 "v1\\n"; }
    }
    server {
        listen 127.0.0.1:${p.canary};
        location / {
            if ($canary_fails) {
                return 500 "v2 failed\\n";
            }
            return 200 "v2\\n";
        }
    }

    dynroute_rollout checkout {
        variant  stable  checkout_v1  70%;
        variant  canary  checkout_v2  30%;
        key      $arg_user;
        header   X-Canary;
        override_from 127.0.0.1;
    }

    # No default: any other host is answered 421.
    dynroute_table edge {
        shop.test  checkout;
        www.test   checkout_v1;
    }

    server {
        listen 127.0.0.1:${p.proxy};
        dynroute edge;
        location / { proxy_pass http://$dynroute_upstream; }
    }

    server {
        listen 127.0.0.1:${p.api};
        location /dynroute/ {
            dynroute_api;
            allow 127.0.0.1;
            deny all;
        }
    }
`;
}

// ---- traffic ----------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });

function get(port, host, urlPath, headers) {
    return request(port, 'GET', urlPath, { headers: { Host: host, ...headers }, agent });
}

// 300 users of shop.test in six bursts, every tenth one a tester with
// "X-Canary: always", every 25th one with "never"; a few requests for
// www.test (a plain rule) and for a host of no rule (421).
async function sendLoad(port) {
    const seen = {};
    let i = 0;
    for (let burst = 0; burst < 6; burst++) {
        const reqs = [];
        for (let n = 0; n < 50; n++, i++) {
            const headers = i % 10 === 0 ? { 'X-Canary': 'always' }
                : i % 25 === 3 ? { 'X-Canary': 'never' } : {};
            reqs.push(get(port, 'shop.test', `/cart?user=u${i}`, headers));
        }
        reqs.push(get(port, 'www.test', '/', {}));
        reqs.push(get(port, 'nowhere.test', '/', {}));
        for (const r of await Promise.all(reqs)) {
            // the backends' answers by body, nginx's own by status
            const key = /^v\d/.test(r.body) ? `${r.status} ${r.body.trim()}`
                : String(r.status);
            seen[key] = (seen[key] || 0) + 1;
        }
        await sleep(600);
    }
    return seen;
}

async function stats(port) {
    const r = await get(port, '127.0.0.1', '/dynroute/stats', {});
    return JSON.parse(r.body);
}

// ---- the page ---------------------------------------------------------------

// What the page shows: header, tables and every variant row, as text.
function view(page) {
    return page.evaluate(() => {
        const text = (e, sel) => (e.querySelector(sel) || {}).textContent;
        const rows = {};
        for (const s of document.querySelectorAll('section.rollout')) {
            for (const tr of s.querySelectorAll('tr[data-variant]')) {
                const row = {};
                for (const c of ['upstream', 'weight', 'rate', 'errors', 'p99',
                                 'overrides', 'fallbacks', 'total']) {
                    row[c] = text(tr, `.${c}`);
                }
                rows[`${s.dataset.rollout}/${tr.dataset.variant}`] = row;
            }
        }
        const tables = {};
        for (const tr of document.querySelectorAll('#tables tr[data-table]')) {
            tables[tr.dataset.table] = { rules: text(tr, '.rules'), rate: text(tr, '.rate'),
                                         misdirected: text(tr, '.misdirected') };
        }
        const servers = {};
        for (const s of document.querySelectorAll('section.group')) {
            for (const tr of s.querySelectorAll('tr[data-server]')) {
                const row = {};
                for (const c of ['name', 'state', 'weight', 'rate', 'errors', 'inflight',
                                 'fails', 'total']) {
                    row[c] = text(tr, `.${c}`);
                }
                row.title = (tr.querySelector('.state') || {}).title;
                servers[`${s.dataset.group}/${tr.dataset.server}`] = row;
            }
        }
        const streamTables = {};
        for (const tr of document.querySelectorAll('#stream-tables tr[data-stream-table]')) {
            const row = {};
            for (const c of ['rules', 'rate', 'errors', 'unrouted', 'preread', 'total']) {
                row[c] = text(tr, `.${c}`);
            }
            streamTables[tr.dataset.streamTable] = row;
        }
        const streamRows = {};
        for (const s of document.querySelectorAll('section.stream-rollout')) {
            for (const tr of s.querySelectorAll('tr[data-variant]')) {
                const row = {};
                for (const c of ['upstream', 'weight', 'rate', 'errors', 'p99', 'total']) {
                    row[c] = text(tr, `.${c}`);
                }
                streamRows[`${s.dataset.rollout}/${tr.dataset.variant}`] = row;
            }
        }
        const groups = [...document.querySelectorAll('section.group')].map(
            (s) => `${text(s, 'h2')}: ${text(s, '.sub')}`);
        const banner = document.getElementById('error');
        return {
            zone: text(document, '#zone'), generation: text(document, '#generation'),
            state: text(document, '#state'), hosts: text(document, '#hosts'),
            refreshed: text(document, '#refreshed'), note: text(document, '#note'),
            error: getComputedStyle(banner).display === 'none' ? null : banner.textContent,
            rollouts: [...document.querySelectorAll('section.rollout')]
                .map((s) => s.dataset.rollout),
            primary: text(document, 'section.rollout .primary'),
            rows, tables, servers, groups, streamTables, streamRows,
        };
    });
}

function waitFor(page, fn, arg) {
    return page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
}

const share = (n, d) => `${(100 * n / d).toFixed(1)}%`;
const sumOf = (o) => Object.values(o).reduce((a, x) => a + x, 0);

// ---- made-up stats ----------------------------------------------------------

const LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function variant(name, weight, c) {
    const buckets = new Array(12).fill(0);
    for (const [i, n] of Object.entries(c.buckets || {})) {
        buckets[i] = n;
    }
    return {
        name, upstream: `${name}_up`, weight,
        requests: { weight: c.weight || 0, header: c.header || 0, cookie: 0,
                    source: 0, fallback: 0 },
        responses: { '1xx': 0, '2xx': c.ok || 0, '3xx': 0, '4xx': 0, '5xx': c.bad || 0 },
        fallbacks: c.fallbacks || 0,
        latency: { le: LE, buckets, sum: 0, count: sumOf(buckets) },
    };
}

function server(name, state, c) {
    return {
        name, state, weight: c.weight || 1, backup: !!c.backup, requests: c.req || 0,
        inflight: c.inflight || 0,
        responses: { '1xx': 0, '2xx': c.ok || 0, '3xx': 0, '4xx': 0, '5xx': c.bad || 0 },
        fails: c.fails || 0, disabled_until: c.until || 0,
    };
}

// stream{}'s part: a table and a rollout of two variants; x: the
// counters (statuses by code, unrouted, preread timeouts, sessions'
// buckets by variant)
const SLE = [0.01, 0.1, 0.5, 1, 5, 30, 300, 1800, 3600];

function streamPart(x) {
    const sessions = (st, b) => {
        const buckets = new Array(10).fill(0);
        for (const [i, n] of Object.entries(b || {})) {
            buckets[i] = n;
        }
        const status = { 200: 0, 400: 0, 403: 0, 500: 0, 502: 0, 503: 0 };
        Object.assign(status, st || {});
        return { connections: sumOf(status), status, received: 0, sent: 0,
                 session: { le: SLE, buckets, sum: 0, count: sumOf(buckets) } };
    };
    return {
        tables: [Object.assign({ name: 'sni', rules: 3 }, sessions(x.t),
                               { unnamed: 0, unrouted: x.unrouted || 0,
                                 preread_timeouts: x.preread || 0, regex_errors: 0 })],
        rollouts: [{ name: 'db', variants: [
            Object.assign({ name: 'stable', upstream: 'db_a', weight: 90 },
                          sessions(x.a, x.ab)),
            Object.assign({ name: 'canary', upstream: 'db_b', weight: 10 },
                          sessions(x.b, x.bb))] }],
    };
}

// g: the counters of the upstream's servers x, y (failed for 5 s more) and
// z (removed); st: stream{}'s (streamPart)
function madeUp(time, a, b, g = {}, st = {}) {
    return {
        zone: 'fake', generation: 7, draining: true, time, runtime_hosts: 3,
        tables: [{ name: 'main', rules: 4, requests: 0, misdirected: 0, regex_errors: 0 }],
        rollouts: [{ name: 'r', primary: 'a',
                     variants: [variant('a', 87.5, a), variant('b', 12.5, b)] }],
        groups: [
            { name: 'shop_api', kind: 'upstream', servers: [
                server('10.0.0.5:8080', 'up', g.x || {}),
                server('[2001:db8::5]:8080', 'failed',
                       Object.assign({ backup: true, until: time + 5 }, g.y)),
                server('unix:/run/app.sock', 'removed', g.z || {})] },
            { name: 'tenant-42', kind: 'service', servers: [] },
        ],
        stream: streamPart(st),
    };
}

// The answers, in order; null: the request fails.
const FAKE = [
    madeUp(1000, {}, {}),
    // a: 100 requests, 10 by header, 5 failed, all between 25 and 50 ms;
    // b: 4 requests over 10 s, all failed, 2 fallbacks
    // x: 100 tries, 10 answered 5xx, 3 failed, 2 in flight; y: 20, all 2xx
    madeUp(1010, { weight: 90, header: 10, ok: 95, bad: 5, buckets: { 3: 100 } },
           { weight: 4, bad: 4, fallbacks: 2, buckets: { 11: 4 } },
           { x: { req: 100, ok: 88, bad: 10, fails: 3, inflight: 2 },
             y: { req: 20, ok: 20 }, z: { req: 7, ok: 7 } },
           // stream: 100 sessions, 5 ended 502; 2 closed unrouted, 1
           // preread timeout; stable 50 sessions of 10 to 100 ms, canary
           // 5 failed ones over an hour
           { t: { 200: 95, 502: 5 }, unrouted: 2, preread: 1,
             a: { 200: 50 }, ab: { 1: 50 }, b: { 502: 5 }, bb: { 9: 5 } }),
    // counters went down: a restart
    madeUp(1020, { weight: 5 }, {}),
    null,
    madeUp(1030, { weight: 25 }, {}),
    madeUp(1100, { weight: 95 }, {}),
];

// A page of its own: y is removed and added again between two answers (its
// counters start again in a new cell), and nothing else goes down.
const RENEWED = [
    madeUp(1000, {}, {}, { x: { req: 50, ok: 50 }, y: { req: 40, ok: 40 } }),
    madeUp(1010, {}, {}, { x: { req: 100, ok: 100 }, y: { req: 5, ok: 4, bad: 1 } }),
];

// ---- main -------------------------------------------------------------------

async function main() {
    const ports = {};
    for (const name of ['proxy', 'api', 'stable', 'canary']) {
        ports[name] = await freePort();
    }
    const prefix = makePrefix();

    const origin = `http://127.0.0.1:${ports.api}`;
    const ui = `${origin}/dynroute/ui`;

    let srv;
    let browser;

    try {
        srv = await startNginx(prefix, ports, nginxConf(prefix, httpConf(prefix, ports),
                                                        { workers: 2, connections: 256 }));

        browser = await launchChromium();

        const context = await browser.newContext({ viewport: { width: 1280, height: 800 },
                                                   colorScheme: 'light' });
        const page = await context.newPage();
        page.setDefaultTimeout(60000);

        const requested = [];
        const problems = [];
        page.on('request', (r) => requested.push(r.url()));
        page.on('console', (m) => {
            if (m.type() === 'error' || m.type() === 'warning') {
                problems.push(`console ${m.type()}: ${m.text()}`);
            }
        });
        page.on('pageerror', (e) => problems.push(`page error: ${e}`));

        // ---- the page as it loads ----

        const res = await page.goto(ui);
        const headers = res.headers();
        ok(res.status() === 200 && /^text\/html/.test(headers['content-type']),
           'GET /dynroute/ui answers 200 with text/html',
           `${res.status()} ${headers['content-type']}`);
        ok(/default-src 'none'/.test(headers['content-security-policy'] || ''),
           'the page is served with a Content-Security-Policy of default-src \'none\'',
           headers['content-security-policy']);

        await waitFor(page, () => document.querySelectorAll(
            'section.rollout[data-rollout="checkout"] tr[data-variant]').length === 2);
        let v = await view(page);
        is(v.rollouts.join(' '), 'checkout', 'the page shows the rollout checkout');
        is(v.primary, 'stable', 'its primary is stable');
        is(`${v.rows['checkout/stable'].upstream} ${v.rows['checkout/stable'].weight}`,
           'checkout_v1 70%', 'variant stable: upstream checkout_v1, weight 70%');
        is(`${v.rows['checkout/canary'].upstream} ${v.rows['checkout/canary'].weight}`,
           'checkout_v2 30%', 'variant canary: upstream checkout_v2, weight 30%');
        is(`${v.zone} ${v.state} ${v.hosts}`, 'routes serving 0',
           'header: zone routes, serving, no runtime hosts');
        ok(/^\d+$/.test(v.generation), 'header: the state generation', v.generation);
        is(v.tables.edge && v.tables.edge.rules, '2', 'table edge with its 2 rules');

        // the second sample: the page has a window, and no traffic yet
        await waitFor(page, () => /over the last \d+ s/.test(
            document.getElementById('note').textContent));
        const before = await view(page);
        const idle = before.rows['checkout/canary'];
        is(`${idle.rate} ${idle.errors} ${idle.p99} ${idle.overrides}`, '0/s – – –',
           'before any traffic: no rate, no error share, no p99, no overrides');
        ok(/^Window still filling: rates over the last \d+ s \(of 60 s\)\.$/.test(before.note),
           'the note says the window is still filling', before.note);

        // ---- traffic ----

        const t0 = Date.now();
        const seen = await sendLoad(ports.proxy);
        console.log(`# sent 312 requests in ${Date.now() - t0} ms: ${JSON.stringify(seen)}`);
        ok(seen['500 v2 failed'] > 0 && seen['421'] === 6
           && Object.keys(seen).every((k) => /^(200 v[12]|500 v2 failed|421)$/.test(k)),
           'the canary failed some requests, the unknown host got 421s, nothing else failed',
           JSON.stringify(seen));

        await waitFor(page, () => {
            const num = (sel) => parseFloat(
                (document.querySelector(sel) || {}).textContent);
            const row = (n) => `section.rollout[data-rollout="checkout"] tr[data-variant="${n}"]`;
            return num(`${row('stable')} .rate`) > 0 && num(`${row('canary')} .rate`) > 0
                && num(`${row('canary')} .errors`) > 0;
        });
        ok(true, 'the page shows a rate for both variants and a 5xx share for the canary');

        // Once the page has refreshed after the last request, its window
        // (from its first sample, before any traffic) holds all of it.
        const s = await stats(ports.api);
        const sv = {};
        for (const x of s.rollouts[0].variants) {
            sv[x.name] = x;
        }
        const totals = ['stable', 'canary'].map((n) => String(sumOf(sv[n].requests)));
        await waitFor(page, (want) => ['stable', 'canary'].every((n, i) => (document
            .querySelector(`tr[data-variant="${n}"] .total`) || {}).textContent === want[i]),
                      totals);
        v = await view(page);
        const stable = v.rows['checkout/stable'];
        const canary = v.rows['checkout/canary'];
        console.log(`# page: ${JSON.stringify(v)}`);

        is(canary.errors, share(sv.canary.responses['5xx'], sumOf(sv.canary.responses)),
           `canary 5xx share over the window as in stats (${canary.errors})`);
        is(stable.errors, '0.0%', 'stable: no 5xx');
        is(canary.overrides, share(sv.canary.requests.header, sumOf(sv.canary.requests)),
           `canary overrides: the share of X-Canary requests (${canary.overrides})`);
        is(stable.overrides, share(sv.stable.requests.header, sumOf(sv.stable.requests)),
           `stable overrides: the share of "X-Canary: never" (${stable.overrides})`);
        ok(/^\d+(\.\d+)? ms$/.test(canary.p99) && /^\d+(\.\d+)? ms$/.test(stable.p99),
           `p99 of both variants in ms (${stable.p99}, ${canary.p99})`);
        is(`${stable.fallbacks} ${canary.fallbacks}`, '0 0', 'no fallbacks');

        // the note rounds the window to a second, the rates to 0.1/s
        const span = Number((/over the last (\d+) s/.exec(v.note) || [])[1]);
        const all = Number(totals[0]) + Number(totals[1]);
        const rate = parseFloat(stable.rate) + parseFloat(canary.rate);
        ok(span > 0 && all / (span + 0.5) - 0.1 <= rate && rate <= all / (span - 0.5) + 0.1,
           `the rates over the window of the server's clock: ${rate}/s × ${span} s `
           + `≈ the ${all} requests`, v.note);
        is(v.tables.edge.misdirected, String(s.tables[0].misdirected),
           `table edge: ${s.tables[0].misdirected} requests answered 421 in the window`);
        ok(s.tables[0].misdirected === 6, 'stats counted the six 421s',
           JSON.stringify(s.tables));
        ok(parseFloat(v.tables.edge.rate) > 0, `table edge: a request rate (${v.tables.edge.rate})`);
        ok(['rate', 'errors', 'p99', 'overrides', 'total'].every(
            (c) => canary[c] !== idle[c]), 'the canary row changed with the traffic',
           `${JSON.stringify(idle)}\n${JSON.stringify(canary)}`);
        const cs = ((s.groups || []).find((g) => g.name === 'checkout_v2') || {}).servers || [];
        ok(cs.length === 1 && cs[0].requests === sumOf(sv.canary.requests),
           'stats: the canary upstream\'s server took every canary request',
           JSON.stringify(s.groups));
        await waitFor(page, (want) => (document.querySelector(
            'section.group[data-group="checkout_v2"] tr[data-server] .total') || {})
            .textContent === want, String(cs.length && cs[0].requests));
        const g = await view(page);
        const cserver = g.servers[`checkout_v2/127.0.0.1:${ports.canary}`] || {};
        is(g.groups.join(' | '), 'Upstream checkout_v2: 1 server',
           'the page shows the canary\'s upstream, a section of its own');
        is(`${cserver.name} ${cserver.state} ${cserver.total} ${cserver.inflight} ${cserver.fails}`,
           `127.0.0.1:${ports.canary} up ${cs.length && cs[0].requests} 0 0`,
           'its server: up, its requests, nothing in flight, no fails');
        is(cserver.errors, cs.length ? share(cs[0].responses['5xx'], sumOf(cs[0].responses)) : '',
           `its server's 5xx share as in stats (${cserver.errors})`);
        ok(v.refreshed !== before.refreshed, 'the refresh time moved on',
           `${before.refreshed} ${v.refreshed}`);
        ok(v.error === null, 'no error banner', v.error);

        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        console.log(`# screenshot: ${SCREENSHOT}`);

        const foreign = requested.filter(
            (u) => u !== ui && u !== `${origin}/dynroute/stats`);
        ok(foreign.length === 0, 'the page loaded nothing but ui and stats',
           foreign.join('\n'));
        ok(requested.filter((u) => u.endsWith('/stats')).length >= 3,
           'the page polled stats', requested.join('\n'));
        ok(problems.length === 0, 'no console error or page error', problems.join('\n'));

        // ---- made-up stats ----

        let answer = 0;
        const fake = await context.newPage();
        fake.on('pageerror', (e) => problems.push(`page error: ${e}`));
        await fake.route('**/dynroute/stats', (route) => {
            const body = FAKE[Math.min(answer++, FAKE.length - 1)];
            return body === null ? route.abort('connectionrefused')
                : route.fulfill({ status: 200, contentType: 'application/json',
                                  body: JSON.stringify(body) });
        });
        await fake.goto(ui);

        const rowsOf = (w) => `${w.rows['r/a'].rate} ${w.rows['r/a'].errors} `
            + `${w.rows['r/a'].p99} ${w.rows['r/a'].overrides} | ${w.rows['r/b'].rate} `
            + `${w.rows['r/b'].errors} ${w.rows['r/b'].p99} ${w.rows['r/b'].fallbacks}`;
        const noteIs = (re) => waitFor(fake, (src) => new RegExp(src).test(
            document.getElementById('note').textContent), re.source);

        await noteIs(/over the last 10 s/);
        let w = await view(fake);
        is(rowsOf(w), '10.0/s 5.0% 49.8 ms 10.0% | 0.40/s 100.0% > 10 s 2',
           'made-up stats: rates, shares, p99 interpolated in its bucket, the overflow bucket');
        is(`${w.zone} ${w.generation} ${w.state} ${w.hosts}`, 'fake 7 draining 3',
           'made-up stats: the header shows a draining node');
        is(`${w.rows['r/a'].weight} ${w.rows['r/b'].weight}`, '87.5% 12.5%',
           'made-up stats: fractional weights');
        is(w.groups.join(' | '), 'Upstream shop_api: 2 servers · 1 removed, finishing their '
           + 'requests | Service tenant-42: 0 servers',
           'made-up stats: a section per group, the removed server apart');
        const serverText = (k) => {
            const r = w.servers[`shop_api/${k}`] || {};
            return `${r.name} ${r.state} ${r.weight} ${r.rate} ${r.errors} ${r.inflight} `
                + `${r.fails} ${r.total}`;
        };
        is(serverText('10.0.0.5:8080'), '10.0.0.5:8080 up 1 10.0/s 10.2% 2 3 100',
           'made-up stats: a server\'s state, rate, 5xx share, in flight, fails');
        is(serverText('[2001:db8::5]:8080'), '[2001:db8::5]:8080 (backup) failed 1 2.00/s 0.0% 0 0 20',
           'made-up stats: a failed backup server');
        ok(/^taken out by max_fails until \d\d:\d\d:\d\d$/.test(
            w.servers['shop_api/[2001:db8::5]:8080'].title),
           'made-up stats: until when max_fails took it out',
           w.servers['shop_api/[2001:db8::5]:8080'].title);
        is(serverText('unix:/run/app.sock'), 'unix:/run/app.sock removed 1 0.70/s 0.0% 0 0 7',
           'made-up stats: a removed server, listed until its cell is freed');

        const sni = w.streamTables.sni || {};
        is(`${sni.rules} ${sni.rate} ${sni.errors} ${sni.unrouted} ${sni.preread} ${sni.total}`,
           '3 10.0/s 5.0% 2 1 100',
           'made-up stats: a stream table\'s rate, failed share, unrouted and preread timeouts');
        const streamRow = (n) => {
            const r = w.streamRows[`db/${n}`] || {};
            return `${r.upstream} ${r.weight} ${r.rate} ${r.errors} ${r.p99} ${r.total}`;
        };
        is(streamRow('stable'), 'db_a 90% 5.00/s 0.0% 99.1 ms 50',
           'made-up stats: a stream variant, p99 of its sessions interpolated');
        is(streamRow('canary'), 'db_b 10% 0.50/s 100.0% > 3600 s 5',
           'made-up stats: a failing stream variant, sessions in the overflow bucket');

        await noteIs(/^Collecting samples/);
        w = await view(fake);
        is(rowsOf(w), '– – – – | – – – –', 'a counter that went down restarts the window');

        await waitFor(fake, () => getComputedStyle(document.getElementById('error'))
            .display !== 'none');
        w = await view(fake);
        ok(/^Cannot refresh: .*\. Showing the data of \d\d:\d\d:\d\d\.$/.test(w.error)
           && w.rows['r/a'] !== undefined,
           'a failed refresh shows a banner and keeps the last data', w.error);

        await noteIs(/over the last 10 s/);
        w = await view(fake);
        ok(w.error === null && w.rows['r/a'].rate === '2.00/s',
           'the next refresh clears the banner; the window starts at the reset',
           JSON.stringify(w));

        await noteIs(/^Rates over the last 70 s\.$/);
        w = await view(fake);
        is(w.rows['r/a'].rate, '1.00/s',
           'after a gap the window starts at the newest sample at least 60 s old');

        let renewedAnswer = 0;
        const renewed = await context.newPage();
        renewed.on('pageerror', (e) => problems.push(`page error: ${e}`));
        await renewed.route('**/dynroute/stats', (route) => route.fulfill({
            status: 200, contentType: 'application/json',
            body: JSON.stringify(RENEWED[Math.min(renewedAnswer++, RENEWED.length - 1)]) }));
        await renewed.goto(ui);
        await waitFor(renewed, () => /over the last 10 s/.test(
            document.getElementById('note').textContent));
        w = await view(renewed);
        is(`${w.servers['shop_api/10.0.0.5:8080'].rate} `
           + `${w.servers['shop_api/[2001:db8::5]:8080'].rate} `
           + `${w.servers['shop_api/[2001:db8::5]:8080'].errors}`, '5.00/s 0.50/s 20.0%',
           'a server added again counts from 0, and the window goes on for the others');
        await renewed.close();

        ok(problems.length === 0, 'no page error on made-up stats', problems.join('\n'));

        await browser.close();
        browser = undefined;

        await stopNginx(srv);
        checkNginxLogs(srv);

    } catch (e) {
        reportError(e, prefix);
    } finally {
        agent.destroy();
        await cleanUp(prefix, browser, srv);
    }
}

run(main, DEADLINE_MS);
