/*
 * mod_certauthz_authz.c -- the Require cert-* providers, AuthType
 * Certificate and the CERTAUTHZ_* environment (mod_certauthz_private.h,
 * "mod_certauthz_authz.c").  What each grants is the decision table in
 * mod_certauthz.c's header comment.
 */
#include <string.h>

#include "ap_provider.h"
#include "http_core.h"
#include "http_ssl.h"
#include "mod_auth.h"

#include "mod_certauthz_private.h"

/* ---- Require providers -----------------------------------------------
 * One engine, one table: each row names the provider and what it compares.
 */
typedef enum {
    CHECK_USER,   /* mapped user in NAMEs */
    CHECK_GROUP,  /* a mapped group in GROUPs */
    CHECK_MAPPED, /* any identity */
    CHECK_FACT,   /* a fact matches a pattern */
    CHECK_ISSUER  /* issuer DN is one of DNs */
} check_kind_e;

/* Every Require provider, once: X(id, kind, fact type).  The provider is
 * named "cert-" #id; CHECK_FACT rows compare the fact type's values with
 * glob patterns (or exact values, as the type's selector rules say).  A new
 * provider is one row here. */
#define PROVIDERS(X)                                                           \
    X(user, CHECK_USER, 0)                                                     \
    X(group, CHECK_GROUP, 0)                                                   \
    X(mapped, CHECK_MAPPED, 0)                                                 \
    X(cn, CHECK_FACT, CERTAUTHZ_CN)                                            \
    X(email, CHECK_FACT, CERTAUTHZ_EMAIL)                                      \
    X(dns, CHECK_FACT, CERTAUTHZ_DNS)                                          \
    X(uri, CHECK_FACT, CERTAUTHZ_URI)                                          \
    X(upn, CHECK_FACT, CERTAUTHZ_UPN)                                          \
    X(issuer, CHECK_ISSUER, 0)                                                 \
    X(sha256, CHECK_FACT, CERTAUTHZ_SHA256)                                    \
    X(eku, CHECK_FACT, CERTAUTHZ_EKU)                                          \
    X(ku, CHECK_FACT, CERTAUTHZ_KU)                                            \
    X(policy, CHECK_FACT, CERTAUTHZ_POLICY)

typedef struct {
    const char *name;
    check_kind_e kind;
    certauthz_type_e type; /* CHECK_FACT */
} provider_row_t;

#define ROW_ENUM_(id, kind, type) ROW_##id,
enum { PROVIDERS(ROW_ENUM_) NPROVIDERS };
#undef ROW_ENUM_

#define ROW_(id, kind, type) {"cert-" #id, kind, type},
static const provider_row_t provider_rows[NPROVIDERS] = {PROVIDERS(ROW_)};
#undef ROW_

/* A parsed Require line: built once at configuration time (for .htaccess,
 * per request from the request pool), then read-only. */
typedef struct {
    const provider_row_t *row;
    int n;
    const char **names;
    certauthz_selector_t *sels;
    const certauthz_dn_t **dns;
    const char *where; /* config FILE:LINE of the Require */
} require_t;

