"""Extension facts and their providers (SPEC section 7; issue 11):
Require cert-eku, cert-ku and cert-policy over real TLS, granting and
refusing, alone and composed with RequireAll/RequireAny/RequireNone; bad
arguments are configuration errors naming the line; eku/ku/policy/ski
selectors in a map.

Its own httpd (module scope); certificates made by the test factory, signed
by the test root CA.  Only 127.0.0.1.
"""

import pytest

import certauthz_harness as H

PIV_POLICY = "2.16.840.1.101.3.2.1.3.13"
SMARTCARD = "1.3.6.1.4.1.311.20.2.2"

LOCS = {
    "/eku-client": "Require cert-eku clientAuth",
    "/eku-smart": "Require cert-eku msSmartcardLogin",
    "/eku-oid": "Require cert-eku 1.2.3.4 %s" % SMARTCARD,
    "/ku-nr": "Require cert-ku nonRepudiation",
    "/ku-case": "Require cert-ku DIGITALSIGNATURE",
    "/policy-piv": "Require cert-policy %s" % PIV_POLICY,
    "/policy-any": "Require cert-policy anyPolicy",
    "/piv-all": """<RequireAll>
    Require cert-policy %s
    Require cert-eku clientAuth
    Require cert-upn *@corp.example
</RequireAll>""" % PIV_POLICY,
    "/any-of": """<RequireAny>
    Require cert-policy 1.2.3.99
    Require cert-ku keyAgreement
</RequireAny>""",
    "/none-code": """<RequireAll>
    Require all granted
    <RequireNone>
        Require cert-eku codeSigning
    </RequireNone>
</RequireAll>""",
    "/map-ski": "CertAuthzMapFile conf/certauthz/ext.map\nRequire cert-mapped",
}

AD_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"


CERTS = {
    "piv": ["--eku", "clientAuth,msSmartcardLogin", "--ku",
            "digitalSignature,nonRepudiation", "--policy", PIV_POLICY,
            "--san", "upn:alice@corp.example", "--ski", "0102030405"],
    "plain": [],
    "anypol": ["--policy", "2.5.29.32.0"],
    "bare": ["--eku", "none", "--ku", "none", "--ski", "none"],
    "code": ["--eku", "clientAuth,codeSigning", "--ku",
             "digitalSignature,keyAgreement"],
    "wrongupn": ["--eku", "clientAuth", "--policy", PIV_POLICY,
                 "--san", "upn:alice@evil.example"],
    "adsid": ["--ext", H.ntds_ext(AD_SID)],
    "urisid": ["--san", "uri:tag:microsoft.com,2022-09-14:sid:"
               "s-1-5-21-1-2-3-500"],
    "othersid": ["--ext", H.ntds_ext("S-1-5-21-1-2-3-501")],
}


def _config(srv):
    r = srv.root
    client_ca = 'SSLCACertificateFile "%s/conf/ssl/clients-ca.pem"\n' % r
    locs = "\n".join('<Location "%s">\n%s\n</Location>' % (p, body)
                     for p, body in LOCS.items())
    return "\n".join([locs, H.ssl_vhost(
        srv.ports[0], client_ca + "SSLVerifyClient optional")])


@pytest.fixture(scope="module")
def ext(workdir, certs):
    d = workdir / "extensions" / "certs"
    d.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, args in CERTS.items():
        made[name] = H.mkcert(d / name, "--issuer", certs["root_ca"].prefix,
                              "--subject", "/O=Example/CN=%s" % name, *args)
    files = {"conf/certauthz/ext.map":
             "ski:01:02:03:04:05  piv-by-ski\n"
             "policy:2.5.29.32.0  any-policy-holder\n"
             "sid:%s  ad-user\n"
             "sid:S-1-5-21-1-2-3-500  uri-sid-user\n" % AD_SID.lower()}
    s = H.ExtraHttpd(workdir / "extensions" / "server", certs, _config,
                     files=files, docs=list(LOCS))
    s.setup()
    s.start()
    yield s, made
    assert s.stop(), "httpd did not stop"


