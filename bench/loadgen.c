/*
 * loadgen.c -- HTTP/1.1-over-TLS load client of the mod_certauthz
 * end-to-end benchmark (bench/e2e.py).
 *
 * Each of N threads opens one TLS connection to a loopback server (one full
 * handshake with a client certificate, the server verified against a CA
 * file), then sends GET requests on it one at a time (keep-alive, no
 * pipelining), cycling through the given URL paths, until the duration is
 * over or the shared request cap is used up.  A connection the server
 * closes is reopened (again a full handshake: no session resumption); so
 * is one that served -r requests, when -r is given.
 * Responses are parsed fully (status line, headers, a body framed by
 * Content-Length, chunked encoding or the connection's end) and checked
 * against an optional expectation (a status and/or a header value).
 *
 * Output: one JSON line on stdout, e.g.
 *   {"requests":1234,"seconds":2.001,"rps":616.7,"errors":0,"wrong":0,
 *    "status":{"200":1234},"handshakes":4,...}
 * Exit status: 0 when every request got a response that met the
 * expectation, 1 otherwise (the JSON line is printed all the same), 2 on a
 * usage or setup error.
 *
 * Every loop is bounded: the request loop by the deadline and the request
 * cap (a connection attempt uses up a request of the cap too), reads and
 * writes by socket timeouts, response parsing by size limits; an alarm()
 * kills the process if it overruns the duration by far.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CONNS 256
#define MAX_PATHS 64
#define MAX_EXPECT 16
#define MAX_ANSWERS 16 /* distinct tallied header values per run */
#define ANSWER_LEN 128
#define BUF_SIZE 65536 /* per connection; also the longest header line */
#define MAX_HEADERS 200
#define MAX_BODY (64L * 1024 * 1024)
#define MAX_CHUNKS 1000000
#define MAX_INTERIM 5 /* 1xx responses before the real one */
#define NSTATUS 600
#define LAT_SUB 32
#define LAT_BUCKETS (LAT_SUB * 34)

/* ---- configuration (read-only once the threads run) ----------------- */

static struct {
    const char *host; /* literal address to connect to */
    int family;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int port;
    const char *servername; /* SNI + certificate name check, or NULL */
    char hosthdr[300];      /* Host: header value */
    const char *cert, *key, *cafile;
    int conns;
    double duration;
    long max_requests;
    int timeout;   /* seconds, per socket operation */
    long per_conn; /* requests per connection, 0 = no limit */
    const char *paths[MAX_PATHS];
    int npaths;
    char *requests[MAX_PATHS]; /* the request text for each path */
    size_t reqlen[MAX_PATHS];
    int expect_status; /* 0 = any */
    char *expect_name; /* header name, or NULL */
    const char *expect_values[MAX_EXPECT];
    int nexpect;
    const char *tally_name; /* header whose values are counted */
    int verbose;
} cfg;

static SSL_CTX *ctx;
static struct timespec t_start;
static double deadline; /* seconds since t_start */
static long tickets;    /* requests handed out (atomic) */

/* ---- per-thread results --------------------------------------------- */

struct answer {
    char value[ANSWER_LEN];
    long count;
};

struct worker {
    pthread_t tid;
    int id;
    /* connection */
    int fd;
    SSL *ssl;
    long on_conn; /* responses on this connection */
    char buf[BUF_SIZE];
    size_t pos, len; /* unread bytes are buf[pos..len) */
    /* results */
    long requests, errors, wrong, handshakes, reused_sessions, retries;
    long connect_errors;
    long status[NSTATUS];
    long status_other;
    struct answer answers[MAX_ANSWERS];
    int nanswers;
    long answers_other;
    long lat[LAT_BUCKETS];
    uint64_t lat_max;
    char first_error[200];
};

