/*
 * mod_certauthz_forward.c -- the identity to backends (SPEC section 7,
 * "Identity to backends"; mod_certauthz_private.h,
 * "mod_certauthz_forward.c"): CertAuthzForward, the request headers it
 * sets for a backend (RFC 9440 Client-Cert and Client-Cert-Chain, Envoy's
 * X-Forwarded-Client-Cert, the mapped user and groups), and the removal
 * of every copy of those headers a client sent.
 *
 * Removal happens twice: in post_read_request, before any other module
 * sees the request, every header whose name is one this virtual host
 * forwards anywhere (compared without case, '_' as '-'), whatever
 * <Location> the request is for (the sections are not known yet); and
 * again in fixups, just before the values are set, for the scope's own
 * names.  Values are set in fixups, after authorization, only for a
 * verified certificate that no deny rule lists (and the user and groups
 * only for a mapped one).
 */
#include <string.h>

#include "apr_base64.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include "http_ssl.h"

#include "mod_certauthz_private.h"

/* Every header CertAuthzForward can set, once: X(ID, keyword, header).
 * keyword is what the directive takes; header the name sent (User and
 * Groups: the default of KEYWORD=NAME). */
#define FORWARDS(X)                                                            \
    X(CLIENT_CERT, "Client-Cert", "Client-Cert")                               \
    X(CHAIN, "Client-Cert-Chain", "Client-Cert-Chain")                         \
    X(XFCC, "X-Forwarded-Client-Cert", "X-Forwarded-Client-Cert")              \
    X(USER, "User", "X-Remote-User")                                           \
    X(GROUPS, "Groups", "X-Remote-Groups")

#define FWD_ENUM_(id, kw, hdr) FWD_##id,
enum { FORWARDS(FWD_ENUM_) NFWD };
#undef FWD_ENUM_

#define FWD_ROW_(id, kw, hdr) {kw, hdr},
static const struct {
    const char *keyword, *header;
} fwd_rows[NFWD] = {FORWARDS(FWD_ROW_)};
#undef FWD_ROW_

/* The fields of X-Forwarded-Client-Cert (Hash is always sent), in the
 * order Envoy writes them. */
#define XFCC_FIELDS(X)                                                         \
    X(CERT, "Cert")                                                            \
    X(SUBJECT, "Subject")                                                      \
    X(URI, "URI")                                                              \
    X(DNS, "DNS")

#define XF_ENUM_(id, name) XF_##id,
enum { XFCC_FIELDS(XF_ENUM_) NXF };
#undef XF_ENUM_

#define XF_NAME_(id, name) name,
static const char *const xf_names[NXF] = {XFCC_FIELDS(XF_NAME_)};
#undef XF_NAME_

#define XFCC_DEFAULT ((1u << XF_SUBJECT) | (1u << XF_URI) | (1u << XF_DNS))

/* One CertAuthzForward directive (read-only once read). */
struct cz_forward_t {
    const char *name[NFWD]; /* the header sent; NULL: not forwarded */
    unsigned xfcc;          /* XF_* bits */
};

static const cz_forward_t forward_off = {{NULL}, 0};

/* ---- header names -------------------------------------------------------
 * Two names are the same header when they are equal without case and with
 * '_' read as '-': CGI, PHP and WSGI backends make HTTP_X_REMOTE_USER of
 * both X-Remote-User and X_Remote_User. */
static int same_name(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = *a == '_' ? '-' : apr_tolower((unsigned char)*a);
        int cb = *b == '_' ? '-' : apr_tolower((unsigned char)*b);
        if (ca != cb)
            return 0;
        if (!ca)
            return 1;
    }
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!apr_isalnum((unsigned char)*s) && *s != '-')
            return 0;
    return 1;
}

/* Add name to the server's names to remove (once). */
static void strip_add(cmd_parms *cmd, const char *name)
{
    cz_srv_conf_t *c =
        ap_get_module_config(cmd->server->module_config, &certauthz_module);
    if (!c->strip)
        c->strip = apr_array_make(cmd->pool, 8, sizeof(const char *));
    for (int i = 0; i < c->strip->nelts; i++)
        if (same_name(APR_ARRAY_IDX(c->strip, i, const char *), name))
            return;
    APR_ARRAY_PUSH(c->strip, const char *) = name;
}

