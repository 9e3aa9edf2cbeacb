
/*
 * The fields of Twilio's WhatsApp webhooks, once the form is parsed
 * (ngx_agentlocator_form_codec.h): the MessageSid, then an inbound
 * message's From, To, Body, ProfileName and media, or a delivery status.
 * Plain C over the parsed form, no nginx, so a fuzzer drives it alone
 * (fuzz/wa_form.c); the handler is ngx_agentlocator_whatsapp.c, which
 * checks the signature between the MessageSid's lookup and its shape.
 */


#ifndef _NGX_AGENTLOCATOR_WA_FORM_H_INCLUDED_
#define _NGX_AGENTLOCATOR_WA_FORM_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"


/* Twilio's own limit on a message's media (its Media resource page) */
#define NGX_AGENTLOCATOR_WA_MAX_MEDIA       10

#define NGX_AGENTLOCATOR_WA_MAX_STATUS      32      /* [a-z_-] */
#define NGX_AGENTLOCATOR_WA_MAX_ERROR_CODE  10      /* digits */


/* Every string points into the form's body; empty (NULL, 0) when absent. */

typedef struct {
    ngx_agentlocator_form_str_t   peer;         /* From's +E164 */
    ngx_agentlocator_form_str_t   business_number;  /* To's +E164 */
    ngx_agentlocator_form_str_t   body;         /* UTF-8 without NUL */
    ngx_agentlocator_form_str_t   name;         /* dropped when unfit */
    size_t                        nmedia;       /* NumMedia, 0 to 10 */
    ngx_agentlocator_form_str_t   media_url[NGX_AGENTLOCATOR_WA_MAX_MEDIA];
    ngx_agentlocator_form_str_t   media_type[NGX_AGENTLOCATOR_WA_MAX_MEDIA];
} ngx_agentlocator_wa_twilio_t;


typedef struct {
    ngx_agentlocator_form_str_t   status;       /* MessageStatus/SmsStatus */
    ngx_agentlocator_form_str_t   error_code;   /* digits, or empty */
} ngx_agentlocator_wa_status_t;


/*
 * The MessageSid as given, empty when absent (it is checked after the
 * signature, so a stranger learns nothing of its shape).  NULL, or the
 * reason for a 400 when it repeats with different values, which the
 * handler also tells only after the signature.
 */
const char *ngx_agentlocator_wa_form_sid(const ngx_agentlocator_form_t *form,
    ngx_agentlocator_form_str_t *sid);

/* NULL if the MessageSid is SM or MM and 32 hex digits, else the reason. */
const char *ngx_agentlocator_wa_form_sid_ok(
    const ngx_agentlocator_form_str_t *sid);

/* An inbound message: NULL and *m, or the reason for a 400. */
const char *ngx_agentlocator_wa_form_inbound(
    const ngx_agentlocator_form_t *form, ngx_agentlocator_wa_twilio_t *m);

/* A delivery status callback: NULL and *s, or the reason for a 400. */
const char *ngx_agentlocator_wa_form_status(
    const ngx_agentlocator_form_t *form, ngx_agentlocator_wa_status_t *s);


#endif /* _NGX_AGENTLOCATOR_WA_FORM_H_INCLUDED_ */
