package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// This file runs the engines operators scale out on, for real, on loopback:
// a Redis Sentinel group, a Redis Cluster and a streaming Postgres replica,
// each from Debian's own binaries (scripts/services.sh installs them), in
// the test's temporary directory, stopped by the test's cleanup.

// Process is one server the test started.
type Process struct {
	Addr string // host:port it listens on
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// start runs name with args, logging to dir/log, and waits until it
// accepts connections on addr.
func start(t testing.TB, dir, log, addr string, cred *syscall.Credential, name string, args ...string) *Process {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make test installs it: scripts/services.sh with RAGPIPE_SERVICES_SCALE=1): %v", name, err)
	}
	out, err := os.Create(filepath.Join(dir, log))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(dir, log))
			t.Fatalf("%s exited at start:\n%s", name, b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30s", name, addr)
		}
	}
}

// FreeAddr returns a loopback address no one listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// redisServer starts a redis-server that keeps nothing on disk, with extra
// arguments.
func redisServer(t testing.TB, dir string, extra ...string) *Process {
	t.Helper()
	addr := FreeAddr(t)
	args := append([]string{"--port", port(addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxmemory-policy", "noeviction"}, extra...)
	return start(t, dir, "redis-"+port(addr)+".log", addr, nil, "redis-server", args...)
}

// Sentinel is a Redis failover group: a primary, a replica and three
// sentinels that monitor it under Master, failing over one second after the
// primary stops answering.
type Sentinel struct {
	Master    string
	Sentinels []string   // the sentinels' addresses
	Nodes     []*Process // the primary first, then the replica
	client    *redis.SentinelClient
}

// StartSentinel starts a Sentinel group.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	dir := t.TempDir()
	primary := redisServer(t, dir)
	replica := redisServer(t, dir, "--replicaof", "127.0.0.1", port(primary.Addr))
	g := &Sentinel{Master: "ragpipe", Nodes: []*Process{primary, replica}}
	for i := range 3 {
		addr := FreeAddr(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		text := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %s 2\nsentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 10000\nsentinel parallel-syncs %[3]s 1\n",
			port(addr), dir, g.Master, port(primary.Addr))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		start(t, dir, fmt.Sprintf("sentinel-%d.log", i), addr, nil, "redis-sentinel", conf)
		g.Sentinels = append(g.Sentinels, addr)
	}
	g.client = redis.NewSentinelClient(&redis.Options{Addr: g.Sentinels[0]})
	t.Cleanup(func() { g.client.Close() })
	// The sentinels must have found the replica and each other before a
	// failover can succeed.
	waitFor(t, 30*time.Second, "sentinels know the replica and each other", func(ctx context.Context) bool {
		reps, err := g.client.Replicas(ctx, g.Master).Result()
		if err != nil || len(reps) != 1 {
			return false
		}
		sens, err := g.client.Sentinels(ctx, g.Master).Result()
		return err == nil && len(sens) == 2
	})
	return g
}

// Primary returns the address the sentinels name as the primary.
func (g *Sentinel) Primary(t testing.TB) string {
	t.Helper()
	a, err := g.client.GetMasterAddrByName(context.Background(), g.Master).Result()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// Node returns the process listening on addr.
func (g *Sentinel) Node(t testing.TB, addr string) *Process {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	t.Fatalf("no node at %s", addr)
	return nil
}

// Failover asks the sentinels to promote the replica (SENTINEL FAILOVER)
// and waits until they name another primary, returning it.
func (g *Sentinel) Failover(t testing.TB) string {
	t.Helper()
	old := g.Primary(t)
	if err := g.client.Failover(context.Background(), g.Master).Err(); err != nil {
		t.Fatal(err)
	}
	return g.WaitNewPrimary(t, old)
}

// WaitNewPrimary waits until the sentinels name a primary other than old,
// and it answers as a primary, and returns it.
func (g *Sentinel) WaitNewPrimary(t testing.TB, old string) string {
	t.Helper()
	var now string
	waitFor(t, 60*time.Second, "a new primary", func(ctx context.Context) bool {
		a, err := g.client.GetMasterAddrByName(ctx, g.Master).Result()
		if err != nil {
			return false
		}
		now = net.JoinHostPort(a[0], a[1])
		if now == old {
			return false
		}
		c := redis.NewClient(&redis.Options{Addr: now})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	return now
}

// waitFor fails the test unless ok (given a second each time) holds within
// limit.
func waitFor(t testing.TB, limit time.Duration, what string, ok func(ctx context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := ok(ctx)
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartCluster starts a Redis Cluster of three primaries (no replicas) and
// returns their addresses once the cluster is up.
func StartCluster(t testing.TB) []string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		p := redisServer(t, dir, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
			"--cluster-config-file", "nodes-"+strconv.Itoa(len(addrs))+".conf")
		addrs = append(addrs, p.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		waitFor(t, 30*time.Second, "cluster_state:ok at "+a, func(ctx context.Context) bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
	}
	return addrs
}

// Replicated is a Postgres primary of the test's own (initdb) with a
// streaming replica made from it by pg_basebackup, both on loopback.
type Replicated struct {
	PrimaryURL, ReplicaURL string // each of database ragpipe
	Replica                *Process
	bin, replicaDir        string
	cred                   *syscall.Credential
}

// StartReplicated starts a primary and its streaming replica. Run as root,
// both run as the postgres user, as Postgres refuses root.
func StartReplicated(t testing.TB) *Replicated {
	t.Helper()
	r := &Replicated{bin: serverBin(t)}
	dir, owner := ownedDir(t)
	r.cred = owner
	primaryDir := filepath.Join(dir, "primary")
	r.replicaDir = filepath.Join(dir, "replica")
	r.run(t, filepath.Join(r.bin, "initdb"), "-D", primaryDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(primaryDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	r.chown(t, filepath.Join(primaryDir, "pg_hba.conf"))
	pAddr := FreeAddr(t)
	r.postgres(t, primaryDir, pAddr, "primary.log") // stopped by the test's cleanup
	r.PrimaryURL = "postgres://postgres@" + pAddr + "/ragpipe?sslmode=disable"
	r.run(t, filepath.Join(r.bin, "psql"), "-h", "127.0.0.1", "-p", port(pAddr), "-U", "postgres", "-d", "postgres",
		"-c", "CREATE DATABASE ragpipe")
	r.run(t, filepath.Join(r.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", port(pAddr), "-U", "postgres",
		"-D", r.replicaDir, "-R", "-X", "stream", "-c", "fast")
	r.StartReplica(t)
	return r
}

// serverBin is the bin directory of the newest PostgreSQL server
// installed (Debian's /usr/lib/postgresql/VERSION/bin, as
// scripts/services.sh finds it).
func serverBin(t testing.TB) string {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	best, bestVersion := "", -1
	for _, b := range bins {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		if err == nil && v > bestVersion {
			best, bestVersion = filepath.Dir(b), v
		}
	}
	if best == "" {
		t.Fatal("no PostgreSQL server under /usr/lib/postgresql (make test installs it: scripts/services.sh)")
	}
	return best
}

// StartReplica (re)starts the replica on its address, or a new one.
func (r *Replicated) StartReplica(t testing.TB) {
	t.Helper()
	addr := FreeAddr(t)
	if r.Replica != nil {
		addr = r.Replica.Addr
	}
	r.Replica = r.postgres(t, r.replicaDir, addr, "replica.log")
	r.ReplicaURL = "postgres://postgres@" + addr + "/ragpipe?sslmode=disable"
	waitFor(t, 30*time.Second, "replica accepting connections", func(ctx context.Context) bool {
		conn, err := pgx.Connect(ctx, r.ReplicaURL)
		if err == nil {
			conn.Close(ctx)
		}
		return err == nil
	})
}

// postgres starts a server on dataDir, listening on addr only.
func (r *Replicated) postgres(t testing.TB, dataDir, addr, log string) *Process {
	t.Helper()
	return start(t, filepath.Dir(dataDir), log, addr, r.cred, filepath.Join(r.bin, "postgres"), "-D", dataDir,
		"-p", port(addr), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dataDir,
		"-c", "shared_buffers=32MB", "-c", "fsync=off", "-c", "max_connections=100", "-c", "wal_level=replica",
		"-c", "hot_standby=on", "-c", "wal_receiver_status_interval=1s")
}

// run runs a Postgres tool as the servers' owner, failing the test with its
// output when it fails.
func (r *Replicated) run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(name), err, out)
	}
}

func (r *Replicated) chown(t testing.TB, path string) {
	t.Helper()
	if r.cred != nil {
		if err := os.Chown(path, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// ownedDir makes a directory the servers may own: as root, one of the
// postgres user's (whose credential it returns); otherwise the caller's.
func ownedDir(t testing.TB) (string, *syscall.Credential) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ragpipe-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, Postgres needs the postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}
