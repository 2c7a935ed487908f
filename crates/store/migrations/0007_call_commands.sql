-- Call control across replicas: a hang-up or transfer of a call that another engine carries
-- is written here for that engine (`engine_id`, the call's owner), which picks it up (woken by
-- NOTIFY on PostgreSQL, by polling otherwise), acts on its live call and writes the outcome in
-- `state`: pending -> taken -> accepted | not_live, and accepted -> ended for a hang-up once the
-- call's task has returned. The requester waits for the outcome and deletes the row; rows a
-- requester left behind are pruned by their owner after an hour.
CREATE TABLE call_commands (
    seq {SEQ_PK},
    call_id TEXT NOT NULL,
    engine_id TEXT NOT NULL,
    -- 'hangup' or 'transfer'
    kind TEXT NOT NULL,
    -- The transfer target as the API validated it (E.164 number or sip: URI).
    arg TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX call_commands_engine ON call_commands (engine_id, state);
