/*
 * pool_debug.c -- for the sanitizer builds of the fuzzers only: every
 * apr_palloc() becomes its own malloc() block, freed when its pool is
 * cleared or destroyed.  APR carves allocations out of 8 KiB blocks, so
 * without this AddressSanitizer cannot see a read or write past the end of
 * a pool-allocated buffer, nor a use of pool memory after its pool died.
 *
 * Works by symbol interposition: the functions below, linked into the
 * executable, take precedence over libapr-1.so's for every caller (the
 * core, the harness, and libapr itself, which calls them through its PLT).
 * The real ones are reached with dlsym(RTLD_NEXT).  Memory APR allocates
 * without apr_palloc (apr_psprintf's buffers, the pool structures) stays
 * in real pool blocks, which the per-input allocator of the harnesses
 * returns to malloc, so use after destroy is caught there too.
 *
 * Single-threaded (the fuzzers are).  Not used by the gcc replay build.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>

typedef struct {
    apr_pool_t *pool;
    apr_pool_t *parent; /* as given to apr_pool_create_ex (NULL: global) */
    void **chunk;
    size_t n, cap;
    int dead;
} rec_t;

static rec_t *recs;
static size_t nrecs, caprecs;

typedef apr_status_t create_fn(apr_pool_t **, apr_pool_t *, apr_abortfunc_t,
                               apr_allocator_t *);
typedef void pool_fn(apr_pool_t *);
static create_fn *real_create;
static pool_fn *real_destroy, *real_clear;

static void *must(void *p)
{
    if (!p) {
        fputs("pool_debug: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void resolve_real(void)
{
    if (real_create)
        return;
    real_create = (create_fn *)dlsym(RTLD_NEXT, "apr_pool_create_ex");
    real_destroy = (pool_fn *)dlsym(RTLD_NEXT, "apr_pool_destroy");
    real_clear = (pool_fn *)dlsym(RTLD_NEXT, "apr_pool_clear");
    if (!real_create || !real_destroy || !real_clear) {
        fputs("pool_debug: cannot find the real APR pool functions\n", stderr);
        abort();
    }
}

static rec_t *find(apr_pool_t *p)
{
    for (size_t i = nrecs; i-- > 0;)
        if (recs[i].pool == p)
            return &recs[i];
    return NULL;
}

static rec_t *add(apr_pool_t *p, apr_pool_t *parent)
{
    if (nrecs == caprecs) {
        caprecs = caprecs ? 2 * caprecs : 64;
        recs = must(realloc(recs, caprecs * sizeof(*recs)));
    }
    rec_t *r = &recs[nrecs++];
    memset(r, 0, sizeof(*r));
    r->pool = p;
    r->parent = parent;
    return r;
}

static void free_chunks(rec_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->chunk[i]);
    free(r->chunk);
    r->chunk = NULL;
    r->n = r->cap = 0;
}

/* Free the records of p's descendants (APR destroyed those pools already);
 * and p's own when self is set. */
static void release(apr_pool_t *p, int self)
{
    rec_t *r = find(p);
    int changed;

    if (!r)
        return;
    r->dead = 1;
    do {
        changed = 0;
        for (size_t i = 0; i < nrecs; i++) {
            if (recs[i].dead || !recs[i].parent)
                continue;
            rec_t *parent = find(recs[i].parent);
            if (parent && parent->dead) {
                recs[i].dead = 1;
                changed = 1;
            }
        }
    } while (changed);
    if (!self)
        r->dead = 0;
    free_chunks(r);
    size_t o = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].dead)
            free_chunks(&recs[i]);
        else
            recs[o++] = recs[i];
    }
    nrecs = o;
}

apr_status_t apr_pool_create_ex(apr_pool_t **newpool, apr_pool_t *parent,
                                apr_abortfunc_t abort_fn,
                                apr_allocator_t *allocator)
{
    apr_status_t rv;

    resolve_real();
    rv = real_create(newpool, parent, abort_fn, allocator);
    if (rv == APR_SUCCESS) {
        /* a record left at this address belongs to a pool APR destroyed
         * on its own (a child of a cleared pool): drop it */
        rec_t *stale = find(*newpool);
        if (stale)
            release(*newpool, 1);
        add(*newpool, parent);
    }
    return rv;
}

void apr_pool_destroy(apr_pool_t *p)
{
    resolve_real();
    real_destroy(p); /* cleanups run first: they may read pool memory */
    release(p, 1);
}

void apr_pool_clear(apr_pool_t *p)
{
    resolve_real();
    real_clear(p);
    release(p, 0);
}

void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    rec_t *r = find(p);

    if (!r)
        r = add(p, NULL); /* pools APR made itself (the global pool) */
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->chunk = must(realloc(r->chunk, r->cap * sizeof(void *)));
    }
    void *m = must(malloc(size ? size : 1));
    r->chunk[r->n++] = m;
    return m;
}

#undef apr_pcalloc
void *apr_pcalloc(apr_pool_t *p, apr_size_t size);
void *apr_pcalloc(apr_pool_t *p, apr_size_t size)
{
    return memset(apr_palloc(p, size), 0, size);
}
