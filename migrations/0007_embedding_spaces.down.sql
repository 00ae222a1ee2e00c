DROP TABLE IF EXISTS chunk_vectors_next;
DROP TABLE IF EXISTS embedding_migrations;
-- One typed vector column holds one space's vectors: refuse rather than
-- delete chunks when several spaces hold some.
DO $$
DECLARE keep integer; dims integer; ix record;
BEGIN
    IF (SELECT count(DISTINCT space_id) FROM chunks) > 1 THEN
        RAISE EXCEPTION 'chunks of several embedding spaces are stored; finish the re-embedding or delete documents first';
    END IF;
    SELECT coalesce((SELECT space_id FROM chunks LIMIT 1), 0) INTO keep;
    SELECT coalesce((SELECT dimensions FROM embedding_spaces WHERE id = keep), 384) INTO dims;
    FOR ix IN SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname LIKE 'chunks_embedding_space%' LOOP
        EXECUTE format('DROP INDEX %I', ix.indexname);
    END LOOP;
    EXECUTE format('ALTER TABLE chunks ALTER COLUMN embedding TYPE vector(%s)', dims);
    ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN;
END $$;
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
ALTER TABLE chunks DROP COLUMN space_id;
ALTER TABLE tenants DROP COLUMN embedding_space_id;
DROP TABLE IF EXISTS embedding_spaces;
