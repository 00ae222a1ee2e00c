package platform_test

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// A browser app on a configured origin passes its preflight without a key
// and reads the API's headers; other origins get no CORS headers; every
// response says how long it took.
func TestCORSAndResponseTime(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.CORSOrigins = []string{"https://app.example.com"} })
	key := s.Key(t, "acme")
	timing := regexp.MustCompile(`^\d+\.\dms$`)

	pre, _ := http.NewRequest(http.MethodOptions, s.URL+"/v1/search", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Headers") == "" || !timing.MatchString(resp.Header.Get("X-Response-Time")) {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	get, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/collections", nil)
	get.Header.Set("Origin", "https://app.example.com")
	get.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("request from the origin: %d %v", resp.StatusCode, resp.Header)
	}

	pre.Header.Set("Origin", "https://evil.example.net")
	resp, err = http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin was allowed: %v", resp.Header)
	}

	for _, path := range []string{"/healthz", "/v1/nowhere", "/v1/collections"} {
		if r := s.JSON(t, key, http.MethodGet, path, nil); !timing.MatchString(r.Header.Get("X-Response-Time")) {
			t.Errorf("%s: X-Response-Time %q", path, r.Header.Get("X-Response-Time"))
		}
	}
}
