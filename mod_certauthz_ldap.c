/*
 * mod_certauthz_ldap.c -- directory-backed identities (SPEC section 7,
 * "Directory-backed identities"; mod_certauthz_private.h,
 * "mod_certauthz_ldap.c"): the CertAuthzLDAP* directives, the lookup of a
 * certificate's entry through httpd's mod_ldap (its optional functions,
 * connection pool and search cache, the way mod_authnz_ldap reaches
 * them), this process's result cache, and the directory's fault log.
 *
 * A lookup: the filter from the template (every fact escaped as RFC 4515
 * says), this process's cache, else one search through mod_ldap:
 *   one entry      its user attribute and groups give the identity;
 *   none, several  unmapped (negative result, cached for the shorter TTL);
 *   an entry without a usable user attribute or with an unusable group:
 *                  unmapped, never a partial identity;
 *   anything else  (server down, timeout, referral, bind refused): an
 *                  error, not cached: the request is refused, and logged
 *                  once per burst.
 */
#include <string.h>

#include "apr_optional.h"

#include "http_ssl.h"
#include "util_ldap.h"

#include "certauthz_ldap.h"
#include "mod_certauthz_private.h"

/* One CertAuthzLDAP directive: set while the configuration is read,
 * read-only afterwards except for the fault log's atomics (per process). */
struct cz_ldap_search_t {
    const char *url; /* as written; NULL for CertAuthzLDAP Off */
    const char *host;
    int port;
    const char *basedn;
    int scope;
    char *attr;             /* the user attribute */
    const char *url_filter; /* the URL's filter, or NULL */
    int secure;             /* APR_LDAP_NONE, _SSL or _STARTTLS */
    const certauthz_ldap_template_t *tmpl;
    int wants_der;
    const char *where; /* FILE:LINE */
    const char *rule;  /* "ldap:URL" */
    /* the fault log */
    apr_uint32_t failing;     /* 1 while lookups fail */
    apr_uint32_t last_logged; /* apr_time_sec() of the last fault line */
    apr_uint32_t quiet;       /* faults not logged since */
};

static const cz_ldap_search_t search_off = {NULL};

/* seconds between two fault lines of one directive */
#define BURST_SECONDS 10
/* entries of this process's cache */
#define CACHE_MAX 10000

static APR_OPTIONAL_FN_TYPE(uldap_connection_find) * ld_find;
static APR_OPTIONAL_FN_TYPE(uldap_connection_close) * ld_close;
static APR_OPTIONAL_FN_TYPE(uldap_cache_getuserdn) * ld_getuserdn;

/* FILE:LINE of this configuration's first CertAuthzLDAP, or NULL */
static const char *first_where;

static certauthz_ldcache_t *cache;
static apr_thread_mutex_t *cache_lock;

static int retrieve_fns(void)
{
    ld_find = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_find);
    ld_close = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_close);
    ld_getuserdn = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_getuserdn);
    return ld_find && ld_close && ld_getuserdn;
}

/* ---- configuration ---------------------------------------------------- */

static cz_ldap_conf_t *conf_of(void *dcfg, apr_pool_t *p)
{
    cz_dir_conf_t *d = dcfg;
    if (!d->ldap) {
        d->ldap = apr_pcalloc(p, sizeof(*d->ldap));
        d->ldap->groups_dn = CZ_UNSET;
        d->ldap->ttl = CZ_UNSET;
        d->ldap->negttl = CZ_UNSET;
    }
    return d->ldap;
}

cz_ldap_conf_t *cz_ldap_merge(apr_pool_t *p, const cz_ldap_conf_t *base,
                              const cz_ldap_conf_t *add)
{
    cz_ldap_conf_t *l;

    if (!base || !add)
        return (cz_ldap_conf_t *)(add ? add : base);
    l = apr_pcalloc(p, sizeof(*l));
#define PICK_(f, unset) l->f = add->f != unset ? add->f : base->f
    PICK_(search, NULL);
    PICK_(groups, NULL);
    PICK_(groups_dn, CZ_UNSET);
    PICK_(ttl, CZ_UNSET);
    PICK_(negttl, CZ_UNSET);
    PICK_(binddn, NULL);
    PICK_(bindpw, NULL);
#undef PICK_
    return l;
}

int cz_ldap_active(const cz_ldap_conf_t *l)
{
    return l && l->search && l->search->url;
}

static int ttl_of(const cz_ldap_conf_t *l)
{
    return l->ttl == CZ_UNSET ? CZ_LDAP_DEFAULT_TTL : l->ttl;
}

