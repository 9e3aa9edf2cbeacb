/*
 * libFuzzer: X-Twilio-Signature (src/ngx_agentlocator_twilio_sig.c) over
 * the URL and the form body a request brings, with the form parsed by
 * src/ngx_agentlocator_form_codec.c as the module does.
 *
 * Input: byte 0 flags (bit 0: a WebSocket upgrade, "/" variants; bit 1:
 * the input ends with an X-Twilio-Signature), byte 1 a mutation's
 * position, byte 2 its xor, byte 3 the token's length, the token, a byte
 * for the URL's length, the URL, the form body, and the signature.
 *
 * Checked against an independent construction written here from
 * ../shared/twilio-facts.md: the parameter string (pairs sorted by key
 * then value in byte order, exact duplicates once), the URL variants
 * (as given; port stripped, or the scheme's default added; each with "/"
 * for WebSockets), HMAC-SHA1 and base64 by OpenSSL.  A signature made
 * over the URL or any of its variants is accepted; changing one byte of
 * the signature, of the URL or of a parameter is accepted exactly when
 * the reference says the signed string is still one the request could
 * mean (never for the URL without the "/" variants; a parameter only
 * through the concatenation's own ambiguity, {"ab": "c"} and {"a": "bc"}
 * sign alike); the
 * signature the input carries is accepted exactly when it is one of the
 * reference's.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_agentlocator_twilio_sig.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "signature: %s\n", what);                             \
        abort();                                                              \
    }

#define MAX_URL  255


typedef struct {
    uint8_t  *data;
    size_t    len;
} buf_t;


static const uint8_t  *token;
static size_t          token_len;


static void
b64(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t    i;
    uint32_t  v;

    static const char  a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = a[(v >> 6) & 63];
        *out++ = a[v & 63];
    }

    if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = a[(v >> 6) & 63];
        *out++ = '=';

    } else if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    }
}


/* what Twilio would send for the signed string s: OpenSSL's HMAC */

static void
sign(const uint8_t *s, size_t len, uint8_t *sig)
{
    uint8_t       md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;

    CHECK(HMAC(EVP_sha1(), token, (int) token_len, s, len, md, &mdlen)
          && mdlen == 20, "OpenSSL's HMAC failed");

    b64(md, 20, sig);
}


static int
same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}


static int
bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t  i;

    for (i = 0; i < alen && i < blen; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }

    return (alen > blen) - (alen < blen);
}


static int
pair_cmp(const ngx_agentlocator_param_t *a, const ngx_agentlocator_param_t *b)
{
    int  rc;

    rc = bytes_cmp(a->key.data, a->key.len, b->key.data, b->key.len);

    return rc ? rc : bytes_cmp(a->value.data, a->value.len, b->value.data,
                               b->value.len);
}


/* the parameter string: an insertion sort, equal neighbours once */

static buf_t
ref_params(const ngx_agentlocator_form_t *form)
{
    size_t                     i, j, len;
    buf_t                      out;
    ngx_agentlocator_param_t  *s, t;

    s = malloc((form->nparams + 1) * sizeof(ngx_agentlocator_param_t));
    CHECK(s, "out of memory");

    len = 0;

    for (i = 0; i < form->nparams; i++) {
        t = form->params[i];
        len += t.key.len + t.value.len;

        for (j = i; j > 0 && pair_cmp(&s[j - 1], &t) > 0; j--) {
            s[j] = s[j - 1];
        }

        s[j] = t;
    }

    out.data = malloc(len + 1);
    CHECK(out.data, "out of memory");
    out.len = 0;

    for (i = 0; i < form->nparams; i++) {
        if (i && pair_cmp(&s[i - 1], &s[i]) == 0) {
            continue;
        }

        if (s[i].key.len) {
            memcpy(out.data + out.len, s[i].key.data, s[i].key.len);
            out.len += s[i].key.len;
        }

        if (s[i].value.len) {
            memcpy(out.data + out.len, s[i].value.data, s[i].value.len);
            out.len += s[i].value.len;
        }
    }

    free(s);

    return out;
}


