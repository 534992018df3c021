/*
 * certauthz_map.c -- the map file: parser (SPEC section 2) into an immutable
 * map with a hash index of exact selectors, and resolution of certificate
 * facts against it (first match in file order, deny precedence, issuer
 * sections).
 */
#include <stdint.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "certauthz_map.h"
#include "certauthz_util.h"

struct certauthz_rule_t {
    certauthz_selector_t sel;
    const char *user;          /* may hold $N when refs */
    const char *const *groups; /* may hold $N when refs */
    const certauthz_map_t *map;
    unsigned line;
    unsigned short scope; /* 0: every issuer; n: map->issuer_dn[n] */
    unsigned short ngroups;
    unsigned char deny;
    unsigned char refs; /* user or groups use $N */
};

struct certauthz_map_t {
    const char *name;
    certauthz_rule_t *rules; /* file order */
    unsigned nrules;
    /* exact selectors: open addressing, slot = rule index + 1, 0 empty */
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
};

/* ---- index of exact selectors ---------------------------------------- */

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

/* Index of the rule with this key, or UINT32_MAX. */
static uint32_t index_find(const certauthz_map_t *m, unsigned scope,
                           unsigned type, unsigned deny, const char *key,
                           apr_size_t len)
{
    uint32_t i = key_hash(scope, type, deny, key, len) & m->mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (!s)
            return UINT32_MAX;
        const certauthz_rule_t *r = &m->rules[s - 1];
        if (r->scope == scope && r->sel.type == type && r->deny == deny
            && r->sel.len == len && !memcmp(r->sel.value, key, len))
            return s - 1;
        i = (i + 1) & m->mask;
    }
}

static void index_insert(certauthz_map_t *m, uint32_t idx)
{
    const certauthz_rule_t *r = &m->rules[idx];
    uint32_t i =
        key_hash(r->scope, r->sel.type, r->deny, r->sel.value, r->sel.len)
        & m->mask;
    while (m->slots[i])
        i = (i + 1) & m->mask;
    m->slots[i] = idx + 1;
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
    apr_array_header_t *errs;
    apr_hash_t *groups_seen; /* groups field text -> interned list */
    apr_array_header_t *issuer_dns;
    apr_array_header_t *allow_pat, *deny_pat;
    unsigned scope;
    unsigned line;
    char *buf; /* unquoted fields of the current line */
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

/* Split "a,b,c" (spaces around names ignored) into an interned list. */
static int parse_groups(parse_t *ps, certauthz_rule_t *r, const field_t *f)
{
    const char *const *list = apr_hash_get(ps->groups_seen, f->s, f->len);
    apr_array_header_t *arr;
    apr_size_t i = 0;
    int refs = 0;

    if (list) {
        for (r->ngroups = 0; list[r->ngroups]; r->ngroups++)
            ;
        r->groups = list;
        for (int g = 0; g < r->ngroups; g++) {
            int c = check_refs(ps, r, list[g], strlen(list[g]), "groups");
            if (c < 0)
                return -1;
            refs |= c;
        }
        return refs;
    }
    arr = apr_array_make(ps->p, 4, sizeof(const char *));
    while (i <= f->len) {
        apr_size_t start = i, end;
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
        *(const char **)apr_array_push(arr) =
            apr_pstrmemdup(ps->p, f->s + start, end - start);
    }
    if (arr->nelts > 65535) {
        add_error(ps, "too many groups");
        return -1;
    }
    r->ngroups = (unsigned short)arr->nelts;
    *(const char **)apr_array_push(arr) = NULL;
    r->groups = (const char *const *)arr->elts;
    apr_hash_set(ps->groups_seen, apr_pstrmemdup(ps->scratch, f->s, f->len),
                 f->len, r->groups);
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
                               ps->p)
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
            if (ps->issuer_dns->nelts >= 65535) {
                add_error(ps, "too many issuer sections");
                return;
            }
            *(const certauthz_dn_t **)apr_array_push(ps->issuer_dns) = dn;
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

static void parse_rule(parse_t *ps, const field_t *f, int n)
{
    certauthz_map_t *m = ps->m;
    certauthz_rule_t *r = &m->rules[m->nrules];
    const char *why;
    int deny = f[0].len == 4 && !memcmp(f[0].s, "deny", 4);
    int refs;

    memset(r, 0, sizeof(*r));
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
    if (certauthz_selector_parse(&r->sel, f[0].s, f[0].len, &why, ps->p)
        != APR_SUCCESS) {
        add_error(ps, why);
        return;
    }
    r->deny = (unsigned char)deny;
    r->scope = (unsigned short)ps->scope;
    r->line = ps->line;
    r->map = m;
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
        if ((refs = check_refs(ps, r, f[1].s, f[1].len, "user")) < 0)
            return;
        r->user = apr_pstrmemdup(ps->p, f[1].s, f[1].len);
        if (n == 3) {
            int g = parse_groups(ps, r, &f[2]);
            if (g < 0)
                return;
            refs |= g;
        }
        r->refs = (unsigned char)refs;
    }
    if (r->sel.kind == CERTAUTHZ_SEL_EXACT) {
        uint32_t prev = index_find(m, r->scope, r->sel.type, r->deny,
                                   r->sel.value, r->sel.len);
        if (prev != UINT32_MAX) {
            add_error(
                ps, apr_psprintf(ps->scratch,
                                 "duplicate selector %s "
                                 "(first at line %u)",
                                 certauthz_log_escape(certauthz_selector_text(
                                                          &r->sel, ps->scratch),
                                                      ps->scratch),
                                 m->rules[prev].line));
            return;
        }
        index_insert(m, m->nrules);
        m->exact_types |= 1u << r->sel.type;
        if (deny)
            m->stats.deny++;
        else
            m->stats.exact[r->sel.type]++;
    }
    else {
        *(uint32_t *)apr_array_push(deny ? ps->deny_pat : ps->allow_pat) =
            m->nrules;
        if (deny)
            m->stats.deny++;
        else if (r->sel.kind == CERTAUTHZ_SEL_GLOB)
            m->stats.globs++;
        else
            m->stats.regexes++;
    }
    if (!deny)
        m->stats.rules++;
    m->nrules++;
}

