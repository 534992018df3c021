/*
 * fuzz_facts.c -- fuzz target of fact extraction from X.509 certificates.
 *
 * Input: a DER certificate (or PEM text, read with certauthz_x509_read,
 * when d2i_X509 rejects the input).  When d2i_X509 accepts it,
 * certauthz_facts_from_x509() must succeed and give facts that keep the
 * hardening rules of SPEC section 1:
 *   - every string fact (text and key) is valid UTF-8 without NUL;
 *   - a cn fact only when the subject has exactly one CN (cn_count == 1),
 *     and at most one; serial, sha256, spki exactly one each, canonical;
 *   - keys of case-folding types (email, dns, upn) are lower case, keys of
 *     the others equal the text; ip text is canonical;
 *   - the dn fact exists exactly when the subject is representable, and the
 *     subject's (and issuer's) RFC 4514 text parses back to an equal DN;
 *   - every value can be written as an exact selector that matches it.
 * The facts are then resolved against a fixed map (exact, glob and regex
 * rules of every type, $N substitutions, deny rules, issuer sections) and
 * cross-checked with certauthz_map_each_match().
 */
#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certauthz_altsec.h"
#include "certauthz_ldap.h"
#include "fuzz_common.h"

static apr_pool_t *gpool;
static certauthz_map_t *fixed_map;
static unsigned fixed_lines;

static const char fixed_map_text[] =
    "# fixed map of fuzz_facts.c\n"
    "deny serial:4F2A9C01\n"
    "deny cn:revoked\n"
    "deny dns:*.evil.example\n"
    "deny uri~^javascript:\n"
    "cn:alice alice staff,admins\n"
    "email:alice@example.com alice2\n"
    "dns:*.build.example.com ci-robot robots\n"
    "uri:spiffe://example.org/ns/prod/sa/api api-prod services\n"
    "upn:carol@corp.example.com carol\n"
    "ip:2001:db8::1 v6host\n"
    "ip:192.0.2.* v4net\n"
    "serial:01 serial-one\n"
    "serial:*FF* serial-ff\n"
    "dn:\"CN=Dave Smith,OU=Ops,O=Example\" dave ops\n"
    "dn~^CN=([^,+]*) dn-$1 \"from-dn, $1\"\n"
    "cn~^svc-([a-z0-9-]+)$ svc-$1 services\n"
    "cn~^(.*)$ cn-$1 g$1\n"
    "email~^([^@]*)@(.*)$ $1 $2,mail\n"
    "dns~(.+) host-$1\n"
    "upn~^(.+)@ upn-$1\n"
    "uri~^(?:[a-z]+)://([^/]*)/(.*)$ $1 $2\n"
    "ip~^(.*)$ ip-$1\n"
    "serial~^(.)(.)(.)?(.)? s$1$2$3$4 $4\n"
    "sha256~^(.{8}) h-$1\n"
    "spki~^(.{6}) k-$1\n"
    "[issuer \"CN=Partner CA,O=Partner Inc\"]\n"
    "deny serial:0A\n"
    "cn~^(.+)$ partner-$1 partners\n"
    "[issuer \"CN=certgen\"]\n"
    "deny email:*@blocked.example\n"
    "cn:certgen selfsigned\n"
    "[any-issuer]\n"
    "dn:\" \" empty-subject\n";

/* The fixed map lives for the whole process; destroy it before the leak
 * check that runs at exit (APR's pool blocks are not scanned for pointers,
 * so its PCRE2 code would look leaked). */
static void destroy_gpool(void)
{
    apr_pool_destroy(gpool);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_array_header_t *errs;

    (void)argc;
    (void)argv;
    fuzz_init();
    if (apr_pool_create(&gpool, NULL) != APR_SUCCESS)
        abort();
    atexit(destroy_gpool);
    fixed_lines = count_lines(fixed_map_text, sizeof(fixed_map_text) - 1);
    if (certauthz_map_parse(&fixed_map, "fixed.map", fixed_map_text,
                            sizeof(fixed_map_text) - 1, &errs, gpool)
        != APR_SUCCESS) {
        for (int i = 0; i < errs->nelts; i++) {
            certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
            fprintf(stderr, "fixed.map:%u: %s\n", e->line, e->reason);
        }
        abort();
    }
    return 0;
}

