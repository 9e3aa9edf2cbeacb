-- 001: the CRM (SPEC §7).  Idempotent: applying it again changes nothing.
-- tools/migrate runs each file in one transaction.

SELECT pg_advisory_xact_lock(hashtext('agentlocator-migrate'));

CREATE TABLE IF NOT EXISTS schema_version (
    version         integer PRIMARY KEY,
    name            text NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);

-- The businesses this host answers for, and the numbers that reach them
-- (an inbound call's To).  Calls to a number nobody owns go to the default.

CREATE TABLE IF NOT EXISTS businesses (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    is_default      boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS businesses_one_default
    ON businesses (is_default) WHERE is_default;

INSERT INTO businesses (name, is_default)
    SELECT 'default', true
    WHERE NOT EXISTS (SELECT 1 FROM businesses WHERE is_default);

CREATE TABLE IF NOT EXISTS business_numbers (
    number          text PRIMARY KEY
                    CONSTRAINT business_numbers_e164
                    CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    business_id     bigint NOT NULL REFERENCES businesses (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One customer per phone number and business.

CREATE TABLE IF NOT EXISTS customers (
    id              bigserial PRIMARY KEY,
    business_id     bigint NOT NULL REFERENCES businesses (id),
    phone           text NOT NULL,
    name            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customers_business_phone UNIQUE (business_id, phone)
);

-- A call's status only moves forward: an update whose status ranks lower
-- than the stored one (a late "ringing" after "completed") keeps the
-- stored one.

CREATE OR REPLACE FUNCTION agentlocator_call_status_rank(status text)
    RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'queued'      THEN 0
        WHEN 'initiated'   THEN 0
        WHEN 'ringing'     THEN 1
        WHEN 'in-progress' THEN 2
        WHEN 'completed'   THEN 3
        WHEN 'busy'        THEN 3
        WHEN 'failed'      THEN 3
        WHEN 'no-answer'   THEN 3
        WHEN 'canceled'    THEN 3
        ELSE 0
    END::smallint
$$;

CREATE TABLE IF NOT EXISTS calls (
    call_sid          text PRIMARY KEY
                      CONSTRAINT calls_call_sid CHECK (call_sid ~ '^CA[0-9a-fA-F]{32}$'),
    account_sid       text,
    business_id       bigint REFERENCES businesses (id),
    customer_id       bigint REFERENCES customers (id),
    from_number       text,
    to_number         text,
    status            text NOT NULL DEFAULT 'ringing',
    created_at        timestamptz NOT NULL DEFAULT now(),
    answered_at       timestamptz,
    ended_at          timestamptz,
    duration_s        integer,
    stream_sid        text,
    stream_started_at timestamptz,
    stream_ended_at   timestamptz,
    frames            bigint NOT NULL DEFAULT 0,
    redirect_reason   text,
    redirect_outcome  text,
    redirected_at     timestamptz,
    fallback_served   boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at DESC);
CREATE INDEX IF NOT EXISTS calls_customer ON calls (customer_id);
CREATE INDEX IF NOT EXISTS calls_status ON calls (status);

-- The timeline: append-only, one row per event.  Every write carries an
-- idempotency key, so replaying a spool after a crash adds nothing twice.
-- No foreign key: an event is never refused, whatever order rows arrive in.

CREATE TABLE IF NOT EXISTS call_events (
    id              bigserial PRIMARY KEY,
    call_sid        text NOT NULL,
    event           text NOT NULL,
    reason          text,
    detail          jsonb NOT NULL DEFAULT '{}',
    at              timestamptz NOT NULL,
    idempotency_key text NOT NULL
                    CONSTRAINT call_events_idempotency_key UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS call_events_call ON call_events (call_sid, at, id);

-- Twilio's recording (RecordingSid, Url, Duration) or a stream's WAV kept
-- by agentlocator_recordings.

CREATE TABLE IF NOT EXISTS recordings (
    id              bigserial PRIMARY KEY,
    call_sid        text NOT NULL,
    recording_sid   text CONSTRAINT recordings_recording_sid UNIQUE,
    url             text,
    duration_s      integer,
    wav_path        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recordings_source CHECK (recording_sid IS NOT NULL OR wav_path IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS recordings_call ON recordings (call_sid);
CREATE UNIQUE INDEX IF NOT EXISTS recordings_call_wav
    ON recordings (call_sid, wav_path) WHERE wav_path IS NOT NULL;

CREATE TABLE IF NOT EXISTS transcripts (
    id              bigserial PRIMARY KEY,
    recording_id    bigint NOT NULL REFERENCES recordings (id)
                    CONSTRAINT transcripts_recording UNIQUE,
    call_sid        text NOT NULL,
    text            text NOT NULL,
    language        text,
    engine          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS transcripts_call ON transcripts (call_sid);

-- WhatsApp (SPEC §8): a thread per business, customer and channel; its
-- messages, unique per provider and the provider's message id (a webhook
-- delivered twice adds one row).  An outbound message has no provider id
-- until it is sent.

CREATE TABLE IF NOT EXISTS threads (
    id              bigserial PRIMARY KEY,
    business_id     bigint NOT NULL REFERENCES businesses (id),
    customer_id     bigint NOT NULL REFERENCES customers (id),
    channel         text NOT NULL DEFAULT 'whatsapp',
    last_message_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT threads_business_customer_channel UNIQUE (business_id, customer_id, channel)
);

CREATE TABLE IF NOT EXISTS messages (
    id              bigserial PRIMARY KEY,
    thread_id       bigint NOT NULL REFERENCES threads (id),
    provider        text NOT NULL
                    CONSTRAINT messages_provider CHECK (provider IN ('twilio', 'baileys')),
    provider_msg_id text,
    direction       text NOT NULL
                    CONSTRAINT messages_direction CHECK (direction IN ('inbound', 'outbound')),
    body            text,
    media           jsonb NOT NULL DEFAULT '[]',
    status          text NOT NULL DEFAULT 'received',
    error_code      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_provider_msg UNIQUE (provider, provider_msg_id)
);

CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, created_at, id);

INSERT INTO schema_version (version, name) VALUES (1, 'crm')
    ON CONFLICT (version) DO NOTHING;
