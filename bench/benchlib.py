"""Shared helpers of the dynroute benchmarks: nginx instances on loopback,
the host tables, wrk runs and CPU accounting from /proc.

Every process is started here and stopped here, by its PID.  Nothing listens
on anything but 127.0.0.1; every load loop is bounded by wrk's duration.
Python 3 standard library only.
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
# nginx itself reads $NGINX (the sockets inherited on a binary upgrade): keep
# it out of the environment of the servers we start.
os.environ.pop("NGINX", None)
MODULE = os.environ.get(
    "MODULE", os.path.join(REPO, "build", "ngx_http_dynroute_module.so"))

# Load generator on one core, every server on the other (2-core machine).
CLIENT_CPU = os.environ.get("BENCH_CLIENT_CPU", "1")
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")

_started = []  # nginx masters started by this run, stopped at exit


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listen(port, proc, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---- host tables ---------------------------------------------------------

def exact_host(i):
    return "svc-%d.team-%d.example.com" % (i, i % 97)


def wildcard_key(i):
    return "w%d.example.net" % i


def target_of(i):
    return "service_a" if i % 2 == 0 else "service_b"


def write_rules(path, n, with_wildcards=True):
    """n exact hosts and n/10 "*.x" wildcards, one "PATTERN TARGET;" a line:
    the same file is included by a dynroute_table and by a map."""
    if os.path.exists(path):
        return path
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for i in range(n):
            f.write("%s %s;\n" % (exact_host(i), target_of(i)))
        if with_wildcards:
            for i in range(n // 10):
                f.write("*.%s %s;\n" % (wildcard_key(i), target_of(i)))
    os.rename(tmp, path)
    return path


# ---- nginx instances -----------------------------------------------------

CONF_HEAD = """\
{load_module}
daemon off;
master_process {master};
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path       {prefix}/tmp/proxy;
    fastcgi_temp_path     {prefix}/tmp/fastcgi;
    uwsgi_temp_path       {prefix}/tmp/uwsgi;
    scgi_temp_path        {prefix}/tmp/scgi;

    proxy_http_version 1.1;
    proxy_set_header   Connection "";
    keepalive_requests 1000000;

{http}
}}
"""


def upstreams(ports):
    """The backends every front shares: service_a and service_b."""
    return "".join(
        "    upstream %s {\n        server 127.0.0.1:%d;\n"
        "        keepalive 32;\n    }\n" % (name, port)
        for name, port in sorted(ports.items()))


def backends(out):
    """The backend nginx (service_a answers "a", service_b "b"), not started
    yet, and the ports of the two services."""
    ports = {"service_a": free_port(), "service_b": free_port()}
    nginx = Nginx("backends", os.path.join(out, "backends"),
                  "".join("    server {\n        listen 127.0.0.1:%d;\n"
                          "        location / { return 200 \"%s\"; }\n"
                          "    }\n" % (p, name[-1])
                          for name, p in sorted(ports.items())),
                  list(ports.values()), module=False)
    return ports, nginx


def write_conf(prefix, http, module=True, master=True):
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = CONF_HEAD.format(
        load_module=("load_module %s;" % MODULE) if module else "",
        master="on" if master else "off",
        user="user root;" if os.geteuid() == 0 else "",
        prefix=prefix, http=http)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


class Nginx:
    """One nginx (master and one worker) pinned to the server core."""

    def __init__(self, name, prefix, http, ports, module=True, cpu=None,
                 wrapper=None, master=True):
        self.name = name
        self.prefix = prefix
        self.ports = ports  # ports it listens on
        self.conf = write_conf(prefix, http, module=module, master=master)
        self.cpu = SERVER_CPU if cpu is None else cpu
        self.wrapper = wrapper or []
        self.proc = None

    def start(self):
        cmd = (["taskset", "-c", self.cpu] + self.wrapper +
               [NGINX, "-p", self.prefix + "/", "-c", self.conf])
        out = open(os.path.join(self.prefix, "stderr.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL)
        _started.append(self)
        for port in self.ports:
            if not wait_listen(port, self.proc):
                self.stop()
                raise RuntimeError("%s did not start: %s" % (
                    self.name, tail(os.path.join(self.prefix, "stderr.log"),
                                    os.path.join(self.prefix, "error.log"))))
        return self

    def pids(self):
        """The master and its children (the worker)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = [self.proc.pid]
        try:
            for tid in os.listdir("/proc/%d/task" % self.proc.pid):
                with open("/proc/%d/task/%s/children" % (self.proc.pid,
                                                         tid)) as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def cpu_ns(self):
        return sum(cpu_ns(p) for p in self.pids())

    def stop(self, sig=signal.SIGQUIT, timeout=60):
        if self.proc is None:
            return
        # Under valgrind a signal is sometimes not acted on: repeat it.
        end = time.time() + timeout
        while self.proc.poll() is None and time.time() < end:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        if self in _started:
            _started.remove(self)

    def errors(self):
        """[alert], [crit] and [emerg] lines of its error.log."""
        path = os.path.join(self.prefix, "error.log")
        if not os.path.exists(path):
            return []
        with open(path, errors="replace") as f:
            return [l.rstrip() for l in f
                    if re.search(r"\[(alert|crit|emerg)\]", l)]


