package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T) (*testidp.IdP, *Cache, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	idp, err := testidp.New(testidp.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return idp, NewCache(Options{Clock: clk.Now}), clk
}

func mustSource(t *testing.T, c *Cache, spec Spec) *Source {
	t.Helper()
	s, err := c.Source(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ctx = context.Background()

func TestDiscoveryAndKey(t *testing.T) {
	idp, c, _ := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	k, err := s.Key(ctx, idp.CurrentKid(), "RS256")
	if err != nil || k.ID != idp.CurrentKid() {
		t.Fatalf("key: %v %v", k, err)
	}
	if !k.Allows("RS256") || k.Allows("HS256") || k.Allows("ES256") || k.Allows("none") {
		t.Fatal("algorithm fit is wrong")
	}
	// The enc key is published but never usable: its kid is unknown (after
	// the one refetch an unknown kid may cause).
	if _, err := s.Key(ctx, idp.EncKid(), "RS256"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("enc key: %v", err)
	}
	if d, j := idp.Fetches(); d != 1 || j != 2 {
		t.Fatalf("fetches discovery=%d jwks=%d", d, j)
	}
	st := s.Status()
	if !st.Ready || st.Keys != 1 || st.Fetches != 2 {
		t.Fatalf("status %+v", st)
	}
}

func TestSharedSource(t *testing.T) {
	idp, c, _ := setup(t)
	a := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	b := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	other := mustSource(t, c, Spec{Issuer: idp.Issuer(), Config: Config{FetchTimeout: time.Second}})
	if a != b || a == other {
		t.Fatal("equal specs must share one source; different settings must not")
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = b.Key(ctx, idp.CurrentKid(), "RS256") }()
	}
	wg.Wait()
	if _, j := idp.Fetches(); j != 1 {
		t.Fatalf("50 concurrent first requests made %d JWKS fetches", j)
	}
}

func TestJWKSURIOverrideSkipsDiscovery(t *testing.T) {
	idp, c, _ := setup(t)
	// Tokens say "http://localhost:8080/realms/demo"; keys come from where the gateway can reach.
	s := mustSource(t, c, Spec{Issuer: "http://localhost:8080/realms/demo", JWKSURI: idp.JWKSURL()})
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatal(err)
	}
	if d, _ := idp.Fetches(); d != 0 {
		t.Fatal("discovery was called despite jwks_uri")
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	idp, c, _ := setup(t)
	idp.SetIssuerOverride("http://keycloak:8080/realms/demo")
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	_, err := s.Key(ctx, idp.CurrentKid(), "RS256")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "KC_HOSTNAME") {
		t.Fatalf("want a clear mismatch error, got %v", err)
	}
	// The way around it is explicit: fetch the keys from jwks_uri.
	s2 := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: idp.JWKSURL()})
	if _, err := s2.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryURLOverride(t *testing.T) {
	idp, c, _ := setup(t)
	idp.SetIssuerOverride("http://localhost:8080/realms/demo")
	s := mustSource(t, c, Spec{Issuer: "http://localhost:8080/realms/demo", DiscoveryURL: idp.DiscoveryURL()})
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatal(err)
	}
}

func TestRotation(t *testing.T) {
	idp, c, clk := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	old := idp.CurrentKid()
	if _, err := s.Key(ctx, old, "RS256"); err != nil {
		t.Fatal(err)
	}
	newKid, _ := idp.RotateKey()
	// Right after the first fetch, the new kid is served after one refetch
	// (kidwindow_test.go has the window's details).
	if _, err := s.Key(ctx, newKid, "RS256"); err != nil {
		t.Fatalf("new kid after one refetch: %v", err)
	}
	// Removal: gone after the next refresh.
	idp.RemoveKey(old)
	clk.Advance(DefaultTTL)
	if _, err := s.Key(ctx, old, "RS256"); err != nil {
		t.Fatalf("old key before the refresh completes should still be served: %v", err)
	}
	waitFor(t, func() bool { return s.Current().Len() == 1 })
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := s.Key(ctx, old, "RS256"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removed key: %v", err)
	}
}

