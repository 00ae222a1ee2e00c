package chaos

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// proxy forwards TCP connections to target. While refusing, it resets every
// new connection at once and has reset every open one, so clients see
// "connection reset by peer" — an S3 endpoint that is down or unreachable.
type proxy struct {
	ln       net.Listener
	target   string
	refusing atomic.Bool
	refused  atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu; both sides of every open pair
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) close() {
	p.ln.Close()
	p.resetAll()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing.Load() {
			p.refused.Add(1)
			reset(c)
			continue
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		reset(c)
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() })
	wg.Go(func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite() })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
	c.Close()
	u.Close()
}

// refuse switches refusing on or off.
func (p *proxy) refuse(on bool) {
	p.refusing.Store(on)
	if on {
		p.resetAll()
	}
}

func (p *proxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

// reset closes c with an RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
