package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// WebhookStore is the state the webhook endpoints read and write.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, e *ragpipe.WebhookEndpoint) error
	Webhook(ctx context.Context, tenantID, id string) (*ragpipe.WebhookEndpoint, error)
	Webhooks(ctx context.Context, tenantID string) ([]*ragpipe.WebhookEndpoint, error)
	UpdateWebhook(ctx context.Context, tenantID, id string, u ragpipe.WebhookUpdate) (*ragpipe.WebhookEndpoint, error)
	DeleteWebhook(ctx context.Context, tenantID, id string) error
	RotateWebhookSecret(ctx context.Context, tenantID, id, secret string, overlap time.Duration) (*ragpipe.WebhookEndpoint, error)
	RevealCallbackSecret(ctx context.Context, tenantID, candidate string) (*ragpipe.CallbackSecret, error)
	RotateCallbackSecret(ctx context.Context, tenantID, secret string, overlap time.Duration) (*ragpipe.CallbackSecret, error)
	CreateTestEvent(ctx context.Context, tenantID, webhookID string) (string, ragpipe.Task, error)
	Redeliver(ctx context.Context, tenantID, webhookID, deliveryID string) (string, ragpipe.Task, error)
	WebhookDeliveries(ctx context.Context, tenantID, webhookID string, f ragpipe.DeliveryFilter, cursor string, limit int) ([]*ragpipe.WebhookDelivery, string, error)
}

// URLGuard refuses webhook targets the platform must not call.
type URLGuard interface {
	CheckURL(ctx context.Context, raw string) error
}

const (
	maxJSONBody          = 64 << 10
	maxDescription       = 500
	maxOverlap           = 7 * 24 * time.Hour
	maxWebhooksPerTenant = 50
)

