/*
 * certgen.c -- test certificate factory (normal and hostile certificates)
 * for the mod_certauthz unit and server tests; option syntax in certgen.h.
 *
 * Names are DER-encoded here rather than through X509_NAME_add_entry, so
 * every byte and string type ends up exactly as asked.  OpenSSL keeps the
 * DER of a parsed name, so the certificate carries these bytes verbatim.
 * A name OpenSSL refuses to parse gets a placeholder while the certificate
 * is built and signed; the real DER is then spliced into the TBSCertificate,
 * which is signed again by hand.
 */
#include "certgen.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define UPN_OID "1.3.6.1.4.1.311.20.2.3"
#define MAX_SAN_COUNT 1000000L

/* ---------------------------------------------------------------- errors */

/* Formats a one-line message (plus the newest OpenSSL error, if any) into
 * err, clears the OpenSSL error queue and returns -1. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    unsigned long e = ERR_peek_last_error();
    va_list ap;
    size_t i, n;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        n = strlen(err);
        if (e != 0 && n + 1 < errlen) {
            const char *r = ERR_reason_error_string(e);
            snprintf(err + n, errlen - n, " (OpenSSL: %s)",
                     r != NULL ? r : "unknown error");
        }
        for (i = 0; err[i] != '\0'; i++)
            if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
                err[i] = '?';
    }
    ERR_clear_error();
    return -1;
}

#define FAIL(...) fail(err, errlen, __VA_ARGS__)

/* ------------------------------------------------------- growable bytes */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;

