package policy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// fakeClock is a settable clock shared by the IdP, the key cache and the policy.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one Keycloak-shaped realm with a key cache, on a fake clock.
type env struct {
	idp   *testidp.IdP
	keys  *jwks.Cache
	clock *fakeClock
}

var demoClients = []testidp.Client{
	{ID: "orders-service", Secret: "s3cret", Scopes: []string{"orders:read", "orders:write"},
		RealmRoles: []string{"orders-admin"}, ClientRoles: map[string][]string{"orders-api": {"reader", "writer"}},
		Audience: []string{"orders-api"}},
	{ID: "reports-job", Secret: "s3cret", Scopes: []string{"orders:read"},
		ClientRoles: map[string][]string{"orders-api": {"reader"}}, Audience: []string{"orders-api"}},
	{ID: "no-audience", Secret: "s3cret", Scopes: []string{"orders:read"}},
}

func newEnv(t testing.TB, alg string) *env {
	t.Helper()
	clock := newClock()
	idp, err := testidp.New(testidp.Options{Alg: alg, Clients: demoClients, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return &env{idp: idp, keys: jwks.NewCache(jwks.Options{Clock: clock.Now}), clock: clock}
}

func (e *env) config() Config {
	return Config{
		Requirements: Requirements{Issuers: []Issuer{{Issuer: e.idp.Issuer()}}, Audiences: []string{"orders-api"}},
		Algorithms:   []string{"RS256", "RS384", "PS256", "ES256", "EdDSA"},
	}
}

func (e *env) compile(t testing.TB, edit func(*Config)) *Policy {
	t.Helper()
	cfg := e.config()
	if edit != nil {
		edit(&cfg)
	}
	p, err := Compile(cfg, Deps{Keys: e.keys, Clock: e.clock.Now})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func (e *env) token(t testing.TB, client string, opts ...testidp.MintOption) string {
	t.Helper()
	tok, err := e.idp.Token(client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func check(p *Policy, tok string) Decision { return p.Check(context.Background(), tok) }
