
/*
 * What the Media Streams upgrade request says, read from its bytes: the
 * comma-separated header lists (Connection, Upgrade) and a stream URL's
 * ".../{CallSid}/{token}".  Plain C, no nginx, so a fuzzer drives it alone
 * (fuzz/media_upgrade.c); ngx_agentlocator_media_handshake.c and
 * ngx_agentlocator_stream_url.c are the glue.
 */


#ifndef _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_
#define _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"
#include "ngx_agentlocator_valid.h"


#define NGX_AGENTLOCATOR_STREAM_TOKEN_LEN 32           /* hex, in the URL */


/*
 * 1 if the comma-separated list value[0..len) has "token" (ASCII case
 * ignored, spaces and tabs around items ignored, empty items skipped).
 */
int ngx_agentlocator_list_has(const unsigned char *value, size_t len,
    const char *token);

/*
 * ".../{CallSid}/{token}" at the end of uri[0..len) (one trailing "/" is
 * forgiven): 1 with both (pointing into uri), 0 when the path does not end
 * so (the plain URL).  The token is not checked here: it is a secret,
 * compared in constant time by the caller.
 */
int ngx_agentlocator_stream_path(const unsigned char *uri, size_t len,
    ngx_agentlocator_form_str_t *call_sid, ngx_agentlocator_form_str_t *token);


#endif /* _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_ */
