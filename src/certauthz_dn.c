/*
 * certauthz_dn.c -- distinguished names: RFC 4514 parser, conversion from
 * OpenSSL's X509_NAME, canonical key and RFC 4514 printer.  See
 * certauthz_dn.h for the comparison rule.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "certauthz_dn.h"
#include "certauthz_util.h"

typedef struct {
    const char *oid;  /* dotted form, the comparison key */
    const char *name; /* short name for display, or the dotted OID */
    const char *val;  /* UTF-8, no NUL inside */
    apr_size_t vlen;
    int raw_tag; /* 0: a string type OpenSSL canonicalises (and text);
                       * else the ASN.1 tag of a type it compares as is */
} ava_t;

/* The string types OpenSSL's x509_name_canon folds (ASN1_MASK_CANON); a
 * value of another type (NumericString, say) keeps its type and bytes. */
static int canon_tag(int type)
{
    switch (type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_T61STRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_VISIBLESTRING:
        return 0;
    default:
        return type > 0 ? type : 1;
    }
}

typedef struct {
    int n;
    ava_t *ava;
} rdn_t;

struct certauthz_dn_t {
    int n;           /* RDNs, most specific first */
    rdn_t *rdn;      /* read only while the DN is built; NULL in a copy */
    const char *key; /* exact comparison key */
    apr_size_t keylen;
    const char *ckey; /* key under OpenSSL's name canonicalisation */
    apr_size_t ckeylen;
    const char *text;
};

/* Attribute names accepted case-insensitively: RFC 4514 section 3 and the
 * other names OpenSSL prints for subject attributes. */
static const struct {
    const char *name;
    int nid;
} attr_names[] = {{"cn", NID_commonName},
                  {"commonname", NID_commonName},
                  {"l", NID_localityName},
                  {"localityname", NID_localityName},
                  {"st", NID_stateOrProvinceName},
                  {"stateorprovincename", NID_stateOrProvinceName},
                  {"o", NID_organizationName},
                  {"organizationname", NID_organizationName},
                  {"ou", NID_organizationalUnitName},
                  {"organizationalunitname", NID_organizationalUnitName},
                  {"c", NID_countryName},
                  {"countryname", NID_countryName},
                  {"street", NID_streetAddress},
                  {"streetaddress", NID_streetAddress},
                  {"dc", NID_domainComponent},
                  {"domaincomponent", NID_domainComponent},
                  {"uid", NID_userId},
                  {"userid", NID_userId},
                  {"emailaddress", NID_pkcs9_emailAddress},
                  {"e", NID_pkcs9_emailAddress},
                  {"serialnumber", NID_serialNumber},
                  {"sn", NID_surname},
                  {"surname", NID_surname},
                  {"gn", NID_givenName},
                  {"givenname", NID_givenName},
                  {"title", NID_title},
                  {"initials", NID_initials},
                  {"pseudonym", NID_pseudonym},
                  {"generationqualifier", NID_generationQualifier},
                  {"dnqualifier", NID_dnQualifier},
                  {"name", NID_name},
                  {"businesscategory", NID_businessCategory},
                  {"postalcode", NID_postalCode},
                  {"organizationidentifier", NID_organizationIdentifier},
                  {NULL, 0}};

static int ava_cmp(const void *a, const void *b)
{
    const ava_t *x = a, *y = b;
    int c = strcmp(x->oid, y->oid);
    if (c)
        return c;
    c = memcmp(x->val, y->val, x->vlen < y->vlen ? x->vlen : y->vlen);
    if (c)
        return c;
    return x->vlen < y->vlen ? -1 : x->vlen > y->vlen;
}

/* RFC 4514 escaping of one value for display. */
static void append_escaped(apr_array_header_t *out, const char *v, apr_size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (apr_size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7F) {
            char *e = apr_array_push(out);
            *e = '\\';
            *(char *)apr_array_push(out) = hex[c >> 4];
            *(char *)apr_array_push(out) = hex[c & 15];
            continue;
        }
        if (strchr(",+\"\\<>;=", c) || (i == 0 && (c == '#' || c == ' '))
            || (i == n - 1 && c == ' '))
            *(char *)apr_array_push(out) = '\\';
        *(char *)apr_array_push(out) = (char)c;
    }
}

