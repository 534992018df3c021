/*
 * mod_certauthz_request.c -- what a request knows of its client's
 * certificate: the per-connection certificate cache, the re-verification
 * of resumed sessions, and the per-request decision
 * (mod_certauthz_private.h, "mod_certauthz_request.c").
 */
#include <string.h>

#include "http_ssl.h"

#include "mod_certauthz_private.h"

/* ---- per-connection certificate cache ---------------------------------

 * conn_cache_t lives on the connection that carries TLS (for HTTP/2 the
 * primary connection, c->master).  It is created by mod_ssl's
 * pre_handshake hook, which hands us the connection's SSL.  It holds a
 * reference to the peer certificate its facts were computed from, so a
 * pointer comparison with SSL_get0_peer_certificate() detects any change
 * (renegotiation, TLS 1.3 post-handshake auth) without ABA risk.
 *
 * Threads: HTTP/2 streams of one connection run on several worker threads
 * while the connection's own thread does TLS I/O with c->pool.  So the
 * cache never allocates from c->pool after the handshake: facts live in a
 * pool of their own (own allocator, unmanaged), and every access is under
 * the mutex.
 *
 * Lifetime: a request may hold facts and identities (request notes, the
 * environment) while a subrequest renegotiates and changes the
 * certificate.  So a replaced facts pool is retired, not destroyed: retired
 * pools live until the connection closes.  After MAX_RETIRED changes on one
 * connection the cache stops following: requests then compute facts in
 * their own pool.
 */
#define CACHE_IDS 4
#define MAX_RETIRED 8

/* An identity of the connection's certificate under one version of one
 * map.  Used only while the request holds that version (serial equal):
 * the identity's strings live in the version and in fpool. */
typedef struct {
    const cz_map_t *map; /* NULL = empty */
    apr_uint32_t serial; /* the version's, unique in this process */
    certauthz_identity_t id;
} cached_id_t;

/* The directory's answer for the connection's certificate under one
 * CertAuthzLDAP setting, until it expires (CertAuthzLDAPCacheTTL): the
 * same answer the process cache would give, without its mutex and copy.
 * The setting is a copy: a merged one may live in a request's pool (its
 * fields point into the configuration).  Strings in fpool; errors are
 * never kept. */
typedef struct {
    int used;
    cz_ldap_conf_t conf;
    apr_time_t expires;
    certauthz_ldresult_t res;
} cached_dir_t;

typedef struct {
    SSL *ssl;
    apr_thread_mutex_t *lock;
    X509 *cert;        /* referenced; NULL before first use */
    int cert_ok;       /* 0: a resumed session failed re-verification */
    apr_pool_t *fpool; /* facts and identities of cert */
    certauthz_facts_t *facts;
    cached_id_t ids[CACHE_IDS];
    cached_dir_t dirs[CACHE_IDS];
    int nretired;
    apr_pool_t *retired[MAX_RETIRED];
} conn_cache_t;

static apr_status_t conn_cache_cleanup(void *data)
{
    conn_cache_t *cc = data;

    if (cc->cert)
        X509_free(cc->cert);
    cc->cert = NULL;
    if (cc->fpool)
        apr_pool_destroy(cc->fpool);
    cc->fpool = NULL;
    while (cc->nretired)
        apr_pool_destroy(cc->retired[--cc->nretired]);
    return APR_SUCCESS;
}

int cz_pre_handshake(conn_rec *c, SSL *ssl, int is_proxy)
{
    conn_cache_t *cc;

    if (is_proxy)
        return OK;
    cc = apr_pcalloc(c->pool, sizeof(*cc));
    cc->ssl = ssl;
    if (apr_thread_mutex_create(&cc->lock, APR_THREAD_MUTEX_DEFAULT, c->pool)
        != APR_SUCCESS)
        return OK; /* no cache: requests parse the certificate themselves */
    apr_pool_cleanup_register(c->pool, cc, conn_cache_cleanup,
                              apr_pool_cleanup_null);
    ap_set_module_config(c->conn_config, &certauthz_module, cc);
    return OK;
}

