
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


static ngx_str_t *ngx_agentlocator_crm_now(u_char *buf, ngx_str_t *at);


void
ngx_agentlocator_crm_incoming(ngx_agentlocator_call_info_t *info)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];
    ngx_uint_t  i;

    params[0] = info->call_sid;
    params[1] = info->account_sid;
    params[2] = info->from;
    params[3] = info->to;
    (void) ngx_agentlocator_crm_now(at, &params[4]);

    /* an absent field is SQL NULL, not an empty string */
    for (i = 1; i < 4; i++) {
        if (params[i].len == 0) {
            params[i].data = NULL;
        }
    }

    (void) ngx_agentlocator_pg_write(ngx_agentlocator_crm_incoming_sql,
                                     "incoming_call", 5, params);
}


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


void
ngx_agentlocator_crm_call_status(ngx_str_t *call_sid, ngx_str_t *status,
    ngx_str_t *duration, ngx_uint_t terminal)
{
    u_char      at[NGX_TIME_T_LEN + 8];
    ngx_str_t   params[5];
    ngx_uint_t  i;

    params[0] = *call_sid;
    params[1] = *status;
    params[2] = *duration;
    (void) ngx_agentlocator_crm_now(at, &params[3]);
    ngx_str_set(&params[4], "f");

    if (terminal) {
        ngx_str_set(&params[4], "t");
    }

    /* CallDuration: whole seconds, or nothing */
    for (i = 0; i < params[2].len; i++) {
        if (params[2].data[i] < '0' || params[2].data[i] > '9') {
            break;
        }
    }

    if (params[2].len == 0 || params[2].len > 9 || i != params[2].len) {
        ngx_str_null(&params[2]);
    }

    (void) ngx_agentlocator_pg_write(ngx_agentlocator_crm_status_sql,
                                     "call_status", 5, params);
}


/*
 * Now, as seconds with microseconds (to_timestamp()'s argument): not the
 * event loop's cached time, as two webhooks of one call a moment apart,
 * in two workers, must still be told apart in the timeline.
 */

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
