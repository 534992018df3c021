"""AuthType Certificate: the mapped identity is the request's user (SPEC
section 3): Require valid-user / user / group (mod_authz_groupfile), %u in
the access log, REMOTE_USER, refusals are 403 (never 401), and
CertAuthzUnmapped Deny / CN / Email (which the cert-* providers ignore)."""

import pytest


def _access_user(server, r):
    lines = server.access_lines(r.test_id)
    assert len(lines) == 1, (r, lines)
    # "<id> <host> <port> <user> <status> ..."
    fields = lines[0].split(" ")
    return fields[3], int(fields[4])


def _assert_403_not_401(r, authenticated_as=None):
    assert r.status == 403, r
    assert "www-authenticate" not in r.headers, r.headers
    # an authenticated but unauthorized request keeps its user
    assert r.remote_user == authenticated_as, r


@pytest.mark.parametrize("path,cert,user", [
    ("/a/valid/", "alice", "alice"),
    ("/a/valid/", "bob", "bob"),
    ("/a/valid/", "svc", "api-prod"),
    ("/a/valid/", "payments", "svc-payments"),
    ("/a/valid/", "partner_alice", "partner-alice"),
    ("/a/user/", "alice", "alice"),
    ("/a/group/", "alice", "alice"),
])
def test_authtype_grants_with_mapped_user(server, get, path, cert, user):
    r = get(path, cert)
    assert r.status == 200, r
    assert r.remote_user == user, r
    assert r.header("X-Auth-Type") == "Certificate", r.headers
    logged_user, status = _access_user(server, r)
    assert (logged_user, status) == (user, 200)


@pytest.mark.parametrize("path,cert,user", [
    ("/a/valid/", None, None),             # no certificate
    ("/a/valid/", "zed", None),            # unmapped, CertAuthzUnmapped default
    ("/a/valid/", "laptop", None),         # deny-listed
    ("/a/valid/", "partner_eve", None),    # deny rule of the issuer section
    ("/a/user/", "bob", "bob"),            # Require user alice
    ("/a/user/", "partner_alice", "partner-alice"),  # same CN, other CA
    ("/a/user/", None, None),
    ("/a/group/", "bob", "bob"),           # staff, not admins
    ("/a/group/", "partner_alice", "partner-alice"),
    ("/a/group/", "zed", None),
    ("/a/group/", None, None),
])
def test_authtype_refusal_is_403(server, get, path, cert, user):
    r = get(path, cert)
    _assert_403_not_401(r, user)
    assert _access_user(server, r) == (user or "-", 403)


def test_require_group_uses_groupfile_with_mapped_user(get):
    # dave is mapped (dn rule) and in group "ops", not "admins"
    r = get("/a/group/", "dave")
    _assert_403_not_401(r, "dave")


# ---- CertAuthzUnmapped

@pytest.mark.parametrize("path", ["/a/unmapped-deny/", "/a/unmapped-default/"])
def test_unmapped_deny(get, path):
    _assert_403_not_401(get(path, "zed"))
    r = get(path, "alice")                  # mapped: still fine
    assert r.status == 200 and r.remote_user == "alice", r


def test_unmapped_cn_uses_cn_as_user(server, get):
    r = get("/a/unmapped-cn/", "zed")
    assert r.status == 200, r
    assert r.remote_user == "zed", r
    # the fallback user is not a mapping: no CERTAUTHZ_USER, no groups
    assert r.user is None and r.groups is None, r
    assert _access_user(server, r) == ("zed", 200)


def test_unmapped_cn_mapped_user_wins(get):
    r = get("/a/unmapped-cn/", "alice")
    assert r.status == 200 and r.remote_user == "alice", r
    r = get("/a/unmapped-cn/", "partner_alice")
    assert r.status == 200 and r.remote_user == "partner-alice", r


@pytest.mark.parametrize("cert", ["laptop", "partner_eve"])
def test_unmapped_cn_never_rescues_a_denied_certificate(get, cert):
    _assert_403_not_401(get("/a/unmapped-cn/", cert))


