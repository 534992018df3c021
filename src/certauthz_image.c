/*
 * certauthz_image.c -- compiled map images (certauthz_image.h): a map's
 * arrays (certauthz_map_int.h) behind a checked header, written atomically,
 * opened with one read-only mapping.
 */
#include <stdint.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_mmap.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "certauthz_image.h"
#include "certauthz_map_int.h"

#define MAGIC "CZMAPIMG"
#define BYTE_ORDER_MARK 0x01020304u
#define MAX_TYPES 32
#define ALIGN 8

enum { A_RULES, A_STR, A_GRP, A_SLOTS, A_APAT, A_DPAT, A_ISSUERS, NARRAYS };

/* The header: fixed-size fields only; 8-byte aligned. */
typedef struct {
    char magic[8];
    uint32_t format, header_size, byte_order, rule_size, ntypes, issuer_size;
    uint64_t file_size;
    uint32_t nrules, nstr, ngrp, mask, napat, ndpat, nissuers, exact_types;
    uint32_t name; /* str offset of the map's name */
    uint32_t st_rules, st_exact_all, st_globs, st_regexes, st_deny, st_sections;
    uint32_t st_exact[MAX_TYPES];
    uint32_t pad0;
    uint64_t off[NARRAYS];
    char source_sha256[72];
    unsigned char body_sha256[32];
    unsigned char header_sha256[32]; /* of the header with this zeroed */
} header_t;

/* no padding inside: its bytes are hashed */
typedef char header_has_no_padding[sizeof(header_t) == 424 ? 1 : -1];

#if CERTAUTHZ_NTYPES > MAX_TYPES
#error "more fact types than an image header has room for"
#endif

/* Elements and element size of each array of m. */
static void arrays_of(const certauthz_map_t *m, const void *ptr[NARRAYS],
                      uint64_t n[NARRAYS], uint64_t size[NARRAYS])
{
    ptr[A_RULES] = m->rules, n[A_RULES] = m->nrules;
    size[A_RULES] = sizeof(certauthz_rule_t);
    ptr[A_STR] = m->str, n[A_STR] = m->nstr, size[A_STR] = 1;
    ptr[A_GRP] = m->grp, n[A_GRP] = m->ngrp, size[A_GRP] = 4;
    ptr[A_SLOTS] = m->slots, n[A_SLOTS] = (uint64_t)m->mask + 1;
    size[A_SLOTS] = 4;
    ptr[A_APAT] = m->apat, n[A_APAT] = m->napat, size[A_APAT] = 4;
    ptr[A_DPAT] = m->dpat, n[A_DPAT] = m->ndpat, size[A_DPAT] = 4;
    ptr[A_ISSUERS] = m->issuers, n[A_ISSUERS] = m->nissuers;
    size[A_ISSUERS] = sizeof(certauthz_issuer_ent_t);
}

static uint64_t pad_to(uint64_t x)
{
    return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

static int digest(unsigned char out[32], const void *a, apr_size_t alen,
                  const void *b, apr_size_t blen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned n = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)
             && EVP_DigestUpdate(md, a, alen)
             && (!blen || EVP_DigestUpdate(md, b, blen))
             && EVP_DigestFinal_ex(md, out, &n) && n == 32;
    EVP_MD_CTX_free(md);
    return ok;
}

static void header_digest(unsigned char out[32], const header_t *h)
{
    header_t copy;
    memcpy(&copy, h, sizeof(copy));
    memset(copy.header_sha256, 0, sizeof(copy.header_sha256));
    if (!digest(out, &copy, sizeof(copy), NULL, 0))
        memset(out, 0, 32);
}

/* ---- writing ------------------------------------------------------------ */

