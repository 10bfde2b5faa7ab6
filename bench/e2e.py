#!/usr/bin/python3
"""End-to-end throughput of dynroute against its alternatives, in one run.

Starts on 127.0.0.1: one nginx with the backends (service_a answers "a",
service_b answers "b"), a router nginx for the "separate router process"
front, and one nginx per front (master and one worker each, all pinned to
the server core).  Checks every front with curl, then runs bounded wrk
rounds interleaved (A B C ... A B C ...) from the client core and prints a
Markdown table: req/s median and min-max, p50/p99 latency, the ratio to the
static proxy_pass measured within each round, and server CPU per request
(from /proc/PID/task/*/schedstat of the server processes).  Everything it
starts it stops, by PID.

Knobs (environment): BENCH_ROUNDS (8), BENCH_DURATION (seconds per wrk run,
4), BENCH_CONNECTIONS (32), BENCH_WARMUP (seconds, 1), BENCH_FRONTS (comma
separated names, default all), BENCH_OUT (output directory).

Adding a front is one entry in FRONTS: a name, the http{}-level snippet, the
body of "location /", the Host to send and the body the backend must answer.
Placeholders: @RULES_10K@ (a file of 10,000 hosts and 1,000 wildcards, one
"PATTERN TARGET;" a line), @ROUTER@ (the port of the separate router).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

HOST_10K = B.exact_host(5000)  # in the middle of the 10k table: service_a

SMALL_RULES = """\
        a.example.com      service_a;
        *.a.example.com    service_a;
        www.example.*      service_b;
        b.example.com      service_b;
        default            service_b;
"""

# The router answers the auth subrequest with the upstream name in a header,
# from a map of the same small table.
ROUTER_SERVER = """\
    map $host $route {
        hostnames;
%s    }

    server {
        listen 127.0.0.1:@ROUTER_PORT@;
        location / {
            add_header X-Backend $route;
            return 204;
        }
    }
