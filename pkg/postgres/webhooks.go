package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// progressEvery throttles job.progress webhooks to one per job per interval.
const progressEvery = 2 * time.Second

const endpointColumns = `id, tenant_id, url, description, events, secret, previous_secret,
	previous_secret_expires_at, enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at`

func scanEndpoint(row pgx.Row) (*ragpipe.WebhookEndpoint, error) {
	var e ragpipe.WebhookEndpoint
	err := row.Scan(&e.ID, &e.TenantID, &e.URL, &e.Description, &e.Events, &e.Secret, &e.PreviousSecret,
		&e.PreviousSecretExpiresAt, &e.Enabled, &e.DisabledReason, &e.DisabledAt, &e.FailingSince,
		&e.CreatedAt, &e.UpdatedAt)
	return &e, err
}

// CreateWebhook records a new subscription; e.ID, URL, Events and Secret must be set.
func (db *DB) CreateWebhook(ctx context.Context, e *ragpipe.WebhookEndpoint) error {
	return db.pool.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING enabled, created_at, updated_at`,
		e.ID, e.TenantID, e.URL, e.Description, e.Events, e.Secret).Scan(&e.Enabled, &e.CreatedAt, &e.UpdatedAt)
}

// Webhook returns the tenant's subscription with this ID.
func (db *DB) Webhook(ctx context.Context, tenantID, id string) (*ragpipe.WebhookEndpoint, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "webhook not found")
	}
	e, err := scanEndpoint(db.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return e, notFound(err, "webhook")
}

// Webhooks lists the tenant's subscriptions, oldest first.
func (db *DB) Webhooks(ctx context.Context, tenantID string) ([]*ragpipe.WebhookEndpoint, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragpipe.WebhookEndpoint, error) { return scanEndpoint(r) })
}

// UpdateWebhook applies u to the tenant's subscription and returns the result.
func (db *DB) UpdateWebhook(ctx context.Context, tenantID, id string, u ragpipe.WebhookUpdate) (*ragpipe.WebhookEndpoint, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "webhook not found")
	}
	var events any
	if u.Events != nil {
		events = u.Events
	}
	e, err := scanEndpoint(db.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET
			url = coalesce($3, url),
			description = coalesce($4, description),
			events = coalesce($5::text[], events),
			enabled = coalesce($6, enabled),
			disabled_reason = CASE WHEN $6 THEN '' WHEN NOT $6 AND enabled THEN 'disabled by the API' ELSE disabled_reason END,
			disabled_at = CASE WHEN $6 THEN NULL WHEN NOT $6 AND enabled THEN now() ELSE disabled_at END,
			failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
			updated_at = now()
		WHERE tenant_id = $1 AND id = $2 RETURNING `+endpointColumns,
		tenantID, id, u.URL, u.Description, events, u.Enabled))
	return e, notFound(err, "webhook")
}

// DeleteWebhook removes the tenant's subscription with its delivery log;
// deliveries still queued are dropped when they run.
func (db *DB) DeleteWebhook(ctx context.Context, tenantID, id string) error {
	if !validUUID(id) {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "webhook not found")
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err == nil && tag.RowsAffected() == 0 {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "webhook not found")
	}
	return err
}

// RotateWebhookSecret makes secret the subscription's signing secret; the old
// one keeps signing beside it for overlap.
func (db *DB) RotateWebhookSecret(ctx context.Context, tenantID, id, secret string, overlap time.Duration) (*ragpipe.WebhookEndpoint, error) {
	if !validUUID(id) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "webhook not found")
	}
	e, err := scanEndpoint(db.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET
			previous_secret = secret, previous_secret_expires_at = now() + $4::interval,
			secret = $3, updated_at = now()
		WHERE tenant_id = $1 AND id = $2 RETURNING `+endpointColumns, tenantID, id, secret, overlap))
	return e, notFound(err, "webhook")
}

// RevealCallbackSecret returns the tenant's callback secret, creating it from
// candidate if there is none. The secret itself is returned only the first
// time; later calls return the rest with Secret empty.
func (db *DB) RevealCallbackSecret(ctx context.Context, tenantID, candidate string) (*ragpipe.CallbackSecret, error) {
	var s ragpipe.CallbackSecret
	var revealedBefore bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_callback_secrets (tenant_id, secret) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, tenantID, candidate); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT revealed_at IS NOT NULL FROM webhook_callback_secrets
			WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&revealedBefore); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE webhook_callback_secrets SET revealed_at = coalesce(revealed_at, now())
			WHERE tenant_id = $1 RETURNING secret, previous_secret_expires_at, revealed_at, created_at, rotated_at`,
			tenantID).Scan(&s.Secret, &s.PreviousSecretExpiresAt, &s.RevealedAt, &s.CreatedAt, &s.RotatedAt)
	})
	if revealedBefore {
		s.Secret = ""
	}
	return &s, err
}