static const char *parse_require(cmd_parms *cmd, const char *line,
                                 const void **parsed, const provider_row_t *row)
{
    require_t *req = apr_pcalloc(cmd->pool, sizeof(*req));
    apr_array_header_t *args =
        apr_array_make(cmd->temp_pool, 4, sizeof(const char *));
    const char *w, *t = line;
    int i;

    while (*(w = ap_getword_conf(cmd->temp_pool, &t)))
        *(const char **)apr_array_push(args) = w;
    req->row = row;
    req->n = args->nelts;
    req->where = cmd->directive ? apr_psprintf(cmd->pool, "%s:%d",
                                               cmd->directive->filename,
                                               cmd->directive->line_num)
                                : "?";
    if (row->kind == CHECK_MAPPED) {
        if (req->n)
            return apr_psprintf(cmd->pool, "Require %s takes no arguments",
                                row->name);
    }
    else if (!req->n) {
        return apr_psprintf(cmd->pool, "Require %s needs at least one %s",
                            row->name,
                            row->kind == CHECK_ISSUER ? "DN" : "argument");
    }
    switch (row->kind) {
    case CHECK_USER:
    case CHECK_GROUP:
        req->names = apr_pcalloc(cmd->pool, sizeof(char *) * (size_t)req->n);
        for (i = 0; i < req->n; i++)
            req->names[i] =
                apr_pstrdup(cmd->pool, APR_ARRAY_IDX(args, i, const char *));
        break;
    case CHECK_FACT:
        req->sels = apr_pcalloc(cmd->pool, sizeof(*req->sels) * (size_t)req->n);
        for (i = 0; i < req->n; i++) {
            const char *a = APR_ARRAY_IDX(args, i, const char *), *why;
            if (certauthz_selector_make(&req->sels[i], row->type, a, strlen(a),
                                        &why, cmd->pool)
                != APR_SUCCESS)
                return apr_psprintf(cmd->pool, "Require %s: '%s': %s",
                                    row->name, a, why);
        }
        break;
    case CHECK_ISSUER:
        req->dns = apr_pcalloc(cmd->pool, sizeof(*req->dns) * (size_t)req->n);
        for (i = 0; i < req->n; i++) {
            const char *a = APR_ARRAY_IDX(args, i, const char *), *why;
            certauthz_dn_t *dn;
            if (certauthz_dn_parse(&dn, a, strlen(a), &why, cmd->pool)
                != APR_SUCCESS)
                return apr_psprintf(cmd->pool, "Require %s: bad DN '%s': %s",
                                    row->name, a, why);
            req->dns[i] = dn;
        }
        break;
    default:
        break;
    }
    *parsed = req;
    return NULL;
}

static int name_in(const char *name, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return 1;
    return 0;
}

/* 1 when the request passes the Require line; reason says why not. */
static int evaluate(const require_t *req, const cz_req_t *st,
                    cz_reason_e *reason)
{
    const certauthz_identity_t *id = &st->id;
    int i;

    *reason = cz_refusal_reason(st);
    if (st->state != CZ_CERT_OK)
        return 0;
    if (st->ver && id->outcome == CERTAUTHZ_DENIED)
        return 0;
    switch (req->row->kind) {
    case CHECK_MAPPED:
        return id->outcome == CERTAUTHZ_MAPPED;
    case CHECK_USER:
        if (id->outcome != CERTAUTHZ_MAPPED)
            return 0;
        *reason = CZ_REASON_USER_MISMATCH;
        return name_in(id->user, req->names, req->n);
    case CHECK_GROUP:
        if (id->outcome != CERTAUTHZ_MAPPED)
            return 0;
        *reason = CZ_REASON_GROUP_MISMATCH;
        for (i = 0; i < id->ngroups; i++)
            if (name_in(id->groups[i], req->names, req->n))
                return 1;
        return 0;
    case CHECK_FACT:
        *reason = CZ_REASON_FACT_MISMATCH;
        for (i = 0; i < req->n; i++)
            if (certauthz_selector_match(&req->sels[i], st->facts, NULL) == 1)
                return 1;
        return 0;
    case CHECK_ISSUER:
        *reason = CZ_REASON_ISSUER_MISMATCH;
        for (i = 0; i < req->n; i++)
            if (certauthz_dn_same_issuer(req->dns[i], st->facts->issuer))
                return 1;
        return 0;
    }
    return 0;
}

