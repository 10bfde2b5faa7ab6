#!/usr/bin/python3
"""The cost of the runtime state (dynroute_zone) on the request path, and
how fast a change through the runtime API reaches every worker.

Four cases, all with the small table of bench/e2e.py (its "dynroute" front
by default) and the same backends (service_a answers "a", service_b "b"):
  (a) no-zone         the table alone: the baseline;
  (b) zone-empty      the same with dynroute_zone and the API (in a server
                      of its own), no runtime host;
  (c) zone-hosts      the same with N runtime hosts (100,000) loaded through
                      the API (PATCH {prefix}hosts, CHUNK hosts a request),
                      requesting a.example.com, an exact name of the table;
  (d) zone-hosts-rt   the same nginx, requesting r.example.com, one of the
                      runtime hosts, as long as a.example.com.

1. callgrind: each case as a single nginx process under valgrind
   --tool=callgrind, as bench/callgrind.py does: instrumentation switched on
   for R requests on one keep-alive connection after a warm-up.
   Instructions per request and the ratio to (a); the inclusive cost of the
   decision, of its search of the runtime hosts, and of malloc (the same
   calls in every case, whose cost depends on the state of the heap).
   (c) and (d) are one process: (c)'s count is dumped (callgrind_control
   -d) before (d)'s warm-up.
2. wrk: each case behind one nginx (master and one worker) pinned to the
   server core, wrk on the client core, rounds interleaved as in
   bench/e2e.py; ratios to (a) within each round, by req/s and by the
   front's CPU per request.
3. Loading: N hosts through the API into a fresh nginx (one worker, pinned)
   for each request size of BENCH_ZONE_LOAD_CHUNKS: the time in all, and
   the longest request (the worker does nothing else meanwhile).
4. Propagation: one nginx with two workers (worker_cpu_affinity auto, the
   front listening with reuseport so that fresh connections reach both), N
   runtime hosts loaded (timed), and flip.example.com -> a rollout whose
   variants are on service_a and service_b.  Each flip PATCHes the weights
   from 100/0 to 0/100 or back; from the moment the PATCH is acknowledged,
   requests are sent one after the other, each on a fresh connection, until
   STREAK consecutive answers come from the new variant, from both workers.
   Reported per flip: acknowledged -> the end of each worker's first answer
   in that streak, the later of the two (an upper bound of the time the
   change took to be visible in every worker), the old-variant answers after
   the acknowledgement, and the PATCH's latency.

5. Membership: the same two workers in front of an upstream with
   dynroute_servers (keepalive 32), reached by a plain proxy_pass, and
   backends of its own (each answers its port and logs its connection's
   number).  Each change PUTs {prefix}upstreams/grp/servers with a list of
   one other backend; from the acknowledgement, requests one after the
   other on fresh connections until STREAK consecutive answers come from
   the new server, from both workers: the later worker's first answer, as
   in 4; p50 and p99 over MEMBER_CHANGES changes (the target: p99 <= 100
   ms).
6. Churn: wrk (CONNECTIONS, keep-alive) through the same upstream with two
   servers that stay, while CHURN times a server is added (PUT
   .../servers/ADDR) and removed (DELETE) again.  Counted: wrk's failed
   requests (non-2xx and socket errors; the servers that come and go refuse
   nothing, so the target is 0), the answers of each backend, and the
   connections the staying ones accepted (nginx's keepalive cache reused
   across the changes: a few per worker and wrk connection, not one per
   change).

Everything listens on 127.0.0.1 and is stopped by its PID; every loop is
bounded (wrk's duration, a deadline per flip).  Any unexpected status,
answer, routing or [alert]/[crit]/[emerg] line stops the run.  Results go to
BENCH_OUT/results.md.

Knobs: BENCH_ZONE_HOSTS (100000), BENCH_ZONE_CHUNK (hosts per PATCH, 5000,
as dynroutectl's host import), BENCH_ZONE_LOAD_CHUNKS (2000,5000,15000),
BENCH_ZONE_SIZE (64m), BENCH_ZONE_FRONT (an e2e front, dynroute),
BENCH_ZONE_FLIPS (20), BENCH_ZONE_STREAK (50), BENCH_ZONE_MEMBER_CHANGES
(50), BENCH_ZONE_CHURN (100), BENCH_ZONE_PARTS
(callgrind,wrk,load,flip,members,churn), BENCH_CALLGRIND_REQUESTS (2000),
BENCH_ROUNDS
(6), BENCH_DURATION (3), BENCH_CONNECTIONS (32), BENCH_WARMUP (1),
BENCH_OUT.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import callgrind as C  # noqa: E402
import e2e  # noqa: E402

CONFIGURED = "a.example.com"  # an exact name of the small table: service_a
RUNTIME = "r.example.com"     # the runtime host requested, on service_a
API = "/dynroute/"

CASES = [
    # name, with the zone, with the runtime hosts, requesting a runtime host
    ("no-zone", False, False, False),
    ("zone-empty", True, False, False),
    ("zone-hosts", True, True, False),
    ("zone-hosts-rt", True, True, True),
]

NOTES = {
    "no-zone": "the e2e small table, no dynroute_zone: the baseline",
    "zone-empty": "the same with dynroute_zone and the API, no runtime host",
    "zone-hosts": "the same with the N runtime hosts, Host %s (a name of "
                  "the table)" % CONFIGURED,
    "zone-hosts-rt": "the same nginx, Host %s, a runtime host as long as "
                     "%s" % (RUNTIME, CONFIGURED),
}

# Inclusive costs shown per request: the decision (the runtime hosts, then
# the table), and the search of the runtime hosts alone.
DECIDE = "ngx_http_dynroute_decide"
LIVE_HOST = "ngx_http_dynroute_live_host"

# glibc's malloc in callgrind_annotate's listing (not _int_malloc, not a
# file name)
MALLOC = re.compile(r"^\s*([\d,]+) .*:malloc \[")

LETTER = {"service_a": "a", "service_b": "b"}


def runtime_hosts(n):
    """The n runtime hosts as (host, target): the exact names of
    benchlib.exact_host but the one in the middle, which is RUNTIME, a name
    as long as CONFIGURED, so that (c) and (d) parse and proxy the same
    number of bytes."""
    mid = n // 2
    return [(RUNTIME, "service_a") if i == mid
            else (B.exact_host(i), B.target_of(i)) for i in range(n)]


def zone_conf(f, port, api_port, rules, ports, zone):
    """The front f of bench/e2e.py; with a zone size, also the zone and the
    API in a server of its own on api_port."""
    conf = e2e.server_conf(f, port, rules, B.free_port(), ports)
    if zone:
        conf += ("    dynroute_zone routes %s;\n\n"
                 "    server {\n        listen 127.0.0.1:%d;\n"
                 "        location %s {\n"
                 "            allow 127.0.0.1;\n            deny all;\n"
                 "            dynroute_api write=on;\n        }\n    }\n"
                 % (zone, api_port, API))
    return conf


def malloc_inclusive(path):
    """Inclusive instructions of malloc in a callgrind output, or None."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        m = MALLOC.match(line)
        if m:
            return int(m.group(1).replace(",", ""))
    return None


