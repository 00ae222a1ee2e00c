package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

const jobColumns = `id, kind, tenant_id, document_id, status, stage, progress, attempts, error_code, error_message,
	request_id, chunk_size, chunk_overlap, total_chunks, embedded_chunks, total_batches,
	created_at, started_at, finished_at, updated_at, trace_context`

func scanJob(row pgx.Row) (*ragpipe.Job, error) {
	var j ragpipe.Job
	err := row.Scan(&j.ID, &j.Kind, &j.TenantID, &j.DocumentID, &j.Status, &j.Stage, &j.Progress, &j.Attempts,
		&j.ErrorCode, &j.ErrorMessage, &j.RequestID, &j.ChunkSize, &j.ChunkOverlap, &j.TotalChunks,
		&j.EmbeddedChunks, &j.TotalBatches, &j.CreatedAt, &j.StartedAt, &j.FinishedAt, &j.UpdatedAt, &j.Trace)
	return &j, err
}

// Job returns the tenant's job with this ID.
func (db *DB) Job(ctx context.Context, tenantID, id string) (*ragpipe.Job, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "job not found")
	}
	var j *ragpipe.Job
	err := db.read(ctx, func(conn querier) error {
		var err error
		j, err = scanJob(conn.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE tenant_id = $1 AND id = $2`, tenantID, id))
		return err
	})
	return j, notFound(err, "job")
}

// JobWithDocument returns a job and its document, whatever their tenant; for
// the workers, whose tasks carry only IDs.
func (db *DB) JobWithDocument(ctx context.Context, jobID string) (*ragpipe.Job, *ragpipe.Document, error) {
	j, err := scanJob(db.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, jobID))
	if err != nil {
		return nil, nil, notFound(err, "job")
	}
	d, err := scanDocument(db.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, j.DocumentID))
	if err != nil {
		return nil, nil, notFound(err, "document")
	}
	return j, d, nil
}

// lockJob reads the job inside tx and holds its row lock until tx ends, so
// concurrent stage transitions of one job happen one at a time.
func lockJob(ctx context.Context, tx pgx.Tx, jobID string) (*ragpipe.Job, error) {
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1 FOR UPDATE`, jobID))
	return j, notFound(err, "job")
}

// BeginStage marks the job running in stage, on its attempt-th try. It returns
// the job as it was; a terminal job is left alone and the caller should stop.
func (db *DB) BeginStage(ctx context.Context, jobID, stage string, attempt int) (*ragpipe.Job, error) {
	var out *ragpipe.Job
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		out = j
		// A redelivered task of an earlier stage must not move the job back.
		if j.Terminal() || ragpipe.StageOrder(j.Stage) > ragpipe.StageOrder(stage) ||
			(j.Status == ragpipe.JobRunning && j.Stage == stage && j.Attempts == attempt) {
			return nil
		}
		changed := j.Stage != stage || j.Status != ragpipe.JobRunning
		if j.Stage != stage {
			j.Progress = 0 // progress is per stage
		}
		j.Status, j.Stage, j.Attempts = ragpipe.JobRunning, stage, attempt
		if _, err := tx.Exec(ctx, `UPDATE jobs SET status = $2, stage = $3, attempts = $4,
			progress = CASE WHEN stage = $3 THEN progress ELSE 0 END,
			started_at = coalesce(started_at, now()), updated_at = now() WHERE id = $1`,
			jobID, j.Status, j.Stage, j.Attempts); err != nil {
			return err
		}
		typ := ragpipe.JobRetryingEvent
		if changed {
			typ = ragpipe.JobStageEvent
		}
		return db.appendEvent(ctx, tx, j, typ, map[string]any{"attempt": attempt})
	})
	return out, err
}

// SetPages records how many pages extraction found.
func (db *DB) SetPages(ctx context.Context, documentID string, pages int) error {
	_, err := db.pool.Exec(ctx, `UPDATE documents SET pages = $2, updated_at = now() WHERE id = $1`, documentID, pages)
	return err
}

