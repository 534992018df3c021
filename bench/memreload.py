#!/usr/bin/python3
"""What a live map reload costs a multi-process server (memory and CPU).

For each MPM (prefork, event) and each number of child processes (8, 32):
one httpd with exactly that many children kept alive (no child is started
or stopped by the MPM's spare-server logic), one TLS virtual host that
requires a client certificate, CertAuthzMapFile with a generated map of
--map-lines exact rules (`cn:user-NNNNNNN userNNNNNNN gNN`, the benchmark
client on the last line), CertAuthzReloadInterval 1, Require cert-mapped.

  1. After the start (every child up, new connections sent until every
     child has answered, bounded): the sum of Pss (/proc/PID/smaps_rollup)
     over the parent and the children, and their CPU time.
  2. --reloads times: the map file is replaced atomically (a temporary
     file, then rename(2)) by a changed version (the client mapped to
     another user, 1 % of the other lines changed), and the benchmark
     waits (bounded) until every child process has logged that it serves
     the new version: CERTAUTHZ0030 (the child reparsed the file itself)
     or CERTAUTHZ0040 (the child took an image compiled by another
     process), each with the new file's SHA-256 and the child's pid.  A
     child that started after the change counts as served.  Then it waits
     until the old generation is freed in each child (CERTAUTHZ0036,
     debug level) and a few seconds more, and samples Pss and CPU again;
     new connections then check that every answer names the new user.
  3. "One load": the CPU time of `certauthz check MAP` (the same parser),
     and the parent's own CERTAUTHZ0002 load time.

Reload CPU is the CPU of every httpd process from the rename to the end of
the settling, less the idle CPU of the same processes over as long (the
idle rate is measured before the first reload); both are reported.  The
time until every child serves the new version is taken from the error
log's own timestamps (ErrorLogFormat %{cu}t), against the wall clock of
the rename.

Nothing here is a timed assertion: the benchmark reports numbers.  It
exits non-zero only when something did not work: a server did not start,
a child never served the new version within --reload-timeout, an answer
named the wrong user after every child had logged the new version.

Standard library only; run with /usr/bin/python3 (as root: httpd drops
to User nobody).  Only 127.0.0.1 is used; every wait is bounded; every
httpd started is stopped on exit.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import e2e  # noqa: E402  (its helpers: certificates, processes, cleanup)
from e2e import (CLEANUP, CLK_TCK, die, free_port, https_get,  # noqa: E402
                 log, machine_busy_ticks, make_certs, on_signal, read_stat)

SRCDIR = Path(os.environ.get("CERTAUTHZ_SRCDIR") or HERE.parent).resolve()
BUILDDIR = Path(os.environ.get("CERTAUTHZ_BUILDDIR") or SRCDIR).resolve()

GROUP = "bench"
USER = "bench-user"
ALL_MPMS = ["prefork", "event"]

MODULES = ["unixd", "authz_core", "socache_shmcb", "ssl", "headers",
           "log_config"]

# summed from /proc/PID/smaps_rollup (Pss_Anon/_File/_Shmem: Linux 5.9+)
MEM_FIELDS = ["Pss", "Rss", "Pss_Anon", "Pss_File", "Pss_Shmem"]


class Failed(Exception):
    """Something did not work in one (MPM, children) run: reported, the
    other runs go on, the exit status is 1."""


# --------------------------------------------------------------------------
# files (certificates, cleanup, processes: bench/e2e.py's helpers)


def write_file(path, data, mode=0o644):
    """Write data (bytes) to path atomically: a temporary file next to it,
    then rename(2)."""
    path = Path(path)
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# maps


def map_user(version):
    return "%s-v%d" % (USER, version)


def map_text(lines, version):
    """Version `version` of the map: lines - 1 exact cn: rules, then the
    client's.  From one version to the next the client's user changes, and
    so does the user of every 100th filler line (1 %)."""
    out = []
    for i in range(1, lines):
        if i % 100 == 0:
            out.append("cn:user-%07d user%07d-v%d g%d\n"
                       % (i, i, version, i % 100))
        else:
            out.append("cn:user-%07d user%07d g%d\n" % (i, i, i % 100))
    out.append("cn:bench-client %s %s\n" % (map_user(version), GROUP))
    return "".join(out).encode()


# --------------------------------------------------------------------------
# /proc


def smaps_rollup(pid):
    """{field: kB} of /proc/PID/smaps_rollup (Rss, Pss, ...); {} when the
    process is gone."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        return {}
    return out


# --------------------------------------------------------------------------
# the error log

# "[%{cu}t] [%-m:%l] [pid %P] %M" (no %T: an unthreaded MPM has none, and
# httpd then drops the rest of the field)
TS_RE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\] "
                   r"\[[^\]]*\] \[pid (\d+)\] (.*)$")
