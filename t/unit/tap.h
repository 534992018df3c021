/*
 * tap.h -- a tiny TAP producer for the unit tests (header only).
 *
 *   plan(n)                 optional: announce n tests up front
 *   ok(cond, fmt, ...)      one test; returns cond
 *   is_int(got, want, ...)  integers
 *   is_str(got, want, ...)  NUL-terminated strings (NULL allowed on both sides)
 *   is_mem(got, glen, want, wlen, ...)  byte strings
 *   diag(fmt, ...)          a "# ..." line on stderr
 *   done_testing()          prints the plan if none was given; returns the
 *                           exit status (non-zero when a test failed)
 *
 * Failure diagnostics print strings with non-printable bytes as \xHH.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAP_UNUSED __attribute__((unused))

static int tap_run, tap_failed, tap_planned = -1;

static TAP_UNUSED void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static TAP_UNUSED void diag(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("# ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* Printable rendering of a byte string for diagnostics (static buffer,
 * truncated; one of two alternating buffers so two may be in one call). */
static TAP_UNUSED const char *tap_show(const char *s, size_t len)
{
    static char bufs[2][512];
    static int which;
    char *b = bufs[which ^= 1], *o = b;

    if (!s)
        return "(null)";
    *o++ = '"';
    for (size_t i = 0; i < len && o < b + sizeof(bufs[0]) - 8; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\')
            o += sprintf(o, "\\x%02X", c);
        else
            *o++ = (char)c;
    }
    *o++ = '"';
    *o = '\0';
    return b;
}

static TAP_UNUSED int tap_vok(int cond, const char *file, int line,
                              const char *fmt, va_list ap)
{
    tap_run++;
    printf("%sok %d - ", cond ? "" : "not ", tap_run);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    if (!cond) {
        tap_failed++;
        diag("  Failed test at %s line %d.", file, line);
    }
    return cond;
}

static TAP_UNUSED int tap_ok(int cond, const char *file, int line,
                             const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = tap_vok(cond, file, line, fmt, ap);
    va_end(ap);
    return r;
}

static TAP_UNUSED int tap_is_int(long long got, long long want,
                                 const char *file, int line, const char *fmt,
                                 ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = tap_vok(got == want, file, line, fmt, ap);
    va_end(ap);
    if (!r)
        diag("         got: %lld\n#     expected: %lld", got, want);
    return r;
}

static TAP_UNUSED int tap_is_mem(const char *got, size_t glen, const char *want,
                                 size_t wlen, const char *file, int line,
                                 const char *fmt, va_list ap)
{
    int same = (!got && !want)
               || (got && want && glen == wlen && !memcmp(got, want, glen));
    int r = tap_vok(same, file, line, fmt, ap);
    if (!r)
        diag("         got: %s\n#     expected: %s", tap_show(got, glen),
             tap_show(want, wlen));
    return r;
}

static TAP_UNUSED int tap_is_str(const char *got, const char *want,
                                 const char *file, int line, const char *fmt,
                                 ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = tap_is_mem(got, got ? strlen(got) : 0, want, want ? strlen(want) : 0,
                   file, line, fmt, ap);
    va_end(ap);
    return r;
}

static TAP_UNUSED int tap_is_bytes(const char *got, size_t glen,
                                   const char *want, size_t wlen,
                                   const char *file, int line, const char *fmt,
                                   ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = tap_is_mem(got, glen, want, wlen, file, line, fmt, ap);
    va_end(ap);
    return r;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                 \
    tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__,        \
               __VA_ARGS__)
#define is_str(got, want, ...)                                                 \
    tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, glen, want, wlen, ...)                                     \
    tap_is_bytes((got), (glen), (want), (wlen), __FILE__, __LINE__, __VA_ARGS__)

static TAP_UNUSED int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_run);
    else if (tap_planned != tap_run)
        diag("planned %d tests but ran %d", tap_planned, tap_run);
    if (tap_failed)
        diag("failed %d of %d tests", tap_failed, tap_run);
    fflush(stdout);
    return tap_failed || (tap_planned >= 0 && tap_planned != tap_run);
}

#endif /* TAP_H */
