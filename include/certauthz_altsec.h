/*
 * certauthz_altsec.h -- Active Directory's explicit certificate mappings:
 * the X509 forms of the altSecurityIdentities attribute that KB5014754
 * counts as strong, and the issuer+subject form, as altsec facts of a
 * certificate and altsec: selectors of a map.
 *
 *   X509:<I>ISSUER<SR>SERIAL        issuer and serial number
 *   X509:<SKI>HEX                   subjectKeyIdentifier
 *   X509:<SHA1-PUKEY>HEX            SHA-1 "public key" hash (below)
 *   X509:<I>ISSUER<S>SUBJECT        issuer and subject
 *
 * How a certificate's forms are written (what AD's tools write, and what
 * `certauthz explain` prints):
 *   - ISSUER and SUBJECT in X.500 order: the RDNs in the order of the
 *     certificate's encoding, most significant first (DC=com,DC=example,
 *     CN=Example CA), the reverse of RFC 4514; RDNs joined by ',', the
 *     attributes of a multi-valued RDN by '+', no spaces; attribute names
 *     as Windows writes them (CertNameToStr, CERT_X500_NAME_STR): CN, L,
 *     O, OU, E, C, S (not ST), STREET, T, G, I, SN, DC, SERIALNUMBER,
 *     Description, PostalCode, POBox, Phone, X21Address, dnQualifier,
 *     UnstructuredName, UnstructuredAddress, else OID.n.n.n; a value is in
 *     double quotes (a '"' inside doubled) when it is empty, starts or ends
 *     with a space, or holds one of , + = " < > # ; -- Windows' rule;
 *   - SERIAL: the octets of the serial number's DER INTEGER (sign octet
 *     included), in reverse order, hex -- CryptoAPI keeps integers
 *     little-endian, so AD's serial is the byte-reversed form of the one
 *     certificate viewers print;
 *   - SKI: the subjectKeyIdentifier extension's octets, hex (none without
 *     the extension: Windows' fallback hash is not guessed at);
 *   - SHA1-PUKEY: the SHA-1 of the whole DER certificate (the Windows
 *     "thumbprint", which Microsoft's and administrators' mapping scripts
 *     write under this tag despite its name); a second fact carries the
 *     SHA-1 of the subjectPublicKey bits (RFC 5280 key identifier method
 *     1), the value Samba's KDC compares; a map value matches either;
 *   - hex in lower case.
 *
 * How they are compared: AD searches altSecurityIdentities (a Unicode
 * string attribute, compared ignoring case) for the strings its KDC builds
 * from the certificate.  Here both sides are reduced to one canonical key:
 * the tags and hex ignore case; each DN is parsed (Windows' grammar, as
 * CertStrToName reads it: ',' or ';' between RDNs, '+' within one, spaces
 * around keys, '=' and separators ignored, "..." quoting with "" for a
 * quote) and compared attribute by attribute: type by OID (so S, ST and
 * OID.2.5.4.8 are one), value with ASCII case folded (no Unicode folding:
 * a non-ASCII letter must match exactly, stricter than AD), the
 * attributes of a multi-valued RDN as a set, RDN order significant.  A
 * value that is not a string (Windows prints it as #hex), holds a control
 * character or is not UTF-8 gives that name no form (counted as dropped).
 * X509:<S> (subject only) and X509:<RFC822> are weak forms: refused, with
 * the dn: and email: selectors named instead.
 */
#ifndef CERTAUTHZ_ALTSEC_H
#define CERTAUTHZ_ALTSEC_H

#include "certauthz.h"
#include <openssl/x509.h>

/* One form: text as AD takes it (ready to paste), key as compared. */
typedef struct {
    const char *text;
    const char *key;
} certauthz_altsec_t;

/* The most forms a certificate has: <I><SR>, <SKI>, two <SHA1-PUKEY>,
 * <I><S>. */
#define CERTAUTHZ_ALTSEC_MAX 5

/* The canonical key of an altsec value written in a map (or copied from
 * AD), or NULL with *reason. */
const char *certauthz_altsec_normalize(const char *s, apr_size_t len,
                                       const char **reason, apr_pool_t *p);

/* The forms of x into out (CERTAUTHZ_ALTSEC_MAX slots), in the order of
 * the list above (issuer+serial, SKI, SHA-1 of the certificate, SHA-1 of
 * the key, issuer+subject).  ski_hex is the certificate's ski fact (hex,
 * any case), NULL when it has none.  Adds to *dropped one per form a name
 * or digest made impossible.  Returns how many were written. */
int certauthz_altsec_of_x509(X509 *x, const char *ski_hex,
                             certauthz_altsec_t *out, int *dropped,
                             apr_pool_t *p);

/* Which of the four forms a text is (by its tags, quotes respected); -1
 * for none of them. */
enum {
    CERTAUTHZ_ALTSEC_ISSUER_SERIAL,
    CERTAUTHZ_ALTSEC_SKI,
    CERTAUTHZ_ALTSEC_SHA1,
    CERTAUTHZ_ALTSEC_ISSUER_SUBJECT
};
int certauthz_altsec_form(const char *text);

/* The map selector for a form's text: altsec:"TEXT", '"' and '\\' escaped
 * as the map's quoting wants. */
const char *certauthz_altsec_selector(const char *text, apr_pool_t *p);

#endif /* CERTAUTHZ_ALTSEC_H */
