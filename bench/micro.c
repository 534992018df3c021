/*
 * micro.c -- micro-benchmark of the mod_certauthz core, without httpd:
 * how long a map takes to load and how much memory it holds, what one
 * certauthz_map_resolve() costs as the map grows (exact rules: constant;
 * glob and regex rules: linear, they are tried in file order), and what
 * certauthz_facts_from_x509() costs, the per-certificate parse that the
 * module's per-connection cache saves.
 *
 *   bench/micro [--json] [--quick] [--keep DIR]
 *
 * Maps are generated into a temporary directory (removed at the end; with
 * --keep DIR they are written to DIR and kept): 10, 10^4 and 10^6 lines of
 * exact rules of every type in turn (email, cn, uri, dns, serial, upn,
 * sha256, dn, ip, spki), and 10^4 lines after 10, 100 and 1000 patterns
 * (half dns globs, half cn regexes).  The last line of each maps the
 * "needle" certificate; the "nobody" certificate maps through nothing, so
 * both are tried against every pattern.  --quick leaves out the map of a
 * million lines.
 *
 * Each map is measured in a child process of its own (fork), so that its
 * memory is not mixed with another's:
 *   first   the first load, as at httpd's start (ms);
 *   load    median of that and further loads (at least 3, at most 25 or
 *           about a second's worth) (ms);
 *   map MB  how much the process's peak RSS (VmHWM) rose during the first
 *           load: all that loading took, kept or not, and the library code
 *           a first load pages in (about 1 MB);
 *   peak MB the process's peak RSS after that load (it starts as a copy of
 *           this small parent), as `/usr/bin/time -f %M` would report it;
 *   mapped, unmapped  ns per certauthz_map_resolve() of the facts of the
 *           needle and of the nobody certificate, built once beforehand;
 *   image   the size of the map's compiled image (certauthz_image.h);
 *   open ms opening that image as httpd's children do (header checked);
 *   image ns mapped ns against the image (unmapped in --json).
 * Times are medians of 7 runs of a batch of calls sized to last about
 * 20 ms.  Resolution runs against the same facts again and again, so the
 * caches are warm: this shows the cost of the algorithm, not of memory
 * misses.  The table ends with the cost of certauthz_facts_from_x509() on
 * the needle certificate (its pool cleared after each call).
 *
 * --json prints one JSON object a line instead of the table: one per map,
 * then one for the facts.  Exit status: 0, or 1 when a map fails to load or
 * a certificate does not resolve as expected (then the numbers would
 * measure something else).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "certauthz_facts.h"
#include "certauthz_image.h"
#include "certauthz_map.h"
#include "../t/certgen.h"

#define NEEDLE                                                                 \
    "--subject /O=Bench/CN=needle --serial 0BEEF1"                             \
    " --san email:needle@bench.example --san dns:needle.bench.example"         \
    " --san uri:spiffe://bench.example/needle --san upn:needle@bench.example"  \
    " --san ip:192.0.2.1"
#define NOBODY                                                                 \
    "--subject /O=Bench/CN=nobody --serial 0BEEF2"                             \
    " --san email:nobody@bench.example --san dns:nobody.bench.example"         \
    " --san uri:spiffe://bench.example/nobody --san upn:nobody@bench.example"  \
    " --san ip:192.0.2.2"
#define NEEDLE_USER "needle"

#define REPS 7              /* timed batches; the median is reported */
#define BATCH_NS 20e6       /* a batch lasts about this long */
#define MAX_CALLS 100000000 /* calls in a batch at most */
#define LOAD_RUNS_MAX 25
#define LOAD_NS_MAX 1e9 /* further loads stop after about this long */

typedef struct {
    const char *label;
    unsigned long exact;    /* exact lines, the needle's included */
    unsigned long patterns; /* glob and regex lines before them */
} row_t;

