
/*
 * agentlocator_media_stream: Twilio's Media Streams WebSocket, terminated
 * here (SPEC §5).  The handshake is checked and answered with 101, then
 * this file owns the connection: frames are read through the codec, Twilio
 * messages update the registry and the recording, and replies go out
 * through a bounded queue; while the queue is over its bound nothing more
 * is read, so a slow client cannot make the worker buffer without limit.
 *
 * Once the 101 is on the wire the HTTP request is freed (its access log
 * line is written then, with status 101) and the stream keeps only the
 * connection: a call then costs its connection's pool and this file's
 * state, not nginx's request, headers and header buffers for the hours a
 * call can last.  WS_CLOSE is the stream's own end-of-session record.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_ws_codec.h"
#include "ngx_agentlocator_twilio_event.h"

#include <openssl/sha.h>


#define NGX_AGENTLOCATOR_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* nginx has no name for it */
#define NGX_AGENTLOCATOR_HTTP_UPGRADE_REQUIRED  426

#define NGX_AGENTLOCATOR_MEDIA_READ_BUFFER   4096

/*
 * The zone sees a stream's counters and last media time at most this late;
 * the watchdog's no_media_timeout (default 6 s) is thirty times longer.
 */
#define NGX_AGENTLOCATOR_MEDIA_FLUSH         200

/* after our close frame, how long the client has to answer with its own */
#define NGX_AGENTLOCATOR_MEDIA_CLOSE_WAIT    1000

/* log at most this many bad messages per stream; count all of them */
#define NGX_AGENTLOCATOR_MEDIA_LOG_BAD       10


typedef struct ngx_agentlocator_ws_out_s  ngx_agentlocator_ws_out_t;

struct ngx_agentlocator_ws_out_s {
    ngx_agentlocator_ws_out_t    *next;
    size_t                        len;
    size_t                        sent;
    u_char                        data[1];
};


typedef struct {
    ngx_connection_t                 *connection;
    ngx_agentlocator_registry_t      *registry;
    ngx_agentlocator_main_conf_t     *amcf;
    ngx_agentlocator_loc_conf_t      *alcf;

    ngx_agentlocator_ws_parser_t      parser;
    u_char                           *in_pos;      /* bytes not parsed yet */
    u_char                           *in_last;
    u_char                           *saved;       /* ours, when paused */

    ngx_agentlocator_ws_out_t        *out;
    ngx_agentlocator_ws_out_t       **out_last;
    size_t                            out_bytes;

    u_char                            call_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                            stream_sid[NGX_AGENTLOCATOR_SID_LEN];

    uint64_t                          frames;
    uint64_t                          bytes;
    uint64_t                          unflushed_frames;
    uint64_t                          unflushed_bytes;
    ngx_msec_t                        started;
    ngx_msec_t                        last_media;
    ngx_msec_t                        last_flush;
    ngx_uint_t                        bad_messages;

    ngx_agentlocator_recording_t     *recording;

    unsigned                          code;        /* close code */
    unsigned                          has_call:1;
    unsigned                          has_stream:1;
    unsigned                          stopped:1;
    unsigned                          closing:1;   /* our close is queued */
    unsigned                          failed:1;    /* protocol error */
    unsigned                          peer_closed:1;
    unsigned                          finished:1;
    unsigned                          counted:1;   /* in ws_open */
    unsigned                          paused:1;    /* queue over its bound */
} ngx_agentlocator_media_t;


static ngx_uint_t ngx_agentlocator_media_handshake(ngx_http_request_t *r,
    ngx_str_t *accept, ngx_str_t *protocol, const char **reason);
static void ngx_agentlocator_media_cleanup(void *data);
static void ngx_agentlocator_media_upgraded(ngx_http_request_t *r);
static void ngx_agentlocator_media_release_buffers(ngx_connection_t *c,
    ngx_http_connection_t *hc);
