/*
 * test_facts.c -- facts of certificates made by certgen: a rich certificate
 * checked against values computed here with OpenSSL, hostile certificates,
 * and certauthz_x509_read.
 */
#include <ctype.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certauthz.h"
#include "certauthz_altsec.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_match.h"
#include "../certgen.h"
#include "tap.h"
#include "testutil.h"

#define B(s) s, sizeof(s) - 1
#define N(a) (sizeof(a) / sizeof((a)[0]))
/* NULL-terminated lists of expected values */
#define VALS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static apr_pool_t *pool;

static certauthz_facts_t *facts_x(X509 *x)
{
    certauthz_facts_t *f = NULL;
    apr_status_t rv = certauthz_facts_from_x509(&f, x, pool);
    if (rv != APR_SUCCESS || !f) {
        diag("facts_from_x509 failed: %d", rv);
        abort();
    }
    return f;
}

/* Facts of a fresh certgen certificate (the X509 is freed first: the facts
 * must not depend on it). */
static certauthz_facts_t *facts(const char *opts)
{
    X509 *x = certgen_quick(opts);
    certauthz_facts_t *f = facts_x(x);
    X509_free(x);
    return f;
}

static certauthz_dn_t *parse_dn(const char *text)
{
    certauthz_dn_t *dn;
    const char *why;
    if (certauthz_dn_parse(&dn, text, strlen(text), &why, pool)) {
        diag("cannot parse DN %s: %s", text, why);
        return NULL;
    }
    return dn;
}

/* The values of one type are exactly want, in order. */
static void check_values(const certauthz_facts_t *f, certauthz_type_e t,
                         const char *const *want, const char *label)
{
    int n = 0, i;
    while (want[n])
        n++;
    is_int(f->of[t].n, n, "%s: %d %s value%s", label, n, certauthz_type_name(t),
           n == 1 ? "" : "s");
    for (i = 0; i < n && i < f->of[t].n; i++)
        is_str(f->of[t].v[i].text, want[i], "%s: %s[%d]", label,
               certauthz_type_name(t), i);
}

/* The comparison keys are what the header says, for every value. */
static void check_keys(const certauthz_facts_t *f, const char *label)
{
    int bad = 0;
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        for (int i = 0; i < f->of[t].n; i++) {
            const certauthz_value_t *v = &f->of[t].v[i];
            char *want;
            apr_size_t wlen;
            if (t == CERTAUTHZ_DN) {
                want = (char *)certauthz_dn_key(f->subject, &wlen);
            }
            else if (t == CERTAUTHZ_ALTSEC) {
                /* the text read back as a map value (test_altsec.c) */
                const char *why;
                want = (char *)certauthz_altsec_normalize(
                    v->text, strlen(v->text), &why, pool);
                wlen = want ? strlen(want) : 0;
                if (!want)
                    want = "(refused)";
            }
            else {
                want = apr_pstrdup(pool, v->text);
                wlen = strlen(want);
                if (t == CERTAUTHZ_EMAIL || t == CERTAUTHZ_DNS
                    || t == CERTAUTHZ_UPN)
                    for (char *c = want; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
            }
            if (v->key_len != wlen || memcmp(v->key, want, wlen)) {
                diag("%s: bad key for %s[%d] %s: %s", label,
                     certauthz_type_name(t), i, v->text,
                     tap_show(v->key, v->key_len));
                bad++;
            }
        }
    }
    ok(!bad, "%s: every key is the value's comparison form", label);
}

