
/*
 * What the call path writes to the CRM (SPEC §7), through the worker's
 * PostgreSQL queue (ngx_agentlocator_pg.c).  Every statement is
 * parameterized and idempotent (ON CONFLICT, keyed on the CallSid and the
 * event), so a write done twice, after a broken connection or a replay,
 * leaves the rows as once.  Writes of one call may land in any order (two
 * workers, two connections): each fills what is missing and moves the
 * status forward only, and events carry the time they happened.
 */


#include "ngx_agentlocator.h"


/*
 * incoming_call: the business that owns the called number (else the
 * default one), the caller as its customer, the call, and the first event
 * of its timeline.
 */

static const char  ngx_agentlocator_crm_incoming_sql[] =
    "WITH b AS ("
    "  SELECT coalesce((SELECT business_id FROM business_numbers"
    "                   WHERE number = $4::text),"
    "                  (SELECT id FROM businesses WHERE is_default)) AS id"
    "), cu AS ("
    "  INSERT INTO customers (business_id, phone)"
    "  SELECT b.id, $3::text FROM b WHERE $3::text IS NOT NULL"
    "  ON CONFLICT ON CONSTRAINT customers_business_phone"
    "  DO UPDATE SET updated_at = now()"
    "  RETURNING id"
    "), ca AS ("
    "  INSERT INTO calls (call_sid, account_sid, business_id, customer_id,"
    "                     from_number, to_number, status, created_at)"
    "  SELECT $1::text, $2::text, b.id, (SELECT id FROM cu), $3::text,"
    "         $4::text, 'ringing', to_timestamp($5::double precision)"
    "  FROM b"
    "  ON CONFLICT (call_sid) DO UPDATE SET"
    "    account_sid = coalesce(calls.account_sid, EXCLUDED.account_sid),"
    "    business_id = coalesce(calls.business_id, EXCLUDED.business_id),"
    "    customer_id = coalesce(calls.customer_id, EXCLUDED.customer_id),"
    "    from_number = coalesce(calls.from_number, EXCLUDED.from_number),"
    "    to_number = coalesce(calls.to_number, EXCLUDED.to_number),"
    "    created_at = least(calls.created_at, EXCLUDED.created_at)"
    ")"
    " INSERT INTO call_events (call_sid, event, at, idempotency_key)"
    " VALUES ($1::text, 'incoming', to_timestamp($5::double precision),"
    "         $1::text || ':incoming')"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * call_status: the call's status, moving forward only (a late "ringing"
 * after "completed" is kept in the timeline, not in the call); when it was
 * answered and ended, and its duration, whatever order they land in; one
 * event per status.
 */

static const char  ngx_agentlocator_crm_status_sql[] =
    "WITH up AS ("
    "  INSERT INTO calls (call_sid, status, created_at, answered_at, ended_at,"
    "                     duration_s)"
    "  VALUES ($1::text, $2::text, to_timestamp($4::double precision),"
    "          CASE WHEN $2::text = 'in-progress'"
    "               THEN to_timestamp($4::double precision) END,"
    "          CASE WHEN $5::boolean THEN to_timestamp($4::double precision) END,"
    "          $3::integer)"
    "  ON CONFLICT (call_sid) DO UPDATE SET"
    "    status = CASE WHEN agentlocator_call_status_rank(EXCLUDED.status)"
    "                       > agentlocator_call_status_rank(calls.status)"
    "                  THEN EXCLUDED.status ELSE calls.status END,"
    "    answered_at = coalesce(calls.answered_at, EXCLUDED.answered_at),"
    "    ended_at = coalesce(calls.ended_at, EXCLUDED.ended_at),"
    "    duration_s = coalesce(EXCLUDED.duration_s, calls.duration_s),"
    "    updated_at = now()"
    ")"
    " INSERT INTO call_events (call_sid, event, reason, at, idempotency_key)"
    " VALUES ($1::text, 'status', $2::text, to_timestamp($4::double precision),"
    "         $1::text || ':status:' || $2::text)"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * Everything else that happens to a call (ngx_agentlocator_crm_event_t):
 * one timeline row, once per idempotency key, and what the call row keeps
 * of it.  Each column only fills in or moves forward, whatever order the
 * events land in: the first stream and its start, the most frames, the
 * first redirect reason, an outcome that is final stays final.
 */