static X509 *peer_cert(SSL *ssl)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    return SSL_get0_peer_certificate(ssl);
#else
    X509 *x = SSL_get_peer_certificate(ssl);
    if (x)
        X509_free(x); /* the session keeps its own reference */
    return x;
#endif
}

/* ---- the decision ------------------------------------------------------ */

conn_rec *cz_tls_conn(conn_rec *c)
{
    while (c->master)
        c = c->master;
    return c;
}

/* A resumed session carries the certificate it was verified with, perhaps
 * by another virtual host (vhosts sharing a session id context) or before a
 * CRL listed it.  Verify it again against the trust store, depth and
 * revocation settings of the SSL_CTX now serving the connection.  Without
 * the chain (session caches do not keep it) the issuing CAs must be in that
 * store; otherwise this fails, closed. */
static int reverify_resumed(conn_rec *c, SSL *ssl, X509 *x)
{
    X509_STORE *store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    int ok = 0;

    if (vctx && store
        && X509_STORE_CTX_init(vctx, store, x, SSL_get_peer_cert_chain(ssl))) {
        X509_STORE_CTX_set_default(vctx, "ssl_client");
        if (SSL_get_verify_depth(ssl) >= 0)
            X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(vctx),
                                        SSL_get_verify_depth(ssl));
        ok = X509_verify_cert(vctx) == 1;
        if (!ok)
            ap_log_cerror(
                APLOG_MARK, APLOG_INFO, 0, c,
                "CERTAUTHZ0004: resumed TLS session: its client "
                "certificate does not verify here (%s): no identity",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    }
    X509_STORE_CTX_free(vctx);
    return ok;
}

/* Facts of the connection's verified certificate, through the cache.
 * *id is filled (and *have_id set) when the identity for map was cached.
 * Returns NULL when the certificate cannot be used; *unverified is set when
 * that is because a resumed session failed re-verification. */
static const certauthz_facts_t *cached_facts(request_rec *r, conn_cache_t *cc,
                                             const cz_map_t *map,
                                             const cz_version_t *ver,
                                             certauthz_identity_t *id,
                                             int *have_id, int *unverified)
{
    const certauthz_facts_t *facts = NULL;
    X509 *x;

    apr_thread_mutex_lock(cc->lock);
    x = peer_cert(cc->ssl);
    if (x && x != cc->cert && cc->nretired < MAX_RETIRED) {
        apr_pool_t *np = cz_own_pool("certauthz_facts");
        certauthz_facts_t *nf = NULL;
        if (np && certauthz_facts_from_x509(&nf, x, np) == APR_SUCCESS) {
            if (cc->fpool)
                cc->retired[cc->nretired++] = cc->fpool;
            if (cc->cert)
                X509_free(cc->cert);
            X509_up_ref(x);
            cc->cert = x;
            cc->cert_ok = !SSL_session_reused(cc->ssl)
                          || reverify_resumed(r->connection, cc->ssl, x);
            cc->fpool = np;
            cc->facts = nf;
            memset(cc->ids, 0, sizeof(cc->ids));
            memset(cc->dirs, 0, sizeof(cc->dirs));
        }
        else if (np) {
            apr_pool_destroy(np);
        }
    }
    if (x && x == cc->cert && !cc->cert_ok) {
        *unverified = 1;
    }
    else if (x && x == cc->cert) {
        facts = cc->facts;
        cached_id_t *slot = NULL;
        for (int i = 0; ver && i < CACHE_IDS; i++) {
            if (cc->ids[i].map == map) {
                slot = &cc->ids[i];
                break;
            }
            if (!cc->ids[i].map && !slot)
                slot = &cc->ids[i];
        }
        if (slot && (slot->map != map || slot->serial != ver->serial)) {
            /* a free slot, or the map was reloaded: resolve once, keep */
            certauthz_map_resolve(&slot->id, ver->map, facts, cc->fpool);
            slot->map = map;
            slot->serial = ver->serial;
        }
        if (slot) {
            *id = slot->id;
            *have_id = 1;
        }
        /* more maps than slots: the caller resolves in the request pool */
    }
    else if (x && cc->nretired >= MAX_RETIRED) {
        /* the cache stopped following this connection's certificates */
        certauthz_facts_t *f = NULL;
        if (certauthz_facts_from_x509(&f, x, r->pool) == APR_SUCCESS
            && (!SSL_session_reused(cc->ssl)
                || reverify_resumed(r->connection, cc->ssl, x)))
            facts = f;
        else if (f)
            *unverified = 1;
    }
    apr_thread_mutex_unlock(cc->lock);
    return facts;
}

