package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// TestGuardRefusesPrivateTargets is the SSRF table, with both switches off.
func TestGuardRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	g := webhook.NewGuard(false, false)
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://93.184.216.34/hook", true},                // public IPv4 literal
		{"https://93.184.216.34:8443/hook", true},           // any port
		{"https://[2606:4700:4700::1111]/hook", true},       // public IPv6
		{"http://93.184.216.34/hook", false},                // https required
		{"ftp://93.184.216.34/hook", false},                 // not http(s)
		{"https://user:pw@93.184.216.34/hook", false},       // credentials
		{"/relative", false},                                // not absolute
		{"https://localhost/hook", false},                   // resolves to 127.0.0.1 / ::1
		{"https://127.0.0.1/hook", false},                   // loopback
		{"https://127.1.2.3/hook", false},                   // loopback /8
		{"https://0.0.0.0/hook", false},                     // "this host"
		{"https://10.1.2.3/hook", false},                    // RFC 1918
		{"https://172.16.0.1/hook", false},                  // RFC 1918
		{"https://192.168.1.1/hook", false},                 // RFC 1918
		{"https://169.254.169.254/latest/meta-data", false}, // cloud metadata, link-local
		{"https://100.64.0.1/hook", false},                  // CGNAT
		{"https://100.127.255.254/hook", false},             // CGNAT, top
		{"https://224.0.0.1/hook", false},                   // multicast
		{"https://255.255.255.255/hook", false},             // broadcast
		{"https://198.18.0.1/hook", false},                  // benchmarking
		{"https://[::1]/hook", false},                       // IPv6 loopback
		{"https://[::]/hook", false},                        // unspecified
		{"https://[::ffff:127.0.0.1]/hook", false},          // IPv4-mapped loopback
		{"https://[::ffff:169.254.169.254]/hook", false},    // IPv4-mapped metadata
		{"https://[::ffff:10.0.0.1]/hook", false},           // IPv4-mapped private
		{"https://[64:ff9b::7f00:1]/hook", false},           // NAT64 of 127.0.0.1
		{"https://[2002:7f00:1::1]/hook", false},            // 6to4 of 127.0.0.1
		{"https://[fe80::1]/hook", false},                   // link-local
		{"https://[fd00:ec2::254]/hook", false},             // unique local (AWS IPv6 metadata)
		{"https://[ff02::1]/hook", false},                   // multicast
	}
	for _, tc := range tests {
		err := g.CheckURL(context.Background(), tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.url, err, tc.ok)
			continue
		}
		if err != nil && ragpipe.ErrorCode(err) != ragpipe.EUNPROCESSABLE {
			t.Errorf("%s: code %q, want %q", tc.url, ragpipe.ErrorCode(err), ragpipe.EUNPROCESSABLE)
		}
	}
}

func TestGuardSwitches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if err := webhook.NewGuard(true, false).CheckURL(ctx, "http://93.184.216.34/"); err != nil {
		t.Errorf("http with ALLOW_HTTP: %v", err)
	}
	if err := webhook.NewGuard(false, true).CheckURL(ctx, "https://localhost:9/"); err != nil {
		t.Errorf("loopback with ALLOW_PRIVATE: %v", err)
	}
	if err := webhook.NewGuard(false, true).CheckURL(ctx, "http://localhost:9/"); err == nil {
		t.Error("http allowed with only ALLOW_PRIVATE")
	}
}

// TestGuardChecksAtDial shows the check is repeated on the address actually
// dialled, so a name that resolved to a public address when registered and
// to a private one later (DNS rebinding) is still refused.
func TestGuardChecksAtDial(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the guarded client reached a loopback server")
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	c := webhook.NewClient(webhook.NewGuard(true, false), 2*time.Second)
	for _, u := range []string{srv.URL, "http://localhost" + port} {
		_, err := c.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil || !strings.Contains(err.Error(), "prohibited") {
			t.Errorf("POST %s: err = %v, want refused by the guard", u, err)
		}
	}
	open := webhook.NewClient(webhook.NewGuard(true, true), 2*time.Second)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	res, err := open.Post(ok.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("with ALLOW_PRIVATE: %v", err)
	}
	res.Body.Close()
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("redirect followed")
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	res, err := webhook.NewClient(webhook.NewGuard(true, true), 2*time.Second).Post(redirect.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d, want the 307 itself", res.StatusCode)
	}
}
