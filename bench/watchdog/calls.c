/*
 * bench/watchdog/calls.c: the webhook side of bench/watchdog/run.  One
 * thread, epoll, libc only, HTTP/1.1 keep-alive, one request at a time per
 * connection.  Each request is
 *
 *   POST /webhook/incoming_call
 *   Content-Type: application/x-www-form-urlencoded
 *   CallSid=CA<PREFIX><index, 22 hex digits>&AccountSid=<ACCOUNT>
 *
 * and is written out as one line (times in CLOCK_REALTIME µs, the clock the
 * mock stamps redirects with):
 *
 *   <CallSid> <scheduled> <sent> <answered> <status>
 *
 * status is the HTTP status, or -1 when the connection failed under the
 * request (answered is then the time of the failure).  Requests never sent
 * are not written.
 *
 *   calls burst PORT N CONNS PREFIX ACCOUNT OUT
 *       N calls as fast as CONNS connections take them (all scheduled at
 *       the start); the connections are open before the first is sent.
 *   calls rate PORT RATE MAX_MS CONNS PREFIX ACCOUNT OUT [START_US]
 *       RATE calls/s on a fixed schedule from START_US (CLOCK_REALTIME µs;
 *       now if 0 or absent) until MAX_MS later or SIGTERM, whichever comes
 *       first; the connections are opened beforehand.  A call is sent at its
 *       time if a connection is free, else as soon as one is.
 *   calls sample INTERVAL_MS OUT PID...
 *       every INTERVAL_MS until SIGTERM, per PID one line
 *       "<µs> <pid> <utime ticks> <stime ticks> <sum of its threads'
 *       schedstat run time, ns> <resident set, kB>"; for the PID "all",
 *       the whole machine:
 *       "<µs> all <busy jiffies> <total jiffies> 0" from /proc/stat.
 *
 * Exit status 0 when every request sent got an answer (any status), 1 when
 * some failed at the socket level, 2 on bad usage or setup.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

enum { C_CONNECTING, C_IDLE, C_BUSY };

typedef struct {
    int       fd;
    int       state;
    long      req;          /* index in flight, -1 */
    char      in[16384];
    size_t    in_len;
    char      out[512];
    size_t    out_len, out_off;
    int       want_out;
} conn_t;

static int                    ep, port;
static const char            *prefix, *account;
static long long             *sched_us, *send_us, *ans_us;
static int                   *status;
static long                   n_total, n_next, n_done, n_failed;
static conn_t                *conns;
static int                    n_conns;

static void sid_of(long i, char *out)
{
    sprintf(out, "CA%s%022lx", prefix, i);
}

static void set_events(conn_t *c, int out)
{
    struct epoll_event ev;

    if (c->want_out == out) {
        return;
    }
    c->want_out = out;
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int open_conn(conn_t *c)
{
    struct sockaddr_in sa;
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c->state = C_CONNECTING;
    c->req = -1;
    c->in_len = 0;
    c->out_len = c->out_off = 0;

    if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0
        && errno != EINPROGRESS)
    {
        close(c->fd);
        return -1;
    }

    c->want_out = 1;
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void fail_conn(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);

    if (c->req >= 0) {
        ans_us[c->req] = now_us();
        status[c->req] = -1;
        n_failed++;
        n_done++;
    }

    if (open_conn(c) < 0) {
        fprintf(stderr, "calls: cannot reconnect: %s\n", strerror(errno));
        exit(2);
    }
}

static int flush_out(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                set_events(c, 1);
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        c->out_off += w;
    }
    set_events(c, 0);
    return 0;
}

static void send_req(conn_t *c, long i)
{
    char sid[64], body[160];
    int bl;

    sid_of(i, sid);
    bl = snprintf(body, sizeof(body), "CallSid=%s&AccountSid=%s", sid,
                  account);
    c->out_len = snprintf(c->out, sizeof(c->out),
                          "POST /webhook/incoming_call HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%d\r\n"
                          "Content-Type: application/x-www-form-urlencoded\r\n"
                          "Content-Length: %d\r\n\r\n%s", port, bl, body);
    c->out_off = 0;
    c->req = i;
    c->state = C_BUSY;
    send_us[i] = now_us();
    if (flush_out(c) < 0) {
        fail_conn(c);
    }
}

/* a free connection takes the next due request, if any */
static void dispatch(conn_t *c, long long now)
{
    if (c->state == C_IDLE && !stop && n_next < n_total
        && sched_us[n_next] <= now)
    {
        send_req(c, n_next++);
    }
}

static void dispatch_all(long long now)
{
    int k;
    for (k = 0; k < n_conns && !stop && n_next < n_total
                && sched_us[n_next] <= now; k++)
    {
        dispatch(&conns[k], now);
    }
}

