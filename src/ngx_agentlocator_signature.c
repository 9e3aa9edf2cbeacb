
/*
 * X-Twilio-Signature on the module's requests: the URL Twilio requested,
 * rebuilt from the public URL and the raw request URI, and the posted
 * parameters, checked by the pure ngx_agentlocator_twilio_sig.c with room
 * from the request's pool.
 */


#include "ngx_agentlocator.h"


void
ngx_agentlocator_hmac_init(ngx_agentlocator_hmac_t *key, ngx_str_t *secret)
{
    ngx_agentlocator_sig_key(key, secret->data, secret->len);
}


/* HMAC-SHA1(key, a + b) into md (SHA_DIGEST_LENGTH bytes). */

void
ngx_agentlocator_hmac_sha1(ngx_agentlocator_hmac_t *key, ngx_str_t *a,
    ngx_str_t *b, u_char *md)
{
    ngx_agentlocator_sig_hmac(key, a->data, a->len, b->data, b->len, md);
}


/*
 * NGX_OK: "signature" matches one variant of "url" (+ "form" params, if
 * any); NGX_DECLINED: it matches none; NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_agentlocator_signature_verify(ngx_pool_t *pool,
    ngx_agentlocator_hmac_t *key, ngx_str_t *url,
    ngx_agentlocator_form_t *form, ngx_str_t *signature, ngx_uint_t flags)
{
    u_char                       *buf;
    size_t                        n;
    ngx_str_t                     params;
    ngx_agentlocator_form_str_t   variants[NGX_AGENTLOCATOR_SIG_VARIANTS];

    if (signature->len != NGX_AGENTLOCATOR_SIGNATURE_LEN) {
        return NGX_DECLINED;
    }

    if (ngx_agentlocator_signature_params(pool, form, &params) != NGX_OK) {
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(pool, NGX_AGENTLOCATOR_SIG_VARIANTS_SPACE(url->len));
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = ngx_agentlocator_sig_url_variants(url->data, url->len,
                                          flags & NGX_AGENTLOCATOR_SIG_WS_SLASH,
                                          buf, variants);

    return ngx_agentlocator_sig_match(key, variants, n, params.data,
                                      params.len, signature->data,
                                      signature->len)
           ? NGX_OK : NGX_DECLINED;
}


/* The parameter half of the signed string, in the pool. */

ngx_int_t
ngx_agentlocator_signature_params(ngx_pool_t *pool,
    ngx_agentlocator_form_t *form, ngx_str_t *out)
{
    u_char                           *p;
    size_t                            len;
    const ngx_agentlocator_param_t  **sorted;

    ngx_str_null(out);

    if (form == NULL || form->nparams == 0) {
        return NGX_OK;
    }

    sorted = ngx_palloc(pool,
                        form->nparams * sizeof(ngx_agentlocator_param_t *));
    if (sorted == NULL) {
        return NGX_ERROR;
    }

    len = ngx_agentlocator_sig_params_size(form);

    p = ngx_pnalloc(pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = ngx_agentlocator_sig_params(form, sorted, p);

    return NGX_OK;
}


/*
 * The URL Twilio requested: the public scheme (or "scheme", e.g. "wss" for
 * the media upgrade) and host, then the request URI exactly as received.
 * When agentlocator_public_url has a path that a front proxy strips, the
 * prefix is put back; when nginx sees it too, it is not doubled.
 */

ngx_int_t
ngx_agentlocator_signature_request_url(ngx_http_request_t *r,
    ngx_agentlocator_public_url_t *public_url, const char *scheme,
    ngx_str_t *url)
{
    u_char     *p;
    size_t      scheme_len, len;
    ngx_str_t  *uri, *prefix;

    uri = &r->unparsed_uri;
    prefix = &public_url->path;

    if (prefix->len
        && uri->len >= prefix->len
        && ngx_strncmp(uri->data, prefix->data, prefix->len) == 0
        && (uri->len == prefix->len || uri->data[prefix->len] == '/'
            || uri->data[prefix->len] == '?'))
    {
        prefix = NULL;
    }

    if (scheme == NULL) {
        scheme = (const char *) public_url->scheme.data;
        scheme_len = public_url->scheme.len;

    } else {
        scheme_len = ngx_strlen(scheme);
    }

    len = scheme_len + sizeof("://") - 1 + public_url->host.len
          + (prefix ? prefix->len : 0) + uri->len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;
    p = ngx_cpymem(p, scheme, scheme_len);
    p = ngx_cpymem(p, "://", 3);
    p = ngx_cpymem(p, public_url->host.data, public_url->host.len);

    if (prefix) {
        p = ngx_cpymem(p, prefix->data, prefix->len);
    }

    p = ngx_cpymem(p, uri->data, uri->len);
    url->len = p - url->data;

    return NGX_OK;
}


/*
 * X-Twilio-Signature on a request: the URL Twilio requested (the public
 * URL's scheme, or "scheme", and host, then the raw request URI) and the
 * posted parameters, if any.  NGX_DECLINED: invalid, with one log line
 * naming the call (if known) and the URL, never the token or the
 * signature; NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_agentlocator_signature_check(ngx_http_request_t *r, const char *scheme,
    ngx_agentlocator_form_t *form, ngx_uint_t flags, ngx_str_t *call_sid)
{
    u_char                         safe[NGX_AGENTLOCATOR_SID_LEN + 1];
    ngx_int_t                      rc;
    ngx_str_t                      url, none = ngx_null_string;
    const char                    *reason;
    ngx_table_elt_t               *h;
    ngx_agentlocator_srv_conf_t   *ascf;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);

    if (ngx_agentlocator_signature_request_url(r, ascf->public_url, scheme,
                                               &url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_agentlocator_find_header(r, "X-Twilio-Signature",
                                     sizeof("X-Twilio-Signature") - 1);

    if (h == NULL || h->value.len == 0) {
        reason = "missing";

    } else {
        rc = ngx_agentlocator_signature_verify(r->pool, &amcf->auth_key,
                                               &url, form, &h->value, flags);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        reason = "mismatch";
    }

    ngx_agentlocator_log_safe(safe, sizeof(safe), call_sid ? call_sid : &none);

    if (flags & NGX_AGENTLOCATOR_SIG_HIDE_LAST) {
        /* the last segment is the stream URL's token: never logged */
        while (url.len && url.data[url.len - 1] != '/') {
            url.len--;
        }
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "SIGNATURE_INVALID call=%s reason=%s url=\"%V%s\"",
                  safe, reason, &url,
                  flags & NGX_AGENTLOCATOR_SIG_HIDE_LAST ? "..." : "");

    return NGX_DECLINED;
}
