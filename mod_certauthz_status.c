/*
 * mod_certauthz_status.c -- refusal reasons, the decision counters, the
 * audit line and the server-status section (mod_certauthz_private.h,
 * "mod_certauthz_status.c").
 *
 * Counters: server-wide since the last (graceful) restart, 64-bit, in an
 * anonymous shared memory segment made by the parent in post_config and
 * inherited by every child; incremented with one atomic add, no lock.
 * Where anonymous shared memory is missing they are per process (the
 * status page says which).
 */
#include <string.h>
#include <unistd.h>

#include "apr_shm.h"

#include "http_protocol.h"
#include "mod_status.h"

#include "mod_certauthz_private.h"

#define CNT_(id, name) CNT_##id,
enum { CZ_COUNTERS(CNT_) CNT_N };
#undef CNT_

#define NAME_(id, name) name,
static const char *const cnt_names[CNT_N] = {CZ_COUNTERS(NAME_)};
#undef NAME_

#define NAME_(id, name, counter) name,
static const char *const reason_names[CZ_NREASONS] = {CZ_REASONS(NAME_)};
#undef NAME_

#define COUNTER_(id, name, counter) CNT_##counter,
static const unsigned char reason_counter[CZ_NREASONS] = {CZ_REASONS(COUNTER_)};
#undef COUNTER_

#define NAME_(id, name) name,
static const char *const dircnt_names[CZ_NDIRCNT] = {CZ_DIR_COUNTERS(NAME_)};
#undef NAME_

#define NAME_(id, name, kind) name,
static const char *const shcnt_names[CZ_NSHCNT] = {CZ_SHADOW_COUNTERS(NAME_)};
#undef NAME_
#define KIND_(id, name, kind) kind,
static const char *const shcnt_kinds[CZ_NSHCNT] = {CZ_SHADOW_COUNTERS(KIND_)};
#undef KIND_

typedef struct {
    volatile apr_uint64_t n[CNT_N];
    volatile apr_uint64_t dir[CZ_NDIRCNT];
    volatile apr_uint64_t shadow[CZ_NSHCNT];
} counters_t;

static counters_t *counters;
static int counters_shared;

const char *cz_reason_name(cz_reason_e reason)
{
    return (unsigned)reason < CZ_NREASONS ? reason_names[reason] : "?";
}

cz_reason_e cz_refusal_reason(const cz_req_t *st)
{
    switch (st->state) {
    case CZ_CERT_NONE:
        return CZ_REASON_NO_CERT;
    case CZ_CERT_UNVERIFIED:
        return CZ_REASON_UNVERIFIED;
    case CZ_CERT_ERROR:
        return CZ_REASON_CERT_ERROR;
    case CZ_CERT_OK:
        break;
    }
    if (!st->ver && !st->ldap)
        return CZ_REASON_NO_MAP;
    if (st->dir == CZ_DIR_ERROR)
        return CZ_REASON_DIRECTORY_ERROR;
    switch (st->id.outcome) {
    case CERTAUTHZ_DENIED:
        return CZ_REASON_DENY_RULE;
    case CERTAUTHZ_UNMAPPED:
        return st->id.rule ? CZ_REASON_UNUSABLE_RULE : CZ_REASON_UNMAPPED;
    default:
        return CZ_REASON_MAPPED;
    }
}

/* One audit line per decision of this module (each Require cert-* line
 * evaluated, the deny-list check, AuthType Certificate), and one count.
 * Format (stable; docs/reference.md "Audit lines"): CERTAUTHZ0100: then
 * key="value" pairs in this order, separated by one space:
 *   decision check reason user groups rule sha256 serial issuer client
 *   method uri map_sha256 map_generation
 * every value quoted and written by certauthz_audit_value() ('"', '%',
 * '\\' and control characters as %HH; "-" for none).  A granted decision
 * counts as granted whatever its reason. */
