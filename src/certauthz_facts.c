/*
 * certauthz_facts.c -- where facts are extracted from a certificate
 * (SPEC section 1).  Only length-aware OpenSSL accessors are used; a value
 * with a NUL byte or that is not UTF-8 is dropped, never truncated.
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certauthz_altsec.h"
#include "certauthz_facts.h"
#include "certauthz_util.h"

#define UPN_OID "1.3.6.1.4.1.311.20.2.3"

typedef struct {
    apr_array_header_t *arr[CERTAUTHZ_NTYPES];
    certauthz_facts_t *f;
    apr_pool_t *p;
} builder_t;

/* Record a value of a string type.  text is len bytes; dropped (and
 * counted) when it has a NUL or is not UTF-8. */
static void add_value(builder_t *b, certauthz_type_e type, const char *text,
                      apr_size_t len)
{
    certauthz_value_t *v;

    if (!text || !certauthz_utf8_valid(text, len)) {
        b->f->dropped++;
        return;
    }
    v = apr_array_push(b->arr[type]);
    v->text = apr_pstrmemdup(b->p, text, len);
    v->key = certauthz_type_folds_case(type)
                 ? certauthz_pstrndup_fold(text, len, 1, b->p)
                 : v->text;
    v->key_len = len;
}

/* Record a value that is already canonical text. */
static void add_canonical(builder_t *b, certauthz_type_e type, const char *s)
{
    certauthz_value_t *v = apr_array_push(b->arr[type]);
    v->text = v->key = s;
    v->key_len = strlen(s);
}

static void add_asn1(builder_t *b, certauthz_type_e type, const ASN1_STRING *s)
{
    if (!s) {
        b->f->dropped++;
        return;
    }
    add_value(b, type, (const char *)ASN1_STRING_get0_data(s),
              (apr_size_t)ASN1_STRING_length(s));
}

static void extract_subject(builder_t *b, const X509_NAME *name)
{
    int i, n = X509_NAME_entry_count(name);
    const ASN1_STRING *cn = NULL;

    for (i = 0; i < n; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) == NID_commonName) {
            b->f->cn_count++;
            cn = X509_NAME_ENTRY_get_data(e);
        }
    }
    if (b->f->cn_count == 1) {
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, cn);
        if (len >= 0)
            add_value(b, CERTAUTHZ_CN, (const char *)utf8, (apr_size_t)len);
        else
            b->f->dropped++;
        OPENSSL_free(utf8);
    }
    if (certauthz_dn_from_x509((certauthz_dn_t **)&b->f->subject, name, b->p)
        == APR_SUCCESS) {
        apr_size_t klen;
        certauthz_value_t *v = apr_array_push(b->arr[CERTAUTHZ_DN]);
        v->text = certauthz_dn_text(b->f->subject);
        v->key = certauthz_dn_key(b->f->subject, &klen);
        v->key_len = klen;
    }
    else {
        b->f->dropped++;
    }
}

static void extract_upn(builder_t *b, const OTHERNAME *on)
{
    char oid[64];

    if (OBJ_obj2txt(oid, sizeof(oid), on->type_id, 1) <= 0
        || strcmp(oid, UPN_OID))
        return; /* another otherName: not a fact */
    if (!on->value || on->value->type != V_ASN1_UTF8STRING) {
        b->f->dropped++;
        return;
    }
    add_asn1(b, CERTAUTHZ_UPN, on->value->value.utf8string);
}

static void extract_san(builder_t *b, X509 *x)
{
    int crit = -1;
    GENERAL_NAMES *gens =
        X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    int i;

    if (!gens) {
        if (crit == -2)
            b->f->dropped++; /* several SAN extensions: trust none */
        return;
    }
    for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        switch (g->type) {
        case GEN_EMAIL:
            add_asn1(b, CERTAUTHZ_EMAIL, g->d.rfc822Name);
            break;
        case GEN_DNS:
            add_asn1(b, CERTAUTHZ_DNS, g->d.dNSName);
            break;
        case GEN_URI:
            add_asn1(b, CERTAUTHZ_URI, g->d.uniformResourceIdentifier);
            break;
        case GEN_OTHERNAME:
            extract_upn(b, g->d.otherName);
            break;
        case GEN_IPADD: {
            const ASN1_OCTET_STRING *ip = g->d.iPAddress;
            const char *t =
                ip ? certauthz_ip_text(ASN1_STRING_get0_data(ip),
                                       (apr_size_t)ASN1_STRING_length(ip), b->p)
                   : NULL;
            if (t)
                add_canonical(b, CERTAUTHZ_IP, t);
            else
                b->f->dropped++;
            break;
        }
        default:
            break;
        }
    }
    GENERAL_NAMES_free(gens);
}

