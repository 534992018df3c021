"""cert-user, cert-group and cert-mapped in a scope without
CertAuthzMapFile: denied (403) and an error log line CERTAUTHZ0010 naming
the scope (SPEC section 4)."""

import pytest


def require_line(server, location, require):
    """FILE:LINE of `require` inside <Location "location"> of the config."""
    lines = server.conf.read_text().splitlines()
    start = lines.index('<Location "%s">' % location)
    for i in range(start, len(lines)):
        if lines[i].strip() == require:
            return "%s:%d" % (server.conf, i + 1)
    raise KeyError(require)


@pytest.mark.parametrize("location,require", [
    ("/nomap/user", "Require cert-user alice"),
    ("/nomap/group", "Require cert-group admins"),
    ("/nomap/mapped", "Require cert-mapped"),
])
@pytest.mark.parametrize("cert", ["alice", None])
def test_no_map_in_scope(server, get, location, require, cert):
    r = get(location + "/", cert)
    server.allow_errors(r.test_id)
    assert r.status == 403, r
    lines = [l for l in server.log_lines(r.test_id) if "CERTAUTHZ0010" in l]
    assert len(lines) == 1, server.log_lines(r.test_id)
    line = lines[0]
    assert "[certauthz:error]" in line, line
    provider = require.split()[1]
    assert provider in line, line
    assert require_line(server, location, require) in line, line
    assert location in line, line          # the scope / URI
    # the refusal is audited too, with its reason
    audit = [l for l in server.log_lines(r.test_id) if "CERTAUTHZ0100:" in l]
    assert len(audit) == 1, server.log_lines(r.test_id)
    assert 'decision="denied"' in audit[0], audit
    assert 'reason="%s"' % ("no-map" if cert else "no-certificate") \
        in audit[0], audit
