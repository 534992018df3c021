"""Certificates that must never give an identity (SPEC section 1):
no certificate, an untrusted one under SSLVerifyClient optional_no_ca
(GENEROUS), an expired one, two CNs, NUL bytes in the CN and in a SAN."""

import pytest

import certauthz_harness as H

# every location that uses a cert-* provider or AuthType Certificate
CERT_LOCATIONS = [p + "/" for p, body in H.LOCATIONS
                  if ("cert-" in body or "AuthType Certificate" in body)
                  and not p.startswith(("/c/any-ip", "/c/not", "/c/none-map"))]


def _provoked(server, path, r):
    # /nomap/* log CERTAUTHZ0010 (a configuration error) on every request
    if path.startswith("/nomap/"):
        server.allow_errors(r.test_id)


@pytest.mark.parametrize("path", CERT_LOCATIONS)
def test_no_certificate_is_403(server, get, path):
    r = get(path, None)
    _provoked(server, path, r)
    assert r.status == 403, r
    assert r.user is None and r.remote_user is None


# ---- untrusted certificate under SSLVerifyClient optional_no_ca: the
# handshake succeeds; mod_ssl says GENEROUS (TLS 1.2) or FAILED:... (TLS 1.3
# with OpenSSL 3); either way it must give nothing.

TLS = ["1.2", "1.3"]


def _assert_unverified(r, tls):
    if tls == "1.2":
        assert r.ssl_verify == "GENEROUS", r.headers
    else:
        assert r.ssl_verify in ("GENEROUS",) or \
            r.ssl_verify.startswith("FAILED:"), r.headers


@pytest.mark.parametrize("tls", TLS)
@pytest.mark.parametrize("path", CERT_LOCATIONS)
def test_generous_untrusted_certificate_is_403(server, get, path, tls):
    # untrusted_bob has CN bob: it would match cn:bob / cert-cn bob
    r = get(path, "untrusted_bob", generous=True, tls=tls)
    _provoked(server, path, r)
    assert r.status == 403, r
    assert r.user is None and r.remote_user is None


@pytest.mark.parametrize("tls", TLS)
@pytest.mark.parametrize("path", ["/e/on/", "/e/nomap/", "/c/any-ip/"])
def test_generous_untrusted_certificate_no_environment(get, path, tls):
    r = get(path, "untrusted_bob", generous=True, tls=tls)
    assert r.status == 200, r
    _assert_unverified(r, tls)
    assert (r.user, r.groups, r.rule, r.cert_sha256, r.remote_user) == \
        (None,) * 5, r.headers


@pytest.mark.parametrize("tls", TLS)
def test_generous_untrusted_certificate_audit_reason(server, get, tls):
    r = get("/p/cn/", "untrusted_bob", generous=True, tls=tls)
    assert r.status == 403
    audit = [l for l in server.log_lines(r.test_id) if "CERTAUTHZ0100" in l]
    assert len(audit) == 1, server.log_lines(r.test_id)
    assert 'decision="denied"' in audit[0] and 'reason="not-verified"' in audit[0]


@pytest.mark.parametrize("path,expected_user", [
    ("/p/cn/", None), ("/p/user/", None), ("/a/valid/", "alice"),
])
def test_generous_vhost_trusted_certificate_works(get, path, expected_user):
    """Control: on the optional_no_ca vhost a certificate from a trusted CA
    is verified (SUCCESS) and works as usual."""
    cert = "bob" if path == "/p/cn/" else "alice"
    r = get(path, cert, generous=True)
    assert r.status == 200, r
    assert r.ssl_verify == "SUCCESS", r.headers
    if expected_user:
        assert r.remote_user == expected_user


# ---- expired

@pytest.mark.parametrize("generous", [False, True])
@pytest.mark.parametrize("path", ["/p/cn/", "/p/mapped/", "/a/valid/",
                                  "/e/on/"])
def test_expired_certificate(get, path, generous):
    try:
        r = get(path, "expired_bob", generous=generous)
    except H.HandshakeFailed:
        return  # refused in the handshake: fine
    assert r.status != 200 or path == "/e/on/", r
    if r.status != 200:
        assert r.status == 403, r
    assert r.user is None and r.remote_user is None and r.cert_sha256 is None


# ---- two CNs: no cn fact; the dn fact still exists

def test_two_cns_no_cn_fact(get):
    # CNs are "bob" and "twocn": neither may match cert-cn
    assert get("/p/cn/", "twocn").status == 403
    assert get("/p/cn-star/", "twocn").status == 403
    assert get("/p/cn-star/", "alice").status == 200   # control


def test_two_cns_dn_still_maps(get):
    # cn:bob is earlier in the map than the dn: rule; a wrong cn fact
    # would give "bob"
    r = get("/e/on/", "twocn")
    assert r.user == "twocn", r
    assert get("/p/mapped/", "twocn").status == 200


def test_two_cns_unmapped_cn_fallback_has_nothing(get):
    # twocn is mapped; the fallback is never used for it
    r = get("/a/unmapped-cn/", "twocn")
    assert r.status == 200 and r.remote_user == "twocn", r


# ---- NUL bytes

@pytest.mark.parametrize("path", ["/p/cn/", "/p/cn-star/", "/p/mapped/",
                                  "/p/user/", "/a/valid/", "/a/unmapped-cn/"])
def test_nul_in_cn_never_matches(get, path):
    # CN is "bob\0evil": must not be read as "bob"
    r = get(path, "nulcn")
    assert r.status == 403, r


def test_nul_in_cn_no_identity(get):
    r = get("/e/on/", "nulcn")
    assert r.status == 200
    assert r.user is None and r.remote_user is None


@pytest.mark.parametrize("path", ["/p/email/", "/p/email-glob/",
                                  "/p/email-star/", "/p/mapped/", "/p/user/",
                                  "/a/unmapped-email/", "/p/group/"])
def test_nul_in_san_never_matches(get, path):
    # email SAN is "alice@example.com\0.evil.com"
    r = get(path, "nulsan")
    assert r.status == 403, r


def test_nul_in_san_control(get):
    assert get("/p/email-star/", "alice").status == 200
    assert get("/p/email-star/", "bob").status == 403  # no email SAN
