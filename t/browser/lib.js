// What the browser tests share: TAP output, the run's deadline, one nginx
// of the test's own (its configuration's common part, started and stopped
// by PID, on loopback, its logs checked), plain HTTP requests to it, and
// headless Chromium launched as every test runs it.
//
// Environment, as for the prove suite: TEST_NGINX_BINARY (default
// /usr/sbin/nginx), TEST_NGINX_LOAD_MODULES (default the repository's
// build/ngx_http_dynroute_module.so; empty for a static build),
// TEST_NGINX_NO_CLEAN (keeps the nginx prefix under build/browser);
// CHROMIUM (default /usr/bin/chromium).
'use strict';

const fs = require('fs');
const http = require('http');
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

function is(got, want, name) {
    ok(got === want, name, `got:  ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
}

// Runs main (async; it stops its nginx itself), then prints the plan: a
// failure if main throws or the deadline passes first (every nginx of ours
// is killed then).
function run(main, deadlineMs) {
    const deadline = setTimeout(() => {
        for (const srv of running) {
            srv.child.kill('SIGTERM');
        }
        console.log(`not ok ${count + 1} - finished within ${deadlineMs / 1000} s`);
        console.log(`1..${count + 1}`);
        process.exit(1);
    }, deadlineMs);

    main().then(() => {
        clearTimeout(deadline);
        console.log(`1..${count}`);
        console.log(`# browser: ${count - failed} passed, ${failed} failed`);
        process.exitCode = failed === 0 ? 0 : 1;
    }, (e) => {
        clearTimeout(deadline);
        console.log(`not ok ${count + 1} - ${e}`);
        console.log(`1..${count + 1}`);
        process.exitCode = 1;
    });
}

// ---- HTTP from the test itself ---------------------------------------------

// One request to 127.0.0.1:port, Host 127.0.0.1 unless headers say
// otherwise; resolves { status, headers, body }, status 0 on a network
// error or after 10 s.  A connection of its own (Connection: close), or
// one of agent's (an http.Agent that keeps them alive).
function request(port, method, urlPath, { headers = {}, body, agent } = {}) {
    return new Promise((resolve) => {
        const req = http.request({
            host: '127.0.0.1', port, method, path: urlPath, timeout: 10000, agent,
            headers: { Host: '127.0.0.1', ...(agent ? {} : { Connection: 'close' }),
                       ...headers },
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => resolve({ status: res.statusCode,
                                          headers: res.headers, body: text }));
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', (e) => resolve({ status: 0, headers: {}, body: String(e) }));
        req.end(body);
    });
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

function readLog(prefix, name) {
    try {
        return fs.readFileSync(path.join(prefix, 'logs', name), 'utf8');
    } catch (e) {
        return '';
    }
}

// A new prefix for nginx under build/browser.
function makePrefix() {
    const base = path.join(REPO, 'build', 'browser');
    fs.mkdirSync(base, { recursive: true });
    return fs.mkdtempSync(path.join(base, 'servroot-'));
}

// nginx.conf of a test: the modules, a master (not a daemon) and its
// workers, error.log at info, and the http block's common lines (no
// access log, temporary files under the prefix) followed by http.
function nginxConf(prefix, http, { workers = 1, connections = 128 } = {}) {
    const load = MODULES.map((m) => `load_module ${m};`).join('\n');
    const user = process.getuid && process.getuid() === 0 ? 'user root;' : '';
    return `${load}
daemon off;
master_process on;
worker_processes ${workers};
pid ${prefix}/logs/nginx.pid;
error_log ${prefix}/logs/error.log info;
${user}
events { worker_connections ${connections}; }

http {
    access_log off;
    client_body_temp_path ${prefix}/tmp/body;
    proxy_temp_path ${prefix}/tmp/proxy;
    fastcgi_temp_path ${prefix}/tmp/fastcgi;
    uwsgi_temp_path ${prefix}/tmp/uwsgi;
    scgi_temp_path ${prefix}/tmp/scgi;
    default_type text/plain;
${http}}
`;
}

// nginx -p prefix with conf as its nginx.conf and files (name -> text)
// under the prefix; resolves once every port of ports answers.
async function startNginx(prefix, ports, conf, files = {}) {
    for (const d of ['conf', 'logs', 'tmp']) {
        fs.mkdirSync(path.join(prefix, d), { recursive: true });
    }
    for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(prefix, name)), { recursive: true });
        fs.writeFileSync(path.join(prefix, name), text);
    }
    const file = path.join(prefix, 'conf', 'nginx.conf');
    fs.writeFileSync(file, conf);

    const out = fs.openSync(path.join(prefix, 'logs', 'stderr.log'), 'a');
    const child = spawn(NGINX, ['-p', `${prefix}/`, '-c', file],
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

// After stopNginx: error.log and nginx's stderr, checked for alerts,
// crashes and sanitizer reports, and the master's exit status.
function checkNginxLogs(srv) {
    const log = readLog(srv.prefix, 'error.log') + readLog(srv.prefix, 'stderr.log');
    const bad = /\[(alert|crit|emerg)\]|exited on signal|Sanitizer|runtime error:/;
    ok(!bad.test(log), 'nginx logged no alert, crit, emerg or crash',
       log.split('\n').filter((l) => bad.test(l)).join('\n'));
    ok(srv.status === 'exit 0', 'nginx exited cleanly', srv.status);
    return log;
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

// ---- Chromium --------------------------------------------------------------

// Headless Chromium as every browser test runs it: no sandbox, no GPU, no
// traffic of its own in the background; args (such as
// --host-resolver-rules) after those.  Its version goes to the TAP output.
async function launchChromium({ args = [], timeout = 120000 } = {}) {
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout,
        args: ['--headless', '--no-sandbox', '--disable-gpu',
               '--disable-background-networking', ...args],
    });
    console.log(`# ${CHROMIUM} ${browser.version()}`);
    return browser;
}

// ---- the end of a test ------------------------------------------------------

// What a test's main does with an exception: a failure, with its stack and
// the end of error.log.
function reportError(e, prefix) {
    ok(false, 'the browser test ran to the end', e && e.stack ? e.stack : String(e));
    if (prefix) {
        console.log(`# error.log:\n${readLog(prefix, 'error.log').split('\n').slice(-20)
            .map((l) => `#   ${l}`).join('\n')}`);
    }
}

// What a test's main does on every way out: close the browser, stop nginx,
// remove the prefix (kept with TEST_NGINX_NO_CLEAN).
async function cleanUp(prefix, browser, srv) {
    if (browser) {
        await browser.close().catch(() => {});
    }
    await stopNginx(srv);
    if (!process.env.TEST_NGINX_NO_CLEAN) {
        fs.rmSync(prefix, { recursive: true, force: true });
    }
}

module.exports = {
    REPO, chromium, NGINX, CHROMIUM, MODULES,
    ok, is, run, freePort, sleep, canConnect, readLog, makePrefix, nginxConf,
    startNginx, stopNginx, checkNginxLogs, request, launchChromium, reportError, cleanUp,
};
