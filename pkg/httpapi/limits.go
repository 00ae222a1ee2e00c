package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// maxRequestID is the longest client X-Request-Id kept; a longer one, or one
// with other than printable ASCII, is replaced by the server's own.
const maxRequestID = 128

// cleanRequestID drops a client's X-Request-Id that is too long or not
// printable ASCII, so that the server makes one (it is logged, echoed and
// stored on jobs).
func cleanRequestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header
			if id := h.Get(echo.HeaderXRequestID); len(id) > maxRequestID ||
				strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
				h.Del(echo.HeaderXRequestID)
			}
			return next(c)
		}
	}
}

// Deadlines bound how long a connection may hold the API.
type Deadlines struct {
	// BodyIdle is the longest a request body may go without a byte arriving:
	// a withheld body is cut off after it, while a slow upload that keeps
	// sending is never cut.
	BodyIdle time.Duration
	// Write bounds writing a response, from the handler's start; event
	// streams, which keep themselves alive, and uploads, whose handler runs
	// as long as the body takes to arrive, have none.
	Write time.Duration
}

// deadlines sets the connection's read deadline for the request body (moved
// on as bytes arrive) and its write deadline, which it lifts afterwards for
// the next request on the connection.
func deadlines(d Deadlines) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			rc := http.NewResponseController(c.Response().Writer)
			if d.BodyIdle > 0 {
				_ = rc.SetReadDeadline(time.Now().Add(d.BodyIdle)) // unsupported writers (tests' recorders) only lose the bound
				c.Request().Body = &idleBody{ReadCloser: c.Request().Body, rc: rc, idle: d.BodyIdle}
			}
			if d.Write > 0 && !unboundedWrites[c.Request().Method+" "+c.Path()] {
				_ = rc.SetWriteDeadline(time.Now().Add(d.Write))
			}
			// The read deadline stays: after the handler the server may read
			// what is left of the body, which must not wait forever, and it
			// sets its own before reading the next request.
			defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
			return next(c)
		}
	}
}

// idleBody moves the connection's read deadline on after every read that
// brought bytes.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	return n, err
}

// bodyLimit reads a request body of at most limit bytes into memory before
// the handler runs, and answers 413 past it without reading the rest. The
// upload route, which streams its body under its own cap, is skipped.
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.Method == http.MethodPost && c.Path() == "/v1/documents" {
				return next(c)
			}
			if r.ContentLength > limit {
				return bodyTooLarge(limit)
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			switch {
			case err != nil && isTimeout(err):
				return ragpipe.Errorf(ragpipe.EINVALID, "the request body stopped arriving")
			case err != nil:
				return ragpipe.Errorf(ragpipe.EINVALID, "could not read the request body")
			case int64(len(b)) > limit:
				return bodyTooLarge(limit)
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			return next(c)
		}
	}
}

func bodyTooLarge(limit int64) error {
	return ragpipe.Errorf(ragpipe.ETOOLARGE, "the request body is larger than %d bytes", limit)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// knownMethods are the request methods metrics name; others count as OTHER,
// so a client cannot mint label values.
var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "OTHER"
}

// unboundedWrites are the routes without the write deadline: uploads (the
// body deadline bounds them), event streams (their own keep-alive) and
// answers (bounded by AskOptions' timeouts).
var unboundedWrites = map[string]bool{
	"POST /v1/documents":      true,
	"GET /v1/jobs/:id/events": true,
	"POST /v1/ask":            true,
	"POST /v1/ask/batch":      true,
}

// responseTime sets X-Response-Time on every response: the time from the
// request's arrival to its headers going out, in milliseconds ("12.3ms"),
// which for an event stream is its first byte.
func responseTime() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			c.Response().Before(func() {
				c.Response().Header().Set("X-Response-Time", strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64)+"ms")
			})
			return next(c)
		}
	}
}
