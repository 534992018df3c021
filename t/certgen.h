/*
 * certgen.h -- test certificate factory for mod_certauthz.
 *
 * Builds X.509 certificates, including hostile ones that ordinary tools
 * refuse to make (raw bytes in names and SANs, repeated and multi-valued
 * attributes, odd string types, empty subjects, huge names, bad validity).
 * Used in-process by the unit tests and through t/mkcert by the server tests.
 *
 * Options (any order, all combinable):
 *   --out PREFIX           write PREFIX.crt (PEM), PREFIX.key (PKCS#8 PEM),
 *                          PREFIX.der (DER)
 *   --issuer PREFIX        sign with PREFIX.crt/PREFIX.key (default: self-signed)
 *   --issuer-name SPEC     issuer name written into the certificate
 *   --ca                   CA certificate (default: TLS client/server leaf)
 *   --subject SPEC         default /CN=certgen; "" or "/" = empty subject
 *   --san TYPE:VALUE       repeatable; TYPE is email, dns, uri, ip, ipraw (hex
 *                          octets), upn, upn-ia5 or othername:OID
 *   --san-count N:TEMPLATE N dns SANs, each %d in TEMPLATE replaced by 0..N-1
 *                          (N = 0 gives an empty, invalid SAN extension)
 *   --serial HEX           default: 16 random bytes, top bit clear ("-0A" and
 *                          "00" allowed)
 *   --days N | --expired | --not-yet-valid   (N may be negative)
 *   --key-type ec|rsa      P-256 (default) or RSA-2048
 *   --key FILE             use this PEM private key
 *   --eku LIST             extendedKeyUsage: comma-separated names OpenSSL
 *                          knows (clientAuth...), msSmartcardLogin or dotted
 *                          OIDs; "none": no extension (default: clientAuth,
 *                          serverAuth for a leaf, none for a CA)
 *   --ku LIST              keyUsage bits by RFC 5280 name; "none": no
 *                          extension (default: digitalSignature,
 *                          keyEncipherment; CA: keyCertSign, cRLSign)
 *   --policy LIST          certificatePolicies OIDs (repeatable; one
 *                          extension with all of them)
 *   --ski HEX              subjectKeyIdentifier bytes ("" empty); "none": no
 *                          extension (default: SHA-1 of the public key)
 *   --ext OID:HEX[:critical]  an extension whose extnValue holds HEX as is
 *                          (wrong types, duplicates; repeatable)
 *
 * SPEC is "/A=v/B=v+C=v" in encoding order (root first); '+' joins the next
 * attribute to the previous RDN.  A is any name or dotted OID OBJ_txt2obj
 * knows, optionally suffixed with the value's type: #utf8 (default), #printable,
 * #ia5, #t61, #numeric, #visible, #bmp (value is UTF-8, stored as UCS-2),
 * #bmpraw (bytes as-is), #int (decimal INTEGER), #der (value is a complete
 * DER TLV, stored as-is).  Values (and SAN values other than ip/ipraw) take
 * escapes \xHH for any byte and \c for a literal character c (\/ \+ \\);
 * bytes are never validated.  Only --issuer adds an authorityKeyIdentifier;
 * the SAN extension is critical when the subject is empty (RFC 5280).
 *
 * OpenSSL 3.0 cannot parse Names containing invalid UTF-8 in a UTF8String,
 * a malformed BMPString, or a non-string value such as an INTEGER, so it can
 * never hand such a certificate to the module.  certgen still makes them
 * (it patches the signed DER itself); with --out it writes the files and
 * returns 0 with *cert set to NULL; without --out it reports an error.
 */
#ifndef CERTGEN_H
#define CERTGEN_H

#include <stddef.h>
#include <openssl/x509.h>
#include <openssl/evp.h>

/* Build a certificate from command-line style options (argv[0] is NOT a
 * program name: options start at argv[0]; argc counts them).  On success
 * returns 0 and sets *cert and *key (caller frees with X509_free /
 * EVP_PKEY_free); when --out is given also writes the files.  On error
 * returns -1 and writes a one-line message into err (errlen bytes). */
int certgen_run(int argc, const char *const *argv, X509 **cert, EVP_PKEY **key,
                char *err, size_t errlen);

/* Like certgen_run but takes one string; options separated by spaces, a
 * single-quoted word may contain spaces ('...' with no escapes inside).
 * Aborts the process with a message on error; the key is freed. */
X509 *certgen_quick(const char *options);

/* i2d into a malloc'd buffer (caller frees with free()); NULL on error. */
unsigned char *certgen_der(X509 *x, int *len);

#endif /* CERTGEN_H */
