package embed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/tmc/langchaingo/embeddings"
	"github.com/tmc/langchaingo/llms/openai"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Defaults for the zero values of OpenAIConfig.
const (
	DefaultOpenAIBatchSize = 100
	DefaultOpenAITimeout   = 60 * time.Second
)

// OpenAIConfig configures an OpenAI-compatible embeddings client.
type OpenAIConfig struct {
	// BaseURL is the API root including its version path; requests go to
	// BaseURL + "/embeddings". Examples: "https://api.openai.com/v1" (the
	// default when empty), "http://localhost:11434/v1" for Ollama.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>". Empty sends no
	// Authorization header, for local servers that need none.
	APIKey string
	// Model is the embedding model to ask for. Required.
	Model string
	// Dimensions is the length of the vectors the model returns. Required: a
	// response with vectors of any other length is a permanent error.
	Dimensions int
	// SendDimensions asks the server for Dimensions-long vectors (the
	// "dimensions" request field). OpenAI's text-embedding-3 models honour it;
	// older models and many compatible servers reject the field, so it is off
	// by default.
	SendDimensions bool
	// BatchSize is the most texts sent in one request. Zero means
	// DefaultOpenAIBatchSize. OpenAI accepts up to 2048 inputs and 300k tokens
	// per request; local servers often far fewer.
	BatchSize int
	// Timeout bounds each HTTP request (one batch), reading the response
	// included. Zero means DefaultOpenAITimeout.
	Timeout time.Duration
	// HTTPClient sends the requests. Nil means http.DefaultClient.
	HTTPClient *http.Client
}

// OpenAI embeds texts through an OpenAI-compatible embeddings endpoint
// (POST {BaseURL}/embeddings), sending at most BatchSize texts per request,
// one request after another. Texts are sent verbatim; the endpoint may reject
// empty strings or texts longer than the model's context.
//
// Errors other than the caller's ctx being done are *ProviderError; use
// IsPermanent to tell a failure worth retrying from one that is not.
type OpenAI struct {
	embedder *embeddings.EmbedderImpl
	dim      int
}

// NewOpenAI returns an OpenAI embedder for cfg. It makes no request; a bad
// key or model shows up on the first Embed. An invalid cfg is a
// ragpipe.EINVALID error. Nothing is read from the environment (langchaingo's
// OPENAI_* variables are overridden).
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if err := checkRemote(cfg.Model, cfg.Dimensions, cfg.Timeout); err != nil {
		return nil, err
	}
	if cfg.BatchSize < 0 {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "embedding batch size must not be negative, got %d", cfg.BatchSize)
	}
	batch := cfg.BatchSize
	if batch == 0 {
		batch = DefaultOpenAIBatchSize
	}
	client := RecordingClient(cfg.HTTPClient, cmp.Or(cfg.Timeout, DefaultOpenAITimeout), cfg.APIKey == "")
	token := cfg.APIKey
	if token == "" {
		token = "none" // langchaingo insists on a token; doer drops the header
	}
	opts := []openai.Option{
		openai.WithToken(token),
		openai.WithBaseURL(cfg.BaseURL),
		openai.WithOrganization(""),
		openai.WithEmbeddingModel(cfg.Model),
		openai.WithHTTPClient(client),
	}
	if cfg.SendDimensions {
		opts = append(opts, openai.WithEmbeddingDimensions(cfg.Dimensions))
	}
	llm, err := openai.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("openai client: %w", err)
	}
	// Newlines are kept: current models do not need them stripped, and
	// langchaingo strips them in the caller's slice.
	e, err := embeddings.NewEmbedder(llm, embeddings.WithBatchSize(batch), embeddings.WithStripNewLines(false))
	if err != nil {
		return nil, fmt.Errorf("openai embedder: %w", err)
	}
	return &OpenAI{embedder: e, dim: cfg.Dimensions}, nil
}

// checkRemote checks what every remote provider's configuration needs.
func checkRemote(model string, dim int, timeout time.Duration) error {
	switch {
	case model == "":
		return ragpipe.Errorf(ragpipe.EINVALID, "embedding model is required")
	case dim <= 0:
		return ragpipe.Errorf(ragpipe.EINVALID, "embedding dimensions must be positive, got %d", dim)
	case timeout < 0:
		return ragpipe.Errorf(ragpipe.EINVALID, "embedding timeout must not be negative, got %s", timeout)
	}
	return nil
}

// Dimensions returns the length of every vector Embed returns.
func (o *OpenAI) Dimensions() int { return o.dim }

// Embed returns one vector per text, in order. If ctx is done it returns
// ctx's error (wrapped); any other failure is a *ProviderError, and no
// partial result is returned.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return embedRemote(ctx, texts, o.dim, o.embedder.EmbedDocuments)
}

// embedRemote runs one provider call, embed, over texts through a recording
// client (see recordingClient) and checks what came back: one vector per
// text, each of dim values. Failures are classified as Embed documents.
func embedRemote(ctx context.Context, texts []string, dim int, embed func(context.Context, []string) ([][]float32, error)) ([][]float32, error) {
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	ectx, ex := WithExchange(ctx)
	vecs, err := embed(ectx, texts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("embedding: %w", context.Cause(ctx))
		}
		return nil, ex.Classify(err)
	}
	if len(vecs) != len(texts) {
		return nil, &ProviderError{StatusCode: ex.status,
			Err: fmt.Errorf("got %d vectors for %d texts", len(vecs), len(texts))}
	}
	for _, v := range vecs {
		if len(v) != dim {
			return nil, &ProviderError{StatusCode: ex.status, Permanent: true,
				Err: fmt.Errorf("got a %d-dimensional vector, configured for %d", len(v), dim)}
		}
	}
	return vecs, nil
}

