"""The certauthz command-line tool (SPEC section 5) against the suite's real
certificate files (t/mkcert, hostile ones included) and map files:

  check    counts, load time and memory, every error as FILE:LINE, the
           warnings (unanchored regexes, shadowed rules, [issuer] sections
           without a --ca certificate), --strict, --ca, --json;
  explain  every fact as the module sees it (PEM, DER, chains, hostile
           fields), the decision and every matching rule, --json;
  help, usage errors, exit codes, the man page.

JSON output is parsed with json.loads (strict: a raw control character in a
string fails) and checked field by field."""

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess

import pytest

import certauthz_harness as H

TOOL = H.BUILDDIR / "certauthz"
MAN = H.BUILDDIR / "docs" / "certauthz.1"  # configure writes it from .in
SOURCE = H.SRCDIR / "tools" / "certauthz.c"
TYPES = ["cn", "dn", "email", "dns", "uri", "upn", "ip", "serial", "sha256",
         "spki", "eku", "ku", "policy", "ski", "sid", "altsec"]

MAP = """\
email:alice@example.com   alice     staff,admins
cn~^svc-([a-z0-9-]+)$     svc-$1    services
deny serial:{laptop}
[issuer "{partner}"]
cn~^(.+)$                 partner-$1 partners
"""

# a map with one error on each of lines 2..13
BAD_MAP = """\
cn:ok ok
emial:x u
cn~( u
cn:alone
cn:a $1
cn:ok again
cn:"open u
[issuer CN=x]
sha256:ABCD u
deny cn:x u
cn:a u g extra
dn:"CN=a;b" u
spki:xx u
"""
BAD_MAP_PHRASES = {
    2: "unknown selector type 'emial'",
    3: "bad regex: missing closing parenthesis",
    4: "missing user",
    5: "$1 in user but the selector is not a regex",
    6: "duplicate selector cn:ok (first at line 1)",
    7: "unterminated quote",
    8: "bad section header",
    9: "bad sha256 value",
    10: "deny takes only a selector",
    11: "unexpected field after groups",
    12: "bad DN",
    13: "bad spki value",
}

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run(*args, user=None, raw=False):
    cmd = [a if isinstance(a, bytes) else str(a) for a in args]
    cmd = [os.fsencode(str(TOOL))] + [os.fsencode(a) if isinstance(a, str)
                                      else a for a in cmd]
    if user:
        cmd = [b"runuser", b"-u", user.encode(), b"--"] + cmd
    p = subprocess.run(cmd, capture_output=True, timeout=120)
    if raw:
        return p.returncode, p.stdout, p.stderr
    return (p.returncode, p.stdout.decode("utf-8"),
            p.stderr.decode("utf-8"))


def run_json(*args):
    """Run with --json: exactly one JSON document on stdout, nothing on
    stderr.  Returns (exit status, document)."""
    rc, out, err = run(*args)
    assert err == "", err
    assert out.endswith("}\n"), out
    return rc, json.loads(out)


def warning_lines(err):
    return [ln for ln in err.splitlines() if ": warning: " in ln]


def rfc4514(subject):
    """'/O=Example/CN=x' -> 'CN=x,O=Example'."""
    return ",".join(reversed(subject.strip("/").split("/")))


@pytest.fixture(scope="module")
def tool_dir(workdir, certs):
    d = workdir / "tool"
    d.mkdir(exist_ok=True)
    (d / "good.map").write_text(MAP.format(
        laptop=H.LAPTOP_SERIAL, partner=rfc4514(H.PARTNER_CA_SUBJECT)))
    (d / "bad.map").write_text(BAD_MAP)
    root = certs["root_ca"].prefix
    # hostile fields: quote, backslash, control characters, non-ASCII
    H.mkcert(d / "quote", "--issuer", root, "--subject",
             '/O=Ex"am\\\\ple/CN=q"uo\\x01te\\x0a\\xc3\\xa9',
             "--san", 'email:a"b\\\\c@x', "--san",
             "uri:spiffe://x/\\x1b[31mred")
    # a value that makes a backtracking regex give up
    H.mkcert(d / "aaa", "--issuer", root, "--subject",
             "/O=Example/CN=" + "a" * 40 + "b")
    H.mkcert(d / "upcarol", "--issuer", root, "--subject",
             "/O=Example/CN=upcarol", "--san", "upn:CAROL@corp.example.com")
    # a CA whose subject the module cannot represent (NUL in the CN)
    H.mkcert(d / "nulca", "--ca", "--subject", "/O=Evil/CN=nul\\x00ca")
    # CA bundles
    with open(d / "both_cas.pem", "w") as f:
        for n in ("root_ca", "partner_ca"):
            f.write(open(certs[n].crt).read())
    with open(d / "chain.pem", "w") as f:
        f.write(open(certs["alice"].crt).read())
        f.write(open(certs["root_ca"].crt).read())
    (d / "junk.pem").write_text("not a certificate\n")
    (d / "empty.pem").write_text("")
    H.make_tree_public(d)
    return d


# ==========================================================================
# check: counts, errors

def test_check_counts(tool_dir):
    rc, out, err = run("check", tool_dir / "good.map")
    assert rc == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith(
        "%s: OK: 3 rules (1 exact, 0 glob, 2 regex), 1 deny, "
        "1 issuer sections; loaded in " % (tool_dir / "good.map")), out
    assert re.search(r"; loaded in \d+\.\d{3} ms$", lines[0]), out
    assert lines[1] == "  exact email  1"
    assert re.fullmatch(r"  memory    \d+ bytes resident held by the map "
                        r"\(RSS growth while loading\); peak RSS of the "
                        r"process [1-9]\d* kB", lines[2]), out
    # the content hash: an independent SHA-256 of the file
    digest = hashlib.sha256((tool_dir / "good.map").read_bytes()).hexdigest()
    assert lines[3] == "  content   sha256 " + digest
    assert lines[4] == "  warnings  0"
    assert len(lines) == 5, out


def test_check_json_counts(tool_dir):
    m = tool_dir / "good.map"
    rc, doc = run_json("check", "--json", m)
    assert rc == 0
    assert doc["tool"] == "certauthz"
    assert doc["version"] == run("--version")[1].split()[1]
    assert doc["command"] == "check"
    assert doc["ok"] is True
    assert doc["strict"] is False
    assert doc["error_count"] == 0
    assert doc["warning_count"] == 0
    assert doc["ca_files"] == []
    assert len(doc["maps"]) == 1
    mp = doc["maps"][0]
    assert mp["file"] == str(m)
    assert mp["ok"] is True
    assert mp["errors"] == []
    r = mp["rules"]
    assert (r["total"], r["allow"], r["exact"], r["glob"], r["regex"],
            r["deny"], r["issuer_sections"]) == (4, 3, 1, 0, 2, 1, 1)
    assert list(r["exact_by_type"]) == TYPES
    assert r["exact_by_type"] == {t: (1 if t == "email" else 0)
                                  for t in TYPES}
    assert mp["content_sha256"] == hashlib.sha256(m.read_bytes()).hexdigest()
    assert isinstance(mp["load_ms"], float) and mp["load_ms"] >= 0
    assert isinstance(mp["lint_ms"], float) and mp["lint_ms"] >= 0
    assert isinstance(mp["memory"]["resident_bytes"], int)
    assert mp["memory"]["resident_bytes"] >= 0
    assert mp["memory"]["peak_rss_kb"] > 0
    assert mp["warnings"] == []


