
/*
 * X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + sorted params)),
 * checked against the URL variants Twilio's own libraries accept (port
 * stripped, default port added; for WebSocket upgrades also a trailing
 * slash).  Pure computation over strings; the voice and media handlers feed
 * it the URL as Twilio saw it.
 */


#include "ngx_agentlocator.h"

#include <openssl/crypto.h>


#define NGX_AGENTLOCATOR_SIGNATURE_VARIANTS  6


static int ngx_libc_cdecl ngx_agentlocator_param_cmp(const void *one,
    const void *two);
static ngx_uint_t ngx_agentlocator_url_variants(ngx_pool_t *pool,
    ngx_str_t *url, ngx_uint_t slash, ngx_str_t *variants);
static void ngx_agentlocator_signature_of(ngx_agentlocator_hmac_t *key,
    ngx_str_t *url, ngx_str_t *params, u_char *out);


/*
 * NGX_OK: "signature" matches one variant of "url" (+ "form" params, if
 * any); NGX_DECLINED: it matches none; NGX_ERROR: out of memory.  Each
 * candidate is compared in constant time; the variants are tried in order
 * and the first match ends the search (which variant matched is no secret).
 */

ngx_int_t
ngx_agentlocator_signature_verify(ngx_pool_t *pool,
    ngx_agentlocator_hmac_t *key, ngx_str_t *url,
    ngx_agentlocator_form_t *form, ngx_str_t *signature, ngx_uint_t flags)
{
    u_char       expected[NGX_AGENTLOCATOR_SIGNATURE_LEN];
    ngx_str_t    params, variants[NGX_AGENTLOCATOR_SIGNATURE_VARIANTS];
    ngx_uint_t   i, n;

    if (signature->len != NGX_AGENTLOCATOR_SIGNATURE_LEN) {
        return NGX_DECLINED;
    }

    if (ngx_agentlocator_signature_params(pool, form, &params) != NGX_OK) {
        return NGX_ERROR;
    }

    n = ngx_agentlocator_url_variants(pool, url,
                                      flags & NGX_AGENTLOCATOR_SIG_WS_SLASH,
                                      variants);
    if (n == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_agentlocator_signature_of(key, &variants[i], &params, expected);

        if (CRYPTO_memcmp(expected, signature->data,
                          NGX_AGENTLOCATOR_SIGNATURE_LEN) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * HMAC-SHA1 (RFC 2104) with the key's padded blocks hashed once, when the
 * configuration is read: a signature then costs two SHA-1 runs over the
 * message and no allocation.
 */

void
ngx_agentlocator_hmac_init(ngx_agentlocator_hmac_t *key, ngx_str_t *secret)
{
    u_char      k[64], pad[64];
    ngx_uint_t  i;

    ngx_memzero(k, sizeof(k));

    /* a key longer than the block is hashed first (RFC 2104) */

    if (secret->len > sizeof(k)) {
        SHA1(secret->data, secret->len, k);

    } else {
        ngx_memcpy(k, secret->data, secret->len);
    }

    for (i = 0; i < sizeof(k); i++) {
        pad[i] = k[i] ^ 0x36;
    }

    SHA1_Init(&key->inner);
    SHA1_Update(&key->inner, pad, sizeof(pad));

    for (i = 0; i < sizeof(k); i++) {
        pad[i] = k[i] ^ 0x5c;
    }

    SHA1_Init(&key->outer);
    SHA1_Update(&key->outer, pad, sizeof(pad));

    ngx_explicit_memzero(k, sizeof(k));
    ngx_explicit_memzero(pad, sizeof(pad));
}


/*
 * The parameter half of the signed string: every key+value, sorted by key
 * and then value in byte order, exact duplicates once (what twilio-node and
 * twilio-python do with repeated keys).
 */

ngx_int_t
ngx_agentlocator_signature_params(ngx_pool_t *pool,
    ngx_agentlocator_form_t *form, ngx_str_t *out)
{
    u_char                     *p;
    size_t                      len;
    ngx_uint_t                  i, n;
    ngx_agentlocator_param_t  **sorted, *prev;

    ngx_str_null(out);

    if (form == NULL || form->nparams == 0) {
        return NGX_OK;
    }

    n = form->nparams;

    sorted = ngx_palloc(pool, n * sizeof(ngx_agentlocator_param_t *));
    if (sorted == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (i = 0; i < n; i++) {
        sorted[i] = &form->params[i];
        len += form->params[i].key.len + form->params[i].value.len;
    }

    ngx_qsort(sorted, n, sizeof(ngx_agentlocator_param_t *),
              ngx_agentlocator_param_cmp);

    p = ngx_pnalloc(pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    prev = NULL;

    for (i = 0; i < n; i++) {
        if (prev && ngx_agentlocator_param_cmp(&prev, &sorted[i]) == 0) {
            continue;
        }

        prev = sorted[i];
        p = ngx_cpymem(p, prev->key.data, prev->key.len);
        p = ngx_cpymem(p, prev->value.data, prev->value.len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


/* HMAC-SHA1(key, a + b) into md (SHA_DIGEST_LENGTH bytes). */

void
ngx_agentlocator_hmac_sha1(ngx_agentlocator_hmac_t *key, ngx_str_t *a,
    ngx_str_t *b, u_char *md)
{
    SHA_CTX  sha1;

    sha1 = key->inner;
    SHA1_Update(&sha1, a->data, a->len);
    SHA1_Update(&sha1, b->data, b->len);
    SHA1_Final(md, &sha1);

    sha1 = key->outer;
    SHA1_Update(&sha1, md, SHA_DIGEST_LENGTH);
    SHA1_Final(md, &sha1);
}


/* base64(HMAC-SHA1(key, url + params)) into out (28 bytes). */

static void
ngx_agentlocator_signature_of(ngx_agentlocator_hmac_t *key, ngx_str_t *url,
    ngx_str_t *params, u_char *out)
{
    u_char      md[SHA_DIGEST_LENGTH];
    ngx_str_t   src, dst;

    ngx_agentlocator_hmac_sha1(key, url, params, md);

    src.data = md;
    src.len = sizeof(md);
    dst.data = out;

    ngx_encode_base64(&dst, &src);
}


static int ngx_libc_cdecl
ngx_agentlocator_param_cmp(const void *one, const void *two)
{
    ngx_agentlocator_param_t  *a = *(ngx_agentlocator_param_t **) one;
    ngx_agentlocator_param_t  *b = *(ngx_agentlocator_param_t **) two;

    ngx_int_t  rc;

    rc = ngx_memn2cmp(a->key.data, b->key.data, a->key.len, b->key.len);

    if (rc == 0) {
        rc = ngx_memn2cmp(a->value.data, b->value.data, a->value.len,
                          b->value.len);
    }

    return (int) rc;
}


/*
 * The URL as given, with the port removed (any port: Twilio drops it for
 * HTTPS voice), with the default port added when there is none; with
 * "slash", each of those again with "/" appended (Twilio's advice for
 * Media Streams handshakes).
 */

static ngx_uint_t
ngx_agentlocator_url_variants(ngx_pool_t *pool, ngx_str_t *url,
    ngx_uint_t slash, ngx_str_t *variants)
{
    u_char      *p, *last, *host, *port, *rest, *v;
    ngx_str_t    def;
    ngx_uint_t   i, n;

    n = 0;
    variants[n++] = *url;

    p = url->data;
    last = p + url->len;

    for ( /* void */ ; p + 2 < last; p++) {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            break;
        }
    }

    if (p + 2 >= last) {
        goto slashes;
    }

    host = p + 3;

    for (p = host; p < last && *p != '/' && *p != '?'; p++) {
        /* void */
    }

    rest = p;

    /* the port: after the last ":" that follows any "]" of an IPv6 host */

    port = NULL;

    for (p = host; p < rest; p++) {
        if (*p == ']') {
            port = NULL;

        } else if (*p == ':') {
            port = p;
        }
    }

    if (port) {
        v = ngx_pnalloc(pool, url->len);
        if (v == NULL) {
            return 0;
        }

        variants[n].data = v;
        v = ngx_cpymem(v, url->data, port - url->data);
        v = ngx_cpymem(v, rest, last - rest);
        variants[n].len = v - variants[n].data;
        n++;

    } else {
        if (url->len > 5 && ngx_strncasecmp(url->data, (u_char *) "https", 5)
                            == 0)
        {
            ngx_str_set(&def, ":443");

        } else if (url->len > 3
                   && ngx_strncasecmp(url->data, (u_char *) "wss", 3) == 0)
        {
            ngx_str_set(&def, ":443");

        } else {
            ngx_str_set(&def, ":80");
        }

        v = ngx_pnalloc(pool, url->len + def.len);
        if (v == NULL) {
            return 0;
        }

        variants[n].data = v;
        v = ngx_cpymem(v, url->data, rest - url->data);
        v = ngx_cpymem(v, def.data, def.len);
        v = ngx_cpymem(v, rest, last - rest);
        variants[n].len = v - variants[n].data;
        n++;
    }

slashes:

    if (!slash) {
        return n;
    }

    for (i = 0; i < 2 && i < n; i++) {
        if (variants[i].len && variants[i].data[variants[i].len - 1] == '/') {
            continue;
        }

        v = ngx_pnalloc(pool, variants[i].len + 1);
        if (v == NULL) {
            return 0;
        }

        ngx_memcpy(v, variants[i].data, variants[i].len);
        v[variants[i].len] = '/';

        variants[n].data = v;
        variants[n].len = variants[i].len + 1;
        n++;
    }

    return n;
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
