/*
 * test_map.c -- the map file: grammar and errors (with line numbers),
 * quoting, sections, statistics, loading from disk, and resolution of
 * certgen certificates (first match, deny, issuer sections, $N).
 */
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "../certgen.h"
#include "tap.h"
#include "maputil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NAME "test.map"

static apr_pool_t *pool;

/* ---- helpers ----------------------------------------------------------- */

static const char *errs_text(apr_array_header_t *errs)
{
    const char *s = "";
    for (int i = 0; errs && i < errs->nelts; i++) {
        certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
        s = apr_psprintf(pool, "%s%s%u: %s", s, i ? " | " : "", e->line,
                         e->reason);
    }
    return s;
}

static certauthz_map_t *parse_len(const char *text, apr_size_t len,
                                  apr_array_header_t **errs)
{
    certauthz_map_t *m = NULL;
    apr_array_header_t *e = NULL;
    apr_status_t rv = certauthz_map_parse(&m, NAME, text, len, &e, pool);
    if (errs)
        *errs = e;
    if (rv != APR_SUCCESS) {
        if (m)
            diag("  map_parse failed but returned a map");
        return NULL;
    }
    return m;
}

static certauthz_map_t *parse_map(const char *text)
{
    apr_array_header_t *errs;
    certauthz_map_t *m = parse_len(text, strlen(text), &errs);
    if (!m)
        diag("  map does not parse: %s", errs_text(errs));
    return m;
}

/* Check a parse: want NULL = accepted, else the first error as "LINE: ..."
 * must contain want. */
static void check_grammar(const char *text, apr_size_t len, const char *want,
                          const char *label)
{
    apr_array_header_t *errs = NULL;
    certauthz_map_t *m = parse_len(text, len, &errs);
    if (!want) {
        ok(m != NULL, "grammar ok: %s%s%s", label, m ? "" : " -- ",
           m ? "" : errs_text(errs));
        return;
    }
    const char *got = "";
    if (!m && errs && errs->nelts) {
        certauthz_error_t *e = &APR_ARRAY_IDX(errs, 0, certauthz_error_t);
        got = apr_psprintf(pool, "%u: %s", e->line, e->reason);
        if (!e->file || strcmp(e->file, NAME))
            got = "(wrong file name in error)";
    }
    ok(!m && strstr(got, want), "grammar error: %s -> '%s' (got '%s')", label,
       want, m ? "accepted" : got);
}

static certauthz_facts_t *facts(const char *opts)
{
    return facts_of_cert(opts, pool);
}

static certauthz_facts_t *facts_cn(const char *cn)
{
    return facts_one(CERTAUTHZ_CN, cn, pool);
}

static const char *describe(const certauthz_identity_t *id)
{
    return identity_text(id, pool);
}

static const char *resolve(const char *map_text, const certauthz_facts_t *f)
{
    certauthz_map_t *m = parse_map(map_text);
    certauthz_identity_t id;
    if (!m)
        return "(map error)";
    certauthz_map_resolve(&id, m, f, pool);
    return describe(&id);
}

/* ---- grammar --------------------------------------------------------- */

