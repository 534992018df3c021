#!/usr/bin/python3
"""Benchmark of directory-backed identities (CertAuthzLDAP, issue 12).

The httpd of bench/e2e.py (event MPM, one child process, one TLS virtual
host that requires a client certificate) with mod_ldap and mod_status
loaded, and a real slapd (t/server/slapd_harness.py) on loopback whose
directory holds the benchmark client's entry (found by its
userPrincipalName, in group `bench`) among --directory-entries others.
One <Location> per variant, each serving the same tiny static file:

  /base/       Require all granted                          (the baseline)
  /ldap-warm/  CertAuthzLDAP (userPrincipalName={upn}) + CertAuthzLDAPGroups
               memberOf + Require cert-group bench, the default cache TTL:
               after a connection's first request its own cache answers
  /ldap-cold/  the same with CertAuthzLDAPCacheTTL 0, and mod_ldap's caches
               off (LDAPCacheEntries -1, LDAPOpCacheEntries -1): every
               request is one search against slapd (the same search as
               /ldap-warm/'s: another TTL keeps its answers apart)

CertAuthzLDAPBindDN, ...BindPassword and ...Groups are set in each
<Location> (--vhost-settings: once in the virtual host, which httpd then
merges with each <Location>'s CertAuthzLDAP per request).

Every variant is checked first (200 for the benchmark client, 403 for a
second certificate whose UPN has no entry).  Then bench/loadgen (one TLS
keep-alive connection per thread) runs against each variant in turn, for
several rounds, alternating, as in bench/e2e.py; the server's CPU time is
read from /proc/PID/stat before and after each run, and the module's
counters (server-status ?auto, CertAuthzLDAP-*) before and after it.

Reported: bench/e2e.py's table (req/s and server CPU us/request, each as
a ratio to /base/ of the same round), then per round and as medians: the
warm ratio against the issue's target (req/s x base >= 0.97; printed,
never a failure), and for /ldap-cold/ lookups per second, the mean search
latency (CertAuthzLDAP-latency-usec / lookups), and server CPU per
request against /base/.  Exit status 1 when a response was not the
expected one, a directory error was counted, or /ldap-cold/ did not do
one lookup per request.

Standard library only; run with /usr/bin/python3.  Only 127.0.0.1 is
used; every wait is bounded; httpd and slapd are stopped on exit.
"""

import argparse
import http.client
import os
import re
import signal
import ssl
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import e2e  # noqa: E402  (httpd, certificates, loadgen, CPU accounting)

sys.path.insert(0, str(e2e.SRCDIR / "t" / "server"))
import slapd_harness as S  # noqa: E402  (a real slapd from LDIF)

from e2e import GROUP, USER, die, log, median  # noqa: E402

ALL_VARIANTS = ["base", "ldap-warm", "ldap-cold"]
STRANGER_SUBJECT = "/O=Bench/CN=bench-stranger"
STRANGER_UPN = "bench-stranger@corp.bench.example"
PEOPLE = "ou=people," + S.SUFFIX
FILTER = "(userPrincipalName={upn})"
TARGET = 0.97          # the issue's: /ldap-warm/ req/s >= 0.97 x /base/


# --------------------------------------------------------------------------
# the directory

def directory_ldif(n):
    """The bind account, the client's entry (uid bench-user, its UPN, in
    group bench) in the middle of n - 1 others, and the group."""
    people = []
    for i in range(n - 1):
        people.append(S.person(
            "user%06d" % i, ["g%d" % (i % 100)],
            userPrincipalName="user%06d@corp.bench.example" % i,
            mail="user%06d@bench.example" % i))
    people.insert(len(people) // 2, S.person(
        USER, [GROUP, "staff"], cn="bench-client",
        userPrincipalName=e2e.CLIENT_UPN, mail=e2e.CLIENT_EMAIL))
    return "\n".join([S.base_ldif()] + people
                     + [S.group(GROUP, [USER])])


