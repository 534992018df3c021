/*
 * certauthz_map.c -- the map file: parser (SPEC section 2) into an immutable
 * map with a hash index of exact selectors, and resolution of certificate
 * facts against it (first match in file order, deny precedence, issuer
 * sections).
 *
 * Layout: certauthz_map_int.h.  A map is flat arrays of offsets and
 * indices, the same bytes in the process that parses a map and in a
 * compiled image (certauthz_image.c) that any number of processes map.
 *
 * Memory: loading costs little more than what the map keeps, 28 bytes a
 * rule, its strings and its share of the index (maps of a million rules are
 * loaded by big sites).  The parser streams: a file is read in chunks and
 * never held whole; the arrays grow by realloc() (which moves large blocks
 * by remapping their pages, not by copying them); a selector is compiled in
 * a pool cleared after every line and only what matching needs is kept
 * (the value; for dn: its key and its text); a groups field shared by many
 * rules is kept once.
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
#include "certauthz_map_int.h"
#include "certauthz_util.h"

/* Most bytes of strings (and words of groups records) a map may hold: its
 * offsets are 32 bits. */
#define MAX_ARRAY 0xFFFFFF00u

static const certauthz_rule_t *rule_at(const certauthz_map_t *m, uint32_t i)
{
    return &m->rules[i];
}

