
/*
 * POST /api/whatsapp/send (SPEC §8): a message out through Twilio's
 * Messages API or the Baileys bridge's POST /send, on the module's one
 * outbound HTTP engine (never blocking the worker).  "auto" tries the
 * providers in the configured order and moves to the next when one fails.
 * The CRM row is written "queued" before the first attempt and "sent" or
 * "failed" after the last (ngx_agentlocator_crm_wa_outbound: the two land
 * on one row, named by our own reference, in either order).  The send
 * outlives its request: a client that goes away still gets its message
 * sent and its row written.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_json.h"
#include "ngx_agentlocator_service_reply.h"
#include "ngx_agentlocator_wa_body.h"

#include <openssl/rand.h>


/* the send request's bounds: ngx_agentlocator_wa_body.h */
#define NGX_AGENTLOCATOR_SEND_MAX_ERROR    256
#define NGX_AGENTLOCATOR_SEND_REF_LEN      34      /* "WA" + 32 hex */


typedef struct {
    ngx_uint_t                    provider;
    ngx_uint_t                    status;       /* HTTP, 0: none */
    ngx_str_t                     code;         /* the provider's */
    u_char                        code_buf[NGX_INT64_LEN];
    u_char                        error[NGX_AGENTLOCATOR_SEND_MAX_ERROR];
    size_t                        error_len;
} ngx_agentlocator_send_attempt_t;


typedef struct {
    ngx_http_request_t           *r;            /* NULL: the client left */
    ngx_pool_cleanup_t           *cln;
    ngx_log_t                    *log;
    long long                     business_id;
    ngx_uint_t                    providers[2];
    ngx_uint_t                    nproviders;
    ngx_uint_t                    attempt;      /* the one in flight */
    ngx_agentlocator_send_attempt_t  attempts[2];
    u_char                        ref[NGX_AGENTLOCATOR_SEND_REF_LEN];
    ngx_str_t                     to;
    ngx_str_t                     text;
    ngx_str_t                     media_url;
    u_char                        msg_id[NGX_AGENTLOCATOR_SEND_MAX_MSG_ID];
    size_t                        msg_id_len;
    u_char                        data[1];      /* to, text, media_url */
} ngx_agentlocator_send_t;


