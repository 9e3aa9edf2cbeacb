
/*
 * The voice webhooks (SPEC §4): read and check the form Twilio posts,
 * authenticate it, update the registry, answer TwiML.  Bad input gets a 4xx
 * with a reason; trouble of our own never becomes a 5xx for Twilio: the
 * caller gets the fallback (a recording) instead of "an application error
 * has occurred".  The CallSid is checked once, where the form is read: the
 * handlers get it as a ngx_agentlocator_call_ref_t, checked and (when there
 * is a registry) hashed, and neither they nor the registry check it again.
 */


#include "ngx_agentlocator.h"


/*
 * stream_ended for a call whose redirect is in flight asks the registry
 * again this often, for at most the attempt's own timeout and a margin
 * (timeout= is at most 10 s, well within Twilio's 15 s for a webhook).
 */
#define NGX_AGENTLOCATOR_ENDED_POLL    10
#define NGX_AGENTLOCATOR_ENDED_MARGIN  1000


typedef struct {
    ngx_event_t                   poll;
    ngx_msec_t                    since;
    ngx_msec_t                    until;
    ngx_agentlocator_call_ref_t   call;         /* its SID copied */
} ngx_agentlocator_ended_wait_t;


static void ngx_agentlocator_voice_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_voice_process(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_voice_incoming_call(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call);
static ngx_int_t ngx_agentlocator_voice_stream_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call);
static ngx_int_t ngx_agentlocator_voice_stream_ended(ngx_http_request_t *r,
    ngx_agentlocator_call_ref_t *call);
static void ngx_agentlocator_voice_ended_poll(ngx_event_t *ev);
static void ngx_agentlocator_voice_ended_cleanup(void *data);
static ngx_int_t ngx_agentlocator_voice_ended_answer(ngx_http_request_t *r,
    ngx_str_t *call_sid, ngx_uint_t known, ngx_uint_t answer,
    ngx_msec_t waited, ngx_uint_t gave_up);
static void ngx_agentlocator_voice_recording_sid(ngx_str_t *url,
    ngx_str_t *sid);
static ngx_int_t ngx_agentlocator_voice_handle_recording(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call);
static ngx_int_t ngx_agentlocator_voice_call_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call);
static ngx_int_t ngx_agentlocator_voice_degraded(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_voice_twiml(ngx_http_request_t *r,
    ngx_str_t *twiml);


static ngx_str_t  ngx_agentlocator_text_xml = ngx_string("text/xml");
static ngx_str_t  ngx_agentlocator_text_plain = ngx_string("text/plain");


ngx_int_t
ngx_agentlocator_voice_handler(ngx_http_request_t *r)
{
    ngx_agentlocator_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    return ngx_agentlocator_read_post(r, NGX_AGENTLOCATOR_FORM_TYPE,
                                      alcf->max_body,
                                      ngx_agentlocator_voice_body_handler);
}


static void
ngx_agentlocator_voice_body_handler(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_agentlocator_voice_process(r));
}