PID_RE = re.compile(r"\[pid (\d+)")
RELOADED_RE = re.compile(
    r"CERTAUTHZ0030: map (.+?) reloaded in (\d+) ms: generation (\d+) "
    r"\(was (\d+)\), (\d+) rules, (\d+) deny, sha256 ([0-9A-Fa-f]{64})")
IMAGE_RE = re.compile(
    r"CERTAUTHZ0040: map (.+?): generation (\d+) \(was (\d+)\) from image "
    r"(\S+), sha256 ([0-9A-Fa-f]{64})")
FREED_RE = re.compile(r"CERTAUTHZ0036: map (.+?): generation (\d+) freed")
LOADED_RE = re.compile(r"CERTAUTHZ0002: map (.+?) loaded in (\d+) ms")


def log_time(text):
    """Seconds since the epoch of an ErrorLogFormat %{cu}t stamp (local
    time, microseconds); None when it does not parse."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            pass
    return None


class LogReader:
    """Reads the lines added to the error log since the last call; each as
    (seen wall clock, log time or None, pid or None, message)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def skip_to_end(self):
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = 0
        self.partial = b""

    def new_lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        now = time.time()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        out = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            m = TS_RE.match(line)
            if m:
                out.append((now, log_time(m.group(1)), int(m.group(2)),
                            m.group(3)))
                continue
            m = PID_RE.search(line)      # another format: wall clock only
            out.append((now, None, int(m.group(1)) if m else None, line))
        return out


# --------------------------------------------------------------------------
# the httpd instance

CONF = """\
# generated by bench/memreload.py
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
ServerName localhost
{user}
Listen 127.0.0.1:{port}
{modules}

# exactly {n} child processes, none started or stopped after the start
{mpm_conf}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 5
Timeout 30

ErrorLog "{r}/logs/error.log"
ErrorLogFormat "[%{{cu}}t] [%-m:%l] [pid %P] %M"
LogLevel warn certauthz:debug
LogFormat "%P %>s %U %{{X-Certauthz-User}}o" bench
CustomLog "{r}/logs/access.log" bench

SSLSessionCache "shmcb:{r}/run/ssl_scache(512000)"
SSLRandomSeed startup builtin
SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1

DocumentRoot "{r}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{r}/htdocs">
    AllowOverride None
    Require all granted
</Directory>

Header always set X-Certauthz-User "%{{CERTAUTHZ_USER}}e"

<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile "{r}/conf/server.crt"
    SSLCertificateKeyFile "{r}/conf/server.key"
    SSLCACertificateFile "{r}/conf/ca.crt"
    SSLVerifyClient require
    SSLVerifyDepth 2
    CertAuthzReloadInterval 1
    <Location /certauthz/>
        CertAuthzMapFile "{map}"
        Require cert-mapped
    </Location>
</VirtualHost>
"""

PREFORK_CONF = """\
StartServers {n}
MinSpareServers {n}
MaxSpareServers {n}
ServerLimit {n}
MaxRequestWorkers {n}"""

# MaxSpareThreads = every thread: an all-idle server stops no child;
# MinSpareThreads 1 and ServerLimit = StartServers: a busy one starts none
EVENT_CONF = """\
StartServers {n}
ServerLimit {n}
ThreadLimit {t}
ThreadsPerChild {t}
MaxRequestWorkers {w}
MinSpareThreads 1
MaxSpareThreads {w}"""


