"""Attacks on the binding between a TLS connection and its certificate
(SPEC section 1): the identity must never outlive its certificate.

- TLS 1.2 renegotiation forced by a per-directory SSLVerifyClient or
  SSLCipherSuite, presenting a certificate first, or a DIFFERENT one than
  the connection had (t/tlsclient, a small OpenSSL client: Python's ssl
  cannot change its certificate on one connection); an untrusted
  certificate (optional_no_ca) obtained that way;
- TLS 1.3 post-handshake authentication (PHA): offered or not, failed,
  or presenting a different certificate;
- HTTP/2: per-directory renegotiation is impossible there and must never
  grant; parallel streams of one connection across several maps;
- TLS session resumption: the resumed certificate is the identity; a session
  of one name-based vhost (SNI) offered to another that trusts other CAs,
  or under another SNI name, gives no identity there -- also when the two
  vhosts share a ServerName, where mod_ssl shares the session id context
  and resumes the session: the module verifies a resumed session's
  certificate again against the serving vhost's CAs.

Its own httpd instance (module scope), so the main server's configuration
stays as it is.  Only 127.0.0.1; every client run has a timeout.
"""

import http.client
import os
import shutil
import ssl
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

import certauthz_harness as H

MAP = "CertAuthzMapFile conf/certauthz/main.map"

# port index -> role (see config below)
(P_NONE, P_OPT, P_H2NONE, P_H2OPT, P_SNI, P_SNI_STRICT,
 P_SAME_A, P_SAME_B, P_SHARED) = range(9)

# maps of the HTTP/2 test: the same certificate, five different users
NMAPS = 5


def _loc(path, body):
    return '<Location "%s">\n%s\n</Location>' % (
        path, textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))


def _config(srv):
    p = srv.ports
    ca_both = 'SSLCACertificateFile "conf/ssl/clients-ca.pem"'
    ca_root = 'SSLCACertificateFile "conf/ssl/root-ca.pem"'
    ca_partner = 'SSLCACertificateFile "conf/ssl/partner-ca.pem"'
    h1 = "Protocols http/1.1"

    # locations shared by the HTTP/1.1 vhosts
    common = "\n".join([
        _loc("/open", MAP + "\nRequire all granted"),
        _loc("/mapped", MAP + "\nRequire cert-mapped"),
        _loc("/req", "SSLVerifyClient require\nSSLVerifyDepth 2\n" + MAP
             + "\nRequire cert-mapped"),
        _loc("/req-alice", "SSLVerifyClient require\n" + MAP
             + "\nRequire cert-user alice"),
        _loc("/req-bob", "SSLVerifyClient require\n" + MAP
             + "\nRequire cert-user bob"),
        _loc("/req-authtype", "SSLVerifyClient require\nAuthType Certificate\n"
             + MAP + "\nRequire valid-user"),
        # optional_no_ca: an untrusted certificate is accepted by TLS
        # (SSL_CLIENT_VERIFY GENEROUS) and must give no identity
        _loc("/gen", "SSLVerifyClient optional_no_ca\n" + MAP
             + "\nRequire cert-mapped"),
        _loc("/gen-open", "SSLVerifyClient optional_no_ca\n" + MAP
             + "\nRequire all granted"),
        # another cipher suite than the connection's forces a TLS 1.2
        # renegotiation whatever the verification settings
        _loc("/cipher", "SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256\n"
             + MAP + "\nRequire all granted"),
        _loc("/cipher2", "SSLCipherSuite ECDHE-ECDSA-CHACHA20-POLY1305\n"
             + MAP + "\nRequire all granted"),
    ])
    maps = "\n".join(
        _loc("/m%d" % i, "CertAuthzMapFile conf/certauthz/m%d.map\n"
             "Require cert-group g%d" % (i, i))
        for i in range(1, NMAPS + 1))

    sni_vhosts = []
    for port, strict in ((p[P_SNI], False), (p[P_SNI_STRICT], True)):
        extra = "SSLStrictSNIVHostCheck on\n" if strict else ""
        for name, ca in (("a.localhost", ca_root), ("b.localhost", ca_partner)):
            sni_vhosts.append(H.ssl_vhost(
                port, server_name=name, crt="conf/ssl/sni.crt",
                key="conf/ssl/sni.key", body=h1 + "\n" + extra + ca
                + "\nSSLVerifyClient optional\nSSLVerifyDepth 2\n"
                + _loc("/", MAP + "\nRequire all granted") + "\n"
                + _loc("/mapped", MAP + "\nRequire cert-mapped")))

    # the same ServerName twice (mod_ssl's session id context is
    # "ServerName:port", port 443 when ServerName has none): two ports
    # without session tickets, and two name-based vhosts told apart by
    # ServerAlias only
    mapped = _loc("/mapped", MAP + "\nRequire cert-mapped")
    same = [
        H.ssl_vhost(p[P_SAME_A], h1 + "\nSSLSessionTickets off\n" + ca_root
                    + "\nSSLVerifyClient optional\n" + mapped),
        H.ssl_vhost(p[P_SAME_B], h1 + "\nSSLSessionTickets off\n"
                    + ca_partner + "\nSSLVerifyClient optional\n" + mapped),
        H.ssl_vhost(p[P_SHARED], server_name="shared.localhost\n"
                    "    ServerAlias a.localhost", crt="conf/ssl/sni.crt",
                    key="conf/ssl/sni.key", body=h1 + "\n" + ca_root
                    + "\nSSLVerifyClient optional\n" + mapped),
        H.ssl_vhost(p[P_SHARED], server_name="shared.localhost\n"
                    "    ServerAlias b.localhost", crt="conf/ssl/sni.crt",
                    key="conf/ssl/sni.key", body=h1 + "\n" + ca_partner
                    + "\nSSLVerifyClient optional\n" + mapped),
    ]

    return "\n".join([
        H.ssl_vhost(p[P_NONE], h1 + "\n" + ca_both
                    + "\nSSLVerifyClient none\n" + common),
        H.ssl_vhost(p[P_OPT], h1 + "\n" + ca_both
                    + "\nSSLVerifyClient optional\nSSLVerifyDepth 2\n"
                    + common),
        H.ssl_vhost(p[P_H2NONE], "Protocols h2 http/1.1\n" + ca_both
                    + "\nSSLVerifyClient none\n" + common),
        H.ssl_vhost(p[P_H2OPT], "Protocols h2 http/1.1\n" + ca_both
                    + "\nSSLVerifyClient optional\nSSLVerifyDepth 2\n"
                    + common + "\n" + maps),
    ] + sni_vhosts + same)