/* one parsed response */
struct response {
    int status;
    int minor; /* HTTP/1.minor */
    int close; /* connection must not be reused */
    int chunked;
    long content_length; /* -1 = none */
    int have_expect;
    int expect_ok;
    int have_tally;
    char tally[ANSWER_LEN];
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t_start.tv_sec)
           + (double)(t.tv_nsec - t_start.tv_nsec) / 1e9;
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void note_error(struct worker *w, const char *fmt, ...)
{
    va_list ap;
    w->errors++;
    if (w->first_error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
    va_end(ap);
    if (cfg.verbose)
        fprintf(stderr, "loadgen: thread %d: %s\n", w->id, w->first_error);
}

/* ---- latency histogram (log-linear: 32 sub-buckets per power of 2) --- */

static int lat_bucket(uint64_t us)
{
    int msb, shift, idx;
    if (us < LAT_SUB)
        return (int)us;
    msb = 63 - __builtin_clzll(us);
    shift = msb - 5;
    idx = LAT_SUB + shift * LAT_SUB + (int)((us >> shift) & (LAT_SUB - 1));
    return idx < LAT_BUCKETS ? idx : LAT_BUCKETS - 1;
}

static uint64_t lat_value(int idx)
{
    int shift;
    if (idx < LAT_SUB)
        return (uint64_t)idx;
    shift = idx / LAT_SUB - 1;
    return (uint64_t)(LAT_SUB + idx % LAT_SUB) << shift;
}

/* ---- connection ------------------------------------------------------ */

/* polite: send close_notify first (not waiting for the server's) */
static void conn_close_ex(struct worker *w, int polite)
{
    if (w->ssl != NULL) {
        if (polite)
            SSL_shutdown(w->ssl);
        else
            SSL_set_quiet_shutdown(w->ssl, 1);
        SSL_free(w->ssl);
        w->ssl = NULL;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    w->pos = w->len = 0;
    w->on_conn = 0;
}

static void conn_close(struct worker *w)
{
    conn_close_ex(w, 0);
}

static const char *ssl_err_text(void)
{
    static __thread char text[160];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return errno ? strerror(errno) : "unknown error";
    ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return text;
}

static int conn_open(struct worker *w)
{
    struct timeval tv;
    int one = 1;

    w->fd = socket(cfg.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (w->fd < 0) {
        note_error(w, "socket: %s", strerror(errno));
        return -1;
    }
    tv.tv_sec = cfg.timeout;
    tv.tv_usec = 0;
    setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(w->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(w->fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) != 0) {
        note_error(w, "connect: %s", strerror(errno));
        conn_close(w);
        return -1;
    }
    w->ssl = SSL_new(ctx);
    if (w->ssl == NULL || !SSL_set_fd(w->ssl, w->fd)) {
        note_error(w, "SSL_new: %s", ssl_err_text());
        conn_close(w);
        return -1;
    }
    if (cfg.servername != NULL) {
        SSL_set_tlsext_host_name(w->ssl, cfg.servername);
        if (!SSL_set1_host(w->ssl, cfg.servername)) {
            note_error(w, "SSL_set1_host: %s", ssl_err_text());
            conn_close(w);
            return -1;
        }
    }
    else if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(w->ssl), cfg.host)) {
        note_error(w, "set1_ip_asc: %s", ssl_err_text());
        conn_close(w);
        return -1;
    }
    errno = 0;
    if (SSL_connect(w->ssl) != 1) {
        long vr = SSL_get_verify_result(w->ssl);
        if (vr != X509_V_OK)
            note_error(w, "TLS handshake: server certificate: %s",
                       X509_verify_cert_error_string(vr));
        else
            note_error(w, "TLS handshake: %s", ssl_err_text());
        conn_close(w);
        return -1;
    }
    w->handshakes++;
    if (SSL_session_reused(w->ssl))
        w->reused_sessions++;
    w->pos = w->len = 0;
    w->on_conn = 0;
    return 0;
}

/* Read more bytes into the buffer.  1: got some; 0: the peer closed the
 * connection; -1: error or timeout (message in *why). */
static int conn_fill(struct worker *w, const char **why)
{
    int n, e;
    if (w->pos > 0 && w->pos == w->len)
        w->pos = w->len = 0;
    if (w->len == sizeof w->buf) {
        if (w->pos == 0) {
            *why = "response line too long";
            return -1;
        }
        memmove(w->buf, w->buf + w->pos, w->len - w->pos);
        w->len -= w->pos;
        w->pos = 0;
    }
    errno = 0;
    n = SSL_read(w->ssl, w->buf + w->len, (int)(sizeof w->buf - w->len));
    if (n > 0) {
        w->len += (size_t)n;
        return 1;
    }
    e = SSL_get_error(w->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
        /* closed without close_notify: OpenSSL 3 reports it as an error,
     * older versions as a system call error with errno 0 */
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    if (e == SSL_ERROR_SSL
        && ERR_GET_REASON(ERR_peek_error())
               == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return 0;
    }
#endif
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
        && (errno == 0 || errno == ECONNRESET || errno == EPIPE))
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || errno == EAGAIN
        || errno == EWOULDBLOCK) {
        ERR_clear_error();
        *why = "read timeout";
        return -1;
    }
    *why = ssl_err_text();
    return -1;
}

