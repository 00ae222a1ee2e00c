package platform_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestFormatsEndToEnd ingests one document of each supported format through
// the API and checks the chunks: their sections (heading paths, for PDFs
// from the outline), their page numbers, and the OCR mark on a scanned page.
func TestFormatsEndToEnd(t *testing.T) {
	s := startStack(t, nil)
	key := s.Key(t, "acme")
	html := []byte(`<!doctype html><html><head><title>Guide</title><style>p{color:red}</style>
<script>var secret = "do not index";</script></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Install guide</h1><p>Unpack the archive into the folder of your choice.</p>
<h2>From source</h2><p>Run make and then make install as root to compile the heliotrope module.</p></article>
<footer>Copyright footer text</footer></body></html>`)
	markdown := []byte("# Handbook\n\nIntro words about the handbook.\n\n- first step\n- second step\n\n## Deploy\n\nShip the marmalade service with the deploy tool.\n")

	type formatCase struct {
		name, file string
		content    []byte
		format     string
		query      string
		section    string
		page       float64
		ocr        bool
		absent     string // text that must not be indexed
	}
	tests := []formatCase{
		{"html", "guide.html", html, "html", "heliotrope module", "Install guide > From source", 1, false, "do not index"},
		{"markdown", "handbook.md", markdown, "markdown", "marmalade service", "Handbook > Deploy", 1, false, ""},
		{"docx", "report.docx", mustRead(t, "../../testdata/sample.docx"), "docx", "supply chains exchange rates", "Summary > Risks", 1, false, ""},
		// Sections of a PDF come from its outline (bookmarks).
		{"pdf-outline", "spec.pdf", mustRead(t, "../../testdata/shared-mime-info-spec.pdf"), "pdf",
			"spreadsheet file may be compressed or not", "2. Unified system > 2.11. Subclassing", 14, false, ""},
	}
	if _, err := exec.LookPath("tesseract"); err == nil {
		tests = append(tests, formatCase{"scanned-pdf", "scan.pdf", mustRead(t, "../../testdata/scan.pdf"), "pdf", "restrictions on aggregating such works", "", 1, true, ""})
	} else {
		t.Log("tesseract not installed: the OCR case is skipped (make test installs it)")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Upload(t, key, tc.file, tc.content, map[string]string{"collection": tc.name})
			if r.Status != http.StatusAccepted {
				t.Fatalf("upload: %d %s", r.Status, r.Raw)
			}
			if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
				t.Fatalf("job: %v", job)
			}
			doc := s.JSON(t, key, http.MethodGet, "/v1/documents/"+r.Body["document_id"].(string), nil).Body
			if doc["format"] != tc.format {
				t.Errorf("format %v, want %s", doc["format"], tc.format)
			}
			res := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": tc.query, "collection": tc.name, "mode": "keyword", "top_k": 1})
			results, _ := res.Body["results"].([]any)
			if len(results) != 1 {
				t.Fatalf("search %q: %s", tc.query, res.Raw)
			}
			first := results[0].(map[string]any)
			if first["section"] != tc.section || first["page_start"] != tc.page || first["ocr"] != tc.ocr {
				t.Errorf("result section %q page %v ocr %v; want %q %v %v", first["section"], first["page_start"], first["ocr"], tc.section, tc.page, tc.ocr)
			}
			if tc.absent != "" {
				chunks := s.JSON(t, key, http.MethodGet, "/v1/documents/"+r.Body["document_id"].(string)+"/chunks", nil)
				if strings.Contains(string(chunks.Raw), tc.absent) {
					t.Errorf("indexed text that should be dropped: %q", tc.absent)
				}
			}
		})
	}
}
