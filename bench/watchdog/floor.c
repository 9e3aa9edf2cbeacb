/*
 * bench/watchdog/floor.c: the floor under the watchdog's redirect rate.
 * The module sends its redirects with libcurl's multi_socket API in
 * nginx's event loop; this sends N of the same requests with the same
 * libcurl, the same API and the same options, and does nothing else: no
 * registry, no log, no nginx.  What it reaches is as fast as the mandated
 * engine goes on this machine, and the module can only approach it.
 *
 * Each request is what the watchdog sends (src/ngx_agentlocator_http_
 * client.c, src/ngx_agentlocator_watchdog.c):
 *
 *   POST http://127.0.0.1:PORT/2010-04-01/Accounts/ACCOUNT/Calls/CA<PREFIX>
 *        <index, 24 - strlen(PREFIX) ... hex digits>.json
 *   Authorization: Basic (CURLAUTH_BASIC, CURLOPT_USERPWD)
 *   Accept: application/json, the module's User-Agent
 *   Content-Type: application/x-www-form-urlencoded
 *   Twiml=<BODYLEN - 6 bytes>
 *
 * with keep-alive, CURLMOPT_MAX_HOST_CONNECTIONS = HOSTCONNS and
 * CURLMOPT_MAXCONNECTS = 2 HOSTCONNS (as the module sets them), a 5 s
 * CURLOPT_TIMEOUT_MS, at most INFLIGHT requests added to the multi handle at
 * once (the module's in-flight bound), each completion starting the next.
 * Sockets go to epoll, level-triggered, added and removed as curl asks;
 * curl's timer is checked after each batch of socket events, and new
 * requests are added after that, as nginx runs a turn of the module:
 * events, timers, then the posted watchdog tick that claims more.
 *
 * Easy handles are kept and reused (only the URL changes), as a tuned
 * client would; "fresh" as the last argument makes and frees one per
 * request instead, for comparison.
 *
 * Output, one line to stdout:
 *   n= ok= failed= connects= inflight= hostconns= reuse= wall_s= per_s=
 *   cpu_s= user_s= sys_s= cpu_us=
 * cpu is this process's getrusage() (all threads) from the first request to
 * the last answer; cpu_us is per request.
 *
 * usage: floor PORT N INFLIGHT HOSTCONNS ACCOUNT USER:PASSWORD BODYLEN
 *              PREFIX [fresh]
 * Exit status 0 when every request got 200, 1 otherwise, 2 on bad usage.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

typedef struct req_s  req_t;

struct req_s {
    CURL   *easy;
    req_t  *next;           /* free list */
    char    url[256];
    char    error[CURL_ERROR_SIZE];
};

static int                 ep;
static CURLM              *multi;
static double              timer_at = -1;
static long                n_total, n_started, n_done, n_ok, n_failed;
static long                n_connects;
static int                 reuse = 1;
static req_t              *free_reqs;
static struct curl_slist  *headers;
static char               *body, *userpwd, *url_base;
static size_t              body_len;
static const char         *prefix;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval *tv)
{
    return tv->tv_sec + tv->tv_usec / 1e6;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *data)
{
    (void) p; (void) data;
    return size * nmemb;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    (void) p; (void) data;
    return size * n;
}

/* curl says what a socket waits for; level-triggered, like the module */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
    struct epoll_event ev;

    (void) easy; (void) userp;

    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
            curl_multi_assign(multi, s, NULL);
        }
        return 0;
    }

    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0)
                | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;

    if (socketp == NULL) {
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) {
            return -1;
        }
        curl_multi_assign(multi, s, (void *) 1);
    } else if (epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) < 0) {
        return -1;
    }
    return 0;
}

/* curl may close a socket before CURL_POLL_REMOVE: leave epoll first */
static int on_close(void *clientp, curl_socket_t s)
{
    (void) clientp;
    epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
    curl_multi_assign(multi, s, NULL);
    return close(s);
}

/* curl's one timer: a deadline checked after each batch of events */
static int on_timer(CURLM *m, long ms, void *userp)
{
    (void) m; (void) userp;
    timer_at = ms < 0 ? -1 : now_s() + ms / 1e3;
    return 0;
}

static CURL *new_easy(req_t *r)
{
    CURL *e = curl_easy_init();

    if (e == NULL) {
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) body_len);
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     "ngx_http_agentlocator_module/0.1.0");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    return e;
}

static int start_one(void)
{
    req_t *r = free_reqs;

    if (r) {
        free_reqs = r->next;
    } else {
        r = calloc(1, sizeof(req_t));
        if (r == NULL) {
            return -1;
        }
    }
    if (r->easy == NULL) {
        r->easy = new_easy(r);
        if (r->easy == NULL) {
            return -1;
        }
    }

    snprintf(r->url, sizeof(r->url), "%sCA%s%0*lx.json", url_base, prefix,
             (int) (32 - strlen(prefix)), n_started);
    curl_easy_setopt(r->easy, CURLOPT_URL, r->url);

    if (curl_multi_add_handle(multi, r->easy) != CURLM_OK) {
        return -1;
    }
    n_started++;
    return 0;
}

