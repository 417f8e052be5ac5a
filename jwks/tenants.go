package jwks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TenantPlaceholder marks the tenant (realm) part of an issuer pattern.
const TenantPlaceholder = "{tenant}"

// Defaults of TenantSpec.
const (
	DefaultMaxTenants           = 1000
	DefaultTenantIdle           = time.Hour
	DefaultDiscoveriesPerMinute = 60
	DefaultTenantAbsent         = 5 * time.Minute
)

// maxTenantBytes bounds the tenant part of an issuer.
const maxTenantBytes = 255

// Errors of TenantSet.Source. All mean "deny".
var (
	// ErrTenantAbsent: the realm's discovery or JWKS fetch failed recently
	// (it does not exist, or cannot be reached); it is not tried again until
	// TenantSpec.AbsentFor has passed.
	ErrTenantAbsent = errors.New("realm unknown to its issuer")
	// ErrDiscoveryLimit: DiscoveriesPerMinute new realms were already
	// discovered in this minute.
	ErrDiscoveryLimit = errors.New("too many new realms discovered in the last minute")
	// ErrTooManyTenants: MaxTenants realms are held and none is idle.
	ErrTooManyTenants = errors.New("too many realms held, none idle")
)

// TenantSpec is an issuer pattern: one key source per realm, discovered on
// first use. Issuer holds TenantPlaceholder once, e.g.
// https://sso.example.com/realms/{tenant}; DiscoveryURL and JWKSURI, when
// set, hold it too. A tenant is 1-255 characters of A-Z a-z 0-9 . _ ~ -
// (nothing that changes a URL's structure) and must be in Allow, or match
// Pattern as a whole (exactly one of them is set).
type TenantSpec struct {
	Issuer, DiscoveryURL, JWKSURI string
	Allow                         []string
	Pattern                       string // RE2, matched against the whole tenant
	// MaxTenants bounds the realms held at once. At the bound, the least
	// recently used realm is dropped if it has been idle for IdleAfter;
	// otherwise a new realm is refused.
	MaxTenants int
	// IdleAfter: a realm unused this long is dropped (its keys with it).
	IdleAfter time.Duration
	// DiscoveriesPerMinute bounds the new realms discovered per minute
	// (each costs one discovery and one JWKS request).
	DiscoveriesPerMinute int
	// AbsentFor is how long a realm whose first fetch failed is answered
	// as absent without asking its issuer again.
	AbsentFor time.Duration
	Config
}

func (t TenantSpec) withDefaults() TenantSpec {
	if t.MaxTenants == 0 {
		t.MaxTenants = DefaultMaxTenants
	}
	if t.IdleAfter == 0 {
		t.IdleAfter = DefaultTenantIdle
	}
	if t.DiscoveriesPerMinute == 0 {
		t.DiscoveriesPerMinute = DefaultDiscoveriesPerMinute
	}
	if t.AbsentFor == 0 {
		t.AbsentFor = DefaultTenantAbsent
	}
	return t
}

// Validate checks the pattern, the tenant rule and the bounds.
func (t TenantSpec) Validate() error {
	if n := strings.Count(t.Issuer, TenantPlaceholder); n != 1 {
		return fmt.Errorf("%w: issuer %q must hold %s exactly once", ErrInvalidSpec, t.Issuer, TenantPlaceholder)
	}
	for _, u := range []struct{ field, v string }{{"discovery_url", t.DiscoveryURL}, {"jwks_uri", t.JWKSURI}} {
		if u.v != "" && strings.Count(u.v, TenantPlaceholder) != 1 {
			return fmt.Errorf("%w: %s %q must hold %s exactly once, as the issuer does", ErrInvalidSpec, u.field, u.v, TenantPlaceholder)
		}
	}
	switch {
	case len(t.Allow) == 0 && t.Pattern == "":
		return fmt.Errorf("%w: an issuer pattern needs tenant_allow_list or tenant_regex (which realms may be discovered)", ErrInvalidSpec)
	case len(t.Allow) > 0 && t.Pattern != "":
		return fmt.Errorf("%w: set tenant_allow_list or tenant_regex, not both", ErrInvalidSpec)
	}
	for _, a := range t.Allow {
		if !validTenant(a) {
			return fmt.Errorf("%w: tenant %q: a tenant is 1-%d characters of A-Z a-z 0-9 . _ ~ -", ErrInvalidSpec, a, maxTenantBytes)
		}
	}
	if t.Pattern != "" {
		if _, err := regexp.Compile(t.Pattern); err != nil {
			return fmt.Errorf("%w: tenant_regex: %w", ErrInvalidSpec, err)
		}
	}
	if t.MaxTenants < 0 || t.IdleAfter < 0 || t.DiscoveriesPerMinute < 0 || t.AbsentFor < 0 {
		return fmt.Errorf("%w: tenant bounds must not be negative", ErrInvalidSpec)
	}
	// The pattern with a sample tenant is an ordinary key source.
	return t.spec("t").Validate()
}

