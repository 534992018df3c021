"""`apache2 -t` (configtest) reports map errors as FILE:LINE: reason and
refuses bad directive arguments (SPEC sections 2-4, design notes).

Each map case writes a map, runs configtest with a configuration naming
it, and checks the exit status and the `map:LINE: reason` text."""

import os

import pytest

import certauthz_harness as H

LONG = "cn:" + "a" * 16400 + " user"

# (id, map lines (bytes or str, joined with \n), line of the error, reason)
# The first line is always a comment, so line numbers are real.
MAP_ERRORS = [
    ("unknown-type", ["foo:bar user"], 2, "unknown selector type 'foo'"),
    ("not-a-selector", ["bogus user"], 2,
     "selector 'bogus' is not type:value or type~regex"),
    ("bad-regex", ["cn~^(unclosed user"], 2, "bad regex: "),
    ("empty-regex", ["cn~ user"], 2, "empty regex"),
    ("missing-user", ["cn:alice"], 2, "missing user"),
    ("empty-user", ['cn:alice ""'], 2, "empty user"),
    ("dollar-without-regex", ["cn:alice user-$1"], 2,
     "$1 in user but the selector is not a regex"),
    ("dollar-beyond-groups", ["cn~^(a)$ u-$2"], 2,
     "$2 in user but the regex has 1 capture group"),
    ("dollar-in-groups", ["cn~^a$ u g-$1"], 2,
     "$1 in groups but the regex has 0 capture groups"),
    ("bad-sha256-short", ["sha256:ABCD u"], 2, "bad sha256 value"),
    ("bad-sha256-glob", ["sha256:* u"], 2, "bad sha256 value"),
    ("bad-sha256-nothex", ["sha256:" + "Z" * 64 + " u"], 2,
     "bad sha256 value"),
    ("bad-spki", ["spki:!!!notbase64 u"], 2, "bad spki value"),
    ("bad-serial", ["serial:XYZ u"], 2, "bad serial value"),
    ("bad-ip", ["ip:300.1.1.1 u"], 2, "bad IP address"),
    ("bad-dn", ['dn:"CN=a;b" u'], 2, "bad DN"),
    ("duplicate", ["cn:bob a", "# between", "cn:bob b"], 4,
     "duplicate selector cn:bob (first at line 2)"),
    ("duplicate-in-section", ['[issuer "CN=Partner CA,O=Partner Inc"]',
                              "email:X@example.com a",
                              "email:x@example.com b"], 4,
     "duplicate selector"),
    ("unterminated-quote", ['cn:"bob u'], 2, "unterminated quote"),
    ("bad-section", ["[issuer CN=x]"], 2, "bad section header"),
    ("bad-section-name", ["[subject \"CN=x\"]"], 2, "bad section header"),
    ("bad-section-dn", ['[issuer "CN=a;"]'], 2,
     "bad issuer DN in section header"),
    ("nul-byte", [b"cn:a\x00b user"], 2, "NUL byte in line"),
    ("long-line", [LONG], 2, "line longer than 16384 bytes"),
    ("not-utf8", [b"cn:\xff\xfe user"], 2, "line is not valid UTF-8"),
    ("empty-group", ["cn:a u staff,,x"], 2, "empty group name"),
    ("deny-alone", ["deny"], 2, "deny needs a selector"),
    ("deny-with-user", ["deny cn:a u"], 2,
     "deny takes only a selector (no user or groups)"),
    ("extra-field", ["cn:a u g extra"], 2, "unexpected field after groups"),
    ("control-in-user", ['cn:a "u\x01x"'], 2, "control character in user"),
    ("error-after-good-lines", ["cn:ok1 u1", "cn:ok2 u2 g", "", "cn~( u"], 5,
     "bad regex: "),
]

