"""Harness of the mod_certauthz real-server tests.

Everything the tests need that is not a test: paths and environment, the
certificate factory (t/mkcert), the httpd instance (configuration, start,
stop, logs), configtest runs, and the HTTP/1.1 (Python ssl) and HTTP/2
(curl) clients.  Standard library only.

Every wait is bounded in count and time; only 127.0.0.1 is used.
"""

import atexit
import base64
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

# --------------------------------------------------------------------------
# environment

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent.parent

SRCDIR = Path(os.environ.get("CERTAUTHZ_SRCDIR") or _REPO).resolve()
BUILDDIR = Path(os.environ.get("CERTAUTHZ_BUILDDIR") or SRCDIR).resolve()
# the version, written once: configure.ac's AC_INIT
VERSION = re.search(r"AC_INIT\(\[mod_certauthz\], \[([^]]+)\]",
                    (SRCDIR / "configure.ac").read_text()).group(1)
HTTPD = os.environ.get("CERTAUTHZ_HTTPD") or "/usr/sbin/apache2"
HTTPD_MODULES = Path(os.environ.get("CERTAUTHZ_HTTPD_MODULES")
                     or "/usr/lib/apache2/modules")
MODULE_SO = BUILDDIR / ".libs" / "mod_certauthz.so"
MKCERT = BUILDDIR / "t" / "mkcert"
CURL = shutil.which("curl")

IS_ROOT = os.geteuid() == 0


def httpd_env():
    """Environment for httpd processes.  CERTAUTHZ_HTTPD_PRELOAD (the
    sanitizer runtime, for a module built with --enable-sanitizers) becomes
    httpd's LD_PRELOAD only: pytest and the clients do not get it."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if os.environ.get("CERTAUTHZ_HTTPD_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["CERTAUTHZ_HTTPD_PRELOAD"]
    return env

# modules of the main test server, in load order (certauthz after ssl)
SERVER_MODULES = [
    "mpm_event", "unixd", "authz_core", "authn_core", "authz_user",
    "authz_groupfile", "authz_host", "socache_shmcb", "ssl", "http2",
    "headers", "alias", "mime", "env", "log_config",
]


def module_lines(names):
    """LoadModule lines for httpd's modules `names` plus mod_certauthz."""
    out = []
    for name in names:
        so = HTTPD_MODULES / ("mod_%s.so" % name)
        # some modules (unixd, log_config) may be compiled in
        out.append("<IfModule !%s_module>\n    LoadModule %s_module %s\n"
                   "</IfModule>" % (name, name, so))
    out.append("LoadModule certauthz_module %s" % MODULE_SO)
    return "\n".join(out)