static ngx_int_t
ngx_agentlocator_voice_process(ngx_http_request_t *r)
{
    ngx_int_t                     rc, sid_rc;
    ngx_str_t                     body, call_sid;
    ngx_uint_t                    sid_ok;
    const char                   *err;
    ngx_agentlocator_form_t      *form;
    ngx_agentlocator_call_ref_t   call;
    ngx_agentlocator_loc_conf_t  *alcf;
    ngx_agentlocator_registry_t  *reg;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    rc = ngx_agentlocator_read_body(r, alcf->max_body, &body);

    if (rc == NGX_DECLINED) {
        return ngx_agentlocator_reply_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "request body too large");
    }

    if (rc != NGX_OK) {
        return ngx_agentlocator_voice_degraded(r);
    }

    rc = ngx_agentlocator_form_new(r->pool, body.data, body.len, &form, &err);

    if (rc == NGX_DECLINED) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    if (rc != NGX_OK) {
        return ngx_agentlocator_voice_degraded(r);
    }

    sid_rc = ngx_agentlocator_form_get(form, "CallSid", &call_sid);

    if (sid_rc != NGX_OK) {
        ngx_str_null(&call_sid);
    }

    /*
     * The CallSid's one check: every handler below, the registry, the CRM
     * and the log lines take it as checked.  Its verdict is told after
     * the signature's, so that strangers learn nothing.
     */
    sid_ok = (ngx_agentlocator_valid_sid(&call_sid, "CA") == NGX_OK);

    reg = ngx_agentlocator_registry_get(
              ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module));

    call.sid = call_sid;
    call.hash = 0;

    if (sid_ok && reg) {
        /* one hash for every registry call; its loads overlap the HMAC */
        ngx_agentlocator_registry_ref(reg, &call);
        ngx_agentlocator_registry_prefetch(reg, &call);
    }

    /* authenticate before judging the content: strangers learn nothing */

    if (alcf->signature) {
        rc = ngx_agentlocator_signature_check(r, NULL, form, 0, &call_sid);

        if (rc == NGX_DECLINED) {
            return ngx_agentlocator_reply_error(r, NGX_HTTP_FORBIDDEN,
                                                "invalid X-Twilio-Signature");
        }

        if (rc != NGX_OK) {
            return ngx_agentlocator_voice_degraded(r);
        }
    }

    if (sid_rc == NGX_ERROR) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                            "conflicting CallSid values");
    }

    if (call_sid.len == 0) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                            "missing CallSid");
    }

    if (!sid_ok) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                            "malformed CallSid");
    }

    switch (alcf->voice) {

    case NGX_AGENTLOCATOR_VOICE_INCOMING_CALL:
        return ngx_agentlocator_voice_incoming_call(r, form, &call);

    case NGX_AGENTLOCATOR_VOICE_STREAM_STATUS:
        return ngx_agentlocator_voice_stream_status(r, form, &call);

    case NGX_AGENTLOCATOR_VOICE_STREAM_ENDED:
        return ngx_agentlocator_voice_stream_ended(r, &call);

    case NGX_AGENTLOCATOR_VOICE_HANDLE_RECORDING:
        return ngx_agentlocator_voice_handle_recording(r, form, &call);

    default: /* NGX_AGENTLOCATOR_VOICE_CALL_STATUS */
        return ngx_agentlocator_voice_call_status(r, form, &call);
    }
}


static ngx_int_t
ngx_agentlocator_voice_incoming_call(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call)
{
    u_char                         safe[80];
    ngx_int_t                      rc;
    ngx_str_t                      twiml, idempotency, *call_sid;
    ngx_table_elt_t               *h;
    ngx_uint_t                     created;
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_srv_conf_t   *ascf;
    ngx_agentlocator_main_conf_t  *amcf;
    ngx_agentlocator_call_info_t   info;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);

    call_sid = &call->sid;

    ngx_memzero(&info, sizeof(ngx_agentlocator_call_info_t));
    info.call = *call;

    /* optional fields: a conflicting repeat is ignored, not trusted */

    if (ngx_agentlocator_form_get(form, "AccountSid", &info.account_sid)
            != NGX_OK
        || ngx_agentlocator_valid_sid(&info.account_sid, "AC") != NGX_OK)
    {
        ngx_str_null(&info.account_sid);
    }

    if (ngx_agentlocator_form_get(form, "From", &info.from) != NGX_OK) {
        ngx_str_null(&info.from);
    }

    if (ngx_agentlocator_form_get(form, "To", &info.to) != NGX_OK) {
        ngx_str_null(&info.to);
    }

    reg = ngx_agentlocator_registry_get(amcf);
    created = 0;

    rc = reg ? ngx_agentlocator_registry_incoming(reg, &amcf->timeouts, &info,
                                                  &created)
             : NGX_BUSY;

    /*
     * Twilio's retries of a webhook carry the same idempotency token; a
     * replay carries whatever the replayer likes (headers are not
     * signed): logged to tell them apart, never trusted.
     */

    h = ngx_agentlocator_find_header(r, "I-Twilio-Idempotency-Token",
                                     sizeof("I-Twilio-Idempotency-Token") - 1);
    if (h) {
        idempotency = h->value;

    } else {
        ngx_str_set(&idempotency, "-");
    }

    ngx_agentlocator_log_safe(safe, sizeof(safe), &idempotency);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "CALL_REPLAY call=%V idempotency=%s: incoming_call for "
                      "a call that has ended; answered <Hangup/>, nothing "
                      "armed", call_sid, safe);

        (void) ngx_agentlocator_twiml_hangup(&twiml);

        return ngx_agentlocator_voice_twiml(r, &twiml);
    }

    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ZONE_FULL call=%V: agentlocator_zone has no room, "
                      "the call proceeds without the watchdog", call_sid);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "CALL_INCOMING call=%V state=armed repeat=%ui "
                      "idempotency=%s", call_sid, created ? 0 : 1, safe);
    }

    if (rc != NGX_OK || created) {
        /* queued, never waited for (a repeat would change nothing) */
        ngx_agentlocator_crm_incoming(&info);
    }

    if (ngx_agentlocator_twiml_connect(r->pool, ascf, call_sid, &twiml)
        != NGX_OK)
    {
        return ngx_agentlocator_voice_degraded(r);
    }

    return ngx_agentlocator_voice_twiml(r, &twiml);
}