static const row_t rows[] = {
    {"exact", 10, 0},
    {"exact", 10000, 0},
    {"exact", 1000000, 0},
    {"exact+10 pat", 10000, 10},
    {"exact+100 pat", 10000, 100},
    {"exact+1000 pat", 10000, 1000},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* What a child measured, sent to the parent through a pipe. */
typedef struct {
    int ok;
    char why[256];
    unsigned nrules;
    double first_ms, load_ms;
    int load_runs;
    long rss_before_kb, hwm_load_kb;
    double mapped_ns, unmapped_ns;
    double image_open_ms, image_mapped_ns, image_unmapped_ns;
    long image_bytes;
} result_t;

static volatile unsigned long sink; /* results, so no call is optimised out */

/* The temporary directory and the map in it, removed on SIGINT, SIGTERM
 * or SIGPIPE (bench/micro | head) as at a normal end. */
static char tmp_dir[64], tmp_map[PATH_MAX];

static void on_signal(int sig)
{
    if (tmp_map[0])
        unlink(tmp_map);
    if (tmp_dir[0])
        rmdir(tmp_dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef void op_fn(void *arg, long calls);

/* Median ns per call of op over REPS batches of calls. */
static double ns_per_call(op_fn *op, void *arg)
{
    double t, per[REPS];
    long n = 1;

    op(arg, 1); /* warm up */
    for (;;) {
        t = now_ns();
        op(arg, n);
        t = now_ns() - t;
        if (t >= BATCH_NS / 10 || n >= MAX_CALLS / 2)
            break;
        n *= 2;
    }
    n = (long)((double)n * BATCH_NS / (t > 1 ? t : 1));
    n = n < 1 ? 1 : n > MAX_CALLS ? MAX_CALLS : n;
    for (int r = 0; r < REPS; r++) {
        t = now_ns();
        op(arg, n);
        per[r] = (now_ns() - t) / (double)n;
    }
    return median(per, REPS);
}

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *field)
{
    char line[256];
    size_t n = strlen(field);
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return kb;
}

/* ---- maps ------------------------------------------------------------ */

/* 32 bytes that stand for a digest: splitmix64 of i. */
static void fake_digest(unsigned char *out, unsigned long i)
{
    uint64_t x = (uint64_t)i * 4 + 0x9E3779B97F4A7C15ULL;

    for (int w = 0; w < 4; w++) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (int b = 0; b < 8; b++)
            out[w * 8 + b] = (unsigned char)(z >> (8 * b));
    }
}

/* Exact rule number i: the selector types in turn, each value unique. */
static void exact_line(FILE *f, unsigned long i)
{
    unsigned char d[32];
    char text[65];

    switch (i % 10) {
    case 0:
        fprintf(f, "email:user%lu@example.com user%lu staff,eng\n", i, i);
        break;
    case 1:
        fprintf(f, "cn:host-%lu host%lu hosts\n", i, i);
        break;
    case 2:
        fprintf(f,
                "uri:spiffe://example.org/ns/prod/sa/svc%lu svc%lu "
                "services\n",
                i, i);
        break;
    case 3:
        fprintf(f, "dns:h%lu.example.com h%lu\n", i, i);
        break;
    case 4:
        fprintf(f, "serial:%lX0A1B user-s%lu staff\n", i, i);
        break;
    case 5:
        fprintf(f, "upn:u%lu@corp.example.com u%lu staff\n", i, i);
        break;
    case 6:
        fake_digest(d, i);
        for (int k = 0; k < 32; k++)
            sprintf(text + 2 * k, "%02x", d[k]);
        fprintf(f, "sha256:%s kiosk-%lu kiosks\n", text, i);
        break;
    case 7:
        fprintf(f, "dn:\"CN=User %lu,OU=Ops,O=Example\" dn%lu ops\n", i, i);
        break;
    case 8:
        fprintf(f, "ip:10.%lu.%lu.%lu ip%lu\n", (i >> 16) & 255, (i >> 8) & 255,
                i & 255, i);
        break;
    default:
        fake_digest(d, i);
        EVP_EncodeBlock((unsigned char *)text, d, 32);
        fprintf(f, "spki:%s pin%lu\n", text, i);
    }
}

/* Write the map of a row; its size in bytes, or -1. */
static long write_map(const char *path, const row_t *row)
{
    FILE *f = fopen(path, "w");
    long size;

    if (!f)
        return -1;
    fprintf(f, "# bench/micro: %lu patterns, %lu exact rules\n", row->patterns,
            row->exact);
    for (unsigned long k = 0; k < row->patterns; k++) {
        if (k % 2)
            fprintf(f, "cn~^svc-%lu-([a-z]+)$ svc-$1 patterns\n", k);
        else
            fprintf(f, "dns:*.g%lu.bench.example glob%lu patterns\n", k, k);
    }
    /* the header comment is one of the lines: 10 lines make a map of 10 */
    for (unsigned long i = 0; i + 2 < row->exact; i++)
        exact_line(f, i);
    fprintf(f, "email:needle@bench.example " NEEDLE_USER " bench\n");
    size = ftell(f);
    return fclose(f) ? -1 : size;
}

/* ---- the child: one map --------------------------------------------- */

typedef struct {
    const certauthz_map_t *map;
    const certauthz_facts_t *facts;
    apr_pool_t *p;
} resolve_arg_t;

static void op_resolve(void *arg, long calls)
{
    resolve_arg_t *a = arg;
    certauthz_identity_t id;

    for (long i = 0; i < calls; i++) {
        /* the identity's groups come from the pool: cleared now and then,
         * so that later measurements do not run in ever more memory */
        if (!(i & 1023))
            apr_pool_clear(a->p);
        certauthz_map_resolve(&id, a->map, a->facts, a->p);
        sink += id.outcome;
    }
}

static void fail(result_t *res, const char *fmt, const char *arg)
{
    res->ok = 0;
    snprintf(res->why, sizeof(res->why), fmt, arg);
}

static void measure_map(result_t *res, const char *path, X509 *needle,
                        X509 *nobody)
{
    apr_pool_t *p, *mp, *rp;
    apr_array_header_t *errs;
    certauthz_map_t *map, *again;
    certauthz_facts_t *fn, *fx;
    certauthz_identity_t id;
    resolve_arg_t arg;
    double t, loads[LOAD_RUNS_MAX], total;
    int runs = 0;

    apr_pool_create(&p, NULL);
    apr_pool_create(&mp, p);
    res->rss_before_kb = status_kb("VmRSS");
    t = now_ns();
    if (certauthz_map_load(&map, path, &errs, mp) != APR_SUCCESS) {
        fail(res, "%s does not load", path);
        return;
    }
    loads[runs++] = now_ns() - t;
    res->hwm_load_kb = status_kb("VmHWM");
    res->nrules = certauthz_map_nrules(map);
    res->first_ms = loads[0] / 1e6;

    total = loads[0];
    while (runs < 3 || (runs < LOAD_RUNS_MAX && total < LOAD_NS_MAX)) {
        apr_pool_t *lp;
        apr_pool_create(&lp, p);
        t = now_ns();
        certauthz_map_load(&again, path, &errs, lp);
        loads[runs] = now_ns() - t;
        total += loads[runs++];
        apr_pool_destroy(lp);
    }
    res->load_runs = runs;
    res->load_ms = median(loads, runs) / 1e6;

    if (certauthz_facts_from_x509(&fn, needle, p) != APR_SUCCESS
        || certauthz_facts_from_x509(&fx, nobody, p) != APR_SUCCESS) {
        fail(res, "%s", "no facts of the certificates");
        return;
    }
    apr_pool_create(&rp, p);
    certauthz_map_resolve(&id, map, fn, rp);
    if (id.outcome != CERTAUTHZ_MAPPED || strcmp(id.user, NEEDLE_USER)) {
        fail(res, "the needle certificate is not mapped by %s", path);
        return;
    }
    certauthz_map_resolve(&id, map, fx, rp);
    if (id.outcome != CERTAUTHZ_UNMAPPED) {
        fail(res, "the nobody certificate is mapped by %s", path);
        return;
    }
    arg.map = map;
    arg.p = rp;
    arg.facts = fn;
    res->mapped_ns = ns_per_call(op_resolve, &arg);
    arg.facts = fx;
    res->unmapped_ns = ns_per_call(op_resolve, &arg);

    /* the same map as a compiled image, as every httpd child has it */
    {
        char img[PATH_MAX + 8];
        const char *why = NULL;
        certauthz_map_t *im;
        apr_finfo_t fi;
        snprintf(img, sizeof(img), "%s.img", path);
        if (certauthz_image_write(map, img, APR_FPROT_UREAD | APR_FPROT_UWRITE,
                                  &why, p)
            != APR_SUCCESS) {
            fail(res, "no image: %s", why);
            return;
        }
        res->image_bytes = apr_stat(&fi, img, APR_FINFO_SIZE, p) == APR_SUCCESS
                               ? (long)fi.size
                               : 0;
        t = now_ns();
        if (certauthz_image_open(&im, img, 0, &why, p) != APR_SUCCESS) {
            unlink(img);
            fail(res, "the image does not open: %s", why);
            return;
        }
        res->image_open_ms = (now_ns() - t) / 1e6;
        unlink(img); /* the mapping stays */
        certauthz_map_resolve(&id, im, fn, rp);
        if (id.outcome != CERTAUTHZ_MAPPED || strcmp(id.user, NEEDLE_USER)) {
            fail(res, "the needle certificate is not mapped by the image of %s",
                 path);
            return;
        }
        arg.map = im;
        arg.facts = fn;
        res->image_mapped_ns = ns_per_call(op_resolve, &arg);
        arg.facts = fx;
        res->image_unmapped_ns = ns_per_call(op_resolve, &arg);
    }
    res->ok = 1;
}

/* Measure a map in a child process; 0 when the child did not report. */
static int run_child(result_t *res, const char *path, X509 *needle,
                     X509 *nobody)
{
    int fd[2], status;
    pid_t pid;
    ssize_t got = 0, n;

    memset(res, 0, sizeof(*res));
    if (pipe(fd))
        return 0;
    fflush(NULL);
    if ((pid = fork()) < 0)
        return 0;
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        close(fd[0]);
        measure_map(res, path, needle, nobody);
        n = write(fd[1], res, sizeof(*res));
        _exit(n == (ssize_t)sizeof(*res) ? 0 : 1);
    }
    close(fd[1]);
    while (
        got < (ssize_t)sizeof(*res)
        && ((n = read(fd[0], (char *)res + got, sizeof(*res) - (size_t)got)) > 0
            || (n < 0 && errno == EINTR)))
        got += n > 0 ? n : 0;
    close(fd[0]);
    waitpid(pid, &status, 0);
    return got == (ssize_t)sizeof(*res);
}

