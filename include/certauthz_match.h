/*
 * certauthz_match.h -- selectors: one compiled test of a certificate fact
 * ("email:alice@example.com", "dns:*.example.com", "cn~^svc-(.+)$").
 * Used by map rules and by the Require cert-* providers alike.
 *
 *   exact  value compared with the type's rule (SPEC section 1);
 *   glob   '*' matches any run of characters, except in dns values where it
 *          never crosses a '.'; case folding as the type's rule;
 *   regex  PCRE2 (as httpd's ap_regex), matched against the value's text,
 *          unanchored unless the pattern anchors itself; captures $0..$9.
 *
 * In dn selectors '*' is an ordinary character: DNs are compared
 * structurally, never as strings; use dn~regex to match the printed form.
 * sha256 and spki take exact values only.
 *
 * A compiled selector is immutable and may be used from several threads at
 * once.  Its memory (and its PCRE2 code, released by a pool cleanup) lives
 * in the pool it was compiled in.
 */
#ifndef CERTAUTHZ_MATCH_H
#define CERTAUTHZ_MATCH_H

#include "certauthz.h"
#include "certauthz_facts.h"

typedef enum {
    CERTAUTHZ_SEL_EXACT = 0,
    CERTAUTHZ_SEL_GLOB,
    CERTAUTHZ_SEL_REGEX
} certauthz_sel_kind_e;

typedef struct certauthz_selector_t {
    unsigned char type;     /* certauthz_type_e */
    unsigned char kind;     /* certauthz_sel_kind_e */
    unsigned short ngroups; /* regex capture groups */
    apr_size_t len;         /* bytes in value */
    const char *value;      /* exact: comparison key; glob: folded pattern;
                             * regex: source text */
    union {
        void *re;                 /* regex: pcre2_code * */
        const certauthz_dn_t *dn; /* dn exact: the parsed DN, or NULL */
    } u;
    const char *dn_text; /* dn exact without u.dn (a map's rule): the DN's
                            RFC 4514 text, for printing */
} certauthz_selector_t;

/* Compile "type:value" or "type~regex" (text of len bytes, already
 * unquoted).  CERTAUTHZ_EBADINPUT with *reason on a bad selector. */
apr_status_t certauthz_selector_parse(certauthz_selector_t *sel,
                                      const char *text, apr_size_t len,
                                      const char **reason, apr_pool_t *p);

/* Compile a value of a known type: exact, or a glob when it contains '*'
 * (and the type allows globs).  Used for Require cert-cn and friends. */
apr_status_t certauthz_selector_make(certauthz_selector_t *sel,
                                     certauthz_type_e type, const char *value,
                                     apr_size_t len, const char **reason,
                                     apr_pool_t *p);

/* Captures of a regex match: n = the pattern's groups + 1 (at most 10);
 * s[i], len[i] = text of $i, a pointer into the fact's text (NULL when
 * group i did not take part in the match). */
#define CERTAUTHZ_MAX_CAPTURES 10
typedef struct {
    int n;
    const char *s[CERTAUTHZ_MAX_CAPTURES];
    apr_size_t len[CERTAUTHZ_MAX_CAPTURES];
} certauthz_captures_t;

/* 1 when the selector matches one value of the facts, 0 when none does,
 * -1 when a regex gave up on a value (match limits) and none matched:
 * callers treat -1 as a match for deny rules and as no match otherwise.
 * For regexes,
 * caps (if not NULL) receives the captures of the first value (in
 * certificate order) that matched. */
int certauthz_selector_match(const certauthz_selector_t *sel,
                             const certauthz_facts_t *facts,
                             certauthz_captures_t *caps);

/* The same for one value: 1, 0, or -1 (regex gave up). */
int certauthz_selector_match_value(const certauthz_selector_t *sel,
                                   const certauthz_value_t *v,
                                   certauthz_captures_t *caps);

/* Glob match of pattern against s: '*' matches any run of bytes; with
 * dns_rule set it never matches a '.'.  No other metacharacter. */
int certauthz_glob_match(const char *pat, apr_size_t plen, const char *s,
                         apr_size_t slen, int dns_rule);

/* The selector written back as text ("email:alice@example.com"). */
const char *certauthz_selector_text(const certauthz_selector_t *sel,
                                    apr_pool_t *p);

#endif /* CERTAUTHZ_MATCH_H */
