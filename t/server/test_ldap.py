"""Directory-backed identities (SPEC section 7; issue 12): CertAuthzLDAP
through httpd's own mod_ldap against a real slapd (t/server/slapd_harness.py)
started from LDIF on loopback, over plain LDAP, LDAPS and StartTLS.

Covered: identities by userPrincipalName, mail, the whole certificate
(userCertificate, {cert_der}) and altSecurityIdentities; groups as first
RDN values and as DNs; the order deny rules, map rules, directory; hostile
certificates whose facts would widen an unescaped filter; several entries,
an entry without the user attribute, a referral to another directory;
faults (the server killed and restarted on its port, a slow server behind
a delaying proxy) refusing with 503 / 403 -- never granting, not even
under `Require not` -- logged once per burst and recovering; server-status
counters and audit lines; mod_authnz_ldap's `Require ldap-group` under
AuthType Certificate; configuration errors.  Only 127.0.0.1; every wait
bounded.
"""

import re
import time

import pytest

import certauthz_harness as H
import slapd_harness as S

pytestmark = pytest.mark.skipif(not S.available(),
                                reason="slapd not installed")

PEOPLE = "ou=people," + S.SUFFIX
GROUPS = "ou=groups," + S.SUFFIX
CLIENT_CA = "/CN=Directory Clients CA"
# AD's issuer+serial form of frank's certificate: the issuer in X.500
# order, the serial's octets reversed (written here by hand)
FRANK_ALTSEC = "X509:<I>CN=Directory Clients CA<SR>0c0b0a"

# name: mkcert arguments (each issued by the client CA)
CLIENTS = {
    "dave": ["--subject", "/CN=Dave Smith", "--san", "upn:dave@corp.example",
             "--san", "email:dave@example.com"],
    "erin": ["--subject", "/CN=erin", "--san", "email:erin@example.com"],
    "frank": ["--subject", "/CN=frank", "--serial", "0A0B0C"],
    "shared": ["--subject", "/CN=shared", "--san",
               "email:shared@example.com"],
    "noattr": ["--subject", "/CN=noattr", "--san", "upn:noattr@corp.example"],
    "stranger": ["--subject", "/CN=stranger", "--san",
                 "upn:stranger@corp.example"],
    # hostile: unescaped, (cn={cn}) would become (cn=Dave*) -> dave
    "wild": ["--subject", "/CN=Dave*"],
    "inject": ["--subject", "/CN=*)(uid=*"],
    # the map gives this one its identity (same UPN as dave)
    "mapped": ["--subject", "/CN=mapped", "--san", "upn:dave@corp.example"],
    # the map deny-lists this one (same UPN as dave)
    "denied": ["--subject", "/CN=denied", "--san", "upn:dave@corp.example"],
    "mallory": ["--subject", "/CN=mallory", "--san",
                "email:mallory@partner.example"],
    # fault tests: each name is looked up once (no cache can answer)
    "gina": ["--subject", "/CN=gina", "--san", "upn:gina@corp.example"],
    "hank": ["--subject", "/CN=hank", "--san", "upn:hank@corp.example"],
}


def base_url(port, attr="uid", scheme="ldap", base=PEOPLE):
    return "%s://127.0.0.1:%d/%s?%s?sub" % (scheme, port, base, attr)


UPN = '"(userPrincipalName={upn})"'


