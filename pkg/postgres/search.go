package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// rrfK is the damping constant of reciprocal rank fusion (Cormack et al. 2009).
const rrfK = 60

// BM25's parameters, Anserini's defaults (as in the BEIR baselines): k1
// saturates term frequency, b normalises by the chunk's length.
const (
	bm25K1 = 0.9
	bm25B  = 0.4
)

// candidates is how many rows each retriever contributes to hybrid fusion.
func candidates(topK int) int { return max(4*topK, 40) }

// Search returns the tenant's chunks that best match q, best first. The
// vector leg compares the query with each of the tenant's chunks, exactly,
// unless the tenant has an HNSW index of its own in the query's space
// (BuildVectorIndexes gives one to a tenant past a size); then it walks
// that, its filters applied inside the walk (pgvector's iterative scan),
// and searches exactly when the walk found fewer than TopK.
func (db *DB) Search(ctx context.Context, q ragpipe.SearchQuery) ([]ragpipe.SearchResult, error) {
	var res []ragpipe.SearchResult
	err := db.read(ctx, func(conn querier) error {
		exact := true
		if q.Mode != ragpipe.SearchKeyword {
			err := conn.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM tenant_vector_indexes
				WHERE tenant_id = $1 AND space_id = $2)`, q.TenantID, q.Space).Scan(&exact)
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
		}
		var err error
		res, err = search(ctx, conn, q, exact)
		if err == nil && !exact && q.Mode == ragpipe.SearchVector && len(res) < q.TopK {
			res, err = search(ctx, conn, q, true)
		}
		return err
	})
	return res, err
}

func search(ctx context.Context, conn querier, q ragpipe.SearchQuery, exact bool) ([]ragpipe.SearchResult, error) {
	sql, args, err := searchSQL(q, exact)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.SearchResult, error) {
		var s ragpipe.SearchResult
		var e ragpipe.SearchExplain
		err := r.Scan(&s.DocumentID, &s.ChunkIndex, &s.Text, &s.PageStart, &s.PageEnd, &s.Section, &s.OCR, &s.Score,
			&e.KeywordRank, &e.KeywordScore, &e.VectorRank, &e.VectorScore)
		if q.Explain {
			s.Explain = &e
		}
		return s, err
	})
}

// sqlArgs numbers a statement's arguments as they are added.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// filters returns the conditions of q's filter on chunks c (chunk) and on
// the postings p of the keyword leg (posting), both within tenant $1.
func filters(q ragpipe.SearchQuery, args *sqlArgs) (chunk, posting string) {
	var docs []string // conditions on documents d
	chunkWhere := []string{"c.tenant_id = $1"}
	var postingWhere []string
	if q.Collection != "" {
		n := args.add(q.Collection)
		chunkWhere = append(chunkWhere, "c.collection = "+n)
		docs = append(docs, "d.collection = "+n)
	}
	if len(q.DocumentIDs) > 0 {
		n := args.add(q.DocumentIDs)
		chunkWhere = append(chunkWhere, "c.document_id = ANY("+n+"::uuid[])")
		postingWhere = append(postingWhere, "p.document_id = ANY("+n+"::uuid[])")
	}
	metaDocs := []string{}
	keys := make([]string, 0, len(q.Metadata))
	for k := range q.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var anyOf []string
		for _, v := range q.Metadata[k] {
			// The field equals v, or is an array that holds it.
			for _, doc := range []map[string]any{{k: v}, {k: []any{v}}} {
				b, _ := json.Marshal(doc) // the values are JSON scalars, which always marshal
				anyOf = append(anyOf, string(b))
			}
		}
		metaDocs = append(metaDocs, "d.metadata @> ANY("+args.add(anyOf)+"::jsonb[])")
	}
	if q.CreatedAfter != nil {
		metaDocs = append(metaDocs, "d.created_at >= "+args.add(*q.CreatedAfter))
	}
	if q.CreatedBefore != nil {
		metaDocs = append(metaDocs, "d.created_at < "+args.add(*q.CreatedBefore))
	}
	if len(metaDocs) > 0 {
		sub := "(SELECT d.id FROM documents d WHERE d.tenant_id = $1 AND " + strings.Join(metaDocs, " AND ") + ")"
		chunkWhere = append(chunkWhere, "c.document_id IN "+sub)
		docs = append(docs, metaDocs...)
	}
	if len(docs) > 0 {
		postingWhere = append(postingWhere, "p.document_id IN (SELECT d.id FROM documents d WHERE d.tenant_id = $1 AND "+
			strings.Join(docs, " AND ")+")")
	}
	posting = "true"
	if len(postingWhere) > 0 {
		posting = strings.Join(postingWhere, " AND ")
	}
	return strings.Join(chunkWhere, " AND "), posting
}

// thresholdPostings is how many postings the keyword leg reads first, the
// rarest terms', to find the score a chunk must reach (see keywordLeg).
// Measured on the benchmark's queries, 1,000 touched fewest postings at the
// 95th percentile (for the top 10 and the top 40), against 300 or 2,000.
const thresholdPostings = 1000

// keywordLeg scores the tenant's chunks holding any of the query's terms by
// BM25 over the postings, best first, at most limit. The query is analysed
// with the same text search configuration as the documents it should match.
//
// The top limit is exact without reading every posting (MaxScore, Turtle and
// Flood 1995). A term adds at most ub = qtf·idf·(k1+1) to a chunk's score.
// The postings of the rarest terms (the highest ub, up to thresholdPostings
// of them, at least one term) are scored first; the best limit of those
// chunks are then scored in full, their other terms looked up by primary
// key, and the least of these full scores, θ, is at most the true limit-th
// best score. The commonest terms whose ub add up to less than θ cannot lift
// a chunk holding none of the other terms into the top limit, so their
// postings are not read: the candidates are the chunks holding a rare term
// or any other term left. Their scores so far are lower bounds too, so θ
// rises to the limit-th best of them if that is more; then a candidate is
// scored in full (the common terms looked up by primary key) only if its
// score so far plus the common terms' ub reaches θ. θ is lowered by 1e-9 of
// itself, so rounding cannot prune a chunk that belongs. The filter applies
// to every postings scan; the chunks looked up have passed it, and it holds
// for whole documents.
func keywordLeg(q ragpipe.SearchQuery, args *sqlArgs, posting string, limit int) string {
	lang := q.Language
	if lang == "" {
		lang = ragpipe.DefaultLanguage
	}
	// score is a posting p's part of its chunk's score, for the term w.
	score := fmt.Sprintf("w.qtf * w.idf * p.tf * %[1]g / (p.tf + %[2]g * (%[3]g + %[4]g * p.dl / s.avgdl))",
		bm25K1+1, bm25K1, 1-bm25B, bm25B)
	// lookedUp is what the query terms in terms that meet cond add to chunk
	// k, each found by primary key.
	lookedUp := func(terms, k, cond string) string {
		return fmt.Sprintf(`coalesce((SELECT sum(%s)
			FROM %s w JOIN chunk_terms p ON p.tenant_id = $1 AND p.term = w.term
				AND p.document_id = %[3]s.document_id AND p.chunk_index = %[3]s.chunk_index, stats s
			WHERE %[4]s), 0)`, score, terms, k, cond)
	}
	ub := fmt.Sprintf("w.qtf * w.idf * %g", bm25K1+1)
	return fmt.Sprintf(`WITH w AS MATERIALIZED (
			SELECT term, qtf, idf, sum(df) OVER (ORDER BY qtf * idf DESC, term) <= %[1]d
				OR row_number() OVER (ORDER BY qtf * idf DESC, term) = 1 AS rare
			FROM (SELECT t.term, qt.qtf, t.df, ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) AS idf
				FROM (SELECT lexeme AS term, coalesce(array_length(positions, 1), 1) AS qtf
					FROM unnest(to_tsvector(%[2]s::regconfig, %[3]s))) qt
				JOIN term_stats t ON t.tenant_id = $1 AND t.term = qt.term AND t.df > 0, stats s) x
		), rp AS MATERIALIZED (
			SELECT p.document_id, p.chunk_index, sum(%[4]s) AS s
			FROM w JOIN chunk_terms p ON p.tenant_id = $1 AND p.term = w.term, stats s
			WHERE w.rare AND %[5]s
			GROUP BY p.document_id, p.chunk_index
		), best AS (
			SELECT b.s + %[6]s AS s FROM (SELECT * FROM rp ORDER BY s DESC LIMIT %[7]d) b
		), theta AS MATERIALIZED (
			SELECT CASE WHEN count(*) = %[7]d THEN min(s) * (1 - 1e-9) ELSE 0 END AS v FROM best
		), c AS MATERIALIZED (
			SELECT w.*, NOT w.rare AND sum(%[8]s) OVER (ORDER BY w.qtf * w.idf, w.term) < theta.v AS lookup
			FROM w, theta
		), cand AS MATERIALIZED (
			SELECT document_id, chunk_index, sum(s) AS s FROM (
				SELECT * FROM rp
				UNION ALL
				SELECT p.document_id, p.chunk_index, sum(%[4]s)
				FROM c w JOIN chunk_terms p ON p.tenant_id = $1 AND p.term = w.term, stats s
				WHERE NOT w.rare AND NOT w.lookup AND %[5]s
				GROUP BY p.document_id, p.chunk_index
			) x GROUP BY document_id, chunk_index
		), bound AS MATERIALIZED (
			SELECT greatest(theta.v, coalesce((SELECT s FROM cand ORDER BY s DESC OFFSET %[10]d LIMIT 1), 0) * (1 - 1e-9)) AS v,
				(SELECT coalesce(sum(%[8]s), 0) FROM c w WHERE w.lookup) AS ub
			FROM theta
		)
		SELECT k.document_id, k.chunk_index, k.s + %[9]s AS score
		FROM cand k, bound
		WHERE k.s + bound.ub >= bound.v
		ORDER BY score DESC, k.document_id, k.chunk_index LIMIT %[7]d`,
		thresholdPostings, args.add(lang), args.add(q.Query), score, posting,
		lookedUp("w", "b", "NOT w.rare"), limit, ub, lookedUp("c", "k", "w.lookup"), max(limit-1, 0))
}

// statsCTE is the tenant's chunk count and average chunk length.
const statsCTE = `stats AS (SELECT chunks::float8 AS n, total_len::float8 / greatest(chunks, 1) AS avgdl
	FROM tenant_term_stats WHERE tenant_id = $1)`

// vectorLeg returns the tenant's chunks nearest to the query vector, at
// most limit, walking the tenant's HNSW index unless exact. Only chunks of
// the query vector's space are compared; the space, its dimensions and (for
// the walk) the tenant are written into the statement, as the planner must
// see them to use the tenant's partial index over the cast vectors.
func vectorLeg(q ragpipe.SearchQuery, args *sqlArgs, chunk string, limit int, exact bool) (string, error) {
	v := args.add(pgvector.NewVector(q.Vector))
	dist := fmt.Sprintf("c.embedding::vector(%d) <=> %s", len(q.Vector), v)
	if exact {
		// Ordered by a subquery's column, not the indexed expression: every
		// candidate is compared, its distance computed once.
		return fmt.Sprintf(`SELECT document_id, chunk_index, 1 - d AS score FROM (
				SELECT c.document_id, c.chunk_index, %s AS d FROM chunks c WHERE %s AND c.space_id = %d OFFSET 0
			) c ORDER BY d LIMIT %d`, dist, chunk, q.Space, limit), nil
	}
	tenant, err := uuid.Parse(q.TenantID)
	if err != nil {
		return "", ragpipe.Errorf(ragpipe.EINVALID, "tenant %q is not a UUID", q.TenantID)
	}
	return fmt.Sprintf(`SELECT c.document_id, c.chunk_index, 1 - (%[1]s) AS score
		FROM chunks c WHERE %[2]s AND c.tenant_id = '%[5]s' AND c.space_id = %[3]d ORDER BY %[1]s LIMIT %[4]d`,
		dist, chunk, q.Space, limit, tenant), nil
}

const resultColumns = `c.document_id, c.chunk_index, c.text, c.page_start, c.page_end, c.section, c.ocr`

// searchSQL builds the query Search runs for q, and its arguments. Each row
// is a result with its score and where it stood in each leg (NULL for a leg
// that did not return it). The limits are written into the statement, not
// passed as arguments: then Postgres keeps one generic plan of each statement
// per connection (pgx prepares them), where with the limits as parameters it
// planned every search anew, 1.5–2.5 ms of a hybrid search's CPU.
func searchSQL(q ragpipe.SearchQuery, exact bool) (string, []any, error) {
	if q.Weights == (ragpipe.SearchWeights{}) {
		q.Weights = ragpipe.SearchWeights{Keyword: 1, Vector: 1}
	}
	args := sqlArgs{q.TenantID}
	chunk, posting := filters(q, &args)
	switch q.Mode {
	case ragpipe.SearchVector:
		leg, err := vectorLeg(q, &args, chunk, q.TopK, exact)
		if err != nil {
			return "", nil, err
		}
		return `WITH v AS (` + leg + `)
			SELECT ` + resultColumns + `, v.score, NULL::int, NULL::float8, row_number() OVER (ORDER BY v.score DESC)::int, v.score
			FROM v JOIN chunks c USING (document_id, chunk_index)
			ORDER BY v.score DESC, c.document_id, c.chunk_index`, args, nil
	case ragpipe.SearchKeyword:
		leg := keywordLeg(q, &args, posting, q.TopK)
		return `WITH ` + statsCTE + `, k AS (` + leg + `)
			SELECT ` + resultColumns + `, k.score, row_number() OVER (ORDER BY k.score DESC, k.document_id, k.chunk_index)::int,
				k.score, NULL::int, NULL::float8
			FROM k JOIN chunks c USING (document_id, chunk_index)
			ORDER BY k.score DESC, c.document_id, c.chunk_index`, args, nil
	case ragpipe.SearchHybrid:
		n := candidates(q.TopK)
		kw := keywordLeg(q, &args, posting, n)
		vec, err := vectorLeg(q, &args, chunk, n, exact)
		if err != nil {
			return "", nil, err
		}
		wk, wv := args.add(q.Weights.Keyword), args.add(q.Weights.Vector)
		return fmt.Sprintf(`WITH `+statsCTE+`, k AS (%s), v AS (%s),
			kr AS (SELECT *, row_number() OVER (ORDER BY score DESC, document_id, chunk_index) AS r FROM k),
			vr AS (SELECT *, row_number() OVER (ORDER BY score DESC, document_id, chunk_index) AS r FROM v),
			fused AS (
				SELECT document_id, chunk_index,
					coalesce(%[3]s::float8 / (%[5]d + kr.r), 0) + coalesce(%[4]s::float8 / (%[5]d + vr.r), 0) AS score,
					kr.r::int AS krank, kr.score AS kscore, vr.r::int AS vrank, vr.score AS vscore
				FROM kr FULL JOIN vr USING (document_id, chunk_index)
				ORDER BY score DESC, document_id, chunk_index LIMIT %[6]d
			)
			SELECT `+resultColumns+`, f.score, f.krank, f.kscore, f.vrank, f.vscore
			FROM fused f JOIN chunks c USING (document_id, chunk_index)
			ORDER BY f.score DESC, c.document_id, c.chunk_index`,
			kw, vec, wk, wv, rrfK, q.TopK), args, nil
	}
	return "", nil, ragpipe.Errorf(ragpipe.EINVALID, "unknown search mode %q", q.Mode)
}

// Collections lists the tenant's collections with what they hold, by name.
// Documents being deleted are not counted.
func (db *DB) Collections(ctx context.Context, tenantID string) ([]ragpipe.Collection, error) {
	var out []ragpipe.Collection
	err := db.read(ctx, func(conn querier) error {
		rows, err := conn.Query(ctx, `SELECT collection, count(*), coalesce(sum(chunk_count), 0) FROM documents
			WHERE tenant_id = $1 AND status <> 'deleting' GROUP BY collection ORDER BY collection`, tenantID)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.Collection, error) {
			var c ragpipe.Collection
			return c, r.Scan(&c.Name, &c.DocumentCount, &c.ChunkCount)
		})
		return err
	})
	return out, err
}
