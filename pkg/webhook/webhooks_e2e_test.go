package webhook_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

func TestSubscriptionsAPI(t *testing.T) {
	s := startStack(t, false, nil)
	key, other := s.Key(t, "acme"), s.Key(t, "globex")

	r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", map[string]any{
		"url": "http://127.0.0.1:9/hook", "events": []string{"document.ready", "document.ready", "job.progress"}, "description": "ingest"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	id, secret := r.Body["id"].(string), r.Body["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < len("whsec_")+32 {
		t.Errorf("secret %q", secret)
	}
	if ev := r.Body["events"].([]any); len(ev) != 2 || r.Body["enabled"] != true {
		t.Errorf("created %v", r.Body)
	}

	list := s.JSON(t, key, http.MethodGet, "/v1/webhooks", nil)
	hooks := list.Body["webhooks"].([]any)
	if len(hooks) != 1 || hooks[0].(map[string]any)["secret"] != nil {
		t.Errorf("list shows %s", list.Raw)
	}
	if got := s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil); got.Status != http.StatusOK || got.Body["secret"] != nil {
		t.Errorf("get: %d %s", got.Status, got.Raw)
	}

	p := s.JSON(t, key, http.MethodPatch, "/v1/webhooks/"+id, map[string]any{"events": []string{"*"}, "enabled": false})
	if p.Status != http.StatusOK || p.Body["enabled"] != false || p.Body["disabled_reason"] == "" || p.Body["description"] != "ingest" {
		t.Errorf("patch: %d %s", p.Status, p.Raw)
	}
	p = s.JSON(t, key, http.MethodPatch, "/v1/webhooks/"+id, map[string]any{"enabled": true})
	if p.Body["enabled"] != true || p.Body["disabled_reason"] != nil {
		t.Errorf("re-enable: %s", p.Raw)
	}

	rot := s.JSON(t, key, http.MethodPost, "/v1/webhooks/"+id+"/rotate-secret", nil)
	if rot.Status != http.StatusOK || rot.Body["secret"] == secret || rot.Body["secret"] == nil {
		t.Fatalf("rotate: %d %s", rot.Status, rot.Raw)
	}
	exp, _ := time.Parse(time.RFC3339, rot.Body["previous_secret_expires_at"].(string))
	if d := time.Until(exp); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("old secret expires in %s, want the 24h default overlap", d)
	}

	bad := []struct {
		name string
		body map[string]any
	}{
		{"no events", map[string]any{"url": "http://127.0.0.1:9/"}},
		{"unknown event", map[string]any{"url": "http://127.0.0.1:9/", "events": []string{"document.exploded"}}},
		{"no url", map[string]any{"events": []string{"*"}}},
		{"ftp", map[string]any{"url": "ftp://127.0.0.1/", "events": []string{"*"}}},
		{"credentials", map[string]any{"url": "http://u:p@127.0.0.1/", "events": []string{"*"}}},
	}
	for _, tc := range bad {
		if r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", tc.body); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}

	t.Run("another tenant's webhook is not found", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, "/v1/webhooks/" + id},
			{http.MethodPatch, "/v1/webhooks/" + id},
			{http.MethodDelete, "/v1/webhooks/" + id},
			{http.MethodPost, "/v1/webhooks/" + id + "/rotate-secret"},
			{http.MethodPost, "/v1/webhooks/" + id + "/test"},
			{http.MethodGet, "/v1/webhooks/" + id + "/deliveries"},
		} {
			r := s.JSON(t, other, c.method, c.path, map[string]any{"enabled": false})
			if r.Status != http.StatusNotFound || r.ErrorCode() != "not_found" {
				t.Errorf("%s %s as another tenant: %d %s", c.method, c.path, r.Status, r.Raw)
			}
		}
		if hooks := s.JSON(t, other, http.MethodGet, "/v1/webhooks", nil).Body["webhooks"].([]any); len(hooks) != 0 {
			t.Errorf("another tenant lists %d webhooks", len(hooks))
		}
	})

	t.Run("callback secret is shown once and rotates", func(t *testing.T) {
		first := s.JSON(t, key, http.MethodGet, "/v1/webhooks/callback-secret", nil)
		sec, _ := first.Body["secret"].(string)
		if first.Status != http.StatusOK || !strings.HasPrefix(sec, "whsec_") {
			t.Fatalf("first read: %d %s", first.Status, first.Raw)
		}
		again := s.JSON(t, key, http.MethodGet, "/v1/webhooks/callback-secret", nil)
		if again.Body["secret"] != nil || again.Body["revealed"] != true {
			t.Errorf("second read shows %s", again.Raw)
		}
		rot := s.JSON(t, key, http.MethodPost, "/v1/webhooks/callback-secret/rotate", map[string]any{"overlap_seconds": 60})
		if ns, _ := rot.Body["secret"].(string); rot.Status != http.StatusOK || ns == sec || !strings.HasPrefix(ns, "whsec_") {
			t.Errorf("rotate: %d %s", rot.Status, rot.Raw)
		}
		if r := s.JSON(t, other, http.MethodGet, "/v1/webhooks/callback-secret", nil); r.Body["secret"] == sec {
			t.Error("another tenant read this tenant's callback secret")
		}
	})

	if r := s.JSON(t, key, http.MethodDelete, "/v1/webhooks/"+id, nil); r.Status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.Status, r.Raw)
	}
	if r := s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil); r.Status != http.StatusNotFound {
		t.Errorf("get after delete: %d", r.Status)
	}
}