def check_errors(nx):
    errs = nx.errors()
    if errs:
        raise RuntimeError("%s error.log:\n  %s" % (nx.name,
                                                    "\n  ".join(errs)))


# ---- the API ------------------------------------------------------------

def api(port, method, path, body=None, timeout=60):
    """(status, parsed JSON answer) of one request on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Host": "localhost"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, API + path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
    finally:
        c.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode(errors="replace")


def load_hosts(port, n, chunk, nx=None, timeout=60):
    """Adds the runtime hosts of runtime_hosts(n) through PATCH
    {prefix}hosts, chunk hosts a request, and checks every
    answer (200, every host added, the generation one up).  Returns a dict:
    seconds in all, per request, and the CPU time of nx meanwhile."""
    per = []
    generation = None
    cpu0 = nx.cpu_ns() if nx else 0
    t0 = time.perf_counter()
    hosts = runtime_hosts(n)
    for lo in range(0, n, chunk):
        body = {h: {"target": t} for h, t in hosts[lo:lo + chunk]}
        t = time.perf_counter()
        status, answer = api(port, "PATCH", "hosts", body, timeout)
        per.append(time.perf_counter() - t)
        if (status != 200 or not isinstance(answer, dict)
                or answer.get("added") != len(body)
                or answer.get("replaced") or answer.get("removed")
                or (generation is not None
                    and answer.get("generation") != generation + 1)):
            raise RuntimeError("API PATCH hosts [%d, %d): unexpected %d %r"
                               % (lo, lo + len(body), status, answer))
        generation = answer["generation"]
    return {"hosts": n, "chunk": chunk, "total": time.perf_counter() - t0,
            "per": per, "cpu": (nx.cpu_ns() - cpu0) / 1e9 if nx else None}


def check_routes(port, n, with_hosts):
    """The table's names route as configured; with the runtime hosts, also
    about 50 of them spread over the N, the last and RUNTIME route to their
    targets.  Returns the number of hosts checked."""
    checks = [(CONFIGURED, "a"), ("b.example.com", "b")]
    if with_hosts:
        hosts = runtime_hosts(n)
        idx = sorted(set(range(0, n, max(1, n // 50))) | {n - 1, n // 2})
        checks += [(hosts[i][0], LETTER[hosts[i][1]]) for i in idx]
    bad = []
    for host, want in checks:
        code, body = B.curl(port, host)
        if code != "200" or body != want:
            bad.append("Host %s: %s %r, expected 200 %r" % (host, code, body,
                                                           want))
    if bad:
        raise RuntimeError("wrong routing:\n  " + "\n  ".join(bad))
    return len(checks)


# ---- 1. callgrind -------------------------------------------------------

def part_callgrind(f, out, rules, ports, n_hosts, chunk, zone, requests):
    out = os.path.join(out, "callgrind")
    res = {}
    for name, with_zone, with_hosts, _ in CASES:
        if name == "zone-hosts-rt":
            continue  # counted in zone-hosts's process
        port, api_port = B.free_port(), B.free_port()
        prefix = os.path.join(out, name)
        cg = os.path.join(prefix, "callgrind.out")
        nx = B.Nginx(name, prefix,
                     zone_conf(f, port, api_port, rules, ports,
                               zone if with_zone else None),
                     [port] + ([api_port] if with_zone else []), master=False,
                     wrapper=["valgrind", "--tool=callgrind",
                              "--instr-atstart=no",
                              "--callgrind-out-file=" + cg])
        t0 = time.time()
        nx.start()
        counted = [(name, CONFIGURED)]
        if with_hosts:
            counted.append(("zone-hosts-rt", RUNTIME))
        try:
            if with_hosts:
                load = load_hosts(api_port, n_hosts, chunk, timeout=600)
                B.log("callgrind %s: %d hosts loaded in %.1f s (under "
                      "valgrind)" % (name, n_hosts, load["total"]))
            check_routes(port, n_hosts, with_hosts)
            pid = nx.proc.pid
            for k, (case, host) in enumerate(counted):
                C.send(port, host, 50)  # warm-up, not counted
                C.control(pid, "-i", "on")
                C.send(port, host, requests)
                C.control(pid, "-i", "off")
                if k + 1 < len(counted):
                    C.control(pid, "-d")  # this case's count, then zeroed
        finally:
            nx.stop(signal.SIGTERM)  # QUIT may wait on idle upstreams
        check_errors(nx)
        # a dump on request goes to callgrind.out.1, the last one at exit
        files = [cg + ".1", cg] if with_hosts else [cg]
        for (case, host), path in zip(counted, files):
            ir = C.totals(path) / requests
            inc = C.inclusive(path, [DECIDE, LIVE_HOST])
            inc["malloc"] = malloc_inclusive(path)
            res[case] = {"ir": ir, "host": host,
                         "malloc": None if inc["malloc"] is None
                         else inc["malloc"] / requests,
                         "decide": None if inc[DECIDE] is None
                         else inc[DECIDE] / requests,
                         "live_host": None if inc[LIVE_HOST] is None
                         else inc[LIVE_HOST] / requests}
            B.log("callgrind %-14s %8.0f instructions/request" % (case, ir))
        B.log("callgrind %s: %.0f s" % (name, time.time() - t0))
    return res


# ---- 2. wrk -------------------------------------------------------------

def part_wrk(f, out, rules, ports, n_hosts, chunk, zone, rounds, duration,
             conns, warmup):
    out = os.path.join(out, "wrk")
    fronts = {}
    for name, with_zone, _, _ in CASES[:3]:
        port, api_port = B.free_port(), B.free_port()
        nx = B.Nginx(name, os.path.join(out, name),
                     zone_conf(f, port, api_port, rules, ports,
                               zone if with_zone else None),
                     [port] + ([api_port] if with_zone else []))
        nx.start()
        fronts[name] = {"nginx": nx, "port": port, "api": api_port}
    load = load_hosts(fronts["zone-hosts"]["api"], n_hosts, chunk,
                      fronts["zone-hosts"]["nginx"])
    B.log("wrk: %d hosts loaded in %.2f s" % (n_hosts, load["total"]))
    cases = []
    for name, _, with_hosts, rt in CASES:
        fr = fronts["zone-hosts" if name == "zone-hosts-rt" else name]
        cases.append({"name": name, "nginx": fr["nginx"], "port": fr["port"],
                      "host": RUNTIME if rt else CONFIGURED,
                      "runs": []})
        n = check_routes(fr["port"], n_hosts, with_hosts)
        B.log("check %-14s %d hosts route as expected" % (name, n))
    for c in cases:
        B.wrk(c["port"], c["host"], warmup, conns)
    for r in range(rounds):
        for c in cases:
            cpu0 = c["nginx"].cpu_ns()
            res = B.wrk(c["port"], c["host"], duration, conns)
            res["cpu_ns"] = c["nginx"].cpu_ns() - cpu0
            res.pop("raw")
            c["runs"].append(res)
            B.log("round %d/%d %-14s %9.0f req/s  p99 %s us  errors %d" % (
                r + 1, rounds, c["name"], res["rps"], B.fmt(res["p99"]),
                res["errors"]))
    for fr in fronts.values():
        check_errors(fr["nginx"])
        fr["nginx"].stop()
    return cases, load


# ---- 3. loading ---------------------------------------------------------

def part_load(f, out, rules, ports, n_hosts, chunks, zone):
    out = os.path.join(out, "load")
    res = []
    for chunk in chunks:
        port, api_port = B.free_port(), B.free_port()
        nx = B.Nginx("load-%d" % chunk, os.path.join(out, str(chunk)),
                     zone_conf(f, port, api_port, rules, ports, zone),
                     [port, api_port])
        nx.start()
        try:
            load = load_hosts(api_port, n_hosts, chunk, nx)
            check_routes(port, n_hosts, True)
        finally:
            nx.stop()
        check_errors(nx)
        B.log("load: %d hosts, %d a request: %.2f s, longest request %.0f "
              "ms" % (n_hosts, chunk, load["total"], max(load["per"]) * 1e3))
        res.append(load)
    return res


# ---- 4. propagation -----------------------------------------------------

FLIP_HTTP = """\
    dynroute_rollout flip {
        variant  old  service_a  100%;
        variant  new  service_b  0%;
        key      $remote_addr;
    }