static int is_upper_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'F')))
            return 0;
    return 1;
}

static void check_value(certauthz_type_e t, const certauthz_value_t *v,
                        const certauthz_facts_t *f, apr_pool_t *p)
{
    const char *name = certauthz_type_name(t);

    CHECK(v->text && v->key, "%s fact without text or key", name);
    size_t tlen = strlen(v->text);
    CHECK(certauthz_utf8_valid(v->text, tlen), "%s fact text not UTF-8: %s",
          name, show(v->text, tlen, p));

    switch (t) {
    case CERTAUTHZ_DN:
        CHECK(f->subject != NULL, "dn fact without a subject");
        CHECK(!strcmp(v->text, certauthz_dn_text(f->subject)),
              "dn fact text is not the subject's text");
        {
            apr_size_t klen;
            const char *key = certauthz_dn_key(f->subject, &klen);
            CHECK(klen == v->key_len && !memcmp(key, v->key, klen),
                  "dn fact key is not the subject's key");
        }
        break;
    case CERTAUTHZ_EMAIL:
    case CERTAUTHZ_DNS:
    case CERTAUTHZ_UPN:
        CHECK(v->key_len == tlen && strlen(v->key) == tlen,
              "%s key length %zu, text length %zu", name, (size_t)v->key_len,
              tlen);
        CHECK(!has_upper(v->key, v->key_len), "%s key not lower case: %s", name,
              show(v->key, v->key_len, p));
        {
            char *low = certauthz_pstrndup_fold(v->text, tlen, 1, p);
            CHECK(!memcmp(low, v->key, tlen), "%s key is not the folded text",
                  name);
        }
        break;
    case CERTAUTHZ_ALTSEC: {
        /* the key is the text read back as a map value; no control
         * character in either (AD's forms cannot hold one) */
        const char *why = NULL;
        const char *k = certauthz_altsec_normalize(v->text, tlen, &why, p);
        CHECK(k && strlen(k) == v->key_len && !memcmp(k, v->key, v->key_len),
              "altsec key is not its text read back: %s / %s (%s)",
              show(v->text, tlen, p), show(v->key, v->key_len, p),
              why ? why : "");
        for (size_t i = 0; i < tlen; i++)
            CHECK((unsigned char)v->text[i] >= 0x20 && v->text[i] != 0x7F,
                  "altsec text with a control character: %s",
                  show(v->text, tlen, p));
        CHECK(certauthz_altsec_form(v->text) >= 0, "altsec text of no form: %s",
              show(v->text, tlen, p));
        break;
    }
    default:
        CHECK(v->key_len == tlen && !memcmp(v->key, v->text, tlen),
              "%s key differs from its text: %s / %s", name,
              show(v->text, tlen, p), show(v->key, v->key_len, p));
        break;
    }

    switch (t) {
    case CERTAUTHZ_IP: {
        const char *canon = certauthz_ip_normalize(v->text, tlen, p);
        CHECK(canon && !strcmp(canon, v->text), "ip fact not canonical: %s",
              show(v->text, tlen, p));
        break;
    }
    case CERTAUTHZ_SERIAL: {
        const char *d = v->text + (v->text[0] == '-');
        CHECK(*d && is_upper_hex(d) && (d[0] != '0' || !d[1]),
              "serial fact not canonical: %s", show(v->text, tlen, p));
        break;
    }
    case CERTAUTHZ_SHA256:
        CHECK(tlen == 64 && is_upper_hex(v->text), "sha256 fact: %s",
              show(v->text, tlen, p));
        break;
    case CERTAUTHZ_SPKI: {
        const char *why;
        CHECK(certauthz_spki_normalize(v->text, tlen, &why, p),
              "spki fact rejected as a selector value: %s", v->text);
        break;
    }
    default:
        break;
    }

    /* the value written as an exact selector matches it */
    if (tlen > 0) {
        certauthz_selector_t sel;
        const char *why = NULL;
        apr_status_t rv =
            certauthz_selector_make(&sel, t, v->text, tlen, &why, p);
        const char *issue =
            t == CERTAUTHZ_DN ? dn_text_known_issue(v->text) : NULL;
        if (issue
            && (rv != APR_SUCCESS
                || certauthz_selector_match_value(&sel, v, NULL) != 1)) {
            KNOWN(0, issue, "dn fact %s cannot be written as a dn: selector",
                  show(v->text, tlen, p));
            return;
        }
        CHECK(rv == APR_SUCCESS, "%s fact %s is not a selector value: %s", name,
              show(v->text, tlen, p), why ? why : "");
        CHECK(certauthz_selector_match_value(&sel, v, NULL) == 1,
              "%s fact %s does not match its own selector", name,
              show(v->text, tlen, p));
    }
}