# maps that must load (controls: each error case above differs by one thing)
MAP_OK = [
    ("same-selector-other-section", ["cn:bob a",
                                     '[issuer "CN=Partner CA,O=Partner Inc"]',
                                     "cn:bob b", "[any-issuer]", "cn:carl c"]),
    ("same-selector-deny-and-allow", ["cn:bob a", "deny cn:bob"]),
    ("regex-with-captures", ["cn~^(a)-(b)$ u-$1-$2 g-$2"]),
    ("quoted-hash", ['cn:"a#b" u  # comment']),
    ("sha256-colons", ["sha256:" + ":".join(["ab"] * 32) + " u"]),
    ("line-16384", ["cn:" + "a" * (16384 - 5) + " u"]),
    ("sections", ['[issuer "cn=Partner CA, o=Partner Inc"]',
                  "deny serial:00:4F:2A", "[any-issuer]", "ip:2001:DB8::1 v"]),
]


def _write_map(path, lines):
    data = b"# test map\n" + b"\n".join(
        l if isinstance(l, bytes) else l.encode("utf-8") for l in lines) + b"\n"
    path.write_bytes(data)
    os.chmod(path, 0o644)


def _map_conf(map_path):
    return ('<Location "/x">\n    CertAuthzMapFile "%s"\n'
            '    Require cert-mapped\n</Location>\n' % map_path)


@pytest.mark.parametrize("case", MAP_ERRORS, ids=[c[0] for c in MAP_ERRORS])
def test_map_error(ct_root, case):
    name, lines, line, reason = case
    m = ct_root / "bad.map"
    _write_map(m, lines)
    rc, out, conf = H.configtest(ct_root, _map_conf(m))
    assert rc != 0, out
    assert "Syntax OK" not in out, out
    expected = "%s:%d: %s" % (m, line, reason)
    assert expected in out, "expected %r in:\n%s" % (expected, out)


@pytest.mark.parametrize("case", MAP_OK, ids=[c[0] for c in MAP_OK])
def test_map_ok(ct_root, case):
    name, lines = case
    m = ct_root / "good.map"
    _write_map(m, lines)
    rc, out, conf = H.configtest(ct_root, _map_conf(m))
    assert rc == 0 and "Syntax OK" in out, out


def test_map_bom_and_crlf(ct_root):
    m = ct_root / "bom.map"
    m.write_bytes(b"\xef\xbb\xbfcn:a u\r\ncn:b v\r\n# end\r\n")
    rc, out, _ = H.configtest(ct_root, _map_conf(m))
    assert rc == 0 and "Syntax OK" in out, out


def test_map_all_errors_reported(ct_root):
    m = ct_root / "bad.map"
    _write_map(m, ["foo:x u", "cn:ok u", "cn:y", "cn~( u"])
    rc, out, _ = H.configtest(ct_root, _map_conf(m))
    assert rc != 0
    for line, reason in [(2, "unknown selector type 'foo'"),
                         (4, "missing user"), (5, "bad regex: ")]:
        assert "%s:%d: %s" % (m, line, reason) in out, out


def test_map_relative_to_server_root(ct_root):
    (ct_root / "conf" / "certauthz").mkdir(parents=True)
    m = ct_root / "conf" / "certauthz" / "rel.map"
    _write_map(m, ["cn:a u", "cn:a v"])
    rc, out, _ = H.configtest(ct_root, _map_conf("conf/certauthz/rel.map"))
    assert rc != 0
    assert "%s:3: duplicate selector" % m in out, out


def test_map_missing_file(ct_root):
    m = ct_root / "nonexistent.map"
    rc, out, _ = H.configtest(ct_root, _map_conf(m))
    assert rc != 0
    assert str(m) in out and "No such file or directory" in out, out


def test_map_is_a_directory(ct_root):
    d = ct_root / "adir.map"
    d.mkdir()
    rc, out, _ = H.configtest(ct_root, _map_conf(d))
    assert rc != 0
    assert "%s: is a directory, not a map file" % d in out, out


def test_map_error_at_server_level(ct_root):
    m = ct_root / "bad.map"
    _write_map(m, ["cn:a"])
    rc, out, conf = H.configtest(ct_root, 'CertAuthzMapFile "%s"\n' % m)
    assert rc != 0
    assert "%s:2: missing user" % m in out, out


# ---- directive arguments