static void test_grammar(void)
{
    static const struct {
        const char *map, *want;
    } t[] = {
        /* accepted */
        {"", NULL},
        {"# comment only\n", NULL},
        {"\n\n   \n\t\n  # indented comment\n", NULL},
        {"cn:alice alice\n", NULL},
        {"cn:alice alice staff,admins", NULL},
        {"cn:alice\talice\tstaff", NULL},
        {"  cn:alice   alice   staff  ", NULL},
        {"cn:a u \"staff, admins\"", NULL},
        {"dn:\"CN=A B,O=C\" dave ops", NULL},
        {"\"dn:CN=A B,O=C\" dave", NULL},
        {"cn:\"a#b\" u", NULL},
        {"cn:a u # comment", NULL},
        {"cn:a u#comment", NULL},
        {"deny serial:4F2A9C01 # a lost laptop", NULL},
        {"deny serial:4F2A9C01# a lost laptop", NULL},
        {"cn~^svc-([a-z0-9-]+)$ svc-$1 services", NULL},
        {"cn~^(a)(b)$ $0-$1 g$2,h$1", NULL},
        {"cn~^a\\d$ u", NULL},
        {"cn~\"^a\\d \\\"x\\\"$\" u", NULL},
        {"dn:CN=a\\,b u", NULL},
        {"dn:\"CN=a\\\\,b\" u", NULL},
        {"cn:Zo\xC3\xAB zo\xC3\xAB", NULL},
        {"cn:a u\r\ncn:b v\r\n", NULL},
        {"\xEF\xBB\xBF"
         "cn:a u\n",
         NULL},
        {"\xEF\xBB\xBF", NULL},
        {"\r\n\r\n", NULL},
        {"[issuer \"CN=Partner CA,O=Partner Inc\"]\ncn~^(.+)$ partner-$1 "
         "partners\n",
         NULL},
        {"[any-issuer]\ncn:a u", NULL},
        {"  [any-issuer]  # back to all", NULL},
        {"[ issuer \"CN=X\" ]", NULL},
        {"[issuer \"CN=a#b\"] # comment", NULL},
        {"[issuer \"CN=say \\\\\\\"hi\\\\\\\"\"]", NULL},
        {"[issuer \"CN=X\"]\n[issuer \"cn = X\"]\n[any-issuer]\n"
         "[issuer \"CN=X\"]",
         NULL},
        {"cn:a u\n[issuer \"CN=X\"]\ncn:a u", NULL}, /* other section */
        {"[issuer \"CN=X\"]\ncn:a u\n[issuer \"CN=Y\"]\ncn:a u", NULL},
        {"cn:a u\ndeny cn:a", NULL}, /* allow + deny */
        {"cn:a* u\ncn:a* v", NULL},  /* globs */
        {"cn~^a u\ncn~^a v", NULL},  /* regexes */
        {"cn:a u\ncn:A u", NULL},    /* cn is exact */
        {"deny \"dn:CN=a b\"", NULL},
        {"cn:a \"u v\" \"g 1\"", NULL},
        /* errors, with the line */
        {"foo:bar u", "1: unknown selector type 'foo'"},
        {"cn:a u\n\n# c\nfoo:x u\n", "4: unknown selector type"},
        {"cn:a u\r\n\r\nfoo:x u\r\n", "3: unknown selector type"},
        {"\xEF\xBB\xBF"
         "foo:x u",
         "1: unknown selector type 'foo'"},
        {"cn:a u\n\xEF\xBB\xBF"
         "cn:b v",
         "2: "},                                  /* BOM not at start */
        {"cn~^x#y$ u", "1: missing user"},        /* '#' starts a comment */
        {"cn:a\\\"b u", "1: unterminated quote"}, /* '\' literal outside */
        {"cnalice u", "1: selector 'cnalice' is not type:value or type~regex"},
        {"cn~( u", "1: bad regex: "},
        {"cn~a(b u", "at offset 3"},
        {"cn~ u", "1: empty regex"},
        {"cn:a", "1: missing user"},
        {"cn:a#b u", "1: missing user"},
        {"cn:a # u", "1: missing user"},
        {"cn:a \"\"", "1: empty user"},
        {"cn:a $1", "1: $1 in user but the selector is not a regex"},
        {"cn:a* u$1", "1: $1 in user but the selector is not a regex"},
        {"cn:a u g$1", "1: $1 in groups but the selector is not a regex"},
        {"cn~^(a)$ $2", "1: $2 in user but the regex has 1 capture group"},
        {"cn~^a$ $1", "1: $1 in user but the regex has 0 capture groups"},
        {"cn~^(a)$ u g,h$2", "1: $2 in groups but the regex has 1"},
        {"cn~^(a)$ u g$1\ncn:b u g$1", "2: $1 in groups but the selector is "
                                       "not a regex"},
        {"sha256:ABC u", "1: bad sha256 value"},
        {"sha256:* u", "1: bad sha256 value"},
        {"spki:abc u", "1: bad spki value"},
        {"serial:xyz u", "1: bad serial value"},
        {"ip:1.2.3 u", "1: bad IP address"},
        {"dn:CN=a, u", "1: bad DN"},
        {"dn:foo=bar u", "1: bad DN"},
        {"cn:a u\ncn:a v", "2: duplicate selector cn:a (first at line 1)"},
        {"cn:a u\n#\ncn:b v\ncn:a w", "4: duplicate selector cn:a (first at "
                                      "line 1)"},
        {"email:A@x u\nemail:a@X v", "2: duplicate selector"},
        {"serial:0A u\nserial:a v", "2: duplicate selector"},
        {"dn:CN=a,O=b u\ndn:\"cn = a, o = b\" v", "2: duplicate selector"},
        {"ip:2001:db8::1 u\nip:2001:DB8:0::1 v", "2: duplicate selector"},
        {"deny cn:a\ndeny cn:a", "2: duplicate selector"},
        {"[issuer \"CN=X\"]\ncn:a u\n[any-issuer]\n[issuer \"cn=X\"]\ncn:a v",
         "5: duplicate selector"},
        {"cn:\"a u", "1: unterminated quote"},
        {"cn:a \"u", "1: unterminated quote"},
        {"cn:\"a\\\" u", "1: unterminated quote"},
        {"[issuer CN=X]", "1: bad section header"},
        {"[foo]", "1: bad section header"},
        {"[]", "1: bad section header"},
        {"[issuer \"CN=X\"", "1: bad section header"},
        {"[issuer \"CN=X\"] junk", "1: bad section header"},
        {"[any-issuer", "1: bad section header"},
        {"[any-issuer] x", "1: bad section header"},
        {"[any-issuerX]", "1: bad section header"},
        {"[issuer \"CN=X]", "1: unterminated quote"},
        {"[issuer \"foo=bar\"]", "1: bad issuer DN in section header"},
        {"[issuer \"CN=a,\"]", "1: bad issuer DN in section header"},
        {"cn:\xFF u", "1: line is not valid UTF-8"},
        {"cn:a u\ncn:b \xC3\x28", "2: line is not valid UTF-8"},
        {"cn:a u a,,b", "1: empty group name"},
        {"cn:a u ,a", "1: empty group name"},
        {"cn:a u a,", "1: empty group name"},
        {"cn:a u \" \"", "1: empty group name"},
        {"deny", "1: deny needs a selector"},
        {"deny # nothing", "1: deny needs a selector"},
        {"deny cn:a u", "1: deny takes only a selector"},
        {"deny foo:x", "1: unknown selector type"},
        {"cn:a u g extra", "1: unexpected field after groups"},
        {"cn:a u staff, admins", "1: unexpected field after groups"},
        {"cn:a u g 4 5 6 7 8 9 10", "1: "},
        {"cn:a \"u\x01\"", "1: control character in user"},
        {"cn:a u\x7F", "1: control character in user"},
        {"cn:a u \"g\x01\"", "1: control character in group"},
    };
    for (size_t i = 0; i < N(t); i++)
        check_grammar(t[i].map, strlen(t[i].map), t[i].want,
                      tap_show(t[i].map, strlen(t[i].map)));

    /* NUL bytes: the length is explicit */
    check_grammar("cn:a u\0", 7, "1: NUL byte", "NUL at the end of line 1");
    check_grammar("cn:a u\ncn:b\0 v\n", 15, "2: NUL byte", "NUL in line 2");
    check_grammar("# a\0comment\n", 12, "1: NUL byte", "NUL in a comment");

    /* line length: 16384 bytes ok, 16385 not (line end excluded) */
    for (int extra = 0; extra <= 1; extra++) {
        for (int crlf = 0; crlf <= 1; crlf++) {
            apr_size_t len = CERTAUTHZ_MAX_LINE + (apr_size_t)extra;
            char *buf = apr_palloc(pool, len + 40);
            strcpy(buf, "cn:x u\n");
            char *line = buf + 7;
            memcpy(line, "cn:", 3);
            memset(line + 3, 'a', len - 5);
            memcpy(line + len - 2, " u", 2);
            strcpy(line + len, crlf ? "\r\ncn:y v\r\n" : "\ncn:y v\n");
            check_grammar(buf, strlen(buf),
                          extra ? "2: line longer than 16384 bytes" : NULL,
                          apr_psprintf(pool, "line 2 of %d bytes%s", (int)len,
                                       crlf ? " + CRLF" : ""));
        }
    }
    /* a long comment line is still a line */
    char *c = apr_palloc(pool, CERTAUTHZ_MAX_LINE + 3);
    memset(c, '#', CERTAUTHZ_MAX_LINE + 1);
    c[CERTAUTHZ_MAX_LINE + 1] = '\0';
    check_grammar(c, strlen(c), "1: line longer than 16384 bytes",
                  "16385-byte comment line");
}

