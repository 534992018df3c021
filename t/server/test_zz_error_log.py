"""Runs last (file order): the error log of the whole session has no
[error]/[crit]/[alert]/[emerg] line from certauthz other than those a test
provoked, and no child crashed."""

import re

SEVERE = re.compile(r"\[certauthz:(error|crit|alert|emerg)\]")


def test_no_unexpected_certauthz_errors(server, get):
    # make sure the server ran at least something, whatever ran before
    assert get("/p/user/", "alice").status == 200
    bad = []
    for line in server.error_log_text().splitlines():
        if not SEVERE.search(line):
            continue
        m = re.search(r"\[test (t[0-9a-f]{16})\]", line)
        if m and m.group(1) in server.allowed_error_ids:
            continue
        bad.append(line)
    assert not bad, "\n".join(bad)


def test_no_child_crashed(server):
    crashes = [l for l in server.error_log_text().splitlines()
               if "exit signal" in l or "AH00060" in l or "AH00052" in l]
    assert not crashes, "\n".join(crashes)
    assert server.running()
