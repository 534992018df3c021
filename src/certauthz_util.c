/*
 * certauthz_util.c -- byte-string helpers of the core: UTF-8 validation,
 * case folding, hex/base64/IP normalisation, type names.
 */
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "certauthz.h"
#include "certauthz_util.h"

#define NAME_(id, name, fold, value) [CERTAUTHZ_##id] = name,
static const char *const type_names[CERTAUTHZ_NTYPES] = {
    CERTAUTHZ_TYPES(NAME_)};
#undef NAME_
#define FOLD_(id, name, fold, value) [CERTAUTHZ_##id] = fold,
static const unsigned char type_folds[CERTAUTHZ_NTYPES] = {
    CERTAUTHZ_TYPES(FOLD_)};
#undef FOLD_

const char *certauthz_type_name(certauthz_type_e type)
{
    return (unsigned)type < CERTAUTHZ_NTYPES ? type_names[type] : "?";
}

int certauthz_type_lookup(const char *name, apr_size_t len)
{
    int i;
    for (i = 0; i < CERTAUTHZ_NTYPES; i++) {
        if (strlen(type_names[i]) == len && !memcmp(type_names[i], name, len))
            return i;
    }
    return -1;
}

int certauthz_type_folds_case(certauthz_type_e type)
{
    return (unsigned)type < CERTAUTHZ_NTYPES && type_folds[type];
}

const char *certauthz_error_text(const certauthz_error_t *e, apr_pool_t *p)
{
    if (e->line)
        return apr_psprintf(p, "%s:%u: %s", e->file, e->line, e->reason);
    return apr_psprintf(p, "%s: %s", e->file, e->reason);
}

int certauthz_has_control(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return 1;
    return 0;
}

int certauthz_utf8_valid(const char *str, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    apr_size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        apr_size_t n;
        unsigned long cp;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        }
        else {
            return 0; /* continuation byte, overlong lead, or > U+10FFFF */
        }
        if (len - i <= n)
            return 0;
        for (apr_size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF
            || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

void certauthz_ascii_lower(char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] + ('a' - 'A'));
    }
}

char *certauthz_pstrndup_fold(const char *s, apr_size_t len, int fold,
                              apr_pool_t *p)
{
    char *d = apr_palloc(p, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    if (fold)
        certauthz_ascii_lower(d, len);
    return d;
}

static const char hexdig[] = "0123456789ABCDEF";

char *certauthz_hex_upper(const unsigned char *bytes, apr_size_t len,
                          apr_pool_t *p)
{
    char *d = apr_palloc(p, 2 * len + 1);
    for (apr_size_t i = 0; i < len; i++) {
        d[2 * i] = hexdig[bytes[i] >> 4];
        d[2 * i + 1] = hexdig[bytes[i] & 15];
    }
    d[2 * len] = '\0';
    return d;
}

int certauthz_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex digits with optional ':' separators between pairs, upper-cased. */
static char *hex_strip(const char *s, apr_size_t len, const char **reason,
                       apr_pool_t *p)
{
    char *d = apr_palloc(p, len + 1), *o = d;
    int colons = memchr(s, ':', len) != NULL;

    for (apr_size_t i = 0; i < len; i++) {
        if (s[i] == ':') {
            /* colons only between complete pairs */
            if (i == 0 || i + 1 == len || s[i + 1] == ':' || ((o - d) & 1)) {
                *reason = "misplaced ':' in hex value";
                return NULL;
            }
            continue;
        }
        if (certauthz_hexval(s[i]) < 0) {
            *reason = "not a hex digit";
            return NULL;
        }
        *o++ = (char)(s[i] >= 'a' ? s[i] - ('a' - 'A') : s[i]);
    }
    *o = '\0';
    if (o == d) {
        *reason = "empty hex value";
        return NULL;
    }
    if (colons && ((o - d) & 1)) {
        *reason = "odd number of hex digits";
        return NULL;
    }
    return d;
}

const char *certauthz_hex_normalize(const char *s, apr_size_t len,
                                    apr_size_t want_bytes, const char **reason,
                                    apr_pool_t *p)
{
    char *d = hex_strip(s, len, reason, p);
    if (d && want_bytes && strlen(d) != 2 * want_bytes) {
        *reason = apr_psprintf(
            p, "expected %" APR_SIZE_T_FMT " hex digits, got %" APR_SIZE_T_FMT,
            2 * want_bytes, strlen(d));
        return NULL;
    }
    return d;
}

const char *certauthz_serial_normalize(const char *s, apr_size_t len,
                                       const char **reason, apr_pool_t *p)
{
    int neg = len > 1 && s[0] == '-'; /* RFC 5280 forbids it; CAs did it */
    const char *d = hex_strip(s + neg, len - (apr_size_t)neg, reason, p);

    if (!d)
        return NULL;
    while (d[0] == '0' && d[1] != '\0')
        d++;
    return neg ? apr_pstrcat(p, "-", d, NULL) : d;
}

const char *certauthz_serial_glob_normalize(const char *s, apr_size_t len,
                                            const char **reason, apr_pool_t *p)
{
    char *d = apr_palloc(p, len + 1), *o = d;
    apr_size_t i = 0;

    if (len && s[0] == '-')
        *o++ = s[i++];
    for (; i < len; i++) {
        if (s[i] == ':')
            continue;
        if (s[i] != '*' && certauthz_hexval(s[i]) < 0) {
            *reason = "not a hex digit or '*'";
            return NULL;
        }
        *o++ = (char)(s[i] >= 'a' && s[i] <= 'f' ? s[i] - ('a' - 'A') : s[i]);
    }
    *o = '\0';
    /* leading zeros never appear in a serial's text */
    o = d + (d[0] == '-');
    while (o[0] == '0' && certauthz_hexval(o[1]) >= 0)
        memmove(o, o + 1, strlen(o));
    return d;
}

char *certauthz_base64(const unsigned char *bytes, apr_size_t len,
                       apr_pool_t *p)
{
    char *d = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)d, bytes, (int)len);
    return d;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

