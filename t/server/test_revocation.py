"""Revocation (SPEC section 1, last point): mod_ssl's CRL checking and the
map's `deny` rules.

A CRL of the test root CA (made with `openssl ca` from t/mkcert's CA key)
revokes one leaf; httpd checks it with SSLCARevocationFile and
SSLCARevocationCheck chain (and leaf).  The revoked leaf gets no identity
(handshake failure or 403); a leaf of the same CA that is not revoked still
works; a map `deny serial:` rule refuses a certificate that no CRL lists,
with no new CRL and no restart.

Its own httpd instance (module scope).  Only 127.0.0.1.
"""

import os
import ssl
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import certauthz_harness as H

SERIAL = {
    "rv_revoked": "0A11CE01",   # on the root CA's CRL
    "rv_good": "0A11CE02",      # on no CRL, no deny rule
    "rv_denied": "0A11CE03",    # on no CRL; `deny serial:` in the map
    "rv_late": "0A11CE04",      # denied later (restart / live reload tests)
}

# port index -> what the vhost checks
P_CHAIN, P_LEAF, P_NOCA, P_NOCRL = range(4)
CRL_PORTS = [P_CHAIN, P_LEAF, P_NOCA]
CRL_IDS = ["chain", "leaf", "optional_no_ca+chain"]

MAP_TEXT = """\
# revocation tests
cn:rv-revoked   rv-revoked   staff
cn:rv-good      rv-good      staff
cn:rv-denied    rv-denied    staff
cn:rv-late      rv-late      staff
deny serial:{denied}         # a lost laptop: on no CRL
[issuer "{partner}"]
cn~^(.+)$       partner-$1   partners
""".format(denied=SERIAL["rv_denied"], partner=H.PARTNER_CA_DN)

MAP = "CertAuthzMapFile conf/certauthz/revocation.map"

LOCATIONS = [
    ("/open", MAP + "\nRequire all granted"),
    ("/mapped", MAP + "\nRequire cert-mapped"),
    ("/user", MAP + "\nRequire cert-user rv-revoked rv-good rv-denied "
     "rv-late partner-alice"),
    ("/authtype", "AuthType Certificate\n" + MAP + "\nRequire valid-user"),
    ("/cn", "Require cert-cn rv-*"),
    # maps that tests change while the server runs
    ("/late", "CertAuthzMapFile conf/certauthz/late.map\n"
     "Require cert-mapped"),
    ("/live", "CertAuthzMapFile conf/certauthz/live.map\n"
     "Require cert-mapped"),
]
LATE_MAP = "cn:rv-late  rv-late  staff\n"
LIVE_MAP = "cn:rv-late  rv-late  staff\n"


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + [str(a) for a in args], cwd=str(cwd),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert p.returncode == 0, p.stdout.decode(errors="replace")
    return p.stdout.decode(errors="replace")


