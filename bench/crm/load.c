/*
 * bench/crm/load.c: the HTTP client of bench/crm/run (one thread, epoll,
 * keep-alive connections to 127.0.0.1).  Requests come pre-signed from
 * gen-requests.pl: whole HTTP requests, each followed by a NUL byte.
 *
 *   load flood FILE PORT CONNS [WORKERS [CONNINFO TARGET POLL_MS STALL_MS]]
 *       FILE holds pairs (a call's incoming_call, then its call_status).
 *       CONNS connections, CONNS/WORKERS on each nginx worker (told by
 *       X-Worker in the answer to a GET /readyz on each new connection;
 *       connections beyond a worker's share are closed and made again),
 *       each take the next call, send its incoming_call,
 *       wait for the answer, send its call_status, wait, and so on, as fast
 *       as the server answers.  With CONNINFO, it then polls
 *       SELECT count(*) FROM call_events every POLL_MS until the count is
 *       TARGET, or has not moved for STALL_MS (then the time is that of the
 *       last move).  The database connection is made before the first
 *       request, so it costs the figure nothing.
 *
 *   load paced FILE PORT CONNS RATE
 *       Request i is due at t0 + i / RATE (open loop: a slow answer does
 *       not delay the next request), sent on an idle connection of CONNS
 *       kept open (or as soon as one frees, if none is).  Its latency is
 *       counted from the time it was due, not from when it went out, so a
 *       client running late adds to the figure rather than hiding it; the
 *       lag (sent - due) is reported on its own: the client's overhead.
 *
 * Prints one line: "LOAD mode=... key=value ...".  Exit status: 0 done
 * (whatever the answers; they are counted), 1 could not run.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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
    const char *p;
    size_t      len;
} req_t;

typedef struct {
    int         fd;
    int         busy;       /* a request is out, its answer not all in */
    const req_t *req;
    size_t      sent;
    long        call;       /* flood: the call (pair); paced: the request */
    int         step;       /* flood: 0 incoming_call, 1 call_status */
    long long   sent_us;
    char        buf[16384];
    size_t      have;
} conn_t;

static volatile sig_atomic_t  stop;
static int                    ep;
static int                    port;
static req_t                 *reqs;
static long                   nreqs;
static long                   ok, bad, errs, reconnects;

static void on_signal(int s) { (void) s; stop = 1; }

static void die(const char *what)
{
    fprintf(stderr, "load: %s: %s\n", what, errno ? strerror(errno) : "");
    exit(1);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000
           + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
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
    data[st.st_size] = '\0';

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
    /* blocking connect: loopback, done before the clock starts */
    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
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

static void conn_open(conn_t *c)
{
    conn_attach(c, sock_connect());
}

/*
 * The worker (X-Worker: $pid) that a new, still blocking connection landed
 * on, asked with GET /readyz (no CRM write); 0 if the answer has none.
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

static void conn_reopen(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    reconnects++;
    conn_open(c);
}

/* writes what the socket takes, EPOLLOUT for the rest; -1: failed (the
 * request is lost, counted, the connection reopened) */
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

static int conn_send(conn_t *c, const req_t *r, long long t)
{
    c->req = r;
    c->sent = 0;
    c->busy = 1;
    c->have = 0;
    c->sent_us = t;
    return conn_flush(c);
}

/*
 * Reads what is there.  1: an answer is complete (counted in ok/bad);
 * 0: not yet; -1: the connection failed or closed (counted, reopened).
 */
static int conn_read(conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0 || c->have + n >= sizeof(c->buf) - 1) {
            if (c->busy) errs++;
            c->busy = 0;
            conn_reopen(c);
            return -1;
        }
        c->have += n;
    }
    c->buf[c->have] = '\0';

    char *eoh = strstr(c->buf, "\r\n\r\n");
    if (eoh == NULL) return 0;
    size_t head = eoh + 4 - c->buf;
    long clen = 0;
    int  close_after = 0;
    for (char *l = strstr(c->buf, "\r\n"); l && l < eoh; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0) clen = atol(l + 17);
        if (strncasecmp(l + 2, "Connection: close", 17) == 0) close_after = 1;
    }
    if (c->have < head + clen) return 0;
    if (!c->busy) { errs++; conn_reopen(c); return -1; }   /* unasked */

    if (strncmp(c->buf, "HTTP/1.1 200", 12) == 0) ok++; else bad++;
    c->busy = 0;
    c->have = 0;
    if (close_after) conn_reopen(c);
    return 1;
}

/* an epoll event on c: 1 its answer is in, -1 its request failed, 0 neither
 * (also for anything on a connection with no request out) */
static int conn_event(conn_t *c, uint32_t events)
{
    int busy = c->busy, r = 0;

    if ((events & EPOLLOUT) && busy && conn_flush(c) < 0) return -1;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) r = conn_read(c);
    return busy ? r : 0;
}

