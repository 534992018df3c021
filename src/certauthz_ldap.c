/*
 * certauthz_ldap.c -- filter templates, RFC 4515 escaping, entry to
 * identity, and the result cache of directory lookups
 * (certauthz_ldap.h).
 */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "certauthz_altsec.h"
#include "certauthz_dn.h"
#include "certauthz_ldap.h"
#include "certauthz_util.h"

/* ---- templates ------------------------------------------------------- */

#define EXTRA_ENUM_(id, name, what) EXTRA_##id,
enum { CERTAUTHZ_LDAP_EXTRAS(EXTRA_ENUM_) NEXTRAS };
#undef EXTRA_ENUM_

#define EXTRA_NAME_(id, name, what) name,
static const char *const extra_names[] = {CERTAUTHZ_LDAP_EXTRAS(EXTRA_NAME_)};
#undef EXTRA_NAME_

/* One part of a template: literal text, or a placeholder (a fact type,
 * or CERTAUTHZ_NTYPES + an extra). */
typedef struct {
    const char *lit; /* NULL for a placeholder */
    apr_size_t len;
    int ph;
} part_t;

struct certauthz_ldap_template_t {
    int n;
    part_t *parts;
    int wants_der;
};

/* The placeholder named s[0..len), or -1. */
static int placeholder(const char *s, apr_size_t len)
{
    int t = certauthz_type_lookup(s, len);
    if (t >= 0)
        return t;
    for (int i = 0; i < NEXTRAS; i++)
        if (strlen(extra_names[i]) == len && !memcmp(extra_names[i], s, len))
            return CERTAUTHZ_NTYPES + i;
    return -1;
}

static const char *known_names(apr_pool_t *p)
{
    const char *s = "";
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        s = apr_pstrcat(p, s, t ? ", " : "", certauthz_type_name(t), NULL);
    for (int i = 0; i < NEXTRAS; i++)
        s = apr_pstrcat(p, s, ", ", extra_names[i], NULL);
    return s;
}

apr_status_t certauthz_ldap_template_parse(certauthz_ldap_template_t **pt,
                                           const char *text,
                                           const char **reason, apr_pool_t *p)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(part_t));
    certauthz_ldap_template_t *t = apr_pcalloc(p, sizeof(*t));
    apr_size_t len = strlen(text), i = 0, lit = 0;
    int depth = 0, nph = 0;

    if (!len || text[0] != '(') {
        *reason = "an LDAP filter starts with '(' (as (mail={email}))";
        return CERTAUTHZ_EBADINPUT;
    }
    if (!certauthz_utf8_valid(text, len)) {
        *reason = "the filter is not UTF-8";
        return CERTAUTHZ_EBADINPUT;
    }
    while (i <= len) {
        char c = i < len ? text[i] : '\0';
        if (i == len || c == '{') {
            if (i > lit) {
                part_t *pt_ = apr_array_push(parts);
                pt_->lit = text + lit;
                pt_->len = i - lit;
                pt_->ph = -1;
            }
            if (i == len)
                break;
            const char *end = memchr(text + i + 1, '}', len - i - 1);
            int ph = end ? placeholder(text + i + 1,
                                       (apr_size_t)(end - text - i - 1))
                         : -1;
            if (!end) {
                *reason = "a '{' without its '}' (placeholders are {NAME})";
                return CERTAUTHZ_EBADINPUT;
            }
            if (ph < 0) {
                *reason = apr_psprintf(
                    p, "unknown placeholder {%s} (known: %s)",
                    certauthz_log_escape(
                        apr_pstrmemdup(p, text + i + 1,
                                       (apr_size_t)(end - text - i - 1)),
                        p),
                    known_names(p));
                return CERTAUTHZ_EBADINPUT;
            }
            if (depth == 0) {
                *reason = "a placeholder outside the filter's parentheses";
                return CERTAUTHZ_EBADINPUT;
            }
            part_t *pp = apr_array_push(parts);
            pp->lit = NULL;
            pp->ph = ph;
            t->wants_der |= ph == CERTAUTHZ_NTYPES + EXTRA_CERT_DER;
            nph++;
            i = (apr_size_t)(end - text) + 1;
            lit = i;
            continue;
        }
        if (c == '}') {
            *reason = "a '}' without its '{'";
            return CERTAUTHZ_EBADINPUT;
        }
        if (depth == 0 && i > 0) {
            *reason = "text after the filter's closing ')'";
            return CERTAUTHZ_EBADINPUT;
        }
        if (c == '(') {
            depth++;
        }
        else if (c == ')') {
            depth--;
        }
        else if ((unsigned char)c < 0x20 || c == 0x7f) {
            *reason = "a control character in the filter";
            return CERTAUTHZ_EBADINPUT;
        }
        i++;
    }
    if (depth != 0) {
        *reason = "unbalanced '(' in the filter";
        return CERTAUTHZ_EBADINPUT;
    }
    if (!nph) {
        *reason = "the filter uses no placeholder: every certificate would "
                  "find the same entry (write one, as (mail={email}))";
        return CERTAUTHZ_EBADINPUT;
    }
    t->n = parts->nelts;
    t->parts = (part_t *)parts->elts;
    *pt = t;
    return APR_SUCCESS;
}

