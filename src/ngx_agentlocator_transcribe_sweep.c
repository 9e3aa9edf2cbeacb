
/*
 * The transcription sweep (agentlocator_transcribe_url sweep=): what makes
 * a recording's transcript outlive the job that started it.  A job holds a
 * claim on its recording (recordings.transcript_due_at, in the future:
 * sql/003_transcribe.sql); every worker wakes every sweep= (jittered, a
 * cancelable timer: a reload or quit never waits for it) and, in one read
 * on the CRM's nonblocking connections, keeps its own jobs' claims ahead
 * and claims a few recordings that are due, have no transcript, are
 * younger than a day and were tried fewer than 5 times (FOR UPDATE SKIP
 * LOCKED: two workers, here or on another host, never take the same one).
 * Each becomes a job like the first (TRANSCRIBE_RESUMED).  A claim whose
 * worker exited or gave up runs out after three sweeps, and the
 * recording is taken again; one out of attempts or too old is given up
 * for good, once, on its call's timeline (transcript_failed) and in the
 * log (TRANSCRIBE_ABANDONED).
 */


#include "ngx_agentlocator.h"

#include <libpq-fe.h>


/* a recording is tried this many times at most, within this many seconds */
#define NGX_AGENTLOCATOR_SWEEP_ATTEMPTS   5
#define NGX_AGENTLOCATOR_SWEEP_MAX_AGE    (24 * 60 * 60)

/* claimed per sweep, at most: the jobs a worker starts at once */
#define NGX_AGENTLOCATOR_SWEEP_BATCH      4


/*
 * The claims of this worker's jobs ($1 Twilio's RecordingSids, $2 the
 * CallSids of streams' WAVs) pushed $3 seconds ahead; only while due: a
 * recording given up for good stays so.
 */

static const char  ngx_agentlocator_sweep_renew_sql[] =
    "UPDATE recordings"
    " SET transcript_due_at ="
    "     greatest(transcript_due_at,"
    "              now() + make_interval(secs => $3::integer))"
    " WHERE transcript_due_at IS NOT NULL"
    "   AND (recording_sid = ANY($1::text[])"
    "        OR (recording_sid IS NULL AND call_sid = ANY($2::text[])))";


/*
 * Up to $1 recordings due, claimed for $2 seconds, one attempt more; those
 * due but done (a transcript), too old ($3 seconds) or out of attempts
 * ($4) are not due any more, and the ones without a transcript are said
 * to be given up on their call's timeline.  Rows: kind ("claimed" or
 * "abandoned"), id, call_sid, recording_sid, url, wav_path, attempts,
 * reason.
 */

static const char  ngx_agentlocator_sweep_claim_sql[] =
    "WITH settled AS ("
    "  UPDATE recordings r SET transcript_due_at = NULL"
    "  WHERE r.id IN ("
    "    SELECT c.id FROM recordings c"
    "    WHERE c.transcript_due_at <= now()"
    "      AND (EXISTS (SELECT 1 FROM transcripts t"
    "                   WHERE t.recording_id = c.id)"
    "           OR c.created_at <= now() - make_interval(secs => $3::integer)"
    "           OR c.transcript_attempts >= $4::integer)"
    "    ORDER BY c.transcript_due_at LIMIT 100"
    "    FOR UPDATE SKIP LOCKED)"
    "  RETURNING r.id, r.call_sid, r.recording_sid, r.transcript_attempts,"
    "    NOT EXISTS (SELECT 1 FROM transcripts t"
    "                WHERE t.recording_id = r.id) AS failed,"
    "    CASE WHEN r.transcript_attempts >= $4::integer THEN 'attempts'"
    "         ELSE 'age' END AS why"
    "), told AS ("
    "  INSERT INTO call_events (call_sid, event, reason, detail, at,"
    "                           idempotency_key)"
    "  SELECT call_sid, 'transcript_failed', why,"
    "         jsonb_build_object('recording_id', id,"
    "                            'attempts', transcript_attempts),"
    "         now(), call_sid || ':transcript_failed:' || id"
    "  FROM settled WHERE failed"
    "  ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING"
    "), claimed AS ("
    "  UPDATE recordings r"
    "  SET transcript_due_at = now() + make_interval(secs => $2::integer),"
    "      transcript_attempts = r.transcript_attempts + 1"
    "  WHERE r.id IN ("
    "    SELECT c.id FROM recordings c"
    "    WHERE c.transcript_due_at <= now()"
    "      AND c.created_at > now() - make_interval(secs => $3::integer)"
    "      AND c.transcript_attempts < $4::integer"
    "      AND (c.recording_sid IS NULL OR c.url IS NOT NULL)"
    "      AND (c.recording_sid IS NOT NULL OR c.wav_path IS NOT NULL)"
    "      AND NOT EXISTS (SELECT 1 FROM transcripts t"
    "                      WHERE t.recording_id = c.id)"
    "    ORDER BY c.transcript_due_at LIMIT $1::integer"
    "    FOR UPDATE SKIP LOCKED)"
    "  RETURNING r.id, r.call_sid, r.recording_sid, r.url, r.wav_path,"
    "            r.transcript_attempts"
    ")"
    " SELECT 'claimed', id, call_sid, recording_sid, url, wav_path,"
    "        transcript_attempts, NULL FROM claimed"
    " UNION ALL"
    " SELECT 'abandoned', id, call_sid, recording_sid, NULL, NULL,"
    "        transcript_attempts, why FROM settled WHERE failed";


