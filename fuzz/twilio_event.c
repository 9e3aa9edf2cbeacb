
/*
 * libFuzzer target for the Twilio Media Streams message parser and the
 * base64 codec (src/ngx_agentlocator_twilio_event.c).  The input is parsed
 * as a message with a small and a large payload buffer (a larger buffer may
 * only accept more, and must then agree on every field); it is base64
 * round-tripped both ways; and it is wrapped into well-formed media, start
 * and nested messages whose fields must come back as sent.  The scanner
 * of plain messages (parse_fast) is compared with yajl (parse_full) on
 * every message: what it takes, yajl must take with the same fields, and
 * the real-shaped media and mark messages it must take.  Any broken
 * invariant abort()s with a description on stderr.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_twilio_event.h"


/* what the module gives a 64k agentlocator_media_max_message */
#define FZ_LARGE_CAP   (65536 / 4 * 3 + 3)
#define FZ_SMALL_CAP   16


#define fz_check(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "twilio_event: check failed: %s (%s:%d)\n  ",     \
                    #cond, __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


static void *
fz_alloc(size_t n)
{
    void  *p;

    /* exact sizes, so ASan catches a write one past the caller's cap */
    p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }

    return p;
}


typedef int (*fz_parser_pt)(const unsigned char *json, size_t len,
    ngx_agentlocator_twilio_event_t *ev);


static int
fz_parse_with(fz_parser_pt parser, const unsigned char *json, size_t len,
    size_t cap, ngx_agentlocator_twilio_event_t *ev, unsigned char *payload)
{
    int                         rc;
    const char                 *name;
    ngx_agentlocator_ev_sid_t  *sids[7];
    size_t                      i;

    memset(ev, 0xa5, sizeof(ngx_agentlocator_twilio_event_t));
    ev->payload = payload;
    ev->payload_cap = cap;

    rc = parser(json, len, ev);

    fz_check(ev->payload == payload && ev->payload_cap == cap,
             "parse changed the caller's buffer");

    if (parser == ngx_agentlocator_twilio_event_parse_fast) {
        fz_check(rc == 0 || rc == 1, "parse_fast returned %d", rc);

        if (rc != 0) {
            /* declined: ev is not to be read */
            return rc;
        }

    } else {
        fz_check(rc == 0 || rc == -1, "parse returned %d", rc);
    }

    if (rc != 0) {
        fz_check(ev->error != NULL, "failure without an error");
        return rc;
    }

    fz_check(ev->error == NULL, "success with error \"%s\"", ev->error);
    fz_check(ev->has_event, "success without an event");
    fz_check(ev->event <= NGX_AGENTLOCATOR_EV_STOP, "event %u", ev->event);
    fz_check(ev->payload_len <= cap, "payload %zu bytes in a %zu buffer",
             ev->payload_len, cap);
    fz_check(ev->has_payload || ev->payload_len == 0,
             "payload_len %zu without a payload", ev->payload_len);
    fz_check(ev->event != NGX_AGENTLOCATOR_EV_MEDIA || ev->has_payload,
             "media without a payload");
    fz_check(ev->name_len <= NGX_AGENTLOCATOR_EV_NAME_MAX, "name_len %zu",
             ev->name_len);

    sids[0] = &ev->stream_sid;
    sids[1] = &ev->call_sid;
    sids[2] = &ev->account_sid;
    sids[3] = &ev->param_call_sid;
    sids[4] = &ev->track;
    sids[5] = &ev->encoding;
    sids[6] = &ev->digit;

    for (i = 0; i < 7; i++) {
        fz_check(sids[i]->len <= NGX_AGENTLOCATOR_EV_SID_MAX,
                 "sid field %zu has len %zu", i, sids[i]->len);
    }

    name = ngx_agentlocator_event_name(ev->event);
    fz_check(name != NULL && strlen(name) > 0, "no name for event %u",
             ev->event);

    return 0;
}


static int
fz_parse(const unsigned char *json, size_t len, size_t cap,
    ngx_agentlocator_twilio_event_t *ev, unsigned char *payload)
{
    return fz_parse_with(ngx_agentlocator_twilio_event_parse, json, len, cap,
                         ev, payload);
}


static int
fz_sid_eq(const ngx_agentlocator_ev_sid_t *a,
    const ngx_agentlocator_ev_sid_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}


static int
fz_sid_is(const ngx_agentlocator_ev_sid_t *a, const char *s, size_t len)
{
    if (len > NGX_AGENTLOCATOR_EV_SID_MAX) {
        len = NGX_AGENTLOCATOR_EV_SID_MAX;
    }

    return a->len == len && memcmp(a->data, s, len) == 0;
}