/* Next line (without CR LF) into *line, NUL-terminated in place.
 * 1: ok; 0: clean EOF before any byte; -1: error (*why). */
static int read_line(struct worker *w, char **line, const char **why)
{
    int i;
    /* each round either finds the line end or adds at least one byte to
     * the unread part of the buffer, which cannot exceed BUF_SIZE */
    for (i = 0; i <= BUF_SIZE; i++) {
        char *start = w->buf + w->pos;
        char *nl = memchr(start, '\n', w->len - w->pos);
        int r;
        if (nl != NULL) {
            size_t n = (size_t)(nl - start);
            if (n > 0 && start[n - 1] == '\r')
                n--;
            start[n] = '\0';
            w->pos = (size_t)(nl - w->buf) + 1;
            *line = start;
            return 1;
        }
        r = conn_fill(w, why);
        if (r == 0) {
            if (w->len > w->pos) {
                *why = "connection closed in the middle of a line";
                return -1;
            }
            return 0;
        }
        if (r < 0)
            return -1;
        if (w->len - w->pos >= sizeof w->buf) {
            *why = "line too long";
            return -1;
        }
    }
    *why = "line too long";
    return -1;
}

/* Discard exactly n body bytes. */
static int skip_bytes(struct worker *w, long n, const char **why)
{
    while (n > 0) {
        size_t avail = w->len - w->pos;
        int r;
        if (avail > 0) {
            size_t take = avail < (size_t)n ? avail : (size_t)n;
            w->pos += take;
            n -= (long)take;
            continue;
        }
        r = conn_fill(w, why);
        if (r == 0) {
            *why = "connection closed in the middle of the body";
            return -1;
        }
        if (r < 0)
            return -1;
    }
    return 0;
}

/* ---- response parsing ---------------------------------------------- */

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* does the comma-separated token list contain tok (case-insensitive)? */
static int has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p != '\0') {
        const char *end;
        size_t n;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        end = p;
        while (*end != '\0' && *end != ',')
            end++;
        n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == tl && strncasecmp(p, tok, tl) == 0)
            return 1;
        p = end;
    }
    return 0;
}

static int parse_status_line(char *line, struct response *rs)
{
    /* HTTP/1.x SSS[ reason] */
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7])
        || line[8] != ' ')
        return -1;
    rs->minor = line[7] - '0';
    if (!isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10])
        || !isdigit((unsigned char)line[11])
        || (line[12] != ' ' && line[12] != '\0'))
        return -1;
    rs->status =
        (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return rs->status >= 100 ? 0 : -1;
}

