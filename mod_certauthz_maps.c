/*
 * mod_certauthz_maps.c -- the map registry, map versions and the live
 * reload thread (mod_certauthz_private.h, "mod_certauthz_maps.c").
 *
 * The registry holds one cz_map_t per source ("file:/path"), written
 * single-threaded while the configuration is read; after child_init only
 * under its lock (.htaccess maps are added at request time, the reload
 * thread and the status page take snapshots of the list).
 *
 * Live reload.  Each child process runs one reload thread (started in
 * child_init when some server has a CertAuthzReloadInterval above 0).
 * Every interval it asks each map's source for a new version (the source
 * decides whether it changed and is complete: for files, the policy of
 * certauthz_watch.h); a new version replaces the current one with one
 * atomic exchange.  Requests that hold the old version finish with it;
 * requests that start afterwards take the new one.
 *
 * Freeing a retired version: a request increments m->taking before it
 * reads m->current and decrements it after it incremented the version's
 * refs.  So once m->taking was seen at 0 after the exchange, every request
 * that read the old pointer has counted itself in its refs; when those are
 * 0 too, nothing holds the old version or can take it, and the thread frees
 * it.  (The atomics are APR's, full barriers; the reads here go through
 * apr_atomic_add32(x, 0) for the same ordering.)
 */
#include <string.h>

#include "apr_thread_cond.h"
#include "apr_thread_proc.h"

#include "mod_certauthz_private.h"
#include "mpm_common.h"

typedef struct {
    apr_pool_t *pool;
    apr_hash_t *by_key;
    apr_thread_mutex_t *lock; /* NULL until child_init */
    int any_reload;           /* some server has a reload interval */
} registry_t;

static registry_t *registry;
static apr_uint32_t next_gen; /* atomic */

apr_pool_t *cz_own_pool(const char *tag)
{
    apr_allocator_t *alloc;
    apr_pool_t *p;

    if (apr_allocator_create(&alloc) != APR_SUCCESS)
        return NULL;
    if (apr_pool_create_unmanaged_ex(&p, NULL, alloc) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return NULL;
    }
    apr_allocator_owner_set(alloc, p);
    apr_pool_tag(p, tag);
    return p;
}

const char *cz_format_errors(apr_pool_t *p, apr_array_header_t *errs,
                             int at_startup, server_rec *s)
{
    const certauthz_error_t *e = (const certauthz_error_t *)errs->elts;
    const char *first = NULL;

    for (int i = 0; i < errs->nelts; i++) {
        const char *one = certauthz_error_text(&e[i], p);
        if (!first)
            first = one;
        if (at_startup && errs->nelts > 1)
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, NULL,
                         "CERTAUTHZ0003: %s", one);
        else if (s)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "CERTAUTHZ0031: %s", one);
    }
    if (errs->nelts > 1)
        return apr_psprintf(p, "%s (%d errors in all%s)", first, errs->nelts,
                            at_startup ? ", listed above" : "");
    return first;
}

/* ---- versions ----------------------------------------------------------- */

static cz_version_t *version_new(const cz_loaded_t *l)
{
    cz_version_t *v = apr_pcalloc(l->pool, sizeof(*v));
    v->map = l->map;
    v->pool = l->pool;
    v->serial = apr_atomic_inc32(&next_gen) + 1;
    v->gen = l->gen ? l->gen : v->serial;
    v->image = l->image;
    v->state = l->state;
    v->precompiled = l->precompiled;
    v->loaded = apr_time_now();
    v->load_usec = l->usec;
    return v;
}

/* Lock-free: see "freeing a retired version" above. */
cz_version_t *cz_version_take(cz_map_t *m)
{
    cz_version_t *v;

    apr_atomic_inc32(&m->taking);
    v = apr_atomic_casptr(&m->current, NULL, NULL); /* an atomic read */
    apr_atomic_inc32(&v->refs);
    apr_atomic_dec32(&m->taking);
    return v;
}

apr_status_t cz_version_give(void *data)
{
    cz_version_t *v = data;
    apr_atomic_dec32(&v->refs);
    return APR_SUCCESS;
}

