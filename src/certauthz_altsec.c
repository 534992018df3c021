/*
 * certauthz_altsec.c -- Active Directory's altSecurityIdentities X509
 * forms: built from a certificate, parsed from a map, reduced to one
 * canonical key.  The rules are in certauthz_altsec.h.
 *
 * The canonical key of a form is its tag in upper case, then for a DN each
 * attribute as DOTTED-OID="value" (the value's ASCII letters folded to
 * lower case, a '"' doubled), the attributes of an RDN sorted and joined by
 * '+', the RDNs joined by ',' in X.500 order; for hex, lower case.  Every
 * value is quoted in the key, so two different names never give one key.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "certauthz_altsec.h"
#include "certauthz_util.h"

/* Longest hex octet string taken: a serial or a key identifier longer than
 * this is not a mapping anyone writes. */
#define MAX_HEX_BYTES 256

/* The attribute names Windows prints (CertNameToStr, CERT_X500_NAME_STR),
 * then the names accepted only on input. */
static const certauthz_oid_name_t win_names[] = {
    {"CN", "2.5.4.3"},
    {"L", "2.5.4.7"},
    {"O", "2.5.4.10"},
    {"OU", "2.5.4.11"},
    {"E", "1.2.840.113549.1.9.1"},
    {"C", "2.5.4.6"},
    {"S", "2.5.4.8"},
    {"STREET", "2.5.4.9"},
    {"T", "2.5.4.12"},
    {"G", "2.5.4.42"},
    {"I", "2.5.4.43"},
    {"SN", "2.5.4.4"},
    {"DC", "0.9.2342.19200300.100.1.25"},
    {"SERIALNUMBER", "2.5.4.5"},
    {"Description", "2.5.4.13"},
    {"PostalCode", "2.5.4.17"},
    {"POBox", "2.5.4.18"},
    {"Phone", "2.5.4.20"},
    {"X21Address", "2.5.4.24"},
    {"dnQualifier", "2.5.4.46"},
    {"UnstructuredName", "1.2.840.113549.1.9.2"},
    {"UnstructuredAddress", "1.2.840.113549.1.9.8"},
    {"ST", "2.5.4.8"}, /* input only: RFC 4514's name */
    {NULL, NULL}};
#define N_PRINTED 22 /* the entries before "ST" */

typedef struct {
    const char *oid; /* dotted */
    const char *val; /* UTF-8 as written (quotes undone) */
    apr_size_t vlen;
    int rdn; /* RDN number, X.500 order */
} ava_t;

/* ---- text ------------------------------------------------------------ */

/* Windows' quoting rule for a value (CertNameToStr). */
static int needs_quotes(const char *v, apr_size_t n)
{
    if (n == 0 || v[0] == ' ' || v[n - 1] == ' ')
        return 1;
    for (apr_size_t i = 0; i < n; i++)
        if (strchr(",+=\"<>#;", v[i]) && v[i])
            return 1;
    return 0;
}

/* Text is built in an array of char; these append without a call per
 * character (apr_array_push grows the array when it is full). */
static void putc_(apr_array_header_t *o, char c)
{
    if (o->nelts < o->nalloc)
        o->elts[o->nelts++] = c;
    else
        *(char *)apr_array_push(o) = c;
}

static void put(apr_array_header_t *o, const char *s, apr_size_t n)
{
    while (n && (apr_size_t)(o->nalloc - o->nelts) < n) {
        int keep = o->nelts;
        o->nelts = o->nalloc;
        apr_array_push(o); /* doubles nalloc */
        o->nelts = keep;
    }
    if (n) {
        memcpy(o->elts + o->nelts, s, n);
        o->nelts += (int)n;
    }
}