static ngx_int_t
ngx_agentlocator_voice_stream_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call)
{
    u_char                         safe[32];
    u_char                         key[NGX_AGENTLOCATOR_SID_LEN + 32];
    ngx_int_t                      rc;
    ngx_str_t                      event, stream_sid, *call_sid;
    ngx_uint_t                     started, error;
    ngx_agentlocator_crm_event_t   ev;

    static ngx_str_t  none = ngx_string("-");
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    call_sid = &call->sid;

    if (ngx_agentlocator_form_get(form, "StreamEvent", &event) != NGX_OK) {
        ngx_str_null(&event);
    }

    if (ngx_agentlocator_form_get(form, "StreamSid", &stream_sid) != NGX_OK
        || ngx_agentlocator_valid_sid(&stream_sid, "MZ") != NGX_OK)
    {
        ngx_str_null(&stream_sid);
    }

    ngx_agentlocator_log_safe(safe, sizeof(safe), &event);

    started = (event.len == sizeof("stream-started") - 1
               && ngx_strncmp(event.data, "stream-started", event.len) == 0);
    error = (event.len == sizeof("stream-error") - 1
             && ngx_strncmp(event.data, "stream-error", event.len) == 0);

    if (!started && !error
        && !(event.len == sizeof("stream-stopped") - 1
             && ngx_strncmp(event.data, "stream-stopped", event.len) == 0))
    {
        /* Twilio adds events without notice: log, do not fail */
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "STREAM_STATUS call=%V event=%s ignored", call_sid,
                      safe);

        return ngx_agentlocator_reply(r, NGX_HTTP_NO_CONTENT, NULL, NULL);
    }

    reg = ngx_agentlocator_registry_get(amcf);

    rc = reg ? ngx_agentlocator_registry_stream_event(reg, &amcf->timeouts,
                                                      call, started, error,
                                                      &stream_sid)
             : NGX_DECLINED;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "STREAM_STATUS call=%V event=%s known=%d", call_sid, safe,
                  rc == NGX_OK);

    ngx_memzero(&ev, sizeof(ngx_agentlocator_crm_event_t));

    ev.call_sid = call_sid->data;
    ev.event = "stream_status";
    ev.reason = event;
    ev.frames = -1;
    ev.stream_sid = stream_sid.len ? stream_sid.data : NULL;

    /* Twilio's callback, once per stream and event */
    ev.key.data = key;
    ev.key.len = ngx_snprintf(key, sizeof(key), "%V:%V", &event,
                              stream_sid.len ? &stream_sid : &none)
                 - key;

    ngx_agentlocator_crm_event(&ev);

    return ngx_agentlocator_reply(r, NGX_HTTP_NO_CONTENT, NULL, NULL);
}


/*
 * stream_ended (<Connect action>): the fallback, unless the watchdog's
 * redirect landed (then an empty <Response/>).  While an attempt is in
 * flight the request waits for its outcome, without blocking the worker:
 * a landed redirect means <Response/>, a failed one the fallback (and no
 * retry after it).  Either way the caller hears the fallback once.
 */

