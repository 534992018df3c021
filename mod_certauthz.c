/*
 * mod_certauthz -- authorization by verified client certificate.
 *
 * This file is the httpd glue only: directives, per-directory merge, the
 * map registry (one load per path), the per-connection certificate cache,
 * the hooks and the Require providers.  Facts, DNs and maps are in the pure
 * core (src/, include/).
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
 *
 * Only SSL_CLIENT_VERIFY == "SUCCESS" counts as verified, and a resumed
 * session's certificate must also verify against the serving vhost's
 * store (reverify_resumed).  "Denied" is
 * AUTHZ_DENIED, never AUTHZ_DENIED_NO_USER, so refusals are 403, not 401.
 * AuthType Certificate sets r->user in the access_checker phase (after
 * mod_ssl's, which may renegotiate), so mod_authz_core decides Require
 * user/group/valid-user in its user-less pass and refuses with 403.
 */
#include <string.h>

#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_atomic.h"
#include "apr_thread_cond.h"
#include "apr_thread_mutex.h"
#include "apr_thread_proc.h"

#include "ap_config.h"
#include "ap_provider.h"
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_ssl.h"
#include "mod_auth.h"
#include "mod_ssl_openssl.h"
#include "apr_optional_hooks.h"
#include "apr_shm.h"
#include "mod_status.h"

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "certauthz_match.h"
#include "certauthz_util.h"

module AP_MODULE_DECLARE_DATA certauthz_module;
APLOG_USE_MODULE(certauthz);

#define AUTH_TYPE "Certificate"
#define UNSET -1

/* ---- configuration ---------------------------------------------------

 * Map files.  map_file_t: one map file named by the configuration, one per
 * path, shared by every scope naming it, alive as long as the
 * configuration (the registry's pool, in pconf: rebuilt on every graceful
 * restart).  map_version_t: one load of that file, immutable, in a pool of
 * its own.  Requests take the file's current version with version_take()
 * and give it back when their pool is cleaned up; live reload (below)
 * publishes a new version with one atomic exchange.
 */
typedef struct map_version_t map_version_t;
struct map_version_t {
    certauthz_map_t *map;
    apr_pool_t *pool;              /* the version's memory (own allocator) */
    apr_uint32_t gen;              /* unique per load in this process */
    apr_uint32_t refs;             /* requests holding it (atomic) */
    apr_time_t loaded;             /* when */
    apr_interval_time_t load_usec; /* how long the load took */
    map_version_t *next;           /* retired list */
};

/* What stat() says of a file: any difference means "changed". */
typedef struct {
    apr_ino_t ino;
    apr_dev_t dev;
    apr_off_t size;
    apr_time_t mtime, ctime;
} file_sig_t;

typedef struct {
    const char *path;
    volatile void *current; /* map_version_t *: read, swapped atomically */
    apr_uint32_t taking;    /* requests between reading current and counting
                               themselves in it (atomic) */
    int interval;           /* seconds between checks; 0: at restart only */
    apr_array_header_t *servers; /* configuration time: servers naming it */
    /* live reload state: the reload thread only */
    file_sig_t sig;        /* of the file current was read from */
    file_sig_t refused;    /* of a file not loaded (bad): not retried */
    file_sig_t pending;    /* of a changed file waiting to settle */
    file_sig_t unreadable; /* of a file that could not be read (logged) */
    apr_time_t pending_since;
    apr_time_t next_check;
    int missing;            /* the file could not be stat'ed last time */
    map_version_t *retired; /* replaced versions not yet freed */
    /* for the status page: under registry->lock */
    apr_uint32_t reloads, failures;
    apr_time_t last_error_at;
    char last_error[512];
} map_file_t;

/* The registry: map files by path.  Written single-threaded while the
 * configuration is read; after child_init only under lock (.htaccess files
 * are read at request time, the reload thread reads the list). */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *by_path;
    apr_thread_mutex_t *lock;
    int any_reload; /* some server has a reload interval */
} registry_t;

static registry_t *registry;
static apr_uint32_t next_gen; /* atomic */

enum {
    UNMAPPED_DENY = 0,
    UNMAPPED_CN,
    UNMAPPED_EMAIL,
    UNMAPPED_UPN,
    UNMAPPED_DN,
    UNMAPPED_URI
};
enum { AUDIT_OFF = 0, AUDIT_DENY, AUDIT_ALL };

/* Per-directory configuration: created per section, merged parent->child
 * (a field set in the child wins, else the parent's), then read-only. */
typedef struct {
    map_file_t *map;   /* NULL: unset */
    int unmapped;      /* UNSET or UNMAPPED_* */
    int setenv;        /* UNSET, 0, 1 */
    int audit;         /* UNSET or AUDIT_* */
    const char *scope; /* section the map was set in, for messages */
} dir_conf_t;

/* Per-server configuration, merged vhost over main server. */
typedef struct {
    int reload_interval; /* seconds; UNSET = default */
} srv_conf_t;

#define DEFAULT_RELOAD_INTERVAL 10

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    d->unmapped = UNSET;
    d->setenv = UNSET;
    d->audit = UNSET;
    d->scope = dir ? apr_pstrdup(p, dir) : "server config";
    return d;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    dir_conf_t *base = basev, *add = addv;
    dir_conf_t *d = apr_pcalloc(p, sizeof(*d));

    d->map = add->map ? add->map : base->map;
    d->scope = add->map ? add->scope : base->scope;
    d->unmapped = add->unmapped != UNSET ? add->unmapped : base->unmapped;
    d->setenv = add->setenv != UNSET ? add->setenv : base->setenv;
    d->audit = add->audit != UNSET ? add->audit : base->audit;
    return d;
}

static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    srv_conf_t *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->reload_interval = UNSET;
    return c;
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    srv_conf_t *base = basev, *add = addv;
    srv_conf_t *c = apr_pcalloc(p, sizeof(*c));
    c->reload_interval = add->reload_interval != UNSET ? add->reload_interval
                                                       : base->reload_interval;
    return c;
}

#define DIR_CONF(r)                                                            \
    ((dir_conf_t *)ap_get_module_config((r)->per_dir_config, &certauthz_module))

static int conf_setenv(const dir_conf_t *d)
{
    return d->setenv != 0; /* default On */
}

static int conf_audit(const dir_conf_t *d)
{
    return d->audit == UNSET ? AUDIT_DENY : d->audit;
}

/* ---- map registry ---------------------------------------------------- */

/* Every error on a line of its own (httpd shows a multi-line directive
 * error with literal "\n"), then the first one as the directive's error.
 * At startup the lines go to the console; on a reload, to s's error log. */
