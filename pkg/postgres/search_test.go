package postgres_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/migrations"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// db8 returns a store on a fresh database whose vectors have 8 dimensions.
func db8(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	db, dbURL := testenv.DB(t)
	if _, err := db.RegisterSpace(context.Background(), ragpipe.EmbeddingSpace{Provider: "test", Dimensions: 8}); err != nil {
		t.Fatal(err)
	}
	return db, dbURL
}

// storeDoc records a document of tenant and finishes its job with one chunk
// per text, each with the vector unit(8, seed+i).
func storeDoc(t *testing.T, db *postgres.DB, d ragpipe.Document, texts []string, seed int) *ragpipe.Document {
	t.Helper()
	ctx := context.Background()
	d.ID, d.Filename, d.Format, d.SizeBytes, d.SHA256, d.Status = uuid.NewString(), "a.txt", "text", 3, uuid.NewString(), ragpipe.DocProcessing
	d.RawKey = ragpipe.RawKey(d.TenantID, d.ID)
	j := &ragpipe.Job{ID: uuid.NewString(), TenantID: d.TenantID, DocumentID: d.ID, Status: ragpipe.JobQueued,
		Stage: ragpipe.StageExtract, ChunkSize: 1000, ChunkOverlap: 100}
	if _, err := db.CreateDocument(ctx, &d, j, ragpipe.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	finish(t, db, j.ID, texts, seed)
	return &d
}

func finish(t *testing.T, db *postgres.DB, jobID string, texts []string, seed int) {
	t.Helper()
	chunks := make([]ragpipe.Chunk, len(texts))
	vecs := make([][]float32, len(texts))
	for i, text := range texts {
		chunks[i] = ragpipe.Chunk{Index: i, Text: text, PageStart: 1, PageEnd: 1}
		vecs[i] = unit(8, seed+i)
	}
	if ok, err := db.FinishJob(context.Background(), jobID, chunks, vecs); err != nil || !ok {
		t.Fatalf("finish job: %t, %v", ok, err)
	}
}

// bm25 scores each text for query the way BM25 defines it (k1 0.9, b 0.4,
// idf ln(1 + (N - df + 0.5)/(df + 0.5))), over whitespace-separated words.
func bm25(texts []string, query string) []float64 {
	docs := make([][]string, len(texts))
	df := map[string]int{}
	total := 0
	for i, text := range texts {
		docs[i] = strings.Fields(text)
		total += len(docs[i])
		seen := map[string]bool{}
		for _, w := range docs[i] {
			if !seen[w] {
				df[w]++
				seen[w] = true
			}
		}
	}
	n, avgdl := float64(len(texts)), float64(total)/float64(len(texts))
	scores := make([]float64, len(texts))
	for i, doc := range docs {
		for _, q := range strings.Fields(query) {
			tf := 0
			for _, w := range doc {
				if w == q {
					tf++
				}
			}
			if tf == 0 {
				continue
			}
			idf := math.Log(1 + (n-float64(df[q])+0.5)/(float64(df[q])+0.5))
			scores[i] += idf * float64(tf) * 1.9 / (float64(tf) + 0.9*(0.6+0.4*float64(len(doc))/avgdl))
		}
	}
	return scores
}

func TestBM25Scores(t *testing.T) {
	t.Parallel()
	db, _ := db8(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "a")
	texts := []string{
		"zebra lion zebra",
		"lion tiger tiger tiger panther",
		"zebra",
		"okapi giraffe okapi giraffe okapi giraffe lion",
	}
	// "simple" only lowercases: the words are the terms, as bm25 counts them.
	d := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Language: "simple"}, texts, 0)
	if d.Language != "simple" {
		t.Fatalf("document language %q", d.Language)
	}
	// A document of another tenant changes none of this tenant's statistics.
	storeDoc(t, db, ragpipe.Document{TenantID: newTenant(t, db, "b"), Language: "simple"}, []string{"zebra zebra lion"}, 0)

	const query = "zebra lion"
	want := bm25(texts, query)
	res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: query, Mode: ragpipe.SearchKeyword, TopK: 10,
		Language: "simple", Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 4 (every chunk holds a term): %+v", len(res), res)
	}
	for rank, r := range res {
		if math.Abs(r.Score-want[r.ChunkIndex]) > 1e-9 {
			t.Errorf("chunk %d: BM25 %.12f, want %.12f", r.ChunkIndex, r.Score, want[r.ChunkIndex])
		}
		if r.Explain == nil || *r.Explain.KeywordRank != rank+1 || *r.Explain.KeywordScore != r.Score || r.Explain.VectorRank != nil {
			t.Errorf("chunk %d: explain %+v", r.ChunkIndex, r.Explain)
		}
		if rank > 0 && r.Score > res[rank-1].Score {
			t.Errorf("results out of order: %+v", res)
		}
	}
	// Stemming: the default configuration (english) matches inflections.
	eng := storeDoc(t, db, ragpipe.Document{TenantID: tenant}, []string{"The zebras were running across the plains"}, 0)
	res, err = db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: "zebra runs", Mode: ragpipe.SearchKeyword, TopK: 10,
		SearchFilter: ragpipe.SearchFilter{DocumentIDs: []string{eng.ID}}})
	if err != nil || len(res) != 1 {
		t.Errorf("english stemming: %+v, %v", res, err)
	}
}