void cz_audit(request_rec *r, const cz_dir_conf_t *d, const cz_req_t *st,
              const char *check, int granted, cz_reason_e reason)
{
    int level = cz_conf_audit(d);
    apr_pool_t *p = r->pool;
    const char *user = NULL, *groups = NULL, *sha = NULL, *serial = NULL;

    if (counters) {
        int c = granted ? CNT_GRANTED : reason_counter[reason];
        /* a refusal with a reason of grants cannot happen; it would count
         * as unmapped, never as granted */
        apr_atomic_inc64(
            &counters->n[c == CNT_GRANTED && !granted ? CNT_UNMAPPED : c]);
    }
    if (level == CZ_AUDIT_OFF || (level == CZ_AUDIT_DENY && granted))
        return;
    if (r->user)
        user = r->user;
    else if (st->id.outcome == CERTAUTHZ_MAPPED)
        user = st->id.user;
    if (st->id.outcome == CERTAUTHZ_MAPPED && st->id.ngroups)
        groups = certauthz_identity_groups(&st->id, p);
    if (st->facts) {
        sha = cz_fact(st, CERTAUTHZ_SHA256);
        serial = cz_fact(st, CERTAUTHZ_SERIAL);
    }
#define V(x) certauthz_audit_value((x), p)
    ap_log_rerror(
        APLOG_MARK, APLOG_NOTICE, 0, r,
        "CERTAUTHZ0100: decision=\"%s\" check=\"%s\" reason=\"%s\" "
        "user=\"%s\" groups=\"%s\" rule=\"%s\" sha256=\"%s\" "
        "serial=\"%s\" issuer=\"%s\" client=\"%s\" method=\"%s\" "
        "uri=\"%s\" map_sha256=\"%s\" map_generation=\"%s\"",
        granted ? "granted" : "denied", V(check), V(cz_reason_name(reason)),
        V(user), V(groups), V(cz_rule_at(st, p)), V(sha), V(serial),
        V(st->facts && st->facts->issuer ? certauthz_dn_text(st->facts->issuer)
                                         : NULL),
        V(r->useragent_ip), V(r->method), V(r->uri),
        V(st->ver ? certauthz_map_sha256(st->ver->map) : NULL),
        V(st->ver ? apr_itoa(p, (int)st->ver->gen) : NULL));
#undef V
}

/* ---- counters ----------------------------------------------------------- */

void cz_count_dir(cz_dircnt_e which, apr_uint64_t n)
{
    if (counters && (unsigned)which < CZ_NDIRCNT)
        apr_atomic_add64(&counters->dir[which], n);
}

static apr_uint64_t dircnt(int i)
{
    return counters ? apr_atomic_add64(&counters->dir[i], 0) : 0;
}

void cz_count_shadow(cz_shcnt_e which)
{
    if (counters && (unsigned)which < CZ_NSHCNT)
        apr_atomic_inc64(&counters->shadow[which]);
}

const char *cz_shadow_kind_name(cz_shcnt_e which)
{
    return (unsigned)which < CZ_NSHCNT ? shcnt_kinds[which] : "?";
}

static apr_uint64_t shcnt(int i)
{
    return counters ? apr_atomic_add64(&counters->shadow[i], 0) : 0;
}

static apr_uint64_t decisions(int i)
{
    return counters ? apr_atomic_add64(&counters->n[i], 0) : 0;
}

/* A counter table's row of names and row of values, and one more column
 * when extra_th is set (the <table> and the last </tr> are the caller's). */
static void html_rows(request_rec *r, const char *const *names, int n,
                      apr_uint64_t (*value)(int), const char *extra_th,
                      const char *extra_td)
{
    for (int i = 0; i < n; i++)
        ap_rprintf(r, "<th>%s</th>", names[i]);
    if (extra_th)
        ap_rprintf(r, "<th>%s</th>", extra_th);
    ap_rputs("</tr>\n<tr>", r);
    for (int i = 0; i < n; i++)
        ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>", value(i));
    if (extra_th)
        ap_rprintf(r, "<td>%s</td>", extra_td);
}

static apr_status_t reset_counters(void *data)
{
    *(counters_t **)data = NULL; /* made again after a restart */
    return APR_SUCCESS;
}

void cz_status_post_config(apr_pool_t *pconf)
{
    apr_shm_t *shm;

    if (counters)
        return;
    if (apr_shm_create(&shm, sizeof(*counters), NULL, pconf) == APR_SUCCESS) {
        counters = apr_shm_baseaddr_get(shm);
        counters_shared = 1;
    }
    else {
        counters = apr_palloc(pconf, sizeof(*counters));
        counters_shared = 0;
    }
    memset((void *)counters, 0, sizeof(*counters));
    apr_pool_cleanup_register(pconf, &counters, reset_counters,
                              apr_pool_cleanup_null);
}

/* ---- server-status ------------------------------------------------------
 * With mod_status: the decision counters (server-wide) and the maps as the
 * process answering sees them (each child reloads on its own).  ?auto
 * gives the same as "Key: value" lines. */