static const char *format_errors(apr_pool_t *p, apr_array_header_t *errs,
                                 int at_startup, server_rec *s)
{
    const certauthz_error_t *e = (const certauthz_error_t *)errs->elts;
    const char *first = NULL;

    for (int i = 0; i < errs->nelts; i++) {
        const char *one =
            e[i].line ? apr_psprintf(p, "%s:%u: %s", e[i].file, e[i].line,
                                     e[i].reason)
                      : apr_psprintf(p, "%s: %s", e[i].file, e[i].reason);
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

/* A pool with an allocator of its own: safe to create, use and destroy
 * from any one thread at a time, independent of every other pool. */
static apr_pool_t *own_pool(const char *tag)
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

static apr_status_t stat_file(file_sig_t *sig, const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv =
        apr_stat(&fi, path,
                 APR_FINFO_SIZE | APR_FINFO_MTIME | APR_FINFO_CTIME
                     | APR_FINFO_INODE | APR_FINFO_DEV | APR_FINFO_TYPE,
                 p);

    memset(sig, 0, sizeof(*sig));
    if (rv != APR_SUCCESS && !APR_STATUS_IS_INCOMPLETE(rv))
        return rv;
    sig->ino = fi.inode;
    sig->dev = fi.device;
    sig->size = fi.size;
    sig->mtime = fi.mtime;
    sig->ctime = fi.ctime;
    return fi.filetype == APR_REG ? APR_SUCCESS : APR_EGENERAL;
}

/* When the file (content or metadata: a rename changes ctime) last changed. */
static apr_time_t last_change(const file_sig_t *sig)
{
    return sig->mtime > sig->ctime ? sig->mtime : sig->ctime;
}

static int same_sig(const file_sig_t *a, const file_sig_t *b)
{
    return a->ino == b->ino && a->dev == b->dev && a->size == b->size
           && a->mtime == b->mtime && a->ctime == b->ctime;
}

/* Load path into a new version.  Returns NULL with *err set (every error,
 * FILE:LINE: reason; logged to s when s is not NULL). */
static map_version_t *version_load(const char *path, const char **err,
                                   int at_startup, server_rec *s,
                                   apr_pool_t *errpool, apr_status_t *prv)
{
    apr_pool_t *vp = own_pool("certauthz_map");
    certauthz_map_t *map = NULL;
    apr_array_header_t *errs = NULL;
    map_version_t *v;
    apr_time_t t0 = apr_time_now();
    apr_status_t rv;

    if (!vp) {
        *err = apr_psprintf(errpool, "%s: out of memory", path);
        return NULL;
    }
    rv = certauthz_map_load(&map, path, &errs, vp);
    if (prv)
        *prv = rv;
    if (rv != APR_SUCCESS || !map) {
        *err = errs && errs->nelts
                   ? format_errors(errpool, errs, at_startup, s)
                   : apr_psprintf(errpool, "%s: cannot be loaded (%pm)", path,
                                  &rv);
        if (s && !(errs && errs->nelts))
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "CERTAUTHZ0031: %s",
                         *err);
        apr_pool_destroy(vp);
        return NULL;
    }
    v = apr_pcalloc(vp, sizeof(*v));
    v->map = map;
    v->pool = vp;
    v->gen = apr_atomic_inc32(&next_gen) + 1;
    v->loaded = apr_time_now();
    v->load_usec = v->loaded - t0;
    return v;
}

/* Take the current version: the caller must version_give() it back.
 * Lock-free: see "freeing a retired version" in the live reload section. */
static map_version_t *version_take(map_file_t *f)
{
    map_version_t *v;

    apr_atomic_inc32(&f->taking);
    v = apr_atomic_casptr(&f->current, NULL, NULL); /* an atomic read */
    apr_atomic_inc32(&v->refs);
    apr_atomic_dec32(&f->taking);
    return v;
}

static apr_status_t version_give(void *data)
{
    map_version_t *v = data;
    apr_atomic_dec32(&v->refs);
    return APR_SUCCESS;
}

/* Registry cleanup: the versions' pools are not children of pconf. */
static apr_status_t map_file_cleanup(void *data)
{
    map_file_t *f = data;
    map_version_t *v = (map_version_t *)f->current, *next;

    if (v)
        apr_pool_destroy(v->pool);
    for (v = f->retired; v; v = next) {
        next = v->next;
        apr_pool_destroy(v->pool);
    }
    f->current = NULL;
    f->retired = NULL;
    return APR_SUCCESS;
}

#define SETTLE apr_time_from_msec(500)
#define TICK apr_time_from_msec(250)
static int ends_with_newline(const char *path, apr_off_t size, apr_pool_t *p,
                             apr_status_t *rv);

/* First load of a file that may be being written (an .htaccess map read at
 * request time): the same rules as a
 * reload -- quiet for SETTLE, a final newline, the same stat() before and
 * after the read -- waiting for them a bounded time, since
 * there is no older version to keep meanwhile (at most 8 waits of 250 to
 * 500 ms).  Called without any lock. */
static map_version_t *version_load_settled(const char *path, file_sig_t *psig,
                                           const char **err, int at_startup,
                                           apr_pool_t *p)
{
    for (int tries = 0;; tries++) {
        file_sig_t sig, after;
        apr_status_t rv;
        map_version_t *v;
        int last = tries >= 8;

        if (!last && stat_file(&sig, path, p) == APR_SUCCESS) {
            apr_time_t age = apr_time_now() - last_change(&sig);
            if (age >= 0 && age < SETTLE) {
                apr_sleep(SETTLE - age);
                continue;
            }
            if (ends_with_newline(path, sig.size, p, &rv) == 0) {
                apr_sleep(TICK);
                continue;
            }
        }
        else {
            stat_file(&sig, path, p);
        }
        v = version_load(path, err, at_startup, NULL, p, NULL);
        if (last
            || (stat_file(&after, path, p) == APR_SUCCESS
                && same_sig(&sig, &after))) {
            *psig = sig;
            return v;
        }
        if (v)
            apr_pool_destroy(v->pool);
    }
}

/* Find or load the map file at path.  Returns an error message (all errors
 * found, FILE:LINE: reason each) or NULL.  interval: for a file first named
 * at request time (.htaccess); at configuration time post_config sets it
 * from the servers that name the file. */
static const char *map_file_get(map_file_t **out, const char *path,
                                server_rec *s, int interval,
                                apr_pool_t *errpool)
{
    map_file_t *f;
    const char *err = NULL;
    int at_startup = registry->lock == NULL;

    if (registry->lock)
        apr_thread_mutex_lock(registry->lock);
    f = apr_hash_get(registry->by_path, path, APR_HASH_KEY_STRING);
    if (!f) {
        file_sig_t sig;
        map_version_t *v;

        /* the signature from before the read: a change during the read is
         * seen by the next check.  While the configuration is read the file
         * is taken as it is (the administrator starts httpd; waiting would
         * slow every start); a file first named by an .htaccess at request
         * time is loaded by the reload rules, without the lock. */
        if (registry->lock) {
            apr_thread_mutex_unlock(registry->lock);
            v = version_load_settled(path, &sig, &err, at_startup, errpool);
            apr_thread_mutex_lock(registry->lock);
        }
        else {
            stat_file(&sig, path, errpool);
            v = version_load(path, &err, at_startup, NULL, errpool, NULL);
        }
        f = apr_hash_get(registry->by_path, path, APR_HASH_KEY_STRING);
        if (f && v) { /* another request loaded it meanwhile */
            apr_pool_destroy(v->pool);
            v = NULL;
            err = NULL;
        }
        if (v) {
            f = apr_pcalloc(registry->pool, sizeof(*f));
            f->path = apr_pstrdup(registry->pool, path);
            f->current = v;
            f->sig = sig;
            f->interval = interval;
            f->servers =
                apr_array_make(registry->pool, 2, sizeof(server_rec *));
            apr_pool_cleanup_register(registry->pool, f, map_file_cleanup,
                                      apr_pool_cleanup_null);
            apr_hash_set(registry->by_path, f->path, APR_HASH_KEY_STRING, f);
        }
    }
    if (f && at_startup)
        *(server_rec **)apr_array_push(f->servers) = s;
    if (registry->lock)
        apr_thread_mutex_unlock(registry->lock);
    *out = f;
    return err;
}

/* ---- live reload ---------------------------------------------------------
 *
 * Each child process runs one reload thread (started in child_init when
 * some server has a CertAuthzReloadInterval above 0).  Every interval it
 * stat()s each map file; a changed file is loaded to the side, and when
 * it loads without error the new version replaces the current one with one
 * atomic exchange.  Requests that hold the old version finish with it;
 * requests that start afterwards take the new one.
 *
 * A half-written file is never loaded.  A changed file is loaded only
 *  - when it has not changed for SETTLE (its mtime/ctime are that old, or
 *    this thread saw the same size, times and inode SETTLE ago),
 *  - when it is not empty and its last byte is a newline (a writer
 *    interrupted mid-line, or a file truncated to be rewritten in place),
 *  - and when stat() gives the same answer after the read as before it.
 * So a file replaced by rename(2) (the recommended way) is loaded about
 * SETTLE after the rename; a file rewritten in place once its writer has
 * been quiet for SETTLE.  A file that is empty or lacks the final newline
 * is logged and left alone until it changes again; so is a file with
 * errors (every FILE:LINE: reason logged, the old version stays).  A file
 * that disappears keeps its current version (logged once).
 *
 * Freeing a retired version: a request increments f->taking before it
 * reads f->current and decrements it after it incremented the version's
 * refs.  So once f->taking was seen at 0 after the exchange, every request
 * that read the old pointer has counted itself in its refs; when those are
 * 0 too, nothing holds the old version or can take it, and the thread frees
 * it.  (The atomics are APR's, full barriers; the reads here go through
 * apr_atomic_add32(x, 0) for the same ordering.)
 */
typedef struct {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    int stop;
    server_rec *s;
} reloader_t;

/* Every map file of the registry, taken under its lock (.htaccess maps may
 * be added meanwhile); the files themselves live as long as the registry. */
static apr_array_header_t *registry_files(apr_pool_t *p)
{
    apr_array_header_t *files = apr_array_make(p, 8, sizeof(map_file_t *));
    apr_hash_index_t *hi;

    apr_thread_mutex_lock(registry->lock);
    for (hi = apr_hash_first(p, registry->by_path); hi; hi = apr_hash_next(hi))
        *(map_file_t **)apr_array_push(files) = apr_hash_this_val(hi);
    apr_thread_mutex_unlock(registry->lock);
    return files;
}

static void set_last_error(map_file_t *f, const char *msg)
{
    apr_thread_mutex_lock(registry->lock);
    if (msg) {
        apr_cpystrn(f->last_error, msg, sizeof(f->last_error));
        f->last_error_at = apr_time_now();
        f->failures++;
    }
    else {
        f->last_error[0] = '\0';
        f->reloads++;
    }
    apr_thread_mutex_unlock(registry->lock);
}

static void free_retired(map_file_t *f, server_rec *s)
{
    map_version_t **pv = &f->retired;

    if (!f->retired || apr_atomic_add32(&f->taking, 0) != 0)
        return;
    while (*pv) {
        map_version_t *v = *pv;
        if (apr_atomic_add32(&v->refs, 0) == 0) {
            *pv = v->next;
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "CERTAUTHZ0036: map %s: generation %u freed", f->path,
                         v->gen);
            apr_pool_destroy(v->pool);
        }
        else {
            pv = &v->next;
        }
    }
}

