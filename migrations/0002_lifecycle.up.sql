-- Documents can be deleted in the background; from the moment deletion is
-- accepted the document is 'deleting' and has no chunks.
ALTER TABLE documents DROP CONSTRAINT documents_status_check;
ALTER TABLE documents ADD CONSTRAINT documents_status_check
    CHECK (status IN ('processing', 'ready', 'failed', 'deleting'));
CREATE INDEX documents_dedupe_idx ON documents (tenant_id, collection, sha256) WHERE status <> 'deleting';

-- A job is dispatched (its first task handed to the queue) by the fair
-- dispatcher; until then it waits in Postgres, so a flood from one tenant
-- cannot fill the queue ahead of others.
ALTER TABLE jobs ADD COLUMN dispatched_at timestamptz;
ALTER TABLE jobs ADD COLUMN kind text NOT NULL DEFAULT 'ingest' CHECK (kind IN ('ingest', 'reingest'));
CREATE INDEX jobs_undispatched_idx ON jobs (tenant_id, created_at) WHERE dispatched_at IS NULL AND status = 'queued';
CREATE INDEX jobs_inflight_idx ON jobs (tenant_id) WHERE dispatched_at IS NOT NULL AND status IN ('queued', 'running');

-- Idempotency-Key: the first answer to a POST, replayed to retries.
CREATE TABLE idempotency_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status_code integer NOT NULL,
    body        bytea NOT NULL, -- replayed byte for byte
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
