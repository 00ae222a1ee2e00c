package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/pipeline"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
)

// relayInterval is how often the worker moves outbox rows to the queue; rows
// younger than relayMinAge are left to the API, which enqueues them itself.
const (
	relayInterval = time.Second
	relayMinAge   = 2 * time.Second
)

// Worker is the pipeline worker process.
type Worker struct {
	cfg   config.Config
	log   *slog.Logger
	db    *postgres.DB
	queue *queue.Client
	srv   *asynq.Server
	mux   *asynq.ServeMux
}

// NewWorker connects to every dependency and checks the extraction tools.
func NewWorker(ctx context.Context, cfg config.Config, log *slog.Logger) (*Worker, error) {
	ex := extract.New(extract.Limits{Timeout: cfg.ExtractTimeout, MaxMemoryBytes: cfg.ExtractMaxMemory, MaxPages: cfg.ExtractMaxPages})
	if err := ex.Check(); err != nil {
		return nil, err
	}
	emb, err := NewEmbedder(cfg)
	if err != nil {
		return nil, err
	}
	db, err := openDB(ctx, cfg, cfg.AutoMigrate)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: log, db: db, queue: queue.NewClient(redisOpt(cfg)), mux: asynq.NewServeMux()}
	pl := pipeline.New(pipeline.Params{
		Store: db, Blobs: newBlobs(cfg), Extractor: ex, Embedder: emb, Queue: w.queue,
		Logger: log, BatchSize: cfg.EmbedBatchSize,
	})
	pl.Register(w.mux)
	w.srv = asynq.NewServer(redisOpt(cfg), asynq.Config{
		Concurrency:     cfg.WorkerConcurrency,
		Queues:          map[string]int{queue.QueueIngest: 1},
		RetryDelayFunc:  queue.RetryDelay,
		ErrorHandler:    asynq.ErrorHandlerFunc(pl.HandleError),
		ShutdownTimeout: cfg.ShutdownGrace,
		// Each stage enqueues the next; a short idle poll keeps the hand-off
		// fast (Asynq's default is 1s per stage) at ~5 Redis calls/s per idle worker.
		TaskCheckInterval: 200 * time.Millisecond,
		Logger:            asynqLogger{log.With("component", "asynq")},
		LogLevel:          asynq.WarnLevel,
	})
	return w, nil
}

// Run processes tasks until ctx ends, then stops taking new tasks and gives
// running ones the shutdown grace period before handing them back to the queue.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.log.Info("worker running", "concurrency", w.cfg.WorkerConcurrency)
	var wg sync.WaitGroup
	relayCtx, stopRelay := context.WithCancel(ctx)
	wg.Go(func() { w.relay(relayCtx) })
	<-ctx.Done()
	w.log.Info("worker shutting down", "grace", w.cfg.ShutdownGrace)
	stopRelay()
	wg.Wait()
	w.srv.Shutdown()
	return nil
}

// relay moves tasks the API recorded but could not enqueue (Redis down, a
// crash after commit) from the outbox to the queue.
func (w *Worker) relay(ctx context.Context) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := w.db.RelayOutbox(ctx, relayMinAge, 100, func(ctx context.Context, task postgres.OutboxTask) error {
			return w.queue.Enqueue(ctx, task.Type, task.Payload)
		})
		if err != nil && ctx.Err() == nil {
			w.log.Warn("outbox relay", "err", err)
		}
		if n > 0 {
			w.log.Info("outbox relay enqueued tasks", "count", n)
		}
	}
}

// Close releases the worker's connections. Call it after Run returns.
func (w *Worker) Close() {
	w.queue.Close()
	w.db.Close()
}

// asynqLogger sends Asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// Fatal keeps Asynq's contract: the process ends.
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