ngx_agentlocator_crm_statement_t  ngx_agentlocator_sweep_statements[] = {
    { "transcribe_renew", ngx_agentlocator_sweep_renew_sql, 3 },
    { "transcribe_claim", ngx_agentlocator_sweep_claim_sql, 4 },
    { NULL, NULL, 0 }
};


static void ngx_agentlocator_sweep_handler(ngx_event_t *ev);
static void ngx_agentlocator_sweep_answered(void *data, struct pg_result **res,
    ngx_uint_t n, const char *error);
static void ngx_agentlocator_sweep_row(PGresult *res, int row);
static void ngx_agentlocator_sweep_value(PGresult *res, int row, int col,
    ngx_str_t *value);
static void ngx_agentlocator_sweep_arm(void);


typedef struct {
    ngx_agentlocator_main_conf_t   *amcf;
    ngx_msec_t                      every;
    ngx_event_t                     timer;
    ngx_connection_t                owner;
    ngx_agentlocator_pg_read_t     *read;      /* the sweep in flight */
} ngx_agentlocator_sweep_t;


static ngx_agentlocator_sweep_t  ngx_agentlocator_sweep;


ngx_int_t
ngx_agentlocator_transcribe_init_worker(ngx_cycle_t *cycle)
{
    ngx_agentlocator_sweep_t      *sw;
    ngx_agentlocator_main_conf_t  *amcf;

    sw = &ngx_agentlocator_sweep;
    ngx_memzero(sw, sizeof(ngx_agentlocator_sweep_t));

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_agentlocator_module);
    if (amcf == NULL || amcf->pg_conninfo.len == 0) {
        return NGX_OK;
    }

    sw->every = ngx_agentlocator_transcribe_sweep_every(amcf);

    if (sw->every == 0) {
        return NGX_OK;
    }

    sw->amcf = amcf;

    ngx_agentlocator_worker_timer(&sw->timer, &sw->owner,
                                  ngx_agentlocator_sweep_handler, cycle->log);

    ngx_agentlocator_sweep_arm();

    return NGX_OK;
}


/*
 * Before the database's connections go: a sweep in flight is not answered
 * (its claims run out like any other).
 */

void
ngx_agentlocator_transcribe_sweep_exit_worker(void)
{
    ngx_agentlocator_sweep_t  *sw;

    sw = &ngx_agentlocator_sweep;

    if (sw->amcf == NULL) {
        return;
    }

    if (sw->timer.timer_set) {
        ngx_del_timer(&sw->timer);
    }

    if (sw->read) {
        ngx_agentlocator_pg_read_cancel(sw->read);
        sw->read = NULL;
    }

    sw->amcf = NULL;
}


/* The next sweep in 0.8 to 1.2 times sweep=: the workers drift apart. */

static void
ngx_agentlocator_sweep_arm(void)
{
    ngx_msec_t                 delay;
    ngx_agentlocator_sweep_t  *sw;

    sw = &ngx_agentlocator_sweep;

    delay = sw->every - sw->every / 5
            + (ngx_msec_t) ngx_random() % (sw->every * 2 / 5 + 1);

    ngx_add_timer(&sw->timer, delay);
}


static void
ngx_agentlocator_sweep_handler(ngx_event_t *ev)
{
    u_char        twilio[NGX_AGENTLOCATOR_TRANSCRIBE_KEYS_LEN];
    u_char        streams[NGX_AGENTLOCATOR_TRANSCRIBE_KEYS_LEN];
    u_char        lease[NGX_INT_T_LEN], limit[NGX_INT_T_LEN];
    u_char        age[NGX_INT_T_LEN], attempts[NGX_INT_T_LEN];
    ngx_str_t     renew[3], claim[4];
    ngx_uint_t    free;
    const char   *error;

    ngx_agentlocator_sweep_t     *sw;
    ngx_agentlocator_pg_query_t   q[2];

    sw = &ngx_agentlocator_sweep;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_agentlocator_sweep_arm();

    /* the last one is still out: the database is slow, not two at once */
    if (sw->read) {
        return;
    }

    renew[0].data = twilio;
    renew[1].data = streams;
    ngx_agentlocator_transcribe_running(&renew[0], &renew[1]);

    renew[2].data = lease;
    renew[2].len = ngx_sprintf(lease, "%ui",
                               (ngx_uint_t) NGX_AGENTLOCATOR_CLAIM(sw->every))
                   - lease;

    free = ngx_min(ngx_agentlocator_transcribe_free_slots(),
                   NGX_AGENTLOCATOR_SWEEP_BATCH);

    claim[0].data = limit;
    claim[0].len = ngx_sprintf(limit, "%ui", free) - limit;
    claim[1] = renew[2];
    claim[2].data = age;
    claim[2].len = ngx_sprintf(age, "%d", NGX_AGENTLOCATOR_SWEEP_MAX_AGE)
                   - age;
    claim[3].data = attempts;
    claim[3].len = ngx_sprintf(attempts, "%d",
                               NGX_AGENTLOCATOR_SWEEP_ATTEMPTS)
                   - attempts;

    q[0].st = &ngx_agentlocator_sweep_statements[0];
    q[0].n = 3;
    q[0].params = renew;
    q[1].st = &ngx_agentlocator_sweep_statements[1];
    q[1].n = 4;
    q[1].params = claim;

    sw->read = ngx_agentlocator_pg_read(q, 2, ngx_agentlocator_sweep_answered,
                                        sw, &error);

    if (sw->read == NULL) {
        /* the database is away: said by its connections, not here */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "agentlocator transcribe sweep: %s", error);
    }
}


