
/*
 * X-Twilio-Signature computed and checked: base64(HMAC-SHA1(auth token,
 * URL + the sorted parameters)), over the URL variants Twilio's own
 * libraries accept.  Plain C over buffers (OpenSSL's SHA-1, no nginx), so
 * a fuzzer drives it alone (fuzz/signature.c); the module's glue, which
 * knows the request and its pool, is ngx_agentlocator_signature.c.
 */


#ifndef _NGX_AGENTLOCATOR_TWILIO_SIG_H_INCLUDED_
#define _NGX_AGENTLOCATOR_TWILIO_SIG_H_INCLUDED_


#include <stddef.h>

/* see ngx_agentlocator.h: the SHA_CTX state is copied per signature */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>

#include "ngx_agentlocator_form_codec.h"


#define NGX_AGENTLOCATOR_SIGNATURE_LEN    28           /* base64 of SHA-1 */
#define NGX_AGENTLOCATOR_SIG_WS_SLASH     0x01

/* as given, port stripped or added, each with "/" for WebSocket upgrades */
#define NGX_AGENTLOCATOR_SIG_VARIANTS     6
#define NGX_AGENTLOCATOR_SIG_VARIANTS_SPACE(len)  (3 * (size_t) (len) + 16)


/* an HMAC-SHA1 key, its padded blocks already hashed */
typedef struct {
    SHA_CTX                       inner;
    SHA_CTX                       outer;
} ngx_agentlocator_hmac_t;


/* The key's padded blocks hashed once (RFC 2104), when the conf is read. */
void ngx_agentlocator_sig_key(ngx_agentlocator_hmac_t *key,
    const unsigned char *secret, size_t len);

/* HMAC-SHA1(key, a + b) into md (SHA_DIGEST_LENGTH bytes). */
void ngx_agentlocator_sig_hmac(const ngx_agentlocator_hmac_t *key,
    const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
    unsigned char *md);

/* The room ngx_agentlocator_sig_params() needs: every key and value. */
size_t ngx_agentlocator_sig_params_size(const ngx_agentlocator_form_t *form);

/*
 * The parameter half of the signed string into out: every key+value,
 * sorted by key and then value in byte order, exact duplicates once (what
 * twilio-node and twilio-python do with repeated keys).  "sorted" is
 * scratch room for form->nparams pointers.  Returns the length.
 */
size_t ngx_agentlocator_sig_params(const ngx_agentlocator_form_t *form,
    const ngx_agentlocator_param_t **sorted, unsigned char *out);

/*
 * The URLs a signature may have been made over, into variants (room for
 * NGX_AGENTLOCATOR_SIG_VARIANTS), their bytes in buf (room for
 * NGX_AGENTLOCATOR_SIG_VARIANTS_SPACE(len)): the URL as given; with its
 * port removed (any port: Twilio drops it for HTTPS voice), or with the
 * default port added when it has none; with NGX_AGENTLOCATOR_SIG_WS_SLASH
 * each of those again with "/" appended (Twilio's advice for Media
 * Streams handshakes).  Returns how many.
 */
size_t ngx_agentlocator_sig_url_variants(const unsigned char *url,
    size_t len, unsigned flags, unsigned char *buf,
    ngx_agentlocator_form_str_t *variants);

/* base64(HMAC-SHA1(key, url + params)) into out (28 bytes). */
void ngx_agentlocator_sig_of(const ngx_agentlocator_hmac_t *key,
    const unsigned char *url, size_t url_len, const unsigned char *params,
    size_t params_len, unsigned char *out);

/*
 * 1 if signature[0..len) is that of one of the n variants with params, 0
 * if of none.  Each candidate is compared in constant time; the first
 * match ends the search (which variant matched is no secret).
 */
int ngx_agentlocator_sig_match(const ngx_agentlocator_hmac_t *key,
    const ngx_agentlocator_form_str_t *variants, size_t n,
    const unsigned char *params, size_t params_len,
    const unsigned char *signature, size_t len);


#endif /* _NGX_AGENTLOCATOR_TWILIO_SIG_H_INCLUDED_ */
