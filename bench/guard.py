#!/usr/bin/env python3
"""The guard's reaction time (make bench-guard; see bench/README.md).

wrk on loopback against a rollout whose canary takes 10 % of the requests
(key $request_id: a share of requests) and has a guard; after a few seconds
the canary's backend starts answering 500 (a file that its location tests
with `if (-f ...)`).  The canary's backend logs every request it answers
with its time ($msec) and status, so the figures are read from what reached
it, in every worker of the front at once:

- first failure: the time of the canary's first 500;
- last canary hit: the last request that reached the canary's backend
  at all (0 % in every worker: nothing after it);
- the API: when GET {prefix}rollouts/shop first showed the canary at 0 %
  (polled every 20 ms);
- failed requests: wrk's non-2xx answers (every one a canary 500).

Each round starts a fresh front (2 workers) and backend.  Knobs:
BENCH_ROUNDS (3), BENCH_DURATION (8 s of wrk a round), BENCH_FAIL_AT (3 s
into it), BENCH_CONNECTIONS (16), BENCH_GUARD (the guard's parameters).

Then the ramp part (make bench-ramp runs it alone: BENCH_PARTS=ramp): the
canary at 0 % with BENCH_RAMP ("canary 1% 5% 25% 50% 100% hold=2s") and
BENCH_RAMP_GUARD ("errors=5% window=1s interval=100ms min_requests=20"),
started through the API under wrk (BENCH_RAMP_DURATION, 20 s).  Healthy,
it must reach done, wrk's failed requests counted; with the canary failing
from the third step, it must stop there (aborted by the guard), with the
failed requests and the time from the first failure to the abort.

Results in $BENCH_OUT/results.md.
"""

import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

OUT = os.path.abspath(os.environ.get(
    "BENCH_OUT", os.path.join(b.REPO, "build", "bench", "guard")))
ROUNDS = b.env_int("BENCH_ROUNDS", 3)
DURATION = b.env_float("BENCH_DURATION", 8)
FAIL_AT = b.env_float("BENCH_FAIL_AT", 3)
CONNECTIONS = b.env_int("BENCH_CONNECTIONS", 16)
GUARD = os.environ.get(
    "BENCH_GUARD", "errors=5% window=10s interval=250ms min_requests=20")
PARTS = os.environ.get("BENCH_PARTS", "guard,ramp").split(",")
RAMP = os.environ.get("BENCH_RAMP", "canary 1% 5% 25% 50% 100% hold=2s")
RAMP_GUARD = os.environ.get(
    "BENCH_RAMP_GUARD", "errors=5% window=1s interval=100ms min_requests=20")
RAMP_DURATION = b.env_float("BENCH_RAMP_DURATION", 20)


def backend(prefix, ports, flag):
    http = """
    log_format hits "$msec $status";
    server {
        listen 127.0.0.1:%d;
        location / { return 200 "a"; }
    }
    server {
        listen 127.0.0.1:%d;
        access_log %s/canary.log hits;
        location / {
            if (-f %s) { return 500 "b failed"; }
            return 200 "b";
        }
    }
""" % (ports["service_a"], ports["service_b"], prefix, flag)
    return b.Nginx("backends", prefix, http, list(ports.values()),
                   module=False)


def front(prefix, port, ports, ramp=None):
    weights = ("90%", "10%") if ramp is None else ("100%", "0%")
    lines = ""
    if ramp is not None:
        lines = "\n        ramp     %s;" % ramp
    http = b.upstreams(ports) + """
    dynroute_zone routes 1m;
    dynroute_rollout shop {
        variant  stable  service_a  %s;
        variant  canary  service_b  %s;
        key      $request_id;
        guard    %s;%s
    }
    dynroute_table main { default shop; }
    server {
        listen 127.0.0.1:%d;
        location / {
            dynroute    main;
            proxy_pass  http://$dynroute_upstream;
        }
        location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api%s; }
    }
""" % (weights[0], weights[1], GUARD if ramp is None else RAMP_GUARD, lines,
       port, "" if ramp is None else " write=on")
    n = b.Nginx("front", prefix, http, [port])
    with open(n.conf) as f:
        conf = f.read()
    with open(n.conf, "w") as f:
        conf = conf.replace("worker_processes 1;", "worker_processes 2;")
        if ramp is not None:
            # the ramp's moves are logged at notice, by worker 0's timer
            conf = conf.replace("error.log warn;", "error.log notice;")
        f.write(conf)
    return n


