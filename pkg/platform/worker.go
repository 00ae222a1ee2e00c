package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/pipeline"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// relayInterval is how often the worker moves outbox rows to the queue; rows
// younger than relayMinAge are left to the API, which enqueues them itself.
// dispatchInterval is how often waiting jobs are handed to the queue.
const (
	relayInterval    = time.Second
	relayMinAge      = 2 * time.Second
	dispatchInterval = 100 * time.Millisecond
	// minGap is the least time between two dispatches that ending tasks
	// asked for, so a busy worker does not dispatch after every task.
	minGap         = 10 * time.Millisecond
	idempotencyTTL = 24 * time.Hour
	// dispatchPerSlot is how many jobs the dispatcher keeps in flight per
	// worker slot: one running and one waiting in the queue keeps every slot
	// busy through the hand-offs between stages.
	dispatchPerSlot = 2
	// inlineText is the most text of a document that its extract task
	// chunks, embeds and stores itself (pipeline.Params.InlineText): about
	// 8,000 tokens, a page or two of dense text.
	inlineText = 32 << 10
	// reembedSlice is how long one re-embedding task runs before it hands
	// over to its successor (within the task's 5-minute timeout).
	reembedSlice = time.Minute
)

// Worker is the pipeline worker process.
type Worker struct {
	cfg    config.Config
	log    *slog.Logger
	db     *postgres.DB
	rdb    redis.UniversalClient  // provider rate limits and the health check before locked rounds
	space  ragpipe.EmbeddingSpace // the configured one, which chunks are embedded into
	queue  *queue.Client
	srv    *asynq.Server // nil when the worker takes neither pipeline class
	mux    *asynq.ServeMux
	hooks  *webhookRunner // nil when it takes no webhooks
	keeper *queue.Keeper
	// capacity counts the workers' slots, which the dispatcher fills.
	capacity *queue.Capacity
	// ended receives (without blocking) when a task of this worker ends.
	ended  chan struct{}
	reaper *pipeline.Reaper
}

// NewWorker connects to every dependency and, for a worker that extracts,
// checks the extraction tools.
func NewWorker(ctx context.Context, cfg config.Config, log *slog.Logger) (*Worker, error) {
	ocr := map[string]extract.OCRMode{"auto": extract.OCRAuto, "on": extract.OCROn, "off": extract.OCROff}[cfg.OCR]
	ex := extract.New(extract.Limits{Timeout: cfg.ExtractTimeout, MaxMemoryBytes: cfg.ExtractMaxMemory, MaxPages: cfg.ExtractMaxPages,
		MaxTextBytes: cfg.ExtractMaxText},
		extract.WithOCR(ocr), extract.WithOCRLanguage(cfg.OCRLanguage), extract.WithTempDir(cfg.TempDir),
		extract.WithParallel(cfg.WorkerConcurrency))
	if cfg.WorkerTakes(ragpipe.QueueExtract) {
		if err := ex.Check(); err != nil {
			return nil, err
		}
	}
	rdb := newRedis(cfg, log)
	db, space, err := openDB(ctx, cfg, cfg.AutoMigrate)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	spaces := newSpaces(cfg, rdb, db)
	emb, err := spaces.passages(space)
	if err != nil {
		db.Close()
		rdb.Close()
		return nil, err
	}
	w := &Worker{cfg: cfg, log: log, db: db, rdb: rdb, queue: queue.NewClient(redisOpt(cfg)), space: space}
	pl := pipeline.New(pipeline.Params{
		Store: db, Blobs: newBlobs(cfg), Extractor: ex, Embedder: emb, Space: space.ID, Queue: w.queue,
		Logger: log, BatchSize: cfg.EmbedBatchSize, InlineText: inlineText, TempDir: cfg.TempDir,
		MemoryBudget: cfg.WorkerMemoryLimit / 2,
	})
	w.ended = make(chan struct{}, 1)
	handlers := pl.Handlers()
	for typ, h := range handlers {
		// A task's end may free a slot of its tenant's share: dispatch at
		// once rather than at the next tick.
		handlers[typ] = func(ctx context.Context, t ragpipe.TaskRun) error {
			defer w.nudge()
			return h(ctx, t)
		}
	}
	handlers[ragpipe.TaskReembed] = (&pipeline.Reembedder{Store: db, Embedders: spaces.passages, Queue: w.queue,
		Logger: log.With("component", "reembed"), BatchSize: cfg.EmbedBatchSize, Slice: reembedSlice}).Handle
	w.mux = queue.NewMux(handlers)
	w.keeper = queue.NewKeeper(redisOpt(cfg), w.queue)
	w.capacity = queue.NewCapacity(redisOpt(cfg))
	w.reaper = &pipeline.Reaper{Store: db, Tasks: w.keeper, Logger: log, StaleAge: cfg.ReaperStaleAfter}
	if cfg.WorkerTakes(ragpipe.QueueWebhooks) {
		w.hooks = newWebhookRunner(cfg, log, db)
	}
	queues := pipelineQueues(cfg)
	if len(queues) == 0 {
		return w, nil
	}
	w.srv = asynq.NewServer(redisOpt(cfg), asynq.Config{
		Concurrency:     cfg.WorkerConcurrency,
		Queues:          queues,
		RetryDelayFunc:  queue.RetryDelayFunc(queue.RetryDelay),
		ErrorHandler:    queue.ErrorHandler(pl.HandleError),
		ShutdownTimeout: cfg.ShutdownGrace,
		// Each stage enqueues the next; a short idle poll keeps the hand-off
		// fast (Asynq's default is 1s per stage) at ~20 Redis calls/s per idle worker.
		TaskCheckInterval: 50 * time.Millisecond,
		Logger:            asynqLogger{log.With("component", "asynq")},
		LogLevel:          asynq.WarnLevel,
	})
	return w, nil
}

