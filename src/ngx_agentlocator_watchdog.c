
/*
 * The watchdog (SPEC §6): a call whose stream never started, whose media
 * stopped or whose stream dropped is claimed by exactly one worker and
 * redirected through Twilio's REST API to the fallback (a prompt and a
 * recording).  Each worker's timer is armed at the next deadline in the
 * zone, and at any earlier one it files itself; a stream's own worker
 * claims its silent call the moment the silence is due.  A slow tick is
 * the safety net.  Retries back off on network errors, 429 and 5xx;
 * 21220 (the call is over) and other 4xx end the attempts.  State lives
 * in the zone: after a reload or a dead worker, another worker carries on
 * when the claim's lease runs out.  A worker that exits gracefully
 * finishes its attempts in flight first, so a reload sends none twice.
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
    ngx_agentlocator_claim_t          claim;
    ngx_msec_t                        started;
} ngx_agentlocator_redirect_t;


typedef struct {
    ngx_event_t                       tick;
    ngx_connection_t                  dummy;     /* tick.data */
    ngx_uint_t                        n_in_flight;
    ngx_uint_t                        in_pass;
    ngx_agentlocator_main_conf_t     *amcf;
    ngx_agentlocator_registry_t      *registry;
    ngx_str_t                         twiml_form;  /* "Twiml=..." */
} ngx_agentlocator_watchdog_t;


static void ngx_agentlocator_watchdog_tick(ngx_event_t *ev);
static void ngx_agentlocator_watchdog_arm(ngx_agentlocator_watchdog_t *wd,
    ngx_msec_t next);
static void ngx_agentlocator_watchdog_wake(ngx_msec_t due);
static ngx_uint_t ngx_agentlocator_watchdog_room(
    ngx_agentlocator_watchdog_t *wd);
static void ngx_agentlocator_watchdog_crm(ngx_agentlocator_claim_t *claim,
    const char *outcome, ngx_uint_t http_status, ngx_uint_t code);
static void ngx_agentlocator_watchdog_call(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim, ngx_agentlocator_call_ref_t *ref);
static void ngx_agentlocator_watchdog_act(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim);
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
 *     [interval=250ms] [attempts=6] [lease=8s] [timeout=5s]
 *     [completed_grace=5m] [stale_after=4h]
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
          offsetof(ngx_agentlocator_timeouts_t, rest_timeout) },
        { ngx_string("completed_grace="),
          offsetof(ngx_agentlocator_timeouts_t, completed_grace) },
        { ngx_string("stale_after="),
          offsetof(ngx_agentlocator_timeouts_t, stale_after) }
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

    /*
     * The first pass finds what came due while no worker was ticking.  A
     * timer, not a posted event: nginx sleeps in epoll_wait() for as long
     * as its timers allow before it looks at posted events, and a new
     * worker may have nothing else to wake it.
     */
    ngx_add_timer(&wd->tick, 1);

    return NGX_OK;
}


/* Whether this worker runs the watchdog (a media stream asks). */

ngx_uint_t
ngx_agentlocator_watchdog_on(void)
{
    return ngx_agentlocator_watchdog.registry != NULL;
}


/*
 * The worker is going away with attempts still in flight: a fast stop, or
 * worker_shutdown_timeout (a graceful exit waits for them, see the HTTP
 * engine).  They are abandoned and their claims released at once, so a
 * worker of the new generation retries them now instead of after the
 * lease; Twilio may have received them already: a redirect may double,
 * never get lost.
 */

void
ngx_agentlocator_watchdog_exit_worker(ngx_cycle_t *cycle)
{
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

    ngx_agentlocator_registry_wake(NULL, 0);

    /* each one's "done" runs, with result->aborted */
    ngx_agentlocator_http_abort_all("worker exiting");

    wd->registry = NULL;
}


/*
 * A stream's own timer saw no media for no_media_timeout: the call is
 * claimed here and now when there is room, else it is filed due now for
 * whichever worker has room first.
 */

