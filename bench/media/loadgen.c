/*
 * bench/media/loadgen.c: a Twilio Media Streams load generator for
 * bench/media/run.  Single-threaded, epoll, libc and (for -T) OpenSSL.
 *
 *   cc -O2 -o loadgen loadgen.c -lssl -lcrypto
 *   loadgen -p PORT -m paced -s 2000 -d 20 -w 3 -P SERVER_PID
 *
 * It opens STREAMS WebSockets to 127.0.0.1:PORT (at most -c handshakes in
 * flight at once, so the listen backlog never overflows), checks the 101
 * and Sec-WebSocket-Accept, sends "connected" and "start" with a CallSid
 * and StreamSid unique to this run and stream, then:
 *
 *   paced  one media frame per stream every -i ms (20); stream i's phase is
 *          i * 20 ms / STREAMS, so the streams spread evenly over 20 ms
 *   flood  media frames as fast as each socket takes them
 *
 * Streams marked echo (-e N: N of the streams, spread evenly) connect to
 * the echo path (-E) and expect every media frame back; the payload's
 * first 16 bytes carry the send time (CLOCK_REALTIME ns), the stream index
 * and the chunk number, because the echo returns only the payload.  The
 * round trip of each echo is the frame processing lag: "lag" ends at the
 * kernel's arrival stamp of the echo (SO_TIMESTAMPNS; with several echoes
 * in one read, that of the last), so the time this process takes to get
 * round to reading it is left out; "readlag" ends when it is read.
 *
 * After the ramp (all handshakes done) and -w seconds of warm-up, a window
 * of -d seconds is measured: frames sent, frames echoed, lag percentiles,
 * this process's CPU, and with -P the server's CPU (utime+stime of
 * /proc/PID/stat) and VmRSS, sampled at the window's edges.  Bytes written
 * but not yet read by the server (user-space queue here plus the kernel
 * queues of /proc/net/tcp) are subtracted, so "processed" frames are those
 * the server really read in the window even when it falls behind.  Then
 * every stream sends "stop" and a close frame and waits for the server's
 * close frame and TCP close.  With -C it also shuts down its side of the
 * connection once the close frame is out, for a server that reads bytes
 * without parsing frames (floor.c): it answers the EOF.
 *
 * With -T every stream (and -R's registration) runs over TLS: an OpenSSL
 * client, nonblocking, in the same epoll loop; the TLS handshake comes
 * before the WebSocket one and counts in the ramp.  The server's
 * certificate is not verified (the run makes a self-signed one).  -C then
 * sends a close_notify before shutting down its side.  Echo round trips
 * over TLS end when the echo is read (no kernel stamp through OpenSSL).
 *
 * Output: human-readable lines on stderr, one "RESULT key=value ..." line on
 * stdout.  Exit 0 when it measured (whatever the figures), 1 on bad usage
 * or when it could not run at all.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
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
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>


#define NS_PER_MS        1000000ULL
#define NS_PER_S         1000000000ULL

#define IN_CAP           8192
#define OUT_START        4096
#define PACED_OUT_LIMIT  (64 * 1024)    /* a paced stream queues no more */
#define FLOOD_BATCH      16             /* frames generated per write */
#define FLOOD_PER_EVENT  4              /* batches per writable event */
#define HANDSHAKE_TIMEOUT_S  10
#define CLOSE_TIMEOUT_S      60   /* a server that fell behind reads its backlog first */

#define AUDIO_LEN        160            /* 20 ms of 8 kHz mu-law */
#define AUDIO_B64_LEN    216
#define STAMP_LEN        18             /* bytes of the payload we vary */
#define STAMP_B64_LEN    24

#define LAG_BUCKET_NS    10000ULL       /* 10 us */
#define LAG_BUCKETS      200000         /* up to 2 s, then overflow */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_IDLE = 0, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING,
       ST_DONE, ST_FAILED };

enum { PH_RAMP = 0, PH_WARMUP, PH_WINDOW, PH_STOPPING, PH_DONE };


typedef struct {
    int        fd;
    uint32_t   idx;
    uint8_t    state;
    uint8_t    echo;
    uint8_t    epout;           /* EPOLLOUT is registered */
    uint8_t    got_close;       /* the server's close frame arrived */
    uint8_t    bad_order;
    uint8_t    shut;            /* -C: our side is shut down */
    uint8_t    tls_hs;          /* -T: the TLS handshake is not done */
    SSL       *ssl;             /* -T */
    char       key[25];
    char       accept[29];
    uint8_t   *in;
    uint32_t   in_len;
    uint32_t   in_cap;
    uint8_t   *out;
    uint32_t   out_off;
    uint32_t   out_len;
    uint32_t   out_cap;
    uint32_t   seq;             /* next sequenceNumber */
    uint32_t   chunk;           /* next media chunk */
    uint32_t   echo_next;       /* chunk we expect echoed next */
    uint64_t   t_begin;         /* connect() */
    uint64_t   t_open;          /* start sent */
    uint64_t   rx_real_ns;      /* arrival stamp of the last read (echo) */
    uint64_t   media_sent;
    uint64_t   echoed;
    char       call_sid[35];
    char       stream_sid[35];
} conn_t;


typedef struct {
    uint64_t   t;               /* CLOCK_MONOTONIC ns */
    uint64_t   frames;          /* media frames generated */
    uint64_t   wire_bytes;      /* their bytes on the wire */
    uint64_t   echoed;
    uint64_t   user_pending;    /* bytes not yet written to sockets */
    uint64_t   kernel_pending;  /* bytes in kernel queues not yet read */
    int        kernel_ok;
    double     self_cpu;        /* s */
    double     machine_busy;    /* s, all CPUs, from /proc/stat */
    double     server_cpu;      /* s */
    long       server_rss_kb;
    long       server_shm_kb;    /* of it, shared memory: the zone */
    uint32_t   open;
    uint64_t   late_frames;
    uint64_t   skipped;
} snap_t;


/* options */
static const char *opt_host = "127.0.0.1";
static int         opt_port;
static int         opt_flood;
static uint32_t    opt_streams = 2000;
static uint32_t    opt_echo;
static double      opt_duration = 20;
static double      opt_warmup = 3;
static uint32_t    opt_connect_window = 200;
static uint32_t    opt_interval_ms = 20;
static uint32_t    opt_tick_us;
static int         opt_server_pid;
static int         opt_half_close;
static const char *opt_path = "/ws/twilio-media";
static const char *opt_echo_path = "/ws/twilio-media-echo";
static const char *opt_register = NULL;   /* incoming_call path, or none */
static int         opt_tls;
static SSL_CTX    *tls_ctx;

static conn_t     *conns;
static int         ep;
static uint64_t    rng_state;
static char        account_sid[35];
static char        run_nonce[9];
static char        audio_tail_b64[AUDIO_B64_LEN - STAMP_B64_LEN + 1];
static long        clk_tck;

