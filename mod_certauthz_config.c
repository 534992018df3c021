/*
 * mod_certauthz_config.c -- the directives and the configuration records
 * (mod_certauthz_private.h, "mod_certauthz_config.c").
 *
 * Lifecycle: a record per section is created while httpd reads the
 * configuration (create_*), merged parent -> child (merge_*: a field set in
 * the child wins, else the parent's; the server's per-directory record is
 * the base of every merge, so directives at server and vhost level reach
 * every directory), then frozen: read by any thread without a lock.
 * .htaccess records are created and merged per request, from its pool.
 */
#include <string.h>

#include "http_core.h"

#include "mod_certauthz_private.h"

/* The facts CertAuthzUnmapped may name (docs/reference.md,
 * CertAuthzUnmapped): facts whose (first) value makes sense as a user. */
static const certauthz_type_e unmapped_types[] = {
    CERTAUTHZ_CN, CERTAUTHZ_EMAIL, CERTAUTHZ_UPN, CERTAUTHZ_DN, CERTAUTHZ_URI};
#define N_UNMAPPED (sizeof(unmapped_types) / sizeof(unmapped_types[0]))

void *cz_create_dir_conf(apr_pool_t *p, char *dir)
{
    cz_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    d->unmapped = CZ_UNSET;
    d->setenv = CZ_UNSET;
    d->audit = CZ_UNSET;
    d->scope = dir ? apr_pstrdup(p, dir) : "server config";
    return d;
}

void *cz_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    cz_dir_conf_t *base = basev, *add = addv;
    cz_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));

    d->map = add->map ? add->map : base->map;
    d->scope = add->map ? add->scope : base->scope;
    d->unmapped = add->unmapped != CZ_UNSET ? add->unmapped : base->unmapped;
    d->setenv = add->setenv != CZ_UNSET ? add->setenv : base->setenv;
    d->audit = add->audit != CZ_UNSET ? add->audit : base->audit;
    d->ldap = cz_ldap_merge(p, base->ldap, add->ldap);
    d->forward = add->forward ? add->forward : base->forward;
    d->shadow = add->shadow ? add->shadow : base->shadow;
    return d;
}

void *cz_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    cz_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->reload_interval = CZ_UNSET;
    return c;
}

void *cz_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    cz_srv_conf_t *base = basev, *add = addv;
    cz_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));
    c->reload_interval = add->reload_interval != CZ_UNSET
                             ? add->reload_interval
                             : base->reload_interval;
    /* a virtual host removes the main server's names and its own */
    if (base->strip && add->strip)
        c->strip = apr_array_append(p, base->strip, add->strip);
    else
        c->strip = add->strip ? add->strip : base->strip;
    return c;
}

const cz_dir_conf_t *cz_dir_conf(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &certauthz_module);
}

int cz_conf_setenv(const cz_dir_conf_t *d)
{
    return d->setenv != 0; /* default On */
}

int cz_conf_audit(const cz_dir_conf_t *d)
{
    return d->audit == CZ_UNSET ? CZ_AUDIT_DENY : d->audit;
}

int cz_conf_unmapped(const cz_dir_conf_t *d)
{
    return d->unmapped == CZ_UNSET || d->unmapped == CZ_UNMAPPED_DENY
               ? -1
               : d->unmapped;
}

int cz_server_interval(const server_rec *s)
{
    const cz_srv_conf_t *c =
        ap_get_module_config(s->module_config, &certauthz_module);
    return c->reload_interval == CZ_UNSET ? CZ_DEFAULT_RELOAD_INTERVAL
                                          : c->reload_interval;
}

/* ---- directives ------------------------------------------------------- */

static const char *set_map_file(cmd_parms *cmd, void *dcfg, const char *arg)
{
    cz_dir_conf_t *d = dcfg;
    const char *path = ap_server_root_relative(cmd->pool, arg);

    if (!path)
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": invalid path '", arg,
                           "'", NULL);
    /* the interval counts for a file first named in an .htaccess file; for
     * the configuration's own files post_config sets it.  cmd->info set:
     * CertAuthzShadowMapFile, the same kind of map, another use. */
    return cz_map_get(cmd->info ? &d->shadow : &d->map, &cz_source_file, path,
                      cmd->server, cz_server_interval(cmd->server), cmd->pool);
}

static const char *set_reload_interval(cmd_parms *cmd, void *dcfg,
                                       const char *arg)
{
    cz_srv_conf_t *c =
        ap_get_module_config(cmd->server->module_config, &certauthz_module);
    char *end;
    apr_int64_t v;
    (void)dcfg;

    v = apr_strtoi64(arg, &end, 10);
    if (!*arg || *end || v < 0 || v > 86400 * 365)
        return "CertAuthzReloadInterval must be a number of seconds "
               "(0 = reload only at restart)";
    c->reload_interval = (int)v;
    return NULL;
}