// termStats reads the tenant's statistics as stored and as recomputed from
// its chunks.
func termStats(t *testing.T, conn *pgx.Conn, tenant string) (stored, recomputed string) {
	t.Helper()
	read := func(sql string) string {
		var s string
		if err := conn.QueryRow(context.Background(), sql, tenant).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	stored = read(`SELECT (SELECT count(*) FROM chunk_terms WHERE tenant_id = $1) || ' postings ' ||
		coalesce((SELECT chunks || '/' || total_len FROM tenant_term_stats WHERE tenant_id = $1), '0/0') || ' ' ||
		coalesce((SELECT string_agg(term || '=' || df, ',' ORDER BY term) FROM term_stats WHERE tenant_id = $1), '')`)
	recomputed = read(`WITH p AS (
			SELECT c.document_id, c.chunk_index, t.lexeme, coalesce(array_length(t.positions, 1), 1) AS tf
			FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(to_tsvector(d.language, c.text)) t
			WHERE c.tenant_id = $1),
		l AS (SELECT document_id, chunk_index, sum(tf) AS dl FROM p GROUP BY 1, 2)
		SELECT (SELECT count(*) FROM p) || ' postings ' || (SELECT count(*) || '/' || coalesce(sum(dl), 0) FROM l) || ' ' ||
			coalesce((SELECT string_agg(lexeme || '=' || n, ',' ORDER BY lexeme) FROM
				(SELECT lexeme, count(*) AS n FROM p GROUP BY lexeme) x), '')`)
	return stored, recomputed
}

// TestTermStatisticsStayExact re-ingests and deletes documents and checks
// after each step that the statistics BM25 reads equal a recount.
func TestTermStatisticsStayExact(t *testing.T) {
	t.Parallel()
	db, dbURL := db8(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tenant := newTenant(t, db, "a")
	check := func(step string) {
		t.Helper()
		stored, recount := termStats(t, conn, tenant)
		if stored != recount {
			t.Errorf("%s: statistics %q, recount %q", step, stored, recount)
		}
	}
	d1 := storeDoc(t, db, ragpipe.Document{TenantID: tenant}, []string{"red apples and green apples", "pears"}, 0)
	d2 := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Language: "simple"}, []string{"the apples of the tree"}, 0)
	check("after two documents")

	j := &ragpipe.Job{ID: uuid.NewString(), Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract, ChunkSize: 500}
	if err := db.Reingest(ctx, tenant, d1.ID, j); err != nil {
		t.Fatal(err)
	}
	finish(t, db, j.ID, []string{"plums", "plums and cherries", "no apples at all"}, 0)
	check("after a re-ingest")

	if err := db.DeleteDocument(ctx, tenant, d2.ID, ragpipe.NewTask(ragpipe.TaskDelete, ragpipe.TaskPayload{DocumentID: d2.ID})); err != nil {
		t.Fatal(err)
	}
	check("after a delete")
	if _, err := db.PurgeDocument(ctx, d2.ID); err != nil {
		t.Fatal(err)
	}
	check("after the purge")
	res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: "apples", Mode: ragpipe.SearchKeyword, TopK: 10})
	if err != nil || len(res) != 1 || res[0].DocumentID != d1.ID || res[0].ChunkIndex != 2 {
		t.Errorf("search after re-ingest and delete: %+v, %v", res, err)
	}
}