static void
fz_same(const ngx_agentlocator_twilio_event_t *a,
    const ngx_agentlocator_twilio_event_t *b, const char *what)
{
    fz_check(a->event == b->event && a->has_event == b->has_event
             && a->has_payload == b->has_payload
             && a->payload_len == b->payload_len
             && (a->payload_len == 0
                 || memcmp(a->payload, b->payload, a->payload_len) == 0)
             && fz_sid_eq(&a->stream_sid, &b->stream_sid)
             && fz_sid_eq(&a->call_sid, &b->call_sid)
             && fz_sid_eq(&a->account_sid, &b->account_sid)
             && fz_sid_eq(&a->param_call_sid, &b->param_call_sid)
             && fz_sid_eq(&a->track, &b->track)
             && fz_sid_eq(&a->encoding, &b->encoding)
             && fz_sid_eq(&a->digit, &b->digit)
             && a->name_len == b->name_len
             && memcmp(a->name, b->name, a->name_len) == 0
             && a->sample_rate == b->sample_rate
             && a->channels == b->channels,
             "%s", what);
}


/*
 * The scanner against yajl on one message and buffer size: a message the
 * scanner takes yajl takes too, with the same fields and payload; and
 * parse() gives what yajl gives.  1 when the scanner took it.
 */

static int
fz_fast_full(const unsigned char *json, size_t len, size_t cap)
{
    int                               fast_rc, full_rc, rc;
    unsigned char                    *fp, *yp, *pp;
    ngx_agentlocator_twilio_event_t   f, y, e;

    fp = fz_alloc(cap);
    yp = fz_alloc(cap);
    pp = fz_alloc(cap);

    fast_rc = fz_parse_with(ngx_agentlocator_twilio_event_parse_fast, json,
                            len, cap, &f, fp);
    full_rc = fz_parse_with(ngx_agentlocator_twilio_event_parse_full, json,
                            len, cap, &y, yp);
    rc = fz_parse(json, len, cap, &e, pp);

    if (fast_rc == 0) {
        fz_check(full_rc == 0, "parse_fast took what yajl refused (%s)",
                 y.error);
        fz_same(&f, &y,
                "parse_fast and yajl parsed the message differently");
    }

    fz_check(rc == full_rc, "parse returned %d, yajl %d", rc, full_rc);

    if (rc == 0) {
        fz_same(&e, &y, "parse and yajl parsed the message differently");

    } else {
        fz_check(strcmp(e.error, y.error) == 0,
                 "parse refused with \"%s\", yajl with \"%s\"", e.error,
                 y.error);
    }

    free(pp);
    free(yp);
    free(fp);

    return fast_rc == 0;
}


/* The input as a message, with both buffer sizes. */

static void
fz_message(const uint8_t *data, size_t size)
{
    int                               small_rc, large_rc;
    unsigned char                    *json, *small, *large;
    ngx_agentlocator_twilio_event_t   s, l;

    json = fz_alloc(size);
    if (size) {
        memcpy(json, data, size);
    }

    small = fz_alloc(FZ_SMALL_CAP);
    large = fz_alloc(FZ_LARGE_CAP);

    small_rc = fz_parse(json, size, FZ_SMALL_CAP, &s, small);
    large_rc = fz_parse(json, size, FZ_LARGE_CAP, &l, large);

    fz_check(small_rc != 0 || large_rc == 0,
             "accepted with %d bytes of buffer, refused with %d (%s)",
             FZ_SMALL_CAP, FZ_LARGE_CAP, l.error);

    if (small_rc == 0) {
        fz_same(&s, &l,
                "small and large buffers parsed the message differently");
    }

    (void) fz_fast_full(json, size, FZ_SMALL_CAP);
    (void) fz_fast_full(json, size, FZ_LARGE_CAP);

    free(large);
    free(small);
    free(json);
}


static size_t
fz_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}


/* encode, then decode: the bytes come back exactly */

static void
fz_encode_decode(const uint8_t *data, size_t size)
{
    int             ok;
    size_t          n, m, i, pad;
    unsigned char  *src, *enc, *dec;

    src = fz_alloc(size);
    if (size) {
        memcpy(src, data, size);
    }

    enc = fz_alloc(fz_b64_len(size));
    n = ngx_agentlocator_base64_encode(enc, src, size);

    fz_check(n == fz_b64_len(size), "encode(%zu bytes) gave %zu chars",
             size, n);

    pad = (3 - size % 3) % 3;

    for (i = 0; i < n; i++) {
        fz_check(i >= n - pad ? enc[i] == '='
                 : ((enc[i] >= 'A' && enc[i] <= 'Z')
                    || (enc[i] >= 'a' && enc[i] <= 'z')
                    || (enc[i] >= '0' && enc[i] <= '9')
                    || enc[i] == '+' || enc[i] == '/'),
                 "encode of %zu bytes: char %zu is %02x", size, i, enc[i]);
    }

    dec = fz_alloc(size);
    m = ngx_agentlocator_base64_decode(dec, size, enc, n, &ok);

    fz_check(ok && m == size && (size == 0 || memcmp(dec, src, size) == 0),
             "decode(encode(%zu bytes)): ok %d, %zu bytes", size, ok, m);

    free(dec);

    if (size) {
        /* one byte short of room: refused, and nothing written past it */
        dec = fz_alloc(size - 1);
        m = ngx_agentlocator_base64_decode(dec, size - 1, enc, n, &ok);

        fz_check(!ok, "decode of %zu bytes into %zu accepted (%zu)", size,
                 size - 1, m);

        free(dec);
    }

    free(enc);
    free(src);
}


