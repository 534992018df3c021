/*
 * maputil.h -- helpers shared by the unit tests that resolve certificates
 * against maps (header only; include after tap.h and certgen.h).
 */
#ifndef MAPUTIL_H
#define MAPUTIL_H

#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "certauthz_facts.h"
#include "certauthz_map.h"
#include "tap.h"

/* The facts of x (from p); aborts when they cannot be had. */
static TAP_UNUSED certauthz_facts_t *facts_of_x509(X509 *x, apr_pool_t *p)
{
    certauthz_facts_t *f = NULL;
    if (certauthz_facts_from_x509(&f, x, p) != APR_SUCCESS) {
        diag("facts_from_x509 failed");
        abort();
    }
    return f;
}

/* The facts of a fresh certgen certificate (freed before they are used). */
static TAP_UNUSED certauthz_facts_t *facts_of_cert(const char *opts,
                                                   apr_pool_t *p)
{
    X509 *x = certgen_quick(opts);
    certauthz_facts_t *f = facts_of_x509(x, p);
    X509_free(x);
    return f;
}

/* Hand-made facts: one value (text = key) of one type; a cn counts as the
 * subject's one CN. */
static TAP_UNUSED certauthz_facts_t *facts_one(certauthz_type_e type,
                                               const char *key, apr_pool_t *p)
{
    certauthz_facts_t *f = apr_pcalloc(p, sizeof(*f));
    certauthz_value_t *v = apr_pcalloc(p, sizeof(*v));
    v->text = v->key = key;
    v->key_len = strlen(key);
    f->of[type].n = 1;
    f->of[type].v = v;
    f->cn_count = type == CERTAUTHZ_CN;
    return f;
}

/* "MAPPED user [groups] @LINE", "DENIED @LINE", "UNMAPPED[ @LINE]" */
static TAP_UNUSED const char *identity_text(const certauthz_identity_t *id,
                                            apr_pool_t *p)
{
    const char *s = id->outcome == CERTAUTHZ_MAPPED   ? "MAPPED"
                    : id->outcome == CERTAUTHZ_DENIED ? "DENIED"
                                                      : "UNMAPPED";
    if (id->outcome == CERTAUTHZ_MAPPED) {
        s = apr_pstrcat(p, s, " ", id->user ? id->user : "(null)", NULL);
        if (id->ngroups)
            s = apr_pstrcat(p, s, " [", certauthz_identity_groups(id, p), "]",
                            NULL);
    }
    if (id->rule)
        s = apr_psprintf(p, "%s @%u", s, certauthz_rule_line(id->rule));
    return s;
}

#endif
