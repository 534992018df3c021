/*
 * certauthz_image.h -- compiled map images: a parsed map written as one
 * file that any number of processes map read-only and resolve against as
 * they would against the parsed map, without parsing it again and sharing
 * one copy of its memory (the page cache's).
 *
 * An image holds the map's arrays as they are in memory (certauthz_map.c:
 * offsets and indices, no pointers) behind a header: a magic string, the
 * format version, the layout it was written with (byte order, the size of
 * a rule, the number of fact types), the map's name, its content hash, its
 * counts, where each array is, a SHA-256 of everything after the header and
 * a SHA-256 of the header itself.  It is for the machine and build that
 * wrote it: another format or layout is refused, never converted.
 *
 * Opening an image always checks the header (magic, version, layout, the
 * header's own hash, the file's size, every array inside the file) and,
 * when asked, the hash of the whole body: a truncated, foreign or damaged
 * image is refused with a reason, never half used.  Whatever the body
 * holds, a process that resolves against it reads only inside the mapping
 * (every offset is checked where it is used), so even an image damaged
 * after its body was verified can give a wrong answer for the damaged rule
 * but never a crash.  A process that writes an image verifies it; the
 * processes that then open it may check the header only (the body hash of
 * a large map costs what parsing a tenth of it costs).
 *
 * An opened image is a certauthz_map_t like any other: immutable, shared
 * by threads, living (mapping included) as long as the pool it was opened
 * in; what a process builds of its own (compiled regexes, the issuer
 * table) is small.
 */
#ifndef CERTAUTHZ_IMAGE_H
#define CERTAUTHZ_IMAGE_H

#include <apr_file_info.h>

#include "certauthz_map.h"

/* The image format this build writes and reads. */
#define CERTAUTHZ_IMAGE_FORMAT 1

/* Write map as an image at path: to a temporary file beside it, synced,
 * then renamed over path, so that path is always a complete image (or
 * absent); perms are the file's permissions (APR_FPROT_*).  On failure
 * returns the status with *why, and nothing is left behind. */
apr_status_t certauthz_image_write(const certauthz_map_t *map, const char *path,
                                   apr_fileperms_t perms, const char **why,
                                   apr_pool_t *p);

/* Open the image at path as a map (in p).  verify_body: also check the
 * SHA-256 of the body.  CERTAUTHZ_EBADINPUT (or the I/O status) with *why
 * when it cannot be used. */
apr_status_t certauthz_image_open(certauthz_map_t **map, const char *path,
                                  int verify_body, const char **why,
                                  apr_pool_t *p);

/* What an image's header says, read and checked without mapping it. */
typedef struct {
    unsigned format;
    apr_off_t size;         /* of the file */
    char source_sha256[65]; /* the map's content hash */
    const char *name;       /* the map's name (its file), from p */
    unsigned rules;         /* allow and deny rules */
} certauthz_image_info_t;

apr_status_t certauthz_image_info(certauthz_image_info_t *info,
                                  const char *path, const char **why,
                                  apr_pool_t *p);

#endif /* CERTAUTHZ_IMAGE_H */
