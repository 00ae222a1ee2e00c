package queue

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Redis says where Redis is: one server, a Sentinel failover group or a
// Cluster. Asynq's options and the client for everything else (rate limits,
// provider budgets, health checks) are made from it, so every part of
// ragpipe follows the same topology through a failover.
type Redis struct {
	Addr     string
	Password string
	DB       int

	SentinelAddrs    []string
	SentinelMaster   string
	SentinelPassword string

	ClusterAddrs []string
}

// Asynq returns Asynq's connection options for r.
func (r Redis) Asynq() asynq.RedisConnOpt {
	switch {
	case len(r.ClusterAddrs) > 0:
		return asynq.RedisClusterClientOpt{Addrs: r.ClusterAddrs, Password: r.Password}
	case len(r.SentinelAddrs) > 0:
		return asynq.RedisFailoverClientOpt{MasterName: r.SentinelMaster, SentinelAddrs: r.SentinelAddrs,
			SentinelPassword: r.SentinelPassword, Password: r.Password, DB: r.DB}
	default:
		return asynq.RedisClientOpt{Addr: r.Addr, Password: r.Password, DB: r.DB}
	}
}

// Client returns a go-redis client for r; close it when done.
func (r Redis) Client() redis.UniversalClient {
	switch {
	case len(r.ClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.ClusterAddrs, Password: r.Password})
	case len(r.SentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: r.SentinelMaster, SentinelAddrs: r.SentinelAddrs,
			SentinelPassword: r.SentinelPassword, Password: r.Password, DB: r.DB})
	default:
		return redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password, DB: r.DB})
	}
}
