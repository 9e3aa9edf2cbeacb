
/*
 * A call's life in the registry (SPEC §4-§6): what each webhook, media
 * stream event and watchdog outcome does to its state, when it is next
 * due, and which eviction queue holds it once the watchdog is done with
 * it.  The structures these go through are ngx_agentlocator_registry.c's.
 *
 * The invariant: a call ends in exactly one of its stream stopping with
 * Twilio's "stop", the fallback served by stream_ended, or one watchdog
 * redirect.  Until one of those happened (or a final call_status), some
 * deadline in the tree will make a worker look at the call, never before
 * the moment the caller's silence began plus its timeout.
 *
 * A call is named by a ngx_agentlocator_call_ref_t: a CallSid its caller
 * checked, hashed once by ngx_agentlocator_registry_ref(); nothing here
 * checks or hashes it again.
 */


#include "ngx_agentlocator_registry.h"


#define NGX_AGENTLOCATOR_EXPIRE_BATCH   8     /* reaped per new call */

/* entries a watchdog pass with no room for claims still looks at */
#define NGX_AGENTLOCATOR_DUE_VISITS     256


static ngx_msec_t ngx_agentlocator_call_deadline(
    ngx_agentlocator_call_t *call, ngx_agentlocator_timeouts_t *to);
static void ngx_agentlocator_call_set(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call,
    ngx_uint_t state);
static void ngx_agentlocator_call_restart(ngx_agentlocator_call_t *call,
    ngx_msec_t now);
static ngx_uint_t ngx_agentlocator_call_attached(ngx_agentlocator_call_t *call,
    ngx_agentlocator_stream_ref_t *stream);
static void ngx_agentlocator_call_claim(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call,
    ngx_uint_t reason, ngx_msec_t due, ngx_agentlocator_claim_t *claim);
static void ngx_agentlocator_registry_expire(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_msec_t now, ngx_uint_t max);
static void ngx_agentlocator_copy_bounded(u_char *dst, uint8_t *dst_len,
    size_t size, ngx_str_t *src);


static const char  *ngx_agentlocator_state_names[] = {
    "none", "armed", "streaming", "stopped", "redirecting", "redirected",
    "completed", "dropped", "fallback"
};

static const char  *ngx_agentlocator_reason_names[] = {
    "none", "no_stream_start", "no_media", "stream_dropped"
};

static const char  *ngx_agentlocator_outcome_names[] = {
    "none", "pending", "done", "gave_up", "cancelled"
};


/*
 * incoming_call: a new entry in state "armed" due at start_timeout.  A
 * repeated webhook for a known CallSid changes nothing ("created" = 0).
 * NGX_DECLINED: the call has ended (a final call_status, or it left the
 * table less than stale_after ago): Twilio never asks again, so this is
 * a replay of a captured request, and nothing is armed.  NGX_BUSY: the
 * zone is full even after eviction; the caller answers the call anyway,
 * unprotected.
 */

ngx_int_t
ngx_agentlocator_registry_incoming(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_info_t *info,
    ngx_uint_t *created)
{
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    /* start_timeout counts from this very moment, as Twilio gets our TwiML */
    now = ngx_agentlocator_clock();
    *created = 0;

    ngx_agentlocator_registry_lock(reg);

    call = ngx_agentlocator_registry_lookup(reg->sh, &info->call);

    if (call && call->state != NGX_AGENTLOCATOR_CALL_COMPLETED) {
        ngx_agentlocator_registry_touch(reg, call, now);
        ngx_agentlocator_registry_unlock(reg);
        return NGX_OK;
    }

    if (call || ngx_agentlocator_registry_ended(reg, to, &info->call)) {
        reg->sh->replays++;
        ngx_agentlocator_registry_unlock(reg);
        return NGX_DECLINED;
    }

    ngx_agentlocator_registry_expire(reg, to, now,
                                     NGX_AGENTLOCATOR_EXPIRE_BATCH);

    call = ngx_agentlocator_registry_new(reg, to, &info->call,
                                         now + to->start_timeout, now);
    if (call == NULL) {
        ngx_agentlocator_registry_unlock(reg);
        return NGX_BUSY;
    }

    call->state = NGX_AGENTLOCATOR_CALL_ARMED;

    if (info->account_sid.len == NGX_AGENTLOCATOR_SID_LEN) {
        ngx_memcpy(call->account_sid, info->account_sid.data,
                   NGX_AGENTLOCATOR_SID_LEN);
    }

    ngx_agentlocator_copy_bounded(call->from, &call->from_len,
                                  NGX_AGENTLOCATOR_PARTY_LEN, &info->from);
    ngx_agentlocator_copy_bounded(call->to, &call->to_len,
                                  NGX_AGENTLOCATOR_PARTY_LEN, &info->to);

    ngx_agentlocator_registry_insert(reg, call);

    ngx_agentlocator_registry_unlock(reg);

    *created = 1;

    return NGX_OK;
}


