"""One map per server (SPEC section 7; issue 10): a map is parsed once per
change and every child process answers from one compiled image of it,
mapped read-only from the image store (<DefaultRuntimeDir>/certauthz).

Servers of their own with several children, under prefork and event, a
reload interval of 1 s.  Every map maps alice's certificate to a user
that names the map's version, so each answer tells which version served
it; each child says in the error log which version it took and how
(CERTAUTHZ0030: parsed it itself; 0040: followed another's image; 0048:
its first version, at start).  Faults: images truncated, damaged, of
another format, a pointer that is not ours, the compiling process killed
mid-way, no usable store.  Only 127.0.0.1; every wait is bounded.
"""

import hashlib
import os
import re
import signal
import stat
import struct
import time

import pytest

import certauthz_harness as H

CHILDREN = 3


def version(v, extra_lines=0):
    """A map whose version v maps alice to alice-v (and extra filler)."""
    lines = ["# version %s" % v,
             "email:alice@example.com  alice-%s  %s" % (v, v)]
    lines += ["cn:filler-%d-%s  user%d" % (i, v, i) for i in range(extra_lines)]
    return "\n".join(lines) + "\n"


def _config(srv):
    r = srv.root
    client_ca = 'SSLCACertificateFile "%s/conf/ssl/clients-ca.pem"\n' % r
    return """\
CertAuthzReloadInterval 1
<Location "/m">
    CertAuthzMapFile conf/certauthz/shared.map
    Require cert-mapped
</Location>
<Location "/server-status">
    SetHandler server-status
</Location>
<Directory "{r}/htdocs/ht">
    AllowOverride AuthConfig
</Directory>
{vhost}""".format(r=r, vhost=H.ssl_vhost(
        srv.ports[0], client_ca + "SSLVerifyClient optional"))


def make_server(workdir, certs, name, mpm, children=CHILDREN, map_text=None):
    files = {"conf/certauthz/shared.map": map_text or version("v1"),
             "conf/certauthz/ht.map": version("h1"),
             "htdocs/ht/.htaccess":
                 "CertAuthzMapFile conf/certauthz/ht.map\nRequire cert-mapped\n"}
    s = H.ExtraHttpd(workdir / "shared-image" / name, certs, _config,
                     files=files, docs=["/m", "/ht"],
                     modules=H.EXTRA_MODULES + ["status"], mpm=mpm,
                     children=children)
    s.setup()
    return s


@pytest.fixture(scope="module", params=["prefork", "event"])
def srv(request, workdir, certs):
    s = make_server(workdir, certs, request.param, request.param)
    s.start()
    wait_children(s, CHILDREN)
    yield s
    assert s.stop(), "httpd did not stop"


# ---- what the server shows -------------------------------------------------

def store(srv):
    return srv.root / "run" / "certauthz"


def map_path(srv, name="shared"):
    return srv.root / "conf" / "certauthz" / ("%s.map" % name)


def key(srv, name="shared"):
    return hashlib.sha256(
        ("file:%s" % map_path(srv, name)).encode()).hexdigest()[:32]


def pointer(srv, name="shared"):
    """The map's pointer as a dict of its fields."""
    text = (store(srv) / (key(srv, name) + ".ptr")).read_text()
    lines = text.splitlines()
    assert lines[0] == "certauthz-pointer 1", text
    return dict(l.split(" ", 1) for l in lines[1:])


def write_pointer(srv, fields, name="shared"):
    text = "certauthz-pointer 1\n" + "".join(
        "%s %s\n" % kv for kv in fields.items())
    tmp = store(srv) / ("%s.ptr.test" % key(srv, name))
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    if H.IS_ROOT:
        os.chown(tmp, *nobody())
    os.replace(tmp, store(srv) / (key(srv, name) + ".ptr"))


def nobody():
    import pwd
    import grp
    return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def children(srv):
    """Pids of the parent's children now."""
    ppid = srv.proc.pid
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(d))
    return sorted(out)