@pytest.mark.parametrize("cert", ["nulcn", "deepbuilder"])
def test_unmapped_cn_without_usable_cn(get, cert):
    r = get("/a/unmapped-cn/", cert)
    if cert == "nulcn":
        # the CN contains a NUL byte: no cn fact, so no fallback user
        _assert_403_not_401(r)
    else:
        assert r.status == 200 and r.remote_user == "deepbuilder", r


def test_unmapped_cn_without_certificate(get):
    _assert_403_not_401(get("/a/unmapped-cn/", None))


def test_unmapped_email_uses_email_san(server, get):
    r = get("/a/unmapped-email/", "zed")
    assert r.status == 200, r
    assert r.remote_user == "zed@example.org", r
    assert _access_user(server, r) == ("zed@example.org", 200)


@pytest.mark.parametrize("cert", ["deepbuilder", "nulsan"])
def test_unmapped_email_without_email(get, cert):
    # deepbuilder has no email SAN; nulsan's only email SAN has a NUL byte
    _assert_403_not_401(get("/a/unmapped-email/", cert))


@pytest.mark.parametrize("path", ["/a/unmapped-cn-mapped/",
                                  "/a/unmapped-cn-certuser/"])
def test_cert_providers_ignore_unmapped_fallback(get, path):
    # AuthType Certificate + CertAuthzUnmapped CN gives zed the user "zed",
    # but cert-mapped / cert-user see only what the map says
    _assert_403_not_401(get(path, "zed"), "zed")


def test_require_user_sees_unmapped_fallback(get):
    r = get("/a/unmapped-cn-user/", "zed")
    assert r.status == 200 and r.remote_user == "zed", r
    _assert_403_not_401(get("/a/unmapped-cn-user/", "bob"), "bob")


@pytest.mark.parametrize("path,cert,user", [
    ("/a/unmapped-dn/", "zed", "CN=zed,O=Example"),
    ("/a/unmapped-dn/", "mvrdn", None),      # checked below: RFC 4514 text
    ("/a/unmapped-uri/", "worker", "spiffe://example.org/ns/dev/sa/worker"),
    ("/a/unmapped-upn/", "worker", "dan@corp.example.com"),
    ("/a/unmapped-email/", "multi", "other@example.net"),  # first value
])
def test_unmapped_other_facts(server, get, path, cert, user):
    r = get(path, cert)
    assert r.status == 200, r
    if user is None:
        # multi-valued RDN: one of the two RFC 4514 spellings
        assert r.remote_user in ("CN=mv+OU=Eng,O=Example",
                                 "OU=Eng+CN=mv,O=Example"), r
    else:
        assert r.remote_user == user, r
    assert r.user is None, r.headers


@pytest.mark.parametrize("path,cert", [
    ("/a/unmapped-uri/", "zed"),
    ("/a/unmapped-upn/", "zed"),
    ("/a/unmapped-dn/", "nulcn"),       # a DN with a NUL byte is no fact
])
def test_unmapped_fact_missing(get, path, cert):
    _assert_403_not_401(get(path, cert))


@pytest.mark.parametrize("cert,status,user", [
    ("svc", 200, "api-prod"),    # CN "api": the mapped user, not the CN
    ("laptop", 403, None),       # deny-listed: refused, whatever SSLUserName
    ("zed", 403, None),          # unmapped (CertAuthzUnmapped Deny)
])
def test_authtype_certificate_wins_over_sslusername(get, cert, status, user):
    """SSLUserName SSL_CLIENT_S_DN_CN left over from the old recipe in the
    same scope as AuthType Certificate: SPEC section 3 says the mapped
    identity is the user and a deny-listed or unmapped certificate gets
    403."""
    r = get("/a/sslusername/", cert)
    assert r.status == status, r
    if status == 200:
        assert r.remote_user == user, r