"""

FLIP_HOST = "flip.example.com"


def get_once(port):
    """(body, worker pid, start, end) of one GET on a fresh connection."""
    t = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/", headers={"Host": FLIP_HOST})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        pid = r.getheader("X-Worker")
    finally:
        c.close()
    if r.status != 200 or body not in ("a", "b"):
        raise RuntimeError("Host %s: %d %r" % (FLIP_HOST, r.status, body))
    return body, pid, t, time.perf_counter()


def streak(port, want, n, t_from, limit=10.0):
    """Requests one after the other until n consecutive answers are want,
    from both workers.  Returns (the time from t_from until every worker
    had answered want in that streak, answers other than want, requests
    sent, the end of the last one)."""
    run, first, stale, sent = 0, {}, 0, 0
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        body, pid, _, end = get_once(port)
        sent += 1
        if body != want:
            stale += 1
            run, first = 0, {}
            continue
        run += 1
        first.setdefault(pid, end)
        if run >= n and len(first) >= 2:
            return max(first.values()) - t_from, stale, sent, end
    raise RuntimeError("Host %s: no %d consecutive %r answers from both "
                       "workers within %.0f s (%d requests, %d other "
                       "answers)" % (FLIP_HOST, n, want, limit, sent, stale))


def part_flip(f, out, rules, ports, n_hosts, chunk, zone, flips, n_streak):
    out = os.path.join(out, "flip")
    port, api_port = B.free_port(), B.free_port()
    f = dict(f)
    f["http"] = FLIP_HTTP + f["http"].replace(
        "        default ", "        %s  flip;\n        default "
        % FLIP_HOST, 1)
    f["location"] += "\n            add_header X-Worker $pid always;"
    text = zone_conf(f, port, api_port, rules, ports, zone).replace(
        "listen 127.0.0.1:%d;" % port,
        "listen 127.0.0.1:%d reuseport;" % port)
    nx = B.Nginx("flip", out, text, [port, api_port],
                 cpu="%s,%s" % (B.SERVER_CPU, B.CLIENT_CPU))
    with open(nx.conf) as fh:
        conf = fh.read()
    with open(nx.conf, "w") as fh:
        fh.write(conf.replace("worker_processes 1;",
                              "worker_processes 2;\n"
                              "worker_cpu_affinity auto;"))
    nx.start()
    res = []
    try:
        load = load_hosts(api_port, n_hosts, chunk, nx)
        B.log("flip: %d hosts loaded in %.2f s (two workers)" % (
            n_hosts, load["total"]))
        check_routes(port, n_hosts, True)
        # as configured, 100/0: every answer from service_a, both workers
        streak(port, "a", n_streak, time.perf_counter())
        for i in range(flips):
            to_new = i % 2 == 0
            want = "b" if to_new else "a"
            w = {"old": 0, "new": 100} if to_new else {"old": 100, "new": 0}
            time.sleep(0.05)
            t0 = time.perf_counter()
            status, answer = api(api_port, "PATCH", "rollouts/flip",
                                 {"weights": w})
            ack = time.perf_counter()
            if status != 200 or not isinstance(answer, dict):
                raise RuntimeError("API PATCH rollouts/flip %r: unexpected "
                                   "%d %r" % (w, status, answer))
            visible, stale, sent, end = streak(port, want, n_streak, ack)
            res.append({"to": "%d/%d" % (w["old"], w["new"]),
                        "patch_ms": (ack - t0) * 1e3,
                        "visible_ms": visible * 1e3, "stale": stale,
                        "sent": sent, "streak_ms": (end - ack) * 1e3})
            B.log("flip %2d/%d to %s: PATCH %.2f ms, visible after %.2f ms, "
                  "%d old answers, %d requests in %.0f ms" % (
                      i + 1, flips, res[-1]["to"], res[-1]["patch_ms"],
                      visible * 1e3, stale, sent, res[-1]["streak_ms"]))
    finally:
        nx.stop()
    check_errors(nx)
    return res, load


# ---- 5. and 6. membership ------------------------------------------------

GROUP = "grp"


def member_backends(out, n):
    """A backend nginx with n ports of its own, each answering its port and
    logging "port connection" per request; (ports, the nginx)."""
    ports = [B.free_port() for _ in range(n)]
    log = os.path.join(out, "backends", "access.log")
    http = ('    log_format counted "$server_port $connection";\n'
            "    server {\n"
            + "".join("        listen 127.0.0.1:%d;\n" % p for p in ports)
            + "        access_log %s counted buffer=64k flush=100ms;\n"
              "        location / { return 200 \"$server_port\"; }\n"
              "    }\n" % log)
    nx = B.Nginx("member-backends", os.path.join(out, "backends"), http,
                 ports, module=False)
    return ports, nx, log


def member_front(out, name, port, api_port, first):
    """Two workers (reuseport) in front of the upstream GROUP, seeded with
    the server lines of the ports first, by a plain proxy_pass."""
    http = ("    dynroute_zone routes 8m;\n"
            "    upstream %s {\n        dynroute_servers max=64;\n"
            % GROUP
            + "".join("        server 127.0.0.1:%d;\n" % p for p in first)
            + "        keepalive 32;\n    }\n"
              "    server {\n        listen 127.0.0.1:%d reuseport;\n"
              "        location / {\n"
              "            proxy_pass http://%s;\n"
              "            add_header X-Worker $pid always;\n"
              "        }\n    }\n"
              "    server {\n        listen 127.0.0.1:%d;\n"
              "        location %s {\n"
              "            allow 127.0.0.1;\n            deny all;\n"
              "            dynroute_api write=on;\n        }\n    }\n"
            % (port, GROUP, api_port, API))
    nx = B.Nginx(name, os.path.join(out, name), http, [port, api_port],
                 cpu="%s,%s" % (B.SERVER_CPU, B.CLIENT_CPU))
    with open(nx.conf) as fh:
        conf = fh.read()
    with open(nx.conf, "w") as fh:
        fh.write(conf.replace("worker_processes 1;",
                              "worker_processes 2;\n"
                              "worker_cpu_affinity auto;"))
    return nx


def member_get(port):
    """(body, worker pid, end) of one GET on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/", headers={"Host": "localhost"})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        pid = r.getheader("X-Worker")
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError("%s: %d %r" % (GROUP, r.status, body))
    return body, pid, time.perf_counter()