def make_crl(d, ca, revoke=()):
    """A CRL of CA (a Cert of t/mkcert: ca.crt, ca.key) revoking the
    certificates `revoke` (Certs), made with `openssl ca` in directory d.
    Returns the PEM text."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("1000\n")
    (d / "ca.cnf").write_text(textwrap.dedent("""\
        [ ca ]
        default_ca = CA_default
        [ CA_default ]
        dir = {d}
        database = $dir/index.txt
        crlnumber = $dir/crlnumber
        default_md = sha256
        default_crl_days = 30
        """).format(d=d))
    for c in revoke:
        openssl("ca", "-config", "ca.cnf", "-keyfile", ca.key, "-cert",
                ca.crt, "-revoke", c.crt, cwd=d)
    openssl("ca", "-config", "ca.cnf", "-keyfile", ca.key, "-cert", ca.crt,
            "-gencrl", "-out", "crl.pem", cwd=d)
    text = (d / "crl.pem").read_text()
    listed = openssl("crl", "-in", "crl.pem", "-noout", "-text", cwd=d)
    for c in revoke:
        assert SERIAL[c.name] in listed.replace(":", "").upper(), listed
    return text


def _loc(path, body):
    return '<Location "%s">\n%s\n</Location>' % (
        path, textwrap.indent(body, "    "))


def _config(srv):
    p = srv.ports
    ca = 'SSLCACertificateFile "conf/ssl/clients-ca.pem"\n'
    crl = 'SSLCARevocationFile "conf/ssl/crl.pem"\n'
    h1 = "Protocols http/1.1\n"
    tickets = 'SSLSessionTicketKeyFile "conf/ssl/tickets.key"\n'
    return "\n".join(
        ["CertAuthzReloadInterval 1"]
        + [_loc(path, body) for path, body in LOCATIONS] + [
            H.ssl_vhost(p[P_CHAIN], h1 + ca + crl + tickets
                        + "SSLCARevocationCheck chain\n"
                        "SSLVerifyClient optional\nSSLVerifyDepth 2"),
            H.ssl_vhost(p[P_LEAF], h1 + ca + crl
                        + "SSLCARevocationCheck leaf\n"
                        "SSLVerifyClient optional\nSSLVerifyDepth 2"),
            H.ssl_vhost(p[P_NOCA], h1 + ca + crl
                        + "SSLCARevocationCheck chain\n"
                        "SSLVerifyClient optional_no_ca\nSSLVerifyDepth 2"),
            # control: no revocation checking at all
            H.ssl_vhost(p[P_NOCRL], h1 + ca
                        + "SSLVerifyClient optional\nSSLVerifyDepth 2"),
        ])


@pytest.fixture(scope="module")
def pki(workdir, certs):
    d = workdir / "revocation" / "pki"
    d.mkdir(parents=True)
    root = certs["root_ca"]
    out = {}
    for name, serial in SERIAL.items():
        cn = name.replace("_", "-")
        out[name] = H.mkcert(d / name, "--issuer", Path(root.prefix),
                             "--subject", "/O=Example/CN=%s" % cn,
                             "--serial", serial)
    out["root_crl"] = make_crl(d / "root-ca", root, [out["rv_revoked"]])
    out["partner_crl"] = make_crl(d / "partner-ca", certs["partner_ca"])
    H.make_tree_public(d)
    return out


@pytest.fixture(scope="module")
def srv(workdir, certs, pki):
    files = {
        "conf/ssl/crl.pem": pki["root_crl"] + pki["partner_crl"],
        "conf/certauthz/revocation.map": MAP_TEXT,
        "conf/certauthz/late.map": LATE_MAP,
        "conf/certauthz/live.map": LIVE_MAP,
    }
    s = H.ExtraHttpd(workdir / "revocation" / "server", certs, _config,
                     nports=4, files=files,
                     docs=[p for p, _ in LOCATIONS])
    s.setup()
    # 48 bytes: TLS session tickets stay valid across a graceful restart
    tk = s.root / "conf" / "ssl" / "tickets.key"
    tk.write_bytes(os.urandom(48))
    os.chmod(tk, 0o644)
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


def get(srv, port, path, cert, tls=None):
    """(status, Response) or ("refused", None) when the TLS connection is
    refused."""
    try:
        r = srv.get(path, cert, port=srv.ports[port], tls=tls)
    except H.HandshakeFailed:
        return "refused", None
    return r.status, r


TLS = pytest.mark.parametrize("tls", ["1.2", "1.3"])


@TLS
@pytest.mark.parametrize("port", CRL_PORTS, ids=CRL_IDS)
@pytest.mark.parametrize("path", ["/mapped/", "/user/", "/authtype/",
                                  "/cn/", "/open/"])
def test_revoked_leaf_gets_no_identity(srv, pki, port, path, tls):
    st, r = get(srv, port, path, pki["rv_revoked"], tls)
    if st == "refused":
        return                      # mod_ssl refused the handshake
    # a connection was allowed (optional_no_ca): no identity, no grant
    assert r.user is None and r.remote_user is None, r
    assert r.cert_sha256 is None, r
    assert r.ssl_verify != "SUCCESS", r
    if path != "/open/":
        assert st == 403, r


@TLS
def test_revoked_leaf_is_otherwise_valid(srv, pki, tls):
    """Control: without revocation checking, the same leaf is verified and
    mapped -- so the refusals above are the CRL's doing."""
    st, r = get(srv, P_NOCRL, "/mapped/", pki["rv_revoked"], tls)
    assert (st, r.user, r.ssl_verify) == (200, "rv-revoked", "SUCCESS"), r