/* totals */
static uint64_t    n_frames, n_wire_bytes, n_echoed, n_late, n_skipped;
static uint64_t    n_ws_bytes;      /* every frame, control ones too */
static uint64_t    n_connect_fail, n_handshake_fail, n_timeouts, n_dropped;
static uint64_t    n_server_close, n_closed_clean, n_closed_unclean;
static uint64_t    n_echo_bad, n_unexpected, n_ping;
static uint64_t    max_late_ns;
static uint32_t    n_open, n_inflight, next_to_open, n_resolved;
static int         phase;
typedef struct {
    uint64_t   hist[LAG_BUCKETS + 1];
    uint64_t   count;
    uint64_t   max_ns;
    uint64_t   sum_ns;
} lagh_t;

/* echo round trips: to the kernel's arrival stamp, and to our read */
static lagh_t      lag_arrive, lag_read;
static uint64_t    late_max_window;
static uint64_t    hs_total_ns, hs_max_ns, hs_count;


/* --- small helpers ------------------------------------------------------ */

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * NS_PER_S + ts.tv_nsec;
}


/* CLOCK_REALTIME: the clock of the kernel's SO_TIMESTAMPNS stamps */
static uint64_t
real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * NS_PER_S + ts.tv_nsec;
}


static uint64_t
rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}


static void
die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}


static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
b64_encode(char *dst, const uint8_t *src, size_t len)
{
    char   *d = dst;
    size_t  i;

    for (i = 0; i + 2 < len; i += 3) {
        *d++ = b64chars[src[i] >> 2];
        *d++ = b64chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
        *d++ = b64chars[((src[i + 1] & 15) << 2) | (src[i + 2] >> 6)];
        *d++ = b64chars[src[i + 2] & 63];
    }

    if (i < len) {
        *d++ = b64chars[src[i] >> 2];
        if (i + 1 < len) {
            *d++ = b64chars[((src[i] & 3) << 4) | (src[i + 1] >> 4)];
            *d++ = b64chars[(src[i + 1] & 15) << 2];
        } else {
            *d++ = b64chars[(src[i] & 3) << 4];
            *d++ = '=';
        }
        *d++ = '=';
    }

    *d = '\0';
    return d - dst;
}


static int
b64_val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}


/* decodes exactly 4*n characters without padding into 3*n bytes */
static int
b64_decode_groups(uint8_t *dst, const char *src, size_t groups)
{
    size_t  g;
    int     a, b, c, d;

    for (g = 0; g < groups; g++) {
        a = b64_val(src[0]); b = b64_val(src[1]);
        c = b64_val(src[2]); d = b64_val(src[3]);
        if ((a | b | c | d) < 0) {
            return -1;
        }
        dst[0] = (uint8_t) (a << 2 | b >> 4);
        dst[1] = (uint8_t) (b << 4 | c >> 2);
        dst[2] = (uint8_t) (c << 6 | d);
        dst += 3;
        src += 4;
    }

    return 0;
}


/* --- SHA-1, for Sec-WebSocket-Accept ------------------------------------ */

#define ROL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

static void
sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t  h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                       0xC3D2E1F0 };
    uint8_t   buf[256], *block;
    uint32_t  w[80], a, b, c, d, e, f, k, t;
    uint64_t  bits = (uint64_t) len * 8;
    size_t    total, off;
    int       i;

    /* only short messages here (the key and the GUID: 60 bytes) */
    total = ((len + 8) / 64 + 1) * 64;
    if (total > sizeof(buf)) {
        die("%s", "sha1: message too long");
    }
    memset(buf, 0, total);
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    for (i = 0; i < 8; i++) {
        buf[total - 1 - i] = (uint8_t) (bits >> (8 * i));
    }

    for (off = 0; off < total; off += 64) {
        block = buf + off;

        for (i = 0; i < 16; i++) {
            w[i] = (uint32_t) block[4 * i] << 24
                   | (uint32_t) block[4 * i + 1] << 16
                   | (uint32_t) block[4 * i + 2] << 8 | block[4 * i + 3];
        }
        for (i = 16; i < 80; i++) {
            w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        }

        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];

        for (i = 0; i < 80; i++) {
            if (i < 20) {
                f = (b & c) | (~b & d); k = 0x5A827999;
            } else if (i < 40) {
                f = b ^ c ^ d; k = 0x6ED9EBA1;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC;
            } else {
                f = b ^ c ^ d; k = 0xCA62C1D6;
            }
            t = ROL(a, 5) + f + e + k + w[i];
            e = d; d = c; c = ROL(b, 30); b = a; a = t;
        }

        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }

    for (i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t) (h[i] >> 24);
        out[4 * i + 1] = (uint8_t) (h[i] >> 16);
        out[4 * i + 2] = (uint8_t) (h[i] >> 8);
        out[4 * i + 3] = (uint8_t) h[i];
    }
}


/* --- /proc sampling ----------------------------------------------------- */

static double
self_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


/* /proc/PID/NAME into buf, NUL-terminated; -1 when the process is gone */
static ssize_t
proc_read(int pid, const char *name, char *buf, size_t size)
{
    char     path[64];
    int      fd;
    ssize_t  n;

    snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';

    return n;
}


/* utime+stime of the whole process in seconds; -1 when it is gone */
static double
proc_cpu(int pid)
{
    char                buf[2048], *p;
    int                 i;
    unsigned long long  ut, st;

    if (proc_read(pid, "stat", buf, sizeof(buf)) < 0) {
        return -1;
    }

    /* fields after the ")" that ends comm: state is field 3 */
    p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    p += 2;
    for (i = 3; i < 14 && p; i++) {
        p = strchr(p, ' ');
        if (p) {
            p++;
        }
    }
    if (p == NULL || sscanf(p, "%llu %llu", &ut, &st) != 2) {
        return -1;
    }

    return (double) (ut + st) / clk_tck;
}


/* a "Field:   N kB" line of /proc/PID/status, read into buf; -1 if none */
static long
status_kb(const char *buf, const char *field)
{
    const char  *p;

    p = strstr(buf, field);
    return p ? strtol(p + strlen(field), NULL, 10) : -1;
}


/*
 * Bytes written to the server's port and not yet read by the server: the
 * receive queues of the server's sockets plus the send queues of ours.
 */
static int
kernel_pending(uint64_t *bytes)
{
    FILE          *f;
    char           line[512];
    unsigned int   lport, rport, st;
    unsigned long  txq, rxq;
    uint64_t       sum = 0;

    f = fopen("/proc/net/tcp", "r");
    if (f == NULL) {
        return -1;
    }

    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return -1;
    }

    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%*d: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &st,
                   &txq, &rxq) != 5)
        {
            continue;
        }
        if (st != 1) {          /* ESTABLISHED only */
            continue;
        }
        if ((int) lport == opt_port) {
            sum += rxq;
        } else if ((int) rport == opt_port) {
            sum += txq;
        }
    }

    fclose(f);
    *bytes = sum;
    return 0;
}


