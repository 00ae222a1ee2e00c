package platform_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ragpipe/ragpipe/docs"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// hostileStrings are values a careless or hostile client sends: control
// characters, invalid or odd Unicode, numbers past every column type,
// traversal and injection attempts, and sheer length.
var hostileStrings = []string{
	"\x00", "a\x00b", "\xff\xfe", "\xed\xa0\x80", "\u202e", "🙂", "%00", "%ff", "-1", "0",
	"2147483648", "99999999999999999999999", "1e400", "../../etc/passwd", "' OR 1=1 --",
	"00000000-0000-0000-0000-000000000000", strings.Repeat("a", 5000), "null", "[]", "{}",
}

// hostileBodies are JSON bodies with hostile values in every field some
// route reads, and bodies that are not JSON at all.
func hostileBodies() []string {
	out := []string{`{`, `[`, `"x"`, `{"top_k": 1e400}`, `{"query":"\ud800"}`, `{"query":"a\u0000b"}`,
		`{"metadata":{"\u0000":"x"}}`, `{"metadata":{"k":"\u0000"}}`, `{"metadata":{"k":{"deep":[1]}}}`,
		`{"overlap_seconds": 9223372036854775807}`, `{"chunk_size": 99999999999, "chunk_overlap": -5}`,
		`{"url":"http://[::1]:80/", "events":["*"]}`, `{"events":["\u0000"], "url":"https://example.com/"}`,
		`{"description":"\u0000", "url":"https://example.com/", "events":["*"]}`}
	for _, v := range hostileStrings {
		q := fmt.Sprintf("%q", v) // a JSON string, escapes and all
		out = append(out, fmt.Sprintf(`{"query":%[1]s,"url":%[1]s,"events":[%[1]s],"description":%[1]s,"collection":%[1]s,`+
			`"metadata":{%[1]s:%[1]s},"document_ids":[%[1]s],"created_after":%[1]s,"created_before":%[1]s,"language":%[1]s,`+
			`"mode":%[1]s,"weights":{"vector":%[1]s},"enabled":%[1]s}`, q))
	}
	return out
}

// routes reads every operation of docs/openapi.yaml, which a test holds to
// routes.go.
func routes(t *testing.T) [][2]string {
	t.Helper()
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(docs.OpenAPI, &spec); err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for path, ops := range spec.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete":
				out = append(out, [2]string{strings.ToUpper(method), path})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1]+out[i][0] < out[j][1]+out[j][0] })
	return out
}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// TestHostileInputs drives every route with hostile path parameters, query
// parameters and bodies, authorised as a tenant (and as the operator for
// /admin), and fails on any 5xx.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	const adminToken = "admin-secret-token"
	s := startStackOn(t, 9, func(c *config.Config) { c.AdminToken = adminToken })
	key := s.Key(t, "hostile")
	if r := s.Upload(t, key, "a.txt", []byte("a real document"), nil); r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	sent, failures := 0, 0
	send := func(method, path, contentType, body, auth string) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			return // a URL no client can send
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Authorization", "Bearer "+auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		res.Body.Close()
		sent++
		if res.StatusCode >= 500 && failures < 20 {
			failures++
			t.Errorf("%s %.120q (body %.80q): %d", method, path, body, res.StatusCode)
		}
	}
	for _, rt := range routes(t) {
		method, tmpl := rt[0], rt[1]
		if tmpl == "/v1/jobs/{id}/events" {
			continue // a stream: its hostile IDs are refused by GET /v1/jobs/{id}'s checks, the same code
		}
		auth := key
		if strings.HasPrefix(tmpl, "/admin") {
			auth = adminToken
		}
		for _, v := range hostileStrings {
			path := pathParam.ReplaceAllString(tmpl, url.PathEscape(v))
			query := url.Values{"limit": {v}, "cursor": {v}, "collection": {v}, "status": {v}, "event": {v},
				"queue": {v}, "dedupe": {v}}.Encode()
			send(method, path+"?"+query, "", "", auth)
		}
		if method == http.MethodGet || method == http.MethodDelete {
			continue
		}
		path := pathParam.ReplaceAllString(tmpl, "00000000-0000-0000-0000-000000000000")
		if tmpl == "/v1/documents" {
			for _, md := range []string{`{"k":"\u0000"}`, `{"\u0000":1}`, `{"k":"\ud800"}`, `{"k":12345678901234567890123}`} {
				r := s.Upload(t, key, "m.txt", []byte("metadata "+md), map[string]string{"metadata": md})
				sent++
				if r.Status >= 500 {
					failures++
					t.Errorf("upload with metadata %s: %d %s", md, r.Status, r.Raw)
				}
			}
			for _, v := range hostileStrings {
				for _, field := range []string{"metadata", "collection", "callback_url", "language"} {
					r := s.Upload(t, key, v, []byte("text "+v), map[string]string{field: v})
					sent++
					if r.Status >= 500 {
						failures++
						t.Errorf("upload with %s %.40q and that filename: %d %s", field, v, r.Status, r.Raw)
					}
				}
			}
			continue
		}
		for _, body := range hostileBodies() {
			send(method, path, "application/json", body, auth)
			send(method, tmpl, "application/json", body, auth)
		}
	}
	t.Logf("%d hostile requests, %d answered 5xx", sent, failures)
}