static void test_errors(void)
{
    apr_array_header_t *errs;
    certauthz_map_t *m =
        parse_len("foo:x u\ncn:a u\ncn:b\n\n[bad]\ncn:c w\n", 34, &errs);
    ok(!m, "three errors: not loaded");
    is_int(errs ? errs->nelts : -1, 3, "three errors collected: %s",
           errs_text(errs));
    if (errs && errs->nelts == 3) {
        static const unsigned lines[] = {1, 3, 5};
        for (int i = 0; i < 3; i++) {
            certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
            is_int(e->line, lines[i], "error %d at line %u", i + 1, lines[i]);
            is_str(e->file, NAME, "error %d names the file", i + 1);
        }
    }

    /* at most CERTAUTHZ_MAX_ERRORS */
    char *many = "";
    for (int i = 0; i < 150; i++)
        many = apr_pstrcat(pool, many, "bad\n", NULL);
    m = parse_len(many, strlen(many), &errs);
    ok(!m && errs && errs->nelts == CERTAUTHZ_MAX_ERRORS,
       "150 bad lines: %d errors kept", errs ? errs->nelts : -1);
    certauthz_error_t *last =
        &APR_ARRAY_IDX(errs, errs->nelts - 1, certauthz_error_t);
    is_int(last->line, CERTAUTHZ_MAX_ERRORS, "  ... the first 100, in order");

    /* success: errs is empty */
    m = parse_len("cn:a u\n", 7, &errs);
    ok(m && errs && errs->nelts == 0, "a good map: no errors");
    is_str(m ? certauthz_map_name(m) : NULL, NAME, "map_name");
}

/* ---- quoting, seen through resolution ---------------------------------- */

static void test_quoting(void)
{
    static const struct {
        const char *map, *cn, *want;
    } t[] = {
        {"cn:\"Alice Smith\" alice", "Alice Smith", "MAPPED alice @1"},
        {"\"cn:Alice Smith\" alice", "Alice Smith", "MAPPED alice @1"},
        {"cn:\"Alice\"\" Smith\" alice", "Alice Smith", "MAPPED alice @1"},
        {"cn:Alice\" \"Smith alice", "Alice Smith", "MAPPED alice @1"},
        {"cn:\"say \\\"hi\\\"\" u", "say \"hi\"", "MAPPED u @1"},
        {"cn:\"back\\\\slash\" u", "back\\slash", "MAPPED u @1"},
        {"cn:a\\b u", "a\\b", "MAPPED u @1"},
        {"cn:a\\\\b u", "a\\\\b", "MAPPED u @1"},
        {"cn:\"a\\b\" u", "a\\b", "MAPPED u @1"},
        {"cn:\"a#b\" u", "a#b", "MAPPED u @1"},
        {"cn:a u#g", "a", "MAPPED u @1"},
        {"cn:a u g1,g2 # comment", "a", "MAPPED u [g1,g2] @1"},
        {"cn:a \"u v\" \"g 1, g2 \"", "a", "MAPPED u v [g 1,g2] @1"},
        {"cn:a u \"  g1  ,\tg2\"", "a", "MAPPED u [g1,g2] @1"},
        {"cn:a\tu\tg1", "a", "MAPPED u [g1] @1"},
        {"cn:a u \"g#1\"", "a", "MAPPED u [g#1] @1"},
        {"cn~\"^a\\d$\" u", "a7", "MAPPED u @1"},
        {"cn~^a\\d$ u", "a7", "MAPPED u @1"},
        {"cn~\"^a b$\" u", "a b", "MAPPED u @1"},
        {"\xEF\xBB\xBF"
         "cn:a u",
         "a", "MAPPED u @1"},
        {"cn:a u\r\n", "a", "MAPPED u @1"},
        {"cn:b x\r\ncn:a u\r\n", "a", "MAPPED u @2"},
        {"\n\n# c\n\ncn:a u", "a", "MAPPED u @5"},
    };
    for (size_t i = 0; i < N(t); i++)
        is_str(resolve(t[i].map, facts_cn(t[i].cn)), t[i].want,
               "quoting: %s with cn %s", tap_show(t[i].map, strlen(t[i].map)),
               tap_show(t[i].cn, strlen(t[i].cn)));
}

