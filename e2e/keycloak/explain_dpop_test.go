package keycloak

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/internal/dpoptest"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// exampleGate compiles the request layer of examples/sidecar/sidecar.yaml
// (with the test routes) against real Keycloak, as keycloak-jwt-explain does.
func exampleGate(t *testing.T, k *kc, edit func(*sidecar.Config)) *authz.Gate {
	t.Helper()
	env := map[string]string{"ORDERS_API_URL": "http://127.0.0.1:1", "KEYCLOAK_ISSUER": k.issuer, "KJ_JWKS_URI": k.jwksURL()}
	cfg, err := sidecar.LoadConfigFile(filepath.Join(repoRoot, "examples/sidecar/sidecar.yaml"),
		func(key string) (string, bool) { v, ok := env[key]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	addTestRoutes(t)(cfg)
	if edit != nil {
		edit(cfg)
	}
	g, err := sidecar.CompileGate(cfg, policy.Deps{Keys: jwks.NewCache(jwks.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestExplainRealTokens (issue 12): the explanation of real Keycloak tokens
// names the fix on the Keycloak side for each misconfiguration, and its
// verdict is the running sidecar's.
func TestExplainRealTokens(t *testing.T) {
	k := keycloak(t)
	d := getDemoTokens(t, k)
	g := exampleGate(t, k, nil)
	sc := startSidecar(t, k, addTestRoutes(t))
	for _, tc := range []struct {
		name, method, path, token, fix string
	}{
		{"no audience mapper", "GET", "/orders", d.noAud[secretBasic], `add an Audience mapper to client "no-audience-client"'s dedicated scope`},
		{"scope not granted", "POST", "/orders", d.reports[secretBasic], "request scope=orders:write"},
		{"optional scope not requested", "GET", "/exports", d.reports[secretBasic], "request scope=orders:export"},
		{"realm role missing", "GET", "/admin/stats", d.reports[secretBasic], "assign the realm role orders-admin to the service account"},
		{"client role missing", "GET", "/writers", d.reports[secretBasic], "assign the client role orders-api:writer"},
		{"allowed", "GET", "/orders", d.orders[secretBasic], ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := g.Explain(context.Background(), &authz.Request{Method: tc.method, Path: tc.path,
				Header: map[string][]string{"Authorization": {"Bearer " + tc.token}}})
			got := sc.call(t, tc.method, tc.path, tc.token)
			if ex.Status != got.status && !(ex.Allow && got.status == http.StatusOK) {
				t.Fatalf("explain says %d %s, the sidecar answered %d %s", ex.Status, ex.Reason, got.status, got.reason)
			}
			if tc.fix == "" {
				if !ex.Allow {
					t.Fatalf("denied: %+v", ex)
				}
				return
			}
			var fixes []string
			for _, s := range ex.Steps {
				if s.Result == policy.StepFail {
					fixes = append(fixes, s.Fix)
				}
			}
			if !strings.Contains(strings.Join(fixes, " | "), tc.fix) {
				t.Fatalf("fixes %q lack %q", fixes, tc.fix)
			}
		})
	}
}

// TestKeycloakDPoPBoundToken (issue 15): Keycloak binds a client-credentials
// token to the key of the DPoP proof sent to its token endpoint (cnf.jkt);
// the sidecar accepts it with a proof of that key and refuses it as Bearer.
func TestKeycloakDPoPBoundToken(t *testing.T) {
	k := keycloak(t)
	cl := dpoptest.New(t)
	proof := cl.Proof(t, "POST", k.tokenURL(), "", func(_, p map[string]any) { delete(p, "ath") })
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, k.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	req.SetBasicAuth(ordersService, demoSecret(ordersService))
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tr tokenResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("DPoP token request: %d %.300s", resp.StatusCode, body)
	}
	parts := strings.Split(tr.AccessToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	_ = json.Unmarshal(payload, &claims)
	if !strings.EqualFold(tr.TokenType, "DPoP") || claims.Cnf.JKT != cl.JKT {
		t.Fatalf("Keycloak did not bind the token: token_type %q, cnf.jkt %q (want %q)", tr.TokenType, claims.Cnf.JKT, cl.JKT)
	}
	g := exampleGate(t, k, func(c *sidecar.Config) {
		c.PublicURL = "https://api.example.com"
		c.DPoP = authz.DPoPConfig{Enabled: true}
	})
	call := func(scheme, proof string) *authz.Result {
		h := map[string][]string{"Authorization": {scheme + " " + tr.AccessToken}}
		if proof != "" {
			h["Dpop"] = []string{proof}
		}
		return g.Judge(context.Background(), &authz.Request{Method: "GET", Path: "/orders", Header: h})
	}
	if res := call("DPoP", cl.Proof(t, "GET", "https://api.example.com/orders", tr.AccessToken, nil)); !res.Allow {
		t.Fatalf("Keycloak's DPoP token with its proof: %+v", res.Decision)
	}
	if res := call("Bearer", ""); res.Allow || res.Decision.Reason != authz.ReasonTokenBound {
		t.Fatalf("Keycloak's DPoP token as Bearer: %+v", res.Decision)
	}
	other := dpoptest.New(t)
	if res := call("DPoP", other.Proof(t, "GET", "https://api.example.com/orders", tr.AccessToken, nil)); res.Allow || res.Decision.Reason != authz.ReasonDPoPProof {
		t.Fatalf("a proof of another key: %+v", res.Decision)
	}
}
