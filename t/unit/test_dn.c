/*
 * test_dn.c -- distinguished names: RFC 4514 parsing, structural equality,
 * errors, display text round trip, and conversion from certificates.
 */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/x509.h>

#include "certauthz.h"
#include "certauthz_dn.h"
#include "../certgen.h"
#include "tap.h"
#include "testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

/* Parse text (NUL-terminated); NULL when it does not parse. */
static certauthz_dn_t *parse_r(const char *text, const char **reason)
{
    certauthz_dn_t *dn = NULL;
    const char *why = NULL;
    apr_status_t rv = certauthz_dn_parse(&dn, text, strlen(text), &why, pool);
    if (reason)
        *reason = why;
    if (rv != APR_SUCCESS)
        return NULL;
    return dn;
}

static certauthz_dn_t *parse(const char *text)
{
    const char *why;
    certauthz_dn_t *dn = parse_r(text, &why);
    if (!dn)
        diag("  cannot parse %s: %s", tap_show(text, strlen(text)),
             why ? why : "(no reason)");
    return dn;
}

static void test_equality(void)
{
    static const struct {
        const char *a, *b;
        int equal;
    } t[] = {
        /* attribute names */
        {"CN=alice", "cn=alice", 1},
        {"CN=alice", "Cn=alice", 1},
        {"CN=alice", "commonName=alice", 1},
        {"CN=alice", "COMMONNAME=alice", 1},
        {"CN=alice", "2.5.4.3=alice", 1},
        {"O=Ex", "organizationName=Ex", 1},
        {"OU=Ops", "2.5.4.11=Ops", 1},
        {"SN=x", "surname=x", 1},
        {"SN=x", "2.5.4.4=x", 1},
        {"serialNumber=1", "2.5.4.5=1", 1},
        {"E=a@b", "emailAddress=a@b", 1},
        {"E=a@b", "1.2.840.113549.1.9.1=a@b", 1},
        {"UID=x", "userid=x", 1},
        {"UID=x", "0.9.2342.19200300.100.1.1=x", 1},
        {"DC=example,DC=com", "dc=example,dc=com", 1},
        {"1.2.3.4=x", "1.2.3.4=x", 1},
        {"1.2.3.4=x", "1.2.3.5=x", 0},
        {"OU=x", "O=x", 0},
        {"CN=x", "SN=x", 0},
        {"CN=x", "GN=x", 0},
        /* spaces around separators; values are not whitespace-folded */
        {"CN=alice,O=Ex", "CN = alice , O = Ex", 1},
        {"CN=alice,O=Ex", "  CN=alice,  O=Ex  ", 1},
        {"CN=alice", "CN= alice", 1},
        {"CN=alice", "CN=alice   ", 1},
        {"CN=a+UID=b", "CN=a + UID=b", 1},
        {"CN=a b", "CN=a  b", 0},
        {"CN=a", "CN=a\\ ", 0},
        {"CN=a", "CN=\\ a", 0},
        /* value case is significant */
        {"CN=alice", "CN=Alice", 0},
        {"O=Example", "O=EXAMPLE", 0},
        /* escapes */
        {"CN=a\\,b", "CN=a\\2Cb", 1},
        {"CN=a\\,b", "CN=a\\2cb", 1},
        {"CN=a\\+b", "CN=a\\2Bb", 1},
        {"CN=a\\\\b", "CN=a\\5Cb", 1},
        {"CN=\\\"q\\\"", "CN=\\22q\\22", 1},
        {"CN=a\\;b", "CN=a\\3Bb", 1},
        {"CN=a\\<b\\>", "CN=a\\3Cb\\3E", 1},
        {"CN=\\#a", "CN=\\23a", 1},
        {"CN=a=b", "CN=a\\=b", 1},
        {"CN=a#b", "CN=a\\#b", 1},
        {"CN=Zo\\C3\\AB", "CN=Zo\xC3\xAB", 1},
        {"CN=Zo\\c3\\ab", "CN=Zo\xC3\xAB", 1},
        {"CN=\\E2\\82\\AC", "CN=\xE2\x82\xAC", 1},
        {"CN=Zo\\C3\\AB", "CN=Zoe", 0},
        /* '#' BER values */
        {"CN=#0C03616263", "CN=abc", 1},
        {"CN=#0c03616263", "CN=abc", 1},
        {"CN=#1303616263", "CN=abc", 1},              /* PrintableString */
        {"CN=#1603616263", "CN=abc", 1},              /* IA5String */
        {"CN=#1E06005A006F00EB", "CN=Zo\xC3\xAB", 1}, /* BMPString */
        {"CN=#0C03616263,O=x", "CN=abc,O=x", 1},
        {"CN=#0C03616263", "CN=ABC", 0},
        {"CN=#0C03616263", "CN=\\#0C03616263", 0},
        /* multi-valued RDNs are sets; RDN order is significant */
        {"CN=a+UID=b", "UID=b+CN=a", 1},
        {"CN=a+UID=b,O=x", "UID=b+CN=a,O=x", 1},
        {"CN=a+CN=b", "CN=b+CN=a", 1},
        {"CN=a,O=b", "O=b,CN=a", 0},
        {"CN=a+O=b", "CN=a,O=b", 0},
        {"CN=a+O=b", "O=b,CN=a", 0},
        {"CN=a+UID=b", "CN=a", 0},
        {"CN=a,O=b", "CN=a,O=b,C=X", 0},
        {"CN=a,O=b", "O=b", 0},
        /* no aliasing through escaped separators */
        {"CN=a\\,O=b", "CN=a,O=b", 0},
        {"CN=a\\,CN=b", "CN=a,CN=b", 0},
        {"CN=a\\+O=b", "CN=a+O=b", 0},
        {"CN=a\\+CN\\=b", "CN=a+CN=b", 0},
        {"CN=a\\,b", "CN=a,CN=b", 0},
        {"CN=a\\=1:b", "CN=a", 0},
        /* empty DN */
        {"", "", 1},
        {"", "   ", 1},
        {"", "CN=a", 0},
        {"CN=", "", 0},
        {"CN=", "CN= ", 1},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_dn_t *a = parse(t[i].a), *b = parse(t[i].b);
        ok(a && b && certauthz_dn_equal(a, b) == t[i].equal
               && certauthz_dn_equal(b, a) == t[i].equal,
           "%s %s %s", tap_show(t[i].a, strlen(t[i].a)),
           t[i].equal ? "==" : "!=", tap_show(t[i].b, strlen(t[i].b)));
    }
    certauthz_dn_t *a = parse("CN=a");
    ok(!certauthz_dn_equal(a, NULL) && !certauthz_dn_equal(NULL, a),
       "dn_equal with NULL is false");
}