""" % SMALL_RULES

AUTH_LOCATION = """\
            auth_request      /_route;
            auth_request_set  $backend $upstream_http_x_backend;
            proxy_pass        http://$backend;
        }

        location = /_route {
            internal;
            proxy_pass               http://router;
            proxy_pass_request_body  off;
            proxy_set_header         Content-Length "";
            proxy_set_header         Connection "";
            proxy_set_header         Host $host;
"""

ROUTER_UPSTREAM = """\
    upstream router {
        server 127.0.0.1:@ROUTER_PORT@;
        keepalive 32;
    }
"""


def front(name, http, location, host, expect, router=None, note=""):
    return {"name": name, "http": http, "location": location, "host": host,
            "expect": expect, "router": router, "note": note}


FRONTS = [
    front("static", "", "proxy_pass http://service_a;", "a.example.com", "a",
          note="proxy_pass to one upstream: the baseline"),
    front("map", "    map $host $backend {\n        hostnames;\n%s    }\n"
          % SMALL_RULES,
          "proxy_pass http://$backend;", "a.example.com", "a",
          note="map $host { hostnames; } with the small table"),
    front("auth_request-location", ROUTER_UPSTREAM + ROUTER_SERVER,
          AUTH_LOCATION, "a.example.com", "a", router="self",
          note="auth_request to a router server{} in the same nginx"),
    front("auth_request-process", ROUTER_UPSTREAM, AUTH_LOCATION,
          "a.example.com", "a", router="process",
          note="auth_request to a separate router nginx (map)"),
    front("dynroute", "    dynroute_table edge {\n%s    }\n" % SMALL_RULES,
          "dynroute edge;\n            proxy_pass http://$dynroute_upstream;",
          "a.example.com", "a", note="dynroute, the small table"),
    front("dynroute-balancer",
          "    upstream edge_pass {\n        dynroute_balancer;\n    }\n"
          "    dynroute_table edge {\n%s    }\n" % SMALL_RULES,
          "dynroute edge;\n            proxy_pass http://edge_pass;",
          "a.example.com", "a",
          note="dynroute, the small table, through upstream edge_pass "
               "{ dynroute_balancer; }: no variable"),
    front("dynroute-regex",
          "    dynroute_table edge {\n%s"
          "        ~^(?<tenant>[a-z0-9]+)\\.t\\.example\\.org$  service_a;\n"
          "    }\n" % SMALL_RULES,
          "dynroute edge;\n            proxy_pass http://$dynroute_upstream;\n"
          "            proxy_set_header Connection \"\";\n"
          "            proxy_set_header X-Tenant $tenant;",
          "acme.t.example.org", "a",
          note="dynroute, the host matched by a regex with a capture"),
    front("dynroute-rollout",
          "    dynroute_rollout shop {\n"
          "        variant  stable  service_a  *;\n"
          "        variant  canary  service_a  10%%;\n"
          "        key      $cookie_uid $remote_addr;\n"
          "        header   X-Canary;\n"
          "        override_from 127.0.0.1;\n"
          "    }\n"
          "    dynroute_table edge {\n%s"
          "        shop.example.com   shop;\n"
          "    }\n" % SMALL_RULES,
          "dynroute edge;\n            proxy_pass http://$dynroute_upstream;",
          "shop.example.com", "a",
          note="dynroute, a 90/10 rollout keyed on $cookie_uid, else the "
               "client address (both variants on service_a)"),
    front("map-10k", "    map $host $backend {\n        hostnames;\n"
          "        include @RULES_10K@;\n        default service_b;\n    }\n",
          "proxy_pass http://$backend;", HOST_10K, "a",
          note="map, 10,000 hosts + 1,000 wildcards"),
    front("dynroute-10k", "    dynroute_table edge {\n"
          "        include @RULES_10K@;\n        default service_b;\n    }\n",
          "dynroute edge;\n            proxy_pass http://$dynroute_upstream;",
          HOST_10K, "a", note="dynroute, the same 10,000 hosts"),
]

def servers_fronts(n):
    """A static upstream{} of n servers (n lines of service_a's address,
    as bench/cost.py's servers-N, so that keepalive 32 serves them all)
    and the same with dynroute_servers: nginx's loop over n servers, and
    the module's."""
    lines = "        server 127.0.0.1:@SERVICE_A@;\n" * n
    static = ("    upstream twin_%d {\n%s        keepalive 32;\n    }\n"
              % (n, lines))
    group = ("    upstream group_%d {\n        dynroute_servers max=%d;\n%s"
             "        keepalive 32;\n    }\n" % (n, max(n, 256), lines))
    return [
        front("static-%d" % n, static, "proxy_pass http://twin_%d;" % n,
              "a.example.com", "a",
              note="proxy_pass to an upstream{} of %d servers" % n),
        front("servers-%d" % n, group, "proxy_pass http://group_%d;" % n,
              "a.example.com", "a",
              note="the same upstream{} with dynroute_servers"),
    ]


FRONTS += servers_fronts(2) + servers_fronts(100) + servers_fronts(10000)


def server_conf(f, port, rules, router_port, ports):
    http = B.upstreams(ports) + f["http"]
    http += ("    server {\n        listen 127.0.0.1:%d;\n\n"
             "        location / {\n            %s\n        }\n    }\n"
             % (port, f["location"].strip()))
    return (http.replace("@RULES_10K@", rules)
                .replace("@ROUTER_PORT@", str(router_port))
                .replace("@SERVICE_A@", str(ports["service_a"])))


def main():
    rounds = B.env_int("BENCH_ROUNDS", 8)
    duration = B.env_float("BENCH_DURATION", 4)
    conns = B.env_int("BENCH_CONNECTIONS", 32)
    warmup = B.env_float("BENCH_WARMUP", 1)
    B.machine()
    out = os.environ.get("BENCH_OUT",
                         os.path.join(B.REPO, "build", "bench", "e2e"))
    only = [x for x in os.environ.get("BENCH_FRONTS", "").split(",") if x]
    fronts = [f for f in FRONTS if not only or f["name"] in only
              or f["name"] == "static"]

    B.fresh_dir(out)
    rules = B.write_rules(os.path.join(out, "rules-10k.conf"), 10000)

    ports, backends = B.backends(out)

    router_port = B.free_port()
    router = B.Nginx("router", os.path.join(out, "router"),
                     ROUTER_SERVER.replace("@ROUTER_PORT@", str(router_port)),
                     [router_port], module=False)

    try:
        backends.start()
        if any(f["router"] == "process" for f in fronts):
            router.start()

        for f in fronts:
            f["port"] = B.free_port()
            rp = router_port if f["router"] == "process" else B.free_port()
            f["router_port"] = rp
            listen = [f["port"]] + ([rp] if f["router"] == "self" else [])
            f["nginx"] = B.Nginx(f["name"], os.path.join(out, f["name"]),
                                 server_conf(f, f["port"], rules, rp, ports),
                                 listen)
            f["nginx"].start()

        # Every front must route its host to the expected backend.
        bad = 0
        for f in fronts:
            code, body = B.curl(f["port"], f["host"])
            ok = code == "200" and body == f["expect"]
            B.log("check %-24s Host: %-32s -> %s %r %s" % (
                f["name"], f["host"], code, body, "ok" if ok else "FAILED"))
            bad += not ok
        if bad:
            raise RuntimeError("%d front(s) failed their check" % bad)

        for f in fronts:
            B.wrk(f["port"], f["host"], warmup, conns)
            f["runs"] = []

        for r in range(rounds):
            for f in fronts:
                procs = [f["nginx"]] + (
                    [router] if f["router"] == "process" else [])
                cpu0 = sum(p.cpu_ns() for p in procs)
                be0 = backends.cpu_ns()
                res = B.wrk(f["port"], f["host"], duration, conns)
                res["cpu_ns"] = sum(p.cpu_ns() for p in procs) - cpu0
                res["backend_ns"] = backends.cpu_ns() - be0
                res.pop("raw")
                f["runs"].append(res)
                B.log("round %d/%d %-24s %9.0f req/s  p99 %s us  errors %d"
                      % (r + 1, rounds, f["name"], res["rps"],
                         B.fmt(res["p99"]), res["errors"]))

        for f in fronts:
            errs = f["nginx"].errors()
            if errs:
                B.log("%s error.log:\n  %s" % (f["name"], "\n  ".join(errs)))
    finally:
        B.stop_all()

    report(fronts, rounds, duration, conns, out)


def ratios(fronts, name, base):
    by = {f["name"]: f for f in fronts}
    if name not in by or base not in by:
        return []
    return [a["rps"] / b["rps"] for a, b in zip(by[name]["runs"],
                                                by[base]["runs"])
            if b["rps"] > 0]


def all_cpu(run):
    """Server CPU per request, backends included, in µs."""
    return (run["cpu_ns"] + run["backend_ns"]) / 1e3 / run["requests"]


def cpu_ratios(fronts, name, base):
    """Per round, base's CPU per request over name's: the throughput ratio
    that one dedicated server core would show, much less sensitive to other
    load on the machine than req/s."""
    by = {f["name"]: f for f in fronts}
    if name not in by or base not in by:
        return []
    return [all_cpu(b) / all_cpu(a) for a, b in zip(by[name]["runs"],
                                                    by[base]["runs"])
            if a["requests"] and b["requests"]]


def span(xs, spec="%.2f"):
    if not xs:
        return "-"
    return (spec + " (" + spec + "–" + spec + ")") % (
        B.median(xs), min(xs), max(xs))


def report(fronts, rounds, duration, conns, out, machine=None):
    machine = machine or B.machine()
    rows = []
    for f in fronts:
        runs = f["runs"]
        rps = [x["rps"] for x in runs]
        cpu = [x["cpu_ns"] / 1e3 / x["requests"] for x in runs
               if x["requests"]]
        allcpu = [(x["cpu_ns"] + x["backend_ns"]) / 1e3 / x["requests"]
                  for x in runs if x["requests"]]
        rows.append([
            f["name"], B.fmt(B.median(rps)),
            "%.0f–%.0f" % (min(rps), max(rps)),
            B.fmt(B.median([x["p50"] for x in runs])),
            B.fmt(B.median([x["p99"] for x in runs])),
            span(ratios(fronts, f["name"], "static")),
            B.fmt(B.median(cpu), "%.1f"), B.fmt(B.median(allcpu), "%.1f"),
            span(cpu_ratios(fronts, f["name"], "static")),
            sum(x["errors"] for x in runs)])

    lines = [
        "wrk -t1 -c%d, %d rounds of %gs per front, interleaved; %s"
        % (conns, rounds, duration, machine), "",
        B.table(["front", "req/s median", "req/s min–max", "p50 µs",
                 "p99 µs", "× static by req/s, per round: median (min–max)",
                 "server CPU µs/req", "incl. backends µs/req",
                 "× static by CPU/req, per round", "errors"],
                rows), ""]

    lines.append("Ratios within each round, median (min–max), by req/s and "
                 "by server CPU per request (backends included):")
    for a, b in (("dynroute", "static"), ("dynroute", "map"),
                 ("dynroute-balancer", "static"),
                 ("dynroute-balancer", "dynroute"),
                 ("dynroute", "auth_request-location"),
                 ("dynroute", "auth_request-process"),
                 ("dynroute-10k", "static"), ("dynroute-10k", "map-10k"),
                 ("dynroute-regex", "static"), ("map", "static")):
        rs = ratios(fronts, a, b)
        if rs:
            lines.append("- %s / %s: %s by req/s, %s by CPU" % (
                a, b, span(rs), span(cpu_ratios(fronts, a, b))))
    lines.append("")
    lines.append("Fronts:")
    for f in fronts:
        lines.append("- %s: %s (Host: %s)" % (f["name"], f["note"],
                                              f["host"]))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text + "\n")
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump({"machine": machine, "rounds": rounds,
                   "duration": duration, "connections": conns,
                   "fronts": [{k: v for k, v in f.items() if k != "nginx"}
                              for f in fronts]}, fh, indent=1)


def rereport(out):
    """Prints the tables again from results.json (after a change of the
    report, without measuring again)."""
    with open(os.path.join(out, "results.json")) as fh:
        r = json.load(fh)
    report(r["fronts"], r["rounds"], r["duration"], r["connections"], out,
           r["machine"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        rereport(os.environ.get("BENCH_OUT", os.path.join(
            B.REPO, "build", "bench", "e2e")))
    else:
        main()
