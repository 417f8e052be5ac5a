// Package policy decides whether a bearer token may pass: it verifies the
// signature with the issuer's keys (package jwks) and checks the claims
// against a compiled configuration. It is the one decision core that every
// adapter (Kong plugin, sidecar) calls; adapters never inspect claims.
package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

// Deps are what a Policy needs from its process.
type Deps struct {
	// Keys is the process-wide key cache. Required.
	Keys *jwks.Cache
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives one line per decision at debug and one per deny at info.
	Logger *zap.Logger
	// TokenCaches, when set, shares verified-token caches between policies
	// of one process (see TokenCaches); when nil each policy has its own.
	TokenCaches *TokenCaches
	// Stores holds the process's shared-store clients (store.redis);
	// store.DefaultPool when nil.
	Stores *store.Pool
}

// Policy is a compiled Config. It is safe for concurrent use.
type Policy struct {
	r       *rules
	sources map[string]*jwks.Source // by issuer
	one     *jwks.Source            // set when exactly one issuer is trusted
	oneIss  string
	// patterns are the issuer patterns: realms discovered on first use.
	patterns []*jwks.TenantSet
	now      func() time.Time
	log      *zap.Logger
	cache    *tokenCache
	headers  headerCache
	scope    string        // required scopes, space-separated, for WWW-Authenticate
	rules    []*claimRule  // the claim rules these rules can fail, in order (neededRules)
	intro    *introspector // nil: no introspection (introspect.go)
	shared   store.Store   // nil: no shared store

	hits, misses atomic.Int64
}

// Compile validates cfg, applies defaults and registers the key sources in
// deps.Keys (without fetching). Errors name the offending field.
func Compile(cfg Config, deps Deps) (*Policy, error) {
	if deps.Keys == nil {
		return nil, errors.New("policy: Deps.Keys is required")
	}
	r, err := cfg.compileRules()
	if err != nil {
		return nil, err
	}
	p := &Policy{r: r, sources: map[string]*jwks.Source{}, now: deps.Clock, log: deps.Logger}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	for i, spec := range r.issuers {
		src, err := deps.Keys.Source(spec)
		if err != nil {
			return nil, cfgErr(fmt.Sprintf("issuers[%d]", i), "%v", err)
		}
		p.sources[spec.Issuer] = src
	}
	for _, spec := range r.patterns {
		set, err := deps.Keys.Tenants(spec)
		if err != nil {
			return nil, cfgErr("issuers", "%s: %v", spec.Issuer, err)
		}
		p.patterns = append(p.patterns, set)
	}
	if len(r.issuers) == 1 {
		p.oneIss = r.issuers[0].Issuer
		p.one = p.sources[p.oneIss]
	}
	switch {
	case r.cacheSize > 0 && deps.TokenCaches != nil:
		p.cache = deps.TokenCaches.get(r.cacheSize)
	case r.cacheSize > 0:
		p.cache = newTokenCache(r.cacheSize)
	}
	p.scope = strings.Join(r.scopes.values, " ")
	p.rules = neededRules(r)
	if err := p.compileShared(r, cfg.JWKS, deps); err != nil {
		return nil, err
	}
	return p, nil
}

// Sources are the key sources this policy trusts.
func (p *Policy) Sources() []*jwks.Source {
	out := make([]*jwks.Source, 0, len(p.sources))
	for _, iss := range p.r.issuers {
		out = append(out, p.sources[iss.Issuer])
	}
	return out
}

// Warm fetches the keys of every trusted issuer, returning the first error.
func (p *Policy) Warm(ctx context.Context) error {
	var first error
	for _, s := range p.Sources() {
		if err := s.Warm(ctx); err != nil && first == nil {
			first = fmt.Errorf("issuer %s: %w", s.Issuer(), err)
		}
	}
	return first
}

// CacheStats reports verified-token cache hits and misses.
func (p *Policy) CacheStats() (hits, misses int64) { return p.hits.Load(), p.misses.Load() }

// Check decides on one bearer token (the bare token, without "Bearer ").
func (p *Policy) Check(ctx context.Context, token string) Decision {
	d := p.check(ctx, token)
	p.logDecision(&d)
	return d
}

