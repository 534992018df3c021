/*
 * tlsclient.c -- a small HTTP/1.1-over-TLS client for the real-server tests
 * (t/server/test_tls_attacks.py): several requests on ONE keep-alive TLS
 * connection, with the client certificate changed between requests, so that
 * a TLS 1.2 renegotiation or a TLS 1.3 post-handshake authentication that
 * the server starts for a request presents a DIFFERENT certificate than the
 * connection had before.  Python's ssl module cannot do that.
 *
 *   tlsclient -p PORT -C CAFILE [-h HOST] [-s SNI] [-t 1.2|1.3] [-a] [-N]
 *             [-i TESTID] [-T SECONDS] ACTION...
 *
 *   -p PORT     connect to 127.0.0.1:PORT (loopback only)
 *   -C CAFILE   trust anchors for the server certificate (verified)
 *   -h HOST     Host header (default localhost)
 *   -s SNI      server name indication (default: none)
 *   -t VERSION  pin the TLS version (default: negotiate)
 *   -a          offer TLS 1.3 post-handshake authentication
 *   -N          refuse server-initiated TLS 1.2 renegotiation
 *   -i TESTID   X-Test-Id of the requests (each gets TESTID-N appended)
 *   -T SECONDS  I/O timeout of each read/write (default 10)
 *   -R FILE     offer the TLS session in FILE (PEM) for resumption
 *   -S FILE     after the last request, save the connection's TLS session
 *               (PEM; for TLS 1.3 the latest ticket received) in FILE
 *
 * ACTIONs, done in order; every option must come before the first ACTION:
 *   cert=PREFIX  use PREFIX.crt / PREFIX.key as the client certificate from
 *                now on (before the first request: in the first handshake;
 *                later: in any renegotiation / post-handshake auth)
 *   nocert       no client certificate from now on
 *   /PATH        GET /PATH on the connection (connecting first if needed)
 *
 * Output, one line per request on stdout, fields separated by tabs:
 *   RESP <status> proto=<TLS version> reused=<0|1> user=<X-Certauthz-User>
 *        remote=<X-Remote-User> verify=<X-Ssl-Verify> sha256=<...>
 *        cn=<X-Ssl-Client-Cn: mod_ssl's SSL_CLIENT_S_DN_CN>
 * ("-" for an absent header; a value never contains a tab or a line end),
 * or, when the connection or request fails:
 *   ERR <what>
 * after which the program stops.  Exit status: 0 when every request got a
 * response, 3 after an ERR, 2 on bad usage or setup errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#define MAX_RESPONSE (1024 * 1024)
#define MAX_REQUESTS 64

static const char *host = "localhost";
static const char *sni = NULL;
static const char *test_id = "tlsclient";

static void die(const char *what)
{
    fprintf(stderr, "tlsclient: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void fail(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";

    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    printf("ERR %s%s%s\n", what, e ? ": " : "", buf);
    fflush(stdout);
    exit(3);
}

static int connect_loopback(int port, int timeout)
{
    struct sockaddr_in sa;
    struct timeval tv;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("socket");
    tv.tv_sec = timeout;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail("connect");
    return fd;
}

static void use_cert(SSL *ssl, const char *prefix)
{
    char crt[4096], key[4096];

    SSL_certs_clear(ssl);
    if (!prefix)
        return;
    snprintf(crt, sizeof crt, "%s.crt", prefix);
    snprintf(key, sizeof key, "%s.key", prefix);
    if (SSL_use_certificate_chain_file(ssl, crt) != 1)
        die(crt);
    if (SSL_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1)
        die(key);
    if (SSL_check_private_key(ssl) != 1)
        die("certificate and key do not match");
}

/* The value of header `name` in the header block hdr (NUL-terminated), or
 * "-"; copied into out. */
static const char *header(const char *hdr, const char *name, char *out,
                          size_t outlen)
{
    size_t n = strlen(name);
    const char *p = strstr(hdr, "\r\n");

    while (p && p[2]) {
        const char *line = p + 2, *end = strstr(line, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - line) > n && line[n] == ':'
            && !strncasecmp(line, name, n)) {
            const char *v = line + n + 1;
            size_t len;
            while (*v == ' ' || *v == '\t')
                v++;
            len = (size_t)(end - v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            if (!len || (len == 6 && !strncmp(v, "(null)", 6)))
                break;
            if (len >= outlen)
                len = outlen - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            for (char *q = out; *q; q++)
                if (*q == '\t')
                    *q = ' ';
            return out;
        }
        p = end;
    }
    snprintf(out, outlen, "-");
    return out;
}

/* Read at least `want` bytes in total into buf (of cap bytes). */
static size_t read_more(SSL *ssl, char *buf, size_t have, size_t want,
                        size_t cap)
{
    int tries = 0;

    while (have < want) {
        int n;
        if (have >= cap || ++tries > 100000)
            fail("response too large");
        n = SSL_read(ssl, buf + have, (int)(cap - have));
        if (n <= 0)
            fail(have ? "connection closed in a response"
                      : "connection closed before a response");
        have += (size_t)n;
    }
    return have;
}