/* busy time of all CPUs in seconds: everything in /proc/stat but idle */
static double
machine_busy(void)
{
    FILE               *f;
    unsigned long long  v[10] = { 0 };
    double              busy = -1;

    f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
    {
        /* user nice system idle iowait irq softirq steal */
        busy = (double) (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / clk_tck;
    }
    fclose(f);
    return busy;
}


static void
take_snap(snap_t *s)
{
    char      status[4096];
    uint32_t  i;
    uint64_t  user = 0;

    s->server_cpu = opt_server_pid ? proc_cpu(opt_server_pid) : 0;
    s->server_rss_kb = opt_server_pid ? -1 : 0;
    s->server_shm_kb = s->server_rss_kb;

    if (opt_server_pid
        && proc_read(opt_server_pid, "status", status, sizeof(status)) >= 0)
    {
        s->server_rss_kb = status_kb(status, "VmRSS:");
        s->server_shm_kb = status_kb(status, "RssShmem:");
    }

    for (i = 0; i < opt_streams; i++) {
        if (conns[i].state == ST_OPEN) {
            user += conns[i].out_len - conns[i].out_off;
        }
    }

    s->kernel_ok = kernel_pending(&s->kernel_pending) == 0;
    s->user_pending = user;
    s->t = mono_ns();
    s->frames = n_frames;
    s->wire_bytes = n_wire_bytes;
    s->echoed = n_echoed;
    s->self_cpu = self_cpu();
    s->machine_busy = machine_busy();
    s->open = n_open;
    s->late_frames = n_late;
    s->skipped = n_skipped;
}


/* --- output to a stream ------------------------------------------------- */

static void
ep_set(conn_t *c, int want_out)
{
    struct epoll_event ev;

    if (c->epout == want_out) {
        return;
    }
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.u64 = c->idx;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
        c->epout = (uint8_t) want_out;
    }
}


static uint8_t *
out_reserve(conn_t *c, size_t need)
{
    size_t   cap;
    uint8_t *p;

    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    } else if (c->out_off > 0 && c->out_len + need > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }

    if (c->out_len + need > c->out_cap) {
        cap = c->out_cap ? c->out_cap : OUT_START;
        while (cap < c->out_len + need) {
            cap *= 2;
        }
        p = realloc(c->out, cap);
        if (p == NULL) {
            die("%s", "out of memory");
        }
        c->out = p;
        c->out_cap = (uint32_t) cap;
    }

    return c->out + c->out_len;
}


/* one client frame (FIN set, masked); returns its length on the wire */
static size_t
append_frame(conn_t *c, unsigned opcode, const void *data, size_t len)
{
    uint8_t   *f, *p;
    const uint8_t *s = data;
    size_t     hlen, i;
    uint32_t   key32;
    uint8_t    key[4];
    uint64_t   key64, v;

    hlen = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4;
    f = out_reserve(c, hlen + len);

    f[0] = (uint8_t) (0x80 | opcode);
    if (len < 126) {
        f[1] = (uint8_t) (0x80 | len);
    } else if (len < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t) (len >> 8);
        f[3] = (uint8_t) len;
    } else {
        f[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            f[2 + i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
        }
    }

    key32 = (uint32_t) rnd();
    memcpy(key, &key32, 4);
    memcpy(f + hlen - 4, key, 4);

    p = f + hlen;
    key64 = (uint64_t) key32 | (uint64_t) key32 << 32;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&v, s + i, 8);
        v ^= key64;
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++) {
        p[i] = s[i] ^ key[i & 3];
    }

    c->out_len += (uint32_t) (hlen + len);
    n_ws_bytes += hlen + len;
    return hlen + len;
}


static void conn_drop(conn_t *c, const char *why);
static void tls_handshake(conn_t *c);


/* flood streams write without pause from the end of the ramp to the stop */
static int
flooding(conn_t *c)
{
    return opt_flood && c->state == ST_OPEN
           && (phase == PH_WARMUP || phase == PH_WINDOW);
}

/*
 * send() or SSL_write(): > 0 bytes written; -1 with errno EAGAIN when the
 * socket would block (EINTR: try again); -1 with another errno on error
 */
static ssize_t
conn_send(conn_t *c, const uint8_t *data, size_t len)
{
    int  n, err;

    if (c->ssl == NULL) {
        return send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }

    ERR_clear_error();
    n = SSL_write(c->ssl, data, (int) (len > 1 << 30 ? 1 << 30 : len));
    if (n > 0) {
        return n;
    }
    err = SSL_get_error(c->ssl, n);
    /* WANT_READ: a post-handshake message is due first; readable wakes us */
    errno = err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ
            ? EAGAIN : err == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    return -1;
}


/* recv() or SSL_read(), the same conventions; 0 at the end of the stream */
static ssize_t
conn_recv(conn_t *c, uint8_t *buf, size_t len)
{
    int  n, err;

    if (c->ssl == NULL) {
        return recv(c->fd, buf, len, MSG_DONTWAIT);
    }

    ERR_clear_error();
    n = SSL_read(c->ssl, buf, (int) len);
    if (n > 0) {
        return n;
    }
    err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN
        || (err == SSL_ERROR_SYSCALL && errno == 0))
    {
        return 0;
    }
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
            ? EAGAIN : err == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    return -1;
}


/* writes what is queued; 0 when all is out, 1 when some is left, -1 error */
static int
conn_flush(conn_t *c)
{
    ssize_t n;

    if (c->tls_hs) {
        /* queued until the TLS handshake is done */
        return 1;
    }

    while (c->out_off < c->out_len) {
        n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (uint32_t) n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ep_set(c, 1);
            return 1;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        conn_drop(c, "send failed");
        return -1;
    }

    c->out_off = c->out_len = 0;

    if (opt_half_close && c->state == ST_CLOSING && !c->shut) {
        /* our close frame is out: the EOF tells a frame-blind server */
        if (c->ssl) {
            ERR_clear_error();
            (void) SSL_shutdown(c->ssl);    /* our close_notify */
        }
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }

    /* a flooding stream always wants to write */
    ep_set(c, flooding(c));
    return 0;
}


static char *
put_u(char *p, uint64_t v)
{
    char  tmp[24];
    int   n = 0;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}


static char *
put_s(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}


/*
 * One media message.  The payload's first 16 bytes carry the send time
 * (CLOCK_REALTIME ns on echo streams), the stream index and the chunk.
 */
