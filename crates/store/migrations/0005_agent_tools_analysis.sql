-- Issue 10: an agent's tools, its voicemail behaviour and its post-call analysis settings
-- (JSON as text, like `settings`). Numbered 5: 4 is the events outbox.
ALTER TABLE agents ADD COLUMN tools TEXT;
ALTER TABLE agents ADD COLUMN voicemail TEXT;
ALTER TABLE agents ADD COLUMN success_criteria TEXT;
ALTER TABLE agents ADD COLUMN analysis_schema TEXT;
ALTER TABLE agents ADD COLUMN analysis_questions TEXT;
