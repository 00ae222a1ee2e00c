-- BM25 for the keyword leg of search: postings per chunk and term, and the
-- term statistics BM25 needs per tenant, kept exact by the transactions that
-- write or remove chunks. Each document is analysed with its own text search
-- configuration (language).
ALTER TABLE documents ADD COLUMN language regconfig NOT NULL DEFAULT 'english';

-- One row per (chunk, lexeme): tf is how often the lexeme occurs in the
-- chunk, dl the chunk's length in lexeme occurrences (BM25's length
-- normalisation, kept here so scoring needs no join). The primary key is the
-- only index, and there is no foreign key: each posting written would check
-- one. The code that replaces or removes a document's chunks removes its
-- postings through the key, with the terms listed in document_terms.
CREATE TABLE chunk_terms (
    tenant_id   uuid NOT NULL,
    term        text NOT NULL,
    document_id uuid NOT NULL,
    chunk_index integer NOT NULL,
    tf          integer NOT NULL,
    dl          integer NOT NULL,
    PRIMARY KEY (tenant_id, term, document_id, chunk_index)
);

-- The distinct terms of a document's postings, and how many chunks hold each.
CREATE TABLE document_terms (
    document_id uuid PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    terms       text[] NOT NULL,
    counts      integer[] NOT NULL
);

-- Document frequency of each term among a tenant's chunks.
CREATE TABLE term_stats (
    tenant_id uuid NOT NULL,
    term      text NOT NULL,
    df        integer NOT NULL,
    PRIMARY KEY (tenant_id, term)
);

-- A tenant's indexed chunks (those with at least one term) and their total
-- length, for the average length.
CREATE TABLE tenant_term_stats (
    tenant_id uuid PRIMARY KEY,
    chunks    bigint NOT NULL,
    total_len bigint NOT NULL
);

INSERT INTO chunk_terms (tenant_id, term, document_id, chunk_index, tf, dl)
SELECT c.tenant_id, t.lexeme, c.document_id, c.chunk_index, coalesce(array_length(t.positions, 1), 1),
       sum(coalesce(array_length(t.positions, 1), 1)) OVER (PARTITION BY c.document_id, c.chunk_index)
FROM chunks c, unnest(to_tsvector('english', c.text)) t;
INSERT INTO document_terms (document_id, terms, counts)
SELECT document_id, array_agg(term ORDER BY term), array_agg(n ORDER BY term)
FROM (SELECT document_id, term, count(*)::integer AS n FROM chunk_terms GROUP BY document_id, term) t
GROUP BY document_id;
INSERT INTO term_stats (tenant_id, term, df)
SELECT tenant_id, term, count(*) FROM chunk_terms GROUP BY tenant_id, term;
INSERT INTO tenant_term_stats (tenant_id, chunks, total_len)
SELECT tenant_id, count(*), sum(dl) FROM (SELECT DISTINCT tenant_id, document_id, chunk_index, dl FROM chunk_terms) c
GROUP BY tenant_id;

-- The keyword leg no longer reads the generated tsvector.
DROP INDEX IF EXISTS chunks_tsv_idx;
ALTER TABLE chunks DROP COLUMN tsv;

-- Filters on a document's metadata (its creation time has an index already).
CREATE INDEX documents_metadata_idx ON documents USING gin (metadata jsonb_path_ops);

-- Keep vectors in the row rather than in TOAST: an exact search reads every
-- candidate's vector, and detoasting each made it six times slower.
-- (Rows written before keep theirs until re-ingested.)
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN;
