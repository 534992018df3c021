/*
 * certauthz_map.c -- the map file: parser (SPEC section 2) into an immutable
 * map with a hash index of exact selectors, and resolution of certificate
 * facts against it (first match in file order, deny precedence, issuer
 * sections).
 *
 * Memory: loading costs little more than what the map keeps, 56 bytes a
 * rule, its strings and its share of the index (maps of a million rules are
 * loaded by big sites).  The parser streams: a file is read in chunks and
 * never held whole; rules go to blocks that grow with the map (no array
 * sized by a count of lines, no copy when it grows); a selector is compiled
 * in a pool cleared after every line and only what matching needs is kept
 * (the value; for dn: a compact copy of the DN); what many rules share (a
 * groups field, the way back to the map) is kept once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/evp.h>

#include "certauthz_map.h"
#include "certauthz_util.h"

/* The groups field of allow rules, kept once for all the rules of a map
 * that have the same text, and the way from a rule back to its map.  Deny
 * rules and rules without groups share one with no names. */
typedef struct {
    const certauthz_map_t *map;
    const char *const *names; /* n names and a NULL; NULL when n == 0 */
    unsigned n;
} groups_t;

/* 56 bytes on LP64: a map of a million rules holds a million of these. */
struct certauthz_rule_t {
    certauthz_selector_t sel;
    const char *user;       /* may hold $N when refs */
    const groups_t *groups; /* names may hold $N when refs */
    unsigned line : 30;     /* at most CERTAUTHZ_MAX_LINES */
    unsigned deny : 1;
    unsigned refs : 1;    /* user or groups use $N */
    unsigned short scope; /* 0: every issuer; n: map->issuer_dn[n] */
};

/* Rules live in blocks of RULE_BLOCK (14 KiB), allocated as the map grows. */
#define RULE_SHIFT 8
#define RULE_BLOCK (1u << RULE_SHIFT)

struct certauthz_map_t {
    const char *name;
    /* rule i: block[i / RULE_BLOCK][i % RULE_BLOCK] */
    certauthz_rule_t **block;
    unsigned nrules;
    /* exact selectors: open addressing (see SLOT_BITS); the table is
     * malloc()ed, to be freed when it grows, and freed with the map's pool */
    uint32_t *slots;
    uint32_t mask;
    unsigned exact_types; /* bit t set: some exact rule of type t exists */
    /* glob and regex rules, as rule indices in file order */
    uint32_t *allow_pat, *deny_pat;
    unsigned nallow_pat, ndeny_pat;
    /* issuer sections: canonical DN key -> scope number (1..n) */
    apr_hash_t *issuers;
    const certauthz_dn_t **issuer_dn; /* by scope number */
    certauthz_map_stats_t stats;
    char sha256[65]; /* of the text parsed, lower-case hex */
};

static certauthz_rule_t *rule_at(const certauthz_map_t *m, uint32_t i)
{
    return &m->block[i >> RULE_SHIFT][i & (RULE_BLOCK - 1)];
}

/* ---- index of exact selectors ---------------------------------------- */

/* A slot holds a rule index + 1 in its low SLOT_BITS bits (0: empty) and the
 * top bits of its key's hash above them, so that most probes that meet
 * another key are settled without reading that key's rule (a cache miss
 * each in a big map).  The table is kept at most half full, so it has at
 * most 2 * CERTAUTHZ_MAX_LINES slots: the bits that choose a slot are all
 * below SLOT_BITS, and the tag bits tell keys of one slot apart. */
#define SLOT_BITS 25
#define SLOT_INDEX(s) ((s) & ((1u << SLOT_BITS) - 1))
#define SLOT_TAG(h) ((h) & ~((1u << SLOT_BITS) - 1))
#if CERTAUTHZ_MAX_LINES > (1 << (SLOT_BITS - 1))
#error "CERTAUTHZ_MAX_LINES does not fit the index slots"
#endif

