
/*
 * Twilio's Media Streams WebSocket once the 101 is out (SPEC §5): this file
 * owns the connection.  Frames are read through the codec, Twilio's
 * messages update the registry and the recording, replies go out through
 * a queue bounded in memory; while it is over its bound nothing more is
 * read, so a slow client cannot make the worker buffer without limit.
 *
 * The stream's own timer watches its silence to the millisecond and hands
 * a silent call to the watchdog; a stream that ends without Twilio's
 * "stop" leaves its call "dropped", watched from its last media on.  Once
 * the 101 is flushed the HTTP request is freed (its access log line is
 * written then, with status 101) and the stream keeps only the
 * connection.  WS_CLOSE is the stream's own end-of-session record.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_ws_codec.h"
#include "ngx_agentlocator_twilio_event.h"


#define NGX_AGENTLOCATOR_MEDIA_READ_BUFFER   4096

/* after our close frame, how long the client has to answer with its own */
#define NGX_AGENTLOCATOR_MEDIA_CLOSE_WAIT    1000

/* log at most this many bad messages per stream; count all of them */
#define NGX_AGENTLOCATOR_MEDIA_LOG_BAD       10

/*
 * Replies are queued in buffers of at least this size, small frames (a
 * pong, a mark) packed together: the send bound counts these buffers, so
 * it bounds the memory a client that never reads can pin.
 */
#define NGX_AGENTLOCATOR_MEDIA_OUT_CHUNK     4096


typedef struct ngx_agentlocator_ws_out_s  ngx_agentlocator_ws_out_t;

struct ngx_agentlocator_ws_out_s {
    ngx_agentlocator_ws_out_t    *next;
    size_t                        len;
    size_t                        sent;
    size_t                        cap;
    u_char                        data[1];
};


struct ngx_agentlocator_media_s {
    ngx_connection_t                 *connection;
    ngx_agentlocator_registry_t      *registry;
    ngx_agentlocator_main_conf_t     *amcf;
    ngx_agentlocator_loc_conf_t      *alcf;
    ngx_http_core_loc_conf_t         *clcf;        /* lingering_* */

    ngx_agentlocator_ws_parser_t      parser;
    u_char                           *in_pos;      /* bytes not parsed yet */
    u_char                           *in_last;
    u_char                           *saved;       /* ours, when paused */

    ngx_agentlocator_ws_out_t        *out;
    ngx_agentlocator_ws_out_t        *out_tail;
    size_t                            out_mem;     /* the queue's buffers */

    ngx_event_t                       silence;     /* no media for long */

    u_char                            call_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                            stream_sid[NGX_AGENTLOCATOR_SID_LEN];
    ngx_agentlocator_call_ref_t       call;        /* call_sid, hashed once */
    ngx_agentlocator_stream_ref_t     ref;         /* us, in the registry */

    /* the call the per-call stream URL named; empty on the plain URL */
    ngx_str_t                         url_call_sid;
    u_char                            url_call[NGX_AGENTLOCATOR_SID_LEN];

    uint64_t                          frames;
    uint64_t                          bytes;
    uint64_t                          unflushed_frames;
    uint64_t                          unflushed_bytes;
    ngx_msec_t                        started;
    ngx_msec_t                        media_started;
    ngx_msec_t                        last_media;
    ngx_msec_t                        last_flush;
    ngx_msec_t                        last_message;
    ngx_msec_t                        linger_until;
    ngx_uint_t                        bad_messages;

    ngx_agentlocator_recording_t     *recording;
    ngx_atomic_t                     *open_count;  /* ours, if "counted" */

    unsigned                          code;        /* close code */
    unsigned                          has_call:1;
    unsigned                          has_stream:1;
    unsigned                          attached:1;  /* holds its call */
    unsigned                          stopped:1;   /* Twilio's "stop" */
    unsigned                          silent:1;    /* told the watchdog */
    unsigned                          closing:1;   /* our close is queued */
    unsigned                          failed:1;    /* protocol error */
    unsigned                          lingering:1;
    unsigned                          peer_closed:1;
    unsigned                          finished:1;
    unsigned                          counted:1;   /* in open_count */
    unsigned                          paused:1;    /* queue over its bound */
};


static void ngx_agentlocator_media_cleanup(void *data);
static void ngx_agentlocator_media_upgraded(ngx_http_request_t *r);
static void ngx_agentlocator_media_release_buffers(ngx_connection_t *c,
    ngx_http_connection_t *hc);
