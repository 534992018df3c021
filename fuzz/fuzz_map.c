/*
 * fuzz_map.c -- fuzz target of the map file parser.
 *
 * Input: the bytes of a map file.  certauthz_map_parse() must either fail
 * with a sane error list (1..CERTAUTHZ_MAX_ERRORS errors, line numbers
 * inside the input, in line order, named after the map) or give a map.
 * A map is then resolved against a few fixed sets of facts built here, and
 * every result is cross-checked with certauthz_map_each_match() (see
 * check_resolution in fuzz_common.h): deny precedence, first match in file
 * order, issuer sections, identities free of control characters and ','
 * in groups, and selectors whose text form parses back to themselves.
 */
#include "fuzz_common.h"

#define MAP_NAME "fuzz.map"

static apr_pool_t *gpool; /* the fixed facts, for the whole run */

/* ---- facts built by hand, with the rules of certauthz_facts.c ------- */

typedef struct {
    certauthz_type_e type;
    const char *text;
} fv_t;

static void push(apr_array_header_t **arr, certauthz_type_e t, const char *text)
{
    certauthz_value_t *v = apr_array_push(arr[t]);
    v->text = text;
    v->key = certauthz_pstrndup_fold(text, strlen(text),
                                     certauthz_type_folds_case(t), gpool);
    v->key_len = strlen(text);
}

static const certauthz_dn_t *dn_of(const char *text)
{
    certauthz_dn_t *dn;
    const char *why;
    if (certauthz_dn_parse(&dn, text, strlen(text), &why, gpool)
        != APR_SUCCESS) {
        fprintf(stderr, "fuzz_map: fixed DN '%s' does not parse: %s\n", text,
                why);
        abort();
    }
    return dn;
}

/* subject, issuer: RFC 4514 text or NULL (not representable) */
static certauthz_facts_t *make_facts(const char *subject, const char *issuer,
                                     const fv_t *vals)
{
    certauthz_facts_t *f = apr_pcalloc(gpool, sizeof(*f));
    apr_array_header_t *arr[CERTAUTHZ_NTYPES];

    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        arr[t] = apr_array_make(gpool, 1, sizeof(certauthz_value_t));
    if (subject) {
        apr_size_t klen;
        certauthz_value_t *v = apr_array_push(arr[CERTAUTHZ_DN]);
        f->subject = dn_of(subject);
        v->text = certauthz_dn_text(f->subject);
        v->key = certauthz_dn_key(f->subject, &klen);
        v->key_len = klen;
    }
    if (issuer)
        f->issuer = dn_of(issuer);
    for (; vals && vals->text; vals++) {
        if (vals->type == CERTAUTHZ_CN)
            f->cn_count++;
        push(arr, vals->type, vals->text);
    }
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        f->of[t].n = arr[t]->nelts;
        f->of[t].v = (const certauthz_value_t *)arr[t]->elts;
    }
    f->not_before = "2024-01-01T00:00:00Z";
    f->not_after = "2034-01-01T00:00:00Z";
    return f;
}

#define SHA_A "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
#define SPKI_A "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static certauthz_facts_t *facts[8];
static int nfacts;

