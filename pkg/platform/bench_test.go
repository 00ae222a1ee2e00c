package platform_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/fakeopenai"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// BenchmarkIngestPDF measures upload-to-ready for a 120-page PDF (the
// 8-page testdata/lppl.pdf joined 15 times with poppler's pdfunite) through
// the API and one worker with default settings. It reports seconds per
// document and pages per second end to end.
func BenchmarkIngestPDF(b *testing.B) {
	dir := b.TempDir()
	var parts []string
	for range 15 {
		parts = append(parts, "../../testdata/lppl.pdf")
	}
	pdf := filepath.Join(dir, "big.pdf")
	if out, err := exec.Command("pdfunite", append(parts, pdf)...).CombinedOutput(); err != nil {
		b.Skipf("pdfunite (poppler-utils) unavailable: %v %s", err, out)
	}
	content, err := os.ReadFile(pdf)
	if err != nil {
		b.Fatal(err)
	}
	s := startStack(b, nil)
	key := s.Key(b, "bench")
	const pages = 120
	b.ResetTimer()
	for i := range b.N {
		r := s.UploadTo(b, key, "/v1/documents?dedupe=false", fmt.Sprintf("big-%d.pdf", i), content, nil, nil)
		if r.Status != http.StatusAccepted {
			b.Fatalf("upload: %d %s", r.Status, r.Raw)
		}
		job := s.WaitJob(b, key, r.Body["job_id"].(string))
		if job["status"] != "succeeded" {
			b.Fatalf("job: %v", job)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/doc")
	b.ReportMetric(float64(pages*b.N)/b.Elapsed().Seconds(), "pages/s")
}

// BenchmarkPDFsVsPdftotext uploads eight PDFs at once (testdata/lppl.pdf
// joined 15 to 130 times with pdfunite, 2,480 pages, one of 1,040) and times
// them to ready, through the API and one worker with the defaults, beside
// pdftotext alone on the same files one after another. It reports both
// rates and their ratio (ragpipe's pages/s over pdftotext's).
func BenchmarkPDFsVsPdftotext(b *testing.B) {
	dir := b.TempDir()
	var files []string
	pages := 0
	for i, copies := range []int{15, 30, 30, 45, 15, 30, 130, 15} {
		var parts []string
		for range copies {
			parts = append(parts, "../../testdata/lppl.pdf")
		}
		f := filepath.Join(dir, fmt.Sprintf("doc%d.pdf", i))
		if out, err := exec.Command("pdfunite", append(parts, f)...).CombinedOutput(); err != nil {
			b.Skipf("pdfunite (poppler-utils) unavailable: %v %s", err, out)
		}
		files, pages = append(files, f), pages+8*copies
	}
	s := startStack(b, nil)
	key := s.Key(b, "bench")
	var ours, theirs time.Duration
	for i := range b.N {
		start := time.Now()
		for _, f := range files {
			if out, err := exec.Command("pdftotext", f, "-").Output(); err != nil || len(out) == 0 {
				b.Fatalf("pdftotext %s: %v", f, err)
			}
		}
		theirs += time.Since(start)
		start = time.Now()
		var jobs []string
		for k, f := range files {
			content, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			r := s.UploadTo(b, key, "/v1/documents?dedupe=false", fmt.Sprintf("r%d-%d.pdf", i, k), content, nil, nil)
			if r.Status != http.StatusAccepted {
				b.Fatalf("upload: %d %s", r.Status, r.Raw)
			}
			jobs = append(jobs, r.Body["job_id"].(string))
		}
		for _, id := range jobs {
			if job := s.WaitJob(b, key, id); job["status"] != "succeeded" {
				b.Fatalf("job: %v", job)
			}
		}
		ours += time.Since(start)
	}
	b.ReportMetric(float64(pages*b.N)/ours.Seconds(), "pages/s")
	b.ReportMetric(float64(pages*b.N)/theirs.Seconds(), "pdftotext-pages/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-pdftotext")
}

// BenchmarkAskOverhead measures what ragpipe adds to a chat provider's
// first token: a local server replays OpenAI's stream after a fixed 100 ms,
// and the client's time to its first token event, less those 100 ms, is the
// overhead (retrieval included). It also times how long a client's hang-up
// takes to close the provider's connection. 50 questions per iteration.
func BenchmarkAskOverhead(b *testing.B) {
	transcript, err := os.ReadFile("../../internal/fakeopenai/testdata/chat-stream.sse")
	if err != nil {
		b.Fatal(err)
	}
	const providerFirstToken = 100 * time.Millisecond
	replay := &fakeopenai.ChatReplay{Transcript: transcript}
	replay.SetFaults(fakeopenai.Faults{Hang: providerFirstToken})
	provider := httptest.NewServer(replay)
	b.Cleanup(provider.Close)
	s := startStack(b, func(c *config.Config) {
		c.ChatProvider, c.ChatBaseURL, c.ChatModel = "openai", provider.URL+"/v1", "gpt-4o-mini"
	})
	key := s.Key(b, "bench")
	r := s.Upload(b, key, "lppl.pdf", mustRead(b, "../../testdata/lppl.pdf"), nil)
	if job := s.WaitJob(b, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
		b.Fatalf("job %v", job)
	}
	var overhead, hangups []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 50 {
			st := s.AskStream(b, key, map[string]any{"question": "May a modified work be distributed?"})
			if st.Status != http.StatusOK || st.FirstToken == 0 {
				b.Fatalf("ask: %d %v", st.Status, st.Events)
			}
			overhead = append(overhead, st.FirstToken-providerFirstToken)
		}
		hangups = append(hangups, hangUp(b, s, key, replay, fakeopenai.Faults{Hang: providerFirstToken}))
	}
	b.StopTimer()
	slices.Sort(overhead)
	slices.Sort(hangups)
	b.ReportMetric(float64(overhead[len(overhead)/2].Microseconds())/1000, "overhead-p50-ms")
	b.ReportMetric(float64(overhead[len(overhead)*95/100].Microseconds())/1000, "overhead-p95-ms")
	b.ReportMetric(float64(hangups[len(hangups)/2].Microseconds())/1000, "hangup-ms")
}
