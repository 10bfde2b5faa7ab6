#!/usr/bin/python3
"""TLS passthrough by SNI (issue 26): dynroute's stream table against
ssl_preread + map over the same table, in one run.

Two to four nginx stream configurations over the same 100-rule table
(90 exact names, 4 "*.x" wildcards, a ".x" name, a "x.*" name, 3 regexes
two of them with named captures, a default), each a master and one worker
pinned to the server core, proxying to the same four upstreams u0..u3:

  map                ssl_preread on; map $ssl_preread_server_name $up {
                     hostnames; <the table> }  proxy_pass $up;
  dynroute           ssl_preread on; dynroute_table sni { <the table> }
                     dynroute sni;  proxy_pass $dynroute_upstream;
  dynroute-balancer  the same table, proxy_pass sni_pass; with
                     upstream sni_pass { dynroute_balancer; }
  dynroute-metrics   dynroute, with an http{} that has a dynroute_zone:
                     every session counted by table and rule

Both load the stream module and the dynroute .so, so that they differ only
by their configuration, and both have "pcre_jit on;" (nginx's default is
off; dynroute's regexes are always JIT-compiled): map's regexes are
compiled as well as they can be.  No TLS is done anywhere: the client sends a real
ClientHello with SNI (built here as OpenSSL 3's s_client sends it: 31
cipher suites, 10 extensions, an x25519 key share), nginx reads it
(ssl_preread), decides, connects to the upstream and forwards it; the
backend (bench/stream_load.c serve, one listener per upstream) reads the
record, answers its upstream's name and closes; nginx closes the client,
which checks the answer and resets (no TIME_WAIT on the client's ports).

1. check: every name sent must reach its expected upstream through each
   front (stream_load check), and the load below checks every answer too;
2. throughput: bounded rounds, the fronts in turn (map, dynroute, ...
   then the other way round in the next round), stream_load on the client
   core with BENCH_CONNECTIONS at a time, for BENCH_DURATION seconds each,
   cycling over 20 names (13 exact, 3 wildcards, a ".x", 2 regexes, an
   unknown name that takes the default): connections per second, and the
   CPU time of the front's worker (/proc/PID/task/*/schedstat, in ns) per
   connection; the ratios to map are computed within each round;
3. callgrind: each front again as one process (master_process off) under
   valgrind --tool=callgrind --instr-atstart=no; for each kind of name
   (exact, wildcard, regex, default, and the mix of 2.) instrumentation is
   switched on for N connections, one at a time, then for 2N, each count
   dumped: (count(2N) - count(N)) / N is the instructions of one
   connection, whole process, with whatever a count costs by itself
   cancelled out.  The functions whose exclusive instructions differ most
   from map's are listed: where the difference goes.

Results: BENCH_OUT/results.md (and results.json).

Knobs: BENCH_ROUNDS (8), BENCH_DURATION (seconds, 3), BENCH_WARMUP
(seconds, 0.5), BENCH_CONNECTIONS (32), BENCH_STREAM_FRONTS (comma
separated, map always), BENCH_STREAM_CALLGRIND (N, 1000; 0: skip),
BENCH_STREAM_KINDS (callgrind kinds, all), BENCH_STREAM_DIFF (functions
listed per kind, 8), STREAM_MODULE (the stream .so loaded first when
nginx has stream as a dynamic module), STREAM_LOAD (the compiled client),
BENCH_OUT; MODULE, NGINX.
"""

import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import callgrind as C  # noqa: E402
import cost  # noqa: E402

STREAM_MODULE = os.environ.get(
    "STREAM_MODULE", "/usr/lib/nginx/modules/ngx_stream_module.so")
if "--with-stream=dynamic" not in subprocess.run(
        [B.NGINX, "-V"], capture_output=True, text=True).stderr:
    STREAM_MODULE = ""  # compiled in (or absent: nginx -t will say)
STREAM_LOAD = os.environ.get(
    "STREAM_LOAD", os.path.join(B.REPO, "build", "bench", "stream_load"))

