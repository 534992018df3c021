"""Live map reload (SPEC section 3, CertAuthzReloadInterval): a changed map
takes effect within about the interval, in every process and thread,
without a restart and without failing or wrong requests meanwhile; a
half-written, empty, broken or deleted file never replaces the map in
force.

Its own httpd (module scope), CertAuthzReloadInterval 1 at server level;
the second vhost says 0 for a map only it names.  Every map here maps
alice's certificate (email:alice@example.com) to a user that names the
map's version, so each answer tells which version served it.  Only
127.0.0.1; every wait is bounded.
"""

import http.client
import os
import re
import threading
import time

import pytest

import certauthz_harness as H

MAPS = ["live", "keep", "inplace", "trunc", "bad", "gone", "nonl", "load",
        "still", "ht", "again", "future", "slow", "perm", "emfile", "link",
        "ht2", "race"]
LOCATIONS = [("/%s" % m, "CertAuthzMapFile conf/certauthz/%s.map\n"
              "Require cert-mapped" % m)
             for m in MAPS if m not in ("still", "ht", "ht2")]


def version(name, v, extra=""):
    return "# %s, version %s\n%semail:alice@example.com  alice-%s  %s\n" % (
        name, v, extra, v, v)


def _config(srv):
    r = srv.root
    client_ca = 'SSLCACertificateFile "%s/conf/ssl/clients-ca.pem"\n' % r
    locs = "\n".join('<Location "%s">\n%s\n</Location>' % (p, body)
                     for p, body in LOCATIONS)
    return "\n".join([
        "CertAuthzReloadInterval 1",
        locs,
        '<Directory "%s/htdocs/ht">\n    AllowOverride AuthConfig\n'
        '</Directory>' % r,
        '<Directory "%s/htdocs/ht2">\n    AllowOverride AuthConfig\n'
        '</Directory>' % r,
        H.ssl_vhost(srv.ports[0], client_ca + "SSLVerifyClient optional"),
        H.ssl_vhost(srv.ports[1], client_ca + """\
SSLVerifyClient optional
CertAuthzReloadInterval 0
<Location "/still">
    CertAuthzMapFile conf/certauthz/still.map
    Require cert-mapped
</Location>"""),
    ])


@pytest.fixture(scope="module")
def rl(workdir, certs):
    files = {"conf/certauthz/%s.map" % m: version(m, "v1") for m in MAPS}
    files["htdocs/ht/.htaccess"] = (
        "CertAuthzMapFile conf/certauthz/ht.map\nRequire cert-mapped\n")
    files["htdocs/ht2/.htaccess"] = (
        "CertAuthzMapFile conf/certauthz/ht2.map\nRequire cert-mapped\n")
    s = H.ExtraHttpd(workdir / "live-reload" / "server", certs, _config,
                     nports=2, files=files, docs=[p for p, _ in LOCATIONS]
                     + ["/still", "/ht", "/ht2"])
    s.setup()
    s.start()
    yield s
    assert s.stop(), "httpd did not stop"


def map_path(srv, name):
    return srv.root / "conf" / "certauthz" / ("%s.map" % name)


def answer(srv, name, cert, port=None):
    r = srv.get("/%s/" % name, cert, port=port)
    return r.status, r.user


def wait_for(srv, name, cert, want, timeout=8.0, port=None):
    """Poll (bounded) until /name/ answers `want`; every answer seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(answer(srv, name, cert, port))
        if seen[-1] == want:
            break
        time.sleep(0.1)
    return seen


def log_lines(srv, tag, name):
    return [l for l in srv.error_log_text().splitlines()
            if tag in l and ("/%s.map" % name) in l]


def per_process(lines):
    """{pid: [lines]}: each child process reloads on its own."""
    out = {}
    for l in lines:
        out.setdefault(re.search(r"\[pid (\d+):", l).group(1), []).append(l)
    return out


def hold(srv, name, cert, want, seconds):
    """Every answer for `seconds` (polled) is `want`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert answer(srv, name, cert) == want
        time.sleep(0.2)


