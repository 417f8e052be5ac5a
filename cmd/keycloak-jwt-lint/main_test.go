package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kong.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const valid = `
_format_version: "3.0"
services:
  - name: orders
    url: http://echo:8080
    plugins:
      - name: keycloak-jwt
        config:
          issuers: [{issuer: "http://localhost:8080/realms/demo", jwks_uri: "http://keycloak:8080/realms/demo/protocol/openid-connect/certs"}]
          audiences: [orders-api]
    routes:
      - name: orders-write
        paths: [/orders]
        methods: [POST]
        plugins:
          - name: keycloak-jwt
            config:
              issuers: [{issuer: "http://localhost:8080/realms/demo"}]
              audiences: [orders-api]
              scopes_required: [orders:write]
          - name: rate-limiting
            config: {minute: 5}
`

func TestLint(t *testing.T) {
	cases := []struct {
		name, doc string
		args      []string
		status    int
		stderr    []string
		stdout    string
	}{
		{"valid", valid, nil, 0, nil, "2 keycloak-jwt plugin entries checked, 0 invalid"},
		{"unknown field", strings.Replace(valid, "scopes_required:", "scope_required:", 1), nil, 1,
			[]string{`services[0] "orders" > routes[0] "orders-write" > plugins[0]`, `unknown field "scope_required"`}, ""},
		{"HS256", strings.Replace(valid, "audiences: [orders-api]\n    routes", "audiences: [orders-api]\n          algorithms: [HS256]\n    routes", 1), nil, 1,
			[]string{`services[0] "orders" > plugins[0]: error: algorithms[0]`}, ""},
		{"no audience", strings.Replace(valid, "              audiences: [orders-api]\n", "", 1), nil, 1, []string{"audiences: at least one audience is required"}, ""},
		{"missing key file", valid + `plugins:
  - name: keycloak-jwt
    config:
      issuers: [{issuer: "https://sso/realms/x"}]
      audiences: [a]
      upstream_jwt: {enabled: true, issuer: gw, audience: up, private_key_file: /nonexistent/key.pem}
`, nil, 1, []string{"plugins[0]: error: upstream_jwt.private_key_file"}, ""},
		{"missing key file ignored", valid + `plugins:
  - name: keycloak-jwt
    config:
      issuers: [{issuer: "https://sso/realms/x"}]
      audiences: [a]
      upstream_jwt: {enabled: true, issuer: gw, audience: up, private_key_file: /nonexistent/key.pem}
`, []string{"-ignore-missing-keys"}, 0, []string{"warning: upstream_jwt.private_key_file"}, "3 keycloak-jwt"},
		{"on a consumer", valid + `consumers:
  - username: orders-service
    plugins:
      - name: keycloak-jwt
        config: {issuers: [{issuer: "https://sso/realms/x"}], audiences: [a]}
`, nil, 1, []string{`consumers[0] "orders-service" > plugins[0]: error: keycloak-jwt authenticates requests, so it cannot be scoped to a consumer`}, ""},
		{"top-level entry naming a consumer group", valid + `plugins:
  - name: keycloak-jwt
    consumer_group: partners
    config: {issuers: [{issuer: "https://sso/realms/x"}], audiences: [a]}
`, nil, 1, []string{`plugins[0]: error: keycloak-jwt authenticates requests`}, ""},
		{"not yaml", "services: [", nil, 2, []string{"not YAML"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			status := run(append(tc.args, write(t, tc.doc)), &out, &errb)
			if status != tc.status {
				t.Fatalf("status %d, want %d\nstdout %s\nstderr %s", status, tc.status, out.String(), errb.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.stdout)
			}
		})
	}
	if run(nil, &bytes.Buffer{}, &bytes.Buffer{}) != 2 {
		t.Fatal("no file: want 2")
	}
}

// TestLintDeckDirectory: a directory is one decK state, and each problem is
// printed with its file and line.
func TestLintDeckDirectory(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"kong.yaml": `_format_version: "3.0"
_info:
  select_tags: [orders-team]
services:
- name: orders
  url: http://orders:8080
  plugins:
  - name: keycloak-jwt
    _config: realm
    config:
      scopes_required: [orders:read]
`,
		"plugin-configs.yaml": `_format_version: "3.0"
_plugin_configs:
  realm:
    issuers: [{issuer: "https://sso/realms/demo"}]
    audiences: [orders-api]
    leeway_seconds: -5
`,
		"README.md": "not read",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if status := run([]string{dir}, &out, &errb); status != 1 {
		t.Fatalf("status %d\n%s\n%s", status, out.String(), errb.String())
	}
	want := filepath.Join(dir, "plugin-configs.yaml") + `:6: services[0] "orders" > plugins[0] (_config "realm"): error: leeway_seconds`
	if !strings.Contains(errb.String(), want) || !strings.Contains(out.String(), "1 keycloak-jwt plugin entry checked, 1 invalid") {
		t.Fatalf("stderr %q lacks %q; stdout %q", errb.String(), want, out.String())
	}
}
