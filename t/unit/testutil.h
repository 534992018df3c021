/*
 * testutil.h -- helpers shared by the unit tests that build certificate
 * names in memory (header only; include after tap.h).
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdlib.h>
#include <openssl/x509.h>

#include "tap.h"

/* A name entry value OpenSSL would not parse from DER, to be put in place
 * by patch_entry(): its ASN.1 string type, bytes and length, and what it is
 * (for the test names). */
typedef struct {
    int type;
    const char *bytes;
    int len;
    const char *what;
} bad_value_t;

/* Replace the value of entry idx of name by (type, bytes, len) in place:
 * X509_NAME_add_entry re-encodes the value and would refuse these.  Aborts
 * when OpenSSL cannot do it, so that no test runs on an unpatched name. */
static TAP_UNUSED void patch_entry(X509_NAME *name, int idx, int type,
                                   const char *bytes, int len)
{
    if (!X509_NAME_ENTRY_set_data(X509_NAME_get_entry(name, idx), type,
                                  (const unsigned char *)bytes, len)) {
        diag("cannot patch name entry");
        abort();
    }
}

#endif