const unsigned char *cz_pem_der(apr_pool_t *p, const char *pem, apr_size_t *len)
{
    unsigned char *der = NULL, *q;
    X509 *x;
    int n;

    if (!pem || !*pem
        || certauthz_x509_read(&x, pem, strlen(pem)) != APR_SUCCESS)
        return NULL;
    n = i2d_X509(x, NULL);
    if (n > 0) {
        der = q = apr_palloc(p, (apr_size_t)n);
        if (i2d_X509(x, &q) != n)
            der = NULL;
        *len = (apr_size_t)n;
    }
    X509_free(x);
    return der;
}

/* Facts without the cache: parse the PEM mod_ssl exports. */
static const certauthz_facts_t *uncached_facts(request_rec *r)
{
    const char *pem = ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                                        "SSL_CLIENT_CERT");
    certauthz_facts_t *facts = NULL;
    X509 *x;

    if (!pem || !*pem
        || certauthz_x509_read(&x, pem, strlen(pem)) != APR_SUCCESS)
        return NULL;
    if (certauthz_facts_from_x509(&facts, x, r->pool) != APR_SUCCESS)
        facts = NULL;
    X509_free(x);
    return facts;
}

/* The connection's kept answer of the directory for st (its certificate's
 * facts, the cache's, and its setting): 1 and *res; else 0. */
static int dir_cached(conn_cache_t *cc, const cz_req_t *st,
                      certauthz_ldresult_t *res)
{
    int found = 0;
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(cc->lock);
    for (int i = 0; st->facts == cc->facts && i < CACHE_IDS; i++) {
        const cached_dir_t *k = &cc->dirs[i];
        if (k->used && cz_ldap_same(&k->conf, st->ldap) && k->expires > now) {
            *res = k->res;
            found = 1;
            break;
        }
    }
    apr_thread_mutex_unlock(cc->lock);
    return found;
}

/* Keep the directory's answer (not an error) on the connection: the slot
 * of the same setting, a free one, or the one that expires first. */
static void dir_keep(conn_cache_t *cc, const cz_req_t *st,
                     const certauthz_ldresult_t *res, apr_time_t expires)
{
    cached_dir_t *slot = NULL;

    apr_thread_mutex_lock(cc->lock);
    for (int i = 0; st->facts == cc->facts && i < CACHE_IDS; i++) {
        cached_dir_t *k = &cc->dirs[i];
        if (k->used && cz_ldap_same(&k->conf, st->ldap)) {
            slot = k;
            break;
        }
        if (!slot || (slot->used && (!k->used || k->expires < slot->expires)))
            slot = k;
    }
    if (slot) {
        const char **g = NULL;
        if (res->ngroups) {
            g = apr_palloc(cc->fpool, res->ngroups * sizeof(*g));
            for (int i = 0; i < res->ngroups; i++)
                g[i] = apr_pstrdup(cc->fpool, res->groups[i]);
        }
        slot->used = 1;
        slot->conf = *st->ldap;
        slot->expires = expires;
        slot->res.found = res->found;
        slot->res.user = res->user ? apr_pstrdup(cc->fpool, res->user) : NULL;
        slot->res.ngroups = res->ngroups;
        slot->res.groups = g;
        slot->res.expires = expires;
    }
    apr_thread_mutex_unlock(cc->lock);
}