def test_renamed_map_takes_effect_without_restart(rl, certs):
    alice = certs["alice"]
    assert answer(rl, "live", alice) == (200, "alice-v1")
    before = rl.error_log_text().count("AH00493")   # graceful restarts
    rl.write_map("live.map", version("live", "v2"))
    seen = wait_for(rl, "live", alice, (200, "alice-v2"))
    assert seen[-1] == (200, "alice-v2"), seen
    # only the two versions, never a failure in between
    assert set(seen) <= {(200, "alice-v1"), (200, "alice-v2")}, seen
    r = rl.get("/live/", alice)
    assert r.rule == "%s:2" % map_path(rl, "live"), r.headers
    assert rl.error_log_text().count("AH00493") == before
    lines = log_lines(rl, "CERTAUTHZ0030:", "live")
    assert lines and re.search(r"generation \d+ \(was \d+\), 1 rules", lines[-1])


def test_keepalive_connection_sees_the_new_map(rl, certs):
    """The per-connection identity cache is invalidated by a reload: one
    TLS connection, the same certificate, a new answer."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", rl.port, timeout=15,
        context=rl.client.context(certs["alice"]))
    try:
        def ask():
            conn.request("GET", "/keep/ok.txt")
            r = conn.getresponse()
            r.read()
            return r.status, r.getheader("X-Certauthz-User"), \
                conn.sock.getsockname()
        st, user, first_sock = ask()
        assert (st, user) == (200, "alice-v1")
        rl.write_map("keep.map", version("keep", "v2"))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            st, user, sock = ask()
            assert sock == first_sock, "the connection was not kept"
            assert (st, user) in {(200, "alice-v1"), (200, "alice-v2")}
            if user == "alice-v2":
                break
            time.sleep(0.1)
        assert (st, user) == (200, "alice-v2")
    finally:
        conn.close()


def test_in_place_write_is_never_loaded_half_written(rl, certs):
    """A writer rewrites the map in place (same inode: truncate, then half
    lines, pausing 0.15 s each time) while a client asks all along: every
    answer comes from the old or the finished file, and the only reload
    logged is the finished file's."""
    alice = certs["alice"]
    name = "inplace"
    final = ["# rewritten in place, slowly\n"] + \
        ["cn:filler-%d  filler  f\n" % i for i in range(5)] + \
        ["email:alice@example.com  alice-v3  v3\n"]
    answers = []
    stop = threading.Event()

    def poll():
        for _ in range(2000):
            if stop.is_set():
                return
            answers.append(answer(rl, name, alice))
            time.sleep(0.03)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        with open(map_path(rl, name), "r+") as f:
            f.truncate(0)
            f.flush()
            time.sleep(0.15)
            for line in final:
                half = len(line) // 2
                for part in (line[:half], line[half:]):
                    f.write(part)
                    f.flush()
                    time.sleep(0.15)
        seen = wait_for(rl, name, alice, (200, "alice-v3"))
        assert seen[-1] == (200, "alice-v3"), seen
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()
    wrong = [a for a in answers
             if a not in {(200, "alice-v1"), (200, "alice-v3")}]
    assert not wrong, wrong
    assert (200, "alice-v3") in answers + seen
    lines = log_lines(rl, "CERTAUTHZ0030:", name)
    assert lines and all(", 6 rules," in l for l in lines), lines
    assert all(len(v) == 1 for v in per_process(lines).values()), lines


