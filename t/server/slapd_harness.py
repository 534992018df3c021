"""A real OpenLDAP slapd for the directory tests (issue 12, SPEC section 7
"Directory-backed identities").

Slapd runs from Debian's package as a child of the test, on loopback
ports it picks (plain LDAP and LDAPS), with an mdb database in a temporary
directory that slapadd loads from LDIF before the server starts.  The test
schema adds Active Directory's names (userPrincipalName, memberOf) to
inetOrgPerson entries, so the filters the docs show run unchanged.

Every wait is bounded in count and time; only 127.0.0.1 is used.
"""

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SLAPD = os.environ.get("CERTAUTHZ_SLAPD") or "/usr/sbin/slapd"
SLAPADD = os.environ.get("CERTAUTHZ_SLAPADD") or "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=com"
ROOT_DN = "cn=admin," + SUFFIX
ROOT_PW = "secret-root"
# the account httpd binds as (CertAuthzLDAPBindDN)
BIND_DN = "cn=httpd,ou=services," + SUFFIX
BIND_PW = "secret-httpd"

# Attributes AD has and OpenLDAP's schemas lack; OIDs under the
# documentation arc of the test schema (1.3.6.1.4.1.99999 is not assigned
# to anyone we know of and only ever lives in this test directory).
TEST_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'memberOf'
  EQUALITY distinguishedNameMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.99999.1.3 NAME 'altSecurityIdentities'
  EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'certauthzTestUser' AUXILIARY
  MAY ( userPrincipalName $ memberOf $ altSecurityIdentities ) )
"""


def ad_core_schema():
    """Debian's core.schema with userCertificate defined as Active
    Directory defines it: an octet string compared octet by
    octet, so that a filter asserting a whole certificate ({cert_der})
    finds the entry holding it.  OpenLDAP's own definition compares with
    certificateExactMatch, whose assertion is a serial number and issuer
    (RFC 4523), and matches no DER; it also requires the ;binary option,
    which AD treats as a no-op."""
    text = (SCHEMA_DIR / "core.schema").read_text()
    old = ("attributetype ( 2.5.4.36 NAME 'userCertificate'\n"
           "\tDESC 'RFC2256: X.509 user certificate, use ;binary'\n"
           "\tEQUALITY certificateExactMatch\n"
           "\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.8 )\n")
    if old not in text:
        raise RuntimeError("core.schema: userCertificate not as expected")
    return text.replace(old, (
        "attributetype ( 2.5.4.36 NAME 'userCertificate'\n"
        "\tDESC 'as Active Directory has it: octets, compared exactly'\n"
        "\tEQUALITY octetStringMatch\n"
        "\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )\n"))


def available():
    return os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def entry(dn, extra=None, **attrs):
    """One LDIF entry; a list value is several values; bytes are base64;
    extra: more attributes by name (those a keyword cannot spell, as
    userCertificate;binary)."""
    lines = ["dn: " + dn]
    attrs.update(extra or {})
    for name, value in attrs.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bytes):
                lines.append("%s:: %s" % (name, base64.b64encode(v).decode()))
            elif (v != v.strip() or any(ord(c) < 32 or ord(c) > 126
                                        for c in v) or v.startswith((":",
                                                                     "<"))):
                lines.append("%s:: %s" % (name,
                                          base64.b64encode(v.encode())
                                          .decode()))
            else:
                lines.append("%s: %s" % (name, v))
    return "\n".join(lines) + "\n"


def base_ldif():
    """The suffix, the organisational units and the bind account."""
    return "\n".join([
        entry(SUFFIX, objectClass=["top", "dcObject", "organization"],
              dc="example", o="Example"),
        entry("ou=people," + SUFFIX, objectClass="organizationalUnit",
              ou="people"),
        entry("ou=groups," + SUFFIX, objectClass="organizationalUnit",
              ou="groups"),
        entry("ou=services," + SUFFIX, objectClass="organizationalUnit",
              ou="services"),
        entry(BIND_DN, objectClass=["person", "simpleSecurityObject"],
              cn="httpd", sn="httpd", userPassword=BIND_PW),
    ])


def person(uid, groups=(), extra=None, **attrs):
    """A person under ou=people with memberOf set to the groups' DNs."""
    a = dict(objectClass=["inetOrgPerson", "certauthzTestUser"], uid=uid,
             cn=attrs.pop("cn", uid), sn=attrs.pop("sn", uid))
    if groups:
        a["memberOf"] = ["cn=%s,ou=groups,%s" % (g, SUFFIX) for g in groups]
    a.update(attrs)
    return entry("uid=%s,ou=people,%s" % (uid, SUFFIX), extra, **a)


def group(name, members):
    return entry("cn=%s,ou=groups,%s" % (name, SUFFIX),
                 objectClass="groupOfNames", cn=name,
                 member=["uid=%s,ou=people,%s" % (m, SUFFIX)
                         for m in members] or [ROOT_DN])


