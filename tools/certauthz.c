/*
 * certauthz -- command-line companion of mod_certauthz, built on the same
 * core: validate map files (with warnings) and explain how a certificate is
 * decided.  Full help: HELP_* below (`certauthz --help`); man page:
 * docs/certauthz.1.
 *
 *   certauthz check [--json] [--strict] [--ca FILE]... MAP...
 *       exit 0 every map valid (with or without warnings), 1 a map has
 *       errors or cannot be read, 2 usage (also: a --ca file that cannot be
 *       read or holds no certificate), 5 with --strict: valid, but warnings
 *   certauthz explain [--json] MAP CERT
 *       exit 0 mapped, 3 denied by a deny rule, 4 unmapped, 1 bad map or
 *       certificate, 2 usage
 *   certauthz diff [--json] MAP-A MAP-B CERT|DIRECTORY...
 *       exit 0 no certificate changes identity, 3 some do, 1 a bad map or
 *       certificate, 2 usage
 *   certauthz compile MAP [OUT]
 *       write MAP's compiled image to OUT (default MAP.img); exit 0 written,
 *       1 map errors or the image cannot be written, 2 usage
 *   certauthz help [check|explain|diff|compile], certauthz --help, --version
 *
 * JSON output (--json): one document on standard output, UTF-8, pretty
 * printed; nothing on standard error (exit 2, usage, prints no JSON).
 * Strings taken from certificates and maps are escaped as JSON requires:
 * '"' and '\' with a backslash, control characters (U+0000-U+001F, U+007F)
 * as \u00XX; valid UTF-8 passes through; a byte that is not part of valid
 * UTF-8 (only possible in file names) becomes U+FFFD.  Schema (every key is
 * always present; T|null means null where stated):
 *
 * check:
 *   { "tool": "certauthz", "version": STRING, "command": "check",
 *     "strict": BOOL,
 *     "ca_files": [                one per --ca, in order
 *       { "file": STRING, "certificates": INT,
 *         "subjects": [STRING|null, ...] } ],     null: subject unusable
 *     "maps": [ {                  one per MAP, in order
 *       "file": STRING, "ok": BOOL,
 *       "errors": [ { "file": STRING, "line": INT|null, "reason": STRING } ],
 *                                  null line: the file as a whole
 *       "rules": null | {          null when the map has errors
 *         "total": INT,            allow + deny
 *         "allow": INT, "exact": INT, "glob": INT, "regex": INT,
 *         "exact_by_type": { "cn": INT, "dn": INT, "email": INT, "dns": INT,
 *                            "uri": INT, "upn": INT, "ip": INT,
 *                            "serial": INT, "sha256": INT, "spki": INT,
 *                            "eku": INT, "ku": INT, "policy": INT,
 *                            "ski": INT, "sid": INT, "altsec": INT },
 *         "deny": INT, "issuer_sections": INT },
 *       "content_sha256": STRING|null,  SHA-256 of the file, lower-case
 *                                  hex (as sha256sum prints it): the map's
 *                                  content hash, as server-status and
 *                                  audit lines show it; null on errors
 *       "load_ms": NUMBER|null,    time certauthz_map_load took
 *       "lint_ms": NUMBER|null,    time the warning checks took
 *       "memory": null | {
 *         "resident_bytes": INT|null,  growth of the process's resident
 *                                  memory from before to after loading
 *                                  (Linux /proc/self/statm; page-granular):
 *                                  about what each httpd process keeps for
 *                                  the map; null where it cannot be read
 *         "peak_rss_kb": INT },    peak resident size of the process so far
 *       "warnings": [ {            in line order
 *         "kind": "unanchored-regex" | "shadowed" | "issuer-without-ca"
 *                 | "lint-incomplete",
 *         "file": STRING, "line": INT,
 *         "selector": STRING,      the rule's selector (type:value / ~regex)
 *         "message": STRING,       as printed after "FILE:LINE: warning: "
 *         "by": null | { "file": STRING, "line": INT, "selector": STRING },
 *                                  shadowed: the earlier rule that wins
 *         "issuer": STRING|null }  issuer-without-ca: the section's DN
 *     ] } ],
 *     "ok": BOOL,                  every map valid (warnings do not count)
 *     "error_count": INT, "warning_count": INT }   over all maps
 *   (the maps are printed as they are checked, the totals after them)
 *
 * explain:
 *   { "tool": "certauthz", "version": STRING, "command": "explain",
 *     "ok": BOOL,                  false: bad map or certificate (exit 1)
 *     "errors": [ { "file": STRING, "line": INT|null, "reason": STRING } ],
 *     "map": STRING,
 *     "certificate": null | {      null when CERT cannot be read
 *       "file": STRING, "format": "PEM" | "DER",
 *       "certificates_in_file": INT,   the first is used (the leaf)
 *       "subject": STRING|null,    RFC 4514; null: unusable (NUL, bad UTF-8)
 *       "issuer": STRING|null,
 *       "not_before": STRING, "not_after": STRING,   YYYY-MM-DDTHH:MM:SSZ
 *       "cn": STRING|null, "cn_count": INT,
 *       "cn_note": STRING|null,    why there is no cn fact
 *       "serial": STRING, "sha256": STRING, "spki": STRING,
 *       "sans": [ { "type": "email"|"dns"|"uri"|"upn"|"ip",
 *                   "value": STRING } ],   by type, then certificate order
 *       "san_extensions": INT,     more than 1: no SAN facts at all
 *       "facts": { "cn": [STRING], "dn": [STRING], "email": [...], "dns",
 *                  "uri", "upn", "ip", "serial", "sha256", "spki",
 *                  "eku", "ku", "policy", "ski", "sid", "altsec" },
 *                                  every value a selector of that type sees
 *       "altsec": [ {              the certificate's Active Directory
 *                                  altSecurityIdentities forms, in order
 *         "form": "issuer-serial" | "ski" | "sha1-certificate"
 *                 | "sha1-key" | "issuer-subject",
 *         "ad": STRING,            the value to write in AD (X509:...)
 *         "map": STRING } ],       the same as a map selector (altsec:"...")
 *       "dropped": INT },          values dropped as unusable
 *     "section": STRING|null,      the map's [issuer] section that applies
 *     "decision": null | {         null when the map or CERT is bad
 *       "outcome": "mapped" | "denied" | "unmapped",
 *       "reason": "mapped" | "deny-rule" | "unmapped" | "unusable-rule",
 *       "unusable": null | "substitution" | "regex-gave-up",
 *       "rule": RULE|null,         the deciding rule
 *       "user": STRING|null, "groups": [STRING]|null },  mapped only
 *     "matches": [ RULE + { "decision": BOOL } ] }  every matching rule in
 *                                  file order, deny rules included
 *   RULE = { "file": STRING, "line": INT, "selector": STRING,
 *            "deny": BOOL, "issuer": STRING|null,
 *            "user": STRING|null, "groups": [STRING]|null }
 *                                  user, groups as written (may hold $N);
 *                                  null for deny rules
 *
 * diff:
 *   { "tool": "certauthz", "version": STRING, "command": "diff",
 *     "map_a": STRING, "map_b": STRING,
 *     "certificates": [ {          each certificate read, in order
 *       "path": STRING,
 *       "change": "same" | "outcome" | "user" | "groups",
 *       "a": ID, "b": ID } ],     its identity under each map
 *     "counts": { "same": INT, "outcome": INT, "user": INT, "groups": INT },
 *     "ok": BOOL,                  false: a bad map or certificate (exit 1)
 *     "errors": [ { "file": STRING, "line": INT|null, "reason": STRING } ] }
 *   ID = { "outcome": "mapped" | "denied" | "unmapped",
 *          "user": STRING|null, "groups": [STRING]|null, "rule": RULE|null }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <apr_allocator.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certauthz.h"
#include "certauthz_altsec.h"
#include "certauthz_dn.h"
#include "certauthz_facts.h"
#include "certauthz_image.h"
#include "certauthz_lint.h"
#include "certauthz_map.h"
#include "certauthz_util.h"

enum {
    EXIT_OK = 0,
    EXIT_ERRORS = 1,
    EXIT_USAGE = 2,
    EXIT_DENIED = 3,
    EXIT_UNMAPPED = 4,
    EXIT_WARNINGS = 5,
    EXIT_CHANGES = 3 /* diff: a certificate changes identity */
};

/* ---- help ---------------------------------------------------------------- */

static const char HELP_USAGE[] =
    "usage: certauthz check [--json] [--strict] [--ca FILE]... MAP...\n"
    "       certauthz explain [--json] MAP CERT\n"
    "       certauthz diff [--json] MAP-A MAP-B CERT|DIRECTORY...\n"
    "       certauthz compile MAP [OUT]\n"
    "       certauthz help [check|explain|diff|compile]\n"
    "       certauthz --help | --version\n";

