/*
 * test_ldap.c -- the pure part of directory-backed identities
 * (certauthz_ldap.h): filter templates (parse errors, every placeholder,
 * RFC 4515 escaping of hostile values so no certificate widens a search,
 * the DER form), entries reduced to identities (one user value, groups as
 * DNs or whole, refusals that never give a partial identity), and the
 * result cache (expiry, negative results, bounded size, eviction order).
 */
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_ldap.h"
#include "../certgen.h"
#include "tap.h"
#include "maputil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static apr_pool_t *pool;

static certauthz_ldap_template_t *tmpl(const char *text)
{
    certauthz_ldap_template_t *t = NULL;
    const char *why = NULL;
    if (certauthz_ldap_template_parse(&t, text, &why, pool) != APR_SUCCESS) {
        diag("template %s refused: %s", text, why);
        return NULL;
    }
    return t;
}

static void test_template_errors(void)
{
    static const struct {
        const char *in, *why;
    } t[] = {
        {"", "starts with '('"},
        {"mail={email}", "starts with '('"},
        {"(mail={email}", "unbalanced '('"},
        {"(mail={email}))", "text after the filter's closing ')'"},
        {"(mail={email})(cn={cn})", "text after the filter's closing ')'"},
        {"(mail={emial})", "unknown placeholder {emial}"},
        {"(mail={Email})", "unknown placeholder {Email}"},
        {"(mail={email)", "without its '}'"},
        {"(mail=email})", "a '}' without its '{'"},
        {"(mail=\x01{email})", "control character"},
        {"(objectClass=person)", "uses no placeholder"},
        {"(mail={email}\xff)", "not UTF-8"},
        {"(mail={\x01})", "unknown placeholder {\\x01}"},
    };
    for (size_t i = 0; i < N(t); i++) {
        certauthz_ldap_template_t *x = NULL;
        const char *why = NULL;
        apr_status_t rv =
            certauthz_ldap_template_parse(&x, t[i].in, &why, pool);
        ok(rv == CERTAUTHZ_EBADINPUT && why && strstr(why, t[i].why),
           "template %s refused: want '%s', got '%s'",
           tap_show(t[i].in, strlen(t[i].in)), t[i].why,
           why ? why : "accepted");
    }
    /* the known names are listed in the error */
    {
        certauthz_ldap_template_t *x;
        const char *why = NULL;
        certauthz_ldap_template_parse(&x, "(a={nope})", &why, pool);
        ok(why && strstr(why, "upn") && strstr(why, "altsec_issuer_serial")
               && strstr(why, "cert_der"),
           "unknown placeholder lists the names: %s", why ? why : "-");
    }
}

/* The filter of a template for one hand-made fact. */
static const char *filter1(const char *t, certauthz_type_e type,
                           const char *value, const char **missing)
{
    certauthz_ldap_template_t *x = tmpl(t);
    const char *m = NULL;
    const char *f = x ? certauthz_ldap_filter(x, facts_one(type, value, pool),
                                              NULL, 0, &m, pool)
                      : NULL;
    if (missing)
        *missing = m;
    return f;
}

static void test_escaping(void)
{
    /* RFC 4515 section 3: '*', '(', ')', '\\' and NUL are \HH */
    static const struct {
        const char *value, *filter;
    } t[] = {
        {"bob", "(cn=bob)"},
        {"*", "(cn=\\2a)"},
        {"*)(uid=*", "(cn=\\2a\\29\\28uid=\\2a)"},
        {"a\\b", "(cn=a\\5cb)"},
        {"x)(|(objectClass=*)", "(cn=x\\29\\28|\\28objectClass=\\2a\\29)"},
        {"tab\there", "(cn=tab\\09here)"},
        {"del\x7f", "(cn=del\\7f)"},
        {"J\xc3\xbcrgen", "(cn=J\xc3\xbcrgen)"}, /* UTF-8 stays */
        {"a=b,c", "(cn=a=b,c)"},                 /* not special in a value */
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *f = filter1("(cn={cn})", CERTAUTHZ_CN, t[i].value, NULL);
        is_str(f, t[i].filter, "escaped %s",
               tap_show(t[i].value, strlen(t[i].value)));
    }
    is_str(certauthz_ldap_escape("a\0b", 3, pool), "a\\00b",
           "NUL in a value is \\00");
    /* every byte of a hostile value lands inside the one assertion: the
     * filter's parentheses outside the value stay as the template has
     * them */
    {
        const char *f = filter1("(&(objectClass=person)(cn={cn}))",
                                CERTAUTHZ_CN, "*)(uid=*))(|(cn=*", NULL);
        int depth = 0, max = 0, closes = 0;
        for (const char *s = f; s && *s; s++) {
            if (*s == '(')
                max = ++depth > max ? depth : max;
            else if (*s == ')')
                depth--, closes++;
        }
        ok(f && depth == 0 && max == 2 && closes == 3,
           "hostile CN keeps the template's structure: %s", f ? f : "-");
    }
}

