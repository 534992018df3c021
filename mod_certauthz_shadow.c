/*
 * mod_certauthz_shadow.c -- shadow maps (SPEC section 7, "Shadow maps";
 * mod_certauthz_private.h, "mod_certauthz_shadow.c"): a candidate map,
 * CertAuthzShadowMapFile, resolved beside the real decision and compared
 * with it, never changing it.  Each disagreement is one CERTAUTHZ0110
 * line and one count; every comparison is counted.
 *
 * The candidate is a map like any other (registered, reloaded, shared as
 * an image); a request holds one version of it, as it does of the real
 * map.  It is compared with the identity the request got -- from the real
 * map, or from the directory when the map gave none -- so it can stand in
 * for either.  Where no CertAuthzShadowMapFile applies nothing here runs.
 */
#include "mod_certauthz_private.h"

/* the counters' rows are certauthz_diff_e's values */
typedef char shcnt_rows_follow_diff
    [((int)CZ_SHCNT_AGREE == (int)CERTAUTHZ_SAME
      && (int)CZ_SHCNT_OUTCOME == (int)CERTAUTHZ_DIFF_OUTCOME
      && (int)CZ_SHCNT_USER == (int)CERTAUTHZ_DIFF_USER
      && (int)CZ_SHCNT_GROUPS == (int)CERTAUTHZ_DIFF_GROUPS)
         ? 1
         : -1];

void cz_shadow_compare(request_rec *r, const cz_dir_conf_t *d,
                       const cz_req_t *st)
{
    apr_pool_t *p = r->pool;
    cz_version_t *ver;
    certauthz_identity_t sid;
    const certauthz_identity_t *id = &st->id;
    cz_shcnt_e kind;

    if (!d->shadow || st->state != CZ_CERT_OK)
        return;
    ver = cz_version_take(d->shadow);
    apr_pool_cleanup_register(p, ver, cz_version_give, apr_pool_cleanup_null);
    certauthz_map_resolve(&sid, ver->map, st->facts, p);
    /* the counters' rows are in certauthz_diff_e's order */
    kind = (cz_shcnt_e)certauthz_identity_compare(id, &sid);
    cz_count_shadow(kind);
    if (kind == CZ_SHCNT_AGREE)
        return;
#define V(x) certauthz_audit_value((x), p)
#define GROUPS(i)                                                              \
    ((i)->outcome == CERTAUTHZ_MAPPED && (i)->ngroups                          \
         ? certauthz_identity_groups((i), p)                                   \
         : NULL)
    ap_log_rerror(
        APLOG_MARK, APLOG_NOTICE, 0, r,
        "CERTAUTHZ0110: shadow=\"%s\" outcome=\"%s\" user=\"%s\" "
        "groups=\"%s\" rule=\"%s\" shadow_outcome=\"%s\" shadow_user=\"%s\" "
        "shadow_groups=\"%s\" shadow_rule=\"%s\" sha256=\"%s\" uri=\"%s\" "
        "map_sha256=\"%s\" shadow_map_sha256=\"%s\" "
        "shadow_generation=\"%s\"",
        cz_shadow_kind_name(kind), certauthz_outcome_name(id->outcome),
        V(id->outcome == CERTAUTHZ_MAPPED ? id->user : NULL), V(GROUPS(id)),
        V(cz_rule_at(st, p)), certauthz_outcome_name(sid.outcome),
        V(sid.outcome == CERTAUTHZ_MAPPED ? sid.user : NULL), V(GROUPS(&sid)),
        V(sid.rule ? certauthz_rule_where(ver->map, sid.rule, p) : NULL),
        V(cz_fact(st, CERTAUTHZ_SHA256)), V(r->uri),
        V(st->ver ? certauthz_map_sha256(st->ver->map) : NULL),
        V(certauthz_map_sha256(ver->map)), V(apr_itoa(p, (int)ver->gen)));
#undef GROUPS
#undef V
}
