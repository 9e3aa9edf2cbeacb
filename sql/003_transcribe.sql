-- 003: transcription that outlives a worker (agentlocator_transcribe_url).
-- A recording to transcribe is "due" from a time on; any worker's sweep
-- takes the recordings that are due and have no transcript, and a worker
-- transcribing one keeps pushing that time forward (its claim), so one
-- whose worker exited or gave up is taken again, by someone, once.
-- Idempotent, like every file here.

SELECT pg_advisory_xact_lock(hashtext('agentlocator-migrate'));

-- NULL: nothing to do (not wanted, done, or given up for good).  Else the
-- sweep may take it from then on; while a worker holds it, that worker
-- keeps it in the future.
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS transcript_due_at timestamptz;

-- jobs started for it, the first one included: a bound on trying again
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS transcript_attempts integer
    NOT NULL DEFAULT 0;

-- what the sweep reads: only the recordings still due, a few at a time
CREATE INDEX IF NOT EXISTS recordings_transcript_due
    ON recordings (transcript_due_at) WHERE transcript_due_at IS NOT NULL;

INSERT INTO schema_version (version, name) VALUES (3, 'transcribe')
    ON CONFLICT (version) DO NOTHING;
