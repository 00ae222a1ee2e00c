package chaos

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// chunk is a chunk as the API lists it.
type chunk struct {
	Index     int    `json:"index"`
	Text      string `json:"text"`
	PageStart int    `json:"page_start"`
	PageEnd   int    `json:"page_end"`
}

// verdict is what the oracle found for one accepted document.
type verdict struct {
	a         *accepted
	status    string // document status
	jobStatus string
	jobStage  string
	attempts  int
	errCode   string
	updated   time.Time
	chunks    []chunk
	problems  []string
	class     string // ready, failed, lost, stuck, duplicated, mismatched
}

func (v *verdict) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// listChunks reads every chunk of a document through the API.
func (s *stack) listChunks(docID string) ([]chunk, error) {
	var all []chunk
	cursor := ""
	for {
		var page struct {
			Chunks     []chunk `json:"chunks"`
			NextCursor string  `json:"next_cursor"`
		}
		path := "/v1/documents/" + docID + "/chunks?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := s.getJSON(path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Chunks...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// judge checks one accepted document against the reference chunks (nil for
// the reference run itself, which is checked only for consistency).
func (s *stack) judge(ctx context.Context, db *pgxpool.Pool, a *accepted, ref map[string][]chunk) *verdict {
	v := &verdict{a: a}
	var doc struct {
		Status     string `json:"status"`
		ChunkCount int    `json:"chunk_count"`
		LastJobID  string `json:"last_job_id"`
	}
	if err := s.getJSON("/v1/documents/"+a.documentID, &doc); err != nil {
		v.class = "lost"
		v.problem("document: %v", err)
		return v
	}
	var job struct {
		Status   string    `json:"status"`
		Stage    string    `json:"stage"`
		Attempts int       `json:"attempts"`
		Updated  time.Time `json:"updated_at"`
		Error    *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := s.getJSON("/v1/jobs/"+a.jobID, &job); err != nil {
		v.class = "lost"
		v.problem("job: %v", err)
		return v
	}
	v.status, v.jobStatus, v.jobStage, v.attempts, v.updated = doc.Status, job.Status, job.Stage, job.Attempts, job.Updated
	if job.Error != nil {
		v.errCode = job.Error.Code
	}
	switch job.Status {
	case "succeeded", "failed", "canceled":
	default:
		// Never started since it was accepted: its work was lost; started
		// and then left behind: stuck.
		v.class = "stuck"
		if job.Status == "queued" && job.Attempts == 0 {
			v.class = "lost"
		}
		v.problem("job %s in %s after %d attempts, last update %s", job.Status, job.Stage, job.Attempts, job.Updated.Format(time.TimeOnly))
		return v
	}

	// Terminal events: exactly one per job.
	rows, err := db.Query(ctx, `SELECT type, count(*) FROM job_events WHERE job_id = $1
		AND type IN ('job.succeeded', 'job.failed', 'job.canceled') GROUP BY type`, a.jobID)
	if err != nil {
		v.class = "mismatched"
		v.problem("read events: %v", err)
		return v
	}
	terminal := map[string]int{}
	total := 0
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err == nil {
			terminal[typ] = n
			total += n
		}
	}
	rows.Close()
	duplicated := false
	if total != 1 {
		duplicated = total > 1
		v.problem("terminal events %v, want exactly one", terminal)
	}

	switch job.Status {
	case "failed":
		v.class = "failed"
		if v.errCode == "" {
			v.problem("job failed without an error code")
		}
		if doc.Status != "failed" {
			v.problem("job failed but document is %s", doc.Status)
		}
	case "canceled":
		v.class = "failed"
		v.problem("job canceled, but nobody canceled it")
	case "succeeded":
		v.class = "ready"
		if doc.Status != "ready" {
			v.problem("job succeeded but document is %s", doc.Status)
		}
		chunks, err := s.listChunks(a.documentID)
		if err != nil {
			v.problem("list chunks: %v", err)
			break
		}
		v.chunks = chunks
		seen := map[int]bool{}
		for i, c := range chunks {
			if seen[c.Index] {
				duplicated = true
				v.problem("chunk index %d twice", c.Index)
			}
			seen[c.Index] = true
			if c.Index != i && !seen[i] {
				v.problem("chunk indexes not 0..n-1: position %d has index %d", i, c.Index)
			}
		}
		if doc.ChunkCount != len(chunks) {
			duplicated = true
			v.problem("chunk_count %d but %d chunks listed", doc.ChunkCount, len(chunks))
		}
		if want, ok := ref[a.doc.name]; ref != nil {
			switch {
			case !ok:
				v.problem("no reference (the undisturbed run did not make it ready)")
			case !slices.Equal(want, chunks):
				v.problem("chunks differ from the undisturbed run: %d chunks, want %d; first difference at %d",
					len(chunks), len(want), firstDiff(want, chunks))
			}
		}
		if err := checkVectors(ctx, db, a.documentID, len(chunks)); err != nil {
			v.problem("vectors: %v", err)
		}
	}
	if duplicated {
		v.class = "duplicated"
	} else if len(v.problems) > 0 && v.class == "ready" {
		v.class = "mismatched"
	}
	return v
}

func firstDiff(a, b []chunk) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkVectors compares every stored vector of the document with the fake
// provider's vector for the stored text.
func checkVectors(ctx context.Context, db *pgxpool.Pool, docID string, want int) error {
	rows, err := db.Query(ctx, `SELECT chunk_index, text, embedding::text FROM chunks WHERE document_id = $1 ORDER BY chunk_index`, docID)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var idx int
		var text, emb string
		if err := rows.Scan(&idx, &text, &emb); err != nil {
			return err
		}
		n++
		got, err := parseVector(emb)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", idx, err)
		}
		exp := vectorFor(text, embedDim)
		if len(got) != len(exp) {
			return fmt.Errorf("chunk %d: %d dimensions, want %d", idx, len(got), len(exp))
		}
		for k := range got {
			if math.Abs(float64(got[k]-exp[k])) > 1e-6 {
				return fmt.Errorf("chunk %d: vector is not the embedding of its text (dim %d: %g, want %g)", idx, k, got[k], exp[k])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%d rows in chunks, API listed %d", n, want)
	}
	return nil
}

func parseVector(s string) ([]float32, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	parts := strings.Split(s, ",")
	v := make([]float32, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(p, 32)
		if err != nil {
			return nil, err
		}
		v[i] = float32(f)
	}
	return v, nil
}