def rollout(port):
    try:
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/dynroute/rollouts/shop" % port,
                timeout=2) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def canary_weight(port):
    try:
        return rollout(port)["variants"]["canary"]["weight"]
    except (TypeError, KeyError):
        return None


def ramp_action(port, action):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/dynroute/rollouts/shop/ramp" % port,
        json.dumps({"action": action}).encode(),
        {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)


def ramp_round(fail_at_step):
    """One ramp under wrk; the canary fails from fail_at_step (None:
    never).  Returns the figures."""
    name = "ramp-healthy" if fail_at_step is None else "ramp-failing"
    out = b.fresh_dir(os.path.join(OUT, name))
    flag = os.path.join(out, "fail")
    ports = {"service_a": b.free_port(), "service_b": b.free_port()}
    port = b.free_port()
    back = backend(os.path.join(out, "backends"), ports, flag).start()
    fr = front(os.path.join(out, "front"), port, ports, RAMP).start()

    res = {}
    t = threading.Thread(target=lambda: res.update(
        b.wrk(port, "localhost", RAMP_DURATION, CONNECTIONS)))
    t.start()
    time.sleep(0.5)
    started = time.time()
    ramp_action(port, "start")
    failed_at = end = None
    ramp = {}
    while t.is_alive():
        r = rollout(port) or {}
        ramp = r.get("ramp", {})
        if (fail_at_step is not None and failed_at is None
                and ramp.get("step", 0) >= fail_at_step):
            with open(flag, "w"):
                pass
            failed_at = time.time()
        if ramp.get("state") in ("done", "aborted") and end is None:
            end = time.time()
        time.sleep(0.02)
    t.join()
    final = rollout(port) or {}
    errors = fr.errors() + back.errors()
    notices = []
    with open(os.path.join(out, "front", "error.log")) as f:
        notices = [line[line.index('rollout "'):].strip() for line in f
                   if 'ramp: variant' in line]
    fr.stop()
    back.stop()
    if errors:
        raise RuntimeError("errors in the logs: %s" % errors[:3])
    return {
        "rps": res.get("rps", 0),
        "requests": res.get("requests", 0),
        "failed": res.get("errors", 0),
        "state": final.get("ramp", {}).get("state"),
        "step": final.get("ramp", {}).get("step"),
        "weight": final.get("variants", {}).get("canary", {}).get("weight"),
        "to_end": (end - started) if end else None,
        "fail_to_abort": (end - failed_at) if end and failed_at else None,
        "why": final.get("ramp", {}).get("why"),
        "moves": notices,
    }


def ramp_report():
    healthy = ramp_round(None)
    b.log("ramp, healthy: %s" % healthy)
    failing = ramp_round(2)
    b.log("ramp, failing from the third step: %s" % failing)
    if healthy["state"] != "done" or healthy["weight"] != 100:
        raise RuntimeError("the healthy ramp did not reach done: %s"
                           % healthy)
    if failing["state"] != "aborted" or failing["step"] != 2 \
            or failing["weight"] != 0:
        raise RuntimeError("the failing ramp was not aborted at its third "
                           "step: %s" % failing)
    rows = [["healthy", b.fmt(healthy["rps"]), healthy["requests"],
             healthy["failed"], "%s at step %d" % (healthy["state"],
                                                   healthy["step"] + 1),
             b.fmt(healthy["to_end"]), "-"],
            ["failing from step 3", b.fmt(failing["rps"]),
             failing["requests"], failing["failed"],
             "%s at step %d" % (failing["state"], failing["step"] + 1),
             b.fmt(failing["to_end"]),
             b.fmt(failing["fail_to_abort"] and
                   failing["fail_to_abort"] * 1000)]]
    return ("## Ramps\n\nramp %s; guard %s; by $request_id; wrk -c%d for "
            "%g s, the ramp started 0.5 s in.\n\n%s\n\nthe healthy "
            "ramp's moves:\n\n%s\n\nthe failing one's end: %s\n" % (
                RAMP, RAMP_GUARD, CONNECTIONS, RAMP_DURATION,
                b.table(["ramp", "req/s", "requests", "failed", "end",
                         "start to end (s)",
                         "first failure to abort (ms)"], rows),
                "\n".join("    " + m for m in healthy["moves"]),
                failing["why"]))