class Slapd:
    """slapd on 127.0.0.1: .url (ldap://), .ldaps_url (when a server
    certificate was given), started from ldif by start()."""

    def __init__(self, ldif, tls_cert=None, tls_key=None, tls_ca=None,
                 workdir=None):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="certauthz-slapd-"))
        self.ldif = ldif
        self.tls = (tls_cert, tls_key, tls_ca) if tls_cert else None
        self.port = _free_port()
        self.ldaps_port = _free_port() if self.tls else None
        self.proc = None

    @property
    def url(self):
        return "ldap://127.0.0.1:%d" % self.port

    @property
    def ldaps_url(self):
        return "ldaps://127.0.0.1:%d" % self.ldaps_port

    def _conf(self):
        schemas = "include %s\n" % (self.dir / "core.schema") + "".join(
            "include %s\n" % (SCHEMA_DIR / s) for s in (
                "cosine.schema", "inetorgperson.schema", "nis.schema")) + (
            "include %s\n" % (self.dir / "test.schema"))
        tls = ""
        if self.tls:
            cert, key, ca = self.tls
            tls = ("TLSCertificateFile %s\nTLSCertificateKeyFile %s\n"
                   "TLSCACertificateFile %s\n" % (cert, key, ca))
        return (
            schemas +
            "pidfile %s\nargsfile %s\n" % (self.dir / "slapd.pid",
                                           self.dir / "slapd.args") +
            "modulepath %s\nmoduleload back_mdb\n" % MODULE_DIR + tls +
            # the bind account may read; anonymous users may only bind
            "access to attrs=userPassword by anonymous auth by * none\n"
            "access to * by dn.exact=\"%s\" read by anonymous auth "
            "by * none\n" % BIND_DN +
            "database mdb\nmaxsize 67108864\nsuffix \"%s\"\n" % SUFFIX +
            "rootdn \"%s\"\nrootpw %s\ndirectory %s\n" % (
                ROOT_DN, ROOT_PW, self.dir / "db") +
            "index objectClass eq\nindex uid,mail,userPrincipalName eq\n")

    def start(self, timeout=30):
        (self.dir / "db").mkdir(parents=True, exist_ok=True)
        (self.dir / "test.schema").write_text(TEST_SCHEMA)
        (self.dir / "core.schema").write_text(ad_core_schema())
        (self.dir / "slapd.conf").write_text(self._conf())
        (self.dir / "data.ldif").write_text(self.ldif)
        p = subprocess.run([SLAPADD, "-q", "-f", str(self.dir / "slapd.conf"),
                            "-l", str(self.dir / "data.ldif")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError("slapadd failed:\n" + p.stdout.decode(
                errors="replace"))
        return self.restart(timeout)

    def restart(self, timeout=30):
        """slapd again on the same ports and database (after kill())."""
        urls = "ldap://127.0.0.1:%d/" % self.port
        if self.tls:
            urls += " ldaps://127.0.0.1:%d/" % self.ldaps_port
        # -d 0: stay in the foreground (a child we can kill), no debug
        self.log = open(self.dir / "slapd.log", "ab")
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.dir / "slapd.conf"), "-h", urls],
            stdout=self.log, stderr=subprocess.STDOUT)
        ports = [self.port] + ([self.ldaps_port] if self.tls else [])
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited (%d):\n%s" % (
                    self.proc.returncode,
                    (self.dir / "slapd.log").read_text(errors="replace")))
            if all(self._listening(pt) for pt in ports):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("slapd did not listen within %ds" % timeout)
            time.sleep(0.05)

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def kill(self):
        """The server dies (SIGKILL): the directory-down fault."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def search(self, base, flt, *attrs, url=None, binddn=BIND_DN,
               bindpw=BIND_PW, ca=None):
        """ldapsearch (ldap-utils) as the bind account: the LDIF text."""
        env = dict(os.environ, LDAPTLS_CACERT=ca or "",
                   LDAPTLS_REQCERT="demand" if ca else "never")
        p = subprocess.run(
            ["ldapsearch", "-LLL", "-x", "-H", url or self.url, "-D", binddn,
             "-w", bindpw, "-b", base, "-o", "nettimeout=10", flt] +
            list(attrs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, timeout=60)
        return p.returncode, p.stdout.decode(errors="replace"), \
            p.stderr.decode(errors="replace")


class DelayProxy:
    """A TCP proxy on 127.0.0.1 in front of a directory: the slow-server
    fault.  Bytes from the server to the client wait `delay` seconds
    (settable while it runs; 0: pass at once).  Every socket has a short
    timeout and every loop ends when close() is called."""

    def __init__(self, target_port, delay=0.0):
        self.target = target_port
        self.delay = delay
        self.closed = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.5)
        self.port = self.lsock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target),
                                             timeout=5)
            except OSError:
                c.close()
                continue
            for a, b, slow in ((c, u, False), (u, c, True)):
                t = threading.Thread(target=self._pump, args=(a, b, slow),
                                     daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, slow):
        src.settimeout(0.5)
        try:
            while not self.closed.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if slow and self.delay:
                    # bounded: ends at the delay or when closed
                    self.closed.wait(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sk in (src, dst):
                try:
                    sk.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sk.close()

    def close(self):
        self.closed.set()
        self.lsock.close()
        for t in self.threads:
            t.join(timeout=5)
