#!/usr/bin/env node
// CORS in a real browser: headless Chromium loads a page from one loopback
// origin and calls fetch() on dynroute's proxy on other origins, with and
// without credentials; the test asserts what the page could read and what
// the browser blocked.  Browsers, not servers, enforce CORS.
//
// Prints TAP (run by `make test-browser` through prove).  Loopback only;
// starts one nginx and one Chromium and stops both itself.
//
// Environment, as for the prove suite: TEST_NGINX_BINARY (default
// /usr/sbin/nginx), TEST_NGINX_LOAD_MODULES (default the repository's
// build/ngx_http_dynroute_module.so; empty for a static build),
// CHROMIUM (default /usr/bin/chromium), TEST_NGINX_NO_CLEAN.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

const REPO = path.resolve(__dirname, '..', '..');
const { chromium } = require(path.join(REPO, 'build', 'browser',
                                       'node_modules', 'playwright-core'));

const NGINX = process.env.TEST_NGINX_BINARY || '/usr/sbin/nginx';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MODULES = process.env.TEST_NGINX_LOAD_MODULES !== undefined
    ? process.env.TEST_NGINX_LOAD_MODULES.split(/\s+/).filter(Boolean)
          .map((m) => path.resolve(m))
    : [path.join(REPO, 'build', 'ngx_http_dynroute_module.so')];

const DEADLINE_MS = 240000;     // the whole run, however slow the machine

const running = new Set();      // our nginx masters, stopped on every exit

// ---- TAP ------------------------------------------------------------------

let count = 0;
let failed = 0;

function ok(cond, name, diag) {
    count++;
    if (!cond) {
        failed++;
    }
    console.log(`${cond ? 'ok' : 'not ok'} ${count} - ${name}`);
    if (!cond && diag !== undefined) {
        for (const line of String(diag).split('\n')) {
            console.log(`#   ${line}`);
        }
    }
}

// ---- nginx ----------------------------------------------------------------

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

function nginxConf(prefix, p) {
    const load = MODULES.map((m) => `load_module ${m};`).join('\n');
    const user = process.getuid && process.getuid() === 0 ? 'user root;' : '';
    return `${load}
daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/logs/nginx.pid;
error_log ${prefix}/logs/error.log info;
${user}
events { worker_connections 128; }

http {
    access_log off;
    client_body_temp_path ${prefix}/tmp/body;
    proxy_temp_path ${prefix}/tmp/proxy;
    fastcgi_temp_path ${prefix}/tmp/fastcgi;
    uwsgi_temp_path ${prefix}/tmp/uwsgi;
    scgi_temp_path ${prefix}/tmp/scgi;
    default_type text/plain;

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
}
`;
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function canConnect(port) {
    return new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('connect', () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
    });
}

async function startNginx(prefix, ports) {
    for (const d of ['conf', 'logs', 'tmp', 'html']) {
        fs.mkdirSync(path.join(prefix, d), { recursive: true });
    }
    fs.writeFileSync(path.join(prefix, 'html', 'index.html'),
                     '<!doctype html><title>dynroute cors</title><p>page</p>\n');
    const conf = path.join(prefix, 'conf', 'nginx.conf');
    fs.writeFileSync(conf, nginxConf(prefix, ports));

    const out = fs.openSync(path.join(prefix, 'logs', 'stderr.log'), 'a');
    const child = spawn(NGINX, ['-p', `${prefix}/`, '-c', conf],
                        { stdio: ['ignore', out, out] });
    const srv = { child, prefix, exited: false, status: null };
    running.add(srv);
    child.on('exit', (code, signal) => {
        running.delete(srv);
        srv.exited = true;
        srv.status = signal ? `signal ${signal}` : `exit ${code}`;
    });

    for (let i = 0; i < 200 && !srv.exited; i++) {
        const up = await Promise.all(Object.values(ports).map(canConnect));
        if (up.every(Boolean)) {
            return srv;
        }
        await sleep(100);
    }
    throw new Error(`nginx did not start (${srv.status || 'not listening'}):\n`
                    + readLog(prefix, 'stderr.log') + readLog(prefix, 'error.log'));
}

async function stopNginx(srv) {
    if (!srv || srv.exited) {
        return;
    }
    const done = new Promise((resolve) => srv.child.on('exit', resolve));
    srv.child.kill('SIGQUIT');
    const timer = setTimeout(() => { if (!srv.exited) srv.child.kill('SIGTERM'); },
                             15000);
    await done;
    clearTimeout(timer);
}

function readLog(prefix, name) {
    try {
        return fs.readFileSync(path.join(prefix, 'logs', name), 'utf8');
    } catch (e) {
        return '';
    }
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
    const base = path.join(REPO, 'build', 'browser');
    fs.mkdirSync(base, { recursive: true });
    const prefix = fs.mkdtempSync(path.join(base, 'servroot-'));

    const allowed = `http://127.0.0.1:${ports.allowed}`;
    const denied = `http://127.0.0.1:${ports.denied}`;
    const api = `http://127.0.0.1:${ports.api}/data`;
    const pub = `http://127.0.0.1:${ports.public}/data`;

    let srv;
    let browser;

    try {
        srv = await startNginx(prefix, ports);

        browser = await chromium.launch({
            executablePath: CHROMIUM,
            headless: true,
            timeout: 120000,
            args: ['--headless', '--no-sandbox', '--disable-gpu',
                   '--disable-background-networking'],
        });
        console.log(`# ${CHROMIUM} ${browser.version()}`);

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

        const log = readLog(prefix, 'error.log') + readLog(prefix, 'stderr.log');
        const bad = /\[(alert|crit|emerg)\]|exited on signal|Sanitizer|runtime error:/;
        ok(!bad.test(log), 'nginx logged no alert, crit, emerg or crash',
           log.split('\n').filter((l) => bad.test(l)).join('\n'));
        ok(srv.status === 'exit 0', 'nginx exited cleanly', srv.status);
        ok(/preflight from origin "http:\/\/127\.0\.0\.1:\d+" for method "DELETE" denied: method not allowed/.test(log),
           'the denied preflight is logged at info level');

    } catch (e) {
        ok(false, 'the browser test ran to the end', e && e.stack ? e.stack : String(e));
        if (prefix) {
            console.log(`# error.log:\n${readLog(prefix, 'error.log').split('\n').slice(-20)
                .map((l) => `#   ${l}`).join('\n')}`);
        }
    } finally {
        if (browser) {
            await browser.close().catch(() => {});
        }
        await stopNginx(srv);
        if (!process.env.TEST_NGINX_NO_CLEAN) {
            fs.rmSync(prefix, { recursive: true, force: true });
        }
    }

    console.log(`1..${count}`);
    console.log(`# browser: ${count - failed} passed, ${failed} failed`);
    return failed === 0 ? 0 : 1;
}

const deadline = setTimeout(() => {
    for (const srv of running) {
        srv.child.kill('SIGTERM');
    }
    console.log(`not ok ${count + 1} - finished within ${DEADLINE_MS / 1000} s`);
    console.log(`1..${count + 1}`);
    process.exit(1);
}, DEADLINE_MS);

main().then((code) => {
    clearTimeout(deadline);
    process.exitCode = code;
}, (e) => {
    clearTimeout(deadline);
    console.log(`not ok ${count + 1} - ${e}`);
    console.log(`1..${count + 1}`);
    process.exitCode = 1;
});

