package sidecar

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// minimalYAML is the smallest valid configuration.
const minimalYAML = `
upstream: {url: "http://127.0.0.1:3000"}
policy:
  issuers: [{issuer: "https://sso.example.com/realms/prod"}]
  audiences: [orders-api]
`

func TestDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalYAML), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile(cfg, policy.Deps{Keys: newTestCache()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.listen, DefaultListen},
		{"admin_listen", c.adminListen, DefaultAdminListen},
		{"upstream timeout", c.upstreamTimeout, 30 * time.Second},
		{"connect timeout", c.connectTimeout, 5 * time.Second},
		{"forward auth off beside a proxy", c.fwdEnabled, false},
		{"forward auth path", c.fwdPath, "/auth"},
		{"read header timeout", c.readHeaderTimeout, 10 * time.Second},
		{"idle timeout", c.idleTimeout, 120 * time.Second},
		{"shutdown timeout", c.shutdownTimeout, 30 * time.Second},
		{"max header bytes", c.maxHeaderBytes, 65536},
		{"log format", c.logFormat, "json"},
		{"one policy for the default route", len(c.gate.Policies()), 1},
		{"default route is /", strings.Join(c.gate.Policies()[0].Routes, ","), "* /"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestExampleConfig: the committed example passes Check, with and without
// its placeholders set.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../examples/sidecar/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data, mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if cfg.Upstream.URL != "http://127.0.0.1:3000" || len(cfg.Routes) != 3 {
		t.Errorf("example decoded as %+v", cfg)
	}
	// Enabling the upstream JWT without a key file must fail, naming the field.
	cfg, err = ParseConfig(data, mapEnv(map[string]string{"UPSTREAM_JWT_ENABLED": "true", "UPSTREAM_JWT_KEY_FILE": "/nonexistent.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "upstream_jwt.private_key_file") {
		t.Errorf("Check with a missing key: %v", err)
	}
}

// TestConfigErrors: every mistake is reported with the field that holds it.
func TestConfigErrors(t *testing.T) {
	const pol = `
policy:
  issuers: [{issuer: "https://sso.example.com/realms/prod"}]
  audiences: [orders-api]
`
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, in order of appearance not required
	}{
		{"unknown top-level field", "polcy: {}\n", []string{`unknown field "polcy"`}},
		{"unknown nested field", pol + "routes: [{prefix: /, scope_required: [a]}]\n", []string{`unknown field "scope_required"`}},
		{"duplicate field", pol + "listen: :1\nlisten: :2\n", []string{`"listen"`}},
		{"wrong type", pol + "upstream: {timeout_seconds: soon}\n", []string{"timeout_seconds"}},
		{"no issuers", "policy: {audiences: [a]}\n", []string{"policy.issuers"}},
		{"no audiences", "policy: {issuers: [{issuer: 'https://x/realms/y'}]}\n", []string{"policy.audiences"}},
		{"HS256", pol + "  algorithms: [HS256]\n", []string{"policy.algorithms[0]", "never allowed"}},
		{"bad upstream url", pol + "upstream: {url: 'ftp://x'}\n", []string{"upstream.url"}},
		{"upstream url with query", pol + "upstream: {url: 'http://x/?a=b'}\n", []string{"upstream.url", "query"}},
		{"negative timeout", pol + "upstream: {url: 'http://x', timeout_seconds: -1}\n", []string{"upstream.timeout_seconds"}},
		{"same listeners", pol + "upstream: {url: 'http://x'}\nlisten: ':9000'\nadmin_listen: ':9000'\n", []string{"admin_listen"}},
		{"bad listen", pol + "upstream: {url: 'http://x'}\nlisten: 'localhost'\n", []string{"listen", "host:port"}},
		{"nothing to serve", pol + "forward_auth: {enabled: false}\n", []string{"forward_auth.enabled"}},
		{"forward auth path", pol + "forward_auth: {path: 'auth'}\n", []string{"forward_auth.path"}},
		{"forward auth root", pol + "forward_auth: {path: '/'}\n", []string{"forward_auth.path"}},
		{"forward auth header", pol + "forward_auth: {uri_headers: ['X Bad']}\n", []string{"forward_auth.uri_headers[0]"}},
		{"route without prefix", pol + "upstream: {url: 'http://x'}\nroutes: [{methods: [GET]}]\n", []string{"routes[0].prefix", "required"}},
		{"relative prefix", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: orders}]\n", []string{"routes[0].prefix"}},
		{"dot prefix", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a/../b}]\n", []string{"routes[0].prefix", "dot segment"}},
		{"bad method", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /, methods: ['GE T']}]\n", []string{"routes[0].methods[0]"}},
		{"route scope", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a}, {prefix: /b, scopes_required: ['has space']}]\n", []string{"routes[1].scopes_required[0]"}},
		{"route match", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a, scopes_match: some}]\n", []string{"routes[0].scopes_match"}},
		{"route client role", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a, client_roles_required: [norole]}]\n", []string{"routes[0].client_roles_required[0]"}},
		{"duplicate method", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a, methods: [GET]}, {prefix: /a, methods: [post, get]}]\n", []string{"routes[1].methods", "routes[0]"}},
		{"two catch-alls", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /a}, {prefix: /a}]\n", []string{"routes[1].methods"}},
		{"public with scopes", pol + "upstream: {url: 'http://x'}\nroutes: [{prefix: /h, public: true, scopes_required: [a]}]\n", []string{"routes[0].public", "scopes_required"}},
		{"bad header name", pol + "upstream: {url: 'http://x'}\nupstream_headers: {client_id_header: 'X Client'}\n", []string{"upstream_headers.client_id_header"}},
		{"reserved header", pol + "upstream: {url: 'http://x'}\nupstream_headers: {claim_headers: {sub: Host}}\n", []string{"upstream_headers.claim_headers"}},
		{"request id header", pol + "upstream: {url: 'http://x'}\nupstream_headers: {subject_header: x-request-id}\n", []string{"upstream_headers", "X-Request-Id"}},
		{"jwt without key", pol + "upstream: {url: 'http://x'}\nupstream_jwt: {enabled: true, issuer: a, audience: b}\n", []string{"upstream_jwt.private_key_file"}},
		{"jwt without issuer", pol + "upstream: {url: 'http://x'}\nupstream_jwt: {enabled: true, audience: b}\n", []string{"upstream_jwt.issuer"}},
		{"bad log level", pol + "upstream: {url: 'http://x'}\nlog: {level: loud}\n", []string{"log.level"}},
		{"bad log format", pol + "upstream: {url: 'http://x'}\nlog: {format: xml}\n", []string{"log.format"}},
		{"small header limit", pol + "upstream: {url: 'http://x'}\nserver: {max_header_bytes: 100}\n", []string{"server.max_header_bytes"}},
		{"several problems at once", pol + "upstream: {url: 'nope', timeout_seconds: -2}\nlog: {level: loud}\n",
			[]string{"upstream.url", "upstream.timeout_seconds", "log.level"}},
		{"unset placeholder", pol + "upstream: {url: '${NOT_SET_ANYWHERE}'}\n", []string{"NOT_SET_ANYWHERE", "line"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml), mapEnv(nil))
			if err == nil {
				err = Check(cfg)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestEnvOverrides: KJ_* variables replace file values; empty ones do not.
func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		EnvListen:       "127.0.0.1:9000",
		EnvAdminListen:  "127.0.0.1:9001",
		EnvUpstreamURL:  "http://upstream:8000",
		EnvIssuerURL:    "https://sso.internal/realms/prod",
		EnvDiscoveryURL: "http://keycloak:8080/realms/prod/.well-known/openid-configuration",
		EnvJWKSURI:      "http://keycloak:8080/realms/prod/protocol/openid-connect/certs",
		EnvLogLevel:     "debug",
	}
	cfg, err := ParseConfig([]byte(minimalYAML), mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	is := cfg.Policy.Issuers[0]
	if cfg.Listen != env[EnvListen] || cfg.AdminListen != env[EnvAdminListen] || cfg.Upstream.URL != env[EnvUpstreamURL] ||
		is.Issuer != env[EnvIssuerURL] || is.DiscoveryURL != env[EnvDiscoveryURL] || is.JWKSURI != env[EnvJWKSURI] ||
		cfg.Log.Level != "debug" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	if err := Check(cfg); err != nil {
		t.Errorf("Check: %v", err)
	}

	// Empty values leave the file alone.
	cfg, err = ParseConfig([]byte(minimalYAML), mapEnv(map[string]string{EnvUpstreamURL: " ", EnvIssuerURL: ""}))
	if err != nil || cfg.Upstream.URL != "http://127.0.0.1:3000" || cfg.Policy.Issuers[0].Issuer != "https://sso.example.com/realms/prod" {
		t.Errorf("empty overrides changed the config: %+v %v", cfg, err)
	}

	// No issuer in the file: the override creates it.
	cfg, err = ParseConfig([]byte("policy: {audiences: [a]}\n"), mapEnv(map[string]string{EnvIssuerURL: "https://x/realms/y", EnvUpstreamURL: "http://u"}))
	if err != nil || Check(cfg) != nil {
		t.Errorf("issuer from the environment only: %v / %v", err, Check(cfg))
	}

	// Two issuers: ambiguous, refused.
	two := "policy: {audiences: [a], issuers: [{issuer: 'https://a/realms/x'}, {issuer: 'https://b/realms/x'}]}\n"
	var ce *policy.ConfigError
	if _, err := ParseConfig([]byte(two), mapEnv(map[string]string{EnvJWKSURI: "https://a/certs"})); !errors.As(err, &ce) || ce.Field != EnvJWKSURI {
		t.Errorf("override with two issuers: %v", err)
	}

	// An invalid override is reported under the field it sets.
	cfg, _ = ParseConfig([]byte(minimalYAML), mapEnv(map[string]string{EnvUpstreamURL: "not a url"}))
	if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "upstream.url") {
		t.Errorf("bad KJ_UPSTREAM_URL: %v", err)
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/c.yaml"
	if err := os.WriteFile(path, []byte("upstream: {url: '${U}'}\n"+"policy: {issuers: [{issuer: 'https://x/realms/y'}], audiences: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigFile(path, mapEnv(map[string]string{"U": "http://127.0.0.1:1"}))
	if err != nil || cfg.Upstream.URL != "http://127.0.0.1:1" {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := LoadConfigFile(dir+"/missing.yaml", nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	big := dir + "/big.yaml"
	if err := os.WriteFile(big, append([]byte("listen: ':8080'\n# "), bytes.Repeat([]byte("x"), maxConfigBytes)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(big, nil); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("oversized file: %v", err)
	}
}

// TestGRPCOnlyConfig: a sidecar that serves only Envoy's gRPC check (forward
// auth off, no upstream) is a valid configuration.
func TestGRPCOnlyConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
forward_auth: {enabled: false}
grpc: {listen: "127.0.0.1:0"}
policy:
  issuers: [{issuer: "https://sso.example.com/realms/a"}]
  audiences: [a]
`), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatalf("gRPC only: %v", err)
	}
	cfg.GRPC.Listen = ""
	if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "nothing to serve") {
		t.Fatalf("nothing at all: %v", err)
	}
}
