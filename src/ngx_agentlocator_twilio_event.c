
/*
 * Twilio Media Streams messages, parsed with yajl's callback API: the path
 * of each value (up to three keys deep) decides where it goes; everything
 * else is skipped.  Unknown keys and events are not errors (Twilio adds
 * fields); malformed JSON, a missing "event" and an invalid payload are.
 */


#include <string.h>
#include <stdlib.h>

#include <yajl/yajl_parse.h>

#include "ngx_agentlocator_twilio_event.h"


#define NGX_AGENTLOCATOR_EV_MAX_DEPTH  8


enum {
    key_other = 0,
    key_event,
    key_stream_sid,
    key_call_sid,
    key_account_sid,
    key_start,
    key_media,
    key_mark,
    key_dtmf,
    key_stop,
    key_custom,
    key_format,
    key_payload,
    key_track,
    key_name,
    key_digit,
    key_encoding,
    key_sample_rate,
    key_channels,
    key_param_call_sid,
    key_array
};


typedef struct {
    ngx_agentlocator_twilio_event_t  *ev;
    unsigned                          depth;
    unsigned                          key[NGX_AGENTLOCATOR_EV_MAX_DEPTH + 1];
} ngx_agentlocator_ev_ctx_t;


static const struct {
    const char  *name;
    unsigned     key;
} ngx_agentlocator_ev_keys[] = {
    { "event", key_event },
    { "streamSid", key_stream_sid },
    { "callSid", key_call_sid },
    { "accountSid", key_account_sid },
    { "start", key_start },
    { "media", key_media },
    { "mark", key_mark },
    { "dtmf", key_dtmf },
    { "stop", key_stop },
    { "customParameters", key_custom },
    { "mediaFormat", key_format },
    { "payload", key_payload },
    { "track", key_track },
    { "name", key_name },
    { "digit", key_digit },
    { "encoding", key_encoding },
    { "sampleRate", key_sample_rate },
    { "channels", key_channels },
    { "call_sid", key_param_call_sid },
    { NULL, 0 }
};


static const char  *ngx_agentlocator_ev_names[] = {
    "unknown", "connected", "start", "media", "mark", "dtmf", "stop"
};


static void
ngx_agentlocator_ev_copy(ngx_agentlocator_ev_sid_t *dst,
    const unsigned char *s, size_t len)
{
    if (len > NGX_AGENTLOCATOR_EV_SID_MAX) {
        len = NGX_AGENTLOCATOR_EV_SID_MAX;
    }

    memcpy(dst->data, s, len);
    dst->len = len;
}


static int
ngx_agentlocator_ev_is(const unsigned char *s, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(s, name, len) == 0;
}


/* The key path of the current value: depth 1 = top level. */
#define path1(c, a)        ((c)->depth == 1 && (c)->key[1] == (a))
#define path2(c, a, b)                                                        \
    ((c)->depth == 2 && (c)->key[1] == (a) && (c)->key[2] == (b))
#define path3(c, a, b, d)                                                     \
    ((c)->depth == 3 && (c)->key[1] == (a) && (c)->key[2] == (b)              \
     && (c)->key[3] == (d))


