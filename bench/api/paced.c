/*
 * bench/api/paced.c: the open-loop HTTP client of bench/api/run's part 1b,
 * the module at the same request rate as pgbench --rate (one thread,
 * epoll, keep-alive connections to 127.0.0.1).
 *
 *   paced FILE PORT CONNS RATE SECONDS SEED [WORKERS]
 *
 * FILE holds whole HTTP requests, each followed by a NUL byte (gen-gets.pl);
 * they are sent in order, from the first again if SECONDS x RATE is more.
 * Arrivals are a Poisson process of RATE per second (exponential gaps, a
 * xorshift generator seeded with SEED), as pgbench --rate schedules its
 * transactions: request i is due at t0 + the sum of i gaps, and goes out on
 * an idle connection of CONNS (the one idle longest), or as soon as one
 * frees.  Its latency counts from when it was due, not from when it went
 * out, as pgbench counts a throttled transaction's from its scheduled
 * start, so a late client adds to the figure rather than hiding it.
 *
 * With WORKERS (nginx's worker_processes), the connections are spread
 * evenly over the workers (each new one asks GET /readyz and reads
 * X-Worker, as bench/crm/load.c does), not left to the reuseport hash.
 *
 * Prints one line: "PACED requests=.. ok=.. bad=.. errors=.. rate=..
 * sent_rate=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
 * lag_p99_us=.. client_cpu_us=.. split=4+4", ok being 200s, split the
 * connections on each worker.  Exit 0 done (whatever
 * the answers), 1 could not run.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char  *p;
    size_t       len;
} req_t;

typedef struct {
    int          fd;
    int          busy;
    const req_t *req;
    size_t       sent;
    long         i;             /* the request out on it */
    char        *buf;
    size_t       have, cap;
} conn_t;

static int     ep, port;
static req_t  *reqs;
static long    nreqs, ok, bad, errs;

static void die(const char *what)
{
    fprintf(stderr, "paced: %s: %s\n", what, errno ? strerror(errno) : "");
    exit(1);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void load_file(const char *path)
{
    int          fd;
    char        *data, *p, *end;
    struct stat  st;
    long         cap = 1024;

    fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0) die(path);
    data = malloc(st.st_size + 1);
    if (data == NULL) die("malloc");
    for (off_t got = 0; got < st.st_size; ) {
        ssize_t n = read(fd, data + got, st.st_size - got);
        if (n <= 0) die(path);
        got += n;
    }
    close(fd);
    reqs = malloc(cap * sizeof(req_t));
    for (p = data, end = data + st.st_size; p < end; ) {
        char *z = memchr(p, '\0', end - p);
        if (z == NULL) z = end;
        if (z > p) {
            if (nreqs == cap) reqs = realloc(reqs, (cap *= 2) * sizeof(req_t));
            if (reqs == NULL) die("realloc");
            reqs[nreqs].p = p;
            reqs[nreqs].len = z - p;
            nreqs++;
        }
        p = z + 1;
    }
    if (nreqs == 0) { errno = 0; die("no requests in the file"); }
}

static int sock_connect(void)
{
    int                 fd, one = 1;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/*
 * The worker (X-Worker: $pid) a new, still blocking connection landed on,
 * asked with GET /readyz (as bench/crm/load.c does); 0 if none says.
 */
static long probe_worker(int fd)
{
    static const char  q[] = "GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n";
    char               buf[8192], *eoh, *h;
    size_t             have = 0;
    long               clen = 0;

    if (write(fd, q, sizeof(q) - 1) != (ssize_t) sizeof(q) - 1) die("probe write");
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) die("probe read");
        have += n;
        buf[have] = '\0';
        if ((eoh = strstr(buf, "\r\n\r\n")) == NULL) continue;
        h = strcasestr(buf, "\r\nContent-Length:");
        if (h && h < eoh) clen = atol(h + 17);
        if (have >= (size_t) (eoh + 4 - buf) + clen) break;
    }
    h = strcasestr(buf, "\r\nX-Worker:");
    return (h && h < eoh) ? atol(h + 11) : 0;
}