def locations(ldap, ldaps_port, slow_port, backend=1):
    """(path, body) of every test Location; ldap: the directory's port."""
    u = base_url(ldap)
    return [
        # a directory identity forwarded and shadowed like a map's
        ("/fwd", 'CertAuthzLDAP "%s" %s\nCertAuthzForward User Groups\n'
         "CertAuthzShadowMapFile conf/certauthz/shadow.map\n"
         'Require cert-mapped\nProxyPass "http://127.0.0.1:%d/fwd/"'
         % (u, UPN, backend)),
        ("/upn", 'CertAuthzLDAP "%s" %s\nRequire cert-group admins' % (u, UPN)),
        ("/upn-authn", 'CertAuthzLDAP "%s" %s\nAuthType Certificate\n'
         "Require valid-user" % (u, UPN)),
        ("/email", 'CertAuthzLDAP "%s" "(mail={email})"\nRequire cert-mapped'
         % u),
        ("/der", 'CertAuthzLDAP "%s" "(userCertificate={cert_der})"\n'
         "Require cert-mapped" % u),
        ("/altsec", 'CertAuthzLDAP "%s" '
         '"(altSecurityIdentities={altsec_issuer_serial})"\n'
         "Require cert-mapped" % u),
        ("/dn-groups", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPGroups memberOf dn\n'
         'Require cert-group "cn=admins,%s"' % (u, UPN, GROUPS)),
        ("/cn", 'CertAuthzLDAP "%s" "(cn={cn})"\nRequire cert-mapped' % u),
        ("/noattr", 'CertAuthzLDAP "%s" %s\nRequire cert-mapped'
         % (base_url(ldap, "employeeNumber"), UPN)),
        ("/mapfirst", "CertAuthzMapFile conf/certauthz/ldap.map\n"
         'CertAuthzLDAP "%s" %s\nRequire cert-mapped' % (u, UPN)),
        ("/mapfirst-off", "CertAuthzMapFile conf/certauthz/ldap.map\n"
         "CertAuthzLDAP Off\nRequire cert-mapped"),
        # the fault locations keep nothing: every request asks
        ("/nc-authn", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPCacheTTL 0\n'
         "AuthType Certificate\nRequire valid-user" % (u, UPN)),
        ("/nc-prov", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPCacheTTL 0\n'
         "Require cert-mapped" % (u, UPN)),
        ("/nc-not", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPCacheTTL 0\n'
         "<RequireAll>\nRequire all granted\nRequire not cert-group banned\n"
         "</RequireAll>" % (u, UPN)),
        ("/slow", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPCacheTTL 0\n'
         "AuthType Certificate\nRequire valid-user"
         % (base_url(slow_port), UPN)),
        ("/referral", 'CertAuthzLDAP "%s" "(mail={email})"\n'
         "CertAuthzLDAPCacheTTL 0\nRequire cert-mapped" % u),
        ("/referral-base", 'CertAuthzLDAP "%s" "(mail={email})"\n'
         "CertAuthzLDAPCacheTTL 0\nRequire cert-mapped"
         % base_url(ldap, base="ou=partners," + PEOPLE)),
        ("/nobase", 'CertAuthzLDAP "%s" %s\nCertAuthzLDAPCacheTTL 0\n'
         "Require cert-mapped" % (base_url(ldap, base="ou=nowhere,"
                                           + S.SUFFIX), UPN)),
        ("/ldaps", 'CertAuthzLDAP "%s" %s\nRequire cert-group admins'
         % (base_url(ldaps_port, scheme="ldaps"), UPN)),
        ("/starttls", 'CertAuthzLDAP "%s" %s STARTTLS\n'
         "Require cert-group admins" % (u, UPN)),
        ("/authnz", 'CertAuthzLDAP "%s" %s\nAuthType Certificate\n'
         'AuthLDAPURL "%s"\nAuthLDAPBindDN "%s"\nAuthLDAPBindPassword %s\n'
         # mod_authnz_ldap takes the rest of the line as the DN, quotes too
         'Require ldap-group cn=admins,%s'
         % (u, UPN, u, S.BIND_DN, S.BIND_PW, GROUPS)),
    ]


