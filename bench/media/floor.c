/*
 * bench/media/floor.c: the floor of bench/media/run.  A WebSocket server
 * that does the kernel's share of the work and nothing else: one thread,
 * epoll, nonblocking sockets, the RFC 6455 handshake, then recv() into one
 * buffer and discard.  It never parses a frame.  Its CPU per frame is what
 * any server on this machine pays for the wake-ups and the reads alone, so
 * it bounds the ratio any server can reach against another.
 *
 *   cc -O2 -o floor floor.c -lcrypto
 *   floor PORT                    listens on 127.0.0.1:PORT
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

#include <openssl/evp.h>
#include <openssl/sha.h>


#define READ_BUFFER   4096     /* as the module's shared read buffer */
#define HEAD_MAX      1024     /* a handshake request longer is refused */
#define EVENTS        512      /* as nginx's default epoll_events */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


typedef struct {
    int        fd;
    int        open;            /* past the handshake */
    size_t     head_len;
    char      *head;            /* the request until its blank line */
} conn_t;


static uint64_t  n_bytes, n_open, n_accepted;
static char      rbuf[READ_BUFFER];


static void
conn_close(int ep, conn_t *c)
{
    if (c->open) {
        n_open--;
    }

    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->head);
    free(c);
}


/* a short answer on a fresh socket: its send buffer is empty */
static void
send_all(int fd, const char *s, size_t len)
{
    ssize_t n;

    while (len) {
        n = send(fd, s, len, MSG_NOSIGNAL);
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
        send_all(c->fd, buf, (size_t) n);
        return 1;
    }

    key = header(c->head, "Sec-WebSocket-Key", &key_len);

    if (strncmp(c->head, "GET ", 4) != 0 || key == NULL || key_len != 24) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";
        send_all(c->fd, bad, sizeof(bad) - 1);
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
    send_all(c->fd, buf, (size_t) n);

    c->open = 1;
    n_open++;
    n_accepted++;

    return 0;
}


static void
on_readable(int ep, conn_t *c, uint32_t events)
{
    static const char close_frame[] = { (char) 0x88, 0x02, 0x03, (char) 0xe8 };
    ssize_t   n;
    char     *end;

    for ( ;; ) {
        if (!c->open) {
            n = recv(c->fd, c->head + c->head_len, HEAD_MAX - c->head_len, 0);
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
            send_all(c->fd, close_frame, sizeof(close_frame));
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

    if (argc != 2 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

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

                ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                    perror("floor: epoll_ctl");
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
