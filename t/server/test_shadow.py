"""Shadow maps (SPEC section 7; issue 13): the rollout walkthrough of
docs/reference.md ("Shadow maps"), run as written, against a real httpd.

The walkthrough marks its parts with HTML comments:
  <!-- rollout: file PATH -->   a file under the ServerRoot (written when
                                the walkthrough reaches it; the first ones
                                before the server starts)
  <!-- rollout: config -->      configuration inside the virtual host
  <!-- rollout: log -->         CERTAUTHZ0110 lines the server writes for
                                the /staff/ requests, `…` standing for
                                anything
  <!-- rollout: shell -->       commands run in the ServerRoot
It checks that the candidate never changes a decision, that each
disagreement is one line with both identities and rules, the counters,
that a fixed candidate is reloaded and agrees, and that promotion by
rename makes the change.  Every wait is bounded.  Only 127.0.0.1.
"""

import re
import subprocess
import time

import pytest

import certauthz_harness as H

REF = H.SRCDIR / "docs" / "reference.md"
USERS = ["alice", "bob", "carol"]


def blocks():
    text = REF.read_text()
    start = text.index("### Walkthrough: moving a map")
    end = text.index("\n## ", start)
    return H.marked_blocks(text[start:end], "rollout")


def matches(expected, actual):
    rx = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(rx, actual) is not None


def status(srv):
    r = srv.get("/server-status?auto")
    assert r.status == 200, r
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^CertAuthzShadow-(\S+): (\d+)$", r.body.decode(), re.M)}


def shadow_lines(srv, r):
    return [l[l.index("CERTAUTHZ0110:"):] for l in srv.log_lines(r.test_id)
            if "CERTAUTHZ0110:" in l]


def wait_until(what, fn, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            assert v, "not within %ds: %s" % (timeout, what)
            return v
        time.sleep(0.2)


@pytest.fixture(scope="module")
def walk(workdir, certs):
    base = workdir / "shadow"
    d = base / "pki"
    d.mkdir(parents=True)
    ca = H.mkcert(d / "ca", "--ca", "--subject", "/O=Example/CN=Staff CA")
    people = {
        "alice": H.mkcert(d / "alice", "--issuer", ca.prefix, "--subject",
                          "/O=Example/CN=alice", "--san",
                          "email:alice@example.com"),
        "bob": H.mkcert(d / "bob", "--issuer", ca.prefix, "--subject",
                        "/O=Example/CN=bob", "--san", "email:bob@example.com"),
        "carol": H.mkcert(d / "carol", "--issuer", ca.prefix, "--subject",
                          "/O=Example/CN=carol"),
    }
    H.make_tree_public(d)
    steps = blocks()
    kinds = [k for k, _, _ in steps]
    assert kinds == ["file", "file", "config", "log", "file", "shell",
                     "shell"], kinds
    config = steps[2][2]
    files = {arg: text + "\n" for k, arg, text in steps[:2]}

    def body(srv):
        return "\n".join([
            '<Location "/server-status">\nSetHandler server-status\n'
            "Require ip 127.0.0.1\n</Location>",
            H.ssl_vhost(srv.ports[0], "\n".join([
                'SSLCACertificateFile "%s"' % ca.crt,
                "SSLVerifyClient optional", config]))])

    srv = H.ExtraHttpd(base / "server", certs, body, files=files,
                       docs=["/staff", "/admin"],
                       modules=H.EXTRA_MODULES + ["status"])
    srv.setup()
    srv.start()
    yield srv, people, steps
    assert srv.stop(), "httpd did not stop"


def visit(walk, path):
    srv, people = walk[0], walk[1]
    return {u: srv.get(path, people[u]) for u in USERS}


def run_shell(srv, text):
    for cmd in [l for l in text.split("\n") if l.strip()]:
        p = subprocess.run(cmd, shell=True, cwd=str(srv.root),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        assert p.returncode == 0, (cmd, p.stdout)


def test_rollout_walkthrough_as_written(walk):
    srv, people, steps = walk
    expected = steps[3][2].split("\n")

    # 2. the candidate changes nothing; its disagreements are logged
    before = status(srv)
    staff = visit(walk, "/staff/")
    assert {u: r.status for u, r in staff.items()} == dict.fromkeys(USERS,
                                                                    200)
    got = [l for u in USERS for l in shadow_lines(srv, staff[u])]
    assert len(got) == len(expected), (got, srv.error_log_tail())
    for e, a in zip(expected, got):
        assert matches(e, a), (e, a)
    assert shadow_lines(srv, staff["alice"]) == []
    after = status(srv)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    assert delta == {"agree": 1, "disagree-outcome": 1, "disagree-user": 0,
                     "disagree-groups": 1}, delta
    admin = visit(walk, "/admin/")
    assert {u: r.status for u, r in admin.items()} == dict.fromkeys(USERS,
                                                                    403)

    # 3. the fixed candidate, by rename: reloaded, carol agrees
    kind, path, text = steps[4]
    (srv.root / path).write_text(text + "\n")
    run_shell(srv, steps[5][2])
    wait_until("the fixed candidate answers for carol", lambda: not
               shadow_lines(srv, srv.get("/staff/", people["carol"])))
    r = srv.get("/staff/", people["bob"])
    assert r.status == 200
    lines = shadow_lines(srv, r)
    assert len(lines) == 1 and 'shadow="groups"' in lines[0], lines
    assert 'shadow_generation="2"' in lines[0], lines

    # 4. promotion by rename: bob is an admin, nobody disagrees
    assert srv.get("/admin/", people["bob"]).status == 403
    run_shell(srv, steps[6][2])
    wait_until("the promoted map gives bob admins",
               lambda: srv.get("/admin/", people["bob"]).status == 200)
    for u, r in visit(walk, "/staff/").items():
        assert r.status == 200, (u, r)
        assert shadow_lines(srv, r) == [], (u, shadow_lines(srv, r))
    assert (srv.root / "conf/certauthz/staff.map.previous").read_text() \
        == steps[0][2] + "\n"
    assert srv.get("/admin/", people["alice"]).status == 403


def test_bad_candidate_is_a_configuration_error(workdir):
    root = workdir / "shadow-ct"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "bad.map").write_text("# candidate\ncn:alice\n")
    rc, out, _ = H.configtest(root, "CertAuthzShadowMapFile conf/bad.map\n")
    assert rc != 0, out
    assert "bad.map:2: missing user" in out, out


def test_readme_diff_example_as_written(walk, tmp_path):
    """README, "The certauthz tool", diff: the walkthrough's two maps and
    its three people, the command and its output as printed there."""
    srv, people, steps = walk
    readme = (H.SRCDIR / "README.md").read_text()
    section = readme[readme.index("### diff"):readme.index("### compile")]
    block = section.split("```\n", 2)[1]
    cmd, *expected = block.rstrip("\n").split("\n")
    assert cmd.startswith("$ certauthz diff "), cmd
    for _, path, text in steps[:2]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text + "\n")
    (tmp_path / "clients").mkdir()
    for u, c in people.items():
        (tmp_path / "clients" / ("%s.crt" % u)).write_text(open(c.crt).read())
    args = cmd[len("$ certauthz "):].split()
    p = subprocess.run([str(H.BUILDDIR / "certauthz")] + args,
                       cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 3, p.stderr
    assert p.stdout.decode().rstrip("\n").split("\n") == expected
