/*
 * certauthz -- command-line companion of mod_certauthz, built on the same
 * core: validate map files and explain how a certificate is decided.
 *
 *   certauthz check MAP...          exit 0 valid, 1 errors, 2 usage
 *   certauthz explain MAP CERT      exit 0 mapped, 3 denied, 4 unmapped,
 *                                   1 bad map or certificate, 2 usage
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <openssl/x509.h>

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "certauthz_util.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: certauthz check MAP...\n"
            "       certauthz explain MAP CERT\n"
            "       certauthz --version\n"
            "\n"
            "check    validate map files; print rule counts and load time.\n"
            "         Exit 0 when all are valid, 1 with one FILE:LINE: reason\n"
            "         line per error.\n"
            "explain  print every fact of CERT (PEM or DER; the first\n"
            "         certificate of a chain) as mod_certauthz sees it, then\n"
            "         the decision of MAP.  Exit 0 mapped, 3 denied by a deny\n"
            "         rule, 4 unmapped, 1 on a bad map or certificate.\n");
}

static void print_errors(apr_array_header_t *errs)
{
    const certauthz_error_t *e = (const certauthz_error_t *)errs->elts;
    for (int i = 0; i < errs->nelts; i++) {
        if (e[i].line)
            fprintf(stderr, "%s:%u: %s\n", e[i].file, e[i].line, e[i].reason);
        else
            fprintf(stderr, "%s: %s\n", e[i].file, e[i].reason);
    }
}

static int cmd_check(int argc, char **argv, apr_pool_t *p)
{
    int status = 0;

    for (int i = 0; i < argc; i++) {
        apr_pool_t *mp;
        certauthz_map_t *map;
        apr_array_header_t *errs;
        certauthz_map_stats_t st;
        apr_time_t t0 = apr_time_now();

        apr_pool_create(&mp, p);
        if (certauthz_map_load(&map, argv[i], &errs, mp) != APR_SUCCESS) {
            print_errors(errs);
            status = 1;
        }
        else {
            unsigned exact = 0;
            certauthz_map_stats(map, &st);
            for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
                exact += st.exact[t];
            printf("%s: OK: %u rules (%u exact, %u glob, %u regex), %u deny, "
                   "%u issuer sections; loaded in %.3f ms\n",
                   argv[i], st.rules, exact, st.globs, st.regexes, st.deny,
                   st.sections, (double)(apr_time_now() - t0) / 1000.0);
            for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
                if (st.exact[t])
                    printf("  exact %-6s %u\n",
                           certauthz_type_name((certauthz_type_e)t),
                           st.exact[t]);
        }
        apr_pool_destroy(mp);
    }
    return status;
}

static int read_file(char **buf, apr_size_t *len, const char *path,
                     apr_pool_t *p)
{
    apr_file_t *fd;
    apr_finfo_t fi;

    if (apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                      APR_OS_DEFAULT, p)
            != APR_SUCCESS
        || apr_file_info_get(&fi, APR_FINFO_SIZE, fd) != APR_SUCCESS)
        return -1;
    *buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    if (apr_file_read_full(fd, *buf, (apr_size_t)fi.size, len) != APR_SUCCESS
        && *len != (apr_size_t)fi.size)
        return -1;
    apr_file_close(fd);
    return 0;
}

typedef struct {
    int n;
    apr_pool_t *p;
} explain_baton_t;

static int print_match(void *baton, const certauthz_rule_t *rule)
{
    explain_baton_t *b = baton;
    const certauthz_dn_t *iss = certauthz_rule_issuer(rule);

    printf("  %s:%u  %s%s", certauthz_rule_file(rule),
           certauthz_rule_line(rule),
           certauthz_rule_is_deny(rule) ? "deny " : "",
           certauthz_selector_text(certauthz_rule_selector(rule), b->p));
    if (iss)
        printf("  [issuer \"%s\"]",
               certauthz_log_escape(certauthz_dn_text(iss), b->p));
    printf("\n");
    b->n++;
    return 0;
}

static int cmd_explain(const char *mappath, const char *certpath, apr_pool_t *p)
{
    certauthz_map_t *map;
    apr_array_header_t *errs;
    certauthz_facts_t *f;
    certauthz_identity_t id;
    explain_baton_t b = {0, p};
    char *buf;
    apr_size_t len;
    X509 *x;

    if (certauthz_map_load(&map, mappath, &errs, p) != APR_SUCCESS) {
        print_errors(errs);
        return 1;
    }
    if (read_file(&buf, &len, certpath, p) < 0) {
        fprintf(stderr, "%s: cannot read\n", certpath);
        return 1;
    }
    if (certauthz_x509_read(&x, buf, len) != APR_SUCCESS) {
        fprintf(stderr, "%s: not a PEM or DER certificate\n", certpath);
        return 1;
    }
    if (certauthz_facts_from_x509(&f, x, p) != APR_SUCCESS) {
        X509_free(x);
        fprintf(stderr, "%s: cannot read certificate facts\n", certpath);
        return 1;
    }
    X509_free(x);

    printf("certificate %s\n", certpath);
    printf("  subject   %s\n",
           f->subject ? certauthz_log_escape(certauthz_dn_text(f->subject), p)
                      : "(unusable: a value is not UTF-8 or has NUL)");
    printf("  issuer    %s\n",
           f->issuer ? certauthz_log_escape(certauthz_dn_text(f->issuer), p)
                     : "(unusable)");
    printf("  validity  %s .. %s\n", f->not_before, f->not_after);
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        if (t == CERTAUTHZ_DN)
            continue;
        for (int i = 0; i < f->of[t].n; i++)
            printf("  %-9s %s\n", certauthz_type_name((certauthz_type_e)t),
                   certauthz_log_escape(f->of[t].v[i].text, p));
    }
    if (f->cn_count > 1)
        printf("  (subject has %d CNs: no cn fact)\n", f->cn_count);
    if (f->dropped)
        printf("  (%d value%s dropped: NUL byte, not UTF-8, or wrong type)\n",
               f->dropped, f->dropped == 1 ? "" : "s");

    certauthz_map_resolve(&id, map, f, p);
    printf("decision\n");
    switch (id.outcome) {
    case CERTAUTHZ_DENIED:
        printf("  DENIED by %s:%u\n", certauthz_rule_file(id.rule),
               certauthz_rule_line(id.rule));
        break;
    case CERTAUTHZ_MAPPED:
        printf("  MAPPED by %s:%u: user=%s groups=%s\n",
               certauthz_rule_file(id.rule), certauthz_rule_line(id.rule),
               certauthz_log_escape(id.user, p),
               certauthz_log_escape(certauthz_identity_groups(&id, p), p));
        break;
    default:
        if (id.rule)
            printf("  UNMAPPED: %s:%u matched but its $N substitution gave "
                   "an unusable name, or its regex gave up on a value\n",
                   certauthz_rule_file(id.rule), certauthz_rule_line(id.rule));
        else
            printf("  UNMAPPED: no rule matches\n");
    }
    printf("matching rules, in file order\n");
    certauthz_map_each_match(map, f, print_match, &b);
    if (!b.n)
        printf("  (none)\n");
    return id.outcome == CERTAUTHZ_MAPPED   ? 0
           : id.outcome == CERTAUTHZ_DENIED ? 3
                                            : 4;
}

int main(int argc, char **argv)
{
    apr_pool_t *p;
    int rc;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("certauthz %s\n", CERTAUTHZ_VERSION);
        return 0;
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    if (!strcmp(argv[1], "check") && argc >= 3)
        rc = cmd_check(argc - 2, argv + 2, p);
    else if (!strcmp(argv[1], "explain") && argc == 4)
        rc = cmd_explain(argv[2], argv[3], p);
    else {
        usage(stderr);
        rc = 2;
    }
    apr_pool_destroy(p);
    apr_terminate();
    return rc;
}