// SetProgress records how far the job's current stage has come (0..1) and
// appends a job.progress event. Callers throttle it.
func (db *DB) SetProgress(ctx context.Context, jobID string, progress float64) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Status != ragpipe.JobRunning {
			return err
		}
		j.Progress = progress
		if _, err := tx.Exec(ctx, `UPDATE jobs SET progress = $2, updated_at = now() WHERE id = $1`, jobID, progress); err != nil {
			return err
		}
		return db.appendEvent(ctx, tx, j, ragpipe.JobProgressEvent, nil)
	})
}

// PrepareEmbed records the embed batches of a job (batchSizes[i] chunks in
// batch i) and moves it to the embed stage. Calling it again changes nothing.
func (db *DB) PrepareEmbed(ctx context.Context, jobID string, batchSizes []int) error {
	total := 0
	for _, n := range batchSizes {
		total += n
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Terminal() || j.TotalBatches > 0 {
			return err
		}
		for i, n := range batchSizes {
			if _, err := tx.Exec(ctx, `INSERT INTO job_batches (job_id, batch, chunk_count) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, jobID, i, n); err != nil {
				return err
			}
		}
		j.Stage, j.TotalChunks, j.TotalBatches, j.Progress = ragpipe.StageEmbed, total, len(batchSizes), 0
		if _, err := tx.Exec(ctx, `UPDATE jobs SET stage = $2, total_chunks = $3, total_batches = $4,
			progress = 0, updated_at = now() WHERE id = $1`, jobID, j.Stage, total, len(batchSizes)); err != nil {
			return err
		}
		return db.appendEvent(ctx, tx, j, ragpipe.JobStageEvent, map[string]any{"chunks": total, "batches": len(batchSizes)})
	})
}

// CompleteBatch marks one embed batch done and reports whether every batch of
// the job is now done. Completing a batch twice counts it once.
func (db *DB) CompleteBatch(ctx context.Context, jobID string, batch int) (allDone bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Terminal() {
			return err
		}
		var n int
		err = tx.QueryRow(ctx, `UPDATE job_batches SET done_at = now()
			WHERE job_id = $1 AND batch = $2 AND done_at IS NULL RETURNING chunk_count`, jobID, batch).Scan(&n)
		switch {
		case err == pgx.ErrNoRows:
			// Done before: fall through to the count, so a retried last batch
			// still reports completion.
		case err != nil:
			return err
		default:
			j.EmbeddedChunks += n
			if j.TotalChunks > 0 {
				j.Progress = float64(j.EmbeddedChunks) / float64(j.TotalChunks)
			}
			if _, err := tx.Exec(ctx, `UPDATE jobs SET embedded_chunks = $2, progress = $3, updated_at = now()
				WHERE id = $1`, jobID, j.EmbeddedChunks, j.Progress); err != nil {
				return err
			}
			if err := db.appendEvent(ctx, tx, j, ragpipe.JobProgressEvent, map[string]any{"embedded_chunks": j.EmbeddedChunks}); err != nil {
				return err
			}
		}
		var pending int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM job_batches WHERE job_id = $1 AND done_at IS NULL`, jobID).Scan(&pending); err != nil {
			return err
		}
		allDone = pending == 0
		return nil
	})
	return allDone, err
}

