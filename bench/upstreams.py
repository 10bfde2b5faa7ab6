#!/usr/bin/python3
"""Many upstream{} blocks: how each way of choosing one scales with them.

For each N, N upstream{} blocks u0 ... u<N-1> (each one server and
keepalive 32) in one file included by every configuration; the traffic
goes to the LAST one defined, u<N-1>, the worst case of a search by name.
u<N-1> points at the backend that answers "a", every other one at the
backend that answers "b", so the check proves which upstream served.
Four fronts per N:
  - static: proxy_pass http://u<N-1>;  (the baseline of each round)
  - map: map $host $u { default u<N-1>; } and proxy_pass http://$u;
  - dynroute: a table "default u<N-1>;" and
    proxy_pass http://$dynroute_upstream;
  - dynroute-balancer: the same table and proxy_pass http://edge_pass;
    with upstream edge_pass { dynroute_balancer; }

For each configuration: the wall time and peak RSS of `nginx -t` (GNU
time), and the master's peak RSS (VmHWM) once started.  Then
throughput, in bounded wrk rounds interleaved over every front of every N,
with the ratio to static at the same N computed within each round, and
server CPU per request (/proc/PID/task/*/schedstat).  Everything listens on
127.0.0.1 and is stopped by its PID.

With BENCH_UPSTREAMS_CALLGRIND=R (off by default), the four fronts of the
largest N are then run once more, each as a single process under callgrind
as bench/callgrind.py does, and R requests on one keep-alive connection give
instructions per request: a figure without noise.

Knobs: BENCH_UPSTREAMS_SIZES (1,1000,10000), BENCH_UPSTREAMS_REPEAT (nginx -t
runs per configuration, 3), BENCH_ROUNDS (5), BENCH_DURATION (3),
BENCH_CONNECTIONS (32), BENCH_WARMUP (1), BENCH_UPSTREAMS_CALLGRIND (0),
BENCH_OUT.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import callgrind as C  # noqa: E402

HOST = "a.example.com"


def kinds(last):
    """(name, http{} snippet, body of location /) for the upstream last."""
    table = "    dynroute_table edge {\n        default %s;\n    }\n" % last
    return [
        ("static", "", "proxy_pass http://%s;" % last),
        ("map", "    map $host $u {\n        default %s;\n    }\n" % last,
         "proxy_pass http://$u;"),
        ("dynroute", table,
         "dynroute edge;\n            proxy_pass http://$dynroute_upstream;"),
        ("dynroute-balancer",
         "    upstream edge_pass {\n        dynroute_balancer;\n    }\n"
         + table, "dynroute edge;\n            proxy_pass http://edge_pass;"),
    ]


def write_upstreams(path, n, ports):
    """u0 ... u<n-1>: the last on service_a ("a"), the others on service_b."""
    with open(path, "w") as f:
        for i in range(n):
            port = ports["service_a" if i == n - 1 else "service_b"]
            f.write("upstream u%d {\n    server 127.0.0.1:%d;\n"
                    "    keepalive 32;\n}\n" % (i, port))
    return path


def conf(upstreams, http, location, port):
    return ("    include %s;\n\n%s"
            "    server {\n        listen 127.0.0.1:%d;\n\n"
            "        location / {\n            %s\n        }\n    }\n"
            % (upstreams, http, port, location.strip()))


def main():
    sizes = [int(x) for x in os.environ.get(
        "BENCH_UPSTREAMS_SIZES", "1,1000,10000").split(",") if x]
    repeat = B.env_int("BENCH_UPSTREAMS_REPEAT", 3)
    rounds = B.env_int("BENCH_ROUNDS", 5)
    duration = B.env_float("BENCH_DURATION", 3)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    warmup = B.env_float("BENCH_WARMUP", 1)
    B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "upstreams"))
    B.fresh_dir(out)

    ports, backends = B.backends(out)

    fronts = []
    for n in sizes:
        ups = write_upstreams(os.path.join(out, "upstreams-%d.conf" % n), n,
                              ports)
        for kind, http, loc in kinds("u%d" % (n - 1)):
            name = "%s-%d" % (kind, n)
            port = B.free_port()
            fronts.append({
                "name": name, "kind": kind, "n": n, "port": port,
                "runs": [],
                "nginx": B.Nginx(name, os.path.join(out, name),
                                 conf(ups, http, loc, port), [port])})

    # nginx -t: load time and memory, every configuration in turn, repeated
    tests = {f["name"]: [] for f in fronts}
    for _ in range(repeat):
        for f in fronts:
            tests[f["name"]].append(B.nginx_t(f["nginx"].conf,
                                            f["nginx"].prefix))
    for f in fronts:
        f["t_wall"] = B.median([r[0] for r in tests[f["name"]]])
        f["t_rss"] = B.median([r[1] for r in tests[f["name"]]])
        B.log("nginx -t %-24s %7.1f ms %7.1f MB" % (
            f["name"], f["t_wall"] * 1e3, f["t_rss"] / 1024.0))

    try:
        backends.start()
        for f in fronts:
            f["nginx"].start()
            f["master_hwm"] = B.proc_kb(f["nginx"].proc.pid, "VmHWM")
            code, body = B.curl(f["port"], HOST)
            ok = code == "200" and body == "a"
            B.log("check %-24s -> %s %r %s" % (f["name"], code, body,
                                                "ok" if ok else "FAILED"))
            if not ok:
                raise RuntimeError("%s did not reach u%d" % (f["name"],
                                                             f["n"] - 1))

        for f in fronts:
            B.wrk(f["port"], HOST, warmup, conns)
        for r in range(rounds):
            for f in fronts:
                cpu0 = f["nginx"].cpu_ns()
                res = B.wrk(f["port"], HOST, duration, conns)
                res["cpu_ns"] = f["nginx"].cpu_ns() - cpu0
                res.pop("raw")
                f["runs"].append(res)
                B.log("round %d/%d %-24s %9.0f req/s  errors %d" % (
                    r + 1, rounds, f["name"], res["rps"], res["errors"]))
        for f in fronts:
            pids = f["nginx"].pids()
            f["worker_rss"] = (B.proc_kb(pids[-1], "VmRSS")
                               if len(pids) > 1 else None)
            for e in f["nginx"].errors():
                B.log("%s: %s" % (f["name"], e))
    finally:
        B.stop_all()

    cg = B.env_int("BENCH_UPSTREAMS_CALLGRIND", 0)
    counted = (under_callgrind([f for f in fronts if f["n"] == max(sizes)],
                               cg, out) if cg else [])
    report(fronts, rounds, duration, conns, repeat, out, counted, cg)


def under_callgrind(fronts, requests, out):
    """[(front, instructions per request)], each front a single nginx
    process under callgrind, counted over requests on one connection."""
    counted = []
    out = os.path.join(out, "callgrind")
    # The backends were stopped with the rest: new ones, new ports.
    ports, backends = B.backends(out)
    n = fronts[0]["n"]
    ups = write_upstreams(os.path.join(out, "upstreams-%d.conf" % n), n,
                          ports)
    conf_of = dict((k, (h, l)) for k, h, l in kinds("u%d" % (n - 1)))
    try:
        backends.start()
        for f in fronts:
            port = B.free_port()
            prefix = os.path.join(out, f["name"])
            cgout = os.path.join(prefix, "callgrind.out")
            http, loc = conf_of[f["kind"]]
            nx = B.Nginx(f["name"], prefix, conf(ups, http, loc, port),
                         [port], master=False,
                         wrapper=["valgrind", "--tool=callgrind",
                                  "--instr-atstart=no",
                                  "--callgrind-out-file=" + cgout])
            nx.start()
            C.send(port, HOST, 50)
            C.control(nx.proc.pid, "-i", "on")
            C.send(port, HOST, requests)
            C.control(nx.proc.pid, "-i", "off")
            nx.stop(signal.SIGTERM)
            counted.append((f, C.totals(cgout) / requests))
            B.log("callgrind %-24s %10.0f instructions/request" % (
                f["name"], counted[-1][1]))
    finally:
        B.stop_all()
    return counted


def span(xs):
    if not xs:
        return "-"
    return "%.2f (%.2f–%.2f)" % (B.median(xs), min(xs), max(xs))


def per_req(run):
    return run["cpu_ns"] / 1e3 / run["requests"] if run["requests"] else None


def report(fronts, rounds, duration, conns, repeat, out, counted, cg):
    base = {f["n"]: f for f in fronts if f["kind"] == "static"}
    rows = []
    for f in fronts:
        b = base[f["n"]]["runs"]
        rps = [x["rps"] for x in f["runs"]]
        by_rps = [a["rps"] / s["rps"] for a, s in zip(f["runs"], b)
                  if s["rps"]]
        by_cpu = [per_req(s) / per_req(a) for a, s in zip(f["runs"], b)
                  if per_req(a) and per_req(s)]
        rows.append([
            "{:,}".format(f["n"]), f["kind"],
            "%.1f" % (f["t_wall"] * 1e3), "%.1f" % (f["t_rss"] / 1024.0),
            B.fmt(None if f["master_hwm"] is None
                  else f["master_hwm"] / 1024.0, "%.1f"),
            B.fmt(None if f["worker_rss"] is None
                  else f["worker_rss"] / 1024.0, "%.1f"),
            "%s (%.0f–%.0f)" % (B.fmt(B.median(rps)), min(rps), max(rps)),
            span(by_rps),
            B.fmt(B.median([per_req(x) for x in f["runs"]]), "%.1f"),
            span(by_cpu),
            sum(x["errors"] for x in f["runs"])])
    text = "\n".join([
        "Many upstreams: N upstream{} blocks (keepalive 32, one server "
        "each), traffic to the last one; wrk -t1 -c%d, %d interleaved "
        "rounds of %gs; nginx -t median of %d; %s"
        % (conns, rounds, duration, repeat, B.machine()), "",
        B.table(["N", "front", "nginx -t ms", "nginx -t peak RSS MB",
                 "master peak RSS MB", "worker RSS MB",
                 "req/s median (min–max)", "× static by req/s, per round",
                 "server CPU µs/req", "× static by CPU, per round",
                 "errors"], rows), "",
        "Fronts, for the upstream u<N-1>: static = proxy_pass "
        "http://u<N-1>; map = map $host $u { default u<N-1>; } + "
        "proxy_pass http://$u; dynroute = a table \"default u<N-1>;\" + "
        "proxy_pass http://$dynroute_upstream; dynroute-balancer = the same "
        "table + proxy_pass http://edge_pass, upstream edge_pass "
        "{ dynroute_balancer; }."])
    if counted:
        base = dict((f["kind"], per) for f, per in counted).get("static")
        text += "\n\n" + "\n".join([
            "callgrind, N = {:,}, {:d} requests on one keep-alive "
            "connection, instructions of the whole nginx process per "
            "request:".format(counted[0][0]["n"], cg), "",
            B.table(["front", "instructions/request", "Δ vs static", "Δ %"],
                    [[f["kind"], "%.0f" % per,
                      "-" if base is None else "%+.0f" % (per - base),
                      "-" if base is None else "%+.2f %%"
                      % (100.0 * (per - base) / base)]
                     for f, per in counted])])
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
