"""The map as seen through the server: first-match identity, exact, glob and
regex selectors, deny rules beating earlier allow rules, issuer sections
(SPEC section 2), and the environment variables that show the identity
(SPEC section 3, CertAuthzSetEnv)."""

import pytest

import certauthz_harness as H


def rule(server, needle):
    return "%s:%d" % (server.main_map, H.line_of(server.main_map_lines,
                                                  needle))


# cert -> (user, groups, a text of the rule that maps it)
MAPPED = {
    "alice": ("alice", "staff,admins", "email:alice@example.com"),
    "bob": ("bob", "staff", "cn:bob"),
    "svc": ("api-prod", "services", "uri:spiffe://"),
    "carol": ("carol", "staff", "upn:carol@"),
    "dave": ("dave", "ops", 'dn:"CN=Dave Smith'),
    "twocn": ("twocn", "staff", 'dn:"CN=twocn'),
    "iphost": ("ip-host", "hosts", "ip:0:0:0:0:0:0:0:1"),
    "kiosk": ("kiosk-7", None, "sha256:"),
    "pinned": ("pinned-user", "pins", "spki:"),
    "builder": ("ci-robot", "robots", "dns:*.build.example.com"),
    "payments": ("svc-payments", "services", "cn~^svc-"),
    "eve": ("eve", "staff", "cn:eve"),
    "partner_alice": ("partner-alice", "partners", "cn~^(.+)$"),
}

# verified certificates that get no identity
UNMAPPED = ["zed", "deepbuilder", "laptop", "partner_eve", "nulcn", "nulsan",
            "multi", "worker", "mvrdn"]


@pytest.mark.parametrize("cert", sorted(MAPPED))
def test_identity_in_environment(server, certs, get, cert):
    user, groups, needle = MAPPED[cert]
    r = get("/e/on/", cert)
    assert r.status == 200, r
    assert r.user == user, r
    assert r.groups == groups, r.headers
    assert r.rule == rule(server, needle), r.headers
    assert r.cert_sha256 == certs[cert].sha256, r.headers
    # no AuthType here: no authenticated user
    assert r.remote_user is None, r.headers
    # the access log sees the variable, %u stays "-"
    lines = server.access_lines(r.test_id)
    assert len(lines) == 1 and lines[0].endswith('"%s"' % user), lines
    assert lines[0].split(" ")[3] == "-", lines


DENY_LISTED = ("laptop", "partner_eve")


@pytest.mark.parametrize("cert", [c for c in UNMAPPED
                                  if c not in DENY_LISTED])
def test_no_identity_in_environment(certs, get, cert):
    r = get("/e/on/", cert)
    assert r.status == 200, r
    assert r.user is None and r.groups is None and r.rule is None, r.headers
    # verified certificate: its fingerprint is still exported
    assert r.cert_sha256 == certs[cert].sha256, r.headers


@pytest.mark.parametrize("cert", DENY_LISTED)
def test_deny_listed_refused_where_its_map_applies(certs, get, cert):
    """A deny-listed certificate is refused with 403 wherever the map that
    lists it is in scope, even under Require all granted, and gets no
    identity; where no map applies it is just a certificate."""
    r = get("/e/on/", cert)
    assert r.status == 403 and r.user is None, r
    r = get("/e/nomap/", cert)
    assert r.status == 200 and r.user is None, r


def test_map_named_by_absolute_path_is_the_same_map(server, get):
    r = get("/e/abs/", "alice")
    assert r.user == "alice"
    assert r.rule == rule(server, "email:alice@example.com")


def test_map_at_vhost_level(get):
    """CertAuthzMapFile in a <VirtualHost> applies to its <Location>s that
    name no map; a <Location> naming one overrides it; other vhosts do not
    see it."""
    assert get("/e/nomap/", "alice", generous=True).user == "alice-alt"
    assert get("/e/on/", "alice", generous=True).user == "alice"
    assert get("/e/nomap/", "alice").user is None
    # cert-user with the vhost's map: alice is "alice-alt" there
    assert get("/nomap/user/", "alice", generous=True).status == 403
    assert get("/nomap/mapped/", "alice", generous=True).status == 200


