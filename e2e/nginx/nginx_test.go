package nginx

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read", "orders:write"}, Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
}

// routes are the sidecar's rules in every setup.
const routes = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
realm: orders-api
policy:
  issuers:
    - issuer: "${ISSUER}"
  audiences: [orders-api]
routes:
  - prefix: /healthz
    public: true
  - prefix: /orders
    methods: [GET]
    scopes_required: [orders:read]
  - prefix: /orders
    methods: [POST]
    scopes_required: [orders:write]
`

// nginxBinary finds nginx: on PATH, else where Debian puts it. Missing, the
// test skips, except on CI, where it fails (scripts/test.sh installs it).
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found on CI: scripts/test.sh installs Debian's nginx-light")
	}
	t.Skip("nginx not found (apt-get install nginx-light); CI runs this test")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startNginx runs nginx in the foreground with a generated configuration:
// the http block holds httpConf (upstreams) and one server on loopback with
// serverConf (directives and locations). It returns the base URL.
func startNginx(t *testing.T, httpConf, serverConf string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	addr := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, "daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n", dir, dir)
	conf.WriteString("events { worker_connections 128; }\nhttp {\n    access_log off;\n")
	for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&conf, "    %s_temp_path %s/%s;\n", tmp, dir, tmp)
	}
	conf.WriteString(httpConf)
	fmt.Fprintf(&conf, "    server {\n        listen %s;\n%s\n    }\n}\n", addr, serverConf)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", dir+"/error.log", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf.String())
	}
	cmd := exec.Command(bin, "-p", dir, "-e", dir+"/error.log", "-c", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx.conf:\n%s\nerror.log:\n%s%s", conf.String(), log, stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr
}

// upstream records what reaches the API and answers with it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

// seen is what the upstream received.
type seen struct {
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers http.Header `json:"headers"`
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{r.Method, r.RequestURI, r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// configSnippet is the nginx block of CONFIG.md's "Forward-auth setups".
func configSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../sidecar/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Forward-auth setups\n")
	if !ok {
		t.Fatal(`CONFIG.md has no "## Forward-auth setups" section`)
	}
	m := regexp.MustCompile("(?s)```nginx\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("CONFIG.md's forward-auth section has no nginx block")
	}
	return m[1]
}

// header lines of a hostile request, in order (repeats kept).
type line struct{ name, value string }

// send writes a raw HTTP/1.1 request (header names spelled as given, which
// net/http's client would canonicalise) and reads the answer.
func send(t *testing.T, base, method, target string, lines []line) (int, http.Header, []byte) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n", method, target)
	for _, l := range lines {
		fmt.Fprintf(&b, "%s: %s\r\n", l.name, l.value)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}
