-- Events (an outbox written in the same transaction as the change it describes) and webhook
-- delivery. The events table is also the replayable event log (GET /v1/events), pruned after
-- --event-retention-days. seq orders events: on PostgreSQL every writer of an event takes one
-- advisory transaction lock just before the insert, so seq order is commit order and a reader
-- paging by seq never skips an event that commits late (see store/src/events.rs).
CREATE TABLE events (
    seq {SEQ_PK},
    org_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    call_id TEXT,
    agent_id TEXT,
    -- The event's number among its call's events (1, 2, ...), from calls.event_seq.
    call_seq BIGINT,
    created_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_org ON events (org_id, seq);
CREATE INDEX events_org_type ON events (org_id, event_type, seq);
CREATE INDEX events_call ON events (call_id, seq);
CREATE INDEX events_created ON events (created_at);

-- Per-call event counter, bumped (and so row-locked) by each event of the call.
ALTER TABLE calls ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
-- The signing secret of the agent's webhook_url (whsec_...), made on first use.
ALTER TABLE agents ADD COLUMN webhook_secret TEXT;

CREATE TABLE webhook_endpoints (
    seq {SEQ_PK},
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- JSON array of event types, or ["*"].
    event_types TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    disabled_reason TEXT,
    -- First failure of the current run of failures (NULL after a success).
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, seq);

-- One row per (target, event): target is a webhook endpoint's id or an agent's id (its
-- webhook_url). Claimed with a lease like the dispatch queue.
CREATE TABLE webhook_deliveries (
    seq {SEQ_PK},
    event_seq BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    target TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    -- pending | succeeded | failed
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (target, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at, seq);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- Every attempt, for GET /v1/webhook-endpoints/{id}/deliveries.
CREATE TABLE webhook_attempts (
    seq {SEQ_PK},
    delivery_seq BIGINT NOT NULL,
    target TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code BIGINT,
    response_ms BIGINT,
    error TEXT,
    next_retry_at BIGINT
);
CREATE INDEX webhook_attempts_target ON webhook_attempts (target, seq);
CREATE INDEX webhook_attempts_at ON webhook_attempts (attempted_at);