@pytest.fixture(scope="module")
def env(workdir, certs):
    base = workdir / "ldap"
    d = base / "pki"
    d.mkdir(parents=True)
    lca = H.mkcert(d / "ldap_ca", "--ca", "--subject", "/CN=Directory CA")
    lsrv = H.mkcert(d / "ldap_srv", "--issuer", lca.prefix, "--subject",
                    "/CN=127.0.0.1", "--san", "ip:127.0.0.1")
    cca = H.mkcert(d / "client_ca", "--ca", "--subject", CLIENT_CA)
    clients = {n: H.mkcert(d / n, "--issuer", cca.prefix, *a)
               for n, a in CLIENTS.items()}
    H.make_tree_public(d)

    # a second directory, which the first refers to for ou=partners
    other = S.Slapd("\n".join([
        S.base_ldif(),
        S.person("mallory", ["admins"], mail="mallory@partner.example"),
    ]), workdir=base / "slapd-other")
    other.start()
    main = S.Slapd("\n".join([
        S.base_ldif(),
        S.person("dave", ["admins", "staff"], cn="Dave Smith",
                 mail="dave@example.com", employeeNumber="1001",
                 userPrincipalName="dave@corp.example"),
        S.person("erin", ["staff"], mail="erin@example.com",
                 extra={"userCertificate": clients["erin"].der}),
        S.person("frank", ["staff"], altSecurityIdentities=FRANK_ALTSEC),
        S.person("shared1", mail="shared@example.com"),
        S.person("shared2", mail="shared@example.com"),
        S.person("noattr", ["admins"], userPrincipalName="noattr@corp.example"),
        S.person("gina", ["staff"], userPrincipalName="gina@corp.example"),
        S.person("hank", ["staff"], userPrincipalName="hank@corp.example"),
        S.group("admins", ["dave", "noattr"]),
        S.group("staff", ["dave", "erin", "frank", "gina", "hank"]),
        S.entry("ou=partners," + PEOPLE,
                objectClass=["referral", "extensibleObject"], ou="partners",
                ref=other.url + "/" + PEOPLE),
    ]), tls_cert=lsrv.crt, tls_key=lsrv.key, tls_ca=lca.crt,
        workdir=base / "slapd")
    main.start()
    proxy = S.DelayProxy(main.port)
    backend = H.RawBackend()

    ldap_map = "\n".join([
        "# directory tests: the map comes before the directory",
        "deny sha256:%s" % clients["denied"].sha256_colons,
        "sha256:%s  mapuser  mapgroup" % clients["mapped"].sha256_colons,
        ""])

    def config(srv):
        locs = "\n".join('<Location "/%s">\n%s\n</Location>' % (
            p.strip("/"), body) for p, body in locations(
                main.port, main.ldaps_port, proxy.port, backend.port))
        return "\n".join([
            # mod_ldap: its search cache off (ours is what is tested),
            # short timeouts for the slow server, the directory CA
            "LDAPCacheEntries -1",
            "LDAPOpCacheEntries -1",
            "LDAPTimeout 2",
            "LDAPConnectionTimeout 2",
            'LDAPTrustedGlobalCert CA_BASE64 "%s"' % lca.crt,
            "CertAuthzAudit All",
            '<Location "/server-status">\nSetHandler server-status\n'
            "Require ip 127.0.0.1\n</Location>",
            H.ssl_vhost(srv.ports[0], "\n".join([
                'SSLCACertificateFile "%s"' % cca.crt,
                "SSLVerifyClient optional",
                'CertAuthzLDAPBindDN "%s"' % S.BIND_DN,
                "CertAuthzLDAPBindPassword %s" % S.BIND_PW,
                "CertAuthzLDAPGroups memberOf",
                locs])),
        ])

    docs = [p for p, _ in locations(1, 1, 1)]
    srv = H.ExtraHttpd(base / "server", certs, config, docs=docs,
                       files={"conf/certauthz/ldap.map": ldap_map,
                              "conf/certauthz/shadow.map":
                              "# candidate: dave by UPN, other groups\n"
                              "upn:dave@corp.example  dave  admins\n"},
                       modules=H.EXTRA_MODULES + ["ldap", "authnz_ldap",
                                                  "status", "proxy",
                                                  "proxy_http"])
    srv.setup()
    try:
        srv.start()
    except Exception:
        backend.close()
        proxy.close()
        main.cleanup()
        other.cleanup()
        raise
    yield srv, clients, main, proxy
    stopped = srv.stop()
    backend.close()
    proxy.close()
    main.cleanup()
    other.cleanup()
    crashes = [l for l in srv.error_log_text().splitlines()
               if "exit signal" in l or "AH00060" in l]
    assert stopped, "httpd did not stop"
    assert not crashes, "\n".join(crashes)


