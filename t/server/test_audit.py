"""CertAuthzAudit Off | Deny (default) | All: one CERTAUTHZ0100 line per
decision in the error log (SPEC section 3; README "Decision logs"), in a
stable key="value" form that a certificate field cannot break."""

import hashlib
import re

import pytest

import certauthz_harness as H

# the documented keys, in their documented order
AUDIT_KEYS = ["decision", "check", "reason", "user", "groups", "rule",
              "sha256", "serial", "issuer", "client", "method", "uri",
              "map_sha256", "map_generation"]
_PAIR = r'([a-z0-9_]+)="((?:[^"%\\\x00-\x1f\x7f]|%[0-9A-F]{2})*)"'


def parse_audit(line):
    """The key/value pairs of an audit line, in order; asserts that the
    text after the tag is exactly `key="value"` pairs separated by one
    space, each value escaped as documented."""
    rest = line.split("CERTAUTHZ0100: ", 1)[1]
    assert re.fullmatch(r"%s(?: %s)*" % (_PAIR, _PAIR), rest), rest
    pairs = re.findall(_PAIR, rest)
    assert [k for k, _ in pairs] == AUDIT_KEYS, pairs
    # values are UTF-8 with %HH escapes: decode as bytes
    return {k: re.sub(rb"%([0-9A-F]{2})",
                      lambda m: bytes([int(m.group(1), 16)]),
                      v.encode()).decode()
            for k, v in pairs}


def audit_lines(server, r):
    return [l for l in server.log_lines(r.test_id) if "CERTAUTHZ0100:" in l]


@pytest.mark.parametrize("location,cert,expected", [
    ("/audit/all/", "alice", "granted"),
    ("/audit/all/", "bob", "denied"),
    ("/audit/deny/", "alice", None),
    ("/audit/deny/", "bob", "denied"),
    ("/audit/default/", "alice", None),
    ("/audit/default/", "bob", "denied"),
    ("/audit/off/", "alice", None),
    ("/audit/off/", "bob", None),
])
def test_audit_levels(server, get, location, cert, expected):
    r = get(location, cert)
    assert r.status == (200 if cert == "alice" else 403), r
    lines = audit_lines(server, r)
    if expected is None:
        assert lines == [], lines
    else:
        assert len(lines) == 1, lines
        assert parse_audit(lines[0])["decision"] == expected, lines


def test_audit_granted_fields(server, certs, get):
    r = get("/audit/all/", "alice")
    [line] = audit_lines(server, r)
    rule = "%s:%d" % (server.main_map,
                      H.line_of(server.main_map_lines,
                                "email:alice@example.com"))
    a = parse_audit(line)
    assert a == {
        "decision": "granted", "check": "Require cert-user",
        "reason": "match", "user": "alice", "groups": "staff,admins",
        "rule": rule, "sha256": certs["alice"].sha256,
        "serial": a["serial"], "issuer": "CN=Example Root CA,O=Example",
        "client": "127.0.0.1", "method": "GET",
        "uri": "/audit/all/ok.txt",
        "map_sha256": hashlib.sha256(server.main_map.read_bytes()).hexdigest(),
        "map_generation": a["map_generation"]}, a
    assert re.fullmatch(r"[1-9][0-9]*", a["map_generation"]), a
    assert re.fullmatch(r"[0-9A-F]+", a["serial"]) and \
        not a["serial"].startswith("0"), a
    # notice level, from the module itself
    assert "[certauthz:notice]" in line, line


def test_audit_denied_fields(server, certs, get):
    r = get("/audit/default/", "bob")
    [line] = audit_lines(server, r)
    a = parse_audit(line)
    assert (a["decision"], a["reason"], a["user"], a["groups"]) == \
        ("denied", "user-mismatch", "bob", "staff"), a
    assert a["sha256"] == certs["bob"].sha256, a
    assert a["uri"] == "/audit/default/ok.txt", a


@pytest.mark.parametrize("cert,reason", [
    (None, "no-certificate"),
    ("zed", "unmapped"),
    ("laptop", "deny-rule"),
])
def test_audit_denied_reasons(server, get, cert, reason):
    r = get("/audit/all/", cert)
    assert r.status == 403
    [line] = audit_lines(server, r)
    a = parse_audit(line)
    assert (a["decision"], a["reason"]) == ("denied", reason), a
    if cert is None:
        assert a["sha256"] == a["serial"] == a["issuer"] == a["user"] == \
            a["rule"] == "-", a


@pytest.mark.parametrize("cert,check,decision,reason,user", [
    ("alice", "AuthType Certificate", "granted", "mapped", "alice"),
    ("zed", "AuthType Certificate", "granted", "unmapped-fallback", None),
    ("laptop", "deny list", "denied", "deny-rule", None),
    (None, "AuthType Certificate", "denied", "no-certificate", None),
])
def test_audit_authtype(server, get, cert, check, decision, reason, user):
    r = get("/audit/authtype/", cert)
    assert r.status == (200 if decision == "granted" else 403), r
    lines = [l for l in audit_lines(server, r) if 'check="%s"' % check in l]
    assert len(lines) == 1, audit_lines(server, r)
    a = parse_audit(lines[0])
    assert (a["decision"], a["reason"]) == (decision, reason), a
    if user:
        assert a["user"] == user, a


def test_audit_escapes_request_data(server, get):
    """A quote, a newline and a backslash in the URI cannot break the
    key="value" structure of the audit line or start a new log line."""
    r = get("/audit/all/x%22%0Ay%5Cz", "alice")
    lines = audit_lines(server, r)
    assert len(lines) == 1, lines
    a = parse_audit(lines[0])
    assert a["uri"] == '/audit/all/x"\ny\\z', a
    # no line of the log starts with the injected text
    assert not any(l.startswith("y") for l in server.error_log_text()
                   .splitlines())


def test_audit_hostile_certificate_cannot_forge_a_key(server, get, certs,
                                                       workdir):
    """Under AuthType Certificate with CertAuthzUnmapped CN, the user is
    the certificate's CN: a CN that carries `" decision="granted` stays
    inside the user value."""
    cn = 'ev" decision="granted" x="'
    cert = H.mkcert(workdir / "audit-forge", "--issuer",
                    certs["root_ca"].prefix, "--subject",
                    "/O=Example/CN=%s" % cn)
    r = get("/audit/authtype/", cert)
    assert r.status == 200, r
    [line] = [l for l in audit_lines(server, r)
              if 'check="AuthType Certificate"' in l]
    a = parse_audit(line)
    assert a["user"] == cn and a["decision"] == "granted", a
    assert line.count('decision="') == 1, line
