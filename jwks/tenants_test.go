package jwks

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testrealms"
)

func newHost(t *testing.T, clk *clock, realms ...string) *testrealms.Host {
	t.Helper()
	h := testrealms.New(nil, clk.Now)
	t.Cleanup(h.Close)
	for _, r := range realms {
		if _, err := h.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func mustTenants(t *testing.T, c *Cache, spec TenantSpec) *TenantSet {
	t.Helper()
	set, err := c.Tenants(spec)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestTenantMatch(t *testing.T) {
	c := NewCache(Options{})
	allow := mustTenants(t, c, TenantSpec{Issuer: "https://sso.example.com/realms/{tenant}", Allow: []string{"acme", "globex"}})
	re := mustTenants(t, c, TenantSpec{Issuer: "https://sso.example.com/t/{tenant}/x", Pattern: "[a-z][a-z0-9-]*"})
	for _, tc := range []struct {
		set    *TenantSet
		iss    string
		tenant string // "" refused
	}{
		{allow, "https://sso.example.com/realms/acme", "acme"},
		{allow, "https://sso.example.com/realms/globex", "globex"},
		{allow, "https://sso.example.com/realms/initech", ""},
		{allow, "https://sso.example.com/realms/acme/", ""},
		{allow, "https://sso.example.com/realms/Acme", ""},
		{allow, "https://sso.example.com/realms/", ""},
		{allow, "http://sso.example.com/realms/acme", ""},
		{allow, "https://sso.example.com.evil/realms/acme", ""},
		{re, "https://sso.example.com/t/acme-2/x", "acme-2"},
		{re, "https://sso.example.com/t/2acme/x", ""},   // the regex is anchored
		{re, "https://sso.example.com/t/ac/me/x", ""},   // no '/' in a tenant
		{re, "https://sso.example.com/t/a%2fb/x", ""},   // no escapes
		{re, "https://sso.example.com/t/a?b=/x", ""},    // nor query syntax
		{re, "https://sso.example.com/t/acme/x/", ""},   // exact suffix
		{re, "https://sso.example.com/t/acme/x?/x", ""}, // the suffix is not searched for
		{re, "https://sso.example.com/t/" + strings.Repeat("a", 256) + "/x", ""},
	} {
		got, ok := tc.set.Match(tc.iss)
		if !ok {
			got = ""
		}
		if got != tc.tenant {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.iss, got, ok, tc.tenant)
		}
	}
}

func TestTenantSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec TenantSpec
		want string
	}{
		{TenantSpec{Issuer: "https://sso/realms/x", Allow: []string{"a"}}, "exactly once"},
		{TenantSpec{Issuer: "https://sso/{tenant}/{tenant}", Allow: []string{"a"}}, "exactly once"},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}"}, "tenant_allow_list or tenant_regex"},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}", Allow: []string{"a"}, Pattern: "a"}, "not both"},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}", Allow: []string{"a/b"}}, `tenant "a/b"`},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}", Pattern: "("}, "tenant_regex"},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}", Pattern: "a", JWKSURI: "https://sso/certs"}, "jwks_uri"},
		{TenantSpec{Issuer: "sso/realms/{tenant}", Pattern: "a"}, "not an absolute http(s) URL"},
		{TenantSpec{Issuer: "https://sso/realms/{tenant}", Pattern: "a", MaxTenants: -1}, "negative"},
	} {
		if err := tc.spec.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
}

