"""docs/migration.md: every old recipe and its mod_certauthz replacement,
run side by side in one real httpd.

The configuration blocks are read from docs/migration.md (each follows an
HTML comment `<!-- recipe: NAME [path=FILE] -->`), so the guide cannot
drift from what is tested.  The test changes only two things in them:
each `<Location /x>` becomes `<Location /NAME/x>` (one path per recipe),
and `ProxyPass` points at the test's own backend instead of
127.0.0.1:8080.  A few differences are checked on variants of a block
(another spelling of a DN, one directive added), derived from the guide's
text at run time.  Files (maps, the group file) are written where the
marker's path= says, under the ServerRoot; the FakeBasicAuth password file
is made by running the guide's htpasswd commands in the ServerRoot.

For each case the test asserts that old and new grant and refuse the same
certificates of the test PKI, and that every difference the guide states
is real.  Ports: 0 = SSLVerifyClient optional, 1 = optional_no_ca (the
unverified-certificate differences), 2 = optional, with the backend recipe
whose `RequestHeader ... early` lines belong in a virtual host.

Its own httpd (module scope) and a small HTTP backend that echoes the
request headers.  Only 127.0.0.1.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import certauthz_harness as H

GUIDE = H.SRCDIR / "docs" / "migration.md"
HTPASSWD = shutil.which("htpasswd", path="/usr/bin:/usr/sbin:/bin") \
    or shutil.which("htpasswd")
DOC_BACKEND = "127.0.0.1:8080"

P_MAIN, P_GEN, P_HDR = range(3)
PIV_POLICY = "2.16.840.1.101.3.2.1.3.13"

# every recipe the guide must hold
RECIPES = ["un-old", "un-new", "fba-old", "fba-old-htpasswd",
           "fba-old-groups", "fba-new", "fba-new-map", "cn-old", "cn-new",
           "iss-old", "iss-new", "iss-new-map", "san-old", "san-new",
           "spiffe-old", "spiffe-new", "hdr-old", "hdr-new", "hdr-new-map",
           "card-old", "card-new", "card-new-map"]

# Apache blocks placed at server level (every vhost inherits them); the
# hdr-new block goes in the P_HDR vhost only
SERVER_LEVEL = ["un-old", "un-new", "fba-old", "fba-new", "cn-old",
                "cn-new", "iss-old", "iss-new", "san-old", "san-new",
                "spiffe-old", "spiffe-new", "hdr-old", "card-old",
                "card-new"]

_MARK = re.compile(
    r"<!--\s*recipe:\s*([A-Za-z0-9-]+)(?:\s+path=(\S+))?\s*-->[ \t]*\n"
    r"[ \t]*\n?```[A-Za-z0-9]*\n(.*?)\n```", re.S)


def read_guide():
    """{name: (text, path or None)} of the guide's marked blocks."""
    text = GUIDE.read_text(encoding="utf-8")
    out = {}
    for m in _MARK.finditer(text):
        assert m.group(1) not in out, "recipe %s twice" % m.group(1)
        out[m.group(1)] = (m.group(3) + "\n", m.group(2))
    return out


def relocate(name, block, backend):
    """The block with each <Location /x> moved to /NAME/x and ProxyPass
    pointed at the backend; returns (block, [new location paths])."""
    paths = []

    def loc(m):
        path = "/%s%s" % (name, m.group(1))
        paths.append(path)
        return '<Location "%s">' % path
    out = re.sub(r'<Location\s+"?(/[^">\s]*)"?\s*>', loc, block)
    assert paths, "%s: no <Location>" % name
    if "ProxyPass" in out:
        assert DOC_BACKEND in out, name
        out = out.replace(DOC_BACKEND, backend)
    return out, paths


def variant(block, *replacements):
    """block with each (old, new) replaced; each old must occur."""
    for old, new in replacements:
        assert old in block, (old, block)
        block = block.replace(old, new)
    return block


def insert_in_location(block, line):
    """block with `line` added as the first directive of its <Location>."""
    return re.sub(r"(<Location[^>]*>\n)", r"\1    %s\n" % line, block,
                  count=1)


# --------------------------------------------------------------------------
# fixtures

