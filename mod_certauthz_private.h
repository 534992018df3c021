/*
 * mod_certauthz_private.h -- what the httpd glue files of mod_certauthz
 * share.  Nothing here is exported from the module (only certauthz_module
 * is); cross-file names of the glue start with cz_, the pure core's with
 * certauthz_.
 *
 * One section per owning file.  Each says what the file owns, how long it
 * lives and who may touch it from which thread:
 *
 *   mod_certauthz.c              module record, hooks, lifecycle
 *   mod_certauthz_config.c       directives, per-dir and per-server config
 *   mod_certauthz_maps.c         map registry, versions, live reload thread
 *   mod_certauthz_source_file.c  the map file source
 *   mod_certauthz_store.c        the image store: one compiled copy of each
 *                                map per server
 *   mod_certauthz_ldap.c         directory-backed identities through
 *                                mod_ldap
 *   mod_certauthz_forward.c      the identity to backends (CertAuthzForward)
 *   mod_certauthz_shadow.c       shadow maps (CertAuthzShadowMapFile)
 *   mod_certauthz_request.c      connection cache, the per-request decision
 *   mod_certauthz_authz.c        Require providers, AuthType Certificate,
 *                                environment
 *   mod_certauthz_status.c       reasons, decision counters, audit lines,
 *                                server-status
 */
#ifndef MOD_CERTAUTHZ_PRIVATE_H
#define MOD_CERTAUTHZ_PRIVATE_H

#include "apr_strings.h"
#include "apr_hash.h"
#include "apr_atomic.h"
#include "apr_thread_mutex.h"

#include <openssl/ssl.h>

#include "ap_config.h"
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_request.h"

#include "certauthz.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_ldap.h"
#include "certauthz_map.h"
#include "certauthz_match.h"
#include "certauthz_util.h"
#include "certauthz_watch.h"

extern module AP_MODULE_DECLARE_DATA certauthz_module;
APLOG_USE_MODULE(certauthz);

#define CZ_AUTH_TYPE "Certificate"
#define CZ_UNSET -1

/* ==== mod_certauthz_config.c ==========================================
 * Owns the configuration records and the directive table.  Created and
 * merged while httpd reads its configuration (and, for .htaccess, per
 * request from the request pool); read-only afterwards, so any thread may
 * read them without a lock.
 */
typedef struct cz_map_t cz_map_t;
typedef struct cz_ldap_conf_t cz_ldap_conf_t;
typedef struct cz_forward_t cz_forward_t;

enum { CZ_AUDIT_OFF = 0, CZ_AUDIT_DENY, CZ_AUDIT_ALL };
#define CZ_UNMAPPED_DENY CERTAUTHZ_NTYPES

/* Per-directory (also server and vhost level: the server's defaults are
 * the base of every merge).  Every setting: an unset value, merged child
 * over parent (scope goes with map). */
typedef struct {
    cz_map_t *map;               /* NULL: unset */
    int unmapped;                /* CZ_UNSET, CZ_UNMAPPED_DENY, or the fact type
                          (certauthz_type_e) that names the user of an
                          unmapped certificate */
    int setenv;                  /* CZ_UNSET, 0, 1 */
    int audit;                   /* CZ_UNSET or CZ_AUDIT_* */
    const char *scope;           /* section the map was set in, for messages */
    cz_ldap_conf_t *ldap;        /* the CertAuthzLDAP* settings (NULL: none at
                             this level; merged field by field) */
    cz_map_t *shadow;            /* CertAuthzShadowMapFile (NULL: unset) */
    const cz_forward_t *forward; /* CertAuthzForward (NULL: unset) */
    const void *forward_directive; /* the line it was read from */
} cz_dir_conf_t;

/* Per-server, merged vhost over main server. */
typedef struct {
    int reload_interval; /* seconds; CZ_UNSET = default */
    /* every header a CertAuthzForward of this server (or of the main
     * server) sets anywhere: removed from every request it reads */
    apr_array_header_t *strip;
} cz_srv_conf_t;