static void parse_line(parse_t *ps, const char *line, apr_size_t len)
{
    field_t f[MAX_FIELDS];
    apr_size_t i = 0;
    int n;

    if (len > CERTAUTHZ_MAX_LINE) {
        add_error(ps, apr_psprintf(ps->scratch, "line longer than %d bytes",
                                   CERTAUTHZ_MAX_LINE));
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
    if (i < len && line[i] == '[') {
        parse_section(ps, line + i, len - i);
        return;
    }
    n = split_fields(ps, line, len, f);
    if (n > 0)
        parse_rule(ps, f, n);
}

/* The rule indices collected in a scratch array, copied to the map. */
static uint32_t *index_copy(const apr_array_header_t *a, apr_pool_t *p)
{
    uint32_t *d = apr_palloc(p, sizeof(uint32_t) * ((apr_size_t)a->nelts + 1));
    memcpy(d, a->elts, sizeof(uint32_t) * (apr_size_t)a->nelts);
    return d;
}

apr_status_t certauthz_map_parse(certauthz_map_t **pmap, const char *name,
                                 const char *buf, apr_size_t len,
                                 apr_array_header_t **errs, apr_pool_t *p)
{
    parse_t ps;
    certauthz_map_t *m;
    const char *pos = buf, *end = buf + len;
    apr_size_t nlines = 1, nslots = 16;
    apr_status_t rv;

    *pmap = NULL;
    *errs = apr_array_make(p, 1, sizeof(certauthz_error_t));
    if ((rv = apr_pool_create(&ps.scratch, p)) != APR_SUCCESS) {
        push_error(*errs, name, 0, "out of memory");
        return rv;
    }

    for (const char *q = buf; (q = memchr(q, '\n', (apr_size_t)(end - q))); q++)
        nlines++;
    if (nlines > CERTAUTHZ_MAX_LINES) {
        push_error(*errs, name, 0,
                   apr_psprintf(p, "more than %d lines", CERTAUTHZ_MAX_LINES));
        apr_pool_destroy(ps.scratch);
        return CERTAUTHZ_EBADINPUT;
    }
    while (nslots < 2 * nlines)
        nslots <<= 1;

    m = apr_pcalloc(p, sizeof(*m));
    m->name = apr_pstrdup(p, name);
    m->rules = apr_palloc(p, nlines * sizeof(certauthz_rule_t));
    m->slots = apr_pcalloc(p, nslots * sizeof(uint32_t));
    m->mask = (uint32_t)(nslots - 1);
    m->issuers = apr_hash_make(p);

    ps.m = m;
    ps.p = p;
    ps.errs = *errs;
    ps.groups_seen = apr_hash_make(ps.scratch);
    ps.issuer_dns = apr_array_make(p, 4, sizeof(const certauthz_dn_t *));
    *(const certauthz_dn_t **)apr_array_push(ps.issuer_dns) = NULL;
    ps.allow_pat = apr_array_make(ps.scratch, 16, sizeof(uint32_t));
    ps.deny_pat = apr_array_make(ps.scratch, 16, sizeof(uint32_t));
    ps.scope = 0;
    ps.line = 0;
    ps.buf = apr_palloc(ps.scratch, CERTAUTHZ_MAX_LINE + 1);

    /* a UTF-8 byte order mark is not part of the first line */
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        pos += 3;
    while (pos < end && ps.errs->nelts < CERTAUTHZ_MAX_ERRORS) {
        const char *nl = memchr(pos, '\n', (apr_size_t)(end - pos));
        const char *eol = nl ? nl : end;
        apr_size_t l = (apr_size_t)(eol - pos);
        ps.line++;
        if (l && pos[l - 1] == '\r')
            l--;
        parse_line(&ps, pos, l);
        pos = nl ? nl + 1 : end;
    }

    if (ps.errs->nelts) {
        apr_pool_destroy(ps.scratch);
        return CERTAUTHZ_EBADINPUT;
    }
    m->allow_pat = index_copy(ps.allow_pat, p);
    m->nallow_pat = (unsigned)ps.allow_pat->nelts;
    m->deny_pat = index_copy(ps.deny_pat, p);
    m->ndeny_pat = (unsigned)ps.deny_pat->nelts;
    m->issuer_dn = (const certauthz_dn_t **)ps.issuer_dns->elts;
    m->stats.sections = (unsigned)ps.issuer_dns->nelts - 1;
    apr_pool_destroy(ps.scratch);
    *pmap = m;
    return APR_SUCCESS;
}

apr_status_t certauthz_map_load(certauthz_map_t **pmap, const char *path,
                                apr_array_header_t **errs, apr_pool_t *p)
{
    apr_pool_t *tmp;
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    char *buf, msg[256];
    apr_size_t got = 0;

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
    if (rv == APR_SUCCESS && fi.filetype != APR_REG) {
        push_error(*errs, apr_pstrdup(p, path), 0,
                   fi.filetype == APR_DIR ? "is a directory, not a map file"
                                          : "is not a regular file");
        apr_pool_destroy(tmp);
        return CERTAUTHZ_EBADINPUT;
    }
    if (rv == APR_SUCCESS) {
        buf = apr_palloc(tmp, (apr_size_t)fi.size + 1);
        rv = apr_file_read_full(fd, buf, (apr_size_t)fi.size, &got);
        if (rv == APR_EOF)
            rv = APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        push_error(*errs, apr_pstrdup(p, path), 0,
                   apr_strerror(rv, msg, sizeof(msg)));
        apr_pool_destroy(tmp);
        return rv;
    }
    rv = certauthz_map_parse(pmap, path, buf, got, errs, p);
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
        id->rule = &m->rules[best];
        return;
    }
    for (i = 0; i < m->ndeny_pat; i++) {
        r = &m->rules[m->deny_pat[i]];
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
        r = &m->rules[m->allow_pat[i]];
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
    r = &m->rules[best];
    id->rule = r;
    id->user = r->user;
    id->ngroups = r->ngroups;
    id->groups = r->groups;
    if (r->refs) {
        const char **g = apr_palloc(p, sizeof(char *) * (r->ngroups + 1u));
        if (!(id->user = substitute(r->user, &caps, 0, p)))
            goto unusable;
        for (int k = 0; k < r->ngroups; k++)
            if (!(g[k] = substitute(r->groups[k], &caps, 1, p)))
                goto unusable;
        g[r->ngroups] = NULL;
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
        const certauthz_rule_t *r = &m->rules[i];
        int hit;
        if (!in_scope(r, scope))
            continue;
        /* as in resolve: a regex that gave up matches only for deny rules */
        hit = certauthz_selector_match(&r->sel, f, NULL);
        if ((hit == 1 || (hit < 0 && r->deny)) && fn(baton, r))
            return;
    }
}

const char *certauthz_rule_file(const certauthz_rule_t *r)
{
    return r->map->name;
}

unsigned certauthz_rule_line(const certauthz_rule_t *r)
{
    return r->line;
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
    return r->scope ? r->map->issuer_dn[r->scope] : NULL;
}

unsigned certauthz_map_nrules(const certauthz_map_t *m)
{
    return m->nrules;
}

const certauthz_rule_t *certauthz_map_rule(const certauthz_map_t *m,
                                           unsigned i)
{
    return i < m->nrules ? &m->rules[i] : NULL;
}

const char *certauthz_rule_user(const certauthz_rule_t *r)
{
    return r->deny ? NULL : r->user;
}

int certauthz_rule_groups(const certauthz_rule_t *r,
                          const char *const **groups)
{
    *groups = r->groups;
    return r->deny ? 0 : r->ngroups;
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
