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

/* The version is written once, in configure.ac's AC_INIT; the build
 * passes it to every file as CERTAUTHZ_VERSION. */
#ifndef CERTAUTHZ_VERSION
#define CERTAUTHZ_VERSION "unknown"
#endif

/* Every kind of certificate fact, once; each is also a selector type of
 * the map file.  X(ID, keyword, folds_case, value):
 *   ID          the constant CERTAUTHZ_ID;
 *   keyword     the selector type ("cn" in cn:bob, cn~regex);
 *   folds_case  1 when values compare with ASCII case folding;
 *   value       how a selector value of the type is written and compared:
 *               its normaliser norm_<value> in certauthz_match.c.
 * The order is the order `certauthz explain` prints them in.  A new type is
 * a row here, its extraction in certauthz_facts.c, and (only for a new
 * value syntax) a normaliser. */
#define CERTAUTHZ_TYPES(X)                                                     \
    X(CN, "cn", 0, text)                                                       \
    X(DN, "dn", 0, dn)                                                         \
    X(EMAIL, "email", 1, text)                                                 \
    X(DNS, "dns", 1, text)                                                     \
    X(URI, "uri", 0, text)                                                     \
    X(UPN, "upn", 1, text)                                                     \
    X(IP, "ip", 0, ip)                                                         \
    X(SERIAL, "serial", 0, serial)                                             \
    X(SHA256, "sha256", 0, sha256)                                             \
    X(SPKI, "spki", 0, spki)                                                   \
    X(EKU, "eku", 0, eku)                                                      \
    X(KU, "ku", 0, ku)                                                         \
    X(POLICY, "policy", 0, policy)                                             \
    X(SKI, "ski", 0, ski)                                                      \
    X(SID, "sid", 0, sid)                                                      \
    X(ALTSEC, "altsec", 0, altsec)

#define CERTAUTHZ_TYPE_ENUM_(id, name, fold, value) CERTAUTHZ_##id,
typedef enum {
    CERTAUTHZ_TYPES(CERTAUTHZ_TYPE_ENUM_) CERTAUTHZ_NTYPES
} certauthz_type_e;
#undef CERTAUTHZ_TYPE_ENUM_

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

/* "FILE:LINE: reason" ("FILE: reason" when line is 0), from p: the one
 * form of an input error, in directive errors, logs and the tool. */
const char *certauthz_error_text(const certauthz_error_t *e, apr_pool_t *p);

/* An input value was rejected; the reason says why. */
#define CERTAUTHZ_EBADINPUT (APR_OS_START_USERERR + 1)

#endif /* CERTAUTHZ_H */
