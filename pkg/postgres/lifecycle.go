package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

func insertIdempotency(ctx context.Context, tx pgx.Tx, tenantID string, r *ragpipe.IdempotencyRecord, d *ragpipe.Document, j *ragpipe.Job) error {
	body, err := r.Body(d, j)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, body)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, tenantID, r.Key, r.Fingerprint, r.Status, body)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ragpipe.ErrIdempotencyConflict
	}
	r.RawBody = body
	return nil
}

// IdempotentResponse returns the answer recorded for the tenant's key, or nil.
func (db *DB) IdempotentResponse(ctx context.Context, tenantID, key string) (*ragpipe.IdempotencyRecord, error) {
	r := &ragpipe.IdempotencyRecord{Key: key}
	err := db.pool.QueryRow(ctx, `SELECT fingerprint, status_code, body FROM idempotency_keys
		WHERE tenant_id = $1 AND key = $2`, tenantID, key).Scan(&r.Fingerprint, &r.Status, &r.RawBody)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

// ExpireIdempotencyKeys forgets answers older than age.
func (db *DB) ExpireIdempotencyKeys(ctx context.Context, age time.Duration) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval`, age)
	return err
}

// QueuedJobs counts jobs accepted but not yet started, for backpressure.
func (db *DB) QueuedJobs(ctx context.Context) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE status = 'queued'`).Scan(&n)
	return n, err
}

// dispatchLock is the advisory lock key held by the one dispatcher at work.
const dispatchLock = 0x7261677069706531 // "ragpipe1"

// DispatchQueued hands waiting jobs to send (which enqueues their first
// task, given the payload of the job's tasks: its IDs and trace context),
// fairly across tenants and without leaving capacity idle: each round
// takes the oldest waiting job of every tenant below its share, tenants with
// the fewest jobs in flight first. A tenant's share is perTenant, or its
// fair part of capacity (the jobs the workers can hold in flight) when that
// is more: a tenant alone gets all of capacity, and tenants waiting side by
// side split it evenly. Past capacity only tenants below perTenant get more,
// so a newcomer's document never waits for another tenant's flood. It stops
// after limit jobs. Only one caller across all processes dispatches at a
// time; the others return at once.
func (db *DB) DispatchQueued(ctx context.Context, perTenant, capacity, limit int, send func(ctx context.Context, p ragpipe.TaskPayload) error) (int, error) {
	sent := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(dispatchLock)).Scan(&locked); err != nil || !locked {
			return err
		}
		for sent < limit {
			rows, err := tx.Query(ctx, `WITH inflight AS (
					SELECT tenant_id, count(*) AS n FROM jobs
					WHERE dispatched_at IS NOT NULL AND status IN ('queued', 'running') GROUP BY tenant_id
				), heads AS (
					SELECT DISTINCT ON (tenant_id) id, tenant_id, request_id, trace_context, created_at FROM jobs
					WHERE dispatched_at IS NULL AND status = 'queued'
					ORDER BY tenant_id, created_at, id
				), load AS (
					SELECT (SELECT coalesce(sum(n), 0) FROM inflight) AS total,
						(SELECT count(*) FROM (SELECT tenant_id FROM inflight UNION SELECT tenant_id FROM heads) t) AS tenants
				)
				SELECT h.id, h.request_id, h.trace_context FROM heads h LEFT JOIN inflight i USING (tenant_id), load l
				WHERE coalesce(i.n, 0) < $1
					OR (l.total < $3 AND coalesce(i.n, 0) < ceil($3::float8 / greatest(l.tenants, 1)))
				ORDER BY coalesce(i.n, 0), h.created_at LIMIT $2`, perTenant, limit-sent, capacity)
			if err != nil {
				return err
			}
			heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.TaskPayload, error) {
				var p ragpipe.TaskPayload
				return p, r.Scan(&p.JobID, &p.RequestID, &p.Trace)
			})
			if err != nil {
				return err
			}
			if len(heads) == 0 {
				return nil
			}
			ids := make([]string, 0, len(heads))
			for _, p := range heads {
				if err := send(ctx, p); err != nil {
					return err
				}
				ids = append(ids, p.JobID)
			}
			if _, err := tx.Exec(ctx, `UPDATE jobs SET dispatched_at = now(), updated_at = now() WHERE id = ANY($1::uuid[])`, ids); err != nil {
				return err
			}
			sent += len(ids)
		}
		return nil
	})
	return sent, err
}