static void test_count(void)
{
    static const struct {
        const char *text;
        int n;
    } t[] = {
        {"", 0},
        {"CN=a", 1},
        {"CN=a,O=b", 2},
        {"CN=a+O=b", 1},
        {"CN=a+O=b,C=X", 2},
        {"CN=a\\,b", 1},
        {"CN=a\\+O=b,C=X", 2},
        {"DC=a,DC=b,DC=c,DC=d", 4},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_dn_t *dn = parse(t[i].text);
        is_int(dn ? certauthz_dn_count(dn) : -1, t[i].n, "dn_count(%s)",
               tap_show(t[i].text, strlen(t[i].text)));
    }
}

/* Types with bytes a C string would cut: "CN\0junk" must not read as CN. */
static void test_nul_in_type(void)
{
    static const char text[] = "CN\0junk=alice";
    certauthz_dn_t *dn = NULL;
    const char *reason = NULL;
    apr_status_t rv =
        certauthz_dn_parse(&dn, text, sizeof(text) - 1, &reason, pool);
    ok(rv != APR_SUCCESS && !dn, "NUL inside an attribute type is an error");
}

static void test_long_oids(void)
{
    /* two OIDs longer than any fixed buffer, differing in the last arc:
     * they must stay two types (no truncation, no shared fallback) */
    char a[400], b[400];
    certauthz_dn_t *da, *db;
    const char *reason;
    int n = snprintf(a, sizeof(a), "1.2");
    for (int i = 0; i < 60; i++)
        n += snprintf(a + n, sizeof(a) - (size_t)n, ".%d", 1000 + i);
    memcpy(b, a, (size_t)n + 1);
    strcat(a, ".1=x");
    strcat(b, ".2=x");
    ok(certauthz_dn_parse(&da, a, strlen(a), &reason, pool) == APR_SUCCESS
           && certauthz_dn_parse(&db, b, strlen(b), &reason, pool)
                  == APR_SUCCESS,
       "OIDs of %d characters parse", n + 2);
    ok(da && db && !certauthz_dn_equal(da, db),
       "long OIDs that differ only at the end are different types");
}