static void put_quoted(apr_array_header_t *o, const char *v, apr_size_t n,
                       int fold)
{
    putc_(o, '"');
    for (apr_size_t i = 0; i < n; i++) {
        char c = v[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        putc_(o, c);
        if (c == '"')
            putc_(o, '"');
    }
    putc_(o, '"');
}

static void puts_(apr_array_header_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static const char *finish(apr_array_header_t *o)
{
    putc_(o, '\0');
    return o->elts;
}

static const char *printed_name(const char *oid, apr_pool_t *p)
{
    for (int i = 0; i < N_PRINTED; i++)
        if (!strcmp(win_names[i].oid, oid))
            return win_names[i].name;
    return apr_pstrcat(p, "OID.", oid, NULL);
}

/* The DN as AD's tools write it: X.500 order, ',' and '+', no spaces. */
static void put_dn_text(apr_array_header_t *o, const ava_t *a, int n,
                        apr_pool_t *p)
{
    for (int i = 0; i < n; i++) {
        if (i)
            putc_(o, a[i].rdn == a[i - 1].rdn ? '+' : ',');
        puts_(o, printed_name(a[i].oid, p));
        putc_(o, '=');
        if (needs_quotes(a[i].val, a[i].vlen))
            put_quoted(o, a[i].val, a[i].vlen, 0);
        else
            put(o, a[i].val, a[i].vlen);
    }
}

static int cmp_ava(const void *x, const void *y)
{
    const ava_t *a = x, *b = y;
    int c;
    apr_size_t n;

    if (a->rdn != b->rdn)
        return a->rdn < b->rdn ? -1 : 1;
    if ((c = strcmp(a->oid, b->oid)))
        return c;
    n = a->vlen < b->vlen ? a->vlen : b->vlen;
    if ((c = strncasecmp(a->val, b->val, n)))
        return c;
    return a->vlen < b->vlen ? -1 : a->vlen > b->vlen;
}

/* The DN's part of the canonical key.  Sorts a (within each RDN). */
static void put_dn_key(apr_array_header_t *o, ava_t *a, int n)
{
    if (n > 1) /* an empty DN has no array */
        qsort(a, (size_t)n, sizeof(*a), cmp_ava);
    for (int i = 0; i < n; i++) {
        if (i)
            putc_(o, a[i].rdn == a[i - 1].rdn ? '+' : ',');
        puts_(o, a[i].oid);
        putc_(o, '=');
        put_quoted(o, a[i].val, a[i].vlen, 1);
    }
}

/* ---- parsing a map value ---------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The OID of an attribute name written in a DN: a Windows name (any case),
 * OID.n.n or n.n. */
static const char *key_oid(const char *k, apr_size_t n, const char **reason,
                           apr_pool_t *p)
{
    if (n > 4 && !strncasecmp(k, "OID.", 4))
        return certauthz_oid_normalize(k + 4, n - 4, NULL, reason, p);
    if (n && k[0] >= '0' && k[0] <= '9')
        return certauthz_oid_normalize(k, n, NULL, reason, p);
    for (int i = 0; win_names[i].name; i++)
        if (strlen(win_names[i].name) == n
            && !strncasecmp(win_names[i].name, k, n))
            return win_names[i].oid;
    {
        /* at most 40 bytes of it, not cutting a UTF-8 sequence, escaped
         * for the log line the reason goes to */
        apr_size_t cut = n;
        if (cut > 40)
            for (cut = 40; cut && ((unsigned char)k[cut] & 0xC0) == 0x80;)
                cut--;
        *reason = apr_psprintf(
            p,
            "unknown attribute name '%s' (Windows names: CN, OU, O, DC, C, "
            "S, L, E, ...; or OID.n.n.n)",
            certauthz_log_escape(apr_pstrmemdup(p, k, cut), p));
    }
    return NULL;
}

/* Parse s[0..len) as a DN in Windows' grammar into *out (n attributes). */
static int parse_dn(const char *s, apr_size_t len, ava_t **out, int *nout,
                    const char **reason, apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(ava_t));
    apr_size_t i = 0;
    int rdn = 0;

    while (i < len && is_space(s[i]))
        i++;
    if (i == len) { /* no RDN at all */
        *out = NULL;
        *nout = 0;
        return 1;
    }
    for (;;) {
        ava_t *v = apr_array_push(a);
        apr_size_t k0, k1;
        char *val;
        apr_size_t vn = 0;

        while (i < len && is_space(s[i]))
            i++;
        k0 = i;
        while (i < len && s[i] != '=' && !strchr(",;+\"", s[i]))
            i++;
        k1 = i;
        while (k1 > k0 && is_space(s[k1 - 1]))
            k1--;
        if (i == len || s[i] != '=') {
            *reason = k1 > k0 ? "an attribute without '='" : "empty attribute";
            return 0;
        }
        if (k1 == k0) {
            *reason = "an attribute without a name";
            return 0;
        }
        if (!(v->oid = key_oid(s + k0, k1 - k0, reason, p)))
            return 0;
        i++; /* '=' */
        while (i < len && is_space(s[i]))
            i++;
        val = apr_palloc(p, len - i + 1);
        if (i < len && s[i] == '"') {
            for (i++;; i++) {
                if (i == len) {
                    *reason = "unterminated quote in a DN value";
                    return 0;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        val[vn++] = '"';
                        i++;
                        continue;
                    }
                    i++;
                    break;
                }
                val[vn++] = s[i];
            }
            while (i < len && is_space(s[i]))
                i++;
        }
        else {
            apr_size_t v0 = i;
            if (i < len && s[i] == '#') {
                *reason = "a #hex value (a value that is not a string) "
                          "never matches";
                return 0;
            }
            while (i < len && !strchr(",;+", s[i])) {
                if (s[i] == '"' || s[i] == '<' || s[i] == '>') {
                    *reason = "a value with '\"', '<' or '>' must be in "
                              "double quotes";
                    return 0;
                }
                i++;
            }
            vn = i;
            while (vn > v0 && is_space(s[vn - 1]))
                vn--;
            if (vn == v0) {
                *reason = "empty value (an empty value is written \"\")";
                return 0;
            }
            memcpy(val, s + v0, vn - v0);
            vn -= v0;
        }
        if (!certauthz_utf8_valid(val, vn) || certauthz_has_control(val, vn)) {
            *reason = "a DN value with a control character or invalid UTF-8";
            return 0;
        }
        val[vn] = '\0';
        v->val = val;
        v->vlen = vn;
        v->rdn = rdn;
        if (i == len)
            break;
        if (s[i] != '+' && s[i] != ',' && s[i] != ';') {
            *reason = "text after a quoted DN value";
            return 0;
        }
        if (s[i] != '+')
            rdn++;
        i++;
    }
    *out = (ava_t *)a->elts;
    *nout = a->nelts;
    return 1;
}

