package policy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keycloak-jwt/keycloak-jwt/internal/redistest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

const (
	gwClient = "api-gateway"
	gwSecret = "gw-s3cret-value"
)

// fakeAS is an RFC 7662 introspection endpoint in Keycloak's shape: for a
// JWT it answers the token's own claims with active true (unless revoked),
// for an opaque token the claims registered for it.
type fakeAS struct {
	srv     *httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	revoked map[string]bool
	opaque  map[string]map[string]any
	status  int           // answer this status instead (0: 200)
	delay   time.Duration // before answering
}

func newFakeAS(t testing.TB) *fakeAS {
	a := &fakeAS{revoked: map[string]bool{}, opaque: map[string]map[string]any{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAS) endpoint() string { return a.srv.URL + "/introspect" }

func (a *fakeAS) set(f func(a *fakeAS)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *fakeAS) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/discovery" {
		_, _ = w.Write([]byte(`{"issuer":"x","introspection_endpoint":"` + a.endpoint() + `"}`))
		return
	}
	a.calls.Add(1)
	a.mu.Lock()
	status, delay := a.status, a.delay
	a.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != gwClient || secret != gwSecret || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok := r.PostFormValue("token")
	a.mu.Lock()
	claims, isOpaque := a.opaque[tok]
	revoked := a.revoked[tok]
	a.mu.Unlock()
	answer := map[string]any{"active": false}
	switch {
	case revoked:
	case isOpaque:
		answer = map[string]any{"active": true}
		for k, v := range claims {
			answer[k] = v
		}
	case strings.Count(tok, ".") == 2:
		b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		if err == nil && json.Unmarshal(b, &answer) == nil {
			answer["active"] = true
			answer["token_type"] = "Bearer"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

// introConfig turns introspection on against a.
func introConfig(a *fakeAS, edit func(*Introspection)) func(*Config) {
	return func(c *Config) {
		in := &Introspection{Enabled: true, Endpoint: a.endpoint(), ClientID: gwClient, ClientSecretEnv: "TEST_GW_SECRET",
			MaxAgeSeconds: 30, InactiveTTLSeconds: 5, TimeoutSeconds: 1}
		if edit != nil {
			edit(in)
		}
		c.Introspection = in
	}
}

func TestIntrospectionRevokedWithinMaxAge(t *testing.T) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	p := e.compile(t, introConfig(a, nil))
	tok := e.token(t, "orders-service", testidp.WithTTL(time.Hour))

	d := check(p, tok)
	if !d.Allow || !d.Introspected || a.calls.Load() != 1 {
		t.Fatalf("first check: %+v, %d calls", d, a.calls.Load())
	}
	if d.AcceptedUntil > e.clock.Now().Unix()+30 {
		t.Fatalf("AcceptedUntil %d outlives the answer (max age 30 s)", d.AcceptedUntil-e.clock.Now().Unix())
	}
	for range 5 {
		if d := check(p, tok); !d.Allow {
			t.Fatal(d)
		}
	}
	if a.calls.Load() != 1 {
		t.Fatalf("%d calls for a cached answer, want 1", a.calls.Load())
	}
	a.set(func(a *fakeAS) { a.revoked[tok] = true })
	e.clock.Advance(20 * time.Second) // within the max age: the answer still stands
	if d := check(p, tok); !d.Allow {
		t.Fatal("refused before the max age passed", d)
	}
	e.clock.Advance(11 * time.Second) // past it
	d = check(p, tok)
	if d.Allow || d.Reason != ReasonInactive || d.Status != http.StatusUnauthorized || d.Error != ErrInvalidToken {
		t.Fatalf("revoked token after max age: %+v", d)
	}
	calls := a.calls.Load()
	e.clock.Advance(4 * time.Second) // within inactive_ttl: the inactive answer is reused
	if d := check(p, tok); d.Reason != ReasonInactive || a.calls.Load() != calls {
		t.Fatalf("inactive answer not reused: %s, %d calls", d.Reason, a.calls.Load())
	}
	e.clock.Advance(2 * time.Second)
	check(p, tok)
	if a.calls.Load() != calls+1 {
		t.Fatal("inactive answer reused past inactive_ttl_seconds")
	}
}

func TestIntrospectionEndpointDownRefuses(t *testing.T) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	cfg := e.config()
	introConfig(a, func(in *Introspection) { zero := 0; in.CacheSize = &zero })(&cfg)
	p, err := Compile(cfg, Deps{Keys: e.keys, Clock: e.clock.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, "orders-service")
	want := func(what string, d Decision) {
		t.Helper()
		if d.Allow || d.Status != http.StatusServiceUnavailable || d.Reason != ReasonIntrospection {
			t.Fatalf("%s: %+v", what, d)
		}
		if strings.Contains(d.Detail+d.Message, gwSecret) {
			t.Fatal("the decision shows the client secret")
		}
	}
	a.set(func(a *fakeAS) { a.status = http.StatusInternalServerError })
	want("HTTP 500", check(p, tok))
	a.set(func(a *fakeAS) { a.status = http.StatusUnauthorized })
	d := check(p, tok)
	want("gateway client refused", d)
	if !strings.Contains(d.Detail, "client_id") {
		t.Fatalf("detail does not say what to check: %s", d.Detail)
	}
	a.set(func(a *fakeAS) { a.status, a.delay = 0, 3*time.Second })
	start := time.Now()
	want("slow", check(p, tok))
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("a slow endpoint held the request %v (timeout 1 s)", took)
	}
	a.srv.Close()
	want("closed", check(p, tok))
	if p.IntrospectionStats().Failures < 4 {
		t.Fatalf("failures not counted: %+v", p.IntrospectionStats())
	}
	for _, entry := range logs.All() {
		line := entry.Message
		for _, f := range entry.Context {
			line += " " + f.String
			if f.Interface != nil {
				if err, ok := f.Interface.(error); ok {
					line += " " + err.Error()
				}
			}
		}
		if strings.Contains(line, gwSecret) || strings.Contains(line, tok) {
			t.Fatalf("a log line shows the secret or the token: %s", line)
		}
	}
	if logs.FilterMessage("token introspection failed: request refused").Len() == 0 {
		t.Fatal("the failure is not logged")
	}
}

// slowEndpoint is a policy whose endpoint takes 200 ms, and a token.
func slowEndpoint(t *testing.T) (*fakeAS, *Policy, string) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	a.set(func(a *fakeAS) { a.delay = 200 * time.Millisecond })
	return a, e.compile(t, introConfig(a, nil)), e.token(t, "orders-service")
}

