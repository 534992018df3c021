"""cert-* providers inside <RequireAll>, <RequireAny>, <RequireNone> and
with mod_authz_core's other providers (SPEC section 4: "All compose")."""

import pytest

CASES = [
    # <RequireAll> cert-group staff + ip 127.0.0.1
    ("/c/all/", "bob", 200),
    ("/c/all/", "alice", 200),
    ("/c/all/", "zed", 403),
    ("/c/all/", None, 403),
    ("/c/all/", "laptop", 403),          # mapped to staff, but deny-listed
    # <RequireAll> cert-group staff + all denied
    ("/c/all-denied/", "alice", 403),
    ("/c/all-denied/", "bob", 403),
    # <RequireAny> cert-user bob | cert-uri spiffe://...
    ("/c/any/", "bob", 200),
    ("/c/any/", "svc", 200),
    ("/c/any/", "alice", 403),
    ("/c/any/", None, 403),
    # <RequireAny> cert-user nosuchuser | ip 127.0.0.1: a cert-* refusal
    # does not stop another branch from granting
    ("/c/any-ip/", None, 200),
    ("/c/any-ip/", "zed", 200),
    ("/c/any-ip/", "alice", 200),
    # <RequireAll> cert-mapped + <RequireNone> cert-group admins
    ("/c/none/", "bob", 200),
    ("/c/none/", "dave", 200),
    ("/c/none/", "alice", 403),
    ("/c/none/", "zed", 403),
    ("/c/none/", None, 403),
    # <RequireAll> ip 127.0.0.1 + Require not cert-cn bob
    ("/c/not/", "bob", 403),
    ("/c/not/", "alice", 200),
    ("/c/not/", None, 200),
    # AuthMerging And: parent cert-group staff AND child cert-user bob
    ("/c/merge/", "alice", 200),         # parent only: staff
    ("/c/merge/child/", "bob", 200),
    ("/c/merge/child/", "alice", 403),   # staff, but not bob
    ("/c/merge/child/", "svc", 403),     # neither
    # <RequireAll> cert-issuer Partner CA + cert-group partners
    ("/c/issuer-and-group/", "partner_alice", 200),
    ("/c/issuer-and-group/", "alice", 403),
    ("/c/issuer-and-group/", "partner_eve", 403),   # deny rule of section
]


@pytest.mark.parametrize("path,cert,expected", CASES,
                         ids=["%s-%s" % (c[0].strip("/").replace("/", "_"),
                                         c[1]) for c in CASES])
def test_composition(get, path, cert, expected):
    r = get(path, cert)
    assert r.status == expected, (path, cert, r)
