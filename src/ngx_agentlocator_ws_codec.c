
/*
 * RFC 6455 frame codec (see the header).  The parser is a state machine
 * that can stop after any byte and resume with the next read, and can
 * return several frames from one read.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_ws_codec.h"


enum {
    ws_header = 0,
    ws_payload
};


static int ngx_agentlocator_ws_in_place(ngx_agentlocator_ws_parser_t *p,
    unsigned char **pos, unsigned char *src,
    ngx_agentlocator_ws_frame_t *frame);
static unsigned ngx_agentlocator_ws_unmask(unsigned char *dst,
    const unsigned char *src, size_t n, const unsigned char *mask,
    uint64_t off);
static int ngx_agentlocator_ws_header_done(ngx_agentlocator_ws_parser_t *p);
static int ngx_agentlocator_ws_frame_done(ngx_agentlocator_ws_parser_t *p,
    ngx_agentlocator_ws_frame_t *frame);
static int ngx_agentlocator_ws_fail(ngx_agentlocator_ws_parser_t *p,
    unsigned code, const char *error);


void
ngx_agentlocator_ws_parser_init(ngx_agentlocator_ws_parser_t *p,
    size_t max_message)
{
    memset(p, 0, sizeof(ngx_agentlocator_ws_parser_t));

    p->max_message = max_message;
    p->hdr_need = 2;
}


void
ngx_agentlocator_ws_parser_free(ngx_agentlocator_ws_parser_t *p)
{
    free(p->msg);

    p->msg = NULL;
    p->msg_cap = 0;
    p->msg_len = 0;
}


/*
 * Between messages the parser needs no buffer of its own: one that a
 * message split across reads made goes back, so an idle stream holds none.
 */

void
ngx_agentlocator_ws_parser_release(ngx_agentlocator_ws_parser_t *p)
{
    if (p->msg && p->msg_opcode == 0) {
        ngx_agentlocator_ws_parser_free(p);
    }
}