static void test_stats(void)
{
    certauthz_map_t *m = parse_map(
        "cn:a u\n"
        "email:x@y u\n"
        "email:z@y u g1,g2\n"
        "dns:*.x u\n"
        "cn~^b u\n"
        "deny serial:01\n"
        "deny cn~^bad\n"
        "deny dns:*.evil\n"
        "[issuer \"CN=CA1\"]\n"
        "cn:a u\n"
        "[issuer \"CN=CA2\"]\n"
        "[issuer \"cn = CA1\"]\n"
        "uri:x u\n"
        "[any-issuer]\n"
        "sha256:"
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
        " k\n");
    certauthz_map_stats_t st;
    if (!m) {
        ok(0, "stats map parses");
        return;
    }
    certauthz_map_stats(m, &st);
    is_int(st.rules, 8, "stats: allow rules");
    is_int(st.exact[CERTAUTHZ_CN], 2, "stats: exact cn");
    is_int(st.exact[CERTAUTHZ_EMAIL], 2, "stats: exact email");
    is_int(st.exact[CERTAUTHZ_URI], 1, "stats: exact uri");
    is_int(st.exact[CERTAUTHZ_SHA256], 1, "stats: exact sha256");
    is_int(st.exact[CERTAUTHZ_SERIAL], 0, "stats: exact serial (deny only)");
    is_int(st.globs, 1, "stats: globs");
    is_int(st.regexes, 1, "stats: regexes");
    is_int(st.deny, 3, "stats: deny");
    is_int(st.sections, 2, "stats: distinct issuer sections");
    is_int(st.exact_all, 6, "stats: exact rules in all (the sum by type)");
    is_str(certauthz_map_summary(&st, pool),
           "8 rules (6 exact, 1 glob, 1 regex), 3 deny, 2 issuer sections",
           "stats: the summary phrase");
    is_str(certauthz_rule_where(m, certauthz_map_rule(m, 2), pool),
           apr_pstrcat(pool, certauthz_map_name(m), ":3", NULL),
           "rule_where: FILE:LINE of the third rule");
    is_str(certauthz_rule_where(m, NULL, pool), "-", "rule_where(NULL)");

    m = parse_map("");
    certauthz_map_stats(m, &st);
    ok(st.rules == 0 && st.deny == 0 && st.sections == 0 && st.globs == 0
           && st.regexes == 0,
       "stats of an empty map");
}

/* ---- resolution -------------------------------------------------------- */

