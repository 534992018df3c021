/*
 * certauthz_watch.c -- the file-change policy (certauthz_watch.h): when a
 * changed map file may be read, and what is remembered of refused states.
 */
#include <string.h>

#include <apr_file_io.h>

#include "certauthz_watch.h"

int certauthz_file_sig_same(const certauthz_file_sig_t *a,
                            const certauthz_file_sig_t *b)
{
    return a->ino == b->ino && a->dev == b->dev && a->size == b->size
           && a->mtime == b->mtime && a->ctime == b->ctime;
}

apr_time_t certauthz_file_sig_changed(const certauthz_file_sig_t *sig)
{
    return sig->mtime > sig->ctime ? sig->mtime : sig->ctime;
}

void certauthz_watch_init(certauthz_watch_t *w, apr_interval_time_t settle)
{
    memset(w, 0, sizeof(*w));
    w->settle = settle;
    w->first = 1;
}

static void refuse(certauthz_watch_t *w, const certauthz_file_sig_t *sig)
{
    if (!w->first)
        w->refused = *sig;
}

certauthz_watch_e certauthz_watch_decide(certauthz_watch_t *w,
                                         const certauthz_file_obs_t *obs,
                                         apr_time_t now)
{
    const certauthz_file_sig_t *sig = &obs->sig;

    w->seen = *obs;
    if (obs->stat_rv != APR_SUCCESS) {
        if (w->missing)
            return CERTAUTHZ_WATCH_SAME;
        w->missing = 1;
        return CERTAUTHZ_WATCH_GONE;
    }
    w->missing = 0;
    if (certauthz_file_sig_same(sig, &w->loaded)
        || (!w->first && certauthz_file_sig_same(sig, &w->refused)))
        return CERTAUTHZ_WATCH_SAME;
    if (!certauthz_file_sig_same(sig, &w->pending)) {
        w->pending = *sig;
        w->pending_since = now;
    }
    if (now - certauthz_file_sig_changed(sig) < w->settle
        && now - w->pending_since < w->settle)
        return CERTAUTHZ_WATCH_SETTLING;
    if (sig->size == 0) {
        refuse(w, sig);
        return CERTAUTHZ_WATCH_EMPTY;
    }
    switch (obs->tail) {
    case CERTAUTHZ_TAIL_UNKNOWN:
        return CERTAUTHZ_WATCH_NEED_TAIL;
    case CERTAUTHZ_TAIL_OTHER:
        refuse(w, sig);
        return CERTAUTHZ_WATCH_NO_NEWLINE;
    case CERTAUTHZ_TAIL_ERROR:
        if (certauthz_file_sig_same(sig, &w->unreadable))
            return CERTAUTHZ_WATCH_SAME;
        w->unreadable = *sig;
        return CERTAUTHZ_WATCH_UNREADABLE;
    case CERTAUTHZ_TAIL_NEWLINE:
        break;
    }
    return CERTAUTHZ_WATCH_LOAD;
}

void certauthz_watch_accept(certauthz_watch_t *w)
{
    w->loaded = w->seen.sig;
    memset(&w->pending, 0, sizeof(w->pending));
    w->first = 0;
}

void certauthz_watch_adopt(certauthz_watch_t *w,
                           const certauthz_file_sig_t *sig)
{
    w->loaded = *sig;
    memset(&w->pending, 0, sizeof(w->pending));
    w->first = 0;
}

void certauthz_watch_refuse(certauthz_watch_t *w,
                            const certauthz_file_sig_t *sig)
{
    w->refused = *sig;
    if (certauthz_file_sig_same(sig, &w->pending))
        memset(&w->pending, 0, sizeof(w->pending));
}

