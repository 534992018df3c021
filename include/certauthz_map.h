/*
 * certauthz_map.h -- the map file (SPEC section 2): parsed once into an
 * immutable object, then resolved against certificate facts.
 *
 * Lifecycle: certauthz_map_load()/certauthz_map_parse() build a map in the
 * pool given; on any error nothing is returned and everything allocated is
 * left in that pool (callers load into a pool of its own and destroy it on
 * failure, so nothing is half-applied).  A loaded map is never modified: any
 * number of threads may resolve against it at once.  It lives exactly as
 * long as its pool.
 *
 * Resolution: a certificate that matches any deny rule (global, or in the
 * section of its issuer) is DENIED.  Otherwise the first rule in file order,
 * among the global rules and the rules of its issuer's section, that
 * matches gives the identity (MAPPED); else UNMAPPED.  Exact selectors are
 * found through a hash index, so the cost does not grow with their number;
 * only glob and regex rules are scanned, in file order.
 */
#ifndef CERTAUTHZ_MAP_H
#define CERTAUTHZ_MAP_H

#include <apr_tables.h>

#include "certauthz.h"
#include "certauthz_facts.h"
#include "certauthz_match.h"

typedef struct certauthz_map_t certauthz_map_t;
typedef struct certauthz_rule_t certauthz_rule_t;

/* Longest line accepted, without its line end. */
#define CERTAUTHZ_MAX_LINE 16384
/* Most lines a map may have. */
#define CERTAUTHZ_MAX_LINES 16777216
/* How many errors one parse collects before it stops. */
#define CERTAUTHZ_MAX_ERRORS 100

/* Read and parse a map file.  On failure returns CERTAUTHZ_EBADINPUT (or
 * the I/O status) and fills errs (an array of certauthz_error_t, allocated
 * from p; never empty on failure): every error found, in line order, at most
 * CERTAUTHZ_MAX_ERRORS.  file names in errors point to path.  The file is
 * read in chunks, never whole: loading needs little more memory than the
 * map keeps (28 bytes a rule, its strings, its share of the index: 70 to
 * 100 MB for a million exact rules, by the length of their values). */
apr_status_t certauthz_map_load(certauthz_map_t **map, const char *path,
                                apr_array_header_t **errs, apr_pool_t *p);

/* Parse map text held in memory; name is used in errors and rule origins. */
apr_status_t certauthz_map_parse(certauthz_map_t **map, const char *name,
                                 const char *buf, apr_size_t len,
                                 apr_array_header_t **errs, apr_pool_t *p);

typedef struct {
    unsigned rules;                   /* allow rules (not deny) */
    unsigned exact[CERTAUTHZ_NTYPES]; /* exact allow rules by type */
    unsigned exact_all;               /* the sum of exact[] */
    unsigned globs;                   /* glob allow rules */
    unsigned regexes;                 /* regex allow rules */
    unsigned deny;                    /* deny rules of every kind */
    unsigned sections;                /* [issuer] sections (distinct DNs) */
} certauthz_map_stats_t;

void certauthz_map_stats(const certauthz_map_t *map,
                         certauthz_map_stats_t *stats);

const char *certauthz_map_name(const certauthz_map_t *map);
/* Name the map anew (an image opened from where its map file now is: rule
 * locations, FILE:LINE, name that file).  Before the map is shared. */
void certauthz_map_set_name(certauthz_map_t *map, const char *name,
                            apr_pool_t *p);

/* The map's content hash: SHA-256 of the text it was parsed from, in
 * lower-case hex (what sha256sum prints for the file), so that servers can
 * show they serve the same map; "" only if the digest itself failed. */
const char *certauthz_map_sha256(const certauthz_map_t *map);

/* The counts as one phrase, the same in every log line and tool output:
 * "R rules (E exact, G glob, X regex), D deny, S issuer sections". */
const char *certauthz_map_summary(const certauthz_map_stats_t *stats,
                                  apr_pool_t *p);

typedef enum {
    CERTAUTHZ_UNMAPPED = 0,
    CERTAUTHZ_MAPPED,
    CERTAUTHZ_DENIED
} certauthz_outcome_e;

/* The result of resolving one certificate against one map.
 *   rule: the rule that gave the identity (MAPPED) or the deny rule
 *         (DENIED); NULL when UNMAPPED.
 *   user, groups: the identity (MAPPED only); strings live in the map or,
 *         for regex rules with $N, in the pool given to resolve, the
 *         groups array (NULL when there are none) in that pool. */
typedef struct {
    certauthz_outcome_e outcome;
    const certauthz_rule_t *rule;
    const char *user;
    int ngroups;
    const char *const *groups;
} certauthz_identity_t;