/* Registry cleanup: the versions' pools are not children of pconf. */
static apr_status_t map_cleanup(void *data)
{
    cz_map_t *m = data;
    cz_version_t *v = (cz_version_t *)m->current, *next;

    if (v)
        apr_pool_destroy(v->pool);
    for (v = m->retired; v; v = next) {
        next = v->next;
        apr_pool_destroy(v->pool);
    }
    m->current = NULL;
    m->retired = NULL;
    return APR_SUCCESS;
}

/* ---- the registry ------------------------------------------------------- */

static void lock(void)
{
    if (registry->lock)
        apr_thread_mutex_lock(registry->lock);
}

static void unlock(void)
{
    if (registry->lock)
        apr_thread_mutex_unlock(registry->lock);
}

const char *cz_map_get(cz_map_t **out, const cz_source_type_t *type,
                       const char *name, server_rec *s, int interval,
                       apr_pool_t *errpool)
{
    const char *key = apr_pstrcat(errpool, type->kind, ":", name, NULL);
    int at_startup = registry->lock == NULL;
    const char *err = NULL;
    cz_map_t *m;

    lock();
    m = apr_hash_get(registry->by_key, key, APR_HASH_KEY_STRING);
    if (!m) {
        cz_source_t src = {type, NULL, NULL};
        cz_loaded_t got = {NULL, NULL, NULL, 0, 0, {0}, NULL, 0, NULL};
        apr_pool_t *sp;

        /* The source's own state goes into a subpool of the registry's,
         * kept with the map, destroyed when the map is not made (a bad
         * .htaccess map is tried again by every request: nothing may pile
         * up).  The registry's pool is only touched under the lock. */
        if (apr_pool_create(&sp, registry->pool) != APR_SUCCESS) {
            unlock();
            *out = NULL;
            return "out of memory";
        }
        apr_pool_tag(sp, "certauthz_source");
        src.name = apr_pstrdup(sp, name);
        if (type->create && (err = type->create(&src, sp))) {
            err = apr_pstrdup(errpool, err);
            apr_pool_destroy(sp);
            unlock();
            *out = NULL;
            return err;
        }
        /* While the configuration is read the source is taken as it is
         * (the administrator starts httpd; waiting would slow every
         * start); a map first named by an .htaccess file at request time
         * waits for a change to settle, without the lock. */
        unlock();
        type->first(&src, at_startup ? 0 : 8, at_startup, &got, errpool);
        lock();
        m = apr_hash_get(registry->by_key, key, APR_HASH_KEY_STRING);
        if (m && got.map) { /* another request loaded it meanwhile */
            apr_pool_destroy(got.pool);
            got.map = NULL;
        }
        else if (!m && !got.map) {
            err = got.why ? got.why
                          : apr_psprintf(errpool, "%s: cannot be loaded", name);
        }
        if (got.map) {
            m = apr_pcalloc(sp, sizeof(*m));
            m->source = src;
            m->key = apr_pstrdup(sp, key);
            m->current = version_new(&got);
            m->interval = interval;
            m->servers = apr_array_make(sp, 2, sizeof(server_rec *));
            apr_pool_cleanup_register(sp, m, map_cleanup,
                                      apr_pool_cleanup_null);
            apr_hash_set(registry->by_key, m->key, APR_HASH_KEY_STRING, m);
        }
        else {
            apr_pool_destroy(sp);
        }
    }
    if (m && at_startup)
        *(server_rec **)apr_array_push(m->servers) = s;
    unlock();
    *out = m;
    return err;
}

apr_array_header_t *cz_maps_all(apr_pool_t *p)
{
    apr_array_header_t *maps = apr_array_make(p, 8, sizeof(cz_map_t *));
    apr_hash_index_t *hi;

    lock();
    for (hi = apr_hash_first(p, registry->by_key); hi; hi = apr_hash_next(hi))
        *(cz_map_t **)apr_array_push(maps) = apr_hash_this_val(hi);
    unlock();
    return maps;
}

void cz_map_status(const cz_map_t *m, cz_map_status_t *out)
{
    lock();
    out->reloads = m->reloads;
    out->failures = m->failures;
    memcpy(out->last_error, m->last_error, sizeof(out->last_error));
    unlock();
}

int cz_maps_ready(void)
{
    return registry && registry->lock;
}

static void set_last_error(cz_map_t *m, const char *msg)
{
    lock();
    if (msg) {
        apr_cpystrn(m->last_error, msg, sizeof(m->last_error));
        m->last_error_at = apr_time_now();
        m->failures++;
    }
    else {
        m->last_error[0] = '\0';
        m->reloads++;
    }
    unlock();
}