def member_streak(port, want, n, t_from, limit=10.0):
    """streak() over the group: (the time from t_from until both workers
    answered want in a run of n, other answers meanwhile)."""
    run, first, stale, sent = 0, {}, 0, 0
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        body, pid, end = member_get(port)
        sent += 1
        if body != want:
            stale += 1
            run, first = 0, {}
            continue
        run += 1
        first.setdefault(pid, end)
        if run >= n and len(first) >= 2:
            return max(first.values()) - t_from, stale
    raise RuntimeError("%s: no %d consecutive %r answers from both workers "
                       "within %.0f s (%d requests, %d other answers)"
                       % (GROUP, n, want, limit, sent, stale))


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def part_members(out, changes, n_streak):
    out = os.path.join(out, "members")
    ports, backends, _ = member_backends(out, 4)
    port, api_port = B.free_port(), B.free_port()
    nx = member_front(out, "front", port, api_port, ports[:1])
    backends.start()
    nx.start()
    res = []
    try:
        member_streak(port, str(ports[0]), n_streak, time.perf_counter())
        for i in range(changes):
            want = ports[(i + 1) % len(ports)]
            time.sleep(0.05)
            t0 = time.perf_counter()
            status, answer = api(api_port, "PUT", "upstreams/%s/servers"
                                 % GROUP, {"127.0.0.1:%d" % want: {}})
            ack = time.perf_counter()
            if status != 200 or not isinstance(answer, dict):
                raise RuntimeError("API PUT upstreams/%s/servers: "
                                   "unexpected %d %r" % (GROUP, status,
                                                         answer))
            visible, stale = member_streak(port, str(want), n_streak, ack)
            res.append({"put_ms": (ack - t0) * 1e3,
                        "visible_ms": visible * 1e3, "stale": stale})
            B.log("members %2d/%d: PUT %.2f ms, visible after %.2f ms, %d "
                  "old answers" % (i + 1, changes, res[-1]["put_ms"],
                                   res[-1]["visible_ms"], stale))
    finally:
        nx.stop()
        backends.stop()
    check_errors(nx)
    return res


