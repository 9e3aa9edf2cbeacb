
/*
 * The one way the module writes a response: status, content type, body and
 * X-Revision, so no handler can forget the header, and every 4xx carries a
 * one-line reason and one log line.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_build_info.h"
#include "ngx_agentlocator_ws_codec.h"


static ngx_str_t  ngx_agentlocator_text_plain = ngx_string("text/plain");


ngx_int_t
ngx_agentlocator_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_agentlocator_reply_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;

    if (status == 426) {
        /* not in nginx's table of reason phrases */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    }

    if (content_type && content_type->len) {
        r->headers_out.content_type = *content_type;
        r->headers_out.content_type_len = content_type->len;
    }

    r->headers_out.content_length_n = body ? (off_t) body->len : 0;

    if (body == NULL || body->len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* The headers on everything the module answers, the 101 included. */

ngx_int_t
ngx_agentlocator_reply_headers(ngx_http_request_t *r)
{
    static ngx_str_t  revision = ngx_string(NGX_AGENTLOCATOR_REVISION);
    static ngx_str_t  no_store = ngx_string("no-store");

    if (ngx_agentlocator_add_header(r, "X-Revision", &revision) != NGX_OK) {
        return NGX_ERROR;
    }

    /* every answer is live state: no proxy or client may replay it */

    return ngx_agentlocator_add_header(r, "Cache-Control", &no_store);
}


/* One response header; "key" is a literal that outlives the request. */

ngx_int_t
ngx_agentlocator_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return NGX_OK;
}


/*
 * 4xx for bad input: "<reason>\n" as text/plain, and one log line at "info"
 * (nginx's level for client errors) naming the reason.
 */

ngx_int_t
ngx_agentlocator_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *reason)
{
    size_t      len;
    ngx_str_t   body;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "agentlocator: %ui %s", status, reason);

    len = ngx_strlen(reason);

    body.data = ngx_pnalloc(r->pool, len + 1);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body.data, reason, len);
    body.data[len] = '\n';
    body.len = len + 1;

    return ngx_agentlocator_reply(r, status, &ngx_agentlocator_text_plain,
                                  &body);
}


/*
 * Answers 405 with an Allow header when the method is not in "methods";
 * returns NGX_DECLINED when the method is allowed.
 */

ngx_int_t
ngx_agentlocator_allow_methods(ngx_http_request_t *r, ngx_uint_t methods,
    const char *allow)
{
    ngx_str_t  value;

    if (r->method & methods) {
        return NGX_DECLINED;
    }

    value.data = (u_char *) allow;
    value.len = ngx_strlen(allow);

    if (ngx_agentlocator_add_header(r, "Allow", &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_agentlocator_reply_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method not allowed");
}


/*
 * JSON string escaping (RFC 8259): quote, backslash and control bytes are
 * escaped; a byte that does not start a well-formed UTF-8 sequence becomes
 * U+FFFD, so what a client sent can never make our JSON invalid.
 */

size_t
ngx_agentlocator_json_escape_len(ngx_str_t *src)
{
    size_t   len, n;
    u_char  *p, *last;

    len = 0;
    last = src->data + src->len;

    for (p = src->data; p < last; p += n) {
        n = ngx_agentlocator_utf8_char(p, last);

        if (n == 0) {
            n = 1;
            len += sizeof("\\ufffd") - 1;

        } else if (*p == '"' || *p == '\\') {
            len += 2;

        } else if (*p < 0x20 || *p == 0x7f) {
            len += sizeof("\\u00XX") - 1;

        } else {
            len += n;
        }
    }

    return len;
}


u_char *
ngx_agentlocator_json_escape(u_char *dst, ngx_str_t *src)
{
    size_t          n;
    u_char         *p, *last;
    static u_char   hex[] = "0123456789abcdef";

    last = src->data + src->len;

    for (p = src->data; p < last; p += n) {
        n = ngx_agentlocator_utf8_char(p, last);

        if (n == 0) {
            n = 1;
            dst = ngx_cpymem(dst, "\\ufffd", sizeof("\\ufffd") - 1);

        } else if (*p == '"' || *p == '\\') {
            *dst++ = '\\';
            *dst++ = *p;

        } else if (*p < 0x20 || *p == 0x7f) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 0xf];

        } else {
            dst = ngx_cpymem(dst, p, n);
        }
    }

    return dst;
}