def get(env, path, name, **kw):
    srv, clients = env[0], env[1]
    return srv.get(path, clients[name] if name else None, **kw)


def audit(srv, r):
    """The request's CERTAUTHZ0100 lines."""
    return [l for l in srv.log_lines(r.test_id) if "CERTAUTHZ0100" in l]


def wait_log(srv, pattern, since=0, timeout=30):
    """Error-log text after offset `since` once it matches pattern."""
    deadline = time.monotonic() + timeout
    while True:
        text = srv.error_log_text()[since:]
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def status(srv):
    r = srv.get("/server-status?auto")
    assert r.status == 200, r
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^CertAuthzLDAP-(\S+): (\d+)$", r.body.decode(), re.M)}


# ---- identities -----------------------------------------------------------

def test_upn_gives_user_and_groups(env):
    srv = env[0]
    r = get(env, "/upn/", "dave")
    assert r.status == 200, r
    assert r.user == "dave"
    assert r.groups == "admins,staff"
    assert r.rule == "ldap:" + base_url(env[2].port)
    line = audit(srv, r)
    assert line and 'decision="granted"' in line[0], srv.log_lines(
        r.test_id)
    assert 'rule="ldap:%s"' % base_url(env[2].port) in line[0]


def test_group_mismatch_and_stranger_refused(env):
    # erin's entry has no admins group; stranger has no entry
    assert get(env, "/upn/", "erin").status == 403
    r = get(env, "/upn/", "stranger")
    assert r.status == 403
    assert r.user is None
    assert 'reason="unmapped"' in audit(env[0], r)[0]


def test_authtype_certificate_user(env):
    r = get(env, "/upn-authn/", "dave")
    assert r.status == 200, r
    assert r.remote_user == "dave"
    assert get(env, "/upn-authn/", "stranger").status == 403
    assert get(env, "/upn-authn/", None).status == 403


def test_email_and_whole_certificate_and_altsec(env):
    r = get(env, "/email/", "erin")
    assert (r.status, r.user) == (200, "erin"), r
    r = get(env, "/der/", "erin")
    assert (r.status, r.user, r.groups) == (200, "erin", "staff"), r
    # the same subject and key usage, another certificate: not erin's
    assert get(env, "/der/", "dave").status == 403
    r = get(env, "/altsec/", "frank")
    assert (r.status, r.user) == (200, "frank"), r
    assert get(env, "/altsec/", "erin").status == 403


def test_groups_as_dns(env):
    r = get(env, "/dn-groups/", "dave")
    assert r.status == 200, r
    # whole DNs, as the directory writes them, joined with "; "
    assert r.groups == "cn=admins,%s; cn=staff,%s" % (GROUPS, GROUPS), r
    # first RDN values elsewhere: no DN is a group there
    assert get(env, "/upn/", "dave").groups == "admins,staff"


def test_injection_does_not_widen_the_search(env):
    srv = env[0]
    # the control: the real CN finds dave
    assert get(env, "/cn/", "dave").user == "dave"
    r = get(env, "/cn/", "wild")
    assert r.status == 403 and r.user is None, r
    # the search asked for the CN as it is: its '*' escaped (\2a, which
    # the log writes as \x5C2a and httpd's log escapes once more)
    text = "\n".join(srv.log_lines(r.test_id))
    assert r"no entry for (cn=Dave\\x5C2a)" in text, text[-2000:]
    r = get(env, "/cn/", "inject")
    assert r.status == 403 and r.user is None, r
    text = "\n".join(srv.log_lines(r.test_id))
    assert r"(cn=\\x5C2a\\x5C29\\x5C28uid=\\x5C2a)" in text, \
        text[-2000:]


def test_several_entries_are_unmapped(env):
    srv = env[0]
    r = get(env, "/email/", "shared")
    assert r.status == 403 and r.user is None, r
    assert 'reason="unmapped"' in audit(srv, r)[0]
    assert "several entries" in wait_log(srv, r"several entries"), \
        srv.error_log_tail()