@pytest.fixture(scope="module")
def srv(workdir, certs):
    root = workdir / "tls-attacks"
    pki = root / "pki"
    pki.mkdir(parents=True)
    sni = H.mkcert(pki / "sni", "--issuer", Path(certs["root_ca"].prefix),
                   "--subject", "/O=Example/CN=a.localhost",
                   "--san", "dns:a.localhost", "--san", "dns:b.localhost",
                   "--san", "dns:localhost", "--san", "ip:127.0.0.1")
    files = {
        "conf/ssl/sni.crt": Path(sni.crt).read_text(),
        "conf/ssl/sni.key": Path(sni.key).read_text(),
        "conf/ssl/root-ca.pem": Path(certs["root_ca"].crt).read_text(),
        "conf/ssl/partner-ca.pem": Path(certs["partner_ca"].crt).read_text(),
    }
    for i in range(1, NMAPS + 1):
        files["conf/certauthz/m%d.map" % i] = (
            "email:alice@example.com  alice-%d  g%d\n"
            "cn:bob                   bob-%d    g%d\n" % (i, i, i, i))
    docs = ["open", "mapped", "req", "req-alice", "req-bob", "req-authtype",
            "cipher", "cipher2", "gen",
            "gen-open"] + ["m%d" % i
                                       for i in range(1, NMAPS + 1)]
    s = H.ExtraHttpd(root / "server", certs, _config, nports=9, files=files,
                     docs=docs)
    s.setup()
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


# --------------------------------------------------------------------------
# t/tlsclient

@pytest.fixture(scope="module")
def tlsclient(workdir):
    """Path of t/tlsclient: the build tree's, else built here (gcc)."""
    src = H.SRCDIR / "t" / "tlsclient.c"
    for d in (H.BUILDDIR, H.SRCDIR):
        exe = d / "t" / "tlsclient"
        if exe.exists() and (not src.exists()
                             or exe.stat().st_mtime >= src.stat().st_mtime):
            return str(exe)
    exe = workdir / "tlsclient"
    if not exe.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        assert cc, "no C compiler to build t/tlsclient"
        subprocess.run([cc, "-Wall", "-Wextra", "-o", str(exe), str(src),
                        "-lssl", "-lcrypto"], check=True, timeout=120)
    return str(exe)


class Resp:
    def __init__(self, line):
        f = line.split("\t")
        self.status = int(f[1])
        kv = dict(x.split("=", 1) for x in f[2:])
        self.proto = kv["proto"]
        self.reused = kv["reused"] == "1"
        none = lambda v: None if v == "-" else v  # noqa: E731
        self.user = none(kv["user"])
        self.remote_user = none(kv["remote"])
        self.verify = none(kv["verify"])
        self.sha256 = none(kv["sha256"])
        self.cn = none(kv["cn"])     # mod_ssl's SSL_CLIENT_S_DN_CN

    def __repr__(self):
        return "<%d %s user=%s remote=%s verify=%s cn=%s>" % (
            self.status, self.proto, self.user, self.remote_user, self.verify,
            self.cn)


