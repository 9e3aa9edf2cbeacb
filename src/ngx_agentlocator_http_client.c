
/*
 * Outbound HTTP for the whole module (Twilio REST, WhatsApp sends,
 * recordings and their transcription): one libcurl multi handle per worker on the
 * multi_socket API.  curl's sockets are wrapped as nginx connections with
 * level-triggered events (curl does not promise to read to EAGAIN), its
 * single timer is an nginx timer, names resolve on curl's threaded
 * resolver; nothing here ever blocks the worker.  While requests are in
 * flight a non-cancelable timer keeps a gracefully exiting worker alive
 * until they are answered: an answer Twilio sent is never thrown away.
 */


#include "ngx_agentlocator.h"

#include <curl/curl.h>


#define NGX_AGENTLOCATOR_HTTP_MAX_BODY  (64 * 1024)

/*
 * Idle requests kept with their easy handles.  A fresh handle costs an
 * init and a cleanup of several kilobytes per request, and a storm of
 * redirects makes thousands; past this many idle ones they are freed.
 */
#define NGX_AGENTLOCATOR_HTTP_MAX_IDLE  NGX_AGENTLOCATOR_HTTP_HOST_CONNECTIONS

/* an answer buffer larger than this is not kept for the next request */
#define NGX_AGENTLOCATOR_HTTP_KEEP_BODY  4096

/*
 * The guard that keeps an exiting worker alive for its requests; every
 * request has a shorter timeout of its own, so this fires only if curl
 * loses one.
 */
#define NGX_AGENTLOCATOR_HTTP_GUARD      (60 * 1000)


struct ngx_agentlocator_http_req_s {
    CURL                             *easy;
    ngx_agentlocator_http_req_t      *next;       /* idle list */
    ngx_queue_t                       queue;      /* active list */
    const char                       *failed;     /* here, not by curl */

    u_char                           *post;       /* curl does not copy it */
    size_t                            post_cap;
    struct curl_slist                *headers;    /* NULL: the engine's */
    curl_mime                        *mime;       /* a multipart body */
    size_t                            max_body;
    unsigned                          strict:1;   /* more than max fails */
    unsigned                          oversize:1; /* and it came */
    unsigned                          background:1;

    ngx_agentlocator_http_done_pt     done;
    void                             *data;

    ngx_agentlocator_http_result_t    result;
    u_char                           *body;       /* grown as it arrives */
    size_t                            body_cap;
    char                              error[CURL_ERROR_SIZE];
};


/* where curl is in a multipart body's data part */
typedef struct {
    u_char                           *data;
    size_t                            len;
    size_t                            pos;
} ngx_agentlocator_http_cursor_t;


typedef struct {
    CURLM                            *multi;

    /* our connection of each of curl's sockets, by fd */
    ngx_connection_t                **conns;
    ngx_uint_t                        nconns;
    ngx_event_t                       timer;
    ngx_connection_t                  dummy;   /* timer.data */
    ngx_event_t                       guard;   /* non-cancelable */
    ngx_connection_t                  guard_dummy;
    ngx_event_t                       fail;    /* posted: see _socket */
    ngx_connection_t                  fail_dummy;
    ngx_queue_t                       requests;    /* active ones */
    ngx_uint_t                        active;

    ngx_agentlocator_http_req_t      *idle;
    ngx_uint_t                        nidle;
    struct curl_slist                *headers;  /* the same for all */
} ngx_agentlocator_http_engine_t;


static int ngx_agentlocator_http_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_agentlocator_http_timer(CURLM *multi, long timeout_ms,
    void *userp);
static int ngx_agentlocator_http_close_socket(void *clientp,
    curl_socket_t s);
static void ngx_agentlocator_http_release(curl_socket_t s,
    ngx_connection_t *c);
static void ngx_agentlocator_http_event(ngx_event_t *ev);
static void ngx_agentlocator_http_timeout(ngx_event_t *ev);
static void ngx_agentlocator_http_completions(void);
static void ngx_agentlocator_http_finish(ngx_agentlocator_http_req_t *req);
static void ngx_agentlocator_http_fail_pending(ngx_event_t *ev);
static void ngx_agentlocator_http_guard(ngx_event_t *ev);
static void ngx_agentlocator_http_socket_failed(CURL *easy,
    const char *reason);