static int parse_header(char *line, struct response *rs, const char **why)
{
    char *colon = strchr(line, ':');
    char *name, *value;
    if (colon == NULL || colon == line) {
        *why = "malformed header line";
        return -1;
    }
    *colon = '\0';
    name = line;
    if (strpbrk(name, " \t") != NULL) {
        *why = "space in a header name";
        return -1;
    }
    value = trim(colon + 1);
    if (strcasecmp(name, "Content-Length") == 0) {
        char *end;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 0
            || !isdigit((unsigned char)value[0])) {
            *why = "bad Content-Length";
            return -1;
        }
        if (rs->content_length >= 0 && rs->content_length != v) {
            *why = "conflicting Content-Length headers";
            return -1;
        }
        rs->content_length = v;
    }
    else if (strcasecmp(name, "Transfer-Encoding") == 0) {
        /* only "chunked" as the last coding is framing we understand */
        const char *last = strrchr(value, ',');
        last = last != NULL ? last + 1 : value;
        while (*last == ' ' || *last == '\t')
            last++;
        if (strcasecmp(last, "chunked") == 0)
            rs->chunked = 1;
        else if (strcasecmp(value, "identity") != 0) {
            *why = "unsupported Transfer-Encoding";
            return -1;
        }
    }
    else if (strcasecmp(name, "Connection") == 0) {
        if (has_token(value, "close"))
            rs->close = 1;
        else if (rs->minor == 0 && has_token(value, "keep-alive"))
            rs->close = 0;
    }
    if (cfg.expect_name != NULL && !rs->have_expect
        && strcasecmp(name, cfg.expect_name) == 0) {
        int i;
        rs->have_expect = 1;
        for (i = 0; i < cfg.nexpect; i++)
            if (strcmp(value, cfg.expect_values[i]) == 0)
                rs->expect_ok = 1;
    }
    if (cfg.tally_name != NULL && !rs->have_tally
        && strcasecmp(name, cfg.tally_name) == 0) {
        rs->have_tally = 1;
        snprintf(rs->tally, sizeof rs->tally, "%s", value);
    }
    return 0;
}

/* Read a chunked body (and its trailers). */
static int read_chunked(struct worker *w, const char **why)
{
    long total = 0, chunks;
    for (chunks = 0; chunks < MAX_CHUNKS; chunks++) {
        char *line, *end;
        long size;
        int r = read_line(w, &line, why);
        if (r <= 0) {
            if (r == 0)
                *why = "connection closed in a chunked body";
            return -1;
        }
        errno = 0;
        size = strtol(line, &end, 16);
        if (errno != 0 || end == line || size < 0
            || (*end != '\0' && *end != ';' && *end != ' ' && *end != '\t')) {
            *why = "bad chunk size";
            return -1;
        }
        if (size == 0) {
            int i;
            for (i = 0; i < MAX_HEADERS; i++) { /* trailers */
                r = read_line(w, &line, why);
                if (r <= 0) {
                    if (r == 0)
                        *why = "connection closed in the trailers";
                    return -1;
                }
                if (line[0] == '\0')
                    return 0;
            }
            *why = "too many trailers";
            return -1;
        }
        total += size;
        if (total > MAX_BODY) {
            *why = "body too large";
            return -1;
        }
        if (skip_bytes(w, size, why) != 0)
            return -1;
        r = read_line(w, &line, why);
        if (r <= 0 || line[0] != '\0') {
            if (r >= 0)
                *why = "no CRLF after a chunk";
            return -1;
        }
    }
    *why = "too many chunks";
    return -1;
}

/* Read a body delimited by the end of the connection. */
static int read_to_eof(struct worker *w, const char **why)
{
    long total = 0;
    for (;;) {
        int r;
        total += (long)(w->len - w->pos);
        w->pos = w->len;
        if (total > MAX_BODY) {
            *why = "body too large";
            return -1;
        }
        r = conn_fill(w, why);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
    }
}

/* Read one complete response.  1: ok (*rs filled); 0: the connection was
 * closed before the first byte of the response; -1: error (*why). */
static int read_response(struct worker *w, struct response *rs,
                         const char **why)
{
    int interim;
    for (interim = 0; interim <= MAX_INTERIM; interim++) {
        char *line;
        int r, nh;
        memset(rs, 0, sizeof *rs);
        rs->content_length = -1;
        r = read_line(w, &line, why);
        if (r == 0 && interim == 0)
            return 0;
        if (r <= 0) {
            if (r == 0)
                *why = "connection closed before the status line";
            return -1;
        }
        if (parse_status_line(line, rs) != 0) {
            *why = "malformed status line";
            return -1;
        }
        rs->close = rs->minor == 0;
        for (nh = 0;; nh++) {
            if (nh > MAX_HEADERS) {
                *why = "too many headers";
                return -1;
            }
            r = read_line(w, &line, why);
            if (r <= 0) {
                if (r == 0)
                    *why = "connection closed in the headers";
                return -1;
            }
            if (line[0] == '\0')
                break;
            if (line[0] == ' ' || line[0] == '\t') {
                *why = "obsolete header folding";
                return -1;
            }
            if (parse_header(line, rs, why) != 0)
                return -1;
        }
        if (rs->status < 200)
            continue; /* interim response: the real one follows */
        if (rs->status == 204 || rs->status == 304)
            return 1;
        if (rs->chunked)
            return read_chunked(w, why) == 0 ? 1 : -1;
        if (rs->content_length >= 0) {
            if (rs->content_length > MAX_BODY) {
                *why = "body too large";
                return -1;
            }
            return skip_bytes(w, rs->content_length, why) == 0 ? 1 : -1;
        }
        rs->close = 1;
        return read_to_eof(w, why) == 0 ? 1 : -1;
    }
    *why = "too many interim responses";
    return -1;
}