static const char  ngx_agentlocator_crm_event_sql[] =
    "WITH up AS ("
    "  INSERT INTO calls (call_sid, created_at, stream_sid, stream_started_at,"
    "                     stream_ended_at, frames, redirect_reason,"
    "                     redirect_outcome, redirected_at, fallback_served)"
    "  VALUES ($1::text, to_timestamp($4::double precision), $6::text,"
    "          CASE WHEN $2::text = 'stream_start'"
    "               THEN to_timestamp($4::double precision) END,"
    "          CASE WHEN $2::text IN ('stream_stop', 'stream_drop')"
    "               THEN to_timestamp($4::double precision) END,"
    "          coalesce($7::bigint, 0), $8::text, $9::text,"
    "          CASE WHEN $9::text = 'redirected'"
    "               THEN to_timestamp($4::double precision) END,"
    "          $10::boolean)"
    "  ON CONFLICT (call_sid) DO UPDATE SET"
    "    created_at = least(calls.created_at, EXCLUDED.created_at),"
    "    stream_sid = coalesce(calls.stream_sid, EXCLUDED.stream_sid),"
    "    stream_started_at = coalesce(calls.stream_started_at,"
    "                                 EXCLUDED.stream_started_at),"
    "    stream_ended_at = coalesce(calls.stream_ended_at,"
    "                               EXCLUDED.stream_ended_at),"
    "    frames = greatest(calls.frames, EXCLUDED.frames),"
    "    redirect_reason = coalesce(calls.redirect_reason,"
    "                               EXCLUDED.redirect_reason),"
    "    redirect_outcome = CASE WHEN calls.redirect_outcome IN"
    "                                 ('redirected', 'call_ended', 'refused',"
    "                                  'gave_up')"
    "                            THEN calls.redirect_outcome"
    "                            ELSE coalesce(EXCLUDED.redirect_outcome,"
    "                                          calls.redirect_outcome) END,"
    "    redirected_at = coalesce(calls.redirected_at, EXCLUDED.redirected_at),"
    "    fallback_served = calls.fallback_served OR EXCLUDED.fallback_served,"
    "    updated_at = now()"
    ")"
    " INSERT INTO call_events (call_sid, event, reason, detail, at,"
    "                          idempotency_key)"
    " VALUES ($1::text, $2::text, $3::text,"
    "         jsonb_strip_nulls(jsonb_build_object("
    "             'stream_sid', $6::text, 'frames', $7::bigint,"
    "             'attempt', $11::integer, 'http_status', $12::integer,"
    "             'code', $13::integer)),"
    "         to_timestamp($4::double precision), $5::text)"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * handle_recording (Twilio's RecordingSid, Url, Duration) or a stream's
 * WAV kept by agentlocator_recordings: a recording of the call, once.
 */

static const char  ngx_agentlocator_crm_recording_sql[] =
    "WITH twilio AS ("
    "  INSERT INTO recordings (call_sid, recording_sid, url, duration_s)"
    "  SELECT $1::text, $2::text, $3::text, $4::integer"
    "  WHERE $2::text IS NOT NULL"
    "  ON CONFLICT ON CONSTRAINT recordings_recording_sid DO UPDATE"
    "  SET url = coalesce(recordings.url, EXCLUDED.url),"
    "      duration_s = coalesce(recordings.duration_s, EXCLUDED.duration_s)"
    "), stream AS ("
    "  INSERT INTO recordings (call_sid, wav_path)"
    "  SELECT $1::text, $5::text"
    "  WHERE $2::text IS NULL AND $5::text IS NOT NULL"
    "  ON CONFLICT DO NOTHING"
    ")"
    " INSERT INTO call_events (call_sid, event, reason, detail, at,"
    "                          idempotency_key)"
    " VALUES ($1::text, 'recording', CASE WHEN $5::text IS NULL"
    "                                     THEN 'twilio' ELSE 'stream' END,"
    "         jsonb_strip_nulls(jsonb_build_object('recording_sid', $2::text,"
    "                                              'duration_s', $4::integer)),"
    "         to_timestamp($6::double precision),"
    "         $1::text || ':recording:' || coalesce($2::text, $5::text))"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * The local copy of Twilio's recording (kept by the transcription job):
 * its row made or completed, whichever of this and handle_recording's own
 * write lands first.
 */

static const char  ngx_agentlocator_crm_recording_file_sql[] =
    "INSERT INTO recordings (call_sid, recording_sid, wav_path)"
    " VALUES ($1::text, $2::text, $3::text)"
    " ON CONFLICT ON CONSTRAINT recordings_recording_sid DO UPDATE"
    " SET wav_path = EXCLUDED.wav_path";


/*
 * A recording's transcript: its recording found by Twilio's RecordingSid
 * ($2) or the stream's WAV ($3), made if its own write has not landed yet;
 * a later transcript of the same recording replaces it (a stream's WAV
 * grows when the call streams again); one "transcript" event per
 * recording on the call's timeline.
 */

static const char  ngx_agentlocator_crm_transcript_sql[] =
    "WITH made AS ("
    "  INSERT INTO recordings (call_sid, recording_sid, wav_path)"
    "  SELECT $1::text, $2::text, $3::text"
    "  WHERE $2::text IS NOT NULL OR $3::text IS NOT NULL"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING id"
    "), rec AS ("
    "  SELECT id FROM made"
    "  UNION ALL"
    "  SELECT id FROM recordings"
    "  WHERE CASE WHEN $2::text IS NOT NULL THEN recording_sid = $2::text"
    "             ELSE call_sid = $1::text AND wav_path = $3::text END"
    "  LIMIT 1"
    "), tr AS ("
    "  INSERT INTO transcripts (recording_id, call_sid, text, language,"
    "                           engine)"
    "  SELECT id, $1::text, $4::text, $5::text, $6::text FROM rec"
    "  ON CONFLICT ON CONSTRAINT transcripts_recording DO UPDATE"
    "  SET text = EXCLUDED.text, language = EXCLUDED.language,"
    "      engine = EXCLUDED.engine, created_at = now()"
    "  RETURNING recording_id"
    ")"
    " INSERT INTO call_events (call_sid, event, reason, detail, at,"
    "                          idempotency_key)"
    " SELECT $1::text, 'transcript', $6::text,"
    "        jsonb_build_object('recording_id', recording_id,"
    "                           'chars', length($4::text)),"
    "        to_timestamp($7::double precision),"
    "        $1::text || ':transcript:' || recording_id FROM tr"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * A transcription job started ($5 seconds: its claim) or could not start
 * ($5 = 0: the sweep may take it at once), for Twilio's recording ($2,
 * its URL $3) or a stream's WAV ($4): the recording is due for the sweep
 * (sql/003_transcribe.sql) from then on, unless a transcript lands first.
 * Its row is made if its own write has not landed yet; a claim already
 * further ahead is kept.
 */

