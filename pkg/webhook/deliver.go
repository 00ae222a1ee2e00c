package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// DefaultSchedule is the wait before each retry: 11 retries over about
// 2.8 days, so 12 attempts in all. Each wait is jittered by ±20%.
var DefaultSchedule = []time.Duration{
	5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
	4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 16 * time.Hour, 24 * time.Hour,
}

// maxRetryAfter caps how long a receiver's Retry-After can hold a delivery.
const maxRetryAfter = 24 * time.Hour

// responseKeep is how much of a receiver's answer the attempt log keeps.
const responseKeep = 1024

// Store is what deliveries read and record.
type Store interface {
	OutgoingWebhook(ctx context.Context, deliveryID string) (*ragpipe.OutgoingWebhook, error)
	RecordWebhookAttempt(ctx context.Context, deliveryID string, a ragpipe.WebhookAttempt, o ragpipe.AttemptOutcome) (disabled bool, err error)
	CancelDelivery(ctx context.Context, deliveryID, reason string) error
}

// Params are a Deliverer's dependencies and settings.
type Params struct {
	Store        Store
	Client       *http.Client // see NewClient; its timeout is the per-attempt timeout
	Schedule     []time.Duration
	DisableAfter time.Duration // an endpoint failing every attempt this long is disabled; 0 never
	Logger       *slog.Logger
	Now          func() time.Time // nil for time.Now
}

// Deliverer runs delivery tasks.
type Deliverer struct {
	p Params
}

// NewDeliverer returns a Deliverer; an empty schedule means DefaultSchedule.
func NewDeliverer(p Params) *Deliverer {
	if len(p.Schedule) == 0 {
		p.Schedule = DefaultSchedule
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Deliverer{p: p}
}

// Handlers returns the delivery task's handler, by task type.
func (d *Deliverer) Handlers() map[ragpipe.TaskType]ragpipe.TaskHandler {
	return map[ragpipe.TaskType]ragpipe.TaskHandler{ragpipe.TaskWebhookDeliver: d.Handle}
}

// retryError asks for another attempt, after at least `after` when set.
type retryError struct {
	after time.Duration
	msg   string
}

func (e *retryError) Error() string { return e.msg }

// Handle makes one attempt of a delivery. It returns an error only to ask
// the queue for a retry; a delivery that succeeded, failed for good or lost
// its endpoint returns nil, its state being in the store.
func (d *Deliverer) Handle(ctx context.Context, t ragpipe.TaskRun) error {
	p, err := ragpipe.DecodeTask(t.Type, t.Payload)
	if err != nil {
		return err
	}
	log := d.p.Logger.With("delivery_id", p.DeliveryID)
	out, err := d.p.Store.OutgoingWebhook(ctx, p.DeliveryID)
	if ragpipe.ErrorCode(err) == ragpipe.ENOTFOUND {
		return nil // its endpoint was deleted, and the delivery with it
	}
	if err != nil {
		return err
	}
	if out.Delivery.Status != ragpipe.DeliveryPending {
		return nil // delivered (or given up) already: a duplicate task
	}
	if !out.Active {
		return d.p.Store.CancelDelivery(ctx, p.DeliveryID, "endpoint disabled or deleted")
	}
	a, retryAfter := d.attempt(ctx, out)

	o := ragpipe.AttemptOutcome{Status: ragpipe.DeliverySucceeded}
	switch {
	case a.StatusCode >= 200 && a.StatusCode < 300:
	case a.StatusCode == http.StatusGone:
		o = ragpipe.AttemptOutcome{Status: ragpipe.DeliveryFailed, DisableReason: "the endpoint answered 410 Gone"}
	case t.Retried >= len(d.p.Schedule):
		o = ragpipe.AttemptOutcome{Status: ragpipe.DeliveryFailed, DisableAfter: d.p.DisableAfter}
	default:
		o = ragpipe.AttemptOutcome{Status: ragpipe.DeliveryPending, DisableAfter: d.p.DisableAfter}
	}
	// Record even if the task's context ended: the receiver saw the request.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	disabled, err := d.p.Store.RecordWebhookAttempt(rctx, p.DeliveryID, a, o)
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if disabled {
		log.Warn("webhook endpoint disabled", "endpoint_id", out.Delivery.EndpointID, "status", a.StatusCode, "err", a.Error)
		if o.Status == ragpipe.DeliveryPending {
			return d.p.Store.CancelDelivery(rctx, p.DeliveryID, "endpoint disabled")
		}
		return nil
	}
	if o.Status != ragpipe.DeliveryPending {
		return nil
	}
	msg := a.Error
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d", a.StatusCode)
	}
	return &retryError{after: retryAfter, msg: "attempt failed: " + msg}
}

// attempt sends the event once. retryAfter is the receiver's Retry-After on
// a 429 or 503.
func (d *Deliverer) attempt(ctx context.Context, out *ragpipe.OutgoingWebhook) (a ragpipe.WebhookAttempt, retryAfter time.Duration) {
	a.StartedAt = d.p.Now()
	headers, err := Headers(out.Secrets, out.Delivery.EventID, a.StartedAt, out.Body)
	if err != nil {
		a.Error = err.Error()
		return a, 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, out.Delivery.URL, bytes.NewReader(out.Body))
	if err != nil {
		a.Error = "bad URL: " + err.Error()
		return a, 0
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ragpipe-webhooks/1")
	start := time.Now()
	res, err := d.p.Client.Do(req)
	if err != nil {
		a.Latency = time.Since(start)
		a.Error = describe(err)
		return a, 0
	}
	defer res.Body.Close()
	head, err := io.ReadAll(io.LimitReader(res.Body, responseKeep))
	a.Latency = time.Since(start)
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	a.StatusCode = res.StatusCode
	a.Response = validUTF8(head)
	if err != nil {
		a.Error = "reading the response: " + describe(err)
	}
	switch {
	case res.StatusCode >= 300 && res.StatusCode < 400:
		a.Error = "redirect to " + res.Header.Get("Location") + " not followed"
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable:
		retryAfter = parseRetryAfter(res.Header.Get("Retry-After"), a.StartedAt)
	}
	return a, retryAfter
}

func validUTF8(b []byte) string {
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1] // a rune cut at the KiB boundary
	}
	return string(b)
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// RetryDelay is the webhook queue's wait before the n-th retry: the
// receiver's Retry-After when it gave one, else the n-th step of the
// schedule with ±20% jitter.
func (d *Deliverer) RetryDelay(n int, err error) time.Duration {
	var re *retryError
	if errors.As(err, &re) && re.after > 0 {
		// The queue schedules retries at whole seconds and may run one up
		// to a second early; the extra second keeps the receiver's "not before".
		return re.after + time.Second
	}
	step := d.p.Schedule[min(n, len(d.p.Schedule)-1)]
	return Jitter(step)
}

// Jitter spreads d uniformly over ±20%.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	span := int64(d) * 2 / 5
	if span <= 0 {
		return d
	}
	return time.Duration(int64(d) - span/2 + rand.Int64N(span+1))
}
