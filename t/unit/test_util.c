/*
 * test_util.c -- byte-string helpers: UTF-8 validation, ASCII folding, hex,
 * serial, base64/spki, IP canonicalisation, log escaping, type names.
 */
#include <apr_general.h>
#include <apr_pools.h>

#include "certauthz.h"
#include "certauthz_util.h"
#include "tap.h"

/* a string literal with its length (may hold NUL bytes) */
#define B(s) s, sizeof(s) - 1
#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

static void test_utf8(void)
{
    static const struct {
        const char *s;
        size_t len;
        int valid;
        const char *what;
    } t[] = {
        {B(""), 1, "empty"},
        {B("abc"), 1, "ASCII"},
        {B("\x7F"), 1, "DEL is ASCII"},
        {B("Zo\xC3\xAB"), 1, "2-byte (U+00EB)"},
        {B("\xC2\x80"), 1, "smallest 2-byte U+0080"},
        {B("\xE2\x82\xAC"), 1, "3-byte (U+20AC)"},
        {B("\xE0\xA0\x80"), 1, "smallest 3-byte U+0800"},
        {B("\xED\x9F\xBF"), 1, "U+D7FF just below surrogates"},
        {B("\xEE\x80\x80"), 1, "U+E000 just above surrogates"},
        {B("\xEF\xBF\xBD"), 1, "U+FFFD"},
        {B("\xF0\x9F\x98\x80"), 1, "4-byte (U+1F600)"},
        {B("\xF0\x90\x80\x80"), 1, "smallest 4-byte U+10000"},
        {B("\xF4\x8F\xBF\xBF"), 1, "U+10FFFF"},
        {B("\xC0\xAF"), 0, "overlong 2-byte C0"},
        {B("\xC1\xBF"), 0, "overlong 2-byte C1"},
        {B("\xE0\x80\xAF"), 0, "overlong 3-byte '/'"},
        {B("\xE0\x9F\xBF"), 0, "overlong 3-byte U+07FF"},
        {B("\xF0\x80\x80\xAF"), 0, "overlong 4-byte '/'"},
        {B("\xF0\x8F\xBF\xBF"), 0, "overlong 4-byte U+FFFF"},
        {B("\xC0\x80"), 0, "overlong NUL"},
        {B("\xED\xA0\x80"), 0, "surrogate U+D800"},
        {B("\xED\xBF\xBF"), 0, "surrogate U+DFFF"},
        {B("\xED\xA0\xBD\xED\xB8\x80"), 0, "CESU-8 surrogate pair"},
        {B("\xF4\x90\x80\x80"), 0, "U+110000"},
        {B("\xF5\x80\x80\x80"), 0, "lead F5"},
        {B("\xF8\x88\x80\x80\x80"), 0, "5-byte form"},
        {B("\xFE"), 0, "FE"},
        {B("\xFF"), 0, "FF"},
        {B("\xC3"), 0, "truncated 2-byte"},
        {B("a\xE2\x82"), 0, "truncated 3-byte"},
        {B("\xF0\x9F\x98"), 0, "truncated 4-byte"},
        {B("\xC3("), 0, "2-byte lead then ASCII"},
        {B("\xE2\x28\xA1"), 0, "3-byte with bad 2nd byte"},
        {B("\xF0\x9F\x98("), 0, "4-byte with bad last byte"},
        {B("a\0b"), 0, "NUL inside"},
        {B("\0"), 0, "NUL alone"},
        {B("abc\0"), 0, "NUL at the end"},
        {B("\x80"), 0, "starts with continuation byte"},
        {B("\xBF"
           "abc"),
         0, "continuation byte then ASCII"},
        {B("\xC3\xA9\x80"), 0, "stray continuation after a char"},
    };
    for (size_t i = 0; i < N(t); i++)
        is_int(certauthz_utf8_valid(t[i].s, t[i].len), t[i].valid,
               "utf8_valid %s: %s", tap_show(t[i].s, t[i].len), t[i].what);

    /* the length is honoured both ways */
    ok(!certauthz_utf8_valid("ab\xC3\xA9", 3), "utf8_valid: len cuts a "
                                               "2-byte sequence in half");
    ok(certauthz_utf8_valid("\xC3\xA9\xFF", 2), "utf8_valid: bytes after len "
                                                "are not looked at");
}