def make_public_dir(prefix):
    """A fresh directory readable by httpd's children (User nobody)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def make_tree_public(path):
    """chmod a tree: directories 0755, files 0644 (children run as nobody)."""
    path = Path(path)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o644)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def new_test_id():
    return "t" + uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------
# certificates

class Cert:
    """One certificate made by t/mkcert: PREFIX.crt / .key / .der."""

    def __init__(self, prefix):
        self.prefix = str(prefix)
        self.name = Path(prefix).name
        self.crt = self.prefix + ".crt"
        self.key = self.prefix + ".key"
        self.der_path = self.prefix + ".der"

    @property
    def der(self):
        with open(self.der_path, "rb") as f:
            return f.read()

    @property
    def sha256(self):
        """Upper-case hex SHA-256 of the DER certificate, no colons."""
        return hashlib.sha256(self.der).hexdigest().upper()

    @property
    def spki_pin(self):
        """base64 SHA-256 of the DER SubjectPublicKeyInfo (pin-sha256)."""
        return base64.b64encode(
            hashlib.sha256(spki_der(self.der)).digest()).decode()

    @property
    def sha256_colons(self):
        h = self.sha256
        return ":".join(h[i:i + 2] for i in range(0, len(h), 2))

    def __repr__(self):
        return "Cert(%s)" % self.name


def _der_tlv(buf, off):
    """(tag, header length, content length) of the DER element at off."""
    tag = buf[off]
    first = buf[off + 1]
    if first < 0x80:
        return tag, 2, first
    n = first & 0x7F
    return tag, 2 + n, int.from_bytes(buf[off + 2:off + 2 + n], "big")


def spki_der(cert_der):
    """The DER SubjectPublicKeyInfo of a DER certificate."""
    _, hl, _ = _der_tlv(cert_der, 0)              # Certificate
    off = hl
    _, hl, _ = _der_tlv(cert_der, off)            # tbsCertificate
    off += hl
    index = 0
    while True:
        tag, hl, cl = _der_tlv(cert_der, off)
        if index == 0 and tag == 0xA0:            # [0] version: skip
            off += hl + cl
            continue
        # serial, signature, issuer, validity, subject, spki
        if index == 5:
            return cert_der[off:off + hl + cl]
        off += hl + cl
        index += 1


def mkcert(out_prefix, *args):
    """Run t/mkcert --out PREFIX ARGS...; returns the Cert."""
    cmd = [str(MKCERT), "--out", str(out_prefix)] + [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError("mkcert failed (%d): %s\n%s" % (
            p.returncode, " ".join(cmd), p.stderr.decode(errors="replace")))
    return Cert(out_prefix)


def ntds_ext(sid):
    """mkcert --ext value: Microsoft's NTDS CA security extension
    (1.3.6.1.4.1.311.25.2) holding the SID text sid."""
    text = sid.encode()
    inner = bytes([0x04, len(text)]) + text
    oid = bytes.fromhex("060a2b060104018237190201")
    on = oid + bytes([0xa0, len(inner)]) + inner
    return "1.3.6.1.4.1.311.25.2:" + (
        bytes([0x30, len(on) + 2, 0xa0, len(on)]) + on).hex()


# Subjects/issuers of the test PKI.  DNs in RFC 4514 form as the map and
# Require cert-issuer spell them.
ROOT_CA_SUBJECT = "/O=Example/CN=Example Root CA"
ROOT_CA_DN = "CN=Example Root CA,O=Example"
PARTNER_CA_SUBJECT = "/O=Partner Inc/CN=Partner CA"
PARTNER_CA_DN = "CN=Partner CA,O=Partner Inc"
UNTRUSTED_CA_SUBJECT = "/O=Evil/CN=Untrusted CA"

LAPTOP_SERIAL = "4F2A9C01"


def make_pki(d):
    """Make every certificate the tests use, in directory d.  Returns a dict
    name -> Cert."""
    d = Path(d)
    c = {}

    def mk(name, *args):
        c[name] = mkcert(d / name, *args)
        return c[name]

    mk("root_ca", "--ca", "--subject", ROOT_CA_SUBJECT, "--days", "3650")
    mk("partner_ca", "--ca", "--subject", PARTNER_CA_SUBJECT, "--days", "3650")
    mk("untrusted_ca", "--ca", "--subject", UNTRUSTED_CA_SUBJECT,
       "--days", "3650")
    root = d / "root_ca"
    partner = d / "partner_ca"
    untrusted = d / "untrusted_ca"

    mk("server", "--issuer", root, "--subject", "/O=Example/CN=localhost",
       "--san", "dns:localhost", "--san", "ip:127.0.0.1")

    leaves = {
        # name: (issuer, subject, extra args)
        "alice": (root, "/O=Example/CN=alice",
                  ["--san", "email:alice@example.com"]),
        "bob": (root, "/O=Example/CN=bob", []),
        "svc": (root, "/O=Example/CN=api",
                ["--san", "uri:spiffe://example.org/ns/prod/sa/api"]),
        "carol": (root, "/O=Example/CN=carol",
                  ["--san", "upn:carol@corp.example.com"]),
        "iphost": (root, "/O=Example/CN=iphost",
                   ["--san", "ip:127.0.0.1", "--san", "ip:::1"]),
        "dave": (root, "/O=Example/OU=Ops/CN=Dave Smith", []),
        "builder": (root, "/O=Example/CN=builder",
                    ["--san", "dns:x.build.example.com"]),
        "deepbuilder": (root, "/O=Example/CN=deepbuilder",
                        ["--san", "dns:x.y.build.example.com"]),
        "payments": (root, "/O=Example/CN=svc-payments", []),
        "laptop": (root, "/O=Example/CN=laptop",
                   ["--serial", LAPTOP_SERIAL]),
        "eve": (root, "/O=Example/CN=eve", []),
        "zed": (root, "/O=Example/CN=zed", ["--san", "email:zed@example.org"]),
        "kiosk": (root, "/O=Example/CN=kiosk", []),
        "pinned": (root, "/O=Example/CN=pinned", []),
        "multi": (root, "/O=Example/CN=multi",
                  ["--san", "email:other@example.net",
                   "--san", "email:multi@example.com"]),
        "worker": (root, "/O=Example/CN=worker",
                   ["--san", "uri:spiffe://example.org/ns/dev/sa/worker",
                    "--san", "upn:dan@corp.example.com"]),
        "mvrdn": (root, "/O=Example/OU=Eng+CN=mv", []),
        "partner_alice": (partner, "/O=Partner Inc/CN=alice", []),
        "partner_eve": (partner, "/O=Partner Inc/CN=eve", []),
        "untrusted_bob": (untrusted, "/O=Example/CN=bob", []),
        "expired_bob": (root, "/O=Example/CN=bob", ["--expired"]),
        "twocn": (root, "/O=Example/CN=bob/CN=twocn", []),
        "nulcn": (root, "/O=Example/CN=bob\\x00evil", []),
        "nulsan": (root, "/O=Example/CN=nulsan",
                   ["--san", "email:alice@example.com\\x00.evil.com"]),
        # hostile fields a CA can issue (test_hostile_certs.py)
        "bmpbob": (root, "/O=Example/CN#bmp=bob", []),
        "t61cafe": (root, "/O=Example/CN#t61=caf\\xe9", []),
        "sans1000": (root, "/O=Example/CN=sans1000",
                     ["--san-count", "1000:h%d.example.net",
                      "--san", "email:alice@example.com"]),
        "emptysubj": (root, "", ["--san", "email:alice@example.com"]),
        "emptysubj2": (root, "", ["--san", "dns:nobody.example.net"]),
        "upnia5": (root, "/O=Example/CN=upnia5",
                   ["--san", "upn-ia5:carol@corp.example.com"]),
        "stardns": (root, "/O=Example/CN=stardns",
                    ["--san", "dns:*.build.example.com"]),
        "nuldns": (root, "/O=Example/CN=nuldns",
                   ["--san", "dns:x.build.example.com\\x00.evil"]),
        "nuluri": (root, "/O=Example/CN=nuluri",
                   ["--san", "uri:spiffe://example.org/ns/prod/sa/api\\x00x"]),
        "nulupn": (root, "/O=Example/CN=nulupn",
                   ["--san", "upn:carol@corp.example.com\\x00x"]),
        "mvbob": (root, "/O=Example/OU=Eng+CN=bob", []),
        # issued by Partner CA, issuer field spelt in other case / spacing
        # (OpenSSL still finds Partner CA: it verifies)
        "partner_eve_lc": (partner, "/O=Partner Inc/CN=eve",
                           ["--issuer-name", "/O=partner inc/CN=partner ca"]),
        "partner_eve_ws": (partner, "/O=Partner Inc/CN=eve",
                           ["--issuer-name", "/O=Partner  Inc/CN= Partner CA"]),
        "nlcn": (root, "/O=Example/CN=mallory\\x0aInjected: 1", []),
        "casealice": (root, "/O=Example/CN=Alice",
                      ["--san", "email:ALICE@EXAMPLE.COM"]),
    }
    for name, (issuer, subject, extra) in leaves.items():
        mk(name, "--issuer", issuer, "--subject", subject, *extra)
    return c


# --------------------------------------------------------------------------
# the map files of the main server

def main_map_lines(certs):
    """The main map, as a list of lines (line N is lines[N-1])."""
    return [
        "# mod_certauthz server tests: main map (generated)",
        "email:alice@example.com                  alice        staff,admins",
        "cn:bob                                   bob          staff",
        "uri:spiffe://example.org/ns/prod/sa/api  api-prod     services",
        "upn:carol@corp.example.com               carol        staff",
        'dn:"CN=Dave Smith,OU=Ops,O=Example"      dave         ops',
        'dn:"CN=twocn,CN=bob,O=Example"           twocn        staff',
        "ip:0:0:0:0:0:0:0:1                       ip-host      hosts",
        "sha256:%s  kiosk-7" % certs["kiosk"].sha256_colons,
        "spki:%s  pinned-user  pins" % certs["pinned"].spki_pin,
        "dns:*.build.example.com                  ci-robot     robots",
        "cn~^svc-([a-z0-9-]+)$                    svc-$1       services",
        "cn:laptop                                laptop-user  staff",
        "cn:eve                                   eve          staff",
        "deny serial:%s                     # a lost laptop" % LAPTOP_SERIAL,
        "",
        '[issuer "%s"]' % PARTNER_CA_DN,
        "deny cn:eve",
        "cn~^(.+)$                                partner-$1   partners",
    ]


def line_of(lines, needle):
    """1-based number of the first line of `lines` containing needle."""
    for i, l in enumerate(lines):
        if needle in l:
            return i + 1
    raise KeyError(needle)


ALT_MAP = "email:alice@example.com  alice-alt  staff\n"
RELOAD_MAP_V1 = "email:alice@example.com  alice-v1  v1\n"
RELOAD_MAP_V2 = "# changed\nemail:alice@example.com  alice-v2  v2\n"
HT_MAP = "# .htaccess map\nemail:alice@example.com  alice-ht  htgroup\n"
BAD_HT_MAP = "# broken on purpose\nfoo:bar  someone\n"
GROUP_FILE = "admins: alice\nstaff: alice bob twocn\nops: dave\n"


# --------------------------------------------------------------------------
# the locations of the main server
#
# (url path, body of the <Location>).  Each gets a directory in the
# document root holding ok.txt, so a granted request is a 200.

MAP = "CertAuthzMapFile conf/certauthz/main.map"

LOCATIONS = [
    ("/ping", "Require all granted"),
    # ---- providers, each alone
    ("/p/user", MAP + "\nRequire cert-user alice dave"),
    ("/p/group", MAP + "\nRequire cert-group admins"),
    ("/p/group-robots", MAP + "\nRequire cert-group robots"),
    ("/p/mapped", MAP + "\nRequire cert-mapped"),
    ("/p/cn", 'Require cert-cn bob "Dave Smith"'),
    ("/p/cn-glob", "Require cert-cn svc-*"),
    ("/p/cn-star", "Require cert-cn *"),
    ("/p/cn-case", "Require cert-cn BOB"),
    ("/p/cn-mv", "Require cert-cn mv"),
    ("/p/cn-laptop", "Require cert-cn laptop"),
    ("/p/cn-laptop-map", MAP + "\nRequire cert-cn laptop"),
    ("/p/email", "Require cert-email alice@EXAMPLE.com"),
    ("/p/email-glob", "Require cert-email *@example.com"),
    ("/p/email-star", "Require cert-email *"),
    ("/p/dns", "Require cert-dns *.build.example.com"),
    ("/p/dns-case", "Require cert-dns X.Build.Example.COM"),
    ("/p/uri", "Require cert-uri spiffe://example.org/ns/prod/sa/api"),
    ("/p/uri-case", "Require cert-uri spiffe://example.org/ns/prod/sa/API"),
    ("/p/upn", "Require cert-upn carol@CORP.example.com"),
    ("/p/issuer-partner", 'Require cert-issuer "%s"' % PARTNER_CA_DN),
    ("/p/issuer-root", 'Require cert-issuer "cn=Example Root CA, o=Example"'),
    # cert-sha256 arguments are filled in by the server (real fingerprints)
    ("/p/sha256", "Require cert-sha256 @BOB_SHA256_COLONS_LOWER@"),
    ("/p/sha256-plain", "Require cert-sha256 @BOB_SHA256@"),
    # ---- AuthType Certificate
    ("/a/valid", "AuthType Certificate\n" + MAP + "\nRequire valid-user"),
    ("/a/user", "AuthType Certificate\n" + MAP + "\nRequire user alice"),
    ("/a/group", "AuthType Certificate\n" + MAP
     + "\nAuthGroupFile conf/certauthz/groups\nRequire group admins"),
    ("/a/unmapped-deny", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped Deny\nRequire valid-user"),
    ("/a/unmapped-default", "AuthType Certificate\n" + MAP
     + "\nRequire valid-user"),
    ("/a/unmapped-cn", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped CN\nRequire valid-user"),
    ("/a/unmapped-email", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped email\nRequire valid-user"),
    ("/a/unmapped-dn", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped DN\nRequire valid-user"),
    ("/a/unmapped-uri", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped URI\nRequire valid-user"),
    ("/a/unmapped-upn", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped UPN\nRequire valid-user"),
    # migrating from SSLUserName: AuthType Certificate must still win
    ("/a/sslusername", "SSLUserName SSL_CLIENT_S_DN_CN\n"
     "AuthType Certificate\n" + MAP + "\nRequire valid-user"),
    ("/a/unmapped-cn-mapped", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped CN\nRequire cert-mapped"),
    ("/a/unmapped-cn-certuser", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped CN\nRequire cert-user zed"),
    ("/a/unmapped-cn-user", "AuthType Certificate\n" + MAP
     + "\nCertAuthzUnmapped CN\nRequire user zed"),
    # ---- compositions
    ("/c/all", MAP + "\n<RequireAll>\n  Require cert-group staff\n"
     "  Require ip 127.0.0.1\n</RequireAll>"),
    ("/c/all-denied", MAP + "\n<RequireAll>\n  Require cert-group staff\n"
     "  Require all denied\n</RequireAll>"),
    ("/c/any", MAP + "\n<RequireAny>\n  Require cert-user bob\n"
     "  Require cert-uri spiffe://example.org/ns/prod/sa/api\n</RequireAny>"),
    ("/c/any-ip", MAP + "\n<RequireAny>\n  Require cert-user nosuchuser\n"
     "  Require ip 127.0.0.1\n</RequireAny>"),
    ("/c/none", MAP + "\n<RequireAll>\n  Require cert-mapped\n"
     "  <RequireNone>\n    Require cert-group admins\n  </RequireNone>\n"
     "</RequireAll>"),
    ("/c/not", "<RequireAll>\n  Require ip 127.0.0.1\n"
     "  Require not cert-cn bob\n</RequireAll>"),
    ("/c/not-map", MAP + "\n<RequireAll>\n  Require ip 127.0.0.1\n"
     "  Require not cert-cn eve\n</RequireAll>"),
    ("/c/none-map", MAP + "\n<RequireAll>\n  Require ip 127.0.0.1\n"
     "  <RequireNone>\n    Require cert-user eve\n  </RequireNone>\n"
     "</RequireAll>"),
    ("/c/issuer-and-group", MAP + "\n<RequireAll>\n"
     '  Require cert-issuer "%s"\n  Require cert-group partners\n'
     "</RequireAll>" % PARTNER_CA_DN),
    # AuthMerging And: parent's and child's Require both apply
    ("/c/merge", MAP + "\nRequire cert-group staff"),
    ("/c/merge/child", "AuthMerging And\nRequire cert-user bob alice-nope"),
    # ---- environment
    ("/e/on", MAP + "\nRequire all granted"),
    ("/e/off", MAP + "\nCertAuthzSetEnv Off\nRequire all granted"),
    ("/e/nomap", "Require all granted"),
    ("/e/abs", 'CertAuthzMapFile "@ROOT@/conf/certauthz/main.map"\n'
     "Require all granted"),
    ("/e/authtype", "AuthType Certificate\n" + MAP + "\nRequire valid-user"),
    # ---- inheritance across nested Locations
    ("/i", MAP + "\nCertAuthzSetEnv Off\nCertAuthzUnmapped CN\n"
     "AuthType Certificate\nRequire valid-user"),
    ("/i/env", "CertAuthzSetEnv On"),
    ("/i/map", "CertAuthzMapFile conf/certauthz/alt.map"),
    ("/i/unmapped", "CertAuthzUnmapped Deny"),
    # ---- no CertAuthzMapFile in scope
    ("/nomap/user", "Require cert-user alice"),
    ("/nomap/group", "Require cert-group admins"),
    ("/nomap/mapped", "Require cert-mapped"),
    # ---- audit
    ("/audit/all", MAP + "\nCertAuthzAudit All\nRequire cert-user alice"),
    ("/audit/deny", MAP + "\nCertAuthzAudit Deny\nRequire cert-user alice"),
    ("/audit/default", MAP + "\nRequire cert-user alice"),
    ("/audit/off", MAP + "\nCertAuthzAudit Off\nRequire cert-user alice"),
    ("/audit/authtype", "AuthType Certificate\n" + MAP + "\nCertAuthzAudit All"
     "\nCertAuthzUnmapped CN\nRequire valid-user"),
    # ---- maps changed by the tests
    ("/r", "CertAuthzMapFile conf/certauthz/reload.map\nRequire all granted"),
    ("/live", "CertAuthzMapFile conf/certauthz/live.map\nRequire all granted"),
]

# directories served only by the renegotiation vhost
RENEG_DIRS = ["reneg"]

# directories configured by .htaccess files (AllowOverride AuthConfig)
HTACCESS = {
    "ht": "CertAuthzMapFile conf/certauthz/ht.map\nRequire cert-group htgroup\n",
    "htbad": "CertAuthzMapFile conf/certauthz/bad-ht.map\n"
             "Require cert-mapped\n",
}


# --------------------------------------------------------------------------
# responses and clients

class Response:
    def __init__(self, status, headers, body, test_id, protocol="HTTP/1.1",
                 remote_port=None):
        self.status = status
        self.headers = headers          # dict, lower-case names
        self.body = body
        self.test_id = test_id
        self.protocol = protocol
        self.remote_port = remote_port

    def header(self, name):
        """A response header, None when absent, empty or mod_headers'
        "(null)" for an unset variable."""
        v = self.headers.get(name.lower())
        if v is None or v == "" or v == "(null)":
            return None
        return v

    @property
    def user(self):
        return self.header("X-Certauthz-User")

    @property
    def groups(self):
        return self.header("X-Certauthz-Groups")

    @property
    def rule(self):
        return self.header("X-Certauthz-Rule")

    @property
    def cert_sha256(self):
        return self.header("X-Certauthz-Sha256")

    @property
    def ssl_verify(self):
        """mod_ssl's SSL_CLIENT_VERIFY for the request."""
        return self.header("X-Ssl-Verify")

    @property
    def remote_user(self):
        return self.header("X-Remote-User")

    def __repr__(self):
        return "Response(%s %s, id=%s, user=%r, remote_user=%r)" % (
            self.protocol, self.status, self.test_id, self.user,
            self.remote_user)


