package httpapi

import (
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

func handleGetDocument(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := s.Document(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, d.JSON())
	}
}

// queryLimit reads ?limit= within [1, most], defaulting to def.
func queryLimit(c echo.Context, def, most int) (int, error) {
	s := c.QueryParam("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, ragpipe.Errorf(ragpipe.EINVALID, "limit must be an integer from 1 to %d", most)
	}
	return n, nil
}

func handleListDocuments(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, err := queryLimit(c, 20, 100)
		if err != nil {
			return err
		}
		f := ragpipe.DocumentFilter{Collection: c.QueryParam("collection"), Status: c.QueryParam("status")}
		if f.Collection != "" && !collectionRe.MatchString(f.Collection) {
			return ragpipe.FieldErrorf("collection", "not a collection name")
		}
		switch f.Status {
		case "", ragpipe.DocProcessing, ragpipe.DocReady, ragpipe.DocFailed:
		default:
			return ragpipe.Errorf(ragpipe.EINVALID, "status must be processing, ready or failed")
		}
		docs, next, err := s.Documents(c.Request().Context(), tenantOf(c), f, c.QueryParam("cursor"), limit)
		if err != nil {
			return err
		}
		out := struct {
			Documents  []ragpipe.DocumentJSON `json:"documents"`
			NextCursor string                 `json:"next_cursor"`
		}{Documents: make([]ragpipe.DocumentJSON, 0, len(docs)), NextCursor: next}
		for _, d := range docs {
			out.Documents = append(out.Documents, d.JSON())
		}
		return c.JSON(http.StatusOK, out)
	}
}

type chunkJSON struct {
	Index     int    `json:"index"`
	Text      string `json:"text"`
	PageStart int    `json:"page_start"`
	PageEnd   int    `json:"page_end"`
	Section   string `json:"section"`
	OCR       bool   `json:"ocr"`
}

func handleListChunks(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		limit, err := queryLimit(c, 50, 500)
		if err != nil {
			return err
		}
		after := -1
		if cur := c.QueryParam("cursor"); cur != "" {
			n, err := strconv.Atoi(cur)
			if err != nil || n < 0 || n > math.MaxInt32 {
				return ragpipe.Errorf(ragpipe.EINVALID, "invalid cursor")
			}
			after = n
		}
		d, err := s.Document(ctx, tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		chunks, err := s.Chunks(ctx, d.TenantID, d.ID, after, limit+1)
		if err != nil {
			return err
		}
		out := struct {
			Chunks     []chunkJSON `json:"chunks"`
			NextCursor string      `json:"next_cursor"`
		}{Chunks: make([]chunkJSON, 0, len(chunks))}
		if len(chunks) > limit {
			chunks = chunks[:limit]
			out.NextCursor = strconv.Itoa(chunks[limit-1].Index)
		}
		for _, ch := range chunks {
			out.Chunks = append(out.Chunks, chunkJSON{Index: ch.Index, Text: ch.Text, PageStart: ch.PageStart, PageEnd: ch.PageEnd,
				Section: ch.Section, OCR: ch.OCR})
		}
		return c.JSON(http.StatusOK, out)
	}
}