/* 1 when the file's last byte is a newline, 0 when not, -1 (*rv set)
 * when it cannot be read: not a property of the file's content. */
static int ends_with_newline(const char *path, apr_off_t size, apr_pool_t *p,
                             apr_status_t *rv)
{
    apr_file_t *fd;
    apr_off_t off = size - 1;
    char c = 0;
    apr_size_t n = 1;
    int ok = 0;

    if (size < 1)
        return 0;
    if ((*rv = apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                             APR_OS_DEFAULT, p))
        != APR_SUCCESS)
        return -1;
    if ((*rv = apr_file_seek(fd, APR_SET, &off)) == APR_SUCCESS
        && (*rv = apr_file_read(fd, &c, &n)) == APR_SUCCESS && n == 1)
        ok = c == '\n';
    apr_file_close(fd);
    return *rv == APR_SUCCESS ? ok : -1;
}

/* The file could not be read this time (permissions, EMFILE, ENOMEM...):
 * not refused, tried again at the next check; logged once per state. */
static void unreadable(map_file_t *f, const file_sig_t *sig, server_rec *s,
                       apr_status_t rv)
{
    if (same_sig(sig, &f->unreadable))
        return;
    f->unreadable = *sig;
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                 "CERTAUTHZ0037: map %s cannot be read by this process "
                 "(%pm): generation %u stays in force; tried again at the "
                 "next check",
                 f->path, &rv, ((map_version_t *)f->current)->gen);
    set_last_error(f, "cannot be read");
}

/* Refuse this state of the file until it changes again. */
static void refuse(map_file_t *f, const file_sig_t *sig, server_rec *s,
                   const char *why)
{
    f->refused = *sig;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "CERTAUTHZ0034: map %s %s: not loaded, generation %u stays "
                 "in force until the file changes again",
                 f->path, why, ((map_version_t *)f->current)->gen);
    set_last_error(f, why);
}

/* One check of one file; returns 1 when it should be checked again at the
 * next tick (a change waiting to settle) rather than after its interval. */
