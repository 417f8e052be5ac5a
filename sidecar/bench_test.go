package sidecar

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
)

// benchUpstream answers a small JSON body, like a typical API call.
var benchUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"id":42,"status":"shipped"}`)
})

// serve runs one request through h in-process (the upstream hop is a real
// loopback connection, kept alive).
func serveBench(b *testing.B, h http.Handler, bearer string) {
	req := httptest.NewRequest(http.MethodGet, "http://sidecar/orders/42", nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

// BenchmarkProxyAllow: an allowed request through the sidecar with a warm
// verified-token cache: route match, token extraction, Check (cache hit),
// identity headers, proxying. Compare with BenchmarkPlainReverseProxy.
func BenchmarkProxyAllow(b *testing.B) {
	h := start(b, harnessOpt{upstream: benchUpstream})
	tok := token(b, sharedIdP(b), "orders-service")
	serveBench(b, h.srv, tok) // fetches the keys and fills the cache
	b.ReportAllocs()
	for b.Loop() {
		serveBench(b, h.srv, tok)
	}
}

// BenchmarkProxyAllowSigned adds the signed upstream JWT (ES256) per request.
func BenchmarkProxyAllowSigned(b *testing.B) {
	h := start(b, harnessOpt{upstream: benchUpstream, env: map[string]string{"JWT": "true", "JWT_KEY": testkeys.WriteEC(b)}})
	tok := token(b, sharedIdP(b), "orders-service")
	serveBench(b, h.srv, tok)
	b.ReportAllocs()
	for b.Loop() {
		serveBench(b, h.srv, tok)
	}
}

// BenchmarkPlainReverseProxy is the baseline: httputil.ReverseProxy to the
// same upstream, forwarding the same Authorization header, with no checks.
func BenchmarkPlainReverseProxy(b *testing.B) {
	tok := token(b, sharedIdP(b), "orders-service")
	up := newEcho(b, benchUpstream)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConnsPerHost: DefaultMaxIdleConnsPerHost, IdleConnTimeout: 90 * time.Second},
	}
	serveBench(b, rp, tok)
	b.ReportAllocs()
	for b.Loop() {
		serveBench(b, rp, tok)
	}
}

// BenchmarkDirect: deciding whether a request takes the upstream
// transport's own path (run per proxied request).
func BenchmarkDirect(b *testing.B) {
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:3000/orders/42", nil)
	r.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 1300))
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "X-Client-Id", "X-Scopes", "Accept", "User-Agent"} {
		r.Header.Set(h, "some-value-0123456789")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !direct(r) {
			b.Fatal("a plain GET did not take the direct path")
		}
	}
}