#define CZ_DEFAULT_RELOAD_INTERVAL 10

extern const command_rec cz_cmds[];
void *cz_create_dir_conf(apr_pool_t *p, char *dir);
void *cz_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
void *cz_create_srv_conf(apr_pool_t *p, server_rec *s);
void *cz_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

const cz_dir_conf_t *cz_dir_conf(const request_rec *r);
int cz_conf_setenv(const cz_dir_conf_t *d);
int cz_conf_audit(const cz_dir_conf_t *d);
/* the fact type that names an unmapped certificate's user, or -1 (Deny) */
int cz_conf_unmapped(const cz_dir_conf_t *d);
int cz_server_interval(const server_rec *s);

/* ==== mod_certauthz_maps.c ============================================
 * Owns the registry of maps and their versions, and the live reload.
 *
 * cz_map_t: one map the configuration names, keyed by its source (kind and
 * name: "file:/etc/apache2/staff.map"), shared by every scope naming it.
 * It lives as long as the configuration (a pool of its own under the
 * registry's, in pconf: rebuilt on every graceful restart).
 *
 * cz_version_t: one load of a map, immutable, in a pool of its own.
 * Requests take the current version with cz_version_take() and give it
 * back when their pool is cleaned up; the reload thread publishes a new
 * one with one atomic exchange and frees the old one once nothing holds it.
 * Lock-free on the request path.
 */
typedef struct cz_version_t cz_version_t;
struct cz_version_t {
    certauthz_map_t *map;
    apr_pool_t *pool;              /* the version's memory (own allocator) */
    apr_uint32_t gen;              /* the map's generation: the store's
                                      (the same in every process), or
                                      this process's count without one */
    apr_uint32_t serial;           /* unique per version in this process */
    const char *image;             /* the shared image, or NULL */
    certauthz_file_sig_t state;    /* the source's state it was read from */
    const char *precompiled;       /* taken from this image, not parsed */
    apr_uint32_t refs;             /* requests holding it (atomic) */
    apr_time_t loaded;             /* when */
    apr_interval_time_t load_usec; /* how long the load took */
    cz_version_t *next;            /* retired list */
};

/* ---- map sources ------------------------------------------------------
 * Where the versions of a map come from: a table of functions (a source
 * type) and a source of that type.  The registry calls a source's
 * functions from one thread at a time: first() while the configuration is
 * read, or for an .htaccess map at request time (under no lock; requests
 * racing to register one map each make a source of their own, and the
 * registry keeps the first that loaded), refresh() from the reload thread
 * only.
 * A source never touches requests: a new source type is a file of its own
 * and one cz_map_get() call where a directive names it.
 */
typedef struct cz_source_t cz_source_t;

/* What a source gave: a map in a pool of its own (cz_own_pool), or
 * nothing; on failure, why: the errors (FILE:LINE: reason, the first and
 * their count) or a phrase ("is empty ..."), for the directive error or the
 * status page.  refresh() has logged it; first() leaves that to the
 * caller (a configuration error). */
typedef struct {
    certauthz_map_t *map;
    apr_pool_t *pool;
    const char *why;
    apr_interval_time_t usec;   /* how long the load took */
    apr_uint32_t gen;           /* the store's generation; 0: none (the
                                 registry numbers it) */
    certauthz_file_sig_t state; /* the source's state it was read from */
    const char *image;          /* the shared image it is, or NULL (a copy
                                   of this process's own) */
    int adopted;                /* taken from an image another process
                                   compiled */
    const char *precompiled;    /* the certauthz compile image it was taken
                                   from (not parsed), or NULL */
} cz_loaded_t;

typedef enum {
    CZ_REFRESH_SAME = 0, /* nothing new to say: unchanged, or a state
                            already refused or reported */
    CZ_REFRESH_SOON,     /* a change is settling: look again at the tick */
    CZ_REFRESH_NEW,      /* loaded: a new version */
    CZ_REFRESH_FAILED    /* a change that cannot be taken (why says why) */
} cz_refresh_e;

#define CZ_FIRST_SHARED (-1)

