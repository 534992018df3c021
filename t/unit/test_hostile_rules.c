/*
 * test_hostile_rules.c -- rules written to trick the matcher, each resolved
 * against a real certificate: case tricks per type, Unicode lookalikes (no
 * normalisation, only ASCII case folding), regex anchoring and the final
 * newline, glob edge cases, and selectors that try to smuggle a second
 * selector, a newline or a group through quoting or captures.
 */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "../certgen.h"
#include "tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

typedef struct {
    const char *map;  /* map text */
    const char *cert; /* certgen options */
    const char *want; /* "user" mapped, "-" unmapped, "!" denied, "E" error */
    const char *why;
} row_t;

static const char *decide(const char *map, const char *opts)
{
    apr_array_header_t *errs;
    certauthz_map_t *m;
    certauthz_facts_t *f;
    certauthz_identity_t id;
    X509 *x;

    if (certauthz_map_parse(&m, "hostile.map", map, strlen(map), &errs, pool)
        != APR_SUCCESS)
        return "E";
    x = certgen_quick(opts);
    if (certauthz_facts_from_x509(&f, x, pool) != APR_SUCCESS) {
        X509_free(x);
        return "facts failed";
    }
    X509_free(x);
    certauthz_map_resolve(&id, m, f, pool);
    if (id.outcome == CERTAUTHZ_DENIED)
        return "!";
    if (id.outcome == CERTAUTHZ_UNMAPPED)
        return "-";
    return apr_pstrcat(pool, id.user, "/", certauthz_identity_groups(&id, pool),
                       NULL);
}

static void run(const char *title, const row_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        is_str(decide(t[i].map, t[i].cert), t[i].want, "%s: %s", title,
               t[i].why);
}

static void test_case_tricks(void)
{
    static const row_t t[] = {
        {"email:Alice@Example.COM a\n", "--san email:alice@example.com", "a/",
         "email folds ASCII case"},
        {"dns:WWW.Example.com a\n", "--san dns:www.EXAMPLE.com", "a/",
         "dns folds ASCII case"},
        {"upn:CAROL@corp.example a\n", "--san upn:carol@CORP.example", "a/",
         "upn folds ASCII case"},
        {"cn:Alice a\n", "--subject /CN=alice", "-", "cn is case-sensitive"},
        {"uri:SPIFFE://example.org/a a\n", "--san uri:spiffe://example.org/a",
         "-", "uri is case-sensitive"},
        {"dn:\"CN=Alice\" a\n", "--subject /CN=alice", "-",
         "DN values are case-sensitive"},
        {"dn:\"cn=alice\" a\n", "--subject /CN=alice", "a/",
         "DN attribute names are not"},
        {"deny email:ALICE@EXAMPLE.COM\nemail:alice@example.com a\n",
         "--san email:alice@example.com", "!",
         "a deny rule in other case still denies"},
        {"deny dns:*.EVIL.example\ndns:*.evil.example a\n",
         "--san dns:x.evil.example", "!", "deny glob folds case too"},
        {"cn~^alice$ a\n", "--subject /CN=ALICE", "-",
         "regexes are case-sensitive unless (?i)"},
        {"cn~(?i)^alice$ a\n", "--subject /CN=ALICE", "a/", "(?i) works"},
    };
    run("case", t, N(t));
}

static void test_lookalikes(void)
{
    static const row_t t[] = {
        /* Cyrillic a (U+0430) in the rule, Latin a in the certificate */
        {"cn:\xD0\xB0lice a\n", "--subject /CN=alice", "-",
         "Cyrillic a is not Latin a"},
        {"cn:alice a\n", "--subject /CN=\\xD0\\xB0lice", "-",
         "Latin rule, Cyrillic certificate"},
        /* Turkish dotted capital I: no Unicode case folding */
        {"email:AL\xC4\xB0"
         "CE@example.com a\n",
         "--san email:alice@example.com", "-", "dotted I folds to nothing"},
        /* Kelvin sign K (U+212A) does not fold to k */
        {"dns:\xE2\x84\xAA.example.com a\n", "--san dns:k.example.com", "-",
         "Kelvin sign is not k"},
        /* fullwidth a (U+FF41) */
        {"cn:\xEF\xBD\x81lice a\n", "--subject /CN=alice", "-",
         "fullwidth a is not a"},
        /* precomposed e-acute vs e + combining acute: no NFC/NFD */
        {"cn:caf\xC3\xA9 a\n", "--subject /CN=cafe\\xCC\\x81", "-",
         "NFC rule, NFD certificate"},
        {"cn:caf\xC3\xA9 a\n", "--subject /CN=caf\\xC3\\xA9", "a/",
         "the same bytes match"},
        /* a glob does not cross into lookalikes either */
        {"dns:*.example.com a\n",
         "--san dns:x.example\xE3\x80\x82"
         "com",
         "-", "ideographic full stop is not a dot"},
    };
    run("lookalike", t, N(t));
}

