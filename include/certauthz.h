/*
 * certauthz.h -- types shared by every part of the mod_certauthz core.
 *
 * The core (the files in src/) is plain C on APR, APR-util, OpenSSL and PCRE2.  It
 * includes no httpd header and never logs: functions return an
 * apr_status_t and, where input can be wrong, a reason string.  The httpd
 * glue (mod_certauthz.c) and the certauthz tool turn those into log lines or
 * configuration errors.
 *
 * Memory: every function that allocates takes the pool last; results live
 * as long as that pool.  Nothing in the core keeps global mutable state, so
 * every function is thread-safe as long as two threads do not share one
 * pool (APR pools are not thread-safe).
 */
#ifndef CERTAUTHZ_H
#define CERTAUTHZ_H

#include <apr_pools.h>
#include <apr_errno.h>

#define CERTAUTHZ_VERSION "0.1.0"

/* Kinds of certificate fact, also the selector types of the map file.
 * The order is the order `certauthz explain` prints them in. */
typedef enum {
    CERTAUTHZ_CN = 0,
    CERTAUTHZ_DN,
    CERTAUTHZ_EMAIL,
    CERTAUTHZ_DNS,
    CERTAUTHZ_URI,
    CERTAUTHZ_UPN,
    CERTAUTHZ_IP,
    CERTAUTHZ_SERIAL,
    CERTAUTHZ_SHA256,
    CERTAUTHZ_SPKI,
    CERTAUTHZ_NTYPES
} certauthz_type_e;

/* Selector keyword of a type ("cn", "email", ...). */
const char *certauthz_type_name(certauthz_type_e type);

/* Type named by the first len bytes of name (exact, lower case), or -1. */
int certauthz_type_lookup(const char *name, apr_size_t len);

/* Non-zero when values of this type compare with ASCII case folding. */
int certauthz_type_folds_case(certauthz_type_e type);

/* Where an input error was found.  file is borrowed from the caller, reason
 * is allocated from the pool of the call that failed. */
typedef struct {
    const char *file;
    unsigned line;
    const char *reason;
} certauthz_error_t;

/* An input value was rejected; the reason says why. */
#define CERTAUTHZ_EBADINPUT (APR_OS_START_USERERR + 1)

#endif /* CERTAUTHZ_H */
