
/*
 * HS256 JWTs (ngx_agentlocator_jwt.h): base64url strictly (no padding, no
 * stray bits, nothing outside its alphabet), the header's "alg" read
 * before anything is trusted, the MAC compared with CRYPTO_memcmp(), the
 * claims read only from a token whose MAC matched.
 */


#include "ngx_agentlocator_jwt.h"
#include "ngx_agentlocator_json.h"

#include <string.h>
#include <openssl/crypto.h>


#define NGX_AGENTLOCATOR_JWT_PART_MAX  (NGX_AGENTLOCATOR_JWT_MAX_LEN / 4 * 3)


static long ngx_agentlocator_base64url_decode(const unsigned char *src,
    size_t len, unsigned char *dst, size_t size);
static int ngx_agentlocator_base64url_value(unsigned char ch);
static const char *ngx_agentlocator_jwt_header(const unsigned char *json,
    size_t len);
static const char *ngx_agentlocator_jwt_claims(const unsigned char *json,
    size_t len, long long now, ngx_agentlocator_jwt_claims_t *claims);
static long long ngx_agentlocator_jwt_seconds(double t);


void
ngx_agentlocator_jwt_key_init(ngx_agentlocator_jwt_key_t *key,
    const unsigned char *secret, size_t len)
{
    size_t         i;
    unsigned char  block[SHA256_CBLOCK], pad[SHA256_CBLOCK];

    memset(block, 0, sizeof(block));

    if (len > SHA256_CBLOCK) {
        /* RFC 2104: a key longer than a block is its hash */
        SHA256(secret, len, block);

    } else {
        memcpy(block, secret, len);
    }

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = block[i] ^ 0x36;
    }

    SHA256_Init(&key->inner);
    SHA256_Update(&key->inner, pad, SHA256_CBLOCK);

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = block[i] ^ 0x5c;
    }

    SHA256_Init(&key->outer);
    SHA256_Update(&key->outer, pad, SHA256_CBLOCK);

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
}


const char *
ngx_agentlocator_jwt_verify(const unsigned char *token, size_t len,
    const ngx_agentlocator_jwt_key_t *key, long long now,
    ngx_agentlocator_jwt_claims_t *claims)
{
    long                  n;
    SHA256_CTX            ctx;
    const char           *err;
    const unsigned char  *dot1, *dot2, *p, *last;
    unsigned char         json[NGX_AGENTLOCATOR_JWT_PART_MAX];
    unsigned char         sig[64], mac[SHA256_DIGEST_LENGTH];

    if (len == 0) {
        return "empty token";
    }

    if (len > NGX_AGENTLOCATOR_JWT_MAX_LEN) {
        return "token too long";
    }

    dot1 = NULL;
    dot2 = NULL;
    last = token + len;

    for (p = token; p < last; p++) {
        if (*p != '.') {
            continue;
        }

        if (dot1 == NULL) {
            dot1 = p;

        } else if (dot2 == NULL) {
            dot2 = p;

        } else {
            return "token is not header.payload.signature";
        }
    }

    if (dot2 == NULL) {
        return "token is not header.payload.signature";
    }

    /* the header says how it is signed: only HS256 goes further */

    n = ngx_agentlocator_base64url_decode(token, dot1 - token, json,
                                          sizeof(json));
    if (n < 0) {
        return "token header is not base64url";
    }

    err = ngx_agentlocator_jwt_header(json, (size_t) n);
    if (err) {
        return err;
    }

    n = ngx_agentlocator_base64url_decode(dot2 + 1, last - dot2 - 1, sig,
                                          sizeof(sig));
    if (n < 0) {
        return "token signature is not base64url";
    }

    ctx = key->inner;
    SHA256_Update(&ctx, token, dot2 - token);
    SHA256_Final(mac, &ctx);

    ctx = key->outer;
    SHA256_Update(&ctx, mac, sizeof(mac));
    SHA256_Final(mac, &ctx);

    if ((unsigned long) n != sizeof(mac)
        || CRYPTO_memcmp(sig, mac, sizeof(mac)) != 0)
    {
        return "bad token signature";
    }

    /* signed by us: now the claims */

    n = ngx_agentlocator_base64url_decode(dot1 + 1, dot2 - dot1 - 1, json,
                                          sizeof(json));
    if (n < 0) {
        return "token payload is not base64url";
    }

    return ngx_agentlocator_jwt_claims(json, (size_t) n, now, claims);
}


static const char *
ngx_agentlocator_jwt_header(const unsigned char *json, size_t len)
{
    const char     *err;
    unsigned char   buf[NGX_AGENTLOCATOR_JWT_PART_MAX];

    ngx_agentlocator_json_field_t  fields[] = {
        { "alg", NGX_AGENTLOCATOR_JSON_STRING, 16, 0, NULL, 0, 0, 0, 0 },
        { "crit", ~0u, 0, 0, NULL, 0, 0, 0, 0 }
    };

    err = ngx_agentlocator_json_fields(json, len, fields, 2, buf,
                                       sizeof(buf));
    if (err) {
        return "token header is not a JSON object with a string alg";
    }

    if (fields[0].kind == 0) {
        return "token header has no alg";
    }

    if (fields[0].len != 5 || memcmp(fields[0].str, "HS256", 5) != 0) {
        return "token alg is not HS256";
    }

    /* an extension we would have to understand, and do not */
    if (fields[1].kind) {
        return "token header has crit";
    }

    return NULL;
}


