package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ragpipe/ragpipe/pkg/answer"
)

// metrics are the API process's Prometheus metrics, on a registry of its
// own (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	chat     *chatMetrics
}

// chatMetrics are /v1/ask's, by the provider and model that answered:
// both come from configuration, so their values are bounded.
type chatMetrics struct {
	tokens     *prometheus.CounterVec
	firstToken *prometheus.HistogramVec
	total      *prometheus.HistogramVec
}

// observe counts one answer's tokens and times.
func (m *chatMetrics) observe(r answer.Result, firstToken, total time.Duration) {
	m.tokens.WithLabelValues(r.Provider, r.Model, "prompt").Add(float64(r.PromptTokens))
	m.tokens.WithLabelValues(r.Provider, r.Model, "completion").Add(float64(r.CompletionTokens))
	m.firstToken.WithLabelValues(r.Provider, r.Model).Observe(firstToken.Seconds())
	m.total.WithLabelValues(r.Provider, r.Model).Observe(total.Seconds())
}

// queueCollector reads queue depths when scraped, so an autoscaler (e.g.
// KEDA) can scale each class of workers on its queue's
// ragpipe_queue_tasks{state="pending"} and ragpipe_queue_oldest_pending_seconds.
type queueCollector struct {
	admin   QueueAdmin
	waiting func(ctx context.Context) (int, error)
	tasks   *prometheus.Desc
	oldest  *prometheus.Desc
	jobs    *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.tasks
	ch <- q.oldest
	ch <- q.jobs
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if stats, err := q.admin.Stats(); err == nil {
		for _, s := range stats {
			for state, n := range map[string]int{"pending": s.Pending, "active": s.Active, "scheduled": s.Scheduled,
				"retry": s.Retry, "archived": s.Archived} {
				ch <- prometheus.MustNewConstMetric(q.tasks, prometheus.GaugeValue, float64(n), s.Queue, state)
			}
			ch <- prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, s.OldestPendingSeconds, s.Queue)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := q.waiting(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(q.jobs, prometheus.GaugeValue, float64(n))
	}
}

func newMetrics(admin QueueAdmin, waiting func(ctx context.Context) (int, error)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragpipe_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ragpipe_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	chatBuckets := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}
	m.chat = &chatMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragpipe_chat_tokens_total", Help: "Tokens of /v1/ask answers by provider, model and kind (prompt, completion).",
		}, []string{"provider", "model", "kind"}),
		firstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ragpipe_chat_first_token_seconds", Help: "Time from the start of generation to the first token, by provider and model.",
			Buckets: chatBuckets,
		}, []string{"provider", "model"}),
		total: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ragpipe_chat_generation_seconds", Help: "Time of a whole generation, by provider and model.",
			Buckets: chatBuckets,
		}, []string{"provider", "model"}),
	}
	m.reg.MustRegister(m.chat.tokens, m.chat.firstToken, m.chat.total)
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if admin != nil && waiting != nil {
		m.reg.MustRegister(&queueCollector{
			admin: admin, waiting: waiting,
			tasks: prometheus.NewDesc("ragpipe_queue_tasks", "Tasks in each Asynq queue by state.", []string{"queue", "state"}, nil),
			oldest: prometheus.NewDesc("ragpipe_queue_oldest_pending_seconds", "How long the oldest pending task of each Asynq queue has waited.",
				[]string{"queue"}, nil),
			jobs: prometheus.NewDesc("ragpipe_jobs_waiting", "Jobs accepted and not yet started (waiting for dispatch or a worker).", nil, nil),
		})
	}
	return m
}

// countVectorIndexes exports the tenants with an HNSW index of their own
// and those past the bound without one yet: a "due" count that stays up
// means the workers' builds fail or cannot keep up.
func (m *metrics) countVectorIndexes(count func(ctx context.Context) (ready, due int, err error)) {
	m.reg.MustRegister(&vectorIndexCollector{count: count,
		desc: prometheus.NewDesc("ragpipe_vector_indexes", "Tenants with an HNSW index of their own (ready) and past the bound without one (due).",
			[]string{"state"}, nil)})
}

// vectorIndexCollector reads the tenants' vector indexes when scraped.
type vectorIndexCollector struct {
	count func(ctx context.Context) (ready, due int, err error)
	desc  *prometheus.Desc
}

func (v *vectorIndexCollector) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

func (v *vectorIndexCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ready, due, err := v.count(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.GaugeValue, float64(ready), "ready")
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.GaugeValue, float64(due), "due")
	}
}

// countReplicaReads exports the reads a replica could take, by the server
// that answered: a rising primary count means the replica is down or
// behind by more than the lag bound.
func (m *metrics) countReplicaReads(reads func() (replica, primary int64)) {
	for _, by := range []string{"replica", "primary"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ragpipe_replica_reads_total", Help: "Reads that may use the read replica, by the server that answered them.",
			ConstLabels: prometheus.Labels{"answered_by": by},
		}, func() float64 {
			r, p := reads()
			if by == "replica" {
				return float64(r)
			}
			return float64(p)
		}))
	}
}

// observe counts a finished request.
func (m *metrics) observe(c echo.Context, start time.Time) {
	route := c.Path()
	if route == "" {
		route = "unmatched"
	}
	method := methodLabel(c.Request().Method)
	m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
	if route != "/v1/jobs/:id/events" { // a stream's length says nothing of latency
		m.latency.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
	}
}

func (m *metrics) handler() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}