// TestSSRFRefusedAtCreate runs with both switches at their defaults (off).
func TestSSRFRefusedAtCreate(t *testing.T) {
	s := startStack(t, false, func(c *config.Config) { c.WebhookAllowHTTP, c.WebhookAllowPrivate = false, false })
	key := s.Key(t, "acme")
	for _, u := range []string{"http://93.184.216.34/", "https://localhost/", "https://127.0.0.1/", "https://169.254.169.254/",
		"https://100.64.0.1/", "https://[::ffff:127.0.0.1]/", "https://10.0.0.1/"} {
		r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", map[string]any{"url": u, "events": []string{"*"}})
		if r.Status != http.StatusUnprocessableEntity || r.ErrorCode() != ragpipe.EUNPROCESSABLE ||
			!strings.Contains(string(r.Raw), "url refused") {
			t.Errorf("%s: %d %s", u, r.Status, r.Raw)
		}
		up := s.Upload(t, key, "n.md", []byte(note), map[string]string{"callback_url": u})
		if up.Status != http.StatusUnprocessableEntity || !strings.Contains(string(up.Raw), "callback_url") {
			t.Errorf("upload with callback_url %s: %d %s", u, up.Status, up.Raw)
		}
	}
	if docs := s.JSON(t, key, http.MethodGet, "/v1/documents", nil).Body["documents"].([]any); len(docs) != 0 {
		t.Errorf("refused uploads recorded %d documents", len(docs))
	}
}

