"""The README's troubleshooting walkthrough, run as written (issue 5: "the
README's troubleshooting walkthrough works as written").

The README marks its parts with HTML comments:
  <!-- walkthrough: config -->        httpd configuration (inside the vhost)
  <!-- walkthrough: file PATH -->     a file under the ServerRoot
  <!-- walkthrough: log NAME -->      an error-log line the server writes
  <!-- walkthrough: run -->           a shell session: `$ command` lines,
                                      each followed by its exact output
In expected text, `…` stands for anything (what differs between runs).
Commands run in the ServerRoot with the build directory first on PATH.
The certificates are made here as the README describes them."""

import http.client
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import certauthz_harness as H

README = Path(H.SRCDIR) / "README.md"
BUILD = Path(os.environ.get("CERTAUTHZ_BUILDDIR", H.SRCDIR))


def walkthrough_blocks():
    """[(kind, arg, text)] of the README's troubleshooting section, in
    order; code blocks lose their common indentation."""
    text = README.read_text()
    start = text.index("## Troubleshooting")
    end = text.index("\n## ", start + 1)
    return H.marked_blocks(text[start:end], "walkthrough")


def matches(expected, actual):
    """`…` in an expected line stands for any text."""
    rx = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(rx, actual) is not None


def assert_lines(expected, actual, what):
    assert len(expected) == len(actual), (what, expected, actual)
    for e, a in zip(expected, actual):
        assert matches(e, a), (what, e, a)


def sessions(text):
    """[(command, [expected output lines])] of a `run` block."""
    out = []
    for line in text.split("\n"):
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, "output before the first command: %r" % line
            out[-1][1].append(line)
    return out


@pytest.fixture(scope="module")
def wt(workdir, certs):
    blocks = walkthrough_blocks()
    kinds = [k for k, _, _ in blocks]
    assert kinds.count("config") == 1 and "run" in kinds, kinds
    config = next(t for k, _, t in blocks if k == "config")
    files = {a: t + "\n" for k, a, t in blocks if k == "file"}
    d = workdir / "walkthrough"
    d.mkdir(parents=True, exist_ok=True)
    ca = H.mkcert(d / "staff-ca", "--ca", "--subject",
                  "/O=Example/CN=Example Staff CA")
    carol = H.mkcert(d / "carol", "--issuer", ca.prefix, "--subject",
                     "/O=Example/OU=Finance/CN=Carol Jones", "--san",
                     "email:Carol.Jones@Example.com", "--serial", "1C0FFEE5")
    dave = H.mkcert(d / "laptop", "--issuer", ca.prefix, "--subject",
                    "/O=Example/CN=Dave Smith", "--san",
                    "email:dave@example.com", "--serial", "4F2A9C01")
    files["conf/ssl/staff-ca.pem"] = Path(ca.crt).read_text()
    files["carol.pem"] = Path(carol.crt).read_text()
    files["laptop.pem"] = Path(dave.crt).read_text()

    def body(srv):
        return "CertAuthzReloadInterval 1\n" + H.ssl_vhost(
            srv.port, 'SSLCACertificateFile "%s/conf/ssl/staff-ca.pem"\n'
            "SSLVerifyClient optional\n%s" % (srv.root, config))

    s = H.ExtraHttpd(d / "server", certs, body, files=files,
                     docs=["/staff"])
    s.setup()
    s.start()
    s.carol = carol
    s.blocks = blocks
    yield s
    assert s.stop(), "httpd did not stop"


def run_session(srv, text):
    env = dict(os.environ, PATH="%s:%s" % (BUILD, os.environ["PATH"]))
    for cmd, expected in sessions(text):
        p = subprocess.run(cmd, shell=True, cwd=str(srv.root), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = p.stdout.decode().splitlines() + p.stderr.decode().splitlines()
        assert_lines(expected, out, cmd)


def log_line(srv, expected, since, timeout=20):
    """Wait (bounded) for an error-log line after offset `since` matching
    the expected line."""
    deadline = time.monotonic() + timeout
    while True:
        lines = srv.error_log_text()[since:].splitlines()
        hits = [l for l in lines if matches(expected, l)]
        if hits or time.monotonic() > deadline:
            return hits, lines
        time.sleep(0.2)


def test_walkthrough_as_written(wt):
    blocks = wt.blocks
    logs = {a: t for k, a, t in blocks if k == "log"}
    runs = [t for k, _, t in blocks if k == "run"]
    assert set(logs) == {"carol", "reload"} and len(runs) == 3, blocks

    # Carol keeps one connection open all along
    conn = http.client.HTTPSConnection(
        "127.0.0.1", wt.port, timeout=15,
        context=wt.client.context(wt.carol))
    try:
        since = len(wt.error_log_text())
        conn.request("GET", "/staff/")
        r = conn.getresponse()
        r.read()
        sock = conn.sock.getsockname()
        assert r.status == 403
        hits, lines = log_line(wt, logs["carol"], since)
        assert len(hits) == 1, (logs["carol"], lines)

        run_session(wt, runs[0])                 # explain: unmapped
        since = len(wt.error_log_text())
        run_session(wt, runs[1])                 # fix, check, mv
        hits, lines = log_line(wt, logs["reload"], since)
        assert hits, (logs["reload"], lines)

        conn.request("GET", "/staff/ok.txt")
        r = conn.getresponse()
        r.read()
        assert conn.sock.getsockname() == sock, "connection not kept"
        assert r.status == 200 and \
            r.getheader("X-Certauthz-User") == "carol", r.getheaders()
    finally:
        conn.close()
    run_session(wt, runs[2])                     # the lost laptop