/* One GET on the connection; prints the RESP line. */
static void request(SSL *ssl, const char *path, int nreq)
{
    static char buf[MAX_RESPONSE + 1];
    char req[8192], v[5][512];
    size_t have = 0, head_len, body_len = 0;
    char *end;
    int status = 0, len;

    len = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nX-Test-Id: %s-%d\r\n\r\n",
                   path, host, test_id, nreq);
    if (len <= 0 || (size_t)len >= sizeof req)
        die("request too long");
    if (SSL_write(ssl, req, len) != len)
        fail("write");

    /* the header block */
    for (;;) {
        have = read_more(ssl, buf, have, have + 1, MAX_RESPONSE);
        buf[have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
    }
    head_len = (size_t)(end - buf) + 4;
    end[2] = '\0'; /* header block ends with its last "\r\n" */
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        fail("not an HTTP response");

    /* the body: Content-Length or chunked (read and dropped) */
    {
        char cl[64], te[64];
        header(buf, "Content-Length", cl, sizeof cl);
        header(buf, "Transfer-Encoding", te, sizeof te);
        header(buf, "X-Certauthz-User", v[0], sizeof v[0]);
        header(buf, "X-Remote-User", v[1], sizeof v[1]);
        header(buf, "X-Ssl-Verify", v[2], sizeof v[2]);
        header(buf, "X-Certauthz-Sha256", v[3], sizeof v[3]);
        header(buf, "X-Ssl-Client-Cn", v[4], sizeof v[4]);
        if (!strcasecmp(te, "chunked")) {
            /* body: move the rest to the front and walk the chunks */
            size_t pos = head_len;
            int chunks = 0;
            for (;;) {
                char *eol;
                unsigned long sz;
                if (++chunks > 10000)
                    fail("too many chunks");
                for (;;) {
                    buf[have] = '\0';
                    if ((eol = strstr(buf + pos, "\r\n")))
                        break;
                    have = read_more(ssl, buf, have, have + 1, MAX_RESPONSE);
                }
                sz = strtoul(buf + pos, NULL, 16);
                pos = (size_t)(eol - buf) + 2;
                if (sz > MAX_RESPONSE)
                    fail("chunk too large");
                have = read_more(ssl, buf, have, pos + sz + 2, MAX_RESPONSE);
                pos += sz + 2;
                if (sz == 0)
                    break; /* no trailers expected */
            }
        }
        else if (strcmp(cl, "-")) {
            body_len = strtoul(cl, NULL, 10);
            if (body_len > MAX_RESPONSE - head_len)
                fail("body too large");
            read_more(ssl, buf, have, head_len + body_len, MAX_RESPONSE);
        }
    }
    printf("RESP\t%d\tproto=%s\treused=%d\tuser=%s\tremote=%s\tverify=%s\t"
           "sha256=%s\tcn=%s\n",
           status, SSL_get_version(ssl), SSL_session_reused(ssl), v[0], v[1],
           v[2], v[3], v[4]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *ca = NULL, *tls = NULL, *cert = NULL;
    const char *resume = NULL, *save = NULL;
    SSL_SESSION *sess = NULL;
    int port = 0, pha = 0, noreneg = 0, timeout = 10, opt, nreq = 0;
    SSL_CTX *ctx;
    SSL *ssl = NULL;
    int fd = -1;

    while ((opt = getopt(argc, argv, "+p:C:h:s:t:aNi:T:R:S:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'C':
            ca = optarg;
            break;
        case 'h':
            host = optarg;
            break;
        case 's':
            sni = optarg;
            break;
        case 't':
            tls = optarg;
            break;
        case 'a':
            pha = 1;
            break;
        case 'N':
            noreneg = 1;
            break;
        case 'i':
            test_id = optarg;
            break;
        case 'T':
            timeout = atoi(optarg);
            break;
        case 'R':
            resume = optarg;
            break;
        case 'S':
            save = optarg;
            break;
        default:
            die("usage: see the comment at the top of t/tlsclient.c");
        }
    }
    if (port <= 0 || port > 65535 || !ca || optind >= argc || timeout <= 0
        || timeout > 60)
        die("usage: tlsclient -p PORT -C CAFILE [options] ACTION...");

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new");
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        die(ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (tls) {
        int v = !strcmp(tls, "1.2")   ? TLS1_2_VERSION
                : !strcmp(tls, "1.3") ? TLS1_3_VERSION
                                      : 0;
        if (!v)
            die("-t takes 1.2 or 1.3");
        SSL_CTX_set_min_proto_version(ctx, v);
        SSL_CTX_set_max_proto_version(ctx, v);
    }
    if (pha)
        SSL_CTX_set_post_handshake_auth(ctx, 1);
    if (noreneg)
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (resume) {
        FILE *f = fopen(resume, "r");
        if (!f)
            die(resume);
        sess = PEM_read_SSL_SESSION(f, NULL, NULL, NULL);
        fclose(f);
        if (!sess)
            die("cannot read the TLS session");
    }

    for (int i = optind; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "cert=", 5)) {
            cert = a + 5;
            if (ssl)
                use_cert(ssl, cert);
        }
        else if (!strcmp(a, "nocert")) {
            cert = NULL;
            if (ssl)
                use_cert(ssl, NULL);
        }
        else if (a[0] == '/') {
            if (++nreq > MAX_REQUESTS)
                die("too many requests");
            if (!ssl) {
                fd = connect_loopback(port, timeout);
                if (!(ssl = SSL_new(ctx)))
                    die("SSL_new");
                if (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)
                    die("SNI");
                use_cert(ssl, cert);
                if (sess && SSL_set_session(ssl, sess) != 1)
                    die("SSL_set_session");
                SSL_set_fd(ssl, fd);
                if (SSL_connect(ssl) != 1)
                    fail("handshake");
            }
            request(ssl, a, nreq);
        }
        else {
            die("unknown action (cert=PREFIX, nocert or /PATH)");
        }
    }
    if (ssl && save) {
        SSL_SESSION *out = SSL_get1_session(ssl);
        FILE *f = fopen(save, "w");
        if (!out || !f || !PEM_write_SSL_SESSION(f, out))
            die("cannot save the TLS session");
        fclose(f);
        SSL_SESSION_free(out);
    }
    SSL_SESSION_free(sess);
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return 0;
}