int certauthz_ldap_template_wants_der(const certauthz_ldap_template_t *t)
{
    return t->wants_der;
}

static void put_hh(apr_array_header_t *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char *d = apr_array_push(o);
    *d = '\\';
    *(char *)apr_array_push(o) = hex[c >> 4];
    *(char *)apr_array_push(o) = hex[c & 15];
}

static void put_escaped(apr_array_header_t *o, const char *s, apr_size_t len)
{
    for (apr_size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20
            || c == 0x7f)
            put_hh(o, c);
        else
            *(char *)apr_array_push(o) = (char)c;
    }
}

const char *certauthz_ldap_escape(const char *s, apr_size_t len, apr_pool_t *p)
{
    apr_array_header_t *o = apr_array_make(p, (int)len + 16, 1);
    put_escaped(o, s, len);
    *(char *)apr_array_push(o) = '\0';
    return o->elts;
}

/* The text a placeholder stands for, or NULL when the certificate has
 * none. */
static const char *ph_value(int ph, const certauthz_facts_t *f)
{
    if (ph < CERTAUTHZ_NTYPES)
        return f->of[ph].n ? f->of[ph].v[0].text : NULL;
    if (ph == CERTAUTHZ_NTYPES + EXTRA_ALTSEC_ISSUER_SERIAL) {
        const certauthz_values_t *a = &f->of[CERTAUTHZ_ALTSEC];
        for (int i = 0; i < a->n; i++)
            if (certauthz_altsec_form(a->v[i].text)
                == CERTAUTHZ_ALTSEC_ISSUER_SERIAL)
                return a->v[i].text;
    }
    return NULL;
}

static const char *ph_name(int ph)
{
    return ph < CERTAUTHZ_NTYPES ? certauthz_type_name(ph)
                                 : extra_names[ph - CERTAUTHZ_NTYPES];
}

const char *certauthz_ldap_filter(const certauthz_ldap_template_t *t,
                                  const certauthz_facts_t *facts,
                                  const unsigned char *der, apr_size_t der_len,
                                  const char **missing, apr_pool_t *p)
{
    apr_array_header_t *o = apr_array_make(p, 256, 1);

    for (int i = 0; i < t->n; i++) {
        const part_t *pt = &t->parts[i];
        if (pt->lit) {
            for (apr_size_t k = 0; k < pt->len; k++)
                *(char *)apr_array_push(o) = pt->lit[k];
        }
        else if (pt->ph == CERTAUTHZ_NTYPES + EXTRA_CERT_DER) {
            if (!der || !der_len) {
                *missing = ph_name(pt->ph);
                return NULL;
            }
            for (apr_size_t k = 0; k < der_len; k++)
                put_hh(o, der[k]);
        }
        else {
            const char *v = ph_value(pt->ph, facts);
            if (!v || !*v) {
                *missing = ph_name(pt->ph);
                return NULL;
            }
            put_escaped(o, v, strlen(v));
        }
    }
    *(char *)apr_array_push(o) = '\0';
    return o->elts;
}

