package keycloak

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// The upstream JWT of the examples: kong.yml's routes sign as
// keycloak-jwt-kong, examples/sidecar/sidecar.yaml as keycloak-jwt-sidecar,
// both for orders-api with the demo key docker-compose.yml mounts.
const (
	kongUpstreamIssuer    = "keycloak-jwt-kong"
	sidecarUpstreamIssuer = "keycloak-jwt-sidecar"
	upstreamAudience      = "orders-api"
	upstreamDemoKey       = "examples/upstream-jwt/demo-key.pem"
	kongKeyDir            = "/kong/upstream-jwt/" // where docker-compose.yml mounts it into Kong
)

// localKeyFiles points the upstream_jwt key files of a kong.yml entry, paths
// inside the Kong container, at the repository files docker-compose.yml
// mounts there.
func localKeyFiles(t *testing.T, cfg map[string]any) {
	t.Helper()
	uj, _ := cfg["upstream_jwt"].(map[string]any)
	for _, field := range []string{"private_key_file", "next_private_key_file", "previous_private_key_file"} {
		if f, _ := uj[field].(string); strings.HasPrefix(f, kongKeyDir) {
			abs, err := filepath.Abs(filepath.Join(repoRoot, "examples/upstream-jwt", strings.TrimPrefix(f, kongKeyDir)))
			if err != nil {
				t.Fatal(err)
			}
			uj[field] = abs
		}
	}
}

// verifyUpstreamJWT checks jwt as an upstream written from
// docs/upstream-jwt.md does: in Go (jwx, the key set from jwksURL) and with
// examples/upstream-jwt/verify.py (PyJWT) when the venv is there. It returns
// the claims.
func verifyUpstreamJWT(t *testing.T, raw, jwksURL, issuer string) map[string]any {
	t.Helper()
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatalf("JWKS %s: %v", jwksURL, err)
	}
	var doc json.RawMessage
	err = decodeJSON(resp, &doc)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("JWKS %s: %v", jwksURL, err)
	}
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatalf("JWKS %s: %v", jwksURL, err)
	}
	tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithIssuer(issuer), jwt.WithAudience(upstreamAudience),
		jwt.WithAcceptableSkew(5*time.Second))
	if err != nil {
		t.Fatalf("upstream JWT refused by jwx: %v", err)
	}
	iat, _ := tok.IssuedAt()
	if exp, _ := tok.Expiration(); exp.Sub(iat) > 60*time.Second || !exp.After(iat) {
		t.Errorf("upstream JWT lives %s, want at most ttl_seconds 60", exp.Sub(iat))
	}
	h, claims := jwtParts(t, raw)
	if h["alg"] != "ES256" || h["kid"] == nil || h["typ"] != "JWT" {
		t.Errorf("upstream JWT header %v, want alg ES256, a kid, typ JWT", h)
	}

	python := os.Getenv("KEYCLOAK_E2E_PYTHON")
	if python == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYCLOAK_E2E_PYTHON is not set on CI: scripts/keycloak.sh start installs the venv with PyJWT")
		}
		t.Log("KEYCLOAK_E2E_PYTHON is not set: verify.py not run")
		return claims
	}
	env := []string{"JWKS_URL=" + jwksURL, "ISSUER=" + issuer, "AUDIENCE=" + upstreamAudience, "ALGORITHM="}
	code, out, errOut := runExample(t, env, python, "examples/upstream-jwt/verify.py", raw)
	var got map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got["sub"] != claims["sub"] {
		t.Errorf("verify.py: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	parts := strings.Split(raw, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for name, c := range map[string]struct {
		env []string
		tok string
	}{
		"another audience":   {[]string{"AUDIENCE=billing-api"}, raw},
		"another issuer":     {[]string{"ISSUER=someone-else"}, raw},
		"another algorithm":  {[]string{"ALGORITHM=RS256"}, raw},
		"a forged signature": {nil, forged},
	} {
		code, _, errOut := runExample(t, append(env[:len(env):len(env)], c.env...), python, "examples/upstream-jwt/verify.py", c.tok)
		if code != 1 || !strings.Contains(errOut, "refused") {
			t.Errorf("verify.py with %s: exit %d, stderr %q; want 1 and refused", name, code, errOut)
		}
	}
	return claims
}

