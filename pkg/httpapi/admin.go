package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// QueueAdmin shows queue depth and retries archived tasks. A task not in the
// queue is ENOTFOUND, one not archived ECONFLICT, an unknown queue EINVALID.
type QueueAdmin interface {
	Stats() ([]ragpipe.QueueStats, error)
	Archived(queue string, limit int) ([]ragpipe.ArchivedTask, error)
	Retry(ctx context.Context, queue, id string) error
	RetryAll(ctx context.Context, queue string) (int, error)
}

// adminOnly admits requests bearing the operators' token. Without a
// configured token the admin API does not exist.
func adminOnly(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return ragpipe.Errorf(ragpipe.ENOTFOUND, "the admin API is off; set RAGPIPE_ADMIN_TOKEN to enable it")
			}
			if !bearerIs(c, token) {
				return ragpipe.Errorf(ragpipe.EUNAUTHORIZED, "invalid admin token")
			}
			return next(c)
		}
	}
}

// metricsAuth requires token as a bearer token when it is set; without one
// the metrics are open, for a scraper on a network of its own.
func metricsAuth(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return next(c)
			}
			if !bearerIs(c, token) {
				return ragpipe.Errorf(ragpipe.EUNAUTHORIZED, "invalid metrics token (RAGPIPE_METRICS_TOKEN)")
			}
			return next(c)
		}
	}
}

// bearerIs reports whether the request's bearer token is token, compared
// in constant time.
func bearerIs(c echo.Context, token string) bool {
	got, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// queueParam is the queue the request names; "" means every queue (for a
// retry by ID, the task's own).
func queueParam(c echo.Context) string { return c.QueryParam("queue") }

func handleQueueStats(a QueueAdmin) echo.HandlerFunc {
	return func(c echo.Context) error {
		stats, err := a.Stats()
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"queues": stats})
	}
}

func handleListArchived(a QueueAdmin) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, err := queryLimit(c, 100, 1000)
		if err != nil {
			return err
		}
		tasks, err := a.Archived(queueParam(c), limit)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"tasks": tasks})
	}
}

func handleRetryArchived(a QueueAdmin) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := a.Retry(c.Request().Context(), queueParam(c), c.Param("id")); err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, map[string]any{"retried": 1})
	}
}

func handleRetryAllArchived(a QueueAdmin) echo.HandlerFunc {
	return func(c echo.Context) error {
		n, err := a.RetryAll(c.Request().Context(), queueParam(c))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, map[string]any{"retried": n})
	}
}