static void
send_media(conn_t *c, uint64_t now)
{
    char     json[512], *p;
    uint8_t  stamp[STAMP_LEN];
    uint32_t chunk;
    size_t   wire;
    uint64_t sent;

    chunk = c->chunk++;
    sent = c->echo ? real_ns() : now;

    memcpy(stamp, &sent, 8);
    memcpy(stamp + 8, &c->idx, 4);
    memcpy(stamp + 12, &chunk, 4);
    stamp[16] = 0xff;
    stamp[17] = 0xff;

    p = put_s(json, "{\"event\":\"media\",\"sequenceNumber\":\"");
    p = put_u(p, c->seq++);
    p = put_s(p, "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"");
    p = put_u(p, chunk);
    p = put_s(p, "\",\"timestamp\":\"");
    p = put_u(p, (now - c->t_open) / NS_PER_MS);
    p = put_s(p, "\",\"payload\":\"");
    p += b64_encode(p, stamp, STAMP_LEN);
    p = put_s(p, audio_tail_b64);
    p = put_s(p, "\"},\"streamSid\":\"");
    p = put_s(p, c->stream_sid);
    p = put_s(p, "\"}");

    wire = append_frame(c, 1, json, p - json);

    c->media_sent++;
    n_frames++;
    n_wire_bytes += wire;
}


static void
send_text(conn_t *c, const char *json)
{
    append_frame(c, 1, json, strlen(json));
}


static void
send_start(conn_t *c)
{
    char json[1024];

    send_text(c, "{\"event\":\"connected\",\"protocol\":\"Call\","
                 "\"version\":\"1.0.0\"}");

    snprintf(json, sizeof(json),
             "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{"
             "\"accountSid\":\"%s\",\"streamSid\":\"%s\",\"callSid\":\"%s\","
             "\"tracks\":[\"inbound\"],\"mediaFormat\":{\"encoding\":"
             "\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1},"
             "\"customParameters\":{\"call_sid\":\"%s\"}},"
             "\"streamSid\":\"%s\"}",
             account_sid, c->stream_sid, c->call_sid, c->call_sid,
             c->stream_sid);
    send_text(c, json);
    c->seq = 2;
    c->chunk = 1;
    c->echo_next = 1;
}


static void
send_stop(conn_t *c)
{
    char    json[512];
    uint8_t close_payload[2] = { 0x03, 0xe8 };   /* 1000 */

    snprintf(json, sizeof(json),
             "{\"event\":\"stop\",\"sequenceNumber\":\"%u\",\"stop\":{"
             "\"accountSid\":\"%s\",\"callSid\":\"%s\"},\"streamSid\":\"%s\"}",
             c->seq++, account_sid, c->call_sid, c->stream_sid);
    send_text(c, json);
    append_frame(c, 8, close_payload, 2);
    c->state = ST_CLOSING;
}


/* --- connection life ---------------------------------------------------- */

static void
conn_release(conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);   /* also leaves the epoll set */
        c->fd = -1;
    }
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_off = c->out_len = c->out_cap = 0;
}


static void
conn_fail(conn_t *c, uint64_t *counter, const char *why)
{
    static int logged;

    if (logged++ < 5) {
        fprintf(stderr, "loadgen: stream %u: %s (%s)\n", c->idx, why,
                strerror(errno));
    }
    (*counter)++;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        n_inflight--;
    }
    c->state = ST_FAILED;
    n_resolved++;
    conn_release(c);
}


static void
conn_drop(conn_t *c, const char *why)
{
    static int logged;

    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        conn_fail(c, &n_handshake_fail, why);
        return;
    }

    if (c->state == ST_OPEN) {
        if (logged++ < 5) {
            fprintf(stderr, "loadgen: stream %u dropped: %s\n", c->idx, why);
        }
        n_dropped++;
        n_open--;
    } else if (c->state == ST_CLOSING) {
        if (c->got_close) {
            n_closed_clean++;
        } else {
            n_closed_unclean++;
        }
        n_open--;
    }

    c->state = ST_DONE;
    conn_release(c);
}


static void
conn_start(conn_t *c, struct sockaddr_in *sa, uint64_t now)
{
    struct epoll_event ev;
    int                fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        conn_fail(c, &n_connect_fail, "socket()");
        return;
    }

    c->in = malloc(IN_CAP);
    if (c->in == NULL) {
        die("%s", "out of memory");
    }
    c->in_cap = IN_CAP;
    c->in_len = 0;

    c->fd = fd;
    c->state = ST_CONNECTING;
    c->t_begin = now;
    n_inflight++;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (c->echo) {
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    }

    if (opt_flood) {
        /* keep what the kernel queues for us modest */
        int sz = 256 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }

    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = c->idx;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        conn_fail(c, &n_connect_fail, "epoll_ctl()");
        return;
    }
    c->epout = 1;

    if (connect(fd, (struct sockaddr *) sa, sizeof(*sa)) != 0
        && errno != EINPROGRESS)
    {
        conn_fail(c, &n_connect_fail, "connect()");
    }
}


static void
conn_connected(conn_t *c)
{
    int        err = 0;
    socklen_t  len = sizeof(err);
    uint8_t    raw[16], digest[20];
    char       buf[512], cat[64];
    int        n;
    uint64_t   r;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        errno = err;
        conn_fail(c, &n_connect_fail, "connect");
        return;
    }

    r = rnd();
    memcpy(raw, &r, 8);
    r = rnd();
    memcpy(raw + 8, &r, 8);
    b64_encode(c->key, raw, 16);

    snprintf(cat, sizeof(cat), "%s%s", c->key, WS_GUID);
    sha1((uint8_t *) cat, strlen(cat), digest);
    b64_encode(c->accept, digest, 20);

    n = snprintf(buf, sizeof(buf),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "User-Agent: agentlocator-bench-loadgen\r\n"
                 "\r\n",
                 c->echo ? opt_echo_path : opt_path, opt_host, opt_port,
                 c->key);

    memcpy(out_reserve(c, n), buf, n);
    c->out_len += n;
    c->state = ST_HANDSHAKE;

    if (opt_tls) {
        c->ssl = SSL_new(tls_ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
            errno = 0;
            conn_fail(c, &n_handshake_fail, "SSL_new");
            return;
        }
        SSL_set_connect_state(c->ssl);
        c->tls_hs = 1;
        tls_handshake(c);
        return;
    }

    conn_flush(c);
}


/* -T: the TLS handshake, resumed on each event; then the GET goes out */
static void
tls_handshake(conn_t *c)
{
    int  n, err;

    ERR_clear_error();
    n = SSL_do_handshake(c->ssl);
    if (n == 1) {
        c->tls_hs = 0;
        conn_flush(c);
        return;
    }

    err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ) {
        ep_set(c, 0);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        ep_set(c, 1);
        return;
    }

    {
        static int logged;
        unsigned long e = ERR_peek_error();
        if (logged++ < 3) {
            fprintf(stderr, "loadgen: stream %u: TLS handshake: %s\n",
                    c->idx, e ? ERR_error_string(e, NULL) : "failed");
        }
    }
    errno = 0;
    conn_fail(c, &n_handshake_fail, "TLS handshake");
}


static void
lag_record(lagh_t *h, uint64_t lag)
{
    uint64_t b = lag / LAG_BUCKET_NS;

    h->hist[b < LAG_BUCKETS ? b : LAG_BUCKETS]++;
    h->count++;
    h->sum_ns += lag;
    if (lag > h->max_ns) {
        h->max_ns = lag;
    }
}


static void
on_echo(conn_t *c, const uint8_t *data, size_t len)
{
    const char *p;
    uint8_t     stamp[STAMP_LEN];
    uint64_t    t, now;
    uint32_t    idx, chunk;

    p = memmem(data, len, "\"payload\":\"", 11);
    if (p == NULL || (size_t) ((const uint8_t *) p + 11 + STAMP_B64_LEN
                               - data) > len
        || b64_decode_groups(stamp, p + 11, STAMP_B64_LEN / 4) != 0)
    {
        n_echo_bad++;
        return;
    }

    memcpy(&t, stamp, 8);
    memcpy(&idx, stamp + 8, 4);
    memcpy(&chunk, stamp + 12, 4);

    now = real_ns();

    if (idx != c->idx || t > now) {
        n_echo_bad++;
        return;
    }

    if (chunk != c->echo_next) {
        n_echo_bad++;
        c->bad_order = 1;
    }
    c->echo_next = chunk + 1;

    c->echoed++;
    n_echoed++;

    if (phase == PH_WINDOW) {
        lag_record(&lag_read, now - t);
        /* the stamp is that of the last segment of the read: never early */
        lag_record(&lag_arrive, c->rx_real_ns > t ? c->rx_real_ns - t : 0);
    }
}