/* all CPUs' busy and total jiffies so far, from /proc/stat */
static void cpu_stat(long long *busy, long long *total)
{
    long long  v[8] = { 0 };
    FILE      *f = fopen("/proc/stat", "r");

    *busy = *total = 0;
    if (f == NULL) return;
    if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
    {
        for (int i = 0; i < 8; i++) *total += v[i];
        *busy = *total - v[3] - v[4];           /* less idle and iowait */
    }
    fclose(f);
}

static double busy_pct(long long b0, long long t0, long long b1, long long t1)
{
    return t1 > t0 ? 100.0 * (b1 - b0) / (t1 - t0) : 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *) a, y = *(const long long *) b;
    return x < y ? -1 : x > y;
}

static long long pct(long long *v, long n, double p)
{
    if (n == 0) return 0;
    long i = (long) (p * n + 0.999999) - 1;   /* nearest rank */
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

/* ---------------------------------------------------------------------- */

static long  next_call, ncalls, done_calls;

/* the next call on c; 0 when there is none left */
static int flood_start(conn_t *c)
{
    while (next_call < ncalls) {
        c->call = next_call++;
        c->step = 0;
        if (conn_send(c, &reqs[2 * c->call], now_us()) == 0) return 1;
        done_calls++;               /* not even sent: counted in errors */
    }
    return 0;
}

/* c's request is over (r 1: answered, -1: failed); 0 when c is done */
static int flood_next(conn_t *c, int r)
{
    if (r == 1 && c->step == 0) {
        c->step = 1;
        if (conn_send(c, &reqs[2 * c->call + 1], now_us()) == 0) return 1;
    }
    /* a failed incoming_call: its call_status is not sent */
    done_calls++;
    return flood_start(c);
}

static int flood(int nconns, int workers, const char *conninfo, long target,
    long long poll, long long stall)
{
    long      pids[64];
    int       npids = 0, per[64], attempts = 0;
    char      split[512] = "";
    PGconn   *pg = NULL;
    conn_t   *cs;
    struct epoll_event evs[256];

    ncalls = nreqs / 2;
    if (nreqs % 2) { errno = 0; die("flood: an odd number of requests"); }
    if (conninfo) {
        pg = PQconnectdb(conninfo);
        if (PQstatus(pg) != CONNECTION_OK) {
            fprintf(stderr, "load: %s", PQerrorMessage(pg));
            return 1;
        }
    }
    if (nconns > ncalls) nconns = ncalls;
    cs = calloc(nconns, sizeof(conn_t));
    if (workers > 64) workers = 64;

    /*
     * As many connections on each worker (the kernel's reuseport hash
     * places them at random): each worker then gets its share of the
     * calls, as pgbench's clients share its transactions.  Connections on
     * a worker that has its share are closed; after 50 tries a connection,
     * any worker will do.
     */
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
        conn_attach(&cs[i++], fd);
    }
    for (int k = 0; k < npids; k++)
        snprintf(split + strlen(split), sizeof(split) - strlen(split), "%s%d",
                 k ? "," : "", per[k]);

    long long sb0, st0, sb1, st1;
    cpu_stat(&sb0, &st0);
    long long cpu0 = cpu_us(), t0 = now_us();
    int active = 0;
    for (int i = 0; i < nconns; i++) active += flood_start(&cs[i]);

    while (active && !stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            int r = conn_event(c, evs[k].events);
            if (r != 0 && !flood_next(c, r)) active--;
        }
    }
    long long t1 = now_us(), cpu1 = cpu_us();
    cpu_stat(&sb1, &st1);

    printf("LOAD mode=flood calls=%ld requests=%ld ok=%ld bad=%ld errors=%ld "
           "reconnects=%ld conns=%d conns_by_worker=%s flood_us=%lld "
           "req_per_s=%.0f client_cpu_us=%lld cpus_busy_pct=%.0f",
           done_calls, ok + bad + errs, ok, bad, errs, reconnects, nconns,
           split[0] ? split : "-",
           t1 - t0, (ok + bad) * 1e6 / (t1 - t0 > 0 ? t1 - t0 : 1),
           cpu1 - cpu0, busy_pct(sb0, st0, sb1, st1));

    if (pg) {
        long       count = -1, polls = 0;
        long long  moved = t1, last_poll_us = 0;
        int        stalled = 0;

        for (;;) {
            long long a = now_us();
            PGresult *res = PQexec(pg, "SELECT count(*) FROM call_events");
            long long b = now_us();
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                fprintf(stderr, "load: poll: %s", PQerrorMessage(pg));
                return 1;
            }
            long c = atol(PQgetvalue(res, 0, 0));
            PQclear(res);
            polls++;
            last_poll_us = b - a;
            if (c != count) { count = c; moved = b; }
            if (count >= target) break;
            if (b - moved > stall || stop) { stalled = 1; break; }
            long long sleep_us = poll - (now_us() - a);
            if (sleep_us > 0) usleep(sleep_us);
        }
        PQfinish(pg);
        printf(" target=%ld events=%ld reached_us=%lld stalled=%d polls=%ld "
               "poll_query_us=%lld", target, count, moved - t0, stalled, polls,
               last_poll_us);
    }
    printf("\n");
    return 0;
}

