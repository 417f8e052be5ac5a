package sidecar

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream accepts connections and runs serve on each; accepts counts
// them.
type rawUpstream struct {
	ln      net.Listener
	accepts atomic.Int64
	done    chan struct{}
	mu      sync.Mutex
	conns   []net.Conn
}

// sleep waits d, or until the test ends.
func (u *rawUpstream) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-u.done:
	}
}

func newRawUpstream(t *testing.T, serve func(u *rawUpstream, c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, done: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(u.done)
		_ = ln.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			_ = c.Close()
		}
		u.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(u, c, bufio.NewReader(c))
			}()
		}
	}()
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// readRequests reads requests from br and calls answer with each, until
// answer returns false or the connection ends.
func readRequests(br *bufio.Reader, answer func(r *http.Request) bool) {
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if !answer(r) {
			return
		}
	}
}

// testTransport is an upstreamTransport as the sidecar builds it, with a
// dialer that counts.
func testTransport(t *testing.T, headerTimeout time.Duration, maxIdle int, idle time.Duration) (*upstreamTransport, *atomic.Int64) {
	t.Helper()
	var dials atomic.Int64
	d := &net.Dialer{Timeout: 2 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	std := &http.Transport{DialContext: dial, ResponseHeaderTimeout: headerTimeout, MaxIdleConnsPerHost: maxIdle}
	tr := newUpstreamTransport(std, dial, headerTimeout, maxIdle, idle)
	t.Cleanup(tr.CloseIdleConnections)
	return tr, &dials
}

// roundTrip sends one request and returns the status and the whole body.
func roundTrip(t *testing.T, tr http.RoundTripper, method, url string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), err
}

func TestDirectRequests(t *testing.T) {
	get := func(mod func(r *http.Request)) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://up/x", nil)
		if mod != nil {
			mod(r)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"GET", get(nil), true},
		{"HEAD", get(func(r *http.Request) { r.Method = http.MethodHead }), true},
		{"OPTIONS", get(func(r *http.Request) { r.Method = http.MethodOptions }), true},
		{"POST without body", get(func(r *http.Request) { r.Method = http.MethodPost }), false},
		{"DELETE", get(func(r *http.Request) { r.Method = http.MethodDelete }), false},
		{"GET with a body", get(func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("x")); r.ContentLength = 1 }), false},
		{"GET with a body of unknown length", get(func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("x")); r.ContentLength = -1 }), false},
		{"GET chunked", get(func(r *http.Request) { r.TransferEncoding = []string{"chunked"} }), false},
		{"https", get(func(r *http.Request) { r.URL.Scheme = "https" }), false},
		{"upgrade", get(func(r *http.Request) { r.Header.Set("Connection", "Upgrade"); r.Header.Set("Upgrade", "websocket") }), false},
		{"Upgrade alone", get(func(r *http.Request) { r.Header.Set("Upgrade", "websocket") }), false},
		{"Expect", get(func(r *http.Request) { r.Header.Set("Expect", "100-continue") }), false},
		{"Te", get(func(r *http.Request) { r.Header.Set("Te", "trailers") }), false},
		{"close", get(func(r *http.Request) { r.Close = true }), false},
		{"trailer", get(func(r *http.Request) { r.Trailer = http.Header{"X": nil} }), false},
		{"bad Host", get(func(r *http.Request) { r.Host = "a b" }), false},
		{"ordinary headers", get(func(r *http.Request) { r.Header.Set("X-A", "b\tc"); r.Host = "api.example:8080" }), true},
	} {
		if got := direct(tc.req); got != tc.want {
			t.Errorf("%s: direct = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestUpstreamKeepAlive: answers of every framing come back whole, and the
// connection is reused exactly when the answer allows it.
func TestUpstreamKeepAlive(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "last")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/big":
			io.WriteString(w, strings.Repeat("x", 1<<20))
		default:
			io.WriteString(w, "path "+r.URL.Path)
		}
	}))
	defer up.Close()
	tr, dials := testTransport(t, 5*time.Second, 4, time.Minute)
	for _, tc := range []struct {
		method, path, body string
		status             int
		pooled             bool
	}{
		{"GET", "/a", "path /a", 200, true},
		{"GET", "/chunked", "part one, part two", 200, true},
		{"HEAD", "/a", "", 200, true},
		{"GET", "/204", "", 204, true},
		{"GET", "/304", "", 304, true},
		{"OPTIONS", "/a", "path /a", 200, true},
		{"GET", "/big", strings.Repeat("x", 1<<20), 200, true},
		{"GET", "/close", "last", 200, false},
	} {
		before := dials.Load()
		status, body, err := roundTrip(t, tr, tc.method, up.URL+tc.path, nil)
		if err != nil || status != tc.status || body != tc.body {
			t.Fatalf("%s %s: %d %.40q %v, want %d %.40q", tc.method, tc.path, status, body, err, tc.status, tc.body)
		}
		if d := dials.Load() - before; d > 1 || (before > 0 && d != 0) {
			t.Errorf("%s %s: %d dials (a kept-alive connection was there)", tc.method, tc.path, d)
		}
		if got := tr.idleCount(); got != map[bool]int{true: 1, false: 0}[tc.pooled] {
			t.Errorf("%s %s: %d idle connections after the answer, pooled %v", tc.method, tc.path, got, tc.pooled)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("%d dials for the requests before the close, want 1", d)
	}
	// After the close, a new connection.
	if status, body, err := roundTrip(t, tr, "GET", up.URL+"/again", nil); err != nil || status != 200 || body != "path /again" {
		t.Fatalf("after close: %d %q %v", status, body, err)
	}
	if d := dials.Load(); d != 2 {
		t.Errorf("%d dials, want 2", d)
	}
}