static void test_resolution(void)
{
    /* A and B: same subject and serial, different issuers */
    certauthz_facts_t *A =
        facts("--subject /O=Ex/CN=alice --issuer-name '/O=Ex/CN=CA One'"
              " --san email:Alice@Example.com --san dns:a.build.example.com"
              " --serial 4F2A9C01");
    certauthz_facts_t *B =
        facts("--subject /O=Ex/CN=alice --issuer-name '/O=Ex/CN=CA Two'"
              " --serial 4F2A9C01");
    certauthz_facts_t *S = facts(
        "--subject /O=Ex/CN=svc-api --san dns:x.example --san dns:y.example"
        " --san uri:spiffe://example.org/ns/prod/sa/api");
    certauthz_facts_t *C = facts("--subject /CN=x,y");
    certauthz_facts_t *E = facts("--subject /CN=b");
    certauthz_facts_t *K = facts("--subject /CN=\\x01ctl");
    certauthz_facts_t *T = facts("--subject /O=Ex/CN=a/CN=b");
    certauthz_facts_t *Z = facts("--subject /O=Ex/CN=a\\x00b"
                                 " --san email:z@example.com");
    char hostile[40];
    memset(hostile, 'a', 30);
    strcpy(hostile + 30, "!");
    certauthz_facts_t *H = facts(apr_psprintf(pool,
                                              "--subject /CN=h "
                                              "--san dns:%s",
                                              hostile));

    const struct {
        const char *map;
        const certauthz_facts_t *f;
        const char *fname, *want;
    } t[] = {
        /* first match in file order, across exact and pattern rules */
        {"cn~^ali u-regex\ncn:alice u-exact", A, "A", "MAPPED u-regex @1"},
        {"cn:alice u-exact\ncn~^ali u-regex", A, "A", "MAPPED u-exact @1"},
        {"dns:*.build.example.com ci robots\ncn:alice u", A, "A",
         "MAPPED ci [robots] @1"},
        {"cn:alice u\ndns:*.build.example.com ci robots", A, "A",
         "MAPPED u @1"},
        {"cn:bob b\nemail:alice@example.com a1\ncn:alice a2", A, "A",
         "MAPPED a1 @2"},
        {"cn~^bob b\ncn~^nobody n\ncn:alice a\ncn~alice r", A, "A",
         "MAPPED a @3"},
        {"cn:bob b", A, "A", "UNMAPPED"},
        {"", A, "A", "UNMAPPED"},
        {"email:ALICE@EXAMPLE.COM u", A, "A", "MAPPED u @1"},
        {"dn:CN=alice,O=Ex u", A, "A", "MAPPED u @1"},
        {"dn:\"cn = alice, o = Ex\" u", A, "A", "MAPPED u @1"},
        {"dn:O=Ex,CN=alice u", A, "A", "UNMAPPED"},
        {"serial:00:4f:2a:9c:01 u", A, "A", "MAPPED u @1"},
        /* deny wins, wherever it is */
        {"cn:alice u\ndeny serial:4F2A9C01", A, "A", "DENIED @2"},
        {"deny cn~^ali\ncn:alice u", A, "A", "DENIED @1"},
        {"cn~alice u\ndeny dns:*.build.example.com", A, "A", "DENIED @2"},
        {"cn:alice u\ndeny dn:CN=alice,O=Ex", A, "A", "DENIED @2"},
        {"cn:alice u\ndeny cn:bob", A, "A", "MAPPED u @1"},
        /* deny in an issuer section: that issuer only */
        {"cn:alice u\n[issuer \"CN=CA One,O=Ex\"]\ndeny serial:4F2A9C01", A,
         "A", "DENIED @3"},
        {"cn:alice u\n[issuer \"CN=CA One,O=Ex\"]\ndeny serial:4F2A9C01", B,
         "B", "MAPPED u @1"},
        {"[issuer \"CN=CA Two,O=Ex\"]\ndeny cn~alice\n[any-issuer]\n"
         "cn:alice u",
         A, "A", "MAPPED u @4"},
        {"[issuer \"CN=CA Two,O=Ex\"]\ndeny cn~alice\n[any-issuer]\n"
         "cn:alice u",
         B, "B", "DENIED @2"},
        /* issuer sections */
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:alice one\n"
         "[issuer \"CN=CA Two,O=Ex\"]\ncn:alice two",
         A, "A", "MAPPED one @2"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:alice one\n"
         "[issuer \"CN=CA Two,O=Ex\"]\ncn:alice two",
         B, "B", "MAPPED two @4"},
        {"[issuer \"CN=CA Two,O=Ex\"]\ncn:alice two", A, "A", "UNMAPPED"},
        {"[issuer \"CN=CA Two,O=Ex\"]\ncn~alice two", A, "A", "UNMAPPED"},
        /* sections compare issuers as OpenSSL's chain building does:
         * case and white space folded, RDN order still significant */
        {"[issuer \"cn=ca two,o=ex\"]\ncn:alice two", B, "B", "MAPPED two @2"},
        {"[issuer \"CN=CA  Two , O=Ex\"]\ncn:alice two", B, "B",
         "MAPPED two @2"},
        {"[issuer \"CN=CATwo,O=Ex\"]\ncn:alice two", B, "B", "UNMAPPED"},
        {"[issuer \"O=Ex,CN=CA Two\"]\ncn:alice two", B, "B", "UNMAPPED"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn~^(.+)$ p-$1 partners\n"
         "[any-issuer]\ncn:alice g",
         A, "A", "MAPPED p-alice [partners] @2"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn~^(.+)$ p-$1 partners\n"
         "[any-issuer]\ncn:alice g",
         B, "B", "MAPPED g @4"},
        {"[issuer \"CN=CA One,O=Ex\"]\n[any-issuer]\ncn:alice g", A, "A",
         "MAPPED g @3"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:x one\n[issuer \"CN=CA Two,O=Ex\"]\n"
         "[issuer \"CN=CA One,O=Ex\"]\ncn:alice reopened",
         A, "A", "MAPPED reopened @5"},
        /* the same exact selector in different sections */
        {"cn:alice any\n[issuer \"CN=CA One,O=Ex\"]\ncn:alice one", A, "A",
         "MAPPED any @1"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:alice one\n[any-issuer]\n"
         "cn:alice any",
         A, "A", "MAPPED one @2"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:alice one\n[any-issuer]\n"
         "cn:alice any",
         B, "B", "MAPPED any @4"},
        {"cn:alice u\ndeny cn:alice", A, "A", "DENIED @2"},
        {"[issuer \"CN=CA One,O=Ex\"]\ncn:alice one\n[any-issuer]\n"
         "cn~alice any",
         A, "A", "MAPPED one @2"},
        /* hostile subjects: no cn fact with two CNs, no dn with a NUL */
        {"cn:a u\ncn:b v\ncn~. r\ndn:CN=b,CN=a,O=Ex w", T, "two CNs",
         "MAPPED w @4"},
        {"cn~a u\ndn~a v\ndn:CN=a,O=Ex w\nemail:z@example.com z", Z,
         "NUL in CN", "MAPPED z @4"},
        {"deny cn~a\ndeny dn~.\nemail:z@example.com z", Z, "NUL in CN",
         "MAPPED z @3"},
        /* multi-valued SANs: any value */
        {"dns:y.example u", S, "S", "MAPPED u @1"},
        {"dns:x.example u", S, "S", "MAPPED u @1"},
        {"dns:*.example u", S, "S", "MAPPED u @1"},
        {"dns~^y\\. u", S, "S", "MAPPED u @1"},
        {"deny dns:y.example\ncn:svc-api u", S, "S", "DENIED @1"},
        /* $N substitution */
        {"cn~^svc-([a-z0-9-]+)$ svc-$1 services,svc-$1-grp", S, "S",
         "MAPPED svc-api [services,svc-api-grp] @1"},
        {"cn~^svc- $0x g", S, "S", "MAPPED svc-x [g] @1"},
        {"uri~^spiffe://([^/]+)/ns/([^/]+)/sa/(.+)$ $3@$1 ns-$2", S, "S",
         "MAPPED api@example.org [ns-prod] @1"},
        {"dns~^(.)\\.example$ host-$1", S, "S", "MAPPED host-x @1"},
        {"cn~^(.*)$ $1", C, "C", "MAPPED x,y @1"}, /* ',' fine in a user */
        /* bad substitution: UNMAPPED with the rule, later rules not tried */
        {"cn~^(.*)$ u $1\ncn:x,y z", C, "C", "UNMAPPED @1"},
        {"cn~^(.*)$ u g,$1", C, "C", "UNMAPPED @1"},
        {"cn~^(a*)b$ $1\ncn:b z", E, "E", "UNMAPPED @1"},
        {"cn~^(a*)b$ u g$1,$1", E, "E", "UNMAPPED @1"},
        {"cn~^(x)?b$ $1", E, "E", "UNMAPPED @1"},
        {"cn~^(.*)$ $1", K, "K", "UNMAPPED @1"},
        {"cn~^(.*)$ u g-$1", K, "K", "UNMAPPED @1"},
        {"cn~^(a*)b$ u$1", E, "E", "MAPPED u @1"},
        /* a regex that gives up: no identity (rather than a later rule's)
         * for an allow rule, a match for a deny rule */
        {"dns~^(a+)+$ x\ncn:h u", H, "H", "UNMAPPED @1"},
        {"cn:h u\ndns~^(a+)+$ x", H, "H", "MAPPED u @1"},
        {"deny dns~^(a+)+$\ncn:h u", H, "H", "DENIED @1"},
    };
    for (size_t i = 0; i < N(t); i++)
        is_str(resolve(t[i].map, t[i].f), t[i].want, "resolve %s against %s",
               tap_show(t[i].map, strlen(t[i].map)), t[i].fname);

    /* sha256 and spki rules with values from the certificate */
    const char *sha = A->of[CERTAUTHZ_SHA256].v[0].text;
    char *colons = "";
    for (int i = 0; i < 64; i += 2)
        colons = apr_psprintf(pool, "%s%s%c%c", colons, i ? ":" : "",
                              apr_tolower(sha[i]), apr_tolower(sha[i + 1]));
    is_str(resolve(apr_psprintf(pool, "sha256:%s kiosk", colons), A),
           "MAPPED kiosk @1", "sha256 rule in lower case with colons");
    is_str(resolve(apr_psprintf(pool, "sha256:%s kiosk", colons), B),
           "UNMAPPED", "sha256 rule does not match another certificate");
    is_str(resolve(apr_psprintf(pool, "spki:%s pinned",
                                A->of[CERTAUTHZ_SPKI].v[0].text),
                   A),
           "MAPPED pinned @1", "spki rule");
    is_str(resolve(apr_psprintf(pool, "cn:alice u\ndeny sha256:%s", sha), A),
           "DENIED @2", "deny sha256");

    /* identity details */
    certauthz_map_t *m = parse_map("cn:x y\n[issuer \"CN=CA One,O=Ex\"]\n"
                                   "cn:alice alice \"staff, admins\"\n");
    certauthz_identity_t id;
    certauthz_selector_t tsel;
    if (m) {
        certauthz_map_resolve(&id, m, A, pool);
        ok(id.outcome == CERTAUTHZ_MAPPED && id.rule, "identity mapped");
        is_str(id.user, "alice", "identity user");
        is_int(id.ngroups, 2, "identity ngroups");
        ok(id.groups && !strcmp(id.groups[0], "staff")
               && !strcmp(id.groups[1], "admins") && id.groups[2] == NULL,
           "identity groups, NULL-terminated");
        is_str(certauthz_identity_groups(&id, pool), "staff,admins",
               "identity_groups joined");
        is_str(certauthz_rule_file(m, id.rule), NAME, "rule_file");
        is_int(certauthz_rule_line(id.rule), 3, "rule_line");
        ok(!certauthz_rule_is_deny(id.rule), "rule_is_deny false");
        is_str(certauthz_selector_text(
                   certauthz_rule_selector(m, id.rule, &tsel), pool),
               "cn:alice", "rule_selector");
        ok(certauthz_rule_issuer(m, id.rule)
               && certauthz_dn_equal(certauthz_rule_issuer(m, id.rule),
                                     A->issuer),
           "rule_issuer");
    }
    m = parse_map("cn:alice u\n");
    certauthz_map_resolve(&id, m, A, pool);
    ok(id.ngroups == 0 && certauthz_rule_issuer(m, id.rule) == NULL,
       "no groups, no issuer section");
    is_str(certauthz_identity_groups(&id, pool), "", "identity_groups empty");
    m = parse_map("cn:bob u\n");
    id.rule = (void *)1;
    certauthz_map_resolve(&id, m, A, pool);
    ok(id.outcome == CERTAUTHZ_UNMAPPED && !id.rule && !id.user && !id.ngroups,
       "unmapped: no rule, no user");
    m = parse_map("cn~^(.*)$ u $1\n");
    certauthz_map_resolve(&id, m, C, pool);
    ok(id.outcome == CERTAUTHZ_UNMAPPED && id.rule && !id.user && !id.ngroups,
       "bad substitution: the rule, but no identity");
    m = parse_map("cn:a u\ndeny serial:4F2A9C01\n");
    certauthz_map_resolve(&id, m, A, pool);
    ok(id.outcome == CERTAUTHZ_DENIED && id.rule
           && certauthz_rule_is_deny(id.rule) && !id.user,
       "denied: the deny rule, no user");
}