/* The DN text names every attribute type of the certificate name, by a
 * short name or by its whole dotted OID (found: DN-OID-ALIAS, OIDs of 128+
 * characters were all printed and keyed as "0.0" before 38de522). */
static void check_dn_types(const certauthz_dn_t *dn, const X509_NAME *name,
                           const char *what, apr_pool_t *p)
{
    const char *text = certauthz_dn_text(dn);

    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const ASN1_OBJECT *o =
            X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, i));
        int nid = OBJ_obj2nid(o);
        int n = OBJ_obj2txt(NULL, 0, o, 1);
        if (n <= 0)
            continue;
        char *oid = apr_palloc(p, (apr_size_t)n + 2);
        OBJ_obj2txt(oid, n + 1, o, 1);
        const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        /* at the start or after ',' or '+', followed by '=' */
        int found = 0;
        for (int k = 0; k < 2 && !found; k++) {
            const char *want = k ? sn : oid;
            size_t wl = want ? strlen(want) : 0;
            for (const char *h = want ? strstr(text, want) : NULL; h && !found;
                 h = strstr(h + 1, want))
                found =
                    (h == text || h[-1] == ',' || h[-1] == '+') && h[wl] == '=';
        }
        CHECK(found, "%s text does not show attribute type %s: %s", what,
              show(oid, strlen(oid), p), show(text, strlen(text), p));
    }
}

/* 1 when the name has a value whose type OpenSSL's name canonicalisation
 * leaves as it is (x509_name_canon folds only UTF8String, BMPString,
 * UniversalString, PrintableString, T61String, IA5String, VisibleString;
 * a NumericString, say, is compared with its type and bytes). */
static int names_outside_canon(const X509_NAME *name)
{
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const ASN1_STRING *v =
            X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        switch (ASN1_STRING_type(v)) {
        case V_ASN1_UTF8STRING:
        case V_ASN1_BMPSTRING:
        case V_ASN1_UNIVERSALSTRING:
        case V_ASN1_PRINTABLESTRING:
        case V_ASN1_T61STRING:
        case V_ASN1_IA5STRING:
        case V_ASN1_VISIBLESTRING:
            break;
        default:
            return 1;
        }
    }
    return 0;
}

/* A directory filter made from every fact of the certificate (and its
 * DER) keeps the template's structure: the escaped values hold no '(',
 * ')', '*', NUL or control byte and no '\\' that does not start a \\HH
 * pair, so no certificate can widen or rewrite a search. */