/* ---- live reload -------------------------------------------------------- */

typedef struct {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    int stop;
    server_rec *s;
} reloader_t;

static void free_retired(cz_map_t *m, server_rec *s)
{
    cz_version_t **pv = &m->retired;

    if (!m->retired || apr_atomic_add32(&m->taking, 0) != 0)
        return;
    while (*pv) {
        cz_version_t *v = *pv;
        if (apr_atomic_add32(&v->refs, 0) == 0) {
            *pv = v->next;
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "CERTAUTHZ0036: map %s: generation %u freed",
                         m->source.name, v->gen);
            apr_pool_destroy(v->pool);
        }
        else {
            pv = &v->next;
        }
    }
}

/* One check of one map; returns 1 when it should be checked again at the
 * next tick (a change waiting to settle) rather than after its interval. */
static int check_map(cz_map_t *m, server_rec *s, apr_pool_t *p)
{
    cz_version_t *old = (cz_version_t *)m->current, *v;
    cz_loaded_t got = {NULL, NULL, NULL, 0, 0, {0}, NULL, 0, NULL};
    certauthz_map_stats_t st;

    switch (m->source.type->refresh(&m->source, old->gen, &got, s, p)) {
    case CZ_REFRESH_SAME:
        return 0;
    case CZ_REFRESH_SOON:
        return 1;
    case CZ_REFRESH_FAILED:
        set_last_error(m, got.why ? got.why : "cannot be loaded");
        return 0;
    case CZ_REFRESH_NEW:
        break;
    }
    v = version_new(&got);
    old = apr_atomic_xchgptr(&m->current, v);
    old->next = m->retired;
    m->retired = old;
    set_last_error(m, NULL);
    certauthz_map_stats(v->map, &st);
    if (got.adopted)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "CERTAUTHZ0040: map %s: generation %u (was %u) from "
                     "image %s, sha256 %s",
                     m->source.name, v->gen, old->gen, v->image,
                     certauthz_map_sha256(v->map));
    else
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "CERTAUTHZ0030: map %s reloaded in %" APR_TIME_T_FMT
                     " ms: generation %u (was %u), %u rules, %u deny, sha256 "
                     "%s%s",
                     m->source.name, apr_time_as_msec(v->load_usec), v->gen,
                     old->gen, st.rules, st.deny, certauthz_map_sha256(v->map),
                     v->image ? "; shared as an image" : "");
    free_retired(m, s);
    return 0;
}

/* One pass over every map; returns 1 when some map waits to settle. */
static int reload_pass(server_rec *s, apr_pool_t *p)
{
    apr_array_header_t *maps = cz_maps_all(p);
    apr_time_t now = apr_time_now();
    int soon = 0;

    for (int i = 0; i < maps->nelts; i++) {
        cz_map_t *m = APR_ARRAY_IDX(maps, i, cz_map_t *);
        free_retired(m, s);
        if (m->interval <= 0 || now < m->next_check)
            continue;
        if (check_map(m, s, p)) {
            m->next_check = now; /* next tick */
            soon = 1;
        }
        else {
            m->next_check = now + apr_time_from_sec(m->interval);
        }
    }
    return soon;
}

static void *APR_THREAD_FUNC reload_main(apr_thread_t *t, void *data)
{
    reloader_t *rl = data;
    apr_pool_t *p = cz_own_pool("certauthz_reload");
    apr_interval_time_t wait = apr_time_from_sec(1);

    apr_thread_mutex_lock(rl->mutex);
    while (p && !rl->stop) {
        apr_thread_cond_timedwait(rl->cond, rl->mutex, wait);
        if (rl->stop)
            break;
        apr_thread_mutex_unlock(rl->mutex);
        wait =
            reload_pass(rl->s, p) ? CERTAUTHZ_WATCH_TICK : apr_time_from_sec(1);
        apr_pool_clear(p);
        apr_thread_mutex_lock(rl->mutex);
    }
    apr_thread_mutex_unlock(rl->mutex);
    if (p)
        apr_pool_destroy(p);
    /* return rather than apr_thread_exit(): pthread_exit() unwinds without
     * the function epilogues, which ASan then reports at thread exit */
    (void)t;
    return NULL;
}