/*
 * stream_status, Twilio's own view of the stream, which arrives in any
 * order relative to the WebSocket: a stream this host is serving (one
 * attached) is judged by the WebSocket, not by these.  Otherwise
 * "stream-started" of a stream not seen before starts the stream's clock
 * afresh; "stream-stopped" ends the watch (Twilio calls <Connect action>
 * next); "stream-error" keeps watching, like a dropped stream.
 */

ngx_int_t
ngx_agentlocator_registry_stream_event(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_uint_t started, ngx_uint_t error, ngx_str_t *stream_sid)
{
    ngx_uint_t                same, state;
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    same = 0;

    if (stream_sid && stream_sid->len == NGX_AGENTLOCATOR_SID_LEN) {
        same = (ngx_memcmp(call->stream_sid, stream_sid->data,
                           NGX_AGENTLOCATOR_SID_LEN) == 0);

        if (!same && started) {
            ngx_memcpy(call->stream_sid, stream_sid->data,
                       NGX_AGENTLOCATOR_SID_LEN);
        }
    }

    if (error) {
        call->stream_error = 1;
    }

    state = call->state;

    if (call->stream_pid) {
        /* the WebSocket that is open here knows better */

    } else if (started) {
        if (!same
            && (state == NGX_AGENTLOCATOR_CALL_ARMED
                || state == NGX_AGENTLOCATOR_CALL_STOPPED
                || state == NGX_AGENTLOCATOR_CALL_DROPPED))
        {
            ngx_agentlocator_call_restart(call, now);
            state = NGX_AGENTLOCATOR_CALL_STREAMING;
        }

    } else if (error) {
        if (state == NGX_AGENTLOCATOR_CALL_STREAMING) {
            state = NGX_AGENTLOCATOR_CALL_DROPPED;
        }

    } else if (state == NGX_AGENTLOCATOR_CALL_ARMED
               || state == NGX_AGENTLOCATOR_CALL_STREAMING)
    {
        state = NGX_AGENTLOCATOR_CALL_STOPPED;
    }

    ngx_agentlocator_registry_touch(reg, call, now);
    ngx_agentlocator_call_set(reg, to, call, state);

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


/*
 * stream_ended (<Connect action>): "answer" is EMPTY once the watchdog's
 * redirect landed; WAIT while an attempt is in flight (the caller asks
 * again, and with "give_up_waiting" takes the fallback whatever became of
 * it); otherwise FALLBACK, and from then on the watchdog leaves the call
 * alone: a retry that was pending is cancelled, one in flight that fails
 * is not retried.  So a caller hears the fallback once.
 */

ngx_int_t
ngx_agentlocator_registry_stream_ended(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_uint_t give_up_waiting, ngx_uint_t *answer)
{
    ngx_agentlocator_call_t  *call;

    *answer = NGX_AGENTLOCATOR_ENDED_FALLBACK;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    switch (call->state) {

    case NGX_AGENTLOCATOR_CALL_REDIRECTED:
        *answer = NGX_AGENTLOCATOR_ENDED_EMPTY;
        break;

    case NGX_AGENTLOCATOR_CALL_REDIRECTING:
        if (call->claimant && !give_up_waiting) {
            call->ended_waiting = 1;
            *answer = NGX_AGENTLOCATOR_ENDED_WAIT;
            break;
        }

        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_CANCELLED;
        call->claimant = 0;
        call->ended_waiting = 0;
        ngx_agentlocator_call_set(reg, to, call,
                                  NGX_AGENTLOCATOR_CALL_FALLBACK);
        break;

    case NGX_AGENTLOCATOR_CALL_COMPLETED:
        if (call->redirect_outcome == NGX_AGENTLOCATOR_REDIRECT_DONE) {
            *answer = NGX_AGENTLOCATOR_ENDED_EMPTY;
        }

        break;

    case NGX_AGENTLOCATOR_CALL_FALLBACK:
        break;

    default: /* armed, streaming, dropped, stopped */
        ngx_agentlocator_call_set(reg, to, call,
                                  NGX_AGENTLOCATOR_CALL_FALLBACK);
        break;
    }

    call->updated = ngx_current_msec;

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


ngx_int_t
ngx_agentlocator_registry_recording(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref)
{
    ngx_agentlocator_call_t  *call;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    call->recording = 1;
    call->updated = ngx_current_msec;

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


/*
 * call_status: records Twilio's CallStatus; a final one completes the call,
 * which then stays visible for completed_grace (late stream_ended or status
 * callbacks still find it) and is reaped after, or evicted first when the
 * zone is full.
 */

ngx_int_t
ngx_agentlocator_registry_call_status(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_str_t *status, ngx_uint_t terminal)
{
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    ngx_agentlocator_copy_bounded(call->call_status, &call->call_status_len,
                                  NGX_AGENTLOCATOR_CALL_STATUS_LEN, status);

    ngx_agentlocator_registry_touch(reg, call, now);

    if (terminal && call->state != NGX_AGENTLOCATOR_CALL_COMPLETED) {
        call->completed = now;
        call->claimant = 0;
        ngx_agentlocator_call_set(reg, to, call,
                                  NGX_AGENTLOCATOR_CALL_COMPLETED);
    }

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


/*
 * A media stream's "start" takes its call.  Twilio connects a call's
 * stream after our TwiML answered the call's signed incoming_call, so only
 * a call this host registered that way takes one, and only while no other
 * stream of it is live ("dead_owner": a worker known to have died, whose
 * stream went with it) and it has not moved on (redirected, fallback,
 * completed).  The stream never adds a call and never sets its
 * AccountSid, which REST requests are made for.  NGX_DECLINED, with
 * "refusal" (_refusal_e) and, for a live stream, its worker in "owner".
 */

ngx_int_t
ngx_agentlocator_registry_stream_attach(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_str_t *stream_sid, ngx_str_t *account_sid,
    ngx_agentlocator_stream_ref_t *stream, ngx_pid_t dead_owner,
    ngx_uint_t *refusal, ngx_pid_t *owner)
{
    ngx_uint_t                state;
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    now = ngx_current_msec;
    *owner = 0;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        *refusal = NGX_AGENTLOCATOR_REFUSE_UNKNOWN;
        return NGX_DECLINED;
    }

    if (account_sid->len == NGX_AGENTLOCATOR_SID_LEN && call->account_sid[0]
        && ngx_memcmp(call->account_sid, account_sid->data,
                      NGX_AGENTLOCATOR_SID_LEN)
           != 0)
    {
        *refusal = NGX_AGENTLOCATOR_REFUSE_ACCOUNT;
        goto refused;
    }

    if (call->stream_pid && call->stream_pid != dead_owner) {
        *refusal = NGX_AGENTLOCATOR_REFUSE_LIVE;
        *owner = call->stream_pid;
        goto refused;
    }

    state = call->state;

    switch (state) {

    case NGX_AGENTLOCATOR_CALL_ARMED:
    case NGX_AGENTLOCATOR_CALL_STOPPED:
    case NGX_AGENTLOCATOR_CALL_DROPPED:
        /* a new stream: its silence counts from now, not from the last */
        ngx_agentlocator_call_restart(call, now);
        state = NGX_AGENTLOCATOR_CALL_STREAMING;
        break;

    case NGX_AGENTLOCATOR_CALL_STREAMING:
        /* stream-started came first, or its stream's worker died */
        call->silent = 0;
        break;

    default:
        *refusal = NGX_AGENTLOCATOR_REFUSE_ENDED;
        goto refused;
    }

    call->stream_pid = stream->pid;
    call->stream_id = stream->id;
    ngx_memcpy(call->stream_sid, stream_sid->data, NGX_AGENTLOCATOR_SID_LEN);

    ngx_agentlocator_registry_touch(reg, call, now);
    ngx_agentlocator_call_set(reg, to, call, state);

    ngx_agentlocator_registry_unlock(reg);

    *refusal = NGX_AGENTLOCATOR_REFUSE_NONE;

    return NGX_OK;

refused:

    ngx_agentlocator_registry_unlock(reg);

    return NGX_DECLINED;
}


/*
 * What a live stream reports: its counters and last media time since the
 * last report, and what happened ("event"):
 *
 *   MEDIA    periodic, at most NGX_AGENTLOCATOR_MEDIA_FLUSH apart while
 *            media flows; the hot path, so the call is not re-filed (the
 *            watchdog reads last_media when the entry comes due)
 *   SILENT   the stream's own timer saw no media for no_media_timeout:
 *            the call is claimed into "claim" at once (NGX_OK), or, with
 *            "claim" NULL (no room), filed due now for any worker
 *            (NGX_AGAIN); NGX_DECLINED if it is not due after all
 *   STOP     Twilio's "stop": the stream completed, the watch ends
 *   CLOSED   the connection ended after "stop"
 *   DROPPED  the connection ended without "stop": watched like silence
 *            from the last media on (reason stream_dropped)
 */

ngx_int_t
ngx_agentlocator_registry_stream_update(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_agentlocator_stream_ref_t *stream,
    ngx_agentlocator_stream_media_t *media,
    ngx_uint_t event, ngx_agentlocator_claim_t *claim)
{
    ngx_int_t                 rc;
    ngx_uint_t                state;
    ngx_msec_t                now, due;
    ngx_agentlocator_call_t  *call;

    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    call->frames += media->frames;
    call->bytes += media->bytes;

    if (!ngx_agentlocator_call_attached(call, stream)) {
        /* the counters are this stream's; the call is another's now */
        ngx_agentlocator_registry_unlock(reg);
        return NGX_DECLINED;
    }

    if ((ngx_msec_int_t) (media->last - call->last_media) > 0) {
        call->last_media = media->last;
    }

    rc = NGX_OK;
    state = call->state;

    switch (event) {

    case NGX_AGENTLOCATOR_STREAM_MEDIA:
        call->silent = 0;
        ngx_agentlocator_registry_touch(reg, call, now);
        ngx_agentlocator_registry_unlock(reg);
        return NGX_OK;

    case NGX_AGENTLOCATOR_STREAM_SILENT:
        if (state != NGX_AGENTLOCATOR_CALL_STREAMING) {
            rc = NGX_DECLINED;
            break;
        }

        call->silent = 1;
        due = ngx_agentlocator_call_deadline(call, to);

        if ((ngx_msec_int_t) (due - now) > 0) {
            rc = NGX_DECLINED;
            break;
        }

        if (claim == NULL) {
            rc = NGX_AGAIN;
            break;
        }

        ngx_agentlocator_call_claim(reg, to, call,
                                    NGX_AGENTLOCATOR_REASON_NO_MEDIA, due,
                                    claim);
        ngx_agentlocator_registry_unlock(reg);
        return NGX_OK;

    case NGX_AGENTLOCATOR_STREAM_STOP:
        if (state == NGX_AGENTLOCATOR_CALL_STREAMING) {
            state = NGX_AGENTLOCATOR_CALL_STOPPED;
        }

        break;

    default: /* NGX_AGENTLOCATOR_STREAM_CLOSED, _DROPPED */
        call->stream_pid = 0;
        call->stream_id = 0;
        call->silent = 0;

        if (state == NGX_AGENTLOCATOR_CALL_STREAMING) {
            state = (event == NGX_AGENTLOCATOR_STREAM_CLOSED)
                    ? NGX_AGENTLOCATOR_CALL_STOPPED
                    : NGX_AGENTLOCATOR_CALL_DROPPED;
        }

        break;
    }

    ngx_agentlocator_registry_touch(reg, call, now);
    ngx_agentlocator_call_set(reg, to, call, state);

    ngx_agentlocator_registry_unlock(reg);

    return rc;
}


/*
 * The watchdog's pass over what is due, in due order, at most "max"
 * claims: a call whose stream never started, whose media stopped or whose
 * stream dropped is claimed (state "redirecting", this worker, a lease)
 * and copied into "claims"; a claim whose lease ran out (its worker died,
 * or a retry is due) is claimed again, unless its attempts are used up
 * (then it is given up, and reported as "exhausted"); calls past their
 * time are reaped; a call whose real deadline moved is filed again at it.
 * With no room for claims, due calls are stepped over so that reaping
 * goes on.  Every call handled leaves with a due time in the future, so
 * the pass ends; "next" is the earliest deadline left (0: none).
 */

ngx_uint_t
ngx_agentlocator_registry_due(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_claim_t *claims,
    ngx_uint_t max, ngx_msec_t *next)
{
    ngx_uint_t                       n, reason, visited;
    ngx_msec_t                       now, t;
    ngx_rbtree_node_t               *node, *following, *sentinel;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    now = ngx_current_msec;
    n = 0;

    ngx_agentlocator_registry_lock(reg);

    sentinel = sh->deadlines.sentinel;
    node = (sh->deadlines.root == sentinel)
           ? NULL : ngx_rbtree_min(sh->deadlines.root, sentinel);

    for (visited = 0;
         node && visited < 4 * max + NGX_AGENTLOCATOR_DUE_VISITS;
         visited++, node = following)
    {
        if ((ngx_msec_int_t) (node->key - now) > 0) {
            break;
        }

        following = ngx_rbtree_next(&sh->deadlines, node);
        call = ngx_agentlocator_call_of(node, deadline);
        t = ngx_agentlocator_call_deadline(call, to);

        switch (call->state) {

        case NGX_AGENTLOCATOR_CALL_ARMED:
            reason = NGX_AGENTLOCATOR_REASON_NO_STREAM_START;
            break;

        case NGX_AGENTLOCATOR_CALL_STREAMING:
            reason = NGX_AGENTLOCATOR_REASON_NO_MEDIA;
            break;

        case NGX_AGENTLOCATOR_CALL_DROPPED:
            reason = NGX_AGENTLOCATOR_REASON_STREAM_DROPPED;
            break;

        case NGX_AGENTLOCATOR_CALL_REDIRECTING:
            if (call->ended_waiting) {
                /*
                 * The claimant died with its attempt in flight while
                 * stream_ended waited for it: the fallback is the answer,
                 * so no other worker sends the redirect again.
                 */
                call->claimant = 0;
                call->ended_waiting = 0;
                call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_CANCELLED;
                ngx_agentlocator_call_set(reg, to, call,
                                          NGX_AGENTLOCATOR_CALL_FALLBACK);
                continue;
            }

            /* a retry that is due, or a claimant that died: lease over */
            reason = call->redirect_reason;
            break;

        default: /* stopped, redirected, fallback, completed */
            if ((ngx_msec_int_t) (t - now) > 0) {
                ngx_agentlocator_registry_refile(reg, call, t);

            } else {
                ngx_agentlocator_registry_free(reg, to, call);
                sh->expired++;
            }

            continue;
        }

        if ((ngx_msec_int_t) (t - now) > 0) {
            /* media came after the entry was filed */
            ngx_agentlocator_registry_refile(reg, call, t);
            continue;
        }

        if (n == max) {
            if (max) {
                break;
            }

            continue;
        }

        ngx_agentlocator_call_claim(reg, to, call, reason, t, &claims[n++]);
    }

    *next = (sh->deadlines.root == sentinel)
            ? 0 : ngx_rbtree_min(sh->deadlines.root, sentinel)->key;

    ngx_agentlocator_registry_unlock(reg);

    return n;
}


/*
 * The claimant's REST attempt ended.  Only the current claim counts: an
 * answer that comes after the lease passed to another worker, or after
 * stream_ended served the fallback or the call completed, is ignored
 * (NGX_DECLINED).
 */

ngx_int_t
ngx_agentlocator_registry_attempt_done(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref,
    ngx_uint_t attempt, ngx_uint_t result, ngx_uint_t status,
    ngx_msec_t retry_at)
{
    ngx_uint_t                state;
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    now = ngx_current_msec;

    call = ngx_agentlocator_registry_lock_call(reg, ref);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    if (call->state != NGX_AGENTLOCATOR_CALL_REDIRECTING
        || call->claimant != ngx_pid
        || call->redirect_attempts != attempt)
    {
        ngx_agentlocator_registry_unlock(reg);
        return NGX_DECLINED;
    }

    call->redirect_status = (uint16_t) status;
    call->claimant = 0;
    ngx_agentlocator_registry_touch(reg, call, now);

    state = NGX_AGENTLOCATOR_CALL_REDIRECTING;

    switch (result) {

    case NGX_AGENTLOCATOR_ATTEMPT_DONE:
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_DONE;
        state = NGX_AGENTLOCATOR_CALL_REDIRECTED;
        break;

    case NGX_AGENTLOCATOR_ATTEMPT_RETRY:
        if (call->ended_waiting) {
            /* stream_ended is waiting: it serves the fallback instead */
            call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_CANCELLED;
            state = NGX_AGENTLOCATOR_CALL_FALLBACK;
            break;
        }

        /* any worker may make the next attempt when it is due */
        call->lease_until = retry_at;
        break;

    case NGX_AGENTLOCATOR_ATTEMPT_GONE:
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_GAVE_UP;
        call->completed = now;
        state = NGX_AGENTLOCATOR_CALL_COMPLETED;
        break;

    default: /* NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP */
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_GAVE_UP;
        state = call->ended_waiting ? NGX_AGENTLOCATOR_CALL_FALLBACK
                                    : NGX_AGENTLOCATOR_CALL_STOPPED;
        break;
    }

    call->ended_waiting = 0;
    ngx_agentlocator_call_set(reg, to, call, state);

    ngx_agentlocator_registry_unlock(reg);

    return NGX_OK;
}


const char *
ngx_agentlocator_call_state_name(ngx_uint_t state)
{
    if (state > NGX_AGENTLOCATOR_CALL_FALLBACK) {
        state = 0;
    }

    return ngx_agentlocator_state_names[state];
}


const char *
ngx_agentlocator_reason_name(ngx_uint_t reason)
{
    if (reason > NGX_AGENTLOCATOR_REASON_STREAM_DROPPED) {
        reason = 0;
    }

    return ngx_agentlocator_reason_names[reason];
}


const char *
ngx_agentlocator_outcome_name(ngx_uint_t outcome)
{
    if (outcome > NGX_AGENTLOCATOR_REDIRECT_CANCELLED) {
        outcome = 0;
    }

    return ngx_agentlocator_outcome_names[outcome];
}


/*
 * When the call next needs attention.  A streaming call whose stream is
 * live in some worker is due NGX_AGENTLOCATOR_MEDIA_FLUSH after its
 * silence began as the zone sees it: the stream's own timer claims it on
 * time, this is the deadline if that worker is gone or late, and it is
 * never early since the stream's real last media is younger by less than
 * that.  Once the stream confirmed the silence (or ended), its last media
 * is exact.
 */

static ngx_msec_t
ngx_agentlocator_call_deadline(ngx_agentlocator_call_t *call,
    ngx_agentlocator_timeouts_t *to)
{
    ngx_msec_t  due;

    switch (call->state) {

    case NGX_AGENTLOCATOR_CALL_ARMED:
        due = call->created + to->start_timeout;
        break;

    case NGX_AGENTLOCATOR_CALL_STREAMING:
    case NGX_AGENTLOCATOR_CALL_DROPPED:
        due = (call->last_media ? call->last_media : call->stream_start)
              + to->no_media_timeout + NGX_AGENTLOCATOR_CLOCK_SLACK;

        if (call->stream_pid && !call->silent) {
            due += NGX_AGENTLOCATOR_MEDIA_FLUSH;
        }

        break;

    case NGX_AGENTLOCATOR_CALL_REDIRECTING:
        due = call->lease_until;
        break;

    case NGX_AGENTLOCATOR_CALL_COMPLETED:
        due = call->completed + to->completed_grace;
        break;

    default: /* stopped, redirected, fallback: kept while idle */
        due = call->updated + to->stale_after;
        break;
    }

    /* 0 means "not in the deadline tree" */
    return due ? due : 1;
}


/* The call is in "state" now: its deadline and eviction queue follow. */

static void
ngx_agentlocator_call_set(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call,
    ngx_uint_t state)
{
    ngx_uint_t  queue;

    call->state = (uint8_t) state;

    switch (state) {

    case NGX_AGENTLOCATOR_CALL_COMPLETED:
        queue = NGX_AGENTLOCATOR_QUEUE_COMPLETED;
        break;

    case NGX_AGENTLOCATOR_CALL_STOPPED:
    case NGX_AGENTLOCATOR_CALL_REDIRECTED:
    case NGX_AGENTLOCATOR_CALL_FALLBACK:
        queue = NGX_AGENTLOCATOR_QUEUE_FINISHED;
        break;

    default:
        queue = NGX_AGENTLOCATOR_QUEUE_NONE;
        break;
    }

    ngx_agentlocator_registry_queue(reg, call, queue);
    ngx_agentlocator_registry_refile(reg, call,
                                     ngx_agentlocator_call_deadline(call, to));
}


/* A stream starts (again): its silence is measured from now. */

static void
ngx_agentlocator_call_restart(ngx_agentlocator_call_t *call, ngx_msec_t now)
{
    call->stream_start = now;
    call->last_media = 0;
    call->silent = 0;
}


static ngx_uint_t
ngx_agentlocator_call_attached(ngx_agentlocator_call_t *call,
    ngx_agentlocator_stream_ref_t *stream)
{
    return call->stream_pid == stream->pid && call->stream_id == stream->id;
}


/*
 * The claim: one state change under the lock, so exactly once across
 * workers.  A call whose attempts are used up is given up instead.
 */

static void
ngx_agentlocator_call_claim(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call,
    ngx_uint_t reason, ngx_msec_t due, ngx_agentlocator_claim_t *claim)
{
    ngx_msec_t  now;

    now = ngx_current_msec;

    ngx_memcpy(claim->call_sid, call->call_sid, NGX_AGENTLOCATOR_SID_LEN);
    ngx_memcpy(claim->account_sid, call->account_sid,
               NGX_AGENTLOCATOR_SID_LEN);
    claim->reason = reason;
    claim->due = due;
    claim->takeover = (call->claimant != 0);
    claim->exhausted = 0;

    if (call->redirect_attempts >= to->attempts) {
        claim->attempt = call->redirect_attempts;
        claim->exhausted = 1;

        call->claimant = 0;
        call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_GAVE_UP;
        ngx_agentlocator_call_set(reg, to, call,
                                  NGX_AGENTLOCATOR_CALL_STOPPED);
        return;
    }

    call->redirect_reason = (uint8_t) reason;
    call->redirect_outcome = NGX_AGENTLOCATOR_REDIRECT_PENDING;
    call->redirect_attempts++;
    call->claimant = ngx_pid;
    call->lease_until = now + to->lease;
    call->silent = 0;

    claim->attempt = call->redirect_attempts;

    ngx_agentlocator_call_set(reg, to, call,
                              NGX_AGENTLOCATOR_CALL_REDIRECTING);
}


/*
 * Before a new entry is allocated, up to "max" entries whose time is up
 * and that the watchdog has no business with are reaped, as limit_req
 * does: so the zone does not fill with the dead when no watchdog ticks.
 */

static void
ngx_agentlocator_registry_expire(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_msec_t now, ngx_uint_t max)
{
    ngx_uint_t                       n, visited;
    ngx_rbtree_node_t               *node, *following, *sentinel;
    ngx_agentlocator_call_t         *call;
    ngx_agentlocator_registry_sh_t  *sh;

    sh = reg->sh;
    sentinel = sh->deadlines.sentinel;

    if (sh->deadlines.root == sentinel) {
        return;
    }

    node = ngx_rbtree_min(sh->deadlines.root, sentinel);

    for (n = 0, visited = 0; node && n < max && visited < 4 * max;
         visited++, node = following)
    {
        if ((ngx_msec_int_t) (node->key - now) > 0) {
            break;
        }

        following = ngx_rbtree_next(&sh->deadlines, node);
        call = ngx_agentlocator_call_of(node, deadline);

        if (call->done_queue == NGX_AGENTLOCATOR_QUEUE_NONE
            || (ngx_msec_int_t) (ngx_agentlocator_call_deadline(call, to)
                                 - now) > 0)
        {
            continue;
        }

        ngx_agentlocator_registry_free(reg, to, call);
        sh->expired++;
        n++;
    }
}


static void
ngx_agentlocator_copy_bounded(u_char *dst, uint8_t *dst_len, size_t size,
    ngx_str_t *src)
{
    size_t  len;

    len = ngx_min(src->len, size);

    ngx_memcpy(dst, src->data, len);
    *dst_len = (uint8_t) len;
}