static const char  ngx_agentlocator_crm_transcribe_due_sql[] =
    "WITH twilio AS ("
    "  INSERT INTO recordings (call_sid, recording_sid, url,"
    "                          transcript_due_at, transcript_attempts)"
    "  SELECT $1::text, $2::text, $3::text,"
    "         now() + make_interval(secs => $5::integer),"
    "         CASE WHEN $5::integer > 0 THEN 1 ELSE 0 END"
    "  WHERE $2::text IS NOT NULL"
    "  ON CONFLICT ON CONSTRAINT recordings_recording_sid DO UPDATE"
    "  SET url = coalesce(recordings.url, EXCLUDED.url),"
    "      transcript_due_at = greatest(recordings.transcript_due_at,"
    "                                   EXCLUDED.transcript_due_at),"
    "      transcript_attempts = recordings.transcript_attempts"
    "                            + EXCLUDED.transcript_attempts"
    ")"
    " INSERT INTO recordings (call_sid, wav_path, transcript_due_at,"
    "                         transcript_attempts)"
    " SELECT $1::text, $4::text, now() + make_interval(secs => $5::integer),"
    "        CASE WHEN $5::integer > 0 THEN 1 ELSE 0 END"
    " WHERE $2::text IS NULL AND $4::text IS NOT NULL"
    " ON CONFLICT (call_sid, wav_path) WHERE wav_path IS NOT NULL DO UPDATE"
    " SET transcript_due_at = greatest(recordings.transcript_due_at,"
    "                                  EXCLUDED.transcript_due_at),"
    "     transcript_attempts = recordings.transcript_attempts"
    "                           + EXCLUDED.transcript_attempts";


