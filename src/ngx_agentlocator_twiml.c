
/*
 * TwiML documents (SPEC §4).  Every URL in them is absolute, built from
 * agentlocator_public_url, and every value is XML-escaped.  Twilio reads
 * the document only if it starts with "<?xml" or "<Response>" (error 12100),
 * so nothing precedes the declaration.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_XML_DECL                                             \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

#define NGX_AGENTLOCATOR_PATH_STREAM_ENDED     "/webhook/stream_ended"
#define NGX_AGENTLOCATOR_PATH_STREAM_STATUS    "/webhook/stream_status"
#define NGX_AGENTLOCATOR_PATH_HANDLE_RECORDING "/webhook/handle_recording"
#define NGX_AGENTLOCATOR_PATH_MEDIA            "/ws/twilio-media"


static size_t ngx_agentlocator_twiml_open_len(ngx_str_t *prompt);
static u_char *ngx_agentlocator_twiml_open(u_char *p, ngx_str_t *prompt);
static ngx_int_t ngx_agentlocator_twiml_connect_parts(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf);


size_t
ngx_agentlocator_xml_escape_len(ngx_str_t *src)
{
    size_t   len;
    u_char  *p, *last;

    len = 0;

    for (p = src->data, last = p + src->len; p < last; p++) {
        switch (*p) {
        case '&':  len += sizeof("&amp;") - 1;  break;
        case '<':  len += sizeof("&lt;") - 1;   break;
        case '>':  len += sizeof("&gt;") - 1;   break;
        case '"':  len += sizeof("&quot;") - 1; break;
        case '\'': len += sizeof("&apos;") - 1; break;
        default:   len++;
        }
    }

    return len;
}


/*
 * Control bytes other than tab, CR and LF are not allowed in XML 1.0 at
 * all, escaped or not: they become "?" rather than break the document.
 */

