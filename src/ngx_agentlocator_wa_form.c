
/*
 * Twilio's WhatsApp webhook fields (ngx_agentlocator_wa_form.h), checked
 * in the order the handler answered before they moved here, each with the
 * same reason, so a sender sees the same 400 for the same body.
 */


#include "ngx_agentlocator_wa_form.h"
#include "ngx_agentlocator_wa_body.h"
#include "ngx_agentlocator_valid.h"
#include "ngx_agentlocator_ws_codec.h"

#include <string.h>


static int ngx_agentlocator_wa_find(const ngx_agentlocator_form_t *form,
    const char *name, ngx_agentlocator_form_str_t *value);
static int ngx_agentlocator_wa_storable(const ngx_agentlocator_form_str_t *s);
static int ngx_agentlocator_wa_num_media(const ngx_agentlocator_form_str_t *s,
    size_t *n);


const char *
ngx_agentlocator_wa_form_sid(const ngx_agentlocator_form_t *form,
    ngx_agentlocator_form_str_t *sid)
{
    switch (ngx_agentlocator_wa_find(form, "MessageSid", sid)) {

    case NGX_AGENTLOCATOR_FORM_CONFLICT:
        return "conflicting MessageSid values";

    case NGX_AGENTLOCATOR_FORM_ABSENT:
        sid->data = NULL;
        sid->len = 0;
        break;
    }

    return NULL;
}


const char *
ngx_agentlocator_wa_form_sid_ok(const ngx_agentlocator_form_str_t *sid)
{
    if (sid->len == 0) {
        return "missing MessageSid";
    }

    /* SM for text, MM for media; SmsSid's legacy forms are not accepted */
    if (!ngx_agentlocator_sid_ok(sid->data, sid->len, "SM")
        && !ngx_agentlocator_sid_ok(sid->data, sid->len, "MM"))
    {
        return "malformed MessageSid";
    }

    return NULL;
}


/*
 * From and To are "whatsapp:+E164"; Body is any storable text (Twilio's
 * 1600 characters are not counted here: agentlocator_max_body bounds the
 * whole form); media as MediaUrlN and MediaContentTypeN for N below
 * NumMedia.  Other keys are Twilio's to add and are not judged.
 */

const char *
ngx_agentlocator_wa_form_inbound(const ngx_agentlocator_form_t *form,
    ngx_agentlocator_wa_twilio_t *m)
{
    int                          rc;
    char                         key[sizeof("MediaContentType0")];
    size_t                       i;
    ngx_agentlocator_form_str_t  v, *url, *type;

    memset(m, 0, sizeof(ngx_agentlocator_wa_twilio_t));

    if (ngx_agentlocator_wa_find(form, "From", &v)
        != NGX_AGENTLOCATOR_FORM_FOUND
        || !ngx_agentlocator_wa_number(v.data, v.len, &m->peer))
    {
        return "From must be one whatsapp:+E164 number";
    }

    if (ngx_agentlocator_wa_find(form, "To", &v)
        != NGX_AGENTLOCATOR_FORM_FOUND
        || !ngx_agentlocator_wa_number(v.data, v.len, &m->business_number))
    {
        return "To must be one whatsapp:+E164 number";
    }

    rc = ngx_agentlocator_wa_find(form, "Body", &v);

    if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT) {
        return "conflicting Body values";
    }

    if (rc == NGX_AGENTLOCATOR_FORM_FOUND) {
        m->body = v;
    }

    if (!ngx_agentlocator_wa_storable(&m->body)) {
        return "Body is not UTF-8 text";
    }

    /* a display name is kept only when it can be stored as it came */
    if (ngx_agentlocator_wa_find(form, "ProfileName", &v)
        == NGX_AGENTLOCATOR_FORM_FOUND
        && v.len <= NGX_AGENTLOCATOR_WA_MAX_NAME
        && ngx_agentlocator_wa_storable(&v))
    {
        m->name = v;
    }

    rc = ngx_agentlocator_wa_find(form, "NumMedia", &v);

    if (rc != NGX_AGENTLOCATOR_FORM_ABSENT
        && (rc == NGX_AGENTLOCATOR_FORM_CONFLICT
            || !ngx_agentlocator_wa_num_media(&v, &m->nmedia)))
    {
        return "NumMedia must be 0 to 10";
    }

    for (i = 0; i < m->nmedia; i++) {
        url = &m->media_url[i];
        type = &m->media_type[i];

        memcpy(key, "MediaUrl", 8);
        key[8] = (char) ('0' + i);
        key[9] = '\0';

        if (ngx_agentlocator_wa_find(form, key, url)
            != NGX_AGENTLOCATOR_FORM_FOUND
            || url->len == 0 || url->len > NGX_AGENTLOCATOR_WA_MAX_URL)
        {
            return "a MediaUrlN below NumMedia is missing or too long";
        }

        memcpy(key, "MediaContentType", 16);
        key[16] = (char) ('0' + i);
        key[17] = '\0';

        rc = ngx_agentlocator_wa_find(form, key, type);

        if (rc != NGX_AGENTLOCATOR_FORM_FOUND) {
            type->data = NULL;
            type->len = 0;
        }

        if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT
            || type->len > NGX_AGENTLOCATOR_WA_MAX_TYPE
            || !ngx_agentlocator_wa_storable(url)
            || !ngx_agentlocator_wa_storable(type))
        {
            return "a MediaUrlN or MediaContentTypeN is malformed";
        }
    }

    return NULL;
}