def run_client(exe, srv, port_index, actions, tls=None, pha=False,
               sni=None, host="localhost", resume=None, save=None,
               timeout=10):
    """Run t/tlsclient; returns (list of Resp, error line or None)."""
    cmd = [exe, "-p", str(srv.ports[port_index]),
           "-C", srv.certs["root_ca"].crt, "-h", host, "-T", str(timeout),
           "-i", H.new_test_id()]
    if resume:
        cmd += ["-R", str(resume)]
    if save:
        cmd += ["-S", str(save)]
    if tls:
        cmd += ["-t", tls]
    if pha:
        cmd += ["-a"]
    if sni:
        cmd += ["-s", sni]
    out = []
    for a in actions:
        if a.startswith("/"):
            out.append(a + "ok.txt" if a.endswith("/") else a)
        elif a == "nocert":
            out.append(a)
        else:
            out.append("cert=" + srv.certs[a].prefix)
    p = subprocess.run(cmd + out, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout * 3 + 10)
    resps, err = [], None
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith("RESP\t"):
            resps.append(Resp(line))
        elif line.startswith("ERR"):
            err = line
    if p.returncode not in (0, 3):
        raise RuntimeError("tlsclient failed (%d): %s" % (
            p.returncode, p.stderr.decode(errors="replace")))
    return resps, err


def users(resps):
    return [(r.status, r.user) for r in resps]


def never_granted_to(resps, user):
    """No response carried `user`'s identity (CERTAUTHZ_USER or
    REMOTE_USER)."""
    return all(r.user != user and r.remote_user != user for r in resps)


# --------------------------------------------------------------------------
# 1. TLS 1.2 renegotiation forced by the per-directory configuration


def test_reneg12_vhost_none_first_certificate(srv, tlsclient):
    """SSLVerifyClient none on the vhost: the first request has no
    certificate; /req-alice (require) renegotiates and the certificate it
    gets is the identity, for that request and the next ones."""
    got, err = run_client(tlsclient, srv, P_NONE,
                          ["/open/", "alice", "/req-alice/", "/open/",
                           "/mapped/", "/req-bob/", "/req-authtype/"],
                          tls="1.2")
    assert err is None, (err, got)
    assert users(got) == [(200, None), (200, "alice"), (200, "alice"),
                          (200, "alice"), (403, None), (200, "alice")], got
    assert [r.verify for r in got] == ["NONE"] + ["SUCCESS"] * 5, got
    assert got[5].remote_user == "alice", got   # AuthType Certificate
    assert len({r.sha256 for r in got[1:]} - {None}) == 1, got


@pytest.mark.parametrize("new,path,expect", [
    # Require cert-user bob: granted only if the NEW certificate is read
    ("bob", "/req-bob/", (200, "bob")),
    # an unmapped certificate replaces a mapped one: no identity at all
    ("zed", "/req/", (403, None)),
    # AuthType Certificate: REMOTE_USER is the new certificate's user
    ("bob", "/req-authtype/", (200, "bob")),
])
def test_reneg12_certificate_changes(srv, tlsclient, new, path, expect):
    """SSLVerifyClient optional on the vhost: the connection starts with
    alice; a location with SSLVerifyClient require renegotiates, and the
    client presents ANOTHER certificate.  The identity must be the new
    certificate's from that request on, never alice's."""
    got, err = run_client(tlsclient, srv, P_OPT,
                          ["alice", "/open/", "/mapped/", new, path,
                           "/open/", "/mapped/", "/req-alice/"],
                          tls="1.2")
    assert err is None, (err, got)
    assert users(got[:2]) == [(200, "alice"), (200, "alice")], got
    after = got[2:]
    new_user = "bob" if new == "bob" else None
    assert users(after[:1]) == [expect], got
    if path == "/req-authtype/":
        assert after[0].remote_user == "bob", got
    assert users(after[1:]) == [
        (200, new_user), (200 if new_user else 403, new_user),
        (403, None)], got
    # the certificate really changed (fingerprint), so the identity did
    sha = {r.sha256 for r in after[1:2]}
    assert sha and sha != {got[0].sha256}, got
    assert never_granted_to(after, "alice"), got


def test_reneg12_certificate_swapped_back_and_forth(srv, tlsclient):
    """Per-directory SSLCipherSuite forces a renegotiation at each switch
    between /cipher and /cipher2; the client presents another certificate
    each time (and one certificate twice, not in a row): every response
    carries the certificate of that moment."""
    got, err = run_client(tlsclient, srv, P_OPT,
                          ["alice", "/open/",
                           "bob", "/cipher/", "/open/",
                           "alice", "/cipher2/",
                           "bob", "/cipher/",
                           "zed", "/cipher2/", "/mapped/",
                           "alice", "/cipher/", "/mapped/"],
                          tls="1.2")
    assert err is None, (err, got)
    assert users(got) == [
        (200, "alice"), (200, "bob"), (200, "bob"), (200, "alice"),
        (200, "bob"), (200, None), (403, None), (200, "alice"),
        (200, "alice")], got


