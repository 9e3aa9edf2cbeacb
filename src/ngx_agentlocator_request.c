
/*
 * Helpers over what a client sent, shared by the handlers: request
 * headers, Twilio SIDs, values made fit for a log line.  Nothing here
 * knows a handler; every handler may use it.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_ws_codec.h"


/*
 * A webhook's body must arrive whole within agentlocator_body_timeout:
 * client_body_timeout runs between two reads, so a client sending a byte
 * every few seconds would hold its connection (and an old worker after a
 * reload) for ever.  The timer lives in a cleanup of the request's pool,
 * so it goes with the request whatever way the request ends.
 */

typedef struct {
    ngx_event_t                       timer;
    ngx_http_request_t               *r;
    ngx_http_client_body_handler_pt   done;
    ngx_msec_t                        timeout;
} ngx_agentlocator_body_wait_t;


static ngx_int_t ngx_agentlocator_read_post_body(ngx_http_request_t *r,
    ngx_msec_t timeout, ngx_http_client_body_handler_pt done);
static void ngx_agentlocator_body_read(ngx_http_request_t *r);
static void ngx_agentlocator_body_timeout(ngx_event_t *ev);
static void ngx_agentlocator_body_cleanup(void *data);


/*
 * The body as one buffer, read back from the temp file when nginx spilled
 * it there (client_body_buffer_size).  NGX_DECLINED: over "max".
 */

ngx_int_t
ngx_agentlocator_read_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char                       *p;
    off_t                         len, size;
    ssize_t                       n;
    ngx_buf_t                    *b;
    ngx_chain_t                  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_OK;
    }

    b = r->request_body->bufs->buf;

    if (r->request_body->bufs->next == NULL && !b->in_file) {
        /* the usual case: one buffer in memory, parsed where it is */
        body->data = b->pos;
        body->len = b->last - b->pos;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            size = b->file_last - b->file_pos;

            n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

            if (n != (ssize_t) size) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "agentlocator: could not read the request "
                              "body back from \"%V\"", &b->file->name);
                return NGX_ERROR;
            }

            p += size;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * A webhook's start: POST only (405), the Content-Type "type" (415), a
 * declared length within "max" (413); then its body is read and "done"
 * called with it.  What the content handler returns.
 */

ngx_int_t
ngx_agentlocator_read_post(ngx_http_request_t *r, const char *type,
    size_t max, ngx_http_client_body_handler_pt done)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_agentlocator_loc_conf_t  *alcf;
    u_char                        reason[128];

    rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_POST, "POST");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!ngx_agentlocator_content_type(r, type)) {
        p = ngx_snprintf(reason, sizeof(reason) - 1,
                         "Content-Type must be %s", type);
        *p = '\0';

        return ngx_agentlocator_reply_error(r,
                                            NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                            (char *) reason);
    }

    if (r->headers_in.content_length_n > (off_t) max) {
        return ngx_agentlocator_reply_error(r,
                                            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                            "request body too large");
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    if (alcf->body_timeout && r == r->main) {
        rc = ngx_agentlocator_read_post_body(r, alcf->body_timeout, done);

    } else {
        rc = ngx_http_read_client_request_body(r, done);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_agentlocator_read_post_body(ngx_http_request_t *r, ngx_msec_t timeout,
    ngx_http_client_body_handler_pt done)
{
    ngx_int_t                      rc;
    ngx_pool_cleanup_t            *cln;
    ngx_agentlocator_body_wait_t  *bw;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_agentlocator_body_wait_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    bw = cln->data;
    ngx_memzero(bw, sizeof(ngx_agentlocator_body_wait_t));

    bw->r = r;
    bw->done = done;
    bw->timeout = timeout;

    /* the connection, as ngx_event_ident() expects of a timer's data */
    bw->timer.handler = ngx_agentlocator_body_timeout;
    bw->timer.data = r->connection;
    bw->timer.log = r->connection->log;
    bw->timer.cancelable = 1;

    cln->handler = ngx_agentlocator_body_cleanup;

    /* armed first: a body that came with the header is handled at once */
    ngx_add_timer(&bw->timer, timeout);

    rc = ngx_http_read_client_request_body(r, ngx_agentlocator_body_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE && bw->timer.timer_set) {
        ngx_del_timer(&bw->timer);
    }

    return rc;
}


/* The whole body is here: the deadline goes, the handler has it. */

static void
ngx_agentlocator_body_read(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t            *cln;
    ngx_agentlocator_body_wait_t  *bw;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_agentlocator_body_cleanup) {
            break;
        }
    }

    if (cln == NULL) {
        /* never: only read_post_body() passes this handler */
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    bw = cln->data;

    if (bw->timer.timer_set) {
        ngx_del_timer(&bw->timer);
    }

    bw->done(r);
}


/*
 * Not all of it in time: the request ends as nginx ends one whose
 * client_body_timeout expired (408 in the access log, the connection
 * closed, no answer to a client that is not reading one), with one line.
 */

static void
ngx_agentlocator_body_timeout(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_agentlocator_body_wait_t  *bw;

    /* the timer is its first member */
    bw = (ngx_agentlocator_body_wait_t *) ev;
    r = bw->r;
    c = r->connection;

    /* nginx ended it already (a 413 mid-body): its pool, and this, go soon */
    if (r->done) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "WEBHOOK_BODY_TIMEOUT timeout=%M length=%O rest=%O: the "
                  "body did not arrive within agentlocator_body_timeout",
                  bw->timeout, r->headers_in.content_length_n,
                  r->request_body ? r->request_body->rest : (off_t) -1);

    c->timedout = 1;

#if (NGX_HTTP_V2)
    if (r->stream) {
        /* the stream's DATA frames that come later never complete it */
        r->stream->skip_data = 1;
    }
#endif

    ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
    ngx_http_run_posted_requests(c);
}