void
ngx_agentlocator_watchdog_stream_silent(ngx_agentlocator_call_ref_t *ref,
    ngx_agentlocator_stream_ref_t *stream,
    ngx_agentlocator_stream_media_t *media)
{
    ngx_agentlocator_claim_t      claim;
    ngx_agentlocator_watchdog_t  *wd;

    wd = &ngx_agentlocator_watchdog;

    if (wd->registry == NULL) {
        return;
    }

    if (ngx_agentlocator_registry_stream_update(wd->registry,
            &wd->amcf->timeouts, ref, stream, media,
            NGX_AGENTLOCATOR_STREAM_SILENT,
            ngx_agentlocator_watchdog_room(wd) ? &claim : NULL)
        == NGX_OK)
    {
        ngx_agentlocator_watchdog_act(wd, &claim);
    }
}


static void
ngx_agentlocator_watchdog_tick(ngx_event_t *ev)
{
    ngx_uint_t                    i, n, max;
    ngx_msec_t                    next;
    ngx_agentlocator_claim_t      claims[NGX_AGENTLOCATOR_WATCHDOG_BATCH];
    ngx_agentlocator_watchdog_t  *wd;

    wd = &ngx_agentlocator_watchdog;

    if (wd->registry == NULL) {
        return;
    }

    /*
     * An exiting worker ticks on while it lives: its streams' calls still
     * need rescue, and its timer, being cancelable, never delays its exit.
     */

    wd->in_pass = 1;

    for ( ;; ) {
        max = ngx_min(ngx_agentlocator_watchdog_room(wd),
                      NGX_AGENTLOCATOR_WATCHDOG_BATCH);

        n = ngx_agentlocator_registry_due(wd->registry, &wd->amcf->timeouts,
                                          claims, max, &next);

        for (i = 0; i < n; i++) {
            ngx_agentlocator_watchdog_act(wd, &claims[i]);
        }

        if (n < max || max == 0) {
            break;
        }
    }

    wd->in_pass = 0;

    ngx_agentlocator_watchdog_arm(wd, next);
}


/*
 * The timer goes off at the next deadline, or after "interval" at the
 * latest.  nginx moves a timer only when the new time is 300 ms or more
 * away (NGX_TIMER_LAZY_DELAY): a deadline must be met to the millisecond,
 * so the timer is deleted and added instead.
 */

static void
ngx_agentlocator_watchdog_arm(ngx_agentlocator_watchdog_t *wd,
    ngx_msec_t next)
{
    ngx_msec_t    now, at;
    ngx_event_t  *ev;

    ev = &wd->tick;
    now = ngx_current_msec;
    at = now + wd->amcf->timeouts.interval;

    if (next && (ngx_msec_int_t) (next - at) < 0) {

        if ((ngx_msec_int_t) (next - now) > 0) {
            at = next;

        } else if (ngx_agentlocator_watchdog_room(wd)) {
            /* the pass stopped at its bound with more due: go on soon */
            if (!ev->posted) {
                ngx_post_event(ev, &ngx_posted_events);
            }

        } /* else: no room now; a completion posts the tick */
    }

    if (ev->timer_set && ev->timer.key != at) {
        ngx_del_timer(ev);
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, at - now);
    }

    ngx_agentlocator_registry_wake(ngx_agentlocator_watchdog_wake, at);
}


/* The registry filed a deadline before our timer (after its lock). */

static void
ngx_agentlocator_watchdog_wake(ngx_msec_t due)
{
    ngx_agentlocator_watchdog_t  *wd;

    wd = &ngx_agentlocator_watchdog;

    if (wd->registry == NULL || wd->in_pass) {
        /* the pass arms the timer itself when it ends */
        return;
    }

    ngx_agentlocator_watchdog_arm(wd, due);
}


/*
 * Claims this worker may take now: within the requests it keeps in
 * flight, and within its free connections, less a reserve for webhooks
 * and streams.  A REST request needs a connection of its own, and with
 * none free libcurl fails the whole multi handle.
 */

static ngx_uint_t
ngx_agentlocator_watchdog_room(ngx_agentlocator_watchdog_t *wd)
{
    ngx_uint_t  room, reserve;

    if (ngx_agentlocator_worker_cut) {
        /* a request now would hold the worker past its shutdown timeout */
        return 0;
    }

    room = NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT - wd->n_in_flight;
    reserve = ngx_max(ngx_cycle->connection_n / 16, 2);

    if (ngx_cycle->free_connection_n <= reserve) {
        return 0;
    }

    return ngx_min(room, ngx_cycle->free_connection_n - reserve);
}