/* ---- configuration ------------------------------------------------------ */

static const char *parse_xfcc(cz_forward_t *f, const char *list, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, list), *last = NULL;

    f->xfcc = 0;
    for (char *w = apr_strtok(copy, ",", &last); w;
         w = apr_strtok(NULL, ",", &last)) {
        int k = 0;
        while (k < NXF && strcasecmp(w, xf_names[k]))
            k++;
        if (k == NXF)
            return apr_psprintf(p,
                                "CertAuthzForward: X-Forwarded-Client-Cert "
                                "field '%s' is not Subject, URI, DNS or Cert "
                                "(Hash is always sent)",
                                w);
        f->xfcc |= 1u << k;
    }
    return NULL;
}

/* ITERATE: one word; the first word makes a new setting for this scope,
 * the following ones add to it (cmd->info is not used: the directive's
 * words arrive one after another with the same cmd->directive). */
const char *cz_forward_set(cmd_parms *cmd, void *dcfg, const char *word)
{
    cz_dir_conf_t *d = dcfg;
    cz_forward_t *f;
    const char *eq = strchr(word, '='), *arg = eq ? eq + 1 : NULL, *why;
    apr_size_t kwlen = eq ? (apr_size_t)(eq - word) : strlen(word);
    int k = 0;

    if (!strcasecmp(word, "Off")) {
        if (d->forward_directive == cmd->directive && d->forward
            && d->forward != &forward_off)
            return "CertAuthzForward Off takes no other word";
        d->forward = &forward_off;
        d->forward_directive = cmd->directive;
        return NULL;
    }
    if (d->forward_directive == cmd->directive && d->forward == &forward_off)
        return "CertAuthzForward Off takes no other word";
    if (d->forward_directive != cmd->directive || !d->forward) {
        f = apr_pcalloc(cmd->pool, sizeof(*f));
        d->forward = f;
        d->forward_directive = cmd->directive;
    }
    f = (cz_forward_t *)d->forward;
    while (k < NFWD
           && !(strlen(fwd_rows[k].keyword) == kwlen
                && !strncasecmp(word, fwd_rows[k].keyword, kwlen)))
        k++;
    if (k == NFWD)
        return apr_psprintf(cmd->pool,
                            "CertAuthzForward: unknown header '%s' (Client-"
                            "Cert, Client-Cert-Chain, X-Forwarded-Client-"
                            "Cert[=FIELD,...], User[=NAME], Groups[=NAME] "
                            "or Off)",
                            word);
    if (f->name[k])
        return apr_psprintf(cmd->pool, "CertAuthzForward: '%s' given twice",
                            fwd_rows[k].keyword);
    f->name[k] = fwd_rows[k].header;
    if (k == FWD_XFCC) {
        f->xfcc = XFCC_DEFAULT;
        if (arg && (why = parse_xfcc(f, arg, cmd->pool)))
            return why;
    }
    else if (arg && (k == FWD_USER || k == FWD_GROUPS)) {
        if (!valid_name(arg))
            return apr_psprintf(cmd->pool,
                                "CertAuthzForward: '%s' is not a header name "
                                "(letters, digits and '-')",
                                arg);
        f->name[k] = apr_pstrdup(cmd->pool, arg);
    }
    else if (arg) {
        return apr_psprintf(cmd->pool,
                            "CertAuthzForward: %s takes no '=' (its name is "
                            "RFC 9440's)",
                            fwd_rows[k].keyword);
    }
    for (int i = 0; i < NFWD; i++)
        for (int j = 0; j < NFWD; j++)
            if (i != j && f->name[i] && f->name[j]
                && same_name(f->name[i], f->name[j]))
                return apr_psprintf(cmd->pool,
                                    "CertAuthzForward: two values in one "
                                    "header, %s",
                                    f->name[i]);
    strip_add(cmd, f->name[k]);
    return NULL;
}