@TLS
@pytest.mark.parametrize("port", [P_CHAIN, P_LEAF, P_NOCA, P_NOCRL],
                         ids=CRL_IDS + ["no-crl"])
def test_not_revoked_leaf_of_same_ca_works(srv, pki, certs, port, tls):
    for path in ("/mapped/", "/user/", "/authtype/"):
        st, r = get(srv, port, path, pki["rv_good"], tls)
        assert st == 200, (path, r)
        assert r.user == "rv-good" and r.ssl_verify == "SUCCESS", (path, r)
    st, r = get(srv, port, "/authtype/", pki["rv_good"], tls)
    assert r.remote_user == "rv-good", r
    # another CA's leaf (its own, empty, CRL is in the file: chain mode)
    st, r = get(srv, port, "/user/", certs["partner_alice"], tls)
    assert (st, r.user) == (200, "partner-alice"), r


@TLS
@pytest.mark.parametrize("port", [P_CHAIN, P_LEAF, P_NOCA, P_NOCRL],
                         ids=CRL_IDS + ["no-crl"])
def test_deny_serial_refuses_a_certificate_no_crl_lists(srv, pki, port, tls):
    """rv_denied is on no CRL: TLS verifies it (SUCCESS), and the map's
    `deny serial:` refuses it at once -- with or without CRL checking."""
    for path in ("/mapped/", "/user/", "/authtype/"):
        st, r = get(srv, port, path, pki["rv_denied"], tls)
        assert st == 403, (path, r)
        assert r.ssl_verify == "SUCCESS", (path, r)
        assert r.user is None and r.remote_user is None, (path, r)
    # a deny-listed certificate is refused wherever its map is in scope,
    # even under Require all granted (so that Require not / RequireNone
    # cannot turn the refusal into a grant)
    st, r = get(srv, port, "/open/", pki["rv_denied"], tls)
    assert (st, r.user) == (403, None), r


def _py_ctx(certs, cert, tls):
    return H.tls_context(certs["root_ca"].crt, cert, tls)


def _raw_get(ctx, port, path, session=None):
    """(status, X-Certauthz-User, session, reused) over a new connection."""
    st, headers, sess, reused = H.raw_tls_get(ctx, port, path,
                                              session=session)
    return st, headers.get("x-certauthz-user"), sess, reused