static uint32_t key_hash(unsigned scope, unsigned type, unsigned deny,
                         const char *key, apr_size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (scope * 131u + type * 2u + deny);
    for (apr_size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t rule_hash(const certauthz_rule_t *r)
{
    return key_hash(r->scope, r->sel.type, r->deny, r->sel.value, r->sel.len);
}

/* Index of the rule with this key, or UINT32_MAX. */
static uint32_t index_find(const certauthz_map_t *m, unsigned scope,
                           unsigned type, unsigned deny, const char *key,
                           apr_size_t len)
{
    uint32_t h = key_hash(scope, type, deny, key, len);
    uint32_t i = h & m->mask, s;

    while ((s = m->slots[i])) {
        if (SLOT_TAG(s) == SLOT_TAG(h)) {
            const certauthz_rule_t *r = rule_at(m, SLOT_INDEX(s) - 1);
            if (r->scope == scope && r->sel.type == type && r->deny == deny
                && r->sel.len == len && !memcmp(r->sel.value, key, len))
                return SLOT_INDEX(s) - 1;
        }
        i = (i + 1) & m->mask;
    }
    return UINT32_MAX;
}

static void slot_put(uint32_t *slots, uint32_t mask, uint32_t h, uint32_t idx)
{
    uint32_t i = h & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = SLOT_TAG(h) | (idx + 1);
}

/* A table of nslots (a power of two) holding the exact rules so far; NULL
 * when out of memory. */
static uint32_t *index_build(const certauthz_map_t *m, apr_size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(uint32_t));

    if (slots)
        for (uint32_t i = 0; i < m->nrules; i++) {
            const certauthz_rule_t *r = rule_at(m, i);
            if (r->sel.kind == CERTAUTHZ_SEL_EXACT)
                slot_put(slots, (uint32_t)(nslots - 1), rule_hash(r), i);
        }
    return slots;
}

static apr_status_t index_cleanup(void *data)
{
    certauthz_map_t *m = data;
    free(m->slots);
    m->slots = NULL;
    return APR_SUCCESS;
}

/* ---- parser ------------------------------------------------------------ */

typedef struct {
    const char *s;
    apr_size_t len;
} field_t;

#define MAX_FIELDS 8

typedef struct {
    certauthz_map_t *m;
    apr_pool_t *p;       /* the map's pool */
    apr_pool_t *scratch; /* parse-time only */
    apr_pool_t *line_p;  /* what one line needs while it is parsed */
    apr_array_header_t *errs;
    apr_hash_t *groups_seen;  /* groups field text -> groups_t */
    const groups_t *nogroups; /* of deny rules and rules without groups */
    apr_array_header_t *issuer_dns;
    apr_array_header_t *allow_pat, *deny_pat;
    unsigned nblocks; /* room in m->block */
    unsigned nexact;  /* exact rules in the index */
    unsigned scope;
    unsigned line; /* lines seen, the current one included */
    int started;   /* past a byte order mark, if any */
    int skipping;  /* in a line already reported too long */
    int stop;      /* too many lines: the rest is not read */
    char *buf;     /* unquoted fields of the current line */
} parse_t;

static void push_error(apr_array_header_t *errs, const char *file,
                       unsigned line, const char *reason)
{
    certauthz_error_t *e;
    if (errs->nelts >= CERTAUTHZ_MAX_ERRORS)
        return;
    e = apr_array_push(errs);
    e->file = file;
    e->line = line;
    e->reason = apr_pstrdup(errs->pool, reason);
}

static void add_error(parse_t *ps, const char *reason)
{
    push_error(ps->errs, ps->m->name, ps->line, reason);
}
/* Copy the quoted string that starts at line[*i] (a '"') to *o, undoing
 * \" and \\ (any other backslash is kept).  Leaves *i after the closing
 * quote; 0 when the line ends first. */
static int unquote(const char *line, apr_size_t len, apr_size_t *i, char **o)
{
    apr_size_t k;

    for (k = *i + 1; k < len && line[k] != '"'; k++) {
        if (line[k] == '\\' && k + 1 < len
            && (line[k + 1] == '"' || line[k + 1] == '\\'))
            k++;
        *(*o)++ = line[k];
    }
    if (k >= len)
        return 0;
    *i = k + 1;
    return 1;
}

/* Split a line into fields.  Quotes may start anywhere in a field and
 * take \" and \\ escapes (any other backslash is kept as is); an unquoted
 * '#' starts a comment.  Returns the field count, or -1 with an error. */
static int split_fields(parse_t *ps, const char *line, apr_size_t len,
                        field_t *f)
{
    apr_size_t i = 0;
    char *o = ps->buf;
    int n = 0;

    for (;;) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i >= len || line[i] == '#')
            return n;
        if (n == MAX_FIELDS) {
            add_error(ps, "too many fields");
            return -1;
        }
        f[n].s = o;
        while (i < len && line[i] != ' ' && line[i] != '\t') {
            if (line[i] == '#')
                break;
            if (line[i] != '"') {
                *o++ = line[i++];
                continue;
            }
            if (!unquote(line, len, &i, &o)) {
                add_error(ps, "unterminated quote");
                return -1;
            }
        }
        f[n].len = (apr_size_t)(o - f[n].s);
        *o++ = '\0';
        n++;
    }
}

static int has_control(const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return 1;
    return 0;
}

/* Check the $N references of a user or group template. */
static int check_refs(parse_t *ps, const certauthz_rule_t *r, const char *s,
                      apr_size_t len, const char *what)
{
    int found = 0;
    for (apr_size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '$' || s[i + 1] < '0' || s[i + 1] > '9')
            continue;
        unsigned n = (unsigned)(s[i + 1] - '0');
        if (r->sel.kind != CERTAUTHZ_SEL_REGEX) {
            add_error(ps, apr_psprintf(ps->scratch,
                                       "$%u in %s but the "
                                       "selector is not a regex",
                                       n, what));
            return -1;
        }
        if (n > r->sel.ngroups) {
            add_error(ps, apr_psprintf(ps->scratch,
                                       "$%u in %s but the regex "
                                       "has %u capture group%s",
                                       n, what, r->sel.ngroups,
                                       r->sel.ngroups == 1 ? "" : "s"));
            return -1;
        }
        found = 1;
        i++;
    }
    return found;
}

/* Split "a,b,c" (spaces around names ignored) into a groups_t, kept once
 * for every rule with the same field text. */
