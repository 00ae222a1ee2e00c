package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// spaceLock is the advisory lock key under which processes register
// embedding spaces, one at a time.
const spaceLock = 0x7261677370616365 // "ragspace"

const spaceColumns = `s.id, s.provider, s.model, s.base_url, s.dimensions, s.passage_prefix`

func scanSpace(row pgx.Row) (ragpipe.EmbeddingSpace, error) {
	var s ragpipe.EmbeddingSpace
	err := row.Scan(&s.ID, &s.Provider, &s.Model, &s.BaseURL, &s.Dimensions, &s.PassagePrefix)
	return s, err
}

// RegisterSpace records the embedding space s, if new, and makes it the
// space of the vectors FinishJob stores; it returns s with its ID. Call it
// once, before any FinishJob. The chunks stored before spaces were recorded
// (space 0) are taken to be in s when their dimensions match, as they had
// to before; otherwise, while any are stored, it is an error. In a new
// database the first space registered is space 0. A space has no index of
// its own: a tenant's chunks get one when there are enough of them
// (BuildVectorIndexes).
func (db *DB) RegisterSpace(ctx context.Context, s ragpipe.EmbeddingSpace) (ragpipe.EmbeddingSpace, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return s, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(spaceLock)); err != nil {
		return s, err
	}
	// On a connection that fails, the server drops the lock with it.
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(spaceLock)) //nolint:errcheck
	s.ID, err = registerSpace(ctx, conn.Conn(), s)
	if err != nil {
		return s, err
	}
	db.space = s.ID
	return s, nil
}

func registerSpace(ctx context.Context, conn *pgx.Conn, s ragpipe.EmbeddingSpace) (int, error) {
	var id int
	err := conn.QueryRow(ctx, `SELECT id FROM embedding_spaces WHERE provider = $1 AND model = $2 AND base_url = $3
		AND dimensions = $4 AND passage_prefix = $5`, s.Provider, s.Model, s.BaseURL, s.Dimensions, s.PassagePrefix).Scan(&id)
	if !errors.Is(err, pgx.ErrNoRows) {
		return id, err
	}
	var legacyDims int
	var legacyChunks bool
	err = conn.QueryRow(ctx, `SELECT dimensions, EXISTS (SELECT 1 FROM chunks WHERE space_id = 0)
		FROM embedding_spaces WHERE id = 0 AND provider = ''`).Scan(&legacyDims, &legacyChunks)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return 0, err
	case legacyDims == s.Dimensions || !legacyChunks:
		// With no chunk in it (a new database), space 0 takes any size.
		_, err := conn.Exec(ctx, `UPDATE embedding_spaces SET provider = $1, model = $2, base_url = $3, dimensions = $4,
			passage_prefix = $5 WHERE id = 0`, s.Provider, s.Model, s.BaseURL, s.Dimensions, s.PassagePrefix)
		return 0, err
	default:
		return 0, fmt.Errorf("the stored chunks were embedded with %d dimensions before embedding spaces were recorded, "+
			"and RAGPIPE_EMBED_DIMENSIONS is %d: start once with the settings they were made with, so they can be "+
			"recorded, then change them to re-embed", legacyDims, s.Dimensions)
	}
	err = conn.QueryRow(ctx, `INSERT INTO embedding_spaces (id, provider, model, base_url, dimensions, passage_prefix)
		VALUES (nextval('embedding_spaces_id_seq'), $1, $2, $3, $4, $5) RETURNING id`,
		s.Provider, s.Model, s.BaseURL, s.Dimensions, s.PassagePrefix).Scan(&id)
	return id, err
}