type webhookJSON struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	Events                  []string   `json:"events"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          string     `json:"disabled_reason,omitempty"`
	DisabledAt              *time.Time `json:"disabled_at,omitempty"`
	FailingSince            *time.Time `json:"failing_since,omitempty"`
	Secret                  string     `json:"secret,omitempty"` // only when created or rotated
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

func toWebhook(e *ragpipe.WebhookEndpoint, withSecret bool) webhookJSON {
	out := webhookJSON{ID: e.ID, URL: e.URL, Description: e.Description, Events: e.Events, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, DisabledAt: e.DisabledAt, FailingSince: e.FailingSince,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if e.PreviousSecretExpiresAt != nil && e.PreviousSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretExpiresAt = e.PreviousSecretExpiresAt
	}
	if withSecret {
		out.Secret = e.Secret
	}
	return out
}

// decodeJSON reads a JSON object body into v; an empty body leaves v alone
// when optional. bodyLimit has capped and read the body already.
func decodeJSON(c echo.Context, v any, optional bool) error {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return ragpipe.Errorf(ragpipe.EINVALID, "could not read the body")
	}
	if len(b) == 0 && optional {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object: %v", err)
	}
	return nil
}

// validEvents checks and de-duplicates a subscription's event list.
func validEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "events must list at least one event type, or \"*\"")
	}
	var out []string
	for _, ev := range events {
		if ev != string(ragpipe.EventAll) && !ragpipe.KnownEventType(ev) {
			return nil, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "unknown event type %q", ev)
		}
		if !slices.Contains(out, ev) {
			out = append(out, ev)
		}
	}
	return out, nil
}

func validDescription(d string) error {
	if !utf8.ValidString(d) || utf8.RuneCountInString(d) > maxDescription || strings.ContainsRune(d, 0) {
		return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "description must be valid UTF-8 of at most %d characters", maxDescription)
	}
	return nil
}

func handleCreateWebhook(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req struct {
			URL         string   `json:"url"`
			Events      []string `json:"events"`
			Description string   `json:"description"`
		}
		if err := decodeJSON(c, &req, false); err != nil {
			return err
		}
		ctx, tenant := c.Request().Context(), tenantOf(c)
		events, err := validEvents(req.Events)
		if err != nil {
			return err
		}
		if err := validDescription(req.Description); err != nil {
			return err
		}
		if req.URL == "" {
			return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "url is required")
		}
		if err := p.WebhookGuard.CheckURL(ctx, req.URL); err != nil {
			return err
		}
		existing, err := p.Webhooks.Webhooks(ctx, tenant)
		if err != nil {
			return err
		}
		if len(existing) >= maxWebhooksPerTenant {
			return ragpipe.Errorf(ragpipe.ECONFLICT, "a tenant has at most %d webhooks", maxWebhooksPerTenant)
		}
		e := &ragpipe.WebhookEndpoint{ID: uuid.NewString(), TenantID: tenant, URL: req.URL,
			Description: req.Description, Events: events, Secret: p.NewSecret()}
		if err := p.Webhooks.CreateWebhook(ctx, e); err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/webhooks/"+e.ID)
		return c.JSON(http.StatusCreated, toWebhook(e, true))
	}
}

func handleListWebhooks(s WebhookStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		list, err := s.Webhooks(c.Request().Context(), tenantOf(c))
		if err != nil {
			return err
		}
		out := struct {
			Webhooks []webhookJSON `json:"webhooks"`
		}{Webhooks: make([]webhookJSON, 0, len(list))}
		for _, e := range list {
			out.Webhooks = append(out.Webhooks, toWebhook(e, false))
		}
		return c.JSON(http.StatusOK, out)
	}
}

func handleGetWebhook(s WebhookStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		e, err := s.Webhook(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toWebhook(e, false))
	}
}

func handleUpdateWebhook(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req struct {
			URL         *string   `json:"url"`
			Events      *[]string `json:"events"`
			Description *string   `json:"description"`
			Enabled     *bool     `json:"enabled"`
		}
		if err := decodeJSON(c, &req, false); err != nil {
			return err
		}
		ctx := c.Request().Context()
		u := ragpipe.WebhookUpdate{URL: req.URL, Description: req.Description, Enabled: req.Enabled}
		if req.Events != nil {
			events, err := validEvents(*req.Events)
			if err != nil {
				return err
			}
			u.Events = events
		}
		if req.Description != nil {
			if err := validDescription(*req.Description); err != nil {
				return err
			}
		}
		if req.URL != nil {
			if err := p.WebhookGuard.CheckURL(ctx, *req.URL); err != nil {
				return err
			}
		}
		e, err := p.Webhooks.UpdateWebhook(ctx, tenantOf(c), c.Param("id"), u)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toWebhook(e, false))
	}
}

func handleDeleteWebhook(s WebhookStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.DeleteWebhook(c.Request().Context(), tenantOf(c), c.Param("id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// overlapOf reads the optional {"overlap_seconds": n} of a rotation.
func overlapOf(c echo.Context, def time.Duration) (time.Duration, error) {
	var req struct {
		OverlapSeconds *int64 `json:"overlap_seconds"`
	}
	if err := decodeJSON(c, &req, true); err != nil {
		return 0, err
	}
	if req.OverlapSeconds == nil {
		return def, nil
	}
	d := time.Duration(*req.OverlapSeconds) * time.Second
	if *req.OverlapSeconds < 0 || d > maxOverlap {
		return 0, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "overlap_seconds must be from 0 to %d", int64(maxOverlap/time.Second))
	}
	return d, nil
}

func handleRotateWebhookSecret(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		overlap, err := overlapOf(c, p.WebhookSecretOverlap)
		if err != nil {
			return err
		}
		e, err := p.Webhooks.RotateWebhookSecret(c.Request().Context(), tenantOf(c), c.Param("id"), p.NewSecret(), overlap)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toWebhook(e, true))
	}
}

type deliveryAccepted struct {
	DeliveryID string `json:"delivery_id"`
}

func handleTestWebhook(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, task, err := p.Webhooks.CreateTestEvent(c.Request().Context(), tenantOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		p.Ingest.Handoff(c.Request().Context(), task)
		return c.JSON(http.StatusAccepted, deliveryAccepted{DeliveryID: id})
	}
}

func handleRedeliver(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, task, err := p.Webhooks.Redeliver(c.Request().Context(), tenantOf(c), c.Param("id"), c.Param("delivery_id"))
		if err != nil {
			return err
		}
		p.Ingest.Handoff(c.Request().Context(), task)
		return c.JSON(http.StatusAccepted, deliveryAccepted{DeliveryID: id})
	}
}

type attemptJSON struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	LatencyMS  int64     `json:"latency_ms"`
	Response   string    `json:"response"`
	Error      string    `json:"error"`
}

type deliveryJSON struct {
	ID             string            `json:"id"`
	EventID        string            `json:"event_id"`
	EventType      ragpipe.EventType `json:"event_type"`
	URL            string            `json:"url"`
	Status         string            `json:"status"`
	Attempts       int               `json:"attempts"`
	LastStatusCode int               `json:"last_status_code"`
	LastError      string            `json:"last_error"`
	RedeliveryOf   string            `json:"redelivery_of,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	DeliveredAt    *time.Time        `json:"delivered_at"`
	AttemptLog     []attemptJSON     `json:"attempt_log"`
}