// TestUpstreamBodyNotRead: a body closed before its end closes the
// connection (its rest would be read as the next answer).
func TestUpstreamBodyNotRead(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("y", 64<<10))
	}))
	defer up.Close()
	tr, dials := testTransport(t, 5*time.Second, 4, time.Minute)
	req, _ := http.NewRequest("GET", up.URL+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := tr.idleCount(); n != 0 {
		t.Fatalf("%d idle connections after a body closed early", n)
	}
	if status, body, err := roundTrip(t, tr, "GET", up.URL+"/", nil); err != nil || status != 200 || len(body) != 64<<10 {
		t.Fatalf("next request: %d %d bytes %v", status, len(body), err)
	}
	if d := dials.Load(); d != 2 {
		t.Errorf("%d dials, want 2", d)
	}
}

// TestUpstreamClosedWhileIdle: the upstream closes a kept-alive connection
// after each answer, without saying so; no request fails.
func TestUpstreamClosedWhileIdle(t *testing.T) {
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
			return false // and close
		})
	})
	tr, dials := testTransport(t, 5*time.Second, 4, time.Minute)
	for i := range 5 {
		p := fmt.Sprintf("/r%d", i)
		status, body, err := roundTrip(t, tr, "GET", up.url()+p, nil)
		if err != nil || status != 200 || body != p {
			t.Fatalf("request %d: %d %q %v", i, status, body, err)
		}
		time.Sleep(20 * time.Millisecond) // the close arrives
	}
	if d := dials.Load(); d != 5 {
		t.Errorf("%d dials, want 5 (a closed connection reused?)", d)
	}
}

// notSyscallConn hides the TCP connection, so alive cannot peek: the retry
// on a new connection is what saves the request.
type notSyscallConn struct{ net.Conn }

func TestUpstreamRetryOnReusedConnection(t *testing.T) {
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
			return false
		})
	})
	tr, dials := testTransport(t, 5*time.Second, 4, time.Minute)
	d := &net.Dialer{}
	tr.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		c, err := d.DialContext(ctx, network, addr)
		return notSyscallConn{c}, err
	}
	for i := range 3 {
		p := fmt.Sprintf("/r%d", i)
		status, body, err := roundTrip(t, tr, "GET", up.url()+p, nil)
		if err != nil || status != 200 || body != p {
			t.Fatalf("request %d: %d %q %v", i, status, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Request 0 dials; 1 and 2 each try the dead connection, then dial.
	if d := dials.Load(); d != 3 {
		t.Errorf("%d dials, want 3", d)
	}
}

// TestUpstreamUnsolicitedBytes: bytes after an answer, in the same packet or
// later, never become the answer to the next request.
func TestUpstreamUnsolicitedBytes(t *testing.T) {
	for _, later := range []bool{false, true} {
		up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
			readRequests(br, func(r *http.Request) bool {
				answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
				forged := "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
				if later {
					io.WriteString(c, answer)
					time.Sleep(10 * time.Millisecond)
					io.WriteString(c, forged)
				} else {
					io.WriteString(c, answer+forged)
				}
				return true
			})
		})
		tr, dials := testTransport(t, 5*time.Second, 4, time.Minute)
		for i := range 3 {
			p := fmt.Sprintf("/r%d", i)
			status, body, err := roundTrip(t, tr, "GET", up.url()+p, nil)
			if err != nil || status != 200 || body != p {
				t.Fatalf("later %v, request %d: %d %q %v", later, i, status, body, err)
			}
			time.Sleep(30 * time.Millisecond)
		}
		if d := dials.Load(); d != 3 {
			t.Errorf("later %v: %d dials, want 3", later, d)
		}
	}
}

