
/*
 * application/x-www-form-urlencoded bodies and query strings
 * (ngx_agentlocator_form_codec.h): a pure parser over a buffer; values are
 * decoded in place, the buffer is the storage.
 */


#include "ngx_agentlocator_form_codec.h"

#include <string.h>


static int ngx_agentlocator_form_unescape(unsigned char *start,
    unsigned char *end, ngx_agentlocator_form_str_t *out);
static int ngx_agentlocator_form_hex(unsigned char ch);


size_t
ngx_agentlocator_form_count(const unsigned char *buf, size_t len)
{
    size_t                n;
    const unsigned char  *p, *last;

    n = 1;

    /* an empty body may have no buffer at all: NULL + 0 is undefined */
    if (len == 0) {
        return n;
    }

    /* libc's memchr skips the bytes between separators a vector at a time */
    for (p = buf, last = buf + len;
         (p = memchr(p, '&', last - p)) != NULL;
         p++)
    {
        n++;
    }

    return n;
}


const char *
ngx_agentlocator_form_parse(unsigned char *buf, size_t len,
    ngx_agentlocator_form_t *form)
{
    unsigned char             *p, *last, *pair, *eq;
    ngx_agentlocator_param_t  *param;

    form->nparams = 0;

    if (len == 0) {
        return NULL;
    }

    p = buf;
    last = buf + len;

    while (p < last) {
        pair = p;
        eq = NULL;

        while (p < last && *p != '&') {
            if (*p == '=' && eq == NULL) {
                eq = p;
            }

            p++;
        }

        if (p > pair) {
            if (form->nparams == NGX_AGENTLOCATOR_FORM_MAX_PARAMS) {
                return "too many form parameters";
            }

            if (form->nparams == form->nalloc) {
                return "too many form parameters";    /* caller's bound */
            }

            param = &form->params[form->nparams];

            if (ngx_agentlocator_form_unescape(pair, eq ? eq : p, &param->key)
                != 0
                || ngx_agentlocator_form_unescape(eq ? eq + 1 : p, p,
                                                  &param->value)
                   != 0)
            {
                return "malformed percent-encoding in form body";
            }

            form->nparams++;
        }

        p++;    /* the "&" */
    }

    return NULL;
}


int
ngx_agentlocator_form_find(const ngx_agentlocator_form_t *form,
    const unsigned char *name, size_t len, ngx_agentlocator_form_str_t *value)
{
    size_t                           i;
    int                              found;
    const ngx_agentlocator_param_t  *param;

    found = 0;

    for (i = 0; i < form->nparams; i++) {
        param = &form->params[i];

        if (param->key.len != len
            || (len && memcmp(param->key.data, name, len) != 0))
        {
            continue;
        }

        if (!found) {
            *value = param->value;
            found = 1;
            continue;
        }

        if (param->value.len != value->len
            || (value->len
                && memcmp(param->value.data, value->data, value->len) != 0))
        {
            return NGX_AGENTLOCATOR_FORM_CONFLICT;
        }
    }

    return found ? NGX_AGENTLOCATOR_FORM_FOUND : NGX_AGENTLOCATOR_FORM_ABSENT;
}


/* Decodes [start, end) onto itself; the result never grows. */

static int
ngx_agentlocator_form_unescape(unsigned char *start, unsigned char *end,
    ngx_agentlocator_form_str_t *out)
{
    int             hi, lo;
    unsigned char  *src, *dst;

    src = start;
    dst = start;

    while (src < end) {

        if (*src == '+') {
            *dst++ = ' ';
            src++;
            continue;
        }

        if (*src != '%') {
            *dst++ = *src++;
            continue;
        }

        if (end - src < 3) {
            return -1;
        }

        hi = ngx_agentlocator_form_hex(src[1]);
        lo = ngx_agentlocator_form_hex(src[2]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        *dst++ = (unsigned char) ((hi << 4) | lo);
        src += 3;
    }

    out->data = start;
    out->len = dst - start;

    return 0;
}


static int
ngx_agentlocator_form_hex(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }

    return -1;
}


unsigned char *
ngx_agentlocator_form_escape(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    const unsigned char   *s, *last;
    static unsigned char   hex[] = "0123456789ABCDEF";

    if (len == 0) {
        return dst;
    }

    for (s = src, last = src + len; s < last; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
            || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'
            || *s == '_' || *s == '~')
        {
            *dst++ = *s;

        } else {
            *dst++ = '%';
            *dst++ = hex[*s >> 4];
            *dst++ = hex[*s & 0xf];
        }
    }

    return dst;
}