// CancelJob ends the tenant's unfinished job as canceled. Work in flight
// stops at its next stage boundary: every stage checks the job first, and the
// final upsert writes nothing for a canceled job.
func (db *DB) CancelJob(ctx context.Context, tenantID, jobID string) (*ragpipe.Job, error) {
	if !validUUID(jobID) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "job not found")
	}
	var out *ragpipe.Job
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, jobID, tenantID))
		if err != nil {
			return notFound(err, "job")
		}
		if j.Terminal() {
			return ragpipe.Errorf(ragpipe.ECONFLICT, "job already %s", j.Status)
		}
		if err := db.cancelLocked(ctx, tx, j, "canceled by request", true); err != nil {
			return err
		}
		out, err = scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, jobID))
		return err
	})
	return out, err
}

// cancelLocked cancels j, whose row the caller has locked. A document that
// had never been ready becomes failed; with announce, subscribers get
// document.failed for it.
func (db *DB) cancelLocked(ctx context.Context, tx pgx.Tx, j *ragpipe.Job, reason string, announce bool) error {
	j.Status = ragpipe.JobCanceled
	if _, err := tx.Exec(ctx, `UPDATE jobs SET status = 'canceled', finished_at = now(), updated_at = now()
		WHERE id = $1`, j.ID); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE documents SET status = 'failed', updated_at = now()
		WHERE id = $1 AND status = 'processing'`, j.DocumentID)
	if err != nil {
		return err
	}
	if err := db.appendEvent(ctx, tx, j, ragpipe.JobCanceledEvent, map[string]any{"reason": reason}); err != nil {
		return err
	}
	if announce && tag.RowsAffected() == 1 {
		return db.recordEvent(ctx, tx, ragpipe.EventDocumentFailed, j.TenantID, j.DocumentID, j, nil)
	}
	return nil
}

// lockDocument reads the tenant's document inside tx and holds its row lock
// until tx ends.
func lockDocument(ctx context.Context, tx pgx.Tx, tenantID, documentID string) (*ragpipe.Document, error) {
	if !validUUID(documentID) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "document not found")
	}
	d, err := scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, documentID, tenantID))
	return d, notFound(err, "document")
}

// Reingest starts a new job over the tenant's document, with j's chunking
// settings. The document keeps serving its current chunks until the new job
// replaces them in one transaction. A document with a job still running, or
// being deleted, is a conflict.
func (db *DB) Reingest(ctx context.Context, tenantID, documentID string, j *ragpipe.Job) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		d, err := lockDocument(ctx, tx, tenantID, documentID)
		if err != nil {
			return err
		}
		if d.Status == ragpipe.DocDeleting {
			return ragpipe.Errorf(ragpipe.ENOTFOUND, "document not found")
		}
		var busy bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE document_id = $1
			AND status IN ('queued', 'running'))`, documentID).Scan(&busy); err != nil {
			return err
		}
		if busy {
			return ragpipe.Errorf(ragpipe.ECONFLICT, "the document has a job in progress; cancel it or wait for it to end")
		}
		j.TenantID, j.DocumentID, j.Kind = tenantID, documentID, ragpipe.JobReingest
		if err := db.insertJob(ctx, tx, j); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE documents SET last_job_id = $2,
			status = CASE WHEN status = 'failed' THEN 'processing' ELSE status END, updated_at = now()
			WHERE id = $1`, documentID, j.ID)
		return err
	})
}

// DeleteDocument marks the tenant's document deleting, removes its chunks so
// no search shows it from now on, cancels its unfinished jobs, and records
// the task that removes its objects and rows. Deleting twice is harmless.
func (db *DB) DeleteDocument(ctx context.Context, tenantID, documentID string, t ragpipe.Task) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		d, err := lockDocument(ctx, tx, tenantID, documentID)
		if err != nil {
			return err
		}
		if d.Status == ragpipe.DocDeleting {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE document_id = $1
			AND status IN ('queued', 'running') FOR UPDATE`, documentID)
		if err != nil {
			return err
		}
		jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragpipe.Job, error) { return scanJob(r) })
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := db.cancelLocked(ctx, tx, j, "document deleted", false); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE document_id = $1`, documentID); err != nil {
			return err
		}
		if err := reindexTerms(ctx, tx, tenantID, documentID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE documents SET status = 'deleting', chunk_count = 0, updated_at = now()
			WHERE id = $1`, documentID); err != nil {
			return err
		}
		if err := db.recordDocumentDeleted(ctx, tx, d); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, t)
	})
}