/*
 * A transcription that would fail the same way again ($4: the stage): the
 * recording is no longer due, and its timeline says so, once.
 */

static const char  ngx_agentlocator_crm_transcribe_failed_sql[] =
    "WITH r AS ("
    "  UPDATE recordings SET transcript_due_at = NULL"
    "  WHERE CASE WHEN $2::text IS NOT NULL THEN recording_sid = $2::text"
    "             ELSE call_sid = $1::text AND wav_path = $3::text END"
    "    AND NOT EXISTS (SELECT 1 FROM transcripts t"
    "                    WHERE t.recording_id = recordings.id)"
    "  RETURNING id"
    ")"
    " INSERT INTO call_events (call_sid, event, reason, detail, at,"
    "                          idempotency_key)"
    " SELECT $1::text, 'transcript_failed', $4::text,"
    "        jsonb_build_object('recording_id', id),"
    "        to_timestamp($5::double precision),"
    "        $1::text || ':transcript_failed:' || id FROM r"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


/*
 * An inbound WhatsApp message (Twilio's or the Baileys bridge's): the
 * business that owns the number it was sent to (else the default one), the
 * sender as its customer (named by their profile if not named yet), their
 * thread, and the message, once per provider message id.
 */

static const char  ngx_agentlocator_crm_wa_inbound_sql[] =
    "WITH b AS ("
    "  SELECT coalesce((SELECT business_id FROM business_numbers"
    "                   WHERE number = $3::text),"
    "                  (SELECT id FROM businesses WHERE is_default)) AS id"
    "), cu AS ("
    "  INSERT INTO customers (business_id, phone, name)"
    "  SELECT b.id, $4::text, $8::text FROM b"
    "  ON CONFLICT ON CONSTRAINT customers_business_phone"
    "  DO UPDATE SET name = coalesce(customers.name, EXCLUDED.name),"
    "                updated_at = now()"
    "  RETURNING id, business_id"
    "), th AS ("
    "  INSERT INTO threads (business_id, customer_id, channel,"
    "                       last_message_at)"
    "  SELECT cu.business_id, cu.id, 'whatsapp',"
    "         to_timestamp($7::double precision) FROM cu"
    "  ON CONFLICT ON CONSTRAINT threads_business_customer_channel"
    "  DO UPDATE SET last_message_at = greatest(threads.last_message_at,"
    "                                           EXCLUDED.last_message_at)"
    "  RETURNING id"
    ")"
    " INSERT INTO messages (thread_id, provider, provider_msg_id, direction,"
    "                       body, media, status, created_at)"
    " SELECT th.id, $1::text, $2::text, 'inbound', $5::text,"
    "        coalesce($6::jsonb, '[]'), 'received',"
    "        to_timestamp($7::double precision) FROM th"
    " ON CONFLICT ON CONSTRAINT messages_provider_msg DO NOTHING";