class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the request headers it got, as JSON."""

    def do_GET(self):
        body = json.dumps([[k, v] for k, v in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backend():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join(10)


@pytest.fixture(scope="module")
def mcerts(workdir, certs):
    """The session's certificates plus a few this guide needs."""
    d = workdir / "migration" / "pki"
    d.mkdir(parents=True)
    root = Path(certs["root_ca"].prefix)
    untrusted = Path(certs["untrusted_ca"].prefix)
    c = dict(certs)

    def mk(name, *args):
        c[name] = H.mkcert(d / name, *args)

    # a DNS name that comes second
    mk("twodns", "--issuer", root, "--subject", "/O=Example/CN=twodns",
       "--san", "dns:www.example.net", "--san", "dns:x.build.example.com")
    # a name that only an unanchored regex would take
    mk("evildns", "--issuer", root, "--subject", "/O=Example/CN=evildns",
       "--san", "dns:x.build.example.com.evil.net")
    # the SPIFFE ID plus a DNS name
    mk("svc2", "--issuer", root, "--subject", "/O=Example/CN=api2",
       "--san", "dns:api.example.org",
       "--san", "uri:spiffe://example.org/ns/prod/sa/api")
    # anyone's own CA: the right fields, never verified
    mk("untrusted_alice", "--issuer", untrusted,
       "--subject", "/O=Example/CN=alice",
       "--san", "email:alice@example.com", "--san", "dns:x.build.example.com")
    mk("untrusted_svc", "--issuer", untrusted,
       "--subject", "/O=Example/CN=api",
       "--san", "uri:spiffe://example.org/ns/prod/sa/api")
    # a CA of one's own that carries the partner CA's name
    mk("fake_partner_ca", "--ca", "--subject", H.PARTNER_CA_SUBJECT,
       "--days", "3650")
    mk("fake_partner_alice", "--issuer", d / "fake_partner_ca",
       "--subject", "/O=Partner Inc/CN=alice")
    # smart cards (section 8)
    card = ["--policy", PIV_POLICY, "--san", "upn:alice@corp.example.com"]
    mk("card", "--issuer", root, "--subject", "/O=Example/CN=card",
       "--eku", "clientAuth,msSmartcardLogin", *card)
    mk("card_nopolicy", "--issuer", root, "--subject", "/O=Example/CN=soft",
       "--eku", "clientAuth,msSmartcardLogin",
       "--san", "upn:alice@corp.example.com")
    mk("card_order", "--issuer", root, "--subject", "/O=Example/CN=card2",
       "--eku", "msSmartcardLogin,clientAuth", *card)
    mk("card_mail", "--issuer", root, "--subject", "/O=Example/CN=card3",
       "--eku", "clientAuth,msSmartcardLogin,emailProtection", *card)
    mk("card_clientonly", "--issuer", root, "--subject", "/O=Example/CN=c4",
       "--eku", "clientAuth", *card)
    mk("card_evil", "--issuer", root, "--subject", "/O=Example/CN=c5",
       "--eku", "clientAuth,msSmartcardLogin", "--policy", PIV_POLICY,
       "--san", "upn:alice@corp.example.com.evil.net")
    mk("card_nulupn", "--issuer", root, "--subject", "/O=Example/CN=c6",
       "--eku", "clientAuth,msSmartcardLogin", "--policy", PIV_POLICY,
       "--san", "upn:alice@corp.example.com\\x00.evil.net")
    H.make_tree_public(d)
    return c


class Setup:
    """What the module's server was built from."""

    def __init__(self, backend):
        self.backend = backend
        self.blocks = {}       # location-level name -> relocated block
        self.docs = []         # directories that get an ok.txt
        self.files = {}        # ServerRoot-relative path -> text

    def add(self, name, block):
        out, paths = relocate(name, block, self.backend)
        self.blocks[name] = out
        if "ProxyPass" not in out:
            self.docs += paths
        return out