func TestUpstreamHeaderTimeout(t *testing.T) {
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			u.sleep(2 * time.Second)
			return false
		})
	})
	tr, _ := testTransport(t, 100*time.Millisecond, 4, time.Minute)
	start := time.Now()
	_, _, err := roundTrip(t, tr, "GET", up.url()+"/slow", nil)
	if err == nil || !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v with a 100ms header timeout", el)
	}
	// A slow body after a prompt header is not cut by the header timeout.
	up2 := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
			time.Sleep(300 * time.Millisecond)
			io.WriteString(c, "cd")
			return true
		})
	})
	if status, body, err := roundTrip(t, tr, "GET", up2.url()+"/", nil); err != nil || status != 200 || body != "abcd" {
		t.Fatalf("slow body: %d %q %v", status, body, err)
	}
}

func TestUpstreamClientGone(t *testing.T) {
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			u.sleep(3 * time.Second)
			return false
		})
	})
	tr, _ := testTransport(t, 0, 4, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", up.url()+"/", nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if err == nil {
		t.Fatal("no error after the context ended")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v after the context ended at 100ms", el)
	}
	if n := tr.idleCount(); n != 0 {
		t.Errorf("%d idle connections", n)
	}

	// The context ends while the body streams: the read fails, the
	// connection is not reused.
	up2 := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
			u.sleep(2 * time.Second)
			io.WriteString(c, "cd")
			return true
		})
	})
	ctx2, cancel2 := context.WithCancel(context.Background())
	req2, _ := http.NewRequestWithContext(ctx2, "GET", up2.url()+"/", nil)
	resp, err := tr.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel2)
	start = time.Now()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the body read to its end after the context ended")
	}
	_ = resp.Body.Close()
	if el := time.Since(start); el > time.Second {
		t.Errorf("body read took %v after the context ended", el)
	}
	if n := tr.idleCount(); n != 0 {
		t.Errorf("%d idle connections after a cancelled body", n)
	}
}

func TestUpstreamBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
	}{
		{"garbage", "SSH-2.0-OpenSSH_9.6\r\n"},
		{"truncated header", "HTTP/1.1 200 OK\r\nContent-Le"},
		{"nothing", ""},
		{"unasked upgrade", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
		{"endless 100", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 10) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"},
		{"huge header", "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 4096) + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
				readRequests(br, func(r *http.Request) bool {
					io.WriteString(c, tc.answer)
					return false
				})
			})
			tr, _ := testTransport(t, 2*time.Second, 4, time.Minute)
			tr.maxHeaderBytes = 1024
			status, body, err := roundTrip(t, tr, "GET", up.url()+"/", nil)
			if err == nil {
				t.Fatalf("answer %d %q, want an error", status, body)
			}
			if n := tr.idleCount(); n != 0 {
				t.Errorf("%d idle connections", n)
			}
		})
	}
}

func TestUpstreamEarlyHints(t *testing.T) {
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
	})
	tr, _ := testTransport(t, 2*time.Second, 4, time.Minute)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", up.url()+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if want := []string{"103 </style.css>; rel=preload", "100 "}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("1xx seen: %q, want %q", got, want)
	}
}

