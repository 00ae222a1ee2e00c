CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 of the key: keys are 256-bit random, so a
-- fast hash is enough and lookups stay a single index probe.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE documents (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    collection  text NOT NULL DEFAULT '',
    filename    text NOT NULL,
    format      text NOT NULL,
    size_bytes  bigint NOT NULL,
    sha256      text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    pages       integer NOT NULL DEFAULT 0,
    chunk_count integer NOT NULL DEFAULT 0,
    raw_key     text NOT NULL,
    last_job_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_tenant_created_idx ON documents (tenant_id, created_at DESC, id DESC);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    stage           text NOT NULL CHECK (stage IN ('extract', 'chunk', 'embed', 'upsert')),
    progress        double precision NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    error_code      text NOT NULL DEFAULT '',
    error_message   text NOT NULL DEFAULT '',
    request_id      text NOT NULL DEFAULT '',
    chunk_size      integer NOT NULL,
    chunk_overlap   integer NOT NULL,
    total_chunks    integer NOT NULL DEFAULT 0,
    embedded_chunks integer NOT NULL DEFAULT 0,
    total_batches   integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_document_idx ON jobs (document_id);
CREATE INDEX jobs_unfinished_idx ON jobs (updated_at) WHERE status IN ('queued', 'running');

-- One row per embed batch: the fan-in counts rows whose done_at is set.
CREATE TABLE job_batches (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    batch       integer NOT NULL,
    chunk_count integer NOT NULL,
    done_at     timestamptz,
    PRIMARY KEY (job_id, batch)
);

-- Append-only log of everything that happened to a job.
CREATE TABLE job_events (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    type       text NOT NULL,
    status     text NOT NULL,
    stage      text NOT NULL,
    progress   double precision NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- Transactional outbox: tasks to enqueue, written in the same transaction as
-- the state that needs them; a relay moves them to Redis.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    task_type  text NOT NULL,
    task_id    text NOT NULL UNIQUE,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE chunks (
    tenant_id   uuid NOT NULL,
    document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    collection  text NOT NULL DEFAULT '',
    chunk_index integer NOT NULL,
    text        text NOT NULL,
    page_start  integer NOT NULL,
    page_end    integer NOT NULL,
    embedding   vector(384) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    PRIMARY KEY (document_id, chunk_index)
);
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
CREATE INDEX chunks_tenant_idx ON chunks (tenant_id, collection);