func (p *Policy) check(ctx context.Context, token string) Decision {
	if token == "" {
		return deny(http.StatusUnauthorized, "", ReasonNoToken, "Unauthorized", "no bearer token in the request")
	}
	if len(token) > p.r.maxBytes {
		return invalidToken(ReasonTooLarge, "The access token is too large",
			fmt.Sprintf("token of %d bytes exceeds max_token_bytes %d", len(token), p.r.maxBytes))
	}
	now := p.now().Unix()
	if p.intro != nil {
		if opaque, ok := looksOpaque(token); !ok {
			return invalidToken(ReasonMalformed, "The access token is malformed", "neither a JWS nor an RFC 6750 b64token")
		} else if opaque {
			return p.finish(ctx, token, nil, now, false)
		}
	}
	if p.cache != nil {
		// A hit counts only if this policy trusts what verified the entry:
		// the key source it uses for that issuer, and the algorithm.
		if e := p.cache.get(token, now); e != nil && p.heldSource(e.claims.Issuer) == e.src &&
			contains(p.r.algs, e.claims.Algorithm) {
			if set := e.src.Fresh(); set != nil {
				if k, ok := set.Lookup(e.claims.KeyID, e.claims.Algorithm); ok && k == e.key {
					p.hits.Add(1)
					return p.finish(ctx, token, e.claims, now, true)
				}
			}
		}
		p.misses.Add(1)
	}
	pt, err := split(token, &p.headers)
	if err != nil {
		return invalidToken(ReasonMalformed, "The access token is malformed", err.Error())
	}
	h := pt.hdr
	if reason, detail := checkHeader(h); reason != "" {
		return invalidToken(reason, "The access token is not acceptable", detail)
	}
	if !contains(p.r.algs, h.Alg) {
		return invalidToken(ReasonAlgorithm, "The access token is not acceptable",
			fmt.Sprintf("alg %q is not in the allowed algorithms %v", h.Alg, p.r.algs))
	}
	claims, err := decodeClaims(pt.payload, h)
	if err != nil {
		return invalidToken(ReasonMalformed, "The access token is malformed", err.Error())
	}
	src := p.one
	if claims.Issuer != p.oneIss || src == nil {
		src = p.sources[claims.Issuer]
	}
	if src == nil && len(p.patterns) > 0 {
		var d *Decision
		if src, d = p.tenantSource(ctx, claims.Issuer); d != nil {
			return *d
		}
	}
	if src == nil {
		return invalidToken(ReasonIssuer, "The access token was issued by an untrusted issuer",
			fmt.Sprintf("iss %q is not a trusted issuer", claims.Issuer))
	}
	key, err := src.Key(ctx, h.Kid, h.Alg)
	switch {
	case errors.Is(err, jwks.ErrUnknownKey):
		return invalidToken(ReasonUnknownKey, "The access token signature cannot be verified",
			fmt.Sprintf("kid %q is not among the issuer's signature keys (after a refetch, rate-limited)", h.Kid))
	case err != nil:
		d := invalidToken(ReasonKeysUnavailable, "The access token signature cannot be verified",
			fmt.Sprintf("keys of issuer %s unavailable: %v", claims.Issuer, err))
		return d
	}
	if !key.Allows(h.Alg) {
		return invalidToken(ReasonAlgorithm, "The access token is not acceptable",
			fmt.Sprintf("alg %q does not fit key %q (alg %q, %T)", h.Alg, key.ID, key.Alg, key.Public))
	}
	if err := jwks.Verify(h.Alg, key, pt.signingInput, pt.sig); err != nil {
		return invalidToken(ReasonSignature, "The access token signature is invalid",
			fmt.Sprintf("signature check with kid %q failed: %v", key.ID, err))
	}
	d := p.finish(ctx, token, claims, now, false)
	if p.cache != nil && claims.Expiry > now && d.Reason != ReasonExpired {
		// Cache every verified token (also those denied for scope/role: the
		// signature work is done either way; the claim checks rerun on a
		// hit; with introspection, whatever the answer said).
		if d.Allow || d.Status == http.StatusForbidden || d.Introspected {
			p.cache.put(token, &cacheEntry{token: token, claims: claims, key: key, src: src, exp: claims.Expiry})
		}
	}
	return d
}

// checkClaims applies every claim rule; it is cheap and runs on cache hits
// too. cached marks the decision as served by the verified-token cache.
func (p *Policy) checkClaims(c *Claims, now int64, cached bool) Decision {
	d := p.claimRules(c, now)
	d.CachedResult = cached
	if d.Claims != nil && len(p.patterns) > 0 {
		d.Tenant = p.tenantOf(c.Issuer)
	}
	return d
}

// tenantOf is the tenant an issuer pattern matches in iss ("" when none
// does). It discovers nothing: string comparisons only.
func (p *Policy) tenantOf(iss string) string {
	for _, set := range p.patterns {
		if t, ok := set.Match(iss); ok {
			return t
		}
	}
	return ""
}

// heldSource is the key source this policy uses for iss without
// discovering anything: a fixed issuer's, or a pattern's realm already held.
func (p *Policy) heldSource(iss string) *jwks.Source {
	if src := p.sources[iss]; src != nil {
		return src
	}
	for _, set := range p.patterns {
		if t, ok := set.Match(iss); ok {
			return set.Peek(t)
		}
	}
	return nil
}

