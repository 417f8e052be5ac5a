package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func TestTokenCacheHitStillChecksClaims(t *testing.T) {
	e := newEnv(t, "RS256")
	read := e.compile(t, func(c *Config) { c.ScopesRequired = []string{"orders:read"} })
	tok := e.token(t, "reports-job", testidp.WithTTL(2*time.Minute))
	if d := check(read, tok); !d.Allow || d.CachedResult {
		t.Fatalf("first check: %+v", d)
	}
	if d := check(read, tok); !d.Allow || !d.CachedResult {
		t.Fatalf("second check should be a cache hit: %+v", d)
	}
	if h, _ := read.CacheStats(); h != 1 {
		t.Fatalf("hits = %d", h)
	}
	// Just before exp: still fine. At exp: the cache must not answer, and the
	// cold path applies the leeway; past exp+leeway it is denied.
	e.clock.Advance(2*time.Minute - time.Second)
	if d := check(read, tok); !d.Allow || !d.CachedResult {
		t.Fatalf("before exp: %+v", d)
	}
	e.clock.Advance(time.Second)
	if d := check(read, tok); !d.Allow || d.CachedResult {
		t.Fatalf("at exp, within leeway, must be re-verified not cached: %+v", d)
	}
	e.clock.Advance(60 * time.Second)
	if d := check(read, tok); d.Allow || d.Reason != ReasonExpired {
		t.Fatalf("past exp+leeway: %+v", d)
	}
}

func TestTokenCacheDeniedScopeIsRecheckedPerPolicy(t *testing.T) {
	e := newEnv(t, "RS256")
	write := e.compile(t, func(c *Config) { c.ScopesRequired = []string{"orders:write"} })
	tok := e.token(t, "reports-job")
	for i := 0; i < 3; i++ {
		if d := check(write, tok); d.Allow || d.Reason != ReasonScope {
			t.Fatalf("round %d: %+v", i, d)
		}
	}
}

func TestTokenCacheRemovedKey(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, nil)
	old := e.idp.CurrentKid()
	tok := e.token(t, "orders-service", testidp.WithTTL(time.Hour))
	if d := check(p, tok); !d.Allow {
		t.Fatal(d.Detail)
	}
	newKid, err := e.idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.idp.RemoveKey(old)
	// Past the JWKS TTL (default max-age=300 from the test IdP): the next
	// request triggers a background refresh; wait for it.
	e.clock.Advance(10 * time.Minute)
	check(p, tok)
	waitFor(t, func() bool {
		ids := e.keys.Sources()[0].Current().IDs()
		return len(ids) == 1 && ids[0] == newKid
	})
	if d := check(p, tok); d.Allow {
		t.Fatalf("token of a removed key still allowed (cached=%v)", d.CachedResult)
	}
	if d := check(p, e.token(t, "orders-service")); !d.Allow {
		t.Fatalf("token of the new key: %s", d.Detail)
	}
}

// When the realm has been unreachable past max_stale, a token verified
// earlier is denied like any other: the cache never outlives the key set.
func TestTokenCacheHitPastMaxStale(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, func(c *Config) { c.JWKS.MaxStaleSeconds = 60 })
	tok := e.token(t, "orders-service", testidp.WithTTL(time.Hour))
	if d := check(p, tok); !d.Allow {
		t.Fatal(d.Detail)
	}
	if d := check(p, tok); !d.Allow || !d.CachedResult {
		t.Fatalf("second check not served by the cache: %+v", d)
	}
	e.idp.SetFault(testidp.Fault{Down: true})
	// Past the key set's TTL (300 s from the test realm) plus max_stale (60 s).
	e.clock.Advance(30 * time.Minute)
	fresh := e.token(t, "orders-service", testidp.WithTTL(time.Hour))
	waitFor(t, func() bool { return check(p, fresh).Reason == ReasonKeysUnavailable })
	if d := check(p, tok); d.Allow || d.Reason != ReasonKeysUnavailable {
		t.Fatalf("cached token past max_stale: allow=%v cached=%v reason=%s", d.Allow, d.CachedResult, d.Reason)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	e := newEnv(t, "EdDSA")
	size := 64
	p := e.compile(t, func(c *Config) { c.TokenCacheSize = &size; c.Algorithms = []string{"EdDSA"} })
	for i := 0; i < 1000; i++ {
		tok := e.token(t, "orders-service", testidp.WithClaim("n", i))
		if d := check(p, tok); !d.Allow {
			t.Fatal(d.Detail)
		}
	}
	if n := p.cache.len(); n > size || n < size/2 {
		t.Fatalf("cache holds %d entries, bound %d", n, size)
	}
}