class HandshakeFailed(Exception):
    """The TLS handshake or the first read failed (certificate refused)."""


class NoResponse(Exception):
    """The server closed a raw_tls_get() connection without answering."""


TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def tls_context(ca_file, cert=None, tls=None, pha=False):
    """A client SSLContext trusting ca_file.  cert: a Cert (client
    certificate and key) or None; tls: None (negotiate), "1.2", "1.3" or an
    ssl.TLSVersion, which becomes both the minimum and the maximum version;
    pha: offer TLS 1.3 post-handshake authentication."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if tls is not None:
        v = TLS_VERSIONS.get(tls, tls)
        ctx.minimum_version = ctx.maximum_version = v
    if pha:
        ctx.post_handshake_auth = True
    if cert is not None:
        ctx.load_cert_chain(cert.crt, cert.key)
    return ctx


def raw_tls_get(ctx, port, path, sni="localhost", host=None, session=None,
                errors_as_result=False):
    """One GET on a new TLS connection to 127.0.0.1:port with ctx, offering
    `session` for resumption (Python's ssl, for the tests that need the
    session object and whether it was reused).  sni: server_hostname (an IP
    address sends no SNI); host: the Host header (default sni).  Returns
    (status, headers, session, session_reused); headers maps lower-case
    names to values, an empty or "(null)" value (unset variable) to None.
    TLS and socket errors propagate; NoResponse when the server closes the
    connection without a byte.  With errors_as_result, a TLS or socket error
    after the TCP connect, or no response, gives ("ERR", {"error": text},
    None, False) instead (a failing connect still raises)."""
    test_id = new_test_id()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        try:
            ss = ctx.wrap_socket(sock, server_hostname=sni, session=session)
            ss.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nX-Test-Id: %s\r\n"
                        "Connection: close\r\n\r\n"
                        % (path, host or sni, test_id)).encode())
            data = b""
            for _ in range(1000):
                chunk = ss.recv(65536)
                if not chunk:
                    break
                data += chunk
            sess, reused = ss.session, ss.session_reused
            ss.close()
        except (ssl.SSLError, ConnectionError, socket.timeout) as e:
            if not errors_as_result:
                raise
            return "ERR", {"error": str(e)}, None, False
    finally:
        sock.close()
    if not data:
        if errors_as_result:
            return "ERR", {"error": "no response"}, None, False
        raise NoResponse("no response on port %d %s" % (port, path))
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        v = v.strip()
        headers[k.strip().lower()] = None if v in ("", "(null)") else v
    return status, headers, sess, reused


class Client:
    """HTTP/1.1 over TLS with Python's ssl module."""

    def __init__(self, ca_file):
        self.ca_file = ca_file
        self._ctx = {}

    def context(self, cert=None, tls=None):
        """tls: None (negotiate, TLS 1.3 here), "1.2" or "1.3"."""
        key = (cert.prefix if cert else None, tls)
        if key not in self._ctx:
            self._ctx[key] = tls_context(self.ca_file, cert, tls)
        return self._ctx[key]

    def get(self, port, path, cert=None, headers=None, timeout=15, tls=None):
        """One request on a new connection.  Raises HandshakeFailed when the
        server refuses the TLS connection."""
        test_id = new_test_id()
        hdrs = {"X-Test-Id": test_id}
        hdrs.update(headers or {})
        conn = http.client.HTTPSConnection("127.0.0.1", port,
                                           context=self.context(cert, tls),
                                           timeout=timeout)
        try:
            try:
                conn.request("GET", path, headers=hdrs)
                local_port = conn.sock.getsockname()[1]
                r = conn.getresponse()
                body = r.read()
            except (ssl.SSLError, ConnectionError,
                    http.client.RemoteDisconnected) as e:
                raise HandshakeFailed("%s: %r" % (path, e))
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()},
                            body, test_id, "HTTP/1.1", local_port)
        finally:
            conn.close()

    def get_many(self, port, paths, cert=None, timeout=15):
        """Several requests on ONE HTTP/1.1 keep-alive connection."""
        out = []
        conn = http.client.HTTPSConnection("127.0.0.1", port,
                                           context=self.context(cert),
                                           timeout=timeout)
        try:
            for path in paths:
                test_id = new_test_id()
                conn.request("GET", path, headers={"X-Test-Id": test_id})
                local_port = conn.sock.getsockname()[1]
                r = conn.getresponse()
                body = r.read()
                out.append(Response(r.status,
                                    {k.lower(): v for k, v in r.getheaders()},
                                    body, test_id, "HTTP/1.1", local_port))
        finally:
            conn.close()
        return out


