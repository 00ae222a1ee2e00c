package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Fault kinds, each toggled by RAGPIPE_CHAOS_FAULTS.
const (
	faultWorkerKill = "worker-kill"
	faultRedis      = "redis-restart"
	faultPostgres   = "postgres-restart"
	faultS3         = "s3-refuse"
	faultEmbed500   = "embed-500"
	faultEmbed429   = "embed-429"
	faultEmbedHang  = "embed-hang"
)

var allFaults = []string{faultWorkerKill, faultRedis, faultPostgres, faultS3, faultEmbed500, faultEmbed429, faultEmbedHang}

// fault is one injected fault.
type fault struct {
	kind   string
	at     time.Time
	end    time.Time // when the fault was lifted (the service back)
	detail string
	jobs   []string // redis-restart: jobs not yet ended when Redis lost its data
	stages []string // worker-kill: stages jobs were running in at the time
	aimed  string   // worker-kill of every worker: the stage it waited for
	hit    bool     // aimed: a job was still running in that stage after the kill
}

// faultLog records faults from several goroutines.
type faultLog struct {
	mu     sync.Mutex
	faults []*fault // guarded by mu
}

func (l *faultLog) add(f *fault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = append(l.faults, f)
}

func (l *faultLog) all() []*fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.faults)
}

// chaosMonkey injects faults until stop is closed.
type chaosMonkey struct {
	t     *testing.T
	s     *stack
	db    *pgxpool.Pool
	kinds map[string]bool
	log   *faultLog
	t0    time.Time

	seed uint64
}

// rng returns the random source of one injecting goroutine: each has its
// own, so a seed gives the same sequence of choices in every run (their
// timing against the pipeline still varies).
func (m *chaosMonkey) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(m.seed, stream))
}

func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// run injects faults until stop closes, then waits for every fault to be
// lifted.
func (m *chaosMonkey) run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	if m.kinds[faultWorkerKill] {
		wg.Go(func() { m.killWorkers(stop) })
	}
	var others []string
	for _, k := range allFaults {
		if k != faultWorkerKill && m.kinds[k] {
			others = append(others, k)
		}
	}
	if len(others) > 0 {
		wg.Go(func() { m.serviceFaults(stop, others) })
	}
	wg.Wait()
}

func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	case <-time.After(d):
		return true
	}
}

// stages are the pipeline's stages, in order.
var stages = []string{"extract", "chunk", "embed", "upsert"}

// killWorkers SIGKILLs workers every 2-7 s and lets the supervisor restart
// them after a short while. Kills alternate between one random worker at a
// random moment and every worker at once (a lost node) the moment a job is
// seen working in a chosen stage, the stages taken in turn (a stage no job
// reached in 30 s is aimed at again next time), so that every stage is hit
// mid-flight however short it is.
func (m *chaosMonkey) killWorkers(stop <-chan struct{}) {
	var wg sync.WaitGroup
	defer wg.Wait()
	r := m.rng(1)
	aim := 0
	for n := 0; sleepOrStop(uniform(r, 2*time.Second, 7*time.Second), stop); n++ {
		var victims []*supervised
		var running []string
		aimed, target := "", ""
		if n%2 == 1 {
			aimed = stages[aim%len(stages)]
			if target, running = m.awaitStage(aimed, 30*time.Second, stop); target == "" {
				m.t.Logf("chaos: +%s no job worked in stage %s for 30s; no kill", time.Since(m.t0).Round(100*time.Millisecond), aimed)
				continue
			}
			aim++
			for _, w := range m.s.workers {
				if up, _ := w.running(); up {
					victims = append(victims, w)
				}
			}
		} else {
			w := m.s.workers[r.IntN(len(m.s.workers))]
			if up, _ := w.running(); !up {
				continue
			}
			victims = []*supervised{w}
			running = m.runningStages()
		}
		f := &fault{kind: faultWorkerKill, at: time.Now(), stages: running, aimed: aimed}
		var killed, back sync.WaitGroup
		for _, w := range victims {
			down := uniform(r, 200*time.Millisecond, 2*time.Second)
			killed.Add(1)
			back.Go(func() { w.killFor(down, killed.Done) })
		}
		killed.Wait()
		wg.Go(func() {
			back.Wait()
			f.end = time.Now()
		})
		where := "no stage"
		if len(running) > 0 {
			where = strings.Join(running, ",")
		}
		if aimed == "" {
			f.detail = victims[0].name + " while jobs run in " + where
		} else {
			f.hit = m.inStage(target, aimed)
			f.detail = fmt.Sprintf("all %d workers, aimed at %s (jobs in %s; job %s still in %s after the kill: %v)",
				len(victims), aimed, where, target, aimed, f.hit)
		}
		m.log.add(f)
		m.t.Logf("chaos: +%s %s %s", f.at.Sub(m.t0).Round(100*time.Millisecond), f.kind, f.detail)
	}
}

