/*
 * certauthz_util.h -- small byte-string helpers of the core: UTF-8
 * validation, ASCII case folding, hex and base64 normalisation.
 *
 * All functions are pure and thread-safe; those that allocate use the pool
 * passed last.
 */
#ifndef CERTAUTHZ_UTIL_H
#define CERTAUTHZ_UTIL_H

#include "certauthz.h"

/* Non-zero when s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) and contains no NUL byte. */
int certauthz_utf8_valid(const char *s, apr_size_t len);

/* Non-zero when s[0..len) holds a control character (below 0x20, or DEL). */
int certauthz_has_control(const char *s, apr_size_t len);

/* ASCII-only lower casing of len bytes, in place. */
void certauthz_ascii_lower(char *s, apr_size_t len);

/* Copy of s[0..len), NUL-terminated, lower-cased when fold is set. */
char *certauthz_pstrndup_fold(const char *s, apr_size_t len, int fold,
                              apr_pool_t *p);

/* Value of one hex digit, or -1. */
int certauthz_hexval(char c);

/* Upper-case hex of len bytes, no separators. */
char *certauthz_hex_upper(const unsigned char *bytes, apr_size_t len,
                          apr_pool_t *p);

/* Normalise a hex string that may contain ':' between bytes: strips the
 * colons and upper-cases.  want_bytes > 0 demands exactly that many bytes.
 * Returns NULL (and sets *reason) on anything that is not hex. */
const char *certauthz_hex_normalize(const char *s, apr_size_t len,
                                    apr_size_t want_bytes, const char **reason,
                                    apr_pool_t *p);

/* Normalise a serial number: hex digits, optional ':' separators, case
 * insensitive, an optional leading '-' (negative serials); returns upper
 * case without leading zeros ("0" for zero). */
const char *certauthz_serial_normalize(const char *s, apr_size_t len,
                                       const char **reason, apr_pool_t *p);

/* Normalise a serial glob pattern the same way: ':' dropped, hex upper
 * case, leading zeros removed; only hex digits and '*' allowed. */
const char *certauthz_serial_glob_normalize(const char *s, apr_size_t len,
                                            const char **reason, apr_pool_t *p);

/* Standard base64 (with padding) of len bytes. */
char *certauthz_base64(const unsigned char *bytes, apr_size_t len,
                       apr_pool_t *p);

/* Validate a pin-sha256 value: standard base64 of exactly 32 bytes.
 * Returns the value (NUL-terminated copy) or NULL with *reason. */
const char *certauthz_spki_normalize(const char *s, apr_size_t len,
                                     const char **reason, apr_pool_t *p);

/* Canonical text of an IPv4 (4 bytes) or IPv6 (16 bytes) address: dotted
 * quad, or RFC 5952 form.  NULL for any other length. */
const char *certauthz_ip_text(const unsigned char *addr, apr_size_t len,
                              apr_pool_t *p);

/* Parse an IP address written as text and return its canonical text, or
 * NULL when it is not an IPv4 or IPv6 address. */
const char *certauthz_ip_normalize(const char *s, apr_size_t len,
                                   apr_pool_t *p);

/* Make s safe for one log line: control characters, DEL, '"' and '\\'
 * become \xHH.  Returns s itself when nothing needs escaping. */
const char *certauthz_log_escape(const char *s, apr_pool_t *p);

/* A value of an audit line (docs/reference.md "Audit lines"): control characters,
 * DEL, '"', '\\' and '%' become %HH (so httpd's error log, which escapes
 * '\\' and control characters itself, leaves the value as is, and one
 * URL-decoding gives it back); NULL or "" become "-", the mark for "none",
 * and a value that is "-" itself becomes "%2D".  Returns s itself when
 * nothing needs escaping. */
const char *certauthz_audit_value(const char *s, apr_pool_t *p);

/* A dotted OID in canonical form (arcs in decimal without leading zeros,
 * the first 0-2, at least two, at most CERTAUTHZ_MAX_OID bytes), from its
 * dotted text or, when names is not NULL, one of the names in it ({name,
 * dotted} pairs ending with {NULL, NULL}; compared ignoring case).  NULL
 * with *reason otherwise. */
#define CERTAUTHZ_MAX_OID 256
typedef struct {
    const char *name, *oid;
} certauthz_oid_name_t;
const char *certauthz_oid_normalize(const char *s, apr_size_t len,
                                    const certauthz_oid_name_t *names,
                                    const char **reason, apr_pool_t *p);

/* The extendedKeyUsage names the module knows (SPEC 7), and the policy
 * names (anyPolicy). */
extern const certauthz_oid_name_t certauthz_eku_names[];
extern const certauthz_oid_name_t certauthz_policy_names[];

/* keyUsage bits as RFC 5280 names them: bit 0 digitalSignature ... bit 8
 * decipherOnly. */
#define CERTAUTHZ_KU_BITS 9
extern const char *const certauthz_ku_names[CERTAUTHZ_KU_BITS];

/* The keyUsage name s (any case) as RFC 5280 spells it; NULL with *reason
 * when it is not one. */
const char *certauthz_ku_normalize(const char *s, apr_size_t len,
                                   const char **reason);

/* A Windows security identifier (S-1-5-21-...) in canonical form: "S-",
 * the revision 1, the identifier authority and 1 to 15 sub-authorities in
 * decimal without leading zeros (the authority may be written 0x... hex;
 * "s-" in any case); NULL with *reason otherwise. */
const char *certauthz_sid_normalize(const char *s, apr_size_t len,
                                    const char **reason, apr_pool_t *p);

/* The SAN URI form of a SID (Microsoft, KB5014754). */
#define CERTAUTHZ_SID_URI_PREFIX "tag:microsoft.com,2022-09-14:sid:"

/* The SHA-256 of a file's content as lower-case hex (out: 65 bytes), read
 * in pieces; the status of the open or read that failed otherwise. */
apr_status_t certauthz_file_sha256(const char *path, char out[65],
                                   apr_pool_t *p);

#endif /* CERTAUTHZ_UTIL_H */