static void buf_free(buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int buf_add(buf *b, const void *d, size_t n)
{
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 64;
        unsigned char *p;

        while (n > cap - b->n)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

/* DER tag and definite length (single-byte tags only). */
static int buf_hdr(buf *b, unsigned char tag, size_t len)
{
    unsigned char h[8];
    size_t i = 0, k = 0, t;

    if (len > 0xffffffffUL)
        return -1;
    h[i++] = tag;
    if (len < 0x80) {
        h[i++] = (unsigned char)len;
    }
    else {
        for (t = len; t != 0; t >>= 8)
            k++;
        h[i++] = (unsigned char)(0x80 | k);
        while (k > 0)
            h[i++] = (unsigned char)(len >> (8 * --k));
    }
    return buf_add(b, h, i);
}

static int buf_tlv(buf *b, unsigned char tag, const void *d, size_t n)
{
    return buf_hdr(b, tag, n) != 0 || buf_add(b, d, n) != 0 ? -1 : 0;
}

/* Reads one DER header at p (n bytes available): sets header and content
 * lengths; -1 when malformed or truncated. */
static int der_tl(const unsigned char *p, size_t n, size_t *hl, size_t *cl)
{
    size_t k, i;

    if (n < 2 || (p[0] & 0x1f) == 0x1f)
        return -1;
    if (p[1] < 0x80) {
        *hl = 2;
        *cl = p[1];
    }
    else {
        k = p[1] & 0x7f;
        if (k == 0 || k > 4 || n < 2 + k)
            return -1;
        *hl = 2 + k;
        for (*cl = 0, i = 0; i < k; i++)
            *cl = *cl << 8 | p[2 + i];
    }
    return *cl > n - *hl ? -1 : 0;
}

/* --------------------------------------------------------- value syntax */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends s, unescaped (\xHH = byte, \c = c), to out up to the first
 * unescaped character from stop or the end.  Returns where it stopped, or
 * NULL with a message. */
static const char *unescape(const char *s, const char *stop, buf *out,
                            const char *opt, char *err, size_t errlen)
{
    unsigned char c;

    while (*s != '\0' && strchr(stop, *s) == NULL) {
        if (*s != '\\') {
            c = (unsigned char)*s++;
        }
        else if (s[1] == 'x') {
            if (hexval(s[2]) < 0 || hexval(s[3]) < 0) {
                FAIL("%s: \\x must be followed by two hex digits", opt);
                return NULL;
            }
            c = (unsigned char)(hexval(s[2]) << 4 | hexval(s[3]));
            s += 4;
        }
        else if (s[1] != '\0') {
            c = (unsigned char)s[1];
            s += 2;
        }
        else {
            FAIL("%s: trailing backslash", opt);
            return NULL;
        }
        if (buf_add(out, &c, 1) != 0) {
            FAIL("%s: out of memory", opt);
            return NULL;
        }
    }
    return s;
}

/* Strict UTF-8 to big-endian UCS-2; -1 on bad UTF-8 or a character outside
 * the BMP, -2 when out of memory. */
static int utf8_to_bmp(const unsigned char *s, size_t n, buf *out)
{
    size_t i = 0, k, need;
    unsigned long cp, min;
    unsigned char u[2];

    while (i < n) {
        if (s[i] < 0x80) {
            cp = s[i], need = 0, min = 0;
        }
        else if ((s[i] & 0xe0) == 0xc0) {
            cp = s[i] & 0x1f, need = 1, min = 0x80;
        }
        else if ((s[i] & 0xf0) == 0xe0) {
            cp = s[i] & 0x0f, need = 2, min = 0x800;
        }
        else {
            return -1;
        }
        if (n - i - 1 < need)
            return -1;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        u[0] = (unsigned char)(cp >> 8);
        u[1] = (unsigned char)cp;
        if (buf_add(out, u, 2) != 0)
            return -2;
        i += need + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- names */

enum { T_BMP = -1, T_INT = -2, T_DER = -3 };

static const struct {
    const char *name;
    int tag;
} stypes[] = {
    {"utf8", V_ASN1_UTF8STRING},
    {"printable", V_ASN1_PRINTABLESTRING},
    {"ia5", V_ASN1_IA5STRING},
    {"t61", V_ASN1_T61STRING},
    {"numeric", V_ASN1_NUMERICSTRING},
    {"visible", V_ASN1_VISIBLESTRING},
    {"bmpraw", V_ASN1_BMPSTRING},
    {"bmp", T_BMP},
    {"int", T_INT},
    {"der", T_DER},
};

/* Appends the DER AttributeTypeAndValue for attr[0..alen) ("CN", "CN#t61",
 * "2.5.4.3") with the unescaped value val to out. */
static int encode_atv(const char *opt, const char *attr, size_t alen, buf *val,
                      buf *out, char *err, size_t errlen)
{
    char name[512], *hash;
    int tag = V_ASN1_UTF8STRING, rc = -1, len;
    size_t i;
    ASN1_OBJECT *obj = NULL;
    ASN1_INTEGER *ai = NULL;
    BIGNUM *bn = NULL;
    unsigned char *der = NULL;
    buf atv = {0};

    if (alen == 0 || alen >= sizeof name)
        return FAIL("%s: empty or overlong attribute name", opt);
    memcpy(name, attr, alen);
    name[alen] = '\0';
    if ((hash = strchr(name, '#')) != NULL) {
        *hash++ = '\0';
        for (i = 0; i < sizeof stypes / sizeof stypes[0]; i++)
            if (strcmp(hash, stypes[i].name) == 0)
                break;
        if (i == sizeof stypes / sizeof stypes[0])
            return FAIL("%s: unknown value type '#%s' (utf8, printable, ia5, "
                        "t61, numeric, visible, bmp, bmpraw, int, der)",
                        opt, hash);
        tag = stypes[i].tag;
    }
    if ((obj = OBJ_txt2obj(name, 0)) == NULL)
        return FAIL("%s: unknown attribute '%s'", opt, name);
    if ((len = i2d_ASN1_OBJECT(obj, &der)) <= 0 || buf_add(&atv, der, len)) {
        FAIL("%s: cannot encode attribute '%s'", opt, name);
        goto done;
    }
    if (tag == T_BMP) {
        buf ucs = {0};
        int r = utf8_to_bmp(val->p, val->n, &ucs);

        if (r == 0 && buf_tlv(&atv, V_ASN1_BMPSTRING, ucs.p, ucs.n) != 0)
            r = -2;
        buf_free(&ucs);
        if (r != 0) {
            FAIL(r == -1 ? "%s: %s#bmp value is not UTF-8 text inside the BMP "
                           "(use #bmpraw for raw bytes)"
                         : "%s: %s: out of memory",
                 opt, name);
            goto done;
        }
    }
    else if (tag == T_INT) {
        if (buf_add(val, "", 1) != 0) {
            FAIL("%s: out of memory", opt);
            goto done;
        }
        val->n--;
        if (val->n == 0 || strlen((char *)val->p) != val->n
            || BN_dec2bn(&bn, (char *)val->p) != (int)val->n
            || (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
            FAIL("%s: %s#int needs a decimal integer", opt, name);
            goto done;
        }
        OPENSSL_free(der);
        der = NULL;
        if ((len = i2d_ASN1_INTEGER(ai, &der)) <= 0
            || buf_add(&atv, der, len)) {
            FAIL("%s: cannot encode %s#int", opt, name);
            goto done;
        }
    }
    else if (tag == T_DER) {
        if (buf_add(&atv, val->p, val->n) != 0) {
            FAIL("%s: out of memory", opt);
            goto done;
        }
    }
    else if (buf_tlv(&atv, (unsigned char)tag, val->p, val->n) != 0) {
        FAIL("%s: out of memory", opt);
        goto done;
    }
    if (buf_tlv(out, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, atv.p, atv.n) != 0) {
        FAIL("%s: out of memory", opt);
        goto done;
    }
    rc = 0;
done:
    buf_free(&atv);
    OPENSSL_free(der);
    ASN1_OBJECT_free(obj);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return rc;
}

/* DER SET OF order: bytewise, a shorter prefix first. */
static int cmp_der(const void *a, const void *b)
{
    const buf *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);

    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* Appends the SET for the RDN made of atvs[0..n) to out and frees them. */
static int flush_rdn(buf *atvs, size_t *n, buf *out)
{
    buf set = {0};
    size_t i;
    int rc = 0;

    qsort(atvs, *n, sizeof *atvs, cmp_der);
    for (i = 0; i < *n; i++) {
        if (rc == 0 && buf_add(&set, atvs[i].p, atvs[i].n) != 0)
            rc = -1;
        buf_free(&atvs[i]);
    }
    *n = 0;
    if (rc == 0 && buf_tlv(out, V_ASN1_SET | V_ASN1_CONSTRUCTED, set.p, set.n))
        rc = -1;
    buf_free(&set);
    return rc;
}

/* DER Name from an -subj style SPEC (see certgen.h). */
static int encode_name(const char *opt, const char *spec, buf *out, char *err,
                       size_t errlen)
{
    buf rdns = {0}, val = {0}, *atvs = NULL;
    size_t natv = 0, cap = 0;
    const char *p = spec, *attr;
    size_t alen;
    int rc = -1;

    if (strcmp(spec, "/") == 0)
        p = "";
    else if (*p != '\0' && *p != '/') {
        FAIL("%s: '%s' must start with '/'", opt, spec);
        goto done;
    }
    while (*p != '\0') {
        char sep = *p++;

        for (attr = p; *p != '\0' && *p != '=' && *p != '/' && *p != '+'; p++)
            ;
        if (*p != '=') {
            FAIL("%s: '%.*s' is not ATTR=value (escape / and + in values "
                 "as \\/ and \\+)",
                 opt, (int)(p - attr), attr);
            goto done;
        }
        alen = (size_t)(p - attr);
        val.n = 0;
        if ((p = unescape(p + 1, "/+", &val, opt, err, errlen)) == NULL)
            goto done;
        if (sep == '+' && natv == 0) {
            FAIL("%s: '+' must follow another attribute", opt);
            goto done;
        }
        if (sep == '/' && natv > 0 && flush_rdn(atvs, &natv, &rdns) != 0) {
            FAIL("%s: out of memory", opt);
            goto done;
        }
        if (natv == cap) {
            buf *n = realloc(atvs, (cap = cap ? 2 * cap : 4) * sizeof *atvs);

            if (n == NULL) {
                FAIL("%s: out of memory", opt);
                goto done;
            }
            atvs = n;
        }
        memset(&atvs[natv], 0, sizeof *atvs);
        if (encode_atv(opt, attr, alen, &val, &atvs[natv++], err, errlen) != 0)
            goto done;
    }
    if ((natv > 0 && flush_rdn(atvs, &natv, &rdns) != 0)
        || buf_tlv(out, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, rdns.p, rdns.n)) {
        FAIL("%s: out of memory", opt);
        goto done;
    }
    rc = 0;
done:
    while (natv > 0)
        buf_free(&atvs[--natv]);
    free(atvs);
    buf_free(&rdns);
    buf_free(&val);
    return rc;
}

/* A name for the certificate.  When OpenSSL cannot parse the DER, x is a
 * placeholder and der must be spliced in after signing (patch set). */
struct name {
    X509_NAME *x;
    buf der;
    int patch;
    char why[128];
};

static void name_free(struct name *n)
{
    X509_NAME_free(n->x);
    buf_free(&n->der);
}

static int build_name(const char *opt, const char *spec, struct name *n,
                      char *err, size_t errlen)
{
    const unsigned char *p;
    const char *why;

    if (encode_name(opt, spec, &n->der, err, errlen) != 0)
        return -1;
    p = n->der.p;
    n->x = d2i_X509_NAME(NULL, &p, (long)n->der.n);
    if (n->x != NULL && p == n->der.p + n->der.n)
        return 0;
    why = ERR_reason_error_string(ERR_peek_error());
    snprintf(n->why, sizeof n->why, "%s: OpenSSL cannot parse this name (%s)",
             opt, why != NULL ? why : "trailing data");
    ERR_clear_error();
    X509_NAME_free(n->x);
    n->patch = 1;
    if ((n->x = X509_NAME_new()) == NULL
        || !X509_NAME_add_entry_by_txt(
            n->x, "CN", MBSTRING_ASC,
            (const unsigned char *)"certgen-placeholder", -1, -1, 0))
        return FAIL("%s: cannot build placeholder name", opt);
    return 0;
}

/* ----------------------------------------------------------------- SANs */

static int add_ia5(GENERAL_NAME *gn, int type, const buf *v)
{
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();

    if (s == NULL || !ASN1_STRING_set(s, v->p, (int)v->n)) {
        ASN1_IA5STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    return 0;
}

static int add_octets(GENERAL_NAME *gn, const unsigned char *d, size_t n)
{
    ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();

    if (s == NULL || !ASN1_OCTET_STRING_set(s, d, (int)n)) {
        ASN1_OCTET_STRING_free(s);
        return -1;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
    return 0;
}

static int add_othername(GENERAL_NAME *gn, const char *oid, int type,
                         const buf *v)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 0);
    ASN1_TYPE *t = ASN1_TYPE_new();
    ASN1_STRING *s = ASN1_STRING_type_new(type);

    if (obj == NULL || t == NULL || s == NULL
        || !ASN1_STRING_set(s, v->p, (int)v->n)) {
        ASN1_OBJECT_free(obj);
        ASN1_TYPE_free(t);
        ASN1_STRING_free(s);
        return -1;
    }
    ASN1_TYPE_set(t, type, s);
    if (!GENERAL_NAME_set0_othername(gn, obj, t)) {
        ASN1_OBJECT_free(obj);
        ASN1_TYPE_free(t);
        return -1;
    }
    return 0;
}

/* Appends the GENERAL_NAME for "TYPE:VALUE" to sans. */
static int add_san(STACK_OF(GENERAL_NAME) * sans, const char *spec, char *err,
                   size_t errlen)
{
    const char *v = strchr(spec, ':'), *oid = UPN_OID;
    char oidbuf[128];
    unsigned char ip[16];
    size_t tlen;
    buf val = {0};
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_OBJECT *obj;
    int rc = -1, r = 0, i;

    if (gn == NULL)
        return FAIL("--san: out of memory");
    if (v == NULL) {
        FAIL("--san: '%s' is not TYPE:VALUE", spec);
        goto done;
    }
    tlen = (size_t)(v++ - spec);
#define IS(t) (tlen == strlen(t) && strncmp(spec, t, tlen) == 0)
    if (IS("ip")) {
        if (inet_pton(AF_INET, v, ip) == 1)
            r = add_octets(gn, ip, 4);
        else if (inet_pton(AF_INET6, v, ip) == 1)
            r = add_octets(gn, ip, 16);
        else {
            FAIL("--san: '%s' is not an IPv4 or IPv6 address", v);
            goto done;
        }
    }
    else if (IS("ipraw")) {
        for (i = 0; v[i] != '\0' && v[i + 1] != '\0'; i += 2) {
            unsigned char c;

            if (hexval(v[i]) < 0 || hexval(v[i + 1]) < 0)
                break;
            c = (unsigned char)(hexval(v[i]) << 4 | hexval(v[i + 1]));
            if (buf_add(&val, &c, 1) != 0) {
                FAIL("--san: out of memory");
                goto done;
            }
        }
        if (v[i] != '\0') {
            FAIL("--san: ipraw:'%s' needs an even number of hex digits", v);
            goto done;
        }
        r = add_octets(gn, val.p, val.n);
    }
    else {
        int type = V_ASN1_UTF8STRING;

        if (IS("othername")) {
            const char *c = strchr(v, ':');

            if (c == NULL || c == v || (size_t)(c - v) >= sizeof oidbuf) {
                FAIL("--san: expected othername:OID:VALUE, got '%s'", spec);
                goto done;
            }
            memcpy(oidbuf, v, (size_t)(c - v));
            oidbuf[c - v] = '\0';
            oid = oidbuf;
            v = c + 1;
            if ((obj = OBJ_txt2obj(oid, 0)) == NULL) {
                FAIL("--san: unknown OID '%s'", oid);
                goto done;
            }
            ASN1_OBJECT_free(obj);
        }
        else if (!IS("email") && !IS("dns") && !IS("uri") && !IS("upn")
                 && !IS("upn-ia5")) {
            FAIL("--san: unknown type '%.*s' (email, dns, uri, ip, ipraw, upn, "
                 "upn-ia5, othername)",
                 (int)tlen, spec);
            goto done;
        }
        if (unescape(v, "", &val, "--san", err, errlen) == NULL)
            goto done;
        if (val.n > 0x7fffffff) {
            FAIL("--san: value too long");
            goto done;
        }
        if (IS("email"))
            r = add_ia5(gn, GEN_EMAIL, &val);
        else if (IS("dns"))
            r = add_ia5(gn, GEN_DNS, &val);
        else if (IS("uri"))
            r = add_ia5(gn, GEN_URI, &val);
        else
            r = add_othername(gn, oid, IS("upn-ia5") ? V_ASN1_IA5STRING : type,
                              &val);
    }
#undef IS
    if (r != 0 || !sk_GENERAL_NAME_push(sans, gn)) {
        FAIL("--san: cannot build '%s'", spec);
        goto done;
    }
    gn = NULL;
    rc = 0;
done:
    GENERAL_NAME_free(gn);
    buf_free(&val);
    return rc;
}

/* "--san-count N:TEMPLATE": N dns SANs, %d replaced by the index. */
static int add_san_count(STACK_OF(GENERAL_NAME) * sans, const char *spec,
                         char *err, size_t errlen)
{
    char *end, num[24];
    long n, i;
    const char *t, *s;
    buf name = {0};
    int rc = -1;

    n = strtol(spec, &end, 10);
    if (end == spec || *end != ':' || n < 0 || n > MAX_SAN_COUNT)
        return FAIL("--san-count: expected N:TEMPLATE with 0 <= N <= %ld, "
                    "got '%s'",
                    MAX_SAN_COUNT, spec);
    t = end + 1;
    for (i = 0; i < n; i++) {
        name.n = 0;
        snprintf(num, sizeof num, "%ld", i);
        if (buf_add(&name, "dns:", 4) != 0)
            goto oom;
        for (s = t; *s != '\0'; s++) {
            if (s[0] == '%' && s[1] == 'd') {
                if (buf_add(&name, num, strlen(num)) != 0)
                    goto oom;
                s++;
            }
            else if (buf_add(&name, s, 1) != 0) {
                goto oom;
            }
        }
        if (buf_add(&name, "", 1) != 0)
            goto oom;
        if (add_san(sans, (char *)name.p, err, errlen) != 0)
            goto done;
    }
    rc = 0;
    goto done;
oom:
    FAIL("--san-count: out of memory");
done:
    buf_free(&name);
    return rc;
}

/* ----------------------------------------------------------- extensions */

static int key_id(X509 *x, ASN1_OCTET_STRING **id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len;

    *id = NULL;
    if (!X509_pubkey_digest(x, EVP_sha1(), md, &len)
        || (*id = ASN1_OCTET_STRING_new()) == NULL
        || !ASN1_OCTET_STRING_set(*id, md, (int)len)) {
        ASN1_OCTET_STRING_free(*id);
        *id = NULL;
        return -1;
    }
    return 0;
}

#define MAX_REPEAT 16

struct opts {
    const char *out, *issuer, *issuer_name, *subject, *serial, *days;
    const char *key_type, *key_file, *eku, *ku, *ski;
    int ca, expired, not_yet_valid;
    STACK_OF(GENERAL_NAME) * sans;
    const char *policy[MAX_REPEAT], *ext[MAX_REPEAT];
    int npolicy, next;
};

/* An OID from a dotted number or a name OpenSSL knows (clientAuth...). */
static ASN1_OBJECT *oid_of(const char *s)
{
    if (strcmp(s, "msSmartcardLogin") == 0)
        s = "1.3.6.1.4.1.311.20.2.2";
    return OBJ_txt2obj(s, 0);
}

static const char *const KU_BITS[] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment",
    "dataEncipherment", "keyAgreement",   "keyCertSign",
    "cRLSign",          "encipherOnly",   "decipherOnly"};

/* Each comma-separated word of list through fn; -1 at the first it
 * refuses. */
static int each_word(const char *list, int (*fn)(void *, const char *),
                     void *arg)
{
    char word[256];
    while (*list) {
        size_t n = strcspn(list, ",");
        if (n == 0 || n >= sizeof word)
            return -1;
        memcpy(word, list, n);
        word[n] = '\0';
        if (fn(arg, word) != 0)
            return -1;
        list += n + (list[n] == ',');
    }
    return 0;
}

static int push_eku(void *arg, const char *w)
{
    ASN1_OBJECT *o = oid_of(w);
    if (o == NULL || !sk_ASN1_OBJECT_push(arg, o)) {
        ASN1_OBJECT_free(o);
        return -1;
    }
    return 0;
}

static int set_ku(void *arg, const char *w)
{
    for (int b = 0; b < 9; b++)
        if (strcmp(w, KU_BITS[b]) == 0)
            return ASN1_BIT_STRING_set_bit(arg, b, 1) ? 0 : -1;
    return -1;
}

static int push_policy(void *arg, const char *w)
{
    POLICYINFO *pi = POLICYINFO_new();
    if (pi == NULL
        || (ASN1_OBJECT_free(pi->policyid), (pi->policyid = oid_of(w)) == NULL)
        || !sk_POLICYINFO_push(arg, pi)) {
        POLICYINFO_free(pi);
        return -1;
    }
    return 0;
}

static int hex_bytes(const char *hex, unsigned char **out, long *len)
{
    *out = OPENSSL_hexstr2buf(hex, len);
    if (*out == NULL && *hex == '\0') {
        *len = 0;
        *out = OPENSSL_malloc(1);
    }
    return *out == NULL ? -1 : 0;
}

/* --ext OID:HEX[:critical]: an extension whose extnValue holds the bytes
 * HEX, however wrong; added after the others (a second of a kind, too). */
static int add_raw_ext(X509 *x, const char *spec, char *err, size_t errlen)
{
    char oid[128];
    const char *colon = strchr(spec, ':'), *hex;
    char *h = NULL;
    size_t n = colon ? (size_t)(colon - spec) : 0;
    ASN1_OBJECT *obj = NULL;
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    unsigned char *bytes = NULL;
    long len = 0;
    int crit = 0, rc = -1;

    if (!colon || n == 0 || n >= sizeof oid || os == NULL) {
        FAIL("--ext: '%s' is not OID:HEX[:critical]", spec);
        goto done;
    }
    memcpy(oid, spec, n);
    oid[n] = '\0';
    hex = colon + 1;
    if ((h = OPENSSL_strdup(hex)) == NULL)
        goto done;
    if (strlen(h) > 9 && strcmp(h + strlen(h) - 9, ":critical") == 0) {
        h[strlen(h) - 9] = '\0';
        crit = 1;
    }
    if ((obj = OBJ_txt2obj(oid, 1)) == NULL || hex_bytes(h, &bytes, &len) != 0
        || !ASN1_OCTET_STRING_set(os, bytes, (int)len)
        || (ext = X509_EXTENSION_create_by_OBJ(NULL, obj, crit, os)) == NULL
        || !X509_add_ext(x, ext, -1)) {
        FAIL("--ext: cannot add '%s'", spec);
        goto done;
    }
    rc = 0;
done:
    OPENSSL_free(h);
    OPENSSL_free(bytes);
    ASN1_OBJECT_free(obj);
    ASN1_OCTET_STRING_free(os);
    X509_EXTENSION_free(ext);
    return rc;
}

static int add_extensions(X509 *x, X509 *issuer, int ca,
                          STACK_OF(GENERAL_NAME) * sans, int san_critical,
                          const struct opts *o, char *err, size_t errlen)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    ASN1_OCTET_STRING *ski = NULL;
    AUTHORITY_KEYID *akid = NULL;
    const ASN1_OCTET_STRING *iid;
    const char *what = "out of memory";
    int rc = -1;

    if (bc == NULL || ku == NULL || eku == NULL)
        goto done;
    bc->ca = ca ? 0xff : 0;
    what = "basicConstraints";
    if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, ca, 0) != 1)
        goto done;
    what = "keyUsage";
    if (o->ku != NULL) {
        if (strcmp(o->ku, "none") != 0
            && (each_word(o->ku, set_ku, ku) != 0
                || X509_add1_ext_i2d(x, NID_key_usage, ku, 1, 0) != 1))
            goto done;
    }
    else if ((ca ? !ASN1_BIT_STRING_set_bit(ku, 5, 1)
                       || !ASN1_BIT_STRING_set_bit(ku, 6, 1)
                 : !ASN1_BIT_STRING_set_bit(ku, 0, 1)
                       || !ASN1_BIT_STRING_set_bit(ku, 2, 1))
             || X509_add1_ext_i2d(x, NID_key_usage, ku, 1, 0) != 1)
        goto done;
    what = "extendedKeyUsage";
    if (o->eku != NULL) {
        if (strcmp(o->eku, "none") != 0
            && (each_word(o->eku, push_eku, eku) != 0
                || X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, 0) != 1))
            goto done;
    }
    else if (!ca
             && (!sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth))
                 || !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth))
                 || X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, 0) != 1))
        goto done;
    what = "certificatePolicies";
    if (o->npolicy) {
        CERTIFICATEPOLICIES *cp = sk_POLICYINFO_new_null();
        int bad = cp == NULL;
        for (int i = 0; !bad && i < o->npolicy; i++)
            bad = each_word(o->policy[i], push_policy, cp) != 0;
        bad = bad
              || X509_add1_ext_i2d(x, NID_certificate_policies, cp, 0, 0) != 1;
        sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
        if (bad)
            goto done;
    }
    what = "subjectKeyIdentifier";
    if (o->ski != NULL && strcmp(o->ski, "none") == 0) {
        /* none */
    }
    else if (o->ski != NULL) {
        unsigned char *b = NULL;
        long n = 0;
        int bad =
            hex_bytes(o->ski, &b, &n) != 0
            || (ski = ASN1_OCTET_STRING_new()) == NULL
            || !ASN1_OCTET_STRING_set(ski, b, (int)n)
            || X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, 0) != 1;
        OPENSSL_free(b);
        if (bad)
            goto done;
    }
    else if (key_id(x, &ski) != 0
             || X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, 0)
                    != 1)
        goto done;
    what = "authorityKeyIdentifier";
    if (issuer != NULL) {
        if ((akid = AUTHORITY_KEYID_new()) == NULL)
            goto done;
        if ((iid = X509_get0_subject_key_id(issuer)) != NULL)
            akid->keyid = ASN1_OCTET_STRING_dup(iid);
        else
            key_id(issuer, &akid->keyid);
        if (akid->keyid == NULL
            || X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0)
                   != 1)
            goto done;
    }
    what = "subjectAltName";
    if (sans != NULL
        && X509_add1_ext_i2d(x, NID_subject_alt_name, sans, san_critical, 0)
               != 1)
        goto done;
    what = "raw";
    for (int i = 0; i < o->next; i++)
        if (add_raw_ext(x, o->ext[i], err, errlen) != 0)
            return -1;
    rc = 0;
