package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// document is one file of the workload. Each PDF copy goes to a collection of
// its own: identical bytes in one collection would be deduplicated.
type document struct {
	name       string
	collection string // suffix; the phase's name comes first
	content    []byte
}

var words = strings.Fields(`ingest queue worker lease retry backoff jitter vector chunk embed upsert
	reaper outbox redis postgres bucket object artifact stage progress tenant key search hybrid keyword
	answer citation stream event webhook signature timeout deadline crash recover durable idempotent
	exactly once at least failure transient permanent provider model token batch fan out fan in
	commit rollback transaction snapshot replica failover shard partition latency throughput budget
	alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa
	quebec romeo sierra tango uniform victor whiskey xray yankee zulu river mountain forest meadow`)

// workload returns nText generated text and Markdown documents of 0.5-6 KB,
// nBig of 60-120 KB (hundreds of chunks: long embed and upsert stages) and
// nPDF copies of pdf. The same arguments give the same documents.
func workload(nText, nBig, nPDF int, pdf []byte) []document {
	var docs []document
	for i := range nText + nBig {
		r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		var b strings.Builder
		para := func() string {
			n := 20 + r.IntN(60)
			ws := make([]string, n)
			for k := range ws {
				ws[k] = words[r.IntN(len(words))]
			}
			return strings.ToUpper(ws[0][:1]) + ws[0][1:] + " " + strings.Join(ws[1:], " ") + "."
		}
		size := 500 + r.IntN(5500)
		if i >= nText {
			size = 60_000 + r.IntN(60_000)
		}
		name := fmt.Sprintf("doc-%02d.txt", i)
		if i%2 == 1 {
			name = fmt.Sprintf("doc-%02d.md", i)
			fmt.Fprintf(&b, "# Chaos document %d\n\n%s\n\n", i, para())
			for s := 1; b.Len() < size; s++ {
				fmt.Fprintf(&b, "## Section %d.%d\n\n- %s\n- see [item %d](https://example.com/%d/%d)\n\n%s\n\n", i, s, para(), s, i, s, para())
			}
		} else {
			fmt.Fprintf(&b, "Chaos document %d\n\n", i)
			for b.Len() < size {
				b.WriteString(para() + "\n\n")
			}
		}
		docs = append(docs, document{name: name, content: []byte(b.String())})
	}
	for i := range nPDF {
		docs = append(docs, document{name: fmt.Sprintf("lppl-%d.pdf", i), collection: fmt.Sprintf("-pdf-%d", i), content: pdf})
	}
	return docs
}

// accepted is a document the API took (202, or 200 for a deduplicated or
// replayed upload).
type accepted struct {
	doc        document
	collection string
	documentID string
	jobID      string
	tries      int
	at         time.Time
}

// uploadResult is the outcome of uploading a whole phase.
type uploadResult struct {
	mu        sync.Mutex
	accepted  []*accepted // guarded by mu
	refused   []string    // guarded by mu; documents the API refused with a 4xx
	gaveUp    []string    // guarded by mu; documents never accepted within the retry budget
	retries   int         // guarded by mu; attempts beyond the first
	statusHit map[int]int // guarded by mu; answers by status code (0: transport error)
}

// upload posts every document into phase's collections, in waves of three
// spread evenly over spread. Failed attempts (transport errors, 5xx, 429, 503) are
// retried with the same Idempotency-Key for up to budget per document.
// onAccept, if not nil, is called with each accepted document.
func (s *stack) upload(phase string, docs []document, spread, budget time.Duration, onAccept func(*accepted)) *uploadResult {
	res := &uploadResult{statusHit: map[int]int{}}
	var wg sync.WaitGroup
	// Small, frequent waves keep jobs in flight for most of the fault phase.
	const wave = 3
	waves := (len(docs) + wave - 1) / wave
	gap := spread / time.Duration(max(1, waves-1))
	for i, d := range docs {
		wg.Go(func() {
			time.Sleep(time.Duration(i/wave) * gap)
			if a := s.uploadOne(phase, d, budget, res); a != nil && onAccept != nil {
				onAccept(a)
			}
		})
	}
	wg.Wait()
	return res
}

func (s *stack) uploadOne(phase string, d document, budget time.Duration, res *uploadResult) *accepted {
	coll := phase + d.collection
	body, ct := multipartBody(d.name, d.content, coll)
	hdr := map[string]string{"Idempotency-Key": phase + "/" + d.name}
	deadline := time.Now().Add(budget)
	backoff := 250 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		status, b, err := s.apiDo(ctx, http.MethodPost, "/v1/documents", ct, body, hdr)
		cancel()
		res.mu.Lock()
		res.statusHit[status]++
		if try > 1 {
			res.retries++
		}
		res.mu.Unlock()
		if err == nil && (status == http.StatusAccepted || status == http.StatusOK) {
			var out struct {
				DocumentID string `json:"document_id"`
				JobID      string `json:"job_id"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.DocumentID == "" {
				res.mu.Lock()
				res.refused = append(res.refused, fmt.Sprintf("%s: unreadable answer %d %s", d.name, status, b))
				res.mu.Unlock()
				return nil
			}
			a := &accepted{doc: d, collection: coll, documentID: out.DocumentID, jobID: out.JobID, tries: try, at: time.Now()}
			res.mu.Lock()
			res.accepted = append(res.accepted, a)
			res.mu.Unlock()
			return a
		}
		// 409: an earlier attempt with this Idempotency-Key is still in flight.
		if err == nil && status < 500 && status != http.StatusTooManyRequests && status != http.StatusConflict {
			res.mu.Lock()
			res.refused = append(res.refused, fmt.Sprintf("%s: %d %s", d.name, status, b))
			res.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			res.mu.Lock()
			res.gaveUp = append(res.gaveUp, fmt.Sprintf("%s: last %d %v %s", d.name, status, err, b))
			res.mu.Unlock()
			return nil
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 4*time.Second)
	}
}