static const char HELP_INTRO[] =
    "\n"
    "certauthz reads map files and client certificates with the code of\n"
    "mod_certauthz itself: what it says is what the module does.\n";

static const char HELP_CHECK[] =
    "\n"
    "certauthz check [--json] [--strict] [--ca FILE]... MAP...\n"
    "  Load each MAP as the module would.  For a valid map print its rule\n"
    "  counts (allow rules: exact ones by type, globs, regexes; deny rules;\n"
    "  [issuer] sections), its content hash (SHA-256 of the file, as\n"
    "  server-status and audit lines show it), its load time and memory.\n"
    "  For a map with errors\n"
    "  print every error found (at most 100 per map) as FILE:LINE: reason\n"
    "  on standard error.  Then warnings about valid maps, as\n"
    "  FILE:LINE: warning: ... on standard error; they do not change the\n"
    "  exit status (see --strict):\n"
    "    unanchored regex   a regex (allow or deny) that can match part of a\n"
    "        value.  Anchored means: after leading option settings ((?i),\n"
    "        (*UCP)) and a group around the whole pattern ((...), (?:...)),\n"
    "        it starts with ^ or \\A, ends with an unescaped $ or with \\z,\n"
    "        has no | outside a group, and does not use (?m).  \\Z does not\n"
    "        count.  A regex that matches every value (cn~.*) is not\n"
    "        reported.\n"
    "    shadowed           an allow rule that can never give an identity\n"
    "        because an earlier allow rule always matches first: the earlier\n"
    "        rule applies wherever the later one does (it is for every\n"
    "        issuer, or in the same [issuer] section), has the same type, and\n"
    "        matches everything the later one matches: an exact value that an\n"
    "        earlier glob or regex matches (email, dns, upn: only a regex\n"
    "        starting with (?i)), or that an earlier rule for every issuer\n"
    "        has too; a glob inside an earlier glob; the same regex again;\n"
    "        anything after a selector that matches every value (cn:*,\n"
    "        cn~.*, cn~^; dns:* does not: * stays within one label).\n"
    "        Printed as FILE:LINE: warning: shadowed by FILE:LINE: ...\n"
    "        Deny rules are never shadowed and never shadow.\n"
    "    issuer without CA  (with --ca) an [issuer \"DN\"] section whose\n"
    "        DN is the subject of none of the CA certificates given,\n"
    "        compared as the module compares issuers; reported at the\n"
    "        section's first rule.\n"
    "  --ca FILE   CA certificates (PEM, several allowed, or one DER\n"
    "              certificate); repeat for several files.  Give every CA\n"
    "              that issues client certificates, intermediates included.\n"
    "  --strict    exit 5 when every map is valid but there are warnings.\n"
    "  --json      one JSON document on standard output instead (see JSON\n"
    "              below); nothing on standard error.\n"
    "  memory: \"resident\" is the growth of the process's resident memory\n"
    "  from before to after loading the map (/proc/self/statm), about what\n"
    "  every httpd process keeps for it; \"peak RSS\" is the process's peak\n"
    "  resident size so far (loading included).\n"
    "  Exit status: 0 every map valid (warnings or not); 1 a map has errors\n"
    "  or cannot be read; 2 usage, or a --ca file that cannot be read or\n"
    "  holds no certificate; 5 with --strict, valid maps with warnings.\n";

static const char HELP_EXPLAIN[] =
    "\n"
    "certauthz explain [--json] MAP CERT\n"
    "  Print every fact of CERT as the module sees it: subject and issuer DN\n"
    "  (RFC 4514), validity, cn (or why there is none: no CN, several CNs,\n"
    "  an unusable one), each SAN with its selector type (email, dns, uri,\n"
    "  upn, ip), serial, sha256, spki, the extension facts eku (OIDs),\n"
    "  ku (keyUsage names), policy (OIDs), ski (hex), sid (Active\n"
    "  Directory's objectSid, from the NTDS CA security extension or a SAN\n"
    "  URI tag:microsoft.com,2022-09-14:sid:...) and altsec (each Active\n"
    "  Directory altSecurityIdentities form the certificate answers to:\n"
    "  X509:<I>..<SR>.., <SKI>.., <SHA1-PUKEY>.. of the certificate and of\n"
    "  its key, <I>..<S>..; each as AD takes it and as a map selector), and\n"
    "  how many values were dropped as unusable (NUL byte, not UTF-8, a UPN\n"
    "  that is not a UTF8String, several SAN extensions, an extension given\n"
    "  twice or that does not decode, a DN AD cannot write).  Then the\n"
    "  decision of MAP: the deny rule that refuses it, or the rule\n"
    "  (FILE:LINE) that gives user and groups, or that nothing maps it (and\n"
    "  the rule that stopped the search when a regex gave up on a value or\n"
    "  its $N gave an unusable name); then every rule that matches, in file\n"
    "  order, with the deciding one marked.\n"
    "  CERT is PEM or DER.  In a PEM file with several certificates (a chain)\n"
    "  the first one is taken as the leaf; the others are ignored.  explain\n"
    "  does not verify the certificate: it shows what the map would say if\n"
    "  mod_ssl accepted it.  Values are shown with control characters as\n"
    "  \\xHH and, outside DNs, a backslash as \\\\.\n"
    "  --json      one JSON document on standard output instead.\n"
    "  Exit status: 0 mapped; 3 denied by a deny rule; 4 unmapped; 1 bad map\n"
    "  or unreadable certificate; 2 usage.\n";

static const char HELP_DIFF[] =
    "\n"
    "certauthz diff [--json] MAP-A MAP-B CERT|DIRECTORY...\n"
    "  Who changes identity between two maps: each certificate (a file, or\n"
    "  the *.pem, *.crt, *.cer and *.der files of a directory, by name) is\n"
    "  resolved against both maps and printed with what changes -- same,\n"
    "  outcome (mapped, unmapped, denied), user, or groups -- and both\n"
    "  identities with the rules (FILE:LINE) that give them; then the\n"
    "  counts.  The same comparison as CertAuthzShadowMapFile, offline.\n"
    "  Like explain, it does not verify the certificates.\n"
    "  --json      one JSON document on standard output instead.\n"
    "  Exit status: 0 no certificate changes; 3 some change; 1 a bad map or\n"
    "  an unreadable certificate; 2 usage.\n";

static const char HELP_JSON[] =
    "\n"
    "JSON (--json): one document on standard output; strings escaped as\n"
    "JSON requires (control characters as \\u00XX, valid UTF-8 as is, bytes\n"
    "of invalid UTF-8 in file names as U+FFFD).  Every key is always there.\n"
    "  check:   {tool, version, command:\"check\", strict,\n"
    "            ca_files:[{file, certificates, subjects:[DN|null]}],\n"
    "            maps:[{file, ok, errors:[{file, line|null, reason}],\n"
    "              rules:null|{total, allow, exact, glob, regex,\n"
    "                exact_by_type:{cn, dn, email, dns, uri, upn, ip,\n"
    "                               serial, sha256, spki, eku, ku,\n"
    "                               policy, ski, sid, altsec},\n"
    "                deny, issuer_sections},\n"
    "              content_sha256|null, load_ms|null, lint_ms|null,\n"
    "              memory:null|{resident_bytes|null, peak_rss_kb},\n"
    "              warnings:[{kind, file, line, selector, message,\n"
    "                by:null|{file, line, selector}, issuer|null}]}],\n"
    "            ok, error_count, warning_count}\n"
    "            kind: unanchored-regex, shadowed, issuer-without-ca,\n"
    "            lint-incomplete (the shadow check hit its work limit)\n"
    "  explain: {tool, version, command:\"explain\", ok,\n"
    "            errors:[{file, line|null, reason}], map,\n"
    "            certificate:null|{file, format:\"PEM\"|\"DER\",\n"
    "              certificates_in_file, subject|null, issuer|null,\n"
    "              not_before, not_after, cn|null, cn_count, cn_note|null,\n"
    "              serial, sha256, spki, sans:[{type, value}],\n"
    "              san_extensions, facts:{cn:[..], dn:[..], email:[..],\n"
    "              dns, uri, upn, ip, serial, sha256, spki, eku, ku,\n"
    "              policy, ski, sid, altsec},\n"
    "              altsec:[{form, ad, map}], dropped},\n"
    "            form: issuer-serial, ski, sha1-certificate, sha1-key,\n"
    "            issuer-subject\n"
    "            section:DN|null,\n"
    "            decision:null|{outcome:\"mapped\"|\"denied\"|\"unmapped\",\n"
    "              reason:\"mapped\"|\"deny-rule\"|\"unmapped\"\n"
    "                    |\"unusable-rule\",\n"
    "              unusable:null|\"substitution\"|\"regex-gave-up\",\n"
    "              rule:RULE|null, user|null, groups:[..]|null},\n"
    "            matches:[RULE + {decision: true for the deciding rule}]}\n"
    "  diff:    {tool, version, command:\"diff\", map_a, map_b,\n"
    "            certificates:[{path, change:\"same\"|\"outcome\"|\"user\"\n"
    "              |\"groups\", a:ID, b:ID}],\n"
    "            counts:{same, outcome, user, groups}, ok,\n"
    "            errors:[{file, line|null, reason}]}\n"
    "    ID = {outcome, user|null, groups:[..]|null, rule:RULE|null}\n"
    "    RULE = {file, line, selector, deny, issuer|null, user|null,\n"
    "            groups:[..]|null}  (user and groups as written, with $N)\n";

