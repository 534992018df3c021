"""Active Directory altSecurityIdentities forms (SPEC section 7; issue 11):
altsec: selectors over real TLS, each form of each certificate written by
an encoder of this file (Python's cryptography for digests and the SKI, a
DER walk for the names and the serial) that does not share code with the
module; byte order of serials, RDN order and multi-valued RDNs, Windows'
attribute names and quoting, spellings AD takes as the same (case, spaces,
';', S/ST/OID.) and near misses it does not; `certauthz explain --json`
against the same encoder; weak and malformed forms as configuration errors
naming FILE:LINE.

Its own httpd (module scope) trusting its own CA, whose subject is written
in DC= components as an Active Directory CA's is.  Only 127.0.0.1.
"""

import json
import subprocess
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import certauthz_harness as H

CA_SUBJECT = "/DC=com/DC=example/CN=Example Issuing CA"

# name: extra mkcert arguments (every one also gets --issuer the CA)
CERTS = {
    "dave": ["--subject", "/DC=com/DC=example/OU=Eng+CN=Dave Smith",
             "--serial", "0A0B0C"],
    # the same bytes the other way round: AD's serial tells them apart
    "rev": ["--subject", "/DC=com/DC=example/CN=Rev", "--serial", "0C0B0A"],
    "hibit": ["--subject", "/DC=com/DC=example/CN=Hibit",
              "--serial", "80FF01"],
    "long": ["--subject", "/DC=com/DC=example/CN=Long",
             "--serial", "9F" + "0102030405060708090A0B0C0D0E0F10111213"],
    "quoted": ["--subject", '/O=Example, Inc./OU= lead+CN=say "hi" <x>#1',
               "--serial", "11"],
    "names": ["--subject", "/C=US/ST=Texas/L=Austin/street=1 Main/title=Dr"
              "/GN=Ann/SN=Smith/emailAddress=ann@example.com"
              "/UID=ann/2.5.4.65=pseudo/CN=Ann", "--serial", "12"],
    "neg": ["--subject", "/DC=com/DC=example/CN=Neg", "--serial", "-0A"],
    "bmp": ["--subject", "/DC=com/CN#bmp=J\\xc3\\xbcrgen", "--serial", "13"],
    "noski": ["--subject", "/DC=com/DC=example/CN=Noski", "--ski", "none",
              "--serial", "14"],
}

WIN_NAMES = {
    "2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "E", "2.5.4.6": "C", "2.5.4.8": "S",
    "2.5.4.9": "STREET", "2.5.4.12": "T", "2.5.4.42": "G", "2.5.4.43": "I",
    "2.5.4.4": "SN", "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.5": "SERIALNUMBER", "2.5.4.13": "Description",
    "2.5.4.17": "PostalCode", "2.5.4.18": "POBox", "2.5.4.20": "Phone",
    "2.5.4.24": "X21Address", "2.5.4.46": "dnQualifier",
    "1.2.840.113549.1.9.2": "UnstructuredName",
    "1.2.840.113549.1.9.8": "UnstructuredAddress",
}

FORMS = ["issuer-serial", "ski", "sha1-certificate", "sha1-key",
         "issuer-subject"]


# ---- the independent encoder ---------------------------------------------

def _tlv(buf, off):
    """(tag, content start, content end) of the DER element at off."""
    tag, first = buf[off], buf[off + 1]
    if first < 0x80:
        return tag, off + 2, off + 2 + first
    n = first & 0x7F
    ln = int.from_bytes(buf[off + 2:off + 2 + n], "big")
    return tag, off + 2 + n, off + 2 + n + ln


def _children(buf, start, end):
    out = []
    while start < end:
        t, cs, ce = _tlv(buf, start)
        out.append((t, cs, ce))
        start = ce
    return out


def _oid(b):
    arcs, v = [], 0
    for byte in b:
        v = v << 7 | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(v)
            v = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])


def _string(tag, b):
    if tag == 0x1E:
        return b.decode("utf-16-be")
    if tag == 0x1C:
        return b.decode("utf-32-be")
    if tag == 0x14:
        return b.decode("latin-1")
    return b.decode("utf-8")


def ad_dn(name_der):
    """A DER Name as AD writes it: X.500 order, attributes of an RDN in
    their encoded order, Windows' names and quoting."""
    _, s, e = _tlv(name_der, 0)
    rdns = []
    for _, rs, re_ in _children(name_der, s, e):            # SET
        atts = []
        for _, as_, ae in _children(name_der, rs, re_):     # SEQUENCE
            (ot, os_, oe), (vt, vs, ve) = _children(name_der, as_, ae)
            oid = _oid(name_der[os_:oe])
            val = _string(vt, name_der[vs:ve])
            key = WIN_NAMES.get(oid, "OID." + oid)
            if (val == "" or val[0] == " " or val[-1] == " "
                    or any(c in val for c in ',+="<>#;')):
                val = '"%s"' % val.replace('"', '""')
            atts.append("%s=%s" % (key, val))
        rdns.append("+".join(atts))
    return ",".join(rdns)