typedef struct {
    const char *kind; /* the key prefix: "file" */
    /* Before the first load: the source's own state in data, from p (the
     * map's pool: kept with the map, destroyed when the first load fails);
     * an error message or NULL. */
    const char *(*create)(cz_source_t *src, apr_pool_t *p);
    /* The first version.  waits: how many times it may wait for a change
     * to settle (0: take it as it is: at startup, an administrator starts
     * httpd).  at_startup: a map with several errors lists them on the
     * console, one a line.  On failure out->map is NULL and out->why says
     * why. */
    void (*first)(cz_source_t *src, int waits, int at_startup, cz_loaded_t *out,
                  apr_pool_t *ptemp);
    /* (waits is CZ_FIRST_SHARED in a child for a map the parent shared:
     * the store's current version, whatever the source's state; the
     * reload thread takes changes from there.) */
    /* Reload thread: has the source changed, and if so its new version.
     * gen: the generation in force (for log lines). */
    cz_refresh_e (*refresh)(cz_source_t *src, apr_uint32_t gen,
                            cz_loaded_t *out, server_rec *s, apr_pool_t *ptemp);
    /* What the status page shows for the source (for a file: its path). */
    const char *(*describe)(const cz_source_t *src, apr_pool_t *p);
} cz_source_type_t;

struct cz_source_t {
    const cz_source_type_t *type;
    const char *name; /* what the configuration named (an absolute path) */
    void *data;       /* the type's own state, in the map's pool */
};

/* The sources there are (one file each). */
extern const cz_source_type_t cz_source_file;

/* A map of the registry.  Once registered, source, key and interval do
 * not change (any thread reads them); request threads touch current and
 * taking only through atomics; the reload thread owns next_check and
 * retired; the status fields are read and written under the registry's
 * lock. */
struct cz_map_t {
    cz_source_t source;
    const char *key;        /* "kind:name" */
    volatile void *current; /* cz_version_t *: read, swapped atomically */
    apr_uint32_t taking;    /* requests between reading current and counting
                               themselves in it (atomic) */
    int interval;           /* seconds between checks; 0: at restart only */
    apr_array_header_t *servers; /* configuration time: servers naming it */
    /* reload thread only */
    apr_time_t next_check;
    cz_version_t *retired; /* replaced versions not yet freed */
    /* status, under the registry's lock */
    apr_uint32_t reloads, failures;
    apr_time_t last_error_at;
    char last_error[512];
};

/* Find the map of (type, name), or make it and load its first version.
 * Returns an error message (the first error, FILE:LINE: reason, and how
 * many there are) or NULL.  interval: for a map first named at request time (.htaccess); at
 * configuration time cz_maps_post_config() sets it from the servers that
 * name the map. */
const char *cz_map_get(cz_map_t **out, const cz_source_type_t *type,
                       const char *name, server_rec *s, int interval,
                       apr_pool_t *errpool);

/* The current version, held until cz_version_give() (a pool cleanup). */
cz_version_t *cz_version_take(cz_map_t *m);
apr_status_t cz_version_give(void *version);

/* Map parse errors as text: the first, with the count when there are
 * several.  At startup a map with several errors also lists each on the
 * console (httpd shows a multi-line directive error with literal "\n"); on
 * a reload (s not NULL) each goes to s's error log. */
const char *cz_format_errors(apr_pool_t *p, apr_array_header_t *errs,
                             int at_startup, server_rec *s);

/* A pool with an allocator of its own: safe to create, use and destroy from
 * any one thread at a time, independent of every other pool (requests of
 * HTTP/2 streams, the reload thread).  NULL when out of memory. */
apr_pool_t *cz_own_pool(const char *tag);

/* Every map of the registry, a snapshot (.htaccess maps may be added
 * meanwhile); the maps live as long as the registry. */
apr_array_header_t *cz_maps_all(apr_pool_t *p);

/* A map's status fields, copied under the registry's lock. */
typedef struct {
    apr_uint32_t reloads, failures;
    char last_error[512];
} cz_map_status_t;
void cz_map_status(const cz_map_t *m, cz_map_status_t *out);