def _build(recipes, backend):
    s = Setup(backend)
    for name in SERVER_LEVEL + ["hdr-new"]:
        s.add(name, recipes[name][0])
    for name in ("fba-old-groups", "fba-new-map", "iss-new-map",
                 "hdr-new-map", "card-new-map"):
        text, path = recipes[name]
        assert path, "%s: the marker names no path=" % name
        s.files[path] = text
    # the configurations name the files the guide shows them in
    assert recipes["fba-old-groups"][1] in recipes["fba-old"][0]
    assert recipes["fba-new-map"][1] in recipes["fba-new"][0]
    assert recipes["iss-new-map"][1] in recipes["iss-new"][0]
    assert recipes["hdr-new-map"][1] in recipes["hdr-new"][0]
    assert recipes["card-new-map"][1] in recipes["card-new"][0]

    # variants for the differences section 4 states
    old, new = recipes["iss-old"][0], recipes["iss-new"][0]
    new_map, map_path = recipes["iss-new-map"]
    s.add("iss-old-legacy",
          insert_in_location(old, "SSLOptions +LegacyDNStringFormat"))
    s.add("iss-new-legacy",
          insert_in_location(new, "SSLOptions +LegacyDNStringFormat"))
    for tag, spelt in (("space", "CN=alice, O=Partner Inc"),
                       ("lower", "cn=alice,o=Partner Inc")):
        s.add("iss-old-" + tag,
              variant(old, ("'CN=alice,O=Partner Inc'", "'%s'" % spelt)))
        spelt_map = map_path.replace(".map", "-%s.map" % tag)
        s.add("iss-new-" + tag, variant(new, (map_path, spelt_map)))
        s.files[spelt_map] = variant(
            new_map, ('dn:"CN=alice,O=Partner Inc"', 'dn:"%s"' % spelt))
    # section 7: `early` inside a <Location> is accepted and ignored
    s.add("hdr-early-in-location", insert_in_location(
        recipes["hdr-old"][0], "RequestHeader unset X_Remote_User early"))
    # section 6: mod_ssl has no variable for URI names
    s.blocks["probe"] = ('<Location "/probe">\n    Require all granted\n'
                         '    Header always set X-Probe-San-Uri '
                         '"%{SSL_CLIENT_SAN_URI_0}s"\n</Location>\n')
    s.docs.append("/probe")
    return s


def _config(setup):
    def body(srv):
        ca = 'SSLCACertificateFile "conf/ssl/clients-ca.pem"\n'
        server_level = [b for n, b in setup.blocks.items() if n != "hdr-new"]
        return "\n".join(server_level + [
            H.ssl_vhost(srv.ports[P_MAIN], ca + "SSLVerifyClient optional\n"
                        "SSLVerifyDepth 2"),
            H.ssl_vhost(srv.ports[P_GEN], ca + "SSLVerifyClient "
                        "optional_no_ca\nSSLVerifyDepth 2"),
            H.ssl_vhost(srv.ports[P_HDR],
                        ca + "SSLVerifyClient optional\nSSLVerifyDepth 2\n"
                        + setup.blocks["hdr-new"]),
        ])
    return body


@pytest.fixture(scope="module")
def recipes():
    assert GUIDE.exists(), GUIDE
    r = read_guide()
    missing = [n for n in RECIPES if n not in r]
    assert not missing, "recipes missing from %s: %s" % (GUIDE, missing)
    return r