static void test_placeholders(void)
{
    const char *missing = NULL;
    /* every fact type is a placeholder */
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        const char *text =
            apr_psprintf(pool, "(x={%s})", certauthz_type_name(t));
        const char *f = filter1(text, t, "v1", NULL);
        is_str(f, "(x=v1)", "placeholder {%s}", certauthz_type_name(t));
    }
    /* a missing fact: no filter, the placeholder named */
    ok(!filter1("(mail={email})", CERTAUTHZ_CN, "bob", &missing) && missing
           && !strcmp(missing, "email"),
       "no email: no filter, missing=%s", missing ? missing : "-");
    ok(!filter1("(mail={email})", CERTAUTHZ_EMAIL, "", &missing),
       "an empty value is missing");
    /* several placeholders, and literal text around them */
    {
        certauthz_facts_t *f = facts_of_cert(
            "--subject /CN=Dave/O=Example --san email:dave@example.com "
            "--san upn:dave@corp.example",
            pool);
        certauthz_ldap_template_t *x =
            tmpl("(|(userPrincipalName={upn})(mail={email}))");
        const char *m = NULL;
        is_str(x ? certauthz_ldap_filter(x, f, NULL, 0, &m, pool) : NULL,
               "(|(userPrincipalName=dave@corp.example)"
               "(mail=dave@example.com))",
               "upn and email from a certificate");
        x = tmpl("(seeAlso={dn})");
        is_str(x ? certauthz_ldap_filter(x, f, NULL, 0, &m, pool) : NULL,
               "(seeAlso=O=Example,CN=Dave)", "{dn} is the RFC 4514 subject");
    }
    /* altsec_issuer_serial: the issuer+serial form, as AD stores it */
    {
        certauthz_facts_t *f = facts_of_cert(
            "--subject /CN=dave --issuer-name /DC=com/DC=example/CN=CA "
            "--serial 0A0B0C",
            pool);
        certauthz_ldap_template_t *x =
            tmpl("(altSecurityIdentities={altsec_issuer_serial})");
        const char *m = NULL;
        is_str(x ? certauthz_ldap_filter(x, f, NULL, 0, &m, pool) : NULL,
               "(altSecurityIdentities=X509:<I>DC=com,DC=example,CN=CA"
               "<SR>0c0b0a)",
               "{altsec_issuer_serial}");
    }
    /* cert_der: every byte \HH; without the DER, missing */
    {
        static const unsigned char der[] = {0x30, 0x03, 0x2a, 0x28, 0x00};
        certauthz_ldap_template_t *x =
            tmpl("(userCertificate;binary={cert_der})");
        const char *m = NULL;
        ok(x && certauthz_ldap_template_wants_der(x), "cert_der wants DER");
        ok(!certauthz_ldap_template_wants_der(tmpl("(cn={cn})")),
           "cn does not want DER");
        is_str(x ? certauthz_ldap_filter(x, facts_one(CERTAUTHZ_CN, "a", pool),
                                         der, sizeof(der), &m, pool)
                 : NULL,
               "(userCertificate;binary=\\30\\03\\2a\\28\\00)",
               "cert_der in octet-string form");
        ok(x
               && !certauthz_ldap_filter(x, facts_one(CERTAUTHZ_CN, "a", pool),
                                         NULL, 0, &m, pool)
               && m && !strcmp(m, "cert_der"),
           "cert_der without DER is missing");
    }
}