func TestIntrospectionStormOneRequest(t *testing.T) {
	a, p, tok := slowEndpoint(t)
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range 100 {
		wg.Go(func() {
			if check(p, tok).Allow {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if a.calls.Load() != 1 || allowed.Load() != 100 {
		t.Fatalf("100 concurrent checks of one token: %d introspection calls, %d allowed; want 1, 100", a.calls.Load(), allowed.Load())
	}
}

// TestIntrospectionWaiterCancel: a caller that gives up does not fail the
// flight the others wait on.
func TestIntrospectionWaiterCancel(t *testing.T) {
	a, p, tok := slowEndpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if d := p.Check(ctx, tok); d.Allow || d.Reason != ReasonIntrospection {
		t.Fatalf("cancelled caller: %+v", d)
	}
	if d := check(p, tok); !d.Allow || a.calls.Load() != 1 {
		t.Fatalf("the next caller: %+v, %d calls", d, a.calls.Load())
	}
}

// TestIntrospectionOpaqueAndLightweight: tokens that carry too little to be
// checked locally are checked with the claims of the answer, by the same
// rules.
func TestIntrospectionOpaqueAndLightweight(t *testing.T) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	now := e.clock.Now().Unix()
	full := map[string]any{"iss": e.idp.Issuer(), "aud": []string{"orders-api"}, "azp": "orders-service", "sub": "6c1a",
		"typ": "Bearer", "exp": now + 300, "iat": now, "jti": "o1", "scope": "orders:read"}
	a.set(func(a *fakeAS) {
		a.opaque["opaque-token-1"] = full
		a.opaque["opaque-no-iss-exp"] = map[string]any{"aud": "orders-api", "client_id": "reports-job", "token_type": "Bearer", "scope": "orders:read"}
	})
	p := e.compile(t, introConfig(a, nil))
	d := check(p, "opaque-token-1")
	if !d.Allow || d.ClientID() != "orders-service" {
		t.Fatalf("opaque token: %+v", d)
	}
	if v, _ := d.Claims.Get("scope"); v != "orders:read" {
		t.Fatalf("claims of the answer not readable: %v", v)
	}
	// iss and exp absent (RFC 7662 makes them optional): the one issuer,
	// the maximum age; typ from token_type.
	d = check(p, "opaque-no-iss-exp")
	if !d.Allow || d.Claims.Issuer != e.idp.Issuer() || d.Claims.Expiry != now+30 {
		t.Fatalf("answer without iss/exp: %+v %+v", d, d.Claims)
	}
	if d := check(p, "unknown-opaque"); d.Reason != ReasonInactive {
		t.Fatalf("unknown opaque token: %+v", d)
	}
	if d := check(p, "bad token!"); d.Reason != ReasonMalformed {
		t.Fatalf("not a b64token: %+v", d)
	}
	// The requirements apply to the answer's claims.
	scoped := e.compile(t, func(c *Config) { introConfig(a, nil)(c); c.ScopesRequired = []string{"orders:write"} })
	if d := check(scoped, "opaque-token-1"); d.Status != http.StatusForbidden || d.Reason != ReasonScope {
		t.Fatalf("scope from the answer: %+v", d)
	}
	// A Keycloak lightweight access token: signed, but without aud, scope
	// or azp; the answer has them.
	light := signRaw(t, e, hdrFor(e, nil), map[string]any{"iss": e.idp.Issuer(), "exp": now + 300, "iat": now, "jti": "lw1", "typ": "Bearer",
		"sid": "s1"})
	a.set(func(a *fakeAS) { a.opaque[light] = full })
	plain := e.compile(t, nil)
	if d := check(plain, light); d.Reason != ReasonAudience {
		t.Fatalf("lightweight token without introspection: %+v", d)
	}
	if d := check(p, light); !d.Allow || d.ClientID() != "orders-service" || d.Claims.KeyID != e.idp.CurrentKid() {
		t.Fatalf("lightweight token with introspection: %+v", d)
	}
	// A forged JWT never reaches the endpoint: the signature comes first.
	calls := a.calls.Load()
	parts := strings.Split(light, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if d := check(p, forged); d.Reason != ReasonSignature || a.calls.Load() != calls {
		t.Fatalf("forged JWT: %+v, %d calls", d, a.calls.Load()-calls)
	}
	// A refresh token is refused by its typ, from the answer too.
	a.set(func(a *fakeAS) {
		a.opaque["opaque-refresh"] = map[string]any{"iss": e.idp.Issuer(), "aud": "orders-api", "typ": "Refresh", "exp": now + 60}
	})
	if d := check(p, "opaque-refresh"); d.Reason != ReasonType {
		t.Fatalf("refresh token: %+v", d)
	}
}

func TestIntrospectionEndpointFromDiscovery(t *testing.T) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	p := e.compile(t, func(c *Config) {
		c.Issuers[0].DiscoveryURL = a.srv.URL + "/discovery"
		c.Issuers[0].JWKSURI = e.idp.JWKSURL()
		introConfig(a, func(in *Introspection) { in.Endpoint = "" })(c)
	})
	if d := check(p, e.token(t, "orders-service")); !d.Allow || a.calls.Load() != 1 {
		t.Fatalf("%+v, %d calls", d, a.calls.Load())
	}
}

// TestIntrospectionSharedRedis: two gateway instances sharing a real Redis
// make one introspection call between them; with Redis down, each falls
// back to its own cache and still decides.
func TestIntrospectionSharedRedis(t *testing.T) {
	t.Setenv("TEST_GW_SECRET", gwSecret)
	srv := redistest.Start(t)
	e := newEnv(t, "RS256")
	a := newFakeAS(t)
	node := func() *Policy {
		cfg := e.config()
		introConfig(a, nil)(&cfg)
		cfg.Store.Redis = &store.RedisConfig{Address: srv.Addr, TimeoutMillis: 200}
		pool := store.NewPool()
		t.Cleanup(func() { _ = pool.Close() })
		p, err := Compile(cfg, Deps{Keys: e.keys, Clock: e.clock.Now, Stores: pool})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	n1, n2 := node(), node()
	if n1.SharedStore() == nil || n1.SharedStore() == n2.SharedStore() {
		t.Fatal("each node needs its own client to the shared store")
	}
	tok := e.token(t, "orders-service")
	if d := check(n1, tok); !d.Allow {
		t.Fatal(d)
	}
	if d := check(n2, tok); !d.Allow {
		t.Fatal(d)
	}
	if a.calls.Load() != 1 || n2.IntrospectionStats().SharedHits != 1 {
		t.Fatalf("two nodes: %d introspection calls (want 1), node 2 stats %+v", a.calls.Load(), n2.IntrospectionStats())
	}
	// Revocation is seen by both once the shared answer's age has passed.
	a.set(func(a *fakeAS) { a.revoked[tok] = true })
	e.clock.Advance(31 * time.Second)
	if d := check(n1, tok); d.Reason != ReasonInactive {
		t.Fatal(d)
	}
	if d := check(n2, tok); d.Reason != ReasonInactive || a.calls.Load() != 2 {
		t.Fatalf("inactive answer not shared: %+v, %d calls", d, a.calls.Load())
	}
	// Redis down: each node falls back to asking itself.
	srv.Stop()
	tok2 := e.token(t, "reports-job")
	if d := check(n1, tok2); !d.Allow {
		t.Fatalf("redis down: %+v", d)
	}
	if d := check(n1, tok2); !d.Allow || a.calls.Load() != 3 {
		t.Fatalf("redis down, node cache: %+v, %d calls", d, a.calls.Load())
	}
	if n1.IntrospectionStats().SharedErrors == 0 {
		t.Fatal("the shared store's failure is not counted")
	}
}

func TestIntrospectionConfigErrors(t *testing.T) {
	e := newEnv(t, "RS256")
	t.Setenv("TEST_GW_SECRET", gwSecret)
	for _, tc := range []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Introspection = &Introspection{Enabled: true, ClientSecretEnv: "TEST_GW_SECRET"} }, "introspection.client_id"},
		{func(c *Config) { c.Introspection = &Introspection{Enabled: true, ClientID: "gw"} }, "introspection.client_secret_env"},
		{func(c *Config) {
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretEnv: "KEYCLOAK_JWT_UNSET"}
		}, "introspection.client_secret_env"},
		{func(c *Config) {
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretEnv: "TEST_GW_SECRET", ClientSecretFile: "/x"}
		}, "introspection.client_secret_file"},
		{func(c *Config) {
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretFile: "/nonexistent/secret"}
		}, "introspection.client_secret_file"},
		{func(c *Config) {
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretEnv: "TEST_GW_SECRET", MaxAgeSeconds: -1}
		}, "introspection.max_age_seconds"},
		{func(c *Config) {
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretEnv: "TEST_GW_SECRET", Endpoint: "ftp://x"}
		}, "introspection.endpoint"},
		{func(c *Config) {
			c.Issuers = append(c.Issuers, Issuer{Issuer: "https://other.example/realms/x"})
			c.Introspection = &Introspection{Enabled: true, ClientID: "gw", ClientSecretEnv: "TEST_GW_SECRET"}
		}, "introspection.endpoint"},
		{func(c *Config) { c.Store.Redis = &store.RedisConfig{Address: "no-port"} }, "store.redis.address"},
	} {
		cfg := e.config()
		tc.edit(&cfg)
		err := cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
		if err != nil && strings.Contains(err.Error(), gwSecret) {
			t.Error("an error shows the secret")
		}
	}
	// Off (Kong sends records of nulls): nothing is checked.
	cfg := e.config()
	cfg.Introspection = &Introspection{}
	cfg.Store.Redis = &store.RedisConfig{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// A route may turn off what the shared requirements turn on.
	on := Requirements{Introspection: &Introspection{Enabled: true}}
	off := Requirements{Introspection: &Introspection{}}
	if got := off.Over(on); got.Introspection.Enabled {
		t.Fatal("a route's introspection {enabled: false} does not turn it off")
	}
}