static ngx_int_t
ngx_agentlocator_voice_stream_ended(ngx_http_request_t *r,
    ngx_agentlocator_call_ref_t *call)
{
    ngx_int_t                       rc;
    ngx_uint_t                      answer;
    ngx_pool_cleanup_t             *cln;
    ngx_agentlocator_registry_t    *reg;
    ngx_agentlocator_main_conf_t   *amcf;
    ngx_agentlocator_ended_wait_t  *wait;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    reg = ngx_agentlocator_registry_get(amcf);
    answer = NGX_AGENTLOCATOR_ENDED_FALLBACK;

    rc = reg ? ngx_agentlocator_registry_stream_ended(reg, &amcf->timeouts,
                                                      call, 0, &answer)
             : NGX_DECLINED;

    if (answer != NGX_AGENTLOCATOR_ENDED_WAIT) {
        return ngx_agentlocator_voice_ended_answer(r, &call->sid,
                                                   rc == NGX_OK, answer, 0, 0);
    }

    wait = ngx_pcalloc(r->pool, sizeof(ngx_agentlocator_ended_wait_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (wait == NULL || cln == NULL) {
        goto fallback;
    }

    wait->call = *call;
    wait->call.sid.data = ngx_pstrdup(r->pool, &call->sid);
    if (wait->call.sid.data == NULL) {
        goto fallback;
    }

    wait->since = ngx_current_msec;
    wait->until = wait->since + amcf->timeouts.rest_timeout
                  + NGX_AGENTLOCATOR_ENDED_MARGIN;

    /*
     * Not cancelable: a worker that exits gracefully answers first.  The
     * event's data is the connection (its c->data is this request), as
     * ngx_event_ident() expects of a timer's data in debug builds.
     */

    wait->poll.handler = ngx_agentlocator_voice_ended_poll;
    wait->poll.data = r->connection;
    wait->poll.log = r->connection->log;

    cln->handler = ngx_agentlocator_voice_ended_cleanup;
    cln->data = wait;

    ngx_http_set_ctx(r, wait, ngx_http_agentlocator_module);

    ngx_add_timer(&wait->poll, NGX_AGENTLOCATOR_ENDED_POLL);

    r->main->count++;

    return NGX_DONE;

fallback:

    /* no memory to wait with: give up waiting now */
    (void) ngx_agentlocator_registry_stream_ended(reg, &amcf->timeouts,
                                                  call, 1, &answer);

    return ngx_agentlocator_voice_ended_answer(r, &call->sid, 1, answer,
                                               0, 1);
}


static void
ngx_agentlocator_voice_ended_poll(ngx_event_t *ev)
{
    ngx_uint_t                      answer, give_up;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_agentlocator_registry_t    *reg;
    ngx_agentlocator_main_conf_t   *amcf;
    ngx_agentlocator_ended_wait_t  *wait;

    c = ev->data;
    r = c->data;

    wait = ngx_http_get_module_ctx(r, ngx_http_agentlocator_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    reg = ngx_agentlocator_registry_get(amcf);

    give_up = ((ngx_msec_int_t) (ngx_current_msec - wait->until) >= 0);

    if (ngx_agentlocator_registry_stream_ended(reg, &amcf->timeouts,
                                               &wait->call, give_up,
                                               &answer)
        != NGX_OK)
    {
        answer = NGX_AGENTLOCATOR_ENDED_FALLBACK;
    }

    if (answer == NGX_AGENTLOCATOR_ENDED_WAIT) {
        ngx_add_timer(ev, NGX_AGENTLOCATOR_ENDED_POLL);
        return;
    }

    ngx_http_finalize_request(r,
        ngx_agentlocator_voice_ended_answer(r, &wait->call.sid, 1, answer,
                                            ngx_current_msec - wait->since,
                                            give_up));

    ngx_http_run_posted_requests(c);
}


/* The request is gone (answered, or its connection closed): no more polls. */

static void
ngx_agentlocator_voice_ended_cleanup(void *data)
{
    ngx_agentlocator_ended_wait_t  *wait = data;

    if (wait->poll.timer_set) {
        ngx_del_timer(&wait->poll);
    }
}


static ngx_int_t
ngx_agentlocator_voice_ended_answer(ngx_http_request_t *r,
    ngx_str_t *call_sid, ngx_uint_t known, ngx_uint_t answer,
    ngx_msec_t waited, ngx_uint_t gave_up)
{
    ngx_str_t                     twiml;
    ngx_agentlocator_srv_conf_t  *ascf;
    ngx_agentlocator_crm_event_t  ev;

    ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);

    if (gave_up) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "STREAM_ENDED call=%V known=%ui answer=fallback "
                      "waited=%M: the watchdog's redirect in flight did not "
                      "finish in time; if it lands after all, the caller "
                      "hears the fallback twice", call_sid, known, waited);

    } else if (waited) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "STREAM_ENDED call=%V known=%ui answer=%s waited=%M",
                      call_sid, known,
                      answer == NGX_AGENTLOCATOR_ENDED_EMPTY
                      ? "empty" : "fallback", waited);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "STREAM_ENDED call=%V known=%ui answer=%s",
                      call_sid, known,
                      answer == NGX_AGENTLOCATOR_ENDED_EMPTY
                      ? "empty" : "fallback");
    }

    /* which answer it got: once per call, the first one */
    ngx_memzero(&ev, sizeof(ngx_agentlocator_crm_event_t));

    ev.call_sid = call_sid->data;
    ev.event = "stream_ended";
    ev.frames = -1;

    if (answer == NGX_AGENTLOCATOR_ENDED_EMPTY) {
        ngx_str_set(&ev.reason, "empty");

    } else {
        ngx_str_set(&ev.reason, "fallback");
        ev.fallback = 1;
    }

    if (gave_up) {
        ngx_str_set(&ev.reason, "fallback_redirect_unfinished");
    }

    ngx_agentlocator_crm_event(&ev);

    if (answer == NGX_AGENTLOCATOR_ENDED_EMPTY) {
        (void) ngx_agentlocator_twiml_empty(&twiml);

    } else {
        twiml = ascf->fallback_twiml;
    }

    return ngx_agentlocator_voice_twiml(r, &twiml);
}


