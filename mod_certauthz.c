/*
 * mod_certauthz -- authorization by verified client certificate.
 *
 * The httpd glue is split by concern (mod_certauthz_private.h lists the
 * files and what each owns); this file holds the module record, the hooks
 * and the lifecycle.  Facts, DNs, maps, matching and the file-change
 * policy are the pure core (src/, include/: no httpd header).
 *
 * Decision table (every cert-* provider and AuthType Certificate):
 *
 *   certificate                  cert-user/group/mapped  other cert-*     AuthType Certificate
 *   ---------------------------  ----------------------  ---------------  ------------------------
 *   none (SSL_CLIENT_VERIFY NONE) denied                  denied           403
 *   not verified (GENEROUS,       denied                  denied           403
 *     FAILED:*)
 *   matches a deny rule of the    the request is refused (403) in the access phase, whatever
 *     map in scope                the Require lines say (so Require not cannot rescue it)
 *   no rule maps it               denied                  by its fact      CertAuthzUnmapped: 403
 *                                                                           or user = that fact
 *   a rule maps it                by user/groups          by its fact      user = mapped user
 *   no rule maps it, CertAuthzLDAP in scope (mod_certauthz_ldap.c):
 *     its one usable entry        by user/groups          by its fact      user = entry's user
 *     no entry, several, unusable as "no rule maps it"
 *     the directory cannot answer the request is refused in the access phase: 503 under
 *                                 AuthType Certificate, else 403 (Require not must not grant)
 *
 * Only SSL_CLIENT_VERIFY == "SUCCESS" counts as verified, and a resumed
 * session's certificate must also verify against the serving vhost's
 * store (mod_certauthz_request.c).  "Denied" is
 * AUTHZ_DENIED, never AUTHZ_DENIED_NO_USER, so refusals are 403, not 401.
 * AuthType Certificate sets r->user in the access_checker phase (after
 * mod_ssl's, which may renegotiate), so mod_authz_core decides Require
 * user/group/valid-user in its user-less pass and refuses with 403.
 */
#include "mod_certauthz_private.h"

#include "apr_optional_hooks.h"
#include "http_core.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_ssl.h"
#include "mod_auth.h"
#include "mod_ssl_openssl.h"
#include "mod_status.h"

/* ---- lifecycle -------------------------------------------------------------
 * pre_config: a new, empty map registry for this reading of the
 *   configuration (the directives fill it: maps are loaded when named);
 * post_config: each map's reload interval from the servers naming it, the
 *   load summaries, the shared decision counters (not in the first, dry
 *   run of the configuration);
 * check_config: mod_ldap is loaded wherever CertAuthzLDAP is (httpd -t too);
 * child_init: the registry becomes thread-safe, the reload thread starts,
 *   the directory's process cache is made. */

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    cz_maps_pre_config(pconf);
    cz_ldap_pre_config();
    return OK;
}

static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    return cz_ldap_check_config(s);
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    cz_status_post_config(pconf);
    cz_maps_post_config(s, ptemp);
    cz_ldap_post_config();
    return OK;
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    cz_maps_child_init(p, s);
    cz_ldap_child_init(p);
}

static void register_hooks(apr_pool_t *p)
{
    static const char *const after_ssl[] = {"mod_ssl.c", NULL};

    cz_register_providers(p);
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, pre_handshake, cz_pre_handshake, NULL, NULL,
                      APR_HOOK_MIDDLE);
    /* after mod_ssl's access checker, which may renegotiate */
    ap_hook_check_access(cz_access_check, after_ssl, NULL, APR_HOOK_LAST,
                         AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authn(cz_authn_check, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(cz_note_auth_failure, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_fixups(cz_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    /* before any other module reads the request's headers */
    ap_hook_post_read_request(cz_forward_post_read, NULL, NULL,
                              APR_HOOK_REALLY_FIRST);
    ap_hook_fixups(cz_forward_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, cz_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA certauthz_module = {STANDARD20_MODULE_STUFF,
                                                  cz_create_dir_conf,
                                                  cz_merge_dir_conf,
                                                  cz_create_srv_conf,
                                                  cz_merge_srv_conf,
                                                  cz_cmds,
                                                  register_hooks
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                                                  ,
                                                  AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