def test_check_counts_every_kind(tool_dir, certs):
    m = tool_dir / "kinds.map"
    m.write_text(
        "cn:a a\ncn:b b\ndn:\"CN=x,O=y\" x\nemail:e@x e\ndns:d.x d\n"
        "uri:u:x u\nupn:p@x p\nip:10.0.0.1 i\nserial:01 s\n"
        "sha256:%s h\nspki:%s k\n"
        "email:*@x.org g1\ndns:*.x.org g2\nuri~^x: r1\ncn~^c$ r2\n"
        "deny cn:evil\ndeny email:*@evil.org\ndeny cn~^ev\n"
        "[issuer \"CN=A\"]\ncn:a aa\n[issuer \"CN=B\"]\ncn:a ba\n"
        "[issuer \"cn=a\"]\ncn:q qa\n"
        % (certs["kiosk"].sha256, certs["pinned"].spki_pin))
    rc, out, err = run("check", m)
    assert rc == 0, err
    assert "18 rules (14 exact, 2 glob, 2 regex), 3 deny, " \
        "2 issuer sections" in out, out
    for t, n in [("cn", 5), ("dn", 1), ("email", 1), ("dns", 1), ("uri", 1),
                 ("upn", 1), ("ip", 1), ("serial", 1), ("sha256", 1),
                 ("spki", 1)]:
        assert "  exact %-6s %d\n" % (t, n) in out, (t, out)
    rc, doc = run_json("check", "--json", m)
    r = doc["maps"][0]["rules"]
    assert (r["total"], r["allow"], r["exact"], r["glob"], r["regex"],
            r["deny"], r["issuer_sections"]) == (21, 18, 14, 2, 2, 3, 2)
    assert r["exact_by_type"]["cn"] == 5
    assert sum(r["exact_by_type"].values()) == 14


def test_check_memory_grows_with_map(tool_dir):
    small = tool_dir / "small.map"
    small.write_text("cn:x x\n")
    big = tool_dir / "big.map"
    big.write_text("".join("email:user%d@example.com u%d staff\n" % (i, i)
                           for i in range(20000)))
    rc, doc = run_json("check", "--json", small, big)
    assert rc == 0
    s, b = (mp["memory"]["resident_bytes"] for mp in doc["maps"])
    # 20000 rules hold megabytes (rule, strings, index); a rule is more
    # than 40 bytes
    assert b >= 20000 * 40, doc["maps"]
    assert b > s, doc["maps"]
    assert doc["maps"][1]["rules"]["exact"] == 20000


def test_check_reports_every_error(tool_dir):
    bad = tool_dir / "bad.map"
    rc, out, err = run("check", bad)
    assert rc == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == len(BAD_MAP_PHRASES), err
    for ln, (n, phrase) in zip(lines, sorted(BAD_MAP_PHRASES.items())):
        assert ln.startswith("%s:%d: " % (bad, n)), (n, ln)
        assert phrase in ln, (n, ln)
    # the stable wordings, whole lines
    assert "%s:2: unknown selector type 'emial'" % bad in lines
    assert "%s:4: missing user" % bad in lines
    assert "%s:6: duplicate selector cn:ok (first at line 1)" % bad in lines


def test_check_errors_json(tool_dir):
    bad = tool_dir / "bad.map"
    _, _, err = run("check", bad)
    rc, doc = run_json("check", "--json", bad)
    assert rc == 1
    assert doc["ok"] is False
    assert doc["error_count"] == len(BAD_MAP_PHRASES)
    assert doc["warning_count"] == 0
    mp = doc["maps"][0]
    assert mp["ok"] is False
    assert [e["line"] for e in mp["errors"]] == sorted(BAD_MAP_PHRASES)
    assert all(e["file"] == str(bad) for e in mp["errors"])
    # the same reasons as the text output, exactly
    assert ["%s:%d: %s" % (e["file"], e["line"], e["reason"])
            for e in mp["errors"]] == err.strip().splitlines()
    for key in ("rules", "content_sha256", "load_ms", "lint_ms", "memory"):
        assert mp[key] is None, key
    assert mp["warnings"] == []


def test_check_stops_at_100_errors(tool_dir):
    m = tool_dir / "many_errors.map"
    m.write_text("".join("bogus%d:x u\n" % i for i in range(150)))
    rc, out, err = run("check", m)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 100
    assert lines[0] == "%s:1: unknown selector type 'bogus0'" % m
    assert lines[-1] == "%s:100: unknown selector type 'bogus99'" % m
    rc, doc = run_json("check", "--json", m)
    assert rc == 1 and doc["error_count"] == 100


def test_check_several_files(tool_dir):
    good, nope = tool_dir / "good.map", tool_dir / "nope.map"
    rc, out, err = run("check", good, nope, tool_dir / "bad.map")
    assert rc == 1
    assert out.startswith("%s: OK: " % good)
    assert err.splitlines()[0] == "%s: No such file or directory" % nope
    assert "%s:2: unknown selector type 'emial'" % (tool_dir / "bad.map") \
        in err
    rc, doc = run_json("check", "--json", good, nope)
    assert rc == 1
    assert doc["ok"] is False
    assert [m["ok"] for m in doc["maps"]] == [True, False]
    assert doc["maps"][1]["errors"] == [{
        "file": str(nope), "line": None,
        "reason": "No such file or directory"}]
    assert doc["error_count"] == 1


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
    rc, doc = run_json("check", "--json", tool_dir)
    assert rc == 1
    assert doc["maps"][0]["errors"][0]["reason"] == \
        "is a directory, not a map file"


def test_double_dash_ends_options(tool_dir):
    odd = tool_dir / "--json"
    odd.write_text("cn:x x\n")
    cwd = os.getcwd()
    os.chdir(tool_dir)
    try:
        rc, out, err = run("check", "--", "--json")
    finally:
        os.chdir(cwd)
    assert rc == 0, err
    assert out.startswith("--json: OK: 1 rules"), out


# ==========================================================================
# check: warnings

def test_warning_free_maps(tool_dir, certs):
    main = tool_dir / "main.map"
    main.write_text("\n".join(H.main_map_lines(certs)) + "\n")
    examples = sorted((H.SRCDIR / "conf-examples").glob("*.map"))
    assert examples
    maps = [tool_dir / "good.map", main] + examples
    rc, out, err = run("check", "--strict", *maps)
    assert rc == 0, err
    assert err == ""
    assert out.count("  warnings  0\n") == len(maps), out
    rc, doc = run_json("check", "--json", "--strict", *maps)
    assert rc == 0
    assert doc["warning_count"] == 0
    assert all(m["warnings"] == [] for m in doc["maps"])


UNANCHORED_MAP = r"""cn~svc-                  a
cn~^svc-a$                b
email~\Aa@x\.org\z        c
email~(?i)^b@x\.org$      d
cn~^(?:c|d)$              e
cn~^e|f$                  f
cn~(?m)^g$                g
cn~^h\$                   h
deny cn~evil
cn~(^i$)                  i
dns~^x\.example\.com\Z    j
cn~.*                     k
"""


