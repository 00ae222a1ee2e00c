package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// options are the suite's knobs, read from the environment (docs/chaos.md).
type options struct {
	seed     uint64
	faults   map[string]bool
	duration time.Duration // of the fault phase
	drain    time.Duration // longest wait for every job to end after the faults
	textDocs int
	bigDocs  int
	pdfDocs  int
	workers  int
	bin      string // prebuilt binaries; "" builds from src
	src      string
	dir      string // where logs and data go; "" for a temporary directory
}

func loadOptions(t *testing.T) options {
	o := options{
		seed: uint64(time.Now().UnixNano()), duration: 150 * time.Second, drain: 5 * time.Minute,
		textDocs: 40, bigDocs: 16, pdfDocs: 8, workers: 3, src: "..", faults: map[string]bool{},
	}
	get := func(name string, parse func(string) error) {
		if v := os.Getenv("RAGPIPE_CHAOS_" + name); v != "" {
			if err := parse(v); err != nil {
				t.Fatalf("RAGPIPE_CHAOS_%s=%q: %v", name, v, err)
			}
		}
	}
	atoi := func(p *int) func(string) error {
		return func(s string) (err error) { *p, err = strconv.Atoi(s); return err }
	}
	dur := func(p *time.Duration) func(string) error {
		return func(s string) (err error) { *p, err = time.ParseDuration(s); return err }
	}
	get("SEED", func(s string) (err error) { o.seed, err = strconv.ParseUint(s, 10, 64); return err })
	get("DURATION", dur(&o.duration))
	get("DRAIN", dur(&o.drain))
	get("TEXT_DOCS", atoi(&o.textDocs))
	get("BIG_DOCS", atoi(&o.bigDocs))
	get("PDF_DOCS", atoi(&o.pdfDocs))
	get("WORKERS", atoi(&o.workers))
	get("BIN", func(s string) error { o.bin = s; return nil })
	get("SRC", func(s string) error { o.src = s; return nil })
	get("DIR", func(s string) error { o.dir = s; return nil })
	kinds := "all"
	get("FAULTS", func(s string) error { kinds = s; return nil })
	for _, k := range strings.Split(kinds, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "all":
			for _, a := range allFaults {
				o.faults[a] = true
			}
		case k == "none" || k == "":
		case strings.HasPrefix(k, "-") && slices.Contains(allFaults, k[1:]):
			delete(o.faults, k[1:])
		case slices.Contains(allFaults, k):
			o.faults[k] = true
		default:
			t.Fatalf("RAGPIPE_CHAOS_FAULTS: unknown fault %q; known: all, none, %s (prefix - to leave one out)", k, strings.Join(allFaults, ", "))
		}
	}
	return o
}