// TestDeliveryRetriesThenSucceeds: a subscriber failing its first two
// attempts gets the event on the third, under the same webhook-id, signed
// verifiably; the upload's callback URL gets it too, signed with the
// tenant's callback secret; all attempts are listed; redelivery and the test
// event work, and a rotated secret signs beside the old one.
func TestDeliveryRetriesThenSucceeds(t *testing.T) {
	s := startStack(t, true, nil)
	key := s.Key(t, "acme")
	const failures = 2
	rc := newReceiver(t, func(n int, h hit, w http.ResponseWriter) int {
		if h.path == "/hook" && n <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	id, secret := s.subscribe(t, key, rc.URL+"/hook", "document.ready", "document.failed")

	up := s.Upload(t, key, "note.md", []byte(note), map[string]string{"callback_url": rc.URL + "/cb", "metadata": `{"source":"test"}`})
	if up.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	docID, jobID := up.Body["document_id"].(string), up.Body["job_id"].(string)
	cbSecret := s.JSON(t, key, http.MethodGet, "/v1/webhooks/callback-secret", nil).Body["secret"].(string)

	waitFor(t, "the event delivered to both targets", 30*time.Second, func() bool {
		var hook, cb bool
		for _, h := range rc.got() {
			hook = hook || (h.path == "/hook" && h.answered == 200)
			cb = cb || (h.path == "/cb" && h.answered == 200)
		}
		return hook && cb
	})
	var hookHits []hit
	for _, h := range rc.got() {
		switch h.path {
		case "/hook":
			hookHits = append(hookHits, h)
			if !verify(secret, h.id, h.ts, h.body, h.sig) {
				t.Errorf("subscription delivery does not verify: id %s sig %s", h.id, h.sig)
			}
		case "/cb":
			if !verify(cbSecret, h.id, h.ts, h.body, h.sig) {
				t.Errorf("callback delivery does not verify with the callback secret")
			}
		}
	}
	if len(hookHits) != failures+1 {
		t.Fatalf("%d hits on the subscription, want %d", len(hookHits), failures+1)
	}
	for _, h := range hookHits[1:] {
		if h.id != hookHits[0].id || !strings.HasPrefix(h.id, "msg_") {
			t.Errorf("webhook-id changed across retries: %q then %q", hookHits[0].id, h.id)
		}
	}
	ev := hookHits[0].event
	data, _ := ev["data"].(map[string]any)
	doc, _ := data["document"].(map[string]any)
	job, _ := data["job"].(map[string]any)
	if ev["type"] != "document.ready" || doc["id"] != docID || job["id"] != jobID || doc["status"] != "ready" ||
		doc["chunk_count"].(float64) < 1 || doc["metadata"].(map[string]any)["source"] != "test" || job["status"] != "succeeded" {
		t.Errorf("event = %s", hookHits[0].body)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}

	// The receiver has answered; the attempt's record commits just after.
	ds := s.deliveries(t, key, id, "")
	for deadline := time.Now().Add(10 * time.Second); len(ds) == 1 && ds[0]["status"] == "pending" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		ds = s.deliveries(t, key, id, "")
	}
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	d := ds[0]
	log := d["attempt_log"].([]any)
	if d["status"] != "succeeded" || d["attempts"] != float64(failures+1) || len(log) != failures+1 || d["event_id"] != hookHits[0].id {
		t.Errorf("delivery = %v", d)
	}
	for i, a := range log {
		a := a.(map[string]any)
		want := 500.0
		if i == failures {
			want = 200
		}
		if a["status_code"] != want || a["attempt"] != float64(i+1) || !strings.HasPrefix(a["response"].(string), "answer") {
			t.Errorf("attempt %d = %v", i+1, a)
		}
	}
	if n := len(s.deliveries(t, key, id, "status=failed")); n != 0 {
		t.Errorf("status=failed lists %d", n)
	}
	if n := len(s.deliveries(t, key, id, "event=document.ready&status=succeeded")); n != 1 {
		t.Errorf("event filter lists %d", n)
	}

	t.Run("redeliver", func(t *testing.T) {
		before := len(rc.got())
		r := s.JSON(t, key, http.MethodPost, "/v1/webhooks/"+id+"/deliveries/"+d["id"].(string)+"/redeliver", nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("redeliver: %d %s", r.Status, r.Raw)
		}
		waitFor(t, "the redelivery", 10*time.Second, func() bool { return len(rc.got()) > before })
		h := rc.got()[before]
		if h.id != hookHits[0].id || !verify(secret, h.id, h.ts, h.body, h.sig) {
			t.Errorf("redelivery id %s (want %s)", h.id, hookHits[0].id)
		}
		if other := s.Key(t, "globex"); s.JSON(t, other, http.MethodPost, "/v1/webhooks/"+id+"/deliveries/"+d["id"].(string)+"/redeliver", nil).Status != http.StatusNotFound {
			t.Error("another tenant redelivered")
		}
	})

	t.Run("test event signed with both secrets after a rotation", func(t *testing.T) {
		newSecret := s.JSON(t, key, http.MethodPost, "/v1/webhooks/"+id+"/rotate-secret", nil).Body["secret"].(string)
		before := len(rc.got())
		if r := s.JSON(t, key, http.MethodPost, "/v1/webhooks/"+id+"/test", nil); r.Status != http.StatusAccepted {
			t.Fatalf("test: %d %s", r.Status, r.Raw)
		}
		waitFor(t, "the test event", 10*time.Second, func() bool { return len(rc.got()) > before })
		h := rc.got()[before]
		if h.event["type"] != "webhook.test" || len(strings.Fields(h.sig)) != 2 ||
			!verify(secret, h.id, h.ts, h.body, h.sig) || !verify(newSecret, h.id, h.ts, h.body, h.sig) {
			t.Errorf("test event %s signed %q", h.body, h.sig)
		}
	})
}

// TestGoneDisablesAndFailedEvent: a 410 answer to document.failed disables
// the endpoint at once; later events are not sent to it.
func TestGoneDisablesAndFailedEvent(t *testing.T) {
	s := startStack(t, true, nil)
	key := s.Key(t, "acme")
	rc := newReceiver(t, func(int, hit, http.ResponseWriter) int { return http.StatusGone })
	id, _ := s.subscribe(t, key, rc.URL, "*")
	pdf, err := os.ReadFile("../../testdata/corrupt.pdf")
	if err != nil {
		t.Fatal(err)
	}
	s.Upload(t, key, "bad.pdf", pdf, nil)
	waitFor(t, "the endpoint disabled", 30*time.Second, func() bool {
		return s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil).Body["enabled"] == false
	})
	hits := rc.got()
	if len(hits) != 1 || hits[0].event["type"] != "document.failed" {
		t.Fatalf("hits %d, first %s", len(hits), hits[0].body)
	}
	job := hits[0].event["data"].(map[string]any)["job"].(map[string]any)
	if e, _ := job["error"].(map[string]any); e["code"] != "pdf_corrupt" {
		t.Errorf("document.failed job = %v", job)
	}
	w := s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil).Body
	if !strings.Contains(w["disabled_reason"].(string), "410") {
		t.Errorf("disabled_reason %q", w["disabled_reason"])
	}
	ds := s.deliveries(t, key, id, "")
	if len(ds) != 1 || ds[0]["status"] != "failed" || ds[0]["attempts"] != 1.0 {
		t.Errorf("deliveries %v", ds)
	}
	up := s.Upload(t, key, "n.md", []byte(note), nil)
	waitFor(t, "the second document ready", 30*time.Second, func() bool {
		return s.JSON(t, key, http.MethodGet, "/v1/documents/"+up.Body["document_id"].(string), nil).Body["status"] == "ready"
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.got()); n != 1 {
		t.Errorf("a disabled endpoint got %d requests", n)
	}
}