static void ngx_agentlocator_send_body(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_send_start(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_send_attempt(ngx_agentlocator_send_t *snd);
static ngx_int_t ngx_agentlocator_send_twilio(ngx_agentlocator_send_t *snd);
static ngx_int_t ngx_agentlocator_send_baileys(ngx_agentlocator_send_t *snd);
static void ngx_agentlocator_send_done(ngx_agentlocator_http_result_t *result,
    void *data);
static ngx_int_t ngx_agentlocator_send_answer(ngx_agentlocator_send_t *snd,
    ngx_agentlocator_http_result_t *result);
static void ngx_agentlocator_send_next(ngx_agentlocator_send_t *snd);
static void ngx_agentlocator_send_finish(ngx_agentlocator_send_t *snd,
    ngx_uint_t sent);
static void ngx_agentlocator_send_row(ngx_agentlocator_send_t *snd,
    const char *status);
static ngx_int_t ngx_agentlocator_send_reply(ngx_agentlocator_send_t *snd,
    ngx_uint_t sent);
static void ngx_agentlocator_send_cleanup(void *data);
static void ngx_agentlocator_send_error(ngx_agentlocator_send_t *snd,
    ngx_uint_t status, const char *fmt, ngx_str_t *a, ngx_str_t *b);
static ngx_uint_t ngx_agentlocator_send_provider(ngx_str_t *name);
static const char *ngx_agentlocator_send_provider_name(ngx_uint_t provider);


static ngx_str_t  ngx_agentlocator_send_json = ngx_string("application/json");


/*
 * After the API's route and auth (ngx_agentlocator_api.c): the body is
 * read, then the send starts.
 */

ngx_int_t
ngx_agentlocator_whatsapp_send(ngx_http_request_t *r, long long business_id)
{
    ngx_int_t                     rc;
    long long                    *id;
    ngx_agentlocator_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    if (!ngx_agentlocator_content_type(r, "application/json")) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                     "Content-Type must be application/json");
    }

    if (r->headers_in.content_length_n > (off_t) alcf->max_body) {
        return ngx_agentlocator_api_error(r,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "request body too large");
    }

    id = ngx_palloc(r->pool, sizeof(long long));
    if (id == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *id = business_id;
    ngx_http_set_ctx(r, id, ngx_http_agentlocator_module);

    rc = ngx_http_read_client_request_body(r, ngx_agentlocator_send_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_agentlocator_send_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_agentlocator_send_start(r);

    /* NGX_DONE: the send holds the request (r->main->count) */
    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_agentlocator_send_start(ngx_http_request_t *r)
{
    u_char                        *p, *buf, rnd[16];
    ngx_int_t                      rc;
    ngx_str_t                      body, to, text, url, provider;
    long long                     *business_id;
    const char                    *err;
    ngx_uint_t                     i, want;
    ngx_pool_cleanup_t            *cln;
    ngx_agentlocator_send_t       *snd;
    ngx_agentlocator_loc_conf_t   *alcf;
    ngx_agentlocator_main_conf_t  *amcf;
    ngx_agentlocator_wa_send_t     req;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    business_id = ngx_http_get_module_ctx(r, ngx_http_agentlocator_module);

    rc = ngx_agentlocator_read_body(r, alcf->max_body, &body);

    if (rc == NGX_DECLINED) {
        return ngx_agentlocator_api_error(r,
                                          NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "request body too large");
    }

    if (rc != NGX_OK) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "cannot read the request body");
    }

    buf = ngx_pnalloc(r->pool, body.len + 1);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err = ngx_agentlocator_wa_send_body(body.data, body.len, buf,
                                        body.len + 1, &req);
    if (err) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    to.data = req.to.data;
    to.len = req.to.len;
    text.data = req.text.data;
    text.len = req.text.len;
    url.data = req.media_url.data;
    url.len = req.media_url.len;
    provider.data = req.provider.data;
    provider.len = req.provider.len;

    snd = ngx_calloc(sizeof(ngx_agentlocator_send_t) + to.len + text.len
                     + url.len, r->connection->log);
    if (snd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* which providers, in which order */

    if (provider.len == 0
        || (provider.len == 4 && ngx_strncmp(provider.data, "auto", 4) == 0))
    {
        for (i = 0; i < amcf->wa_nproviders; i++) {
            snd->providers[i] = amcf->wa_providers[i];
        }

        snd->nproviders = amcf->wa_nproviders;
        err = "no WhatsApp provider is configured";

    } else {
        want = ngx_agentlocator_send_provider(&provider);

        for (i = 0; i < amcf->wa_nproviders; i++) {
            if (want && amcf->wa_providers[i] == want) {
                snd->providers[0] = want;
                snd->nproviders = 1;
            }
        }

        err = want ? "that provider is not configured"
                   : "provider must be auto, twilio or baileys";
    }

    if (snd->nproviders == 0) {
        ngx_free(snd);

        /* none at all is this server's configuration, not the client's */
        return ngx_agentlocator_api_error(r, amcf->wa_nproviders
                                             ? NGX_HTTP_BAD_REQUEST
                                             : NGX_HTTP_SERVICE_UNAVAILABLE,
                                          err);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(snd);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_agentlocator_send_cleanup;
    cln->data = snd;

    snd->r = r;
    snd->cln = cln;
    snd->log = ngx_cycle->log;
    snd->business_id = *business_id;

    p = snd->data;
    snd->to.data = p;
    snd->to.len = to.len;
    p = ngx_cpymem(p, to.data, to.len);
    snd->text.data = p;
    snd->text.len = text.len;
    p = ngx_cpymem(p, text.data, text.len);
    snd->media_url.data = p;
    snd->media_url.len = url.len;
    (void) ngx_cpymem(p, url.data, url.len);

    /* our reference: unguessable, so it names this message and no other */
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        for (i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (u_char) ngx_random();
        }
    }

    snd->ref[0] = 'W';
    snd->ref[1] = 'A';
    (void) ngx_hex_dump(snd->ref + 2, rnd, sizeof(rnd));

    ngx_agentlocator_send_row(snd, "queued");

    r->main->count++;

    if (ngx_agentlocator_send_attempt(snd) != NGX_OK) {
        /* not even started: the next provider, or the answer now */
        ngx_agentlocator_send_next(snd);
    }

    return NGX_DONE;
}


/* The attempt "snd->attempt" goes out; NGX_ERROR: it could not start. */

static ngx_int_t
ngx_agentlocator_send_attempt(ngx_agentlocator_send_t *snd)
{
    ngx_agentlocator_send_attempt_t  *a;

    a = &snd->attempts[snd->attempt];
    a->provider = snd->providers[snd->attempt];

    if (a->provider == NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO) {
        return ngx_agentlocator_send_twilio(snd);
    }

    return ngx_agentlocator_send_baileys(snd);
}


/* Twilio's Messages API: a form, Basic auth with the account's token. */

static ngx_int_t
ngx_agentlocator_send_twilio(ngx_agentlocator_send_t *snd)
{
    u_char                        *p;
    ngx_str_t                      url, form;
    ngx_agentlocator_http_out_t    out;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_agentlocator_module);

    url.len = amcf->api_url.len + sizeof("/2010-04-01/Accounts//Messages.json")
              + amcf->account_sid.len;
    form.len = sizeof("To=whatsapp%3A&From=whatsapp%3A&Body=&MediaUrl="
                      "&StatusCallback=")
               + 3 * (snd->to.len + amcf->wa_from.len + snd->text.len
                      + snd->media_url.len + amcf->wa_status_callback.len);

    url.data = ngx_alloc(url.len + form.len, snd->log);
    if (url.data == NULL) {
        ngx_agentlocator_send_error(snd, 0, "out of memory", NULL, NULL);
        return NGX_ERROR;
    }

    url.len = ngx_sprintf(url.data, "%V/2010-04-01/Accounts/%V/Messages.json",
                          &amcf->api_url, &amcf->account_sid)
              - url.data;

    form.data = url.data + url.len;
    p = ngx_cpymem(form.data, "To=whatsapp%3A", 14);
    p = ngx_agentlocator_form_encode(p, &snd->to);
    p = ngx_cpymem(p, "&From=whatsapp%3A", 17);
    p = ngx_agentlocator_form_encode(p, &amcf->wa_from);

    if (snd->text.len) {
        p = ngx_cpymem(p, "&Body=", 6);
        p = ngx_agentlocator_form_encode(p, &snd->text);
    }

    if (snd->media_url.len) {
        p = ngx_cpymem(p, "&MediaUrl=", 10);
        p = ngx_agentlocator_form_encode(p, &snd->media_url);
    }

    if (amcf->wa_status_callback.len) {
        p = ngx_cpymem(p, "&StatusCallback=", 16);
        p = ngx_agentlocator_form_encode(p, &amcf->wa_status_callback);
    }

    form.len = p - form.data;

    ngx_memzero(&out, sizeof(ngx_agentlocator_http_out_t));
    out.url = url;
    out.user = amcf->account_sid;
    out.password = amcf->auth_token;
    out.body = form;
    out.timeout = amcf->wa_timeout;

    if (ngx_agentlocator_http_send(&out, ngx_agentlocator_send_done, snd,
                                   snd->log)
        == NULL)
    {
        ngx_free(url.data);
        ngx_agentlocator_send_error(snd, 0, "cannot start the request",
                                    NULL, NULL);
        return NGX_ERROR;
    }

    ngx_free(url.data);

    return NGX_OK;
}


/* The bridge's POST /send: JSON, signed like its webhooks. */

static ngx_int_t
ngx_agentlocator_send_baileys(ngx_agentlocator_send_t *snd)
{
    u_char                        *p;
    size_t                         len;
    yajl_gen                       g;
    ngx_str_t                      url, body;
    const unsigned char           *buf;
    ngx_agentlocator_http_out_t    out;
    ngx_agentlocator_main_conf_t  *amcf;
    u_char                         header[sizeof("X-BAILEYS-SIGNATURE: ")
                                          + 64];

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_agentlocator_module);

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        ngx_agentlocator_send_error(snd, 0, "out of memory", NULL, NULL);
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);
    yajl_gen_string(g, (u_char *) "to", 2);
    yajl_gen_string(g, snd->to.data, snd->to.len);
    yajl_gen_string(g, (u_char *) "text", 4);

    if (snd->text.len) {
        yajl_gen_string(g, snd->text.data, snd->text.len);

    } else {
        yajl_gen_null(g);
    }

    yajl_gen_string(g, (u_char *) "media_url", 9);

    if (snd->media_url.len) {
        yajl_gen_string(g, snd->media_url.data, snd->media_url.len);

    } else {
        yajl_gen_null(g);
    }

    yajl_gen_map_close(g);

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        yajl_gen_free(g);
        ngx_agentlocator_send_error(snd, 0, "the text is not UTF-8",
                                    NULL, NULL);
        return NGX_ERROR;
    }

    url.len = amcf->baileys_url.len + sizeof("/send") - 1;
    url.data = ngx_alloc(url.len, snd->log);
    if (url.data == NULL) {
        yajl_gen_free(g);
        ngx_agentlocator_send_error(snd, 0, "out of memory", NULL, NULL);
        return NGX_ERROR;
    }

    ngx_sprintf(url.data, "%V/send", &amcf->baileys_url);

    body.data = (u_char *) buf;
    body.len = len;

    p = ngx_cpymem(header, "X-BAILEYS-SIGNATURE: ",
                   sizeof("X-BAILEYS-SIGNATURE: ") - 1);
    ngx_agentlocator_baileys_sign(&amcf->baileys_secret, &body, p);

    ngx_memzero(&out, sizeof(ngx_agentlocator_http_out_t));
    out.url = url;
    out.content_type = ngx_agentlocator_send_json;
    out.header.data = header;
    out.header.len = p + 64 - header;
    out.body = body;
    out.timeout = amcf->wa_timeout;

    if (ngx_agentlocator_http_send(&out, ngx_agentlocator_send_done, snd,
                                   snd->log)
        == NULL)
    {
        ngx_free(url.data);
        yajl_gen_free(g);
        ngx_agentlocator_send_error(snd, 0, "cannot start the request",
                                    NULL, NULL);
        return NGX_ERROR;
    }

    ngx_free(url.data);
    yajl_gen_free(g);

    return NGX_OK;
}


