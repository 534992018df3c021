/*
 * certauthz_match.c -- where a selector is compiled and matched against a
 * fact: exact comparison, globs (with the dns dot rule) and PCRE2 regexes.
 */
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <apr_strings.h>

#include "certauthz_match.h"
#include "certauthz_altsec.h"
#include "certauthz_util.h"

/* Bounds for one regex match against a certificate value: a hostile value
 * cannot make a map's regex backtrack for long. */
#define REGEX_MATCH_LIMIT 100000
#define REGEX_DEPTH_LIMIT 10000

typedef struct {
    pcre2_code *code;
    pcre2_match_context *mctx;
} regex_t_;

static apr_status_t regex_cleanup(void *data)
{
    regex_t_ *re = data;
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    return APR_SUCCESS;
}

static apr_status_t compile_regex(certauthz_selector_t *sel, const char *src,
                                  apr_size_t len, const char **reason,
                                  apr_pool_t *p)
{
    int err;
    PCRE2_SIZE off;
    uint32_t caps = 0;
    regex_t_ *re;

    if (len == 0) {
        *reason = "empty regex";
        return CERTAUTHZ_EBADINPUT;
    }
    re = apr_pcalloc(p, sizeof(*re));
    re->code =
        pcre2_compile((PCRE2_SPTR)src, len, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY,
                      &err, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        *reason = apr_psprintf(p, "bad regex: %s at offset %lu", (char *)msg,
                               (unsigned long)off);
        return CERTAUTHZ_EBADINPUT;
    }
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->mctx) {
        pcre2_code_free(re->code);
        return APR_ENOMEM;
    }
    pcre2_set_match_limit(re->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, REGEX_DEPTH_LIMIT);
    apr_pool_cleanup_register(p, re, regex_cleanup, apr_pool_cleanup_null);
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* optional */
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &caps);
    sel->kind = CERTAUTHZ_SEL_REGEX;
    sel->ngroups = (unsigned short)(caps > 65535 ? 65535 : caps);
    sel->value = apr_pstrmemdup(p, src, len);
    sel->len = len;
    sel->u.re = re;
    return APR_SUCCESS;
}

/* The normalisers: one per way a selector value is written (the last
 * column of CERTAUTHZ_TYPES).  Each turns value[0..len) into the comparison
 * key *v (for a glob, the normalised pattern); *glob says whether the value
 * holds '*' and is cleared where the type takes exact values only.  A
 * normaliser that fills sel itself (dn) leaves *v NULL. */
typedef apr_status_t norm_fn(certauthz_selector_t *sel, certauthz_type_e type,
                             const char *value, apr_size_t len, int *glob,
                             const char **v, const char **reason,
                             apr_pool_t *p);

static apr_status_t norm_text(certauthz_selector_t *sel, certauthz_type_e type,
                              const char *value, apr_size_t len, int *glob,
                              const char **v, const char **reason,
                              apr_pool_t *p)
{
    (void)sel, (void)glob, (void)reason;
    *v =
        certauthz_pstrndup_fold(value, len, certauthz_type_folds_case(type), p);
    return APR_SUCCESS;
}

/* '*' is an ordinary character of a DN: compared structurally */
static apr_status_t norm_dn(certauthz_selector_t *sel, certauthz_type_e type,
                            const char *value, apr_size_t len, int *glob,
                            const char **v, const char **reason, apr_pool_t *p)
{
    certauthz_dn_t *dn;
    const char *why;
    (void)type, (void)v;

    if (certauthz_dn_parse(&dn, value, len, &why, p) != APR_SUCCESS) {
        *reason = apr_psprintf(p, "bad DN: %s", why);
        return CERTAUTHZ_EBADINPUT;
    }
    *glob = 0;
    sel->u.dn = dn;
    sel->value = certauthz_dn_key(dn, &sel->len);
    return APR_SUCCESS;
}