/* 1 rule vs 10,000 rules: the same answers. */
static char *big_map(int target_line, int regex_line, int glob_every)
{
    apr_size_t cap = 64 * 10000, n = 0;
    char *buf = apr_palloc(pool, cap);
    for (int line = 1; line <= 10000; line++) {
        if (line == target_line)
            n += (apr_size_t)snprintf(buf + n, cap - n, "cn:alice target\n");
        else if (line == regex_line)
            n += (apr_size_t)snprintf(buf + n, cap - n,
                                      "email~^alice@ by-regex\n");
        else if (glob_every && line % glob_every == 0)
            n += (apr_size_t)snprintf(buf + n, cap - n,
                                      "dns:*.f%d.example g%d\n", line, line);
        else
            n += (apr_size_t)snprintf(buf + n, cap - n,
                                      "email:user%05d@example.org u%d g\n",
                                      line, line);
    }
    buf[n] = '\0';
    return buf;
}

static void test_scale(void)
{
    certauthz_facts_t *A = facts("--subject /O=Ex/CN=alice"
                                 " --san email:alice@example.com");
    certauthz_facts_t *other = facts("--subject /CN=nobody"
                                     " --san email:user04242@example.org");
    is_str(resolve("cn:alice target", A), "MAPPED target @1", "1-rule map");
    is_str(resolve(big_map(7777, 0, 0), A), "MAPPED target @7777",
           "10,000 exact rules: same user");
    is_str(resolve(big_map(7777, 8000, 100), A), "MAPPED target @7777",
           "10,000 rules with globs, a later regex: same user");
    is_str(resolve(big_map(7777, 5000, 100), A), "MAPPED by-regex @5000",
           "10,000 rules: an earlier regex wins over the exact rule");
    is_str(resolve(big_map(7777, 0, 100), other), "MAPPED u4242 [g] @4242",
           "10,000 rules: another certificate finds its rule");
    is_str(resolve(big_map(0, 0, 0), A), "UNMAPPED",
           "10,000 rules, none matching");
}