static void ngx_agentlocator_media_read_handler(ngx_event_t *rev);
static void ngx_agentlocator_media_write_handler(ngx_event_t *wev);
static void ngx_agentlocator_media_read(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_frame(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_ws_frame_t *frame);
static void ngx_agentlocator_media_message(ngx_agentlocator_media_t *ms,
    u_char *data, size_t len);
static void ngx_agentlocator_media_start(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev);
static void ngx_agentlocator_media_audio(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev);
static void ngx_agentlocator_media_flush(ngx_agentlocator_media_t *ms,
    ngx_uint_t stopped);
static void ngx_agentlocator_media_bad(ngx_agentlocator_media_t *ms,
    const char *reason);
static ngx_int_t ngx_agentlocator_media_send(ngx_agentlocator_media_t *ms,
    unsigned opcode, u_char *data, size_t len);
static ngx_int_t ngx_agentlocator_media_send_event(
    ngx_agentlocator_media_t *ms, const char *event, const char *field,
    u_char *value, size_t len);
static void ngx_agentlocator_media_close(ngx_agentlocator_media_t *ms,
    unsigned code, const char *reason);
static void ngx_agentlocator_media_finish(ngx_agentlocator_media_t *ms);
static ngx_int_t ngx_agentlocator_media_drain(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_resume(ngx_agentlocator_media_t *ms);
static ngx_int_t ngx_agentlocator_media_scratch(ngx_log_t *log,
    size_t payload);
static ngx_int_t ngx_agentlocator_media_save(ngx_agentlocator_media_t *ms);
static ngx_uint_t ngx_agentlocator_media_upgrade_required(
    ngx_http_request_t *r, const char *key, ngx_str_t *value, const char *why,
    const char **reason);
static ngx_uint_t ngx_agentlocator_media_token(ngx_str_t *value,
    const char *token);


static ngx_str_t  ngx_agentlocator_ws_upgrade = ngx_string("websocket");
static ngx_str_t  ngx_agentlocator_ws_version = ngx_string("13");


/*
 * Per worker, shared by its streams: the read buffer (every byte read is
 * parsed, or saved by its stream, before the handler returns) and the
 * decoded audio (used and dropped within one message).  A stream then
 * needs a message buffer of its own only for a message split across reads,
 * not 4k + 48k.
 */

static u_char  *ngx_agentlocator_media_in;
static u_char  *ngx_agentlocator_media_payload;
static size_t   ngx_agentlocator_media_payload_cap;


ngx_int_t
ngx_agentlocator_media_stream_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      accept, protocol;
    ngx_uint_t                     status;
    const char                    *reason;
    ngx_connection_t              *c;
    ngx_pool_cleanup_t            *cln;
    ngx_agentlocator_media_t      *ms;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_agentlocator_srv_conf_t   *ascf;
    ngx_agentlocator_loc_conf_t   *alcf;
    ngx_agentlocator_main_conf_t  *amcf;

    c = r->connection;

    rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_GET, "GET");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    status = ngx_agentlocator_media_handshake(r, &accept, &protocol, &reason);
    if (status) {
        /* a client that wanted a WebSocket has no use for keep-alive */
        r->keepalive = 0;
        return ngx_agentlocator_reply_error(r, status, reason);
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    if (alcf->signature) {
        /*
         * Twilio signs the upgrade with the wss:// URL it connected to and
         * no parameters; its docs advise trying a trailing "/" too.
         */
        ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);

        rc = ngx_agentlocator_signature_check(r,
                 ascf->public_url->scheme.len == 5 ? "wss" : "ws",
                 NULL, NGX_AGENTLOCATOR_SIG_WS_SLASH, NULL);

        if (rc == NGX_DECLINED) {
            r->keepalive = 0;
            return ngx_agentlocator_reply_error(r, NGX_HTTP_FORBIDDEN,
                                                "invalid X-Twilio-Signature");
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /*
     * The stream's state lives in the connection's pool: the request is
     * freed once the 101 is out (ngx_agentlocator_media_upgraded).  Every
     * exit from here on closes the connection (keepalive is off), and
     * destroying its pool runs the cleanup.
     */

    ms = ngx_pcalloc(c->pool, sizeof(ngx_agentlocator_media_t));
    if (ms == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->keepalive = 0;

    ms->connection = c;
    ms->amcf = amcf;
    ms->alcf = alcf;
    ms->registry = ngx_agentlocator_registry_get(amcf);
    ms->out_last = &ms->out;
    ms->code = NGX_AGENTLOCATOR_WS_ABNORMAL;

    ngx_agentlocator_ws_parser_init(&ms->parser, alcf->media_max_message);

    cln = ngx_pool_cleanup_add(c->pool, 0);

    if (cln == NULL
        || ngx_agentlocator_media_scratch(c->log,
                                          alcf->media_max_message / 4 * 3 + 3)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_agentlocator_media_cleanup;
    cln->data = ms;

    /*
     * Frames sent right behind the handshake are in a header buffer,
     * which is released with the request: the stream keeps a copy.
     */

    if (r->header_in->pos < r->header_in->last) {
        ms->in_pos = r->header_in->pos;
        ms->in_last = r->header_in->last;
        r->header_in->pos = r->header_in->last;

        if (ngx_agentlocator_media_save(ms) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_set_ctx(r, ms, ngx_http_agentlocator_module);

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    r->headers_out.content_length_n = -1;

    if (ngx_agentlocator_add_header(r, "Upgrade", &ngx_agentlocator_ws_upgrade)
        != NGX_OK
        || ngx_agentlocator_add_header(r, "Sec-WebSocket-Accept", &accept)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (protocol.len
        && ngx_agentlocator_add_header(r, "Sec-WebSocket-Protocol", &protocol)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_agentlocator_reply_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * Our reference keeps the request until the 101 is flushed; the
     * handover runs from a write event, outside nginx's handler chain for
     * this request.
     */

    r->main->count++;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_agentlocator_media_upgraded;

    ngx_post_event(c->write, &ngx_posted_events);

    ms->started = ngx_current_msec;

    if (ms->registry) {
        (void) ngx_atomic_fetch_add(&ms->registry->sh->ws_accepted, 1);
        (void) ngx_atomic_fetch_add(&ms->registry->sh->ws_open, 1);
        ms->counted = 1;
    }

    if (protocol.len == 0) {
        ngx_str_set(&protocol, "-");
    }

    ngx_log_error(NGX_LOG_NOTICE, c->log, 0, "WS_CONNECT protocol=%V",
                  &protocol);

    return NGX_DONE;
}


/*
 * The 101 is flushed (else this waits, as ngx_http_writer would, up to
 * send_timeout): the request is freed and the stream takes the connection
 * over with its own event handlers.
 */

static void
ngx_agentlocator_media_upgraded(ngx_http_request_t *r)
{
    ngx_connection_t           *c;
    ngx_http_connection_t      *hc;
    ngx_agentlocator_media_t   *ms;
    ngx_http_core_loc_conf_t   *clcf;

    c = r->connection;
    ms = ngx_http_get_module_ctx(r, ngx_http_agentlocator_module);

    if (c->write->timedout) {
        c->timedout = 1;
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out reading the 101 response");
        ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
        return;
    }

    if (r->out || c->buffered) {
        if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
            return;
        }

        if (r->out || c->buffered) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            ngx_add_timer(c->write, clcf->send_timeout);

            if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK)
            {
                ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
            }

            return;
        }
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    hc = r->http_connection;

    /*
     * This also sets c->destroyed, which is what tells
     * ngx_http_request_handler(), our caller, that the request is gone;
     * nothing else reads the flag on a connection that is not HTTP's any
     * more, and ngx_http_close_connection() sets it again at the end.
     */

    ngx_http_free_request(r, 0);

    ngx_agentlocator_media_release_buffers(c, hc);

    c->data = ms;
    c->log->action = "serving the Twilio media stream";

    c->read->handler = ngx_agentlocator_media_read_handler;
    c->write->handler = ngx_agentlocator_media_write_handler;

    /*
     * The idle timer is an ordinary connection timer: it keeps a worker
     * that is shutting down alive while its calls stream, as nginx does
     * for proxied WebSockets (worker_shutdown_timeout bounds it).
     */

    ngx_add_timer(c->read, ms->alcf->media_idle_timeout);

    /* ngx_http_block_reading() took it out of select/poll */

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    if (ms->in_pos < ms->in_last || c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * What ngx_http_set_keepalive() frees for an idle connection: the header
 * buffers, which a stream never reads into again.
 */

static void
ngx_agentlocator_media_release_buffers(ngx_connection_t *c,
    ngx_http_connection_t *hc)
{
    ngx_chain_t  *cl;

    if (c->buffer && ngx_pfree(c->pool, c->buffer->start) == NGX_OK) {
        c->buffer = NULL;
    }

    for (cl = hc->free; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    hc->free = NULL;

    for (cl = hc->busy; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    hc->busy = NULL;
    hc->nbusy = 0;
}


static void
ngx_agentlocator_media_read_handler(ngx_event_t *rev)
{
    ngx_connection_t          *c;
    ngx_agentlocator_media_t  *ms;

    c = rev->data;
    ms = c->data;

    if (ms->finished) {
        ngx_http_close_connection(c);
        return;
    }

    ngx_agentlocator_media_read(ms);
}


static void
ngx_agentlocator_media_write_handler(ngx_event_t *wev)
{
    ngx_connection_t          *c;
    ngx_agentlocator_media_t  *ms;

    c = wev->data;
    ms = c->data;

    if (ms->finished) {
        ngx_http_close_connection(c);
        return;
    }

    if (wev->timedout) {
        /* a client that reads nothing for the idle timeout is gone */

        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "WS_IDLE call=%*s: the client read nothing in %M ms",
                      ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                      ms->has_call ? ms->call_sid : (u_char *) "-",
                      ms->alcf->media_idle_timeout);

        ngx_agentlocator_media_finish(ms);
        return;
    }

    if (ngx_agentlocator_media_drain(ms) == NGX_ERROR) {
        ngx_agentlocator_media_finish(ms);
    }
}


/*
 * RFC 6455 §4.2.1: what makes a GET a WebSocket opening handshake.
 * Returns 0, with "accept" (Sec-WebSocket-Accept) and "protocol" (the
 * subprotocol to echo: empty unless the client offered one of ours), or
 * the HTTP status to refuse with and its reason.
 */

static ngx_uint_t
ngx_agentlocator_media_handshake(ngx_http_request_t *r, ngx_str_t *accept,
    ngx_str_t *protocol, const char **reason)
{
    u_char                       *p, *last, *start, key[64], digest[20];
    size_t                        len;
    ngx_str_t                     src, dst, *sub;
    ngx_uint_t                    i;
    ngx_table_elt_t              *h, *upgrade, *version;
    ngx_agentlocator_loc_conf_t  *alcf;

    if (r->http_version != NGX_HTTP_VERSION_11) {
        *reason = "WebSocket handshake needs HTTP/1.1";
        return NGX_HTTP_BAD_REQUEST;
    }

    /* what follows the headers is the client's first frames, never a body */

    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        *reason = "a WebSocket handshake has no body";
        return NGX_HTTP_BAD_REQUEST;
    }

    upgrade = ngx_agentlocator_find_header(r, "Upgrade",
                                           sizeof("Upgrade") - 1);

    if (upgrade == NULL
        || !ngx_agentlocator_media_token(&upgrade->value, "websocket"))
    {
        return ngx_agentlocator_media_upgrade_required(r, "Upgrade",
                   &ngx_agentlocator_ws_upgrade,
                   "this endpoint speaks WebSocket only", reason);
    }

    h = ngx_agentlocator_find_header(r, "Connection",
                                     sizeof("Connection") - 1);

    if (h == NULL || !ngx_agentlocator_media_token(&h->value, "upgrade")) {
        *reason = "Connection header must contain \"upgrade\"";
        return NGX_HTTP_BAD_REQUEST;
    }

    version = ngx_agentlocator_find_header(r, "Sec-WebSocket-Version",
                                           sizeof("Sec-WebSocket-Version") - 1);

    if (version == NULL
        || version->value.len != ngx_agentlocator_ws_version.len
        || ngx_strncmp(version->value.data, ngx_agentlocator_ws_version.data,
                       ngx_agentlocator_ws_version.len)
           != 0)
    {
        return ngx_agentlocator_media_upgrade_required(r,
                   "Sec-WebSocket-Version", &ngx_agentlocator_ws_version,
                   "unsupported Sec-WebSocket-Version", reason);
    }

    h = ngx_agentlocator_find_header(r, "Sec-WebSocket-Key",
                                     sizeof("Sec-WebSocket-Key") - 1);

    /* 16 random bytes in base64: 24 characters ending in "==" */

    *reason = "invalid Sec-WebSocket-Key";

    if (h == NULL || h->value.len != 24
        || h->value.data[22] != '=' || h->value.data[23] != '=')
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    src = h->value;
    dst.data = key;

    if (ngx_decode_base64(&dst, &src) != NGX_OK || dst.len != 16) {
        return NGX_HTTP_BAD_REQUEST;
    }

    len = h->value.len + sizeof(NGX_AGENTLOCATOR_WS_GUID) - 1;
    p = ngx_cpymem(key, h->value.data, h->value.len);
    ngx_memcpy(p, NGX_AGENTLOCATOR_WS_GUID,
               sizeof(NGX_AGENTLOCATOR_WS_GUID) - 1);

    SHA1(key, len, digest);

    accept->data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(20));
    if (accept->data == NULL) {
        *reason = "out of memory";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    src.data = digest;
    src.len = 20;
    ngx_encode_base64(accept, &src);

    /* a subprotocol only if offered and one of ours: the first offered */

    ngx_str_null(protocol);

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);
    h = ngx_agentlocator_find_header(r, "Sec-WebSocket-Protocol",
                                     sizeof("Sec-WebSocket-Protocol") - 1);

    if (h == NULL || alcf->media_subprotocols == NULL) {
        return 0;
    }

    p = h->value.data;
    last = p + h->value.len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < last && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }

        sub = alcf->media_subprotocols->elts;

        for (i = 0; i < alcf->media_subprotocols->nelts; i++) {
            if (sub[i].len == (size_t) (p - start)
                && ngx_strncmp(sub[i].data, start, sub[i].len) == 0)
            {
                *protocol = sub[i];
                return 0;
            }
        }
    }

    return 0;
}


static void
ngx_agentlocator_media_read(ngx_agentlocator_media_t *ms)
{
    int                           rc;
    ssize_t                       n;
    ngx_connection_t             *c;
    ngx_agentlocator_ws_frame_t   frame;

    c = ms->connection;

    if (c->close) {
        /* worker_shutdown_timeout or a forced shutdown */
        ngx_agentlocator_media_close(ms, NGX_AGENTLOCATOR_WS_GOING_AWAY,
                                     "server shutting down");
        ngx_agentlocator_media_finish(ms);
        return;
    }

    if (c->read->timedout) {
        c->read->timedout = 0;

        if (ms->closing) {
            /* the client never answered our close frame */
            ngx_agentlocator_media_finish(ms);
            return;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "WS_IDLE call=%*s: no message in %M ms",
                      ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                      ms->has_call ? ms->call_sid : (u_char *) "-",
                      ms->alcf->media_idle_timeout);

        ngx_agentlocator_media_close(ms, NGX_AGENTLOCATOR_WS_NORMAL,
                                     "idle timeout");
        return;
    }

    for ( ;; ) {

        /* parse what is buffered first, unless replies are backed up */

        while (ms->in_pos < ms->in_last) {

            if (ms->failed) {
                /* the stream is unreadable after a protocol error */
                ms->in_pos = ms->in_last;
                break;
            }

            if (ms->out_bytes > ms->alcf->media_send_buffer) {
                /*
                 * resumed by ngx_agentlocator_media_drain(); the rest of
                 * the shared read buffer becomes this stream's own
                 */
                ms->paused = 1;

                if (ms->in_pos >= ngx_agentlocator_media_in
                    && ms->in_pos < ngx_agentlocator_media_in
                                    + NGX_AGENTLOCATOR_MEDIA_READ_BUFFER)
                {
                    if (ngx_agentlocator_media_save(ms) != NGX_OK) {
                        ngx_agentlocator_media_finish(ms);
                    }
                }

                return;
            }

            rc = ngx_agentlocator_ws_parse(&ms->parser, &ms->in_pos,
                                           ms->in_last, &frame);

            if (rc == NGX_AGENTLOCATOR_WS_FRAME) {
                ngx_agentlocator_media_frame(ms, &frame);

                if (ms->finished) {
                    return;
                }

                continue;
            }

            if (rc == NGX_AGENTLOCATOR_WS_FAIL) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "WS_PROTOCOL_ERROR reason=\"%s\" close=%ui",
                              ms->parser.error,
                              (ngx_uint_t) ms->parser.close_code);

                if (ms->registry) {
                    (void) ngx_atomic_fetch_add(
                               &ms->registry->sh->ws_protocol_errors, 1);
                }

                /* "fail the connection": our close frame, then TCP close */
                ms->failed = 1;
                ngx_agentlocator_media_close(ms, ms->parser.close_code,
                                             ms->parser.error);
                ms->in_pos = ms->in_last;
                break;
            }
        }

        if (ms->finished) {
            return;
        }

        if (ms->saved) {
            ngx_free(ms->saved);
            ms->saved = NULL;
        }

        ms->in_pos = ngx_agentlocator_media_in;
        ms->in_last = ngx_agentlocator_media_in;

        n = c->recv(c, ngx_agentlocator_media_in,
                    NGX_AGENTLOCATOR_MEDIA_READ_BUFFER);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            /* the TCP connection ended, with or without a close frame */
            c->error = 1;
            ngx_agentlocator_media_finish(ms);
            return;
        }

        ms->in_last = ngx_agentlocator_media_in + n;

        if (!ms->closing) {
            ngx_add_timer(c->read, ms->alcf->media_idle_timeout);
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_agentlocator_media_finish(ms);
    }
}


static void
ngx_agentlocator_media_frame(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_ws_frame_t *frame)
{
    unsigned  code;

    if (ms->closing && frame->opcode != NGX_AGENTLOCATOR_WS_CLOSE) {
        /* after our close frame only the client's close matters */
        return;
    }

    switch (frame->opcode) {

    case NGX_AGENTLOCATOR_WS_TEXT:
        ngx_agentlocator_media_message(ms, frame->data, frame->len);
        return;

    case NGX_AGENTLOCATOR_WS_BINARY:
        ngx_agentlocator_media_bad(ms, "binary message");
        return;

    case NGX_AGENTLOCATOR_WS_PING:
        (void) ngx_agentlocator_media_send(ms, NGX_AGENTLOCATOR_WS_PONG,
                                           frame->data, frame->len);
        return;

    case NGX_AGENTLOCATOR_WS_PONG:
        return;

    default: /* NGX_AGENTLOCATOR_WS_CLOSE */
        ms->peer_closed = 1;

        code = (frame->len >= 2) ? (frame->data[0] << 8 | frame->data[1])
                                 : NGX_AGENTLOCATOR_WS_NO_STATUS;

        if (!ms->closing) {
            /* answer with the same code, then the server closes TCP */
            ngx_agentlocator_media_close(ms,
                code == NGX_AGENTLOCATOR_WS_NO_STATUS
                ? NGX_AGENTLOCATOR_WS_NORMAL : code, NULL);
        }

        ms->code = code;

        if (ms->out == NULL) {
            ngx_agentlocator_media_finish(ms);
        }

        return;
    }
}


static void
ngx_agentlocator_media_message(ngx_agentlocator_media_t *ms, u_char *data,
    size_t len)
{
    u_char                            safe[8];
    ngx_str_t                         digit;
    ngx_connection_t                 *c;
    ngx_agentlocator_twilio_event_t   ev;

    c = ms->connection;

    ev.payload = ngx_agentlocator_media_payload;
    ev.payload_cap = ngx_agentlocator_media_payload_cap;

    if (ngx_agentlocator_twilio_event_parse(data, len, &ev) != 0) {
        ngx_agentlocator_media_bad(ms, ev.error);
        return;
    }

    switch (ev.event) {

    case NGX_AGENTLOCATOR_EV_MEDIA:
        ngx_agentlocator_media_audio(ms, &ev);
        return;

    case NGX_AGENTLOCATOR_EV_START:
        ngx_agentlocator_media_start(ms, &ev);
        return;

    case NGX_AGENTLOCATOR_EV_CONNECTED:
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "agentlocator media: connected");
        return;

    case NGX_AGENTLOCATOR_EV_MARK:
        if (ms->alcf->media == 2 && ms->has_stream) {
            /* echo: as Twilio does once the audio before the mark played */
            (void) ngx_agentlocator_media_send_event(ms, "mark", "name",
                                                     ev.name, ev.name_len);
        }

        return;

    case NGX_AGENTLOCATOR_EV_DTMF:
        digit.data = ev.digit.data;
        digit.len = ev.digit.len;

        ngx_log_error(NGX_LOG_INFO, c->log, 0, "WS_DTMF call=%*s digit=%s",
                      ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                      ms->has_call ? ms->call_sid : (u_char *) "-",
                      ngx_agentlocator_log_safe(safe, sizeof(safe), &digit));
        return;

    case NGX_AGENTLOCATOR_EV_STOP:
        ngx_agentlocator_media_flush(ms, 1);
        ms->stopped = 1;

        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "WS_STOP call=%*s frames=%uL bytes=%uL",
                      ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                      ms->has_call ? ms->call_sid : (u_char *) "-",
                      ms->frames, ms->bytes);
        return;

    default:
        ngx_agentlocator_media_bad(ms, "unknown event");
        return;
    }
}


static void
ngx_agentlocator_media_start(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev)
{
    ngx_str_t                         call_sid, stream_sid, account_sid;
    ngx_uint_t                        known;
    ngx_connection_t                 *c;
    ngx_agentlocator_ev_sid_t        *sid;

    c = ms->connection;

    if (ms->has_call) {
        ngx_agentlocator_media_bad(ms, "second start");
        return;
    }

    /* start.callSid; our own <Parameter name="call_sid"> as a fallback */

    sid = ev->call_sid.len ? &ev->call_sid : &ev->param_call_sid;

    call_sid.data = sid->data;
    call_sid.len = sid->len;

    stream_sid.data = ev->stream_sid.data;
    stream_sid.len = ev->stream_sid.len;

    account_sid.data = ev->account_sid.data;
    account_sid.len = ev->account_sid.len;

    if (ngx_agentlocator_valid_sid(&call_sid, "CA") != NGX_OK) {
        ngx_agentlocator_media_bad(ms, "start without a valid callSid");
        return;
    }

    if (ngx_agentlocator_valid_sid(&stream_sid, "MZ") != NGX_OK) {
        ngx_agentlocator_media_bad(ms, "start without a valid streamSid");
        return;
    }

    if (ngx_agentlocator_valid_sid(&account_sid, "AC") != NGX_OK) {
        ngx_str_null(&account_sid);
    }

    ngx_memcpy(ms->call_sid, call_sid.data, NGX_AGENTLOCATOR_SID_LEN);
    ngx_memcpy(ms->stream_sid, stream_sid.data, NGX_AGENTLOCATOR_SID_LEN);
    ms->has_call = 1;
    ms->has_stream = 1;

    known = 0;

    if (ms->registry
        && ngx_agentlocator_registry_media_start(ms->registry,
                                                 &ms->amcf->timeouts,
                                                 &call_sid, &stream_sid,
                                                 &account_sid, &known)
           == NGX_BUSY)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "ZONE_FULL call=%V: agentlocator_zone has no room for "
                      "the stream, it proceeds without the watchdog",
                      &call_sid);
    }

    ms->last_flush = ngx_current_msec;

    if (ms->amcf->recordings) {
        ms->recording = ngx_agentlocator_recording_open(
                            &ms->amcf->recordings->name, ms->call_sid,
                            c->log);
    }

    ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                  "WS_START call=%V stream=%V known=%ui recording=%s",
                  &call_sid, &stream_sid, known,
                  ms->recording ? "on" : "off");
}


