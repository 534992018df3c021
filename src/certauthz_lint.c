/*
 * certauthz_lint.c -- warnings about valid maps (see certauthz_lint.h for
 * the exact definitions): unanchored regexes, rules shadowed by an earlier
 * rule that always wins, [issuer] sections that name no given CA.
 *
 * The shadow check walks the rules once in file order.  A section's exact
 * rule is looked up among the exact rules for every issuer through the
 * map's own index (certauthz_map_find_exact); every rule is compared
 * with the earlier glob and regex allow rules of its type, which are few in
 * real maps; a work limit bounds the rest.
 */
#include <string.h>

#include <apr_strings.h>

#include "certauthz_lint.h"
#include "certauthz_util.h"

/* ---- regex text analysis ---------------------------------------------- */

typedef struct {
    int top_alt;       /* a '|' outside every group */
    int ends_anchored; /* the last token is an unescaped '$' or \z */
    int multiline;     /* an option group turns on (?m) */
    apr_size_t close0; /* index of the ')' closing a '(' at 0, or len */
} scan_t;

/* Length of an option setting "(?flags)" or "(?flags:" at s (flags from
 * [a-zA-Z^-]), 0 when s does not start one.  *multi is set when it turns
 * on m; *icase_on / *icase_off when it turns i on or off. */
static apr_size_t option_group(const char *s, apr_size_t len, int *multi,
                               int *icase_on, int *icase_off, int *colon)
{
    apr_size_t j = 2;
    int neg = 0;

    if (len < 3 || s[0] != '(' || s[1] != '?')
        return 0;
    while (j < len
           && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')
               || s[j] == '-' || s[j] == '^'))
        j++;
    if (j >= len || (s[j] != ')' && s[j] != ':'))
        return 0;
    if (j == 2 && s[j] == ')')
        return 0;
    for (apr_size_t k = 2; k < j; k++) {
        char c = s[k];
        if (c == '-' || c == '^') {
            neg = 1;
            if (c == '^' && icase_off)
                *icase_off = 1; /* (?^) resets every option */
            continue;
        }
        if (c == 'm' && !neg && multi)
            *multi = 1;
        if (c == 'i') {
            if (neg && icase_off)
                *icase_off = 1;
            else if (!neg && icase_on)
                *icase_on = 1;
        }
    }
    if (colon)
        *colon = s[j] == ':';
    return j + 1;
}

/* Index just after the character class that starts at s[i] == '['. */
static apr_size_t skip_class(const char *s, apr_size_t len, apr_size_t i)
{
    apr_size_t j = i + 1;

    if (j < len && s[j] == '^')
        j++;
    if (j < len && s[j] == ']')
        j++;
    while (j < len && s[j] != ']') {
        if (s[j] == '\\')
            j += 2;
        else if (s[j] == '[' && j + 1 < len && s[j + 1] == ':') {
            const char *e = NULL;
            for (apr_size_t k = j + 2; k + 1 < len; k++)
                if (s[k] == ':' && s[k + 1] == ']') {
                    e = s + k;
                    break;
                }
            j = e ? (apr_size_t)(e - s) + 2 : j + 1;
        }
        else
            j++;
    }
    return j < len ? j + 1 : len;
}

static void scan_regex(const char *s, apr_size_t len, scan_t *sc)
{
    apr_size_t i = 0;
    int depth = 0;

    memset(sc, 0, sizeof(*sc));
    sc->close0 = len;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 >= len) {
                sc->ends_anchored = 0;
                break;
            }
            if (s[i + 1] == 'Q') { /* literal up to \E or the end */
                apr_size_t j = i + 2;
                while (j + 1 < len && !(s[j] == '\\' && s[j + 1] == 'E'))
                    j++;
                sc->ends_anchored = 0;
                i = j + 1 < len ? j + 2 : len;
                continue;
            }
            sc->ends_anchored = s[i + 1] == 'z';
            i += 2;
            continue;
        }
        if (c == '[') {
            i = skip_class(s, len, i);
            sc->ends_anchored = 0;
            continue;
        }
        sc->ends_anchored = c == '$';
        if (c == '(') {
            int m = 0;
            if (option_group(s + i, len - i, &m, NULL, NULL, NULL) && m)
                sc->multiline = 1;
            depth++;
        }
        else if (c == ')') {
            if (depth > 0 && --depth == 0 && s[0] == '(' && sc->close0 == len)
                sc->close0 = i;
        }
        else if (c == '|' && depth == 0)
            sc->top_alt = 1;
        i++;
    }
}

