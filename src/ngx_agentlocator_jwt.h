
/*
 * The API's bearer tokens: JWTs (RFC 7519) signed with HMAC-SHA256 and
 * nothing else.  The header must say "alg":"HS256" (not "none", not
 * RS256 with our secret taken for a public key, not HS256 twice); the
 * signature is checked, in constant time, before a claim is read; "exp"
 * is required, "exp" and "nbf" are checked with a small leeway; the claims
 * the module acts on, "business_id" and "role", must be there.  No nginx
 * I/O: a fuzzer drives it alone.
 */


#ifndef _NGX_AGENTLOCATOR_JWT_H_INCLUDED_
#define _NGX_AGENTLOCATOR_JWT_H_INCLUDED_


#include <stddef.h>

#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>


#define NGX_AGENTLOCATOR_JWT_MAX_LEN    4096    /* a token, in bytes */
#define NGX_AGENTLOCATOR_JWT_LEEWAY     30      /* seconds of clock skew */
#define NGX_AGENTLOCATOR_JWT_ROLE_LEN   32
#define NGX_AGENTLOCATOR_JWT_MIN_KEY    32      /* bytes: HS256's 256 bits */


/*
 * The HMAC-SHA256 key with its padded blocks already hashed (once, at
 * configuration): a token costs two SHA-256 states copied, not an HMAC
 * set up from scratch.
 */
typedef struct {
    SHA256_CTX                inner;
    SHA256_CTX                outer;
} ngx_agentlocator_jwt_key_t;


typedef struct {
    long long                 business_id;   /* > 0 */
    char                      role[NGX_AGENTLOCATOR_JWT_ROLE_LEN + 1];
    long long                 exp;
    long long                 nbf;           /* 0: none */
} ngx_agentlocator_jwt_claims_t;


void ngx_agentlocator_jwt_key_init(ngx_agentlocator_jwt_key_t *key,
    const unsigned char *secret, size_t len);

/*
 * Checks token[0..len) with the key at time "now" (Unix seconds).
 * Returns NULL and fills "claims", or a one-line reason (it never echoes
 * the token).
 */
const char *ngx_agentlocator_jwt_verify(const unsigned char *token,
    size_t len, const ngx_agentlocator_jwt_key_t *key, long long now,
    ngx_agentlocator_jwt_claims_t *claims);


#endif /* _NGX_AGENTLOCATOR_JWT_H_INCLUDED_ */