/* negative results: CertAuthzLDAPCacheTTL's second number, else the
 * shorter of the TTL and 10 seconds */
static int negttl_of(const cz_ldap_conf_t *l)
{
    int ttl = ttl_of(l);
    if (l->negttl != CZ_UNSET)
        return l->negttl;
    return ttl < CZ_LDAP_DEFAULT_NEGTTL ? ttl : CZ_LDAP_DEFAULT_NEGTTL;
}

int cz_ldap_same(const cz_ldap_conf_t *a, const cz_ldap_conf_t *b)
{
    return a->search == b->search && a->groups == b->groups
           && a->groups_dn == b->groups_dn && a->binddn == b->binddn
           && a->bindpw == b->bindpw && ttl_of(a) == ttl_of(b)
           && negttl_of(a) == negttl_of(b);
}

const char *cz_ldap_rule(const cz_ldap_conf_t *l)
{
    return l->search->rule;
}

static const char *where_of(cmd_parms *cmd)
{
    return cmd->directive
               ? apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                              cmd->directive->line_num)
               : "?";
}

const char *cz_ldap_set_search(cmd_parms *cmd, void *dcfg, const char *url,
                               const char *flt, const char *mode)
{
    cz_ldap_search_t *s;
    apr_ldap_url_desc_t *lud = NULL;
    apr_ldap_err_t *err = NULL;
    certauthz_ldap_template_t *t;
    const char *why;

    if (!strcasecmp(url, "Off") && !flt) {
        conf_of(dcfg, cmd->pool)->search = &search_off;
        return NULL;
    }
    if (!flt)
        return "CertAuthzLDAP needs a URL and a FILTER (or Off)";
    s = apr_pcalloc(cmd->pool, sizeof(*s));
    if (apr_ldap_url_parse(cmd->pool, url, &lud, &err) != 0 || !lud)
        return apr_psprintf(cmd->pool, "CertAuthzLDAP: bad URL '%s': %s", url,
                            err && err->reason ? err->reason : "unparsable");
    if (!lud->lud_host || !*lud->lud_host || strchr(lud->lud_host, ' '))
        return apr_psprintf(cmd->pool,
                            "CertAuthzLDAP: URL '%s' must name one host", url);
    if (!lud->lud_dn || !*lud->lud_dn)
        return apr_psprintf(cmd->pool,
                            "CertAuthzLDAP: URL '%s' needs a base DN "
                            "(ldap://HOST/BASE?ATTRIBUTE)",
                            url);
    if (lud->lud_attrs && lud->lud_attrs[0] && lud->lud_attrs[1])
        return apr_psprintf(cmd->pool,
                            "CertAuthzLDAP: URL '%s' names more than one "
                            "attribute: the user attribute is one (groups "
                            "come from CertAuthzLDAPGroups)",
                            url);
    s->url = apr_pstrdup(cmd->pool, url);
    s->host = lud->lud_host;
    s->secure =
        !strcasecmp(lud->lud_scheme, "ldaps") ? APR_LDAP_SSL : APR_LDAP_NONE;
    s->port =
        lud->lud_port ? lud->lud_port : (s->secure == APR_LDAP_SSL ? 636 : 389);
    s->basedn = lud->lud_dn;
    s->scope = lud->lud_scope == LDAP_SCOPE_BASE       ? LDAP_SCOPE_BASE
               : lud->lud_scope == LDAP_SCOPE_ONELEVEL ? LDAP_SCOPE_ONELEVEL
                                                       : LDAP_SCOPE_SUBTREE;
    s->attr = lud->lud_attrs && lud->lud_attrs[0] ? lud->lud_attrs[0] : "uid";
    if (lud->lud_filter && *lud->lud_filter)
        s->url_filter =
            lud->lud_filter[0] == '('
                ? lud->lud_filter
                : apr_pstrcat(cmd->pool, "(", lud->lud_filter, ")", NULL);
    if (mode) {
        if (strcasecmp(mode, "STARTTLS"))
            return "CertAuthzLDAP: the third argument can only be STARTTLS";
        if (s->secure == APR_LDAP_SSL)
            return "CertAuthzLDAP: STARTTLS with an ldaps:// URL: choose one";
        s->secure = APR_LDAP_STARTTLS;
    }
    if (certauthz_ldap_template_parse(&t, flt, &why, cmd->pool) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "CertAuthzLDAP: bad filter '%s': %s",
                            flt, why);
    s->tmpl = t;
    s->wants_der = certauthz_ldap_template_wants_der(t);
    s->where = where_of(cmd);
    s->rule = apr_pstrcat(cmd->pool, "ldap:", url, NULL);
    if (!first_where)
        first_where = s->where; /* mod_ldap may be loaded after this line */
    conf_of(dcfg, cmd->pool)->search = s;
    return NULL;
}