static ngx_agentlocator_http_req_t *ngx_agentlocator_http_req_of(CURL *easy);
static ngx_agentlocator_http_req_t *ngx_agentlocator_http_get(ngx_log_t *log);
static void ngx_agentlocator_http_put(ngx_agentlocator_http_req_t *req);
static void ngx_agentlocator_http_free(ngx_agentlocator_http_req_t *req);
static size_t ngx_agentlocator_http_write(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static ngx_int_t ngx_agentlocator_http_mime(ngx_agentlocator_http_req_t *req,
    ngx_agentlocator_http_out_t *out);
static size_t ngx_agentlocator_http_part_read(char *buffer, size_t size,
    size_t nitems, void *arg);
static int ngx_agentlocator_http_part_seek(void *arg, curl_off_t offset,
    int origin);
static size_t ngx_agentlocator_http_header(char *ptr, size_t size,
    size_t nitems, void *userdata);


static ngx_agentlocator_http_engine_t  ngx_agentlocator_http;


#if (NGX_DEBUG)

/*
 * Debug builds only: AGENTLOCATOR_TEST_NO_CONNECTION=N (passed with "env")
 * makes the Nth socket curl opens find no free connection, so the tests
 * can prove that path without exhausting worker_connections.
 */

static ngx_uint_t  ngx_agentlocator_http_fail_countdown;

#define ngx_agentlocator_http_inject_failure()                                \
    (ngx_agentlocator_http_fail_countdown                                     \
     && --ngx_agentlocator_http_fail_countdown == 0)

#else

#define ngx_agentlocator_http_inject_failure()  0

#endif


/* Once, in the master, before any thread exists (curl's requirement). */

ngx_int_t
ngx_agentlocator_http_global_init(ngx_log_t *log)
{
    curl_version_info_data  *info;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "agentlocator: curl_global_init() failed");
        return NGX_ERROR;
    }

    info = curl_version_info(CURLVERSION_NOW);

    if (!(info->features & CURL_VERSION_ASYNCHDNS)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "agentlocator: libcurl %s resolves names synchronously;"
                      " use IP addresses in REST URLs or a libcurl built "
                      "with the threaded resolver", info->version);
    }

    return NGX_OK;
}


ngx_int_t
ngx_agentlocator_http_init_worker(ngx_cycle_t *cycle)
{
    ngx_agentlocator_http_engine_t  *e;

#if (NGX_DEBUG)
    ngx_agentlocator_http_fail_countdown = ngx_agentlocator_test_countdown(
        cycle, "AGENTLOCATOR_TEST_NO_CONNECTION",
        "this worker's outbound socket finds no free connection");
#endif

    e = &ngx_agentlocator_http;

    e->multi = curl_multi_init();
    if (e->multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "agentlocator: curl_multi_init() failed");
        return NGX_ERROR;
    }

    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_agentlocator_http_socket);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_agentlocator_http_timer);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long) NGX_AGENTLOCATOR_HTTP_HOST_CONNECTIONS);

    /*
     * By default curl keeps 4 idle connections per easy handle in the
     * multi handle at that moment: between a burst of completions and the
     * next claims that is a few, and it closes the rest (1449 connections
     * for 11143 requests in bench/watchdog).
     */
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS,
                      (long) 2 * NGX_AGENTLOCATOR_HTTP_HOST_CONNECTIONS);

    e->headers = curl_slist_append(NULL, "Accept: application/json");
    if (e->headers == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "agentlocator: curl_slist_append() failed");
        return NGX_ERROR;
    }

    ngx_agentlocator_worker_timer(&e->timer, &e->dummy,
                                  ngx_agentlocator_http_timeout, cycle->log);
    ngx_agentlocator_worker_timer(&e->fail, &e->fail_dummy,
                                  ngx_agentlocator_http_fail_pending,
                                  cycle->log);
    ngx_agentlocator_worker_timer(&e->guard, &e->guard_dummy,
                                  ngx_agentlocator_http_guard, cycle->log);
    e->guard.cancelable = 0;

    ngx_queue_init(&e->requests);

    return NGX_OK;
}