/* ---- results --------------------------------------------------------- */

static void tally(struct worker *w, const char *value)
{
    int i;
    for (i = 0; i < w->nanswers; i++)
        if (strcmp(w->answers[i].value, value) == 0) {
            w->answers[i].count++;
            return;
        }
    if (w->nanswers < MAX_ANSWERS) {
        snprintf(w->answers[i].value, ANSWER_LEN, "%s", value);
        w->answers[i].count = 1;
        w->nanswers++;
        return;
    }
    w->answers_other++;
}

static void record(struct worker *w, const struct response *rs, uint64_t lat)
{
    int ok = 1;
    w->requests++;
    if (rs->status < NSTATUS)
        w->status[rs->status]++;
    else
        w->status_other++;
    if (cfg.expect_status != 0 && rs->status != cfg.expect_status)
        ok = 0;
    if (cfg.expect_name != NULL && !rs->expect_ok)
        ok = 0;
    if (!ok)
        w->wrong++;
    if (cfg.tally_name != NULL)
        tally(w, rs->have_tally ? rs->tally : "");
    w->lat[lat_bucket(lat)]++;
    if (lat > w->lat_max)
        w->lat_max = lat;
}

/* ---- the worker thread ---------------------------------------------- */

static int send_request(struct worker *w, int p, const char **why)
{
    size_t off = 0;
    int i;
    for (i = 0; i < 16 && off < cfg.reqlen[p]; i++) {
        int n = SSL_write(w->ssl, cfg.requests[p] + off,
                          (int)(cfg.reqlen[p] - off));
        if (n <= 0) {
            *why = ssl_err_text();
            return -1;
        }
        off += (size_t)n;
    }
    if (off < cfg.reqlen[p]) {
        *why = "short write";
        return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int p = w->id % cfg.npaths;

    while (now_s() < deadline) {
        struct response rs;
        const char *why = NULL;
        uint64_t t0;
        int attempt, r = -1;

        if (__atomic_fetch_add(&tickets, 1, __ATOMIC_RELAXED)
            >= cfg.max_requests)
            break;
        t0 = now_us();
        /* a request on a reused connection that the server closed before
         * answering is retried once on a new connection (the keep-alive
         * race every HTTP client handles) */
        for (attempt = 0; attempt < 2; attempt++) {
            if (w->ssl == NULL) {
                if (conn_open(w) != 0) {
                    w->connect_errors++;
                    r = -2;
                    break;
                }
                t0 = now_us(); /* latency: request and response only */
            }
            if (send_request(w, p, &why) != 0)
                r = w->on_conn > 0 ? 0 : -1;
            else
                r = read_response(w, &rs, &why);
            if (r == 0 && w->on_conn > 0) {
                w->retries++;
                conn_close(w);
                continue;
            }
            break;
        }
        if (r == -2) {
            /* connect failed (already counted): back off a little */
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (r != 1) {
            note_error(w, "%s %s", cfg.paths[p],
                       r == 0 ? "connection closed without a response"
                              : (why != NULL ? why : "error"));
            conn_close(w);
            continue;
        }
        record(w, &rs, now_us() - t0);
        w->on_conn++;
        if (rs.close)
            conn_close(w);
        else if (cfg.per_conn > 0 && w->on_conn >= cfg.per_conn)
            conn_close_ex(w, 1);
        p = (p + 1) % cfg.npaths;
    }
    conn_close_ex(w, 1);
    return NULL;
}

/* ---- output -------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else if (c >= 0x80)
            fputc('?', f); /* keep the line valid UTF-8 whatever came */
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static uint64_t lat_percentile(const long *lat, long total, double q)
{
    long want = (long)((double)total * q), seen = 0;
    int i;
    if (total == 0)
        return 0;
    if (want >= total)
        want = total - 1;
    for (i = 0; i < LAT_BUCKETS; i++) {
        seen += lat[i];
        if (seen > want)
            return lat_value(i);
    }
    return lat_value(LAT_BUCKETS - 1);
}

static int report(struct worker *ws, double seconds)
{
    struct worker *t = calloc(1, sizeof *t);
    int i, j, first;
    const char *first_error = "";

    if (t == NULL)
        die("out of memory");
    for (i = 0; i < cfg.conns; i++) {
        struct worker *w = &ws[i];
        t->requests += w->requests;
        t->errors += w->errors;
        t->wrong += w->wrong;
        t->handshakes += w->handshakes;
        t->reused_sessions += w->reused_sessions;
        t->retries += w->retries;
        t->connect_errors += w->connect_errors;
        t->status_other += w->status_other;
        t->answers_other += w->answers_other;
        for (j = 0; j < NSTATUS; j++)
            t->status[j] += w->status[j];
        for (j = 0; j < LAT_BUCKETS; j++)
            t->lat[j] += w->lat[j];
        if (w->lat_max > t->lat_max)
            t->lat_max = w->lat_max;
        for (j = 0; j < w->nanswers; j++) {
            int k, found = 0;
            for (k = 0; k < t->nanswers; k++)
                if (strcmp(t->answers[k].value, w->answers[j].value) == 0) {
                    t->answers[k].count += w->answers[j].count;
                    found = 1;
                }
            if (!found && t->nanswers < MAX_ANSWERS) {
                t->answers[t->nanswers] = w->answers[j];
                t->nanswers++;
            }
            else if (!found)
                t->answers_other += w->answers[j].count;
        }
        if (first_error[0] == '\0' && w->first_error[0] != '\0')
            first_error = w->first_error;
    }

    printf("{\"requests\":%ld,\"seconds\":%.4f,\"rps\":%.1f,"
           "\"errors\":%ld,\"wrong\":%ld,\"status\":{",
           t->requests, seconds,
           seconds > 0 ? (double)t->requests / seconds : 0.0, t->errors,
           t->wrong);
    first = 1;
    for (j = 0; j < NSTATUS; j++)
        if (t->status[j] != 0) {
            printf("%s\"%d\":%ld", first ? "" : ",", j, t->status[j]);
            first = 0;
        }
    if (t->status_other != 0)
        printf("%s\"other\":%ld", first ? "" : ",", t->status_other);
    printf("},\"connections\":%d,\"handshakes\":%ld,\"resumed\":%ld,"
           "\"connect_errors\":%ld,\"retries\":%ld",
           cfg.conns, t->handshakes, t->reused_sessions, t->connect_errors,
           t->retries);
    if (cfg.tally_name != NULL) {
        printf(",\"answers_header\":");
        json_string(stdout, cfg.tally_name);
        printf(",\"answers\":{");
        for (j = 0; j < t->nanswers; j++) {
            if (j > 0)
                putchar(',');
            json_string(stdout, t->answers[j].value);
            printf(":%ld", t->answers[j].count);
        }
        printf("},\"answers_other\":%ld", t->answers_other);
    }
    printf(",\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,"
           "\"max\":%llu}",
           (unsigned long long)lat_percentile(t->lat, t->requests, 0.50),
           (unsigned long long)lat_percentile(t->lat, t->requests, 0.90),
           (unsigned long long)lat_percentile(t->lat, t->requests, 0.99),
           (unsigned long long)t->lat_max);
    printf(",\"first_error\":");
    json_string(stdout, first_error);
    printf("}\n");
    fflush(stdout);
    i = t->requests > 0 && t->errors == 0 && t->wrong == 0 ? 0 : 1;
    free(t);
    return i;
}

/* ---- setup ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: loadgen -p PORT -c CERT.pem -k KEY.pem -a CA.pem -u PATH "
        "[options]\n"
        "  -h HOST       127.0.0.1 (default), ::1 or localhost; nothing else\n"
        "  -p PORT       server port\n"
        "  -S NAME       server name for SNI, the certificate check and Host:\n"
        "                (default: check the certificate's IP address, no "
        "SNI)\n"
        "  -c FILE       client certificate (PEM)\n"
        "  -k FILE       client private key (PEM)\n"
        "  -a FILE       CA certificate(s) the server's certificate must chain "
        "to\n"
        "  -n N          connections = threads (default 4, at most %d)\n"
        "  -d SECONDS    duration (default 5)\n"
        "  -N COUNT      hard cap on requests, all threads together (default "
        "10^7)\n"
        "  -u PATH       URL path; repeat (or separate with commas) to "
        "request\n"
        "                several in turn\n"
        "  -s STATUS     expected status (a response with another one is "
        "wrong)\n"
        "  -e 'NAME: V'  expected response header value; repeat with the same "
        "NAME\n"
        "                for alternatives (any one is right)\n"
        "  -w NAME       count the values of response header NAME (default: "
        "the\n"
        "                -e header)\n"
        "  -r COUNT      requests per connection, then a new connection and a "
        "new\n"
        "                full handshake (default 0: keep the connection)\n"
        "  -t SECONDS    socket timeout (default 10)\n"
        "  -v            print the first error of each thread on stderr\n",
        MAX_CONNS);
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        die("%s: %s is not a number from %ld to %ld", what, s, lo, hi);
    return v;
}

static void add_path(const char *arg)
{
    char *copy = strdup(arg), *save = NULL, *tok;
    if (copy == NULL)
        die("out of memory");
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        if (cfg.npaths == MAX_PATHS)
            die("at most %d paths", MAX_PATHS);
        if (tok[0] != '/')
            die("path %s does not start with /", tok);
        for (i = 0; tok[i] != '\0'; i++)
            if ((unsigned char)tok[i] <= 0x20 || tok[i] == 0x7f)
                die("path %s contains a space or control character", tok);
        cfg.paths[cfg.npaths++] = tok; /* copy is kept for the process */
    }
}

