#!/usr/bin/python3
"""End-to-end benchmark of mod_certauthz (issue 4, "Scale").

One httpd (event MPM, one child process), one TLS virtual host that
requires a client certificate, and one <Location> per way of authorizing
that certificate, each serving the same tiny static file:

  /base/       Require all granted                          (the baseline)
  /certauthz/  CertAuthzMapFile (10^6 lines of mixed exact rules)
               + Require cert-group bench
  /expr/       Require expr "%{SSL_CLIENT_S_DN_CN} in {...1,000 names...}"
  /fba1k/      SSLOptions +FakeBasicAuth + AuthBasicProvider file
  /fba100k/      + AuthGroupFile, Require group bench, with an htpasswd of
               1,000 / 100,000 lines

Every variant is checked first (200 for the benchmark client, 403 for a
second, known but not allowed certificate).  Then bench/loadgen (C, one
TLS keep-alive connection per thread) runs against each variant in turn,
for several rounds, alternating; the server's CPU time is read from the
httpd processes' own accounting (/proc/PID/stat) before and after each run.
The table gives requests per second and server CPU microseconds per
request, each also as a ratio to /base/ of the same round.

--reload: "reload under load": the certauthz variant with
CertAuthzReloadInterval 1 while the map file is replaced every second.

Standard library only; run with /usr/bin/python3.  Only 127.0.0.1 is
used; every wait is bounded; every httpd started is stopped on exit.
"""

import argparse
import atexit
import base64
import hashlib
import http.client
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRCDIR = Path(os.environ.get("CERTAUTHZ_SRCDIR") or HERE.parent).resolve()
BUILDDIR = Path(os.environ.get("CERTAUTHZ_BUILDDIR") or SRCDIR).resolve()

CLIENT_SUBJECT = "/O=Bench/CN=bench-client"
OTHER_SUBJECT = "/O=Bench/CN=bench-other"
CLIENT_EMAIL = "bench-client@bench.example"
CLIENT_DNS = "bench-client.bench.example"
CLIENT_URI = "spiffe://bench.example/ns/bench/sa/client"
CLIENT_UPN = "bench-client@corp.bench.example"
CLIENT_SERIAL = "5EC0FFEE0B0E"
OTHER_SERIAL = "5EC0FFEE0B0F"
GROUP = "bench"
USER = "bench-user"

ALL_VARIANTS = ["base", "certauthz", "expr", "fba1k", "fba100k"]
# diagnostic variants, only when named in --variants
EXTRA_VARIANTS = ["certauthz-granted", "certauthz-noenv", "certauthz-shadow"]

# the password mod_ssl's FakeBasicAuth sends is the literal "password";
# these are hashes of it in the htpasswd formats mod_authn_file accepts
FBA_HASHES = {
    # the mod_ssl manual's example: crypt(3) DES with salt "xx"
    "crypt": "xxj31ZMTZzkVA",
    "sha1": "{SHA}" + base64.b64encode(
        hashlib.sha1(b"password").digest()).decode(),
}

MODULES = ["mpm_event", "unixd", "authz_core", "authn_core", "authn_file",
           "auth_basic", "authz_user", "authz_groupfile", "socache_shmcb",
           "ssl", "headers", "log_config"]


def log(msg=""):
    print(msg, flush=True)


def die(msg):
    # the benchmark that failed (bench/instr.py and bench/memreload.py use
    # these helpers too)
    sys.stderr.write("%s: %s\n" % (Path(sys.argv[0]).stem or "e2e", msg))
    sys.exit(1)


# --------------------------------------------------------------------------
# environment and cleanup

class Cleanup:
    """Processes to stop and directories to remove, whatever happens."""

    def __init__(self):
        self.servers = []
        self.dirs = []
        atexit.register(self.run)

    def run(self):
        for s in list(self.servers):
            s.stop()
        self.servers.clear()
        for d in list(self.dirs):
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


CLEANUP = Cleanup()


def on_signal(signum, _frame):
    # leave through atexit (stops httpd, removes the temp dir)
    raise SystemExit(128 + signum)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run(cmd, timeout=120, check=True):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode("utf-8", errors="replace")
    if check and p.returncode != 0:
        die("%s failed (%d):\n%s" % (" ".join(map(str, cmd)), p.returncode,
                                     out))
    return out


