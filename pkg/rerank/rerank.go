// Package rerank scores search results against their query with a
// cross-encoder behind an HTTP rerank endpoint: Hugging Face's Text
// Embeddings Inference (POST {base}/rerank) or a Cohere-style API (POST
// {base}/v1/rerank, as Cohere, Jina, Voyage and vLLM serve it).
package rerank

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// APIs a Client speaks.
const (
	TEI    = "tei"
	Cohere = "cohere"
)

// Config configures a Client.
type Config struct {
	BaseURL    string       // the server's root, without /rerank or /v1/rerank
	API        string       // TEI or Cohere
	Model      string       // sent with Cohere-style requests; TEI serves one model
	APIKey     string       // sent as a bearer token when set
	HTTPClient *http.Client // nil: http.DefaultClient; each request is a client span ("POST /rerank")
}

// Client asks a rerank endpoint for scores.
type Client struct {
	cfg Config
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.API != TEI && cfg.API != Cohere {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "rerank API must be %s or %s, got %q", TEI, Cohere, cfg.API)
	}
	hc := *cmp.Or(cfg.HTTPClient, http.DefaultClient)
	hc.Transport = otelhttp.NewTransport(cmp.Or(hc.Transport, http.DefaultTransport),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	cfg.HTTPClient = &hc
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Client{cfg: cfg}, nil
}

type scored struct {
	Index          int      `json:"index"`
	Score          *float64 `json:"score"`           // TEI
	RelevanceScore *float64 `json:"relevance_score"` // Cohere
}

// Rerank returns the relevance of each text to query (higher is more
// relevant), in the order of texts. It fails unless every text got a score.
func (c *Client) Rerank(ctx context.Context, query string, texts []string) ([]float64, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	var url string
	var body any
	switch c.cfg.API {
	case TEI:
		url, body = c.cfg.BaseURL+"/rerank", map[string]any{"query": query, "texts": texts, "truncate": true}
	case Cohere:
		url, body = c.cfg.BaseURL+"/v1/rerank", map[string]any{"model": c.cfg.Model, "query": query, "documents": texts,
			"top_n": len(texts)}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	res, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rerank: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("rerank: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rerank: HTTP %d: %.200s", res.StatusCode, raw)
	}
	var list []scored
	if c.cfg.API == Cohere {
		var out struct {
			Results []scored `json:"results"`
		}
		err = json.Unmarshal(raw, &out)
		list = out.Results
	} else {
		err = json.Unmarshal(raw, &list)
	}
	if err != nil {
		return nil, fmt.Errorf("rerank: decode answer: %w", err)
	}
	scores := make([]float64, len(texts))
	seen := make([]bool, len(texts))
	for _, s := range list {
		v := s.Score
		if v == nil {
			v = s.RelevanceScore
		}
		if s.Index < 0 || s.Index >= len(texts) || v == nil || seen[s.Index] {
			return nil, fmt.Errorf("rerank: answer scores index %d badly", s.Index)
		}
		scores[s.Index], seen[s.Index] = *v, true
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("rerank: text %d got no score", i)
		}
	}
	return scores, nil
}
