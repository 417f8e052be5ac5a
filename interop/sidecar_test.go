package interop

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// TestSidecarWithOIDCProvider runs the sidecar as a reverse proxy in front
// of an echo upstream and calls it with tokens from the independent
// oidc-provider server: allow, wrong audience, missing scope, key rotation.
func TestSidecarWithOIDCProvider(t *testing.T) {
	srv := StartOIDCServer(t)
	seen := make(chan http.Header, 16)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	defer echo.Close()
	cfg, err := sidecar.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
realm: orders-api
upstream: {url: %q}
policy:
  issuers: [{issuer: %q}]
  audiences: [orders-api]
  jwks: {min_refresh_interval_seconds: 1}
routes:
  - {prefix: /orders, methods: [GET], scopes_required: [orders:read]}
  - {prefix: /orders, methods: [POST], scopes_required: [orders:write]}
`, echo.URL, srv.Issuer())), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(cfg, sidecar.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	token := func(client, scope string) string {
		tok, err := srv.Token(client, DemoSecret(client), scope)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(method, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+sc.Addr()+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}

	if status, _ := call(http.MethodPost, token(OrdersService, "orders:read orders:write")); status != 200 {
		t.Fatalf("allow: %d", status)
	}
	select {
	case h := <-seen:
		if h.Get("X-Client-Id") != OrdersService {
			t.Fatalf("upstream saw X-Client-Id %q", h.Get("X-Client-Id"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream saw nothing")
	}
	if status, ch := call(http.MethodGet, token(NoAudienceClient, "orders:read")); status != 401 || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("wrong audience: %d %s", status, ch)
	}
	if status, ch := call(http.MethodPost, token(ReportsJob, "orders:read")); status != 403 || !strings.Contains(ch, `scope="orders:write"`) {
		t.Fatalf("missing scope: %d %s", status, ch)
	}
	if _, err := srv.Rotate(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past min_refresh_interval: one refetch is allowed
	if status, _ := call(http.MethodGet, token(ReportsJob, "orders:read")); status != 200 {
		t.Fatalf("token of the rotated key: %d", status)
	}
}
