package platform

import (
	"context"
	"net/http"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// hashingModel names the hashing embedder's feature scheme in its embedding
// space: a change of scheme is a new space, and re-embeds every chunk.
const hashingModel = "hashing-v1"

// configuredSpace is the embedding space the configuration describes.
func configuredSpace(cfg config.Config) ragpipe.EmbeddingSpace {
	s := ragpipe.EmbeddingSpace{Provider: cfg.EmbedProvider, Dimensions: cfg.EmbedDimensions, PassagePrefix: cfg.EmbedPassagePrefix}
	switch cfg.EmbedProvider {
	case "openai":
		s.Model, s.BaseURL = cfg.OpenAIModel, cfg.OpenAIBaseURL
	case "ollama":
		s.Model, s.BaseURL = cfg.OllamaModel, cfg.OllamaBaseURL
	default:
		s.Model = hashingModel
	}
	return s
}

// spaces builds, once each, the embedders of the embedding spaces a process
// meets: the configured one, and the ones tenants still search while their
// chunks are re-embedded. A remote space takes its provider's credentials and
// limits from the configuration, its model and address from its record.
type spaces struct {
	cfg config.Config
	rdb redis.UniversalClient
	db  *postgres.DB

	mu sync.Mutex
	by map[int]embed.Embedder
}

func newSpaces(cfg config.Config, rdb redis.UniversalClient, db *postgres.DB) *spaces {
	return &spaces{cfg: cfg, rdb: rdb, db: db, by: make(map[int]embed.Embedder)}
}

// embedder returns the embedder of s, without prefixes.
func (sp *spaces) embedder(s ragpipe.EmbeddingSpace) (embed.Embedder, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if e, ok := sp.by[s.ID]; ok {
		return e, nil
	}
	e, err := newEmbedder(sp.cfg, sp.rdb, s)
	if err != nil {
		return nil, err
	}
	sp.by[s.ID] = e
	return e, nil
}

// passages returns the embedder of chunks in s: its passage prefix first.
func (sp *spaces) passages(s ragpipe.EmbeddingSpace) (embed.Embedder, error) {
	e, err := sp.embedder(s)
	if err != nil {
		return nil, err
	}
	return embed.WithPrefix(e, s.PassagePrefix), nil
}

// EmbedQuery embeds a search query in the space of the tenant's chunks, with
// the configured query prefix.
func (sp *spaces) EmbedQuery(ctx context.Context, tenantID, query string) ([]float32, int, error) {
	s, err := sp.db.TenantSpace(ctx, tenantID)
	if err != nil {
		return nil, 0, err
	}
	e, err := sp.embedder(s)
	if err != nil {
		return nil, 0, err
	}
	vs, err := embed.WithPrefix(e, sp.cfg.EmbedQueryPrefix).Embed(ctx, []string{query})
	if err != nil {
		return nil, 0, err
	}
	return vs[0], s.ID, nil
}

// newEmbedder returns the embedder of space s. A remote provider is guarded
// by shared rate limits (counted in rdb) and a circuit breaker.
func newEmbedder(cfg config.Config, rdb redis.UniversalClient, s ragpipe.EmbeddingSpace) (embed.Embedder, error) {
	switch s.Provider {
	case "openai":
		p, err := embed.NewOpenAI(embed.OpenAIConfig{
			BaseURL: s.BaseURL, APIKey: cfg.OpenAIAPIKey, Model: s.Model,
			Dimensions: s.Dimensions, BatchSize: cfg.EmbedBatchSize, Timeout: cfg.EmbedTimeout,
			HTTPClient: &http.Client{},
		})
		if err != nil {
			return nil, err
		}
		return guard(cfg, rdb, "openai", p), nil
	case "ollama":
		p, err := embed.NewOllama(embed.OllamaConfig{BaseURL: s.BaseURL, Model: s.Model,
			Dimensions: s.Dimensions, Timeout: cfg.EmbedTimeout, HTTPClient: &http.Client{}})
		if err != nil {
			return nil, err
		}
		return guard(cfg, rdb, "ollama", p), nil
	default:
		return embed.NewHashing(s.Dimensions), nil
	}
}
