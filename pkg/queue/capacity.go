package queue

import (
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// capacityTTL is how long Capacity trusts its last count of workers.
const capacityTTL = time.Second

// Capacity counts the pipeline task slots of the running workers (the sum of
// the concurrency of those that take a pipeline queue), from the heartbeats
// Asynq servers keep in Redis.
type Capacity struct {
	insp *asynq.Inspector

	mu    sync.Mutex
	at    time.Time
	slots int
}

// NewCapacity returns a Capacity on the Redis at opt.
func NewCapacity(opt asynq.RedisConnOpt) *Capacity {
	return &Capacity{insp: asynq.NewInspector(opt)}
}

// Close releases its connections.
func (c *Capacity) Close() error { return c.insp.Close() }

// Slots returns how many pipeline tasks the running workers can run at once,
// counted at most capacityTTL ago.
func (c *Capacity) Slots() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < capacityTTL {
		return c.slots, nil
	}
	servers, err := c.insp.Servers()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range servers {
		if s.Status == "active" && slices.ContainsFunc(ragpipe.PipelineQueues, func(q string) bool { _, ok := s.Queues[q]; return ok }) {
			n += s.Concurrency
		}
	}
	c.at, c.slots = time.Now(), n
	return n, nil
}
