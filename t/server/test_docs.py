"""Guards that keep the lists written once in the code and the reference
documentation in step (docs/design.md, "Lists written once"): every
directive with its contexts, every Require provider, every refusal reason
and decision counter, every log tag.  They read the sources; no server.
"""

import re

import certauthz_harness as H

REF = (H.SRCDIR / "docs" / "reference.md").read_text()
GLUE = {p.name: p.read_text() for p in sorted(H.SRCDIR.glob("mod_certauthz*.[ch]"))}


def _x_rows(text, macro):
    """The first arguments of the rows of an X-macro list."""
    body = re.search(r"#define %s\(X\)((?:.*\\\n)*.*\n)" % macro, text)
    assert body, macro
    return re.findall(r"X\(\s*([^,)]+)", body.group(1))


def _section(title):
    m = re.search(r"^### %s\n(.*?)(?=^##)" % re.escape(title), REF,
                  re.M | re.S)
    assert m, "no section ### %s in reference.md" % title
    return m.group(1)


def test_directives_documented_with_their_contexts():
    cmds = re.findall(r'AP_INIT_\w+\("(\w+)",\s*\w+,\s*\w+,\s*([A-Z_| ]+),',
                      GLUE["mod_certauthz_config.c"])
    assert len(cmds) >= 5, cmds
    for name, flags in cmds:
        flags = {f.strip() for f in flags.split("|")}
        want = []
        if "RSRC_CONF" in flags:
            want += ["server config", "virtual host"]
        if "ACCESS_CONF" in flags:
            want.append("directory")
        if "OR_AUTHCFG" in flags:
            want.append(".htaccess")
        ctx = re.search(r"^\| Context \| (.*) \|$", _section(name), re.M)
        assert ctx and ctx.group(1) == ", ".join(want), (name, ctx and ctx.group(1))


def test_providers_documented():
    rows = _x_rows(GLUE["mod_certauthz_authz.c"], "PROVIDERS")
    assert "user" in rows and "sha256" in rows, rows
    providers = REF.split("## Require providers")[1].split("\n## ")[0]
    for row in rows:
        assert "cert-%s" % row in providers, row


def _named_rows(text, macro):
    """The quoted names of the rows of an X-macro list."""
    body = re.search(r"#define %s\(X\)((?:.*\\\n)*.*\n)" % macro, text)
    assert body, macro
    return re.findall(r'X\(\w+, "([a-z-]+)"', body.group(1))


def test_reasons_and_counters_documented():
    priv = GLUE["mod_certauthz_private.h"]
    reasons = _named_rows(priv, "CZ_REASONS")
    counters = _named_rows(priv, "CZ_COUNTERS")
    assert "unusable-rule" in reasons and "rule-mismatch" in counters
    audit = REF.split("## Audit lines")[1].split("\n## ")[0]
    row = re.search(r"^\| `reason` \|(.*)$", audit, re.M).group(1)
    assert sorted(re.findall(r"`([a-z-]+)`", row)) == sorted(reasons)
    status = REF.split("## server-status")[1].split("\n## ")[0]
    for c in counters:
        assert "CertAuthzDecisions-%s:" % c in status, c
    dircnt = _named_rows(priv, "CZ_DIR_COUNTERS")
    assert "lookups" in dircnt, dircnt
    for c in dircnt:
        assert "CertAuthzLDAP-%s:" % c in status, c
    shcnt = _named_rows(priv, "CZ_SHADOW_COUNTERS")
    assert "agree" in shcnt, shcnt
    for c in shcnt:
        assert "CertAuthzShadow-%s:" % c in status, c


def test_log_tags_documented():
    used = set()
    for text in GLUE.values():
        used |= set(re.findall(r"CERTAUTHZ\d{4}", text))
    table = REF.split("## Log messages")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `(CERTAUTHZ\d{4})` \|", table, re.M))
    assert len(used) > 10
    assert used == documented, (sorted(used - documented),
                                sorted(documented - used))