_CURL_FIELDS = ["http_version", "response_code", "num_connects",
                "local_port", "x-certauthz-user", "x-certauthz-groups",
                "x-remote-user"]


def curl_h2(port, paths, ca_file, cert=None, parallel=False, timeout=30):
    """GET every path with one curl run over HTTP/2 (connection reused).
    Returns a list of Responses (body not kept), in the order of paths."""
    if CURL is None:
        raise RuntimeError("curl not found")
    test_id = new_test_id()
    fmt = ("%{http_version}\t%{response_code}\t%{num_connects}\t"
           "%{local_port}\t%header{x-certauthz-user}\t"
           "%header{x-certauthz-groups}\t%header{x-remote-user}\t"
           "%{url}\\n")
    cmd = [CURL, "-sS", "--http2", "--cacert", ca_file,
           "--max-time", str(timeout), "-H", "X-Test-Id: " + test_id,
           "-w", fmt]
    if cert is not None:
        cmd += ["--cert", cert.crt, "--key", cert.key]
    if parallel:
        cmd += ["--parallel", "--parallel-max", "8"]
    for p in paths:
        cmd += ["-o", "/dev/null", "https://127.0.0.1:%d%s" % (port, p)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 10)
    if proc.returncode != 0:
        raise RuntimeError("curl failed (%d): %s" % (
            proc.returncode, proc.stderr.decode(errors="replace")))
    lines = [l for l in proc.stdout.decode().split("\n") if l]
    by_url = {}
    for l in lines:
        f = [x.strip() for x in l.split("\t")]
        url = f[-1]
        d = dict(zip(_CURL_FIELDS, f[:-1]))
        hdrs = {k: v for k, v in d.items() if k.startswith("x-")}
        r = Response(int(d["response_code"]), hdrs, b"", test_id,
                     "HTTP/" + d["http_version"], int(d["local_port"]))
        r.num_connects = int(d["num_connects"])
        by_url.setdefault(url, []).append(r)
    out = []
    for p in paths:
        out.append(by_url["https://127.0.0.1:%d%s" % (port, p)].pop(0))
    return out