const char *certauthz_spki_normalize(const char *s, apr_size_t len,
                                     const char **reason, apr_pool_t *p)
{
    /* 32 bytes = 43 base64 digits + '=' ; the last digit carries 2 bits
     * of data and 4 zero bits, so the canonical form is unique */
    if (len != 44 || s[43] != '=') {
        *reason = "spki must be the base64 of a SHA-256 digest "
                  "(44 characters ending in '=')";
        return NULL;
    }
    for (apr_size_t i = 0; i < 43; i++) {
        if (b64val(s[i]) < 0) {
            *reason = "invalid base64 character in spki value";
            return NULL;
        }
    }
    if (b64val(s[42]) & 3) {
        *reason = "non-canonical base64 in spki value";
        return NULL;
    }
    return apr_pstrmemdup(p, s, len);
}

const char *certauthz_ip_text(const unsigned char *addr, apr_size_t len,
                              apr_pool_t *p)
{
    char buf[INET6_ADDRSTRLEN];

    if (len == 4) {
        if (!inet_ntop(AF_INET, addr, buf, sizeof(buf)))
            return NULL;
    }
    else if (len == 16) {
        if (!inet_ntop(AF_INET6, addr, buf, sizeof(buf)))
            return NULL;
    }
    else {
        return NULL;
    }
    return apr_pstrdup(p, buf);
}

const char *certauthz_ip_normalize(const char *s, apr_size_t len, apr_pool_t *p)
{
    unsigned char addr[16];
    char buf[INET6_ADDRSTRLEN + 1];

    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len))
        return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1)
        return certauthz_ip_text(addr, 4, p);
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return certauthz_ip_text(addr, 16, p);
    return NULL;
}

const char *certauthz_log_escape(const char *s, apr_pool_t *p)
{
    apr_size_t n = 0, len = 0;
    const unsigned char *u;
    char *d, *o;

    for (u = (const unsigned char *)s; *u; u++, len++) {
        if (*u < 0x20 || *u == 0x7F || *u == '"' || *u == '\\')
            n++;
    }
    if (!n)
        return s;
    o = d = apr_palloc(p, len + 3 * n + 1);
    for (u = (const unsigned char *)s; *u; u++) {
        if (*u < 0x20 || *u == 0x7F || *u == '"' || *u == '\\') {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hexdig[*u >> 4];
            *o++ = hexdig[*u & 15];
        }
        else {
            *o++ = (char)*u;
        }
    }
    *o = '\0';
    return d;
}

/* Bytes an audit value writes as %HH: everything httpd's error log would
 * itself escape (controls, DEL, '\\'), the quote that ends a value, and
 * '%' so that decoding is unambiguous. */
static int audit_special(unsigned char c)
{
    return c < 0x20 || c == 0x7F || c == '"' || c == '\\' || c == '%';
}

const char *certauthz_audit_value(const char *s, apr_pool_t *p)
{
    apr_size_t n = 0, len = 0;
    const unsigned char *u;
    char *d, *o;

    if (!s || !*s)
        return "-";
    if (!strcmp(s, "-"))
        return "%2D"; /* a value "-" is not "none" */
    for (u = (const unsigned char *)s; *u; u++, len++)
        n += audit_special(*u);
    if (!n)
        return s;
    o = d = apr_palloc(p, len + 2 * n + 1);
    for (u = (const unsigned char *)s; *u; u++) {
        if (audit_special(*u)) {
            *o++ = '%';
            *o++ = hexdig[*u >> 4];
            *o++ = hexdig[*u & 15];
        }
        else {
            *o++ = (char)*u;
        }
    }
    *o = '\0';
    return d;
}