/* Skip leading option settings: (?flags) and (*VERB) groups. */
static apr_size_t skip_leading_options(const char *s, apr_size_t len,
                                       int *multi, int *icase_on,
                                       int *icase_off)
{
    apr_size_t i = 0;

    for (;;) {
        int colon = 0;
        apr_size_t n =
            option_group(s + i, len - i, multi, icase_on, icase_off, &colon);
        if (n && !colon) {
            i += n;
            continue;
        }
        if (len - i >= 3 && s[i] == '(' && s[i + 1] == '*') {
            apr_size_t j = i + 2;
            while (j < len
                   && ((s[j] >= 'A' && s[j] <= 'Z')
                       || (s[j] >= '0' && s[j] <= '9') || s[j] == '_'
                       || s[j] == '='))
                j++;
            if (j < len && s[j] == ')' && j > i + 2) {
                i = j + 1;
                continue;
            }
        }
        return i;
    }
}

int certauthz_regex_anchored(const char *src, apr_size_t len, const char **why)
{
    int multi = 0;
    apr_size_t i = skip_leading_options(src, len, &multi, NULL, NULL);
    scan_t sc;
    int starts;

    if (multi) {
        *why = "(?m) makes ^ and $ match at line breaks inside the value";
        return 0;
    }
    src += i;
    len -= i;
    /* one group around everything: look inside */
    for (;;) {
        apr_size_t open = 0;
        scan_regex(src, len, &sc);
        if (sc.multiline) {
            *why = "(?m) makes ^ and $ match at line breaks inside the value";
            return 0;
        }
        if (len < 2 || src[0] != '(' || sc.close0 != len - 1)
            break;
        if (src[1] != '?' && src[1] != '*')
            open = 1;
        else {
            int m = 0, colon = 0;
            open = option_group(src, len, &m, NULL, NULL, &colon);
            if (!open || !colon)
                break;
            if (m) {
                *why = "(?m) makes ^ and $ match at line breaks inside the "
                       "value";
                return 0;
            }
        }
        src += open;
        len -= open + 1;
    }
    if (sc.top_alt) {
        *why = "a | outside any group: ^ and $ bind to one alternative each "
               "(write ^(?:a|b)$)";
        return 0;
    }
    starts =
        len >= 1
        && (src[0] == '^' || (len >= 2 && src[0] == '\\' && src[1] == 'A'));
    if (!starts && !sc.ends_anchored) {
        *why = "no ^ at the start and no $ at the end: it matches any value "
               "that contains a match (write ^...$)";
        return 0;
    }
    if (!starts) {
        *why = "no ^ (or \\A) at the start: it matches any value that ends "
               "with a match";
        return 0;
    }
    if (!sc.ends_anchored) {
        *why = "no $ (or \\z) at the end: it matches any value that starts "
               "with a match";
        return 0;
    }
    *why = NULL;
    return 1;
}

int certauthz_regex_ignores_case(const char *src, apr_size_t len)
{
    int on = 0, off = 0;
    apr_size_t i = skip_leading_options(src, len, NULL, &on, &off);

    if (!on || off)
        return 0;
    /* nothing later may turn it off: (?-i), (?^), (?x-i:...) */
    for (; i + 1 < len; i++) {
        if (src[i] == '\\') {
            i++;
            continue;
        }
        if (src[i] == '(' && src[i + 1] == '?') {
            int o2 = 0, f2 = 0;
            option_group(src + i, len - i, NULL, &o2, &f2, NULL);
            if (f2)
                return 0;
        }
    }
    return 1;
}

static int has(const char *s, apr_size_t len, const char *needle)
{
    apr_size_t n = strlen(needle);
    for (apr_size_t i = 0; i + n <= len; i++)
        if (!memcmp(s + i, needle, n))
            return 1;
    return 0;
}

/* Naive, conservative scan for constructs whose result depends on where in
 * the value the match is: a false alarm only makes the test say "not
 * shown". */
