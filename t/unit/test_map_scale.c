/*
 * test_map_scale.c -- hostile map files at scale: a million exact rules of
 * mixed types (right answers for the first, middle and last lines; an error
 * on the very last line loads nothing and names that line), 10^5 regex
 * rules (first match in file order), and files that are not plain files
 * (symlinks, dangling symlinks, a path through a regular file).
 *
 * Skipped when CERTAUTHZ_SKIP_BIG is set (the valgrind run: it would take
 * minutes there and proves nothing the small maps do not).
 */
#include <stdio.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "../certgen.h"
#include "tap.h"

static apr_pool_t *pool;

#define MILLION 1000000

/* Line i (0-based) of the mixed million-line map. */
static int mixed_line(char *buf, size_t len, int i)
{
    switch (i % 5) {
    case 0:
        return snprintf(buf, len, "email:user%d@example.com user%d staff,eng\n",
                        i, i);
    case 1:
        return snprintf(buf, len, "cn:host-%d host%d hosts\n", i, i);
    case 2:
        return snprintf(buf, len, "uri:spiffe://example.org/sa/svc%d svc%d\n",
                        i, i);
    case 3:
        return snprintf(buf, len, "dns:h%d.example.com h%d robots\n", i, i);
    default:
        return snprintf(buf, len, "serial:%X0A1B s%d\n", i, i);
    }
}

static char *mixed_map(int lines, const char *last, apr_size_t *len)
{
    apr_size_t cap = (apr_size_t)lines * 64 + 1024, n = 0;
    char *buf = apr_palloc(pool, cap);

    for (int i = 0; i < lines; i++)
        n += (apr_size_t)mixed_line(buf + n, cap - n, i);
    if (last)
        n += (apr_size_t)snprintf(buf + n, cap - n, "%s\n", last);
    *len = n;
    return buf;
}

static certauthz_facts_t *facts_of(const char *opts)
{
    X509 *x = certgen_quick(opts);
    certauthz_facts_t *f = NULL;
    if (certauthz_facts_from_x509(&f, x, pool) != APR_SUCCESS)
        f = NULL;
    X509_free(x);
    return f;
}

static void expect_user(const certauthz_map_t *m, const char *opts,
                        const char *user, unsigned line)
{
    certauthz_identity_t id;
    certauthz_facts_t *f = facts_of(opts);

    certauthz_map_resolve(&id, m, f, pool);
    ok(id.outcome == CERTAUTHZ_MAPPED && !strcmp(id.user, user)
           && certauthz_rule_line(id.rule) == line,
       "%s -> %s at line %u (got %s at %u)", opts, user, line,
       id.outcome == CERTAUTHZ_MAPPED ? id.user : "-",
       id.rule ? certauthz_rule_line(id.rule) : 0);
}

static void test_million(void)
{
    apr_size_t len;
    char *text = mixed_map(MILLION, NULL, &len);
    apr_array_header_t *errs;
    certauthz_map_t *m;
    certauthz_map_stats_t st;
    apr_time_t t0 = apr_time_now();

    ok(certauthz_map_parse(&m, "million.map", text, len, &errs, pool)
           == APR_SUCCESS,
       "a million mixed exact rules parse");
    diag("parse of %d lines: %.0f ms", MILLION,
         (double)(apr_time_now() - t0) / 1000);
    certauthz_map_stats(m, &st);
    is_int((int)st.rules, MILLION, "rule count");
    is_int((int)st.exact[CERTAUTHZ_EMAIL], MILLION / 5, "email rules");
    is_int((int)st.exact[CERTAUTHZ_SERIAL], MILLION / 5, "serial rules");

    expect_user(m, "--subject /CN=x --san email:USER0@example.com", "user0", 1);
    expect_user(m, "--subject /CN=host-500001", "host500001", 500002);
    expect_user(m, "--subject /CN=x --san dns:H999998.example.com", "h999998",
                999999);
    expect_user(m, "--subject /CN=x --serial 0F423F0A1B", "s999999", 1000000);
    expect_user(m, "--subject /CN=x --san uri:spiffe://example.org/sa/svc2",
                "svc2", 3);
    {
        certauthz_identity_t id;
        certauthz_map_resolve(&id, m, facts_of("--subject /CN=host-0"), pool);
        ok(id.outcome == CERTAUTHZ_UNMAPPED,
           "a CN of another line's number is not mapped");
    }

    /* the same million lines and one bad last line: nothing is loaded,
     * and the error names line 1,000,001 */
    text = mixed_map(MILLION, "email:late@example.com", &len);
    ok(certauthz_map_parse(&m, "million.map", text, len, &errs, pool)
               == CERTAUTHZ_EBADINPUT
           && m == NULL,
       "an error on the last of 1,000,001 lines loads nothing");
    ok(errs->nelts == 1
           && APR_ARRAY_IDX(errs, 0, certauthz_error_t).line == MILLION + 1
           && strstr(APR_ARRAY_IDX(errs, 0, certauthz_error_t).reason,
                     "missing user"),
       "  ... and names line 1000001");
}

