/*
 * mod_certauthz_source_file.c -- the map file source: versions of a map
 * read from a file named by CertAuthzMapFile (mod_certauthz_private.h,
 * "map sources").
 *
 * When a changed file may be read is the core's file-change policy
 * (certauthz_watch.h), the same for the first load at startup (the file
 * taken as it is), the first load of an .htaccess map (at most 8 waits for
 * a change to settle, then taken as it is) and every live reload (never a
 * half-written file; the version in force stays).  This file does the
 * loading and the log lines of what the policy decided.
 *
 * One parse per server.  With an image store (mod_certauthz_store.c) every
 * process follows the map's pointer first: a newer image another process
 * compiled is opened (checked, mapped read-only, shared) and its source
 * state becomes the one this watch has in force; a source state another
 * process refused is not tried again.  Only when the file has changed past
 * what the pointer says does a process parse it, and only the process that
 * takes the map's compile lock: it parses, publishes the image (or the
 * refusal) and moves the pointer; the others look again at the next tick
 * and follow.  A process that dies while it compiles releases the lock
 * (the kernel does) and leaves the pointer as it was: the next process to
 * look compiles it.  Without a store each process parses for itself.
 *
 * State: one certauthz_watch_t and the last pointer seen per source, in the
 * map's pool.  first() uses it in the thread that tries to register the
 * map (each such attempt has a source of its own; the registry keeps the
 * one that wins), then the reload thread alone.
 */
#include "certauthz_image.h"
#include "mod_certauthz_private.h"

typedef struct {
    certauthz_watch_t watch;
    const char *key;          /* the registry's key of the map */
    cz_pointer_t ptr;         /* the pointer as last read */
    apr_uint64_t seen_serial; /* the last pointer acted on */
    int own_copy;             /* the version in force is this process's own
                                 parse, not an image */
    int lock_warned;          /* CERTAUTHZ0043 said for the lock */
} file_source_t;

static const char *file_create(cz_source_t *src, apr_pool_t *p)
{
    file_source_t *f = apr_pcalloc(p, sizeof(*f));

    certauthz_watch_init(&f->watch, CERTAUTHZ_WATCH_SETTLE);
    f->key = apr_pstrcat(p, src->type->kind, ":", src->name, NULL);
    src->data = f;
    return NULL;
}

/* A precompiled image beside the file (certauthz compile: FILE.img) of
 * exactly its present content, checked whole, instead of a parse: 1 when
 * out holds it.  An image that is there but cannot be used is said (once
 * per load) and the file is parsed. */
static int precompiled(const cz_source_t *src, server_rec *s, cz_loaded_t *out,
                       apr_pool_t *vp, apr_pool_t *ptemp)
{
    const char *img = apr_pstrcat(ptemp, src->name, ".img", NULL);
    certauthz_image_info_t info;
    certauthz_map_t *map = NULL;
    apr_finfo_t fi;
    char hex[65];
    const char *why;

    if (apr_stat(&fi, img, APR_FINFO_TYPE, ptemp) != APR_SUCCESS)
        return 0;
    if (certauthz_image_info(&info, img, &why, ptemp) != APR_SUCCESS)
        goto unused;
    if (certauthz_file_sha256(src->name, hex, ptemp) != APR_SUCCESS)
        return 0; /* the parse says why */
    if (strcmp(hex, info.source_sha256)) {
        why = "it was compiled from another content of the map";
        goto unused;
    }
    if (certauthz_image_open(&map, img, 1, &why, vp) != APR_SUCCESS)
        goto unused;
    certauthz_map_set_name(map, src->name, vp);
    out->map = map;
    out->precompiled = apr_pstrdup(vp, img);
    if (s) /* at startup CERTAUTHZ0002 says it */
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "CERTAUTHZ0049: map %s: taken from its precompiled "
                     "image %s (not parsed)",
                     src->name, img);
    return 1;
unused:
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "CERTAUTHZ0049: map %s: its precompiled image %s is not "
                 "used (%s): the map is parsed",
                 src->name, img, why);
    return 0;
}