static void test_fold(void)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"ABCxyz", "abcxyz"},
        {"Alice@EXAMPLE.Com", "alice@example.com"},
        {"@[`{09", "@[`{09"}, /* neighbours of A-Z and a-z */
        {"\xC3\x80\xC3\x89", "\xC3\x80\xC3\x89"}, /* "ÀÉ" untouched */
        {"STRA\xC3\x9F"
         "E",
         "stra\xC3\x9F"
         "e"},                      /* "STRAßE" */
        {"\xC4\xB0I", "\xC4\xB0i"}, /* dotted capital I */
        {"", ""},
    };
    for (size_t i = 0; i < N(t); i++) {
        char buf[64];
        strcpy(buf, t[i].in);
        certauthz_ascii_lower(buf, strlen(buf));
        is_str(buf, t[i].out, "ascii_lower %s",
               tap_show(t[i].in, strlen(t[i].in)));
        is_str(certauthz_pstrndup_fold(t[i].in, strlen(t[i].in), 1, pool),
               t[i].out, "pstrndup_fold fold=1 %s",
               tap_show(t[i].in, strlen(t[i].in)));
    }
    char buf[] = "ABCD";
    certauthz_ascii_lower(buf, 2);
    is_str(buf, "abCD", "ascii_lower touches only len bytes");
    is_str(certauthz_pstrndup_fold("ABCD", 3, 0, pool), "ABC",
           "pstrndup_fold fold=0 copies len bytes unchanged");
    is_str(certauthz_pstrndup_fold("ABCD", 3, 1, pool), "abc",
           "pstrndup_fold fold=1 copies len bytes lowered");
}

static void test_hex(void)
{
    static const unsigned char bytes[] = {0x00, 0x9f, 0xff, 0x0a};
    is_str(certauthz_hex_upper(bytes, 4, pool), "009FFF0A", "hex_upper");
    is_str(certauthz_hex_upper(bytes, 0, pool), "", "hex_upper of nothing");

    static const struct {
        const char *in;
        size_t want;
        const char *out; /* NULL: rejected */
    } t[] = {
        {"9f86d0", 3, "9F86D0"},
        {"9F86D0", 3, "9F86D0"},
        {"9F:86:D0", 3, "9F86D0"},
        {"9f:86:d0", 0, "9F86D0"},
        {"9f86d0", 0, "9F86D0"},
        {"9F86D0", 4, NULL}, /* too short for the wanted length */
        {"9F86D0", 2, NULL}, /* too long */
        {":9F86", 0, NULL},
        {"9F86:", 0, NULL},
        {"9F::86", 0, NULL},
        {"9:F86", 0, NULL},
        {"9F:8:6D", 0, NULL},
        {"9F:86:D", 0, NULL}, /* odd digit count with colons */
        {":", 0, NULL},
        {"", 0, NULL},
        {"9G", 0, NULL},
        {"0x9F", 0, NULL},
        {"9F 86", 0, NULL},
        {"9F-86", 0, NULL},
        {"9F86D0\n", 0, NULL},
        {"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", 32,
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"},
        {"9f:86:d0:81:88:4c:7d:65:9a:2f:ea:a0:c5:5a:d0:15:a3:bf:4f:1b:2b:0b:82:"
         "2c:d1:5d:6c:15:b0:f0:0a:08",
         32,
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"},
        {"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A0", 32,
         NULL}, /* 63 digits */
        {"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A080",
         32, NULL}, /* 65 digits */
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *reason = NULL;
        const char *r = certauthz_hex_normalize(t[i].in, strlen(t[i].in),
                                                t[i].want, &reason, pool);
        is_str(r, t[i].out, "hex_normalize(%s, %zu)",
               tap_show(t[i].in, strlen(t[i].in)), t[i].want);
        if (!t[i].out)
            ok(reason && *reason, "  ... with a reason (%s)",
               reason ? reason : "none");
    }
}

static void test_serial(void)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"0A", "A"},
        {"000A", "A"},
        {"A", "A"},
        {"0", "0"},
        {"00", "0"},
        {"0000", "0"},
        {"00:00", "0"},
        {"00:FF", "FF"},
        {"4f2a9c01", "4F2A9C01"},
        {"4F:2A:9C:01", "4F2A9C01"},
        {"00:4f:2A", "4F2A"},
        {"abc", "ABC"},
        {"10", "10"}, /* a trailing zero is not a leading one */
        {"0100", "100"},
        {"", NULL},
        {":", NULL},
        {"G1", NULL},
        {"-1", "-1"}, /* negative serials (RFC 5280 forbids them) */
        {"-00:0A", "-A"},
        {"-", NULL},
        {"--1", NULL},
        {"1-", NULL},
        {"0x4F", NULL},
        {"4F:", NULL},
        {":4F", NULL},
        {"4F::2A", NULL},
        {" 4F", NULL},
        {"4F ", NULL},
        {"4F*", NULL},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *reason = NULL;
        const char *r =
            certauthz_serial_normalize(t[i].in, strlen(t[i].in), &reason, pool);
        is_str(r, t[i].out, "serial_normalize(%s)",
               tap_show(t[i].in, strlen(t[i].in)));
        if (!t[i].out)
            ok(reason && *reason, "  ... with a reason (%s)",
               reason ? reason : "none");
    }
    /* len is honoured */
    const char *reason;
    is_str(certauthz_serial_normalize("0AXYZ", 2, &reason, pool), "A",
           "serial_normalize stops at len");
}