def test_reneg12_without_certificate_drops_the_identity(srv, tlsclient):
    """SSLVerifyClient none on the vhost: alice is obtained at /req; a
    renegotiation for a cipher change asks for no certificate, so the
    connection has none afterwards, and no identity either."""
    got, err = run_client(tlsclient, srv, P_NONE,
                          ["/open/", "alice", "/req/", "/open/",
                           "/cipher/", "/open/", "/mapped/"], tls="1.2")
    assert err is None, (err, got)
    assert users(got) == [(200, None), (200, "alice"), (200, "alice"),
                          (200, None), (200, None), (403, None)], got
    assert [r.verify for r in got[3:]] == ["NONE"] * 3, got


@pytest.mark.parametrize("port", [P_NONE, P_OPT], ids=["vhost-none",
                                                      "vhost-optional"])
def test_reneg12_untrusted_certificate_never_granted(srv, tlsclient, port):
    """The renegotiation presents a certificate of an untrusted CA with
    CN=bob (bob's name, another key): refused (alert or 403), never bob,
    and never the previous identity either."""
    first = ["alice", "/open/"] if port == P_OPT else ["/open/"]
    got, err = run_client(tlsclient, srv, port,
                          first + ["untrusted_bob", "/req/", "/open/",
                                   "/req-bob/"], tls="1.2")
    assert users(got[:1]) == [(200, "alice" if port == P_OPT else None)], \
        (err, got)
    rest = got[1:]
    assert not rest or rest[0].status == 403, (err, got)
    assert never_granted_to(rest, "bob"), (err, got)
    assert all(r.user is None for r in rest), (err, got)


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_unverified_certificate_obtained_later_gives_nothing(srv, tlsclient,
                                                             tls):
    """A per-directory SSLVerifyClient optional_no_ca obtains (TLS 1.2
    renegotiation or 1.3 PHA) a certificate of an untrusted CA with CN=bob:
    mod_ssl keeps the connection (SSL_CLIENT_VERIFY FAILED:... then, in
    TLS 1.2, GENEROUS), the module gives no identity, on that request or
    later ones."""
    actions = ["/open/", "untrusted_bob", "/gen/", "/gen-open/", "/open/",
               "/mapped/"]
    got, err = run_client(tlsclient, srv, P_NONE, actions, tls=tls,
                          pha=True)
    assert err is None, (err, got)
    assert users(got) == [(200, None), (403, None), (200, None),
                          (200, None), (403, None)], got
    # mod_ssl holds the untrusted certificate, and says it is not verified
    assert [r.cn for r in got] == [None] + ["bob"] * 4, got
    assert all(r.verify != "SUCCESS" for r in got), got
    assert all(r.sha256 is None for r in got), got


def test_unverified_then_verified_certificate(srv, tlsclient):
    """TLS 1.2: an untrusted CN=bob first (optional_no_ca in the handshake's
    place: renegotiated at /gen-open), then a renegotiation at require with
    alice: never bob.  (mod_ssl 2.4 keeps SSL_CLIENT_VERIFY at GENEROUS on
    such a connection even after alice was verified, so the module, which
    trusts only SUCCESS, gives no identity at all: fail-closed.)"""
    got, err = run_client(tlsclient, srv, P_NONE,
                          ["/open/", "untrusted_bob", "/gen-open/", "alice",
                           "/req-alice/", "/open/", "/req-bob/"], tls="1.2")
    assert got[1].cn == "bob" and got[1].user is None, (err, got)
    assert never_granted_to(got, "bob"), (err, got)
    for r in got[2:]:
        assert r.cn in (None, "alice"), got
        assert r.user in (None, "alice"), got
        if r.user == "alice":
            assert r.verify == "SUCCESS", got
    assert got[-1].status == 403, got


# --------------------------------------------------------------------------
# 1b. TLS 1.3 post-handshake authentication (PHA)


def test_pha_first_certificate(srv, tlsclient):
    """The vhost asks for no certificate; /req-bob requests one after the
    handshake; a PHA-capable client presents bob: bob from then on."""
    got, err = run_client(tlsclient, srv, P_NONE,
                          ["/open/", "bob", "/req-bob/", "/open/",
                           "/req-alice/", "/req-authtype/"],
                          tls="1.3", pha=True)
    assert err is None, (err, got)
    assert [r.proto for r in got] == ["TLSv1.3"] * 5
    assert users(got) == [(200, None), (200, "bob"), (200, "bob"),
                          (403, None), (200, "bob")], got
    assert got[4].remote_user == "bob", got