// TestTenantDiscovery: a realm is discovered on first use, through the
// process-wide cache, once; a realm created at run time works at once; a
// realm that does not exist, or whose discovery names another issuer, is
// remembered as absent.
func TestTenantDiscovery(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	h := newHost(t, clk, "acme")
	c := NewCache(Options{Clock: clk.Now})
	set := mustTenants(t, c, TenantSpec{Issuer: h.Pattern(), Pattern: "[a-z]+", AbsentFor: time.Minute})
	if again := mustTenants(t, c, TenantSpec{Issuer: h.Pattern(), Pattern: "[a-z]+", AbsentFor: time.Minute}); again != set {
		t.Fatal("the same pattern made two sets")
	}
	if set.Peek("acme") != nil {
		t.Fatal("Peek discovered")
	}
	src, err := set.Source(ctx, "acme")
	if err != nil || src.Issuer() != h.Issuer("acme") || src.Current() == nil {
		t.Fatalf("acme: %v %v", src, err)
	}
	if set.Peek("acme") != src || !slices.Contains(c.Sources(), src) {
		t.Fatal("acme is not held, or not in the process-wide cache")
	}
	if s2, _ := set.Source(ctx, "acme"); s2 != src {
		t.Fatal("second use made another source")
	}
	if d, _ := h.Discoveries(); d != 1 || h.JWKSFetches() != 1 {
		t.Fatalf("%d discoveries, %d JWKS fetches for one realm", d, h.JWKSFetches())
	}

	// Not (yet) a realm: absent, and not asked again for AbsentFor.
	if _, err := set.Source(ctx, "globex"); !errors.Is(err, ErrTenantAbsent) {
		t.Fatalf("unknown realm: %v", err)
	}
	if _, err := h.Add("globex"); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Source(ctx, "globex"); !errors.Is(err, ErrTenantAbsent) {
		t.Fatalf("absent realm asked again at once: %v", err)
	}
	if _, unknown := h.Discoveries(); unknown != 1 {
		t.Fatalf("%d discoveries of the unknown realm, want 1", unknown)
	}
	clk.Advance(time.Minute)
	if src, err := set.Source(ctx, "globex"); err != nil || src.Current() == nil {
		t.Fatalf("the realm created at run time, after absent_seconds: %v", err)
	}

	// The discovery document must name the token's issuer exactly.
	idp, err := h.Add("initech")
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuerOverride(h.Issuer("initech") + "/")
	if _, err := set.Source(ctx, "initech"); !errors.Is(err, ErrTenantAbsent) || !strings.Contains(err.Error(), "document says issuer") {
		t.Fatalf("issuer mismatch: %v", err)
	}
	st := set.Stats()
	if st.Held != 2 || st.Absent != 1 || st.Discoveries != 4 || st.Failures != 2 || strings.Join(st.Tenants, ",") != "acme,globex" {
		t.Fatalf("stats %+v", st)
	}
}

// TestTenantStorm: 10,000 tokens naming invented realms (20 goroutines)
// cause at most tenant_discoveries_per_minute discoveries per minute, and
// the memory held stays bounded; a realm already held keeps working.
func TestTenantStorm(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	h := newHost(t, clk, "acme")
	c := NewCache(Options{Clock: clk.Now})
	const perMinute, maxTenants = 20, 100
	set := mustTenants(t, c, TenantSpec{Issuer: h.Pattern(), Pattern: "[a-z0-9]+",
		DiscoveriesPerMinute: perMinute, MaxTenants: maxTenants, AbsentFor: 10 * time.Minute})
	acme, err := set.Source(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	storm := func(round int) (refused map[string]int) {
		var mu sync.Mutex
		refused = map[string]int{}
		var wg sync.WaitGroup
		for g := 0; g < 20; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; i < 10_000; i += 20 {
					_, err := set.Source(ctx, fmt.Sprintf("r%dinvented%d", round, i))
					kind := "other"
					switch {
					case errors.Is(err, ErrDiscoveryLimit):
						kind = "rate"
					case errors.Is(err, ErrTenantAbsent):
						kind = "absent"
					case err == nil:
						t.Errorf("invented realm %d accepted", i)
					}
					mu.Lock()
					refused[kind]++
					mu.Unlock()
					if i%500 == 0 {
						if s, err := set.Source(ctx, "acme"); s != acme || err != nil {
							t.Errorf("acme during the storm: %v", err)
						}
					}
				}
			}(g)
		}
		wg.Wait()
		return refused
	}
	before := heap()
	r1 := storm(1)
	d1, _ := h.Discoveries()
	clk.Advance(time.Minute)
	r2 := storm(2)
	d2, _ := h.Discoveries()
	after := heap()
	st := set.Stats()
	grown := int64(after) - int64(before)
	t.Logf("storm 1: 10000 invented realms -> %d discoveries (refused: %v); after 1 min, storm 2: %d more (refused: %v); "+
		"held %d realms, %d remembered absent; heap %+d bytes (%.1f KiB) over both storms",
		d1-1, r1, d2-d1, r2, st.Held, st.Absent, grown, float64(grown)/1024)
	if d1-1 > perMinute || d2-d1 > perMinute {
		t.Fatalf("discoveries per minute: %d, %d; limit %d", d1-1, d2-d1, perMinute)
	}
	if st.Held > maxTenants || st.Absent > maxTenants || len(c.Sources()) > maxTenants+1 {
		t.Fatalf("held %d, absent %d, cache %d sources", st.Held, st.Absent, len(c.Sources()))
	}
	if grown > 4<<20 {
		t.Fatalf("heap grew by %d bytes", grown)
	}
}

