package keycloak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// answer is what a gateway made of one request.
type answer struct {
	status int
	reason string // the decision's reason code, from the gateway's log
}

// echoUpstream answers 200 to everything the sidecar forwards.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(s.Close)
	return s
}

// sidecarGW is the sidecar, configured by examples/sidecar/sidecar.yaml,
// in front of an echo upstream, fetching keys from Keycloak through a
// counting proxy.
type sidecarGW struct {
	url   string
	admin string // the admin listener's base URL
	proxy *countingProxy
	logs  *observer.ObservedLogs
	http  *http.Client
}

// startSidecar loads the example configuration with the environment the
// README gives (pointed at real Keycloak), lets edit change it, and serves
// it until the test ends. It returns once the sidecar is ready (its start-up
// key fetch done).
func startSidecar(t *testing.T, k *kc, edit func(*sidecar.Config)) *sidecarGW {
	t.Helper()
	proxy := newCountingProxy(t, k)
	echo := echoUpstream(t)
	env := map[string]string{
		"ORDERS_API_URL":  echo.URL,
		"KEYCLOAK_ISSUER": k.issuer,
		"KJ_JWKS_URI":     proxy.jwksURL(),
		"KJ_LISTEN":       "127.0.0.1:0",
		"KJ_ADMIN_LISTEN": "127.0.0.1:0",
	}
	cfg, err := sidecar.LoadConfigFile(filepath.Join(repoRoot, "examples/sidecar/sidecar.yaml"),
		func(key string) (string, bool) { v, ok := env[key]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	srv, err := sidecar.New(cfg, sidecar.Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g := &sidecarGW{url: "http://" + srv.Addr(), admin: "http://" + srv.AdminAddr(), proxy: proxy, logs: logs, http: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := g.http.Get("http://" + srv.AdminAddr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not ready after 30s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return g
}

// call sends one request with the bearer token (none if "") and returns the
// status and the reason the sidecar logged for it.
func (g *sidecarGW) call(t *testing.T, method, path, token string) answer {
	t.Helper()
	rid := randomID()
	req, _ := http.NewRequest(method, g.url+path, nil)
	req.Header.Set("X-Request-Id", rid)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	a := answer{status: resp.StatusCode}
	// The request line is logged once the answer is written: wait for it.
	deadline := time.Now().Add(2 * time.Second)
	for a.reason == "" && time.Now().Before(deadline) {
		for _, e := range g.logs.All() {
			f := e.ContextMap()
			if f["path"] == path && f["method"] == method && (f["request_id"] == rid || f["request_id"] == nil) {
				a.reason, _ = f["reason"].(string)
			}
		}
		if a.reason == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	g.logs.TakeAll()
	return a
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// kongGW is the Kong plugin binary driven through its plugin-server socket
// (internal/kongsim), one plugin instance per keycloak-jwt entry of
// examples/kong/kong.yml (by route name, or service name for a service-wide
// entry), fetching keys from Keycloak through a counting proxy.
type kongGW struct {
	srv       *kongsim.Server
	proxy     *countingProxy
	instances map[string]int
	configs   map[string]map[string]any
	consumers []kongsim.Consumer
	paths     map[string]string // instance name -> a path it serves
	k         *kc
}

// kongFile is the part of kong.yml the tests read.
type kongFile struct {
	Services []struct {
		Name    string       `json:"name"`
		Plugins []kongPlugin `json:"plugins"`
		Routes  []struct {
			Name    string       `json:"name"`
			Paths   []string     `json:"paths"`
			Plugins []kongPlugin `json:"plugins"`
		} `json:"routes"`
	} `json:"services"`
	Consumers []struct {
		Username string `json:"username"`
		CustomID string `json:"custom_id"`
	} `json:"consumers"`
}

type kongPlugin struct {
	Name   string         `json:"name"`
	Config map[string]any `json:"config"`
}

// startKong starts the plugin server with one instance per keycloak-jwt entry
// of kong.yml, its issuers pointed at real Keycloak; edit may change each
// instance's config (by instance name) before it starts.
func startKong(t *testing.T, k *kc, edit func(name string, cfg map[string]any)) *kongGW {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples/kong/kong.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f kongFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("kong.yml: %v", err)
	}
	g := &kongGW{proxy: newCountingProxy(t, k), instances: map[string]int{}, configs: map[string]map[string]any{}, paths: map[string]string{}, k: k}
	for i, c := range f.Consumers {
		g.consumers = append(g.consumers, kongsim.Consumer{ID: uuidFor(i), Username: c.Username, CustomID: c.CustomID})
	}
	add := func(name, path string, plugins []kongPlugin) {
		for _, p := range plugins {
			if p.Name == "keycloak-jwt" {
				g.configs[name] = p.Config
				g.paths[name] = path
			}
		}
	}
	for _, s := range f.Services {
		firstPath := ""
		for _, r := range s.Routes {
			if len(r.Paths) > 0 && firstPath == "" {
				firstPath = r.Paths[0]
			}
			add(r.Name, r.Paths[0], r.Plugins)
		}
		add(s.Name, firstPath, s.Plugins)
	}
	if len(g.configs) == 0 {
		t.Fatal("kong.yml has no keycloak-jwt plugin entry")
	}
	bin := kongsim.Build(t, "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt")
	if g.srv, err = kongsim.Start(bin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.srv.Close() })
	for name, cfg := range g.configs {
		cfg["issuers"] = []map[string]any{{"issuer": k.issuer, "jwks_uri": g.proxy.jwksURL()}}
		localKeyFiles(t, cfg)
		if edit != nil {
			edit(name, cfg)
		}
		g.start(t, name, cfg)
	}
	return g
}

// start starts (or adds) an instance named name with cfg.
func (g *kongGW) start(t *testing.T, name string, cfg map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cfg)
	id, err := g.srv.StartInstance("keycloak-jwt", b)
	if err != nil {
		t.Fatalf("instance %s: %v", name, err)
	}
	g.instances[name], g.configs[name] = id, cfg
}

// clone returns a deep copy of the config of instance name.
func (g *kongGW) clone(t *testing.T, name string) map[string]any {
	t.Helper()
	b, _ := json.Marshal(g.configs[name])
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

var reasonPattern = regexp.MustCompile(`"reason":"([a-z_]+)"`)

// call runs Kong's access phase of instance name for one request and
// returns the status (200 when the plugin let the request through) and the
// reason the plugin logged.
func (g *kongGW) call(t *testing.T, name, method, token string) answer {
	t.Helper()
	id, ok := g.instances[name]
	if !ok {
		t.Fatalf("no plugin instance %q", name)
	}
	req := kongsim.Request{Method: method, Path: g.paths[name], Consumers: g.consumers}
	if token != "" {
		req.Headers = map[string][]string{"Authorization": {"Bearer " + token}}
	}
	before := len(g.srv.Output())
	res, err := g.srv.HandleEvent(id, "access", req)
	if err != nil {
		t.Fatalf("%s %s: %v", name, method, err)
	}
	if len(res.Unhandled) > 0 {
		t.Fatalf("plugin called PDK methods Kong does not have: %v", res.Unhandled)
	}
	a := answer{status: http.StatusOK}
	if res.Exited {
		a.status = res.Status
	}
	// The plugin's log reaches kongsim through a pipe: a denial's line may
	// arrive a moment after the answer.
	deadline := time.Now().Add(time.Second)
	for {
		if out := g.srv.Output(); len(out) > before {
			if m := reasonPattern.FindAllStringSubmatch(out[before:], -1); len(m) > 0 {
				a.reason = m[len(m)-1][1]
			}
		}
		if a.reason != "" || !res.Exited || time.Now().After(deadline) {
			return a
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// uuidFor returns a fixed UUID for consumer i (Kong loads consumers by
// UUID).
func uuidFor(i int) string {
	return "00000000-0000-4000-8000-" + strings.Repeat("0", 11) + string(rune('a'+i))
}
