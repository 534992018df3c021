"""pytest fixtures of the mod_certauthz real-server tests.

Session-wide: the test PKI (t/mkcert) and ONE httpd instance with many
<Location>s.  Configuration errors are tested with short `apache2 -t` runs
(see certauthz_harness.configtest).  Set CERTAUTHZ_KEEP=1 to keep the
temporary server root for inspection.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import certauthz_harness as H  # noqa: E402

_SERVERS = []


def _keep():
    return os.environ.get("CERTAUTHZ_KEEP", "") not in ("", "0")


@pytest.fixture(scope="session")
def prereqs():
    missing = []
    if not Path(H.HTTPD).exists():
        missing.append("httpd %s" % H.HTTPD)
    if not H.MODULE_SO.exists():
        missing.append("%s (run make)" % H.MODULE_SO)
    if not H.MKCERT.exists():
        missing.append("%s (run make t/mkcert)" % H.MKCERT)
    if missing:
        pytest.fail("missing: " + ", ".join(missing), pytrace=False)
    return True


@pytest.fixture(scope="session")
def workdir(prereqs):
    d = H.make_public_dir("certauthz-test-")
    yield d
    if not _keep():
        shutil.rmtree(d, ignore_errors=True)
    else:
        sys.stderr.write("\nCERTAUTHZ_KEEP: test files kept in %s\n" % d)


@pytest.fixture(scope="session")
def certs(workdir):
    d = workdir / "pki"
    d.mkdir()
    c = H.make_pki(d)
    H.make_tree_public(d)
    return c


@pytest.fixture(scope="session")
def server(workdir, certs):
    srv = H.Httpd(workdir / "server", certs)
    srv.setup()
    srv.start()
    _SERVERS.append(srv)
    yield srv
    stopped = srv.stop()
    _SERVERS.remove(srv)
    assert stopped, "httpd did not stop"


@pytest.fixture
def ct_root(workdir, request):
    """A fresh ServerRoot for configtest runs."""
    d = workdir / "ct" / request.node.name.replace("/", "_")[:80]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, show the tail of the error log of the running server."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for srv in _SERVERS:
            rep.sections.append(("httpd error log (last 30 lines) of %s"
                                 % srv.root, srv.error_log_tail(30)))


@pytest.fixture(scope="session")
def get(server, certs):
    """get(path, cert_name=None, generous=False, tls=None) -> Response: one
    request on a new connection to the main vhost (SSLVerifyClient optional)
    or, with generous=True, to the optional_no_ca vhost; tls "1.2" or "1.3"
    pins the TLS version."""
    def _get(path, cert=None, generous=False, tls=None):
        c = certs[cert] if isinstance(cert, str) else cert
        return server.get(path, c,
                          port=server.gen_port if generous else None, tls=tls)
    return _get
