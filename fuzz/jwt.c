/*
 * libFuzzer: the API's bearer tokens (src/ngx_agentlocator_jwt.c).
 *
 * The input is tried as a token as it is: whatever it is, a token the
 * module accepts must carry the HMAC-SHA256, under the key, of its first
 * two parts (checked here with OpenSSL directly): no input gets in without
 * the key.  The input is also signed as a token's claims, as tools/token
 * would sign them: accepted or not by its content, and never accepted
 * with one bit of its signature changed.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_agentlocator_jwt.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "jwt: %s\n", what);                                   \
        abort();                                                              \
    }

#define NOW  1800000000LL


static const unsigned char  key[] = "fuzz-key-0123456789-0123456789-abcdef";
static ngx_agentlocator_jwt_key_t  jwt_key;
static int                         jwt_key_ready;


static size_t
b64url(const uint8_t *src, size_t len, char *dst)
{
    static const char  a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t  i, n;

    for (i = 0, n = 0; i + 2 < len; i += 3) {
        dst[n++] = a[src[i] >> 2];
        dst[n++] = a[(src[i] & 3) << 4 | src[i + 1] >> 4];
        dst[n++] = a[(src[i + 1] & 15) << 2 | src[i + 2] >> 6];
        dst[n++] = a[src[i + 2] & 63];
    }

    if (len - i == 1) {
        dst[n++] = a[src[i] >> 2];
        dst[n++] = a[(src[i] & 3) << 4];

    } else if (len - i == 2) {
        dst[n++] = a[src[i] >> 2];
        dst[n++] = a[(src[i] & 3) << 4 | src[i + 1] >> 4];
        dst[n++] = a[(src[i + 1] & 15) << 2];
    }

    return n;
}


static int
b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}


/* the signature part, decoded loosely: what the MAC must equal */
static size_t
sig_bytes(const uint8_t *s, size_t len, unsigned char *out, size_t cap)
{
    size_t    i, n;
    uint32_t  acc;
    int       bits, v;

    for (i = 0, n = 0, acc = 0, bits = 0; i < len; i++) {
        v = b64url_value(s[i]);
        if (v < 0) {
            return (size_t) -1;
        }

        acc = acc << 6 | (uint32_t) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return (size_t) -1;
            }
            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    return n;
}


static void
as_token(const uint8_t *data, size_t size)
{
    size_t                          n, dot2;
    unsigned int                    mac_len;
    const char                     *err;
    unsigned char                   mac[EVP_MAX_MD_SIZE], sig[64];
    ngx_agentlocator_jwt_claims_t   claims;

    err = ngx_agentlocator_jwt_verify(data, size, &jwt_key, NOW, &claims);
    if (err) {
        return;
    }

    for (dot2 = size; dot2 > 0 && data[dot2 - 1] != '.'; dot2--) {
        /* void */
    }

    CHECK(dot2 > 0, "accepted without a second dot");

    HMAC(EVP_sha256(), key, sizeof(key) - 1, data, dot2 - 1, mac, &mac_len);
    n = sig_bytes(data + dot2, size - dot2, sig, sizeof(sig));

    CHECK(n == mac_len && memcmp(sig, mac, mac_len) == 0,
          "accepted a token not signed with the key");
    CHECK(claims.business_id > 0 && claims.role[0], "accepted without claims");
}


static void
signed_claims(const uint8_t *data, size_t size)
{
    size_t                          n, i;
    char                           *tok;
    unsigned int                    mac_len;
    unsigned char                   mac[EVP_MAX_MD_SIZE];
    const char                     *err;
    ngx_agentlocator_jwt_claims_t   claims;
    static const char               header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

    if (size > 2000) {
        return;
    }

    tok = malloc(sizeof(header) + size * 2 + 64);
    CHECK(tok, "out of memory");

    n = sizeof(header) - 1;
    memcpy(tok, header, n);
    tok[n++] = '.';
    n += b64url(data, size, tok + n);

    HMAC(EVP_sha256(), key, sizeof(key) - 1, (unsigned char *) tok, n, mac,
         &mac_len);
    tok[n++] = '.';
    i = n;
    n += b64url(mac, mac_len, tok + n);

    err = ngx_agentlocator_jwt_verify((unsigned char *) tok, n, &jwt_key, NOW,
                                      &claims);
    if (err == NULL) {
        CHECK(claims.business_id > 0 && claims.role[0]
              && claims.exp + NGX_AGENTLOCATOR_JWT_LEEWAY > NOW,
              "accepted claims it should not");

        /* one bit of the signature changed: never accepted */
        tok[i + (size % (n - i))] ^= 0x01;
        err = ngx_agentlocator_jwt_verify((unsigned char *) tok, n, &jwt_key,
                                          NOW, &claims);
        CHECK(err != NULL, "accepted a changed signature");
    }

    free(tok);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!jwt_key_ready) {
        ngx_agentlocator_jwt_key_init(&jwt_key, key, sizeof(key) - 1);
        jwt_key_ready = 1;
    }

    as_token(data, size);
    signed_claims(data, size);

    return 0;
}
