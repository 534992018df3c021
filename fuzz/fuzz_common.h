/*
 * fuzz_common.h -- shared by the fuzz harnesses (fuzz_map.c, fuzz_dn.c,
 * fuzz_facts.c): process set-up, one pool per input, invariant checks, and
 * the cross-check of certauthz_map_resolve() against
 * certauthz_map_each_match().
 *
 * Each harness is one translation unit that includes this file, so the
 * helpers are static.  Built with clang + libFuzzer (fuzz/build.sh) or with
 * any C compiler and fuzz/replay.c (make check-unit).
 *
 * An invariant that fails calls abort() after printing what failed: under
 * libFuzzer that is a crash with a reproducer, under replay a "not ok".
 * KNOWN(...) marks an invariant whose failure is a finding already reported
 * (fuzz/crashes/README.md): by default it prints one line the first time and
 * goes on, so the target can still be fuzzed past it; with the environment
 * variable CERTAUTHZ_FUZZ_STRICT=1 it aborts like CHECK.
 */
#ifndef CERTAUTHZ_FUZZ_COMMON_H
#define CERTAUTHZ_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_allocator.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "certauthz_match.h"
#include "certauthz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* helpers: not every harness uses every one */
#define FUZZ_HELPER static __attribute__((unused))

static int fuzz_strict;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "INVARIANT FAILED at %s:%d: %s\n  ", __FILE__,     \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A known finding (id names it in fuzz/crashes/README.md). */
#define KNOWN(cond, id, ...)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            static int seen_;                                                  \
            if (fuzz_strict) {                                                 \
                fprintf(stderr, "KNOWN FINDING %s at %s:%d: %s\n  ", id,       \
                        __FILE__, __LINE__, #cond);                            \
                fprintf(stderr, __VA_ARGS__);                                  \
                fputc('\n', stderr);                                           \
                abort();                                                       \
            }                                                                  \
            if (!seen_++)                                                      \
                fprintf(stderr,                                                \
                        "note: known finding %s hit (once-only note; "         \
                        "CERTAUTHZ_FUZZ_STRICT=1 aborts)\n",                   \
                        id);                                                   \
        }                                                                      \
    } while (0)

FUZZ_HELPER void fuzz_init(void)
{
    const char *s = getenv("CERTAUTHZ_FUZZ_STRICT");
    fuzz_strict = s && *s && strcmp(s, "0") != 0;
    if (apr_initialize() != APR_SUCCESS) {
        fputs("apr_initialize failed\n", stderr);
        abort();
    }
    OPENSSL_init_crypto(
        OPENSSL_INIT_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_ADD_ALL_DIGESTS, NULL);
}

/* A pool of its own for one input, on an allocator it owns: destroying it
 * gives every block back to malloc, so use after destroy is visible to
 * AddressSanitizer and nothing survives from one input to the next. */
FUZZ_HELPER apr_pool_t *input_pool(void)
{
    apr_allocator_t *a;
    apr_pool_t *p;

    if (apr_allocator_create(&a) != APR_SUCCESS)
        abort();
    apr_allocator_max_free_set(a, 1);
    if (apr_pool_create_ex(&p, NULL, NULL, a) != APR_SUCCESS)
        abort();
    apr_allocator_owner_set(a, p);
    return p;
}

FUZZ_HELPER void input_done(apr_pool_t *p)
{
    apr_pool_destroy(p);
    ERR_clear_error(); /* OpenSSL's error queue: no state between inputs */
}

FUZZ_HELPER int has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return 1;
    return 0;
}

FUZZ_HELPER int has_upper(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            return 1;
    return 0;
}

/* printable form of a byte string, for messages */
FUZZ_HELPER const char *show(const char *s, size_t n, apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    size_t lim = n > 200 ? 200 : n;
    char *o = apr_palloc(p, 4 * lim + 8), *d = o;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7F || c == '\\') {
            *d++ = '\\';
            *d++ = 'x';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
        else {
            *d++ = (char)c;
        }
    }
    if (lim < n)
        memcpy(d, "...", 3), d += 3;
    *d = '\0';
    return o;
}

/* ---- DN round trip (fuzz_dn, fuzz_facts) ------------------------------ */

/* Known finding DN-LONG-OID (residual): the DN parser takes attribute
 * types of at most this many bytes (MAX_TYPE_LEN of certauthz_dn.c: 63 at
 * 1dd6bb6, 1024 at 38de522, 65536 since ff6ba8b), the printer writes an
 * unknown type as its whole dotted OID, so the text of a certificate name
 * with a longer OID does not parse back.  Returns the id when the text has
 * such a type, else NULL. */