static const char *hex_of(const unsigned char *d, unsigned n)
{
    char *s = apr_palloc(pool, 2 * n + 1);
    for (unsigned i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02X", d[i]);
    return s;
}

static void test_rich(void)
{
    X509 *x = certgen_quick(
        "--subject '/C=US/O=Example/OU=Ops/CN=Dave Smith'"
        " --issuer-name '/O=Example/CN=Example CA'"
        " --san email:dave@example.com --san dns:a.example.com"
        " --san uri:spiffe://example.org/ns/prod/sa/api"
        " --san email:Dave.Smith@Example.COM"
        " --san upn:Dave@Corp.example.com --san ip:192.0.2.7"
        " --san ip:2001:DB8::1 --san dns:B.Example.com"
        " --san uri:https://Example.org/Path --san upn:second@corp"
        " --san othername:1.2.3.4:not-a-upn --serial 004F2A9C01");
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL, *cder;
    unsigned int mdlen;
    int len, clen;
    char b64[64];

    /* expected digests, computed independently of the core */
    X509_digest(x, EVP_sha256(), md, &mdlen);
    const char *sha = hex_of(md, mdlen);
    cder = certgen_der(x, &clen);
    EVP_Digest(cder, (size_t)clen, md, &mdlen, EVP_sha256(), NULL);
    is_str(hex_of(md, mdlen), sha, "X509_digest is SHA-256 of the DER");
    free(cder);
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);

    certauthz_facts_t *f = facts_x(x);
    X509_free(x);

    const char *L = "rich";
    check_values(f, CERTAUTHZ_CN, VALS("Dave Smith"), L);
    check_values(f, CERTAUTHZ_DN, VALS("CN=Dave Smith,OU=Ops,O=Example,C=US"),
                 L);
    check_values(f, CERTAUTHZ_EMAIL,
                 VALS("dave@example.com", "Dave.Smith@Example.COM"), L);
    check_values(f, CERTAUTHZ_DNS, VALS("a.example.com", "B.Example.com"), L);
    check_values(
        f, CERTAUTHZ_URI,
        VALS("spiffe://example.org/ns/prod/sa/api", "https://Example.org/Path"),
        L);
    check_values(f, CERTAUTHZ_UPN, VALS("Dave@Corp.example.com", "second@corp"),
                 L);
    check_values(f, CERTAUTHZ_IP, VALS("192.0.2.7", "2001:db8::1"), L);
    check_values(f, CERTAUTHZ_SERIAL, VALS("4F2A9C01"), L);
    check_values(f, CERTAUTHZ_SHA256, VALS(sha), L);
    check_values(f, CERTAUTHZ_SPKI, VALS(b64), L);
    is_int(strlen(f->of[CERTAUTHZ_SHA256].v[0].text), 64,
           "sha256 has 64 "
           "digits, no colons");
    is_int(strlen(b64), 44, "spki is 44 base64 characters");
    check_keys(f, L);
    is_str(f->of[CERTAUTHZ_EMAIL].v[1].key, "dave.smith@example.com",
           "email key is folded");
    is_str(f->of[CERTAUTHZ_URI].v[1].key, "https://Example.org/Path",
           "uri key is not folded");
    ok(f->subject
           && certauthz_dn_equal(f->subject, parse_dn("CN=Dave Smith,OU=Ops,"
                                                      "O=Example,C=US")),
       "subject DN");
    ok(f->issuer
           && certauthz_dn_equal(f->issuer,
                                 parse_dn("CN=Example CA,O=Example")),
       "issuer DN");
    is_int(f->cn_count, 1, "cn_count");
    is_int(f->dropped, 0, "nothing dropped");
    ok(f->not_before && strlen(f->not_before) == 20 && f->not_before[10] == 'T'
           && f->not_before[19] == 'Z',
       "not_before as ISO 8601: %s", f->not_before);
    ok(f->not_after && strlen(f->not_after) == 20
           && strcmp(f->not_after, f->not_before) > 0,
       "not_after later: %s", f->not_after);

    /* an RSA key: the spki is still SHA-256 of the SubjectPublicKeyInfo */
    x = certgen_quick("--key-type rsa --subject /CN=rsa");
    der = NULL;
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
    X509_digest(x, EVP_sha256(), md, &mdlen);
    sha = hex_of(md, mdlen);
    f = facts_x(x);
    X509_free(x);
    check_values(f, CERTAUTHZ_SPKI, VALS(b64), "rsa");
    check_values(f, CERTAUTHZ_SHA256, VALS(sha), "rsa");
    check_values(f, CERTAUTHZ_EMAIL, NONE, "rsa, no SAN");
}

/* Set the value of entry idx of a name in place (OpenSSL 3 refuses to
 * add such entries, and cannot parse them from DER). */