/* Parse the file into a pool of its own.  On failure out->why holds every
 * error (logged to s, as CERTAUTHZ0031 lines, when s is not NULL). */
static apr_status_t load(const cz_source_t *src, int at_startup, server_rec *s,
                         cz_loaded_t *out, apr_pool_t *ptemp)
{
    apr_pool_t *vp = cz_own_pool("certauthz_map");
    apr_array_header_t *errs = NULL;
    certauthz_map_t *map = NULL;
    apr_time_t t0 = apr_time_now();
    apr_status_t rv;

    out->map = NULL;
    if (!vp) {
        out->why = apr_psprintf(ptemp, "%s: out of memory", src->name);
        return APR_ENOMEM;
    }
    if (precompiled(src, s, out, vp, ptemp)) {
        out->pool = vp;
        out->usec = apr_time_now() - t0;
        return APR_SUCCESS;
    }
    rv = certauthz_map_load(&map, src->name, &errs, vp);
    if (rv == APR_SUCCESS && map) {
        out->map = map;
        out->pool = vp;
        out->usec = apr_time_now() - t0;
        return APR_SUCCESS;
    }
    if (errs && errs->nelts) {
        out->why = cz_format_errors(ptemp, errs, at_startup, s);
    }
    else {
        out->why =
            apr_psprintf(ptemp, "%s: cannot be loaded (%pm)", src->name, &rv);
        if (s)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "CERTAUTHZ0031: %s",
                         out->why);
    }
    apr_pool_destroy(vp);
    return rv == APR_SUCCESS ? APR_EGENERAL : rv;
}

/* For a copy of this process's own, whose generation is numbered apart
 * from the store's: an image of the same state of the file, or of a later
 * one (never an older image: say the parent could not publish at a restart
 * and an old pointer is left over). */
static int not_older(const certauthz_file_sig_t *img,
                     const certauthz_file_sig_t *mine)
{
    return certauthz_file_sig_same(img, mine)
           || certauthz_file_sig_changed(img)
                  > certauthz_file_sig_changed(mine);
}

/* out holds the image f->ptr names: its source state is in force now (and
 * a later state it refused is remembered), this pointer acted on. */
static void took_image(file_source_t *f, cz_loaded_t *out)
{
    certauthz_watch_adopt(&f->watch, &f->ptr.source);
    if (f->ptr.has_refused)
        certauthz_watch_refuse(&f->watch, &f->ptr.refused);
    f->seen_serial = f->ptr.serial;
    f->own_copy = 0;
    out->adopted = 1;
}

/* Follow the map's pointer (store only): a newer image than generation
 * gen is opened into out (NEW), a source state another process refused is
 * remembered (FAILED, out->why); SAME when there is nothing to follow.  A
 * pointer is acted on once: an image refused is logged once, and the
 * version in force stays (the file itself is looked at next). */