// RotateCallbackSecret makes secret the tenant's callback secret (shown to
// the caller, so it counts as revealed); the old one keeps signing for overlap.
func (db *DB) RotateCallbackSecret(ctx context.Context, tenantID, secret string, overlap time.Duration) (*ragpipe.CallbackSecret, error) {
	var s ragpipe.CallbackSecret
	err := db.pool.QueryRow(ctx, `INSERT INTO webhook_callback_secrets (tenant_id, secret, revealed_at)
		VALUES ($1, $2, now())
		ON CONFLICT (tenant_id) DO UPDATE SET previous_secret = webhook_callback_secrets.secret,
			previous_secret_expires_at = now() + $3::interval, secret = excluded.secret,
			revealed_at = now(), rotated_at = now()
		RETURNING secret, previous_secret_expires_at, revealed_at, created_at, rotated_at`,
		tenantID, secret, overlap).Scan(&s.Secret, &s.PreviousSecretExpiresAt, &s.RevealedAt, &s.CreatedAt, &s.RotatedAt)
	return &s, err
}

type webhookTarget struct {
	endpointID *string
	url        string
}

// recordWebhookEvent turns a job event into a webhook event for every
// subscriber (and the document's callback URL), with one delivery and one
// outbox task each, inside the transaction that changed the job. Events no
// one receives are not stored.
func (db *DB) recordWebhookEvent(ctx context.Context, tx pgx.Tx, j *ragpipe.Job, jobEvent ragpipe.JobEventType) error {
	typ := jobEvent.Announces()
	// A failed re-ingest leaves the document ready with its old chunks: no
	// document.failed (the job's own state and events say what happened).
	if typ == "" || (typ == ragpipe.EventDocumentFailed && j.Kind == ragpipe.JobReingest) {
		return nil
	}
	return db.recordEvent(ctx, tx, typ, j.TenantID, j.DocumentID, j, nil)
}

// recordDocumentDeleted announces a document's deletion to its tenant's
// subscribers and its callback URL. Call it inside the transaction that
// marks the document deleting, with the document as it was read there.
func (db *DB) recordDocumentDeleted(ctx context.Context, tx pgx.Tx, d *ragpipe.Document) error {
	return db.recordEvent(ctx, tx, ragpipe.EventDocumentDeleted, d.TenantID, d.ID, nil, d)
}