/*
 * At worker exit, after the callers had their say (they abort what they
 * still have in flight; anything left is aborted here): sockets freed,
 * curl cleaned up.
 */

void
ngx_agentlocator_http_exit_worker(void)
{
    ngx_agentlocator_http_req_t     *req;
    ngx_agentlocator_http_engine_t  *e;

    e = &ngx_agentlocator_http;

    if (e->multi == NULL) {
        return;
    }

    ngx_agentlocator_http_abort_all("worker exiting");

    while (e->idle) {
        req = e->idle;
        e->idle = req->next;
        ngx_agentlocator_http_free(req);
    }

    e->nidle = 0;

    if (e->timer.timer_set) {
        ngx_del_timer(&e->timer);
    }

    if (e->timer.posted) {
        ngx_delete_posted_event(&e->timer);
    }

    if (e->fail.posted) {
        ngx_delete_posted_event(&e->fail);
    }

    /* curl_multi_cleanup() calls the socket callback to remove sockets */
    (void) curl_multi_cleanup(e->multi);
    e->multi = NULL;

    free(e->conns);
    e->conns = NULL;
    e->nconns = 0;

    curl_slist_free_all(e->headers);
    e->headers = NULL;
}


/*
 * POST an application/x-www-form-urlencoded body with HTTP Basic auth.
 * "done" is called once, from the event loop, unless the request is
 * cancelled first.  Returns NULL if the request could not be started.
 */

ngx_agentlocator_http_req_t *
ngx_agentlocator_http_post(ngx_str_t *url, ngx_str_t *user,
    ngx_str_t *password, ngx_str_t *form, ngx_msec_t timeout,
    ngx_agentlocator_http_done_pt done, void *data, ngx_log_t *log)
{
    ngx_agentlocator_http_out_t  out;

    ngx_memzero(&out, sizeof(ngx_agentlocator_http_out_t));

    out.url = *url;
    out.user = *user;
    out.password = *password;
    out.body = *form;
    out.timeout = timeout;

    return ngx_agentlocator_http_send(&out, done, data, log);
}


/*
 * POST what "out" describes: its body (form-encoded unless it names
 * another content type) or its parts (multipart/form-data), or GET its
 * URL; Basic auth when it has a user, and one more header if it has one.
 */