/* 1 once child_init made the registry thread-safe (status page). */
int cz_maps_ready(void);

void cz_maps_pre_config(apr_pool_t *pconf);
void cz_maps_post_config(server_rec *s, apr_pool_t *ptemp);
void cz_maps_child_init(apr_pool_t *pchild, server_rec *s);

/* ==== mod_certauthz_store.c ===========================================
 * Owns the image store (a directory of compiled map images, their
 * pointers and compile locks; the format and protocol are described at
 * the top of the file).  Configured by the parent in post_config (the
 * directory, made httpd's user's), used single-threaded by the parent and,
 * in a child, one operation at a time (a mutex made in child_init).  A
 * source uses it to share what it loads: it reads the pointer, opens the
 * current image, and when it has parsed a change itself publishes it.
 */
typedef struct {
    apr_uint64_t serial;         /* new at every write (microseconds, above
                                    the last one) */
    apr_uint32_t gen;            /* of the current image; 0: none */
    char image[96];              /* its file name in the store ("" when none) */
    char sha256[65];             /* its content hash */
    certauthz_file_sig_t source; /* the source state it was made from */
    certauthz_file_sig_t image_state; /* the image as its writer checked it */
    int has_refused;                  /* a later source state was refused: */
    certauthz_file_sig_t refused;
    char why[256];
} cz_pointer_t;

typedef struct cz_store_lock_t cz_store_lock_t;

int cz_store_enabled(void);
const char *cz_store_dir(void);
/* The pointer of the map with registry key mapkey: APR_ENOENT when there is
 * none (or no store), CERTAUTHZ_EBADINPUT when it is not one of ours; *why
 * says so. */
apr_status_t cz_store_read(const char *mapkey, cz_pointer_t *ptr,
                           const char **why, apr_pool_t *p);
/* Open the pointer's image as a version (out: map, pool, gen, state,
 * image); *why when it is refused (nothing is kept then). */
apr_status_t cz_store_open(const char *mapkey, const cz_pointer_t *ptr,
                           cz_loaded_t *out, const char **why,
                           apr_pool_t *ptemp);
/* With the lock held: write io's parsed map as the next generation's image
 * (after the pointer's and io->gen), check it, point to it, and replace io
 * with the image (the parsed copy is freed); *ptr becomes the new pointer.
 * On failure (logged) io is left as it was: a copy of this process's own. */
apr_status_t cz_store_publish(const char *mapkey, cz_pointer_t *ptr,
                              cz_loaded_t *io, server_rec *s,
                              apr_pool_t *ptemp);
/* With the lock held: write *ptr again (serial bumped), e.g. with another
 * source state of the same content. */
apr_status_t cz_store_repoint(const char *mapkey, cz_pointer_t *ptr,
                              apr_pool_t *ptemp);
/* With the lock held: record that the source's state could not be loaded
 * (why), so that other processes do not try it again. */
apr_status_t cz_store_refuse(const char *mapkey, cz_pointer_t *ptr,
                             const certauthz_file_sig_t *state, const char *why,
                             apr_pool_t *ptemp);
/* The compile lock of a map (wait: block for it), or NULL: *held is 1 when
 * another process or thread holds it, 0 when it cannot be taken at all
 * (its file cannot be opened: then do without the store). */
cz_store_lock_t *cz_store_trylock(const char *mapkey, int wait, int *held,
                                  apr_pool_t *p);
void cz_store_unlock(cz_store_lock_t *l);
/* Give memory a parse freed back to the system. */
void cz_store_trim(void);
void cz_store_post_config(server_rec *s, apr_pool_t *pconf);
/* The parent (root) works in the store as httpd's user, between these. */
void cz_store_become_user(void);
void cz_store_become_root(void);
void cz_store_child_init(apr_pool_t *pchild);

