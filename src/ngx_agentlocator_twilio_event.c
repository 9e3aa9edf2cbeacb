
/*
 * Twilio Media Streams messages, parsed with yajl's callback API: the path
 * of each value (up to three keys deep) decides where it goes; everything
 * else is skipped.  Unknown keys and events are not errors (Twilio adds
 * fields); malformed JSON, a missing "event" and an invalid payload are.
 *
 * Fifty times a second per stream the message is a "media" one: objects
 * of plain ASCII strings.  For those a small scanner drives the same
 * callbacks with the same tokens in the same order, without yajl's
 * handle, lexer and buffers (yajl was the largest single item of a
 * frame's CPU).  Whatever it does not know it hands to yajl, which then
 * parses the message from the start; fuzz/twilio_event.c checks that the
 * two agree on every message the scanner takes.
 */


#include <string.h>
#include <stdlib.h>

#include <yajl/yajl_parse.h>

#include "ngx_agentlocator_twilio_event.h"


#define NGX_AGENTLOCATOR_EV_MAX_DEPTH  8

/*
 * yajl 2 cannot reset a handle, so every message needs a new one.  Its few
 * allocations (the handle, the lexer, the state stack, at times a decode
 * buffer) come from this arena instead of malloc, and it is rewound when a
 * parse starts: yajl_free() of the previous parse has released them all by
 * then, whatever way that parse ended.  One arena per process is enough: a
 * worker parses one message at a time, and nothing inside a parse starts
 * another.  A request that does not fit (a long string with escapes, which
 * yajl decodes into a growing buffer) goes to malloc.
 */
#define NGX_AGENTLOCATOR_EV_ARENA      8192
#define NGX_AGENTLOCATOR_EV_ARENA_HDR  16       /* the block's size, aligned */
#define ngx_agentlocator_ev_round(n)   (((n) + 15) & ~(size_t) 15)


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


typedef struct {
    const char  *name;
    size_t       len;
    unsigned     value;
} ngx_agentlocator_ev_word_t;


/* lengths are compared first: most keys differ there already */
#define ngx_agentlocator_ev_word(s, v)  { s, sizeof(s) - 1, v }

static const ngx_agentlocator_ev_word_t  ngx_agentlocator_ev_keys[] = {
    ngx_agentlocator_ev_word("event", key_event),
    ngx_agentlocator_ev_word("streamSid", key_stream_sid),
    ngx_agentlocator_ev_word("callSid", key_call_sid),
    ngx_agentlocator_ev_word("accountSid", key_account_sid),
    ngx_agentlocator_ev_word("start", key_start),
    ngx_agentlocator_ev_word("media", key_media),
    ngx_agentlocator_ev_word("mark", key_mark),
    ngx_agentlocator_ev_word("dtmf", key_dtmf),
    ngx_agentlocator_ev_word("stop", key_stop),
    ngx_agentlocator_ev_word("customParameters", key_custom),
    ngx_agentlocator_ev_word("mediaFormat", key_format),
    ngx_agentlocator_ev_word("payload", key_payload),
    ngx_agentlocator_ev_word("track", key_track),
    ngx_agentlocator_ev_word("name", key_name),
    ngx_agentlocator_ev_word("digit", key_digit),
    ngx_agentlocator_ev_word("encoding", key_encoding),
    ngx_agentlocator_ev_word("sampleRate", key_sample_rate),
    ngx_agentlocator_ev_word("channels", key_channels),
    ngx_agentlocator_ev_word("call_sid", key_param_call_sid),
    { NULL, 0, 0 }
};


static const ngx_agentlocator_ev_word_t  ngx_agentlocator_ev_events[] = {
    ngx_agentlocator_ev_word("media", NGX_AGENTLOCATOR_EV_MEDIA),
    ngx_agentlocator_ev_word("connected", NGX_AGENTLOCATOR_EV_CONNECTED),
    ngx_agentlocator_ev_word("start", NGX_AGENTLOCATOR_EV_START),
    ngx_agentlocator_ev_word("mark", NGX_AGENTLOCATOR_EV_MARK),
    ngx_agentlocator_ev_word("dtmf", NGX_AGENTLOCATOR_EV_DTMF),
    ngx_agentlocator_ev_word("stop", NGX_AGENTLOCATOR_EV_STOP),
    { NULL, 0, 0 }
};


static const char  *ngx_agentlocator_ev_names[] = {
    "unknown", "connected", "start", "media", "mark", "dtmf", "stop"
};