# --------------------------------------------------------------------------
# the httpd instance

def run_concurrently(names, fn, timeout=60):
    """Call fn(name) for every name at the same time, each in its own
    thread (clients with different certificates at once), waiting up to
    `timeout` s for each thread.  Asserts that none is still running
    ("curl hung") and that none raised (the exceptions are listed); returns
    {name: fn(name)}."""
    results, errors = {}, []

    def run(name):
        try:
            results[name] = fn(name)
        except Exception as e:  # reported below
            errors.append((name, e))

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "curl hung"
    assert not errors, errors
    return results


class StartError(RuntimeError):
    pass


SERVER_PREAMBLE = """\
# generated by t/server/certauthz_harness.py
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
ServerName localhost
{user}
{listen}
{modules}

{mpm}
MaxConnectionsPerChild 0
Timeout 20
KeepAlive On
KeepAliveTimeout 5
GracefulShutdownTimeout 3

TypesConfig conf/mime.types
ErrorLog "{r}/logs/error.log"
LogLevel warn certauthz:debug ssl:{ssl_log_level}
ErrorLogFormat "[%{{cu}}t] [%-m:%l] [pid %P:tid %T] [client\\ %a] [test\\ %{{X-Test-Id}}i] %M"
LogFormat "%{{X-Test-Id}}i %h %{{remote}}p %u %>s \\"%r\\" %H \\"%{{CERTAUTHZ_USER}}e\\"" certauthz
CustomLog "{r}/logs/access.log" certauthz

SSLSessionCache "shmcb:{r}/run/ssl_scache(512000)"
SSLRandomSeed startup builtin
SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1

DocumentRoot "{r}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{r}/htdocs">
    AllowOverride None
    Require all granted
</Directory>

Header always set X-Certauthz-User "%{{CERTAUTHZ_USER}}e"
Header always set X-Certauthz-Groups "%{{CERTAUTHZ_GROUPS}}e"
Header always set X-Certauthz-Rule "%{{CERTAUTHZ_RULE}}e"
Header always set X-Certauthz-Sha256 "%{{CERTAUTHZ_CERT_SHA256}}e"
Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
Header always set X-Auth-Type "expr=%{{AUTH_TYPE}}"
Header always set X-Ssl-Verify "%{{SSL_CLIENT_VERIFY}}s"
{extra}
"""