static const char *
ngx_agentlocator_jwt_claims(const unsigned char *json, size_t len,
    long long now, ngx_agentlocator_jwt_claims_t *claims)
{
    size_t          i;
    long long       id;
    const char     *err;
    unsigned char   buf[NGX_AGENTLOCATOR_JWT_PART_MAX];

    ngx_agentlocator_json_field_t  fields[] = {
        { "business_id",
          NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_STRING, 18,
          0, NULL, 0, 0, 0, 0 },
        { "role", NGX_AGENTLOCATOR_JSON_STRING,
          NGX_AGENTLOCATOR_JWT_ROLE_LEN, 0, NULL, 0, 0, 0, 0 },
        { "exp", NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_NUMBER,
          0, 0, NULL, 0, 0, 0, 0 },
        { "nbf", NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_NUMBER,
          0, 0, NULL, 0, 0, 0, 0 }
    };

    err = ngx_agentlocator_json_fields(json, len, fields, 4, buf,
                                       sizeof(buf));
    if (err) {
        return "token claims are malformed";
    }

    if (fields[2].kind == 0) {
        return "token has no exp";
    }

    if (fields[2].number + NGX_AGENTLOCATOR_JWT_LEEWAY <= (double) now) {
        return "token expired";
    }

    if (fields[3].kind
        && fields[3].number - NGX_AGENTLOCATOR_JWT_LEEWAY > (double) now)
    {
        return "token not valid yet";
    }

    if (fields[0].kind == NGX_AGENTLOCATOR_JSON_INTEGER) {
        id = fields[0].integer;

    } else if (fields[0].kind == NGX_AGENTLOCATOR_JSON_STRING
               && fields[0].len > 0)
    {
        id = 0;

        for (i = 0; i < fields[0].len; i++) {
            if (fields[0].str[i] < '0' || fields[0].str[i] > '9') {
                return "token business_id is not a number";
            }

            id = id * 10 + (fields[0].str[i] - '0');
        }

    } else {
        return "token has no business_id";
    }

    if (id <= 0) {
        return "token business_id is not a positive number";
    }

    if (fields[1].kind == 0 || fields[1].len == 0) {
        return "token has no role";
    }

    claims->business_id = id;
    memcpy(claims->role, fields[1].str, fields[1].len);
    claims->role[fields[1].len] = '\0';
    claims->exp = ngx_agentlocator_jwt_seconds(fields[2].number);
    claims->nbf = fields[3].kind
                  ? ngx_agentlocator_jwt_seconds(fields[3].number) : 0;

    return NULL;
}


/*
 * A NumericDate as whole seconds: JSON allows any number, and a double
 * past what a long long holds cannot be converted (undefined behaviour),
 * so it is clamped to a year no token reaches.
 */

static long long
ngx_agentlocator_jwt_seconds(double t)
{
    if (t >= 4e18) {
        return 4000000000000000000LL;
    }

    if (t <= -4e18) {
        return -4000000000000000000LL;
    }

    return (long long) t;
}


/*
 * RFC 4648 §5 without padding, strictly: a length that leaves one
 * character over, or bits set past the last byte, is not a token anyone
 * signed.  Returns the decoded length or -1.
 */

static long
ngx_agentlocator_base64url_decode(const unsigned char *src, size_t len,
    unsigned char *dst, size_t size)
{
    int            v[4];
    size_t         i, j, n, rest;
    unsigned char *d;

    if (len % 4 == 1 || len / 4 * 3 + 3 > size) {
        return -1;
    }

    d = dst;
    rest = len % 4;
    n = len - rest;

    for (i = 0; i < n; i += 4) {
        for (j = 0; j < 4; j++) {
            v[j] = ngx_agentlocator_base64url_value(src[i + j]);
            if (v[j] < 0) {
                return -1;
            }
        }

        *d++ = (unsigned char) (v[0] << 2 | v[1] >> 4);
        *d++ = (unsigned char) (v[1] << 4 | v[2] >> 2);
        *d++ = (unsigned char) (v[2] << 6 | v[3]);
    }

    if (rest) {
        for (j = 0; j < rest; j++) {
            v[j] = ngx_agentlocator_base64url_value(src[n + j]);
            if (v[j] < 0) {
                return -1;
            }
        }

        *d++ = (unsigned char) (v[0] << 2 | v[1] >> 4);

        if (rest == 2) {
            if (v[1] & 0x0f) {
                return -1;
            }

        } else {
            *d++ = (unsigned char) (v[1] << 4 | v[2] >> 2);

            if (v[2] & 0x03) {
                return -1;
            }
        }
    }

    return (long) (d - dst);
}


static int
ngx_agentlocator_base64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }

    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }

    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }

    if (ch == '-') {
        return 62;
    }

    if (ch == '_') {
        return 63;
    }

    return -1;
}
