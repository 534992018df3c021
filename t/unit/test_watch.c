/*
 * test_watch.c -- the file-change policy (certauthz_watch.h): scripted
 * sequences of observations through certauthz_watch_decide() and
 * certauthz_watch_loaded(), then the I/O wrapper on real files.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include "certauthz_watch.h"
#include "tap.h"

#define MS(n) apr_time_from_msec(n)
#define SETTLE MS(500)
#define T0 apr_time_from_sec(1000000)

static apr_pool_t *pool;

static const char *vname(certauthz_watch_e v)
{
    static const char *const names[] = {
        "SAME",       "GONE", "SETTLING", "NEED_TAIL", "EMPTY", "NO_NEWLINE",
        "UNREADABLE", "LOAD", "CHANGED",  "ACCEPT",    "BAD"};
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

/* An observation of a regular file: inode, size, change time (mtime =
 * ctime), tail. */
static certauthz_file_obs_t file(apr_ino_t ino, apr_off_t size,
                                 apr_time_t changed, certauthz_tail_e tail)
{
    certauthz_file_obs_t o;
    memset(&o, 0, sizeof(o));
    o.stat_rv = APR_SUCCESS;
    o.sig.ino = ino;
    o.sig.dev = 1;
    o.sig.size = size;
    o.sig.mtime = o.sig.ctime = changed;
    o.tail = tail;
    if (tail == CERTAUTHZ_TAIL_ERROR)
        o.tail_rv = APR_EACCES;
    return o;
}

static certauthz_file_obs_t gone(void)
{
    certauthz_file_obs_t o;
    memset(&o, 0, sizeof(o));
    o.stat_rv = APR_ENOENT;
    return o;
}

#define NL CERTAUTHZ_TAIL_NEWLINE
#define NO CERTAUTHZ_TAIL_OTHER
#define UNK CERTAUTHZ_TAIL_UNKNOWN
#define ERR CERTAUTHZ_TAIL_ERROR

#define decide_is(w, obs, now, want, what)                                     \
    do {                                                                       \
        certauthz_file_obs_t o_ = (obs);                                       \
        certauthz_watch_e v_ = certauthz_watch_decide((w), &o_, (now));        \
        is_str(vname(v_), vname(want), "%s", what);                            \
    } while (0)

#define loaded_is(w, obs, rv, want, what)                                      \
    do {                                                                       \
        certauthz_file_obs_t o_ = (obs);                                       \
        certauthz_watch_e v_ = certauthz_watch_loaded((w), &o_, (rv));         \
        is_str(vname(v_), vname(want), "%s", what);                            \
    } while (0)

/* a watch with version (ino 1, 100 bytes, changed at T0) in force */
static void in_force(certauthz_watch_t *w)
{
    certauthz_file_obs_t o = file(1, 100, T0, NL);
    certauthz_watch_init(w, SETTLE);
    certauthz_watch_decide(w, &o, T0 + MS(10000));
    certauthz_watch_accept(w);
}

static void test_unchanged_and_settle(void)
{
    certauthz_watch_t w;
    apr_time_t now = T0 + MS(20000);

    in_force(&w);
    ok(!w.first, "accept ends the first load");
    decide_is(&w, file(1, 100, T0, UNK), now, CERTAUTHZ_WATCH_SAME,
              "unchanged: nothing to do, last byte not needed");
    /* a rename: new inode, changed just now */
    decide_is(&w, file(2, 120, now - MS(100), UNK), now,
              CERTAUTHZ_WATCH_SETTLING, "changed 100 ms ago: settling");
    is_int(certauthz_watch_settle_left(&w, now), MS(400), "settles in 400 ms");
    decide_is(&w, file(2, 120, now - MS(100), UNK), now + MS(300),
              CERTAUTHZ_WATCH_SETTLING, "400 ms after the change: settling");
    decide_is(&w, file(2, 120, now - MS(100), UNK), now + MS(400),
              CERTAUTHZ_WATCH_NEED_TAIL, "500 ms after: needs the last byte");
    decide_is(&w, file(2, 120, now - MS(100), NL), now + MS(400),
              CERTAUTHZ_WATCH_LOAD, "with a final newline: load");
    loaded_is(&w, file(2, 120, now - MS(100), UNK), APR_SUCCESS,
              CERTAUTHZ_WATCH_ACCEPT, "same stat after the read: accept");
    is_int(w.loaded.ino, 2, "the new state is in force");
    decide_is(&w, file(2, 120, now - MS(100), UNK), now + MS(1000),
              CERTAUTHZ_WATCH_SAME, "then unchanged");
    /* an old file swapped in (old mtime): settles by this watch's memory */
    decide_is(&w, file(3, 90, T0 - MS(100000), NL), now + MS(2000),
              CERTAUTHZ_WATCH_LOAD, "old mtime: loaded at once");
    /* a writer that keeps writing never settles */
    in_force(&w);
    for (int i = 0; i < 5; i++)
        decide_is(&w, file(1, 100 + i, now + MS(250) * i, NL),
                  now + MS(250) * i + MS(1), CERTAUTHZ_WATCH_SETTLING,
                  "a file growing every 250 ms keeps settling");
    /* a time in the future settles by this watch's memory of the state */
    in_force(&w);
    decide_is(&w, file(4, 100, now + MS(3600000), NL), now,
              CERTAUTHZ_WATCH_SETTLING, "future mtime: settling first");
    decide_is(&w, file(4, 100, now + MS(3600000), NL), now + MS(499),
              CERTAUTHZ_WATCH_SETTLING, "future mtime: 499 ms");
    decide_is(&w, file(4, 100, now + MS(3600000), NL), now + MS(500),
              CERTAUTHZ_WATCH_LOAD,
              "future mtime: loaded once the same state was seen 500 ms");
}