/* Strict hex (no separators, even length, 1..max bytes; want > 0: exactly
 * that many), lower case into o. */
static int put_hex(apr_array_header_t *o, const char *s, apr_size_t len,
                   apr_size_t want, const char **reason, apr_pool_t *p)
{
    for (apr_size_t i = 0; i < len; i++)
        if (certauthz_hexval(s[i]) < 0) {
            *reason = "not hex (the octets are written without separators)";
            return 0;
        }
    if (!want && len > 2 * MAX_HEX_BYTES) {
        *reason = apr_psprintf(p, "longer than %d octets", MAX_HEX_BYTES);
        return 0;
    }
    if (len == 0 || len % 2 || (want && len != 2 * want)) {
        *reason = want ? apr_psprintf(p, "want %lu hex digits",
                                      (unsigned long)(2 * want))
                       : "want an even number of hex digits";
        return 0;
    }
    for (apr_size_t i = 0; i < len; i++)
        putc_(o, (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]));
    return 1;
}

/* Index of the first '<' outside double quotes at or after i, or len. */
static apr_size_t next_tag(const char *s, apr_size_t len, apr_size_t i)
{
    int quoted = 0;
    for (; i < len; i++) {
        if (s[i] == '"')
            quoted = !quoted;
        else if (s[i] == '<' && !quoted)
            return i;
    }
    return len;
}

