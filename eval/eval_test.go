package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 5

// floors are what the evaluation holds the offline defaults to, nDCG@10
// over all 300 queries: regression floors a little under what they score.
// goals are the targets set for them (issue 9); the table prints both.
// sliceFloor holds the first 30 queries, a quick check of the same.
var (
	floors = map[string]float64{"keyword": 0.67, "hybrid": 0.66}
	goals  = map[string]float64{"keyword": 0.67, "hybrid": 0.68}
)

const sliceFloor = 0.60

type corpusDoc struct {
	ID    string `json:"_id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

type query struct {
	ID   string `json:"_id"`
	Text string `json:"text"`
}

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (set RAGPIPE_EVAL_DATA to the SciFact folder)", err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readQrels returns the relevance of each judged document, by query.
func readQrels(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) != 3 {
			continue // the header
		}
		score, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			t.Fatalf("%s line %d: %v", path, i+1, err)
		}
		if out[f[0]] == nil {
			out[f[0]] = map[string]float64{}
		}
		out[f[0]][f[1]] = score
	}
	return out
}

// ndcg is nDCG@k of ranked (corpus IDs, best first) against rel.
func ndcg(ranked []string, rel map[string]float64, k int) float64 {
	dcg := 0.0
	for i, id := range ranked[:min(k, len(ranked))] {
		dcg += rel[id] / math.Log2(float64(i+2))
	}
	var ideal []float64
	for _, r := range rel {
		ideal = append(ideal, r)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(ideal)))
	idcg := 0.0
	for i, r := range ideal[:min(k, len(ideal))] {
		idcg += r / math.Log2(float64(i+2))
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}

// recall is the share of relevant documents among the first k of ranked.
func recall(ranked []string, rel map[string]float64, k int) float64 {
	found, relevant := 0, 0
	for id, r := range rel {
		if r > 0 {
			relevant++
			if slices.Contains(ranked[:min(k, len(ranked))], id) {
				found++
			}
		}
	}
	if relevant == 0 {
		return 0
	}
	return float64(found) / float64(relevant)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]
}

// run is one way of searching: a mode, and for hybrid the vector weight
// beside a keyword weight of 1 (0 for the server's default weights).
type run struct {
	mode         string
	vectorWeight float64
}

func (r run) name() string {
	if r.vectorWeight > 0 {
		return fmt.Sprintf("%s (vector weight %g)", r.mode, r.vectorWeight)
	}
	return r.mode
}

// runs are the searches measured: each mode with the defaults, then hybrid
// with other vector weights, to show what the default weighs.
var runs = []run{{"keyword", 0}, {"vector", 0}, {"hybrid", 0}, {"hybrid", 1}, {"hybrid", 0.5}, {"hybrid", 0.3}, {"hybrid", 0.05}}

type modeResult struct {
	ndcg, recall, slice float64
	p50, p95            time.Duration
}

func TestSciFact(t *testing.T) {
	if os.Getenv("RAGPIPE_EVAL") != "1" {
		t.Skip("set RAGPIPE_EVAL=1 (make eval) to run the SciFact evaluation")
	}
	dir := os.Getenv("RAGPIPE_EVAL_DATA")
	if dir == "" {
		dir = "../../shared/datasets/scifact"
	}
	corpus := readJSONL[corpusDoc](t, filepath.Join(dir, "corpus.jsonl"))
	queries := readJSONL[query](t, filepath.Join(dir, "queries.jsonl"))
	qrels := readQrels(t, filepath.Join(dir, "qrels", "test.tsv"))
	var judged []query
	for _, q := range queries {
		if qrels[q.ID] != nil {
			judged = append(judged, q)
		}
	}

	s := teststack.Start(t, redisDB, func(c *config.Config) {
		c.WorkerConcurrency, c.TenantMaxInflight, c.RateLimitPerMin = 16, 256, 1_000_000
	})
	s.StartWorker(t)
	key := s.Key(t, "scifact")

	// Ingest: every abstract, its title first, as a text document.
	start := time.Now()
	byDoc := map[string]string{} // ragpipe document ID → corpus ID
	var mu sync.Mutex
	work := make(chan corpusDoc)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for d := range work {
				r := s.UploadTo(t, key, "/v1/documents?dedupe=false", d.ID+".txt", []byte(d.Title+"\n\n"+d.Text), nil, nil)
				if r.Status != http.StatusAccepted {
					t.Errorf("upload %s: %d %s", d.ID, r.Status, r.Raw)
					continue
				}
				mu.Lock()
				byDoc[r.Body["document_id"].(string)] = d.ID
				mu.Unlock()
			}
		})
	}
	for _, d := range corpus {
		work <- d
	}
	close(work)
	wg.Wait()
	for {
		r := s.JSON(t, key, http.MethodGet, "/v1/documents?status=processing&limit=1", nil)
		if docs, _ := r.Body["documents"].([]any); len(docs) == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			t.Fatal("ingestion did not finish within 20 minutes")
		}
		time.Sleep(time.Second)
	}
	ingest := time.Since(start)
	r := s.JSON(t, key, http.MethodGet, "/v1/collections", nil)
	t.Logf("ingested %d documents in %s: %v", len(byDoc), ingest.Round(time.Second), r.Body["collections"])

	results := map[string]modeResult{}
	for _, run := range runs {
		var sumN, sumR, sumSlice float64
		var lat []time.Duration
		for i, q := range judged {
			body := map[string]any{"query": q.Text, "mode": run.mode, "top_k": 100}
			if run.vectorWeight > 0 {
				body["weights"] = map[string]any{"keyword": 1, "vector": run.vectorWeight}
			}
			t0 := time.Now()
			r := s.JSON(t, key, http.MethodPost, "/v1/search", body)
			lat = append(lat, time.Since(t0))
			if r.Status != http.StatusOK {
				t.Fatalf("search %q: %d %s", q.Text, r.Status, r.Raw)
			}
			// A document ranks where its best chunk does.
			var ranked []string
			for _, x := range r.Body["results"].([]any) {
				id := byDoc[x.(map[string]any)["document_id"].(string)]
				if !slices.Contains(ranked, id) {
					ranked = append(ranked, id)
				}
			}
			n := ndcg(ranked, qrels[q.ID], 10)
			sumN += n
			sumR += recall(ranked, qrels[q.ID], 100)
			if i < 30 {
				sumSlice += n
			}
		}
		results[run.name()] = modeResult{ndcg: sumN / float64(len(judged)), recall: sumR / float64(len(judged)),
			slice: sumSlice / 30, p50: percentile(lat, 0.5), p95: percentile(lat, 0.95)}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nSciFact (BEIR test, %d queries, %d documents, ingested in %s)\n", len(judged), len(corpus), ingest.Round(time.Second))
	fmt.Fprintf(&b, "%-26s %8s %10s %8s %8s %6s %6s %9s\n", "mode", "nDCG@10", "Recall@100", "p50", "p95", "floor", "goal", "first 30")
	for _, run := range runs {
		mode := run.name()
		m := results[mode]
		floor, goal := "-", "-"
		if f, ok := floors[mode]; ok {
			floor, goal = fmt.Sprintf("%.3f", f), fmt.Sprintf("%.3f", goals[mode])
		}
		fmt.Fprintf(&b, "%-26s %8.3f %10.3f %8s %8s %6s %6s %9.3f\n", mode, m.ndcg, m.recall,
			m.p50.Round(100*time.Microsecond), m.p95.Round(100*time.Microsecond), floor, goal, m.slice)
	}

	// Answers: every judged query asked of the extractive answerer,
	// streamed, timed from the client to the first token and to the end.
	var first, total []time.Duration
	cited := 0
	for _, q := range judged {
		st := s.AskStream(t, key, map[string]any{"question": q.Text})
		if st.Status != http.StatusOK || len(st.Events) < 2 || st.Events[len(st.Events)-1].Event != "done" {
			t.Fatalf("ask %q: %d %v", q.Text, st.Status, st.Events)
		}
		first, total = append(first, st.FirstToken), append(total, st.Total)
		if n, _ := st.Events[len(st.Events)-1].Data["cited"].([]any); len(n) > 0 {
			cited++
		}
	}
	fmt.Fprintf(&b, "\n/v1/ask, extractive, streamed (%d questions, %d answered with citations): first token p50 %s p95 %s; whole answer p50 %s p95 %s\n",
		len(judged), cited, percentile(first, 0.5).Round(100*time.Microsecond), percentile(first, 0.95).Round(100*time.Microsecond),
		percentile(total, 0.5).Round(100*time.Microsecond), percentile(total, 0.95).Round(100*time.Microsecond))
	fmt.Print(b.String())
	for mode, f := range floors {
		if results[mode].ndcg < f {
			t.Errorf("%s nDCG@10 %.3f is below its floor %.3f", mode, results[mode].ndcg, f)
		}
		if results[mode].slice < sliceFloor {
			t.Errorf("%s nDCG@10 on the first 30 queries %.3f is below %.3f", mode, results[mode].slice, sliceFloor)
		}
	}
}