// TestChaos ingests a workload once undisturbed, then again while faults are
// injected, and checks that every accepted document ended exactly once, ready
// with the undisturbed run's chunks and vectors or failed with a code.
func TestChaos(t *testing.T) {
	if os.Getenv("RAGPIPE_CHAOS") != "1" {
		t.Skip("the chaos suite runs with RAGPIPE_CHAOS=1 (make chaos)")
	}
	o := loadOptions(t)
	var enabled []string
	for _, k := range allFaults {
		if o.faults[k] {
			enabled = append(enabled, k)
		}
	}
	t.Logf("chaos: seed=%d faults=%s duration=%s docs=%d+%d+%d workers=%d (rerun with RAGPIPE_CHAOS_SEED=%d)",
		o.seed, strings.Join(enabled, ","), o.duration, o.textDocs, o.bigDocs, o.pdfDocs, o.workers, o.seed)

	root := o.dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "ragpipe-chaos-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The database server runs as the postgres user and must reach its directory.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: logs and data in %s", root)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RAGPIPE_CHAOS_KEEP") == "1" || o.dir != "" {
			t.Logf("chaos: kept %s (logs in %s/logs)", root, root)
			return
		}
		os.RemoveAll(root)
	})

	bin := filepath.Join(root, "bin")
	if o.bin == "" {
		buildBinaries(t, o.src, filepath.Join(root, "build"))
		o.bin = filepath.Join(root, "build")
	}
	installBinaries(t, o.bin, bin)
	pdf, err := os.ReadFile("../testdata/lppl.pdf")
	if err != nil {
		t.Fatal(err)
	}
	docs := workload(o.textDocs, o.bigDocs, o.pdfDocs, pdf)
	s := startStack(t, root, bin, o.workers)
	ctx := context.Background()
	db, err := pgxpool.New(ctx, s.pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// The undisturbed run: the reference.
	start := time.Now()
	refUp := s.upload("ref", docs, 0, time.Minute, nil)
	if len(refUp.refused)+len(refUp.gaveUp) > 0 {
		t.Fatalf("undisturbed run: uploads refused %v, gave up %v", refUp.refused, refUp.gaveUp)
	}
	if left := waitTerminal(t, db, refUp.accepted, 3*time.Minute); left > 0 {
		t.Fatalf("undisturbed run: %d jobs did not end within 3m", left)
	}
	ref := map[string][]chunk{}
	for _, a := range refUp.accepted {
		v := s.judge(ctx, db, a, nil)
		if v.class != "ready" || len(v.problems) > 0 {
			t.Fatalf("undisturbed run: %s ended %s (%s): %v", a.doc.name, v.class, v.errCode, v.problems)
		}
		ref[a.doc.name] = v.chunks
	}
	refTime := time.Since(start)
	s.embed.freeze()
	t.Logf("chaos: undisturbed run: %d documents ready in %s", len(refUp.accepted), refTime.Round(time.Millisecond))

	// The disturbed run.
	flog := &faultLog{}
	monkey := &chaosMonkey{t: t, s: s, db: db, kinds: o.faults, log: flog, t0: time.Now(), seed: o.seed}
	stop := make(chan struct{})
	monkeyDone := make(chan struct{})
	shuffled := slices.Clone(docs) // PDFs among the text, in the seed's order
	monkey.rng(3).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	go func() { monkey.run(stop); close(monkeyDone) }()
	chaosStart := time.Now()
	sseCtx, sseCancel := context.WithCancel(ctx)
	defer sseCancel()
	streams := &followers{}
	up := s.upload("chaos", shuffled, o.duration*85/100, 3*time.Minute, func(a *accepted) { streams.add(sseCtx, s, a.jobID) })
	if rest := o.duration - time.Since(chaosStart); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	<-monkeyDone
	faultsEnd := time.Now()
	for _, w := range s.workers { // every worker back before the drain
		if err := waitFor(30*time.Second, func() error {
			if up, _ := w.running(); !up {
				return errNotUp
			}
			return nil
		}); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
	}
	t.Logf("chaos: faults stopped after %s; %d documents accepted; draining (at most %s)",
		time.Since(chaosStart).Round(time.Second), len(up.accepted), o.drain)
	left := waitTerminal(t, db, up.accepted, o.drain)
	drain := time.Since(faultsEnd)
	time.AfterFunc(30*time.Second, sseCancel) // streams of ended jobs get 30s to deliver the end
	sseProblems, sseDelays, sseReconnects := streams.check(ctx, db)
	for _, p := range sseProblems {
		t.Errorf("chaos: event stream: %s", p)
	}

	// The oracle.
	counts := map[string]int{}
	var bad []*verdict
	for _, a := range up.accepted {
		v := s.judge(ctx, db, a, ref)
		counts[v.class]++
		if len(v.problems) > 0 || (v.class != "ready" && v.class != "failed") {
			bad = append(bad, v)
		}
		if v.class == "failed" {
			t.Logf("chaos: %s failed: %s (%d attempts)", a.doc.name, v.errCode, v.attempts)
		}
	}
	orphans := s.orphans(t, up.accepted, refUp.accepted)
	faults := flog.all()
	byKind := map[string]int{}
	killStages := map[string]int{}
	aimed, hits := map[string]int{}, map[string]int{}
	for _, f := range faults {
		byKind[f.kind]++
		for _, st := range f.stages {
			killStages[st]++
		}
		if f.aimed != "" {
			aimed[f.aimed]++
			if f.hit {
				hits[f.aimed]++
			}
		}
	}
	// A fault is counted as not survived when it is the last one before a
	// problem document's last change.
	suspects := map[*fault]bool{}
	for _, v := range bad {
		var last *fault
		for _, f := range faults {
			if !f.at.After(v.updated) && (last == nil || f.at.After(last.at)) {
				last = f
			}
		}
		if last != nil {
			suspects[last] = true
		}
		t.Errorf("chaos: %s (doc %s job %s) %s: status %s/%s stage %s attempts %d code %q; last fault before its last change: %s; problems: %s",
			v.a.doc.name, v.a.documentID, v.a.jobID, v.class, v.status, v.jobStatus, v.jobStage, v.attempts, v.errCode,
			describe(last, monkey.t0), strings.Join(v.problems, "; "))
	}
	survived := len(faults) - len(suspects)

	// How long the reaper took to notice jobs whose tasks Redis lost.
	recs := readLogs(filepath.Join(root, "logs"))
	var notice []time.Duration
	reaped := 0
	for _, f := range faults {
		if f.kind != faultRedis {
			continue
		}
		for _, id := range f.jobs {
			for _, r := range recs {
				if r.jobID == id && r.time.After(f.at) && strings.Contains(r.msg, "reaper re-enqueued") {
					notice = append(notice, r.time.Sub(f.at))
					reaped++
					break
				}
			}
		}
	}
	noticeFig := "n/a"
	if len(notice) > 0 {
		noticeFig = fmt.Sprintf("%s reaper_notice_max=%s", percentile(notice, 0.5).Round(10*time.Millisecond), percentile(notice, 1).Round(10*time.Millisecond))
	}
	retries, outOfRetries, rescues := 0, 0, 0
	requeues := map[string]int{} // reaper re-enqueues by job
	stageRuns := map[string]map[string]int{"extracted": {}, "chunked": {}, "document ready": {}}
	for _, r := range recs {
		switch r.msg {
		case "task failed; will retry":
			retries++
		case "task out of retries; failing job":
			outOfRetries++
		case "reaper re-enqueued":
			requeues[r.jobID]++
		case "reaper rescued tasks a dead worker held":
			rescues++
		}
		if m, ok := stageRuns[r.msg]; ok && r.jobID != "" {
			m[r.jobID]++
		}
	}
	// Work done more than once: harmless by design, but it costs, and a job
	// re-enqueued again and again is a reaper that does not see why it is stuck.
	repeats := func(m map[string]int) (jobs, extra, most int) {
		for _, n := range m {
			if n > 1 {
				jobs++
				extra += n - 1
			}
			most = max(most, n)
		}
		return
	}
	rqJobs, rqExtra, rqMost := repeats(requeues)
	var reruns []string
	for _, msg := range []string{"extracted", "chunked", "document ready"} {
		j, e, _ := repeats(stageRuns[msg])
		reruns = append(reruns, fmt.Sprintf("%q %d extra times in %d jobs", msg, e, j))
	}
	unexpected := 0
	for _, w := range append([]*supervised{s.api}, s.workers...) {
		unexpected += w.unexpectedExits()
	}
	embedCounts, early429, waits := s.embed.stats()

	var kinds []string
	for _, k := range allFaults {
		if byKind[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, byKind[k]))
		}
	}
	notAccepted := len(up.refused) + len(up.gaveUp)
	summary := []string{
		fmt.Sprintf("chaos: seed=%d faults=%d survived=%d jobs=%d ready=%d failed=%d lost=%d duplicated=%d stuck=%d mismatched=%d orphans=%d not_accepted=%d reaper_notice_p50=%s",
			o.seed, len(faults), survived, len(up.accepted), counts["ready"], counts["failed"], counts["lost"], counts["duplicated"],
			counts["stuck"], counts["mismatched"], len(orphans), notAccepted, noticeFig),
		"chaos: faults by kind: " + strings.Join(kinds, " "),
		fmt.Sprintf("chaos: worker kills while jobs ran in stage: extract=%d chunk=%d embed=%d upsert=%d",
			killStages["extract"], killStages["chunk"], killStages["embed"], killStages["upsert"]),
		fmt.Sprintf("chaos: kills of every worker aimed at a stage (job still in it after the kill / aimed): extract=%d/%d chunk=%d/%d embed=%d/%d upsert=%d/%d",
			hits["extract"], aimed["extract"], hits["chunk"], aimed["chunk"], hits["embed"], aimed["embed"], hits["upsert"], aimed["upsert"]),
		fmt.Sprintf("chaos: timings: undisturbed=%s faults=%s drain=%s (unfinished at end of drain: %d)",
			refTime.Round(time.Second), faultsEnd.Sub(chaosStart).Round(time.Second), drain.Round(time.Second), left),
		fmt.Sprintf("chaos: event streams: %d followed, %d incomplete or wrong, %d reconnects; final event delivered p50=%s max=%s after it was logged",
			len(streams.list), len(sseProblems), sseReconnects, percentile(sseDelays, 0.5).Round(10*time.Millisecond), percentile(sseDelays, 1).Round(10*time.Millisecond)),
		fmt.Sprintf("chaos: uploads: %d retried attempts, answers by status %v (0 = transport error)", up.retries, up.statusHit),
		fmt.Sprintf("chaos: tasks: %d retries logged, %d out of retries; %d jobs reaped after Redis loss; unexpected process exits %d",
			retries, outOfRetries, reaped, unexpected),
		fmt.Sprintf("chaos: reaper: %d re-enqueues of %d jobs, %d jobs re-enqueued more than once (%d extra times, at most %d for one job); %d rescues of tasks dead workers held",
			rqExtra+len(requeues), len(requeues), rqJobs, rqExtra, rqMost, rescues),
		"chaos: stages run again: " + strings.Join(reruns, ", "),
		fmt.Sprintf("chaos: provider answers %v; 429 followed up before Retry-After (%s): %d of %d (median wait %s)",
			embedCounts, retryAfter, early429, len(waits), percentile(waits, 0.5).Round(10*time.Millisecond)),
	}
	if len(up.refused) > 0 {
		summary = append(summary, "chaos: uploads refused: "+strings.Join(up.refused, "; "))
	}
	if len(up.gaveUp) > 0 {
		summary = append(summary, "chaos: uploads given up: "+strings.Join(up.gaveUp, "; "))
	}
	summary = append(summary, "chaos: most frequent warnings and errors in the process logs:")
	summary = append(summary, topMessages(recs, 12)...)
	out := strings.Join(summary, "\n") + "\n"
	fmt.Print(out)
	os.WriteFile(filepath.Join(root, "summary.txt"), []byte(out), 0o644)

	if o.faults[faultWorkerKill] {
		for _, st := range stages {
			if hits[st] == 0 {
				t.Errorf("chaos: no worker kill landed while a job was in stage %s (%d aimed)", st, aimed[st])
			}
		}
	}
	if notAccepted > 0 {
		t.Errorf("chaos: %d documents were never accepted", notAccepted)
	}
	if len(orphans) > 0 {
		t.Errorf("chaos: documents the client never saw accepted: %v", orphans)
	}
	if left > 0 {
		t.Errorf("chaos: %d jobs not ended %s after the faults stopped", left, o.drain)
	}
}

