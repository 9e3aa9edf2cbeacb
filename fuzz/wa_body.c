/*
 * libFuzzer: the WhatsApp JSON bodies (src/ngx_agentlocator_wa_body.c on
 * top of src/ngx_agentlocator_json.c): the Baileys bridge's inbound
 * webhook, its X-BAILEYS-SIGNATURE, and the API's POST /whatsapp/send.
 *
 * The input is read as each body.  What is accepted must hold what the
 * CRM and the providers are promised: a +E164 number ("+", 2 to 15
 * digits, not 0 first), a message id of 1 to 128 printable bytes, text or
 * an http(s) media URL, every string within its bound, inside the
 * caller's buffer, free of NUL; and each value must be the one yajl's
 * tree parser (another reader of the same text) finds under its key.
 * Then bodies are made from the input's bytes with yajl's generator, as
 * the bridge and the API's clients make them: valid ones must be accepted
 * with exactly the values put in.  The signature: OpenSSL's HMAC-SHA256
 * in lower or upper case hex is accepted, one byte changed (other than a
 * hex letter's case) is not, and the input's first 64 bytes are accepted
 * exactly when they are that hex in some case.
 */

#define _GNU_SOURCE    /* memmem */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "ngx_agentlocator_wa_body.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "wa_body: %s\n", what);                               \
        abort();                                                              \
    }

typedef ngx_agentlocator_form_str_t  str_t;


static int
ref_e164(const str_t *s)
{
    size_t  i;

    if (s->len < 3 || s->len > 16 || s->data[0] != '+' || s->data[1] == '0') {
        return 0;
    }

    for (i = 1; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }

    return 1;
}


static int
ref_url(const str_t *s)
{
    return (s->len > 7 && memcmp(s->data, "http://", 7) == 0)
           || (s->len > 8 && memcmp(s->data, "https://", 8) == 0);
}


static void
check_str(const str_t *s, size_t max, const uint8_t *buf, size_t size)
{
    CHECK(s->len <= max, "a string over its bound");

    if (s->len) {
        CHECK(s->data >= buf && s->data + s->len <= buf + size,
              "a string outside the caller's buffer");
        CHECK(memchr(s->data, '\0', s->len) == NULL, "a NUL in a string");
    }
}


/* what yajl's tree parser has under "key": 1 and the string, or 0 */

static int
tree_str(yajl_val doc, const char *key, const char **out, size_t *len)
{
    const char  *path[2];
    yajl_val     v;

    path[0] = key;
    path[1] = NULL;

    v = yajl_tree_get(doc, path, yajl_t_any);

    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = "";
        *len = 0;
        return 1;
    }

    if (!YAJL_IS_STRING(v)) {
        return 0;
    }

    *out = YAJL_GET_STRING(v);
    *len = strlen(*out);

    return 1;
}


static void
check_tree(yajl_val doc, const char *key, const str_t *s, size_t skip)
{
    size_t       len;
    const char  *v;

    if (doc == NULL) {
        return;
    }

    CHECK(tree_str(doc, key, &v, &len), "a field yajl's tree does not have");

    /* the tree stops at a NUL, which the module refuses anyway */
    CHECK(len >= skip && len - skip == s->len
          && (s->len == 0 || memcmp(v + skip, s->data, s->len) == 0),
          "a value differs from what yajl's tree parser read");
}


static void
baileys(const uint8_t *data, size_t size, yajl_val doc)
{
    size_t                         skip;
    uint8_t                       *buf;
    const char                    *err;
    ngx_agentlocator_wa_inbound_t  m;

    buf = malloc(size + 1);
    CHECK(buf, "out of memory");

    err = ngx_agentlocator_wa_baileys_body(data, size, buf, size + 1, &m);

    if (err == NULL) {
        CHECK(ref_e164(&m.peer), "from is not +E164");
        check_str(&m.peer, 16, buf, size + 1);
        CHECK(m.msg_id.len >= 1, "an empty message id");
        check_str(&m.msg_id, NGX_AGENTLOCATOR_WA_MAX_MSG_ID, buf, size + 1);

        for (skip = 0; skip < m.msg_id.len; skip++) {
            CHECK(m.msg_id.data[skip] > 0x20 && m.msg_id.data[skip] < 0x7f,
                  "a message id with a byte not printable");
        }

        check_str(&m.text, NGX_AGENTLOCATOR_WA_MAX_TEXT, buf, size + 1);
        check_str(&m.name, NGX_AGENTLOCATOR_WA_MAX_NAME, buf, size + 1);
        check_str(&m.media_url, NGX_AGENTLOCATOR_WA_MAX_URL, buf, size + 1);
        check_str(&m.media_type, NGX_AGENTLOCATOR_WA_MAX_TYPE, buf,
                  size + 1);
        CHECK(m.text.len || m.media_url.len, "neither text nor media");
        CHECK(m.media_url.len == 0 || ref_url(&m.media_url),
              "a media_url that is not http(s)");

        skip = 0;

        if (doc) {
            const char  *from;
            size_t       len;

            CHECK(tree_str(doc, "from", &from, &len), "no from in the tree");
            skip = (len > 9 && strncasecmp(from, "whatsapp:", 9) == 0) ? 9 : 0;
        }

        check_tree(doc, "from", &m.peer, skip);
        check_tree(doc, "provider_msg_id", &m.msg_id, 0);
        check_tree(doc, "text", &m.text, 0);
        check_tree(doc, "name", &m.name, 0);
        check_tree(doc, "media_url", &m.media_url, 0);
        check_tree(doc, "media_type", &m.media_type, 0);
    }

    free(buf);
}