/* decode the input as base64; what it accepts must re-encode to itself */

static void
fz_decode_encode(const uint8_t *data, size_t size)
{
    int             ok, ok2;
    size_t          want, pad, m, n, m2, i, last;
    unsigned char  *src, *dec, *enc, *dec2;

    src = fz_alloc(size);
    if (size) {
        memcpy(src, data, size);
    }

    pad = 0;

    if (size >= 4 && size % 4 == 0 && src[size - 1] == '=') {
        pad = src[size - 2] == '=' ? 2 : 1;
    }

    want = size % 4 ? 0 : size / 4 * 3 - pad;

    dec = fz_alloc(want);
    m = ngx_agentlocator_base64_decode(dec, want, src, size, &ok);

    if (!ok) {
        fz_check(m == 0, "a refused decode returned %zu", m);
        goto done;
    }

    fz_check(size % 4 == 0 && m == want, "decode of %zu chars: %zu bytes, "
             "want %zu", size, m, want);

    enc = fz_alloc(fz_b64_len(m));
    n = ngx_agentlocator_base64_encode(enc, dec, m);

    fz_check(n == size, "decode then encode: %zu chars from %zu", n, size);

    /*
     * Only the last character before the padding may differ: it can carry
     * bits that decoding drops (RFC 4648 §3.5 lets a decoder accept them).
     */
    last = size - pad - 1;

    for (i = 0; i < n; i++) {
        fz_check((pad && i == last) || enc[i] == src[i],
                 "decode then encode: char %zu %02x, was %02x", i, enc[i],
                 src[i]);
    }

    dec2 = fz_alloc(m);
    m2 = ngx_agentlocator_base64_decode(dec2, m, enc, n, &ok2);

    fz_check(ok2 && m2 == m && (m == 0 || memcmp(dec, dec2, m) == 0),
             "re-decode of %zu chars differs", n);

    free(dec2);
    free(enc);

    if (want) {
        free(dec);
        dec = fz_alloc(want - 1);
        m = ngx_agentlocator_base64_decode(dec, want - 1, src, size, &ok);

        fz_check(!ok, "decode of %zu bytes into %zu accepted", want,
                 want - 1);
    }

done:

    free(dec);
    free(src);
}


/* the input as the payload of a well-formed media message */

