#!/usr/bin/python3
"""The cost of active health checks (dynroute_health_check): one upstream
with dynroute_servers and N servers (1,000), every one checked every
INTERVAL (1s), against the same upstream without checks.

The backends are one nginx (no module) with N "listen" lines on 127.0.0.1
ports, each answering "ok" on every path.  The front is one nginx (master
and one worker, the module loaded, a dynroute_zone, the API in a server of
its own) pinned to the server core, wrk on the client core; the two cases
alternate over ROUNDS rounds:
  off  the upstream without dynroute_health_check: the baseline;
  on   the same with "dynroute_health_check interval=INTERVAL", so that the
       one worker probes all N servers, N probes per interval.

In each round, for each case, a fresh front, IDLE seconds after every
server was probed once (on) or after the start (off):
  1. idle: the front's CPU time over IDLE seconds without requests, and the
     probes done meanwhile (the servers' checks in {prefix}stats);
  2. load: wrk for DURATION seconds (CONNECTIONS, keep-alive, to one
     path): requests per second, and the front's CPU time per request.
Reported: the medians, and the ratios on/off within each round (their
median).  Any [alert]/[crit]/[emerg] line, a non-2xx answer or a server
left unhealthy stops the run.  Everything listens on 127.0.0.1 and is
stopped by its PID.  Results go to BENCH_OUT/results.md.

Knobs: BENCH_HEALTH_SERVERS (1000), BENCH_HEALTH_INTERVAL (1s),
BENCH_HEALTH_IDLE (5), BENCH_ROUNDS (3), BENCH_DURATION (5),
BENCH_CONNECTIONS (32), BENCH_WARMUP (1), BENCH_OUT.
"""

import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

API = "/dynroute/"
CASES = ["off", "on"]


def free_ports(n):
    """n distinct free loopback ports."""
    ports = set()
    while len(ports) < n:
        ports.add(B.free_port())
    return sorted(ports)


def backend(out, ports):
    listens = "".join("        listen 127.0.0.1:%d;\n" % p for p in ports)
    return B.Nginx("backends", os.path.join(out, "backends"),
                   "    server {\n%s"
                   "        location / { return 200 \"ok\\n\"; }\n"
                   "    }\n" % listens, [ports[0], ports[-1]], module=False)


def front(out, name, port, api_port, ports, interval):
    check = ("        dynroute_health_check interval=%s;\n" % interval
             if name == "on" else "")
    servers = "".join("        server 127.0.0.1:%d;\n" % p for p in ports)
    http = ("    dynroute_zone routes 16m;\n"
            "    upstream grp {\n"
            "        dynroute_servers max=%d;\n%s%s"
            "        keepalive 32;\n    }\n"
            "    server {\n        listen 127.0.0.1:%d;\n"
            "        location / { proxy_pass http://grp; }\n    }\n"
            "    server {\n        listen 127.0.0.1:%d;\n"
            "        location %s { allow 127.0.0.1; deny all; "
            "dynroute_api; }\n    }\n"
            % (max(len(ports), 1), check, servers, port, api_port, API))
    return B.Nginx("front-" + name, os.path.join(out, "front-" + name), http,
                   [port, api_port])


def stats(api_port):
    c = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    try:
        c.request("GET", API + "stats", headers={"Host": "localhost"})
        r = c.getresponse()
        doc = json.loads(r.read())
    finally:
        c.close()
    (g,) = [g for g in doc["groups"] if g["name"] == "grp"]
    return g["servers"]


def checks(servers):
    return sum(s.get("health", {}).get("checks", 0) for s in servers)


def worker_cpu_ns(nx):
    """CPU of the front's worker(s), not its master."""
    return sum(B.cpu_ns(p) for p in nx.pids()[1:])


