/*
 * certauthz_dn.h -- distinguished names: parsed from RFC 4514 text (the map
 * file, Require cert-issuer) or built from an OpenSSL X509_NAME (the
 * certificate), and compared structurally.
 *
 * A DN is a sequence of RDNs, most specific first (the RFC 4514 order, the
 * order `openssl x509 -nameopt RFC2253` prints).  Each RDN is a set of
 * (attribute type OID, UTF-8 value) pairs.  Two DNs are equal when they
 * have the same RDNs in the same order and each pair of RDNs holds the same
 * attributes, in any order within the RDN.  Attribute types are compared by
 * OID (so "CN", "cn", "commonName" and "2.5.4.3" are one type), values as
 * exact UTF-8 bytes (after RFC 4514 escapes are undone and after OpenSSL
 * converted BMPString, T61String etc. to UTF-8).  No case folding, no Unicode
 * normalisation, no whitespace folding: two DNs that print differently may
 * match only when they denote the same bytes.
 *
 * Every certauthz_dn_t carries a canonical key: a byte string (with
 * length-prefixed values, so it cannot alias) that is equal for equal DNs
 * and different otherwise.  Lookups hash that key.
 *
 * A certauthz_dn_t is immutable once built and may be shared between
 * threads.  It lives in the pool it was built from.
 */
#ifndef CERTAUTHZ_DN_H
#define CERTAUTHZ_DN_H

#include "certauthz.h"
#include <openssl/x509.h>

typedef struct certauthz_dn_t certauthz_dn_t;

/* Parse RFC 4514 text.  Accepts attribute names case-insensitively (the
 * RFC 4514 names, OpenSSL's short and long names) or dotted OIDs; values
 * with '\' escapes (special characters and \HH hex pairs) or as '#' hex
 * BER of a string type; optional spaces around ',', '+' and '='.  Values
 * must be UTF-8 without NUL.  On error returns CERTAUTHZ_EBADINPUT with
 * *reason set. */
apr_status_t certauthz_dn_parse(certauthz_dn_t **dn, const char *text,
                                apr_size_t len, const char **reason,
                                apr_pool_t *p);

/* Build from a certificate name.  Returns CERTAUTHZ_EBADINPUT when any
 * value cannot be represented as UTF-8 without NUL (the DN is then not a
 * usable fact). */
apr_status_t certauthz_dn_from_x509(certauthz_dn_t **dn, const X509_NAME *name,
                                    apr_pool_t *p);

int certauthz_dn_equal(const certauthz_dn_t *a, const certauthz_dn_t *b);

/* Issuer comparison: equal under OpenSSL's name canonicalisation (ASCII
 * case folded, white space trimmed and collapsed in each value of the
 * string types OpenSSL folds; a value of another type, such as
 * NumericString, compared with its type as is), the rule
 * OpenSSL uses to find a certificate's issuing CA while it builds the
 * chain.  Used for [issuer] sections and Require cert-issuer, so that an
 * issuer field spelt differently from its CA's subject (which verifies all
 * the same) cannot escape its section.  Subject dn: selectors use the exact
 * rule of certauthz_dn_equal. */
int certauthz_dn_same_issuer(const certauthz_dn_t *a, const certauthz_dn_t *b);

/* The key of that comparison (binary). */
const char *certauthz_dn_issuer_key(const certauthz_dn_t *dn, apr_size_t *len);

/* The canonical comparison key (binary, not NUL-safe for printing). */
const char *certauthz_dn_key(const certauthz_dn_t *dn, apr_size_t *len);

/* RFC 4514 text of the DN, most specific RDN first, UTF-8, with the RFC's
 * escapes and control characters as \HH. */
const char *certauthz_dn_text(const certauthz_dn_t *dn);

/* Number of RDNs. */
int certauthz_dn_count(const certauthz_dn_t *dn);

/* The value of the most specific RDN (UTF-8, escapes undone) and, in
 * *nattrs, how many attributes that RDN has; NULL for an empty DN and for a
 * copy (certauthz_dn_copy keeps no attributes). */
const char *certauthz_dn_first_value(const certauthz_dn_t *dn, int *nattrs);

/* A copy of dn in one block from p, for DNs kept by the thousand (the dn:
 * rules of a map): it compares, keys, prints and counts as dn does, without
 * the per-attribute parts only building a DN needs (a parsed DN takes over
 * a kilobyte of its pool, its copy about its three strings). */
const certauthz_dn_t *certauthz_dn_copy(const certauthz_dn_t *dn,
                                        apr_pool_t *p);

#endif /* CERTAUTHZ_DN_H */