ngx_agentlocator_http_req_t *
ngx_agentlocator_http_send(ngx_agentlocator_http_out_t *out,
    ngx_agentlocator_http_done_pt done, void *data, ngx_log_t *log)
{
    u_char                       *p, *userpwd, *line;
    size_t                        len;
    CURLcode                      rc;
    struct curl_slist            *list;
    ngx_agentlocator_http_req_t  *req;

    if (ngx_agentlocator_http.multi == NULL) {
        return NULL;
    }

    req = ngx_agentlocator_http_get(log);
    if (req == NULL) {
        return NULL;
    }

    req->done = done;
    req->data = data;

    /*
     * One buffer: the body, which curl reads from it until the request is
     * done, then the URL, "user:password" and the header lines, which curl
     * copies at once.
     */

    len = out->body.len + out->url.len + 1 + out->user.len + 1
          + out->password.len + 1
          + sizeof("Content-Type: ") + out->content_type.len
          + out->header.len + 1;

    if (len > req->post_cap) {
        p = ngx_alloc(len, log);
        if (p == NULL) {
            ngx_agentlocator_http_put(req);
            return NULL;
        }

        ngx_free(req->post);
        req->post = p;
        req->post_cap = len;
    }

    p = ngx_cpymem(req->post, out->body.data, out->body.len);
    *ngx_cpymem(p, out->url.data, out->url.len) = '\0';

    rc = curl_easy_setopt(req->easy, CURLOPT_URL, (char *) p);
    p += out->url.len + 1;

    if (rc == CURLE_OK && out->user.len) {
        userpwd = p;
        ngx_sprintf(userpwd, "%V:%V%Z", &out->user, &out->password);

        rc = curl_easy_setopt(req->easy, CURLOPT_USERPWD, (char *) userpwd);

        /* curl keeps its own copy; ours of the secret goes at once */
        ngx_explicit_memzero(userpwd, out->user.len + 1 + out->password.len);

    } else if (rc == CURLE_OK) {
        rc = curl_easy_setopt(req->easy, CURLOPT_USERPWD, NULL);
    }

    if (rc == CURLE_OK && (out->content_type.len || out->header.len)) {
        list = curl_slist_append(NULL, "Accept: application/json");
        line = p;

        if (list && out->content_type.len) {
            ngx_sprintf(line, "Content-Type: %V%Z", &out->content_type);
            list = curl_slist_append(list, (char *) line);
        }

        if (list && out->header.len) {
            ngx_sprintf(line, "%V%Z", &out->header);
            list = curl_slist_append(list, (char *) line);
        }

        if (list == NULL) {
            rc = CURLE_OUT_OF_MEMORY;

        } else {
            req->headers = list;
            rc = curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, list);
        }
    }

    if (rc != CURLE_OK) {
        ngx_agentlocator_http_put(req);
        return NULL;
    }

    req->max_body = out->max_body ? out->max_body
                                  : NGX_AGENTLOCATOR_HTTP_MAX_BODY;
    req->strict = (out->max_body != 0);

    if (out->get) {
        curl_easy_setopt(req->easy, CURLOPT_HTTPGET, 1L);

    } else if (out->nparts) {
        if (ngx_agentlocator_http_mime(req, out) != NGX_OK) {
            ngx_agentlocator_http_put(req);
            return NULL;
        }

    } else {
        curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, (char *) req->post);
        curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE,
                         (long) out->body.len);
    }

    curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, (long) out->timeout);
    curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) ngx_min(out->timeout, 5000));

    if (curl_multi_add_handle(ngx_agentlocator_http.multi, req->easy)
        != CURLM_OK)
    {
        ngx_agentlocator_http_put(req);
        return NULL;
    }

    ngx_queue_insert_tail(&ngx_agentlocator_http.requests, &req->queue);

    /*
     * a background request (a transcription: minutes, and nobody waits
     * on it) does not hold an exiting worker: exit aborts it
     */
    req->background = out->background;

    if (req->background) {
        return req;
    }

    if (ngx_agentlocator_http.active++ == 0) {
        ngx_add_timer(&ngx_agentlocator_http.guard,
                      NGX_AGENTLOCATOR_HTTP_GUARD);
    }

    return req;
}


/*
 * The parts as curl's mime: data parts copied, or read from the caller's
 * memory when it keeps them (a recording is not copied), file parts read
 * by curl as it sends them.
 */

