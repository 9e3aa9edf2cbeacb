/*
 * libFuzzer: the registry's keyed hash (src/ngx_agentlocator_siphash.c)
 * against OpenSSL's SIPHASH MAC, an implementation independent of ours.
 * The input is a 16-byte key, then the message; they must agree on every
 * input, and on the vectors of the SipHash paper's appendix (key 00..0f,
 * message 00..n-1) before any input is run.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "ngx_agentlocator_siphash.h"


static EVP_MAC *mac;


static uint64_t
openssl_siphash(const uint8_t *key, const uint8_t *msg, size_t len)
{
    size_t         size = 8, out_len;
    uint8_t        out[8];
    uint64_t       v = 0;
    EVP_MAC_CTX   *ctx;
    OSSL_PARAM     params[2];

    params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
    params[1] = OSSL_PARAM_construct_end();

    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL || !EVP_MAC_init(ctx, key, 16, params)
        || !EVP_MAC_update(ctx, msg, len)
        || !EVP_MAC_final(ctx, out, &out_len, sizeof(out)) || out_len != 8)
    {
        fprintf(stderr, "siphash: OpenSSL's SIPHASH failed\n");
        abort();
    }

    EVP_MAC_CTX_free(ctx);

    for (int i = 0; i < 8; i++) {
        v |= (uint64_t) out[i] << (8 * i);
    }

    return v;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t  key[16], msg[64];

    mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    if (mac == NULL) {
        fprintf(stderr, "siphash: OpenSSL has no SIPHASH\n");
        abort();
    }

    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t) i;
    }

    for (int i = 0; i < 64; i++) {
        msg[i] = (uint8_t) i;
    }

    /* the paper's first and sixteenth vectors */
    if (ngx_agentlocator_siphash24(key, msg, 0) != 0x726fdb47dd0e0e31ULL
        || ngx_agentlocator_siphash24(key, msg, 15) != 0xa129ca6149be45e5ULL)
    {
        fprintf(stderr, "siphash: the paper's vectors do not match\n");
        abort();
    }

    for (size_t n = 0; n <= 64; n++) {
        if (ngx_agentlocator_siphash24(key, msg, n)
            != openssl_siphash(key, msg, n))
        {
            fprintf(stderr, "siphash: differs from OpenSSL at length %zu\n", n);
            abort();
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t  ours, theirs;

    if (size < 16) {
        return 0;
    }

    ours = ngx_agentlocator_siphash24(data, data + 16, size - 16);
    theirs = openssl_siphash(data, data + 16, size - 16);

    if (ours != theirs) {
        fprintf(stderr, "siphash: %016llx, OpenSSL %016llx, %zu bytes\n",
                (unsigned long long) ours, (unsigned long long) theirs,
                size - 16);
        abort();
    }

    return 0;
}
