
/*
 * What the call path writes to the CRM (SPEC §7), through the worker's
 * PostgreSQL queue (ngx_agentlocator_pg.c).  Every statement is
 * parameterized and idempotent (ON CONFLICT, keyed on the CallSid and the
 * event), so a write done twice, after a broken connection or a replay,
 * leaves the rows as once.
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
    "  ON CONFLICT (call_sid) DO NOTHING"
    ")"
    " INSERT INTO call_events (call_sid, event, at, idempotency_key)"
    " VALUES ($1::text, 'incoming', to_timestamp($5::double precision),"
    "         $1::text || ':incoming')"
    " ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING";


void
ngx_agentlocator_crm_incoming(ngx_agentlocator_call_info_t *info)
{
    u_char      at[NGX_TIME_T_LEN + 5];
    ngx_str_t   params[5];
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    params[0] = info->call_sid;
    params[1] = info->account_sid;
    params[2] = info->from;
    params[3] = info->to;
    params[4].data = at;
    params[4].len = ngx_sprintf(at, "%T.%03M", tp->sec, tp->msec) - at;

    /* an absent field is SQL NULL, not an empty string */
    if (params[1].len == 0) {
        params[1].data = NULL;
    }

    if (params[2].len == 0) {
        params[2].data = NULL;
    }

    if (params[3].len == 0) {
        params[3].data = NULL;
    }

    (void) ngx_agentlocator_pg_write(ngx_agentlocator_crm_incoming_sql,
                                     "incoming_call", 5, params);
}