static int
ngx_agentlocator_ev_string(void *data, const unsigned char *s, size_t len)
{
    ngx_agentlocator_ev_ctx_t        *c = data;
    ngx_agentlocator_twilio_event_t  *ev = c->ev;

    int      ok;
    size_t   n;
    unsigned i;

    if (path1(c, key_event)) {
        ev->has_event = 1;
        ev->event = NGX_AGENTLOCATOR_EV_UNKNOWN;

        for (i = 1; i <= NGX_AGENTLOCATOR_EV_STOP; i++) {
            if (ngx_agentlocator_ev_is(s, len, ngx_agentlocator_ev_names[i])) {
                ev->event = i;
                break;
            }
        }

    } else if (path1(c, key_stream_sid)
               || path2(c, key_start, key_stream_sid))
    {
        ngx_agentlocator_ev_copy(&ev->stream_sid, s, len);

    } else if (path2(c, key_start, key_call_sid)
               || path2(c, key_stop, key_call_sid))
    {
        ngx_agentlocator_ev_copy(&ev->call_sid, s, len);

    } else if (path2(c, key_start, key_account_sid)
               || path2(c, key_stop, key_account_sid))
    {
        ngx_agentlocator_ev_copy(&ev->account_sid, s, len);

    } else if (path3(c, key_start, key_custom, key_param_call_sid)) {
        ngx_agentlocator_ev_copy(&ev->param_call_sid, s, len);

    } else if (path3(c, key_start, key_format, key_encoding)) {
        ngx_agentlocator_ev_copy(&ev->encoding, s, len);

    } else if (path2(c, key_media, key_track)) {
        ngx_agentlocator_ev_copy(&ev->track, s, len);

    } else if (path2(c, key_dtmf, key_digit)) {
        ngx_agentlocator_ev_copy(&ev->digit, s, len);

    } else if (path2(c, key_mark, key_name)) {
        n = len < NGX_AGENTLOCATOR_EV_NAME_MAX ? len
                                               : NGX_AGENTLOCATOR_EV_NAME_MAX;
        memcpy(ev->name, s, n);
        ev->name_len = n;

    } else if (path2(c, key_media, key_payload)) {
        ev->payload_len = ngx_agentlocator_base64_decode(ev->payload,
                                                         ev->payload_cap,
                                                         s, len, &ok);
        if (!ok) {
            ev->error = "invalid base64 media payload";
            return 0;
        }

        ev->has_payload = 1;
    }

    return 1;
}


static int
ngx_agentlocator_ev_number(void *data, const char *s, size_t len)
{
    ngx_agentlocator_ev_ctx_t  *c = data;

    int64_t   v;
    size_t    i;

    v = 0;

    for (i = 0; i < len && i < 18; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 1;    /* not a small integer: not one we use */
        }

        v = v * 10 + (s[i] - '0');
    }

    if (path3(c, key_start, key_format, key_sample_rate)) {
        c->ev->sample_rate = v;

    } else if (path3(c, key_start, key_format, key_channels)) {
        c->ev->channels = v;
    }

    return 1;
}


static int
ngx_agentlocator_ev_scalar(void *data)
{
    return 1;
}


static int
ngx_agentlocator_ev_boolean(void *data, int b)
{
    return 1;
}


static int
ngx_agentlocator_ev_enter(ngx_agentlocator_ev_ctx_t *c, unsigned key)
{
    if (c->depth == NGX_AGENTLOCATOR_EV_MAX_DEPTH) {
        c->ev->error = "JSON nested too deeply";
        return 0;
    }

    c->key[++c->depth] = key;

    return 1;
}


static int
ngx_agentlocator_ev_start_map(void *data)
{
    ngx_agentlocator_ev_ctx_t  *c = data;

    /* the map's own keys fill in key[depth] as they come */
    return ngx_agentlocator_ev_enter(c, key_other);
}


static int
ngx_agentlocator_ev_map_key(void *data, const unsigned char *s, size_t len)
{
    ngx_agentlocator_ev_ctx_t  *c = data;

    unsigned  i;

    c->key[c->depth] = key_other;

    for (i = 0; ngx_agentlocator_ev_keys[i].name; i++) {
        if (ngx_agentlocator_ev_is(s, len, ngx_agentlocator_ev_keys[i].name)) {
            c->key[c->depth] = ngx_agentlocator_ev_keys[i].key;
            break;
        }
    }

    return 1;
}


static int
ngx_agentlocator_ev_end(void *data)
{
    ngx_agentlocator_ev_ctx_t  *c = data;

    c->depth--;

    return 1;
}


static int
ngx_agentlocator_ev_start_array(void *data)
{
    ngx_agentlocator_ev_ctx_t  *c = data;

    /* array elements are never values we use */
    return ngx_agentlocator_ev_enter(c, key_array);
}


static yajl_callbacks  ngx_agentlocator_ev_callbacks = {
    ngx_agentlocator_ev_scalar,            /* null */
    ngx_agentlocator_ev_boolean,           /* boolean */
    NULL,                                  /* integer */
    NULL,                                  /* double */
    ngx_agentlocator_ev_number,            /* number */
    ngx_agentlocator_ev_string,            /* string */
    ngx_agentlocator_ev_start_map,         /* start_map */
    ngx_agentlocator_ev_map_key,           /* map_key */
    ngx_agentlocator_ev_end,               /* end_map */
    ngx_agentlocator_ev_start_array,       /* start_array */
    ngx_agentlocator_ev_end                /* end_array */
};