// spec is the key source of one tenant.
func (t TenantSpec) spec(tenant string) Spec {
	sub := func(v string) string { return strings.Replace(v, TenantPlaceholder, tenant, 1) }
	return Spec{Issuer: sub(t.Issuer), DiscoveryURL: sub(t.DiscoveryURL), JWKSURI: sub(t.JWKSURI), Config: t.Config}
}

func (t TenantSpec) cacheKey() string {
	d := t.withDefaults()
	return fmt.Sprintf("%s|allow=%q|re=%q|%d|%d|%d|%d", t.spec(TenantPlaceholder).cacheKey(), d.Allow, d.Pattern,
		d.MaxTenants, d.IdleAfter, d.DiscoveriesPerMinute, d.AbsentFor)
}

func validTenant(s string) bool {
	if s == "" || len(s) > maxTenantBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._~-", c) >= 0) {
			return false
		}
	}
	return true
}

// TenantSet holds the realms of one issuer pattern: at most MaxTenants key
// sources, each registered in the process-wide Cache like any other, plus
// a bounded memory of absent realms.
type TenantSet struct {
	spec           TenantSpec
	prefix, suffix string
	allow          map[string]bool
	re             *regexp.Regexp
	cache          *Cache
	client         *http.Client // one for every realm of the set

	mu          sync.Mutex
	realms      map[string]*tenantRealm
	absent      map[string]time.Time // until
	windowStart time.Time
	windowCount int

	discoveries, failures, refusedRate, refusedFull, evictions atomic.Int64
}

type tenantRealm struct {
	src      *Source
	owned    bool         // registered by this set: dropped from the Cache on eviction
	lastUsed atomic.Int64 // unix nanoseconds
	ready    chan struct{}
	err      error // set before ready closes
}

// Tenants returns the shared set for spec, creating it on first use.
// Policies naming the same pattern with the same settings share one set
// (and one bound).
func (c *Cache) Tenants(spec TenantSpec) (*TenantSet, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	key := spec.cacheKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tenants[key]; ok {
		return t, nil
	}
	client, err := c.httpClient(spec.spec("t"))
	if err != nil {
		return nil, err
	}
	i := strings.Index(spec.Issuer, TenantPlaceholder)
	t := &TenantSet{spec: spec, prefix: spec.Issuer[:i], suffix: spec.Issuer[i+len(TenantPlaceholder):],
		cache: c, client: client, realms: map[string]*tenantRealm{}, absent: map[string]time.Time{}}
	if len(spec.Allow) > 0 {
		t.allow = map[string]bool{}
		for _, a := range spec.Allow {
			t.allow[a] = true
		}
	} else {
		t.re = regexp.MustCompile(`^(?:` + spec.Pattern + `)$`)
	}
	c.tenants[key] = t
	return t, nil
}

// Pattern is the issuer pattern.
func (t *TenantSet) Pattern() string { return t.spec.Issuer }

// Match returns the tenant named by iss when iss is the pattern with an
// allowed tenant in place of the placeholder (compared exactly).
func (t *TenantSet) Match(iss string) (string, bool) {
	if len(iss) <= len(t.prefix)+len(t.suffix) || !strings.HasPrefix(iss, t.prefix) || !strings.HasSuffix(iss, t.suffix) {
		return "", false
	}
	tenant := iss[len(t.prefix) : len(iss)-len(t.suffix)]
	if !validTenant(tenant) {
		return "", false
	}
	if t.allow != nil {
		return tenant, t.allow[tenant]
	}
	return tenant, t.re.MatchString(tenant)
}

// Peek returns the held source of tenant, or nil, without discovering
// anything; it counts as a use.
func (t *TenantSet) Peek(tenant string) *Source {
	t.mu.Lock()
	r := t.realms[tenant]
	t.mu.Unlock()
	if r == nil || !r.isReady() || r.err != nil {
		return nil
	}
	r.lastUsed.Store(t.cache.now().UnixNano())
	return r.src
}

