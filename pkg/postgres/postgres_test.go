package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/migrations"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// newDocJob records a document with a queued job for tenant and returns both.
func newDocJob(t testing.TB, db *postgres.DB, tenant, collection string) (*ragpipe.Document, *ragpipe.Job) {
	t.Helper()
	d := &ragpipe.Document{ID: uuid.NewString(), TenantID: tenant, Collection: collection, Filename: "a.txt",
		Format: "text", SizeBytes: 3, SHA256: "x", Status: ragpipe.DocProcessing}
	d.RawKey = ragpipe.RawKey(tenant, d.ID)
	j := &ragpipe.Job{ID: uuid.NewString(), TenantID: tenant, DocumentID: d.ID, Status: ragpipe.JobQueued,
		Stage: ragpipe.StageExtract, ChunkSize: 1000, ChunkOverlap: 100}
	if _, err := db.CreateDocument(context.Background(), d, j, ragpipe.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return d, j
}

func newTenant(t testing.TB, db *postgres.DB, name string) string {
	t.Helper()
	_, hash := apikey.New()
	id, err := db.CreateKey(context.Background(), name, "rp_x", hash)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// unit returns a pseudo-random unit vector of dim, the same for the same seed.
func unit(dim, seed int) []float32 {
	r := rand.New(rand.NewPCG(uint64(seed), 42))
	v := make([]float32, dim)
	var n float64
	for k := range v {
		x := r.NormFloat64()
		v[k] = float32(x)
		n += x * x
	}
	for k := range v {
		v[k] /= float32(math.Sqrt(n))
	}
	return v
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testenv.EmptyDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(context.Background(), dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrate %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	latest := 0
	files, _ := fs.Glob(migrations.FS, "*.up.sql")
	for _, f := range files {
		n, _ := strconv.Atoi(strings.SplitN(f, "_", 2)[0])
		latest = max(latest, n)
	}
	var version int
	var dirty bool
	if err := conn.QueryRow(context.Background(), `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil || dirty || version != latest {
		t.Errorf("schema after concurrent migrations: version %d, dirty %v, %v; want %d, clean", version, dirty, err, latest)
	}
}

func TestKeysAndTenants(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	key, hash := apikey.New()
	id1, err := db.CreateKey(ctx, "acme", apikey.Display(key), hash)
	if err != nil {
		t.Fatal(err)
	}
	_, hash2 := apikey.New()
	id2, err := db.CreateKey(ctx, "acme", "rp_y", hash2)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Errorf("second key for acme made a new tenant: %s vs %s", id1, id2)
	}
	got, err := db.TenantByKeyHash(ctx, apikey.Hash(key))
	if err != nil || got != id1 {
		t.Errorf("TenantByKeyHash = %q, %v; want %q", got, err, id1)
	}
	_, err = db.TenantByKeyHash(ctx, apikey.Hash("rp_unknown"))
	if ragpipe.ErrorCode(err) != ragpipe.EUNAUTHORIZED {
		t.Errorf("unknown key: err = %v, want unauthorized", err)
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	a, b := newTenant(t, db, "a"), newTenant(t, db, "b")
	d, j := newDocJob(t, db, a, "")
	if _, err := db.Document(ctx, b, d.ID); ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
		t.Errorf("tenant b reading a's document: err = %v, want not_found", err)
	}
	if _, err := db.Job(ctx, b, j.ID); ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
		t.Errorf("tenant b reading a's job: err = %v, want not_found", err)
	}
	if _, err := db.Document(ctx, a, "not-a-uuid"); ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
		t.Errorf("malformed id: err = %v, want not_found", err)
	}
	got, err := db.Document(ctx, a, d.ID)
	if err != nil || got.ID != d.ID || got.LastJobID != j.ID {
		t.Errorf("owner read: %+v, %v", got, err)
	}
}

func TestDocumentsPagination(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "p")
	var want []string
	for i := range 7 {
		d, _ := newDocJob(t, db, tenant, fmt.Sprintf("c%d", i%2))
		want = append([]string{d.ID}, want...) // newest first
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		docs, next, err := db.Documents(ctx, tenant, ragpipe.DocumentFilter{}, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			got = append(got, d.ID)
		}
		if next == "" {
			break
		}
		cursor = next
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents across pages (-want +got):\n%s", diff)
	}
	docs, _, err := db.Documents(ctx, tenant, ragpipe.DocumentFilter{Collection: "c1"}, "", 100)
	if err != nil || len(docs) != 3 {
		t.Errorf("collection filter: %d docs, %v; want 3", len(docs), err)
	}
	if _, _, err := db.Documents(ctx, tenant, ragpipe.DocumentFilter{}, "garbage", 3); ragpipe.ErrorCode(err) != ragpipe.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestFanIn completes every batch concurrently, some twice, and checks that
// exactly the last completion reports all done and counts are right.
func TestFanIn(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "f")
	_, j := newDocJob(t, db, tenant, "")
	sizes := []int{64, 64, 64, 64, 64, 64, 64, 13}
	if err := db.PrepareEmbed(ctx, j.ID, sizes); err != nil {
		t.Fatal(err)
	}
	if err := db.PrepareEmbed(ctx, j.ID, sizes); err != nil { // again: no change
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	doneReports := 0
	for i := range sizes {
		for range 2 {
			wg.Go(func() {
				done, err := db.CompleteBatch(ctx, j.ID, i)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				if done {
					doneReports++
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if doneReports < 1 {
		t.Errorf("no completion reported all batches done")
	}
	got, err := db.Job(ctx, tenant, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalChunks != 461 || got.EmbeddedChunks != 461 || got.Progress != 1 || got.TotalBatches != 8 {
		t.Errorf("job after fan-in: total=%d embedded=%d progress=%v batches=%d; want 461 461 1 8",
			got.TotalChunks, got.EmbeddedChunks, got.Progress, got.TotalBatches)
	}
}

func TestFinishJobTwice(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "u")
	d, j := newDocJob(t, db, tenant, "col")
	chunks := []ragpipe.Chunk{{Index: 0, Text: "alpha beta", PageStart: 1, PageEnd: 1}, {Index: 1, Text: "gamma delta", PageStart: 1, PageEnd: 2}}
	vecs := [][]float32{unit(384, 0), unit(384, 5)}
	ok, err := db.FinishJob(ctx, j.ID, chunks, vecs)
	if err != nil || !ok {
		t.Fatalf("FinishJob = %v, %v", ok, err)
	}
	ok, err = db.FinishJob(ctx, j.ID, chunks, vecs)
	if err != nil || ok {
		t.Fatalf("second FinishJob = %v, %v; want false, nil", ok, err)
	}
	got, err := db.Chunks(ctx, tenant, d.ID, -1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []ragpipe.Chunk{{DocumentID: d.ID, Index: 0, Text: "alpha beta", PageStart: 1, PageEnd: 1},
		{DocumentID: d.ID, Index: 1, Text: "gamma delta", PageStart: 1, PageEnd: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
	doc, _ := db.Document(ctx, tenant, d.ID)
	if doc.Status != ragpipe.DocReady || doc.ChunkCount != 2 {
		t.Errorf("document status=%s chunks=%d; want ready 2", doc.Status, doc.ChunkCount)
	}
	// A failure after success changes nothing.
	if err := db.FailJob(ctx, j.ID, "x", "y"); err != nil {
		t.Fatal(err)
	}
	job, _ := db.Job(ctx, tenant, j.ID)
	if job.Status != ragpipe.JobSucceeded {
		t.Errorf("job status %s after late FailJob; want succeeded", job.Status)
	}
}

func TestBeginStageNeverGoesBack(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	tenant := newTenant(t, db, "s")
	_, j := newDocJob(t, db, tenant, "")
	if _, err := db.BeginStage(ctx, j.ID, ragpipe.StageExtract, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.PrepareEmbed(ctx, j.ID, []int{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginStage(ctx, j.ID, ragpipe.StageChunk, 2); err != nil { // a redelivered chunk task
		t.Fatal(err)
	}
	got, _ := db.Job(ctx, tenant, j.ID)
	if got.Stage != ragpipe.StageEmbed || got.Status != ragpipe.JobRunning {
		t.Errorf("job %s/%s; want running/embed", got.Status, got.Stage)
	}
}

// TestSearchModesAndPlans loads enough chunks for the planner to prefer the
// indexes, then checks results of each mode and that the plans use the
// tenant's own HNSW index and the postings' primary key (or compare every
// candidate, exactly).
func TestSearchModesAndPlans(t *testing.T) {
	t.Parallel()
	db, dbURL := testenv.DB(t)
	ctx := context.Background()
	a, b := newTenant(t, db, "a"), newTenant(t, db, "b")
	words := []string{"apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel"}
	const perDoc = 500
	var docA string
	for _, tenant := range []string{a, b} {
		docs := 4
		if tenant == b {
			docs = 3
		}
		for n := range docs {
			d, j := newDocJob(t, db, tenant, fmt.Sprintf("c%d", n%2))
			if tenant == a && n == 0 {
				docA = d.ID
			}
			chunks := make([]ragpipe.Chunk, perDoc)
			vecs := make([][]float32, perDoc)
			for i := range perDoc {
				text := fmt.Sprintf("%s %s number%d", words[i%len(words)], words[(i/8)%len(words)], i)
				if tenant == a && n == 0 && i == 137 {
					text = "the zebra crossing manual explains striped road markings"
				}
				chunks[i] = ragpipe.Chunk{Index: i, Text: text, PageStart: i/10 + 1, PageEnd: i/10 + 1}
				vecs[i] = unit(384, i*7+n)
			}
			if _, err := db.FinishJob(ctx, j.ID, chunks, vecs); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Tenant a gets an index of its own, b (below the bound) none.
	if n, err := db.BuildVectorIndexes(ctx, 4*perDoc); err != nil || n != 1 {
		t.Fatalf("BuildVectorIndexes = %d, %v; want tenant a's index built", n, err)
	}
	if n, err := db.BuildVectorIndexes(ctx, 4*perDoc); err != nil || n != 0 {
		t.Fatalf("BuildVectorIndexes again = %d, %v; want none built", n, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE chunks, chunk_terms, term_stats"); err != nil {
		t.Fatal(err)
	}
	indexA := postgres.VectorIndexName(a, 0)

	target := unit(384, 137*7)
	tests := []struct {
		name  string
		q     ragpipe.SearchQuery
		first ragpipe.SearchResult
		count int
	}{
		{"vector", ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchVector, Vector: target, TopK: 5,
			SearchFilter: ragpipe.SearchFilter{DocumentIDs: []string{docA}}},
			ragpipe.SearchResult{DocumentID: docA, ChunkIndex: 137, PageStart: 14, PageEnd: 14}, 5},
		{"keyword", ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchKeyword, Query: "zebra crossing", TopK: 5},
			ragpipe.SearchResult{DocumentID: docA, ChunkIndex: 137, PageStart: 14, PageEnd: 14}, 1},
		{"hybrid", ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchHybrid, Query: "zebra markings", Vector: target, TopK: 3},
			ragpipe.SearchResult{DocumentID: docA, ChunkIndex: 137, PageStart: 14, PageEnd: 14}, 3},
		{"other tenant sees nothing of a", ragpipe.SearchQuery{TenantID: b, Mode: ragpipe.SearchKeyword, Query: "zebra", TopK: 5},
			ragpipe.SearchResult{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := db.Search(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != tc.count {
				t.Fatalf("%d results, want %d: %+v", len(res), tc.count, res)
			}
			if tc.count == 0 {
				return
			}
			got := res[0]
			got.Text, got.Score = "", 0
			if diff := cmp.Diff(tc.first, got); diff != "" {
				t.Errorf("first result (-want +got):\n%s", diff)
			}
			for _, r := range res {
				if r.DocumentID != docA && tc.q.DocumentIDs != nil {
					t.Errorf("result from document %s outside the filter", r.DocumentID)
				}
			}
		})
	}

	// The plans of the very queries Search runs, with their arguments.
	plans := []struct {
		q       ragpipe.SearchQuery
		exact   bool
		indexes []string
		not     string
	}{
		{ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchVector, Vector: target, TopK: 10}, false, []string{indexA}, ""},
		{ragpipe.SearchQuery{TenantID: b, Mode: ragpipe.SearchVector, Vector: target, TopK: 10}, false, nil, indexA},
		{ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchVector, Vector: target, TopK: 10}, true, nil, indexA},
		{ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchKeyword, Query: "zebra crossing", TopK: 10}, false, []string{"chunk_terms_pkey"}, ""},
		{ragpipe.SearchQuery{TenantID: a, Mode: ragpipe.SearchHybrid, Query: "zebra crossing", Vector: target, TopK: 10}, false,
			[]string{indexA, "chunk_terms_pkey"}, ""},
	}
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		t.Run(fmt.Sprintf("plan of %s (exact %t)", p.q.Mode, p.exact), func(t *testing.T) {
			sql, args, err := postgres.SearchSQL(p.q, p.exact)
			if err != nil {
				t.Fatal(err)
			}
			plan := explain(t, conn, "EXPLAIN "+sql, args...)
			for _, index := range p.indexes {
				if !strings.Contains(plan, index) {
					t.Errorf("plan does not use %s:\n%s", index, plan)
				}
			}
			if p.not != "" && strings.Contains(plan, p.not) {
				t.Errorf("plan uses %s:\n%s", p.not, plan)
			}
		})
	}
}

func explain(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	_, connErr := pgx.Connect(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", connErr, true},
		{"server shutting down", fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"connection failure class", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"not found", ragpipe.Errorf(ragpipe.ENOTFOUND, "x"), false},
	}
	for _, tc := range tests {
		if got := postgres.IsUnavailable(tc.err); got != tc.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestDispatchShares checks the dispatcher's shares: a tenant alone gets all
// of capacity; once capacity is taken a newcomer still gets perTenant; two
// tenants with work split capacity evenly.
func TestDispatchShares(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	a, b := newTenant(t, db, "a"), newTenant(t, db, "b")
	tenantOf := map[string]string{}
	queue := func(tenant string, n int) {
		for range n {
			_, j := newDocJob(t, db, tenant, "")
			tenantOf[j.ID] = tenant
		}
	}
	sent := map[string]int{}
	dispatch := func(perTenant, capacity int) {
		t.Helper()
		if _, err := db.DispatchQueued(ctx, perTenant, capacity, 100, func(_ context.Context, p ragpipe.TaskPayload) error {
			sent[tenantOf[p.JobID]]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	queue(a, 20)
	dispatch(2, 10)
	if sent[a] != 10 {
		t.Errorf("a tenant alone got %d in flight; want all of capacity, 10", sent[a])
	}
	queue(b, 5)
	dispatch(2, 10)
	if sent[a] != 10 || sent[b] != 2 {
		t.Errorf("capacity taken: a %d, b %d in flight; want 10 and perTenant 2", sent[a], sent[b])
	}
	dispatch(2, 30)
	if sent[a] != 15 || sent[b] != 5 {
		t.Errorf("capacity 30, two tenants: a %d, b %d; want an even 15 each, b holding all 5 of its jobs", sent[a], sent[b])
	}
}
