package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

const (
	maxQueryLen = 4096
	maxTopK     = 100
)

type searchRequest struct {
	Query string `json:"query"`
	TopK  int    `json:"top_k"`
	Mode  string `json:"mode"`
	filterRequest
	Explain bool  `json:"explain"`
	Rerank  *bool `json:"rerank"`
}

// filterRequest is what narrows and weighs a search, in every request that
// searches (search, ask).
type filterRequest struct {
	Language      string                     `json:"language"`
	Collection    string                     `json:"collection"`
	DocumentIDs   []string                   `json:"document_ids"`
	Metadata      map[string]json.RawMessage `json:"metadata"`
	CreatedAfter  string                     `json:"created_after"`
	CreatedBefore string                     `json:"created_before"`
	Weights       *struct {
		Keyword *float64 `json:"keyword"`
		Vector  *float64 `json:"vector"`
	} `json:"weights"`
}

type searchResultJSON struct {
	DocumentID  string       `json:"document_id"`
	ChunkIndex  int          `json:"chunk_index"`
	Text        string       `json:"text"`
	PageStart   int          `json:"page_start"`
	PageEnd     int          `json:"page_end"`
	Section     string       `json:"section"`
	OCR         bool         `json:"ocr"`
	Score       float64      `json:"score"`
	RerankScore *float64     `json:"rerank_score,omitempty"`
	Explain     *explainJSON `json:"explain,omitempty"`
}

type explainJSON struct {
	KeywordRank  *int     `json:"keyword_rank"`
	KeywordScore *float64 `json:"keyword_score"`
	VectorRank   *int     `json:"vector_rank"`
	VectorScore  *float64 `json:"vector_score"`
}

const (
	maxMetadataFilters = 20
	maxFilterValues    = 100
	maxWeight          = 100
)

func handleListCollections(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		cols, err := s.Collections(c.Request().Context(), tenantOf(c))
		if err != nil {
			return err
		}
		type collectionJSON struct {
			Name          string `json:"name"`
			DocumentCount int    `json:"document_count"`
			ChunkCount    int    `json:"chunk_count"`
		}
		out := struct {
			Collections []collectionJSON `json:"collections"`
		}{Collections: make([]collectionJSON, 0, len(cols))}
		for _, col := range cols {
			out.Collections = append(out.Collections, collectionJSON{Name: col.Name, DocumentCount: col.DocumentCount, ChunkCount: col.ChunkCount})
		}
		return c.JSON(http.StatusOK, out)
	}
}

// Reranker scores texts against a query with a cross-encoder (pkg/rerank).
type Reranker interface {
	Rerank(ctx context.Context, query string, texts []string) ([]float64, error)
}

// RerankOptions turn on reranking of the fused top N; a nil Reranker is off.
type RerankOptions struct {
	Reranker Reranker
	TopN     int           // how many results are reranked (and fetched, when more than top_k)
	Timeout  time.Duration // after which the fused order stands
}

// rerankJSON says whether the results were reranked, and why not.
type rerankJSON struct {
	Applied bool   `json:"applied"`
	Reason  string `json:"reason,omitempty"` // timeout or provider_error
}

func handleSearch(s Store, emb QueryEmbedder, weights ragpipe.SearchWeights, ro RerankOptions, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req searchRequest
		if err := c.Bind(&req); err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with a \"query\"")
		}
		q, err := req.validate(tenantOf(c), weights)
		if err != nil {
			return err
		}
		rerank := ro.Reranker != nil && (req.Rerank == nil || *req.Rerank)
		if req.Rerank != nil && *req.Rerank && ro.Reranker == nil {
			return ragpipe.FieldErrorf("rerank", "no reranker is configured (RAGPIPE_RERANK_URL)")
		}
		topK := q.TopK
		if rerank {
			q.TopK = max(q.TopK, min(ro.TopN, maxTopK))
		}
		ctx := c.Request().Context()
		if q.Mode != ragpipe.SearchKeyword {
			var err error
			if q.Vector, q.Space, err = emb.EmbedQuery(ctx, q.TenantID, q.Query); err != nil {
				return providerError(c, err)
			}
		}
		results, err := s.Search(ctx, q)
		if err != nil {
			return err
		}
		out := struct {
			Results []searchResultJSON `json:"results"`
			Rerank  *rerankJSON        `json:"rerank,omitempty"`
		}{Results: make([]searchResultJSON, 0, len(results))}
		for _, r := range results {
			res := searchResultJSON{
				DocumentID: r.DocumentID, ChunkIndex: r.ChunkIndex, Text: r.Text,
				PageStart: r.PageStart, PageEnd: r.PageEnd, Section: r.Section, OCR: r.OCR, Score: r.Score,
			}
			if e := r.Explain; e != nil {
				res.Explain = &explainJSON{KeywordRank: e.KeywordRank, KeywordScore: e.KeywordScore,
					VectorRank: e.VectorRank, VectorScore: e.VectorScore}
			}
			out.Results = append(out.Results, res)
		}
		if rerank && len(out.Results) > 0 {
			out.Rerank = rerankResults(ctx, ro, q.Query, out.Results, log)
		}
		out.Results = out.Results[:min(topK, len(out.Results))]
		return c.JSON(http.StatusOK, out)
	}
}