const char *cz_ldap_set_groups(cmd_parms *cmd, void *dcfg, const char *attr,
                               const char *form)
{
    cz_ldap_conf_t *l = conf_of(dcfg, cmd->pool);

    if (!strcasecmp(attr, "None") && !form) {
        l->groups = "";
        l->groups_dn = 0;
        return NULL;
    }
    if (!*attr || strpbrk(attr, " ,()=*\\"))
        return "CertAuthzLDAPGroups: ATTRIBUTE must be an attribute name";
    if (form && strcasecmp(form, "dn"))
        return "CertAuthzLDAPGroups: the second argument can only be 'dn' "
               "(keep each group's whole DN)";
    l->groups = apr_pstrdup(cmd->pool, attr);
    l->groups_dn = form ? 1 : 0;
    return NULL;
}

static int seconds(const char *arg, int *out)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);
    if (!*arg || *end || v < 0 || v > 86400)
        return 0;
    *out = (int)v;
    return 1;
}

const char *cz_ldap_set_ttl(cmd_parms *cmd, void *dcfg, const char *ttl,
                            const char *neg)
{
    cz_ldap_conf_t *l = conf_of(dcfg, cmd->pool);

    if (!seconds(ttl, &l->ttl) || (neg && !seconds(neg, &l->negttl)))
        return "CertAuthzLDAPCacheTTL takes SECONDS [NEGATIVE-SECONDS], "
               "each 0 to 86400";
    return NULL;
}

const char *cz_ldap_set_bind(cmd_parms *cmd, void *dcfg, const char *arg)
{
    cz_ldap_conf_t *l = conf_of(dcfg, cmd->pool);
    const char *v = apr_pstrdup(cmd->pool, arg);

    if (cmd->info)
        l->bindpw = v;
    else
        l->binddn = v;
    return NULL;
}

/* ---- the fault log ------------------------------------------------------
 * A directory that fails fails for every request: one line per directive
 * per BURST_SECONDS in each process (with the count of faults not logged
 * since), and one line when it answers again. */
static void fault(request_rec *r, cz_ldap_search_t *s, int level,
                  const char *what)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&s->last_logged);
    apr_uint32_t quiet;

    if (level <= APLOG_ERR)
        apr_atomic_set32(&s->failing, 1);
    if (last && now - last < BURST_SECONDS) {
        apr_atomic_inc32(&s->quiet);
        return;
    }
    if (apr_atomic_cas32(&s->last_logged, now, last) != last) {
        apr_atomic_inc32(&s->quiet);
        return;
    }
    quiet = apr_atomic_xchg32(&s->quiet, 0);
    ap_log_rerror(APLOG_MARK, level, 0, r,
                  "CERTAUTHZ0051: directory %s (%s): %s%s", s->url, s->where,
                  what,
                  quiet ? apr_psprintf(r->pool,
                                       " (%u more since the last "
                                       "line)",
                                       quiet)
                        : "");
}

static void answered(request_rec *r, cz_ldap_search_t *s)
{
    if (apr_atomic_read32(&s->failing) && apr_atomic_xchg32(&s->failing, 0)) {
        apr_uint32_t quiet = apr_atomic_xchg32(&s->quiet, 0);
        apr_atomic_set32(&s->last_logged, 0);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "CERTAUTHZ0052: directory %s (%s) answers again "
                      "(%u faults not logged)",
                      s->url, s->where, quiet);
    }
}

/* ---- a lookup ------------------------------------------------------------ */

static void count_result(cz_dir_e e)
{
    cz_count_dir(e == CZ_DIR_FOUND       ? CZ_DIRCNT_FOUND
                 : e == CZ_DIR_NOT_FOUND ? CZ_DIRCNT_NOT_FOUND
                                         : CZ_DIRCNT_ERRORS,
                 1);
}

/* util_ldap.c's value of ChaseReferrals for Off (not in util_ldap.h; On
 * is 1, LDAPReferrals default another value). */
#define CHASE_OFF 0