// pipelineQueues are the pipeline queues the worker takes, with their
// weights: an embed task finishes a job already under way, so it goes
// before an extract task that starts one. A worker of either class also
// drains what an older release left in the ingest queue.
func pipelineQueues(cfg config.Config) map[string]int {
	queues := map[string]int{}
	if cfg.WorkerTakes(ragpipe.QueueExtract) {
		queues[ragpipe.QueueExtract] = 2
	}
	if cfg.WorkerTakes(ragpipe.QueueEmbed) {
		queues[ragpipe.QueueEmbed] = 3
	}
	if len(queues) > 0 {
		queues[ragpipe.QueueIngest] = 1
	}
	return queues
}

// Run processes tasks until ctx ends, then stops taking new tasks and gives
// running ones the shutdown grace period before handing them back to the queue.
func (w *Worker) Run(ctx context.Context) error {
	if w.srv != nil {
		if err := w.srv.Start(w.mux); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
	}
	if w.hooks != nil {
		if err := w.hooks.start(); err != nil {
			w.shutdownServers()
			return fmt.Errorf("start webhook worker: %w", err)
		}
	}
	w.log.Info("worker running", "queues", w.cfg.WorkerQueues, "concurrency", w.cfg.WorkerConcurrency)
	w.startReembeds(ctx)
	// The loops end with ctx, before the servers drain.
	var wg sync.WaitGroup
	wg.Go(func() { w.every(ctx, "outbox relay", relayInterval, nil, w.relay) })
	wg.Go(func() { w.every(ctx, "dispatch", dispatchInterval, w.ended, w.dispatch) })
	wg.Go(func() { w.every(ctx, "reaper", w.cfg.ReaperInterval, nil, w.reap) })
	wg.Go(func() { w.every(ctx, "webhook relay", webhookRelayInterval, nil, w.relayWebhooks) })
	wg.Go(func() { w.every(ctx, "vector indexes", vectorIndexInterval, nil, w.buildVectorIndexes) })
	<-ctx.Done()
	w.log.Info("worker shutting down", "grace", w.cfg.ShutdownGrace)
	wg.Wait()
	w.shutdownServers()
	return nil
}

// shutdownServers drains the pipeline and webhook servers at once, so
// shutdown takes one grace period, not two.
func (w *Worker) shutdownServers() {
	var sd sync.WaitGroup
	if w.srv != nil {
		sd.Go(w.srv.Shutdown)
	}
	if w.hooks != nil {
		sd.Go(w.hooks.shutdown)
	}
	sd.Wait()
}