/* Pre-cleanup of the child's pool: stop and join the thread before the
 * pool (and the thread's own pool inside it) goes. */
static apr_status_t reloader_stop(void *data)
{
    reloader_t *rl = data;
    apr_status_t st;

    apr_thread_mutex_lock(rl->mutex);
    rl->stop = 1;
    apr_thread_cond_signal(rl->cond);
    apr_thread_mutex_unlock(rl->mutex);
    apr_thread_join(&st, rl->thread);
    return APR_SUCCESS;
}

static void reloader_start(apr_pool_t *pchild, server_rec *s)
{
    reloader_t *rl = apr_pcalloc(pchild, sizeof(*rl));
    apr_status_t rv;

    rl->s = s;
    if ((rv = apr_thread_mutex_create(&rl->mutex, APR_THREAD_MUTEX_DEFAULT,
                                      pchild))
            != APR_SUCCESS
        || (rv = apr_thread_cond_create(&rl->cond, pchild)) != APR_SUCCESS
        || (rv = apr_thread_create(&rl->thread, NULL, reload_main, rl, pchild))
               != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "CERTAUTHZ0035: cannot start the map reload thread: "
                     "maps reload only at restart");
        return;
    }
    apr_pool_pre_cleanup_register(pchild, rl, reloader_stop);
}

/* ---- lifecycle ---------------------------------------------------------- */

void cz_maps_pre_config(apr_pool_t *pconf)
{
    registry = apr_pcalloc(pconf, sizeof(*registry));
    apr_pool_create(&registry->pool, pconf);
    apr_pool_tag(registry->pool, "certauthz_registry");
    registry->by_key = apr_hash_make(registry->pool);
}

/* The parent, once the configuration is read: each map's image in the
 * store (the one already there when it holds the same content, checked
 * whole; else a new generation), and the parent's parsed copy goes, so
 * that the parent holds no map: children open the image (child_init), and
 * once they all follow a reload nothing holds the old one.  Without a
 * store, or when the image cannot be written, the parent keeps its copy
 * and the children inherit it, as they would without images. */
static void share_startup(cz_map_t *m, server_rec *s, apr_pool_t *ptemp)
{
    cz_version_t *v = (cz_version_t *)m->current;
    cz_loaded_t io = {NULL, NULL, NULL, 0, 0, {0}, NULL, 0, NULL};
    cz_store_lock_t *lk = NULL;
    cz_pointer_t ptr;
    const char *why, *how = "compiled";

    if (!cz_store_enabled() || !v)
        return;
    /* a child of the last generation may be compiling it: a while, then
     * without the lock (renames keep every file whole either way) */
    int held = 1;

    for (int i = 0;
         i < 50 && held && !(lk = cz_store_trylock(m->key, 0, &held, ptemp));
         i++)
        if (held)
            apr_sleep(apr_time_from_msec(100));
    if (!lk) {
        /* never written without the lock: the children inherit this copy,
         * and follow the store from their first reload on */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "CERTAUTHZ0046: map %s: its compile lock %s: not "
                     "shared at this start",
                     m->source.name, held ? "is held" : "cannot be opened");
        return;
    }
    if (cz_store_read(m->key, &ptr, &why, ptemp) != APR_SUCCESS)
        memset(&ptr, 0, sizeof(ptr));
    if (ptr.gen && !strcmp(ptr.sha256, certauthz_map_sha256(v->map))) {
        cz_pointer_t whole = ptr;
        whole.image_state.size = -1; /* check all of it */
        if (cz_store_open(m->key, &whole, &io, &why, ptemp) == APR_SUCCESS) {
            if (!certauthz_file_sig_same(&ptr.source, &v->state)
                || ptr.has_refused) {
                ptr.source = v->state;
                ptr.has_refused = 0;
                cz_store_repoint(m->key, &ptr, ptemp);
            }
            apr_pool_destroy(v->pool);
            cz_store_trim();
            how = "the same content's, reused";
            goto shared;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "CERTAUTHZ0041: map %s: %s: compiling it again",
                     m->source.name, why);
    }
    io.map = v->map;
    io.pool = v->pool;
    io.usec = v->load_usec;
    io.state = v->state;
    if (cz_store_publish(m->key, &ptr, &io, s, ptemp) != APR_SUCCESS) {
        cz_store_unlock(lk);
        return; /* the parent's copy stays, for its children */
    }