def wait_children(srv, n, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(children(srv)) == n:
            return
        time.sleep(0.1)
    raise AssertionError("not %d children: %r" % (n, children(srv)))


VERSION_TAGS = ("CERTAUTHZ0030:", "CERTAUTHZ0040:", "CERTAUTHZ0048:")


def versions_by_pid(srv, name="shared"):
    """{pid: (tag, generation, sha256)} of the last version each process
    said it took of the map."""
    out = {}
    mp = str(map_path(srv, name))
    for l in srv.error_log_text().splitlines():
        tag = next((t for t in VERSION_TAGS if t in l), None)
        if not tag or ("map %s" % mp) not in l:
            continue
        pid = int(re.search(r"\[pid (\d+):", l).group(1))
        gen = int(re.search(r"generation (\d+)", l).group(1))
        digest = re.search(r"sha256 ([0-9a-f]{64})", l).group(1)
        out[pid] = (tag, gen, digest)
    return out


def wait_all_on(srv, digest, name="shared", timeout=60):
    """Bounded: until every child says it serves the content `digest`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = versions_by_pid(srv, name)
        kids = children(srv)
        if kids and all(seen.get(p, (0, 0, ""))[2] == digest for p in kids):
            return {p: seen[p] for p in kids}
        time.sleep(0.1)
    raise AssertionError("not every child on %s: %r (children %r)\n%s" % (
        digest, versions_by_pid(srv, name), children(srv),
        srv.error_log_tail(40)))


def answers(srv, cert, n=2 * CHILDREN + 4, path="/m/"):
    """Users of n requests, each on a new connection (spread over the
    children)."""
    return [srv.get(path, cert).user for _ in range(n)]


def lines(srv, tag):
    return [l for l in srv.error_log_text().splitlines() if tag in l]


# ---- the store --------------------------------------------------------------

def test_store_is_httpd_users_only(srv):
    d = store(srv)
    st = os.stat(d)
    assert stat.S_IMODE(st.st_mode) == 0o700
    p = pointer(srv)
    img = d / p["image"]
    for f in (img, d / (key(srv) + ".ptr")):
        fs = os.stat(f)
        assert stat.S_IMODE(fs.st_mode) == 0o600, f
        if H.IS_ROOT:
            assert (fs.st_uid, fs.st_gid) == nobody(), f
            assert (st.st_uid, st.st_gid) == nobody()
    assert p["image"] == "%s.%s.img" % (key(srv), p["generation"])
    assert p["sha256"] == sha(map_path(srv).read_text())


def test_every_child_starts_on_the_one_image(srv, certs):
    p = pointer(srv)
    on = wait_all_on(srv, p["sha256"])
    # at start, every child opened the parent's image: none parsed the map
    assert {tag for tag, _, _ in on.values()} <= {"CERTAUTHZ0048:",
                                                  "CERTAUTHZ0040:"}, on
    assert {g for _, g, _ in on.values()} == {int(p["generation"])}, on
    # the parent holds no map: it has no mapping of the image
    with open("/proc/%d/maps" % srv.proc.pid) as f:
        assert p["image"] not in f.read()
    for pid in children(srv):
        with open("/proc/%d/maps" % pid) as f:
            assert p["image"] in f.read(), pid


def test_a_change_is_parsed_once_and_followed_by_every_child(srv, certs):
    alice = certs["alice"]
    gen0 = int(pointer(srv)["generation"])
    text = version("v2-%s" % srv.root.name)
    compiled0 = len(lines(srv, "CERTAUTHZ0030:"))
    srv.write_map("shared.map", text)
    on = wait_all_on(srv, sha(text))
    # one process parsed it, every other followed its image
    tags = sorted(tag for tag, _, _ in on.values())
    assert tags.count("CERTAUTHZ0030:") <= 1, on
    new_compiles = lines(srv, "CERTAUTHZ0030:")[compiled0:]
    assert len(new_compiles) == 1, new_compiles
    assert "shared as an image" in new_compiles[0]
    assert {g for _, g, _ in on.values()} == {gen0 + 1}, on
    p = pointer(srv)
    assert int(p["generation"]) == gen0 + 1 and p["sha256"] == sha(text)
    assert set(answers(srv, alice)) == {"alice-v2-%s" % srv.root.name}
    # the status page shows the shared image
    r = srv.get("/server-status?auto")
    row = [l for l in r.body.decode().splitlines()
           if l.startswith("CertAuthzMap: %s " % map_path(srv))][0]
    assert "image=%s/%s" % (store(srv), p["image"]) in row, row
    assert "generation=%d " % (gen0 + 1) in row, row


def test_old_images_are_unmapped_and_removed(srv, certs):
    for v in ("v3", "v4"):
        text = version(v + srv.root.name)
        srv.write_map("shared.map", text)
        wait_all_on(srv, sha(text))
    p = pointer(srv)
    g = int(p["generation"])
    imgs = sorted(f for f in os.listdir(store(srv))
                  if f.startswith(key(srv) + ".") and f.endswith(".img"))
    assert imgs == sorted("%s.%d.img" % (key(srv), n) for n in (g - 1, g)), imgs
    # bounded: every child frees the versions nothing holds any more
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mapped = set()
        for pid in children(srv):
            with open("/proc/%d/maps" % pid) as f:
                mapped |= set(re.findall(r"%s\.(\d+)\.img" % key(srv),
                                         f.read()))
        if mapped == {str(g)}:
            break
        answers(srv, certs["alice"], n=2)
        time.sleep(0.2)
    assert mapped == {str(g)}, mapped


def test_a_bad_map_is_refused_once_for_the_server(srv, certs):
    alice = certs["alice"]
    good = map_path(srv).read_text()
    errors0 = len(lines(srv, "CERTAUTHZ0031:"))
    srv.write_map("shared.map", good + "no-such-type:x  y\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "refused" not in pointer(srv):
        time.sleep(0.1)
    p = pointer(srv)
    assert "refused" in p and "no-such-type" in p.get("why", ""), p
    time.sleep(3)   # a few more checks by every child: none parses it again
    errs = [l for l in lines(srv, "CERTAUTHZ0031:")[errors0:]
            if "not reloaded" in l]
    assert len(errs) == 1, errs
    assert set(answers(srv, alice)) == {re.search(
        r"alice-\S+", good).group(0)}
    # and a fixed file is taken
    text = version("v5" + srv.root.name)
    srv.write_map("shared.map", text)
    wait_all_on(srv, sha(text))


# ---- images that must not be used ----------------------------------------------

# offsets in the image header (src/certauthz_image.c, header_t)
FORMAT_OFF = 8


def corrupt(data, how):
    data = bytearray(data)
    if how == "truncated":
        return bytes(data[:len(data) - 9])
    if how == "extra-byte":
        return bytes(data) + b"\0"
    if how == "body-byte":
        data[len(data) // 2] ^= 0x40
        return bytes(data)
    if how == "header-byte":
        data[100] ^= 0x01
        return bytes(data)
    if how == "foreign-format":
        # another format version, with the header's own checksum made
        # right again: only the version is wrong
        struct.pack_into("<I", data, FORMAT_OFF, 99)
        hdr = bytearray(data[:424])
        hdr[392:424] = b"\0" * 32
        data[392:424] = hashlib.sha256(bytes(hdr)).digest()
        return bytes(data)
    if how == "not-an-image":
        return b"email:x  y\n" * 100
    raise ValueError(how)


REASONS = {
    "truncated": "truncated",
    "extra-byte": "bytes after its end",
    "body-byte": "checksum mismatch",
    "header-byte": "header is damaged",
    "foreign-format": "another format version",
    "not-an-image": "not a map image",
}


@pytest.mark.parametrize("how", sorted(REASONS))
def test_a_bad_image_is_refused_and_the_map_in_force_stays(srv, certs, how):
    alice = certs["alice"]
    p = pointer(srv)
    g = int(p["generation"])
    served = answers(srv, alice, n=1)[0]
    bad = "%s.%d.img" % (key(srv), g + 1)
    data = (store(srv) / p["image"]).read_bytes()
    (store(srv) / bad).write_bytes(corrupt(data, how))
    if H.IS_ROOT:
        os.chown(store(srv) / bad, *nobody())
    refusals0 = len(lines(srv, "CERTAUTHZ0041:"))
    fake = dict(p)
    fake.update({"serial": str(int(p["serial"]) + 1),
                 "generation": str(g + 1), "image": bad,
                 "image-state": "0 0 0 0 0"})
    write_pointer(srv, fake)
    # every child looks at it (bounded), refuses it, and keeps its version
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = lines(srv, "CERTAUTHZ0041:")[refusals0:]
        if len({re.search(r"\[pid (\d+):", l).group(1) for l in new}) \
                >= len(children(srv)):
            break
        time.sleep(0.1)
    new = lines(srv, "CERTAUTHZ0041:")[refusals0:]
    assert len(new) == len(children(srv)), new   # once per child
    for l in new:
        assert REASONS[how] in l and bad in l, l
        assert "generation %d stays in force" % g in l, l
    assert set(answers(srv, alice)) == {served}
    r = srv.get("/server-status?auto")
    row = [l for l in r.body.decode().splitlines()
           if l.startswith("CertAuthzMap: %s " % map_path(srv))][0]
    assert "generation=%d " % g in row and "refused" in row, row
    # the next change is compiled past it
    text = version("after-%s-%s" % (how, srv.root.name))
    srv.write_map("shared.map", text)
    on = wait_all_on(srv, sha(text))
    assert {gen for _, gen, _ in on.values()} == {g + 2}, on
    assert set(answers(srv, alice)) == {"alice-after-%s-%s" % (
        how, srv.root.name)}


def test_a_pointer_that_is_not_ours_is_ignored(srv, certs):
    alice = certs["alice"]
    served = answers(srv, alice, n=1)[0]
    path = store(srv) / (key(srv) + ".ptr")
    saved = path.read_bytes()
    path.write_text("certauthz-pointer 1\ngeneration 999\nimage ../../etc\n")
    time.sleep(2.5)   # two checks by every child
    assert set(answers(srv, alice)) == {served}
    text = version("after-bad-pointer" + srv.root.name)
    srv.write_map("shared.map", text)
    wait_all_on(srv, sha(text))
    assert set(answers(srv, alice)) == {"alice-after-bad-pointer"
                                        + srv.root.name}
    assert path.read_bytes() != saved


# ---- .htaccess maps ------------------------------------------------------------

def test_htaccess_map_is_shared_too(srv, certs):
    alice = certs["alice"]
    assert set(answers(srv, alice, path="/ht/")) == {"alice-h1"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (store(srv) / (key(srv, "ht") + ".ptr")).exists():
            break
        time.sleep(0.1)
    p = pointer(srv, "ht")
    assert p["sha256"] == sha(version("h1"))
    gen0 = int(p["generation"])
    text = version("h2" + srv.root.name)
    srv.write_map("ht.map", text)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if set(answers(srv, alice, path="/ht/")) == {"alice-h2"
                                                     + srv.root.name}:
            break
        time.sleep(0.2)
    assert set(answers(srv, alice, path="/ht/")) == {"alice-h2"
                                                     + srv.root.name}
    # compiled once: every compile is a new generation (a child that first
    # meets the map after the change parses it at request time, and the
    # others follow its image; or one reloads it and the others follow)
    time.sleep(2.5)
    q = pointer(srv, "ht")
    assert q["sha256"] == sha(text)
    assert int(q["generation"]) == gen0 + 1, q


# ---- restarts ------------------------------------------------------------------

def test_graceful_restart_reuses_the_image_of_the_same_content(srv, certs):
    alice = certs["alice"]
    p = pointer(srv)
    reused0 = len([l for l in lines(srv, "CERTAUTHZ0046:")
                   if "reused" in l and "shared.map" in l])
    old_kids = set(children(srv))
    srv.graceful_restart()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = set(children(srv))
        if kids and not kids & old_kids and len(kids) == CHILDREN:
            break
        time.sleep(0.1)
    reused = [l for l in lines(srv, "CERTAUTHZ0046:")
              if "reused" in l and "shared.map" in l]
    assert len(reused) == reused0 + 1, reused
    on = wait_all_on(srv, p["sha256"])
    assert {g for _, g, _ in on.values()} == {int(p["generation"])}, on
    assert pointer(srv)["generation"] == p["generation"]
    assert len(set(answers(srv, alice))) == 1


# ---- faults of their own server ---------------------------------------------------

def test_a_damaged_image_at_startup_is_compiled_again(workdir, certs):
    s = make_server(workdir, certs, "startup-damaged", "prefork", children=2)
    s.start()
    try:
        p = pointer(s)
    finally:
        assert s.stop()
    img = store(s) / p["image"]
    data = bytearray(img.read_bytes())
    data[len(data) - 5] ^= 0xff
    img.write_bytes(bytes(data))
    s.start()
    try:
        wait_children(s, 2)
        warn = [l for l in lines(s, "CERTAUTHZ0041:") if "compiling it again"
                in l]
        assert warn and "checksum mismatch" in warn[-1], s.error_log_tail()
        q = pointer(s)
        assert int(q["generation"]) == int(p["generation"]) + 1
        on = wait_all_on(s, q["sha256"])
        assert {g for _, g, _ in on.values()} == {int(q["generation"])}
        assert set(answers(s, certs["alice"])) == {"alice-v1"}
    finally:
        assert s.stop()


def lock_holder(lock):
    """Pid holding a lock (POSIX or flock) on the file `lock`, or None."""
    try:
        ino = os.stat(lock).st_ino
    except OSError:
        return None
    with open("/proc/locks") as f:
        for l in f:
            parts = l.split()
            # "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
            if len(parts) >= 6 and parts[1] in ("POSIX", "FLOCK") and \
                    parts[5].rsplit(":", 1)[-1] == str(ino):
                return int(parts[4])
    return None


def test_the_compiler_killed_midway_leaves_every_child_on_the_old_map(
        workdir, certs):
    """A map big enough that its parse takes a while; the process that
    takes the compile lock is killed as soon as it holds it."""
    n = 300000
    s = make_server(workdir, certs, "killed", "prefork", children=CHILDREN,
                    map_text=version("k1", n))
    s.start()
    try:
        wait_children(s, CHILDREN)
        alice = certs["alice"]
        p = pointer(s)
        assert set(answers(s, alice)) == {"alice-k1"}
        lock = store(s) / (key(s) + ".lock")
        text = version("k2", n)
        s.write_map("shared.map", text)
        victim = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and victim is None:
            victim = lock_holder(lock)
            if victim is None:
                time.sleep(0.002)
        assert victim in children(s), (victim, children(s))
        os.kill(victim, signal.SIGKILL)
        # the pointer was not moved by the killed one
        assert pointer(s)["generation"] == p["generation"]
        # the others still answer from the old map meanwhile, and then
        # every child (the one replacing the killed one too) takes the new
        # one, compiled by another process
        on = wait_all_on(s, sha(text), timeout=120)
        assert victim not in on
        q = pointer(s)
        assert int(q["generation"]) == int(p["generation"]) + 1
        assert set(answers(s, alice)) == {"alice-k2"}
        # no temporary file of the killed writer is left
        leftovers = [f for f in os.listdir(store(s)) if ".tmp" in f]
        assert not leftovers, leftovers
    finally:
        assert s.stop()


def test_without_a_store_each_child_keeps_its_own_copy(workdir, certs):
    """The store cannot be made (a file is in its way): a warning, and the
    module works as it would without images."""
    s = make_server(workdir, certs, "no-store", "prefork", children=2)
    (s.root / "run").mkdir(parents=True, exist_ok=True)
    (s.root / "run" / "certauthz").write_text("in the way\n")
    s.start()
    try:
        wait_children(s, 2)
        assert any("no image store" in l for l in lines(s, "CERTAUTHZ0042:"))
        assert set(answers(s, certs["alice"])) == {"alice-v1"}
        text = version("ns2")
        s.write_map("shared.map", text)
        on = wait_all_on(s, sha(text))
        # each child parsed it itself
        assert {tag for tag, _, _ in on.values()} == {"CERTAUTHZ0030:"}, on
        assert set(answers(s, certs["alice"])) == {"alice-ns2"}
    finally:
        assert s.stop()


# ---- images compiled ahead of time (certauthz compile) ----------------------------

TOOL = H.BUILDDIR / "certauthz"


def compile_map(srv, text=None):
    import subprocess
    m = map_path(srv)
    if text is not None:
        tmp = m.with_name(".next.map")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        out = m.with_name(m.name + ".img")
        p = subprocess.run([str(TOOL), "compile", str(tmp), str(out)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return tmp
    p = subprocess.run([str(TOOL), "compile", str(m)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return None


def test_a_precompiled_image_is_used_instead_of_parsing(workdir, certs):
    s = make_server(workdir, certs, "precompiled", "prefork", children=2)
    compile_map(s)
    s.start()
    try:
        wait_children(s, 2)
        alice = certs["alice"]
        # at startup the load line says where the map came from
        taken = [l for l in lines(s, "CERTAUTHZ0002:") if "shared.map" in l]
        assert taken and "from its precompiled image %s.img" % map_path(s) \
            in taken[-1], s.error_log_tail()
        r = s.get("/m/", alice)
        assert r.user == "alice-v1"
        # rule locations name the map file, not where it was compiled
        assert r.rule == "%s:2" % map_path(s), r.headers
        assert pointer(s)["sha256"] == sha(version("v1"))
        # the map changes, its image does not: the image is not used
        text = version("pc2")
        s.write_map("shared.map", text)
        wait_all_on(s, sha(text))
        stale = [l for l in lines(s, "CERTAUTHZ0049:") if "not used" in l]
        assert stale and "another content" in stale[-1], stale
        assert set(answers(s, alice)) == {"alice-pc2"}
        # compiled first, then renamed into place: taken on reload
        text = version("pc3")
        n0 = len([l for l in lines(s, "CERTAUTHZ0049:") if "taken" in l])
        tmp = compile_map(s, text)
        os.replace(tmp, map_path(s))
        wait_all_on(s, sha(text))
        assert len([l for l in lines(s, "CERTAUTHZ0049:")
                    if "taken" in l]) == n0 + 1
        assert set(answers(s, alice)) == {"alice-pc3"}
    finally:
        assert s.stop()
    # a damaged precompiled image: said, and the map is parsed
    img = s.root / "conf" / "certauthz" / "shared.map.img"
    data = bytearray(img.read_bytes())
    data[-3] ^= 0x10
    img.write_bytes(bytes(data))
    s.start()
    try:
        wait_children(s, 2)
        # said on the console (the configuration is being read)
        bad = [l for l in (s.stderr_text() + s.error_log_text()).splitlines()
               if "CERTAUTHZ0049:" in l and "not used" in l]
        assert bad and "checksum mismatch" in bad[-1], bad
        assert set(answers(s, certs["alice"])) == {"alice-pc3"}
    finally:
        assert s.stop()


# ---- memory -------------------------------------------------------------------------

def pss_kb(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for l in f:
            if l.startswith("Pss:"):
                return int(l.split()[1])
    return 0


def server_pss_kb(srv):
    return pss_kb(srv.proc.pid) + sum(pss_kb(p) for p in children(srv))


def wait_old_unmapped(srv, timeout=30):
    """Bounded: until no child maps an image but the current one."""
    cur = pointer(srv)["image"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mapped = set()
        for pid in children(srv):
            with open("/proc/%d/maps" % pid) as f:
                mapped |= set(re.findall(r"%s\.\d+\.img" % key(srv), f.read()))
        if mapped <= {cur}:
            return
        time.sleep(0.2)
    raise AssertionError("old images still mapped: %r" % mapped)


def test_memory_after_reloads_stays_near_memory_after_start(workdir, certs):
    """A fixed, generous bound (the numbers are bench/memreload.py's): with
    a copy per child, 4 children reloading a 200,000-line map would add
    some 4 x 20 MB; with one image they add next to nothing.  Not under
    AddressSanitizer (scripts/sanitize): its quarantine keeps freed memory."""
    if os.environ.get("CERTAUTHZ_HTTPD_PRELOAD"):
        pytest.skip("httpd runs under a sanitizer: memory is not httpd's own")
    n = 200000
    s = make_server(workdir, certs, "memory", "prefork", children=4,
                    map_text=version("m1", n))
    s.start()
    try:
        wait_children(s, 4)
        alice = certs["alice"]
        assert set(answers(s, alice, n=16)) == {"alice-m1"}
        start = server_pss_kb(s)
        for v in ("m2", "m3"):
            text = version(v, n)
            s.write_map("shared.map", text)
            wait_all_on(s, sha(text), timeout=120)
            assert set(answers(s, alice, n=16)) == {"alice-" + v}
        wait_old_unmapped(s)
        after = server_pss_kb(s)
        image_kb = os.stat(store(s) / pointer(s)["image"]).st_size // 1024
        print("pss start %d kB, after %d kB, image %d kB" % (start, after, image_kb))
        assert after <= 1.5 * start + image_kb // 2, (start, after, image_kb)
    finally:
        assert s.stop()


def test_an_image_that_cannot_be_written_leaves_each_child_its_own_copy(
        workdir, certs):
    """The store stops being writable (children run as User): each child
    says so, parses the change itself and serves it; writable again, the
    next change is shared again."""
    if not H.IS_ROOT:
        pytest.skip("needs root: children must run as another user")
    s = make_server(workdir, certs, "unwritable", "prefork", children=2)
    s.start()
    try:
        wait_children(s, 2)
        alice = certs["alice"]
        os.chmod(store(s), 0o500)
        text = version("uw2")
        s.write_map("shared.map", text)
        on = wait_all_on(s, sha(text))
        assert {tag for tag, _, _ in on.values()} == {"CERTAUTHZ0030:"}, on
        errs = lines(s, "CERTAUTHZ0043:")
        assert len({re.search(r"\[pid (\d+):", l).group(1) for l in errs}) \
            == 2, errs
        assert all("own copy" in l for l in errs), errs
        assert set(answers(s, alice)) == {"alice-uw2"}
        os.chmod(store(s), 0o700)
        text = version("uw3")
        s.write_map("shared.map", text)
        on = wait_all_on(s, sha(text))
        assert sorted(t for t, _, _ in on.values()) == ["CERTAUTHZ0030:",
                                                        "CERTAUTHZ0040:"], on
        assert set(answers(s, alice)) == {"alice-uw3"}
        assert pointer(s)["sha256"] == sha(text)
    finally:
        assert s.stop()


def test_a_child_started_after_a_refused_change_takes_the_image(workdir,
                                                                 certs):
    """A child that starts after the map file went bad takes the store's
    image (the version in force), not the bad file nor an empty map."""
    s = make_server(workdir, certs, "late-child", "prefork", children=2)
    s.start()
    try:
        wait_children(s, 2)
        good = sha(map_path(s).read_text())
        s.write_map("shared.map", map_path(s).read_text() + "bogus:x y\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "refused" not in pointer(s):
            time.sleep(0.1)
        assert "refused" in pointer(s)
        victim = children(s)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kids = children(s)
            if len(kids) == 2 and victim not in kids:
                break
            time.sleep(0.1)
        on = wait_all_on(s, good)
        assert victim not in on
        assert not lines(s, "CERTAUTHZ0047:"), lines(s, "CERTAUTHZ0047:")
        assert set(answers(s, certs["alice"], n=12)) == {"alice-v1"}
    finally:
        assert s.stop()


def test_the_parent_follows_no_link_planted_in_the_store(workdir, certs):
    """The store is httpd's user's to write: a link planted there (as the
    lock) must not make the parent, root, give a file of its own away."""
    if not H.IS_ROOT:
        pytest.skip("needs root: the parent must run as root")
    s = make_server(workdir, certs, "planted", "prefork", children=2)
    s.start()
    assert s.stop()
    victim = s.root / "victim"
    victim.write_text("root's own\n")
    os.chmod(victim, 0o600)
    lock = store(s) / (key(s) + ".lock")
    lock.unlink()
    os.symlink(victim, lock)
    s.start()
    try:
        wait_children(s, 2)
        st = os.stat(victim)
        assert (st.st_uid, st.st_gid) == (0, 0), st
        assert victim.read_text() == "root's own\n"
        assert set(answers(s, certs["alice"])) == {"alice-v1"}
    finally:
        assert s.stop()


def test_a_lock_that_cannot_be_opened_is_not_taken_for_a_busy_one(workdir,
                                                                 certs):
    """A lock file the children cannot open (left by another User): each
    child says so once, parses the change itself and serves it, instead of
    waiting for a compiler that does not exist."""
    if not H.IS_ROOT:
        pytest.skip("needs root: children must run as another user")
    s = make_server(workdir, certs, "lock-unopenable", "prefork", children=2)
    s.start()
    try:
        wait_children(s, 2)
        lock = store(s) / (key(s) + ".lock")
        os.chown(lock, 0, 0)
        os.chmod(lock, 0o600)
        for v in ("lk2", "lk3"):
            text = version(v)
            s.write_map("shared.map", text)
            on = wait_all_on(s, sha(text))
            assert {t for t, _, _ in on.values()} == {"CERTAUTHZ0030:"}, on
            assert set(answers(s, certs["alice"])) == {"alice-" + v}
        warned = [l for l in lines(s, "CERTAUTHZ0043:") if "compile lock" in l]
        pids = [re.search(r"\[pid (\d+):", l).group(1) for l in warned]
        assert len(pids) == 2 and len(set(pids)) == 2, warned   # once each
    finally:
        assert s.stop()