/* ---- each_match --------------------------------------------------------- */

typedef struct {
    unsigned lines[16];
    int n, stop_after;
} collect_t;

static int collect(void *baton, const certauthz_rule_t *r)
{
    collect_t *c = baton;
    if (c->n < 16)
        c->lines[c->n++] = certauthz_rule_line(r);
    return c->stop_after && c->n >= c->stop_after;
}

static const char *lines_text(const collect_t *c)
{
    const char *s = "";
    for (int i = 0; i < c->n; i++)
        s = apr_psprintf(pool, "%s%s%u", s, i ? "," : "", c->lines[i]);
    return s;
}

static void test_each_match(void)
{
    certauthz_facts_t *A =
        facts("--subject /O=Ex/CN=alice --issuer-name '/O=Ex/CN=CA One'"
              " --san email:alice@example.com --san dns:a.build.example.com"
              " --serial 4F2A9C01");
    certauthz_map_t *m = parse_map("cn:alice a\n"                  /* 1 */
                                   "deny serial:4F2A9C01\n"        /* 2 */
                                   "cn:bob b\n"                    /* 3 */
                                   "dns:*.build.example.com c\n"   /* 4 */
                                   "[issuer \"CN=CA Two,O=Ex\"]\n" /* 5 */
                                   "cn:alice two\n"                /* 6 */
                                   "[issuer \"CN=CA One,O=Ex\"]\n" /* 7 */
                                   "email~alice one\n"             /* 8 */
                                   "[any-issuer]\n"                /* 9 */
                                   "deny cn:nobody\n"              /* 10 */
                                   "email:alice@example.com e\n"); /* 11 */
    collect_t c = {{0}, 0, 0};
    if (!m)
        return;
    certauthz_map_each_match(m, A, collect, &c);
    is_str(lines_text(&c), "1,2,4,8,11", "each_match: every match in order");
    c.n = 0;
    c.stop_after = 2;
    certauthz_map_each_match(m, A, collect, &c);
    is_str(lines_text(&c), "1,2", "each_match stops when fn returns non-zero");
    c.n = 0;
    c.stop_after = 0;
    certauthz_map_each_match(m, facts_cn("nobody"), collect, &c);
    is_str(lines_text(&c), "10", "each_match with hand-made facts");

    /* a regex that gives up: not a match for an allow rule (as in
     * resolve), a match for a deny rule */
    char hostile[40];
    memset(hostile, 'a', 30);
    strcpy(hostile + 30, "!");
    certauthz_facts_t *H = facts(apr_psprintf(pool,
                                              "--subject /CN=h "
                                              "--san dns:%s",
                                              hostile));
    m = parse_map("dns~^(a+)+$ x\ncn:h u\n");
    c.n = 0;
    certauthz_map_each_match(m, H, collect, &c);
    is_str(lines_text(&c), "2",
           "each_match: an allow regex that gives up "
           "is not listed (resolve gives line 2)");
    m = parse_map("deny dns~^(a+)+$\ncn:h u\n");
    c.n = 0;
    certauthz_map_each_match(m, H, collect, &c);
    is_str(lines_text(&c), "1,2",
           "each_match: a deny regex that gives up "
           "is listed");
}

/* ---- loading from disk ------------------------------------------------- */

static const char *write_file(const char *dir, const char *name,
                              const char *text)
{
    const char *path = apr_pstrcat(pool, dir, "/", name, NULL);
    apr_file_t *fd;
    apr_size_t len = strlen(text);
    apr_file_open(&fd, path,
                  APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE,
                  APR_FPROT_OS_DEFAULT, pool);
    apr_file_write_full(fd, text, len, NULL);
    apr_file_close(fd);
    return path;
}