static void add_expect(const char *arg)
{
    const char *colon = strchr(arg, ':');
    char *name, *value;
    if (colon == NULL || colon == arg)
        die("-e wants 'Header-Name: value', got %s", arg);
    name = strndup(arg, (size_t)(colon - arg));
    value = strdup(colon + 1);
    if (name == NULL || value == NULL)
        die("out of memory");
    value = trim(value);
    if (cfg.expect_name != NULL && strcasecmp(cfg.expect_name, name) != 0)
        die("every -e must name the same header (%s, %s)", cfg.expect_name,
            name);
    if (cfg.nexpect == MAX_EXPECT)
        die("at most %d -e values", MAX_EXPECT);
    cfg.expect_name = name;
    cfg.expect_values[cfg.nexpect++] = value;
}

static void resolve_host(void)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg.addr;
    memset(&cfg.addr, 0, sizeof cfg.addr);
    /* loopback only: the literal addresses, and localhost as 127.0.0.1
     * (never a name lookup, so /etc/hosts cannot point it elsewhere) */
    if (strcmp(cfg.host, "localhost") == 0)
        cfg.host = "127.0.0.1";
    if (strcmp(cfg.host, "127.0.0.1") == 0) {
        cfg.family = AF_INET;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg.port);
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cfg.addrlen = sizeof *a4;
        snprintf(cfg.hosthdr, sizeof cfg.hosthdr, "%s:%d",
                 cfg.servername ? cfg.servername : "127.0.0.1", cfg.port);
    }
    else if (strcmp(cfg.host, "::1") == 0) {
        cfg.family = AF_INET6;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg.port);
        a6->sin6_addr = in6addr_loopback;
        cfg.addrlen = sizeof *a6;
        if (cfg.servername)
            snprintf(cfg.hosthdr, sizeof cfg.hosthdr, "%s:%d", cfg.servername,
                     cfg.port);
        else
            snprintf(cfg.hosthdr, sizeof cfg.hosthdr, "[::1]:%d", cfg.port);
    }
    else
        die("host %s refused: only 127.0.0.1, ::1 and localhost", cfg.host);
}

