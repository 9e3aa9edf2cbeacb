
/*
 * What the Media Streams upgrade request says, read from its bytes: the
 * comma-separated header lists (Connection, Upgrade) and a stream URL's
 * ".../{CallSid}/{token}"; and its request line with the token hidden.
 * Plain C, no nginx, so a fuzzer drives it alone (fuzz/media_upgrade.c,
 * fuzz/hide_token.c); ngx_agentlocator_media_handshake.c and
 * ngx_agentlocator_stream_url.c are the glue.
 */


#ifndef _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_
#define _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"
#include "ngx_agentlocator_valid.h"


#define NGX_AGENTLOCATOR_STREAM_TOKEN_LEN 32           /* hex, in the URL */

/* what the logs show in the token's place */
#define NGX_AGENTLOCATOR_HIDDEN          "..."
#define NGX_AGENTLOCATOR_HIDDEN_LEN      (sizeof(NGX_AGENTLOCATOR_HIDDEN) - 1)


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


/*
 * 1 if span[0..n) are bytes of line[0..len) itself, not only equal ones:
 * nginx's r->uri points into the request line unless it decoded the URI
 * into a copy.  Compares addresses as integers, so any two are allowed.
 */
int ngx_agentlocator_span_inside(const unsigned char *line, size_t len,
    const unsigned char *span, size_t n);

/*
 * line[0..len) with its bytes [off, off + n) replaced by
 * NGX_AGENTLOCATOR_HIDDEN, into out (room for len - n +
 * NGX_AGENTLOCATOR_HIDDEN_LEN bytes, not overlapping line); returns that
 * length.  off + n <= len: the caller found the span inside the line.
 * nginx logs the request line (the error log's context, $request), and a
 * stream URL's token there would let a reader of the logs open the call's
 * stream.
 */
size_t ngx_agentlocator_hide_span(unsigned char *out, const unsigned char *line,
    size_t len, size_t off, size_t n);


#endif /* _NGX_AGENTLOCATOR_UPGRADE_REQ_H_INCLUDED_ */