// TestUpstreamJWTThroughKong: a real Keycloak token through kong.yml's
// orders-read route reaches the upstream with an upstream JWT, and the
// upstream verifies it with the JWKS that the route upstream-jwt-jwks
// serves (answered by the plugin itself, before any token check).
func TestUpstreamJWTThroughKong(t *testing.T) {
	k := keycloak(t)
	g := startKong(t, k, nil)
	tok := k.token(t, ordersService, demoSecret(ordersService), secretBasic, "")

	jwksPath := g.paths["upstream-jwt-jwks"]
	if jwksPath != upstream.DefaultJWKSPath {
		t.Fatalf("route upstream-jwt-jwks serves %q, want %s", jwksPath, upstream.DefaultJWKSPath)
	}
	jwksRes, err := g.srv.HandleEvent(g.instances["upstream-jwt-jwks"], "access", kongsim.Request{Method: "GET", Path: jwksPath})
	if err != nil {
		t.Fatal(err)
	}
	if !jwksRes.Exited || jwksRes.Status != 200 || len(jwksRes.Body) == 0 {
		t.Fatalf("GET %s on upstream-jwt-jwks: exited %t, status %d, body %q", jwksPath, jwksRes.Exited, jwksRes.Status, jwksRes.Body)
	}
	// Kong's proxy, as far as the upstream sees it: the plugin's answer.
	kongProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != jwksPath {
			http.NotFound(w, r)
			return
		}
		for h, v := range jwksRes.ExitHeaders {
			w.Header()[http.CanonicalHeaderKey(h)] = v
		}
		_, _ = w.Write(jwksRes.Body)
	}))
	t.Cleanup(kongProxy.Close)

	req := kongsim.Request{Method: "GET", Path: g.paths["orders-read"], Consumers: g.consumers,
		Headers: map[string][]string{"Authorization": {"Bearer " + tok}, "X-Upstream-Jwt": {"forged-by-the-client"}}}
	res, err := g.srv.HandleEvent(g.instances["orders-read"], "access", req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exited {
		t.Fatalf("orders-read refused a valid token: %d %s", res.Status, res.Body)
	}
	hdr := res.UpstreamSet["X-Upstream-Jwt"]
	if len(hdr) != 1 || hdr[0] == "forged-by-the-client" {
		t.Fatalf("X-Upstream-Jwt set for the upstream: %q, want the gateway's JWT only", hdr)
	}
	claims := verifyUpstreamJWT(t, hdr[0], kongProxy.URL+jwksPath, kongUpstreamIssuer)
	_, orig := jwtParts(t, tok)
	if claims["sub"] != ordersService || claims["client_id"] != ordersService ||
		claims["original_iss"] != k.issuer || claims["original_jti"] != orig["jti"] || claims["scope"] != orig["scope"] {
		t.Errorf("upstream JWT claims %v do not carry the token's client, issuer, jti and scope", claims)
	}
}

// TestUpstreamJWTThroughSidecar: the same through the example sidecar
// (UPSTREAM_JWT_ENABLED, as docker-compose.yml sets it): the echo upstream
// receives the JWT and verifies it with the admin listener's JWKS.
func TestUpstreamJWTThroughSidecar(t *testing.T) {
	k := keycloak(t)
	key, err := filepath.Abs(filepath.Join(repoRoot, upstreamDemoKey))
	if err != nil {
		t.Fatal(err)
	}
	g := startSidecar(t, k, func(c *sidecar.Config) {
		c.UpstreamJWT.Enabled = true
		c.UpstreamJWT.PrivateKeyFile = key
	})
	tok := k.token(t, ordersService, demoSecret(ordersService), secretBasic, "")
	req, _ := http.NewRequest(http.MethodGet, g.url+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Upstream-Jwt", "forged-by-the-client")
	resp, err := g.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Headers http.Header `json:"headers"`
	}
	err = decodeJSON(resp, &echo)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	hdr := echo.Headers.Values("X-Upstream-Jwt")
	if len(hdr) != 1 || hdr[0] == "forged-by-the-client" {
		t.Fatalf("the echo upstream received X-Upstream-Jwt %q, want the sidecar's JWT only", hdr)
	}
	claims := verifyUpstreamJWT(t, hdr[0], g.admin+sidecar.JWKSPath, sidecarUpstreamIssuer)
	if claims["sub"] != ordersService || claims["original_iss"] != k.issuer {
		t.Errorf("upstream JWT claims %v", claims)
	}
}

// TestUpstreamJWTKeygen: examples/upstream-jwt/keygen.sh makes keys the
// signer loads for each algorithm (the public half as a next key), refuses
// to overwrite one, and the committed demo key is an ES256 key.
func TestUpstreamJWTKeygen(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, "examples/upstream-jwt/keygen.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		out := filepath.Join(dir, alg+".pem")
		if b, err := exec.Command("bash", script, alg, out).CombinedOutput(); err != nil {
			t.Fatalf("keygen.sh %s: %v\n%s", alg, err, b)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", out, err, fi.Mode().Perm())
		}
		next := filepath.Join(dir, alg+"-next.pem")
		if b, err := exec.Command("bash", script, alg, next).CombinedOutput(); err != nil {
			t.Fatalf("keygen.sh %s: %v\n%s", alg, err, b)
		}
		sg, err := upstream.NewSigner(upstream.JWTConfig{Enabled: true, Issuer: "gw", Audience: "api", Algorithm: alg,
			PrivateKeyFile: out, NextPrivateKeyFile: filepath.Join(dir, alg+"-next.pub.pem")}, nil)
		if err != nil || len(sg.KeyIDs()) != 2 {
			t.Errorf("%s: signer from keygen.sh's key: %v", alg, err)
		}
		if b, err := exec.Command("bash", script, alg, out).CombinedOutput(); err == nil || !strings.Contains(string(b), "not overwriting") {
			t.Errorf("keygen.sh over an existing key: %v %s", err, b)
		}
	}
	if _, err := upstream.NewSigner(upstream.JWTConfig{Enabled: true, Issuer: "gw", Audience: "api",
		PrivateKeyFile: filepath.Join(repoRoot, upstreamDemoKey)}, nil); err != nil {
		t.Errorf("%s: %v", upstreamDemoKey, err)
	}
}
