"""Hostile certificate fields a CA can issue, through a real TLS handshake
(the unit tests cover the ones OpenSSL cannot even parse): string types
other than UTF8String, a thousand SANs, an empty subject, a UPN of the wrong
inner type, a '*' inside the certificate's own DNS SAN, NUL bytes in each SAN
type, a CN inside a multi-valued RDN, and case tricks."""

import pytest


def test_bmpstring_cn_is_the_same_name(get):
    # BMPString "bob" is converted to UTF-8 "bob": the same CN
    r = get("/e/on/", "bmpbob")
    assert r.status == 200 and r.user == "bob", r
    assert get("/p/cn/", "bmpbob").status == 200


def test_t61string_cn_is_latin1(get):
    # T61String 0xE9 is taken as Latin-1: "café" in UTF-8
    r = get("/a/unmapped-cn/", "t61cafe")
    assert r.status == 200, r
    assert r.remote_user.encode("latin-1").decode("utf-8") == "caf\u00e9"


def test_thousand_sans_all_read(get):
    # the only mapped value is the 1001st SAN
    r = get("/e/on/", "sans1000")
    assert r.status == 200 and r.user == "alice", r


def test_empty_subject_with_san(get):
    r = get("/e/on/", "emptysubj")
    assert r.user == "alice", r                # mapped by its email SAN
    assert get("/p/cn-star/", "emptysubj").status == 403   # no cn fact


def test_empty_subject_dn_is_no_user(get):
    # CertAuthzUnmapped DN with an empty subject: the empty string is no user
    r = get("/a/unmapped-dn/", "emptysubj2")
    assert r.status == 403 and r.remote_user is None, r


def test_upn_with_wrong_inner_type(get):
    assert get("/p/upn/", "upnia5").status == 403
    r = get("/e/on/", "upnia5")
    assert r.user is None, r                   # carol's UPN rule not hit
    assert get("/p/upn/", "carol").status == 200  # the real one works


def test_star_in_dns_san_is_data(get):
    # an exact selector is not matched by a certificate's own '*' ...
    assert get("/p/dns-case/", "stardns").status == 403
    assert get("/p/dns-case/", "builder").status == 200
    # ... while a glob matches it as one label of data, like any other
    assert get("/p/dns/", "stardns").status == 200


@pytest.mark.parametrize("cert,path,real", [
    ("nuldns", "/p/dns/", "builder"),
    ("nuluri", "/p/uri/", "svc"),
    ("nulupn", "/p/upn/", "carol"),
    ("nulsan", "/p/email/", "alice"),
])
def test_nul_in_each_san_type(get, cert, path, real):
    r = get(path, cert)
    assert r.status == 403, r
    assert get("/e/on/", cert).user is None
    assert get(path, real).status == 200     # the clean value does match


def test_cn_inside_multivalued_rdn(get):
    r = get("/e/on/", "mvbob")
    assert r.user == "bob", r
    assert get("/p/cn/", "mvbob").status == 200


def test_case_tricks(get):
    # email compares case-insensitively, so ALICE@EXAMPLE.COM is alice ...
    r = get("/e/on/", "casealice")
    assert r.user == "alice", r
    assert get("/p/email/", "casealice").status == 200
    # ... but cn does not: CN=Alice is not CN=alice (cert-cn alice-less
    # location: /p/cn grants bob and "Dave Smith" only)
    assert get("/p/cn-case/", "bob").status == 403
    r = get("/a/unmapped-cn/", "casealice")
    assert r.remote_user == "alice", r        # mapped by email, not CN


@pytest.mark.parametrize("cert", ["partner_eve_lc", "partner_eve_ws"])
def test_issuer_spelling_cannot_escape_its_section(get, cert):
    # The map maps root-CA eve globally and deny-lists eve in the Partner CA
    # section.  A Partner CA leaf whose issuer field differs from the CA's
    # subject only in case or white space verifies (OpenSSL compares names
    # canonically), so the section must apply to it too.
    assert get("/p/mapped/", cert).status == 403
    r = get("/a/valid/", cert)
    assert r.status == 403 and r.remote_user is None, r
    assert get("/e/nomap/", cert).status == 200            # it does verify
    # and Require cert-issuer (no map there) knows it as Partner CA's
    assert get("/p/issuer-partner/", cert).status == 200


@pytest.mark.parametrize("path", ["/c/not-map/", "/c/none-map/"])
def test_negated_requires_do_not_rescue_deny_listed(get, path):
    # eve from the root CA is refused by the negated provider ...
    assert get(path, "eve").status == 403
    # ... and a deny-listed certificate must not do better
    assert get(path, "laptop").status == 403
    assert get(path, "partner_eve").status == 403
    assert get(path, "bob").status == 200


def test_fallback_user_with_newline_is_no_user(get):
    r = get("/a/unmapped-cn/", "nlcn")
    assert r.status == 403 and r.remote_user is None, r