static void status_map_row(request_rec *r, cz_map_t *m, int terse)
{
    cz_version_t *v = cz_version_take(m);
    const char *name = m->source.type->describe(&m->source, r->pool);
    certauthz_map_stats_t st;
    char when[APR_RFC822_DATE_LEN];
    cz_map_status_t ms;

    certauthz_map_stats(v->map, &st);
    apr_rfc822_date(when, v->loaded);
    cz_map_status(m, &ms);
    if (terse) {
        ap_rprintf(r,
                   "CertAuthzMap: %s generation=%u loaded=%" APR_TIME_T_FMT
                   " rules=%u exact=%u glob=%u regex=%u deny=%u sections=%u "
                   "reloads=%u failures=%u interval=%d sha256=%s "
                   "image=%s last_error=%s\n",
                   certauthz_log_escape(name, r->pool), v->gen,
                   apr_time_sec(v->loaded), st.rules, st.exact_all, st.globs,
                   st.regexes, st.deny, st.sections, ms.reloads, ms.failures,
                   m->interval, certauthz_map_sha256(v->map),
                   v->image ? certauthz_log_escape(v->image, r->pool) : "-",
                   ms.last_error[0]
                       ? certauthz_log_escape(ms.last_error, r->pool)
                       : "-");
    }
    else {
        ap_rprintf(
            r,
            "<tr><td>%s</td><td>%u</td><td>%s</td><td>%u</td>"
            "<td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
            "<td>%u / %u</td><td>%s</td><td><code>%s</code></td>"
            "<td>%s</td><td>%s</td></tr>\n",
            ap_escape_html(r->pool, name), v->gen, when, st.rules, st.exact_all,
            st.globs, st.regexes, st.deny, st.sections, ms.reloads, ms.failures,
            m->interval ? apr_psprintf(r->pool, "%d s", m->interval)
                        : "restart only",
            certauthz_map_sha256(v->map),
            v->image ? ap_escape_html(r->pool, v->image) : "own copy",
            ms.last_error[0] ? ap_escape_html(r->pool, ms.last_error) : "-");
    }
    cz_version_give(v);
}

int cz_status_hook(request_rec *r, int flags)
{
    int terse = flags & AP_STATUS_SHORT;
    apr_array_header_t *maps;

    if (!cz_maps_ready())
        return OK;
    if (terse) {
        for (int i = 0; i < CNT_N; i++)
            ap_rprintf(r, "CertAuthzDecisions-%s: %" APR_UINT64_T_FMT "\n",
                       cnt_names[i], decisions(i));
        ap_rprintf(r, "CertAuthzDecisionsScope: %s\n",
                   counters_shared ? "server" : "process");
        for (int i = 0; i < CZ_NDIRCNT; i++)
            ap_rprintf(r, "CertAuthzLDAP-%s: %" APR_UINT64_T_FMT "\n",
                       dircnt_names[i], dircnt(i));
        for (int i = 0; i < CZ_NSHCNT; i++)
            ap_rprintf(r, "CertAuthzShadow-%s: %" APR_UINT64_T_FMT "\n",
                       shcnt_names[i], shcnt(i));
    }
    else {
        ap_rputs("<hr />\n<h2>mod_certauthz " CERTAUTHZ_VERSION "</h2>\n"
                 "<p>Decisions since the last restart (",
                 r);
        ap_rputs(counters_shared ? "all processes" : "this process only", r);
        ap_rputs("; one per Require cert-* line evaluated, deny-list check "
                 "and AuthType Certificate):</p>\n<table border=\"1\">"
                 "<tr>",
                 r);
        html_rows(r, cnt_names, CNT_N, decisions, NULL, NULL);
        ap_rputs("</tr>\n</table>\n<p>Directory lookups (CertAuthzLDAP; "
                 "lookups are searches handed to mod_ldap, whose own "
                 "cache may answer them; cache-hits are answers of a "
                 "process's cache):</p>\n<table border=\"1\"><tr>",
                 r);
        html_rows(r, dircnt_names, CZ_NDIRCNT, dircnt, "mean latency",
                  dircnt(CZ_DIRCNT_LOOKUPS) ? apr_psprintf(
                      r->pool, "%" APR_UINT64_T_FMT " us",
                      dircnt(CZ_DIRCNT_USEC) / dircnt(CZ_DIRCNT_LOOKUPS))
                                            : "-");
        ap_rputs("</tr>\n</table>\n<p>Shadow maps (CertAuthzShadowMapFile: "
                 "the candidate's identity compared with the decision's; "
                 "each disagreement is a CERTAUTHZ0110 line):</p>\n"
                 "<table border=\"1\"><tr>",
                 r);
        html_rows(r, shcnt_names, CZ_NSHCNT, shcnt, NULL, NULL);
        ap_rprintf(r,
                   "</tr>\n</table>\n<p>Map files as process %" APR_PID_T_FMT
                   " sees them:</p>\n"
                   "<table border=\"1\"><tr><th>file</th><th>generation"
                   "</th><th>loaded</th><th>rules</th><th>exact</th>"
                   "<th>glob</th><th>regex</th><th>deny</th><th>issuer "
                   "sections</th><th>reloads / failures</th><th>checked"
                   "</th><th>content SHA-256</th><th>shared image</th>"
                   "<th>last reload error</th>"
                   "</tr>\n",
                   getpid());
    }
    maps = cz_maps_all(r->pool);
    for (int i = 0; i < maps->nelts; i++)
        status_map_row(r, APR_ARRAY_IDX(maps, i, cz_map_t *), terse);
    if (!terse)
        ap_rputs("</table>\n", r);
    return OK;
}