static void completions(void)
{
    int left;
    long status, connects;
    CURLMsg *msg;
    req_t *r;

    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r);
        status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        connects = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_NUM_CONNECTS, &connects);
        n_connects += connects;

        if (msg->data.result == CURLE_OK && status == 200) {
            n_ok++;
        } else if (n_failed++ < 5) {
            fprintf(stderr, "floor: status %ld: %s\n", status,
                    r->error[0] ? r->error
                                : curl_easy_strerror(msg->data.result));
        }
        n_done++;

        curl_multi_remove_handle(multi, msg->easy_handle);
        if (!reuse) {
            curl_easy_cleanup(r->easy);
            r->easy = NULL;
        }
        r->error[0] = '\0';
        r->next = free_reqs;
        free_reqs = r;
    }
}

/* up to INFLIGHT added to the multi handle */
static void top_up(long inflight)
{
    while (n_started < n_total && n_started - n_done < inflight) {
        if (start_one() < 0) {
            fprintf(stderr, "floor: could not start a request\n");
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    int port, inflight, hostconns, i, n, running;
    char *account;
    double t0, t1;
    struct rusage ru0, ru1;
    struct epoll_event evs[256];
    req_t *r;

    if (argc < 9 || argc > 10 || (argc == 10 && strcmp(argv[9], "fresh"))) {
        fprintf(stderr, "usage: floor PORT N INFLIGHT HOSTCONNS ACCOUNT "
                "USER:PASSWORD BODYLEN PREFIX [fresh]\n");
        return 2;
    }
    port = atoi(argv[1]);
    n_total = atol(argv[2]);
    inflight = atoi(argv[3]);
    hostconns = atoi(argv[4]);
    account = argv[5];
    userpwd = argv[6];
    body_len = strtoul(argv[7], NULL, 10);
    prefix = argv[8];
    reuse = (argc == 9);
    if (port <= 0 || n_total <= 0 || inflight <= 0 || hostconns < 0
        || body_len < 6 || body_len > 1 << 20 || strlen(prefix) > 30)
    {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }

    /* the same length as the module's form; its bytes do not matter */
    body = malloc(body_len + 1);
    memcpy(body, "Twiml=", 6);
    memset(body + 6, 'x', body_len - 6);
    body[body_len] = '\0';

    if (asprintf(&url_base, "http://127.0.0.1:%d/2010-04-01/Accounts/%s/"
                 "Calls/", port, account) < 0)
    {
        return 2;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "floor: curl_global_init failed\n");
        return 2;
    }
    headers = curl_slist_append(NULL, "Accept: application/json");
    ep = epoll_create1(0);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) hostconns);
    /* as the module: room for all of them however few handles are added */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) 2 * hostconns);

    getrusage(RUSAGE_SELF, &ru0);
    t0 = now_s();

    top_up(inflight);

    while (n_done < n_total) {
        double wait = timer_at < 0 ? 1 : timer_at - now_s();

        n = epoll_wait(ep, evs, 256, wait <= 0 ? 0 : (int) (wait * 1e3 + 1));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("floor: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            int flags = ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                         ? CURL_CSELECT_IN : 0)
                        | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0);
            curl_multi_socket_action(multi, evs[i].data.fd, flags, &running);
            completions();
        }
        if (timer_at >= 0 && now_s() >= timer_at) {
            timer_at = -1;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
            completions();
        }
        /* after the whole batch of events, as the module claims more */
        top_up(inflight);
    }

    t1 = now_s();
    getrusage(RUSAGE_SELF, &ru1);

    printf("n=%ld ok=%ld failed=%ld connects=%ld inflight=%d hostconns=%d "
           "reuse=%d wall_s=%.4f per_s=%.0f cpu_s=%.4f user_s=%.4f "
           "sys_s=%.4f cpu_us=%.2f\n",
           n_total, n_ok, n_failed, n_connects, inflight, hostconns, reuse,
           t1 - t0, n_total / (t1 - t0),
           tv_s(&ru1.ru_utime) + tv_s(&ru1.ru_stime)
           - tv_s(&ru0.ru_utime) - tv_s(&ru0.ru_stime),
           tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime),
           tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime),
           1e6 * (tv_s(&ru1.ru_utime) + tv_s(&ru1.ru_stime)
                  - tv_s(&ru0.ru_utime) - tv_s(&ru0.ru_stime)) / n_total);

    while ((r = free_reqs)) {
        free_reqs = r->next;
        if (r->easy) {
            curl_easy_cleanup(r->easy);
        }
        free(r);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return n_ok == n_total ? 0 : 1;
}