done:
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING_free(ku);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    ASN1_OCTET_STRING_free(ski);
    AUTHORITY_KEYID_free(akid);
    return rc == 0 ? 0 : FAIL("cannot add %s extension", what);
}

/* --------------------------------------------------------------- signing */

/* DER of the signed x with issuer (TBS element 3) and/or subject (element 5)
 * replaced by the given DER, signed again with pkey. */
static int splice_and_sign(X509 *x, const buf *issuer, const buf *subject,
                           EVP_PKEY *pkey, buf *out, char *err, size_t errlen)
{
    unsigned char *tbs = NULL, *alg = NULL, *sig = NULL;
    int tbslen, alglen, rc = -1, idx;
    size_t hl, cl, eh, ec, off, siglen = 0;
    const X509_ALGOR *algor;
    EVP_MD_CTX *md = NULL;
    buf body = {0}, ntbs = {0}, cert = {0};

    if ((tbslen = i2d_re_X509_tbs(x, &tbs)) <= 0
        || der_tl(tbs, (size_t)tbslen, &hl, &cl) != 0) {
        FAIL("cannot encode TBSCertificate");
        goto done;
    }
    for (off = hl, idx = 0; off < hl + cl; off += eh + ec, idx++) {
        const buf *rep = idx == 3 ? issuer : idx == 5 ? subject : NULL;

        if (der_tl(tbs + off, hl + cl - off, &eh, &ec) != 0
            || (idx == 0 && tbs[off] != 0xa0)) {
            FAIL("unexpected TBSCertificate layout");
            goto done;
        }
        if (rep != NULL ? buf_add(&body, rep->p, rep->n)
                        : buf_add(&body, tbs + off, eh + ec)) {
            FAIL("out of memory");
            goto done;
        }
    }
    X509_get0_signature(NULL, &algor, x);
    if (idx < 7 || buf_tlv(&ntbs, 0x30, body.p, body.n) != 0
        || (alglen = i2d_X509_ALGOR(algor, &alg)) <= 0) {
        FAIL("cannot rebuild TBSCertificate");
        goto done;
    }
    if ((md = EVP_MD_CTX_new()) == NULL
        || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1
        || EVP_DigestSign(md, NULL, &siglen, ntbs.p, ntbs.n) != 1
        || (sig = OPENSSL_malloc(siglen + 1)) == NULL
        || EVP_DigestSign(md, sig + 1, &siglen, ntbs.p, ntbs.n) != 1) {
        FAIL("cannot sign the spliced certificate");
        goto done;
    }
    sig[0] = 0; /* BIT STRING: no unused bits */
    if (buf_add(&cert, ntbs.p, ntbs.n) || buf_add(&cert, alg, (size_t)alglen)
        || buf_tlv(&cert, V_ASN1_BIT_STRING, sig, siglen + 1)
        || buf_tlv(out, 0x30, cert.p, cert.n)) {
        FAIL("out of memory");
        goto done;
    }
    rc = 0;
done:
    OPENSSL_free(tbs);
    OPENSSL_free(alg);
    OPENSSL_free(sig);
    EVP_MD_CTX_free(md);
    buf_free(&body);
    buf_free(&ntbs);
    buf_free(&cert);
    return rc;
}