@pytest.fixture(scope="module")
def mig(workdir, mcerts, recipes, backend):
    setup = _build(recipes, backend)
    srv = H.ExtraHttpd(workdir / "migration" / "server", mcerts,
                       _config(setup), nports=3, files=setup.files,
                       docs=setup.docs,
                       modules=H.EXTRA_MODULES + ["auth_basic", "authn_file",
                                                  "proxy", "proxy_http"])
    srv.setup()
    srv.have_htpasswd = False
    if HTPASSWD:
        # the guide's commands, run in the ServerRoot with this htpasswd
        cmds = recipes["fba-old-htpasswd"][0]
        lines = [l for l in cmds.splitlines() if l.strip()]
        assert len(lines) == 3 and all(l.startswith("htpasswd ")
                                       for l in lines), cmds
        p = subprocess.run(["/bin/sh", "-e", "-c", cmds], cwd=str(srv.root),
                           env=dict(os.environ, PATH="%s:/usr/bin:/bin"
                                    % os.path.dirname(HTPASSWD)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        assert p.returncode == 0, p.stdout.decode(errors="replace")
        srv.have_htpasswd = True
    H.make_tree_public(srv.root)
    srv.start()
    srv.setup_info = setup
    yield srv
    assert srv.stop(), "httpd did not stop"


# --------------------------------------------------------------------------
# requests

class Ans:
    """One answer: status ("handshake" when the TLS connection was
    refused), the authenticated user, the response headers."""

    def __init__(self, status, r=None):
        self.status = status
        self.r = r

    @property
    def granted(self):
        return self.status == 200

    @property
    def user(self):
        return self.r.remote_user if self.r else None

    def header(self, name):
        return self.r.headers.get(name.lower()) if self.r else None

    def __repr__(self):
        return "Ans(%s, user=%r)" % (self.status, self.user)


def ask(srv, path, cert, port=P_MAIN, headers=None):
    c = srv.certs[cert] if isinstance(cert, str) else cert
    try:
        r = srv.get(path, c, port=srv.ports[port], headers=headers)
    except H.HandshakeFailed:
        return Ans("handshake")
    return Ans(r.status, r)


def pair(srv, case, sub, cert, port=P_MAIN):
    """(old answer, new answer) for the case's location `sub`."""
    return (ask(srv, "/%s-old%s" % (case, sub), cert, port),
            ask(srv, "/%s-new%s" % (case, sub), cert, port))


def needs_fba(srv, case):
    if case == "fba" and not srv.have_htpasswd:
        pytest.skip("htpasswd not found (Debian: apache2-utils)")


# --------------------------------------------------------------------------
# the guide itself

def test_guide_blocks_are_well_formed(recipes):
    for name in RECIPES:
        text, _ = recipes[name]
        assert text.strip(), name
    for name in SERVER_LEVEL + ["hdr-new"]:
        assert "<Location" in recipes[name][0], name
    # the old and the new recipe of a case serve the same URL paths
    for case in ("un", "fba", "cn", "iss", "san", "spiffe", "hdr", "card"):
        old = re.findall(r"<Location\s+(\S+?)>", recipes[case + "-old"][0])
        new = re.findall(r"<Location\s+(\S+?)>", recipes[case + "-new"][0])
        assert old == new, (case, old, new)


# --------------------------------------------------------------------------
# the same decisions

# (case, location, certificate, granted): old and new must both say so
SAME = [
    # 1. SSLUserName
    ("un", "/app/", "alice", True),
    ("un", "/app/", "bob", True),
    ("un", "/app/", "carol", True),
    ("un", "/app/", "dave", False),
    ("un", "/app/", "eve", False),
    ("un", "/app/", "casealice", False),
    ("un", "/app/", "nulcn", False),
    ("un", "/app/", "partner_alice", True),
    ("un", "/app/", "bmpbob", True),
    ("un", "/app/", "mvbob", True),
    # 2. FakeBasicAuth
    ("fba", "/app/", "alice", True),
    ("fba", "/app/", "bob", True),
    ("fba", "/app/", "carol", False),
    ("fba", "/app/", "eve", False),
    ("fba", "/app/", "partner_alice", False),
    ("fba", "/app/", "twocn", False),
    ("fba", "/app/", "casealice", False),
    # 3. CN list
    ("cn", "/app/", "alice", True),
    ("cn", "/app/", "bob", True),
    ("cn", "/app/", "carol", True),
    ("cn", "/app/", None, False),
    ("cn", "/app/", "dave", False),
    ("cn", "/app/", "eve", False),
    ("cn", "/app/", "casealice", False),
    ("cn", "/app/", "nulcn", False),
    ("cn", "/app/", "partner_alice", True),
    ("cn", "/app/", "bmpbob", True),
    ("cn", "/app/", "mvbob", True),
    # 4. issuer and subject DN
    ("iss", "/partners/", "partner_alice", True),
    ("iss", "/partners/", "partner_eve", True),
    ("iss", "/partners/", "alice", False),
    ("iss", "/partners/", "bob", False),
    ("iss", "/partners/", "eve", False),
    ("iss", "/partners/", None, False),
    # 5. e-mail and DNS names
    ("san", "/mail/", "alice", True),
    ("san", "/mail/", "zed", False),
    ("san", "/mail/", "bob", False),
    ("san", "/mail/", "nulsan", False),
    ("san", "/mail/", None, False),
    ("san", "/ci/", "builder", True),
    ("san", "/ci/", "deepbuilder", False),
    ("san", "/ci/", "evildns", False),
    ("san", "/ci/", "nuldns", False),
    ("san", "/ci/", "alice", False),
    ("san", "/ci/", None, False),
    # 6. SPIFFE ID
    ("spiffe", "/api/", "svc", True),
    ("spiffe", "/api/", "worker", False),
    ("spiffe", "/api/", "alice", False),
    ("spiffe", "/api/", "nuluri", False),
    ("spiffe", "/api/", None, False),
    # 8. smart cards
    ("card", "/cards/", "card", True),
    ("card", "/cards/", "card_clientonly", False),
    ("card", "/cards/", "card_evil", False),
    ("card", "/cards/", "card_nulupn", False),
    ("card", "/cards/", "carol", False),       # a UPN, no card EKU
    ("card", "/cards/", "alice", False),
    ("card", "/cards/", None, False),
]

# how each old recipe refuses (the new ones: always 403)
OLD_REFUSAL = {"un": 403, "fba": 401, "cn": 403, "iss": 403, "san": 403,
               "spiffe": 403, "card": 403}


@pytest.mark.parametrize("case,sub,cert,granted", SAME,
                         ids=["%s%s-%s" % (c, s.rstrip("/"), n)
                              for c, s, n, _ in SAME])
def test_same_decision(mig, case, sub, cert, granted):
    needs_fba(mig, case)
    old, new = pair(mig, case, sub, cert)
    assert (old.granted, new.granted) == (granted, granted), (old, new)
    if not granted:
        assert old.status == OLD_REFUSAL[case], old
        assert new.status == 403, new
        assert "www-authenticate" not in new.r.headers, new.r.headers
    if granted and case == "un":
        # the common name is the user, before and after
        assert old.user and old.user == new.user, (old, new)


def test_same_refusal_of_unverified_certificates_on_optional(mig):
    """With SSLVerifyClient optional, a certificate of an unknown CA fails
    the handshake: old and new recipes never see it."""
    for case, sub in (("un", "/app/"), ("fba", "/app/"), ("cn", "/app/"),
                      ("san", "/mail/"), ("spiffe", "/api/")):
        for cert in ("untrusted_alice", "untrusted_svc", "untrusted_bob"):
            old, new = pair(mig, case, sub, cert)
            assert old.status == new.status == "handshake", (case, cert,
                                                            old, new)


# --------------------------------------------------------------------------
# 1. SSLUserName

def test_un_first_of_several_cns_is_the_old_user(mig):
    old, new = pair(mig, "un", "/app/", "twocn")
    assert (old.status, old.user) == (200, "bob"), old
    assert (new.status, new.user) == (403, None), new


@pytest.mark.parametrize("cert", [None, "emptysubj"])
def test_un_no_user_is_500_before_and_403_after(mig, cert):
    old, new = pair(mig, "un", "/app/", cert)
    assert old.status == 500, old
    assert new.status == 403, new
    lines = mig.log_lines(old.r.test_id)
    assert any("AH00027" in l and "Authentication not configured?" in l
               for l in lines), lines


def test_un_user_under_authtype_certificate(mig):
    """The new recipe's user is the certificate's CN (REMOTE_USER), with
    AuthType Certificate."""
    old, new = pair(mig, "un", "/app/", "alice")
    assert new.header("X-Auth-Type") == "Certificate", new.r.headers
    assert old.user == new.user == "alice"


# --------------------------------------------------------------------------
# 2. FakeBasicAuth

def test_fba_dn_with_a_space_cannot_be_in_a_group_file(mig):
    needs_fba(mig, "fba")
    old, new = pair(mig, "fba", "/app/", "dave")
    assert (old.status, old.user) == (401, "/O=Example/OU=Ops/CN=Dave Smith")
    assert (new.status, new.user) == (200, "dave"), new


def test_fba_user_names(mig):
    needs_fba(mig, "fba")
    for cert, dn, user in (("alice", "/O=Example/CN=alice", "alice"),
                           ("bob", "/O=Example/CN=bob", "bob")):
        old, new = pair(mig, "fba", "/app/", cert)
        assert (old.status, old.user) == (200, dn), old
        assert (new.status, new.user) == (200, user), new


@pytest.mark.parametrize("cert", [None, "carol"])
def test_fba_refusal_is_a_401_challenge_before_and_403_after(mig, cert):
    needs_fba(mig, "fba")
    old, new = pair(mig, "fba", "/app/", cert)
    assert old.status == 401, old
    assert old.header("WWW-Authenticate") == 'Basic realm="Staff"', \
        old.r.headers
    assert new.status == 403 and new.header("WWW-Authenticate") is None, new


def test_fba_string_type_of_a_name(mig):
    """A CN stored as BMPString: another user for FakeBasicAuth, the same
    name (bob) for the map."""
    needs_fba(mig, "fba")
    old, new = pair(mig, "fba", "/app/", "bmpbob")
    assert (old.status, old.user) == (401, "/O=Example/CN=\\x00b\\x00o\\x00b")
    assert (new.status, new.user) == (200, "bob"), new


# --------------------------------------------------------------------------
# 3. CN list

def test_cn_first_of_several_cns(mig):
    old, new = pair(mig, "cn", "/app/", "twocn")
    assert (old.status, new.status) == (200, 403), (old, new)


# --------------------------------------------------------------------------
# 4. issuer and subject DN

@pytest.mark.parametrize("cert", ["partner_eve_lc", "partner_eve_ws"])
def test_iss_issuer_spelt_otherwise_by_the_ca(mig, cert):
    # the certificate verifies: OpenSSL found Partner CA as its issuer
    old, new = pair(mig, "iss", "/partners/", cert)
    assert old.header("X-Ssl-Verify") == "SUCCESS", old.r.headers
    assert (old.status, new.status) == (403, 200), (old, new)
    assert new.header("X-Certauthz-User") == "partner-eve", new.r.headers


@pytest.mark.parametrize("tag", ["space", "lower"])
def test_iss_dn_spelling(mig, tag):
    old = ask(mig, "/iss-old-%s/partners/" % tag, "partner_alice")
    new = ask(mig, "/iss-new-%s/partners/" % tag, "partner_alice")
    assert (old.status, new.status) == (403, 200), (old, new)
    # the rest of the list still works in the old spelling
    assert ask(mig, "/iss-old-%s/partners/" % tag, "partner_eve").status == 200


def test_iss_legacy_dn_string_format(mig):
    old = ask(mig, "/iss-old-legacy/partners/", "partner_alice")
    new = ask(mig, "/iss-new-legacy/partners/", "partner_alice")
    assert (old.status, new.status) == (403, 200), (old, new)


# --------------------------------------------------------------------------
# 5. e-mail and DNS names

@pytest.mark.parametrize("sub,cert", [("/mail/", "multi"),
                                      ("/ci/", "twodns")])
def test_san_only_the_first_name(mig, sub, cert):
    old, new = pair(mig, "san", sub, cert)
    assert (old.status, new.status) == (403, 200), (old, new)


def test_san_email_case(mig):
    old, new = pair(mig, "san", "/mail/", "casealice")
    assert (old.status, new.status) == (403, 200), (old, new)


# --------------------------------------------------------------------------
# 6. SPIFFE ID

def test_spiffe_mod_ssl_has_no_uri_variable(mig):
    r = ask(mig, "/probe/", "svc")
    assert r.status == 200
    assert r.header("X-Probe-San-Uri") == "(null)", r.r.headers


def test_spiffe_printed_extension_is_one_string(mig):
    old, new = pair(mig, "spiffe", "/api/", "svc2")
    assert (old.status, new.status) == (403, 200), (old, new)


# --------------------------------------------------------------------------
# 8. smart cards

def test_card_policy_only_the_new_recipe_reads(mig):
    old, new = pair(mig, "card", "/cards/", "card_nopolicy")
    assert (old.status, new.status) == (200, 403), (old, new)


@pytest.mark.parametrize("cert", ["card_order", "card_mail"])
def test_card_eku_printed_as_one_string(mig, cert):
    old, new = pair(mig, "card", "/cards/", cert)
    assert (old.status, new.status) == (403, 200), (old, new)


def test_card_user_is_the_upn_user_part(mig):
    old, new = pair(mig, "card", "/cards/", "card")
    assert old.user is None, old
    assert new.user == "alice", new
    assert new.header("X-Certauthz-Groups") == "staff", new.r.headers


# --------------------------------------------------------------------------
# SSLVerifyClient optional_no_ca: unverified certificates

def unverified(ans):
    """mod_ssl let the connection in without verifying the certificate
    (GENEROUS, or FAILED:reason)."""
    v = ans.header("X-Ssl-Verify") or ""
    return v == "GENEROUS" or v.startswith("FAILED:")


# (case, location, certificate the old recipe grants unverified)
UNVERIFIED = [
    ("un", "/app/", "untrusted_bob"),
    ("fba", "/app/", "untrusted_bob"),
    ("cn", "/app/", "untrusted_alice"),
    # its CA is only named like the partner CA
    ("iss", "/partners/", "fake_partner_alice"),
    ("san", "/mail/", "untrusted_alice"),
    ("san", "/ci/", "untrusted_alice"),
    ("spiffe", "/api/", "untrusted_svc"),
]


@pytest.mark.parametrize("case,sub,cert", UNVERIFIED,
                         ids=["%s%s" % (c, s.rstrip("/"))
                              for c, s, _ in UNVERIFIED])
def test_unverified_certificate_old_grants_new_refuses(mig, case, sub, cert):
    needs_fba(mig, case)
    old, new = pair(mig, case, sub, cert, port=P_GEN)
    assert unverified(old), old.r.headers
    assert (old.status, new.status) == (200, 403), (old, new)


def test_unverified_verified_ones_still_work_on_optional_no_ca(mig):
    for case, sub, cert in (("un", "/app/", "bob"), ("cn", "/app/", "alice"),
                            ("san", "/mail/", "alice"),
                            ("spiffe", "/api/", "svc")):
        old, new = pair(mig, case, sub, cert, port=P_GEN)
        assert (old.status, new.status) == (200, 200), (case, old, new)


def test_unverified_backend_recipes_refuse(mig):
    old = ask(mig, "/hdr-old/app/x", "untrusted_alice", port=P_GEN)
    assert old.status == 403, old


# --------------------------------------------------------------------------
# 7. backend headers

def backend_headers(ans):
    assert ans.status == 200, ans
    return {k.lower(): v for k, v in json.loads(ans.r.body.decode())}


def hdr_pair(mig, cert, headers=None):
    return (ask(mig, "/hdr-old/app/x", cert, P_MAIN, headers),
            ask(mig, "/hdr-new/app/x", cert, P_HDR, headers))


@pytest.mark.parametrize("cert,user", [("alice", "alice"), ("bob", "bob"),
                                       ("dave", "Dave Smith")])
def test_hdr_same_user(mig, cert, user):
    old, new = hdr_pair(mig, cert)
    assert backend_headers(old)["x-remote-user"] == user
    got = backend_headers(new)
    assert (got["x-remote-user"], got["x-remote-groups"]) == (user, "users")


def test_hdr_no_certificate(mig):
    old, new = hdr_pair(mig, None)
    assert (old.status, new.status) == (403, 403), (old, new)


def test_hdr_no_cn_is_null_before_and_refused_after(mig):
    old, new = hdr_pair(mig, "emptysubj")
    assert backend_headers(old)["x-remote-user"] == "(null)"
    assert new.status == 403, new


def test_hdr_several_cns(mig):
    old, new = hdr_pair(mig, "twocn")
    assert backend_headers(old)["x-remote-user"] == "bob"
    assert new.status == 403, new


def test_hdr_client_sent_headers(mig):
    sent = {"X-Remote-User": "admin", "X_Remote_User": "admin",
            "X-Remote-Groups": "admins", "X_Remote_Groups": "admins"}
    old, new = hdr_pair(mig, "alice", sent)
    got = backend_headers(old)
    assert got["x-remote-user"] == "alice", got
    assert got.get("x_remote_user") == "admin", got     # forwarded
    got = backend_headers(new)
    assert got["x-remote-user"] == "alice", got
    assert got["x-remote-groups"] == "users", got
    assert "x_remote_user" not in got and "x_remote_groups" not in got, got


def test_hdr_early_inside_a_location_does_nothing(mig):
    r = ask(mig, "/hdr-early-in-location/app/x", "alice", P_MAIN,
            {"X_Remote_User": "admin"})
    assert backend_headers(r).get("x_remote_user") == "admin"