/* ---------------------------------------------------------------------- */

static int paced(int nconns, double rate)
{
    conn_t    *cs, **idle;
    int        nidle = 0, tfd;
    long       next = 0, answered = 0, failed = 0;
    long long *due, *lat, *lag, *svc, first_sent = 0, last_sent = 0;
    long long  sb0, st0, sb1, st1;
    struct epoll_event  ev, evs[256];
    struct itimerspec   its;

    if (rate <= 0) { errno = 0; die("paced: RATE must be > 0"); }
    cs = calloc(nconns, sizeof(conn_t));
    idle = calloc(nconns, sizeof(conn_t *));
    due = calloc(nreqs, sizeof(long long));
    lat = calloc(nreqs, sizeof(long long));
    lag = calloc(nreqs, sizeof(long long));
    svc = calloc(nreqs, sizeof(long long));
    for (int i = 0; i < nconns; i++) {
        conn_open(&cs[i]);
        idle[nidle++] = &cs[i];
    }

    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd < 0) die("timerfd_create");
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

    long long cpu0 = cpu_us(), t0 = now_us() + 20000;
    cpu_stat(&sb0, &st0);
    for (long i = 0; i < nreqs; i++) due[i] = t0 + (long long) (i * 1e6 / rate);

    while ((answered + failed < nreqs) && !stop) {
        long long t = now_us();

        /* every request that is due goes out, on the idle connection
         * that has been idle longest (round robin over the workers) */
        while (next < nreqs && due[next] <= t && nidle) {
            conn_t *c = idle[0];
            memmove(idle, idle + 1, --nidle * sizeof(conn_t *));
            c->call = next;
            if (conn_send(c, &reqs[next], t) < 0) {
                failed++;
                idle[nidle++] = c;
            }
            lag[next] = t - due[next];
            if (next == 0) first_sent = t;
            last_sent = t;
            next++;
        }
        if (next < nreqs && due[next] > t) {
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
            int r = conn_event(c, evs[k].events);
            if (r == 0) continue;
            if (r == 1) {
                long long t1 = now_us();
                svc[answered] = t1 - c->sent_us;
                lat[answered++] = t1 - due[c->call];
            } else {
                failed++;
            }
            idle[nidle++] = c;
        }
    }
    long long cpu1 = cpu_us();
    cpu_stat(&sb1, &st1);

    qsort(lat, answered, sizeof(long long), cmp_ll);
    qsort(svc, answered, sizeof(long long), cmp_ll);
    qsort(lag, next, sizeof(long long), cmp_ll);
    printf("LOAD mode=paced requests=%ld ok=%ld bad=%ld errors=%ld "
           "reconnects=%ld conns=%d rate=%.0f sent_rate=%.1f "
           "p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld "
           "lag_p50_us=%lld lag_p99_us=%lld lag_max_us=%lld sent_p50_us=%lld "
           "sent_p99_us=%lld client_cpu_us=%lld cpus_busy_pct=%.0f\n",
           answered + failed, ok, bad, errs, reconnects, nconns, rate,
           next > 1 ? (next - 1) * 1e6 / (last_sent - first_sent) : 0.0,
           pct(lat, answered, .50), pct(lat, answered, .90),
           pct(lat, answered, .99), pct(lat, answered, .999),
           answered ? lat[answered - 1] : 0,
           pct(lag, next, .50), pct(lag, next, .99),
           next ? lag[next - 1] : 0, pct(svc, answered, .50),
           pct(svc, answered, .99), cpu1 - cpu0, busy_pct(sb0, st0, sb1, st1));
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;

    if (argc < 5 || (strcmp(argv[1], "flood") && strcmp(argv[1], "paced"))
        || (strcmp(argv[1], "paced") == 0 && argc != 6)) {
        fprintf(stderr, "usage: load flood FILE PORT CONNS [WORKERS [CONNINFO TARGET POLL_MS STALL_MS]]\n"
                        "       load paced FILE PORT CONNS RATE\n");
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    port = atoi(argv[3]);
    load_file(argv[2]);
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    if (strcmp(argv[1], "paced") == 0) return paced(atoi(argv[4]), atof(argv[5]));
    if (argc >= 10)
        return flood(atoi(argv[4]), atoi(argv[5]), argv[6], atol(argv[7]),
                     atoll(argv[8]) * 1000, atoll(argv[9]) * 1000);
    return flood(atoi(argv[4]), argc >= 6 ? atoi(argv[5]) : 1, NULL, 0, 0, 0);
}