static void test_refusals(void)
{
    certauthz_watch_t w;
    apr_time_t now = T0 + MS(20000);

    in_force(&w);
    decide_is(&w, file(1, 0, T0 + MS(100), UNK), now, CERTAUTHZ_WATCH_EMPTY,
              "empty: refused, no need for the last byte");
    decide_is(&w, file(1, 0, T0 + MS(100), UNK), now + MS(1000),
              CERTAUTHZ_WATCH_SAME, "the same empty state: not again");
    decide_is(&w, file(1, 50, T0 + MS(200), NO), now + MS(2000),
              CERTAUTHZ_WATCH_NO_NEWLINE, "no final newline: refused");
    decide_is(&w, file(1, 50, T0 + MS(200), NO), now + MS(3000),
              CERTAUTHZ_WATCH_SAME, "the same state: not again");
    decide_is(&w, file(1, 51, T0 + MS(300), NL), now + MS(4000),
              CERTAUTHZ_WATCH_LOAD, "completed: load");
    loaded_is(&w, file(1, 51, T0 + MS(300), UNK), CERTAUTHZ_EBADINPUT,
              CERTAUTHZ_WATCH_BAD, "errors in it: bad");
    is_int(w.loaded.size, 100, "the old state stays in force");
    decide_is(&w, file(1, 51, T0 + MS(300), NL), now + MS(5000),
              CERTAUTHZ_WATCH_SAME, "a bad state is not read again");
    decide_is(&w, file(1, 52, T0 + MS(400), NL), now + MS(6000),
              CERTAUTHZ_WATCH_LOAD, "fixed: load");
    /* changed during the read */
    loaded_is(&w, file(1, 60, now + MS(6000), UNK), APR_SUCCESS,
              CERTAUTHZ_WATCH_CHANGED, "grew during the read: changed");
    is_int(w.loaded.size, 100, "nothing accepted");
    loaded_is(&w, gone(), APR_SUCCESS, CERTAUTHZ_WATCH_CHANGED,
              "removed during the read: changed");
    /* unreadable: reported once per state, tried at every check */
    in_force(&w);
    decide_is(&w, file(5, 10, T0, ERR), now, CERTAUTHZ_WATCH_UNREADABLE,
              "the last byte cannot be read: unreadable");
    decide_is(&w, file(5, 10, T0, ERR), now + MS(1000), CERTAUTHZ_WATCH_SAME,
              "again: quiet");
    decide_is(&w, file(5, 10, T0, NL), now + MS(2000), CERTAUTHZ_WATCH_LOAD,
              "readable again: tried (not remembered as refused)");
    loaded_is(&w, file(5, 10, T0, UNK), APR_EMFILE, CERTAUTHZ_WATCH_SAME,
              "an I/O error of the read in the same "
              "state: already reported");
    decide_is(&w, file(5, 10, T0, NL), now + MS(3000), CERTAUTHZ_WATCH_LOAD,
              "and tried again at the next check");
    loaded_is(&w, file(5, 10, T0, UNK), APR_SUCCESS, CERTAUTHZ_WATCH_ACCEPT,
              "then accepted");
    decide_is(&w, file(6, 10, T0, NL), now + MS(4000), CERTAUTHZ_WATCH_LOAD,
              "another state");
    loaded_is(&w, file(6, 10, T0, UNK), APR_EMFILE, CERTAUTHZ_WATCH_UNREADABLE,
              "an I/O error of the read: "
              "unreadable, reported");
    /* a file that disappears, comes back */
    in_force(&w);
    decide_is(&w, gone(), now, CERTAUTHZ_WATCH_GONE, "missing: gone");
    decide_is(&w, gone(), now + MS(1000), CERTAUTHZ_WATCH_SAME,
              "still missing: quiet");
    decide_is(&w, file(1, 100, T0, UNK), now + MS(2000), CERTAUTHZ_WATCH_SAME,
              "back unchanged: nothing to do");
    decide_is(&w, gone(), now + MS(3000), CERTAUTHZ_WATCH_GONE,
              "gone again: reported again");
}

/* the first load: refusals are not remembered (the caller waits, looks
 * again, and in the end takes the file as it is) */