def part_churn(out, churn, duration, conns):
    out = os.path.join(out, "churn")
    ports, backends, log = member_backends(out, 4)
    stay, come = ports[:2], ports[2:]
    port, api_port = B.free_port(), B.free_port()
    nx = member_front(out, "front", port, api_port, stay)
    backends.start()
    nx.start()
    done = {"changes": 0, "bad": []}

    def changer():
        t_end = time.perf_counter() + duration * 0.9
        for i in range(churn):
            addr = "127.0.0.1:%d" % come[i % len(come)]
            path = "upstreams/%s/servers/%s" % (GROUP, addr)
            for method, body in (("PUT", {}), ("DELETE", None)):
                status, answer = api(api_port, method, path, body)
                if status not in (200, 201):
                    done["bad"].append("%s %s: %d %r" % (method, path,
                                                          status, answer))
            done["changes"] += 1
            # spread the changes over the run
            left = t_end - time.perf_counter()
            if left > 0:
                time.sleep(left / max(1, churn - i))

    try:
        t = threading.Thread(target=changer)
        t.start()
        res = B.wrk(port, "localhost", duration, conns)
        t.join()
    finally:
        nx.stop()
        backends.stop()
    check_errors(nx)
    if done["bad"]:
        raise RuntimeError("churn: refused changes:\n  "
                           + "\n  ".join(done["bad"][:10]))
    answers, conns_of = {}, {}
    with open(log) as fh:
        for line in fh:
            p, c = line.split()
            answers[p] = answers.get(p, 0) + 1
            conns_of.setdefault(p, set()).add(c)
    res.pop("raw")
    res.update({"changes": done["changes"],
                "answers": {p: answers.get(str(p), 0) for p in ports},
                "connections": {p: len(conns_of.get(str(p), ()))
                                for p in ports},
                "stay": stay, "come": come, "duration": duration})
    B.log("churn: %d adds and removes under wrk: %d requests, %d failed; "
          "connections accepted by the staying servers: %s" % (
              res["changes"], res["requests"], res["errors"],
              ", ".join("%d: %d" % (p, res["connections"][p])
                        for p in stay)))
    return res