UPSTREAMS = ["u0", "u1", "u2", "u3"]


# ---- the table ------------------------------------------------------------

def exact_name(i):
    return "svc-%d.team-%d.example.com" % (i, i % 7)


def rules():
    """The 100 rules, (pattern, upstream), in the order written."""
    r = [(exact_name(i), UPSTREAMS[i % 4]) for i in range(90)]
    r += [("*.w%d.example.net" % i, UPSTREAMS[(i + 1) % 4])
          for i in range(4)]
    r += [(".legacy.example.org", "u2"), ("mail.example.*", "u3")]
    r += [(r"~^(?<tenant>[a-z0-9]+)\.t\.example\.org$", "u1"),
          (r"~^api-[0-9]+\.example\.io$", "u2"),
          (r"~^(?<region>[a-z]+)-edge\.example\.org$", "u3")]
    r += [("default", "u0")]
    assert len(r) == 100
    return r


# One name of each kind, what it must reach; the callgrind counts.
KINDS = [
    ("exact", exact_name(45), "u1"),
    ("wildcard", "api.w2.example.net", "u3"),
    ("regex", "eu-edge.example.org", "u3"),   # the last regex
    ("default", "unknown.example.com", "u0"),
]


def mix():
    """The 20 names of the throughput runs, with their upstreams."""
    names = [(exact_name(i), UPSTREAMS[i % 4])
             for i in (0, 7, 13, 22, 31, 38, 45, 51, 60, 67, 74, 81, 86)]
    names += [("api.w0.example.net", "u1"), ("a.b.w3.example.net", "u0"),
              ("mail.example.de", "u3"), ("legacy.example.org", "u2"),
              ("acme.t.example.org", "u1"), ("eu-edge.example.org", "u3"),
              ("unknown.example.com", "u0")]
    assert len(names) == 20
    return names


# ---- ClientHello ----------------------------------------------------------

def _ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def _vec16(body):
    return struct.pack("!H", len(body)) + body


def client_hello(name, seed=0):
    """A TLS 1.3 ClientHello record with SNI `name`, as OpenSSL 3's
    s_client sends it (about 300 bytes); random, session id and key share
    are fixed bytes (nobody completes the handshake)."""
    suites = bytes.fromhex(
        "130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023"
        "c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff")
    sigalgs = bytes.fromhex(
        "040305030603080708080809080a080b080408050806040105010601"
        "030303010302040205020602")
    host = name.encode()
    exts = b"".join([
        _ext(0x0000, _vec16(b"\x00" + _vec16(host))),            # SNI
        _ext(0x000b, b"\x03\x00\x01\x02"),                        # ec points
        _ext(0x000a, _vec16(bytes.fromhex("001d0017001e00190018"))),
        _ext(0x0023, b""),                                        # ticket
        _ext(0x0016, b""),                                        # etm
        _ext(0x0017, b""),                                        # ems
        _ext(0x000d, _vec16(sigalgs)),
        _ext(0x002b, b"\x04\x03\x04\x03\x03"),                    # versions
        _ext(0x002d, b"\x01\x01"),                                # psk modes
        _ext(0x0033, _vec16(b"\x00\x1d" + _vec16(bytes(
            (seed + i) & 0xff for i in range(32))))),             # x25519
    ])
    body = (b"\x03\x03" + bytes((seed * 7 + i) & 0xff for i in range(32))
            + b"\x20" + bytes((seed * 13 + i) & 0xff for i in range(32))
            + _vec16(suites) + b"\x01\x00" + _vec16(exts))
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def write_names(out, label, names):
    """HELLOS and ANSWERS files of stream_load for [(name, upstream)]."""
    hellos = os.path.join(out, label + ".hellos")
    answers = os.path.join(out, label + ".answers")
    with open(hellos, "wb") as f:
        for k, (name, _) in enumerate(names):
            f.write(client_hello(name, k))
    with open(answers, "w") as f:
        for _, up in names:
            f.write(up + "\n")
    return hellos, answers