static cz_refresh_e follow(const cz_source_t *src, apr_uint32_t gen,
                           cz_loaded_t *out, server_rec *s, apr_pool_t *ptemp)
{
    file_source_t *f = src->data;
    const char *why;

    if (!cz_store_enabled()
        || cz_store_read(f->key, &f->ptr, &why, ptemp) != APR_SUCCESS
        || f->ptr.serial == f->seen_serial)
        return CZ_REFRESH_SAME;
    f->seen_serial = f->ptr.serial;
    /* newer; or, for a copy of this process's own, an image of the very
     * state of the file it holds (its generation may be numbered apart) */
    if (f->ptr.gen
        && (f->own_copy ? not_older(&f->ptr.source, &f->watch.loaded)
                        : f->ptr.gen > gen)) {
        apr_status_t rv = cz_store_open(f->key, &f->ptr, out, &why, ptemp);
        /* an image removed as this process opened it: changes came fast,
         * the pointer has moved on (a few times at most) */
        for (int i = 0; i < 3 && APR_STATUS_IS_ENOENT(rv); i++) {
            const char *w2;
            cz_pointer_t again;
            if (cz_store_read(f->key, &again, &w2, ptemp) != APR_SUCCESS
                || again.serial == f->ptr.serial || again.gen <= gen)
                break;
            f->ptr = again;
            f->seen_serial = again.serial;
            rv = cz_store_open(f->key, &f->ptr, out, &why, ptemp);
        }
        if (rv == APR_SUCCESS) {
            took_image(f, out);
            return CZ_REFRESH_NEW;
        }
        if (s)
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "CERTAUTHZ0041: map %s: %s: generation %u stays "
                         "in force",
                         src->name, why, gen);
        out->why = apr_pstrdup(ptemp, why);
        return CZ_REFRESH_FAILED;
    }
    if (f->ptr.has_refused
        && !certauthz_file_sig_same(&f->ptr.refused, &f->watch.loaded)
        && !certauthz_file_sig_same(&f->ptr.refused, &f->watch.refused)) {
        certauthz_watch_refuse(&f->watch, &f->ptr.refused);
        if (s)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "CERTAUTHZ0044: map %s was refused by another "
                         "process (%s): generation %u stays in force",
                         src->name, f->ptr.why, gen);
        out->why = apr_pstrdup(ptemp, f->ptr.why);
        return CZ_REFRESH_FAILED;
    }
    return CZ_REFRESH_SAME;
}

/* After this process parsed the file (the compile lock held): share it. */
static void publish(const cz_source_t *src, cz_loaded_t *out, server_rec *s,
                    apr_pool_t *ptemp)
{
    file_source_t *f = src->data;

    out->state = f->watch.loaded;
    if (cz_store_publish(f->key, &f->ptr, out, s, ptemp) == APR_SUCCESS)
        f->seen_serial = f->ptr.serial;
    f->own_copy = out->image == NULL;
}

/* A first version this process parsed at request time: the image of the
 * same state of the file if another process published one meanwhile (its
 * lock is waited for, a bounded while: it may be compiling this very
 * state), else this one, published. */
static void share_first(const cz_source_t *src, cz_loaded_t *out,
                        apr_pool_t *ptemp)
{
    file_source_t *f = src->data;
    cz_store_lock_t *lk = NULL;
    cz_loaded_t img;
    const char *why;

    int held = 1;

    for (int i = 0;
         i < 200 && held && !(lk = cz_store_trylock(f->key, 0, &held, ptemp));
         i++)
        if (held)
            apr_sleep(apr_time_from_msec(50));
    if (!lk) {
        f->own_copy = 1; /* a copy of this process's own */
        return;
    }
    if (cz_store_read(f->key, &f->ptr, &why, ptemp) != APR_SUCCESS)
        memset(&f->ptr, 0, sizeof(f->ptr));
    if (f->ptr.gen && certauthz_file_sig_same(&f->ptr.source, &f->watch.loaded)
        && cz_store_open(f->key, &f->ptr, &img, &why, ptemp) == APR_SUCCESS) {
        apr_pool_destroy(out->pool);
        cz_store_trim();
        *out = img;
        took_image(f, out);
    }
    else {
        /* only the file as it is now: a parse of an older state would roll
         * the whole server back */
        certauthz_file_obs_t now;
        certauthz_watch_observe(&now, src->name, 0, ptemp);
        if (now.stat_rv == APR_SUCCESS
            && certauthz_file_sig_same(&now.sig, &f->watch.loaded))
            publish(src, out, NULL, ptemp);
        else
            f->own_copy = 1;
    }
    cz_store_unlock(lk);
}