static authz_status check_require(request_rec *r, const char *line,
                                  const void *parsed)
{
    const require_t *req = parsed;
    const cz_dir_conf_t *d = cz_dir_conf(r);
    cz_req_t *st;
    cz_reason_e reason;
    int ok;
    (void)line;

    if (!req)
        return AUTHZ_GENERAL_ERROR;
    if (!d->map && !cz_ldap_active(d->ldap) && req->row->kind <= CHECK_MAPPED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "CERTAUTHZ0010: Require %s (%s) needs a "
                      "CertAuthzMapFile or CertAuthzLDAP, but none applies "
                      "to <%s>: denied",
                      req->row->name, req->where,
                      certauthz_log_escape(r->uri, r->pool));
        /* evaluate() refuses (no identity without a map) and audits it */
    }
    st = cz_decide(r, d);
    ok = evaluate(req, st, &reason);
    if (ok)
        reason = CZ_REASON_MATCH;
    cz_audit(r, d, st, apr_pstrcat(r->pool, "Require ", req->row->name, NULL),
             ok, reason);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "CERTAUTHZ0011: Require %s: %s (%s; rule %s)", req->row->name,
                  ok ? "granted" : "denied", cz_reason_name(reason),
                  cz_rule_where(st, r->pool));
    return ok ? AUTHZ_GRANTED : AUTHZ_DENIED;
}

/* httpd hands parse functions no provider name: one per row. */
#define PARSER_(id, kind, type)                                                \
    static const char *parse_##id(cmd_parms *cmd, const char *line,            \
                                  const void **parsed)                         \
    {                                                                          \
        return parse_require(cmd, line, parsed, &provider_rows[ROW_##id]);     \
    }
PROVIDERS(PARSER_)
#undef PARSER_

#define PROVIDER_(id, kind, type) {check_require, parse_##id},
static const authz_provider providers[NPROVIDERS] = {PROVIDERS(PROVIDER_)};
#undef PROVIDER_

void cz_register_providers(apr_pool_t *p)
{
    for (size_t i = 0; i < NPROVIDERS; i++)
        ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP,
                                  provider_rows[i].name, AUTHZ_PROVIDER_VERSION,
                                  &providers[i], AP_AUTH_INTERNAL_PER_CONF);
}

/* ---- AuthType Certificate --------------------------------------------- */

static int is_our_auth_type(request_rec *r)
{
    const char *t = ap_auth_type(r);
    return t && !strcasecmp(t, CZ_AUTH_TYPE);
}

/* The user under AuthType Certificate, or NULL. */
static const char *authn_user(request_rec *r, const cz_dir_conf_t *d,
                              const cz_req_t *st)
{
    const certauthz_values_t *v;
    int fallback = cz_conf_unmapped(d);
    (void)r;

    if (st->state != CZ_CERT_OK || st->dir == CZ_DIR_ERROR)
        return NULL;
    if (st->ver && st->id.outcome == CERTAUTHZ_DENIED)
        return NULL;
    if (st->id.outcome == CERTAUTHZ_MAPPED)
        return st->id.user;
    if (st->ver && st->id.rule)
        return NULL; /* a rule matched but its substitution was unusable */
    if (fallback < 0)
        return NULL;
    v = &st->facts->of[fallback];
    /* an empty value (the DN of an empty subject) or one with a control
     * character is no user: the same rule as for names the map gives */
    if (!v->n || !*v->v[0].text)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)v->v[0].text; *c; c++)
        if (*c < 0x20 || *c == 0x7F)
            return NULL;
    return v->v[0].text;
}

/* Under AuthType Certificate this module alone authenticates: make r->user
 * the certificate's user, replacing (or removing, when the certificate
 * gives none) a user another module set first -- mod_ssl's SSLUserName or
 * FakeBasicAuth -- so that nothing can get round the map's deny rules.
 * Returns the user or NULL. */
static const char *apply_authn(request_rec *r, const cz_dir_conf_t *d,
                               const cz_req_t *st)
{
    const char *user = authn_user(r, d, st);

    if (r->user && (!user || strcmp(r->user, user)))
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "CERTAUTHZ0021: AuthType Certificate replaces user "
                      "'%s' set by another module",
                      certauthz_log_escape(r->user, r->pool));
    r->user = user ? apr_pstrdup(r->pool, user) : NULL;
    if (user)
        r->ap_auth_type = CZ_AUTH_TYPE;
    return user;
}

