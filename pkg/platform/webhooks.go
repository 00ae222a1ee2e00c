package platform

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// webhookRelayInterval is how often a worker looks for new webhook events in
// the outbox: the bulk of the delivery latency after a document is ready.
const webhookRelayInterval = 200 * time.Millisecond

// webhookRunner delivers webhooks. It has its own Asynq server on the
// webhooks queue, with its own concurrency, so subscribers that hang until
// the timeout never take the pipeline's workers.
type webhookRunner struct {
	srv *asynq.Server
	mux *asynq.ServeMux
}

func newWebhookGuard(cfg config.Config) *webhook.Guard {
	return webhook.NewGuard(cfg.WebhookAllowHTTP, cfg.WebhookAllowPrivate)
}

func newWebhookRunner(cfg config.Config, log *slog.Logger, db *postgres.DB) *webhookRunner {
	log = log.With("component", "webhooks")
	d := webhook.NewDeliverer(webhook.Params{
		Store:        db,
		Client:       webhook.NewClient(newWebhookGuard(cfg), cfg.WebhookTimeout),
		Schedule:     cfg.WebhookRetrySchedule,
		DisableAfter: cfg.WebhookDisableAfter,
		Logger:       log,
	})
	r := &webhookRunner{mux: queue.NewMux(d.Handlers())}
	// Retries are due no sooner than the schedule's first step; checking for
	// due ones at a quarter of it (within 0.1-1s) keeps them on time.
	check := min(max(cfg.WebhookRetrySchedule[0]/4, 100*time.Millisecond), time.Second)
	r.srv = asynq.NewServer(redisOpt(cfg), asynq.Config{
		Concurrency:              cfg.WebhookConcurrency,
		Queues:                   map[string]int{ragpipe.QueueWebhooks: 1},
		RetryDelayFunc:           queue.RetryDelayFunc(d.RetryDelay),
		ShutdownTimeout:          cfg.ShutdownGrace,
		TaskCheckInterval:        200 * time.Millisecond,
		DelayedTaskCheckInterval: check,
		Logger:                   asynqLogger{log},
		LogLevel:                 asynq.ErrorLevel, // failed attempts are recorded, not logged
	})
	return r
}

func (r *webhookRunner) start() error { return r.srv.Start(r.mux) }

// shutdown stops taking deliveries and waits for those running (each bounded
// by the attempt timeout) within the shutdown grace.
func (r *webhookRunner) shutdown() { r.srv.Shutdown() }

// relayWebhooks moves new webhook tasks from the outbox to the queue, 200
// at a time until none is left. Every worker relays, whatever it takes.
func (w *Worker) relayWebhooks(ctx context.Context) error {
	for {
		n, err := w.db.RelayWebhooks(ctx, 200, w.queue.Enqueue)
		if err != nil || n < 200 {
			return err
		}
	}
}
