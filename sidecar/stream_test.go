package sidecar

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreamingRequestBody sends a body far larger than any buffer through
// the proxy, and checks that its first part reaches the upstream before the
// client has written the rest (no buffering of the request).
func TestStreamingRequestBody(t *testing.T) {
	const size = 32 << 20
	firstPart := make(chan struct{})
	type got struct {
		n   int64
		sum string
	}
	results := make(chan got, 1)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hash := sha256.New()
		first := make([]byte, 64<<10)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(firstPart)
		hash.Write(first)
		n, err := io.Copy(hash, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		results <- got{n + int64(len(first)), hex.EncodeToString(hash.Sum(nil))}
		w.WriteHeader(http.StatusCreated)
	})
	h := start(t, harnessOpt{upstream: upstream})
	tok := token(t, sharedIdP(t), "orders-service")

	pr, pw := io.Pipe()
	sent := sha256.New()
	writeErr := make(chan error, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{1})
		buf := make([]byte, 64<<10)
		for written := 0; written < size; written += len(buf) {
			_, _ = rng.Read(buf)
			sent.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				writeErr <- err
				return
			}
			if written == 0 { // hold the rest until the upstream has the first part
				select {
				case <-firstPart:
				case <-time.After(10 * time.Second):
					pw.CloseWithError(fmt.Errorf("first part never reached the upstream"))
					writeErr <- fmt.Errorf("first part never reached the upstream: the request body is buffered")
					return
				}
			}
		}
		writeErr <- pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/orders", pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	g := <-results
	if g.n != size || g.sum != hex.EncodeToString(sent.Sum(nil)) {
		t.Errorf("upstream got %d bytes (sha256 %s), sent %d", g.n, g.sum, size)
	}
}

// TestStreamingResponse reads a chunked response progressively: the upstream
// writes its second chunk only after the client has read the first.
func TestStreamingResponse(t *testing.T) {
	ack := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "first")
		http.NewResponseController(w).Flush()
		select {
		case <-ack:
		case <-time.After(10 * time.Second):
			return
		}
		fmt.Fprintln(w, "second")
	})
	h := start(t, harnessOpt{upstream: upstream})
	req, _ := http.NewRequest(http.MethodGet, h.url+"/orders/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, sharedIdP(t), "reports-job"))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v, want chunked", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	lineCh := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); lineCh <- l }()
	select {
	case l := <-lineCh:
		if l != "first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk did not arrive before the response ended: the response is buffered")
	}
	close(ack)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest %q, %v", rest, err)
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	h := start(t, harnessOpt{env: map[string]string{"UPSTREAM": dead}})
	r := do(t, "GET", h.url+"/orders", token(t, sharedIdP(t), "orders-service"), nil, nil)
	if r.status != http.StatusBadGateway || r.message(t) != "The upstream service is unavailable" {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	m := get(t, h.admin+"/metrics")
	if v, err := metricValue(string(m.body), `keycloak_jwt_upstream_errors_total{kind="unavailable"}`); err != nil || v != "1" {
		t.Errorf("upstream error metric: %q %v", v, err)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	h := start(t, harnessOpt{upstream: upstream, env: map[string]string{"TIMEOUT": "1"}})
	began := time.Now()
	r := do(t, "GET", h.url+"/orders", token(t, sharedIdP(t), "orders-service"), nil, nil)
	took := time.Since(began)
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.message(t), "did not respond in time") {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("504 after %s, want about 1s", took)
	}
}

// An upstream that accepts TCP but never completes the TLS handshake: the
// connect timeout runs out and the client gets 504, as from nginx.
func TestUpstreamConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	h := start(t, harnessOpt{env: map[string]string{"UPSTREAM": "https://" + ln.Addr().String(), "CONNECT_TIMEOUT": "1"}})
	began := time.Now()
	r := do(t, "GET", h.url+"/orders", token(t, sharedIdP(t), "orders-service"), nil, nil)
	took := time.Since(began)
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.message(t), "did not respond in time") {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("504 after %s, want about 1s", took)
	}
}

// TestGracefulShutdown starts slow requests, shuts down while they are in
// flight, and expects every one to complete with 200; meanwhile /readyz
// reports 503 and new connections are refused once Serve returns.
func TestGracefulShutdown(t *testing.T) {
	const n = 20
	var mu sync.Mutex
	inFlight := 0
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		mu.Unlock()
		<-release
		time.Sleep(50 * time.Millisecond)
		fmt.Fprint(w, "done")
	})
	h := start(t, harnessOpt{upstream: upstream})
	tok := token(t, sharedIdP(t), "orders-service")
	waitFor(t, "readiness", 5*time.Second, func() bool { return get(t, h.admin+"/readyz").status == 200 })

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	errs := make(chan error, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, h.url+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != 200 || string(b) != "done") {
				err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
			}
			errs <- err
		}()
	}
	waitFor(t, "all requests at the upstream", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == n })
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	waitFor(t, "draining", 5*time.Second, func() bool { return !h.srv.Ready() })
	if r := get(t, h.admin+"/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"draining":true`) {
		t.Errorf("/readyz while draining: %d %s", r.status, r.body)
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("in-flight request: %v", err)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), time.Second); err == nil {
		t.Error("the main listener still accepts connections after shutdown")
	}
}

// TestUpgrade: a protocol upgrade (as WebSocket uses) passes through an
// allowed request and the connection then carries bytes both ways.
func TestUpgrade(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" || r.Header.Get("X-Client-Id") != "orders-service" {
			http.Error(w, "not an echo upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, "echo: "+line)
		brw.Flush()
	})
	h := start(t, harnessOpt{upstream: upstream})
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /orders/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nAuthorization: Bearer %s\r\n\r\n",
		token(t, sharedIdP(t), "orders-service"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	fmt.Fprint(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Errorf("after the upgrade: %q %v", line, err)
	}
}