def _py_ctx(certs, cert=None, tls=None, pha=False):
    return H.tls_context(certs["root_ca"].crt, certs[cert] if cert else None,
                         tls, pha)


def py_get(ctx, port, path, sni="localhost", host=None, session=None):
    """One request on a new connection (Python ssl).  Returns (status or
    "ERR", headers, session, session_reused)."""
    return H.raw_tls_get(ctx, port, path, sni=sni, host=host,
                         session=session, errors_as_result=True)


@pytest.mark.parametrize("path", ["/req/", "/req-alice/", "/req-authtype/"])
def test_pha_not_offered_is_refused(srv, certs, path):
    """A TLS 1.3 client that does not offer post-handshake authentication
    (but has a certificate) cannot be asked for one: 403 or a connection
    error, never a grant -- first request or after one without."""
    ctx = _py_ctx(certs, "alice", "1.3", pha=False)
    st, h, _, _ = py_get(ctx, srv.ports[P_NONE], path + "ok.txt")
    assert st in (403, "ERR"), (st, h)
    assert h.get("x-certauthz-user") is None
    assert h.get("x-remote-user") is None
    # the same with Python's own PHA-capable client: granted (control)
    ctx = _py_ctx(certs, "alice", "1.3", pha=True)
    st, h, _, _ = py_get(ctx, srv.ports[P_NONE], path + "ok.txt")
    assert (st, h.get("x-certauthz-user")) == (200, "alice"), (st, h)


def test_pha_not_offered_keepalive(srv, certs):
    """Same on a keep-alive connection that first got an open page."""
    ctx = _py_ctx(certs, "alice", "1.3", pha=False)
    conn = http.client.HTTPSConnection("127.0.0.1", srv.ports[P_NONE],
                                       context=ctx, timeout=10)
    out = []
    try:
        for p in ("/open/ok.txt", "/req-alice/ok.txt", "/open/ok.txt"):
            try:
                conn.request("GET", p, headers={"X-Test-Id": H.new_test_id()})
                r = conn.getresponse()
                r.read()
            except (ssl.SSLError, ConnectionError,
                    http.client.HTTPException):
                out.append(("ERR", None))
                break
            out.append((r.status, r.getheader("X-Certauthz-User")))
    finally:
        conn.close()
    assert out[0] == (200, "(null)") or out[0] == (200, None), out
    assert out[1][0] in (403, "ERR"), out
    assert all(u in (None, "(null)") for _, u in out), out


@pytest.mark.parametrize("client", ["tlsclient", "python"])
def test_pha_untrusted_certificate_never_granted(srv, certs, tlsclient,
                                                 client):
    """The PHA presents a certificate of an untrusted CA (CN=bob): the
    server refuses it (alert or 403); no request is ever granted."""
    if client == "tlsclient":
        got, err = run_client(tlsclient, srv, P_NONE,
                              ["/open/", "untrusted_bob", "/req/",
                               "/open/", "/req-bob/"], tls="1.3", pha=True)
        assert users(got[:1]) == [(200, None)], (err, got)
        assert not got[1:] or got[1].status == 403, (err, got)
        assert all(r.user is None for r in got), (err, got)
    else:
        ctx = _py_ctx(certs, "untrusted_bob", "1.3", pha=True)
        for p in ("/req/", "/req-bob/", "/req-authtype/"):
            st, h, _, _ = py_get(ctx, srv.ports[P_NONE], p + "ok.txt")
            assert st in (403, "ERR"), (p, st, h)
            assert h.get("x-certauthz-user") is None, (p, st, h)


def test_pha_cannot_replace_the_handshake_certificate(srv, tlsclient):
    """TLS 1.3, vhost SSLVerifyClient optional: alice in the handshake.
    /req-bob (require) may not give bob: mod_ssl asks for a certificate
    once per connection, so the connection stays alice's (403 there)."""
    got, err = run_client(tlsclient, srv, P_OPT,
                          ["alice", "/open/", "bob", "/req-bob/", "/open/",
                           "/req/"], tls="1.3", pha=True)
    assert users(got[:1]) == [(200, "alice")], (err, got)
    assert never_granted_to(got, "bob"), (err, got)
    assert got[1].status == 403, (err, got)
    # whatever the server did, the connection's certificate is alice's
    assert all(r.user in (None, "alice") for r in got), got
    assert all(r.sha256 in (None, got[0].sha256) for r in got), got


# --------------------------------------------------------------------------
# 1c. HTTP/2


@pytest.fixture(scope="module")
def need_curl_http2():
    assert H.CURL, "curl is needed for the HTTP/2 tests"
    assert H.http2_supported_by_curl(), "curl -V does not list HTTP2"


