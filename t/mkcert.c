/*
 * mkcert.c -- command-line front end of the test certificate factory:
 *   mkcert --out PREFIX [options]   (options: see certgen.h)
 * Exits 0 on success, 2 with a message on stderr on failure.
 */
#include <stdio.h>

#include "certgen.h"

int main(int argc, char **argv)
{
    char err[1024];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;

    if (certgen_run(argc - 1, (const char *const *)(argv + 1), &cert, &key, err,
                    sizeof err)
        != 0) {
        fprintf(stderr, "mkcert: %s\n", err);
        return 2;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
