/*
 * bench/watchdog/mock.c: a fast stand-in for Twilio's REST endpoint
 *   POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json
 * for bench/watchdog/run.  One thread, epoll, libc only; HTTP/1.1 with
 * keep-alive and pipelining; "Expect: 100-continue" is honoured.  Every
 * request is answered 200 with a small JSON document at once, and recorded
 * when its last body byte has been read:
 *
 *   <CLOCK_REALTIME µs> <CallSid or -> <connection no.> <ok> <why>
 *   <body length>
 *
 * ok is 1 when the request is what the module must send: POST, the path
 * above, "Authorization: Basic base64(AUTH)", a form Content-Type and a
 * body that starts with "Twiml=".  Otherwise ok is 0 and why names the
 * first thing wrong.  GET /ping answers 200 and is not recorded.
 *
 * The records go through stdio to RECORDS, flushed whenever the server has
 * been idle for 10 ms, every 100 ms while it is busy, and at SIGTERM/SIGINT,
 * when a summary (connections, requests, most connections open at once)
 * goes to SUMMARY.
 *
 * usage: mock PORTFILE RECORDS SUMMARY USER:PASSWORD
 * (listens on an ephemeral port of 127.0.0.1, written to PORTFILE)
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BUF_MAX   (256 * 1024)
#define OUT_MAX   (64 * 1024)

typedef struct {
    int       fd;
    unsigned  no;
    char     *in;
    size_t    in_len, in_size;
    char      out[OUT_MAX];
    size_t    out_len, out_off;
    int       continued;      /* 100 Continue sent for the current request */
    int       want_out;       /* EPOLLOUT registered */
    int       close_after;
} conn_t;

static FILE                  *rec;
static char                   auth_expected[512];
static unsigned long long     n_conns, n_requests, n_bad, n_continue;
static unsigned long long     open_now, open_max;
static unsigned long long     n_closed_by_peer;

static int is_hex32(const char *p)
{
    int i;
    for (i = 0; i < 32; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')
              || (p[i] >= 'A' && p[i] <= 'F')))
        {
            return 0;
        }
    }
    return 1;
}