def test_entry_without_user_attribute_is_unmapped(env):
    srv = env[0]
    # the control: dave's entry has employeeNumber
    r = get(env, "/noattr/", "dave")
    assert (r.status, r.user) == (200, "1001"), r
    r = get(env, "/noattr/", "noattr")
    assert r.status == 403 and r.user is None, r
    assert re.search(r"CERTAUTHZ0051: .*uid=noattr.*unmapped",
                     wait_log(srv, r"uid=noattr")), srv.error_log_tail()


def test_deny_and_map_rules_come_first(env):
    srv = env[0]
    r = get(env, "/mapfirst/", "mapped")
    assert (r.status, r.user, r.groups) == (200, "mapuser", "mapgroup"), r
    assert "ldap.map:3" in r.rule
    r = get(env, "/mapfirst/", "denied")
    assert r.status == 403, r
    assert 'reason="deny-rule"' in audit(srv, r)[0]
    # an unmapped certificate goes on to the directory
    r = get(env, "/mapfirst/", "dave")
    assert (r.status, r.user) == (200, "dave"), r
    # CertAuthzLDAP Off: the map alone
    assert get(env, "/mapfirst-off/", "dave").status == 403
    assert get(env, "/mapfirst-off/", "mapped").status == 200


def test_referrals_are_not_followed(env):
    srv = env[0]
    # the other directory has mallory (in admins); following the referral
    # would give an identity
    r = get(env, "/referral/", "mallory")
    assert r.status == 403 and r.user is None, r
    # a base inside the referral: the server answers with a referral,
    # which is an error: refused, logged
    srv.allow_errors(r.test_id)
    r = get(env, "/referral-base/", "mallory")
    srv.allow_errors(r.test_id)
    assert r.status == 403 and r.user is None, r
    assert 'reason="directory-error"' in audit(srv, r)[0]


def test_missing_base_is_an_error_not_unmapped(env):
    srv = env[0]
    r = get(env, "/nobase/", "dave")
    srv.allow_errors(r.test_id)
    assert r.status == 403 and r.user is None, r
    assert 'reason="directory-error"' in audit(srv, r)[0]
    assert re.search(r"CERTAUTHZ0051: directory \S+ou=nowhere.*search failed"
                     r".*\(LDAP result 32\)", "\n".join(
                         srv.log_lines(r.test_id))), srv.log_lines(r.test_id)


def test_ldaps_and_starttls(env):
    for path in ("/ldaps/", "/starttls/"):
        r = get(env, path, "dave")
        assert (r.status, r.user) == (200, "dave"), (path, r,
                                                    env[0].error_log_tail())


def test_authnz_ldap_group_under_authtype_certificate(env):
    r = get(env, "/authnz/", "dave")
    assert (r.status, r.remote_user) == (200, "dave"), (
        r, env[0].error_log_tail())
    # erin is in the directory, not in admins
    r = get(env, "/authnz/", "erin")
    assert r.status == 403, r


def test_forwarded_and_shadowed_like_a_map_identity(env):
    srv = env[0]
    r = get(env, "/fwd/x", "dave", headers={"X_Remote_User": "root"})
    assert r.status == 200, (r, srv.error_log_tail())
    lines = r.body.decode("latin-1").split("\r\n")[1:]
    assert "X-Remote-User: dave" in lines, lines
    assert "X-Remote-Groups: admins,staff" in lines, lines
    assert not [l for l in lines if l.lower().startswith("x_remote")], lines
    sh = [l for l in srv.log_lines(r.test_id) if "CERTAUTHZ0110" in l]
    assert len(sh) == 1, srv.log_lines(r.test_id)
    assert 'shadow="groups"' in sh[0] and 'user="dave"' in sh[0], sh
    assert 'rule="ldap:%s"' % base_url(env[2].port) in sh[0], sh
    assert 'shadow_groups="admins"' in sh[0] and "shadow.map:2" in sh[0], sh


# ---- faults ---------------------------------------------------------------