func describe(f *fault, t0 time.Time) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("%s at +%s (%s)", f.kind, f.at.Sub(t0).Round(100*time.Millisecond), f.detail)
}

// waitTerminal waits until every accepted job has ended or d passes, and
// returns how many have not.
func waitTerminal(t *testing.T, db *pgxpool.Pool, acc []*accepted, d time.Duration) int {
	ids := make([]string, len(acc))
	for i, a := range acc {
		ids[i] = a.jobID
	}
	deadline := time.Now().Add(d)
	lastReport := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rows, err := db.Query(ctx, `SELECT status, stage, count(*) FROM jobs WHERE id = ANY($1::uuid[])
			AND status NOT IN ('succeeded', 'failed', 'canceled') GROUP BY status, stage ORDER BY 1, 2`, ids)
		left := -1
		var parts []string
		if err == nil {
			left = 0
			for rows.Next() {
				var status, stage string
				var n int
				if rows.Scan(&status, &stage, &n) == nil {
					left += n
					parts = append(parts, fmt.Sprintf("%s/%s=%d", status, stage, n))
				}
			}
			rows.Close()
		}
		cancel()
		if left == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			return left
		}
		if time.Since(lastReport) > 15*time.Second {
			t.Logf("chaos: waiting for %d jobs: %s", left, strings.Join(parts, " "))
			lastReport = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// orphans lists documents of the tenant that no upload was answered for: an
// upload the API recorded while the client saw an error.
func (s *stack) orphans(t *testing.T, lists ...[]*accepted) []string {
	known := map[string]bool{}
	for _, l := range lists {
		for _, a := range l {
			known[a.documentID] = true
		}
	}
	var out []string
	cursor := ""
	for {
		var page struct {
			Documents []struct {
				ID       string `json:"id"`
				Filename string `json:"filename"`
				Status   string `json:"status"`
			} `json:"documents"`
			NextCursor string `json:"next_cursor"`
		}
		path := "/v1/documents?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := s.getJSON(path, &page); err != nil {
			t.Errorf("list documents: %v", err)
			return out
		}
		for _, d := range page.Documents {
			if !known[d.ID] {
				out = append(out, fmt.Sprintf("%s %s (%s)", d.Filename, d.ID, d.Status))
			}
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}