func TestSearchFiltersAndFusion(t *testing.T) {
	t.Parallel()
	db, dbURL := db8(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "a")
	meta := func(s string) json.RawMessage { return json.RawMessage(s) }
	alpha := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Collection: "books", Metadata: meta(`{"lang":"en","year":2020}`)},
		[]string{"river otters hunt fish", "otters sleep"}, 0)
	beta := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Collection: "books", Metadata: meta(`{"lang":"fr","year":2021}`)},
		[]string{"sea otters float"}, 10)
	gamma := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Collection: "notes", Metadata: meta(`{"lang":"de","tags":["x","y"]}`)},
		[]string{"otters in notes"}, 20)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// gamma was created long ago.
	if _, err := conn.Exec(ctx, `UPDATE documents SET created_at = '2020-01-01T00:00:00Z' WHERE id = $1`, gamma.ID); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

	docsOf := func(res []ragpipe.SearchResult) []string {
		var ids []string
		for _, r := range res {
			if !slices.Contains(ids, r.DocumentID) {
				ids = append(ids, r.DocumentID)
			}
		}
		sort.Strings(ids)
		return ids
	}
	sorted := func(ids ...string) []string { sort.Strings(ids); return ids }
	tests := []struct {
		name string
		f    ragpipe.SearchFilter
		want []string
	}{
		{"none", ragpipe.SearchFilter{}, sorted(alpha.ID, beta.ID, gamma.ID)},
		{"collection", ragpipe.SearchFilter{Collection: "books"}, sorted(alpha.ID, beta.ID)},
		{"metadata equality", ragpipe.SearchFilter{Metadata: map[string][]any{"lang": {"fr"}}}, []string{beta.ID}},
		{"metadata any of", ragpipe.SearchFilter{Metadata: map[string][]any{"lang": {"fr", "de"}}}, sorted(beta.ID, gamma.ID)},
		{"metadata number", ragpipe.SearchFilter{Metadata: map[string][]any{"year": {2020.0}}}, []string{alpha.ID}},
		{"metadata array field", ragpipe.SearchFilter{Metadata: map[string][]any{"tags": {"y"}}}, []string{gamma.ID}},
		{"two fields", ragpipe.SearchFilter{Collection: "books", Metadata: map[string][]any{"lang": {"fr", "de"}}}, []string{beta.ID}},
		{"created after", ragpipe.SearchFilter{CreatedAfter: &cutoff}, sorted(alpha.ID, beta.ID)},
		{"created before", ragpipe.SearchFilter{CreatedBefore: &cutoff}, []string{gamma.ID}},
		{"document ids", ragpipe.SearchFilter{DocumentIDs: []string{alpha.ID}, Metadata: map[string][]any{"lang": {"en"}}}, []string{alpha.ID}},
		{"nothing matches", ragpipe.SearchFilter{Collection: "notes", Metadata: map[string][]any{"lang": {"en"}}}, nil},
	}
	for _, tc := range tests {
		for _, mode := range []string{ragpipe.SearchKeyword, ragpipe.SearchVector, ragpipe.SearchHybrid} {
			q := ragpipe.SearchQuery{TenantID: tenant, Query: "otters", Vector: unit(8, 0), Mode: mode, TopK: 10, SearchFilter: tc.f}
			res, err := db.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s, %s: %v", tc.name, mode, err)
			}
			if diff := cmp.Diff(tc.want, docsOf(res)); diff != "" {
				t.Errorf("%s, %s: documents (-want +got):\n%s", tc.name, mode, diff)
			}
		}
	}

	// Fusion: unit(8, 20) is gamma's vector, and "fish" only alpha's first
	// chunk; each leg's weight decides which comes first.
	for _, tc := range []struct {
		weights ragpipe.SearchWeights
		first   string
	}{
		{ragpipe.SearchWeights{Keyword: 1, Vector: 0.1}, alpha.ID},
		{ragpipe.SearchWeights{Keyword: 0.01, Vector: 1}, gamma.ID},
	} {
		res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: "fish", Vector: unit(8, 20), Mode: ragpipe.SearchHybrid,
			TopK: 3, Weights: tc.weights, Explain: true})
		if err != nil || len(res) == 0 {
			t.Fatalf("hybrid %+v: %v, %v", tc.weights, res, err)
		}
		if res[0].DocumentID != tc.first {
			t.Errorf("weights %+v: first %s, want %s", tc.weights, res[0].DocumentID, tc.first)
		}
		for _, r := range res {
			e := r.Explain
			var want float64
			if e.KeywordRank != nil {
				want += tc.weights.Keyword / float64(60+*e.KeywordRank)
			}
			if e.VectorRank != nil {
				want += tc.weights.Vector / float64(60+*e.VectorRank)
			}
			if math.Abs(want-r.Score) > 1e-12 || (e.KeywordRank == nil) != (e.KeywordScore == nil) || (e.VectorRank == nil) != (e.VectorScore == nil) {
				t.Errorf("weights %+v: score %v does not follow from explain %+v", tc.weights, r.Score, e)
			}
		}
	}

	cols, err := db.Collections(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ragpipe.Collection{{Name: "books", DocumentCount: 2, ChunkCount: 3}, {Name: "notes", DocumentCount: 1, ChunkCount: 1}}, cols); diff != "" {
		t.Errorf("collections (-want +got):\n%s", diff)
	}
}