// nudge tells the dispatcher that a task ended.
func (w *Worker) nudge() {
	select {
	case w.ended <- struct{}{}:
	default:
	}
}

// startReembeds begins re-embedding every tenant whose chunks are in
// another space than the configured one; the reaper keeps the tasks going.
func (w *Worker) startReembeds(ctx context.Context) {
	tasks, err := w.db.StartReembeds(ctx, w.space.ID)
	if err != nil {
		w.log.Error("could not start re-embedding into the configured embedding space", "err", err)
		return
	}
	for _, t := range tasks {
		if err := w.queue.Enqueue(ctx, t); err != nil {
			w.log.Warn("could not enqueue re-embedding; the reaper will", "task", t.ID, "err", err)
		}
	}
	if len(tasks) > 0 {
		w.log.Info("re-embedding into the configured embedding space", "tenants", len(tasks),
			"provider", w.space.Provider, "model", w.space.Model, "dimensions", w.space.Dimensions)
	}
}

// relay moves tasks the API recorded but could not enqueue (Redis down, a
// crash after commit) from the outbox to the queue.
func (w *Worker) relay(ctx context.Context) error {
	n, err := w.db.RelayOutbox(ctx, relayMinAge, 100, w.queue.Enqueue)
	if n > 0 {
		w.log.Info("outbox relay enqueued tasks", "count", n)
	}
	return err
}

// vectorIndexInterval is how often a worker looks for tenants grown past
// RAGPIPE_VECTOR_INDEX_MIN_CHUNKS without an HNSW index of their own.
const vectorIndexInterval = 5 * time.Second

// buildVectorIndexes builds the HNSW indexes tenants are due, one at a time
// across the workers; an index build ended by shutdown is left half-built
// and built anew by the next round.
func (w *Worker) buildVectorIndexes(ctx context.Context) error {
	start := time.Now()
	n, err := w.db.BuildVectorIndexes(ctx, w.cfg.VectorIndexMinChunks)
	if n > 0 {
		w.log.Info("built tenants' vector indexes", "count", n, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// every runs fn each interval, and after a send on kick (at most every
// minGap; a nil kick never sends), until ctx ends, logging its failures.
func (w *Worker) every(ctx context.Context, name string, interval time.Duration, kick <-chan struct{}, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn(name+" failed", "err", err)
		}
		if kick != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(minGap):
			}
		}
	}
}

// redisReachable fails when Redis does not answer a PING within a second.
// The dispatcher and the reaper ask it before taking their cluster-wide
// lock: a worker cut off from Redis but not from Postgres would otherwise
// keep taking the lock for rounds that can only fail, and hold up the
// workers that could do the work.
func (w *Worker) redisReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable, leaving the round to other workers: %w", err)
	}
	return nil
}

// dispatch hands waiting jobs to the queue, a few per tenant at a time.
func (w *Worker) dispatch(ctx context.Context) error {
	if err := w.redisReachable(ctx); err != nil {
		return err
	}
	slots, err := w.capacity.Slots()
	if err != nil || slots == 0 {
		slots = w.cfg.WorkerConcurrency // this worker, before its first heartbeat
	}
	_, err = pipeline.Dispatch(ctx, w.db, w.queue, w.cfg.TenantMaxInflight, dispatchPerSlot*slots, 500)
	return err
}

// reap re-enqueues the tasks of jobs that lost them, and forgets old
// idempotency records.
func (w *Worker) reap(ctx context.Context) error {
	if err := w.redisReachable(ctx); err != nil {
		return err
	}
	// One reaper at a time across all workers.
	_, err := w.db.Exclusively(ctx, reaperLock, func(ctx context.Context) error {
		if _, err := w.reaper.Sweep(ctx); err != nil {
			return err
		}
		return w.db.ExpireIdempotencyKeys(ctx, idempotencyTTL)
	})
	return err
}

// reaperLock is the advisory lock key the reaper holds while it sweeps.
const reaperLock = 0x7261677069706532 // "ragpipe2"

// Close releases the worker's connections. Call it after Run returns.
func (w *Worker) Close() {
	w.rdb.Close()
	w.keeper.Close()
	w.capacity.Close()
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