static void test_errors(void)
{
    static const struct {
        const char *text;
        const char *what;
    } t[] = {
        {"CN=a,", "trailing comma"},
        {"CN=a, ", "trailing comma and space"},
        {"CN=a,O=b,", "trailing comma after two RDNs"},
        {",CN=a", "leading comma"},
        {"CN=a,,O=b", "empty RDN"},
        {"CN=a+", "trailing plus"},
        {"CN=a+,O=b", "empty attribute after plus"},
        {"foo=bar", "unknown attribute type"},
        {"CN=a,nosuchattr=b", "unknown attribute type in 2nd RDN"},
        {"1.2.x=a", "bad numeric OID"},
        /* types that OpenSSL would read as another type: aliases */
        {"2.5.4..3=a", "OID with an empty arc"},
        {"2.5.4.3.=a", "OID with a trailing dot"},
        {".2.5.4.3=a", "OID with a leading dot"},
        {"2.5.04.3=a", "OID arc with a leading zero"},
        {"2=a", "OID with one arc"},
        {"1.2.........................................................9=a",
         "OID of many empty arcs"},
        {"CN_x=a", "'_' in a type name"},
        {"-CN=a", "type name starting with '-'"},
        {"CN", "missing '='"},
        {"CN a", "missing '=' after type and space"},
        {"=a", "missing attribute type"},
        {"CN=a;O=b", "unescaped ';'"},
        {"CN=a\"b", "unescaped '\"'"},
        {"CN=\"abc\"", "RFC 2253 quoted value"},
        {"CN=a<b", "unescaped '<'"},
        {"CN=a>b", "unescaped '>'"},
        {"CN=a\\00b", "NUL via \\00"},
        {"CN=\\00", "NUL alone via \\00"},
        {"CN=a\\FF", "invalid UTF-8 via \\FF"},
        {"CN=a\\C3", "truncated UTF-8 via \\C3"},
        {"CN=\\C0\\AF", "overlong UTF-8 via hex pairs"},
        {"CN=\\ED\\A0\\80", "surrogate via hex pairs"},
        {"CN=a\xFF", "raw invalid UTF-8"},
        {"CN=a\xC3", "raw truncated UTF-8"},
        {"CN=a\\", "ends inside an escape"},
        {"CN=a\\q", "bad escape"},
        {"CN=a\\4", "escape with one hex digit"},
        {"CN=a\\4G", "escape with a bad 2nd hex digit"},
        {"CN=#", "empty '#' value"},
        {"CN=#0C0361626", "odd '#' hex"},
        {"CN=#0C0461626", "'#' length longer than data"},
        {"CN=#0C03616263FF", "'#' trailing bytes"},
        {"CN=#0403616263", "'#' OCTET STRING"},
        {"CN=#020105", "'#' INTEGER"},
        {"CN=#0500", "'#' NULL"},
        {"CN=#0C02C328", "'#' UTF8String with invalid UTF-8"},
        {"CN=#0C03610062", "'#' UTF8String with NUL"},
        {"CN=#0C03616263xyz", "junk after a '#' value"},
        {"CN=#0C03616263;O=b", "';' after a '#' value"},
        {"CN=#0C03616263xO=b", "a letter then an RDN after a '#' value"},
        {"CN=#0C03616263 O=b", "space then RDN after a '#' value"},
        {"CN=#0C03616263\"", "'\"' after a '#' value"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *reason = NULL;
        certauthz_dn_t *dn = parse_r(t[i].text, &reason);
        ok(!dn && reason && *reason, "error: %s %s (%s)", t[i].what,
           tap_show(t[i].text, strlen(t[i].text)),
           dn ? apr_pstrcat(pool, "parsed as ", certauthz_dn_text(dn), NULL)
           : reason ? reason
                    : "no reason");
    }
    /* a NUL byte inside the text (length given explicitly) */
    certauthz_dn_t *dn = NULL;
    const char *reason = NULL;
    ok(certauthz_dn_parse(&dn, "CN=a\0b", 6, &reason, pool)
               == CERTAUTHZ_EBADINPUT
           && reason,
       "error: raw NUL byte in the value");
    ok(certauthz_dn_parse(&dn, "CN=ab", 4, &reason, pool) == APR_SUCCESS
           && certauthz_dn_equal(dn, parse("CN=a")),
       "dn_parse honours len");
    /* reasons name the problem */
    parse_r("CN=a,", &reason);
    ok(reason && strstr(reason, ","), "trailing comma reason: %s", reason);
    parse_r("foo=bar", &reason);
    ok(reason && strstr(reason, "foo"),
       "unknown attribute reason names it: "
       "%s",
       reason);
    parse_r("CN=a;b", &reason);
    ok(reason && strstr(reason, ";"), "unescaped ';' reason: %s", reason);
}

static void test_text(void)
{
    static const struct {
        const char *in, *text;
    } t[] = {
        {"cn=alice,o=Ex", "CN=alice,O=Ex"},
        {"commonName=a", "CN=a"},
        {"2.5.4.3=a", "CN=a"},
        {"  CN = a ,  O = b  ", "CN=a,O=b"},
        {"1.2.3.4=x", "1.2.3.4=x"},
        {"E=a@b", "emailAddress=a@b"},
        {"surname=x", "SN=x"},
        {"DC=example,DC=com", "DC=example,DC=com"},
        {"UID=b+CN=a", "UID=b+CN=a"},
        {"CN=a+UID=b", "UID=b+CN=a"}, /* sorted by OID */
        {"CN=b+CN=a", "CN=a+CN=b"},   /* then by value */
        {"CN=a\\,b", "CN=a\\,b"},
        {"CN=a\\2Cb", "CN=a\\,b"},
        {"CN=a\\+b", "CN=a\\+b"},
        {"CN=\\#x", "CN=\\#x"},
        {"CN=x#", "CN=x#"},
        {"CN=\\ x\\ ", "CN=\\ x\\ "},
        {"CN=x y", "CN=x y"},
        {"CN=\\\"\\\\\\<\\>\\;\\=", "CN=\\\"\\\\\\<\\>\\;\\="},
        {"CN=a\\01b", "CN=a\\01b"},
        {"CN=a\\0Ab\\7F", "CN=a\\0Ab\\7F"},
        {"CN=Zo\\C3\\AB", "CN=Zo\xC3\xAB"},
        {"CN=#0C03616263", "CN=abc"},
        {"CN=", "CN="},
        {"", ""},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_dn_t *dn = parse(t[i].in);
        is_str(dn ? certauthz_dn_text(dn) : NULL, t[i].text, "dn_text(%s)",
               tap_show(t[i].in, strlen(t[i].in)));
    }

    /* round trip: parse(text(dn)) == dn, and text is a fixed point */
    static const char *const rt[] = {
        "CN=Dave Smith,OU=Ops,O=Example,C=US",
        "CN=a\\,b\\+c\\\\d\\\"e\\;f\\<g\\>h\\=i",
        "CN=\\#lead,O=trail\\ ,OU=\\ both\\ ",
        "CN=a+O=b+OU=c,DC=x",
        "O=x+CN=y",
        "CN=#0C03616263",
        "CN=\\01\\02\\1F\\7F",
        "CN=Zo\xC3\xAB \xE2\x82\xAC \xF0\x9F\x98\x80",
        "1.2.3.4=unknown,2.5.4.3=numeric",
        "CN=a=b,O=x#",
        "CN=,O=",
        "E=x@y,UID=u,DC=d,serialNumber=42,SN=s,GN=g,title=t",
        "",
    };
    for (size_t i = 0; i < N(rt); i++) {
        certauthz_dn_t *dn = parse(rt[i]), *again = NULL;
        const char *text = dn ? certauthz_dn_text(dn) : NULL;
        if (text)
            again = parse(text);
        ok(again && certauthz_dn_equal(dn, again)
               && !strcmp(certauthz_dn_text(again), text),
           "round trip %s via %s", tap_show(rt[i], strlen(rt[i])),
           text ? text : "(no text)");
    }

    /* keys: equal iff DNs equal, and binary-safe */
    apr_size_t la, lb;
    const char *ka = certauthz_dn_key(parse("CN=a,O=b"), &la);
    const char *kb = certauthz_dn_key(parse("cn = a , o = b"), &lb);
    ok(la == lb && !memcmp(ka, kb, la), "dn_key equal for two spellings");
    kb = certauthz_dn_key(parse("CN=a\\,O\\=b"), &lb);
    ok(!(la == lb && !memcmp(ka, kb, la)), "dn_key differs for escaped ','");
}

/* ---- from certificates ---------------------------------------------- */

static void test_from_x509(void)
{
    static const struct {
        const char *spec; /* certgen subject, root first */
        const char *rfc;  /* RFC 4514, most specific first */
    } t[] = {
        {"'/C=US/O=Example/OU=Ops/CN=Dave Smith'",
         "CN=Dave Smith,OU=Ops,O=Example,C=US"},
        {"/DC=com/DC=example/CN=a+UID=b", "UID=b+CN=a,DC=example,DC=com"},
        {"/DC=com/DC=example/UID=b+CN=a", "CN=a+UID=b,DC=example,DC=com"},
        {"/O=Ex/CN=a,b", "CN=a\\,b,O=Ex"},
        {"/O=Ex/CN=a\\+b", "CN=a\\+b,O=Ex"},
        {"/O=Ex/CN=a;b\"c", "CN=a\\;b\\\"c,O=Ex"},
        {"/CN=Zo\\xC3\\xAB", "CN=Zo\\C3\\AB"},
        {"/CN#bmp=Zo\\xC3\\xAB", "CN=Zo\xC3\xAB"},
        {"/CN#t61=\\xE9t\\xE9", "CN=\xC3\xA9t\xC3\xA9"},
        {"/CN#printable=abc", "CN=abc"},
        {"/CN#ia5=abc", "CN=#1603616263"},
        {"/O=Ex/CN=a/CN=b", "CN=b,CN=a,O=Ex"},
        {"/emailAddress=a@b/CN=x", "CN=x,E=a@b"},
        {"/1.2.3.4=x", "1.2.3.4=x"},
        {"/CN=\\x01ctl", "CN=\\01ctl"},
        {"/CN=\\x20sp\\x20", "CN=\\ sp\\ "},
        {"/CN=#x", "CN=\\#x"},
        {"'/C=DE/jurisdictionC=DE/street=Main St 1/CN=x'",
         "CN=x,street=Main St 1,jurisdictionC=DE,C=DE"},
        {"/2.5.4.97=VATDE-1/CN=x", "CN=x,organizationIdentifier=VATDE-1"},
        {"''", ""},
    };
    for (size_t i = 0; i < N(t); i++) {
        char *opts = apr_psprintf(pool, "--subject %s", t[i].spec);
        X509 *x = certgen_quick(opts);
        certauthz_dn_t *dn = NULL, *want = parse(t[i].rfc);
        apr_status_t rv =
            certauthz_dn_from_x509(&dn, X509_get_subject_name(x), pool);
        ok(rv == APR_SUCCESS && dn && want && certauthz_dn_equal(dn, want),
           "from_x509 %s == parse %s (got %s)", t[i].spec, t[i].rfc,
           dn ? certauthz_dn_text(dn) : "error");
        if (dn && want) {
            certauthz_dn_t *back = parse(certauthz_dn_text(dn));
            is_str(certauthz_dn_text(dn), certauthz_dn_text(want),
                   "  ... and prints the same");
            ok(back && certauthz_dn_equal(back, dn),
               "  ... and its text parses back to it");
        }
        X509_free(x);
    }

    /* not equal to the unreversed order */
    X509 *x = certgen_quick("--subject /O=Ex/CN=a");
    certauthz_dn_t *dn;
    certauthz_dn_from_x509(&dn, X509_get_subject_name(x), pool);
    ok(dn && !certauthz_dn_equal(dn, parse("O=Ex,CN=a")),
       "from_x509 is not equal to the certificate-order text");
    X509_free(x);

    /* the issuer name */
    x = certgen_quick("--subject /CN=leaf --issuer-name "
                      "'/C=DE/O=Partner Inc/CN=Partner CA'");
    certauthz_dn_from_x509(&dn, X509_get_issuer_name(x), pool);
    ok(dn && certauthz_dn_equal(dn, parse("CN=Partner CA,O=Partner Inc,C=DE")),
       "from_x509 of the issuer name");
    X509_free(x);

    /* unusable values: the whole DN is refused */
    x = certgen_quick("--subject /O=Ex/CN=a\\x00b");
    dn = (certauthz_dn_t *)1;
    ok(certauthz_dn_from_x509(&dn, X509_get_subject_name(x), pool)
               == CERTAUTHZ_EBADINPUT
           && dn == NULL,
       "from_x509: NUL in a value -> EBADINPUT, *dn NULL");
    X509_free(x);

    /* values OpenSSL 3 would never parse from DER, built in memory */
    static const bad_value_t bad[] = {
        {V_ASN1_UTF8STRING, "a\xC3(", 3, "invalid UTF-8 in a UTF8String"},
        {V_ASN1_UTF8STRING, "\xED\xA0\x80", 3, "surrogate in a UTF8String"},
        {V_ASN1_INTEGER, "\x05", 1, "an INTEGER value"},
        {V_ASN1_OCTET_STRING, "abc", 3, "an OCTET STRING value"},
        {V_ASN1_BMPSTRING, "\x00\x41\x00", 3, "odd-length BMPString"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        X509_NAME *name = X509_NAME_new();
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   (const unsigned char *)"Ex", -1, -1, 0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"x", -1, -1, 0);
        patch_entry(name, 1, bad[i].type, bad[i].bytes, bad[i].len);
        is_int(certauthz_dn_from_x509(&dn, name, pool), CERTAUTHZ_EBADINPUT,
               "from_x509 refuses a name with %s", bad[i].what);
        X509_NAME_free(name);
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_equality();
    test_count();
    test_errors();
    test_nul_in_type();
    test_long_oids();
    test_text();
    test_from_x509();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