// TestMigrationIndexesExistingChunks stores chunks under the schema before
// BM25 (version 4), migrates, and checks that the postings and statistics
// were built from them.
func TestMigrationIndexesExistingChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.EmptyDatabase(t)
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, strings.Replace(dbURL, "postgres://", "pgx5://", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Migrate(4); err != nil {
		t.Fatal(err)
	}
	m.Close()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tenant, doc := uuid.NewString(), uuid.NewString()
	for _, sql := range []string{
		`INSERT INTO tenants (id, name) VALUES ($1, 't' || $2::text)`,
		`INSERT INTO documents (id, tenant_id, filename, format, size_bytes, sha256, status, raw_key)
			VALUES ($2, $1, 'a', 'text', 1, 'x', 'ready', 'k')`,
		`INSERT INTO chunks (tenant_id, document_id, chunk_index, text, page_start, page_end, embedding)
			SELECT $1, $2, i, 'old chunk about herons number ' || i, 1, 1, array_fill(0.5, ARRAY[384])::real[]::vector
			FROM generate_series(0, 2) i`,
	} {
		if _, err := conn.Exec(ctx, sql, tenant, doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	if stored, recount := termStats(t, conn, tenant); stored != recount || !strings.HasPrefix(stored, "15 postings 3/15 ") {
		t.Errorf("after the migration: statistics %q, recount %q", stored, recount)
	}
	db, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: "heron", Mode: ragpipe.SearchKeyword, TopK: 5})
	if err != nil || len(res) != 3 {
		t.Errorf("search after the migration: %+v, %v", res, err)
	}
}

// TestKeywordTopKExact checks the keyword leg's pruned top k against BM25
// computed over every chunk, with and without a filter, on a corpus large
// enough that common terms' postings are looked up rather than read: queries
// mix Zipf-common and rare words, and k goes up to 200.
func TestKeywordTopKExact(t *testing.T) {
	t.Parallel()
	db, _ := db8(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "a")
	words, draw := zipfWords(400, 5)
	r := rand.New(rand.NewPCG(1, 2))
	type key struct {
		doc   string
		chunk int
	}
	var keys []key
	var texts []string
	inBooks := map[string]bool{}
	for i := range 30 {
		chunk := make([]string, 100)
		for k := range chunk {
			ws := make([]string, 10+r.IntN(30))
			for j := range ws {
				ws[j] = draw(r)
			}
			if k%20 == 0 {
				// Two common words over and over: such a chunk scores close
				// to their bounds, which pruning must still let in.
				for j := range ws {
					ws[j] = words[(i+k/20*7+j%2)%48]
				}
			}
			chunk[k] = strings.Join(ws, " ")
		}
		collection := ""
		if i%3 == 0 {
			collection = "books"
		}
		d := storeDoc(t, db, ragpipe.Document{TenantID: tenant, Language: "simple", Collection: collection}, chunk, 0)
		inBooks[d.ID] = collection == "books"
		for k := range chunk {
			keys = append(keys, key{d.ID, k})
		}
		texts = append(texts, chunk...)
	}
	byKey := map[key]int{}
	for n, k := range keys {
		byKey[k] = n
	}
	for i := range 90 {
		qs := make([]string, 1+i%5)
		for j := range qs {
			kind := r.IntN(3)
			if i%6 == 5 {
				kind = r.IntN(2) // common words only
			}
			switch kind {
			case 0:
				qs[j] = words[r.IntN(8)] // in nearly every chunk
			case 1:
				qs[j] = words[8+r.IntN(40)]
			default:
				qs[j] = words[48+r.IntN(len(words)-48)]
			}
		}
		query := strings.Join(qs, " ")
		topK := []int{1, 10, 40, 200}[i%4]
		var f ragpipe.SearchFilter
		if i%5 == 4 {
			f.Collection = "books"
		}
		scores := bm25(texts, query)
		type scored struct {
			key
			score float64
		}
		var want []scored
		for n, s := range scores {
			if s > 0 && (f.Collection == "" || inBooks[keys[n].doc]) {
				want = append(want, scored{keys[n], s})
			}
		}
		slices.SortFunc(want, func(a, b scored) int {
			switch {
			case a.score > b.score:
				return -1
			case a.score < b.score:
				return 1
			case a.doc != b.doc:
				return strings.Compare(a.doc, b.doc)
			}
			return a.chunk - b.chunk
		})
		want = want[:min(topK, len(want))]
		res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Query: query, Mode: ragpipe.SearchKeyword, TopK: topK,
			Language: "simple", SearchFilter: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(want) {
			t.Errorf("%q, top %d, collection %q: %d results, want %d", query, topK, f.Collection, len(res), len(want))
			continue
		}
		for rank, got := range res {
			k := key{got.DocumentID, got.ChunkIndex}
			ref := scores[byKey[k]]
			// A chunk other than the expected one only where their scores tie
			// (to rounding).
			if k != want[rank].key && math.Abs(ref-want[rank].score) > 1e-9 || math.Abs(got.Score-ref) > 1e-9 {
				t.Errorf("%q, top %d, collection %q, rank %d: chunk %v scored %.12f (BM25 %.12f), want %v (%.12f)",
					query, topK, f.Collection, rank+1, k, got.Score, ref, want[rank].key, want[rank].score)
				break
			}
		}
	}
}

