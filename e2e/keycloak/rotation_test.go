package keycloak

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// realmKeys is GET /admin/realms/demo/keys.
type realmKeys struct {
	Active map[string]string `json:"active"`
	Keys   []struct {
		Kid        string `json:"kid"`
		Algorithm  string `json:"algorithm"`
		ProviderID string `json:"providerId"`
		Priority   int64  `json:"providerPriority"`
		Status     string `json:"status"`
		Use        string `json:"use"`
	} `json:"keys"`
}

// component is a key provider (GET /admin/realms/demo/components/{id}).
type component map[string]any

// published returns the kids of the realm's JWKS (what a gateway fetches).
func (k *kc) published(t *testing.T) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	resp, err := k.client.Get(k.jwksURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, key := range set.Keys {
		kids = append(kids, key.Kid)
	}
	return kids
}

// rotationGateways are one sidecar and one Kong plugin instance sharing a
// JWKS configuration, each behind its own counting proxy.
type rotationGateways struct {
	sc   *sidecarGW
	kong *kongGW
}

const kongRoute = "orders-read"

func startRotationGateways(t *testing.T, k *kc, minRefresh, minTTL int) rotationGateways {
	t.Helper()
	sc := startSidecar(t, k, func(c *sidecar.Config) {
		if minRefresh > 0 {
			c.Policy.JWKS.MinRefreshIntervalSeconds = minRefresh
		}
		if minTTL > 0 {
			c.Policy.JWKS.MinTTLSeconds = minTTL
		}
	})
	kong := startKong(t, k, func(name string, cfg map[string]any) {
		jw, _ := cfg["jwks"].(map[string]any)
		if jw == nil {
			jw = map[string]any{}
		}
		if minRefresh > 0 {
			jw["min_refresh_interval_seconds"] = minRefresh
		}
		if minTTL > 0 {
			jw["min_ttl_seconds"] = minTTL
		}
		cfg["jwks"] = jw
	})
	return rotationGateways{sc: sc, kong: kong}
}

// both calls GET /orders on the sidecar and the Kong route with tok.
func (g rotationGateways) both(t *testing.T, tok string) (sc, kong answer) {
	t.Helper()
	return g.sc.call(t, "GET", "/orders", tok), g.kong.call(t, kongRoute, "GET", tok)
}