/* access_checker, after mod_ssl's (which may renegotiate).
 * 1. A certificate that the map in scope deny-lists is refused here, with
 *    403, whatever the Require lines say: inside Require not / RequireNone
 *    a provider's "denied" would otherwise turn into a grant.
 * 2. So is a certificate whose identity the directory in scope could not
 *    tell (down, slow, an error): 503 under AuthType Certificate (try
 *    again), 403 otherwise -- its groups are unknown, and Require not
 *    cert-group must not grant on that.
 * 3. Under AuthType Certificate, set the user early, so that mod_authz_core
 *    decides Require user/group/valid-user in its user-less pass (403). */
int cz_access_check(request_rec *r)
{
    const cz_dir_conf_t *d = cz_dir_conf(r);
    const cz_req_t *st;
    int ours = is_our_auth_type(r);

    if (!d->map && !cz_ldap_active(d->ldap) && !ours)
        return DECLINED;
    st = cz_decide(r, d);
    if (st->state == CZ_CERT_OK && st->dir == CZ_DIR_ERROR) {
        cz_audit(r, d, st, "directory", 0, CZ_REASON_DIRECTORY_ERROR);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "CERTAUTHZ0055: the directory (%s) could not tell "
                      "the certificate's identity: %d",
                      cz_ldap_rule(st->ldap), ours ? 503 : 403);
        return ours ? HTTP_SERVICE_UNAVAILABLE : HTTP_FORBIDDEN;
    }
    if (d->map && st->state == CZ_CERT_OK
        && st->id.outcome == CERTAUTHZ_DENIED) {
        cz_audit(r, d, st, "deny list", 0, CZ_REASON_DENY_RULE);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "CERTAUTHZ0022: certificate deny-listed by %s: 403",
                      cz_rule_where(st, r->pool));
        return HTTP_FORBIDDEN;
    }
    if (ours && apply_authn(r, d, st))
        cz_audit(r, d, st, "AuthType Certificate", 1,
                 st->id.outcome == CERTAUTHZ_MAPPED
                     ? CZ_REASON_MAPPED
                     : CZ_REASON_UNMAPPED_FALLBACK);
    return DECLINED;
}

/* check_user_id: reached when authorization needs a user that the early
 * step could not give (or that another check_user_id hook overwrote). */
int cz_authn_check(request_rec *r)
{
    const cz_dir_conf_t *d;
    const cz_req_t *st;

    if (!is_our_auth_type(r))
        return DECLINED;
    d = cz_dir_conf(r);
    st = cz_decide(r, d);
    if (apply_authn(r, d, st))
        return OK;
    cz_audit(r, d, st, "AuthType Certificate", 0, cz_refusal_reason(st));
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "CERTAUTHZ0020: AuthType Certificate: no identity (%s): 403",
                  cz_reason_name(cz_refusal_reason(st)));
    return HTTP_FORBIDDEN;
}

int cz_note_auth_failure(request_rec *r, const char *auth_type)
{
    (void)r;
    return strcasecmp(auth_type, CZ_AUTH_TYPE) ? DECLINED : OK;
}

/* ---- environment ---------------------------------------------------------- */

int cz_fixups(request_rec *r)
{
    const cz_dir_conf_t *d = cz_dir_conf(r);
    const cz_req_t *st;

    if (!cz_conf_setenv(d))
        return DECLINED;
    if (!ap_ssl_conn_is_ssl(cz_tls_conn(r->connection)))
        return DECLINED;
    st = cz_decide(r, d);
    if (st->state != CZ_CERT_OK)
        return DECLINED;
    apr_table_set(r->subprocess_env, "CERTAUTHZ_CERT_SHA256",
                  cz_fact(st, CERTAUTHZ_SHA256));
    if (st->id.outcome == CERTAUTHZ_MAPPED) {
        apr_table_set(r->subprocess_env, "CERTAUTHZ_USER", st->id.user);
        apr_table_setn(r->subprocess_env, "CERTAUTHZ_GROUPS",
                       certauthz_identity_groups(&st->id, r->pool));
        apr_table_setn(r->subprocess_env, "CERTAUTHZ_RULE",
                       cz_rule_where(st, r->pool));
    }
    return DECLINED;
}