# ---- configurations -------------------------------------------------------

def write_rules(path):
    with open(path, "w") as f:
        for pattern, up in rules():
            f.write("    %-45s %s;\n" % (pattern, up))
    return path


FRONTS = {
    "map": """\
    map $ssl_preread_server_name $up {
        hostnames;
        include @RULES@;
    }

    server {
        listen 127.0.0.1:@PORT@;
        ssl_preread on;
        proxy_pass $up;
    }
""",
    "dynroute": """\
    dynroute_table sni {
        include @RULES@;
    }

    server {
        listen 127.0.0.1:@PORT@;
        ssl_preread on;
        dynroute sni;
        proxy_pass $dynroute_upstream;
    }
""",
    "dynroute-metrics": """\
    dynroute_table sni {
        include @RULES@;
    }

    server {
        listen 127.0.0.1:@PORT@;
        ssl_preread on;
        dynroute sni;
        proxy_pass $dynroute_upstream;
    }
""",
    "dynroute-balancer": """\
    dynroute_table sni {
        include @RULES@;
    }

    upstream sni_pass {
        dynroute_balancer;
    }

    server {
        listen 127.0.0.1:@PORT@;
        ssl_preread on;
        dynroute sni;
        proxy_pass sni_pass;
    }
""",
}

CONF = """\
{load_stream}
load_module {module};
daemon off;
master_process {master};
pcre_jit on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

{http}
stream {{
{upstreams}
{front}}}
"""

# the fronts with an http dynroute_zone: their stream sessions are counted
# there (metrics=rules, the default)
HTTP = {
    "dynroute-metrics": "http {\n    dynroute_zone bench 1m;\n}\n",
}


def front_nginx(name, out, port, rules_path, backend_ports, master=True,
                wrapper=None):
    prefix = os.path.join(out, name)
    nx = B.Nginx(name, prefix, "", [port], module=False, master=master,
                 wrapper=wrapper)
    ups = "".join("    upstream %s {\n        server 127.0.0.1:%d;\n    }\n"
                  % (u, backend_ports[u]) for u in UPSTREAMS)
    with open(nx.conf, "w") as f:
        f.write(CONF.format(
            load_stream=("load_module %s;" % STREAM_MODULE
                         if STREAM_MODULE else ""),
            module=B.MODULE, master="on" if master else "off",
            user="user root;" if os.geteuid() == 0 else "",
            prefix=prefix, upstreams=ups, http=HTTP.get(name, ""),
            front=FRONTS[name].replace("@RULES@", rules_path)
                              .replace("@PORT@", str(port))))
    return nx


class Backend:
    """stream_load serve: one listener per upstream, answering its name."""

    def __init__(self, out):
        self.ports = {u: B.free_port() for u in UPSTREAMS}
        self.log = os.path.join(out, "backend.log")
        self.proc = None

    def start(self):
        args = ["%d:%s" % (p, u) for u, p in sorted(self.ports.items())]
        self.proc = subprocess.Popen(
            ["taskset", "-c", B.SERVER_CPU, STREAM_LOAD, "serve",
             "-t", "7200"] + args,
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        for p in self.ports.values():
            if not B.wait_listen(p, self.proc, 10):
                raise RuntimeError("the backend did not start: "
                                   + B.tail(self.log))

    def cpu_ns(self):
        return B.cpu_ns(self.proc.pid) if self.proc else 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_load(port, hellos, answers, duration=None, count=None, conns=1,
             cpu=None):
    cmd = (["taskset", "-c", cpu or B.CLIENT_CPU, STREAM_LOAD, "load",
            "-p", str(port), "-f", hellos, "-c", str(conns)]
           + (["-e", answers] if answers else [])
           + (["-d", str(duration)] if duration else ["-d", "3600"])
           + (["-n", str(count)] if count else []))
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=(duration or 3600) + 60)
    if r.returncode != 0:
        raise RuntimeError("stream_load: " + r.stderr.strip())
    res = dict(kv.split("=") for kv in r.stdout.split())
    return {"connections": int(res["connections"]),
            "errors": int(res["errors"]),
            "seconds": float(res["seconds"]),
            "p50": int(res["p50_us"]), "p99": int(res["p99_us"])}


