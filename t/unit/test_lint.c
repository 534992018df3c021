/*
 * test_lint.c -- the warnings of `certauthz check` (src/certauthz_lint.c):
 * what counts as an anchored regex, which selectors match everything,
 * selector coverage, shadowed rules (scopes, deny rules, case folding,
 * globs, dns labels), [issuer] sections without a CA, the work limit.
 */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_lint.h"
#include "certauthz_map.h"
#include "certauthz_match.h"
#include "tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NAME "lint.map"

static apr_pool_t *pool;

/* ---- helpers ----------------------------------------------------------- */

static certauthz_selector_t *sel(const char *text)
{
    certauthz_selector_t *s = apr_pcalloc(pool, sizeof(*s));
    const char *why = NULL;
    if (certauthz_selector_parse(s, text, strlen(text), &why, pool)
        != APR_SUCCESS) {
        diag("selector %s does not parse: %s", text, why);
        abort();
    }
    return s;
}

static certauthz_map_t *map(const char *text)
{
    certauthz_map_t *m = NULL;
    apr_array_header_t *errs = NULL;
    if (certauthz_map_parse(&m, NAME, text, strlen(text), &errs, pool)
        != APR_SUCCESS) {
        certauthz_error_t *e = &APR_ARRAY_IDX(errs, 0, certauthz_error_t);
        diag("map does not parse: %u: %s", e->line, e->reason);
        abort();
    }
    return m;
}

/* The warnings of a lint run as "LINE kind[ by LINE]" joined by " | ". */
static const char *summary(apr_array_header_t *w)
{
    const char *s = "";
    for (int i = 0; i < w->nelts; i++) {
        const certauthz_lint_t *x = &APR_ARRAY_IDX(w, i, certauthz_lint_t);
        s = apr_psprintf(pool, "%s%s%u %s", s, i ? " | " : "",
                         x->rule ? certauthz_rule_line(x->rule) : 0,
                         certauthz_lint_kind_name(x->kind));
        if (x->by)
            s = apr_psprintf(pool, "%s by %u", s, certauthz_rule_line(x->by));
    }
    return s;
}

static apr_array_header_t *lint(const char *text,
                                const certauthz_lint_opts_t *o)
{
    apr_array_header_t *w = NULL;
    if (certauthz_lint(&w, map(text), o, pool) != APR_SUCCESS) {
        diag("certauthz_lint failed");
        abort();
    }
    return w;
}

static const certauthz_dn_t *dn(const char *text)
{
    certauthz_dn_t *d;
    const char *why;
    if (certauthz_dn_parse(&d, text, strlen(text), &why, pool) != APR_SUCCESS) {
        diag("DN %s does not parse: %s", text, why);
        abort();
    }
    return d;
}

/* ---- anchoring ---------------------------------------------------------- */