/* An unmapped certificate (no rule at all) asks the directory in scope. */
static void ask_directory(request_rec *r, conn_cache_t *cc, cz_req_t *st)
{
    certauthz_ldresult_t res;
    apr_time_t expires = 0;
    int keep = cc && cc->lock;

    memset(&res, 0, sizeof(res));
    if (keep && dir_cached(cc, st, &res)) {
        st->dir = res.found ? CZ_DIR_FOUND : CZ_DIR_NOT_FOUND;
    }
    else {
        st->dir = cz_ldap_lookup(r, st->ldap, st->facts, &res, &expires);
        if (keep && st->dir != CZ_DIR_ERROR)
            dir_keep(cc, st, &res, expires);
    }
    if (st->dir == CZ_DIR_FOUND) {
        st->id.outcome = CERTAUTHZ_MAPPED;
        st->id.rule = NULL;
        st->id.user = res.user;
        st->id.ngroups = res.ngroups;
        st->id.groups = res.groups;
    }
}

cz_req_t *cz_decide(request_rec *r, const cz_dir_conf_t *d)
{
    cz_req_t *st = ap_get_module_config(r->request_config, &certauthz_module);
    const cz_ldap_conf_t *ldap = cz_ldap_active(d->ldap) ? d->ldap : NULL;
    conn_cache_t *cc;
    int have_id = 0, unverified = 0;

    if (st && st->map == d->map && st->ldap == ldap)
        return st;
    if (!st) {
        st = apr_pcalloc(r->pool, sizeof(*st));
        ap_set_module_config(r->request_config, &certauthz_module, st);
    }
    memset(st, 0, sizeof(*st));
    st->map = d->map;
    st->ldap = ldap;
    if (d->map) {
        /* one version for the whole request: every Require line, the
         * deny check, AuthType and the environment agree */
        st->ver = cz_version_take(d->map);
        apr_pool_cleanup_register(r->pool, st->ver, cz_version_give,
                                  apr_pool_cleanup_null);
    }
    st->verify = ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                                   "SSL_CLIENT_VERIFY");
    if (!st->verify || !*st->verify || !strcmp(st->verify, "NONE")) {
        st->state = CZ_CERT_NONE;
        return st;
    }
    if (strcmp(st->verify, "SUCCESS")) {
        st->state = CZ_CERT_UNVERIFIED;
        return st;
    }
    cc = ap_get_module_config(cz_tls_conn(r->connection)->conn_config,
                              &certauthz_module);
    if (cc && cc->lock)
        st->facts = cached_facts(r, cc, st->map, st->ver, &st->id, &have_id,
                                 &unverified);
    else
        st->facts = uncached_facts(r);
    if (unverified) {
        st->state = CZ_CERT_UNVERIFIED;
        return st;
    }
    if (!st->facts) {
        st->state = CZ_CERT_ERROR;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "CERTAUTHZ0001: verified client certificate could not "
                      "be read");
        return st;
    }
    st->state = CZ_CERT_OK;
    if (st->ver && !have_id)
        certauthz_map_resolve(&st->id, st->ver->map, st->facts, r->pool);
    /* deny rules, then map rules, then the directory; a rule that matched
     * but could not give an identity is an answer too (SPEC §7) */
    if (st->ldap && st->id.outcome == CERTAUTHZ_UNMAPPED && !st->id.rule)
        ask_directory(r, cc && cc->lock ? cc : NULL, st);
    if (d->shadow)
        cz_shadow_compare(r, d, st);
    return st;
}

/* The first value of a fact, or "-". */
const char *cz_fact(const cz_req_t *st, certauthz_type_e t)
{
    return st->facts && st->facts->of[t].n ? st->facts->of[t].v[0].text : "-";
}

const char *cz_rule_at(const cz_req_t *st, apr_pool_t *p)
{
    if (st->ver && st->id.rule)
        return certauthz_rule_where(st->ver->map, st->id.rule, p);
    if (st->dir != CZ_DIR_NONE)
        return cz_ldap_rule(st->ldap);
    return NULL;
}

const char *cz_rule_where(const cz_req_t *st, apr_pool_t *p)
{
    const char *at = cz_rule_at(st, p);
    return at ? at : "-";
}