certauthz_watch_e certauthz_watch_loaded(certauthz_watch_t *w,
                                         const certauthz_file_obs_t *after,
                                         apr_status_t rv)
{
    const certauthz_file_sig_t *sig = &w->seen.sig;

    if (after->stat_rv != APR_SUCCESS
        || !certauthz_file_sig_same(&after->sig, sig))
        return CERTAUTHZ_WATCH_CHANGED;
    if (rv == APR_SUCCESS) {
        certauthz_watch_accept(w);
        return CERTAUTHZ_WATCH_ACCEPT;
    }
    if (rv == CERTAUTHZ_EBADINPUT) {
        refuse(w, sig);
        return CERTAUTHZ_WATCH_BAD;
    }
    /* I/O, not content: tried again at the next check */
    if (certauthz_file_sig_same(sig, &w->unreadable))
        return CERTAUTHZ_WATCH_SAME;
    w->unreadable = *sig;
    return CERTAUTHZ_WATCH_UNREADABLE;
}

apr_interval_time_t certauthz_watch_settle_left(const certauthz_watch_t *w,
                                                apr_time_t now)
{
    apr_interval_time_t a =
        w->settle - (now - certauthz_file_sig_changed(&w->pending));
    apr_interval_time_t b = w->settle - (now - w->pending_since);
    apr_interval_time_t left = a < b ? a : b;

    if (left < 0)
        return 0;
    return left > w->settle ? w->settle : left;
}

const char *certauthz_watch_reason(certauthz_watch_e verdict)
{
    switch (verdict) {
    case CERTAUTHZ_WATCH_EMPTY:
        return "is empty (being written?  To empty a map, leave a comment "
               "line in it)";
    case CERTAUTHZ_WATCH_NO_NEWLINE:
        return "does not end with a newline (being written?)";
    case CERTAUTHZ_WATCH_GONE:
        return "cannot be read (not a regular file, or missing)";
    case CERTAUTHZ_WATCH_UNREADABLE:
        return "cannot be read";
    default:
        return NULL;
    }
}

static void read_tail(certauthz_file_obs_t *obs, const char *path,
                      apr_pool_t *p)
{
    apr_file_t *fd;
    apr_off_t off = obs->sig.size - 1;
    apr_size_t n = 1;
    char c = 0;
    apr_status_t rv;

    if (obs->sig.size < 1) {
        obs->tail = CERTAUTHZ_TAIL_OTHER;
        return;
    }
    rv = apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        if ((rv = apr_file_seek(fd, APR_SET, &off)) == APR_SUCCESS)
            rv = apr_file_read(fd, &c, &n);
        apr_file_close(fd);
    }
    obs->tail_rv = rv;
    if (rv != APR_SUCCESS || n != 1)
        obs->tail = CERTAUTHZ_TAIL_ERROR;
    else
        obs->tail = c == '\n' ? CERTAUTHZ_TAIL_NEWLINE : CERTAUTHZ_TAIL_OTHER;
}

void certauthz_watch_observe(certauthz_file_obs_t *obs, const char *path,
                             int with_tail, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv =
        apr_stat(&fi, path,
                 APR_FINFO_SIZE | APR_FINFO_MTIME | APR_FINFO_CTIME
                     | APR_FINFO_INODE | APR_FINFO_DEV | APR_FINFO_TYPE,
                 p);

    memset(obs, 0, sizeof(*obs));
    if (rv != APR_SUCCESS && !APR_STATUS_IS_INCOMPLETE(rv)) {
        obs->stat_rv = rv;
        return;
    }
    obs->sig.ino = fi.inode;
    obs->sig.dev = fi.device;
    obs->sig.size = fi.size;
    obs->sig.mtime = fi.mtime;
    obs->sig.ctime = fi.ctime;
    obs->stat_rv = fi.filetype == APR_REG ? APR_SUCCESS : APR_EGENERAL;
    if (with_tail && obs->stat_rv == APR_SUCCESS)
        read_tail(obs, path, p);
}

certauthz_watch_e certauthz_watch_poll(certauthz_watch_t *w, const char *path,
                                       apr_time_t now, apr_pool_t *p)
{
    certauthz_file_obs_t obs;
    certauthz_watch_e v;

    certauthz_watch_observe(&obs, path, 0, p);
    v = certauthz_watch_decide(w, &obs, now);
    if (v == CERTAUTHZ_WATCH_NEED_TAIL) {
        read_tail(&obs, path, p);
        v = certauthz_watch_decide(w, &obs, now);
    }
    return v;
}
