-- An embedding space is one way of turning text into vectors: provider,
-- model, dimensions and passage prefix. Vectors of different spaces cannot be
-- compared, so every chunk records the space of its vector, every tenant the
-- space its searches use, and a change of the configured space re-embeds
-- each tenant's chunks into the new one (embedding_migrations) before its
-- searches switch over.
CREATE TABLE embedding_spaces (
    id             integer PRIMARY KEY,
    provider       text NOT NULL,
    model          text NOT NULL,
    base_url       text NOT NULL,
    dimensions     integer NOT NULL,
    passage_prefix text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, model, base_url, dimensions, passage_prefix)
);
CREATE SEQUENCE embedding_spaces_id_seq OWNED BY embedding_spaces.id;

ALTER TABLE tenants ADD COLUMN embedding_space_id integer REFERENCES embedding_spaces (id);

-- Chunks stored before spaces existed are in space 0, which the first
-- process to start afterwards describes with its configuration (the
-- dimensions had to match it before).
ALTER TABLE chunks ADD COLUMN space_id integer NOT NULL DEFAULT 0;

-- The vector column takes any length; each space has a partial HNSW index
-- over its vectors cast to its dimensions, created when the space is.
DO $$
DECLARE dims integer;
BEGIN
    SELECT atttypmod INTO dims FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding';
    DROP INDEX IF EXISTS chunks_embedding_idx;
    ALTER TABLE chunks ALTER COLUMN embedding TYPE vector;
    -- A change of type resets the storage: keep vectors in the row (0005).
    ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN;
    EXECUTE format('CREATE INDEX chunks_embedding_space0_idx ON chunks USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE space_id = 0', dims);
    INSERT INTO embedding_spaces (id, provider, model, base_url, dimensions, passage_prefix)
        VALUES (0, '', '', '', dims, '');
END $$;
UPDATE tenants t SET embedding_space_id = 0 WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.tenant_id = t.id);

-- One re-embedding per tenant at a time: towards target_space_id, walking
-- the tenant's chunks in key order after the cursor. New vectors wait in
-- chunk_vectors_next until the walk is done; then one transaction moves them
-- into chunks and switches the tenant's space.
CREATE SEQUENCE embedding_migrations_id_seq;
CREATE TABLE embedding_migrations (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    id               bigint NOT NULL, -- new for each migration, in its tasks' IDs
    from_space_id    integer NOT NULL REFERENCES embedding_spaces (id),
    target_space_id  integer NOT NULL REFERENCES embedding_spaces (id),
    state            text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    total_chunks     integer NOT NULL,
    embedded_chunks  integer NOT NULL DEFAULT 0,
    cursor_document  uuid,
    cursor_chunk     integer,
    walked           boolean NOT NULL DEFAULT false, -- the walk reached the end
    error            text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

CREATE TABLE chunk_vectors_next (
    tenant_id   uuid NOT NULL,
    document_id uuid NOT NULL,
    chunk_index integer NOT NULL,
    embedding   vector NOT NULL,
    PRIMARY KEY (document_id, chunk_index),
    FOREIGN KEY (document_id, chunk_index) REFERENCES chunks (document_id, chunk_index) ON DELETE CASCADE
);
ALTER TABLE chunk_vectors_next ALTER COLUMN embedding SET STORAGE PLAIN;
CREATE INDEX chunk_vectors_next_tenant_idx ON chunk_vectors_next (tenant_id);