/* server frames: text (echoes), close, ping, pong */
static void
on_frames(conn_t *c, uint64_t now)
{
    uint8_t   *p;
    uint64_t   plen;
    size_t     hlen, avail, consumed = 0;
    unsigned   opcode;
    uint8_t    close_payload[2] = { 0x03, 0xe8 };

    (void) now;

    for ( ;; ) {
        p = c->in + consumed;
        avail = c->in_len - consumed;

        if (avail < 2) {
            break;
        }

        opcode = p[0] & 0x0f;
        plen = p[1] & 0x7f;
        hlen = 2;

        if (p[1] & 0x80) {
            conn_drop(c, "masked server frame");
            return;
        }

        if (plen == 126) {
            if (avail < 4) {
                break;
            }
            plen = (uint64_t) p[2] << 8 | p[3];
            hlen = 4;
        } else if (plen == 127) {
            if (avail < 10) {
                break;
            }
            plen = 0;
            for (int i = 0; i < 8; i++) {
                plen = plen << 8 | p[2 + i];
            }
            hlen = 10;
        }

        if (hlen + plen > 1024 * 1024) {
            conn_drop(c, "server frame too large");
            return;
        }

        if (avail < hlen + plen) {
            if (hlen + plen + 1 > c->in_cap) {
                uint8_t *n = realloc(c->in, hlen + plen + 1);
                if (n == NULL) {
                    die("%s", "out of memory");
                }
                c->in = n;
                c->in_cap = (uint32_t) (hlen + plen + 1);
            }
            break;
        }

        switch (opcode) {
        case 1:
            if (c->echo) {
                on_echo(c, p + hlen, plen);
            } else {
                n_unexpected++;
            }
            break;

        case 8:
            c->got_close = 1;
            if (c->state == ST_OPEN) {
                /* the server ends the stream on its own */
                n_server_close++;
                fprintf(stderr, "loadgen: stream %u: server sent close "
                        "%u \"%.*s\"\n", c->idx,
                        plen >= 2 ? (unsigned) (p[hlen] << 8 | p[hlen + 1])
                                  : 0,
                        plen > 2 ? (int) (plen - 2) : 0,
                        (const char *) p + hlen + 2);
                append_frame(c, 8, close_payload, 2);
                c->state = ST_CLOSING;
                conn_flush(c);
                if (c->fd < 0) {
                    return;
                }
            }
            break;

        case 9:
            n_ping++;
            append_frame(c, 10, p + hlen, plen);
            if (conn_flush(c) < 0) {
                return;
            }
            break;

        case 10:
            break;

        default:
            n_unexpected++;
        }

        consumed += hlen + plen;
    }

    if (consumed) {
        memmove(c->in, c->in + consumed, c->in_len - consumed);
        c->in_len -= (uint32_t) consumed;
    }
}


static void
on_handshake(conn_t *c, uint64_t now)
{
    char   *end, *h, *v;
    size_t  hdr_len;
    int     ok_accept = 0;

    c->in[c->in_len < c->in_cap ? c->in_len : c->in_cap - 1] = '\0';
    end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (c->in_len >= c->in_cap - 1) {
            conn_fail(c, &n_handshake_fail, "handshake response too long");
        }
        return;
    }

    hdr_len = end + 4 - (char *) c->in;
    *end = '\0';

    if (strncmp((char *) c->in, "HTTP/1.1 101", 12) != 0) {
        static int logged;
        if (logged++ < 3) {
            fprintf(stderr, "loadgen: stream %u: handshake answered: %.60s\n",
                    c->idx, (char *) c->in);
        }
        errno = 0;
        conn_fail(c, &n_handshake_fail, "no 101");
        return;
    }

    for (h = strstr((char *) c->in, "\r\n"); h; h = strstr(h, "\r\n")) {
        h += 2;
        if (strncasecmp(h, "Sec-WebSocket-Accept:", 21) == 0) {
            v = h + 21;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            ok_accept = strncmp(v, c->accept, 28) == 0
                        && (v[28] == '\r' || v[28] == '\0' || v[28] == ' ');
        }
    }

    if (!ok_accept) {
        errno = 0;
        conn_fail(c, &n_handshake_fail, "wrong Sec-WebSocket-Accept");
        return;
    }

    memmove(c->in, c->in + hdr_len, c->in_len - hdr_len);
    c->in_len -= (uint32_t) hdr_len;

    hs_count++;
    hs_total_ns += now - c->t_begin;
    if (now - c->t_begin > hs_max_ns) {
        hs_max_ns = now - c->t_begin;
    }

    n_inflight--;
    n_resolved++;
    n_open++;
    c->state = ST_OPEN;
    c->t_open = now;
    send_start(c);
    if (conn_flush(c) < 0) {
        return;
    }

    if (c->in_len) {
        on_frames(c, now);
    }
}


/* recv() with the kernel's arrival stamp of the data (SO_TIMESTAMPNS) */
static ssize_t
recv_stamped(conn_t *c)
{
    struct msghdr    msg;
    struct iovec     iov;
    struct cmsghdr  *cm;
    struct timespec  ts;
    ssize_t          n;
    union {
        char            buf[CMSG_SPACE(sizeof(struct timespec)) * 2];
        struct cmsghdr  align;
    } ctl;

    iov.iov_base = c->in + c->in_len;
    iov.iov_len = c->in_cap - 1 - c->in_len;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);

    n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
    if (n <= 0) {
        return n;
    }

    c->rx_real_ns = 0;
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            c->rx_real_ns = (uint64_t) ts.tv_sec * NS_PER_S + ts.tv_nsec;
        }
    }
    if (c->rx_real_ns == 0) {
        c->rx_real_ns = real_ns();
    }

    return n;
}


static void
on_readable(conn_t *c, uint64_t now)
{
    ssize_t n;

    for ( ;; ) {
        if (c->in_len + 1 >= c->in_cap) {
            /* on_frames() grew the buffer if a frame needs it */
            conn_drop(c, "input buffer full");
            return;
        }

        if (c->echo && c->state != ST_HANDSHAKE && c->ssl == NULL) {
            n = recv_stamped(c);
        } else {
            n = conn_recv(c, c->in + c->in_len, c->in_cap - 1 - c->in_len);
            if (n > 0 && c->echo) {
                c->rx_real_ns = real_ns();
            }
        }

        if (n > 0) {
            c->in_len += (uint32_t) n;

            if (c->state == ST_HANDSHAKE) {
                on_handshake(c, now);
            } else {
                on_frames(c, now);
            }
            if (c->fd < 0 || c->state == ST_FAILED || c->state == ST_DONE) {
                return;
            }
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }

        /* EOF or error */
        conn_drop(c, n == 0 ? "server closed the connection"
                            : "recv failed");
        return;
    }
}