static void test_base64_spki(void)
{
    static const struct {
        const char *in, *out;
    } b[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"foobar", "Zm9vYmFy"},
        {"\xFB\xFF", "+/8="}, /* the two non-alphanumeric digits */
    };
    for (size_t i = 0; i < N(b); i++)
        is_str(certauthz_base64((const unsigned char *)b[i].in, strlen(b[i].in),
                                pool),
               b[i].out, "base64(%s)", tap_show(b[i].in, strlen(b[i].in)));

    unsigned char zero[32] = {0};
    const char *z = certauthz_base64(zero, 32, pool);
    is_str(z, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
           "base64 of 32 zero bytes");

    /* SHA-256 of the empty string, as pin-sha256 */
#define EMPTY_PIN "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    static const struct {
        const char *in;
        int good;
        const char *what;
    } t[] = {
        {EMPTY_PIN, 1, "good 44-character value"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1, "all zero"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFQ=", 1,
         "other canonical last digit (Q)"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", 0, "43 chars, no '='"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU==", 0, "45 chars"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF==", 0, "'==' padding"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUA", 0, "no padding, 44"},
        {"47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", 0,
         "URL-safe alphabet"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu!U=", 0, "bad char '!'"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS FU=", 0, "space"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=", 0,
         "non-canonical last digit (V)"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFW=", 0,
         "non-canonical last digit (W)"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFX=", 0,
         "non-canonical last digit (X)"},
        {"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=U", 0, "'=' misplaced"},
        {"", 0, "empty"},
        {"Zm9v", 0, "base64 of 3 bytes"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *reason = NULL;
        const char *r =
            certauthz_spki_normalize(t[i].in, strlen(t[i].in), &reason, pool);
        is_str(r, t[i].good ? t[i].in : NULL, "spki_normalize: %s", t[i].what);
        if (!t[i].good)
            ok(reason && *reason, "  ... with a reason (%s)",
               reason ? reason : "none");
    }
    /* every base64 of 32 bytes is accepted as is */
    unsigned char d[32];
    for (int k = 0; k < 32; k++)
        d[k] = (unsigned char)(k * 37 + 11);
    const char *s = certauthz_base64(d, 32, pool), *reason;
    is_str(certauthz_spki_normalize(s, strlen(s), &reason, pool), s,
           "spki_normalize accepts base64() of 32 bytes");
}

