
/*
 * WhatsApp JSON bodies (ngx_agentlocator_wa_body.h): each field read with
 * its kind and bound by ngx_agentlocator_json.c, then checked for what the
 * CRM and the providers need, in the order the handlers answered before.
 */


#include "ngx_agentlocator_wa_body.h"
#include "ngx_agentlocator_json.h"
#include "ngx_agentlocator_valid.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>


#define ngx_agentlocator_wa_set(s, f)                                         \
    (s)->data = (unsigned char *) (f)->str; (s)->len = (f)->len


static int ngx_agentlocator_wa_msg_id_ok(const ngx_agentlocator_form_str_t *id);


int
ngx_agentlocator_wa_number(const unsigned char *data, size_t len,
    ngx_agentlocator_form_str_t *number)
{
    size_t  i;

    static const char  prefix[] = "whatsapp:";

    if (len > 9) {
        for (i = 0; i < 9; i++) {
            if ((data[i] | (data[i] >= 'A' && data[i] <= 'Z' ? 0x20 : 0))
                != (unsigned char) prefix[i])
            {
                break;
            }
        }

        if (i == 9) {
            data += 9;
            len -= 9;
        }
    }

    if (!ngx_agentlocator_e164_ok(data, len)) {
        return 0;
    }

    number->data = (unsigned char *) data;
    number->len = len;

    return 1;
}


void
ngx_agentlocator_baileys_hex(const unsigned char *secret, size_t secret_len,
    const unsigned char *body, size_t body_len, unsigned char *hex)
{
    size_t         i;
    unsigned int   len;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    static const char  digits[] = "0123456789abcdef";

    len = 0;

    (void) HMAC(EVP_sha256(), secret, (int) secret_len, body, body_len, mac,
                &len);

    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 0xf];
    }
}


int
ngx_agentlocator_baileys_sig_ok(const unsigned char *secret,
    size_t secret_len, const unsigned char *body, size_t body_len,
    const unsigned char *sig, size_t len)
{
    size_t         i;
    unsigned char  expected[NGX_AGENTLOCATOR_BAILEYS_SIG_LEN];
    unsigned char  given[NGX_AGENTLOCATOR_BAILEYS_SIG_LEN];

    if (len != NGX_AGENTLOCATOR_BAILEYS_SIG_LEN) {
        return 0;
    }

    /* hex in either case is the same signature */
    for (i = 0; i < NGX_AGENTLOCATOR_BAILEYS_SIG_LEN; i++) {
        given[i] = (sig[i] >= 'A' && sig[i] <= 'Z') ? (sig[i] | 0x20) : sig[i];
    }

    ngx_agentlocator_baileys_hex(secret, secret_len, body, body_len,
                                 expected);

    return CRYPTO_memcmp(expected, given, NGX_AGENTLOCATOR_BAILEYS_SIG_LEN)
           == 0;
}


