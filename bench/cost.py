#!/usr/bin/python3
"""What the decision costs a request, in every configuration, against a
static proxy_pass to the same upstream: instructions per request of the
whole nginx process under callgrind, for one module (MODULE=), so that two
builds can be run side by side.

Every configuration passes through `upstream edge_pass { dynroute_balancer;
}` and `proxy_pass http://edge_pass;` (no variable, no URL parsing, no
search of the upstreams by name), on the backends of bench/e2e.py
(service_a answers "a", service_b "b", keepalive 32):
  exact       the small table of bench/e2e.py, Host a.example.com;
  wildcard    the same table, Host api.a.example.com (*.a.example.com);
  regex       the table plus ~^(?<tenant>[a-z0-9]+)\\.t\\.example\\.org$,
              Host acme.t.example.org, the capture sent upstream
              (proxy_set_header X-Tenant $tenant);
  rollout     the table plus shop.example.com -> a 90/10 rollout keyed on
              $cookie_uid then $remote_addr (an override header, trusted
              from 127.0.0.1), both variants on service_a, the request
              carrying a uid cookie;
  zone        the table, dynroute_zone with 100,000 runtime hosts loaded
              through the API (in a server of its own), Host a.example.com
              (a name of the table: the runtime hosts are searched first);
  zone-rt     the same process, Host r.example.com, a runtime host;
  metrics     the table and dynroute_zone metrics=rules, Host
              a.example.com.
  servers-N   (N = 2, 100, 10000) no decision: proxy_pass http://group,
              an upstream{} with dynroute_servers and N "server" lines
              (the seeded list: every one service_a's address, so that
              keepalive 32 serves them all and nginx's loop over the N
              servers is what grows), against proxy_pass to the same
              upstream{} without dynroute_servers.
  servers-100-hash  the same with dynroute_servers hash=$arg_k, against
              the same upstream{} with nginx's hash $arg_k consistent;
              the 100 lines are service_a's address written 100 ways
              (127.00.0.1, ...: nginx's parser takes leading zeros), so
              that each is a server of its own name on the ring; the
              request is GET /?k=user-4711.
  servers-N-rt  (N = 2, 100, 10000) the same, the list set at run time
              through the API (PUT {prefix}upstreams/NAME/servers, before
              the count) over one server line: a list cannot name an
              address twice, so its servers are service_a and N - 1 more
              addresses (127.0.1.x, 127.0.2.x, ...) that are down (nginx's
              loop still walks them: its first test of a server is
              "tried", then "down"); against the same
              N servers as server lines in an upstream{} without
              dynroute_servers.
The baseline of each is `proxy_pass http://service_a;` (servers-N: its
static twin) in an nginx without the module, sent the same request (Host and headers; for regex the same
X-Tenant header, as a constant), every baseline counted in one process
(the first counted again at the end: the same request after a different
history).  `static+module` is the same static location with the module
loaded but unused: what loading it costs every request (its filters).

nginx's own equivalents, without the module (no load_module), each the
same decision made the way nginx itself makes it, sent the same request
and counted against the same static baseline (the count of the module's
case when both run, else one of its own in the static process), reported
in a table of their own:
  map-exact     map $host $edge_up { hostnames; } with the small table of
                bench/e2e.py (its map front), proxy_pass http://$edge_up,
                Host a.example.com (nginx's way of exact);
  map-wildcard  the same map, Host api.a.example.com (of wildcard);
  map-regex     the same map plus the regex of regex, JIT-compiled as the
                module's always is (pcre_jit on; nginx's default is off),
                the capture sent upstream (proxy_set_header X-Tenant
                $tenant), Host acme.t.example.org (of regex);
  split-cookie  split_clients "${cookie_uid}" $edge_up { 10% service_a;
                * service_a; }, proxy_pass http://$edge_up, Host
                shop.example.com with the same uid cookie (of rollout; no
                fallback key and no override header).
Their figure includes what a variable in proxy_pass makes nginx do for
every request, as part of nginx's own way: evaluate the variable, parse
the URL and search the upstreams by name (the module's cases avoid it
through dynroute_balancer).  They have no module share; the report puts
next to each the Δ of the module's case and the difference between the
two configuration figures.

Each nginx is a single process (master_process off) under valgrind
--tool=callgrind --instr-atstart=no; after 50 requests of warm-up on one
keep-alive connection, instrumentation is switched on for R requests and
off again (callgrind_control), and each count but the last is dumped
(callgrind_control -d) before the next one's warm-up.  From each profile
(read here, not through callgrind_annotate, so that calls are followed by
object): instructions per request; the module's share, every instruction
executed in the module's object plus the calls it makes out of it, except
the calls that static makes as well (the chosen upstream's peer
initialisation, the next filter of a chain); the allocator (glibc's
malloc.c, exclusive) and its calls; and, per configuration, the functions
whose exclusive instructions differ most from its baseline.

Any unexpected status or answer, or an [alert]/[crit]/[emerg] line, stops
the run.  Results go to BENCH_OUT/results.md (and results.json).

Knobs: BENCH_CALLGRIND_REQUESTS (2000), BENCH_COST_CASES (comma separated,
all, nginx's own equivalents included), BENCH_COST_HOSTS (runtime hosts, 100000), BENCH_COST_CHUNK (hosts per
PATCH, 5000), BENCH_COST_DIFF (functions listed per case, 10),
BENCH_COST_LABEL (names the module in the report, default its path),
BENCH_COST_STATIC_MODULE (1: also count static+module; 0: not),
BENCH_COST_HTTP (http{}-level directives added to every process, static
and configurations alike, e.g. "request_pool_size 16k;"), BENCH_OUT;
MODULE, NGINX.

  python3 bench/cost.py compare A/results.json B/results.json ...

prints the runs side by side (the same cases, one column group a run;
nginx's own equivalents in a table of their own, when a run has them).
"""