/* The tag at s[i] ('<'): its length through '>' in *tl; 0 when none. */
static int tag_is(const char *s, apr_size_t len, apr_size_t i, const char *tag,
                  apr_size_t *tl)
{
    apr_size_t n = strlen(tag);
    if (len - i < n || strncasecmp(s + i, tag, n))
        return 0;
    *tl = n;
    return 1;
}

const char *certauthz_altsec_normalize(const char *s, apr_size_t len,
                                       const char **reason, apr_pool_t *p)
{
    apr_array_header_t *o = apr_array_make(p, (int)len + 32, 1);
    apr_size_t i = 5, tl, end;
    ava_t *a;
    int n;

    if (len < 5 || strncasecmp(s, "X509:", 5)) {
        *reason = "an altsec value starts with X509: (as "
                  "X509:<I>ISSUER<SR>SERIAL)";
        return NULL;
    }
    puts_(o, "X509:");
    if (tag_is(s, len, i, "<SKI>", &tl)) {
        puts_(o, "<SKI>");
        return put_hex(o, s + i + tl, len - i - tl, 0, reason, p) ? finish(o)
                                                                  : NULL;
    }
    if (tag_is(s, len, i, "<SHA1-PUKEY>", &tl)) {
        puts_(o, "<SHA1-PUKEY>");
        return put_hex(o, s + i + tl, len - i - tl, 20, reason, p) ? finish(o)
                                                                   : NULL;
    }
    if (tag_is(s, len, i, "<RFC822>", &tl)) {
        *reason = "X509:<RFC822> is a weak mapping (KB5014754); an email: "
                  "selector matches the same name";
        return NULL;
    }
    if (!tag_is(s, len, i, "<I>", &tl)) {
        *reason = tag_is(s, len, i, "<S>", &tl)
                      ? "X509:<S> (subject only) is a weak mapping "
                        "(KB5014754); a dn: selector matches the subject"
                      : "unknown form (X509:<I>ISSUER<SR>SERIAL, "
                        "X509:<SKI>HEX, X509:<SHA1-PUKEY>HEX or "
                        "X509:<I>ISSUER<S>SUBJECT)";
        return NULL;
    }
    i += tl;
    end = next_tag(s, len, i);
    if (end == len && memchr(s + i, '"', len - i)) {
        apr_size_t q = 0;
        for (apr_size_t k = i; k < len; k++)
            q += s[k] == '"';
        if (q % 2) {
            *reason = "unbalanced '\"' in the issuer (a value holding '\"' "
                      "is written in double quotes, the '\"' doubled)";
            return NULL;
        }
    }
    if (end == len) {
        *reason = "X509:<I>ISSUER wants <SR>SERIAL or <S>SUBJECT after it "
                  "(a value with spaces goes in double quotes: "
                  "altsec:\"X509:<I>...\")";
        return NULL;
    }
    if (!parse_dn(s + i, end - i, &a, &n, reason, p))
        return NULL;
    puts_(o, "<I>");
    put_dn_key(o, a, n);
    i = end;
    if (tag_is(s, len, i, "<SR>", &tl)) {
        puts_(o, "<SR>");
        return put_hex(o, s + i + tl, len - i - tl, 0, reason, p) ? finish(o)
                                                                  : NULL;
    }
    if (!tag_is(s, len, i, "<S>", &tl)) {
        *reason = "X509:<I>ISSUER wants <SR>SERIAL or <S>SUBJECT after it";
        return NULL;
    }
    i += tl;
    if (next_tag(s, len, i) != len) {
        *reason = "a '<' after <S> (a value with '<' must be in double "
                  "quotes)";
        return NULL;
    }
    if (!parse_dn(s + i, len - i, &a, &n, reason, p))
        return NULL;
    puts_(o, "<S>");
    put_dn_key(o, a, n);
    return finish(o);
}