// ProviderError is a failed call to an embedding provider.
type ProviderError struct {
	// StatusCode is the HTTP status of the provider's last answer, 0 if none
	// arrived (connection refused, timeout, reset).
	StatusCode int
	// Permanent reports that repeating the same call cannot succeed: the
	// provider rejected it with a 4xx other than 408 and 429 (bad key, unknown
	// model, input too long), or answered vectors of the wrong dimension.
	// Everything else (5xx, 408, 429, network errors, timeouts, malformed
	// answers) is transient.
	Permanent bool
	// Err is the cause. For network failures it is the transport error, so
	// errors.Is works with context.DeadlineExceeded or syscall.ECONNREFUSED.
	Err error
	// Wait is how long the provider asked callers to wait (its Retry-After
	// header on a 429 or a 5xx), 0 if it did not say.
	Wait time.Duration
	// Provider names the provider in the message; "" is "embedding provider".
	Provider string
}

// RetryAfter is how long the provider asked to wait before trying again;
// queue.RetryDelay honours it.
func (e *ProviderError) RetryAfter() time.Duration { return e.Wait }

func (e *ProviderError) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	who := cmp.Or(e.Provider, "embedding provider")
	if e.StatusCode != 0 {
		return fmt.Sprintf("%s (%s, HTTP %d): %v", who, kind, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("%s (%s): %v", who, kind, e.Err)
}

func (e *ProviderError) Unwrap() error { return e.Err }

// IsPermanent reports whether err holds a permanent *ProviderError: retrying
// the same texts with the same configuration would fail again.
func IsPermanent(err error) bool {
	var pe *ProviderError
	return errors.As(err, &pe) && pe.Permanent
}

// Exchange records the outcome of the latest HTTP request of one provider
// call made through a RecordingClient. langchaingo flattens status codes
// and transport errors into strings ("network error: failed to reach API
// server"); this keeps them for classification. Requests of one call run
// one after another, so it needs no lock.
type Exchange struct {
	status int
	err    error         // transport error, while sending or reading the body
	wait   time.Duration // the answer's Retry-After, if any
}

type exchangeKey struct{}

// WithExchange returns ctx carrying a fresh Exchange that a
// RecordingClient's requests made with it fill in.
func WithExchange(ctx context.Context) (context.Context, *Exchange) {
	ex := &Exchange{}
	return context.WithValue(ctx, exchangeKey{}, ex), ex
}

// Classify turns err, the failure of a call the exchange recorded, into a
// *ProviderError: the transport's error when there was one, else permanent
// for a 4xx other than 408 and 429, with the answer's Retry-After.
func (ex *Exchange) Classify(err error) *ProviderError {
	if ex.err != nil {
		return &ProviderError{StatusCode: ex.status, Err: ex.err, Wait: ex.wait}
	}
	s := ex.status
	permanent := s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
	return &ProviderError{StatusCode: s, Permanent: permanent, Err: err, Wait: ex.wait}
}

// RecordingClient returns the HTTP client handed to langchaingo: base's
// transport (http.DefaultTransport when base or its transport is nil) behind
// one that applies the per-request timeout (none when 0; the request lasts
// until its body is closed), drops the placeholder Authorization header
// when noAuth, and records each request's outcome in the Exchange found in
// its context (see WithExchange). Each request is a client span, named by
// method and path ("POST /v1/embeddings"), whose trace context goes to the
// provider in a traceparent header.
func RecordingClient(base *http.Client, timeout time.Duration, noAuth bool) *http.Client {
	rt := http.DefaultTransport
	if base != nil && base.Transport != nil {
		rt = base.Transport
	}
	rt = otelhttp.NewTransport(rt, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
	return &http.Client{Transport: &recorder{base: rt, timeout: timeout, noAuth: noAuth}}
}

type recorder struct {
	base    http.RoundTripper
	timeout time.Duration
	noAuth  bool
}

func (d *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*Exchange)
	if ex == nil {
		ex = new(Exchange)
	}
	*ex = Exchange{}
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if d.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
	}
	req = req.Clone(ctx)
	if d.noAuth {
		req.Header.Del("Authorization")
	}
	resp, err := d.base.RoundTrip(req)
	if err != nil {
		cancel()
		ex.err = err
		return nil, err
	}
	ex.status = resp.StatusCode
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		ex.wait = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	resp.Body = &recordingBody{ReadCloser: resp.Body, cancel: cancel, ex: ex}
	return resp, nil
}

// recordingBody ends the request's timeout when closed and records read
// errors, which langchaingo reports only as a failure to decode.
type recordingBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	ex     *Exchange
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.ex.err = err
	}
	return n, err
}

func (b *recordingBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// ParseRetryAfter parses a Retry-After value, seconds or an HTTP date, capped at
// an hour; 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}
