// Package loadgen is a small HTTP load generator for the benchmarks in
// bench/: closed-loop (N workers, as fast as possible) or open-loop (a fixed
// request rate, so latency is measured without coordinated omission), with
// exact latency percentiles. Every run is bounded in requests and time, and
// only ever targets the URLs it is given (loopback in bench/).
package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options of one run.
type Options struct {
	// URL is requested with GET and the given headers.
	URL     string
	Headers func(i int64) http.Header // per request; i counts from 0
	// Concurrency is the number of workers (closed loop) or the maximum of
	// requests in flight (open loop).
	Concurrency int
	// Duration bounds the run; MaxRequests too when > 0.
	Duration    time.Duration
	MaxRequests int64
	// Rate, when > 0, issues requests at this fixed rate per second (open
	// loop); latency then counts from the scheduled start.
	Rate float64
	// WantStatus is the expected status (default 200); others count as errors.
	WantStatus int
}

// Result of one run.
type Result struct {
	Requests, Errors int64
	Elapsed          time.Duration
	RPS              float64
	P50, P90, P99    time.Duration
	Max              time.Duration
	FirstError       string
}

func (r Result) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %7s  p90 %7s  p99 %7s  max %7s  (%d requests, %d errors)",
		r.RPS, r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond),
		r.Max.Round(time.Microsecond), r.Requests, r.Errors)
}

// NewClient returns an HTTP client sized for concurrency keep-alive connections.
func NewClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency * 2
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// ClientKinds are the ways of sending that the benchmark commands offer
// (their -client flag).
const ClientKinds = `"conn" (each worker its own connection, exchanges in its own goroutine, like wrk) or "net/http" (an http.Client)`

// ClientFor returns the client Run takes for a kind of ClientKinds: nil for
// "conn", NewClient(concurrency) for "net/http".
func ClientFor(kind string, concurrency int) (*http.Client, error) {
	switch kind {
	case "conn":
		return nil, nil
	case "net/http":
		return NewClient(concurrency), nil
	}
	return nil, fmt.Errorf("-client: %s, got %q", ClientKinds, kind)
}

// Run performs one bounded run. With a nil client, each worker keeps one
// connection of its own and does every exchange on it in its own goroutine,
// as wrk does (see connExchanger); with a client, each request goes through
// client.Do.
func Run(ctx context.Context, client *http.Client, o Options) Result {
	if o.WantStatus == 0 {
		o.WantStatus = http.StatusOK
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var (
		next      atomic.Int64
		errs      atomic.Int64
		firstErr  atomic.Value
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<16)
	)
	one := func(ex exchanger, scheduled time.Time) {
		i := next.Add(1) - 1
		var h http.Header
		if o.Headers != nil {
			h = o.Headers(i)
		}
		status, err := ex.do(ctx, h)
		if err == nil && status != o.WantStatus {
			err = fmt.Errorf("status %d", status)
		}
		lat := time.Since(scheduled)
		if err != nil {
			if ctx.Err() != nil {
				return // the run ended while this request was in flight
			}
			errs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		mu.Lock()
		latencies = append(latencies, lat)
		mu.Unlock()
	}
	newExchanger := func() exchanger {
		if client != nil {
			return &clientExchanger{client: client, url: o.URL}
		}
		return newConnExchanger(o.URL)
	}
	limit := func() bool { return o.MaxRequests > 0 && next.Load() >= o.MaxRequests }
	start := time.Now()
	var wg sync.WaitGroup
	if o.Rate > 0 {
		// A fixed pool of workers takes scheduled start times from a queue;
		// a request that waits in the queue counts that wait as latency.
		queue := make(chan time.Time, 1<<16)
		for w := 0; w < o.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ex := newExchanger()
				defer ex.close()
				for at := range queue {
					if ctx.Err() == nil {
						one(ex, at)
					}
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / o.Rate)
		timer := time.NewTimer(0)
		<-timer.C
	schedule:
		for n := int64(0); ctx.Err() == nil && (o.MaxRequests <= 0 || n < o.MaxRequests); n++ {
			at := start.Add(time.Duration(n) * interval)
			if d := time.Until(at); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break schedule
				}
			}
			select {
			case queue <- at:
			default: // the queue is full: the target is far behind; stop scheduling
				errs.Add(1)
				firstErr.CompareAndSwap(nil, "open-loop queue overflow")
				break schedule
			}
		}
		close(queue)
	} else {
		for w := 0; w < o.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ex := newExchanger()
				defer ex.close()
				for ctx.Err() == nil && !limit() {
					one(ex, time.Now())
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	r := Result{Requests: int64(len(latencies)), Errors: errs.Load(), Elapsed: elapsed}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	if n := len(latencies); n > 0 {
		r.RPS = float64(n) / elapsed.Seconds()
		r.P50, r.P90, r.P99 = latencies[n/2], latencies[n*90/100], latencies[n*99/100]
		r.Max = latencies[n-1]
	}
	return r
}

// exchanger does one GET and reads its whole answer.
type exchanger interface {
	do(ctx context.Context, h http.Header) (status int, err error)
	close()
}

// clientExchanger sends each request with an http.Client. Its transport
// hands every request to a writer and a reader goroutine of its own and back:
// at concurrency 1 on two shared cores that was about 45 µs of each request,
// the same for every target, which hides what the targets differ by.
type clientExchanger struct {
	client *http.Client
	url    string
}

func (e *clientExchanger) do(ctx context.Context, h http.Header) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if h != nil {
		req.Header = h
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func (e *clientExchanger) close() {}

// connExchanger keeps one HTTP/1.1 connection and does each exchange on it
// in the caller's goroutine: it writes the request line, Host and the given
// headers, and reads the answer with net/http's parser, reconnecting when
// the target closes. Each exchange has exchangeTimeout, and the run's end
// interrupts one in flight.
type connExchanger struct {
	target, host, requestLine string
	conn                      net.Conn
	br                        *bufio.Reader
	bw                        *bufio.Writer
}

const exchangeTimeout = 30 * time.Second

func newConnExchanger(rawURL string) *connExchanger {
	e := &connExchanger{}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		e.target = "" // every exchange fails with a clear error
		e.requestLine = rawURL
		return e
	}
	e.target = u.Host
	if u.Port() == "" {
		e.target = net.JoinHostPort(u.Hostname(), "80")
	}
	e.host = u.Host
	e.requestLine = "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	return e
}

func (e *connExchanger) do(ctx context.Context, h http.Header) (int, error) {
	if e.target == "" {
		return 0, fmt.Errorf("loadgen: only http:// URLs without a client, got %q", e.requestLine)
	}
	if e.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", e.target)
		if err != nil {
			return 0, err
		}
		e.conn, e.br, e.bw = c, bufio.NewReader(c), bufio.NewWriter(c)
	}
	status, keep, err := e.exchange(ctx, h)
	if err != nil || !keep {
		e.close()
	}
	return status, err
}

func (e *connExchanger) exchange(ctx context.Context, h http.Header) (status int, keep bool, err error) {
	c := e.conn // the run's end may come after this exchange closed it
	_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, _ = e.bw.WriteString(e.requestLine)
	if err := h.Write(e.bw); err != nil {
		return 0, false, err
	}
	_, _ = e.bw.WriteString("\r\n")
	if err := e.bw.Flush(); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(e.br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err == nil && !resp.Close, err
}

func (e *connExchanger) close() {
	if e.conn != nil {
		_ = e.conn.Close()
		e.conn = nil
	}
}
