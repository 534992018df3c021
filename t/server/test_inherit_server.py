"""Inheritance of CertAuthzUnmapped, CertAuthzSetEnv and CertAuthzAudit
across main server -> virtual host -> <Location> (SPEC section 3): the value
set in the most specific scope wins, else the enclosing one's; the defaults
are Deny / On / Deny.  Also a CertAuthzMapFile of the main server inherited
by the vhosts, and overridden by one of them.

Its own httpd instance (module scope), three TLS vhosts:

    main server    CertAuthzMapFile main.map, CertAuthzUnmapped CN,
                   CertAuthzSetEnv Off, CertAuthzAudit All
                   (none of them the default)
    vhost A        sets nothing: inherits all four from the main server
    vhost B        CertAuthzUnmapped Email, CertAuthzSetEnv On,
                   CertAuthzAudit Off (map inherited)
    vhost C        CertAuthzMapFile alt.map (the other three inherited)

    in A and B, each with AuthType Certificate + Require valid-user:
    <Location /inh>        sets nothing
    <Location /unmapped>   A: CertAuthzUnmapped Email   B: ... Deny
    <Location /env>        A: CertAuthzSetEnv On        B: ... Off
    <Location /audit>      A: CertAuthzAudit Off        B: ... Deny
    in C: <Location /inh> as above

httpd gives a section (vhost or <Location>) that has none of the module's
directives no configuration of its own: it uses the enclosing one as is,
without calling the module's merge.  So A/inh shows the main server's
values, B/inh vhost B's, where nothing is set; the merge itself is
exercised by the <Location>s that set one directive (the other two come
from the merge) and by vhost C, which sets only the map.

Certificates (main.map): svc is mapped (user api-prod, by its URI SAN; its
CN is "api", it has no e-mail), zed is not in the map (CN zed, e-mail
zed@example.org), laptop is deny-listed (`deny serial:`).

And the directives' limits: they are refused in .htaccess (AllowOverride
AuthConfig, where CertAuthzMapFile is allowed), and a bad value at server
or vhost level is a configuration error naming the directive.

Only 127.0.0.1; every wait is bounded.
"""

import re
import textwrap

import pytest

import certauthz_harness as H

P_A, P_B, P_C = range(3)

AUTH = "AuthType Certificate\nRequire valid-user"

# the value of each directive in force in each scope:
# (id, port, path, Unmapped, SetEnv, Audit)
SCOPES = [
    ("A/inh", P_A, "/inh/", "CN", False, "All"),
    ("A/unmapped", P_A, "/unmapped/", "Email", False, "All"),
    ("A/env", P_A, "/env/", "CN", True, "All"),
    ("A/audit", P_A, "/audit/", "CN", False, "Off"),
    ("B/inh", P_B, "/inh/", "Email", True, "Off"),
    ("B/unmapped", P_B, "/unmapped/", "Deny", True, "Off"),
    ("B/env", P_B, "/env/", "Email", False, "Off"),
    ("B/audit", P_B, "/audit/", "Email", True, "Deny"),
]
SCOPE = pytest.mark.parametrize("scope", SCOPES, ids=[s[0] for s in SCOPES])

# .htaccess files under htdocs/ht (AllowOverride AuthConfig)
HTACCESS = {
    "ok": "CertAuthzMapFile conf/certauthz/alt.map\n"
          "Require cert-user alice-alt\n",
    "unmapped": "CertAuthzUnmapped CN\n",
    "setenv": "CertAuthzSetEnv On\n",
    "audit": "CertAuthzAudit All\n",
}
HT_REFUSED = [("unmapped", "CertAuthzUnmapped"),
              ("setenv", "CertAuthzSetEnv"),
              ("audit", "CertAuthzAudit")]

DOCS = ["inh", "unmapped", "env", "audit"] + ["ht/%s" % d for d in HTACCESS]


def _loc(path, body):
    return '<Location "%s">\n%s\n</Location>' % (
        path, textwrap.indent(body, "    "))


def _config(srv):
    p = srv.ports
    r = srv.root
    tls = ('SSLCACertificateFile "conf/ssl/clients-ca.pem"\n'
           "SSLVerifyClient optional\nSSLVerifyDepth 2\n")
    vhost_a = "\n".join([
        _loc("/inh", AUTH),
        _loc("/unmapped", "CertAuthzUnmapped Email\n" + AUTH),
        _loc("/env", "CertAuthzSetEnv On\n" + AUTH),
        _loc("/audit", "CertAuthzAudit Off\n" + AUTH),
    ])
    vhost_b = "\n".join([
        "CertAuthzUnmapped Email",
        "CertAuthzSetEnv On",
        "CertAuthzAudit Off",
        _loc("/inh", AUTH),
        _loc("/unmapped", "CertAuthzUnmapped Deny\n" + AUTH),
        _loc("/env", "CertAuthzSetEnv Off\n" + AUTH),
        _loc("/audit", "CertAuthzAudit Deny\n" + AUTH),
    ])
    vhost_c = "\n".join([
        "CertAuthzMapFile conf/certauthz/alt.map",
        _loc("/inh", AUTH),
    ])
    return "\n".join([
        "# main server: the vhosts and their <Location>s inherit these",
        "CertAuthzMapFile conf/certauthz/main.map",
        "CertAuthzUnmapped CN",
        "CertAuthzSetEnv Off",
        "CertAuthzAudit All",
        '<Directory "%s/htdocs/ht">\n    AllowOverride AuthConfig\n'
        "</Directory>" % r,
        H.ssl_vhost(p[P_A], tls + vhost_a),
        H.ssl_vhost(p[P_B], tls + vhost_b),
        H.ssl_vhost(p[P_C], tls + vhost_c),
    ])