static uint64_t  ngx_agentlocator_ev_arena[NGX_AGENTLOCATOR_EV_ARENA / 8];
static size_t    ngx_agentlocator_ev_arena_used;


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


/* the value that table w gives the word s, or 0 when it has none */
static unsigned
ngx_agentlocator_ev_lookup(const ngx_agentlocator_ev_word_t *w,
    const unsigned char *s, size_t len)
{
    if (len == 0) {
        return 0;
    }

    for ( /* void */ ; w->name; w++) {
        /* a call to memcmp() only when the length and first byte match */
        if (w->len == len && (unsigned char) w->name[0] == s[0]
            && memcmp(s, w->name, len) == 0)
        {
            return w->value;
        }
    }

    return 0;
}


static int
ngx_agentlocator_ev_in_arena(void *ptr)
{
    uintptr_t  a, p;

    a = (uintptr_t) ngx_agentlocator_ev_arena;
    p = (uintptr_t) ptr;

    return p >= a && p < a + NGX_AGENTLOCATOR_EV_ARENA;
}


static void *
ngx_agentlocator_ev_malloc(void *ctx, size_t sz)
{
    size_t          need;
    unsigned char  *b;

    if (sz > NGX_AGENTLOCATOR_EV_ARENA) {
        return malloc(sz);
    }

    need = NGX_AGENTLOCATOR_EV_ARENA_HDR + ngx_agentlocator_ev_round(sz);

    if (need > NGX_AGENTLOCATOR_EV_ARENA - ngx_agentlocator_ev_arena_used) {
        return malloc(sz);
    }

    b = (unsigned char *) ngx_agentlocator_ev_arena
        + ngx_agentlocator_ev_arena_used;
    ngx_agentlocator_ev_arena_used += need;

    memcpy(b, &sz, sizeof(size_t));

    return b + NGX_AGENTLOCATOR_EV_ARENA_HDR;
}


static void *
ngx_agentlocator_ev_realloc(void *ctx, void *ptr, size_t sz)
{
    size_t          old, more;
    unsigned char  *p, *n;

    if (ptr == NULL) {
        return ngx_agentlocator_ev_malloc(ctx, sz);
    }

    if (!ngx_agentlocator_ev_in_arena(ptr)) {
        return realloc(ptr, sz);
    }

    p = ptr;
    memcpy(&old, p - NGX_AGENTLOCATOR_EV_ARENA_HDR, sizeof(size_t));

    if (sz <= old) {
        return ptr;
    }

    /* the stack grows by small steps: the newest block grows in place */
    if (p + ngx_agentlocator_ev_round(old)
        == (unsigned char *) ngx_agentlocator_ev_arena
           + ngx_agentlocator_ev_arena_used
        && sz <= NGX_AGENTLOCATOR_EV_ARENA)
    {
        more = ngx_agentlocator_ev_round(sz) - ngx_agentlocator_ev_round(old);

        if (more <= NGX_AGENTLOCATOR_EV_ARENA - ngx_agentlocator_ev_arena_used)
        {
            ngx_agentlocator_ev_arena_used += more;
            memcpy(p - NGX_AGENTLOCATOR_EV_ARENA_HDR, &sz, sizeof(size_t));
            return ptr;
        }
    }

    n = ngx_agentlocator_ev_malloc(ctx, sz);
    if (n == NULL) {
        return NULL;
    }

    memcpy(n, p, old);

    return n;
}


static void
ngx_agentlocator_ev_free(void *ctx, void *ptr)
{
    /* arena blocks go when the arena is rewound */
    if (!ngx_agentlocator_ev_in_arena(ptr)) {
        free(ptr);
    }
}