static void append(apr_array_header_t *out, const char *s, apr_size_t n)
{
    for (apr_size_t i = 0; i < n; i++)
        *(char *)apr_array_push(out) = s[i];
}

/* A value of a type OpenSSL compares as is (NumericString, the time
 * types) is printed in RFC 4514's '#' hex form of its DER, so that the text
 * reads back with its type.  Those types hold one byte per character, so
 * the UTF-8 value maps back to its bytes.  0 when it cannot be encoded. */
static int append_hex_value(apr_array_header_t *out, const ava_t *a)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char *bytes = malloc(a->vlen ? a->vlen : 1), *der = NULL;
    const unsigned char *u = (const unsigned char *)a->val;
    apr_size_t n = 0, i = 0;
    ASN1_STRING *str = NULL;
    ASN1_TYPE *t = NULL;
    int len = -1;

    while (bytes && i < a->vlen) { /* UTF-8 of code points < 256 */
        if (u[i] < 0x80)
            bytes[n++] = u[i++];
        else if ((u[i] & 0xE0) == 0xC0 && u[i] <= 0xC3 && i + 1 < a->vlen) {
            bytes[n++] =
                (unsigned char)(((u[i] & 0x03) << 6) | (u[i + 1] & 0x3F));
            i += 2;
        }
        else
            break;
    }
    if (bytes && i == a->vlen && (str = ASN1_STRING_type_new(a->raw_tag))
        && ASN1_STRING_set(str, bytes, (int)n) && (t = ASN1_TYPE_new())) {
        ASN1_TYPE_set(t, a->raw_tag, str);
        str = NULL; /* owned by t */
        len = i2d_ASN1_TYPE(t, &der);
    }
    if (len > 0) {
        append(out, "#", 1);
        for (int k = 0; k < len; k++) {
            *(char *)apr_array_push(out) = hex[der[k] >> 4];
            *(char *)apr_array_push(out) = hex[der[k] & 15];
        }
    }
    OPENSSL_free(der);
    ASN1_TYPE_free(t);
    ASN1_STRING_free(str);
    free(bytes);
    return len > 0;
}

/* Sort each RDN's attributes and build the key and the display text. */
/* A value as OpenSSL canonicalises names to match a certificate's issuer
 * to its CA (x509_name_canon): leading and trailing white space dropped,
 * inner runs of white space made one space, ASCII lower-cased. */
static const char *canon_value(const char *v, apr_size_t n, apr_size_t *len,
                               apr_pool_t *p)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i = 0;

#define CA_SPACE(c) ((c) == ' ' || ((c) >= '\t' && (c) <= '\r'))
    while (i < n && CA_SPACE(v[i]))
        i++;
    while (i < n) {
        if (CA_SPACE(v[i])) {
            while (i < n && CA_SPACE(v[i]))
                i++;
            if (i < n)
                *o++ = ' ';
            continue;
        }
        *o++ = (v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] + 32) : v[i];
        i++;
    }
#undef CA_SPACE
    *o = '\0';
    *len = (apr_size_t)(o - out);
    return out;
}

static void append_ava_key(apr_array_header_t *key, const ava_t *a)
{
    char num[32];
    int k = snprintf(num, sizeof(num), "=%" APR_SIZE_T_FMT ":", a->vlen);

    append(key, a->oid, strlen(a->oid));
    append(key, num, (apr_size_t)k);
    append(key, a->val, a->vlen);
}

/* The key of the canonicalised DN: each RDN's values canonicalised, then
 * sorted again (canonicalisation may change the order). */
