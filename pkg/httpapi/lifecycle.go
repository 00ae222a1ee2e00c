package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Subscriber signals when a job has new events.
type Subscriber interface {
	Subscribe(jobID string) (<-chan struct{}, func())
}

func handleGetJob(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		j, err := s.Job(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, j.JSON())
	}
}

func handleCancelJob(s Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		j, err := s.CancelJob(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, j.JSON())
	}
}

type reingestRequest struct {
	ChunkSize    *int `json:"chunk_size"`
	ChunkOverlap *int `json:"chunk_overlap"`
}

// handleReingest starts a new job over a document, optionally with other
// chunking settings; its chunks are swapped atomically when the job ends.
func handleReingest(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req reingestRequest
		body, err := io.ReadAll(c.Request().Body) // capped by bodyLimit
		if err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "cannot read the body")
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with optional chunk_size and chunk_overlap")
			}
		}
		chunking, err := p.Ingest.Chunking(req.ChunkSize, req.ChunkOverlap)
		if err != nil {
			return err
		}
		if err := p.Backpressure.admit(c.Request().Context(), c); err != nil {
			return err
		}
		j, err := p.Ingest.Reingest(c.Request().Context(), tenantOf(c), c.Param("id"), requestID(c), chunking)
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+j.ID)
		return c.JSON(http.StatusAccepted, j.JSON())
	}
}

// handleDeleteDocument removes a document from search at once and its data
// in the background.
func handleDeleteDocument(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if err := p.Ingest.Delete(c.Request().Context(), tenantOf(c), id, requestID(c)); err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, map[string]string{"document_id": id, "status": ragpipe.DocDeleting})
	}
}

type eventJSON struct {
	ID        int64                `json:"id"`
	JobID     string               `json:"job_id"`
	Type      ragpipe.JobEventType `json:"type"`
	Status    string               `json:"status"`
	Stage     string               `json:"stage"`
	Progress  float64              `json:"progress"`
	Data      json.RawMessage      `json:"data"`
	CreatedAt time.Time            `json:"created_at"`
}

// keepAlive is how often an idle stream sends a comment (and re-reads the
// log, in case a notification was missed).
const keepAlive = 15 * time.Second

// handleJobEvents streams a job's events as server-sent events, from the
// one after Last-Event-ID, and ends after the job's final event.
func handleJobEvents(s Store, sub Subscriber, draining <-chan struct{}) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		tenant, jobID := tenantOf(c), c.Param("id")
		j, err := s.Job(ctx, tenant, jobID)
		if err != nil {
			return err
		}
		var last int64
		if v := c.Request().Header.Get("Last-Event-ID"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return ragpipe.Errorf(ragpipe.EINVALID, "Last-Event-ID must be an event id")
			}
			last = n
		}
		wake, stop := sub.Subscribe(jobID)
		defer stop()
		w := c.Response()
		w.Header().Set(echo.HeaderContentType, "text/event-stream")
		w.Header().Set(echo.HeaderCacheControl, "no-cache")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		w.Flush()
		tick := time.NewTicker(keepAlive)
		defer tick.Stop()
		for {
			// j was read before these events: if it had ended, they include
			// the final event (written in the same transaction), and a
			// client resuming after it gets nothing more. Errors end the
			// stream, which is committed already.
			done, err := sendEvents(ctx, s, w, tenant, jobID, &last)
			if err != nil || done || j.Terminal() {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-draining:
				return nil // the client reconnects with Last-Event-ID
			case <-wake:
			case <-tick.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return nil
				}
				w.Flush()
			}
			if j, err = s.Job(ctx, tenant, jobID); err != nil {
				return nil
			}
		}
	}
}

// sendEvents writes every event after *last and reports whether the job's
// final event was among them.
func sendEvents(ctx context.Context, s Store, w *echo.Response, tenant, jobID string, last *int64) (bool, error) {
	for {
		evs, err := s.JobEvents(ctx, tenant, jobID, *last, 500)
		if err != nil {
			return false, err
		}
		for _, e := range evs {
			b, _ := json.Marshal(eventJSON{ID: e.ID, JobID: e.JobID, Type: e.Type, Status: e.Status, Stage: e.Stage,
				Progress: e.Progress, Data: e.Data, CreatedAt: e.CreatedAt})
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b); err != nil {
				return false, err
			}
			*last = e.ID
			if e.Final() {
				w.Flush()
				return true, nil
			}
		}
		w.Flush()
		if len(evs) < 500 {
			return false, nil
		}
	}
}
