/*
 * bench/watchdog/mixed.c: the Twilio side of MODE=mixed in
 * bench/watchdog/run.  CALLS calls start at random times over SPREAD_MS,
 * each of one kind (MIX gives their weights, in this order):
 *
 *   no_stream_start  POST /webhook/incoming_call, and nothing more.
 *   no_media         incoming_call, then the media WebSocket: Twilio's
 *                    "connected" and "start", a "media" frame every 20 ms
 *                    for a random MEDIA_MIN_MS..MEDIA_MAX_MS, then silence
 *                    with the WebSocket open, until the deadline + GRACE_MS;
 *                    then "stop" and a close frame (what Twilio does once a
 *                    redirect has taken the call off the stream).
 *   stream_dropped   the same media, then at the next frame's time the TCP
 *                    connection is closed: no "stop", no close frame.
 *   healthy          the same media, then "stop", a close frame (1000), the
 *                    server's close awaited, then POST /webhook/call_status
 *                    CallStatus=completed.  Must never be redirected.
 *
 * One thread, epoll, libc only.  Each call has its own connections: one
 * HTTP/1.1 connection per webhook request, one for the WebSocket (ws:// on
 * loopback, client frames masked as RFC 6455 requires).
 *
 * Times are CLOCK_REALTIME µs, the clock the mock stamps redirects with.
 * A "sent" time is taken when the last byte of the message was handed to
 * the kernel.  The deadline of a call, from this side:
 *   no_stream_start           incoming_call's answer read + START_TIMEOUT_MS
 *   no_media, stream_dropped  its last media frame sent + NO_MEDIA_MS
 * The program runs until every call is over and GRACE_MS has passed since
 * the last deadline, so that a redirect later than that counts as missing.
 *
 * OUT gets one line per call:
 *   <CallSid> <kind> <scheduled> <ic_sent> <ic_answered> <ic_status>
 *   <ws_101> <ws_status> <start_sent> <frames> <first_media> <last_media>
 *   <ended> <server_closed> <cs_sent> <cs_answered> <cs_status> <error>
 * (0 for a time that did not happen; ended: stop+close sent, or the TCP
 * close of a dropped stream; server_closed: the server's close frame or
 * EOF, when it came before ours; error "-" when none).
 * SUMMARY gets "user_s= sys_s= wall_s= errors= frames=" (this process's
 * getrusage, wall time from the first call to the end).
 *
 * usage: mixed PORT CALLS SPREAD_MS START_TIMEOUT_MS NO_MEDIA_MS GRACE_MS
 *              MEDIA_MIN_MS MEDIA_MAX_MS MIX SEED PREFIX ACCOUNT OUT SUMMARY
 *   MIX: four weights "no_stream_start:no_media:stream_dropped:healthy",
 *   e.g. 1:1:1:1; the counts are exact (rounded), the order shuffled.
 *   PREFIX: 10 hex digits (CallSid = CA PREFIX <index, 22 hex>; the
 *   streamSid is MZ and the same 32 hex digits).
 *
 * Exit status 0 when every call ran as planned, 1 when some did not (an
 * incoming_call not answered 200, no 101, a connection failing; see the
 * error column), 2 on bad usage or setup.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define FRAME_US      20000
#define IN_MAX        16384
#define OUT_MAX       65536
#define CLOSE_WAIT_US 2000000

enum { K_NO_START, K_NO_MEDIA, K_DROPPED, K_HEALTHY, K_N };

static const char *kind_name[K_N] = {
    "no_stream_start", "no_media", "stream_dropped", "healthy"
};

enum {
    P_WAIT,          /* before its scheduled start */
    P_IC,            /* incoming_call in flight */
    P_WS_101,        /* upgrade sent, waiting for 101 */
    P_MEDIA,         /* sending media every 20 ms */
    P_SILENT,        /* no_media: open and silent */
    P_CLOSING,       /* stop + close sent, waiting for the server's close */
    P_CS,            /* call_status in flight */
    P_DONE
};

typedef struct call_s  call_t;

