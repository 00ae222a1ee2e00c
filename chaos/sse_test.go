package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// follower reads one job's event stream (GET /v1/jobs/{id}/events) as a
// client would through the faults: reconnecting with Last-Event-ID whenever
// the stream breaks before the job's final event.
type follower struct {
	jobID      string
	ids        []int64   // event ids in the order received
	finalType  string    // the final event's type, "" if none came
	finalAt    time.Time // when the final event arrived
	reconnects int
	lastErr    string
}

// sseClient has no overall timeout: a stream lasts as long as its job.
var sseClient = &http.Client{}

func (s *stack) follow(ctx context.Context, jobID string) *follower {
	f := &follower{jobID: jobID}
	var last int64
	for ctx.Err() == nil {
		done, err := s.followOnce(ctx, f, &last)
		if done {
			return f
		}
		if err != nil {
			f.lastErr = err.Error()
		}
		f.reconnects++
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return f
}

func (s *stack) followOnce(ctx context.Context, f *follower, last *int64) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.apiURL+"/v1/jobs/"+f.jobID+"/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Accept", "text/event-stream")
	if *last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	res, err := sseClient.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id int64
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id, _ = strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && id > 0:
			var ev struct {
				Type string `json:"type"`
			}
			json.Unmarshal([]byte(data), &ev)
			f.ids = append(f.ids, id)
			*last = id
			id, data = 0, ""
			switch ev.Type {
			case "job.succeeded", "job.failed", "job.canceled":
				f.finalType, f.finalAt = ev.Type, time.Now()
				return true, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("stream ended before the final event")
}

// followers follows the event streams of jobs as they are accepted.
type followers struct {
	mu   sync.Mutex
	list []*follower // guarded by mu
	wg   sync.WaitGroup
}

func (fs *followers) add(ctx context.Context, s *stack, jobID string) {
	fs.wg.Go(func() {
		f := s.follow(ctx, jobID)
		fs.mu.Lock()
		fs.list = append(fs.list, f)
		fs.mu.Unlock()
	})
}

// check compares what every stream delivered with the job's event log and
// returns the problems found and the final events' delivery delays.
func (fs *followers) check(ctx context.Context, db *pgxpool.Pool) (problems []string, delays []time.Duration, reconnects int) {
	fs.wg.Wait()
	for _, f := range fs.list {
		reconnects += f.reconnects
		rows, err := db.Query(ctx, `SELECT id, type, created_at FROM job_events WHERE job_id = $1 ORDER BY id`, f.jobID)
		if err != nil {
			problems = append(problems, fmt.Sprintf("job %s: read events: %v", f.jobID, err))
			continue
		}
		var want []int64
		var finalType string
		var finalAt time.Time
		for rows.Next() {
			var id int64
			var typ string
			var at time.Time
			if rows.Scan(&id, &typ, &at) != nil || finalType != "" {
				continue
			}
			want = append(want, id)
			switch typ {
			case "job.succeeded", "job.failed", "job.canceled":
				finalType, finalAt = typ, at
			}
		}
		rows.Close()
		switch {
		case f.finalType == "":
			problems = append(problems, fmt.Sprintf("job %s: stream never delivered the final event (%d events, %d reconnects, last error %q)",
				f.jobID, len(f.ids), f.reconnects, f.lastErr))
		case !slices.Equal(f.ids, want):
			problems = append(problems, fmt.Sprintf("job %s: stream delivered events %v, the log holds %v up to the final one", f.jobID, f.ids, want))
		case f.finalType != finalType:
			problems = append(problems, fmt.Sprintf("job %s: stream ended with %s, the log with %s", f.jobID, f.finalType, finalType))
		default:
			delays = append(delays, f.finalAt.Sub(finalAt))
		}
	}
	return problems, delays, reconnects
}
