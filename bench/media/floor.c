/*
 * bench/media/floor.c: the floor of bench/media/run.  A WebSocket server
 * that does the kernel's share of the work and nothing else: one thread,
 * epoll, nonblocking sockets, the RFC 6455 handshake, then recv() into one
 * buffer and discard.  It never parses a frame.  Its CPU per frame is what
 * any server on this machine pays for the wake-ups and the reads alone, so
 * it bounds the ratio any server can reach against another.
 *
 *   cc -O2 -o floor floor.c -lssl -lcrypto
 *   floor PORT                    listens on 127.0.0.1:PORT
 *   floor PORT CERT KEY           the same over TLS (OpenSSL, nonblocking)
 *
 *   GET with Upgrade    101 with Sec-WebSocket-Accept (SHA-1 + base64 from
 *                       OpenSSL), then bytes are read and counted
 *   GET /status         {"bytes":N,"open":N,"accepted":N}: N = bytes read
 *                       after the handshakes, so the run can check that
 *                       every byte sent was read
 *
 * The end of a stream: with no parser it cannot see the client's close
 * frame, so the load generator (-C) shuts down its side after that frame;
 * on EOF this server writes a close frame (1000) and closes, which the
 * generator counts as a clean close.
 *
 * Reads are edge-triggered and stop at the first short read, with a
 * 4096-byte buffer: the same number of recv() per wake-up as the nginx
 * module (NGX_AGENTLOCATOR_MEDIA_READ_BUFFER, ngx_unix_recv's rule).
 *
 * Over TLS it reads with SSL_read() into the same buffer until OpenSSL
 * wants more bytes (a short SSL_read() is one record, not an empty
 * socket), which is what nginx's ngx_ssl_recv() does; its SSL_CTX has the
 * settings nginx gives its own (SSL_MODE_RELEASE_BUFFERS, read-ahead, no
 * session cache), so its memory per stream is OpenSSL's own at rest.  The
 * end of a stream: the generator's close_notify, then its EOF.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>


#define READ_BUFFER   4096     /* as the module's shared read buffer */
#define HEAD_MAX      1024     /* a handshake request longer is refused */
#define EVENTS        512      /* as nginx's default epoll_events */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


typedef struct {
    int        fd;
    int        open;            /* past the handshake */
    int        tls_hs;          /* the TLS handshake is not done */
    SSL       *ssl;             /* over TLS */
    size_t     head_len;
    char      *head;            /* the request until its blank line */
} conn_t;


static uint64_t  n_bytes, n_open, n_accepted;
static char      rbuf[READ_BUFFER];
static SSL_CTX  *tls_ctx;


static void
conn_close(int ep, conn_t *c)
{
    if (c->open) {
        n_open--;
    }

    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) {
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c->head);
    free(c);
}


/* a short answer on a fresh socket: its send buffer is empty */
static void
send_all(conn_t *c, const char *s, size_t len)
{
    ssize_t n;

    while (len) {
        if (c->ssl) {
            ERR_clear_error();
            n = SSL_write(c->ssl, s, (int) len);
            if (n <= 0) {
                return;
            }
            s += n;
            len -= (size_t) n;
            continue;
        }
        n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        s += n;
        len -= (size_t) n;
    }
}


/* the value of header NAME in the request HEAD, or NULL */
static const char *
header(const char *head, const char *name, size_t *len)
{
    const char *p, *e;
    size_t      n = strlen(name);

    for (p = strstr(head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            e = strstr(p, "\r\n");
            if (e == NULL) {
                return NULL;
            }
            while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            *len = (size_t) (e - p);
            return p;
        }
    }

    return NULL;
}


/* 0: answered and open, 1: answered and to be closed */
static int
handshake(conn_t *c)
{
    char           buf[512], accept[32], *kg;
    const char    *key;
    size_t         key_len;
    unsigned char  sha[SHA_DIGEST_LENGTH];
    int            n;

    if (strncmp(c->head, "GET /status ", 12) == 0) {
        char body[160];
        int  blen;

        blen = snprintf(body, sizeof(body),
                        "{\"bytes\":%llu,\"open\":%llu,\"accepted\":%llu}\n",
                        (unsigned long long) n_bytes,
                        (unsigned long long) n_open,
                        (unsigned long long) n_accepted);
        n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     blen, body);
        send_all(c, buf, (size_t) n);
        return 1;
    }

    key = header(c->head, "Sec-WebSocket-Key", &key_len);

    if (strncmp(c->head, "GET ", 4) != 0 || key == NULL || key_len != 24) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        send_all(c, bad, sizeof(bad) - 1);
        return 1;
    }

    kg = buf;
    memcpy(kg, key, 24);
    memcpy(kg + 24, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1((unsigned char *) kg, 24 + sizeof(WS_GUID) - 1, sha);
    EVP_EncodeBlock((unsigned char *) accept, sha, SHA_DIGEST_LENGTH);

    n = snprintf(buf, sizeof(buf), "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    send_all(c, buf, (size_t) n);

    c->open = 1;
    n_open++;
    n_accepted++;

    return 0;
}


/* recv() or SSL_read(): -1 with errno EAGAIN when there is nothing */
static ssize_t
conn_recv(conn_t *c, char *buf, size_t len)
{
    int  n, err;

    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, 0);
    }

    ERR_clear_error();
    n = SSL_read(c->ssl, buf, (int) len);
    if (n > 0) {
        return n;
    }
    err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN) {
        return 0;
    }
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
            ? EAGAIN : err == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    return -1;
}


