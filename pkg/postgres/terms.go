package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// reindexTerms makes the BM25 postings of a document match its chunks as
// they are in tx (none, after a delete), and moves its tenant's term
// statistics by the difference, so they stay exact. The old postings are
// found through the primary key with the terms document_terms lists (the
// postings have no other index, which would slow every write). Term
// statistics rows are updated in term order, then the tenant's row, so
// concurrent transactions of one tenant wait for each other rather than
// deadlock.
func reindexTerms(ctx context.Context, tx pgx.Tx, tenantID, documentID string) error {
	var oldTerms []string
	var oldCounts []int32
	err := tx.QueryRow(ctx, `DELETE FROM document_terms WHERE document_id = $1 RETURNING terms, counts`,
		documentID).Scan(&oldTerms, &oldCounts)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read document terms: %w", err)
	}
	var oldChunks, oldLen int64
	if len(oldTerms) > 0 {
		if err := tx.QueryRow(ctx, `WITH old AS (
				DELETE FROM chunk_terms WHERE tenant_id = $1 AND term = ANY($2::text[]) AND document_id = $3
				RETURNING chunk_index, dl
			), c AS (SELECT DISTINCT chunk_index, dl FROM old)
			SELECT count(*), coalesce(sum(dl), 0) FROM c`, tenantID, oldTerms, documentID).Scan(&oldChunks, &oldLen); err != nil {
			return fmt.Errorf("delete postings: %w", err)
		}
	}
	var newChunks, newLen int64
	var newTerms []string
	var newCounts []int32
	if err := tx.QueryRow(ctx, `WITH ins AS (
			INSERT INTO chunk_terms (tenant_id, term, document_id, chunk_index, tf, dl)
			SELECT c.tenant_id, t.lexeme, c.document_id, c.chunk_index, coalesce(array_length(t.positions, 1), 1),
				sum(coalesce(array_length(t.positions, 1), 1)) OVER (PARTITION BY c.chunk_index)
			FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(to_tsvector(d.language, c.text)) t
			WHERE c.document_id = $1
			RETURNING term, chunk_index, dl
		), agg AS (SELECT term, count(*)::integer AS n FROM ins GROUP BY term),
		doc AS (
			INSERT INTO document_terms (document_id, terms, counts)
			SELECT $1, array_agg(term ORDER BY term), array_agg(n ORDER BY term) FROM agg HAVING count(*) > 0
		), lens AS (SELECT DISTINCT chunk_index, dl FROM ins)
		SELECT (SELECT count(*) FROM lens), (SELECT coalesce(sum(dl), 0) FROM lens),
			coalesce((SELECT array_agg(term ORDER BY term) FROM agg), '{}'),
			coalesce((SELECT array_agg(n ORDER BY term) FROM agg), '{}')`, documentID).Scan(
		&newChunks, &newLen, &newTerms, &newCounts); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO term_stats (tenant_id, term, df)
		SELECT $1, term, sum(n)::integer FROM (
			SELECT * FROM unnest($2::text[], $3::integer[])
			UNION ALL SELECT term, -n FROM unnest($4::text[], $5::integer[]) AS o(term, n)
		) x(term, n) GROUP BY term HAVING sum(n) <> 0 ORDER BY term
		ON CONFLICT (tenant_id, term) DO UPDATE SET df = term_stats.df + excluded.df`,
		tenantID, newTerms, newCounts, oldTerms, oldCounts); err != nil {
		return fmt.Errorf("update term statistics: %w", err)
	}
	if len(oldTerms) > 0 {
		// Terms no chunk holds any more, so the table does not grow with churn.
		if _, err := tx.Exec(ctx, `DELETE FROM term_stats WHERE tenant_id = $1 AND term = ANY($2::text[]) AND df = 0`,
			tenantID, oldTerms); err != nil {
			return fmt.Errorf("prune term statistics: %w", err)
		}
	}
	if newChunks == oldChunks && newLen == oldLen {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO tenant_term_stats (tenant_id, chunks, total_len) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET chunks = tenant_term_stats.chunks + excluded.chunks,
			total_len = tenant_term_stats.total_len + excluded.total_len`,
		tenantID, newChunks-oldChunks, newLen-oldLen)
	return err
}
