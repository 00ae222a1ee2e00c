ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL;
DROP INDEX IF EXISTS documents_metadata_idx;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
DROP TABLE IF EXISTS tenant_term_stats;
DROP TABLE IF EXISTS term_stats;
DROP TABLE IF EXISTS document_terms;
DROP TABLE IF EXISTS chunk_terms;
ALTER TABLE documents DROP COLUMN IF EXISTS language;