static void test_hostile_names(void)
{
    certauthz_facts_t *f;

    f = facts("--subject /O=Ex/CN=a/CN=b");
    check_values(f, CERTAUTHZ_CN, NONE, "two CNs");
    check_values(f, CERTAUTHZ_DN, VALS("CN=b,CN=a,O=Ex"), "two CNs");
    is_int(f->cn_count, 2, "two CNs: cn_count");

    f = facts("--subject /CN=a+CN=b");
    check_values(f, CERTAUTHZ_CN, NONE, "two CNs in one RDN");
    check_values(f, CERTAUTHZ_DN, VALS("CN=a+CN=b"), "two CNs in one RDN");

    f = facts("--subject /O=Ex/CN=a+UID=b");
    check_values(f, CERTAUTHZ_CN, VALS("a"), "CN in a multi-valued RDN");
    check_values(f, CERTAUTHZ_DN, VALS("UID=b+CN=a,O=Ex"),
                 "CN in a multi-valued RDN");

    f = facts("--subject /O=Ex/CN=a\\x00b --san dns:ok.example");
    check_values(f, CERTAUTHZ_CN, NONE, "NUL in CN");
    check_values(f, CERTAUTHZ_DN, NONE, "NUL in CN");
    ok(f->subject == NULL, "NUL in CN: subject DN not usable");
    ok(f->dropped >= 1, "NUL in CN: counted as dropped (%d)", f->dropped);
    check_values(f, CERTAUTHZ_DNS, VALS("ok.example"), "NUL in CN");

    f = facts("--subject /O=Ex\\x00/CN=fine");
    check_values(f, CERTAUTHZ_CN, VALS("fine"), "NUL in O");
    check_values(f, CERTAUTHZ_DN, NONE, "NUL in O");

    f = facts("--subject /CN#bmp=Zo\\xC3\\xAB");
    check_values(f, CERTAUTHZ_CN, VALS("Zo\xC3\xAB"), "BMPString CN");
    check_values(f, CERTAUTHZ_DN, VALS("CN=Zo\xC3\xAB"), "BMPString CN");

    f = facts("--subject /CN#t61=caf\\xE9");
    check_values(f, CERTAUTHZ_CN, VALS("caf\xC3\xA9"),
                 "T61String CN "
                 "(Latin-1)");
    check_values(f, CERTAUTHZ_DN, VALS("CN=caf\xC3\xA9"), "T61String CN");

    f = facts("--subject /CN#der=\\x1C\\x0C\\x00\\x00\\x00Z\\x00\\x00\\x00o"
              "\\x00\\x01\\xF6\\x00");
    check_values(f, CERTAUTHZ_CN, VALS("Zo\xF0\x9F\x98\x80"),
                 "UniversalString CN");

    f = facts("--subject /CN#printable=Plain");
    check_values(f, CERTAUTHZ_CN, VALS("Plain"), "PrintableString CN");

    f = facts("--subject /CN=\\x01ctl");
    check_values(f, CERTAUTHZ_CN,
                 VALS("\x01"
                      "ctl"),
                 "control char in CN "
                 "is valid UTF-8");
    check_values(f, CERTAUTHZ_DN, VALS("CN=\\01ctl"), "control char in CN");

    /* built in memory: values OpenSSL would not parse from DER */
    static const bad_value_t bad[] = {
        {V_ASN1_UTF8STRING, "a\xC3(", 3, "invalid UTF-8 UTF8String CN"},
        {V_ASN1_UTF8STRING, "\xC0\xAF", 2, "overlong UTF8String CN"},
        {V_ASN1_INTEGER, "\x05", 1, "INTEGER CN"},
        {V_ASN1_BMPSTRING, "\x00\x41\x00", 3, "odd-length BMPString CN"},
        {V_ASN1_BMPSTRING, "\xD8\x00", 2, "lone surrogate BMPString CN"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        X509 *x = certgen_quick("--subject /O=Ex/CN=placeholder "
                                "--san email:a@b.example");
        patch_entry(X509_get_subject_name(x), 1, bad[i].type, bad[i].bytes,
                    bad[i].len);
        f = facts_x(x);
        X509_free(x);
        check_values(f, CERTAUTHZ_CN, NONE, bad[i].what);
        check_values(f, CERTAUTHZ_DN, NONE, bad[i].what);
        ok(!f->subject && f->dropped >= 1, "%s: subject unusable, dropped %d",
           bad[i].what, f->dropped);
        check_values(f, CERTAUTHZ_EMAIL, VALS("a@b.example"), bad[i].what);
    }

    /* an unusable value elsewhere in the DN drops the dn fact, keeps cn */
    X509 *x = certgen_quick("--subject /O=placeholder/CN=carol");
    patch_entry(X509_get_subject_name(x), 0, V_ASN1_UTF8STRING, "\xFF", 1);
    f = facts_x(x);
    X509_free(x);
    check_values(f, CERTAUTHZ_CN, VALS("carol"), "invalid UTF-8 in O");
    check_values(f, CERTAUTHZ_DN, NONE, "invalid UTF-8 in O");

    /* the issuer: unusable -> NULL, the subject facts stay */
    f = facts("--subject /CN=leaf --issuer-name /CN=bad\\x00ca");
    ok(f->issuer == NULL, "NUL in the issuer name: no issuer DN");
    check_values(f, CERTAUTHZ_CN, VALS("leaf"), "NUL in the issuer name");
    check_values(f, CERTAUTHZ_DN, VALS("CN=leaf"), "NUL in the issuer name");

    /* empty subject with a SAN only */
    f = facts("--subject '' --san dns:only.example");
    check_values(f, CERTAUTHZ_CN, NONE, "empty subject");
    check_values(f, CERTAUTHZ_DN, VALS(""), "empty subject");
    ok(f->subject && certauthz_dn_count(f->subject) == 0
           && certauthz_dn_equal(f->subject, parse_dn("")),
       "empty subject: the empty DN");
    check_values(f, CERTAUTHZ_DNS, VALS("only.example"), "empty subject");
    is_int(f->cn_count, 0, "empty subject: cn_count");

    /* a ~64 KiB DN */
    {
        char *spec = "/O=Big", *want = "O=Big";
        char ou[1001];
        memset(ou, 'u', 1000);
        ou[1000] = '\0';
        for (int i = 0; i < 64; i++) {
            ou[0] = (char)('A' + i % 26);
            spec = apr_pstrcat(pool, spec, "/OU=", ou, NULL);
            want = apr_pstrcat(pool, "OU=", ou, ",", want, NULL);
        }
        spec = apr_pstrcat(pool, "--subject ", spec, "/CN=huge", NULL);
        want = apr_pstrcat(pool, "CN=huge,", want, NULL);
        f = facts(spec);
        check_values(f, CERTAUTHZ_CN, VALS("huge"), "64 KiB DN");
        ok(f->of[CERTAUTHZ_DN].n == 1
               && !strcmp(f->of[CERTAUTHZ_DN].v[0].text, want),
           "64 KiB DN: dn text complete (%zu bytes)", strlen(want));
        ok(f->subject && certauthz_dn_count(f->subject) == 66,
           "64 KiB DN: 66 RDNs");
        check_keys(f, "64 KiB DN");
    }
}

static void test_hostile_sans(void)
{
    certauthz_facts_t *f;

    f = facts("--subject /CN=s"
              " --san email:good1@x --san email:ba\\x00d@x --san email:good2@x"
              " --san dns:bad\\x00.x --san dns:good.x"
              " --san uri:https://good/ --san uri:https://ba\\x00d/"
              " --san upn:good@corp --san upn:bad\\x00@corp"
              " --san ip:10.0.0.1");
    const char *L = "NUL in each SAN type";
    check_values(f, CERTAUTHZ_EMAIL, VALS("good1@x", "good2@x"), L);
    check_values(f, CERTAUTHZ_DNS, VALS("good.x"), L);
    check_values(f, CERTAUTHZ_URI, VALS("https://good/"), L);
    check_values(f, CERTAUTHZ_UPN, VALS("good@corp"), L);
    check_values(f, CERTAUTHZ_IP, VALS("10.0.0.1"), L);
    check_values(f, CERTAUTHZ_CN, VALS("s"), L);
    is_int(f->dropped, 4, "%s: 4 values dropped", L);

    f = facts("--subject /CN=s --san dns:\\xFF.x --san dns:ok.x"
              " --san email:\\xC3\\xA9@x --san upn:\\xED\\xA0\\x80@corp");
    L = "invalid UTF-8 in SANs";
    check_values(f, CERTAUTHZ_DNS, VALS("ok.x"), L);
    check_values(f, CERTAUTHZ_EMAIL, VALS("\xC3\xA9@x"),
                 "UTF-8 in an email "
                 "SAN is kept");
    check_values(f, CERTAUTHZ_UPN, NONE, L);

    f = facts("--subject /CN=s --san upn-ia5:ia5@corp --san upn:utf8@corp"
              " --san othername:1.2.3.4:other");
    check_values(f, CERTAUTHZ_UPN, VALS("utf8@corp"), "UPN with IA5 inner");
    is_int(f->dropped, 1,
           "UPN with IA5 inner: dropped (the other otherName "
           "is not)");

    f = facts("--subject /CN=s --san ipraw:0102030405060708 --san ip:10.0.0.1"
              " --san ipraw:0102030405 --san ipraw:C0000201");
    check_values(f, CERTAUTHZ_IP, VALS("10.0.0.1", "192.0.2.1"),
                 "8- and 5-byte IPs dropped");
    is_int(f->dropped, 2, "8- and 5-byte IPs: 2 dropped");

    f = facts("--subject /CN=s --san ip:2001:0DB8:0:0:0:0:0:0001"
              " --san ip:::ffff:1.2.3.4 --san ip:FE80::1:0:0:AB"
              " --san ipraw:20010db8000000000001000000000001"
              " --san ipraw:00000000000000000000000000000000");
    check_values(f, CERTAUTHZ_IP,
                 VALS("2001:db8::1", "::ffff:1.2.3.4", "fe80::1:0:0:ab",
                      "2001:db8::1:0:0:1", "::"),
                 "IPv6 SANs in canonical form");

    /* 1,000 SANs, all present in order */
    f = facts("--subject /CN=many --san-count 1000:h%d.example.com");
    int all = f->of[CERTAUTHZ_DNS].n == 1000;
    for (int i = 0; all && i < 1000; i++)
        all = !strcmp(f->of[CERTAUTHZ_DNS].v[i].text,
                      apr_psprintf(pool, "h%d.example.com", i));
    ok(all, "1,000 dns SANs present in order (%d)", f->of[CERTAUTHZ_DNS].n);

    /* two subjectAltName extensions: no SAN fact at all */
    X509 *x = certgen_quick("--subject /CN=twice --san dns:a.example");
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, "b.example", -1);
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    sk_GENERAL_NAME_push(gens, gn);
    ok(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND)
           == 1,
       "added a second SAN extension");
    GENERAL_NAMES_free(gens);
    f = facts_x(x);
    X509_free(x);
    check_values(f, CERTAUTHZ_DNS, NONE, "two SAN extensions");
    check_values(f, CERTAUTHZ_CN, VALS("twice"), "two SAN extensions");

    /* a '*' in a certificate's own SAN is data, not a pattern */
    certauthz_selector_t sel;
    const char *why;
    f = facts("--subject /CN=w --san dns:*.example.com");
    certauthz_selector_parse(&sel, "dns:www.example.com", 19, &why, pool);
    ok(!certauthz_selector_match(&sel, f, NULL),
       "SAN '*.example.com' does not match rule dns:www.example.com");
    f = facts("--subject /CN=w --san dns:www.example.com");
    certauthz_selector_parse(&sel, "dns:*.example.com", 17, &why, pool);
    ok(certauthz_selector_match(&sel, f, NULL) == 1,
       "glob dns:*.example.com matches SAN www.example.com");
}

