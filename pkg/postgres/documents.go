package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// CreateDocument records a new document, its first job (which waits for the
// dispatcher), its callback and its idempotency record in one transaction.
// With opts.Dedupe, an existing copy of the same bytes in the same
// collection is returned instead (and nothing is written).
func (db *DB) CreateDocument(ctx context.Context, d *ragpipe.Document, j *ragpipe.Job, opts ragpipe.CreateOptions) (existing *ragpipe.Document, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if opts.Dedupe {
			// Serialise uploads of the same bytes so two at once make one document.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
				d.TenantID+"/"+d.Collection+"/"+d.SHA256); err != nil {
				return err
			}
			e, err := scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents
				WHERE tenant_id = $1 AND collection = $2 AND sha256 = $3 AND status <> 'deleting'
				ORDER BY created_at LIMIT 1`, d.TenantID, d.Collection, d.SHA256))
			if err == nil {
				existing = e
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		err := tx.QueryRow(ctx, `INSERT INTO documents
			(id, tenant_id, collection, filename, format, size_bytes, sha256, metadata, status, raw_key, last_job_id, language)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::regconfig)
			RETURNING created_at, updated_at, language::text`,
			d.ID, d.TenantID, d.Collection, d.Filename, d.Format, d.SizeBytes, d.SHA256,
			metadataOrEmpty(d.Metadata), d.Status, d.RawKey, j.ID, languageOrDefault(d.Language)).Scan(&d.CreatedAt, &d.UpdatedAt, &d.Language)
		if err != nil {
			return fmt.Errorf("insert document: %w", err)
		}
		d.LastJobID = j.ID
		// Before the job, whose events must all reach the callback.
		if opts.Callback != nil {
			if err := insertCallback(ctx, tx, d, *opts.Callback); err != nil {
				return err
			}
		}
		if err := db.insertJob(ctx, tx, j); err != nil {
			return err
		}
		if opts.Idempotency != nil {
			return insertIdempotency(ctx, tx, d.TenantID, opts.Idempotency, d, j)
		}
		return nil
	})
	return existing, err
}

// insertJob records a queued job and its first event; the dispatcher finds
// it on its next round.
func (db *DB) insertJob(ctx context.Context, tx pgx.Tx, j *ragpipe.Job) error {
	if j.Kind == "" {
		j.Kind = ragpipe.JobIngest
	}
	err := tx.QueryRow(ctx, `INSERT INTO jobs
		(id, tenant_id, document_id, status, stage, request_id, chunk_size, chunk_overlap, kind, trace_context)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		RETURNING created_at, updated_at`,
		j.ID, j.TenantID, j.DocumentID, j.Status, j.Stage, j.RequestID, j.ChunkSize, j.ChunkOverlap, j.Kind, j.Trace).
		Scan(&j.CreatedAt, &j.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	return db.appendEvent(ctx, tx, j, ragpipe.JobQueuedEvent, nil)
}

// insertCallback records the callback URL of document d, and gives its
// tenant a callback secret (cb.NewSecret) if it has none.
func insertCallback(ctx context.Context, tx pgx.Tx, d *ragpipe.Document, cb ragpipe.Callback) error {
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_callback_secrets (tenant_id, secret) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, d.TenantID, cb.NewSecret); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO document_callbacks (document_id, tenant_id, url) VALUES ($1, $2, $3)
		ON CONFLICT (document_id) DO UPDATE SET url = excluded.url`, d.ID, d.TenantID, cb.URL)
	return err
}

func languageOrDefault(l string) string {
	if l == "" {
		return ragpipe.DefaultLanguage
	}
	return l
}

func metadataOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage(`{}`)
	}
	return m
}

const documentColumns = `id, tenant_id, collection, filename, format, size_bytes, sha256, metadata,
	status, pages, chunk_count, raw_key, coalesce(last_job_id::text, ''), created_at, updated_at, language::text`

func scanDocument(row pgx.Row) (*ragpipe.Document, error) {
	var d ragpipe.Document
	err := row.Scan(&d.ID, &d.TenantID, &d.Collection, &d.Filename, &d.Format, &d.SizeBytes, &d.SHA256,
		&d.Metadata, &d.Status, &d.Pages, &d.ChunkCount, &d.RawKey, &d.LastJobID, &d.CreatedAt, &d.UpdatedAt, &d.Language)
	return &d, err
}

// Document returns the tenant's document with this ID.
func (db *DB) Document(ctx context.Context, tenantID, id string) (*ragpipe.Document, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "document not found")
	}
	var d *ragpipe.Document
	err := db.read(ctx, func(conn querier) error {
		var err error
		d, err = scanDocument(conn.QueryRow(ctx, `SELECT `+documentColumns+`
			FROM documents WHERE tenant_id = $1 AND id = $2`, tenantID, id))
		return err
	})
	return d, notFound(err, "document")
}

// Documents lists the tenant's documents, newest first, limit at a time.
// cursor is empty for the first page, else the next cursor of the page before.
func (db *DB) Documents(ctx context.Context, tenantID string, f ragpipe.DocumentFilter, cursor string, limit int) ([]*ragpipe.Document, string, error) {
	args := []any{tenantID, limit + 1}
	where := []string{"tenant_id = $1"}
	if f.Collection != "" {
		args = append(args, f.Collection)
		where = append(where, fmt.Sprintf("collection = $%d", len(args)))
	}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(created_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	var docs []*ragpipe.Document
	err := db.read(ctx, func(conn querier) error {
		docs = nil
		rows, err := conn.Query(ctx, `SELECT `+documentColumns+` FROM documents
			WHERE `+strings.Join(where, " AND ")+` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDocument(rows)
			if err != nil {
				return err
			}
			docs = append(docs, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := docs[limit-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return docs, next, nil
}

// Chunks lists a tenant's document's chunks in order, starting after the
// chunk index after (-1 for the start), limit at a time.
func (db *DB) Chunks(ctx context.Context, tenantID, documentID string, after, limit int) ([]ragpipe.Chunk, error) {
	var out []ragpipe.Chunk
	err := db.read(ctx, func(conn querier) error {
		rows, err := conn.Query(ctx, `SELECT document_id, chunk_index, text, page_start, page_end, section, ocr
			FROM chunks WHERE tenant_id = $1 AND document_id = $2 AND chunk_index > $3
			ORDER BY chunk_index LIMIT $4`, tenantID, documentID, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.Chunk, error) {
			var c ragpipe.Chunk
			err := r.Scan(&c.DocumentID, &c.Index, &c.Text, &c.PageStart, &c.PageEnd, &c.Section, &c.OCR)
			return c, err
		})
		return err
	})
	return out, err
}

// validUUID reports whether s is a UUID in its canonical 36-character form, so
// malformed IDs are a not-found rather than a database error.
func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}
