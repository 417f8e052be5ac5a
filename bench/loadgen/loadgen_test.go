package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestClosedLoop(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	r := Run(context.Background(), NewClient(4), Options{URL: srv.URL, Concurrency: 4, Duration: 5 * time.Second, MaxRequests: 200})
	if r.Requests+r.Errors < 200 || r.Errors < 15 || r.Errors > 25 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("%+v", r)
	}
}

func TestOpenLoopRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	r := Run(context.Background(), NewClient(8), Options{URL: srv.URL, Concurrency: 8, Duration: time.Second, Rate: 200})
	// The schedule caps the count at rate × duration (+1 for n=0); a slow
	// machine may issue fewer, never more.
	if r.Requests > 201 || r.Requests < 20 || r.Errors != 0 {
		t.Fatalf("rate 200/s for 1s gave %+v", r)
	}
}