apr_status_t certauthz_image_write(const certauthz_map_t *m, const char *path,
                                   apr_fileperms_t perms, const char **why,
                                   apr_pool_t *p)
{
    static const char zeros[ALIGN];
    const void *ptr[NARRAYS];
    uint64_t n[NARRAYS], size[NARRAYS], at = pad_to(sizeof(header_t));
    char *tmpl = apr_pstrcat(p, path, ".tmpXXXXXX", NULL);
    apr_file_t *f = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned dn = 0;
    header_t h;
    apr_status_t rv;
    int i;

    if (!md) {
        *why = "out of memory";
        return APR_ENOMEM;
    }
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, MAGIC, 8);
    h.format = CERTAUTHZ_IMAGE_FORMAT;
    h.header_size = (uint32_t)pad_to(sizeof(header_t));
    h.byte_order = BYTE_ORDER_MARK;
    h.rule_size = sizeof(certauthz_rule_t);
    h.issuer_size = sizeof(certauthz_issuer_ent_t);
    h.ntypes = CERTAUTHZ_NTYPES;
    h.nrules = m->nrules, h.nstr = m->nstr, h.ngrp = m->ngrp;
    h.mask = m->mask, h.napat = m->napat, h.ndpat = m->ndpat;
    h.nissuers = m->nissuers, h.exact_types = m->exact_types;
    h.st_rules = m->stats.rules, h.st_exact_all = m->stats.exact_all;
    h.st_globs = m->stats.globs, h.st_regexes = m->stats.regexes;
    h.st_deny = m->stats.deny, h.st_sections = m->stats.sections;
    for (i = 0; i < CERTAUTHZ_NTYPES; i++)
        h.st_exact[i] = m->stats.exact[i];
    apr_cpystrn(h.source_sha256, m->sha256, sizeof(h.source_sha256));
    /* the map's name goes after its strings: a copy of str with it */
    arrays_of(m, ptr, n, size);
    h.name = m->nstr;
    h.nstr = m->nstr + (uint32_t)strlen(m->name) + 1;
    n[A_STR] = h.nstr;
    rv = EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? APR_SUCCESS : APR_ENOMEM;
    for (i = 0; i < NARRAYS && rv == APR_SUCCESS; i++) {
        uint64_t bytes = n[i] * size[i];
        h.off[i] = at;
        if (i == A_STR) {
            if (!EVP_DigestUpdate(md, m->str, m->nstr)
                || !EVP_DigestUpdate(md, m->name, strlen(m->name) + 1))
                rv = APR_ENOMEM;
        }
        else if (bytes && !EVP_DigestUpdate(md, ptr[i], bytes)) {
            rv = APR_ENOMEM;
        }
        if (rv == APR_SUCCESS && pad_to(bytes) > bytes
            && !EVP_DigestUpdate(md, zeros, pad_to(bytes) - bytes))
            rv = APR_ENOMEM;
        at += pad_to(bytes);
    }
    if (rv == APR_SUCCESS
        && !(EVP_DigestFinal_ex(md, h.body_sha256, &dn) && dn == 32))
        rv = APR_ENOMEM;
    EVP_MD_CTX_free(md);
    if (rv != APR_SUCCESS) {
        *why = "out of memory";
        return rv;
    }
    h.file_size = at;
    header_digest(h.header_sha256, &h);

    rv = apr_file_mktemp(&f, tmpl,
                         APR_FOPEN_CREATE | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                             | APR_FOPEN_BINARY,
                         p);
    if (rv != APR_SUCCESS) {
        *why =
            apr_psprintf(p, "cannot create a file beside %s (%pm)", path, &rv);
        return rv;
    }
    if ((rv = apr_file_perms_set(tmpl, perms)) == APR_INCOMPLETE
        || rv == APR_ENOTIMPL)
        rv = APR_SUCCESS;
    if (rv == APR_SUCCESS)
        rv = apr_file_write_full(f, &h, sizeof(h), NULL);
    if (rv == APR_SUCCESS && h.header_size > sizeof(h))
        rv = apr_file_write_full(f, zeros, h.header_size - sizeof(h), NULL);
    for (i = 0; i < NARRAYS && rv == APR_SUCCESS; i++) {
        uint64_t bytes = n[i] * size[i];
        if (i == A_STR) {
            rv = apr_file_write_full(f, m->str, m->nstr, NULL);
            if (rv == APR_SUCCESS)
                rv = apr_file_write_full(f, m->name, strlen(m->name) + 1, NULL);
        }
        else if (bytes) {
            rv = apr_file_write_full(f, ptr[i], (apr_size_t)bytes, NULL);
        }
        if (rv == APR_SUCCESS && pad_to(bytes) > bytes)
            rv = apr_file_write_full(f, zeros,
                                     (apr_size_t)(pad_to(bytes) - bytes), NULL);
    }
    if (rv == APR_SUCCESS)
        rv = apr_file_sync(f);
    if (apr_file_close(f) != APR_SUCCESS && rv == APR_SUCCESS)
        rv = APR_EGENERAL;
    if (rv == APR_SUCCESS)
        rv = apr_file_rename(tmpl, path, p);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot write %s (%pm)", path, &rv);
        apr_file_remove(tmpl, p);
        return rv;
    }
    return APR_SUCCESS;
}

