
/*
 * What the services the module calls answer, read into what the callers
 * act on: a WhatsApp provider's reply to a send (Twilio's Messages API or
 * the Baileys bridge) and the transcriber's.  Plain C over buffers (yajl
 * through ngx_agentlocator_json.c), no nginx, so a fuzzer drives it alone
 * (fuzz/service_reply.c); the callers are ngx_agentlocator_whatsapp_send.c
 * and ngx_agentlocator_transcribe.c.
 */


#ifndef _NGX_AGENTLOCATOR_SERVICE_REPLY_H_INCLUDED_
#define _NGX_AGENTLOCATOR_SERVICE_REPLY_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"


#define NGX_AGENTLOCATOR_SEND_MAX_MSG_ID   128      /* a provider's id */
#define NGX_AGENTLOCATOR_SEND_MAX_MESSAGE  1024     /* why it refused */

/* the transcriber's answer: {"text": ...} and a little more */
#define NGX_AGENTLOCATOR_TRANSCRIBE_ANSWER (256 * 1024)


/* Every string points into the caller's buffer; empty when absent. */

typedef struct {
    ngx_agentlocator_form_str_t   id;           /* the message's, if sent */
    ngx_agentlocator_form_str_t   message;      /* why not */
    int                           has_code;
    long long                     code;         /* Twilio's error code */
} ngx_agentlocator_provider_reply_t;


/*
 * A provider's answer to a send in json[0..len): Twilio's {"sid", "code",
 * "message"} (twilio 1) or the bridge's {"provider_msg_id", "code",
 * "error"}, strings decoded into buf (size bytes, len + 1 suffice).  NULL,
 * or why it is not that JSON: r then has no code, and only the strings
 * read before the fault.
 */
const char *ngx_agentlocator_provider_reply(const unsigned char *json,
    size_t len, int twilio, unsigned char *buf, size_t size,
    ngx_agentlocator_provider_reply_t *r);

/*
 * The transcriber's {"text": "..."} in json[0..len), the text decoded into
 * buf (size bytes, len + 1 suffice).  NULL, or why there is no text.
 */
const char *ngx_agentlocator_transcript_reply(const unsigned char *json,
    size_t len, unsigned char *buf, size_t size,
    ngx_agentlocator_form_str_t *text);


#endif /* _NGX_AGENTLOCATOR_SERVICE_REPLY_H_INCLUDED_ */
