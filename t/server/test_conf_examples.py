"""Every conf-examples/*.conf passes `apache2 -t`.

Each example is a fragment included into a wrapper configuration that
loads the modules.  Examples refer to conf/ssl/server.crt, server.key,
clients-ca.crt, partner-ca.crt and to maps and group files as
conf/certauthz/<name>, relative to ServerRoot: conf-examples/*.map and
*.groups are copied to ROOT/conf/certauthz/, generated certificates to
ROOT/conf/ssl/.
"""

import shutil

import pytest

import certauthz_harness as H

EXAMPLES_DIR = H.SRCDIR / "conf-examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.conf")) if EXAMPLES_DIR.is_dir() else []

EXAMPLE_MODULES = [
    "mpm_event", "unixd", "socache_shmcb", "ssl", "http2", "headers",
    "proxy", "proxy_http", "authz_core", "authn_core", "authz_user",
    "authz_groupfile", "authz_host", "alias", "mime", "log_config", "env",
    "setenvif", "dir", "ldap", "authnz_ldap",
]


def _prepare_root(root, certs):
    ssl_dir = root / "conf" / "ssl"
    map_dir = root / "conf" / "certauthz"
    for d in (ssl_dir, map_dir, root / "logs", root / "run", root / "htdocs"):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copy(certs["server"].crt, ssl_dir / "server.crt")
    shutil.copy(certs["server"].key, ssl_dir / "server.key")
    shutil.copy(certs["root_ca"].crt, ssl_dir / "clients-ca.crt")
    shutil.copy(certs["partner_ca"].crt, ssl_dir / "partner-ca.crt")
    for pattern in ("*.map", "*.groups"):
        for f in EXAMPLES_DIR.glob(pattern):
            shutil.copy(f, map_dir / f.name)
    (root / "conf" / "mime.types").write_text("text/plain txt\n")


def test_examples_exist():
    if not EXAMPLES:
        pytest.skip("conf-examples/ has no .conf file yet")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_conf_example_syntax_ok(ct_root, certs, example):
    _prepare_root(ct_root, certs)
    body = 'TypesConfig conf/mime.types\nInclude "%s"\n' % example
    rc, out, conf = H.configtest(ct_root, body, modules=EXAMPLE_MODULES,
                                 name="wrapper.conf")
    assert rc == 0 and "Syntax OK" in out, "%s:\n%s" % (example.name, out)