static const char HELP_COMPILE[] =
    "\n"
    "certauthz compile MAP [OUT]\n"
    "  Load MAP as the module would and write its compiled image to OUT\n"
    "  (default: MAP.img), with MAP's permissions, to a temporary file\n"
    "  renamed into place.  mod_certauthz takes MAP.img instead of parsing\n"
    "  MAP when it is a valid image of MAP's present content (same SHA-256)\n"
    "  written by the same build; otherwise it logs why and parses MAP.\n"
    "  Prints the image's path, rules, content hash and size.  Errors of\n"
    "  MAP as FILE:LINE: reason on standard error (nothing is written).\n";

static const char HELP_EXIT[] =
    "\n"
    "Exit status:  0       1             2      3       4         5\n"
    "  check       valid   map errors    usage                    --strict\n"
    "                                                             warnings\n"
    "  explain     mapped  bad map/cert  usage  denied  unmapped\n"
    "  diff        none    bad map/cert  usage  some\n"
    "              change                       change\n"
    "  compile     written map errors,   usage\n"
    "                      not written\n"
    "\n"
    "See certauthz(1) and the mod_certauthz README.\n";

static void help(FILE *out, const char *topic)
{
    fputs(HELP_USAGE, out);
    if (!topic || !strcmp(topic, "all")) {
        fputs(HELP_INTRO, out);
        fputs(HELP_CHECK, out);
        fputs(HELP_EXPLAIN, out);
        fputs(HELP_DIFF, out);
        fputs(HELP_COMPILE, out);
        fputs(HELP_JSON, out);
        fputs(HELP_EXIT, out);
    }
    else if (!strcmp(topic, "check")) {
        fputs(HELP_CHECK, out);
        fputs(HELP_JSON, out);
    }
    else if (!strcmp(topic, "explain")) {
        fputs(HELP_EXPLAIN, out);
        fputs(HELP_JSON, out);
    }
    else if (!strcmp(topic, "diff")) {
        fputs(HELP_DIFF, out);
        fputs(HELP_JSON, out);
    }
    else if (!strcmp(topic, "compile")) {
        fputs(HELP_COMPILE, out);
    }
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("certauthz: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    fputs(HELP_USAGE, stderr);
    fputs("Try 'certauthz --help'.\n", stderr);
    return EXIT_USAGE;
}

/* ---- text for people ----------------------------------------------------- */

/* Safe to print on a terminal: control characters (C0, DEL, C1) and bidi
 * overrides as \xHH / \uHHHH, bytes of invalid UTF-8 as \xHH; with
 * dbl_backslash a backslash as \\ (so that the escapes stay unambiguous;
 * DN text already escapes its backslashes, regexes need theirs). */
static const char *show(const char *s, int dbl_backslash, apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_size_t len, i = 0;
    char *out, *o;

    if (!s)
        return "(null)";
    len = strlen(s);
    o = out = apr_palloc(p, len * 4 + 1);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
            i++;
            continue;
        }
        if (c == '\\' && dbl_backslash) {
            *o++ = '\\';
            *o++ = '\\';
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = (char)c;
            i++;
            continue;
        }
        {
            apr_size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            const unsigned char *u = (const unsigned char *)s + i;
            if (n == 1 || i + n > len || !certauthz_utf8_valid(s + i, n)) {
                *o++ = '\\';
                *o++ = 'x';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
                i++;
                continue;
            }
            if ((n == 2 && u[0] == 0xC2 && u[1] < 0xA0) /* C1 controls */
                || (n == 3 && u[0] == 0xE2 && u[1] == 0x80 && u[2] >= 0xAA
                    && u[2] <= 0xAE) /* U+202A-202E */
                || (n == 3 && u[0] == 0xE2 && u[1] == 0x81 && u[2] >= 0xA6
                    && u[2] <= 0xA9)) { /* U+2066-2069 */
                unsigned cp =
                    n == 2 ? u[1]
                           : (unsigned)(((u[0] & 0x0F) << 12)
                                        | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F));
                o += sprintf(o, "\\u%04X", cp);
                i += n;
                continue;
            }
            memcpy(o, s + i, n);
            o += n;
            i += n;
        }
    }
    *o = '\0';
    return out;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    apr_size_t len, i = 0;

    if (!s) {
        fputs("null", f);
        return;
    }
    len = strlen(s);
    fputc('"', f);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        }
        else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
            i++;
        }
        else if (c < 0x80) {
            fputc(c, f);
            i++;
        }
        else {
            apr_size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (n > 1 && i + n <= len && certauthz_utf8_valid(s + i, n)) {
                fwrite(s + i, 1, n, f);
                i += n;
            }
            else {
                fputs("\\ufffd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

/* A small streaming writer: pretty printed, commas handled. */
#define JW_MAXDEPTH 16
typedef struct {
    FILE *f;
    int depth;
    int count[JW_MAXDEPTH + 1];
} jw_t;

static void jw_item(jw_t *j, const char *key)
{
    if (j->depth > 0) {
        fputs(j->count[j->depth]++ ? ",\n" : "\n", j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    if (key) {
        json_str(j->f, key);
        fputs(": ", j->f);
    }
}

static void jw_open(jw_t *j, const char *key, char c)
{
    jw_item(j, key);
    fputc(c, j->f);
    if (j->depth < JW_MAXDEPTH)
        j->count[++j->depth] = 0;
}

static void jw_close(jw_t *j, char c)
{
    if (j->count[j->depth]) {
        fputc('\n', j->f);
        for (int i = 1; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(c, j->f);
    if (--j->depth == 0)
        fputc('\n', j->f);
}

static void jw_str(jw_t *j, const char *key, const char *v)
{
    jw_item(j, key);
    json_str(j->f, v);
}

static void jw_int(jw_t *j, const char *key, long long v)
{
    jw_item(j, key);
    fprintf(j->f, "%lld", v);
}

static void jw_bool(jw_t *j, const char *key, int v)
{
    jw_item(j, key);
    fputs(v ? "true" : "false", j->f);
}

static void jw_null(jw_t *j, const char *key)
{
    jw_item(j, key);
    fputs("null", j->f);
}

static void jw_ms(jw_t *j, const char *key, double v)
{
    jw_item(j, key);
    fprintf(j->f, "%.3f", v);
}

static void jw_head(jw_t *j, const char *command)
{
    jw_open(j, NULL, '{');
    jw_str(j, "tool", "certauthz");
    jw_str(j, "version", CERTAUTHZ_VERSION);
    jw_str(j, "command", command);
}

static void jw_errors(jw_t *j, const char *key, apr_array_header_t *errs)
{
    jw_open(j, key, '[');
    for (int i = 0; errs && i < errs->nelts; i++) {
        const certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
        jw_open(j, NULL, '{');
        jw_str(j, "file", e->file);
        if (e->line)
            jw_int(j, "line", e->line);
        else
            jw_null(j, "line");
        jw_str(j, "reason", e->reason);
        jw_close(j, '}');
    }
    jw_close(j, ']');
}

/* ---- shared helpers ------------------------------------------------------ */

static void print_errors(apr_array_header_t *errs, apr_pool_t *p)
{
    for (int i = 0; i < errs->nelts; i++) {
        const certauthz_error_t *e = &APR_ARRAY_IDX(errs, i, certauthz_error_t);
        fprintf(stderr, "%s\n", show(certauthz_error_text(e, p), 0, p));
    }
}

static void push_error(apr_array_header_t *errs, const char *file,
                       unsigned line, const char *reason)
{
    certauthz_error_t *e = apr_array_push(errs);
    e->file = file;
    e->line = line;
    e->reason = reason;
}

/* Read a whole file; NULL with *why on failure. */
static char *slurp(const char *path, apr_size_t *len, const char **why,
                   apr_pool_t *p)
{
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    char *buf, msg[256];

    rv = apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, fd);
    if (rv != APR_SUCCESS) {
        *why = apr_pstrdup(p, apr_strerror(rv, msg, sizeof(msg)));
        return NULL;
    }
    if (fi.filetype == APR_DIR) {
        apr_file_close(fd);
        *why = "is a directory, not a file";
        return NULL;
    }
    buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    rv = apr_file_read_full(fd, buf, (apr_size_t)fi.size, len);
    apr_file_close(fd);
    if (rv != APR_SUCCESS && *len != (apr_size_t)fi.size) {
        *why = apr_pstrdup(p, apr_strerror(rv, msg, sizeof(msg)));
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

static int is_pem(const char *buf, apr_size_t len)
{
    return len >= 10 && memmem(buf, len, "-----BEGIN", 10) != NULL;
}

/* Every certificate of a PEM buffer (or the one DER certificate). */
static apr_array_header_t *read_certs(const char *buf, apr_size_t len,
                                      apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(X509 *));

    if (len > 0x7fffffff)
        return a;
    if (is_pem(buf, len)) {
        BIO *bio = BIO_new_mem_buf(buf, (int)len);
        X509 *x;
        while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
            APR_ARRAY_PUSH(a, X509 *) = x;
        BIO_free(bio);
    }
    else {
        const unsigned char *q = (const unsigned char *)buf;
        X509 *x = d2i_X509(NULL, &q, (long)len);
        if (x)
            APR_ARRAY_PUSH(a, X509 *) = x;
    }
    ERR_clear_error();
    return a;
}

static void free_certs(apr_array_header_t *a)
{
    for (int i = 0; i < a->nelts; i++)
        X509_free(APR_ARRAY_IDX(a, i, X509 *));
    a->nelts = 0;
}

/* Resident memory of the process in bytes (Linux /proc/self/statm), or -1. */
static long long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    int n;

    if (!f)
        return -1;
    n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2 || page <= 0)
        return -1;
    return (long long)(resident * (unsigned long long)page);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ru.ru_maxrss; /* kB on Linux */
}

static const char *rule_selector(const certauthz_map_t *m,
                                 const certauthz_rule_t *r, apr_pool_t *p)
{
    certauthz_selector_t tmp;
    return certauthz_selector_text(certauthz_rule_selector(m, r, &tmp), p);
}

/* ---- check --------------------------------------------------------------- */

typedef struct {
    const char *file;
    int ncerts;
    apr_array_header_t *subjects; /* const certauthz_dn_t * (NULL: unusable) */
} ca_file_t;

typedef struct {
    const char *file;
    int ok;
    apr_array_header_t *errs;
    certauthz_map_t *map;
    certauthz_map_stats_t st;
    double load_ms, lint_ms;
    long long resident;
    long rss_kb;
    apr_array_header_t *warnings;
    apr_pool_t *pool; /* owns map, errs, warnings */
} checked_t;

static int load_cas(apr_array_header_t *files, apr_array_header_t *cas,
                    const char *path, apr_pool_t *p)
{
    const char *why;
    apr_size_t len;
    char *buf = slurp(path, &len, &why, p);
    apr_array_header_t *x;
    ca_file_t *cf;

    if (!buf) {
        fprintf(stderr, "certauthz: --ca %s: %s\n", show(path, 0, p), why);
        return -1;
    }
    x = read_certs(buf, len, p);
    if (!x->nelts) {
        fprintf(stderr, "certauthz: --ca %s: no PEM or DER certificate\n",
                show(path, 0, p));
        return -1;
    }
    cf = apr_array_push(files);
    cf->file = path;
    cf->ncerts = x->nelts;
    cf->subjects = apr_array_make(p, x->nelts, sizeof(certauthz_dn_t *));
    for (int i = 0; i < x->nelts; i++) {
        certauthz_dn_t *dn = NULL;
        if (certauthz_dn_from_x509(
                &dn, X509_get_subject_name(APR_ARRAY_IDX(x, i, X509 *)), p)
            != APR_SUCCESS)
            dn = NULL;
        APR_ARRAY_PUSH(cf->subjects, certauthz_dn_t *) = dn;
        if (dn)
            APR_ARRAY_PUSH(cas, const certauthz_dn_t *) = dn;
    }
    free_certs(x);
    return 0;
}

/* Load a small map of every kind once and drop it, so that the first real
 * map's memory does not include code pages used for the first time. */
static void warm_up(void)
{
    static const char text[] = "cn~^w(x)$ u-$1 g\n"
                               "email:w@example.com u\n"
                               "dns:*.example.com u\n"
                               "dn:\"CN=w,O=x\" u\n"
                               "deny serial:01\n"
                               "[issuer \"CN=w\"]\n"
                               "uri:x:y u\n";
    apr_pool_t *p;
    certauthz_map_t *m;
    apr_array_header_t *errs, *warn;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return;
    if (certauthz_map_parse(&m, "warm-up", text, sizeof(text) - 1, &errs, p)
        == APR_SUCCESS)
        certauthz_lint(&warn, m, NULL, p);
    apr_pool_destroy(p);
}

static void check_one(checked_t *c, const char *path, int use_cas,
                      apr_array_header_t *cas)
{
    apr_allocator_t *alloc = NULL;
    apr_time_t t0;
    long long h0;
    certauthz_lint_opts_t o;

    memset(c, 0, sizeof(*c));
    c->file = path;
    /* a pool with an allocator of its own that returns freed memory at
     * once, so that the memory measured is what the map holds */
    if (apr_allocator_create(&alloc) != APR_SUCCESS
        || apr_pool_create_ex(&c->pool, NULL, NULL, alloc) != APR_SUCCESS) {
        fputs("certauthz: out of memory\n", stderr);
        exit(EXIT_ERRORS);
    }
    apr_allocator_max_free_set(alloc, 1);
    apr_allocator_owner_set(alloc, c->pool);

    h0 = resident_bytes();
    t0 = apr_time_now();
    c->ok = certauthz_map_load(&c->map, path, &c->errs, c->pool) == APR_SUCCESS;
    c->load_ms = (double)(apr_time_now() - t0) / 1000.0;
    c->resident = h0 >= 0 ? resident_bytes() - h0 : -1;
    if (h0 >= 0 && c->resident < 0)
        c->resident = 0;
    c->rss_kb = peak_rss_kb();
    if (!c->ok) {
        if (!c->errs) {
            c->errs = apr_array_make(c->pool, 1, sizeof(certauthz_error_t));
            push_error(c->errs, path, 0, "cannot be loaded");
        }
        return;
    }
    certauthz_map_stats(c->map, &c->st);
    memset(&o, 0, sizeof(o));
    o.check_issuers = use_cas;
    o.ncas = cas->nelts;
    o.cas = (const certauthz_dn_t *const *)cas->elts;
    t0 = apr_time_now();
    if (certauthz_lint(&c->warnings, c->map, &o, c->pool) != APR_SUCCESS)
        c->warnings = apr_array_make(c->pool, 1, sizeof(certauthz_lint_t));
    c->lint_ms = (double)(apr_time_now() - t0) / 1000.0;
}

static void check_print_text(const checked_t *c, apr_pool_t *p)
{
    const certauthz_map_stats_t *st = &c->st;

    if (!c->ok) {
        print_errors(c->errs, p);
        return;
    }
    printf("%s: OK: %s; loaded in %.3f ms\n", show(c->file, 0, p),
           certauthz_map_summary(st, p), c->load_ms);
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        if (st->exact[t])
            printf("  exact %-6s %u\n",
                   certauthz_type_name((certauthz_type_e)t), st->exact[t]);
    if (c->resident >= 0)
        printf("  memory    %lld bytes resident held by the map (RSS growth "
               "while loading); peak RSS of the process %ld kB\n",
               c->resident, c->rss_kb);
    else
        printf("  memory    peak RSS of the process %ld kB\n", c->rss_kb);
    printf("  content   sha256 %s\n", certauthz_map_sha256(c->map));
    printf("  warnings  %d\n", c->warnings->nelts);
    fflush(stdout);
    for (int i = 0; i < c->warnings->nelts; i++) {
        const certauthz_lint_t *w =
            &APR_ARRAY_IDX(c->warnings, i, certauthz_lint_t);
        if (w->rule)
            fprintf(stderr, "%s: warning: %s\n",
                    show(certauthz_rule_where(c->map, w->rule, p), 0, p),
                    show(w->reason, 0, p));
        else
            fprintf(stderr, "%s: warning: %s\n", show(c->file, 0, p),
                    show(w->reason, 0, p));
    }
}

static void check_print_json(jw_t *j, const checked_t *c, apr_pool_t *p)
{
    const certauthz_map_stats_t *st = &c->st;

    jw_open(j, NULL, '{');
    jw_str(j, "file", c->file);
    jw_bool(j, "ok", c->ok);
    jw_errors(j, "errors", c->ok ? NULL : c->errs);
    if (!c->ok) {
        jw_null(j, "rules");
        jw_null(j, "content_sha256");
        jw_null(j, "load_ms");
        jw_null(j, "lint_ms");
        jw_null(j, "memory");
        jw_open(j, "warnings", '[');
        jw_close(j, ']');
        jw_close(j, '}');
        return;
    }
    jw_open(j, "rules", '{');
    jw_int(j, "total", certauthz_map_nrules(c->map));
    jw_int(j, "allow", st->rules);
    jw_int(j, "exact", st->exact_all);
    jw_int(j, "glob", st->globs);
    jw_int(j, "regex", st->regexes);
    jw_open(j, "exact_by_type", '{');
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++)
        jw_int(j, certauthz_type_name((certauthz_type_e)t), st->exact[t]);
    jw_close(j, '}');
    jw_int(j, "deny", st->deny);
    jw_int(j, "issuer_sections", st->sections);
    jw_close(j, '}');
    jw_str(j, "content_sha256", certauthz_map_sha256(c->map));
    jw_ms(j, "load_ms", c->load_ms);
    jw_ms(j, "lint_ms", c->lint_ms);
    jw_open(j, "memory", '{');
    if (c->resident >= 0)
        jw_int(j, "resident_bytes", c->resident);
    else
        jw_null(j, "resident_bytes");
    jw_int(j, "peak_rss_kb", c->rss_kb);
    jw_close(j, '}');
    jw_open(j, "warnings", '[');
    for (int i = 0; i < c->warnings->nelts; i++) {
        const certauthz_lint_t *w =
            &APR_ARRAY_IDX(c->warnings, i, certauthz_lint_t);
        jw_open(j, NULL, '{');
        jw_str(j, "kind", certauthz_lint_kind_name(w->kind));
        jw_str(j, "file",
               w->rule ? certauthz_rule_file(c->map, w->rule) : c->file);
        if (w->rule) {
            jw_int(j, "line", certauthz_rule_line(w->rule));
            jw_str(j, "selector", rule_selector(c->map, w->rule, p));
        }
        else {
            jw_null(j, "line");
            jw_null(j, "selector");
        }
        jw_str(j, "message", w->reason);
        if (w->by) {
            jw_open(j, "by", '{');
            jw_str(j, "file", certauthz_rule_file(c->map, w->by));
            jw_int(j, "line", certauthz_rule_line(w->by));
            jw_str(j, "selector", rule_selector(c->map, w->by, p));
            jw_close(j, '}');
        }
        else
            jw_null(j, "by");
        jw_str(j, "issuer", w->issuer ? certauthz_dn_text(w->issuer) : NULL);
        jw_close(j, '}');
    }
    jw_close(j, ']');
    jw_close(j, '}');
}

static int cmd_check(int argc, char **argv, apr_pool_t *p)
{
    int json = 0, strict = 0, use_cas = 0, end = 0;
    int status = EXIT_OK, errors = 0, warnings = 0;
    apr_array_header_t *maps = apr_array_make(p, 4, sizeof(char *));
    apr_array_header_t *ca_paths = apr_array_make(p, 2, sizeof(char *));
    apr_array_header_t *ca_files = apr_array_make(p, 2, sizeof(ca_file_t));
    apr_array_header_t *cas = apr_array_make(p, 4, sizeof(certauthz_dn_t *));
    jw_t j = {stdout, 0, {0}};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (end || a[0] != '-' || !a[1]) {
            APR_ARRAY_PUSH(maps, const char *) = a;
            continue;
        }
        if (!strcmp(a, "--"))
            end = 1;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--strict"))
            strict = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout, "check");
            return EXIT_OK;
        }
        else if (!strcmp(a, "--ca")) {
            if (i + 1 >= argc)
                return usage_error("%s needs a FILE", a);
            APR_ARRAY_PUSH(ca_paths, const char *) = argv[++i];
        }
        else if (!strncmp(a, "--ca=", 5) && a[5])
            APR_ARRAY_PUSH(ca_paths, const char *) = a + 5;
        else
            return usage_error("check: unknown option '%s'", show(a, 1, p));
    }
    if (!maps->nelts)
        return usage_error("%s", "check needs at least one MAP");
    for (int i = 0; i < ca_paths->nelts; i++) {
        use_cas = 1;
        if (load_cas(ca_files, cas, APR_ARRAY_IDX(ca_paths, i, const char *), p)
            < 0)
            return EXIT_USAGE;
    }

    warm_up();
    if (json) {
        /* maps are printed as they are checked (one in memory at a time);
         * the totals follow them */
        jw_head(&j, "check");
        jw_bool(&j, "strict", strict);
        jw_open(&j, "ca_files", '[');
        for (int i = 0; i < ca_files->nelts; i++) {
            const ca_file_t *cf = &APR_ARRAY_IDX(ca_files, i, ca_file_t);
            jw_open(&j, NULL, '{');
            jw_str(&j, "file", cf->file);
            jw_int(&j, "certificates", cf->ncerts);
            jw_open(&j, "subjects", '[');
            for (int k = 0; k < cf->subjects->nelts; k++) {
                const certauthz_dn_t *dn =
                    APR_ARRAY_IDX(cf->subjects, k, const certauthz_dn_t *);
                jw_str(&j, NULL, dn ? certauthz_dn_text(dn) : NULL);
            }
            jw_close(&j, ']');
            jw_close(&j, '}');
        }
        jw_close(&j, ']');
        jw_open(&j, "maps", '[');
    }
    for (int i = 0; i < maps->nelts; i++) {
        checked_t res;
        check_one(&res, APR_ARRAY_IDX(maps, i, const char *), use_cas, cas);
        if (!res.ok) {
            errors += res.errs->nelts;
            status = EXIT_ERRORS;
        }
        else
            warnings += res.warnings->nelts;
        if (json)
            check_print_json(&j, &res, p);
        else
            check_print_text(&res, p);
        apr_pool_destroy(res.pool);
    }
    if (status == EXIT_OK && strict && warnings)
        status = EXIT_WARNINGS;
    if (json) {
        jw_close(&j, ']');
        jw_bool(&j, "ok", status != EXIT_ERRORS);
        jw_int(&j, "error_count", errors);
        jw_int(&j, "warning_count", warnings);
        jw_close(&j, '}');
    }
    return status;
}

/* ---- explain ------------------------------------------------------------- */

/* Load MAP for explain and diff: 1, or 0 with its errors added to errs. */
static int load_map(certauthz_map_t **map, const char *path,
                    apr_array_header_t *errs, apr_pool_t *p)
{
    apr_array_header_t *maperrs = NULL;

    if (certauthz_map_load(map, path, &maperrs, p) == APR_SUCCESS)
        return 1;
    if (maperrs)
        apr_array_cat(errs, maperrs);
    else
        push_error(errs, path, 0, "cannot be loaded");
    return 0;
}

typedef struct {
    apr_array_header_t *rules; /* const certauthz_rule_t * */
} matches_t;

static int collect_match(void *baton, const certauthz_rule_t *rule)
{
    matches_t *m = baton;
    APR_ARRAY_PUSH(m->rules, const certauthz_rule_t *) = rule;
    return 0;
}

typedef struct {
    const char *path;
    const char *format;
    int ncerts;
    int san_exts;
    certauthz_facts_t *f;
} cert_t;

/* Read CERT; on failure add to errs and return -1. */
static int read_cert(cert_t *c, const char *path, apr_array_header_t *errs,
                     apr_pool_t *p)
{
    const char *why;
    apr_size_t len;
    char *buf = slurp(path, &len, &why, p);
    apr_array_header_t *all;
    X509 *x;
    int loc = -1;

    memset(c, 0, sizeof(*c));
    c->path = path;
    if (!buf) {
        push_error(errs, path, 0, why);
        return -1;
    }
    c->format = is_pem(buf, len) ? "PEM" : "DER";
    all = read_certs(buf, len, p);
    c->ncerts = all->nelts;
    free_certs(all);
    /* the leaf exactly as the core reads it */
    if (certauthz_x509_read(&x, buf, len) != APR_SUCCESS) {
        ERR_clear_error();
        push_error(errs, path, 0, "not a PEM or DER certificate");
        return -1;
    }
    while ((loc = X509_get_ext_by_NID(x, NID_subject_alt_name, loc)) >= 0)
        c->san_exts++;
    if (certauthz_facts_from_x509(&c->f, x, p) != APR_SUCCESS) {
        X509_free(x);
        push_error(errs, path, 0, "cannot read the certificate's facts");
        return -1;
    }
    X509_free(x);
    return 0;
}

static const char *cn_note(const certauthz_facts_t *f)
{
    if (f->of[CERTAUTHZ_CN].n)
        return NULL;
    if (f->cn_count == 0)
        return "the subject has no CN";
    if (f->cn_count > 1)
        return "the subject has several CNs";
    return "the CN is unusable (NUL byte, not UTF-8)";
}

static const certauthz_dn_t *applicable_section(const certauthz_map_t *map,
                                                const certauthz_facts_t *f)
{
    unsigned n = certauthz_map_nrules(map);
    if (!f->issuer)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        const certauthz_dn_t *dn =
            certauthz_rule_issuer(map, certauthz_map_rule(map, i));
        if (dn && certauthz_dn_same_issuer(dn, f->issuer))
            return dn;
    }
    return NULL;
}

