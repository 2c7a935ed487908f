-- Issue 10: who answered an outbound call (answering-machine detection), and the durable
-- post-call analysis queue. A row is written in the same transaction as the call's final
-- status (so a crash between the two loses nothing); the analysis worker claims rows with a
-- lease like the dispatch queue, retries with backoff, and deletes the row when the result
-- (or the final failure) is stored on the call.
ALTER TABLE calls ADD COLUMN answered_by TEXT;

CREATE TABLE analysis_queue (
    seq {SEQ_PK},
    call_id TEXT NOT NULL UNIQUE REFERENCES calls(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    claimed_by TEXT,
    claimed_until BIGINT
);
CREATE INDEX analysis_queue_ready ON analysis_queue (not_before, seq);