// TestKeyRotation rotates the realm's signing key through the admin REST API
// as an operator would, and counts the JWKS fetches of both adapters:
//
//  1. a new rsa-generated provider with a higher priority: new tokens carry
//     its kid; the first request with one is allowed after exactly one
//     refetch; old tokens stay valid (no fetch) while the old key is
//     published;
//  2. the old provider disabled: old tokens are refused within one key
//     refresh (TTL: Keycloak answers Cache-Control: no-cache, so the
//     gateway's min_ttl), new ones still allowed; then the old provider is
//     removed.
func TestKeyRotation(t *testing.T) {
	k := keycloak(t)
	var before realmKeys
	k.admin(t, http.MethodGet, "/keys", nil, &before)
	oldKid := before.Active["RS256"]
	var oldProvider string
	var maxPrio int64
	for _, key := range before.Keys {
		if key.Kid == oldKid {
			oldProvider = key.ProviderID
		}
		maxPrio = max(maxPrio, key.Priority)
	}
	if oldKid == "" || oldProvider == "" {
		t.Fatalf("no active RS256 key: %+v", before)
	}
	oldTok := k.token(t, ordersService, demoSecret(ordersService), secretPost, "")
	if kidOf(t, oldTok) != oldKid {
		t.Fatalf("token kid %s, active key %s", kidOf(t, oldTok), oldKid)
	}

	// Phase 1 gateways: kong.yml's and sidecar.yaml's JWKS settings (10 s
	// min_refresh_interval, default TTLs).
	g1 := startRotationGateways(t, k, 0, 0)
	if sc, kong := g1.both(t, oldTok); sc.status != 200 || kong.status != 200 {
		t.Fatalf("old token before the rotation: sidecar %d %s, kong %d %s", sc.status, sc.reason, kong.status, kong.reason)
	}
	sc0, kong0 := g1.sc.proxy.fetches(), g1.kong.proxy.fetches()
	t.Logf("phase 1: JWKS fetches after start-up and the first request: sidecar %d, kong %d", sc0, kong0)
	if sc0 != 1 || kong0 != 1 {
		t.Errorf("start-up: sidecar fetched the JWKS %d times, kong %d, want 1 each", sc0, kong0)
	}

	// Rotate: a generated RSA key with a higher priority becomes active.
	realm := map[string]any{}
	k.admin(t, http.MethodGet, "", nil, &realm)
	prio := strconv.FormatInt(maxPrio+100, 10)
	hdr := k.admin(t, http.MethodPost, "/components", component{
		"name": "e2e-rotated-" + prio, "providerId": "rsa-generated", "providerType": "org.keycloak.keys.KeyProvider",
		"parentId": realm["id"],
		"config":   map[string][]string{"priority": {prio}, "enabled": {"true"}, "active": {"true"}, "algorithm": {"RS256"}, "keySize": {"2048"}},
	}, nil)
	if hdr.Get("Location") == "" {
		t.Fatal("new key provider: no Location")
	}
	var after realmKeys
	k.admin(t, http.MethodGet, "/keys", nil, &after)
	newKid := after.Active["RS256"]
	if newKid == oldKid || !slices.Contains(k.published(t), newKid) || !slices.Contains(k.published(t), oldKid) {
		t.Fatalf("after adding the provider: active %s (old %s), published %v", newKid, oldKid, k.published(t))
	}
	newTok := k.token(t, ordersService, demoSecret(ordersService), secretPost, "")
	if kidOf(t, newTok) != newKid {
		t.Fatalf("new token kid %s, want %s", kidOf(t, newTok), newKid)
	}

	sc, kong := g1.both(t, newTok)
	sc1, kong1 := g1.sc.proxy.fetches(), g1.kong.proxy.fetches()
	t.Logf("phase 1: first new-kid request: sidecar %d %s after %d fetches, kong %d %s after %d fetches",
		sc.status, sc.reason, sc1, kong.status, kong.reason, kong1)
	if sc.status != 200 || kong.status != 200 {
		t.Errorf("first request with a new-kid token: sidecar %d %s, kong %d %s, want 200 (no refusal window after a fetch)",
			sc.status, sc.reason, kong.status, kong.reason)
	}
	if sc1 != sc0+1 || kong1 != kong0+1 {
		t.Errorf("new kid: sidecar fetched %d times, kong %d, want exactly one refetch each (%d, %d)", sc1, kong1, sc0+1, kong0+1)
	}
	for i := 0; i < 5; i++ {
		for _, tok := range []string{oldTok, newTok} {
			if sc, kong := g1.both(t, tok); sc.status != 200 || kong.status != 200 {
				t.Errorf("after the rotation (old key still published): sidecar %d %s, kong %d %s", sc.status, sc.reason, kong.status, kong.reason)
			}
		}
	}
	if n, m := g1.sc.proxy.fetches(), g1.kong.proxy.fetches(); n != sc1 || m != kong1 {
		t.Errorf("known kids caused fetches: sidecar %d → %d, kong %d → %d", sc1, n, kong1, m)
	}

	// Phase 2 gateways: a 2 s key TTL so that the test sees a scheduled
	// refresh; min_refresh_interval 1 s.
	const ttl = 2
	g2 := startRotationGateways(t, k, 1, ttl)
	for _, tok := range []string{oldTok, newTok} {
		if sc, kong := g2.both(t, tok); sc.status != 200 || kong.status != 200 {
			t.Fatalf("phase 2 before disabling: sidecar %d %s, kong %d %s", sc.status, sc.reason, kong.status, kong.reason)
		}
	}
	var old component
	k.admin(t, http.MethodGet, "/components/"+oldProvider, nil, &old)
	cfg, _ := old["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["enabled"] = []string{"false"}
	old["config"] = cfg
	k.admin(t, http.MethodPut, "/components/"+oldProvider, old, nil)
	if slices.Contains(k.published(t), oldKid) {
		t.Fatalf("old kid %s still published after disabling its provider", oldKid)
	}
	disabledAt := time.Now()
	scD, kongD := g2.sc.proxy.fetches(), g2.kong.proxy.fetches()

	type refusal struct {
		after   time.Duration
		fetches int64
		a       answer
	}
	var scR, kongR *refusal
	for time.Since(disabledAt) < 4*ttl*time.Second && (scR == nil || kongR == nil) {
		if scR == nil {
			if a := g2.sc.call(t, "GET", "/orders", oldTok); a.status != 200 {
				scR = &refusal{time.Since(disabledAt), g2.sc.proxy.fetches() - scD, a}
			}
		}
		if kongR == nil {
			if a := g2.kong.call(t, kongRoute, "GET", oldTok); a.status != 200 {
				kongR = &refusal{time.Since(disabledAt), g2.kong.proxy.fetches() - kongD, a}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range []struct {
		name string
		r    *refusal
	}{{"sidecar", scR}, {"kong", kongR}} {
		if r.r == nil {
			t.Errorf("%s: old token still accepted %s after its provider was disabled (key TTL %ds)", r.name, 4*ttl*time.Second, ttl)
			continue
		}
		t.Logf("phase 2: %s refused the old token %s after disabling (%d %s), after %d JWKS fetches",
			r.name, r.r.after.Round(10*time.Millisecond), r.r.a.status, r.r.a.reason, r.r.fetches)
		// One scheduled refresh drops the key; the refused request may add
		// one unknown-kid refetch.
		if r.r.fetches < 1 || r.r.fetches > 2 {
			t.Errorf("%s: %d JWKS fetches between disabling and the refusal, want 1 refresh (+1 unknown-kid refetch at most)", r.name, r.r.fetches)
		}
		if r.r.a.status != http.StatusUnauthorized {
			t.Errorf("%s: old token → %d %s, want 401", r.name, r.r.a.status, r.r.a.reason)
		}
	}
	// A storm of old tokens is bounded by min_refresh_interval.
	scS, kongS := g2.sc.proxy.fetches(), g2.kong.proxy.fetches()
	for i := 0; i < 20; i++ {
		g2.both(t, oldTok)
	}
	if n, m := g2.sc.proxy.fetches()-scS, g2.kong.proxy.fetches()-kongS; n > 1 || m > 1 {
		t.Errorf("20 requests with the removed kid: sidecar %d fetches, kong %d, want at most 1 each", n, m)
	} else {
		t.Logf("phase 2: 20 requests with the removed kid: sidecar %d fetches, kong %d", n, m)
	}
	if sc, kong := g2.both(t, newTok); sc.status != 200 || kong.status != 200 {
		t.Errorf("new token after disabling the old provider: sidecar %d %s, kong %d %s", sc.status, sc.reason, kong.status, kong.reason)
	}
	// Removing the disabled provider changes nothing for the gateways.
	k.admin(t, http.MethodDelete, "/components/"+oldProvider, nil, nil)
	if sc, kong := g2.both(t, oldTok); sc.status == 200 || kong.status == 200 {
		t.Errorf("old token after removing its provider: sidecar %d, kong %d", sc.status, kong.status)
	}
}