static const char *unusable_kind(const certauthz_map_t *map,
                                 const certauthz_identity_t *id,
                                 const certauthz_facts_t *f)
{
    certauthz_selector_t tmp;

    if (id->outcome != CERTAUTHZ_UNMAPPED || !id->rule)
        return NULL;
    return certauthz_selector_match(
               certauthz_rule_selector(map, id->rule, &tmp), f, NULL)
                   < 0
               ? "regex-gave-up"
               : "substitution";
}

static void print_rule_text(const certauthz_map_t *map,
                            const certauthz_rule_t *r, int decides,
                            apr_pool_t *p)
{
    const certauthz_dn_t *iss = certauthz_rule_issuer(map, r);
    const char *const *groups;
    int ng = certauthz_rule_groups(map, r, &groups, p);

    printf("  %s  %s%s", show(certauthz_rule_where(map, r, p), 0, p),
           certauthz_rule_is_deny(r) ? "deny " : "",
           show(rule_selector(map, r, p), 0, p));
    if (iss)
        printf("  [issuer \"%s\"]", show(certauthz_dn_text(iss), 0, p));
    if (!certauthz_rule_is_deny(r)) {
        printf("  -> user=%s", show(certauthz_rule_user(map, r), 1, p));
        for (int g = 0; g < ng; g++)
            printf("%s%s", g ? "," : " groups=", show(groups[g], 1, p));
    }
    printf("%s\n", decides ? "  (decision)" : "");
}