// TenantSpace returns the embedding space the tenant's searches use: the
// one its chunks are in, or the registered one before it has any.
func (db *DB) TenantSpace(ctx context.Context, tenantID string) (ragpipe.EmbeddingSpace, error) {
	return scanSpace(db.pool.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces s
		WHERE s.id = coalesce((SELECT embedding_space_id FROM tenants WHERE id = $1), $2)`, tenantID, db.space))
}

// StartReembeds begins moving every tenant whose searches use another space
// than target into it, and returns the task that continues each running
// migration towards target. A migration towards another space (the
// configuration changed again) is given up, its vectors discarded.
func (db *DB) StartReembeds(ctx context.Context, target int) ([]ragpipe.Task, error) {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM chunk_vectors_next n USING embedding_migrations m
			WHERE n.tenant_id = m.tenant_id AND m.state = 'running' AND m.target_space_id <> $1`, target); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE embedding_migrations SET state = 'failed', updated_at = now(), finished_at = now(),
			error = 'superseded: the configured embedding space changed' WHERE state = 'running' AND target_space_id <> $1`, target); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO embedding_migrations AS m (tenant_id, id, from_space_id, target_space_id, state, total_chunks)
			SELECT t.id, nextval('embedding_migrations_id_seq'), t.embedding_space_id, $1, 'running',
				(SELECT count(*) FROM chunks c WHERE c.tenant_id = t.id AND c.space_id <> $1)
			FROM tenants t WHERE t.embedding_space_id <> $1
				AND NOT EXISTS (SELECT 1 FROM embedding_migrations r WHERE r.tenant_id = t.id AND r.state = 'running')
			ON CONFLICT (tenant_id) DO UPDATE SET id = EXCLUDED.id, from_space_id = EXCLUDED.from_space_id,
				target_space_id = EXCLUDED.target_space_id, state = 'running', total_chunks = EXCLUDED.total_chunks,
				embedded_chunks = 0, cursor_document = NULL, cursor_chunk = NULL, walked = false, error = NULL,
				started_at = now(), updated_at = now(), finished_at = NULL`, target)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start re-embedding: %w", err)
	}
	return db.reembedTasks(ctx, `target_space_id = $1`, target)
}

// StaleReembeds returns the tasks of running migrations that made no
// progress for age, for the reaper to make sure they are queued.
func (db *DB) StaleReembeds(ctx context.Context, age time.Duration) ([]ragpipe.Task, error) {
	return db.reembedTasks(ctx, `updated_at < now() - $1::interval`, age)
}

func (db *DB) reembedTasks(ctx context.Context, where string, arg any) ([]ragpipe.Task, error) {
	rows, err := db.pool.Query(ctx, `SELECT tenant_id, id, embedded_chunks FROM embedding_migrations
		WHERE state = 'running' AND `+where+` ORDER BY tenant_id`, arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragpipe.Task, error) {
		var p ragpipe.TaskPayload
		err := r.Scan(&p.TenantID, &p.Migration, &p.Batch)
		return ragpipe.NewTask(ragpipe.TaskReembed, p), err
	})
}

// maxReembedDocuments bounds the documents one step looks through for
// chunks still to embed.
const maxReembedDocuments = 1000