static void
ngx_agentlocator_media_audio(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev)
{
    u_char      *b64;
    size_t       len;
    ngx_msec_t   now;

    /* Twilio sends "inbound" on <Connect><Stream>; other tracks are not ours */

    if (ev->track.len && !(ev->track.len == 7
                           && ngx_strncmp(ev->track.data, "inbound", 7) == 0))
    {
        return;
    }

    now = ngx_current_msec;

    ms->frames++;
    ms->bytes += ev->payload_len;
    ms->unflushed_frames++;
    ms->unflushed_bytes += ev->payload_len;
    ms->last_media = now;

    if (ms->recording) {
        ngx_agentlocator_recording_append(ms->recording, ev->payload,
                                          ev->payload_len);
    }

    if (now - ms->last_flush >= NGX_AGENTLOCATOR_MEDIA_FLUSH) {
        ngx_agentlocator_media_flush(ms, 0);
    }

    if (ms->alcf->media == 2 && ms->has_stream) {
        len = ngx_base64_encoded_length(ev->payload_len);

        b64 = ngx_alloc(len, ms->connection->log);
        if (b64 == NULL) {
            return;
        }

        len = ngx_agentlocator_base64_encode(b64, ev->payload,
                                             ev->payload_len);

        (void) ngx_agentlocator_media_send_event(ms, "media", "payload", b64,
                                                 len);
        ngx_free(b64);
    }
}


