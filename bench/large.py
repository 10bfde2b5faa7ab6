#!/usr/bin/python3
"""Large tables: dynroute side by side with map $host { hostnames; }.

For each size N (N exact hosts plus N/10 "*.x" wildcards, the same file
included by a dynroute_table and by a map, both at default tuning):
  - wall time and peak RSS of `nginx -t` (GNU time), and the warnings it
    printed (map: "could not build optimal map_hash ...");
  - throughput through each, with wrk sending 1,000 hosts of the table in
    turn (9 in 10 exact names, 1 in 10 under a wildcard), in interleaved
    rounds together with a static proxy_pass as the baseline of each round,
    and the RSS of each serving worker.

Knobs: BENCH_LARGE_SIZES (10000,100000,1000000), BENCH_LARGE_REPEAT (nginx -t
runs per configuration, 3), BENCH_ROUNDS (5), BENCH_DURATION (3),
BENCH_CONNECTIONS (32), BENCH_OUT.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import e2e  # noqa: E402


def kinds(n):
    return [
        ("map", "    map $host $backend {\n        hostnames;\n"
                "        include %s;\n        default service_b;\n    }\n",
         "proxy_pass http://$backend;"),
        ("dynroute", "    dynroute_table edge {\n        include %s;\n"
                     "        default service_b;\n    }\n",
         "dynroute edge;\n            proxy_pass http://$dynroute_upstream;"),
    ]


def probe_hosts(n, count=1000, seed=7):
    rng = random.Random(seed)
    hosts = []
    for i in range(count):
        if i % 10 == 9 and n >= 10:
            hosts.append("api.%s" % B.wildcard_key(rng.randrange(n // 10)))
        else:
            hosts.append(B.exact_host(rng.randrange(n)))
    return hosts


def main():
    sizes = [int(x) for x in os.environ.get(
        "BENCH_LARGE_SIZES", "10000,100000,1000000").split(",") if x]
    repeat = B.env_int("BENCH_LARGE_REPEAT", 3)
    rounds = B.env_int("BENCH_ROUNDS", 5)
    duration = B.env_float("BENCH_DURATION", 3)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "large"))
    B.fresh_dir(out)

    ports, backends = B.backends(out)

    # name, N, http snippet, location body
    configs = [("static", 0, "", "proxy_pass http://service_a;")]
    for n in sizes:
        rules = B.write_rules(os.path.join(out, "rules-%d.conf" % n), n)
        for kind, http, loc in kinds(n):
            configs.append(("%s-%d" % (kind, n), n, http % rules, loc))

    # nginx -t: load time, memory, warnings
    tests = []
    for name, n, http, loc in configs:
        f = e2e.front(name, http, loc, "", "")
        port = B.free_port()
        prefix = os.path.join(out, name)
        nx = B.Nginx(name, prefix, e2e.server_conf(f, port, "", 0, ports),
                     [port])
        runs = [B.nginx_t(nx.conf, prefix) for _ in range(repeat)]
        wall = B.median([r[0] for r in runs])
        rss = B.median([r[1] for r in runs])
        warns = runs[0][2]
        tests.append((name, n, wall, rss, warns))
        B.log("nginx -t %-18s %6.2f s %8.1f MB  %s" % (
            name, wall, rss / 1024.0, "; ".join(warns) or "no warning"))

    # throughput
    fronts = []
    try:
        backends.start()
        for name, n, http, loc in configs:
            hosts = probe_hosts(n) if n else ["a.example.com"]
            f = e2e.front(name, http, loc, hosts[0], "")
            f["n"] = n
            f["script"] = B.host_script(os.path.join(out, name + ".lua"),
                                        hosts)
            f["port"] = B.free_port()
            f["nginx"] = B.Nginx(name, os.path.join(out, name),
                                 e2e.server_conf(f, f["port"], "", 0, ports),
                                 [f["port"]])
            f["nginx"].start()
            bad = 0
            for h in hosts[:20]:
                code, body = B.curl(f["port"], h)
                bad += code != "200" or body not in ("a", "b")
            if bad:
                raise RuntimeError("%s: %d of 20 hosts not routed" % (name,
                                                                    bad))
            f["runs"] = []
            fronts.append(f)

        for f in fronts:
            B.wrk(f["port"], f["host"], 1, conns, script=f["script"])
        for r in range(rounds):
            for f in fronts:
                cpu0 = f["nginx"].cpu_ns()
                res = B.wrk(f["port"], f["host"], duration, conns,
                            script=f["script"])
                res["cpu_ns"] = f["nginx"].cpu_ns() - cpu0
                res.pop("raw")
                f["runs"].append(res)
                B.log("round %d/%d %-18s %9.0f req/s  errors %d" % (
                    r + 1, rounds, f["name"], res["rps"], res["errors"]))
        for f in fronts:
            pids = f["nginx"].pids()
            f["worker_rss"] = (B.proc_kb(pids[-1], "VmRSS")
                               if len(pids) > 1 else None)
            for e in f["nginx"].errors():
                B.log("%s: %s" % (f["name"], e))
    finally:
        B.stop_all()

    base = fronts[0]["runs"]
    rows_t = [[name, "{:,}".format(n) if n else "-",
               "%.2f" % wall, "%.1f" % (rss / 1024.0),
               "%d× \"%s\"" % (len(warns), warns[0]) if warns else "none"]
              for name, n, wall, rss, warns in tests]
    rows_w = []
    for f in fronts:
        rps = [x["rps"] for x in f["runs"]]
        ratio = [a["rps"] / b["rps"] for a, b in zip(f["runs"], base)
                 if b["rps"]]
        rows_w.append([f["name"], B.fmt(B.median(rps)),
                       "%.0f–%.0f" % (min(rps), max(rps)),
                       "%.2f (%.2f–%.2f)" % (B.median(ratio), min(ratio),
                                             max(ratio)) if ratio else "-",
                       B.fmt(B.median([x["p99"] for x in f["runs"]])),
                       B.fmt(B.median([x["cpu_ns"] / 1e3 / x["requests"]
                                       for x in f["runs"] if x["requests"]]),
                             "%.1f"),
                       B.fmt(None if f["worker_rss"] is None
                             else f["worker_rss"] / 1024.0, "%.1f"),
                       sum(x["errors"] for x in f["runs"])])
    text = "\n".join([
        "Large tables: N exact hosts + N/10 wildcards, default tuning; %s"
        % B.machine(), "",
        "nginx -t (median of %d runs; peak RSS of the nginx process):" % repeat,
        "",
        B.table(["config", "N", "wall s", "peak RSS MB", "warnings"],
                rows_t), "",
        "Throughput, wrk -t1 -c%d, %d interleaved rounds of %gs, 1,000 "
        "hosts of the table in turn:" % (conns, rounds, duration), "",
        B.table(["front", "req/s median", "req/s min–max",
                 "× static (per round)", "p99 µs", "server CPU µs/req",
                 "worker RSS MB",
                 "errors"], rows_w)])
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