def test_unanchored_regexes(tool_dir):
    m = tool_dir / "unanchored.map"
    m.write_text(UNANCHORED_MAP)
    rc, out, err = run("check", m)
    assert rc == 0, err              # warnings do not fail
    assert "  warnings  6\n" in out
    w = warning_lines(err)
    assert w == [
        "%s:1: warning: unanchored regex cn~svc-: no ^ at the start and no "
        "$ at the end: it matches any value that contains a match (write "
        "^...$)" % m,
        "%s:6: warning: unanchored regex cn~^e|f$: a | outside any group: "
        "^ and $ bind to one alternative each (write ^(?:a|b)$)" % m,
        "%s:7: warning: unanchored regex cn~(?m)^g$: (?m) makes ^ and $ "
        "match at line breaks inside the value" % m,
        "%s:8: warning: unanchored regex cn~^h\\$: no $ (or \\z) at the end: "
        "it matches any value that starts with a match" % m,
        "%s:9: warning: unanchored regex cn~evil: no ^ at the start and no "
        "$ at the end: it matches any value that contains a match (write "
        "^...$)" % m,
        "%s:11: warning: unanchored regex dns~^x\\.example\\.com\\Z: no $ "
        "(or \\z) at the end: it matches any value that starts with a "
        "match" % m,
    ], err
    rc, doc = run_json("check", "--json", m)
    ws = doc["maps"][0]["warnings"]
    assert [(x["line"], x["kind"]) for x in ws] == \
        [(n, "unanchored-regex") for n in (1, 6, 7, 8, 9, 11)]
    assert [x["selector"] for x in ws] == [
        "cn~svc-", "cn~^e|f$", "cn~(?m)^g$", "cn~^h\\$", "cn~evil",
        "dns~^x\\.example\\.com\\Z"]
    assert all(x["by"] is None and x["issuer"] is None and x["file"] == str(m)
               for x in ws)
    assert ["%s:%d: warning: %s" % (x["file"], x["line"], x["message"])
            for x in ws] == w
    assert doc["warning_count"] == 6


def test_unanchored_regex_really_matches_more(tool_dir, certs):
    """What the warning is about: cn~lice maps alice, cn~^lice$ does not."""
    m = tool_dir / "lice.map"
    m.write_text("cn~lice x\n")
    assert run("explain", m, certs["alice"].crt)[0] == 0
    assert len(warning_lines(run("check", m)[2])) == 1
    m.write_text("cn~^lice$ x\n")
    assert run("explain", m, certs["alice"].crt)[0] == 4
    assert warning_lines(run("check", m)[2]) == []


SHADOW_MAP = """\
email:*@example.com                     staff
email:alice@example.com                 alice
cn~^svc-                                svc
cn:svc-payments                         pay
uri:spiffe://example.org/*              spiffe
uri:spiffe://example.org/ns/prod/*      prod
cn:bob                                  bob
[issuer "{partner}"]
cn:bob                                  pbob
cn~.*                                   partner-any
cn:alice                                palice
[any-issuer]
cn:alice                                alice-root
deny cn:svc-old
dns:*.build.example.com                 ci
dns:x.y.build.example.com               deep
dns:x.build.example.com                 x
email~(?i)^carol@corp\\.example\\.com$    c1
email:CAROL@corp.example.com            c2
upn~^carol@corp\\.example\\.com$          u1
upn:carol@corp.example.com              u2
"""
SHADOWED = [(2, 1), (4, 3), (6, 5), (9, 7), (11, 10), (17, 15), (19, 18)]


def test_shadowed_rules(tool_dir, certs):
    m = tool_dir / "shadow.map"
    m.write_text(SHADOW_MAP.format(partner=H.PARTNER_CA_DN))
    rc, out, err = run("check", m)
    assert rc == 0, err
    w = warning_lines(err)
    shadow = [ln for ln in w if ": warning: shadowed by " in ln]
    assert [ln.split(": warning: shadowed by ")[0] for ln in shadow] == \
        ["%s:%d" % (m, a) for a, _ in SHADOWED], err
    for ln, (a, b) in zip(shadow, SHADOWED):
        assert ln.startswith("%s:%d: warning: shadowed by %s:%d: "
                             % (m, a, m, b)), ln
    assert shadow[0] == (
        "%s:2: warning: shadowed by %s:1: email:*@example.com, earlier and "
        "for every issuer, matches every certificate that "
        "email:alice@example.com matches" % (m, m))
    assert "the same [issuer] section" in shadow[4]      # line 11 by 10
    assert "every issuer" in shadow[3]                   # line 9 by 7
    # line 3 is also unanchored: nothing else
    assert [ln for ln in w if ln not in shadow] == [
        "%s:3: warning: unanchored regex cn~^svc-: no $ (or \\z) at the "
        "end: it matches any value that starts with a match" % m]

    rc, doc = run_json("check", "--json", m)
    ws = [x for x in doc["maps"][0]["warnings"] if x["kind"] == "shadowed"]
    assert [(x["line"], x["by"]["line"]) for x in ws] == SHADOWED
    first = ws[0]
    assert first["selector"] == "email:alice@example.com"
    assert first["by"] == {"file": str(m), "line": 1,
                           "selector": "email:*@example.com"}
    assert first["issuer"] is None
    assert doc["warning_count"] == len(SHADOWED) + 1


def test_shadowed_agrees_with_the_resolver(tool_dir, certs):
    """The rules reported as shadowed never decide; those not reported
    can."""
    m = tool_dir / "shadow.map"
    m.write_text(SHADOW_MAP.format(partner=H.PARTNER_CA_DN))
    cases = [
        ("alice", 1, ["1", "2", "13"]),    # 2 is shadowed by 1
        ("payments", 3, ["3", "4"]),       # 4 by 3
        ("partner_alice", 10, ["10", "11", "13"]),  # 11 by 10; 13 (for
                                           # every issuer) comes later
        ("deepbuilder", 16, ["16"]),       # 16 is not shadowed: dns labels
        ("builder", 15, ["15", "17"]),     # 17 by 15
        ("carol", 20, ["20", "21"]),       # upn~ without (?i): 21 not
        ("upcarol", 21, ["21"]),           # ... and here is why
    ]
    for name, line, matching in cases:
        c = certs[name].crt if name in certs else tool_dir / (name + ".crt")
        rc, doc = run_json("explain", "--json", m, c)
        assert rc == 0, (name, doc)
        assert doc["decision"]["rule"]["line"] == line, (name, doc)
        assert [str(r["line"]) for r in doc["matches"]] == matching, name


def test_strict(tool_dir):
    warn = tool_dir / "unanchored.map"
    warn.write_text(UNANCHORED_MAP)
    good = tool_dir / "good.map"
    rc, out, err = run("check", "--strict", warn)
    assert rc == 5 and len(warning_lines(err)) == 6
    assert run("check", "--strict", good)[0] == 0
    assert run("check", good, warn)[0] == 0        # not strict
    assert run("check", warn, "--strict", good)[0] == 5
    assert run("check", "--strict", warn, tool_dir / "bad.map")[0] == 1
    rc, doc = run_json("check", "--strict", "--json", warn)
    assert rc == 5
    assert doc["strict"] is True and doc["ok"] is True
    assert doc["warning_count"] == 6


# ==========================================================================
# check --ca

def _issuer_warnings(err):
    return [ln for ln in warning_lines(err) if "is the subject of none" in ln]


def test_ca_sections(tool_dir, certs):
    m = tool_dir / "good.map"
    both = tool_dir / "both_cas.pem"
    rc, out, err = run("check", "--ca", both, m)
    assert rc == 0 and err == "", err
    rc, out, err = run("check", "--ca", certs["root_ca"].crt, m)
    assert rc == 0
    assert warning_lines(err) == [
        '%s:5: warning: [issuer "%s"] is the subject of none of the CA '
        "certificates given: the rules of this section (from line 5) never "
        "apply to certificates those CAs issue" % (m, H.PARTNER_CA_DN)], err
    assert "  warnings  1\n" in out
    # several --ca, the = form, a DER file
    rc, out, err = run("check", "--ca", certs["root_ca"].crt,
                       "--ca=%s" % certs["partner_ca"].der_path, m)
    assert rc == 0 and err == "", err
    rc, out, err = run("check", "--ca", certs["untrusted_ca"].crt, m)
    assert len(_issuer_warnings(err)) == 1
    assert run("check", "--strict", "--ca", certs["root_ca"].crt, m)[0] == 5


