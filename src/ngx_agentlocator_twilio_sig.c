
/*
 * X-Twilio-Signature (ngx_agentlocator_twilio_sig.h): the signed string's
 * two halves, the URL variants, HMAC-SHA1 with the key's blocks hashed
 * once, and the constant-time comparison.  Pure computation over buffers.
 */


#include "ngx_agentlocator_twilio_sig.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>


static int ngx_agentlocator_sig_param_cmp(const void *one, const void *two);
static int ngx_agentlocator_sig_scheme(const unsigned char *url, size_t len,
    const char *scheme);


/*
 * HMAC-SHA1 (RFC 2104) with the key's padded blocks hashed once, when the
 * configuration is read: a signature then costs two SHA-1 runs over the
 * message and no allocation.
 */

void
ngx_agentlocator_sig_key(ngx_agentlocator_hmac_t *key,
    const unsigned char *secret, size_t len)
{
    size_t         i;
    unsigned char  k[64], pad[64];

    memset(k, 0, sizeof(k));

    /* a key longer than the block is hashed first (RFC 2104) */

    if (len > sizeof(k)) {
        SHA1(secret, len, k);

    } else if (len) {
        memcpy(k, secret, len);
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

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
}


void
ngx_agentlocator_sig_hmac(const ngx_agentlocator_hmac_t *key,
    const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
    unsigned char *md)
{
    SHA_CTX  sha1;

    sha1 = key->inner;
    SHA1_Update(&sha1, a, alen);
    SHA1_Update(&sha1, b, blen);
    SHA1_Final(md, &sha1);

    sha1 = key->outer;
    SHA1_Update(&sha1, md, SHA_DIGEST_LENGTH);
    SHA1_Final(md, &sha1);

    OPENSSL_cleanse(&sha1, sizeof(sha1));
}


size_t
ngx_agentlocator_sig_params_size(const ngx_agentlocator_form_t *form)
{
    size_t  i, len;

    len = 0;

    for (i = 0; form && i < form->nparams; i++) {
        len += form->params[i].key.len + form->params[i].value.len;
    }

    return len;
}


size_t
ngx_agentlocator_sig_params(const ngx_agentlocator_form_t *form,
    const ngx_agentlocator_param_t **sorted, unsigned char *out)
{
    size_t                           i, n;
    unsigned char                   *p;
    const ngx_agentlocator_param_t  *prev;

    if (form == NULL || form->nparams == 0) {
        return 0;
    }

    n = form->nparams;

    for (i = 0; i < n; i++) {
        sorted[i] = &form->params[i];
    }

    qsort(sorted, n, sizeof(ngx_agentlocator_param_t *),
          ngx_agentlocator_sig_param_cmp);

    p = out;
    prev = NULL;

    for (i = 0; i < n; i++) {
        if (prev && ngx_agentlocator_sig_param_cmp(&prev, &sorted[i]) == 0) {
            continue;
        }

        prev = sorted[i];

        if (prev->key.len) {
            memcpy(p, prev->key.data, prev->key.len);
            p += prev->key.len;
        }

        if (prev->value.len) {
            memcpy(p, prev->value.data, prev->value.len);
            p += prev->value.len;
        }
    }

    return p - out;
}


/* byte order, a prefix first (nginx's ngx_memn2cmp) */

static int
ngx_agentlocator_sig_bytes_cmp(const ngx_agentlocator_form_str_t *a,
    const ngx_agentlocator_form_str_t *b)
{
    int     rc;
    size_t  n;

    n = a->len < b->len ? a->len : b->len;
    rc = n ? memcmp(a->data, b->data, n) : 0;

    if (rc == 0) {
        rc = (a->len > b->len) - (a->len < b->len);
    }

    return rc;
}


static int
ngx_agentlocator_sig_param_cmp(const void *one, const void *two)
{
    const ngx_agentlocator_param_t  *a, *b;

    int  rc;

    a = *(const ngx_agentlocator_param_t * const *) one;
    b = *(const ngx_agentlocator_param_t * const *) two;

    rc = ngx_agentlocator_sig_bytes_cmp(&a->key, &b->key);

    if (rc == 0) {
        rc = ngx_agentlocator_sig_bytes_cmp(&a->value, &b->value);
    }

    return rc;
}


size_t
ngx_agentlocator_sig_url_variants(const unsigned char *url, size_t len,
    unsigned flags, unsigned char *buf, ngx_agentlocator_form_str_t *variants)
{
    size_t                i, n, def_len;
    const char           *def;
    unsigned char        *v;
    const unsigned char  *p, *last, *host, *port, *rest;

    n = 0;
    variants[n].data = (unsigned char *) url;
    variants[n].len = len;
    n++;

    v = buf;

    if (len < 3) {
        goto slashes;
    }

    p = url;
    last = url + len;

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

    variants[n].data = v;

    if (port) {
        memcpy(v, url, port - url);
        v += port - url;
        memcpy(v, rest, last - rest);
        v += last - rest;

    } else {
        if (len > 5 && ngx_agentlocator_sig_scheme(url, len, "https")) {
            def = ":443";

        } else if (len > 3 && ngx_agentlocator_sig_scheme(url, len, "wss")) {
            def = ":443";

        } else {
            def = ":80";
        }

        def_len = strlen(def);

        memcpy(v, url, rest - url);
        v += rest - url;
        memcpy(v, def, def_len);
        v += def_len;
        memcpy(v, rest, last - rest);
        v += last - rest;
    }

    variants[n].len = v - variants[n].data;
    n++;

slashes:

    if (!(flags & NGX_AGENTLOCATOR_SIG_WS_SLASH)) {
        return n;
    }

    for (i = 0; i < 2 && i < n; i++) {
        if (variants[i].len && variants[i].data[variants[i].len - 1] == '/') {
            continue;
        }

        if (variants[i].len) {
            memcpy(v, variants[i].data, variants[i].len);
        }

        v[variants[i].len] = '/';

        variants[n].data = v;
        variants[n].len = variants[i].len + 1;
        v += variants[n].len;
        n++;
    }

    return n;
}


/* the URL begins with "scheme" in any case (ASCII only, no locale) */

static int
ngx_agentlocator_sig_scheme(const unsigned char *url, size_t len,
    const char *scheme)
{
    size_t         i;
    unsigned char  ch;

    for (i = 0; scheme[i]; i++) {
        if (i == len) {
            return 0;
        }

        ch = url[i];

        if (ch >= 'A' && ch <= 'Z') {
            ch |= 0x20;
        }

        if (ch != (unsigned char) scheme[i]) {
            return 0;
        }
    }

    return 1;
}


void
ngx_agentlocator_sig_of(const ngx_agentlocator_hmac_t *key,
    const unsigned char *url, size_t url_len, const unsigned char *params,
    size_t params_len, unsigned char *out)
{
    unsigned char  md[SHA_DIGEST_LENGTH];
    unsigned char  b64[NGX_AGENTLOCATOR_SIGNATURE_LEN + 1];

    ngx_agentlocator_sig_hmac(key, url, url_len, params, params_len, md);

    /* EVP_EncodeBlock adds a NUL: 29 bytes for 28 */
    (void) EVP_EncodeBlock(b64, md, sizeof(md));

    memcpy(out, b64, NGX_AGENTLOCATOR_SIGNATURE_LEN);
}


int
ngx_agentlocator_sig_match(const ngx_agentlocator_hmac_t *key,
    const ngx_agentlocator_form_str_t *variants, size_t n,
    const unsigned char *params, size_t params_len,
    const unsigned char *signature, size_t len)
{
    size_t         i;
    unsigned char  expected[NGX_AGENTLOCATOR_SIGNATURE_LEN];

    if (len != NGX_AGENTLOCATOR_SIGNATURE_LEN) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        ngx_agentlocator_sig_of(key, variants[i].data, variants[i].len,
                                params, params_len, expected);

        if (CRYPTO_memcmp(expected, signature, NGX_AGENTLOCATOR_SIGNATURE_LEN)
            == 0)
        {
            return 1;
        }
    }

    return 0;
}