static const char *ident(const char *user, const char *groups, int as_dn,
                         const char **why)
{
    const char *u = NULL;
    const char *const *g = NULL;
    int n = -1;
    *why = NULL;
    if (certauthz_ldap_identity(user, groups, as_dn, &u, &g, &n, why, pool)
        != APR_SUCCESS)
        return NULL;
    const char *s = u;
    for (int i = 0; i < n; i++)
        s = apr_pstrcat(pool, s, i ? "," : " [", g[i], NULL);
    return n ? apr_pstrcat(pool, s, "]", NULL) : s;
}

static void test_identity(void)
{
    static const struct {
        const char *user, *groups;
        int as_dn;
        const char *want; /* NULL: refused, why below */
        const char *why;
    } t[] = {
        {"dave", NULL, 0, "dave", NULL},
        {"dave", "", 0, "dave", NULL},
        {"dave", "cn=admins,ou=groups,dc=example,dc=com", 0, "dave [admins]",
         NULL},
        {"dave",
         "cn=admins,ou=groups,dc=example,dc=com; "
         "CN=Web Users,OU=Groups,DC=example,DC=com",
         0, "dave [admins,Web Users]", NULL},
        /* a ';' escaped inside a DN value does not split */
        {"dave", "cn=a\\; b,dc=example; cn=c,dc=example", 0, "dave [a; b,c]",
         NULL},
        /* escapes undone in the first RDN's value */
        {"dave", "cn=R\\26D,dc=example", 0, "dave [R&D]", NULL},
        /* as dn: whole values */
        {"dave", "cn=admins,dc=example; cn=ops,dc=example", 1,
         "dave [cn=admins,dc=example,cn=ops,dc=example]", "never"},
        /* refusals */
        {NULL, NULL, 0, NULL, "no value of the user attribute"},
        {"", NULL, 0, NULL, "no value of the user attribute"},
        {"dave; eve", NULL, 0, NULL, "several values of the user attribute"},
        {"da\nve", NULL, 0, NULL, "control character"},
        {"dave", "not a dn", 0, NULL, "not a DN"},
        {"dave", "cn=a+uid=b,dc=example", 0, NULL, "several attributes"},
        {"dave", "cn=a\\2cb,dc=example", 0, NULL, "holds ','"},
        {"dave", "cn=ok,dc=example; cn=bad\\0a,dc=example", 0, NULL,
         "control character"},
    };
    for (size_t i = 0; i < N(t); i++) {
        const char *why;
        const char *got = ident(t[i].user, t[i].groups, t[i].as_dn, &why);
        if (t[i].want && t[i].as_dn) {
            /* as_dn keeps the DNs whole; the list join here is ',' so
             * compare the count instead */
            const char *u;
            const char *const *g;
            int n = 0;
            ok(certauthz_ldap_identity(t[i].user, t[i].groups, 1, &u, &g, &n,
                                       &why, pool)
                       == APR_SUCCESS
                   && n == 2 && !strcmp(g[0], "cn=admins,dc=example")
                   && !strcmp(g[1], "cn=ops,dc=example"),
               "as dn: groups kept whole");
            {
                certauthz_identity_t id = {CERTAUTHZ_MAPPED, NULL, u, n, g};
                is_str(certauthz_identity_groups(&id, pool),
                       "cn=admins,dc=example; cn=ops,dc=example",
                       "DNs in CERTAUTHZ_GROUPS are joined with \"; \"");
            }
        }
        else if (t[i].want)
            is_str(got, t[i].want, "identity of %s / %s",
                   t[i].user ? t[i].user : "(none)",
                   t[i].groups ? t[i].groups : "(none)");
        else
            ok(!got && why && strstr(why, t[i].why),
               "refused %s / %s: want '%s', got '%s'",
               t[i].user ? tap_show(t[i].user, strlen(t[i].user)) : "(none)",
               t[i].groups ? tap_show(t[i].groups, strlen(t[i].groups))
                           : "(none)",
               t[i].why,
               got   ? got
               : why ? why
                     : "-");
    }
}

