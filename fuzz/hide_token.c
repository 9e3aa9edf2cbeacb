/*
 * libFuzzer: the Media Streams upgrade's request line with the stream
 * token hidden before nginx logs it (src/ngx_agentlocator_upgrade_req.c:
 * ngx_agentlocator_span_inside, ngx_agentlocator_hide_span, driven as
 * ngx_agentlocator_media_hide_token drives them).
 *
 * Bytes 0-7 are parameters, the rest a buffer.  Any span: a line and a
 * span are cut from the buffer (bytes 0-1 the line's start, 2-3 what is
 * cut from its end, 4-5 the span's start, 6 its length); the span is
 * inside exactly when a reference comparing offsets says so, a copy of
 * it elsewhere never is; a span inside comes out as a reference builds
 * it byte by byte (the line's bytes before it, "...", the bytes after
 * it), in exactly the room the handler allocates.  As the handler sees
 * it: a request line "GET <path>/{CallSid}/{token}[/][?<args>] HTTP/1.1"
 * from the buffer's bytes (byte 7 where the path ends and the query
 * begins), the token found in the URI by ngx_agentlocator_stream_path as
 * nginx's r->uri points into the line; the line must come out with
 * "..." for the token and every other byte as it was, and the token's
 * 32 bytes must not appear in it unless the path or the query has them
 * too.  A URI decoded into a copy is never inside the line.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_upgrade_req.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "hide_token: %s\n", what);                            \
        abort();                                                              \
    }


static size_t
count(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n)
{
    size_t  i, k;

    k = 0;

    for (i = 0; n && i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            k++;
        }
    }

    return k;
}


/* the line with [off, off + n) as "...", one byte at a time */

static size_t
ref_hide(uint8_t *out, const uint8_t *line, size_t len, size_t off, size_t n)
{
    size_t  i, k;

    k = 0;

    for (i = 0; i <= len; i++) {
        if (i == off) {
            out[k++] = '.';
            out[k++] = '.';
            out[k++] = '.';
        }

        if (i < len && (i < off || i >= off + n)) {
            out[k++] = line[i];
        }
    }

    return k;
}


/* hides the span as the handler does: in exactly the room it allocates */

static uint8_t *
hide(const uint8_t *line, size_t len, size_t off, size_t n, size_t *out_len)
{
    size_t    room;
    uint8_t  *out;

    room = len - n + NGX_AGENTLOCATOR_HIDDEN_LEN;

    out = malloc(room);
    CHECK(out, "out of memory");

    *out_len = ngx_agentlocator_hide_span(out, line, len, off, n);

    CHECK(*out_len == room, "not len - n + 3 bytes");
    CHECK(*out_len <= len + 3, "longer than the line and \"...\"");
    CHECK(n < 3 || *out_len <= len, "longer than the line it hides in");

    return out;
}


static void
check_span(const uint8_t *data, size_t size)
{
    int       inside, ref;
    size_t    a, b, c, n, len, out_len;
    uint8_t  *buf, *copy, *out, *expect;

    a = (data[0] << 8 | data[1]) % (size + 1);
    b = (data[2] << 8 | data[3]) % (size - a + 1);
    c = (data[4] << 8 | data[5]) % (size + 1);
    n = data[6] % (size - c + 1);

    data += 8;
    size -= 8;

    a = a < size ? a : size;
    b = b < size - a ? b : size - a;
    c = c < size ? c : size;
    n = n < size - c ? n : size - c;
    len = size - a - b;

    /* one buffer, so ASan sees any byte read outside it */
    buf = malloc(size ? size : 1);
    CHECK(buf, "out of memory");
    memcpy(buf, data, size);

    ref = a <= c && c + n <= a + len;
    inside = ngx_agentlocator_span_inside(buf + a, len, buf + c, n);

    CHECK(inside == ref, "inside: not the reference's verdict");

    if (n) {
        copy = malloc(n);
        CHECK(copy, "out of memory");
        memcpy(copy, buf + c, n);
        CHECK(!ngx_agentlocator_span_inside(buf + a, len, copy, n),
              "a copy of the span was taken for the line's own bytes");
        free(copy);
    }

    if (inside) {
        out = hide(buf + a, len, c - a, n, &out_len);

        expect = malloc(len + 3);
        CHECK(expect, "out of memory");

        CHECK(ref_hide(expect, buf + a, len, c - a, n) == out_len
              && memcmp(out, expect, out_len) == 0,
              "the line with the span hidden is not the reference's");

        free(expect);
        free(out);
    }

    free(buf);
}