@pytest.fixture(scope="module")
def srv(workdir, certs):
    files = {"conf/certauthz/alt.map": H.ALT_MAP}
    for d, text in HTACCESS.items():
        files["htdocs/ht/%s/.htaccess" % d] = text
    s = H.ExtraHttpd(workdir / "inherit-server" / "server", certs, _config,
                     nports=3, files=files, docs=DOCS)
    s.setup()
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


def get(srv, port, path, cert):
    c = srv.certs[cert] if isinstance(cert, str) else cert
    return srv.get(path, c, port=srv.ports[port])


def request_log(srv, r):
    """The error-log lines of request r, read once its access-log line is
    written (after the response, so after any audit line of the request)."""
    assert srv.access_lines(r.test_id, count=1, timeout=30), r
    return srv.log_lines(r.test_id)


def audit_lines(srv, r):
    return [l for l in request_log(srv, r) if "CERTAUTHZ0100:" in l]


def audit_fields(line):
    rest = line.split("CERTAUTHZ0100: ", 1)[1]
    return dict(re.findall(r'([a-z0-9]+)="([^"]*)"', rest))


def svc_rule(srv):
    return "%s:%d" % (srv.main_map, H.line_of(
        srv.main_map_lines, "uri:spiffe://example.org/ns/prod/sa/api"))


# ---- CertAuthzUnmapped

# the user an unmapped certificate (zed) gets under each value
ZED_USER = {"CN": "zed", "Email": "zed@example.org", "Deny": None}


@SCOPE
def test_unmapped_fallback(srv, scope):
    """zed is in no map: its user is the fact of the CertAuthzUnmapped in
    force there (main server CN, vhost B Email, a <Location>'s), or 403
    under Deny (the default: never in force in A by inheritance)."""
    _, port, path, unmapped, _, _ = scope
    r = get(srv, port, path, "zed")
    user = ZED_USER[unmapped]
    if user is None:
        assert (r.status, r.remote_user) == (403, None), r
    else:
        assert (r.status, r.remote_user) == (200, user), r


@SCOPE
def test_unmapped_fallback_is_the_chosen_fact(srv, scope):
    """mvrdn (CN mv, no e-mail, not in the map): a user under CN only --
    Email in force is really the e-mail fact, not the CN of the main
    server's CertAuthzUnmapped."""
    _, port, path, unmapped, _, _ = scope
    r = get(srv, port, path, "mvrdn")
    if unmapped == "CN":
        assert (r.status, r.remote_user) == (200, "mv"), r
    else:
        assert (r.status, r.remote_user) == (403, None), r


# ---- CertAuthzMapFile of the main server

@SCOPE
def test_main_server_map_inherited(srv, scope):
    """No vhost A/B or <Location> names a map: main.map of the main server
    maps svc to api-prod (its CN fallback would be "api", or 403) and
    deny-lists laptop (its CN fallback would be "laptop")."""
    _, port, path, _, _, _ = scope
    r = get(srv, port, path, "svc")
    assert (r.status, r.remote_user) == (200, "api-prod"), r
    r = get(srv, port, path, "laptop")
    assert (r.status, r.remote_user) == (403, None), r


def test_vhost_map_overrides_main_server_map(srv):
    """Vhost C names alt.map: main.map is not consulted there, while the
    main server's CertAuthzUnmapped CN, SetEnv Off and Audit All still
    apply."""
    r = get(srv, P_C, "/inh/", "alice")
    assert (r.status, r.remote_user) == (200, "alice-alt"), r
    assert (r.user, r.cert_sha256) == (None, None), r.headers   # SetEnv Off
    # svc and laptop are not in alt.map: the CN fallback (Unmapped CN)
    r = get(srv, P_C, "/inh/", "svc")
    assert (r.status, r.remote_user) == (200, "api"), r
    [line] = audit_lines(srv, r)                                 # Audit All
    a = audit_fields(line)
    assert (a["decision"], a["reason"], a["user"]) == \
        ("granted", "unmapped-fallback", "api"), a
    r = get(srv, P_C, "/inh/", "laptop")
    assert (r.status, r.remote_user) == (200, "laptop"), r


# ---- CertAuthzSetEnv

