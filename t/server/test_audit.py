"""CertAuthzAudit Off | Deny (default) | All: one CERTAUTHZ0100 line per
decision in the error log (SPEC section 3, design notes)."""

import re

import pytest

import certauthz_harness as H


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
        assert "CERTAUTHZ0100: decision=%s" % expected in lines[0], lines


def test_audit_granted_fields(server, certs, get):
    r = get("/audit/all/", "alice")
    [line] = audit_lines(server, r)
    rule = "%s:%d" % (server.main_map,
                      H.line_of(server.main_map_lines,
                                "email:alice@example.com"))
    assert re.search(r'check="Require cert-user"', line), line
    assert "reason=match" in line, line
    assert 'user="alice"' in line, line
    assert 'rule="%s"' % rule in line, line
    assert "sha256=%s" % certs["alice"].sha256 in line, line
    assert 'uri="/audit/all/ok.txt"' in line, line
    # notice level, from the module itself
    assert "[certauthz:notice]" in line, line


def test_audit_denied_fields(server, certs, get):
    r = get("/audit/default/", "bob")
    [line] = audit_lines(server, r)
    assert "decision=denied" in line and "reason=user-mismatch" in line, line
    assert 'user="bob"' in line, line
    assert "sha256=%s" % certs["bob"].sha256 in line, line
    assert 'uri="/audit/default/ok.txt"' in line, line


@pytest.mark.parametrize("cert,reason", [
    (None, "no-certificate"),
    ("zed", "unmapped"),
    ("laptop", "deny-rule"),
])
def test_audit_denied_reasons(server, get, cert, reason):
    r = get("/audit/all/", cert)
    assert r.status == 403
    [line] = audit_lines(server, r)
    assert "decision=denied" in line and "reason=%s" % reason in line, line


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
    assert "decision=%s" % decision in lines[0], lines
    assert "reason=%s" % reason in lines[0], lines
    if user:
        assert 'user="%s"' % user in lines[0], lines


def test_audit_escapes_request_data(server, get):
    """A quote, a newline and a backslash in the URI cannot break the
    key="value" structure of the audit line or start a new log line."""
    r = get("/audit/all/x%22%0Ay%5Cz", "alice")
    lines = audit_lines(server, r)
    assert len(lines) == 1, lines
    m = re.search(r' uri="([^"]*)"$', lines[0])
    assert m, lines[0]
    assert "x22" in m.group(1) and "0A" in m.group(1).upper(), lines[0]
    # no line of the log starts with the injected text
    assert not any(l.startswith("y") for l in server.error_log_text()
                   .splitlines())