def test_ca_sections_json(tool_dir, certs):
    m = tool_dir / "good.map"
    rc, doc = run_json("check", "--json", "--ca", tool_dir / "both_cas.pem",
                       "--ca", certs["root_ca"].crt, m)
    assert rc == 0
    assert doc["ca_files"] == [
        {"file": str(tool_dir / "both_cas.pem"), "certificates": 2,
         "subjects": [H.ROOT_CA_DN, H.PARTNER_CA_DN]},
        {"file": certs["root_ca"].crt, "certificates": 1,
         "subjects": [H.ROOT_CA_DN]},
    ]
    assert doc["maps"][0]["warnings"] == []
    rc, doc = run_json("check", "--json", "--ca", certs["root_ca"].crt, m)
    (w,) = doc["maps"][0]["warnings"]
    assert w["kind"] == "issuer-without-ca"
    assert w["line"] == 5
    assert w["issuer"] == H.PARTNER_CA_DN
    assert w["selector"] == "cn~^(.+)$"
    assert w["by"] is None
    assert w["message"].startswith('[issuer "%s"] is the subject of none'
                                   % H.PARTNER_CA_DN)


def test_ca_compared_as_the_module_compares_issuers(tool_dir, certs):
    """A section spelt in another case and spacing still names Partner CA,
    for the module (explain) and for the check alike."""
    m = tool_dir / "spelt.map"
    m.write_text('[issuer "cn=partner  ca, o=PARTNER INC"]\n'
                 "cn~^(.+)$ partner-$1\n"
                 '[issuer "CN=Partner CA,O=Partner Inc,C=XX"]\n'
                 "cn:x never\n")
    rc, out, err = run("check", "--ca", certs["partner_ca"].crt, m)
    assert rc == 0
    w = _issuer_warnings(err)
    assert len(w) == 1 and w[0].startswith("%s:4: " % m), err
    rc, doc = run_json("explain", "--json", m, certs["partner_alice"].crt)
    assert rc == 0 and doc["decision"]["user"] == "partner-alice"


def test_ca_with_unusable_subject(tool_dir):
    m = tool_dir / "good.map"
    rc, doc = run_json("check", "--json", "--ca", tool_dir / "nulca.crt", m)
    assert rc == 0
    assert doc["ca_files"][0]["certificates"] == 1
    assert doc["ca_files"][0]["subjects"] == [None]
    assert [w["kind"] for w in doc["maps"][0]["warnings"]] == \
        ["issuer-without-ca"]


@pytest.mark.parametrize("args,message", [
    (["--ca", "{d}/junk.pem"], "--ca {d}/junk.pem: no PEM or DER certificate"),
    (["--ca", "{d}/empty.pem"],
     "--ca {d}/empty.pem: no PEM or DER certificate"),
    (["--ca", "{d}/missing.pem"],
     "--ca {d}/missing.pem: No such file or directory"),
    (["--ca"], "--ca needs a FILE"),
])
def test_ca_bad_files(tool_dir, args, message):
    args = [a.format(d=tool_dir) for a in args]
    for json_flag in ([], ["--json"]):
        cmd = ["check"] + json_flag + [tool_dir / "good.map"] + args
        rc, out, err = run(*cmd)
        assert rc == 2, (cmd, out, err)
        assert out == ""
        assert "certauthz: " + message.format(d=tool_dir) in err, err


# ==========================================================================
# explain: decisions

@pytest.mark.parametrize("name,rc,decision,outcome,line,user,groups", [
    ("alice", 0, "MAPPED by {map}:1: user=alice groups=staff,admins",
     "mapped", 1, "alice", ["staff", "admins"]),
    ("payments", 0, "MAPPED by {map}:2: user=svc-payments groups=services",
     "mapped", 2, "svc-payments", ["services"]),
    ("laptop", 3, "DENIED by {map}:3: deny serial:%s" % H.LAPTOP_SERIAL,
     "denied", 3, None, None),
    ("partner_alice", 0, "MAPPED by {map}:5: user=partner-alice "
                         "groups=partners",
     "mapped", 5, "partner-alice", ["partners"]),
    ("bob", 4, "UNMAPPED: no rule matches", "unmapped", None, None, None),
])
def test_explain_decisions(tool_dir, certs, name, rc, decision, outcome,
                           line, user, groups):
    m = tool_dir / "good.map"
    got, out, err = run("explain", m, certs[name].crt)
    assert got == rc, out + err
    assert err == ""
    assert "decision\n  %s\n" % decision.format(map=m) in out, out
    got, doc = run_json("explain", "--json", m, certs[name].crt)
    assert got == rc
    assert doc["ok"] is True and doc["errors"] == []
    assert doc["map"] == str(m)
    d = doc["decision"]
    assert d["outcome"] == outcome
    assert d["reason"] == {"mapped": "mapped", "denied": "deny-rule",
                           "unmapped": "unmapped"}[outcome]
    assert d["unusable"] is None
    assert (d["rule"]["line"] if d["rule"] else None) == line
    assert d["user"] == user
    assert d["groups"] == groups


def test_explain_rule_objects(tool_dir, certs):
    m = tool_dir / "good.map"
    rc, doc = run_json("explain", "--json", m, certs["partner_alice"].crt)
    assert doc["decision"]["rule"] == {
        "file": str(m), "line": 5, "selector": "cn~^(.+)$", "deny": False,
        "issuer": H.PARTNER_CA_DN, "user": "partner-$1",
        "groups": ["partners"]}
    assert doc["section"] == H.PARTNER_CA_DN
    rc, doc = run_json("explain", "--json", m, certs["laptop"].crt)
    assert doc["decision"]["rule"] == {
        "file": str(m), "line": 3, "selector": "serial:" + H.LAPTOP_SERIAL,
        "deny": True, "issuer": None, "user": None, "groups": None}
    assert doc["matches"] == [dict(doc["decision"]["rule"], decision=True)]
    assert doc["section"] is None


def test_explain_lists_all_matching_rules(tool_dir, certs):
    m = tool_dir / "more.map"
    m.write_text("cn:alice first\nemail:alice@example.com second g1,g2\n"
                 "cn~^a second-regex\ncn:bob other\ndeny cn~^al\n"
                 "cn~^al(i)ce$ alice-$1\n")
    rc, out, err = run("explain", m, certs["alice"].crt)
    assert rc == 3
    tail = out.split("matching rules, in file order\n")[1].splitlines()
    assert tail == [
        "  %s:1  cn:alice  -> user=first" % m,
        "  %s:2  email:alice@example.com  -> user=second groups=g1,g2" % m,
        "  %s:3  cn~^a  -> user=second-regex" % m,
        "  %s:5  deny cn~^al  (decision)" % m,
        "  %s:6  cn~^al(i)ce$  -> user=alice-$1" % m,
    ], out
    rc, doc = run_json("explain", "--json", m, certs["alice"].crt)
    assert rc == 3
    assert [(r["line"], r["deny"], r["decision"]) for r in doc["matches"]] \
        == [(1, False, False), (2, False, False), (3, False, False),
            (5, True, True), (6, False, False)]
    assert doc["matches"][1]["groups"] == ["g1", "g2"]
    assert doc["matches"][4]["user"] == "alice-$1"
    # without the deny rule the first one decides
    m.write_text("cn:alice first\nemail:alice@example.com second\n")
    rc, doc = run_json("explain", "--json", m, certs["alice"].crt)
    assert rc == 0
    assert [r["decision"] for r in doc["matches"]] == [True, False]
    assert doc["decision"]["user"] == "first"
    assert doc["decision"]["groups"] == []