static int regex_position_free(const char *s, apr_size_t len)
{
    static const char *const always[] = {
        "\\b", "\\B", "\\G", "(?<=", "(?<!", "(*", "(?C", "(?("};
    int anchored = memchr(s, '^', len) || has(s, len, "\\A");

    for (size_t k = 0; k < sizeof(always) / sizeof(always[0]); k++)
        if (has(s, len, always[k]))
            return 0;
    if (!anchored)
        return 1;
    /* matched at offset 0 of a longer value: nothing that looks ahead,
     * commits, refers back or recurses */
    if (memchr(s, '$', len) || has(s, len, "\\z") || has(s, len, "\\Z")
        || has(s, len, "*+") || has(s, len, "++") || has(s, len, "?+")
        || has(s, len, "}+"))
        return 0;
    for (apr_size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '\\') {
            char c = s[i + 1];
            if ((c >= '1' && c <= '9') || c == 'g' || c == 'k')
                return 0;
            i++;
            continue;
        }
        if (s[i] == '(' && s[i + 1] == '?') {
            apr_size_t j = i + 2;
            if (j < len && s[j] == ':')
                continue;
            while (j < len && strchr("imnsxJUar^-", s[j]) && s[j])
                j++;
            if (j == i + 2 || j >= len || (s[j] != ')' && s[j] != ':'))
                return 0;
        }
    }
    return 1;
}

static int all_stars(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++)
        if (s[i] != '*')
            return 0;
    return len > 0;
}

int certauthz_selector_matches_all(const certauthz_selector_t *sel)
{
    certauthz_value_t empty = {"", "", 0};

    if (sel->kind == CERTAUTHZ_SEL_GLOB)
        return sel->type != CERTAUTHZ_DNS && all_stars(sel->value, sel->len);
    if (sel->kind != CERTAUTHZ_SEL_REGEX)
        return 0;
    if (!regex_position_free(sel->value, sel->len))
        return 0;
    return certauthz_selector_match_value(sel, &empty, NULL) == 1;
}

static int regex_matches_text(const certauthz_selector_t *a, const char *text)
{
    certauthz_value_t v;
    v.text = v.key = text;
    v.key_len = strlen(text);
    return certauthz_selector_match_value(a, &v, NULL) == 1;
}

static int regex_covers_exact(const certauthz_selector_t *a,
                              const certauthz_selector_t *b, apr_pool_t *p)
{
    const char *text = b->value;
    char *up, *mixed;
    int letters = 0;

    if (b->type == CERTAUTHZ_DN)
        return regex_matches_text(a, b->u.dn      ? certauthz_dn_text(b->u.dn)
                                     : b->dn_text ? b->dn_text
                                                  : "");
    if (!certauthz_type_folds_case((certauthz_type_e)b->type))
        return regex_matches_text(a, text);
    /* b->value is lower case; a certificate may spell it in any case */
    up = apr_pstrmemdup(p, text, b->len);
    mixed = apr_pstrmemdup(p, text, b->len);
    for (apr_size_t i = 0; i < b->len; i++) {
        if (up[i] >= 'a' && up[i] <= 'z') {
            up[i] = (char)(up[i] - 'a' + 'A');
            if (letters++ & 1)
                mixed[i] = up[i];
        }
    }
    if (!regex_matches_text(a, text))
        return 0;
    if (!letters)
        return 1;
    return certauthz_regex_ignores_case(a->value, a->len)
           && regex_matches_text(a, up) && regex_matches_text(a, mixed);
}

static int covers(const certauthz_selector_t *a, int a_all,
                  const certauthz_selector_t *b, apr_pool_t *p)
{
    if (a->type != b->type)
        return 0;
    if (a_all)
        return 1;
    switch (a->kind) {
    case CERTAUTHZ_SEL_GLOB:
        if (b->kind == CERTAUTHZ_SEL_REGEX)
            return 0;
        return certauthz_glob_match(a->value, a->len, b->value, b->len,
                                    a->type == CERTAUTHZ_DNS);
    case CERTAUTHZ_SEL_REGEX:
        if (b->kind == CERTAUTHZ_SEL_REGEX)
            return a->len == b->len && !memcmp(a->value, b->value, a->len);
        if (b->kind == CERTAUTHZ_SEL_EXACT)
            return regex_covers_exact(a, b, p);
        return 0;
    default:
        return b->kind == CERTAUTHZ_SEL_EXACT && a->len == b->len
               && !memcmp(a->value, b->value, a->len);
    }
}

