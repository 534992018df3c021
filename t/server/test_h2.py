"""HTTP/2 (curl): streams use the identity of their connection's
certificate (SPEC section 1), grants and refusals on one connection, and
concurrent streams and connections with different certificates."""


import pytest

import certauthz_harness as H


@pytest.fixture(scope="module", autouse=True)
def need_curl_http2():
    assert H.CURL, "curl is needed for the HTTP/2 tests"
    assert H.http2_supported_by_curl(), "curl -V does not list HTTP2"


def test_h2_cert_group_grant(server, certs):
    [r] = server.h2(["/p/group/"], certs["alice"])
    assert r.protocol == "HTTP/2", r
    assert r.status == 200, r
    assert r.user == "alice"


def test_h2_cert_group_refusal(server, certs):
    [r] = server.h2(["/p/group/"], certs["bob"])
    assert r.protocol == "HTTP/2", r
    assert r.status == 403, r


def test_h2_no_certificate(server):
    [r] = server.h2(["/p/mapped/"], None)
    assert (r.protocol, r.status) == ("HTTP/2", 403), r


def test_h2_several_requests_one_connection(server, certs):
    paths = ["/p/group/", "/p/user/", "/c/none/", "/e/on/",
             "/p/group-robots/", "/a/valid/", "/p/group/", "/i/map/"]
    rs = server.h2(paths, certs["alice"])
    assert [r.protocol for r in rs] == ["HTTP/2"] * len(paths)
    assert [r.status for r in rs] == [200, 200, 403, 200, 403, 200, 200, 200]
    # one TLS connection: curl connected once, from one local port
    assert [r.num_connects for r in rs] == [1] + [0] * (len(paths) - 1)
    assert len({r.remote_port for r in rs}) == 1
    assert rs[3].user == "alice"
    assert rs[5].remote_user == "alice"
    assert rs[7].remote_user == "alice-alt"
    # the access log: HTTP/2.0, %u of the AuthType Certificate request
    lines = server.access_lines(rs[0].test_id, count=len(paths))
    assert len(lines) == len(paths), lines
    assert all(" HTTP/2.0 " in l for l in lines), lines
    valid = [l for l in lines if "/a/valid/" in l]
    assert valid and valid[0].split(" ")[3] == "alice", valid


def test_h2_parallel_streams(server, certs):
    paths = ["/p/group/", "/p/group-robots/"] * 8
    rs = server.h2(paths, certs["alice"], parallel=True)
    assert all(r.protocol == "HTTP/2" for r in rs), rs
    assert [r.status for r in rs] == [200, 403] * 8
    assert all(r.user == "alice" for r in rs[0::2])


def test_h2_concurrent_connections_keep_their_identity(server, certs):
    """Connections with different certificates at the same time: each
    stream sees its own connection's identity, never another's."""
    who = {"alice": "alice", "bob": "bob", "builder": "ci-robot",
           "payments": "svc-payments"}
    results = H.run_concurrently(
        who, lambda name: server.h2(["/e/on/", "/p/mapped/"] * 6,
                                    certs[name], parallel=True))
    for name, user in who.items():
        rs = results[name]
        assert [r.status for r in rs] == [200] * 12, (name, rs)
        assert [r.user for r in rs] == [user] * 12, (name, rs)
