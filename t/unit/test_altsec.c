/*
 * test_altsec.c -- Active Directory's altSecurityIdentities forms
 * (certauthz_altsec.h): map values reduced to their canonical key (the
 * comparison AD makes: case, spaces, attribute names, quoting, multi-valued
 * RDNs, RDN order), the forms of certificates made by certgen (X.500 order,
 * Windows names and quoting, reversed two's-complement serials, SKI,
 * SHA-1 digests, hostile names), every form of a certificate read back
 * through normalize, and altsec: rules resolved through a map.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certauthz.h"
#include "certauthz_altsec.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "../certgen.h"
#include "tap.h"
#include "maputil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

static const char *norm(const char *s, const char **reason)
{
    const char *why = NULL;
    const char *k = certauthz_altsec_normalize(s, strlen(s), &why, pool);
    if (reason)
        *reason = why;
    return k;
}

/* ---- map values ------------------------------------------------------ */

static void test_normalize_keys(void)
{
    static const struct {
        const char *in, *key;
    } t[] = {
        {"X509:<SKI>0A1B2C", "X509:<SKI>0a1b2c"},
        {"x509:<ski>0a1b2c", "X509:<SKI>0a1b2c"},
        {"X509:<SHA1-PUKEY>00112233445566778899AABBCCDDEEFF00112233",
         "X509:<SHA1-PUKEY>00112233445566778899aabbccddeeff00112233"},
        {"X509:<I>DC=com,DC=example,CN=Example CA<SR>0A0B",
         "X509:<I>0.9.2342.19200300.100.1.25=\"com\","
         "0.9.2342.19200300.100.1.25=\"example\",2.5.4.3=\"example ca\""
         "<SR>0a0b"},
        {"X509:<I>CN=CA<S>O=Example,OU=Eng+CN=Dave",
         "X509:<I>2.5.4.3=\"ca\"<S>2.5.4.10=\"example\","
         "2.5.4.11=\"eng\"+2.5.4.3=\"dave\""},
        /* quoting: separators inside, a doubled quote, spaces kept */
        {"X509:<I>CN=\"a,b+c;d<e>f=g#h\"<S>CN=\"say \"\"hi\"\"\"",
         "X509:<I>2.5.4.3=\"a,b+c;d<e>f=g#h\"<S>2.5.4.3=\"say \"\"hi\"\"\""},
        {"X509:<I>CN=\" x \"<S>CN=\"\"",
         "X509:<I>2.5.4.3=\" x \"<S>2.5.4.3=\"\""},
        /* an empty subject */
        {"X509:<I>CN=CA<S>", "X509:<I>2.5.4.3=\"ca\"<S>"},
        /* an empty issuer, and one of spaces only (no RDN to sort) */
        {"X509:<I><SR>01", "X509:<I><SR>01"},
        {"X509:<I>  <S> ", "X509:<I><S>"},
        /* OID forms and unknown attributes */
        {"X509:<I>OID.2.5.4.65=p,1.2.3.4=q<SR>01",
         "X509:<I>2.5.4.65=\"p\",1.2.3.4=\"q\"<SR>01"},
        /* non-ASCII kept as is (only ASCII letters fold) */
        {"X509:<I>CN=J\xc3\xbcRGEN<SR>01",
         "X509:<I>2.5.4.3=\"j\xc3\xbcrgen\"<SR>01"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *why;
        const char *k = norm(t[i].in, &why);
        is_str(k, t[i].key, "normalize %s%s%s", t[i].in, k ? "" : ": ",
               k ? "" : why);
    }
}

/* Spellings AD takes as the same mapping give one key; the ones it tells
 * apart do not. */
static void test_normalize_equivalence(void)
{
    static const char *const same[][4] = {
        {"X509:<I>DC=com,DC=example,CN=Example CA<SR>0A0B",
         "x509:<i>dc=COM; dc=Example ,  cn = \"example ca\"<sr>0a0b",
         "X509:<I>OID.0.9.2342.19200300.100.1.25=com,DC=example,"
         "2.5.4.3=Example CA<SR>0a0b",
         "X509:<I> DC = com , DC = example , CN = Example CA <SR>0A0b"},
        {"X509:<I>C=US,S=Texas,CN=CA<SR>01",
         "X509:<I>C=US,ST=Texas,CN=CA<SR>01",
         "X509:<I>C=US,OID.2.5.4.8=Texas,CN=CA<SR>01",
         "X509:<I>c=us,st=TEXAS,cn=ca<SR>01"},
        /* a multi-valued RDN is a set */
        {"X509:<I>CN=CA<S>O=X,OU=Eng+CN=Dave",
         "X509:<I>CN=CA<S>O=X,CN=Dave+OU=Eng",
         "X509:<I>CN=CA<S>O=X , CN=Dave + OU=Eng",
         "X509:<I>CN=CA<S>O=X;CN=\"Dave\"+OU=\"Eng\""},
        {"X509:<I>E=a@b.example<SR>ff", "X509:<I>E=A@B.EXAMPLE<SR>FF",
         "X509:<I>OID.1.2.840.113549.1.9.1=a@b.example<SR>ff",
         "X509:<I>e=\"a@b.example\"<SR>ff"},
    };
    static const char *const differ[][2] = {
        /* RDN order is significant */
        {"X509:<I>CN=CA<S>OU=Eng,CN=Dave", "X509:<I>CN=CA<S>CN=Dave,OU=Eng"},
        /* two RDNs are not one multi-valued RDN */
        {"X509:<I>CN=CA<S>OU=Eng,CN=Dave", "X509:<I>CN=CA<S>OU=Eng+CN=Dave"},
        /* a space inside quotes is part of the value */
        {"X509:<I>CN=CA<S>CN=\" Dave\"", "X509:<I>CN=CA<S>CN=Dave"},
        /* byte order of the serial */
        {"X509:<I>CN=CA<SR>0a0b0c", "X509:<I>CN=CA<SR>0c0b0a"},
        /* a leading zero octet is part of the serial */
        {"X509:<I>CN=CA<SR>01ff80", "X509:<I>CN=CA<SR>01ff8000"},
        /* the issuer is part of the subject form */
        {"X509:<I>CN=CA<S>CN=Dave", "X509:<I>CN=CA2<S>CN=Dave"},
        /* <S> and <SR> */
        {"X509:<I>CN=CA<S>CN=01", "X509:<I>CN=CA<SR>01"},
        /* no Unicode case folding */
        {"X509:<I>CN=CA<S>CN=\xc3\x84rger", "X509:<I>CN=CA<S>CN=\xc3\xa4rger"},
        /* S is stateOrProvince, SN surname, SERIALNUMBER serialNumber */
        {"X509:<I>S=x<SR>01", "X509:<I>SN=x<SR>01"},
        {"X509:<I>SN=x<SR>01", "X509:<I>SERIALNUMBER=x<SR>01"},
        /* a quoted separator is not a separator */
        {"X509:<I>CN=\"a,O=b\"<SR>01", "X509:<I>CN=a,O=b<SR>01"},
    };
    for (size_t i = 0; i < N(same); i++) {
        const char *k0 = norm(same[i][0], NULL);
        ok(k0 != NULL, "normalizes: %s", same[i][0]);
        for (size_t j = 1; j < 4; j++)
            is_str(norm(same[i][j], NULL), k0, "same mapping: %s == %s",
                   same[i][j], same[i][0]);
    }
    for (size_t i = 0; i < N(differ); i++) {
        const char *a = norm(differ[i][0], NULL), *b = norm(differ[i][1], NULL);
        ok(a && b && strcmp(a, b), "different mappings: %s != %s", differ[i][0],
           differ[i][1]);
    }
}

static void test_normalize_errors(void)
{
    static const struct {
        const char *in, *why;
    } t[] = {
        {"", "starts with X509:"},
        {"X509", "starts with X509:"},
        {"<I>CN=a<SR>01", "starts with X509:"},
        {"X509:<S>CN=Dave", "X509:<S> (subject only) is a weak mapping"},
        {"X509:<RFC822>a@b.example", "X509:<RFC822> is a weak mapping"},
        {"X509:<SR>01", "unknown form"},
        {"X509:<PN>a@b", "unknown form"},
        {"X509:CN=a", "unknown form"},
        {"X509:<I>CN=a", "wants <SR>SERIAL or <S>SUBJECT"},
        {"X509:<I>CN=a<SKI>01", "wants <SR>SERIAL or <S>SUBJECT"},
        {"X509:<I>CN=a<SR>", "even number of hex digits"},
        {"X509:<I>CN=a<SR>0a0", "even number of hex digits"},
        {"X509:<I>CN=a<SR>0g", "not hex"},
        {"X509:<I>CN=a<SR>0a:b", "not hex"},
        {"X509:<SKI>", "even number of hex digits"},
        {"X509:<SKI>0a b", "not hex"},
        {"X509:<SHA1-PUKEY>0011", "want 40 hex digits"},
        {"X509:<SHA1-PUKEY>00112233445566778899aabbccddeeff0011223344",
         "want 40 hex digits"},
        {"X509:<SHA1-PUKEY>00112233445566778899aabbccddeeff0011223z",
         "not hex"},
        {"X509:<I>CN=a<S>CN=b<SR>01", "a '<' after <S>"},
        {"X509:<I>CN=a<S>CN=b<c", "a '<' after <S>"},
        {"X509:<I>CN=a\"b<SR>01", "unbalanced '\"'"},
        {"X509:<I>CN=a\"\"b<SR>01", "must be in double quotes"},
        {"X509:<I>CN=a>b<SR>01", "must be in double quotes"},
        {"X509:<I>CN=#0403616263<SR>01", "#hex value"},
        {"X509:<I>CN=<SR>01", "empty value"},
        {"X509:<I>CN=a,<SR>01", "empty attribute"},
        {"X509:<I>CN<SR>01", "without '='"},
        {"X509:<I>=a<SR>01", "without a name"},
        {"X509:<I>XX=a<SR>01", "unknown attribute name 'XX'"},
        /* a name echoed in the reason is escaped for the log, and cut
         * without splitting a UTF-8 sequence */
        {"X509:<I>d\x01\x0c"
         "c=a<SR>01",
         "unknown attribute name 'd\\x01\\x0C"
         "c'"},
        {"X509:<I>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9zz=a<SR>01",
         "unknown attribute name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' "},
        {"X509:<I>OID.2.5.x=a<SR>01", "OID"},
        {"X509:<I>CN=\"abc<SR>01", "unbalanced '\"'"},
        {"X509:<I>CN=a<S>CN=\"abc", "unterminated quote"},
        {"X509:<I>CN=\"a\"b<SR>01", "text after a quoted DN value"},
        {"X509:<I>CN=a\x01<SR>01", "control character"},
        {"X509:<I>CN=\"a\nb\"<SR>01", "control character"},
        {"X509:<I>CN=\xff<SR>01", "invalid UTF-8"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *why = NULL;
        const char *k = norm(t[i].in, &why);
        ok(!k && why && strstr(why, t[i].why), "refused: %s -> '%s' (got %s)",
           tap_show(t[i].in, strlen(t[i].in)), t[i].why,
           k     ? k
           : why ? why
                 : "no reason");
    }
    /* a huge serial is refused, not truncated */
    {
        char *s = apr_pstrcat(pool, "X509:<I>CN=a<SR>", NULL);
        for (int i = 0; i < 257; i++)
            s = apr_pstrcat(pool, s, "ab", NULL);
        const char *why = NULL;
        ok(!norm(s, &why) && why && strstr(why, "longer than 256 octets"),
           "a 257-byte serial is refused: %s", why ? why : "accepted");
    }
}

static void test_form_and_selector(void)
{
    is_int(certauthz_altsec_form("X509:<I>CN=a<SR>01"),
           CERTAUTHZ_ALTSEC_ISSUER_SERIAL, "form: issuer+serial");
    is_int(certauthz_altsec_form("X509:<I>CN=\"a<S>b\"<SR>01"),
           CERTAUTHZ_ALTSEC_ISSUER_SERIAL, "form: quoted <S> is not a tag");
    is_int(certauthz_altsec_form("X509:<I>CN=a<S>CN=b"),
           CERTAUTHZ_ALTSEC_ISSUER_SUBJECT, "form: issuer+subject");
    is_int(certauthz_altsec_form("X509:<SKI>01"), CERTAUTHZ_ALTSEC_SKI,
           "form: ski");
    is_int(certauthz_altsec_form("X509:<SHA1-PUKEY>01"), CERTAUTHZ_ALTSEC_SHA1,
           "form: sha1");
    is_int(certauthz_altsec_form("X509:<S>CN=b"), -1, "form: <S> is none");
    is_int(certauthz_altsec_form("cn=x"), -1, "form: not X509");
    is_str(certauthz_altsec_selector("X509:<I>CN=\"a\\\"\"<S>", pool),
           "altsec:\"X509:<I>CN=\\\"a\\\\\\\"\\\"<S>\"",
           "selector escapes quotes and backslashes");
}

/* ---- certificates ---------------------------------------------------- */

typedef struct {
    int n, dropped;
    certauthz_altsec_t f[CERTAUTHZ_ALTSEC_MAX];
} forms_t;

/* The forms of a certgen certificate, read back from its DER as mod_ssl
 * would hand it over. */
static X509 *cert_der_roundtrip(const char *opts)
{
    X509 *x = certgen_quick(opts), *y;
    int len;
    unsigned char *der = certgen_der(x, &len);
    const unsigned char *q = der;
    y = d2i_X509(NULL, &q, len);
    free(der);
    X509_free(x);
    if (!y) {
        diag("d2i_X509 failed for %s", opts);
        abort();
    }
    return y;
}

static forms_t forms_of(X509 *x, const char *ski)
{
    forms_t r;
    memset(&r, 0, sizeof(r));
    r.n = certauthz_altsec_of_x509(x, ski, r.f, &r.dropped, pool);
    return r;
}

static const char *sha1_of(const unsigned char *d, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char *s;
    EVP_Digest(d, n, md, &len, EVP_sha1(), NULL);
    s = apr_palloc(pool, 2 * len + 1);
    for (unsigned int i = 0; i < len; i++)
        apr_snprintf(s + 2 * i, 3, "%02x", md[i]);
    return s;
}

/* Every form's text, read back as a map value, gives the form's key. */
static void check_round_trip(const forms_t *r, const char *label)
{
    for (int i = 0; i < r->n; i++) {
        const char *why = NULL;
        const char *k = norm(r->f[i].text, &why);
        is_str(k, r->f[i].key, "%s: form %d read back (%s)%s%s", label, i,
               r->f[i].text, k ? "" : ": ", k ? "" : why);
    }
}

static void test_cert_forms(void)
{
    X509 *x =
        cert_der_roundtrip("--subject /DC=com/DC=example/OU=Eng+CN=Dave "
                           "--issuer-name '/DC=com/DC=example/CN=Example CA' "
                           "--serial 0A0B0C --ski 0102AB");
    forms_t r = forms_of(x, "0102AB");
    unsigned char *der = NULL;
    int dl = i2d_X509(x, &der);
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(x);
    const char *want[] = {
        "X509:<I>DC=com,DC=example,CN=Example CA<SR>0c0b0a", "X509:<SKI>0102ab",
        apr_pstrcat(pool, "X509:<SHA1-PUKEY>", sha1_of(der, (size_t)dl), NULL),
        apr_pstrcat(pool, "X509:<SHA1-PUKEY>",
                    sha1_of(ASN1_STRING_get0_data(key),
                            (size_t)ASN1_STRING_length(key)),
                    NULL),
        "X509:<I>DC=com,DC=example,CN=Example CA"
        "<S>DC=com,DC=example,OU=Eng+CN=Dave"};
    OPENSSL_free(der);
    is_int(r.n, 5, "five forms");
    is_int(r.dropped, 0, "none dropped");
    for (int i = 0; i < 5 && i < r.n; i++)
        is_str(r.f[i].text, want[i], "form %d", i);
    is_str(r.f[0].key,
           "X509:<I>0.9.2342.19200300.100.1.25=\"com\","
           "0.9.2342.19200300.100.1.25=\"example\",2.5.4.3=\"example ca\""
           "<SR>0c0b0a",
           "issuer+serial key");
    is_int(certauthz_altsec_form(r.f[0].text), CERTAUTHZ_ALTSEC_ISSUER_SERIAL,
           "form 0 is issuer+serial");
    is_int(certauthz_altsec_form(r.f[4].text), CERTAUTHZ_ALTSEC_ISSUER_SUBJECT,
           "form 4 is issuer+subject");
    check_round_trip(&r, "rich");
    X509_free(x);

    /* no subjectKeyIdentifier: no <SKI> form, nothing guessed */
    x = cert_der_roundtrip("--subject /CN=noski --ski none");
    r = forms_of(x, NULL);
    is_int(r.n, 4, "no ski: four forms");
    for (int i = 0; i < r.n; i++)
        ok(certauthz_altsec_form(r.f[i].text) != CERTAUTHZ_ALTSEC_SKI,
           "no ski: form %d is not <SKI>", i);
    X509_free(x);
}

/* Serials: the DER INTEGER's content octets, sign octet included, in
 * reverse order. */
static void test_serials(void)
{
    static const struct {
        const char *serial, *want;
    } t[] = {
        {"0A0B0C", "0c0b0a"},
        {"01", "01"},
        {"00", "00"},
        {"7F", "7f"},
        {"80", "8000"},         /* DER 00 80: the sign octet comes last */
        {"80FF01", "01ff8000"}, /* DER 00 80 ff 01 */
        {"-0A", "f6"},          /* two's complement of -10 */
        {"-80", "80"},          /* -128 is one octet 80 */
        {"-81", "7fff"},        /* -129 is ff 7f */
        {"0102030405060708090A0B0C0D0E0F1011121314",
         "14131211100f0e0d0c0b0a090807060504030201"},
        {"FF0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
         "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a090807060504030201ff00"},
    };
    for (size_t i = 0; i < N(t); i++) {
        X509 *x = cert_der_roundtrip(apr_psprintf(
            pool, "--subject /CN=s --issuer-name /CN=CA --serial %s",
            t[i].serial));
        forms_t r = forms_of(x, NULL);
        is_str(r.f[0].text,
               apr_pstrcat(pool, "X509:<I>CN=CA<SR>", t[i].want, NULL),
               "serial %s", t[i].serial);
        check_round_trip(&r, t[i].serial);
        X509_free(x);
    }
}

/* DNs: Windows names, X.500 order, quoting, multi-valued RDNs. */
static void test_names(void)
{
    static const struct {
        const char *subject, *want;
    } t[] = {
        {"'/C=US/ST=Texas/L=Austin/O=Example Corp/OU=Eng/CN=Ann Smith'",
         "C=US,S=Texas,L=Austin,O=Example Corp,OU=Eng,CN=Ann Smith"},
        {"/street=Main/title=Dr/GN=Ann/initials=A/SN=Smith/serialNumber=42",
         "STREET=Main,T=Dr,G=Ann,I=A,SN=Smith,SERIALNUMBER=42"},
        {"/description=d/postalCode=7/postOfficeBox=1/telephoneNumber=5",
         "Description=d,PostalCode=7,POBox=1,Phone=5"},
        {"/x121Address=9/dnQualifier=q/unstructuredName=u/"
         "unstructuredAddress=a/emailAddress=a@b.example",
         "X21Address=9,dnQualifier=q,UnstructuredName=u,"
         "UnstructuredAddress=a,E=a@b.example"},
        {"/UID=jdoe/2.5.4.65=pseudo/1.3.6.1.4.1.99999.1=x",
         "OID.0.9.2342.19200300.100.1.1=jdoe,OID.2.5.4.65=pseudo,"
         "OID.1.3.6.1.4.1.99999.1=x"},
        {"/DC=com/DC=example/OU=Eng+CN=Dave",
         "DC=com,DC=example,OU=Eng+CN=Dave"},
        {"/O=X/CN=a+CN=b+OU=c", "O=X,CN=a+CN=b+OU=c"},
        /* Windows' quoting */
        {"/CN=a,b", "CN=\"a,b\""},
        {"/CN=a\\+b", "CN=\"a+b\""},
        {"/CN=a=b", "CN=\"a=b\""},
        {"/CN=a;b", "CN=\"a;b\""},
        {"/CN=a<b>", "CN=\"a<b>\""},
        {"/CN=#1", "CN=\"#1\""},
        {"/CN=a#1", "CN=\"a#1\""},
        {"'/CN=say \"hi\"'", "CN=\"say \"\"hi\"\"\""},
        {"'/CN= lead'", "CN=\" lead\""},
        {"'/CN=trail '", "CN=\"trail \""},
        {"'/CN=in side'", "CN=in side"},
        {"/CN=", "CN=\"\""},
        {"/CN=back\\\\slash", "CN=back\\slash"},
        /* string types: all as UTF-8 */
        {"/CN#bmp=bob", "CN=bob"},
        {"/CN#t61=caf\\xe9", "CN=caf\xc3\xa9"},
        {"/CN=J\\xc3\\xbcrgen", "CN=J\xc3\xbcrgen"},
        {"/CN#printable=p/O#ia5=i", "CN=p,O=i"},
    };
    for (size_t i = 0; i < N(t); i++) {
        X509 *x = cert_der_roundtrip(
            apr_psprintf(pool, "--subject %s --issuer-name /CN=CA --serial 01",
                         t[i].subject));
        forms_t r = forms_of(x, NULL);
        is_int(r.dropped, 0, "%s: nothing dropped", t[i].subject);
        is_str(r.f[r.n - 1].text,
               apr_pstrcat(pool, "X509:<I>CN=CA<S>", t[i].want, NULL),
               "subject %s", t[i].subject);
        check_round_trip(&r, t[i].subject);
        X509_free(x);
    }
    /* the issuer is written the same way */
    {
        X509 *x = cert_der_roundtrip(
            "--subject /CN=s --issuer-name '/DC=org/O=A, Inc./CN=CA+OU=x' "
            "--serial 01");
        forms_t r = forms_of(x, NULL);
        /* the RDN's attributes in DER order (a SET OF is sorted by its
         * encodings: the shorter OU=x first), as the certificate has them */
        is_str(r.f[0].text, "X509:<I>DC=org,O=\"A, Inc.\",OU=x+CN=CA<SR>01",
               "issuer with a comma and a multi-valued RDN");
        check_round_trip(&r, "issuer");
        X509_free(x);
    }
}

/* Names AD cannot write give no form and count as dropped; the other
 * forms stay. */
static void test_hostile_names(void)
{
    static const struct {
        const char *opts;
        int n, dropped, has_sr, has_s;
    } t[] = {
        {"--subject /CN=a\\x01b --issuer-name /CN=CA", 4, 1, 1, 0},
        {"--subject /CN=a\\x0ab --issuer-name /CN=CA", 4, 1, 1, 0},
        {"--subject /CN=a\\x7fb --issuer-name /CN=CA", 4, 1, 1, 0},
        {"--subject /CN=s --issuer-name /CN=C\\x0aA", 3, 2, 0, 0},
    };
    for (size_t i = 0; i < N(t); i++) {
        X509 *x = cert_der_roundtrip(t[i].opts);
        forms_t r = forms_of(x, "01");
        int sr = 0, s = 0;
        for (int j = 0; j < r.n; j++) {
            sr += certauthz_altsec_form(r.f[j].text)
                  == CERTAUTHZ_ALTSEC_ISSUER_SERIAL;
            s += certauthz_altsec_form(r.f[j].text)
                 == CERTAUTHZ_ALTSEC_ISSUER_SUBJECT;
            ok(!strpbrk(r.f[j].text, "\x01\n\x7f"),
               "%s: no control character in form %d", t[i].opts, j);
        }
        is_int(r.n, t[i].n, "%s: %d forms", t[i].opts, t[i].n);
        is_int(r.dropped, t[i].dropped, "%s: %d dropped", t[i].opts,
               t[i].dropped);
        is_int(sr, t[i].has_sr, "%s: issuer+serial form", t[i].opts);
        is_int(s, t[i].has_s, "%s: issuer+subject form", t[i].opts);
        X509_free(x);
    }
    /* a NUL byte in a name (certgen writes it raw) */
    {
        X509 *x =
            certgen_quick("--subject /CN=bob\\x00evil --issuer-name /CN=CA");
        forms_t r = forms_of(x, NULL);
        is_int(r.n, 3, "NUL in the subject: no issuer+subject form");
        is_int(r.dropped, 1, "NUL in the subject: one dropped");
        X509_free(x);
    }
}

/* The facts carry the forms (after the ski fact they take the SKI from),
 * and altsec: rules of a map match them as AD would. */
static void test_facts_and_map(void)
{
    certauthz_facts_t *f =
        facts_of_cert("--subject /DC=com/DC=example/OU=Eng+CN=Dave "
                      "--issuer-name '/DC=com/DC=example/CN=Example CA' "
                      "--serial 80FF01 --ski 0102AB",
                      pool);
    const certauthz_values_t *a = &f->of[CERTAUTHZ_ALTSEC];
    certauthz_map_t *m;
    apr_array_header_t *errs = NULL;
    certauthz_identity_t id;
    static const struct {
        const char *rule, *want;
    } t[] = {
        {"altsec:\"X509:<I>DC=com,DC=example,CN=Example CA<SR>01ff8000\" sr",
         "MAPPED sr @1"},
        {"altsec:\"x509:<i>dc=COM; DC=Example, CN=\\\"example "
         "ca\\\"<sr>01FF8000\""
         " sr2",
         "MAPPED sr2 @1"},
        {"altsec:X509:<SKI>0102ab ski", "MAPPED ski @1"},
        {"altsec:X509:<SKI>0102AB ski2", "MAPPED ski2 @1"},
        {"altsec:\"X509:<I>DC=com,DC=example,CN=Example CA"
         "<S>DC=com,DC=example,CN=Dave+OU=Eng\" s",
         "MAPPED s @1"},
        /* not byte-reversed: the order certificate viewers print */
        {"altsec:\"X509:<I>DC=com,DC=example,CN=Example CA<SR>0080ff01\" no",
         "UNMAPPED"},
        /* RFC 4514 order instead of X.500's */
        {"altsec:\"X509:<I>CN=Example CA,DC=example,DC=com<SR>01ff8000\" no",
         "UNMAPPED"},
        /* another issuer */
        {"altsec:\"X509:<I>DC=com,DC=example,CN=Other CA<SR>01ff8000\" no",
         "UNMAPPED"},
        /* the subject's RDNs split */
        {"altsec:\"X509:<I>DC=com,DC=example,CN=Example CA"
         "<S>DC=com,DC=example,OU=Eng,CN=Dave\" no",
         "UNMAPPED"},
        {"deny altsec:X509:<SKI>0102AB", "DENIED @1"},
    };
    is_int(a->n, 5, "facts: five altsec values");
    is_str(a->n ? a->v[1].text : NULL, "X509:<SKI>0102ab",
           "facts: <SKI> from the ski fact");
    for (size_t i = 0; i < N(t); i++) {
        const char *text = apr_pstrcat(pool, t[i].rule, "\n", NULL);
        if (certauthz_map_parse(&m, "t.map", text, strlen(text), &errs, pool)
            != APR_SUCCESS) {
            ok(0, "map parses: %s", t[i].rule);
            continue;
        }
        certauthz_map_resolve(&id, m, f, pool);
        is_str(identity_text(&id, pool), t[i].want, "%s", t[i].rule);
    }
    /* the SHA-1 of the certificate and of its key: either matches */
    for (int i = 2; i < 4 && i < a->n; i++) {
        const char *text =
            apr_psprintf(pool, "altsec:%s u%d\n", a->v[i].text, i);
        ok(certauthz_map_parse(&m, "t.map", text, strlen(text), &errs, pool)
               == APR_SUCCESS,
           "sha1 rule %d parses", i);
        certauthz_map_resolve(&id, m, f, pool);
        is_str(identity_text(&id, pool), apr_psprintf(pool, "MAPPED u%d @1", i),
               "sha1 form %d matches", i);
    }
    /* weak and bad forms are map errors naming the line */
    {
        static const char *const bad[] = {
            "cn:x u\naltsec:\"X509:<S>CN=Dave\" u\n",
            "cn:x u\naltsec:X509:<RFC822>a@b.example u\n",
            "cn:x u\naltsec:X509:<SKI>0g u\n",
            "cn:x u\naltsec:\"X509:<I>XX=1<SR>01\" u\n",
        };
        for (size_t i = 0; i < N(bad); i++) {
            certauthz_error_t *e;
            errs = NULL;
            ok(certauthz_map_parse(&m, "t.map", bad[i], strlen(bad[i]), &errs,
                                   pool)
                   != APR_SUCCESS,
               "refused: %s", tap_show(bad[i], strlen(bad[i])));
            e = errs && errs->nelts ? &APR_ARRAY_IDX(errs, 0, certauthz_error_t)
                                    : NULL;
            ok(e && e->line == 2 && strstr(e->reason, "bad altsec value"),
               "error at line 2: %s", e ? e->reason : "(none)");
        }
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_normalize_keys();
    test_normalize_equivalence();
    test_normalize_errors();
    test_form_and_selector();
    test_cert_forms();
    test_serials();
    test_names();
    test_hostile_names();
    test_facts_and_map();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