/* The connection's referral setting: the field mod_ldap opens it with and,
 * when it is open, the handle's option as mod_ldap would have set it --
 * off, or on (also for LDAPReferrals default: OpenLDAP's default is on).
 * LDAP_OPT_ON is the address of a libldap variable, which this module must
 * not reference (it loads without mod_ldap); any other non-NULL pointer
 * means on as well. */
static void set_referrals(request_rec *r, util_ldap_connection_t *ldc,
                          int chase)
{
    static const int on = 1;

    ldc->ChaseReferrals = chase;
    if (ldc->ldap) {
        apr_ldap_err_t *lerr = NULL;
        apr_ldap_set_option(r->pool, ldc->ldap, APR_LDAP_OPT_REFERRALS,
                            chase == CHASE_OFF ? NULL : (const void *)&on,
                            &lerr);
    }
}

/* One search through mod_ldap. */
static cz_dir_e search(request_rec *r, const cz_ldap_conf_t *l,
                       const char *filter, certauthz_ldresult_t *out)
{
    cz_ldap_search_t *s = (cz_ldap_search_t *)l->search;
    int with_groups = l->groups && *l->groups;
    char *attrs[3] = {s->attr, with_groups ? (char *)l->groups : NULL, NULL};
    const char *dn = NULL, **vals = NULL, *why;
    const char *const *groups;
    util_ldap_connection_t *ldc;
    apr_time_t t0 = apr_time_now();
    int rc, ngroups, chase, several, none;
    cz_dir_e e;

    cz_count_dir(CZ_DIRCNT_LOOKUPS, 1);
    /* aliases are not followed (LDAP_DEREF_NEVER): an alias entry must not
     * lead the search out of the base */
    ldc = ld_find(r, s->host, s->port, l->binddn, l->bindpw, never, s->secure);
    if (!ldc) {
        cz_count_dir(CZ_DIRCNT_ERRORS, 1);
        fault(r, s, APLOG_ERR, "mod_ldap gave no connection: refused");
        return CZ_DIR_ERROR;
    }
    /* referrals are never chased: an entry must come from this directory.
     * The pooled connection may serve mod_authnz_ldap too: its setting
     * (LDAPReferrals) is put back after the search. */
    chase = ldc->ChaseReferrals;
    set_referrals(r, ldc, CHASE_OFF);
    /* mod_ldap's search cache is keyed by this string, then the filter */
    rc = ld_getuserdn(r, ldc,
                      apr_pstrcat(r->pool, s->url, with_groups ? "#" : "",
                                  with_groups ? l->groups : "",
                                  l->groups_dn > 0 ? ";dn" : "", NULL),
                      s->basedn, s->scope, attrs, filter, &dn, &vals);
    why = ldc->reason ? apr_pstrdup(r->pool, ldc->reason) : "-";
    set_referrals(r, ldc, chase);
    ld_close(ldc);
    cz_count_dir(CZ_DIRCNT_USEC, (apr_uint64_t)(apr_time_now() - t0));
    memset(out, 0, sizeof(*out));
    /* mod_ldap says "no such object" for none or several entries (its
     * reason tells them apart) and passes on the server's own, a base DN
     * that does not exist: that is a configuration error, not "none" */
    several =
        rc == LDAP_NO_SUCH_OBJECT && !strncmp(why, "User is not unique", 18);
    none =
        several
        || (rc == LDAP_NO_SUCH_OBJECT && !strncmp(why, "User not found", 14));
    if (none) {
        answered(r, s);
        if (several)
            fault(r, s, APLOG_WARNING,
                  apr_psprintf(r->pool, "several entries match %s: unmapped",
                               certauthz_log_escape(filter, r->pool)));
        else
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "CERTAUTHZ0053: directory %s: no entry for %s (%s)",
                          s->url, certauthz_log_escape(filter, r->pool), why);
        e = CZ_DIR_NOT_FOUND;
    }
    else if (rc != LDAP_SUCCESS) {
        fault(r, s, APLOG_ERR,
              apr_psprintf(r->pool,
                           "search failed: %s (LDAP result %d): "
                           "refused",
                           why, rc));
        e = CZ_DIR_ERROR;
    }
    else if (certauthz_ldap_identity(
                 vals ? vals[0] : NULL, vals && with_groups ? vals[1] : NULL,
                 l->groups_dn > 0, &out->user, &groups, &ngroups, &why, r->pool)
             != APR_SUCCESS) {
        answered(r, s);
        fault(r, s, APLOG_WARNING,
              apr_psprintf(r->pool, "entry %s: %s: unmapped",
                           certauthz_log_escape(dn ? dn : "-", r->pool), why));
        e = CZ_DIR_NOT_FOUND;
    }
    else {
        answered(r, s);
        out->found = 1;
        out->groups = groups;
        out->ngroups = ngroups;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "CERTAUTHZ0054: directory %s: %s is user '%s'", s->url,
                      certauthz_log_escape(dn, r->pool),
                      certauthz_log_escape(out->user, r->pool));
        e = CZ_DIR_FOUND;
    }
    count_result(e);
    return e;
}

