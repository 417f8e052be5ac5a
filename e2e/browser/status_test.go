// Package browser drives a real browser (Debian's Chromium, headless, with
// playwright-core from npm) over the sidecar's status page.
package browser

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

const config = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: http://127.0.0.1:1
policy:
  issuers: [{issuer: "${ISSUER}"}]
  audiences: [orders-api]
routes:
  - prefix: /orders
    methods: [GET]
    scopes_required: [orders:read]
  - prefix: /orders
    methods: [POST]
    scopes_required: [orders:write]
status_page:
  enabled: true
`

// need returns the path of a program the test needs; on CI (CI=true) a
// missing one fails the test (scripts/test.sh installs them), elsewhere it
// skips.
func need(t *testing.T, name, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found on CI: %s", name, hint)
	}
	t.Skipf("%s not found (%s); CI runs this test", name, hint)
	return ""
}

// TestStatusPageInChromium loads the status page in Chromium, submits the
// explain form with a real token, and asserts what the browser shows. The
// screenshot is kept in artifacts/status.png (or $ARTIFACTS_DIR).
func TestStatusPageInChromium(t *testing.T) {
	chromium := need(t, "chromium", "apt-get install chromium")
	npm := need(t, "npm", "install Node.js")
	node := need(t, "node", "install Node.js")
	install := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	install.Dir = "."
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	idp, err := testidp.New(testidp.Options{Clients: []testidp.Client{
		{ID: "reports-job", Secret: "x", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	cfg, err := sidecar.ParseConfig([]byte(config), func(k string) (string, bool) {
		if k == "ISSUER" {
			return idp.Issuer(), true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sidecar.New(cfg, sidecar.Options{Logger: zap.NewNop()})
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
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("keys not loaded")
		}
	}
	tok, err := idp.Token("reports-job")
	if err != nil {
		t.Fatal(err)
	}
	// One denial for the page to count.
	req, _ := http.NewRequest("POST", "http://"+srv.Addr()+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("POST /orders: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	artifacts := os.Getenv("ARTIFACTS_DIR")
	if artifacts == "" {
		artifacts = "artifacts"
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "status.png")
	cmd := exec.Command(node, "status.mjs", "http://"+srv.AdminAddr(), tokenFile, shot)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node status.mjs: %v\n%s", err, stderr.String())
	}
	var seen struct {
		Status                                                     int
		Title, Realms, Routes, Reasons, Verdict, Explanation, HTML string
		Failed                                                     []string
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if seen.Status != 200 || seen.Title != "keycloak-jwt sidecar" {
		t.Fatalf("page %d %q", seen.Status, seen.Title)
	}
	for _, c := range []struct{ where, text, want string }{
		{"realms", seen.Realms, idp.Issuer()}, {"realms", seen.Realms, "ready"}, {"realms", seen.Realms, "RS256"},
		{"routes", seen.Routes, "POST /orders"}, {"reasons", seen.Reasons, "missing_scope"},
		{"verdict", seen.Verdict, "deny 403 missing_scope"},
		{"explanation", seen.Explanation, "request scope=orders:write"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s shows %q, lacks %q", c.where, c.text, c.want)
		}
	}
	if strings.Join(seen.Failed, ",") != "fail" {
		t.Errorf("failed steps %v, want exactly one (scopes)", seen.Failed)
	}
	parts := strings.Split(tok, ".")
	if strings.Contains(seen.HTML, parts[1]) || strings.Contains(seen.HTML, parts[2]) {
		t.Error("the page shows the token")
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
}
