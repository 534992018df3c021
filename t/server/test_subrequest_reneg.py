"""A subrequest renegotiates and changes the connection's certificate while
its main request is still running (regression test).

The module caches the facts of the client certificate per connection.  A
main request served by mod_include holds its identity (the CERTAUTHZ_*
environment, r->user) when `<!--#include virtual -->` makes a subrequest to
a <Location> with SSLVerifyClient require and its own SSLCipherSuite: mod_ssl
renegotiates (TLS 1.2) for the subrequest, and the client (t/tlsclient)
presents ANOTHER certificate there.  The cache then follows the new
certificate.  It used to destroy the old facts at that moment, while the
main request still pointed into them: after the include, the main request's
values were freed memory.

Certificate A ("payments", CN=svc-payments, user svc-payments) in the
handshake, B ("builder", user ci-robot) at the renegotiation.  The main
request was authorized with A: its values stay A's before and after the
include; the subrequest sees B; no child crashes, neither during the page
nor when the connection (and the facts it kept) goes away.  Variants: the
page under Require cert-mapped or AuthType Certificate; the renegotiating
location with or without a map; A's facts already cached by an earlier
request on the connection (warm) or first looked at by the page (cold).
With the old code the "after" values differed from A's (freed memory,
reused) in every cold variant, and in 7 of the 8 when the file runs; the
sanitizer build (scripts/sanitize --server) checks the memory accesses
themselves.

t/tlsclient does not show response bodies, so the page keeps what it would
echo: `<!--#set -->` copies the same variables (same lookup, same moment as
`<!--#echo -->`) into the main request's environment, which a CustomLog of
this instance writes out.  The certificate the connection holds at each
point of the page (mod_ssl's SSL_CLIENT_S_DN_CN) is recorded the same way:
it is B's after the include only if the renegotiation took place.

Its own httpd instance (module scope) with mod_include.  Only 127.0.0.1;
every client run has a timeout.
"""

import re
import subprocess
import textwrap
import time

import pytest

import certauthz_harness as H
# the suite's t/tlsclient (fixture) and its response parser
from test_tls_attacks import Resp, tlsclient  # noqa: F401

MAP = "CertAuthzMapFile conf/certauthz/main.map"
A_NAME, B_NAME = "payments", "builder"
A_USER, B_USER = "svc-payments", "ci-robot"
A_CN, B_CN = "svc-payments", "builder"

# renegotiating locations: Require all granted without a map (as in the
# report), or a map of its own with Require cert-mapped and
# an audit line (the subrequest's decision, with B's fingerprint)
RENEG = {"plain": "/reneg2", "mapped": "/renegm"}
# main pages: Require cert-mapped (the reported case), or AuthType
# Certificate (REMOTE_USER / r->user as well)
PAGES = {"cert-mapped": "/ssi-map", "authtype": "/ssi-authn"}

# the first request on the connection (certificate A): through the cache
# (warm: the page then finds A's facts there), or not (cold: the module
# looks at no certificate, the page's request is the first that does)
FIRST = {"warm": "/open/ok.txt", "cold": "/cold/ok.txt"}

# the main request's values at one point of the page, kept in VAR
_KEEP = ('<!--#set var="{var}" value="sha=${{CERTAUTHZ_CERT_SHA256}} '
         'user=${{CERTAUTHZ_USER}} remote=${{REMOTE_USER}}" -->')
# the certificate the connection holds at that point (mod_ssl, live)
_CONN = ('<!--#if expr="%{{SSL_CLIENT_S_DN_CN}} == \'{a}\'" -->'
         '<!--#set var="{var}" value="A" -->'
         '<!--#elif expr="%{{SSL_CLIENT_S_DN_CN}} == \'{b}\'" -->'
         '<!--#set var="{var}" value="B" -->'
         '<!--#else --><!--#set var="{var}" value="other" --><!--#endif -->')
_ECHO = ('{label} sha=<!--#echo var="CERTAUTHZ_CERT_SHA256" --> '
         'user=<!--#echo var="CERTAUTHZ_USER" --> '
         'remote=<!--#echo var="REMOTE_USER" -->\n')


def _page(target):
    def point(label):
        return (_ECHO.format(label=label)
                + _KEEP.format(var="SSI_" + label.upper()) + "\n"
                + _CONN.format(var="CONN_" + label.upper(), a=A_CN, b=B_CN)
                + "\n")
    return (point("before")
            + '<!--#include virtual="%s/ok.txt" -->\n' % target
            + point("after"))