static void test_ip(void)
{
    static const struct {
        unsigned char a[16];
        size_t len;
        const char *out;
    } b[] = {
        {{192, 0, 2, 1}, 4, "192.0.2.1"},
        {{0, 0, 0, 0}, 4, "0.0.0.0"},
        {{255, 255, 255, 255}, 4, "255.255.255.255"},
        {{0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 16, "2001:db8::1"},
        {{0xFE, 0x80, [15] = 0xAB}, 16, "fe80::ab"},
        {{[15] = 0}, 16, "::"},
        {{[15] = 1}, 16, "::1"},
        {{[10] = 0xff, 0xff, 1, 2, 3, 4}, 16, "::ffff:1.2.3.4"},
        {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1},
         16,
         "2001:db8::1:0:0:1"}, /* equal runs: the first is compressed */
        {{0x20, 0x01, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
         16,
         "2001:0:0:1::1"}, /* the longest run is compressed */
        {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
         16,
         "2001:db8:0:1:1:1:1:1"}, /* a single 0 field is not compressed */
        {{1, 2, 3, 4, 5, 6, 7, 8}, 8, NULL},
        {{1, 2, 3, 4, 5}, 5, NULL},
        {{1, 2, 3}, 3, NULL},
        {{0}, 0, NULL},
    };
    for (size_t i = 0; i < N(b); i++)
        is_str(certauthz_ip_text(b[i].a, b[i].len, pool), b[i].out,
               "ip_text of %zu bytes -> %s", b[i].len,
               b[i].out ? b[i].out : "NULL");

    static const struct {
        const char *in, *out;
    } t[] = {
        {"192.0.2.1", "192.0.2.1"},
        {"2001:db8::1", "2001:db8::1"},
        {"2001:DB8::1", "2001:db8::1"},
        {"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
        {"FE80::AB", "fe80::ab"},
        {"::", "::"},
        {"::1", "::1"},
        {"0:0:0:0:0:0:0:1", "::1"},
        {"::FFFF:1.2.3.4", "::ffff:1.2.3.4"},
        {"::ffff:0102:0304", "::ffff:1.2.3.4"},
        {"1.2.3", NULL},
        {"1.2.3.4.5", NULL},
        {"256.1.1.1", NULL},
        {"1.2.3.4 ", NULL},
        {" 1.2.3.4", NULL},
        {"1.2.3.4/24", NULL},
        {"", NULL},
        {"abc", NULL},
        {"localhost", NULL},
        {"2001:db8::1::2", NULL},
        {"2001:db8::g", NULL},
        {"2001:db8:1:2:3:4:5:6:7", NULL},
        {"fe80::1%eth0", NULL},
        {"[::1]", NULL},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1234567890", NULL},
        {"*", NULL},
    };
    for (size_t i = 0; i < N(t); i++)
        is_str(certauthz_ip_normalize(t[i].in, strlen(t[i].in), pool), t[i].out,
               "ip_normalize(%s)", tap_show(t[i].in, strlen(t[i].in)));
    is_str(certauthz_ip_normalize("1.2.3.45", 7, pool), "1.2.3.4",
           "ip_normalize honours len");
    is_str(certauthz_ip_normalize("1.2.3.4\0junk", 12, pool), NULL,
           "ip_normalize rejects an embedded NUL");
}

static void test_log_escape(void)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"a\"b", "a\\x22b"},
        {"a\\b", "a\\x5Cb"},
        {"a\nb\r\t", "a\\x0Ab\\x0D\\x09"},
        {"\x7F", "\\x7F"},
        {"\x1B[31mred", "\\x1B[31mred"},
        {"\x01\x1F ", "\\x01\\x1F "},
        {"user=\"x\" rule=\"y\"", "user=\\x22x\\x22 rule=\\x22y\\x22"},
    };
    for (size_t i = 0; i < N(t); i++)
        is_str(certauthz_log_escape(t[i].in, pool), t[i].out, "log_escape(%s)",
               tap_show(t[i].in, strlen(t[i].in)));

    const char *plain =
        "alice@example.com Zo\xC3\xAB ~!#$%&'()*+,-./:;<=>?@[]^_`{|}";
    ok(certauthz_log_escape(plain, pool) == plain,
       "log_escape returns a clean string itself (UTF-8 kept)");
    const char *empty = "";
    ok(certauthz_log_escape(empty, pool) == empty, "log_escape of \"\"");
}