def stop_all():
    for n in list(reversed(_started)):
        try:
            n.stop()
        except Exception as e:  # keep stopping the others
            log("stopping %s: %s" % (n.name, e))


def nginx_t(conf, prefix, timeout=600):
    """(wall s, peak RSS KB, [warnings]) of one `nginx -t` pinned to the
    server core.  The peak RSS is GNU time's, which forks nginx from a small
    process: rusage of a fork of this Python process counts its pages too."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "@@ %M",
                        "taskset", "-c", SERVER_CPU, NGINX, "-t",
                        "-p", prefix + "/", "-c", conf],
                       capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    m = re.search(r"@@ (\d+)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError("nginx -t failed: " + r.stderr[-2000:])
    warns = [re.sub(r"^\d+#\d+: ", "", l.split("[warn] ", 1)[1].strip())
             for l in r.stderr.splitlines() if "[warn]" in l]
    return wall, int(m.group(1)), warns


def proc_kb(pid, field):
    """A "kB" field of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for l in f:
                if l.startswith(field + ":"):
                    return int(l.split()[1])
    except OSError:
        pass
    return None


def tail(*paths, lines=15):
    out = []
    for p in paths:
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                out += f.read().splitlines()[-lines:]
    return "\n".join(out)


def cpu_ns(pid):
    """CPU time of every thread of pid in ns (schedstat: ns, not ticks)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
    except OSError:
        pass
    return total


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


# ---- HTTP checks and load ------------------------------------------------

def curl(port, host, path="/"):
    r = subprocess.run(
        ["curl", "-sS", "-m", "10", "-o", "-", "-w", "\n%{http_code}",
         "-H", "Host: " + host, "http://127.0.0.1:%d%s" % (port, path)],
        capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return code, body


def _to_us(value, unit):
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(port, host, duration, connections, script=None, path="/"):
    """One bounded wrk run from the client core; returns a dict."""
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1",
           "-c%d" % connections, "-d%ds" % max(1, round(duration)),
           "--latency",
           "--timeout", "5s", "-H", "Host: " + host]
    if script:
        cmd += ["-s", script]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=duration + 60)
    out = r.stdout
    res = {"rps": 0.0, "p50": None, "p99": None, "requests": 0,
           "errors": 0, "raw": out + r.stderr}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % q, out, re.M)
        if m:
            res["p" + q] = _to_us(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    return res


def host_script(path, hosts):
    """A wrk script that sends the given Host values in turn."""
    with open(path, "w") as f:
        f.write("local hosts = {\n")
        for h in hosts:
            f.write('  "%s",\n' % h)
        f.write("}\nlocal i = 0\n"
                "request = function()\n"
                "  i = i % #hosts + 1\n"
                "  wrk.headers[\"Host\"] = hosts[i]\n"
                "  return wrk.format()\n"
                "end\n")
    return path


# ---- formatting ----------------------------------------------------------

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="%.0f"):
    return "-" if x is None else spec % x


def table(headers, rows):
    """A Markdown table, columns padded for reading in a terminal."""
    cols = list(zip(*([headers] + rows)))
    widths = [max(len(str(c)) for c in col) for col in cols]
    def line(cells):
        return "| " + " | ".join(str(c).ljust(w)
                                 for c, w in zip(cells, widths)) + " |"
    out = [line(headers),
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


_machine = []


def machine():
    """What ran, where and when; the first call fixes it (call it first)."""
    if _machine:
        return _machine[0]
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    model = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ver = subprocess.run([NGINX, "-v"], capture_output=True,
                         text=True).stderr.strip()
    rev = subprocess.run(["git", "-C", REPO, "describe", "--always",
                          "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"
    load = os.getloadavg()[0]
    _machine.append(
        "%s, commit %s; %d cores (%s), %s, kernel %s; client on CPU %s, "
        "servers on CPU %s; load average %.2f at the start" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev,
            os.cpu_count(), model, ver.replace("nginx version: ", ""),
            os.uname().release, CLIENT_CPU, SERVER_CPU, load))
    return _machine[0]
