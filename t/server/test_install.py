"""`make install` (SPEC section 6; README "Install"): the module through
apxs, the tool and its man page, and on a Debian layout certauthz.load and
certauthz.conf in mods-available so that `a2enmod certauthz` works.  Runs
`make install DESTDIR=...` from the build tree into a staging directory,
then a2enmod (APACHE_CONFDIR pointed at a staged copy of /etc/apache2)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import certauthz_harness as H

BUILD = Path(os.environ.get("CERTAUTHZ_BUILDDIR", H.SRCDIR))


def make_env():
    """The environment for a make of our own: without the MAKEFLAGS of a
    `make check` that runs this suite (its -w makes a sub-make print
    'Entering directory' lines into the output read here)."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    return env


def make_var(name):
    p = subprocess.run(["make", "-s", "-C", str(BUILD), "--no-print-directory",
                        "-f", "Makefile", "-f", "-", "print-var"],
                       input=("print-var:\n\t@echo $(%s)\n" % name).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=make_env(), timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode().strip()


def install(stage, *args):
    p = subprocess.run(["make", "-C", str(BUILD), "install",
                        "DESTDIR=%s" % stage] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=make_env(), timeout=300)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def layout():
    return {n: make_var(n) for n in ("APXS_LIBEXECDIR", "MODS_AVAILABLE",
                                     "bindir", "mandir")}


def test_make_install_debian_layout(tmp_path, layout):
    mods = layout["MODS_AVAILABLE"]
    if not mods:
        pytest.skip("configure found no /etc/apache2/mods-available")
    stage = tmp_path / "stage"
    out = install(stage)
    so = stage / layout["APXS_LIBEXECDIR"].lstrip("/") / "mod_certauthz.so"
    assert so.is_file(), out
    assert (stage / layout["bindir"].lstrip("/") / "certauthz").is_file()
    assert (stage / layout["mandir"].lstrip("/") / "man1" /
            "certauthz.1").is_file()
    avail = stage / mods.lstrip("/")
    load = (avail / "certauthz.load").read_text()
    assert ("LoadModule certauthz_module %s/mod_certauthz.so"
            % layout["APXS_LIBEXECDIR"]) in load.splitlines(), load
    assert "# Depends: ssl" in load
    conf = (avail / "certauthz.conf").read_text()
    assert "<IfModule certauthz_module>" in conf
    assert "a2enmod certauthz" in out, out

    # an administrator's certauthz.conf is kept on a second install
    (avail / "certauthz.conf").write_text("# mine\n")
    out = install(stage)
    assert (avail / "certauthz.conf").read_text() == "# mine\n"
    assert (avail / "certauthz.conf.dist").read_text() == conf
    assert "kept" in out, out

    # a2enmod on a staged copy of the Debian configuration
    confdir = tmp_path / "apache2"
    shutil.copytree("/etc/apache2/mods-available", confdir / "mods-available")
    (confdir / "mods-enabled").mkdir()
    for f in ("certauthz.load", "certauthz.conf"):
        shutil.copy(Path(H.SRCDIR) / "conf-examples" / f,
                    confdir / "mods-available" / f)
    env = dict(os.environ, APACHE_CONFDIR=str(confdir))
    p = subprocess.run(["a2enmod", "-q", "certauthz"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert p.returncode == 0, p.stdout.decode(errors="replace")
    enabled = sorted(os.listdir(confdir / "mods-enabled"))
    # the module, its .conf, and mod_ssl through "# Depends: ssl"
    assert {"certauthz.load", "certauthz.conf", "ssl.load"} <= set(enabled), \
        enabled
    assert os.readlink(confdir / "mods-enabled" / "certauthz.load") == \
        "../mods-available/certauthz.load"


def test_make_install_other_layout(tmp_path, layout):
    """Without mods-available, make install says what to add to
    httpd.conf."""
    stage = tmp_path / "stage"
    out = install(stage, "MODS_AVAILABLE=")
    assert "Add to httpd.conf, after the LoadModule line of mod_ssl:" in out
    assert ("LoadModule certauthz_module %s/mod_certauthz.so"
            % layout["APXS_LIBEXECDIR"]) in out, out
    assert not list(stage.rglob("certauthz.load"))