def _wait_restarted(srv, before, timeout=20):
    """Wait (bounded) until the server answers with a new generation of
    children after a graceful restart (SIGUSR1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "resuming normal operations" in \
                srv.error_log_text()[before:]:
            try:
                r = srv.get("/open/ok.txt", port=srv.port)
                if r.status == 200:
                    return True
            except (OSError, H.HandshakeFailed):
                pass
        time.sleep(0.1)
    return False


@TLS
def test_deny_rule_after_graceful_restart_applies_to_resumed_session(
        srv, pki, certs, tls):
    """A session made with rv_late while the map granted it; then the map
    gets `deny serial:` (the CRL file is not touched) and httpd restarts
    gracefully.  A resumed session (ticket keys kept in
    SSLSessionTicketKeyFile) as well as a new one: refused by the deny rule.
    (A CRL would not do this: mod_ssl checks CRLs in full handshakes
    only.)"""
    crl_before = (srv.root / "conf" / "ssl" / "crl.pem").read_bytes()
    ctx = _py_ctx(certs, pki["rv_late"], tls)
    port = srv.ports[P_CHAIN]
    try:
        st, user, sess, _ = _raw_get(ctx, port, "/late/ok.txt")
        assert (st, user) == (200, "rv-late")
        # TLS 1.3: take a ticket of a resumed connection too (fresh one)
        st, user, sess2, reused = _raw_get(ctx, port, "/late/ok.txt",
                                           session=sess)
        assert (st, user) == (200, "rv-late")
        sess = sess2 if sess2 is not None else sess
        srv.write_map("late.map", LATE_MAP + "deny serial:%s\n"
                      % SERIAL["rv_late"])
        before = len(srv.error_log_text())
        srv.graceful_restart()
        assert _wait_restarted(srv, before), srv.error_log_tail()
        st, user, _, reused = _raw_get(ctx, port, "/late/ok.txt",
                                       session=sess)
        assert (st, user, reused) == (403, None, True)
        st, user, _, reused = _raw_get(ctx, port, "/late/ok.txt")
        assert (st, user, reused) == (403, None, False)
        assert (srv.root / "conf" / "ssl" / "crl.pem").read_bytes() \
            == crl_before
    finally:
        srv.write_map("late.map", LATE_MAP)
        before = len(srv.error_log_text())
        srv.graceful_restart()
        assert _wait_restarted(srv, before), srv.error_log_tail()


@TLS
def test_crl_revocation_reaches_resumed_sessions(srv, pki, certs, tls,
                                                 workdir):
    """A session made with rv_late (not revoked); the CRL then revokes
    rv_late and httpd restarts gracefully: a full handshake is refused, and
    the resumed session should get no identity either."""
    crl_file = srv.root / "conf" / "ssl" / "crl.pem"
    ctx = _py_ctx(certs, pki["rv_late"], tls)
    port = srv.ports[P_CHAIN]
    try:
        st, user, sess, _ = _raw_get(ctx, port, "/mapped/ok.txt")
        assert (st, user) == (200, "rv-late")
        st, user, sess2, reused = _raw_get(ctx, port, "/mapped/ok.txt",
                                           session=sess)
        sess = sess2 if sess2 is not None else sess
        crl = make_crl(workdir / "revocation" / ("crl-late-" + tls),
                       certs["root_ca"], [pki["rv_revoked"], pki["rv_late"]])
        crl_file.write_text(crl + pki["partner_crl"])
        before = len(srv.error_log_text())
        srv.graceful_restart()
        assert _wait_restarted(srv, before), srv.error_log_tail()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _raw_get(ctx, port, "/mapped/ok.txt")       # full handshake
        st, user, _, reused = _raw_get(ctx, port, "/mapped/ok.txt",
                                       session=sess)
        assert user is None and st == 403, (st, user, reused)
    finally:
        crl_file.write_text(pki["root_crl"] + pki["partner_crl"])
        before = len(srv.error_log_text())
        srv.graceful_restart()
        assert _wait_restarted(srv, before), srv.error_log_tail()


def test_deny_rule_takes_effect_without_any_restart(srv, pki):
    """SPEC section 3: a changed map takes effect within about
    CertAuthzReloadInterval (here 1 s, the server's level) without a
    restart; a `deny serial:` for a certificate on no CRL refuses it then,
    on a new connection, with no new CRL and no restart."""
    live = "live.map"
    cert = pki["rv_late"]
    try:
        st, r = get(srv, P_CHAIN, "/live/", cert)
        assert (st, r.user) == (200, "rv-late"), r
        srv.write_map(live, LIVE_MAP + "deny serial:%s\n"
                      % SERIAL["rv_late"])
        # interval 1 s + 1 s for the file to settle: generous margin
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            st, r = get(srv, P_CHAIN, "/live/", cert)
            if st == 403:
                break
            time.sleep(0.2)
        assert st == 403, r
        assert r.ssl_verify == "SUCCESS", r
    finally:
        srv.write_map(live, LIVE_MAP)
