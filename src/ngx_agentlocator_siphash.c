
/*
 * SipHash-2-4, written from the paper ("SipHash: a fast short-input PRF",
 * https://www.aumasson.jp/siphash/siphash.pdf): two rounds per 8-byte
 * word, four to finish.  Checked against OpenSSL's SIPHASH MAC and the
 * paper's vectors by fuzz/siphash_check.c.
 */


#include "ngx_agentlocator_siphash.h"


#define ngx_agentlocator_rotl64(x, b)  (((x) << (b)) | ((x) >> (64 - (b))))

#define ngx_agentlocator_sipround(v0, v1, v2, v3)                             \
    v0 += v1; v1 = ngx_agentlocator_rotl64(v1, 13); v1 ^= v0;                 \
    v0 = ngx_agentlocator_rotl64(v0, 32);                                     \
    v2 += v3; v3 = ngx_agentlocator_rotl64(v3, 16); v3 ^= v2;                 \
    v0 += v3; v3 = ngx_agentlocator_rotl64(v3, 21); v3 ^= v0;                 \
    v2 += v1; v1 = ngx_agentlocator_rotl64(v1, 17); v1 ^= v2;                 \
    v2 = ngx_agentlocator_rotl64(v2, 32)


/* little-endian on every host: the paper's words are little-endian */

static uint64_t
ngx_agentlocator_le64(const unsigned char *p, size_t n)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        v |= (uint64_t) p[i] << (8 * i);
    }

    return v;
}


uint64_t
ngx_agentlocator_siphash24(
    const unsigned char key[NGX_AGENTLOCATOR_SIPHASH_KEY_LEN],
    const unsigned char *in, size_t len)
{
    size_t    left;
    uint64_t  k0, k1, v0, v1, v2, v3, m;

    k0 = ngx_agentlocator_le64(key, 8);
    k1 = ngx_agentlocator_le64(key + 8, 8);

    v0 = k0 ^ 0x736f6d6570736575ULL;
    v1 = k1 ^ 0x646f72616e646f6dULL;
    v2 = k0 ^ 0x6c7967656e657261ULL;
    v3 = k1 ^ 0x7465646279746573ULL;

    for (left = len; left >= 8; left -= 8, in += 8) {
        m = ngx_agentlocator_le64(in, 8);

        v3 ^= m;
        ngx_agentlocator_sipround(v0, v1, v2, v3);
        ngx_agentlocator_sipround(v0, v1, v2, v3);
        v0 ^= m;
    }

    /* the last 0-7 bytes, and the length's low byte on top */
    m = ngx_agentlocator_le64(in, left) | ((uint64_t) (len & 0xff) << 56);

    v3 ^= m;
    ngx_agentlocator_sipround(v0, v1, v2, v3);
    ngx_agentlocator_sipround(v0, v1, v2, v3);
    v0 ^= m;

    v2 ^= 0xff;
    ngx_agentlocator_sipround(v0, v1, v2, v3);
    ngx_agentlocator_sipround(v0, v1, v2, v3);
    ngx_agentlocator_sipround(v0, v1, v2, v3);
    ngx_agentlocator_sipround(v0, v1, v2, v3);

    return v0 ^ v1 ^ v2 ^ v3;
}