/* A delivery status (sql/002_whatsapp.sql: logged, applied if higher). */

static const char  ngx_agentlocator_crm_wa_status_sql[] =
    "SELECT agentlocator_message_status($1::text, $2::text, $3::text,"
    "                                   $4::text,"
    "                                   to_timestamp($5::double precision))";


/* An outbound message: queued, then sent or failed, in either order. */

static const char  ngx_agentlocator_crm_wa_outbound_sql[] =
    "SELECT agentlocator_message_outbound($1::text, $2::bigint, $3::text,"
    "    $4::text, $5::jsonb, $6::text, $7::text, $8::text, $9::text,"
    "    $10::text, to_timestamp($11::double precision))";


/*
 * Every statement by name and parameter count: a write in the spool names
 * its statement, so a replay, even by a newer module, runs the text this
 * one has for it.  A statement whose parameters change gets a new name.
 */

ngx_agentlocator_crm_statement_t  ngx_agentlocator_crm_statements[] = {
    { "incoming_call", ngx_agentlocator_crm_incoming_sql, 5 },
    { "call_status", ngx_agentlocator_crm_status_sql, 5 },
    { "call_event", ngx_agentlocator_crm_event_sql, 13 },
    { "recording", ngx_agentlocator_crm_recording_sql, 6 },
    { "wa_inbound", ngx_agentlocator_crm_wa_inbound_sql, 8 },
    { "wa_status", ngx_agentlocator_crm_wa_status_sql, 5 },
    { "wa_outbound", ngx_agentlocator_crm_wa_outbound_sql, 11 },
    { "transcript", ngx_agentlocator_crm_transcript_sql, 7 },
    { "recording_file", ngx_agentlocator_crm_recording_file_sql, 3 },
    { "transcribe_due", ngx_agentlocator_crm_transcribe_due_sql, 5 },
    { "transcribe_failed", ngx_agentlocator_crm_transcribe_failed_sql, 5 },
    { NULL, NULL, 0 }
};

#define NGX_AGENTLOCATOR_CRM_INCOMING   (&ngx_agentlocator_crm_statements[0])
#define NGX_AGENTLOCATOR_CRM_STATUS     (&ngx_agentlocator_crm_statements[1])
#define NGX_AGENTLOCATOR_CRM_EVENT      (&ngx_agentlocator_crm_statements[2])
#define NGX_AGENTLOCATOR_CRM_RECORDING  (&ngx_agentlocator_crm_statements[3])
#define NGX_AGENTLOCATOR_CRM_WA_INBOUND (&ngx_agentlocator_crm_statements[4])
#define NGX_AGENTLOCATOR_CRM_WA_STATUS  (&ngx_agentlocator_crm_statements[5])
#define NGX_AGENTLOCATOR_CRM_WA_OUTBOUND (&ngx_agentlocator_crm_statements[6])
#define NGX_AGENTLOCATOR_CRM_TRANSCRIPT (&ngx_agentlocator_crm_statements[7])
#define NGX_AGENTLOCATOR_CRM_RECORDING_FILE                                   \
    (&ngx_agentlocator_crm_statements[8])
#define NGX_AGENTLOCATOR_CRM_TRANSCRIBE_DUE                                   \
    (&ngx_agentlocator_crm_statements[9])
#define NGX_AGENTLOCATOR_CRM_TRANSCRIBE_FAILED                                \
    (&ngx_agentlocator_crm_statements[10])


static void ngx_agentlocator_crm_nulls(ngx_str_t *params, ngx_uint_t from,
    ngx_uint_t to);
static ngx_str_t *ngx_agentlocator_crm_now(u_char *buf, ngx_str_t *at);
static ngx_uint_t ngx_agentlocator_crm_whole_seconds(ngx_str_t *s);
static ngx_int_t ngx_agentlocator_crm_wa_write(
    ngx_agentlocator_crm_statement_t *st, ngx_uint_t n, ngx_str_t *params);


