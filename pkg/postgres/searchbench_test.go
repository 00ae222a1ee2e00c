package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// The search benchmark's corpus: 200,000 chunks of generated text over 20
// tenants (RAGPIPE_BENCH_CHUNKS sets another size, as for the 1,000,000-chunk
// run in docs/scaling.md). Tenant 0 keeps 1% of its chunks in collection
// "rare"; tenant 19 owns 1% of all chunks.
const (
	benchTenants = 20
	benchPerDoc  = 100
)

var (
	benchChunks   = benchSize()
	benchSmallTen = benchChunks / 100
)

// benchSize is RAGPIPE_BENCH_CHUNKS, or 200,000.
func benchSize() int {
	if n, err := strconv.Atoi(os.Getenv("RAGPIPE_BENCH_CHUNKS")); err == nil && n >= 10_000 {
		return n
	}
	return 200_000
}

// benchDocs is how many documents of benchPerDoc chunks tenant tn gets.
func benchDocs(tn int) int {
	n := (benchChunks - benchSmallTen) / (benchTenants - 1)
	if tn == benchTenants-1 {
		n = benchSmallTen
	}
	return (n + benchPerDoc - 1) / benchPerDoc
}

// benchLoaded is how many chunks the corpus holds: a little more than
// benchChunks, as documents are whole.
func benchLoaded() int {
	n := 0
	for tn := range benchTenants {
		n += benchDocs(tn) * benchPerDoc
	}
	return n
}

// benchCorpus is loaded once per process and shared by the benchmark's runs.
var benchCorpus struct {
	once    sync.Once
	db      *postgres.DB
	tenants []string
	words   []string
	emb     *embed.Hashing
	report  string
}

// zipfWords returns a vocabulary of n made-up words and a sampler that
// draws them with Zipf-like frequencies, as natural text does.
func zipfWords(n int, seed uint64) ([]string, func(*rand.Rand) string) {
	syll := []string{"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "do", "fe", "gi", "ho", "ju"}
	words := make([]string, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range words {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syll[r.IntN(len(syll))])
		}
		fmt.Fprintf(&b, "%d", i%97)
		words[i] = b.String()
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, 2)), 1.07, 2, uint64(n-1))
	return words, func(*rand.Rand) string { return words[z.Uint64()] }
}

// benchDBEnv names a database that keeps the search benchmark's corpus
// between runs: the corpus is loaded into it when it does not hold all of it
// (an earlier load was interrupted, or it is new), and reused as it is
// otherwise. Drop the database after changing the generator or the schema.
// Without it each run loads the corpus into a fresh database, dropped after.
const benchDBEnv = "RAGPIPE_BENCH_DB"

// openBenchDB returns the store the corpus goes into, and whether it holds
// the whole corpus already.
func openBenchDB(b *testing.B) (db *postgres.DB, dbURL string, loaded bool) {
	name := os.Getenv(benchDBEnv)
	if name == "" {
		db, dbURL := testenv.DB(b)
		return db, dbURL, false
	}
	ctx := context.Background()
	base := testenv.Config(b).DatabaseURL
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	dbURL = u.String()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		b.Fatal(err)
	}
	if exists {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			b.Fatal(err)
		}
		// Complete once every chunk is in; the vector indexes are built
		// (or found built) after that in either case.
		err = conn.QueryRow(ctx, `SELECT count(*) = $1 FROM chunks`, benchLoaded()).Scan(&loaded)
		conn.Close(ctx)
		if err != nil {
			loaded = false
		}
	}
	if !loaded {
		id := pgx.Identifier{name}.Sanitize()
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+id+` WITH (FORCE)`); err != nil {
			b.Fatal(err)
		}
		if _, err := admin.Exec(ctx, `CREATE DATABASE `+id); err != nil {
			b.Fatal(err)
		}
	}
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		b.Fatal(err)
	}
	db, err = postgres.Open(ctx, dbURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	return db, dbURL, loaded
}

