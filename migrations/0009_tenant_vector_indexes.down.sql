DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT indexname FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND indexname LIKE 'chunks\_vec\_%'
    LOOP
        EXECUTE format('DROP INDEX %I', r.indexname);
    END LOOP;
    FOR r IN SELECT id, dimensions FROM embedding_spaces LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS chunks_embedding_space%s_idx ON chunks USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE space_id = %s',
            r.id, r.dimensions, r.id);
    END LOOP;
END $$;
DROP TABLE IF EXISTS tenant_vector_indexes;
