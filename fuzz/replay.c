/*
 * replay.c -- run a fuzz target's LLVMFuzzerTestOneInput on files, without
 * libFuzzer, so corpora and reproducers run as ordinary tests with any
 * compiler:
 *
 *     replay DIR|FILE...
 *
 * Directories are walked (recursively; hidden entries and README* files
 * skipped; names sorted).  Each file is one TAP test, run in a child process so that a
 * crash or an abort() of the harness is reported as "not ok N - FILE" and
 * the other files still run.  Exit status 0 when every file passed, 1
 * otherwise (2 on a usage or I/O error before any test ran).
 *
 * Link with exactly one of fuzz_map.c, fuzz_dn.c, fuzz_facts.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char **files;
static size_t nfiles, capfiles;

static void add_file(const char *path)
{
    if (nfiles == capfiles) {
        capfiles = capfiles ? 2 * capfiles : 64;
        files = realloc(files, capfiles * sizeof(*files));
        if (!files) {
            perror("replay");
            exit(2);
        }
    }
    files[nfiles] = strdup(path);
    if (!files[nfiles]) {
        perror("replay");
        exit(2);
    }
    nfiles++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    if (!(d = opendir(path))) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    while ((e = readdir(d))) {
        /* hidden entries and README files (descriptions of reproducers)
         * are not inputs */
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "README", 6))
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *sub = malloc(n);
        if (!sub) {
            perror("replay");
            exit(2);
        }
        snprintf(sub, n, "%s/%s", path, e->d_name);
        walk(sub);
        free(sub);
    }
    closedir(d);
}

/* Read a whole file into a buffer of exactly its size (so that a read past
 * the end of the input is visible to a sanitizer). */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;

    if (!fp)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return NULL;
    }
    memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

static int run_one(const char *path)
{
    size_t len = 0;
    unsigned char *data = slurp(path, &len);

    if (!data) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;

#ifdef REPLAY_DEFAULT_DIRS
    /* built by make check: with no arguments, the target's seed corpus and
     * reproducers (a space-separated list of directories) */
    if (argc < 2) {
        char *dirs = strdup(REPLAY_DEFAULT_DIRS), *save = NULL;
        for (char *d = strtok_r(dirs, " ", &save); d;
             d = strtok_r(NULL, " ", &save))
            walk(d);
        free(dirs);
    }
#else
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
#endif
    for (int i = 1; i < argc; i++)
        walk(argv[i]);
    qsort(files, nfiles, sizeof(*files), by_name);
    LLVMFuzzerInitialize(&argc, &argv);

    printf("1..%zu\n", nfiles);
    fflush(stdout);
    for (size_t i = 0; i < nfiles; i++) {
        pid_t pid = fork();
        int status = 0;

        if (pid < 0) {
            perror("replay: fork");
            return 2;
        }
        if (pid == 0) {
            /* exit(), not _exit(): a sanitizer's leak check runs at exit */
            exit(run_one(files[i]));
        }
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("replay: waitpid");
                return 2;
            }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("ok %zu - %s\n", i + 1, files[i]);
        }
        else {
            failed++;
            if (WIFSIGNALED(status))
                printf("not ok %zu - %s (signal %d)\n", i + 1, files[i],
                       WTERMSIG(status));
            else
                printf("not ok %zu - %s (exit %d)\n", i + 1, files[i],
                       WEXITSTATUS(status));
        }
        fflush(stdout);
    }
    if (failed)
        printf("# %d of %zu inputs failed\n", failed, nfiles);
    return failed ? 1 : 0;
}