static int check_file(map_file_t *f, server_rec *s, apr_pool_t *p)
{
    file_sig_t sig, after;
    apr_status_t rv;
    apr_time_t now = apr_time_now();
    map_version_t *v, *old;
    const char *err = NULL;

    rv = stat_file(&sig, f->path, p);
    if (rv != APR_SUCCESS) {
        if (!f->missing) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                         "CERTAUTHZ0032: map %s cannot be read (not a regular "
                         "file, or missing): generation %u stays in force",
                         f->path, ((map_version_t *)f->current)->gen);
            set_last_error(f, "cannot be read (not a regular file, or "
                              "missing)");
        }
        f->missing = 1;
        return 0;
    }
    f->missing = 0;
    if (same_sig(&sig, &f->sig) || same_sig(&sig, &f->refused))
        return 0;
    /* changed: wait until it has been quiet for SETTLE */
    if (!same_sig(&sig, &f->pending)) {
        f->pending = sig;
        f->pending_since = now;
    }
    if (now - last_change(&sig) < SETTLE && now - f->pending_since < SETTLE) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "CERTAUTHZ0033: map %s changed; waiting until it has "
                     "not changed for %d ms",
                     f->path, (int)apr_time_as_msec(SETTLE));
        return 1;
    }
    if (sig.size == 0) {
        refuse(f, &sig, s,
               "is empty (being written?  To empty a map, "
               "leave a comment line in it)");
        return 0;
    }
    switch (ends_with_newline(f->path, sig.size, p, &rv)) {
    case 0:
        refuse(f, &sig, s, "does not end with a newline (being written?)");
        return 0;
    case -1:
        unreadable(f, &sig, s, rv);
        return 0;
    }
    v = version_load(f->path, &err, 0, s, p, &rv);
    if (stat_file(&after, f->path, p) != APR_SUCCESS
        || !same_sig(&sig, &after)) {
        /* changed while it was read: try again once it settles */
        if (v)
            apr_pool_destroy(v->pool);
        return 1;
    }
    if (!v && rv != CERTAUTHZ_EBADINPUT) {
        unreadable(f, &sig, s, rv); /* I/O, not content: try again */
        return 0;
    }
    if (!v) {
        f->refused = sig;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "CERTAUTHZ0031: map %s not reloaded: generation %u "
                     "stays in force until the file changes again",
                     f->path, ((map_version_t *)f->current)->gen);
        set_last_error(f, err);
        return 0;
    }
    old = apr_atomic_xchgptr(&f->current, v);
    old->next = f->retired;
    f->retired = old;
    f->sig = sig;
    memset(&f->pending, 0, sizeof(f->pending));
    set_last_error(f, NULL);
    {
        certauthz_map_stats_t st;
        certauthz_map_stats(v->map, &st);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "CERTAUTHZ0030: map %s reloaded in %" APR_TIME_T_FMT
                     " ms: generation %u (was %u), %u rules, %u deny",
                     f->path, apr_time_as_msec(v->load_usec), v->gen, old->gen,
                     st.rules, st.deny);
    }
    free_retired(f, s);
    return 0;
}

/* One pass over every map file; returns 1 when some file waits to settle. */
static int reload_pass(server_rec *s, apr_pool_t *p)
{
    apr_array_header_t *files = registry_files(p);
    apr_time_t now = apr_time_now();
    int soon = 0;

    for (int i = 0; i < files->nelts; i++) {
        map_file_t *f = APR_ARRAY_IDX(files, i, map_file_t *);
        free_retired(f, s);
        if (f->interval <= 0 || now < f->next_check)
            continue;
        if (check_file(f, s, p)) {
            f->next_check = now; /* next tick */
            soon = 1;
        }
        else {
            f->next_check = now + apr_time_from_sec(f->interval);
        }
    }
    return soon;
}