func (r *tenantRealm) isReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// Source returns the key source of tenant (which Match returned), with
// its keys loaded: a realm held is returned at once; a new one is
// discovered, within the bounds, and its first fetch waited for (shared by
// concurrent callers). A realm whose first fetch fails is remembered as
// absent for AbsentFor.
func (t *TenantSet) Source(ctx context.Context, tenant string) (*Source, error) {
	now := t.cache.now()
	t.mu.Lock()
	r := t.realms[tenant]
	if r == nil {
		var err error
		if r, err = t.admit(tenant, now); err != nil {
			t.mu.Unlock()
			return nil, err
		}
	}
	t.mu.Unlock()
	r.lastUsed.Store(now.UnixNano())
	select {
	case <-r.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.src, nil
}

// admit starts the discovery of a new realm, within the bounds. t.mu is held.
func (t *TenantSet) admit(tenant string, now time.Time) (*tenantRealm, error) {
	if until, ok := t.absent[tenant]; ok {
		if now.Before(until) {
			return nil, fmt.Errorf("%w (remembered until %s)", ErrTenantAbsent, until.UTC().Format(time.RFC3339))
		}
		delete(t.absent, tenant)
	}
	if now.Sub(t.windowStart) >= time.Minute || now.Before(t.windowStart) {
		t.windowStart, t.windowCount = now, 0
	}
	if t.windowCount >= t.spec.DiscoveriesPerMinute {
		t.refusedRate.Add(1)
		return nil, fmt.Errorf("%w (%d)", ErrDiscoveryLimit, t.spec.DiscoveriesPerMinute)
	}
	t.sweep(now)
	if len(t.realms) >= t.spec.MaxTenants {
		t.refusedFull.Add(1)
		return nil, fmt.Errorf("%w (%d)", ErrTooManyTenants, t.spec.MaxTenants)
	}
	t.windowCount++
	t.discoveries.Add(1)
	spec := t.spec.spec(tenant)
	src, owned := t.source(spec)
	r := &tenantRealm{src: src, owned: owned, ready: make(chan struct{})}
	r.lastUsed.Store(now.UnixNano())
	t.realms[tenant] = r
	go t.load(tenant, r, spec)
	return r, nil
}

// source registers spec's source in the Cache (or reuses the one a static
// issuer registered) with the set's HTTP client.
func (t *TenantSet) source(spec Spec) (*Source, bool) {
	c := t.cache
	key := spec.cacheKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sources[key]; ok {
		return s, false
	}
	s := c.newSource(spec, t.client)
	c.sources[key] = s
	return s, true
}

// load runs the realm's first fetch, detached from any request.
func (t *TenantSet) load(tenant string, r *tenantRealm, spec Spec) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.src.cfg.FetchTimeout+time.Second)
	defer cancel()
	err := r.src.Warm(ctx)
	if err != nil {
		t.failures.Add(1)
		r.err = fmt.Errorf("%w: %s: %w", ErrTenantAbsent, spec.Issuer, err)
		t.mu.Lock()
		if t.realms[tenant] == r {
			delete(t.realms, tenant)
		}
		t.remember(tenant, t.cache.now())
		t.mu.Unlock()
		t.drop(r)
	}
	close(r.ready)
}

// remember marks tenant absent. The memory holds at most MaxTenants names:
// expired ones go first, then the one closest to expiry. t.mu is held.
func (t *TenantSet) remember(tenant string, now time.Time) {
	if len(t.absent) >= t.spec.MaxTenants {
		var soonest string
		for name, until := range t.absent {
			if !now.Before(until) {
				delete(t.absent, name)
			} else if soonest == "" || until.Before(t.absent[soonest]) {
				soonest = name
			}
		}
		if len(t.absent) >= t.spec.MaxTenants {
			delete(t.absent, soonest)
		}
	}
	t.absent[tenant] = now.Add(t.spec.AbsentFor)
}

// sweep drops the realms idle for IdleAfter. t.mu is held.
func (t *TenantSet) sweep(now time.Time) {
	for name, r := range t.realms {
		if r.isReady() && now.Sub(time.Unix(0, r.lastUsed.Load())) >= t.spec.IdleAfter {
			delete(t.realms, name)
			t.evictions.Add(1)
			t.drop(r)
		}
	}
}

// Sweep drops the realms idle for IdleAfter now (new realms sweep too).
func (t *TenantSet) Sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(t.cache.now())
}

// drop removes an evicted or failed realm's source from the Cache when
// this set registered it.
func (t *TenantSet) drop(r *tenantRealm) {
	if !r.owned {
		return
	}
	c := t.cache
	key := r.src.spec.cacheKey()
	c.mu.Lock()
	if c.sources[key] == r.src {
		delete(c.sources, key)
	}
	c.mu.Unlock()
}

// TenantStats is a snapshot of a TenantSet.
type TenantStats struct {
	Pattern     string
	Held        int      // realms held (loading ones included)
	Absent      int      // realms remembered as absent
	Tenants     []string // the held realms, sorted
	Discoveries int64    // new realms discovered (each one discovery + one JWKS request)
	Failures    int64    // of which failed (then remembered as absent)
	RefusedRate int64    // new realms refused by DiscoveriesPerMinute
	RefusedFull int64    // new realms refused by MaxTenants
	Evictions   int64    // idle realms dropped
}

// Stats reports the set's state.
func (t *TenantSet) Stats() TenantStats {
	t.mu.Lock()
	st := TenantStats{Pattern: t.spec.Issuer, Held: len(t.realms), Absent: len(t.absent)}
	for name := range t.realms {
		st.Tenants = append(st.Tenants, name)
	}
	t.mu.Unlock()
	slices.Sort(st.Tenants)
	st.Discoveries, st.Failures = t.discoveries.Load(), t.failures.Load()
	st.RefusedRate, st.RefusedFull, st.Evictions = t.refusedRate.Load(), t.refusedFull.Load(), t.evictions.Load()
	return st
}

// TenantSets lists every issuer pattern's set, for metrics.
func (c *Cache) TenantSets() []*TenantSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*TenantSet, 0, len(c.tenants))
	for _, t := range c.tenants {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *TenantSet) int { return strings.Compare(a.spec.Issuer, b.spec.Issuer) })
	return out
}