static int
prefix_nocase(const uint8_t *s, size_t len, const char *p)
{
    size_t  i, n;

    n = strlen(p);

    if (len <= n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]) != p[i]) {
            return 0;
        }
    }

    return 1;
}


static buf_t
cat3(const uint8_t *a, size_t alen, const char *b, const uint8_t *c,
    size_t clen)
{
    size_t  blen;
    buf_t   out;

    blen = strlen(b);
    out.len = alen + blen + clen;
    out.data = malloc(out.len + 1);
    CHECK(out.data, "out of memory");

    if (alen) {
        memcpy(out.data, a, alen);
    }

    memcpy(out.data + alen, b, blen);

    if (clen) {
        memcpy(out.data + alen + blen, c, clen);
    }

    return out;
}


/*
 * The URLs the libraries try: as given; "scheme://" then the authority up
 * to "/" or "?"; a port is what follows its last ":" when no "]" comes
 * after that ":" (an IPv6 literal's own colons are not a port).
 */

static size_t
ref_variants(const uint8_t *u, size_t len, unsigned flags, buf_t *v)
{
    size_t  i, n, host, end, colon, bracket, have_colon, have_bracket;

    n = 0;
    v[n++] = cat3(u, len, "", NULL, 0);

    for (i = 0; i + 3 <= len; i++) {
        if (memcmp(u + i, "://", 3) == 0) {
            break;
        }
    }

    if (i + 3 <= len) {
        host = i + 3;

        for (end = host; end < len && u[end] != '/' && u[end] != '?'; end++) {
            /* void */
        }

        have_colon = have_bracket = 0;
        colon = bracket = 0;

        for (i = host; i < end; i++) {
            if (u[i] == ':') {
                colon = i;
                have_colon = 1;
            }

            if (u[i] == ']') {
                bracket = i;
                have_bracket = 1;
            }
        }

        if (have_colon && (!have_bracket || colon > bracket)) {
            v[n++] = cat3(u, colon, "", u + end, len - end);

        } else if (prefix_nocase(u, len, "https")
                   || prefix_nocase(u, len, "wss"))
        {
            v[n++] = cat3(u, end, ":443", u + end, len - end);

        } else {
            v[n++] = cat3(u, end, ":80", u + end, len - end);
        }
    }

    if (flags & NGX_AGENTLOCATOR_SIG_WS_SLASH) {
        for (i = 0, end = n; i < end; i++) {
            if (v[i].len == 0 || v[i].data[v[i].len - 1] != '/') {
                v[n++] = cat3(v[i].data, v[i].len, "/", NULL, 0);
            }
        }
    }

    return n;
}


static void
free_all(buf_t *v, size_t n)
{
    while (n--) {
        free(v[n].data);
    }
}


/* the module's answer, put together as ngx_agentlocator_signature.c does */

static int
module_verify(const ngx_agentlocator_hmac_t *key, const uint8_t *url,
    size_t len, unsigned flags, const ngx_agentlocator_form_t *form,
    const uint8_t *sig, size_t sig_len)
{
    int                               ok;
    size_t                            n, plen;
    uint8_t                          *params, *vbuf;
    const ngx_agentlocator_param_t  **sorted;
    ngx_agentlocator_form_str_t       v[NGX_AGENTLOCATOR_SIG_VARIANTS];

    sorted = malloc((form->nparams + 1) * sizeof(*sorted));
    params = malloc(ngx_agentlocator_sig_params_size(form) + 1);
    vbuf = malloc(NGX_AGENTLOCATOR_SIG_VARIANTS_SPACE(len));
    CHECK(sorted && params && vbuf, "out of memory");

    plen = ngx_agentlocator_sig_params(form, sorted, params);
    n = ngx_agentlocator_sig_url_variants(url, len, flags, vbuf, v);

    CHECK(n >= 1 && n <= NGX_AGENTLOCATOR_SIG_VARIANTS, "too many variants");

    ok = ngx_agentlocator_sig_match(key, v, n, params, plen, sig, sig_len);

    free(sorted);
    free(params);
    free(vbuf);

    return ok;
}