static const char *str_at(const certauthz_map_t *m, uint32_t off)
{
    return off < m->nstr ? m->str + off : "";
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

static uint32_t rule_hash(const certauthz_map_t *m, const certauthz_rule_t *r)
{
    return key_hash(r->scope, r->type, RULE_DENY(r), m->str + r->value, r->len);
}

/* Index of the rule with this key, or UINT32_MAX.  The rule's key is
 * bounds-checked: an image's arrays are not trusted further than that. */
static uint32_t index_find(const certauthz_map_t *m, unsigned scope,
                           unsigned type, unsigned deny, const char *key,
                           apr_size_t len)
{
    uint32_t h = key_hash(scope, type, deny, key, len);
    uint32_t i = h & m->mask, s, probes = 0;

    while ((s = m->slots[i]) && probes++ <= m->mask) {
        uint32_t idx = SLOT_INDEX(s) - 1;
        if (SLOT_TAG(s) == SLOT_TAG(h) && idx < m->nrules) {
            const certauthz_rule_t *r = rule_at(m, idx);
            if (r->scope == scope && r->type == type && RULE_DENY(r) == deny
                && r->len == len && r->len <= m->nstr
                && r->value <= m->nstr - r->len
                && !memcmp(m->str + r->value, key, len))
                return idx;
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
            if (r->kind == CERTAUTHZ_SEL_EXACT)
                slot_put(slots, (uint32_t)(nslots - 1), rule_hash(m, r), i);
        }
    return slots;
}

/* The arrays of a parsed map are malloc()ed: freed with the map's pool. */
static apr_status_t arrays_cleanup(void *data)
{
    certauthz_map_t *m = data;
    free(m->slots);
    free(m->rules);
    free(m->str);
    free(m->grp);
    free(m->apat);
    free(m->dpat);
    free(m->issuers);
    m->slots = m->grp = m->apat = m->dpat = NULL;
    m->rules = NULL;
    m->str = NULL;
    m->issuers = NULL;
    return APR_SUCCESS;
}

/* Room for n more elements of size in *arr (holding *have, with room for
 * *cap); 0 when out of memory or past MAX_ARRAY bytes. */
static int grow(void *arr, uint32_t have, uint32_t *cap, apr_size_t n,
                apr_size_t size)
{
    void **pa = arr;
    apr_size_t want = (apr_size_t)have + n, c = *cap;
    void *na;

    if (want <= c)
        return 1;
    if (want * size > MAX_ARRAY)
        return 0;
    while (c < want)
        c = c ? 2 * c : 64;
    if (c * size > MAX_ARRAY)
        c = MAX_ARRAY / size;
    if (!(na = realloc(*pa, c * size)))
        return 0;
    *pa = na;
    *cap = (uint32_t)c;
    return 1;
}

/* ---- parser ------------------------------------------------------------ */

typedef struct {
    certauthz_map_t *m;
    apr_pool_t *p;       /* the map's pool */
    apr_pool_t *scratch; /* parse-time only */
    apr_pool_t *line_p;  /* what one line needs while it is parsed */
    apr_array_header_t *errs;
    apr_hash_t *groups_seen;       /* groups field text -> uint32_t record */
    apr_array_header_t *issuer_dn; /* const certauthz_dn_t *, by scope */
    apr_array_header_t *psel;      /* certauthz_selector_t, by pattern */
    uint32_t cap_rules, cap_str, cap_grp, cap_apat, cap_dpat, cap_iss;
    unsigned nexact; /* exact rules in the index */
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

/* A map too big for 32-bit offsets, or no memory: reported once, on the
 * line that did not fit, and the parse stops there. */
static void too_big(parse_t *ps)
{
    add_error(ps, "out of memory (or the map is larger than 4 GiB)");
    ps->stop = 1;
}

/* Copy s[0..len) and a NUL to the strings; its offset, or 0 (with an error)
 * when it does not fit. */
static uint32_t str_add(parse_t *ps, const char *s, apr_size_t len)
{
    certauthz_map_t *m = ps->m;
    uint32_t off = m->nstr;

    if (!grow(&m->str, m->nstr, &ps->cap_str, len + 1, 1)) {
        too_big(ps);
        return 0;
    }
    memcpy(m->str + off, s, len);
    m->str[off + len] = '\0';
    m->nstr += (uint32_t)len + 1;
    return off;
}

typedef struct {
    const char *s;
    apr_size_t len;
} field_t;

#define MAX_FIELDS 8

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

/* Check the $N references of a user or group template against sel. */
static int check_refs(parse_t *ps, const certauthz_selector_t *sel,
                      const char *s, apr_size_t len, const char *what)
{
    int found = 0;
    for (apr_size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '$' || s[i + 1] < '0' || s[i + 1] > '9')
            continue;
        unsigned n = (unsigned)(s[i + 1] - '0');
        if (sel->kind != CERTAUTHZ_SEL_REGEX) {
            add_error(ps, apr_psprintf(ps->scratch,
                                       "$%u in %s but the "
                                       "selector is not a regex",
                                       n, what));
            return -1;
        }
        if (n > sel->ngroups) {
            add_error(ps, apr_psprintf(ps->scratch,
                                       "$%u in %s but the regex "
                                       "has %u capture group%s",
                                       n, what, sel->ngroups,
                                       sel->ngroups == 1 ? "" : "s"));
            return -1;
        }
        found = 1;
        i++;
    }
    return found;
}

/* Split "a,b,c" (spaces around names ignored) into a groups record, kept
 * once for every rule with the same field text: *rec its offset.  Returns
 * whether a name uses $N, or -1 on error. */
static int parse_groups(parse_t *ps, const certauthz_selector_t *sel,
                        const field_t *f, uint32_t *rec)
{
    certauthz_map_t *m = ps->m;
    const uint32_t *seen = apr_hash_get(ps->groups_seen, f->s, f->len);
    apr_array_header_t *arr;
    apr_size_t i = 0;
    uint32_t *kept;
    int refs = 0;

    if (seen) {
        *rec = *seen;
        for (uint32_t k = 0; k < m->grp[*seen]; k++) {
            const char *name = m->str + m->grp[*seen + 1 + k];
            int c = check_refs(ps, sel, name, strlen(name), "groups");
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
        if (certauthz_has_control(f->s + start, end - start)) {
            add_error(ps, "control character in group name");
            return -1;
        }
        int c = check_refs(ps, sel, f->s + start, end - start, "groups");
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
    if (!grow(&m->grp, m->ngrp, &ps->cap_grp, (apr_size_t)arr->nelts + 1,
              sizeof(uint32_t))) {
        too_big(ps);
        return -1;
    }
    *rec = m->ngrp;
    m->grp[m->ngrp++] = (uint32_t)arr->nelts;
    for (int k = 0; k < arr->nelts; k++) {
        const field_t *name = &APR_ARRAY_IDX(arr, k, field_t);
        uint32_t off = str_add(ps, name->s, name->len);
        if (!off)
            return -1;
        m->grp[m->ngrp++] = off;
    }
    kept = apr_palloc(ps->scratch, sizeof(*kept));
    *kept = *rec;
    apr_hash_set(ps->groups_seen, apr_pstrmemdup(ps->scratch, f->s, f->len),
                 f->len, kept);
    return refs;
}

static void parse_section(parse_t *ps, const char *line, apr_size_t len)
{
    certauthz_map_t *m = ps->m;
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
        const char *why, *key, *text;
        const uint32_t *scope;
        apr_size_t klen;

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
        scope = apr_hash_get(m->issuer_scope, key, klen);
        if (!scope) {
            const certauthz_dn_t *kept;
            certauthz_issuer_ent_t *e;
            uint32_t *ns;
            if (m->nissuers > 65535) {
                add_error(ps, "too many issuer sections");
                return;
            }
            if (!grow(&m->issuers, m->nissuers, &ps->cap_iss, 1,
                      sizeof(*m->issuers))) {
                too_big(ps);
                return;
            }
            kept = certauthz_dn_copy(dn, ps->p);
            key = certauthz_dn_issuer_key(kept, &klen);
            text = certauthz_dn_text(kept);
            e = &m->issuers[m->nissuers];
            if (!(e->key = str_add(ps, key, klen))
                || !(e->text = str_add(ps, text, strlen(text))))
                return;
            e->klen = (uint32_t)klen;
            *(const certauthz_dn_t **)apr_array_push(ps->issuer_dn) = kept;
            ns = apr_palloc(ps->p, sizeof(*ns));
            *ns = m->nissuers++;
            apr_hash_set(m->issuer_scope, key, klen, ns);
            scope = ns;
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
 * which its code lives and dies with; any other selector in the line pool
 * (the map keeps its key in the strings). */
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

/* Append a rule to the map; its index, or UINT32_MAX when out of room. */
static uint32_t rule_add(parse_t *ps, const certauthz_rule_t *r)
{
    certauthz_map_t *m = ps->m;

    if (!grow(&m->rules, m->nrules, &ps->cap_rules, 1, sizeof(*r))) {
        too_big(ps);
        return UINT32_MAX;
    }
    m->rules[m->nrules] = *r;
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
        too_big(ps);
        return 0;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = (uint32_t)(2 * nslots - 1);
    return 1;
}

/* The key of an exact selector and (for dn) the DN's text, to the strings. */
static int keep_key(parse_t *ps, certauthz_rule_t *r,
                    const certauthz_selector_t *sel)
{
    if (!(r->value = str_add(ps, sel->value, sel->len)))
        return 0;
    r->len = (uint32_t)sel->len;
    if (sel->type == CERTAUTHZ_DN && sel->kind == CERTAUTHZ_SEL_EXACT) {
        const char *text = certauthz_dn_text(sel->u.dn);
        if (!(r->aux = str_add(ps, text, strlen(text))))
            return 0;
    }
    return 1;
}

static void parse_rule(parse_t *ps, const field_t *f, int n)
{
    certauthz_map_t *m = ps->m;
    certauthz_selector_t sel;
    certauthz_rule_t r;
    int deny = f[0].len == 4 && !memcmp(f[0].s, "deny", 4);
    int refs = 0;
    uint32_t idx;

    memset(&r, 0, sizeof(r));
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
    if (!parse_selector(ps, &sel, f[0].s, f[0].len))
        return;
    r.type = sel.type;
    r.kind = sel.kind;
    r.scope = (uint16_t)ps->scope;
    r.flags = ps->line | (deny ? 1u << 30 : 0);
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
        if (certauthz_has_control(f[1].s, f[1].len)) {
            add_error(ps, "control character in user");
            return;
        }
        if ((refs = check_refs(ps, &sel, f[1].s, f[1].len, "user")) < 0)
            return;
        if (n == 3) {
            int g = parse_groups(ps, &sel, &f[2], &r.groups);
            if (g < 0)
                return;
            refs |= g;
        }
        if (refs)
            r.flags |= 1u << 31;
    }
    if (sel.kind == CERTAUTHZ_SEL_EXACT) {
        uint32_t prev =
            index_find(m, r.scope, sel.type, deny != 0, sel.value, sel.len);
        if (prev != UINT32_MAX) {
            add_error(
                ps, apr_psprintf(ps->scratch,
                                 "duplicate selector %s "
                                 "(first at line %u)",
                                 certauthz_log_escape(
                                     certauthz_selector_text(&sel, ps->scratch),
                                     ps->scratch),
                                 (unsigned)RULE_LINE(rule_at(m, prev))));
            return;
        }
    }
    /* every check passed: keep it */
    if (!deny && !(r.user = str_add(ps, f[1].s, f[1].len)))
        return;
    if (!keep_key(ps, &r, &sel))
        return;
    if (sel.kind == CERTAUTHZ_SEL_EXACT) {
        if (!index_reserve(ps) || (idx = rule_add(ps, &r)) == UINT32_MAX)
            return;
        slot_put(m->slots, m->mask, rule_hash(m, &r), idx);
        ps->nexact++;
        m->exact_types |= 1u << sel.type;
        if (deny)
            m->stats.deny++;
        else {
            m->stats.exact[sel.type]++;
            m->stats.exact_all++;
        }
    }
    else {
        uint32_t **list = deny ? &m->dpat : &m->apat;
        uint32_t *nlist = deny ? &m->ndpat : &m->napat;
        r.aux = m->napat + m->ndpat;
        if (!grow(list, *nlist, deny ? &ps->cap_dpat : &ps->cap_apat, 1,
                  sizeof(uint32_t))
            || (idx = rule_add(ps, &r)) == UINT32_MAX) {
            too_big(ps);
            return;
        }
        (*list)[(*nlist)++] = idx;
        *(certauthz_selector_t *)apr_array_push(ps->psel) = sel;
        if (deny)
            m->stats.deny++;
        else if (sel.kind == CERTAUTHZ_SEL_GLOB)
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
    apr_pool_cleanup_register(p, m, arrays_cleanup, apr_pool_cleanup_null);
    ps->m = m;
    ps->p = p;
    ps->errs = errs;
    /* str[0] is "", grp[0] the empty record, issuers[0] unused */
    if (!(m->slots = calloc(m->mask + 1, sizeof(uint32_t)))
        || !grow(&m->str, 0, &ps->cap_str, 1, 1)
        || !grow(&m->grp, 0, &ps->cap_grp, 1, sizeof(uint32_t))
        || !grow(&m->issuers, 0, &ps->cap_iss, 1, sizeof(*m->issuers))) {
        push_error(errs, name, 0, "out of memory");
        apr_pool_destroy(ps->scratch);
        return APR_ENOMEM;
    }
    m->str[0] = '\0';
    m->nstr = 1;
    m->grp[0] = 0;
    m->ngrp = 1;
    memset(m->issuers, 0, sizeof(*m->issuers));
    m->nissuers = 1;
    m->issuer_scope = apr_hash_make(p);
    ps->groups_seen = apr_hash_make(ps->scratch);
    ps->issuer_dn = apr_array_make(p, 4, sizeof(const certauthz_dn_t *));
    *(const certauthz_dn_t **)apr_array_push(ps->issuer_dn) = NULL;
    ps->psel = apr_array_make(p, 16, sizeof(certauthz_selector_t));
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

/* Finish a parse: the map, or nothing when any error was found (its
 * arrays are freed at once, the rest stays in the pool). */
static apr_status_t parse_end(parse_t *ps, certauthz_map_t **pmap)
{
    certauthz_map_t *m = ps->m;
    const char *why;

    if (ps->errs->nelts) {
        apr_pool_cleanup_run(ps->p, m, arrays_cleanup);
        apr_pool_destroy(ps->scratch);
        return CERTAUTHZ_EBADINPUT;
    }
    m->psel = (certauthz_selector_t *)ps->psel->elts;
    m->issuer_dn = (const certauthz_dn_t **)ps->issuer_dn->elts;
    m->stats.sections = m->nissuers - 1;
    apr_pool_destroy(ps->scratch);
    if (certauthz_map_finish(m, &why, ps->p) != APR_SUCCESS) {
        /* not reached: what the parser built holds together */
        push_error(ps->errs, m->name, 0, why);
        apr_pool_cleanup_run(ps->p, m, arrays_cleanup);
        return CERTAUTHZ_EBADINPUT;
    }
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

/* ---- this process's part of a map --------------------------------------- */

const certauthz_selector_t *certauthz_map_rule_sel(const certauthz_map_t *m,
                                                   const certauthz_rule_t *r,
                                                   certauthz_selector_t *tmp)
{
    if (r->kind != CERTAUTHZ_SEL_EXACT && r->aux < m->napat + m->ndpat)
        return &m->psel[r->aux];
    memset(tmp, 0, sizeof(*tmp));
    tmp->kind = CERTAUTHZ_SEL_EXACT;
    if (r->type >= CERTAUTHZ_NTYPES) {
        /* a damaged image's rule, of no type: a selector that matches no
         * certificate (a sha256 fact is never empty), never one that
         * indexes facts past their types */
        tmp->type = CERTAUTHZ_SHA256;
        tmp->value = "";
        return tmp;
    }
    tmp->type = r->type;
    tmp->len = r->len <= m->nstr && r->value <= m->nstr - r->len ? r->len : 0;
    tmp->value = tmp->len ? m->str + r->value : "";
    if (r->type == CERTAUTHZ_DN && r->aux && r->aux < m->nstr)
        tmp->dn_text = m->str + r->aux;
    return tmp;
}

/* A string of the map at off: in range and terminated (str ends in NUL). */
static int str_ok(const certauthz_map_t *m, uint32_t off)
{
    return off < m->nstr;
}

apr_status_t certauthz_map_finish(certauthz_map_t *m, const char **why,
                                  apr_pool_t *p)
{
    int compile = m->psel == NULL; /* an image: nothing compiled yet */

    if (!m->nstr || m->str[m->nstr - 1] || !m->ngrp || !m->nissuers
        || m->mask == 0 || (m->mask & (m->mask + 1))) {
        *why = "arrays do not hold together";
        return CERTAUTHZ_EBADINPUT;
    }
    /* the pattern selectors */
    if (compile)
        m->psel = apr_pcalloc(p, sizeof(*m->psel)
                                     * ((apr_size_t)m->napat + m->ndpat + 1));
    for (uint32_t k = 0; k < m->napat + m->ndpat; k++) {
        uint32_t idx = k < m->napat ? m->apat[k] : m->dpat[k - m->napat];
        const certauthz_rule_t *r;
        certauthz_selector_t *sel;
        if (idx >= m->nrules
            || (r = rule_at(m, idx))->aux >= m->napat + m->ndpat
            || r->kind == CERTAUTHZ_SEL_EXACT || r->type >= CERTAUTHZ_NTYPES
            || RULE_DENY(r) != (k >= m->napat) || !str_ok(m, r->value)
            || r->len > m->nstr - r->value) {
            *why = "a pattern rule out of place";
            return CERTAUTHZ_EBADINPUT;
        }
        sel = &m->psel[r->aux];
        if (compile && sel->value) { /* two rules, one pattern number */
            *why = "a pattern rule out of place";
            return CERTAUTHZ_EBADINPUT;
        }
        if (r->kind == CERTAUTHZ_SEL_GLOB) {
            memset(sel, 0, sizeof(*sel));
            sel->type = r->type;
            sel->kind = CERTAUTHZ_SEL_GLOB;
            sel->value = m->str + r->value;
            sel->len = r->len;
        }
        else if (compile) {
            const char *text = apr_pstrcat(p, certauthz_type_name(r->type), "~",
                                           m->str + r->value, NULL);
            if (certauthz_selector_parse(sel, text, strlen(text), why, p)
                    != APR_SUCCESS
                || sel->kind != CERTAUTHZ_SEL_REGEX) {
                *why =
                    apr_psprintf(p, "a regex that does not compile: %s", *why);
                return CERTAUTHZ_EBADINPUT;
            }
        }
    }
    /* the issuer sections */
    if (compile) {
        const certauthz_dn_t **dns =
            apr_pcalloc(p, sizeof(*dns) * (apr_size_t)m->nissuers);
        m->issuer_scope = apr_hash_make(p);
        for (uint32_t s = 1; s < m->nissuers; s++) {
            const certauthz_issuer_ent_t *e = &m->issuers[s];
            certauthz_dn_t *dn;
            const char *reason;
            uint32_t *ns = apr_palloc(p, sizeof(*ns));
            if (!str_ok(m, e->key) || e->klen > m->nstr - e->key
                || !str_ok(m, e->text)
                || certauthz_dn_parse(&dn, m->str + e->text,
                                      strlen(m->str + e->text), &reason, p)
                       != APR_SUCCESS) {
                *why = "an issuer section out of place";
                return CERTAUTHZ_EBADINPUT;
            }
            dns[s] = dn;
            *ns = s;
            apr_hash_set(m->issuer_scope, m->str + e->key, e->klen, ns);
        }
        m->issuer_dn = dns;
    }
    return APR_SUCCESS;
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

void certauthz_map_set_name(certauthz_map_t *m, const char *name, apr_pool_t *p)
{
    m->name = apr_pstrdup(p, name);
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
    const uint32_t *scope;

    if (!f->issuer || m->nissuers < 2)
        return 0;
    key = certauthz_dn_issuer_key(f->issuer, &klen);
    scope = apr_hash_get(m->issuer_scope, key, klen);
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
    if (n == 0 || certauthz_has_control(out, n)
        || (is_group && memchr(out, ',', n)))
        return NULL;
    return out;
}

static int in_scope(const certauthz_rule_t *r, unsigned scope)
{
    return r->scope == 0 || r->scope == scope;
}

/* The names of a groups record (from p), NULL-terminated; n set.  An
 * out-of-range record gives none. */
static const char **group_names(const certauthz_map_t *m, uint32_t rec, int *n,
                                apr_pool_t *p)
{
    uint32_t k, count = rec < m->ngrp ? m->grp[rec] : 0;
    const char **g;

    if (count > m->ngrp - rec - 1)
        count = 0;
    g = apr_palloc(p, sizeof(char *) * ((apr_size_t)count + 1));
    for (k = 0; k < count; k++)
        g[k] = str_at(m, m->grp[rec + 1 + k]);
    g[count] = NULL;
    *n = (int)count;
    return g;
}

static const certauthz_selector_t *pat_sel(const certauthz_map_t *m,
                                           const certauthz_rule_t *r)
{
    return &m->psel[r->aux < m->napat + m->ndpat ? r->aux : 0];
}

void certauthz_map_resolve(certauthz_identity_t *id, const certauthz_map_t *m,
                           const certauthz_facts_t *f, apr_pool_t *p)
{
    unsigned scope = issuer_scope(m, f);
    uint32_t best, k;
    certauthz_captures_t caps;
    const certauthz_rule_t *r;
    const char **g;
    int ng;

    memset(id, 0, sizeof(*id));

    /* deny rules anywhere win; a regex that gives up counts as a match */
    best = exact_first(m, f, scope, 1);
    if (best != UINT32_MAX) {
        id->outcome = CERTAUTHZ_DENIED;
        id->rule = rule_at(m, best);
        return;
    }
    for (k = 0; k < m->ndpat; k++) {
        uint32_t idx = m->dpat[k];
        if (idx >= m->nrules)
            continue; /* checked when opened: an image damaged since */
        r = rule_at(m, idx);
        if (in_scope(r, scope)
            && certauthz_selector_match(pat_sel(m, r), f, NULL)) {
            id->outcome = CERTAUTHZ_DENIED;
            id->rule = r;
            return;
        }
    }

    /* first allow rule in file order, exact or pattern */
    best = exact_first(m, f, scope, 0);
    caps.n = 0;
    for (k = 0; k < m->napat; k++) {
        uint32_t idx = m->apat[k];
        int hit;
        if (idx >= best)
            break;
        if (idx >= m->nrules)
            continue; /* as above */
        r = rule_at(m, idx);
        if (!in_scope(r, scope))
            continue;
        hit = certauthz_selector_match(pat_sel(m, r), f, &caps);
        if (hit < 0) {
            /* the regex gave up on a hostile value: no identity, rather
             * than whatever a later, broader rule would give */
            id->rule = r;
            return;
        }
        if (hit == 1) {
            best = idx;
            break;
        }
    }
    if (best == UINT32_MAX)
        return;
    r = rule_at(m, best);
    id->rule = r;
    g = group_names(m, r->groups, &ng, p);
    id->user = str_at(m, r->user);
    id->ngroups = ng;
    id->groups = ng ? g : NULL;
    if (RULE_REFS(r)) {
        if (!(id->user = substitute(id->user, &caps, 0, p)))
            goto unusable;
        for (int i = 0; i < ng; i++)
            if (!(g[i] = substitute(g[i], &caps, 1, p)))
                goto unusable;
    }
    if (!*id->user)
        goto unusable; /* not in a map the parser made */
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

    for (uint32_t i = 0; i < m->nrules; i++) {
        const certauthz_rule_t *r = rule_at(m, i);
        certauthz_selector_t tmp;
        int hit;
        if (!in_scope(r, scope) || r->type >= CERTAUTHZ_NTYPES)
            continue; /* (no type: a damaged image's rule) */
        /* as in resolve: a regex that gave up matches only for deny rules */
        hit = certauthz_selector_match(certauthz_map_rule_sel(m, r, &tmp), f,
                                       NULL);
        if ((hit == 1 || (hit < 0 && RULE_DENY(r))) && fn(baton, r))
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
        const uint32_t *s = apr_hash_get(m->issuer_scope, ikey, klen);
        if (!s)
            return m->nrules;
        scope = *s;
    }
    idx = index_find(m, scope, (unsigned)type, deny != 0, key, len);
    return idx == UINT32_MAX ? m->nrules : idx;
}

/* ---- rules ---------------------------------------------------------------- */

const char *certauthz_rule_file(const certauthz_map_t *m,
                                const certauthz_rule_t *r)
{
    (void)r;
    return m->name;
}

unsigned certauthz_rule_line(const certauthz_rule_t *r)
{
    return RULE_LINE(r);
}

const char *certauthz_rule_where(const certauthz_map_t *m,
                                 const certauthz_rule_t *r, apr_pool_t *p)
{
    if (!r)
        return "-";
    return apr_psprintf(p, "%s:%u", m->name, RULE_LINE(r));
}

int certauthz_rule_is_deny(const certauthz_rule_t *r)
{
    return RULE_DENY(r);
}

const certauthz_selector_t *certauthz_rule_selector(const certauthz_map_t *m,
                                                    const certauthz_rule_t *r,
                                                    certauthz_selector_t *tmp)
{
    return certauthz_map_rule_sel(m, r, tmp);
}

const certauthz_dn_t *certauthz_rule_issuer(const certauthz_map_t *m,
                                            const certauthz_rule_t *r)
{
    return r->scope && r->scope < m->nissuers ? m->issuer_dn[r->scope] : NULL;
}

unsigned certauthz_map_nrules(const certauthz_map_t *m)
{
    return m->nrules;
}

const certauthz_rule_t *certauthz_map_rule(const certauthz_map_t *m, unsigned i)
{
    return i < m->nrules ? rule_at(m, i) : NULL;
}

const char *certauthz_rule_user(const certauthz_map_t *m,
                                const certauthz_rule_t *r)
{
    return RULE_DENY(r) ? NULL : str_at(m, r->user);
}

int certauthz_rule_groups(const certauthz_map_t *m, const certauthz_rule_t *r,
                          const char *const **groups, apr_pool_t *p)
{
    int n = 0;
    const char **g = group_names(m, r->groups, &n, p);
    *groups = n ? g : NULL;
    return n;
}

const char *certauthz_outcome_name(certauthz_outcome_e o)
{
    return o == CERTAUTHZ_MAPPED   ? "mapped"
           : o == CERTAUTHZ_DENIED ? "denied"
                                   : "unmapped";
}

certauthz_diff_e certauthz_identity_compare(const certauthz_identity_t *a,
                                            const certauthz_identity_t *b)
{
    if (a->outcome != b->outcome)
        return CERTAUTHZ_DIFF_OUTCOME;
    if (a->outcome != CERTAUTHZ_MAPPED)
        return CERTAUTHZ_SAME;
    if (strcmp(a->user, b->user))
        return CERTAUTHZ_DIFF_USER;
    if (a->ngroups != b->ngroups)
        return CERTAUTHZ_DIFF_GROUPS;
    for (int i = 0; i < a->ngroups; i++)
        if (strcmp(a->groups[i], b->groups[i]))
            return CERTAUTHZ_DIFF_GROUPS;
    return CERTAUTHZ_SAME;
}

const char *certauthz_identity_groups(const certauthz_identity_t *id,
                                      apr_pool_t *p)
{
    apr_size_t n = 0;
    char *out, *o;
    int dns = 0;

    for (int i = 0; i < id->ngroups; i++) {
        n += strlen(id->groups[i]) + 2;
        dns |= strchr(id->groups[i], ',') != NULL;
    }
    o = out = apr_palloc(p, n + 1);
    for (int i = 0; i < id->ngroups; i++) {
        apr_size_t l = strlen(id->groups[i]);
        if (i && dns) {
            *o++ = ';';
            *o++ = ' ';
        }
        else if (i) {
            *o++ = ',';
        }
        memcpy(o, id->groups[i], l);
        o += l;
    }
    *o = '\0';
    return out;
}
