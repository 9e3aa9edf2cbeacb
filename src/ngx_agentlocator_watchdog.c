
/*
 * The watchdog (SPEC §6): every worker ticks over the registry's deadlines;
 * a call whose stream never started, or whose media stopped, is claimed by
 * exactly one worker and redirected through Twilio's REST API to the
 * fallback (a prompt and a recording).  Retries back off on network errors,
 * 429 and 5xx; 21220 (the call is over) and other 4xx end the attempts.
 * State lives in the zone: after a reload or a dead worker, another worker
 * carries on when the claim's lease runs out.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_WATCHDOG_BATCH   64     /* claims per pass */

/*
 * REST requests one worker keeps in flight.  A call is claimed only when
 * it can be sent at once: a storm of due calls waits in the registry (where
 * any worker may take it) instead of in libcurl's queue, where waiting
 * costs CPU per completion and counts against the request's timeout.  So
 * no more than the engine's connections to the REST host.
 */
#define NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT  64

#if (NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT                                     \
     > NGX_AGENTLOCATOR_HTTP_HOST_CONNECTIONS)
#error "more REST requests in flight than connections: they would queue in curl"
#endif

#define NGX_AGENTLOCATOR_BACKOFF_BASE     500    /* ms, doubled per attempt */
#define NGX_AGENTLOCATOR_BACKOFF_MAX      8000   /* ms */


typedef struct {
    ngx_queue_t                       queue;     /* in flight, this worker */
    ngx_agentlocator_http_req_t      *http;
    ngx_agentlocator_claim_t          claim;
    ngx_msec_t                        started;
} ngx_agentlocator_redirect_t;


typedef struct {
    ngx_event_t                       tick;
    ngx_connection_t                  dummy;     /* tick.data */
    ngx_queue_t                       in_flight;
    ngx_uint_t                        n_in_flight;
    ngx_agentlocator_main_conf_t     *amcf;
    ngx_agentlocator_registry_t      *registry;
    ngx_str_t                         twiml_form;  /* "Twiml=..." */
} ngx_agentlocator_watchdog_t;


static void ngx_agentlocator_watchdog_tick(ngx_event_t *ev);
static void ngx_agentlocator_watchdog_redirect(
    ngx_agentlocator_watchdog_t *wd, ngx_agentlocator_claim_t *claim);
static void ngx_agentlocator_watchdog_done(
    ngx_agentlocator_http_result_t *result, void *data);
static ngx_uint_t ngx_agentlocator_watchdog_twilio_code(ngx_str_t *body);
static ngx_int_t ngx_agentlocator_watchdog_form(ngx_cycle_t *cycle,
    ngx_agentlocator_watchdog_t *wd);


static ngx_agentlocator_watchdog_t  ngx_agentlocator_watchdog;


/*
 * agentlocator_watchdog [off] [start_timeout=8s] [no_media_timeout=6s]
 *     [interval=100ms] [attempts=6] [lease=8s] [timeout=5s]
 */

