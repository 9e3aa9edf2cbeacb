
/*
 * The Media Streams upgrade request's header lists and stream URL, and
 * its request line as the logs show it (ngx_agentlocator_upgrade_req.h).
 */


#include "ngx_agentlocator_upgrade_req.h"

#include <stdint.h>
#include <string.h>


int
ngx_agentlocator_list_has(const unsigned char *value, size_t len,
    const char *token)
{
    size_t                n, i;
    unsigned char         a, b;
    const unsigned char  *p, *last, *start, *end;

    /* an empty header may have no buffer at all: NULL + 0 is undefined */
    if (len == 0) {
        return 0;
    }

    n = strlen(token);
    p = value;
    last = value + len;

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

        if ((size_t) (end - start) != n) {
            continue;
        }

        for (i = 0; i < n; i++) {
            a = start[i];
            b = (unsigned char) token[i];
            a = (a >= 'A' && a <= 'Z') ? (a | 0x20) : a;
            b = (b >= 'A' && b <= 'Z') ? (b | 0x20) : b;

            if (a != b) {
                break;
            }
        }

        if (i == n) {
            return 1;
        }
    }

    return 0;
}


int
ngx_agentlocator_stream_path(const unsigned char *uri, size_t len,
    ngx_agentlocator_form_str_t *call_sid, ngx_agentlocator_form_str_t *token)
{
    size_t                need;
    const unsigned char  *p;

    if (len && uri[len - 1] == '/') {
        len--;
    }

    need = 1 + NGX_AGENTLOCATOR_SID_LEN + 1 + NGX_AGENTLOCATOR_STREAM_TOKEN_LEN;

    if (len < need) {
        return 0;
    }

    p = uri + len - need;

    if (p[0] != '/' || p[1 + NGX_AGENTLOCATOR_SID_LEN] != '/') {
        return 0;
    }

    if (!ngx_agentlocator_sid_ok(p + 1, NGX_AGENTLOCATOR_SID_LEN, "CA")) {
        return 0;
    }

    call_sid->data = (unsigned char *) p + 1;
    call_sid->len = NGX_AGENTLOCATOR_SID_LEN;
    token->data = (unsigned char *) p + 1 + NGX_AGENTLOCATOR_SID_LEN + 1;
    token->len = NGX_AGENTLOCATOR_STREAM_TOKEN_LEN;

    return 1;
}


int
ngx_agentlocator_span_inside(const unsigned char *line, size_t len,
    const unsigned char *span, size_t n)
{
    uintptr_t  l, s;

    /* unrelated pointers may not be compared in C; their integers may */
    l = (uintptr_t) line;
    s = (uintptr_t) span;

    return s >= l && n <= len && s - l <= len - n;
}


size_t
ngx_agentlocator_hide_span(unsigned char *out, const unsigned char *line,
    size_t len, size_t off, size_t n)
{
    unsigned char  *p;

    p = out;

    /* memcpy() with a NULL pointer is undefined even for 0 bytes */
    if (off) {
        memcpy(p, line, off);
        p += off;
    }

    memcpy(p, NGX_AGENTLOCATOR_HIDDEN, NGX_AGENTLOCATOR_HIDDEN_LEN);
    p += NGX_AGENTLOCATOR_HIDDEN_LEN;

    if (len - off - n) {
        memcpy(p, line + off + n, len - off - n);
        p += len - off - n;
    }

    return p - out;
}
