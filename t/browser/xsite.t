#!/usr/bin/env node
// The runtime API against web pages in an operator's browser, in a real
// browser.  `allow 127.0.0.1` lets the browser in, so what its pages do
// reaches the API with the browser's address:
//   1. a page of another origin auto-submits HTML forms (urlencoded, and
//      text/plain with a body that looks like JSON) to drain the node and
//      to add a host, then tries fetch(): no-cors, and with JSON (which a
//      browser sends only after a CORS preflight), with and without
//      credentials;
//   2. a page whose name an attacker made resolve to the node (DNS
//      rebinding, done here by Chromium's --host-resolver-rules) calls the
//      API same-origin, so it could read the answers;
//   3. after each attack the test reads the state itself: not draining, no
//      runtime host, the same generation, the readiness location 200;
//   4. a control: the API's own origin does the same and succeeds;
//   5. the API's access log and error.log show that the API refused the
//      attacks (the page alone could not tell).
// t/security_api.t proves the same at the HTTP level.
//
// Prints TAP (run by `make test-browser` through prove).  Loopback only;
// starts one nginx and one Chromium and stops both itself.
// The environment it reads is described in lib.js.
'use strict';

const {
    ok, is, run, freePort, readLog, makePrefix, nginxConf, startNginx, stopNginx,
    checkNginxLogs, request, launchChromium, reportError, cleanUp,
} = require('./lib.js');

const DEADLINE_MS = 120000;     // the whole run, however slow the machine
const WAIT_MS = 15000;          // for a page to finish its attack

const REBIND = 'rebind.attacker.example';
const HOST = 'evil.example.com';          // the host the attacks try to add
const JSON_TYPE = { 'Content-Type': 'application/json' };

// ---- nginx ----------------------------------------------------------------

// The http block: the attacker's site, and the node with its API behind
// allow/deny.
function httpConf(prefix, p) {
    return `    types { text/html html; }

    log_format api '$request_method $uri $status '
                   'origin=$http_origin host=$http_host type=$content_type';

    upstream service_a { server 127.0.0.1:${p.backend}; }
    server { listen 127.0.0.1:${p.backend}; return 200 "a\\n"; }

    dynroute_zone z 1m;
    dynroute_table edge { default service_a; }

    # The attacker's site: another origin (another port) on loopback.
    server { listen 127.0.0.1:${p.evil}; root ${prefix}/evil; }

    # The node: the API as an operator sets it up, behind allow/deny.
    server {
        listen 127.0.0.1:${p.api};
        access_log ${prefix}/logs/api.log api;

        location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
        location /dynroute/ {
            allow 127.0.0.1; deny all;
            dynroute_api write=on;
        }
        location = /ready { dynroute_health readiness; }

        # What a rebound name serves: the attacker's page, which its own
        # server sent before the name was made to point here.
        location = /attack.html { root ${prefix}/rebind; }

        # A page of the operator's own on the API's origin: the control.
        location = /ops.html { root ${prefix}/ops; }
    }
`;
}

// ---- the pages ------------------------------------------------------------

// The attacker's page: two forms submitted into hidden frames as the page
// loads.  The second is the classic text/plain trick: the field's name and
// value make the body `{"target":"service_a","x":"="}`, so an API that read
// JSON whatever the Content-Type would take it (a PUT is out of a form's
// reach, but the trick works on any POST that reads JSON).  The page notes
// what it can see of each frame once it has loaded.
function evilPage(api) {
    return `<!doctype html>
<title>a page elsewhere</title>
<iframe name="f_drain"></iframe>
<iframe name="f_host"></iframe>
<form id="drain" method="POST" action="${api}drain" target="f_drain"
      enctype="application/x-www-form-urlencoded">
  <input type="hidden" name="a" value="1">
</form>
<form id="host" method="POST" action="${api}hosts/${HOST}" target="f_host"
      enctype="text/plain">
  <input type="hidden" name='{"target":"service_a","x":"' value='"}'>
</form>
<script>
window.frameViews = {};
for (const f of document.querySelectorAll('iframe')) {
    f.addEventListener('load', () => {
        let view;
        try {
            const d = f.contentDocument;
            if (d && d.URL === 'about:blank') {
                return;
            }
            view = d ? 'read: ' + d.body.textContent : 'no access';
        } catch (e) {
            view = 'no access: ' + e.name;
        }
        window.frameViews[f.name] = view;
    });
}
document.getElementById('drain').submit();
document.getElementById('host').submit();
</script>
`;
}

const plainPage = (title) =>
    `<!doctype html><title>${title}</title><p>${title}</p>\n`;

// Runs fetch() inside the page: what could the page read?
async function probe(page, url, init) {
    return page.evaluate(async ({ url, init }) => {
        try {
            const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10000) });
            return { read: res.type !== 'opaque', type: res.type, status: res.status,
                     body: await res.text() };
        } catch (e) {
            return { read: false, error: `${e.name}: ${e.message}` };
        }
    }, { url, init });
}

