package webhook

import (
	"encoding/json"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// body is the JSON every webhook carries.
type body struct {
	Type      ragpipe.EventType `json:"type"`
	Timestamp time.Time         `json:"timestamp"`
	Data      any               `json:"data"`
}

// documentData is the data of a document's event: the document as the API
// shows it, and the job that changed it (null for a deletion).
type documentData struct {
	Document ragpipe.DocumentJSON `json:"document"`
	Job      *ragpipe.JobJSON     `json:"job"`
}

type testData struct {
	WebhookID string `json:"webhook_id"`
	Message   string `json:"message"`
}

// EncodeEvent renders ev as the body of its deliveries (a ragpipe.EncodeEvent).
// A deleted document shows status "deleted".
func EncodeEvent(ev ragpipe.WebhookEvent) ([]byte, error) {
	b := body{Type: ev.Type, Timestamp: ev.At}
	switch {
	case ev.Type == ragpipe.EventWebhookTest:
		b.Data = testData{WebhookID: ev.WebhookID, Message: "a test event sent on request"}
	case ev.Document != nil:
		data := documentData{Document: ev.Document.JSON()}
		if ev.Type == ragpipe.EventDocumentDeleted {
			data.Document.Status = "deleted"
		}
		if ev.Job != nil {
			j := ev.Job.JSON()
			data.Job = &j
		}
		b.Data = data
	default:
		return nil, ragpipe.Errorf(ragpipe.EINTERNAL, "%s event without a document", ev.Type)
	}
	return json.Marshal(b)
}