static void build_requests(void)
{
    int i;
    for (i = 0; i < cfg.npaths; i++) {
        int n = asprintf(&cfg.requests[i],
                         "GET %s HTTP/1.1\r\n"
                         "Host: %s\r\n"
                         "User-Agent: certauthz-loadgen\r\n"
                         "Accept: */*\r\n"
                         "\r\n",
                         cfg.paths[i], cfg.hosthdr);
        if (n < 0)
            die("out of memory");
        cfg.reqlen[i] = (size_t)n;
    }
}

static void setup_tls(void)
{
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* one full handshake per connection: never resume a session */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    if (SSL_CTX_load_verify_locations(ctx, cfg.cafile, NULL) != 1)
        die("cannot load CA file %s: %s", cfg.cafile, ssl_err_text());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert) != 1)
        die("cannot load certificate %s: %s", cfg.cert, ssl_err_text());
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key, SSL_FILETYPE_PEM) != 1)
        die("cannot load key %s: %s", cfg.key, ssl_err_text());
    if (SSL_CTX_check_private_key(ctx) != 1)
        die("key %s does not match certificate %s", cfg.key, cfg.cert);
}

int main(int argc, char **argv)
{
    struct worker *ws;
    int opt, i, rc;
    double seconds;

    cfg.host = "127.0.0.1";
    cfg.conns = 4;
    cfg.duration = 5;
    cfg.max_requests = 10000000;
    cfg.timeout = 10;
    while ((opt = getopt(argc, argv, "h:p:S:c:k:a:n:d:N:u:s:e:w:r:t:v"))
           != -1) {
        switch (opt) {
        case 'h':
            cfg.host = optarg;
            break;
        case 'p':
            cfg.port = (int)parse_long(optarg, "-p", 1, 65535);
            break;
        case 'S':
            cfg.servername = optarg;
            break;
        case 'c':
            cfg.cert = optarg;
            break;
        case 'k':
            cfg.key = optarg;
            break;
        case 'a':
            cfg.cafile = optarg;
            break;
        case 'n':
            cfg.conns = (int)parse_long(optarg, "-n", 1, MAX_CONNS);
            break;
        case 'd': {
            char *end;
            cfg.duration = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(cfg.duration > 0)
                || cfg.duration > 86400)
                die("-d: %s is not a duration from 0 to 86400 s", optarg);
            break;
        }
        case 'N':
            cfg.max_requests = parse_long(optarg, "-N", 1, LONG_MAX / 2);
            break;
        case 'u':
            add_path(optarg);
            break;
        case 's':
            cfg.expect_status = (int)parse_long(optarg, "-s", 100, 599);
            break;
        case 'e':
            add_expect(optarg);
            break;
        case 'w':
            cfg.tally_name = optarg;
            break;
        case 'r':
            cfg.per_conn = parse_long(optarg, "-r", 0, LONG_MAX / 2);
            break;
        case 't':
            cfg.timeout = (int)parse_long(optarg, "-t", 1, 600);
            break;
        case 'v':
            cfg.verbose = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg.port == 0 || cfg.cert == NULL || cfg.key == NULL
        || cfg.cafile == NULL || cfg.npaths == 0) {
        usage(stderr);
        return 2;
    }
    if (cfg.tally_name == NULL)
        cfg.tally_name = cfg.expect_name;
    resolve_host();
    build_requests();
    signal(SIGPIPE, SIG_IGN);
    setup_tls();

    ws = calloc((size_t)cfg.conns, sizeof *ws);
    if (ws == NULL)
        die("out of memory");
    /* the last resort bound: the threads stop by themselves at the
     * deadline plus at most a few socket timeouts */
    alarm((unsigned)cfg.duration + 4u * (unsigned)cfg.timeout + 30u);
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    deadline = cfg.duration;
    for (i = 0; i < cfg.conns; i++) {
        ws[i].id = i;
        ws[i].fd = -1;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create failed");
    }
    for (i = 0; i < cfg.conns; i++)
        pthread_join(ws[i].tid, NULL);
    seconds = now_s();
    rc = report(ws, seconds);
    free(ws);
    SSL_CTX_free(ctx);
    return rc;
}