static apr_status_t norm_ip(certauthz_selector_t *sel, certauthz_type_e type,
                            const char *value, apr_size_t len, int *glob,
                            const char **v, const char **reason, apr_pool_t *p)
{
    (void)sel, (void)type;
    if (*glob)
        *v = certauthz_pstrndup_fold(value, len, 1, p);
    else if (!(*v = certauthz_ip_normalize(value, len, p))) {
        *reason = "bad IP address";
        return CERTAUTHZ_EBADINPUT;
    }
    return APR_SUCCESS;
}

/* "bad TYPE value: why" (why in *reason) */
static apr_status_t bad_value(certauthz_type_e type, const char **reason,
                              apr_pool_t *p)
{
    *reason =
        apr_psprintf(p, "bad %s value: %s", certauthz_type_name(type), *reason);
    return CERTAUTHZ_EBADINPUT;
}

static apr_status_t norm_serial(certauthz_selector_t *sel,
                                certauthz_type_e type, const char *value,
                                apr_size_t len, int *glob, const char **v,
                                const char **reason, apr_pool_t *p)
{
    (void)sel;
    *v = *glob ? certauthz_serial_glob_normalize(value, len, reason, p)
               : certauthz_serial_normalize(value, len, reason, p);
    return *v ? APR_SUCCESS : bad_value(type, reason, p);
}

/* The result of a normaliser of a syntax that takes exact values only
 * (no glob: '*' is an ordinary character, and refused by them all): the
 * key, or "bad TYPE value: why". */
static apr_status_t exact_only(certauthz_type_e type, const char *key,
                               int *glob, const char **v, const char **reason,
                               apr_pool_t *p)
{
    *glob = 0;
    *v = key;
    return key ? APR_SUCCESS : bad_value(type, reason, p);
}

/* 64 hex digits */
static apr_status_t norm_sha256(certauthz_selector_t *sel,
                                certauthz_type_e type, const char *value,
                                apr_size_t len, int *glob, const char **v,
                                const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_hex_normalize(value, len, 32, reason, p),
                      glob, v, reason, p);
}

/* the pin-sha256 base64 form */
static apr_status_t norm_spki(certauthz_selector_t *sel, certauthz_type_e type,
                              const char *value, apr_size_t len, int *glob,
                              const char **v, const char **reason,
                              apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_spki_normalize(value, len, reason, p),
                      glob, v, reason, p);
}

/* a dotted OID or an EKU name (clientAuth...) */
static apr_status_t norm_eku(certauthz_selector_t *sel, certauthz_type_e type,
                             const char *value, apr_size_t len, int *glob,
                             const char **v, const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(
        type,
        certauthz_oid_normalize(value, len, certauthz_eku_names, reason, p),
        glob, v, reason, p);
}

/* a dotted OID (or anyPolicy) */
static apr_status_t norm_policy(certauthz_selector_t *sel,
                                certauthz_type_e type, const char *value,
                                apr_size_t len, int *glob, const char **v,
                                const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(
        type,
        certauthz_oid_normalize(value, len, certauthz_policy_names, reason, p),
        glob, v, reason, p);
}

/* a keyUsage bit by its RFC 5280 name, any case */
static apr_status_t norm_ku(certauthz_selector_t *sel, certauthz_type_e type,
                            const char *value, apr_size_t len, int *glob,
                            const char **v, const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_ku_normalize(value, len, reason), glob, v,
                      reason, p);
}

/* hex, any length, colons allowed */
static apr_status_t norm_ski(certauthz_selector_t *sel, certauthz_type_e type,
                             const char *value, apr_size_t len, int *glob,
                             const char **v, const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_hex_normalize(value, len, 0, reason, p),
                      glob, v, reason, p);
}

/* a SID, canonical (S-1-5-21-...) */
static apr_status_t norm_sid(certauthz_selector_t *sel, certauthz_type_e type,
                             const char *value, apr_size_t len, int *glob,
                             const char **v, const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_sid_normalize(value, len, reason, p),
                      glob, v, reason, p);
}

