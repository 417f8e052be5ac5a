package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// scriptEnv is the environment of an example script: the test's own, minus
// every variable the scripts read, plus extra.
func scriptEnv(extra ...string) []string {
	read := []string{"KEYCLOAK_URL", "REALM", "TOKEN_URL", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_AUTH",
		"SCOPE", "JSON_PARSER", "CURL_OPTS", "API_URL", "TOKEN", "NO_TOKEN"}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "CURL_") && !containsString(read, k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

type scriptResult struct {
	stdout, stderr string
	code           int
}

func runScript(t *testing.T, script string, env []string, args ...string) scriptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{repoPath("examples/" + script)}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := scriptResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", script, err)
	}
	return res
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s is not installed", tool)
		}
	}
}

// TestExampleScriptsLint runs shellcheck on the example scripts when it is installed.
func TestExampleScriptsLint(t *testing.T) {
	requireTools(t, "bash")
	for _, s := range []string{"get-token.sh", "call-api.sh"} {
		if out, err := exec.Command("bash", "-n", repoPath("examples/"+s)).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if fi, err := os.Stat(repoPath("examples/" + s)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s must be executable", s)
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck); syntax checked with bash -n only")
	}
	cmd := exec.Command("shellcheck", "get-token.sh", "call-api.sh")
	cmd.Dir = repoPath("examples")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestExampleScripts runs examples/get-token.sh and examples/call-api.sh
// against the independent OAuth server (whose token endpoint has Keycloak's
// path) and a small gateway built on the request layer: both client authentication
// methods, both JSON parsers, and the refusals.
func TestExampleScripts(t *testing.T) {
	t.Parallel()
	requireTools(t, "bash", "curl", "base64")
	srv := StartOIDCServer(t)
	e := newEngine(srv)
	read := e.compile(t, func(c *policy.Config) { c.ScopesRequired = []string{"orders:read"} })
	keycloakURL := strings.TrimSuffix(srv.Issuer(), "/realms/demo")

	parsers := []string{"sed"}
	if _, err := exec.LookPath("jq"); err == nil {
		parsers = append(parsers, "jq")
	} else {
		t.Log("jq is not installed: only the sed fallback is tested")
	}

	t.Run("get-token.sh", func(t *testing.T) {
		for _, parser := range parsers {
			for _, c := range []struct{ client, auth, scope string }{
				{OrdersService, AuthBasic, "orders:read orders:write"},
				{OrdersService, AuthPost, "orders:read"},
				{ReportsJob, AuthBasic, "orders:read"},
				{ReportsJob, AuthPost, "orders:read"},
			} {
				res := runScript(t, "get-token.sh", scriptEnv("KEYCLOAK_URL="+keycloakURL, "CLIENT_ID="+c.client,
					"CLIENT_AUTH="+c.auth, "SCOPE="+c.scope, "JSON_PARSER="+parser))
				if res.code != 0 {
					t.Errorf("%s %s %s: exit %d: %s", parser, c.client, c.auth, res.code, res.stderr)
					continue
				}
				tok := strings.TrimSpace(res.stdout)
				if strings.Count(res.stdout, "\n") != 1 || strings.Count(tok, ".") != 2 {
					t.Errorf("%s %s %s: stdout is not one token line: %q", parser, c.client, c.auth, res.stdout)
					continue
				}
				wantAllow(t, check(read, tok), c.client)
				if !strings.Contains(res.stderr, "expires in 300s") {
					t.Errorf("%s: stderr %q should report the lifetime", parser, res.stderr)
				}
			}
		}
	})

	t.Run("get-token.sh --json", func(t *testing.T) {
		res := runScript(t, "get-token.sh", scriptEnv("TOKEN_URL="+srv.TokenURL(), "SCOPE=orders:read"), "--json")
		var body struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &body) != nil || body.AccessToken == "" ||
			!strings.EqualFold(body.TokenType, "Bearer") {
			t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("get-token.sh refusals", func(t *testing.T) {
		for _, parser := range parsers {
			res := runScript(t, "get-token.sh", scriptEnv("KEYCLOAK_URL="+keycloakURL, "CLIENT_SECRET=wrong", "JSON_PARSER="+parser))
			if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, "HTTP 401 invalid_client") {
				t.Errorf("%s, wrong secret: exit %d, stdout %q, stderr %q", parser, res.code, res.stdout, res.stderr)
			}
			res = runScript(t, "get-token.sh", scriptEnv("KEYCLOAK_URL="+keycloakURL, "CLIENT_ID="+ReportsJob,
				"SCOPE=orders:write", "JSON_PARSER="+parser))
			if res.code != 1 || !strings.Contains(res.stderr, "invalid_scope") {
				t.Errorf("%s, scope not granted: exit %d, stderr %q", parser, res.code, res.stderr)
			}
		}
		res := runScript(t, "get-token.sh", scriptEnv("KEYCLOAK_URL="+keycloakURL, "CLIENT_ID=someone-else"))
		if res.code != 2 || !strings.Contains(res.stderr, "set CLIENT_SECRET") {
			t.Errorf("unknown client without a secret: exit %d, stderr %q", res.code, res.stderr)
		}
		res = runScript(t, "get-token.sh", scriptEnv("KEYCLOAK_URL="+keycloakURL, "CLIENT_AUTH=private_key_jwt"))
		if res.code != 2 {
			t.Errorf("unsupported CLIENT_AUTH: exit %d, stderr %q", res.code, res.stderr)
		}
	})

	// The gateway, on the request layer every adapter uses: GET needs
	// orders:read, anything else orders:write.
	rule := func(scope string, methods ...string) authz.Route {
		return authz.Route{Prefix: "/", Methods: methods, Requirements: policy.Requirements{ScopesRequired: []string{scope}}}
	}
	gate, err := authz.Compile(authz.Spec{
		Config: authz.Config{Realm: "orders-api"},
		Policy: e.baseConfig(),
		Routes: []authz.Route{rule("orders:read", http.MethodGet), rule("orders:write")},
	}, authz.Options{Deps: policy.Deps{Keys: e.keys, Clock: e.clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := gate.Judge(r.Context(), &authz.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header})
		if !res.Allow {
			for _, h := range res.Response.Header {
				w.Header().Add(h[0], h[1])
			}
			w.WriteHeader(res.Response.Status)
			_, _ = w.Write(res.Response.Body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"client": res.Decision.ClientID(), "method": r.Method, "path": r.URL.Path})
	}))
	t.Cleanup(gw.Close)
	apiEnv := func(extra ...string) []string {
		return scriptEnv(append([]string{"API_URL=" + gw.URL, "KEYCLOAK_URL=" + keycloakURL}, extra...)...)
	}

	t.Run("call-api.sh allowed", func(t *testing.T) {
		res := runScript(t, "call-api.sh", apiEnv("SCOPE=orders:read orders:write"))
		if res.code != 0 || !strings.Contains(res.stdout, `"client":"orders-service"`) ||
			!strings.Contains(res.stderr, "GET /orders -> HTTP 200") {
			t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = runScript(t, "call-api.sh", apiEnv("SCOPE=orders:write"), "POST", "/orders", `{"item":"book"}`)
		if res.code != 0 || !strings.Contains(res.stdout, `"method":"POST"`) {
			t.Fatalf("POST: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("call-api.sh refused", func(t *testing.T) {
		res := runScript(t, "call-api.sh", apiEnv("CLIENT_ID="+ReportsJob, "CLIENT_AUTH="+AuthPost, "SCOPE=orders:read"),
			"POST", "/orders", `{"item":"book"}`)
		if res.code != 1 || !strings.Contains(res.stderr, "HTTP 403") ||
			!strings.Contains(res.stderr, `error="insufficient_scope"`) {
			t.Errorf("reports-job POST: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = runScript(t, "call-api.sh", apiEnv("NO_TOKEN=1"))
		if res.code != 1 || !strings.Contains(res.stderr, "HTTP 401") || !strings.Contains(strings.ToLower(res.stderr), "www-authenticate: bearer") {
			t.Errorf("no token: exit %d, stderr %q", res.code, res.stderr)
		}
		// TOKEN is used as given: no token request (the token URL is unreachable).
		res = runScript(t, "call-api.sh", apiEnv("TOKEN=not.a.token", "TOKEN_URL=http://127.0.0.1:1/none"))
		if res.code != 1 || !strings.Contains(res.stderr, "HTTP 401") || !strings.Contains(res.stderr, "invalid_token") {
			t.Errorf("bad token: exit %d, stderr %q", res.code, res.stderr)
		}
	})
}
