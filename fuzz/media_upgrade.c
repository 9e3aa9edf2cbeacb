/*
 * libFuzzer: what the Media Streams upgrade request says
 * (src/ngx_agentlocator_upgrade_req.c): its comma-separated header lists
 * and its stream URL's ".../{CallSid}/{token}".
 *
 * Byte 0 splits the rest into a header value and a request path.  The
 * header value is searched for "websocket", "upgrade" and a word of the
 * input by a reference written here from RFC 9110 §5.6.1 as the module
 * reads lists (items split at ",", spaces and tabs around them dropped,
 * ASCII case ignored).  The path is parsed by the module; what it finds
 * must be the path's own bytes, a valid CallSid and 32 bytes of token
 * right after it, the path being exactly what comes before, those, and at
 * most one "/" after; and a path made of the input's bytes, a CallSid and
 * a token (with and without a trailing "/") must give exactly those back.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_upgrade_req.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "media_upgrade: %s\n", what);                         \
        abort();                                                              \
    }


static uint8_t
lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}


static int
ref_list_has(const uint8_t *v, size_t len, const uint8_t *tok, size_t n)
{
    size_t  i, j, s, e, k;

    for (i = 0; i <= len; i = e + 1) {
        for (e = i; e < len && v[e] != ','; e++) {
            /* void */
        }

        s = i;

        while (s < e && (v[s] == ' ' || v[s] == '\t')) {
            s++;
        }

        k = e;

        while (k > s && (v[k - 1] == ' ' || v[k - 1] == '\t')) {
            k--;
        }

        if (k - s == n && n) {
            for (j = 0; j < n && lower(v[s + j]) == lower(tok[j]); j++) {
                /* void */
            }

            if (j == n) {
                return 1;
            }
        }

        if (e == len) {
            break;
        }
    }

    return 0;
}


static void
check_list(const uint8_t *data, size_t size)
{
    size_t   n;
    char     word[16];
    uint8_t  *copy;

    copy = malloc(size + 1);
    CHECK(copy, "out of memory");
    memcpy(copy, data, size);

    CHECK(ngx_agentlocator_list_has(copy, size, "websocket")
          == ref_list_has(copy, size, (const uint8_t *) "websocket", 9),
          "\"websocket\": not the reference's verdict");
    CHECK(ngx_agentlocator_list_has(copy, size, "upgrade")
          == ref_list_has(copy, size, (const uint8_t *) "upgrade", 7),
          "\"upgrade\": not the reference's verdict");

    /* a word of the input itself: its first letters, up to a separator */
    for (n = 0; n < size && n < sizeof(word) - 1 && data[n] != ','
                && data[n] != ' ' && data[n] != '\t' && data[n] != '\0';
         n++)
    {
        word[n] = (char) data[n];
    }

    word[n] = '\0';

    if (n) {
        CHECK(ngx_agentlocator_list_has(copy, size, word)
              == ref_list_has(copy, size, (uint8_t *) word, n),
              "a word of the input: not the reference's verdict");
        if (n == size || data[n] == ',') {
            CHECK(ngx_agentlocator_list_has(copy, size, word),
                  "the list's own first item was not found");
        }
    }

    free(copy);
}


static int
sid_ok(const uint8_t *s)
{
    size_t  i;

    if (s[0] != 'C' || s[1] != 'A') {
        return 0;
    }

    for (i = 2; i < 34; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
              || (s[i] >= 'A' && s[i] <= 'F')))
        {
            return 0;
        }
    }

    return 1;
}


static void
check_path(const uint8_t *data, size_t size)
{
    int                          ok;
    size_t                       end, tail;
    uint8_t                     *copy;
    ngx_agentlocator_form_str_t  sid, tok;

    copy = malloc(size + 1);
    CHECK(copy, "out of memory");
    memcpy(copy, data, size);

    ok = ngx_agentlocator_stream_path(copy, size, &sid, &tok);

    /* the reference: the end, less one "/", is "/" SID "/" 32 bytes */
    end = (size && data[size - 1] == '/') ? size - 1 : size;
    tail = 1 + 34 + 1 + 32;

    CHECK(ok == (end >= tail && data[end - tail] == '/'
                 && data[end - 32 - 1] == '/' && sid_ok(data + end - tail + 1)),
          "a stream path: not the reference's verdict");

    if (ok) {
        CHECK(sid.data == copy + end - tail + 1 && sid.len == 34
              && tok.data == copy + end - 32 && tok.len == 32,
              "the CallSid and token are not where the path has them");
    }

    free(copy);
}


/* the input's bytes as the location, then a CallSid and a token */

static void
check_made(const uint8_t *data, size_t size)
{
    size_t                       i, n, len;
    uint8_t                      path[128 + 70], sid[34], tok[32];
    ngx_agentlocator_form_str_t  s, t;

    static const char  hex[] = "0123456789abcdefABCDEF";

    n = size < 128 ? size : 128;
    memcpy(path, data, n);

    sid[0] = 'C';
    sid[1] = 'A';

    for (i = 2; i < 34; i++) {
        sid[i] = hex[(i < size ? data[size - 1 - i] : i) % 22];
    }

    for (i = 0; i < 32; i++) {
        /* the module makes tokens of lowercase hex */
        tok[i] = hex[(i < size ? data[i] : i) % 16];
    }

    len = n;
    path[len++] = '/';
    memcpy(path + len, sid, 34);
    len += 34;
    path[len++] = '/';
    memcpy(path + len, tok, 32);
    len += 32;

    if (size && (data[0] & 1)) {
        path[len++] = '/';
    }

    CHECK(ngx_agentlocator_stream_path(path, len, &s, &t),
          "a stream URL made with a CallSid and a token was refused");
    CHECK(s.len == 34 && memcmp(s.data, sid, 34) == 0
          && t.len == 32 && memcmp(t.data, tok, 32) == 0,
          "a stream URL did not give back its CallSid and token");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  split;

    if (size == 0) {
        return 0;
    }

    split = data[0] < size - 1 ? data[0] : size - 1;
    data++;
    size--;

    check_list(data, split);
    check_path(data + split, size - split);
    check_made(data, size);

    return 0;
}