static void
flood_fill(conn_t *c, uint64_t now)
{
    int batch, i;

    for (batch = 0; batch < FLOOD_PER_EVENT; batch++) {
        if (c->out_off < c->out_len) {
            if (conn_flush(c) != 0) {
                return;
            }
        }
        for (i = 0; i < FLOOD_BATCH; i++) {
            send_media(c, now);
        }
        if (conn_flush(c) != 0) {
            return;
        }
    }
}


/* --- calls ------------------------------------------------------------- */

/*
 * -R: every stream's call registered first, as Twilio does with its
 * incoming_call (the module refuses a stream for a call it never
 * answered).  Before the measurement, on one blocking keep-alive
 * connection: this is set-up, not load.
 */

static void
register_calls(struct sockaddr_in *sa)
{
    char      req[1024], body[512], resp[16384], *p;
    size_t    have;
    ssize_t   n;
    uint32_t  i;
    long      clen;
    int       fd = -1, len;
    SSL      *ssl = NULL;

    for (i = 0; i < opt_streams; i++) {
        if (fd < 0) {
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *) sa, sizeof(*sa)) < 0) {
                die("%s", "cannot connect to register the calls");
            }
            if (opt_tls) {
                ssl = SSL_new(tls_ctx);
                if (ssl == NULL || SSL_set_fd(ssl, fd) != 1
                    || SSL_connect(ssl) != 1)
                {
                    die("%s", "no TLS handshake to register the calls");
                }
            }
        }

        len = snprintf(body, sizeof(body),
                       "CallSid=%s&AccountSid=%s&From=%%2B15551230000"
                       "&To=%%2B15557650000", conns[i].call_sid, account_sid);
        len = snprintf(req, sizeof(req),
                       "POST %s HTTP/1.1\r\nHost: %s\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       opt_register, opt_host, len, body);

        if ((ssl ? SSL_write(ssl, req, len) : write(fd, req, (size_t) len))
            != len)
        {
            die("%s", "cannot send an incoming_call");
        }

        /* the answer: headers, then Content-Length bytes of TwiML */
        have = 0;
        clen = -1;
        for ( ;; ) {
            n = ssl ? SSL_read(ssl, resp + have,
                               (int) (sizeof(resp) - 1 - have))
                    : read(fd, resp + have, sizeof(resp) - 1 - have);
            if (n <= 0) {
                die("%s", "incoming_call got no answer");
            }
            have += (size_t) n;
            resp[have] = '\0';
            p = strstr(resp, "\r\n\r\n");
            if (p == NULL) {
                continue;
            }
            if (strncmp(resp, "HTTP/1.1 200", 12) != 0) {
                die("incoming_call answered %.12s", resp);
            }
            if (clen < 0) {
                char *cl = strcasestr(resp, "\r\nContent-Length:");
                clen = cl ? strtol(cl + 17, NULL, 10) : 0;
            }
            if ((long) (have - (size_t) (p + 4 - resp)) >= clen) {
                break;
            }
        }

        if (strcasestr(resp, "\r\nConnection: close")) {
            SSL_free(ssl);
            ssl = NULL;
            close(fd);
            fd = -1;
        }
    }

    if (fd >= 0) {
        SSL_free(ssl);
        close(fd);
    }

    fprintf(stderr, "loadgen: %u calls registered at %s\n", opt_streams,
            opt_register);
}


/* --- main --------------------------------------------------------------- */

static void
usage(void)
{
    fprintf(stderr,
        "usage: loadgen -p PORT [-m paced|flood] [-s STREAMS] [-e ECHO_STREAMS]\n"
        "               [-d SECONDS] [-w WARMUP_S] [-P SERVER_PID]\n"
        "               [-c CONNECT_WINDOW] [-i INTERVAL_MS] [-g TICK_US]\n"
        "               [-u PATH] [-E ECHO_PATH] [-H HOST] [-C]\n"
        "               [-R INCOMING_CALL_PATH] [-T]\n");
    exit(1);
}


static double
pct(lagh_t *h, double q)
{
    uint64_t want, acc = 0;
    uint32_t b;

    if (h->count == 0) {
        return -1;
    }
    want = (uint64_t) (q * h->count);
    if (want >= h->count) {
        want = h->count - 1;
    }
    for (b = 0; b <= LAG_BUCKETS; b++) {
        acc += h->hist[b];
        if (acc > want) {
            if (b == LAG_BUCKETS) {
                return h->max_ns / 1e6;
            }
            /* the bucket's upper edge, in ms */
            return (b + 1) * LAG_BUCKET_NS / 1e6;
        }
    }
    return h->max_ns / 1e6;
}