static void test_load(void)
{
    const char *tmp;
    apr_temp_dir_get(&tmp, pool);
    const char *dir =
        apr_psprintf(pool, "%s/certauthz-test-map.%ld", tmp, (long)getpid());
    apr_dir_make(dir, APR_FPROT_OS_DEFAULT, pool);
    certauthz_map_t *m;
    apr_array_header_t *errs;
    certauthz_error_t *e;
    apr_status_t rv;

    const char *missing = apr_pstrcat(pool, dir, "/missing.map", NULL);
    errs = NULL;
    rv = certauthz_map_load(&m, missing, &errs, pool);
    ok(rv != APR_SUCCESS && !m && errs && errs->nelts == 1,
       "load: a missing file fails with one error");
    if (errs && errs->nelts) {
        e = &APR_ARRAY_IDX(errs, 0, certauthz_error_t);
        ok(e->file && !strcmp(e->file, missing) && e->line == 0 && e->reason
               && strstr(e->reason, "No such file"),
           "  ... FILE: strerror (%s: %s)", e->file, e->reason);
    }

    errs = NULL;
    rv = certauthz_map_load(&m, dir, &errs, pool);
    ok(rv != APR_SUCCESS && !m && errs && errs->nelts == 1,
       "load: a directory fails with one error");
    if (errs && errs->nelts) {
        e = &APR_ARRAY_IDX(errs, 0, certauthz_error_t);
        is_str(e->reason, "is a directory, not a map file", "  ... reason");
        is_str(e->file, dir, "  ... file");
    }

    const char *empty = write_file(dir, "empty.map", "");
    rv = certauthz_map_load(&m, empty, &errs, pool);
    ok(rv == APR_SUCCESS && m, "load: an empty file is a valid map");
    if (m) {
        certauthz_map_stats_t st;
        certauthz_map_stats(m, &st);
        is_int(st.rules + st.deny, 0, "  ... with zero rules");
        is_str(certauthz_map_name(m), empty, "  ... named by its path");
    }

    const char *good =
        write_file(dir, "good.map", "# map\r\ncn:alice alice staff\r\n");
    rv = certauthz_map_load(&m, good, &errs, pool);
    ok(rv == APR_SUCCESS && m, "load: a good file");
    if (m) {
        certauthz_identity_t id;
        certauthz_map_resolve(&id, m, facts_cn("alice"), pool);
        ok(id.outcome == CERTAUTHZ_MAPPED
               && !strcmp(certauthz_rule_file(m, id.rule), good)
               && certauthz_rule_line(id.rule) == 2,
           "  ... its rules know FILE:LINE");
    }

    /* the content hash: what sha256sum prints, the same by load (in
     * 64 KiB pieces) and by parse (at once) */
    const char *one = write_file(dir, "one.map", "cn:a u\n");
    rv = certauthz_map_load(&m, one, &errs, pool);
    ok(rv == APR_SUCCESS && m, "load: a one-line map");
    if (m)
        is_str(
            certauthz_map_sha256(m),
            "4f78189473219c3a07e4ae0517a80455c270c404cba7f9fc8d5dcb7fc235db36",
            "  ... its content hash is sha256sum's");
    {
        apr_size_t n = 300000, len = 0;
        char *text = apr_palloc(pool, n + 64);
        certauthz_map_t *pm = NULL;
        for (unsigned i = 0; len < n; i++)
            len += (apr_size_t)sprintf(text + len, "cn:user-%u u%u\n", i, i);
        const char *big = apr_pstrcat(pool, dir, "/big.map", NULL);
        FILE *fp = fopen(big, "wb");
        ok(fp && fwrite(text, 1, len, fp) == len && !fclose(fp),
           "write a map of %lu bytes", (unsigned long)len);
        rv = certauthz_map_load(&m, big, &errs, pool);
        ok(rv == APR_SUCCESS && m, "load: a map read in several pieces");
        ok(certauthz_map_parse(&pm, "big", text, len, &errs, pool)
               == APR_SUCCESS,
           "parse: the same text");
        if (m && pm)
            ok(strlen(certauthz_map_sha256(m)) == 64
                   && !strcmp(certauthz_map_sha256(m),
                              certauthz_map_sha256(pm)),
               "  ... the hash of the pieces is the hash of the whole (%s)",
               certauthz_map_sha256(m));
        certauthz_map_t *pm2 = NULL;
        text[5] ^= 1;
        certauthz_map_parse(&pm2, "big", text, len, &errs, pool);
        if (pm && pm2)
            ok(strcmp(certauthz_map_sha256(pm), certauthz_map_sha256(pm2)),
               "  ... one byte more or less changes it");
        unlink(big);
    }

    const char *bad = write_file(dir, "bad.map", "cn:a u\n\nfoo:x u\n");
    rv = certauthz_map_load(&m, bad, &errs, pool);
    ok(rv == CERTAUTHZ_EBADINPUT && !m && errs && errs->nelts == 1,
       "load: a bad file");
    if (errs && errs->nelts) {
        e = &APR_ARRAY_IDX(errs, 0, certauthz_error_t);
        ok(!strcmp(e->file, bad) && e->line == 3,
           "  ... error at FILE:3 (%s:%u)", e->file, e->line);
    }

    apr_file_remove(empty, pool);
    apr_file_remove(good, pool);
    apr_file_remove(bad, pool);
    apr_dir_remove(dir, pool);
}

static void test_compare(void)
{
    const char *g1[] = {"staff", "admins"}, *g2[] = {"staff"},
               *g3[] = {"admins", "staff"};
    certauthz_identity_t a = {CERTAUTHZ_MAPPED, NULL, "bob", 2, g1};
    certauthz_identity_t b = a, u = {CERTAUTHZ_UNMAPPED, NULL, NULL, 0, NULL},
                         d = {CERTAUTHZ_DENIED, NULL, NULL, 0, NULL};

    is_int(certauthz_identity_compare(&a, &b), CERTAUTHZ_SAME, "same");
    b.user = "robert";
    is_int(certauthz_identity_compare(&a, &b), CERTAUTHZ_DIFF_USER, "user");
    b.user = "bob";
    b.ngroups = 1;
    b.groups = g2;
    is_int(certauthz_identity_compare(&a, &b), CERTAUTHZ_DIFF_GROUPS,
           "a group fewer");
    b.ngroups = 2;
    b.groups = g3;
    is_int(certauthz_identity_compare(&a, &b), CERTAUTHZ_DIFF_GROUPS,
           "groups in another order");
    is_int(certauthz_identity_compare(&a, &u), CERTAUTHZ_DIFF_OUTCOME,
           "mapped / unmapped");
    is_int(certauthz_identity_compare(&u, &d), CERTAUTHZ_DIFF_OUTCOME,
           "unmapped / denied");
    u.rule = (const certauthz_rule_t *)&a; /* any rule: not compared */
    is_int(certauthz_identity_compare(&u, &(certauthz_identity_t){0}),
           CERTAUTHZ_SAME, "two unmapped, whatever their rules");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_grammar();
    test_errors();
    test_quoting();
    test_stats();
    test_resolution();
    test_scale();
    test_each_match();
    test_load();
    test_compare();

    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
