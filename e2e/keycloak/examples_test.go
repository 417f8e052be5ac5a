package keycloak

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runExample runs a documented example with the environment the README
// gives, pointed at real Keycloak and the sidecar; it returns the exit code
// and the output.
func runExample(t *testing.T, env []string, name string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// TestExampleScripts: examples/get-token.sh and examples/call-api.sh
// against real Keycloak, the API behind the sidecar.
func TestExampleScripts(t *testing.T) {
	k := keycloak(t)
	g := startSidecar(t, k, nil)
	base := []string{"KEYCLOAK_URL=" + k.base, "API_URL=" + g.url, "TOKEN=", "CLIENT_ID=", "CLIENT_SECRET=", "SCOPE="}
	parsers := []string{"sed"}
	if _, err := exec.LookPath("jq"); err == nil {
		parsers = append(parsers, "jq")
	}
	for _, parser := range parsers {
		for _, auth := range []string{"client_secret_basic", "client_secret_post"} {
			env := append(base[:len(base):len(base)], "JSON_PARSER="+parser, "CLIENT_AUTH="+auth)
			code, out, errOut := runExample(t, env, "bash", "examples/get-token.sh")
			tok := strings.TrimSpace(out)
			if code != 0 || strings.Count(tok, ".") != 2 {
				t.Fatalf("get-token.sh (%s, %s): exit %d, stdout %.40q, stderr %s", parser, auth, code, out, errOut)
			}
			if a := g.call(t, "GET", "/orders", tok); a.status != 200 {
				t.Errorf("token of get-token.sh (%s, %s) → %d %s", parser, auth, a.status, a.reason)
			}
		}
	}
	cases := []struct {
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{nil, nil, 0, "GET /orders -> HTTP 200"},
		{nil, []string{"POST", "/orders", `{"item":"book"}`}, 0, "POST /orders -> HTTP 200"},
		{[]string{"CLIENT_ID=reports-job"}, []string{"POST", "/orders"}, 1, "insufficient_scope"},
		{[]string{"CLIENT_ID=no-audience-client"}, nil, 1, "HTTP 401"},
		{[]string{"NO_TOKEN=1"}, nil, 1, "HTTP 401"},
		{[]string{"CLIENT_ID=reports-job", "SCOPE=orders:export"}, nil, 0, "HTTP 200"},
	}
	for _, tc := range cases {
		env := append(base[:len(base):len(base)], tc.env...)
		code, _, errOut := runExample(t, env, "bash", append([]string{"examples/call-api.sh"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("call-api.sh %v %v: exit %d, stderr %q; want exit %d and %q", tc.env, tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
}

// TestExampleGoClient: examples/go-client against real Keycloak and the
// sidecar; it exits non-zero when every call failed. (Keycloak answers a
// wrong secret with 401 unauthorized_client, not invalid_client.)
func TestExampleGoClient(t *testing.T) {
	k := keycloak(t)
	g := startSidecar(t, k, nil)
	bin := filepath.Join(t.TempDir(), "go-client")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(repoRoot, "examples/go-client")).CombinedOutput(); err != nil {
		t.Fatalf("go build examples/go-client: %v\n%s", err, out)
	}
	env := []string{"TOKEN_URL=" + k.tokenURL(), "API_URL=" + g.url + "/orders", "COUNT=2", "INTERVAL=0s", "CLIENT_SECRET=", "SCOPE="}
	cases := []struct {
		env  []string
		code int
		log  string
	}{
		{[]string{"CLIENT_ID=orders-service", "CLIENT_AUTH=client_secret_basic"}, 0, "-> 200"},
		{[]string{"CLIENT_ID=orders-service", "CLIENT_AUTH=client_secret_post", "METHOD=POST"}, 0, "-> 200"},
		{[]string{"CLIENT_ID=reports-job", "METHOD=POST"}, 1, "-> 403"},
		{[]string{"CLIENT_ID=no-audience-client"}, 1, "-> 401"},
		{[]string{"CLIENT_ID=orders-service", "CLIENT_SECRET=wrong"}, 1, "unauthorized_client"},
	}
	for _, tc := range cases {
		code, _, errOut := runExample(t, append(env[:len(env):len(env)], tc.env...), bin)
		if code != tc.code || !strings.Contains(errOut, tc.log) {
			t.Errorf("go-client %v: exit %d, want %d with %q in:\n%s", tc.env, code, tc.code, tc.log, errOut)
		}
	}
}

// TestExamplePythonClient: examples/python-client (requests, from the venv
// scripts/keycloak.sh installs) against real Keycloak and the sidecar.
func TestExamplePythonClient(t *testing.T) {
	k := keycloak(t)
	python := os.Getenv("KEYCLOAK_E2E_PYTHON")
	if python == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYCLOAK_E2E_PYTHON is not set on CI: scripts/keycloak.sh start installs the Python client's venv")
		}
		t.Skip("KEYCLOAK_E2E_PYTHON is not set (scripts/keycloak.sh start installs the venv; eval its env)")
	}
	g := startSidecar(t, k, nil)
	env := []string{"TOKEN_URL=" + k.tokenURL(), "API_URL=" + g.url + "/orders", "COUNT=2", "INTERVAL=0", "CLIENT_SECRET=", "SCOPE="}
	cases := []struct {
		env  []string
		code int
		out  string
	}{
		{[]string{"CLIENT_ID=orders-service", "CLIENT_AUTH=client_secret_basic"}, 0, "-> 200"},
		{[]string{"CLIENT_ID=orders-service", "CLIENT_AUTH=client_secret_post", "METHOD=POST"}, 0, "-> 200"},
		{[]string{"CLIENT_ID=reports-job", "METHOD=POST"}, 1, "-> 403"},
		{[]string{"CLIENT_ID=reports-job", "SCOPE=orders:export"}, 0, "-> 200"},
		{[]string{"CLIENT_ID=no-audience-client"}, 1, "-> 401"},
		{[]string{"CLIENT_ID=orders-service", "CLIENT_SECRET=wrong"}, 1, "unauthorized_client"},
	}
	for _, tc := range cases {
		code, out, errOut := runExample(t, append(env[:len(env):len(env)], tc.env...), python, "examples/python-client/client.py")
		if code != tc.code || !strings.Contains(out+errOut, tc.out) {
			t.Errorf("python client %v: exit %d, want %d with %q in:\n%s%s", tc.env, code, tc.code, tc.out, out, errOut)
		}
	}
}