apr_status_t certauthz_file_sha256(const char *path, char out[65],
                                   apr_pool_t *p)
{
    enum { PIECE = 65536 };
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[32];
    unsigned n = 0;
    char *buf = apr_palloc(p, PIECE);
    apr_file_t *f;
    apr_status_t rv;

    out[0] = '\0';
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return APR_ENOMEM;
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        EVP_MD_CTX_free(md);
        return rv;
    }
    while (rv == APR_SUCCESS) {
        apr_size_t got = 0;
        rv = apr_file_read_full(f, buf, PIECE, &got);
        if (got && !EVP_DigestUpdate(md, buf, got))
            rv = APR_ENOMEM;
    }
    apr_file_close(f);
    if (rv == APR_EOF)
        rv =
            EVP_DigestFinal_ex(md, d, &n) && n == 32 ? APR_SUCCESS : APR_ENOMEM;
    EVP_MD_CTX_free(md);
    if (rv == APR_SUCCESS)
        for (int i = 0; i < 32; i++)
            apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    return rv;
}

const certauthz_oid_name_t certauthz_eku_names[] = {
    {"serverAuth", "1.3.6.1.5.5.7.3.1"},
    {"clientAuth", "1.3.6.1.5.5.7.3.2"},
    {"codeSigning", "1.3.6.1.5.5.7.3.3"},
    {"emailProtection", "1.3.6.1.5.5.7.3.4"},
    {"msSmartcardLogin", "1.3.6.1.4.1.311.20.2.2"},
    {NULL, NULL}};

const certauthz_oid_name_t certauthz_policy_names[] = {
    {"anyPolicy", "2.5.29.32.0"}, {NULL, NULL}};

const char *const certauthz_ku_names[CERTAUTHZ_KU_BITS] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment",
    "dataEncipherment", "keyAgreement",   "keyCertSign",
    "cRLSign",          "encipherOnly",   "decipherOnly"};

const char *certauthz_ku_normalize(const char *s, apr_size_t len,
                                   const char **reason)
{
    for (int b = 0; b < CERTAUTHZ_KU_BITS; b++)
        if (strlen(certauthz_ku_names[b]) == len
            && !strncasecmp(certauthz_ku_names[b], s, len))
            return certauthz_ku_names[b];
    *reason = "not a keyUsage name (digitalSignature, nonRepudiation, "
              "keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, "
              "cRLSign, encipherOnly, decipherOnly)";
    return NULL;
}

const char *certauthz_oid_normalize(const char *s, apr_size_t len,
                                    const certauthz_oid_name_t *names,
                                    const char **reason, apr_pool_t *p)
{
    apr_size_t i = 0, arcs = 0;
    const char *bad =
        names ? "not a dotted OID or a known name" : "not a dotted OID";

    for (; names && names->name; names++)
        if (strlen(names->name) == len && !strncasecmp(names->name, s, len))
            return names->oid;
    if (len == 0 || len > CERTAUTHZ_MAX_OID) {
        *reason = bad;
        return NULL;
    }
    while (i < len) {
        apr_size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start || (s[start] == '0' && i - start > 1)
            || (arcs == 0 && (i - start > 1 || s[start] > '2'))
            || (i < len && (s[i] != '.' || i + 1 == len))) {
            *reason = bad;
            return NULL;
        }
        arcs++;
        i++;
    }
    if (arcs < 2) {
        *reason = "an OID has at least two arcs";
        return NULL;
    }
    return apr_pstrmemdup(p, s, len);
}

const char *certauthz_sid_normalize(const char *s, apr_size_t len,
                                    const char **reason, apr_pool_t *p)
{
    apr_size_t i = 2;
    int field = 0;
    char *out, *o;

    if (len < 2 || len > 200 || (s[0] != 'S' && s[0] != 's') || s[1] != '-') {
        *reason = "not a SID (S-1-...)";
        return NULL;
    }
    o = out = apr_palloc(p, len + 24);
    *o++ = 'S';
    while (i <= len) {
        apr_uint64_t v = 0,
                     max = field == 1 ? 0xFFFFFFFFFFFFULL : 0xFFFFFFFFULL;
        apr_size_t start = i;
        int hex = field == 1 && i + 2 < len && s[i] == '0'
                  && (s[i + 1] == 'x' || s[i + 1] == 'X');
        if (hex)
            i += 2, start = i;
        for (; i < len && s[i] != '-'; i++) {
            int d = hex ? certauthz_hexval(s[i])
                        : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
            if (d < 0 || (!hex && i > start && s[start] == '0')) {
                *reason = "not a SID (S-1-...)";
                return NULL;
            }
            v = v * (hex ? 16 : 10) + (apr_uint64_t)d;
            if (v > max) {
                *reason = "a SID number out of range";
                return NULL;
            }
        }
        if (i == start || (field == 0 && v != 1)) {
            *reason = "not a SID (S-1-...)";
            return NULL;
        }
        o += apr_snprintf(o, 24, "-%" APR_UINT64_T_FMT, v);
        field++;
        i++; /* the '-', or past the end */
    }
    if (field < 3 || field > 17) {
        *reason = "a SID has 1 to 15 sub-authorities";
        return NULL;
    }
    *o = '\0';
    return out;
}