static void json_rule(jw_t *j, const char *key, const certauthz_map_t *map,
                      const certauthz_rule_t *r, int with_decision, int decides,
                      apr_pool_t *p)
{
    const certauthz_dn_t *iss = certauthz_rule_issuer(map, r);
    const char *const *groups;
    int ng = certauthz_rule_groups(map, r, &groups, p);

    jw_open(j, key, '{');
    jw_str(j, "file", certauthz_rule_file(map, r));
    jw_int(j, "line", certauthz_rule_line(r));
    jw_str(j, "selector", rule_selector(map, r, p));
    jw_bool(j, "deny", certauthz_rule_is_deny(r));
    jw_str(j, "issuer", iss ? certauthz_dn_text(iss) : NULL);
    if (certauthz_rule_is_deny(r)) {
        jw_null(j, "user");
        jw_null(j, "groups");
    }
    else {
        jw_str(j, "user", certauthz_rule_user(map, r));
        jw_open(j, "groups", '[');
        for (int g = 0; g < ng; g++)
            jw_str(j, NULL, groups[g]);
        jw_close(j, ']');
    }
    if (with_decision)
        jw_bool(j, "decision", decides);
    jw_close(j, '}');
}

/* What an altsec form of a certificate is, from its tag (the first
 * <SHA1-PUKEY> of a certificate is its thumbprint, the second its key's
 * hash: certauthz_altsec_of_x509's order): a description, or the JSON
 * name when json is set. */