def ad_serial(cert):
    """The serial's DER INTEGER content octets, reversed, lower hex."""
    n, size = cert.serial_number, 1
    while True:
        try:
            b = n.to_bytes(size, "big", signed=True)
            break
        except OverflowError:
            size += 1
    return b[::-1].hex()


def ad_forms(c):
    """{form: text} of a harness Cert, computed here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # a negative serial
        cert = x509.load_der_x509_certificate(c.der)
        serial = ad_serial(cert)
    issuer = ad_dn(cert.issuer.public_bytes())
    subject = ad_dn(cert.subject.public_bytes())
    forms = {
        "issuer-serial": "X509:<I>%s<SR>%s" % (issuer, serial),
        "sha1-certificate": "X509:<SHA1-PUKEY>" +
                            cert.fingerprint(hashes.SHA1()).hex(),
        # RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits
        "sha1-key": "X509:<SHA1-PUKEY>" + x509.SubjectKeyIdentifier
                    .from_public_key(cert.public_key()).digest.hex(),
        "issuer-subject": "X509:<I>%s<S>%s" % (issuer, subject),
    }
    try:
        ski = cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
        forms["ski"] = "X509:<SKI>" + ski.hex()
    except x509.ExtensionNotFound:
        pass
    return forms


def selector(text):
    return 'altsec:"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


# ---- the server ----------------------------------------------------------

LOCS = {"/" + f: "CertAuthzMapFile conf/certauthz/%s.map\nRequire cert-mapped"
        % f for f in FORMS + ["variants", "nearmiss"]}


def dave_variants(v):
    """Spellings of dave's forms that AD takes as the same mappings: two of
    issuer+serial, two of issuer+subject."""
    return [v["issuer-serial"].lower(),
            v["issuer-serial"].replace("<SR>0c0b0a", "<SR>0C0B0A")
            .replace("<I>DC=com", "<i> DC=com "),
            v["issuer-subject"].replace(
                "OU=Eng+CN=Dave Smith", 'CN="dave smith" + OU=ENG'),
            v["issuer-subject"].replace(",", ";").replace("DC=", "dc = ")]


@pytest.fixture(scope="module")
def ad(workdir, certs):
    base = workdir / "altsec"
    d = base / "certs"
    d.mkdir(parents=True, exist_ok=True)
    ca = H.mkcert(d / "ad_ca", "--ca", "--subject", CA_SUBJECT,
                  "--days", "3650")
    made = {n: H.mkcert(d / n, "--issuer", ca.prefix, *args)
            for n, args in CERTS.items()}
    forms = {n: ad_forms(c) for n, c in made.items()}
    files = {"conf/ssl/ad-ca.pem": open(ca.crt).read()}
    for f in FORMS:
        files["conf/certauthz/%s.map" % f] = "".join(
            "%s  %s-%s\n" % (selector(fm[f]), n, f)
            for n, fm in forms.items() if f in fm)
    # the same mappings as an administrator may type them
    v = forms["dave"]
    files["conf/certauthz/variants.map"] = "".join(
        "%s  dave-v%d\n" % (selector(t), i)
        for i, t in enumerate(dave_variants(v)) if i in (0, 2))
    q = forms["quoted"]["issuer-subject"]
    n = forms["names"]["issuer-subject"]
    files["conf/certauthz/variants.map"] += (
        "%s  quoted-v\n" % selector(q.replace(',OU=" lead"+', ',OU = " lead" +'))
        + "%s  names-v\n" % selector(n.replace("S=Texas", "ST=texas")
                                     .replace("E=", "OID.1.2.840.113549.1.9.1=")))
    # near misses: each differs from a real form by what AD tells apart
    hib = forms["hibit"]["issuer-serial"]
    files["conf/certauthz/nearmiss.map"] = "".join(
        "%s  miss%d\n" % (selector(t), i) for i, t in enumerate([
            # the serial in the order certificate viewers print it
            v["issuer-serial"].replace("<SR>0c0b0a", "<SR>0a0b0c"),
            # without the sign octet
            hib.replace("<SR>01ff8000", "<SR>01ff80"),
            # the issuer in RFC 4514 order
            v["issuer-serial"].replace(
                "DC=com,DC=example,CN=Example Issuing CA",
                "CN=Example Issuing CA,DC=example,DC=com"),
            # the multi-valued RDN split in two
            v["issuer-subject"].replace("OU=Eng+CN=", "OU=Eng,CN="),
            # the quoted leading space dropped
            q.replace('OU=" lead"', "OU=lead"),
            # a non-ASCII letter in another case (no Unicode folding)
            forms["bmp"]["issuer-subject"].replace("\u00fc", "\u00dc"),
        ]))

    def config(srv):
        locs = "\n".join('<Location "%s">\n%s\n</Location>' % (p, body)
                         for p, body in LOCS.items())
        return "\n".join([locs, H.ssl_vhost(
            srv.ports[0], 'SSLCACertificateFile "%s/conf/ssl/ad-ca.pem"\n'
            "SSLVerifyClient optional" % srv.root)])

    s = H.ExtraHttpd(base / "server", certs, config, files=files,
                     docs=list(LOCS))
    s.setup()
    s.start()
    yield s, made, forms
    assert s.stop(), "httpd did not stop"


def test_encoder_sees_what_the_certificates_hold(ad):
    """The encoder itself, on facts of the factory's arguments: the
    serials reversed with their sign octet, X.500 order, quoting."""
    srv, made, forms = ad
    iss = "DC=com,DC=example,CN=Example Issuing CA"
    assert forms["dave"]["issuer-serial"] == "X509:<I>%s<SR>0c0b0a" % iss
    assert forms["rev"]["issuer-serial"] == "X509:<I>%s<SR>0a0b0c" % iss
    assert forms["hibit"]["issuer-serial"].endswith("<SR>01ff8000")
    assert forms["long"]["issuer-serial"].endswith(
        "<SR>" + bytes.fromhex("009F" + "0102030405060708090A0B0C0D0E0F"
                               "10111213")[::-1].hex())
    # the RDN's attributes in their DER order (a SET OF sorts by encoding:
    # the shorter OU first)
    assert forms["quoted"]["issuer-subject"].endswith(
        '<S>O="Example, Inc.",OU=" lead"+CN="say ""hi"" <x>#1"')
    assert forms["names"]["issuer-subject"].endswith(
        "<S>C=US,S=Texas,L=Austin,STREET=1 Main,T=Dr,G=Ann,SN=Smith,"
        "E=ann@example.com,OID.0.9.2342.19200300.100.1.1=ann,"
        "OID.2.5.4.65=pseudo,CN=Ann")
    assert forms["neg"]["issuer-serial"].endswith("<SR>f6")
    assert forms["bmp"]["issuer-subject"].endswith("<S>DC=com,CN=J\u00fcrgen")
    assert "ski" not in forms["noski"]


@pytest.mark.parametrize("form", FORMS)
def test_each_form_maps_over_tls(ad, form):
    srv, made, forms = ad
    for name, c in made.items():
        r = srv.get("/%s/" % form, c)
        if form in forms[name]:
            assert (r.status, r.user) == (200, "%s-%s" % (name, form)), \
                (name, r.status, r.user)
        else:
            assert r.status == 403, (name, r.status, r.user)


def test_spellings_ad_takes_as_the_same(ad):
    srv, made, forms = ad
    r = srv.get("/variants/", made["dave"])
    assert (r.status, r.user) == (200, "dave-v0"), r
    assert srv.get("/variants/", made["quoted"]).user == "quoted-v"
    assert srv.get("/variants/", made["names"]).user == "names-v"
    # every variant on its own maps dave
    for i, t in enumerate(dave_variants(forms["dave"])):
        line = "%s  dave-v%d" % (selector(t), i)
        rc, out, err = _tool("explain", _one_line_map(srv, line, i),
                             made["dave"].crt)
        assert rc == 0 and "MAPPED" in out, (line, out, err)


def test_variants_are_one_selector(ad, ct_root):
    """The server takes two spellings of one mapping as a duplicate: one
    key, whatever the case, spaces and separators."""
    srv, made, forms = ad
    vs = dave_variants(forms["dave"])
    m = ct_root / "altsec-dup.map"
    m.write_text("".join("%s  u%d\n" % (selector(t), i)
                         for i, t in enumerate(vs)))
    rc, out, _ = H.configtest(
        ct_root, '<Location "/x">\n    CertAuthzMapFile "%s"\n'
        "    Require cert-mapped\n</Location>\n" % m)
    assert rc != 0, out
    assert "%s:2: duplicate selector" % m in out and "(first at line 1)" in out
    assert "%s:4: duplicate selector" % m in out and "(first at line 3)" in out


def test_near_misses_do_not_map(ad):
    """Nothing in nearmiss.map maps the certificate it was made from; its
    first line, dave's serial in viewer order, is rev's serial in AD's."""
    srv, made, forms = ad
    for name, c in made.items():
        r = srv.get("/nearmiss/", c)
        if name == "rev":
            assert (r.status, r.user) == (200, "miss0"), r
        else:
            assert r.status == 403 and not r.user, (name, r.status, r.user)