#define DN_MAX_TYPE 65536

FUZZ_HELPER const char *dn_text_known_issue(const char *s)
{
    while (*s) {
        const char *t = s;
        while (*s && *s != '=')
            s++;
        if ((size_t)(s - t) > DN_MAX_TYPE)
            return "DN-LONG-OID";
        /* the value: up to an unescaped ',' or '+' */
        while (*s && *s != ',' && *s != '+') {
            if (*s == '\\' && s[1])
                s++;
            s++;
        }
        if (*s)
            s++;
    }
    return NULL;
}

/* parse(text(dn)) must succeed and give a DN equal to dn, with the same
 * key and the same text.  what names the DN in messages. */
FUZZ_HELPER void check_dn_roundtrip(const certauthz_dn_t *dn, const char *what,
                                    apr_pool_t *p)
{
    const char *text = certauthz_dn_text(dn), *why = NULL;
    apr_size_t klen, klen2;
    const char *key = certauthz_dn_key(dn, &klen);
    certauthz_dn_t *again = NULL;
    size_t tlen;

    CHECK(text != NULL && key != NULL, "%s: no text or key", what);
    tlen = strlen(text);
    CHECK(certauthz_utf8_valid(text, tlen), "%s text is not UTF-8: %s", what,
          show(text, tlen, p));
    CHECK(!has_ctl(text, tlen), "%s text has a control character: %s", what,
          show(text, tlen, p));
    CHECK(certauthz_dn_count(dn) >= 0, "%s: negative RDN count", what);
    CHECK((certauthz_dn_count(dn) == 0) == (tlen == 0),
          "%s: %d RDNs but text '%s'", what, certauthz_dn_count(dn),
          show(text, tlen, p));
    CHECK(certauthz_dn_equal(dn, dn), "%s is not equal to itself", what);

    const char *issue = dn_text_known_issue(text);
    if (certauthz_dn_parse(&again, text, tlen, &why, p) != APR_SUCCESS) {
        if (issue) {
            KNOWN(0, issue, "%s text does not parse back: %s (%s)", what,
                  show(text, tlen, p), why ? why : "no reason");
            return;
        }
        CHECK(0, "%s text does not parse back: %s (%s)", what,
              show(text, tlen, p), why ? why : "no reason");
    }
    CHECK(again != NULL, "%s: parse succeeded without a DN", what);
    const char *key2 = certauthz_dn_key(again, &klen2);
    if (issue && !certauthz_dn_equal(dn, again)) {
        KNOWN(0, issue, "%s: parse(text) is another DN: %s", what,
              show(text, tlen, p));
        return;
    }
    CHECK(certauthz_dn_equal(dn, again) && klen == klen2
              && !memcmp(key, key2, klen),
          "%s: parse(text) differs from the DN\n  text: %s\n  key:  %s\n  "
          "key2: %s",
          what, show(text, tlen, p), show(key, klen, p), show(key2, klen2, p));
    CHECK(certauthz_dn_same_issuer(dn, again),
          "%s: parse(text) is not the same issuer", what);
    {
        apr_size_t c1, c2;
        const char *k1 = certauthz_dn_issuer_key(dn, &c1);
        const char *k2 = certauthz_dn_issuer_key(again, &c2);
        CHECK(c1 == c2 && !memcmp(k1, k2, c1),
              "%s: issuer key changes through the text", what);
    }
    CHECK(certauthz_dn_count(dn) == certauthz_dn_count(again),
          "%s: RDN count %d, after round trip %d", what, certauthz_dn_count(dn),
          certauthz_dn_count(again));
    CHECK(!strcmp(text, certauthz_dn_text(again)),
          "%s: text not stable\n  1st: %s\n  2nd: %s", what,
          show(text, tlen, p),
          show(certauthz_dn_text(again), strlen(certauthz_dn_text(again)), p));
}

/* ---- selectors: text form parses back to the same selector ----------- */

/* The text of an exact dn selector: of its DN, or (a map's rule) the text
 * the map keeps. */
FUZZ_HELPER const char *sel_dn_text(const certauthz_selector_t *sel)
{
    return sel->u.dn      ? certauthz_dn_text(sel->u.dn)
           : sel->dn_text ? sel->dn_text
                          : "";
}