/* an altSecurityIdentities X509 form (certauthz_altsec.h) */
static apr_status_t norm_altsec(certauthz_selector_t *sel,
                                certauthz_type_e type, const char *value,
                                apr_size_t len, int *glob, const char **v,
                                const char **reason, apr_pool_t *p)
{
    (void)sel;
    return exact_only(type, certauthz_altsec_normalize(value, len, reason, p),
                      glob, v, reason, p);
}

#define NORM_(id, name, fold, value) [CERTAUTHZ_##id] = norm_##value,
static norm_fn *const normalizers[CERTAUTHZ_NTYPES] = {CERTAUTHZ_TYPES(NORM_)};
#undef NORM_

apr_status_t certauthz_selector_make(certauthz_selector_t *sel,
                                     certauthz_type_e type, const char *value,
                                     apr_size_t len, const char **reason,
                                     apr_pool_t *p)
{
    int glob = memchr(value, '*', len) != NULL;
    const char *v = NULL;
    apr_status_t rv;

    memset(sel, 0, sizeof(*sel));
    sel->type = (unsigned char)type;
    sel->kind = CERTAUTHZ_SEL_EXACT;
    if ((unsigned)type >= CERTAUTHZ_NTYPES) {
        *reason = "unknown selector type";
        return CERTAUTHZ_EBADINPUT;
    }
    if (len == 0 && type != CERTAUTHZ_DN) { /* dn:"" is the empty subject */
        *reason = apr_psprintf(p, "empty %s value", certauthz_type_name(type));
        return CERTAUTHZ_EBADINPUT;
    }
    if (!certauthz_utf8_valid(value, len)) {
        *reason = "value is not UTF-8 or contains NUL";
        return CERTAUTHZ_EBADINPUT;
    }
    rv = normalizers[type](sel, type, value, len, &glob, &v, reason, p);
    if (rv != APR_SUCCESS || !v)
        return rv;
    sel->value = v;
    sel->len = strlen(v);
    if (glob)
        sel->kind = CERTAUTHZ_SEL_GLOB;
    return APR_SUCCESS;
}

apr_status_t certauthz_selector_parse(certauthz_selector_t *sel,
                                      const char *text, apr_size_t len,
                                      const char **reason, apr_pool_t *p)
{
    apr_size_t n = 0;
    int type;

    while (n < len
           && ((text[n] >= 'a' && text[n] <= 'z')
               || (text[n] >= '0' && text[n] <= '9')))
        n++;
    if (n == len || (text[n] != ':' && text[n] != '~')) {
        *reason =
            apr_psprintf(p,
                         "selector '%s' is not type:value or "
                         "type~regex",
                         certauthz_log_escape(apr_pstrmemdup(p, text, len), p));
        return CERTAUTHZ_EBADINPUT;
    }
    type = certauthz_type_lookup(text, n);
    if (type < 0) {
        *reason =
            apr_psprintf(p, "unknown selector type '%s'",
                         certauthz_log_escape(apr_pstrmemdup(p, text, n), p));
        return CERTAUTHZ_EBADINPUT;
    }
    if (text[n] == ':')
        return certauthz_selector_make(sel, (certauthz_type_e)type,
                                       text + n + 1, len - n - 1, reason, p);
    memset(sel, 0, sizeof(*sel));
    sel->type = (unsigned char)type;
    if (!certauthz_utf8_valid(text + n + 1, len - n - 1)) {
        *reason = "regex is not UTF-8 or contains NUL";
        return CERTAUTHZ_EBADINPUT;
    }
    return compile_regex(sel, text + n + 1, len - n - 1, reason, p);
}

/* '*' matches any run of bytes. */
static int glob_plain(const char *p, apr_size_t pl, const char *s,
                      apr_size_t sl)
{
    apr_size_t pi = 0, si = 0, star = (apr_size_t)-1, mark = 0;

    while (si < sl) {
        if (pi < pl && p[pi] == '*') {
            star = pi++;
            mark = si;
        }
        else if (pi < pl && p[pi] == s[si]) {
            pi++;
            si++;
        }
        else if (star != (apr_size_t)-1) {
            pi = star + 1;
            si = ++mark;
        }
        else {
            return 0;
        }
    }
    while (pi < pl && p[pi] == '*')
        pi++;
    return pi == pl;
}