static void conn_attach(conn_t *c, int fd)
{
    struct epoll_event  ev;

    c->fd = fd;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->busy = 0;
    c->have = 0;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void conn_reopen(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conn_attach(c, sock_connect());
}

/* -1: failed (counted, reopened) */
static int conn_flush(conn_t *c)
{
    struct epoll_event  ev;

    while (c->sent < c->req->len) {
        ssize_t n = write(c->fd, c->req->p + c->sent, c->req->len - c->sent);
        if (n > 0) { c->sent += n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            ev.events = EPOLLIN | EPOLLOUT;
            ev.data.ptr = c;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        errs++;
        c->busy = 0;
        conn_reopen(c);
        return -1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/*
 * 1: the answer is complete; 0: not yet; -1: failed (counted, reopened).
 * A connection the server closed after a complete answer is reopened.
 */
static int conn_read(conn_t *c)
{
    int eof = 0;

    for (;;) {
        if (c->cap - c->have < 16384) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL) die("realloc");
        }
        ssize_t n = read(c->fd, c->buf + c->have, c->cap - 1 - c->have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) { eof = 1; break; }
        c->have += n;
    }
    c->buf[c->have] = '\0';

    char *eoh = strstr(c->buf, "\r\n\r\n");
    if (eoh == NULL) goto incomplete;
    size_t head = eoh + 4 - c->buf;
    long clen = -1;
    int  close_after = 0;
    for (char *l = strstr(c->buf, "\r\n"); l && l < eoh; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0) clen = atol(l + 17);
        if (strncasecmp(l + 2, "Connection: close", 17) == 0) close_after = 1;
        if (strncasecmp(l + 2, "Transfer-Encoding:", 18) == 0) {
            errno = 0;
            die("a chunked answer: this client reads Content-Length only");
        }
    }
    if (clen < 0) clen = 0;
    if (c->have < head + clen) goto incomplete;
    if (!c->busy) { errs++; conn_reopen(c); return -1; }

    if (strncmp(c->buf, "HTTP/1.1 200", 12) == 0) ok++; else bad++;
    c->busy = 0;
    c->have = 0;
    if (close_after || eof) conn_reopen(c);
    return 1;

incomplete:

    if (!eof) return 0;
    if (c->busy) errs++;
    c->busy = 0;
    conn_reopen(c);
    return -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *) a, y = *(const long long *) b;
    return x < y ? -1 : x > y;
}