// Reembed runs one step of migration of the tenant: it picks up to limit of
// its chunks still outside the target space, has embed embed them (vecs[i]
// for Texts[i]), and stores the vectors, all in one transaction, so a crash
// repeats the step. When no chunk is left it switches the tenant's searches
// over to the target space in the same transaction. It returns the chunks
// embedded so far and whether the migration is over (done, failed, or
// superseded by another). An error of embed marked ragpipe.Permanent fails the migration,
// leaving searches on the old space.
func (db *DB) Reembed(ctx context.Context, tenantID string, migration int64, limit int,
	embed func(context.Context, ragpipe.ReembedBatch) ([][]float32, error)) (embedded int, over bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var target ragpipe.EmbeddingSpace
		var doc *string
		var chunk *int
		var walked bool
		row := tx.QueryRow(ctx, `SELECT `+spaceColumns+`, m.embedded_chunks, m.cursor_document, m.cursor_chunk, m.walked
			FROM embedding_migrations m JOIN embedding_spaces s ON s.id = m.target_space_id
			WHERE m.tenant_id = $1 AND m.id = $2 AND m.state = 'running' FOR UPDATE OF m`, tenantID, migration)
		err := row.Scan(&target.ID, &target.Provider, &target.Model, &target.BaseURL, &target.Dimensions, &target.PassagePrefix,
			&embedded, &doc, &chunk, &walked)
		if errors.Is(err, pgx.ErrNoRows) {
			over = true // finished, superseded, or a duplicate of a task that already ran
			return nil
		}
		if err != nil {
			return err
		}
		if walked {
			over, err = switchSpace(ctx, tx, tenantID, migration, target.ID)
			return err
		}
		keys, texts, walked, err := nextToReembed(ctx, tx, tenantID, target.ID, &doc, &chunk, limit)
		if err != nil {
			return err
		}
		if len(texts) > 0 {
			vecs, err := embed(ctx, ragpipe.ReembedBatch{Target: target, Texts: texts})
			if err != nil {
				return err
			}
			if len(vecs) != len(texts) {
				return fmt.Errorf("embedder returned %d vectors for %d texts", len(vecs), len(texts))
			}
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"chunk_vectors_next"}, []string{"tenant_id", "document_id", "chunk_index", "embedding"},
				pgx.CopyFromSlice(len(keys), func(i int) ([]any, error) {
					return []any{tenantID, keys[i].doc, keys[i].chunk, pgvector.NewVector(vecs[i])}, nil
				}))
			if err != nil {
				return fmt.Errorf("store vectors: %w", err)
			}
			embedded += len(texts)
		}
		_, err = tx.Exec(ctx, `UPDATE embedding_migrations SET embedded_chunks = $3, cursor_document = $4, cursor_chunk = $5,
			walked = $6, updated_at = now() WHERE tenant_id = $1 AND id = $2`, tenantID, migration, embedded, doc, chunk, walked)
		if err != nil || !walked || len(texts) > 0 {
			return err
		}
		over, err = switchSpace(ctx, tx, tenantID, migration, target.ID)
		return err
	})
	if err != nil && errors.Is(err, ragpipe.ErrPermanent) {
		_, ferr := db.pool.Exec(ctx, `UPDATE embedding_migrations SET state = 'failed', error = $3, updated_at = now(),
			finished_at = now() WHERE tenant_id = $1 AND id = $2 AND state = 'running'`, tenantID, migration, err.Error())
		return embedded, true, errors.Join(err, ferr)
	}
	return embedded, over, err
}

type chunkKey struct {
	doc   string
	chunk int
}