# ---- report -------------------------------------------------------------

def load_line(what, load):
    per = load["per"]
    return ("%s: %.2f s for %d hosts in %d requests of %d (%.0f hosts/s); "
            "a request median %.0f ms, longest %.0f ms%s" % (
                what, load["total"], load["hosts"], len(per), load["chunk"],
                load["hosts"] / load["total"], B.median(per) * 1e3,
                max(per) * 1e3, "" if load["cpu"] is None else
                "; nginx CPU %.2f s" % load["cpu"]))


def report_members(k, members, churn):
    lines = []
    if members:
        vis = [x["visible_ms"] for x in members]
        lines += ["## A membership change reaching every worker (two "
                  "workers, %d PUTs of %s's list, a plain proxy_pass; "
                  "streaks of %d answers from both workers)"
                  % (len(members), GROUP, k["streak"]), "",
                  "acknowledged → every worker has answered from the new "
                  "server: p50 %.2f ms, p99 %.2f ms, max %.2f ms (target: "
                  "p99 ≤ 100 ms); old answers after an acknowledgement: %d "
                  "in all; PUT latency median %.2f ms" % (
                      percentile(vis, 50), percentile(vis, 99), max(vis),
                      sum(x["stale"] for x in members),
                      B.median([x["put_ms"] for x in members])), ""]
    if churn:
        rows = [[p, "stays" if p in churn["stay"] else "comes and goes",
                 churn["answers"][p], churn["connections"][p]]
                for p in churn["stay"] + churn["come"]]
        lines += ["## %d adds and removes under load (wrk -t1 -c%d, %g s, "
                  "keep-alive; two servers stay)"
                  % (churn["changes"], k["connections"], churn["duration"]),
                  "",
                  "%d requests, %.0f req/s, %d failed (target: 0)" % (
                      churn["requests"], churn["rps"], churn["errors"]), "",
                  B.table(["backend port", "", "answers",
                           "connections accepted"], rows), ""]
    return lines