static void *APR_THREAD_FUNC reload_main(apr_thread_t *t, void *data)
{
    reloader_t *rl = data;
    apr_pool_t *p = own_pool("certauthz_reload");
    apr_interval_time_t wait = apr_time_from_sec(1);

    apr_thread_mutex_lock(rl->mutex);
    while (p && !rl->stop) {
        apr_thread_cond_timedwait(rl->cond, rl->mutex, wait);
        if (rl->stop)
            break;
        apr_thread_mutex_unlock(rl->mutex);
        wait = reload_pass(rl->s, p) ? TICK : apr_time_from_sec(1);
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

/* ---- directives -------------------------------------------------------- */

static const char *set_map_file(cmd_parms *cmd, void *dcfg, const char *arg)
{
    dir_conf_t *d = dcfg;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const char *err;

    if (!path)
        return apr_pstrcat(cmd->pool, "CertAuthzMapFile: invalid path '", arg,
                           "'", NULL);
    srv_conf_t *sc =
        ap_get_module_config(cmd->server->module_config, &certauthz_module);

    /* the interval counts for a file first named in an .htaccess file; for
     * the configuration's own files post_config sets it */
    if ((err =
             map_file_get(&d->map, path, cmd->server,
                          sc->reload_interval == UNSET ? DEFAULT_RELOAD_INTERVAL
                                                       : sc->reload_interval,
                          cmd->pool)))
        return err;
    return NULL;
}

static const char *set_reload_interval(cmd_parms *cmd, void *dcfg,
                                       const char *arg)
{
    srv_conf_t *c =
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
    static const char *const names[] = {"Deny", "CN",  "Email", "UPN",
                                        "DN",   "URI", NULL};
    dir_conf_t *d = dcfg;
    (void)cmd;

    for (int i = 0; names[i]; i++) {
        if (!strcasecmp(arg, names[i])) {
            d->unmapped = i;
            return NULL;
        }
    }
    return "CertAuthzUnmapped must be one of Deny, CN, Email, UPN, DN, URI";
}

static const char *set_audit(cmd_parms *cmd, void *dcfg, const char *arg)
{
    dir_conf_t *d = dcfg;
    (void)cmd;

    if (!strcasecmp(arg, "Off"))
        d->audit = AUDIT_OFF;
    else if (!strcasecmp(arg, "Deny"))
        d->audit = AUDIT_DENY;
    else if (!strcasecmp(arg, "All"))
        d->audit = AUDIT_ALL;
    else
        return "CertAuthzAudit must be Off, Deny or All";
    return NULL;
}

static const char *set_setenv(cmd_parms *cmd, void *dcfg, int on)
{
    (void)cmd;
    ((dir_conf_t *)dcfg)->setenv = on;
    return NULL;
}

static const command_rec certauthz_cmds[] = {
    AP_INIT_TAKE1("CertAuthzMapFile", set_map_file, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
                  "map file (relative to ServerRoot) giving users and groups "
                  "to client certificates"),
    AP_INIT_TAKE1("CertAuthzReloadInterval", set_reload_interval, NULL,
                  RSRC_CONF,
                  "seconds between checks for a changed map file "
                  "(0 = only at restart)"),
    AP_INIT_TAKE1("CertAuthzUnmapped", set_unmapped, NULL, ACCESS_CONF,
                  "user for an unmapped certificate under AuthType "
                  "Certificate: Deny, CN, Email, UPN, DN or URI"),
    AP_INIT_FLAG("CertAuthzSetEnv", set_setenv, NULL, ACCESS_CONF,
                 "export CERTAUTHZ_* variables to the request environment"),
    AP_INIT_TAKE1("CertAuthzAudit", set_audit, NULL, ACCESS_CONF,
                  "log decisions: Off, Deny or All"),
    {NULL}};

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
 * map file.  Used only while the request holds that version (gen equal):
 * the identity's strings live in the version and in fpool. */
typedef struct {
    const map_file_t *file; /* NULL = empty */
    apr_uint32_t gen;
    certauthz_identity_t id;
} cached_id_t;

typedef struct {
    SSL *ssl;
    apr_thread_mutex_t *lock;
    X509 *cert;        /* referenced; NULL before first use */
    int cert_ok;       /* 0: a resumed session failed re-verification */
    apr_pool_t *fpool; /* facts and identities of cert */
    certauthz_facts_t *facts;
    cached_id_t ids[CACHE_IDS];
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

static int pre_handshake(conn_rec *c, SSL *ssl, int is_proxy)
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

/* ---- the decision -------------------------------------------------------- */

typedef enum {
    CERT_NONE = 0,   /* no certificate */
    CERT_UNVERIFIED, /* SSL_CLIENT_VERIFY is not SUCCESS */
    CERT_ERROR,      /* verified, but could not be read */
    CERT_OK
} cert_state_e;

static const char *const cert_state_names[] = {"no-certificate", "not-verified",
                                               "cert-error", "verified"};

/* What one request learned; kept in r->request_config so the providers,
 * the authn hook and fixups of one request share one lookup. */
typedef struct {
    cert_state_e state;
    const char *verify;
    const certauthz_facts_t *facts;
    const map_file_t *file; /* map in scope (NULL: none) */
    map_version_t *ver;     /* its version, held until the request ends */
    certauthz_identity_t id;
} req_state_t;

static conn_rec *tls_conn(conn_rec *c)
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
                                             const map_file_t *file,
                                             const map_version_t *ver,
                                             certauthz_identity_t *id,
                                             int *have_id, int *unverified)
{
    const certauthz_facts_t *facts = NULL;
    X509 *x;

    apr_thread_mutex_lock(cc->lock);
    x = peer_cert(cc->ssl);
    if (x && x != cc->cert && cc->nretired < MAX_RETIRED) {
        apr_pool_t *np = own_pool("certauthz_facts");
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
            if (cc->ids[i].file == file) {
                slot = &cc->ids[i];
                break;
            }
            if (!cc->ids[i].file && !slot)
                slot = &cc->ids[i];
        }
        if (slot && (slot->file != file || slot->gen != ver->gen)) {
            /* a free slot, or the file was reloaded: resolve once, keep */
            certauthz_map_resolve(&slot->id, ver->map, facts, cc->fpool);
            slot->file = file;
            slot->gen = ver->gen;
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

static req_state_t *decide(request_rec *r, const dir_conf_t *d)
{
    req_state_t *st =
        ap_get_module_config(r->request_config, &certauthz_module);
    conn_cache_t *cc;
    int have_id = 0, unverified = 0;

    if (st && st->file == d->map)
        return st;
    if (!st) {
        st = apr_pcalloc(r->pool, sizeof(*st));
        ap_set_module_config(r->request_config, &certauthz_module, st);
    }
    memset(st, 0, sizeof(*st));
    st->file = d->map;
    if (d->map) {
        /* one version for the whole request: every Require line, the
         * deny check, AuthType and the environment agree */
        st->ver = version_take(d->map);
        apr_pool_cleanup_register(r->pool, st->ver, version_give,
                                  apr_pool_cleanup_null);
    }
    st->verify = ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                                   "SSL_CLIENT_VERIFY");
    if (!st->verify || !*st->verify || !strcmp(st->verify, "NONE")) {
        st->state = CERT_NONE;
        return st;
    }
    if (strcmp(st->verify, "SUCCESS")) {
        st->state = CERT_UNVERIFIED;
        return st;
    }
    cc = ap_get_module_config(tls_conn(r->connection)->conn_config,
                              &certauthz_module);
    if (cc && cc->lock)
        st->facts = cached_facts(r, cc, st->file, st->ver, &st->id, &have_id,
                                 &unverified);
    else
        st->facts = uncached_facts(r);
    if (unverified) {
        st->state = CERT_UNVERIFIED;
        return st;
    }
    if (!st->facts) {
        st->state = CERT_ERROR;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "CERTAUTHZ0001: verified client certificate could not "
                      "be read");
        return st;
    }
    st->state = CERT_OK;
    if (st->ver && !have_id)
        certauthz_map_resolve(&st->id, st->ver->map, st->facts, r->pool);
    return st;
}

static const char *rule_where(apr_pool_t *p, const certauthz_rule_t *rule)
{
    if (!rule)
        return "-";
    return apr_psprintf(p, "%s:%u", certauthz_rule_file(rule),
                        certauthz_rule_line(rule));
}

/* Why a request got no identity, for logs. */
static const char *refusal_reason(const req_state_t *st)
{
    if (st->state != CERT_OK)
        return cert_state_names[st->state];
    if (!st->ver)
        return "no-map";
    switch (st->id.outcome) {
    case CERTAUTHZ_DENIED:
        return "deny-rule";
    case CERTAUTHZ_UNMAPPED:
        return st->id.rule ? "unusable-rule" : "unmapped";
    default:
        return "mapped";
    }
}

/* The first value of a single-valued fact, or "-". */
static const char *fact_of(const req_state_t *st, certauthz_type_e t)
{
    return st->facts && st->facts->of[t].n ? st->facts->of[t].v[0].text : "-";
}

static const char *sha256_of(const req_state_t *st)
{
    return fact_of(st, CERTAUTHZ_SHA256);
}

/* ---- decision counters ---------------------------------------------------
 * Server-wide since the last (graceful) restart: 64-bit counters in an
 * anonymous shared memory segment made by the parent in post_config and
 * inherited by every child; incremented with one atomic add, no lock.
 * Where anonymous shared memory is missing they are per process (the
 * status page says which). */
enum {
    CNT_GRANTED = 0,
    CNT_NO_CERT,    /* no certificate */
    CNT_UNVERIFIED, /* not verified (GENEROUS, FAILED:*, resumed session) */
    CNT_DENY_RULE,  /* a deny rule */
    CNT_UNMAPPED,   /* no rule maps it (or no map in scope) */
    CNT_MISMATCH,   /* mapped, but not the user/group/fact/issuer required */
    CNT_ERROR,      /* a verified certificate that could not be read */
    CNT_N
};
static const char *const cnt_names[CNT_N] = {
    "granted",  "no-certificate", "not-verified", "deny-rule",
    "unmapped", "rule-mismatch",  "cert-error"};

typedef struct {
    volatile apr_uint64_t n[CNT_N];
} counters_t;

static counters_t *counters;
static int counters_shared;

static int counter_of(int granted, const char *reason)
{
    if (granted)
        return CNT_GRANTED;
    if (!strcmp(reason, "no-certificate"))
        return CNT_NO_CERT;
    if (!strcmp(reason, "not-verified"))
        return CNT_UNVERIFIED;
    if (!strcmp(reason, "deny-rule"))
        return CNT_DENY_RULE;
    if (!strcmp(reason, "cert-error"))
        return CNT_ERROR;
    if (strstr(reason, "-mismatch"))
        return CNT_MISMATCH;
    return CNT_UNMAPPED; /* unmapped, unusable-rule, no-map */
}

/* One audit line per decision of this module (each Require cert-* line
 * evaluated, the deny-list check, AuthType Certificate), and one count.
 * Format (stable; README "Decision logs"): CERTAUTHZ0100: then key="value"
 * pairs in this order, separated by one space:
 *   decision check reason user groups rule sha256 serial issuer client
 *   method uri
 * every value quoted and written by certauthz_audit_value() ('"', '%',
 * '\\' and control characters as %HH; "-" for none). */
static void audit(request_rec *r, const dir_conf_t *d, const req_state_t *st,
                  const char *what, int granted, const char *reason)
{
    int level = conf_audit(d);
    apr_pool_t *p = r->pool;
    const char *user = NULL, *groups = NULL, *sha = NULL, *serial = NULL;

    if (counters)
        apr_atomic_inc64(&counters->n[counter_of(granted, reason)]);
    if (level == AUDIT_OFF || (level == AUDIT_DENY && granted))
        return;
    if (r->user)
        user = r->user;
    else if (st->id.outcome == CERTAUTHZ_MAPPED)
        user = st->id.user;
    if (st->id.outcome == CERTAUTHZ_MAPPED && st->id.ngroups)
        groups = certauthz_identity_groups(&st->id, p);
    if (st->facts) {
        sha = fact_of(st, CERTAUTHZ_SHA256);
        serial = fact_of(st, CERTAUTHZ_SERIAL);
    }
#define V(x) certauthz_audit_value((x), p)
    ap_log_rerror(
        APLOG_MARK, APLOG_NOTICE, 0, r,
        "CERTAUTHZ0100: decision=\"%s\" check=\"%s\" reason=\"%s\" "
        "user=\"%s\" groups=\"%s\" rule=\"%s\" sha256=\"%s\" "
        "serial=\"%s\" issuer=\"%s\" client=\"%s\" method=\"%s\" "
        "uri=\"%s\"",
        granted ? "granted" : "denied", V(what), V(reason), V(user), V(groups),
        V(st->id.rule ? rule_where(p, st->id.rule) : NULL), V(sha), V(serial),
        V(st->facts && st->facts->issuer ? certauthz_dn_text(st->facts->issuer)
                                         : NULL),
        V(r->useragent_ip), V(r->method), V(r->uri));
#undef V
}

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

typedef struct {
    const char *name;
    check_kind_e kind;
    certauthz_type_e type; /* CHECK_FACT */
} provider_row_t;

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
static int evaluate(const require_t *req, const req_state_t *st,
                    const char **reason)
{
    const certauthz_identity_t *id = &st->id;
    int i;

    *reason = refusal_reason(st);
    if (st->state != CERT_OK)
        return 0;
    if (st->ver && id->outcome == CERTAUTHZ_DENIED)
        return 0;
    switch (req->row->kind) {
    case CHECK_MAPPED:
        return id->outcome == CERTAUTHZ_MAPPED;
    case CHECK_USER:
        if (id->outcome != CERTAUTHZ_MAPPED)
            return 0;
        *reason = "user-mismatch";
        return name_in(id->user, req->names, req->n);
    case CHECK_GROUP:
        if (id->outcome != CERTAUTHZ_MAPPED)
            return 0;
        *reason = "group-mismatch";
        for (i = 0; i < id->ngroups; i++)
            if (name_in(id->groups[i], req->names, req->n))
                return 1;
        return 0;
    case CHECK_FACT:
        *reason = "fact-mismatch";
        for (i = 0; i < req->n; i++)
            if (certauthz_selector_match(&req->sels[i], st->facts, NULL) == 1)
                return 1;
        return 0;
    case CHECK_ISSUER:
        *reason = "issuer-mismatch";
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
    const dir_conf_t *d = DIR_CONF(r);
    req_state_t *st;
    const char *reason;
    int ok;
    (void)line;

    if (!req)
        return AUTHZ_GENERAL_ERROR;
    if (!d->map && req->row->kind <= CHECK_MAPPED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "CERTAUTHZ0010: Require %s (%s) needs a "
                      "CertAuthzMapFile, but none applies to <%s>: denied",
                      req->row->name, req->where,
                      certauthz_log_escape(r->uri, r->pool));
        /* evaluate() refuses (no identity without a map) and audits it */
    }
    st = decide(r, d);
    ok = evaluate(req, st, &reason);
    audit(r, d, st, apr_pstrcat(r->pool, "Require ", req->row->name, NULL), ok,
          ok ? "match" : reason);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "CERTAUTHZ0011: Require %s: %s (%s; rule %s)", req->row->name,
                  ok ? "granted" : "denied", ok ? "match" : reason,
                  rule_where(r->pool, st->id.rule));
    return ok ? AUTHZ_GRANTED : AUTHZ_DENIED;
}

static const provider_row_t provider_rows[] = {
    {"cert-user", CHECK_USER, 0},
    {"cert-group", CHECK_GROUP, 0},
    {"cert-mapped", CHECK_MAPPED, 0},
    {"cert-cn", CHECK_FACT, CERTAUTHZ_CN},
    {"cert-email", CHECK_FACT, CERTAUTHZ_EMAIL},
    {"cert-dns", CHECK_FACT, CERTAUTHZ_DNS},
    {"cert-uri", CHECK_FACT, CERTAUTHZ_URI},
    {"cert-upn", CHECK_FACT, CERTAUTHZ_UPN},
    {"cert-issuer", CHECK_ISSUER, 0},
    {"cert-sha256", CHECK_FACT, CERTAUTHZ_SHA256},
};
#define NPROVIDERS (sizeof(provider_rows) / sizeof(provider_rows[0]))

/* httpd hands parse functions no provider name: one trampoline per row. */
/* clang-format off */
#define PARSER(i)                                                         \
    static const char *parse_row_##i(cmd_parms *cmd, const char *line,    \
                                     const void **parsed)                 \
    {                                                                     \
        return parse_require(cmd, line, parsed, &provider_rows[i]);       \
    }