def test_explain_sections(tool_dir, certs):
    m = tool_dir / "good.map"
    rc, out, err = run("explain", m, certs["partner_alice"].crt)
    assert 'section     [issuer "%s"] of the map applies' % H.PARTNER_CA_DN \
        in out, out
    # issued by Partner CA with its issuer spelt in lower case: OpenSSL
    # (and the module) still see Partner CA
    rc, doc = run_json("explain", "--json", m, certs["partner_eve_lc"].crt)
    assert rc == 0
    assert doc["certificate"]["issuer"] == "CN=partner ca,O=partner inc"
    assert doc["section"] == H.PARTNER_CA_DN
    assert doc["decision"]["user"] == "partner-eve"
    rc, out, err = run("explain", m, certs["alice"].crt)
    assert "section     no [issuer] section of the map names this issuer" \
        in out


def test_explain_unusable_rule(tool_dir, certs):
    # $1 of an optional group that did not take part: empty user
    m = tool_dir / "subst.map"
    m.write_text("cn~^(x)?alice$ $1\ncn:alice later\n")
    rc, out, err = run("explain", m, certs["alice"].crt)
    assert rc == 4
    assert "  UNMAPPED by %s:1: cn~^(x)?alice$ matched but its $N " \
        "substitution gave an unusable user or group name; no later rule " \
        "is tried\n" % m in out, out
    rc, doc = run_json("explain", "--json", m, certs["alice"].crt)
    assert rc == 4
    d = doc["decision"]
    assert (d["outcome"], d["reason"], d["unusable"]) == \
        ("unmapped", "unusable-rule", "substitution")
    assert d["rule"]["line"] == 1 and d["user"] is None
    assert [r["line"] for r in doc["matches"]] == [1, 2]
    # a backtracking regex gives up on a long value: no later rule maps it
    m = tool_dir / "giveup.map"
    m.write_text("cn~^(a+)+$ x\ncn~^a later\n")
    rc, out, err = run("explain", m, tool_dir / "aaa.crt")
    assert rc == 4
    assert "  UNMAPPED by %s:1: its regex cn~^(a+)+$ gave up on a value " \
        "(match limits); no later rule is tried\n" % m in out, out
    rc, doc = run_json("explain", "--json", m, tool_dir / "aaa.crt")
    d = doc["decision"]
    assert (d["reason"], d["unusable"], d["rule"]["line"]) == \
        ("unusable-rule", "regex-gave-up", 1)
    assert [r["line"] for r in doc["matches"]] == [2]


# ==========================================================================
# explain: facts

def test_explain_prints_facts(tool_dir, certs):
    c = certs["multi"]
    rc, out, err = run("explain", tool_dir / "good.map", c.der_path)
    assert rc == 4, out + err           # DER accepted; unmapped
    lines = out.split("section ")[0].splitlines()
    assert lines[0] == "certificate %s" % c.der_path
    assert lines[1] == "  format    DER"
    assert lines[2] == "  subject   CN=multi,O=Example"
    assert lines[3] == "  issuer    %s" % H.ROOT_CA_DN
    assert re.fullmatch(r"  validity  \S+Z \.\. \S+Z", lines[4])
    assert lines[5] == "  cn        multi"
    # both SAN emails, in certificate order
    assert lines[6:8] == ["  email     other@example.net",
                          "  email     multi@example.com"]
    assert re.fullmatch(r"  serial    [0-9A-F]+", lines[8])
    assert lines[9] == "  sha256    %s" % c.sha256
    assert lines[10] == "  spki      %s" % c.spki_pin
    # the extension facts of the test factory's leaf certificates
    assert lines[11:15] == ["  eku       1.3.6.1.5.5.7.3.2",
                            "  eku       1.3.6.1.5.5.7.3.1",
                            "  ku        digitalSignature",
                            "  ku        keyEncipherment"], out
    assert re.fullmatch(r"  ski       [0-9A-F]{40}", lines[15])
    # each Active Directory form: as AD takes it, what it is, as a selector
    forms = [("<I>O=Example,CN=Example Root CA<SR>[0-9a-f]+",
              r"issuer and serial number \(strong\)"),
             ("<SKI>" + lines[15].split()[1].lower(),
              r"subject key identifier \(strong\)"),
             ("<SHA1-PUKEY>" + hashlib.sha1(c.der).hexdigest(),
              r"SHA-1 of the certificate, the Windows thumbprint \(strong\)"),
             ("<SHA1-PUKEY>[0-9a-f]{40}",
              r"SHA-1 of the public key, as Samba's KDC has it \(strong\)"),
             ("<I>O=Example,CN=Example Root CA<S>O=Example,CN=multi",
              r"issuer and subject \(weak in AD since KB5014754\)")]
    for i, (form, what) in enumerate(forms):
        ad, kind, sel = lines[16 + 3 * i:19 + 3 * i]
        assert re.fullmatch(r"  altsec    (X509:%s)" % form, ad), ad
        assert re.fullmatch(r"            " + what, kind), kind
        assert sel == '            in a map: altsec:"%s"' % ad[12:], sel
    assert len(lines) == 31, out


def test_explain_json_facts(tool_dir, certs):
    c = certs["multi"]
    rc, doc = run_json("explain", "--json", tool_dir / "good.map", c.crt)
    assert rc == 4
    cert = doc["certificate"]
    assert cert["file"] == c.crt
    assert cert["format"] == "PEM"
    assert cert["certificates_in_file"] == 1
    assert cert["subject"] == "CN=multi,O=Example"
    assert cert["issuer"] == H.ROOT_CA_DN
    assert TIME_RE.match(cert["not_before"]) and TIME_RE.match(
        cert["not_after"])
    assert cert["not_before"] < cert["not_after"]
    assert (cert["cn"], cert["cn_count"], cert["cn_note"]) == \
        ("multi", 1, None)
    assert cert["sha256"] == c.sha256
    assert cert["spki"] == c.spki_pin
    assert re.fullmatch(r"[0-9A-F]+", cert["serial"])
    assert cert["sans"] == [{"type": "email", "value": "other@example.net"},
                            {"type": "email", "value": "multi@example.com"}]
    assert cert["san_extensions"] == 1
    assert list(cert["facts"]) == TYPES
    assert cert["facts"] == {
        "cn": ["multi"], "dn": ["CN=multi,O=Example"],
        "email": ["other@example.net", "multi@example.com"],
        "dns": [], "uri": [], "upn": [], "ip": [],
        "serial": [cert["serial"]], "sha256": [c.sha256],
        "spki": [c.spki_pin],
        "eku": ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"],
        "ku": ["digitalSignature", "keyEncipherment"], "policy": [],
        "ski": cert["facts"]["ski"], "sid": [],
        "altsec": [a["ad"] for a in cert["altsec"]]}
    assert re.fullmatch(r"[0-9A-F]{40}", cert["facts"]["ski"][0])
    # the forms themselves are checked against an independent encoder in
    # test_altsec.py; here their order, kinds and selectors
    assert [a["form"] for a in cert["altsec"]] == [
        "issuer-serial", "ski", "sha1-certificate", "sha1-key",
        "issuer-subject"]
    assert cert["altsec"][4]["ad"] == \
        "X509:<I>O=Example,CN=Example Root CA<S>O=Example,CN=multi"
    assert cert["altsec"][2]["ad"] == "X509:<SHA1-PUKEY>" + \
        hashlib.sha1(c.der).hexdigest()
    for a in cert["altsec"]:
        assert a["map"] == 'altsec:"%s"' % a["ad"].replace('"', '\\"')
    assert cert["dropped"] == 0
    assert doc["section"] is None
    assert doc["matches"] == []