/* Attribute types with OIDs longer than any fixed buffer: two that differ
 * only in the last arc must give different DN facts (no aliasing). */
static void test_long_oid_types(void)
{
    char oid[400], opts[2][600];
    int n = snprintf(oid, sizeof(oid), "1.2");
    certauthz_facts_t *a, *b;

    for (int i = 0; i < 40; i++)
        n += snprintf(oid + n, sizeof(oid) - (size_t)n, ".%d", 100000 + i);
    snprintf(opts[0], sizeof(opts[0]), "--subject /CN=x/%s.1=v", oid);
    snprintf(opts[1], sizeof(opts[1]), "--subject /CN=x/%s.2=v", oid);
    a = facts(opts[0]);
    b = facts(opts[1]);
    ok(a->of[CERTAUTHZ_DN].n == 1 && b->of[CERTAUTHZ_DN].n == 1,
       "long-OID subjects have a dn fact (OID of %d characters)", n + 2);
    ok(a->of[CERTAUTHZ_DN].n == 1 && b->of[CERTAUTHZ_DN].n == 1
           && !certauthz_dn_equal(a->subject, b->subject),
       "  ... and the two are different DNs");
    ok(a->of[CERTAUTHZ_DN].n == 1
           && strstr(a->of[CERTAUTHZ_DN].v[0].text, ".100039.1=v"),
       "  ... printed with the whole OID: %s",
       a->of[CERTAUTHZ_DN].n ? a->of[CERTAUTHZ_DN].v[0].text : "-");
}

