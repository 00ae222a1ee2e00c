package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicaPoll is how often a read waiting for the replica to catch up asks
// again; replicaRest is how long a replica that failed a read, or stayed
// behind past the lag bound, is left alone before reads try it again.
const (
	replicaPoll = 2 * time.Millisecond
	replicaRest = time.Second
)

// querier is what a read needs of a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// replica is a streaming replica that reads may go to.
type replica struct {
	pool   *pgxpool.Pool
	maxLag time.Duration

	mu        sync.Mutex
	restUntil time.Time

	reads, fallbacks atomic.Int64
}

// UseReplica sends the reads that allow it (search, collections, document,
// chunk and job listings) to the streaming replica at url, each only when
// the replica has replayed everything the primary had committed when the
// read began: a read waits up to maxLag for that, then goes to the primary,
// as it does while the replica is down. So a client that saw its document
// ready finds it at once, whichever server answers.
func (db *DB) UseReplica(ctx context.Context, url string, maxLag time.Duration) error {
	pool, err := newPool(ctx, url)
	if err != nil {
		return fmt.Errorf("read replica: %w", err)
	}
	// A replica that is down now is tried again later; a server that
	// answers must be a standby, or every read would wait for nothing.
	var standby bool
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err == nil && !standby {
		pool.Close()
		return fmt.Errorf("read replica: the server at RAGPIPE_DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false)")
	}
	db.replica = &replica{pool: pool, maxLag: maxLag}
	return nil
}

// ReplicaReads returns how many reads the replica answered and how many it
// left to the primary (down, or behind past the lag bound).
func (db *DB) ReplicaReads() (replica, primary int64) {
	if db.replica == nil {
		return 0, 0
	}
	return db.replica.reads.Load(), db.replica.fallbacks.Load()
}

// read runs fn on the replica when it is caught up with the primary, else
// on the primary; a replica that fails fn for want of a connection is
// rested and fn runs again on the primary.
func (db *DB) read(ctx context.Context, fn func(q querier) error) error {
	r := db.replica
	if r == nil {
		return fn(db.pool)
	}
	conn := r.caughtUp(ctx, db.pool)
	if conn == nil {
		r.fallbacks.Add(1)
		return fn(db.pool)
	}
	err := fn(conn)
	conn.Release()
	if err != nil && IsUnavailable(err) && ctx.Err() == nil {
		r.rest()
		r.fallbacks.Add(1)
		return fn(db.pool)
	}
	r.reads.Add(1)
	return err
}

// caughtUp returns a connection to the replica once the server it reaches
// has replayed the primary's WAL up to where it is now, waiting up to the
// lag bound for it, or nil. The read runs on that very connection, so it is
// as fresh even with several replicas behind one address.
func (r *replica) caughtUp(ctx context.Context, primary *pgxpool.Pool) *pgxpool.Conn {
	r.mu.Lock()
	resting := time.Now().Before(r.restUntil)
	r.mu.Unlock()
	if resting {
		return nil
	}
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return nil // the read itself reports the primary's failure
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		r.rest()
		return nil
	}
	deadline := time.Now().Add(r.maxLag)
	for {
		var replayed bool
		err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&replayed)
		switch {
		case err == nil && replayed:
			return conn
		case err != nil || time.Now().After(deadline):
			conn.Release()
			r.rest()
			return nil
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil
		case <-time.After(replicaPoll):
		}
	}
}

func (r *replica) rest() {
	r.mu.Lock()
	r.restUntil = time.Now().Add(replicaRest)
	r.mu.Unlock()
}
