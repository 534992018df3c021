"""Configuration inheritance across nested <Location>s: every field merges
child-over-parent (design notes, httpd glue).

    <Location /i>          map=main.map, CertAuthzSetEnv Off,
                           CertAuthzUnmapped CN, AuthType Certificate,
                           Require valid-user
    <Location /i/env>      CertAuthzSetEnv On        (map, Unmapped inherited)
    <Location /i/map>      CertAuthzMapFile alt.map  (SetEnv, Unmapped inherited)
    <Location /i/unmapped> CertAuthzUnmapped Deny    (map, SetEnv inherited)
"""

import pytest

NOENV = (None, None, None, None)


def env(r):
    return (r.user, r.groups, r.rule, r.cert_sha256)


def test_parent(get):
    r = get("/i/", "alice")
    assert (r.status, r.remote_user) == (200, "alice"), r
    assert env(r) == NOENV, r.headers
    r = get("/i/", "zed")                     # Unmapped CN
    assert (r.status, r.remote_user) == (200, "zed"), r
    assert get("/i/", "laptop").status == 403
    assert get("/i/", None).status == 403


def test_child_overrides_setenv(server, certs, get):
    r = get("/i/env/", "alice")
    assert (r.status, r.remote_user) == (200, "alice"), r
    assert r.user == "alice" and r.groups == "staff,admins", r.headers
    assert r.rule.startswith(str(server.main_map) + ":"), r.headers
    r = get("/i/env/", "zed")                 # Unmapped CN inherited
    assert (r.status, r.remote_user) == (200, "zed"), r
    assert r.user is None and r.cert_sha256 == certs["zed"].sha256, r.headers


def test_child_overrides_map(get):
    r = get("/i/map/", "alice")
    assert (r.status, r.remote_user) == (200, "alice-alt"), r
    assert env(r) == NOENV, r.headers         # SetEnv Off inherited
    # bob is not in alt.map: Unmapped CN inherited gives "bob"
    r = get("/i/map/", "bob")
    assert (r.status, r.remote_user) == (200, "bob"), r
    # main.map's deny rule is not in alt.map: laptop falls back to its CN
    r = get("/i/map/", "laptop")
    assert (r.status, r.remote_user) == (200, "laptop"), r


def test_child_overrides_unmapped(get):
    r = get("/i/unmapped/", "alice")
    assert (r.status, r.remote_user) == (200, "alice"), r
    assert env(r) == NOENV, r.headers
    r = get("/i/unmapped/", "zed")
    assert r.status == 403, r


@pytest.mark.parametrize("path", ["/i/", "/i/env/", "/i/map/",
                                  "/i/unmapped/"])
def test_children_inherit_authtype_and_require(get, path):
    assert get(path, None).status == 403
    assert get(path, "nulcn").status == 403