// TestWalkIgnoresOtherTenants checks that a tenant's vector search walks
// a graph of its own only: its results are the same, result for result,
// before and after another tenant stores ten times its chunks.
func TestWalkIgnoresOtherTenants(t *testing.T) {
	t.Parallel()
	db, dbURL := testenv.DB(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	vector := func() []float32 {
		v := make([]float32, 384)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	store := func(tenant string, docs int) {
		t.Helper()
		for range docs {
			_, j := newDocJob(t, db, tenant, "")
			chunks := make([]ragpipe.Chunk, 100)
			vecs := make([][]float32, len(chunks))
			for i := range chunks {
				chunks[i] = ragpipe.Chunk{Index: i, Text: "chunk", PageStart: 1, PageEnd: 1}
				vecs[i] = vector()
			}
			if _, err := db.FinishJob(ctx, j.ID, chunks, vecs); err != nil {
				t.Fatal(err)
			}
		}
	}
	small, big, blocked := newTenant(t, db, "small"), newTenant(t, db, "big"), newTenant(t, db, "blocked")
	store(small, 5)
	// A build that fails (a table holds the index's name) holds up no other.
	store(blocked, 5)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE `+postgres.VectorIndexName(blocked, 0)+` ()`); err != nil {
		t.Fatal(err)
	}
	if n, err := db.BuildVectorIndexes(ctx, 500); err == nil || !strings.Contains(err.Error(), postgres.VectorIndexName(blocked, 0)) || n != 1 {
		t.Fatalf("BuildVectorIndexes = %d, %v; want the tenant's index, and the blocked one's failure", n, err)
	}
	if ready, due, err := db.VectorIndexCounts(ctx, 500); err != nil || ready != 1 || due != 1 {
		t.Errorf("VectorIndexCounts = %d ready, %d due, %v; want 1 and 1 (the blocked one)", ready, due, err)
	}
	queries := make([][]float32, 20)
	for i := range queries {
		queries[i] = vector()
	}
	walk := func() [][]ragpipe.SearchResult {
		t.Helper()
		var out [][]ragpipe.SearchResult
		for _, v := range queries {
			res, err := db.SearchMode(ctx, ragpipe.SearchQuery{TenantID: small, Vector: v, TopK: 10, Mode: ragpipe.SearchVector}, false)
			if err != nil || len(res) != 10 {
				t.Fatalf("walk: %d results, %v", len(res), err)
			}
			out = append(out, res)
		}
		return out
	}
	sql, args, err := postgres.SearchSQL(ragpipe.SearchQuery{TenantID: small, Vector: queries[0], TopK: 10, Mode: ragpipe.SearchVector}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if plan := explain(t, conn, "EXPLAIN "+sql, args...); !strings.Contains(plan, postgres.VectorIndexName(small, 0)) {
		t.Fatalf("the walk does not use the tenant's index:\n%s", plan)
	}
	before := walk()
	store(big, 50)
	if n, err := db.BuildVectorIndexes(ctx, 500); n != 1 || err == nil {
		t.Fatalf("BuildVectorIndexes = %d, %v; want the other tenant's index (and the blocked one's failure again)", n, err)
	}
	if diff := cmp.Diff(before, walk()); diff != "" {
		t.Errorf("the walk changed when another tenant stored 10× its chunks (-before +after):\n%s", diff)
	}
}