static ngx_int_t
ngx_agentlocator_http_mime(ngx_agentlocator_http_req_t *req,
    ngx_agentlocator_http_out_t *out)
{
    ngx_uint_t                       i;
    curl_mimepart                   *part;
    ngx_agentlocator_http_part_t    *p;
    ngx_agentlocator_http_cursor_t  *cursor;

    req->mime = curl_mime_init(req->easy);
    if (req->mime == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < out->nparts; i++) {
        p = &out->parts[i];

        part = curl_mime_addpart(req->mime);
        if (part == NULL || curl_mime_name(part, p->name) != CURLE_OK) {
            return NGX_ERROR;
        }

        if (p->filename && curl_mime_filename(part, p->filename) != CURLE_OK)
        {
            return NGX_ERROR;
        }

        if (p->type && curl_mime_type(part, p->type) != CURLE_OK) {
            return NGX_ERROR;
        }

        if (p->file) {
            if (curl_mime_filedata(part, p->file) != CURLE_OK
                || (p->filename
                    && curl_mime_filename(part, p->filename) != CURLE_OK))
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (!p->keep) {
            if (curl_mime_data(part, (const char *) p->data.data,
                               p->data.len)
                != CURLE_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        /* the part's own cursor over the caller's bytes; curl frees it */
        cursor = malloc(sizeof(ngx_agentlocator_http_cursor_t));
        if (cursor == NULL) {
            return NGX_ERROR;
        }

        cursor->data = p->data.data;
        cursor->len = p->data.len;
        cursor->pos = 0;

        if (curl_mime_data_cb(part, (curl_off_t) p->data.len,
                              ngx_agentlocator_http_part_read,
                              ngx_agentlocator_http_part_seek, free, cursor)
            != CURLE_OK)
        {
            free(cursor);
            return NGX_ERROR;
        }
    }

    return curl_easy_setopt(req->easy, CURLOPT_MIMEPOST, req->mime)
           == CURLE_OK ? NGX_OK : NGX_ERROR;
}


static size_t
ngx_agentlocator_http_part_read(char *buffer, size_t size, size_t nitems,
    void *arg)
{
    ngx_agentlocator_http_cursor_t *cursor = arg;

    size_t  n;

    n = ngx_min(size * nitems, cursor->len - cursor->pos);

    ngx_memcpy(buffer, cursor->data + cursor->pos, n);
    cursor->pos += n;

    return n;
}


/* curl rewinds a part to send it again (a redirect, an auth retry) */

static int
ngx_agentlocator_http_part_seek(void *arg, curl_off_t offset, int origin)
{
    ngx_agentlocator_http_cursor_t *cursor = arg;

    if (origin != SEEK_SET || offset < 0 || (size_t) offset > cursor->len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }

    cursor->pos = (size_t) offset;

    return CURL_SEEKFUNC_OK;
}


/*
 * Every request in flight ends now: "done" is called for each with
 * result->aborted and "why" as the error.  For a fast stop, and for
 * worker_shutdown_timeout, when waiting for answers is over.  A "done"
 * starts no request when result->aborted: this loop would never end.
 */

void
ngx_agentlocator_http_abort_all(const char *why)
{
    ngx_queue_t                  *q;
    ngx_agentlocator_http_req_t  *req;

    if (ngx_agentlocator_http.multi == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_agentlocator_http.requests)) {
        q = ngx_queue_head(&ngx_agentlocator_http.requests);
        req = ngx_queue_data(q, ngx_agentlocator_http_req_t, queue);

        req->result.error = why;
        req->result.curl_code = CURLE_ABORTED_BY_CALLBACK;
        req->result.aborted = 1;

        ngx_agentlocator_http_finish(req);
    }
}


ngx_uint_t
ngx_agentlocator_http_active(void)
{
    return ngx_agentlocator_http.active;
}


/*
 * curl says which directions a socket waits for.  The first time we see a
 * socket it gets an nginx connection, remembered with curl_multi_assign();
 * CURL_POLL_REMOVE gives the connection back without closing the fd,
 * which is curl's.
 */

static int
ngx_agentlocator_http_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t  *c = socketp;

    ngx_uint_t                        n;
    ngx_connection_t                **conns;
    ngx_agentlocator_http_req_t      *req;
    ngx_agentlocator_http_engine_t   *e;

    e = &ngx_agentlocator_http;

    if (what == CURL_POLL_REMOVE) {
        /* c may be gone already: the socket was closed first (see below) */
        if (c && (ngx_uint_t) s < e->nconns && e->conns[s] == c) {
            ngx_agentlocator_http_release(s, c);
        }

        (void) curl_multi_assign(e->multi, s, NULL);

        return 0;
    }

    /*
     * Returning -1 from here fails the whole multi handle, and libcurl 7.88
     * then dereferences a NULL connection in its next call: a worker that
     * cannot watch a socket fails that one transfer instead, from a posted
     * event (curl must not be re-entered from its own callback).
     */

    if (c == NULL) {
        if ((ngx_uint_t) s >= e->nconns) {
            n = ngx_max((ngx_uint_t) s + 1, 2 * e->nconns);

            conns = realloc(e->conns, n * sizeof(ngx_connection_t *));
            if (conns == NULL) {
                ngx_agentlocator_http_socket_failed(easy, "out of memory");
                return 0;
            }

            ngx_memzero(conns + e->nconns,
                        (n - e->nconns) * sizeof(ngx_connection_t *));
            e->conns = conns;
            e->nconns = n;
        }

        c = NULL;
        req = ngx_agentlocator_http_req_of(easy);

        if (ngx_cycle->free_connection_n
            && !(req && req->failed)
            && !ngx_agentlocator_http_inject_failure())
        {
            c = ngx_get_connection(s, ngx_cycle->log);
        }

        if (c == NULL) {
            ngx_agentlocator_http_socket_failed(easy,
                "no free connection: worker_connections are not enough");
            return 0;
        }

        e->conns[s] = c;

        c->read->handler = ngx_agentlocator_http_event;
        c->write->handler = ngx_agentlocator_http_event;
        c->read->log = c->log;
        c->write->log = c->log;

        (void) curl_multi_assign(e->multi, s, c);
    }

    /* level-triggered, and only while curl asks: no busy loop on writable */

    if (what & CURL_POLL_IN) {
        if (!c->read->active
            && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            ngx_agentlocator_http_socket_failed(easy, "epoll_ctl() failed");
            return 0;
        }

    } else if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (what & CURL_POLL_OUT) {
        if (!c->write->active
            && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            ngx_agentlocator_http_socket_failed(easy, "epoll_ctl() failed");
            return 0;
        }

    } else if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


/*
 * curl may close a socket before it says CURL_POLL_REMOVE: take the socket
 * out of epoll while its fd is still ours, or a reused fd number would get
 * the old socket's registration (seen as epoll_ctl EBADF under load).
 */

static int
ngx_agentlocator_http_close_socket(void *clientp, curl_socket_t s)
{
    ngx_agentlocator_http_engine_t  *e;

    e = &ngx_agentlocator_http;

    if ((ngx_uint_t) s < e->nconns && e->conns[s]) {
        ngx_agentlocator_http_release(s, e->conns[s]);

        /*
         * curl still remembers our connection for this socket and will
         * hand it to CURL_POLL_REMOVE later, when the fd number (and the
         * freed connection) may already serve a new socket: forget it now.
         */
        (void) curl_multi_assign(e->multi, s, NULL);
    }

    return close(s);
}


/* The nginx connection of a curl socket goes back; the fd stays curl's. */

static void
ngx_agentlocator_http_release(curl_socket_t s, ngx_connection_t *c)
{
    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    ngx_agentlocator_http.conns[s] = NULL;
}


/*
 * curl's one timer.  0 ms must not call back into curl from here (curl's
 * rule): it becomes a posted event, run after this event loop turn.
 */

static int
ngx_agentlocator_http_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev;

    ev = &ngx_agentlocator_http.timer;

    /*
     * curl announces its earliest deadline after nearly every socket
     * action, mostly unchanged: a timer already at that very key stays
     * (moving it is a delete and an insert in the worker's timer tree).
     */
    if (ev->timer_set && timeout_ms > 0
        && ev->timer.key == ngx_current_msec + (ngx_msec_t) timeout_ms)
    {
        return 0;
    }

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (timeout_ms < 0) {
        return 0;
    }

    if (timeout_ms == 0) {
        if (!ev->posted) {
            ngx_post_event(ev, &ngx_posted_events);
        }

        return 0;
    }

    ngx_add_timer(ev, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_agentlocator_http_event(ngx_event_t *ev)
{
    int                running;
    ngx_connection_t  *c;

    c = ev->data;

    if (c->close) {
        /* worker_shutdown_timeout: waiting for answers is over */
        ngx_agentlocator_worker_cut = ngx_exiting;
        ngx_agentlocator_http_abort_all("worker_shutdown_timeout");
        return;
    }

    /* the fd is curl's: readiness is re-reported by epoll, never cached */
    ev->ready = 0;

    (void) curl_multi_socket_action(ngx_agentlocator_http.multi, c->fd,
                                    ev->write ? CURL_CSELECT_OUT
                                              : CURL_CSELECT_IN,
                                    &running);

    ngx_agentlocator_http_completions();
}


static void
ngx_agentlocator_http_timeout(ngx_event_t *ev)
{
    int  running;

    (void) curl_multi_socket_action(ngx_agentlocator_http.multi,
                                    CURL_SOCKET_TIMEOUT, 0, &running);

    ngx_agentlocator_http_completions();
}


static void
ngx_agentlocator_http_completions(void)
{
    int                           left;
    long                          status;
    CURLMsg                      *msg;
    ngx_agentlocator_http_req_t  *req;

    while ((msg = curl_multi_info_read(ngx_agentlocator_http.multi, &left))) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        req = ngx_agentlocator_http_req_of(msg->easy_handle);

        if (req == NULL) {
            continue;
        }

        status = 0;
        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
                                 &status);

        req->result.status = (ngx_uint_t) status;
        req->result.curl_code = msg->data.result;
        req->result.error = (msg->data.result == CURLE_OK)
                            ? NULL
                            : (req->result.oversize = req->oversize)
                            ? "the answer is larger than allowed"
                            : (req->error[0] ? req->error
                                 : curl_easy_strerror(msg->data.result));

        ngx_agentlocator_http_finish(req);
    }
}


/* The request leaves curl and the active list; its caller hears of it. */

static void
ngx_agentlocator_http_finish(ngx_agentlocator_http_req_t *req)
{
    ngx_agentlocator_http_engine_t  *e;

    e = &ngx_agentlocator_http;

    req->result.body.data = req->body ? req->body : (u_char *) "";

    (void) curl_multi_remove_handle(e->multi, req->easy);

    ngx_queue_remove(&req->queue);

    if (!req->background && --e->active == 0 && e->guard.timer_set) {
        ngx_del_timer(&e->guard);
    }

    req->done(&req->result, req->data);

    ngx_agentlocator_http_put(req);
}


/* Our request behind one of curl's easy handles. */

static ngx_agentlocator_http_req_t *
ngx_agentlocator_http_req_of(CURL *easy)
{
    ngx_agentlocator_http_req_t  *req;

    req = NULL;
    (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &req);

    return req;
}


/* A transfer whose socket we could not watch: see _socket. */

static void
ngx_agentlocator_http_socket_failed(CURL *easy, const char *reason)
{
    ngx_agentlocator_http_req_t  *req;

    req = ngx_agentlocator_http_req_of(easy);

    if (req == NULL || req->failed) {
        return;
    }

    req->failed = reason;

    if (!ngx_agentlocator_http.fail.posted) {
        ngx_post_event(&ngx_agentlocator_http.fail, &ngx_posted_events);
    }
}


static void
ngx_agentlocator_http_fail_pending(ngx_event_t *ev)
{
    ngx_queue_t                  *q, *next;
    ngx_agentlocator_http_req_t  *req;

    for (q = ngx_queue_head(&ngx_agentlocator_http.requests);
         q != ngx_queue_sentinel(&ngx_agentlocator_http.requests);
         q = next)
    {
        next = ngx_queue_next(q);
        req = ngx_queue_data(q, ngx_agentlocator_http_req_t, queue);

        if (req->failed == NULL) {
            continue;
        }

        req->result.error = req->failed;
        req->result.curl_code = CURLE_COULDNT_CONNECT;

        ngx_agentlocator_http_finish(req);

        /* "done" may have started requests: the list changed */
        next = ngx_queue_head(&ngx_agentlocator_http.requests);
    }
}


/* Requests in flight for a minute: curl lost them; end them. */

static void
ngx_agentlocator_http_guard(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "agentlocator: %ui outbound requests outlived their "
                  "timeouts, aborted", ngx_agentlocator_http.active);

    ngx_agentlocator_http_abort_all("outlived its timeout");
}