void
ngx_agentlocator_crm_incoming(ngx_agentlocator_call_info_t *info)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];

    params[0] = info->call.sid;
    params[1] = info->account_sid;
    params[2] = info->from;
    params[3] = info->to;
    (void) ngx_agentlocator_crm_now(at, &params[4]);

    /* an absent field is SQL NULL, not an empty string */
    ngx_agentlocator_crm_nulls(params, 1, 4);

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_INCOMING, 5,
                                     params);
}


void
ngx_agentlocator_crm_call_status(ngx_str_t *call_sid, ngx_str_t *status,
    ngx_str_t *duration, ngx_uint_t terminal)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];

    params[0] = *call_sid;
    params[1] = *status;
    params[2] = *duration;
    (void) ngx_agentlocator_crm_now(at, &params[3]);
    ngx_str_set(&params[4], "f");

    if (terminal) {
        ngx_str_set(&params[4], "t");
    }

    if (!ngx_agentlocator_crm_whole_seconds(&params[2])) {
        ngx_str_null(&params[2]);
    }

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_STATUS, 5,
                                     params);
}


/*
 * One event of a call's timeline.  Its idempotency key is
 * "{CallSid}:{event}" and, when the event can happen more than once per
 * call, ":{key}" (the stream, the attempt): a webhook Twilio retries, a
 * write replayed from the spool, land once.
 */

void
ngx_agentlocator_crm_event(ngx_agentlocator_crm_event_t *ev)
{
    u_char      at[NGX_TIME_T_LEN + 8], key[NGX_AGENTLOCATOR_CRM_KEY_LEN];
    u_char      frames[NGX_INT64_LEN], attempt[NGX_INT_T_LEN];
    u_char      status[NGX_INT_T_LEN], code[NGX_INT_T_LEN], *p, *last;
    ngx_str_t   params[13];

    ngx_memzero(params, sizeof(params));

    params[0].data = ev->call_sid;
    params[0].len = NGX_AGENTLOCATOR_SID_LEN;
    params[1].data = (u_char *) ev->event;
    params[1].len = ngx_strlen(ev->event);
    params[2] = ev->reason;
    (void) ngx_agentlocator_crm_now(at, &params[3]);

    last = key + sizeof(key);
    p = ngx_slprintf(key, last, "%*s:%s", (size_t) NGX_AGENTLOCATOR_SID_LEN,
                     ev->call_sid, ev->event);

    if (ev->key.len) {
        p = ngx_slprintf(p, last, ":%V", &ev->key);
    }

    params[4].data = key;
    params[4].len = p - key;

    if (ev->stream_sid) {
        params[5].data = ev->stream_sid;
        params[5].len = NGX_AGENTLOCATOR_SID_LEN;
    }

    if (ev->frames >= 0) {
        params[6].data = frames;
        params[6].len = ngx_sprintf(frames, "%L", ev->frames) - frames;
    }

    if (ev->redirect_reason) {
        params[7].data = (u_char *) ev->redirect_reason;
        params[7].len = ngx_strlen(ev->redirect_reason);
    }

    if (ev->redirect_outcome) {
        params[8].data = (u_char *) ev->redirect_outcome;
        params[8].len = ngx_strlen(ev->redirect_outcome);
    }

    ngx_str_set(&params[9], "f");

    if (ev->fallback) {
        ngx_str_set(&params[9], "t");
    }

    if (ev->attempt) {
        params[10].data = attempt;
        params[10].len = ngx_sprintf(attempt, "%ui", ev->attempt) - attempt;
    }

    if (ev->http_status) {
        params[11].data = status;
        params[11].len = ngx_sprintf(status, "%ui", ev->http_status) - status;
    }

    if (ev->code) {
        params[12].data = code;
        params[12].len = ngx_sprintf(code, "%ui", ev->code) - code;
    }

    /* an empty reason is none: SQL NULL */
    if (params[2].len == 0) {
        params[2].data = NULL;
    }

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_EVENT, 13, params);
}