static void
ngx_agentlocator_send_done(ngx_agentlocator_http_result_t *result,
    void *data)
{
    ngx_agentlocator_send_t *snd = data;

    if (result->aborted) {
        /*
         * the worker is going away (a fast stop, worker_shutdown_timeout):
         * the provider may or may not have the message, so the row stays
         * "queued" and no other provider is tried; the client's connection
         * goes with the worker, unanswered
         */
        ngx_log_error(NGX_LOG_WARN, snd->log, 0,
                      "WA_SEND_UNKNOWN ref=%*s provider=%s: %s",
                      (size_t) NGX_AGENTLOCATOR_SEND_REF_LEN, snd->ref,
                      ngx_agentlocator_send_provider_name(
                          snd->providers[snd->attempt]),
                      result->error);

        if (snd->r) {
            snd->cln->handler = NULL;
        }

        ngx_free(snd);
        return;
    }

    if (ngx_agentlocator_send_answer(snd, result) == NGX_OK) {
        ngx_agentlocator_send_finish(snd, 1);
        return;
    }

    ngx_agentlocator_send_next(snd);
}


/*
 * What the provider said: the message's id (sent), or why not: Twilio's
 * {"code": 63016, "message": "..."}, the bridge's {"error": "..."}, an
 * HTTP status, or what curl said.
 */

