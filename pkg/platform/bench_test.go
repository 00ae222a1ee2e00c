package platform_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