/* ---- entry to identity ----------------------------------------------- */

/* The next value of mod_ldap's "; "-joined list at *s (advanced), from p.
 * The values are DNs: a ';' escaped by a '\\' is inside a DN value (RFC
 * 4514 escapes ';'), so it does not split. */
static const char *next_value(const char **s, apr_pool_t *p)
{
    const char *b = *s, *e = b;
    while (*e) {
        if (e[0] == ';' && e[1] == ' ') {
            /* count the backslashes before ';': odd = escaped */
            apr_size_t bs = 0;
            while (e - bs > b && e[-(long)bs - 1] == '\\')
                bs++;
            if (!(bs & 1))
                break;
        }
        e++;
    }
    *s = *e ? e + 2 : e;
    return apr_pstrmemdup(p, b, (apr_size_t)(e - b));
}

apr_status_t certauthz_ldap_identity(const char *user, const char *groups,
                                     int as_dn, const char **out_user,
                                     const char *const **out_groups,
                                     int *out_ngroups, const char **reason,
                                     apr_pool_t *p)
{
    apr_array_header_t *g;

    if (!user || !*user) {
        *reason = "the entry has no value of the user attribute";
        return CERTAUTHZ_EBADINPUT;
    }
    if (strstr(user, "; ")) {
        *reason = "the entry has several values of the user attribute";
        return CERTAUTHZ_EBADINPUT;
    }
    if (certauthz_has_control(user, strlen(user))
        || !certauthz_utf8_valid(user, strlen(user))) {
        *reason = "the user attribute's value holds a control character or "
                  "is not UTF-8";
        return CERTAUTHZ_EBADINPUT;
    }
    *out_user = apr_pstrdup(p, user);
    *out_groups = NULL;
    *out_ngroups = 0;
    if (!groups || !*groups)
        return APR_SUCCESS;

    g = apr_array_make(p, 4, sizeof(const char *));
    for (const char *s = groups; *s;) {
        const char *v = next_value(&s, p), *name = v;
        if (!as_dn) {
            certauthz_dn_t *dn;
            const char *why;
            int nattrs = 0;
            if (certauthz_dn_parse(&dn, v, strlen(v), &why, p) != APR_SUCCESS
                || !(name = certauthz_dn_first_value(dn, &nattrs))) {
                *reason = apr_psprintf(p, "a group value that is not a DN: %s",
                                       certauthz_log_escape(v, p));
                return CERTAUTHZ_EBADINPUT;
            }
            if (nattrs != 1) {
                *reason = apr_psprintf(p,
                                       "a group DN whose first RDN has "
                                       "several attributes: %s",
                                       certauthz_log_escape(v, p));
                return CERTAUTHZ_EBADINPUT;
            }
        }
        if (!*name || (!as_dn && strchr(name, ','))
            || certauthz_has_control(name, strlen(name))) {
            *reason = apr_psprintf(p,
                                   "a group name that is empty or holds ',' "
                                   "or a control character: %s",
                                   certauthz_log_escape(v, p));
            return CERTAUTHZ_EBADINPUT;
        }
        *(const char **)apr_array_push(g) = apr_pstrdup(p, name);
    }
    *out_groups = (const char *const *)g->elts;
    *out_ngroups = g->nelts;
    return APR_SUCCESS;
}

/* ---- the cache ------------------------------------------------------- */

typedef struct {
    apr_time_t expires;
    certauthz_ldresult_t r;
    const char *key;
    apr_size_t klen;
} entry_t;

struct certauthz_ldcache_t {
    apr_hash_t *h;
    int max;
};

static apr_status_t cache_cleanup(void *data)
{
    certauthz_ldcache_t *c = data;
    for (apr_hash_index_t *hi = apr_hash_first(NULL, c->h); hi;
         hi = apr_hash_next(hi))
        free(apr_hash_this_val(hi)); /* the hash goes with the pool */
    return APR_SUCCESS;
}