typedef struct {
    call_t   *call;
    int       fd;              /* -1: closed */
    int       ws;
    int       connecting;
    int       want_out;
    char      in[IN_MAX];
    size_t    in_len;
    char      out[OUT_MAX];
    size_t    out_len, out_off;
} sock_t;

struct call_s {
    int        kind, phase;
    char       sid[35], stream_sid[35];
    long long  sched, ic_sent, ic_ans, ws_101, start_sent, first_media,
               last_media, ended, server_closed, cs_sent, cs_ans;
    long long  wake;           /* next timed action, 0: none */
    long long  deadline;       /* client side; 0 until known */
    int        ic_status, ws_status, cs_status;
    int        frames, frames_planned;
    int        stamp_pending;  /* a media frame still in our buffer */
    sock_t     http, wsk;
    char       err[48];
};

static int                    ep, port;
static const char            *account;
static call_t                *calls;
static int                    n_calls;
static long long              start_to_us, no_media_us, grace_us;
static char                   payload_b64[256];
static uint64_t               rng;
static long                   n_errors, n_frames;

static uint64_t rnd(void)    /* xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static double rnd01(void)
{
    return (rnd() >> 11) * (1.0 / 9007199254740992.0);
}

/* --- sockets -------------------------------------------------------------- */

static void set_events(sock_t *s, int out)
{
    struct epoll_event ev;

    if (s->want_out == out) {
        return;
    }
    s->want_out = out;
    ev.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0);
    ev.data.ptr = s;
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static int sock_open(sock_t *s, call_t *c, int ws)
{
    struct sockaddr_in sa;
    struct epoll_event ev;
    int one = 1;

    s->call = c;
    s->ws = ws;
    s->in_len = s->out_len = s->out_off = 0;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        return -1;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0
        && errno != EINPROGRESS)
    {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    s->connecting = 1;
    s->want_out = 1;
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
    ev.data.ptr = s;
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    return 0;
}