// recordEvent stores a webhook event of type typ about a document (and job,
// when there is one) for every target that wants it. d is read when nil.
func (db *DB) recordEvent(ctx context.Context, tx pgx.Tx, typ ragpipe.EventType, tenantID, documentID string, j *ragpipe.Job, d *ragpipe.Document) error {
	// The tenant's subscribed endpoints, then the document's callback URL
	// (which gets no progress events); endpointID is NULL for the callback.
	rows, err := tx.Query(ctx, `SELECT id, url FROM (
			SELECT id::text, url, 0 AS k FROM webhook_endpoints WHERE tenant_id = $1 AND enabled
				AND ($2 = ANY (events) OR ($2 <> 'job.progress' AND '*' = ANY (events)))
			UNION ALL
			SELECT NULL, url, 1 FROM document_callbacks WHERE document_id = $3 AND $2 <> 'job.progress'
		) t ORDER BY k`, tenantID, typ, documentID)
	if err != nil {
		return err
	}
	targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhookTarget, error) {
		var t webhookTarget
		err := r.Scan(&t.endpointID, &t.url)
		return t, err
	})
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return nil
	}
	if typ == ragpipe.EventJobProgress && j != nil {
		var recent bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_events WHERE job_id = $1
			AND type = 'job.progress' AND created_at > now() - $2::interval)`, j.ID, progressEvery).Scan(&recent); err != nil {
			return err
		}
		if recent {
			return nil
		}
	}
	if d == nil {
		if d, err = scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, documentID)); err != nil {
			return notFound(err, "document")
		}
	}
	body, err := db.encodeEvent(ragpipe.WebhookEvent{Type: typ, At: time.Now().UTC(), Document: d, Job: j})
	if err != nil {
		return err
	}
	var jobID *string
	var trace map[string]string
	if j != nil {
		jobID, trace = &j.ID, j.Trace
	}
	return insertEvent(ctx, tx, tenantID, typ, jobID, &documentID, trace, body, targets)
}

// insertEvent stores an event and a delivery plus outbox task per target;
// the tasks carry trace, the trace context of the event's job.
func insertEvent(ctx context.Context, tx pgx.Tx, tenantID string, typ ragpipe.EventType, jobID, documentID *string,
	trace map[string]string, body []byte, targets []webhookTarget) error {
	eventID := "msg_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_events (id, tenant_id, type, job_id, document_id, body)
		VALUES ($1, $2, $3, $4, $5, $6)`, eventID, tenantID, typ, jobID, documentID, body); err != nil {
		return fmt.Errorf("insert webhook event: %w", err)
	}
	for _, t := range targets {
		id := uuid.NewString()
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, url)
			VALUES ($1, $2, $3, $4, $5)`, id, tenantID, eventID, t.endpointID, t.url); err != nil {
			return fmt.Errorf("insert webhook delivery: %w", err)
		}
		t := ragpipe.NewTask(ragpipe.TaskWebhookDeliver, ragpipe.TaskPayload{DeliveryID: id, Trace: trace})
		if err := insertOutbox(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// CreateTestEvent records a webhook.test event for one subscription and
// returns the outbox task that delivers it; the caller enqueues it at once
// (the outbox relay does if the caller cannot).
func (db *DB) CreateTestEvent(ctx context.Context, tenantID, webhookID string) (deliveryID string, task ragpipe.Task, err error) {
	e, err := db.Webhook(ctx, tenantID, webhookID)
	if err != nil {
		return "", task, err
	}
	body, err := db.encodeEvent(ragpipe.WebhookEvent{Type: ragpipe.EventWebhookTest, At: time.Now().UTC(), WebhookID: e.ID})
	if err != nil {
		return "", task, err
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := insertEvent(ctx, tx, tenantID, ragpipe.EventWebhookTest, nil, nil, nil, body,
			[]webhookTarget{{endpointID: &e.ID, url: e.URL}}); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at DESC LIMIT 1`,
			e.ID).Scan(&deliveryID)
	})
	return deliveryID, ragpipe.WebhookTask(deliveryID), err
}

