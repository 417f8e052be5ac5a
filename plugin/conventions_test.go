package plugin_test

import (
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/dpoptest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// TestAnonymousKeepsAnotherPluginsCredential (hole 11): with anonymous set,
// a request that an earlier authentication plugin (key-auth, say) already
// authenticated is left to it — Kong's multiple-authentication "OR" — and
// anonymous does not replace its consumer. Client copies of the plugin's own
// identity headers are still removed; the other plugin's consumer headers
// are not touched.
func TestAnonymousKeepsAnotherPluginsCredential(t *testing.T) {
	h := start(t)
	anon := kongsim.Consumer{ID: "8a1e2c3d-0000-4000-8000-000000000001", Username: "anonymous"}
	keyAuth := kongsim.Consumer{ID: "8a1e2c3d-0000-4000-8000-000000000002", Username: "partner"}
	id := h.instance(t, func(c map[string]any) { c["anonymous"] = "anonymous" })
	req := kongsim.Request{
		Headers:                 map[string][]string{"X-Client-Id": {"forged"}, "X.Client.Roles": {"admin"}},
		Consumers:               []kongsim.Consumer{anon, keyAuth},
		AuthenticatedConsumer:   &keyAuth,
		AuthenticatedCredential: &kongsim.Credential{ID: "key-1", ConsumerID: keyAuth.ID},
	}
	res := access(t, h, id, req)
	if res.Exited {
		t.Fatalf("refused a request another plugin authenticated: %d %s", res.Status, res.Body)
	}
	if res.AuthenticatedConsumer == nil || res.AuthenticatedConsumer.ID != keyAuth.ID {
		t.Fatalf("consumer replaced: %+v", res.AuthenticatedConsumer)
	}
	up := h.srv.UpstreamHeaders(res, req)
	if up.Get("X-Client-Id") != "" || up.Get("X.Client.Roles") != "" || up.Get("X-Anonymous-Consumer") != "" {
		t.Fatalf("upstream headers %v", up)
	}
	for _, c := range res.Calls {
		if strings.HasPrefix(c, "kong.client.authenticate") || strings.HasPrefix(c, "kong.client.load_consumer") {
			t.Fatalf("plugin called %s", c)
		}
	}
	// Without an earlier credential, anonymous applies as before.
	req.AuthenticatedConsumer, req.AuthenticatedCredential = nil, nil
	res = access(t, h, id, req)
	if res.Exited || res.AuthenticatedConsumer == nil || res.AuthenticatedConsumer.ID != anon.ID {
		t.Fatalf("anonymous: %+v", res)
	}
}

// TestRunOnPreflight (hole 11): run_on_preflight defaults to true (Kong's
// jwt plugin); false lets an OPTIONS request through unauthenticated, with
// client copies of the identity headers removed.
func TestRunOnPreflight(t *testing.T) {
	h := start(t)
	preflight := kongsim.Request{Method: "OPTIONS", Headers: map[string][]string{"X-Client-Id": {"forged"}, "Origin": {"https://app"}}}
	def := h.instance(t, nil)
	if res := access(t, h, def, preflight); !res.Exited || res.Status != 401 {
		t.Fatalf("default run_on_preflight: %d", res.Status)
	}
	off := h.instance(t, func(c map[string]any) { c["run_on_preflight"] = false })
	res := access(t, h, off, preflight)
	if res.Exited {
		t.Fatalf("preflight refused: %d %s", res.Status, res.Body)
	}
	if up := h.srv.UpstreamHeaders(res, preflight); up.Get("X-Client-Id") != "" || up.Get("Origin") != "https://app" {
		t.Fatalf("upstream headers %v", up)
	}
	if res := access(t, h, off, kongsim.Request{Method: "GET"}); !res.Exited || res.Status != 401 {
		t.Fatalf("GET with run_on_preflight off: %d", res.Status)
	}
}

// TestLayerRulesThroughKong: the request layer's rules hold in the plugin
// too (holes 1, 2, 4, 5 as Kong sees the request).
func TestLayerRulesThroughKong(t *testing.T) {
	h := start(t)
	id := h.instance(t, func(c map[string]any) { c["cookie_names"] = []string{"access_token"} })
	tok := h.token(t, "orders-service")
	cases := []struct {
		name    string
		headers map[string][]string
		status  int
	}{
		{"two Authorization lines", map[string][]string{"Authorization": {"Bearer\tforged", "Bearer " + tok}}, 400},
		{"look-alike cookie", map[string][]string{"Cookie": {"access.token=FORGED; access_token=" + tok}}, 400},
		{"method override", map[string][]string{"Authorization": {"Bearer " + tok}, "X-HTTP-Method-Override": {"DELETE"}}, 400},
		{"dotted identity header", map[string][]string{"Authorization": {"Bearer " + tok}, "X.Client.Id": {"ops-admin"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := kongsim.Request{Headers: tc.headers}
			res := access(t, h, id, req)
			if tc.status == 0 {
				if res.Exited {
					t.Fatalf("refused: %d %s", res.Status, res.Body)
				}
				up := h.srv.UpstreamHeaders(res, req)
				if up.Get("X.Client.Id") != "" || up.Get("X-Client-Id") != "orders-service" {
					t.Fatalf("upstream %v", up)
				}
				return
			}
			if !res.Exited || res.Status != tc.status {
				t.Fatalf("got %v %d %v %s", res.Exited, res.Status, res.ExitHeaders, res.Body)
			}
		})
	}
}

// TestDPoPThroughKong: the plugin reads the method and path (two PDK calls)
// only with dpop on, and a bound token needs its proof.
func TestDPoPThroughKong(t *testing.T) {
	h := start(t)
	id := h.instance(t, func(c map[string]any) {
		c["public_url"] = "https://api.example.com"
		c["dpop"] = map[string]any{"enabled": true}
		c["resource_metadata"] = true
	})
	cl := dpoptest.New(t)
	tok := h.token(t, "orders-service", testidp.WithClaim("cnf", map[string]any{"jkt": cl.JKT}))
	ok := kongsim.Request{Method: "POST", Path: "/orders", Headers: map[string][]string{
		"Authorization": {"DPoP " + tok}, "DPoP": {cl.Proof(t, "POST", "https://api.example.com/orders", tok, nil)}}}
	if res := access(t, h, id, ok); res.Exited {
		t.Fatalf("valid proof: %d %s", res.Status, res.Body)
	}
	wrong := kongsim.Request{Method: "GET", Path: "/orders", Headers: map[string][]string{
		"Authorization": {"DPoP " + tok}, "DPoP": {cl.Proof(t, "POST", "https://api.example.com/orders", tok, nil)}}}
	res := access(t, h, id, wrong)
	if !res.Exited || res.Status != 401 || !strings.Contains(strings.Join(res.ExitHeaders["WWW-Authenticate"], " "), "invalid_dpop_proof") {
		t.Fatalf("proof for another method: %d %v", res.Status, res.ExitHeaders)
	}
	res = access(t, h, id, kongsim.Request{Method: "GET", Path: "/orders", Headers: bearer(tok)})
	if !res.Exited || res.Status != 401 || len(res.ExitHeaders["WWW-Authenticate"]) != 2 {
		t.Fatalf("bound token as Bearer: %d %v", res.Status, res.ExitHeaders)
	}
	meta := access(t, h, id, kongsim.Request{Method: "GET", Path: "/.well-known/oauth-protected-resource"})
	if !meta.Exited || meta.Status != 200 || !strings.Contains(string(meta.Body), `"resource":"https://api.example.com"`) {
		t.Fatalf("metadata: %d %s", meta.Status, meta.Body)
	}
}