static int parse_groups(parse_t *ps, certauthz_rule_t *r, const field_t *f)
{
    const groups_t *seen = apr_hash_get(ps->groups_seen, f->s, f->len);
    apr_array_header_t *arr;
    groups_t *g;
    const char **names;
    apr_size_t i = 0;
    int refs = 0;

    if (seen) {
        r->groups = seen;
        for (unsigned k = 0; k < seen->n; k++) {
            int c = check_refs(ps, r, seen->names[k], strlen(seen->names[k]),
                               "groups");
            if (c < 0)
                return -1;
            refs |= c;
        }
        return refs;
    }
    arr = apr_array_make(ps->line_p, 4, sizeof(field_t));
    while (i <= f->len) {
        apr_size_t start = i, end;
        field_t *name;
        while (i < f->len && f->s[i] != ',')
            i++;
        end = i++;
        while (start < end && (f->s[start] == ' ' || f->s[start] == '\t'))
            start++;
        while (end > start && (f->s[end - 1] == ' ' || f->s[end - 1] == '\t'))
            end--;
        if (start == end) {
            add_error(ps, "empty group name");
            return -1;
        }
        if (has_control(f->s + start, end - start)) {
            add_error(ps, "control character in group name");
            return -1;
        }
        int c = check_refs(ps, r, f->s + start, end - start, "groups");
        if (c < 0)
            return -1;
        refs |= c;
        name = apr_array_push(arr);
        name->s = f->s + start;
        name->len = end - start;
    }
    if (arr->nelts > 65535) {
        add_error(ps, "too many groups");
        return -1;
    }
    g = apr_palloc(ps->p,
                   sizeof(*g) + sizeof(char *) * ((apr_size_t)arr->nelts + 1));
    names = (const char **)(g + 1);
    for (int k = 0; k < arr->nelts; k++) {
        const field_t *name = &APR_ARRAY_IDX(arr, k, field_t);
        names[k] = apr_pstrmemdup(ps->p, name->s, name->len);
    }
    names[arr->nelts] = NULL;
    g->map = ps->m;
    g->names = names;
    g->n = (unsigned)arr->nelts;
    apr_hash_set(ps->groups_seen, apr_pstrmemdup(ps->scratch, f->s, f->len),
                 f->len, g);
    r->groups = g;
    return refs;
}

static void parse_section(parse_t *ps, const char *line, apr_size_t len)
{
    apr_size_t i = 1;
    const char *bad = "bad section header: expected [issuer \"DN\"] or "
                      "[any-issuer]";

#define SKIP_WS()                                                              \
    while (i < len && (line[i] == ' ' || line[i] == '\t'))                     \
    i++
    SKIP_WS();
    if (len - i >= 10 && !memcmp(line + i, "any-issuer", 10)) {
        i += 10;
        SKIP_WS();
        if (i >= len || line[i] != ']')
            goto bad;
        ps->scope = 0;
    }
    else if (len - i >= 6 && !memcmp(line + i, "issuer", 6)) {
        char *dntext = ps->buf, *o = ps->buf;
        certauthz_dn_t *dn;
        const char *why;
        unsigned *scope;
        apr_size_t klen;
        const char *key;

        i += 6;
        SKIP_WS();
        if (i >= len || line[i] != '"')
            goto bad;
        if (!unquote(line, len, &i, &o)) {
            add_error(ps, "unterminated quote in section header");
            return;
        }
        SKIP_WS();
        if (i >= len || line[i] != ']')
            goto bad;
        if (certauthz_dn_parse(&dn, dntext, (apr_size_t)(o - dntext), &why,
                               ps->line_p)
            != APR_SUCCESS) {
            add_error(ps, apr_psprintf(ps->scratch,
                                       "bad issuer DN in section "
                                       "header: %s",
                                       why));
            return;
        }
        key = certauthz_dn_issuer_key(dn, &klen);
        scope = apr_hash_get(ps->m->issuers, key, klen);
        if (!scope) {
            const certauthz_dn_t *kept;
            if (ps->issuer_dns->nelts >= 65535) {
                add_error(ps, "too many issuer sections");
                return;
            }
            kept = certauthz_dn_copy(dn, ps->p);
            key = certauthz_dn_issuer_key(kept, &klen);
            *(const certauthz_dn_t **)apr_array_push(ps->issuer_dns) = kept;
            scope = apr_palloc(ps->p, sizeof(*scope));
            *scope = (unsigned)ps->issuer_dns->nelts - 1;
            apr_hash_set(ps->m->issuers, key, klen, scope);
        }
        ps->scope = *scope;
    }
    else {
        goto bad;
    }
    i++;
    SKIP_WS();
    if (i < len && line[i] != '#')
        goto bad;
    return;
bad:
    add_error(ps, bad);
#undef SKIP_WS
}

/* Compile the selector of a rule.  A regex is compiled in the map's pool,
 * which its code lives and dies with; any other selector in the line pool,
 * and keep_selector() copies what the map keeps of it. */