static void
ngx_agentlocator_watchdog_act(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim)
{
    if (!claim->exhausted) {
        ngx_agentlocator_watchdog_redirect(wd, claim);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                  "status=gave_up: out of attempts (%ui), gave up",
                  NGX_AGENTLOCATOR_SID_LEN, claim->call_sid,
                  ngx_agentlocator_reason_name(claim->reason),
                  claim->attempt, wd->amcf->timeouts.attempts);

    ngx_agentlocator_watchdog_crm(claim, "gave_up", 0, 0);
}


/*
 * The CRM's timeline: every attempt ("outcome" NULL) and its outcome,
 * each once per call and attempt; outcomes are counted for /metrics too.
 */

static void
ngx_agentlocator_watchdog_crm(ngx_agentlocator_claim_t *claim,
    const char *outcome, ngx_uint_t http_status, ngx_uint_t code)
{
    u_char                        key[64];
    const char                   *reason;
    ngx_agentlocator_crm_event_t  ev;

    reason = ngx_agentlocator_reason_name(claim->reason);

    ngx_memzero(&ev, sizeof(ngx_agentlocator_crm_event_t));

    ev.call_sid = claim->call_sid;
    ev.frames = -1;
    ev.attempt = claim->attempt;
    ev.redirect_reason = reason;
    ev.key.data = key;

    if (outcome == NULL) {
        ev.event = "watchdog_attempt";
        ev.reason.data = (u_char *) reason;
        ev.reason.len = ngx_strlen(reason);
        ev.key.len = ngx_snprintf(key, sizeof(key), "%ui", claim->attempt)
                     - key;

    } else {
        ev.event = "watchdog_outcome";
        ev.reason.data = (u_char *) outcome;
        ev.reason.len = ngx_strlen(outcome);
        ev.redirect_outcome = outcome;
        ev.fallback = (ngx_strcmp(outcome, "redirected") == 0);
        ev.key.len = ngx_snprintf(key, sizeof(key), "%ui:%s",
                                  claim->attempt, outcome)
                     - key;

        ev.http_status = http_status;
        ev.code = code;

        ngx_agentlocator_metrics_redirect(claim->reason, outcome);
    }

    ngx_agentlocator_crm_event(&ev);
}


/*
 * The claimed call as the registry names it.  The zone's entry keeps only
 * part of its hash and the claim none (it is a copy out of the zone): it
 * is hashed here, once per attempt.  The SID was checked before it entered
 * the zone.
 */

static void
ngx_agentlocator_watchdog_call(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim, ngx_agentlocator_call_ref_t *ref)
{
    ref->sid.data = claim->call_sid;
    ref->sid.len = NGX_AGENTLOCATOR_SID_LEN;

    ngx_agentlocator_registry_ref(wd->registry, ref);
}


static void
ngx_agentlocator_watchdog_redirect(ngx_agentlocator_watchdog_t *wd,
    ngx_agentlocator_claim_t *claim)
{
    u_char                        *p, *account;
    ngx_str_t                      url, user;
    ngx_agentlocator_call_ref_t    ref;
    ngx_agentlocator_redirect_t   *rd;
    ngx_agentlocator_http_req_t   *http;
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

    http = ngx_agentlocator_http_post(&url, &user, &amcf->auth_token,
                                          &wd->twiml_form,
                                          amcf->timeouts.rest_timeout,
                                          ngx_agentlocator_watchdog_done, rd,
                                          ngx_cycle->log);
    ngx_free(url.data);
    url.data = NULL;

    if (http == NULL) {
        goto failed;
    }

    wd->n_in_flight++;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "WATCHDOG_CLAIM call=%*s reason=%s attempt=%ui late=%M%s",
                  NGX_AGENTLOCATOR_SID_LEN, claim->call_sid,
                  ngx_agentlocator_reason_name(claim->reason),
                  claim->attempt, ngx_current_msec - claim->due,
                  claim->takeover ? " takeover=1" : "");

    ngx_agentlocator_watchdog_crm(claim, NULL, 0, 0);
    return;