/*
 * A recording of the call: Twilio's (recording_sid, url, duration as
 * Twilio sent them, or empty) or a stream's WAV (wav_path).
 */

void
ngx_agentlocator_crm_recording(ngx_str_t *call_sid, ngx_str_t *recording_sid,
    ngx_str_t *url, ngx_str_t *duration, ngx_str_t *wav_path)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[6];

    params[0] = *call_sid;
    params[1] = *recording_sid;
    params[2] = *url;
    params[3] = *duration;
    params[4] = *wav_path;
    (void) ngx_agentlocator_crm_now(at, &params[5]);

    if (!ngx_agentlocator_crm_whole_seconds(&params[3])) {
        ngx_str_null(&params[3]);
    }

    ngx_agentlocator_crm_nulls(params, 1, 5);

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_RECORDING, 6,
                                     params);
}


/* Twilio's recording, now also a file of this host's. */

void
ngx_agentlocator_crm_recording_file(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *wav_path)
{
    ngx_str_t  params[3];

    params[0] = *call_sid;
    params[1] = *recording_sid;
    params[2] = *wav_path;

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_RECORDING_FILE, 3,
                                     params);
}


/* A transcript of Twilio's recording or of a stream's WAV. */

void
ngx_agentlocator_crm_transcript(ngx_str_t *call_sid, ngx_str_t *recording_sid,
    ngx_str_t *wav_path, ngx_str_t *text, ngx_str_t *language,
    ngx_str_t *engine)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[7];

    params[0] = *call_sid;
    params[1] = *recording_sid;
    params[2] = *wav_path;
    params[3] = *text;
    params[4] = *language;
    params[5] = *engine;
    (void) ngx_agentlocator_crm_now(at, &params[6]);

    /* the text stays text, '' when empty (below) */
    ngx_agentlocator_crm_nulls(params, 1, 3);
    ngx_agentlocator_crm_nulls(params, 4, 6);

    if (params[3].len == 0) {
        ngx_str_set(&params[3], "");
    }

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_TRANSCRIPT, 7,
                                     params);
}


/*
 * A recording is due for the sweep in "delay" seconds (a job holds it
 * until then), or at once: Twilio's (recording_sid, url) or a stream's
 * WAV (wav_path).
 */

void
ngx_agentlocator_crm_transcribe_due(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *url, ngx_str_t *wav_path,
    ngx_uint_t delay)
{
    u_char      secs[NGX_INT_T_LEN];
    ngx_str_t   params[5];

    params[0] = *call_sid;
    params[1] = *recording_sid;
    params[2] = *url;
    params[3] = *wav_path;
    params[4].data = secs;
    params[4].len = ngx_sprintf(secs, "%ui", delay) - secs;

    ngx_agentlocator_crm_nulls(params, 1, 4);

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_TRANSCRIBE_DUE, 5,
                                     params);
}


/* A transcription that would fail the same way again: not due any more. */

void
ngx_agentlocator_crm_transcribe_failed(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *wav_path, const char *stage)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];

    params[0] = *call_sid;
    params[1] = *recording_sid;
    params[2] = *wav_path;
    params[3].data = (u_char *) stage;
    params[3].len = ngx_strlen(stage);
    (void) ngx_agentlocator_crm_now(at, &params[4]);

    ngx_agentlocator_crm_nulls(params, 1, 3);

    (void) ngx_agentlocator_pg_write(NGX_AGENTLOCATOR_CRM_TRANSCRIBE_FAILED,
                                     5, params);
}


/*
 * WhatsApp's writes.  What is empty is SQL NULL.  Each returns what
 * ngx_agentlocator_pg_write() did: NGX_OK once the write is spooled or
 * queued, NGX_BUSY when it could be neither (the sender should retry).
 */

