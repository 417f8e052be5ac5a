package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	good := write(t, "upstream: {url: '${API}'}\npolicy: {issuers: [{issuer: 'https://sso/realms/x'}], audiences: [api]}\n")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		out, err string
	}{
		{"example", []string{"--config", "../../examples/sidecar/sidecar.yaml", "--check"}, nil, 0, "configuration OK", ""},
		{"placeholders from the environment", []string{"--check", "--config", good}, map[string]string{"API": "http://api:80"}, 0, "configuration OK", ""},
		{"unset placeholder", []string{"--check", "--config", good}, nil, 1, "", "environment variable API is not set"},
		{"env override checked", []string{"--check", "--config", good}, map[string]string{"API": "http://api", "KJ_UPSTREAM_URL": "gopher://x"}, 1, "", "upstream.url"},
		{"bad route", []string{"--check", "--config", write(t, "upstream: {url: 'http://x'}\npolicy: {issuers: [{issuer: 'https://sso/realms/x'}], audiences: [api]}\nroutes: [{prefix: /a, methods: [GET], scopes_match: most}]\n")}, nil, 1, "", "routes[0].scopes_match"},
		{"unknown field", []string{"--check", "--config", write(t, "listn: ':80'\n")}, nil, 1, "", `unknown field "listn"`},
		{"missing file", []string{"--check", "--config", "/nonexistent/sidecar.yaml"}, nil, 1, "", "no such file"},
		{"no config", []string{"--check"}, nil, 2, "", "usage"},
		{"config from KJ_CONFIG", []string{"--check"}, map[string]string{"KJ_CONFIG": good, "API": "http://api"}, 0, "configuration OK", ""},
		{"bad flag", []string{"--frobnicate"}, nil, 2, "", "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr, env(tc.env))
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("code %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestServeAndStop runs the real command until its context ends.
func TestServeAndStop(t *testing.T) {
	cfg := write(t, "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: {url: 'http://127.0.0.1:9'}\n"+
		"policy: {issuers: [{issuer: 'http://127.0.0.1:9/realms/x'}], audiences: [api]}\nlog: {level: error}\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve, then shut down at once
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"--config", cfg}, &stdout, &stderr, env(nil)); code != 0 {
		t.Errorf("code %d: %s", code, stderr.String())
	}
}

// TestDemoMoved: the demo left this binary; the old subcommand says where
// it went.
func TestDemoMoved(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--selftest"}, &stdout, &stderr, env(nil)); code != exitUsage ||
		!strings.Contains(stderr.String(), "cmd/keycloak-jwt-demo") {
		t.Errorf("code %d, stderr %q", code, stderr.String())
	}
}
