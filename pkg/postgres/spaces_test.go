package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

var (
	space384 = ragpipe.EmbeddingSpace{Provider: "hashing", Model: "hashing-v1", Dimensions: 384}
	space8   = ragpipe.EmbeddingSpace{Provider: "openai", Model: "small", BaseURL: "http://127.0.0.1:1/v1", Dimensions: 8}
)

// finishDoc stores n chunks "doc<d> chunk<i>" for a new document of the tenant,
// with vectors of dim from seed, and returns the document's ID.
func finishDoc(t *testing.T, db *postgres.DB, tenant string, n, dim, seed int) string {
	t.Helper()
	d, j := newDocJob(t, db, tenant, "")
	chunks := make([]ragpipe.Chunk, n)
	vecs := make([][]float32, n)
	for i := range chunks {
		chunks[i] = ragpipe.Chunk{Index: i, Text: fmt.Sprintf("doc%d chunk%d", seed, i), PageStart: 1, PageEnd: 1}
		vecs[i] = unit(dim, seed*1000+i)
	}
	if _, err := db.FinishJob(context.Background(), j.ID, chunks, vecs); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func TestRegisterSpace(t *testing.T) {
	t.Parallel()
	db, dbURL := testenv.DB(t)
	ctx := context.Background()
	// Chunks stored before spaces were recorded are in space 0, of 384
	// dimensions; the first space of that size describes them.
	tenant := newTenant(t, db, "r")
	finishDoc(t, db, tenant, 2, 384, 1)
	legacy, err := db.RegisterSpace(ctx, space384)
	if err != nil || legacy.ID != 0 {
		t.Fatalf("RegisterSpace(384) = %+v, %v; want the legacy space 0", legacy, err)
	}
	again, err := db.RegisterSpace(ctx, space384)
	if err != nil || again.ID != 0 {
		t.Fatalf("again: %+v, %v", again, err)
	}
	small, err := db.RegisterSpace(ctx, space8)
	if err != nil || small.ID == 0 {
		t.Fatalf("RegisterSpace(8) = %+v, %v; want a new space", small, err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var storage string
	if err := conn.QueryRow(ctx, `SELECT attstorage FROM pg_attribute WHERE attrelid = 'chunks'::regclass
		AND attname = 'embedding'`).Scan(&storage); err != nil || storage != "p" {
		t.Errorf("vectors stored %q (%v); want PLAIN, in the row", storage, err)
	}
	// The new space is the one written from now on, and a tenant's vectors
	// in it are searched through the tenant's index in it.
	fresh := newTenant(t, db, "f")
	finishDoc(t, db, fresh, 3, 8, 2)
	if n, err := db.BuildVectorIndexes(ctx, 3); err != nil || n != 1 {
		t.Fatalf("BuildVectorIndexes = %d, %v; want the new tenant's index built", n, err)
	}
	var def string
	err = conn.QueryRow(ctx, `SELECT pg_get_indexdef(to_regclass($1))`, postgres.VectorIndexName(fresh, small.ID)).Scan(&def)
	if err != nil || !strings.Contains(def, "vector(8)") || !strings.Contains(def, fmt.Sprintf("space_id = %d", small.ID)) ||
		!strings.Contains(def, fresh) {
		t.Errorf("index of the tenant in the new space: %q, %v", def, err)
	}
	sp, err := db.TenantSpace(ctx, fresh)
	if err != nil || sp.ID != small.ID {
		t.Errorf("TenantSpace of a tenant first written in the new space = %+v, %v", sp, err)
	}
	res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: fresh, Vector: unit(8, 2001), Space: small.ID, TopK: 1, Mode: ragpipe.SearchVector})
	if err != nil || len(res) != 1 || res[0].Text != "doc2 chunk1" {
		t.Errorf("vector search in the new space = %+v, %v", res, err)
	}
	old, err := db.TenantSpace(ctx, tenant)
	if err != nil || old.ID != 0 || old.Provider != "hashing" {
		t.Errorf("TenantSpace of the legacy tenant = %+v, %v", old, err)
	}
}

func TestRegisterSpaceRefusesUndescribedChunks(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	finishDoc(t, db, newTenant(t, db, "u"), 1, 384, 1)
	_, err := db.RegisterSpace(context.Background(), space8)
	if err == nil || !strings.Contains(err.Error(), "384 dimensions") {
		t.Errorf("RegisterSpace(8) over undescribed 384-dimensional chunks: err = %v", err)
	}
}

// TestReembed moves a tenant from one space to another while documents are
// added and removed, with a step that fails and one written behind the walk
// by a process still on the old space, and checks that searches use the old
// space throughout and switch over at once.
func TestReembed(t *testing.T) {
	t.Parallel()
	db, dbURL := testenv.DB(t)
	ctx := context.Background()
	if _, err := db.RegisterSpace(ctx, space384); err != nil {
		t.Fatal(err)
	}
	tenant, other := newTenant(t, db, "m"), newTenant(t, db, "o")
	docs := []string{finishDoc(t, db, tenant, 5, 384, 1), finishDoc(t, db, tenant, 4, 384, 2), finishDoc(t, db, tenant, 1, 384, 3)}
	finishDoc(t, db, other, 2, 384, 4)
	// The tenant's searches walk an index of its own in the old space.
	if n, err := db.BuildVectorIndexes(ctx, 5); err != nil || n != 1 {
		t.Fatalf("BuildVectorIndexes = %d, %v; want the tenant's index built", n, err)
	}

	target, err := db.RegisterSpace(ctx, space8)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := db.StartReembeds(ctx, target.ID)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("StartReembeds = %v, %v; want a task for each tenant", tasks, err)
	}
	again, err := db.StartReembeds(ctx, target.ID)
	if err != nil || len(again) != 2 || again[0].ID != tasks[0].ID {
		t.Fatalf("StartReembeds again = %v, %v; want the same tasks", again, err)
	}
	var mig int64
	for _, task := range tasks {
		p, _ := ragpipe.DecodeTask(task.Type, task.Payload)
		if p.TenantID == tenant {
			mig = p.Migration
		}
	}
	// The new space's vector of a chunk is its old seed's, in 8 dimensions.
	var seen []string
	embed := func(_ context.Context, st ragpipe.ReembedBatch) ([][]float32, error) {
		if st.Target.ID != target.ID || st.Target.Dimensions != 8 {
			t.Errorf("step target %+v", st.Target)
		}
		out := make([][]float32, len(st.Texts))
		for i, text := range st.Texts {
			var d, c int
			fmt.Sscanf(text, "doc%d chunk%d", &d, &c)
			out[i] = unit(8, d*1000+c)
			seen = append(seen, text)
		}
		return out, nil
	}
	oldSearch := func() []ragpipe.SearchResult {
		t.Helper()
		sp, err := db.TenantSpace(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		v := unit(384, 3000)
		if sp.ID == target.ID {
			v = unit(8, 3000)
		}
		res, err := db.Search(ctx, ragpipe.SearchQuery{TenantID: tenant, Vector: v, Space: sp.ID, TopK: 1, Mode: ragpipe.SearchVector})
		if err != nil || len(res) != 1 || res[0].Text != "doc3 chunk0" {
			t.Fatalf("vector search in space %d = %+v, %v", sp.ID, res, err)
		}
		return res
	}

	// A failing step stores nothing.
	boom := errors.New("provider down")
	if _, over, err := db.Reembed(ctx, tenant, mig, 3, func(context.Context, ragpipe.ReembedBatch) ([][]float32, error) {
		return nil, boom
	}); !errors.Is(err, boom) || over {
		t.Fatalf("failing step: over %v, err %v", over, err)
	}
	n, over, err := db.Reembed(ctx, tenant, mig, 3, embed)
	if err != nil || over || n != 3 {
		t.Fatalf("first step: %d, %v, %v", n, over, err)
	}
	// A migration that stops moving is the reaper's: its next task.
	stale, err := db.StaleReembeds(ctx, 0)
	want := ragpipe.NewTask(ragpipe.TaskReembed, ragpipe.TaskPayload{TenantID: tenant, Migration: mig, Batch: 3})
	if err != nil || !slices.ContainsFunc(stale, func(t ragpipe.Task) bool { return t.ID == want.ID }) {
		t.Errorf("StaleReembeds = %v, %v; want %s among them", stale, err, want.ID)
	}
	if fresh, err := db.StaleReembeds(ctx, time.Hour); err != nil || len(fresh) != 0 {
		t.Errorf("StaleReembeds(1h) = %v, %v", fresh, err)
	}
	oldSearch()
	// Meanwhile a document arrives (in the new space), one goes, and a
	// process on the old space stores one behind the walk.
	finishDoc(t, db, tenant, 2, 8, 5)
	if err := db.DeleteDocument(ctx, tenant, docs[1], ragpipe.NewTask(ragpipe.TaskDelete, ragpipe.TaskPayload{DocumentID: docs[1]})); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PurgeDocument(ctx, docs[1]); err != nil {
		t.Fatal(err)
	}
	oldDB, err := postgres.Open(ctx, dbURL, webhook.EncodeEvent)
	if err != nil {
		t.Fatal(err)
	}
	defer oldDB.Close()
	if _, err := oldDB.RegisterSpace(ctx, space384); err != nil {
		t.Fatal(err)
	}
	first := slices.Min(docs)
	for finishDoc(t, oldDB, tenant, 1, 384, 6) > first {
	}
	steps := 0
	for !over {
		if steps++; steps > 20 {
			t.Fatal("migration does not end")
		}
		if n, over, err = db.Reembed(ctx, tenant, mig, 3, embed); err != nil {
			t.Fatal(err)
		}
		if !over {
			st, err := db.EmbeddingStatus(ctx, tenant)
			if err != nil || st.Space.ID != 0 || st.Migration.State != ragpipe.MigrationRunning {
				t.Fatalf("status mid-way: %+v, %v", st, err)
			}
			oldSearch() // the old space until the switch
		}
	}
	st, err := db.EmbeddingStatus(ctx, tenant)
	if err != nil || st.Space.ID != target.ID || st.Migration.State != ragpipe.MigrationSucceeded || st.Migration.Progress() != 1 {
		t.Fatalf("status at the end: %+v %+v, %v", st, st.Migration, err)
	}
	oldSearch() // now in the new space
	// The index of the space the tenant left goes, one in its new space comes.
	if n, err := db.BuildVectorIndexes(ctx, 5); err != nil || n != 1 {
		t.Fatalf("BuildVectorIndexes after the switch = %d, %v; want the new space's index built", n, err)
	}
	oldSearch()
	if strings.Join(seen, ",") == "" || strings.Contains(strings.Join(seen, ","), "doc5") {
		t.Errorf("re-embedded %v; the new document was in the new space already", seen)
	}
	var left, pending int
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM chunks WHERE tenant_id = $1 AND space_id <> $2),
		(SELECT count(*) FROM chunk_vectors_next)`, tenant, target.ID).Scan(&left, &pending); err != nil || left != 0 || pending != 0 {
		t.Errorf("chunks outside the space %d, vectors pending %d, %v", left, pending, err)
	}
	var oldIndex, newIndex *string
	var listed []int
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::text, to_regclass($2)::text,
		(SELECT array_agg(space_id ORDER BY space_id) FROM tenant_vector_indexes WHERE tenant_id = $3)`,
		postgres.VectorIndexName(tenant, 0), postgres.VectorIndexName(tenant, target.ID), tenant).Scan(&oldIndex, &newIndex, &listed); err != nil ||
		oldIndex != nil || newIndex == nil || !slices.Equal(listed, []int{target.ID}) {
		t.Errorf("vector indexes after the switch: old %v, new %v, listed %v, %v; want only the new space's", oldIndex, newIndex, listed, err)
	}
	// A duplicate of a finished migration's task ends at once.
	if _, over, err := db.Reembed(ctx, tenant, mig, 3, embed); err != nil || !over {
		t.Errorf("task of a finished migration: over %v, %v", over, err)
	}
}

