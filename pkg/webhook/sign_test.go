package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// verify is an independent Standard Webhooks verifier, written from the
// specification: v1 = base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
// key = base64-decoded secret after "whsec_"; any listed signature may match.
func verify(secret, id, ts string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(header) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	s := webhook.NewSecret()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if !strings.HasPrefix(s, "whsec_") || err != nil || len(raw) < 24 {
		t.Fatalf("secret %q: want whsec_ + base64 of 24+ bytes (%d bytes, %v)", s, len(raw), err)
	}
	if webhook.NewSecret() == s {
		t.Fatal("two secrets are equal")
	}
}

func TestSignVerifiesIndependently(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret, other := webhook.NewSecret(), webhook.NewSecret(), webhook.NewSecret()
	body := []byte(`{"type":"document.ready","timestamp":"2025-01-01T00:00:00Z","data":{}}`)
	ts := time.Unix(1735689600, 0)
	h, err := webhook.Headers([]string{newSecret, oldSecret}, "msg_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if h[webhook.HeaderID] != "msg_1" || h[webhook.HeaderTimestamp] != strconv.FormatInt(ts.Unix(), 10) {
		t.Fatalf("headers %v", h)
	}
	sig := h[webhook.HeaderSignature]
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("%d signatures during a rotation, want 2: %q", n, sig)
	}
	tests := []struct {
		name   string
		secret string
		id, ts string
		body   []byte
		ok     bool
	}{
		{"new secret", newSecret, "msg_1", "1735689600", body, true},
		{"old secret in overlap", oldSecret, "msg_1", "1735689600", body, true},
		{"unrelated secret", other, "msg_1", "1735689600", body, false},
		{"other id", newSecret, "msg_2", "1735689600", body, false},
		{"other timestamp", newSecret, "msg_1", "1735689601", body, false},
		{"tampered body", newSecret, "msg_1", "1735689600", append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), false},
	}
	for _, tc := range tests {
		if got := verify(tc.secret, tc.id, tc.ts, tc.body, sig); got != tc.ok {
			t.Errorf("%s: verified = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
