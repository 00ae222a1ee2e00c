package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// JobEvents returns the tenant's job's events with IDs above after, oldest
// first, at most limit.
func (db *DB) JobEvents(ctx context.Context, tenantID, jobID string, after int64, limit int) ([]ragpipe.JobEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT e.id, e.job_id, e.type, e.status, e.stage, e.progress, e.data, e.created_at
		FROM job_events e JOIN jobs j ON j.id = e.job_id
		WHERE j.tenant_id = $1 AND e.job_id = $2 AND e.id > $3 ORDER BY e.id LIMIT $4`, tenantID, jobID, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.JobEvent, error) {
		var e ragpipe.JobEvent
		err := r.Scan(&e.ID, &e.JobID, &e.Type, &e.Status, &e.Stage, &e.Progress, &e.Data, &e.CreatedAt)
		return e, err
	})
}

// Broker fans Postgres notifications of new job events out to the streams
// following those jobs, over one LISTEN connection per process.
type Broker struct {
	listener *pgxlisten.Listener

	mu   sync.Mutex // guards subs
	subs map[string]map[chan struct{}]struct{}
}

// NewBroker returns a Broker for the database at url; Run starts it.
func NewBroker(url string, log *slog.Logger) *Broker {
	b := &Broker{subs: map[string]map[chan struct{}]struct{}{}}
	b.listener = &pgxlisten.Listener{
		Connect:        func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) },
		ReconnectDelay: time.Second,
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				log.Warn("job event listener", "err", err)
			}
		},
	}
	b.listener.Handle("job_events", pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
		b.notify(n.Payload)
		return nil
	}))
	return b
}

// Run listens until ctx ends, reconnecting after failures. Streams also
// re-read on a timer, so events sent while disconnected are not lost.
func (b *Broker) Run(ctx context.Context) {
	_ = b.listener.Listen(ctx) // returns only when ctx ends
}

// Subscribe returns a channel that receives a signal (coalesced) whenever
// the job has new events, and a function to stop.
func (b *Broker) Subscribe(jobID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[jobID] == nil {
		b.subs[jobID] = map[chan struct{}]struct{}{}
	}
	b.subs[jobID][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs[jobID], ch)
		if len(b.subs[jobID]) == 0 {
			delete(b.subs, jobID)
		}
	}
}

func (b *Broker) notify(jobID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[jobID] {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending
		}
	}
}