static int parse_selector(parse_t *ps, certauthz_selector_t *sel,
                          const char *text, apr_size_t len)
{
    apr_pool_t *p = ps->line_p;
    const char *why;
    apr_size_t n = 0;

    /* "type~regex", as certauthz_selector_parse() reads it */
    while (n < len
           && ((text[n] >= 'a' && text[n] <= 'z')
               || (text[n] >= '0' && text[n] <= '9')))
        n++;
    if (n < len && text[n] == '~')
        p = ps->p;
    if (certauthz_selector_parse(sel, text, len, &why, p) != APR_SUCCESS) {
        add_error(ps, why);
        return 0;
    }
    if (sel->kind == CERTAUTHZ_SEL_REGEX && p != ps->p
        && certauthz_selector_parse(sel, text, len, &why, ps->p)
               != APR_SUCCESS) { /* not reached, unless the syntax changes */
        add_error(ps, why);
        return 0;
    }
    return 1;
}

/* Move what the map keeps of a selector out of the line pool. */
static void keep_selector(parse_t *ps, certauthz_selector_t *sel)
{
    if (sel->kind == CERTAUTHZ_SEL_REGEX)
        return;
    if (sel->type == CERTAUTHZ_DN && sel->kind == CERTAUTHZ_SEL_EXACT) {
        /* the value of an exact dn selector is the key of its DN */
        sel->u.dn = certauthz_dn_copy(sel->u.dn, ps->p);
        sel->value = certauthz_dn_key(sel->u.dn, &sel->len);
    }
    else {
        sel->value = apr_pstrmemdup(ps->p, sel->value, sel->len);
    }
}

/* Append a rule to the map; its index. */
static uint32_t rule_add(parse_t *ps, const certauthz_rule_t *r)
{
    certauthz_map_t *m = ps->m;
    unsigned b = m->nrules >> RULE_SHIFT;

    if (!(m->nrules & (RULE_BLOCK - 1))) {
        if (b == ps->nblocks) {
            unsigned n = b ? 2 * b : 4;
            certauthz_rule_t **t = apr_palloc(ps->p, n * sizeof(*t));
            if (b)
                memcpy(t, m->block, b * sizeof(*t));
            m->block = t;
            ps->nblocks = n;
        }
        m->block[b] = apr_palloc(ps->p, RULE_BLOCK * sizeof(**m->block));
    }
    *rule_at(m, m->nrules) = *r;
    return m->nrules++;
}

/* Room in the index for one more exact rule: the table stays at most half
 * full.  0 (with an error) when out of memory. */
static int index_reserve(parse_t *ps)
{
    certauthz_map_t *m = ps->m;
    apr_size_t nslots = (apr_size_t)m->mask + 1;
    uint32_t *slots;

    if (2 * ((apr_size_t)ps->nexact + 1) <= nslots)
        return 1;
    if (!(slots = index_build(m, 2 * nslots))) {
        add_error(ps, "out of memory");
        return 0;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = (uint32_t)(2 * nslots - 1);
    return 1;
}

static void parse_rule(parse_t *ps, const field_t *f, int n)
{
    certauthz_map_t *m = ps->m;
    certauthz_rule_t r;
    int deny = f[0].len == 4 && !memcmp(f[0].s, "deny", 4);
    int refs = 0;
    uint32_t idx;

    memset(&r, 0, sizeof(r));
    r.groups = ps->nogroups;
    if (deny) {
        if (n < 2) {
            add_error(ps, "deny needs a selector");
            return;
        }
        if (n > 2) {
            add_error(ps, "deny takes only a selector (no user or groups)");
            return;
        }
        f++;
        n--;
    }
    if (!parse_selector(ps, &r.sel, f[0].s, f[0].len))
        return;
    r.deny = deny;
    r.scope = (unsigned short)ps->scope;
    r.line = ps->line;
    if (!deny) {
        if (n < 2) {
            add_error(ps, "missing user");
            return;
        }
        if (n > 3) {
            add_error(ps, "unexpected field after groups (write groups "
                          "as one comma-separated field)");
            return;
        }
        if (f[1].len == 0) {
            add_error(ps, "empty user");
            return;
        }
        if (has_control(f[1].s, f[1].len)) {
            add_error(ps, "control character in user");
            return;
        }
        if ((refs = check_refs(ps, &r, f[1].s, f[1].len, "user")) < 0)
            return;
        if (n == 3) {
            int g = parse_groups(ps, &r, &f[2]);
            if (g < 0)
                return;
            refs |= g;
        }
        r.refs = refs != 0;
        r.user = apr_pstrmemdup(ps->p, f[1].s, f[1].len);
    }
    if (r.sel.kind == CERTAUTHZ_SEL_EXACT) {
        uint32_t prev =
            index_find(m, r.scope, r.sel.type, r.deny, r.sel.value, r.sel.len);
        if (prev != UINT32_MAX) {
            add_error(
                ps, apr_psprintf(ps->scratch,
                                 "duplicate selector %s "
                                 "(first at line %u)",
                                 certauthz_log_escape(certauthz_selector_text(
                                                          &r.sel, ps->scratch),
                                                      ps->scratch),
                                 (unsigned)rule_at(m, prev)->line));
            return;
        }
        if (!index_reserve(ps))
            return;
        keep_selector(ps, &r.sel);
        idx = rule_add(ps, &r);
        slot_put(m->slots, m->mask, rule_hash(&r), idx);
        ps->nexact++;
        m->exact_types |= 1u << r.sel.type;
        if (deny)
            m->stats.deny++;
        else {
            m->stats.exact[r.sel.type]++;
            m->stats.exact_all++;
        }
    }
    else {
        keep_selector(ps, &r.sel);
        idx = rule_add(ps, &r);
        *(uint32_t *)apr_array_push(deny ? ps->deny_pat : ps->allow_pat) = idx;
        if (deny)
            m->stats.deny++;
        else if (r.sel.kind == CERTAUTHZ_SEL_GLOB)
            m->stats.globs++;
        else
            m->stats.regexes++;
    }
    if (!deny)
        m->stats.rules++;
}

static void line_too_long(parse_t *ps)
{
    add_error(ps, apr_psprintf(ps->scratch, "line longer than %d bytes",
                               CERTAUTHZ_MAX_LINE));
}

static void parse_line(parse_t *ps, const char *line, apr_size_t len)
{
    field_t f[MAX_FIELDS];
    apr_size_t i = 0;
    int n;

    if (len > CERTAUTHZ_MAX_LINE) {
        line_too_long(ps);
        return;
    }
    if (memchr(line, '\0', len)) {
        add_error(ps, "NUL byte in line");
        return;
    }
    if (!certauthz_utf8_valid(line, len)) {
        add_error(ps, "line is not valid UTF-8");
        return;
    }
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i < len && line[i] == '[')
        parse_section(ps, line + i, len - i);
    else if ((n = split_fields(ps, line, len, f)) > 0)
        parse_rule(ps, f, n);
    apr_pool_clear(ps->line_p);
}