static void canon_key(certauthz_dn_t *dn, apr_pool_t *p)
{
    apr_array_header_t *key = apr_array_make(p, 128, 1);

    for (int i = 0; i < dn->n; i++) {
        const rdn_t *r = &dn->rdn[i];
        ava_t *c = apr_palloc(p, sizeof(ava_t) * (r->n ? (size_t)r->n : 1));
        for (int j = 0; j < r->n; j++) {
            c[j] = r->ava[j];
            if (c[j].raw_tag) /* compared as is, type included */
                c[j].oid = apr_psprintf(p, "%s#%d", c[j].oid, c[j].raw_tag);
            else
                c[j].val =
                    canon_value(r->ava[j].val, r->ava[j].vlen, &c[j].vlen, p);
        }
        qsort(c, (size_t)r->n, sizeof(ava_t), ava_cmp);
        if (i)
            append(key, ",", 1);
        for (int j = 0; j < r->n; j++) {
            if (j)
                append(key, "+", 1);
            append_ava_key(key, &c[j]);
        }
    }
    dn->ckeylen = (apr_size_t)key->nelts;
    dn->ckey = apr_pstrmemdup(p, key->elts, (apr_size_t)key->nelts);
}

static certauthz_dn_t *dn_finish(certauthz_dn_t *dn, apr_pool_t *p)
{
    apr_array_header_t *key = apr_array_make(p, 128, 1);
    apr_array_header_t *txt = apr_array_make(p, 128, 1);

    for (int i = 0; i < dn->n; i++) {
        rdn_t *r = &dn->rdn[i];
        qsort(r->ava, (size_t)r->n, sizeof(ava_t), ava_cmp);
        if (i) {
            append(key, ",", 1);
            append(txt, ",", 1);
        }
        for (int j = 0; j < r->n; j++) {
            ava_t *a = &r->ava[j];
            if (j) {
                append(key, "+", 1);
                append(txt, "+", 1);
            }
            append_ava_key(key, a);
            append(txt, a->name, strlen(a->name));
            append(txt, "=", 1);
            if (!a->raw_tag || !append_hex_value(txt, a))
                append_escaped(txt, a->val, a->vlen);
        }
    }
    dn->keylen = (apr_size_t)key->nelts;
    dn->key = apr_pstrmemdup(p, key->elts, (apr_size_t)key->nelts);
    dn->text = apr_pstrmemdup(p, txt->elts, (apr_size_t)txt->nelts);
    canon_key(dn, p);
    return dn;
}

static int descr_ok(const char *s, apr_size_t n);

/* The type a name denotes, as the parser reads it: the names above
 * case-insensitively, else OpenSSL's short and long names.  NULL if none.
 * The caller frees the object. */
static ASN1_OBJECT *type_by_name(const char *name, apr_size_t n, apr_pool_t *p)
{
    char *lower = apr_pstrmemdup(p, name, n);

    certauthz_ascii_lower(lower, n);
    for (int i = 0; attr_names[i].name; i++)
        if (!strcmp(attr_names[i].name, lower))
            return OBJ_dup(OBJ_nid2obj(attr_names[i].nid));
    return OBJ_txt2obj(apr_pstrmemdup(p, name, n), 0);
}

static void set_type(ava_t *a, const ASN1_OBJECT *obj, apr_pool_t *p)
{
    int len = OBJ_obj2txt(NULL, 0, obj, 1);
    const char *sn = OBJ_nid2sn(OBJ_obj2nid(obj));
    char *buf;

    /* the whole dotted OID, however long: a cut one could alias another */
    buf = apr_palloc(p, len > 0 ? (apr_size_t)len + 1 : 1);
    if (len <= 0 || OBJ_obj2txt(buf, len + 1, obj, 1) != len)
        buf[0] = '\0'; /* no OID text: never equal to a parsed type */
    a->oid = buf;
    /* print a short name only when it reads back as this very type (OpenSSL
     * calls uniqueIdentifier "uid", which reads as userId, and some names
     * are not RFC 4512 names at all); else the dotted OID */
    a->name = a->oid;
    if (sn && descr_ok(sn, strlen(sn))) {
        ASN1_OBJECT *back = type_by_name(sn, strlen(sn), p);
        if (back && !OBJ_cmp(back, obj))
            a->name = sn;
        ASN1_OBJECT_free(back);
    }
}