PARSER(0) PARSER(1) PARSER(2) PARSER(3) PARSER(4)
PARSER(5) PARSER(6) PARSER(7) PARSER(8) PARSER(9)
    /* clang-format on */

    static const authz_provider providers[NPROVIDERS] = {
        {check_require, parse_row_0}, {check_require, parse_row_1},
        {check_require, parse_row_2}, {check_require, parse_row_3},
        {check_require, parse_row_4}, {check_require, parse_row_5},
        {check_require, parse_row_6}, {check_require, parse_row_7},
        {check_require, parse_row_8}, {check_require, parse_row_9},
};

/* ---- AuthType Certificate --------------------------------------------- */

static int is_our_auth_type(request_rec *r)
{
    const char *t = ap_auth_type(r);
    return t && !strcasecmp(t, AUTH_TYPE);
}

/* The user under AuthType Certificate, or NULL. */
static const char *authn_user(request_rec *r, const dir_conf_t *d,
                              const req_state_t *st)
{
    const certauthz_values_t *v;
    static const certauthz_type_e fallback[] = {
        CERTAUTHZ_NTYPES, CERTAUTHZ_CN, CERTAUTHZ_EMAIL,
        CERTAUTHZ_UPN,    CERTAUTHZ_DN, CERTAUTHZ_URI};
    (void)r;

    if (st->state != CERT_OK)
        return NULL;
    if (st->ver && st->id.outcome == CERTAUTHZ_DENIED)
        return NULL;
    if (st->ver && st->id.outcome == CERTAUTHZ_MAPPED)
        return st->id.user;
    if (st->ver && st->id.rule)
        return NULL; /* a rule matched but its substitution was unusable */
    if (d->unmapped <= UNMAPPED_DENY)
        return NULL;
    v = &st->facts->of[fallback[d->unmapped]];
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
static const char *apply_authn(request_rec *r, const dir_conf_t *d,
                               const req_state_t *st)
{
    const char *user = authn_user(r, d, st);

    if (r->user && (!user || strcmp(r->user, user)))
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "CERTAUTHZ0021: AuthType Certificate replaces user "
                      "'%s' set by another module",
                      certauthz_log_escape(r->user, r->pool));
    r->user = user ? apr_pstrdup(r->pool, user) : NULL;
    if (user)
        r->ap_auth_type = AUTH_TYPE;
    return user;
}