/* The DN text the module prints parses back to the same DN, also for types
 * whose OpenSSL short name reads as another type ("uid" is OpenSSL's name
 * of uniqueIdentifier, and means userId to an RFC 4514 reader) or is no
 * RFC 4512 name ("ad_timestamping"). */
static void test_dn_text_round_trip(void)
{
    static const char *const subjects[] = {
        "--subject /CN=x/0.9.2342.19200300.100.1.44=alice",
        "--subject /CN=x/1.3.6.1.5.5.7.48.3=stamp",
        "--subject /CN=x/UID=u1",
        "--subject /O=Ex/OU=a+CN=b+0.9.2342.19200300.100.1.44=c",
    };
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        certauthz_facts_t *f = facts(subjects[i]);
        certauthz_dn_t *back = NULL;
        const char *reason = NULL, *text;

        if (!f->of[CERTAUTHZ_DN].n) {
            ok(0, "%s: has a dn fact", subjects[i]);
            continue;
        }
        text = f->of[CERTAUTHZ_DN].v[0].text;
        ok(certauthz_dn_parse(&back, text, strlen(text), &reason, pool)
                   == APR_SUCCESS
               && certauthz_dn_equal(back, f->subject),
           "%s: text %s reads back as the same DN (%s)", subjects[i], text,
           reason ? reason : "ok");
    }
    {
        certauthz_facts_t *f = facts(subjects[0]);
        ok(f->of[CERTAUTHZ_DN].n
               && strstr(f->of[CERTAUTHZ_DN].v[0].text,
                         "0.9.2342.19200300.100.1.44=alice"),
           "uniqueIdentifier prints as its OID, not as uid");
    }
}

/* Many RDNs: parsing allocates in proportion to the text, not to the
 * square of it (14,000 RDNs used to take half a gigabyte). */
static void test_many_rdns(void)
{
    const int n = 14000;
    apr_size_t cap = (apr_size_t)n * 6 + 1, len = 0;
    char *text = apr_palloc(pool, cap);
    certauthz_dn_t *dn = NULL;
    const char *reason = NULL;

    for (int i = 0; i < n; i++)
        len += (apr_size_t)snprintf(text + len, cap - len, "%sO=%d",
                                    i ? "," : "", i % 10);
    ok(certauthz_dn_parse(&dn, text, len, &reason, pool) == APR_SUCCESS
           && certauthz_dn_count(dn) == n,
       "a DN of %d RDNs parses", n);
}

