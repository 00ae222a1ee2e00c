package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgServer is a Postgres cluster of the suite's own, run as a child process
// (not through pg_ctl) so the suite controls its life. Its "immediate
// restart" is what `pg_ctl restart -m immediate` does: SIGQUIT to the
// postmaster, which drops every connection without a checkpoint, then crash
// recovery on start.
type pgServer struct {
	proc
	port int
	url  string
}

// pgBin finds the newest installed PostgreSQL's server binaries.
func pgBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a < b
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server under /usr/lib/postgresql (run `make services`)")
}

func startPostgres(root string) (*pgServer, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCred()
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(root, "pgdata"), filepath.Join(root, "pgsock")
	for _, d := range []string{data, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &pgServer{port: port, url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/ragpipe?sslmode=disable", port)}
	// fsync=off survives a crash of the server (the kernel keeps the writes),
	// which is all the suite does to it; it only saves time.
	s.proc = proc{name: "postgres", path: filepath.Join(bin, "postgres"), cred: cred,
		logPath: filepath.Join(root, "logs", "postgres.log"),
		args: []string{"-D", data, "-p", strconv.Itoa(port), "-k", sock, "-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
			"-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"},
		env: []string{"LANG=C.UTF-8", "PATH=" + os.Getenv("PATH")}}
	if err := s.startAndWait(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(s.url, "/ragpipe?", "/postgres?", 1))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE ragpipe"); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	return s, nil
}

func (s *pgServer) startAndWait() error {
	if err := s.start(); err != nil {
		return err
	}
	return waitFor(60*time.Second, func() error {
		if up, _ := s.running(); !up {
			return fmt.Errorf("postgres exited; see %s", s.logPath)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, strings.Replace(s.url, "/ragpipe?", "/postgres?", 1))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

// crash stops the server the way `pg_ctl stop -m immediate` does.
func (s *pgServer) crash() { s.stop(syscall.SIGQUIT, 30*time.Second) }

// redisServer is a Redis of the suite's own, without persistence: a restart
// starts it empty, as a Redis that lost its data (or failed over to an empty
// replica) would be.
type redisServer struct {
	proc
	addr string
}

func startRedis(root string) (*redisServer, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (run `make services`): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.proc = proc{name: "redis", path: path, logPath: filepath.Join(root, "logs", "redis.log"),
		args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--maxmemory-policy", "noeviction",
			"--appendonly", "no", "--save", "", "--dir", dir}}
	return r, r.startAndWait()
}

func (r *redisServer) startAndWait() error {
	if err := r.start(); err != nil {
		return err
	}
	return waitFor(30*time.Second, r.ping)
}

// ping sends PING over raw RESP.
func (r *redisServer) ping() error {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// s3Server is versitygw on a POSIX directory of the suite's own.
type s3Server struct {
	proc
	addr string
}

func startS3(root, access, secret string) (*s3Server, error) {
	path, err := exec.LookPath("versitygw")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, serr := os.Stat(p); serr != nil {
			return nil, fmt.Errorf("versitygw not found (run `make services`): %w", err)
		}
		path = p
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "s3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &s3Server{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.proc = proc{name: "versitygw", path: path, logPath: filepath.Join(root, "logs", "versitygw.log"),
		args: []string{"--quiet", "--port", s.addr, "posix", dir},
		env:  []string{"ROOT_ACCESS_KEY=" + access, "ROOT_SECRET_KEY=" + secret, "PATH=" + os.Getenv("PATH"), "HOME=" + root}}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, waitFor(60*time.Second, func() error {
		res, err := http.Get("http://" + s.addr + "/")
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
}