def _curl(args, timeout=20):
    p = subprocess.run([H.CURL, "-sS", "--max-time", str(timeout)] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout + 10)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
@pytest.mark.parametrize("port,path", [(P_H2NONE, "/req/"),
                                       (P_H2NONE, "/req-alice/"),
                                       (P_H2OPT, "/req-alice/")],
                         ids=["none-req", "none-req-alice",
                              "optional-req-alice"])
def test_h2_per_directory_verification_never_granted(srv, certs, tls, port,
                                                     path,
                                                     need_curl_http2):
    """A per-directory SSLVerifyClient require needs a renegotiation (1.2)
    or PHA (1.3), which HTTP/2 forbids: the HTTP/2 stream is refused (curl
    may then retry the request over HTTP/1.1 on a new connection, where
    the renegotiation is legitimate).  No HTTP/2 response is a grant."""
    test_id = H.new_test_id()
    a = certs["alice"]
    url = "https://127.0.0.1:%d" % srv.ports[port]
    tlsargs = (["--tlsv1.2", "--tls-max", "1.2"] if tls == "1.2"
               else ["--tlsv1.3"])
    rc, out, errtxt = _curl(
        ["--http2", "--cacert", certs["root_ca"].crt, "--cert", a.crt,
         "--key", a.key, "-H", "X-Test-Id: " + test_id] + tlsargs
        + ["-o", "/dev/null", url + "/open/ok.txt",
           "-o", "/dev/null", url + path + "ok.txt"])
    lines = srv.access_lines(test_id, count=2)
    # "%{X-Test-Id}i %h %{remote}p %u %>s \"%r\" %H \"%{CERTAUTHZ_USER}e\""
    h2 = [l for l in lines if " HTTP/2.0 " in l]
    assert h2, (lines, errtxt)
    for l in h2:
        f = l.split(" ")
        user, status = f[3], f[4]
        if path in l:
            assert status != "200", l
            assert user == "-", l
            assert l.endswith('"-"'), l
    # a retry over HTTP/1.1 (its own connection) may be granted, as alice
    # only (with TLS 1.3 and optional, mod_ssl asks for a certificate once
    # per connection: 403)
    for l in lines:
        if " HTTP/1.1 " in l and path in l:
            assert ((" 200 " in l and l.endswith('"alice"'))
                    or (" 403 " in l and l.endswith('"-"'))), l


def test_h2_parallel_streams_five_maps(srv, certs, need_curl_http2):
    """Many parallel streams of ONE HTTP/2 connection, each under one of
    five maps that give the same certificate five different users, two
    connections (alice, bob) at once: every stream gets the identity of
    its own map and its own connection's certificate."""
    paths = ["/m%d/ok.txt" % (1 + i % NMAPS) for i in range(40)]
    results = H.run_concurrently(
        ("alice", "bob"),
        lambda name: H.curl_h2(srv.ports[P_H2OPT], paths,
                               certs["root_ca"].crt, cert=certs[name],
                               parallel=True))
    for name in ("alice", "bob"):
        rs = results[name]
        assert all(r.protocol == "HTTP/2" for r in rs), rs
        assert len({r.remote_port for r in rs}) == 1, rs
        want = ["%s-%d" % (name, 1 + i % NMAPS) for i in range(len(paths))]
        assert [r.status for r in rs] == [200] * len(paths), (name, rs)
        assert [r.user for r in rs] == want, (name, rs)
        assert [r.groups for r in rs] == [
            "g%d" % (1 + i % NMAPS) for i in range(len(paths))], (name, rs)


# --------------------------------------------------------------------------
# 1d. TLS session resumption


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_resumed_session_is_its_certificate(srv, certs, tls):
    """Python ssl session=: the resumed connection's identity is the
    certificate the session was created with."""
    ctx = _py_ctx(certs, "alice", tls)
    st, h, sess, reused = py_get(ctx, srv.ports[P_OPT], "/mapped/ok.txt")
    assert (st, h.get("x-certauthz-user"), reused) == (200, "alice", False)
    resumed = None
    for _ in range(3):      # a TLS 1.3 ticket may need one more round
        st, h2, sess2, reused = py_get(ctx, srv.ports[P_OPT],
                                       "/mapped/ok.txt", session=sess)
        assert (st, h2.get("x-certauthz-user")) == (200, "alice"), h2
        assert h2.get("x-certauthz-sha256") == h.get("x-certauthz-sha256")
        if reused:
            resumed = h2
            break
        sess = sess2
    assert resumed, "the server never resumed the TLS session"