func TestUnknownKidStorm(t *testing.T) {
	idp, c, clk := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	if err := s.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute) // the next unknown kid may refetch once
	idp.SetJWKSFault(testidp.Fault{Slow: 50 * time.Millisecond})
	var wg sync.WaitGroup
	var unknown atomic.Int64
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := s.Key(ctx, fmt.Sprintf("attacker-%d", i), "RS256"); errors.Is(err, ErrUnknownKey) {
				unknown.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if _, j := idp.Fetches(); j != 2 {
		t.Fatalf("1000 unknown-kid requests made %d JWKS fetches in total, want 2 (warm-up + one refetch)", j)
	}
	if unknown.Load() != 1000 {
		t.Fatalf("%d of 1000 denied as unknown", unknown.Load())
	}
}

func TestOutageServesStaleThenFailsClosed(t *testing.T) {
	idp, c, clk := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer(), Config: Config{MaxStale: time.Hour}})
	kid := idp.CurrentKid()
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []testidp.Fault{{Down: true}, {BadJSON: true}, {Reset: true}} {
		idp.SetFault(f)
		clk.Advance(DefaultTTL + time.Second)
		if _, err := s.Key(ctx, kid, "RS256"); err != nil {
			t.Fatalf("%+v: stale keys not served: %v", f, err)
		}
		failures := s.Status().Failures
		waitFor(t, func() bool { return s.Status().Failures > failures-1 && s.Status().LastError != "" })
	}
	clk.Advance(time.Hour)
	if _, err := s.Key(ctx, kid, "RS256"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("beyond max_stale: %v", err)
	}
	if s.Status().Ready {
		t.Fatal("a source beyond max_stale must not be ready")
	}
	idp.SetFault(testidp.Fault{})
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := s.Key(ctx, kid, "RS256"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestNeverFetchedRealmDown(t *testing.T) {
	idp, c, clk := setup(t)
	idp.SetFault(testidp.Fault{Down: true})
	s := mustSource(t, c, Spec{Issuer: idp.Issuer()})
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	// Rate-limited: a second request within the interval does not call the IdP.
	before, _ := idp.Fetches()
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); !errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
	if after, _ := idp.Fetches(); after != before {
		t.Fatal("refetched within min_refresh_interval")
	}
	clk.Advance(DefaultMinRefreshInterval)
	idp.SetFault(testidp.Fault{})
	if _, err := s.Key(ctx, idp.CurrentKid(), "RS256"); err != nil {
		t.Fatal(err)
	}
}

func TestSlowEndpointBoundedByTimeout(t *testing.T) {
	idp, c, _ := setup(t)
	idp.SetFault(testidp.Fault{Slow: 10 * time.Second})
	s := mustSource(t, c, Spec{Issuer: idp.Issuer(), Config: Config{FetchTimeout: 200 * time.Millisecond}})
	start := time.Now()
	_, err := s.Key(ctx, idp.CurrentKid(), "RS256")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("fetch took %s despite a 200ms timeout", el)
	}
	// A caller's own deadline also bounds its wait.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	s2 := mustSource(t, c, Spec{Issuer: idp.Issuer(), Config: Config{FetchTimeout: 2 * time.Second}})
	if _, err := s2.Key(cctx, idp.CurrentKid(), "RS256"); err == nil {
		t.Fatal("expected an error")
	}
}