failed:

    /* no memory now: give the claim back, retried after a backoff */

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "WATCHDOG_REDIRECT call=%*s reason=%s attempt=%ui "
                  "status=error: could not start the request",
                  NGX_AGENTLOCATOR_SID_LEN, claim->call_sid,
                  ngx_agentlocator_reason_name(claim->reason),
                  claim->attempt);

    ngx_agentlocator_watchdog_crm(claim, "error", 0, 0);

    ngx_agentlocator_watchdog_call(wd, claim, &ref);

    (void) ngx_agentlocator_registry_attempt_done(wd->registry,
               &amcf->timeouts, &ref, claim->attempt,
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
    ngx_uint_t                     outcome, code, level, was_full;
    const char                    *what, *token;
    ngx_agentlocator_call_ref_t    ref;
    ngx_agentlocator_watchdog_t   *wd;
    ngx_agentlocator_timeouts_t   *to;

    wd = &ngx_agentlocator_watchdog;
    to = &wd->amcf->timeouts;

    was_full = (wd->n_in_flight == NGX_AGENTLOCATOR_WATCHDOG_IN_FLIGHT);

    wd->n_in_flight--;

    ngx_agentlocator_metrics_rest(result, ngx_current_msec - rd->started);

    code = 0;
    retry_at = 0;
    level = NGX_LOG_WARN;

    if (result->aborted) {
        /* not an answer: the worker is going away (see exit_worker) */
        outcome = NGX_AGENTLOCATOR_ATTEMPT_RETRY;
        retry_at = ngx_current_msec;
        level = NGX_LOG_NOTICE;
        what = "abandoned, released for another worker";
        token = "abandoned";

    } else if (result->status >= 200 && result->status < 300) {
        outcome = NGX_AGENTLOCATOR_ATTEMPT_DONE;
        level = NGX_LOG_NOTICE;
        what = "redirected";
        token = "redirected";

    } else if (result->status >= 400 && result->status < 500
               && result->status != 429)
    {
        code = ngx_agentlocator_watchdog_twilio_code(&result->body);

        if (code == 21220) {
            outcome = NGX_AGENTLOCATOR_ATTEMPT_GONE;
            level = NGX_LOG_NOTICE;
            what = "the call is no longer live (21220)";
            token = "call_ended";

        } else {
            outcome = NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP;
            level = NGX_LOG_ERR;
            what = "refused, not retried";
            token = "refused";
        }

    } else if (rd->claim.attempt >= to->attempts) {
        outcome = NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP;
        level = NGX_LOG_ERR;
        what = "out of attempts, gave up";
        token = "gave_up";

    } else {
        /* network error, 429, 5xx: back off with full jitter */

        delay = NGX_AGENTLOCATOR_BACKOFF_MAX;

        if (rd->claim.attempt <= 4) {
            delay = ngx_min((ngx_msec_t) NGX_AGENTLOCATOR_BACKOFF_BASE
                            << (rd->claim.attempt - 1), delay);
        }

        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);

        if (result->status == 429 && result->retry_after) {
            delay = ngx_max(delay, result->retry_after);
        }

        retry_at = ngx_current_msec + delay;
        outcome = NGX_AGENTLOCATOR_ATTEMPT_RETRY;
        what = "retrying";
        token = "retrying";
    }

    ngx_agentlocator_watchdog_call(wd, &rd->claim, &ref);

    if (ngx_agentlocator_registry_attempt_done(wd->registry, to, &ref,
            rd->claim.attempt, outcome, result->status, retry_at)
        != NGX_OK)
    {
        what = "the call had moved on (stream_ended served the fallback, "
               "or it completed)";
        token = "moved_on";
    }

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

    ngx_agentlocator_watchdog_crm(&rd->claim, token,
                                  result->error ? 0 : result->status, code);

    ngx_free(rd);

    /* a slot is free: more due calls may be waiting, take them now */

    if (was_full && !result->aborted && !wd->tick.posted) {
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
    u_char     *p;
    ngx_str_t  *twiml;

    twiml = &wd->amcf->watchdog_srv->fallback_twiml;

    p = ngx_pnalloc(cycle->pool, sizeof("Twiml=") - 1 + 3 * twiml->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    wd->twiml_form.data = p;
    p = ngx_cpymem(p, "Twiml=", sizeof("Twiml=") - 1);

    p = ngx_agentlocator_form_encode(p, twiml);

    wd->twiml_form.len = p - wd->twiml_form.data;

    return NGX_OK;
}
