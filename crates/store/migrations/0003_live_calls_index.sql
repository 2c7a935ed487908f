-- The engines' sweep for orphaned calls (every heartbeat) reads only live calls; without an
-- index it would scan the whole calls table each time. A partial index holds just those.
CREATE INDEX calls_live ON calls (status) WHERE status IN ('dialing', 'in_progress');