/* ---- reading ------------------------------------------------------------ */

static apr_status_t bad(const char **why, const char *what)
{
    *why = what;
    return CERTAUTHZ_EBADINPUT;
}

/* The header of an image of size bytes: everything that can be checked
 * without the body. */
static apr_status_t check_header(const header_t *h, apr_off_t size,
                                 const char **why)
{
    unsigned char d[32];

    if ((apr_size_t)size < sizeof(header_t) || memcmp(h->magic, MAGIC, 8))
        return bad(why, "not a map image (no image header)");
    if (h->format != CERTAUTHZ_IMAGE_FORMAT)
        return bad(why, "an image of another format version");
    if (h->byte_order != BYTE_ORDER_MARK
        || h->rule_size != sizeof(certauthz_rule_t)
        || h->issuer_size != sizeof(certauthz_issuer_ent_t)
        || h->ntypes != CERTAUTHZ_NTYPES
        || h->header_size != pad_to(sizeof(header_t)))
        return bad(why, "an image written by another build or machine");
    header_digest(d, h);
    if (memcmp(d, h->header_sha256, 32))
        return bad(why, "the image header is damaged (checksum mismatch)");
    if (h->file_size != (uint64_t)size)
        return bad(why, (uint64_t)size < h->file_size
                            ? "the image is truncated"
                            : "the image has bytes after its end");
    if (strnlen(h->source_sha256, sizeof(h->source_sha256)) != 64)
        return bad(why, "the image header is damaged (content hash)");
    return APR_SUCCESS;
}

/* Every array of the header inside the file, aligned. */
static apr_status_t check_arrays(const header_t *h, const char **why)
{
    certauthz_map_t fake;
    const void *ptr[NARRAYS];
    uint64_t n[NARRAYS], size[NARRAYS];

    memset(&fake, 0, sizeof(fake));
    fake.nrules = h->nrules, fake.nstr = h->nstr, fake.ngrp = h->ngrp;
    fake.mask = h->mask, fake.napat = h->napat, fake.ndpat = h->ndpat;
    fake.nissuers = h->nissuers;
    arrays_of(&fake, ptr, n, size);
    if (h->mask == 0 || h->mask >= (1u << 26) || (h->mask & (h->mask + 1)))
        return bad(why, "the image's index is damaged");
    for (int i = 0; i < NARRAYS; i++) {
        uint64_t bytes = n[i] * size[i];
        if (h->off[i] % ALIGN || h->off[i] < h->header_size
            || h->off[i] > h->file_size || bytes > h->file_size - h->off[i])
            return bad(why, "an array of the image is out of place");
    }
    if (!h->nstr || !h->ngrp || !h->nissuers || h->name >= h->nstr)
        return bad(why, "the image's arrays are damaged");
    return APR_SUCCESS;
}

/* Longest map name image_info reads: a path. */
#define MAX_NAME 65536

/* The map's name, at the end of an image's strings (check_arrays: inside
 * the file), into *name from p. */
static apr_status_t read_name(apr_file_t *f, const header_t *h,
                              const char **name, const char **why,
                              apr_pool_t *p)
{
    apr_off_t at = (apr_off_t)(h->off[A_STR] + h->name);
    apr_size_t n = h->nstr - h->name, got = 0;
    apr_status_t rv;
    char *buf;

    if (n > MAX_NAME)
        n = MAX_NAME;
    buf = apr_palloc(p, n);
    rv = apr_file_seek(f, APR_SET, &at);
    if (rv == APR_SUCCESS)
        rv = apr_file_read_full(f, buf, n, &got);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *why = apr_psprintf(p, "cannot be read (%pm)", &rv);
        return rv;
    }
    if (!memchr(buf, '\0', got))
        return bad(why, "the image's strings are damaged");
    *name = buf;
    return APR_SUCCESS;
}