certauthz_ldcache_t *certauthz_ldcache_create(int max, apr_pool_t *p)
{
    certauthz_ldcache_t *c = apr_pcalloc(p, sizeof(*c));
    c->h = apr_hash_make(p);
    c->max = max > 0 ? max : 1;
    apr_pool_cleanup_register(p, c, cache_cleanup, apr_pool_cleanup_null);
    return c;
}

int certauthz_ldcache_count(const certauthz_ldcache_t *c)
{
    return (int)apr_hash_count(c->h);
}

static void drop(certauthz_ldcache_t *c, entry_t *e)
{
    apr_hash_set(c->h, e->key, (apr_ssize_t)e->klen, NULL);
    free(e);
}

int certauthz_ldcache_get(certauthz_ldcache_t *c, const char *key,
                          apr_time_t now, certauthz_ldresult_t *out,
                          apr_pool_t *p)
{
    entry_t *e = apr_hash_get(c->h, key, APR_HASH_KEY_STRING);
    const char **g;

    if (!e)
        return 0;
    if (e->expires <= now) {
        drop(c, e);
        return 0;
    }
    out->found = e->r.found;
    out->expires = e->expires;
    out->user = e->r.user ? apr_pstrdup(p, e->r.user) : NULL;
    out->ngroups = e->r.ngroups;
    g = e->r.ngroups ? apr_palloc(p, sizeof(*g) * (apr_size_t)e->r.ngroups)
                     : NULL;
    for (int i = 0; i < e->r.ngroups; i++)
        g[i] = apr_pstrdup(p, e->r.groups[i]);
    out->groups = g;
    return 1;
}

/* Make room for one more: expired entries go, then (still full) the one
 * that expires first. */
static void make_room(certauthz_ldcache_t *c, apr_time_t now)
{
    entry_t *first = NULL;
    apr_hash_index_t *hi;

    if ((int)apr_hash_count(c->h) < c->max)
        return;
    for (hi = apr_hash_first(NULL, c->h); hi;) {
        entry_t *e = apr_hash_this_val(hi);
        hi = apr_hash_next(hi); /* deleting the current entry is allowed */
        if (e->expires <= now)
            drop(c, e);
        else if (!first || e->expires < first->expires)
            first = e;
    }
    if ((int)apr_hash_count(c->h) >= c->max && first)
        drop(c, first);
}

void certauthz_ldcache_put(certauthz_ldcache_t *c, const char *key,
                           const certauthz_ldresult_t *r, apr_time_t now,
                           apr_time_t expires)
{
    apr_size_t klen = strlen(key) + 1, ulen = r->user ? strlen(r->user) + 1 : 0;
    apr_size_t size = sizeof(entry_t) + klen + ulen, gl = 0;
    entry_t *e, *old;
    char *s, **g;

    for (int i = 0; i < r->ngroups; i++)
        gl += strlen(r->groups[i]) + 1;
    size += sizeof(char *) * (apr_size_t)r->ngroups + gl;
    old = apr_hash_get(c->h, key, APR_HASH_KEY_STRING);
    if (old)
        drop(c, old);
    make_room(c, now);
    if (!(e = malloc(size)))
        return; /* not cached: the next request asks again */
    g = (char **)(e + 1);
    s = (char *)(g + r->ngroups);
    e->expires = expires;
    e->r.found = r->found;
    e->r.ngroups = r->ngroups;
    e->r.groups = (const char *const *)g;
    memcpy(s, key, klen);
    e->key = s;
    e->klen = klen - 1;
    s += klen;
    e->r.user = NULL;
    if (r->user) {
        memcpy(s, r->user, ulen);
        e->r.user = s;
        s += ulen;
    }
    for (int i = 0; i < r->ngroups; i++) {
        apr_size_t n = strlen(r->groups[i]) + 1;
        memcpy(s, r->groups[i], n);
        g[i] = s;
        s += n;
    }
    apr_hash_set(c->h, e->key, (apr_ssize_t)e->klen, e);
}