static void test_anchored(void)
{
    static const struct {
        const char *re;
        int anchored;
        const char *why; /* part of the reason when not anchored */
    } cases[] = {
        {"^svc-([a-z0-9-]+)$", 1, NULL},
        {"\\Aalice\\z", 1, NULL},
        {"^alice\\z", 1, NULL},
        {"\\Aalice$", 1, NULL},
        {"(?i)^alice$", 1, NULL},
        {"(?i)(?s)^a.b$", 1, NULL},
        {"(*UCP)^\\w+$", 1, NULL},
        {"^(a|b)$", 1, NULL},
        {"^(?:a|b)$", 1, NULL},
        {"(^a$)", 1, NULL},
        {"(?:^a$)", 1, NULL},
        {"((^a$))", 1, NULL},
        {"(?i:^a$)", 1, NULL},
        {"^a\\\\$", 1, NULL}, /* \\ then the anchor */
        {"^[$]x$", 1, NULL},
        {"^[]$]$", 1, NULL}, /* class of ] and $, then $ */
        {"^[[:alpha:]]+$", 1, NULL},
        {"^\\Qa.b\\E$", 1, NULL},
        {"svc-", 0, "no ^ at the start and no $ at the end"},
        {"^svc-", 0, "no $"},
        {"svc-$", 0, "no ^"},
        {"^a\\$", 0, "no $"}, /* escaped: a literal dollar */
        {"^a[$]", 0, "no $"},
        {"^\\Qa$\\E", 0, "no $"},
        {"^\\Qa$", 0, "no $"}, /* \Q to the end */
        {"^a\\Z", 0, "no $"},  /* \Z allows a final newline */
        {"^a$ ", 0, "no $"},
        {"^a$?", 0, "no $"},
        {"^a|b$", 0, "a | outside any group"},
        {"(^a)|(b$)", 0, "a | outside any group"},
        {"(^a|b$)", 0, "a | outside any group"},
        {"(?m)^a$", 0, "(?m)"},
        {"^a$(?m)", 0, "(?m)"},
        {"(?im)^a$", 0, "(?m)"},
        {"^(?m:a)$", 0, "(?m)"},
        {"(^a)$x", 0, "no $"},
        {"(^a)(b$)", 0, "no ^"}, /* not one group around everything */
        {"\\^a$", 0, "no ^"},
        {"[^a]$", 0, "no ^"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *why = NULL;
        int got =
            certauthz_regex_anchored(cases[i].re, strlen(cases[i].re), &why);
        int want = cases[i].anchored;
        if (!is_int(got, want, "anchored(%s) = %d", cases[i].re, want))
            diag("  why: %s", why ? why : "(none)");
        if (!want && cases[i].why)
            ok(why && strstr(why, cases[i].why), "why(%s) says %s: %s",
               cases[i].re, cases[i].why, why ? why : "(null)");
        if (want)
            ok(why == NULL, "no reason for anchored %s", cases[i].re);
    }
}

/* ---- match-all ---------------------------------------------------------- */

static void test_matches_all(void)
{
    static const char
        *const
            yes[] =
                {
                    "cn~.*",  "cn~(?s).*", "cn~^",   "cn~^.*",
                    "cn~x*",  "cn~(.*)",   "cn~.*$", "cn~^(?:.*)",
                    "cn~\\A", "cn~(?=a)|", "cn:*",   "email:**",
                    "uri:*",  "serial:*",  "ip:*",   "cn~(?i).*",
                    "dn~.*",  "upn~.*?",   "cn~$", /* unanchored: true at the end of every value */
                };
    static const char *const no[] = {
        "cn~^.*$",     "cn~^(.+)$",  "cn~.+",        "cn~^$",
        "cn~\\b",      "cn~(?<=x)|", "cn~a",         "cn~(?=a)",
        "cn~^(a|)\\1", "cn~^(?>a|)", "cn~^a*+",      "dns:*",
        "cn~\\G",      "cn:bob",     "cn~(*ACCEPT)", "cn~(a)?(?(1)b|)",
        "cn~^(?=x)|^", "email:*@*",
    };
    /* values a claimed match-all selector must match */
    static const char *const probes[] = {
        "",
        "a",
        "bob",
        "a\nb",
        "\n",
        "trailing\n",
        "\xc3\xa9t\xc3\xa9",
        "x.y.z",
        "0123456789ABCDEF0123456789ABCDEF",
    };
    for (size_t i = 0; i < N(yes); i++) {
        certauthz_selector_t *s = sel(yes[i]);
        int all = certauthz_selector_matches_all(s);
        ok(all, "%s matches everything", yes[i]);
        for (size_t k = 0; all && k < N(probes); k++) {
            certauthz_value_t v = {probes[k], probes[k], strlen(probes[k])};
            int m = certauthz_selector_match_value(s, &v, NULL);
            if (m != 1)
                ok(0, "%s really matches %s", yes[i],
                   tap_show(probes[k], strlen(probes[k])));
        }
    }
    for (size_t i = 0; i < N(no); i++)
        ok(!certauthz_selector_matches_all(sel(no[i])),
           "%s is not shown to match everything", no[i]);
    /* and those that are not shown indeed miss some value (or are
     * position-dependent): a few spot checks */
    {
        certauthz_value_t nl = {"a\nb", "a\nb", 3};
        ok(certauthz_selector_match_value(sel("cn~^.*$"), &nl, NULL) == 0,
           "cn~^.*$ does not match a value with a newline");
    }
}

/* ---- coverage ----------------------------------------------------------- */

static void test_covers(void)
{
    static const struct {
        const char *a, *b;
        int covers;
    } cases[] = {
        /* glob over exact */
        {"email:*@example.com", "email:Alice@Example.com", 1},
        {"email:*@example.com", "email:alice@example.org", 0},
        {"dns:*.example.com", "dns:www.example.com", 1},
        {"dns:*.example.com", "dns:a.b.example.com", 0},
        {"dns:*.*.example.com", "dns:a.b.example.com", 1},
        {"uri:spiffe://x/*", "uri:spiffe://x/ns/a", 1},
        {"uri:spiffe://x/*", "uri:spiffe://y/ns/a", 0},
        {"cn:svc-*", "cn:svc-a", 1},
        {"cn:svc-*", "cn:SVC-a", 0}, /* cn is case-sensitive */
        {"ip:127.*", "ip:127.0.0.1", 1},
        {"ip:2001:db8::*", "ip:2001:DB8:0::1", 1}, /* canonical ::1 form */
        {"serial:4F*", "serial:4f:2a:9c:01", 1},
        {"serial:4F*", "serial:004F2A", 1}, /* leading zeros go */
        {"serial:5*", "serial:4F2A", 0},
        /* glob over glob */
        {"uri:spiffe://x/*", "uri:spiffe://x/ns/*", 1},
        {"uri:spiffe://x/ns/*", "uri:spiffe://x/*", 0},
        {"dns:*.example.com", "dns:w*.example.com", 1},
        {"dns:*.example.com", "dns:*.*.example.com", 0},
        {"dns:*.*.example.com", "dns:*.example.com", 0},
        {"email:*", "email:*@x.org", 1},
        {"email:a*", "email:*a", 0},
        /* regex over exact */
        {"cn~^svc-", "cn:svc-a", 1},
        {"cn~^svc-[a-z]+$", "cn:svc-a", 1},
        {"cn~^svc-[a-z]+$", "cn:svc-1", 0},
        {"email~^alice@", "email:alice@x.org", 0}, /* ALICE@X.ORG escapes */
        {"email~(?i)^alice@", "email:Alice@X.org", 1},
        {"email~(?i)^alice@x\\.org$", "email:alice@x.org", 1},
        {"email~(?i)(?-i)^alice@", "email:alice@x.org", 0},
        {"email~(?i)^a(?-i:lice)@", "email:alice@x.org", 0},
        {"email~(?i)^bob@", "email:alice@x.org", 0},
        {"email~^1234@5$", "email:1234@5", 1}, /* no letter: one form */
        /* the three probe spellings alone do not make a regex case-blind */
        {"email~^(alice@x\\.org|ALICE@X\\.ORG|aLiCe@X\\.oRg)$",
         "email:alice@x.org", 0},
        {"dns~(?i)\\.example\\.com$", "dns:WWW.example.com", 1},
        {"upn~(?i)@corp\\.example\\.com$", "upn:carol@corp.example.com", 1},
        {"dn~^CN=bob,", "dn:cn=bob, o=Example", 1},
        {"dn~^CN=bob,", "dn:CN=Bob,O=Example", 0},
        {"ip~^127\\.", "ip:127.0.0.1", 1},
        {"serial~^4F", "serial:4f2a", 1},
        {"sha256~^00",
         "sha256:"
         "00112233445566778899AABBCCDDEEFF"
         "00112233445566778899aabbccddeeff",
         1},
        /* regex over regex */
        {"cn~^svc-", "cn~^svc-", 1},
        {"cn~^svc-", "cn~^svc-x", 0}, /* not shown */
        /* match-all over anything of the type */
        {"cn~.*", "cn~^svc-", 1},
        {"cn~.*", "cn:*", 1},
        {"cn:*", "cn~^a", 1},
        {"dns:*", "dns~^a$", 0},
        {"dns:*", "dns:a", 1},
        {"dns:*", "dns:a.b", 0},
        /* exact over exact */
        {"cn:bob", "cn:bob", 1},
        {"cn:bob", "cn:bobby", 0},
        {"email:Bob@x.org", "email:bob@X.ORG", 1},
        {"cn:bob", "cn~^bob$", 0}, /* not shown */
        {"cn:bob", "cn:b*", 0},
        /* types never mix */
        {"cn~.*", "email:a@b", 0},
        {"email:*", "cn:a", 0},
        {"dns:*.example.com", "uri:x.example.com", 0},
    };
    for (size_t i = 0; i < N(cases); i++)
        is_int(certauthz_selector_covers(sel(cases[i].a), sel(cases[i].b)),
               cases[i].covers, "%s %s %s", cases[i].a,
               cases[i].covers ? "covers" : "does not cover", cases[i].b);

    ok(certauthz_regex_ignores_case("(?i)^a$", 7), "(?i) ignores case");
    ok(certauthz_regex_ignores_case("(?si)^a$", 8), "(?si) ignores case");
    ok(!certauthz_regex_ignores_case("^(?i)a$", 7),
       "(?i) later is not at the start");
    ok(!certauthz_regex_ignores_case("(?i-i)^a$", 9), "(?i-i) cancels");
    ok(!certauthz_regex_ignores_case("(?i)^a(?^)b$", 12), "(?^) resets");
    ok(!certauthz_regex_ignores_case("^a$", 3), "no option");
}

/* ---- lint of whole maps ------------------------------------------------- */

static void test_clean_map(void)
{
    /* the README's example map: nothing to say about it */
    const char *text =
        "email:alice@example.com                     alice        "
        "staff,admins\n"
        "cn:bob                                      bob          staff\n"
        "uri:spiffe://example.org/ns/prod/sa/api     api-prod     services\n"
        "upn:carol@corp.example.com                  carol\n"
        "dn:\"CN=Dave Smith,OU=Ops,O=Example\"         dave         ops\n"
        "dns:*.build.example.com                     ci-robot     robots\n"
        "cn~^svc-([a-z0-9-]+)$                       svc-$1       services\n"
        "deny serial:4F2A9C01                        # a lost laptop\n"
        "\n"
        "[issuer \"CN=Partner CA,O=Partner Inc\"]\n"
        "cn~^(.+)$                                   partner-$1   partners\n"
        "cn:bob                                      partner-bob\n";
    const certauthz_dn_t *cas[2];
    certauthz_lint_opts_t o = {1, 2, cas, 0};

    /* the section's cn:bob never wins: the global cn:bob (line 2) comes
     * first and applies to every issuer (and so does cn~^(.+)$) */
    is_str(summary(lint(text, NULL)), "12 shadowed by 2",
           "README map plus a section cn:bob: shadowed by the first rule "
           "that always wins");
    /* without that line: no warning at all */
    {
        char *t = apr_pstrdup(pool, text);
        *strstr(t, "cn:bob                                      partner-bob") =
            '\0';
        is_str(summary(lint(t, NULL)), "", "README map: no warning");
        cas[0] = dn("CN=Example Root CA,O=Example");
        cas[1] = dn("cn=partner  ca, o=PARTNER INC"); /* as OpenSSL compares */
        is_str(summary(lint(t, &o)), "",
               "README map with both CAs: no warning");
        o.ncas = 1;
        {
            apr_array_header_t *w = lint(t, &o);
            const certauthz_lint_t *x;
            is_str(summary(w), "11 issuer-without-ca",
                   "README map without the partner CA: the section is "
                   "reported at its first rule");
            x = &APR_ARRAY_IDX(w, 0, certauthz_lint_t);
            ok(w->nelts == 1 && x->issuer
                   && !strcmp(certauthz_dn_text(x->issuer),
                              "CN=Partner CA,O=Partner Inc"),
               "the warning names the section's DN");
            ok(w->nelts == 1
                   && strstr(x->reason, "[issuer \"CN=Partner CA,"
                                        "O=Partner Inc\"]")
                   && strstr(x->reason, "from line 11"),
               "reason: %s", w->nelts ? x->reason : "");
        }
        o.ncas = 0;
        is_str(summary(lint(t, &o)), "11 issuer-without-ca",
               "no CA at all: every section is reported");
        o.check_issuers = 0;
        is_str(summary(lint(t, &o)), "", "issuer check off: nothing");
    }
}

static void test_shadowed(void)
{
    const char *text =
        /*  1 */ "cn~^svc-                    svc\n"
                 /*  2 */ "cn:svc-a                    a\n"
                 /*  3 */ "email:*@example.com         staff\n"
                 /*  4 */ "email:Alice@Example.com     alice\n"
                 /*  5 */ "cn:carol                    carol\n"
                 /*  6 */ "[issuer \"CN=Partner CA\"]\n"
                 /*  7 */ "cn:svc-b                    b\n"
                 /*  8 */ "cn:bob                      pbob\n"
                 /*  9 */ "cn:carol                    pcarol\n"
                 /* 10 */ "cn:*                        anyone\n"
                 /* 11 */ "[any-issuer]\n"
                 /* 12 */ "cn:bob                      bob\n"
                 /* 13 */ "[issuer \"cn=partner  ca\"]\n"
                 /* 14 */ "cn:zed                      pzed\n"
                 /* 15 */ "[issuer \"CN=Other CA\"]\n"
                 /* 16 */ "cn:zed                      ozed\n"
                 /* 17 */ "[any-issuer]\n"
                 /* 18 */ "deny cn:svc-c\n"
                 /* 19 */ "deny email:*\n"
                 /* 20 */ "email:bob@example.org       bob2\n"
                 /* 21 */ "uri~.*                      anyuri\n"
                 /* 22 */ "uri:spiffe://a/b            u1\n"
                 /* 23 */ "uri:spiffe://*              u2\n"
                 /* 24 */ "uri~^spiffe://.*$           u3\n"
                 /* 25 */ "dns:*.example.com           d1\n"
                 /* 26 */ "dns:a.b.example.com         d2\n"
                 /* 27 */ "dns:w*.example.com          d3\n"
                 /* 28 */ "email~^x@y\\.org$            x1\n"
                 /* 29 */ "email:x@y.org.uk            x2\n"
                 /* 30 */ "dn~^CN=dave,                 dave1\n"
                 /* 31 */ "dn:\"cn=dave,o=Example\"       dave2\n";
    apr_array_header_t *w = lint(text, NULL);

    is_str(summary(w),
           "1 unanchored-regex | 2 shadowed by 1 | 4 shadowed by 3 | "
           "7 shadowed by 1 | 9 shadowed by 5 | 14 shadowed by 10 | "
           "22 shadowed by 21 | 23 shadowed by 21 | 24 shadowed by 21 | "
           "27 shadowed by 25 | 30 unanchored-regex | 31 shadowed by 30",
           "shadowed rules: global over section, section over the same "
           "section reopened with another spelling, match-all, globs, "
           "regexes; not: section over global, other sections, deny rules, "
           "dns labels, suffixes after $");
    for (int i = 0; i < w->nelts; i++) {
        const certauthz_lint_t *x = &APR_ARRAY_IDX(w, i, certauthz_lint_t);
        if (x->kind == CERTAUTHZ_LINT_SHADOWED
            && certauthz_rule_line(x->rule) == 4) {
            ok(!strncmp(x->reason, "shadowed by " NAME ":3: ", 17),
               "reason starts with 'shadowed by FILE:LINE': %s", x->reason);
            ok(strstr(x->reason, "email:*@example.com")
                   && strstr(x->reason, "email:alice@example.com")
                   && strstr(x->reason, "every issuer"),
               "reason names both selectors and the scope: %s", x->reason);
        }
        if (x->kind == CERTAUTHZ_LINT_SHADOWED
            && certauthz_rule_line(x->rule) == 14)
            ok(strstr(x->reason, "the same [issuer] section") != NULL,
               "scope of a section rule: %s", x->reason);
        if (x->kind == CERTAUTHZ_LINT_UNANCHORED
            && certauthz_rule_line(x->rule) == 1)
            is_str(x->reason,
                   "unanchored regex cn~^svc-: no $ (or \\z) at the end: it "
                   "matches any value that starts with a match",
                   "unanchored reason");
    }
}

static void test_deny_and_case(void)
{
    /* deny rules: warned when unanchored, never shadowed, never shadow */
    is_str(summary(lint("deny cn~evil\n"
                        "deny cn:*\n"
                        "cn:bob bob\n"
                        "cn~^a$ b\n"
                        "deny cn~^a\n",
                        NULL)),
           "1 unanchored-regex | 5 unanchored-regex",
           "deny rules: only the anchoring warning");
    /* email compares ignoring case: a case-sensitive regex leaves other
     * spellings to the exact rule */
    is_str(summary(lint("email~^alice@x\\.org$ a1\n"
                        "email:alice@x.org a2\n"
                        "email~(?i)^bob@x\\.org$ b1\n"
                        "email:BOB@x.org b2\n"
                        "cn~^alice$ c1\n"
                        "cn:alice c2\n"
                        "cn:Alice c3\n",
                        NULL)),
           "4 shadowed by 3 | 6 shadowed by 5",
           "case: (?i) regexes shadow folded types, plain ones only "
           "case-sensitive types");
    /* a rule is reported once, with the first rule that always wins */
    is_str(summary(lint("cn:a* a\ncn:ab* ab\ncn~^.* all\ncn:abc abc\n", NULL)),
           "2 shadowed by 1 | 4 shadowed by 1", "first winner reported");
}

static void test_limit(void)
{
    certauthz_lint_opts_t o = {0, 0, NULL, 3};
    apr_array_header_t *w =
        lint("cn:a* a\ncn:b* b\ncn:c1 c\ncn:d1 d\ncn:a1 a1\ncn~^x y\n", &o);
    const certauthz_lint_t *last =
        w->nelts ? &APR_ARRAY_IDX(w, w->nelts - 1, certauthz_lint_t) : NULL;

    /* tests: line 2 vs 1 (1), line 3 vs 1,2 (3), line 4 vs 1: 4 > 3 */
    is_str(summary(w), "6 unanchored-regex | 4 lint-incomplete",
           "work limit: the check stops and says where; line 5 "
           "(shadowed) is not reported; anchoring is still checked");
    ok(last && strstr(last->reason, "from line 4"), "reason: %s",
       last ? last->reason : "");
    o.max_tests = 0;
    is_str(summary(lint("cn:a* a\ncn:b* b\ncn:c1 c\ncn:d1 d\ncn:a1 a1\n", &o)),
           "5 shadowed by 1", "default limit: complete");
}

static void test_kind_names(void)
{
    is_str(certauthz_lint_kind_name(CERTAUTHZ_LINT_UNANCHORED),
           "unanchored-regex", "kind name");
    is_str(certauthz_lint_kind_name(CERTAUTHZ_LINT_SHADOWED), "shadowed",
           "kind name");
    is_str(certauthz_lint_kind_name(CERTAUTHZ_LINT_NO_CA), "issuer-without-ca",
           "kind name");
    is_str(certauthz_lint_kind_name(CERTAUTHZ_LINT_INCOMPLETE),
           "lint-incomplete", "kind name");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_anchored();
    test_matches_all();
    test_covers();
    test_clean_map();
    test_shadowed();
    test_deny_and_case();
    test_limit();
    test_kind_names();
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