@SCOPE
def test_setenv(srv, certs, scope):
    """CERTAUTHZ_* present or absent as the CertAuthzSetEnv in force says:
    Off from the main server (the default is On), On again from vhost B or
    a <Location>, Off again in B's <Location>."""
    _, port, path, unmapped, setenv, _ = scope
    r = get(srv, port, path, "svc")
    assert (r.status, r.remote_user) == (200, "api-prod"), r
    if setenv:
        assert (r.user, r.groups, r.rule, r.cert_sha256) == \
            ("api-prod", "services", svc_rule(srv),
             certs["svc"].sha256), r.headers
    else:
        assert (r.user, r.groups, r.rule, r.cert_sha256) == \
            (None, None, None, None), r.headers
    # an unmapped certificate granted by the fallback: only its fingerprint
    r = get(srv, port, path, "zed")
    if r.status == 200:
        assert r.user is None and r.rule is None, r.headers
        assert r.cert_sha256 == (certs["zed"].sha256 if setenv else None), \
            r.headers


# ---- CertAuthzAudit

@SCOPE
def test_audit_granted(srv, scope):
    """A granted decision is logged under All only: All of the main server
    (the default Deny logs none), none under B's Off or <Location>s' Off and
    Deny."""
    _, port, path, _, _, audit = scope
    r = get(srv, port, path, "svc")
    assert r.status == 200, r
    lines = audit_lines(srv, r)
    if audit == "All":
        assert len(lines) == 1, lines
        a = audit_fields(lines[0])
        assert (a["decision"], a["check"], a["reason"], a["user"]) == \
            ("granted", "AuthType Certificate", "mapped", "api-prod"), a
    else:
        assert lines == [], lines


@SCOPE
@pytest.mark.parametrize("cert,check,reason", [
    ("laptop", "deny list", "deny-rule"),
    (None, "AuthType Certificate", "no-certificate"),
], ids=["deny-listed", "no-certificate"])
def test_audit_denied(srv, scope, cert, check, reason):
    """A denied decision is logged under Deny and All, not under Off
    (vhost B's, inherited by its <Location>s, and A's <Location /audit>),
    where the default Deny would log it."""
    _, port, path, _, _, audit = scope
    r = get(srv, port, path, cert)
    assert r.status == 403, r
    lines = audit_lines(srv, r)
    if audit == "Off":
        assert lines == [], lines
    else:
        assert len(lines) == 1, lines
        a = audit_fields(lines[0])
        assert (a["decision"], a["check"], a["reason"]) == \
            ("denied", check, reason), a


# ---- where the directives are refused

def test_htaccess_is_read(srv):
    """Control for the test below: the .htaccess files of htdocs/ht are
    read (CertAuthzMapFile is allowed there)."""
    r = get(srv, P_A, "/ht/ok/", "alice")
    assert (r.status, r.user) == (200, None), r       # SetEnv Off inherited
    assert get(srv, P_A, "/ht/ok/", "bob").status == 403


@pytest.mark.parametrize("d,directive", HT_REFUSED,
                         ids=[d for d, _ in HT_REFUSED])
def test_refused_in_htaccess(srv, d, directive):
    """Server and vhost level, yes; .htaccess (AllowOverride AuthConfig),
    no: 500, and httpd names the directive."""
    r = get(srv, P_A, "/ht/%s/" % d, "alice")
    assert r.status == 500, r
    log = "\n".join(request_log(srv, r))
    assert "%s not allowed here" % directive in log, log


BAD_VALUES = [
    ("unmapped", "CertAuthzUnmapped Foo",
     "CertAuthzUnmapped must be one of Deny, cn, email, upn, dn, uri "
     "(in any case)"),
    ("audit", "CertAuthzAudit Maybe",
     "CertAuthzAudit must be Off, Deny or All"),
    ("setenv", "CertAuthzSetEnv Maybe", "CertAuthzSetEnv must be On or Off"),
]


@pytest.mark.parametrize("level", ["server", "vhost"])
@pytest.mark.parametrize("case", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_value_is_config_error(ct_root, case, level):
    _, line, text = case
    if level == "server":
        body, indent = line + "\n", ""
    else:
        body = "<VirtualHost 127.0.0.1:1>\n    %s\n</VirtualHost>\n" % line
        indent = "    "
    rc, out, conf = H.configtest(ct_root, body)
    assert rc != 0, out
    assert "Syntax OK" not in out, out
    n = conf.read_text().splitlines().index(indent + line) + 1
    assert "Syntax error on line %d of %s" % (n, conf) in out, out
    assert text in out, out


def test_good_values_at_server_and_vhost_level(ct_root):
    """Control for the test above: the same directives with good values at
    both levels are accepted."""
    body = """\
CertAuthzUnmapped DN
CertAuthzSetEnv Off
CertAuthzAudit All
<VirtualHost 127.0.0.1:1>
    CertAuthzUnmapped URI
    CertAuthzSetEnv On
    CertAuthzAudit Off
</VirtualHost>
"""
    rc, out, _ = H.configtest(ct_root, body)
    assert rc == 0 and "Syntax OK" in out, out