def write(path, text, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# certificates

class Cert:
    def __init__(self, prefix):
        self.prefix = str(prefix)
        self.crt = self.prefix + ".crt"
        self.key = self.prefix + ".key"
        with open(self.prefix + ".der", "rb") as f:
            self.der = f.read()

    @property
    def sha256(self):
        return hashlib.sha256(self.der).hexdigest().upper()


def make_certs(d, mkcert):
    def mk(name, *args):
        run([mkcert, "--out", d / name] + list(args), timeout=60)
        return Cert(d / name)

    ca = mk("ca", "--ca", "--subject", "/O=Bench/CN=Bench CA", "--days",
            "3650")
    server = mk("server", "--issuer", d / "ca", "--subject",
                "/O=Bench/CN=localhost", "--san", "ip:127.0.0.1", "--san",
                "dns:localhost")
    client = mk("client", "--issuer", d / "ca", "--subject", CLIENT_SUBJECT,
                "--serial", CLIENT_SERIAL,
                "--san", "email:" + CLIENT_EMAIL, "--san", "dns:" + CLIENT_DNS,
                "--san", "uri:" + CLIENT_URI, "--san", "upn:" + CLIENT_UPN)
    other = mk("other", "--issuer", d / "ca", "--subject", OTHER_SUBJECT,
               "--serial", OTHER_SERIAL,
               "--san", "email:bench-other@bench.example")
    return {"ca": ca, "server": server, "client": client, "other": other}


# --------------------------------------------------------------------------
# generated files

def filler_rule(i, salt):
    """Exact rule number i of the big map: the selector types cycle, every
    value is unique and matches neither benchmark certificate."""
    kind = i % 8
    tag = "%s%07d" % (salt, i)
    if kind == 0:
        sel = "email:user%s@example.org" % tag
    elif kind == 1:
        sel = "cn:user%s" % tag
    elif kind == 2:
        sel = "dns:host%s.example.net" % tag
    elif kind == 3:
        sel = "uri:spiffe://example.org/ns/n%d/sa/s%s" % (i % 97, tag)
    elif kind == 4:
        sel = "sha256:" + hashlib.sha256(tag.encode()).hexdigest().upper()
    elif kind == 5:
        # serial numbers: upper-case hex, no leading zero
        sel = "serial:7%015X" % (i * 2654435761 % (1 << 60))
    elif kind == 6:
        sel = "upn:user%s@corp.example.org" % tag
    else:
        sel = "ip:10.%d.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
    return "%s  u%s  g%d,all\n" % (sel, tag, i % 1000)


def client_selector(kind, client):
    return {
        "email": "email:" + CLIENT_EMAIL,
        "cn": "cn:bench-client",
        "dns": "dns:" + CLIENT_DNS,
        "uri": "uri:" + CLIENT_URI,
        "upn": "upn:" + CLIENT_UPN,
        "sha256": "sha256:" + client.sha256,
        "serial": "serial:" + CLIENT_SERIAL,
    }[kind]


def write_map(path, lines, client_rule, client_pos, salt="", head=""):
    """A map of `lines` lines: filler rules, the other certificate mapped
    (to a group that is not allowed) in the middle, the client's rule at
    line client_pos (1-based; negative counts from the end)."""
    if client_pos < 0:
        client_pos = lines + 1 + client_pos
    other_pos = max(2, lines // 2)
    out = [head] if head else []
    n = len(out)
    i = 0
    while n < lines:
        n += 1
        if n == client_pos:
            out.append(client_rule)
        elif n == other_pos:
            out.append("cn:bench-other  other-user  others\n")
        else:
            out.append(filler_rule(i, salt))
            i += 1
    tmp = Path(str(path) + ".gen")
    with open(tmp, "w") as f:
        f.writelines(out)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_fba_files(root, n, pw_hash):
    """htpasswd with n users ("/O=Bench/CN=user000123" as mod_ssl's
    FakeBasicAuth spells the subject DN), the client near the end and the
    other certificate in the middle; a group file with every user, 100 to
    a group, the client in group `bench` (the last line), the other one in
    group `others`."""
    client_dn, other_dn = CLIENT_SUBJECT, OTHER_SUBJECT
    users = ["/O=Bench/CN=user%06d" % i for i in range(n - 2)]
    users.insert(len(users) // 2, other_dn)
    users.insert(len(users) - 1 if users else 0, client_dn)
    pw = root / ("fba%d.htpasswd" % n)
    with open(pw, "w") as f:
        for u in users:
            f.write("%s:%s\n" % (u, pw_hash))
    os.chmod(pw, 0o644)
    plain = [u for u in users if u not in (client_dn, other_dn)]
    groups = root / ("fba%d.groups" % n)
    with open(groups, "w") as f:
        for g in range(0, len(plain), 100):
            f.write("g%d: %s\n" % (g // 100, " ".join(plain[g:g + 100])))
        f.write("others: %s\n" % other_dn)
        f.write("%s: %s\n" % (GROUP, client_dn))
    os.chmod(groups, 0o644)
    return pw, groups


def expr_names(n):
    names = ["n%d" % i for i in range(1, n)]
    names.append("bench-client")      # last: the worst case of a list
    return names


# --------------------------------------------------------------------------
# the httpd instance

CONF = """\
# generated by bench/e2e.py
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
ServerName localhost
{user}
Listen 127.0.0.1:{port}
{modules}

# one child process with a fixed set of threads serves everything, so its
# CPU time can be read before and after each run
StartServers 1
ServerLimit 1
ThreadsPerChild 25
ThreadLimit 25
MinSpareThreads 1
MaxSpareThreads 75
MaxRequestWorkers 25
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
Timeout 30

ErrorLog "{r}/logs/error.log"
LogLevel warn

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

# the same response headers on every variant (the checks read them)
Header always set X-Certauthz-User "%{{CERTAUTHZ_USER}}e"
Header always set X-Certauthz-Rule "%{{CERTAUTHZ_RULE}}e"
Header always set X-Remote-User "expr=%{{REMOTE_USER}}"

<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile "{r}/conf/server.crt"
    SSLCertificateKeyFile "{r}/conf/server.key"
    SSLCACertificateFile "{r}/conf/ca.crt"
    SSLVerifyClient require
    SSLVerifyDepth 2
{vhost}
</VirtualHost>
"""


def module_lines(modules_dir, module_so):
    out = []
    for name in MODULES:
        out.append("<IfModule !%s_module>\n    LoadModule %s_module %s\n"
                   "</IfModule>" % (name, name,
                                    Path(modules_dir) / ("mod_%s.so" % name)))
    out.append("LoadModule certauthz_module %s" % module_so)
    return "\n".join(out)


def location(path, body):
    return "    <Location %s>\n%s\n    </Location>" % (
        path, "\n".join("        " + l for l in body.strip().split("\n")))


class Httpd:
    def __init__(self, args, root, certs):
        self.args = args
        self.root = Path(root)
        self.certs = certs
        self.proc = None
        self.port = None
        self.error_log = self.root / "logs" / "error.log"
        for d in ("conf", "logs", "run", "htdocs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(certs["server"].crt, self.root / "conf" / "server.crt")
        shutil.copy(certs["server"].key, self.root / "conf" / "server.key")
        shutil.copy(certs["ca"].crt, self.root / "conf" / "ca.crt")
        self.locations = []

    def add_location(self, path, body):
        d = self.root / "htdocs" / path.strip("/")
        write(d / "ok.txt", "OK\n")
        os.chmod(d, 0o755)
        self.locations.append(location(path, body))

    def config(self, vhost_extra=""):
        return CONF.format(
            r=self.root, port=self.port,
            user="User nobody\nGroup nogroup" if os.geteuid() == 0 else "",
            modules=module_lines(self.args.modules_dir, self.args.module),
            vhost="\n".join(([vhost_extra] if vhost_extra else [])
                            + self.locations))

    def start(self, vhost_extra="", timeout=300):
        conf = self.root / "conf" / "httpd.conf"
        for attempt in range(3):
            self.port = free_port()
            write(conf, self.config(vhost_extra))
            for dirpath, _dirs, _files in os.walk(self.root):
                os.chmod(dirpath, 0o755)
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
                die("httpd did not start: %s\n%s" % (err, self.log_tail()))
        die("httpd did not start: no free port")

    def _wait_ready(self, deadline):
        ctx = client_context(self.certs, "client")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with %d:\n%s" % (self.proc.returncode,
                                                self.stderr_text())
            try:
                status, _ = https_get(ctx, self.port, "/base/ok.txt",
                                      timeout=5)
                if status == 200:
                    return None
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        return "no answer within the start timeout"

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
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

    def log_text(self):
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    # ---- CPU accounting
    def pids(self):
        """The parent and its children (the one server process)."""
        parent = self.proc.pid
        kids = []
        try:
            with open("/proc/%d/task/%d/children" % (parent, parent)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = read_stat(int(d))
                    if st is not None and int(st[1]) == parent:
                        kids.append(int(d))
        return parent, sorted(kids)

    def cpu_ticks(self):
        """Clock ticks of CPU used by httpd so far, as (user, system): the
        parent's own and its reaped children's (utime, stime, cutime,
        cstime), plus the live children's utime and stime.  Returns
        (user, system, children)."""
        parent, kids = self.pids()
        st = read_stat(parent)
        if st is None:
            die("httpd parent %d is gone" % parent)
        # fields after "(comm)": 11 utime, 12 stime, 13 cutime, 14 cstime
        user = int(st[11]) + int(st[13])
        system = int(st[12]) + int(st[14])
        for k in kids:
            s = read_stat(k)
            if s is not None:
                user += int(s[11])
                system += int(s[12])
        return user, system, kids

    def rss_kib(self):
        _, kids = self.pids()
        out = {}
        for k in kids:
            try:
                with open("/proc/%d/status" % k) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[k] = int(line.split()[1])
            except OSError:
                pass
        return out


def read_stat(pid):
    """/proc/PID/stat fields after the command name (state is [0]); None
    when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks():
    """Busy clock ticks of all CPUs together (/proc/stat: all but idle and
    iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest* are in user)
    return sum(v[:8]) - v[3] - v[4]


# --------------------------------------------------------------------------
# a Python client for the checks

def client_context(certs, name):
    ctx = ssl.create_default_context(cafile=certs["ca"].crt)
    ctx.load_cert_chain(certs[name].crt, certs[name].key)
    return ctx


def https_get(ctx, port, path, timeout=10):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                       timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


# --------------------------------------------------------------------------
# loadgen

def loadgen_cmd(args, certs, port, path, seconds, conns, expect=(),
                status=200, tally=None, cert="client", per_conn=0):
    cmd = [str(args.loadgen), "-p", str(port), "-c", certs[cert].crt,
           "-k", certs[cert].key, "-a", certs["ca"].crt, "-n", str(conns),
           "-d", str(seconds), "-N", str(args.max_requests), "-u", path]
    if per_conn:
        cmd += ["-r", str(per_conn)]
    if status:
        cmd += ["-s", str(status)]
    for e in expect:
        cmd += ["-e", e]
    if tally:
        cmd += ["-w", tally]
    return cmd


def parse_loadgen(p_out, cmd):
    line = p_out.strip().splitlines()[-1] if p_out.strip() else ""
    try:
        return json.loads(line)
    except ValueError:
        die("loadgen gave no result: %s\n%s" % (" ".join(cmd), p_out))


def run_loadgen(cmd, seconds):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=seconds + 120)
    if p.returncode == 2:
        die("loadgen: %s" % p.stderr.decode(errors="replace"))
    return parse_loadgen(p.stdout.decode(errors="replace"), cmd)


# --------------------------------------------------------------------------
# the benchmark

def variant_setup(args, srv, certs, variants):
    """Write each variant's files and <Location>; returns
    {variant: (url, loadgen expectations)}."""
    root = srv.root / "conf"
    out = {}
    fba_sizes = {"fba1k": 1000, "fba100k": 100000}
    for v in variants:
        url = "/%s/ok.txt" % v
        if v == "base":
            srv.add_location("/base/", "Require all granted")
            out[v] = (url, [])
        elif v in ("certauthz-granted", "certauthz-noenv",
                   "certauthz-shadow"):
            # diagnostic variants (not run by default), after "certauthz"
            # in --variants: where the cost of /certauthz/ goes.
            #   certauthz-granted: the map in scope, Require all granted
            #     (the module's access and fixups hooks, no provider);
            #   certauthz-noenv: /certauthz/ with CertAuthzSetEnv Off;
            #   certauthz-shadow: /certauthz/ with a shadow map (a copy of
            #     the map: every request compared, every one agrees)
            if not (root / "big.map").exists():
                die("--variants: put certauthz before %s" % v)
            body = 'CertAuthzMapFile "%s"\n' % (root / "big.map")
            if v == "certauthz-granted":
                body += "Require all granted"
                out[v] = (url, ["X-Certauthz-User: " + USER])
            elif v == "certauthz-shadow":
                shutil.copy(root / "big.map", root / "shadow.map")
                body += ('CertAuthzShadowMapFile "%s"\nRequire cert-group %s'
                         % (root / "shadow.map", GROUP))
                out[v] = (url, ["X-Certauthz-User: " + USER])
            else:
                body += "CertAuthzSetEnv Off\nRequire cert-group %s" % GROUP
                out[v] = (url, [])
            srv.add_location("/%s/" % v, body)
        elif v == "certauthz":
            t0 = time.monotonic()
            rule = "%s  %s  %s,all\n" % (
                client_selector(args.client_selector, certs["client"]),
                USER, GROUP)
            write_map(root / "big.map", args.map_lines, rule, -10)
            log("  map: %d lines (%.1f MB) of exact rules, types in turn: "
                "email cn dns uri sha256 serial upn ip; the client on line "
                "%d by %s:, written in %.1f s" % (
                    args.map_lines, (root / "big.map").stat().st_size / 1e6,
                    args.map_lines - 9, args.client_selector,
                    time.monotonic() - t0))
            srv.add_location("/certauthz/", 'CertAuthzMapFile "%s"\n'
                             "Require cert-group %s"
                             % (root / "big.map", GROUP))
            out[v] = (url, ["X-Certauthz-User: " + USER])
        elif v == "expr":
            names = ", ".join("'%s'" % n for n in expr_names(args.expr_names))
            srv.add_location("/expr/", 'Require expr "%%{SSL_CLIENT_S_DN_CN} '
                             'in { %s }"' % names)
            out[v] = (url, [])
        elif v in fba_sizes:
            n = fba_sizes[v]
            pw, groups = write_fba_files(root, n, args.fba_hash_value)
            srv.add_location("/%s/" % v, """\
SSLOptions +FakeBasicAuth
AuthType Basic
AuthName "bench"
AuthBasicProvider file
AuthUserFile "%s"
AuthGroupFile "%s"
AuthzSendForbiddenOnFailure On
Require group %s""" % (pw, groups, GROUP))
            out[v] = (url, ["X-Remote-User: " + CLIENT_SUBJECT])
        else:
            die("unknown variant %s" % v)
    return out


def verify(srv, certs, urls):
    """Each variant answers 200 to the client (with the expected identity
    header) and 403 to the other certificate (except /base/)."""
    cctx = client_context(certs, "client")
    octx = client_context(certs, "other")
    bad = []
    for v, (url, expect) in urls.items():
        status, hdrs = https_get(cctx, srv.port, url)
        ok = status == 200
        for e in expect:
            name, _, value = e.partition(":")
            if hdrs.get(name.strip().lower()) != value.strip():
                ok = False
        ostatus, _ = https_get(octx, srv.port, url)
        want_other = 200 if v in ("base", "certauthz-granted") else 403
        log("  %-10s client: %d %s   other certificate: %d (want %d)" % (
            v, status, " ".join("%s=%r" % (e.split(":")[0],
                                           hdrs.get(e.split(":")[0].lower()))
                                for e in expect), ostatus, want_other))
        if not ok or ostatus != want_other:
            bad.append(v)
    if bad:
        die("variant check failed for %s; error log:\n%s" % (
            ", ".join(bad), srv.log_tail()))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_spread(xs, fmt):
    if not xs:
        return "-"
    return "%s [%s-%s]" % (fmt % median(xs), fmt % min(xs), fmt % max(xs))


def machine_info(args):
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["nproc"] = int(run(["nproc"], timeout=10).strip())
    except (OSError, ValueError, SystemExit):
        pass
    v = run([args.httpd, "-v"], timeout=30, check=False)
    info["httpd"] = v.splitlines()[0].split(":", 1)[-1].strip() if v else "?"
    info["openssl"] = ssl.OPENSSL_VERSION
    if shutil.which("openssl"):
        info["openssl"] = run(["openssl", "version"], timeout=10,
                              check=False).strip()
    try:
        info["load"] = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        pass
    return info


def print_header(args):
    info = machine_info(args)
    log("machine: nproc=%s; CPU %s; kernel %s" % (
        info.get("nproc"), info.get("cpu", "?"), info.get("kernel")))
    log("httpd:   %s;  %s" % (info.get("httpd"), info.get("openssl")))
    log("load average at start: %s" % info.get("load", "?"))
    log("command: %s" % " ".join(shlex.quote(a) for a in
                                 [sys.executable] + sys.argv))
    return info


def warm_up(args, srv, certs, urls, variants):
    """A short loadgen run per variant (and a first check of loadgen's
    expectations)."""
    for v in variants:
        url, expect = urls[v]
        cmd = loadgen_cmd(args, certs, srv.port, url, args.warmup,
                          args.conns, expect,
                          per_conn=args.requests_per_conn)
        res = run_loadgen(cmd, args.warmup)
        if res["errors"] or res["wrong"] or not res["requests"]:
            die("warm-up of %s failed: %s\nerror log:\n%s" % (
                v, json.dumps(res), srv.log_tail()))


def measure(args, srv, certs, url, expect):
    """One loadgen run of args.seconds against url: loadgen's result with
    the server's CPU time per request (and the client's, and the rest of
    the machine's) over the run."""
    cmd = loadgen_cmd(args, certs, srv.port, url, args.seconds,
                      args.conns, expect,
                      per_conn=args.requests_per_conn)
    u0, s0, kids_a = srv.cpu_ticks()
    busy0 = machine_busy_ticks()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_loadgen(cmd, args.seconds)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1 = machine_busy_ticks()
    u1, s1, kids_b = srv.cpu_ticks()
    n = res["requests"] or float("nan")
    tick_us = 1e6 / CLK_TCK
    cpu_us = (u1 - u0 + s1 - s0) * tick_us
    client_us = 1e6 * (ru1.ru_utime - ru0.ru_utime
                       + ru1.ru_stime - ru0.ru_stime)
    res["cpu_us_per_req"] = cpu_us / n
    res["user_us_per_req"] = (u1 - u0) * tick_us / n
    res["sys_us_per_req"] = (s1 - s0) * tick_us / n
    res["client_us_per_req"] = client_us / n
    res["server_cpu_s"] = cpu_us / 1e6
    # CPU of everything else on the machine during the run, in
    # CPUs (1.0 = one core busy all the time)
    res["background_cpus"] = max(0.0, (
        (busy1 - busy0) * tick_us - cpu_us - client_us)
        / 1e6 / res["seconds"]) if res["seconds"] else 0.0
    res["children_changed"] = kids_a != kids_b
    return res


def measure_rounds(args, srv, certs, urls, measure_one=None, note=None):
    """args.rounds rounds of every variant, the order rotated each round;
    measure_one(args, srv, certs, url, expect) measures one run (default
    measure()), note(res) adds to its part of the round's line.  Returns
    ({variant: [result per round]}, the children's pids before)."""
    measure_one = measure_one or measure
    log("\nmeasuring: %d rounds x %d variants x %g s, %d connections, %s "
        "(order rotated each round)" % (
            args.rounds, len(args.variants), args.seconds, args.conns,
            "a new connection (full TLS handshake) every %d requests"
            % args.requests_per_conn if args.requests_per_conn
            else "keep-alive"))
    results = {v: [] for v in args.variants}      # per round
    _, kids0 = srv.pids()
    for rnd in range(args.rounds):
        k = rnd % len(args.variants)
        order = args.variants[k:] + args.variants[:k]
        line = []
        for v in order:
            url, expect = urls[v]
            res = measure_one(args, srv, certs, url, expect)
            res["round"] = rnd
            results[v].append(res)
            line.append("%s %.0f/s %.0fus%s" % (
                v, res["rps"], res["cpu_us_per_req"],
                note(res) if note else ""))
            if res["errors"] or res["wrong"]:
                log("  ! %s round %d: %d errors, %d wrong (%s)" % (
                    v, rnd + 1, res["errors"], res["wrong"],
                    res.get("first_error")))
        log("  round %d: %s; background %.2f CPUs" % (
            rnd + 1, ", ".join(line), median(
                [results[v][-1]["background_cpus"] for v in order])))
    return results, kids0


def benchmark(args, certs, tmp):
    srv = Httpd(args, tmp / "server", certs)
    log("setting up (%s)" % srv.root)
    urls = variant_setup(args, srv, certs, args.variants)
    srv.start()
    log("httpd up on 127.0.0.1:%d after %.1f s (map loaded); child RSS %s"
        % (srv.port, srv.startup_seconds,
           ", ".join("%d MiB" % (v // 1024) for v in srv.rss_kib().values())))
    verify(srv, certs, urls)

    warm_up(args, srv, certs, urls, args.variants)

    results, kids0 = measure_rounds(args, srv, certs, urls)
    _, kids1 = srv.pids()
    rss = srv.rss_kib()
    srv.stop()
    report(args, results, kids0 != kids1, rss)
    return results


def report(args, results, kids_changed, rss):
    base = results.get("base")
    head = ["variant", "requests", "req/s median [min-max]", "req/s x base",
            "server CPU us/req median [min-max]", "CPU x base", "p50 us",
            "errors"]
    rows = []
    for v, rs in results.items():
        rps = [r["rps"] for r in rs]
        cpu = [r["cpu_us_per_req"] for r in rs]
        if base and v != "base":
            rr = [r["rps"] / b["rps"] for r, b in zip(rs, base) if b["rps"]]
            cr = [r["cpu_us_per_req"] / b["cpu_us_per_req"]
                  for r, b in zip(rs, base) if b["cpu_us_per_req"]]
            rps_ratio = fmt_spread(rr, "%.3g")
            cpu_ratio = fmt_spread(cr, "%.3g")
        else:
            rps_ratio = cpu_ratio = "1"
        rows.append([v, "%d" % sum(r["requests"] for r in rs),
                     fmt_spread(rps, "%.0f"), rps_ratio,
                     fmt_spread(cpu, "%.1f" if median(cpu) < 100 else "%.0f"),
                     cpu_ratio,
                     "%.0f" % median([r["latency_us"]["p50"] for r in rs]),
                     "%d" % sum(r["errors"] + r["wrong"] for r in rs)])
    width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, width)))
    log("")
    log(fmt(head))
    log("-" * len(fmt(head)))
    for r in rows:
        log(fmt(r))
    log("")
    log("server CPU us/req, user + system (medians): " + ", ".join(
        "%s %.1f+%.1f" % (v, median([r["user_us_per_req"] for r in rs]),
                          median([r["sys_us_per_req"] for r in rs]))
        for v, rs in results.items()))
    log("loadgen CPU us/req (medians): " + ", ".join(
        "%s %.1f" % (v, median([r["client_us_per_req"] for r in rs]))
        for v, rs in results.items()))
    bg = [r["background_cpus"] for rs in results.values() for r in rs]
    log("other processes during the runs: median %.2f CPUs, max %.2f "
        "(of %d)" % (median(bg), max(bg), os.cpu_count()))
    if median(bg) > 0.25:
        log("WARNING: other processes were busy during the runs; the numbers"
            " (CPU per request too) are disturbed: measure on a quiet "
            "machine")
    log("x base: per round against that round's /base/, then the median "
        "[min-max]; errors: transport errors + wrong answers")
    log("server CPU: utime+stime of the httpd processes from /proc/PID/stat"
        " (%d ms ticks) over the run, / requests; p50: loadgen's median "
        "latency" % (1000 // CLK_TCK))
    log("httpd child RSS at the end: %s" % ", ".join(
        "%d MiB" % (v // 1024) for v in rss.values()))
    if kids_changed or any(r["children_changed"] for rs in results.values()
                           for r in rs):
        log("NOTE: the set of httpd child processes changed during the run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: str(v) for k, v in vars(args).items()},
                       "results": results}, f, indent=1)
        log("raw results: %s" % args.json)


# --------------------------------------------------------------------------
# reload under load

def reload_test(args, certs, tmp):
    srv = Httpd(args, tmp / "reload", certs)
    conf = srv.root / "conf"
    live = conf / "live.map"
    n = args.reload_lines
    sel = client_selector(args.client_selector, certs["client"])

    def rule(user):
        return "%s  %s  %s,all\n" % (sel, user, GROUP)

    # phase 1: both maps give the client the same user and group; they
    # differ elsewhere (fillers, and the client's line number, so the rule
    # header shows which one answered)
    maps = {
        "same-a": (rule(USER), -10, "a", ""),
        "same-b": (rule(USER), -20, "b", "# map B\n"),
        # phase 2: the client's user changes with the map
        "switch-a": (rule(USER + "-a"), -10, "a", ""),
        "switch-b": (rule(USER + "-b"), -10, "b", "# map B\n"),
    }
    t0 = time.monotonic()
    for name, (r, pos, salt, head) in maps.items():
        write_map(conf / (name + ".map"), n, r, pos, salt, head)
    log("reload: 4 maps of %d lines written in %.1f s" % (
        n, time.monotonic() - t0))
    shutil.copyfile(conf / "same-a.map", live)
    os.chmod(live, 0o644)
    srv.add_location("/base/", "Require all granted")
    srv.add_location("/certauthz/", 'CertAuthzMapFile "%s"\n'
                     "Require cert-group %s" % (live, GROUP))
    srv.start(vhost_extra="    CertAuthzReloadInterval 1")
    log("httpd up on 127.0.0.1:%d (CertAuthzReloadInterval 1)" % srv.port)
    verify(srv, certs, {"certauthz": ("/certauthz/ok.txt",
                                      ["X-Certauthz-User: " + USER])})

    phases = [
        ("same user, maps differ elsewhere", ["same-a", "same-b"],
         ["X-Certauthz-User: " + USER], "X-Certauthz-Rule"),
        ("user changes with the map", ["switch-a", "switch-b"],
         ["X-Certauthz-User: %s-a" % USER, "X-Certauthz-User: %s-b" % USER],
         "X-Certauthz-User"),
    ]
    failed = False
    for title, names, expect, tally in phases:
        shutil.copyfile(conf / (names[0] + ".map"), conf / ".live.tmp")
        os.replace(conf / ".live.tmp", live)
        time.sleep(1.5)            # let the first map of the phase settle
        log_before = len(srv.log_text().splitlines())
        cmd = loadgen_cmd(args, certs, srv.port, "/certauthz/ok.txt",
                          args.reload_seconds, args.reload_conns, expect,
                          tally=tally)
        lg = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        swaps = 0
        start = time.monotonic()
        end = start + args.reload_seconds
        try:
            # one replacement a second, alternating; bounded in count too
            for i in range(int(args.reload_seconds) + 2):
                nxt = start + 1.0 * (i + 1)
                if nxt >= end - 0.5:
                    break
                time.sleep(max(0.0, nxt - time.monotonic()))
                src = conf / (names[(i + 1) % 2] + ".map")
                shutil.copyfile(src, conf / ".live.tmp")
                os.chmod(conf / ".live.tmp", 0o644)
                os.replace(conf / ".live.tmp", live)
                swaps += 1
            out, err = lg.communicate(timeout=args.reload_seconds + 120)
        finally:
            if lg.poll() is None:
                lg.kill()
                lg.wait(timeout=10)
        if lg.returncode == 2:
            die("loadgen: %s" % err.decode(errors="replace"))
        res = parse_loadgen(out.decode(errors="replace"), cmd)
        new_log = srv.log_text().splitlines()[log_before:]
        non200 = sum(c for s, c in res["status"].items() if s != "200")
        answers = res.get("answers", {})
        if tally == "X-Certauthz-Rule":
            answers = {a.rsplit("/", 1)[-1]: c for a, c in answers.items()}
        log("\nreload phase: %s" % title)
        log("  %d requests in %.1f s (%.0f/s), %d connections, %d map "
            "replacements" % (res["requests"], res["seconds"], res["rps"],
                              args.reload_conns, swaps))
        log("  failed: %d transport errors, %d non-200; wrong answers: %d" % (
            res["errors"], non200, res["wrong"]))
        log("  distinct %s values seen: %d  %s" % (
            tally, len(answers), json.dumps(answers)))
        log("  latency us: %s" % json.dumps(res["latency_us"]))
        reloads = [l for l in new_log if "reload" in l.lower()]
        others = [l for l in new_log if "reload" not in l.lower()]
        log("  error log during the phase: %d lines mentioning a reload, "
            "%d other lines%s" % (len(reloads), len(others),
                                  (" (first: %s)" % others[0][:300])
                                  if others else ""))
        if reloads:
            log("  last reload line: %s" % reloads[-1][:300])
        if len(answers) < 2:
            log("  -> no change seen: live reload not in effect")
        if res["errors"] or non200 or res["wrong"]:
            failed = True
    srv.stop()
    return not failed


# --------------------------------------------------------------------------

def check_programs(args):
    """The programs add_program_args() named are there (else exit)."""
    for what, path in (("module", args.module), ("loadgen", args.loadgen),
                       ("mkcert", args.mkcert), ("httpd", args.httpd)):
        if not os.access(path, os.X_OK if what != "module" else os.R_OK):
            die("%s not found: %s (build with `make bench/loadgen t/mkcert`"
                " or `make bench`)" % (what, path))


def add_load_args(ap, variants):
    """The rounds and the load of measure_rounds(): shared with
    bench/ldap.py."""
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="per (round, variant) run (default 3)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="warm-up run per variant, seconds (default 1)")
    ap.add_argument("--conns", "--threads", dest="conns", type=int,
                    default=4,
                    help="loadgen connections = threads (default 4)")
    ap.add_argument("--variants", default=",".join(variants),
                    help="comma-separated subset of " + ",".join(variants))
    ap.add_argument("--requests-per-conn", type=int, default=0,
                    help="a new TLS connection (full handshake) after this "
                    "many requests (default 0: one connection per loadgen "
                    "thread, kept alive)")
    ap.add_argument("--max-requests", type=int, default=5000000,
                    help="hard cap on requests per loadgen run")


def add_program_args(ap, loadgen=True):
    """--keep and the programs a benchmark runs (httpd, its modules, the
    module under test, loadgen unless told, mkcert): shared with
    bench/ldap.py and bench/memreload.py."""
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--httpd", default=os.environ.get("CERTAUTHZ_HTTPD",
                                                      "/usr/sbin/apache2"))
    ap.add_argument("--modules-dir", default=os.environ.get(
        "CERTAUTHZ_HTTPD_MODULES", "/usr/lib/apache2/modules"))
    ap.add_argument("--module", default=str(BUILDDIR / ".libs" /
                                            "mod_certauthz.so"))
    if loadgen:
        ap.add_argument("--loadgen",
                        default=str(BUILDDIR / "bench" / "loadgen"))
    ap.add_argument("--mkcert", default=str(BUILDDIR / "t" / "mkcert"))


def main():
    ap = argparse.ArgumentParser(
        description="End-to-end benchmark of mod_certauthz against "
        "Require all granted, Require expr and FakeBasicAuth.")
    add_load_args(ap, ALL_VARIANTS)
    ap.add_argument("--map-lines", type=int, default=1000000)
    ap.add_argument("--client-selector", default="email",
                    choices=["email", "cn", "dns", "uri", "upn", "sha256",
                             "serial"],
                    help="the rule type that maps the client (default email)")
    ap.add_argument("--expr-names", type=int, default=1000)
    ap.add_argument("--fba-hash", default="crypt",
                    choices=sorted(FBA_HASHES) + ["apr1", "bcrypt"],
                    help="htpasswd hash of FakeBasicAuth's password "
                    "(default crypt, as in the mod_ssl manual; apr1 and "
                    "bcrypt need htpasswd)")
    ap.add_argument("--json", help="write the raw results to this file")
    ap.add_argument("--reload", action="store_true",
                    help="run the reload-under-load test instead")
    ap.add_argument("--reload-seconds", type=float, default=15.0,
                    help="per reload phase (two phases; default 15)")
    ap.add_argument("--reload-conns", type=int, default=4)
    ap.add_argument("--reload-lines", type=int, default=100000,
                    help="lines of each map in --reload (default 100000)")
    add_program_args(ap)
    args = ap.parse_args()

    args.variants = [v for v in args.variants.split(",") if v]
    for v in args.variants:
        if v not in ALL_VARIANTS + EXTRA_VARIANTS:
            ap.error("unknown variant %s" % v)
    if not (1 <= args.rounds <= 1000 and 0 < args.seconds <= 3600
            and 0 < args.warmup <= 600 and 1 <= args.conns <= 256
            and 0 < args.reload_seconds <= 3600
            and 1 <= args.reload_conns <= 256
            and 100 <= args.map_lines <= 20000000
            and 100 <= args.reload_lines <= 20000000
            and 1 <= args.expr_names <= 100000
            and 0 <= args.requests_per_conn <= 10 ** 9):
        ap.error("an option is out of range")
    check_programs(args)
    if args.fba_hash in FBA_HASHES:
        args.fba_hash_value = FBA_HASHES[args.fba_hash]
    else:
        flag = {"apr1": "-m", "bcrypt": "-B"}[args.fba_hash]
        out = run(["htpasswd", "-nb", flag, "u", "password"], timeout=30)
        args.fba_hash_value = out.strip().split(":", 1)[1]

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="certauthz-bench-"))
    os.chmod(tmp, 0o755)
    if args.keep:
        log("keeping %s" % tmp)
    else:
        CLEANUP.dirs.append(tmp)

    print_header(args)
    certs = make_certs(tmp, args.mkcert)
    for c in certs.values():
        for p in (c.crt, c.key):
            os.chmod(p, 0o644)
    if args.reload:
        ok = reload_test(args, certs, tmp)
        return 0 if ok else 1
    log("FakeBasicAuth password hash: %s (%s)" % (args.fba_hash,
                                                  args.fba_hash_value))
    results = benchmark(args, certs, tmp)
    bad = sum(r["errors"] + r["wrong"] for rs in results.values() for r in rs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
