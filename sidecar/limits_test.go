package sidecar

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// limitsYAML is baseYAML (whose last section is server) with a 1s body
// idle timeout and the given further server fields.
func limitsYAML(server string) string {
	return baseYAML + "  body_read_timeout_seconds: 1\n" + server
}

// dial opens a raw connection to addr ("http://host:port").
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// postHead is the start of a POST to /orders with a body of n bytes.
func postHead(tok string, n int) string {
	auth := ""
	if tok != "" {
		auth = "Authorization: Bearer " + tok + "\r\n"
	}
	return fmt.Sprintf("POST /orders HTTP/1.1\r\nHost: api\r\n%sContent-Length: %d\r\n\r\n", auth, n)
}

// readResponse reads one response from br within d.
func readResponse(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", d, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, body
}

// expectClosed checks that the server closes c within d.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	if b, err := br.ReadByte(); err == nil {
		t.Errorf("connection still open: read %q", b)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("connection still open after %s", d)
	}
}

func metricOf(t *testing.T, h *harness, series string) string {
	t.Helper()
	v, err := metricValue(string(get(t, h.admin+"/metrics").body), series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBodyTrickleIsCut: a client whose body pauses longer than
// server.body_read_timeout_seconds (one byte every 1.5s against 1s) gets
// 408 and a closed connection, and the upstream does not receive a
// complete request.
func TestBodyTrickleIsCut(t *testing.T) {
	upstreamErr := make(chan error, 1)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		upstreamErr <- err
	})
	h := start(t, harnessOpt{yaml: limitsYAML(""), upstream: upstream})
	c := dial(t, h.url)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, postHead(token(t, sharedIdP(t), "orders-service"), 10)+"a"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep trickling, slower than the timeout
		for range 9 {
			select {
			case <-stop:
				return
			case <-time.After(1500 * time.Millisecond):
			}
			if _, err := io.WriteString(c, "a"); err != nil {
				return
			}
		}
	}()
	resp, body := readResponse(t, c, br, 10*time.Second)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("status %d, close %v; want 408 and Connection: close", resp.StatusCode, resp.Close)
	}
	if string(body) != bodyTimeoutMessage {
		t.Errorf("body %q", body)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("cut after %s", took)
	}
	expectClosed(t, c, br, 5*time.Second)
	select {
	case err := <-upstreamErr:
		if err == nil {
			t.Error("the upstream read a complete body")
		}
	case <-time.After(5 * time.Second):
		t.Error("the upstream request was not aborted")
	}
	if got := metricOf(t, h, "keycloak_jwt_body_read_timeouts_total"); got != "1" {
		t.Errorf("body_read_timeouts_total = %s", got)
	}
}

// TestSteadyBodyIsNotCut: a 16 MiB body that takes about 3s to arrive, in
// 1 MiB pieces 200ms apart, through an upstream that waits 1.5s before reading,
// passes a 1s idle timeout whole: the timeout is between reads, not over
// the body, and time the upstream takes to consume it does not count.
func TestSteadyBodyIsNotCut(t *testing.T) {
	const pieces, pieceSize = 16, 1 << 20
	got := make(chan string, 1)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond)
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		got <- fmt.Sprintf("%d %x %v", n, sum.Sum(nil), err)
		w.WriteHeader(http.StatusCreated)
	})
	h := start(t, harnessOpt{yaml: limitsYAML(""), upstream: upstream})
	pr, pw := io.Pipe()
	sent := sha256.New()
	go func() {
		piece := []byte(strings.Repeat("0123456789abcdef", pieceSize/16))
		for i := range pieces {
			if i > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			sent.Write(piece)
			if _, err := pw.Write(piece); err != nil {
				return
			}
		}
		pw.Close()
	}()
	began := time.Now()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/orders", pr)
	req.ContentLength = pieces * pieceSize
	req.Header.Set("Authorization", "Bearer "+token(t, sharedIdP(t), "orders-service"))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Fatalf("the body arrived in %s: not longer than the timeout, the test proves nothing", took)
	}
	want := fmt.Sprintf("%d %s <nil>", req.ContentLength, hex.EncodeToString(sent.Sum(nil)))
	if g := <-got; g != want {
		t.Errorf("upstream got %s, want %s", g, want)
	}
	if got := metricOf(t, h, "keycloak_jwt_body_read_timeouts_total"); got != "0" {
		t.Errorf("body_read_timeouts_total = %s", got)
	}
}