static yajl_alloc_funcs  ngx_agentlocator_ev_alloc_funcs = {
    ngx_agentlocator_ev_malloc,
    ngx_agentlocator_ev_realloc,
    ngx_agentlocator_ev_free,
    NULL
};


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

    if (path1(c, key_event)) {
        ev->has_event = 1;
        ev->event = ngx_agentlocator_ev_lookup(ngx_agentlocator_ev_events,
                                               s, len);

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

    c->key[c->depth] = ngx_agentlocator_ev_lookup(ngx_agentlocator_ev_keys,
                                                  s, len);

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


/*
 * every field but the buffers' bytes: zeroing the whole struct (most of a
 * kilobyte) on every frame cost more than the rest of a parse; the bytes
 * past each len are never read
 */

static void
ngx_agentlocator_ev_reset(ngx_agentlocator_twilio_event_t *ev)
{
    ev->event = NGX_AGENTLOCATOR_EV_UNKNOWN;
    ev->has_event = 0;
    ev->has_payload = 0;
    ev->stream_sid.len = 0;
    ev->call_sid.len = 0;
    ev->account_sid.len = 0;
    ev->param_call_sid.len = 0;
    ev->track.len = 0;
    ev->encoding.len = 0;
    ev->digit.len = 0;
    ev->name_len = 0;
    ev->sample_rate = 0;
    ev->channels = 0;
    ev->payload_len = 0;
    ev->error = NULL;
}


/* what the full parse checks after the JSON itself: 0, or -1 with error */

static int
ngx_agentlocator_ev_complete(ngx_agentlocator_ev_ctx_t *c)
{
    ngx_agentlocator_twilio_event_t  *ev = c->ev;

    if (c->depth != 0 || !ev->has_event) {
        ev->error = "message without an event";
        return -1;
    }

    if (ev->event == NGX_AGENTLOCATOR_EV_MEDIA && !ev->has_payload) {
        ev->error = "media message without a payload";
        return -1;
    }

    return 0;
}


/*
 * Bytes a plain string may hold: printable ASCII but the quote and the
 * backslash.  Escapes, control bytes and UTF-8 are yajl's to judge.
 */
static const unsigned char  ngx_agentlocator_ev_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,     /* DEL */
};


#define ngx_agentlocator_ev_ws(ch)                                            \
    ((ch) == ' ' || (ch) == '\n' || (ch) == '\r' || (ch) == '\t')


/*
 * A plain string at *p (past its opening quote): its length, with *p
 * moved past the closing quote; -1 when it is not plain or not closed.
 * The quote is found by memchr(); the bytes before it are checked eight
 * at a time (a payload is 216 of them on every frame), the tail one by one.
 */

#define ngx_agentlocator_ev_ones   0x0101010101010101ULL
#define ngx_agentlocator_ev_highs  0x8080808080808080ULL

static ptrdiff_t
ngx_agentlocator_ev_scan(const unsigned char **p, const unsigned char *end)
{
    uint64_t              w, bad;
    const unsigned char  *s, *q, *e;

    s = *p;

    e = memchr(s, '"', end - s);
    if (e == NULL) {
        return -1;
    }

    for (q = s; e - q >= 8; q += 8) {
        memcpy(&w, q, 8);

        /* a byte below 0x20, a byte of 0x7f or more, a backslash */
        bad = ((w - ngx_agentlocator_ev_ones * 0x20) & ~w)
              | ((w + ngx_agentlocator_ev_ones) | w)
              | (((w ^ ngx_agentlocator_ev_ones * '\\')
                  - ngx_agentlocator_ev_ones)
                 & ~(w ^ ngx_agentlocator_ev_ones * '\\'));

        if (bad & ngx_agentlocator_ev_highs) {
            return -1;
        }
    }

    for ( /* void */ ; q < e; q++) {
        if (!ngx_agentlocator_ev_plain[*q]) {
            return -1;
        }
    }

    *p = e + 1;

    return e - s;
}


static const unsigned char *
ngx_agentlocator_ev_skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && ngx_agentlocator_ev_ws(*p)) {
        p++;
    }

    return p;
}


/*
 * A quoted plain string at *p, which the caller has checked is before
 * end: its length, with *s at its first byte and *p past its closing
 * quote; -1 when there is no opening quote or the string is not plain.
 */

static ptrdiff_t
ngx_agentlocator_ev_quoted(const unsigned char **p, const unsigned char *end,
    const unsigned char **s)
{
    if (*(*p)++ != '"') {
        return -1;
    }

    *s = *p;

    return ngx_agentlocator_ev_scan(p, end);
}