static void test_first(void)
{
    certauthz_watch_t w;
    apr_time_t now = T0 + MS(20000);

    certauthz_watch_init(&w, SETTLE);
    ok(w.first, "a new watch is a first load");
    decide_is(&w, file(1, 0, T0, UNK), now, CERTAUTHZ_WATCH_EMPTY,
              "first: empty");
    decide_is(&w, file(1, 0, T0, UNK), now + MS(250), CERTAUTHZ_WATCH_EMPTY,
              "first: empty again (not remembered)");
    decide_is(&w, file(1, 5, T0, NO), now + MS(500), CERTAUTHZ_WATCH_NO_NEWLINE,
              "first: no newline");
    decide_is(&w, file(1, 5, T0, NO), now + MS(750), CERTAUTHZ_WATCH_NO_NEWLINE,
              "first: no newline again");
    decide_is(&w, file(1, 6, T0, NL), now + MS(1000), CERTAUTHZ_WATCH_LOAD,
              "first: complete");
    loaded_is(&w, file(1, 6, T0, UNK), CERTAUTHZ_EBADINPUT, CERTAUTHZ_WATCH_BAD,
              "first: bad");
    decide_is(&w, file(1, 6, T0, NL), now + MS(1250), CERTAUTHZ_WATCH_LOAD,
              "first: a bad state is read again");
    certauthz_watch_accept(&w);
    ok(!w.first && w.loaded.size == 6,
       "a caller that takes the file as it is accepts the observed state");
    decide_is(&w, file(1, 6, T0, UNK), now + MS(1500), CERTAUTHZ_WATCH_SAME,
              "then unchanged");
}

static void test_reasons(void)
{
    ok(strstr(certauthz_watch_reason(CERTAUTHZ_WATCH_EMPTY), "is empty")
           != NULL,
       "reason: empty");
    ok(strstr(certauthz_watch_reason(CERTAUTHZ_WATCH_NO_NEWLINE),
              "does not end with a newline")
           != NULL,
       "reason: no newline");
    ok(certauthz_watch_reason(CERTAUTHZ_WATCH_LOAD) == NULL,
       "no reason for load");
    ok(certauthz_watch_reason(CERTAUTHZ_WATCH_ACCEPT) == NULL,
       "no reason for accept");
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        diag("cannot write %s", path);
        abort();
    }
}

/* the I/O wrapper on real files (times set back, so nothing waits) */
static void test_poll(void)
{
    char dir[] = "/tmp/test_watch.XXXXXX";
    const char *path, *sub;
    certauthz_watch_t w;
    certauthz_file_obs_t o;
    apr_time_t later;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    path = apr_pstrcat(pool, dir, "/m.map", NULL);
    put(path, "cn:a a\n");
    later = apr_time_now() + apr_time_from_sec(5);
    certauthz_watch_init(&w, SETTLE);
    is_str(vname(certauthz_watch_poll(&w, path, later, pool)), "LOAD",
           "poll: a complete file");
    is_int(w.seen.tail, CERTAUTHZ_TAIL_NEWLINE, "poll read the last byte");
    certauthz_watch_observe(&o, path, 0, pool);
    is_int(o.tail, CERTAUTHZ_TAIL_UNKNOWN, "observe without the tail");
    is_str(vname(certauthz_watch_loaded(&w, &o, APR_SUCCESS)), "ACCEPT",
           "loaded: accept");
    is_str(vname(certauthz_watch_poll(&w, path, later, pool)), "SAME",
           "poll: unchanged");
    is_int(w.seen.tail, CERTAUTHZ_TAIL_UNKNOWN,
           "poll did not read an unchanged file");
    put(path, "cn:a a\ncn:b b");
    is_str(vname(certauthz_watch_poll(&w, path, apr_time_now(), pool)),
           "SETTLING", "poll: just written");
    is_str(vname(certauthz_watch_poll(&w, path, later, pool)), "NO_NEWLINE",
           "poll: no final newline");
    put(path, "");
    is_str(vname(certauthz_watch_poll(&w, path, later, pool)), "EMPTY",
           "poll: empty");
    unlink(path);
    is_str(vname(certauthz_watch_poll(&w, path, later, pool)), "GONE",
           "poll: removed");
    sub = apr_pstrcat(pool, dir, "/d", NULL);
    mkdir(sub, 0700);
    certauthz_watch_observe(&o, sub, 1, pool);
    ok(o.stat_rv != APR_SUCCESS, "a directory is not a regular file");
    is_int(o.tail, CERTAUTHZ_TAIL_UNKNOWN, "and its tail is not read");
    if (geteuid() != 0) {
        put(path, "cn:a a\n");
        chmod(path, 0);
        certauthz_watch_observe(&o, path, 1, pool);
        is_int(o.tail, CERTAUTHZ_TAIL_ERROR, "unreadable file: tail error");
    }
    else {
        diag("as root every file is readable: the tail-error case is "
             "covered by the scripted observations above");
    }
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_unchanged_and_settle();
    test_refusals();
    test_first();
    test_reasons();
    test_poll();
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