/* ==== mod_certauthz_ldap.c ============================================
 * Owns the CertAuthzLDAP* settings and the lookups through mod_ldap's
 * optional functions; this process's result cache (made in child_init,
 * under a mutex) and each directive's fault log (atomics).  The request
 * file asks it for the identity of an unmapped certificate and keeps the
 * answer in the connection cache like a map's.
 */
typedef struct cz_ldap_search_t cz_ldap_search_t;

/* Per directory, every field unset (NULL / CZ_UNSET) until a directive at
 * that level sets it; merged field by field. */
struct cz_ldap_conf_t {
    const cz_ldap_search_t *search; /* CertAuthzLDAP (Off: url NULL) */
    const char *groups;             /* CertAuthzLDAPGroups ("" None) */
    int groups_dn;                  /* ... dn */
    int ttl, negttl;                /* CertAuthzLDAPCacheTTL, seconds */
    const char *binddn, *bindpw;    /* CertAuthzLDAPBindDN / ...Password */
};

#define CZ_LDAP_DEFAULT_TTL 60
#define CZ_LDAP_DEFAULT_NEGTTL 10

typedef enum {
    CZ_DIR_NONE = 0,  /* not asked */
    CZ_DIR_FOUND,     /* one usable entry: an identity */
    CZ_DIR_NOT_FOUND, /* none, several, or an unusable one: unmapped */
    CZ_DIR_ERROR      /* the directory could not answer: refuse */
} cz_dir_e;

const char *cz_ldap_set_search(cmd_parms *cmd, void *dcfg, const char *url,
                               const char *flt, const char *mode);
const char *cz_ldap_set_groups(cmd_parms *cmd, void *dcfg, const char *attr,
                               const char *form);
const char *cz_ldap_set_ttl(cmd_parms *cmd, void *dcfg, const char *ttl,
                            const char *neg);
/* cmd->info NULL: the bind DN; else the password */
const char *cz_ldap_set_bind(cmd_parms *cmd, void *dcfg, const char *arg);
cz_ldap_conf_t *cz_ldap_merge(apr_pool_t *p, const cz_ldap_conf_t *base,
                              const cz_ldap_conf_t *add);
/* A directory applies (CertAuthzLDAP set, not Off). */
int cz_ldap_active(const cz_ldap_conf_t *l);
/* Two settings search the same way (the connection cache's key). */
int cz_ldap_same(const cz_ldap_conf_t *a, const cz_ldap_conf_t *b);
/* "ldap:URL", what audit lines and CERTAUTHZ_RULE say. */
const char *cz_ldap_rule(const cz_ldap_conf_t *l);
/* The directory's identity of a certificate (l active): out's strings
 * from r->pool; *expires: until when a connection may keep the answer
 * (not set for CZ_DIR_ERROR, which nobody keeps). */
cz_dir_e cz_ldap_lookup(request_rec *r, const cz_ldap_conf_t *l,
                        const certauthz_facts_t *facts,
                        certauthz_ldresult_t *out, apr_time_t *expires);
void cz_ldap_pre_config(void);
/* mod_ldap is loaded wherever a CertAuthzLDAP is (else CERTAUTHZ0050). */
int cz_ldap_check_config(server_rec *s);
void cz_ldap_post_config(void);
void cz_ldap_child_init(apr_pool_t *pchild);

/* ==== mod_certauthz_forward.c =========================================
 * Owns CertAuthzForward's settings (read-only once read) and the headers
 * it sets for a backend; stateless on the request path.
 */
/* ITERATE: one word of a CertAuthzForward line */
const char *cz_forward_set(cmd_parms *cmd, void *dcfg, const char *word);
/* post_read_request: remove what the client sent under this server's
 * forwarded names */
int cz_forward_post_read(request_rec *r);
/* fixups: remove again (the scope's names) and set the values */
int cz_forward_fixups(request_rec *r);

/* ==== mod_certauthz_shadow.c ==========================================
 * Compares a request's identity with the one CertAuthzShadowMapFile's
 * candidate map gives (one version per request, given back with its
 * pool); stateless otherwise.
 */