static void file_first(cz_source_t *src, int waits, int at_startup,
                       cz_loaded_t *out, apr_pool_t *ptemp)
{
    certauthz_watch_t *w = &((file_source_t *)src->data)->watch;

    /* a child's first version of a map the parent shared: the store's
     * current image as it is (the file may have changed since: the reload
     * thread takes that, by the rules of a reload); without one, the file,
     * as an .htaccess map's first load takes it */
    if (waits == CZ_FIRST_SHARED) {
        file_source_t *f = src->data;
        const char *why;
        waits = 8;
        if (cz_store_enabled()
            && cz_store_read(f->key, &f->ptr, &why, ptemp) == APR_SUCCESS
            && f->ptr.gen
            && cz_store_open(f->key, &f->ptr, out, &why, ptemp)
                   == APR_SUCCESS) {
            took_image(f, out);
            return;
        }
    }

    for (int tries = 0;; tries++) {
        int last = tries >= waits;
        certauthz_file_obs_t after;
        certauthz_watch_e v;
        apr_status_t rv;

        v = certauthz_watch_poll(w, src->name, apr_time_now(), ptemp);
        if (!last && v == CERTAUTHZ_WATCH_SETTLING) {
            apr_interval_time_t left =
                certauthz_watch_settle_left(w, apr_time_now());
            apr_sleep(left > 0 ? left : CERTAUTHZ_WATCH_TICK);
            continue;
        }
        if (!last
            && (v == CERTAUTHZ_WATCH_EMPTY
                || v == CERTAUTHZ_WATCH_NO_NEWLINE)) {
            apr_sleep(CERTAUTHZ_WATCH_TICK);
            continue;
        }
        /* at request time (an .htaccess map), the image of this very
         * state of the file, if another process compiled it */
        if (!at_startup && cz_store_enabled()) {
            file_source_t *f = src->data;
            const char *why;
            if (cz_store_read(f->key, &f->ptr, &why, ptemp) == APR_SUCCESS
                && f->ptr.gen
                && certauthz_file_sig_same(&f->ptr.source, &w->seen.sig)
                && cz_store_open(f->key, &f->ptr, out, &why, ptemp)
                       == APR_SUCCESS) {
                took_image(f, out);
                return;
            }
        }
        rv = load(src, at_startup, NULL, out, ptemp);
        certauthz_watch_observe(&after, src->name, 0, ptemp);
        if (certauthz_watch_loaded(w, &after, rv) == CERTAUTHZ_WATCH_CHANGED
            && !last) {
            if (out->map)
                apr_pool_destroy(out->pool);
            out->map = NULL;
            continue;
        }
        /* taken as it is at the last try: the state from before the read
         * is the one in force, so a change during the read is seen by the
         * next check */
        if (out->map) {
            certauthz_watch_accept(w);
            out->state = w->loaded;
            ((file_source_t *)src->data)->own_copy = 1; /* until shared */
        }
        /* at startup the registry shares it once the configuration is
         * read (post_config); at request time, here, if no other process
         * is compiling it */
        if (out->map && !at_startup && cz_store_enabled())
            share_first(src, out, ptemp);
        return;
    }
}

