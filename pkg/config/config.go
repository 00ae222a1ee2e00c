// Package config reads ragpipe's settings from the environment (prefix
// RAGPIPE_) into one typed struct and validates them as a whole, so a
// misconfigured process fails at start-up with every problem listed at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Prefix is the prefix of every environment variable ragpipe reads.
const Prefix = "RAGPIPE_"

// Config is every setting of the API, the worker and ragctl. Defaults point at
// the services `make services` starts, so the binaries run with no environment.
type Config struct {
	HTTPAddr  string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"text"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`

	DatabaseURL   string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/ragpipe?sslmode=disable"`
	AutoMigrate   bool   `env:"AUTO_MIGRATE" envDefault:"true"`
	RedisAddr     string `env:"REDIS_ADDR" envDefault:"127.0.0.1:6379"`
	RedisPassword string `env:"REDIS_PASSWORD"`
	RedisDB       int    `env:"REDIS_DB" envDefault:"0"`
	// Redis Sentinel (a failover group) or Redis Cluster, instead of REDIS_ADDR.
	RedisSentinelAddrs    []string `env:"REDIS_SENTINEL_ADDRS" envSeparator:","`
	RedisSentinelMaster   string   `env:"REDIS_SENTINEL_MASTER"`
	RedisSentinelPassword string   `env:"REDIS_SENTINEL_PASSWORD"`
	RedisClusterAddrs     []string `env:"REDIS_CLUSTER_ADDRS" envSeparator:","`
	// A streaming replica for reads (search, ask retrieval, listings), used
	// while it is no further behind the primary than the lag bound.
	DatabaseReadURL       string        `env:"DATABASE_READ_URL"`
	DatabaseMaxReplicaLag time.Duration `env:"DATABASE_MAX_REPLICA_LAG" envDefault:"200ms"`

	// Tracing: OTLP over HTTP to this endpoint (off when empty).
	OTLPEndpoint     string  `env:"OTLP_ENDPOINT"`
	TraceSampleRatio float64 `env:"TRACE_SAMPLE_RATIO" envDefault:"1"`

	S3Endpoint  string `env:"S3_ENDPOINT" envDefault:"http://127.0.0.1:7070"`
	S3Region    string `env:"S3_REGION" envDefault:"us-east-1"`
	S3Bucket    string `env:"S3_BUCKET" envDefault:"ragpipe"`
	S3AccessKey string `env:"S3_ACCESS_KEY" envDefault:"ragpipe-local"`
	S3SecretKey string `env:"S3_SECRET_KEY" envDefault:"ragpipe-local-secret"`

	HTTPBodyTimeout   time.Duration `env:"HTTP_BODY_TIMEOUT" envDefault:"30s"`
	HTTPWriteTimeout  time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"2m"`
	MaxUploadBytes    int64         `env:"MAX_UPLOAD_BYTES" envDefault:"104857600"`
	MaxFilesPerUpload int           `env:"MAX_FILES_PER_UPLOAD" envDefault:"10"`
	RateLimitPerMin   int           `env:"RATE_LIMIT_PER_MINUTE" envDefault:"600"`
	CORSOrigins       []string      `env:"CORS_ALLOWED_ORIGINS" envSeparator:","`
	ShutdownGrace     time.Duration `env:"SHUTDOWN_GRACE" envDefault:"30s"`
	WorkerConcurrency int           `env:"WORKER_CONCURRENCY" envDefault:"4"`
	// WorkerQueues are the classes of work a worker takes: extract
	// (extraction and chunking, CPU-bound), embed (embedding, storing,
	// re-embedding and deleting, I/O-bound) and webhooks (delivery).
	WorkerQueues []string `env:"WORKER_QUEUES" envSeparator:"," envDefault:"extract,embed,webhooks"`

	AdminToken        string        `env:"ADMIN_TOKEN"`
	MetricsToken      string        `env:"METRICS_TOKEN"`
	MaxQueuedJobs     int           `env:"MAX_QUEUED_JOBS" envDefault:"50000"`
	TenantMaxInflight int           `env:"TENANT_MAX_INFLIGHT" envDefault:"4"`
	ReaperInterval    time.Duration `env:"REAPER_INTERVAL" envDefault:"10s"`
	ReaperStaleAfter  time.Duration `env:"REAPER_STALE_AFTER" envDefault:"30s"`

	ChunkSize    int `env:"CHUNK_SIZE" envDefault:"256"`
	ChunkOverlap int `env:"CHUNK_OVERLAP" envDefault:"32"`

	ExtractTimeout   time.Duration `env:"EXTRACT_TIMEOUT" envDefault:"5m"`
	ExtractMaxMemory int64         `env:"EXTRACT_MAX_MEMORY_BYTES" envDefault:"1073741824"`
	ExtractMaxPages  int           `env:"EXTRACT_MAX_PAGES" envDefault:"10000"`
	ExtractMaxText   int64         `env:"EXTRACT_MAX_TEXT_BYTES" envDefault:"16777216"`
	// WorkerMemoryLimit is the worker's soft memory limit for Go's garbage
	// collector (runtime/debug.SetMemoryLimit); 0 leaves it to GOMEMLIMIT.
	WorkerMemoryLimit int64  `env:"WORKER_MEMORY_LIMIT_BYTES" envDefault:"268435456"`
	OCR               string `env:"OCR" envDefault:"auto"`
	OCRLanguage       string `env:"OCR_LANGUAGE" envDefault:"eng"`
	TempDir           string `env:"TEMP_DIR"`

	EmbedProvider        string        `env:"EMBED_PROVIDER" envDefault:"hashing"`
	EmbedDimensions      int           `env:"EMBED_DIMENSIONS" envDefault:"384"`
	EmbedBatchSize       int           `env:"EMBED_BATCH_SIZE" envDefault:"64"`
	EmbedTimeout         time.Duration `env:"EMBED_TIMEOUT" envDefault:"60s"`
	EmbedRequestsPerMin  int           `env:"EMBED_REQUESTS_PER_MINUTE" envDefault:"0"`
	EmbedTokensPerMin    int           `env:"EMBED_TOKENS_PER_MINUTE" envDefault:"0"`
	EmbedBreakerFailures int           `env:"EMBED_BREAKER_FAILURES" envDefault:"5"`
	EmbedBreakerCooldown time.Duration `env:"EMBED_BREAKER_COOLDOWN" envDefault:"30s"`
	OpenAIBaseURL        string        `env:"OPENAI_BASE_URL" envDefault:"https://api.openai.com/v1"`
	OpenAIAPIKey         string        `env:"OPENAI_API_KEY"`
	OpenAIModel          string        `env:"OPENAI_EMBED_MODEL" envDefault:"text-embedding-3-small"`
	OllamaBaseURL        string        `env:"OLLAMA_BASE_URL" envDefault:"http://127.0.0.1:11434"`
	OllamaModel          string        `env:"OLLAMA_EMBED_MODEL" envDefault:"nomic-embed-text"`
	EmbedQueryPrefix     string        `env:"EMBED_QUERY_PREFIX"`
	EmbedPassagePrefix   string        `env:"EMBED_PASSAGE_PREFIX"`

	SearchVectorWeight   string        `env:"SEARCH_VECTOR_WEIGHT" envDefault:"auto"`
	VectorIndexMinChunks int           `env:"VECTOR_INDEX_MIN_CHUNKS" envDefault:"20000"`
	RerankURL            string        `env:"RERANK_URL"`
	RerankAPI            string        `env:"RERANK_API" envDefault:"tei"`
	RerankModel          string        `env:"RERANK_MODEL"`
	RerankAPIKey         string        `env:"RERANK_API_KEY"`
	RerankTopN           int           `env:"RERANK_TOP_N" envDefault:"50"`
	RerankTimeout        time.Duration `env:"RERANK_TIMEOUT" envDefault:"2s"`

	ChatProvider          string        `env:"CHAT_PROVIDER" envDefault:"extractive"`
	ChatBaseURL           string        `env:"CHAT_BASE_URL"`
	ChatAPIKey            string        `env:"CHAT_API_KEY"`
	ChatModel             string        `env:"CHAT_MODEL"`
	ChatFallback          []string      `env:"CHAT_FALLBACK" envSeparator:","`
	ChatOpenAIBaseURL     string        `env:"CHAT_OPENAI_BASE_URL"`
	ChatOpenAIAPIKey      string        `env:"CHAT_OPENAI_API_KEY"`
	ChatOpenAIModel       string        `env:"CHAT_OPENAI_MODEL"`
	ChatAnthropicBaseURL  string        `env:"CHAT_ANTHROPIC_BASE_URL"`
	ChatAnthropicAPIKey   string        `env:"CHAT_ANTHROPIC_API_KEY"`
	ChatAnthropicModel    string        `env:"CHAT_ANTHROPIC_MODEL"`
	ChatOllamaBaseURL     string        `env:"CHAT_OLLAMA_BASE_URL"`
	ChatOllamaModel       string        `env:"CHAT_OLLAMA_MODEL"`
	ChatRequestsPerMin    int           `env:"CHAT_REQUESTS_PER_MINUTE" envDefault:"0"`
	ChatTokensPerMin      int           `env:"CHAT_TOKENS_PER_MINUTE" envDefault:"0"`
	ChatBreakerFailures   int           `env:"CHAT_BREAKER_FAILURES" envDefault:"5"`
	ChatBreakerCooldown   time.Duration `env:"CHAT_BREAKER_COOLDOWN" envDefault:"30s"`
	ChatRetries           int           `env:"CHAT_RETRIES" envDefault:"2"`
	ChatFirstTokenTimeout time.Duration `env:"CHAT_FIRST_TOKEN_TIMEOUT" envDefault:"10s"`
	ChatIdleTimeout       time.Duration `env:"CHAT_IDLE_TIMEOUT" envDefault:"30s"`
	AskMaxQuestionTokens  int           `env:"ASK_MAX_QUESTION_TOKENS" envDefault:"512"`
	AskBatchMax           int           `env:"ASK_BATCH_MAX" envDefault:"20"`
	AskBatchConcurrency   int           `env:"ASK_BATCH_CONCURRENCY" envDefault:"4"`

	WebhookAllowHTTP     bool            `env:"WEBHOOK_ALLOW_HTTP" envDefault:"false"`
	WebhookAllowPrivate  bool            `env:"WEBHOOK_ALLOW_PRIVATE" envDefault:"false"`
	WebhookTimeout       time.Duration   `env:"WEBHOOK_TIMEOUT" envDefault:"10s"`
	WebhookConcurrency   int             `env:"WEBHOOK_CONCURRENCY" envDefault:"10"`
	WebhookRetrySchedule []time.Duration `env:"WEBHOOK_RETRY_SCHEDULE" envSeparator:"," envDefault:"5s,1m,5m,30m,1h,2h,4h,8h,12h,16h,24h"`
	WebhookDisableAfter  time.Duration   `env:"WEBHOOK_DISABLE_AFTER" envDefault:"120h"`
	WebhookSecretOverlap time.Duration   `env:"WEBHOOK_SECRET_OVERLAP" envDefault:"24h"`
}

// Load reads the configuration from getenv (os.Getenv in production) and
// validates it. The error lists every missing or invalid setting.
func Load(environ []string) (Config, error) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	var c Config
	var problems []string
	if err := env.ParseWithOptions(&c, env.Options{Prefix: Prefix, Environment: m}); err != nil {
		problems = parseErrors(err)
	}
	for _, p := range c.problems() {
		name, _, _ := strings.Cut(p, ":")
		if !slices.ContainsFunc(problems, func(q string) bool { return strings.HasPrefix(q, name+":") }) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return c, errors.New("invalid configuration:\n  " + strings.Join(problems, "\n  "))
	}
	return c, nil
}

// parseErrors restates env's errors, which name struct fields, in terms of
// the environment variables a user sets.
func parseErrors(err error) []string {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []string{err.Error()}
	}
	var lines []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			f, _ := reflect.TypeFor[Config]().FieldByName(pe.Name)
			lines = append(lines, fmt.Sprintf("%s%s: not a valid %s", Prefix, f.Tag.Get("env"), pe.Type))
			continue
		}
		lines = append(lines, e.Error())
	}
	return lines
}

// WorkerQueueNames are the classes of work RAGPIPE_WORKER_QUEUES may name.
var WorkerQueueNames = []string{"extract", "embed", "webhooks"}

// redisTopologyProblems checks that at most one Redis topology is set, and
// the Sentinel and Cluster addresses.
func (c Config) redisTopologyProblems(bad func(name, format string, args ...any)) {
	sentinel, cluster := len(c.RedisSentinelAddrs) > 0, len(c.RedisClusterAddrs) > 0
	if sentinel && cluster {
		bad("REDIS_SENTINEL_ADDRS/REDIS_CLUSTER_ADDRS", "set one of them, not both")
	}
	for _, a := range c.RedisSentinelAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("REDIS_SENTINEL_ADDRS", "want host:port,host:port,..., got %q", a)
		}
	}
	if sentinel && c.RedisSentinelMaster == "" {
		bad("REDIS_SENTINEL_MASTER", "is required with REDIS_SENTINEL_ADDRS: the name the sentinels monitor")
	}
	if !sentinel && c.RedisSentinelMaster != "" {
		bad("REDIS_SENTINEL_MASTER", "is set, but REDIS_SENTINEL_ADDRS is not")
	}
	for _, a := range c.RedisClusterAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("REDIS_CLUSTER_ADDRS", "want host:port,host:port,..., got %q", a)
		}
	}
	if cluster && c.RedisDB != 0 {
		bad("REDIS_DB", "must be 0 with REDIS_CLUSTER_ADDRS: a cluster has only database 0")
	}
}

// WorkerTakes reports whether the worker takes the class of work queue.
func (c Config) WorkerTakes(queue string) bool { return slices.Contains(c.WorkerQueues, queue) }

// problems lists every invalid setting, one line each, starting with its name.
func (c Config) problems() []string {
	var errs []string
	bad := func(name, format string, args ...any) {
		errs = append(errs, Prefix+name+": "+fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "want host:port, got %q", c.HTTPAddr)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("LOG_FORMAT", "want text or json, got %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "want a postgres:// URL")
	}
	if _, _, err := net.SplitHostPort(c.RedisAddr); err != nil {
		bad("REDIS_ADDR", "want host:port, got %q", c.RedisAddr)
	}
	if c.RedisDB < 0 || c.RedisDB > 15 {
		bad("REDIS_DB", "want 0..15, got %d", c.RedisDB)
	}
	c.redisTopologyProblems(bad)
	if c.DatabaseReadURL != "" {
		if u, err := url.Parse(c.DatabaseReadURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("DATABASE_READ_URL", "want a postgres:// URL of a streaming replica")
		}
	}
	if c.DatabaseMaxReplicaLag < 0 || c.DatabaseMaxReplicaLag > time.Minute {
		bad("DATABASE_MAX_REPLICA_LAG", "want 0 to 1m, got %s", c.DatabaseMaxReplicaLag)
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OTLP_ENDPOINT", "want an http(s):// URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318, got %q", c.OTLPEndpoint)
		}
	}
	if c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		bad("TRACE_SAMPLE_RATIO", "want 0 to 1, got %g", c.TraceSampleRatio)
	}
	if len(c.WorkerQueues) == 0 {
		bad("WORKER_QUEUES", "want one or more of %s", strings.Join(WorkerQueueNames, ", "))
	}
	for _, q := range c.WorkerQueues {
		if !slices.Contains(WorkerQueueNames, q) {
			bad("WORKER_QUEUES", "want one or more of %s, got %q", strings.Join(WorkerQueueNames, ", "), q)
		}
	}
	if u, err := url.Parse(c.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("S3_ENDPOINT", "want an http(s):// URL, got %q", c.S3Endpoint)
	}
	if c.S3Bucket == "" {
		bad("S3_BUCKET", "is required")
	}
	if c.S3AccessKey == "" || c.S3SecretKey == "" {
		bad("S3_ACCESS_KEY/S3_SECRET_KEY", "both are required")
	}
	if c.HTTPBodyTimeout < time.Second {
		bad("HTTP_BODY_TIMEOUT", "must be at least 1s")
	}
	if c.HTTPWriteTimeout < time.Second {
		bad("HTTP_WRITE_TIMEOUT", "must be at least 1s")
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "") {
			bad("CORS_ALLOWED_ORIGINS", "want origins such as https://app.example.com (scheme, host, port; no path) or *, got %q", o)
		}
	}
	if c.MaxFilesPerUpload < 1 || c.MaxFilesPerUpload > 100 {
		bad("MAX_FILES_PER_UPLOAD", "want 1 to 100, got %d", c.MaxFilesPerUpload)
	}
	if c.MaxUploadBytes <= 0 {
		bad("MAX_UPLOAD_BYTES", "must be positive")
	}
	if c.RateLimitPerMin <= 0 {
		bad("RATE_LIMIT_PER_MINUTE", "must be positive")
	}
	if c.WorkerConcurrency <= 0 {
		bad("WORKER_CONCURRENCY", "must be positive")
	}
	if c.MaxQueuedJobs <= 0 {
		bad("MAX_QUEUED_JOBS", "must be positive")
	}
	if c.TenantMaxInflight <= 0 {
		bad("TENANT_MAX_INFLIGHT", "must be positive")
	}
	if c.ReaperInterval < 100*time.Millisecond {
		bad("REAPER_INTERVAL", "must be at least 100ms")
	}
	if c.ReaperStaleAfter < time.Second {
		bad("REAPER_STALE_AFTER", "must be at least 1s")
	}
	if c.ChunkSize <= 0 {
		bad("CHUNK_SIZE", "must be positive")
	}
	if c.ChunkOverlap < 0 || c.ChunkOverlap >= c.ChunkSize {
		bad("CHUNK_OVERLAP", "must be in [0, CHUNK_SIZE)")
	}
	if c.ExtractTimeout <= 0 || c.ExtractTimeout > 9*time.Minute {
		bad("EXTRACT_TIMEOUT", "must be positive and at most 9m (the extract task itself times out at 10m)")
	}
	if c.ExtractMaxMemory < 64<<20 {
		bad("EXTRACT_MAX_MEMORY_BYTES", "must be at least 64 MiB")
	}
	if c.ExtractMaxPages <= 0 {
		bad("EXTRACT_MAX_PAGES", "must be positive")
	}
	if c.ExtractMaxText < 1<<20 {
		bad("EXTRACT_MAX_TEXT_BYTES", "must be at least 1 MiB (1048576)")
	}
	if c.WorkerMemoryLimit != 0 && c.WorkerMemoryLimit < 64<<20 {
		bad("WORKER_MEMORY_LIMIT_BYTES", "must be 0 (off) or at least 64 MiB (67108864)")
	}
	switch c.OCR {
	case "auto", "on", "off":
	default:
		bad("OCR", "want auto, on or off, got %q", c.OCR)
	}
	if c.OCRLanguage == "" {
		bad("OCR_LANGUAGE", "is required (tesseract language codes, e.g. eng or eng+deu)")
	}
	if c.EmbedDimensions < 2 || c.EmbedDimensions > 2000 {
		bad("EMBED_DIMENSIONS", "want 2..2000 (the HNSW index limit), got %d", c.EmbedDimensions)
	}
	if c.EmbedBatchSize <= 0 {
		bad("EMBED_BATCH_SIZE", "must be positive")
	}
	if c.EmbedRequestsPerMin < 0 || c.EmbedTokensPerMin < 0 {
		bad("EMBED_REQUESTS_PER_MINUTE/EMBED_TOKENS_PER_MINUTE", "must be 0 (unlimited) or positive")
	}
	if c.EmbedBreakerFailures < 0 || c.EmbedBreakerCooldown <= 0 {
		bad("EMBED_BREAKER_FAILURES/EMBED_BREAKER_COOLDOWN", "failures must be 0 (no breaker) or positive, cooldown positive")
	}
	if c.WebhookTimeout <= 0 || c.WebhookTimeout > time.Minute {
		bad("WEBHOOK_TIMEOUT", "must be positive and at most 1m")
	}
	if c.WebhookConcurrency <= 0 {
		bad("WEBHOOK_CONCURRENCY", "must be positive")
	}
	if len(c.WebhookRetrySchedule) == 0 || len(c.WebhookRetrySchedule) > 50 ||
		slices.ContainsFunc(c.WebhookRetrySchedule, func(d time.Duration) bool { return d <= 0 }) {
		bad("WEBHOOK_RETRY_SCHEDULE", "want 1 to 50 positive durations, comma-separated")
	}
	if c.WebhookDisableAfter < 0 {
		bad("WEBHOOK_DISABLE_AFTER", "must not be negative (0 never disables)")
	}
	if c.WebhookSecretOverlap < 0 || c.WebhookSecretOverlap > 7*24*time.Hour {
		bad("WEBHOOK_SECRET_OVERLAP", "must be from 0 to 168h")
	}
	if _, err := c.VectorWeight(); err != nil {
		bad("SEARCH_VECTOR_WEIGHT", "%v", err)
	}
	if c.VectorIndexMinChunks < 1 {
		bad("VECTOR_INDEX_MIN_CHUNKS", "want at least 1, got %d", c.VectorIndexMinChunks)
	}
	if c.RerankURL != "" {
		if u, err := url.Parse(c.RerankURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("RERANK_URL", "want an http(s):// URL, got %q", c.RerankURL)
		}
	}
	if c.RerankAPI != "tei" && c.RerankAPI != "cohere" {
		bad("RERANK_API", "want tei or cohere, got %q", c.RerankAPI)
	}
	if c.RerankTopN < 1 || c.RerankTopN > 100 {
		bad("RERANK_TOP_N", "want 1 to 100, got %d", c.RerankTopN)
	}
	if c.RerankTimeout <= 0 {
		bad("RERANK_TIMEOUT", "must be positive")
	}
	seen := map[string]bool{}
	for i, p := range c.ChatProviders() {
		setting := "CHAT_FALLBACK"
		if i == 0 {
			setting = "CHAT_PROVIDER"
		}
		if seen[p.Name] {
			bad(setting, "names %s twice in the chain", p.Name)
		}
		seen[p.Name] = true
		switch p.Name {
		case "extractive":
			continue
		case "openai", "anthropic", "ollama":
		default:
			bad(setting, "want extractive, openai, anthropic or ollama, got %q", p.Name)
			continue
		}
		u, err := url.Parse(p.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(p.Setting+"BASE_URL", "want an http(s):// URL, got %q", p.BaseURL)
		}
		if p.Model == "" {
			bad(p.Setting+"MODEL", "is required with the %s chat provider (the model to ask for)", p.Name)
		}
		if p.APIKey == "" && (p.Name == "anthropic" || err == nil && u.Host == "api.openai.com") {
			bad(p.Setting+"API_KEY", "is required for %s", u.Host)
		}
	}
	if c.ChatRequestsPerMin < 0 || c.ChatTokensPerMin < 0 {
		bad("CHAT_REQUESTS_PER_MINUTE/CHAT_TOKENS_PER_MINUTE", "must be 0 (unlimited) or positive")
	}
	if c.ChatBreakerFailures < 0 || c.ChatBreakerCooldown <= 0 {
		bad("CHAT_BREAKER_FAILURES/CHAT_BREAKER_COOLDOWN", "failures must be 0 (no breaker) or positive, cooldown positive")
	}
	if c.ChatRetries < 0 || c.ChatRetries > 5 {
		bad("CHAT_RETRIES", "want 0 to 5, got %d", c.ChatRetries)
	}
	if c.ChatFirstTokenTimeout <= 0 || c.ChatIdleTimeout <= 0 {
		bad("CHAT_FIRST_TOKEN_TIMEOUT/CHAT_IDLE_TIMEOUT", "must be positive")
	}
	if c.AskBatchMax < 1 || c.AskBatchMax > 100 {
		bad("ASK_BATCH_MAX", "want 1 to 100, got %d", c.AskBatchMax)
	}
	if c.AskBatchConcurrency < 1 || c.AskBatchConcurrency > 32 {
		bad("ASK_BATCH_CONCURRENCY", "want 1 to 32, got %d", c.AskBatchConcurrency)
	}
	if c.AskMaxQuestionTokens < 1 || c.AskMaxQuestionTokens > 8000 {
		bad("ASK_MAX_QUESTION_TOKENS", "want 1 to 8000, got %d", c.AskMaxQuestionTokens)
	}
	switch c.EmbedProvider {
	case "hashing":
	case "openai":
		if u, err := url.Parse(c.OpenAIBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OPENAI_BASE_URL", "want an http(s):// URL, got %q", c.OpenAIBaseURL)
		}
	case "ollama":
		if u, err := url.Parse(c.OllamaBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OLLAMA_BASE_URL", "want an http(s):// URL, got %q", c.OllamaBaseURL)
		}
		if c.OllamaModel == "" {
			bad("OLLAMA_EMBED_MODEL", "is required with the ollama provider")
		}
	default:
		bad("EMBED_PROVIDER", "want hashing, openai or ollama, got %q", c.EmbedProvider)
	}
	return errs
}

// VectorWeight is the default weight of the vector ranking in hybrid search
// (the keyword ranking's is 1). "auto" is 0.1 with the hashing embedder,
// whose lexical vectors mostly repeat what BM25 finds (on SciFact equal
// weights lose 0.11 nDCG@10 to keyword alone, 0.1 loses 0.01), and 1 with a
// provider's semantic vectors.
func (c Config) VectorWeight() (float64, error) {
	if c.SearchVectorWeight == "auto" {
		if c.EmbedProvider == "hashing" {
			return 0.1, nil
		}
		return 1, nil
	}
	w, err := strconv.ParseFloat(c.SearchVectorWeight, 64)
	if err != nil || w < 0 || w > 100 {
		return 0, fmt.Errorf("want auto or a number from 0 to 100, got %q", c.SearchVectorWeight)
	}
	return w, nil
}

// ChatProvider is one answerer of the /v1/ask chain, with its settings.
type ChatProvider struct {
	Name                   string // extractive, openai, anthropic, ollama
	BaseURL, APIKey, Model string
	Setting                string // the prefix of its settings, e.g. "CHAT_" or "CHAT_OLLAMA_"
}

// chatDefaultURLs are the providers' API roots when none is set.
var chatDefaultURLs = map[string]string{
	"openai":    "https://api.openai.com/v1",
	"anthropic": "https://api.anthropic.com/v1",
	"ollama":    "http://127.0.0.1:11434",
}

// ChatProviders is the chain /v1/ask answers with: RAGPIPE_CHAT_PROVIDER
// with the RAGPIPE_CHAT_* settings, then each of RAGPIPE_CHAT_FALLBACK in
// order with its own RAGPIPE_CHAT_<PROVIDER>_* settings.
func (c Config) ChatProviders() []ChatProvider {
	own := map[string]ChatProvider{
		"openai":    {BaseURL: c.ChatOpenAIBaseURL, APIKey: c.ChatOpenAIAPIKey, Model: c.ChatOpenAIModel, Setting: "CHAT_OPENAI_"},
		"anthropic": {BaseURL: c.ChatAnthropicBaseURL, APIKey: c.ChatAnthropicAPIKey, Model: c.ChatAnthropicModel, Setting: "CHAT_ANTHROPIC_"},
		"ollama":    {BaseURL: c.ChatOllamaBaseURL, Model: c.ChatOllamaModel, Setting: "CHAT_OLLAMA_"},
	}
	out := []ChatProvider{{Name: c.ChatProvider, BaseURL: c.ChatBaseURL, APIKey: c.ChatAPIKey, Model: c.ChatModel, Setting: "CHAT_"}}
	for _, name := range c.ChatFallback {
		p := own[strings.TrimSpace(name)]
		p.Name = strings.TrimSpace(name)
		out = append(out, p)
	}
	for i := range out {
		if out[i].BaseURL == "" {
			out[i].BaseURL = chatDefaultURLs[out[i].Name]
		}
	}
	return out
}
