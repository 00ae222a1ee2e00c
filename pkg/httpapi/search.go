package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
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
	Query       string   `json:"query"`
	TopK        int      `json:"top_k"`
	Mode        string   `json:"mode"`
	Collection  string   `json:"collection"`
	DocumentIDs []string `json:"document_ids"`
}

type searchResultJSON struct {
	DocumentID string  `json:"document_id"`
	ChunkIndex int     `json:"chunk_index"`
	Text       string  `json:"text"`
	PageStart  int     `json:"page_start"`
	PageEnd    int     `json:"page_end"`
	Section    string  `json:"section"`
	OCR        bool    `json:"ocr"`
	Score      float64 `json:"score"`
}

func handleSearch(s Store, emb QueryEmbedder) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req searchRequest
		if err := c.Bind(&req); err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with a \"query\"")
		}
		q, err := req.validate(tenantOf(c))
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		if q.Mode != ragpipe.SearchKeyword {
			vs, err := emb.Embed(ctx, []string{q.Query})
			if err != nil {
				return providerError(c, err)
			}
			q.Vector = vs[0]
		}
		results, err := s.Search(ctx, q)
		if err != nil {
			return err
		}
		out := struct {
			Results []searchResultJSON `json:"results"`
		}{Results: make([]searchResultJSON, 0, len(results))}
		for _, r := range results {
			out.Results = append(out.Results, searchResultJSON{
				DocumentID: r.DocumentID, ChunkIndex: r.ChunkIndex, Text: r.Text,
				PageStart: r.PageStart, PageEnd: r.PageEnd, Section: r.Section, OCR: r.OCR, Score: r.Score,
			})
		}
		return c.JSON(http.StatusOK, out)
	}
}

func (r searchRequest) validate(tenant string) (ragpipe.SearchQuery, error) {
	q := ragpipe.SearchQuery{TenantID: tenant, Query: strings.TrimSpace(r.Query), TopK: r.TopK, Mode: r.Mode,
		Collection: r.Collection, DocumentIDs: r.DocumentIDs}
	if q.Query == "" {
		return q, ragpipe.Errorf(ragpipe.EINVALID, "query is required")
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
	return q, nil
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