static ngx_int_t
ngx_agentlocator_send_answer(ngx_agentlocator_send_t *snd,
    ngx_agentlocator_http_result_t *result)
{
    u_char                             *buf, sbuf[NGX_INT_T_LEN];
    ngx_str_t                           id, msg, code, status;
    ngx_uint_t                          twilio;
    ngx_agentlocator_send_attempt_t    *a;
    ngx_agentlocator_provider_reply_t   reply;

    a = &snd->attempts[snd->attempt];
    twilio = (a->provider == NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO);

    a->status = result->status;

    if (result->curl_code) {
        msg.data = (u_char *) result->error;
        msg.len = ngx_strlen(result->error);
        ngx_agentlocator_send_error(snd, 0, "%V", &msg, NULL);
        return NGX_ERROR;
    }

    buf = ngx_alloc(result->body.len + 1, snd->log);

    if (buf == NULL) {
        ngx_memzero(&reply, sizeof(ngx_agentlocator_provider_reply_t));

    } else {
        /* JSON it refuses: the status says enough, with what it named */
        (void) ngx_agentlocator_provider_reply(result->body.data,
                                               result->body.len, twilio, buf,
                                               result->body.len + 1, &reply);
    }

    id.data = reply.id.data;
    id.len = reply.id.len;

    if (result->status >= 200 && result->status < 300 && id.len
        && (!twilio || ngx_agentlocator_valid_sid(&id, "SM") == NGX_OK
            || ngx_agentlocator_valid_sid(&id, "MM") == NGX_OK))
    {
        ngx_memcpy(snd->msg_id, id.data, id.len);
        snd->msg_id_len = id.len;
        ngx_free(buf);
        return NGX_OK;
    }

    msg.data = reply.message.data;
    msg.len = reply.message.len;

    if (reply.has_code) {
        code.data = a->code_buf;
        code.len = ngx_sprintf(a->code_buf, "%L", (int64_t) reply.code)
                   - a->code_buf;
        a->code = code;

    } else {
        ngx_str_null(&code);
    }

    status.data = sbuf;
    status.len = ngx_sprintf(sbuf, "%ui", result->status) - sbuf;

    if (result->status >= 200 && result->status < 300) {
        ngx_agentlocator_send_error(snd, result->status,
                                    "answered %V without a message id",
                                    &status, NULL);

    } else if (msg.len) {
        ngx_agentlocator_send_error(snd, result->status, "%V: %V",
                                    code.len ? &code : &status, &msg);

    } else {
        ngx_agentlocator_send_error(snd, result->status, "HTTP %V",
                                    &status, NULL);
    }

    ngx_free(buf);

    return NGX_ERROR;
}