/* Resolve facts against map.  p holds the identity's groups array and
 * the strings a regex rule substitutes captures into.  A substitution that yields an empty user or group, a control
 * character, or a ',' inside a group name gives UNMAPPED (never a partial
 * identity), and so does an allow regex that gives up (match limits) on a
 * value before a rule matched; in both cases id->rule names that rule.
 * Thread-safe. */
void certauthz_map_resolve(certauthz_identity_t *id, const certauthz_map_t *map,
                           const certauthz_facts_t *facts, apr_pool_t *p);

/* Call fn for every rule that matches the facts, in file order (deny rules
 * included).  Stops when fn returns non-zero.  For `certauthz explain`. */
typedef int certauthz_rule_fn(void *baton, const certauthz_rule_t *rule);
void certauthz_map_each_match(const certauthz_map_t *map,
                              const certauthz_facts_t *facts,
                              certauthz_rule_fn *fn, void *baton);

/* Accessors of a rule of map m (a rule is a handle into its map). */
const char *certauthz_rule_file(const certauthz_map_t *m,
                                const certauthz_rule_t *rule);
unsigned certauthz_rule_line(const certauthz_rule_t *rule);
/* "FILE:LINE" of a rule (allocated from p), "-" for NULL: the form of
 * CERTAUTHZ_RULE, audit lines, explain and lint. */
const char *certauthz_rule_where(const certauthz_map_t *m,
                                 const certauthz_rule_t *rule, apr_pool_t *p);
int certauthz_rule_is_deny(const certauthz_rule_t *rule);
/* The rule's selector: the map's own for a glob or regex, else *tmp filled
 * (an exact one; for dn with dn_text set, not u.dn). */
const certauthz_selector_t *certauthz_rule_selector(const certauthz_map_t *m,
                                                    const certauthz_rule_t *r,
                                                    certauthz_selector_t *tmp);
/* Issuer DN of the rule's section, or NULL for rules that apply to all. */
const certauthz_dn_t *certauthz_rule_issuer(const certauthz_map_t *m,
                                            const certauthz_rule_t *rule);

/* Every rule (deny rules included) in file order: i < nrules. */
unsigned certauthz_map_nrules(const certauthz_map_t *map);
const certauthz_rule_t *certauthz_map_rule(const certauthz_map_t *map,
                                           unsigned i);
/* User and groups of an allow rule as written (may hold $N); NULL / 0 for
 * a deny rule.  The groups array is allocated from p. */
const char *certauthz_rule_user(const certauthz_map_t *m,
                                const certauthz_rule_t *rule);
int certauthz_rule_groups(const certauthz_map_t *m,
                          const certauthz_rule_t *rule,
                          const char *const **groups, apr_pool_t *p);

/* The exact rule (deny or not, as deny says) with this selector type and
 * comparison key (what certauthz_selector_t.value holds), among the rules
 * for every issuer (issuer NULL) or in the [issuer] section of that DN: its
 * index for certauthz_map_rule(), or certauthz_map_nrules(map) when there
 * is none.  Constant time: the map's own index (a map holds at most one
 * such rule: a repeated one is a load error). */
unsigned certauthz_map_find_exact(const certauthz_map_t *map,
                                  const certauthz_dn_t *issuer, int deny,
                                  certauthz_type_e type, const char *key,
                                  apr_size_t len);

/* How two identities of one certificate differ (shadow maps, certauthz
 * diff): outcome (mapped, unmapped, denied), else the user of two mapped
 * ones, else their groups (in order); two unmapped or two denied ones are
 * the same whatever their rules. */
typedef enum {
    CERTAUTHZ_SAME = 0,
    CERTAUTHZ_DIFF_OUTCOME,
    CERTAUTHZ_DIFF_USER,
    CERTAUTHZ_DIFF_GROUPS
} certauthz_diff_e;

certauthz_diff_e certauthz_identity_compare(const certauthz_identity_t *a,
                                            const certauthz_identity_t *b);

/* "mapped", "unmapped" or "denied": what logs, JSON and docs call it. */
const char *certauthz_outcome_name(certauthz_outcome_e o);

/* Groups joined with ',' (empty string when none); when a group holds a
 * ',' (a directory's group DNs, CertAuthzLDAPGroups ATTR dn) with "; ",
 * as mod_ldap joins values (DNs escape ';' as RFC 4514 says). */
const char *certauthz_identity_groups(const certauthz_identity_t *id,
                                      apr_pool_t *p);

#endif /* CERTAUTHZ_MAP_H */