static void
send_body(const uint8_t *data, size_t size, yajl_val doc)
{
    uint8_t                     *buf;
    const char                  *err;
    ngx_agentlocator_wa_send_t   s;

    buf = malloc(size + 1);
    CHECK(buf, "out of memory");

    err = ngx_agentlocator_wa_send_body(data, size, buf, size + 1, &s);

    if (err == NULL) {
        CHECK(ref_e164(&s.to), "to is not +E164");
        check_str(&s.to, 16, buf, size + 1);
        check_str(&s.text, NGX_AGENTLOCATOR_SEND_MAX_TEXT, buf, size + 1);
        check_str(&s.media_url, NGX_AGENTLOCATOR_SEND_MAX_URL, buf,
                  size + 1);
        check_str(&s.provider, 16, buf, size + 1);
        CHECK(s.text.len || s.media_url.len, "neither text nor media");
        CHECK(s.media_url.len == 0 || ref_url(&s.media_url),
              "a media_url that is not http(s)");

        check_tree(doc, "to", &s.to, 0);
        check_tree(doc, "text", &s.text, 0);
        check_tree(doc, "media_url", &s.media_url, 0);
        check_tree(doc, "provider", &s.provider, 0);
    }

    free(buf);
}


/* a piece of the input fit for a JSON string: ASCII from lo to 0x7e */

static size_t
piece(const uint8_t **data, size_t *size, size_t max, uint8_t lo,
    uint8_t *out)
{
    size_t  i, n;

    if (*size == 0) {
        return 0;
    }

    n = (*data)[0] % (max + 1);
    (*data)++;
    (*size)--;

    if (n > *size) {
        n = *size;
    }

    for (i = 0; i < n; i++) {
        out[i] = (*data)[i] & 0x7f;

        if (out[i] < lo || out[i] == 0x7f) {
            out[i] = lo + out[i] % (0x7f - lo);
        }
    }

    *data += n;
    *size -= n;

    return n;
}


static void
gen_str(yajl_gen g, const char *key, const uint8_t *s, size_t len)
{
    yajl_gen_string(g, (const unsigned char *) key, strlen(key));
    yajl_gen_string(g, s, len);
}


/* bodies made as a client makes them are read back exactly */

static void
made(const uint8_t *data, size_t size)
{
    size_t                          len, nfrom, nid, ntext, nurl;
    uint8_t                         from[24], id[200], text[300], url[300];
    uint8_t                        *copy, *buf;
    const char                     *err;
    yajl_gen                        g;
    const unsigned char            *json;
    ngx_agentlocator_wa_inbound_t   m;
    ngx_agentlocator_wa_send_t      s;

    from[0] = '+';
    nfrom = 1 + piece(&data, &size, 18, '0', from + 1);

    for (len = 1; len < nfrom; len++) {
        from[len] = '0' + from[len] % 10;
    }

    nid = piece(&data, &size, 140, 0x21, id);
    ntext = piece(&data, &size, 255, 0x20, text);
    memcpy(url, "https://", 8);
    nurl = piece(&data, &size, 200, 0x21, url + 8);
    nurl = nurl ? nurl + 8 : 0;

    g = yajl_gen_alloc(NULL);
    CHECK(g, "out of memory");
    yajl_gen_map_open(g);
    gen_str(g, "provider_msg_id", id, nid);
    gen_str(g, "from", from, nfrom);
    gen_str(g, "text", text, ntext);
    gen_str(g, "media_url", url, nurl);
    yajl_gen_string(g, (const unsigned char *) "timestamp", 9);
    yajl_gen_integer(g, 1700000000);
    yajl_gen_string(g, (const unsigned char *) "name", 4);
    yajl_gen_null(g);
    yajl_gen_map_close(g);
    CHECK(yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok,
          "yajl could not make a body");

    copy = malloc(len);
    buf = malloc(len + 1);
    CHECK(copy && buf, "out of memory");
    memcpy(copy, json, len);

    err = ngx_agentlocator_wa_baileys_body(copy, len, buf, len + 1, &m);

    {
        str_t  f = { nfrom, from };
        int    valid = ref_e164(&f) && nid >= 1
                       && nid <= NGX_AGENTLOCATOR_WA_MAX_MSG_ID
                       && (ntext || nurl);

        if (getenv("WA_BODY_VERBOSE")) {
            fprintf(stderr, "%.*s -> %s\n", (int) len, json,
                    err ? err : "accepted");
        }

        CHECK(valid == (err == NULL),
              "a bridge's body made by yajl: not the rules' verdict");

        if (valid) {
            CHECK(m.peer.len == nfrom && memcmp(m.peer.data, from, nfrom) == 0
                  && m.msg_id.len == nid && memcmp(m.msg_id.data, id, nid) == 0
                  && m.text.len == ntext
                  && (ntext == 0 || memcmp(m.text.data, text, ntext) == 0)
                  && m.media_url.len == nurl
                  && (nurl == 0 || memcmp(m.media_url.data, url, nurl) == 0)
                  && m.name.len == 0,
                  "a bridge's body did not read back as made");
        }
    }

    free(copy);
    free(buf);
    yajl_gen_free(g);

    /* the same pieces as a send request */

    g = yajl_gen_alloc(NULL);
    CHECK(g, "out of memory");
    yajl_gen_map_open(g);
    gen_str(g, "to", from, nfrom);
    gen_str(g, "text", text, ntext);
    gen_str(g, "media_url", url, nurl);
    gen_str(g, "provider", id, nid < 17 ? nid : 16);
    yajl_gen_map_close(g);
    CHECK(yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok,
          "yajl could not make a body");

    copy = malloc(len);
    buf = malloc(len + 1);
    CHECK(copy && buf, "out of memory");
    memcpy(copy, json, len);

    err = ngx_agentlocator_wa_send_body(copy, len, buf, len + 1, &s);

    {
        str_t  f = { nfrom, from };
        int    valid = ref_e164(&f) && (ntext || nurl);

        CHECK(valid == (err == NULL),
              "a send request made by yajl: not the rules' verdict");

        if (valid) {
            CHECK(s.to.len == nfrom && memcmp(s.to.data, from, nfrom) == 0
                  && s.text.len == ntext
                  && (ntext == 0 || memcmp(s.text.data, text, ntext) == 0)
                  && s.media_url.len == nurl
                  && (nurl == 0 || memcmp(s.media_url.data, url, nurl) == 0),
                  "a send request did not read back as made");
        }
    }

    free(copy);
    free(buf);
    yajl_gen_free(g);
}