int certauthz_selector_covers(const certauthz_selector_t *a,
                              const certauthz_selector_t *b)
{
    apr_pool_t *p;
    int r;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return 0;
    r = covers(a, certauthz_selector_matches_all(a), b, p);
    apr_pool_destroy(p);
    return r;
}

/* ---- the map walk ----------------------------------------------------- */

typedef struct {
    const certauthz_rule_t *rule;
    unsigned index;
    int all; /* matches every value */
} pattern_t;

static int same_scope(const certauthz_dn_t *a, const certauthz_dn_t *b)
{
    return a == b || (a && b && certauthz_dn_same_issuer(a, b));
}

/* a (earlier) applies wherever b does */
static int scope_covers(const certauthz_map_t *m, const certauthz_rule_t *a,
                        const certauthz_rule_t *b)
{
    const certauthz_dn_t *ia = certauthz_rule_issuer(m, a);
    return !ia || same_scope(ia, certauthz_rule_issuer(m, b));
}

static void add(apr_array_header_t *out, certauthz_lint_kind_e kind,
                const certauthz_rule_t *rule, const certauthz_rule_t *by,
                const certauthz_dn_t *issuer, const char *reason)
{
    certauthz_lint_t *w = apr_array_push(out);
    w->kind = kind;
    w->rule = rule;
    w->by = by;
    w->issuer = issuer;
    w->reason = reason;
}

static int lint_cmp(const void *x, const void *y)
{
    const certauthz_lint_t *a = x, *b = y;
    unsigned la, lb;

    if ((a->kind == CERTAUTHZ_LINT_INCOMPLETE)
        != (b->kind == CERTAUTHZ_LINT_INCOMPLETE))
        return a->kind == CERTAUTHZ_LINT_INCOMPLETE ? 1 : -1;
    la = a->rule ? certauthz_rule_line(a->rule) : 0;
    lb = b->rule ? certauthz_rule_line(b->rule) : 0;
    if (la != lb)
        return la < lb ? -1 : 1;
    return (int)a->kind - (int)b->kind;
}

static void check_issuers(apr_array_header_t *out, const certauthz_map_t *map,
                          const certauthz_lint_opts_t *o, apr_pool_t *p)
{
    apr_array_header_t *seen = apr_array_make(p, 4, sizeof(void *));
    unsigned n = certauthz_map_nrules(map);

    for (unsigned i = 0; i < n; i++) {
        const certauthz_rule_t *r = certauthz_map_rule(map, i);
        const certauthz_dn_t *dn = certauthz_rule_issuer(map, r);
        int known = 0;

        if (!dn)
            continue;
        for (int k = 0; k < seen->nelts && !known; k++)
            known =
                same_scope(APR_ARRAY_IDX(seen, k, const certauthz_dn_t *), dn);
        if (known)
            continue;
        APR_ARRAY_PUSH(seen, const certauthz_dn_t *) = dn;
        for (int k = 0; k < o->ncas && !known; k++)
            known = certauthz_dn_same_issuer(o->cas[k], dn);
        if (!known)
            add(out, CERTAUTHZ_LINT_NO_CA, r, NULL, dn,
                apr_psprintf(p,
                             "[issuer \"%s\"] is the subject of none of "
                             "the CA certificates given: the rules of this "
                             "section (from line %u) never apply to "
                             "certificates those CAs issue",
                             certauthz_dn_text(dn), certauthz_rule_line(r)));
    }
}