char *
ngx_agentlocator_watchdog_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *args, ngx_uint_t n)
{
    ngx_str_t                     v;
    ngx_int_t                     k;
    ngx_uint_t                    i, j;
    ngx_msec_t                   *field;
    ngx_agentlocator_timeouts_t  *to;

    static struct {
        ngx_str_t   name;
        size_t      offset;
    } times[] = {
        { ngx_string("start_timeout="),
          offsetof(ngx_agentlocator_timeouts_t, start_timeout) },
        { ngx_string("no_media_timeout="),
          offsetof(ngx_agentlocator_timeouts_t, no_media_timeout) },
        { ngx_string("interval="),
          offsetof(ngx_agentlocator_timeouts_t, interval) },
        { ngx_string("lease="),
          offsetof(ngx_agentlocator_timeouts_t, lease) },
        { ngx_string("timeout="),
          offsetof(ngx_agentlocator_timeouts_t, rest_timeout) }
    };

    to = &amcf->timeouts;

    for (i = 0; i < n; i++) {

        if (args[i].len == 3 && ngx_strncmp(args[i].data, "off", 3) == 0) {
            amcf->watchdog = 0;
            continue;
        }

        if (args[i].len > 9
            && ngx_strncmp(args[i].data, "attempts=", 9) == 0)
        {
            k = ngx_atoi(args[i].data + 9, args[i].len - 9);

            if (k < 1 || k > 20) {
                goto invalid;
            }

            to->attempts = k;
            continue;
        }

        for (j = 0; j < sizeof(times) / sizeof(times[0]); j++) {
            if (args[i].len > times[j].name.len
                && ngx_strncmp(args[i].data, times[j].name.data,
                               times[j].name.len) == 0)
            {
                break;
            }
        }

        if (j == sizeof(times) / sizeof(times[0])) {
            goto invalid;
        }

        v.data = args[i].data + times[j].name.len;
        v.len = args[i].len - times[j].name.len;

        field = (ngx_msec_t *) ((u_char *) to + times[j].offset);
        *field = ngx_parse_time(&v, 0);

        if (*field == (ngx_msec_t) NGX_ERROR || *field == 0) {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid agentlocator_watchdog parameter \"%V\"",
                       &args[i]);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_agentlocator_watchdog_init_worker(ngx_cycle_t *cycle)
{
    ngx_agentlocator_watchdog_t   *wd;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentlocator_module);
    wd = &ngx_agentlocator_watchdog;

    ngx_queue_init(&wd->in_flight);

    if (amcf == NULL || !amcf->watchdog || amcf->watchdog_srv == NULL) {
        return NGX_OK;
    }

    wd->amcf = amcf;
    wd->registry = ngx_agentlocator_registry_get(amcf);

    if (wd->registry == NULL) {
        return NGX_OK;
    }

    if (ngx_agentlocator_watchdog_form(cycle, wd) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_agentlocator_worker_timer(&wd->tick, &wd->dummy,
                                  ngx_agentlocator_watchdog_tick, cycle->log);

    /* spread the workers' ticks over the interval */
    ngx_add_timer(&wd->tick,
                  1 + (ngx_msec_t) (ngx_random() % amcf->timeouts.interval));

    return NGX_OK;
}


/*
 * The worker is going away: its in-flight attempts are abandoned and their
 * claims released at once, so a worker of the new generation retries them
 * now instead of after the lease.
 */

void
ngx_agentlocator_watchdog_exit_worker(ngx_cycle_t *cycle)
{
    ngx_queue_t                  *q;
    ngx_agentlocator_redirect_t  *rd;
    ngx_agentlocator_watchdog_t  *wd;

    wd = &ngx_agentlocator_watchdog;

    if (wd->tick.timer_set) {
        ngx_del_timer(&wd->tick);
    }

    if (wd->tick.posted) {
        ngx_delete_posted_event(&wd->tick);
    }

    if (wd->registry == NULL) {
        return;
    }

    while (!ngx_queue_empty(&wd->in_flight)) {
        q = ngx_queue_head(&wd->in_flight);
        rd = ngx_queue_data(q, ngx_agentlocator_redirect_t, queue);
        ngx_queue_remove(q);
        wd->n_in_flight--;

        ngx_agentlocator_http_cancel(rd->http);

        (void) ngx_agentlocator_registry_attempt_done(wd->registry,
                   &wd->amcf->timeouts, rd->claim.call_sid,
                   rd->claim.attempt, NGX_AGENTLOCATOR_ATTEMPT_RETRY, 0,
                   ngx_current_msec);

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                      "status=abandoned: worker exiting, released",
                      NGX_AGENTLOCATOR_SID_LEN, rd->claim.call_sid,
                      ngx_agentlocator_reason_name(rd->claim.reason),
                      rd->claim.attempt);

        ngx_free(rd);
    }
}


static void
ngx_agentlocator_watchdog_tick(ngx_event_t *ev)
{
    ngx_uint_t                    i, n, room;
    ngx_agentlocator_claim_t      claims[NGX_AGENTLOCATOR_WATCHDOG_BATCH];
    ngx_agentlocator_watchdog_t  *wd;

    wd = &ngx_agentlocator_watchdog;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* the new generation of workers takes over */
        return;
    }

    for ( ;; ) {
        room = NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT - wd->n_in_flight;

        if (room == 0) {
            break;
        }

        n = ngx_agentlocator_registry_due(wd->registry, &wd->amcf->timeouts,
                                          claims,
                                          ngx_min(room,
                                             NGX_AGENTLOCATOR_WATCHDOG_BATCH));

        for (i = 0; i < n; i++) {
            ngx_agentlocator_watchdog_redirect(wd, &claims[i]);
        }

        if (n < ngx_min(room, NGX_AGENTLOCATOR_WATCHDOG_BATCH)) {
            break;
        }
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, wd->amcf->timeouts.interval);
    }
}