int
ngx_agentlocator_twilio_event_parse_fast(const unsigned char *json,
    size_t len, ngx_agentlocator_twilio_event_t *ev)
{
    ptrdiff_t                   n;
    const unsigned char        *p, *end, *s;
    ngx_agentlocator_ev_ctx_t   c;
    enum {
        ev_open = 0,        /* just after '{': '}' or a key */
        ev_key,             /* a key, its ':' */
        ev_value,           /* a string, or '{' */
        ev_next             /* ',' and a key, or '}' */
    }                           state;

    ngx_agentlocator_ev_reset(ev);

    memset(&c, 0, sizeof(ngx_agentlocator_ev_ctx_t));
    c.ev = ev;

    end = json + len;
    p = ngx_agentlocator_ev_skip_ws(json, end);

    if (p == end || *p++ != '{') {
        return 1;
    }

    (void) ngx_agentlocator_ev_start_map(&c);
    state = ev_open;

    for ( ;; ) {

        /*
         * Written out, not ngx_agentlocator_ev_skip_ws(): here gcc 12 -O2
         * carries the state just set into its case, past the switch, and
         * through the call it does not (3-5% more instructions a message
         * under callgrind).
         */

        while (p < end && ngx_agentlocator_ev_ws(*p)) {
            p++;
        }

        if (p == end) {
            return 1;
        }

        switch (state) {

        case ev_open:
            if (*p == '}') {
                break;
            }

            /* fall through */

        case ev_key:
            n = ngx_agentlocator_ev_quoted(&p, end, &s);
            if (n < 0) {
                return 1;
            }

            (void) ngx_agentlocator_ev_map_key(&c, s, (size_t) n);

            p = ngx_agentlocator_ev_skip_ws(p, end);

            if (p == end || *p++ != ':') {
                return 1;
            }

            state = ev_value;
            continue;

        case ev_value:
            if (*p == '{') {
                p++;

                if (!ngx_agentlocator_ev_start_map(&c)) {
                    return 1;
                }

                state = ev_open;
                continue;
            }

            /* numbers, arrays, literals, escapes: yajl's */
            n = ngx_agentlocator_ev_quoted(&p, end, &s);
            if (n < 0) {
                return 1;
            }

            if (!ngx_agentlocator_ev_string(&c, s, (size_t) n)) {
                return 1;
            }

            state = ev_next;
            continue;

        default: /* ev_next */
            if (*p == ',') {
                p++;
                state = ev_key;
                continue;
            }

            if (*p != '}') {
                return 1;
            }

            break;
        }

        /* '}' */

        p++;
        (void) ngx_agentlocator_ev_end(&c);

        if (c.depth == 0) {
            break;
        }

        state = ev_next;
    }

    p = ngx_agentlocator_ev_skip_ws(p, end);

    if (p != end) {
        /* more after the message: yajl's error to give */
        return 1;
    }

    return ngx_agentlocator_ev_complete(&c) == 0 ? 0 : 1;
}


int
ngx_agentlocator_twilio_event_parse_full(const unsigned char *json,
    size_t len, ngx_agentlocator_twilio_event_t *ev)
{
    yajl_handle                 h;
    yajl_status                 st;
    ngx_agentlocator_ev_ctx_t   c;

    ngx_agentlocator_ev_reset(ev);

    memset(&c, 0, sizeof(ngx_agentlocator_ev_ctx_t));
    c.ev = ev;

    ngx_agentlocator_ev_arena_used = 0;

    h = yajl_alloc(&ngx_agentlocator_ev_callbacks,
                   &ngx_agentlocator_ev_alloc_funcs, &c);
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

    return ngx_agentlocator_ev_complete(&c);
}


int
ngx_agentlocator_twilio_event_parse(const unsigned char *json, size_t len,
    ngx_agentlocator_twilio_event_t *ev)
{
    if (ngx_agentlocator_twilio_event_parse_fast(json, len, ev) == 0) {
        return 0;
    }

    return ngx_agentlocator_twilio_event_parse_full(json, len, ev);
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
    size_t    i, n, pad, full;

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

    /* the quads before a padded one, without a test for padding in each */
    full = pad ? len - 4 : len;

    for (i = 0; i < full; i += 4) {
        a = ngx_agentlocator_b64[src[i]];
        b = ngx_agentlocator_b64[src[i + 1]];
        c = ngx_agentlocator_b64[src[i + 2]];
        d = ngx_agentlocator_b64[src[i + 3]];

        if ((a | b | c | d) < 0) {
            return 0;
        }

        dst[n] = (unsigned char) (a << 2 | b >> 4);
        dst[n + 1] = (unsigned char) (b << 4 | c >> 2);
        dst[n + 2] = (unsigned char) (c << 6 | d);
        n += 3;
    }

    if (pad) {
        a = ngx_agentlocator_b64[src[i]];
        b = ngx_agentlocator_b64[src[i + 1]];
        c = (pad == 2) ? 0 : ngx_agentlocator_b64[src[i + 2]];

        if ((a | b | c) < 0) {
            return 0;
        }

        dst[n++] = (unsigned char) (a << 2 | b >> 4);

        if (pad == 1) {
            dst[n++] = (unsigned char) (b << 4 | c >> 2);
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
