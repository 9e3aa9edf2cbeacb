
/*
 * libFuzzer target for the RFC 6455 frame parser (src/ngx_agentlocator_
 * ws_codec.c).  One input is parsed four ways: by a small non-resumable
 * reference model written from the RFC, whole, byte by byte, and in chunks
 * chosen by the input; all four must agree on every frame (opcode, length,
 * content hash, where it ended) and on how the stream ended (more, or fail
 * with which close code at which byte).  Any disagreement or broken
 * invariant abort()s with a description on stderr.
 *
 * Input: byte 0 picks max_message, byte 1 the chunk pattern, the rest is
 * the client byte stream.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_ws_codec.h"


#define FZ_MORE   NGX_AGENTLOCATOR_WS_MORE
#define FZ_FAIL   NGX_AGENTLOCATOR_WS_FAIL
#define FZ_FRAME  NGX_AGENTLOCATOR_WS_FRAME


typedef struct {
    unsigned     opcode;
    size_t       len;
    uint64_t     hash;
    size_t       end;         /* stream offset just past the frame */
} fz_frame_t;


typedef struct {
    const char  *how;
    fz_frame_t  *frames;
    size_t       nframes;
    size_t       cap;
    int          status;      /* FZ_MORE or FZ_FAIL */
    unsigned     close_code;
    size_t       fail_at;     /* stream offset of *pos after FAIL */
} fz_result_t;


typedef struct {
    unsigned     mode;
    unsigned     arg;
    uint32_t     rnd;
    size_t       n;           /* chunks handed out so far */
} fz_split_t;


static const unsigned char  *fz_stream;
static size_t                fz_len;
static size_t                fz_max;


#define fz_check(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "ws_frames: check failed: %s (%s:%d)\n  ",        \
                    #cond, __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n  max_message=%zu stream_len=%zu\n",           \
                    fz_max, fz_len);                                          \
            abort();                                                          \
        }                                                                     \
    } while (0)


static uint64_t
fz_hash(const unsigned char *p, size_t len)
{
    size_t    i;
    uint64_t  h;

    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }

    return h;
}


/* RFC 3629 table 3-7, independent of the project's decoder. */

