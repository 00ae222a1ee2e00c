package scale

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// docs returns n documents numbered from first, every fourth one big.
func docs(first, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = doc(first+i, (first+i)%4 == 3)
	}
	return out
}

// checkAll fails unless every job succeeded and every document's marker
// is found by search exactly once.
func checkAll(t *testing.T, c *user, jobs []string, limit time.Duration) {
	t.Helper()
	status := c.waitAll(t, jobs, limit)
	lost, stuck := 0, 0
	for i, id := range jobs {
		switch status[id] {
		case "succeeded":
			if !c.searchFinds(t, i) {
				t.Errorf("document %d (job %s) succeeded but its marker is not found exactly once", i, id)
			}
		case "failed", "canceled":
			lost++
			t.Errorf("job %s of document %d: %s", id, i, status[id])
		default:
			stuck++
			t.Errorf("job %s of document %d still %s after %s", id, i, status[id], limit)
		}
	}
	t.Logf("SCALE %s: %d documents, lost %d, stuck %d", t.Name(), len(jobs), lost, stuck)
}

// TestSentinelFailover ingests through a Redis Sentinel group while the
// sentinels fail over on request (SENTINEL FAILOVER) and then while the new
// primary is killed: no accepted document is lost or left unfinished, and
// every one is searchable. Tasks the killed primary had not yet passed to
// its replica are re-enqueued by the reaper.
func TestSentinelFailover(t *testing.T) {
	g := testenv.StartSentinel(t)
	s := teststack.Start(t, -1, func(c *config.Config) {
		c.RedisSentinelAddrs, c.RedisSentinelMaster = g.Sentinels, g.Master
		c.ReaperInterval, c.ReaperStaleAfter = 500*time.Millisecond, 2*time.Second
	})
	s.StartWorker(t)
	c := newClient(s, s.Key(t, "acme"))

	jobs := c.uploadAll(t, 0, docs(0, 12))
	start := time.Now()
	promoted := g.Failover(t)
	switched := time.Since(start)
	jobs = append(jobs, c.uploadAll(t, 12, docs(12, 12))...)
	accepted := time.Since(start)

	// The new primary crashes mid-ingest.
	jobs = append(jobs, c.uploadAll(t, 24, docs(24, 12))...)
	start = time.Now()
	g.Node(t, promoted).Kill()
	g.WaitNewPrimary(t, promoted)
	failedOver := time.Since(start)
	probe, err := c.upload("report-36.md", doc(36, false))
	if err != nil {
		t.Fatal(err)
	}
	backAfter := time.Since(start)
	jobs = append(jobs, probe)
	jobs = append(jobs, c.uploadAll(t, 37, docs(37, 11))...)
	checkAll(t, c, jobs, 3*time.Minute)
	t.Logf("SCALE sentinel: SENTINEL FAILOVER promoted the replica in %s, uploads accepted %s after it began; "+
		"primary SIGKILLed: replica promoted in %s, first upload accepted %s after the kill, all %d documents ready %s after it",
		switched.Round(time.Millisecond), accepted.Round(time.Millisecond), failedOver.Round(time.Millisecond),
		backAfter.Round(time.Millisecond), len(jobs), time.Since(start).Round(time.Millisecond))
}

// TestCluster ingests and searches through a Redis Cluster of three
// primaries: the queues (each on the slot of its hash tag), rate limits and
// provider budgets spread over the nodes, and the operators' queue view
// reads them.
func TestCluster(t *testing.T) {
	addrs := testenv.StartCluster(t)
	s := teststack.Start(t, -1, func(c *config.Config) {
		c.RedisClusterAddrs = addrs
		c.AdminToken = "operator-secret"
	})
	s.StartWorker(t)
	c := newClient(s, s.Key(t, "acme"))
	jobs := c.uploadAll(t, 0, docs(0, 12))
	checkAll(t, c, jobs, 2*time.Minute)

	r := s.JSON(t, "operator-secret", http.MethodGet, "/admin/queues", nil)
	queues, _ := r.Body["queues"].([]any)
	completed := map[string]float64{}
	for _, q := range queues {
		m := q.(map[string]any)
		completed[m["queue"].(string)] = m["completed"].(float64)
	}
	// 12 extract tasks; the three big documents' chunk tasks too.
	if r.Status != http.StatusOK || completed["extract"] != 15 || completed["embed"] < 6 {
		t.Errorf("queue stats over the cluster: %d %s", r.Status, r.Raw)
	}
	holding := 0
	for _, a := range addrs {
		n, err := redis.NewClient(&redis.Options{Addr: a}).DBSize(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("keys on %d of 3 cluster nodes, want them spread", holding)
	}
}
