
/*
 * Forms for the handlers: a body or query string parsed into the request's
 * pool, its values read as ngx_str_t.  The parsing itself is the pure
 * ngx_agentlocator_form_codec.c, which the fuzzer drives alone.
 */


#include "ngx_agentlocator.h"


/*
 * The value of "name": NGX_OK with the first value, NGX_DECLINED when
 * absent, NGX_ERROR when the key repeats with different values.
 */

ngx_int_t
ngx_agentlocator_form_get(ngx_agentlocator_form_t *form, const char *name,
    ngx_str_t *value)
{
    ngx_agentlocator_form_str_t  v;

    switch (ngx_agentlocator_form_find(form, (u_char *) name,
                                       ngx_strlen(name), &v))
    {
    case NGX_AGENTLOCATOR_FORM_FOUND:
        value->data = v.data;
        value->len = v.len;
        return NGX_OK;

    case NGX_AGENTLOCATOR_FORM_CONFLICT:
        return NGX_ERROR;

    default:
        return NGX_DECLINED;
    }
}


/*
 * A value form-encoded for a body we send (dst needs room for
 * 3 * src->len).
 */

u_char *
ngx_agentlocator_form_encode(u_char *dst, ngx_str_t *src)
{
    return ngx_agentlocator_form_escape(dst, src->data, src->len);
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
