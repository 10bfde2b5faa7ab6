#!/usr/bin/python3
"""Deterministic cost: instructions per request under callgrind.

Each front of bench/e2e.py (the same configuration) runs as a single nginx
process (master_process off) under valgrind --tool=callgrind, with
instrumentation off while it starts.  After a warm-up on one keep-alive
connection, instrumentation is switched on (callgrind_control -i on PID),
N requests are sent on that connection, and it is switched off again; the
instructions counted, divided by N, are the cost of one request in the whole
nginx process: parsing, routing, proxying to the (uninstrumented) backend
and writing the response.  This figure does not depend on machine noise.

Knobs: BENCH_CALLGRIND_REQUESTS (2000), BENCH_CALLGRIND_FRONTS (comma
separated, default below), BENCH_OUT.
"""

import http.client
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import e2e  # noqa: E402

# Inclusive costs shown per request: the rewrite-phase handler (the
# decision), and the balancer's peer initialisation, which includes the
# chosen upstream's own (keepalive, round robin) that static pays as well.
HANDLER = "ngx_http_dynroute_handler"
BALANCER = "ngx_http_dynroute_balancer_init_peer"

DEFAULT = ("static,map,dynroute,dynroute-balancer,dynroute-regex,"
           "dynroute-rollout,map-10k,dynroute-10k,auth_request-location")


def send(port, host, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(n):
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError("status %d" % r.status)
    finally:
        c.close()


def control(pid, *args):
    subprocess.run(["callgrind_control"] + list(args) + [str(pid)],
                   check=True, capture_output=True, timeout=120)


def totals(path):
    """The events of the whole run: the "totals:" line at the end."""
    total = None
    with open(path) as f:
        for line in f:
            m = re.match(r"totals:\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    if total is None:
        raise RuntimeError("no totals in " + path)
    return total


def inclusive(path, functions):
    """Inclusive instructions of each of the functions, None if absent."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                       capture_output=True, text=True)
    found = dict.fromkeys(functions)
    for line in r.stdout.splitlines():
        for fn in functions:
            if found[fn] is None and re.search(r"\b%s\b" % fn, line):
                m = re.match(r"\s*([\d,]+)", line)
                if m:
                    found[fn] = int(m.group(1).replace(",", ""))
    return found


def main():
    n = B.env_int("BENCH_CALLGRIND_REQUESTS", 2000)
    names = os.environ.get("BENCH_CALLGRIND_FRONTS", DEFAULT).split(",")
    B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "callgrind"))
    B.fresh_dir(out)
    rules = B.write_rules(os.path.join(out, "rules-10k.conf"), 10000)
    fronts = {f["name"]: f for f in e2e.FRONTS}
    results = []

    ports, backends = B.backends(out)
    try:
        backends.start()
        for name in names:
            f = fronts[name]
            if f["router"] == "process":
                B.log("callgrind: skipping %s (its router is another "
                      "process)" % name)
                continue
            port, rp = B.free_port(), B.free_port()
            prefix = os.path.join(out, name)
            cg = os.path.join(prefix, "callgrind.out")
            listen = [port] + ([rp] if f["router"] == "self" else [])
            nx = B.Nginx(name, prefix,
                         e2e.server_conf(f, port, rules, rp, ports), listen,
                         master=False,
                         wrapper=["valgrind", "--tool=callgrind",
                                  "--instr-atstart=no",
                                  "--callgrind-out-file=" + cg])
            t0 = time.time()
            nx.start()
            send(port, f["host"], 50)  # warm-up: keepalive, caches
            pid = nx.proc.pid
            control(pid, "-i", "on")
            send(port, f["host"], n)
            control(pid, "-i", "off")
            t1 = time.time()
            nx.stop(signal.SIGTERM)  # QUIT may wait on idle upstreams
            B.log("callgrind %s: started and measured in %.0f s, stopped in "
                  "%.0f s" % (name, t1 - t0, time.time() - t1))
            ir = totals(cg)
            inc = inclusive(cg, [HANDLER, BALANCER])
            results.append((name, ir / n) + tuple(
                None if inc[fn] is None else inc[fn] / n
                for fn in (HANDLER, BALANCER)))
            B.log("callgrind %-24s %10.0f instructions/request (%.0f s)"
                  % (name, ir / n, time.time() - t0))
    finally:
        B.stop_all()

    base = dict((r[0], r[1]) for r in results).get("static")
    rows = []
    for name, per, handler, balancer in results:
        rows.append([name, "%.0f" % per,
                     "-" if base is None else "%+.0f" % (per - base),
                     "-" if base is None else "%+.2f %%"
                     % (100.0 * (per - base) / base),
                     "-" if handler is None else "%.0f" % handler,
                     "-" if balancer is None else "%.0f" % balancer])
    text = ("callgrind, %d requests on one keep-alive connection, "
            "instructions of the whole nginx process per request; %s\n\n"
            % (n, B.machine()) + B.table(["front", "instructions/request", "Δ vs static",
                           "Δ %", "of which dynroute handler",
                           "dynroute_balancer init_peer (incl.)"], rows))
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