EVENT_TUNING = """\
StartServers 1
ServerLimit 2
ThreadsPerChild 8
ThreadLimit 8
MinSpareThreads 1
MaxSpareThreads 16
MaxRequestWorkers 16"""


def mpm_tuning(mpm, children):
    """Process settings that keep exactly `children` child processes of
    httpd's `mpm` ("prefork" or "event") running from the start: none is
    stopped or started while a test runs (MaxConnectionsPerChild 0)."""
    if mpm == "prefork":
        return ("StartServers {n}\nMinSpareServers {n}\nMaxSpareServers {n}\n"
                "ServerLimit {n}\nMaxRequestWorkers {n}").format(n=children)
    return ("StartServers {n}\nServerLimit {n}\nThreadsPerChild 4\n"
            "ThreadLimit 4\nMinSpareThreads {t}\nMaxSpareThreads {t}\n"
            "MaxRequestWorkers {t}").format(n=children, t=4 * children)


def server_config_preamble(root, ports, modules, ssl_log_level="warn",
                           extra="", mpm=EVENT_TUNING):
    """The global part shared by every test server's configuration (Httpd
    and ExtraHttpd): ServerRoot, run dir, PidFile, `User nobody` when run
    as root, one `Listen 127.0.0.1:p` per port in `ports`, the LoadModule
    lines for `modules` (plus mod_certauthz), the small event-MPM tuning,
    error/access logs (with the X-Test-Id correlation; mod_ssl logging at
    `ssl_log_level`), the global TLS settings (session cache, protocols),
    DocumentRoot under root/htdocs with `Require all granted`, and the
    X-Certauthz-* / X-Remote-User / X-Auth-Type / X-Ssl-Verify response
    headers the tests read.  `extra` (global directives of that server
    only) is appended as is; the caller adds <Location>s and vhosts."""
    return SERVER_PREAMBLE.format(
        r=root, user="User nobody\nGroup nogroup" if IS_ROOT else "",
        listen="\n".join("Listen 127.0.0.1:%d" % p for p in ports),
        modules=module_lines(modules), ssl_log_level=ssl_log_level,
        extra=extra, mpm=mpm)