class Httpd:
    def __init__(self, args, root, certs, mpm, children):
        self.args = args
        self.root = Path(root)
        self.certs = certs
        self.mpm = mpm
        self.children = children
        self.proc = None
        self.port = None
        self.error_log = self.root / "logs" / "error.log"
        self.access_log = self.root / "logs" / "access.log"
        self.map = self.root / "conf" / "live.map"
        for d in ("conf", "logs", "run", "htdocs/certauthz"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(certs["server"].crt, self.root / "conf" / "server.crt")
        shutil.copy(certs["server"].key, self.root / "conf" / "server.key")
        shutil.copy(certs["ca"].crt, self.root / "conf" / "ca.crt")
        write_file(self.root / "htdocs" / "certauthz" / "ok.txt", b"OK\n")

    def config(self):
        mods = ["LoadModule mpm_%s_module %s" % (
            self.mpm, Path(self.args.modules_dir) / ("mod_mpm_%s.so"
                                                     % self.mpm))]
        for name in MODULES:
            mods.append("<IfModule !%s_module>\n    LoadModule %s_module %s\n"
                        "</IfModule>" % (name, name, Path(
                            self.args.modules_dir) / ("mod_%s.so" % name)))
        mods.append("LoadModule certauthz_module %s" % self.args.module)
        n = self.children
        if self.mpm == "prefork":
            mpm_conf = PREFORK_CONF.format(n=n)
        else:
            t = self.args.threads
            mpm_conf = EVENT_CONF.format(n=n, t=t, w=n * t)
        return CONF.format(
            r=self.root, port=self.port, n=n, mpm_conf=mpm_conf,
            user="User nobody\nGroup nogroup" if os.geteuid() == 0 else "",
            modules="\n".join(mods), map=self.map)

    def start(self, timeout):
        conf = self.root / "conf" / "httpd.conf"
        for _attempt in range(3):
            self.port = free_port()
            write_file(conf, self.config().encode())
            for dirpath, _dirs, files in os.walk(self.root):
                os.chmod(dirpath, 0o755)
                for f in files:
                    os.chmod(os.path.join(dirpath, f), 0o644)
            for f in (self.error_log, self.access_log):
                try:
                    os.unlink(f)
                except OSError:
                    pass
            t0 = time.monotonic()
            self.stderr = open(self.root / "logs" / "stderr.log", "w+")
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            self.proc = subprocess.Popen(
                [self.args.httpd, "-d", str(self.root), "-f", str(conf),
                 "-DFOREGROUND"],
                stdout=self.stderr, stderr=subprocess.STDOUT,
                start_new_session=True, env=env)
            CLEANUP.servers.append(self)
            err = self._wait_ready(t0 + timeout)
            if err is None:
                self.startup_seconds = time.monotonic() - t0
                return
            self.stop()
            if "Address already in use" not in err:
                raise Failed("httpd (%s, %d children) did not start: %s\n%s"
                             % (self.mpm, self.children, err,
                                self.log_tail()))
        raise Failed("httpd did not start: no free port")

    def _wait_ready(self, deadline):
        """Up when it answers 200 and has all its children."""
        ctx = e2e.client_context(self.certs, "client")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with %d:\n%s" % (self.proc.returncode,
                                                self.stderr_text())
            try:
                status, _ = https_get(ctx, self.port, "/certauthz/ok.txt",
                                      timeout=5)
                if status == 200 and len(self.kids()) >= self.children:
                    return None
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        return "not ready (200 and %d children) within %d s" % (
            self.children, self.args.start_timeout)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        if self in CLEANUP.servers:
            CLEANUP.servers.remove(self)

    def stderr_text(self):
        try:
            return (self.root / "logs" / "stderr.log").read_text(
                errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        try:
            text = self.error_log.read_text(errors="replace")
        except OSError:
            text = self.stderr_text()
        return "\n".join(text.splitlines()[-n:])

    # ---- processes
    def kids(self):
        """The parent's live child processes (sorted pids)."""
        parent = self.proc.pid
        try:
            with open("/proc/%d/task/%d/children" % (parent, parent)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            out = subprocess.run(["ps", "--ppid", str(parent), "-o", "pid="],
                                 stdout=subprocess.PIPE, timeout=30)
            kids = [int(x) for x in out.stdout.split()]
        return sorted(k for k in kids
                      if (read_stat(k) or ["Z"])[0] not in ("Z", "X"))

    def cpu_ticks(self):
        """Clock ticks of CPU (user + system) used so far by the parent, its
        reaped children and its live children."""
        st = read_stat(self.proc.pid)
        if st is None:
            raise Failed("httpd parent %d is gone" % self.proc.pid)
        # fields after "(comm)": 11 utime, 12 stime, 13 cutime, 14 cstime
        ticks = sum(int(st[i]) for i in (11, 12, 13, 14))
        for k in self.kids():
            s = read_stat(k)
            if s is not None:
                ticks += int(s[11]) + int(s[12])
        return ticks

    def memory(self):
        """{"pss": kB, "rss": kB, "pss_anon": kB, ..., "parent_pss": kB,
        "kids": n}: smaps_rollup's fields summed over the parent and its
        live children."""
        parent = smaps_rollup(self.proc.pid)
        out = {"parent_pss": parent.get("Pss", 0), "kids": 0,
               "child_pss": []}
        for f in MEM_FIELDS:
            out[f.lower()] = parent.get(f, 0)
        for k in self.kids():
            m = smaps_rollup(k)
            if m:
                for f in MEM_FIELDS:
                    out[f.lower()] += m.get(f, 0)
                out["child_pss"].append(m.get("Pss", 0))
                out["kids"] += 1
        return out

    def access_pids(self):
        """pid -> requests answered, from the access log."""
        out = {}
        try:
            with open(self.access_log) as f:
                for line in f:
                    p = line.split(" ", 1)[0]
                    if p.isdigit():
                        out[int(p)] = out.get(int(p), 0) + 1
        except OSError:
            pass
        return out


# --------------------------------------------------------------------------
# the client


def parallel_requests(ctx, port, count, timeout=30):
    """count new connections at once, one request each, every connection
    held open until all have their answer (a prefork child serves one
    connection at a time, so count of them go to count children); returns
    the answers as [(status, X-Certauthz-User)] and the errors."""
    barrier = threading.Barrier(count + 1)
    answers, errors = [], []
    lock = threading.Lock()

    def one():
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                           timeout=timeout)
        try:
            try:
                conn.request("GET", "/certauthz/ok.txt")
                r = conn.getresponse()
                r.read()
                with lock:
                    answers.append((r.status,
                                    r.getheader("X-Certauthz-User")))
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
            try:
                barrier.wait(timeout=timeout)
            except threading.BrokenBarrierError:
                pass
        finally:
            conn.close()

    threads = [threading.Thread(target=one, daemon=True)
               for _ in range(count)]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=timeout + 5)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(timeout=timeout + 5)
    return answers, errors