static void
ngx_agentlocator_body_cleanup(void *data)
{
    ngx_agentlocator_body_wait_t  *bw = data;

    if (bw->timer.timer_set) {
        ngx_del_timer(&bw->timer);
    }
}


/*
 * The request's Content-Type is "type" (any case), alone or with
 * parameters ("; charset=utf-8").
 */

ngx_uint_t
ngx_agentlocator_content_type(ngx_http_request_t *r, const char *type)
{
    size_t      len;
    ngx_str_t  *value;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    value = &r->headers_in.content_type->value;
    len = ngx_strlen(type);

    return value->len >= len
           && ngx_strncasecmp(value->data, (u_char *) type, len) == 0
           && (value->len == len || value->data[len] == ';'
               || value->data[len] == ' ');
}


/*
 * Text the database can store: UTF-8 (RFC 3629, as WebSocket text frames
 * are checked), without NUL.  PostgreSQL refuses both, and a refused write
 * is a lost one.
 */

ngx_int_t
ngx_agentlocator_storable_text(ngx_str_t *s)
{
    if (s->len == 0) {
        return NGX_OK;
    }

    if (ngx_strlchr(s->data, s->data + s->len, '\0') != NULL
        || !ngx_agentlocator_utf8_valid(s->data, s->len))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The longest prefix of data[0..len) that is storable text: what a
 * provider said, cut to a bound, may end inside a character.
 */

size_t
ngx_agentlocator_storable_prefix(u_char *data, size_t len)
{
    size_t   n;
    u_char  *p, *last;

    for (p = data, last = data + len; p < last; p += n) {
        n = (*p == '\0') ? 0 : ngx_agentlocator_utf8_char(p, last);

        if (n == 0) {
            break;
        }
    }

    return p - data;
}


/* A phone number in E.164 (ngx_agentlocator_e164_ok). */

ngx_int_t
ngx_agentlocator_e164(ngx_str_t *number)
{
    return ngx_agentlocator_e164_ok(number->data, number->len)
           ? NGX_OK : NGX_DECLINED;
}


/* A media URL a client gave: http:// or https:// and something after. */

ngx_uint_t
ngx_agentlocator_http_url(ngx_str_t *url)
{
    return ngx_agentlocator_http_url_ok(url->data, url->len);
}


/* "CA" + 32 hex digits, as Twilio issues them. */

ngx_int_t
ngx_agentlocator_valid_sid(ngx_str_t *sid, const char *prefix)
{
    return ngx_agentlocator_sid_ok(sid->data, sid->len, prefix)
           ? NGX_OK : NGX_DECLINED;
}


/*
 * A client's value fit for a log line: printable token characters only,
 * bounded, NUL-terminated ("-" when empty).
 */

u_char *
ngx_agentlocator_log_safe(u_char *buf, size_t size, ngx_str_t *src)
{
    u_char  ch, *p;
    size_t  i, n;

    n = ngx_min(src->len, size - 1);
    p = buf;

    for (i = 0; i < n; i++) {
        ch = src->data[i];

        *p++ = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'
                || ch == '.' || ch == ':' || ch == '+' || ch == '@')
               ? ch : '?';
    }

    if (p == buf) {
        *p++ = '-';
    }

    *p = '\0';

    return buf;
}


/* The first request header called "name", case-insensitively. */

ngx_table_elt_t *
ngx_agentlocator_find_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


#if (NGX_DEBUG)

/*
 * Debug builds only: a test's fault injection, "name=N" in the worker's
 * environment (nginx "env name=N;"): 0 when unset, else N, announced in the
 * log so that no one mistakes the failure that follows for a real one.
 */

ngx_uint_t
ngx_agentlocator_test_countdown(ngx_cycle_t *cycle, const char *name,
    const char *what)
{
    char       *v;
    ngx_int_t   n;

    v = getenv(name);

    if (v == NULL) {
        return 0;
    }

    n = ngx_atoi((u_char *) v, ngx_strlen(v));
    n = (n > 0) ? n : 0;

    ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                  "agentlocator: %s #%i (%s)", what, n, name);

    return (ngx_uint_t) n;
}

#endif
