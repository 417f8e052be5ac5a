package sidecar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// upstreamTransport is the reverse proxy's round trip. Most calls a
// sidecar forwards are small bodiless GETs over plain HTTP/1.1 on
// loopback, and for those http.Transport's design (a reader and a writer
// goroutine per connection, each request handed to them and back over
// channels) costs more than the call itself: four goroutine wake-ups per
// request, which on a small machine are tens of microseconds of latency.
// This transport does the exchange of such a request in the caller's
// goroutine: it writes the request and reads the answer's header on a
// kept-alive connection of its own pool, with net/http's own writer and
// parser (Request.Write, ReadResponse). Everything else (a request body,
// an upgrade, Expect, https, any method but GET, HEAD and OPTIONS) goes to
// http.Transport unchanged.
//
// What it keeps of http.Transport's behaviour: the connect timeout (the
// dialer), the response-header timeout (504 as before), the client going
// away cancels the exchange, 1xx answers before the final one are passed
// to the reverse proxy (103 Early Hints) or skipped, at most 10 MiB of
// response header, idle connections are bounded per host and closed after
// the idle timeout, a connection is reused only after its answer was read
// to the end with keep-alive, and one that the upstream closed while idle
// is never used (checked before each reuse); a request that failed on a
// reused connection before any byte of the answer came is sent once more
// on a new one (these methods are idempotent and there is no body).
type upstreamTransport struct {
	std            *http.Transport
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout  time.Duration // 0: none
	maxIdlePerHost int
	idleTimeout    time.Duration
	maxHeaderBytes int64

	mu    sync.Mutex
	idle  map[string][]*upConn // by host:port; the most recently used last
	sweep *time.Timer
}

// maxUpstreamHeaderBytes bounds an answer's header, as http.Transport's
// default does.
const maxUpstreamHeaderBytes = 10 << 20

// max1xx is how many 1xx answers may precede the final one.
const max1xx = 5

func newUpstreamTransport(std *http.Transport, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	headerTimeout time.Duration, maxIdlePerHost int, idleTimeout time.Duration) *upstreamTransport {
	return &upstreamTransport{std: std, dial: dial, headerTimeout: headerTimeout, maxIdlePerHost: maxIdlePerHost,
		idleTimeout: idleTimeout, maxHeaderBytes: maxUpstreamHeaderBytes, idle: map[string][]*upConn{}}
}

// direct reports whether the request takes this transport's own path.
func direct(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Close || len(req.TransferEncoding) > 0 || req.ContentLength != 0 ||
		(req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	for _, h := range [...]string{"Connection", "Upgrade", "Expect", "Te", "Trailer"} {
		if _, ok := req.Header[h]; ok {
			return false
		}
	}
	// Header names and values are not checked again here (that scan was
	// 0.9 µs a request): net/http's server refused the client's invalid ones,
	// the request layer strips control characters from every value it sets
	// (upstream.sanitize), and Request.Write turns any CR or LF left into a
	// space, so no header can be injected (TestUpstreamNoHeaderInjection).
	return len(req.Trailer) == 0 && httpguts.ValidHostHeader(req.Host)
}

// RoundTrip implements http.RoundTripper.
func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !direct(req) {
		return t.std.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		c := t.get(addr)
		reused := c != nil
		if c == nil {
			conn, err := t.dial(req.Context(), "tcp", addr)
			if err != nil {
				return nil, err
			}
			c = newUpConn(conn, addr)
		}
		resp, err := t.exchange(req, c)
		if err == nil {
			return resp, nil
		}
		_ = c.conn.Close()
		if reused && attempt == 0 && c.lr.read == 0 && req.Context().Err() == nil && !isTimeout(err) {
			continue // the upstream closed the kept-alive connection: once more on a new one
		}
		return nil, err
	}
}