def test_each_map_loaded_once(server):
    """One load per file, shared by every scope naming it (relative or
    absolute path): one CERTAUTHZ0002 line per map at startup."""
    text = server.error_log_text()
    gens = text.split("resuming normal operations")
    # the startup generation only (a later test may restart gracefully)
    startup = gens[0] if len(gens) > 1 else text
    loaded = [l for l in startup.splitlines() if "CERTAUTHZ0002" in l]
    main = [l for l in loaded if str(server.main_map) in l]
    assert len(main) == 1, loaded
    alt = [l for l in loaded if str(server.map_dir / "alt.map") in l]
    assert len(alt) == 1, loaded


def test_partner_alice_is_not_alice(get):
    """Same CN, other CA: NOT the same person."""
    r = get("/e/on/", "partner_alice")
    assert r.user == "partner-alice", r
    for path in ("/p/user/", "/a/user/", "/p/group/", "/a/group/"):
        assert get(path, "partner_alice").status == 403, path
        assert get(path, "alice").status == 200, path


def test_issuer_section_rule_is_only_for_that_issuer(get):
    # [issuer Partner CA] cn~^(.+)$ must not map root-CA certificates
    r = get("/e/on/", "zed")
    assert r.user is None, r
    r = get("/p/mapped/", "zed")
    assert r.status == 403, r


def test_deny_beats_earlier_allow_rule(server, get):
    """cn:laptop (allow) comes before `deny serial:` in the file."""
    lines = server.main_map_lines
    assert (H.line_of(lines, "cn:laptop")
            < H.line_of(lines, "deny serial:%s" % H.LAPTOP_SERIAL))
    for path in ("/p/mapped/", "/p/group/", "/a/valid/", "/p/cn-laptop-map/",
                 "/c/all/"):
        assert get(path, "laptop").status == 403, path
    assert get("/e/on/", "laptop").user is None


def test_deny_inside_issuer_section(get):
    """`deny cn:eve` in the Partner CA section refuses the partner's eve,
    although the global `cn:eve` rule comes first; root-CA eve is fine."""
    assert get("/p/mapped/", "eve").status == 200
    assert get("/p/mapped/", "partner_eve").status == 403
    assert get("/a/valid/", "partner_eve").status == 403
    # cert-issuer with the map in scope: the section's deny rule refuses
    assert get("/c/issuer-and-group/", "partner_eve").status == 403
    # without a map in scope there is no deny rule: cert-issuer alone grants
    assert get("/p/issuer-partner/", "partner_eve").status == 200


def test_glob_does_not_cross_dots(get):
    assert get("/e/on/", "builder").user == "ci-robot"
    assert get("/e/on/", "deepbuilder").user is None


def test_regex_capture_in_user(get):
    r = get("/e/on/", "payments")
    assert (r.user, r.groups) == ("svc-payments", "services"), r.headers


# ---- CertAuthzSetEnv

def test_setenv_off_exports_nothing(get):
    r = get("/e/off/", "alice")
    assert r.status == 200, r
    assert (r.user, r.groups, r.rule, r.cert_sha256) == (None,) * 4, r.headers


def test_setenv_without_map_exports_only_fingerprint(certs, get):
    r = get("/e/nomap/", "alice")
    assert r.status == 200
    assert r.cert_sha256 == certs["alice"].sha256
    assert (r.user, r.groups, r.rule) == (None,) * 3, r.headers


def test_setenv_without_certificate(get):
    r = get("/e/on/", None)
    assert r.status == 200
    assert (r.user, r.groups, r.rule, r.cert_sha256) == (None,) * 4, r.headers


def test_setenv_with_authtype(server, certs, get):
    r = get("/e/authtype/", "alice")
    assert r.status == 200
    assert (r.user, r.remote_user) == ("alice", "alice"), r.headers
    assert r.rule == rule(server, "email:alice@example.com")


# ---- one connection, several scopes and maps (per-connection cache)

def test_one_connection_several_maps(server, certs):
    paths = ["/e/on/ok.txt", "/i/map/ok.txt", "/ht/ok.txt", "/e/on/ok.txt",
             "/i/map/ok.txt", "/e/off/ok.txt", "/ht/ok.txt", "/p/group/ok.txt",
             "/p/group-robots/ok.txt", "/e/on/ok.txt"]
    rs = server.client.get_many(server.port, paths, certs["alice"])
    assert len({r.remote_port for r in rs}) == 1
    got = [(r.status, r.user or r.remote_user) for r in rs]
    assert got == [
        (200, "alice"), (200, "alice-alt"), (200, "alice-ht"),
        (200, "alice"), (200, "alice-alt"), (200, None), (200, "alice-ht"),
        (200, "alice"), (403, None), (200, "alice"),
    ], got