def test_truncated_map_keeps_the_old_one(rl, certs):
    alice = certs["alice"]
    path = map_path(rl, "trunc")
    with open(path, "r+") as f:
        f.truncate(0)
    hold(rl, "trunc", alice, (200, "alice-v1"), 3)
    lines = log_lines(rl, "CERTAUTHZ0034:", "trunc")
    assert lines and all("is empty" in l for l in lines), lines
    assert all(len(v) == 1 for v in per_process(lines).values()), lines
    # the next complete version is loaded
    rl.write_map("trunc.map", version("trunc", "v2"))
    assert wait_for(rl, "trunc", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")


def test_map_without_final_newline_is_not_loaded(rl, certs):
    alice = certs["alice"]
    rl.write_map("nonl.map", version("nonl", "v2").rstrip("\n"))
    hold(rl, "nonl", alice, (200, "alice-v1"), 3)
    lines = log_lines(rl, "CERTAUTHZ0034:", "nonl")
    assert lines and all("newline" in l for l in lines), lines
    assert all(len(v) == 1 for v in per_process(lines).values()), lines
    with open(map_path(rl, "nonl"), "a") as f:       # the writer finishes
        f.write("\n")
    assert wait_for(rl, "nonl", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")


def test_bad_map_keeps_the_old_one_and_is_retried_when_changed(rl, certs):
    alice = certs["alice"]
    path = map_path(rl, "bad")
    bad = version("bad", "v2", extra="foo:bar  someone\ncn~(  broken\n")
    rl.write_map("bad.map", bad)
    hold(rl, "bad", alice, (200, "alice-v1"), 3)
    errs = log_lines(rl, "CERTAUTHZ0031:", "bad")
    # every error with FILE:LINE, then the summary
    assert any("%s:2: unknown selector type" % path in l for l in errs), errs
    assert any("%s:3: bad regex" % path in l for l in errs), errs
    assert any("not reloaded: generation" in l for l in errs), errs
    n = len(errs)
    hold(rl, "bad", alice, (200, "alice-v1"), 2.5)
    assert len(log_lines(rl, "CERTAUTHZ0031:", "bad")) == n, \
        "an unchanged bad file was read again"
    rl.write_map("bad.map", bad)                      # changed again: retried
    deadline = time.monotonic() + 8
    while len(log_lines(rl, "CERTAUTHZ0031:", "bad")) == n:
        assert time.monotonic() < deadline, "not retried"
        assert answer(rl, "bad", alice) == (200, "alice-v1")
        time.sleep(0.2)
    rl.write_map("bad.map", version("bad", "v3"))    # fixed
    assert wait_for(rl, "bad", alice, (200, "alice-v3"))[-1] == \
        (200, "alice-v3")


def test_deleted_map_keeps_the_old_one(rl, certs):
    alice = certs["alice"]
    os.unlink(map_path(rl, "gone"))
    hold(rl, "gone", alice, (200, "alice-v1"), 3)
    lines = log_lines(rl, "CERTAUTHZ0032:", "gone")
    assert lines, lines
    assert all(len(v) == 1 for v in per_process(lines).values()), lines
    rl.write_map("gone.map", version("gone", "v2"))
    assert wait_for(rl, "gone", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")


def test_htaccess_map_is_reloaded(rl, certs):
    alice = certs["alice"]
    assert answer(rl, "ht", alice) == (200, "alice-v1")
    rl.write_map("ht.map", version("ht", "v2"))
    assert wait_for(rl, "ht", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")


def test_interval_zero_reloads_only_at_restart(rl, certs):
    alice = certs["alice"]
    port = rl.ports[1]
    assert answer(rl, "still", alice, port) == (200, "alice-v1")
    rl.write_map("still.map", version("still", "v2"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert answer(rl, "still", alice, port) == (200, "alice-v1")
        time.sleep(0.2)
    rl.graceful_restart()
    seen = wait_for(rl, "still", alice, (200, "alice-v2"), timeout=20,
                    port=port)
    assert seen[-1] == (200, "alice-v2"), seen


def test_reload_under_concurrent_load(rl, certs):
    """Four keep-alive connections ask all along while the map is replaced
    every second, alternating two versions: no failure, no answer from
    neither version, both versions seen, and every replaced version
    freed."""
    alice = certs["alice"]
    ok = {(200, "alice-a"), (200, "alice-b")}
    rl.write_map("load.map", version("load", "a"))
    assert wait_for(rl, "load", alice, (200, "alice-a"))[-1] == \
        (200, "alice-a")
    reloads_before = len(log_lines(rl, "CERTAUTHZ0030:", "load"))
    stop = threading.Event()
    results = {}

    def client(i):
        got, bad = [], []
        conn = http.client.HTTPSConnection(
            "127.0.0.1", rl.port, timeout=15,
            context=rl.client.context(alice))
        try:
            for _ in range(20000):
                if stop.is_set():
                    break
                try:
                    conn.request("GET", "/load/ok.txt")
                    r = conn.getresponse()
                    r.read()
                    a = (r.status, r.getheader("X-Certauthz-User"))
                except (OSError, http.client.HTTPException) as e:
                    a = ("error", repr(e))
                    conn.close()
                (got if a in ok else bad).append(a)
        finally:
            conn.close()
        results[i] = (got, bad)

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(8):
            time.sleep(1.0)
            rl.write_map("load.map", version("load", "b" if k % 2 == 0
                                             else "a"))
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    got = [a for g, _ in results.values() for a in g]
    bad = [a for _, b in results.values() for a in b]
    assert len(results) == 4
    assert not bad, bad[:10]
    assert {a for a in got} == ok, "both versions served"
    reloads = len(log_lines(rl, "CERTAUTHZ0030:", "load")) - reloads_before
    assert reloads >= 4, reloads
    # every replaced version is freed once no request holds it
    deadline = time.monotonic() + 8
    while True:
        gens_loaded = set()
        for l in log_lines(rl, "CERTAUTHZ0030:", "load"):
            m = re.search(r"\(was (\d+)\)", l)
            gens_loaded.add((l.split("[pid ")[1].split(":")[0], m.group(1)))
        freed = set()
        for l in log_lines(rl, "CERTAUTHZ0036:", "load"):
            m = re.search(r"generation (\d+) freed", l)
            freed.add((l.split("[pid ")[1].split(":")[0], m.group(1)))
        if gens_loaded <= freed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert gens_loaded <= freed, (gens_loaded - freed)


# ---- review additions ------------------------------------------------------

import ctypes  # noqa: E402
import select  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402


def test_a_reloaded_map_is_not_read_again(rl, certs):
    """Once loaded, an unchanged file is not loaded again at every check
    (f->sig must follow the version in force)."""
    alice = certs["alice"]
    rl.write_map("again.map", version("again", "v2"))
    assert wait_for(rl, "again", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")
    hold(rl, "again", alice, (200, "alice-v2"), 3.5)
    lines = log_lines(rl, "CERTAUTHZ0030:", "again")
    assert lines and all(len(v) == 1 for v in per_process(lines).values()), \
        lines


def test_map_with_mtime_in_the_future_is_loaded(rl, certs):
    """A file whose mtime is ahead of this host's clock (NFS, a skewed
    writer) is loaded once it has been seen unchanged for the settle time,
    not when the clock catches up."""
    alice = certs["alice"]
    path = map_path(rl, "future")
    tmp = path.with_name(".future.tmp")
    tmp.write_text(version("future", "v2"))
    os.chmod(tmp, 0o644)
    t = time.time() + 3600
    os.utime(tmp, (t, t))
    os.replace(tmp, path)
    assert wait_for(rl, "future", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")


def _pairs(srv, tag, name, rx):
    out = set()
    for l in log_lines(srv, tag, name):
        m = re.search(rx, l)
        out.add((re.search(r"\[pid (\d+):", l).group(1), m.group(1)))
    return out


def test_version_in_use_is_freed_only_after_its_request(rl, certs):
    """A request whose response is stalled (the client does not read a
    large body) holds its version across a reload: that version is not
    freed while the request lasts, and is freed soon after it ends."""
    alice = certs["alice"]
    big = rl.docroot / "slow" / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    os.chmod(big, 0o644)
    was = r"\(was (\d+)\)"
    freed = r"generation (\d+) freed"
    conn = http.client.HTTPSConnection(
        "127.0.0.1", rl.port, timeout=30, context=rl.client.context(alice))
    try:
        conn.request("GET", "/slow/big.bin")
        r = conn.getresponse()      # headers only: the body stalls
        assert (r.status, r.getheader("X-Certauthz-User")) == \
            (200, "alice-v1")
        rl.write_map("slow.map", version("slow", "v2"))
        assert wait_for(rl, "slow", alice, (200, "alice-v2"))[-1] == \
            (200, "alice-v2")
        time.sleep(2.5)             # several passes of the reload thread
        held = _pairs(rl, "CERTAUTHZ0030:", "slow", was) - \
            _pairs(rl, "CERTAUTHZ0036:", "slow", freed)
        assert held, "a version was freed while a request still held it"
    finally:
        conn.close()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        left = _pairs(rl, "CERTAUTHZ0030:", "slow", was) - \
            _pairs(rl, "CERTAUTHZ0036:", "slow", freed)
        if not left:
            break
        time.sleep(0.3)
    assert not left, left
    big.unlink()


def test_unreadable_map_is_reported_as_such_and_retried(rl, certs):
    """A map the children cannot open (mode 000; they run as User) keeps
    the old version, and the log says why (not 'being written')."""
    alice = certs["alice"]
    path = map_path(rl, "perm")
    tmp = path.with_name(".perm.tmp")
    tmp.write_text(version("perm", "v2"))
    os.chmod(tmp, 0)
    os.replace(tmp, path)
    hold(rl, "perm", alice, (200, "alice-v1"), 3)
    lines = [l for l in rl.error_log_text().splitlines()
             if "/perm.map" in l and "CERTAUTHZ00" in l]
    os.chmod(path, 0o644)           # fixed: the ctime changes, it is retried
    assert wait_for(rl, "perm", alice, (200, "alice-v2"))[-1] == \
        (200, "alice-v2")
    assert any("Permission denied" in l for l in lines), lines
    assert not any("newline" in l for l in lines), lines


def _children(srv):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == srv.proc.pid:
            kids.append(int(d))
    return kids


def _prlimit(pid, soft, hard):
    """prlimit(1) as the child's user: without CAP_SYS_RESOURCE only the
    same user may change another process's limits."""
    kw = {"user": "nobody", "group": "nogroup"} if H.IS_ROOT else {}
    subprocess.run(["prlimit", "--pid", str(pid),
                    "--nofile=%s:%s" % (soft, hard)], check=True, **kw)


def test_transient_open_failure_does_not_block_the_reload(rl, certs):
    """The reload thread cannot open the file for a moment (EMFILE: the
    child is out of file descriptors under load).  Once it can again, the
    changed file is loaded: a transient error is not 'this file is bad'."""
    alice = certs["alice"]
    assert answer(rl, "emfile", alice) == (200, "alice-v1")
    kids = _children(rl)
    assert kids
    old = {}
    try:
        for pid in kids:
            with open("/proc/%d/limits" % pid) as f:
                soft, hard = [l.split()[3:5] for l in f
                              if l.startswith("Max open files")][0]
            _prlimit(pid, 0, hard)      # no new descriptor at all
            old[pid] = (soft, hard)
        rl.write_map("emfile.map", version("emfile", "v2"))
        time.sleep(3)               # interval 1 s + settle: one attempt
    finally:
        for pid, lim in old.items():
            _prlimit(pid, *lim)
    seen = wait_for(rl, "emfile", alice, (200, "alice-v2"), timeout=6)
    assert seen[-1] == (200, "alice-v2"), (
        seen[-3:], [l for l in rl.error_log_text().splitlines()
                    if "/emfile.map" in l][-3:])


def test_symlink_swap_is_followed(rl, certs):
    """The map path is a symlink swapped atomically to a new file (the
    Kubernetes ConfigMap layout): every swap takes effect."""
    alice = certs["alice"]
    d = rl.map_dir
    for v in ("v2", "v3"):
        target = d / ("link-%s.map" % v)
        target.write_text(version("link", v))
        os.chmod(target, 0o644)
        tmp = d / ".link.tmp"
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(target.name, tmp)
        os.replace(tmp, d / "link.map")
        assert wait_for(rl, "link", alice, (200, "alice-%s" % v))[-1] == \
            (200, "alice-%s" % v)


def test_htaccess_map_first_read_is_never_half_written(rl, certs):
    """An .htaccess map is first read at request time, in each child.  A
    file caught mid-write there (in place, a complete first line, the
    writer pausing 0.2 s) must not be loaded either: the request gets the
    finished file."""
    alice = certs["alice"]
    path = map_path(rl, "ht2")
    result = []
    with open(path, "r+") as f:
        f.truncate(0)
        f.write("# ht2, rewritten in place\n")   # valid so far: no rules
        f.flush()
        t = threading.Thread(
            target=lambda: result.append(answer(rl, "ht2", alice)))
        t.start()
        time.sleep(0.2)
        f.write("email:alice@example.com  alice-v2  v2\n")
        f.flush()
    t.join(30)
    assert result == [(200, "alice-v2")], result


IN_OPEN, IN_CLOSE_NOWRITE = 0x20, 0x10


def test_file_changed_during_the_read_is_not_loaded(rl, certs):
    """The file is truncated and rewritten while the reload thread reads it
    (caught with inotify: the reload thread's second open of the file,
    after the final-newline check): what was read is not loaded, only
    complete versions ever answer."""
    alice = certs["alice"]
    path = map_path(rl, "race")
    tmp = path.with_name(".race.tmp")
    line = "#" + "x" * 1000 + "\n"
    with open(tmp, "w") as f:
        f.write("# race, version v2: the rule is at the very end\n")
        f.write(line * ((96 << 20) // len(line)))
        f.write("email:alice@example.com  alice-v2  v2\n")
    os.chmod(tmp, 0o644)
    ok = {(200, "alice-v1"), (200, "alice-v2"), (200, "alice-v3")}
    answers, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            answers.append(answer(rl, "race", alice))
            time.sleep(0.03)

    libc = ctypes.CDLL(None, use_errno=True)
    ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert ino >= 0
    t = threading.Thread(target=poll, daemon=True)
    t.start()
    opens = 0
    try:
        os.replace(tmp, path)
        # OPEN, CLOSE_NOWRITE (the final-newline check), OPEN (the load):
        # identical consecutive events would be merged, so watch both
        assert libc.inotify_add_watch(ino, str(path).encode(),
                                      IN_OPEN | IN_CLOSE_NOWRITE) >= 0
        deadline = time.monotonic() + 10
        while opens < 2 and time.monotonic() < deadline:
            if not select.select([ino], [], [], 0.5)[0]:
                continue
            buf, off = os.read(ino, 4096), 0
            while off < len(buf) and opens < 2:
                _, mask, _, n = struct.unpack_from("iIII", buf, off)
                off += 16 + n
                opens += bool(mask & IN_OPEN)
        os.truncate(path, 0)        # while the reload thread reads it
        with open(path, "r+") as f:
            f.write(version("race", "v3"))
        seen = wait_for(rl, "race", alice, (200, "alice-v3"), timeout=10)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(30)
        os.close(ino)
    assert opens >= 2, opens
    assert seen[-1] == (200, "alice-v3"), seen
    wrong = [a for a in answers + seen if a not in ok]
    assert not wrong, wrong[:5]