/* ---------------------------------------------------------------- files */

static char *path_of(const char *prefix, const char *ext)
{
    size_t n = strlen(prefix) + strlen(ext) + 1;
    char *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s%s", prefix, ext);
    return p;
}

static EVP_PKEY *read_key(const char *file, const char *opt, char *err,
                          size_t errlen)
{
    BIO *b = BIO_new_file(file, "r");
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    if (k == NULL)
        FAIL("%s: cannot read a PEM private key from %s", opt, file);
    return k;
}

/* Writes PREFIX.crt, PREFIX.key and PREFIX.der. */
static int write_files(const char *prefix, const buf *der, EVP_PKEY *key,
                       char *err, size_t errlen)
{
    static const char *const ext[] = {".crt", ".key", ".der"};
    char *path = NULL;
    BIO *b = NULL;
    int i, ok = 1;

    for (i = 0; i < 3 && ok; i++) {
        free(path);
        if ((path = path_of(prefix, ext[i])) == NULL)
            return FAIL("--out: out of memory");
        if ((b = BIO_new_file(path, "wb")) == NULL) {
            ok = 0;
            break;
        }
        if (i == 0)
            ok =
                PEM_write_bio(b, PEM_STRING_X509, "", der->p, (long)der->n) > 0;
        else if (i == 1)
            ok = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
                 == 1;
        else
            ok = BIO_write(b, der->p, (int)der->n) == (int)der->n;
        ok = ok && BIO_flush(b) == 1;
        BIO_free(b);
    }
    if (!ok)
        FAIL("--out: cannot write %s", path);
    free(path);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ main */

static int parse_opts(int argc, const char *const *argv, struct opts *o,
                      char *err, size_t errlen)
{
    const struct {
        const char *name;
        const char **slot;
    } valued[] = {
        {"--out", &o->out},
        {"--issuer", &o->issuer},
        {"--issuer-name", &o->issuer_name},
        {"--subject", &o->subject},
        {"--serial", &o->serial},
        {"--days", &o->days},
        {"--key-type", &o->key_type},
        {"--key", &o->key_file},
        {"--eku", &o->eku},
        {"--ku", &o->ku},
        {"--ski", &o->ski},
    };
    int i;
    size_t k;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--ca") == 0) {
            o->ca = 1;
            continue;
        }
        else if (strcmp(a, "--expired") == 0) {
            o->expired = 1;
            continue;
        }
        else if (strcmp(a, "--not-yet-valid") == 0) {
            o->not_yet_valid = 1;
            continue;
        }
        for (k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (strcmp(a, valued[k].name) == 0)
                break;
        if (k == sizeof valued / sizeof valued[0] && strcmp(a, "--san") != 0
            && strcmp(a, "--san-count") != 0 && strcmp(a, "--policy") != 0
            && strcmp(a, "--ext") != 0)
            return FAIL("unknown option '%s' (see t/certgen.h)", a);
        if (v == NULL)
            return FAIL("%s needs a value", a);
        i++;
        if (strcmp(a, "--policy") == 0 || strcmp(a, "--ext") == 0) {
            int *n = a[2] == 'p' ? &o->npolicy : &o->next;
            if (*n == MAX_REPEAT)
                return FAIL("%s: at most %d", a, MAX_REPEAT);
            (a[2] == 'p' ? o->policy : o->ext)[(*n)++] = v;
            continue;
        }
        if (k == sizeof valued / sizeof valued[0]) { /* --san, --san-count */
            if (o->sans == NULL
                && (o->sans = sk_GENERAL_NAME_new_null()) == NULL)
                return FAIL("%s: out of memory", a);
            if ((a[5] == '\0' ? add_san(o->sans, v, err, errlen)
                              : add_san_count(o->sans, v, err, errlen))
                != 0)
                return -1;
            continue;
        }
        if (*valued[k].slot != NULL)
            return FAIL("%s given twice", a);
        *valued[k].slot = v;
    }
    if (o->expired + o->not_yet_valid + (o->days != NULL) > 1)
        return FAIL("--days, --expired and --not-yet-valid are exclusive");
    if (o->key_file != NULL && o->key_type != NULL)
        return FAIL("--key and --key-type are exclusive");
    return 0;
}