static const char *altsec_kind(const char *text, int *sha1_seen, int json)
{
    static const char *const kinds[][2] = {
        {"issuer and serial number (strong)", "issuer-serial"},
        {"subject key identifier (strong)", "ski"},
        {"SHA-1 of the certificate, the Windows thumbprint (strong)",
         "sha1-certificate"},
        {"SHA-1 of the public key, as Samba's KDC has it (strong)", "sha1-key"},
        {"issuer and subject (weak in AD since KB5014754)", "issuer-subject"}};
    int k;

    switch (certauthz_altsec_form(text)) {
    case CERTAUTHZ_ALTSEC_ISSUER_SERIAL:
        k = 0;
        break;
    case CERTAUTHZ_ALTSEC_SKI:
        k = 1;
        break;
    case CERTAUTHZ_ALTSEC_SHA1:
        k = (*sha1_seen)++ ? 3 : 2;
        break;
    default:
        k = 4;
    }
    return kinds[k][json];
}

static void explain_text_cert(const cert_t *c, apr_pool_t *p)
{
    const certauthz_facts_t *f = c->f;

    printf("certificate %s\n", show(c->path, 0, p));
    if (c->ncerts > 1)
        printf("  format    %s, %d certificates: the first one is taken as "
               "the leaf\n",
               c->format, c->ncerts);
    else
        printf("  format    %s\n", c->format);
    printf("  subject   %s\n",
           f->subject ? show(certauthz_dn_text(f->subject), 0, p)
                      : "(unusable: a value is not UTF-8 or has a NUL byte; "
                        "no dn fact)");
    printf("  issuer    %s\n",
           f->issuer ? show(certauthz_dn_text(f->issuer), 0, p)
                     : "(unusable: a value is not UTF-8 or has a NUL byte; "
                       "no [issuer] section applies)");
    printf("  validity  %s .. %s\n", f->not_before, f->not_after);
    if (cn_note(f))
        printf("  cn        (none: %s)\n", cn_note(f));
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        int sha1_seen = 0;
        if (t == CERTAUTHZ_DN)
            continue;
        for (int i = 0; i < f->of[t].n; i++) {
            const char *text = f->of[t].v[i].text;
            printf("  %-9s %s\n", certauthz_type_name((certauthz_type_e)t),
                   show(text, t != CERTAUTHZ_ALTSEC, p));
            if (t == CERTAUTHZ_ALTSEC)
                printf("            %s\n            in a map: %s\n",
                       altsec_kind(text, &sha1_seen, 0),
                       show(certauthz_altsec_selector(text, p), 0, p));
        }
    }
    if (c->san_exts > 1)
        printf("  (%d subjectAltName extensions: no SAN facts)\n", c->san_exts);
    if (f->dropped)
        printf("  (%d value%s dropped as unusable: NUL byte, not UTF-8, UPN "
               "not a UTF8String, several SAN extensions, an extension "
               "twice or undecodable, a DN AD cannot write; never "
               "matched)\n",
               f->dropped, f->dropped == 1 ? "" : "s");
}

static void explain_json_cert(jw_t *j, const cert_t *c, apr_pool_t *p)
{
    const certauthz_facts_t *f = c->f;
    static const certauthz_type_e san_types[] = {CERTAUTHZ_EMAIL, CERTAUTHZ_DNS,
                                                 CERTAUTHZ_URI, CERTAUTHZ_UPN,
                                                 CERTAUTHZ_IP};

    jw_open(j, "certificate", '{');
    jw_str(j, "file", c->path);
    jw_str(j, "format", c->format);
    jw_int(j, "certificates_in_file", c->ncerts);
    jw_str(j, "subject", f->subject ? certauthz_dn_text(f->subject) : NULL);
    jw_str(j, "issuer", f->issuer ? certauthz_dn_text(f->issuer) : NULL);
    jw_str(j, "not_before", f->not_before);
    jw_str(j, "not_after", f->not_after);
    jw_str(j, "cn",
           f->of[CERTAUTHZ_CN].n ? f->of[CERTAUTHZ_CN].v[0].text : NULL);
    jw_int(j, "cn_count", f->cn_count);
    jw_str(j, "cn_note", cn_note(f));
    jw_str(j, "serial",
           f->of[CERTAUTHZ_SERIAL].n ? f->of[CERTAUTHZ_SERIAL].v[0].text
                                     : NULL);
    jw_str(j, "sha256",
           f->of[CERTAUTHZ_SHA256].n ? f->of[CERTAUTHZ_SHA256].v[0].text
                                     : NULL);
    jw_str(j, "spki",
           f->of[CERTAUTHZ_SPKI].n ? f->of[CERTAUTHZ_SPKI].v[0].text : NULL);
    jw_open(j, "sans", '[');
    for (size_t k = 0; k < sizeof(san_types) / sizeof(san_types[0]); k++) {
        certauthz_type_e t = san_types[k];
        for (int i = 0; i < f->of[t].n; i++) {
            jw_open(j, NULL, '{');
            jw_str(j, "type", certauthz_type_name(t));
            jw_str(j, "value", f->of[t].v[i].text);
            jw_close(j, '}');
        }
    }
    jw_close(j, ']');
    jw_int(j, "san_extensions", c->san_exts);
    jw_open(j, "facts", '{');
    for (int t = 0; t < CERTAUTHZ_NTYPES; t++) {
        jw_open(j, certauthz_type_name((certauthz_type_e)t), '[');
        for (int i = 0; i < f->of[t].n; i++)
            jw_str(j, NULL, f->of[t].v[i].text);
        jw_close(j, ']');
    }
    jw_close(j, '}');
    jw_open(j, "altsec", '[');
    {
        int sha1_seen = 0;
        const certauthz_values_t *a = &f->of[CERTAUTHZ_ALTSEC];
        for (int i = 0; i < a->n; i++) {
            jw_open(j, NULL, '{');
            jw_str(j, "form", altsec_kind(a->v[i].text, &sha1_seen, 1));
            jw_str(j, "ad", a->v[i].text);
            jw_str(j, "map", certauthz_altsec_selector(a->v[i].text, p));
            jw_close(j, '}');
        }
    }
    jw_close(j, ']');
    jw_int(j, "dropped", f->dropped);
    jw_close(j, '}');
}