/* Counters and the last media time to the zone; see ..._MEDIA_FLUSH. */

static void
ngx_agentlocator_media_flush(ngx_agentlocator_media_t *ms,
    ngx_uint_t stopped)
{
    ngx_str_t                         call_sid;
    ngx_agentlocator_registry_sh_t   *sh;

    ms->last_flush = ngx_current_msec;

    if (ms->registry == NULL) {
        return;
    }

    sh = ms->registry->sh;

    (void) ngx_atomic_fetch_add(&sh->ws_frames, ms->unflushed_frames);
    (void) ngx_atomic_fetch_add(&sh->ws_bytes, ms->unflushed_bytes);

    if (ms->has_call && !ms->stopped) {
        call_sid.data = ms->call_sid;
        call_sid.len = NGX_AGENTLOCATOR_SID_LEN;

        (void) ngx_agentlocator_registry_media_progress(ms->registry,
                   &ms->amcf->timeouts, &call_sid, ms->unflushed_frames,
                   ms->unflushed_bytes, ms->last_media, stopped);
    }

    ms->unflushed_frames = 0;
    ms->unflushed_bytes = 0;
}


/* A message we cannot use: counted, logged (the first few), not fatal. */

static void
ngx_agentlocator_media_bad(ngx_agentlocator_media_t *ms, const char *reason)
{
    ms->bad_messages++;

    if (ms->registry) {
        (void) ngx_atomic_fetch_add(&ms->registry->sh->ws_bad_messages, 1);
    }

    if (ms->bad_messages <= NGX_AGENTLOCATOR_MEDIA_LOG_BAD) {
        ngx_log_error(NGX_LOG_INFO, ms->connection->log, 0,
                      "WS_BAD_MESSAGE reason=\"%s\" count=%ui%s", reason,
                      ms->bad_messages,
                      ms->bad_messages == NGX_AGENTLOCATOR_MEDIA_LOG_BAD
                      ? " (further ones are only counted)" : "");
    }
}


