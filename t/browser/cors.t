#!/usr/bin/env node
// CORS in a real browser: headless Chromium loads a page from one loopback
// origin and calls fetch() on dynroute's proxy on other origins, with and
// without credentials; the test asserts what the page could read and what
// the browser blocked.  Browsers, not servers, enforce CORS.
//
// Prints TAP (run by `make test-browser` through prove).  Loopback only;
// starts one nginx and one Chromium and stops both itself.
// The environment it reads is described in lib.js.
'use strict';

const {
    ok, run, freePort, readLog, makePrefix, nginxConf, startNginx, stopNginx,
    checkNginxLogs, launchChromium, reportError, cleanUp,
} = require('./lib.js');

const DEADLINE_MS = 240000;     // the whole run, however slow the machine

// ---- nginx ----------------------------------------------------------------

// The http block: the application, the page's origins, the API with
// credentials for one origin and a public API.
function httpConf(prefix, p) {
    return `
    log_format methods '$request_method $uri';

    # The application behind the proxy: it records every request it gets
    # and sends its own, too permissive, CORS header.
    upstream backend { server 127.0.0.1:${p.backend}; }
    server {
        listen 127.0.0.1:${p.backend};
        access_log ${prefix}/logs/backend.log methods;
        location / {
            add_header Access-Control-Allow-Origin "*" always;
            return 200 "$request_method sid=$cookie_sid";
        }
    }

    dynroute_table edge { default backend; }

    # The page, on an allowed and on a disallowed origin.
    server { listen 127.0.0.1:${p.allowed}; root ${prefix}/html; }
    server { listen 127.0.0.1:${p.denied}; root ${prefix}/html; }

    # The API, with credentials, for one origin.
    server {
        listen 127.0.0.1:${p.api};
        dynroute edge;
        dynroute_cors on;
        dynroute_cors_origins http://127.0.0.1:${p.allowed};
        dynroute_cors_methods GET POST PUT;
        dynroute_cors_headers Content-Type X-Test;
        dynroute_cors_credentials on;
        dynroute_cors_max_age 0;
        location / { proxy_pass http://$dynroute_upstream; }
    }

    # A public API: any origin, never credentials.
    server {
        listen 127.0.0.1:${p.public};
        dynroute edge;
        dynroute_cors on;
        dynroute_cors_origins *;
        location / { proxy_pass http://$dynroute_upstream; }
    }
`;
}

// ---- the page's view ------------------------------------------------------

// Runs fetch() inside the page: what could the page read?
async function probe(page, url, init) {
    return page.evaluate(async ({ url, init }) => {
        try {
            const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20000) });
            return { read: true, status: res.status, body: await res.text() };
        } catch (e) {
            return { read: false, error: `${e.name}: ${e.message}` };
        }
    }, { url, init });
}

function show(r) {
    return JSON.stringify(r);
}

async function main() {
    const ports = {};
    for (const name of ['allowed', 'denied', 'api', 'public', 'backend']) {
        ports[name] = await freePort();
    }
    const prefix = makePrefix();

    const allowed = `http://127.0.0.1:${ports.allowed}`;
    const denied = `http://127.0.0.1:${ports.denied}`;
    const api = `http://127.0.0.1:${ports.api}/data`;
    const pub = `http://127.0.0.1:${ports.public}/data`;

    let srv;
    let browser;

    try {
        srv = await startNginx(prefix, ports, nginxConf(prefix, httpConf(prefix, ports)), {
            'html/index.html': '<!doctype html><title>dynroute cors</title><p>page</p>\n',
        });

        browser = await launchChromium();

        const context = await browser.newContext();
        // a session cookie of the API's site (cookies ignore the port)
        await context.addCookies([{ name: 'sid', value: 's3cret',
                                    url: `http://127.0.0.1:${ports.api}/`,
                                    sameSite: 'Lax' }]);
        const page = await context.newPage();
        page.setDefaultTimeout(60000);

        // ---- from the allowed origin ----

        await page.goto(`${allowed}/`);
        let r;

        r = await probe(page, api, {});
        ok(r.read && r.status === 200 && r.body === 'GET sid=',
           'allowed origin, no credentials: the page reads the response, no cookie sent',
           show(r));

        r = await probe(page, api, { credentials: 'include' });
        ok(r.read && r.body === 'GET sid=s3cret',
           'allowed origin, credentials: the page reads the response, the cookie was sent '
           + '(the upstream\'s "*" was replaced by the exact origin)', show(r));

        r = await probe(page, api, {
            method: 'PUT', credentials: 'include', body: '{}',
            headers: { 'Content-Type': 'application/json', 'X-Test': '1' },
        });
        ok(r.read && r.body === 'PUT sid=s3cret',
           'allowed origin, PUT with JSON and X-Test: preflight passed, the page reads the response',
           show(r));

        r = await probe(page, api, { method: 'DELETE' });
        ok(!r.read, 'allowed origin, DELETE (not listed): blocked by the browser', show(r));

        r = await probe(page, api, { headers: { 'X-Secret': '1' } });
        ok(!r.read, 'allowed origin, header X-Secret (not listed): blocked by the browser',
           show(r));

        r = await probe(page, pub, {});
        ok(r.read && r.body === 'GET sid=',
           'public API ("*"), no credentials: the page reads the response', show(r));

        r = await probe(page, pub, { credentials: 'include' });
        ok(!r.read,
           'public API ("*"), credentials: blocked (a browser never accepts "*" with credentials)',
           show(r));

        // ---- from the disallowed origin ----

        await page.goto(`${denied}/`);

        r = await probe(page, api, {});
        ok(!r.read,
           'disallowed origin, no credentials: blocked (the upstream\'s "*" was removed)',
           show(r));

        r = await probe(page, api, { credentials: 'include' });
        ok(!r.read, 'disallowed origin, credentials: blocked', show(r));

        r = await probe(page, api, {
            method: 'PUT', body: '{}', headers: { 'Content-Type': 'application/json' },
        });
        ok(!r.read, 'disallowed origin, PUT: blocked at the preflight', show(r));

        r = await probe(page, pub, {});
        ok(r.read && r.body === 'GET sid=',
           'disallowed origin, public API: the page reads the response', show(r));

        await browser.close();
        browser = undefined;

        // ---- what reached the upstream ----

        await stopNginx(srv);
        const seen = readLog(prefix, 'backend.log').trim().split('\n').filter(Boolean);
        ok(!seen.some((l) => l.startsWith('OPTIONS')),
           'no preflight reached the upstream', seen.join('\n'));
        ok(seen.filter((l) => l === 'PUT /data').length === 1,
           'the allowed PUT reached the upstream once, after its preflight', seen.join('\n'));
        ok(!seen.some((l) => l.startsWith('DELETE')),
           'the DELETE denied at the preflight never reached the upstream', seen.join('\n'));

        const log = checkNginxLogs(srv);
        ok(/preflight from origin "http:\/\/127\.0\.0\.1:\d+" for method "DELETE" denied: method not allowed/.test(log),
           'the denied preflight is logged at info level');

    } catch (e) {
        reportError(e, prefix);
    } finally {
        await cleanUp(prefix, browser, srv);
    }
}

run(main, DEADLINE_MS);