/* access_checker, after mod_ssl's (which may renegotiate).
 * 1. A certificate that the map in scope deny-lists is refused here, with
 *    403, whatever the Require lines say: inside Require not / RequireNone
 *    a provider's "denied" would otherwise turn into a grant.
 * 2. Under AuthType Certificate, set the user early, so that mod_authz_core
 *    decides Require user/group/valid-user in its user-less pass (403). */
static int access_check(request_rec *r)
{
    const dir_conf_t *d = DIR_CONF(r);
    const req_state_t *st;
    int ours = is_our_auth_type(r);

    if (!d->map && !ours)
        return DECLINED;
    st = decide(r, d);
    if (d->map && st->state == CERT_OK && st->id.outcome == CERTAUTHZ_DENIED) {
        audit(r, d, st, "deny list", 0, "deny-rule");
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "CERTAUTHZ0022: certificate deny-listed by %s: 403",
                      rule_where(r->pool, st->id.rule));
        return HTTP_FORBIDDEN;
    }
    if (ours && apply_authn(r, d, st))
        audit(r, d, st, "AuthType Certificate", 1,
              st->id.outcome == CERTAUTHZ_MAPPED ? "mapped"
                                                 : "unmapped-fallback");
    return DECLINED;
}

/* check_user_id: reached when authorization needs a user that the early
 * step could not give (or that another check_user_id hook overwrote). */
static int authn_check(request_rec *r)
{
    const dir_conf_t *d;
    const req_state_t *st;

    if (!is_our_auth_type(r))
        return DECLINED;
    d = DIR_CONF(r);
    st = decide(r, d);
    if (apply_authn(r, d, st))
        return OK;
    audit(r, d, st, "AuthType Certificate", 0, refusal_reason(st));
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "CERTAUTHZ0020: AuthType Certificate: no identity (%s): 403",
                  refusal_reason(st));
    return HTTP_FORBIDDEN;
}

static int note_auth_failure(request_rec *r, const char *auth_type)
{
    (void)r;
    return strcasecmp(auth_type, AUTH_TYPE) ? DECLINED : OK;
}

/* ---- environment ---------------------------------------------------------- */

static int fixups(request_rec *r)
{
    const dir_conf_t *d = DIR_CONF(r);
    const req_state_t *st;

    if (!conf_setenv(d))
        return DECLINED;
    if (!ap_ssl_conn_is_ssl(tls_conn(r->connection)))
        return DECLINED;
    st = decide(r, d);
    if (st->state != CERT_OK)
        return DECLINED;
    apr_table_set(r->subprocess_env, "CERTAUTHZ_CERT_SHA256", sha256_of(st));
    if (st->ver && st->id.outcome == CERTAUTHZ_MAPPED) {
        apr_table_set(r->subprocess_env, "CERTAUTHZ_USER", st->id.user);
        apr_table_setn(r->subprocess_env, "CERTAUTHZ_GROUPS",
                       certauthz_identity_groups(&st->id, r->pool));
        apr_table_setn(r->subprocess_env, "CERTAUTHZ_RULE",
                       rule_where(r->pool, st->id.rule));
    }
    return DECLINED;
}

/* ---- server-status ---------------------------------------------------------
 * With mod_status: the decision counters (server-wide) and the map files
 * as the process answering sees them (each child reloads on its own).
 * ?auto gives the same as "Key: value" lines. */
