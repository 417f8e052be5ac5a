package keycloak

import (
	"net/http"
	"slices"
	"sort"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// TestClientSecretRegeneration is the operator runbook's "token rotation":
// after the secret is regenerated through the admin API the old secret gets
// no token, the new one does, and tokens issued before keep working.
func TestClientSecretRegeneration(t *testing.T) {
	k := keycloak(t)
	const id, first = "e2e-secret-rotation", "e2e-first-secret"
	uuid := k.createClient(t, id, first, nil, nil)
	g := startSidecar(t, k, nil)
	before := k.token(t, id, first, secretBasic, "")
	if a := g.call(t, "GET", "/orders", before); a.status != 200 {
		t.Fatalf("token of the first secret → %d %s", a.status, a.reason)
	}
	var cred struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	k.admin(t, http.MethodPost, "/clients/"+uuid+"/client-secret", nil, &cred)
	if cred.Value == "" || cred.Value == first {
		t.Fatalf("regenerated secret %+v", cred)
	}
	for _, m := range []authMethod{secretPost, secretBasic} {
		if status, tr := k.requestToken(t, id, first, m, ""); status == http.StatusOK || tr.AccessToken != "" {
			t.Errorf("%s: the old secret still gets a token (status %d)", m, status)
		} else if tr.Error != "unauthorized_client" && tr.Error != "invalid_client" {
			t.Errorf("%s: old secret → %d %s, want invalid_client or unauthorized_client", m, status, tr.Error)
		}
		after := k.token(t, id, cred.Value, m, "")
		if a := g.call(t, "GET", "/orders", after); a.status != 200 {
			t.Errorf("%s: token of the new secret → %d %s", m, a.status, a.reason)
		}
	}
	if a := g.call(t, "GET", "/orders", before); a.status != 200 {
		t.Errorf("token issued before the regeneration → %d %s, want 200 until its exp", a.status, a.reason)
	}
}

// TestRefreshTokenAsBearer: with refresh tokens enabled for client
// credentials, the refresh token (HS512, typ Refresh) presented as a bearer
// token is refused by both adapters (HS512 is never an allowed algorithm:
// reason algorithm_not_allowed); the ID token Keycloak issues for
// scope=openid (RS256, typ ID) is refused with the token-type reason.
func TestRefreshTokenAsBearer(t *testing.T) {
	k := keycloak(t)
	const id, secret = "e2e-refresh", "e2e-refresh-secret"
	k.createClient(t, id, secret, map[string]string{"client_credentials.use_refresh_token": "true"}, nil)
	status, tr := k.requestToken(t, id, secret, secretPost, "openid")
	if status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("client_credentials with use_refresh_token: status %d, refresh_token %t (%s)", status, tr.RefreshToken != "", tr.Error)
	}
	h, p := jwtParts(t, tr.RefreshToken)
	t.Logf("refresh token: header alg %v typ %v, payload typ %v", h["alg"], h["typ"], p["typ"])
	sc := startSidecar(t, k, nil)
	kong := startKong(t, k, nil)
	others := map[string]string{"refresh token": tr.RefreshToken}
	if tr.IDToken != "" {
		others["ID token"] = tr.IDToken
	} else {
		t.Log("Keycloak issued no ID token for client_credentials with scope=openid")
	}
	for name, tok := range others {
		a := sc.call(t, "GET", "/orders", tok)
		b := kong.call(t, "reports-api", "GET", tok)
		t.Logf("%s as bearer: sidecar %d %s, kong %d %s", name, a.status, a.reason, b.status, b.reason)
		// Keycloak's refresh token is HS512: the algorithm check refuses it
		// before its (unverifiable) payload is read, so its reason is
		// algorithm_not_allowed. The RS256 ID token is verified and then
		// refused for its typ.
		want := policy.ReasonType
		if name == "refresh token" {
			want = policy.ReasonAlgorithm
		}
		for _, ans := range []answer{a, b} {
			if ans.status != http.StatusUnauthorized || ans.reason != want {
				t.Errorf("%s as bearer → %d %s, want 401 %s", name, ans.status, ans.reason, want)
			}
		}
	}
	if a := sc.call(t, "GET", "/orders", tr.AccessToken); a.status != 200 {
		t.Errorf("the access token of the same response → %d %s", a.status, a.reason)
	}
}

// TestLightweightAccessToken records what the gateways answer to Keycloak's
// lightweight access tokens (client setting "Always use lightweight access
// token"): claims whose mappers are not marked for lightweight tokens are
// left out, the audience and the scopes among them.
func TestLightweightAccessToken(t *testing.T) {
	k := keycloak(t)
	const id, secret = "e2e-lightweight", "e2e-lightweight-secret"
	k.createClient(t, id, secret, map[string]string{"client.use.lightweight.access.token.enabled": "true"}, nil)
	tok := k.token(t, id, secret, secretPost, "")
	_, claims := jwtParts(t, tok)
	var names []string
	for n := range claims {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("lightweight access token claims: %v", names)
	sc := startSidecar(t, k, nil)
	kong := startKong(t, k, nil)
	a := sc.call(t, "GET", "/orders", tok)
	b := kong.call(t, "reports-api", "GET", tok)
	t.Logf("lightweight token: sidecar %d %s, kong %d %s", a.status, a.reason, b.status, b.reason)
	if slices.Contains(names, "aud") {
		t.Logf("aud is present: %v", claims["aud"])
	}
	// What the README tells operators: a lightweight token has no aud (and
	// no scope, roles or azp-based client id claims) for the gateway to
	// check, so it is refused; turn the setting off for clients that call
	// the gateway, or mark the audience mapper "Add to lightweight access
	// token".
	for _, ans := range []answer{a, b} {
		if ans.status == http.StatusOK {
			t.Errorf("lightweight access token allowed: %d %s", ans.status, ans.reason)
		}
	}
}
