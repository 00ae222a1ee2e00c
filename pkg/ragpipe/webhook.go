package ragpipe

import "time"

// Webhook event types. EventAll in a subscription means every event except
// the opt-in EventJobProgress.
const (
	EventDocumentReady   = "document.ready"
	EventDocumentFailed  = "document.failed"
	EventDocumentDeleted = "document.deleted"
	EventJobProgress     = "job.progress"
	EventWebhookTest     = "webhook.test"
	EventAll             = "*"
)

// EventTypes are the types a subscription may name.
var EventTypes = []string{EventDocumentReady, EventDocumentFailed, EventDocumentDeleted, EventJobProgress, EventWebhookTest}

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
	EventType      string
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