static void test_audit_value(void)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"a\"b", "a%22b"},
        {"a\\b", "a%5Cb"},
        {"50%", "50%25"},
        {"a\nb\r\t", "a%0Ab%0D%09"},
        {"\x7F\x1B[31m", "%7F%1B[31m"},
        {"x\" decision=\"granted", "x%22 decision=%22granted"},
        {"", "-"},
        {"-", "%2D"},
        {"--", "--"},
    };
    for (size_t i = 0; i < N(t); i++)
        is_str(certauthz_audit_value(t[i].in, pool), t[i].out,
               "audit_value(%s)", tap_show(t[i].in, strlen(t[i].in)));
    is_str(certauthz_audit_value(NULL, pool), "-", "audit_value(NULL)");
    const char *plain = "CN=Zo\xC3\xAB,O=Example alice@example.com";
    ok(certauthz_audit_value(plain, pool) == plain,
       "audit_value returns a clean string itself (UTF-8 kept)");
}

static void test_types(void)
{
    static const char *const names[CERTAUTHZ_NTYPES] = {
        "cn",     "dn",   "email", "dns", "uri",    "upn", "ip",  "serial",
        "sha256", "spki", "eku",   "ku",  "policy", "ski", "sid", "altsec"};
    static const int folds[CERTAUTHZ_NTYPES] = {0, 0, 1, 1, 0, 1, 0, 0,
                                                0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < CERTAUTHZ_NTYPES; i++) {
        is_str(certauthz_type_name((certauthz_type_e)i), names[i],
               "type_name(%d)", i);
        is_int(certauthz_type_lookup(names[i], strlen(names[i])), i,
               "type_lookup(%s)", names[i]);
        is_int(!!certauthz_type_folds_case((certauthz_type_e)i), folds[i],
               "type_folds_case(%s)", names[i]);
    }
    is_int(certauthz_type_lookup("EMAIL", 5), -1, "type_lookup is exact case");
    is_int(certauthz_type_lookup("emai", 4), -1, "type_lookup: prefix");
    is_int(certauthz_type_lookup("emails", 6), -1, "type_lookup: longer");
    is_int(certauthz_type_lookup("cnx", 2), CERTAUTHZ_CN,
           "type_lookup honours len");
    is_int(certauthz_type_lookup("", 0), -1, "type_lookup of nothing");
}