// BenchmarkIntrospection: what introspection adds per request. cached: the
// answer from this node's cache (JWT: plus the verified-token cache);
// shared: from Redis (a loopback round trip); uncached: a POST to an
// endpoint on loopback (the floor: a real one adds the network and the
// issuer's own time).
func BenchmarkIntrospection(b *testing.B) {
	b.Setenv("TEST_GW_SECRET", gwSecret)
	e := newEnv(b, "RS256")
	a := newFakeAS(b)
	now := e.clock.Now().Unix()
	a.set(func(a *fakeAS) {
		a.opaque["opaque-bench"] = map[string]any{"iss": e.idp.Issuer(), "aud": "orders-api", "azp": "orders-service",
			"typ": "Bearer", "exp": now + 3600, "scope": "orders:read"}
	})
	tok := e.token(b, "orders-service", testidp.WithTTL(time.Hour))
	zero := 0
	run := func(name string, p *Policy, tok string) {
		b.Run(name, func(b *testing.B) {
			check(p, tok)
			b.ReportAllocs()
			for b.Loop() {
				if d := check(p, tok); !d.Allow {
					b.Fatal(d)
				}
			}
		})
	}
	run("jwt/no-introspection", e.compile(b, nil), tok)
	run("jwt/cached", e.compile(b, introConfig(a, nil)), tok)
	run("opaque/cached", e.compile(b, introConfig(a, nil)), "opaque-bench")
	run("opaque/uncached", e.compile(b, introConfig(a, func(in *Introspection) { in.CacheSize = &zero })), "opaque-bench")
	run("jwt/uncached", e.compile(b, introConfig(a, func(in *Introspection) { in.CacheSize = &zero })), tok)
	if _, err := exec.LookPath("redis-server"); err == nil {
		srv := redistest.Start(b)
		p := e.compile(b, func(c *Config) {
			introConfig(a, func(in *Introspection) { in.CacheSize = &zero })(c)
			c.Store.Redis = &store.RedisConfig{Address: srv.Addr}
		})
		run("opaque/shared-redis", p, "opaque-bench")
	}
}
