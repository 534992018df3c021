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
 * State: one certauthz_watch_t per source, in the map's pool.  first()
 * uses it in the thread that tries to register the map (each such attempt
 * has a source of its own; the registry keeps the one that wins), then the
 * reload thread alone.
 */
#include "mod_certauthz_private.h"

typedef struct {
    certauthz_watch_t watch;
} file_source_t;

static const char *file_create(cz_source_t *src, apr_pool_t *p)
{
    file_source_t *f = apr_pcalloc(p, sizeof(*f));

    certauthz_watch_init(&f->watch, CERTAUTHZ_WATCH_SETTLE);
    src->data = f;
    return NULL;
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

static void file_first(cz_source_t *src, int waits, int at_startup,
                       cz_loaded_t *out, apr_pool_t *ptemp)
{
    certauthz_watch_t *w = &((file_source_t *)src->data)->watch;

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
        if (out->map)
            certauthz_watch_accept(w);
        return;
    }
}

static cz_refresh_e file_refresh(cz_source_t *src, apr_uint32_t gen,
                                 cz_loaded_t *out, server_rec *s,
                                 apr_pool_t *ptemp)
{
    certauthz_watch_t *w = &((file_source_t *)src->data)->watch;
    certauthz_file_obs_t after;
    certauthz_watch_e v;
    apr_status_t rv;

    v = certauthz_watch_poll(w, src->name, apr_time_now(), ptemp);
    switch (v) {
    case CERTAUTHZ_WATCH_LOAD:
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
        return CZ_REFRESH_NEW;
    case CERTAUTHZ_WATCH_CHANGED: /* try again once it settles */
        if (out->map)
            apr_pool_destroy(out->pool);
        out->map = NULL;
        return CZ_REFRESH_SOON;
    case CERTAUTHZ_WATCH_BAD:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "CERTAUTHZ0031: map %s not reloaded: generation %u "
                     "stays in force until the file changes again",
                     src->name, gen);
        return CZ_REFRESH_FAILED;
    case CERTAUTHZ_WATCH_UNREADABLE:
        goto unreadable;
    default: /* unreadable again: already reported */
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