static apr_status_t extract_serial(builder_t *b, X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex;
    const char *s;

    if (!bn)
        return APR_ENOMEM;
    hex = BN_bn2hex(bn); /* upper case, "0" for zero, "-" when negative */
    BN_free(bn);
    if (!hex)
        return APR_ENOMEM;
    s = hex;
    if (*s == '-') {
        s++;
        while (s[0] == '0' && s[1])
            s++;
        add_canonical(b, CERTAUTHZ_SERIAL, apr_pstrcat(b->p, "-", s, NULL));
    }
    else {
        while (s[0] == '0' && s[1])
            s++;
        add_canonical(b, CERTAUTHZ_SERIAL, apr_pstrdup(b->p, s));
    }
    OPENSSL_free(hex);
    return APR_SUCCESS;
}

static apr_status_t extract_digests(builder_t *b, X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mdlen = 0;
    int len;

    if (!X509_digest(x, EVP_sha256(), md, &mdlen))
        return APR_EGENERAL;
    add_canonical(b, CERTAUTHZ_SHA256, certauthz_hex_upper(md, mdlen, b->p));

    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (len <= 0)
        return APR_EGENERAL;
    if (!EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL)) {
        OPENSSL_free(der);
        return APR_EGENERAL;
    }
    OPENSSL_free(der);
    add_canonical(b, CERTAUTHZ_SPKI, certauthz_base64(md, mdlen, b->p));
    return APR_SUCCESS;
}

/* An extension of x, decoded; NULL when it is absent, and when it is there
 * but unusable (more than one of it, which RFC 5280 forbids, or not
 * decodable as its type): then counted as dropped. */
static void *get_ext(builder_t *b, X509 *x, int nid)
{
    int crit = -1;
    void *v = X509_get_ext_d2i(x, nid, &crit, NULL);

    if (!v && crit != -1)
        b->f->dropped++;
    return v;
}

/* Most bytes of a subjectKeyIdentifier taken (RFC 5280's are 20). */
#define MAX_SKI 256

static void add_oid(builder_t *b, certauthz_type_e type, const ASN1_OBJECT *o)
{
    char buf[CERTAUTHZ_MAX_OID + 1];
    int n = o ? OBJ_obj2txt(buf, sizeof(buf), o, 1) : -1;

    if (n <= 0 || n > CERTAUTHZ_MAX_OID) {
        b->f->dropped++;
        return;
    }
    add_canonical(b, type, apr_pstrmemdup(b->p, buf, (apr_size_t)n));
}

/* eku, ku, policy, ski: each value in the certificate's order (ku in bit
 * order), OIDs dotted, the SKI in upper-case hex. */
static void extract_extensions(builder_t *b, X509 *x)
{
    EXTENDED_KEY_USAGE *eku = get_ext(b, x, NID_ext_key_usage);
    ASN1_BIT_STRING *ku = get_ext(b, x, NID_key_usage);
    CERTIFICATEPOLICIES *cp = get_ext(b, x, NID_certificate_policies);
    ASN1_OCTET_STRING *ski = get_ext(b, x, NID_subject_key_identifier);

    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++)
        add_oid(b, CERTAUTHZ_EKU, sk_ASN1_OBJECT_value(eku, i));
    for (int bit = 0; ku && bit < CERTAUTHZ_KU_BITS; bit++)
        if (ASN1_BIT_STRING_get_bit(ku, bit))
            add_canonical(b, CERTAUTHZ_KU, certauthz_ku_names[bit]);
    for (int i = 0; cp && i < sk_POLICYINFO_num(cp); i++) {
        const POLICYINFO *pi = sk_POLICYINFO_value(cp, i);
        add_oid(b, CERTAUTHZ_POLICY, pi ? pi->policyid : NULL);
    }
    if (ski) {
        int n = ASN1_STRING_length(ski);
        if (n <= 0 || n > MAX_SKI)
            b->f->dropped++;
        else
            add_canonical(b, CERTAUTHZ_SKI,
                          certauthz_hex_upper(ASN1_STRING_get0_data(ski),
                                              (apr_size_t)n, b->p));
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    ASN1_BIT_STRING_free(ku);
    sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
    ASN1_OCTET_STRING_free(ski);
}

#define NTDS_SECURITY_EXT "1.3.6.1.4.1.311.25.2"
#define NTDS_OBJECTSID "1.3.6.1.4.1.311.25.2.1"

static void add_sid(builder_t *b, const char *text, apr_size_t len)
{
    const char *why, *sid = certauthz_sid_normalize(text, len, &why, b->p);
    if (sid)
        add_canonical(b, CERTAUTHZ_SID, sid);
    else
        b->f->dropped++;
}

/* sid: the objectSid of Microsoft's NTDS CA security extension (an
 * otherName 1.3.6.1.4.1.311.25.2.1 holding the SID's text in an OCTET
 * STRING, KB5014754), then each SAN URI tag:microsoft.com,2022-09-14:sid:
 * (already among the uri values).  An extension present twice, or one that
 * does not decode, gives no SID from it. */
