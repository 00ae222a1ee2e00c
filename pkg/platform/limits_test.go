package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// TestConnectionLimits holds the API to its deadlines and caps: a withheld
// body is cut off, a slow upload that keeps sending is not, an oversized JSON
// body is 413 unread, junk methods mint no metric series, and an unfit
// client request ID is replaced.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	s := startStackOn(t, 10, func(c *config.Config) { c.HTTPBodyTimeout = time.Second })
	key := s.Key(t, "limits")
	host := strings.TrimPrefix(s.URL, "http://")

	// Headers promising 100 bytes, then nothing.
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", key)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("withheld body: no answer: %v", err)
	}
	res.Body.Close()
	if took := time.Since(start); res.StatusCode != http.StatusBadRequest || took > 4*time.Second {
		t.Errorf("withheld body: %d after %s; want 400 within about the 1s body timeout", res.StatusCode, took)
	}

	// An upload sent in four parts 400 ms apart: longer in all than the
	// timeout, each gap well under it.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "slow.txt")
	fw.Write([]byte(strings.Repeat("slow but steady words ", 200)))
	mw.Close()
	pr, pw := io.Pipe()
	go func() {
		b := body.Bytes()
		for i := range 4 {
			pw.Write(b[i*len(b)/4 : (i+1)*len(b)/4])
			time.Sleep(400 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/documents", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+key)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Errorf("slow upload: %d, want 202", res.StatusCode)
	}

	// An upload cut short: the client promised more than it sent.
	part := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.txt\"\r\n\r\n" + strings.Repeat("cut short ", 100)
	cut, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	fmt.Fprintf(cut, "POST /v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s", key, len(part)+5000, part)
	cut.(*net.TCPConn).CloseWrite()
	cut.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err = http.ReadResponse(bufio.NewReader(cut), nil)
	if err != nil {
		t.Fatalf("cut upload: no answer: %v", err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(answer), `"upload_incomplete"`) {
		t.Errorf("cut upload: %d %s; want 400 upload_incomplete", res.StatusCode, answer)
	}
	if docs, _ := s.JSON(t, key, http.MethodGet, "/v1/documents", nil).Body["documents"].([]any); len(docs) != 1 {
		t.Errorf("%d documents after the slow and the cut upload, want 1", len(docs))
	}
	keys, err := s.Blobs.List(context.Background(), "tenants/")
	raws := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/raw") {
			raws++
		}
	}
	if err != nil || raws != 1 {
		t.Errorf("uploads stored after the slow and the cut upload: %v %v; want the slow one's", keys, err)
	}

	big := s.Do(t, key, http.MethodPost, "/v1/search", "application/json",
		strings.NewReader(`{"query":"`+strings.Repeat("x", 70_000)+`"}`))
	if big.Status != http.StatusRequestEntityTooLarge || big.ErrorCode() != "payload_too_large" {
		t.Errorf("oversized JSON body: %d %s", big.Status, big.Raw)
	}

	series := func() int {
		r := s.Do(t, "", http.MethodGet, "/metrics", "", nil)
		return strings.Count(string(r.Raw), "ragpipe_http_requests_total{")
	}
	s.Do(t, "", "BREW", "/v1/documents", "", nil) // the OTHER series exists from here on
	series()                                      // and so does that of /metrics
	before := series()
	for i := range 20 {
		s.Do(t, "", "JUNK"+strings.Repeat("X", 1000+i), "/v1/documents", "", nil)
	}
	if after := series(); after != before {
		t.Errorf("20 junk methods added %d request series", after-before)
	}

	for _, tc := range []struct {
		id   string
		kept bool
	}{{"client-id-42", true}, {strings.Repeat("a", 200), false}, {"two words", false}, {url.QueryEscape("é"), true}} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", tc.id)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := res.Header.Get("X-Request-Id")
		if (got == tc.id) != tc.kept || got == "" || len(got) > 128 {
			t.Errorf("X-Request-Id %.20q answered %.40q; kept %t", tc.id, got, tc.kept)
		}
	}
}