// TestHangingReceiverTimesOut: an attempt past the timeout is a failure
// recorded as such, and the retry succeeds. A 503 with Retry-After holds the
// next attempt back as asked.
func TestHangingReceiverTimesOut(t *testing.T) {
	s := startStack(t, true, func(c *config.Config) { c.WebhookTimeout = 500 * time.Millisecond })
	key := s.Key(t, "acme")
	rc := newReceiver(t, func(n int, h hit, w http.ResponseWriter) int {
		switch n {
		case 1:
			time.Sleep(1500 * time.Millisecond)
			return http.StatusOK // too late: the attempt already failed
		case 2:
			w.Header().Set("Retry-After", "2")
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	id, _ := s.subscribe(t, key, rc.URL, "document.ready")
	s.Upload(t, key, "n.md", []byte(note), nil)
	waitFor(t, "the delivery", 30*time.Second, func() bool {
		ds := s.deliveries(t, key, id, "status=succeeded")
		return len(ds) == 1
	})
	d := s.deliveries(t, key, id, "")[0]
	log := d["attempt_log"].([]any)
	if len(log) != 3 {
		t.Fatalf("attempts %v", log)
	}
	a1, a2, a3 := log[0].(map[string]any), log[1].(map[string]any), log[2].(map[string]any)
	if a1["error"] != "timed out" || a1["status_code"] != 0.0 || a1["latency_ms"].(float64) > 1400 {
		t.Errorf("attempt 1 = %v", a1)
	}
	t2, _ := time.Parse(time.RFC3339Nano, a2["at"].(string))
	t3, _ := time.Parse(time.RFC3339Nano, a3["at"].(string))
	if a2["status_code"] != 503.0 || a3["status_code"] != 200.0 || t3.Sub(t2) < 1900*time.Millisecond {
		t.Errorf("Retry-After not honoured: 503 at %s, next at %s (%v, %v)", t2, t3, a2, a3)
	}
}

// TestLongFailureDisables: an endpoint failing every attempt for
// WEBHOOK_DISABLE_AFTER is disabled, with the reason recorded, and is not
// tried again. Asynq schedules retries in whole seconds, so how many 300ms
// retries fit in the second varies; the schedule is long enough that only
// the disabling can end the delivery.
func TestLongFailureDisables(t *testing.T) {
	schedule := make([]time.Duration, 30)
	for i := range schedule {
		schedule[i] = 300 * time.Millisecond
	}
	s := startStack(t, true, func(c *config.Config) {
		c.WebhookDisableAfter = time.Second
		c.WebhookRetrySchedule = schedule
	})
	key := s.Key(t, "acme")
	rc := newReceiver(t, func(int, hit, http.ResponseWriter) int { return http.StatusBadGateway })
	id, _ := s.subscribe(t, key, rc.URL, "document.ready")
	s.Upload(t, key, "n.md", []byte(note), nil)
	waitFor(t, "the endpoint disabled", 30*time.Second, func() bool {
		return s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil).Body["enabled"] == false
	})
	w := s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id, nil).Body
	if r, _ := w["disabled_reason"].(string); !strings.Contains(r, "every attempt failed") || !strings.Contains(r, "502") {
		t.Errorf("disabled_reason %q", r)
	}
	waitFor(t, "the delivery to end", 10*time.Second, func() bool {
		ds := s.deliveries(t, key, id, "")
		return len(ds) == 1 && ds[0]["status"] != "pending"
	})
	time.Sleep(time.Second) // room for a stray retry to show up
	log := s.deliveries(t, key, id, "")[0]["attempt_log"].([]any)
	first, _ := time.Parse(time.RFC3339Nano, log[0].(map[string]any)["at"].(string))
	last, _ := time.Parse(time.RFC3339Nano, log[len(log)-1].(map[string]any)["at"].(string))
	if n := len(rc.got()); n != len(log) || n < 2 || n >= len(schedule) {
		t.Errorf("receiver saw %d attempts, %d recorded", n, len(log))
	}
	if last.Sub(first) < time.Second {
		t.Errorf("disabled after %v of failures, want at least 1s", last.Sub(first))
	}
}

// TestCrashBetweenReadyAndDelivery: the transaction that makes a document
// ready commits its webhook event to the outbox, and the worker dies before
// relaying it. A worker started later delivers it, once.
func TestCrashBetweenReadyAndDelivery(t *testing.T) {
	s := startStack(t, false, nil)
	key := s.Key(t, "acme")
	rc := newReceiver(t, nil)
	s.subscribe(t, key, rc.URL, "document.ready")
	up := s.Upload(t, key, "n.md", []byte(note), nil)
	if up.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	jobID := up.Body["job_id"].(string)

	// The worker's last transaction, as the upsert stage runs it.
	vec := make([]float32, s.Config.EmbedDimensions)
	vec[0] = 1
	ok, err := s.DB.FinishJob(context.Background(), jobID,
		[]ragpipe.Chunk{{Index: 0, Text: note, PageStart: 1, PageEnd: 1}}, [][]float32{vec})
	if err != nil || !ok {
		t.Fatalf("finish job: %v %v", ok, err)
	}
	conn, err := pgx.Connect(context.Background(), s.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var unsent int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE task_type = 'webhook:deliver' AND sent_at IS NULL`).Scan(&unsent); err != nil || unsent != 1 {
		t.Fatalf("unsent webhook tasks in the outbox: %d (%v), want 1", unsent, err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rc.got()); n != 0 {
		t.Fatalf("delivered %d without a worker", n)
	}

	s.StartWorker(t)
	waitFor(t, "the delivery by the new worker", 20*time.Second, func() bool { return len(rc.got()) == 1 })
	time.Sleep(time.Second)
	if hits := rc.got(); len(hits) != 1 || hits[0].event["type"] != "document.ready" {
		t.Errorf("%d hits after recovery, want exactly 1", len(hits))
	}
}
