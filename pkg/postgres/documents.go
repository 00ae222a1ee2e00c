package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// OutboxTask is a task to enqueue once the transaction that wrote it commits.
type OutboxTask struct {
	Type    string
	ID      string // deterministic task ID: enqueueing it twice is harmless
	Payload []byte
}

// CreateDocument records a new document and its first job, and the task that
// starts the job, in one transaction.
func (db *DB) CreateDocument(ctx context.Context, d *ragpipe.Document, j *ragpipe.Job, t OutboxTask) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO documents
			(id, tenant_id, collection, filename, format, size_bytes, sha256, metadata, status, raw_key, last_job_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			RETURNING created_at, updated_at`,
			d.ID, d.TenantID, d.Collection, d.Filename, d.Format, d.SizeBytes, d.SHA256,
			metadataOrEmpty(d.Metadata), d.Status, d.RawKey, j.ID).Scan(&d.CreatedAt, &d.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert document: %w", err)
		}
		d.LastJobID = j.ID
		err = tx.QueryRow(ctx, `INSERT INTO jobs
			(id, tenant_id, document_id, status, stage, request_id, chunk_size, chunk_overlap)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING created_at, updated_at`,
			j.ID, j.TenantID, j.DocumentID, j.Status, j.Stage, j.RequestID, j.ChunkSize, j.ChunkOverlap).
			Scan(&j.CreatedAt, &j.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		if err := appendEvent(ctx, tx, j, "job.queued", nil); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, t)
	})
}

func metadataOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage(`{}`)
	}
	return m
}

const documentColumns = `id, tenant_id, collection, filename, format, size_bytes, sha256, metadata,
	status, pages, chunk_count, raw_key, coalesce(last_job_id::text, ''), created_at, updated_at`

func scanDocument(row pgx.Row) (*ragpipe.Document, error) {
	var d ragpipe.Document
	err := row.Scan(&d.ID, &d.TenantID, &d.Collection, &d.Filename, &d.Format, &d.SizeBytes, &d.SHA256,
		&d.Metadata, &d.Status, &d.Pages, &d.ChunkCount, &d.RawKey, &d.LastJobID, &d.CreatedAt, &d.UpdatedAt)
	return &d, err
}

// Document returns the tenant's document with this ID.
func (db *DB) Document(ctx context.Context, tenantID, id string) (*ragpipe.Document, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "document not found")
	}
	d, err := scanDocument(db.pool.QueryRow(ctx, `SELECT `+documentColumns+`
		FROM documents WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return d, notFound(err, "document")
}

// DocumentFilter narrows a document listing.
type DocumentFilter struct {
	Collection string
	Status     string
}

// Documents lists the tenant's documents, newest first, limit at a time.
// cursor is empty for the first page, else the next cursor of the page before.
func (db *DB) Documents(ctx context.Context, tenantID string, f DocumentFilter, cursor string, limit int) ([]*ragpipe.Document, string, error) {
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
		at, id, err := decodeDocCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(created_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	rows, err := db.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE `+strings.Join(where, " AND ")+` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var docs []*ragpipe.Document
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, "", err
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := docs[limit-1]
		next = base64.RawURLEncoding.EncodeToString(
			[]byte(last.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID))
	}
	return docs, next, nil
}

func decodeDocCursor(c string) (time.Time, string, error) {
	bad := ragpipe.Errorf(ragpipe.EINVALID, "invalid cursor")
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok || !validUUID(id) {
		return time.Time{}, "", bad
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", bad
	}
	return at, id, nil
}

// Chunks lists a tenant's document's chunks in order, starting after the
// chunk index after (-1 for the start), limit at a time.
func (db *DB) Chunks(ctx context.Context, tenantID, documentID string, after, limit int) ([]ragpipe.Chunk, error) {
	rows, err := db.pool.Query(ctx, `SELECT document_id, chunk_index, text, page_start, page_end
		FROM chunks WHERE tenant_id = $1 AND document_id = $2 AND chunk_index > $3
		ORDER BY chunk_index LIMIT $4`, tenantID, documentID, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.Chunk, error) {
		var c ragpipe.Chunk
		err := r.Scan(&c.DocumentID, &c.Index, &c.Text, &c.PageStart, &c.PageEnd)
		return c, err
	})
}

// validUUID reports whether s is a UUID in its canonical 36-character form, so
// malformed IDs are a not-found rather than a database error.
func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}