/* RE... as the last path segment of a recording's URL, or empty */

static void
ngx_agentlocator_voice_recording_sid(ngx_str_t *url, ngx_str_t *sid)
{
    u_char  *last, *slash;

    ngx_str_null(sid);

    last = url->data + url->len;

    /* ".wav", ".mp3" or ".json" may follow it */
    if (url->len > 4 && last[-4] == '.') {
        last -= 4;

    } else if (url->len > 5 && last[-5] == '.') {
        last -= 5;
    }

    if (last - url->data < NGX_AGENTLOCATOR_SID_LEN + 1) {
        return;
    }

    slash = last - NGX_AGENTLOCATOR_SID_LEN - 1;

    if (*slash != '/') {
        return;
    }

    sid->data = slash + 1;
    sid->len = NGX_AGENTLOCATOR_SID_LEN;

    if (ngx_agentlocator_valid_sid(sid, "RE") != NGX_OK) {
        ngx_str_null(sid);
    }
}


static ngx_int_t
ngx_agentlocator_voice_handle_recording(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call)
{
    u_char                         duration[16], recording_sid[40];
    ngx_int_t                      rc;
    ngx_str_t                      value, sid, url, none, *call_sid;
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    call_sid = &call->sid;

    if (ngx_agentlocator_form_get(form, "RecordingDuration", &value)
        != NGX_OK)
    {
        ngx_str_null(&value);
    }

    ngx_agentlocator_log_safe(duration, sizeof(duration), &value);

    if (ngx_agentlocator_form_get(form, "RecordingUrl", &url) != NGX_OK) {
        ngx_str_null(&url);
    }

    /*
     * The <Record action> callback need not carry RecordingSid (its status
     * callback does): then it is the last segment of RecordingUrl.
     */
    if (ngx_agentlocator_form_get(form, "RecordingSid", &sid) != NGX_OK
        || ngx_agentlocator_valid_sid(&sid, "RE") != NGX_OK)
    {
        ngx_agentlocator_voice_recording_sid(&url, &sid);
    }

    ngx_agentlocator_log_safe(recording_sid, sizeof(recording_sid), &sid);

    reg = ngx_agentlocator_registry_get(amcf);

    rc = reg ? ngx_agentlocator_registry_recording(reg, call)
             : NGX_DECLINED;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "RECORDING call=%V recording=%s duration=%s known=%d",
                  call_sid, recording_sid, duration, rc == NGX_OK);

    /* what Twilio said, as it said it: parameters, never SQL text */

    if (ngx_agentlocator_form_get(form, "RecordingDuration", &value)
        != NGX_OK)
    {
        ngx_str_null(&value);
    }

    ngx_str_null(&none);

    ngx_agentlocator_crm_recording(call_sid, &sid, &url, &value, &none);

    if (sid.len) {
        ngx_agentlocator_transcribe_twilio(amcf, call_sid, &sid, &url,
                                           r->connection->log);
    }

    return ngx_agentlocator_reply(r, NGX_HTTP_NO_CONTENT, NULL, NULL);
}


