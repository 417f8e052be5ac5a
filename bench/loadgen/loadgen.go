// Package loadgen is a small HTTP load generator for the benchmarks in
// bench/: closed-loop (N workers, as fast as possible) or open-loop (a fixed
// request rate, so latency is measured without coordinated omission), with
// exact latency percentiles. Every run is bounded in requests and time, and
// only ever targets the URLs it is given (loopback in bench/).
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
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

// Run performs one bounded run.
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
	one := func(scheduled time.Time) {
		i := next.Add(1) - 1
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
		if o.Headers != nil {
			req.Header = o.Headers(i)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != o.WantStatus {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
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
				for at := range queue {
					if ctx.Err() == nil {
						one(at)
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
				for ctx.Err() == nil && !limit() {
					one(time.Now())
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
