package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "orders-secret", Scopes: []string{"orders:read", "orders:write"}, Audience: []string{"orders-api"},
		ClientRoles: map[string][]string{"orders-api": {"reader", "writer"}}},
	{ID: "reports-job", Secret: "reports-secret", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"},
		ClientRoles: map[string][]string{"orders-api": {"reader"}}},
	{ID: "no-audience", Secret: "x", Scopes: []string{"orders:read"}},
}

const sidecarYAML = `
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
    client_roles_required: ["orders-api:writer"]
`

const kongYAML = `
_format_version: "3.0"
services:
  - name: orders-api
    url: http://echo:8080
    plugins:
      - name: keycloak-jwt
        config:
          issuers: [{issuer: "ISSUER"}]
          audiences: [orders-api]
          scopes_required: [orders:read]
    routes:
      - name: orders-read
        paths: [/orders]
      - name: orders-write
        paths: [/orders]
        methods: [POST]
        plugins:
          - name: keycloak-jwt
            config:
              issuers: [{issuer: "ISSUER"}]
              audiences: [orders-api]
              scopes_required: [orders:write]
              client_roles_required: ["orders-api:writer"]
`

type result struct {
	code int
	out  string
}

func explain(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	if code == exitUsage {
		t.Fatalf("usage error: %s", errb.String())
	}
	return result{code, out.String()}
}

// TestVerdictIsTheGateways: on the same inputs, the command's verdict is
// the running sidecar's answer, and the text names the fix.
func TestVerdictIsTheGateways(t *testing.T) {
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	dir := t.TempDir()
	scFile := filepath.Join(dir, "sidecar.yaml")
	if err := os.WriteFile(scFile, []byte(sidecarYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ISSUER": idp.Issuer()}
	cfg, err := sidecar.LoadConfigFile(scFile, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
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

	tok := func(client string, opts ...testidp.MintOption) string {
		s, err := idp.Token(client, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name, method, token, fix string
		status                   int
	}{
		{"allowed read", "GET", tok("reports-job"), "", 200},
		{"write without scope and role", "POST", tok("reports-job"), "request scope=orders:write", 403},
		{"no audience mapper", "GET", tok("no-audience"), "Audience mapper", 401},
		{"optional scope not requested", "POST", tok("orders-service", testidp.WithScope("orders:read")), "scope=orders:write", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+srv.Addr()+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			gateway := resp.StatusCode
			if gateway == http.StatusBadGateway { // allowed: the upstream does not exist
				gateway = 200
			}
			r := explain(t, env, "--sidecar", scFile, "--method", tc.method, "--path", "/orders", "--token", tc.token)
			if gateway != tc.status || (r.code == exitAllowed) != (gateway == 200) {
				t.Fatalf("gateway %d, explain exit %d:\n%s", gateway, r.code, r.out)
			}
			if !strings.Contains(r.out, tc.fix) || strings.Contains(r.out, tc.token) {
				t.Fatalf("output lacks %q or holds the token:\n%s", tc.fix, r.out)
			}
			parts := strings.Split(tc.token, ".")
			if strings.Contains(r.out, parts[2]) {
				t.Fatal("output holds the signature")
			}
		})
	}
}

// TestKongRouteAndTokenURL: the plugin entry Kong runs for a route (the
// route's own, else the service's), a token fetched by client credentials,
// and JSON for scripts.
func TestKongRouteAndTokenURL(t *testing.T) {
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	file := filepath.Join(t.TempDir(), "kong.yml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(kongYAML, "ISSUER", idp.Issuer())), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLIENT_SECRET": "reports-secret"}
	tokenURL := idp.Issuer() + "/protocol/openid-connect/token"
	r := explain(t, env, "--kong", file, "--route", "orders-read", "--token-url", tokenURL, "--client-id", "reports-job")
	if r.code != exitAllowed || !strings.Contains(r.out, `routes[0] "orders-read"`) && !strings.Contains(r.out, `services[0] "orders-api" > plugins[0]`) {
		t.Fatalf("orders-read: %d\n%s", r.code, r.out)
	}
	r = explain(t, env, "--kong", file, "--route", "orders-write", "--token-url", tokenURL, "--client-id", "reports-job", "--json")
	var ex struct {
		Config string `json:"config"`
		Allow  bool   `json:"allow"`
		Status int    `json:"status"`
		Reason string `json:"reason"`
		Steps  []struct {
			Check, Result, Fix string
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.out), &ex); err != nil {
		t.Fatalf("%v:\n%s", err, r.out)
	}
	if r.code != exitRefused || ex.Allow || ex.Status != 403 || ex.Reason != "missing_scope" || !strings.Contains(ex.Config, `"orders-write" > plugins[0]`) {
		t.Fatalf("orders-write: %d %+v", r.code, ex)
	}
	var failed []string
	for _, s := range ex.Steps {
		if s.Result == "fail" {
			failed = append(failed, s.Check)
		}
	}
	if strings.Join(failed, ",") != "scopes,client roles" {
		t.Fatalf("failed checks %v", failed)
	}
	env["CLIENT_SECRET"] = "wrong"
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--kong", file, "--route", "orders-read", "--token-url", tokenURL, "--client-id", "reports-job"},
		strings.NewReader(""), &out, &errb, func(k string) string { return env[k] }); code != exitUsage || !strings.Contains(errb.String(), "token endpoint answered 401") {
		t.Fatalf("wrong secret: %d %s", code, errb.String())
	}
}