static void
on_readable(int ep, conn_t *c, uint32_t events)
{
    static const char close_frame[] = { (char) 0x88, 0x02, 0x03, (char) 0xe8 };
    ssize_t   n;
    char     *end;
    int       rc;

    if (c->tls_hs) {
        ERR_clear_error();
        rc = SSL_do_handshake(c->ssl);
        if (rc != 1) {
            rc = SSL_get_error(c->ssl, rc);
            if (rc != SSL_ERROR_WANT_READ && rc != SSL_ERROR_WANT_WRITE) {
                conn_close(ep, c);
            }
            return;
        }
        c->tls_hs = 0;
    }

    for ( ;; ) {
        if (!c->open) {
            n = conn_recv(c, c->head + c->head_len, HEAD_MAX - c->head_len);
            if (n > 0) {
                c->head_len += (size_t) n;
                c->head[c->head_len] = '\0';
                end = strstr(c->head, "\r\n\r\n");
                if (end == NULL) {
                    if (c->head_len == HEAD_MAX) {
                        conn_close(ep, c);
                        return;
                    }
                    continue;
                }
                if (handshake(c) != 0) {
                    conn_close(ep, c);
                    return;
                }
                /* frames that came with the request are frames read */
                n_bytes += c->head_len - (size_t) (end + 4 - c->head);
                free(c->head);
                c->head = NULL;
                continue;
            }

        } else if (c->ssl) {
            /* one record per SSL_read(): on to what OpenSSL wants more of */
            n = conn_recv(c, rbuf, READ_BUFFER);
            if (n > 0) {
                n_bytes += (uint64_t) n;
                continue;
            }

        } else {
            n = recv(c->fd, rbuf, READ_BUFFER, 0);
            if (n > 0) {
                n_bytes += (uint64_t) n;
                if (n < READ_BUFFER && !(events & EPOLLRDHUP)) {
                    /*
                     * edge-triggered: the next arrival wakes us again; a
                     * FIN that came with this data wakes nobody, so read
                     * on to the EOF then (nginx's pending_eof)
                     */
                    return;
                }
                continue;
            }
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }

        /* EOF: the generator sent its close frame and shut down its side */
        if (n == 0 && c->open) {
            send_all(c, close_frame, sizeof(close_frame));
            if (c->ssl) {
                ERR_clear_error();
                (void) SSL_shutdown(c->ssl);
            }
        }
        conn_close(ep, c);
        return;
    }
}


int
main(int argc, char **argv)
{
    int                 ep, ls, fd, i, n, one = 1;
    struct sockaddr_in  sa;
    struct epoll_event  ev, evs[EVENTS];
    conn_t             *c;

    if ((argc != 2 && argc != 4) || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: floor PORT [CERT KEY]\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    if (argc == 4) {
        tls_ctx = SSL_CTX_new(TLS_server_method());
        if (tls_ctx == NULL
            || SSL_CTX_use_certificate_chain_file(tls_ctx, argv[2]) != 1
            || SSL_CTX_use_PrivateKey_file(tls_ctx, argv[3],
                                           SSL_FILETYPE_PEM) != 1)
        {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        /* as nginx's ngx_ssl_create() and its default ssl_session_cache */
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_read_ahead(tls_ctx, 1);
        SSL_CTX_set_options(tls_ctx, SSL_OP_NO_COMPRESSION
                                     | SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    }

    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (ls < 0) {
        perror("floor: socket");
        return 1;
    }
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(ls, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || listen(ls, 4096) != 0)
    {
        perror("floor: bind/listen");
        return 1;
    }

    ep = epoll_create1(0);
    if (ep < 0) {
        perror("floor: epoll_create1");
        return 1;
    }

    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);

    printf("floor listening on 127.0.0.1:%s pid %d\n", argv[1], (int) getpid());
    fflush(stdout);

    for ( ;; ) {
        n = epoll_wait(ep, evs, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("floor: epoll_wait");
            return 1;
        }

        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;

            if (c != NULL) {
                on_readable(ep, c, evs[i].events);
                continue;
            }

            /* the listener: take every pending connection */
            while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

                c = calloc(1, sizeof(conn_t));
                if (c == NULL || (c->head = malloc(HEAD_MAX + 1)) == NULL) {
                    fprintf(stderr, "floor: out of memory\n");
                    return 1;
                }
                c->fd = fd;

                if (tls_ctx) {
                    c->ssl = SSL_new(tls_ctx);
                    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
                        fprintf(stderr, "floor: SSL_new failed\n");
                        return 1;
                    }
                    SSL_set_accept_state(c->ssl);
                    c->tls_hs = 1;
                }

                /* over TLS writable too (nginx registers both): a
                 * handshake may wait for room to write */
                ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET
                            | (tls_ctx ? EPOLLOUT : 0);
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                    perror("floor: epoll_ctl");
                    SSL_free(c->ssl);
                    close(fd);
                    free(c->head);
                    free(c);
                    continue;
                }

                /* the request may be there already */
                on_readable(ep, c, 0);
            }
        }
    }
}