int
ngx_agentlocator_ws_parse(ngx_agentlocator_ws_parser_t *p,
    unsigned char **pos, unsigned char *last,
    ngx_agentlocator_ws_frame_t *frame)
{
    size_t          n, cap;
    unsigned        need, high;
    uint64_t        left;
    unsigned char  *src, *dst, *grown;

    src = *pos;

    for ( ;; ) {

        switch (p->state) {

        case ws_header:

            if (p->hdr_len == 0 && last - src >= 2) {
                /*
                 * the usual case: the whole header is in this read, so it
                 * is taken at once rather than a byte per loop
                 */
                need = 2 + ((src[1] & 0x7f) == 126 ? 2
                            : (src[1] & 0x7f) == 127 ? 8 : 0)
                       + ((src[1] & 0x80) ? 4 : 0);

                if ((size_t) (last - src) >= need) {
                    memcpy(p->hdr, src, need);
                    p->hdr_len = need;
                    p->hdr_need = need;
                    src += need;
                }
            }

            while (p->hdr_len < p->hdr_need) {
                if (src == last) {
                    *pos = src;
                    return NGX_AGENTLOCATOR_WS_MORE;
                }

                p->hdr[p->hdr_len++] = *src++;

                if (p->hdr_len == 2) {
                    /* the second byte says how long the header is */
                    p->hdr_need = 2 + ((p->hdr[1] & 0x7f) == 126 ? 2
                                       : (p->hdr[1] & 0x7f) == 127 ? 8 : 0)
                                  + ((p->hdr[1] & 0x80) ? 4 : 0);
                }
            }

            if (ngx_agentlocator_ws_header_done(p) != 0) {
                *pos = src;
                return NGX_AGENTLOCATOR_WS_FAIL;
            }

            if ((p->opcode == NGX_AGENTLOCATOR_WS_TEXT
                 || p->opcode == NGX_AGENTLOCATOR_WS_BINARY)
                && p->fin
                && p->payload_len <= (uint64_t) (last - src))
            {
                /*
                 * a whole message in this read, as nearly every Twilio
                 * frame is: unmasked where it lies, not copied into the
                 * stream's own buffer, which stays cold and unallocated
                 */
                return ngx_agentlocator_ws_in_place(p, pos, src, frame);
            }

            p->state = ws_payload;

            /* fall through */

        case ws_payload:

            left = p->payload_len - p->payload_done;
            n = (size_t) ((uint64_t) (last - src) < left
                          ? (uint64_t) (last - src) : left);

            if (n == 0) {
                /* an empty frame, or its header ended the read */
                dst = NULL;

            } else if (p->opcode & 0x8) {
                dst = p->control + p->payload_done;

            } else {
                if (p->msg_len + n > p->msg_cap) {
                    /* grow geometrically; the header check bounded the total */
                    cap = p->msg_cap ? p->msg_cap : 1024;

                    while (cap < p->msg_len + n) {
                        cap *= 2;
                    }

                    if (cap > p->max_message) {
                        cap = p->max_message;
                    }

                    grown = realloc(p->msg, cap);
                    if (grown == NULL) {
                        *pos = src;
                        return ngx_agentlocator_ws_fail(p,
                                   NGX_AGENTLOCATOR_WS_INTERNAL,
                                   "out of memory");
                    }

                    p->msg = grown;
                    p->msg_cap = cap;
                }

                dst = p->msg + p->msg_len;
                p->msg_len += n;
            }

            if (n) {
                high = ngx_agentlocator_ws_unmask(dst, src, n, p->mask,
                                                  p->payload_done);

                if (!(p->opcode & 0x8)) {
                    /* a control frame inside a message is not its text */
                    p->msg_high |= high;
                }
            }

            src += n;
            p->payload_done += n;

            if (p->payload_done < p->payload_len) {
                *pos = src;
                return NGX_AGENTLOCATOR_WS_MORE;
            }

            /* the next frame's header starts here, whatever this one was */

            p->state = ws_header;
            p->hdr_len = 0;
            p->hdr_need = 2;

            switch (ngx_agentlocator_ws_frame_done(p, frame)) {

            case NGX_AGENTLOCATOR_WS_FRAME:
                *pos = src;
                return NGX_AGENTLOCATOR_WS_FRAME;

            case NGX_AGENTLOCATOR_WS_FAIL:
                *pos = src;
                return NGX_AGENTLOCATOR_WS_FAIL;

            default: /* a fragment of a longer message */
                break;
            }
        }
    }
}


/*
 * A text or binary frame with FIN whose payload is all in the input: the
 * message is that payload, unmasked in the input itself.
 */

static int
ngx_agentlocator_ws_in_place(ngx_agentlocator_ws_parser_t *p,
    unsigned char **pos, unsigned char *src,
    ngx_agentlocator_ws_frame_t *frame)
{
    size_t    n;
    unsigned  high;

    n = (size_t) p->payload_len;

    high = (n == 0) ? 0
                    : ngx_agentlocator_ws_unmask(src, src, n, p->mask, 0);

    frame->opcode = p->opcode;
    frame->data = src;
    frame->len = n;

    *pos = src + n;

    p->payload_done = n;
    p->msg_opcode = 0;
    p->state = ws_header;
    p->hdr_len = 0;
    p->hdr_need = 2;

    if (frame->opcode == NGX_AGENTLOCATOR_WS_TEXT
        && (high & 0x80)
        && !ngx_agentlocator_utf8_valid(frame->data, n))
    {
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_BAD_DATA,
                                        "text message is not UTF-8");
    }

    return NGX_AGENTLOCATOR_WS_FRAME;
}


/*
 * dst = src XOR the mask, 8 bytes at a time: the mask is laid out from
 * payload offset off, so a frame split across reads resumes with the right
 * mask byte.  Loads and stores go through memcpy, as src and dst may have
 * any alignment; dst may be src.  Returns the OR of the bytes written: its
 * top bit says whether any of them is outside ASCII.
 */