/* the value of header "name" in [h, end), or NULL; *len its length */
static const char *header(const char *h, const char *end, const char *name,
    size_t *len)
{
    size_t nl = strlen(name);
    const char *p = h, *eol, *v;

    while (p < end) {
        eol = memmem(p, end - p, "\r\n", 2);
        if (eol == NULL) {
            eol = end;
        }
        if ((size_t) (eol - p) > nl && p[nl] == ':'
            && strncasecmp(p, name, nl) == 0)
        {
            v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            *len = eol - v;
            while (*len && (v[*len - 1] == ' ' || v[*len - 1] == '\t')) {
                (*len)--;
            }
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

static void queue_out(conn_t *c, const char *s, size_t n)
{
    if (c->out_len + n > OUT_MAX) {
        /* compact, then give up on this connection if still no room */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n > OUT_MAX) {
            c->close_after = 2;    /* broken: close at once */
            return;
        }
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static int flush_out(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        c->out_off += w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* parse and answer what is complete in c->in; -1: close the connection */
static int process(conn_t *c)
{
    size_t off = 0;

    for ( ;; ) {
        char *req = c->in + off, *end = c->in + c->in_len;
        char *hend = memmem(req, end - req, "\r\n\r\n", 4);
        const char *v, *why = "";
        size_t vl, clen = 0, hlen;
        char sid[35] = "-", body[160];
        int ok = 1, n;

        if (hend == NULL) {
            if (end - req > 64 * 1024) {
                return -1;
            }
            break;
        }
        hlen = hend + 4 - req;

        v = header(req, hend + 2, "Content-Length", &vl);
        if (v) {
            clen = strtoul(v, NULL, 10);
        }
        if (clen > BUF_MAX - 64 * 1024) {
            return -1;
        }

        if ((size_t) (end - req) < hlen + clen) {
            /* the body is not all here: maybe the client waits for 100 */
            v = header(req, hend + 2, "Expect", &vl);
            if (v && vl == 12 && strncasecmp(v, "100-continue", 12) == 0
                && !c->continued)
            {
                queue_out(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->continued = 1;
                n_continue++;
            }
            break;
        }

        /* a whole request */

        if (strncmp(req, "GET /ping ", 10) == 0) {
            queue_out(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\npong\n",
                      43);
            off += hlen + clen;
            c->continued = 0;
            continue;
        }

        {
            static const char pre[] = "POST /2010-04-01/Accounts/";
            char *p = req;
            if (strncmp(p, pre, sizeof(pre) - 1) != 0) {
                ok = 0; why = "method_or_path";
            } else {
                p += sizeof(pre) - 1;
                if (!(p[0] == 'A' && p[1] == 'C' && is_hex32(p + 2)
                      && strncmp(p + 34, "/Calls/", 7) == 0))
                {
                    ok = 0; why = "account_path";
                } else {
                    p += 41;
                    if (p[0] == 'C' && p[1] == 'A' && is_hex32(p + 2)
                        && strncmp(p + 34, ".json ", 6) == 0)
                    {
                        memcpy(sid, p, 34);
                        sid[34] = '\0';
                    } else {
                        ok = 0; why = "call_path";
                    }
                }
            }
        }

        if (ok) {
            v = header(req, hend + 2, "Authorization", &vl);
            if (v == NULL || vl != strlen(auth_expected)
                || strncmp(v, auth_expected, vl) != 0)
            {
                ok = 0; why = "authorization";
            }
        }
        if (ok) {
            v = header(req, hend + 2, "Content-Type", &vl);
            if (v == NULL || vl < 33
                || strncasecmp(v, "application/x-www-form-urlencoded", 33))
            {
                ok = 0; why = "content_type";
            }
        }
        if (ok && (clen < 7 || strncmp(req + hlen, "Twiml=", 6) != 0)) {
            ok = 0; why = "body";
        }

        v = header(req, hend + 2, "Connection", &vl);
        if (v && vl == 5 && strncasecmp(v, "close", 5) == 0) {
            c->close_after = 1;
        }

        n_requests++;
        if (!ok) {
            n_bad++;
        }
        fprintf(rec, "%lld %s %u %d %s %zu\n", now_us(), sid, c->no, ok,
                ok ? "-" : why, clen);

        n = snprintf(body, sizeof(body),
                     "{\"sid\":\"%s\",\"status\":\"in-progress\"}", sid);
        {
            char head[256];
            int hn = snprintf(head, sizeof(head),
                              "HTTP/1.1 200 OK\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: %d\r\n%s\r\n", n,
                              c->close_after ? "Connection: close\r\n" : "");
            queue_out(c, head, hn);
            queue_out(c, body, n);
        }

        off += hlen + clen;
        c->continued = 0;

        if (c->close_after) {
            break;
        }
    }

    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return 0;
}

static void close_conn(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c);
    open_now--;
}

int main(int argc, char **argv)
{
    int ls, ep, one = 1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    struct epoll_event ev, evs[256];
    FILE *f;
    char raw[400];
    int dirty = 0;
    long long last_flush = 0;

    if (argc != 5 || strlen(argv[4]) > 300) {
        fprintf(stderr, "usage: mock PORTFILE RECORDS SUMMARY USER:PASSWORD\n");
        return 2;
    }

    strcpy(raw, argv[4]);
    strcpy(auth_expected, "Basic ");
    b64((unsigned char *) raw, strlen(raw), auth_expected + 6);

    rec = fopen(argv[2], "w");
    if (rec == NULL) {
        perror(argv[2]);
        return 1;
    }
    setvbuf(rec, NULL, _IOFBF, 1 << 20);

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *) &sa, sizeof(sa)) < 0
        || listen(ls, 4096) < 0
        || getsockname(ls, (struct sockaddr *) &sa, &sl) < 0)
    {
        perror("mock: listen");
        return 1;
    }

    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);

    f = fopen(argv[1], "w");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "%d\n", ntohs(sa.sin_port));
    fclose(f);

    while (!stop) {
        int i, n = epoll_wait(ep, evs, 256, 10);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("mock: epoll_wait");
            return 1;
        }

        /* flushed when idle, and at least every 100 ms while busy */
        if (dirty && (n == 0 || now_us() - last_flush > 100000)) {
            fflush(rec);
            dirty = 0;
            last_flush = now_us();
        }

        if (n == 0) {
            continue;
        }

        for (i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;

            if (c == NULL) {
                for ( ;; ) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) {
                        break;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                               sizeof(one));
                    c = calloc(1, sizeof(conn_t));
                    c->fd = fd;
                    c->no = (unsigned) ++n_conns;
                    c->in_size = 16384;
                    c->in = malloc(c->in_size);
                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    if (++open_now > open_max) {
                        open_max = open_now;
                    }
                }
                continue;
            }

            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                int eof = 0;
                for ( ;; ) {
                    ssize_t r;
                    if (c->in_len == c->in_size) {
                        if (c->in_size >= BUF_MAX) {
                            eof = 1;
                            break;
                        }
                        c->in_size *= 2;
                        c->in = realloc(c->in, c->in_size);
                    }
                    r = recv(c->fd, c->in + c->in_len,
                             c->in_size - c->in_len, 0);
                    if (r > 0) {
                        c->in_len += r;
                        continue;
                    }
                    if (r == 0) {
                        eof = 1;
                    } else if (errno == EINTR) {
                        continue;
                    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        eof = 1;
                    }
                    break;
                }

                if (process(c) < 0) {
                    close_conn(ep, c);
                    continue;
                }
                dirty = 1;

                if (flush_out(c) < 0 || c->close_after == 2) {
                    close_conn(ep, c);
                    continue;
                }
                if (eof) {
                    n_closed_by_peer++;
                    close_conn(ep, c);
                    continue;
                }
                if (c->close_after && c->out_len == 0) {
                    close_conn(ep, c);
                    continue;
                }
            } else if (evs[i].events & EPOLLOUT) {
                if (flush_out(c) < 0
                    || (c->close_after && c->out_len == 0))
                {
                    close_conn(ep, c);
                    continue;
                }
            }

            if (c->want_out != (c->out_len != 0)) {
                c->want_out = (c->out_len != 0);
                ev.events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0);
                ev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }

    fflush(rec);
    fclose(rec);

    f = fopen(argv[3], "w");
    if (f) {
        fprintf(f, "connections=%llu requests=%llu bad=%llu continue100=%llu "
                "open_max=%llu closed_by_peer=%llu\n", n_conns, n_requests,
                n_bad, n_continue, open_max, n_closed_by_peer);
        fclose(f);
    }
    return 0;
}