# access log of the main requests: "|"-separated, SSL_CLIENT_S_DN_CN at
# log time (after the page ran)
LOG_FIELDS = ["id", "status", "user", "before", "after", "conn_before",
              "conn_after", "conn_at_log", "env_user", "env_sha256"]
LOG_FORMAT = ("%{X-Test-Id}i|%>s|%u|%{SSI_BEFORE}e|%{SSI_AFTER}e|"
              "%{CONN_BEFORE}e|%{CONN_AFTER}e|%{SSL_CLIENT_S_DN_CN}x|"
              "%{CERTAUTHZ_USER}e|%{CERTAUTHZ_CERT_SHA256}e")


def _loc(path, body):
    return '<Location "%s">\n%s\n</Location>' % (
        path, textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))


def _config(srv):
    ssi = ("Options +Includes\nAddType text/html .shtml\n"
           "AddOutputFilter INCLUDES .shtml\n")
    # another cipher suite than the connection's (and require where the
    # vhost has optional) forces a TLS 1.2 renegotiation
    reneg = ("SSLVerifyClient require\nSSLVerifyDepth 2\n"
             "SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256\n")
    body = "\n".join([
        "Protocols http/1.1",
        'SSLCACertificateFile "conf/ssl/clients-ca.pem"',
        "SSLVerifyClient optional",
        "SSLVerifyDepth 2",
        _loc("/open", MAP + "\nRequire all granted"),
        _loc("/cold", "CertAuthzSetEnv Off\nRequire all granted"),
        _loc(PAGES["cert-mapped"], ssi + MAP + "\nRequire cert-mapped"),
        _loc(PAGES["authtype"], ssi + "AuthType Certificate\n" + MAP
             + "\nRequire valid-user"),
        _loc(RENEG["plain"], reneg + "Require all granted"),
        _loc(RENEG["mapped"], reneg + MAP + "\nCertAuthzAudit All\n"
             "Require cert-mapped"),
    ])
    return "\n".join([
        "LogLevel warn certauthz:debug ssl:debug",
        'LogFormat "%s" ssi' % LOG_FORMAT.replace('"', '\\"'),
        'CustomLog "%s/logs/ssi.log" ssi' % srv.root,
        H.ssl_vhost(srv.port, body),
    ])


@pytest.fixture(scope="module")
def srv(workdir, certs):
    root = workdir / "subrequest-reneg"
    files = {}
    for page, ppath in PAGES.items():
        for kind, rpath in RENEG.items():
            files["htdocs%s/%s.shtml" % (ppath, kind)] = _page(rpath)
    s = H.ExtraHttpd(root / "server", certs, _config, nports=1, files=files,
                     docs=["open", "cold"] + list(PAGES.values())
                     + list(RENEG.values()),
                     modules=H.EXTRA_MODULES + ["include"])
    s.setup()
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


def _run(exe, srv, actions, test_id, timeout=10):
    """t/tlsclient, TLS 1.2, with X-Test-Id test_id-N on request N.
    Returns (responses, exit status, output)."""
    cmd = [exe, "-p", str(srv.port), "-C", srv.certs["root_ca"].crt,
           "-t", "1.2", "-T", str(timeout), "-i", test_id]
    for a in actions:
        cmd.append(a if a.startswith("/") else "cert=" + srv.certs[a].prefix)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout * 3 + 10)
    out = p.stdout.decode(errors="replace")
    return ([Resp(l) for l in out.splitlines() if l.startswith("RESP\t")],
            p.returncode, out)


_CRASH = ("exit signal", "AH00052", "AH00060")