static void sock_close(sock_t *s)
{
    if (s->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->in_len = s->out_len = s->out_off = 0;
}

/* -1 error; 0 all written or queued (then EPOLLOUT is on) */
static int sock_flush(sock_t *s)
{
    if (s->connecting) {
        return 0;
    }
    while (s->out_off < s->out_len) {
        ssize_t w = send(s->fd, s->out + s->out_off, s->out_len - s->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(s, 1);
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        s->out_off += w;
    }
    s->out_off = s->out_len = 0;
    set_events(s, 0);
    return 0;
}

static void sent_stamps(call_t *c, sock_t *s);
static void stamp_media(call_t *c, long long now);

static int sock_send(sock_t *s, const void *p, size_t n)
{
    if (s->out_len + n > OUT_MAX) {
        memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
        s->out_len -= s->out_off;
        s->out_off = 0;
        if (s->out_len + n > OUT_MAX) {
            return -1;
        }
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    if (sock_flush(s) < 0) {
        return -1;
    }
    if (s->out_len == 0) {
        sent_stamps(s->call, s);
    }
    return 0;
}

static void fail(call_t *c, const char *why)
{
    if (c->err[0] == '\0') {
        snprintf(c->err, sizeof(c->err), "%s", why);
        n_errors++;
    }
    sock_close(&c->http);
    sock_close(&c->wsk);
    c->wake = 0;
    c->phase = P_DONE;
}

/* a request or frame was handed to the kernel whole: its "sent" time */
static void sent_stamps(call_t *c, sock_t *s)
{
    if (s->ws) {
        if (c->stamp_pending) {
            c->stamp_pending = 0;
            stamp_media(c, now_us());
        }
    } else if (c->phase == P_IC && c->ic_sent == 0) {
        c->ic_sent = now_us();
    } else if (c->phase == P_CS && c->cs_sent == 0) {
        c->cs_sent = now_us();
    }
}

/* --- HTTP: one request per connection ------------------------------------- */

static int http_request(call_t *c, const char *path, const char *body)
{
    char req[1024];
    int n;

    n = snprintf(req, sizeof(req),
                 "POST %s HTTP/1.1\r\n"
                 "Host: 127.0.0.1:%d\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n"
                 "Content-Length: %zu\r\n\r\n%s", path, port, strlen(body),
                 body);
    if (sock_open(&c->http, c, 0) < 0) {
        return -1;
    }
    return sock_send(&c->http, req, n);
}

/* a whole response in s->in? 1 yes (status in *code), 0 not yet, -1 broken */
static int http_response(sock_t *s, int *code)
{
    char *h = s->in, *end = s->in + s->in_len, *hend, *p;
    size_t hlen, clen = 0;

    hend = memmem(h, end - h, "\r\n\r\n", 4);
    if (hend == NULL) {
        return s->in_len >= sizeof(s->in) ? -1 : 0;
    }
    if (strncmp(h, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *code = atoi(h + 9);
    hlen = hend + 4 - h;
    *hend = '\0';
    p = strcasestr(h, "\r\nContent-Length:");
    *hend = '\r';
    if (p) {
        clen = strtoul(p + 17, NULL, 10);
    }
    return s->in_len >= hlen + clen ? 1 : 0;
}

/* --- WebSocket ------------------------------------------------------------ */

/* a masked client frame around payload p */
static int ws_send(call_t *c, int opcode, const char *p, size_t n)
{
    unsigned char f[OUT_MAX / 4], *d = f;
    uint32_t key = (uint32_t) rnd();
    unsigned char *k = (unsigned char *) &key;
    size_t i;

    if (n + 14 > sizeof(f)) {
        return -1;
    }
    *d++ = 0x80 | opcode;
    if (n < 126) {
        *d++ = 0x80 | n;
    } else if (n < 65536) {
        *d++ = 0x80 | 126;
        *d++ = n >> 8;
        *d++ = n & 0xff;
    } else {
        return -1;
    }
    memcpy(d, k, 4);
    d += 4;
    for (i = 0; i < n; i++) {
        *d++ = p[i] ^ k[i & 3];
    }
    return sock_send(&c->wsk, f, d - f);
}

static int ws_text(call_t *c, const char *json)
{
    return ws_send(c, 1, json, strlen(json));
}

static int ws_upgrade(call_t *c)
{
    unsigned char key[16];
    char kb[32], req[512];
    int i, n;

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char) rnd();
    }
    b64(key, 16, kb);
    n = snprintf(req, sizeof(req),
                 "GET /ws/twilio-media HTTP/1.1\r\n"
                 "Host: 127.0.0.1:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "User-Agent: Twilio.TmeWs/1.0\r\n\r\n", port, kb);
    if (sock_open(&c->wsk, c, 1) < 0) {
        return -1;
    }
    return sock_send(&c->wsk, req, n);
}

static int ws_start(call_t *c)
{
    char m[1024];

    if (ws_text(c, "{\"event\":\"connected\",\"protocol\":\"Call\","
                   "\"version\":\"1.0.0\"}") < 0)
    {
        return -1;
    }
    snprintf(m, sizeof(m),
             "{\"event\":\"start\",\"sequenceNumber\":\"1\","
             "\"streamSid\":\"%s\","
             "\"start\":{\"accountSid\":\"%s\",\"streamSid\":\"%s\","
             "\"callSid\":\"%s\",\"tracks\":[\"inbound\"],"
             "\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
             "\"sampleRate\":8000,\"channels\":1},"
             "\"customParameters\":{\"call_sid\":\"%s\"}}}",
             c->stream_sid, account, c->stream_sid, c->sid, c->sid);
    return ws_text(c, m);
}

static int ws_media(call_t *c)
{
    char m[1024];
    int k = c->frames + 1;    /* chunk; sequenceNumber is one more */

    snprintf(m, sizeof(m),
             "{\"event\":\"media\",\"sequenceNumber\":\"%d\","
             "\"streamSid\":\"%s\","
             "\"media\":{\"track\":\"inbound\",\"chunk\":\"%d\","
             "\"timestamp\":\"%d\",\"payload\":\"%s\"}}",
             k + 1, c->stream_sid, k, c->frames * (FRAME_US / 1000),
             payload_b64);
    return ws_text(c, m);
}

static int ws_stop_and_close(call_t *c)
{
    char m[512];
    unsigned char code[2] = { 1000 >> 8, 1000 & 0xff };

    snprintf(m, sizeof(m),
             "{\"event\":\"stop\",\"sequenceNumber\":\"%d\","
             "\"streamSid\":\"%s\","
             "\"stop\":{\"accountSid\":\"%s\",\"callSid\":\"%s\"}}",
             c->frames + 2, c->stream_sid, account, c->sid);
    if (ws_text(c, m) < 0) {
        return -1;
    }
    return ws_send(c, 8, (const char *) code, 2);
}

/*
 * Server frames in s->in: 1 when a close frame came, 0 otherwise, -1 when
 * broken.  Pings are answered; anything else is dropped.
 */
static int ws_read_frames(call_t *c)
{
    sock_t *s = &c->wsk;
    unsigned char *p = (unsigned char *) s->in;
    size_t off = 0, hl, len;
    int closed = 0;

    while (s->in_len - off >= 2) {
        int op = p[off] & 0x0f;
        len = p[off + 1] & 0x7f;
        hl = 2;
        if (p[off + 1] & 0x80) {
            return -1;    /* servers do not mask */
        }
        if (len == 126) {
            if (s->in_len - off < 4) {
                break;
            }
            len = (p[off + 2] << 8) | p[off + 3];
            hl = 4;
        } else if (len == 127) {
            if (s->in_len - off < 10) {
                break;
            }
            len = 0;
            for (int i = 0; i < 8; i++) {
                len = (len << 8) | p[off + 2 + i];
            }
            hl = 10;
        }
        if (hl + len > IN_MAX) {
            return -1;
        }
        if (s->in_len - off < hl + len) {
            break;
        }
        if (op == 8) {
            closed = 1;
        } else if (op == 9) {
            ws_send(c, 10, (const char *) p + off + hl, len);
        }
        off += hl + len;
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
    return closed;
}

/* --- the calls ------------------------------------------------------------ */

static void finish(call_t *c)
{
    c->phase = P_DONE;
    c->wake = 0;
}

static void stamp_media(call_t *c, long long now)
{
    c->last_media = now;
    if (c->first_media == 0) {
        c->first_media = now;
    }
    c->deadline = now + no_media_us;
}

/* our stream is over: a healthy call posts call_status, the others end */
static void stream_over(call_t *c, long long now)
{
    char body[256];

    if (c->kind != K_HEALTHY) {
        finish(c);
        return;
    }
    snprintf(body, sizeof(body),
             "CallSid=%s&AccountSid=%s&CallStatus=completed&CallDuration=%lld",
             c->sid, account, (now - c->ic_ans) / 1000000 + 1);
    c->phase = P_CS;
    c->wake = 0;
    if (http_request(c, "/webhook/call_status", body) < 0) {
        fail(c, "cs_connect");
    }
}

static void on_timer(call_t *c, long long now)
{
    char body[256];

    switch (c->phase) {

    case P_WAIT:
        snprintf(body, sizeof(body), "CallSid=%s&AccountSid=%s", c->sid,
                 account);
        c->phase = P_IC;
        if (http_request(c, "/webhook/incoming_call", body) < 0) {
            fail(c, "ic_connect");
        }
        return;

    case P_MEDIA:
        c->stamp_pending = 1;    /* stamped once handed to the kernel */
        if (ws_media(c) < 0) {
            fail(c, "ws_send");
            return;
        }
        c->frames++;
        n_frames++;
        if (c->frames < c->frames_planned) {
            c->wake = c->start_sent + (long long) (c->frames + 1) * FRAME_US;
            return;
        }
        /* no_media stays silent past its deadline; the others end at the
         * next frame's time */
        c->phase = P_SILENT;
        c->wake = c->kind == K_NO_MEDIA ? c->deadline + grace_us
                                        : c->last_media + FRAME_US;
        return;

    case P_SILENT:
        if (c->kind == K_DROPPED) {
            /* the connection just ends: no stop, no close frame */
            sock_close(&c->wsk);
            c->ended = now_us();
            finish(c);
            return;
        }
        /* no_media after deadline + grace, healthy at once: stop, close */
        if (ws_stop_and_close(c) < 0) {
            if (c->kind == K_HEALTHY) {
                fail(c, "ws_stop");
                return;
            }
            sock_close(&c->wsk);    /* the server closed it: fine */
            finish(c);
            return;
        }
        c->ended = now_us();
        c->phase = P_CLOSING;
        c->wake = now + CLOSE_WAIT_US;
        return;

    case P_CLOSING:
        /* no close from the server in time: go on without it */
        sock_close(&c->wsk);
        if (c->kind == K_HEALTHY) {
            snprintf(c->err, sizeof(c->err), "no_close_answer");
        }
        stream_over(c, now);
        return;

    default:
        return;
    }
}

static void ws_closed(call_t *c, long long now)
{
    /* the server's close frame or EOF */
    sock_close(&c->wsk);

    if (c->phase == P_CLOSING) {
        stream_over(c, now);
        return;
    }

    /* before we closed: the server ended the stream */
    c->server_closed = now;
    if (c->phase == P_WS_101) {
        fail(c, "ws_no_101");
        return;
    }
    if (c->kind == K_HEALTHY || c->phase == P_MEDIA) {
        /* a stream that should have gone on: the run is not as planned */
        fail(c, c->phase == P_MEDIA ? "server_closed_in_media"
                                    : "server_closed_healthy");
        return;
    }
    /* no_media while silent (after a redirect, say): recorded, not an error */
    finish(c);
}

static void on_http(call_t *c, sock_t *s, long long now)
{
    int code, rc;

    rc = http_response(s, &code);
    if (rc == 0) {
        return;
    }
    sock_close(s);
    if (rc < 0) {
        fail(c, c->phase == P_IC ? "ic_bad_answer" : "cs_bad_answer");
        return;
    }

    if (c->phase == P_IC) {
        c->ic_ans = now;
        c->ic_status = code;
        if (code != 200) {
            fail(c, "ic_not_200");
            return;
        }
        if (c->kind == K_NO_START) {
            c->deadline = now + start_to_us;
            finish(c);
            return;
        }
        c->phase = P_WS_101;
        if (ws_upgrade(c) < 0) {
            fail(c, "ws_connect");
        }
        return;
    }

    if (c->phase == P_CS) {
        c->cs_ans = now;
        c->cs_status = code;
        if (code != 200) {
            fail(c, "cs_not_200");
            return;
        }
        finish(c);
    }
}

static void on_ws_101(call_t *c, long long now)
{
    sock_t *s = &c->wsk;
    char *hend = memmem(s->in, s->in_len, "\r\n\r\n", 4);
    size_t hl;

    if (hend == NULL) {
        if (s->in_len >= sizeof(s->in)) {
            fail(c, "ws_bad_answer");
        }
        return;
    }
    hl = hend + 4 - s->in;
    c->ws_101 = now;
    c->ws_status = strncmp(s->in, "HTTP/1.1 ", 9) == 0 ? atoi(s->in + 9) : -1;
    if (c->ws_status != 101) {
        fail(c, "ws_not_101");
        return;
    }
    memmove(s->in, s->in + hl, s->in_len - hl);
    s->in_len -= hl;

    if (ws_start(c) < 0) {
        fail(c, "ws_send");
        return;
    }
    c->start_sent = now_us();
    c->phase = P_MEDIA;
    c->wake = c->start_sent + FRAME_US;
}

static void on_event(sock_t *s, uint32_t events)
{
    call_t *c = s->call;
    long long now;

    if (s->fd < 0) {
        return;
    }

    if (s->connecting) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            fail(c, s->ws ? "ws_connect" : "http_connect");
            return;
        }
        s->connecting = 0;
    }

    if (events & EPOLLOUT) {
        if (sock_flush(s) < 0) {
            if (s->ws) {
                ws_closed(c, now_us());
            } else {
                fail(c, "http_send");
            }
            return;
        }
        if (s->out_len == 0) {
            sent_stamps(c, s);
        }
    }

    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
        return;
    }

    for ( ;; ) {
        ssize_t r = recv(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len,
                         0);
        now = now_us();
        if (r > 0) {
            s->in_len += r;
            if (!s->ws) {
                on_http(c, s, now);
                if (s->fd < 0) {
                    return;
                }
            } else if (c->phase == P_WS_101) {
                on_ws_101(c, now);
                if (s->fd < 0 || c->phase != P_MEDIA) {
                    return;
                }
                if (s->in_len && ws_read_frames(c) != 0) {
                    ws_closed(c, now);
                    return;
                }
            } else {
                int rc = ws_read_frames(c);
                if (rc != 0) {
                    ws_closed(c, now);
                    return;
                }
            }
            if (s->in_len == sizeof(s->in)) {
                fail(c, "input_overflow");
                return;
            }
            continue;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        /* EOF or error */
        if (s->ws) {
            ws_closed(c, now);
        } else {
            fail(c, c->phase == P_IC ? "ic_eof" : "cs_eof");
        }
        return;
    }
}

/* --- main ----------------------------------------------------------------- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *) a, y = *(const long long *) b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct epoll_event evs[256];
    unsigned char pcm[160];
    long long t0, now, spread_us, media_min_us, media_max_us, hard_end;
    long long *offs;
    double w[K_N], wsum = 0;
    int count[K_N], kinds_left, i, k, *kind;
    const char *prefix;
    FILE *f;
    struct rusage ru;

    if (argc != 15) {
        fprintf(stderr,
            "usage: mixed PORT CALLS SPREAD_MS START_TIMEOUT_MS NO_MEDIA_MS "
            "GRACE_MS MEDIA_MIN_MS MEDIA_MAX_MS MIX SEED PREFIX ACCOUNT OUT "
            "SUMMARY\n");
        return 2;
    }
    port = atoi(argv[1]);
    n_calls = atoi(argv[2]);
    spread_us = atoll(argv[3]) * 1000;
    start_to_us = atoll(argv[4]) * 1000;
    no_media_us = atoll(argv[5]) * 1000;
    grace_us = atoll(argv[6]) * 1000;
    media_min_us = atoll(argv[7]) * 1000;
    media_max_us = atoll(argv[8]) * 1000;
    rng = strtoull(argv[10], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1;
    prefix = argv[11];
    account = argv[12];

    if (n_calls <= 0 || port <= 0 || start_to_us <= 0 || no_media_us <= 0
        || media_min_us < FRAME_US || media_max_us < media_min_us
        || strlen(prefix) != 10 || strlen(account) != 34
        || sscanf(argv[9], "%lf:%lf:%lf:%lf", &w[0], &w[1], &w[2], &w[3]) != 4)
    {
        fprintf(stderr, "mixed: bad arguments\n");
        return 2;
    }
    for (k = 0; k < K_N; k++) {
        if (w[k] < 0) {
            fprintf(stderr, "mixed: MIX weights must not be negative\n");
            return 2;
        }
        wsum += w[k];
    }
    if (wsum <= 0) {
        fprintf(stderr, "mixed: MIX has no weight\n");
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(pcm, 0xff, sizeof(pcm));
    b64(pcm, sizeof(pcm), payload_b64);

    /* exact counts per kind, then shuffled over the calls */
    kinds_left = n_calls;
    for (k = 0; k < K_N; k++) {
        count[k] = (int) (n_calls * w[k] / wsum);
        kinds_left -= count[k];
    }
    for (k = 0; kinds_left > 0; k = (k + 1) % K_N) {
        if (w[k] > 0) {
            count[k]++;
            kinds_left--;
        }
    }
    kind = calloc(n_calls, sizeof(int));
    for (i = 0, k = 0; k < K_N; k++) {
        for (int j = 0; j < count[k]; j++) {
            kind[i++] = k;
        }
    }
    for (i = n_calls - 1; i > 0; i--) {
        int j = (int) (rnd() % (uint64_t) (i + 1)), t = kind[i];
        kind[i] = kind[j];
        kind[j] = t;
    }

    offs = calloc(n_calls, sizeof(long long));
    for (i = 0; i < n_calls; i++) {
        offs[i] = (long long) (rnd01() * spread_us);
    }
    qsort(offs, n_calls, sizeof(long long), cmp_ll);

    calls = calloc(n_calls, sizeof(call_t));
    ep = epoll_create1(0);
    t0 = now_us() + 200000;
    for (i = 0; i < n_calls; i++) {
        call_t *c = &calls[i];
        long long dur;

        c->kind = kind[i];
        c->http.fd = c->wsk.fd = -1;
        snprintf(c->sid, sizeof(c->sid), "CA%s%022x", prefix, i);
        snprintf(c->stream_sid, sizeof(c->stream_sid), "MZ%s%022x", prefix, i);
        c->sched = c->wake = t0 + offs[i];
        dur = media_min_us
              + (long long) (rnd01() * (media_max_us - media_min_us));
        c->frames_planned = (int) (dur / FRAME_US);
        if (c->frames_planned < 1) {
            c->frames_planned = 1;
        }
    }
    hard_end = t0 + spread_us + media_max_us + start_to_us + no_media_us
               + grace_us + 30000000;

    for ( ;; ) {
        long long next = 0, last_deadline = 0;
        int all_done = 1, m, timeout;

        now = now_us();
        for (i = 0; i < n_calls; i++) {
            call_t *c = &calls[i];
            if (c->wake && c->wake <= now) {
                c->wake = 0;
                on_timer(c, now);
            }
        }

        now = now_us();
        for (i = 0; i < n_calls; i++) {
            call_t *c = &calls[i];
            if (c->phase != P_DONE) {
                all_done = 0;
            }
            if (c->wake && (next == 0 || c->wake < next)) {
                next = c->wake;
            }
            if (c->deadline > last_deadline && c->kind != K_HEALTHY) {
                last_deadline = c->deadline;
            }
        }
        if (all_done) {
            long long end = last_deadline + grace_us;
            if (now >= end || stop) {
                break;
            }
            next = end;
        }
        if (stop || now > hard_end) {
            for (i = 0; i < n_calls; i++) {
                if (calls[i].phase != P_DONE) {
                    fail(&calls[i], stop ? "interrupted" : "timed_out");
                }
            }
            break;
        }

        timeout = next ? (int) ((next - now + 999) / 1000) : 100;
        if (timeout > 100) {
            timeout = 100;
        }
        if (timeout < 0) {
            timeout = 0;
        }
        m = epoll_wait(ep, evs, 256, timeout);
        for (k = 0; k < m; k++) {
            on_event(evs[k].data.ptr, evs[k].events);
        }
    }

    f = fopen(argv[13], "w");
    if (f == NULL) {
        perror(argv[13]);
        return 2;
    }
    for (i = 0; i < n_calls; i++) {
        call_t *c = &calls[i];
        fprintf(f, "%s %s %lld %lld %lld %d %lld %d %lld %d %lld %lld %lld "
                "%lld %lld %lld %d %s\n", c->sid, kind_name[c->kind], c->sched,
                c->ic_sent, c->ic_ans, c->ic_status, c->ws_101, c->ws_status,
                c->start_sent, c->frames, c->first_media, c->last_media,
                c->ended, c->server_closed, c->cs_sent, c->cs_ans,
                c->cs_status, c->err[0] ? c->err : "-");
    }
    fclose(f);

    getrusage(RUSAGE_SELF, &ru);
    f = fopen(argv[14], "w");
    if (f) {
        fprintf(f, "user_s=%.3f sys_s=%.3f wall_s=%.3f errors=%ld frames=%ld\n",
                ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
                (now_us() - t0) / 1e6, n_errors, n_frames);
        fclose(f);
    }

    return n_errors ? 1 : 0;
}
