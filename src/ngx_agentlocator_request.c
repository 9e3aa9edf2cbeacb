
/*
 * Helpers over what a client sent, shared by the handlers: request
 * headers, Twilio SIDs, values made fit for a log line.  Nothing here
 * knows a handler; every handler may use it.
 */


#include "ngx_agentlocator.h"


/* "CA" + 32 hex digits, as Twilio issues them. */

ngx_int_t
ngx_agentlocator_valid_sid(ngx_str_t *sid, const char *prefix)
{
    u_char      ch;
    ngx_uint_t  i;

    if (sid->len != NGX_AGENTLOCATOR_SID_LEN
        || sid->data[0] != (u_char) prefix[0]
        || sid->data[1] != (u_char) prefix[1])
    {
        return NGX_DECLINED;
    }

    for (i = 2; i < NGX_AGENTLOCATOR_SID_LEN; i++) {
        ch = sid->data[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
              || (ch >= 'A' && ch <= 'F')))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
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
