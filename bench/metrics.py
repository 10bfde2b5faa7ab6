#!/usr/bin/python3
"""The cost of counting (dynroute_zone metrics=) on the request path.

Three cases, one configuration that differs only in the metrics= of its
dynroute_zone: the "dynroute-rollout" front of bench/e2e.py (the small
table plus shop.example.com -> a 90/10 rollout, both variants on
service_a, proxy_pass http://$dynroute_upstream), the same backends
(service_a answers "a", service_b "b"), "dynroute_zone routes SIZE
metrics=..." and a read-only dynroute_api in a server of its own (used
to check the counters, never during a measurement):
  (a) off     metrics=off: no counters, no log-phase handler: the baseline;
  (b) tables  metrics=tables: the counters per table and per variant;
  (c) rules   metrics=rules, the default: (b) plus one counter per rule.
Each case is requested with two hosts: a.example.com, a plain rule (the
table's counters, and the rule's with metrics=rules), and shop.example.com,
the rollout's rule (the variant's counters as well: requests by reason,
responses by status class, the upstream time's histogram bucket and sum).

1. callgrind: each case as a single nginx process under valgrind
   --tool=callgrind, as bench/callgrind.py does: after 50 requests of
   warm-up, instrumentation is switched on for R requests on one keep-alive
   connection, then off; the first host's count is dumped (callgrind_control
   -d) before the second host's warm-up.  Instructions per request, the
   ratio to (a) for the same host, the inclusive cost of the log-phase
   handler (ngx_http_dynroute_log_handler) and of the counting it calls
   (ngx_http_dynroute_metrics_count), and the instructions of glibc's
   allocator (malloc, posix_memalign, free: as many calls in every case,
   but a cost that follows the heap's history, which the configuration
   changes), and the difference to (a) without them; then the functions
   whose own (exclusive) instructions per request differ most from (a).
   Afterwards the counters are read through {prefix}metrics and must equal
   the requests sent (off: {prefix}metrics answers 404).
2. wrk: each case behind one nginx (master and one worker) pinned to the
   server core, wrk on the client core, rounds interleaved as in
   bench/e2e.py (every case and host once a round); ratios to (a) with the
   same host within each round, by req/s and by the front's CPU per
   request.  Noisy: the callgrind figures are the ones to read.

Everything listens on 127.0.0.1 and is stopped by its PID; every loop is
bounded (a request count, wrk's duration).  Any unexpected status, answer,
counter, wrk error or [alert]/[crit]/[emerg] line stops the run.  Results
go to BENCH_OUT/results.md.

Knobs: BENCH_METRICS_PARTS (callgrind,wrk), BENCH_METRICS_CASES
(off,tables,rules; off always runs), BENCH_METRICS_ZONE_SIZE (1m),
BENCH_METRICS_DIFF (functions listed per case, 12),
BENCH_CALLGRIND_REQUESTS (2000), BENCH_ROUNDS (5), BENCH_DURATION (3),
BENCH_CONNECTIONS (32), BENCH_WARMUP (1), BENCH_OUT.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import callgrind as C  # noqa: E402
import e2e  # noqa: E402
import zone as Z  # noqa: E402

FRONT = "dynroute-rollout"

ALL_CASES = [  # name, the metrics= of dynroute_zone
    ("off", "off"),
    ("tables", "tables"),
    ("rules", "rules"),
]
CASES = ALL_CASES  # BENCH_METRICS_CASES: off, the baseline, always runs

HOSTS = [  # name, Host, the rule it matches
    ("rule", "a.example.com", "a.example.com"),
    ("rollout", "shop.example.com", "shop.example.com"),
]

TABLE = "edge"
ROLLOUT = "shop"

NOTES = {
    "off": "dynroute_zone routes SIZE metrics=off: no counters, no "
           "log-phase handler; the baseline",
    "tables": "the same with metrics=tables: counters per table and per "
              "variant",
    "rules": "the same with metrics=rules (the default): also one counter "
             "per rule",
}

LOG_HANDLER = "ngx_http_dynroute_log_handler"
COUNT = "ngx_http_dynroute_metrics_count"

# the allocator's entry points that nginx calls
ALLOC_CALLS = ("malloc", "posix_memalign", "free")

# a line of callgrind_annotate's listing: "1,234 (0.01%)  file:function"
# glibc's allocator, as callgrind_annotate names its file
ALLOCATOR = "/malloc/malloc.c"

ANNOTATE = re.compile(r"^\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*?)\s*$")


def metrics_conf(port, api_port, ports, zone, metrics):
    """The e2e front FRONT on port, with the zone (metrics=...) and a
    read-only API on api_port."""
    f = {x["name"]: x for x in e2e.FRONTS}[FRONT]
    conf = e2e.server_conf(f, port, "", B.free_port(), ports)
    conf += ("    dynroute_zone routes %s metrics=%s;\n\n"
             "    server {\n        listen 127.0.0.1:%d;\n"
             "        location %s {\n"
             "            allow 127.0.0.1;\n            deny all;\n"
             "            dynroute_api;\n        }\n    }\n"
             % (zone, metrics, api_port, Z.API))
    return conf


def check_routes(port):
    """Both hosts answer 200 "a" (the rollout's variants are both on
    service_a).  Returns the requests sent per host."""
    bad = []
    for _, host, _ in HOSTS:
        code, body = B.curl(port, host)
        if code != "200" or body != "a":
            bad.append("Host %s: %s %r, expected 200 'a'" % (host, code, body))
    if bad:
        raise RuntimeError("wrong routing:\n  " + "\n  ".join(bad))
    return {host: 1 for _, host, _ in HOSTS}


# ---- the counters -------------------------------------------------------

SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def read_metrics(api_port):
    """(status, [(name, {labels}, value)]) of {prefix}metrics."""
    status, text = Z.api(api_port, "GET", "metrics")
    samples = []
    if status == 200:
        for line in str(text).splitlines():
            m = SAMPLE.match(line)
            if m:
                samples.append((m.group(1), dict(LABEL.findall(m.group(2)
                                                               or "")),
                                float(m.group(3))))
    return status, samples


def total(samples, name, **labels):
    """The sum of the samples of a family whose labels include labels, or
    None if there is none."""
    xs = [v for n, l, v in samples if n == name
          and all(l.get(k) == w for k, w in labels.items())]
    return sum(xs) if xs else None


def check_counters(case, api_port, sent, exact):
    """The counters against the requests sent per host: equal (exact), or
    at least as many (wrk, whose last requests may be logged though it did
    not count their answers).  metrics=off: {prefix}metrics answers 404."""
    metrics = dict(CASES)[case]
    status, samples = read_metrics(api_port)
    if metrics == "off":
        if status != 404:
            raise RuntimeError("%s: {prefix}metrics answered %d, expected "
                               "404" % (case, status))
        return "{prefix}metrics 404 as expected"
    if status != 200:
        raise RuntimeError("%s: {prefix}metrics answered %d" % (case, status))
    n_all = sum(sent.values())
    n_shop = sent["shop.example.com"]
    want = [("dynroute_table_requests_total", {"table": TABLE}, n_all),
            ("dynroute_misdirected_requests_total", {"table": TABLE}, 0),
            ("dynroute_variant_requests_total", {"rollout": ROLLOUT}, n_shop),
            ("dynroute_variant_responses_total",
             {"rollout": ROLLOUT, "code": "2xx"}, n_shop),
            ("dynroute_variant_upstream_response_seconds_count",
             {"rollout": ROLLOUT}, n_shop),
            ("dynroute_variant_fallbacks_total", {"rollout": ROLLOUT}, 0)]
    if metrics == "rules":
        want += [("dynroute_requests_total", {"table": TABLE, "rule": rule},
                  sent[host]) for _, host, rule in HOSTS]
    bad = []
    for name, labels, n in want:
        got = total(samples, name, **labels)
        ok = got is not None and (got == n if exact or n == 0 else got >= n)
        if not ok:
            bad.append("%s%r: %s, expected %s%d" % (
                name, labels, got, "" if exact or n == 0 else ">= ", n))
    per_rule = total(samples, "dynroute_requests_total")
    if metrics == "tables" and per_rule is not None:
        bad.append("dynroute_requests_total listed with metrics=tables")
    if bad:
        raise RuntimeError("%s: wrong counters:\n  %s" % (case,
                                                         "\n  ".join(bad)))
    return "%d counters as expected" % len(want)


# ---- 1. callgrind -------------------------------------------------------

def annotate(path, inclusive):
    """{function: instructions} of a callgrind output, every function listed
    (no threshold), by name without the signature; and the instructions of
    the functions of glibc's allocator (exclusive: their sum).

    callgrind can list one function under several file names (with and
    without line information, with and without its object after a dump):
    exclusive, the entries are disjoint parts of it and are summed;
    inclusive, one entry holds the others (they show as its callees) or
    repeats one, so the largest is taken."""
    r = subprocess.run(["callgrind_annotate", "--threshold=100",
                        "--auto=no",
                        "--inclusive=%s" % ("yes" if inclusive else "no"),
                        path], capture_output=True, text=True)
    costs, listing, alloc = {}, False, 0
    for line in r.stdout.splitlines():
        if line.rstrip().endswith("file:function"):
            listing = True
            continue
        if not listing:
            continue
        if not line.strip() and costs:
            break
        m = ANNOTATE.match(line)
        if m:
            where, _, fn = re.sub(r" \[[^\]]*\]$", "",
                                  m.group(2)).partition(":")
            fn = fn.split("(", 1)[0]
            n = int(m.group(1).replace(",", ""))
            costs[fn] = max(costs.get(fn, 0), n) if inclusive \
                else costs.get(fn, 0) + n
            if where.endswith(ALLOCATOR):
                alloc += n
    return costs, alloc


def calls_to(path, name):
    """How many calls to the function called name a callgrind output
    records (its cfn= names are compressed: "(id) name" once, then
    "(id)")."""
    names, n, target = {}, 0, None
    with open(path) as f:
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                target = (names.get(m.group(1)) if line.startswith("cfn=")
                          else None)
                continue
            if line.startswith("calls=") and target == name:
                n += int(line.split("=", 1)[1].split()[0])
    return n


def part_callgrind(out, ports, zone, requests):
    out = os.path.join(out, "callgrind")
    res = {}
    for case, metrics in CASES:
        port, api_port = B.free_port(), B.free_port()
        prefix = os.path.join(out, case)
        cg = os.path.join(prefix, "callgrind.out")
        nx = B.Nginx(case, prefix,
                     metrics_conf(port, api_port, ports, zone,
                                  metrics),
                     [port, api_port], master=False,
                     wrapper=["valgrind", "--tool=callgrind",
                              "--instr-atstart=no",
                              "--callgrind-out-file=" + cg])
        t0 = time.time()
        nx.start()
        try:
            try:
                sent = check_routes(port)
                pid = nx.proc.pid
                for k, (_, host, _) in enumerate(HOSTS):
                    C.send(port, host, 50)  # warm-up, not counted
                    C.control(pid, "-i", "on")
                    C.send(port, host, requests)
                    C.control(pid, "-i", "off")
                    sent[host] += 50 + requests
                    if k + 1 < len(HOSTS):
                        C.control(pid, "-d")  # this host's count, zeroed
                checked = check_counters(case, api_port, sent, exact=True)
            except (OSError, RuntimeError, subprocess.CalledProcessError):
                if nx.proc.poll() is not None:  # say why it went
                    B.log("callgrind %s: nginx exited (%s):\n%s" % (
                        case, nx.proc.returncode,
                        B.tail(os.path.join(prefix, "stderr.log"),
                               lines=25)))
                raise
        finally:
            nx.stop(signal.SIGTERM)  # QUIT may wait on idle upstreams
        Z.check_errors(nx)
        B.log("callgrind %s: %s" % (case, checked))
        # a dump on request goes to callgrind.out.1, the last one at exit
        for (hname, host, _), path in zip(HOSTS, [cg + ".1", cg]):
            inc, _ = annotate(path, True)
            own, alloc = annotate(path, False)
            res[(case, hname)] = {
                "ir": C.totals(path) / requests, "host": host,
                "log": inc.get(LOG_HANDLER, 0) / requests,
                "count": inc.get(COUNT, 0) / requests,
                "alloc": alloc / requests,
                "alloc_calls": sum(calls_to(path, fn) for fn in ALLOC_CALLS)
                / requests,
                "self": {fn: n / requests for fn, n in own.items()}}
            B.log("callgrind %-7s %-17s %8.1f instructions/request, log "
                  "handler %.1f" % (case, host, res[(case, hname)]["ir"],
                                    res[(case, hname)]["log"]))
        B.log("callgrind %s: %.0f s" % (case, time.time() - t0))
    return res


# ---- 2. wrk -------------------------------------------------------------

def part_wrk(out, ports, zone, rounds, duration, conns, warmup):
    out = os.path.join(out, "wrk")
    fronts = []
    for case, metrics in CASES:
        port, api_port = B.free_port(), B.free_port()
        nx = B.Nginx(case, os.path.join(out, case),
                     metrics_conf(port, api_port, ports, zone,
                                  metrics),
                     [port, api_port])
        nx.start()
        fronts.append({"case": case, "nginx": nx, "port": port,
                       "api": api_port, "sent": check_routes(port)})
    runs = {}
    for fr in fronts:
        for hname, host, _ in HOSTS:
            w = B.wrk(fr["port"], host, warmup, conns)
            if w["errors"] or not w["requests"]:
                raise RuntimeError("wrk warm-up %s %s: %d errors, %d "
                                   "requests" % (fr["case"], host,
                                                 w["errors"], w["requests"]))
            fr["sent"][host] += w["requests"]
            runs[(fr["case"], hname)] = []
    for r in range(rounds):
        for hname, host, _ in HOSTS:
            for fr in fronts:
                cpu0 = fr["nginx"].cpu_ns()
                res = B.wrk(fr["port"], host, duration, conns)
                res["cpu_ns"] = fr["nginx"].cpu_ns() - cpu0
                res.pop("raw")
                if res["errors"] or not res["requests"]:
                    raise RuntimeError(
                        "wrk %s %s: %d errors (non-2xx or socket), %d "
                        "requests" % (fr["case"], host, res["errors"],
                                      res["requests"]))
                fr["sent"][host] += res["requests"]
                runs[(fr["case"], hname)].append(res)
                B.log("round %d/%d %-7s %-17s %9.0f req/s  p99 %s us" % (
                    r + 1, rounds, fr["case"], host, res["rps"],
                    B.fmt(res["p99"])))
    for fr in fronts:
        B.log("wrk %s: %s" % (fr["case"], check_counters(
            fr["case"], fr["api"], fr["sent"], exact=False)))
        Z.check_errors(fr["nginx"])
        fr["nginx"].stop()
    return runs


# ---- report -------------------------------------------------------------

def diff_rows(cg, case, hname, n):
    """The n functions whose exclusive instructions per request differ most
    from off's, same host."""
    a, b = cg[("off", hname)]["self"], cg[(case, hname)]["self"]
    d = [(fn, b.get(fn, 0.0) - a.get(fn, 0.0)) for fn in set(a) | set(b)]
    d = [x for x in d if abs(x[1]) >= 0.5]
    d.sort(key=lambda x: -abs(x[1]))
    return [[case, cg[(case, hname)]["host"], fn, "%.1f" % a.get(fn, 0.0),
             "%.1f" % b.get(fn, 0.0), "%+.1f" % delta]
            for fn, delta in d[:n]]