/* the reference: does any variant of url, then params, make s? */

static int
ref_means(const uint8_t *url, size_t len, unsigned flags,
    const ngx_agentlocator_form_t *form, const buf_t *s)
{
    int     hit;
    size_t  i, n;
    buf_t   p, v[8];

    p = ref_params(form);
    n = ref_variants(url, len, flags, v);
    hit = 0;

    for (i = 0; i < n && !hit; i++) {
        hit = v[i].len + p.len == s->len
              && memcmp(s->data, v[i].data, v[i].len) == 0
              && (p.len == 0 || memcmp(s->data + v[i].len, p.data, p.len) == 0);
    }

    free_all(v, n);
    free(p.data);

    return hit;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                        ok, want;
    size_t                     i, n, pos, url_len, body_len, k;
    uint8_t                    x, md[SHA_DIGEST_LENGTH], ossl[EVP_MAX_MD_SIZE];
    uint8_t                    sig[NGX_AGENTLOCATOR_SIGNATURE_LEN];
    uint8_t                    sig2[NGX_AGENTLOCATOR_SIGNATURE_LEN];
    uint8_t                   *url, *body, *mod, given[28];
    unsigned                   flags, have_given;
    unsigned int               ossl_len;
    const char                *err;
    buf_t                      p, s, v[8], mp;
    ngx_agentlocator_hmac_t    key;
    ngx_agentlocator_form_t    form;
    ngx_agentlocator_param_t   params[NGX_AGENTLOCATOR_FORM_MAX_PARAMS];
    ngx_agentlocator_form_str_t  *field;

    if (size < 5) {
        return 0;
    }

    flags = data[0] & NGX_AGENTLOCATOR_SIG_WS_SLASH;
    have_given = (data[0] & 0x02) && size >= 4 + sizeof(given);
    pos = data[1];
    x = data[2] ? data[2] : 0x20;
    token_len = data[3] % 100;
    data += 4;
    size -= 4;

    if (have_given) {
        memcpy(given, data + size - sizeof(given), sizeof(given));
        size -= sizeof(given);
    }

    if (token_len > size) {
        token_len = size;
    }

    token = data;
    data += token_len;
    size -= token_len;

    url_len = size ? data[0] : 0;
    data += size ? 1 : 0;
    size -= size ? 1 : 0;

    if (url_len > size) {
        url_len = size;
    }

    /* copies of exactly their size, so ASan sees any read past them */
    url = malloc(url_len + 1);
    body_len = size - url_len;
    body = malloc(body_len + 1);
    CHECK(url && body, "out of memory");
    memcpy(url, data, url_len);
    memcpy(body, data + url_len, body_len);

    form.params = params;
    form.nalloc = NGX_AGENTLOCATOR_FORM_MAX_PARAMS;
    err = ngx_agentlocator_form_parse(body, body_len, &form);

    if (err) {
        /* the module answers 400 before any signature: no parameters */
        form.nparams = 0;
    }

    ngx_agentlocator_sig_key(&key, token, token_len);

    /* the parameter string and the HMAC against OpenSSL's */

    p = ref_params(&form);
    {
        const ngx_agentlocator_param_t  **sorted;
        uint8_t                          *out;

        sorted = malloc((form.nparams + 1) * sizeof(*sorted));
        out = malloc(ngx_agentlocator_sig_params_size(&form) + 1);
        CHECK(sorted && out, "out of memory");
        CHECK(ngx_agentlocator_sig_params_size(&form) >= p.len,
              "the parameter string outgrows its room");
        n = ngx_agentlocator_sig_params(&form, sorted, out);
        CHECK(same(out, n, p.data, p.len),
              "the parameter string differs from the reference's");
        free(sorted);
        free(out);
    }

    ngx_agentlocator_sig_hmac(&key, url, url_len, p.data, p.len, md);
    s = cat3(url, url_len, "", p.data, p.len);
    CHECK(HMAC(EVP_sha1(), token, (int) token_len, s.data, s.len, ossl,
               &ossl_len) && ossl_len == 20, "OpenSSL's HMAC failed");
    CHECK(memcmp(md, ossl, 20) == 0, "HMAC-SHA1 differs from OpenSSL's");

    ngx_agentlocator_sig_of(&key, url, url_len, p.data, p.len, sig);
    sign(s.data, s.len, sig2);
    CHECK(memcmp(sig, sig2, sizeof(sig)) == 0,
          "the base64 signature differs from the reference's");

    /* every variant's signature is accepted, and is exactly what it signs */

    n = ref_variants(url, url_len, flags, v);

    for (i = 0; i < n; i++) {
        mp = cat3(v[i].data, v[i].len, "", p.data, p.len);
        sign(mp.data, mp.len, sig2);
        CHECK(module_verify(&key, url, url_len, flags, &form, sig2,
                            sizeof(sig2)),
              "a signature over a URL variant was refused");
        CHECK(!module_verify(&key, url, url_len, flags, &form, sig2,
                             sizeof(sig2) - 1),
              "a signature one byte short was accepted");

        /* one byte of the signature changed */
        sig2[pos % sizeof(sig2)] ^= x;
        CHECK(!module_verify(&key, url, url_len, flags, &form, sig2,
                             sizeof(sig2)),
              "a signature with one byte changed was accepted");
        free(mp.data);
    }

    free_all(v, n);

    /* one byte of the URL changed: accepted only if it still means s */

    sign(s.data, s.len, sig2);

    if (url_len) {
        mod = malloc(url_len);
        CHECK(mod, "out of memory");
        memcpy(mod, url, url_len);
        mod[pos % url_len] ^= x;

        ok = module_verify(&key, mod, url_len, flags, &form, sig2,
                           sizeof(sig2));
        want = ref_means(mod, url_len, flags, &form, &s);
        CHECK(ok == want, "a URL with one byte changed: not the reference's"
                          " verdict");
        /*
         * without the "/" variants no variant of a URL one byte away has
         * the length of the signed one; with them "http://h:" (an empty
         * port) stripped and slashed is "http://h/", which is the same URL
         */
        CHECK(!ok || (flags & NGX_AGENTLOCATOR_SIG_WS_SLASH),
              "a URL with one byte changed was accepted");
        free(mod);
    }

    /* one byte of one decoded parameter changed */

    k = 0;

    for (i = 0; i < form.nparams; i++) {
        k += form.params[i].key.len + form.params[i].value.len;
    }

    if (k) {
        k = (pos * 7 + data[0]) % k;

        for (i = 0; i < form.nparams; i++) {
            field = &form.params[i].key;

            if (k >= field->len) {
                k -= field->len;
                field = &form.params[i].value;

                if (k >= field->len) {
                    k -= field->len;
                    continue;
                }
            }

            field->data[k] ^= x;
            ok = module_verify(&key, url, url_len, flags, &form, sig2,
                               sizeof(sig2));
            want = ref_means(url, url_len, flags, &form, &s);
            CHECK(ok == want, "a parameter with one byte changed: not the"
                              " reference's verdict");
            field->data[k] ^= x;
            break;
        }
    }

    /* the signature the input carries: accepted iff the reference's */

    if (have_given) {
        want = 0;
        n = ref_variants(url, url_len, flags, v);

        for (i = 0; i < n && !want; i++) {
            mp = cat3(v[i].data, v[i].len, "", p.data, p.len);
            sign(mp.data, mp.len, sig2);
            want = memcmp(sig2, given, sizeof(sig2)) == 0;
            free(mp.data);
        }

        free_all(v, n);

        CHECK(module_verify(&key, url, url_len, flags, &form, given,
                            NGX_AGENTLOCATOR_SIGNATURE_LEN) == want,
              "the input's signature: not the reference's verdict");

        if (getenv("SIGNATURE_VERBOSE")) {
            fprintf(stderr, "signature: %.28s over \"%.*s\" + \"%.*s\": %s\n",
                    given, (int) url_len, url, (int) p.len, p.data,
                    want ? "valid" : "invalid");
        }
    }

    free(s.data);
    free(p.data);
    free(url);
    free(body);

    return 0;
}