int
ngx_agentlocator_twilio_event_parse(const unsigned char *json, size_t len,
    ngx_agentlocator_twilio_event_t *ev)
{
    unsigned char              *payload;
    size_t                      cap;
    yajl_handle                 h;
    yajl_status                 st;
    ngx_agentlocator_ev_ctx_t   c;

    payload = ev->payload;
    cap = ev->payload_cap;

    memset(ev, 0, sizeof(ngx_agentlocator_twilio_event_t));

    ev->payload = payload;
    ev->payload_cap = cap;

    memset(&c, 0, sizeof(ngx_agentlocator_ev_ctx_t));
    c.ev = ev;

    h = yajl_alloc(&ngx_agentlocator_ev_callbacks, NULL, &c);
    if (h == NULL) {
        ev->error = "out of memory";
        return -1;
    }

    st = yajl_parse(h, json, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st != yajl_status_ok) {
        if (ev->error == NULL) {
            ev->error = "invalid JSON";
        }

        return -1;
    }

    if (c.depth != 0 || !ev->has_event) {
        ev->error = "message without an event";
        return -1;
    }

    if (ev->event == NGX_AGENTLOCATOR_EV_MEDIA && !ev->has_payload) {
        ev->error = "media message without a payload";
        return -1;
    }

    return 0;
}


const char *
ngx_agentlocator_event_name(unsigned event)
{
    return ngx_agentlocator_ev_names[event <= NGX_AGENTLOCATOR_EV_STOP
                                     ? event : 0];
}


static const signed char  ngx_agentlocator_b64[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
};


/*
 * Standard base64 with "=" padding, as Twilio sends; anything else
 * (other alphabets, stray bytes, a length that is not a multiple of 4,
 * padding in the middle) is refused.  Returns the decoded length.
 */

size_t
ngx_agentlocator_base64_decode(unsigned char *dst, size_t cap,
    const unsigned char *src, size_t len, int *ok)
{
    int       a, b, c, d;
    size_t    i, n, pad;

    *ok = 0;

    if (len % 4) {
        return 0;
    }

    pad = 0;

    if (len >= 4 && src[len - 1] == '=') {
        pad = (src[len - 2] == '=') ? 2 : 1;
    }

    if (len / 4 * 3 - pad > cap) {
        return 0;
    }

    n = 0;

    for (i = 0; i < len; i += 4) {
        a = ngx_agentlocator_b64[src[i]];
        b = ngx_agentlocator_b64[src[i + 1]];

        if (i + 4 == len && pad) {
            c = (pad == 2) ? 0 : ngx_agentlocator_b64[src[i + 2]];
            d = 0;

        } else {
            c = ngx_agentlocator_b64[src[i + 2]];
            d = ngx_agentlocator_b64[src[i + 3]];
        }

        if ((a | b | c | d) < 0) {
            return 0;
        }

        dst[n++] = (unsigned char) (a << 2 | b >> 4);

        if (i + 4 < len || pad < 2) {
            dst[n++] = (unsigned char) (b << 4 | c >> 2);
        }

        if (i + 4 < len || pad < 1) {
            dst[n++] = (unsigned char) (c << 6 | d);
        }
    }

    *ok = 1;

    return n;
}


size_t
ngx_agentlocator_base64_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          i, n;
    unsigned        v;
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned) src[i] << 16 | (unsigned) src[i + 1] << 8 | src[i + 2];
        dst[n++] = alphabet[v >> 18];
        dst[n++] = alphabet[(v >> 12) & 63];
        dst[n++] = alphabet[(v >> 6) & 63];
        dst[n++] = alphabet[v & 63];
    }

    if (i < len) {
        v = (unsigned) src[i] << 16
            | (i + 1 < len ? (unsigned) src[i + 1] << 8 : 0);
        dst[n++] = alphabet[v >> 18];
        dst[n++] = alphabet[(v >> 12) & 63];
        dst[n++] = (i + 1 < len) ? alphabet[(v >> 6) & 63] : '=';
        dst[n++] = '=';
    }

    return n;
}
