package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clients are the two ways of sending: each worker's own connection (nil)
// and an http.Client.
var clients = map[string]func(conc int) *http.Client{
	"own connection": func(int) *http.Client { return nil },
	"http.Client":    NewClient,
}

func TestClosedLoop(t *testing.T) {
	for name, newClient := range clients {
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-N") == "" || r.Host == "" {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				if hits.Add(1)%10 == 0 {
					w.WriteHeader(http.StatusTeapot)
				}
			}))
			defer srv.Close()
			r := Run(context.Background(), newClient(4), Options{URL: srv.URL + "/x?q=1", Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 200,
				Headers: func(i int64) http.Header { return http.Header{"X-N": {strings.Repeat("n", int(i%7)+1)}} }})
			if r.Requests+r.Errors < 200 || r.Errors < 15 || r.Errors > 25 || r.P50 <= 0 || r.P99 < r.P50 {
				t.Fatalf("%+v", r)
			}
			if !strings.Contains(r.FirstError, "418") {
				t.Errorf("first error %q, want the 418", r.FirstError)
			}
		})
	}
}

func TestOpenLoopRate(t *testing.T) {
	for name, newClient := range clients {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			defer srv.Close()
			r := Run(context.Background(), newClient(8), Options{URL: srv.URL, Concurrency: 8, Duration: time.Second, Rate: 200})
			// The schedule caps the count at rate × duration (+1 for n=0); a slow
			// machine may issue fewer, never more.
			if r.Requests > 201 || r.Requests < 20 || r.Errors != 0 {
				t.Fatalf("rate 200/s for 1s gave %+v", r)
			}
		})
	}
}

// TestOwnConnection: one connection per worker while the target keeps it
// alive, a new one after the target closes it, and a clear error for what it
// cannot send.
func TestOwnConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("close") != "" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("body"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	r := Run(context.Background(), nil, Options{URL: srv.URL, Concurrency: 2, Duration: 5 * time.Second, MaxRequests: 100})
	if r.Errors != 0 || r.Requests < 100 || conns.Load() != 2 {
		t.Fatalf("%+v over %d connections, want 2", r, conns.Load())
	}
	conns.Store(0)
	r = Run(context.Background(), nil, Options{URL: srv.URL + "/?close=1", Concurrency: 1, Duration: 5 * time.Second, MaxRequests: 20})
	if r.Errors != 0 || r.Requests != 20 || conns.Load() != 20 {
		t.Fatalf("closing target: %+v over %d connections, want 20", r, conns.Load())
	}
	r = Run(context.Background(), nil, Options{URL: "https://127.0.0.1:1/", Concurrency: 1, Duration: time.Second, MaxRequests: 3})
	if r.Requests != 0 || r.Errors != 3 || !strings.Contains(r.FirstError, "only http://") {
		t.Fatalf("https without a client: %+v", r)
	}
}

// TestRunEndsInFlight: a target that never answers does not hold the run
// past its duration.
func TestRunEndsInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	for name, newClient := range clients {
		start := time.Now()
		r := Run(context.Background(), newClient(2), Options{URL: srv.URL, Concurrency: 2, Duration: 300 * time.Millisecond})
		if el := time.Since(start); el > 3*time.Second || r.Errors != 0 || r.Requests != 0 {
			t.Errorf("%s: %+v after %v", name, r, el)
		}
	}
}