func TestOversizedJWKS(t *testing.T) {
	idp, c, _ := setup(t)
	s := mustSource(t, c, Spec{Issuer: idp.Issuer(), JWKSURI: idp.JWKSURL(), Config: Config{MaxResponseBytes: 64 << 10}})
	idp.SetFault(testidp.Fault{HugeBytes: 200 << 10})
	_, err := s.Key(ctx, idp.CurrentKid(), "RS256")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

func TestTTLFromCacheControl(t *testing.T) {
	s := &Source{cfg: Config{}.withDefaults()}
	cases := map[string]time.Duration{
		"":                       DefaultTTL,
		"max-age=600":            600 * time.Second,
		"public, max-age=7200":   2 * time.Hour,
		"max-age=5":              DefaultMinTTL,
		"max-age=99999999999999": DefaultMaxTTL,
		"no-cache":               DefaultMinTTL,
		"max-age=abc":            DefaultTTL,
		"max-age=-5":             DefaultTTL,
	}
	for cc, want := range cases {
		if got := s.ttl(cc); got != want {
			t.Errorf("ttl(%q) = %s, want %s", cc, got, want)
		}
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestParseSet(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rk2, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaJWK := func(kid, use, alg string, k *rsa.PublicKey) string {
		return fmt.Sprintf(`{"kty":"RSA","kid":%q,"use":%q,"alg":%q,"n":%q,"e":"AQAB"}`, kid, use, alg, b64(k.N.Bytes()))
	}
	ecJWK := fmt.Sprintf(`{"kty":"EC","kid":"ec","crv":"P-256","x":%q,"y":%q}`, b64(pad(ek.X)), b64(pad(ek.Y)))
	cases := []struct {
		name    string
		doc     string
		kids    []string
		wantErr bool
	}{
		{"rsa sig", `{"keys":[` + rsaJWK("a", "sig", "RS256", &rk.PublicKey) + `]}`, []string{"a"}, false},
		{"enc key skipped", `{"keys":[` + rsaJWK("a", "sig", "RS256", &rk.PublicKey) + `,` + rsaJWK("e", "enc", "RSA-OAEP", &rk.PublicKey) + `]}`, []string{"a"}, false},
		{"only enc", `{"keys":[` + rsaJWK("e", "enc", "RSA-OAEP", &rk.PublicKey) + `]}`, nil, true},
		{"oct never trusted", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},` + ecJWK + `]}`, []string{"ec"}, false},
		{"small RSA refused", `{"keys":[` + rsaJWK("s", "sig", "RS256", &small.PublicKey) + `]}`, nil, true},
		{"alg mismatch with key type", `{"keys":[` + rsaJWK("x", "sig", "ES256", &rk.PublicKey) + `]}`, nil, true},
		{"unknown kty skipped", `{"keys":[{"kty":"XYZ","kid":"q"},` + ecJWK + `]}`, []string{"ec"}, false},
		{"broken key skipped", `{"keys":[{"kty":"RSA","kid":"b","n":"!!"},` + ecJWK + `]}`, []string{"ec"}, false},
		{"duplicate kid dropped", `{"keys":[` + rsaJWK("d", "sig", "RS256", &rk.PublicKey) + `,` + rsaJWK("d", "sig", "RS256", &rk.PublicKey) + `,` + ecJWK + `]}`, []string{"ec"}, false},
		{"kid published three times dropped", `{"keys":[` + rsaJWK("d", "sig", "RS256", &rk.PublicKey) + `,` + rsaJWK("d", "sig", "RS256", &rk.PublicKey) + `,` + rsaJWK("d", "sig", "RS256", &rk2.PublicKey) + `,` + ecJWK + `]}`, []string{"ec"}, false},
		{"key_ops without verify", `{"keys":[{"kty":"EC","kid":"ec","key_ops":["encrypt"],"crv":"P-256","x":"a","y":"b"}]}`, nil, true},
		{"not JSON", `{"keys":[`, nil, true},
		{"no keys member", `{"foo":[]}`, nil, true},
		{"keys not array", `{"keys":{}}`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseSet([]byte(tc.doc))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want error, got kids %v", set.IDs())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := set.IDs(); fmt.Sprint(got) != fmt.Sprint(tc.kids) {
				t.Fatalf("kids %v, want %v (skipped %v)", got, tc.kids, set.Skipped)
			}
		})
	}
}

func pad(n *big.Int) []byte {
	b := make([]byte, 32)
	return n.FillBytes(b)
}

func TestSpecValidate(t *testing.T) {
	bad := []Spec{
		{},
		{Issuer: "not a url"},
		{Issuer: "https://x", JWKSURI: "file:///etc/passwd"},
		{Issuer: "https://x", DiscoveryURL: "/relative"},
		{Issuer: "https://x", Config: Config{MinTTL: time.Hour, MaxTTL: time.Minute}},
		{Issuer: "https://x", Config: Config{MaxResponseBytes: -1}},
	}
	for i, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("spec %d: want error", i)
		}
	}
	if err := (Spec{Issuer: "my-issuer", JWKSURI: "https://x/certs"}).Validate(); err != nil {
		t.Errorf("a non-URL issuer with jwks_uri is fine: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzParseSet: arbitrary JWKS documents never panic, and whatever comes
// out is only public signature keys.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := ParseSet(b)
		if err != nil {
			return
		}
		for _, k := range set.all() {
			switch k.Public.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey:
			default:
				if !k.Allows("EdDSA") {
					t.Fatalf("unexpected key %T", k.Public)
				}
			}
		}
	})
}
