DROP TABLE IF EXISTS idempotency_keys;
DROP INDEX IF EXISTS jobs_inflight_idx, jobs_undispatched_idx, documents_dedupe_idx;
ALTER TABLE jobs DROP COLUMN IF EXISTS kind, DROP COLUMN IF EXISTS dispatched_at;
DELETE FROM documents WHERE status = 'deleting';
ALTER TABLE documents DROP CONSTRAINT documents_status_check;
ALTER TABLE documents ADD CONSTRAINT documents_status_check CHECK (status IN ('processing', 'ready', 'failed'));