struct cz_req_s;
/* After the decision (verified certificates only): count, and log a
 * disagreement (CERTAUTHZ0110). */
void cz_shadow_compare(request_rec *r, const cz_dir_conf_t *d,
                       const struct cz_req_s *st);

/* ==== mod_certauthz_request.c =========================================
 * Owns the per-connection certificate cache (on the connection that
 * carries TLS: for HTTP/2 the primary one, c->master; under its mutex,
 * facts in pools of their own) and the per-request decision (in
 * r->request_config, the request's thread only).
 */
typedef enum {
    CZ_CERT_NONE = 0,   /* no certificate */
    CZ_CERT_UNVERIFIED, /* SSL_CLIENT_VERIFY is not SUCCESS, or a resumed
                           session failed re-verification */
    CZ_CERT_ERROR,      /* verified, but could not be read */
    CZ_CERT_OK
} cz_cert_state_e;

/* What one request learned, shared by the providers, the authn hook and
 * fixups of that request: one version of the map for all of them. */
typedef struct cz_req_s {
    cz_cert_state_e state;
    const char *verify;
    const certauthz_facts_t *facts;
    const cz_map_t *map;        /* map in scope (NULL: none) */
    cz_version_t *ver;          /* its version, held until the request ends */
    const cz_ldap_conf_t *ldap; /* the directory in scope (NULL: none) */
    cz_dir_e dir;               /* what it said (NONE: not asked) */
    certauthz_identity_t id;    /* the map's, or the directory's (rule
                                   NULL, dir FOUND) */
} cz_req_t;

/* mod_ssl's pre_handshake hook: the connection cache. */
int cz_pre_handshake(conn_rec *c, SSL *ssl, int is_proxy);
/* The request's decision under d's map (computed once per map). */
cz_req_t *cz_decide(request_rec *r, const cz_dir_conf_t *d);
conn_rec *cz_tls_conn(conn_rec *c);
/* The DER of a PEM certificate (mod_ssl's SSL_CLIENT_CERT and
 * SSL_CLIENT_CERT_CHAIN_n), from p, or NULL. */
const unsigned char *cz_pem_der(apr_pool_t *p, const char *pem,
                                apr_size_t *len);
/* The first value of a fact, or "-". */
const char *cz_fact(const cz_req_t *st, certauthz_type_e t);
/* FILE:LINE of the rule that decided, "ldap:URL" when the directory was
 * asked, or "-". */
/* The same, NULL when no rule and no directory decided (audit values:
 * their "-" is written for NULL). */
const char *cz_rule_at(const cz_req_t *st, apr_pool_t *p);
const char *cz_rule_where(const cz_req_t *st, apr_pool_t *p);

/* ==== mod_certauthz_status.c ==========================================
 * Owns the refusal reasons, the decision counters (server-wide, in shared
 * memory made by the parent in post_config, atomics only), the audit line
 * and the server-status section.
 *
 * Every decision counter, once: X(ID, name); name is its server-status key
 * (CertAuthzDecisions-name).
 */
#define CZ_COUNTERS(X)                                                         \
    X(GRANTED, "granted")                                                      \
    X(NO_CERT, "no-certificate")                                               \
    X(UNVERIFIED, "not-verified")                                              \
    X(DENY_RULE, "deny-rule")                                                  \
    X(UNMAPPED, "unmapped")                                                    \
    X(MISMATCH, "rule-mismatch")                                               \
    X(ERROR, "cert-error")                                                     \
    X(DIR_ERROR, "directory-error")

/* Every reason a decision is logged with, once: X(ID, name, counter).
 * name is what audit lines, debug lines and docs say; counter the one a
 * refusal with that reason adds to (a granted decision counts as GRANTED
 * whatever its reason). */