/* ---- a certificate's forms ------------------------------------------- */

/* The attributes of a certificate name, X.500 order; 0 when a value is not
 * a string, not UTF-8, or holds NUL or a control character. */
static int name_avas(const X509_NAME *name, ava_t **out, int *nout,
                     apr_pool_t *p)
{
    int n = X509_NAME_entry_count(name), last = -1, rdn = -1;
    ava_t *a = apr_pcalloc(p, sizeof(ava_t) * (apr_size_t)(n ? n : 1));

    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        char oid[CERTAUTHZ_MAX_OID + 1];
        int ok =
            len >= 0
            && certauthz_utf8_valid((const char *)utf8, (apr_size_t)len)
            && !certauthz_has_control((const char *)utf8, (apr_size_t)len)
            && OBJ_obj2txt(oid, sizeof(oid), X509_NAME_ENTRY_get_object(e), 1)
                   > 0
            && strlen(oid) < CERTAUTHZ_MAX_OID;
        if (ok) {
            a[i].oid = apr_pstrdup(p, oid);
            a[i].val = apr_pstrmemdup(p, (const char *)utf8, (apr_size_t)len);
            a[i].vlen = (apr_size_t)len;
        }
        OPENSSL_free(utf8);
        if (!ok)
            return 0;
        if (X509_NAME_ENTRY_set(e) != last) {
            last = X509_NAME_ENTRY_set(e);
            rdn++;
        }
        a[i].rdn = rdn;
    }
    *out = a;
    *nout = n;
    return 1;
}

/* A name's text (as AD's tools write it) and key (as compared), from p;
 * computed once per name, shared by the forms that hold it. */
static void dn_forms(const ava_t *a, int n, const char **text, const char **key,
                     apr_pool_t *p)
{
    apr_array_header_t *t = apr_array_make(p, 128, 1);
    apr_array_header_t *k = apr_array_make(p, 128, 1);
    ava_t *sorted = apr_pmemdup(p, a, sizeof(*a) * (apr_size_t)(n ? n : 1));
    put_dn_text(t, a, n, p);
    put_dn_key(k, sorted, n);
    *text = finish(t);
    *key = finish(k);
}

static const char *lower_hex(const unsigned char *b, apr_size_t n,
                             apr_pool_t *p)
{
    char *s = certauthz_hex_upper(b, n, p);
    certauthz_ascii_lower(s, 2 * n);
    return s;
}

/* The serial's DER content octets, reversed, hex; NULL when too long. */
static const char *reversed_serial(X509 *x, apr_pool_t *p)
{
    unsigned char *der = NULL, *rev;
    int dl = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);
    apr_size_t hl, cl;
    const char *s = NULL;

    if (dl >= 2) {
        if (der[1] < 0x80) {
            hl = 2;
            cl = der[1];
        }
        else {
            apr_size_t k = der[1] & 0x7F;
            hl = 2 + k;
            cl = 0;
            for (apr_size_t i = 0; i < k && 2 + i < (apr_size_t)dl; i++)
                cl = cl << 8 | der[2 + i];
        }
        if (hl + cl == (apr_size_t)dl && cl > 0 && cl <= MAX_HEX_BYTES) {
            rev = apr_palloc(p, cl);
            for (apr_size_t i = 0; i < cl; i++)
                rev[i] = der[hl + cl - 1 - i];
            s = lower_hex(rev, cl, p);
        }
    }
    OPENSSL_free(der);
    return s;
}

static const char *sha1_hex(const unsigned char *d, apr_size_t n, apr_pool_t *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(d, n, md, &mdlen, EVP_sha1(), NULL) && mdlen == 20;
    return ok ? lower_hex(md, mdlen, p) : NULL;
}