/* a whole response in c->in? 1 yes (consumed), 0 not yet, -1 broken */
static int response(conn_t *c, int *code, int *close_after)
{
    char *h = c->in, *end = c->in + c->in_len;
    char *hend = memmem(h, end - h, "\r\n\r\n", 4);
    char *p;
    size_t hlen, clen = 0, total;

    if (hend == NULL) {
        return c->in_len >= sizeof(c->in) ? -1 : 0;
    }
    *hend = '\0';
    if (strncmp(h, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *code = atoi(h + 9);
    hlen = hend + 4 - h;
    *close_after = (strcasestr(h, "\r\nConnection: close") != NULL);

    if ((p = strcasestr(h, "\r\nContent-Length:")) != NULL) {
        clen = strtoul(p + 17, NULL, 10);
        total = hlen + clen;
        if (total > sizeof(c->in)) {
            return -1;
        }
        if (c->in_len < total) {
            *hend = '\r';
            return 0;
        }
    } else if (strcasestr(h, "\r\nTransfer-Encoding: chunked")) {
        char *z = memmem(hend + 4, end - (hend + 4), "\r\n0\r\n\r\n", 7);
        if (z == NULL && !(end - (hend + 4) >= 5
                           && memcmp(hend + 4, "0\r\n\r\n", 5) == 0))
        {
            *hend = '\r';
            return c->in_len >= sizeof(c->in) ? -1 : 0;
        }
        total = z ? (size_t) (z + 7 - c->in) : hlen + 5;
    } else {
        total = hlen;    /* no body */
    }

    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    return 1;
}

static void on_event(conn_t *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            fprintf(stderr, "calls: connect: %s\n", strerror(err));
            exit(2);
        }
        c->state = C_IDLE;
        set_events(c, 0);
        dispatch(c, now_us());
        return;
    }

    if (events & EPOLLOUT) {
        if (flush_out(c) < 0) {
            fail_conn(c);
            return;
        }
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for ( ;; ) {
            ssize_t r = recv(c->fd, c->in + c->in_len,
                             sizeof(c->in) - c->in_len, 0);
            if (r > 0) {
                int code, cl, rc;
                c->in_len += r;
                rc = response(c, &code, &cl);
                if (rc < 0) {
                    fail_conn(c);
                    return;
                }
                if (rc == 1) {
                    if (c->req < 0) {    /* unsolicited */
                        fail_conn(c);
                        return;
                    }
                    ans_us[c->req] = now_us();
                    status[c->req] = code;
                    c->req = -1;
                    c->state = C_IDLE;
                    n_done++;
                    if (cl) {
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                        close(c->fd);
                        if (open_conn(c) < 0) {
                            exit(2);
                        }
                        return;
                    }
                    dispatch(c, now_us());
                    return;
                }
                continue;
            }
            if (r == 0) {
                fail_conn(c);    /* counts only if a request was in flight */
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                fail_conn(c);
            }
            return;
        }
    }
}

static int run_load(long n, int nconns, const char *out, double rate,
    long long start, long long max_ms)
{
    struct epoll_event evs[256];
    long long deadline, now, grace_until = 0;
    long i;
    int k, opened = 0;
    FILE *f;

    n_total = 0;    /* nothing is sent while the connections open */
    sched_us = calloc(n, sizeof(long long));
    send_us = calloc(n, sizeof(long long));
    ans_us = calloc(n, sizeof(long long));
    status = calloc(n, sizeof(int));
    conns = calloc(nconns, sizeof(conn_t));
    n_conns = nconns;
    ep = epoll_create1(0);

    /* connections first, so that the measurement has no connects in it */
    for (k = 0; k < nconns; k++) {
        if (open_conn(&conns[k]) < 0) {
            fprintf(stderr, "calls: socket: %s\n", strerror(errno));
            return 2;
        }
    }
    deadline = now_us() + 5000000;
    while (opened < nconns) {
        int m = epoll_wait(ep, evs, 256, 100);
        for (k = 0; k < m; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state == C_CONNECTING) {
                on_event(c, evs[k].events);
                if (c->state == C_IDLE) {
                    opened++;
                }
            }
        }
        if (now_us() > deadline) {
            fprintf(stderr, "calls: could not open %d connections\n", nconns);
            return 2;
        }
    }

    if (start <= 0) {
        start = now_us();
    }
    for (i = 0; i < n; i++) {
        sched_us[i] = rate > 0 ? start + (long long) (i * 1e6 / rate) : start;
    }
    deadline = max_ms > 0 ? start + max_ms * 1000 : 0;
    n_total = n;

    for ( ;; ) {
        int m, timeout;

        now = now_us();
        if (!stop && deadline && now >= deadline) {
            stop = 1;
        }
        if (stop && !grace_until) {
            grace_until = now + 5000000;   /* for answers in flight */
        }
        if (n_done == n_next && (stop || n_next == n_total)) {
            break;
        }
        if (grace_until && now > grace_until) {
            break;
        }

        dispatch_all(now);

        if (!stop && n_next < n_total && sched_us[n_next] > now) {
            timeout = (int) ((sched_us[n_next] - now + 999) / 1000);
        } else {
            timeout = 50;
        }

        m = epoll_wait(ep, evs, 256, timeout);
        for (k = 0; k < m; k++) {
            on_event(evs[k].data.ptr, evs[k].events);
        }
    }

    f = fopen(out, "w");
    if (f == NULL) {
        perror(out);
        return 2;
    }
    for (i = 0; i < n_next; i++) {
        char sid[64];
        sid_of(i, sid);
        if (ans_us[i] == 0) {    /* no answer before the grace ran out */
            ans_us[i] = now_us();
            status[i] = -1;
            n_failed++;
        }
        fprintf(f, "%s %lld %lld %lld %d\n", sid, sched_us[i], send_us[i],
                ans_us[i], status[i]);
    }
    fclose(f);

    return n_failed ? 1 : 0;
}

