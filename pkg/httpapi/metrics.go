package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API process's Prometheus metrics, on a registry of its
// own (no global state).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// queueCollector reads queue depths when scraped, so an autoscaler (e.g.
// KEDA) can scale workers on ragpipe_queue_tasks{state="pending"}.
type queueCollector struct {
	admin   QueueAdmin
	waiting func(ctx context.Context) (int, error)
	tasks   *prometheus.Desc
	jobs    *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.tasks; ch <- q.jobs }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if stats, err := q.admin.Stats(); err == nil {
		for _, s := range stats {
			for state, n := range map[string]int{"pending": s.Pending, "active": s.Active, "scheduled": s.Scheduled,
				"retry": s.Retry, "archived": s.Archived} {
				ch <- prometheus.MustNewConstMetric(q.tasks, prometheus.GaugeValue, float64(n), s.Queue, state)
			}
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
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if admin != nil && waiting != nil {
		m.reg.MustRegister(&queueCollector{
			admin: admin, waiting: waiting,
			tasks: prometheus.NewDesc("ragpipe_queue_tasks", "Tasks in each Asynq queue by state.", []string{"queue", "state"}, nil),
			jobs:  prometheus.NewDesc("ragpipe_jobs_waiting", "Jobs accepted and not yet started (waiting for dispatch or a worker).", nil, nil),
		})
	}
	return m
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