static size_t
fz_utf8_char(const unsigned char *p, const unsigned char *last)
{
    size_t         n, i;
    unsigned char  lo, hi;

    lo = 0x80;
    hi = 0xbf;

    if (p[0] < 0x80) {
        return 1;

    } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        if (p[0] == 0xe0) {
            lo = 0xa0;
        } else if (p[0] == 0xed) {
            hi = 0x9f;
        }

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        if (p[0] == 0xf0) {
            lo = 0x90;
        } else if (p[0] == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


static int
fz_utf8_valid(const unsigned char *p, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        n = fz_utf8_char(p + i, p + len);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


static int
fz_close_code_ok(unsigned code)
{
    /* RFC 6455 §7.4.1/§7.4.2 and the IANA registry as of 2024 */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


static void
fz_push(fz_result_t *r, unsigned opcode, const unsigned char *data,
    size_t len, size_t end)
{
    fz_frame_t  *f;

    if (r->nframes == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->frames = realloc(r->frames, r->cap * sizeof(fz_frame_t));
        if (r->frames == NULL) {
            abort();
        }
    }

    f = &r->frames[r->nframes++];
    f->opcode = opcode;
    f->len = len;
    f->hash = len ? fz_hash(data, len) : fz_hash(NULL, 0);
    f->end = end;
}


/*
 * The reference: RFC 6455 §5 for a server reading client frames, with the
 * project's policies (message limit checked against the frame header,
 * 1009 for it, 1007 for bad UTF-8 in a text message or close reason,
 * 1002 for everything else; a header is judged once it is complete).
 */

static void
fz_reference(fz_result_t *r)
{
    int             masked;
    size_t          off, need, hlen, i, msg_len, total;
    unsigned        b0, b1, opcode, fin, msg_opcode, len7, code;
    uint64_t        len;
    unsigned char  *msg, ctl[125];
    const unsigned char  *s, *mask;

    s = fz_stream;
    off = 0;
    msg = NULL;
    msg_len = 0;
    msg_opcode = 0;

    r->how = "reference";
    r->status = FZ_MORE;

    /* the whole message in one buffer: at most the stream's size */
    msg = malloc(fz_len + 1);
    if (msg == NULL) {
        abort();
    }

    for ( ;; ) {
        if (fz_len - off < 2) {
            goto more;
        }

        b0 = s[off];
        b1 = s[off + 1];
        masked = (b1 & 0x80) != 0;
        len7 = b1 & 0x7f;

        need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);

        if (fz_len - off < need) {
            goto more;
        }

        hlen = need;
        fin = b0 >> 7;
        opcode = b0 & 0x0f;

        if (len7 == 126) {
            len = (uint64_t) s[off + 2] << 8 | s[off + 3];

        } else if (len7 == 127) {
            len = 0;
            for (i = 2; i < 10; i++) {
                len = len << 8 | s[off + i];
            }

        } else {
            len = len7;
        }

        if ((b0 & 0x70)                                   /* RSV1-3, §5.2 */
            || (opcode >= 3 && opcode <= 7) || opcode > 10  /* reserved */
            || (opcode == 0 && msg_opcode == 0)           /* §5.4 */
            || ((opcode == 1 || opcode == 2) && msg_opcode != 0)
            || ((opcode & 8) && !fin)                     /* §5.5 */
            || !masked                                    /* §5.1 */
            || (len7 == 126 && len < 126)                 /* §5.2 minimal */
            || (len7 == 127 && (len >> 63 || len <= 0xffff))
            || ((opcode & 8) && len > 125))
        {
            off += hlen;
            r->close_code = NGX_AGENTLOCATOR_WS_PROTOCOL;
            goto fail;
        }

        if (opcode == 1 || opcode == 2) {
            msg_len = 0;
        }

        if (!(opcode & 8) && len > fz_max - msg_len) {
            off += hlen;
            r->close_code = NGX_AGENTLOCATOR_WS_TOO_BIG;
            goto fail;
        }

        if ((uint64_t) (fz_len - off - hlen) < len) {
            goto more;
        }

        mask = s + off + hlen - 4;
        off += hlen;

        if (opcode & 8) {
            for (i = 0; i < len; i++) {
                ctl[i] = s[off + i] ^ mask[i & 3];
            }

            off += len;

            if (opcode == NGX_AGENTLOCATOR_WS_CLOSE && len) {
                code = len >= 2 ? (unsigned) ctl[0] << 8 | ctl[1] : 0;

                if (len == 1 || !fz_close_code_ok(code)) {
                    r->close_code = NGX_AGENTLOCATOR_WS_PROTOCOL;
                    goto fail;
                }

                if (!fz_utf8_valid(ctl + 2, len - 2)) {
                    r->close_code = NGX_AGENTLOCATOR_WS_BAD_DATA;
                    goto fail;
                }
            }

            fz_push(r, opcode, ctl, len, off);
            continue;
        }

        if (opcode != 0) {
            msg_opcode = opcode;
        }

        for (i = 0; i < len; i++) {
            msg[msg_len + i] = s[off + i] ^ mask[i & 3];
        }

        msg_len += len;
        off += len;

        if (!fin) {
            continue;
        }

        total = msg_len;
        opcode = msg_opcode;
        msg_opcode = 0;
        msg_len = 0;

        if (opcode == NGX_AGENTLOCATOR_WS_TEXT && !fz_utf8_valid(msg, total)) {
            r->close_code = NGX_AGENTLOCATOR_WS_BAD_DATA;
            goto fail;
        }

        fz_push(r, opcode, msg, total, off);
    }

fail:

    r->status = FZ_FAIL;
    r->fail_at = off;

more:

    free(msg);
}


/* The size of the next chunk (0: call the parser with nothing). */

static size_t
fz_next_chunk(fz_split_t *sp)
{
    size_t  n;

    n = sp->n++;

    switch (sp->mode) {

    case 0:     /* fixed size, 1..64 */
        return 1 + sp->arg;

    case 1:     /* pseudo-random, empty chunks included */
        sp->rnd ^= sp->rnd << 13;
        sp->rnd ^= sp->rnd >> 17;
        sp->rnd ^= sp->rnd << 5;
        return sp->rnd % (2 + sp->arg * 16);

    case 2:     /* 1, 2, ... 14: every header size, then again */
        return 1 + (n + sp->arg) % 14;

    default:    /* two pieces, split somewhere in the stream */
        return n == 0 ? fz_len * sp->arg / 64 : fz_len;
    }
}


static void
fz_run(fz_result_t *r, fz_split_t *sp)
{
    int                            rc;
    size_t                         off, chunk, empty;
    unsigned char                 *base, *pos, *last, *before;
    ngx_agentlocator_ws_frame_t    frame;
    ngx_agentlocator_ws_parser_t   p;

    /* a private copy, so ASan sees any read past the end of a chunk */
    base = malloc(fz_len ? fz_len : 1);
    if (base == NULL) {
        abort();
    }

    if (fz_len) {
        memcpy(base, fz_stream, fz_len);
    }

    ngx_agentlocator_ws_parser_init(&p, fz_max);

    r->status = FZ_MORE;
    off = 0;
    empty = 0;

    while (off < fz_len) {

        chunk = sp ? fz_next_chunk(sp) : fz_len;

        if (chunk == 0 && ++empty > 64) {
            chunk = 1;
        }

        if (chunk > fz_len - off) {
            chunk = fz_len - off;
        }

        pos = base + off;
        last = pos + chunk;

        for ( ;; ) {
            before = pos;
            memset(&frame, 0, sizeof(frame));

            rc = ngx_agentlocator_ws_parse(&p, &pos, last, &frame);

            fz_check(pos >= before && pos <= last,
                     "%s: pos moved outside [%zu, %zu]: %td", r->how,
                     (size_t) (before - base), (size_t) (last - base),
                     pos - base);
            fz_check(p.msg_len <= fz_max && p.msg_cap <= fz_max
                     && p.msg_len <= p.msg_cap,
                     "%s: message buffer len %zu cap %zu", r->how,
                     p.msg_len, p.msg_cap);
            fz_check(p.hdr_len <= NGX_AGENTLOCATOR_WS_MAX_HEADER
                     && p.hdr_need <= NGX_AGENTLOCATOR_WS_MAX_HEADER,
                     "%s: header len %u need %u", r->how, p.hdr_len,
                     p.hdr_need);

            if (rc == FZ_MORE) {
                fz_check(pos == last, "%s: MORE with %td bytes left",
                         r->how, last - pos);
                break;
            }

            if (rc == FZ_FAIL) {
                r->status = FZ_FAIL;
                r->close_code = p.close_code;
                r->fail_at = (size_t) (pos - base);

                fz_check(p.error != NULL, "%s: FAIL without an error",
                         r->how);
                fz_check(p.close_code == NGX_AGENTLOCATOR_WS_PROTOCOL
                         || p.close_code == NGX_AGENTLOCATOR_WS_BAD_DATA
                         || p.close_code == NGX_AGENTLOCATOR_WS_TOO_BIG
                         || p.close_code == NGX_AGENTLOCATOR_WS_INTERNAL,
                         "%s: FAIL with close code %u (%s)", r->how,
                         p.close_code, p.error);
                goto done;
            }

            fz_check(rc == FZ_FRAME, "%s: parse returned %d", r->how, rc);
            fz_check(pos > before, "%s: a frame without progress", r->how);
            fz_check(frame.len == 0 || frame.data != NULL,
                     "%s: %zu bytes at NULL", r->how, frame.len);

            switch (frame.opcode) {

            case NGX_AGENTLOCATOR_WS_TEXT:
                fz_check(frame.len == 0
                         || (ngx_agentlocator_utf8_valid(frame.data,
                                                         frame.len)
                             && fz_utf8_valid(frame.data, frame.len)),
                         "%s: text message of %zu bytes is not UTF-8",
                         r->how, frame.len);

                /* fall through */

            case NGX_AGENTLOCATOR_WS_BINARY:
                fz_check(frame.len <= fz_max,
                         "%s: message of %zu bytes", r->how, frame.len);
                break;

            case NGX_AGENTLOCATOR_WS_CLOSE:
                fz_check(frame.len != 1
                         && (frame.len == 0
                             || (fz_close_code_ok((unsigned) frame.data[0] << 8
                                                  | frame.data[1])
                                 && fz_utf8_valid(frame.data + 2,
                                                  frame.len - 2))),
                         "%s: bad close frame passed (%zu bytes)", r->how,
                         frame.len);

                /* fall through */

            case NGX_AGENTLOCATOR_WS_PING:
            case NGX_AGENTLOCATOR_WS_PONG:
                fz_check(frame.len <= NGX_AGENTLOCATOR_WS_MAX_CONTROL,
                         "%s: control frame of %zu bytes", r->how,
                         frame.len);
                break;

            default:
                fz_check(0, "%s: frame with opcode %u", r->how,
                         frame.opcode);
            }

            fz_push(r, frame.opcode, frame.data, frame.len,
                    (size_t) (pos - base));
        }

        off += chunk;
    }

done:

    ngx_agentlocator_ws_parser_free(&p);

    fz_check(p.msg == NULL && p.msg_cap == 0, "%s: free left a buffer",
             r->how);

    free(base);
}


/* WS_FRAMES_VERBOSE=1 build/ws_frames FILE: what the parser made of it */

static void
fz_dump(const fz_result_t *r)
{
    size_t  i;

    fprintf(stderr, "max_message %zu, %zu stream bytes\n", fz_max, fz_len);

    for (i = 0; i < r->nframes; i++) {
        fprintf(stderr, "  frame op %u len %zu hash %016llx end %zu\n",
                r->frames[i].opcode, r->frames[i].len,
                (unsigned long long) r->frames[i].hash, r->frames[i].end);
    }

    if (r->status == FZ_FAIL) {
        fprintf(stderr, "  FAIL close %u at %zu\n", r->close_code,
                r->fail_at);
    } else {
        fprintf(stderr, "  MORE\n");
    }
}


static void
fz_compare(const fz_result_t *a, const fz_result_t *b)
{
    size_t             i, n;
    const fz_frame_t  *x, *y;

    n = a->nframes < b->nframes ? a->nframes : b->nframes;

    for (i = 0; i < n; i++) {
        x = &a->frames[i];
        y = &b->frames[i];

        fz_check(x->opcode == y->opcode && x->len == y->len
                 && x->hash == y->hash && x->end == y->end,
                 "frame %zu: %s op %u len %zu hash %016llx end %zu, "
                 "%s op %u len %zu hash %016llx end %zu", i,
                 a->how, x->opcode, x->len, (unsigned long long) x->hash,
                 x->end,
                 b->how, y->opcode, y->len, (unsigned long long) y->hash,
                 y->end);
    }

    fz_check(a->nframes == b->nframes, "%s: %zu frames, %s: %zu frames",
             a->how, a->nframes, b->how, b->nframes);

    fz_check(a->status == b->status
             && (a->status != FZ_FAIL
                 || (a->close_code == b->close_code
                     && a->fail_at == b->fail_at)),
             "%s: %s close %u at %zu, %s: %s close %u at %zu",
             a->how, a->status == FZ_FAIL ? "FAIL" : "MORE", a->close_code,
             a->fail_at,
             b->how, b->status == FZ_FAIL ? "FAIL" : "MORE", b->close_code,
             b->fail_at);
}


/*
 * The server header encoder against the parser: a header for len bytes,
 * read back by hand (all lengths) and, once masked like a client's,
 * through the parser (lengths it can hold).
 */

static void
fz_header(uint64_t v, unsigned char key)
{
    int                            rc;
    size_t                         len, n, i, want, hlen;
    uint64_t                       got, top;
    unsigned                       opcode;
    unsigned char                  hdr[NGX_AGENTLOCATOR_WS_MAX_HEADER];
    unsigned char                 *frame, *pos, *sent;
    ngx_agentlocator_ws_frame_t    f;
    ngx_agentlocator_ws_parser_t   p;
    static const unsigned          opcodes[] = { 1, 2, 8, 9, 10, 0 };
    static const uint64_t          edges[] = {
        0, 1, 125, 126, 127, 0xffff, 0x10000, 0x10001, 0xffffffffULL,
        0x100000000ULL, 0x100000001ULL, 0xffffffffffffULL,
        0x7fffffffffffffffULL
    };

    /*
     * One time in eight an edge of the encoding, else the low bits pick
     * a length class and the rest a length in it.
     */
    top = (uint64_t) ((size_t) -1 >> 1);

    switch ((v >> 2) & 7 ? v & 3 : 4) {
    case 0:
        len = (size_t) ((v >> 2) % 126);
        break;
    case 1:
        len = (size_t) (126 + (v >> 2) % (0x10000 - 126));
        break;
    case 2:
        len = (size_t) (0x10000 + (v >> 2) % (0x100000000ULL - 0x10000));
        break;
    case 3:
        len = (size_t) (0x100000000ULL + (v >> 2) % (top - 0x100000000ULL));
        break;
    default:
        len = (size_t) edges[(v >> 5) % (sizeof(edges) / sizeof(edges[0]))];
        break;
    }

    opcode = opcodes[(v >> 60) % 6];

    memset(hdr, 0xee, sizeof(hdr));
    n = ngx_agentlocator_ws_header(hdr, opcode, len);

    want = len < 126 ? 2 : len <= 0xffff ? 4 : 10;

    fz_check(n == want, "ws_header(%zu) wrote %zu bytes, want %zu", len, n,
             want);
    fz_check(hdr[0] == (0x80 | opcode) && !(hdr[1] & 0x80),
             "ws_header(%zu, %u): first bytes %02x %02x", len, opcode,
             hdr[0], hdr[1]);
    fz_check(n == NGX_AGENTLOCATOR_WS_MAX_HEADER || hdr[n] == 0xee,
             "ws_header(%zu) wrote past its %zu bytes", len, n);

    if (n == 2) {
        got = hdr[1];

    } else if (n == 4) {
        got = (uint64_t) hdr[2] << 8 | hdr[3];

    } else {
        got = 0;
        for (i = 2; i < 10; i++) {
            got = got << 8 | hdr[i];
        }
    }

    fz_check(got == len && (n != 10 || hdr[1] == 127)
             && (n != 4 || hdr[1] == 126),
             "ws_header(%zu) encodes length %llu (header %02x %02x %02x "
             "%02x %02x %02x %02x %02x %02x %02x)", len,
             (unsigned long long) got, hdr[0], hdr[1], hdr[2], hdr[3],
             hdr[4], hdr[5], hdr[6], hdr[7], hdr[8], hdr[9]);

    if ((len > 2048 && ((v >> 40) & 0xff) != 0) || len > 70000
        || ((opcode & 8) && len > 125)
        || opcode == NGX_AGENTLOCATOR_WS_CONTINUATION)
    {
        /*
         * Too big to build (or, 255 times in 256, to be worth the time
         * over every input), or not a frame the parser takes alone.
         */
        return;
    }

    /* as a client would send it: mask bit, key, masked payload */

    hlen = n + 4;
    frame = malloc(hlen + len);
    if (frame == NULL) {
        abort();
    }

    memcpy(frame, hdr, n);
    frame[1] |= 0x80;
    frame[n] = key;
    frame[n + 1] = (unsigned char) ~key;
    frame[n + 2] = (unsigned char) (key * 7);
    frame[n + 3] = (unsigned char) (key ^ 0x5a);

    for (i = 0; i < len; i++) {
        /* printable ASCII, so a text payload is UTF-8 */
        frame[hlen + i] = (unsigned char) (0x20 + (i * 31 + key) % 95)
                          ^ frame[n + (i & 3)];
    }

    if (opcode == NGX_AGENTLOCATOR_WS_CLOSE && len) {
        /* a valid code; and no one-byte close payload */
        if (len == 1) {
            len = 0;
            frame[1] = 0x80;
            hlen = 6;
        } else {
            frame[hlen] = 0x03 ^ frame[n];
            frame[hlen + 1] = 0xe8 ^ frame[n + 1];
        }
    }

    /* the parser may unmask a whole frame in place: compare with a copy */
    sent = malloc(hlen + len);
    if (sent == NULL) {
        abort();
    }

    memcpy(sent, frame, hlen + len);

    ngx_agentlocator_ws_parser_init(&p, len);

    pos = frame;
    memset(&f, 0, sizeof(f));
    rc = ngx_agentlocator_ws_parse(&p, &pos, frame + hlen + len, &f);

    fz_check(rc == FZ_FRAME && f.opcode == opcode && f.len == len
             && pos == frame + hlen + len,
             "ws_header(%zu, %u) frame parsed as rc %d opcode %u len %zu "
             "(%s)", len, opcode, rc, f.opcode, f.len,
             p.error ? p.error : "no error");

    for (i = 0; i < len; i++) {
        fz_check(f.data[i] == (sent[hlen + i] ^ sent[n + (i & 3)]),
                 "ws_header(%zu) frame: byte %zu differs", len, i);
    }

    ngx_agentlocator_ws_parser_free(&p);
    free(sent);
    free(frame);
}


/* utf8_char and utf8_valid against the RFC 3629 table above */

static void
fz_utf8(const unsigned char *s, size_t len)
{
    size_t  i, a, b;

    fz_check(ngx_agentlocator_utf8_valid(s, len) == fz_utf8_valid(s, len),
             "utf8_valid of the stream says %d",
             ngx_agentlocator_utf8_valid(s, len));

    for (i = 0; i < len && i < 4096; i++) {
        a = ngx_agentlocator_utf8_char(s + i, s + len);
        b = fz_utf8_char(s + i, s + len);

        fz_check(a == b, "utf8_char at %zu (%02x): %zu, want %zu", i, s[i],
                 a, b);
    }
}


static void
fz_free(fz_result_t *r)
{
    free(r->frames);
    r->frames = NULL;
    r->nframes = 0;
    r->cap = 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t        i, j;
    uint64_t      v;
    fz_split_t    bytes, chunks;
    fz_result_t   ref, whole, one, split;
    unsigned char *copy;

    static const size_t  maxes[16] = {
        0, 1, 2, 16, 124, 125, 126, 127, 1023, 1024, 1025, 4096, 65535,
        65536, 65537, (size_t) -1
    };

    if (size < 2) {
        return 0;
    }

    fz_max = data[0] < 16 ? maxes[data[0]]
                          : 16 + (size_t) (data[0] - 16) * 274;   /* ..65502 */

    fz_stream = data + 2;
    fz_len = size - 2;

    memset(&ref, 0, sizeof(ref));
    memset(&whole, 0, sizeof(whole));
    memset(&one, 0, sizeof(one));
    memset(&split, 0, sizeof(split));

    fz_reference(&ref);

    whole.how = "whole";
    fz_run(&whole, NULL);

    one.how = "byte-by-byte";
    memset(&bytes, 0, sizeof(bytes));
    fz_run(&one, &bytes);

    split.how = "chunks";
    memset(&chunks, 0, sizeof(chunks));
    chunks.mode = data[1] & 3;
    chunks.arg = data[1] >> 2;
    chunks.rnd = 0x9e3779b9u ^ (uint32_t) size ^ (uint32_t) data[1] << 24;
    fz_run(&split, &chunks);

    if (getenv("WS_FRAMES_VERBOSE")) {
        fz_dump(&whole);
    }

    fz_compare(&whole, &one);
    fz_compare(&whole, &split);
    fz_compare(&ref, &whole);

    fz_free(&ref);
    fz_free(&whole);
    fz_free(&one);
    fz_free(&split);

    if (fz_len) {
        copy = malloc(fz_len);
        if (copy == NULL) {
            abort();
        }

        memcpy(copy, fz_stream, fz_len);
        fz_utf8(copy, fz_len);
        free(copy);
    }

    /* three header lengths from the first 24 bytes, zero-padded */

    for (i = 0; i < 3; i++) {
        v = 0;

        for (j = 0; j < 8; j++) {
            v = v << 8 | (i * 8 + j < size ? data[i * 8 + j] : 0);
        }

        fz_header(v, (unsigned char) (i < size ? data[size - 1 - i] : 0));
    }

    return 0;
}