// exchange writes req on c and reads the answer's header.
func (t *upstreamTransport) exchange(req *http.Request, c *upConn) (*http.Response, error) {
	c.lr.read, c.lr.left = 0, t.maxHeaderBytes
	c.cancelled = false
	if t.headerTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	stop := context.AfterFunc(req.Context(), c.cancel)
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			if c.lr.left == 0 {
				return nil, fmt.Errorf("upstream answer header larger than %d bytes", t.maxHeaderBytes)
			}
			if req.Context().Err() != nil {
				return nil, req.Context().Err()
			}
			return nil, err
		}
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols || n == max1xx {
			stop()
			return nil, fmt.Errorf("upstream answered %d to a request that asked for no upgrade", resp.StatusCode)
		}
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				stop()
				return nil, err
			}
		}
	}
	c.lr.left = -1 // the body is not bounded here
	if !c.setReadDeadline(time.Time{}) {
		stop()
		return nil, context.Canceled
	}
	b := &upBody{t: t, c: c, rc: resp.Body, stop: stop, keep: !resp.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// get takes the most recently used live idle connection to addr, or nil.
func (t *upstreamTransport) get(addr string) *upConn {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		n := len(list)
		if n == 0 {
			t.mu.Unlock()
			return nil
		}
		c := list[n-1]
		list[n-1] = nil
		t.idle[addr] = list[:n-1]
		t.mu.Unlock()
		if now.Sub(c.idleSince) < t.idleTimeout && c.alive() {
			return c
		}
		_ = c.conn.Close()
	}
}

// put returns c to the pool, or closes it when the pool is full.
func (t *upstreamTransport) put(c *upConn) {
	if c.br.Buffered() > 0 { // bytes nobody asked for: never reuse
		_ = c.conn.Close()
		return
	}
	c.idleSince = time.Now()
	t.mu.Lock()
	if len(t.idle[c.addr]) >= t.maxIdlePerHost {
		t.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.closeStale)
	}
	t.mu.Unlock()
}

// closeStale closes the connections idle for idleTimeout, and runs again
// while any stay idle.
func (t *upstreamTransport) closeStale() {
	now := time.Now()
	var stale []*upConn
	t.mu.Lock()
	t.sweep = nil
	for addr, list := range t.idle {
		keep := list[:0]
		for _, c := range list {
			if now.Sub(c.idleSince) >= t.idleTimeout {
				stale = append(stale, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = keep
		}
	}
	if len(t.idle) > 0 {
		t.sweep = time.AfterFunc(t.idleTimeout/2, t.closeStale)
	}
	t.mu.Unlock()
	for _, c := range stale {
		_ = c.conn.Close()
	}
}

// CloseIdleConnections closes the idle connections of both paths.
func (t *upstreamTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*upConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.conn.Close()
		}
	}
	t.std.CloseIdleConnections()
}

// idleCount is the number of pooled connections (tests).
func (t *upstreamTransport) idleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.idle {
		n += len(l)
	}
	return n
}

// upConn is one kept-alive connection to the upstream.
type upConn struct {
	conn      net.Conn
	addr      string
	lr        countingReader
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time

	mu        sync.Mutex
	cancelled bool // the request's context ended: the deadline stays in the past
}

func newUpConn(conn net.Conn, addr string) *upConn {
	c := &upConn{conn: conn, addr: addr}
	c.lr.r = conn
	c.br = bufio.NewReader(&c.lr)
	c.bw = bufio.NewWriter(conn)
	return c
}

// cancel makes every pending and later read or write on c fail.
func (c *upConn) cancel() {
	c.mu.Lock()
	c.cancelled = true
	_ = c.conn.SetDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

// setReadDeadline sets the read deadline unless the exchange was cancelled;
// it reports whether it did.
func (c *upConn) setReadDeadline(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelled {
		return false
	}
	_ = c.conn.SetReadDeadline(t)
	return true
}

// countingReader counts the bytes read, and fails once left reaches 0
// (left < 0: no bound).
type countingReader struct {
	r    io.Reader
	read int64
	left int64
}

var errHeaderTooLarge = errors.New("upstream answer header too large")

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, errHeaderTooLarge
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.read += int64(n)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return n, err
}

// upBody is an answer's body; once read to its end with keep-alive, the
// connection goes back to the pool, otherwise closing it closes the
// connection.
type upBody struct {
	t    *upstreamTransport
	c    *upConn
	rc   io.ReadCloser
	stop func() bool
	keep bool

	mu   sync.Mutex
	done bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *upBody) Close() error {
	b.finish(false)
	return nil
}

// finish releases the connection once: to the pool after a whole answer,
// else closed.
func (b *upBody) finish(whole bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	notCancelled := b.stop()
	if whole && b.keep && notCancelled {
		if b.rc != nil && b.rc != http.NoBody {
			_ = b.rc.Close()
		}
		b.t.put(b.c)
		return
	}
	_ = b.c.conn.Close()
}