static void
ngx_agentlocator_watchdog_redirect(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim)
{
    u_char                        *p, *account;
    ngx_str_t                      url, user;
    ngx_agentlocator_redirect_t   *rd;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = wd->amcf;

    /* the call's own account (a subaccount, maybe), else ours */
    account = claim->account_sid[0] ? claim->account_sid
                                    : amcf->account_sid.data;

    url.len = amcf->api_url.len + sizeof("/2010-04-01/Accounts//Calls/.json")
              - 1 + 2 * NGX_AGENTLOCATOR_SID_LEN;
    url.data = ngx_alloc(url.len, ngx_cycle->log);

    rd = ngx_calloc(sizeof(ngx_agentlocator_redirect_t), ngx_cycle->log);

    if (url.data == NULL || rd == NULL) {
        goto failed;
    }

    p = ngx_sprintf(url.data, "%V/2010-04-01/Accounts/%*s/Calls/%*s.json",
                    &amcf->api_url, NGX_AGENTLOCATOR_SID_LEN, account,
                    NGX_AGENTLOCATOR_SID_LEN, claim->call_sid);
    url.len = p - url.data;

    rd->claim = *claim;
    rd->started = ngx_current_msec;

    user = amcf->account_sid;

    rd->http = ngx_agentlocator_http_post(&url, &user, &amcf->auth_token,
                                          &wd->twiml_form,
                                          amcf->timeouts.rest_timeout,
                                          ngx_agentlocator_watchdog_done, rd,
                                          ngx_cycle->log);
    ngx_free(url.data);
    url.data = NULL;

    if (rd->http == NULL) {
        goto failed;
    }

    ngx_queue_insert_tail(&wd->in_flight, &rd->queue);
    wd->n_in_flight++;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "WATCHDOG_CLAIM call=%*s reason=%s attempt=%ui%s",
                  NGX_AGENTLOCATOR_SID_LEN, claim->call_sid,
                  ngx_agentlocator_reason_name(claim->reason),
                  claim->attempt,
                  claim->takeover ? " takeover=1" : "");
    return;

failed:

    /* no memory now: give the claim back, retried after a backoff */

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                  "status=error: could not start the request",
                  NGX_AGENTLOCATOR_SID_LEN, claim->call_sid,
                  ngx_agentlocator_reason_name(claim->reason),
                  claim->attempt);

    (void) ngx_agentlocator_registry_attempt_done(wd->registry,
               &amcf->timeouts, claim->call_sid, claim->attempt,
               NGX_AGENTLOCATOR_ATTEMPT_RETRY, 0,
               ngx_current_msec + NGX_AGENTLOCATOR_BACKOFF_BASE);

    if (url.data) {
        ngx_free(url.data);
    }

    if (rd) {
        ngx_free(rd);
    }
}