cz_dir_e cz_ldap_lookup(request_rec *r, const cz_ldap_conf_t *l,
                        const certauthz_facts_t *facts,
                        certauthz_ldresult_t *out, apr_time_t *expires)
{
    const cz_ldap_search_t *s = l->search;
    const unsigned char *der = NULL;
    apr_size_t der_len = 0;
    const char *filter, *missing = NULL, *key;
    apr_time_t now = apr_time_now();
    cz_dir_e e;
    int hit = 0;

    memset(out, 0, sizeof(*out));
    if (!ld_find) {
        cz_count_dir(CZ_DIRCNT_ERRORS, 1);
        return CZ_DIR_ERROR; /* cannot happen: check_config refused that */
    }
    if (s->wants_der)
        der = cz_pem_der(r->pool,
                         ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                                           "SSL_CLIENT_CERT"),
                         &der_len);
    filter =
        certauthz_ldap_filter(s->tmpl, facts, der, der_len, &missing, r->pool);
    if (!filter) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "CERTAUTHZ0053: directory %s: the certificate has no "
                      "%s: not searched",
                      s->url, missing);
        *expires = now + apr_time_from_sec(negttl_of(l));
        return CZ_DIR_NOT_FOUND;
    }
    if (s->url_filter)
        filter = apr_pstrcat(r->pool, "(&", s->url_filter, filter, ")", NULL);
    /* a setting's answers are its own: another TTL keeps them another
     * time (CertAuthzLDAPCacheTTL 0 is never answered from the cache) */
    key = apr_psprintf(r->pool, "%s\n%s\n%s%s\n%d/%d\n%s", s->url,
                       l->binddn ? l->binddn : "", l->groups ? l->groups : "",
                       l->groups_dn > 0 ? ";dn" : "", ttl_of(l), negttl_of(l),
                       filter);
    if (cache) {
        apr_thread_mutex_lock(cache_lock);
        hit = certauthz_ldcache_get(cache, key, now, out, r->pool);
        apr_thread_mutex_unlock(cache_lock);
    }
    if (hit) {
        cz_count_dir(CZ_DIRCNT_HITS, 1);
        *expires = out->expires;
        return out->found ? CZ_DIR_FOUND : CZ_DIR_NOT_FOUND;
    }
    e = search(r, l, filter, out);
    if (e == CZ_DIR_ERROR)
        return e; /* never cached: the next request tries again */
    *expires =
        now + apr_time_from_sec(e == CZ_DIR_FOUND ? ttl_of(l) : negttl_of(l));
    if (cache && *expires > now) {
        apr_thread_mutex_lock(cache_lock);
        certauthz_ldcache_put(cache, key, out, now, *expires);
        apr_thread_mutex_unlock(cache_lock);
    }
    return e;
}

/* ---- lifecycle -------------------------------------------------------- */

void cz_ldap_pre_config(void)
{
    first_where = NULL;
}

/* After the whole configuration was read (httpd -t too): whatever order
 * the LoadModule lines came in (Debian's a2enmod loads certauthz before
 * ldap), mod_ldap's functions are there now, or never will be. */
int cz_ldap_check_config(server_rec *s)
{
    if (retrieve_fns() || !first_where)
        return OK;
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, s,
                 "CERTAUTHZ0050: %s: CertAuthzLDAP needs mod_ldap: load it "
                 "(LoadModule ldap_module, a2enmod ldap)",
                 first_where);
    return HTTP_INTERNAL_SERVER_ERROR;
}

void cz_ldap_post_config(void)
{
    retrieve_fns();
}

void cz_ldap_child_init(apr_pool_t *pchild)
{
    if (!ld_find)
        return; /* no mod_ldap: no directive can use it */
    if (apr_thread_mutex_create(&cache_lock, APR_THREAD_MUTEX_DEFAULT, pchild)
        == APR_SUCCESS)
        cache = certauthz_ldcache_create(CACHE_MAX, pchild);
}
