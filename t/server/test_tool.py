"""The certauthz command-line tool (SPEC section 5) against the suite's real
certificates and map files: check (counts, every error with FILE:LINE,
exit codes), explain (facts as the module sees them, the decision, exit
codes), and map files that cannot be read."""

import os
import pwd
import subprocess

import pytest

import certauthz_harness as H

TOOL = H.BUILDDIR / "certauthz"

MAP = """\
email:alice@example.com   alice     staff,admins
cn~^svc-([a-z0-9-]+)$     svc-$1    services
deny serial:{laptop}
[issuer "{partner}"]
cn~^(.+)$                 partner-$1 partners
"""


def run(*args, user=None):
    cmd = [str(TOOL)] + [str(a) for a in args]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def tool_dir(workdir, certs):
    d = workdir / "tool"
    d.mkdir(exist_ok=True)
    (d / "good.map").write_text(MAP.format(
        laptop=H.LAPTOP_SERIAL,
        partner=",".join(reversed(H.PARTNER_CA_SUBJECT.strip("/").split("/")))))
    return d


def test_check_counts(tool_dir):
    rc, out, err = run("check", tool_dir / "good.map")
    assert rc == 0, err
    assert "3 rules (1 exact, 0 glob, 2 regex), 1 deny, 1 issuer sections" \
        in out, out
    assert "exact email  1" in out


def test_check_reports_every_error(tool_dir):
    bad = tool_dir / "bad.map"
    bad.write_text("cn:ok ok\nfoo:x u\ncn:alone\ncn~( u\ncn:ok again\n")
    rc, out, err = run("check", bad)
    assert rc == 1
    lines = err.strip().splitlines()
    assert lines == [
        "%s:2: unknown selector type 'foo'" % bad,
        "%s:3: missing user" % bad,
        "%s:4: bad regex: missing closing parenthesis at offset 1" % bad,
        "%s:5: duplicate selector cn:ok (first at line 1)" % bad,
    ], err


def test_check_several_files(tool_dir):
    rc, out, err = run("check", tool_dir / "good.map", tool_dir / "nope.map")
    assert rc == 1
    assert "good.map: OK" in out
    assert "nope.map: No such file or directory" in err


@pytest.mark.skipif(not H.IS_ROOT, reason="needs root to run as nobody")
def test_unreadable_map(tool_dir):
    secret = tool_dir / "secret.map"
    secret.write_text("cn:alice alice\n")
    os.chmod(secret, 0)
    try:
        pwd.getpwnam("nobody")
        rc, out, err = run("check", secret, user="nobody")
    finally:
        os.chmod(secret, 0o644)
    assert rc == 1
    assert err.strip() == "%s: Permission denied" % secret, err


def test_directory_is_not_a_map(tool_dir):
    rc, out, err = run("check", tool_dir)
    assert rc == 1
    assert err.strip() == "%s: is a directory, not a map file" % tool_dir


@pytest.mark.parametrize("name,rc,decision", [
    ("alice", 0, "MAPPED by {map}:1: user=alice groups=staff,admins"),
    ("payments", 0, "MAPPED by {map}:2: user=svc-payments groups=services"),
    ("laptop", 3, "DENIED by {map}:3"),
    ("partner_alice", 0, "MAPPED by {map}:5: user=partner-alice "
                         "groups=partners"),
    ("bob", 4, "UNMAPPED: no rule matches"),
])
def test_explain_decisions(tool_dir, certs, name, rc, decision):
    m = tool_dir / "good.map"
    got, out, err = run("explain", m, certs[name].crt)
    assert got == rc, out + err
    assert decision.format(map=m) in out, out


def test_explain_prints_facts(tool_dir, certs):
    c = certs["multi"]
    rc, out, err = run("explain", tool_dir / "good.map", c.der_path)
    assert rc == 4, out + err           # DER accepted; unmapped
    assert "  subject   CN=multi,O=Example" in out
    assert "  cn        multi" in out
    # both SAN emails, in certificate order
    assert out.index("email     other@example.net") \
        < out.index("email     multi@example.com")
    assert "  sha256    %s" % c.sha256 in out
    assert "  spki      %s" % c.spki_pin in out


def test_explain_hostile_certificates(tool_dir, certs):
    rc, out, err = run("explain", tool_dir / "good.map", certs["twocn"].crt)
    assert "(subject has 2 CNs: no cn fact)" in out
    assert "  cn  " not in out
    rc, out, err = run("explain", tool_dir / "good.map", certs["nulcn"].crt)
    assert "subject   (unusable" in out
    assert "dropped" in out
    # the CN "bob\0evil" gives neither a cn nor a subject with bob in it
    facts = out.split("decision\n")[0]
    assert not [ln for ln in facts.splitlines()
                if ln.startswith(("  cn ", "  subject ")) and "bob" in ln], out


def test_explain_lists_all_matching_rules(tool_dir, certs):
    m = tool_dir / "more.map"
    m.write_text("cn:alice first\nemail:alice@example.com second\n"
                 "cn~^a second-regex\n")
    rc, out, err = run("explain", m, certs["alice"].crt)
    assert rc == 0
    tail = out.split("matching rules, in file order\n")[1].splitlines()
    assert [ln.split()[0] for ln in tail] == \
        ["%s:%d" % (m, i) for i in (1, 2, 3)], out


def test_usage_and_bad_input(tool_dir, certs):
    assert run()[0] == 2
    assert run("frobnicate", "x")[0] == 2
    rc, out, err = run("--help")
    assert rc == 0 and "certauthz check MAP" in out
    junk = tool_dir / "junk.pem"
    junk.write_text("not a certificate\n")
    rc, out, err = run("explain", tool_dir / "good.map", junk)
    assert rc == 1 and "not a PEM or DER certificate" in err
