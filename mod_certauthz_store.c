/*
 * mod_certauthz_store.c -- the image store: one compiled copy of each map
 * per server, shared by every process (mod_certauthz_private.h, "the
 * image store").
 *
 * The store is a directory only httpd's user (and root) may enter,
 * <DefaultRuntimeDir>/certauthz, made by the parent at startup.  For each
 * map (key: the first 32 hex digits of the SHA-256 of its registry key,
 * "file:/etc/apache2/staff.map") it holds
 *
 *   KEY.ptr      the pointer: which image is current, written whole to a
 *                temporary file and renamed, so it is always complete;
 *   KEY.G.img    the compiled image of generation G (certauthz_image.h),
 *                likewise renamed into place once complete and synced;
 *                the current one and the one before it are kept (a
 *                process may be about to open it), older ones removed;
 *   KEY.lock     the lock a process holds while it compiles the map, so
 *                that one process per server parses a change.
 *
 * A pointer is text, one field a line:
 *
 *   certauthz-pointer 1
 *   serial S          new at every write (a process acts once on each)
 *   generation G      the generation of the current image (0: none yet)
 *   image NAME        KEY.G.img, or - (no image yet)
 *   sha256 HEX        the current image's content hash (its source's)
 *   source SIG        the state of the source it was compiled from
 *   image-state SIG   the image file as its writer verified it
 *   refused SIG       (optional) a later state of the source that could
 *   why TEXT            not be compiled, and why: not tried again
 *
 * where SIG is "dev ino size mtime ctime" (stat()).  The writer of an
 * image verifies all of it (header and body checksums); a process opening
 * it later checks the header, the size and that stat() still gives the
 * image-state its writer verified (nothing has written to it since), and
 * checks the whole body itself only when it does not.
 *
 * Threads: the parent uses the store single-threaded; in a child, the
 * reload thread and request threads (an .htaccess map's first load) use it,
 * serialised per process by a mutex (the lock file's POSIX lock is per
 * process).  No request takes any of these locks: a request reads a
 * version that a store operation made.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "apr_file_io.h"
#include "unixd.h"

#include <openssl/evp.h>

#include "certauthz_image.h"
#include "mod_certauthz_private.h"

#define POINTER_MAGIC "certauthz-pointer 1"
#define IMAGE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE)

static struct {
    const char *dir;         /* NULL: no store (each process on its own) */
    const char *why_not;     /* when dir is NULL: why */
    apr_thread_mutex_t *mtx; /* a child's store operations, one at a time */
    int chown_to;            /* running as root: files go to httpd's user */
} store;

int cz_store_enabled(void)
{
    return store.dir != NULL;
}

const char *cz_store_dir(void)
{
    return store.dir ? store.dir : "-";
}

/* ---- names ------------------------------------------------------------ */

static const char *key_of(const char *mapkey, apr_pool_t *p)
{
    unsigned char d[32];
    unsigned n = 0;
    char *hex = apr_palloc(p, 33);

    if (!EVP_Digest(mapkey, strlen(mapkey), d, &n, EVP_sha256(), NULL))
        memset(d, 0, sizeof(d));
    for (int i = 0; i < 16; i++)
        apr_snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return hex;
}

static const char *path_of(const char *mapkey, const char *suffix,
                           apr_pool_t *p)
{
    return apr_pstrcat(p, store.dir, "/", key_of(mapkey, p), suffix, NULL);
}

static const char *image_name(const char *mapkey, apr_uint32_t gen,
                              apr_pool_t *p)
{
    return apr_psprintf(p, "%s.%u.img", key_of(mapkey, p), gen);
}

/* ---- pointers ------------------------------------------------------------ */

static const char *sig_text(const certauthz_file_sig_t *g, apr_pool_t *p)
{
    return apr_psprintf(p,
                        "%" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT
                        " %" APR_OFF_T_FMT " %" APR_TIME_T_FMT
                        " %" APR_TIME_T_FMT,
                        (apr_uint64_t)g->dev, (apr_uint64_t)g->ino, g->size,
                        g->mtime, g->ctime);
}

static int sig_parse(certauthz_file_sig_t *g, const char *s)
{
    unsigned long long dev, ino;
    long long size, mt, ct;
    char extra;

    if (sscanf(s, "%llu %llu %lld %lld %lld%c", &dev, &ino, &size, &mt, &ct,
               &extra)
        != 5)
        return 0;
    g->dev = (apr_dev_t)dev;
    g->ino = (apr_ino_t)ino;
    g->size = (apr_off_t)size;
    g->mtime = (apr_time_t)mt;
    g->ctime = (apr_time_t)ct;
    return 1;
}

