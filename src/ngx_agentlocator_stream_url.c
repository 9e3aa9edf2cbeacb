
/*
 * Per-call stream URLs: our TwiML sends each call's stream to
 * <public URL>/ws/twilio-media/{CallSid}/{token}, the token a MAC of the
 * CallSid.  Twilio keeps the path (it drops queries), so a captured
 * upgrade, signature and all, opens a stream for that one call only, and
 * only while the call has had none (ngx_agentlocator_media_attach).
 */


#include "ngx_agentlocator.h"

#include <openssl/crypto.h>


#define NGX_AGENTLOCATOR_STREAM_TOKEN_BYTES  (NGX_AGENTLOCATOR_STREAM_TOKEN_LEN / 2)

/* what is MACed before the CallSid: nothing Twilio signs starts so */
#define NGX_AGENTLOCATOR_STREAM_TOKEN_DOMAIN  "agentlocator-stream-url:"


/*
 * The key is the Twilio auth token (HMAC-SHA1 as for Twilio's own
 * signatures, its padded blocks already hashed); without one (signatures
 * off everywhere), the zone's random key, which every worker shares.
 */

static ngx_agentlocator_hmac_t  ngx_agentlocator_stream_key;
static ngx_uint_t               ngx_agentlocator_stream_key_set;


void
ngx_agentlocator_stream_url_init_worker(ngx_cycle_t *cycle)
{
    ngx_str_t                      zone_key;
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_main_conf_t  *amcf;

    ngx_agentlocator_stream_key_set = 0;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentlocator_module);
    if (amcf == NULL) {
        return;
    }

    if (amcf->auth_token.len) {
        ngx_agentlocator_stream_key = amcf->auth_key;
        ngx_agentlocator_stream_key_set = 1;
        return;
    }

    reg = ngx_agentlocator_registry_get(amcf);

    if (reg) {
        zone_key.data = reg->sh->hash_key;
        zone_key.len = NGX_AGENTLOCATOR_SIPHASH_KEY_LEN;

        ngx_agentlocator_hmac_init(&ngx_agentlocator_stream_key, &zone_key);
        ngx_agentlocator_stream_key_set = 1;
    }
}


/* The token of a valid CallSid: NGX_AGENTLOCATOR_STREAM_TOKEN_LEN hex. */

ngx_int_t
ngx_agentlocator_stream_token(u_char *call_sid, u_char *token)
{
    u_char     md[SHA_DIGEST_LENGTH];
    ngx_str_t  sid;

    static ngx_str_t  domain = ngx_string(NGX_AGENTLOCATOR_STREAM_TOKEN_DOMAIN);

    if (!ngx_agentlocator_stream_key_set) {
        return NGX_ERROR;
    }

    sid.data = call_sid;
    sid.len = NGX_AGENTLOCATOR_SID_LEN;

    ngx_agentlocator_hmac_sha1(&ngx_agentlocator_stream_key, &domain, &sid,
                               md);

    (void) ngx_hex_dump(token, md, NGX_AGENTLOCATOR_STREAM_TOKEN_BYTES);

    ngx_explicit_memzero(md, sizeof(md));

    return NGX_OK;
}


/*
 * ".../{CallSid}/{token}" at the end of a request path (one trailing "/"
 * is forgiven): NGX_OK with both; NGX_DECLINED when the path does not end
 * so (the plain URL).
 */

ngx_int_t
ngx_agentlocator_stream_url_parse(ngx_str_t *uri, ngx_str_t *call_sid,
    ngx_str_t *token)
{
    ngx_agentlocator_form_str_t  sid, tok;

    if (!ngx_agentlocator_stream_path(uri->data, uri->len, &sid, &tok)) {
        return NGX_DECLINED;
    }

    call_sid->data = sid.data;
    call_sid->len = sid.len;
    token->data = tok.data;
    token->len = tok.len;

    return NGX_OK;
}


/* In constant time: a token is a secret. */

ngx_uint_t
ngx_agentlocator_stream_token_valid(ngx_str_t *call_sid, ngx_str_t *token)
{
    u_char  expected[NGX_AGENTLOCATOR_STREAM_TOKEN_LEN];

    if (token->len != NGX_AGENTLOCATOR_STREAM_TOKEN_LEN
        || ngx_agentlocator_stream_token(call_sid->data, expected) != NGX_OK)
    {
        return 0;
    }

    return CRYPTO_memcmp(expected, token->data,
                         NGX_AGENTLOCATOR_STREAM_TOKEN_LEN) == 0;
}
