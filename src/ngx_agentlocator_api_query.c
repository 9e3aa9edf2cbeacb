
/*
 * What the CRM API reads (SPEC §8): each page is two statements sent
 * together, its rows and their count; each is parameterized, prepared once
 * per connection, and takes the caller's business as $1, so no statement
 * can reach another business's rows.  Beside each, the JSON its columns
 * become (ngx_agentlocator_api.c writes it with yajl).
 */


#include "ngx_agentlocator.h"


#define ISO(col)  "agentlocator_iso(" col ")"

/* a column as a field of the row, or of a nested object of it */
#define COL(name, type)                                                       \
    { ngx_string(name), ngx_null_string, NGX_AGENTLOCATOR_API_##type }
#define SUB(object, name, type)                                               \
    { ngx_string(name), ngx_string(object), NGX_AGENTLOCATOR_API_##type }
#define END                                                                   \
    { ngx_null_string, ngx_null_string, 0 }


/* threads: $2 channel or NULL, $3 limit, $4 offset */

static const char  ngx_agentlocator_api_threads_count_sql[] =
    "SELECT count(*) FROM threads"
    " WHERE business_id = $1::bigint"
    "   AND ($2::text IS NULL OR channel = $2::text)";

static const char  ngx_agentlocator_api_threads_sql[] =
    "SELECT t.id, t.channel, " ISO("t.last_message_at") ", "
    ISO("t.created_at") ","
    "       c.id, c.phone, c.name,"
    "       lm.direction, lm.body, lm.status, " ISO("lm.created_at")
    " FROM threads t JOIN customers c ON c.id = t.customer_id"
    " LEFT JOIN LATERAL ("
    "   SELECT direction, body, status, created_at FROM messages m"
    "   WHERE m.thread_id = t.id ORDER BY m.created_at DESC, m.id DESC"
    "   LIMIT 1) lm ON true"
    " WHERE t.business_id = $1::bigint"
    "   AND ($2::text IS NULL OR t.channel = $2::text)"
    " ORDER BY t.last_message_at DESC NULLS LAST, t.id DESC"
    " LIMIT $3::integer OFFSET $4::bigint";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_threads_cols[] = {
    COL("id", INT),
    COL("channel", STRING),
    COL("last_message_at", STRING),
    COL("created_at", STRING),
    SUB("customer", "id", INT),
    SUB("customer", "phone", STRING),
    SUB("customer", "name", STRING),
    SUB("last_message", "direction", STRING),
    SUB("last_message", "body", STRING),
    SUB("last_message", "status", STRING),
    SUB("last_message", "created_at", STRING),
    END
};


/*
 * a thread's messages, newest first: $2 the thread; no row from the count
 * when the thread is not the business's
 */

static const char  ngx_agentlocator_api_messages_count_sql[] =
    "SELECT (SELECT count(*) FROM messages m WHERE m.thread_id = t.id)"
    " FROM threads t WHERE t.id = $2::bigint AND t.business_id = $1::bigint";

static const char  ngx_agentlocator_api_messages_sql[] =
    "SELECT m.id, m.direction, m.provider, m.provider_msg_id, m.local_id,"
    "       m.body, m.media::text, m.status, m.error_code, m.error_message,"
    "       " ISO("m.created_at") ", " ISO("m.updated_at")
    " FROM messages m JOIN threads t ON t.id = m.thread_id"
    " WHERE t.id = $2::bigint AND t.business_id = $1::bigint"
    " ORDER BY m.created_at DESC, m.id DESC"
    " LIMIT $3::integer OFFSET $4::bigint";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_messages_cols[] = {
    COL("id", INT),
    COL("direction", STRING),
    COL("provider", STRING),
    COL("provider_msg_id", STRING),
    COL("ref", STRING),
    COL("text", STRING),
    COL("media", JSON),
    COL("status", STRING),
    COL("error_code", STRING),
    COL("error_message", STRING),
    COL("created_at", STRING),
    COL("updated_at", STRING),
    END
};


/* calls, newest first: $2 status or NULL */

#define NGX_AGENTLOCATOR_API_CALL_COLUMNS                                     \
    "SELECT ca.call_sid, ca.status, ca.from_number, ca.to_number,"           \
    "       " ISO("ca.created_at") ", " ISO("ca.answered_at") ","            \
    "       " ISO("ca.ended_at") ", ca.duration_s, ca.stream_sid,"           \
    "       ca.frames, ca.redirect_reason, ca.redirect_outcome,"             \
    "       ca.fallback_served, c.id, c.phone, c.name"                       \
    " FROM calls ca LEFT JOIN customers c ON c.id = ca.customer_id"

static const char  ngx_agentlocator_api_calls_count_sql[] =
    "SELECT count(*) FROM calls"
    " WHERE business_id = $1::bigint"
    "   AND ($2::text IS NULL OR status = $2::text)";

static const char  ngx_agentlocator_api_calls_sql[] =
    NGX_AGENTLOCATOR_API_CALL_COLUMNS
    " WHERE ca.business_id = $1::bigint"
    "   AND ($2::text IS NULL OR ca.status = $2::text)"
    " ORDER BY ca.created_at DESC, ca.call_sid"
    " LIMIT $3::integer OFFSET $4::bigint";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_calls_cols[] = {
    COL("call_sid", STRING),
    COL("status", STRING),
    COL("from", STRING),
    COL("to", STRING),
    COL("created_at", STRING),
    COL("answered_at", STRING),
    COL("ended_at", STRING),
    COL("duration_s", INT),
    COL("stream_sid", STRING),
    COL("frames", INT),
    COL("redirect_reason", STRING),
    COL("redirect_outcome", STRING),
    COL("fallback_served", BOOL),
    SUB("customer", "id", INT),
    SUB("customer", "phone", STRING),
    SUB("customer", "name", STRING),
    END
};


/* one call ($2), its timeline, its recordings with their transcripts */

static const char  ngx_agentlocator_api_call_sql[] =
    NGX_AGENTLOCATOR_API_CALL_COLUMNS
    " WHERE ca.call_sid = $2::text AND ca.business_id = $1::bigint";

static const char  ngx_agentlocator_api_call_events_sql[] =
    "SELECT e.event, e.reason, e.detail::text, " ISO("e.at")
    " FROM call_events e JOIN calls ca ON ca.call_sid = e.call_sid"
    " WHERE e.call_sid = $2::text AND ca.business_id = $1::bigint"
    " ORDER BY e.at, e.id LIMIT 1000";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_events_cols[] = {
    COL("event", STRING),
    COL("reason", STRING),
    COL("detail", JSON),
    COL("at", STRING),
    END
};

static const char  ngx_agentlocator_api_call_recordings_sql[] =
    "SELECT r.id, CASE WHEN r.recording_sid IS NULL THEN 'stream'"
    "                  ELSE 'twilio' END,"
    "       r.recording_sid, r.url, r.duration_s, " ISO("r.created_at") ","
    "       tr.text, tr.language, tr.engine, " ISO("tr.created_at")
    " FROM recordings r JOIN calls ca ON ca.call_sid = r.call_sid"
    " LEFT JOIN transcripts tr ON tr.recording_id = r.id"
    " WHERE r.call_sid = $2::text AND ca.business_id = $1::bigint"
    " ORDER BY r.created_at, r.id LIMIT 100";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_recordings_cols[] =
{
    COL("id", INT),
    COL("source", STRING),
    COL("recording_sid", STRING),
    COL("url", STRING),
    COL("duration_s", INT),
    COL("created_at", STRING),
    SUB("transcript", "text", STRING),
    SUB("transcript", "language", STRING),
    SUB("transcript", "engine", STRING),
    SUB("transcript", "created_at", STRING),
    END
};


/* customers, newest first: $2 a LIKE pattern (escaped by the caller) */

static const char  ngx_agentlocator_api_customers_count_sql[] =
    "SELECT count(*) FROM customers"
    " WHERE business_id = $1::bigint"
    "   AND ($2::text IS NULL OR phone LIKE $2::text"
    "        OR name ILIKE $2::text)";

static const char  ngx_agentlocator_api_customers_sql[] =
    "SELECT c.id, c.phone, c.name, " ISO("c.created_at") ", "
    ISO("c.updated_at")
    " FROM customers c"
    " WHERE c.business_id = $1::bigint"
    "   AND ($2::text IS NULL OR c.phone LIKE $2::text"
    "        OR c.name ILIKE $2::text)"
    " ORDER BY c.id DESC"
    " LIMIT $3::integer OFFSET $4::bigint";

static ngx_agentlocator_api_column_t  ngx_agentlocator_api_customers_cols[] = {
    COL("id", INT),
    COL("phone", STRING),
    COL("name", STRING),
    COL("created_at", STRING),
    COL("updated_at", STRING),
    END
};


/*
 * live calls: which of the registry's calls ($2, an array of CallSids in
 * the order the answer keeps) are the business's; each as its 1-based
 * place in $2
 */

static const char  ngx_agentlocator_api_live_sql[] =
    "SELECT s.i FROM unnest($2::text[]) WITH ORDINALITY AS s(sid, i)"
    " JOIN calls c ON c.call_sid = s.sid"
    " WHERE c.business_id = $1::bigint"
    " ORDER BY s.i";


/* a recording's audio kept on this host: $2 the call, $3 the recording */

static const char  ngx_agentlocator_api_recording_file_sql[] =
    "SELECT r.wav_path FROM recordings r"
    " JOIN calls ca ON ca.call_sid = r.call_sid"
    " WHERE ca.business_id = $1::bigint AND r.call_sid = $2::text"
    "   AND r.id = $3::bigint";


ngx_agentlocator_crm_statement_t  ngx_agentlocator_api_statements[] = {
    { "api_threads_count", ngx_agentlocator_api_threads_count_sql, 2 },
    { "api_threads", ngx_agentlocator_api_threads_sql, 4 },
    { "api_messages_count", ngx_agentlocator_api_messages_count_sql, 2 },
    { "api_messages", ngx_agentlocator_api_messages_sql, 4 },
    { "api_calls_count", ngx_agentlocator_api_calls_count_sql, 2 },
    { "api_calls", ngx_agentlocator_api_calls_sql, 4 },
    { "api_call", ngx_agentlocator_api_call_sql, 2 },
    { "api_call_events", ngx_agentlocator_api_call_events_sql, 2 },
    { "api_call_recordings", ngx_agentlocator_api_call_recordings_sql, 2 },
    { "api_customers_count", ngx_agentlocator_api_customers_count_sql, 2 },
    { "api_customers", ngx_agentlocator_api_customers_sql, 4 },
    { "api_live", ngx_agentlocator_api_live_sql, 2 },
    { "api_recording_file", ngx_agentlocator_api_recording_file_sql, 3 },
    { NULL, NULL, 0 }
};


/* The pages, by what the API calls them. */

ngx_agentlocator_api_page_t  ngx_agentlocator_api_pages[] = {
    { &ngx_agentlocator_api_statements[0], &ngx_agentlocator_api_statements[1],
      ngx_agentlocator_api_threads_cols },
    { &ngx_agentlocator_api_statements[2], &ngx_agentlocator_api_statements[3],
      ngx_agentlocator_api_messages_cols },
    { &ngx_agentlocator_api_statements[4], &ngx_agentlocator_api_statements[5],
      ngx_agentlocator_api_calls_cols },
    { &ngx_agentlocator_api_statements[9],
      &ngx_agentlocator_api_statements[10],
      ngx_agentlocator_api_customers_cols }
};


ngx_agentlocator_api_call_t  ngx_agentlocator_api_call = {
    &ngx_agentlocator_api_statements[6], ngx_agentlocator_api_calls_cols,
    &ngx_agentlocator_api_statements[7], ngx_agentlocator_api_events_cols,
    &ngx_agentlocator_api_statements[8], ngx_agentlocator_api_recordings_cols
};


ngx_agentlocator_crm_statement_t  *ngx_agentlocator_api_live_statement =
    &ngx_agentlocator_api_statements[11];

ngx_agentlocator_crm_statement_t  *ngx_agentlocator_api_recording_file_statement
    = &ngx_agentlocator_api_statements[12];
