package sidecar

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The listener limits http.Server lacks: an idle timeout on request bodies
// (its ReadTimeout bounds the whole request, so it would cut a large upload
// that streams steadily), and a bound on open connections.

// maxMaxConnections is the largest server.max_connections.
const maxMaxConnections = 1_000_000

// count checks a count field (0 = default) against [lo, hi].
func count(field string, v, def, lo, hi int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < lo || v > hi:
		return 0, cfgErr(field, "must be between %d and %d, got %d", lo, hi, v)
	}
	return v, nil
}

// limitMetrics count what the limits did.
type limitMetrics struct {
	bodyTimeouts prometheus.Counter
	waits        prometheus.Counter
	open         prometheus.Gauge
}

func newLimitMetrics() *limitMetrics {
	return &limitMetrics{
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "body_read_timeouts_total",
			Help: "Requests whose body sent nothing for server.body_read_timeout_seconds (their connection is closed).",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "connection_limit_waits_total",
			Help: "Connections that waited for a free slot because server.max_connections were open.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "open_connections",
			Help: "Open connections of the main listener (bounded by server.max_connections).",
		}),
	}
}

func (m *limitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.bodyTimeouts, m.waits, m.open}
}

// errBodyTimeout is what a request body read returns once the client has
// sent nothing for server.body_read_timeout_seconds.
var errBodyTimeout = errors.New("request body: nothing received within server.body_read_timeout_seconds")

// bodyTimeoutMessage is the 408's body, shaped like the sidecar's other
// answers ({"message": ...}).
const bodyTimeoutMessage = `{"message":"The request body was not received in time"}`

// limitBodyReads gives h's request bodies an idle timeout: each read must
// receive data within timeout, measured from the read's start, so a body
// that keeps arriving is never cut and time spent waiting for the upstream
// to consume it does not count. It is a read deadline on the connection
// (http.ResponseController), moved forward before every read and cleared at
// the body's end, so the connection's background read and the server's own
// deadlines (headers, keep-alive) are unaffected. The deadline is also set
// when the request starts and when h returns, which bounds the server's
// discarding of a body h did not read. A body that times out closes the
// connection; if no response has started, the answer is 408.
func limitBodyReads(h http.Handler, timeout time.Duration, timeouts prometheus.Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout, timeouts: timeouts}
		b.extend()
		defer b.handlerDone()
		// A shallow copy: the server keeps inspecting its own r.Body.
		r = r.WithContext(r.Context())
		r.Body = b
		h.ServeHTTP(&bodyTimeoutWriter{ResponseWriter: w, body: b}, r)
	})
}

// idleBody is a request body with an idle timeout. Reads may come from
// another goroutine than the handler's (the upstream transport's).
type idleBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	timeouts prometheus.Counter

	mu       sync.Mutex
	done     bool // the handler returned: the deadlines are the server's again
	eof      bool
	timedOut bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.timedOut {
		b.mu.Unlock()
		return 0, errBodyTimeout
	}
	if !b.done {
		b.extend()
	}
	b.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == io.EOF:
		b.eof = true
		if !b.done {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !b.timedOut {
			b.timedOut = true
			b.timeouts.Inc()
		}
		err = errBodyTimeout
	}
	return n, err
}

// extend moves the deadline to timeout from now. Errors (a writer without
// deadlines, a hijacked connection) leave the body without a timeout.
func (b *idleBody) extend() { _ = b.rc.SetReadDeadline(time.Now().Add(b.timeout)) }

// handlerDone bounds what the server still reads of an unfinished body, and
// stops later reads from touching the deadline: after the handler returns,
// the connection's deadlines belong to the next request.
func (b *idleBody) handlerDone() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	if !b.eof && !b.timedOut {
		b.extend()
	}
}

func (b *idleBody) hasTimedOut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.timedOut
}

// bodyTimeoutWriter answers 408 instead of the handler's answer when the
// body timed out before the response started (the reverse proxy would
// blame the upstream), and discards what the handler writes after.
type bodyTimeoutWriter struct {
	http.ResponseWriter
	body     *idleBody
	started  bool
	replaced bool
}

// start reports whether the handler's response may be written.
func (w *bodyTimeoutWriter) start() bool {
	if !w.started {
		w.started = true
		if w.body.hasTimedOut() {
			w.replaced = true
			h := w.Header()
			h.Del("Content-Encoding")
			h.Set("Connection", "close")
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Length", strconv.Itoa(len(bodyTimeoutMessage)))
			w.ResponseWriter.WriteHeader(http.StatusRequestTimeout)
			_, _ = io.WriteString(w.ResponseWriter, bodyTimeoutMessage)
		}
	}
	return !w.replaced
}

func (w *bodyTimeoutWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols { // informational: the response has not started
		if !w.replaced {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if w.start() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *bodyTimeoutWriter) Write(p []byte) (int, error) {
	if !w.start() {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (the reverse proxy's Flush and
// Hijack) reach the server's writer.
func (w *bodyTimeoutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connLimiter is a listener that keeps at most cap(slots) connections open.
// At the limit, an accepted connection waits (unserved) for one to close
// (netutil.LimitListener's semantics), and an idle keep-alive connection is
// closed to make room, as nginx does when worker_connections run out:
// otherwise idle clients would hold new ones off for server.idle_timeout.
// Connections waiting in the kernel's backlog meanwhile stay there.
type connLimiter struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	m         *limitMetrics

	mu      sync.Mutex
	idle    map[*limitedConn]struct{}
	waiting int // Accept calls waiting for a slot
}

func newConnLimiter(ln net.Listener, n int, m *limitMetrics) *connLimiter {
	return &connLimiter{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{}), m: m,
		idle: map[*limitedConn]struct{}{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return l.track(c), nil
	default:
	}
	l.m.waits.Inc()
	l.mu.Lock()
	l.waiting++
	var victim *limitedConn
	for ic := range l.idle {
		victim = ic
		delete(l.idle, ic)
		break
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	if victim != nil {
		_ = victim.Close()
	}
	select {
	case l.slots <- struct{}{}:
		return l.track(c), nil
	case <-l.closed:
		_ = c.Close()
		return nil, net.ErrClosed
	}
}

func (l *connLimiter) track(c net.Conn) net.Conn {
	l.m.open.Inc()
	return &limitedConn{Conn: c, l: l}
}

// Close stops Accept, including one waiting for a slot.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// connState is the http.Server's ConnState hook: it keeps the set of idle
// keep-alive connections, and closes one that turns idle while a new
// connection waits for its slot.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if st != http.StateIdle {
		delete(l.idle, lc)
		l.mu.Unlock()
		return
	}
	if l.waiting > 0 {
		l.mu.Unlock()
		_ = lc.Close()
		return
	}
	l.idle[lc] = struct{}{}
	l.mu.Unlock()
}

// limitedConn holds its slot until its first Close (by the server, by the
// limiter making room, or by whoever hijacked it).
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		c.l.m.open.Dec()
		<-c.l.slots
	})
	return err
}