// tenantSource finds the realm of iss among the issuer patterns,
// discovering it on first use. Before any discovery, a tenant that the
// tenants requirement refuses is denied: a route for one tenant never makes
// the gateway fetch another's keys. A nil decision means src was found (or
// no pattern matched: src nil).
func (p *Policy) tenantSource(ctx context.Context, iss string) (*jwks.Source, *Decision) {
	for _, set := range p.patterns {
		tenant, ok := set.Match(iss)
		if !ok {
			continue
		}
		if len(p.r.tenants) > 0 && !contains(p.r.tenants, tenant) {
			d := invalidToken(ReasonTenant, tenantMessage, tenantDetail(tenant, p.r.tenants))
			return nil, &d
		}
		src, err := set.Source(ctx, tenant)
		if err == nil {
			return src, nil
		}
		var d Decision
		if errors.Is(err, jwks.ErrTenantAbsent) {
			d = invalidToken(ReasonIssuer, "The access token was issued by an untrusted issuer",
				fmt.Sprintf("iss %q: realm %q of pattern %s: %v", iss, tenant, set.Pattern(), err))
		} else {
			d = invalidToken(ReasonKeysUnavailable, "The access token signature cannot be verified",
				fmt.Sprintf("iss %q: realm %q of pattern %s not discovered: %v", iss, tenant, set.Pattern(), err))
		}
		return nil, &d
	}
	return nil, nil
}

const tenantMessage = "The access token's tenant may not call this API"

func tenantDetail(tenant string, allowed []string) string {
	if tenant == "" {
		return fmt.Sprintf("the token has no tenant (its issuer is not a pattern); tenants %s", list(allowed))
	}
	return fmt.Sprintf("tenant %q is not in tenants %s", tenant, list(allowed))
}

// claimRules applies every claim rule of claimRuleList in order; the first
// that fails decides.
func (p *Policy) claimRules(c *Claims, now int64) Decision {
	for _, r := range p.rules {
		if ok, detail := r.eval(p, c, now); !ok {
			return r.deny(p, c, detail)
		}
	}
	d := allow(c)
	d.AcceptedUntil, d.CheckedAt = c.Expiry+p.r.leeway, now
	return d
}

// nonAccessTypes are the "typ" claims of Keycloak's tokens that are not
// access tokens: refresh, offline (a refresh token), ID, serialized ID and
// logout tokens. They are refused whatever the header typ says, and
// whatever token_types lists ("untyped" included).
var nonAccessTypes = [...]string{"Refresh", "Offline", "ID", "Serialized-ID", "Logout"}

func (p *Policy) typeAccepted(c *Claims) bool {
	if c.Type != TypeBearer {
		for _, t := range nonAccessTypes {
			if strings.EqualFold(c.Type, t) {
				return false
			}
		}
	}
	if p.r.acceptATJWT && (strings.EqualFold(c.HeaderType, "at+jwt") || strings.EqualFold(c.HeaderType, "application/at+jwt")) {
		return true
	}
	// Keycloak types a DPoP-bound access token "DPoP" (and binds it with
	// cnf.jkt, whose proof the request layer then requires).
	if p.r.acceptBearer && (c.Type == TypeBearer || c.Type == TypeDPoP && c.Confirmation.JKT != "") {
		return true
	}
	// untyped: nothing declares a type, so nothing may hint at another kind
	// of token either (a header typ such as "logout+jwt", an ID token's
	// nonce or at_hash, a logout token's events).
	return p.r.acceptUntyp && c.Type == "" && c.NotAccessClaim == "" &&
		(c.HeaderType == "" || strings.EqualFold(c.HeaderType, "JWT") || strings.EqualFold(c.HeaderType, "application/jwt"))
}

func (p *Policy) clientRolesOK(c *Claims) bool {
	for _, cr := range p.r.clientRoles {
		found := contains(c.ClientRoles[cr.client], cr.role)
		if p.r.clientAny && found {
			return true
		}
		if !p.r.clientAny && !found {
			return false
		}
	}
	return !p.r.clientAny
}

func intersects(have, want []string) bool {
	for _, h := range have {
		if contains(want, h) {
			return true
		}
	}
	return false
}

func matchName(any bool) string {
	if any {
		return MatchAny
	}
	return MatchAll
}

func (p *Policy) logDecision(d *Decision) {
	lvl := zapcore.DebugLevel
	msg := "token allowed"
	if !d.Allow {
		lvl, msg = zapcore.InfoLevel, "token denied"
	}
	ce := p.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.Int("status", d.Status), zap.String("reason", d.Reason), zap.Bool("cached", d.CachedResult)}
	if d.Detail != "" {
		fields = append(fields, zap.String("detail", d.Detail))
	}
	if c := d.Claims; c != nil {
		fields = append(fields, zap.String("client_id", c.ClientID()), zap.String("iss", c.Issuer),
			zap.String("kid", c.KeyID), zap.String("jti", c.ID))
	}
	ce.Write(fields...)
}