static void extract_sid(builder_t *b, X509 *x)
{
    ASN1_OBJECT *ext_oid = OBJ_txt2obj(NTDS_SECURITY_EXT, 1);
    ASN1_OBJECT *sid_oid = OBJ_txt2obj(NTDS_OBJECTSID, 1);
    int at = ext_oid ? X509_get_ext_by_OBJ(x, ext_oid, -1) : -1;
    const apr_array_header_t *uris = b->arr[CERTAUTHZ_URI];
    apr_size_t plen = strlen(CERTAUTHZ_SID_URI_PREFIX);

    if (at >= 0 && X509_get_ext_by_OBJ(x, ext_oid, at) >= 0) {
        b->f->dropped++; /* twice */
    }
    else if (at >= 0 && sid_oid) {
        const ASN1_OCTET_STRING *v =
            X509_EXTENSION_get_data(X509_get_ext(x, at));
        const unsigned char *q = ASN1_STRING_get0_data(v);
        GENERAL_NAMES *gens =
            d2i_GENERAL_NAMES(NULL, &q, ASN1_STRING_length(v));
        int found = 0;
        for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
            const OTHERNAME *on =
                g->type == GEN_OTHERNAME ? g->d.otherName : NULL;
            if (!on || OBJ_cmp(on->type_id, sid_oid))
                continue;
            found = 1;
            if (on->value && on->value->type == V_ASN1_OCTET_STRING)
                add_sid(b,
                        (const char *)ASN1_STRING_get0_data(
                            on->value->value.octet_string),
                        (apr_size_t)ASN1_STRING_length(
                            on->value->value.octet_string));
            else
                b->f->dropped++;
        }
        if (!gens || !found)
            b->f->dropped++;
        GENERAL_NAMES_free(gens);
    }
    for (int i = 0; i < uris->nelts; i++) {
        const certauthz_value_t *u = &APR_ARRAY_IDX(uris, i, certauthz_value_t);
        if (u->key_len > plen
            && !strncasecmp(u->text, CERTAUTHZ_SID_URI_PREFIX, plen))
            add_sid(b, u->text + plen, u->key_len - plen);
    }
    ASN1_OBJECT_free(ext_oid);
    ASN1_OBJECT_free(sid_oid);
}

/* altsec: Active Directory's mapping forms (certauthz_altsec.h), from the
 * names, serial, ski fact and digests. */
static void extract_altsec(builder_t *b, X509 *x)
{
    certauthz_altsec_t forms[CERTAUTHZ_ALTSEC_MAX];
    const apr_array_header_t *ski = b->arr[CERTAUTHZ_SKI];
    int n = certauthz_altsec_of_x509(
        x, ski->nelts ? APR_ARRAY_IDX(ski, 0, certauthz_value_t).text : NULL,
        forms, &b->f->dropped, b->p);

    for (int i = 0; i < n; i++) {
        certauthz_value_t *v = apr_array_push(b->arr[CERTAUTHZ_ALTSEC]);
        v->text = forms[i].text;
        v->key = forms[i].key;
        v->key_len = strlen(forms[i].key);
    }
}

static const char *time_text(const ASN1_TIME *t, apr_pool_t *p)
{
    struct tm tm;
    char buf[32];

    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return "?";
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrdup(p, buf);
}

apr_status_t certauthz_facts_from_x509(certauthz_facts_t **pfacts, X509 *x,
                                       apr_pool_t *p)
{
    builder_t b;
    const X509_NAME *issuer;
    apr_status_t rv;
    int t;

    b.p = p;
    b.f = apr_pcalloc(p, sizeof(*b.f));
    for (t = 0; t < CERTAUTHZ_NTYPES; t++)
        b.arr[t] = apr_array_make(p, 1, sizeof(certauthz_value_t));

    extract_subject(&b, X509_get_subject_name(x));
    extract_san(&b, x);
    extract_extensions(&b, x);
    extract_sid(&b, x);
    extract_altsec(&b, x);
    if ((rv = extract_serial(&b, x)) != APR_SUCCESS
        || (rv = extract_digests(&b, x)) != APR_SUCCESS)
        return rv;

    issuer = X509_get_issuer_name(x);
    if (certauthz_dn_from_x509((certauthz_dn_t **)&b.f->issuer, issuer, p)
        != APR_SUCCESS)
        b.f->dropped++;
    b.f->not_before = time_text(X509_get0_notBefore(x), p);
    b.f->not_after = time_text(X509_get0_notAfter(x), p);

    for (t = 0; t < CERTAUTHZ_NTYPES; t++) {
        b.f->of[t].n = b.arr[t]->nelts;
        b.f->of[t].v = (const certauthz_value_t *)b.arr[t]->elts;
    }
    *pfacts = b.f;
    return APR_SUCCESS;
}

apr_status_t certauthz_x509_read(X509 **px, const char *buf, apr_size_t len)
{
    BIO *bio;
    X509 *x = NULL;
    const unsigned char *q = (const unsigned char *)buf;

    *px = NULL;
    if (len > 0x7fffffff)
        return CERTAUTHZ_EBADINPUT;
    if (len >= 11 && memmem(buf, len, "-----BEGIN", 10)) {
        bio = BIO_new_mem_buf(buf, (int)len);
        if (!bio)
            return APR_ENOMEM;
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    else {
        x = d2i_X509(NULL, &q, (long)len);
    }
    if (!x)
        return CERTAUTHZ_EBADINPUT;
    *px = x;
    return APR_SUCCESS;
}