static unsigned
ngx_agentlocator_ws_unmask(unsigned char *dst, const unsigned char *src,
    size_t n, const unsigned char *mask, uint64_t off)
{
    size_t          i;
    uint64_t        m, v, any;
    unsigned        high;
    unsigned char   rot[8];

    for (i = 0; i < 8; i++) {
        rot[i] = mask[(off + i) & 3];
    }

    memcpy(&m, rot, 8);

    any = 0;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&v, src + i, 8);
        v ^= m;
        any |= v;
        memcpy(dst + i, &v, 8);
    }

    high = 0;

    for ( /* void */ ; i < n; i++) {
        /* rot repeats every 4 bytes: rot[i & 7] is mask[(off + i) & 3] */
        dst[i] = src[i] ^ rot[i & 7];
        high |= dst[i];
    }

    any |= any >> 32;
    any |= any >> 16;
    any |= any >> 8;

    return high | (unsigned) (any & 0xff);
}


static int
ngx_agentlocator_ws_header_done(ngx_agentlocator_ws_parser_t *p)
{
    unsigned   i, len7;
    uint64_t   len;

    if (p->hdr[0] & 0x70) {
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                        "reserved bits set");
    }

    p->fin = p->hdr[0] >> 7;
    p->opcode = p->hdr[0] & 0x0f;

    switch (p->opcode) {

    case NGX_AGENTLOCATOR_WS_CONTINUATION:
        if (p->msg_opcode == 0) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "continuation without a message");
        }

        break;

    case NGX_AGENTLOCATOR_WS_TEXT:
    case NGX_AGENTLOCATOR_WS_BINARY:
        if (p->msg_opcode != 0) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "new message inside a fragmented "
                                            "one");
        }

        p->msg_opcode = p->opcode;
        p->msg_len = 0;
        p->msg_high = 0;
        break;

    case NGX_AGENTLOCATOR_WS_CLOSE:
    case NGX_AGENTLOCATOR_WS_PING:
    case NGX_AGENTLOCATOR_WS_PONG:
        if (!p->fin) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "fragmented control frame");
        }

        break;

    default:
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                        "unknown opcode");
    }

    if (!(p->hdr[1] & 0x80)) {
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                        "unmasked client frame");
    }

    len7 = p->hdr[1] & 0x7f;

    if (len7 == 126) {
        len = ((uint64_t) p->hdr[2] << 8) | p->hdr[3];

        if (len < 126) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "non-minimal length");
        }

        i = 4;

    } else if (len7 == 127) {
        len = 0;

        for (i = 2; i < 10; i++) {
            len = (len << 8) | p->hdr[i];
        }

        if (len >> 63) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "length has its top bit set");
        }

        if (len <= 0xffff) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "non-minimal length");
        }

    } else {
        len = len7;
        i = 2;
    }

    memcpy(p->mask, &p->hdr[i], 4);

    if (p->opcode & 0x8) {
        if (len > NGX_AGENTLOCATOR_WS_MAX_CONTROL) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "control frame over 125 bytes");
        }

    } else if (len > p->max_message - p->msg_len) {
        /* refused before a byte of it is read */
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_TOO_BIG,
                                        "message too big");
    }

    p->payload_len = len;
    p->payload_done = 0;

    return 0;
}