FUZZ_HELPER void check_selector_roundtrip(const certauthz_selector_t *sel,
                                          apr_pool_t *p)
{
    const char *text = certauthz_selector_text(sel, p), *why = NULL;
    certauthz_selector_t s2;

    CHECK(text != NULL, "selector without text");
    if (certauthz_selector_parse(&s2, text, strlen(text), &why, p)
        != APR_SUCCESS) {
        const char *issue =
            sel->type == CERTAUTHZ_DN && sel->kind == CERTAUTHZ_SEL_EXACT
                ? dn_text_known_issue(sel_dn_text(sel))
                : NULL;
        if (issue) {
            KNOWN(0, issue, "dn selector does not parse back: %s (%s)",
                  show(text, strlen(text), p), why ? why : "no reason");
            return;
        }
        CHECK(0, "selector text does not parse back: %s (%s)",
              show(text, strlen(text), p), why ? why : "no reason");
    }
    if (sel->type == CERTAUTHZ_DN && sel->kind == CERTAUTHZ_SEL_EXACT
        && !(s2.len == sel->len && !memcmp(s2.value, sel->value, sel->len))) {
        const char *issue = dn_text_known_issue(sel_dn_text(sel));
        if (issue) {
            KNOWN(0, issue, "dn selector changes through its text: %s",
                  show(text, strlen(text), p));
            return;
        }
    }
    CHECK(s2.type == sel->type && s2.kind == sel->kind && s2.len == sel->len
              && !memcmp(s2.value, sel->value, sel->len),
          "selector changes through its text: %s\n  type %d/%d kind %d/%d "
          "value '%s' / '%s'",
          show(text, strlen(text), p), sel->type, s2.type, sel->kind, s2.kind,
          show(sel->value, sel->len, p), show(s2.value, s2.len, p));
    if (sel->kind == CERTAUTHZ_SEL_REGEX)
        CHECK(s2.ngroups == sel->ngroups, "regex groups %u then %u",
              sel->ngroups, s2.ngroups);
}

/* ---- resolution against each_match ----------------------------------- */

typedef struct {
    apr_array_header_t *rules; /* const certauthz_rule_t * */
} matches_t;

FUZZ_HELPER int collect(void *baton, const certauthz_rule_t *rule)
{
    matches_t *m = baton;
    *(const certauthz_rule_t **)apr_array_push(m->rules) = rule;
    return 0;
}

FUZZ_HELPER int first_only(void *baton, const certauthz_rule_t *rule)
{
    *(const certauthz_rule_t **)baton = rule;
    return 1;
}

#define MATCH(m, i) APR_ARRAY_IDX((m)->rules, i, const certauthz_rule_t *)

FUZZ_HELPER int in_list(const matches_t *m, const certauthz_rule_t *r)
{
    for (int i = 0; i < m->rules->nelts; i++)
        if (MATCH(m, i) == r)
            return 1;
    return 0;
}

FUZZ_HELPER void check_name(const char *s, int is_group, apr_pool_t *p)
{
    CHECK(s != NULL, "NULL user or group in a MAPPED identity");
    size_t n = strlen(s);
    CHECK(n > 0, "empty %s in a MAPPED identity", is_group ? "group" : "user");
    CHECK(!has_ctl(s, n), "control character in mapped %s: %s",
          is_group ? "group" : "user", show(s, n, p));
    CHECK(certauthz_utf8_valid(s, n), "mapped %s is not UTF-8: %s",
          is_group ? "group" : "user", show(s, n, p));
    if (is_group)
        CHECK(!memchr(s, ',', n), "',' in mapped group: %s", show(s, n, p));
}

/* Resolve facts against map and check the result against the rules
 * each_match reports (a linear scan with the same semantics, so it also
 * cross-checks the hash index of exact selectors).  checked: the rules
 * whose selector text was already checked (each is checked once an input:
 * a regex selector is compiled again for it). */