const show = (r) => JSON.stringify(r);

// ---- the story --------------------------------------------------------------

async function main() {
    const ports = {};
    for (const name of ['api', 'evil', 'backend']) {
        ports[name] = await freePort();
    }
    const prefix = makePrefix();

    const apiOrigin = `http://127.0.0.1:${ports.api}`;
    const api = `${apiOrigin}/dynroute/`;
    const evilOrigin = `http://127.0.0.1:${ports.evil}`;
    const rebindOrigin = `http://${REBIND}:${ports.api}`;
    const hostJson = JSON.stringify({ target: 'service_a' });

    async function state() {
        const r = await request(ports.api, 'GET', '/dynroute/');
        try {
            return JSON.parse(r.body);
        } catch (e) {
            return { unreadable: `${r.status} ${r.body}` };
        }
    }

    // Reads the state and the readiness location; true if as before.
    async function unchanged(before, what) {
        const s = await state();
        const ready = await request(ports.api, 'GET', '/ready');
        const hosts = s.hosts ? Object.keys(s.hosts) : ['?'];
        const same = s.draining === false && hosts.length === 0
                     && s.generation === before.generation && ready.status === 200;
        ok(same, `${what}: the node is unchanged (not draining, no runtime host, `
                 + `generation ${before.generation}, readiness 200)`,
           `draining ${s.draining}, hosts ${show(hosts)}, generation ${s.generation}, `
           + `readiness ${ready.status}${s.unreadable ? `, state ${s.unreadable}` : ''}`);
        return same;
    }

    // Puts the state back after an attack that got through, so that each
    // attack is judged on its own; answers the state to compare with next.
    async function restore() {
        await request(ports.api, 'POST', '/dynroute/ready', { headers: JSON_TYPE, body: '' });
        await request(ports.api, 'DELETE', `/dynroute/hosts/${HOST}`);
        return state();
    }

    let srv;
    let browser;

    try {
        srv = await startNginx(prefix, ports, nginxConf(prefix, httpConf(prefix, ports)), {
            'evil/index.html': evilPage(api),
            'rebind/attack.html': plainPage('the attacker, rebound'),
            'ops/ops.html': plainPage('the operator'),
        });

        let before = await state();
        ok(before.generation !== undefined && before.draining === false,
           'the node answers its state to the test', show(before));

        browser = await launchChromium({
            timeout: 60000,
            // the attacker's name now leads to the node
            args: [`--host-resolver-rules=MAP ${REBIND} 127.0.0.1`],
        });

        // an operator's session cookie of the node's site, for the
        // credentialed attempts: cookies ignore the port, and another port of
        // 127.0.0.1 is the same site, so even a SameSite cookie goes along
        const context = await browser.newContext();
        await context.addCookies([{ name: 'sid', value: 's3cret', url: `${apiOrigin}/`,
                                    sameSite: 'Lax' }]);
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT_MS);

        let r;

        // ---- 1. a page of another origin ----

        await page.goto(`${evilOrigin}/`);
        await page.waitForFunction(() => Object.keys(window.frameViews).length === 2,
                                   null, { timeout: WAIT_MS });
        const views = await page.evaluate(() => window.frameViews);
        console.log(`# the page saw its forms' frames: ${show(views)}`);
        ok(/^no access/.test(views.f_drain) && /^no access/.test(views.f_host),
           'cross-site forms: the page cannot read what the API answered', show(views));
        if (!await unchanged(before, 'after the cross-site form POSTs (urlencoded drain, '
                                     + 'text/plain "JSON" host)')) {
            before = await restore();
        }

        r = await probe(page, `${api}drain`, { method: 'POST', mode: 'no-cors' });
        console.log(`# no-cors POST drain: ${show(r)}`);
        ok(!r.read && r.status === 0, 'no-cors POST drain: the page gets an opaque answer',
           show(r));
        if (!await unchanged(before, 'after the no-cors fetch() POST drain')) {
            before = await restore();
        }

        r = await probe(page, `${api}hosts/${HOST}`,
                        { method: 'PUT', headers: JSON_TYPE, body: hostJson });
        console.log(`# PUT host with JSON: ${show(r)}`);
        ok(!r.read && /TypeError/.test(r.error),
           'cross-site PUT with JSON: blocked at the preflight', show(r));
        if (!await unchanged(before, 'after the cross-site fetch() PUT with JSON')) {
            before = await restore();
        }

        r = await probe(page, `${api}hosts/${HOST}`,
                        { method: 'PUT', headers: JSON_TYPE, body: hostJson,
                          credentials: 'include' });
        console.log(`# PUT host with JSON and credentials: ${show(r)}`);
        ok(!r.read && /TypeError/.test(r.error),
           'cross-site PUT with JSON and credentials: blocked at the preflight', show(r));
        r = await probe(page, `${api}drain`, { method: 'POST', mode: 'no-cors',
                                               credentials: 'include' });
        console.log(`# no-cors POST drain with credentials: ${show(r)}`);
        if (!await unchanged(before, 'after the credentialed fetch() calls')) {
            before = await restore();
        }

        // ---- 2. DNS rebinding: the attacker's name, the node's address ----

        const rebound = await page.goto(`${rebindOrigin}/attack.html`);
        ok(rebound.status() === 200 && (await rebound.serverAddr()).ipAddress === '127.0.0.1',
           `the browser loaded http://${REBIND}:PORT/attack.html from 127.0.0.1`,
           `${rebound.status()} ${show(await rebound.serverAddr())}`);

        r = await probe(page, '/dynroute/drain',
                        { method: 'POST', headers: JSON_TYPE, body: '' });
        console.log(`# rebound POST drain: ${show(r)}`);
        ok(r.read && r.status === 403 && r.body.includes(`\\"${REBIND}\\"`),
           'rebound page, POST drain with JSON: 403 naming the Host (same origin, so the '
           + 'page reads it)', show(r));

        r = await probe(page, `/dynroute/hosts/${HOST}`,
                        { method: 'PUT', headers: JSON_TYPE, body: hostJson });
        console.log(`# rebound PUT host: ${show(r)}`);
        ok(r.read && r.status === 403, 'rebound page, PUT a host with JSON: 403', show(r));
        if (!await unchanged(before, 'after the rebound page\'s fetch() calls')) {
            before = await restore();
        }

        // ---- 4. the control: the API's own origin ----

        await page.goto(`${apiOrigin}/ops.html`);

        r = await probe(page, '/dynroute/drain',
                        { method: 'POST', headers: JSON_TYPE, body: '' });
        ok(r.read && r.status === 200 && /"draining":true/.test(r.body),
           'control: a page of the API\'s own origin drains the node (200)', show(r));
        r = await probe(page, `/dynroute/hosts/${HOST}`,
                        { method: 'PUT', headers: JSON_TYPE, body: hostJson });
        ok(r.read && r.status === 201, 'control: ... and adds a host (201)', show(r));

        let s = await state();
        const ready = await request(ports.api, 'GET', '/ready');
        ok(s.draining === true && s.hosts && HOST in s.hosts && ready.status === 503,
           'control: the test sees the node draining (readiness 503) and the host',
           `${show(s)} readiness ${ready.status}`);

        s = await restore();
        ok(s.draining === false && s.hosts && Object.keys(s.hosts).length === 0,
           'the test puts the state back (POST ready, DELETE the host)', show(s));

        await browser.close();
        browser = undefined;

        // ---- 5. what the API answered ----

        await stopNginx(srv);

        const lines = readLog(prefix, 'api.log').split('\n').filter(Boolean);
        const fromEvil = lines.filter((l) => l.includes(`origin=${evilOrigin} `));
        const fromRebind = lines.filter((l) => l.includes(`host=${REBIND}:`)
                                               && l.includes('/dynroute/'));

        const want = (re, n, name) => {
            const got = fromEvil.filter((l) => re.test(l));
            ok(got.length === n && got.every((l) => / 403 /.test(l)), name,
               (got.length ? got : fromEvil).join('\n'));
        };
        want(/^POST \/dynroute\/drain \S+ .*type=application\/x-www-form-urlencoded$/, 1,
             'the API answered the urlencoded form POST drain 403');
        want(/^POST \/dynroute\/hosts\/\S+ \S+ .*type=text\/plain$/, 1,
             'the API answered the text/plain form POST 403');
        want(/^POST \/dynroute\/drain \S+ .*type=-$/, 2,
             'the API answered both no-cors fetch() POST drains 403');
        want(/^OPTIONS \/dynroute\/hosts\//, 2,
             'the API answered both preflights 403');
        ok(!fromEvil.some((l) => /^PUT /.test(l)),
           'no cross-site PUT reached the API', fromEvil.join('\n'));
        ok(fromRebind.length === 2 && fromRebind.every((l) => / 403 /.test(l)),
           'the API answered the rebound page\'s POST and PUT 403',
           (fromRebind.length ? fromRebind : lines).join('\n'));

        const errors = readLog(prefix, 'error.log') + readLog(prefix, 'stderr.log');
        const refused = (re) => errors.split('\n')
            .filter((l) => /\[warn\].*dynroute: API request refused: /.test(l) && re.test(l))
            .length;
        const originRe = new RegExp(`web pages of "${evilOrigin.replace(/\./g, '\\.')}"`);
        is(refused(originRe), 6,
           'error.log: 6 refusals of the other origin (2 forms, 2 no-cors, 2 preflights)');
        is(refused(new RegExp(`not to "${REBIND.replace(/\./g, '\\.')}"`)), 2,
           'error.log: 2 refusals of the rebound name');
        checkNginxLogs(srv);

    } catch (e) {
        reportError(e, prefix);
    } finally {
        await cleanUp(prefix, browser, srv);
    }
}

run(main, DEADLINE_MS);