static int set_serial_validity(X509 *x, const struct opts *o, char *err,
                               size_t errlen)
{
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    long days = 30, nb_days = 0, nb_sec = -3600, na_days;
    char *end;
    int rc = -1;

    if (o->serial != NULL) {
        if (*o->serial == '\0'
            || BN_hex2bn(&bn, o->serial) != (int)strlen(o->serial)) {
            FAIL("--serial: '%s' is not a hex number", o->serial);
            goto done;
        }
    }
    else if (RAND_bytes(rnd, sizeof rnd) != 1
             || (rnd[0] &= 0x7f, bn = BN_bin2bn(rnd, sizeof rnd, NULL))
                    == NULL) {
        FAIL("--serial: cannot make a random serial");
        goto done;
    }
    if ((ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL
        || !X509_set_serialNumber(x, ai)) {
        FAIL("--serial: cannot set the serial number");
        goto done;
    }
    if (o->days != NULL) {
        days = strtol(o->days, &end, 10);
        if (end == o->days || *end != '\0' || days < -100000 || days > 100000) {
            FAIL("--days: '%s' is not a number of days in [-100000, 100000]",
                 o->days);
            goto done;
        }
    }
    na_days = days;
    if (o->expired)
        nb_days = -30, nb_sec = 0, na_days = -1;
    else if (o->not_yet_valid)
        nb_days = 1, nb_sec = 0, na_days = 30;
    if (X509_time_adj_ex(X509_getm_notBefore(x), (int)nb_days, nb_sec, NULL)
            == NULL
        || X509_time_adj_ex(X509_getm_notAfter(x), (int)na_days, 0, NULL)
               == NULL) {
        FAIL("cannot set the validity period");
        goto done;
    }
    rc = 0;
done:
    BN_free(bn);
    ASN1_INTEGER_free(ai);
    return rc;
}

int certgen_run(int argc, const char *const *argv, X509 **cert, EVP_PKEY **key,
                char *err, size_t errlen)
{
    struct opts o;
    struct name subj, iname;
    const buf *patch_issuer = NULL;
    const char *why = NULL;
    const unsigned char *p;
    X509 *x = NULL, *ca = NULL, *parsed = NULL;
    EVP_PKEY *k = NULL, *cakey = NULL;
    char *path = NULL;
    buf der = {0};
    int rc = -1;

    memset(&o, 0, sizeof o);
    memset(&subj, 0, sizeof subj);
    memset(&iname, 0, sizeof iname);
    *cert = NULL;
    *key = NULL;
    ERR_clear_error();
    if (parse_opts(argc, argv, &o, err, errlen) != 0)
        goto done;

    /* keys and issuer */
    if (o.key_file != NULL) {
        if ((k = read_key(o.key_file, "--key", err, errlen)) == NULL)
            goto done;
    }
    else if (o.key_type == NULL || strcmp(o.key_type, "ec") == 0) {
        if ((k = EVP_EC_gen("P-256")) == NULL) {
            FAIL("--key-type ec: cannot generate a P-256 key");
            goto done;
        }
    }
    else if (strcmp(o.key_type, "rsa") == 0) {
        if ((k = EVP_RSA_gen(2048)) == NULL) {
            FAIL("--key-type rsa: cannot generate an RSA key");
            goto done;
        }
    }
    else {
        FAIL("--key-type: expected ec or rsa, got '%s'", o.key_type);
        goto done;
    }
    if (o.issuer != NULL) {
        BIO *b;

        if ((path = path_of(o.issuer, ".crt")) == NULL) {
            FAIL("--issuer: out of memory");
            goto done;
        }
        b = BIO_new_file(path, "r");
        ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (ca == NULL) {
            FAIL("--issuer: cannot read a PEM certificate from %s", path);
            goto done;
        }
        free(path);
        if ((path = path_of(o.issuer, ".key")) == NULL) {
            FAIL("--issuer: out of memory");
            goto done;
        }
        if ((cakey = read_key(path, "--issuer", err, errlen)) == NULL)
            goto done;
        if (X509_check_private_key(ca, cakey) != 1) {
            FAIL("--issuer: %s does not match %s.crt", path, o.issuer);
            goto done;
        }
    }

    /* names */
    if (build_name("--subject", o.subject ? o.subject : "/CN=certgen", &subj,
                   err, errlen)
        != 0)
        goto done;
    if (o.issuer_name != NULL
        && build_name("--issuer-name", o.issuer_name, &iname, err, errlen) != 0)
        goto done;
    why = iname.patch ? iname.why : subj.patch ? subj.why : NULL;
    if (iname.patch)
        patch_issuer = &iname.der;
    else if (o.issuer_name == NULL && ca == NULL && subj.patch)
        patch_issuer = &subj.der;

    /* the certificate */
    if ((x = X509_new()) == NULL || !X509_set_version(x, X509_VERSION_3)) {
        FAIL("cannot create the certificate");
        goto done;
    }
    if (set_serial_validity(x, &o, err, errlen) != 0)
        goto done;
    if (!X509_set_subject_name(x, subj.x)
        || !X509_set_issuer_name(x, iname.x ? iname.x
                                    : ca    ? X509_get_subject_name(ca)
                                            : subj.x)
        || !X509_set_pubkey(x, k)) {
        FAIL("cannot set names or public key");
        goto done;
    }
    if (add_extensions(x, ca, o.ca, o.sans, subj.der.n == 2, &o, err, errlen)
        != 0)
        goto done;
    if (X509_sign(x, ca ? cakey : k, EVP_sha256()) <= 0) {
        FAIL("cannot sign the certificate");
        goto done;
    }
    if (subj.patch || patch_issuer != NULL) {
        if (splice_and_sign(x, patch_issuer, subj.patch ? &subj.der : NULL,
                            ca ? cakey : k, &der, err, errlen)
            != 0)
            goto done;
    }
    else {
        unsigned char *d = NULL;
        int n = i2d_X509(x, &d);

        if (n <= 0 || buf_add(&der, d, (size_t)n) != 0) {
            OPENSSL_free(d);
            FAIL("cannot encode the certificate");
            goto done;
        }
        OPENSSL_free(d);
    }

    /* what a peer would see */
    p = der.p;
    parsed = d2i_X509(NULL, &p, (long)der.n);
    if (parsed == NULL || p != der.p + der.n) {
        if (o.out == NULL) {
            ERR_clear_error();
            FAIL("%s; the certificate can only be written to files (--out)",
                 why ? why : "OpenSSL cannot parse the certificate");
            goto done;
        }
        X509_free(parsed);
        parsed = NULL;
        ERR_clear_error();
    }
    if (o.out != NULL && write_files(o.out, &der, k, err, errlen) != 0)
        goto done;
    *cert = parsed;
    *key = k;
    parsed = NULL;
    k = NULL;
    rc = 0;
done:
    sk_GENERAL_NAME_pop_free(o.sans, GENERAL_NAME_free);
    name_free(&subj);
    name_free(&iname);
    X509_free(x);
    X509_free(ca);
    X509_free(parsed);
    EVP_PKEY_free(k);
    EVP_PKEY_free(cakey);
    free(path);
    buf_free(&der);
    return rc;
}

/* ------------------------------------------------------ unit-test helpers */

X509 *certgen_quick(const char *options)
{
    size_t n = strlen(options);
    char *store = malloc(n + 1), *d = store, err[512];
    const char **av = malloc((n + 1) * sizeof *av);
    const char *s = options;
    int ac = 0, rc;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;

    if (store == NULL || av == NULL) {
        fprintf(stderr, "certgen_quick: out of memory\n");
        abort();
    }
    while (*s != '\0') {
        if (*s == ' ' || *s == '\t' || *s == '\n') {
            s++;
            continue;
        }
        av[ac++] = d;
        while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n') {
            if (*s != '\'') {
                *d++ = *s++;
                continue;
            }
            for (s++; *s != '\0' && *s != '\'';)
                *d++ = *s++;
            if (*s++ == '\0') {
                fprintf(stderr, "certgen_quick(\"%s\"): unterminated quote\n",
                        options);
                abort();
            }
        }
        *d++ = '\0';
    }
    rc = certgen_run(ac, av, &x, &k, err, sizeof err);
    if (rc != 0 || x == NULL) {
        fprintf(stderr, "certgen_quick(\"%s\"): %s\n", options,
                rc != 0 ? err : "OpenSSL cannot parse the certificate");
        abort();
    }
    EVP_PKEY_free(k);
    free(store);
    free(av);
    return x;
}

unsigned char *certgen_der(X509 *x, int *len)
{
    int n = i2d_X509(x, NULL);
    unsigned char *buf, *p;

    *len = 0;
    if (n <= 0 || (buf = p = malloc((size_t)n)) == NULL)
        return NULL;
    if (i2d_X509(x, &p) != n) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