def test_server_killed_refuses_then_recovers(env):
    srv, clients, main = env[0], env[1], env[2]
    before = status(srv)
    mark = len(srv.error_log_text())
    main.kill()
    try:
        ids = []
        r = get(env, "/nc-authn/", "gina")
        ids.append(r.test_id)
        assert r.status == 503, r
        r = get(env, "/nc-prov/", "gina")
        ids.append(r.test_id)
        assert r.status == 403, r
        assert 'reason="directory-error"' in audit(srv, r)[0]
        # Require not cert-group banned must not grant an unknown identity
        r = get(env, "/nc-not/", "gina")
        ids.append(r.test_id)
        assert r.status == 403, r
        # map and deny rules keep working
        assert get(env, "/mapfirst/", "mapped").status == 200
        assert get(env, "/mapfirst/", "denied").status == 403
        # a burst: more faults of the same directive, each refused
        for i in range(3):
            r = get(env, "/nc-prov/", "hank")
            ids.append(r.test_id)
            assert r.status == 403
        for t in ids:
            srv.allow_errors(t)
        # one CERTAUTHZ0051 line per directive per burst (10 s; a slow
        # machine may see the window turn once)
        text = srv.error_log_text()[mark:]
        per = {}
        for m in re.finditer(r"CERTAUTHZ0051: directory \S+ \((\S+:\d+)\): "
                             r"search failed: .*: refused", text):
            per[m.group(1)] = per.get(m.group(1), 0) + 1
        assert len(per) == 3 and all(n <= 2 for n in per.values()), per
        after = status(srv)
        assert after["errors"] >= before["errors"] + 6, (before, after)
    finally:
        main.restart()
    # the directory answers again: a grant, and one recovery line
    deadline = time.monotonic() + 60
    while True:
        r = get(env, "/nc-authn/", "gina")
        if r.status == 200 or time.monotonic() > deadline:
            break
        srv.allow_errors(r.test_id)
        time.sleep(0.2)
    assert (r.status, r.remote_user) == (200, "gina"), r
    assert get(env, "/nc-prov/", "hank").status == 200
    # each directive's recovery line counts the faults it did not log
    text = wait_log(srv, "CERTAUTHZ0052", mark)
    quiet = [int(n) for n in re.findall(
        r"CERTAUTHZ0052: directory .* answers again \((\d+) faults not "
        r"logged\)", text)]
    assert quiet and max(quiet) >= 2, text[-3000:]


def test_slow_server_refuses_within_the_timeout(env):
    srv, proxy = env[0], env[3]
    # the control: through the proxy without delay
    r = get(env, "/slow/", "dave")
    assert (r.status, r.remote_user) == (200, "dave"), r
    proxy.delay = 20
    try:
        t0 = time.monotonic()
        r = get(env, "/slow/", "dave", timeout=120)
        took = time.monotonic() - t0
        srv.allow_errors(r.test_id)
        assert r.status == 503, r
        # LDAPTimeout 2: a few timed-out tries, well before the delay
        assert took < 20, took
    finally:
        proxy.delay = 0
    deadline = time.monotonic() + 60
    while True:
        r = get(env, "/slow/", "dave", timeout=60)
        if r.status == 200 or time.monotonic() > deadline:
            break
        srv.allow_errors(r.test_id)
        time.sleep(0.2)
    assert r.status == 200, r


def test_status_counts_lookups_and_cache_hits(env):
    srv = env[0]
    before = status(srv)
    for k in ("lookups", "cache-hits", "found", "not-found", "errors",
              "latency-usec"):
        assert k in before, before
    # one connection, twenty requests: the first asks the process cache or
    # the directory, the others are the connection's own (its settings
    # merged per request from the virtual host's and the Location's)
    rs = srv.client.get_many(srv.port, ["/email/ok.txt"] * 20,
                             cert=env[1]["erin"])
    assert [r.status for r in rs] == [200] * 20
    mid = status(srv)
    asked = (mid["lookups"] - before["lookups"]
             + mid["cache-hits"] - before["cache-hits"])
    assert asked == 1, (before, mid)
    # a new connection: the process cache answers
    assert get(env, "/email/", "erin").status == 200
    after = status(srv)
    assert after["cache-hits"] == mid["cache-hits"] + 1, (mid, after)
    assert after["lookups"] == mid["lookups"], (mid, after)
    assert after["found"] >= 1 and after["latency-usec"] > 0