const char *
ngx_agentlocator_wa_baileys_body(const unsigned char *json, size_t len,
    unsigned char *buf, size_t size, ngx_agentlocator_wa_inbound_t *m)
{
    const char                   *err;
    ngx_agentlocator_form_str_t   from;

    enum { F_FROM = 0, F_TEXT, F_MEDIA_URL, F_MEDIA_TYPE, F_MSG_ID, F_NAME,
           F_TIMESTAMP, F_N };

    ngx_agentlocator_json_field_t  fields[F_N] = {
        { "from", NGX_AGENTLOCATOR_JSON_STRING, 16, 0, NULL, 0, 0, 0, 0 },
        { "text", NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_WA_MAX_TEXT, 0, NULL, 0, 0, 0, 0 },
        { "media_url",
          NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_WA_MAX_URL, 0, NULL, 0, 0, 0, 0 },
        { "media_type",
          NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_WA_MAX_TYPE, 0, NULL, 0, 0, 0, 0 },
        { "provider_msg_id", NGX_AGENTLOCATOR_JSON_STRING,
          NGX_AGENTLOCATOR_WA_MAX_MSG_ID, 0, NULL, 0, 0, 0, 0 },
        { "name", NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_WA_MAX_NAME, 0, NULL, 0, 0, 0, 0 },
        { "timestamp",
          NGX_AGENTLOCATOR_JSON_NUMBER | NGX_AGENTLOCATOR_JSON_INTEGER
          | NGX_AGENTLOCATOR_JSON_NULL, 0, 0, NULL, 0, 0, 0, 0 }
    };

    memset(m, 0, sizeof(ngx_agentlocator_wa_inbound_t));

    err = ngx_agentlocator_json_fields(json, len, fields, F_N, buf, size);
    if (err) {
        return err;
    }

    ngx_agentlocator_wa_set(&from, &fields[F_FROM]);

    if (fields[F_FROM].kind == 0
        || !ngx_agentlocator_wa_number(from.data, from.len, &m->peer))
    {
        return "from must be a +E164 number";
    }

    ngx_agentlocator_wa_set(&m->msg_id, &fields[F_MSG_ID]);

    if (!ngx_agentlocator_wa_msg_id_ok(&m->msg_id)) {
        return "provider_msg_id must be 1 to 128 printable characters";
    }

    ngx_agentlocator_wa_set(&m->text, &fields[F_TEXT]);
    ngx_agentlocator_wa_set(&m->name, &fields[F_NAME]);
    ngx_agentlocator_wa_set(&m->media_url, &fields[F_MEDIA_URL]);
    ngx_agentlocator_wa_set(&m->media_type, &fields[F_MEDIA_TYPE]);

    if (m->media_url.len) {
        if (!ngx_agentlocator_http_url_ok(m->media_url.data,
                                          m->media_url.len))
        {
            return "media_url must be an http(s) URL";
        }

    } else if (m->text.len == 0) {
        return "a message needs text or a media_url";
    }

    return NULL;
}


/* A provider's message id: printable ASCII, no space, 1 to 128 bytes. */

static int
ngx_agentlocator_wa_msg_id_ok(const ngx_agentlocator_form_str_t *id)
{
    size_t  i;

    if (id->len == 0 || id->len > NGX_AGENTLOCATOR_WA_MAX_MSG_ID) {
        return 0;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] <= 0x20 || id->data[i] >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


const char *
ngx_agentlocator_wa_send_body(const unsigned char *json, size_t len,
    unsigned char *buf, size_t size, ngx_agentlocator_wa_send_t *s)
{
    const char  *err;

    enum { F_TO = 0, F_TEXT, F_MEDIA_URL, F_PROVIDER, F_N };

    ngx_agentlocator_json_field_t  fields[F_N] = {
        { "to", NGX_AGENTLOCATOR_JSON_STRING, 32, 0, NULL, 0, 0, 0, 0 },
        { "text", NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_SEND_MAX_TEXT, 0, NULL, 0, 0, 0, 0 },
        { "media_url",
          NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_SEND_MAX_URL, 0, NULL, 0, 0, 0, 0 },
        { "provider",
          NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL, 16,
          0, NULL, 0, 0, 0, 0 }
    };

    memset(s, 0, sizeof(ngx_agentlocator_wa_send_t));

    err = ngx_agentlocator_json_fields(json, len, fields, F_N, buf, size);
    if (err) {
        return err;
    }

    ngx_agentlocator_wa_set(&s->to, &fields[F_TO]);
    ngx_agentlocator_wa_set(&s->text, &fields[F_TEXT]);
    ngx_agentlocator_wa_set(&s->media_url, &fields[F_MEDIA_URL]);
    ngx_agentlocator_wa_set(&s->provider, &fields[F_PROVIDER]);

    if (!ngx_agentlocator_e164_ok(s->to.data, s->to.len)) {
        return "to must be a +E164 number";
    }

    if (s->text.len == 0 && s->media_url.len == 0) {
        return "a message needs text or a media_url";
    }

    if (s->media_url.len
        && !ngx_agentlocator_http_url_ok(s->media_url.data, s->media_url.len))
    {
        return "media_url must be an http(s) URL";
    }

    return NULL;
}
