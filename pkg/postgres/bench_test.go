package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// BenchmarkUpsert measures FinishJob: replacing a document's chunks (1,000
// chunks of ~1,000 characters with 384-dimensional vectors) by binary COPY in
// one transaction. It reports rows/s.
func BenchmarkUpsert(b *testing.B) {
	db, _ := testenv.DB(b)
	ctx := context.Background()
	_, hash := apikey.New()
	tenant, err := db.CreateKey(ctx, "bench", "rp_x", hash)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	chunks := make([]ragpipe.Chunk, n)
	vecs := make([][]float32, n)
	for i := range n {
		text := ""
		for len(text) < 1000 {
			text += fmt.Sprintf("word%d lorem ipsum dolor sit amet %d ", i, len(text))
		}
		chunks[i] = ragpipe.Chunk{Index: i, Text: text, PageStart: i/3 + 1, PageEnd: i/3 + 1}
		vecs[i] = unit(384, i)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		d := &ragpipe.Document{ID: uuid.NewString(), TenantID: tenant, Filename: "b", Format: "text", SHA256: "x", Status: ragpipe.DocProcessing}
		d.RawKey = ragpipe.RawKey(tenant, d.ID)
		j := &ragpipe.Job{ID: uuid.NewString(), TenantID: tenant, DocumentID: d.ID, Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract, ChunkSize: 1000}
		if _, err := db.CreateDocument(ctx, d, j, ragpipe.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := db.FinishJob(ctx, j.ID, chunks, vecs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