def report(machine, knobs, cg, wrk_cases, wrk_load, loads, flip, flip_load,
           members=None, churn=None):
    k = dict(knobs)
    lines = ["dynroute_zone and the runtime API; %s" % machine, "",
             "Knobs: " + ", ".join("%s=%s" % kv for kv in knobs), ""]
    if cg:
        base = cg["no-zone"]["ir"]
        rows = [[name, cg[name]["host"], "%.0f" % cg[name]["ir"],
                 "%+.0f" % (cg[name]["ir"] - base),
                 "%.4f" % (cg[name]["ir"] / base),
                 "%+.2f %%" % (100.0 * (cg[name]["ir"] - base) / base),
                 B.fmt(cg[name]["decide"]), B.fmt(cg[name]["live_host"]),
                 B.fmt(cg[name]["malloc"])]
                for name, _, _, _ in CASES if name in cg]
        lines += ["## Instructions per request (callgrind, %d requests on "
                  "one keep-alive connection, whole nginx process)"
                  % k["requests"], "",
                  B.table(["case", "Host", "instructions/request",
                           "Δ vs no-zone", "× no-zone", "Δ %",
                           "decision (incl.)",
                           "of which runtime hosts (incl.)",
                           "malloc (incl.)"], rows), ""]
    if wrk_cases:
        base = wrk_cases[0]["runs"]
        rows = []
        for c in wrk_cases:
            runs = c["runs"]
            rps = [x["rps"] for x in runs]
            by_rps = [a["rps"] / b["rps"] for a, b in zip(runs, base)
                      if b["rps"] > 0]
            cpu = [x["cpu_ns"] / 1e3 / x["requests"] for x in runs
                   if x["requests"]]
            by_cpu = [(b["cpu_ns"] / b["requests"])
                      / (a["cpu_ns"] / a["requests"])
                      for a, b in zip(runs, base)
                      if a["requests"] and b["requests"] and a["cpu_ns"]]
            rows.append([c["name"], B.fmt(B.median(rps)),
                         "%.0f–%.0f" % (min(rps), max(rps)),
                         B.fmt(B.median([x["p50"] for x in runs])),
                         B.fmt(B.median([x["p99"] for x in runs])),
                         e2e.span(by_rps), B.fmt(B.median(cpu), "%.1f"),
                         e2e.span(by_cpu), sum(x["errors"] for x in runs)])
        lines += ["## Throughput (wrk -t1 -c%d, %d rounds of %g s per case, "
                  "interleaved; master and one worker pinned to the server "
                  "core)" % (k["connections"], k["rounds"], k["duration"]),
                  "",
                  B.table(["case", "req/s median", "req/s min–max",
                           "p50 µs", "p99 µs",
                           "× no-zone by req/s, per round: median (min–max)",
                           "front CPU µs/req",
                           "× no-zone by CPU/req, per round", "errors"],
                          rows), ""]
        lines += [load_line("Loading the hosts of zone-hosts", wrk_load), ""]
    if loads:
        rows = [[l["chunk"], len(l["per"]), "%.2f" % l["total"],
                 "%.0f" % (l["hosts"] / l["total"]),
                 "%.0f" % (B.median(l["per"]) * 1e3),
                 "%.0f" % (max(l["per"]) * 1e3), "%.2f" % l["cpu"]]
                for l in loads]
        lines += ["## Loading %d runtime hosts through the API (PATCH "
                  "{prefix}hosts; a fresh nginx, one worker, pinned)"
                  % k["hosts"], "",
                  B.table(["hosts a request", "requests", "total s",
                           "hosts/s", "request median ms",
                           "longest request ms", "nginx CPU s"], rows),
                  ""]
    if flip:
        vis = [x["visible_ms"] for x in flip]
        rows = [[i + 1, x["to"], "%.2f" % x["patch_ms"],
                 "%.2f" % x["visible_ms"], x["stale"], x["sent"],
                 "%.0f" % x["streak_ms"]] for i, x in enumerate(flip)]
        lines += ["## Propagation (two workers, %d flips of the rollout's "
                  "weights, old/new; streaks of %d answers from both "
                  "workers)" % (len(flip), k["streak"]), "",
                  "acknowledged → every worker has answered from the new "
                  "variant: median %.2f ms, max %.2f ms; old-variant answers "
                  "after an acknowledgement: %d in all; PATCH latency median "
                  "%.2f ms, max %.2f ms; a request on a fresh connection "
                  "takes about %.2f ms" % (
                      B.median(vis), max(vis), sum(x["stale"] for x in flip),
                      B.median([x["patch_ms"] for x in flip]),
                      max(x["patch_ms"] for x in flip),
                      B.median([x["streak_ms"] / x["sent"] for x in flip])),
                  "", load_line("Loading the hosts first (two workers)",
                                flip_load), "",
                  B.table(["flip", "weights old/new", "PATCH ms",
                           "ack → every worker answered new ms",
                           "old answers after ack",
                           "requests", "ack → streak complete ms"], rows),
                  ""]
    lines += report_members(k, members, churn)
    lines += ["Cases (N = %d runtime hosts: %s and exact names "
              "svc-<i>.team-<i%%97>.example.com):" % (k["hosts"], RUNTIME)]
    lines += ["- %s: %s" % (n, NOTES[n]) for n, _, _, _ in CASES]
    return "\n".join(lines)