static void build_facts(void)
{
    /* an ordinary employee certificate */
    static const fv_t alice[] = {
        {CERTAUTHZ_CN, "alice"},
        {CERTAUTHZ_EMAIL, "alice@example.com"},
        {CERTAUTHZ_EMAIL, "Alice.Smith@Example.COM"},
        {CERTAUTHZ_DNS, "host1.build.example.com"},
        {CERTAUTHZ_DNS, "WWW.Example.com"},
        {CERTAUTHZ_URI, "spiffe://example.org/ns/prod/sa/api"},
        {CERTAUTHZ_URI, "https://example.com/u/alice"},
        {CERTAUTHZ_UPN, "alice@corp.example.com"},
        {CERTAUTHZ_IP, "192.0.2.1"},
        {CERTAUTHZ_IP, "2001:db8::1"},
        {CERTAUTHZ_IP, "::ffff:1.2.3.4"},
        {CERTAUTHZ_SERIAL, "4F2A9C01"},
        {CERTAUTHZ_SHA256, SHA_A},
        {CERTAUTHZ_SPKI, SPKI_A},
        {0, NULL}};
    facts[nfacts++] = make_facts("CN=alice,OU=people,O=Example,C=DE",
                                 "CN=Example CA,O=Example,C=DE", alice);

    /* a partner's service certificate, with values that regexes capture
     * into unusable names */
    static const fv_t svc[] = {{CERTAUTHZ_CN, "svc-build-42"},
                               {CERTAUTHZ_EMAIL, "ops,team@partner.example"},
                               {CERTAUTHZ_DNS, "a.b.partner.example"},
                               {CERTAUTHZ_DNS, "*.partner.example"},
                               {CERTAUTHZ_DNS, ""},
                               {CERTAUTHZ_URI, "urn:x:\x01\x1b[31m"},
                               {CERTAUTHZ_UPN, "Svc$1@Partner.Example"},
                               {CERTAUTHZ_IP, "10.0.0.1"},
                               {CERTAUTHZ_IP, "fe80::1:2"},
                               {CERTAUTHZ_SERIAL, "-5"},
                               {CERTAUTHZ_SHA256, SHA_A},
                               {CERTAUTHZ_SPKI, SPKI_A},
                               {0, NULL}};
    facts[nfacts++] = make_facts(
        "CN=svc-build-42+UID=x\\, y,OU=Ops\\0A,O=Partner Inc,DC=partner",
        "CN=Partner CA,O=Partner Inc", svc);

    /* non-ASCII, odd spacing, a long value for backtracking regexes */
    static char longv[1200];
    memset(longv, 'a', sizeof(longv) - 2);
    longv[sizeof(longv) - 2] = '!';
    static const fv_t odd[] = {
        {CERTAUTHZ_CN, "  J\xC3\xBCrgen \xE2\x98\x83 M\xC3\xBCller "},
        {CERTAUTHZ_EMAIL, "j\xC3\xBC@\xC3\xA9xample.com"},
        {CERTAUTHZ_DNS, "xn--mller-kva.example"},
        {CERTAUTHZ_URI, longv},
        {CERTAUTHZ_SERIAL, "0"},
        {CERTAUTHZ_SHA256, SHA_A},
        {CERTAUTHZ_SPKI, SPKI_A},
        {0, NULL}};
    facts[nfacts++] = make_facts(
        "CN=\\  J\xC3\xBCrgen \xE2\x98\x83 M\xC3\xBCller\\ ,O=\\#hash",
        "CN=Test CA", odd);

    /* no subject, no issuer, no SAN: only what every certificate has */
    static const fv_t bare[] = {{CERTAUTHZ_SERIAL, "1"},
                                {CERTAUTHZ_SHA256, SHA_A},
                                {CERTAUTHZ_SPKI, SPKI_A},
                                {0, NULL}};
    facts[nfacts++] = make_facts(NULL, NULL, bare);

    /* empty subject (zero RDNs), issued by the alice CA */
    facts[nfacts++] = make_facts("", "CN=Example CA,O=Example,C=DE", bare);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    if (apr_pool_create(&gpool, NULL) != APR_SUCCESS)
        abort();
    build_facts();
    return 0;
}

static void check_errors(apr_status_t rv, const certauthz_map_t *map,
                         apr_array_header_t *errs, unsigned nlines,
                         apr_pool_t *p)
{
    CHECK(errs != NULL, "no error array");
    if (rv == APR_SUCCESS) {
        CHECK(map != NULL, "success without a map");
        CHECK(errs->nelts == 0, "success with %d errors", errs->nelts);
        return;
    }
    CHECK(rv == CERTAUTHZ_EBADINPUT, "parse failed with status %d", rv);
    CHECK(map == NULL, "failure but a map returned");
    CHECK(errs->nelts >= 1 && errs->nelts <= CERTAUTHZ_MAX_ERRORS, "%d errors",
          errs->nelts);
    for (int i = 0; i < errs->nelts; i++) {
        const certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
        CHECK(e->file && !strcmp(e->file, MAP_NAME), "error file '%s'",
              e->file ? e->file : "(null)");
        CHECK(e->line >= 1 && e->line <= nlines, "error line %u outside 1..%u",
              e->line, nlines);
        CHECK(e->reason && *e->reason, "error without a reason");
        if (i)
            CHECK(APR_ARRAY_IDX(errs, i - 1, certauthz_error_t).line <= e->line,
                  "errors not in line order");
        size_t n = strlen(e->reason);
        CHECK(certauthz_utf8_valid(e->reason, n), "reason not UTF-8: %s",
              show(e->reason, n, p));
        /* the glue writes reasons to the error log as they are */
        CHECK(!has_ctl(e->reason, n),
              "control character in error reason (line %u): %s", e->line,
              show(e->reason, n, p));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = input_pool();
    certauthz_map_t *map = NULL;
    apr_array_header_t *errs = NULL;
    const char *buf = (const char *)data;
    unsigned nlines = count_lines(buf, size);
    apr_status_t rv;

    rv = certauthz_map_parse(&map, MAP_NAME, buf, size, &errs, p);
    check_errors(rv, map, errs, nlines, p);
    if (rv == APR_SUCCESS) {
        certauthz_map_stats_t st;
        apr_size_t exact = 0;

        certauthz_map_stats(map, &st);
        for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
            exact += st.exact[t];
        CHECK(st.exact_all == exact, "stats: exact_all %u, by type %zu",
              st.exact_all, (size_t)exact);
        CHECK(st.rules == exact + st.globs + st.regexes,
              "stats: %u rules but %zu exact + %u globs + %u regexes", st.rules,
              (size_t)exact, st.globs, st.regexes);
        CHECK((size_t)st.rules + st.deny <= nlines, "more rules than lines");
        CHECK(!strcmp(certauthz_map_name(map), MAP_NAME), "map name");
        apr_hash_t *checked = apr_hash_make(p);
        for (int i = 0; i < nfacts; i++)
            check_resolution(map, facts[i], nlines, checked, p);
    }
    input_done(p);
    return 0;
}