// Redeliver queues the event of one of the subscription's deliveries again,
// as a new delivery with the same webhook-id, to the subscription's current URL.
func (db *DB) Redeliver(ctx context.Context, tenantID, webhookID, deliveryID string) (newID string, task ragpipe.Task, err error) {
	if !validUUID(webhookID) || !validUUID(deliveryID) {
		return "", task, ragpipe.Errorf(ragpipe.ENOTFOUND, "delivery not found")
	}
	newID = uuid.NewString()
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, url, redelivery_of)
			SELECT $4, d.tenant_id, d.event_id, e.id, e.url, d.id
			FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id = $3`, tenantID, webhookID, deliveryID, newID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ragpipe.Errorf(ragpipe.ENOTFOUND, "delivery not found")
		}
		return insertOutbox(ctx, tx, ragpipe.WebhookTask(newID))
	})
	return newID, ragpipe.WebhookTask(newID), err
}

const deliveryColumns = `d.id, d.tenant_id, d.event_id, ev.type, coalesce(d.endpoint_id::text, ''), d.url, d.status,
	d.attempts, d.last_status_code, d.last_error, coalesce(d.redelivery_of::text, ''), d.created_at, d.updated_at, d.delivered_at`

func scanDelivery(row pgx.Row) (*ragpipe.WebhookDelivery, error) {
	var d ragpipe.WebhookDelivery
	err := row.Scan(&d.ID, &d.TenantID, &d.EventID, &d.EventType, &d.EndpointID, &d.URL, &d.Status,
		&d.Attempts, &d.LastStatusCode, &d.LastError, &d.RedeliveryOf, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt)
	return &d, err
}

// WebhookDeliveries lists a subscription's deliveries, newest first, each
// with its attempts. cursor is empty for the first page, else the next
// cursor of the page before.
func (db *DB) WebhookDeliveries(ctx context.Context, tenantID, webhookID string, f ragpipe.DeliveryFilter, cursor string, limit int) ([]*ragpipe.WebhookDelivery, string, error) {
	if _, err := db.Webhook(ctx, tenantID, webhookID); err != nil {
		return nil, "", err
	}
	args := []any{tenantID, webhookID, limit + 1}
	where := []string{"d.tenant_id = $1", "d.endpoint_id = $2"}
	if f.EventType != "" {
		args = append(args, f.EventType)
		where = append(where, fmt.Sprintf("ev.type = $%d", len(args)))
	}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, fmt.Sprintf("d.status = $%d", len(args)))
	}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(d.created_at, d.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		JOIN webhook_events ev ON ev.id = d.event_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY d.created_at DESC, d.id DESC LIMIT $3`, args...)
	if err != nil {
		return nil, "", err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragpipe.WebhookDelivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	if len(list) == 0 {
		return list, "", nil
	}
	ids := make([]string, len(list))
	byID := make(map[string]*ragpipe.WebhookDelivery, len(list))
	for i, d := range list {
		ids[i], byID[d.ID] = d.ID, d
		d.AttemptLog = []ragpipe.WebhookAttempt{}
	}
	arows, err := db.pool.Query(ctx, `SELECT delivery_id::text, attempt, started_at, status_code, latency_ms, response, error
		FROM webhook_attempts WHERE delivery_id = ANY ($1::uuid[]) ORDER BY id`, ids)
	if err != nil {
		return nil, "", err
	}
	defer arows.Close()
	for arows.Next() {
		var id string
		var a ragpipe.WebhookAttempt
		var ms int
		if err := arows.Scan(&id, &a.Attempt, &a.StartedAt, &a.StatusCode, &ms, &a.Response, &a.Error); err != nil {
			return nil, "", err
		}
		a.Latency = time.Duration(ms) * time.Millisecond
		byID[id].AttemptLog = append(byID[id].AttemptLog, a)
	}
	return list, next, arows.Err()
}

// OutgoingWebhook returns what the next attempt of a delivery sends. A
// delivery that no longer exists is a not-found error.
func (db *DB) OutgoingWebhook(ctx context.Context, deliveryID string) (*ragpipe.OutgoingWebhook, error) {
	if !validUUID(deliveryID) {
		return nil, ragpipe.Errorf(ragpipe.ENOTFOUND, "delivery not found")
	}
	var o ragpipe.OutgoingWebhook
	var endpointExists, enabled bool
	var secret, prev string
	var prevExpires *time.Time
	err := db.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`, ev.body,
			coalesce(e.id IS NOT NULL, false), coalesce(e.enabled, false),
			coalesce(e.secret, s.secret, ''), coalesce(e.previous_secret, s.previous_secret, ''),
			coalesce(e.previous_secret_expires_at, s.previous_secret_expires_at)
		FROM webhook_deliveries d
		JOIN webhook_events ev ON ev.id = d.event_id
		LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id
		LEFT JOIN webhook_callback_secrets s ON d.endpoint_id IS NULL AND s.tenant_id = d.tenant_id
		WHERE d.id = $1`, deliveryID).Scan(
		&o.Delivery.ID, &o.Delivery.TenantID, &o.Delivery.EventID, &o.Delivery.EventType, &o.Delivery.EndpointID,
		&o.Delivery.URL, &o.Delivery.Status, &o.Delivery.Attempts, &o.Delivery.LastStatusCode, &o.Delivery.LastError,
		&o.Delivery.RedeliveryOf, &o.Delivery.CreatedAt, &o.Delivery.UpdatedAt, &o.Delivery.DeliveredAt,
		&o.Body, &endpointExists, &enabled, &secret, &prev, &prevExpires)
	if err != nil {
		return nil, notFound(err, "delivery")
	}
	o.Active = secret != "" && (o.Delivery.EndpointID == "" || (endpointExists && enabled))
	o.Secrets = []string{secret}
	if prev != "" && prevExpires != nil && time.Until(*prevExpires) > 0 {
		o.Secrets = append(o.Secrets, prev)
	}
	return &o, nil
}