def test_ttl_zero_is_never_answered_from_a_cache(env):
    srv = env[0]
    # /upn/ (default TTL) keeps dave; /nc-prov/ searches the same way with
    # CertAuthzLDAPCacheTTL 0: each of its requests asks the directory
    assert get(env, "/upn/", "dave").status == 200
    before = status(srv)
    rs = srv.client.get_many(srv.port, ["/nc-prov/ok.txt"] * 3,
                             cert=env[1]["dave"])
    assert [r.status for r in rs] == [200] * 3
    assert get(env, "/nc-prov/", "dave").status == 200
    after = status(srv)
    assert after["lookups"] - before["lookups"] == 4, (before, after)
    assert after["cache-hits"] == before["cache-hits"], (before, after)


# ---- configuration ---------------------------------------------------------

CT_MODULES = H.CONFIGTEST_MODULES + ["ldap"]


@pytest.mark.parametrize("args,needle", [
    ('"ldap://127.0.0.1/dc=x" "(uid={nope})"', "unknown placeholder {nope}"),
    ('"ldap://127.0.0.1/dc=x" "(uid=fixed)"', "uses no placeholder"),
    ('"http://127.0.0.1/dc=x" "(uid={cn})"', "bad URL"),
    ('"ldap://127.0.0.1/" "(uid={cn})"', "needs a base DN"),
    ('"ldap://127.0.0.1/dc=x?uid,mail" "(uid={cn})"', "more than one"),
    ('"ldaps://127.0.0.1/dc=x" "(uid={cn})" STARTTLS', "choose one"),
    ('"ldap://127.0.0.1/dc=x"', "needs a URL and a FILTER"),
])
def test_bad_directive_names_file_and_line(workdir, args, needle):
    root = workdir / "ldap-ct" / str(abs(hash(args)))
    rc, out, conf = H.configtest(root, "# line\nCertAuthzLDAP %s\n" % args,
                                 modules=CT_MODULES)
    assert rc != 0, out
    assert needle in out, out
    assert "configtest.conf" in out and re.search(r"line \d+", out), out


def test_without_mod_ldap_is_a_configuration_error(workdir):
    root = workdir / "ldap-ct" / "nomod"
    rc, out, _ = H.configtest(
        root, '\n<Location "/x">\nCertAuthzLDAP "ldap://127.0.0.1/dc=x" '
        '"(uid={cn})"\n</Location>\n')
    assert rc != 0, out
    assert re.search(r"CERTAUTHZ0050: \S+configtest.conf:\d+: CertAuthzLDAP "
                     r"needs mod_ldap", out), out


def test_mod_ldap_loaded_after_us_is_fine(workdir):
    # Debian's a2enmod loads certauthz.load before ldap.load
    root = workdir / "ldap-ct" / "order"
    rc, out, _ = H.configtest(
        root, 'CertAuthzLDAP "ldap://127.0.0.1/dc=x" "(uid={cn})"\n'
        "LoadModule ldap_module %s\n" % (H.HTTPD_MODULES / "mod_ldap.so"))
    assert rc == 0, out


def test_ttl_and_groups_arguments(workdir):
    for body, ok in [("CertAuthzLDAPCacheTTL 30 5", True),
                     ("CertAuthzLDAPCacheTTL -1", False),
                     ("CertAuthzLDAPCacheTTL 86401", False),
                     ("CertAuthzLDAPGroups memberOf dn", True),
                     ("CertAuthzLDAPGroups None", True),
                     ("CertAuthzLDAPGroups memberOf full", False),
                     ("CertAuthzLDAPGroups \"a,b\"", False)]:
        root = workdir / "ldap-ct" / str(abs(hash(body)))
        rc, out, _ = H.configtest(root, body + "\n", modules=CT_MODULES)
        assert (rc == 0) == ok, (body, out)