apr_status_t certauthz_image_info(certauthz_image_info_t *info,
                                  const char *path, const char **why,
                                  apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    header_t h;
    apr_size_t got = 0;
    apr_status_t rv;

    memset(info, 0, sizeof(*info));
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                            APR_OS_DEFAULT, p))
        != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot be opened (%pm)", &rv);
        return rv;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS)
        rv = apr_file_read_full(f, &h, sizeof(h), &got);
    if (rv == APR_EOF || (rv == APR_SUCCESS && got < sizeof(h)))
        rv = bad(why, "not a map image (no image header)");
    else if (rv != APR_SUCCESS)
        *why = apr_psprintf(p, "cannot be read (%pm)", &rv);
    else if ((rv = check_header(&h, fi.size, why)) == APR_SUCCESS
             && (rv = check_arrays(&h, why)) == APR_SUCCESS)
        rv = read_name(f, &h, &info->name, why, p);
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return rv;
    info->format = h.format;
    info->size = fi.size;
    memcpy(info->source_sha256, h.source_sha256, 65);
    info->rules = h.nrules;
    return APR_SUCCESS;
}

apr_status_t certauthz_image_open(certauthz_map_t **pmap, const char *path,
                                  int verify_body, const char **why,
                                  apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_mmap_t *mm = NULL;
    const header_t *h;
    const char *base;
    certauthz_map_t *m;
    apr_status_t rv;

    *pmap = NULL;
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                            APR_OS_DEFAULT, p))
        != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot be opened (%pm)", &rv);
        return rv;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG)
        rv = bad(why, "not a regular file");
    else if (rv == APR_SUCCESS && (apr_size_t)fi.size < sizeof(header_t))
        rv = bad(why, (apr_size_t)fi.size ? "the image is truncated"
                                          : "the image is empty");
    else if (rv == APR_SUCCESS
             && (rv = apr_mmap_create(&mm, f, 0, (apr_size_t)fi.size,
                                      APR_MMAP_READ, p))
                    != APR_SUCCESS)
        *why = apr_psprintf(p, "cannot be mapped (%pm)", &rv);
    else if (rv != APR_SUCCESS)
        *why = apr_psprintf(p, "cannot be read (%pm)", &rv);
    apr_file_close(f); /* the mapping stays */
    if (rv != APR_SUCCESS)
        return rv;
    base = mm->mm;
    h = (const header_t *)base;
    if ((rv = check_header(h, fi.size, why)) != APR_SUCCESS
        || (rv = check_arrays(h, why)) != APR_SUCCESS)
        goto fail;
    if (verify_body) {
        unsigned char d[32];
        if (!digest(d, base + h->header_size,
                    (apr_size_t)(h->file_size - h->header_size), NULL, 0)
            || memcmp(d, h->body_sha256, 32)) {
            rv = bad(why, "the image is damaged (checksum mismatch)");
            goto fail;
        }
    }
    m = apr_pcalloc(p, sizeof(*m));
#define AT(i) ((void *)(base + h->off[i]))
    m->rules = AT(A_RULES), m->nrules = h->nrules;
    m->str = AT(A_STR), m->nstr = h->nstr;
    m->grp = AT(A_GRP), m->ngrp = h->ngrp;
    m->slots = AT(A_SLOTS), m->mask = h->mask;
    m->apat = AT(A_APAT), m->napat = h->napat;
    m->dpat = AT(A_DPAT), m->ndpat = h->ndpat;
    m->issuers = AT(A_ISSUERS), m->nissuers = h->nissuers;
#undef AT
    m->exact_types = h->exact_types;
    m->stats.rules = h->st_rules, m->stats.exact_all = h->st_exact_all;
    m->stats.globs = h->st_globs, m->stats.regexes = h->st_regexes;
    m->stats.deny = h->st_deny, m->stats.sections = h->st_sections;
    for (int i = 0; i < CERTAUTHZ_NTYPES; i++)
        m->stats.exact[i] = h->st_exact[i];
    memcpy(m->sha256, h->source_sha256, 65);
    m->mapping = mm;
    m->mapping_size = (apr_size_t)fi.size;
    if (m->str[m->nstr - 1] != '\0') {
        rv = bad(why, "the image's strings are damaged");
        goto fail;
    }
    m->name = apr_pstrdup(p, m->str + h->name);
    m->nstr = h->name; /* the name is not one of the map's strings */
    if ((rv = certauthz_map_finish(m, why, p)) != APR_SUCCESS)
        goto fail;
    *pmap = m;
    return APR_SUCCESS;
fail:
    apr_mmap_delete(mm);
    return rv;
}