/*
 * An idle request, or a new one.  What is the same for every request is
 * set once per easy handle; curl keeps options across transfers.
 */

static ngx_agentlocator_http_req_t *
ngx_agentlocator_http_get(ngx_log_t *log)
{
    CURL                            *easy;
    ngx_agentlocator_http_req_t     *req;
    ngx_agentlocator_http_engine_t  *e;

    e = &ngx_agentlocator_http;

    if (e->idle) {
        req = e->idle;
        e->idle = req->next;
        e->nidle--;

        req->next = NULL;
        return req;
    }

    req = ngx_calloc(sizeof(ngx_agentlocator_http_req_t), log);
    if (req == NULL) {
        return NULL;
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_free(req);
        return NULL;
    }

    req->easy = easy;

    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, e->headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, NGX_AGENTLOCATOR_MODULE_NAME
                     "/" NGX_AGENTLOCATOR_VERSION);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_agentlocator_http_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION,
                     ngx_agentlocator_http_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_agentlocator_http_close_socket);

    return req;
}


/*
 * The request is over (done, cancelled or never started): keep it idle.
 * curl's copy of "user:password" stays in the handle until it is reused
 * or freed, as it did while the request ran; it is never logged.
 */

static void
ngx_agentlocator_http_put(ngx_agentlocator_http_req_t *req)
{
    ngx_agentlocator_http_engine_t  *e;

    e = &ngx_agentlocator_http;

    if (e->nidle >= NGX_AGENTLOCATOR_HTTP_MAX_IDLE || e->multi == NULL) {
        ngx_agentlocator_http_free(req);
        return;
    }

    if (req->body_cap > NGX_AGENTLOCATOR_HTTP_KEEP_BODY) {
        free(req->body);
        req->body = NULL;
        req->body_cap = 0;
    }

    if (req->headers) {
        curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, e->headers);
        curl_slist_free_all(req->headers);
        req->headers = NULL;
    }

    if (req->mime) {
        curl_easy_setopt(req->easy, CURLOPT_MIMEPOST, NULL);
        curl_mime_free(req->mime);
        req->mime = NULL;
    }

    ngx_memzero(&req->result, sizeof(ngx_agentlocator_http_result_t));
    req->error[0] = '\0';
    req->done = NULL;
    req->data = NULL;
    req->failed = NULL;
    req->oversize = 0;
    req->background = 0;

    req->next = e->idle;
    e->idle = req;
    e->nidle++;
}