static int is_hex64(const char *s)
{
    int n = 0;
    for (; *s; s++, n++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return n == 64;
}

/* An image name of this map: KEY.G.img with G the pointer's generation. */
static int name_ok(const char *mapkey, const cz_pointer_t *ptr, apr_pool_t *p)
{
    return !strcmp(ptr->image, image_name(mapkey, ptr->gen, p));
}

/* A regular file itself, not a link to one (nor a FIFO, which would block
 * an open): what a process of this module put in the store. */
static int regular(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;
    return apr_stat(&fi, path, APR_FINFO_LINK | APR_FINFO_TYPE, p)
               == APR_SUCCESS
           && fi.filetype == APR_REG;
}

apr_status_t cz_store_read(const char *mapkey, cz_pointer_t *ptr,
                           const char **why, apr_pool_t *p)
{
    const char *path = path_of(mapkey, ".ptr", p);
    char buf[2048], *line, *last;
    apr_file_t *f;
    apr_size_t n = sizeof(buf) - 1;
    apr_status_t rv;
    int seen = 0;

    memset(ptr, 0, sizeof(*ptr));
    *why = NULL;
    if (!store.dir)
        return APR_ENOENT;
    if (!regular(path, p))
        rv = APR_ENOENT;
    else
        rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "%s cannot be opened (%pm)", path, &rv);
        return rv;
    }
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *why = apr_psprintf(p, "%s cannot be read (%pm)", path, &rv);
        return rv;
    }
    buf[n] = '\0';
    if (n == sizeof(buf) - 1
        || strncmp(buf, POINTER_MAGIC "\n", sizeof(POINTER_MAGIC)))
        goto bad;
    for (line = apr_strtok(buf + sizeof(POINTER_MAGIC), "\n", &last); line;
         line = apr_strtok(NULL, "\n", &last)) {
        char *val = strchr(line, ' ');
        char *end;
        if (!val)
            goto bad;
        *val++ = '\0';
        if (!strcmp(line, "serial")) {
            ptr->serial = (apr_uint64_t)apr_strtoi64(val, &end, 10);
            seen |= *end ? 0 : 1;
        }
        else if (!strcmp(line, "generation")) {
            ptr->gen = (apr_uint32_t)apr_strtoi64(val, &end, 10);
            seen |= *end ? 0 : 2;
        }
        else if (!strcmp(line, "image")) {
            apr_cpystrn(ptr->image, strcmp(val, "-") ? val : "",
                        sizeof(ptr->image));
            seen |= 4;
        }
        else if (!strcmp(line, "sha256")) {
            apr_cpystrn(ptr->sha256, strcmp(val, "-") ? val : "",
                        sizeof(ptr->sha256));
            seen |= 8;
        }
        else if (!strcmp(line, "source")) {
            seen |= sig_parse(&ptr->source, val) ? 16 : 0;
        }
        else if (!strcmp(line, "image-state")) {
            seen |= sig_parse(&ptr->image_state, val) ? 32 : 0;
        }
        else if (!strcmp(line, "refused")) {
            ptr->has_refused = sig_parse(&ptr->refused, val);
            if (!ptr->has_refused)
                goto bad;
        }
        else if (!strcmp(line, "why")) {
            apr_cpystrn(ptr->why, val, sizeof(ptr->why));
        }
        /* other fields: a later version's, ignored */
    }
    if (seen != 63)
        goto bad;
    if (ptr->gen && (!name_ok(mapkey, ptr, p) || !is_hex64(ptr->sha256)))
        goto bad;
    return APR_SUCCESS;
bad:
    *why = apr_psprintf(p, "%s is not a pointer this module wrote", path);
    memset(ptr, 0, sizeof(*ptr));
    return CERTAUTHZ_EBADINPUT;
}