/* UTF-8 of a certificate string; NULL when not convertible. */
static const char *string_utf8(const ASN1_STRING *s, apr_size_t *len,
                               apr_pool_t *p)
{
    unsigned char *out = NULL;
    int n = ASN1_STRING_to_UTF8(&out, s);
    const char *r = NULL;

    if (n < 0)
        return NULL;
    if (certauthz_utf8_valid((const char *)out, (apr_size_t)n)) {
        r = apr_pstrmemdup(p, (const char *)out, (apr_size_t)n);
        *len = (apr_size_t)n;
    }
    OPENSSL_free(out);
    return r;
}

apr_status_t certauthz_dn_from_x509(certauthz_dn_t **pdn, const X509_NAME *name,
                                    apr_pool_t *p)
{
    int count = X509_NAME_entry_count(name);
    certauthz_dn_t *dn = apr_pcalloc(p, sizeof(*dn));
    int i, last_set = -1;

    *pdn = NULL;
    /* count RDNs: consecutive entries with the same set number */
    for (i = 0; i < count; i++) {
        int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, i));
        if (set != last_set)
            dn->n++;
        last_set = set;
    }
    dn->rdn = apr_pcalloc(p, sizeof(rdn_t) * (dn->n ? dn->n : 1));
    /* fill, reversing into most-specific-first order */
    int r = dn->n;
    last_set = -1;
    for (i = 0; i < count; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int set = X509_NAME_ENTRY_set(e);
        if (set != last_set) {
            int k = i;
            r--;
            while (k < count
                   && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, k)) == set)
                k++;
            dn->rdn[r].ava = apr_pcalloc(p, sizeof(ava_t) * (size_t)(k - i));
        }
        last_set = set;
        ava_t *a = &dn->rdn[r].ava[dn->rdn[r].n++];
        set_type(a, X509_NAME_ENTRY_get_object(e), p);
        a->val = string_utf8(X509_NAME_ENTRY_get_data(e), &a->vlen, p);
        a->raw_tag = canon_tag(ASN1_STRING_type(X509_NAME_ENTRY_get_data(e)));
        if (!a->val)
            return CERTAUTHZ_EBADINPUT;
    }
    *pdn = dn_finish(dn, p);
    return APR_SUCCESS;
}

/* ---- RFC 4514 parser ------------------------------------------------- */

typedef struct {
    const char *s, *end;
    const char **reason;
    apr_pool_t *p;
    char *out; /* unescaped values, carved one after the other */
} parser_t;

static void skip_spaces(parser_t *ps)
{
    while (ps->s < ps->end && *ps->s == ' ')
        ps->s++;
}

static int fail(parser_t *ps, const char *why)
{
    *ps->reason = why;
    return 0;
}

/* RFC 4512 numericoid: number *("." number), number = "0" / [1-9]DIGIT* */
static int numericoid_ok(const char *s, apr_size_t n)
{
    apr_size_t i = 0, arcs = 0;

    while (i < n) {
        apr_size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start || (s[start] == '0' && i - start > 1))
            return 0;
        arcs++;
        if (i < n && (s[i] != '.' || ++i == n))
            return 0;
    }
    return arcs >= 2;
}