static void
ngx_agentlocator_http_free(ngx_agentlocator_http_req_t *req)
{
    /* curl's copy of "user:password" goes with the handle */
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    curl_mime_free(req->mime);

    free(req->body);
    ngx_free(req->post);
    ngx_free(req);
}


/* Bounded: the REST answers we read are small JSON documents. */

static size_t
ngx_agentlocator_http_write(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_agentlocator_http_req_t *req = userdata;

    size_t  n, room;

    u_char  *p;
    size_t   need, cap;

    n = size * nmemb;

    if (req->strict && req->result.body.len + n > req->max_body) {
        req->oversize = 1;
        return 0;    /* curl fails the transfer */
    }

    need = ngx_min(req->result.body.len + n, req->max_body);

    if (need > req->body_cap) {
        for (cap = req->body_cap ? req->body_cap : 1024; cap < need; cap *= 2)
        {
            /* void */
        }

        cap = ngx_min(cap, req->max_body);

        p = realloc(req->body, cap);
        if (p == NULL) {
            return 0;    /* curl fails the transfer: a network error */
        }

        req->body = p;
        req->body_cap = cap;
    }

    room = need - req->result.body.len;

    ngx_memcpy(req->body + req->result.body.len, ptr, room);
    req->result.body.len += room;

    return n;
}


/* Retry-After: seconds (the HTTP-date form is treated as absent). */

static size_t
ngx_agentlocator_http_header(char *ptr, size_t size, size_t nitems,
    void *userdata)
{
    ngx_agentlocator_http_req_t *req = userdata;

    size_t     n, i;
    ngx_int_t  v;

    n = size * nitems;

    if (n > sizeof("Retry-After:") - 1
        && ngx_strncasecmp((u_char *) ptr, (u_char *) "Retry-After:",
                           sizeof("Retry-After:") - 1) == 0)
    {
        i = sizeof("Retry-After:") - 1;

        while (i < n && (ptr[i] == ' ' || ptr[i] == '\t')) {
            i++;
        }

        v = 0;

        while (i < n && ptr[i] >= '0' && ptr[i] <= '9' && v < 86400) {
            v = v * 10 + (ptr[i++] - '0');
        }

        req->result.retry_after = (ngx_msec_t) v * 1000;
    }

    return n;
}