static void test_oids(void)
{
    const char *why = NULL;
    static const struct {
        const char *in, *out;
    } good[] = {
        {"1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.2"},
        {"clientAuth", "1.3.6.1.5.5.7.3.2"},
        {"CLIENTAUTH", "1.3.6.1.5.5.7.3.2"},
        {"serverAuth", "1.3.6.1.5.5.7.3.1"},
        {"emailProtection", "1.3.6.1.5.5.7.3.4"},
        {"codeSigning", "1.3.6.1.5.5.7.3.3"},
        {"msSmartcardLogin", "1.3.6.1.4.1.311.20.2.2"},
        {"2.5.29.32.0", "2.5.29.32.0"},
        {"0.0", "0.0"},
        {"2.999.1234567890123456789012345", "2.999.1234567890123456789012345"},
    };
    static const char *const bad[] = {
        "",     "1",           "3.1",       "1.",   ".1",
        "1..2", "01.2",        "1.02",      "1.2a", "1.2 ",
        " 1.2", "clientauthx", "anyPolicy", "1.-2", "12.3"};
    char huge[CERTAUTHZ_MAX_OID + 8];

    for (size_t i = 0; i < N(good); i++)
        is_str(certauthz_oid_normalize(good[i].in, strlen(good[i].in),
                                       certauthz_eku_names, &why, pool),
               good[i].out, "oid_normalize(%s)", good[i].in);
    for (size_t i = 0; i < N(bad); i++) {
        why = NULL;
        ok(!certauthz_oid_normalize(bad[i], strlen(bad[i]), certauthz_eku_names,
                                    &why, pool)
               && why && strstr(why, "OID"),
           "oid_normalize refuses '%s' (%s)", bad[i], why ? why : "-");
    }
    is_str(certauthz_oid_normalize("anyPolicy", 9, certauthz_policy_names, &why,
                                   pool),
           "2.5.29.32.0", "anyPolicy is a policy name");
    ok(!certauthz_oid_normalize("clientAuth", 10, certauthz_policy_names, &why,
                                pool),
       "clientAuth is not a policy name");
    ok(!certauthz_oid_normalize("clientAuth", 10, NULL, &why, pool)
           && !strcmp(why, "not a dotted OID"),
       "without names: dotted only");
    memset(huge, '1', sizeof(huge));
    huge[1] = '.';
    ok(!certauthz_oid_normalize(huge, CERTAUTHZ_MAX_OID + 1, NULL, &why, pool),
       "an OID longer than %d bytes is refused", CERTAUTHZ_MAX_OID);
    ok(certauthz_oid_normalize(huge, CERTAUTHZ_MAX_OID, NULL, &why, pool)
           != NULL,
       "an OID of %d bytes is taken", CERTAUTHZ_MAX_OID);
    is_str(certauthz_ku_names[0], "digitalSignature", "ku bit 0");
    is_str(certauthz_ku_names[8], "decipherOnly", "ku bit 8");
}

static void test_sids(void)
{
    const char *why = NULL;
    static const struct {
        const char *in, *out;
    } good[] = {
        {"S-1-5-21-3623811015-3361044348-30300820-1013",
         "S-1-5-21-3623811015-3361044348-30300820-1013"},
        {"s-1-5-21-1-2-3-500", "S-1-5-21-1-2-3-500"},
        {"S-1-5-18", "S-1-5-18"},
        {"S-1-0x000000000005-32-544", "S-1-5-32-544"},
        {"S-1-0-0", "S-1-0-0"},
        {"S-1-5-4294967295", "S-1-5-4294967295"},
        {"S-1-281474976710655-1", "S-1-281474976710655-1"},
    };
    static const char *const bad[] = {
        "",
        "S",
        "S-1",
        "S-1-5",
        "S-2-5-21",
        "S-1-5-",
        "S-1--5",
        "S-1-5-021",
        "S-1-5-4294967296",
        "X-1-5-21",
        "S-1-5-21 ",
        "S-1-5-2a",
        "S-01-5-21",
        "S-1-281474976710656-1",
        "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16"};

    for (size_t i = 0; i < N(good); i++)
        is_str(
            certauthz_sid_normalize(good[i].in, strlen(good[i].in), &why, pool),
            good[i].out, "sid_normalize(%s)", good[i].in);
    for (size_t i = 0; i < N(bad); i++) {
        why = NULL;
        ok(!certauthz_sid_normalize(bad[i], strlen(bad[i]), &why, pool) && why
               && strstr(why, "SID"),
           "sid_normalize refuses '%s' (%s)", bad[i], why ? why : "-");
    }
    ok(certauthz_sid_normalize("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15", 41,
                               &why, pool)
           != NULL,
       "15 sub-authorities are taken");
}

static void test_error_text(void)
{
    certauthz_error_t e = {"/etc/m.map", 12, "missing user"};
    is_str(certauthz_error_text(&e, pool), "/etc/m.map:12: missing user",
           "error_text: FILE:LINE: reason");
    e.line = 0;
    is_str(certauthz_error_text(&e, pool), "/etc/m.map: missing user",
           "error_text without a line: FILE: reason");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_utf8();
    test_fold();
    test_hex();
    test_serial();
    test_base64_spki();
    test_ip();
    test_log_escape();
    test_audit_value();
    test_types();
    test_oids();
    test_sids();
    test_error_text();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