// TestUpstreamPoolBounds: at most max_idle_conns_per_host stay open, and the
// idle ones close after the idle timeout.
func TestUpstreamPoolBounds(t *testing.T) {
	var open atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // so the requests overlap
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	up.Start()
	defer up.Close()
	tr, _ := testTransport(t, 2*time.Second, 2, 200*time.Millisecond)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if status, body, err := roundTrip(t, tr, "GET", up.URL+"/", nil); err != nil || status != 200 || body != "ok" {
				t.Errorf("%d %q %v", status, body, err)
			}
		})
	}
	wg.Wait()
	if n := tr.idleCount(); n != 2 {
		t.Errorf("%d idle connections, want 2", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for (tr.idleCount() != 0 || open.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n, o := tr.idleCount(), open.Load(); n != 0 || o != 0 {
		t.Errorf("after the idle timeout: %d idle in the pool, %d open at the upstream", n, o)
	}
}

// TestUpstreamOtherRequests: requests with a body (and other methods) take
// http.Transport and arrive whole.
func TestUpstreamOtherRequests(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, b, r.ContentLength)
	}))
	defer up.Close()
	tr, _ := testTransport(t, 2*time.Second, 4, time.Minute)
	status, body, err := roundTrip(t, tr, "POST", up.URL+"/", strings.NewReader("payload"))
	if err != nil || status != 200 || body != "POST payload 7" {
		t.Fatalf("%d %q %v", status, body, err)
	}
	status, body, err = roundTrip(t, tr, "DELETE", up.URL+"/", nil)
	if err != nil || status != 200 || body != "DELETE  0" {
		t.Fatalf("%d %q %v", status, body, err)
	}
	if n := tr.idleCount(); n != 0 {
		t.Errorf("%d connections in the direct pool after requests it does not take", n)
	}
}

// TestUpstreamConcurrentAnswersMatch: under concurrency every answer is the
// answer to its own request (no connection shared, no answer crossed).
func TestUpstreamConcurrentAnswersMatch(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("close") != "" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, r.URL.RequestURI())
	}))
	defer up.Close()
	tr, _ := testTransport(t, 5*time.Second, 3, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				u := fmt.Sprintf("/g%d/%d", g, i)
				if i%17 == 0 {
					u += "?close=1"
				}
				status, body, err := roundTrip(t, tr, "GET", up.URL+u, nil)
				if err != nil || status != 200 || body != u {
					t.Errorf("%s: %d %q %v", u, status, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSidecarUpstreamConnections: through the whole sidecar, bodiless GETs
// and HEADs share one kept-alive upstream connection and arrive with the
// identity headers and without the client's copies; a POST with a body
// arrives whole; a spoofed identity header never reaches the upstream on
// either path.
func TestSidecarUpstreamConnections(t *testing.T) {
	var mu sync.Mutex
	peers := map[string]int{}
	h := start(t, harnessOpt{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		peers[r.RemoteAddr]++
		mu.Unlock()
		spoof := ""
		for k, vv := range r.Header {
			for _, v := range vv {
				if v == "spoofed" {
					spoof += k
				}
			}
		}
		fmt.Fprintf(w, "%s %s client=%q spoof=%q body=%q", r.Method, r.URL.RequestURI(), r.Header.Get("X-Client-Id"), spoof, b)
	})})
	tok := token(t, sharedIdP(t), "orders-service")
	send := func(method, path, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, h.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Client-Id", "spoofed")
		req.Header.Set("X_Client_Id", "spoofed")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 30 {
		p := fmt.Sprintf("/orders/%d?page=%d", i, i)
		status, body := send("GET", p, "")
		if want := "GET " + p + ` client="orders-service" spoof="" body=""`; status != 200 || body != want {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
	}
	if status, _ := send("HEAD", "/orders/1", ""); status != 200 {
		t.Fatalf("HEAD: %d", status)
	}
	mu.Lock()
	gets := len(peers)
	mu.Unlock()
	if gets != 1 {
		t.Errorf("31 bodiless requests came over %d upstream connections, want 1: %v", gets, peers)
	}
	status, body := send("POST", "/orders", `{"id":7}`)
	if status != 200 || body != `POST /orders client="orders-service" spoof="" body="{\"id\":7}"` {
		t.Fatalf("POST with a body: %d %s", status, body)
	}
}

// TestUpstreamNoHeaderInjection: a CR or LF in a header value that reaches
// the direct path (the request layer strips them from what it sets; the
// server refuses them from clients) cannot start a header of its own.
func TestUpstreamNoHeaderInjection(t *testing.T) {
	got := make(chan http.Header, 1)
	up := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		readRequests(br, func(r *http.Request) bool {
			got <- r.Header
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			return false
		})
	})
	tr, _ := testTransport(t, 2*time.Second, 4, time.Minute)
	req, _ := http.NewRequest("GET", up.url()+"/", nil)
	req.Header["X-A"] = []string{"a\r\nX-Injected: 1\nX-Also: 2"}
	if !direct(req) {
		t.Fatal("the request did not take the direct path")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if h.Get("X-Injected") != "" || h.Get("X-Also") != "" || len(h["X-A"]) != 1 {
		t.Fatalf("upstream saw %v", h)
	}
}
