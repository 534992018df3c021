/*
 * test_match.c -- selectors: parse errors, globs (with the dns dot rule),
 * per-type comparison rules, regexes (captures, anchoring, DOLLAR_ENDONLY,
 * match limits).
 */
#include <ctype.h>
#include <time.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_match.h"
#include "../certgen.h"
#include "tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

static certauthz_facts_t *facts(const char *opts)
{
    X509 *x = certgen_quick(opts);
    certauthz_facts_t *f = NULL;
    if (certauthz_facts_from_x509(&f, x, pool) != APR_SUCCESS)
        abort();
    X509_free(x);
    return f;
}

/* Compile a selector; NULL (with a diagnostic) when it does not parse. */
static certauthz_selector_t *sel_r(const char *text, const char **reason)
{
    certauthz_selector_t *s = apr_pcalloc(pool, sizeof(*s));
    const char *why = NULL;
    apr_status_t rv =
        certauthz_selector_parse(s, text, strlen(text), &why, pool);
    if (reason)
        *reason = why;
    return rv == APR_SUCCESS ? s : NULL;
}

static certauthz_selector_t *sel(const char *text)
{
    const char *why;
    certauthz_selector_t *s = sel_r(text, &why);
    if (!s)
        diag("  selector %s does not parse: %s", tap_show(text, strlen(text)),
             why ? why : "(no reason)");
    return s;
}