static ngx_int_t
ngx_agentlocator_voice_call_status(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_agentlocator_call_ref_t *call)
{
    u_char                         safe[NGX_AGENTLOCATOR_CALL_STATUS_LEN + 1];
    ngx_int_t                      rc;
    ngx_str_t                      status, duration, *call_sid;
    ngx_uint_t                     i, terminal;
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_main_conf_t  *amcf;

    static ngx_str_t  ok = ngx_string("OK\n");
    static ngx_str_t  final[] = {
        ngx_string("completed"), ngx_string("busy"), ngx_string("failed"),
        ngx_string("no-answer"), ngx_string("canceled")
    };

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    call_sid = &call->sid;

    if (ngx_agentlocator_form_get(form, "CallStatus", &status) != NGX_OK) {
        ngx_str_null(&status);
    }

    terminal = 0;

    for (i = 0; i < sizeof(final) / sizeof(ngx_str_t); i++) {
        if (status.len == final[i].len
            && ngx_strncmp(status.data, final[i].data, status.len) == 0)
        {
            terminal = 1;
            break;
        }
    }

    ngx_agentlocator_log_safe(safe, sizeof(safe), &status);
    status.data = safe;
    status.len = ngx_strlen(safe);

    reg = ngx_agentlocator_registry_get(amcf);

    rc = reg ? ngx_agentlocator_registry_call_status(reg, &amcf->timeouts,
                                                     call, &status, terminal)
             : NGX_DECLINED;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "CALL_STATUS call=%V status=%s final=%ui known=%d",
                  call_sid, safe, terminal, rc == NGX_OK);

    if (ngx_agentlocator_form_get(form, "CallDuration", &duration) != NGX_OK) {
        ngx_str_null(&duration);
    }

    if (safe[0] != '-') {
        /* "-" is log_safe()'s mark for no CallStatus at all */
        ngx_agentlocator_crm_call_status(call_sid, &status, &duration,
                                         terminal);
    }

    return ngx_agentlocator_reply(r, NGX_HTTP_OK,
                                  &ngx_agentlocator_text_plain, &ok);
}


/*
 * Our own failure (memory, a temp file we cannot read back): Twilio still
 * gets a valid answer.  For the TwiML handlers that is the fallback, which
 * ends the call in a recording; the callbacks get their usual success.
 */

static ngx_int_t
ngx_agentlocator_voice_degraded(ngx_http_request_t *r)
{
    ngx_agentlocator_srv_conf_t  *ascf;
    ngx_agentlocator_loc_conf_t  *alcf;

    ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "agentlocator: internal error, answering Twilio with the "
                  "degraded response");

    switch (alcf->voice) {

    case NGX_AGENTLOCATOR_VOICE_INCOMING_CALL:
    case NGX_AGENTLOCATOR_VOICE_STREAM_ENDED:
        /* built at configuration time: needs no memory now */
        return ngx_agentlocator_voice_twiml(r, &ascf->fallback_twiml);

    default:
        return ngx_agentlocator_reply(r, NGX_HTTP_NO_CONTENT, NULL, NULL);
    }
}


static ngx_int_t
ngx_agentlocator_voice_twiml(ngx_http_request_t *r, ngx_str_t *twiml)
{
    return ngx_agentlocator_reply(r, NGX_HTTP_OK, &ngx_agentlocator_text_xml,
                                  twiml);
}