static void status_map_row(request_rec *r, map_file_t *f, int terse)
{
    map_version_t *v = version_take(f);
    certauthz_map_stats_t st;
    unsigned exact = 0;
    char when[APR_RFC822_DATE_LEN];
    apr_uint32_t reloads, failures;
    char err[sizeof(f->last_error)];

    certauthz_map_stats(v->map, &st);
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        exact += st.exact[t];
    apr_rfc822_date(when, v->loaded);
    apr_thread_mutex_lock(registry->lock);
    reloads = f->reloads;
    failures = f->failures;
    memcpy(err, f->last_error, sizeof(err));
    apr_thread_mutex_unlock(registry->lock);
    if (terse) {
        ap_rprintf(r,
                   "CertAuthzMap: %s generation=%u loaded=%" APR_TIME_T_FMT
                   " rules=%u exact=%u glob=%u regex=%u deny=%u sections=%u "
                   "reloads=%u failures=%u interval=%d last_error=%s\n",
                   certauthz_log_escape(f->path, r->pool), v->gen,
                   apr_time_sec(v->loaded), st.rules, exact, st.globs,
                   st.regexes, st.deny, st.sections, reloads, failures,
                   f->interval,
                   err[0] ? certauthz_log_escape(err, r->pool) : "-");
    }
    else {
        ap_rprintf(r,
                   "<tr><td>%s</td><td>%u</td><td>%s</td><td>%u</td>"
                   "<td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
                   "<td>%u / %u</td><td>%s</td><td>%s</td></tr>\n",
                   ap_escape_html(r->pool, f->path), v->gen, when, st.rules,
                   exact, st.globs, st.regexes, st.deny, st.sections, reloads,
                   failures,
                   f->interval ? apr_psprintf(r->pool, "%d s", f->interval)
                               : "restart only",
                   err[0] ? ap_escape_html(r->pool, err) : "-");
    }
    version_give(v);
}

static int status_hook(request_rec *r, int flags)
{
    int terse = flags & AP_STATUS_SHORT;
    apr_array_header_t *files;

    if (!registry || !registry->lock)
        return OK;
    if (terse) {
        for (int i = 0; i < CNT_N; i++)
            ap_rprintf(r, "CertAuthzDecisions-%s: %" APR_UINT64_T_FMT "\n",
                       cnt_names[i],
                       counters ? apr_atomic_add64(&counters->n[i], 0) : 0);
        ap_rprintf(r, "CertAuthzDecisionsScope: %s\n",
                   counters_shared ? "server" : "process");
    }
    else {
        ap_rputs("<hr />\n<h2>mod_certauthz</h2>\n<p>Decisions since the "
                 "last restart (",
                 r);
        ap_rputs(counters_shared ? "all processes" : "this process only", r);
        ap_rputs("; one per Require cert-* line evaluated, deny-list check "
                 "and AuthType Certificate):</p>\n<table border=\"1\">"
                 "<tr>",
                 r);
        for (int i = 0; i < CNT_N; i++)
            ap_rprintf(r, "<th>%s</th>", cnt_names[i]);
        ap_rputs("</tr>\n<tr>", r);
        for (int i = 0; i < CNT_N; i++)
            ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>",
                       counters ? apr_atomic_add64(&counters->n[i], 0) : 0);
        ap_rprintf(r,
                   "</tr>\n</table>\n<p>Map files as process %" APR_PID_T_FMT
                   " sees them (each process reloads on its own):</p>\n"
                   "<table border=\"1\"><tr><th>file</th><th>generation"
                   "</th><th>loaded</th><th>rules</th><th>exact</th>"
                   "<th>glob</th><th>regex</th><th>deny</th><th>issuer "
                   "sections</th><th>reloads / failures</th><th>checked"
                   "</th><th>last reload error</th></tr>\n",
                   getpid());
    }
    files = registry_files(r->pool);
    for (int i = 0; i < files->nelts; i++)
        status_map_row(r, APR_ARRAY_IDX(files, i, map_file_t *), terse);
    if (!terse)
        ap_rputs("</table>\n", r);
    return OK;
}

/* ---- lifecycle ------------------------------------------------------------ */

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    registry = apr_pcalloc(pconf, sizeof(*registry));
    apr_pool_create(&registry->pool, pconf);
    apr_pool_tag(registry->pool, "certauthz_registry");
    registry->by_path = apr_hash_make(registry->pool);
    return OK;
}

static apr_status_t reset_counters(void *data)
{
    *(counters_t **)data = NULL; /* made again after a restart */
    return APR_SUCCESS;
}

static int server_interval(server_rec *s)
{
    const srv_conf_t *c =
        ap_get_module_config(s->module_config, &certauthz_module);
    return c->reload_interval == UNSET ? DEFAULT_RELOAD_INTERVAL
                                       : c->reload_interval;
}

/* Each map file is checked at the shortest non-zero interval of the
 * servers whose configuration names it (0 when all say 0). */
static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    apr_hash_index_t *hi;
    (void)plog;
    (void)pconf;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    if (!counters) {
        apr_shm_t *shm;
        if (apr_shm_create(&shm, sizeof(*counters), NULL, pconf)
            == APR_SUCCESS) {
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
    registry->any_reload = 0;
    for (server_rec *vs = s; vs; vs = vs->next)
        if (server_interval(vs) > 0)
            registry->any_reload = 1;
    for (hi = apr_hash_first(ptemp, registry->by_path); hi;
         hi = apr_hash_next(hi)) {
        map_file_t *f = apr_hash_this_val(hi);
        const map_version_t *v = (const map_version_t *)f->current;
        certauthz_map_stats_t st;
        unsigned exact = 0;

        f->interval = 0;
        for (int i = 0; i < f->servers->nelts; i++) {
            int n = server_interval(APR_ARRAY_IDX(f->servers, i, server_rec *));
            if (n > 0 && (!f->interval || n < f->interval))
                f->interval = n;
        }
        certauthz_map_stats(v->map, &st);
        for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
            exact += st.exact[t];
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "CERTAUTHZ0002: map %s loaded in %" APR_TIME_T_FMT
                     " ms: %u rules (%u exact, %u glob, %u regex), %u deny, "
                     "%u issuer sections; checked for changes %s%d s",
                     f->path, apr_time_as_msec(v->load_usec), st.rules, exact,
                     st.globs, st.regexes, st.deny, st.sections,
                     f->interval ? "every " : "never: ", f->interval);
    }
    return OK;
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    if (!registry || registry->lock)
        return;
    apr_thread_mutex_create(&registry->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (registry->lock && registry->any_reload)
        reloader_start(p, s);
}

static void register_hooks(apr_pool_t *p)
{
    static const char *const after_ssl[] = {"mod_ssl.c", NULL};

    for (size_t i = 0; i < NPROVIDERS; i++)
        ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP,
                                  provider_rows[i].name, AUTHZ_PROVIDER_VERSION,
                                  &providers[i], AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, pre_handshake, pre_handshake, NULL, NULL,
                      APR_HOOK_MIDDLE);
    ap_hook_check_access(access_check, after_ssl, NULL, APR_HOOK_LAST,
                         AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authn(authn_check, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(fixups, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA certauthz_module = {STANDARD20_MODULE_STUFF,
                                                  create_dir_conf,
                                                  merge_dir_conf,
                                                  create_srv_conf,
                                                  merge_srv_conf,
                                                  certauthz_cmds,
                                                  register_hooks
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                                                  ,
                                                  AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