/*
 * {"event":"media","streamSid":"MZ...","media":{"payload":"..."}} and the
 * like: only ever with the streamSid Twilio gave in "start"; the value is
 * JSON-escaped.
 */

static ngx_int_t
ngx_agentlocator_media_send_event(ngx_agentlocator_media_t *ms,
    const char *event, const char *field, u_char *value, size_t len)
{
    u_char     *buf, *p;
    size_t      size;
    ngx_int_t   rc;
    ngx_str_t   v;

    v.data = value;
    v.len = len;

    size = sizeof("{\"event\":\"\",\"streamSid\":\"\",\"\":{\"\":\"\"}}") - 1
           + 2 * ngx_strlen(event) + ngx_strlen(field)
           + NGX_AGENTLOCATOR_SID_LEN + ngx_agentlocator_json_escape_len(&v);

    buf = ngx_alloc(size, ms->connection->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "{\"event\":\"%s\",\"streamSid\":\"%*s\",\"%s\":{"
                    "\"%s\":\"", event, NGX_AGENTLOCATOR_SID_LEN,
                    ms->stream_sid, event, field);
    p = ngx_agentlocator_json_escape(p, &v);
    p = ngx_cpymem(p, "\"}}", 3);

    rc = ngx_agentlocator_media_send(ms, NGX_AGENTLOCATOR_WS_TEXT, buf,
                                     p - buf);
    ngx_free(buf);

    return rc;
}