/* ---- removal ------------------------------------------------------------ */

typedef struct {
    const apr_array_header_t *names;
    const cz_forward_t *f;
    apr_array_header_t *found;
} strip_ctx_t;

static int collect(void *data, const char *key, const char *val)
{
    strip_ctx_t *c = data;
    int hit = 0;
    (void)val;

    if (c->names)
        for (int i = 0; !hit && i < c->names->nelts; i++)
            hit = same_name(key, APR_ARRAY_IDX(c->names, i, const char *));
    if (c->f)
        for (int i = 0; !hit && i < NFWD; i++)
            hit = c->f->name[i] && same_name(key, c->f->name[i]);
    if (hit)
        APR_ARRAY_PUSH(c->found, const char *) = key;
    return 1;
}

/* Remove from r->headers_in every header names or f names. */
static int strip(request_rec *r, const apr_array_header_t *names,
                 const cz_forward_t *f)
{
    strip_ctx_t c = {names, f, apr_array_make(r->pool, 4, sizeof(char *))};

    apr_table_do(collect, &c, r->headers_in, NULL);
    for (int i = 0; i < c.found->nelts; i++) {
        const char *key = APR_ARRAY_IDX(c.found, i, const char *);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "CERTAUTHZ0120: removed the client's %s header",
                      certauthz_log_escape(key, r->pool));
        apr_table_unset(r->headers_in, apr_pstrdup(r->pool, key));
    }
    return c.found->nelts;
}

int cz_forward_post_read(request_rec *r)
{
    const cz_srv_conf_t *c =
        ap_get_module_config(r->server->module_config, &certauthz_module);

    if (c && c->strip)
        strip(r, c->strip, NULL);
    return DECLINED;
}

/* ---- values ------------------------------------------------------------- */

/* base64 of the DER of a PEM certificate, or NULL. */
static const char *der_b64(request_rec *r, const char *pem)
{
    apr_size_t n = 0;
    const unsigned char *der = cz_pem_der(r->pool, pem, &n);
    char *out;

    if (!der)
        return NULL;
    out = apr_palloc(r->pool, (apr_size_t)apr_base64_encode_len((int)n));
    apr_base64_encode_binary(out, der, (int)n);
    return out;
}

static const char *ssl_var(request_rec *r, const char *name)
{
    return ap_ssl_var_lookup(r->pool, r->server, r->connection, r,
                             (char *)name);
}

/* RFC 9440 Client-Cert-Chain: the certificates mod_ssl has after the
 * leaf (SSL_CLIENT_CERT_CHAIN_n), each an sf-binary; NULL when none. */
#define MAX_CHAIN 16
static const char *chain_value(request_rec *r)
{
    const char *out = NULL;

    for (int i = 0; i < MAX_CHAIN; i++) {
        const char *b64 = der_b64(
            r,
            ssl_var(r, apr_psprintf(r->pool, "SSL_CLIENT_CERT_CHAIN_%d", i)));
        if (!b64)
            break;
        out = out ? apr_pstrcat(r->pool, out, ", :", b64, ":", NULL)
                  : apr_pstrcat(r->pool, ":", b64, ":", NULL);
    }
    return out;
}

/* An XFCC value: quoted when it holds ',', ';', '=' or '"' (always when
 * quote is set), '"' written \" -- as Envoy's documentation says. */
static const char *xf_value(const char *v, int quote, apr_pool_t *p)
{
    apr_size_t n = 0;
    char *out, *o;

    quote = quote || strpbrk(v, ",;=\"") != NULL;
    for (const char *s = v; *s; s++)
        n += *s == '"' ? 2 : 1;
    o = out = apr_palloc(p, n + 3);
    if (quote)
        *o++ = '"';
    for (const char *s = v; *s; s++) {
        if (*s == '"')
            *o++ = '\\';
        *o++ = *s;
    }
    if (quote)
        *o++ = '"';
    *o = '\0';
    return out;
}