func toDelivery(d *ragpipe.WebhookDelivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, URL: d.URL, Status: d.Status,
		Attempts: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError, RedeliveryOf: d.RedeliveryOf,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt,
		AttemptLog: make([]attemptJSON, 0, len(d.AttemptLog))}
	for _, a := range d.AttemptLog {
		out.AttemptLog = append(out.AttemptLog, attemptJSON{Attempt: a.Attempt, At: a.StartedAt, StatusCode: a.StatusCode,
			LatencyMS: a.Latency.Milliseconds(), Response: a.Response, Error: a.Error})
	}
	return out
}

func handleListDeliveries(s WebhookStore) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, err := queryLimit(c, 20, 100)
		if err != nil {
			return err
		}
		f := ragpipe.DeliveryFilter{EventType: c.QueryParam("event"), Status: c.QueryParam("status")}
		if f.EventType != "" && !ragpipe.KnownEventType(f.EventType) {
			return ragpipe.Errorf(ragpipe.EINVALID, "unknown event type %q", f.EventType)
		}
		switch f.Status {
		case "", ragpipe.DeliveryPending, ragpipe.DeliverySucceeded, ragpipe.DeliveryFailed, ragpipe.DeliveryCanceled:
		default:
			return ragpipe.Errorf(ragpipe.EINVALID, "status must be pending, succeeded, failed or canceled")
		}
		list, next, err := s.WebhookDeliveries(c.Request().Context(), tenantOf(c), c.Param("id"), f, c.QueryParam("cursor"), limit)
		if err != nil {
			return err
		}
		out := struct {
			Deliveries []deliveryJSON `json:"deliveries"`
			NextCursor string         `json:"next_cursor,omitempty"`
		}{Deliveries: make([]deliveryJSON, 0, len(list)), NextCursor: next}
		for _, d := range list {
			out.Deliveries = append(out.Deliveries, toDelivery(d))
		}
		return c.JSON(http.StatusOK, out)
	}
}

type callbackSecretJSON struct {
	Secret                  string     `json:"secret,omitempty"`
	Revealed                bool       `json:"revealed"`
	RevealedAt              *time.Time `json:"revealed_at,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	RotatedAt               *time.Time `json:"rotated_at,omitempty"`
}

func toCallbackSecret(s *ragpipe.CallbackSecret) callbackSecretJSON {
	out := callbackSecretJSON{Secret: s.Secret, Revealed: s.Secret == "", RevealedAt: s.RevealedAt,
		CreatedAt: s.CreatedAt, RotatedAt: s.RotatedAt}
	if s.PreviousSecretExpiresAt != nil && s.PreviousSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretExpiresAt = s.PreviousSecretExpiresAt
	}
	return out
}

// handleGetCallbackSecret shows the tenant's callback secret the first time
// it is asked for (creating it if no upload has yet); afterwards only its
// dates, with "revealed": true. A lost secret is replaced by rotating.
func handleGetCallbackSecret(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		sec, err := p.Webhooks.RevealCallbackSecret(c.Request().Context(), tenantOf(c), p.NewSecret())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toCallbackSecret(sec))
	}
}

func handleRotateCallbackSecret(p Params) echo.HandlerFunc {
	return func(c echo.Context) error {
		overlap, err := overlapOf(c, p.WebhookSecretOverlap)
		if err != nil {
			return err
		}
		sec, err := p.Webhooks.RotateCallbackSecret(c.Request().Context(), tenantOf(c), p.NewSecret(), overlap)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toCallbackSecret(sec))
	}
}

// checkCallbackURL validates an upload's callback_url like a subscription's.
func checkCallbackURL(ctx context.Context, g URLGuard, raw string) error {
	if g == nil {
		return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "callbacks are not enabled")
	}
	err := g.CheckURL(ctx, raw)
	var de *ragpipe.Error
	if errors.As(err, &de) {
		return ragpipe.Errorf(de.Code, "callback_url: %s", de.Message)
	}
	return err
}
