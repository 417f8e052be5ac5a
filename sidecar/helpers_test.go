package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// The shared test realm: one per test binary (RSA key generation is slow
// under -race).
var shared struct {
	once sync.Once
	idp  *testidp.IdP
	err  error
}

var testClients = []testidp.Client{
	{ID: "orders-service", Secret: "orders-secret", Scopes: []string{"orders:read", "orders:write"},
		RealmRoles: []string{"reader"}, Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "reports-secret", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
	{ID: "ops-admin", Secret: "ops-secret", RealmRoles: []string{"admin"}, Audience: []string{"orders-api"}},
	{ID: "other-api-client", Secret: "other", Scopes: []string{"orders:read"}, Audience: []string{"billing-api"}},
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.idp != nil {
		shared.idp.Close()
	}
	os.Exit(code)
}

func sharedIdP(t testing.TB) *testidp.IdP {
	t.Helper()
	shared.once.Do(func() { shared.idp, shared.err = testidp.New(testidp.Options{Clients: testClients}) })
	if shared.err != nil {
		t.Fatalf("test realm: %v", shared.err)
	}
	return shared.idp
}

// newIdP starts a realm of its own (for fault injection).
func newIdP(t testing.TB) *testidp.IdP {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: testClients})
	if err != nil {
		t.Fatalf("test realm: %v", err)
	}
	t.Cleanup(idp.Close)
	return idp
}

func token(t testing.TB, idp *testidp.IdP, client string, opts ...testidp.MintOption) string {
	t.Helper()
	tok, err := idp.Token(client, opts...)
	if err != nil {
		t.Fatalf("token for %s: %v", client, err)
	}
	return tok
}

// baseYAML is the configuration most tests run: proxy mode, the orders
// routes of the example plus an admin route and a client allow-list route.
const baseYAML = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
realm: test-api
upstream:
  url: "${UPSTREAM}"
  timeout_seconds: ${TIMEOUT:-5}
  connect_timeout_seconds: ${CONNECT_TIMEOUT:-5}
forward_auth:
  enabled: ${FWD:-false}
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
    methods: [POST, PUT, DELETE]
    scopes_required: [orders:write]
  - prefix: /orders/reports
    methods: [GET]
    allowed_clients: [reports-job]
  - prefix: /admin
    realm_roles_required: [admin]
upstream_headers:
  strip_authorization: ${STRIP:-false}
  claim_headers:
    clientHost: X-Client-Host
upstream_jwt:
  enabled: ${JWT:-false}
  issuer: test-sidecar
  audience: orders-api
  private_key_file: "${JWT_KEY:-/nonexistent}"
server:
  shutdown_timeout_seconds: 10
`

// authOnlyYAML is a pure forward-auth server.
const authOnlyYAML = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
realm: test-api
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
upstream_jwt:
  enabled: ${JWT:-false}
  issuer: test-sidecar
  audience: orders-api
  private_key_file: "${JWT_KEY:-/nonexistent}"
`

// harness is a running sidecar with an echo upstream.
type harness struct {
	srv   *Server
	url   string // main listener
	admin string // admin listener
	up    *echoServer
	stop  func() error
}

type harnessOpt struct {
	yaml     string
	env      map[string]string
	upstream http.Handler // default: the echo server
	idp      *testidp.IdP
	opts     Options
}

// start runs a sidecar on ephemeral ports until the test ends.
func start(t testing.TB, o harnessOpt) *harness {
	t.Helper()
	if o.yaml == "" {
		o.yaml = baseYAML
	}
	if o.idp == nil {
		o.idp = sharedIdP(t)
	}
	h := &harness{up: newEcho(t, o.upstream)}
	env := map[string]string{"ISSUER": o.idp.Issuer(), "UPSTREAM": h.up.URL}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := ParseConfig([]byte(o.yaml), mapEnv(env))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if o.opts.Logger == nil {
		if tt, ok := t.(*testing.T); ok && testing.Verbose() {
			o.opts.Logger = zaptest.NewLogger(tt)
		} else {
			o.opts.Logger = zap.NewNop()
		}
	}
	if o.opts.WarmRetry == 0 {
		o.opts.WarmRetry = 20 * time.Millisecond
	}
	srv, err := New(cfg, o.opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	var stopErr error
	h.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() { _ = h.stop() })
	h.srv, h.url, h.admin = srv, "http://"+srv.Addr(), "http://"+srv.AdminAddr()
	return h
}

func mapEnv(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// echoServer records what reaches the upstream and answers with it.
type echoServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

// echoed is the echo upstream's answer.
type echoed struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
}

func newEcho(t testing.TB, h http.Handler) *echoServer {
	e := &echoServer{}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(echoed{r.Method, r.URL.Path, r.URL.RawPath, r.Host, r.Header})
		})
	}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.hits++
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *echoServer) Hits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits
}

// result is a response read in full.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) echo(t testing.TB) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("upstream answer %q: %v", r.body, err)
	}
	return e
}

func (r result) message(t testing.TB) string {
	t.Helper()
	var m struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not {\"message\":...}: %v", r.body, err)
	}
	return m.Message
}

var testClient = &http.Client{Timeout: 20 * time.Second}

// do sends a request; bearer "" sends no Authorization header.
func do(t testing.TB, method, url, bearer string, hdr http.Header, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, url, err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func get(t testing.TB, url string) result {
	t.Helper()
	return do(t, http.MethodGet, url, "", nil, nil)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue returns the value of one series in Prometheus text.
func metricValue(text, series string) (string, error) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" "), nil
		}
	}
	return "", fmt.Errorf("no series %s", series)
}

func newTestCache() *jwks.Cache { return jwks.NewCache(jwks.Options{}) }
