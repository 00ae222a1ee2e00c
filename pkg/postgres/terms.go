package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// reindexTerms makes the BM25 postings of a document match its chunks as
// they are in tx (none, after a delete), and moves its tenant's term
// statistics by the difference, so they stay exact. Term statistics rows
// are updated in term order, then the tenant's row, so concurrent
// transactions of one tenant wait for each other rather than deadlock.
func reindexTerms(ctx context.Context, tx pgx.Tx, tenantID, documentID string) error {
	var oldChunks, oldLen int64
	if err := tx.QueryRow(ctx, chunkLengths, documentID).Scan(&oldChunks, &oldLen); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	rows, err := tx.Query(ctx, `WITH old AS (DELETE FROM chunk_terms WHERE document_id = $1 RETURNING term)
		SELECT term, -count(*) FROM old GROUP BY term`, documentID)
	if err != nil {
		return fmt.Errorf("delete postings: %w", err)
	}
	var terms []string
	var deltas []int64
	for rows.Next() {
		var term string
		var n int64
		if err := rows.Scan(&term, &n); err != nil {
			rows.Close()
			return err
		}
		terms, deltas = append(terms, term), append(deltas, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chunk_terms (tenant_id, term, document_id, chunk_index, tf, dl)
		SELECT c.tenant_id, t.lexeme, c.document_id, c.chunk_index, coalesce(array_length(t.positions, 1), 1),
			sum(coalesce(array_length(t.positions, 1), 1)) OVER (PARTITION BY c.chunk_index)
		FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(to_tsvector(d.language, c.text)) t
		WHERE c.document_id = $1`, documentID); err != nil {
		return fmt.Errorf("insert postings: %w", err)
	}
	var newChunks, newLen int64
	if err := tx.QueryRow(ctx, chunkLengths, documentID).Scan(&newChunks, &newLen); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO term_stats (tenant_id, term, df)
		SELECT $1, term, sum(n)::integer FROM (
			SELECT term, count(*) AS n FROM chunk_terms WHERE document_id = $2 GROUP BY term
			UNION ALL SELECT * FROM unnest($3::text[], $4::bigint[])
		) x GROUP BY term HAVING sum(n) <> 0 ORDER BY term
		ON CONFLICT (tenant_id, term) DO UPDATE SET df = term_stats.df + excluded.df`,
		tenantID, documentID, terms, deltas); err != nil {
		return fmt.Errorf("update term statistics: %w", err)
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

// chunkLengths counts a document's indexed chunks and their total length.
const chunkLengths = `SELECT count(*), coalesce(sum(dl), 0) FROM
	(SELECT DISTINCT chunk_index, dl FROM chunk_terms WHERE document_id = $1) c`