static void
fz_media(const uint8_t *data, size_t size)
{
    int                               rc;
    size_t                            n, b64;
    unsigned char                    *json, *payload;
    ngx_agentlocator_twilio_event_t   ev;

    static const char  head[] =
        "{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{"
        "\"track\":\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\","
        "\"payload\":\"";
    static const char  tail[] =
        "\"},\"streamSid\":\"MZ00000000000000000000000000000000\"}";

    if (size > FZ_LARGE_CAP) {
        size = FZ_LARGE_CAP;
    }

    b64 = fz_b64_len(size);
    json = fz_alloc(sizeof(head) - 1 + b64 + sizeof(tail) - 1);

    memcpy(json, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    n += ngx_agentlocator_base64_encode(json + n, data, size);
    memcpy(json + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;

    payload = fz_alloc(size);
    rc = fz_parse(json, n, size, &ev, payload);

    fz_check(rc == 0 && ev.event == NGX_AGENTLOCATOR_EV_MEDIA
             && ev.payload_len == size
             && (size == 0 || memcmp(payload, data, size) == 0)
             && fz_sid_is(&ev.track, "inbound", 7)
             && fz_sid_is(&ev.stream_sid,
                          "MZ00000000000000000000000000000000", 34),
             "media message with %zu payload bytes: rc %d (%s), %zu bytes",
             size, rc, ev.error ? ev.error : "", ev.payload_len);

    free(payload);

    fz_check(fz_fast_full(json, n, size),
             "parse_fast declined a media message with %zu payload bytes",
             size);

    if (size) {
        payload = fz_alloc(size - 1);
        rc = fz_parse(json, n, size - 1, &ev, payload);

        fz_check(rc != 0, "%zu payload bytes accepted into %zu", size,
                 size - 1);
        free(payload);

        (void) fz_fast_full(json, n, size - 1);
    }

    free(json);
}


/*
 * The input's letters and digits as the string fields of a start and a
 * mark message (truncated as documented), and the nesting limit.
 */

static void
fz_fields(const uint8_t *data, size_t size)
{
    int                               rc;
    char                              s[300];
    size_t                            n, i, depth;
    unsigned char                     json[4096], payload[1];
    ngx_agentlocator_twilio_event_t   ev;

    n = 0;

    for (i = 0; i < size && n < sizeof(s) - 1; i++) {
        if ((data[i] >= '0' && data[i] <= '9')
            || (data[i] >= 'A' && data[i] <= 'Z')
            || (data[i] >= 'a' && data[i] <= 'z'))
        {
            s[n++] = (char) data[i];
        }
    }

    s[n] = '\0';

    i = (size_t) snprintf((char *) json, sizeof(json),
            "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{"
            "\"accountSid\":\"AC%s\",\"streamSid\":\"%s\",\"callSid\":\"%s\","
            "\"tracks\":[\"inbound\",\"%s\"],\"mediaFormat\":{"
            "\"encoding\":\"%s\",\"sampleRate\":%zu,\"channels\":1},"
            "\"customParameters\":{\"call_sid\":\"%s\",\"x\":\"%s\"}},"
            "\"streamSid\":\"%s\"}",
            s, s, s, s, s, n * 1000003 % 1000000007, s, s, s);

    fz_check(i < sizeof(json), "start message too long");

    rc = fz_parse(json, i, 0, &ev, payload);

    fz_check(rc == 0 && ev.event == NGX_AGENTLOCATOR_EV_START
             && fz_sid_is(&ev.stream_sid, s, n)
             && fz_sid_is(&ev.call_sid, s, n)
             && ev.account_sid.len == (n + 2 > 64 ? 64 : n + 2)
             && memcmp(ev.account_sid.data, "AC", 2) == 0
             && fz_sid_is(&ev.param_call_sid, s, n)
             && fz_sid_is(&ev.encoding, s, n)
             && ev.sample_rate == (int64_t) (n * 1000003 % 1000000007)
             && ev.channels == 1 && ev.track.len == 0,
             "start message with \"%s\": rc %d (%s)", s, rc,
             ev.error ? ev.error : "");

    i = (size_t) snprintf((char *) json, sizeof(json),
            "{\"event\":\"mark\",\"sequenceNumber\":\"4\","
            "\"streamSid\":\"MZ1\",\"mark\":{\"name\":\"%s\"}}", s);

    rc = fz_parse(json, i, 0, &ev, payload);

    fz_check(rc == 0 && ev.event == NGX_AGENTLOCATOR_EV_MARK
             && ev.name_len == (n > 256 ? 256 : n)
             && memcmp(ev.name, s, ev.name_len) == 0,
             "mark message with \"%s\": rc %d", s, rc);

    fz_check(fz_fast_full(json, i, 0),
             "parse_fast declined a mark message with \"%s\"", s);

    /* {"event":"stop","x":[[...]]}: the map is level 1, 8 levels in all */

    depth = size ? data[0] % 12 : 0;

    n = (size_t) snprintf((char *) json, sizeof(json),
                          "{\"event\":\"stop\",\"x\":");

    for (i = 0; i < depth; i++) {
        json[n++] = '[';
    }

    json[n++] = '1';

    for (i = 0; i < depth; i++) {
        json[n++] = ']';
    }

    json[n++] = '}';

    rc = fz_parse(json, n, 0, &ev, payload);

    fz_check((rc == 0) == (1 + depth <= 8), "%zu nested arrays: rc %d",
             depth, rc);

    /* the same with objects, which the scanner takes up to the limit */

    n = (size_t) snprintf((char *) json, sizeof(json),
                          "{\"event\":\"stop\",\"x\":");

    for (i = 0; i < depth; i++) {
        memcpy(json + n, "{\"x\":", 5);
        n += 5;
    }

    json[n++] = '"';
    json[n++] = '"';

    for (i = 0; i < depth; i++) {
        json[n++] = '}';
    }

    json[n++] = '}';

    rc = fz_parse(json, n, 0, &ev, payload);

    fz_check((rc == 0) == (1 + depth <= 8), "%zu nested objects: rc %d",
             depth, rc);
    fz_check(fz_fast_full(json, n, 0) == (rc == 0),
             "parse_fast and %zu nested objects", depth);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_message(data, size);
    fz_encode_decode(data, size);
    fz_decode_encode(data, size);
    fz_media(data, size);
    fz_fields(data, size);

    return 0;
}