import collections
import http.client
import json
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

BALANCER = ("    upstream edge_pass {\n        dynroute_balancer;\n    }\n")
PASS = "dynroute edge;\n            proxy_pass http://edge_pass;"
STATIC = "proxy_pass http://service_a;"

REGEX_RULE = ("        ~^(?<tenant>[a-z0-9]+)\\.t\\.example\\.org$  "
              "service_a;\n")
ROLLOUT = ("    dynroute_rollout shop {\n"
           "        variant  stable  service_a  *;\n"
           "        variant  canary  service_a  10%;\n"
           "        key      $cookie_uid $remote_addr;\n"
           "        header   X-Canary;\n"
           "        override_from 127.0.0.1;\n"
           "    }\n")


def table(extra=""):
    return "    dynroute_table edge {\n%s%s    }\n" % (e2e.SMALL_RULES, extra)


def case(name, http, host, headers=None, location=PASS, static=STATIC,
         zone=None, hosts=False, counts=None, note="", static_http="",
         uri="/"):
    """One configuration.  counts: [(name, Host)] counted in its process,
    by default [(name, host)].  static_http: upstream{} blocks that the
    static process needs for its location `static`.  In http and
    static_http, SERVICE_A_PORT stands for service_a's port.  uri: what
    every request of the case (and of its baseline) asks for."""
    return {"name": name, "http": BALANCER + http, "host": host,
            "headers": headers or {}, "location": location, "uri": uri,
            "static": static, "zone": zone, "hosts": hosts,
            "counts": counts or [(name, host)], "note": note,
            "module": True, "equivalent": None, "main": "",
            "static_http": static_http}


def reference(name, equivalent, http, location, host, headers=None,
              static=STATIC, main="", note=""):
    """nginx's own way of making the decision of the module's case
    `equivalent`: a process without the module (no load_module), the same
    request and the same static baseline.  main: main-context directives
    of that process."""
    c = case(name, "", host, headers=headers, location=location,
             static=static, note=note)
    c.update(http=http, module=False, equivalent=equivalent, main=main)
    return c


def host_map(extra=""):
    """The map front of bench/e2e.py: map $host { hostnames; } with the
    small table (the same names to the same upstreams), plus extra lines,
    into $edge_up."""
    return ("    map $host $edge_up {\n        hostnames;\n%s%s    }\n"
            % (e2e.SMALL_RULES, extra))


SPLIT = ("    split_clients \"${cookie_uid}\" $edge_up {\n"
         "        10%  service_a;\n"
         "        *    service_a;\n"
         "    }\n")
VAR_PASS = "proxy_pass http://$edge_up;"


TENANT = "proxy_set_header X-Tenant %s;"