// rerankResults reorders results by the reranker's scores, or leaves the
// fused order when the reranker fails or does not answer within the timeout.
func rerankResults(ctx context.Context, ro RerankOptions, query string, results []searchResultJSON, log *slog.Logger) *rerankJSON {
	ctx, cancel := context.WithTimeout(ctx, ro.Timeout)
	defer cancel()
	texts := make([]string, len(results))
	for i, r := range results {
		texts[i] = r.Text
	}
	scores, err := ro.Reranker.Rerank(ctx, query, texts)
	if err != nil {
		reason := "provider_error"
		if ctx.Err() != nil {
			reason = "timeout"
		}
		log.Warn("rerank failed; fused order kept", "reason", reason, "err", err)
		return &rerankJSON{Reason: reason}
	}
	for i := range results {
		results[i].RerankScore = &scores[i]
	}
	slices.SortStableFunc(results, func(a, b searchResultJSON) int { return cmp.Compare(*b.RerankScore, *a.RerankScore) })
	return &rerankJSON{Applied: true}
}

func (r searchRequest) validate(tenant string, weights ragpipe.SearchWeights) (ragpipe.SearchQuery, error) {
	q := ragpipe.SearchQuery{TenantID: tenant, Query: strings.TrimSpace(r.Query), TopK: r.TopK, Mode: r.Mode,
		Explain: r.Explain, SearchFilter: ragpipe.SearchFilter{Collection: r.Collection, DocumentIDs: r.DocumentIDs}}
	if q.Query == "" {
		return q, ragpipe.Errorf(ragpipe.EINVALID, "query is required")
	}
	if err := checkText("query", q.Query); err != nil {
		return q, err
	}
	if len(q.Query) > maxQueryLen {
		return q, ragpipe.Errorf(ragpipe.EINVALID, "query is longer than %d bytes", maxQueryLen)
	}
	if q.TopK == 0 {
		q.TopK = 10
	}
	if q.TopK < 1 || q.TopK > maxTopK {
		return q, ragpipe.Errorf(ragpipe.EINVALID, "top_k must be from 1 to %d", maxTopK)
	}
	switch q.Mode {
	case "":
		q.Mode = ragpipe.SearchHybrid
	case ragpipe.SearchHybrid, ragpipe.SearchVector, ragpipe.SearchKeyword:
	default:
		return q, ragpipe.Errorf(ragpipe.EINVALID, "mode must be hybrid, vector or keyword")
	}
	for _, id := range q.DocumentIDs {
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			return q, ragpipe.Errorf(ragpipe.EINVALID, "document_ids: %q is not a document ID", id)
		}
	}
	if err := r.validateFilters(&q, weights); err != nil {
		return q, err
	}
	return q, nil
}

// validateFilters reads the filters, weights and language of a search
// (and of anything that searches); a bad one is 422 naming its field.
func (r filterRequest) validateFilters(q *ragpipe.SearchQuery, weights ragpipe.SearchWeights) error {
	if r.Collection != "" && !collectionRe.MatchString(r.Collection) {
		return ragpipe.FieldErrorf("collection", "not a collection name")
	}
	if r.Language != "" && !slices.Contains(ragpipe.Languages, r.Language) {
		return ragpipe.FieldErrorf("language", "must be one of %s", strings.Join(ragpipe.Languages, ", "))
	}
	q.Language = r.Language
	if len(r.Metadata) > maxMetadataFilters {
		return ragpipe.FieldErrorf("metadata", "at most %d fields", maxMetadataFilters)
	}
	for k, raw := range r.Metadata {
		if err := checkText("metadata", k); err != nil {
			return err
		}
		values, err := metadataValues(raw)
		if err != nil {
			return ragpipe.FieldErrorf("metadata."+k, "%v", err)
		}
		if err := checkJSONText("metadata."+k, values); err != nil {
			return err
		}
		if q.Metadata == nil {
			q.Metadata = map[string][]any{}
		}
		q.Metadata[k] = values
	}
	for _, f := range []struct {
		name string
		raw  string
		dst  **time.Time
	}{{"created_after", r.CreatedAfter, &q.CreatedAfter}, {"created_before", r.CreatedBefore, &q.CreatedBefore}} {
		if f.raw == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f.raw)
		if err != nil {
			return ragpipe.FieldErrorf(f.name, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
		}
		*f.dst = &at
	}
	q.Weights = weights
	if w := r.Weights; w != nil {
		for _, f := range []struct {
			name string
			v    *float64
			dst  *float64
		}{{"weights.keyword", w.Keyword, &q.Weights.Keyword}, {"weights.vector", w.Vector, &q.Weights.Vector}} {
			if f.v == nil {
				continue
			}
			if *f.v < 0 || *f.v > maxWeight || math.IsNaN(*f.v) {
				return ragpipe.FieldErrorf(f.name, "must be a number from 0 to %d", maxWeight)
			}
			*f.dst = *f.v
		}
		if q.Weights == (ragpipe.SearchWeights{}) {
			return ragpipe.FieldErrorf("weights", "at least one weight must be above 0")
		}
	}
	return nil
}

// metadataValues reads a metadata filter's value: a JSON scalar (equality)
// or an array of them (any of).
func metadataValues(raw json.RawMessage) ([]any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errors.New("not JSON")
	}
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	if len(list) == 0 || len(list) > maxFilterValues {
		return nil, fmt.Errorf("an array must hold 1 to %d values", maxFilterValues)
	}
	for _, x := range list {
		switch x.(type) {
		case string, float64, bool:
		default:
			return nil, errors.New("values must be strings, numbers or booleans")
		}
	}
	return list, nil
}

// providerError turns a failed call to a model provider into 504 when it
// stalled, else 503 with the provider's (or our limiter's) Retry-After.
func providerError(c echo.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ragpipe.Wrap(err, ragpipe.ETIMEOUT, "the embedding provider did not answer in time")
	}
	var wait interface{ RetryAfter() time.Duration }
	if errors.As(err, &wait) && wait.RetryAfter() > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.RetryAfter().Seconds()))))
	}
	return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "the embedding provider is unavailable; retry later")
}