static int cmd_explain(int argc, char **argv, apr_pool_t *p)
{
    int json = 0, end = 0, status;
    const char *pos[2];
    int npos = 0;
    certauthz_map_t *map = NULL;
    apr_array_header_t *errs = apr_array_make(p, 4, sizeof(certauthz_error_t));
    cert_t cert;
    int cert_ok, map_ok;
    certauthz_identity_t id;
    matches_t m;
    const certauthz_dn_t *section = NULL;
    jw_t j = {stdout, 0, {0}};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (end || a[0] != '-' || !a[1]) {
            if (npos == 2)
                return usage_error("%s", "explain takes one MAP and one CERT");
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--"))
            end = 1;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout, "explain");
            return EXIT_OK;
        }
        else
            return usage_error("explain: unknown option '%s'", show(a, 1, p));
    }
    if (npos != 2)
        return usage_error("%s", "explain takes one MAP and one CERT");

    map_ok = load_map(&map, pos[0], errs, p);
    cert_ok = read_cert(&cert, pos[1], errs, p) == 0;

    memset(&id, 0, sizeof(id));
    m.rules = apr_array_make(p, 4, sizeof(certauthz_rule_t *));
    if (map_ok && cert_ok) {
        certauthz_map_resolve(&id, map, cert.f, p);
        certauthz_map_each_match(map, cert.f, collect_match, &m);
        section = applicable_section(map, cert.f);
        status = id.outcome == CERTAUTHZ_MAPPED   ? EXIT_OK
                 : id.outcome == CERTAUTHZ_DENIED ? EXIT_DENIED
                                                  : EXIT_UNMAPPED;
    }
    else
        status = EXIT_ERRORS;

    if (json) {
        jw_head(&j, "explain");
        jw_bool(&j, "ok", status != EXIT_ERRORS);
        jw_errors(&j, "errors", errs);
        jw_str(&j, "map", pos[0]);
        if (cert_ok)
            explain_json_cert(&j, &cert, p);
        else
            jw_null(&j, "certificate");
        jw_str(&j, "section", section ? certauthz_dn_text(section) : NULL);
        if (status == EXIT_ERRORS)
            jw_null(&j, "decision");
        else {
            jw_open(&j, "decision", '{');
            jw_str(&j, "outcome", certauthz_outcome_name(id.outcome));
            jw_str(&j, "reason",
                   id.outcome == CERTAUTHZ_MAPPED   ? "mapped"
                   : id.outcome == CERTAUTHZ_DENIED ? "deny-rule"
                   : id.rule                        ? "unusable-rule"
                                                    : "unmapped");
            jw_str(&j, "unusable", unusable_kind(map, &id, cert.f));
            if (id.rule)
                json_rule(&j, "rule", map, id.rule, 0, 0, p);
            else
                jw_null(&j, "rule");
            if (id.outcome == CERTAUTHZ_MAPPED) {
                jw_str(&j, "user", id.user);
                jw_open(&j, "groups", '[');
                for (int g = 0; g < id.ngroups; g++)
                    jw_str(&j, NULL, id.groups[g]);
                jw_close(&j, ']');
            }
            else {
                jw_null(&j, "user");
                jw_null(&j, "groups");
            }
            jw_close(&j, '}');
        }
        jw_open(&j, "matches", '[');
        for (int i = 0; i < m.rules->nelts; i++) {
            const certauthz_rule_t *r =
                APR_ARRAY_IDX(m.rules, i, const certauthz_rule_t *);
            json_rule(&j, NULL, map, r, 1, r == id.rule, p);
        }
        jw_close(&j, ']');
        jw_close(&j, '}');
        return status;
    }

    print_errors(errs, p);
    if (cert_ok)
        explain_text_cert(&cert, p);
    if (status == EXIT_ERRORS)
        return status;

    if (section)
        printf("section     [issuer \"%s\"] of the map applies, with the "
               "rules for every issuer\n",
               show(certauthz_dn_text(section), 0, p));
    else
        printf("section     no [issuer] section of the map names this "
               "issuer: only the rules for every issuer apply\n");
    printf("decision\n");
    switch (id.outcome) {
    case CERTAUTHZ_DENIED:
        printf("  DENIED by %s: deny %s\n",
               show(certauthz_rule_where(map, id.rule, p), 0, p),
               show(rule_selector(map, id.rule, p), 0, p));
        break;
    case CERTAUTHZ_MAPPED:
        printf("  MAPPED by %s: user=%s groups=%s\n",
               show(certauthz_rule_where(map, id.rule, p), 0, p),
               show(id.user, 1, p),
               show(certauthz_identity_groups(&id, p), 1, p));
        break;
    default:
        if (!id.rule)
            printf("  UNMAPPED: no rule matches\n");
        else if (!strcmp(unusable_kind(map, &id, cert.f), "regex-gave-up"))
            printf("  UNMAPPED by %s: its regex %s gave up on a value (match "
                   "limits); no later rule is tried\n",
                   show(certauthz_rule_where(map, id.rule, p), 0, p),
                   show(rule_selector(map, id.rule, p), 0, p));
        else
            printf("  UNMAPPED by %s: %s matched but its $N substitution "
                   "gave an unusable user or group name; no later rule is "
                   "tried\n",
                   show(certauthz_rule_where(map, id.rule, p), 0, p),
                   show(rule_selector(map, id.rule, p), 0, p));
    }
    printf("matching rules, in file order\n");
    for (int i = 0; i < m.rules->nelts; i++) {
        const certauthz_rule_t *r =
            APR_ARRAY_IDX(m.rules, i, const certauthz_rule_t *);
        print_rule_text(map, r, r == id.rule, p);
    }
    if (!m.rules->nelts)
        printf("  (none)\n");
    return status;
}

/* ---- diff ---------------------------------------------------------------- */

static const char *const diff_names[] = {"same", "outcome", "user", "groups"};

/* "mapped bob [staff,admins] (FILE:LINE)" */
static const char *identity_text(const certauthz_map_t *map,
                                 const certauthz_identity_t *id, apr_pool_t *p)
{
    const char *s = certauthz_outcome_name(id->outcome);
    if (id->outcome == CERTAUTHZ_MAPPED)
        s = apr_pstrcat(p, s, " ", show(id->user, 1, p), " [",
                        show(certauthz_identity_groups(id, p), 1, p), "]",
                        NULL);
    if (id->rule)
        s = apr_pstrcat(p, s, " (",
                        show(certauthz_rule_where(map, id->rule, p), 1, p), ")",
                        NULL);
    return s;
}

static void json_identity(jw_t *j, const char *key, const certauthz_map_t *map,
                          const certauthz_identity_t *id, apr_pool_t *p)
{
    jw_open(j, key, '{');
    jw_str(j, "outcome", certauthz_outcome_name(id->outcome));
    if (id->outcome == CERTAUTHZ_MAPPED) {
        jw_str(j, "user", id->user);
        jw_open(j, "groups", '[');
        for (int g = 0; g < id->ngroups; g++)
            jw_str(j, NULL, id->groups[g]);
        jw_close(j, ']');
    }
    else {
        jw_null(j, "user");
        jw_null(j, "groups");
    }
    if (id->rule)
        json_rule(j, "rule", map, id->rule, 0, 0, p);
    else
        jw_null(j, "rule");
    jw_close(j, '}');
}

