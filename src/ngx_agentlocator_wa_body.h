
/*
 * The WhatsApp JSON bodies from outside, read into what the handlers act
 * on: the Baileys bridge's inbound webhook (and its HMAC-SHA256 signature)
 * and the API's POST /whatsapp/send.  Plain C over buffers (yajl through
 * ngx_agentlocator_json.c, OpenSSL's HMAC), no nginx, so a fuzzer drives
 * it alone (fuzz/wa_body.c); the handlers are ngx_agentlocator_whatsapp.c
 * and ngx_agentlocator_whatsapp_send.c.
 */


#ifndef _NGX_AGENTLOCATOR_WA_BODY_H_INCLUDED_
#define _NGX_AGENTLOCATOR_WA_BODY_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"


/* the bridge's inbound messages */
#define NGX_AGENTLOCATOR_WA_MAX_URL         2048
#define NGX_AGENTLOCATOR_WA_MAX_TEXT        (32 * 1024)
#define NGX_AGENTLOCATOR_WA_MAX_NAME        256
#define NGX_AGENTLOCATOR_WA_MAX_MSG_ID      128
#define NGX_AGENTLOCATOR_WA_MAX_TYPE        128

/* what the API sends */
#define NGX_AGENTLOCATOR_SEND_MAX_TEXT      4096    /* bytes */
#define NGX_AGENTLOCATOR_SEND_MAX_URL       2048

#define NGX_AGENTLOCATOR_BAILEYS_SIG_LEN    64      /* hex of SHA-256 */


/* Every string points into the caller's buffer; empty when absent. */

typedef struct {
    ngx_agentlocator_form_str_t   peer;         /* +E164 */
    ngx_agentlocator_form_str_t   msg_id;       /* printable, 1 to 128 */
    ngx_agentlocator_form_str_t   text;
    ngx_agentlocator_form_str_t   name;
    ngx_agentlocator_form_str_t   media_url;    /* http(s), or empty */
    ngx_agentlocator_form_str_t   media_type;
} ngx_agentlocator_wa_inbound_t;


typedef struct {
    ngx_agentlocator_form_str_t   to;           /* +E164 */
    ngx_agentlocator_form_str_t   text;
    ngx_agentlocator_form_str_t   media_url;    /* http(s), or empty */
    ngx_agentlocator_form_str_t   provider;     /* as given, or empty */
} ngx_agentlocator_wa_send_t;


/* "whatsapp:+972501234567" or "+972501234567": 1 and the number, E.164 */
int ngx_agentlocator_wa_number(const unsigned char *data, size_t len,
    ngx_agentlocator_form_str_t *number);

/* lowercase hex of HMAC-SHA256(secret, body) into hex (64 bytes) */
void ngx_agentlocator_baileys_hex(const unsigned char *secret,
    size_t secret_len, const unsigned char *body, size_t body_len,
    unsigned char *hex);

/* 1 if sig[0..len) is that hex, in either case (compared in constant time) */
int ngx_agentlocator_baileys_sig_ok(const unsigned char *secret,
    size_t secret_len, const unsigned char *body, size_t body_len,
    const unsigned char *sig, size_t len);

/*
 * The bridge's message in json[0..len), strings decoded into buf (size
 * bytes, len + 1 suffice).  NULL, or the reason for a 400.
 */
const char *ngx_agentlocator_wa_baileys_body(const unsigned char *json,
    size_t len, unsigned char *buf, size_t size,
    ngx_agentlocator_wa_inbound_t *m);

/* The same for the API's send request. */
const char *ngx_agentlocator_wa_send_body(const unsigned char *json,
    size_t len, unsigned char *buf, size_t size,
    ngx_agentlocator_wa_send_t *s);


#endif /* _NGX_AGENTLOCATOR_WA_BODY_H_INCLUDED_ */