shared:
    cz_store_unlock(lk);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "CERTAUTHZ0046: map %s: generation %u shared as image %s "
                 "(%s)",
                 m->source.name, ptr.gen, io.image, how);
    apr_pool_destroy(io.pool);
    m->current = NULL; /* each child opens the image */
}

/* Each map is checked at the shortest non-zero interval of the servers
 * whose configuration names it (0 when all say 0). */
void cz_maps_post_config(server_rec *s, apr_pool_t *ptemp)
{
    apr_hash_index_t *hi;

    cz_store_post_config(s, registry->pool);
    registry->any_reload = 0;
    for (server_rec *vs = s; vs; vs = vs->next)
        if (cz_server_interval(vs) > 0)
            registry->any_reload = 1;
    for (hi = apr_hash_first(ptemp, registry->by_key); hi;
         hi = apr_hash_next(hi)) {
        cz_map_t *m = apr_hash_this_val(hi);
        const cz_version_t *v = (const cz_version_t *)m->current;
        certauthz_map_stats_t st;

        m->interval = 0;
        for (int i = 0; i < m->servers->nelts; i++) {
            int n =
                cz_server_interval(APR_ARRAY_IDX(m->servers, i, server_rec *));
            if (n > 0 && (!m->interval || n < m->interval))
                m->interval = n;
        }
        certauthz_map_stats(v->map, &st);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "CERTAUTHZ0002: map %s loaded in %" APR_TIME_T_FMT
                     " ms%s%s: %s; sha256 %s; checked for changes %s%d s",
                     m->source.name, apr_time_as_msec(v->load_usec),
                     v->precompiled ? " from its precompiled image " : "",
                     v->precompiled ? v->precompiled : "",
                     certauthz_map_summary(&st, ptemp),
                     certauthz_map_sha256(v->map),
                     m->interval ? "every " : "never: ", m->interval);
        cz_store_become_user();
        share_startup(m, s, ptemp);
        cz_store_become_root();
    }
}

/* A child's first version of a map the parent shared (and dropped): the
 * source's first() at request-time rules, which takes the store's image of
 * the file as it is now (or parses it, and shares that).  When nothing can
 * be had, an empty map: every certificate is refused under it (never a
 * guess), and the status page and the log say why. */
static void child_first(cz_map_t *m, server_rec *s, apr_pool_t *pchild)
{
    apr_pool_t *ptemp;
    cz_loaded_t got = {NULL, NULL, NULL, 0, 0, {0}, NULL, 0, NULL};
    apr_array_header_t *errs;

    apr_pool_create(&ptemp, pchild);
    m->source.type->first(&m->source, CZ_FIRST_SHARED, 0, &got, ptemp);
    if (!got.map && (got.pool = cz_own_pool("certauthz_map"))) {
        const char *why = got.why ? got.why : "cannot be loaded";
        if (certauthz_map_parse(&got.map, m->source.name, "", 0, &errs,
                                got.pool)
            != APR_SUCCESS)
            got.map = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "CERTAUTHZ0047: map %s: this process has no version of "
                     "it (%s): every certificate is refused under it until "
                     "it loads",
                     m->source.name, why);
        set_last_error(m, why);
    }
    if (!got.map) {
        /* not even an empty map (out of memory): this child cannot answer */
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "CERTAUTHZ0047: map %s: out of memory", m->source.name);
        exit(APEXIT_CHILDSICK);
    }
    {
        cz_version_t *v = version_new(&got);
        m->current = v;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "CERTAUTHZ0048: map %s: generation %u %s%s, sha256 %s",
                     m->source.name, v->gen,
                     v->image ? "from image " : "as a copy of this process's",
                     v->image ? v->image : " own",
                     certauthz_map_sha256(v->map));
    }
    apr_pool_destroy(ptemp);
}

void cz_maps_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_hash_index_t *hi;

    if (!registry || registry->lock)
        return;
    cz_store_child_init(pchild);
    for (hi = apr_hash_first(pchild, registry->by_key); hi;
         hi = apr_hash_next(hi)) {
        cz_map_t *m = apr_hash_this_val(hi);
        if (!m->current)
            child_first(m, s, pchild);
    }
    apr_thread_mutex_create(&registry->lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (registry->lock && registry->any_reload)
        reloader_start(pchild, s);
}
