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
	// space is the embedding space of the vectors FinishJob stores: the
	// configured one, set by RegisterSpace (0, the space of chunks stored
	// before spaces were recorded, until then).
	space int
	// replica takes the reads that allow it, when set (UseReplica).
	replica *replica
}

// Open connects to the database at url and registers the vector type.
// The schema must exist (see Migrate). encodeEvent renders the body of every
// webhook event the store records (pkg/webhook's EncodeEvent).
func Open(ctx context.Context, url string, encodeEvent ragpipe.EncodeEvent) (*DB, error) {
	pool, err := newPool(ctx, url)
	if err != nil {
		return nil, err
	}
	return &DB{pool: pool, encodeEvent: encodeEvent}, nil
}

// newPool returns a pool on the database at url, its sessions set up for
// ragpipe's queries.
func newPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// Filtered vector searches keep scanning the tenant's HNSW graph until
	// they have enough rows (pgvector >= 0.8), so a filter on collection,
	// documents or metadata cannot starve results.
	cfg.ConnConfig.RuntimeParams["hnsw.iterative_scan"] = "relaxed_order"
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		return pgxvec.RegisterTypes(ctx, conn)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// Close releases every connection.
func (db *DB) Close() {
	db.pool.Close()
	if db.replica != nil {
		db.replica.pool.Close()
	}
}

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