static void ngx_agentlocator_media_read_handler(ngx_event_t *rev);
static void ngx_agentlocator_media_write_handler(ngx_event_t *wev);
static void ngx_agentlocator_media_read(ngx_agentlocator_media_t *ms);
static ngx_int_t ngx_agentlocator_media_read_timer(
    ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_frame(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_ws_frame_t *frame);
static void ngx_agentlocator_media_message(ngx_agentlocator_media_t *ms,
    u_char *data, size_t len);
static void ngx_agentlocator_media_transcribe(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_crm(ngx_agentlocator_media_t *ms,
    const char *event, const char *reason);
static void ngx_agentlocator_media_start(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev);
static ngx_int_t ngx_agentlocator_media_attach(ngx_agentlocator_media_t *ms,
    ngx_str_t *call_sid, ngx_str_t *stream_sid, ngx_str_t *account_sid);
static ngx_int_t ngx_agentlocator_media_take_call(ngx_agentlocator_media_t *ms,
    ngx_str_t *stream_sid, ngx_str_t *account_sid, ngx_uint_t *refusal,
    ngx_pid_t *owner);
static void ngx_agentlocator_media_audio(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_twilio_event_t *ev);
static void ngx_agentlocator_media_silence_handler(ngx_event_t *ev);
static void ngx_agentlocator_media_flush(ngx_agentlocator_media_t *ms,
    ngx_uint_t event);
static void ngx_agentlocator_media_bad(ngx_agentlocator_media_t *ms,
    const char *reason);
static ngx_int_t ngx_agentlocator_media_send(ngx_agentlocator_media_t *ms,
    unsigned opcode, u_char *data, size_t len);
static ngx_int_t ngx_agentlocator_media_send_event(
    ngx_agentlocator_media_t *ms, const char *event, const char *field,
    u_char *value, size_t len);
static void ngx_agentlocator_media_close(ngx_agentlocator_media_t *ms,
    unsigned code, const char *reason);
static void ngx_agentlocator_media_goodbye(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_linger(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_discard(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_finish(ngx_agentlocator_media_t *ms);
static ngx_int_t ngx_agentlocator_media_drain(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_pause(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_resume(ngx_agentlocator_media_t *ms);
static void ngx_agentlocator_media_free_out(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_ws_out_t *out);
static ngx_int_t ngx_agentlocator_media_scratch(ngx_log_t *log,
    size_t payload);
static ngx_int_t ngx_agentlocator_media_save(ngx_agentlocator_media_t *ms);


/*
 * Per worker, shared by its streams: the read buffer (every byte read is
 * parsed, or saved by its stream, before the handler returns) and the
 * decoded audio (used and dropped within one message).  A stream then
 * needs a message buffer of its own only for a message split across reads,
 * not 4k + 48k.
 */

/* whether replies wait to be sent */
#define ngx_agentlocator_media_queued(ms)                                     \
    ((ms)->out && (ms)->out->sent < (ms)->out->len)


static u_char  *ngx_agentlocator_media_in;
static u_char  *ngx_agentlocator_media_payload;
static size_t   ngx_agentlocator_media_payload_cap;

/*
 * A drained reply buffer of the usual size, kept for whichever stream
 * sends next: a stream holds reply buffers only while replies wait, yet
 * one that replies to every frame (echo, marks) does not malloc per frame.
 */
static ngx_agentlocator_ws_out_t  *ngx_agentlocator_media_spare;


/*
 * The stream's state, in the connection's pool: the request is freed once
 * the 101 is out (ngx_agentlocator_media_upgraded).  Destroying the pool,
 * however the connection ends, runs the cleanup.
 */

ngx_agentlocator_media_t *
ngx_agentlocator_media_create(ngx_http_request_t *r, ngx_str_t *url_call_sid)
{
    ngx_connection_t              *c;
    ngx_pool_cleanup_t            *cln;
    ngx_agentlocator_media_t      *ms;
    ngx_agentlocator_loc_conf_t   *alcf;
    ngx_agentlocator_main_conf_t  *amcf;

    c = r->connection;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    ms = ngx_pcalloc(c->pool, sizeof(ngx_agentlocator_media_t));
    if (ms == NULL) {
        return NULL;
    }

    ms->connection = c;
    ms->amcf = amcf;
    ms->alcf = alcf;
    ms->clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ms->registry = ngx_agentlocator_registry_get(amcf);
    ms->code = NGX_AGENTLOCATOR_WS_ABNORMAL;

    /* a copy: the request and its header buffers go before the stream */
    if (url_call_sid->len == NGX_AGENTLOCATOR_SID_LEN) {
        ngx_memcpy(ms->url_call, url_call_sid->data,
                   NGX_AGENTLOCATOR_SID_LEN);
        ms->url_call_sid.data = ms->url_call;
        ms->url_call_sid.len = NGX_AGENTLOCATOR_SID_LEN;
    }

    ngx_agentlocator_ws_parser_init(&ms->parser, alcf->media_max_message);

    cln = ngx_pool_cleanup_add(c->pool, 0);

    if (cln == NULL
        || ngx_agentlocator_media_scratch(c->log,
                                          alcf->media_max_message / 4 * 3 + 3)
           != NGX_OK)
    {
        return NULL;
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
            return NULL;
        }
    }

    ngx_http_set_ctx(r, ms, ngx_http_agentlocator_module);

    return ms;
}


/*
 * The 101 is queued: our reference keeps the request until it is flushed;
 * the handover runs from a write event, outside nginx's handler chain for
 * this request.
 */

void
ngx_agentlocator_media_take_over(ngx_http_request_t *r,
    ngx_agentlocator_media_t *ms, ngx_str_t *protocol)
{
    ngx_str_t  shown;

    r->main->count++;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_agentlocator_media_upgraded;

    ngx_post_event(r->connection->write, &ngx_posted_events);

    ms->started = ngx_current_msec;

    if (ms->registry) {
        (void) ngx_atomic_fetch_add(&ms->registry->sh->ws_accepted, 1);
        ms->open_count = ngx_agentlocator_stream_count_mine(ms->registry->sh);
        (void) ngx_atomic_fetch_add(ms->open_count, 1);
        ngx_agentlocator_metrics_streams(1);
        ms->counted = 1;
    }

    shown = *protocol;

    if (shown.len == 0) {
        ngx_str_set(&shown, "-");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "WS_CONNECT protocol=%V", &shown);
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

    ms->last_message = ngx_current_msec;
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
 * buffers, which a stream never reads into again, and over TLS the
 * ssl_buffer_size buffer (16k by default) that sent the 101: the stream
 * writes with c->send (SSL_write), never through that buffer.  OpenSSL's
 * own read and write buffers go back between frames by themselves
 * (nginx sets SSL_MODE_RELEASE_BUFFERS on every context).
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

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        ngx_ssl_free_buffer(c);
    }
#endif
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

        ngx_agentlocator_media_crm(ms, "stream_error", "not_reading");

        ngx_agentlocator_media_finish(ms);
        return;
    }

    if (ngx_agentlocator_media_drain(ms) == NGX_ERROR) {
        ngx_agentlocator_media_finish(ms);
    }
}


static void
ngx_agentlocator_media_read(ngx_agentlocator_media_t *ms)
{
    int                           rc;
    ssize_t                       n;
    ngx_uint_t                    more;
    ngx_connection_t             *c;
    ngx_agentlocator_ws_frame_t   frame;

    c = ms->connection;

    if (c->close) {
        /* worker_shutdown_timeout or a forced shutdown */
        ngx_agentlocator_worker_cut = ngx_exiting;
        ngx_agentlocator_media_goodbye(ms);
        return;
    }

    if (c->read->timedout) {
        c->read->timedout = 0;

        if (ngx_agentlocator_media_read_timer(ms) != NGX_OK) {
            return;
        }
    }

    if (ms->lingering) {
        ngx_agentlocator_media_discard(ms);
        return;
    }

    more = 1;

    for ( ;; ) {

        /* parse what is buffered first, unless replies are backed up */

        while (ms->in_pos < ms->in_last) {

            if (ms->failed) {
                /* the stream is unreadable after a protocol error */
                ms->in_pos = ms->in_last;
                break;
            }

            if (ms->out_mem > ms->alcf->media_send_buffer
                && ngx_agentlocator_media_queued(ms))
            {
                ngx_agentlocator_media_pause(ms);
                return;
            }

            rc = ngx_agentlocator_ws_parse(&ms->parser, &ms->in_pos,
                                           ms->in_last, &frame);

            if (rc == NGX_AGENTLOCATOR_WS_FRAME) {
                ngx_agentlocator_media_frame(ms, &frame);

                if (ms->finished || ms->lingering) {
                    return;
                }

                continue;
            }

            if (rc == NGX_AGENTLOCATOR_WS_FAIL) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "WS_PROTOCOL_ERROR reason=\"%s\" close=%ui",
                              ms->parser.error,
                              (ngx_uint_t) ms->parser.close_code);

                ngx_agentlocator_media_crm(ms, "stream_error",
                                           ms->parser.error);

                if (ms->registry) {
                    (void) ngx_atomic_fetch_add(
                               &ms->registry->sh->ws_protocol_errors, 1);
                }

                ngx_agentlocator_metrics_ws_error(ms->parser.error);

                /* "fail the connection": our close frame, then TCP close */
                ms->failed = 1;
                ms->in_pos = ms->in_last;
                ngx_agentlocator_media_close(ms, ms->parser.close_code,
                                             ms->parser.error);
                break;
            }
        }

        if (ms->finished || ms->lingering) {
            return;
        }

        if (ms->saved) {
            ngx_free(ms->saved);
            ms->saved = NULL;
        }

        ms->in_pos = ngx_agentlocator_media_in;
        ms->in_last = ngx_agentlocator_media_in;

        if (!more) {
            /*
             * The last read emptied the socket (nginx cleared "ready"):
             * another would only meet EAGAIN, and over TLS cost an
             * SSL_read() and a read() per wake-up to learn it.
             */
            break;
        }

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
        more = c->read->ready;
    }

    /* idle until the next frame: no message buffer of its own */
    ngx_agentlocator_ws_parser_release(&ms->parser);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_agentlocator_media_finish(ms);
    }
}


/*
 * The read timer went off: the close handshake or the lingering is over,
 * or no message came for the idle timeout.  The idle timer is moved
 * lazily on each message (nginx keeps a timer that moves by less than
 * 300 ms), so it may go off early: then it is set again.  NGX_OK: go on
 * reading.
 */

static ngx_int_t
ngx_agentlocator_media_read_timer(ngx_agentlocator_media_t *ms)
{
    ngx_msec_t         idle;
    ngx_connection_t  *c;

    c = ms->connection;

    if (ms->closing) {
        /* the client never answered our close frame, or lingered enough */
        ngx_agentlocator_media_finish(ms);
        return NGX_DONE;
    }

    idle = ngx_current_msec - ms->last_message;

    if (idle < ms->alcf->media_idle_timeout) {
        ngx_add_timer(c->read, ms->alcf->media_idle_timeout - idle);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "WS_IDLE call=%*s: no message in %M ms",
                  ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                  ms->has_call ? ms->call_sid : (u_char *) "-", idle);

    ngx_agentlocator_media_crm(ms, "stream_error", "idle");

    ngx_agentlocator_media_close(ms, NGX_AGENTLOCATOR_WS_NORMAL,
                                 "idle timeout");

    return ms->finished ? NGX_DONE : NGX_OK;
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

    if (frame->opcode == NGX_AGENTLOCATOR_WS_TEXT
        || frame->opcode == NGX_AGENTLOCATOR_WS_BINARY)
    {
        /*
         * A whole message: what the idle timeout waits for.  Bytes alone
         * do not count, or a message that never ends would hold the
         * connection for ever.
         */
        ms->last_message = ngx_current_msec;

        if (!ms->paused) {
            ngx_add_timer(ms->connection->read,
                          ms->alcf->media_idle_timeout);
        }
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

        if (!ngx_agentlocator_media_queued(ms)) {
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
        if (ms->stopped) {
            return;
        }

        ngx_agentlocator_media_flush(ms, NGX_AGENTLOCATOR_STREAM_STOP);
        ms->stopped = 1;

        if (ms->silence.timer_set) {
            ngx_del_timer(&ms->silence);
        }

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
    ngx_str_t                         path, none;
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

    /* checked above: the registry's name for the call from now on */
    ms->call.sid.data = ms->call_sid;
    ms->call.sid.len = NGX_AGENTLOCATOR_SID_LEN;

    if (ms->registry) {
        ngx_agentlocator_registry_ref(ms->registry, &ms->call);
    }

    ms->media_started = ngx_current_msec;
    ms->last_flush = ngx_current_msec;

    if (ngx_agentlocator_media_attach(ms, &call_sid, &stream_sid,
                                      &account_sid)
        != NGX_OK)
    {
        return;
    }

    if (ngx_agentlocator_watchdog_on()) {
        /* data is the connection: ngx_event_ident() in debug builds */
        ms->silence.handler = ngx_agentlocator_media_silence_handler;
        ms->silence.data = c;
        ms->silence.log = c->log;
        ms->silence.cancelable = 1;

        ngx_add_timer(&ms->silence, ms->amcf->timeouts.no_media_timeout
                                    + NGX_AGENTLOCATOR_CLOCK_SLACK);
    }

    if (ms->amcf->recordings) {
        ms->recording = ngx_agentlocator_recording_open(
                            &ms->amcf->recordings->name, ms->call_sid,
                            c->log);
    }

    ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                  "WS_START call=%V stream=%V url=%s recording=%s",
                  &call_sid, &stream_sid,
                  ms->url_call_sid.len ? "per-call" : "plain",
                  ms->recording ? "on" : "off");

    ngx_agentlocator_media_crm(ms, "stream_start", NULL);

    if (ms->recording) {
        ngx_agentlocator_recording_path(ms->recording, &path);
        ngx_str_null(&none);

        ngx_agentlocator_crm_recording(&call_sid, &none, &none, &none, &path);
    }
}


/*
 * A stream's event for the CRM's timeline, once per stream (an error once
 * per stream and reason): only for a stream that holds its call, so
 * nothing a refused client says reaches the CRM.
 */

static void
ngx_agentlocator_media_crm(ngx_agentlocator_media_t *ms, const char *event,
    const char *reason)
{
    u_char                        key[NGX_AGENTLOCATOR_SID_LEN + 64];
    ngx_uint_t                    ended, error;
    ngx_agentlocator_crm_event_t  ev;

    if (!ms->attached) {
        return;
    }

    ended = (ngx_strcmp(event, "stream_stop") == 0
             || ngx_strcmp(event, "stream_drop") == 0);
    error = (ngx_strcmp(event, "stream_error") == 0);

    ngx_memzero(&ev, sizeof(ngx_agentlocator_crm_event_t));

    ev.call_sid = ms->call_sid;
    ev.event = event;
    ev.stream_sid = ms->stream_sid;
    ev.frames = ended ? (int64_t) ms->frames : -1;

    if (reason) {
        ev.reason.data = (u_char *) reason;
        ev.reason.len = ngx_strlen(reason);
    }

    ev.key.data = key;
    ev.key.len = ngx_snprintf(key, sizeof(key), "%*s%s%s",
                              (size_t) NGX_AGENTLOCATOR_SID_LEN,
                              ms->stream_sid, error ? ":" : "",
                              error ? reason : "")
                 - key;

    ngx_agentlocator_crm_event(&ev);
}


/*
 * The stream takes its call in the registry, or is closed with 1008
 * (policy): whoever has seen one signed upgrade must not be able to add
 * calls, speak for another call, or silence a live one.  A stream at a
 * per-call URL speaks for that call only.
 */

static ngx_int_t
ngx_agentlocator_media_attach(ngx_agentlocator_media_t *ms,
    ngx_str_t *call_sid, ngx_str_t *stream_sid, ngx_str_t *account_sid)
{
    ngx_pid_t          owner;
    ngx_uint_t         refusal;
    const char        *why, *reason;
    ngx_connection_t  *c;

    c = ms->connection;

    ms->ref.pid = ngx_pid;
    ms->ref.id = (uint32_t) c->number;

    owner = 0;

    if (ms->url_call_sid.len
        && ngx_memcmp(ms->url_call_sid.data, call_sid->data,
                      NGX_AGENTLOCATOR_SID_LEN)
           != 0)
    {
        why = "url_mismatch";
        reason = "start names another call than the stream URL";

    } else if (ms->registry == NULL) {
        why = "no_registry";
        reason = "no registry to find the call in";

    } else if (ngx_agentlocator_media_take_call(ms, stream_sid, account_sid,
                                                &refusal, &owner)
               == NGX_OK)
    {
        ms->attached = 1;
        return NGX_OK;

    } else {
        switch (refusal) {

        case NGX_AGENTLOCATOR_REFUSE_UNKNOWN:
            why = "unknown_call";
            reason = "no incoming_call registered this call here";
            break;

        case NGX_AGENTLOCATOR_REFUSE_LIVE:
            why = "stream_live";
            reason = "another stream of this call is live";
            break;

        case NGX_AGENTLOCATOR_REFUSE_ACCOUNT:
            why = "account_mismatch";
            reason = "accountSid is not the call's";
            break;

        default:
            why = "call_moved_on";
            reason = "the call was redirected or has ended";
            break;
        }
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "WS_REFUSED call=%V stream=%V reason=%s worker=%P: %s; "
                  "closing with 1008", call_sid, stream_sid, why, owner,
                  reason);

    ngx_agentlocator_media_close(ms, NGX_AGENTLOCATOR_WS_POLICY, reason);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_agentlocator_media_take_call(ngx_agentlocator_media_t *ms,
    ngx_str_t *stream_sid, ngx_str_t *account_sid, ngx_uint_t *refusal,
    ngx_pid_t *owner)
{
    ngx_int_t  rc;

    rc = ngx_agentlocator_registry_stream_attach(ms->registry,
             &ms->amcf->timeouts, &ms->call, stream_sid, account_sid,
             &ms->ref, 0, refusal, owner);

    if (rc == NGX_DECLINED && *refusal == NGX_AGENTLOCATOR_REFUSE_LIVE
        && *owner != ngx_pid
        && kill(*owner, 0) == -1 && ngx_errno == NGX_ESRCH)
    {
        /* its worker died, and its stream with it */
        rc = ngx_agentlocator_registry_stream_attach(ms->registry,
                 &ms->amcf->timeouts, &ms->call, stream_sid, account_sid,
                 &ms->ref, *owner, refusal, owner);
    }

    return rc;
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

    if (ms->silent) {
        /* media again after the watchdog was told of silence */
        ms->silent = 0;
        ngx_agentlocator_media_flush(ms, NGX_AGENTLOCATOR_STREAM_MEDIA);

        if (!ms->silence.timer_set && !ms->stopped) {
            ngx_add_timer(&ms->silence, ms->amcf->timeouts.no_media_timeout
                                        + NGX_AGENTLOCATOR_CLOCK_SLACK);
        }

    } else if (now - ms->last_flush >= NGX_AGENTLOCATOR_MEDIA_FLUSH) {
        ngx_agentlocator_media_flush(ms, NGX_AGENTLOCATOR_STREAM_MEDIA);
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


/*
 * The stream's own silence timer, set once per no_media_timeout (not per
 * frame): when it goes off with media since, it is set again from the
 * last media; when the silence is due, the watchdog hears of it now, with
 * the exact last media time the zone may not have had yet.
 */

static void
ngx_agentlocator_media_silence_handler(ngx_event_t *ev)
{
    ngx_msec_t                 base, due;
    ngx_connection_t          *c;
    ngx_agentlocator_media_t  *ms;

    c = ev->data;
    ms = c->data;

    if (ms->finished || ms->stopped || !ms->attached) {
        return;
    }

    base = ms->last_media ? ms->last_media : ms->media_started;
    due = base + ms->amcf->timeouts.no_media_timeout
          + NGX_AGENTLOCATOR_CLOCK_SLACK;

    if ((ngx_msec_int_t) (due - ngx_current_msec) > 0) {
        ngx_add_timer(ev, due - ngx_current_msec);
        return;
    }

    ms->silent = 1;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "WS_SILENT call=%*s: no media for %M ms",
                  NGX_AGENTLOCATOR_SID_LEN, ms->call_sid,
                  ngx_current_msec - base);

    ngx_agentlocator_media_crm(ms, "stream_error", "silent");

    ngx_agentlocator_media_flush(ms, NGX_AGENTLOCATOR_STREAM_SILENT);
}


/*
 * Counters and the last media time to the zone with "event" (_stream_event_e):
 * periodically (see NGX_AGENTLOCATOR_MEDIA_FLUSH), at stop and close, and
 * to the watchdog when the stream went silent.
 */

static void
ngx_agentlocator_media_flush(ngx_agentlocator_media_t *ms, ngx_uint_t event)
{
    ngx_agentlocator_stream_media_t   media;
    ngx_agentlocator_registry_sh_t   *sh;

    ms->last_flush = ngx_current_msec;

    if (ms->registry == NULL) {
        return;
    }

    sh = ms->registry->sh;

    (void) ngx_atomic_fetch_add(&sh->ws_frames, ms->unflushed_frames);
    (void) ngx_atomic_fetch_add(&sh->ws_bytes, ms->unflushed_bytes);

    if (ms->attached) {
        media.frames = ms->unflushed_frames;
        media.bytes = ms->unflushed_bytes;
        media.last = ms->last_media;

        if (event == NGX_AGENTLOCATOR_STREAM_SILENT) {
            ngx_agentlocator_watchdog_stream_silent(&ms->call, &ms->ref,
                                                    &media);

        } else {
            (void) ngx_agentlocator_registry_stream_update(ms->registry,
                       &ms->amcf->timeouts, &ms->call, &ms->ref, &media,
                       event, NULL);
        }
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
        ngx_agentlocator_media_crm(ms, "stream_error", reason);

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
 * Queues one server frame and starts writing.  A frame that fits goes
 * into the last buffer's spare room; otherwise a new buffer of at least
 * NGX_AGENTLOCATOR_MEDIA_OUT_CHUNK is added.  The queue's bound is
 * enforced on the reading side (nothing more is read while the buffers
 * exceed it), so what is queued here answers messages already read.
 */

static ngx_int_t
ngx_agentlocator_media_send(ngx_agentlocator_media_t *ms, unsigned opcode,
    u_char *data, size_t len)
{
    size_t                      need, cap, hlen;
    ngx_agentlocator_ws_out_t  *out;

    if (ms->closing || ms->finished) {
        return NGX_DECLINED;
    }

    need = NGX_AGENTLOCATOR_WS_MAX_HEADER + len;
    out = ms->out_tail;

    if (out == NULL || out->cap - out->len < need) {
        cap = ngx_max(need, NGX_AGENTLOCATOR_MEDIA_OUT_CHUNK);

        if (cap == NGX_AGENTLOCATOR_MEDIA_OUT_CHUNK
            && ngx_agentlocator_media_spare)
        {
            out = ngx_agentlocator_media_spare;
            ngx_agentlocator_media_spare = NULL;

        } else {
            out = ngx_alloc(offsetof(ngx_agentlocator_ws_out_t, data) + cap,
                            ms->connection->log);
            if (out == NULL) {
                return NGX_ERROR;
            }
        }

        out->next = NULL;
        out->len = 0;
        out->sent = 0;
        out->cap = cap;

        if (ms->out_tail) {
            ms->out_tail->next = out;

        } else {
            ms->out = out;
        }

        ms->out_tail = out;
        ms->out_mem += offsetof(ngx_agentlocator_ws_out_t, data) + cap;
    }

    hlen = ngx_agentlocator_ws_header(out->data + out->len, opcode, len);

    if (len) {
        ngx_memcpy(out->data + out->len + hlen, data, len);
    }

    out->len += hlen + len;

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

    if (ms->finished || ms->lingering) {
        return;
    }

    if (ms->peer_closed && !ngx_agentlocator_media_queued(ms)) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    ngx_add_timer(c->read, NGX_AGENTLOCATOR_MEDIA_CLOSE_WAIT);
}


/*
 * worker_shutdown_timeout cuts the stream: nginx has set c->close and
 * c->error together, though the socket is fine.  The 1001 close frame
 * (after whatever was queued) goes out best-effort, without waiting,
 * so the client sees a going-away server rather than a bare EOF.
 */

static void
ngx_agentlocator_media_goodbye(ngx_agentlocator_media_t *ms)
{
    ngx_connection_t  *c;

    c = ms->connection;

    if (!ms->closing && !ms->finished) {
        c->error = 0;
        ngx_agentlocator_media_close(ms, NGX_AGENTLOCATOR_WS_GOING_AWAY,
                                     "server shutting down");
        c->error = 1;
    }

    ngx_agentlocator_media_finish(ms);
}


/*
 * After a protocol error our close frame is out: the write side is shut,
 * and what the client still sends is read and dropped until it closes or
 * lingering_timeout / lingering_time pass, as nginx's lingering close
 * does.  Closing at once with unread bytes would send an RST, which can
 * destroy our close frame before the client reads it.
 */

static void
ngx_agentlocator_media_linger(ngx_agentlocator_media_t *ms)
{
    ngx_connection_t  *c;

    c = ms->connection;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_send_shutdown = 1;
    }
#endif

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    ms->lingering = 1;
    ms->linger_until = ngx_current_msec + ms->clcf->lingering_time;

    ngx_add_timer(c->read, ms->clcf->lingering_timeout);

    if (ms->saved) {
        ngx_free(ms->saved);
        ms->saved = NULL;
    }

    ms->in_pos = ms->in_last;

    ngx_post_event(c->read, &ngx_posted_events);
}


static void
ngx_agentlocator_media_discard(ngx_agentlocator_media_t *ms)
{
    ssize_t            n;
    ngx_msec_t         left;
    ngx_connection_t  *c;

    c = ms->connection;

    left = ms->linger_until - ngx_current_msec;

    if ((ngx_msec_int_t) left <= 0) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    do {
        n = c->recv(c, ngx_agentlocator_media_in,
                    NGX_AGENTLOCATOR_MEDIA_READ_BUFFER);

        if (n == NGX_ERROR || n == 0) {
            ngx_agentlocator_media_finish(ms);
            return;
        }

    } while (n != NGX_AGAIN);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_agentlocator_media_finish(ms);
        return;
    }

    ngx_add_timer(c->read, ngx_min(left, ms->clcf->lingering_timeout));
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

        if (out->sent == out->len) {
            /* an empty tail buffer: frames are appended to it */
            break;
        }

        n = c->send(c, out->data + out->sent, out->len - out->sent);

        if (n == NGX_AGAIN) {
            ngx_agentlocator_media_resume(ms);
            goto again;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        out->sent += n;

        if (out->sent < out->len) {
            continue;
        }

        ms->out = out->next;
        ngx_agentlocator_media_free_out(ms, out);

        if (ms->out == NULL) {
            /* all is out: an idle stream keeps no reply buffer */
            ms->out_tail = NULL;
            break;
        }
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ms->closing && (ms->peer_closed || ms->failed)) {
        /* both close frames exchanged, or a failed stream: close TCP */

        if (ms->failed && !ms->peer_closed) {
            ngx_agentlocator_media_linger(ms);

        } else {
            ngx_agentlocator_media_finish(ms);
        }

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
 * Replies are backed up past the bound: nothing more is read (the rest of
 * the shared read buffer becomes this stream's own), and the idle timer
 * stops, since the silence is ours; the write side has its own.
 */

static void
ngx_agentlocator_media_pause(ngx_agentlocator_media_t *ms)
{
    ngx_connection_t  *c;

    c = ms->connection;
    ms->paused = 1;

    if (c->read->timer_set && !ms->closing) {
        ngx_del_timer(c->read);
    }

    if (ms->in_pos >= ngx_agentlocator_media_in
        && ms->in_pos < ngx_agentlocator_media_in
                        + NGX_AGENTLOCATOR_MEDIA_READ_BUFFER)
    {
        if (ngx_agentlocator_media_save(ms) != NGX_OK) {
            ngx_agentlocator_media_finish(ms);
        }
    }
}


/*
 * Reading resumes as soon as the queue is back under its bound, whether or
 * not it has drained: the read side is edge-triggered and the bytes it left
 * unread will not be announced again.  The idle timeout starts afresh.
 */

static void
ngx_agentlocator_media_resume(ngx_agentlocator_media_t *ms)
{
    if (ms->paused && !ms->closing
        && (ms->out_mem <= ms->alcf->media_send_buffer
            || !ngx_agentlocator_media_queued(ms)))
    {
        ms->paused = 0;
        ms->last_message = ngx_current_msec;

        ngx_add_timer(ms->connection->read, ms->alcf->media_idle_timeout);
        ngx_post_event(ms->connection->read, &ngx_posted_events);
    }
}


static void
ngx_agentlocator_media_free_out(ngx_agentlocator_media_t *ms,
    ngx_agentlocator_ws_out_t *out)
{
    ms->out_mem -= offsetof(ngx_agentlocator_ws_out_t, data) + out->cap;

    if (out->cap == NGX_AGENTLOCATOR_MEDIA_OUT_CHUNK
        && ngx_agentlocator_media_spare == NULL)
    {
        out->next = NULL;
        out->len = 0;
        out->sent = 0;
        ngx_agentlocator_media_spare = out;
        return;
    }

    ngx_free(out);
}


/*
 * The end of the stream: logged here, and the connection is closed from
 * its own posted write event, so that no caller up the stack is left
 * holding freed state; destroying the pool runs the cleanup.
 */

static void
ngx_agentlocator_media_finish(ngx_agentlocator_media_t *ms)
{
    u_char             reason[32];
    ngx_connection_t  *c;

    if (ms->finished) {
        return;
    }

    ms->finished = 1;
    c = ms->connection;

    if (c->write->timedout) {
        ms->code = NGX_AGENTLOCATOR_WS_ABNORMAL;
    }

    if (ms->silence.timer_set) {
        ngx_del_timer(&ms->silence);
    }

    ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                  "WS_CLOSE code=%ui call=%*s frames=%uL bytes=%uL bad=%ui "
                  "ms=%M%s",
                  (ngx_uint_t) ms->code,
                  ms->has_call ? NGX_AGENTLOCATOR_SID_LEN : 1,
                  ms->has_call ? ms->call_sid : (u_char *) "-",
                  ms->frames, ms->bytes, ms->bad_messages,
                  ngx_current_msec - ms->started,
                  ms->attached && !ms->stopped ? " dropped=1" : "");

    if (ms->stopped) {
        ngx_agentlocator_media_crm(ms, "stream_stop", NULL);

    } else {
        (void) ngx_snprintf(reason, sizeof(reason), "close_%ui%Z",
                            (ngx_uint_t) ms->code);
        ngx_agentlocator_media_crm(ms, "stream_drop", (char *) reason);
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * The stream's WAV is complete once closed: a stream that carried audio
 * has it transcribed (agentlocator_transcribe_url).
 */

static void
ngx_agentlocator_media_transcribe(ngx_agentlocator_media_t *ms)
{
    ngx_str_t  path, call_sid;
    u_char     name[NGX_MAX_PATH];

    ngx_agentlocator_recording_path(ms->recording, &path);

    path.len = ngx_min(path.len, NGX_MAX_PATH - 1);
    ngx_memcpy(name, path.data, path.len);
    path.data = name;

    ngx_agentlocator_recording_close(ms->recording);
    ms->recording = NULL;

    if (ms->frames == 0 || ms->amcf->transcribe == NULL) {
        return;
    }

    call_sid.data = ms->call_sid;
    call_sid.len = NGX_AGENTLOCATOR_SID_LEN;

    ngx_agentlocator_transcribe_file(ms->amcf, &call_sid, &path,
                                     ngx_cycle->log);
}


/*
 * Runs when the connection's pool is destroyed, however the stream ended
 * (the connection itself is closed by then): the registry learns the
 * stream ended, with or without Twilio's "stop"; the recording is
 * completed, memory is freed.
 */

static void
ngx_agentlocator_media_cleanup(void *data)
{
    ngx_agentlocator_media_t  *ms = data;

    ngx_agentlocator_ws_out_t  *out, *next;

    if (ms->silence.timer_set) {
        ngx_del_timer(&ms->silence);
    }

    if (ms->has_call) {
        ngx_agentlocator_media_flush(ms, ms->stopped
                                         ? NGX_AGENTLOCATOR_STREAM_CLOSED
                                         : NGX_AGENTLOCATOR_STREAM_DROPPED);
        ms->attached = 0;
    }

    if (ms->recording) {
        ngx_agentlocator_media_transcribe(ms);
    }

    for (out = ms->out; out; out = next) {
        next = out->next;
        ngx_free(out);
    }

    ms->out = NULL;
    ms->out_tail = NULL;

    ngx_agentlocator_ws_parser_free(&ms->parser);

    if (ms->saved) {
        ngx_free(ms->saved);
        ms->saved = NULL;
    }

    if (ms->counted) {
        (void) ngx_atomic_fetch_add(ms->open_count, (ngx_atomic_int_t) -1);
        ngx_agentlocator_metrics_streams(-1);
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
    ngx_free(ngx_agentlocator_media_spare);

    ngx_agentlocator_media_in = NULL;
    ngx_agentlocator_media_payload = NULL;
    ngx_agentlocator_media_payload_cap = 0;
    ngx_agentlocator_media_spare = NULL;
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