def one(out, name, ports, interval, idle, duration, conns, warmup):
    port, api_port = B.free_port(), B.free_port()
    nx = front(out, name, port, api_port, ports, interval).start()
    try:
        if name == "on":
            # every server probed once and up
            end = time.time() + 60
            while time.time() < end:
                sv = stats(api_port)
                if all(s.get("health", {}).get("state") == "up" for s in sv):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError("servers not all up after 60 s")
        else:
            time.sleep(1)
        c0, cpu0, t0 = checks(stats(api_port)), worker_cpu_ns(nx), \
            time.perf_counter()
        time.sleep(idle)
        c1, cpu1, t1 = checks(stats(api_port)), worker_cpu_ns(nx), \
            time.perf_counter()
        idle_cpu = (cpu1 - cpu0) / 1e9 / (t1 - t0)   # CPU s per s
        probes = (c1 - c0) / (t1 - t0)
        B.wrk(port, "localhost", warmup, conns)
        cpu0 = worker_cpu_ns(nx)
        r = B.wrk(port, "localhost", duration, conns)
        cpu1 = worker_cpu_ns(nx)
        if r["errors"] or not r["requests"]:
            raise RuntimeError("%s: wrk: %d errors\n%s" % (name, r["errors"],
                                                           r["raw"]))
        bad = [s["name"] for s in stats(api_port) if s["state"] != "up"]
        if bad:
            raise RuntimeError("%s: servers not up: %s" % (name, bad[:5]))
        errs = nx.errors()
        if errs:
            raise RuntimeError("%s error.log:\n  %s" % (name,
                                                        "\n  ".join(errs)))
        return {"idle_cpu": idle_cpu, "probes": probes, "rps": r["rps"],
                "us_per_req": (cpu1 - cpu0) / 1e3 / max(r["requests"], 1),
                "p99": r["p99"]}
    finally:
        nx.stop()


def main():
    t_start = time.time()
    n = B.env_int("BENCH_HEALTH_SERVERS", 1000)
    interval = os.environ.get("BENCH_HEALTH_INTERVAL", "1s")
    idle = B.env_float("BENCH_HEALTH_IDLE", 5)
    rounds = B.env_int("BENCH_ROUNDS", 3)
    duration = B.env_float("BENCH_DURATION", 5)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    warmup = B.env_float("BENCH_WARMUP", 1)
    machine = B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "health"))
    B.fresh_dir(out)
    ports = free_ports(n)
    be = backend(out, ports)
    runs = {c: [] for c in CASES}
    try:
        be.start()
        for i in range(rounds):
            for c in (CASES if i % 2 == 0 else list(reversed(CASES))):
                B.log("round %d: %s" % (i + 1, c))
                runs[c].append(one(out, c, ports, interval, idle, duration,
                                   conns, warmup))
        errs = be.errors()
        if errs:
            raise RuntimeError("backends: %s" % errs)
    finally:
        B.stop_all()

    def med(c, k):
        return B.median([r[k] for r in runs[c]])

    def ratio(k):
        return B.median([on[k] / off[k] for on, off
                         in zip(runs["on"], runs["off"]) if off[k]])

    rows = [[c, B.fmt(med(c, "probes"), "%.0f"),
             B.fmt(med(c, "idle_cpu") * 100, "%.2f"),
             B.fmt(med(c, "rps"), "%.0f"),
             B.fmt(med(c, "us_per_req"), "%.2f"),
             B.fmt(med(c, "p99"), "%.0f")] for c in CASES]
    text = "\n".join([
        "# Active health checks: %d servers checked every %s" % (n, interval),
        "", machine, "",
        "Knobs: servers=%d interval=%s idle=%gs rounds=%d duration=%gs "
        "connections=%d" % (n, interval, idle, rounds, duration, conns), "",
        B.table(["case", "probes/s", "idle worker CPU %",
                 "req/s", "worker CPU us/req", "p99 us"], rows), "",
        "Ratios on/off (median of the rounds): idle worker CPU %s, "
        "req/s %s, worker CPU per request %s." % (
            B.fmt(ratio("idle_cpu"), "%.1f"), B.fmt(ratio("rps"), "%.3f"),
            B.fmt(ratio("us_per_req"), "%.3f")),
        "", "Run time: %.0f s" % (time.time() - t_start), ""])
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