static const char *set_unmapped(cmd_parms *cmd, void *dcfg, const char *arg)
{
    cz_dir_conf_t *d = dcfg;
    char *lower = apr_pstrdup(cmd->temp_pool, arg);
    const char *names = "Deny";
    int t;

    if (!strcasecmp(arg, "Deny")) {
        d->unmapped = CZ_UNMAPPED_DENY;
        return NULL;
    }
    certauthz_ascii_lower(lower, strlen(lower));
    t = certauthz_type_lookup(lower, strlen(lower));
    for (size_t i = 0; i < N_UNMAPPED; i++) {
        if (t == (int)unmapped_types[i]) {
            d->unmapped = t;
            return NULL;
        }
        names = apr_pstrcat(cmd->temp_pool, names, ", ",
                            certauthz_type_name(unmapped_types[i]), NULL);
    }
    return apr_pstrcat(cmd->pool, "CertAuthzUnmapped must be one of ", names,
                       " (in any case)", NULL);
}

static const char *set_audit(cmd_parms *cmd, void *dcfg, const char *arg)
{
    cz_dir_conf_t *d = dcfg;
    (void)cmd;

    if (!strcasecmp(arg, "Off"))
        d->audit = CZ_AUDIT_OFF;
    else if (!strcasecmp(arg, "Deny"))
        d->audit = CZ_AUDIT_DENY;
    else if (!strcasecmp(arg, "All"))
        d->audit = CZ_AUDIT_ALL;
    else
        return "CertAuthzAudit must be Off, Deny or All";
    return NULL;
}

static const char *set_setenv(cmd_parms *cmd, void *dcfg, int on)
{
    (void)cmd;
    ((cz_dir_conf_t *)dcfg)->setenv = on;
    return NULL;
}

const command_rec cz_cmds[] = {
    AP_INIT_TAKE1("CertAuthzMapFile", set_map_file, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
                  "map file (relative to ServerRoot) giving users and groups "
                  "to client certificates"),
    AP_INIT_TAKE1("CertAuthzReloadInterval", set_reload_interval, NULL,
                  RSRC_CONF,
                  "seconds between checks for a changed map file "
                  "(0 = only at restart)"),
    AP_INIT_TAKE1("CertAuthzUnmapped", set_unmapped, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "user for an unmapped certificate under AuthType "
                  "Certificate: Deny, CN, Email, UPN, DN or URI"),
    AP_INIT_FLAG("CertAuthzSetEnv", set_setenv, NULL, RSRC_CONF | ACCESS_CONF,
                 "export CERTAUTHZ_* variables to the request environment"),
    AP_INIT_TAKE1("CertAuthzAudit", set_audit, NULL, RSRC_CONF | ACCESS_CONF,
                  "log decisions: Off, Deny or All"),
    AP_INIT_TAKE1("CertAuthzShadowMapFile", set_map_file, "shadow",
                  RSRC_CONF | ACCESS_CONF,
                  "a candidate map compared with every decision here, "
                  "never changing it (disagreements: CERTAUTHZ0110)"),
    AP_INIT_ITERATE("CertAuthzForward", cz_forward_set, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "request headers for a backend: Client-Cert, "
                    "Client-Cert-Chain, X-Forwarded-Client-Cert[=FIELD,...], "
                    "User[=NAME], Groups[=NAME], or Off"),
    AP_INIT_TAKE123("CertAuthzLDAP", cz_ldap_set_search, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "directory for certificates no map rule maps: URL "
                    "(ldap[s]://HOST[:PORT]/BASE?USERATTR[?SCOPE?FILTER]) "
                    "FILTER (with {fact} placeholders) [STARTTLS], or Off"),
    AP_INIT_TAKE12("CertAuthzLDAPGroups", cz_ldap_set_groups, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "attribute of the entry giving its groups (e.g. memberOf) "
                   "[dn: keep whole DNs], or None"),
    AP_INIT_TAKE12("CertAuthzLDAPCacheTTL", cz_ldap_set_ttl, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "seconds a directory answer is kept (default 60) "
                   "[seconds for a negative one, default 10]"),
    AP_INIT_TAKE1("CertAuthzLDAPBindDN", cz_ldap_set_bind, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "DN the directory searches bind as (default: anonymous)"),
    AP_INIT_TAKE1("CertAuthzLDAPBindPassword", cz_ldap_set_bind, "pw",
                  RSRC_CONF | ACCESS_CONF, "password of CertAuthzLDAPBindDN"),
    {NULL}};
