package httpapi

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

const (
	ctxTenant = "tenant_id"
	ctxKey    = "key_id"
)

func tenantOf(c echo.Context) string { return c.Get(ctxTenant).(string) }

func requestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

// authenticate resolves "Authorization: Bearer <key>" to the key's tenant.
func authenticate(store interface {
	TenantByKeyHash(ctx context.Context, hash []byte) (string, error)
}) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			scheme, key, ok := strings.Cut(h, " ")
			if h == "" {
				return ragpipe.Errorf(ragpipe.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <key>")
			}
			if !ok || !strings.EqualFold(scheme, "Bearer") || !apikey.WellFormed(key) {
				return ragpipe.Errorf(ragpipe.EUNAUTHORIZED, "invalid API key")
			}
			hash := apikey.Hash(key)
			tenant, err := store.TenantByKeyHash(c.Request().Context(), hash)
			if err != nil {
				return err
			}
			c.Set(ctxTenant, tenant)
			c.Set(ctxKey, hex.EncodeToString(hash[:8]))
			return next(c)
		}
	}
}

// rateLimit allows each API key limit requests, counted in Redis so that
// every API process shares the budget; past it the answer is 429 with
// Retry-After.
func rateLimit(l *redis_rate.Limiter, limit redis_rate.Limit) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			res, err := l.Allow(c.Request().Context(), "ragpipe:rate:"+c.Get(ctxKey).(string), limit)
			if err != nil {
				return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "rate limiter unavailable")
			}
			h := c.Response().Header()
			h.Set("RateLimit-Limit", strconv.Itoa(limit.Rate))
			h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
			if res.Allowed == 0 {
				secs := int(math.Ceil(res.RetryAfter.Seconds()))
				h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
				return ragpipe.Errorf(ragpipe.ERATELIMITED, "rate limit of %d requests per %s exceeded; retry in %ds",
					limit.Rate, limit.Period, max(secs, 1))
			}
			return next(c)
		}
	}
}

// logRequests logs one line per request with its ID, status and latency.
func logRequests(log *slog.Logger, m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			m.observe(c, start)
			attrs := []any{"request_id", requestID(c), "method", methodLabel(c.Request().Method),
				"path", c.Path(), "status", c.Response().Status,
				"latency_ms", fmt.Sprintf("%.1f", float64(time.Since(start).Microseconds())/1000)}
			if t, ok := c.Get(ctxTenant).(string); ok {
				attrs = append(attrs, "tenant_id", t)
			}
			if sc := trace.SpanContextFromContext(c.Request().Context()); sc.IsValid() {
				attrs = append(attrs, "trace_id", sc.TraceID().String())
			}
			log.Info("http request", attrs...)
			return nil
		}
	}
}