static apr_status_t write_pointer(const char *mapkey, const cz_pointer_t *ptr,
                                  const char **why, apr_pool_t *p)
{
    const char *path = path_of(mapkey, ".ptr", p);
    char *tmp = apr_pstrcat(p, path, ".tmpXXXXXX", NULL);
    const char *text = apr_psprintf(
        p,
        POINTER_MAGIC "\nserial %" APR_UINT64_T_FMT
                      "\ngeneration %u\nimage %s\nsha256 %s\n"
                      "source %s\nimage-state %s\n%s%s%s%s%s",
        ptr->serial, ptr->gen, ptr->image[0] ? ptr->image : "-",
        ptr->sha256[0] ? ptr->sha256 : "-", sig_text(&ptr->source, p),
        sig_text(&ptr->image_state, p), ptr->has_refused ? "refused " : "",
        ptr->has_refused ? sig_text(&ptr->refused, p) : "",
        ptr->has_refused ? "\nwhy " : "",
        ptr->has_refused ? certauthz_log_escape(ptr->why, p) : "",
        ptr->has_refused ? "\n" : "");
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_file_mktemp(
        &f, tmp, APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, text, strlen(text), NULL);
        if (rv == APR_SUCCESS)
            rv = apr_file_sync(f);
        if (apr_file_close(f) != APR_SUCCESS && rv == APR_SUCCESS)
            rv = APR_EGENERAL;
        if (rv == APR_SUCCESS) {
            apr_file_perms_set(tmp, IMAGE_PERMS);
            rv = apr_file_rename(tmp, path, p);
        }
        if (rv != APR_SUCCESS)
            apr_file_remove(tmp, p);
    }
    if (rv != APR_SUCCESS)
        *why = apr_psprintf(p, "%s cannot be written (%pm)", path, &rv);
    return rv;
}

static apr_status_t stat_sig(certauthz_file_sig_t *g, const char *path,
                             apr_pool_t *p)
{
    certauthz_file_obs_t obs;

    certauthz_watch_observe(&obs, path, 0, p);
    *g = obs.sig;
    return obs.stat_rv;
}

/* A serial no process has seen for this map: unique even when a pointer
 * was lost and is written anew. */
static apr_uint64_t next_serial(const cz_pointer_t *ptr)
{
    apr_uint64_t now = (apr_uint64_t)apr_time_now();
    return now > ptr->serial ? now : ptr->serial + 1;
}

/* ---- images ------------------------------------------------------------- */

apr_status_t cz_store_open(const char *mapkey, const cz_pointer_t *ptr,
                           cz_loaded_t *out, const char **why,
                           apr_pool_t *ptemp)
{
    const char *path = apr_pstrcat(ptemp, store.dir, "/", ptr->image, NULL);
    certauthz_file_sig_t now;
    apr_pool_t *vp;
    certauthz_map_t *map = NULL;
    apr_time_t t0 = apr_time_now();
    apr_status_t rv;
    int full;

    memset(out, 0, sizeof(*out));
    if (!ptr->gen || !name_ok(mapkey, ptr, ptemp)) {
        *why = "no image";
        return APR_ENOENT;
    }
    if (!regular(path, ptemp)) {
        *why =
            apr_psprintf(ptemp, "image %s refused: not a regular file", path);
        return APR_ENOENT;
    }
    /* the state its writer verified: anything else is checked whole */
    full = stat_sig(&now, path, ptemp) != APR_SUCCESS
           || !certauthz_file_sig_same(&now, &ptr->image_state);
    if (!(vp = cz_own_pool("certauthz_image"))) {
        *why = "out of memory";
        return APR_ENOMEM;
    }
    /* a whole check reads every page: done in a mapping of its own that
     * is dropped, so that this process keeps mapped only the pages its
     * lookups touch (the page cache holds the file once for all) */
    if (full) {
        apr_pool_t *cp;
        certauthz_map_t *whole = NULL;
        apr_pool_create(&cp, vp);
        rv = certauthz_image_open(&whole, path, 1, why, cp);
        if (rv != APR_SUCCESS)
            *why = apr_psprintf(ptemp, "image %s refused: %s", path, *why);
        apr_pool_destroy(cp);
        if (rv != APR_SUCCESS) {
            apr_pool_destroy(vp);
            return rv;
        }
    }
    rv = certauthz_image_open(&map, path, 0, why, vp);
    if (rv == APR_SUCCESS && strcmp(certauthz_map_sha256(map), ptr->sha256)) {
        *why = "its content hash is not the pointer's";
        rv = CERTAUTHZ_EBADINPUT;
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(ptemp, "image %s refused: %s", path, *why);
        apr_pool_destroy(vp);
        return rv;
    }
    out->map = map;
    out->pool = vp;
    out->usec = apr_time_now() - t0;
    out->gen = ptr->gen;
    out->state = ptr->source;
    out->image = apr_pstrdup(vp, path);
    return APR_SUCCESS;
}

/* Remove this map's images older than gen - 1 and temporary files left by
 * a writer that died. */