static void
signature(const uint8_t *data, size_t size)
{
    int            want;
    size_t         i, k, secret_len;
    uint8_t        mac[EVP_MAX_MD_SIZE], hex[64], up[64], x;
    unsigned int   mac_len;
    const uint8_t *secret, *body;

    static const char  digits[] = "0123456789abcdef";

    if (size < 2) {
        return;
    }

    k = data[0] % 64;
    x = data[1] ? data[1] : 1;
    secret_len = size / 3;
    secret = data;
    body = data + secret_len;

    CHECK(HMAC(EVP_sha256(), secret, (int) secret_len, body,
               size - secret_len, mac, &mac_len) && mac_len == 32,
          "OpenSSL's HMAC failed");

    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 0xf];
        up[2 * i] = (hex[2 * i] >= 'a') ? hex[2 * i] - 32 : hex[2 * i];
        up[2 * i + 1] = (hex[2 * i + 1] >= 'a') ? hex[2 * i + 1] - 32
                                                 : hex[2 * i + 1];
    }

    CHECK(ngx_agentlocator_baileys_sig_ok(secret, secret_len, body,
                                          size - secret_len, hex, 64),
          "the body's own signature was refused");
    CHECK(ngx_agentlocator_baileys_sig_ok(secret, secret_len, body,
                                          size - secret_len, up, 64),
          "the body's signature in upper case was refused");
    CHECK(!ngx_agentlocator_baileys_sig_ok(secret, secret_len, body,
                                           size - secret_len, hex, 63),
          "a signature one byte short was accepted");

    /* accepted only if the change made a hex letter upper case */
    hex[k] ^= x;
    want = (hex[k] ^ x) >= 'a' && (hex[k] ^ x) <= 'f'
           && hex[k] == (uint8_t) ((hex[k] ^ x) - 32);
    CHECK(ngx_agentlocator_baileys_sig_ok(secret, secret_len, body,
                                          size - secret_len, hex, 64)
          == want,
          "a signature with one byte changed: wrong verdict");
    hex[k] ^= x;

    if (size >= 64) {
        for (i = 0, want = 1; i < 64 && want; i++) {
            want = data[i] == hex[i] || data[i] == up[i];
        }

        CHECK(ngx_agentlocator_baileys_sig_ok(secret, secret_len, body,
                                              size - secret_len, data, 64)
              == want,
              "the input as a signature: wrong verdict");
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char      *text;
    yajl_val   doc;

    /* yajl's tree parser wants a C string: a NUL ends it early */
    text = malloc(size + 1);
    CHECK(text, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';

    /*
     * and it keeps keys as C strings, so "provider\u0000" is "provider"
     * to it (the module rightly reads neither as "provider"): no tree then
     */
    doc = (memchr(data, '\0', size) || memmem(data, size, "\\u0000", 6))
          ? NULL : yajl_tree_parse(text, NULL, 0);

    if (doc && !YAJL_IS_OBJECT(doc)) {
        yajl_tree_free(doc);
        doc = NULL;
    }

    baileys(data, size, doc);
    send_body(data, size, doc);

    if (doc) {
        yajl_tree_free(doc);
    }

    free(text);

    made(data, size);
    signature(data, size);

    return 0;
}