def one_round(i):
    out = b.fresh_dir(os.path.join(OUT, "round%d" % i))
    flag = os.path.join(out, "fail")
    ports = {"service_a": b.free_port(), "service_b": b.free_port()}
    port = b.free_port()
    back = backend(os.path.join(out, "backends"), ports, flag).start()
    fr = front(os.path.join(out, "front"), port, ports).start()

    res = {}
    t = threading.Thread(target=lambda: res.update(
        b.wrk(port, "localhost", DURATION, CONNECTIONS)))
    t.start()
    time.sleep(FAIL_AT)
    with open(flag, "w"):
        pass
    failed_at = time.time()
    api_zero = None
    while t.is_alive() and time.time() < failed_at + DURATION + 60:
        if api_zero is None and canary_weight(port) == 0:
            api_zero = time.time()
        time.sleep(0.02)
    t.join()

    hits = []
    with open(os.path.join(out, "backends", "canary.log")) as f:
        for line in f:
            ms, status = line.split()
            hits.append((float(ms), int(status)))
    first_fail = min((ms for ms, st in hits if st >= 500), default=None)
    last_hit = max((ms for ms, st in hits), default=None)
    fails = sum(1 for ms, st in hits if st >= 500)

    weight = canary_weight(port)
    errors = fr.errors() + back.errors()
    fr.stop()
    back.stop()
    if errors:
        raise RuntimeError("errors in the logs: %s" % errors[:3])
    if weight != 0:
        raise RuntimeError("the canary was not tripped: weight %s" % weight)

    return {
        "rps": res.get("rps", 0),
        "requests": res.get("requests", 0),
        "failed": res.get("errors", 0),
        "canary_500": fails,
        "to_last_hit": (last_hit - first_fail) if first_fail else None,
        "to_api": (api_zero - first_fail) if first_fail and api_zero
        else None,
    }


def main():
    b.machine()
    os.makedirs(OUT, exist_ok=True)
    rows = []
    runs = []
    ramps = ""
    try:
        for i in range(ROUNDS if "guard" in PARTS else 0):
            r = one_round(i)
            runs.append(r)
            b.log("round %d: %s" % (i, r))
            rows.append([i + 1, b.fmt(r["rps"]), r["requests"], r["failed"],
                         b.fmt(r["to_last_hit"] and r["to_last_hit"] * 1000),
                         b.fmt(r["to_api"] and r["to_api"] * 1000)])
        if "ramp" in PARTS:
            ramps = ramp_report()
    finally:
        b.stop_all()

    if "guard" not in PARTS:
        report = "%s\n\n%s" % (b.machine(), ramps)
        with open(os.path.join(OUT, "results.md"), "w") as f:
            f.write(report)
        print(report)
        return

    report = ("# The guard: from the canary's first failure to 0 %%\n\n%s\n\n"
              "guard %s; 90/10 by $request_id; wrk -c%d for %g s, the canary "
              "failing from %g s.\n\n%s\n\nmedian to the last canary hit: %s "
              "ms; to the API at 0 %%: %s ms\n" % (
                  b.machine(), GUARD, CONNECTIONS, DURATION, FAIL_AT,
                  b.table(["round", "req/s", "requests", "failed",
                           "to last canary hit (ms)", "to API 0 % (ms)"],
                          rows),
                  b.fmt(b.median([r["to_last_hit"] and r["to_last_hit"]
                                  * 1000 for r in runs])),
                  b.fmt(b.median([r["to_api"] and r["to_api"] * 1000
                                  for r in runs]))))
    report += "\n" + ramps if ramps else ""
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
