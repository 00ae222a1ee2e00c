package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// statusOf maps each domain error code to its HTTP status.
var statusOf = map[string]int{
	ragpipe.EINVALID:       http.StatusBadRequest,
	ragpipe.EINCOMPLETE:    http.StatusBadRequest,
	ragpipe.ETOKENLIMIT:    http.StatusBadRequest,
	ragpipe.EUNAUTHORIZED:  http.StatusUnauthorized,
	ragpipe.ENOTFOUND:      http.StatusNotFound,
	ragpipe.ECONFLICT:      http.StatusConflict,
	ragpipe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	ragpipe.EUNSUPPORTED:   http.StatusUnsupportedMediaType,
	ragpipe.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	ragpipe.ERATELIMITED:   http.StatusTooManyRequests,
	ragpipe.EINTERNAL:      http.StatusInternalServerError,
	ragpipe.EUNAVAILABLE:   http.StatusServiceUnavailable,
	ragpipe.ETIMEOUT:       http.StatusGatewayTimeout,
}

// codeOfStatus names the errors Echo itself raises (unknown route, wrong method).
var codeOfStatus = map[int]string{
	http.StatusNotFound:              ragpipe.ENOTFOUND,
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: ragpipe.ETOOLARGE,
	http.StatusUnsupportedMediaType:  ragpipe.EUNSUPPORTED,
	http.StatusBadRequest:            ragpipe.EINVALID,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Field     string         `json:"field,omitempty"` // the request field at fault, for invalid_<field> codes
	RequestID string         `json:"request_id"`
	Details   map[string]int `json:"-"` // written beside the fields above
}

// MarshalJSON writes d's Details as fields of its own.
func (d errorDetail) MarshalJSON() ([]byte, error) {
	type plain errorDetail
	b, err := json.Marshal(plain(d))
	if err != nil || len(d.Details) == 0 {
		return b, err
	}
	extra, err := json.Marshal(d.Details)
	if err != nil {
		return nil, err
	}
	return append(append(b[:len(b)-1], ','), extra[1:]...), nil
}

// errorHandler is the one place errors become HTTP answers: every error is
// written as {"error": {code, message, request_id}}. Domain errors keep their
// code's status and their message; an error unavailable says is a backing
// service out of reach is a 503 with Retry-After; anything else is logged
// and answered with a generic 500.
func errorHandler(log *slog.Logger, unavailable, invalid func(error) bool) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		status, body := http.StatusInternalServerError, errorDetail{Code: ragpipe.EINTERNAL, Message: "internal error", RequestID: rid}
		var de *ragpipe.Error
		var he *echo.HTTPError
		switch {
		case errors.As(err, &de) && de.Field != "":
			status = http.StatusUnprocessableEntity
			body.Code, body.Message, body.Field = de.Code, de.Message, de.Field
		case errors.As(err, &de):
			if s, ok := statusOf[de.Code]; ok {
				status = s
				body.Code, body.Message, body.Details = de.Code, de.Message, de.Details
			}
		case invalid != nil && invalid(err):
			// Edge validation should have caught it: logged as a warning to fix there.
			status = http.StatusBadRequest
			body.Code, body.Message = ragpipe.EINVALID, "a value in the request cannot be stored or compared"
			log.Warn("invalid input reached the database", "request_id", rid, "path", c.Path(), "err", err)
		case unavailable != nil && unavailable(err):
			status = http.StatusServiceUnavailable
			body.Code, body.Message = ragpipe.EUNAVAILABLE, "a backing service (database or network) is unavailable; retry shortly"
			c.Response().Header().Set("Retry-After", "5")
		case errors.As(err, &he):
			status = he.Code
			body.Code = codeOfStatus[he.Code]
			if body.Code == "" {
				body.Code = http.StatusText(he.Code)
			}
			body.Message = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok {
				body.Message = m
			}
		}
		if status >= 500 {
			log.Error("request failed", "request_id", rid, "method", c.Request().Method,
				"path", c.Path(), "err", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		if werr := c.JSON(status, errorBody{Error: body}); werr != nil {
			log.Warn("write error response", "request_id", rid, "err", werr)
		}
	}
}