static void
ngx_agentlocator_watchdog_done(ngx_agentlocator_http_result_t *result,
    void *data)
{
    ngx_agentlocator_redirect_t *rd = data;

    ngx_msec_t                     delay, retry_at;
    ngx_uint_t                     outcome, code, level;
    const char                    *what;
    ngx_agentlocator_watchdog_t   *wd;
    ngx_agentlocator_timeouts_t   *to;

    wd = &ngx_agentlocator_watchdog;
    to = &wd->amcf->timeouts;

    ngx_queue_remove(&rd->queue);
    wd->n_in_flight--;

    code = 0;
    retry_at = 0;
    level = NGX_LOG_WARN;

    if (result->status >= 200 && result->status < 300) {
        outcome = NGX_AGENTLOCATOR_ATTEMPT_DONE;
        level = NGX_LOG_NOTICE;
        what = "redirected";

    } else if (result->status >= 400 && result->status < 500
               && result->status != 429)
    {
        code = ngx_agentlocator_watchdog_twilio_code(&result->body);

        if (code == 21220) {
            outcome = NGX_AGENTLOCATOR_ATTEMPT_GONE;
            level = NGX_LOG_NOTICE;
            what = "the call is no longer live (21220)";

        } else {
            outcome = NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP;
            level = NGX_LOG_ERR;
            what = "refused, not retried";
        }

    } else if (rd->claim.attempt >= to->attempts) {
        outcome = NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP;
        level = NGX_LOG_ERR;
        what = "out of attempts, gave up";

    } else {
        /* network error, 429, 5xx: back off with full jitter */

        delay = ngx_min((ngx_msec_t) NGX_AGENTLOCATOR_BACKOFF_BASE
                        << (rd->claim.attempt - 1),
                        NGX_AGENTLOCATOR_BACKOFF_MAX);
        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);

        if (result->status == 429 && result->retry_after) {
            delay = ngx_max(delay, result->retry_after);
        }

        retry_at = ngx_current_msec + delay;
        outcome = NGX_AGENTLOCATOR_ATTEMPT_RETRY;
        what = "retrying";
    }

    (void) ngx_agentlocator_registry_attempt_done(wd->registry, to,
               rd->claim.call_sid, rd->claim.attempt, outcome,
               result->status, retry_at);

    if (result->error) {
        ngx_log_error(level, ngx_cycle->log, 0,
                      "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                      "status=error: %s; %s",
                      NGX_AGENTLOCATOR_SID_LEN, rd->claim.call_sid,
                      ngx_agentlocator_reason_name(rd->claim.reason),
                      rd->claim.attempt, result->error, what);

    } else {
        ngx_log_error(level, ngx_cycle->log, 0,
                      "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                      "status=%ui code=%ui ms=%M; %s",
                      NGX_AGENTLOCATOR_SID_LEN, rd->claim.call_sid,
                      ngx_agentlocator_reason_name(rd->claim.reason),
                      rd->claim.attempt, result->status, code,
                      ngx_current_msec - rd->started, what);
    }

    ngx_free(rd);

    /* a slot is free: more due calls may be waiting, take them now */

    if (!ngx_exiting && wd->tick.timer_set && !wd->tick.posted
        && wd->n_in_flight == NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT - 1)
    {
        ngx_post_event(&wd->tick, &ngx_posted_events);
    }
}


/* Twilio's error body: {"code": 21220, "message": ..., ...} */

static ngx_uint_t
ngx_agentlocator_watchdog_twilio_code(ngx_str_t *body)
{
    u_char      *p, *last;
    ngx_uint_t   code;

    p = ngx_strlcasestrn(body->data, body->data + body->len,
                         (u_char *) "\"code\"", sizeof("\"code\"") - 2);
    if (p == NULL) {
        return 0;
    }

    last = body->data + body->len;
    p += sizeof("\"code\"") - 1;

    while (p < last && (*p == ' ' || *p == ':' || *p == '\t')) {
        p++;
    }

    code = 0;

    while (p < last && *p >= '0' && *p <= '9' && code < 1000000) {
        code = code * 10 + (*p++ - '0');
    }

    return code;
}


/* "Twiml=" + the fallback document, form-encoded once per worker. */

static ngx_int_t
ngx_agentlocator_watchdog_form(ngx_cycle_t *cycle,
    ngx_agentlocator_watchdog_t *wd)
{
    u_char         *p, *s, *last;
    ngx_str_t      *twiml;
    static u_char   hex[] = "0123456789ABCDEF";

    twiml = &wd->amcf->watchdog_srv->fallback_twiml;

    p = ngx_pnalloc(cycle->pool, sizeof("Twiml=") - 1 + 3 * twiml->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    wd->twiml_form.data = p;
    p = ngx_cpymem(p, "Twiml=", sizeof("Twiml=") - 1);

    /* everything but unreserved characters is escaped */

    for (s = twiml->data, last = s + twiml->len; s < last; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
            || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'
            || *s == '_' || *s == '~')
        {
            *p++ = *s;

        } else {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 0xf];
        }
    }

    wd->twiml_form.len = p - wd->twiml_form.data;

    return NGX_OK;
}