/* One SHA1-PUKEY form from a digest (NULL: none could be made, dropped). */
static void add_sha1(certauthz_altsec_t *out, int *n, int *dropped,
                     const char *hex, apr_pool_t *p)
{
    if (!hex) {
        (*dropped)++;
        return;
    }
    out[*n].text = out[*n].key = apr_pstrcat(p, "X509:<SHA1-PUKEY>", hex, NULL);
    (*n)++;
}

int certauthz_altsec_of_x509(X509 *x, const char *ski_hex,
                             certauthz_altsec_t *out, int *dropped,
                             apr_pool_t *p)
{
    ava_t *iss = NULL, *sub = NULL;
    int niss = 0, nsub = 0, n = 0;
    int iss_ok = name_avas(X509_get_issuer_name(x), &iss, &niss, p);
    int sub_ok = name_avas(X509_get_subject_name(x), &sub, &nsub, p);
    const char *serial = reversed_serial(x, p);
    const char *it = NULL, *ik = NULL, *st, *sk;
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(x);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (iss_ok)
        dn_forms(iss, niss, &it, &ik, p);
    if (iss_ok && serial) {
        out[n].text = apr_pstrcat(p, "X509:<I>", it, "<SR>", serial, NULL);
        out[n++].key = apr_pstrcat(p, "X509:<I>", ik, "<SR>", serial, NULL);
    }
    else {
        (*dropped)++;
    }
    if (ski_hex) {
        char *lower = apr_pstrdup(p, ski_hex);
        certauthz_ascii_lower(lower, strlen(lower));
        out[n].text = out[n].key = apr_pstrcat(p, "X509:<SKI>", lower, NULL);
        n++;
    }
    /* the thumbprint: OpenSSL keeps the certificate's SHA-1 from decoding
     * it; then the hash of the key bits */
    add_sha1(out, &n, dropped,
             X509_digest(x, EVP_sha1(), md, &mdlen) && mdlen == 20
                 ? lower_hex(md, mdlen, p)
                 : NULL,
             p);
    add_sha1(out, &n, dropped,
             key ? sha1_hex(ASN1_STRING_get0_data(key),
                            (apr_size_t)ASN1_STRING_length(key), p)
                 : NULL,
             p);
    if (iss_ok && sub_ok) {
        dn_forms(sub, nsub, &st, &sk, p);
        out[n].text = apr_pstrcat(p, "X509:<I>", it, "<S>", st, NULL);
        out[n++].key = apr_pstrcat(p, "X509:<I>", ik, "<S>", sk, NULL);
    }
    else {
        (*dropped)++;
    }
    return n;
}

int certauthz_altsec_form(const char *text)
{
    apr_size_t len = strlen(text), tl, at;

    if (len < 5 || strncasecmp(text, "X509:", 5))
        return -1;
    if (tag_is(text, len, 5, "<SKI>", &tl))
        return CERTAUTHZ_ALTSEC_SKI;
    if (tag_is(text, len, 5, "<SHA1-PUKEY>", &tl))
        return CERTAUTHZ_ALTSEC_SHA1;
    if (!tag_is(text, len, 5, "<I>", &tl))
        return -1;
    at = next_tag(text, len, 5 + tl);
    if (tag_is(text, len, at, "<SR>", &tl))
        return CERTAUTHZ_ALTSEC_ISSUER_SERIAL;
    if (tag_is(text, len, at, "<S>", &tl))
        return CERTAUTHZ_ALTSEC_ISSUER_SUBJECT;
    return -1;
}

const char *certauthz_altsec_selector(const char *text, apr_pool_t *p)
{
    apr_array_header_t *o = apr_array_make(p, (int)strlen(text) + 16, 1);
    puts_(o, "altsec:\"");
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            putc_(o, '\\');
        putc_(o, *c);
    }
    putc_(o, '"');
    return finish(o);
}