FUZZ_HELPER void check_resolution(const certauthz_map_t *map,
                                  const certauthz_facts_t *f, unsigned nlines,
                                  apr_hash_t *checked, apr_pool_t *p)
{
    certauthz_identity_t id;
    certauthz_selector_t tsel;
    matches_t m;
    const certauthz_rule_t *deny = NULL, *allow = NULL, *first = NULL;

    m.rules = apr_array_make(p, 8, sizeof(const certauthz_rule_t *));
    certauthz_map_resolve(&id, map, f, p);
    certauthz_map_each_match(map, f, collect, &m);
    certauthz_map_each_match(map, f, first_only, &first);
    CHECK((m.rules->nelts == 0) == (first == NULL)
              && (!first || first == MATCH(&m, 0)),
          "each_match does not stop when asked to");

    for (int i = 0; i < m.rules->nelts; i++) {
        const certauthz_rule_t *r = MATCH(&m, i);
        CHECK(!strcmp(certauthz_rule_file(map, r), certauthz_map_name(map)),
              "rule file '%s' is not the map's name",
              certauthz_rule_file(map, r));
        CHECK(certauthz_rule_line(r) >= 1 && certauthz_rule_line(r) <= nlines,
              "rule line %u outside 1..%u", certauthz_rule_line(r), nlines);
        if (i)
            CHECK(
                certauthz_rule_line(MATCH(&m, i - 1)) < certauthz_rule_line(r),
                "each_match not in file order (%u then %u)",
                certauthz_rule_line(MATCH(&m, i - 1)), certauthz_rule_line(r));
        const certauthz_dn_t *iss = certauthz_rule_issuer(map, r);
        CHECK(!iss || (f->issuer && certauthz_dn_same_issuer(iss, f->issuer)),
              "rule of line %u is in another issuer's section",
              certauthz_rule_line(r));
        if (!apr_hash_get(checked, &r, sizeof(r))) {
            const certauthz_rule_t **k = apr_pmemdup(p, &r, sizeof(r));
            apr_hash_set(checked, k, sizeof(r), "");
            certauthz_selector_t tmp;
            check_selector_roundtrip(certauthz_rule_selector(map, r, &tmp), p);
        }
        if (certauthz_rule_is_deny(r)) {
            if (!deny)
                deny = r;
        }
        else if (!allow) {
            allow = r;
        }
    }
    switch (id.outcome) {
    case CERTAUTHZ_DENIED:
        CHECK(id.rule && certauthz_rule_is_deny(id.rule),
              "DENIED without a deny rule");
        CHECK(in_list(&m, id.rule),
              "DENIED by line %u, which each_match does not report",
              certauthz_rule_line(id.rule));
        CHECK(!id.user && id.ngroups == 0, "DENIED with an identity");
        break;
    case CERTAUTHZ_MAPPED:
        CHECK(!deny, "MAPPED although deny rule of line %u matches",
              certauthz_rule_line(deny));
        CHECK(id.rule && !certauthz_rule_is_deny(id.rule),
              "MAPPED without an allow rule");
        CHECK(id.rule == allow,
              "MAPPED by line %u but the first matching rule is line %u",
              certauthz_rule_line(id.rule),
              allow ? certauthz_rule_line(allow) : 0);
        check_name(id.user, 0, p);
        CHECK(id.ngroups >= 0, "negative group count");
        CHECK(id.ngroups == 0 || id.groups, "groups missing");
        for (int g = 0; g < id.ngroups; g++)
            check_name(id.groups[g], 1, p);
        {
            const char *all = certauthz_identity_groups(&id, p);
            CHECK(all && (id.ngroups > 0 || !*all), "identity_groups wrong");
        }
        break;
    case CERTAUTHZ_UNMAPPED:
        CHECK(!deny, "UNMAPPED although deny rule of line %u matches",
              certauthz_rule_line(deny));
        /* UNMAPPED names a rule (reason=unusable-rule) when the first
         * matching rule's $N substitution was unusable, or when an allow
         * regex before any match gave up on a value (match limits); such a
         * rule is not a match for each_match */
        if (id.rule) {
            CHECK(!certauthz_rule_is_deny(id.rule)
                      && certauthz_rule_selector(map, id.rule, &tsel)->kind
                             == CERTAUTHZ_SEL_REGEX
                      && (id.rule == allow
                          || (!in_list(&m, id.rule)
                              && (!allow
                                  || certauthz_rule_line(id.rule)
                                         < certauthz_rule_line(allow)))),
                  "UNMAPPED with rule of line %u: not the first match (%u), "
                  "nor a regex before it that gave up",
                  certauthz_rule_line(id.rule),
                  allow ? certauthz_rule_line(allow) : 0);
        }
        else {
            CHECK(!allow, "UNMAPPED although rule of line %u matches",
                  certauthz_rule_line(allow));
        }
        CHECK(!id.user && id.ngroups == 0, "UNMAPPED with an identity");
        break;
    default:
        CHECK(0, "outcome %d", (int)id.outcome);
    }
}

/* Lines of a buffer as the map parser counts them. */
FUZZ_HELPER unsigned count_lines(const char *buf, size_t len)
{
    unsigned n = 1;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    return n;
}

#endif /* CERTAUTHZ_FUZZ_COMMON_H */
