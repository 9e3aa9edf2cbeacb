
/*
 * application/x-www-form-urlencoded bodies, as Twilio posts its webhooks.
 * A pure parser over a buffer (no nginx I/O) so tests and fuzzers can call
 * it directly; values are decoded in place, the buffer is the storage.
 */


#include "ngx_agentlocator.h"


static ngx_int_t ngx_agentlocator_form_unescape(u_char *start, u_char *end,
    ngx_str_t *out);
static ngx_int_t ngx_agentlocator_hex(u_char ch);


/* An upper bound of the pairs in a body, to size form->params. */

ngx_uint_t
ngx_agentlocator_form_count(u_char *buf, size_t len)
{
    u_char      *p, *last;
    ngx_uint_t   n;

    n = 1;

    /* an empty body may have no buffer at all: NULL + 0 is undefined */
    if (len == 0) {
        return n;
    }

    for (p = buf, last = buf + len; p < last; p++) {
        n += (*p == '&');
    }

    return n;
}


/*
 * Splits "k=v&k2=v2" into form->params in body order, decoding "+" and
 * %XX, into the caller's form->params (nalloc of them, see
 * ngx_agentlocator_form_count()).  Returns NULL or a one-line reason.
 * Empty pairs ("a=1&&b=2") are
 * skipped; a pair without "=" has an empty value; keys may repeat.
 */

const char *
ngx_agentlocator_form_parse(u_char *buf, size_t len,
    ngx_agentlocator_form_t *form)
{
    u_char                    *p, *last, *pair, *eq;
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
                != NGX_OK
                || ngx_agentlocator_form_unescape(eq ? eq + 1 : p, p,
                                                  &param->value)
                   != NGX_OK)
            {
                return "malformed percent-encoding in form body";
            }

            form->nparams++;
        }

        p++;    /* the "&" */
    }

    return NULL;
}


/*
 * The value of "name": NGX_OK with the first value, NGX_DECLINED when
 * absent, NGX_ERROR when the key repeats with different values (an
 * identifier that is ambiguous is refused, not guessed).
 */

ngx_int_t
ngx_agentlocator_form_get(ngx_agentlocator_form_t *form, const char *name,
    ngx_str_t *value)
{
    size_t                     len;
    ngx_uint_t                 i, found;
    ngx_agentlocator_param_t  *param;

    len = ngx_strlen(name);
    found = 0;

    for (i = 0; i < form->nparams; i++) {
        param = &form->params[i];

        if (param->key.len != len
            || ngx_memcmp(param->key.data, name, len) != 0)
        {
            continue;
        }

        if (!found) {
            *value = param->value;
            found = 1;
            continue;
        }

        if (param->value.len != value->len
            || ngx_memcmp(param->value.data, value->data, value->len) != 0)
        {
            return NGX_ERROR;
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}


/* Decodes [start, end) onto itself; the result never grows. */

static ngx_int_t
ngx_agentlocator_form_unescape(u_char *start, u_char *end, ngx_str_t *out)
{
    u_char     *src, *dst;
    ngx_int_t   hi, lo;

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
            return NGX_ERROR;
        }

        hi = ngx_agentlocator_hex(src[1]);
        lo = ngx_agentlocator_hex(src[2]);

        if (hi < 0 || lo < 0) {
            return NGX_ERROR;
        }

        *dst++ = (u_char) ((hi << 4) | lo);
        src += 3;
    }

    out->data = start;
    out->len = dst - start;

    return NGX_OK;
}


static ngx_int_t
ngx_agentlocator_hex(u_char ch)
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


/*
 * A value form-encoded for a body we send: everything but the unreserved
 * characters escaped (dst needs room for 3 * src->len).
 */

u_char *
ngx_agentlocator_form_encode(u_char *dst, ngx_str_t *src)
{
    u_char         *s, *last;
    static u_char   hex[] = "0123456789ABCDEF";

    for (s = src->data, last = s + src->len; s < last; s++) {
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


/*
 * A form parsed from buf[0..len) (decoded in place) into a new
 * ngx_agentlocator_form_t from the pool.  NGX_DECLINED with *err: the
 * sender's mistake (a 400 and its reason); NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_agentlocator_form_new(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_agentlocator_form_t **form, const char **err)
{
    ngx_agentlocator_form_t  *f;

    f = ngx_palloc(pool, sizeof(ngx_agentlocator_form_t));
    if (f == NULL) {
        return NGX_ERROR;
    }

    f->nalloc = ngx_min(ngx_agentlocator_form_count(buf, len),
                        NGX_AGENTLOCATOR_FORM_MAX_PARAMS);
    f->params = ngx_palloc(pool, f->nalloc * sizeof(ngx_agentlocator_param_t));
    if (f->params == NULL) {
        return NGX_ERROR;
    }

    *err = ngx_agentlocator_form_parse(buf, len, f);
    if (*err) {
        return NGX_DECLINED;
    }

    *form = f;

    return NGX_OK;
}
