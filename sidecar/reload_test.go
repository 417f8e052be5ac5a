package sidecar

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reloadA and reloadB differ in what one token may do: under A the
// reports-job client (scope orders:read, no role) may read /orders and not
// /admin; under B it may read /admin and not /orders.
const reloadA = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: {url: "${UPSTREAM}"}
policy:
  issuers: [{issuer: "${ISSUER}"}]
  audiences: [orders-api]
routes:
  - {prefix: /orders, methods: [GET], scopes_required: [orders:read]}
  - {prefix: /admin, realm_roles_required: [admin]}
`

var (
	reloadB = strings.NewReplacer("scopes_required: [orders:read]", "scopes_required: [orders:write]",
		"realm_roles_required: [admin]", "allowed_clients: [reports-job, ops-admin]").Replace(reloadA)
	// reloadBad has three errors, in three sections.
	reloadBad = strings.NewReplacer("  audiences: [orders-api]\n", "",
		"routes:", "forward_auth: {path: auth}\nserver: {max_connections: -1}\nroutes:").Replace(reloadA)
)

// reloadHarness runs a sidecar started from a file that the test rewrites.
func reloadHarness(t *testing.T, yaml string) (*harness, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, file, yaml)
	up := newEcho(t, nil)
	env := mapEnv(map[string]string{"ISSUER": sharedIdP(t).Issuer(), "UPSTREAM": up.URL})
	h := start(t, harnessOpt{yaml: yaml, env: map[string]string{"UPSTREAM": up.URL},
		opts: Options{ConfigFile: file, Lookup: env}})
	h.up = up
	return h, file
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	// Written aside and renamed, as editors and ConfigMaps do: a reader
	// never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type readyBody struct {
	Ready  bool         `json:"ready"`
	Config ConfigStatus `json:"config"`
}

func readyz(t testing.TB, h *harness) readyBody {
	t.Helper()
	var b readyBody
	if err := json.Unmarshal(get(t, h.admin+"/readyz").body, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func metricsText(t testing.TB, h *harness) string {
	t.Helper()
	return string(get(t, h.admin+"/metrics").body)
}

func wantMetric(t testing.TB, text, series, want string) {
	t.Helper()
	if v, err := metricValue(text, series); err != nil || v != want {
		t.Errorf("%s = %q (%v), want %s", series, v, err, want)
	}
}

// TestReload: valid files are applied, an invalid one is refused with all
// its errors while the old configuration keeps serving, restart-only
// settings keep their values, and keys are not fetched again.
func TestReload(t *testing.T) {
	h, file := reloadHarness(t, reloadA)
	idp := sharedIdP(t)
	reports := token(t, idp, "reports-job")
	status := func(path string) int { return do(t, "GET", h.url+path, reports, nil, nil).status }
	if s1, s2 := status("/orders"), status("/admin"); s1 != 200 || s2 != 403 {
		t.Fatalf("config A: /orders %d, /admin %d", s1, s2)
	}
	r := readyz(t, h)
	if r.Config.Generation != 1 || r.Config.SHA256 != hashOf([]byte(reloadA)) || r.Config.File != file {
		t.Fatalf("start: %+v", r.Config)
	}
	_, jwksBefore := idp.Fetches()

	writeFile(t, file, reloadB)
	if res := h.srv.ReloadFile(); !res.Applied || len(res.Errors) > 0 || len(res.RestartRequired) > 0 {
		t.Fatalf("reload B: %+v", res)
	}
	if s1, s2 := status("/orders"), status("/admin"); s1 != 403 || s2 != 200 {
		t.Fatalf("config B: /orders %d, /admin %d", s1, s2)
	}
	if r := readyz(t, h); !r.Ready || r.Config.Generation != 2 || r.Config.SHA256 != hashOf([]byte(reloadB)) {
		t.Fatalf("after B: %+v", r)
	}

	writeFile(t, file, reloadBad)
	res := h.srv.ReloadFile()
	if res.Applied || len(res.Errors) != 3 {
		t.Fatalf("invalid file: %+v", res)
	}
	for i, field := range []string{"server.max_connections", "policy.audiences", "forward_auth.path"} {
		if !strings.Contains(strings.Join(res.Errors, "\n"), field) {
			t.Errorf("error %d: %q not named in %q", i, field, res.Errors)
		}
	}
	if s1, s2 := status("/orders"), status("/admin"); s1 != 403 || s2 != 200 {
		t.Fatalf("after the refused file, B must still serve: /orders %d, /admin %d", s1, s2)
	}
	r = readyz(t, h)
	if !r.Ready || r.Config.Generation != 2 || r.Config.SHA256 != hashOf([]byte(reloadB)) ||
		r.Config.LastReload == nil || r.Config.LastReload.Applied || len(r.Config.LastReload.Errors) != 3 {
		t.Fatalf("readyz after the refused file: %+v", r.Config)
	}
	m := metricsText(t, h)
	wantMetric(t, m, "keycloak_jwt_config_generation", "2")
	wantMetric(t, m, `keycloak_jwt_config_reloads_total{result="applied"}`, "1")
	wantMetric(t, m, `keycloak_jwt_config_reloads_total{result="refused"}`, "1")
	wantMetric(t, m, "keycloak_jwt_config_last_reload_success", "0")
	wantMetric(t, m, `keycloak_jwt_config_info{sha256="`+hashOf([]byte(reloadB))+`"}`, "1")

	// A file that moves the listeners and a server limit: the routes apply,
	// the rest is reported and keeps its start-up value.
	moved := strings.Replace(reloadA, "listen: 127.0.0.1:0\nadmin", "listen: 127.0.0.1:1\nadmin", 1) +
		"server: {max_connections: 7}\nlog: {level: debug}\n"
	writeFile(t, file, moved)
	res = h.srv.ReloadFile()
	want := []string{"listen", "server.max_connections", "log.level"}
	if !res.Applied || strings.Join(res.RestartRequired, ",") != strings.Join(want, ",") {
		t.Fatalf("restart-only settings: %+v, want %v", res, want)
	}
	if s1, s2 := status("/orders"), status("/admin"); s1 != 200 || s2 != 403 {
		t.Fatalf("config A again: /orders %d, /admin %d", s1, s2)
	}
	if h.srv.live.Load().listen != "127.0.0.1:0" || h.srv.live.Load().maxConnections != DefaultMaxConnections {
		t.Fatal("restart-only settings changed by a reload")
	}
	m = metricsText(t, h)
	wantMetric(t, m, "keycloak_jwt_config_restart_required", "3")
	wantMetric(t, m, "keycloak_jwt_config_last_reload_success", "1")
	if r := readyz(t, h); strings.Join(r.Config.RestartRequired, ",") != strings.Join(want, ",") {
		t.Errorf("readyz restart_required %v", r.Config.RestartRequired)
	}
	if _, jwksAfter := idp.Fetches(); jwksAfter != jwksBefore {
		t.Errorf("the key cache did not survive: %d JWKS fetches during reloads", jwksAfter-jwksBefore)
	}
}

// TestReloadInFlight: a request being served when the configuration
// changes finishes on the one it started with.
func TestReloadInFlight(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	file := filepath.Join(t.TempDir(), "sidecar.yaml")
	writeFile(t, file, reloadA)
	var upURL string
	h := start(t, harnessOpt{yaml: reloadA, upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(r.Header.Get("X-Client-Id")))
	})})
	upURL = h.up.URL
	h.srv.reload.file, h.srv.reload.lookup = file, mapEnv(map[string]string{"ISSUER": sharedIdP(t).Issuer(), "UPSTREAM": upURL})
	reports := token(t, sharedIdP(t), "reports-job")
	got := make(chan result, 1)
	go func() { got <- do(t, "GET", h.url+"/orders", reports, nil, nil) }()
	<-arrived
	writeFile(t, file, reloadB)
	if res := h.srv.ReloadFile(); !res.Applied {
		t.Fatalf("reload: %+v", res)
	}
	close(release)
	if r := <-got; r.status != 200 || string(r.body) != "reports-job" {
		t.Fatalf("in-flight request: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", h.url+"/orders", reports, nil, nil); r.status != 403 {
		t.Fatalf("next request: %d, want 403 under B", r.status)
	}
}

// TestReloadUnderLoad: 20 reloads, half of them invalid, under steady load
// from several clients. Every answer must be the answer of a configuration
// that was live while the request was in flight (bracketed by the
// generation read before and after it), and no request may fail.
func TestReloadUnderLoad(t *testing.T) {
	h, file := reloadHarness(t, reloadA)
	idp := sharedIdP(t)
	reports, orders := token(t, idp, "reports-job"), token(t, idp, "orders-service")
	type probe struct {
		path, tok string
		a, b      int // the status under A and under B
	}
	probes := []probe{
		{"/orders", reports, 200, 403},
		{"/admin", reports, 403, 200},
		{"/orders", orders, 200, 200},
		{"/admin", orders, 403, 401}, // allowed_clients refuses with 401
	}
	// kinds[g] is the configuration of generation g: reloads alternate.
	var kmu sync.Mutex
	kinds := map[int64]byte{1: 'A'}
	kindOf := func(g int64) byte { kmu.Lock(); defer kmu.Unlock(); return kinds[g] }
	gen := func() int64 { return h.srv.ConfigStatus().Generation }

	stop := make(chan struct{})
	var total, wrong, failed, leaked atomic.Int64
	var byStatus [600]atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := probes[i%len(probes)]
				g0 := gen()
				req, _ := http.NewRequestWithContext(context.Background(), "GET", h.url+p.path, nil)
				req.Header.Set("Authorization", "Bearer "+p.tok)
				resp, err := client.Do(req)
				g1 := gen()
				total.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("request failed: %v", err)
					continue
				}
				_ = resp.Body.Close()
				byStatus[resp.StatusCode].Add(1)
				ok := false
				for g := g0; g <= g1; g++ {
					want := p.a
					if kindOf(g) == 'B' {
						want = p.b
					}
					ok = ok || resp.StatusCode == want
				}
				if !ok {
					wrong.Add(1)
					if resp.StatusCode == 200 {
						leaked.Add(1)
					}
					t.Errorf("%s by %d-char token: %d, not the answer of generations %d..%d", p.path, len(p.tok), resp.StatusCode, g0, g1)
				}
			}
		}(w)
	}
	applied, refused := 0, 0
	next := byte('B')
	for i := 0; i < 20; i++ {
		time.Sleep(40 * time.Millisecond)
		body := reloadBad
		if i%2 == 0 {
			body = reloadA
			if next == 'B' {
				body = reloadB
			}
			// Record the generation's kind before it can be live.
			kmu.Lock()
			kinds[gen()+1] = next
			kmu.Unlock()
		}
		writeFile(t, file, body)
		res := h.srv.ReloadFile()
		switch {
		case i%2 == 0 && res.Applied:
			applied++
			next = 'A' + 'B' - next
		case i%2 == 1 && !res.Applied:
			refused++
		default:
			t.Fatalf("reload %d: %+v", i, res)
		}
	}
	time.Sleep(40 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("reloads: %d applied, %d refused; requests: %d (200: %d, 401: %d, 403: %d), wrong answers: %d, let through wrongly: %d, failed: %d",
		applied, refused, total.Load(), byStatus[200].Load(), byStatus[401].Load(), byStatus[403].Load(), wrong.Load(), leaked.Load(), failed.Load())
	if applied != 10 || refused != 10 || gen() != 11 || wrong.Load() != 0 || failed.Load() != 0 || total.Load() < 100 {
		t.Fatalf("applied %d refused %d generation %d wrong %d failed %d total %d", applied, refused, gen(), wrong.Load(), failed.Load(), total.Load())
	}
	m := metricsText(t, h)
	wantMetric(t, m, `keycloak_jwt_config_reloads_total{result="applied"}`, "10")
	wantMetric(t, m, `keycloak_jwt_config_reloads_total{result="refused"}`, "10")
}

// TestWatchConfigFile: with the watcher on, writing the file is enough.
func TestWatchConfigFile(t *testing.T) {
	h, file := reloadHarness(t, reloadA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.srv.WatchConfigFile(ctx, 10*time.Millisecond) }()
	writeFile(t, file, reloadB)
	waitFor(t, "the watcher to apply B", 5*time.Second, func() bool { return h.srv.ConfigStatus().Generation == 2 })
	writeFile(t, file, reloadBad)
	waitFor(t, "the watcher to refuse the bad file", 5*time.Second, func() bool {
		lr := h.srv.ConfigStatus().LastReload
		return lr != nil && !lr.Applied
	})
	if g := h.srv.ConfigStatus().Generation; g != 2 {
		t.Fatalf("generation %d after a refused file", g)
	}
}
