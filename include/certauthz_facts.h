/*
 * certauthz_facts.h -- the facts of a client certificate (SPEC section 1),
 * extracted once with OpenSSL's length-aware calls.
 *
 * A facts object is immutable once built: the httpd glue computes it once
 * per connection and certificate and shares it between the requests (and
 * HTTP/2 streams, on several threads) of that connection.  It lives in the
 * pool it was built from and keeps no reference to the X509.
 */
#ifndef CERTAUTHZ_FACTS_H
#define CERTAUTHZ_FACTS_H

#include "certauthz.h"
#include "certauthz_dn.h"
#include <openssl/x509.h>

/* One value of a fact.
 *   text: the value as shown to people and matched by regexes (UTF-8, NUL
 *         terminated; a DN in RFC 4514 form);
 *   key, key_len: the value as compared by exact selectors and globs: lower
 *         case for case-insensitive types, canonical for ip/serial/sha256,
 *         the canonical DN key for dn. */
typedef struct {
    const char *text;
    const char *key;
    apr_size_t key_len;
} certauthz_value_t;

typedef struct {
    int n;
    const certauthz_value_t *v;
} certauthz_values_t;

typedef struct certauthz_facts_t {
    /* values of each type, in certificate order; cn has 0 or 1, dn 0 or 1,
     * serial/sha256/spki exactly 1 */
    certauthz_values_t of[CERTAUTHZ_NTYPES];
    const certauthz_dn_t *subject; /* NULL when not representable */
    const certauthz_dn_t *issuer;  /* NULL when not representable */
    /* for display only */
    const char *not_before;
    const char *not_after;
    /* how many CN attributes the subject has and how many values were
     * dropped as unusable (NUL, bad UTF-8, wrong type) */
    int cn_count;
    int dropped;
} certauthz_facts_t;

/* Extract every fact from a certificate.  Fails only on allocation or
 * digest failure (APR_ENOMEM / APR_EGENERAL); hostile fields just produce
 * fewer facts. */
apr_status_t certauthz_facts_from_x509(certauthz_facts_t **facts, X509 *x,
                                       apr_pool_t *p);

/* Parse the leaf certificate from PEM (the first CERTIFICATE block) or DER
 * bytes.  Returns CERTAUTHZ_EBADINPUT when neither parses.  The caller owns
 * the returned X509 and frees it with X509_free. */
apr_status_t certauthz_x509_read(X509 **x, const char *buf, apr_size_t len);

#endif /* CERTAUTHZ_FACTS_H */