static int sample(int interval_ms, const char *out, int npids, char **pids)
{
    FILE *f = fopen(out, "w");
    int k;

    if (f == NULL) {
        perror(out);
        return 2;
    }

    while (!stop) {
        long long t = now_us();

        for (k = 0; k < npids; k++) {
            char path[512], buf[2048], *p;
            unsigned long long ut = 0, st = 0, ns = 0, x;
            FILE *s;
            DIR *d;
            struct dirent *de;
            int field;

            if (strcmp(pids[k], "all") == 0) {
                /* the machine: busy and total jiffies of all CPUs */
                unsigned long long v[8] = { 0 };
                s = fopen("/proc/stat", "r");
                if (s && fscanf(s, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
                                &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                                &v[6], &v[7]) == 8)
                {
                    unsigned long long tot = 0;
                    for (field = 0; field < 8; field++) {
                        tot += v[field];
                    }
                    fprintf(f, "%lld all %llu %llu 0\n", t,
                            tot - v[3] - v[4], tot);
                }
                if (s) {
                    fclose(s);
                }
                continue;
            }

            snprintf(path, sizeof(path), "/proc/%s/stat", pids[k]);
            s = fopen(path, "r");
            if (s == NULL) {
                fprintf(f, "%lld %s gone\n", t, pids[k]);
                continue;
            }
            if (fgets(buf, sizeof(buf), s) == NULL) {
                buf[0] = '\0';
            }
            fclose(s);

            /* after "(comm)": field 3 is state; utime is 14, stime 15 */
            p = strrchr(buf, ')');
            for (field = 2; p && field < 14; field++) {
                p = strchr(p + 1, ' ');
            }
            if (p) {
                sscanf(p + 1, "%llu %llu", &ut, &st);
            }

            snprintf(path, sizeof(path), "/proc/%s/task", pids[k]);
            d = opendir(path);
            while (d && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.') {
                    continue;
                }
                snprintf(path, sizeof(path), "/proc/%s/task/%s/schedstat",
                         pids[k], de->d_name);
                s = fopen(path, "r");
                if (s) {
                    if (fscanf(s, "%llu", &x) == 1) {
                        ns += x;
                    }
                    fclose(s);
                }
            }
            if (d) {
                closedir(d);
            }

            /* resident set, kB */
            snprintf(path, sizeof(path), "/proc/%s/statm", pids[k]);
            x = 0;
            s = fopen(path, "r");
            if (s) {
                if (fscanf(s, "%*u %llu", &x) != 1) {
                    x = 0;
                }
                fclose(s);
            }

            fprintf(f, "%lld %s %llu %llu %llu %llu\n", t, pids[k], ut, st, ns,
                    x * (unsigned long long) (sysconf(_SC_PAGESIZE) / 1024));
        }

        usleep(interval_ms * 1000);
    }

    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (argc >= 4 && strcmp(argv[1], "sample") == 0) {
        return sample(atoi(argv[2]), argv[3], argc - 4, argv + 4);
    }

    if (argc == 8 && strcmp(argv[1], "burst") == 0) {
        port = atoi(argv[2]);
        prefix = argv[5];
        account = argv[6];
        if (strlen(prefix) != 10) {
            fprintf(stderr, "calls: PREFIX must be 10 hex digits\n");
            return 2;
        }
        return run_load(atol(argv[3]), atoi(argv[4]), argv[7], 0, 0, 0);
    }

    if ((argc == 9 || argc == 10) && strcmp(argv[1], "rate") == 0) {
        double rate = atof(argv[3]);
        long long max_ms = atoll(argv[4]);
        long n;

        port = atoi(argv[2]);
        prefix = argv[6];
        account = argv[7];
        if (strlen(prefix) != 10 || rate <= 0 || max_ms <= 0) {
            fprintf(stderr, "calls: bad rate arguments\n");
            return 2;
        }
        n = (long) (rate * max_ms / 1000) + 1;
        return run_load(n, atoi(argv[5]), argv[8], rate,
                        argc == 10 ? atoll(argv[9]) : 0, max_ms);
    }

    fprintf(stderr,
        "usage: calls burst PORT N CONNS PREFIX ACCOUNT OUT\n"
        "       calls rate PORT RATE MAX_MS CONNS PREFIX ACCOUNT OUT [START_US]\n"
        "       calls sample INTERVAL_MS OUT PID...\n");
    return 2;
}