ngx_int_t
ngx_agentlocator_crm_wa_inbound(ngx_agentlocator_crm_message_t *m)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[8];

    params[0].data = (u_char *) m->provider;
    params[0].len = ngx_strlen(m->provider);
    params[1] = m->msg_id;
    params[2] = m->business_number;
    params[3] = m->peer;
    params[4] = m->body;
    params[5] = m->media;
    (void) ngx_agentlocator_crm_now(at, &params[6]);
    params[7] = m->name;

    return ngx_agentlocator_crm_wa_write(NGX_AGENTLOCATOR_CRM_WA_INBOUND, 8,
                                         params);
}


ngx_int_t
ngx_agentlocator_crm_wa_status(const char *provider, ngx_str_t *msg_id,
    ngx_str_t *status, ngx_str_t *error_code)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];

    params[0].data = (u_char *) provider;
    params[0].len = ngx_strlen(provider);
    params[1] = *msg_id;
    params[2] = *status;
    params[3] = *error_code;
    (void) ngx_agentlocator_crm_now(at, &params[4]);

    return ngx_agentlocator_crm_wa_write(NGX_AGENTLOCATOR_CRM_WA_STATUS, 5,
                                         params);
}


ngx_int_t
ngx_agentlocator_crm_wa_outbound(ngx_agentlocator_crm_message_t *m,
    ngx_int_t business_id, const char *status)
{
    u_char      at[NGX_TIME_T_LEN + 8], business[NGX_INT_T_LEN];
    ngx_str_t   params[11];

    params[0] = m->local_id;
    params[1].data = business;
    params[1].len = ngx_sprintf(business, "%i", business_id) - business;
    params[2] = m->peer;
    params[3] = m->body;
    params[4] = m->media;
    params[5].data = (u_char *) m->provider;
    params[5].len = ngx_strlen(m->provider);
    params[6].data = (u_char *) status;
    params[6].len = ngx_strlen(status);
    params[7] = m->msg_id;
    params[8] = m->error_code;
    params[9] = m->error_message;
    (void) ngx_agentlocator_crm_now(at, &params[10]);

    return ngx_agentlocator_crm_wa_write(NGX_AGENTLOCATOR_CRM_WA_OUTBOUND,
                                         11, params);
}


static ngx_int_t
ngx_agentlocator_crm_wa_write(ngx_agentlocator_crm_statement_t *st,
    ngx_uint_t n, ngx_str_t *params)
{

    ngx_agentlocator_crm_nulls(params, 0, n);

    return ngx_agentlocator_pg_write(st, n, params);
}


ngx_agentlocator_crm_statement_t *
ngx_agentlocator_crm_statement(u_char *name, size_t len)
{
    ngx_agentlocator_crm_statement_t  *st;

    for (st = ngx_agentlocator_crm_statements; st->name; st++) {
        if (ngx_strlen(st->name) == len
            && ngx_strncmp(st->name, name, len) == 0)
        {
            return st;
        }
    }

    return NULL;
}


/* Twilio's durations: whole seconds, at most 9 digits, or nothing. */

static ngx_uint_t
ngx_agentlocator_crm_whole_seconds(ngx_str_t *s)
{
    ngx_uint_t  i;

    if (s->len == 0 || s->len > 9) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }

    return 1;
}


/*
 * Now, as seconds with microseconds (to_timestamp()'s argument): not the
 * event loop's cached time, as two webhooks of one call a moment apart,
 * in two workers, must still be told apart in the timeline.
 */

/* params[from .. to - 1] that are empty are sent as SQL NULL */

static void
ngx_agentlocator_crm_nulls(ngx_str_t *params, ngx_uint_t from, ngx_uint_t to)
{
    ngx_uint_t  i;

    for (i = from; i < to; i++) {
        if (params[i].len == 0) {
            params[i].data = NULL;
        }
    }
}


static ngx_str_t *
ngx_agentlocator_crm_now(u_char *buf, ngx_str_t *at)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    at->data = buf;
    at->len = ngx_sprintf(buf, "%T.%06d", (time_t) tv.tv_sec,
                          (int) tv.tv_usec) - buf;

    return at;
}