static void test_cache(void)
{
    apr_pool_t *cp, *rp;
    certauthz_ldcache_t *c;
    certauthz_ldresult_t r, out;
    const char *groups[] = {"admins", "ops"};
    apr_time_t now = apr_time_from_sec(1000);

    apr_pool_create(&cp, pool);
    apr_pool_create(&rp, pool);
    c = certauthz_ldcache_create(3, cp);
    memset(&r, 0, sizeof(r));
    r.found = 1;
    r.user = "dave";
    r.ngroups = 2;
    r.groups = groups;
    certauthz_ldcache_put(c, "k1", &r, now, now + apr_time_from_sec(60));
    ok(certauthz_ldcache_get(c, "k1", now + apr_time_from_sec(59), &out, rp)
           && out.found && !strcmp(out.user, "dave") && out.ngroups == 2
           && !strcmp(out.groups[1], "ops"),
       "a cached identity, with its groups");
    ok(out.expires == now + apr_time_from_sec(60),
       "the entry's expiry comes with it (a connection keeps it as long)");
    ok(!certauthz_ldcache_get(c, "k2", now, &out, rp), "another key misses");
    ok(!certauthz_ldcache_get(c, "k1", now + apr_time_from_sec(60), &out, rp),
       "expired at its expiry time");
    is_int(certauthz_ldcache_count(c), 0, "an expired entry is dropped");

    /* negative results are results */
    memset(&r, 0, sizeof(r));
    certauthz_ldcache_put(c, "neg", &r, now, now + apr_time_from_sec(10));
    ok(certauthz_ldcache_get(c, "neg", now, &out, rp) && !out.found && !out.user
           && !out.ngroups,
       "a negative result is cached");

    /* replacing a key keeps one entry */
    r.found = 1;
    r.user = "eve";
    certauthz_ldcache_put(c, "neg", &r, now, now + apr_time_from_sec(10));
    ok(certauthz_ldcache_get(c, "neg", now, &out, rp) && out.found
           && !strcmp(out.user, "eve"),
       "a put replaces the entry");
    is_int(certauthz_ldcache_count(c), 1, "one entry after the replacement");

    /* bounded: the entry expiring first goes when full */
    certauthz_ldcache_put(c, "a", &r, now, now + apr_time_from_sec(100));
    certauthz_ldcache_put(c, "b", &r, now, now + apr_time_from_sec(200));
    is_int(certauthz_ldcache_count(c), 3, "full at 3");
    certauthz_ldcache_put(c, "c", &r, now, now + apr_time_from_sec(300));
    is_int(certauthz_ldcache_count(c), 3, "still 3 after a fourth put");
    ok(!certauthz_ldcache_get(c, "neg", now, &out, rp),
       "the entry that expires first was evicted");
    ok(certauthz_ldcache_get(c, "a", now, &out, rp)
           && certauthz_ldcache_get(c, "c", now, &out, rp),
       "the others stay");
    /* expired entries go before live ones */
    certauthz_ldcache_put(c, "d", &r, now + apr_time_from_sec(150),
                          now + apr_time_from_sec(400));
    ok(!certauthz_ldcache_get(c, "a", now + apr_time_from_sec(150), &out, rp)
           && certauthz_ldcache_get(c, "b", now + apr_time_from_sec(150), &out,
                                    rp)
           && certauthz_ldcache_get(c, "d", now + apr_time_from_sec(150), &out,
                                    rp),
       "the expired entry made room");
    /* the results live in the caller's pool, not the cache */
    certauthz_ldcache_get(c, "b", now, &out, rp);
    certauthz_ldcache_put(c, "b", &r, now, now + 1);
    ok(!strcmp(out.user, "eve"), "a result outlives its entry's replacement");
    apr_pool_destroy(cp); /* frees the entries (valgrind checks) */
    apr_pool_destroy(rp);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_template_errors();
    test_escaping();
    test_placeholders();
    test_identity();
    test_cache();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