class Httpd:
    """One httpd (mpm_event) with three TLS listeners:
        port        SSLVerifyClient optional        (the main vhost)
        gen_port    SSLVerifyClient optional_no_ca  (GENEROUS)
        reneg_port  SSLVerifyClient none, but require in <Location /reneg>
                    (TLS 1.2 renegotiation / TLS 1.3 post-handshake auth)
    """

    def __init__(self, root, certs):
        self.root = Path(root)
        self.certs = certs
        self.port = None
        self.gen_port = None
        self.reneg_port = None
        self.proc = None
        self.conf = self.root / "conf" / "httpd.conf"
        self.error_log = self.root / "logs" / "error.log"
        self.access_log = self.root / "logs" / "access.log"
        self.docroot = self.root / "htdocs"
        self.map_dir = self.root / "conf" / "certauthz"
        self.main_map = self.map_dir / "main.map"
        self.main_map_lines = main_map_lines(certs)
        self.allowed_error_ids = set()
        self.client = Client(certs["root_ca"].crt)

    # ---- files
    def _write(self, path, text, mode="w"):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as f:
            f.write(text)

    def _setup_base(self):
        """Create the ServerRoot tree shared by every test server: conf/,
        logs/, run/, htdocs/; the server certificate and key and the client
        CA bundle (root_ca + partner_ca) under conf/ssl/; the main map;
        conf/mime.types and htdocs/ok.txt.  The caller adds its own files
        and then runs make_tree_public()."""
        for d in ("conf", "conf/ssl", "conf/certauthz", "logs", "run",
                  "htdocs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        c = self.certs
        ssl_dir = self.root / "conf" / "ssl"
        shutil.copy(c["server"].crt, ssl_dir / "server.crt")
        shutil.copy(c["server"].key, ssl_dir / "server.key")
        with open(ssl_dir / "clients-ca.pem", "w") as out:
            for n in ("root_ca", "partner_ca"):
                with open(c[n].crt) as f:
                    out.write(f.read())
        self._write(self.main_map, "\n".join(self.main_map_lines) + "\n")
        self._write(self.root / "conf" / "mime.types", "text/plain txt\n")
        self._write(self.docroot / "ok.txt", "OK /\n")

    def setup(self):
        self._setup_base()
        self._write(self.map_dir / "alt.map", ALT_MAP)
        self._write(self.map_dir / "reload.map", RELOAD_MAP_V1)
        self._write(self.map_dir / "live.map", RELOAD_MAP_V1)
        self._write(self.map_dir / "ht.map", HT_MAP)
        self._write(self.map_dir / "bad-ht.map", BAD_HT_MAP)
        self._write(self.map_dir / "groups", GROUP_FILE)
        for path, _ in LOCATIONS:
            self._write(self.docroot / path.lstrip("/") / "ok.txt",
                        "OK %s\n" % path)
        for d in RENEG_DIRS:
            self._write(self.docroot / d / "ok.txt", "OK /%s\n" % d)
        for d, text in HTACCESS.items():
            self._write(self.docroot / d / "ok.txt", "OK /%s\n" % d)
            self._write(self.docroot / d / ".htaccess", text)
        make_tree_public(self.root)

    def config_text(self):
        bob = self.certs["bob"].sha256
        bob_colons_lower = ":".join(
            bob[i:i + 2] for i in range(0, len(bob), 2)).lower()
        locs = []
        for path, body in LOCATIONS:
            body = body.replace("@BOB_SHA256@", bob)
            body = body.replace("@ROOT@", str(self.root))
            body = body.replace("@BOB_SHA256_COLONS_LOWER@", bob_colons_lower)
            locs.append('<Location "%s">\n%s\n</Location>' % (
                path, textwrap.indent(body, "    ")))
        r = self.root
        main_only = """\
CertAuthzReloadInterval 1
Protocols h2 http/1.1
<Directory "{r}/htdocs/ht">
    AllowOverride AuthConfig
</Directory>
<Directory "{r}/htdocs/htbad">
    AllowOverride AuthConfig
</Directory>""".format(r=r)
        server_ssl = dict(crt="%s/conf/ssl/server.crt" % r,
                          key="%s/conf/ssl/server.key" % r)
        client_ca = 'SSLCACertificateFile "%s/conf/ssl/clients-ca.pem"\n' % r
        return "\n".join([
            server_config_preamble(
                r, [self.port, self.gen_port, self.reneg_port],
                SERVER_MODULES, ssl_log_level="warn", extra=main_only),
            "\n".join(locs),
            "",
            ssl_vhost(self.port, client_ca + """\
SSLVerifyClient optional
SSLVerifyDepth 2""", **server_ssl),
            ssl_vhost(self.gen_port, client_ca + """\
SSLVerifyClient optional_no_ca
SSLVerifyDepth 2
# a map at vhost level: every <Location> without one inherits it
CertAuthzMapFile conf/certauthz/alt.map""", **server_ssl),
            ssl_vhost(self.reneg_port, "Protocols http/1.1\n" + client_ca + """\
SSLVerifyClient none
<Location "/reneg">
    SSLVerifyClient require
    SSLVerifyDepth 2
    CertAuthzMapFile conf/certauthz/main.map
    Require cert-mapped
</Location>""", **server_ssl),
        ])

    # ---- process
    nports = 3   # port, gen_port, reneg_port

    def _use_ports(self, ports):
        """Take the sorted free ports picked by start()."""
        self.port, self.gen_port, self.reneg_port = ports

    def start(self, attempts=3):
        """Pick self.nports distinct free loopback ports, write the
        configuration and start httpd; on `Address already in use` (a port
        taken meanwhile) try again with new ports, up to `attempts` times."""
        last = None
        for _ in range(attempts):
            ports = sorted({free_port() for _ in range(self.nports)})
            if len(ports) != self.nports:
                continue
            self._use_ports(ports)
            self._write(self.conf, self.config_text())
            os.chmod(self.conf, 0o644)
            try:
                self._start_once()
                return
            except StartError as e:
                last = e
                if "Address already in use" not in str(e):
                    raise
        raise last

    def _start_once(self):
        cmd = [HTTPD, "-d", str(self.root), "-f", str(self.conf),
               "-DFOREGROUND"]
        self._stderr = open(self.root / "logs" / "stderr.log", "w+")
        self.proc = subprocess.Popen(cmd, stdout=self._stderr,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True, env=httpd_env())
        atexit.register(self.stop)   # never leave a server behind
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError("httpd exited with %d at startup:\n%s\n%s" % (
                    self.proc.returncode, self.stderr_text(),
                    self.error_log_tail()))
            try:
                r = self.client.get(self.port, "/ping/ok.txt", timeout=3)
                if r.status == 200:
                    return
            except (OSError, HandshakeFailed, http.client.HTTPException):
                pass
            time.sleep(0.1)
        self.stop()
        raise StartError("httpd did not answer within 30 s:\n%s\n%s" % (
            self.stderr_text(), self.error_log_tail()))

    def stop(self, timeout=15):
        """Stop httpd (SIGTERM to the parent); True if it stopped."""
        if self.proc is None:
            return True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        stopped = self.proc.poll() is not None
        return stopped

    def graceful_restart(self):
        """SIGUSR1 to the parent: graceful restart (maps are reloaded)."""
        self.proc.send_signal(signal.SIGUSR1)

    def write_map(self, name, text):
        """Replace conf/certauthz/NAME atomically (rename)."""
        tmp = self.map_dir / (".%s.tmp" % name)
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.map_dir / name)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- logs
    def stderr_text(self):
        try:
            with open(self.root / "logs" / "stderr.log", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def error_log_text(self):
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def error_log_tail(self, n=60):
        return "\n".join(self.error_log_text().splitlines()[-n:])

    def log_lines(self, test_id):
        """Error-log lines of the request(s) that sent X-Test-Id test_id."""
        tag = "[test %s]" % test_id
        return [l for l in self.error_log_text().splitlines() if tag in l]

    def access_lines(self, test_id, count=1, timeout=5):
        """Access-log lines of test_id; waits (bounded) until `count` exist
        (the access log is written after the response)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.access_log, errors="replace") as f:
                    lines = [l.rstrip("\n") for l in f
                             if l.startswith(test_id + " ")]
            except OSError:
                lines = []
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def allow_errors(self, test_id):
        """Error lines of this request are provoked by a test."""
        self.allowed_error_ids.add(test_id)

    # ---- requests
    def get(self, path, cert=None, port=None, **kw):
        if path.endswith("/"):
            path += "ok.txt"
        return self.client.get(port or self.port, path, cert=cert, **kw)

    def get_generous(self, path, cert=None, **kw):
        return self.get(path, cert=cert, port=self.gen_port, **kw)

    def h2(self, paths, cert=None, parallel=False):
        paths = [p + "ok.txt" if p.endswith("/") else p for p in paths]
        return curl_h2(self.port, paths, self.certs["root_ca"].crt, cert=cert,
                       parallel=parallel)


# --------------------------------------------------------------------------
# configtest (apache2 -t)

CONFIGTEST_MODULES = ["mpm_event", "unixd", "authz_core", "authn_core",
                      "authz_user", "authz_groupfile", "socache_shmcb", "ssl",
                      "log_config", "mime", "alias", "headers"]


def configtest(root, body, modules=None, name="configtest.conf"):
    """Write a configuration (modules + body) under root and run
    `apache2 -t`.  Returns (exit status, combined output, conf path)."""
    root = Path(root)
    for d in ("conf", "logs", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    conf = root / "conf" / name
    mods = module_lines(modules or CONFIGTEST_MODULES)
    text = """\
ServerRoot "{r}"
DefaultRuntimeDir "{r}/run"
PidFile "{r}/run/httpd.pid"
ServerName localhost
Listen 127.0.0.1:{port}
ErrorLog "{r}/logs/error.log"
{mods}
{body}
""".format(r=root, port=free_port(), mods=mods, body=body)
    conf.write_text(text)
    p = subprocess.run([HTTPD, "-t", "-d", str(root), "-f", str(conf)],
                       env=httpd_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    return p.returncode, p.stdout.decode("utf-8", errors="replace"), conf


def http2_supported_by_curl():
    if CURL is None:
        return False
    p = subprocess.run([CURL, "-V"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    return re.search(r"^Features:.*\bHTTP2\b", p.stdout.decode(),
                     re.M) is not None


# --------------------------------------------------------------------------
# extra httpd instances (tests that need a configuration of their own:
# vhosts on one port, CRLs, per-directory renegotiation variants)

EXTRA_MODULES = SERVER_MODULES


class ExtraHttpd(Httpd):
    """A separate httpd with its own ports and configuration text.

    body(srv) returns the configuration after the common preamble (modules,
    MPM, logs, the same response headers as the main server, DocumentRoot
    with `Require all granted`); it may use srv.ports (nports free loopback
    ports, srv.port == srv.ports[0]), srv.root and srv.certs.  The server
    is up once GET /ping/ok.txt on srv.port (TLS, server certificate of the
    test PKI) answers 200, so port 0 must be a TLS listener serving the
    DocumentRoot (trusted by root_ca, valid for 127.0.0.1).

    files: {relative path: text} written under the ServerRoot before the
    start (maps, CRLs...); every directory named by `docs` gets an ok.txt
    under htdocs/."""

    def __init__(self, root, certs, body, nports=1, files=None, docs=(),
                 modules=None, mpm=None, children=1):
        super().__init__(root, certs)
        self.body = body
        self.nports = nports
        self.ports = []
        self.files = dict(files or {})
        self.docs = list(docs)
        self.modules = list(modules or EXTRA_MODULES)
        self.mpm_text = EVENT_TUNING
        if mpm:
            self.modules = ["mpm_" + mpm] + [
                m for m in self.modules if not m.startswith("mpm_")]
            self.mpm_text = mpm_tuning(mpm, children)

    def setup(self):
        self._setup_base()
        for d in ["ping"] + self.docs:
            d = d.strip("/")
            self._write(self.docroot / d / "ok.txt", "OK /%s\n" % d)
        for rel, text in self.files.items():
            self._write(self.root / rel, text)
        make_tree_public(self.root)

    def config_text(self):
        return "%s\n%s\n" % (
            server_config_preamble(
                self.root, self.ports, self.modules, ssl_log_level="info",
                extra='Header always set X-Ssl-Client-Cn '
                      '"%{SSL_CLIENT_S_DN_CN}s"', mpm=self.mpm_text),
            self.body(self))

    def _use_ports(self, ports):
        self.ports = ports
        self.port = ports[0]


def ssl_vhost(port, body="", server_name="localhost", crt=None, key=None):
    """A <VirtualHost 127.0.0.1:port> with SSL on and the test server
    certificate (or crt/key, relative to the ServerRoot), then body (the
    client CA and verification settings are up to the caller)."""
    return """\
<VirtualHost 127.0.0.1:{port}>
    ServerName {name}
    SSLEngine on
    SSLCertificateFile "{crt}"
    SSLCertificateKeyFile "{key}"
{body}
</VirtualHost>
""".format(port=port, name=server_name,
           crt=crt or "conf/ssl/server.crt", key=key or "conf/ssl/server.key",
           body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))


class RawBackend:
    """HTTP/1.1 on 127.0.0.1: answers every request with its head (request
    line and header lines, as received) as the body; keeps each head."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.heads = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(10)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 1 << 20:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
            head = buf.split(b"\r\n\r\n", 1)[0]
            with self.lock:
                self.heads.append(head)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n"
                      % len(head) + head)
        except OSError:
            pass
        finally:
            c.close()

    def count(self):
        with self.lock:
            return len(self.heads)

    def close(self):
        self.done.set()
        self.sock.close()
        self.thread.join(5)


def marked_blocks(text, marker):
    """[(kind, arg, text)] of the code blocks of a document section marked
    `<!-- MARKER: KIND [ARG] -->`, in order; each block loses its common
    indentation (README's walkthrough, the reference's rollout)."""
    blocks = []
    pat = re.compile(r"<!-- %s: (\w+)((?: [^\n>]*?)?) -->\n"
                     r"([ \t]*)```[a-z]*\n(.*?)\n[ \t]*```" % re.escape(marker),
                     re.S)
    for m in pat.finditer(text):
        indent = m.group(3)
        lines = [l[len(indent):] if l.startswith(indent) else l
                 for l in m.group(4).split("\n")]
        blocks.append((m.group(1), m.group(2).strip(), "\n".join(lines)))
    return blocks