/* RFC 3986 percent-encoding of every byte but the unreserved ones. */
static const char *url_encode(const char *s, apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (apr_isalnum(*c) || *c == '-' || *c == '.' || *c == '_'
            || *c == '~') {
            *o++ = (char)*c;
        }
        else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}

static const char *lower(const char *s, apr_pool_t *p)
{
    char *o = apr_pstrdup(p, s);
    for (char *c = o; *c; c++)
        *c = (char)apr_tolower((unsigned char)*c);
    return o;
}

static const char *xfcc_value(request_rec *r, const cz_req_t *st,
                              unsigned fields)
{
    apr_pool_t *p = r->pool;
    const certauthz_values_t *v;
    const char *out =
        apr_pstrcat(p, "Hash=", lower(cz_fact(st, CERTAUTHZ_SHA256), p), NULL);

    if (fields & (1u << XF_CERT)) {
        const char *pem = ssl_var(r, "SSL_CLIENT_CERT");
        if (pem && *pem)
            out = apr_pstrcat(
                p, out, ";Cert=", xf_value(url_encode(pem, p), 1, p), NULL);
    }
    if (fields & (1u << XF_SUBJECT)) {
        v = &st->facts->of[CERTAUTHZ_DN];
        out = apr_pstrcat(p, out,
                          ";Subject=", xf_value(v->n ? v->v[0].text : "", 1, p),
                          NULL);
    }
    if (fields & (1u << XF_URI)) {
        v = &st->facts->of[CERTAUTHZ_URI];
        for (int i = 0; i < v->n; i++)
            out = apr_pstrcat(p, out, ";URI=", xf_value(v->v[i].text, 0, p),
                              NULL);
    }
    if (fields & (1u << XF_DNS)) {
        v = &st->facts->of[CERTAUTHZ_DNS];
        for (int i = 0; i < v->n; i++)
            out = apr_pstrcat(p, out, ";DNS=", xf_value(v->v[i].text, 0, p),
                              NULL);
    }
    return out;
}

/* No header value may hold a control character (a line break would
 * start a header of its own). */
static int printable(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7F)
            return 0;
    return 1;
}

static void put(request_rec *r, const char *name, const char *value)
{
    if (!value)
        return;
    if (!printable(value)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "CERTAUTHZ0121: %s not forwarded: its value holds a "
                      "control character",
                      name);
        return;
    }
    apr_table_setn(r->headers_in, name, value);
}

int cz_forward_fixups(request_rec *r)
{
    const cz_dir_conf_t *d = cz_dir_conf(r);
    const cz_forward_t *f = d->forward;
    const cz_req_t *st;

    if (!f || f == &forward_off)
        return DECLINED;
    strip(r, NULL, f);
    if (!ap_ssl_conn_is_ssl(cz_tls_conn(r->connection)))
        return DECLINED;
    st = cz_decide(r, d);
    if (st->state != CZ_CERT_OK || st->id.outcome == CERTAUTHZ_DENIED
        || st->dir == CZ_DIR_ERROR)
        return DECLINED; /* nothing of an unusable certificate */
    if (f->name[FWD_CLIENT_CERT]) {
        const char *b64 = der_b64(r, ssl_var(r, "SSL_CLIENT_CERT"));
        put(r, f->name[FWD_CLIENT_CERT],
            b64 ? apr_pstrcat(r->pool, ":", b64, ":", NULL) : NULL);
    }
    if (f->name[FWD_CHAIN])
        put(r, f->name[FWD_CHAIN], chain_value(r));
    if (f->name[FWD_XFCC])
        put(r, f->name[FWD_XFCC], xfcc_value(r, st, f->xfcc));
    if (st->id.outcome == CERTAUTHZ_MAPPED) {
        if (f->name[FWD_USER])
            put(r, f->name[FWD_USER], st->id.user);
        if (f->name[FWD_GROUPS])
            put(r, f->name[FWD_GROUPS],
                certauthz_identity_groups(&st->id, r->pool));
    }
    return DECLINED;
}