def report(machine, knobs, cg, runs, n_diff):
    k = dict(knobs)
    lines = ["dynroute_zone metrics=; %s" % machine, "",
             "Knobs: " + ", ".join("%s=%s" % kv for kv in knobs), ""]
    if cg:
        rows = []
        for hname, host, _ in HOSTS:
            off = cg[("off", hname)]
            base = off["ir"]
            for case, _ in CASES:
                x = cg[(case, hname)]
                d_mal = (x["ir"] - x["alloc"]) - (base - off["alloc"])
                rows.append([case, host, "%.1f" % x["ir"],
                             "%+.1f" % (x["ir"] - base),
                             "%.4f" % (x["ir"] / base),
                             "%+.2f %%" % (100.0 * (x["ir"] - base) / base),
                             "%.1f" % x["log"], "%.1f" % x["count"],
                             "%.2f %%" % (100.0 * x["log"] / base),
                             "%.1f (%.2f calls)" % (x["alloc"],
                                                    x["alloc_calls"]),
                             "%+.1f (%+.2f %%)" % (d_mal,
                                                   100.0 * d_mal / base)])
        lines += ["## Instructions per request (callgrind, %d requests on "
                  "one keep-alive connection, whole nginx process)"
                  % k["requests"], "",
                  B.table(["case", "Host", "instructions/request",
                           "Δ vs off", "× off", "Δ %",
                           "log handler (incl.)",
                           "of which metrics_count (incl.)",
                           "log handler / off",
                           "allocator (calls)",
                           "Δ vs off without the allocator"], rows),
                  "",
                  "The log handler's inclusive cost is the counting itself. "
                  "The allocator (glibc's malloc.c: malloc, posix_memalign, "
                  "free and what they call) is called as often in every "
                  "case, but its cost follows the heap's history, which the "
                  "configuration changes: the last column leaves it out.",
                  ""]
        diff = []
        for hname, _, _ in HOSTS:
            for case, _ in CASES[1:]:
                diff += diff_rows(cg, case, hname, n_diff)
        lines += ["Functions whose own (exclusive) instructions per request "
                  "differ most from off's, same Host (|Δ| ≥ 0.5; the "
                  "%d largest per case and Host):" % n_diff, "",
                  B.table(["case", "Host", "function", "off", "case", "Δ"],
                          diff), ""]
    if runs:
        rows = []
        for hname, host, _ in HOSTS:
            base = runs[("off", hname)]
            for case, _ in CASES:
                rs = runs[(case, hname)]
                rps = [x["rps"] for x in rs]
                by_rps = [a["rps"] / b["rps"] for a, b in zip(rs, base)
                          if b["rps"] > 0]
                cpu = [x["cpu_ns"] / 1e3 / x["requests"] for x in rs]
                by_cpu = [(b["cpu_ns"] / b["requests"])
                          / (a["cpu_ns"] / a["requests"])
                          for a, b in zip(rs, base) if a["cpu_ns"]]
                rows.append([case, host, B.fmt(B.median(rps)),
                             "%.0f–%.0f" % (min(rps), max(rps)),
                             B.fmt(B.median([x["p50"] for x in rs])),
                             B.fmt(B.median([x["p99"] for x in rs])),
                             e2e.span(by_rps, "%.3f"),
                             B.fmt(B.median(cpu), "%.1f"),
                             e2e.span(by_cpu, "%.3f")])
        lines += ["## Throughput (wrk -t1 -c%d, %d rounds of %g s per case "
                  "and Host, interleaved; master and one worker pinned to "
                  "the server core; noisy: read the ratios, and callgrind "
                  "first)" % (k["connections"], k["rounds"], k["duration"]),
                  "",
                  B.table(["case", "Host", "req/s median", "req/s min–max",
                           "p50 µs", "p99 µs",
                           "× off by req/s, per round: median (min–max)",
                           "front CPU µs/req",
                           "× off by CPU/req, per round"], rows), ""]
    lines += ["Cases (the e2e front %s: the small table, shop.example.com "
              "-> a 90/10 rollout on service_a, proxy_pass "
              "http://$dynroute_upstream; a read-only dynroute_api in a "
              "server of its own):" % FRONT]
    lines += ["- %s: %s" % (n, NOTES[n].replace("SIZE", k["zone"]))
              for n, _ in CASES]
    lines += ["", "Hosts: a.example.com, a plain rule; shop.example.com, "
              "the rollout's rule (all requests from 127.0.0.1 without a "
              "cookie: one variant, by weight)."]
    return "\n".join(lines)