static void
check_request(const uint8_t *data, size_t size)
{
    size_t                       i, split, len, plen, qlen, out_len, k;
    uint8_t                     *line, *out, *expect, *copy, *p;
    uint8_t                      sid[34], tok[32];
    ngx_agentlocator_form_str_t  s, t;

    static const char  hex[] = "0123456789abcdef";

    split = data[7];
    data += 8;
    size -= 8;

    /* the path and the query: the buffer, at most 1024 bytes of each */
    plen = split < size ? split : size;
    qlen = size - plen < 1024 ? size - plen : 1024;

    sid[0] = 'C';
    sid[1] = 'A';

    for (i = 2; i < 34; i++) {
        sid[i] = hex[(i < size ? data[size - 1 - i] : i) % 16];
    }

    for (i = 0; i < 32; i++) {
        /* the module makes tokens of lowercase hex */
        tok[i] = hex[(i < size ? data[i] ^ 0x5a : i * 7) % 16];
    }

    line = malloc(4 + plen + 1 + 34 + 1 + 32 + 1 + 1 + qlen + 9);
    CHECK(line, "out of memory");

    p = line;
    memcpy(p, "GET ", 4);
    p += 4;
    memcpy(p, data, plen);
    p += plen;
    *p++ = '/';
    memcpy(p, sid, 34);
    p += 34;
    *p++ = '/';
    memcpy(p, tok, 32);
    p += 32;

    if (split & 1) {
        *p++ = '/';
    }

    /* r->uri: up to the query, pointing into the request line */
    t.len = 0;
    CHECK(ngx_agentlocator_stream_path(line + 4, p - line - 4, &s, &t),
          "a stream URL made with a CallSid and a token was refused");
    CHECK(t.len == 32 && memcmp(t.data, tok, 32) == 0,
          "the URI did not give back its token");

    if (qlen) {
        *p++ = '?';
        memcpy(p, data + plen, qlen);
        p += qlen;
    }

    memcpy(p, " HTTP/1.1", 9);
    p += 9;
    len = p - line;

    CHECK(ngx_agentlocator_span_inside(line, len, t.data, t.len),
          "the URI's token is not inside the request line");

    out = hide(line, len, t.data - line, t.len, &out_len);

    /* what the logs must show: the line as made, "..." for the token */
    expect = malloc(len);
    CHECK(expect, "out of memory");

    k = 0;
    memcpy(expect, line, t.data - line);
    k += t.data - line;
    memcpy(expect + k, "...", 3);
    k += 3;
    memcpy(expect + k, t.data + 32, len - (t.data + 32 - line));
    k += len - (t.data + 32 - line);

    CHECK(k == out_len && memcmp(out, expect, k) == 0,
          "the request line was not kept but for \"...\" for the token");

    /* no hex digit in "...": no copy of the token can straddle it */
    CHECK(count(out, out_len, tok, 32)
          == count(line, t.data - line, tok, 32)
             + count(t.data + 32, len - (t.data + 32 - line), tok, 32)
          && count(out, out_len, tok, 32) < count(line, len, tok, 32),
          "the token survives where the path and the query do not have it");

    /* nginx decoded the URI into a copy: its token is not the line's */
    copy = malloc(32);
    CHECK(copy, "out of memory");
    memcpy(copy, t.data, 32);
    CHECK(!ngx_agentlocator_span_inside(line, len, copy, 32),
          "a decoded copy's token was taken for the line's own bytes");
    free(copy);

    free(expect);
    free(out);
    free(line);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) {
        return 0;
    }

    check_span(data, size);
    check_request(data, size);

    return 0;
}