def test_explain_json_matches_the_encoder(ad):
    srv, made, forms = ad
    for name, c in made.items():
        rc, out, err = _tool("explain", "--json",
                             srv.root / "conf/certauthz/ski.map", c.crt)
        doc = json.loads(out)
        got = {a["form"]: a["ad"] for a in doc["certificate"]["altsec"]}
        assert got == forms[name], name
        assert doc["certificate"]["facts"]["altsec"] == \
            [a["ad"] for a in doc["certificate"]["altsec"]]
        for a in doc["certificate"]["altsec"]:
            assert a["map"] == selector(a["ad"])
        assert doc["certificate"]["dropped"] == 0


def _tool(*args):
    p = subprocess.run([str(H.BUILDDIR / "certauthz")] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _one_line_map(srv, line, i):
    p = srv.root / ("one-%d.map" % i)
    p.write_text(line + "\n")
    return p


BAD_FORMS = [
    ("subject-only", 'altsec:"X509:<S>DC=com,CN=Dave"',
     "X509:<S> (subject only) is a weak"),
    ("rfc822", "altsec:X509:<RFC822>dave@example.com",
     "X509:<RFC822> is a weak mapping"),
    ("ski-colons", "altsec:X509:<SKI>01:02", "not hex"),
    ("sha1-short", "altsec:X509:<SHA1-PUKEY>0102", "want 40 hex digits"),
    ("unknown-name", 'altsec:"X509:<I>DC=com,XX=1<SR>01"',
     "unknown attribute name 'XX'"),
    ("no-serial", 'altsec:"X509:<I>CN=a<SR>"', "even number of hex digits"),
    ("hex-value", 'altsec:"X509:<I>CN=#0403<SR>01"', "#hex value"),
    ("unquoted-space", "altsec:X509:<I>CN=Example Issuing CA<SR>01",
     "a value with spaces goes in double quotes"),
]


@pytest.mark.parametrize("name,value,phrase", BAD_FORMS,
                         ids=[b[0] for b in BAD_FORMS])
def test_bad_forms_are_configuration_errors(ct_root, name, value, phrase):
    m = ct_root / "altsec-bad.map"
    m.write_text("# altsec\ncn:ok u\n%s  someone\n" % value)
    rc, out, _ = H.configtest(
        ct_root, '<Location "/x">\n    CertAuthzMapFile "%s"\n'
        "    Require cert-mapped\n</Location>\n" % m)
    assert rc != 0 and "Syntax OK" not in out, out
    assert "%s:3: bad altsec value: " % m in out and phrase in out, out


def test_conf_example_map(workdir):
    """conf-examples/ad.map does what its comments say, for certificates of
    a CA named as its [issuer] section names it."""
    d = workdir / "altsec" / "example"
    d.mkdir(parents=True, exist_ok=True)
    corp = H.mkcert(d / "corp_ca", "--ca", "--subject",
                    "/DC=com/DC=example/DC=corp/CN=Corp Issuing CA")
    other = H.mkcert(d / "other_ca", "--ca", "--subject", "/CN=Other CA")
    sid = H.ntds_ext("S-1-5-21-3623811015-3361044348-30300820-1013")
    m = H.SRCDIR / "conf-examples" / "ad.map"

    def explain(name, issuer, *args):
        c = H.mkcert(d / name, "--issuer", issuer.prefix, *args)
        rc, out, err = _tool("explain", "--json", m, c.crt)
        return json.loads(out)["decision"]

    got = explain("alice", corp, "--subject", "/CN=anything", "--ext", sid)
    assert (got["outcome"], got["user"]) == ("mapped", "alice"), got
    # the same SID from another CA: the section does not apply
    got = explain("forged", other, "--subject", "/CN=anything", "--ext", sid)
    assert got["outcome"] == "unmapped", got
    # bob's serial as a viewer prints it; the map has its bytes reversed
    got = explain("bob", corp, "--subject", "/CN=bob",
                  "--serial", "2B0A000000001F0A0B0C")
    assert (got["outcome"], got["user"]) == ("mapped", "bob"), got
    got = explain("notbob", corp, "--subject", "/CN=bob",
                  "--serial", "0C0B0A1F000000000A2B")
    assert got["outcome"] == "unmapped", got
    got = explain("kiosk", corp, "--subject", "/CN=kiosk",
                  "--ski", "A6E00F9444EDEA80B6CB4CD00384BD4A78F7FDFF")
    assert (got["outcome"], got["user"]) == ("mapped", "kiosk-7"), got
