package scale

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// redisDB is this package's Redis database on the shared server (see
// testenv.Redis), for the tests that do not bring a Redis of their own.
const redisDB = 12

// replicaReads returns the API's counts of the reads the replica answered
// and of those it left to the primary, from /metrics.
func replicaReads(t *testing.T, c *user) (replica, primary int) {
	t.Helper()
	res, err := c.api.HTTP.Get(c.api.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, `ragpipe_replica_reads_total{answered_by="replica"} `); ok {
			replica, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(line, `ragpipe_replica_reads_total{answered_by="primary"} `); ok {
			primary, _ = strconv.Atoi(v)
		}
	}
	return replica, primary
}

// TestReplicaReads runs the API with a streaming replica for reads: a
// document reported ready is found by a search at once, from the replica;
// with the replica's replay paused, reads wait out the lag bound and go to
// the primary, still finding it; with the replica stopped, reads keep
// working; restarted, it takes the reads again.
func TestReplicaReads(t *testing.T) {
	pg := testenv.StartReplicated(t)
	const lag = 300 * time.Millisecond
	s := teststack.Start(t, redisDB, func(c *config.Config) {
		c.DatabaseURL, c.DatabaseReadURL, c.DatabaseMaxReplicaLag = pg.PrimaryURL, pg.ReplicaURL, lag
	})
	s.StartWorker(t)
	c := newClient(s, s.Key(t, "acme"))

	// Ready, then searched at once: every search finds its document, and
	// the replica answers (nearly) all of them.
	fromReplica := 0
	for i := range 6 {
		job, err := c.upload("report.md", doc(i, i == 5))
		if err != nil {
			t.Fatal(err)
		}
		if st := c.waitAll(t, []string{job}, time.Minute)[job]; st != "succeeded" {
			t.Fatalf("job %s: %s", job, st)
		}
		before, _ := replicaReads(t, c)
		if !c.searchFinds(t, i) {
			t.Errorf("document %d ready but not found by the search right after", i)
		}
		if after, _ := replicaReads(t, c); after == before+1 {
			fromReplica++
		}
	}
	if fromReplica < 4 {
		t.Errorf("the replica answered %d of 6 searches", fromReplica)
	}
	t.Logf("SCALE replica: %d of 6 searches right after their document was ready answered by the replica, each finding it", fromReplica)

	// Replay paused: the replica falls behind; reads go to the primary
	// after the lag bound, and still see the new document.
	pause := func(sql string) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg.ReplicaURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	pause(`SELECT pg_wal_replay_pause()`)
	job, err := c.upload("behind.md", doc(6, false))
	if err != nil {
		t.Fatal(err)
	}
	if st := c.waitAll(t, []string{job}, time.Minute)[job]; st != "succeeded" {
		t.Fatalf("job %s with the replica paused: %s", job, st)
	}
	// The polls above found the replica behind and rested it; once the
	// rest is over, a read tries it again, waits out the bound, and goes on.
	time.Sleep(1100 * time.Millisecond)
	_, before := replicaReads(t, c)
	begin := time.Now()
	if !c.searchFinds(t, 6) {
		t.Error("document ready while the replica was behind not found by search")
	}
	took := time.Since(begin)
	if _, after := replicaReads(t, c); after != before+1 || took < lag {
		t.Errorf("search with the replica behind: %s, primary reads %d -> %d; want it to wait the lag bound %s, then read the primary",
			took, before, after, lag)
	}
	t.Logf("SCALE replica: with replay paused, a search waited %s (lag bound %s), then the primary answered it",
		took.Round(time.Millisecond), lag)
	pause(`SELECT pg_wal_replay_resume()`)

	// The replica stops: reads keep working, on the primary.
	pg.Replica.Kill()
	for i := range 7 {
		if !c.searchFinds(t, i) {
			t.Errorf("document %d not found with the replica down", i)
		}
	}
	var list struct{ Documents []any }
	if err := c.get("/v1/documents?limit=100", &list); err != nil || len(list.Documents) != 7 {
		t.Errorf("documents with the replica down: %d, %v", len(list.Documents), err)
	}
	var cols struct{ Collections []any }
	if err := c.get("/v1/collections", &cols); err != nil || len(cols.Collections) != 1 {
		t.Errorf("collections with the replica down: %+v, %v", cols, err)
	}

	// Back up: once its rest is over, the replica takes the reads again.
	pg.StartReplica(t)
	deadline := time.Now().Add(30 * time.Second)
	for before, _ := replicaReads(t, c); ; {
		if !c.searchFinds(t, 2) {
			t.Fatal("document 2 not found after the replica came back")
		}
		if after, _ := replicaReads(t, c); after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted replica took no reads within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