static cz_refresh_e file_refresh(cz_source_t *src, apr_uint32_t gen,
                                 cz_loaded_t *out, server_rec *s,
                                 apr_pool_t *ptemp)
{
    file_source_t *f = src->data;
    certauthz_watch_t *w = &f->watch;
    certauthz_file_obs_t after;
    certauthz_watch_e v;
    cz_store_lock_t *lk = NULL;
    cz_refresh_e r;
    apr_status_t rv;
    int held = 0;

    if ((r = follow(src, gen, out, s, ptemp)) != CZ_REFRESH_SAME)
        return r;
    v = certauthz_watch_poll(w, src->name, apr_time_now(), ptemp);
    switch (v) {
    case CERTAUTHZ_WATCH_LOAD:
        if (!cz_store_enabled())
            break;
        /* one process parses it: the one that takes the lock; the others
         * look again at the next tick, and follow the pointer it moves */
        if (!(lk = cz_store_trylock(f->key, 0, &held, ptemp)) && held) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "CERTAUTHZ0045: map %s changed; another process "
                         "is compiling it",
                         src->name);
            return CZ_REFRESH_SOON;
        }
        if (!lk) {
            /* the lock's file cannot be opened (another User than the
             * store's, no descriptor left): this process parses for
             * itself, and says so once */
            if (!f->lock_warned)
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             "CERTAUTHZ0043: map %s: the compile lock in %s "
                             "cannot be opened: this process parses the "
                             "map itself and keeps its own copy",
                             src->name, cz_store_dir());
            f->lock_warned = 1;
            break;
        }
        f->lock_warned = 0;
        if ((r = follow(src, gen, out, s, ptemp)) != CZ_REFRESH_SAME
            || certauthz_file_sig_same(&w->seen.sig, &w->loaded)) {
            cz_store_unlock(lk);
            return r;
        }
        break;
    case CERTAUTHZ_WATCH_SETTLING:
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     "CERTAUTHZ0033: map %s changed; waiting until it has "
                     "not changed for %d ms",
                     src->name, (int)apr_time_as_msec(w->settle));
        return CZ_REFRESH_SOON;
    case CERTAUTHZ_WATCH_GONE:
        ap_log_error(APLOG_MARK, APLOG_WARNING, w->seen.stat_rv, s,
                     "CERTAUTHZ0032: map %s %s: generation %u stays in force",
                     src->name, certauthz_watch_reason(v), gen);
        out->why = certauthz_watch_reason(v);
        return CZ_REFRESH_FAILED;
    case CERTAUTHZ_WATCH_EMPTY:
    case CERTAUTHZ_WATCH_NO_NEWLINE:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "CERTAUTHZ0034: map %s %s: not loaded, generation %u "
                     "stays in force until the file changes again",
                     src->name, certauthz_watch_reason(v), gen);
        out->why = certauthz_watch_reason(v);
        return CZ_REFRESH_FAILED;
    case CERTAUTHZ_WATCH_UNREADABLE:
        rv = w->seen.tail_rv;
        goto unreadable;
    default: /* SAME */
        return CZ_REFRESH_SAME;
    }
    rv = load(src, 0, s, out, ptemp);
    certauthz_watch_observe(&after, src->name, 0, ptemp);
    switch (certauthz_watch_loaded(w, &after, rv)) {
    case CERTAUTHZ_WATCH_ACCEPT:
        if (lk) {
            out->gen = gen;
            publish(src, out, s, ptemp);
            cz_store_unlock(lk);
            if (!out->image) /* not shared: a copy of this process's own */
                out->gen = gen + 1;
        }
        else {
            f->own_copy = 1;
        }
        return CZ_REFRESH_NEW;
    case CERTAUTHZ_WATCH_CHANGED: /* try again once it settles */
        cz_store_unlock(lk);
        if (out->map)
            apr_pool_destroy(out->pool);
        out->map = NULL;
        return CZ_REFRESH_SOON;
    case CERTAUTHZ_WATCH_BAD:
        if (lk) {
            if (cz_store_refuse(f->key, &f->ptr, &w->refused, out->why, ptemp)
                == APR_SUCCESS)
                f->seen_serial = f->ptr.serial;
            cz_store_unlock(lk);
        }
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "CERTAUTHZ0031: map %s not reloaded: generation %u "
                     "stays in force until the file changes again",
                     src->name, gen);
        return CZ_REFRESH_FAILED;
    case CERTAUTHZ_WATCH_UNREADABLE:
        cz_store_unlock(lk);
        goto unreadable;
    default: /* unreadable again: already reported */
        cz_store_unlock(lk);
        return CZ_REFRESH_SAME;
    }
unreadable:
    /* permissions, EMFILE, ENOMEM...: not the file's content; tried again
     * at the next check, logged once per state of the file */
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                 "CERTAUTHZ0037: map %s cannot be read by this process "
                 "(%pm): generation %u stays in force; tried again at the "
                 "next check",
                 src->name, &rv, gen);
    out->why = certauthz_watch_reason(CERTAUTHZ_WATCH_UNREADABLE);
    return CZ_REFRESH_FAILED;
}

static const char *file_describe(const cz_source_t *src, apr_pool_t *p)
{
    (void)p;
    return src->name;
}

const cz_source_type_t cz_source_file = {"file", file_create, file_first,
                                         file_refresh, file_describe};