int certauthz_glob_match(const char *pat, apr_size_t plen, const char *s,
                         apr_size_t slen, int dns_rule)
{
    if (!dns_rule)
        return glob_plain(pat, plen, s, slen);
    /* '*' never crosses '.': same number of labels, each matched alone */
    for (;;) {
        const char *pd = memchr(pat, '.', plen);
        const char *sd = memchr(s, '.', slen);
        apr_size_t pn = pd ? (apr_size_t)(pd - pat) : plen;
        apr_size_t sn = sd ? (apr_size_t)(sd - s) : slen;

        if (!pd != !sd || !glob_plain(pat, pn, s, sn))
            return 0;
        if (!pd)
            return 1;
        pat += pn + 1;
        plen -= pn + 1;
        s += sn + 1;
        slen -= sn + 1;
    }
}

/* 1 match, 0 no match, -1 the regex engine gave up (limits). */
static int regex_match(const certauthz_selector_t *sel, const char *subject,
                       certauthz_captures_t *caps)
{
    const regex_t_ *re = sel->u.re;
    pcre2_match_data *md =
        pcre2_match_data_create(CERTAUTHZ_MAX_CAPTURES, NULL);
    int rc;

    if (!md)
        return -1;
    rc = pcre2_match(re->code, (PCRE2_SPTR)subject, strlen(subject), 0,
                     PCRE2_NO_UTF_CHECK, md, re->mctx);
    if (rc >= 0 && caps) {
        /* pcre2 sets the pairs below rc (0: ovector too small, all set) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int set = rc == 0 ? CERTAUTHZ_MAX_CAPTURES : rc;
        caps->n = sel->ngroups + 1 < CERTAUTHZ_MAX_CAPTURES
                      ? sel->ngroups + 1
                      : CERTAUTHZ_MAX_CAPTURES;
        for (int i = 0; i < caps->n; i++) {
            if (i >= set || ov[2 * i] == PCRE2_UNSET) {
                caps->s[i] = NULL;
                caps->len[i] = 0;
            }
            else {
                caps->s[i] = subject + ov[2 * i];
                caps->len[i] = ov[2 * i + 1] - ov[2 * i];
            }
        }
    }
    pcre2_match_data_free(md);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

int certauthz_selector_match_value(const certauthz_selector_t *sel,
                                   const certauthz_value_t *v,
                                   certauthz_captures_t *caps)
{
    switch (sel->kind) {
    case CERTAUTHZ_SEL_EXACT:
        return v->key_len == sel->len && !memcmp(v->key, sel->value, sel->len);
    case CERTAUTHZ_SEL_GLOB:
        return certauthz_glob_match(sel->value, sel->len, v->key, v->key_len,
                                    sel->type == CERTAUTHZ_DNS);
    default:
        return regex_match(sel, v->text, caps);
    }
}

int certauthz_selector_match(const certauthz_selector_t *sel,
                             const certauthz_facts_t *facts,
                             certauthz_captures_t *caps)
{
    const certauthz_values_t *vals = &facts->of[sel->type];
    int result = 0;

    for (int i = 0; i < vals->n; i++) {
        int m = certauthz_selector_match_value(sel, &vals->v[i], caps);
        if (m > 0)
            return 1;
        if (m < 0)
            result = -1;
    }
    return result;
}

const char *certauthz_selector_text(const certauthz_selector_t *sel,
                                    apr_pool_t *p)
{
    const char *v = sel->value;

    if (sel->type == CERTAUTHZ_DN && sel->kind == CERTAUTHZ_SEL_EXACT)
        v = sel->u.dn      ? certauthz_dn_text(sel->u.dn)
            : sel->dn_text ? sel->dn_text
                           : "?";
    return apr_pstrcat(p, certauthz_type_name(sel->type),
                       sel->kind == CERTAUTHZ_SEL_REGEX ? "~" : ":", v, NULL);
}