static void check_ldap_filter(const certauthz_facts_t *f, const uint8_t *der,
                              size_t der_len, apr_pool_t *p)
{
    static certauthz_ldap_template_t *t;
    const char *why = NULL, *missing = NULL, *text = "(&";

    for (int ty = 0; ty < CERTAUTHZ_NTYPES; ty++)
        text = apr_psprintf(p, "%s(%s={%s})", text, certauthz_type_name(ty),
                            certauthz_type_name(ty));
    text =
        apr_pstrcat(p, text, "(a={altsec_issuer_serial})(c={cert_der}))", NULL);
    t = NULL;
    CHECK(certauthz_ldap_template_parse(&t, text, &why, p) == APR_SUCCESS,
          "template refused: %s", why ? why : "-");
    for (int ty = 0; ty < CERTAUTHZ_NTYPES; ty++) {
        const certauthz_values_t *v = &f->of[ty];
        const char *one, *val;
        certauthz_ldap_template_t *t1 = NULL;
        if (!v->n)
            continue;
        one = apr_psprintf(p, "(x={%s})", certauthz_type_name(ty));
        CHECK(certauthz_ldap_template_parse(&t1, one, &why, p) == APR_SUCCESS,
              "template %s refused", one);
        val = certauthz_ldap_filter(t1, f, NULL, 0, &missing, p);
        if (!*v->v[0].text) {
            CHECK(!val, "an empty %s gave a filter", certauthz_type_name(ty));
            continue;
        }
        CHECK(val && !strncmp(val, "(x=", 3), "no filter for %s",
              certauthz_type_name(ty));
        size_t n = strlen(val);
        CHECK(val[n - 1] == ')', "filter of %s does not end with ')'",
              certauthz_type_name(ty));
        for (size_t k = 3; k + 1 < n; k++) {
            unsigned char c = (unsigned char)val[k];
            CHECK(c != '(' && c != ')' && c != '*' && c >= 0x20 && c != 0x7f,
                  "byte 0x%02x unescaped in the %s filter: %s", c,
                  certauthz_type_name(ty), show(val, n, p));
            if (c == '\\') {
                CHECK(k + 3 < n && isxdigit((unsigned char)val[k + 1])
                          && isxdigit((unsigned char)val[k + 2]),
                      "'\\' not followed by HH in the %s filter",
                      certauthz_type_name(ty));
                k += 2;
            }
        }
    }
    /* the whole template: with the DER, or missing a fact */

    {
        const char *all =
            certauthz_ldap_filter(t, f, der, der_len, &missing, p);
        if (all) {
            int depth = 0, max = 0;
            for (const char *c = all; *c; c++) {
                if (*c == '(' && ++depth > max)
                    max = depth;
                else if (*c == ')')
                    depth--;
                CHECK(depth >= 0, "filter closes more than it opens");
            }
            CHECK(depth == 0 && max == 2, "filter depth %d/%d: %s", depth, max,
                  show(all, strlen(all), p));
        }
        else {
            CHECK(missing != NULL, "no filter and nothing missing");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *q = data;
    X509 *x;
    apr_pool_t *p;
    certauthz_facts_t *f = NULL;
    apr_status_t rv;

    if (size > 0x7fffffff)
        return 0;
    x = d2i_X509(NULL, &q, (long)size);
    if (!x) {
        /* PEM text: certauthz_x509_read (the certauthz tool's reader) */
        if (!memmem(data, size, "-----BEGIN", 10)
            || certauthz_x509_read(&x, (const char *)data, size)
                   != APR_SUCCESS) {
            ERR_clear_error();
            return 0;
        }
        CHECK(x != NULL, "certauthz_x509_read succeeded without a cert");
        q = NULL; /* no DER bytes to hash */
    }
    p = input_pool();
    rv = certauthz_facts_from_x509(&f, x, p);
    CHECK(rv == APR_SUCCESS,
          "certauthz_facts_from_x509 failed (status %d) on a certificate "
          "d2i_X509 accepts",
          rv);
    if (rv == APR_SUCCESS) {
        CHECK(f != NULL, "success without facts");
        CHECK(f->of[CERTAUTHZ_CN].n <= 1, "%d cn facts", f->of[CERTAUTHZ_CN].n);
        CHECK(f->of[CERTAUTHZ_CN].n == 0 || f->cn_count == 1,
              "cn fact although the subject has %d CNs", f->cn_count);
        CHECK(f->of[CERTAUTHZ_DN].n == (f->subject != NULL),
              "%d dn facts, subject %s", f->of[CERTAUTHZ_DN].n,
              f->subject ? "present" : "absent");
        CHECK(f->of[CERTAUTHZ_SERIAL].n == 1 && f->of[CERTAUTHZ_SHA256].n == 1
                  && f->of[CERTAUTHZ_SPKI].n == 1,
              "serial/sha256/spki counts %d/%d/%d", f->of[CERTAUTHZ_SERIAL].n,
              f->of[CERTAUTHZ_SHA256].n, f->of[CERTAUTHZ_SPKI].n);
        CHECK(f->cn_count >= 0 && f->dropped >= 0, "negative counters");
        if (f->cn_count == 1 && f->of[CERTAUTHZ_CN].n == 0)
            CHECK(f->dropped > 0, "single CN neither a fact nor dropped");
        if (!f->subject || !f->issuer)
            CHECK(f->dropped > 0, "DN not representable but nothing dropped");
        CHECK(f->not_before && f->not_after, "no validity text");

        for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
            CHECK(f->of[t].n >= 0 && (f->of[t].n == 0 || f->of[t].v),
                  "bad value array of type %d", t);
            for (int i = 0; i < f->of[t].n; i++)
                check_value((certauthz_type_e)t, &f->of[t].v[i], f, p);
        }
        /* [issuer] sections and Require cert-issuer compare issuers the
         * way OpenSSL matches a certificate's issuer to its CA's subject:
         * differential against X509_NAME_cmp on the two names of the
         * certificate (the same for self-issued ones) */
        if (f->subject && f->issuer) {
            int ossl =
                X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x))
                == 0;
            int ours = certauthz_dn_same_issuer(f->subject, f->issuer);
            int outside = names_outside_canon(X509_get_subject_name(x))
                          || names_outside_canon(X509_get_issuer_name(x));
            /* (found: ISSUER-CANON-TYPES, NumericString values were folded
             * before adf1476) */
            CHECK(ossl == ours,
                  "X509_NAME_cmp says %s, certauthz_dn_same_issuer says %s"
                  "\n  subject: %s\n  issuer:  %s",
                  ossl ? "same" : "different", ours ? "same" : "different",
                  certauthz_dn_text(f->subject), certauthz_dn_text(f->issuer));
            /* exact equality compares UTF-8 values whatever their ASN.1
             * type; for the types OpenSSL folds it implies the issuer
             * relation (a NumericString "1" equals a UTF8String "1" but is
             * not the same issuer) */
            if (certauthz_dn_equal(f->subject, f->issuer) && !outside)
                CHECK(ours, "equal DNs but not the same issuer");
        }
        check_ldap_filter(f, data, q ? size : 0, p);
        if (f->subject) {
            check_dn_roundtrip(f->subject, "subject DN", p);
            check_dn_types(f->subject, X509_get_subject_name(x), "subject DN",
                           p);
        }
        if (f->issuer) {
            check_dn_roundtrip(f->issuer, "issuer DN", p);
            check_dn_types(f->issuer, X509_get_issuer_name(x), "issuer DN", p);
        }

        /* sha256 is the SHA-256 of the DER certificate: for a DER input
         * the bytes sent; for a BER input (accepted by d2i_X509) OpenSSL's
         * DER re-encoding, as `openssl x509 -fingerprint -sha256` gives it
         * (decided; was finding SHA256-REENCODED) */
        {
            unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
            unsigned int mdlen = 0;
            int dlen = i2d_X509(x, &der);
            if (dlen > 0
                && EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(),
                              NULL)) {
                const char *hex = certauthz_hex_upper(md, mdlen, p);
                CHECK(!strcmp(hex, f->of[CERTAUTHZ_SHA256].v[0].text),
                      "sha256 fact %s is not SHA-256 of the DER encoding "
                      "(%s)",
                      f->of[CERTAUTHZ_SHA256].v[0].text, hex);
            }
            OPENSSL_free(der);
        }

        check_resolution(fixed_map, f, fixed_lines, apr_hash_make(p), p);
    }

    X509_free(x);
    input_done(p);
    return 0;
}
