/*
 * certauthz_ldap.h -- the pure part of directory-backed identities (SPEC
 * section 7, "Directory-backed identities"): filter templates whose
 * placeholders are certificate facts, RFC 4515 escaping, the reduction of
 * a directory entry's attribute values to an identity, and the
 * per-process result cache.  The LDAP traffic itself is httpd's mod_ldap,
 * driven by the glue (mod_certauthz_ldap.c); nothing here talks to a
 * server.
 */
#ifndef CERTAUTHZ_LDAP_H
#define CERTAUTHZ_LDAP_H

#include <apr_time.h>

#include "certauthz.h"
#include "certauthz_facts.h"

/* ---- filter templates ------------------------------------------------

 * A template is an LDAP filter with placeholders {NAME}.  NAME is a fact
 * type (every selector type: {upn}, {email}, {cn}, {dn}, {sid}, {uri},
 * ...), whose first value's text is put in, or one of these: */
#define CERTAUTHZ_LDAP_EXTRAS(X)                                               \
    X(ALTSEC_ISSUER_SERIAL, "altsec_issuer_serial",                            \
      "the X509:<I>...<SR>... altsec form, as AD stores it")                   \
    X(CERT_DER, "cert_der",                                                    \
      "the certificate's DER bytes, for userCertificate;binary")

/* Every value put in is escaped as RFC 4515 section 3 requires ('*', '(',
 * ')', '\\' and NUL as \HH; also every other control byte), so no
 * certificate can change the filter's structure: a CN of "*)(uid=*" is
 * searched for as those eight characters.  cert_der is written as \HH for
 * every byte (the octet-string form of RFC 4515). */
typedef struct certauthz_ldap_template_t certauthz_ldap_template_t;

/* Parse text.  It must be a parenthesised filter with balanced parentheses
 * outside the placeholders, every '{' must open a known placeholder and
 * every '}' close one, and at least one placeholder must be used (a filter
 * that does not depend on the certificate would give every certificate the
 * same identity).  On error returns CERTAUTHZ_EBADINPUT, *reason set. */
apr_status_t certauthz_ldap_template_parse(certauthz_ldap_template_t **t,
                                           const char *text,
                                           const char **reason, apr_pool_t *p);

/* Non-zero when the template uses {cert_der} (the caller must then pass
 * the certificate's DER to certauthz_ldap_filter). */
int certauthz_ldap_template_wants_der(const certauthz_ldap_template_t *t);

/* The filter for a certificate, from p.  NULL when the certificate lacks a
 * fact the template uses; *missing then names it (no search is made: the
 * certificate is unmapped). */
const char *certauthz_ldap_filter(const certauthz_ldap_template_t *t,
                                  const certauthz_facts_t *facts,
                                  const unsigned char *der, apr_size_t der_len,
                                  const char **missing, apr_pool_t *p);

/* s (len bytes) escaped per RFC 4515, from p. */
const char *certauthz_ldap_escape(const char *s, apr_size_t len, apr_pool_t *p);

/* ---- an entry to an identity -----------------------------------------

 * mod_ldap hands over each requested attribute's values joined with "; ".
 * user: the user attribute's value: exactly one value, non-empty, no
 * control character; groups: the group attribute's values (NULL when the
 * entry has none), DNs (a DN's ';' is escaped, so "; " splits them
 * exactly), each reduced to its first RDN's value (as_dn 0:
 * "cn=admins,ou=groups,..." gives "admins") or kept whole as the directory
 * wrote it (as_dn 1).  A group that is not a DN or whose first RDN is
 * multi-valued (as_dn 0), that is empty, holds a control character, or
 * (as_dn 0) a ',' refuses the whole entry: never a partial identity (a
 * dropped group could let `Require not` grant).  On refusal returns
 * CERTAUTHZ_EBADINPUT with *reason. */
apr_status_t certauthz_ldap_identity(const char *user, const char *groups,
                                     int as_dn, const char **out_user,
                                     const char *const **out_groups,
                                     int *out_ngroups, const char **reason,
                                     apr_pool_t *p);

/* ---- the result cache ------------------------------------------------

 * A per-process cache of lookup results, keyed by a string (the glue uses
 * the directive's URL and the expanded filter), each with its own expiry
 * time.  At most max entries: when full, expired entries are swept, then
 * the entry that expires first is dropped.  Entries are malloc'd, one
 * block each, so the cache can live as long as the process without a
 * growing pool.  Not thread-safe: the glue holds a mutex around it.  Times
 * are apr_time_t, passed in (tests give their own clock). */
typedef struct certauthz_ldcache_t certauthz_ldcache_t;

typedef struct {
    int found; /* 1: an identity; 0: a negative result (unmapped) */
    const char *user;
    int ngroups;
    const char *const *groups;
    apr_time_t expires; /* set by certauthz_ldcache_get: the entry's */
} certauthz_ldresult_t;

certauthz_ldcache_t *certauthz_ldcache_create(int max, apr_pool_t *p);
/* The entry for key, copied into p, when one is there and not expired at
 * now: 1; else 0. */
int certauthz_ldcache_get(certauthz_ldcache_t *c, const char *key,
                          apr_time_t now, certauthz_ldresult_t *out,
                          apr_pool_t *p);
/* Store (a copy of) r under key until expires (now: the time, for the
 * sweep of expired entries). */
void certauthz_ldcache_put(certauthz_ldcache_t *c, const char *key,
                           const certauthz_ldresult_t *r, apr_time_t now,
                           apr_time_t expires);
int certauthz_ldcache_count(const certauthz_ldcache_t *c);

#endif /* CERTAUTHZ_LDAP_H */
