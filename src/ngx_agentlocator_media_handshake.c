
/*
 * agentlocator_media_stream, the HTTP side: the GET that asks for Twilio's
 * Media Streams WebSocket is checked (RFC 6455 §4.2.1, and the
 * X-Twilio-Signature Twilio puts on it) and answered with 101; the
 * connection then belongs to the stream (ngx_agentlocator_media_stream.c).
 */


#include "ngx_agentlocator.h"

#include <openssl/sha.h>


#define NGX_AGENTLOCATOR_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* nginx has no name for it */
#define NGX_AGENTLOCATOR_HTTP_UPGRADE_REQUIRED  426


static ngx_uint_t ngx_agentlocator_media_handshake(ngx_http_request_t *r,
    ngx_str_t *accept, ngx_str_t *protocol, const char **reason);
static ngx_uint_t ngx_agentlocator_media_upgrade_required(
    ngx_http_request_t *r, const char *key, ngx_str_t *value, const char *why,
    const char **reason);
static ngx_uint_t ngx_agentlocator_media_token(ngx_str_t *value,
    const char *token);
static ngx_int_t ngx_agentlocator_media_hide_token(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_uint_t ngx_agentlocator_media_url_check(ngx_http_request_t *r,
    ngx_agentlocator_loc_conf_t *alcf, ngx_str_t *call_sid,
    const char **reason);


static ngx_str_t  ngx_agentlocator_ws_upgrade = ngx_string("websocket");
static ngx_str_t  ngx_agentlocator_ws_version = ngx_string("13");


ngx_int_t
ngx_agentlocator_media_stream_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      accept, protocol, url_call_sid;
    ngx_uint_t                     status;
    const char                    *reason;
    ngx_agentlocator_media_t      *ms;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_agentlocator_loc_conf_t   *alcf;

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

    status = ngx_agentlocator_media_url_check(r, alcf, &url_call_sid,
                                              &reason);
    if (status) {
        r->keepalive = 0;
        return ngx_agentlocator_reply_error(r, status, reason);
    }

    if (alcf->signature) {
        /*
         * Twilio signs the upgrade with the wss:// URL it connected to and
         * no parameters, whatever the public URL's scheme (TwiML streams
         * are wss:// only); its docs advise trying a trailing "/" too.
         */

        rc = ngx_agentlocator_signature_check(r, "wss", NULL,
                 NGX_AGENTLOCATOR_SIG_WS_SLASH
                 | (url_call_sid.len ? NGX_AGENTLOCATOR_SIG_HIDE_LAST : 0),
                 url_call_sid.len ? &url_call_sid : NULL);

        if (rc == NGX_DECLINED) {
            r->keepalive = 0;
            return ngx_agentlocator_reply_error(r, NGX_HTTP_FORBIDDEN,
                                                "invalid X-Twilio-Signature");
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* every exit from here on closes the connection */
    r->keepalive = 0;

    ms = ngx_agentlocator_media_create(r, &url_call_sid);
    if (ms == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(r->connection) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_agentlocator_media_take_over(r, ms, &protocol);

    return NGX_DONE;
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


/*
 * The stream URL: a per-call one, .../{CallSid}/{token}, with the token
 * that CallSid's ("call_sid" is then the call it may speak for); or the
 * plain one where agentlocator_media_plain_url allows it ("call_sid"
 * empty).  Returns 0, or 403 and the reason.
 */

static ngx_uint_t
ngx_agentlocator_media_url_check(ngx_http_request_t *r,
    ngx_agentlocator_loc_conf_t *alcf, ngx_str_t *call_sid,
    const char **reason)
{
    u_char     safe[NGX_AGENTLOCATOR_SID_LEN + 1];
    ngx_str_t  token;

    ngx_str_null(call_sid);

    if (ngx_agentlocator_stream_url_parse(&r->uri, call_sid, &token)
        != NGX_OK)
    {
        ngx_str_null(call_sid);

        if (alcf->media_plain_url) {
            return 0;
        }

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "WS_URL_INVALID call=- reason=plain: the stream URL "
                      "names no call (agentlocator_media_plain_url is off)");

        *reason = "the stream URL must end in /{CallSid}/{token}";
        return NGX_HTTP_FORBIDDEN;
    }

    /* the token is never logged: a valid one opens the call's stream */

    if (ngx_agentlocator_media_hide_token(r, &token) != NGX_OK) {
        *reason = "out of memory";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_agentlocator_stream_token_valid(call_sid, &token)) {
        return 0;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "WS_URL_INVALID call=%s reason=token: the stream URL's "
                  "token is not this call's",
                  ngx_agentlocator_log_safe(safe, sizeof(safe), call_sid));

    *reason = "invalid stream URL token";
    return NGX_HTTP_FORBIDDEN;
}


/*
 * The request line, which nginx puts in the error log's context and the
 * access log's $request, with "..." for the token: a copy, as r->uri and
 * r->unparsed_uri point into the same bytes.  The byte work is
 * ngx_agentlocator_hide_span()'s (fuzz/hide_token.c).
 */

static ngx_int_t
ngx_agentlocator_media_hide_token(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char     *p, *at;
    ngx_str_t  *line;

    line = &r->request_line;

    if (ngx_agentlocator_span_inside(line->data, line->len, token->data,
                                     token->len))
    {
        at = token->data;

    } else {
        /*
         * nginx decoded the URI into a copy (an escape, "//" or "/./"
         * somewhere in it): the token is still in the line as sent,
         * unless it was itself escaped, and then no reader sees it whole
         */
        at = ngx_strlcasestrn(line->data, line->data + line->len,
                              token->data, token->len - 1);
        if (at == NULL) {
            return NGX_OK;
        }
    }

    p = ngx_pnalloc(r->pool,
                    line->len - token->len + NGX_AGENTLOCATOR_HIDDEN_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    line->len = ngx_agentlocator_hide_span(p, line->data, line->len,
                                           at - line->data, token->len);
    line->data = p;

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
    return ngx_agentlocator_list_has(value->data, value->len, token);
}
