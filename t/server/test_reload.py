"""Changed map files are reloaded at a graceful restart.  (Live reload
within CertAuthzReloadInterval, SPEC section 3, is a later issue; its tests
come with it.)"""

import time

import certauthz_harness as H

def wait_for_user(get, path, user, timeout):
    """Poll (bounded) until `path` shows X-Certauthz-User `user`; returns
    the users seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = get(path, "alice")
        assert r.status == 200, r           # never a failing request
        seen.append(r.user)
        if r.user == user:
            return seen
        time.sleep(0.2)
    return seen

def test_graceful_restart_reloads_map(server, get):
    r = get("/r/", "alice")
    assert (r.user, r.groups) == ("alice-v1", "v1"), r
    server.write_map("reload.map", H.RELOAD_MAP_V2)
    server.graceful_restart()
    seen = wait_for_user(get, "/r/", "alice-v2", timeout=20)
    assert seen[-1] == "alice-v2", seen
    r = get("/r/", "alice")
    assert (r.user, r.groups) == ("alice-v2", "v2"), r
    assert r.rule == "%s:2" % (server.map_dir / "reload.map"), r.headers
    # the rest of the configuration still works after the restart
    assert get("/p/user/", "alice").status == 200
    assert get("/p/user/", "bob").status == 403
    assert server.running()
