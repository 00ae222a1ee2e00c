package embed

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tmc/langchaingo/llms/ollama"
)

// OllamaConfig configures an embedder on Ollama's native API.
type OllamaConfig struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:11434";
	// requests go to BaseURL + "/api/embed".
	BaseURL string
	// Model is the embedding model to ask for (it must be pulled on the
	// server; nothing is pulled from here). Required.
	Model string
	// Dimensions is the length of the vectors the model returns. Required.
	Dimensions int
	// Timeout bounds each HTTP request (one text). Zero means
	// DefaultOpenAITimeout.
	Timeout time.Duration
	// HTTPClient sends the requests. Nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Ollama embeds texts through Ollama's native embeddings API (POST
// {BaseURL}/api/embed), through langchaingo, one text per request. Its
// errors are those of OpenAI.Embed.
type Ollama struct {
	llm *ollama.LLM
	dim int
}

// NewOllama returns an Ollama embedder for cfg. It makes no request; an
// unknown model shows up on the first Embed, as a permanent error.
func NewOllama(cfg OllamaConfig) (*Ollama, error) {
	if err := checkRemote(cfg.Model, cfg.Dimensions, cfg.Timeout); err != nil {
		return nil, err
	}
	llm, err := ollama.New(ollama.WithServerURL(cfg.BaseURL), ollama.WithModel(cfg.Model),
		ollama.WithHTTPClient(RecordingClient(cfg.HTTPClient, cmp.Or(cfg.Timeout, DefaultOpenAITimeout), true)))
	if err != nil {
		return nil, fmt.Errorf("ollama client: %w", err)
	}
	return &Ollama{llm: llm, dim: cfg.Dimensions}, nil
}

// Dimensions returns the length of every vector Embed returns.
func (o *Ollama) Dimensions() int { return o.dim }

// Embed returns one vector per text, in order.
func (o *Ollama) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return embedRemote(ctx, texts, o.dim, o.llm.CreateEmbedding)
}

// Prefixed is an Embedder that puts Prefix before every text, as models such
// as e5 ("query: ", "passage: ") and bge (an instruction before queries)
// expect.
type Prefixed struct {
	Embedder
	Prefix string
}

// WithPrefix returns e with prefix put before every text, or e itself when
// prefix is empty.
func WithPrefix(e Embedder, prefix string) Embedder {
	if prefix == "" {
		return e
	}
	return &Prefixed{Embedder: e, Prefix: prefix}
}

// Embed embeds each text with the prefix before it.
func (p *Prefixed) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	in := make([]string, len(texts))
	for i, t := range texts {
		in[i] = p.Prefix + t
	}
	return p.Embedder.Embed(ctx, in)
}