def test_explain_san_types_and_serial(tool_dir, certs):
    m = tool_dir / "good.map"
    rc, doc = run_json("explain", "--json", m, certs["worker"].crt)
    assert doc["certificate"]["sans"] == [
        {"type": "uri", "value": "spiffe://example.org/ns/dev/sa/worker"},
        {"type": "upn", "value": "dan@corp.example.com"}]
    rc, doc = run_json("explain", "--json", m, certs["iphost"].crt)
    assert doc["certificate"]["facts"]["ip"] == ["127.0.0.1", "::1"]
    assert [s["type"] for s in doc["certificate"]["sans"]] == ["ip", "ip"]
    rc, out, err = run("explain", m, certs["iphost"].crt)
    assert "  ip        127.0.0.1\n  ip        ::1\n" in out
    rc, doc = run_json("explain", "--json", m, certs["laptop"].crt)
    assert doc["certificate"]["serial"] == H.LAPTOP_SERIAL
    rc, out, err = run("explain", m, certs["laptop"].crt)
    assert "  serial    %s\n" % H.LAPTOP_SERIAL in out


def test_explain_chain_file(tool_dir, certs):
    chain = tool_dir / "chain.pem"
    rc, out, err = run("explain", tool_dir / "good.map", chain)
    assert rc == 0, out + err
    assert "  format    PEM, 2 certificates: the first one is taken as the " \
        "leaf\n" in out
    assert "  subject   CN=alice,O=Example\n" in out
    rc, doc = run_json("explain", "--json", tool_dir / "good.map", chain)
    assert doc["certificate"]["certificates_in_file"] == 2
    assert doc["certificate"]["sha256"] == certs["alice"].sha256
    assert doc["decision"]["user"] == "alice"