/* This attempt failed: the next provider, or the end. */

static void
ngx_agentlocator_send_next(ngx_agentlocator_send_t *snd)
{
    ngx_agentlocator_send_attempt_t  *a;

    a = &snd->attempts[snd->attempt];

    while (snd->attempt + 1 < snd->nproviders) {
        ngx_log_error(NGX_LOG_WARN, snd->log, 0,
                      "WA_SEND_FALLBACK ref=%*s from=%s to=%s: %*s",
                      (size_t) NGX_AGENTLOCATOR_SEND_REF_LEN, snd->ref,
                      ngx_agentlocator_send_provider_name(a->provider),
                      ngx_agentlocator_send_provider_name(
                          snd->providers[snd->attempt + 1]),
                      a->error_len, a->error);

        snd->attempt++;

        if (ngx_agentlocator_send_attempt(snd) == NGX_OK) {
            return;
        }

        a = &snd->attempts[snd->attempt];
    }

    ngx_agentlocator_send_finish(snd, 0);
}


/*
 * The end: sent (1) or failed (0).  The row is written, the client
 * answered if it is still there.
 */

static void
ngx_agentlocator_send_finish(ngx_agentlocator_send_t *snd, ngx_uint_t sent)
{
    ngx_agentlocator_send_attempt_t  *a;

    a = &snd->attempts[ngx_min(snd->attempt, snd->nproviders - 1)];

    if (sent) {
        ngx_log_error(NGX_LOG_INFO, snd->log, 0,
                      "WA_SEND ref=%*s provider=%s status=sent message=%*s",
                      (size_t) NGX_AGENTLOCATOR_SEND_REF_LEN, snd->ref,
                      ngx_agentlocator_send_provider_name(a->provider),
                      snd->msg_id_len, snd->msg_id);

        ngx_agentlocator_send_row(snd, "sent");

    } else {
        ngx_log_error(NGX_LOG_ERR, snd->log, 0,
                      "WA_SEND ref=%*s provider=%s status=failed: %*s",
                      (size_t) NGX_AGENTLOCATOR_SEND_REF_LEN, snd->ref,
                      ngx_agentlocator_send_provider_name(a->provider),
                      a->error_len, a->error);

        ngx_agentlocator_send_row(snd, "failed");
    }

    if (snd->r) {
        /* the request's pool no longer needs to tell us it is gone */
        snd->cln->handler = NULL;

        ngx_agentlocator_api_finish(snd->r,
                                    ngx_agentlocator_send_reply(snd, sent));
    }

    ngx_free(snd);
}