CASES = [
    ("/eku-client/", "piv", 200),
    ("/eku-client/", "plain", 200),
    ("/eku-client/", "bare", 403),       # no extension: never matches
    ("/eku-smart/", "piv", 200),
    ("/eku-smart/", "plain", 403),
    ("/eku-oid/", "piv", 200),            # by dotted OID
    ("/eku-oid/", "code", 403),
    ("/ku-nr/", "piv", 200),
    ("/ku-nr/", "plain", 403),
    ("/ku-nr/", "bare", 403),
    ("/ku-case/", "plain", 200),          # names in any case
    ("/policy-piv/", "piv", 200),
    ("/policy-piv/", "plain", 403),       # no policies at all
    ("/policy-piv/", "anypol", 403),      # anyPolicy is not every policy
    ("/policy-any/", "anypol", 200),
    ("/policy-any/", "piv", 403),         # anyPolicy only when written
    ("/piv-all/", "piv", 200),
    ("/piv-all/", "wrongupn", 403),
    ("/piv-all/", "plain", 403),
    ("/any-of/", "code", 200),            # keyAgreement
    ("/any-of/", "piv", 403),
    ("/none-code/", "plain", 200),
    ("/none-code/", "code", 403),
    ("/map-ski/", "piv", 200),
    ("/map-ski/", "anypol", 200),
    ("/map-ski/", "plain", 403),
]


@pytest.mark.parametrize("path,who,status", CASES,
                         ids=["%s-%s" % (p.strip("/"), w) for p, w, _ in CASES])
def test_provider(ext, path, who, status):
    srv, made = ext
    r = srv.get(path, made[who])
    assert r.status == status, (path, who, r)
    assert r.ssl_verify == "SUCCESS", r


def test_no_certificate_is_refused(ext):
    srv, _ = ext
    for path in ("/eku-client/", "/ku-case/", "/policy-any/"):
        assert srv.get(path).status == 403


def test_map_selectors_name_the_rule(ext):
    srv, made = ext
    r = srv.get("/map-ski/", made["piv"])
    assert r.user == "piv-by-ski"
    assert r.rule.endswith("ext.map:1"), r.headers
    r = srv.get("/map-ski/", made["anypol"])
    assert r.user == "any-policy-holder"
    # Active Directory's SID, from the NTDS extension and from a SAN URI
    r = srv.get("/map-ski/", made["adsid"])
    assert (r.status, r.user) == (200, "ad-user"), r
    assert r.rule.endswith("ext.map:3"), r.headers
    r = srv.get("/map-ski/", made["urisid"])
    assert (r.status, r.user) == (200, "uri-sid-user"), r
    assert srv.get("/map-ski/", made["othersid"]).status == 403


@pytest.mark.parametrize("line,phrase", [
    ("Require cert-eku notanoid", "bad eku value"),
    ("Require cert-eku 1.2..3", "bad eku value"),
    ("Require cert-eku client*", "bad eku value"),
    ("Require cert-ku digitalsig", "not a keyUsage name"),
    ("Require cert-policy clientAuth", "bad policy value"),
    ("Require cert-policy 3.1", "bad policy value"),
    ("Require cert-policy", "needs at least one argument"),
])
def test_bad_arguments_are_configuration_errors(ct_root, line, phrase):
    body = '<Location "/x">\n    %s\n</Location>\n' % line
    rc, out, conf = H.configtest(ct_root, body)
    assert rc != 0 and "Syntax OK" not in out, out
    assert phrase in out, out
    assert "line 2" in out or "line" in out, out


def test_good_arguments_pass_configtest(ct_root):
    body = ('<Location "/x">\n    Require cert-eku clientAuth %s 1.2.3\n'
            '    Require cert-ku keyCertSign cRLSign\n'
            '    Require cert-policy anyPolicy %s\n</Location>\n'
            % (SMARTCARD, PIV_POLICY))
    rc, out, _ = H.configtest(ct_root, body)
    assert rc == 0 and "Syntax OK" in out, out
