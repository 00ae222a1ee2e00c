-- The vector leg of search compares the query with every chunk of a tenant
-- of fewer than RAGPIPE_VECTOR_INDEX_MIN_CHUNKS chunks (exact, and faster
-- than walking a graph at that size), so an HNSW graph is kept only for a
-- tenant past it: a partial index of its own over its chunks of its space,
-- built concurrently by a worker once the tenant gets there, and listed
-- here when ready. Chunks of smaller tenants are written without a graph
-- to insert them into, and a walk never passes other tenants' chunks.
CREATE TABLE tenant_vector_indexes (
    tenant_id uuid NOT NULL,
    space_id  integer NOT NULL,
    PRIMARY KEY (tenant_id, space_id)
);

-- The graph of each space over every tenant's chunks goes.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT indexname FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND indexname LIKE 'chunks\_embedding\_space%\_idx'
    LOOP
        EXECUTE format('DROP INDEX %I', r.indexname);
    END LOOP;
END $$;