// FinishJob replaces the document's chunks with chunks (vectors[i] belongs to
// chunks[i], in the registered space) in one transaction, marks the document
// ready and the job succeeded. A search sees the old chunks or the new ones,
// never a mix. A job that already ended is left alone and ok is false.
func (db *DB) FinishJob(ctx context.Context, jobID string, chunks []ragpipe.Chunk, vectors [][]float32) (ok bool, err error) {
	if len(chunks) != len(vectors) {
		return false, fmt.Errorf("finish job: %d chunks but %d vectors", len(chunks), len(vectors))
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Terminal() {
			return err
		}
		var collection string
		if err := tx.QueryRow(ctx, `SELECT collection FROM documents WHERE id = $1 FOR UPDATE`, j.DocumentID).Scan(&collection); err != nil {
			return notFound(err, "document")
		}
		// A tenant's first chunks decide the space its searches use. (Its row
		// is locked here only while it has no space, so before it has any
		// chunks, and then nothing else locks it together with chunks.)
		if _, err := tx.Exec(ctx, `WITH t AS (
				UPDATE tenants SET embedding_space_id = $3 WHERE id = $2 AND embedding_space_id IS NULL
			) DELETE FROM chunks WHERE document_id = $1`, j.DocumentID, j.TenantID, db.space); err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"chunks"},
			[]string{"tenant_id", "document_id", "collection", "chunk_index", "text", "page_start", "page_end", "section", "ocr",
				"embedding", "space_id"},
			pgx.CopyFromSlice(len(chunks), func(i int) ([]any, error) {
				c := chunks[i]
				return []any{j.TenantID, j.DocumentID, collection, c.Index, c.Text, c.PageStart, c.PageEnd, c.Section, c.OCR,
					pgvector.NewVector(vectors[i]), db.space}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy chunks: %w", err)
		}
		if err := reindexTerms(ctx, tx, j.TenantID, j.DocumentID); err != nil {
			return err
		}
		j.Status, j.Stage, j.Progress = ragpipe.JobSucceeded, ragpipe.StageUpsert, 1
		j.TotalChunks, j.EmbeddedChunks = len(chunks), len(chunks)
		// Both rows are locked already (lockJob, FOR UPDATE): one statement.
		if _, err := tx.Exec(ctx, `WITH d AS (
				UPDATE documents SET status = 'ready', chunk_count = $3, last_job_id = $1, updated_at = now() WHERE id = $2
			) UPDATE jobs SET status = $4, stage = $5, progress = 1, total_chunks = $3, embedded_chunks = $3,
				finished_at = now(), updated_at = now() WHERE id = $1`,
			jobID, j.DocumentID, len(chunks), j.Status, j.Stage); err != nil {
			return err
		}
		ok = true
		return db.appendEvent(ctx, tx, j, ragpipe.JobSucceededEvent, map[string]any{"chunk_count": len(chunks)})
	})
	return ok, err
}

// FailJob ends the job as failed with a code and message and marks its
// document failed. A job that already ended is left alone.
func (db *DB) FailJob(ctx context.Context, jobID, code, message string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil || j.Terminal() {
			return err
		}
		j.Status, j.ErrorCode, j.ErrorMessage = ragpipe.JobFailed, code, message
		if _, err := tx.Exec(ctx, `UPDATE jobs SET status = $2, error_code = $3, error_message = $4,
			finished_at = now(), updated_at = now() WHERE id = $1`, jobID, j.Status, code, message); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE documents SET status = 'failed', updated_at = now()
			WHERE id = $1 AND status = 'processing'`, j.DocumentID); err != nil {
			return err
		}
		return db.appendEvent(ctx, tx, j, ragpipe.JobFailedEvent, map[string]any{"code": code, "message": message})
	})
}

// appendEvent adds an event to the job's log, records the webhook event it
// announces, and wakes listeners.
func (db *DB) appendEvent(ctx context.Context, tx pgx.Tx, j *ragpipe.Job, typ ragpipe.JobEventType, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	// One round trip: the notification goes out at commit wherever it is sent.
	if _, err := tx.Exec(ctx, `WITH e AS (INSERT INTO job_events (job_id, type, status, stage, progress, data)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING job_id)
		SELECT pg_notify('job_events', job_id::text) FROM e`, j.ID, typ, j.Status, j.Stage, j.Progress, raw); err != nil {
		return fmt.Errorf("append job event: %w", err)
	}
	if err := db.recordWebhookEvent(ctx, tx, j, typ); err != nil {
		return fmt.Errorf("record webhook event: %w", err)
	}
	return nil
}