def main():
    t_start = time.time()
    global CASES
    parts = os.environ.get("BENCH_METRICS_PARTS", "callgrind,wrk").split(",")
    only = os.environ.get("BENCH_METRICS_CASES", "off,tables,rules").split(",")
    CASES = [c for c in ALL_CASES if c[0] == "off" or c[0] in only]
    zone = os.environ.get("BENCH_METRICS_ZONE_SIZE", "1m")
    n_diff = B.env_int("BENCH_METRICS_DIFF", 12)
    requests = B.env_int("BENCH_CALLGRIND_REQUESTS", 2000)
    rounds = B.env_int("BENCH_ROUNDS", 5)
    duration = B.env_float("BENCH_DURATION", 3)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    warmup = B.env_float("BENCH_WARMUP", 1)
    machine = B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "metrics"))
    knobs = [("cases", ",".join(c[0] for c in CASES)), ("zone", zone),
             ("requests", requests), ("rounds", rounds),
             ("duration", duration), ("connections", conns)]
    B.fresh_dir(out)
    ports, backends = B.backends(out)
    cg = runs = None
    try:
        backends.start()
        if "callgrind" in parts:
            cg = part_callgrind(out, ports, zone, requests)
        if "wrk" in parts:
            runs = part_wrk(out, ports, zone, rounds, duration, conns,
                            warmup)
        Z.check_errors(backends)
    finally:
        B.stop_all()
    text = report(machine, knobs, cg, runs, n_diff)
    text += "\n\nRun time: %.0f s\n" % (time.time() - t_start)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