static void prune(const char *mapkey, apr_uint32_t gen, apr_pool_t *p)
{
    const char *key = key_of(mapkey, p);
    apr_size_t klen = strlen(key);
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, store.dir, p) != APR_SUCCESS)
        return;
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        const char *n = fi.name;
        char *end;
        apr_int64_t g;
        if (strncmp(n, key, klen) || n[klen] != '.')
            continue;
        if (strstr(n, ".tmp")) {
            /* a writer holds the lock while its temporary files exist:
             * ours is held, so these are a dead writer's */
            apr_file_remove(apr_pstrcat(p, store.dir, "/", n, NULL), p);
            continue;
        }
        g = apr_strtoi64(n + klen + 1, &end, 10);
        if (!strcmp(end, ".img") && g + 1 < (apr_int64_t)gen)
            apr_file_remove(apr_pstrcat(p, store.dir, "/", n, NULL), p);
    }
    apr_dir_close(d);
}

/* Give memory freed by a parse back to the system (glibc keeps freed
 * pages of its heap otherwise). */
void cz_store_trim(void)
{
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

apr_status_t cz_store_publish(const char *mapkey, cz_pointer_t *ptr,
                              cz_loaded_t *io, server_rec *s, apr_pool_t *ptemp)
{
    cz_pointer_t next = *ptr;
    cz_loaded_t img;
    const char *why = NULL, *path;
    apr_status_t rv;

    next.serial = next_serial(ptr);
    next.gen = (ptr->gen > io->gen ? ptr->gen : io->gen) + 1;
    apr_cpystrn(next.image, image_name(mapkey, next.gen, ptemp),
                sizeof(next.image));
    apr_cpystrn(next.sha256, certauthz_map_sha256(io->map),
                sizeof(next.sha256));
    next.source = io->state;
    next.has_refused = 0;
    next.why[0] = '\0';
    path = apr_pstrcat(ptemp, store.dir, "/", next.image, NULL);
    rv = certauthz_image_write(io->map, path, IMAGE_PERMS, &why, ptemp);
    if (rv == APR_SUCCESS) {
        rv = stat_sig(&next.image_state, path, ptemp);
        if (rv != APR_SUCCESS)
            why =
                apr_psprintf(ptemp, "%s: cannot be examined (%pm)", path, &rv);
    }
    /* the writer checks all of it once: it opens the image the way every
     * other process will, but with the body's checksum (image_state equal:
     * so force it) */
    if (rv == APR_SUCCESS) {
        cz_pointer_t probe = next;
        probe.image_state.size = -1;
        rv = cz_store_open(mapkey, &probe, &img, &why, ptemp);
    }
    if (rv == APR_SUCCESS
        && (rv = write_pointer(mapkey, &next, &why, ptemp)) != APR_SUCCESS)
        apr_pool_destroy(img.pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "CERTAUTHZ0043: map %s: no shared image (%s): this "
                     "process uses its own copy",
                     io->map ? certauthz_map_name(io->map) : mapkey, why);
        apr_file_remove(path, ptemp);
        return rv;
    }
    prune(mapkey, next.gen, ptemp);
    /* the parsed copy goes; the image replaces it */
    img.usec = io->usec;
    apr_pool_destroy(io->pool);
    cz_store_trim();
    *io = img;
    *ptr = next;
    return APR_SUCCESS;
}

apr_status_t cz_store_repoint(const char *mapkey, cz_pointer_t *ptr,
                              apr_pool_t *ptemp)
{
    cz_pointer_t next = *ptr;
    const char *err;
    apr_status_t rv;

    next.serial = next_serial(ptr);
    if ((rv = write_pointer(mapkey, &next, &err, ptemp)) == APR_SUCCESS)
        *ptr = next;
    return rv;
}

apr_status_t cz_store_refuse(const char *mapkey, cz_pointer_t *ptr,
                             const certauthz_file_sig_t *state, const char *why,
                             apr_pool_t *ptemp)
{
    cz_pointer_t next = *ptr;
    const char *err;
    apr_status_t rv;

    next.serial = next_serial(ptr);
    next.has_refused = 1;
    next.refused = *state;
    apr_cpystrn(next.why, why ? why : "cannot be loaded", sizeof(next.why));
    if ((rv = write_pointer(mapkey, &next, &err, ptemp)) == APR_SUCCESS)
        *ptr = next;
    return rv;
}

/* ---- locks ---------------------------------------------------------------- */

struct cz_store_lock_t {
    apr_file_t *f;
    int have_mtx;
};