apr_status_t certauthz_lint(apr_array_header_t **warnings,
                            const certauthz_map_t *map,
                            const certauthz_lint_opts_t *opts, apr_pool_t *p)
{
    certauthz_lint_opts_t none = {0, 0, NULL, 0};
    const certauthz_lint_opts_t *o = opts ? opts : &none;
    unsigned long max = o->max_tests ? o->max_tests : CERTAUTHZ_LINT_MAX_TESTS;
    unsigned long tests = 0;
    unsigned n = certauthz_map_nrules(map);
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(certauthz_lint_t));
    apr_array_header_t *pats[CERTAUTHZ_NTYPES];
    apr_pool_t *tmp;
    int stopped = 0;

    if (apr_pool_create(&tmp, p) != APR_SUCCESS)
        return APR_ENOMEM;
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        pats[t] = apr_array_make(p, 4, sizeof(pattern_t));

    for (unsigned i = 0; i < n; i++) {
        const certauthz_rule_t *r = certauthz_map_rule(map, i);
        certauthz_selector_t tsel, tby;
        const certauthz_selector_t *sel =
            certauthz_rule_selector(map, r, &tsel);
        const certauthz_rule_t *by = NULL;
        unsigned by_index = n;
        int all = sel->kind != CERTAUTHZ_SEL_EXACT
                  && certauthz_selector_matches_all(sel);
        const char *why;

        if (sel->kind == CERTAUTHZ_SEL_REGEX && !all
            && !certauthz_regex_anchored(sel->value, sel->len, &why))
            add(out, CERTAUTHZ_LINT_UNANCHORED, r, NULL, NULL,
                apr_psprintf(p, "unanchored regex %s: %s",
                             certauthz_selector_text(sel, p), why));
        if (certauthz_rule_is_deny(r))
            continue;

        if (!stopped) {
            apr_array_header_t *pa = pats[sel->type];
            if (sel->kind == CERTAUTHZ_SEL_EXACT
                && certauthz_rule_issuer(map, r)) {
                /* the same exact rule for every issuer, earlier */
                unsigned gi = certauthz_map_find_exact(
                    map, NULL, 0, (certauthz_type_e)sel->type, sel->value,
                    sel->len);
                if (gi < i) {
                    by_index = gi;
                    by = certauthz_map_rule(map, gi);
                }
            }
            for (int k = 0; k < pa->nelts; k++) {
                const pattern_t *a = &APR_ARRAY_IDX(pa, k, pattern_t);
                if (a->index >= by_index)
                    break;
                if (!scope_covers(map, a->rule, r))
                    continue;
                if (++tests > max) {
                    stopped = 1;
                    add(out, CERTAUTHZ_LINT_INCOMPLETE, r, NULL, NULL,
                        apr_psprintf(p,
                                     "shadow check stopped after %lu selector "
                                     "tests: rules from line %u on were not "
                                     "checked for shadowing",
                                     max, certauthz_rule_line(r)));
                    break;
                }
                if (covers(certauthz_rule_selector(map, a->rule, &tby), a->all,
                           sel, tmp)) {
                    by = a->rule;
                    by_index = a->index;
                    break;
                }
                if ((tests & 1023) == 0)
                    apr_pool_clear(tmp);
            }
            if (by && !stopped)
                add(out, CERTAUTHZ_LINT_SHADOWED, r, by, NULL,
                    apr_psprintf(p,
                                 "shadowed by %s: %s, earlier and for %s, "
                                 "matches every certificate that %s matches",
                                 certauthz_rule_where(map, by, p),
                                 certauthz_selector_text(
                                     certauthz_rule_selector(map, by, &tby), p),
                                 certauthz_rule_issuer(map, by)
                                     ? "the same [issuer] section"
                                     : "every issuer",
                                 certauthz_selector_text(sel, p)));
        }

        if (sel->kind != CERTAUTHZ_SEL_EXACT) {
            pattern_t *pt = apr_array_push(pats[sel->type]);
            pt->rule = r;
            pt->index = i;
            pt->all = all;
        }
    }
    apr_pool_destroy(tmp);

    if (o->check_issuers)
        check_issuers(out, map, o, p);
    if (out->nelts > 1)
        qsort(out->elts, (size_t)out->nelts, sizeof(certauthz_lint_t),
              lint_cmp);
    *warnings = out;
    return APR_SUCCESS;
}

const char *certauthz_lint_kind_name(certauthz_lint_kind_e kind)
{
    switch (kind) {
    case CERTAUTHZ_LINT_UNANCHORED:
        return "unanchored-regex";
    case CERTAUTHZ_LINT_SHADOWED:
        return "shadowed";
    case CERTAUTHZ_LINT_NO_CA:
        return "issuer-without-ca";
    case CERTAUTHZ_LINT_INCOMPLETE:
        return "lint-incomplete";
    }
    return "unknown";
}