def _crashes(srv, log_start):
    return [l for l in srv.error_log_text()[log_start:].splitlines()
            if any(c in l for c in _CRASH)]


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _crash_after_close(srv, log_start, test_id):
    """Crash lines once the connection of test_id is closed.  The facts
    pools are freed with the connection: a double free or a stale pool
    crashes the child then, after the responses.  Waits (bounded) for
    mod_ssl's AH02001 (connection closed) of that connection, then up to
    0.5 s for its child to die."""
    pid = port = None
    for l in srv.error_log_text()[log_start:].splitlines():
        m = re.search(r"\[pid (\d+):tid \d+\] \[client [0-9.]+:(\d+)\] "
                      r"\[test %s-1\]" % test_id, l)
        if m:
            pid, port = int(m.group(1)), m.group(2)
            break
    if pid is not None:
        closed = re.compile(r"\[client [0-9.]+:%s\] AH02001: " % port)
        deadline = time.monotonic() + 5
        for _ in range(200):
            if (closed.search(srv.error_log_text()[log_start:])
                    or not _alive(pid) or time.monotonic() > deadline):
                break
            time.sleep(0.025)
        deadline = time.monotonic() + 0.5
        for _ in range(100):
            if not _alive(pid) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not _alive(pid):
            # the parent logs the signal when it reaps the child (<= 1 s)
            deadline = time.monotonic() + 3
            for _ in range(100):
                if _crashes(srv, log_start) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            return _crashes(srv, log_start) or [
                "child %d serving the connection died" % pid]
    return _crashes(srv, log_start)


def _ssi_log(srv, req_id, timeout=5):
    """The ssi.log line of request req_id (written after the response)."""
    path = srv.root / "logs" / "ssi.log"
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        try:
            lines = [l.rstrip("\n") for l in path.read_text(errors="replace")
                     .splitlines() if l.startswith(req_id + "|")]
        except OSError:
            lines = []
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 1, (req_id, lines)
    return dict(zip(LOG_FIELDS, lines[0].split("|")))


@pytest.mark.parametrize("cache", list(FIRST))
@pytest.mark.parametrize("reneg", list(RENEG))
@pytest.mark.parametrize("page", list(PAGES))
def test_subrequest_reneg_keeps_main_request_identity(srv, tlsclient, certs,
                                                      page, reneg, cache):
    a, b = certs[A_NAME], certs[B_NAME]
    log_start = len(srv.error_log_text())
    test_id = H.new_test_id()
    main = "%s-2" % test_id
    got, rc, out = _run(tlsclient, srv,
                        [A_NAME, FIRST[cache], B_NAME,
                         "%s/%s.shtml" % (PAGES[page], reneg)], test_id)
    # no child crashed, during the page or when the connection closed
    crashes = _crash_after_close(srv, log_start, test_id)
    assert not crashes, "\n".join(crashes)
    assert srv.running()
    assert rc == 0 and len(got) == 2, (rc, out)
    # request 1: the handshake's certificate, A
    first = (A_USER, a.sha256) if cache == "warm" else (None, None)
    assert (got[0].status, got[0].cn, got[0].verify) == (
        200, A_CN, "SUCCESS"), got
    assert (got[0].user, got[0].sha256) == first, got
    # request 2, the page: authorized with A (headers leave before the
    # include runs)
    assert got[1].status == 200, got
    assert (got[1].user, got[1].sha256, got[1].verify) == (
        A_USER, a.sha256, "SUCCESS"), got
    assert got[1].proto == "TLSv1.2", got

    log = _ssi_log(srv, main)
    remote = A_USER if page == "authtype" else ""
    want = "sha=%s user=%s remote=%s" % (a.sha256, A_USER, remote)
    assert log["status"] == "200", log
    # the main request's values, before and after the include: A's
    assert log["before"] == want, log
    assert log["after"] == want, log
    assert (log["env_user"], log["env_sha256"]) == (A_USER, a.sha256), log
    assert log["user"] == (A_USER if page == "authtype" else "-"), log

    # the renegotiation took place, and B is the connection's certificate
    # from the include on (A before it)
    assert (log["conn_before"], log["conn_after"], log["conn_at_log"]) == (
        "A", "B", B_CN), log
    errlog = srv.error_log_text()[log_start:].splitlines()
    mine = [l for l in errlog if "[test %s]" % main in l]
    assert any("AH02221" in l for l in mine), (
        "mod_ssl did not request a renegotiation:\n" + "\n".join(mine))
    if reneg == "mapped":
        # the subrequest was decided with B: its own map gives ci-robot
        audit = [l for l in mine if "CERTAUTHZ0100:" in l
                 and 'uri="%s/ok.txt"' % RENEG["mapped"] in l]
        assert len(audit) == 1, mine
        assert 'decision="granted"' in audit[0], audit
        assert 'user="%s"' % B_USER in audit[0], audit
        assert 'sha256="%s"' % b.sha256 in audit[0], audit
    # the subrequest was served (mod_include logs a failed include)
    assert not [l for l in mine if "[include:" in l], mine

