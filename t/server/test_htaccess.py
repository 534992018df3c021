"""CertAuthzMapFile in .htaccess (AllowOverride AuthConfig), loaded by the
children at request time (they run as User nobody)."""


def test_htaccess_map_grants(server, get):
    r = get("/ht/", "alice")
    assert r.status == 200, r
    assert r.user == "alice-ht", r.headers
    assert r.groups == "htgroup", r.headers
    assert r.rule == "%s:2" % (server.map_dir / "ht.map"), r.headers


def test_htaccess_map_refuses(get):
    assert get("/ht/", "bob").status == 403          # not in ht.map
    assert get("/ht/", None).status == 403
    assert get("/ht/", "partner_alice").status == 403


def test_htaccess_map_repeated(get):
    """The map loaded from .htaccess keeps working on later requests."""
    for _ in range(5):
        r = get("/ht/", "alice")
        assert (r.status, r.user) == (200, "alice-ht"), r


def test_htaccess_bad_map_is_500_with_file_line(server, get):
    r = get("/htbad/", "alice")
    server.allow_errors(r.test_id)
    assert r.status == 500, r
    log = "\n".join(server.log_lines(r.test_id))
    expected = "%s:2: unknown selector type 'foo'" % (
        server.map_dir / "bad-ht.map")
    assert expected in log, log
