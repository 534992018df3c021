"""Every Require cert-* provider, granting and refusing (SPEC section 4).

Locations are defined in certauthz_harness.LOCATIONS; certificates in
certauthz_harness.make_pki.
"""

import pytest

import certauthz_harness as H

CASES = [
    # cert-user alice dave (map in scope)
    ("/p/user/", "alice", 200),
    ("/p/user/", "dave", 200),          # mapped by a dn: rule
    ("/p/user/", "bob", 403),
    ("/p/user/", "zed", 403),           # unmapped
    # cert-group admins
    ("/p/group/", "alice", 200),
    ("/p/group/", "bob", 403),          # staff only
    ("/p/group/", "partner_alice", 403),
    # cert-group robots: the dns glob rule
    ("/p/group-robots/", "builder", 200),
    ("/p/group-robots/", "deepbuilder", 403),
    # cert-mapped
    ("/p/mapped/", "bob", 200),
    ("/p/mapped/", "kiosk", 200),       # sha256: rule of the map
    ("/p/mapped/", "pinned", 200),      # spki: rule of the map
    ("/p/mapped/", "iphost", 200),      # ip: rule, canonicalised
    ("/p/mapped/", "svc", 200),         # uri: rule
    ("/p/mapped/", "carol", 200),       # upn: rule
    ("/p/mapped/", "zed", 403),
    ("/p/mapped/", "deepbuilder", 403),
    # cert-cn bob "Dave Smith" (no map)
    ("/p/cn/", "bob", 200),
    ("/p/cn/", "dave", 200),
    ("/p/cn/", "alice", 403),
    ("/p/cn/", "partner_eve", 403),
    # cert-cn: exact and case-sensitive
    ("/p/cn-case/", "bob", 403),
    # a CN inside a multi-valued RDN (OU=Eng+CN=mv) is the cn fact
    ("/p/cn-mv/", "mvrdn", 200),
    ("/p/cn-mv/", "bob", 403),
    # cert-cn svc-* (glob)
    ("/p/cn-glob/", "payments", 200),
    ("/p/cn-glob/", "bob", 403),
    # cert-email alice@EXAMPLE.com: case-insensitive
    ("/p/email/", "alice", 200),
    ("/p/email/", "zed", 403),
    ("/p/email/", "bob", 403),          # no email SAN at all
    # cert-email *@example.com
    ("/p/email-glob/", "alice", 200),
    ("/p/email-glob/", "zed", 403),     # zed@example.org
    ("/p/email-glob/", "multi", 200),   # the second of two email SANs
    # cert-dns *.build.example.com: '*' never crosses a dot
    ("/p/dns/", "builder", 200),
    ("/p/dns/", "deepbuilder", 403),
    ("/p/dns/", "alice", 403),
    ("/p/dns-case/", "builder", 200),   # case-insensitive
    ("/p/dns-case/", "deepbuilder", 403),
    # cert-uri: exact, case-sensitive
    ("/p/uri/", "svc", 200),
    ("/p/uri/", "alice", 403),
    ("/p/uri-case/", "svc", 403),
    # cert-upn carol@CORP.example.com: case-insensitive
    ("/p/upn/", "carol", 200),
    ("/p/upn/", "alice", 403),
    # cert-issuer
    ("/p/issuer-partner/", "partner_alice", 200),
    ("/p/issuer-partner/", "alice", 403),
    ("/p/issuer-root/", "alice", 200),  # other spelling of the root CA DN
    ("/p/issuer-root/", "partner_alice", 403),
    # cert-sha256: bob's real fingerprint (lower case with colons / plain)
    ("/p/sha256/", "bob", 200),
    ("/p/sha256/", "alice", 403),
    ("/p/sha256/", "expired_bob", None),  # same subject, other certificate
    ("/p/sha256-plain/", "bob", 200),
    ("/p/sha256-plain/", "twocn", 403),
    # a deny rule of the map in scope refuses every cert-* provider
    ("/p/cn-laptop/", "laptop", 200),       # no map in scope: no deny
    ("/p/cn-laptop-map/", "laptop", 403),   # map in scope: deny serial
]


def _id(case):
    return "%s-%s" % (case[0].strip("/").replace("/", "_"), case[1])


@pytest.mark.parametrize("path,cert,expected", CASES,
                         ids=[_id(c) for c in CASES])
def test_provider(get, path, cert, expected):
    if expected is None:
        # the expired twin of bob never authenticates (handshake or 403)
        try:
            r = get(path, cert)
        except H.HandshakeFailed:
            return
        assert r.status == 403, r
        return
    r = get(path, cert)
    assert r.status == expected, (path, cert, r)
    if expected == 200:
        assert r.body == ("OK %s\n" % path.rstrip("/")).encode()


PROVIDER_PATHS = sorted({c[0] for c in CASES})


@pytest.mark.parametrize("path", PROVIDER_PATHS)
def test_provider_without_certificate_is_403(get, path):
    r = get(path, None)
    assert r.status == 403, r


def test_refusal_body_does_not_say_why(get):
    r = get("/p/user/", "bob")
    assert r.status == 403
    body = r.body.decode(errors="replace").lower()
    for word in ("certauthz", "cert-user", "map", "bob", "alice"):
        assert word not in body, body


def test_refusal_is_explained_in_the_debug_log(server, get):
    r = get("/p/user/", "bob")
    assert r.status == 403
    lines = [l for l in server.log_lines(r.test_id) if "CERTAUTHZ0011" in l]
    assert lines, server.log_lines(r.test_id)
    line = lines[0]
    assert "cert-user" in line and "denied" in line, line
    assert "user-mismatch" in line, line
