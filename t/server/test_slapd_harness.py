"""The directory the LDAP tests run against (t/server/slapd_harness.py):
a real slapd started from LDIF on loopback, over LDAP and LDAPS (a server
certificate from the test factory), with the access rules the module's
tests rely on (only the bind account reads; anonymous clients may only
bind), and a server that can be killed.  If these fail, the directory
tests would measure the fixture, not the module."""

import pytest

import certauthz_harness as H
import slapd_harness as S

pytestmark = pytest.mark.skipif(not S.available(),
                                reason="slapd not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("slapd-pki")
    ca = H.mkcert(d / "ldap_ca", "--ca", "--subject", "/CN=Directory Test CA")
    srv = H.mkcert(d / "ldap_srv", "--issuer", ca.prefix, "--subject",
                   "/CN=127.0.0.1", "--san", "ip:127.0.0.1")
    return ca, srv


@pytest.fixture(scope="module")
def slapd(pki):
    ca, srv = pki
    ldif = "\n".join([
        S.base_ldif(),
        S.person("dave", ["admins", "staff"], mail="dave@example.com",
                 userPrincipalName="dave@corp.example"),
        S.person("eve", mail="eve@example.com",
                 extra={"userCertificate": srv.der}),
        S.group("admins", ["dave"]),
        S.group("staff", ["dave"]),
    ])
    s = S.Slapd(ldif, tls_cert=srv.crt, tls_key=srv.key, tls_ca=ca.crt)
    s.start()
    yield s
    s.cleanup()


def test_bind_account_reads_entries_over_ldap(slapd):
    rc, out, err = slapd.search(S.SUFFIX,
                                "(userPrincipalName=dave@corp.example)",
                                "uid", "memberOf")
    assert rc == 0, err
    assert "dn: uid=dave,ou=people,dc=example,dc=com" in out
    assert "memberOf: cn=admins,ou=groups,dc=example,dc=com" in out
    assert "memberOf: cn=staff,ou=groups,dc=example,dc=com" in out


def test_ldaps_with_the_test_ca(slapd, pki):
    ca, _ = pki
    rc, out, err = slapd.search(S.SUFFIX, "(mail=eve@example.com)", "uid",
                                url=slapd.ldaps_url, ca=ca.crt)
    assert rc == 0, err
    assert "uid: eve" in out


def test_binary_certificate_attribute_loaded(slapd, pki):
    _, srv = pki
    rc, out, err = slapd.search(S.SUFFIX, "(uid=eve)",
                                "userCertificate")
    assert rc == 0, err
    b64 = "".join(line.strip() for line in out.split("userCertificate::",
                                                    1)[1].splitlines()
                  if line.startswith((" ", "M")) or ":" not in line)
    import base64
    assert base64.b64decode(b64) == srv.der


def test_anonymous_clients_read_nothing(slapd):
    rc, out, err = slapd.search(S.SUFFIX, "(uid=*)", "uid", binddn="",
                                bindpw="")
    assert rc != 0 or "uid:" not in out, out


def test_killed_server_refuses_connections(pki, tmp_path):
    s = S.Slapd(S.base_ldif(), workdir=tmp_path / "d")
    s.start()
    try:
        assert s.search(S.SUFFIX, "(cn=httpd)", "cn")[0] == 0
        s.kill()
        rc, _, err = s.search(S.SUFFIX, "(cn=httpd)", "cn")
        assert rc != 0 and "Can't contact LDAP server" in err, err
    finally:
        s.cleanup()


def test_certificate_octets_filter_finds_the_entry(slapd, pki):
    """{cert_der} puts the DER in the filter as \\HH octets (RFC 4515):
    slapd must match userCertificate on the whole certificate."""
    _, srv = pki
    octets = "".join("\\%02x" % b for b in srv.der)
    rc, out, err = slapd.search(S.SUFFIX,
                                "(userCertificate=%s)" % octets, "uid")
    assert rc == 0, err
    assert "uid: eve" in out
    other = bytearray(srv.der)
    other[-1] ^= 1
    octets = "".join("\\%02x" % b for b in other)
    rc, out, err = slapd.search(S.SUFFIX,
                                "(userCertificate=%s)" % octets, "uid")
    assert "uid: eve" not in out
