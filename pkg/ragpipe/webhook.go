package ragpipe

import (
	"slices"
	"time"
)

// EventType names a webhook event.
type EventType string

// Webhook event types. EventAll in a subscription means every event except
// the opt-in EventJobProgress.
const (
	EventDocumentReady   EventType = "document.ready"
	EventDocumentFailed  EventType = "document.failed"
	EventDocumentDeleted EventType = "document.deleted"
	EventJobProgress     EventType = "job.progress"
	EventWebhookTest     EventType = "webhook.test"
	EventAll             EventType = "*"
)

// EventTypes are the types a subscription may name besides EventAll.
var EventTypes = []EventType{EventDocumentReady, EventDocumentFailed, EventDocumentDeleted, EventJobProgress, EventWebhookTest}

// KnownEventType reports whether s names one of EventTypes.
func KnownEventType(s string) bool { return slices.Contains(EventTypes, EventType(s)) }

// WebhookEvent is what one webhook announces, as it was when it happened:
// a document (and the job that changed it, when one did), or for
// EventWebhookTest the subscription tested.
type WebhookEvent struct {
	Type      EventType
	At        time.Time
	Document  *Document
	Job       *Job
	WebhookID string
}

// EncodeEvent renders a webhook event as the body every delivery of it
// carries (pkg/webhook's EncodeEvent); the store freezes it when the event
// is recorded.
type EncodeEvent func(WebhookEvent) ([]byte, error)

// DeliveryFilter narrows a listing of a subscription's deliveries.
type DeliveryFilter struct {
	EventType string
	Status    string
}

// WebhookUpdate changes a subscription; nil fields are left as they are.
// Enabling clears the reason it was disabled and its failure streak.
type WebhookUpdate struct {
	URL         *string
	Description *string
	Events      []string
	Enabled     *bool
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryCanceled  = "canceled"
)

// WebhookEndpoint is a tenant's subscription: a URL and the events it gets.
type WebhookEndpoint struct {
	ID                      string
	TenantID                string
	URL                     string
	Description             string
	Events                  []string
	Secret                  string
	PreviousSecret          string // still signs until PreviousSecretExpiresAt
	PreviousSecretExpiresAt *time.Time
	Enabled                 bool
	DisabledReason          string
	DisabledAt              *time.Time
	FailingSince            *time.Time // first failed attempt since the last success
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// WebhookDelivery is one event on its way to one target: a subscribed
// endpoint, or the callback URL of an upload (EndpointID empty).
type WebhookDelivery struct {
	ID             string
	TenantID       string
	EventID        string // the webhook-id header; the same for every attempt
	EventType      EventType
	EndpointID     string
	URL            string
	Status         string
	Attempts       int
	LastStatusCode int
	LastError      string
	RedeliveryOf   string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeliveredAt    *time.Time
	AttemptLog     []WebhookAttempt // filled by listings
}

// WebhookAttempt is one HTTP request of a delivery and what came back.
type WebhookAttempt struct {
	Attempt    int
	StartedAt  time.Time
	StatusCode int // 0 when no response arrived
	Latency    time.Duration
	Response   string // at most the first KiB of the body
	Error      string
}

// CallbackSecret is the secret that signs a tenant's per-upload callbacks.
type CallbackSecret struct {
	Secret                  string // empty once revealed
	PreviousSecretExpiresAt *time.Time
	RevealedAt              *time.Time
	CreatedAt               time.Time
	RotatedAt               *time.Time
}

// OutgoingWebhook is what a delivery attempt needs: the delivery, the frozen
// body, and the secrets that sign it now (the current one first, then a
// rotated-out one still in its overlap).
type OutgoingWebhook struct {
	Delivery WebhookDelivery
	Body     []byte
	Secrets  []string
	// Active is false when the endpoint was disabled or deleted since the
	// event was recorded: the delivery is then dropped.
	Active bool
}

// AttemptOutcome is what one attempt decided for its delivery and endpoint.
type AttemptOutcome struct {
	Status string // the delivery's new status: pending (will retry), succeeded or failed
	// DisableReason, when set, disables the endpoint now (a 410 Gone).
	DisableReason string
	// DisableAfter disables the endpoint once it has failed every attempt for
	// this long; zero never does.
	DisableAfter time.Duration
}