DIRECTIVE_ERRORS = [
    ("unmapped-foo", "CertAuthzUnmapped Foo",
     "CertAuthzUnmapped must be one of"),
    ("audit-maybe", "CertAuthzAudit Maybe", "CertAuthzAudit must be"),
    ("setenv-maybe", "CertAuthzSetEnv Maybe", "On or Off"),
    ("sha256-nothex", "Require cert-sha256 nothex", "cert-sha256"),
    ("sha256-short", "Require cert-sha256 ABCDEF", "cert-sha256"),
    ("issuer-semicolon", 'Require cert-issuer "CN=a;"', "cert-issuer"),
    ("issuer-trailing-comma", 'Require cert-issuer "CN=a,"', "cert-issuer"),
    ("mapped-extra", "Require cert-mapped extra", "cert-mapped"),
    ("user-no-args", "Require cert-user", "cert-user"),
    ("group-no-args", "Require cert-group", "cert-group"),
    ("cn-no-args", "Require cert-cn", "cert-cn"),
    ("issuer-no-args", "Require cert-issuer", "cert-issuer"),
]

SERVER_DIRECTIVE_ERRORS = [
    ("reload-negative", "CertAuthzReloadInterval -1",
     "CertAuthzReloadInterval"),
    ("reload-not-number", "CertAuthzReloadInterval soon",
     "CertAuthzReloadInterval"),
    ("reload-trailing", "CertAuthzReloadInterval 10s",
     "CertAuthzReloadInterval"),
]


def _location(line):
    return '<Location "/x">\n    %s\n</Location>\n' % line


@pytest.mark.parametrize("case", DIRECTIVE_ERRORS,
                         ids=[c[0] for c in DIRECTIVE_ERRORS])
def test_directive_error(ct_root, case):
    name, line, text = case
    rc, out, conf = H.configtest(ct_root, _location(line))
    assert rc != 0, out
    assert "Syntax OK" not in out
    # httpd names the file and line of the directive
    n = conf.read_text().splitlines().index("    " + line) + 1
    assert "Syntax error on line %d of %s" % (n, conf) in out, out
    assert text in out, out


@pytest.mark.parametrize("case", SERVER_DIRECTIVE_ERRORS,
                         ids=[c[0] for c in SERVER_DIRECTIVE_ERRORS])
def test_server_directive_error(ct_root, case):
    name, line, text = case
    rc, out, conf = H.configtest(ct_root, line + "\n")
    assert rc != 0, out
    assert text in out, out


def test_reload_interval_not_allowed_in_location(ct_root):
    rc, out, _ = H.configtest(ct_root, _location("CertAuthzReloadInterval 5"))
    assert rc != 0
    assert "not allowed" in out, out


def test_valid_directives(ct_root, certs):
    m = ct_root / "good.map"
    _write_map(m, ["cn:a u"])
    body = """\
CertAuthzReloadInterval 0
<VirtualHost 127.0.0.1:1>
    CertAuthzReloadInterval 30
</VirtualHost>
<Location "/x">
    CertAuthzMapFile "{m}"
    CertAuthzUnmapped email
    CertAuthzSetEnv off
    CertAuthzAudit all
    AuthType Certificate
    <RequireAny>
        Require cert-user a b
        Require cert-group g
        Require cert-mapped
        Require cert-cn a "Dave Smith" svc-*
        Require cert-email *@example.com
        Require cert-dns *.example.com
        Require cert-uri spiffe://example.org/*
        Require cert-upn a@example.com
        Require cert-issuer "CN=Partner CA,O=Partner Inc" "cn=x, o=y"
        Require cert-sha256 {fp} {fpc}
        Require valid-user
    </RequireAny>
</Location>
<Location "/y">
    CertAuthzUnmapped DN
</Location>
<Location "/z">
    CertAuthzUnmapped uri
    CertAuthzAudit Off
</Location>
""".format(m=m, fp=certs["bob"].sha256,
           fpc=certs["bob"].sha256_colons.lower())
    rc, out, _ = H.configtest(ct_root, body)
    assert rc == 0 and "Syntax OK" in out, out
