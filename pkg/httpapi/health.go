package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReadyz runs every check at once, each within two seconds, and answers
// 503 naming the dependencies that failed.
func handleReadyz(checks map[string]Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		var mu sync.Mutex
		var wg sync.WaitGroup
		status := map[string]string{}
		var failed []string
		for name, check := range checks {
			wg.Go(func() {
				err := check(ctx)
				mu.Lock()
				defer mu.Unlock()
				status[name] = "ok"
				if err != nil {
					status[name] = "unreachable"
					failed = append(failed, name)
				}
			})
		}
		wg.Wait()
		if len(failed) > 0 {
			sort.Strings(failed)
			return ragpipe.Errorf(ragpipe.EUNAVAILABLE, "not ready: %s unreachable", strings.Join(failed, ", "))
		}
		return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": status})
	}
}

func handleOpenAPI(spec []byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", spec)
	}
}
