
/*
 * The replies of the services the module calls, read with
 * ngx_agentlocator_json_fields (ngx_agentlocator_service_reply.h).
 */


#include "ngx_agentlocator_service_reply.h"
#include "ngx_agentlocator_json.h"

#include <string.h>


/* the reader leaves str NULL and len 0 for a field absent or null */
#define ngx_agentlocator_reply_set(s, f)                                      \
    (s)->data = (unsigned char *) (f)->str; (s)->len = (f)->len


const char *
ngx_agentlocator_provider_reply(const unsigned char *json, size_t len,
    int twilio, unsigned char *buf, size_t size,
    ngx_agentlocator_provider_reply_t *r)
{
    const char  *err;

    enum { F_ID = 0, F_CODE, F_MESSAGE, F_N };

    ngx_agentlocator_json_field_t  fields[F_N] = {
        { NULL, NGX_AGENTLOCATOR_JSON_STRING,
          NGX_AGENTLOCATOR_SEND_MAX_MSG_ID, 0, NULL, 0, 0, 0, 0 },
        { "code",
          NGX_AGENTLOCATOR_JSON_INTEGER | NGX_AGENTLOCATOR_JSON_NULL, 0,
          0, NULL, 0, 0, 0, 0 },
        { NULL, NGX_AGENTLOCATOR_JSON_STRING | NGX_AGENTLOCATOR_JSON_NULL,
          NGX_AGENTLOCATOR_SEND_MAX_MESSAGE, 0, NULL, 0, 0, 0, 0 }
    };

    fields[F_ID].name = twilio ? "sid" : "provider_msg_id";
    fields[F_MESSAGE].name = twilio ? "message" : "error";

    memset(r, 0, sizeof(ngx_agentlocator_provider_reply_t));

    err = ngx_agentlocator_json_fields(json, len, fields, F_N, buf, size);

    /*
     * Even from JSON refused further on: a 2xx that names the message sent
     * it, and trying the next provider would send it twice.
     */
    ngx_agentlocator_reply_set(&r->id, &fields[F_ID]);
    ngx_agentlocator_reply_set(&r->message, &fields[F_MESSAGE]);

    if (err == NULL && fields[F_CODE].kind == NGX_AGENTLOCATOR_JSON_INTEGER) {
        r->has_code = 1;
        r->code = fields[F_CODE].integer;
    }

    return err;
}


const char *
ngx_agentlocator_transcript_reply(const unsigned char *json, size_t len,
    unsigned char *buf, size_t size, ngx_agentlocator_form_str_t *text)
{
    const char                     *err;
    ngx_agentlocator_json_field_t   field;

    memset(&field, 0, sizeof(ngx_agentlocator_json_field_t));
    field.name = "text";
    field.accept = NGX_AGENTLOCATOR_JSON_STRING;
    field.max_len = NGX_AGENTLOCATOR_TRANSCRIBE_ANSWER;

    text->data = NULL;
    text->len = 0;

    err = ngx_agentlocator_json_fields(json, len, &field, 1, buf, size);
    if (err) {
        return err;
    }

    if (field.kind == 0) {
        return "no \"text\" in the answer";
    }

    text->data = (unsigned char *) field.str;
    text->len = field.len;

    return NULL;
}