static int cert_file_name(const char *name)
{
    static const char *const ext[] = {".pem", ".crt", ".cer", ".der"};
    apr_size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        if (n > 4 && !strcasecmp(name + n - 4, ext[i]))
            return 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The certificate files PATH names: itself, or the *.pem, *.crt, *.cer
 * and *.der files of a directory (not its subdirectories), by name. */
static void cert_paths(apr_array_header_t *out, const char *path,
                       apr_array_header_t *errs, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_dir_t *dir;
    apr_array_header_t *names;

    if (apr_stat(&fi, path, APR_FINFO_TYPE, p) != APR_SUCCESS
        || fi.filetype != APR_DIR) {
        APR_ARRAY_PUSH(out, const char *) = path;
        return;
    }
    if (apr_dir_open(&dir, path, p) != APR_SUCCESS) {
        push_error(errs, path, 0, "cannot be read");
        return;
    }
    names = apr_array_make(p, 16, sizeof(const char *));
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
           == APR_SUCCESS)
        if (fi.filetype == APR_REG && cert_file_name(fi.name))
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
    apr_dir_close(dir);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), by_name);
    for (int i = 0; i < names->nelts; i++)
        APR_ARRAY_PUSH(out, const char *) =
            apr_pstrcat(p, path, path[strlen(path) - 1] == '/' ? "" : "/",
                        APR_ARRAY_IDX(names, i, const char *), NULL);
}

static int cmd_diff(int argc, char **argv, apr_pool_t *p)
{
    int json = 0, end = 0, counts[4] = {0}, bad = 0;
    apr_array_header_t *pos = apr_array_make(p, 4, sizeof(const char *));
    apr_array_header_t *paths = apr_array_make(p, 16, sizeof(const char *));
    apr_array_header_t *errs = apr_array_make(p, 4, sizeof(certauthz_error_t));
    certauthz_map_t *map[2] = {NULL, NULL};
    const char *mapname[2];
    int maps_ok = 1;
    jw_t j = {stdout, 0, {0}};

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (end || a[0] != '-' || !a[1])
            APR_ARRAY_PUSH(pos, const char *) = a;
        else if (!strcmp(a, "--"))
            end = 1;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout, "diff");
            return EXIT_OK;
        }
        else
            return usage_error("diff: unknown option '%s'", show(a, 1, p));
    }
    if (pos->nelts < 3)
        return usage_error("%s", "diff takes MAP-A, MAP-B and at least one "
                                 "CERT or DIRECTORY");
    for (int m = 0; m < 2; m++) {
        mapname[m] = APR_ARRAY_IDX(pos, m, const char *);
        if (!load_map(&map[m], mapname[m], errs, p))
            maps_ok = 0;
    }
    for (int i = 2; i < pos->nelts; i++)
        cert_paths(paths, APR_ARRAY_IDX(pos, i, const char *), errs, p);

    if (json) {
        jw_head(&j, "diff");
        jw_str(&j, "map_a", mapname[0]);
        jw_str(&j, "map_b", mapname[1]);
        jw_open(&j, "certificates", '[');
    }
    for (int i = 0; maps_ok && i < paths->nelts; i++) {
        const char *path = APR_ARRAY_IDX(paths, i, const char *);
        certauthz_identity_t id[2];
        certauthz_diff_e d;
        cert_t cert;
        if (read_cert(&cert, path, errs, p) != 0) {
            bad++;
            continue;
        }
        for (int m = 0; m < 2; m++)
            certauthz_map_resolve(&id[m], map[m], cert.f, p);
        d = certauthz_identity_compare(&id[0], &id[1]);
        counts[d]++;
        if (json) {
            jw_open(&j, NULL, '{');
            jw_str(&j, "path", path);
            jw_str(&j, "change", diff_names[d]);
            json_identity(&j, "a", map[0], &id[0], p);
            json_identity(&j, "b", map[1], &id[1], p);
            jw_close(&j, '}');
        }
        else if (d == CERTAUTHZ_SAME)
            printf("%s  same  %s\n", show(path, 1, p),
                   identity_text(map[0], &id[0], p));
        else
            printf("%s  %s  %s  ->  %s\n", show(path, 1, p), diff_names[d],
                   identity_text(map[0], &id[0], p),
                   identity_text(map[1], &id[1], p));
    }
    if (json) {
        jw_close(&j, ']');
        jw_open(&j, "counts", '{');
        for (int k = 0; k < 4; k++)
            jw_int(&j, diff_names[k], counts[k]);
        jw_close(&j, '}');
        jw_bool(&j, "ok", maps_ok && !bad && !errs->nelts);
        jw_errors(&j, "errors", errs);
        jw_close(&j, '}');
    }
    else {
        print_errors(errs, p);
        if (maps_ok)
            printf("%d certificates: %d the same, %d change (outcome %d, "
                   "user %d, groups %d)%s\n",
                   counts[0] + counts[1] + counts[2] + counts[3], counts[0],
                   counts[1] + counts[2] + counts[3], counts[1], counts[2],
                   counts[3],
                   bad ? apr_psprintf(p, "; %d could not be read", bad) : "");
    }
    if (!maps_ok || bad || errs->nelts)
        return EXIT_ERRORS;
    return counts[1] + counts[2] + counts[3] ? EXIT_CHANGES : EXIT_OK;
}

/* ---- compile -------------------------------------------------------------- */

static int cmd_compile(int argc, char **argv, apr_pool_t *p)
{
    const char *args[2] = {NULL, NULL}, *out, *why = NULL;
    apr_array_header_t *errs = NULL;
    certauthz_map_t *map = NULL;
    certauthz_map_stats_t st;
    apr_finfo_t fi;
    apr_status_t rv;
    int n = 0, end = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (end || a[0] != '-' || !a[1]) {
            if (n == 2)
                return usage_error("%s", "compile takes one MAP and one OUT");
            args[n++] = a;
        }
        else if (!strcmp(a, "--"))
            end = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout, "compile");
            return EXIT_OK;
        }
        else
            return usage_error("compile: unknown option '%s'", show(a, 1, p));
    }
    if (!n)
        return usage_error("%s", "compile needs a MAP");
    out = args[1] ? args[1] : apr_pstrcat(p, args[0], ".img", NULL);
    rv = certauthz_map_load(&map, args[0], &errs, p);
    if (rv != APR_SUCCESS || !map) {
        print_errors(errs, p);
        return EXIT_ERRORS;
    }
    if (apr_stat(&fi, args[0], APR_FINFO_PROT, p) != APR_SUCCESS)
        fi.protection = APR_FPROT_UREAD | APR_FPROT_UWRITE;
    rv = certauthz_image_write(map, out, fi.protection, &why, p);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "certauthz: %s\n", show(why, 0, p));
        return EXIT_ERRORS;
    }
    if (apr_stat(&fi, out, APR_FINFO_SIZE, p) != APR_SUCCESS)
        fi.size = 0;
    certauthz_map_stats(map, &st);
    printf("%s: compiled to %s\n  %s\n  content   sha256 %s\n  image     "
           "%" APR_OFF_T_FMT " bytes, format %d\n",
           show(args[0], 0, p), show(out, 0, p), certauthz_map_summary(&st, p),
           certauthz_map_sha256(map), fi.size, CERTAUTHZ_IMAGE_FORMAT);
    return EXIT_OK;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    apr_pool_t *p;
    int rc;

    if (argc < 2) {
        fputs(HELP_USAGE, stderr);
        fputs("Try 'certauthz --help'.\n", stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help(stdout, NULL);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "help")) {
        if (argc > 3
            || (argc == 3 && strcmp(argv[2], "check")
                && strcmp(argv[2], "explain") && strcmp(argv[2], "diff")
                && strcmp(argv[2], "compile")))
            return usage_error("%s",
                               "help takes check, explain, diff or compile");
        help(stdout, argc == 3 ? argv[2] : NULL);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("certauthz %s\n", CERTAUTHZ_VERSION);
        return EXIT_OK;
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    if (!strcmp(argv[1], "check"))
        rc = cmd_check(argc - 2, argv + 2, p);
    else if (!strcmp(argv[1], "explain"))
        rc = cmd_explain(argc - 2, argv + 2, p);
    else if (!strcmp(argv[1], "diff"))
        rc = cmd_diff(argc - 2, argv + 2, p);
    else if (!strcmp(argv[1], "compile"))
        rc = cmd_compile(argc - 2, argv + 2, p);
    else
        rc = usage_error("unknown command '%s'", show(argv[1], 1, p));
    fflush(stdout);
    apr_pool_destroy(p);
    apr_terminate();
    return rc;
}
