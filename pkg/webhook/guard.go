package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"code.dny.dev/ssrf"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// maxURLLength bounds a target URL.
const maxURLLength = 2048

// Guard decides which URLs webhooks may reach. By default only https URLs
// whose every address is public: loopback, private, link-local (cloud
// metadata included), CGNAT, multicast, reserved and documentation ranges,
// their IPv6 equivalents and IPv4-mapped IPv6 are refused, both when a URL is
// registered and again on every dial (so DNS rebinding fails).
type Guard struct {
	AllowHTTP    bool          // plain http:// allowed too
	AllowPrivate bool          // any address allowed: for local development and tests
	Resolver     *net.Resolver // nil for net.DefaultResolver
	guardian     *ssrf.Guardian
}

// NewGuard returns a Guard with the given switches.
func NewGuard(allowHTTP, allowPrivate bool) *Guard {
	return &Guard{AllowHTTP: allowHTTP, AllowPrivate: allowPrivate, guardian: newGuardian()}
}

// newGuardian is code.dny.dev/ssrf's deny list (IANA's special-purpose
// registries; all IPv6 outside 2000::/3, which covers IPv4-mapped, NAT64,
// ULA, link-local and multicast) on any port. Any port is allowed because
// receivers commonly listen on 8443 and the like; the address is what matters.
func newGuardian() *ssrf.Guardian {
	return ssrf.New(ssrf.WithAnyPort())
}

func (g *Guard) resolver() *net.Resolver {
	if g.Resolver != nil {
		return g.Resolver
	}
	return net.DefaultResolver
}

func refused(format string, args ...any) error {
	return ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "url refused: "+format, args...)
}

// CheckURL validates a target URL at registration: its form, its scheme, and
// (unless private targets are allowed) every address its host resolves to.
// A refusal is an EUNPROCESSABLE error whose message says why.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > maxURLLength {
		return refused("longer than %d bytes", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return refused("not an absolute http(s) URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !g.AllowHTTP {
			return refused("https is required (RAGPIPE_WEBHOOK_ALLOW_HTTP is off)")
		}
	default:
		return refused("scheme %q; want https", u.Scheme)
	}
	if u.User != nil {
		return refused("credentials in the URL are not allowed")
	}
	if u.Fragment != "" {
		return refused("fragments are not allowed")
	}
	if g.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ips, err := g.resolver().LookupNetIP(rctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return refused("host %q does not resolve", host)
		}
		addrs = ips
	}
	for _, a := range addrs {
		if err := g.guardian.SafeAddr(a); err != nil {
			return refused("%s resolves to %s, which is not a public address", host, a)
		}
	}
	return nil
}

// control is the dialer's last word: it sees the address actually dialled.
func (g *Guard) control(network, address string, c syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	return g.guardian.Safe(network, address, c)
}

// ErrRedirect is the error of an attempt answered with a redirect, which
// webhooks never follow.
var ErrRedirect = errors.New("redirects are not followed")

// NewClient returns the HTTP client deliveries use: dials checked by the
// Guard, no proxy, no redirects, timeout per attempt.
func NewClient(g *Guard, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, 5*time.Second), Control: g.control, Resolver: g.Resolver}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial on our behalf, past the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the 3xx itself is the (failed) answer
		},
	}
}

// describe turns a transport error into a short message for the attempt log.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ssrf.ErrProhibitedIP), errors.Is(err, ssrf.ErrProhibitedNetwork):
		return "refused by the SSRF guard: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timed out"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