static void test_regex_anchoring(void)
{
    static const row_t t[] = {
        {"cn~svc- a\n", "--subject /CN=evil-svc-x", "a/",
         "unanchored regex matches inside (documented)"},
        {"cn~^svc- a\n", "--subject /CN=evil-svc-x", "-", "^ anchors"},
        {"cn~^svc-([a-z]+)$ $1\n", "--subject /CN=svc-pay\\x0A", "-",
         "$ does not match before a final newline"},
        {"cn~^svc-([a-z]+)$ $1\n", "--subject /CN=svc-pay", "pay/",
         "... but at the very end"},
        {"cn~^svc-(.*)$ $1\n", "--subject /CN=svc-a\\x0Ab", "-",
         "a captured newline is no user"},
        {"cn~^(.*)$ u $1\n", "--subject /CN=x,admins", "-",
         "a captured comma cannot add a group"},
        {"cn~^(.*)$ u g-$1\n", "--subject /CN=ok", "u/g-ok",
         "a clean capture does"},
        {"cn~^(a)?b$ u$1x\n", "--subject /CN=b", "ux/",
         "an unset group substitutes nothing"},
        {"cn~^(a)?b$ $1\n", "--subject /CN=b", "-",
         "an empty user from an unset group is no user"},
    };
    run("regex", t, N(t));
}

static void test_globs(void)
{
    static const row_t t[] = {
        {"cn:* any\n", "--subject /CN=x", "any/", "* alone matches any cn"},
        {"cn:* any\n", "--subject /O=x", "-", "... but not a missing cn"},
        {"cn:** any\n", "--subject /CN=x", "any/", "** is *"},
        {"dns:* any\n", "--san dns:a.b", "-", "dns * is one label"},
        {"dns:*.* any\n", "--san dns:a.b", "any/", "two labels"},
        {"dns:*.example.com a\n", "--san dns:.example.com", "a/",
         "* matches an empty label"},
        {"dns:*.example.com a\n", "--san dns:example.com", "-",
         "but the dot must be there"},
        {"email:*@example.com a\n", "--san email:x@evil.com@example.com", "a/",
         "email * crosses anything (documented)"},
        {"uri:spiffe://example.org/* a\n",
         "--san uri:spiffe://example.org.evil/x", "-",
         "a glob ending in /* keeps its prefix"},
        {"uri:spiffe://example.org* a\n",
         "--san uri:spiffe://example.org.evil/x", "a/",
         "... and one without the / does not (documented)"},
        {"dns:www.example.com a\n", "--san dns:*.example.com", "-",
         "a certificate's own * is data, not a pattern"},
        {"dns:*.example.com a\n", "--san dns:*.example.com", "a/",
         "... a glob matches it as one label of data"},
    };
    run("glob", t, N(t));
}

static void test_smuggling(void)
{
    static const row_t t[] = {
        {"dn:\"\" nobody\n", "--subject '' --san dns:a.example", "nobody/",
         "dn:\"\" is the empty subject"},
        {"dn:\"\" nobody\n", "--subject /CN=a", "-", "... and nothing else"},
        {"cn:\"a email:b\" u\n", "--subject /CN=x --san email:b", "-",
         "a quoted space does not start a second selector"},
        {"cn:\"a email:b\" u\n", "--subject '/CN=a email:b'", "u/",
         "it is part of the cn value"},
        {"cn:\"x\\ny\" u\n", "--subject /CN=x\\x0Ay", "-",
         "backslash-n in quotes is two characters, not a newline"},
        {"cn:\"x\\ny\" u\n", "--subject /CN=x\\\\ny", "u/",
         "... matching a literal backslash and n"},
        {"cn:a u # email:b v\n", "--subject /CN=b --san email:b", "-",
         "a comment hides the rest of the line"},
        {"cn:\"a#b\" u\n", "--subject /CN=a#b", "u/", "# inside quotes"},
        {"cn:a u \"staff,admins\"\n", "--subject /CN=a", "u/staff,admins",
         "groups are one field"},
        {"cn:a u staff admins\n", "--subject /CN=a", "E",
         "a space-separated fourth field is an error, not a group"},
        {"cn:a\x0B"
         "b u\n",
         "--subject /CN=a\\x0Bb", "u/",
         "a vertical tab is data, not a field separator"},
        {"cn:a \"u\x01\"\n", "--subject /CN=a", "E",
         "a control character in a user is an error"},
    };
    run("smuggle", t, N(t));
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_case_tricks();
    test_lookalikes();
    test_regex_anchoring();
    test_globs();
    test_smuggling();
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
