/*
 * libFuzzer: the flat JSON object reader and the JSON copier
 * (src/ngx_agentlocator_json.c), on whatever a client or the database
 * sends.
 *
 * Every field found must be of a kind it accepts, a string within its
 * bound and inside the caller's buffer, each key at most once.  A text the
 * copier accepts must come out as JSON that yajl parses and that copies
 * again to the very same bytes.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "ngx_agentlocator_json.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "json_fields: %s\n", what);                           \
        abort();                                                              \
    }


static void
fields(const uint8_t *data, size_t size)
{
    size_t          i;
    const char     *err;
    unsigned char  *buf;

    ngx_agentlocator_json_field_t  f[] = {
        { "from", NGX_AGENTLOCATOR_JSON_STRING, 16, 0, NULL, 0, 0, 0, 0 },
        { "text", NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          64, 0, NULL, 0, 0, 0, 0 },
        { "id", NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_STRING,
          18, 0, NULL, 0, 0, 0, 0 },
        { "exp", NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_NUMBER,
          0, 0, NULL, 0, 0, 0, 0 },
        { "ok", NGX_AGENTLOCATOR_JSON_BOOL, 0, 0, NULL, 0, 0, 0, 0 },
        { "any", ~0u, 8, 0, NULL, 0, 0, 0, 0 }
    };

    buf = malloc(size + 1);
    CHECK(buf, "out of memory");

    err = ngx_agentlocator_json_fields(data, size, f, 6, buf, size + 1);

    for (i = 0; i < 6; i++) {
        if (err || f[i].kind == 0) {
            continue;
        }

        CHECK((f[i].accept & f[i].kind) == f[i].kind, "a kind not accepted");

        if (f[i].kind == NGX_AGENTLOCATOR_JSON_STRING) {
            CHECK(f[i].len <= f[i].max_len, "a string over its bound");
            CHECK(f[i].len == 0
                  || (f[i].str >= buf && f[i].str + f[i].len <= buf + size + 1),
                  "a string outside the buffer");
            CHECK(memchr(f[i].str, '\0', f[i].len) == NULL, "a NUL in a string");
        }
    }

    free(buf);
}


static void
embed(const uint8_t *data, size_t size)
{
    size_t                len1, len2;
    yajl_gen              g1, g2;
    unsigned char        *copy;
    const unsigned char  *out1, *out2;

    g1 = yajl_gen_alloc(NULL);
    CHECK(g1, "out of memory");

    if (ngx_agentlocator_json_embed(g1, data, size) != 0
        || yajl_gen_get_buf(g1, &out1, &len1) != yajl_gen_status_ok)
    {
        yajl_gen_free(g1);
        return;
    }

    copy = malloc(len1 ? len1 : 1);
    CHECK(copy, "out of memory");
    memcpy(copy, out1, len1);

    g2 = yajl_gen_alloc(NULL);
    CHECK(g2, "out of memory");
    CHECK(ngx_agentlocator_json_embed(g2, copy, len1) == 0,
          "the copy is not JSON");
    CHECK(yajl_gen_get_buf(g2, &out2, &len2) == yajl_gen_status_ok,
          "the second copy failed");
    CHECK(len1 == len2 && memcmp(copy, out2, len1) == 0,
          "copying twice changed the bytes");

    free(copy);
    yajl_gen_free(g2);
    yajl_gen_free(g1);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fields(data, size);
    embed(data, size);

    return 0;
}
