/*
 * certauthz_watch.h -- when a changed map file may be read: the one
 * file-change policy of the module, for the first load at startup, the
 * first load of an .htaccess map at request time and every live reload.
 *
 * A half-written file is never taken.  A changed file is read only
 *  - when it has not changed for `settle` (its mtime and ctime are that
 *    old, or this watch has seen the same size, times and inode for that
 *    long: a file with a time in the future settles too),
 *  - when it is not empty and its last byte is a newline (a writer stopped
 *    mid-line, or a file truncated to be rewritten in place, is not taken),
 *  - and when stat() gives the same answer after the read as before it.
 * A state of the file that was refused (empty, no final newline, errors in
 * it) is remembered and not read again until the file changes; a file that
 * cannot be read (permissions, EMFILE...) is tried again at every check but
 * reported once per state; a file that disappears is reported once and the
 * version in force stays.
 *
 * certauthz_watch_decide() and certauthz_watch_loaded() are the policy:
 * they depend only on the watch's memory (which they update), an
 * observation and the time, and do no I/O (unit-tested with made-up
 * observations).  certauthz_watch_poll() and certauthz_watch_observe() do
 * the I/O (stat, the last byte) around them, with scratch memory from the
 * pool they are given.
 *
 * A watch belongs to one thread at a time (the caller serialises); it holds
 * no pointer and lives wherever its owner puts it.
 */
#ifndef CERTAUTHZ_WATCH_H
#define CERTAUTHZ_WATCH_H

#include <apr_file_info.h>
#include <apr_time.h>

#include "certauthz.h"

/* What stat() says of a file: any difference means "changed". */
typedef struct {
    apr_ino_t ino;
    apr_dev_t dev;
    apr_off_t size;
    apr_time_t mtime, ctime;
} certauthz_file_sig_t;

typedef enum {
    CERTAUTHZ_TAIL_UNKNOWN = 0, /* not read (yet) */
    CERTAUTHZ_TAIL_NEWLINE,     /* the last byte is '\n' */
    CERTAUTHZ_TAIL_OTHER,       /* it is not (or the file is empty) */
    CERTAUTHZ_TAIL_ERROR        /* it could not be read: tail_rv says why */
} certauthz_tail_e;

/* One look at a file. */
typedef struct {
    apr_status_t stat_rv; /* APR_SUCCESS: a regular file, sig is valid */
    certauthz_file_sig_t sig;
    certauthz_tail_e tail;
    apr_status_t tail_rv;
} certauthz_file_obs_t;

typedef enum {
    CERTAUTHZ_WATCH_SAME = 0,   /* nothing to do until the next check */
    CERTAUTHZ_WATCH_GONE,       /* missing or not a regular file (first
                                   time since it went: report it) */
    CERTAUTHZ_WATCH_SETTLING,   /* changed recently: look again soon */
    CERTAUTHZ_WATCH_NEED_TAIL,  /* decide again with obs.tail read */
    CERTAUTHZ_WATCH_EMPTY,      /* refused until it changes */
    CERTAUTHZ_WATCH_NO_NEWLINE, /* refused until it changes */
    CERTAUTHZ_WATCH_UNREADABLE, /* could not be read (first time in this
                                   state: report it); tried again at the
                                   next check */
    CERTAUTHZ_WATCH_LOAD,       /* read it now, then call ..._loaded() */
    /* answers of certauthz_watch_loaded(): */
    CERTAUTHZ_WATCH_CHANGED, /* changed while it was read: discard the
                                result, look again soon */
    CERTAUTHZ_WATCH_ACCEPT,  /* use what was read */
    CERTAUTHZ_WATCH_BAD      /* its content has errors: refused until it
                                changes */
} certauthz_watch_e;

typedef struct {
    apr_interval_time_t settle;
    /* 1 until a version read from the file is in force (startup, an
     * .htaccess map's first load): refusals are not remembered then, since
     * the caller waits and looks again, or takes the file as it is */
    int first;
    certauthz_file_sig_t loaded;     /* the state in force was read from */
    certauthz_file_sig_t refused;    /* a state not to read again */
    certauthz_file_sig_t pending;    /* a changed state waiting to settle */
    certauthz_file_sig_t unreadable; /* a state reported as unreadable */
    apr_time_t pending_since;
    int missing;               /* GONE was reported */
    certauthz_file_obs_t seen; /* the observation of the last decide */
} certauthz_watch_t;

/* The settle time of the module (500 ms) and the tick at which a settling
 * file is looked at again (250 ms). */
#define CERTAUTHZ_WATCH_SETTLE apr_time_from_msec(500)
#define CERTAUTHZ_WATCH_TICK apr_time_from_msec(250)

/* A new watch (first = 1, nothing remembered). */
void certauthz_watch_init(certauthz_watch_t *w, apr_interval_time_t settle);

/* The policy: what to do with a file observed as obs at now.  Returns
 * NEED_TAIL when the answer depends on the last byte and obs->tail is
 * UNKNOWN.  Remembers obs in w->seen. */
certauthz_watch_e certauthz_watch_decide(certauthz_watch_t *w,
                                         const certauthz_file_obs_t *obs,
                                         apr_time_t now);

/* After a read that decide() allowed: after is a stat() made once the read
 * was over, rv the read's status (APR_SUCCESS, CERTAUTHZ_EBADINPUT for a
 * file with errors, another status for I/O).  Returns CHANGED, ACCEPT, BAD,
 * UNREADABLE or SAME (unreadable again, already reported).  ACCEPT makes
 * the observed state the one in force (certauthz_watch_accept()). */
certauthz_watch_e certauthz_watch_loaded(certauthz_watch_t *w,
                                         const certauthz_file_obs_t *after,
                                         apr_status_t rv);

/* The state of the last decide() is now in force (also for a caller that
 * takes a file as it is, at startup). */
void certauthz_watch_accept(certauthz_watch_t *w);

/* The file's state sig is in force from now on, though this watch did not
 * read it (another process did): what certauthz_watch_accept() would have
 * made it after reading it. */
void certauthz_watch_adopt(certauthz_watch_t *w,
                           const certauthz_file_sig_t *sig);

/* The file's state sig was refused (by another process): not read again
 * until the file changes. */
void certauthz_watch_refuse(certauthz_watch_t *w,
                            const certauthz_file_sig_t *sig);

/* How long, from now, until the pending change has settled (0 when it has). */
apr_interval_time_t certauthz_watch_settle_left(const certauthz_watch_t *w,
                                                apr_time_t now);

/* Why a verdict refuses the file, as a phrase after the file's name ("is
 * empty (...)"), or NULL for verdicts that do not refuse. */
const char *certauthz_watch_reason(certauthz_watch_e verdict);

/* Fill obs from the file: stat(), and the last byte when with_tail. */
void certauthz_watch_observe(certauthz_file_obs_t *obs, const char *path,
                             int with_tail, apr_pool_t *p);

/* decide() on a fresh observation of path, reading the last byte only when
 * the policy needs it.  Never returns NEED_TAIL.  p: scratch. */
certauthz_watch_e certauthz_watch_poll(certauthz_watch_t *w, const char *path,
                                       apr_time_t now, apr_pool_t *p);

/* When the file last changed, content or metadata (a rename changes its
 * ctime): the later of its mtime and ctime. */
apr_time_t certauthz_file_sig_changed(const certauthz_file_sig_t *sig);

/* 1 when two signatures are the same state of a file. */
int certauthz_file_sig_same(const certauthz_file_sig_t *a,
                            const certauthz_file_sig_t *b);

#endif /* CERTAUTHZ_WATCH_H */
