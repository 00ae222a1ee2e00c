package ragpipe

import (
	"errors"
	"testing"
)

func TestTaskID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  TaskType
		p    TaskPayload
		want string
	}{
		{TaskExtract, TaskPayload{JobID: "j"}, "doc:extract:j"},
		{TaskEmbed, TaskPayload{JobID: "j", Batch: 3}, "doc:embed:j:3"},
		{TaskDelete, TaskPayload{DocumentID: "d"}, "doc:delete:d"},
		{TaskSweep, TaskPayload{DocumentID: "d", TenantID: "t"}, "doc:sweep:d"},
		{TaskWebhookDeliver, TaskPayload{DeliveryID: "x"}, "webhook:deliver:x"},
	}
	for _, tc := range tests {
		if got := NewTask(tc.typ, tc.p).ID; got != tc.want {
			t.Errorf("NewTask(%s).ID = %q, want %q", tc.typ, got, tc.want)
		}
	}
	if got := string(WebhookTask("x").Payload); got != `{"delivery_id":"x"}` {
		t.Errorf("webhook payload %s", got)
	}
}

func TestDecodeTask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ     TaskType
		payload string
		ok      bool
	}{
		{TaskChunk, `{"job_id":"j"}`, true},
		{TaskDelete, `{"document_id":"d"}`, true},
		{TaskChunk, `{}`, false},
		{TaskChunk, `not json`, false},
		{TaskWebhookDeliver, `{"delivery_id":"x"}`, true},
		{TaskWebhookDeliver, `{"job_id":"j"}`, false},
	} {
		_, err := DecodeTask(tc.typ, []byte(tc.payload))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrPermanent)) {
			t.Errorf("DecodeTask(%s, %s) = %v; want ok=%t, failures permanent", tc.typ, tc.payload, err, tc.ok)
		}
	}
}