// PurgeDocument removes a deleting document's rows (its jobs, events and
// chunks go with it). It returns the document's tenant, or "" if the
// document is already gone.
func (db *DB) PurgeDocument(ctx context.Context, documentID string) (tenantID string, err error) {
	err = db.pool.QueryRow(ctx, `DELETE FROM documents WHERE id = $1 AND status = 'deleting' RETURNING tenant_id`,
		documentID).Scan(&tenantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return tenantID, err
}

// DeletingDocument returns the tenant of a document being deleted, or
// ENOTFOUND if there is no such document.
func (db *DB) DeletingDocument(ctx context.Context, documentID string) (string, error) {
	var tenantID string
	err := db.pool.QueryRow(ctx, `SELECT tenant_id FROM documents WHERE id = $1 AND status = 'deleting'`, documentID).Scan(&tenantID)
	return tenantID, notFound(err, "document")
}

// StaleJobs returns dispatched, unfinished jobs not updated for at least
// age, oldest first, limit at a time: candidates for the reaper. after is
// the last job of the page before (nil for the first page).
func (db *DB) StaleJobs(ctx context.Context, age time.Duration, after *ragpipe.Job, limit int) ([]*ragpipe.Job, error) {
	at, id := time.Time{}, "00000000-0000-0000-0000-000000000000"
	if after != nil {
		at, id = after.UpdatedAt, after.ID
	}
	rows, err := db.pool.Query(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE status IN ('queued', 'running') AND dispatched_at IS NOT NULL
		AND updated_at < now() - $1::interval AND (updated_at, id) > ($2, $3::uuid)
		ORDER BY updated_at, id LIMIT $4`, age, at, id, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragpipe.Job, error) { return scanJob(r) })
}

// PendingBatches lists the job's embed batches not yet done.
func (db *DB) PendingBatches(ctx context.Context, jobID string) ([]int, error) {
	rows, err := db.pool.Query(ctx, `SELECT batch FROM job_batches WHERE job_id = $1 AND done_at IS NULL ORDER BY batch`, jobID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// MarkRecovered records that the reaper re-enqueued the job's tasks, which
// also resets its staleness clock.
func (db *DB) MarkRecovered(ctx context.Context, jobID string, tasks []string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Terminal() {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET updated_at = now() WHERE id = $1`, jobID); err != nil {
			return err
		}
		return db.appendEvent(ctx, tx, j, ragpipe.JobRecoveredEvent, map[string]any{"tasks": tasks})
	})
}

// ReviveJob puts a job that ran out of retries back to running, for an
// operator who retries its archived task. It reports whether it did.
func (db *DB) ReviveJob(ctx context.Context, jobID string) (bool, error) {
	revived := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if j.Status != ragpipe.JobFailed || j.ErrorCode != ragpipe.CodeRetriesSpent {
			return nil
		}
		var docStatus string
		if err := tx.QueryRow(ctx, `SELECT status FROM documents WHERE id = $1 FOR UPDATE`, j.DocumentID).Scan(&docStatus); err != nil {
			return err
		}
		if docStatus == ragpipe.DocDeleting {
			return nil
		}
		j.Status, j.ErrorCode, j.ErrorMessage = ragpipe.JobRunning, "", ""
		if _, err := tx.Exec(ctx, `UPDATE jobs SET status = 'running', error_code = '', error_message = '',
			finished_at = NULL, updated_at = now() WHERE id = $1`, jobID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE documents SET status = 'processing', updated_at = now()
			WHERE id = $1 AND status = 'failed'`, j.DocumentID); err != nil {
			return err
		}
		revived = true
		return db.appendEvent(ctx, tx, j, ragpipe.JobRevivedEvent, nil)
	})
	if err != nil {
		return false, fmt.Errorf("revive job: %w", err)
	}
	return revived, nil
}

// StaleDeliveries returns webhook deliveries still pending and untouched for
// at least age: candidates for the reaper, should their tasks be lost.
func (db *DB) StaleDeliveries(ctx context.Context, age time.Duration, limit int) ([]ragpipe.Task, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM webhook_deliveries
		WHERE status = 'pending' AND updated_at < now() - $1::interval ORDER BY updated_at LIMIT $2`, age, limit)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	tasks := make([]ragpipe.Task, len(ids))
	for i, id := range ids {
		tasks[i] = ragpipe.WebhookTask(id)
	}
	return tasks, nil
}

// StaleDeletions returns documents being deleted for at least age: the
// reaper checks that their cleanup task still exists.
func (db *DB) StaleDeletions(ctx context.Context, age time.Duration, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM documents WHERE status = 'deleting'
		AND updated_at < now() - $1::interval ORDER BY updated_at LIMIT $2`, age, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