/* ---- the facts ------------------------------------------------------- */

typedef struct {
    X509 *x;
    apr_pool_t *p;
} facts_arg_t;

static void op_facts(void *arg, long calls)
{
    facts_arg_t *a = arg;
    certauthz_facts_t *f;

    for (long i = 0; i < calls; i++) {
        sink += certauthz_facts_from_x509(&f, a->x, a->p);
        apr_pool_clear(a->p);
    }
}

/* ---- output ------------------------------------------------------------ */

static const char *size_text(long bytes, char *buf, size_t len)
{
    if (bytes < 10000)
        snprintf(buf, len, "%ld B", bytes);
    else if (bytes < 10000000)
        snprintf(buf, len, "%.1f KB", (double)bytes / 1e3);
    else
        snprintf(buf, len, "%.1f MB", (double)bytes / 1e6);
    return buf;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench/micro [--json] [--quick] [--keep DIR]\n"
               "  --json   one JSON object a line instead of the table\n"
               "  --quick  leave out the map of a million lines\n"
               "  --keep   write the maps to DIR and keep them\n");
}

int main(int argc, char **argv)
{
    int json = 0, quick = 0, status = 0;
    const char *keep = NULL;
    char dir[] = "/tmp/certauthz-micro-XXXXXX";
    const char *where;
    X509 *needle, *nobody;
    apr_pool_t *p;
    facts_arg_t fa;
    double facts_ns;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
            keep = argv[++i];
        else {
            usage(strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!keep && !mkdtemp(dir)) {
        perror("bench/micro: mkdtemp");
        return 1;
    }
    where = keep ? keep : dir;
    if (!keep) {
        snprintf(tmp_dir, sizeof(tmp_dir), "%s", dir);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, on_signal);
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    needle = certgen_quick(NEEDLE);
    nobody = certgen_quick(NOBODY);

    if (!json) {
        printf("bench/micro: map load and resolution in the core library "
               "(times: medians; resolve: warm caches)\n");
        printf("%-15s %9s %9s %9s %9s %8s %8s %10s %10s %8s %8s %9s\n", "map",
               "lines", "file", "first ms", "load ms", "map MB", "peak MB",
               "mapped ns", "unmapped", "image", "open ms", "image ns");
    }
    for (size_t r = 0; r < NROWS; r++) {
        const row_t *row = &rows[r];
        unsigned long lines = row->exact + row->patterns;
        const char *path;
        result_t res;
        char sz[32];
        long size;

        if (quick && lines > 100000)
            continue;
        path = apr_psprintf(p, "%s/map-%lu-%lu.map", where, row->exact,
                            row->patterns);
        if (!keep)
            snprintf(tmp_map, sizeof(tmp_map), "%s", path);
        if ((size = write_map(path, row)) < 0) {
            fprintf(stderr, "bench/micro: cannot write %s: %s\n", path,
                    strerror(errno));
            status = 1;
            break;
        }
        if (!run_child(&res, path, needle, nobody) || !res.ok) {
            fprintf(stderr, "bench/micro: %s\n",
                    res.why[0] ? res.why : "the measuring process failed");
            status = 1;
        }
        else if (json) {
            printf("{\"bench\":\"micro\",\"map\":\"%s\",\"lines\":%lu,"
                   "\"patterns\":%lu,\"rules\":%u,\"file_bytes\":%ld,"
                   "\"first_load_ms\":%.3f,\"load_ms\":%.3f,"
                   "\"load_runs\":%d,\"rss_before_kb\":%ld,"
                   "\"peak_rss_kb\":%ld,\"map_kb\":%ld,"
                   "\"resolve_mapped_ns\":%.1f,"
                   "\"resolve_unmapped_ns\":%.1f,\"image_bytes\":%ld,"
                   "\"image_open_ms\":%.3f,\"resolve_image_mapped_ns\":%.1f,"
                   "\"resolve_image_unmapped_ns\":%.1f}\n",
                   row->label, lines, row->patterns, res.nrules, size,
                   res.first_ms, res.load_ms, res.load_runs, res.rss_before_kb,
                   res.hwm_load_kb, res.hwm_load_kb - res.rss_before_kb,
                   res.mapped_ns, res.unmapped_ns, res.image_bytes,
                   res.image_open_ms, res.image_mapped_ns,
                   res.image_unmapped_ns);
        }
        else {
            char isz[32];
            printf("%-15s %9lu %9s %9.2f %9.2f %8.1f %8.1f %10.0f %10.0f %8s "
                   "%8.2f %9.0f\n",
                   row->label, lines, size_text(size, sz, sizeof(sz)),
                   res.first_ms, res.load_ms,
                   (double)(res.hwm_load_kb - res.rss_before_kb) / 1000,
                   (double)res.hwm_load_kb / 1000, res.mapped_ns,
                   res.unmapped_ns,
                   size_text(res.image_bytes, isz, sizeof(isz)),
                   res.image_open_ms, res.image_mapped_ns);
        }
        fflush(stdout);
        if (!keep) {
            unlink(path);
            tmp_map[0] = '\0';
        }
    }

    fa.x = needle;
    apr_pool_create(&fa.p, p);
    facts_ns = ns_per_call(op_facts, &fa);
    if (json)
        printf("{\"bench\":\"micro\",\"facts_from_x509_ns\":%.1f}\n", facts_ns);
    else
        printf("certauthz_facts_from_x509: %.1f us per certificate (what the "
               "per-connection cache saves)\n",
               facts_ns / 1e3);

    X509_free(needle);
    X509_free(nobody);
    apr_pool_destroy(p);
    apr_terminate();
    if (!keep)
        rmdir(dir);
    return status;
}