/* The CRM's row of the message, "queued", "sent" or "failed". */

static void
ngx_agentlocator_send_row(ngx_agentlocator_send_t *snd, const char *status)
{
    u_char                           *p, *last;
    yajl_gen                          g;
    ngx_str_t                         none = ngx_null_string;
    ngx_uint_t                        i;
    ngx_agentlocator_send_attempt_t  *a;
    ngx_agentlocator_crm_message_t    m;
    u_char                            errors[2 * NGX_AGENTLOCATOR_SEND_MAX_ERROR
                                             + 32];

    ngx_memzero(&m, sizeof(ngx_agentlocator_crm_message_t));

    a = &snd->attempts[ngx_min(snd->attempt, snd->nproviders - 1)];

    m.provider = ngx_agentlocator_send_provider_name(
                     status[0] == 'q' ? snd->providers[0] : a->provider);
    m.local_id.data = snd->ref;
    m.local_id.len = NGX_AGENTLOCATOR_SEND_REF_LEN;
    m.peer = snd->to;
    m.body = snd->text;

    if (status[0] == 's') {
        m.msg_id.data = snd->msg_id;
        m.msg_id.len = snd->msg_id_len;

    } else if (status[0] == 'f') {
        /* the last provider's code that gave one (Twilio's 63016, say) */
        for (i = 0; i <= snd->attempt && i < snd->nproviders; i++) {
            if (snd->attempts[i].code.len) {
                m.error_code = snd->attempts[i].code;
            }
        }

        /* every provider's reason, in the order they were tried */
        p = errors;
        last = errors + sizeof(errors);

        for (i = 0; i <= snd->attempt && i < snd->nproviders; i++) {
            p = ngx_slprintf(p, last, "%s%s: %*s", i ? "; " : "",
                             ngx_agentlocator_send_provider_name(
                                 snd->attempts[i].provider),
                             snd->attempts[i].error_len,
                             snd->attempts[i].error);
        }

        m.error_message.data = errors;
        m.error_message.len = p - errors;
    }

    g = NULL;

    if (snd->media_url.len) {
        /* the same shape as an inbound message's media */
        g = yajl_gen_alloc(NULL);

        if (g
            && ngx_agentlocator_wa_media_json(g, &snd->media_url, &none, 1)
               == NGX_OK)
        {
            (void) yajl_gen_get_buf(g, (const unsigned char **) &m.media.data,
                                    &m.media.len);
        }
    }

    if (ngx_agentlocator_crm_wa_outbound(&m, snd->business_id, status)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, snd->log, 0,
                      "WA_SEND ref=%*s: the CRM could not take the \"%s\" "
                      "row", (size_t) NGX_AGENTLOCATOR_SEND_REF_LEN,
                      snd->ref, status);
    }

    if (g) {
        yajl_gen_free(g);
    }
}