static int
ngx_agentlocator_ws_frame_done(ngx_agentlocator_ws_parser_t *p,
    ngx_agentlocator_ws_frame_t *frame)
{
    unsigned  code;

    if (p->opcode & 0x8) {
        frame->opcode = p->opcode;
        frame->data = p->control;
        frame->len = (size_t) p->payload_len;

        if (p->opcode != NGX_AGENTLOCATOR_WS_CLOSE) {
            return NGX_AGENTLOCATOR_WS_FRAME;
        }

        if (frame->len == 1) {
            return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_PROTOCOL,
                                            "close frame of one byte");
        }

        if (frame->len >= 2) {
            code = (p->control[0] << 8) | p->control[1];

            if (!ngx_agentlocator_ws_close_code_valid(code)) {
                return ngx_agentlocator_ws_fail(p,
                                                NGX_AGENTLOCATOR_WS_PROTOCOL,
                                                "invalid close code");
            }

            if (!ngx_agentlocator_utf8_valid(p->control + 2, frame->len - 2))
            {
                return ngx_agentlocator_ws_fail(p,
                                                NGX_AGENTLOCATOR_WS_BAD_DATA,
                                                "close reason is not UTF-8");
            }
        }

        return NGX_AGENTLOCATOR_WS_FRAME;
    }

    if (!p->fin) {
        return NGX_AGENTLOCATOR_WS_MORE;
    }

    frame->opcode = p->msg_opcode;
    frame->data = p->msg;
    frame->len = p->msg_len;

    p->msg_opcode = 0;
    p->msg_len = 0;

    /* ASCII, as Twilio's JSON is, needs no second pass */
    if (frame->opcode == NGX_AGENTLOCATOR_WS_TEXT
        && (p->msg_high & 0x80)
        && !ngx_agentlocator_utf8_valid(frame->data, frame->len))
    {
        return ngx_agentlocator_ws_fail(p, NGX_AGENTLOCATOR_WS_BAD_DATA,
                                        "text message is not UTF-8");
    }

    return NGX_AGENTLOCATOR_WS_FRAME;
}


static int
ngx_agentlocator_ws_fail(ngx_agentlocator_ws_parser_t *p, unsigned code,
    const char *error)
{
    p->close_code = code;
    p->error = error;

    return NGX_AGENTLOCATOR_WS_FAIL;
}


/* A server frame header (FIN, never masked) for a payload of len bytes. */

size_t
ngx_agentlocator_ws_header(unsigned char *buf, unsigned opcode, size_t len)
{
    buf[0] = (unsigned char) (0x80 | opcode);

    if (len < 126) {
        buf[1] = (unsigned char) len;
        return 2;
    }

    if (len <= 0xffff) {
        buf[1] = 126;
        buf[2] = (unsigned char) (len >> 8);
        buf[3] = (unsigned char) len;
        return 4;
    }

    buf[1] = 127;
    buf[2] = (unsigned char) ((uint64_t) len >> 56);
    buf[3] = (unsigned char) ((uint64_t) len >> 48);
    buf[4] = (unsigned char) ((uint64_t) len >> 40);
    buf[5] = (unsigned char) ((uint64_t) len >> 32);
    buf[6] = (unsigned char) (len >> 24);
    buf[7] = (unsigned char) (len >> 16);
    buf[8] = (unsigned char) (len >> 8);
    buf[9] = (unsigned char) len;

    return 10;
}


/* Codes a peer may send (RFC 6455 §7.4; 1004-1006 and 1015 are reserved). */

int
ngx_agentlocator_ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


/*
 * The length of the well-formed UTF-8 character at p, or 0: overlong
 * forms, surrogates and code points past U+10FFFF are refused (RFC 3629).
 */

size_t
ngx_agentlocator_utf8_char(const unsigned char *p, const unsigned char *last)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (*p < 0x80) {
        return 1;
    }

    if ((*p & 0xe0) == 0xc0) {
        n = 2; cp = *p & 0x1f; min = 0x80;

    } else if ((*p & 0xf0) == 0xe0) {
        n = 3; cp = *p & 0x0f; min = 0x800;

    } else if ((*p & 0xf8) == 0xf0) {
        n = 4; cp = *p & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


int
ngx_agentlocator_utf8_valid(const unsigned char *p, size_t len)
{
    size_t                n;
    uint64_t              v;
    const unsigned char  *last;

    if (len == 0) {
        /* p may be NULL for an empty message */
        return 1;
    }

    last = p + len;

    while (p < last) {
        /* ASCII runs are the common case in JSON: 8 bytes at a time */
        if (last - p >= 8) {
            memcpy(&v, p, 8);

            if ((v & 0x8080808080808080ULL) == 0) {
                p += 8;
                continue;
            }
        }

        if (*p < 0x80) {
            p++;
            continue;
        }

        n = ngx_agentlocator_utf8_char(p, last);

        if (n == 0) {
            return 0;
        }

        p += n;
    }

    return 1;
}
