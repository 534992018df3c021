/*
 * certauthz_lint.h -- warnings about a map that loads but probably does not
 * do what its author meant (`certauthz check`).  Pure core: no httpd
 * header, no output; the tool formats the results.
 *
 * Three kinds of warning (a map with warnings is still valid and loads):
 *
 *   unanchored regex  a regex selector (allow or deny) that can match part
 *                     of a value.  A regex is anchored when, after leading
 *                     option settings such as (?i) or (*UCP), and after
 *                     removing one group that encloses the whole pattern
 *                     ("(...)" or "(?:...)", repeatedly), it
 *                       - starts with ^ or \A,
 *                       - ends with an unescaped $ (outside a character
 *                         class and \Q...\E) or with \z,
 *                       - has no | outside every group (in ^a|b$ the
 *                         anchors bind to one alternative each), and
 *                       - does not turn on multiline mode ((?m): ^ and $
 *                         then match at line breaks inside the value).
 *                     \Z does not count (it also matches before a final
 *                     newline), nor does (?x) whitespace after the $.  A
 *                     regex that matches every value (below) is not
 *                     reported: anchoring it would change nothing.
 *
 *   shadowed          an allow rule B that can never give an identity
 *                     because an earlier allow rule A always matches first:
 *                     A applies wherever B does (A is for every issuer, or
 *                     both are in the same [issuer] section), A has the
 *                     same selector type, and A's selector matches every
 *                     certificate B's matches (certauthz_selector_covers).
 *                     Deny rules are never shadowed and never shadow.
 *
 *   issuer without CA only when CA certificates are given: an [issuer "DN"]
 *                     section (that holds rules) whose DN is, under the
 *                     issuer comparison the module uses
 *                     (certauthz_dn_same_issuer), the subject of none of
 *                     them.  Its rules never apply to certificates those
 *                     CAs issue.
 *
 * A fourth kind, CERTAUTHZ_LINT_INCOMPLETE, says that the shadow check
 * stopped after its work limit (pattern tests): later rules were not checked
 * for shadowing.
 */
#ifndef CERTAUTHZ_LINT_H
#define CERTAUTHZ_LINT_H

#include <apr_tables.h>

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_map.h"
#include "certauthz_match.h"

typedef enum {
    CERTAUTHZ_LINT_UNANCHORED = 1,
    CERTAUTHZ_LINT_SHADOWED,
    CERTAUTHZ_LINT_NO_CA,
    CERTAUTHZ_LINT_INCOMPLETE
} certauthz_lint_kind_e;

/* One warning.
 *   rule:    the rule warned about: the regex rule, the shadowed rule, the
 *            first rule of the section (NO_CA), the first rule not checked
 *            (INCOMPLETE; NULL when none);
 *   by:      SHADOWED only: the earlier rule that always wins;
 *   issuer:  NO_CA only: the section's DN;
 *   reason:  what to print after "FILE:LINE: warning: " (UTF-8; may hold
 *            text from the map, not escaped). */
typedef struct {
    certauthz_lint_kind_e kind;
    const certauthz_rule_t *rule;
    const certauthz_rule_t *by;
    const certauthz_dn_t *issuer;
    const char *reason;
} certauthz_lint_t;

/* Default work limit of the shadow check, in selector tests. */
#define CERTAUTHZ_LINT_MAX_TESTS 20000000UL

typedef struct {
    /* check [issuer] sections against these CA subjects (any number,
     * 0 included: then every section is reported) */
    int check_issuers;
    int ncas;
    const certauthz_dn_t *const *cas;
    /* work limit of the shadow check; 0 = CERTAUTHZ_LINT_MAX_TESTS */
    unsigned long max_tests;
} certauthz_lint_opts_t;

/* Every warning about map, sorted by line (INCOMPLETE last), as an array
 * of certauthz_lint_t allocated from p (empty when none).  opts may be
 * NULL.  Returns APR_SUCCESS (or APR_ENOMEM). */
apr_status_t certauthz_lint(apr_array_header_t **warnings,
                            const certauthz_map_t *map,
                            const certauthz_lint_opts_t *opts, apr_pool_t *p);

/* Name of a kind for scripts: "unanchored-regex", "shadowed",
 * "issuer-without-ca", "lint-incomplete". */
const char *certauthz_lint_kind_name(certauthz_lint_kind_e kind);

/* 1 when the regex source src[0..len) is anchored as defined above; else 0
 * with *why (static text) saying what is missing. */
int certauthz_regex_anchored(const char *src, apr_size_t len, const char **why);

/* 1 when the selector provably matches every value of its type: a glob of
 * '*' only (not dns, where '*' stays within one label), or a regex that
 * matches the empty string and uses no construct that depends on where in
 * the value it is (no \b \B \G, lookbehind, verbs, callouts, conditions;
 * and when it contains ^ or \A, also no $ \z \Z, lookahead, atomic group,
 * possessive quantifier, back reference or recursion).  0 when that cannot
 * be shown (`cn~^(?s).*$` matches everything but is not recognised). */
int certauthz_selector_matches_all(const certauthz_selector_t *sel);

/* 1 when a regex selector ignores ASCII case: its leading option setting
 * turns on (?i) and nothing turns it off again. */
int certauthz_regex_ignores_case(const char *src, apr_size_t len);

/* 1 when every value that b matches is also matched by a (same type; 0
 * for different types), as far as can be shown:
 *   a matches all (certauthz_selector_matches_all)   -> 1
 *   a glob, b exact or glob: a matches b's text with b's '*' taken as
 *     characters only a '*' of a can absorb (exact for exact b; for glob
 *     b a sufficient test)
 *   a regex, b exact: a matches b's value as a certificate shows it (the
 *     RFC 4514 text of a dn); for email, dns and upn, which compare
 *     ignoring ASCII case, a must also ignore case
 *     (certauthz_regex_ignores_case) and match b's value in lower case,
 *     upper case and mixed case (unless it has no ASCII letter)
 *   a regex, b regex: the same source text
 *   a exact, b exact: the same value
 *   anything else -> 0.
 * For dn, a regex sees the subject's RFC 4514 text: a certificate whose
 * subject holds the same value in a NumericString prints it as #hex and
 * may escape the regex; such subjects are not considered. */
int certauthz_selector_covers(const certauthz_selector_t *a,
                              const certauthz_selector_t *b);

#endif /* CERTAUTHZ_LINT_H */