static void
ngx_agentlocator_sweep_answered(void *data, struct pg_result **res,
    ngx_uint_t n, const char *error)
{
    ngx_agentlocator_sweep_t *sw = data;

    int        row, rows;
    PGresult  *claimed;

    sw->read = NULL;

    if (error || n != 2) {
        return;
    }

    claimed = (PGresult *) res[1];

    if (PQnfields(claimed) != 8) {
        return;
    }

    rows = PQntuples(claimed);

    for (row = 0; row < rows; row++) {
        ngx_agentlocator_sweep_row(claimed, row);
    }
}


static void
ngx_agentlocator_sweep_row(PGresult *res, int row)
{
    ngx_int_t                  rc;
    ngx_str_t                  kind, id, call_sid, recording_sid, url;
    ngx_str_t                  wav_path, attempts, why;
    const char                *source;
    ngx_agentlocator_sweep_t  *sw;

    sw = &ngx_agentlocator_sweep;

    ngx_agentlocator_sweep_value(res, row, 0, &kind);
    ngx_agentlocator_sweep_value(res, row, 1, &id);
    ngx_agentlocator_sweep_value(res, row, 2, &call_sid);
    ngx_agentlocator_sweep_value(res, row, 3, &recording_sid);
    ngx_agentlocator_sweep_value(res, row, 4, &url);
    ngx_agentlocator_sweep_value(res, row, 5, &wav_path);
    ngx_agentlocator_sweep_value(res, row, 6, &attempts);
    ngx_agentlocator_sweep_value(res, row, 7, &why);

    /* CRM values in the log: only what cannot break a line */
    if (ngx_agentlocator_storable_text(&call_sid) != NGX_OK
        || call_sid.len > NGX_AGENTLOCATOR_SID_LEN
        || recording_sid.len > NGX_AGENTLOCATOR_SID_LEN)
    {
        return;
    }

    if (kind.len == 9 && ngx_strncmp(kind.data, "abandoned", 9) == 0) {
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_ABANDONED);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "TRANSCRIBE_ABANDONED call=%V recording=%V "
                      "attempts=%V reason=%V", &call_sid, &id, &attempts,
                      &why);
        return;
    }

    /* claimed, in a worker that is going: its claim runs out */
    if (ngx_exiting || ngx_quit || ngx_terminate || sw->amcf == NULL) {
        return;
    }

    source = recording_sid.len ? "twilio" : "stream";

    rc = ngx_agentlocator_transcribe_resume(sw->amcf, &call_sid,
                                            &recording_sid, &url, &wav_path);

    switch (rc) {

    case NGX_OK:
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_RESUMED);
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "TRANSCRIBE_RESUMED call=%V recording=%V source=%s "
                      "attempt=%V", &call_sid, &id, source, &attempts);
        break;

    case NGX_DECLINED:
        ngx_agentlocator_metrics_transcribe(
            NGX_AGENTLOCATOR_METRICS_TX_SKIPPED);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "TRANSCRIBE_SKIPPED call=%V recording=%V source=%s "
                      "reason=%s", &call_sid, &id, source,
                      recording_sid.len
                      ? "recording_url (not under "
                        "agentlocator_twilio_api_url)"
                      : "wav_path (not a WAV of agentlocator_recordings "
                        "on this host)");
        break;

    case NGX_BUSY:
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "TRANSCRIBE_DEFERRED call=%V recording=%V reason=busy",
                      &call_sid, &id);
        break;

    default:
        /* TRANSCRIBE_FAILED said why */
        break;
    }
}


static void
ngx_agentlocator_sweep_value(PGresult *res, int row, int col,
    ngx_str_t *value)
{
    if (PQgetisnull(res, row, col)) {
        ngx_str_null(value);
        return;
    }

    value->data = (u_char *) PQgetvalue(res, row, col);
    value->len = PQgetlength(res, row, col);
}
