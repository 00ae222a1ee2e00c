package chaos

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// proc is one child process: a service or a ragpipe binary. Its output is
// appended to logPath across restarts. Each child runs in its own process
// group (so a kill takes its children, e.g. pdftotext, with it) and dies with
// the test process.
type proc struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	cred    *syscall.Credential // nil: run as ourselves

	mu      sync.Mutex
	cmd     *exec.Cmd     // guarded by mu; nil when not running
	done    chan struct{} // guarded by mu; closed when cmd exits
	exitErr error         // guarded by mu; how the last run ended
	killed  bool          // guarded by mu; the last run ended by kill or stop
	starts  int           // guarded by mu
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "### chaos: start #%d of %s at %s\n", p.starts+1, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.killed = cmd, done, false
	p.starts++
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.cmd = nil
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// running reports whether the process is up, and a channel closed when it exits.
func (p *proc) running() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil, p.done
}

// signal sends sig to the process group and waits up to wait for the exit.
// It reports whether the process is gone.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil {
		p.killed = true
	}
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// kill SIGKILLs the process group and waits for the exit.
func (p *proc) kill() { p.signal(syscall.SIGKILL, time.Minute) }

// stop asks politely (sig), then kills after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.signal(sig, grace) {
		p.kill()
	}
}

// lastExit says how the last run ended and whether we ended it.
func (p *proc) lastExit() (error, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr, p.killed
}

// postgresCred returns the credentials of the postgres user when we are root
// (the server refuses to run as root), nil otherwise.
func postgresCred() (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user for the database server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a loopback port nothing listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls ok every 100ms until it returns nil or d passes.
func waitFor(d time.Duration, ok func() error) error {
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = ok(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not ready after %s: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNotUp = errors.New("not up")