// RecordWebhookAttempt logs one attempt of a delivery and applies its
// outcome to the delivery and its endpoint, in one transaction. It reports
// whether the endpoint is now disabled (by this attempt).
func (db *DB) RecordWebhookAttempt(ctx context.Context, deliveryID string, a ragpipe.WebhookAttempt, o ragpipe.AttemptOutcome) (disabled bool, err error) {
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var endpointID *string
		var n int
		err := tx.QueryRow(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2,
				last_status_code = $3, last_error = $4, updated_at = now(),
				delivered_at = CASE WHEN $2 = 'succeeded' THEN now() ELSE delivered_at END
			WHERE id = $1 RETURNING endpoint_id::text, attempts`, deliveryID, o.Status, a.StatusCode, a.Error).Scan(&endpointID, &n)
		if err != nil {
			return notFound(err, "delivery")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, latency_ms, response, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, deliveryID, n, a.StartedAt, a.StatusCode,
			a.Latency.Milliseconds(), a.Response, a.Error); err != nil {
			return err
		}
		if endpointID == nil {
			return nil
		}
		if o.Status == ragpipe.DeliverySucceeded {
			_, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, *endpointID)
			return err
		}
		var enabled bool
		var failingSince *time.Time
		if err := tx.QueryRow(ctx, `SELECT enabled, failing_since FROM webhook_endpoints WHERE id = $1 FOR UPDATE`,
			*endpointID).Scan(&enabled, &failingSince); err != nil {
			return notFound(err, "webhook")
		}
		since := a.StartedAt
		if failingSince != nil {
			since = *failingSince
		}
		reason := o.DisableReason
		if reason == "" && o.DisableAfter > 0 && a.StartedAt.Sub(since) >= o.DisableAfter {
			reason = fmt.Sprintf("every attempt failed since %s; last error: %s", since.UTC().Format(time.RFC3339), attemptError(a))
		}
		disabled = enabled && reason != ""
		_, err = tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = $2,
				enabled = enabled AND NOT $3,
				disabled_reason = CASE WHEN $3 THEN $4 ELSE disabled_reason END,
				disabled_at = CASE WHEN $3 THEN now() ELSE disabled_at END,
				updated_at = now()
			WHERE id = $1`, *endpointID, since, disabled, reason)
		return err
	})
	return disabled, err
}

func attemptError(a ragpipe.WebhookAttempt) string {
	if a.Error != "" {
		return a.Error
	}
	return fmt.Sprintf("HTTP %d", a.StatusCode)
}

// CancelDelivery marks a delivery whose endpoint went away as canceled.
func (db *DB) CancelDelivery(ctx context.Context, deliveryID, reason string) error {
	_, err := db.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'canceled', last_error = $2, updated_at = now()
		WHERE id = $1 AND status = 'pending'`, deliveryID, reason)
	return err
}

// RelayWebhooks hands up to limit unsent webhook tasks to send, however
// young, and marks those send accepts. The general relay waits for rows to
// age (their writer usually enqueues them itself); webhook events are written
// by the pipeline's transactions, which do not, so they are relayed at once.
func (db *DB) RelayWebhooks(ctx context.Context, limit int, send func(context.Context, ragpipe.Task) error) (int, error) {
	sent := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, task_type, task_id, payload FROM outbox
			WHERE sent_at IS NULL AND task_type = $1
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, ragpipe.TaskWebhookDeliver, limit)
		if err != nil {
			return err
		}
		var ids []int64
		var tasks []ragpipe.Task
		for rows.Next() {
			var id int64
			var t ragpipe.Task
			if err := rows.Scan(&id, &t.Type, &t.ID, &t.Payload); err != nil {
				rows.Close()
				return err
			}
			ids, tasks = append(ids, id), append(tasks, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var done []int64
		for i, t := range tasks {
			if err := send(ctx, t); err != nil {
				break // mark what went; the rest waits for the next round
			}
			done = append(done, ids[i])
		}
		if len(done) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE id = ANY ($1)`, done)
		sent = len(done)
		return err
	})
	return sent, err
}