def check(port, name, names, out):
    """Every name of `names` reaches its upstream through this front."""
    hellos, _ = write_names(out, "check-" + name, names)
    r = subprocess.run([STREAM_LOAD, "check", "-p", str(port), "-f", hellos],
                       capture_output=True, text=True, timeout=120)
    got = r.stdout.splitlines()
    bad = ["%s -> %r, expected %s" % (n, g, u)
           for (n, u), g in zip(names, got + [""] * len(names)) if g != u]
    if r.returncode != 0 or bad:
        raise RuntimeError("%s routes wrongly:\n  %s%s" % (
            name, "\n  ".join(bad), r.stderr))
    B.log("check %-18s %d names, each to its upstream: ok"
          % (name, len(names)))


def client_s():
    """CPU seconds of the finished children (stream_load: taskset execs
    it in the same process)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def worker_ns(nx):
    return sum(B.cpu_ns(p) for p in nx.pids()[1:])


# ---- throughput -----------------------------------------------------------

def throughput(names, out, backend, rules_path, rounds, duration, warmup,
               conns):
    hellos, answers = write_names(out, "mix", mix())
    fronts = []
    try:
        for name in names:
            port = B.free_port()
            nx = front_nginx(name, out, port, rules_path, backend.ports)
            nx.start()
            fronts.append({"name": name, "port": port, "nginx": nx,
                           "runs": []})
        for f in fronts:
            check(f["port"], f["name"], mix() + [(n, u) for _, n, u in KINDS],
                  out)
        for f in fronts:
            if warmup > 0:
                run_load(f["port"], hellos, answers, warmup, conns=conns)
        for r in range(rounds):
            order = fronts if r % 2 == 0 else list(reversed(fronts))
            for f in order:
                cpu0 = worker_ns(f["nginx"])
                be0 = backend.cpu_ns()
                cl0 = client_s()
                res = run_load(f["port"], hellos, answers, duration,
                               conns=conns)
                res["cpu_ns"] = worker_ns(f["nginx"]) - cpu0
                res["backend_ns"] = backend.cpu_ns() - be0
                res["client_s"] = client_s() - cl0
                res["cps"] = res["connections"] / res["seconds"]
                f["runs"].append(res)
                B.log("round %d/%d %-18s %8.0f conn/s  %6.2f us CPU/conn  "
                      "p99 %d us  errors %d" % (
                          r + 1, rounds, f["name"], res["cps"],
                          res["cpu_ns"] / 1e3 / max(1, res["connections"]),
                          res["p99"], res["errors"]))
        for f in fronts:
            errs = f["nginx"].errors()
            if errs:
                raise RuntimeError("%s error.log:\n  %s" % (
                    f["name"], "\n  ".join(errs)))
    finally:
        for f in fronts:
            f["nginx"].stop()
    return fronts


# ---- callgrind ------------------------------------------------------------

def under_callgrind(name, out, backend, rules_path, n, kinds):
    """{kind: (instructions/connection, Profile of the 2N count minus the
    N count, as per-connection exclusive costs)}."""
    port = B.free_port()
    cgdir = os.path.join(out, "callgrind")
    os.makedirs(cgdir, exist_ok=True)
    cg = os.path.join(cgdir, name + ".out")
    nx = front_nginx(name, cgdir, port, rules_path, backend.ports,
                     master=False,
                     wrapper=["valgrind", "--tool=callgrind",
                              "--instr-atstart=no",
                              "--callgrind-out-file=" + cg])
    t0 = time.time()
    nx.start()
    dumps = []
    try:
        pid = nx.proc.pid
        for kind, names in kinds:
            hellos, answers = write_names(cgdir, "%s-%s" % (name, kind),
                                          names)
            run_load(port, hellos, answers, count=20)    # warm-up
            for count in (n, 2 * n):
                C.control(pid, "-i", "on")
                res = run_load(port, hellos, answers, count=count)
                C.control(pid, "-i", "off")
                C.control(pid, "-d")
                if res["connections"] != count or res["errors"]:
                    raise RuntimeError("%s %s: %r" % (name, kind, res))
                dumps.append((kind, count))
                B.log("callgrind %s %s: %d connections in %.2f s"
                      % (name, kind, count, res["seconds"]))
    finally:
        nx.stop(signal.SIGTERM)
    errs = nx.errors()
    if errs:
        raise RuntimeError("%s error.log:\n  %s" % (name, "\n  ".join(errs)))
    profiles = {key: cost.Profile("%s.%d" % (cg, i + 1))
                for i, key in enumerate(dumps)}
    res = {}
    for kind, _ in kinds:
        one, two = profiles[(kind, n)], profiles[(kind, 2 * n)]
        per = (two.total - one.total) / float(n)
        excl = {fn: (two.excl.get(fn, 0) - one.excl.get(fn, 0)) / float(n)
                for fn in set(one.excl) | set(two.excl)}
        res[kind] = {"per": per, "excl": excl,
                     "raw": (one.total / float(n), two.total / (2.0 * n))}
    B.log("callgrind %-18s measured in %.0f s: %s" % (
        name, time.time() - t0, ", ".join(
            "%s %.0f" % (k, v["per"]) for k, v in res.items())))
    return res


def top_diff(base, other, top):
    d = []
    for fn in set(base) | set(other):
        delta = other.get(fn, 0) - base.get(fn, 0)
        if abs(delta) >= 0.5:
            d.append((fn, base.get(fn, 0), other.get(fn, 0), delta))
    d.sort(key=lambda x: -abs(x[3]))
    return d[:top]


# ---- report ---------------------------------------------------------------

def span(xs, spec="%.3f"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return (spec + " (" + spec + "–" + spec + ")") % (
        B.median(xs), min(xs), max(xs))


def report(fronts, cg, out, knobs, top):
    lines = ["# make bench-stream", "",
             B.machine(), "",
             "The table: 100 rules (90 exact names, 4 `*.x`, a `.x`, a "
             "`x.*`, 3 regexes, a default), in `map hostnames` and in a "
             "`dynroute_table`, the same file included by both. %s." % knobs,
             ""]
    summary = {"machine": B.machine(), "fronts": {}, "callgrind": {}}
    if fronts:
        base = next(f for f in fronts if f["name"] == "map")
        rows = []
        for f in fronts:
            cps = [r["cps"] for r in f["runs"]]
            cpu = [r["cpu_ns"] / 1e3 / max(1, r["connections"])
                   for r in f["runs"]]
            rc = [a["cps"] / b["cps"] for a, b in zip(f["runs"], base["runs"])
                  if b["cps"] > 0]
            bcpu = [r["cpu_ns"] / max(1, r["connections"])
                    for r in base["runs"]]
            ru = [(r["cpu_ns"] / max(1, r["connections"])) / b
                  for r, b in zip(f["runs"], bcpu) if b > 0]
            busy = "%.0f / %.0f / %.0f" % (
                B.median([100.0 * r["cpu_ns"] / 1e9 / r["seconds"]
                          for r in f["runs"]]),
                B.median([100.0 * r["backend_ns"] / 1e9 / r["seconds"]
                          for r in f["runs"]]),
                B.median([100.0 * r["client_s"] / r["seconds"]
                          for r in f["runs"]]))
            rows.append([f["name"], span(cps, "%.0f"),
                         "%d / %d" % (B.median([r["p50"] for r in f["runs"]]),
                                      B.median([r["p99"] for r in f["runs"]])),
                         span(rc), span(cpu, "%.2f"), span(ru), busy,
                         sum(r["errors"] for r in f["runs"])])
            summary["fronts"][f["name"]] = {
                "cps": cps, "cpu_us_per_conn": cpu, "cps_ratio": rc,
                "cpu_ratio": ru,
                "errors": sum(r["errors"] for r in f["runs"])}
        lines += ["## Connections per second and the worker's CPU per "
                  "connection", "",
                  "Ratios to `map` computed within each round; median "
                  "(min–max) over the rounds. × map by CPU: the worker's "
                  "CPU per connection over map's (lower is cheaper). "
                  "CPU %: of one core, medians over the rounds (the "
                  "worker and the backend share the server core).", "",
                  B.table(["front", "conn/s", "p50 / p99 µs", "× map conn/s",
                           "worker CPU µs/conn", "× map CPU/conn",
                           "CPU % worker / backend / client", "errors"],
                          rows), ""]
    if cg:
        kinds = list(next(iter(cg.values())).keys())
        base = cg.get("map")
        rows = []
        for kind in kinds:
            row = [kind]
            for name in cg:
                per = cg[name][kind]["per"]
                row.append("%.0f" % per)
                if name != "map" and base:
                    b = base[kind]["per"]
                    row.append("%+.0f (%+.2f %%)" % (per - b,
                                                     100.0 * (per - b) / b))
            rows.append(row)
            summary["callgrind"][kind] = {
                name: cg[name][kind]["per"] for name in cg}
        heads = ["name sent"]
        for name in cg:
            heads.append(name)
            if name != "map" and base:
                heads.append("Δ %s vs map" % name)
        lines += ["## Instructions per connection (callgrind)", "",
                  "The whole nginx process, one connection at a time: "
                  "(count of 2N connections − count of N) / N.", "",
                  B.table(heads, rows), ""]
        if base:
            for name in cg:
                if name == "map":
                    continue
                lines += ["### Where %s differs from map (exclusive "
                          "instructions per connection)" % name, ""]
                for kind in kinds:
                    d = top_diff(base[kind]["excl"], cg[name][kind]["excl"],
                                 top)
                    lines += ["%s:" % kind, "",
                              B.table(["function", "map", name, "Δ"],
                                      [[fn, "%.0f" % a, "%.0f" % b,
                                        "%+.0f" % x] for fn, a, b, x in d]),
                              ""]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)


def main():
    rounds = B.env_int("BENCH_ROUNDS", 8)
    duration = B.env_float("BENCH_DURATION", 3)
    warmup = B.env_float("BENCH_WARMUP", 0.5)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    n_cg = B.env_int("BENCH_STREAM_CALLGRIND", 1000)
    top = B.env_int("BENCH_STREAM_DIFF", 8)
    only = [x for x in os.environ.get("BENCH_STREAM_FRONTS", "").split(",")
            if x]
    names = [n for n in FRONTS if not only or n in only or n == "map"]
    want = [x for x in os.environ.get("BENCH_STREAM_KINDS", "").split(",")
            if x]
    kinds = [(k, [(n, u)]) for k, n, u in KINDS] + [("mix", mix())]
    kinds = [k for k in kinds if not want or k[0] in want]
    if not os.access(STREAM_LOAD, os.X_OK):
        sys.exit("%s: not built (make bench-stream builds it)" % STREAM_LOAD)
    B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "stream"))
    B.fresh_dir(out)
    rules_path = write_rules(os.path.join(out, "rules.conf"))
    backend = Backend(out)
    fronts, cg = [], {}
    try:
        backend.start()
        if rounds > 0:
            fronts = throughput(names, out, backend, rules_path, rounds,
                                duration, warmup, conns)
        if n_cg > 0:
            for name in names:
                cg[name] = under_callgrind(name, out, backend, rules_path,
                                           n_cg, kinds)
    finally:
        B.stop_all()
        backend.stop()
    knobs = ("%d rounds of %g s per front, %d connections at a time, "
             "%g s of warm-up; callgrind: N = %d" % (
                 rounds, duration, conns, warmup, n_cg))
    report(fronts, cg, out, knobs, top)


if __name__ == "__main__":
    main()