// nextToReembed returns up to limit chunks of the tenant after the cursor
// (doc, chunk) that are in another space than target and have no new vector
// yet, and moves the cursor past them. It walks the tenant's documents in ID
// order, and each one's chunks in order, and reports whether it reached the
// end.
func nextToReembed(ctx context.Context, tx pgx.Tx, tenantID string, target int, doc **string, chunk **int,
	limit int) (keys []chunkKey, texts []string, end bool, err error) {
	for range maxReembedDocuments {
		if *doc == nil {
			var first string
			err := tx.QueryRow(ctx, `SELECT id FROM documents WHERE tenant_id = $1 ORDER BY id LIMIT 1`, tenantID).Scan(&first)
			if errors.Is(err, pgx.ErrNoRows) {
				return keys, texts, true, nil
			}
			if err != nil {
				return nil, nil, false, err
			}
			*doc, *chunk = &first, nil
		}
		after := -1
		if *chunk != nil {
			after = **chunk
		}
		rows, err := tx.Query(ctx, `SELECT c.chunk_index, c.text FROM chunks c
			WHERE c.document_id = $1 AND c.chunk_index > $2 AND c.space_id <> $3
				AND NOT EXISTS (SELECT 1 FROM chunk_vectors_next n WHERE n.document_id = c.document_id AND n.chunk_index = c.chunk_index)
			ORDER BY c.chunk_index LIMIT $4`, **doc, after, target, limit-len(texts))
		if err != nil {
			return nil, nil, false, err
		}
		n := 0
		for rows.Next() {
			var i int
			var text string
			if err := rows.Scan(&i, &text); err != nil {
				rows.Close()
				return nil, nil, false, err
			}
			keys, texts, n = append(keys, chunkKey{**doc, i}), append(texts, text), n+1
			*chunk = &i
		}
		if err := rows.Err(); err != nil {
			return nil, nil, false, err
		}
		if len(texts) == limit {
			return keys, texts, false, nil
		}
		var next string
		err = tx.QueryRow(ctx, `SELECT id FROM documents WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 1`, tenantID, **doc).Scan(&next)
		if errors.Is(err, pgx.ErrNoRows) {
			*doc, *chunk = nil, nil
			return keys, texts, true, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		*doc, *chunk = &next, nil
	}
	return keys, texts, false, nil
}

// switchSpace ends a walk: if every chunk of the tenant now has a vector of
// the target space, it moves the new vectors into the chunks and switches
// the tenant's searches over at once, and reports that it did. Chunks that
// a writer of another space stored behind the walk send it round again.
func switchSpace(ctx context.Context, tx pgx.Tx, tenantID string, migration int64, target int) (bool, error) {
	var left bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chunks c WHERE c.tenant_id = $1 AND c.space_id <> $2
		AND NOT EXISTS (SELECT 1 FROM chunk_vectors_next n WHERE n.document_id = c.document_id AND n.chunk_index = c.chunk_index))`,
		tenantID, target).Scan(&left)
	if err != nil {
		return false, err
	}
	if left {
		_, err := tx.Exec(ctx, `UPDATE embedding_migrations SET walked = false, cursor_document = NULL, cursor_chunk = NULL
			WHERE tenant_id = $1 AND id = $2`, tenantID, migration)
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE chunks c SET embedding = n.embedding, space_id = $2 FROM chunk_vectors_next n
		WHERE n.tenant_id = $1 AND c.document_id = n.document_id AND c.chunk_index = n.chunk_index`, tenantID, target); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM chunk_vectors_next WHERE tenant_id = $1`, tenantID); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE tenants SET embedding_space_id = $2 WHERE id = $1`, tenantID, target); err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, `UPDATE embedding_migrations SET state = 'succeeded', cursor_document = NULL, cursor_chunk = NULL,
		updated_at = now(), finished_at = now() WHERE tenant_id = $1 AND id = $2`, tenantID, migration)
	return err == nil, err
}

// EmbeddingStatus returns the space the tenant's searches use and its
// latest migration.
func (db *DB) EmbeddingStatus(ctx context.Context, tenantID string) (*ragpipe.EmbeddingStatus, error) {
	space, err := db.TenantSpace(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	st := &ragpipe.EmbeddingStatus{Space: space}
	m := &ragpipe.EmbeddingMigration{}
	var errText *string
	err = db.pool.QueryRow(ctx, `SELECT f.id, f.provider, f.model, f.base_url, f.dimensions, f.passage_prefix,
			`+spaceColumns+`, m.state, m.total_chunks, m.embedded_chunks, m.error, m.started_at, m.updated_at, m.finished_at
		FROM embedding_migrations m JOIN embedding_spaces f ON f.id = m.from_space_id JOIN embedding_spaces s ON s.id = m.target_space_id
		WHERE m.tenant_id = $1`, tenantID).Scan(
		&m.From.ID, &m.From.Provider, &m.From.Model, &m.From.BaseURL, &m.From.Dimensions, &m.From.PassagePrefix,
		&m.Target.ID, &m.Target.Provider, &m.Target.Model, &m.Target.BaseURL, &m.Target.Dimensions, &m.Target.PassagePrefix,
		&m.State, &m.TotalChunks, &m.EmbeddedChunks, &errText, &m.StartedAt, &m.UpdatedAt, &m.FinishedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, nil
	case err != nil:
		return nil, err
	}
	if errText != nil {
		m.Error = *errText
	}
	st.Migration = m
	return st, nil
}
