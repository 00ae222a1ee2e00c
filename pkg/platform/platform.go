// Package platform wires ragpipe's parts into its two processes: the API and
// the worker. The cmd/ binaries only load configuration and call in here, so
// end-to-end tests run the real processes in-process.
package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// NewLogger returns the process logger: JSON for machines, text for people.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// guard wraps a remote provider in the shared rate limits and a breaker.
func guard(cfg config.Config, rdb redis.UniversalClient, name string, p embed.Embedder) embed.Embedder {
	return embed.NewGuard(p, embed.GuardOptions{
		Name: name, Budget: redisBudget{redis_rate.NewLimiter(rdb)},
		RequestsPerMinute: cfg.EmbedRequestsPerMin, TokensPerMinute: cfg.EmbedTokensPerMin,
		BreakerFailures: cfg.EmbedBreakerFailures, BreakerCooldown: cfg.EmbedBreakerCooldown,
	})
}

// redisBudget is an embed.Budget in Redis (GCRA, via redis_rate), shared by
// every API and worker process.
type redisBudget struct{ l *redis_rate.Limiter }

func (b redisBudget) Take(ctx context.Context, key string, perMinute, n int) (time.Duration, error) {
	res, err := b.l.AllowN(ctx, key, redis_rate.PerMinute(perMinute), n)
	if err != nil {
		return 0, err
	}
	if res.Allowed == 0 {
		return max(res.RetryAfter, time.Millisecond), nil
	}
	return 0, nil
}

// Redis is where the Redis settings of cfg say Redis is.
func Redis(cfg config.Config) queue.Redis {
	return queue.Redis{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB,
		SentinelAddrs: cfg.RedisSentinelAddrs, SentinelMaster: cfg.RedisSentinelMaster, SentinelPassword: cfg.RedisSentinelPassword,
		ClusterAddrs: cfg.RedisClusterAddrs}
}

func redisOpt(cfg config.Config) asynq.RedisConnOpt { return Redis(cfg).Asynq() }

// newRedis returns the process's Redis client. The first call sends
// go-redis's own messages (a lost connection, a new primary named by the
// sentinels) to log, for the whole process: go-redis has one logger.
func newRedis(cfg config.Config, log *slog.Logger) redis.UniversalClient {
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{log.With("component", "redis")}) })
	return Redis(cfg).Client()
}

var redisLogOnce sync.Once

// redisLogger is go-redis's logger on slog.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, fmt.Sprintf(format, v...))
}

func newBlobs(cfg config.Config) *blob.Store {
	return blob.New(blob.Config{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Bucket: cfg.S3Bucket,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey})
}

// openDB connects to Postgres, migrating first when asked, and registers
// the configured embedding space, which it returns.
func openDB(ctx context.Context, cfg config.Config, migrate bool) (*postgres.DB, ragpipe.EmbeddingSpace, error) {
	space := configuredSpace(cfg)
	if migrate {
		if err := waitForDB(ctx, func() error { return postgres.Migrate(ctx, cfg.DatabaseURL) }); err != nil {
			return nil, space, fmt.Errorf("%w (is Postgres with pgvector running? `make services` starts it)", err)
		}
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, webhook.EncodeEvent)
	if err != nil {
		return nil, space, err
	}
	err = waitForDB(ctx, func() error {
		var err error
		space, err = db.RegisterSpace(ctx, space)
		return err
	})
	if err != nil {
		db.Close()
		return nil, space, err
	}
	return db, space, nil
}

// dbStartWait is how long a starting process waits for an unreachable
// database (a restart, a failover) before giving up.
const dbStartWait = time.Minute

// waitForDB runs fn until it succeeds, fails for a reason other than an
// unreachable database, or dbStartWait passes.
func waitForDB(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(dbStartWait)
	for {
		err := fn()
		if err == nil || !postgres.IsUnavailable(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