def servers_case(n, hash_=False):
    """servers-N: an upstream{} of N servers with dynroute_servers, its
    twin without, both keepalive 32.  hash_: servers-N-hash, with
    hash=$arg_k against nginx's hash $arg_k consistent, over N names of
    service_a's address (leading zeros), a server each on the ring."""
    if hash_:
        lines = "".join("        server 127.%s0.%s0.1:SERVICE_A_PORT;\n"
                        % ("0" * (i % 10), "0" * (i // 10))
                        for i in range(n))
        name, method, twin_method = ("servers-%d-hash" % n, " hash=$arg_k",
                                     "        hash $arg_k consistent;\n")
        tag = "%d_hash" % n
    else:
        lines = "        server 127.0.0.1:SERVICE_A_PORT;\n" * n
        name, method, twin_method, tag = ("servers-%d" % n, "", "", str(n))
    group = ("    upstream group_%s {\n        dynroute_servers max=%d%s;\n%s"
             "        keepalive 32;\n    }\n" % (tag, max(n, 256), method,
                                               lines))
    twin = ("    upstream twin_%s {\n%s%s        keepalive 32;\n    }\n"
            % (tag, twin_method, lines))
    how = ("hash=$arg_k over %d names of one address, GET /?k=user-4711 "
           "(static: the same upstream{} with nginx's hash $arg_k "
           "consistent)" % n if hash_ else
           "%d server lines, keepalive 32, a plain proxy_pass (static: the "
           "same upstream{} without dynroute_servers)" % n)
    return case(name, group, "a.example.com",
                location="proxy_pass http://group_%s;" % tag,
                static="proxy_pass http://twin_%s;" % tag, static_http=twin,
                uri="/?k=user-4711" if hash_ else "/",
                note="dynroute_servers " + how)


def runtime_servers_case(n):
    """servers-N-rt: the list of servers-N set through the API."""
    live = [("127.0.0.1:SERVICE_A_PORT", "")]
    down = [("127.0.%d.%d:80" % (1 + i // 250, 1 + i % 250), " down")
            for i in range(n - 1)]
    lines = "".join("        server %s%s;\n" % a for a in live + down)
    tag = "%d_rt" % n
    group = ("    upstream group_%s {\n        dynroute_servers max=%d;\n"
             "        server 127.0.0.1:SERVICE_A_PORT;\n"
             "        keepalive 32;\n    }\n" % (tag, max(n, 256)))
    twin = ("    upstream twin_%s {\n%s        keepalive 32;\n    }\n"
            % (tag, lines))
    body = {a: ({"down": True} if flag else {}) for a, flag in live + down}
    c = case("servers-%d-rt" % n, group, "a.example.com",
             location="proxy_pass http://group_%s;" % tag,
             static="proxy_pass http://twin_%s;" % tag, static_http=twin,
             zone="64m",
             note="dynroute_servers, its %d servers set through the API (1 "
                  "live, %d down), keepalive 32, a plain proxy_pass (static: "
                  "the same servers as lines of an upstream{})" % (n, n - 1))
    c["servers_list"] = ("group_" + tag, body)
    return c


ALL_CASES = [
    case("exact", table(), "a.example.com",
         note="the small table of bench/e2e.py, an exact name"),
    case("wildcard", table(), "api.a.example.com",
         note="the same table, a host under *.a.example.com"),
    case("regex", table(REGEX_RULE), "acme.t.example.org",
         location=PASS + "\n            " + TENANT % "$tenant",
         static=STATIC + "\n            " + TENANT % "acme",
         note="the table and a regex with a named capture, sent upstream "
              "(static: the same header, a constant)"),
    case("rollout", ROLLOUT + table("        shop.example.com   shop;\n"),
         "shop.example.com", headers={"Cookie": "uid=u-1234567"},
         note="a 90/10 rollout keyed on $cookie_uid then $remote_addr, "
              "with an override header; the request has a uid cookie"),
    case("zone", table(), "a.example.com", zone="64m", hosts=True,
         counts=[("zone", "a.example.com"), ("zone-rt", Z.RUNTIME)],
         note="dynroute_zone with the runtime hosts (and the API in a "
              "server of its own); zone: a name of the table, zone-rt: a "
              "runtime host"),
    case("metrics", table(), "a.example.com", zone="1m metrics=rules",
         note="dynroute_zone metrics=rules: the log-phase count"),
    servers_case(2),
    servers_case(100),
    servers_case(10000),
    servers_case(100, hash_=True),
    runtime_servers_case(2),
    runtime_servers_case(100),
    runtime_servers_case(10000),
    # nginx's own equivalents, without the module
    reference("map-exact", "exact", host_map(), VAR_PASS, "a.example.com",
              note="nginx's own way of exact, without the module: map "
                   "$host { hostnames; } with the same table, proxy_pass "
                   "http://$edge_up"),
    reference("map-wildcard", "wildcard", host_map(), VAR_PASS,
              "api.a.example.com",
              note="nginx's own way of wildcard: the same map, a host "
                   "under *.a.example.com"),
    reference("map-regex", "regex", host_map(REGEX_RULE),
              VAR_PASS + "\n            " + TENANT % "$tenant",
              "acme.t.example.org",
              static=STATIC + "\n            " + TENANT % "acme",
              main="pcre_jit on;",
              note="nginx's own way of regex: the same map and the same "
                   "regex, JIT-compiled (pcre_jit on, as the module always "
                   "does; nginx's default is off), the capture sent "
                   "upstream (static: the same header, a constant)"),
    reference("split-cookie", "rollout", SPLIT, VAR_PASS,
              "shop.example.com", headers={"Cookie": "uid=u-1234567"},
              note="nginx's own way of rollout: split_clients "
                   "\"${cookie_uid}\" 10%/* (both on service_a), "
                   "proxy_pass http://$edge_up; the request has the same "
                   "uid cookie (no fallback key, no override header)"),
]

# The calls out of the module that static makes as well: the chosen
# upstream's peer initialisation (and get/free, were they wrapped), and the
# next filter of a header or body filter chain.  In a stripped nginx these
# are static functions without a name ("0x..."): the module reaches nginx's
# static functions only through such pointers.
PASS_THROUGH = re.compile(
    r"^ngx_http_upstream_(init|get|free)_\w+_peer$|_filter$|^0x[0-9a-f]+$")

ALLOCATOR_FILE = "/malloc/malloc.c"
ALLOC_CALLS = ("malloc", "free", "posix_memalign", "calloc", "realloc")


# ---- reading a callgrind profile ----------------------------------------

def short(fn):
    """A function's name without its signature and callgrind's recursion
    mark (name'2)."""
    fn = re.sub(r"'\d+$", "", fn)
    return fn.split("(", 1)[0]


class Profile:
    """One callgrind output: per function (by object and name) its
    exclusive instructions, its file, and the calls it makes (count and
    inclusive instructions per callee)."""

    def __init__(self, path):
        names = {"ob": {}, "fl": {}, "fn": {}}
        kinds = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl",
                 "fe": "fl", "cfi": "fl", "cfl": "fl", "fn": "fn",
                 "cfn": "fn"}
        self.excl = collections.Counter()
        self.file = {}
        self.obj_of = {}   # short name -> object (of its fn= blocks)
        self.calls = collections.defaultdict(lambda: [0, 0])
        self.total = None
        ob = fl = fn = cfn = None
        npos = 1        # position columns of a cost line ("positions:")
        pending = None  # call count of the next cost line
        with open(path, errors="replace") as f:
            for line in f:
                c = line[0] if line else ""
                if c.isdigit() or c in "+-*":
                    if fn is None:
                        continue
                    parts = line.split()
                    cost = int(parts[npos]) if len(parts) > npos else 0
                    if pending is not None:
                        k = self.calls[(fn, cfn)]
                        k[0] += pending
                        k[1] += cost
                        pending = None
                    else:
                        self.excl[fn] += cost
                    continue
                m = re.match(r"(c?ob|fl|fi|fe|cfi|cfl|c?fn)=\((\d+)\)"
                             r"(?: (.*))?$", line.rstrip("\n"))
                if m:
                    kind, idx, name = m.groups()
                    table_ = names[kinds[kind]]
                    if name is not None:
                        table_[idx] = name
                    name = table_.get(idx, idx)
                    if kind == "ob":
                        ob = name
                    elif kind in ("fl", "fi", "fe"):
                        fl = name
                    elif kind == "fn":
                        fn = short(name)
                        self.obj_of.setdefault(fn, ob)
                        self.file.setdefault(fn, fl)
                    elif kind == "cfn":
                        cfn = short(name)
                    continue
                if line.startswith("calls="):
                    pending = int(line.split("=", 1)[1].split()[0])
                elif line.startswith("positions:"):
                    npos = len(line.split()) - 1
                elif line.startswith("totals:"):
                    self.total = int(line.split()[1])
        if self.total is None:
            raise RuntimeError("no totals in " + path)

    def obj(self, fn):
        return self.obj_of.get(fn)

    def module_share(self, module):
        """Instructions executed in the module's object, and in what it
        calls out of it but PASS_THROUGH, as (total, {function: share})."""
        module = os.path.realpath(module)
        mine = {fn for fn, ob in self.obj_of.items()
                if ob and os.path.realpath(ob) == module}
        share = collections.Counter()
        for fn in mine:
            share[fn] += self.excl.get(fn, 0)
        for (caller, callee), (_, inc) in self.calls.items():
            if caller in mine and callee not in mine \
                    and not PASS_THROUGH.search(callee):
                share[caller] += inc
        return sum(share.values()), share

    def allocator(self):
        """Exclusive instructions of glibc's allocator (malloc.c), and the
        calls made to its entry points."""
        instr = sum(n for fn, n in self.excl.items()
                    if (self.file.get(fn) or "").endswith(ALLOCATOR_FILE))
        calls = collections.Counter()
        for (caller, callee), (n, _) in self.calls.items():
            if callee in ALLOC_CALLS and not (
                    self.file.get(caller) or "").endswith(ALLOCATOR_FILE):
                calls[callee] += n
        return instr, calls


# ---- running ------------------------------------------------------------

def send(port, host, n, headers, uri="/"):
    h = dict(headers)
    h["Host"] = host
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(n):
            c.request("GET", uri, headers=h)
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or body != b"a":
                raise RuntimeError("Host %s: %d %r, expected 200 'a'"
                                   % (host, r.status, body[:80]))
    finally:
        c.close()


def check_runtime_hosts(port, n):
    """About 50 of the runtime hosts, spread over the n, route to their
    target.  Only hosts on service_a are sent: an idle keepalive connection
    to service_b would hold a timer in nginx's timer tree during the
    counts, and every timer that a request adds would cost more (the
    static baseline never has it)."""
    hosts = Z.runtime_hosts(n)
    bad = []
    for i in sorted(set(range(0, n, max(1, n // 50))) | {n - 1, n // 2}):
        host, target = hosts[i]
        if target != "service_a":
            continue
        code, body = B.curl(port, host)
        if code != "200" or body != "a":
            bad.append("Host %s: %s %r, expected 200 'a'" % (host, code,
                                                            body))
    if bad:
        raise RuntimeError("wrong routing:\n  " + "\n  ".join(bad))


def measure(name, out, http, counts, requests, module=True,
            prepare=None, more_ports=(), main=""):
    """One nginx process under callgrind: counts is [(label, port, Host,
    headers, URI)], each counted for `requests` requests after 50 of warm-up;
    main: directives added to its main context.  Returns ({label:
    Profile}, seconds)."""
    prefix = os.path.join(out, name)
    cg = os.path.join(prefix, "callgrind.out")
    listen = sorted(set(port for _, port, _, _, _ in counts)
                    | set(more_ports))
    nx = B.Nginx(name, prefix, http, listen, module=module, master=False,
                 wrapper=["valgrind", "--tool=callgrind",
                          "--instr-atstart=no",
                          "--callgrind-out-file=" + cg])
    if main:
        with open(nx.conf) as f:
            conf = f.read()
        with open(nx.conf, "w") as f:
            f.write(main.strip() + "\n" + conf)
    t0 = time.time()
    nx.start()
    try:
        try:
            if prepare:
                prepare(nx)
            pid = nx.proc.pid
            for k, (_, port, host, headers, uri) in enumerate(counts):
                send(port, host, 50, headers, uri)  # warm-up, not counted
                C.control(pid, "-i", "on")
                send(port, host, requests, headers, uri)
                C.control(pid, "-i", "off")
                if k + 1 < len(counts):
                    C.control(pid, "-d")  # this count, then zeroed
        except (OSError, RuntimeError, subprocess.CalledProcessError):
            if nx.proc.poll() is not None:
                B.log("%s: nginx exited (%s):\n%s" % (
                    name, nx.proc.returncode,
                    B.tail(os.path.join(prefix, "stderr.log"), lines=25)))
            raise
    finally:
        nx.stop(signal.SIGTERM)  # QUIT may wait on idle upstreams
    Z.check_errors(nx)
    # dumps on request go to callgrind.out.1, .2, ..., the last at exit
    files = ["%s.%d" % (cg, i + 1) for i in range(len(counts) - 1)] + [cg]
    res = {label: Profile(path) for (label, _, _, _, _), path
           in zip(counts, files)}
    return res, time.time() - t0


def extra_http():
    """BENCH_COST_HTTP: http{}-level directives for every process, static
    and configurations alike (e.g. "request_pool_size 16k;")."""
    x = os.environ.get("BENCH_COST_HTTP", "").strip()
    return "    %s\n" % x if x else ""


def server(port, location):
    return ("    server {\n        listen 127.0.0.1:%d;\n\n"
            "        location / {\n            %s\n        }\n    }\n"
            % (port, location.strip()))


def run(cases, out, ports, requests, n_hosts, chunk, with_module_static):
    """Every profile, by count label; the static baselines are labelled
    static:<count>."""
    profiles, seconds = {}, {}
    # the baselines, all in one process: one server per static location
    statics = {STATIC: B.free_port()}
    static_http = []
    for c in cases:
        statics.setdefault(c["static"], B.free_port())
        if c["static_http"] not in static_http:
            static_http.append(c["static_http"])
    http = B.upstreams(ports) + extra_http() + "".join(static_http) + "".join(
        server(p, loc) for loc, p in statics.items())
    http = (http.replace("SERVICE_A_PORT", str(ports["service_a"]))
                .replace("SERVICE_B_PORT", str(ports["service_b"])))
    # nginx's own equivalents share the baseline count of a case counted
    # before with the same static location and request (their module case,
    # when it runs): the same figure, not another count of it
    counts, seen, shared = [], {}, {}
    for c in cases:
        for label, host in c["counts"]:
            key = (c["static"], host, tuple(sorted(c["headers"].items())),
                   c["uri"])
            if not c["module"] and key in seen:
                shared["static:" + label] = seen[key]
                continue
            seen.setdefault(key, "static:" + label)
            counts.append(("static:" + label, statics[c["static"]], host,
                           c["headers"], c["uri"]))
    counts.append(("static:again",) + counts[0][1:])
    if with_module_static:  # static+module's baseline
        counts.append(("static:plain", statics[STATIC], "a.example.com", {},
                       "/"))
    res, secs = measure("static", out, http, counts, requests,
                        module=False)
    profiles.update(res)
    for label, same in shared.items():
        profiles[label] = profiles[same]
    seconds["static"] = secs
    B.log("cost static: %d counts in %.0f s" % (len(counts), secs))
    if with_module_static:
        port = B.free_port()
        res, secs = measure("static+module", out,
                            B.upstreams(ports) + extra_http()
                            + server(port, STATIC),
                            [("static+module", port, "a.example.com", {},
                              "/")],
                            requests)
        profiles.update(res)
        seconds["static+module"] = secs
        B.log("cost static+module: %.0f s" % secs)
    for c in cases:
        port = B.free_port()
        http = B.upstreams(ports) + extra_http() + c["http"]
        api_port = None
        if c["zone"]:
            http += "    dynroute_zone routes %s;\n" % c["zone"]
        if c["hosts"] or c.get("servers_list"):
            api_port = B.free_port()
            http += ("    server {\n        listen 127.0.0.1:%d;\n"
                     "        location %s {\n"
                     "            allow 127.0.0.1;\n            deny all;\n"
                     "            dynroute_api write=on;\n        }\n    }\n"
                     % (api_port, Z.API))
        http += server(port, c["location"])
        http = (http.replace("SERVICE_A_PORT", str(ports["service_a"]))
                    .replace("SERVICE_B_PORT", str(ports["service_b"])))

        def prepare(nx, c=c, api_port=api_port):
            if c.get("servers_list"):
                put_servers(api_port, ports, *c["servers_list"])
            if c["hosts"]:
                load = Z.load_hosts(api_port, n_hosts, chunk, timeout=600)
                B.log("cost %s: %d runtime hosts loaded in %.1f s (under "
                      "valgrind)" % (c["name"], n_hosts, load["total"]))
                check_runtime_hosts(port, n_hosts)

        counts = [(label, port, host, c["headers"], c["uri"])
                  for label, host in c["counts"]]
        res, secs = measure(c["name"], out, http, counts, requests,
                            module=c["module"], prepare=prepare,
                            more_ports=[api_port] if api_port else [],
                            main=c["main"])
        profiles.update(res)
        seconds[c["name"]] = secs
        B.log("cost %s: %.0f s" % (c["name"], secs))
    return profiles, seconds


def put_servers(api_port, ports, group, body):
    """The case's runtime list, through the API; checked."""
    body = {a.replace("SERVICE_A_PORT", str(ports["service_a"]))
             .replace("SERVICE_B_PORT", str(ports["service_b"])): v
            for a, v in body.items()}
    status, answer = Z.api(api_port, "PUT", "upstreams/%s/servers"
                           % group, body, timeout=600)
    if status != 200:
        raise SystemExit("cost: PUT %s's servers: %s %s"
                         % (group, status, answer))
    B.log("cost: %s's %d servers set through the API" % (group, len(body)))


# ---- report -------------------------------------------------------------

def per(x, n):
    return x / float(n)


def diff(base, prof, n, top):
    """The top functions by |Δ| of exclusive instructions per request."""
    d = []
    for fn in set(base.excl) | set(prof.excl):
        delta = per(prof.excl.get(fn, 0) - base.excl.get(fn, 0), n)
        if abs(delta) >= 0.5:
            d.append((fn, per(base.excl.get(fn, 0), n),
                      per(prof.excl.get(fn, 0), n), delta))
    d.sort(key=lambda x: -abs(x[3]))
    return d[:top]


def report(cases, profiles, seconds, requests, module, label, n_hosts,
           top):
    summary = {"module": module, "label": label, "requests": requests,
               "runtime_hosts": n_hosts, "rows": []}
    rows, ref_rows, details, ref_details = [], [], [], []
    config = {}  # instructions per request, by count label
    labels = [(c, lab, host) for c in cases for lab, host in c["counts"]]
    for c, lab, host in labels:
        base = profiles["static:" + lab]
        prof = profiles[lab]
        s = per(base.total, requests)
        x = per(prof.total, requests)
        config[lab] = (s, x)
        mod, share = prof.module_share(module)
        mod = per(mod, requests)
        a_base, calls_base = base.allocator()
        a_prof, calls_prof = prof.allocator()
        a_base, a_prof = per(a_base, requests), per(a_prof, requests)
        ncalls_b = per(sum(calls_base.values()), requests)
        ncalls_p = per(sum(calls_prof.values()), requests)
        rest = (x - s) - mod - (a_prof - a_base)
        alloc = ["%.1f → %.1f (%.1f → %.1f calls)" % (
                     a_base, a_prof, ncalls_b, ncalls_p),
                 "%+.1f" % (a_prof - a_base),
                 "%+.2f %%" % (100.0 * (x - s - (a_prof - a_base)) / s),
                 "%+.1f" % rest]
        row = {
            "case": lab, "host": host, "static": s, "config": x,
            "delta": x - s, "delta_pct": 100.0 * (x - s) / s,
            "module": mod, "alloc_static": a_base, "alloc_config": a_prof,
            "alloc_calls_static": dict(calls_base),
            "alloc_calls_config": dict(calls_prof),
            "module_functions": {fn: per(n, requests)
                                 for fn, n in share.most_common()
                                 if n}}
        if c["module"]:
            rows.append([lab, host, "%.1f" % s, "%.1f" % x,
                         "%+.1f" % (x - s),
                         "%+.2f %%" % (100.0 * (x - s) / s),
                         "%.1f (%.2f %%)" % (mod, 100.0 * mod / s)] + alloc)
            fns = ", ".join("%s %.1f" % (fn, per(n, requests))
                            for fn, n in share.most_common(8) if n)
            details.append("- **%s** (module %.1f): %s"
                           % (lab, mod, fns or "-"))
            out = details
        else:
            eq = c["equivalent"]
            # the module's case, when it ran: its Δ, and what it costs
            # more than nginx's own way (the same baseline count)
            if eq in config:
                s_eq, x_eq = config[eq]
                vs = "%+.1f (%+.2f %%)" % (x_eq - s_eq,
                                           100.0 * (x_eq - s_eq) / s_eq)
                more = "%+.1f" % (x_eq - x)
            else:
                vs = more = "-"
            ref_rows.append([lab, eq, host, "%.1f" % s, "%.1f" % x,
                             "%+.1f" % (x - s),
                             "%+.2f %%" % (100.0 * (x - s) / s),
                             vs, more] + alloc)
            row.update(reference=True, equivalent=eq)
            ref_details.append("- **%s** (nginx's own way of %s, without the "
                               "module; module —)" % (lab, eq))
            out = ref_details
        summary["rows"].append(row)
        for fn, b, p, d in diff(base, prof, requests, top):
            out.append("  - %s: %.1f → %.1f (%+.1f)" % (fn, b, p, d))
    extra = []
    first = cases[0]["counts"][0][0]
    s1 = per(profiles["static:" + first].total, requests)
    s2 = per(profiles["static:again"].total, requests)
    extra.append("The first baseline (%s) counted again at the end of the "
                 "static process: %.1f then %.1f instructions per request."
                 % (first, s1, s2))
    summary["static_again"] = [s1, s2]
    if "static+module" in profiles:
        base = profiles["static:plain"]
        sm = profiles["static+module"]
        s, x = per(base.total, requests), per(sm.total, requests)
        mod, share = sm.module_share(module)
        a_base, a_sm = (per(p.allocator()[0], requests) for p in (base, sm))
        extra.append(
            "`static+module` (the same static location, the module loaded "
            "and unused), Host a.example.com: %.1f instructions per request "
            "against %.1f (%+.1f, %+.2f %%); the module %.1f%s; the "
            "allocator %.1f against %.1f." % (
                x, s, x - s, 100.0 * (x - s) / s, per(mod, requests),
                " (%s)" % ", ".join("%s %.1f" % (fn, per(n, requests))
                                    for fn, n in share.most_common(5) if n)
                if mod else "", a_sm, a_base))
        summary["static_module"] = {"static": s, "config": x,
                                    "module": per(mod, requests),
                                    "alloc_static": a_base,
                                    "alloc_config": a_sm}
    alloc_headers = ["allocator static → configuration", "Δ allocator",
                     "Δ % without the allocator", "Δ rest"]
    lines = [
        "## Instructions per request against a static proxy_pass "
        "(callgrind, %d requests on one keep-alive connection, the whole "
        "nginx process)" % requests, "",
        "Module: %s" % label, ""]
    if rows:
        lines += [
            B.table(["case", "Host", "static", "configuration", "Δ", "Δ %",
                     "module (incl.)"] + alloc_headers, rows), "",
            "\"module (incl.)\": instructions executed in the module's "
            "object and in what it calls, less what static calls as well "
            "(the chosen upstream's peer initialisation, the next filter). "
            "\"Δ rest\": Δ less the module and the allocator's difference: "
            "nginx's own work that differs.", ""]
    if ref_rows:
        lines += [
            "### nginx's own equivalents, without the module", "",
            "The same decisions made by nginx alone (no load_module), "
            "against the same static baseline (the module's case's own "
            "count when it ran).", "",
            B.table(["case", "nginx's way of", "Host", "static",
                     "configuration", "Δ", "Δ %", "the module's case: Δ",
                     "module's case − this"] + alloc_headers, ref_rows), "",
            "Their Δ includes what `proxy_pass http://$edge_up` makes "
            "nginx do for every request: evaluate the variable, parse the "
            "URL and search the upstreams by name; the module's cases pass "
            "through `upstream edge_pass { dynroute_balancer; }` instead. "
            "\"module's case − this\": what the module's case costs more "
            "than nginx's own way (the two configuration figures). There "
            "is no module share here (—): \"Δ rest\" is Δ less the "
            "allocator's difference.", ""]
    lines += extra + [
        "", "Time: " + ", ".join("%s %.0f s" % kv for kv in seconds.items())]
    if details:
        lines += [
            "", "### Where the difference is (module functions; then the "
            "functions whose exclusive instructions per request differ most "
            "from the baseline)", ""] + details
    if ref_details:
        lines += [
            "", "### Where the difference is, nginx's own equivalents (the "
            "functions whose exclusive instructions per request differ most "
            "from the baseline)", ""] + ref_details
    return "\n".join(lines), summary


def compare(paths):
    """The runs of results.json files side by side, as Markdown tables: the
    module's cases, then nginx's own equivalents (rows marked "reference",
    which older files do not have), each case of any run once."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    cases, refs = [], []  # (case, Host[, equivalent]) in order of appearance
    for r in runs:
        for row in r["rows"]:
            if row.get("reference"):
                if row["case"] not in [x[0] for x in refs]:
                    refs.append((row["case"], row["host"],
                                 row.get("equivalent") or "-"))
            elif row["case"] not in [x[0] for x in cases]:
                cases.append((row["case"], row["host"]))

    def table(first, keys):
        headers = list(first)
        for r in runs:
            tag = r["label"] + (" (%s)" % r["http"] if r.get("http") else "")
            headers += ["%s: static" % tag, "configuration", "Δ %",
                        "module", "Δ % without the allocator"]
        rows = []
        for key in keys:
            cells = list(key)
            for r in runs:
                x = [y for y in r["rows"] if y["case"] == key[0]]
                if not x:
                    cells += ["-"] * 5
                    continue
                x = x[0]
                d_alloc = x["alloc_config"] - x["alloc_static"]
                cells += ["%.0f" % x["static"], "%.0f" % x["config"],
                          "%+.2f %%" % x["delta_pct"],
                          "—" if x.get("reference") else "%.0f" % x["module"],
                          "%+.2f %%" % (100.0 * (x["delta"] - d_alloc)
                                        / x["static"])]
            rows.append(cells)
        return B.table(headers, rows)

    text = table(["case", "Host"], cases) if cases else ""
    if refs:
        text += ("\n\nnginx's own equivalents, without the module:\n\n"
                 if text else "") + table(
                     ["case", "Host", "nginx's way of"],
                     [(c, h, e) for c, h, e in refs])
    return text


def main():
    if sys.argv[1:2] == ["compare"]:
        print(compare(sys.argv[2:]))
        return
    t_start = time.time()
    requests = B.env_int("BENCH_CALLGRIND_REQUESTS", 2000)
    only = [x for x in os.environ.get("BENCH_COST_CASES", "").split(",") if x]
    cases = [c for c in ALL_CASES if not only or c["name"] in only]
    n_hosts = B.env_int("BENCH_COST_HOSTS", 100000)
    chunk = B.env_int("BENCH_COST_CHUNK", 5000)
    top = B.env_int("BENCH_COST_DIFF", 10)
    label = os.environ.get("BENCH_COST_LABEL", B.MODULE)
    with_module_static = os.environ.get("BENCH_COST_STATIC_MODULE",
                                        "1") != "0"
    machine = B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "cost"))
    B.fresh_dir(out)
    ports, backends = B.backends(out)
    try:
        backends.start()
        profiles, seconds = run(cases, out, ports, requests, n_hosts, chunk,
                                with_module_static)
        Z.check_errors(backends)
    finally:
        B.stop_all()
    text, summary = report(cases, profiles, seconds, requests, B.MODULE,
                           label, n_hosts, top)
    total = time.time() - t_start
    if extra_http():
        text = "Every process also has: `%s`\n\n" % extra_http().strip() + text
    summary["http"] = extra_http().strip()
    text = ("The decision's cost against a static proxy_pass; %s\n\n"
            % machine + text + "\n\nCases:\n\n" +
            "\n".join("- %s: %s" % (c["name"], c["note"]) for c in cases) +
            "\n\nRun time: %.0f s\n" % total)
    summary["machine"] = machine
    summary["seconds"] = total
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(summary, fh, indent=1)


if __name__ == "__main__":
    main()
