// Package postgres stores ragpipe's state — tenants, keys, documents, jobs and
// their events, the task outbox, and chunks with their vectors — in
// PostgreSQL with pgvector. All SQL lives here.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragpipe/ragpipe/migrations"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// DB is a pool of connections to the ragpipe database.
type DB struct {
	pool        *pgxpool.Pool
	encodeEvent ragpipe.EncodeEvent
}

// Open connects to the database at url and registers the vector type.
// The schema must exist (see Migrate). encodeEvent renders the body of every
// webhook event the store records (pkg/webhook's EncodeEvent).
func Open(ctx context.Context, url string, encodeEvent ragpipe.EncodeEvent) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// Filtered vector searches keep scanning the HNSW graph until they have
	// enough rows (pgvector >= 0.8), so a tenant filter cannot starve results.
	cfg.ConnConfig.RuntimeParams["hnsw.iterative_scan"] = "relaxed_order"
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		return pgxvec.RegisterTypes(ctx, conn)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &DB{pool: pool, encodeEvent: encodeEvent}, nil
}

// Close releases every connection.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Migrate brings the schema at url up to date. It holds an advisory lock, so
// several processes may call it at once.
func Migrate(ctx context.Context, url string) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url) // accepts the pool_* settings Open honours
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	sqlDB := stdlib.OpenDB(*cfg.ConnConfig)
	defer sqlDB.Close()
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	drv, err := migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
	if err != nil {
		return fmt.Errorf("open migration driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// EnsureEmbeddingDimensions makes the chunks' vector column hold dim values.
// The column can change only while no chunk is stored; otherwise a mismatch
// is an error, since vectors of different sizes cannot be compared.
func (db *DB) EnsureEmbeddingDimensions(ctx context.Context, dim int) error {
	const dimSQL = `SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'`
	var current int
	if err := db.pool.QueryRow(ctx, dimSQL).Scan(&current); err != nil {
		return fmt.Errorf("read embedding dimensions: %w", err)
	}
	if current == dim {
		return nil // the usual case, without the exclusive lock below
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, dimSQL).Scan(&current); err != nil {
			return fmt.Errorf("read embedding dimensions: %w", err)
		}
		if current == dim {
			return nil
		}
		var stored bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chunks)`).Scan(&stored); err != nil {
			return err
		}
		if stored {
			return fmt.Errorf("stored chunks have %d-dimensional embeddings but RAGPIPE_EMBED_DIMENSIONS is %d; delete the documents or keep the old setting", current, dim)
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`DROP INDEX IF EXISTS chunks_embedding_idx;
			ALTER TABLE chunks ALTER COLUMN embedding TYPE vector(%d);
			ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN;
			CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);`, dim))
		return err
	})
}

// notFound turns pgx.ErrNoRows into a domain not-found error naming what.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "%s not found", what)
	}
	return err
}

// IsUnavailable reports whether err means the database could not be reached
// or went away mid-request (connection refused or lost, server shutting
// down), as opposed to a fault of the request: worth a 503 and a retry.
func IsUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	return pgconn.Timeout(err)
}

// IsInvalidInput reports whether err is the database refusing a value it was
// given (SQLSTATE class 22, data exception: a NUL in text, a number out of
// range, a malformed UUID): a fault of the request that edge validation
// missed, not of the service.
func IsInvalidInput(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22")
}

// Exclusively runs fn if no other process holds the advisory lock key, and
// holds it while fn runs. It reports whether fn ran.
func (db *DB) Exclusively(ctx context.Context, key int64, fn func(context.Context) error) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&locked); err != nil || !locked {
			return err
		}
		ran = true
		return fn(ctx)
	})
	return ran, err
}
