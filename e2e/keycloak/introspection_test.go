package keycloak

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/redistest"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

const (
	introspector       = "e2e-introspector"
	introspectorSecret = "e2e-introspector-secret"
	introspectorEnv    = "KJ_E2E_INTROSPECTOR_SECRET"
)

// introspectionProxy sits in front of Keycloak's introspection endpoint
// and counts the requests that reach it.
func introspectionProxy(t *testing.T, k *kc) (endpoint string, calls *atomic.Int64) {
	t.Helper()
	target, _ := url.Parse(k.base)
	rp := httputil.NewSingleHostReverseProxy(target)
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/token/introspect") {
			calls.Add(1)
		}
		// Keycloak checks the token's iss against the host it is asked on.
		r.Host = target.Host
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/realms/" + realmName + "/protocol/openid-connect/token/introspect", calls
}

// introspectedCaller creates the gateway's client and a calling client
// whose tokens name the gateway's client in aud: Keycloak 26 answers
// active false to a client that is not in the token's audience ("Client
// ... is not in the token audience"), so the gateway introspects as the
// API's own client. It returns the caller's id and secret.
func introspectedCaller(t *testing.T, k *kc, id string, attrs map[string]string) (string, string) {
	t.Helper()
	k.createClient(t, introspector, introspectorSecret, nil, nil)
	t.Setenv(introspectorEnv, introspectorSecret)
	secret := id + "-secret"
	k.createClient(t, id, secret, attrs, map[string]any{"protocolMappers": []map[string]any{{
		"name": "gateway-audience", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
		"config": map[string]string{"included.client.audience": introspector, "access.token.claim": "true",
			"introspection.token.claim": "true"},
	}}})
	return id, secret
}

func withIntrospection(endpoint string, redis string) func(*sidecar.Config) {
	return func(c *sidecar.Config) {
		c.Policy.Introspection = &policy.Introspection{Enabled: true, Endpoint: endpoint, ClientID: introspector,
			ClientSecretEnv: introspectorEnv, MaxAgeSeconds: 1, InactiveTTLSeconds: 1}
		if redis != "" {
			c.Policy.Store.Redis = &store.RedisConfig{Address: redis}
		}
	}
}

// TestIntrospectionRevocation: with introspection on, a token revoked at
// Keycloak's revocation endpoint is refused within max_age_seconds (1 s
// here), where without it the token would pass until its exp; the
// endpoint is found through discovery.
func TestIntrospectionRevocation(t *testing.T) {
	k := keycloak(t)
	caller, callerSecret := introspectedCaller(t, k, "e2e-introspected-caller", nil)
	sc := startSidecar(t, k, withIntrospection("", ""))
	plain := startSidecar(t, k, nil)
	tok := k.token(t, caller, callerSecret, secretPost, "")
	if a := sc.call(t, "GET", "/orders", tok); a.status != http.StatusOK {
		t.Fatalf("active token: %d %s", a.status, a.reason)
	}
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"},
		"client_id": {caller}, "client_secret": {callerSecret}}
	resp, err := k.client.PostForm(k.issuer+"/protocol/openid-connect/revoke", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation endpoint: HTTP %d", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond) // max_age_seconds: 1
	if a := sc.call(t, "GET", "/orders", tok); a.status != http.StatusUnauthorized || a.reason != policy.ReasonInactive {
		t.Fatalf("revoked token with introspection: %d %s, want 401 %s", a.status, a.reason, policy.ReasonInactive)
	}
	if a := plain.call(t, "GET", "/orders", tok); a.status != http.StatusOK {
		t.Fatalf("revoked token without introspection: %d %s (it should pass until exp: that is what introspection is for)", a.status, a.reason)
	}
}

// TestIntrospectionLightweightToken: Keycloak's lightweight access token
// carries no aud; introspection's answer has it, so the
// route's requirements are met with introspection on (and the token is
// refused without it, see TestLightweightAccessToken).
func TestIntrospectionLightweightToken(t *testing.T) {
	k := keycloak(t)
	id, secret := introspectedCaller(t, k, "e2e-lightweight-introspected", map[string]string{"client.use.lightweight.access.token.enabled": "true"})
	tok := k.token(t, id, secret, secretPost, "")
	if _, claims := jwtParts(t, tok); claims["aud"] != nil {
		t.Fatalf("not a lightweight token: %v", claims)
	}
	sc := startSidecar(t, k, withIntrospection("", ""))
	if a := sc.call(t, "GET", "/orders", tok); a.status != http.StatusOK {
		t.Fatalf("lightweight token with introspection: %d %s", a.status, a.reason)
	}
	// The scope comes from the answer: orders:write is not granted.
	if a := sc.call(t, "POST", "/orders", tok); a.status != http.StatusForbidden || a.reason != policy.ReasonScope {
		t.Fatalf("POST with a lightweight token: %d %s, want 403 %s", a.status, a.reason, policy.ReasonScope)
	}
}

// TestIntrospectionSharedRedis: two sidecars sharing a real redis-server
// ask Keycloak once for a token both see, even when a storm of requests
// hits both at once.
func TestIntrospectionSharedRedis(t *testing.T) {
	k := keycloak(t)
	caller, callerSecret := introspectedCaller(t, k, "e2e-introspected-caller", nil)
	redis := redistest.Start(t)
	endpoint, calls := introspectionProxy(t, k)
	a := startSidecar(t, k, func(c *sidecar.Config) {
		withIntrospection(endpoint, redis.Addr)(c)
		c.Policy.Introspection.MaxAgeSeconds = 60
	})
	b := startSidecar(t, k, func(c *sidecar.Config) {
		withIntrospection(endpoint, redis.Addr)(c)
		c.Policy.Introspection.MaxAgeSeconds = 60
	})
	tok := k.token(t, caller, callerSecret, secretPost, "")
	if ans := a.call(t, "GET", "/orders", tok); ans.status != http.StatusOK {
		t.Fatalf("node a: %d %s", ans.status, ans.reason)
	}
	if ans := b.call(t, "GET", "/orders", tok); ans.status != http.StatusOK {
		t.Fatalf("node b: %d %s", ans.status, ans.reason)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("two sidecars made %d introspection calls for one token, want 1", n)
	}
	// A storm of one new token on one node: one call.
	tok2 := k.token(t, caller, callerSecret, secretPost, "")
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 50 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", a.url+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tok2)
			resp, err := a.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ans := b.call(t, "GET", "/orders", tok2); ans.status != http.StatusOK {
		t.Fatalf("node b, second token: %d %s", ans.status, ans.reason)
	}
	if ok.Load() != 50 || calls.Load() != 2 {
		t.Fatalf("50 concurrent requests with one token on node a, then node b: %d allowed, %d introspection calls in all; want 50, 2",
			ok.Load(), calls.Load())
	}
}