/* More lines than a map may have: that is the one error reported, as it
 * would be for a file not read at all. */
static void too_many_lines(parse_t *ps)
{
    ps->errs->nelts = 0;
    push_error(
        ps->errs, ps->m->name, 0,
        apr_psprintf(ps->scratch, "more than %d lines", CERTAUTHZ_MAX_LINES));
    ps->stop = 1;
}

/* Parse the lines of text[0..len), the text that follows what was parsed
 * before; at eof the last line needs no line end.  Returns how many bytes
 * were used: the rest, the start of a line, is to be passed again with the
 * text that follows it.  That rest is never longer than a line may be (with
 * its '\r'): a longer line is reported at once and skipped. */
static apr_size_t parse_text(parse_t *ps, const char *text, apr_size_t len,
                             int eof)
{
    const char *pos = text, *end = text + len;

    if (!ps->started) {
        /* a UTF-8 byte order mark is not part of the first line */
        if (len < 3 && !eof && !memcmp(text, "\xEF\xBB\xBF", len))
            return 0;
        ps->started = 1;
        if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
            pos += 3;
    }
    while (pos < end && !ps->stop) {
        const char *nl = memchr(pos, '\n', (apr_size_t)(end - pos));
        apr_size_t l;

        if (!nl && !eof) {
            if (!ps->skipping
                && (apr_size_t)(end - pos) <= CERTAUTHZ_MAX_LINE + 1)
                break; /* the line may still be short enough */
            if (!ps->skipping) {
                ps->line++;
                line_too_long(ps);
                ps->skipping = 1;
            }
            return len;
        }
        l = (apr_size_t)((nl ? nl : end) - pos);
        if (ps->skipping) {
            ps->skipping = 0; /* the rest of the long line, already counted */
        }
        else {
            ps->line++;
            if (l && pos[l - 1] == '\r')
                l--;
            if (ps->errs->nelts < CERTAUTHZ_MAX_ERRORS)
                parse_line(ps, pos, l);
        }
        if (!nl)
            return len;
        pos = nl + 1;
        if (ps->line >= CERTAUTHZ_MAX_LINES)
            too_many_lines(ps);
    }
    return (apr_size_t)(pos - text);
}

/* Start a parse into p; errors go to errs. */
static apr_status_t parse_begin(parse_t *ps, const char *name,
                                apr_array_header_t *errs, apr_pool_t *p)
{
    certauthz_map_t *m;
    groups_t *none;
    apr_status_t rv;

    memset(ps, 0, sizeof(*ps));
    if ((rv = apr_pool_create(&ps->scratch, p)) != APR_SUCCESS
        || (rv = apr_pool_create(&ps->line_p, ps->scratch)) != APR_SUCCESS) {
        push_error(errs, name, 0, "out of memory");
        return rv;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->name = apr_pstrdup(p, name);
    m->mask = 15;
    if (!(m->slots = calloc(m->mask + 1, sizeof(uint32_t)))) {
        push_error(errs, name, 0, "out of memory");
        apr_pool_destroy(ps->scratch);
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, m, index_cleanup, apr_pool_cleanup_null);
    m->issuers = apr_hash_make(p);
    none = apr_pcalloc(p, sizeof(*none));
    none->map = m;

    ps->m = m;
    ps->p = p;
    ps->errs = errs;
    ps->groups_seen = apr_hash_make(ps->scratch);
    ps->nogroups = none;
    ps->issuer_dns = apr_array_make(p, 4, sizeof(const certauthz_dn_t *));
    *(const certauthz_dn_t **)apr_array_push(ps->issuer_dns) = NULL;
    ps->allow_pat = apr_array_make(ps->scratch, 16, sizeof(uint32_t));
    ps->deny_pat = apr_array_make(ps->scratch, 16, sizeof(uint32_t));
    ps->buf = apr_palloc(ps->scratch, CERTAUTHZ_MAX_LINE + 1);
    return APR_SUCCESS;
}

/* The content hash of a map: SHA-256 of its text, the form sha256sum
 * prints.  A digest that fails leaves it empty. */
static void set_sha256(certauthz_map_t *m, EVP_MD_CTX *md)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    m->sha256[0] = '\0';
    if (!EVP_DigestFinal_ex(md, d, &n) || n != 32)
        return;
    for (unsigned i = 0; i < n; i++) {
        m->sha256[2 * i] = hex[d[i] >> 4];
        m->sha256[2 * i + 1] = hex[d[i] & 15];
    }
    m->sha256[64] = '\0';
}