/*
 * Queues one server frame and starts writing.  The queue's bound is
 * enforced on the reading side (nothing more is read while it is over), so
 * what is queued here is what answers messages already read.
 */

static ngx_int_t
ngx_agentlocator_media_send(ngx_agentlocator_media_t *ms, unsigned opcode,
    u_char *data, size_t len)
{
    size_t                      hlen;
    ngx_agentlocator_ws_out_t  *out;

    if (ms->closing || ms->finished) {
        return NGX_DECLINED;
    }

    out = ngx_alloc(offsetof(ngx_agentlocator_ws_out_t, data)
                    + NGX_AGENTLOCATOR_WS_MAX_HEADER + len,
                    ms->connection->log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    hlen = ngx_agentlocator_ws_header(out->data, opcode, len);

    if (len) {
        ngx_memcpy(out->data + hlen, data, len);
    }

    out->next = NULL;
    out->len = hlen + len;
    out->sent = 0;

    *ms->out_last = out;
    ms->out_last = &out->next;
    ms->out_bytes += out->len;

    if (opcode == NGX_AGENTLOCATOR_WS_CLOSE) {
        ms->closing = 1;
    }

    return ngx_agentlocator_media_drain(ms);
}


/*
 * Our close frame (code, reason): queued once; the connection ends when
 * the client answers with its own or after NGX_AGENTLOCATOR_MEDIA_CLOSE_WAIT.
 */

static void
ngx_agentlocator_media_close(ngx_agentlocator_media_t *ms, unsigned code,
    const char *reason)
{
    u_char             payload[NGX_AGENTLOCATOR_WS_MAX_CONTROL];
    size_t             len;
    ngx_connection_t  *c;

    if (ms->closing || ms->finished) {
        return;
    }

    c = ms->connection;
    ms->code = code;

    payload[0] = (u_char) (code >> 8);
    payload[1] = (u_char) code;
    len = 2;

    if (reason) {
        len += ngx_min(ngx_strlen(reason), sizeof(payload) - 2);
        ngx_memcpy(payload + 2, reason, len - 2);
    }

    if (ngx_agentlocator_media_send(ms, NGX_AGENTLOCATOR_WS_CLOSE, payload,
                                    len)
        == NGX_ERROR)
    {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    if (ms->finished) {
        return;
    }

    if (ms->peer_closed && ms->out == NULL) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    ngx_add_timer(c->read, NGX_AGENTLOCATOR_MEDIA_CLOSE_WAIT);
}


/*
 * Writes queued frames until the socket would block.  NGX_ERROR: the
 * connection is broken.  When the queue falls back under its bound,
 * reading resumes.
 */

static ngx_int_t
ngx_agentlocator_media_drain(ngx_agentlocator_media_t *ms)
{
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_agentlocator_ws_out_t  *out;

    c = ms->connection;

    if (ms->finished || c->error) {
        return NGX_ERROR;
    }

    while (ms->out) {
        out = ms->out;

        n = c->send(c, out->data + out->sent, out->len - out->sent);

        if (n == NGX_AGAIN) {
            ngx_agentlocator_media_resume(ms);
            goto again;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        out->sent += n;
        ms->out_bytes -= n;

        if (out->sent < out->len) {
            continue;
        }

        ms->out = out->next;

        if (ms->out == NULL) {
            ms->out_last = &ms->out;
        }

        ngx_free(out);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ms->closing && (ms->peer_closed || ms->failed)) {
        /* both close frames exchanged, or a failed stream: close TCP */
        ngx_agentlocator_media_finish(ms);
        return NGX_OK;
    }

    ngx_agentlocator_media_resume(ms);

    return NGX_OK;

again:

    /* a client that reads nothing for the idle timeout is gone */

    ngx_add_timer(c->write, ms->alcf->media_idle_timeout);

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Reading resumes as soon as the queue is back under its bound, whether or
 * not it has drained: the read side is edge-triggered and the bytes it left
 * unread will not be announced again.
 */

static void
ngx_agentlocator_media_resume(ngx_agentlocator_media_t *ms)
{
    if (ms->paused && !ms->closing
        && ms->out_bytes <= ms->alcf->media_send_buffer)
    {
        ms->paused = 0;
        ngx_post_event(ms->connection->read, &ngx_posted_events);
    }
}


/*
 * The end of the stream: logged here, and the connection is closed from
 * its own posted write event, so that no caller up the stack is left
 * holding freed state; destroying the pool runs the cleanup.
 */

static void
ngx_agentlocator_media_finish(ngx_agentlocator_media_t *ms)
{
    ngx_connection_t  *c;

    if (ms->finished) {
        return;
    }

    ms->finished = 1;
    c = ms->connection;

    if (c->write->timedout) {
        ms->code = NGX_AGENTLOCATOR_WS_ABNORMAL;
    }

    ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                  "WS_CLOSE code=%ui call=%*s frames=%uL bytes=%uL bad=%ui "
                  "ms=%M",
                  (ngx_uint_t) ms->code,
                  ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                  ms->has_call ? ms->call_sid : (u_char *) "-",
                  ms->frames, ms->bytes, ms->bad_messages,
                  ngx_current_msec - ms->started);

    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * Runs when the connection's pool is destroyed, however the stream ended
 * (the connection itself is closed by then): the registry learns the
 * stream stopped, the recording is completed, memory is freed.
 */

static void
ngx_agentlocator_media_cleanup(void *data)
{
    ngx_agentlocator_media_t  *ms = data;

    ngx_agentlocator_ws_out_t  *out, *next;

    if (ms->has_call) {
        ngx_agentlocator_media_flush(ms, 1);
        ms->stopped = 1;
    }

    if (ms->recording) {
        ngx_agentlocator_recording_close(ms->recording);
        ms->recording = NULL;
    }

    for (out = ms->out; out; out = next) {
        next = out->next;
        ngx_free(out);
    }

    ms->out = NULL;

    ngx_agentlocator_ws_parser_free(&ms->parser);

    if (ms->saved) {
        ngx_free(ms->saved);
        ms->saved = NULL;
    }

    if (ms->counted) {
        (void) ngx_atomic_fetch_add(&ms->registry->sh->ws_open,
                                    (ngx_atomic_int_t) -1);
    }
}


/* The worker's shared buffers, grown to what this location needs. */

static ngx_int_t
ngx_agentlocator_media_scratch(ngx_log_t *log, size_t payload)
{
    u_char  *p;

    if (ngx_agentlocator_media_in == NULL) {
        ngx_agentlocator_media_in = ngx_alloc(
                                        NGX_AGENTLOCATOR_MEDIA_READ_BUFFER,
                                        log);
        if (ngx_agentlocator_media_in == NULL) {
            return NGX_ERROR;
        }
    }

    if (payload > ngx_agentlocator_media_payload_cap) {
        p = ngx_alloc(payload, log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ngx_agentlocator_media_payload) {
            ngx_free(ngx_agentlocator_media_payload);
        }

        ngx_agentlocator_media_payload = p;
        ngx_agentlocator_media_payload_cap = payload;
    }

    return NGX_OK;
}


/* A worker's last streams are gone by the time it exits. */

void
ngx_agentlocator_media_exit_worker(void)
{
    ngx_free(ngx_agentlocator_media_in);
    ngx_free(ngx_agentlocator_media_payload);

    ngx_agentlocator_media_in = NULL;
    ngx_agentlocator_media_payload = NULL;
    ngx_agentlocator_media_payload_cap = 0;
}


/* Paused with bytes in the shared buffer: keep them. */

static ngx_int_t
ngx_agentlocator_media_save(ngx_agentlocator_media_t *ms)
{
    size_t   n;
    u_char  *p;

    n = ms->in_last - ms->in_pos;

    p = ngx_alloc(n, ms->connection->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, ms->in_pos, n);

    ms->saved = p;
    ms->in_pos = p;
    ms->in_last = p + n;

    return NGX_OK;
}


/* 426, naming in "key" what the client must send instead. */

static ngx_uint_t
ngx_agentlocator_media_upgrade_required(ngx_http_request_t *r,
    const char *key, ngx_str_t *value, const char *why, const char **reason)
{
    if (ngx_agentlocator_add_header(r, key, value) != NGX_OK) {
        *reason = "out of memory";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *reason = why;
    return NGX_AGENTLOCATOR_HTTP_UPGRADE_REQUIRED;
}


/* Whether a comma-separated header value has "token" (case-insensitive). */

static ngx_uint_t
ngx_agentlocator_media_token(ngx_str_t *value, const char *token)
{
    u_char  *p, *last, *start, *end;
    size_t   len;

    len = ngx_strlen(token);
    p = value->data;
    last = p + value->len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < last && *p != ',') {
            p++;
        }

        end = p;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if ((size_t) (end - start) == len
            && ngx_strncasecmp(start, (u_char *) token, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
