
/*
 * The shapes of identifiers a client sends: a phone number, a media URL,
 * a Twilio SID.  Plain C, no nginx, shared by the pure cores and, through
 * ngx_agentlocator_request.c, by the handlers.
 */


#ifndef _NGX_AGENTLOCATOR_VALID_H_INCLUDED_
#define _NGX_AGENTLOCATOR_VALID_H_INCLUDED_


#include <stddef.h>


#define NGX_AGENTLOCATOR_SID_LEN          34           /* "CA" + 32 hex */


/* "+", then 2 to 15 digits, the first not 0: 1 if so */
int ngx_agentlocator_e164_ok(const unsigned char *data, size_t len);

/* http:// or https:// and something after: 1 if so */
int ngx_agentlocator_http_url_ok(const unsigned char *data, size_t len);

/* the two letters of "prefix" and 32 hex digits, as Twilio issues: 1 if so */
int ngx_agentlocator_sid_ok(const unsigned char *data, size_t len,
    const char *prefix);


#endif /* _NGX_AGENTLOCATOR_VALID_H_INCLUDED_ */
