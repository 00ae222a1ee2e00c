// Package testenv gives integration tests their own slice of the real
// services `make services` starts: a fresh migrated database, a Redis
// database number and an S3 bucket per test, each removed on cleanup.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/telemetry"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// Config returns the configuration the services were started with (the
// environment over the compiled-in defaults).
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load(os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Database creates a database with the schema applied and returns its URL.
// It is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	dbURL := EmptyDatabase(t)
	if err := postgres.Migrate(context.Background(), dbURL); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return dbURL
}

// EmptyDatabase creates a database without the schema and returns its URL.
// It is dropped when the test ends.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := Config(t).DatabaseURL
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s (run `make services`): %v", base, err)
	}
	defer admin.Close(ctx)
	name := "ragpipe_test_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return dbURL
}

// DB returns an open store on a fresh database.
func DB(t testing.TB) (*postgres.DB, string) {
	t.Helper()
	dbURL := Database(t)
	db, err := postgres.Open(context.Background(), dbURL, webhook.EncodeEvent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, dbURL
}

// Redis flushes and returns Redis database n; each test package that uses
// Redis takes its own n (see the package's tests), as Asynq has no key prefix.
func Redis(t testing.TB, n int) *redis.Client {
	t.Helper()
	cfg := Config(t)
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: n})
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("redis at %s (run `make services`): %v", cfg.RedisAddr, err)
	}
	t.Cleanup(func() {
		rdb.FlushDB(context.Background())
		rdb.Close()
	})
	return rdb
}

// Bucket creates a bucket for the test, returns its name and a store on it,
// and empties and leaves it when the test ends.
func Bucket(t testing.TB) (string, *blob.Store) {
	t.Helper()
	cfg := Config(t)
	name := fmt.Sprintf("test-%s", uuid.NewString()[:18])
	s := blob.New(blob.Config{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Bucket: name,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey})
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("bucket at %s (run `make services`): %v", cfg.S3Endpoint, err)
	}
	t.Cleanup(func() {
		if err := s.DeletePrefix(context.Background(), ""); err != nil {
			t.Errorf("empty bucket: %v", err)
		}
	})
	return name, s
}

// Tracing installs the tracer provider a process gets from
// RAGPIPE_OTLP_ENDPOINT, sampling ratio of new traces, with a recorder of
// the spans it ends in place of the exporter. The test's cleanup puts the
// no-op provider and propagator back; the recorder's provider stays up, so
// a span still started through it shows. Tracing is process-wide: a test
// that traces does not run in parallel, or it records others' spans too.
func Tracing(t testing.TB, ratio float64) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	telemetry.Install("ragpipe-test", ratio, rec)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	return rec
}