/*
 * 200 {"ref", "status": "sent", "provider", "provider_msg_id", "attempts"}
 * or 502 {"ref", "status": "failed", "error", "attempts"}; each attempt
 * {"provider", "error"} for those that failed.
 */

static ngx_int_t
ngx_agentlocator_send_reply(ngx_agentlocator_send_t *snd, ngx_uint_t sent)
{
    const char                       *name;
    yajl_gen                          g;
    ngx_int_t                         rc;
    ngx_uint_t                        i, n;
    ngx_agentlocator_send_attempt_t  *a;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = ngx_min(snd->attempt + 1, snd->nproviders);
    a = &snd->attempts[n - 1];
    name = ngx_agentlocator_send_provider_name(a->provider);

    yajl_gen_map_open(g);
    yajl_gen_string(g, (u_char *) "ref", 3);
    yajl_gen_string(g, snd->ref, NGX_AGENTLOCATOR_SEND_REF_LEN);
    yajl_gen_string(g, (u_char *) "status", 6);
    yajl_gen_string(g, (u_char *) (sent ? "sent" : "failed"), sent ? 4 : 6);

    if (sent) {
        yajl_gen_string(g, (u_char *) "provider", 8);
        yajl_gen_string(g, (u_char *) name, ngx_strlen(name));
        yajl_gen_string(g, (u_char *) "provider_msg_id", 15);
        yajl_gen_string(g, snd->msg_id, snd->msg_id_len);

    } else {
        yajl_gen_string(g, (u_char *) "error", 5);
        yajl_gen_string(g, a->error, a->error_len);
    }

    yajl_gen_string(g, (u_char *) "attempts", 8);
    yajl_gen_array_open(g);

    for (i = 0; i < n; i++) {
        a = &snd->attempts[i];
        name = ngx_agentlocator_send_provider_name(a->provider);

        yajl_gen_map_open(g);
        yajl_gen_string(g, (u_char *) "provider", 8);
        yajl_gen_string(g, (u_char *) name, ngx_strlen(name));

        if (sent && i == n - 1) {
            yajl_gen_string(g, (u_char *) "status", 6);
            yajl_gen_string(g, (u_char *) "sent", 4);

        } else {
            yajl_gen_string(g, (u_char *) "status", 6);
            yajl_gen_string(g, (u_char *) "failed", 6);
            yajl_gen_string(g, (u_char *) "error", 5);
            yajl_gen_string(g, a->error, a->error_len);
        }

        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    rc = ngx_agentlocator_api_json_reply(snd->r, sent ? NGX_HTTP_OK
                                                      : NGX_HTTP_BAD_GATEWAY,
                                         g);
    yajl_gen_free(g);

    return rc;
}


static void
ngx_agentlocator_send_cleanup(void *data)
{
    ngx_agentlocator_send_t *snd = data;

    /* the send goes on; nobody waits for its answer */
    snd->r = NULL;
}


/*
 * Why this attempt failed, at most NGX_AGENTLOCATOR_SEND_MAX_ERROR bytes:
 * "fmt" with up to two strings ("%V").
 */

static void
ngx_agentlocator_send_error(ngx_agentlocator_send_t *snd, ngx_uint_t status,
    const char *fmt, ngx_str_t *a, ngx_str_t *b)
{
    u_char                           *p;
    ngx_str_t                         none = ngx_null_string;
    ngx_agentlocator_send_attempt_t  *at;

    at = &snd->attempts[ngx_min(snd->attempt, 1)];
    at->status = status;

    p = ngx_snprintf(at->error, NGX_AGENTLOCATOR_SEND_MAX_ERROR, fmt,
                     a ? a : &none, b ? b : &none);

    /* it goes into JSON and the CRM: whole characters only */
    at->error_len = ngx_agentlocator_storable_prefix(at->error, p - at->error);
}


/* "twilio" or "baileys" as NGX_AGENTLOCATOR_WA_PROVIDER_*, else 0. */

static ngx_uint_t
ngx_agentlocator_send_provider(ngx_str_t *name)
{
    if (name->len == 6 && ngx_strncmp(name->data, "twilio", 6) == 0) {
        return NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO;
    }

    if (name->len == 7 && ngx_strncmp(name->data, "baileys", 7) == 0) {
        return NGX_AGENTLOCATOR_WA_PROVIDER_BAILEYS;
    }

    return 0;
}


static const char *
ngx_agentlocator_send_provider_name(ngx_uint_t provider)
{
    return provider == NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO ? "twilio"
                                                            : "baileys";
}


/*
 * agentlocator_whatsapp_send [providers=twilio,baileys] [from=+E164]
 * [status_callback=URL] [timeout=10s]: which providers "auto" tries, in
 * order; Twilio's WhatsApp sender and where it posts delivery statuses;
 * how long one attempt may take.
 */

char *
ngx_agentlocator_whatsapp_send_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf)
{
    u_char                         *p, *last, *comma;
    ngx_str_t                      *value, v, name;
    ngx_int_t                       ms;
    ngx_uint_t                      i, id;
    const char                     *err;
    ngx_agentlocator_public_url_t   url;

    if (amcf->wa_timeout != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->wa_timeout = 10000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "providers=", 10) == 0) {
            amcf->wa_nproviders = 0;

            for (p = value[i].data + 10, last = value[i].data + value[i].len;
                 p < last;
                 p = comma + 1)
            {
                comma = ngx_strlchr(p, last, ',');
                if (comma == NULL) {
                    comma = last;
                }

                name.data = p;
                name.len = comma - p;

                if (amcf->wa_nproviders == 2) {
                    goto invalid_providers;
                }

                id = ngx_agentlocator_send_provider(&name);
                if (id == 0) {
                    goto invalid_providers;
                }

                amcf->wa_providers[amcf->wa_nproviders++] = id;
            }

            if (amcf->wa_nproviders == 0
                || (amcf->wa_nproviders == 2
                    && amcf->wa_providers[0] == amcf->wa_providers[1]))
            {
                goto invalid_providers;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "from=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;

            if (v.len > 9 && ngx_strncmp(v.data, "whatsapp:", 9) == 0) {
                v.data += 9;
                v.len -= 9;
            }

            if (ngx_agentlocator_e164(&v) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_whatsapp_send \"%V\": the "
                                   "sender must be +E164", &value[i]);
                return NGX_CONF_ERROR;
            }

            amcf->wa_from = v;
            continue;
        }

        if (ngx_strncmp(value[i].data, "status_callback=", 16) == 0) {
            v.data = value[i].data + 16;
            v.len = value[i].len - 16;

            err = ngx_agentlocator_public_url_parse(cf->pool, &v, &url);
            if (err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_whatsapp_send \"%V\": %s",
                                   &value[i], err);
                return NGX_CONF_ERROR;
            }

            amcf->wa_status_callback = v;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            v.data = value[i].data + 8;
            v.len = value[i].len - 8;

            ms = ngx_parse_time(&v, 0);

            if (ms == NGX_ERROR || ms < 100 || ms > 30000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "agentlocator_whatsapp_send \"%V\": the "
                                   "timeout is 100ms to 30s", &value[i]);
                return NGX_CONF_ERROR;
            }

            amcf->wa_timeout = (ngx_msec_t) ms;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_whatsapp_send parameter "
                           "\"%V\", expected \"providers=\", \"from=\", "
                           "\"status_callback=\" or \"timeout=\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid_providers:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "agentlocator_whatsapp_send \"%V\": providers= is "
                       "\"twilio\", \"baileys\" or both, comma-separated, "
                       "in the order to try them", &value[i]);
    return NGX_CONF_ERROR;
}