/* RFC 4512 descr: ALPHA *(ALPHA / DIGIT / "-") */
static int descr_ok(const char *s, apr_size_t n)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (apr_size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

#define MAX_TYPE_LEN 65536

static int parse_type(parser_t *ps, ava_t *a)
{
    const char *start = ps->s;
    char *name;
    ASN1_OBJECT *obj = NULL;
    apr_size_t n;

    while (ps->s < ps->end && *ps->s != '=' && *ps->s != ' ')
        ps->s++;
    n = (apr_size_t)(ps->s - start);
    if (n == 0)
        return fail(ps, "missing attribute type in DN");
    if (n > MAX_TYPE_LEN)
        return fail(ps, "attribute type too long in DN");
    name = apr_pstrmemdup(ps->p, start, n);
    if (name[0] >= '0' && name[0] <= '9') {
        if (!numericoid_ok(name, n))
            return fail(ps, "bad numeric OID in DN");
        obj = OBJ_txt2obj(name, 1);
    }
    else if (descr_ok(name, n)) {
        obj = type_by_name(name, n, ps->p);
    }
    if (!obj) {
        *ps->reason = apr_psprintf(ps->p, "unknown attribute type '%s' in DN",
                                   certauthz_log_escape(name, ps->p));
        return 0;
    }
    set_type(a, obj, ps->p);
    ASN1_OBJECT_free(obj);
    skip_spaces(ps);
    if (ps->s >= ps->end || *ps->s != '=')
        return fail(ps, "missing '=' after attribute type in DN");
    ps->s++;
    skip_spaces(ps);
    return 1;
}

/* '#' followed by the hex of a BER-encoded string */
static int parse_hex_value(parser_t *ps, ava_t *a)
{
    const char *start = ++ps->s;
    apr_size_t n, i;
    unsigned char *der;
    const unsigned char *q;
    ASN1_TYPE *t;

    while (ps->s < ps->end && certauthz_hexval(*ps->s) >= 0)
        ps->s++;
    n = (apr_size_t)(ps->s - start);
    if (n == 0 || (n & 1))
        return fail(ps, "bad '#' hex value in DN");
    der = apr_palloc(ps->p, n / 2);
    for (i = 0; i < n / 2; i++)
        der[i] = (unsigned char)(certauthz_hexval(start[2 * i]) * 16
                                 + certauthz_hexval(start[2 * i + 1]));
    q = der;
    t = d2i_ASN1_TYPE(NULL, &q, (long)(n / 2));
    if (!t || q != der + n / 2) {
        ASN1_TYPE_free(t);
        return fail(ps, "'#' value in DN is not one BER element");
    }
    switch (t->type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_NUMERICSTRING:
    case V_ASN1_UTCTIME:
    case V_ASN1_GENERALIZEDTIME:
        a->val = string_utf8(t->value.asn1_string, &a->vlen, ps->p);
        a->raw_tag = canon_tag(t->type);
        break;
    default:
        a->val = NULL;
    }
    ASN1_TYPE_free(t);
    skip_spaces(ps);
    if (!a->val)
        return fail(ps, "'#' value in DN is not a UTF-8 convertible string");
    return 1;
}

static int parse_value(parser_t *ps, ava_t *a)
{
    char *buf, *o;
    apr_size_t keep = 0; /* length up to the last escaped/non-space byte */

    if (ps->s < ps->end && *ps->s == '#')
        return parse_hex_value(ps, a);
    o = buf = ps->out;
    while (ps->s < ps->end && *ps->s != ',' && *ps->s != '+') {
        char c = *ps->s++;
        if (c == '\\') {
            if (ps->s >= ps->end)
                return fail(ps, "DN ends inside an escape");
            if (ps->s + 1 < ps->end && certauthz_hexval(ps->s[0]) >= 0
                && certauthz_hexval(ps->s[1]) >= 0) {
                *o++ = (char)(certauthz_hexval(ps->s[0]) * 16
                              + certauthz_hexval(ps->s[1]));
                ps->s += 2;
            }
            else if (strchr("\"+,;<>\\ #=", *ps->s)) {
                *o++ = *ps->s++;
            }
            else {
                return fail(ps, "bad escape in DN value");
            }
            keep = (apr_size_t)(o - buf);
            continue;
        }
        if (c == '"' || c == ';' || c == '<' || c == '>')
            return fail(ps, apr_psprintf(ps->p,
                                         "unescaped '%c' in DN value "
                                         "(write \\%c)",
                                         c, c));
        *o++ = c;
        if (c != ' ')
            keep = (apr_size_t)(o - buf);
    }
    a->vlen = keep;
    buf[keep] = '\0';
    ps->out = buf + keep + 1;
    if (!certauthz_utf8_valid(buf, keep))
        return fail(ps, "DN value is not UTF-8 or contains NUL");
    a->val = buf;
    return 1;
}

apr_status_t certauthz_dn_parse(certauthz_dn_t **pdn, const char *text,
                                apr_size_t len, const char **reason,
                                apr_pool_t *p)
{
    /* a value never grows when unescaped; one NUL per value at most */
    parser_t ps = {text, text + len, reason, p, apr_palloc(p, 2 * len + 2)};
    apr_array_header_t *rdns = apr_array_make(p, 8, sizeof(rdn_t));
    certauthz_dn_t *dn = apr_pcalloc(p, sizeof(*dn));

    *pdn = NULL;
    skip_spaces(&ps);
    if (ps.s == ps.end) {
        dn->rdn = apr_pcalloc(p, sizeof(rdn_t));
        *pdn = dn_finish(dn, p);
        return APR_SUCCESS;
    }
    for (;;) {
        apr_array_header_t *avas = apr_array_make(p, 2, sizeof(ava_t));
        for (;;) {
            ava_t *a = apr_array_push(avas);
            skip_spaces(&ps);
            if (!parse_type(&ps, a) || !parse_value(&ps, a))
                return CERTAUTHZ_EBADINPUT;
            if (ps.s < ps.end && *ps.s != ',' && *ps.s != '+') {
                *reason = "unexpected character after a '#' value in DN";
                return CERTAUTHZ_EBADINPUT;
            }
            if (ps.s < ps.end && *ps.s == '+') {
                ps.s++;
                continue;
            }
            break;
        }
        rdn_t *r = apr_array_push(rdns);
        r->n = avas->nelts;
        r->ava = (ava_t *)avas->elts;
        if (ps.s >= ps.end)
            break;
        ps.s++; /* ',' */
        skip_spaces(&ps);
        if (ps.s >= ps.end) {
            *reason = "DN ends with ','";
            return CERTAUTHZ_EBADINPUT;
        }
    }
    dn->n = rdns->nelts;
    dn->rdn = (rdn_t *)rdns->elts;
    *pdn = dn_finish(dn, p);
    return APR_SUCCESS;
}

int certauthz_dn_equal(const certauthz_dn_t *a, const certauthz_dn_t *b)
{
    return a && b && a->keylen == b->keylen
           && !memcmp(a->key, b->key, a->keylen);
}

int certauthz_dn_same_issuer(const certauthz_dn_t *a, const certauthz_dn_t *b)
{
    return a && b && a->ckeylen == b->ckeylen
           && !memcmp(a->ckey, b->ckey, a->ckeylen);
}

const char *certauthz_dn_issuer_key(const certauthz_dn_t *dn, apr_size_t *len)
{
    *len = dn->ckeylen;
    return dn->ckey;
}

const char *certauthz_dn_key(const certauthz_dn_t *dn, apr_size_t *len)
{
    *len = dn->keylen;
    return dn->key;
}

const char *certauthz_dn_text(const certauthz_dn_t *dn)
{
    return dn->text;
}

int certauthz_dn_count(const certauthz_dn_t *dn)
{
    return dn->n;
}

const char *certauthz_dn_first_value(const certauthz_dn_t *dn, int *nattrs)
{
    if (!dn->rdn || dn->n < 1 || dn->rdn[0].n < 1)
        return NULL;
    *nattrs = dn->rdn[0].n;
    return dn->rdn[0].ava[0].val;
}

const certauthz_dn_t *certauthz_dn_copy(const certauthz_dn_t *dn, apr_pool_t *p)
{
    apr_size_t tlen = strlen(dn->text);
    certauthz_dn_t *c =
        apr_palloc(p, sizeof(*c) + dn->keylen + dn->ckeylen + tlen + 3);
    char *o = (char *)(c + 1);

    c->n = dn->n;
    c->rdn = NULL;
    c->keylen = dn->keylen;
    c->key = memcpy(o, dn->key, dn->keylen);
    o[dn->keylen] = '\0';
    o += dn->keylen + 1;
    c->ckeylen = dn->ckeylen;
    c->ckey = memcpy(o, dn->ckey, dn->ckeylen);
    o[dn->ckeylen] = '\0';
    o += dn->ckeylen + 1;
    c->text = memcpy(o, dn->text, tlen + 1);
    return c;
}
