"""mod_status integration (README "Status"): server-status shows the
module's decision counters (server-wide, since the last restart) and each
map file with its counts, generation, reloads and last reload error, as
the answering process sees it; ?auto gives the same as Key: value lines.

Its own httpd (module scope) with mod_status.  Only 127.0.0.1."""

import hashlib
import re
import time
from pathlib import Path

import pytest

import certauthz_harness as H

MAP = """\
email:alice@example.com  alice  staff
cn:bob                   bob    others
cn~^svc-                 svc    services
dns:*.build.example.com  robot  robots
deny serial:%s
[issuer "%s"]
cn:x  x
""" % (H.LAPTOP_SERIAL, H.PARTNER_CA_DN)

COUNTERS = ["granted", "no-certificate", "not-verified", "deny-rule",
            "unmapped", "rule-mismatch", "cert-error"]


def _config(srv):
    r = srv.root
    client_ca = 'SSLCACertificateFile "%s/conf/ssl/clients-ca.pem"\n' % r
    return """\
# two child processes: the counters must add up across them
StartServers 2
MinSpareThreads 16
CertAuthzReloadInterval 1
<Location "/server-status">
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
<Location "/m">
    CertAuthzMapFile conf/certauthz/status.map
    Require cert-group staff
</Location>
%s
%s
""" % (H.ssl_vhost(srv.ports[0], client_ca + "SSLVerifyClient optional"),
       H.ssl_vhost(srv.ports[1], client_ca + "SSLVerifyClient optional_no_ca"))


@pytest.fixture(scope="module")
def st(workdir, certs):
    s = H.ExtraHttpd(workdir / "status" / "server", certs, _config,
                     nports=2, files={"conf/certauthz/status.map": MAP},
                     docs=["/m"], modules=H.EXTRA_MODULES + ["status"])
    s.setup()
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


def status_auto(srv):
    r = srv.get("/server-status?auto")
    assert r.status == 200, r
    text = r.body.decode()
    counts = {}
    for name in COUNTERS:
        m = re.search(r"^CertAuthzDecisions-%s: (\d+)$" % name, text, re.M)
        assert m, (name, text)
        counts[name] = int(m.group(1))
    maps = {}
    for m in re.finditer(r"^CertAuthzMap: (\S+) (.*) last_error=(.*)$",
                         text, re.M):
        row = dict(kv.split("=", 1) for kv in m.group(2).split(" "))
        row["last_error"] = m.group(3)
        maps[m.group(1)] = row
    return counts, maps, text


def test_counters_count_each_kind_of_decision(st, certs):
    before, _, text = status_auto(st)
    assert "CertAuthzDecisionsScope: server" in text, text
    expect = {
        ("alice", 0): (200, "granted"),
        ("bob", 0): (403, "rule-mismatch"),
        (None, 0): (403, "no-certificate"),
        ("eve", 0): (403, "unmapped"),
        ("laptop", 0): (403, "deny-rule"),
        ("untrusted_bob", 1): (403, "not-verified"),
    }
    want = dict.fromkeys(COUNTERS, 0)
    for (name, port), (status, counter) in expect.items():
        r = st.get("/m/", certs[name] if name else None,
                   port=st.ports[port])
        assert r.status == status, (name, r)
        want[counter] += 1
    after, _, _ = status_auto(st)
    delta = {k: after[k] - before[k] for k in COUNTERS}
    assert delta == want, delta


def test_counters_are_server_wide(st, certs):
    """Requests spread over keep-alive connections and threads: every
    decision is counted once, whatever process or thread made it."""
    before, _, _ = status_auto(st)
    H.run_concurrently(["a", "b", "c", "d"], lambda _: st.client.get_many(
        st.port, ["/m/ok.txt"] * 10, cert=certs["alice"]))
    n = 40
    after, _, _ = status_auto(st)
    assert after["granted"] - before["granted"] == n, (before, after)


def test_map_rows(st):
    _, maps, _ = status_auto(st)
    path = str(st.root / "conf" / "certauthz" / "status.map")
    row = maps[path]
    assert (row["rules"], row["exact"], row["glob"], row["regex"],
            row["deny"], row["sections"]) == ("5", "3", "1", "1", "1", "1"), row
    assert row["interval"] == "1" and row["last_error"] == "-", row
    assert int(row["generation"]) >= 1
    assert abs(int(row["loaded"]) - time.time()) < 3600, row
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert row["sha256"] == digest, row
    html = st.get("/server-status").body.decode()
    assert "<h2>mod_certauthz %s</h2>" % H.VERSION in html
    assert "<code>%s</code>" % digest in html
    assert path in html and "all processes" in html, html[-3000:]


def test_reload_and_reload_error_are_shown(st, certs):
    path = str(st.root / "conf" / "certauthz" / "status.map")
    _, maps, _ = status_auto(st)
    gen0, reloads0 = int(maps[path]["generation"]), int(maps[path]["reloads"])
    st.write_map("status.map", MAP + "# changed\n")
    deadline = time.monotonic() + 10
    while True:
        _, maps, _ = status_auto(st)
        if int(maps[path]["reloads"]) > reloads0 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert int(maps[path]["generation"]) > gen0, maps[path]
    changed = hashlib.sha256((MAP + "# changed\n").encode()).hexdigest()
    assert maps[path]["sha256"] == changed, maps[path]
    st.write_map("status.map", MAP + "foo:bar  x\n")
    deadline = time.monotonic() + 10
    while True:
        _, maps, _ = status_auto(st)
        if maps[path]["last_error"] != "-" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    err = maps[path]["last_error"]
    assert "status.map:8: unknown selector type" in err, err
    assert maps[path]["sha256"] == changed, maps[path]  # the old map stays
    html = st.get("/server-status").body.decode()
    assert "status.map:8: unknown selector type" in html, html[-3000:]
    st.write_map("status.map", MAP)
