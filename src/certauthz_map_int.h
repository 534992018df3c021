/*
 * certauthz_map_int.h -- the layout of a map, shared by the parser
 * (certauthz_map.c) and compiled images (certauthz_image.c); not part of
 * the core's interface.
 *
 * A map is a handful of flat arrays that hold no pointer, only offsets and
 * indices, so that the same bytes serve in the process that parsed the
 * map (arrays in malloc()ed memory) and in every process that maps a
 * compiled image of it (arrays in one read-only mapping, shared by all):
 *
 *   rules    nrules certauthz_rule_t, in file order
 *   str      strings, NUL-terminated, by offset; offset 0 is ""
 *   grp      groups records: a count n, then n string offsets; record 0
 *            is the empty one (deny rules, rules without groups)
 *   slots    the hash index of exact rules (see certauthz_map.c)
 *   apat     rule indices of the glob and regex allow rules, file order
 *   dpat     the same of the deny rules; a pattern rule's aux numbers it
 *            among all pattern rules (its compiled selector in psel)
 *   issuers  the [issuer] sections, by scope number (entry 0 unused)
 *
 * What only one process can hold stays out of those arrays: the compiled
 * pattern selectors (PCRE2 code), the issuer lookup table and the issuer
 * DNs, built again by every process that opens an image.
 */
#ifndef CERTAUTHZ_MAP_INT_H
#define CERTAUTHZ_MAP_INT_H

#include <stdint.h>

#include <apr_hash.h>

#include "certauthz_map.h"

/* 28 bytes: a map of a million rules holds a million of these. */
struct certauthz_rule_t {
    uint32_t value;  /* str: the selector's key (exact), pattern (glob) or
                        source (regex) */
    uint32_t len;    /* its length (a dn key may hold NUL bytes) */
    uint32_t user;   /* str: user, may hold $N when refs; 0 for deny */
    uint32_t groups; /* grp: its groups record */
    uint32_t flags;  /* line (30 bits), deny, refs */
    uint16_t scope;  /* 0: every issuer; n: issuers[n] */
    uint8_t type;    /* certauthz_type_e */
    uint8_t kind;    /* certauthz_sel_kind_e */
    uint32_t aux;    /* exact dn: str of the DN's text; glob/regex: its
                        pattern number (psel) */
};

#define RULE_LINE(r) ((r)->flags & 0x3FFFFFFFu)
#define RULE_DENY(r) (((r)->flags >> 30) & 1u)
#define RULE_REFS(r) ((r)->flags >> 31)

/* An [issuer] section: its issuer key and DN text, in str. */
typedef struct {
    uint32_t key, klen, text;
} certauthz_issuer_ent_t;

struct certauthz_map_t {
    const char *name;
    char sha256[65]; /* of the text parsed, lower-case hex */
    /* the arrays (writable while a parse builds them) */
    certauthz_rule_t *rules;
    uint32_t nrules;
    char *str;
    uint32_t nstr;
    uint32_t *grp;
    uint32_t ngrp;
    uint32_t *slots; /* mask + 1 of them */
    uint32_t mask;
    uint32_t *apat, *dpat;
    uint32_t napat, ndpat;
    certauthz_issuer_ent_t *issuers; /* nissuers, entry 0 unused */
    uint32_t nissuers;
    uint32_t exact_types; /* bit t set: some exact rule of type t exists */
    certauthz_map_stats_t stats;
    /* this process's own */
    certauthz_selector_t *psel;       /* by pattern number (napat + ndpat) */
    apr_hash_t *issuer_scope;         /* issuer key -> uint32_t scope */
    const certauthz_dn_t **issuer_dn; /* by scope number; [0] NULL */
    void *mapping;                    /* an image's mapping, or NULL */
    apr_size_t mapping_size;
};

/* The selector of a rule, as certauthz_selector_match() takes it: the
 * compiled one of a pattern rule, or *tmp filled for an exact one (whose
 * u.dn is NULL: exact selectors compare keys; dn_text set for dn). */
const certauthz_selector_t *certauthz_map_rule_sel(const certauthz_map_t *m,
                                                   const certauthz_rule_t *r,
                                                   certauthz_selector_t *tmp);

/* Build this process's own part of a map whose arrays are in place: the
 * pattern selectors (regexes compiled in p), the issuer table and DNs.
 * CERTAUTHZ_EBADINPUT with *why when the arrays do not hold together. */
apr_status_t certauthz_map_finish(certauthz_map_t *m, const char **why,
                                  apr_pool_t *p);

#endif /* CERTAUTHZ_MAP_INT_H */