// TestTenantEviction: at max_tenants a new realm is refused while every
// held one is in use; an idle one is dropped (from the process-wide cache
// too) to make room.
func TestTenantEviction(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	h := newHost(t, clk, "acme", "globex", "initech")
	c := NewCache(Options{Clock: clk.Now})
	set := mustTenants(t, c, TenantSpec{Issuer: h.Pattern(), Allow: []string{"acme", "globex", "initech"},
		MaxTenants: 2, IdleAfter: 10 * time.Minute})
	for _, r := range []string{"acme", "globex"} {
		if _, err := set.Source(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := set.Source(ctx, "initech"); !errors.Is(err, ErrTooManyTenants) {
		t.Fatalf("third realm with two busy ones held: %v", err)
	}
	globex := set.Peek("globex")
	clk.Advance(6 * time.Minute)
	set.Peek("acme") // acme is used, globex is not
	clk.Advance(5 * time.Minute)
	if _, err := set.Source(ctx, "initech"); err != nil {
		t.Fatalf("initech after globex went idle: %v", err)
	}
	st := set.Stats()
	if st.Evictions != 1 || strings.Join(st.Tenants, ",") != "acme,initech" || slices.Contains(c.Sources(), globex) {
		t.Fatalf("after eviction: %+v", st)
	}
	// Evicted realms come back on use (rediscovered).
	clk.Advance(11 * time.Minute)
	set.Sweep()
	if st := set.Stats(); st.Held != 0 || st.Evictions != 3 {
		t.Fatalf("sweep: %+v", st)
	}
	if _, err := set.Source(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
}

// FuzzTenantMatch: whatever iss is, a match is the pattern with a valid,
// allowed tenant in place of the placeholder, and nothing else.
func FuzzTenantMatch(f *testing.F) {
	for _, s := range []string{"https://sso.example.com/realms/acme", "https://sso.example.com/realms/a/b",
		"https://sso.example.com/realms/", "https://sso.example.com/realms/acme/x", "https://sso.example.com/realms/%61"} {
		f.Add(s)
	}
	set, err := NewCache(Options{}).Tenants(TenantSpec{Issuer: "https://sso.example.com/realms/{tenant}/x", Pattern: "[a-z0-9.~_-]+"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, iss string) {
		tenant, ok := set.Match(iss)
		if !ok {
			return
		}
		if !validTenant(tenant) || "https://sso.example.com/realms/"+tenant+"/x" != iss || strings.ContainsAny(tenant, "/?#%@:") {
			t.Fatalf("Match(%q) = %q", iss, tenant)
		}
	})
}