func loadBenchCorpus(b *testing.B) {
	c := &benchCorpus
	ctx := context.Background()
	db, dbURL, loaded := openBenchDB(b)
	c.db, c.emb = db, embed.NewHashing(384)
	var draw func(*rand.Rand) string
	c.words, draw = zipfWords(30_000, 7)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if loaded {
		for tn := range benchTenants {
			var id string
			if err := conn.QueryRow(ctx, `SELECT id FROM tenants WHERE name = $1`, fmt.Sprintf("t%d", tn)).Scan(&id); err != nil {
				b.Fatal(err)
			}
			c.tenants = append(c.tenants, id)
		}
		var size string
		if err := conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
			b.Fatal(err)
		}
		built := buildBenchIndexes(b, dbURL)
		c.report = fmt.Sprintf("search corpus: %d chunks, %d tenants, kept in database %s (%s), database %s, %d tenants' HNSW indexes built now",
			benchLoaded(), benchTenants, os.Getenv(benchDBEnv), benchDBEnv, size, built)
		return
	}
	r := rand.New(rand.NewPCG(3, 4))
	start := time.Now()
	for tn := range benchTenants {
		tenant := newTenant(b, db, fmt.Sprintf("t%d", tn))
		c.tenants = append(c.tenants, tenant)
		for doc := range benchDocs(tn) {
			collection := ""
			if tn == 0 && doc%100 == 0 {
				collection = "rare"
			}
			_, j := newDocJob(b, db, tenant, collection)
			chunks := make([]ragpipe.Chunk, benchPerDoc)
			texts := make([]string, benchPerDoc)
			for i := range chunks {
				ws := make([]string, 60+r.IntN(80))
				for k := range ws {
					ws[k] = draw(r)
				}
				texts[i] = strings.Join(ws, " ")
				chunks[i] = ragpipe.Chunk{Index: i, Text: texts[i], PageStart: 1, PageEnd: 1}
			}
			vecs, err := c.emb.Embed(ctx, texts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.FinishJob(ctx, j.ID, chunks, vecs); err != nil {
				b.Fatal(err)
			}
		}
	}
	load := time.Since(start)
	start = time.Now()
	built := buildBenchIndexes(b, dbURL)
	build := time.Since(start)
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var size, chunks, hnsw, other, postings string
	if err := conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database())),
		pg_size_pretty(pg_table_size('chunks')),
		coalesce(pg_size_pretty((SELECT sum(pg_relation_size(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'chunks'::regclass AND a.amname = 'hnsw')), '0'),
		pg_size_pretty((SELECT sum(pg_relation_size(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'chunks'::regclass AND a.amname <> 'hnsw')),
		pg_size_pretty(pg_total_relation_size('chunk_terms') + pg_total_relation_size('term_stats')
			+ pg_total_relation_size('document_terms') + pg_total_relation_size('tenant_term_stats'))`).
		Scan(&size, &chunks, &hnsw, &other, &postings); err != nil {
		b.Fatal(err)
	}
	c.report = fmt.Sprintf("search corpus: %d chunks, %d tenants, loaded (with BM25 postings) in %s, %d tenants' HNSW indexes built in %s, "+
		"database %s (chunks table %s, HNSW indexes %s, other chunk indexes %s, keyword postings and statistics %s)",
		benchLoaded(), benchTenants, load.Round(time.Second), built, build.Round(100*time.Millisecond), size, chunks, hnsw, other, postings)
}

// benchIndexMin is RAGPIPE_VECTOR_INDEX_MIN_CHUNKS's default.
const benchIndexMin = 20_000

// buildBenchIndexes builds the vector indexes a worker would for the
// corpus: one for each tenant past the default bound (none at 200,000
// chunks, each of 52,200 at 1,000,000), the graphs in memory. It returns how
// many it built.
func buildBenchIndexes(b *testing.B, dbURL string) int {
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("maintenance_work_mem", "3GB") // pgx sets unknown parameters for the session
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n, err := db.BuildVectorIndexes(ctx, benchIndexMin)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// query draws a query of 4 words of the corpus and its embedding.
func benchQuery(b *testing.B, r *rand.Rand) (string, []float32) {
	c := &benchCorpus
	ws := make([]string, 4)
	for i := range ws {
		ws[i] = c.words[r.IntN(2000)] // among the commoner words, so queries match
	}
	q := strings.Join(ws, " ")
	v, err := c.emb.Embed(context.Background(), []string{q})
	if err != nil {
		b.Fatal(err)
	}
	return q, v[0]
}

// BenchmarkSearch measures search on 200,000 chunks of 20 tenants: hybrid
// latency at top_k 10 with 4 concurrent clients, vector recall@10 against
// exact search (a big tenant, and a filter matching 1% of one), and that a
// filter matching 1% of a tenant's chunks, or a tenant owning 1% of all,
// still gets top_k results.
func BenchmarkSearch(b *testing.B) {
	c := &benchCorpus
	c.once.Do(func() { loadBenchCorpus(b) })
	if c.db == nil {
		b.Fatal("corpus not loaded")
	}
	ctx := context.Background()
	for b.Loop() {
		// Latency of each mode, 4 clients, 100 queries each, over the big tenants.
		latency := func(mode string) (p50, p95 time.Duration) {
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			for client := range 4 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(client), 9))
					for range 100 {
						q, v := benchQuery(b, r)
						sq := ragpipe.SearchQuery{TenantID: c.tenants[r.IntN(benchTenants-1)], Query: q, Vector: v, TopK: 10, Mode: mode}
						t0 := time.Now()
						if _, err := c.db.Search(ctx, sq); err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						lat = append(lat, time.Since(t0))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			slices.Sort(lat)
			return lat[len(lat)/2], lat[len(lat)*95/100]
		}
		kp50, kp95 := latency(ragpipe.SearchKeyword)
		vp50, vp95 := latency(ragpipe.SearchVector)
		p50, p95 := latency(ragpipe.SearchHybrid)

		// Recall of the HNSW walk against exact search, over graphs of the
		// two tenants' own, built for it (not listed, so Search above and
		// below compares every chunk of a tenant below the bound, as it does
		// with the defaults).
		t0 := time.Now()
		for _, tenant := range c.tenants[:2] {
			if err := c.db.BuildTenantVectorIndex(ctx, tenant); err != nil {
				b.Fatal(err)
			}
		}
		indexBuild := time.Since(t0)
		recallOf := func(f ragpipe.SearchFilter, tenant string) (float64, int) {
			r := rand.New(rand.NewPCG(11, 12))
			found, total, fewest := 0, 0, 10
			for range 100 {
				_, v := benchQuery(b, r)
				q := ragpipe.SearchQuery{TenantID: tenant, Vector: v, TopK: 10, Mode: ragpipe.SearchVector, SearchFilter: f}
				ann, err := c.db.SearchMode(ctx, q, false)
				if err != nil {
					b.Fatal(err)
				}
				exact, err := c.db.SearchMode(ctx, q, true)
				if err != nil {
					b.Fatal(err)
				}
				fewest = min(fewest, len(ann))
				for _, e := range exact {
					total++
					if slices.ContainsFunc(ann, func(a ragpipe.SearchResult) bool {
						return a.DocumentID == e.DocumentID && a.ChunkIndex == e.ChunkIndex
					}) {
						found++
					}
				}
			}
			return float64(found) / float64(total), fewest
		}
		recall, _ := recallOf(ragpipe.SearchFilter{}, c.tenants[1])
		rareRecall, rareFewest := recallOf(ragpipe.SearchFilter{Collection: "rare"}, c.tenants[0])

		// What Search itself returns for the 1% cases (it falls back to
		// exact search when the walk finds too few).
		fewest := 10
		r := rand.New(rand.NewPCG(13, 14))
		for range 50 {
			q, v := benchQuery(b, r)
			for _, sq := range []ragpipe.SearchQuery{
				{TenantID: c.tenants[0], Query: q, Vector: v, TopK: 10, Mode: ragpipe.SearchVector, SearchFilter: ragpipe.SearchFilter{Collection: "rare"}},
				{TenantID: c.tenants[0], Query: q, Vector: v, TopK: 10, Mode: ragpipe.SearchHybrid, SearchFilter: ragpipe.SearchFilter{Collection: "rare"}},
				{TenantID: c.tenants[benchTenants-1], Query: q, Vector: v, TopK: 10, Mode: ragpipe.SearchVector},
			} {
				res, err := c.db.Search(ctx, sq)
				if err != nil {
					b.Fatal(err)
				}
				fewest = min(fewest, len(res))
			}
		}
		b.ReportMetric(float64(p95.Microseconds())/1000, "hybrid-p95-ms")
		b.ReportMetric(recall, "recall@10")
		fmt.Printf("%s\n", c.report)
		fmt.Printf("keyword search, top_k 10, 4 clients: p50 %s, p95 %s\n", kp50.Round(100*time.Microsecond), kp95.Round(100*time.Microsecond))
		fmt.Printf("vector search, top_k 10, 4 clients: p50 %s, p95 %s\n", vp50.Round(100*time.Microsecond), vp95.Round(100*time.Microsecond))
		fmt.Printf("hybrid search, top_k 10, 4 clients: p50 %s, p95 %s (goal: p95 < 50ms)\n", p50.Round(100*time.Microsecond), p95.Round(100*time.Microsecond))
		fmt.Printf("HNSW indexes of two tenants' own (%d chunks each), built in %s (at once when kept)\n",
			benchDocs(1)*benchPerDoc, indexBuild.Round(100*time.Millisecond))
		fmt.Printf("vector recall@10 of the HNSW walk against exact search, a tenant of %d chunks, its own graph: %.3f (goal: >= 0.95)\n",
			benchDocs(1)*benchPerDoc, recall)
		fmt.Printf("vector recall@10 of the HNSW walk, filter matching 1%% of a tenant: %.3f, fewest results %d of 10\n", rareRecall, rareFewest)
		fmt.Printf("fewest results of Search for a 1%% filter or a tenant owning 1%%: %d of 10 (goal: 10)\n", fewest)
	}
}