u_char *
ngx_agentlocator_xml_escape(u_char *dst, ngx_str_t *src)
{
    u_char  *p, *last;

    for (p = src->data, last = p + src->len; p < last; p++) {
        switch (*p) {
        case '&':  dst = ngx_cpymem(dst, "&amp;", 5);  break;
        case '<':  dst = ngx_cpymem(dst, "&lt;", 4);   break;
        case '>':  dst = ngx_cpymem(dst, "&gt;", 4);   break;
        case '"':  dst = ngx_cpymem(dst, "&quot;", 6); break;
        case '\'': dst = ngx_cpymem(dst, "&apos;", 6); break;
        default:
            *dst++ = (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n')
                     ? '?' : *p;
        }
    }

    return dst;
}


/* "/x" -> public_url + "/x"; an absolute http(s) URL is kept as it is. */

ngx_int_t
ngx_agentlocator_absolute_url(ngx_pool_t *pool,
    ngx_agentlocator_public_url_t *base, ngx_str_t *uri, ngx_str_t *out)
{
    u_char  *p;

    if ((uri->len > 7 && ngx_strncasecmp(uri->data, (u_char *) "http://", 7)
                         == 0)
        || (uri->len > 8
            && ngx_strncasecmp(uri->data, (u_char *) "https://", 8) == 0))
    {
        *out = *uri;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, base->url.len + 1 + uri->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_cpymem(p, base->url.data, base->url.len);

    if (uri->len == 0 || uri->data[0] != '/') {
        *p++ = '/';
    }

    p = ngx_cpymem(p, uri->data, uri->len);
    out->len = p - out->data;

    return NGX_OK;
}


/*
 * How every document we write begins: the XML declaration, <Response>, and
 * the prompt to play first, if one is configured.
 */

static size_t
ngx_agentlocator_twiml_open_len(ngx_str_t *prompt)
{
    return sizeof(NGX_AGENTLOCATOR_XML_DECL "<Response>") - 1
           + (prompt->len ? sizeof("<Play></Play>") - 1
                            + ngx_agentlocator_xml_escape_len(prompt)
                          : 0);
}


static u_char *
ngx_agentlocator_twiml_open(u_char *p, ngx_str_t *prompt)
{
    p = ngx_cpymem(p, NGX_AGENTLOCATOR_XML_DECL "<Response>",
                   sizeof(NGX_AGENTLOCATOR_XML_DECL "<Response>") - 1);

    if (prompt->len) {
        p = ngx_cpymem(p, "<Play>", sizeof("<Play>") - 1);
        p = ngx_agentlocator_xml_escape(p, prompt);
        p = ngx_cpymem(p, "</Play>", sizeof("</Play>") - 1);
    }

    return p;
}


/*
 * incoming_call: greeting, then the bidirectional stream.  The stream URL
 * is wss:// on the public host (Twilio accepts only wss) and the call's
 * own: .../ws/twilio-media/{CallSid}/{token} (ngx_agentlocator_stream_url.c).
 * Its end or failure brings Twilio to <Connect action>, i.e. stream_ended.
 * Everything but the call's part is the same for every call of a server,
 * so it is built (and escaped) once at configuration time: a webhook only
 * copies.
 */

static ngx_int_t
ngx_agentlocator_twiml_connect_parts(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf)
{
    u_char                         *p;
    size_t                          len;
    ngx_agentlocator_public_url_t  *pub;

    pub = ascf->public_url;

    len = ngx_agentlocator_twiml_open_len(&ascf->greeting)
          + sizeof("<Connect action=\"\">") - 1
          + ngx_agentlocator_xml_escape_len(&pub->url)
          + sizeof(NGX_AGENTLOCATOR_PATH_STREAM_ENDED) - 1
          + sizeof("<Stream url=\"wss://") - 1
          + ngx_agentlocator_xml_escape_len(&pub->host)
          + ngx_agentlocator_xml_escape_len(&pub->path)
          + sizeof(NGX_AGENTLOCATOR_PATH_MEDIA "/") - 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ascf->connect_head.data = p;

    p = ngx_agentlocator_twiml_open(p, &ascf->greeting);

    p = ngx_cpymem(p, "<Connect action=\"", sizeof("<Connect action=\"") - 1);
    p = ngx_agentlocator_xml_escape(p, &pub->url);
    p = ngx_cpymem(p, NGX_AGENTLOCATOR_PATH_STREAM_ENDED "\">",
                   sizeof(NGX_AGENTLOCATOR_PATH_STREAM_ENDED "\">") - 1);

    p = ngx_cpymem(p, "<Stream url=\"wss://",
                   sizeof("<Stream url=\"wss://") - 1);
    p = ngx_agentlocator_xml_escape(p, &pub->host);
    p = ngx_agentlocator_xml_escape(p, &pub->path);
    p = ngx_cpymem(p, NGX_AGENTLOCATOR_PATH_MEDIA "/",
                   sizeof(NGX_AGENTLOCATOR_PATH_MEDIA "/") - 1);

    ascf->connect_head.len = p - ascf->connect_head.data;

    len = sizeof("\" statusCallback=\"\">") - 1
          + ngx_agentlocator_xml_escape_len(&pub->url)
          + sizeof(NGX_AGENTLOCATOR_PATH_STREAM_STATUS) - 1
          + sizeof("<Parameter name=\"call_sid\" value=\"") - 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ascf->connect_mid.data = p;

    p = ngx_cpymem(p, "\" statusCallback=\"",
                   sizeof("\" statusCallback=\"") - 1);
    p = ngx_agentlocator_xml_escape(p, &pub->url);
    p = ngx_cpymem(p, NGX_AGENTLOCATOR_PATH_STREAM_STATUS "\">",
                   sizeof(NGX_AGENTLOCATOR_PATH_STREAM_STATUS "\">") - 1);
    p = ngx_cpymem(p, "<Parameter name=\"call_sid\" value=\"",
                   sizeof("<Parameter name=\"call_sid\" value=\"") - 1);

    ascf->connect_mid.len = p - ascf->connect_mid.data;

    ngx_str_set(&ascf->connect_tail, "\"/></Stream></Connect></Response>\n");

    return NGX_OK;
}


/* "call_sid" is valid (CA + 32 hex): it needs no escaping in the URL. */

ngx_int_t
ngx_agentlocator_twiml_connect(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf, ngx_str_t *call_sid, ngx_str_t *out)
{
    u_char  *p;

    p = ngx_pnalloc(pool, ascf->connect_head.len
                          + NGX_AGENTLOCATOR_SID_LEN + 1
                          + NGX_AGENTLOCATOR_STREAM_TOKEN_LEN
                          + ascf->connect_mid.len
                          + NGX_AGENTLOCATOR_SID_LEN
                          + ascf->connect_tail.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_cpymem(p, ascf->connect_head.data, ascf->connect_head.len);
    p = ngx_cpymem(p, call_sid->data, NGX_AGENTLOCATOR_SID_LEN);
    *p++ = '/';

    if (ngx_agentlocator_stream_token(call_sid->data, p) != NGX_OK) {
        return NGX_ERROR;
    }

    p += NGX_AGENTLOCATOR_STREAM_TOKEN_LEN;

    p = ngx_cpymem(p, ascf->connect_mid.data, ascf->connect_mid.len);
    p = ngx_cpymem(p, call_sid->data, NGX_AGENTLOCATOR_SID_LEN);
    p = ngx_cpymem(p, ascf->connect_tail.data, ascf->connect_tail.len);

    out->len = p - out->data;

    return NGX_OK;
}


/*
 * The fallback when the stream did not carry the call: the prompt, then a
 * recording.  <Play> comes first because Twilio never reaches a verb after
 * <Record>.  The action URL is absolute: the watchdog sends this same
 * document inline through the REST API, where relative URLs are refused.
 */

ngx_int_t
ngx_agentlocator_twiml_fallback(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf, ngx_str_t *out)
{
    u_char                         *p;
    size_t                          len;
    ngx_agentlocator_public_url_t  *pub;

    pub = ascf->public_url;

    len = ngx_agentlocator_twiml_open_len(&ascf->fallback_prompt)
          + sizeof("<Record action=\"\" playBeep=\"false\" timeout=\"4\" "
                   "maxLength=\"30\"/>") - 1
          + ngx_agentlocator_xml_escape_len(&pub->url)
          + sizeof(NGX_AGENTLOCATOR_PATH_HANDLE_RECORDING) - 1
          + sizeof("</Response>\n") - 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_agentlocator_twiml_open(p, &ascf->fallback_prompt);

    p = ngx_cpymem(p, "<Record action=\"", sizeof("<Record action=\"") - 1);
    p = ngx_agentlocator_xml_escape(p, &pub->url);
    p = ngx_cpymem(p, NGX_AGENTLOCATOR_PATH_HANDLE_RECORDING
                   "\" playBeep=\"false\" timeout=\"4\" maxLength=\"30\"/>"
                   "</Response>\n",
                   sizeof(NGX_AGENTLOCATOR_PATH_HANDLE_RECORDING
                          "\" playBeep=\"false\" timeout=\"4\" "
                          "maxLength=\"30\"/></Response>\n") - 1);

    out->len = p - out->data;

    return NGX_OK;
}


ngx_int_t
ngx_agentlocator_twiml_empty(ngx_str_t *out)
{
    ngx_str_set(out, NGX_AGENTLOCATOR_XML_DECL "<Response/>\n");

    return NGX_OK;
}


/* For a call that has ended: whoever asks learns nothing, not even a URL. */

ngx_int_t
ngx_agentlocator_twiml_hangup(ngx_str_t *out)
{
    ngx_str_set(out, NGX_AGENTLOCATOR_XML_DECL
                     "<Response><Hangup/></Response>\n");

    return NGX_OK;
}


/*
 * At configuration time, per server: prompts made absolute and the fallback
 * document built once (it depends on nothing in the request).
 */

ngx_int_t
ngx_agentlocator_twiml_resolve(ngx_conf_t *cf,
    ngx_agentlocator_srv_conf_t *ascf)
{
    ngx_str_t  abs;

    if (ascf->public_url == NULL) {
        return NGX_OK;
    }

    if (ascf->greeting.len) {
        if (ngx_agentlocator_absolute_url(cf->pool, ascf->public_url,
                                          &ascf->greeting, &abs)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ascf->greeting = abs;
    }

    if (ascf->fallback_prompt.len) {
        if (ngx_agentlocator_absolute_url(cf->pool, ascf->public_url,
                                          &ascf->fallback_prompt, &abs)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ascf->fallback_prompt = abs;
    }

    if (ngx_agentlocator_twiml_connect_parts(cf->pool, ascf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_agentlocator_twiml_fallback(cf->pool, ascf,
                                           &ascf->fallback_twiml);
}