// awaitStage polls until a job works in stage: running in it and changed
// within the last second (a job whose task a killed worker still holds is
// running but idle). It returns the job and the stages jobs run in at that
// moment, or "" when none did within d or stop closed.
func (m *chaosMonkey) awaitStage(stage string, d time.Duration, stop <-chan struct{}) (string, []string) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var id string
		err := m.db.QueryRow(ctx, `SELECT id::text FROM jobs WHERE status = 'running' AND stage = $1
			AND updated_at > now() - interval '1 second' ORDER BY updated_at DESC LIMIT 1`, stage).Scan(&id)
		cancel()
		if err == nil {
			return id, m.runningStages()
		}
		if !sleepOrStop(5*time.Millisecond, stop) {
			return "", nil
		}
	}
	return "", nil
}

// inStage reports whether job runs in stage.
func (m *chaosMonkey) inStage(job, stage string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var in bool
	err := m.db.QueryRow(ctx, `SELECT status = 'running' AND stage = $2 FROM jobs WHERE id = $1`, job, stage).Scan(&in)
	return err == nil && in
}

// runningStages names the stages jobs are running in right now.
func (m *chaosMonkey) runningStages() []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, err := m.db.Query(ctx, `SELECT DISTINCT stage FROM jobs WHERE status = 'running' ORDER BY stage`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var stages []string
	for rows.Next() {
		var stage string
		if rows.Scan(&stage) == nil {
			stages = append(stages, stage)
		}
	}
	return stages
}

// unfinishedJobs lists the jobs not yet ended.
func (m *chaosMonkey) unfinishedJobs() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := m.db.Query(ctx, `SELECT id::text FROM jobs WHERE status IN ('queued', 'running')`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// serviceFaults injects one fault of the other kinds at a time.
func (m *chaosMonkey) serviceFaults(stop <-chan struct{}, kinds []string) {
	r := m.rng(2)
	for sleepOrStop(uniform(r, 2*time.Second, 6*time.Second), stop) {
		f := &fault{kind: kinds[r.IntN(len(kinds))], at: time.Now()}
		switch f.kind {
		case faultRedis:
			// Losing Redis matters when it held tasks: wait a while for some.
			deadline := time.Now().Add(10 * time.Second)
			for f.jobs = m.unfinishedJobs(); len(f.jobs) == 0 && time.Now().Before(deadline); f.jobs = m.unfinishedJobs() {
				time.Sleep(20 * time.Millisecond)
			}
			f.at = time.Now()
			m.s.redis.kill()
			down := uniform(r, 0, 2*time.Second)
			time.Sleep(down)
			if err := m.s.redis.startAndWait(); err != nil {
				m.t.Errorf("restart redis: %v", err)
			}
			f.detail = fmt.Sprintf("down %s, %d unfinished jobs", down.Round(time.Millisecond), len(f.jobs))
		case faultPostgres:
			m.s.pg.crash()
			down := uniform(r, 0, 2*time.Second)
			time.Sleep(down)
			if err := m.s.pg.startAndWait(); err != nil {
				m.t.Errorf("restart postgres: %v", err)
			}
			f.detail = fmt.Sprintf("down %s", time.Since(f.at).Round(time.Millisecond))
		case faultS3:
			m.s.s3proxy.refuse(true)
			d := uniform(r, 2*time.Second, 8*time.Second)
			time.Sleep(d)
			m.s.s3proxy.refuse(false)
			f.detail = "for " + d.Round(time.Millisecond).String()
		case faultEmbed500, faultEmbed429, faultEmbedHang:
			mode := map[string]string{faultEmbed500: embed500, faultEmbed429: embed429, faultEmbedHang: embedHang}[f.kind]
			m.s.embed.setMode(mode)
			d := uniform(r, 2*time.Second, 8*time.Second)
			time.Sleep(d)
			m.s.embed.setMode(embedOK)
			f.detail = "for " + d.Round(time.Millisecond).String()
		}
		f.end = time.Now()
		m.log.add(f)
		m.t.Logf("chaos: +%s %s %s", f.at.Sub(m.t0).Round(100*time.Millisecond), f.kind, f.detail)
	}
}