def test_resumed_session_then_renegotiation(srv, tlsclient, tmp_path):
    """TLS 1.2: a resumed session (alice) on a vhost with optional; then
    /req-bob renegotiates with bob: the identity follows the certificate."""
    sess = tmp_path / "alice.pem"
    got, err = run_client(tlsclient, srv, P_OPT, ["alice", "/open/"],
                          tls="1.2", save=sess)
    assert err is None and users(got) == [(200, "alice")], (err, got)
    got, err = run_client(tlsclient, srv, P_OPT,
                          ["nocert", "/open/", "/mapped/", "bob",
                           "/req-bob/", "/open/", "/mapped/"],
                          tls="1.2", resume=sess)
    assert err is None, (err, got)
    assert got[0].reused, got
    assert users(got) == [(200, "alice"), (200, "alice"), (200, "bob"),
                          (200, "bob"), (200, "bob")], got


SNI_PORTS = pytest.mark.parametrize(
    "port", [P_SNI, P_SNI_STRICT], ids=["sni-default", "sni-strict"])
TLS_VERSIONS = pytest.mark.parametrize("tls", ["1.2", "1.3"])


@SNI_PORTS
@TLS_VERSIONS
def test_session_of_vhost_a_gives_nothing_on_vhost_b(srv, tlsclient,
                                                     tmp_path, port, tls):
    """a.localhost trusts the root CA, b.localhost only the Partner CA (one
    address and port, name-based by SNI).  A session made on a.localhost
    with alice (root CA) is offered to b.localhost by a client that would
    not present a certificate in a full handshake: no identity on B."""
    sa = tmp_path / "a.pem"
    got, err = run_client(tlsclient, srv, port, ["alice", "/mapped/"],
                          tls=tls, sni="a.localhost", host="a.localhost",
                          save=sa)
    assert err is None and users(got) == [(200, "alice")], (err, got)
    # control: the session is resumable on its own vhost, under its name
    # or another name of the same vhost, and it is alice's there
    for sni in ("a.localhost", "A.LOCALHOST"):
        got, err = run_client(tlsclient, srv, port, ["/mapped/"], tls=tls,
                              sni=sni, host="a.localhost", resume=sa)
        assert err is None, (err, got)
        assert got[0].reused and users(got) == [(200, "alice")], (sni, got)
    # the attack
    got, err = run_client(tlsclient, srv, port, ["/", "/mapped/"], tls=tls,
                          sni="b.localhost", host="b.localhost", resume=sa)
    assert all(not r.reused for r in got), (err, got)
    assert all(r.user is None and r.sha256 is None for r in got), (err, got)
    assert users(got) == [(200, None), (403, None)], (err, got)


@SNI_PORTS
@TLS_VERSIONS
def test_session_with_sni_a_host_b(srv, tlsclient, tmp_path, port, tls):
    """A session of a.localhost (alice), resumed under SNI a.localhost but
    with Host: b.localhost: never served by B with alice's identity."""
    sa = tmp_path / "a.pem"
    got, err = run_client(tlsclient, srv, port, ["alice", "/mapped/"],
                          tls=tls, sni="a.localhost", host="a.localhost",
                          save=sa)
    assert err is None and users(got) == [(200, "alice")], (err, got)
    for resume in (sa, None):
        actions = ["/mapped/", "/"] if resume else ["alice", "/mapped/",
                                                   "/"]
        got, err = run_client(tlsclient, srv, port, actions, tls=tls,
                              sni="a.localhost", host="b.localhost",
                              resume=resume)
        assert got, err
        assert all(r.status != 200 for r in got), (err, got)
        assert all(r.user is None for r in got), (err, got)


@SNI_PORTS
@TLS_VERSIONS
@pytest.mark.parametrize("sni", ["a.localhost", "c.localhost", None],
                         ids=["sni-a", "sni-unknown", "no-sni"])
def test_session_of_vhost_b_under_another_sni(srv, tlsclient, tmp_path,
                                              port, tls, sni):
    """A session made on b.localhost with partner_alice (Partner CA, which
    a.localhost does not trust) resumed with another SNI name (a.localhost,
    an unknown name, none): never partner-alice on a.localhost."""
    sb = tmp_path / "b.pem"
    got, err = run_client(tlsclient, srv, port,
                          ["partner_alice", "/mapped/"], tls=tls,
                          sni="b.localhost", host="b.localhost", save=sb)
    assert err is None and users(got) == [(200, "partner-alice")], (err, got)
    got, err = run_client(tlsclient, srv, port, ["/mapped/"], tls=tls,
                          sni="b.localhost", host="b.localhost", resume=sb)
    assert got[0].reused and users(got) == [(200, "partner-alice")], got
    got, err = run_client(tlsclient, srv, port, ["/", "/mapped/"], tls=tls,
                          sni=sni, host="a.localhost", resume=sb)
    assert never_granted_to(got, "partner-alice"), (err, got)
    assert all(r.user is None for r in got), (err, got)
    assert all(r.status != 200 for r in got[1:]), (err, got)