static long long pct(long long *v, long n, double p)
{
    if (n == 0) return 0;
    long i = (long) (p * n + 0.999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

static uint64_t rng;

static double uniform01(void)      /* (0, 1] */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 1) * (1.0 / 9007199254740992.0);
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: paced FILE PORT CONNS RATE SECONDS SEED [WORKERS]\n");
        return 1;
    }
    int    workers = argc == 8 ? atoi(argv[7]) : 1;
    load_file(argv[1]);
    port = atoi(argv[2]);
    int    nconns = atoi(argv[3]);
    double rate = atof(argv[4]), secs = atof(argv[5]);
    rng = strtoull(argv[6], NULL, 10) * 2654435761ULL + 88172645463325252ULL;
    if (nconns < 1 || rate <= 0 || secs <= 0) { errno = 0; die("bad arguments"); }

    long       total = (long) (rate * secs);
    long long *due = malloc(total * sizeof(long long));
    long long *lat = malloc(total * sizeof(long long));
    long long *lag = malloc(total * sizeof(long long));
    conn_t    *cs = calloc(nconns, sizeof(conn_t));
    conn_t   **idle = calloc(nconns, sizeof(conn_t *));
    int        nidle = 0, tfd;
    long       next = 0, answered = 0, failed = 0;
    long long  first_sent = 0, last_sent = 0;
    struct epoll_event  ev, evs[256];
    struct itimerspec   its;

    if (!due || !lat || !lag || !cs || !idle) die("malloc");
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    /*
     * As many connections on each worker (the kernel's reuseport hash
     * places them at random), as bench/crm/load.c does: connections on a
     * worker that has its share are closed; after 50 tries a connection,
     * any worker will do.
     */
    long  pids[64];
    int   npids = 0, per[64], attempts = 0;
    char  split[512] = "";
    if (workers > 64) workers = 64;
    for (int i = 0; i < nconns; ) {
        int  fd = sock_connect(), k;
        long pid = workers > 1 ? probe_worker(fd) : 0;

        for (k = 0; k < npids && pids[k] != pid; k++) { }
        if (k == npids && npids < 64) { pids[npids] = pid; per[npids++] = 0; }
        if (k < 64 && workers > 1 && per[k] >= (nconns + workers - 1) / workers
            && ++attempts < 50 * nconns)
        {
            close(fd);
            continue;
        }
        if (k < 64) per[k]++;
        conn_attach(&cs[i], fd);
        idle[nidle++] = &cs[i++];
    }
    for (int k = 0; k < npids; k++)
        snprintf(split + strlen(split), sizeof(split) - strlen(split), "%s%d",
                 k ? "+" : "", per[k]);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd < 0) die("timerfd_create");
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

    long long t0 = now_us() + 20000;
    double    at = 0;
    for (long i = 0; i < total; i++) {
        at += -log(uniform01()) * 1e6 / rate;
        due[i] = t0 + (long long) at;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);

    while (answered + failed < total) {
        long long t = now_us();

        while (next < total && due[next] <= t && nidle) {
            conn_t *c = idle[0];
            memmove(idle, idle + 1, --nidle * sizeof(conn_t *));
            c->i = next;
            c->req = &reqs[next % nreqs];
            c->sent = 0;
            c->busy = 1;
            c->have = 0;
            lag[next] = t - due[next];
            if (next == 0) first_sent = t;
            last_sent = t;
            next++;
            if (conn_flush(c) < 0) {
                failed++;
                idle[nidle++] = c;
            }
        }
        if (next < total && due[next] > t) {
            memset(&its, 0, sizeof(its));
            its.it_value.tv_sec = due[next] / 1000000;
            its.it_value.tv_nsec = (due[next] % 1000000) * 1000;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }

        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c == NULL) {
                unsigned long long x;
                if (read(tfd, &x, sizeof(x)) < 0) { /* nothing */ }
                continue;
            }
            int busy = c->busy, r = 0;
            if ((evs[k].events & EPOLLOUT) && busy && conn_flush(c) < 0) r = -1;
            else if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) r = conn_read(c);
            if (!busy || r == 0) continue;
            if (r == 1) lat[answered++] = now_us() - due[c->i];
            else failed++;
            idle[nidle++] = c;
        }
    }
    getrusage(RUSAGE_SELF, &ru1);

    qsort(lat, answered, sizeof(long long), cmp_ll);
    qsort(lag, next, sizeof(long long), cmp_ll);
    long long cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec
                     + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000LL
                    + ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec
                    + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec;
    printf("PACED requests=%ld ok=%ld bad=%ld errors=%ld rate=%.0f sent_rate=%.1f "
           "p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld "
           "lag_p99_us=%lld client_cpu_us=%lld split=%s\n",
           answered + failed, ok, bad, errs, rate,
           next > 1 && last_sent > first_sent ? (next - 1) * 1e6 / (last_sent - first_sent) : 0.0,
           pct(lat, answered, .50), pct(lat, answered, .90), pct(lat, answered, .99),
           pct(lat, answered, .999), answered ? lat[answered - 1] : 0,
           pct(lag, next, .99), cpu, split[0] ? split : "?");
    return 0;
}
