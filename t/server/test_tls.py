"""TLS details of SPEC section 1: TLS 1.2 as well as 1.3, a resumed session
carries the certificate it was created with, and the certificate is re-read
when the connection's client certificate changes (TLS 1.2 renegotiation,
TLS 1.3 post-handshake authentication)."""

import http.client
import ssl

import pytest

import certauthz_harness as H


def context(certs, cert=None, version=None, pha=False):
    return H.tls_context(certs["root_ca"].crt,
                         certs[cert] if cert is not None else None,
                         version, pha)


def raw_get(ctx, port, path, session=None):
    """One request on a new TLS connection (no SNI: the name is an IP
    address), optionally resuming `session`.  Returns (status, headers
    dict, ssl session, session_reused)."""
    return H.raw_tls_get(ctx, port, path, sni="127.0.0.1", host="localhost",
                         session=session)


def hdr(headers, name):
    v = headers.get(name.lower())
    return None if v in (None, "", "(null)") else v


@pytest.mark.parametrize("cert,path,status,user", [
    ("alice", "/p/group/", 200, "alice"),
    ("bob", "/p/group/", 403, None),
    ("bob", "/p/cn/", 200, None),
    ("partner_alice", "/p/user/", 403, None),
    ("alice", "/a/valid/", 200, "alice"),
])
def test_tls12(server, certs, cert, path, status, user):
    ctx = context(certs, cert, ssl.TLSVersion.TLSv1_2)
    st, headers, _, _ = raw_get(ctx, server.port, path + "ok.txt")
    assert st == status, headers
    if user:
        assert hdr(headers, "X-Certauthz-User") == user


def test_tls12_generous_untrusted(server, certs):
    ctx = context(certs, "untrusted_bob", ssl.TLSVersion.TLSv1_2)
    st, headers, _, _ = raw_get(ctx, server.gen_port, "/p/cn/ok.txt")
    assert st == 403
    assert hdr(headers, "X-Certauthz-Sha256") is None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2,
                                     ssl.TLSVersion.TLSv1_3],
                         ids=["tls12", "tls13"])
@pytest.mark.parametrize("cert,user", [("alice", "alice"),
                                       ("partner_alice", "partner-alice"),
                                       (None, None)])
def test_resumed_session_keeps_its_certificate(server, certs, version, cert,
                                               user):
    ctx = context(certs, cert, version)
    path = "/e/on/ok.txt"
    st, h1, sess, reused = raw_get(ctx, server.port, path)
    assert st == 200 and not reused
    assert hdr(h1, "X-Certauthz-User") == user
    resumed = False
    for _ in range(3):      # a TLS 1.3 ticket may need one more round
        st, h2, sess2, reused = raw_get(ctx, server.port, path, session=sess)
        assert st == 200
        assert hdr(h2, "X-Certauthz-User") == user, h2
        assert hdr(h2, "X-Certauthz-Sha256") == hdr(h1, "X-Certauthz-Sha256")
        if reused:
            resumed = True
            break
        sess = sess2
    assert resumed, "the server never resumed the TLS session"
    # and the resumed session still passes / fails the providers
    st, _, _, reused = raw_get(ctx, server.port, "/p/mapped/ok.txt",
                               session=sess)
    assert st == (200 if cert else 403)


def _one_connection(ctx, port, paths):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                       timeout=15)
    out = []
    try:
        for p in paths:
            conn.request("GET", p, headers={"X-Test-Id": H.new_test_id()})
            r = conn.getresponse()
            r.read()
            out.append((r.status, hdr(dict((k.lower(), v)
                                           for k, v in r.getheaders()),
                                      "X-Certauthz-User")))
    finally:
        conn.close()
    return out


@pytest.mark.parametrize("mode", ["tls12-renegotiation", "tls13-pha"])
def test_certificate_requested_later_is_read(server, certs, mode):
    """The vhost does not ask for a certificate; <Location /reneg> does
    (SSLVerifyClient require).  Before, the connection has no certificate;
    after, every request on it sees alice."""
    if mode == "tls12-renegotiation":
        ctx = context(certs, "alice", ssl.TLSVersion.TLSv1_2)
    else:
        ctx = context(certs, "alice", ssl.TLSVersion.TLSv1_3, pha=True)
    got = _one_connection(ctx, server.reneg_port,
                          ["/e/on/ok.txt", "/reneg/ok.txt", "/e/on/ok.txt",
                           "/p/user/ok.txt", "/p/group-robots/ok.txt"])
    assert got == [(200, None), (200, "alice"), (200, "alice"),
                   (200, "alice"), (403, None)], got


def test_certificate_requested_later_unmapped(server, certs):
    ctx = context(certs, "zed", ssl.TLSVersion.TLSv1_2)
    got = _one_connection(ctx, server.reneg_port,
                          ["/p/mapped/ok.txt", "/reneg/ok.txt",
                           "/p/cn-star/ok.txt"])
    assert got == [(403, None), (403, None), (200, None)], got