@TLS_VERSIONS
@pytest.mark.parametrize("layout", ["two-ports", "name-based"])
def test_session_shared_by_vhosts_with_one_servername(srv, tlsclient,
                                                      tmp_path, layout, tls):
    """Like test_session_of_vhost_a_gives_nothing_on_vhost_b, but the two
    vhosts (root CA / Partner CA only) have the same ServerName: on two
    ports without session tickets (SSLSessionTickets off, a common
    hardening), or on one port told apart by ServerAlias."""
    sa = tmp_path / "a.pem"
    if layout == "two-ports":
        a, b, sni_a, sni_b, host_a, host_b = (P_SAME_A, P_SAME_B, None,
                                              None, "localhost",
                                              "localhost")
    else:
        a, b, sni_a, sni_b, host_a, host_b = (P_SHARED, P_SHARED,
                                              "a.localhost", "b.localhost",
                                              "a.localhost", "b.localhost")
    got, err = run_client(tlsclient, srv, a, ["alice", "/mapped/"], tls=tls,
                          sni=sni_a, host=host_a, save=sa)
    assert err is None and users(got) == [(200, "alice")], (err, got)
    # B itself refuses alice in a full handshake (it trusts only Partner CA)
    got, err = run_client(tlsclient, srv, b, ["alice", "/mapped/"], tls=tls,
                          sni=sni_b, host=host_b)
    assert not got and "unknown ca" in err, (err, got)
    # ... so a resumed session of A must not give alice there either
    got, err = run_client(tlsclient, srv, b, ["/mapped/"], tls=tls,
                          sni=sni_b, host=host_b, resume=sa)
    assert never_granted_to(got, "alice"), (err, got)


# --------------------------------------------------------------------------
# HTTP/2 under load (last in this file: a crash must not disturb the others)

H2_STRESS_SECONDS = max(1.0, float(
    os.environ.get("CERTAUTHZ_H2_STRESS_SECONDS") or 10))


def test_h2_short_connections_under_load(srv, certs, need_curl_http2):
    """Many short HTTP/2 connections (alice and bob), 16 parallel streams
    each over five maps, from 8 clients at once for a bounded time
    (CERTAUTHZ_H2_STRESS_SECONDS, default 10): every response is the right
    user of the right map, and no httpd child crashes.

    The first streams of a connection run on worker threads while the
    connection's own thread is still busy: whatever the module shares
    between them (the per-connection cache) must be thread-safe, its memory
    included."""
    npaths = 16
    paths = ["/m%d/ok.txt" % (1 + i % NMAPS) for i in range(npaths)]
    url = "https://127.0.0.1:%d" % srv.ports[P_H2OPT]
    log_start = len(srv.error_log_text())
    deadline = time.monotonic() + H2_STRESS_SECONDS
    stats = {"runs": 0, "responses": 0, "curl_failures": 0}
    wrong, errors = [], []
    lock = threading.Lock()

    def client(name):
        c = certs[name]
        cmd = [H.CURL, "-sS", "--http2", "--cacert", certs["root_ca"].crt,
               "--cert", c.crt, "--key", c.key, "--max-time", "20",
               "--parallel", "--parallel-max", str(npaths),
               "-w", "%{response_code}\t%header{x-certauthz-user}\t"
               "%{url}\\n"]
        for p in paths:
            cmd += ["-o", "/dev/null", url + p]
        for _ in range(10000):
            if time.monotonic() >= deadline:
                return
            try:
                pr = subprocess.run(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, timeout=30)
            except subprocess.TimeoutExpired as e:
                errors.append(repr(e))
                return
            lines = [l for l in pr.stdout.decode().split("\n") if l]
            with lock:
                stats["runs"] += 1
                stats["curl_failures"] += pr.returncode != 0
                for l in lines:
                    code, user, u = (l.split("\t") + ["", ""])[:3]
                    if code == "000":
                        continue          # transfer failed: no response
                    stats["responses"] += 1
                    m = int(u.split("/m", 1)[1].split("/", 1)[0])
                    if (code, user) != ("200", "%s-%d" % (name, m)):
                        wrong.append((name, l))

    threads = [threading.Thread(target=client, args=(n,))
               for n in ["alice", "bob"] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(H2_STRESS_SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "curl hung"
    crashes = [l for l in srv.error_log_text()[log_start:].splitlines()
               if "exit signal" in l or "AH00052" in l or "AH00051" in l]
    assert not crashes, ("httpd children crashed under HTTP/2 load "
                         "(%s):\n%s" % (stats, "\n".join(crashes)))
    assert not wrong, (stats, wrong[:10])
    assert not errors, errors
    # most transfers completed (curl may lose a few under load)
    assert stats["responses"] >= 0.9 * stats["runs"] * npaths, stats