/* The rule indices collected in a scratch array, copied to the map. */
static uint32_t *index_copy(const apr_array_header_t *a, apr_pool_t *p)
{
    uint32_t *d = apr_palloc(p, sizeof(uint32_t) * ((apr_size_t)a->nelts + 1));
    memcpy(d, a->elts, sizeof(uint32_t) * (apr_size_t)a->nelts);
    return d;
}

/* Finish a parse: the map, or nothing when any error was found (the
 * index is freed at once, the rest stays in the pool). */
static apr_status_t parse_end(parse_t *ps, certauthz_map_t **pmap)
{
    certauthz_map_t *m = ps->m;

    if (ps->errs->nelts) {
        apr_pool_cleanup_run(ps->p, m, index_cleanup);
        apr_pool_destroy(ps->scratch);
        return CERTAUTHZ_EBADINPUT;
    }
    m->allow_pat = index_copy(ps->allow_pat, ps->p);
    m->nallow_pat = (unsigned)ps->allow_pat->nelts;
    m->deny_pat = index_copy(ps->deny_pat, ps->p);
    m->ndeny_pat = (unsigned)ps->deny_pat->nelts;
    m->issuer_dn = (const certauthz_dn_t **)ps->issuer_dns->elts;
    m->stats.sections = (unsigned)ps->issuer_dns->nelts - 1;
    apr_pool_destroy(ps->scratch);
    *pmap = m;
    return APR_SUCCESS;
}

apr_status_t certauthz_map_parse(certauthz_map_t **pmap, const char *name,
                                 const char *buf, apr_size_t len,
                                 apr_array_header_t **errs, apr_pool_t *p)
{
    parse_t ps;
    apr_status_t rv;
    EVP_MD_CTX *md;

    *pmap = NULL;
    *errs = apr_array_make(p, 1, sizeof(certauthz_error_t));
    if ((rv = parse_begin(&ps, name, *errs, p)) != APR_SUCCESS)
        return rv;
    parse_text(&ps, buf, len, 1);
    if ((rv = parse_end(&ps, pmap)) == APR_SUCCESS && (md = EVP_MD_CTX_new())) {
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL)
            && EVP_DigestUpdate(md, buf, len))
            set_sha256(*pmap, md);
        EVP_MD_CTX_free(md);
    }
    return rv;
}

/* Bytes read from a map file at a time.  The buffer also holds the start
 * of the line the previous read cut, at most a line's worth. */
#define READ_CHUNK 65536

static apr_status_t read_map(parse_t *ps, apr_file_t *fd, EVP_MD_CTX *md,
                             apr_pool_t *tmp)
{
    apr_size_t size = READ_CHUNK + CERTAUTHZ_MAX_LINE + 2, have = 0;
    char *buf = apr_palloc(tmp, size);
    int eof = 0;

    while (!eof && !ps->stop) {
        apr_size_t got = 0, used;
        apr_status_t rv = apr_file_read_full(fd, buf + have, size - have, &got);
        if (rv == APR_EOF)
            eof = 1;
        else if (rv != APR_SUCCESS)
            return rv;
        if (got && !EVP_DigestUpdate(md, buf + have, got))
            return APR_ENOMEM;
        have += got;
        used = parse_text(ps, buf, have, eof);
        have -= used;
        memmove(buf, buf + used, have);
    }
    return APR_SUCCESS;
}

/* An error of the file itself (not of its text): the one error reported. */
static apr_status_t file_error(apr_array_header_t *errs, const char *path,
                               apr_status_t rv, apr_pool_t *p)
{
    char msg[256];

    errs->nelts = 0;
    push_error(errs, apr_pstrdup(p, path), 0,
               apr_strerror(rv, msg, sizeof(msg)));
    return rv;
}

