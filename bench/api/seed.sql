-- bench/api/seed.sql: the CRM that bench/api/run reads, made with
-- generate_series in a few seconds.  psql variables (-v): businesses,
-- customers, messages, calls.  Run once on a freshly migrated database
-- (tools/migrate): ids start at 1, which the layout below relies on.
--
-- The layout, which api.lua and the pgbench scripts (sql.pl) rely on:
--   businesses  1 .. B (1 is the migration's default one)
--   customers   1 .. C; customer c belongs to business 1 + (c - 1) % B;
--               phone +97250 and c in 7 digits; a name (Hebrew or Latin,
--               some repeated across customers), none for every 10th
--   threads     one per customer, thread t = customer t (same business)
--   messages    1 .. M over the threads, skewed: thread t gets about
--               M / (2 sqrt(C t)) of them (thread 1 some 500, the last
--               ones 5); provider twilio (the webhooks of part 2 are
--               baileys); some Hebrew text; newest last
--   calls       1 .. N, CallSid 'CA' + n in 32 hex digits, call n belongs
--               to business 1 + (n - 1) % B, a customer of it (none for
--               every 20th); 70 % completed, the rest no-answer, busy,
--               failed, in-progress, ringing; 3 to 5 call_events each; a
--               recording for every 3rd call, half of them transcribed
--
-- ANALYZE and VACUUM afterwards (the run does it), as autovacuum would.

\set ON_ERROR_STOP 1

BEGIN;

INSERT INTO businesses (name)
    SELECT 'bench business ' || g FROM generate_series(2, :businesses) g;

INSERT INTO customers (business_id, phone, name, created_at, updated_at)
    SELECT 1 + (c - 1) % :businesses,
           '+97250' || lpad(c::text, 7, '0'),
           CASE WHEN c % 10 = 0 THEN NULL
                ELSE (ARRAY['דנה', 'יוסי', 'Noa', 'אבי', 'Michal', 'רותם',
                            'Omer', 'שירה', 'Itai', 'מאיה'])[1 + (c / 10) % 10]
                     || ' '
                     || (ARRAY['כהן', 'לוי', 'Mizrahi', 'פרץ', 'ביטון',
                               'Dahan', 'אברהם', 'Friedman', 'אזולאי',
                               'Katz', 'מלכה'])[1 + c % 11]
           END,
           now() - interval '200 days' + c * interval '10 minutes',
           now() - interval '200 days' + c * interval '10 minutes'
    FROM generate_series(1, :customers) c;

INSERT INTO threads (business_id, customer_id, channel, created_at)
    SELECT business_id, id, 'whatsapp', created_at FROM customers ORDER BY id;

-- golden-ratio points squared: low-numbered threads get many messages,
-- every thread some
INSERT INTO messages (thread_id, provider, provider_msg_id, direction, body,
                      media, status, created_at, updated_at)
    SELECT 1 + floor(:customers * power((g * 0.6180339887498949) % 1, 2))::bigint,
           'twilio',
           'SM' || lpad(to_hex(g), 32, '0'),
           CASE WHEN g % 3 = 0 THEN 'outbound' ELSE 'inbound' END,
           (ARRAY['שלום, אפשר לקבוע תור למחר בבוקר?',
                  'Hi, is the technician still coming today?',
                  'תודה רבה! נתראה ביום שלישי',
                  'הטכנאי יגיע בין 10:00 ל-12:00',
                  'Can you send me the invoice please?',
                  'כן, הכתובת היא רחוב הרצל 12, תל אביב'])[1 + g % 6]
           || ' #' || g,
           CASE WHEN g % 50 = 0
                THEN jsonb_build_array(jsonb_build_object(
                         'url', 'https://api.twilio.com/media/ME' || g,
                         'content_type', 'image/jpeg'))
                ELSE '[]'::jsonb END,
           CASE WHEN g % 3 = 0 THEN (ARRAY['sent', 'delivered', 'read'])[1 + g % 3]
                ELSE 'received' END,
           now() - interval '90 days' + g * (interval '90 days' / :messages),
           now() - interval '90 days' + g * (interval '90 days' / :messages)
    FROM generate_series(1, :messages) g;

UPDATE threads t SET last_message_at = m.last
    FROM (SELECT thread_id, max(created_at) AS last FROM messages
          GROUP BY thread_id) m
    WHERE m.thread_id = t.id;

INSERT INTO calls (call_sid, account_sid, business_id, customer_id,
                   from_number, to_number, status, created_at, answered_at,
                   ended_at, duration_s, stream_sid, frames, redirect_reason,
                   redirect_outcome, fallback_served, updated_at)
    SELECT 'CA' || lpad(to_hex(n), 32, '0'),
           'AC' || repeat('a1', 16),
           1 + (n - 1) % :businesses,
           CASE WHEN n % 20 = 0 THEN NULL
                ELSE ((n - 1) / :businesses) % (:customers / :businesses)
                     * :businesses + (n - 1) % :businesses + 1 END,
           '+97250' || lpad(n::text, 7, '0'),
           '+97230000000',
           st.status,
           at,
           CASE WHEN st.status IN ('completed', 'in-progress')
                THEN at + interval '4 seconds' END,
           CASE WHEN st.status NOT IN ('in-progress', 'ringing')
                THEN at + (30 + n % 600) * interval '1 second' END,
           CASE WHEN st.status = 'completed' THEN 30 + n % 600 END,
           CASE WHEN st.status IN ('completed', 'in-progress')
                THEN 'MZ' || lpad(to_hex(n), 32, '0') END,
           CASE WHEN st.status = 'completed' THEN (30 + n % 600) * 50 ELSE 0 END,
           CASE WHEN n % 40 = 1 THEN 'no_media' END,
           CASE WHEN n % 40 = 1 THEN 'redirected' END,
           n % 40 = 1,
           at
    FROM generate_series(1, :calls) n,
         LATERAL (SELECT now() - interval '30 days'
                         + n * (interval '30 days' / :calls) AS at) t,
         LATERAL (SELECT CASE WHEN n % 20 < 14 THEN 'completed'
                              WHEN n % 20 < 16 THEN 'no-answer'
                              WHEN n % 20 = 16 THEN 'busy'
                              WHEN n % 20 = 17 THEN 'failed'
                              WHEN n % 20 = 18 THEN 'in-progress'
                              ELSE 'ringing' END AS status) st;

INSERT INTO call_events (call_sid, event, reason, detail, at, idempotency_key)
    SELECT c.call_sid,
           (ARRAY['incoming', 'stream_start', 'stream_stop', 'redirect',
                  'status'])[k],
           CASE WHEN k = 5 THEN c.status END,
           CASE WHEN k = 2 THEN jsonb_build_object('stream_sid', c.stream_sid)
                ELSE '{}'::jsonb END,
           c.created_at + k * interval '1 second',
           c.call_sid || ':bench:' || k
    FROM calls c,
         generate_series(1, 5) k
    WHERE k <= 2 + ('x' || right(c.call_sid, 8))::bit(32)::int % 3
       OR k = 5;

INSERT INTO recordings (call_sid, recording_sid, url, duration_s, created_at)
    SELECT call_sid, 'RE' || right(call_sid, 32),
           'https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE'
           || right(call_sid, 32),
           duration_s, ended_at
    FROM calls
    WHERE status = 'completed'
      AND ('x' || right(call_sid, 8))::bit(32)::int % 3 = 0;

INSERT INTO transcripts (recording_id, call_sid, text, language, engine)
    SELECT id, call_sid,
           CASE WHEN id % 2 = 0
                THEN 'שלום, אני צריך אינסטלטור דחוף, יש נזילה במטבח'
                ELSE 'Hello, I need a plumber today, the kitchen sink leaks' END,
           CASE WHEN id % 2 = 0 THEN 'he' ELSE 'en' END,
           'whisper'
    FROM recordings
    WHERE id % 4 < 2;

COMMIT;
