-- 002: WhatsApp delivery statuses and outbound messages, and the indexes
-- the CRM API (SPEC §8) reads by.  Idempotent, like every file here.

SELECT pg_advisory_xact_lock(hashtext('agentlocator-migrate'));

-- An outbound message is written before any provider has an id for it:
-- the module's own reference (local_id) names it until then, so its
-- "queued" and its "sent" or "failed" land on one row in either order.

ALTER TABLE messages ADD COLUMN IF NOT EXISTS local_id text;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS error_message text;

CREATE UNIQUE INDEX IF NOT EXISTS messages_local_id ON messages (local_id);

-- A message's status only moves forward (queued, sending, sent, then one
-- of delivered, undelivered, failed, then read); a status that arrives
-- late, after a higher one, is kept in message_statuses only.

CREATE OR REPLACE FUNCTION agentlocator_message_status_rank(status text)
    RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'received'    THEN 1
        WHEN 'receiving'   THEN 1
        WHEN 'accepted'    THEN 1
        WHEN 'scheduled'   THEN 1
        WHEN 'queued'      THEN 1
        WHEN 'sending'     THEN 2
        WHEN 'sent'        THEN 3
        WHEN 'delivered'   THEN 4
        WHEN 'undelivered' THEN 4
        WHEN 'failed'      THEN 4
        WHEN 'canceled'    THEN 4
        WHEN 'partially_delivered' THEN 4
        WHEN 'read'        THEN 5
        ELSE 0
    END::smallint
$$;

-- Every status callback, once per message and status, whatever order they
-- came in, and whether or not the message's own row has landed yet: that
-- row takes the highest of them when it does.

CREATE TABLE IF NOT EXISTS message_statuses (
    id              bigserial PRIMARY KEY,
    provider        text NOT NULL,
    provider_msg_id text NOT NULL,
    status          text NOT NULL,
    error_code      text,
    at              timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_statuses_once UNIQUE (provider, provider_msg_id, status)
);

-- A status callback: logged once, and applied to its message if that has
-- landed and the status ranks higher.  An outbound message's write takes
-- the highest status logged for it.  Both take one lock per message, and
-- each statement of a function sees what committed before it ran: a
-- callback and its message's row, in two transactions at once, never
-- miss each other.

CREATE OR REPLACE FUNCTION agentlocator_message_status(
    p_provider text, p_msg_id text, p_status text, p_error_code text,
    p_at timestamptz)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended(p_provider || ':' || p_msg_id, 0));

    INSERT INTO message_statuses (provider, provider_msg_id, status,
                                  error_code, at)
        VALUES (p_provider, p_msg_id, p_status, p_error_code, p_at)
        ON CONFLICT ON CONSTRAINT message_statuses_once DO NOTHING;

    UPDATE messages
       SET status = p_status,
           error_code = coalesce(p_error_code, messages.error_code),
           updated_at = now()
     WHERE provider = p_provider AND provider_msg_id = p_msg_id
       AND agentlocator_message_status_rank(p_status)
           > agentlocator_message_status_rank(messages.status);
END
$$;

-- An outbound message: "queued" when the API takes it, then "sent" (with
-- the provider that took it and its id) or "failed" (with the error), in
-- either order; the thread and customer made if they are new.

CREATE OR REPLACE FUNCTION agentlocator_message_outbound(
    p_local_id text, p_business bigint, p_to text, p_body text,
    p_media jsonb, p_provider text, p_status text, p_msg_id text,
    p_error_code text, p_error_message text, p_at timestamptz)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_customer  bigint;
    v_thread    bigint;
    v_status    text := p_status;
    v_error     text := p_error_code;
    logged      record;
BEGIN
    IF p_msg_id IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended(p_provider || ':' || p_msg_id, 0));

        SELECT status, error_code INTO logged
          FROM message_statuses
         WHERE provider = p_provider AND provider_msg_id = p_msg_id
         ORDER BY agentlocator_message_status_rank(status) DESC, at
         LIMIT 1;

        IF FOUND AND agentlocator_message_status_rank(logged.status)
                     > agentlocator_message_status_rank(v_status)
        THEN
            v_status := logged.status;
            v_error := coalesce(logged.error_code, v_error);
        END IF;
    END IF;

    INSERT INTO customers (business_id, phone) VALUES (p_business, p_to)
        ON CONFLICT ON CONSTRAINT customers_business_phone
        DO UPDATE SET updated_at = now()
        RETURNING id INTO v_customer;

    INSERT INTO threads (business_id, customer_id, channel, last_message_at)
        VALUES (p_business, v_customer, 'whatsapp', p_at)
        ON CONFLICT ON CONSTRAINT threads_business_customer_channel
        DO UPDATE SET last_message_at = greatest(threads.last_message_at,
                                                 EXCLUDED.last_message_at)
        RETURNING id INTO v_thread;

    INSERT INTO messages (thread_id, local_id, provider, provider_msg_id,
                          direction, body, media, status, error_code,
                          error_message, created_at)
        VALUES (v_thread, p_local_id, p_provider, p_msg_id, 'outbound',
                p_body, coalesce(p_media, '[]'), v_status, v_error,
                p_error_message, p_at)
        ON CONFLICT (local_id) DO UPDATE SET
            provider = CASE WHEN agentlocator_message_status_rank(EXCLUDED.status)
                                 > agentlocator_message_status_rank(messages.status)
                            THEN EXCLUDED.provider ELSE messages.provider END,
            provider_msg_id = coalesce(messages.provider_msg_id,
                                       EXCLUDED.provider_msg_id),
            status = CASE WHEN agentlocator_message_status_rank(EXCLUDED.status)
                               > agentlocator_message_status_rank(messages.status)
                          THEN EXCLUDED.status ELSE messages.status END,
            error_code = coalesce(EXCLUDED.error_code, messages.error_code),
            error_message = coalesce(EXCLUDED.error_message,
                                     messages.error_message),
            created_at = least(messages.created_at, EXCLUDED.created_at),
            updated_at = now();
END
$$;

-- The API's times: ISO 8601 in UTC, to the millisecond.

CREATE OR REPLACE FUNCTION agentlocator_iso(t timestamptz)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The API's pages: newest first, per business.

CREATE INDEX IF NOT EXISTS threads_business_recent
    ON threads (business_id, last_message_at DESC NULLS LAST, id DESC);
CREATE INDEX IF NOT EXISTS calls_business_recent
    ON calls (business_id, created_at DESC, call_sid);
CREATE INDEX IF NOT EXISTS customers_business
    ON customers (business_id, id DESC);

INSERT INTO schema_version (version, name) VALUES (2, 'whatsapp')
    ON CONFLICT (version) DO NOTHING;