def start_directory(args, tmp):
    t0 = time.monotonic()
    slapd = S.Slapd(directory_ldif(args.directory_entries),
                    workdir=tmp / "slapd")
    e2e.CLEANUP.servers.append(slapd)
    try:
        slapd.start(timeout=60)
    except (RuntimeError, OSError) as e:
        die("slapd did not start: %s" % e)
    log("slapd up on 127.0.0.1:%d after %.1f s: %d entries under %s" % (
        slapd.port, time.monotonic() - t0, args.directory_entries, PEOPLE))
    return slapd


def slapd_ticks(slapd):
    st = e2e.read_stat(slapd.proc.pid) if slapd.proc else None
    if st is None:
        die("slapd is gone")
    return int(st[11]) + int(st[12])


# --------------------------------------------------------------------------
# the httpd instance

class Httpd(e2e.Httpd):
    """bench/e2e.py's httpd, with mod_ldap and mod_status and their
    server-wide settings before the virtual host."""

    def global_conf(self):
        mods = "\n".join(
            "<IfModule !%s_module>\n    LoadModule %s_module %s\n"
            "</IfModule>" % (m, m, Path(self.args.modules_dir)
                             / ("mod_%s.so" % m)) for m in ("ldap", "status"))
        return """\
# added by bench/ldap.py: mod_ldap (CertAuthzLDAP searches through it) and
# mod_status (the CertAuthzLDAP-* counters)
%s
# mod_ldap's own caches off: /ldap-cold/ asks the directory every time
LDAPCacheEntries -1
LDAPOpCacheEntries -1
LDAPTimeout 5
LDAPConnectionTimeout 5
# as without mod_status (bench/e2e.py): no per-request scoreboard times
ExtendedStatus Off
""" % mods

    def config(self, vhost_extra=""):
        text = super().config(vhost_extra)
        marker = "\n<VirtualHost "
        if text.count(marker) != 1:
            die("bench/e2e.py's configuration changed: no <VirtualHost>")
        return text.replace(marker, "\n" + self.global_conf() + marker)


def variant_setup(args, srv, slapd, variants):
    """Each variant's <Location> (and server-status); returns
    ({variant: (url, loadgen expectations)}, lines for the virtual
    host)."""
    ldap_url = "ldap://127.0.0.1:%d/%s?uid?sub" % (slapd.port, PEOPLE)
    directive = 'CertAuthzLDAP "%s" "%s"' % (ldap_url, FILTER)
    # /ldap-cold/ searches exactly as /ldap-warm/ does: only its TTL (0)
    # differs, which keeps their answers apart (before that was fixed it
    # was answered from what /ldap-warm/ keeps)
    cold = directive
    settings = "\n".join([
        'CertAuthzLDAPBindDN "%s"' % S.BIND_DN,
        "CertAuthzLDAPBindPassword %s" % S.BIND_PW,
        "CertAuthzLDAPGroups memberOf"])
    if args.vhost_settings:
        vhost = "\n".join("    " + l for l in settings.split("\n"))
    else:
        # in each <Location>: nothing to merge per request (see
        # --vhost-settings)
        vhost = ""
        directive += "\n" + settings
        cold += "\n" + settings
    out = {}
    for v in variants:
        url = "/%s/ok.txt" % v
        if v == "base":
            srv.add_location("/base/", "Require all granted")
            out[v] = (url, [])
        elif v == "ldap-warm":
            srv.add_location("/ldap-warm/", "%s\nRequire cert-group %s" % (
                directive, GROUP))
            out[v] = (url, ["X-Certauthz-User: " + USER])
        elif v == "ldap-cold":
            srv.add_location("/ldap-cold/", "%s\nCertAuthzLDAPCacheTTL 0\n"
                             "Require cert-group %s" % (cold, GROUP))
            out[v] = (url, ["X-Certauthz-User: " + USER])
        else:
            die("unknown variant %s" % v)
    srv.locations.append(e2e.location(
        "/server-status", "SetHandler server-status\nRequire all granted"))
    log("  directory: %s %s, groups from memberOf (/ldap-cold/: the same, "
        "CertAuthzLDAPCacheTTL 0); bind DN and groups set in %s" % (
            ldap_url, FILTER,
            "the virtual host" if args.vhost_settings else "each <Location>"))
    return out, vhost


