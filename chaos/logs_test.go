package chaos

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// logRecord is one JSON log line of a ragpipe process.
type logRecord struct {
	file  string
	time  time.Time
	level string
	msg   string
	jobID string
	err   string
}

// readLogs parses the JSON lines of the api and worker logs under dir.
func readLogs(dir string) []logRecord {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var recs []logRecord
	for _, path := range files {
		base := filepath.Base(path)
		if !strings.HasPrefix(base, "api") && !strings.HasPrefix(base, "worker") {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l struct {
				Time  time.Time `json:"time"`
				Level string    `json:"level"`
				Msg   string    `json:"msg"`
				JobID string    `json:"job_id"`
				Err   any       `json:"err"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg == "" {
				continue
			}
			r := logRecord{file: base, time: l.Time, level: l.Level, msg: l.Msg, jobID: l.JobID}
			if l.Err != nil {
				b, _ := json.Marshal(l.Err)
				r.err = strings.Trim(string(b), `"`)
			}
			recs = append(recs, r)
		}
		f.Close()
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].time.Before(recs[j].time) })
	return recs
}

// topMessages counts warn and error messages, most frequent first.
func topMessages(recs []logRecord, n int) []string {
	count := map[string]int{}
	for _, r := range recs {
		if r.level == "WARN" || r.level == "ERROR" {
			count[r.level+" "+r.msg]++
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return count[keys[i]] > count[keys[j]] || count[keys[i]] == count[keys[j]] && keys[i] < keys[j]
	})
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, strings.Repeat(" ", 6-len(itoa(count[k])))+itoa(count[k])+"  "+k)
	}
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// percentile returns the p-th percentile (0..1) of ds, 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