/*
 * A status is a word of Twilio's (queued, sent, delivered, read, failed,
 * ...), passed on as given: an unknown one is logged, never applied.
 */

const char *
ngx_agentlocator_wa_form_status(const ngx_agentlocator_form_t *form,
    ngx_agentlocator_wa_status_t *s)
{
    int            rc;
    size_t         i;
    unsigned char  ch;

    memset(s, 0, sizeof(ngx_agentlocator_wa_status_t));

    if (ngx_agentlocator_wa_find(form, "MessageStatus", &s->status)
        != NGX_AGENTLOCATOR_FORM_FOUND
        && ngx_agentlocator_wa_find(form, "SmsStatus", &s->status)
           != NGX_AGENTLOCATOR_FORM_FOUND)
    {
        s->status.data = NULL;
        s->status.len = 0;
        return "missing MessageStatus";
    }

    if (s->status.len == 0
        || s->status.len > NGX_AGENTLOCATOR_WA_MAX_STATUS)
    {
        return "malformed MessageStatus";
    }

    for (i = 0; i < s->status.len; i++) {
        ch = s->status.data[i];

        if (!((ch >= 'a' && ch <= 'z') || ch == '_' || ch == '-')) {
            return "malformed MessageStatus";
        }
    }

    rc = ngx_agentlocator_wa_find(form, "ErrorCode", &s->error_code);

    if (rc == NGX_AGENTLOCATOR_FORM_ABSENT) {
        s->error_code.data = NULL;
        s->error_code.len = 0;
        return NULL;
    }

    if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT
        || s->error_code.len > NGX_AGENTLOCATOR_WA_MAX_ERROR_CODE)
    {
        return "malformed ErrorCode";
    }

    for (i = 0; i < s->error_code.len; i++) {
        ch = s->error_code.data[i];

        if (ch < '0' || ch > '9') {
            return "malformed ErrorCode";
        }
    }

    return NULL;
}


static int
ngx_agentlocator_wa_find(const ngx_agentlocator_form_t *form,
    const char *name, ngx_agentlocator_form_str_t *value)
{
    return ngx_agentlocator_form_find(form, (const unsigned char *) name,
                                      strlen(name), value);
}


/* what the CRM's text columns take: UTF-8 without NUL (empty is fine) */

static int
ngx_agentlocator_wa_storable(const ngx_agentlocator_form_str_t *s)
{
    return s->len == 0
           || (memchr(s->data, '\0', s->len) == NULL
               && ngx_agentlocator_utf8_valid(s->data, s->len));
}


/*
 * NumMedia in plain digits (leading zeros allowed, as nginx's ngx_atoi
 * took them), at most NGX_AGENTLOCATOR_WA_MAX_MEDIA: 1 and *n, or 0.
 */

static int
ngx_agentlocator_wa_num_media(const ngx_agentlocator_form_str_t *s,
    size_t *n)
{
    size_t  i, v;

    if (s->len == 0) {
        return 0;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }

        /* stopped before it can overflow */
        v = v * 10 + (s->data[i] - '0');

        if (v > NGX_AGENTLOCATOR_WA_MAX_MEDIA) {
            return 0;
        }
    }

    *n = v;

    return 1;
}
