"""The identity to backends (SPEC section 7; issue 13): CertAuthzForward
through a real mod_proxy to a real backend -- a small HTTP server of this
file that answers with the request head it received, byte for byte.

What arrives is compared with an independent encoder (Python's
`cryptography` for the DER, the digest and the subject; base64 and
percent-encoding from the standard library): RFC 9440 Client-Cert and
Client-Cert-Chain (a chain of two intermediates), Envoy's
X-Forwarded-Client-Cert, the mapped user and groups under their default
and configured names.  Client-sent copies of every forwarded header, in
every spelling (case, '_'), are gone, over HTTP/1.1 and HTTP/2, also in a
<Location> that forwards nothing; an unverified certificate gets nothing
forwarded; a deny-listed one never reaches the backend.  Only 127.0.0.1.
"""

import base64
import hashlib
import subprocess
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import certauthz_harness as H


def headers_of(head):
    """[(name, value)] of a raw request head, as sent."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [tuple(l.split(": ", 1)) for l in lines]


def values(head, name):
    """Values of every header spelled like name (case, '_' = '-')."""
    norm = name.lower().replace("_", "-")
    return [v for n, v in headers_of(head)
            if n.lower().replace("_", "-") == norm]


MAP = "\n".join([
    "# forward tests",
    "cn:alice   alice   staff,admins",
    "cn:bob     bob",
    "deny cn:mallory",
    ""])

ALL = ("CertAuthzForward Client-Cert Client-Cert-Chain "
       "X-Forwarded-Client-Cert=Cert,Subject,URI,DNS User Groups")

SPOOFED = {
    "Client-Cert": ":AAAA:", "client_cert": ":BBBB:",
    "CLIENT-CERT-CHAIN": ":CCCC:", "Client_Cert_Chain": ":DDDD:",
    "X-Forwarded-Client-Cert": "Hash=00", "x_forwarded_client_cert": "By=x",
    "X-Remote-User": "admin", "x_remote_user": "admin",
    "X-REMOTE-GROUPS": "admins", "X_Remote_Groups": "admins",
    "X-Auth-User": "root", "x_auth_groups": "wheel",
}
FORWARDED = ["Client-Cert", "Client-Cert-Chain", "X-Forwarded-Client-Cert",
             "X-Remote-User", "X-Remote-Groups", "X-Auth-User",
             "X-Auth-Groups"]


@pytest.fixture(scope="module")
def fwd(workdir, certs):
    base = workdir / "forward"
    d = base / "pki"
    d.mkdir(parents=True)
    root = H.mkcert(d / "root", "--ca", "--subject", "/O=Example/CN=Root CA")
    int1 = H.mkcert(d / "int1", "--ca", "--issuer", root.prefix,
                    "--subject", "/O=Example/CN=Intermediate One")
    int2 = H.mkcert(d / "int2", "--ca", "--issuer", int1.prefix,
                    "--subject", "/O=Example/CN=Intermediate Two")
    made = {
        "alice": H.mkcert(d / "alice", "--issuer", int2.prefix, "--subject",
                          "/O=Example/OU=Eng, R&D/CN=alice", "--san",
                          "uri:spiffe://example.org/ns/a/sa/alice", "--san",
                          "dns:alice.example.com", "--san",
                          "dns:alt.example.com"),
        "bob": H.mkcert(d / "bob", "--issuer", int2.prefix, "--subject",
                        "/O=Example/CN=bob"),
        "carol": H.mkcert(d / "carol", "--issuer", int2.prefix, "--subject",
                          '/O=Example/CN=carol "the" unmapped', "--san",
                          "uri:https://example.org/a;b=c,d"),
        "mallory": H.mkcert(d / "mallory", "--issuer", int2.prefix,
                            "--subject", "/O=Example/CN=mallory"),
    }
    # the client sends its leaf and both intermediates
    sent = {}
    for n, c in made.items():
        chain = d / ("%s-chain" % n)
        with open(str(chain) + ".crt", "w") as f:
            for part in (c.crt, int2.crt, int1.crt):
                f.write(open(part).read())
        with open(str(chain) + ".key", "w") as f:
            f.write(open(c.key).read())
        sent[n] = H.Cert(chain)
        sent[n].der_path = c.der_path
    # alice's certificate alone (no chain): verified against a bundle
    sent["alice-alone"] = made["alice"]
    bundle = d / "bundle.pem"
    bundle.write_text("".join(open(c.crt).read() for c in (root, int1, int2)))
    stranger_ca = H.mkcert(d / "stranger_ca", "--ca", "--subject",
                           "/CN=Stranger CA")
    sent["stranger"] = H.mkcert(d / "stranger", "--issuer",
                                stranger_ca.prefix, "--subject",
                                "/O=Example/CN=alice")
    H.make_tree_public(d)
    backend = H.RawBackend()

    def locs():
        b = "http://127.0.0.1:%d" % backend.port
        return "\n".join([
            '<Location "/all/">\n%s\nRequire all granted\n'
            'ProxyPass "%s/all/"\n</Location>' % (ALL, b),
            '<Location "/named/">\nCertAuthzForward User=X-Auth-User '
            'Groups=X-Auth-Groups\nRequire all granted\n'
            'ProxyPass "%s/named/"\n</Location>' % b,
            '<Location "/plain/">\nRequire all granted\n'
            'ProxyPass "%s/plain/"\n</Location>' % b,
            '<Location "/off/">\nCertAuthzForward Off\nRequire all granted\n'
            'ProxyPass "%s/off/"\n</Location>' % b,
        ])

    def config(srv):
        common = "\n".join([
            'SSLCACertificateFile "%s"' % root.crt,
            "SSLVerifyDepth 4",
            "Protocols h2 http/1.1",
            "CertAuthzMapFile conf/certauthz/forward.map",
            locs()])
        return "\n".join([
            H.ssl_vhost(srv.ports[0], "SSLVerifyClient optional\n" + common),
            H.ssl_vhost(srv.ports[1],
                        "SSLVerifyClient optional_no_ca\n" + common),
            H.ssl_vhost(srv.ports[2], "SSLVerifyClient optional\n" + common
                        .replace(root.crt, str(bundle)))])

    srv = H.ExtraHttpd(base / "server", certs, config, nports=3,
                       files={"conf/certauthz/forward.map": MAP},
                       modules=H.EXTRA_MODULES + ["proxy", "proxy_http"])
    srv.setup()
    try:
        srv.start()
    except Exception:
        backend.close()
        raise
    yield srv, sent, (root, int1, int2), backend
    stopped = srv.stop()
    backend.close()
    assert stopped, "httpd did not stop"


# ---- the independent encoder -----------------------------------------------

def load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def sf_binary(cert):
    return ":%s:" % base64.b64encode(
        cert.public_bytes(serialization.Encoding.DER)).decode()


def xfcc_quote(v, always=False):
    if always or any(c in v for c in ',;="'):
        return '"%s"' % v.replace('"', '\\"')
    return v


def expected_xfcc(cert, fields=("Cert", "Subject", "URI", "DNS")):
    der = cert.public_bytes(serialization.Encoding.DER)
    out = ["Hash=" + hashlib.sha256(der).hexdigest()]
    if "Cert" in fields:
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        out.append("Cert=" + xfcc_quote(urllib.parse.quote(pem, safe=""),
                                        True))
    if "Subject" in fields:
        out.append("Subject=" + xfcc_quote(cert.subject.rfc4514_string(),
                                           True))
    try:
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san and "URI" in fields:
        out += ["URI=" + xfcc_quote(u) for u in san.get_values_for_type(
            x509.UniformResourceIdentifier)]
    if san and "DNS" in fields:
        out += ["DNS=" + xfcc_quote(n) for n in san.get_values_for_type(
            x509.DNSName)]
    return ";".join(out)


# ---- requests --------------------------------------------------------------

def ask(fwd, path, name, port=0, headers=None):
    """GET over HTTP/1.1; the head the backend got."""
    srv, sent = fwd[0], fwd[1]
    r = srv.client.get(srv.ports[port], path,
                       cert=sent[name] if name else None, headers=headers)
    assert r.status == 200, (r, srv.error_log_tail())
    return r.body


def ask_h2(fwd, path, name, headers):
    srv, sent = fwd[0], fwd[1]
    cmd = [H.CURL, "-sS", "--http2", "--cacert", srv.certs["root_ca"].crt,
           "--max-time", "30", "-w", "\n%{http_version} %{response_code}"]
    if name:
        cmd += ["--cert", sent[name].crt, "--key", sent[name].key]
    for k, v in headers.items():
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd.append("https://127.0.0.1:%d%s" % (srv.ports[0], path))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    body, _, status = p.stdout.rpartition(b"\n")
    assert status == b"2 200", (status, body)
    return body


# ---- tests -----------------------------------------------------------------

def test_every_header_as_the_encoder_writes_it(fwd):
    _, _, (root, int1, int2), _ = fwd
    head = ask(fwd, "/all/x", "alice")
    alice = load(fwd[1]["alice"].crt)
    assert values(head, "Client-Cert") == [sf_binary(alice)]
    # the chain without the leaf, as the client sent it
    assert values(head, "Client-Cert-Chain") == [
        "%s, %s" % (sf_binary(load(int2.crt)), sf_binary(load(int1.crt)))]
    assert values(head, "X-Forwarded-Client-Cert") == [expected_xfcc(alice)]
    assert values(head, "X-Remote-User") == ["alice"]
    assert values(head, "X-Remote-Groups") == ["staff,admins"]


def test_xfcc_quotes_a_subject_with_quotes(fwd):
    head = ask(fwd, "/all/x", "carol")
    carol = load(fwd[1]["carol"].crt)
    assert values(head, "X-Forwarded-Client-Cert") == [expected_xfcc(carol)]
    # the DN's own escape (RFC 4514: \") escaped again for XFCC
    assert r'CN=carol \\"the\\" unmapped' in values(
        head, "X-Forwarded-Client-Cert")[0]
    # verified, unmapped: the certificate, no user
    assert values(head, "X-Remote-User") == []
    assert values(head, "Client-Cert") == [sf_binary(carol)]


def test_uri_with_separators_is_quoted(fwd):
    head = ask(fwd, "/all/x", "carol")
    xf = values(head, "X-Forwarded-Client-Cert")[0]
    assert xf.endswith(';URI="https://example.org/a;b=c,d"'), xf


def test_no_chain_no_chain_header(fwd):
    # the client sends its certificate only; the server has the
    # intermediates: mod_ssl has no chain to pass on
    head = ask(fwd, "/all/x", "alice-alone", port=2)
    alice = load(fwd[1]["alice"].crt)
    assert values(head, "Client-Cert") == [sf_binary(alice)]
    assert values(head, "Client-Cert-Chain") == []
    assert values(head, "X-Remote-User") == ["alice"]


def test_configured_names(fwd):
    head = ask(fwd, "/named/x", "alice")
    assert values(head, "X-Auth-User") == ["alice"]
    assert values(head, "X-Auth-Groups") == ["staff,admins"]
    for n in ("Client-Cert", "X-Remote-User", "X-Forwarded-Client-Cert"):
        assert values(head, n) == [], n


@pytest.mark.parametrize("path", ["/all/x", "/named/x", "/plain/x",
                                  "/off/x"])
def test_spoofed_headers_removed_over_http1(fwd, path):
    head = ask(fwd, path, "bob", headers=SPOOFED)
    got = {n: values(head, n) for n in FORWARDED}
    bob = load(fwd[1]["bob"].crt)
    want = {n: [] for n in FORWARDED}
    if path == "/all/x":
        want.update({"Client-Cert": [sf_binary(bob)],
                     "Client-Cert-Chain": got["Client-Cert-Chain"],
                     "X-Forwarded-Client-Cert": [expected_xfcc(bob)],
                     "X-Remote-User": ["bob"], "X-Remote-Groups": [""]})
        assert len(got["Client-Cert-Chain"]) == 1
    if path == "/named/x":
        want.update({"X-Auth-User": ["bob"], "X-Auth-Groups": [""]})
    assert got == want, head.decode("latin-1")


def test_spoofed_headers_removed_over_http2(fwd):
    if not H.http2_supported_by_curl():
        pytest.skip("curl without HTTP/2")
    spoofed = {k.lower(): v for k, v in SPOOFED.items()}
    head = ask_h2(fwd, "/all/x", "alice", spoofed)
    alice = load(fwd[1]["alice"].crt)
    assert values(head, "Client-Cert") == [sf_binary(alice)]
    assert values(head, "X-Forwarded-Client-Cert") == [expected_xfcc(alice)]
    assert values(head, "X-Remote-User") == ["alice"]
    assert values(head, "X-Auth-User") == []
    head = ask_h2(fwd, "/plain/x", None, spoofed)
    for n in FORWARDED:
        assert values(head, n) == [], (n, head)


def test_unverified_certificate_forwards_nothing(fwd):
    # optional_no_ca lets a stranger's certificate through, unverified
    head = ask(fwd, "/all/x", "stranger", port=1, headers=SPOOFED)
    for n in FORWARDED:
        assert values(head, n) == [], (n, head)
    # the same vhost forwards a verified one
    assert values(ask(fwd, "/all/x", "alice", port=1),
                  "X-Remote-User") == ["alice"]


def test_no_certificate_forwards_nothing(fwd):
    head = ask(fwd, "/all/x", None, headers=SPOOFED)
    for n in FORWARDED:
        assert values(head, n) == [], (n, head)


def test_deny_listed_never_reaches_the_backend(fwd):
    srv, sent, _, backend = fwd
    before = backend.count()
    r = srv.client.get(srv.ports[0], "/all/x", cert=sent["mallory"],
                       headers=SPOOFED)
    assert r.status == 403, r
    assert backend.count() == before


@pytest.mark.parametrize("args,needle", [
    ("Client-Cert=Foo", "takes no '='"),
    ("Bogus", "unknown header 'Bogus'"),
    ("User=X_Bad", "not a header name"),
    ("X-Forwarded-Client-Cert=Subject,Chain", "field 'Chain'"),
    ("User Off", "Off takes no other word"),
    ("User User", "given twice"),
    ("User=X-Same Groups=x-same", "two values in one header"),
])
def test_bad_directive(workdir, args, needle):
    root = workdir / "forward-ct" / str(abs(hash(args)))
    rc, out, _ = H.configtest(root, "# line\nCertAuthzForward %s\n" % args)
    assert rc != 0, out
    assert needle in out and "configtest.conf" in out, out