HOSTILE = {
    # name: (checks on the JSON certificate, line that must be in the text)
    "twocn": ({"cn": None, "cn_count": 2,
               "cn_note": "the subject has several CNs",
               "subject": "CN=twocn,CN=bob,O=Example"},
              "  cn        (none: the subject has several CNs)"),
    "nulcn": ({"cn": None, "cn_count": 1, "subject": None,
               "cn_note": "the CN is unusable (NUL byte, not UTF-8)",
               # the CN, the dn fact, the altsec issuer-subject form
               "dropped": 3},
              "  subject   (unusable: a value is not UTF-8 or has a NUL byte;"
              " no dn fact)"),
    "nulsan": ({"cn": "nulsan", "sans": [], "dropped": 1},
               "  (1 value dropped as unusable: NUL byte, not UTF-8, UPN not "
               "a UTF8String, several SAN extensions, an extension twice or "
               "undecodable, a DN AD cannot write; never matched)"),
    "bmpbob": ({"cn": "bob", "subject": "CN=bob,O=Example"},
               "  cn        bob"),
    "t61cafe": ({"cn": "caf\u00e9", "subject": "CN=caf\u00e9,O=Example"},
                "  cn        caf\u00e9"),
    "upnia5": ({"sans": [], "dropped": 1, "cn": "upnia5"},
               "  (1 value dropped as unusable"),
    "emptysubj": ({"subject": "", "cn": None, "cn_count": 0,
                   "cn_note": "the subject has no CN",
                   "sans": [{"type": "email",
                             "value": "alice@example.com"}]},
                  "  cn        (none: the subject has no CN)"),
    "nlcn": ({"cn": "mallory\nInjected: 1",
              "subject": "CN=mallory\\0AInjected: 1,O=Example",
              # AD's form of the subject cannot hold a line break
              "dropped": 1},
             "  cn        mallory\\x0AInjected: 1"),
    "mvbob": ({"cn": "bob", "subject": "OU=Eng+CN=bob,O=Example"},
              "  subject   OU=Eng+CN=bob,O=Example"),
    "stardns": ({"sans": [{"type": "dns", "value": "*.build.example.com"}]},
                "  dns       *.build.example.com"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_explain_hostile_certificates(tool_dir, certs, name):
    want, text_line = HOSTILE[name]
    m = tool_dir / "good.map"
    rc, out, err = run("explain", m, certs[name].crt)
    assert rc in (0, 4), out + err
    assert text_line in out.splitlines() or \
        any(ln.startswith(text_line) for ln in out.splitlines()), out
    # nothing raw that a terminal would interpret
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", out)
    rc2, doc = run_json("explain", "--json", m, certs[name].crt)
    assert rc2 == rc
    cert = doc["certificate"]
    for key, value in want.items():
        assert cert[key] == value, (key, cert[key])
    assert cert["sha256"] == certs[name].sha256


def test_explain_nul_values_leave_no_trace(tool_dir, certs):
    """CN 'bob\\0evil': neither the cn nor the subject holds bob."""
    rc, doc = run_json("explain", "--json", tool_dir / "good.map",
                       certs["nulcn"].crt)
    facts = doc["certificate"]["facts"]
    assert facts["cn"] == [] and facts["dn"] == []
    assert not any("bob" in v for vals in facts.values() for v in vals)


def test_explain_thousand_sans(tool_dir, certs):
    m = tool_dir / "good.map"
    rc, doc = run_json("explain", "--json", m, certs["sans1000"].crt)
    assert rc == 0                       # the e-mail SAN maps it
    cert = doc["certificate"]
    assert cert["facts"]["dns"] == ["h%d.example.net" % i
                                    for i in range(1000)]
    assert len(cert["sans"]) == 1001
    assert cert["sans"][0] == {"type": "email", "value": "alice@example.com"}
    assert doc["decision"]["rule"]["line"] == 1
    rc, out, err = run("explain", m, certs["sans1000"].crt)
    assert out.count("\n  dns       h") == 1000


def test_explain_bmpstring_maps_like_utf8(tool_dir, certs):
    m = tool_dir / "bob.map"
    m.write_text("cn:bob bob\n")
    for name in ("bob", "bmpbob"):
        rc, doc = run_json("explain", "--json", m, certs[name].crt)
        assert rc == 0 and doc["decision"]["user"] == "bob", name


def test_explain_quotes_backslashes_controls(tool_dir):
    c = tool_dir / "quote.crt"
    rc, out, err = run("explain", tool_dir / "good.map", c)
    assert rc == 4
    assert '  subject   CN=q\\"uo\\01te\\0A\u00e9,O=Ex\\"am\\\\ple\n' in out
    assert '  cn        q"uo\\x01te\\x0A\u00e9\n' in out
    assert '  email     a"b\\\\c@x\n' in out
    assert "  uri       spiffe://x/\\x1B[31mred\n" in out
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", out)
    rc, raw, err = run("explain", "--json", tool_dir / "good.map", c,
                       raw=True)
    assert rc == 4 and err == b""
    # the JSON itself is ASCII-safe apart from UTF-8: no raw control bytes
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw)
    assert b"\\u0001" in raw and b"\\u001b" in raw
    doc = json.loads(raw.decode("utf-8"))
    cert = doc["certificate"]
    assert cert["cn"] == 'q"uo\x01te\n\u00e9'
    assert cert["subject"] == 'CN=q\\"uo\\01te\\0A\u00e9,O=Ex\\"am\\\\ple'
    assert cert["sans"] == [
        {"type": "email", "value": 'a"b\\c@x'},
        {"type": "uri", "value": "spiffe://x/\x1b[31mred"}]


def test_json_file_name_not_utf8(tool_dir, certs):
    odd = os.path.join(os.fsencode(str(tool_dir)), b"\xff-alice.crt")
    shutil.copy(certs["alice"].crt, odd)
    rc, raw, err = run("explain", "--json", tool_dir / "good.map", odd,
                       raw=True)
    assert rc == 0, err
    doc = json.loads(raw.decode("utf-8"))
    assert doc["certificate"]["file"] == \
        str(tool_dir) + "/\ufffd-alice.crt"
    rc, raw, err = run("explain", tool_dir / "good.map", odd, raw=True)
    assert b"certificate " + os.fsencode(str(tool_dir)) + \
        b"/\\xFF-alice.crt\n" in raw


# ==========================================================================
# explain: bad input

def test_explain_bad_certificate(tool_dir, certs):
    m = tool_dir / "good.map"
    for f, reason in [(tool_dir / "junk.pem", "not a PEM or DER certificate"),
                      (tool_dir / "empty.pem", "not a PEM or DER certificate"),
                      (tool_dir / "missing.pem", "No such file or directory"),
                      (certs["alice"].key, "not a PEM or DER certificate")]:
        rc, out, err = run("explain", m, f)
        assert rc == 1, f
        assert err == "%s: %s\n" % (f, reason), err
        assert out == ""
        rc, doc = run_json("explain", "--json", m, f)
        assert rc == 1
        assert doc["ok"] is False
        assert doc["errors"] == [{"file": str(f), "line": None,
                                  "reason": reason}]
        assert doc["certificate"] is None
        assert doc["decision"] is None
        assert doc["matches"] == [] and doc["section"] is None


def test_explain_bad_map(tool_dir, certs):
    bad = tool_dir / "bad.map"
    rc, out, err = run("explain", bad, certs["alice"].crt)
    assert rc == 1
    assert len(err.strip().splitlines()) == len(BAD_MAP_PHRASES)
    assert "%s:2: unknown selector type 'emial'" % bad in err
    # the certificate is still shown, without a decision
    assert "  subject   CN=alice,O=Example\n" in out
    assert "decision" not in out
    rc, doc = run_json("explain", "--json", bad, certs["alice"].crt)
    assert rc == 1
    assert [e["line"] for e in doc["errors"]] == sorted(BAD_MAP_PHRASES)
    assert doc["certificate"]["subject"] == "CN=alice,O=Example"
    assert doc["decision"] is None and doc["matches"] == []
    # both bad: every error
    rc, doc = run_json("explain", "--json", bad, tool_dir / "junk.pem")
    assert rc == 1
    assert len(doc["errors"]) == len(BAD_MAP_PHRASES) + 1
    assert doc["errors"][-1]["file"] == str(tool_dir / "junk.pem")


# ==========================================================================
# usage, help, version, man page

@pytest.mark.parametrize("args,message", [
    ([], None),
    (["frobnicate", "x"], "unknown command 'frobnicate'"),
    (["check"], "check needs at least one MAP"),
    (["check", "--json"], "check needs at least one MAP"),
    (["check", "--bogus", "{m}"], "check: unknown option '--bogus'"),
    (["explain", "{m}"], "explain takes one MAP and one CERT"),
    (["explain", "--json", "{m}"], "explain takes one MAP and one CERT"),
    (["explain", "{m}", "{m}", "{m}"], "explain takes one MAP and one CERT"),
    (["explain", "--strict", "{m}", "{m}"],
     "explain: unknown option '--strict'"),
    (["explain", "--ca", "{m}", "{m}", "{m}"],
     "explain: unknown option '--ca'"),
    (["help", "bogus"], "help takes check, explain, diff or compile"),
    (["diff", "{m}", "{m}"], "diff takes MAP-A, MAP-B and at least one CERT"
     " or DIRECTORY"),
    (["diff", "--strict", "{m}", "{m}", "{m}"],
     "diff: unknown option '--strict'"),
    (["compile"], "compile needs a MAP"),
    (["compile", "{m}", "{m}.img", "{m}"], "compile takes one MAP and one OUT"),
    (["compile", "--json", "{m}"], "compile: unknown option '--json'"),
])
def test_usage_errors(tool_dir, args, message):
    args = [a.format(m=tool_dir / "good.map") for a in args]
    rc, out, err = run(*args)
    assert rc == 2
    assert out == ""
    assert err.startswith("certauthz: %s\nusage: certauthz check" % message
                          if message else "usage: certauthz check"), err


def test_help(tool_dir):
    rc, full, err = run("--help")
    assert rc == 0 and err == ""
    assert full.startswith(
        "usage: certauthz check [--json] [--strict] [--ca FILE]... MAP...\n"
        "       certauthz explain [--json] MAP CERT\n"
        "       certauthz diff [--json] MAP-A MAP-B CERT|DIRECTORY...\n"
        "       certauthz compile MAP [OUT]\n"
        "       certauthz help [check|explain|diff|compile]\n"
        "       certauthz --help | --version\n")
    for s in ("unanchored regex", "shadowed", "issuer without CA",
              "--ca FILE", "--strict", "--json", "JSON (--json)",
              "Exit status", "the first one is taken as the leaf",
              "exit 5", "0 mapped; 3 denied"):
        assert s in full, s
    assert run("-h")[1] == full
    assert run("help")[1] == full
    rc, check_help, _ = run("help", "check")
    assert rc == 0
    assert run("check", "--help")[1] == check_help
    assert run("check", "-h")[1] == check_help
    assert "--strict" in check_help and "issuer without CA" in check_help
    assert "certauthz explain [--json] MAP CERT\n  Print" not in check_help
    rc, explain_help, _ = run("help", "explain")
    assert rc == 0
    assert run("explain", "--help")[1] == explain_help
    assert "certauthz explain [--json] MAP CERT\n  Print" in explain_help
    assert "--strict    exit 5" not in explain_help
    assert len(check_help) < len(full) and len(explain_help) < len(full)


def test_version():
    rc, out, err = run("--version")
    assert rc == 0 and re.fullmatch(r"certauthz \d+\.\d+\.\d+\n", out)


def _json_keys(doc, acc):
    if isinstance(doc, dict):
        for k, v in doc.items():
            acc.add(k)
            _json_keys(v, acc)
    elif isinstance(doc, list):
        for v in doc:
            _json_keys(v, acc)
    return acc


def test_every_json_key_is_documented(tool_dir, certs):
    """Every key the tool emits is named in --help, in the man page and in
    the schema comment of tools/certauthz.c."""
    keys = set()
    for args in (
            ["check", "--json", "--ca", certs["root_ca"].crt,
             tool_dir / "good.map", tool_dir / "bad.map",
             tool_dir / "shadow.map"],
            ["explain", "--json", tool_dir / "good.map",
             certs["partner_alice"].crt],
            ["explain", "--json", tool_dir / "good.map", certs["laptop"].crt]):
        _json_keys(json.loads(run(*args)[1]), keys)
    assert {"resident_bytes", "by", "exact_by_type", "sans", "facts",
            "unusable", "decision", "section"} <= keys
    help_text = run("--help")[1]
    man = MAN.read_text()
    source = SOURCE.read_text()
    for k in sorted(keys):
        assert re.search(r"\b%s\b" % re.escape(k), help_text), k
        assert '"%s"' % k in man, k
        assert '"%s"' % k in source, k


def test_one_version(tool_dir):
    """The version is written once (configure.ac): the tool, its JSON and
    the man page all say the same."""
    version = H.VERSION
    assert run("--version")[1].strip() == "certauthz " + version
    out = json.loads(run("check", "--json", tool_dir / "good.map")[1])
    assert out["version"] == version
    man = MAN.read_text()
    assert '\n.TH CERTAUTHZ 1 "2026" "mod_certauthz %s"' % version in man
    assert "@PACKAGE_VERSION@" not in man


def test_man_page(tool_dir):
    man = MAN.read_text()
    assert man.startswith(".\\\"") and "\n.TH CERTAUTHZ 1 " in man
    for opt in ("\\-\\-json", "\\-\\-strict", "\\-\\-ca", "\\-\\-help",
                "\\-\\-version", "help"):
        assert opt in man, opt
    exit_section = man.split(".SH EXIT STATUS")[1].split(".SH")[0]
    for code in range(6):
        assert "\n.B %d\n" % code in exit_section, code
    groff = shutil.which("groff")
    if groff:
        p = subprocess.run([groff, "-man", "-ww", "-z", str(MAN)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stderr == "", p.stderr


# compile

def test_compile_writes_the_image_the_module_reads(tool_dir):
    m = tool_dir / "good.map"
    out = tool_dir / "good.map.img"
    if out.exists():
        out.unlink()
    os.chmod(m, 0o640)
    try:
        rc, o, err = run("compile", m)
    finally:
        os.chmod(m, 0o644)
    assert rc == 0 and err == "", err
    digest = hashlib.sha256(m.read_bytes()).hexdigest()
    data = out.read_bytes()
    assert o.startswith("%s: compiled to %s\n" % (m, out)), o
    assert "  content   sha256 %s\n" % digest in o, o
    assert "  image     %d bytes, format 1\n" % len(data) in o, o
    # the check's counts phrase, and an image header
    check = run("check", m)[1]
    phrase = re.search(r"\d+ rules \([^)]*\)[^\n]*", o).group(0)
    assert phrase in check, (phrase, check)
    assert data[:8] == b"CZMAPIMG"
    assert int.from_bytes(data[8:12], "little") == 1
    # its permissions are the map's
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o640)
    # OUT elsewhere: the same bytes
    rc, o2, _ = run("compile", m, tool_dir / "elsewhere.img")
    assert rc == 0 and (tool_dir / "elsewhere.img").read_bytes() == data


def test_compile_refuses_a_bad_map_and_writes_nothing(tool_dir):
    before = set(os.listdir(tool_dir))
    rc, o, err = run("compile", tool_dir / "bad.map")
    assert rc == 1 and o == ""
    assert "%s:2: unknown selector type 'emial'" % (tool_dir / "bad.map") \
        in err, err
    assert set(os.listdir(tool_dir)) == before
    rc, o, err = run("compile", tool_dir / "good.map",
                     tool_dir / "no-such-dir" / "x.img")
    assert rc == 1 and o == "" and "cannot create a file beside" in err, err
    assert set(os.listdir(tool_dir)) == before


# --------------------------------------------------------------------------
# diff: who changes identity between two maps (the offline shadow map)

NEXT_MAP = """\
email:alice@example.com   alice     staff
cn:bob                    robert    staff
deny serial:{laptop}
cn:laptop                 laptop-user staff
[issuer "{partner}"]
cn~^(.+)$                 partner-$1 partners
"""


@pytest.fixture(scope="module")
def diff_dir(tool_dir, certs):
    d = tool_dir / "clients"
    d.mkdir(exist_ok=True)
    for n in ("alice", "bob", "laptop", "partner_alice"):
        shutil.copy(certs[n].crt, d / ("%s.crt" % n))
    (d / "notes.txt").write_text("not a certificate, not read\n")
    (tool_dir / "next.map").write_text(NEXT_MAP.format(
        laptop=H.LAPTOP_SERIAL, partner=rfc4514(H.PARTNER_CA_SUBJECT)))
    H.make_tree_public(d)
    return d


def test_diff_names_who_changes(tool_dir, diff_dir):
    rc, out, err = run("diff", tool_dir / "good.map", tool_dir / "next.map",
                       diff_dir)
    assert rc == 3 and err == "", (out, err)
    lines = out.splitlines()
    a, b = str(tool_dir / "good.map"), str(tool_dir / "next.map")
    assert lines == [
        "%s/alice.crt  groups  mapped alice [staff,admins] (%s:1)  ->  "
        "mapped alice [staff] (%s:1)" % (diff_dir, a, b),
        # bob was unmapped, now a user of his own
        "%s/bob.crt  outcome  unmapped  ->  mapped robert [staff] (%s:2)"
        % (diff_dir, b),
        # a deny rule wins over the new rule for the same certificate
        "%s/laptop.crt  same  denied (%s:3)" % (diff_dir, a),
        "%s/partner_alice.crt  same  mapped partner-alice [partners] (%s:5)"
        % (diff_dir, a),
        "4 certificates: 2 the same, 2 change (outcome 1, user 0, groups 1)",
    ], out


def test_diff_json_and_exit_status(tool_dir, diff_dir, certs):
    rc, doc = run_json("diff", "--json", tool_dir / "good.map",
                       tool_dir / "next.map", diff_dir / "bob.crt",
                       certs["alice"].crt)
    assert rc == 3 and doc["ok"] and doc["command"] == "diff"
    assert doc["counts"] == {"same": 0, "outcome": 1, "user": 0, "groups": 1}
    bob = doc["certificates"][0]
    assert bob["change"] == "outcome" and bob["a"]["outcome"] == "unmapped"
    assert bob["b"]["user"] == "robert" and bob["b"]["rule"]["line"] == 2
    # the same map twice: nothing changes
    rc, out, _ = run("diff", tool_dir / "good.map", tool_dir / "good.map",
                     diff_dir)
    assert rc == 0 and out.endswith(
        "4 certificates: 4 the same, 0 change (outcome 0, user 0, groups 0)"
        "\n"), out
    # a certificate that cannot be read, a bad map
    rc, out, err = run("diff", tool_dir / "good.map", tool_dir / "next.map",
                       tool_dir / "junk.pem", diff_dir / "bob.crt")
    assert rc == 1 and "junk.pem: not a PEM or DER certificate" in err, err
    assert "1 could not be read" in out, out
    rc, out, err = run("diff", tool_dir / "good.map", tool_dir / "bad.map",
                       diff_dir)
    assert rc == 1 and "bad.map:2: unknown selector type" in err, err


def test_diff_json_keys_documented(tool_dir, diff_dir):
    keys = _json_keys(json.loads(run(
        "diff", "--json", tool_dir / "good.map", tool_dir / "next.map",
        diff_dir)[1]), set())
    assert {"map_a", "map_b", "certificates", "change", "counts"} <= keys
    man = MAN.read_text()
    source = SOURCE.read_text()
    help_text = run("help", "diff")[1]
    for k in sorted(keys):
        assert re.search(r"\b%s\b" % re.escape(k), help_text), k
        assert '"%s"' % k in man, k
        assert '"%s"' % k in source, k