static void test_serials(void)
{
    static const struct {
        const char *serial, *want;
    } t[] = {
        {"0", "0"},
        {"00", "0"},
        {"00FF", "FF"},
        {"0A", "A"},
        {"7fffffffffffffffffffffffffffffff",
         "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
        {"1000", "1000"},
        {"4F2A9C01", "4F2A9C01"},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_facts_t *f = facts(apr_psprintf(pool,
                                                  "--subject /CN=s "
                                                  "--serial %s",
                                                  t[i].serial));
        check_values(f, CERTAUTHZ_SERIAL, VALS(t[i].want),
                     apr_psprintf(pool, "serial %s", t[i].serial));
    }
    /* the default serial: 16 random bytes */
    certauthz_facts_t *f = facts("--subject /CN=s");
    const char *s = f->of[CERTAUTHZ_SERIAL].v[0].text;
    ok(strspn(s, "0123456789ABCDEF") == strlen(s) && s[0] != '0',
       "random serial is upper-case hex without leading zero: %s", s);
}

static void test_read(void)
{
    X509 *a = certgen_quick("--subject /CN=first");
    X509 *b = certgen_quick("--subject /CN=second");
    X509 *x;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long plen;
    int dlen;
    unsigned char *der = certgen_der(a, &dlen);

    /* PEM */
    PEM_write_bio_X509(bio, a);
    plen = BIO_get_mem_data(bio, &pem);
    char *one = apr_pstrmemdup(pool, pem, (apr_size_t)plen);
    ok(certauthz_x509_read(&x, one, strlen(one)) == APR_SUCCESS && x
           && !X509_cmp(x, a),
       "x509_read: PEM");
    X509_free(x);

    /* PEM chain: the first certificate */
    PEM_write_bio_X509(bio, b);
    plen = BIO_get_mem_data(bio, &pem);
    ok(certauthz_x509_read(&x, pem, (apr_size_t)plen) == APR_SUCCESS && x
           && !X509_cmp(x, a),
       "x509_read: PEM chain gives the first");
    X509_free(x);
    BIO_free(bio);

    /* text before the block; a key block before the certificate */
    char *lead = apr_pstrcat(pool, "subject=CN = first\nissuer=x\n", one, NULL);
    ok(certauthz_x509_read(&x, lead, strlen(lead)) == APR_SUCCESS && x
           && !X509_cmp(x, a),
       "x509_read: text before the PEM block");
    X509_free(x);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    PEM_write_bio_X509(bio, b);
    plen = BIO_get_mem_data(bio, &pem);
    ok(certauthz_x509_read(&x, pem, (apr_size_t)plen) == APR_SUCCESS && x
           && !X509_cmp(x, b),
       "x509_read: key block, then the certificate");
    X509_free(x);
    BIO_free(bio);

    /* DER */
    ok(certauthz_x509_read(&x, (const char *)der, (apr_size_t)dlen)
               == APR_SUCCESS
           && x && !X509_cmp(x, a),
       "x509_read: DER");
    X509_free(x);

    /* garbage */
    static const struct {
        const char *buf;
        size_t len;
        const char *what;
    } bad[] = {
        {B("hello, world"), "text"},
        {B(""), "empty"},
        {B("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
         "PEM with a bad body"},
        {B("-----BEGIN CERTIFICATE-----\n"), "PEM header only"},
        {B("\x30\x82\x01"), "truncated DER header"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        x = (X509 *)1;
        ok(certauthz_x509_read(&x, bad[i].buf, bad[i].len)
                   == CERTAUTHZ_EBADINPUT
               && x == NULL,
           "x509_read: %s -> EBADINPUT", bad[i].what);
    }
    x = (X509 *)1;
    ok(certauthz_x509_read(&x, (const char *)der, (apr_size_t)dlen - 10)
               == CERTAUTHZ_EBADINPUT
           && x == NULL,
       "x509_read: truncated DER -> EBADINPUT");
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    plen = BIO_get_mem_data(bio, &pem);
    x = (X509 *)1;
    ok(certauthz_x509_read(&x, pem, (apr_size_t)plen) == CERTAUTHZ_EBADINPUT
           && x == NULL,
       "x509_read: a key only -> EBADINPUT");
    BIO_free(bio);

    free(der);
    EVP_PKEY_free(key);
    X509_free(a);
    X509_free(b);
}

/* eku, ku, policy, ski (SPEC section 7): values, and hostile encodings
 * dropped and counted as the other facts are. */
static void test_extensions(void)
{
    static const char *const none[] = {NULL};
    certauthz_facts_t *f;
    char opts[1024], big[600];

    /* certgen's defaults: clientAuth + serverAuth, two ku bits, an SKI */
    f = facts("--subject /CN=plain");
    check_values(
        f, CERTAUTHZ_EKU,
        (const char *const[]){"1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", NULL},
        "default eku");
    check_values(
        f, CERTAUTHZ_KU,
        (const char *const[]){"digitalSignature", "keyEncipherment", NULL},
        "default ku");
    check_values(f, CERTAUTHZ_POLICY, none, "no policies");
    is_int(f->of[CERTAUTHZ_SKI].n, 1, "an SKI");
    is_int(f->dropped, 0, "nothing dropped");

    f = facts("--subject /CN=piv --eku clientAuth,msSmartcardLogin,1.2.3.4 "
              "--ku digitalSignature,nonRepudiation,decipherOnly "
              "--policy 2.16.840.1.101.3.2.1.3.13,2.5.29.32.0 "
              "--policy 1.2.840.113549.1 --ski 0a0B0c");
    check_values(f, CERTAUTHZ_EKU,
                 (const char *const[]){"1.3.6.1.5.5.7.3.2",
                                       "1.3.6.1.4.1.311.20.2.2", "1.2.3.4",
                                       NULL},
                 "piv eku");
    check_values(f, CERTAUTHZ_KU,
                 (const char *const[]){"digitalSignature", "nonRepudiation",
                                       "decipherOnly", NULL},
                 "piv ku (bit order, bit 8 too)");
    check_values(f, CERTAUTHZ_POLICY,
                 (const char *const[]){"2.16.840.1.101.3.2.1.3.13",
                                       "2.5.29.32.0", "1.2.840.113549.1", NULL},
                 "piv policies");
    check_values(f, CERTAUTHZ_SKI, (const char *const[]){"0A0B0C", NULL},
                 "ski upper-case hex");
    is_int(f->dropped, 0, "piv: nothing dropped");
    check_keys(f, "piv");

    f = facts("--subject /CN=bare --eku none --ku none --ski none");
    check_values(f, CERTAUTHZ_EKU, none, "no eku extension");
    check_values(f, CERTAUTHZ_KU, none, "no ku extension");
    check_values(f, CERTAUTHZ_SKI, none, "no ski extension");
    is_int(f->dropped, 0, "absent extensions drop nothing");

    /* an empty SEQUENCE of EKUs: decodes, no value */
    f = facts("--subject /CN=empty --eku none --ext 2.5.29.37:3000");
    check_values(f, CERTAUTHZ_EKU, none, "empty eku sequence");
    is_int(f->dropped, 0, "empty eku: nothing to drop");

    /* wrong types inside: an INTEGER where OIDs belong; a SEQUENCE for
     * the ku BIT STRING; an INTEGER for the SKI OCTET STRING */
    f = facts("--subject /CN=wrong --eku none --ku none --ski none "
              "--ext 2.5.29.37:3003020101 --ext 2.5.29.15:3000 "
              "--ext 2.5.29.14:020101 --ext 2.5.29.32:0403010203");
    check_values(f, CERTAUTHZ_EKU, none, "eku of an INTEGER: dropped");
    check_values(f, CERTAUTHZ_KU, none, "ku of a SEQUENCE: dropped");
    check_values(f, CERTAUTHZ_SKI, none, "ski of an INTEGER: dropped");
    check_values(f, CERTAUTHZ_POLICY, none, "policies of bytes: dropped");
    is_int(f->dropped, 4, "four undecodable extensions counted");

    /* several extensions of a kind (RFC 5280 forbids it): none is taken */
    f = facts("--subject /CN=twice --policy 1.2.3 "
              "--ext 2.5.29.32:30053003060129 --ext 2.5.29.37:300506032a0304");
    check_values(f, CERTAUTHZ_POLICY, none, "two policy extensions: dropped");
    check_values(f, CERTAUTHZ_EKU, none, "two eku extensions: dropped");
    is_int(f->dropped, 2, "duplicates counted");

    /* an empty SKI; a huge one; a huge OID among EKUs */
    f = facts("--subject /CN=emptyski --ski ''");
    check_values(f, CERTAUTHZ_SKI, none, "an empty SKI is dropped");
    is_int(f->dropped, 1, "empty SKI counted");
    memset(big, 'A', 512);
    big[512] = '\0';
    snprintf(opts, sizeof(opts), "--subject /CN=bigski --ski %s", big);
    f = facts(opts);
    check_values(f, CERTAUTHZ_SKI, (const char *const[]){big, NULL},
                 "an SKI of 256 bytes is taken");
    memset(big, 'A', 514);
    big[514] = '\0';
    snprintf(opts, sizeof(opts), "--subject /CN=hugeski --ski %s", big);
    f = facts(opts);
    check_values(f, CERTAUTHZ_SKI, none, "an SKI of 257 bytes is dropped");
    is_int(f->dropped, 1, "huge SKI counted");
    /* a 300-arc OID: 06 len 2a then 298 x 01 */
    {
        char hex[2 * 310 + 32], *o = hex;
        o += sprintf(o, "2.5.29.37:3082%04x0682%04x2a", 303, 299);
        for (int i = 0; i < 298; i++)
            o += sprintf(o, "01");
        snprintf(opts, sizeof(opts), "--subject /CN=bigoid --eku none --ext %s",
                 hex);
    }
    f = facts(opts);
    check_values(f, CERTAUTHZ_EKU, none, "an OID of 600 characters: dropped");
    is_int(f->dropped, 1, "huge OID counted");
    /* the same construction with 120 arcs (239 characters) is taken */
    {
        char hex[2 * 130 + 48], *o = hex, want[260], *w = want;
        o += sprintf(o, "2.5.29.37:30%02x06%02x2a", 121, 119);
        for (int i = 0; i < 118; i++)
            o += sprintf(o, "01");
        w += sprintf(w, "1.2");
        for (int i = 0; i < 118; i++)
            w += sprintf(w, ".1");
        snprintf(opts, sizeof(opts),
                 "--subject /CN=longoid --eku none --ext %s", hex);
        f = facts(opts);
        check_values(f, CERTAUTHZ_EKU, (const char *const[]){want, NULL},
                     "an OID of 120 arcs is taken");
    }
}

/* The hex of Microsoft's NTDS CA security extension value holding the
 * otherName 1.3.6.1.4.1.311.25.2.1 with value [0] { tag len text }. */
static const char *ntds_hex(const char *text, int tag)
{
    char *out = apr_palloc(pool, 2 * strlen(text) + 64), *o = out;
    size_t n = strlen(text), inner = 2 + n, on = 12 + 2 + inner;
    o += sprintf(o,
                 "30%02zxa0%02zx060a2b0601040182371902"
                 "01a0%02zx%02x%02zx",
                 on + 2, on, inner, tag, n);
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%02x", (unsigned char)text[i]);
    return out;
}

static void test_sid(void)
{
    static const char *const none[] = {NULL};
    certauthz_facts_t *f;
    char opts[1024];
    const char *sid = "S-1-5-21-3623811015-3361044348-30300820-1013";

    snprintf(opts, sizeof(opts),
             "--subject /CN=sid --ext 1.3.6.1.4.1.311.25.2:%s",
             ntds_hex(sid, 0x04));
    f = facts(opts);
    check_values(f, CERTAUTHZ_SID, (const char *const[]){sid, NULL},
                 "sid from the NTDS extension");
    is_int(f->dropped, 0, "ntds: nothing dropped");
    check_keys(f, "ntds");

    f = facts("--subject /CN=sidurl "
              "--san uri:tag:microsoft.com,2022-09-14:sid:s-1-5-21-1-2-3-500 "
              "--san uri:https://example.com/");
    check_values(f, CERTAUTHZ_SID,
                 (const char *const[]){"S-1-5-21-1-2-3-500", NULL},
                 "sid from the SAN URI, canonical");
    is_int(f->of[CERTAUTHZ_URI].n, 2, "the URI stays a uri fact too");

    snprintf(opts, sizeof(opts),
             "--subject /CN=both --ext 1.3.6.1.4.1.311.25.2:%s "
             "--san uri:tag:microsoft.com,2022-09-14:sid:S-1-5-32-544",
             ntds_hex(sid, 0x04));
    f = facts(opts);
    check_values(f, CERTAUTHZ_SID,
                 (const char *const[]){sid, "S-1-5-32-544", NULL},
                 "both forms, the extension's first");

    snprintf(opts, sizeof(opts),
             "--subject /CN=badsid --ext 1.3.6.1.4.1.311.25.2:%s",
             ntds_hex("S-1-5-21-x", 0x04));
    f = facts(opts);
    check_values(f, CERTAUTHZ_SID, none, "a malformed SID is dropped");
    is_int(f->dropped, 1, "malformed SID counted");

    snprintf(opts, sizeof(opts),
             "--subject /CN=intsid --ext 1.3.6.1.4.1.311.25.2:%s",
             ntds_hex("S-1-5-18", 0x0c));
    f = facts(opts);
    check_values(f, CERTAUTHZ_SID, none, "a SID not in an OCTET STRING");
    is_int(f->dropped, 1, "wrong inner type counted");

    snprintf(opts, sizeof(opts),
             "--subject /CN=twosid --ext 1.3.6.1.4.1.311.25.2:%s "
             "--ext 1.3.6.1.4.1.311.25.2:%s",
             ntds_hex(sid, 0x04), ntds_hex("S-1-5-18", 0x04));
    f = facts(opts);
    check_values(f, CERTAUTHZ_SID, none, "two NTDS extensions: none taken");
    is_int(f->dropped, 1, "duplicate counted");

    f = facts("--subject /CN=junk --ext 1.3.6.1.4.1.311.25.2:0401ff");
    check_values(f, CERTAUTHZ_SID, none, "an undecodable NTDS extension");
    is_int(f->dropped, 1, "undecodable counted");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_rich();
    test_hostile_names();
    test_hostile_sans();
    test_long_oid_types();
    test_dn_text_round_trip();
    test_many_rdns();
    test_serials();
    test_read();
    test_extensions();
    test_sid();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
