package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// ReembedStore walks a tenant's chunks into another embedding space (see
// pkg/postgres's Reembed).
type ReembedStore interface {
	Reembed(ctx context.Context, tenantID string, migration int64, limit int,
		embed func(context.Context, ragpipe.ReembedBatch) ([][]float32, error)) (embedded int, over bool, err error)
}

// Reembedder runs the tasks that re-embed a tenant's chunks when the
// configured embedding space changes. Each task embeds batches for at most
// Slice, every batch committed with the walk's position, then enqueues its
// successor: a crash or a restart repeats at most one batch, and the queue is
// never held by one long task.
type Reembedder struct {
	Store ReembedStore
	// Embedders returns the embedder of chunks in a space, its passage
	// prefix included.
	Embedders func(ragpipe.EmbeddingSpace) (embed.Embedder, error)
	Queue     Enqueuer
	Logger    *slog.Logger
	BatchSize int           // chunks per batch
	Slice     time.Duration // how long one task runs before handing over
}

// Handle runs one TaskReembed.
func (r *Reembedder) Handle(ctx context.Context, t ragpipe.TaskRun) error {
	p, err := ragpipe.DecodeTask(t.Type, t.Payload)
	if err != nil {
		return err
	}
	log := r.Logger.With("tenant_id", p.TenantID, "migration", p.Migration)
	deadline := time.Now().Add(r.Slice)
	for {
		n, over, err := r.Store.Reembed(ctx, p.TenantID, p.Migration, r.BatchSize, r.embed)
		switch {
		case errors.Is(err, ragpipe.ErrPermanent):
			log.Error("re-embedding failed; searches stay on the old embedding space", "err", err)
			return nil
		case err != nil:
			return err
		case over:
			log.Info("re-embedding over", "embedded_chunks", n)
			return nil
		case time.Now().After(deadline):
			log.Debug("re-embedding continues", "embedded_chunks", n)
			return r.Queue.Enqueue(ctx, ragpipe.NewTask(ragpipe.TaskReembed,
				ragpipe.TaskPayload{TenantID: p.TenantID, Migration: p.Migration, Batch: n}))
		}
	}
}

func (r *Reembedder) embed(ctx context.Context, b ragpipe.ReembedBatch) ([][]float32, error) {
	e, err := r.Embedders(b.Target)
	if err != nil {
		return nil, ragpipe.Permanent(err)
	}
	vs, err := e.Embed(ctx, b.Texts)
	if err != nil && embed.IsPermanent(err) {
		return nil, ragpipe.Permanent(err)
	}
	return vs, err
}
