-- Several engines (replicas) may share one database. Each live call records the engine that
-- carries it, and each engine keeps a heartbeat, so the calls of an engine that died are
-- closed by whichever engine notices first, and a restarting engine closes only its own.
CREATE TABLE engines (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
ALTER TABLE calls ADD COLUMN engine_id TEXT;