static void test_regexes(void)
{
    const int n = 100000;
    apr_size_t cap = (apr_size_t)n * 48 + 64, len = 0;
    char *text = apr_palloc(pool, cap);
    apr_array_header_t *errs;
    certauthz_map_t *m;
    apr_time_t t0 = apr_time_now();

    for (int i = 0; i < n; i++)
        len += (apr_size_t)snprintf(text + len, cap - len,
                                    "cn~^svc%d-([a-z]+)$ svc%d-$1 services\n",
                                    i, i);
    ok(certauthz_map_parse(&m, "regex.map", text, len, &errs, pool)
           == APR_SUCCESS,
       "10^5 regex rules parse");
    diag("parse of %d regex rules: %.0f ms", n,
         (double)(apr_time_now() - t0) / 1000);
    expect_user(m, "--subject /CN=svc99999-pay", "svc99999-pay", 100000);
    expect_user(m, "--subject /CN=svc0-pay", "svc0-pay", 1);
    {
        certauthz_identity_t id;
        certauthz_map_resolve(&id, m, facts_of("--subject /CN=svc1-PAY"), pool);
        ok(id.outcome == CERTAUTHZ_UNMAPPED,
           "no regex of 10^5 matches an upper-case capture");
    }
}

/* A file of more lines than the limit is one clear error (it used to be a
 * failure without any message, which the glue took for success). */
static void test_line_limit(void)
{
    apr_size_t len = CERTAUTHZ_MAX_LINES + 1;
    char *text = apr_palloc(pool, len);
    apr_array_header_t *errs;
    certauthz_map_t *m;

    memset(text, '\n', len);
    ok(certauthz_map_parse(&m, "huge.map", text, len, &errs, pool)
               != APR_SUCCESS
           && !m,
       "a map of more than %d lines does not load", CERTAUTHZ_MAX_LINES);
    ok(errs->nelts == 1
           && strstr(APR_ARRAY_IDX(errs, 0, certauthz_error_t).reason,
                     "more than 16777216 lines"),
       "  ... and says why: %s",
       errs->nelts ? APR_ARRAY_IDX(errs, 0, certauthz_error_t).reason : "-");
    ok(certauthz_map_parse(&m, "big.map", text, len - 2, &errs, pool)
           == APR_SUCCESS,
       "%d blank lines are a valid, empty map", CERTAUTHZ_MAX_LINES - 1);
}

static void test_paths(void)
{
    char dir[] = "/tmp/certauthz-scale-XXXXXX";
    const char *real, *link, *dangling, *through;
    apr_array_header_t *errs;
    certauthz_map_t *m;
    FILE *fp;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    real = apr_pstrcat(pool, dir, "/real.map", NULL);
    link = apr_pstrcat(pool, dir, "/link.map", NULL);
    dangling = apr_pstrcat(pool, dir, "/dangling.map", NULL);
    through = apr_pstrcat(pool, real, "/x.map", NULL);
    fp = fopen(real, "w");
    fputs("cn:alice alice staff\n", fp);
    fclose(fp);
    ok(symlink("real.map", link) == 0 && symlink("nowhere.map", dangling) == 0,
       "symlinks made");

    ok(certauthz_map_load(&m, link, &errs, pool) == APR_SUCCESS && m,
       "a symlink to a map is followed");
    ok(certauthz_map_load(&m, dangling, &errs, pool) != APR_SUCCESS && !m
           && errs->nelts == 1
           && APR_ARRAY_IDX(errs, 0, certauthz_error_t).line == 0,
       "a dangling symlink is one error, without a line");
    ok(certauthz_map_load(&m, through, &errs, pool) != APR_SUCCESS && !m
           && errs->nelts == 1,
       "a path through a regular file is one error");

    unlink(link);
    unlink(dangling);
    unlink(real);
    rmdir(dir);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    if (getenv("CERTAUTHZ_SKIP_BIG")) {
        printf("1..0 # SKIP CERTAUTHZ_SKIP_BIG is set\n");
        return 0;
    }
    test_million();
    test_regexes();
    test_line_limit();
    test_paths();
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
