
/*
 * WhatsApp into the CRM (SPEC §8): Twilio's inbound webhook and its
 * delivery status callbacks (form bodies signed like the voice webhooks),
 * and the Baileys bridge's JSON webhook (signed with HMAC-SHA256 of the
 * body).  Each becomes one write to the CRM queue, idempotent on the
 * provider's message id, and is answered as soon as that write is spooled
 * or queued: a webhook never waits on the database.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_json.h"
#include "ngx_agentlocator_wa_body.h"
#include "ngx_agentlocator_wa_form.h"


static void ngx_agentlocator_wa_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_wa_process(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_wa_twilio(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_str_t *sid);
static ngx_int_t ngx_agentlocator_wa_twilio_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_str_t *sid);
static ngx_int_t ngx_agentlocator_wa_baileys(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_agentlocator_wa_str(ngx_str_t *dst,
    ngx_agentlocator_form_str_t *src);
static ngx_int_t ngx_agentlocator_wa_address(ngx_str_t *value,
    ngx_str_t *number);
static ngx_int_t ngx_agentlocator_wa_media(ngx_pool_t *pool,
    ngx_str_t *urls, ngx_str_t *types, ngx_uint_t n, ngx_str_t *out);
static ngx_int_t ngx_agentlocator_wa_retry_later(ngx_http_request_t *r,
    const char *provider, ngx_str_t *msg_id);


static ngx_str_t  ngx_agentlocator_wa_text_xml = ngx_string("text/xml");
static ngx_str_t  ngx_agentlocator_wa_json = ngx_string("application/json");


ngx_int_t
ngx_agentlocator_whatsapp_handler(ngx_http_request_t *r)
{
    ngx_agentlocator_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    return ngx_agentlocator_read_post(r,
                                      alcf->whatsapp
                                      == NGX_AGENTLOCATOR_WA_BAILEYS
                                      ? "application/json"
                                      : NGX_AGENTLOCATOR_FORM_TYPE,
                                      alcf->max_body,
                                      ngx_agentlocator_wa_body_handler);
}


static void
ngx_agentlocator_wa_body_handler(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_agentlocator_wa_process(r));
}


static ngx_int_t
ngx_agentlocator_wa_process(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     body, sid;
    const char                   *err, *sid_err;
    ngx_agentlocator_form_t      *form;
    ngx_agentlocator_form_str_t   s;
    ngx_agentlocator_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    rc = ngx_agentlocator_read_body(r, alcf->max_body, &body);

    if (rc == NGX_DECLINED) {
        return ngx_agentlocator_reply_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "request body too large");
    }

    if (rc != NGX_OK) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "cannot read the request body");
    }

    if (alcf->whatsapp == NGX_AGENTLOCATOR_WA_BAILEYS) {
        return ngx_agentlocator_wa_baileys(r, &body);
    }

    rc = ngx_agentlocator_form_new(r->pool, body.data, body.len, &form, &err);

    if (rc == NGX_DECLINED) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* its verdict, as the shape's, is told after the signature's */
    sid_err = ngx_agentlocator_wa_form_sid(form, &s);
    if (sid_err) {
        s.data = NULL;
        s.len = 0;
    }

    ngx_agentlocator_wa_str(&sid, &s);

    /* authenticate before judging the content: strangers learn nothing */

    if (alcf->signature) {
        rc = ngx_agentlocator_signature_check(r, NULL, form, 0, &sid);

        if (rc == NGX_DECLINED) {
            return ngx_agentlocator_reply_error(r, NGX_HTTP_FORBIDDEN,
                                                "invalid X-Twilio-Signature");
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    err = sid_err ? sid_err : ngx_agentlocator_wa_form_sid_ok(&s);
    if (err) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    if (alcf->whatsapp == NGX_AGENTLOCATOR_WA_TWILIO) {
        return ngx_agentlocator_wa_twilio(r, form, &sid);
    }

    return ngx_agentlocator_wa_twilio_status(r, form, &sid);
}


/*
 * An inbound message through Twilio, its fields checked by
 * ngx_agentlocator_wa_form.c.  Answered with empty TwiML: nothing is
 * said back.
 */

static ngx_int_t
ngx_agentlocator_wa_twilio(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_str_t *sid)
{
    ngx_int_t                       rc;
    ngx_str_t                       twiml;
    ngx_str_t                       urls[NGX_AGENTLOCATOR_WA_MAX_MEDIA];
    ngx_str_t                       types[NGX_AGENTLOCATOR_WA_MAX_MEDIA];
    ngx_uint_t                      i;
    const char                     *err;
    ngx_agentlocator_wa_twilio_t    in;
    ngx_agentlocator_crm_message_t  m;

    err = ngx_agentlocator_wa_form_inbound(form, &in);
    if (err) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    ngx_memzero(&m, sizeof(ngx_agentlocator_crm_message_t));
    m.provider = "twilio";
    m.msg_id = *sid;

    ngx_agentlocator_wa_str(&m.peer, &in.peer);
    ngx_agentlocator_wa_str(&m.business_number, &in.business_number);
    ngx_agentlocator_wa_str(&m.body, &in.body);
    ngx_agentlocator_wa_str(&m.name, &in.name);

    for (i = 0; i < in.nmedia; i++) {
        ngx_agentlocator_wa_str(&urls[i], &in.media_url[i]);
        ngx_agentlocator_wa_str(&types[i], &in.media_type[i]);
    }

    if (in.nmedia
        && ngx_agentlocator_wa_media(r->pool, urls, types, in.nmedia,
                                     &m.media)
           != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_agentlocator_crm_wa_inbound(&m);

    if (rc == NGX_BUSY || rc == NGX_ERROR) {
        return ngx_agentlocator_wa_retry_later(r, "twilio", sid);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "WA_INBOUND provider=twilio message=%V media=%uz",
                  sid, in.nmedia);

    (void) ngx_agentlocator_twiml_empty(&twiml);

    return ngx_agentlocator_reply(r, NGX_HTTP_OK,
                                  &ngx_agentlocator_wa_text_xml, &twiml);
}


/*
 * A delivery status of a message sent through Twilio: logged once per
 * status and applied only forward (sql/002_whatsapp.sql), whatever order
 * the callbacks come in.  A status this module does not know is logged,
 * never applied.
 */

static ngx_int_t
ngx_agentlocator_wa_twilio_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_str_t *sid)
{
    ngx_int_t                       rc;
    ngx_str_t                       status, code;
    const char                     *err;
    ngx_agentlocator_wa_status_t    st;

    err = ngx_agentlocator_wa_form_status(form, &st);
    if (err) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    ngx_agentlocator_wa_str(&status, &st.status);
    ngx_agentlocator_wa_str(&code, &st.error_code);

    rc = ngx_agentlocator_crm_wa_status("twilio", sid, &status, &code);

    if (rc == NGX_BUSY || rc == NGX_ERROR) {
        return ngx_agentlocator_wa_retry_later(r, "twilio", sid);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "WA_STATUS provider=twilio message=%V status=%V%s%V",
                  sid, &status, code.len ? " error=" : "", &code);

    return ngx_agentlocator_reply(r, NGX_HTTP_NO_CONTENT, NULL, NULL);
}


/*
 * The bridge's webhook: the body's HMAC-SHA256 with the shared secret, in
 * hex, in X-BAILEYS-SIGNATURE, checked before the body is parsed.
 */

static ngx_int_t
ngx_agentlocator_wa_baileys(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                          *buf;
    u_char                           safe[NGX_AGENTLOCATOR_WA_MAX_MSG_ID + 1];
    ngx_int_t                        rc;
    ngx_str_t                        ok, url, type;
    const char                      *err;
    ngx_table_elt_t                 *h;
    ngx_agentlocator_wa_inbound_t    in;
    ngx_agentlocator_main_conf_t    *amcf;
    ngx_agentlocator_crm_message_t   m;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    h = ngx_agentlocator_find_header(r, "X-BAILEYS-SIGNATURE",
                                     sizeof("X-BAILEYS-SIGNATURE") - 1);

    if (h == NULL
        || ngx_agentlocator_baileys_verify(&amcf->baileys_secret, body,
                                           &h->value)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "SIGNATURE_INVALID provider=baileys reason=%s",
                      h ? "mismatch" : "missing");

        return ngx_agentlocator_reply_error(r, NGX_HTTP_FORBIDDEN,
                                            "invalid X-BAILEYS-SIGNATURE");
    }

    buf = ngx_pnalloc(r->pool, body->len + 1);
    if (buf == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    err = ngx_agentlocator_wa_baileys_body(body->data, body->len, buf,
                                           body->len + 1, &in);
    if (err) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    ngx_memzero(&m, sizeof(ngx_agentlocator_crm_message_t));
    m.provider = "baileys";
    m.business_number = amcf->baileys_number;

    m.peer.data = in.peer.data;
    m.peer.len = in.peer.len;
    m.msg_id.data = in.msg_id.data;
    m.msg_id.len = in.msg_id.len;
    m.body.data = in.text.data;
    m.body.len = in.text.len;
    m.name.data = in.name.data;
    m.name.len = in.name.len;

    url.data = in.media_url.data;
    url.len = in.media_url.len;
    type.data = in.media_type.data;
    type.len = in.media_type.len;

    if (url.len
        && ngx_agentlocator_wa_media(r->pool, &url, &type, 1, &m.media)
           != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rc = ngx_agentlocator_crm_wa_inbound(&m);

    if (rc == NGX_BUSY || rc == NGX_ERROR) {
        return ngx_agentlocator_wa_retry_later(r, "baileys", &m.msg_id);
    }

    ngx_agentlocator_log_safe(safe, sizeof(safe), &m.msg_id);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "WA_INBOUND provider=baileys message=%s media=%d",
                  safe, url.len ? 1 : 0);

    ngx_str_set(&ok, "{\"ok\":true}\n");

    return ngx_agentlocator_reply(r, NGX_HTTP_OK, &ngx_agentlocator_wa_json,
                                  &ok);
}


/*
 * The signature of a body for (and from) the bridge: lowercase hex of its
 * HMAC-SHA256 with the shared secret, 64 characters at "hex".
 */

void
ngx_agentlocator_baileys_sign(ngx_str_t *secret, ngx_str_t *body, u_char *hex)
{
    ngx_agentlocator_baileys_hex(secret->data, secret->len, body->data,
                                 body->len, hex);
}


ngx_int_t
ngx_agentlocator_baileys_verify(ngx_str_t *secret, ngx_str_t *body,
    ngx_str_t *signature)
{
    return ngx_agentlocator_baileys_sig_ok(secret->data, secret->len,
                                           body->data, body->len,
                                           signature->data, signature->len)
           ? NGX_OK : NGX_DECLINED;
}


/* the cores' strings are laid out as ngx_str_t, copied field by field */

static void
ngx_agentlocator_wa_str(ngx_str_t *dst, ngx_agentlocator_form_str_t *src)
{
    dst->data = src->data;
    dst->len = src->len;
}


/* "whatsapp:+972501234567" or "+972501234567": the number, E.164. */

static ngx_int_t
ngx_agentlocator_wa_address(ngx_str_t *value, ngx_str_t *number)
{
    ngx_agentlocator_form_str_t  v;

    if (!ngx_agentlocator_wa_number(value->data, value->len, &v)) {
        return NGX_DECLINED;
    }

    number->data = v.data;
    number->len = v.len;

    return NGX_OK;
}


/* [{"url": ..., "content_type": ...}, ...], made by yajl's generator. */

ngx_int_t
ngx_agentlocator_wa_media_json(void *gen, ngx_str_t *urls, ngx_str_t *types,
    ngx_uint_t n)
{
    yajl_gen    g = gen;
    ngx_uint_t  i;

    (void) yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    yajl_gen_array_open(g);

    for (i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        yajl_gen_string(g, (u_char *) "url", 3);
        yajl_gen_string(g, urls[i].data, urls[i].len);
        yajl_gen_string(g, (u_char *) "content_type", 12);

        if (types[i].len) {
            yajl_gen_string(g, types[i].data, types[i].len);

        } else {
            yajl_gen_null(g);
        }

        yajl_gen_map_close(g);
    }

    /* a URL that is not UTF-8 leaves the generator in error */
    return yajl_gen_array_close(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/* The same, copied into the request's pool; none when it cannot be. */

static ngx_int_t
ngx_agentlocator_wa_media(ngx_pool_t *pool, ngx_str_t *urls,
    ngx_str_t *types, ngx_uint_t n, ngx_str_t *out)
{
    size_t                len;
    yajl_gen              g;
    const unsigned char  *buf;

    ngx_str_null(out);

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    if (ngx_agentlocator_wa_media_json(g, urls, types, n) != NGX_OK
        || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
    {
        /* stored without its media */
        yajl_gen_free(g);
        return NGX_OK;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    out->len = len;
    ngx_memcpy(out->data, buf, len);

    yajl_gen_free(g);

    return NGX_OK;
}


/*
 * The write could be neither spooled nor queued: the sender is asked to
 * try again (Twilio's and the bridge's retries).
 */

static ngx_int_t
ngx_agentlocator_wa_retry_later(ngx_http_request_t *r, const char *provider,
    ngx_str_t *msg_id)
{
    u_char  safe[NGX_AGENTLOCATOR_WA_MAX_MSG_ID + 1];

    static ngx_str_t  retry_after = ngx_string("5");

    ngx_agentlocator_log_safe(safe, sizeof(safe), msg_id);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "WA_NOT_STORED provider=%s message=%s: the CRM queue is "
                  "full; asking the sender to retry", provider, safe);

    (void) ngx_agentlocator_add_header(r, "Retry-After", &retry_after);

    return ngx_agentlocator_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "cannot store the message now");
}


/*
 * agentlocator_baileys URL secret=SECRET [number=+E164]: the bridge's base
 * URL (its POST /send), the secret both sides sign bodies with (literal,
 * env: or file:), and the WhatsApp number it is logged in as, which names
 * the business its messages belong to (else the default business).
 */

char *
ngx_agentlocator_baileys_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf)
{
    ngx_str_t                      *value, v;
    ngx_uint_t                      i;
    const char                     *err;
    ngx_agentlocator_public_url_t   url;

    if (amcf->baileys_url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = ngx_agentlocator_public_url_parse(cf->pool, &value[1], &url);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_baileys URL \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    amcf->baileys_url = url.url;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "secret=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            err = ngx_agentlocator_secret_load(cf, &v, &amcf->baileys_secret);
            if (err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_baileys secret %s", err);
                return NGX_CONF_ERROR;
            }

            if (amcf->baileys_secret.len < 16) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_baileys secret must be at "
                                   "least 16 bytes");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "number=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            if (ngx_agentlocator_wa_address(&v, &amcf->baileys_number)
                != NGX_OK)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_baileys \"%V\": the number "
                                   "must be +E164", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_baileys parameter \"%V\", "
                           "expected \"secret=\" or \"number=\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (amcf->baileys_secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_baileys needs secret= (literal, "
                           "env:NAME or file:/path)");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