def main():
    t_start = time.time()
    n_hosts = B.env_int("BENCH_ZONE_HOSTS", 100000)
    chunk = B.env_int("BENCH_ZONE_CHUNK", 5000)
    load_chunks = [int(x) for x in os.environ.get(
        "BENCH_ZONE_LOAD_CHUNKS", "2000,5000,15000").split(",") if x]
    zone = os.environ.get("BENCH_ZONE_SIZE", "64m")
    front = os.environ.get("BENCH_ZONE_FRONT", "dynroute")
    flips = B.env_int("BENCH_ZONE_FLIPS", 20)
    n_streak = B.env_int("BENCH_ZONE_STREAK", 50)
    changes = B.env_int("BENCH_ZONE_MEMBER_CHANGES", 50)
    churn_n = B.env_int("BENCH_ZONE_CHURN", 100)
    parts = os.environ.get("BENCH_ZONE_PARTS",
                           "callgrind,wrk,load,flip,members,churn").split(",")
    requests = B.env_int("BENCH_CALLGRIND_REQUESTS", 2000)
    rounds = B.env_int("BENCH_ROUNDS", 6)
    duration = B.env_float("BENCH_DURATION", 3)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    warmup = B.env_float("BENCH_WARMUP", 1)
    machine = B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "zone"))
    knobs = [("front", front), ("hosts", n_hosts), ("chunk", chunk),
             ("zone", zone), ("requests", requests), ("rounds", rounds),
             ("duration", duration), ("connections", conns),
             ("flips", flips), ("streak", n_streak),
             ("member_changes", changes), ("churn", churn_n)]
    fronts = {x["name"]: x for x in e2e.FRONTS}
    if front not in fronts or fronts[front]["router"]:
        raise SystemExit("BENCH_ZONE_FRONT: %s is not an e2e front without "
                         "a router" % front)
    f = fronts[front]
    B.fresh_dir(out)
    rules = B.write_rules(os.path.join(out, "rules-10k.conf"), 10000)
    ports, backends = B.backends(out)
    cg = wrk_cases = wrk_load = loads = flip = flip_load = None
    members = churn = None
    try:
        backends.start()
        if "callgrind" in parts:
            cg = part_callgrind(f, out, rules, ports, n_hosts, chunk, zone,
                                requests)
        if "wrk" in parts:
            wrk_cases, wrk_load = part_wrk(f, out, rules, ports, n_hosts,
                                           chunk, zone, rounds, duration,
                                           conns, warmup)
        if "load" in parts:
            loads = part_load(f, out, rules, ports, n_hosts, load_chunks,
                              zone)
        if "flip" in parts:
            flip, flip_load = part_flip(f, out, rules, ports, n_hosts, chunk,
                                        zone, flips, n_streak)
        if "members" in parts:
            members = part_members(out, changes, n_streak)
        if "churn" in parts:
            churn = part_churn(out, churn_n, duration * max(1, rounds),
                               conns)
    finally:
        B.stop_all()
    text = report(machine, knobs, cg, wrk_cases, wrk_load, loads, flip,
                  flip_load, members, churn)
    text += "\n\nRun time: %.0f s\n" % (time.time() - t_start)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