def ldap_counters(srv, certs):
    """The module's CertAuthzLDAP-* counters from server-status ?auto."""
    ctx = e2e.client_context(certs, "client")
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                       timeout=10)
    try:
        conn.request("GET", "/server-status?auto")
        r = conn.getresponse()
        body = r.read().decode("utf-8", errors="replace")
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        die("server-status: %s" % e)
    finally:
        conn.close()
    got = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^CertAuthzLDAP-(\S+): (\d+)$", body, re.M)}
    if r.status != 200 or "lookups" not in got or "latency-usec" not in got:
        die("server-status ?auto gave %d without the CertAuthzLDAP-* lines:"
            "\n%s" % (r.status, body[:2000]))
    return got


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after}


# --------------------------------------------------------------------------
# the benchmark

def benchmark(args, certs, tmp, slapd):
    srv = Httpd(args, tmp / "server", certs)
    log("setting up (%s)" % srv.root)
    urls, vhost = variant_setup(args, srv, slapd, args.variants)
    try:
        srv.start(vhost_extra=vhost)
        log("httpd up on 127.0.0.1:%d after %.1f s; child RSS %s" % (
            srv.port, srv.startup_seconds, ", ".join(
                "%d MiB" % (v // 1024) for v in srv.rss_kib().values())))
        c0 = ldap_counters(srv, certs)
        e2e.verify(srv, certs, urls)
        c1 = ldap_counters(srv, certs)
        d = delta(c1, c0)
        log("  directory during the checks: %s" % ", ".join(
            "%s %d" % kv for kv in sorted(d.items())))
        if d.get("errors") or not d.get("found"):
            die("the checks counted %d directory errors and %d entries "
                "found; error log:\n%s" % (d.get("errors", 0),
                                          d.get("found", 0), srv.log_tail()))
        e2e.warm_up(args, srv, certs, urls, args.variants)
        return measure_rounds(args, srv, certs, slapd, urls)
    finally:
        srv.stop()


def measure_rounds(args, srv, certs, slapd, urls):
    tick_us = 1e6 / e2e.CLK_TCK

    def measure_one(args, srv, certs, url, expect):
        """e2e.measure(), with the module's counters and slapd's CPU."""
        c0 = ldap_counters(srv, certs)
        t0 = slapd_ticks(slapd)
        res = e2e.measure(args, srv, certs, url, expect)
        t1 = slapd_ticks(slapd)
        c1 = ldap_counters(srv, certs)
        res["ldap"] = delta(c1, c0)
        n = res["requests"] or float("nan")
        lookups = res["ldap"]["lookups"]
        slapd_us = (t1 - t0) * tick_us
        res["slapd_us_per_req"] = slapd_us / n
        res["lookups_per_s"] = (lookups / res["seconds"]
                                if res["seconds"] else 0.0)
        res["latency_mean_us"] = (res["ldap"]["latency-usec"] / lookups
                                  if lookups else float("nan"))
        # slapd is part of the benchmark, not "other processes"
        if res["seconds"]:
            res["background_cpus"] = max(0.0, res["background_cpus"]
                                         - slapd_us / 1e6 / res["seconds"])
        return res

    def note(res):
        lookups = res["ldap"]["lookups"]
        return (" (%d lookups, %.0f us)" % (lookups, res["latency_mean_us"])
                if lookups else "")

    results, kids0 = e2e.measure_rounds(args, srv, certs, urls, measure_one,
                                        note)
    _, kids1 = srv.pids()
    rss = srv.rss_kib()
    e2e.report(args, results, kids0 != kids1, rss)
    ok = ldap_report(args, results)
    return results, ok


def table(head, rows):
    width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, width)))
    log(fmt(head))
    log("-" * len(fmt(head)))
    for r in rows:
        log(fmt(r))


def per_round(xs, fmt="%.3f"):
    return " ".join(fmt % x for x in xs)


def ldap_report(args, results):
    """The directory's part: counters, the warm target, the cold lookups.
    False when the directory counted errors or /ldap-cold/ did not do one
    lookup per request."""
    ok = True
    base = results.get("base")
    log("")
    head = ["variant", "requests", "lookups", "cache-hits", "found",
            "errors", "lookups/s median [min-max]",
            "latency us median [min-max]", "slapd CPU us/req"]
    rows = []
    for v, rs in results.items():
        s = {k: sum(r["ldap"].get(k, 0) for r in rs)
             for k in ("lookups", "cache-hits", "found", "errors")}
        lat = [r["latency_mean_us"] for r in rs if r["ldap"]["lookups"]]
        rows.append([v, "%d" % sum(r["requests"] for r in rs),
                     "%d" % s["lookups"], "%d" % s["cache-hits"],
                     "%d" % s["found"], "%d" % s["errors"],
                     e2e.fmt_spread([r["lookups_per_s"] for r in rs], "%.0f"),
                     e2e.fmt_spread(lat, "%.0f"),
                     "%.1f" % median([r["slapd_us_per_req"] for r in rs])])
        if s["errors"]:
            log("! %s: %d directory errors (see the error log)" % (
                v, s["errors"]))
            ok = False
    table(head, rows)
    log("lookups, cache-hits, found, errors: server-status CertAuthzLDAP-* "
        "deltas over the measured runs; latency: CertAuthzLDAP-latency-usec"
        " / lookups")

    def ratios(rs, key):
        return [r[key] / b[key] for r, b in zip(rs, base) if b[key]]

    warm = results.get("ldap-warm")
    if warm and base:
        rr, cr = ratios(warm, "rps"), ratios(warm, "cpu_us_per_req")
        log("")
        log("warm cache, /ldap-warm/ x /base/ per round:")
        log("  req/s:           %s   median %.3f" % (per_round(rr),
                                                     median(rr)))
        log("  server CPU/req:  %s   median %.3f" % (per_round(cr),
                                                     median(cr)))
        log("  extra server CPU: %.1f us/request (median of rounds)" % median(
            [r["cpu_us_per_req"] - b["cpu_us_per_req"]
             for r, b in zip(warm, base)]))
        log("  target (issue): req/s x base >= %.2f: %s (median %.3f)" % (
            TARGET, "met" if median(rr) >= TARGET else "NOT met",
            median(rr)))
        # each new connection asks the process cache once (or searches);
        # after that its own cache answers
        asked = sum(r["ldap"]["cache-hits"] + r["ldap"]["lookups"]
                    for r in warm)
        conns = sum(r.get("handshakes", args.conns) for r in warm)
        log("  connection cache: %d answers from the process cache or the "
            "directory for %d connections%s" % (
                asked, conns, "" if asked <= 2 * conns else
                ": NOTE the connections' own caches missed"))
    cold = results.get("ldap-cold")
    if cold:
        log("")
        log("cold lookups, /ldap-cold/ per round (CertAuthzLDAPCacheTTL 0, "
            "mod_ldap caches off):")
        log("  lookups/s:       %s   median %.0f" % (
            per_round([r["lookups_per_s"] for r in cold], "%.0f"),
            median([r["lookups_per_s"] for r in cold])))
        log("  req/s:           %s   median %.0f" % (
            per_round([r["rps"] for r in cold], "%.0f"),
            median([r["rps"] for r in cold])))
        lat = [r["latency_mean_us"] for r in cold if r["ldap"]["lookups"]]
        log("  mean latency us: %s   median %.0f" % (per_round(lat, "%.0f"),
                                                     median(lat)))
        if base:
            cr = ratios(cold, "cpu_us_per_req")
            log("  server CPU/req x base: %s   median %.3f (%.1f vs %.1f us)"
                % (per_round(cr), median(cr),
                   median([r["cpu_us_per_req"] for r in cold]),
                   median([r["cpu_us_per_req"] for r in base])))
        log("  slapd CPU us/lookup: %.1f (median)" % median(
            [r["slapd_us_per_req"] for r in cold]))
        # one search per request: in-flight requests at a run's end may
        # be searched without loadgen counting their answer
        bad = []
        for r in cold:
            n, lk = r["requests"], r["ldap"]["lookups"]
            if abs(lk - n) > max(2 * args.conns, 0.01 * n):
                bad.append("round %d: %d lookups for %d requests" % (
                    r["round"] + 1, lk, n))
        total = sum(r["ldap"]["lookups"] for r in cold)
        nreq = sum(r["requests"] for r in cold)
        log("  lookups / requests: %d / %d = %.4f: %s" % (
            total, nreq, total / nreq if nreq else float("nan"),
            "one search per request, confirmed" if not bad
            else "NOT one search per request (%s)" % "; ".join(bad)))
        if bad:
            ok = False
    return ok


# --------------------------------------------------------------------------

def make_stranger(tmp, mkcert):
    """A certificate of the same CA whose UPN has no entry."""
    e2e.run([mkcert, "--out", tmp / "stranger", "--issuer", tmp / "ca",
             "--subject", STRANGER_SUBJECT, "--san", "upn:" + STRANGER_UPN],
            timeout=60)
    return e2e.Cert(tmp / "stranger")


def main():
    ap = argparse.ArgumentParser(
        description="Benchmark of CertAuthzLDAP (a real slapd on loopback):"
        " the warm cache against Require all granted, and cold lookups.")
    e2e.add_load_args(ap, ALL_VARIANTS)
    ap.add_argument("--vhost-settings", action="store_true",
                    help="CertAuthzLDAPBindDN, ...BindPassword and ...Groups "
                    "in the virtual host (as t/server/test_ldap.py has "
                    "them), merged with each <Location>'s CertAuthzLDAP per "
                    "request; default: in each <Location>")
    ap.add_argument("--directory-entries", type=int, default=10000,
                    help="people in the directory, the client's entry "
                    "among them (default 10000)")
    ap.add_argument("--json", help="write the raw results to this file")
    e2e.add_program_args(ap)
    args = ap.parse_args()

    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in ALL_VARIANTS:
            ap.error("unknown variant %s" % v)
    args.variants = ["base"] + [v for v in ALL_VARIANTS[1:] if v in variants]
    if not (1 <= args.rounds <= 1000 and 0 < args.seconds <= 3600
            and 0 < args.warmup <= 600 and 1 <= args.conns <= 256
            and 10 <= args.directory_entries <= 1000000
            and 0 <= args.requests_per_conn <= 10 ** 9):
        ap.error("an option is out of range")
    e2e.check_programs(args)
    if not S.available():
        die("slapd not found: %s, %s (Debian: apt-get install slapd "
            "ldap-utils)" % (S.SLAPD, S.SLAPADD))
    for m in ("ldap", "status"):
        if not os.access(Path(args.modules_dir) / ("mod_%s.so" % m),
                         os.R_OK):
            die("mod_%s.so not found in %s" % (m, args.modules_dir))

    signal.signal(signal.SIGTERM, e2e.on_signal)
    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGHUP, e2e.on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="certauthz-bench-ldap-"))
    os.chmod(tmp, 0o755)
    if args.keep:
        log("keeping %s" % tmp)
    else:
        e2e.CLEANUP.dirs.append(tmp)

    e2e.print_header(args)
    v = e2e.run([S.SLAPD, "-VV"], timeout=30, check=False).strip()
    log("slapd:   %s" % (v.splitlines()[0].strip() if v else "?"))
    certs = e2e.make_certs(tmp, args.mkcert)
    # the second certificate of the checks: a UPN without an entry
    certs["other"] = make_stranger(tmp, args.mkcert)
    for c in certs.values():
        for p in (c.crt, c.key):
            os.chmod(p, 0o644)
    slapd = start_directory(args, tmp)
    try:
        results, ok = benchmark(args, certs, tmp, slapd)
    finally:
        slapd.stop()
        if slapd in e2e.CLEANUP.servers:
            e2e.CLEANUP.servers.remove(slapd)
    bad = sum(r["errors"] + r["wrong"] for rs in results.values() for r in rs)
    if bad:
        log("FAILED: %d requests failed or were answered wrongly" % bad)
    return 1 if bad or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