/* A fact value as the facts code builds it. */
static certauthz_value_t value(const char *text, int fold)
{
    certauthz_value_t v;
    char *k = apr_pstrdup(pool, text);
    if (fold)
        for (char *c = k; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    v.text = text;
    v.key = k;
    v.key_len = strlen(k);
    return v;
}

static void test_parse_errors(void)
{
    static const struct {
        const char *text, *reason;
    } t[] = {
        {"foo:bar", "unknown selector type"},
        {"common:bar", "unknown selector type"},
        {"cnn:bar", "unknown selector type"},
        {"cn", "not type:value or type~regex"},
        {"cnalice", "not type:value or type~regex"},
        {"cn=alice", "not type:value or type~regex"},
        {"cn alice", "not type:value or type~regex"},
        {"", "not type:value or type~regex"},
        {"cn~", "empty regex"},
        {"cn~(", "bad regex"},
        {"cn~[a-", "bad regex"},
        {"cn~a{2,1}", "bad regex"},
        {"cn~*a", "bad regex"},
        {"cn~\xFF", "UTF-8"},
        {"cn:", "empty"},
        {"email:", "empty"},
        {"sha256:", "empty"},
        {"cn:\xFF", "UTF-8"},
        {"cn:a\xC3", "UTF-8"},
        {"sha256:"
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A0",
         "bad sha256"},
        {"sha256:"
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A080",
         "bad sha256"},
        {"sha256:"
         "9G86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
         "bad sha256"},
        {"sha256:"
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A*",
         "bad sha256"},
        {"sha256:*", "bad sha256"},
        {"sha256:9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:"
         "2B:"
         "0B:82:2C:D1:5D:6C:15:B0:F0:0A:0",
         "bad sha256"},
        {"spki:abc", "bad spki"},
        {"spki:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF*=", "bad spki"},
        {"spki:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=", "bad spki"},
        {"spki:*", "bad spki"},
        {"serial:XYZ", "bad serial"},
        {"serial:0x1F", "bad serial"},
        {"serial:4F:", "bad serial"},
        {"serial:", "empty"},
        {"serial:XY*", "bad serial"},
        {"ip:1.2.3", "bad IP"},
        {"ip:300.1.1.1", "bad IP"},
        {"ip:abc", "bad IP"},
        {"ip:2001:db8::1::2", "bad IP"},
        {"ip:10.0.0.0/8", "bad IP"},
        {"dn:CN=a,", "bad DN"},
        {"dn:foo=bar", "bad DN"},
        {"dn:CN=a;O=b", "bad DN"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *reason = NULL;
        certauthz_selector_t *s = sel_r(t[i].text, &reason);
        ok(!s && reason && strstr(reason, t[i].reason),
           "selector %s rejected: want '%s', got '%s'",
           tap_show(t[i].text, strlen(t[i].text)), t[i].reason,
           s        ? "(accepted)"
           : reason ? reason
                    : "(no reason)");
    }
    const char *reason = NULL;
    sel_r("cn~a(b", &reason);
    ok(reason && strstr(reason, "offset"),
       "bad regex reason has the offset: "
       "%s",
       reason);
    sel_r("xyz:1", &reason);
    ok(reason && strstr(reason, "'xyz'"), "unknown type is named: %s", reason);

    /* selector_make (Require arguments) */
    certauthz_selector_t s;
    ok(certauthz_selector_make(&s, CERTAUTHZ_SHA256, "*", 1, &reason, pool)
           == CERTAUTHZ_EBADINPUT,
       "selector_make sha256 '*' rejected");
    ok(certauthz_selector_make(&s, CERTAUTHZ_SPKI, "*", 1, &reason, pool)
           == CERTAUTHZ_EBADINPUT,
       "selector_make spki '*' rejected");
    ok(certauthz_selector_make(&s, CERTAUTHZ_CN, "", 0, &reason, pool)
           == CERTAUTHZ_EBADINPUT,
       "selector_make empty value rejected");
    ok(certauthz_selector_make(&s, CERTAUTHZ_DNS, "*.Example.COM", 13, &reason,
                               pool)
               == APR_SUCCESS
           && s.kind == CERTAUTHZ_SEL_GLOB && s.len == 13
           && !memcmp(s.value, "*.example.com", 13),
       "selector_make dns glob is folded");
    ok(certauthz_selector_make(&s, CERTAUTHZ_CN, "Al*", 3, &reason, pool)
               == APR_SUCCESS
           && s.kind == CERTAUTHZ_SEL_GLOB && !memcmp(s.value, "Al*", 3),
       "selector_make cn glob is not folded");
}

static void test_kinds_and_text(void)
{
    static const struct {
        const char *text;
        int kind;
        const char *back;
    } t[] = {
        {"cn:alice", CERTAUTHZ_SEL_EXACT, "cn:alice"},
        {"cn:Al*", CERTAUTHZ_SEL_GLOB, "cn:Al*"},
        {"cn~^svc-(.+)$", CERTAUTHZ_SEL_REGEX, "cn~^svc-(.+)$"},
        {"email:Alice@Example.COM", CERTAUTHZ_SEL_EXACT,
         "email:alice@example.com"},
        {"dns:*.Example.com", CERTAUTHZ_SEL_GLOB, "dns:*.example.com"},
        {"uri:spiffe://Example.org/*", CERTAUTHZ_SEL_GLOB,
         "uri:spiffe://Example.org/*"},
        {"dn:cn = a , o = b", CERTAUTHZ_SEL_EXACT, "dn:CN=a,O=b"},
        {"dn:CN=a*b", CERTAUTHZ_SEL_EXACT, "dn:CN=a*b"},
        {"dn~^CN=a", CERTAUTHZ_SEL_REGEX, "dn~^CN=a"},
        {"ip:2001:DB8::1", CERTAUTHZ_SEL_EXACT, "ip:2001:db8::1"},
        {"ip:10.0.*", CERTAUTHZ_SEL_GLOB, "ip:10.0.*"},
        {"serial:00:0a", CERTAUTHZ_SEL_EXACT, "serial:A"},
        {"serial:4f2a*", CERTAUTHZ_SEL_GLOB, "serial:4F2A*"},
        {"sha256:9f:86:d0:81:88:4c:7d:65:9a:2f:ea:a0:c5:5a:d0:15:a3:bf:4f:1b:"
         "2b:"
         "0b:82:2c:d1:5d:6c:15:b0:f0:0a:08",
         CERTAUTHZ_SEL_EXACT,
         "sha256:"
         "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"},
        {"spki:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
         CERTAUTHZ_SEL_EXACT,
         "spki:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_selector_t *s = sel(t[i].text);
        ok(s && s->kind == t[i].kind, "%s is %s", t[i].text,
           t[i].kind == CERTAUTHZ_SEL_EXACT  ? "exact"
           : t[i].kind == CERTAUTHZ_SEL_GLOB ? "a glob"
                                             : "a regex");
        is_str(s ? certauthz_selector_text(s, pool) : NULL, t[i].back,
               "selector_text(%s)", t[i].text);
    }
    certauthz_selector_t *s = sel("cn~^(a)(b)?(?:c)(d)$");
    is_int(s ? s->ngroups : -1, 3, "ngroups counts capture groups only");
}

static void test_glob(void)
{
    static const struct {
        const char *pat, *s;
        int dns, match;
    } t[] = {
        {"*.example.com", "a.example.com", 1, 1},
        {"*.example.com", "a.b.example.com", 1, 0},
        {"*.example.com", "a.b.example.com", 0, 1},
        {"*.example.com", "example.com", 1, 0},
        {"*.example.com", "a.example.org", 1, 0},
        {"*", "a.b", 1, 0},
        {"*", "a.b", 0, 1},
        {"*", "ab", 1, 1},
        {"*", "", 0, 1},
        {"**", "abc", 0, 1},
        {"**", "a.b", 1, 0},
        {"**.com", "x.com", 1, 1},
        {"a**b", "ab", 0, 1},
        {"a**b", "axxb", 0, 1},
        {"a*", "a", 0, 1},
        {"a*", "abc", 0, 1},
        {"a*", "xabc", 0, 0},
        {"*c", "abc", 0, 1},
        {"*c", "abcd", 0, 0},
        {"*b*", "abc", 0, 1},
        {"*b*", "ac", 0, 0},
        {"a*b*c", "abc", 0, 1},
        {"a*b*c", "aXbYc", 0, 1},
        {"a*b*c", "abcbc", 0, 1},
        {"a*b*c", "aXbY", 0, 0},
        {"a*b*c", "acb", 0, 0},
        {"a*b*c", "aXcYb", 0, 0},
        {"a*b*c", "abcX", 0, 0},
        {"abc", "abc", 0, 1},
        {"abc", "abcd", 0, 0},
        {"abc", "ab", 0, 0},
        {"", "", 0, 1},
        {"", "a", 0, 0},
        {"a?c", "abc", 0, 0},
        {"a?c", "a?c", 0, 1},
        {"[ab]", "a", 0, 0},
        {"[ab]", "[ab]", 0, 1},
        {"a\\*", "a\\x", 0, 1},
        {"www.*.com", "www.example.com", 1, 1},
        {"www.*.com", "www.a.b.com", 1, 0},
        {"www.*.com", "www.a.b.com", 0, 1},
        {"*.*", "a.b", 1, 1},
        {"*.*", "a.b.c", 1, 0},
        {"a*.example.com", "abc.example.com", 1, 1},
        {"a*.example.com", "a.b.example.com", 1, 0},
        {"*example.com", "www.example.com", 1, 0},
        {"*example.com", "wwwexample.com", 1, 1},
        {"*.example.com", "a.example.com.", 1, 0},
        {"*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         0, 0},
    };
    for (size_t i = 0; i < N(t); i++)
        is_int(!!certauthz_glob_match(t[i].pat, strlen(t[i].pat), t[i].s,
                                      strlen(t[i].s), t[i].dns),
               t[i].match, "glob %s %s %s%s", t[i].pat,
               t[i].match ? "matches" : "does not match", t[i].s,
               t[i].dns ? " (dns rule)" : "");
    ok(certauthz_glob_match("a*", 1, "ab", 2, 0) == 0,
       "glob_match honours the pattern length");
    ok(certauthz_glob_match("ab", 2, "abc", 2, 0) == 1,
       "glob_match honours the subject length");
}

static void test_types(void)
{
    certauthz_facts_t *f =
        facts("--subject '/O=Ex/CN=Alice Smith'"
              " --san email:Alice@Example.COM --san dns:WWW.Example.com"
              " --san uri:https://Example.org/Path --san upn:Carol@Corp.Example"
              " --san ip:192.0.2.1 --san ip:2001:db8::1 --serial 00004F2A9C01");
    const char *sha = f->of[CERTAUTHZ_SHA256].v[0].text;
    const char *spki = f->of[CERTAUTHZ_SPKI].v[0].text;
    char *sha_lc = apr_palloc(pool, 96), *o = sha_lc;
    for (int i = 0; i < 64; i += 2) {
        if (i)
            *o++ = ':';
        *o++ = (char)tolower((unsigned char)sha[i]);
        *o++ = (char)tolower((unsigned char)sha[i + 1]);
    }
    *o = '\0';
    char *sha_other = apr_pstrdup(pool, sha);
    sha_other[63] = sha_other[63] == '0' ? '1' : '0';

    const struct {
        const char *sel;
        int match;
    } t[] = {
        {"cn:Alice Smith", 1},
        {"cn:alice smith", 0},
        {"cn:ALICE SMITH", 0},
        {"cn:Alice", 0},
        {"cn:Alice*", 1},
        {"cn:alice*", 0},
        {"cn:*Smith", 1},
        {"cn:*", 1},
        {"email:Alice@Example.COM", 1},
        {"email:alice@example.com", 1},
        {"email:ALICE@EXAMPLE.COM", 1},
        {"email:alice@example.co", 0},
        {"email:*@example.com", 1},
        {"email:*@EXAMPLE.com", 1},
        {"dns:www.example.com", 1},
        {"dns:WWW.EXAMPLE.COM", 1},
        {"dns:*.EXAMPLE.COM", 1},
        {"dns:*.com", 0},
        {"dns:*", 0},
        {"uri:https://Example.org/Path", 1},
        {"uri:https://example.org/path", 0},
        {"uri:https://Example.org/*", 1},
        {"uri:https://example.org/*", 0},
        {"upn:Carol@Corp.Example", 1},
        {"upn:carol@corp.example", 1},
        {"upn:CAROL@CORP.EXAMPLE", 1},
        {"upn:carol@*", 1},
        {"ip:192.0.2.1", 1},
        {"ip:192.0.2.2", 0},
        {"ip:2001:db8::1", 1},
        {"ip:2001:DB8::1", 1},
        {"ip:2001:0db8:0:0:0:0:0:1", 1},
        {"ip:2001:db8::2", 0},
        {"ip:::ffff:192.0.2.1", 0},
        {"ip:192.0.2.*", 1},
        {"serial:4F2A9C01", 1},
        {"serial:4f2a9c01", 1},
        {"serial:004F2A9C01", 1},
        {"serial:0000004F2A9C01", 1},
        {"serial:4F:2A:9C:01", 1},
        {"serial:00:4f:2a:9c:01", 1},
        {"serial:4F2A9C02", 0},
        {"serial:4F2A9C0", 0},
        {"serial:4F2A*", 1},
        {"serial:4f2a*", 1},
        {"serial:4F:2A:*", 1}, /* ':' is optional in serial rules */
        {"serial:004F2A*", 1}, /* leading zeros are ignored */
        {apr_pstrcat(pool, "sha256:", sha, NULL), 1},
        {apr_pstrcat(pool, "sha256:", sha_lc, NULL), 1},
        {apr_pstrcat(pool, "sha256:", sha_other, NULL), 0},
        {apr_pstrcat(pool, "spki:", spki, NULL), 1},
        {"spki:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", 0},
        {"dn:CN=Alice Smith,O=Ex", 1},
        {"dn:cn = Alice Smith , o = Ex", 1},
        {"dn:commonName=Alice Smith,2.5.4.10=Ex", 1},
        {"dn:CN=alice smith,O=Ex", 0},
        {"dn:O=Ex,CN=Alice Smith", 0},
        {"dn:CN=Alice Smith", 0},
        {"dn:CN=Alice*,O=Ex", 0},
        {"dn:CN=Alice Smith+O=Ex", 0},
        {"cn~^Alice", 1},
        {"cn~Smith$", 1},
        {"cn~lice", 1},
        {"cn~^lice", 0},
        {"cn~smith", 0},
        {"cn~(?i)smith", 1},
        {"email~^Alice@", 1}, /* regexes see the original case */
        {"email~^alice@", 0},
        {"dns~^WWW\\.", 1},
        {"dn~^CN=Alice Smith,O=Ex$", 1},
        {"dn~^O=Ex", 0},
        {"ip~^2001:db8::1$", 1},
        {"serial~^4F2A9C01$", 1},
        {"uri~^https://", 1},
        {"upn~@Corp\\.", 1},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_selector_t *s = sel(t[i].sel);
        is_int(s ? certauthz_selector_match(s, f, NULL) : -99, t[i].match,
               "%s %s", t[i].sel, t[i].match ? "matches" : "does not match");
    }

    /* a '*' in a dn selector is an ordinary character */
    f = facts("--subject /O=Ex/CN=a*b");
    is_int(certauthz_selector_match(sel("dn:CN=a*b,O=Ex"), f, NULL), 1,
           "dn:CN=a*b,O=Ex matches a DN holding a literal '*'");
    is_int(certauthz_selector_match(sel("dn:CN=a*,O=Ex"), f, NULL), 0,
           "dn:CN=a*,O=Ex is not a glob");
    is_int(certauthz_selector_match(sel("cn:a*b"), f, NULL), 1,
           "cn:a*b (a glob) matches the literal a*b too");

    /* no value of the type: no match */
    is_int(certauthz_selector_match(sel("uri:*"), f, NULL), 0,
           "uri:* does not match a certificate without a URI");
    is_int(certauthz_selector_match(sel("email~.*"), f, NULL), 0,
           "email~.* does not match a certificate without an email");

    /* multi-valued facts match on any value */
    f = facts("--subject /CN=m --san dns:one.example --san dns:two.example"
              " --san dns:three.example");
    is_int(certauthz_selector_match(sel("dns:three.example"), f, NULL), 1,
           "exact selector matches the last of several values");
    is_int(certauthz_selector_match(sel("dns:t*.example"), f, NULL), 1,
           "glob matches one of several values");
    is_int(certauthz_selector_match(sel("dns~^three"), f, NULL), 1,
           "regex matches one of several values");
}

static void test_regex(void)
{
    certauthz_captures_t c;
    certauthz_value_t v = value("Alice Smith", 0);
    certauthz_selector_t *s = sel("cn~^(\\w+) (\\w+)$");

    memset(&c, 0, sizeof(c));
    is_int(certauthz_selector_match_value(s, &v, &c), 1,
           "capture regex "
           "matches");
    ok(c.n >= 3, "at least 3 captures (%d)", c.n);
    is_mem(c.s[0], c.len[0], "Alice Smith", 11, "$0 is the whole match");
    is_mem(c.s[1], c.len[1], "Alice", 5, "$1");
    is_mem(c.s[2], c.len[2], "Smith", 5, "$2");

    /* entries past the pattern's groups are not left as garbage: either
     * n stops at ngroups + 1 or they are NULL ("did not take part") */
    s = sel("cn~^(Al)ice");
    memset(&c, 0x55, sizeof(c));
    certauthz_selector_match_value(s, &v, &c);
    int clean = c.n >= 2 && c.n <= CERTAUTHZ_MAX_CAPTURES;
    for (int i = 2; clean && i < c.n; i++)
        clean = c.s[i] == NULL;
    ok(clean, "captures beyond the regex's 1 group: n=%d, s[2]=%s", c.n,
       c.n > 2 ? (c.s[2] ? "set" : "NULL") : "-");
    is_mem(c.s[1], c.len[1], "Al", 2, "  ... $1 is right");

    s = sel("cn~lice");
    certauthz_selector_match_value(s, &v, &c);
    is_mem(c.s[0], c.len[0], "lice", 4, "$0 of an unanchored match");

    s = sel("cn~^(x)?(Alice)");
    certauthz_selector_match_value(s, &v, &c);
    ok(c.n >= 3 && c.s[1] == NULL, "a group that did not take part is NULL");
    is_mem(c.s[2], c.len[2], "Alice", 5, "  ... and the next one is set");

    /* captures come from the first value, in certificate order, that
     * matches */
    certauthz_facts_t *f = facts("--subject /CN=c --san email:xx@a"
                                 " --san email:a1@x --san email:b2@y");
    s = sel("email~^([a-z])(\\d)@");
    memset(&c, 0, sizeof(c));
    is_int(certauthz_selector_match(s, f, &c), 1, "regex over several values");
    is_mem(c.s[1], c.len[1], "a", 1, "captures of the first matching value");
    s = sel("email~^(b)(\\d)@");
    certauthz_selector_match(s, f, &c);
    is_mem(c.s[0], c.len[0], "b2@", 3, "captures of the only matching value");

    /* anchoring, DOLLAR_ENDONLY, no multiline, UTF */
    static const struct {
        const char *re, *text;
        int match;
    } t[] = {
        {"cn~^a$", "a", 1},
        {"cn~^a$", "a\n", 0},
        {"cn~a$", "ba\n", 0},
        {"cn~^b", "a\nb", 0},
        {"cn~a\\n$", "a\n", 1},
        {"cn~^a", "ba", 0},
        {"cn~a", "ba", 1},
        {"cn~^.$", "\xC3\xA9", 1}, /* one character in UTF mode */
        {"cn~^..$", "\xC3\xA9", 0},
        {"cn~^\\x{e9}$", "\xC3\xA9", 1},
        {"cn~^Zo\xC3\xAB$", "Zo\xC3\xAB", 1},
        {"cn~^$", "", 1},
        {"cn~^\\d+$", "123", 1},
        {"cn~ABC", "abc", 0},
    };
    for (size_t i = 0; i < N(t); i++) {
        v = value(t[i].text, 0);
        s = sel(t[i].re);
        is_int(s ? certauthz_selector_match_value(s, &v, NULL) : -99,
               t[i].match, "%s %s %s", t[i].re,
               t[i].match ? "matches" : "does not match",
               tap_show(t[i].text, strlen(t[i].text)));
    }
}

static void test_regex_limits(void)
{
    char text[64];
    memset(text, 'a', 30);
    strcpy(text + 30, "!");
    certauthz_value_t v = value(text, 0);
    certauthz_selector_t *s = sel("cn~^(a+)+$");
    time_t t0 = time(NULL);
    int r = s ? certauthz_selector_match_value(s, &v, NULL) : -99;
    time_t dt = time(NULL) - t0;
    is_int(r, -1, "catastrophic ^(a+)+$ on 30 a's and '!' gives up (-1)");
    ok(dt <= 2, "  ... promptly (%ld s)", (long)dt);

    s = sel("cn~^(a|aa)+$");
    memset(text, 'a', 60);
    strcpy(text + 60, "b");
    v = value(text, 0);
    t0 = time(NULL);
    r = s ? certauthz_selector_match_value(s, &v, NULL) : -99;
    is_int(r, -1, "catastrophic ^(a|aa)+$ gives up (-1)");
    ok(time(NULL) - t0 <= 2, "  ... promptly");

    /* over facts: -1 when the only value gives up, 1 when another matches */
    memset(text, 'a', 30);
    strcpy(text + 30, "!");
    certauthz_facts_t *f = facts(apr_psprintf(pool,
                                              "--subject /CN=x "
                                              "--san dns:%s",
                                              text));
    s = sel("dns~^(a+)+$");
    is_int(s ? certauthz_selector_match(s, f, NULL) : -99, -1,
           "selector_match reports -1 when the regex gave up");
    f = facts(
        apr_psprintf(pool, "--subject /CN=x --san dns:%s --san dns:aaa", text));
    is_int(s ? certauthz_selector_match(s, f, NULL) : -99, 1,
           "selector_match: 1 when another value matches");

    /* a long but linear match is not cut short */
    char *big = apr_palloc(pool, 20001);
    memset(big, 'a', 20000);
    big[20000] = '\0';
    v = value(big, 0);
    is_int(certauthz_selector_match_value(sel("cn~^a+$"), &v, NULL), 1,
           "^a+$ on 20,000 a's matches");
    is_int(certauthz_selector_match_value(sel("cn~^(a)*$"), &v, NULL) != 0, 1,
           "^(a)*$ on 20,000 a's: a match or a give-up, never 'no match'");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_parse_errors();
    test_kinds_and_text();
    test_glob();
    test_types();
    test_regex();
    test_regex_limits();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
