package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// insertOutbox records t, to be enqueued once tx commits (by its writer or
// the relay).
func insertOutbox(ctx context.Context, tx pgx.Tx, t ragpipe.Task) error {
	_, err := tx.Exec(ctx, `INSERT INTO outbox (task_type, task_id, payload) VALUES ($1, $2, $3)
		ON CONFLICT (task_id) DO NOTHING`, t.Type, t.ID, t.Payload)
	return err
}

// RelayOutbox hands up to limit unsent tasks older than minAge to send, in
// order, and marks those that send accepts. Rows are locked while sent, so
// several relays can run at once without sending a task twice.
func (db *DB) RelayOutbox(ctx context.Context, minAge time.Duration, limit int, send func(context.Context, ragpipe.Task) error) (int, error) {
	sent := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, task_type, task_id, payload FROM outbox
			WHERE sent_at IS NULL AND created_at <= now() - $1::interval
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, minAge, limit)
		if err != nil {
			return err
		}
		type row struct {
			id int64
			t  ragpipe.Task
		}
		pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.t.Type, &x.t.ID, &x.t.Payload)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, p := range pending {
			if err := send(ctx, p.t); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE id = $1`, p.id); err != nil {
				return err
			}
			sent++
		}
		return nil
	})
	return sent, err
}

// MarkSent records that the task with this ID reached the queue.
func (db *DB) MarkSent(ctx context.Context, taskID string) error {
	_, err := db.pool.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE task_id = $1 AND sent_at IS NULL`, taskID)
	return err
}