apr_status_t certauthz_map_load(certauthz_map_t **pmap, const char *path,
                                apr_array_header_t **errs, apr_pool_t *p)
{
    apr_pool_t *tmp;
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    parse_t ps;
    EVP_MD_CTX *md = NULL;

    *pmap = NULL;
    *errs = apr_array_make(p, 1, sizeof(certauthz_error_t));
    if ((rv = apr_pool_create(&tmp, p)) != APR_SUCCESS) {
        push_error(*errs, path, 0, "out of memory");
        return rv;
    }
    rv = apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, tmp);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_TYPE | APR_FINFO_SIZE, fd);
    if (rv != APR_SUCCESS) {
        file_error(*errs, path, rv, p);
    }
    else if (fi.filetype != APR_REG) {
        push_error(*errs, apr_pstrdup(p, path), 0,
                   fi.filetype == APR_DIR ? "is a directory, not a map file"
                                          : "is not a regular file");
        rv = CERTAUTHZ_EBADINPUT;
    }
    else if (!(md = EVP_MD_CTX_new())
             || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        push_error(*errs, apr_pstrdup(p, path), 0, "out of memory");
        rv = APR_ENOMEM;
    }
    else if ((rv = parse_begin(&ps, path, *errs, p)) == APR_SUCCESS) {
        if ((rv = read_map(&ps, fd, md, tmp)) != APR_SUCCESS)
            file_error(*errs, path, rv, p); /* and what was parsed is moot */
        if (parse_end(&ps, pmap) != APR_SUCCESS && rv == APR_SUCCESS)
            rv = CERTAUTHZ_EBADINPUT;
        if (rv == APR_SUCCESS)
            set_sha256(*pmap, md);
    }
    EVP_MD_CTX_free(md);
    apr_pool_destroy(tmp);
    return rv;
}

/* ---- resolution ------------------------------------------------------- */

void certauthz_map_stats(const certauthz_map_t *m, certauthz_map_stats_t *st)
{
    *st = m->stats;
}

const char *certauthz_map_name(const certauthz_map_t *m)
{
    return m->name;
}

const char *certauthz_map_sha256(const certauthz_map_t *m)
{
    return m->sha256;
}

const char *certauthz_map_summary(const certauthz_map_stats_t *st,
                                  apr_pool_t *p)
{
    return apr_psprintf(p,
                        "%u rules (%u exact, %u glob, %u regex), %u deny, "
                        "%u issuer sections",
                        st->rules, st->exact_all, st->globs, st->regexes,
                        st->deny, st->sections);
}

static unsigned issuer_scope(const certauthz_map_t *m,
                             const certauthz_facts_t *f)
{
    apr_size_t klen;
    const char *key;
    const unsigned *scope;

    if (!f->issuer || !m->stats.sections)
        return 0;
    key = certauthz_dn_issuer_key(f->issuer, &klen);
    scope = apr_hash_get(m->issuers, key, klen);
    return scope ? *scope : 0;
}

/* Smallest index of an exact rule (deny or allow) matching any fact value
 * in scope 0 or the issuer's scope; UINT32_MAX when none. */
static uint32_t exact_first(const certauthz_map_t *m,
                            const certauthz_facts_t *f, unsigned scope,
                            unsigned deny)
{
    uint32_t best = UINT32_MAX;

    for (unsigned t = 0; t < CERTAUTHZ_NTYPES; t++) {
        if (!(m->exact_types & (1u << t)))
            continue;
        for (int i = 0; i < f->of[t].n; i++) {
            const certauthz_value_t *v = &f->of[t].v[i];
            uint32_t idx = index_find(m, 0, t, deny, v->key, v->key_len);
            if (idx < best)
                best = idx;
            if (scope) {
                idx = index_find(m, scope, t, deny, v->key, v->key_len);
                if (idx < best)
                    best = idx;
            }
        }
    }
    return best;
}

/* Expand $N in a template; NULL when the result is unusable. */
static const char *substitute(const char *tpl, const certauthz_captures_t *c,
                              int is_group, apr_pool_t *p)
{
    apr_size_t n = 0, i;
    char *out, *o;

    for (i = 0; tpl[i]; i++) {
        if (tpl[i] == '$' && tpl[i + 1] >= '0' && tpl[i + 1] <= '9') {
            int k = tpl[i + 1] - '0';
            n += k < c->n && c->s[k] ? c->len[k] : 0;
            i++;
        }
        else {
            n++;
        }
    }
    o = out = apr_palloc(p, n + 1);
    for (i = 0; tpl[i]; i++) {
        if (tpl[i] == '$' && tpl[i + 1] >= '0' && tpl[i + 1] <= '9') {
            int k = tpl[i + 1] - '0';
            if (k < c->n && c->s[k]) {
                memcpy(o, c->s[k], c->len[k]);
                o += c->len[k];
            }
            i++;
        }
        else {
            *o++ = tpl[i];
        }
    }
    *o = '\0';
    if (n == 0 || has_control(out, n) || (is_group && memchr(out, ',', n)))
        return NULL;
    return out;
}

static int in_scope(const certauthz_rule_t *r, unsigned scope)
{
    return r->scope == 0 || r->scope == scope;
}