func TestTokenCacheOff(t *testing.T) {
	e := newEnv(t, "RS256")
	zero := 0
	p := e.compile(t, func(c *Config) { c.TokenCacheSize = &zero })
	tok := e.token(t, "orders-service")
	for i := 0; i < 2; i++ {
		if d := check(p, tok); !d.Allow || d.CachedResult {
			t.Fatalf("%+v", d)
		}
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

func TestWWWAuthenticate(t *testing.T) {
	d := Decision{Status: 401}
	if got := d.WWWAuthenticate("api"); got != `Bearer realm="api"` {
		t.Fatal(got)
	}
	d = Decision{Status: 401, Error: ErrInvalidToken, Message: `bad "quoted"` + "\n"}
	if got := d.WWWAuthenticate(""); got != `Bearer error="invalid_token", error_description="bad quoted"` {
		t.Fatal(got)
	}
	if got := string(d.Body()); got != fmt.Sprintf(`{"message":%q}`, `bad "quoted"`+"\n") {
		t.Fatal(got)
	}
}

// TestSharedTokenCaches: policies sharing caches reuse verifications, but a
// policy never accepts an entry verified under an algorithm or a key source
// it does not trust, and always re-runs its own claim rules.
func TestSharedTokenCaches(t *testing.T) {
	e := newEnv(t, "RS256")
	caches := NewTokenCaches()
	compile := func(edit func(*Config)) *Policy {
		cfg := e.config()
		if edit != nil {
			edit(&cfg)
		}
		p, err := Compile(cfg, Deps{Keys: e.keys, Clock: e.clock.Now, TokenCaches: caches})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := compile(func(c *Config) { c.ScopesRequired = []string{"orders:read"} })
	write := compile(func(c *Config) { c.ScopesRequired = []string{"orders:write"} })
	onlyES := compile(func(c *Config) { c.Algorithms = []string{"ES256"} })
	otherSource := compile(func(c *Config) { c.Issuers[0].JWKSURI = e.idp.JWKSURL() })
	ownSize := 5
	own := compile(func(c *Config) { c.TokenCacheSize = &ownSize })
	if read.cache != write.cache || read.cache == own.cache {
		t.Fatal("policies of one size must share a cache; another size must not")
	}

	tok := e.token(t, "reports-job")
	if d := check(read, tok); !d.Allow || d.CachedResult {
		t.Fatalf("first check: %+v", d)
	}
	if d := check(write, tok); d.Allow || d.Reason != ReasonScope || !d.CachedResult {
		t.Fatalf("another route's rules on a shared hit: %+v", d)
	}
	if d := check(onlyES, tok); d.Allow || d.Reason != ReasonAlgorithm || d.CachedResult {
		t.Fatalf("an entry verified with RS256 must not pass an ES256-only policy: %+v", d)
	}
	if d := check(otherSource, tok); !d.Allow || d.CachedResult {
		t.Fatalf("a policy with another key source must verify for itself: %+v", d)
	}
}

// TestTokenCacheSameSignatureOtherToken: the cache finds entries by the
// token's last bytes (its signature); a token that carries a cached token's
// signature under another header or payload must be a miss, verified, and
// refused, and must not disturb the cached entry.
func TestTokenCacheSameSignatureOtherToken(t *testing.T) {
	e := newEnv(t, "RS256")
	p := e.compile(t, func(c *Config) { c.ScopesRequired = []string{"orders:read"} })
	tok := e.token(t, "orders-service", testidp.WithTTL(time.Hour))
	other := e.token(t, "reports-job", testidp.WithTTL(time.Hour))
	if d := check(p, tok); !d.Allow {
		t.Fatal(d.Detail)
	}
	parts := strings.Split(tok, ".")
	otherParts := strings.Split(other, ".")
	for name, forged := range map[string]string{
		"another payload":     parts[0] + "." + otherParts[1] + "." + parts[2],
		"another header":      strings.TrimRight(parts[0], "=") + "." + parts[1] + "." + parts[2] + "",
		"one payload byte":    parts[0] + "." + flipFirst(parts[1]) + "." + parts[2],
		"a longer token":      parts[0] + "." + parts[1] + "x." + parts[2],
		"only the signature":  parts[2],
		"signature's end":     tok[len(tok)-keyBytes:],
		"a prefix then token": "x" + tok,
	} {
		if forged == tok {
			continue
		}
		d := check(p, forged)
		if d.Allow || d.CachedResult {
			t.Errorf("%s: %+v", name, d)
		}
	}
	if d := check(p, tok); !d.Allow || !d.CachedResult {
		t.Fatalf("the real token after the forgeries: %+v", d)
	}
}

func flipFirst(s string) string {
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	return string(c) + s[1:]
}