def touch_children(srv, ctx, want_user):
    """Rounds of parallel new connections until every child has answered
    (from the access log), at least 4 x children requests, at most 12
    rounds.  Returns (children that answered, requests, wrong answers)."""
    n = srv.children
    width = n if srv.mpm == "prefork" else n * srv.args.threads
    width = min(width, 64)
    sent = wrong = 0
    rounds = 0
    while rounds < 12:
        answers, errors = parallel_requests(ctx, srv.port, width)
        rounds += 1
        sent += width
        if errors:
            raise Failed("requests failed: %s" % errors[:3])
        wrong += sum(1 for s, u in answers if s != 200 or u != want_user)
        kids = srv.kids()
        seen = srv.access_pids()
        answered = [k for k in kids if seen.get(k)]
        if sent >= 4 * n and len(answered) == len(kids):
            break
    return len(answered), len(kids), sent, wrong


# --------------------------------------------------------------------------
# one load

def find_cli(args):
    if args.cli:
        return args.cli if os.access(args.cli, os.X_OK) else None
    for p in (BUILDDIR / "certauthz", BUILDDIR / ".libs" / "certauthz",
              BUILDDIR / "tools" / "certauthz"):
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def one_load(args, path, runs):
    """CPU seconds (user + system) of `certauthz check --json MAP`, the
    median of `runs` runs, with the tool's own load_ms and resident bytes;
    None without the tool."""
    cli = find_cli(args)
    if not cli:
        return None
    cpu, load_ms, resident = [], [], []
    for _ in range(runs):
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([cli, "check", "--json", str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=600)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            die("%s check failed (%d): %s" % (cli, p.returncode,
                                              p.stderr.decode()[-2000:]))
        cpu.append(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
        try:
            j = json.loads(p.stdout.decode())["maps"][0]
            load_ms.append(float(j.get("load_ms", 0)))
            resident.append(int(j.get("memory", {}).get("resident_bytes", 0)))
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    return {"tool": cli, "cpu_s": statistics.median(cpu),
            "cpu_s_runs": cpu,
            "load_ms": statistics.median(load_ms) if load_ms else None,
            "resident_mb": (statistics.median(resident) / 2 ** 20
                            if resident else None)}


# --------------------------------------------------------------------------
# one (MPM, children) run

def wait_served(srv, reader, sha, kids_at_change, timeout):
    """Until every live child has logged the new version (sha) or started
    after the change.  Returns {pid: info} of the children that logged it,
    the pids counted as started after the change, and all log lines."""
    served = {}
    lines = []
    deadline = time.monotonic() + timeout
    while True:
        for entry in reader.new_lines():
            lines.append(entry)
            seen, ts, pid, msg = entry
            m = RELOADED_RE.search(msg)
            if m and m.group(7).lower() == sha and pid:
                served.setdefault(pid, {
                    "how": "reparsed", "seen": seen, "ts": ts,
                    "ms": int(m.group(2)), "gen": int(m.group(3)),
                    "was": int(m.group(4))})
                continue
            m = IMAGE_RE.search(msg)
            if m and m.group(5).lower() == sha and pid:
                served.setdefault(pid, {
                    "how": "image", "seen": seen, "ts": ts, "ms": None,
                    "gen": int(m.group(2)), "was": int(m.group(3))})
        kids = srv.kids()
        if srv.proc.poll() is not None:
            raise Failed("httpd exited during the reload:\n%s"
                         % srv.log_tail())
        later = [k for k in kids if k not in kids_at_change]
        pending = [k for k in kids if k not in served and k not in later]
        if not pending:
            return served, later, lines, kids
        if time.monotonic() > deadline:
            raise Failed(
                "%d of %d children did not serve the new version (sha256 %s)"
                " within %d s: pids %s\nerror log:\n%s" % (
                    len(pending), len(kids), sha[:16], timeout,
                    " ".join(map(str, pending)), srv.log_tail(40)))
        time.sleep(0.05)


def wait_freed(srv, reader, served, lines, timeout):
    """Until each child that logged the new version has logged that its
    old generation is freed; returns the pids that did not in time."""
    want = {pid: info["was"] for pid, info in served.items()}
    freed = set()

    def scan(entries):
        for _seen, _ts, pid, msg in entries:
            m = FREED_RE.search(msg)
            if m and pid in want and int(m.group(2)) == want[pid]:
                freed.add(pid)

    scan(lines)
    deadline = time.monotonic() + timeout
    while True:
        live = set(srv.kids())
        missing = [p for p in want if p not in freed and p in live]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)
        new = reader.new_lines()
        lines.extend(new)
        scan(new)


def run_config(args, certs, tmp, mpm, n, versions, one):
    srv = Httpd(args, tmp / ("%s-%d" % (mpm, n)), certs, mpm, n)
    row = {"mpm": mpm, "children": n, "map_lines": args.map_lines,
           "ok": False}
    try:
        return _run_config(args, certs, srv, row, versions, one)
    except Failed as e:
        row["error"] = str(e).splitlines()[0]
        log("  FAILED: %s" % e)
        return row
    finally:
        srv.stop()


def _run_config(args, certs, srv, row, versions, one):
    mpm, n = srv.mpm, srv.children
    log("\n==== %s, %d children%s" % (
        mpm, n, ", %d threads each" % args.threads if mpm == "event" else ""))
    write_file(srv.map, versions(0)[0])
    srv.start(args.start_timeout)
    kids0 = srv.kids()
    ctx = e2e.client_context(certs, "client")
    loads = [int(m.group(2)) for _s, _t, _p, msg in
             LogReader(srv.error_log).new_lines()
             for m in [LOADED_RE.search(msg)] if m]
    row["parent_load_ms"] = loads[-1] if loads else None
    log("  httpd up on 127.0.0.1:%d after %.1f s: %d children; parent's "
        "CERTAUTHZ0002: %s" % (
            srv.port, srv.startup_seconds, len(kids0),
            ", ".join("loaded in %d ms" % x for x in loads) or "not logged"))
    if len(kids0) != n:
        log("  NOTE: %d children, %d configured" % (len(kids0), n))

    answered, live, sent, wrong = touch_children(srv, ctx, map_user(0))
    row["touched"] = "%d/%d" % (answered, live)
    log("  %d requests over new connections: %d of %d children answered"
        "%s" % (sent, answered, live,
                "; %d wrong answers" % wrong if wrong else ""))
    if wrong:
        raise Failed("%d answers before any reload were not 200 %s"
                     % (wrong, map_user(0)))
    time.sleep(1.0)
    mem0 = srv.memory()
    cpu_start = srv.cpu_ticks()
    row["pss_start_kb"] = mem0["pss"]
    row["parent_pss_start_kb"] = mem0["parent_pss"]
    row["rss_start_kb"] = mem0["rss"]
    for f in ("pss_anon", "pss_file", "pss_shmem"):
        row[f + "_start_kb"] = mem0[f]
    log("  after the start: Pss %s (parent %.1f MB, children %s MB), Rss "
        "%.1f MB" % (fmt_pss(mem0), mem0["parent_pss"] / 1024,
                     fmt_spread([x / 1024 for x in mem0["child_pss"]],
                                "%.1f"), mem0["rss"] / 1024))

    # idle CPU of all the processes, per second
    t0 = time.monotonic()
    c0 = srv.cpu_ticks()
    time.sleep(args.idle_seconds)
    c1 = srv.cpu_ticks()
    idle_rate = (c1 - c0) / CLK_TCK / (time.monotonic() - t0)
    row["idle_cpu_per_s"] = idle_rate
    log("  idle: %.3f CPU s per s over %.1f s" % (idle_rate,
                                                  args.idle_seconds))

    reader = LogReader(srv.error_log)
    reader.skip_to_end()
    row["reloads"] = []
    for k in range(1, args.reloads + 1):
        data, sha = versions(k)
        tmpf = srv.map.with_name(".live.map.new")
        with open(tmpf, "wb") as f:
            f.write(data)
        os.chmod(tmpf, 0o644)
        reader.new_lines()          # whatever came before
        cpu0 = srv.cpu_ticks()
        busy0 = machine_busy_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t_mono = time.monotonic()
        t_replace = time.time()
        os.replace(tmpf, srv.map)
        kids_at_change = set(srv.kids())
        served, later, lines, kids = wait_served(
            srv, reader, sha, kids_at_change, args.reload_timeout)
        t_last_seen = time.monotonic()
        stamps = [i["ts"] for i in served.values() if i["ts"] is not None]
        if len(stamps) == len(served) and stamps:
            until_all = max(stamps) - t_replace
            until_first = min(stamps) - t_replace
            clock = "log"
        else:
            until_all = max([i["seen"] for i in served.values()]
                            or [t_replace]) - t_replace
            until_first = min([i["seen"] for i in served.values()]
                              or [t_replace]) - t_replace
            clock = "seen"
        # settle: the old generation freed in each child, and a few seconds
        missing = wait_freed(srv, reader, served, lines, args.freed_timeout)
        rest = args.settle - (time.monotonic() - t_last_seen)
        if rest > 0:
            time.sleep(rest)
        cpu1 = srv.cpu_ticks()
        busy1 = machine_busy_ticks()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        dur = time.monotonic() - t_mono
        mem = srv.memory()
        raw = (cpu1 - cpu0) / CLK_TCK
        idle = idle_rate * dur
        # CPUs used by everything else (this script included) meanwhile
        mine = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
        background = max(0.0, ((busy1 - busy0) - (cpu1 - cpu0)) / CLK_TCK
                         - mine) / dur
        reparsed = [i for i in served.values() if i["how"] == "reparsed"]
        rec = {
            "version": k, "sha256": sha, "children": len(kids),
            "reparsed": len(reparsed),
            "from_image": len(served) - len(reparsed),
            "started_after": len(later),
            "until_all_s": until_all, "until_first_s": until_first,
            "clock": clock,
            "reparse_ms": sorted(i["ms"] for i in reparsed),
            "not_freed": len(missing), "interval_s": dur,
            "cpu_raw_s": raw, "cpu_idle_s": idle, "cpu_s": raw - idle,
            "background_cpus": background,
            "pss_kb": mem["pss"], "parent_pss_kb": mem["parent_pss"],
            "rss_kb": mem["rss"], "pss_anon_kb": mem["pss_anon"],
            "pss_file_kb": mem["pss_file"], "pss_shmem_kb": mem["pss_shmem"],
        }
        # every answer now names the new user (new connections)
        answers, errors = parallel_requests(
            ctx, srv.port, min(64, n if mpm == "prefork" else
                               n * args.threads))
        bad = [a for a in answers if a != (200, map_user(k))]
        rec["checked"] = len(answers)
        rec["stale"] = len(bad)
        row["reloads"].append(rec)
        log("  reload %d: every child serves it %.2f s after the rename "
            "(first %.2f s; %s clock): %d reparsed (%s ms), %d from an "
            "image, %d started after; old generation freed in %d of %d" % (
                k, until_all, until_first, clock, len(reparsed),
                fmt_spread(rec["reparse_ms"], "%.0f"), rec["from_image"],
                len(later), len(served) - len(missing), len(served)))
        log("            CPU %.2f s over %.1f s (idle %.2f s): %.2f s net; "
            "other processes %.2f CPUs; Pss %s (parent %.1f MB), Rss "
            "%.1f MB; check: %d answers, %d not %s" % (
                raw, dur, idle, raw - idle, background, fmt_pss(mem),
                mem["parent_pss"] / 1024, mem["rss"] / 1024, len(answers),
                len(bad), map_user(k)))
        if errors or bad:
            raise Failed("after reload %d: %d errors (%s), %d answers not "
                         "200 %s: %s" % (k, len(errors), errors[:2],
                                         len(bad), map_user(k), bad[:3]))
    kids1 = srv.kids()
    row["children_changed"] = kids1 != kids0
    if row["children_changed"]:
        log("  NOTE: the set of child processes changed during the run")
    last = row["reloads"][-1]
    cpu = [r["cpu_s"] for r in row["reloads"]]
    row.update({
        "ok": True,
        "pss_after_kb": last["pss_kb"],
        "pss_ratio": last["pss_kb"] / row["pss_start_kb"],
        "reload_cpu_s": statistics.mean(cpu),
        "reload_cpu_raw_s": statistics.mean(r["cpu_raw_s"] for r in
                                            row["reloads"]),
        "reload_cpu_idle_s": statistics.mean(r["cpu_idle_s"] for r in
                                             row["reloads"]),
        "until_all_s": [r["until_all_s"] for r in row["reloads"]],
        "one_load_cpu_s": one["cpu_s"] if one else None,
        "cpu_ratio": (statistics.mean(cpu) / one["cpu_s"]
                      if one and one["cpu_s"] > 0 else None),
        "total_cpu_s": (srv.cpu_ticks() - cpu_start) / CLK_TCK,
    })
    return row


# --------------------------------------------------------------------------
# report

def fmt_pss(mem):
    return "%.1f MB (anon %.1f, file %.1f, shmem %.1f)" % (
        mem["pss"] / 1024, mem["pss_anon"] / 1024, mem["pss_file"] / 1024,
        mem["pss_shmem"] / 1024)


def fmt_spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1 or min(xs) == max(xs):
        return fmt % xs[0]
    return "%s [%s-%s]" % (fmt % statistics.median(xs), fmt % min(xs),
                           fmt % max(xs))


def report(args, rows, one):
    head = ["MPM", "children", "PSS start MB", "PSS after MB",
            "after/start", "reload CPU s", "CPU / one load",
            "all serve it s"]
    table = []

    def each(r, fmt, f):
        return " / ".join(fmt % f(x) for x in r["reloads"])
    for r in rows:
        if not r.get("ok"):
            table.append([r["mpm"], str(r["children"]), "FAILED", "", "", "",
                          "", ""])
            continue
        one_cpu = one["cpu_s"] if one and one["cpu_s"] > 0 else None
        table.append([
            r["mpm"], str(r["children"]),
            "%.1f" % (r["pss_start_kb"] / 1024),
            each(r, "%.1f", lambda x: x["pss_kb"] / 1024),
            each(r, "%.2f", lambda x: x["pss_kb"] / r["pss_start_kb"]),
            each(r, "%.2f", lambda x: x["cpu_s"]),
            each(r, "%.2f", lambda x: x["cpu_s"] / one_cpu)
            if one_cpu else "-",
            each(r, "%.2f", lambda x: x["until_all_s"])])
    width = [max(len(t[i]) for t in table + [head]) for i in range(len(head))]

    def fmt(t):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(t, width)))
    log("")
    log("map: %d lines; %d reloads per row (per-reload columns: the 1st / "
        "2nd / ...)" % (args.map_lines, args.reloads))
    log(fmt(head))
    log("-" * len(fmt(head)))
    for t in table:
        log(fmt(t))
    log("")
    log("PSS: sum of Pss (/proc/PID/smaps_rollup) over the parent and every "
        "child, after the start (each child having answered) and after each "
        "reload (old generations freed, settled); it counts only the pages "
        "a process has mapped in, so a map file mapped but only sparsely "
        "touched by lookups counts little")
    log("reload CPU: utime+stime of every httpd process (/proc/PID/stat, "
        "%d ms ticks) from the rename to the settling, less the idle CPU "
        "over as long" % (1000 // CLK_TCK))
    if one:
        log("one load: `%s check` of the same map: %.2f CPU s (median of %s;"
            " its load_ms %s, map %s MB resident)" % (
                one["tool"], one["cpu_s"],
                ", ".join("%.2f" % x for x in one["cpu_s_runs"]),
                "%.0f" % one["load_ms"] if one["load_ms"] is not None
                else "?", "%.0f" % one["resident_mb"]
                if one["resident_mb"] is not None else "?"))
    else:
        log("one load: certauthz (the command-line tool) not built: no CPU "
            "figure; the parent's CERTAUTHZ0002 load times: %s" % ", ".join(
                "%s ms" % r.get("parent_load_ms") for r in rows))
    bg = [x["background_cpus"] for r in rows if r.get("ok")
          for x in r["reloads"]]
    if bg:
        log("other processes during the reloads: median %.2f CPUs, max %.2f "
            "(of %d)" % (statistics.median(bg), max(bg), os.cpu_count()))
        if statistics.median(bg) > 0.25:
            log("WARNING: other processes were busy during the reloads: the "
                "CPU and time figures are disturbed; measure on a quiet "
                "machine")
    log("all serve it: seconds from the rename to the last child's "
        "CERTAUTHZ0030/0040 line with the new sha256, per reload")
    for r in rows:
        if r.get("ok"):
            last = r["reloads"][-1]
            log("  %s/%d: raw %.2f s, idle %.2f s per reload; parent's load "
                "%s ms; Pss start -> after the last reload: anon %.1f -> "
                "%.1f MB, file %.1f -> %.1f MB, parent %.1f -> %.1f MB; "
                "children answered %s" % (
                    r["mpm"], r["children"], r["reload_cpu_raw_s"],
                    r["reload_cpu_idle_s"], r.get("parent_load_ms"),
                    r["pss_anon_start_kb"] / 1024,
                    last["pss_anon_kb"] / 1024,
                    r["pss_file_start_kb"] / 1024,
                    last["pss_file_kb"] / 1024,
                    r["parent_pss_start_kb"] / 1024,
                    last["parent_pss_kb"] / 1024, r["touched"]))
        else:
            log("  %s/%d: FAILED: %s" % (r["mpm"], r["children"],
                                         r.get("error")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: str(v) for k, v in vars(args).items()},
                       "machine": args.machine, "one_load": one,
                       "rows": rows}, f, indent=1)
        log("rows: %s" % args.json)


def machine_info(args):
    info = e2e.machine_info(args)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_mb"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return info

def print_header(args):
    info = machine_info(args)
    log("machine: nproc=%s; CPU %s; %s MB; kernel %s" % (
        info.get("nproc"), info.get("cpu", "?"), info.get("mem_mb", "?"),
        info.get("kernel")))
    log("httpd:   %s;  %s" % (info.get("httpd"), info.get("openssl")))
    log("load average at start: %s" % info.get("load", "?"))
    log("command: %s" % " ".join(shlex.quote(a) for a in
                                 [sys.executable] + sys.argv))
    return info


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description="What a live map reload costs a multi-process httpd: "
        "Pss and CPU of every process, and the time until every child "
        "serves the new version.")
    ap.add_argument("--mpms", default=None,
                    help="comma-separated subset of %s (default all)"
                    % ",".join(ALL_MPMS))
    ap.add_argument("--children", default=None,
                    help="comma-separated child process counts (default "
                    "8,32; --quick: 4)")
    ap.add_argument("--map-lines", type=int, default=None,
                    help="lines of the map (default 1000000; --quick: "
                    "20000)")
    ap.add_argument("--reloads", type=int, default=2,
                    help="map replacements per server (default 2)")
    ap.add_argument("--threads", type=int, default=2,
                    help="ThreadsPerChild of the event MPM (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help="a small smoke run: 20000 lines, 4 children, "
                    "shorter idle and settle waits")
    ap.add_argument("--idle-seconds", type=float, default=None,
                    help="idle CPU measured over this long (default 3; "
                    "--quick 1)")
    ap.add_argument("--settle", type=float, default=None,
                    help="wait at least this long after the last child's "
                    "line before sampling (default 3; --quick 1)")
    ap.add_argument("--reload-timeout", type=float, default=120.0,
                    help="bound on the wait for every child to serve the "
                    "new version (default 120 s)")
    ap.add_argument("--freed-timeout", type=float, default=30.0,
                    help="bound on the wait for the old generation to be "
                    "freed (default 30 s; not a failure)")
    ap.add_argument("--start-timeout", type=float, default=300.0)
    ap.add_argument("--load-runs", type=int, default=None,
                    help="runs of `certauthz check` for one load (default "
                    "3; --quick 1)")
    ap.add_argument("--json", help="write the rows to this file")
    e2e.add_program_args(ap, loadgen=False)
    ap.add_argument("--cli", default=None,
                    help="the certauthz tool (default: the build tree's)")
    args = ap.parse_args()

    q = args.quick
    args.mpms = [m for m in (args.mpms or ",".join(ALL_MPMS)).split(",")
                 if m]
    try:
        args.children = [int(x) for x in (args.children or
                                          ("4" if q else "8,32")).split(",")
                         if x]
    except ValueError:
        ap.error("--children: comma-separated numbers")
    if args.map_lines is None:
        args.map_lines = 20000 if q else 1000000
    if args.idle_seconds is None:
        args.idle_seconds = 1.0 if q else 3.0
    if args.settle is None:
        args.settle = 1.0 if q else 3.0
    if args.load_runs is None:
        args.load_runs = 1 if q else 3
    for m in args.mpms:
        if m not in ALL_MPMS:
            ap.error("unknown MPM %s" % m)
    if not (args.mpms and args.children
            and all(1 <= n <= 256 for n in args.children)
            and 100 <= args.map_lines <= 20000000
            and 1 <= args.reloads <= 100 and 1 <= args.threads <= 64
            and 0.1 <= args.idle_seconds <= 600
            and 0 <= args.settle <= 600
            and 1 <= args.reload_timeout <= 3600
            and 0 <= args.freed_timeout <= 3600
            and 1 <= args.start_timeout <= 3600
            and 1 <= args.load_runs <= 20):
        ap.error("an option is out of range")
    for what, path in (("module", args.module), ("mkcert", args.mkcert),
                       ("httpd", args.httpd)):
        if not os.access(path, os.X_OK if what != "module" else os.R_OK):
            die("%s not found: %s (build with `make` and `make t/mkcert`)"
                % (what, path))
    for m in args.mpms:
        so = Path(args.modules_dir) / ("mod_mpm_%s.so" % m)
        if not so.exists():
            die("%s not found" % so)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="certauthz-memreload-"))
    os.chmod(tmp, 0o755)
    if args.keep:
        log("keeping %s" % tmp)
    else:
        CLEANUP.dirs.append(tmp)

    args.machine = print_header(args)
    certs = make_certs(tmp, args.mkcert)

    cache = {}

    def versions(k):
        """(bytes, sha256 hex) of map version k."""
        if k not in cache:
            data = map_text(args.map_lines, k)
            cache.clear()           # one at a time: maps can be large
            cache[k] = (data, hashlib.sha256(data).hexdigest())
        return cache[k]

    t0 = time.monotonic()
    data, sha = versions(0)
    probe = tmp / "one-load.map"
    write_file(probe, data)
    log("map: %d lines, %.1f MB, generated in %.1f s (version 0 sha256 %s)"
        % (args.map_lines, len(data) / 1e6, time.monotonic() - t0,
           sha[:16]))
    one = one_load(args, probe, args.load_runs)
    probe.unlink()
    if one:
        log("one load (`certauthz check`): %.2f CPU s, load_ms %s" % (
            one["cpu_s"], one["load_ms"]))

    rows = []
    for mpm in args.mpms:
        for n in args.children:
            rows.append(run_config(args, certs, tmp, mpm, n, versions, one))
    report(args, rows, one)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