void certauthz_map_resolve(certauthz_identity_t *id, const certauthz_map_t *m,
                           const certauthz_facts_t *f, apr_pool_t *p)
{
    unsigned scope = issuer_scope(m, f);
    uint32_t best, i;
    certauthz_captures_t caps;
    const certauthz_rule_t *r;

    memset(id, 0, sizeof(*id));

    /* deny rules anywhere win; a regex that gives up counts as a match */
    best = exact_first(m, f, scope, 1);
    if (best != UINT32_MAX) {
        id->outcome = CERTAUTHZ_DENIED;
        id->rule = rule_at(m, best);
        return;
    }
    for (i = 0; i < m->ndeny_pat; i++) {
        r = rule_at(m, m->deny_pat[i]);
        if (in_scope(r, scope) && certauthz_selector_match(&r->sel, f, NULL)) {
            id->outcome = CERTAUTHZ_DENIED;
            id->rule = r;
            return;
        }
    }

    /* first allow rule in file order, exact or pattern */
    best = exact_first(m, f, scope, 0);
    caps.n = 0;
    for (i = 0; i < m->nallow_pat && m->allow_pat[i] < best; i++) {
        int hit;
        r = rule_at(m, m->allow_pat[i]);
        if (!in_scope(r, scope))
            continue;
        hit = certauthz_selector_match(&r->sel, f, &caps);
        if (hit < 0) {
            /* the regex gave up on a hostile value: no identity, rather
             * than whatever a later, broader rule would give */
            id->rule = r;
            return;
        }
        if (hit == 1) {
            best = m->allow_pat[i];
            break;
        }
    }
    if (best == UINT32_MAX)
        return;
    r = rule_at(m, best);
    id->rule = r;
    id->user = r->user;
    id->ngroups = (int)r->groups->n;
    id->groups = r->groups->names;
    if (r->refs) {
        const char **g = apr_palloc(p, sizeof(char *) * (r->groups->n + 1u));
        if (!(id->user = substitute(r->user, &caps, 0, p)))
            goto unusable;
        for (unsigned k = 0; k < r->groups->n; k++)
            if (!(g[k] = substitute(r->groups->names[k], &caps, 1, p)))
                goto unusable;
        g[r->groups->n] = NULL;
        id->groups = g;
    }
    id->outcome = CERTAUTHZ_MAPPED;
    return;
unusable:
    id->user = NULL;
    id->groups = NULL;
    id->ngroups = 0;
}

void certauthz_map_each_match(const certauthz_map_t *m,
                              const certauthz_facts_t *f, certauthz_rule_fn *fn,
                              void *baton)
{
    unsigned scope = issuer_scope(m, f);

    for (unsigned i = 0; i < m->nrules; i++) {
        const certauthz_rule_t *r = rule_at(m, i);
        int hit;
        if (!in_scope(r, scope))
            continue;
        /* as in resolve: a regex that gave up matches only for deny rules */
        hit = certauthz_selector_match(&r->sel, f, NULL);
        if ((hit == 1 || (hit < 0 && r->deny)) && fn(baton, r))
            return;
    }
}

unsigned certauthz_map_find_exact(const certauthz_map_t *m,
                                  const certauthz_dn_t *issuer, int deny,
                                  certauthz_type_e type, const char *key,
                                  apr_size_t len)
{
    unsigned scope = 0;
    uint32_t idx;

    if (issuer) {
        apr_size_t klen;
        const char *ikey = certauthz_dn_issuer_key(issuer, &klen);
        const unsigned *s = apr_hash_get(m->issuers, ikey, klen);
        if (!s)
            return m->nrules;
        scope = *s;
    }
    idx = index_find(m, scope, (unsigned)type, deny != 0, key, len);
    return idx == UINT32_MAX ? m->nrules : idx;
}

const char *certauthz_rule_file(const certauthz_rule_t *r)
{
    return r->groups->map->name;
}

unsigned certauthz_rule_line(const certauthz_rule_t *r)
{
    return r->line;
}

const char *certauthz_rule_where(const certauthz_rule_t *r, apr_pool_t *p)
{
    if (!r)
        return "-";
    return apr_psprintf(p, "%s:%u", r->groups->map->name, r->line);
}

int certauthz_rule_is_deny(const certauthz_rule_t *r)
{
    return r->deny;
}

const certauthz_selector_t *certauthz_rule_selector(const certauthz_rule_t *r)
{
    return &r->sel;
}

const certauthz_dn_t *certauthz_rule_issuer(const certauthz_rule_t *r)
{
    return r->scope ? r->groups->map->issuer_dn[r->scope] : NULL;
}

unsigned certauthz_map_nrules(const certauthz_map_t *m)
{
    return m->nrules;
}

const certauthz_rule_t *certauthz_map_rule(const certauthz_map_t *m, unsigned i)
{
    return i < m->nrules ? rule_at(m, i) : NULL;
}

const char *certauthz_rule_user(const certauthz_rule_t *r)
{
    return r->deny ? NULL : r->user;
}

int certauthz_rule_groups(const certauthz_rule_t *r, const char *const **groups)
{
    *groups = r->groups->names;
    return r->deny ? 0 : (int)r->groups->n;
}

const char *certauthz_identity_groups(const certauthz_identity_t *id,
                                      apr_pool_t *p)
{
    apr_size_t n = 0;
    char *out, *o;

    for (int i = 0; i < id->ngroups; i++)
        n += strlen(id->groups[i]) + 1;
    o = out = apr_palloc(p, n + 1);
    for (int i = 0; i < id->ngroups; i++) {
        apr_size_t l = strlen(id->groups[i]);
        if (i)
            *o++ = ',';
        memcpy(o, id->groups[i], l);
        o += l;
    }
    *o = '\0';
    return out;
}