#define CZ_REASONS(X)                                                          \
    X(MATCH, "match", GRANTED)                                                 \
    X(MAPPED, "mapped", GRANTED)                                               \
    X(UNMAPPED_FALLBACK, "unmapped-fallback", GRANTED)                         \
    X(NO_CERT, "no-certificate", NO_CERT)                                      \
    X(UNVERIFIED, "not-verified", UNVERIFIED)                                  \
    X(CERT_ERROR, "cert-error", ERROR)                                         \
    X(NO_MAP, "no-map", UNMAPPED)                                              \
    X(DENY_RULE, "deny-rule", DENY_RULE)                                       \
    X(UNMAPPED, "unmapped", UNMAPPED)                                          \
    X(UNUSABLE_RULE, "unusable-rule", UNMAPPED)                                \
    X(USER_MISMATCH, "user-mismatch", MISMATCH)                                \
    X(GROUP_MISMATCH, "group-mismatch", MISMATCH)                              \
    X(FACT_MISMATCH, "fact-mismatch", MISMATCH)                                \
    X(ISSUER_MISMATCH, "issuer-mismatch", MISMATCH)                            \
    X(DIRECTORY_ERROR, "directory-error", DIR_ERROR)

#define CZ_ENUM_(id, ...) CZ_REASON_##id,
typedef enum { CZ_REASONS(CZ_ENUM_) CZ_NREASONS } cz_reason_e;
#undef CZ_ENUM_

const char *cz_reason_name(cz_reason_e reason);
/* Why a request has no identity (or MAPPED when it has one). */
cz_reason_e cz_refusal_reason(const cz_req_t *st);

/* One audit line (when d's CertAuthzAudit asks for it) and one count. */
void cz_audit(request_rec *r, const cz_dir_conf_t *d, const cz_req_t *st,
              const char *check, int granted, cz_reason_e reason);

/* The directory's counters (server-status CertAuthzLDAP-name), once:
 * lookups are searches handed to mod_ldap (its own cache may answer
 * them), hits answers from this process's cache, usec the time the
 * lookups took, in total. */
#define CZ_DIR_COUNTERS(X)                                                     \
    X(LOOKUPS, "lookups")                                                      \
    X(HITS, "cache-hits")                                                      \
    X(FOUND, "found")                                                          \
    X(NOT_FOUND, "not-found")                                                  \
    X(ERRORS, "errors")                                                        \
    X(USEC, "latency-usec")

#define CZ_DIRCNT_(id, name) CZ_DIRCNT_##id,
typedef enum { CZ_DIR_COUNTERS(CZ_DIRCNT_) CZ_NDIRCNT } cz_dircnt_e;
#undef CZ_DIRCNT_
void cz_count_dir(cz_dircnt_e which, apr_uint64_t n);

/* The shadow map's comparisons (server-status CertAuthzShadow-name),
 * once: X(ID, name, kind); kind is what a CERTAUTHZ0110 line's shadow=
 * says.  The rows follow certauthz_diff_e (SAME, OUTCOME, USER, GROUPS). */
#define CZ_SHADOW_COUNTERS(X)                                                  \
    X(AGREE, "agree", "agree")                                                 \
    X(OUTCOME, "disagree-outcome", "outcome")                                  \
    X(USER, "disagree-user", "user")                                           \
    X(GROUPS, "disagree-groups", "groups")

#define CZ_SHCNT_(id, name, kind) CZ_SHCNT_##id,
typedef enum { CZ_SHADOW_COUNTERS(CZ_SHCNT_) CZ_NSHCNT } cz_shcnt_e;
#undef CZ_SHCNT_
void cz_count_shadow(cz_shcnt_e which);
const char *cz_shadow_kind_name(cz_shcnt_e which);

void cz_status_post_config(apr_pool_t *pconf);
int cz_status_hook(request_rec *r, int flags);

/* ==== mod_certauthz_authz.c ===========================================
 * Owns the Require providers (parsed lines from cmd->pool: read-only once
 * parsed), AuthType Certificate and the environment.  Stateless.
 */
void cz_register_providers(apr_pool_t *p);
int cz_access_check(request_rec *r);
int cz_authn_check(request_rec *r);
int cz_note_auth_failure(request_rec *r, const char *auth_type);
int cz_fixups(request_rec *r);

#endif /* MOD_CERTAUTHZ_PRIVATE_H */