int
main(int argc, char **argv)
{
    struct sockaddr_in  sa;
    struct rlimit       rl;
    struct epoll_event *events;
    struct timespec     ts;
    snap_t              s_idle, s_ramp, s_ws, s_we;
    uint64_t            t0, now, period, t_ramp_done = 0, t_window_end = 0;
    uint64_t            t_stop_deadline = 0, last_timeout_scan = 0, due;
    uint64_t            cycle = 0, r, echo_missing = 0;
    uint32_t            cur = 0, i, bad_order = 0, open_at_stop = 0;
    int                 opt, n, k, maxev = 1024;
    double              rss_idle, rss_ramp;

    while ((opt = getopt(argc, argv, "p:m:s:e:d:w:P:c:i:g:u:E:H:CR:T")) != -1) {
        switch (opt) {
        case 'p': opt_port = atoi(optarg); break;
        case 'm':
            if (strcmp(optarg, "flood") == 0) {
                opt_flood = 1;
            } else if (strcmp(optarg, "paced") != 0) {
                usage();
            }
            break;
        case 's': opt_streams = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'e': opt_echo = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'd': opt_duration = atof(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 'P': opt_server_pid = atoi(optarg); break;
        case 'c': opt_connect_window = (uint32_t) strtoul(optarg, NULL, 10);
                  break;
        case 'i': opt_interval_ms = (uint32_t) strtoul(optarg, NULL, 10);
                  break;
        case 'g': opt_tick_us = (uint32_t) strtoul(optarg, NULL, 10); break;
        case 'u': opt_path = optarg; break;
        case 'E': opt_echo_path = optarg; break;
        case 'H': opt_host = optarg; break;
        case 'C': opt_half_close = 1; break;
        case 'R': opt_register = optarg; break;
        case 'T': opt_tls = 1; break;
        default: usage();
        }
    }

    if (opt_port <= 0 || opt_port > 65535 || opt_streams == 0
        || opt_echo > opt_streams || opt_duration <= 0 || opt_warmup < 0
        || opt_connect_window == 0 || opt_interval_ms == 0)
    {
        usage();
    }

    signal(SIGPIPE, SIG_IGN);
    clk_tck = sysconf(_SC_CLK_TCK);

    if (opt_tls) {
        /*
         * The run's self-signed certificate is not verified: the client's
         * side of TLS is the generator's cost, not the server's.  Partial
         * writes and a moving buffer: conn_flush() writes what is queued
         * in a buffer that grows and moves between retries.
         */
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (tls_ctx == NULL) {
            die("%s", "SSL_CTX_new failed");
        }
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                  | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    }

    /* descriptors: one per stream plus a few */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < opt_streams + 64) {
            fprintf(stderr, "loadgen: RLIMIT_NOFILE is %llu, %u streams need "
                    "%u\n", (unsigned long long) rl.rlim_cur, opt_streams,
                    opt_streams + 64);
            return 1;
        }
    }

    if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state)) {
        rng_state = (uint64_t) mono_ns() ^ (uint64_t) getpid() << 32;
    }
    rng_state |= 1;

    /* SIDs: CA/MZ + this run's nonce + the stream index + random hex */
    snprintf(run_nonce, sizeof(run_nonce), "%08x", (uint32_t) rnd());
    r = rnd();
    snprintf(account_sid, sizeof(account_sid), "AC%016llx%016llx",
             (unsigned long long) r, (unsigned long long) rnd());

    {
        /* the constant part of every payload: mu-law silence (0xff) */
        uint8_t audio[AUDIO_LEN - STAMP_LEN];
        memset(audio, 0xff, sizeof(audio));
        b64_encode(audio_tail_b64, audio, sizeof(audio));
    }

    conns = calloc(opt_streams, sizeof(conn_t));
    events = calloc(maxev, sizeof(*events));
    if (conns == NULL || events == NULL) {
        die("%s", "out of memory");
    }

    for (i = 0; i < opt_streams; i++) {
        conn_t *c = &conns[i];

        c->fd = -1;
        c->idx = i;
        c->echo = opt_echo
                  && (uint64_t) (i + 1) * opt_echo / opt_streams
                     > (uint64_t) i * opt_echo / opt_streams;
        r = rnd();
        snprintf(c->call_sid, sizeof(c->call_sid), "CA%s%08x%016llx",
                 run_nonce, i, (unsigned long long) r);
        snprintf(c->stream_sid, sizeof(c->stream_sid), "MZ%s%08x%016llx",
                 run_nonce, i, (unsigned long long) rnd());
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) opt_port);
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) {
        die("bad host %s", opt_host);
    }

    if (opt_register) {
        register_calls(&sa);
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("%s", "epoll_create1 failed");
    }

    if (opt_server_pid && proc_cpu(opt_server_pid) < 0) {
        die("no process %s", "with the -P pid");
    }

    memset(&s_ws, 0, sizeof(s_ws));
    memset(&s_we, 0, sizeof(s_we));
    take_snap(&s_idle);
    s_ramp = s_idle;

    period = (uint64_t) opt_interval_ms * NS_PER_MS;
    t0 = mono_ns();
    phase = PH_RAMP;

    fprintf(stderr, "loadgen: %s, %u streams (%u echo) to %s:%d, ramp ...\n",
            opt_flood ? "flood" : "paced", opt_streams, opt_echo, opt_host,
            opt_port);

    for ( ;; ) {
        now = mono_ns();

        /* open more streams while the handshake window has room */
        while (phase == PH_RAMP && next_to_open < opt_streams
               && n_inflight < opt_connect_window)
        {
            conn_start(&conns[next_to_open++], &sa, now);
        }

        /* handshake timeouts */
        if (now - last_timeout_scan > 100 * NS_PER_MS) {
            last_timeout_scan = now;
            if (n_inflight) {
                for (i = 0; i < next_to_open; i++) {
                    conn_t *c = &conns[i];
                    if ((c->state == ST_CONNECTING
                         || c->state == ST_HANDSHAKE)
                        && now - c->t_begin > HANDSHAKE_TIMEOUT_S * NS_PER_S)
                    {
                        errno = ETIMEDOUT;
                        conn_fail(c, &n_timeouts, "handshake timeout");
                    }
                }
            }
        }

        /* paced sending: slot cur of cycle is due at t0 + cycle*P + cur*P/S */
        if (!opt_flood && phase < PH_STOPPING) {
            for ( ;; ) {
                due = t0 + cycle * period
                      + (uint64_t) cur * period / opt_streams;
                if (due > now) {
                    break;
                }

                conn_t *c = &conns[cur];

                if (c->state == ST_OPEN) {
                    uint64_t late = now - due;

                    if (late > 2 * NS_PER_MS) {
                        n_late++;
                    }
                    if (phase == PH_WINDOW && late > late_max_window) {
                        late_max_window = late;
                    }
                    if (late > max_late_ns) {
                        max_late_ns = late;
                    }

                    if (c->out_len - c->out_off > PACED_OUT_LIMIT) {
                        /* the server stopped reading this stream */
                        n_skipped++;
                    } else {
                        send_media(c, now);
                        conn_flush(c);
                    }
                }

                if (++cur == opt_streams) {
                    cur = 0;
                    cycle++;
                }
            }
        }

        /* phase changes */
        now = mono_ns();

        if (phase == PH_RAMP && n_resolved == opt_streams) {
            t_ramp_done = now;
            take_snap(&s_ramp);
            phase = PH_WARMUP;
            if (opt_flood) {
                for (i = 0; i < opt_streams; i++) {
                    if (conns[i].state == ST_OPEN) {
                        ep_set(&conns[i], 1);
                    }
                }
            }
            fprintf(stderr, "loadgen: ramp done in %.2f s: %u open, %llu "
                    "failed; warm-up %.1f s\n", (now - t0) / 1e9, n_open,
                    (unsigned long long) (n_connect_fail + n_handshake_fail
                                          + n_timeouts), opt_warmup);
        }

        if (phase == PH_WARMUP
            && now >= t_ramp_done + (uint64_t) (opt_warmup * NS_PER_S))
        {
            memset(&lag_arrive, 0, sizeof(lag_arrive));
            memset(&lag_read, 0, sizeof(lag_read));
            late_max_window = 0;
            phase = PH_WINDOW;
            take_snap(&s_ws);
            now = s_ws.t;
            t_window_end = now + (uint64_t) (opt_duration * NS_PER_S);
            fprintf(stderr, "loadgen: window %.1f s ...\n", opt_duration);
        }

        if (phase == PH_WINDOW && now >= t_window_end) {
            take_snap(&s_we);
            phase = PH_STOPPING;
            open_at_stop = n_open;
            t_stop_deadline = s_we.t + CLOSE_TIMEOUT_S * NS_PER_S;

            for (i = 0; i < opt_streams; i++) {
                conn_t *c = &conns[i];
                if (c->state == ST_OPEN) {
                    send_stop(c);
                    ep_set(c, 1);
                    conn_flush(c);
                }
            }
            fprintf(stderr, "loadgen: stopping %u streams ...\n",
                    open_at_stop);
        }

        if (phase == PH_STOPPING) {
            if (n_open == 0) {
                phase = PH_DONE;
                break;
            }
            if (now >= t_stop_deadline) {
                for (i = 0; i < opt_streams; i++) {
                    if (conns[i].state == ST_CLOSING
                        || conns[i].state == ST_OPEN)
                    {
                        n_closed_unclean++;
                        n_open--;
                        conns[i].state = ST_DONE;
                        conn_release(&conns[i]);
                    }
                }
                phase = PH_DONE;
                break;
            }
        }

        /* how long to sleep */
        now = mono_ns();
        {
            uint64_t wake = now + 100 * NS_PER_MS;

            if (!opt_flood && phase < PH_STOPPING) {
                due = t0 + cycle * period
                      + (uint64_t) cur * period / opt_streams;
                if (opt_tick_us) {
                    /* send what is due in rounds, every tick */
                    uint64_t tick = (uint64_t) opt_tick_us * 1000;
                    due = t0 + (due - t0 + tick - 1) / tick * tick;
                }
                if (due < wake) {
                    wake = due;
                }
            }
            if (phase == PH_WARMUP) {
                due = t_ramp_done + (uint64_t) (opt_warmup * NS_PER_S);
                if (due < wake) {
                    wake = due;
                }
            }
            if (phase == PH_WINDOW && t_window_end < wake) {
                wake = t_window_end;
            }
            if (phase == PH_RAMP && next_to_open < opt_streams
                && n_inflight < opt_connect_window)
            {
                wake = now;
            }

            wake = wake > now ? wake - now : 0;
            ts.tv_sec = wake / NS_PER_S;
            ts.tv_nsec = wake % NS_PER_S;
        }

        n = epoll_pwait2(ep, events, maxev, &ts, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == ENOSYS) {
                n = epoll_wait(ep, events, maxev,
                               (int) ((ts.tv_sec * 1000)
                                      + (ts.tv_nsec + 999999) / 1000000));
            }
            if (n < 0) {
                die("%s", "epoll_wait failed");
            }
        }

        now = mono_ns();

        for (k = 0; k < n; k++) {
            conn_t   *c = &conns[events[k].data.u64];
            uint32_t  e = events[k].events;

            if (c->fd < 0) {
                continue;
            }

            if (c->state == ST_CONNECTING) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                    conn_connected(c);
                }
                continue;
            }

            if (c->tls_hs) {
                tls_handshake(c);
                continue;
            }

            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(c, now);
                if (c->fd < 0) {
                    continue;
                }
            }

            if (e & EPOLLOUT) {
                if (c->out_off < c->out_len) {
                    if (conn_flush(c) < 0) {
                        continue;
                    }
                }
                if (flooding(c) && c->out_off == c->out_len) {
                    flood_fill(c, now);
                }
            }
        }
    }

    /* ------------------------------------------------------------------- */

    for (i = 0; i < opt_streams; i++) {
        if (conns[i].echo) {
            echo_missing += conns[i].media_sent - conns[i].echoed;
            bad_order += conns[i].bad_order;
        }
    }

    rss_idle = s_idle.server_rss_kb;
    rss_ramp = s_ramp.server_rss_kb;

    {
        double   wall = (s_we.t - s_ws.t) / 1e9;
        double   frames = (double) (s_we.frames - s_ws.frames);
        double   wire = (double) (s_we.wire_bytes - s_ws.wire_bytes);
        double   avg = n_frames ? (double) n_wire_bytes / n_frames : 0;
        double   pend_ws = (double) (s_ws.user_pending + s_ws.kernel_pending);
        double   pend_we = (double) (s_we.user_pending + s_we.kernel_pending);
        double   processed = avg > 0 ? (wire - (pend_we - pend_ws)) / avg : 0;
        double   scpu = s_we.server_cpu - s_ws.server_cpu;
        int      server_alive = opt_server_pid == 0
                                || proc_cpu(opt_server_pid) >= 0;

        printf("RESULT mode=%s streams=%u echo_streams=%u duration=%.3f"
               " open_at_window_start=%u open_at_window_end=%u"
               " connect_fail=%llu handshake_fail=%llu handshake_timeout=%llu"
               " dropped=%llu server_close=%llu closed_clean=%llu"
               " closed_unclean=%llu"
               " frames_total=%llu wire_bytes_total=%llu frame_wire_avg=%.1f"
               " ws_bytes_total=%llu"
               " frames_window=%.0f frames_processed_window=%.0f"
               " backlog_start_bytes=%.0f backlog_end_bytes=%.0f"
               " kernel_queues_read=%d"
               " echoed_total=%llu echoed_window=%llu echo_missing=%llu"
               " echo_bad=%llu echo_bad_streams=%u unexpected=%llu"
               " lag_count=%llu lag_p50_ms=%.3f lag_p99_ms=%.3f"
               " lag_p999_ms=%.3f lag_max_ms=%.3f lag_avg_ms=%.3f"
               " readlag_p50_ms=%.3f readlag_p99_ms=%.3f readlag_max_ms=%.3f"
               " late_frames_total=%llu late_frames_window=%llu"
               " late_max_window_ms=%.3f"
               " skipped_window=%llu"
               " server_cpu_s=%.3f server_cpu_pct=%.1f"
               " server_rss_idle_kb=%.0f server_rss_ramp_kb=%.0f"
               " server_rss_ws_kb=%ld server_rss_we_kb=%ld"
               " server_shm_idle_kb=%ld server_shm_we_kb=%ld"
               " self_cpu_s=%.3f self_cpu_pct=%.1f machine_busy_s=%.3f"
               " ramp_s=%.3f handshake_avg_ms=%.3f handshake_max_ms=%.3f"
               " server_alive=%d\n",
               opt_flood ? "flood" : "paced", opt_streams, opt_echo, wall,
               s_ws.open, s_we.open,
               (unsigned long long) n_connect_fail,
               (unsigned long long) n_handshake_fail,
               (unsigned long long) n_timeouts,
               (unsigned long long) n_dropped,
               (unsigned long long) n_server_close,
               (unsigned long long) n_closed_clean,
               (unsigned long long) n_closed_unclean,
               (unsigned long long) n_frames,
               (unsigned long long) n_wire_bytes, avg,
               (unsigned long long) n_ws_bytes,
               frames, processed, pend_ws, pend_we,
               s_ws.kernel_ok && s_we.kernel_ok,
               (unsigned long long) n_echoed,
               (unsigned long long) (s_we.echoed - s_ws.echoed),
               (unsigned long long) echo_missing,
               (unsigned long long) n_echo_bad, bad_order,
               (unsigned long long) n_unexpected,
               (unsigned long long) lag_arrive.count, pct(&lag_arrive, 0.50),
               pct(&lag_arrive, 0.99), pct(&lag_arrive, 0.999),
               lag_arrive.max_ns / 1e6,
               lag_arrive.count ? lag_arrive.sum_ns / 1e6 / lag_arrive.count
                                : -1.0,
               pct(&lag_read, 0.50), pct(&lag_read, 0.99),
               lag_read.max_ns / 1e6,
               (unsigned long long) n_late,
               (unsigned long long) (s_we.late_frames - s_ws.late_frames),
               late_max_window / 1e6,
               (unsigned long long) (s_we.skipped - s_ws.skipped),
               scpu, wall > 0 ? 100 * scpu / wall : 0,
               rss_idle, rss_ramp, s_ws.server_rss_kb, s_we.server_rss_kb,
               s_idle.server_shm_kb, s_we.server_shm_kb,
               s_we.self_cpu - s_ws.self_cpu,
               wall > 0 ? 100 * (s_we.self_cpu - s_ws.self_cpu) / wall : 0,
               s_we.machine_busy - s_ws.machine_busy,
               t_ramp_done ? (t_ramp_done - t0) / 1e9 : -1.0,
               hs_count ? hs_total_ns / 1e6 / hs_count : -1.0,
               hs_max_ns / 1e6, server_alive);
    }

    fflush(stdout);
    return 0;
}