// TestUnreadBodyIsBounded: a denied request whose body stalls gets its 401
// within the timeout (the server discards the unread body before answering,
// which would otherwise wait for the client forever), then the connection
// closes.
func TestUnreadBodyIsBounded(t *testing.T) {
	h := start(t, harnessOpt{yaml: limitsYAML("")})
	c := dial(t, h.url)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, postHead("", 100)+"only ten.."); err != nil {
		t.Fatal(err)
	}
	resp, _ := readResponse(t, c, br, 5*time.Second)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	expectClosed(t, c, br, 5*time.Second)
	if h.up.Hits() != 0 {
		t.Error("the upstream was called")
	}
}

// TestMaxConnections: with server.max_connections 2, two open connections
// (still sending their headers) hold a third one off; it is served as soon
// as one of them closes, and the wait is counted.
func TestMaxConnections(t *testing.T) {
	h := start(t, harnessOpt{yaml: limitsYAML("  max_connections: 2\n")})
	var holders [2]net.Conn
	for i := range holders {
		holders[i] = dial(t, h.url)
		if _, err := io.WriteString(holders[i], "GET /healthz HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two open connections", 5*time.Second, func() bool {
		return metricOf(t, h, "keycloak_jwt_open_connections") == "2"
	})
	third := dial(t, h.url)
	br := bufio.NewReader(third)
	if _, err := io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = third.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	if _, err := br.Peek(1); err == nil {
		t.Fatal("the third connection was served while two were open")
	}
	if got := metricOf(t, h, "keycloak_jwt_connection_limit_waits_total"); got != "1" {
		t.Errorf("connection_limit_waits_total = %s", got)
	}
	_ = holders[0].Close()
	resp, _ := readResponse(t, third, br, 5*time.Second)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestMaxConnectionsReclaimsIdle: at the limit, an idle keep-alive
// connection is closed to make room for a new one, instead of holding it
// off for server.idle_timeout_seconds.
func TestMaxConnectionsReclaimsIdle(t *testing.T) {
	h := start(t, harnessOpt{yaml: limitsYAML("  max_connections: 1\n")})
	idle := dial(t, h.url)
	idleR := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, idle, idleR, 5*time.Second); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	next := dial(t, h.url)
	br := bufio.NewReader(next)
	if _, err := io.WriteString(next, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, next, br, 5*time.Second); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	expectClosed(t, idle, idleR, time.Second)
}

// TestLimitsConfig: the defaults, and errors that name the field with the
// operator's unit.
func TestLimitsConfig(t *testing.T) {
	// compileWith compiles minimalYAML plus extra top-level YAML.
	compileWith := func(t *testing.T, extra string) (*compiled, error) {
		t.Helper()
		cfg, err := ParseConfig([]byte(minimalYAML+extra+"\n"), mapEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		return compile(cfg, policy.Deps{Keys: newTestCache()}, nil)
	}
	c, err := compileWith(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.bodyReadTimeout != 60*time.Second || c.maxConnections != 10000 {
		t.Errorf("defaults: body read timeout %s, max connections %d", c.bodyReadTimeout, c.maxConnections)
	}
	// The admin listener (readiness details, metrics) is loopback unless
	// configured otherwise.
	if host, _, _ := net.SplitHostPort(c.adminListen); c.adminListen != "127.0.0.1:8081" || !net.ParseIP(host).IsLoopback() {
		t.Errorf("default admin_listen %q", c.adminListen)
	}

	tests := []struct{ name, yaml, want string }{
		{"negative timeout", "server: {body_read_timeout_seconds: -1}", "server.body_read_timeout_seconds: must be between 1 and 3600, got -1"},
		{"timeout over an hour", "server: {body_read_timeout_seconds: 3601}", "server.body_read_timeout_seconds: must be between 1 and 3600, got 3601"},
		{"negative connections", "server: {max_connections: -1}", "server.max_connections: must be between 1 and 1000000, got -1"},
		{"too many connections", "server: {max_connections: 1000001}", "server.max_connections: must be between 1 and 1000000, got 1000001"},
		{"main on all interfaces, admin default", "listen: ':8081'", `admin_listen: "127.0.0.1:8081" overlaps the main listener's address ":8081"`},
		{"admin on all interfaces", "listen: '127.0.0.1:9000'\nadmin_listen: '0.0.0.0:9000'", `admin_listen: "0.0.0.0:9000" overlaps`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileWith(t, tc.yaml)
			var ce *policy.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// Other hosts on the same port do not overlap.
	if _, err := compileWith(t, "listen: '10.1.2.3:8081'"); err != nil {
		t.Errorf("listen 10.1.2.3:8081 beside the default admin_listen: %v", err)
	}
}
