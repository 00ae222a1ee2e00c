package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// rrfK is the damping constant of reciprocal rank fusion (Cormack et al. 2009).
const rrfK = 60

// candidates is how many rows each retriever contributes to hybrid fusion.
func candidates(topK int) int { return max(4*topK, 40) }

// searchFilter returns the WHERE clause shared by the retrievers; args holds
// $1 (tenant) and receives the filter values.
func searchFilter(q ragpipe.SearchQuery, args *[]any) string {
	where := []string{"c.tenant_id = $1"}
	if q.Collection != "" {
		*args = append(*args, q.Collection)
		where = append(where, fmt.Sprintf("c.collection = $%d", len(*args)))
	}
	if len(q.DocumentIDs) > 0 {
		*args = append(*args, q.DocumentIDs)
		where = append(where, fmt.Sprintf("c.document_id = ANY($%d::uuid[])", len(*args)))
	}
	return strings.Join(where, " AND ")
}

// orQuery turns free text into an OR of its stemmed terms (q.query), so a
// chunk that holds some of the words still matches, plus the AND of them
// (q.every) and the phrase (q.phrase) for ranking.
const orQuery = `(SELECT replace(plainto_tsquery('english', $%[1]d)::text, ' & ', ' | ')::tsquery AS query,
	plainto_tsquery('english', $%[1]d) AS every, phraseto_tsquery('english', $%[1]d) AS phrase) q`

// keywordRank scores a chunk that matches q.query: cover density of the
// terms, normalised by the chunk's length, plus one for holding every term
// and two for holding them as the phrase asked — so the passage a quoted
// sentence comes from outranks chunks that merely repeat its common words.
const keywordRank = `(ts_rank_cd(c.tsv, q.query, 1) + (c.tsv @@ q.every)::int + 2 * (c.tsv @@ q.phrase)::int)`

// Search returns the tenant's chunks that best match q, best first.
func (db *DB) Search(ctx context.Context, q ragpipe.SearchQuery) ([]ragpipe.SearchResult, error) {
	sql, args, err := searchSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.SearchResult, error) {
		var s ragpipe.SearchResult
		err := r.Scan(&s.DocumentID, &s.ChunkIndex, &s.Text, &s.PageStart, &s.PageEnd, &s.Section, &s.OCR, &s.Score)
		return s, err
	})
}

// searchSQL builds the query Search runs for q, and its arguments.
func searchSQL(q ragpipe.SearchQuery) (string, []any, error) {
	args := []any{q.TenantID}
	filter := searchFilter(q, &args)
	var sql string
	switch q.Mode {
	case ragpipe.SearchVector:
		args = append(args, pgvector.NewVector(q.Vector), q.TopK)
		sql = fmt.Sprintf(`SELECT c.document_id, c.chunk_index, c.text, c.page_start, c.page_end, c.section, c.ocr,
			1 - (c.embedding <=> $%d) AS score
			FROM chunks c WHERE %s ORDER BY c.embedding <=> $%d LIMIT $%d`,
			len(args)-1, filter, len(args)-1, len(args))
	case ragpipe.SearchKeyword:
		args = append(args, q.Query, q.TopK)
		sql = fmt.Sprintf(`SELECT c.document_id, c.chunk_index, c.text, c.page_start, c.page_end, c.section, c.ocr,
			`+keywordRank+` AS score
			FROM chunks c, `+orQuery+` WHERE %s AND c.tsv @@ q.query
			ORDER BY score DESC, c.document_id, c.chunk_index LIMIT $%d`,
			len(args)-1, filter, len(args))
	case ragpipe.SearchHybrid:
		args = append(args, pgvector.NewVector(q.Vector), q.Query, candidates(q.TopK), q.TopK)
		v, t, n, k := len(args)-3, len(args)-2, len(args)-1, len(args)
		sql = fmt.Sprintf(`WITH vec AS (
				SELECT c.document_id, c.chunk_index, c.embedding <=> $%[2]d AS dist FROM chunks c WHERE %[1]s
				ORDER BY c.embedding <=> $%[2]d LIMIT $%[4]d
			), vec_ranked AS (
				SELECT document_id, chunk_index, row_number() OVER (ORDER BY dist, document_id, chunk_index) AS r FROM vec
			), kw AS (
				SELECT c.document_id, c.chunk_index, `+keywordRank+` AS rank
				FROM chunks c, `+fmt.Sprintf(orQuery, t)+` WHERE %[1]s AND c.tsv @@ q.query
				ORDER BY rank DESC LIMIT $%[4]d
			), kw_ranked AS (
				SELECT document_id, chunk_index, row_number() OVER (ORDER BY rank DESC, document_id, chunk_index) AS r FROM kw
			), fused AS (
				SELECT document_id, chunk_index, sum(1.0 / (%[6]d + r)) AS score
				FROM (SELECT * FROM vec_ranked UNION ALL SELECT * FROM kw_ranked) u
				GROUP BY document_id, chunk_index
			)
			SELECT c.document_id, c.chunk_index, c.text, c.page_start, c.page_end, c.section, c.ocr, f.score
			FROM fused f JOIN chunks c USING (document_id, chunk_index)
			ORDER BY f.score DESC, c.document_id, c.chunk_index LIMIT $%[5]d`,
			filter, v, t, n, k, rrfK)
	default:
		return "", nil, ragpipe.Errorf(ragpipe.EINVALID, "unknown search mode %q", q.Mode)
	}
	return sql, args, nil
}