cz_store_lock_t *cz_store_trylock(const char *mapkey, int wait, int *held,
                                  apr_pool_t *p)
{
    cz_store_lock_t *l = apr_pcalloc(p, sizeof(*l));
    const char *path = path_of(mapkey, ".lock", p);
    apr_finfo_t fi;
    apr_status_t rv;

    if (store.mtx) {
        if (wait)
            rv = apr_thread_mutex_lock(store.mtx);
        else
            rv = apr_thread_mutex_trylock(store.mtx);
        if (rv != APR_SUCCESS) {
            *held = 1; /* another thread of this process */
            return NULL;
        }
        l->have_mtx = 1;
    }
    *held = 0;
    rv = APR_EGENERAL;
    if (regular(path, p)
        || apr_stat(&fi, path, APR_FINFO_LINK, p) != APR_SUCCESS)
        rv = apr_file_open(&l->f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                           APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_lock(l->f, APR_FLOCK_EXCLUSIVE
                                     | (wait ? 0 : APR_FLOCK_NONBLOCK));
        if (rv != APR_SUCCESS) {
            apr_file_close(l->f);
            *held = 1; /* another process */
        }
    }
    if (rv != APR_SUCCESS) {
        if (l->have_mtx)
            apr_thread_mutex_unlock(store.mtx);
        return NULL;
    }
    return l;
}

void cz_store_unlock(cz_store_lock_t *l)
{
    if (!l)
        return;
    apr_file_unlock(l->f);
    apr_file_close(l->f);
    if (l->have_mtx)
        apr_thread_mutex_unlock(store.mtx);
}

/* ---- lifecycle -------------------------------------------------------------- */

/* The directory, opened without following a link, made 0700 and httpd's
 * user's through its descriptor. */
static int take_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), ok;

    if (fd < 0)
        return 0;
    ok = fchmod(fd, 0700) == 0
         && (!store.chown_to
             || fchown(fd, ap_unixd_config.user_id, ap_unixd_config.group_id)
                    == 0);
    close(fd);
    return ok;
}

/* The parent runs as root: what it does in the store (a directory httpd's
 * user may write) it does as that user, so that nothing planted there (a
 * link, say) makes root write or give away a file elsewhere, and what it
 * writes is that user's without a chown. */
static struct {
    int on;
    gid_t egid;
} as_user;

void cz_store_become_user(void)
{
    if (!store.dir || !store.chown_to || as_user.on)
        return;
    as_user.egid = getegid();
    if (setegid(ap_unixd_config.group_id) != 0)
        return;
    if (seteuid(ap_unixd_config.user_id) != 0) {
        if (setegid(as_user.egid) != 0) {
            /* still root's group; nothing else changed */
        }
        return;
    }
    as_user.on = 1;
}

void cz_store_become_root(void)
{
    if (!as_user.on)
        return;
    if (seteuid(0) != 0 || setegid(as_user.egid) != 0) {
        /* cannot happen: the saved uid is root's */
    }
    as_user.on = 0;
}

void cz_store_post_config(server_rec *s, apr_pool_t *pconf)
{
#if defined(__GLIBC__)
    /* A map's arrays are large blocks grown by realloc(): with glibc's
     * threshold for mmap()ed blocks kept at its default (128 KiB; glibc
     * raises it after the first large free, and then serves such blocks
     * from its heaps: copied when they grow, kept when freed), every parse
     * costs the same and gives its memory back when it is freed. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    const char *dir = ap_runtime_dir_relative(pconf, "certauthz");
    apr_finfo_t fi;
    apr_status_t rv;

    store.dir = NULL;
    store.mtx = NULL;
    store.chown_to = geteuid() == 0 && ap_unixd_config.user_id != 0;
    if (!dir) {
        store.why_not = "no runtime directory";
        return;
    }
    rv = apr_dir_make(
        dir, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE, pconf);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        store.why_not =
            apr_psprintf(pconf, "%s cannot be made (%pm)", dir, &rv);
    }
    else if ((rv = apr_stat(&fi, dir, APR_FINFO_TYPE | APR_FINFO_LINK, pconf))
                 != APR_SUCCESS
             || fi.filetype != APR_DIR) {
        /* a link too: the parent (root) changes only what it made */
        store.why_not = apr_psprintf(pconf, "%s is not a directory", dir);
    }
    else if (!take_dir(dir)) {
        store.why_not =
            apr_psprintf(pconf, "%s cannot be given to httpd's user", dir);
    }
    else {
        store.dir = dir;
        store.why_not = NULL;
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "CERTAUTHZ0042: no image store (%s): each process keeps a "
                 "copy of every map of its own and reloads it itself",
                 store.why_not);
}

void cz_store_child_init(apr_pool_t *pchild)
{
    if (store.dir)
        apr_thread_mutex_create(&store.mtx, APR_THREAD_MUTEX_DEFAULT, pchild);
}