func TestReembedPermanentFailure(t *testing.T) {
	t.Parallel()
	db, _ := testenv.DB(t)
	ctx := context.Background()
	if _, err := db.RegisterSpace(ctx, space384); err != nil {
		t.Fatal(err)
	}
	tenant := newTenant(t, db, "p")
	finishDoc(t, db, tenant, 2, 384, 1)
	target, err := db.RegisterSpace(ctx, space8)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := db.StartReembeds(ctx, target.ID)
	if err != nil || len(tasks) != 1 {
		t.Fatal(tasks, err)
	}
	p, _ := ragpipe.DecodeTask(tasks[0].Type, tasks[0].Payload)
	rejected := ragpipe.Permanent(errors.New("model not found"))
	if _, over, err := db.Reembed(ctx, tenant, p.Migration, 10, func(context.Context, ragpipe.ReembedBatch) ([][]float32, error) {
		return nil, rejected
	}); !over || !errors.Is(err, ragpipe.ErrPermanent) {
		t.Fatalf("over %v, err %v", over, err)
	}
	st, err := db.EmbeddingStatus(ctx, tenant)
	if err != nil || st.Space.ID != 0 || st.Migration.State != ragpipe.MigrationFailed || !strings.Contains(st.Migration.Error, "model not found") {
		t.Errorf("status %+v %+v, %v", st, st.Migration, err)
	}
}
