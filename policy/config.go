package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

// Defaults of Config.
const (
	DefaultLeewaySeconds  = 60
	DefaultMaxTokenBytes  = 8 << 10
	DefaultTokenCacheSize = 10000
	MatchAll              = "all"
	MatchAny              = "any"
	TypeBearer            = "Bearer" // Keycloak: the "typ" claim of access tokens
	TypeDPoP              = "DPoP"   // Keycloak: the "typ" claim of DPoP-bound access tokens
	TypeATJWT             = "at+jwt" // RFC 9068: the "typ" header of access tokens
	// TypeUntyped accepts access tokens that declare no type: no "typ"
	// claim, and header typ "JWT" or none (most issuers other than
	// Keycloak before RFC 9068). Never a default: see typeAccepted.
	TypeUntyped = "untyped"
)

// Requirements are what a token must carry to be accepted: who issued it,
// for whom, which client sent it and what it may do. They are the fields a
// sidecar route may override (a route's field replaces the shared one when
// set) and, flattened, part of the Kong plugin's configuration. A new claim
// check adds its field here and its rule in compileRules and claimRules.
type Requirements struct {
	// Issuers trusted, each with where its keys come from. Required.
	Issuers []Issuer `json:"issuers"`
	// Audiences: the token's "aud" must contain at least one. Required.
	Audiences []string `json:"audiences"`
	// AllowedClients, when set, is an allow-list of client ids (the "azp"
	// claim, else "client_id").
	AllowedClients []string `json:"allowed_clients"`
	// TokenTypes accepted: "Bearer" (Keycloak's "typ" claim), "at+jwt"
	// (RFC 9068 header typ) and, only when listed, "untyped" (no typ claim,
	// header typ "JWT" or none: issuers that are not Keycloak). Default
	// Bearer and at+jwt.
	TokenTypes []string `json:"token_types"`
	// ScopesRequired from the "scope" claim (or "scp"), matched per ScopesMatch ("all" default, or "any").
	ScopesRequired []string `json:"scopes_required"`
	ScopesMatch    string   `json:"scopes_match"`
	// RealmRolesRequired from realm_access.roles, matched per RealmRolesMatch.
	RealmRolesRequired []string `json:"realm_roles_required"`
	RealmRolesMatch    string   `json:"realm_roles_match"`
	// ClientRolesRequired as "client:role" from resource_access.<client>.roles.
	ClientRolesRequired []string `json:"client_roles_required"`
	ClientRolesMatch    string   `json:"client_roles_match"`
	// Tenants, when set, is an allow-list of tenants: the realm an issuer
	// pattern (issuers[].issuer with {tenant}) matched in the token's iss.
	// A token of a fixed issuer has no tenant and is refused.
	Tenants []string `json:"tenants"`
	// Introspection, when enabled, asks the issuer (RFC 7662) whether the
	// token is active and checks the claims of its answer (introspect.go).
	Introspection *Introspection `json:"introspection"`
}

// Config is the engine's raw configuration, as operators write it (Kong
// plugin config, sidecar YAML). Field names follow Kong's snake_case. Zero
// values mean "default"; Compile validates and applies defaults.
type Config struct {
	// Requirements are flattened into Config by encoding/json (and YAML).
	Requirements
	// Algorithms allowed (default ["RS256"]); HMAC and "none" are never allowed.
	Algorithms []string `json:"algorithms"`
	// LeewaySeconds tolerated on exp/nbf/iat (default 60; 0 allowed).
	LeewaySeconds *int `json:"leeway_seconds"`
	// MaxTokenBytes refuses longer tokens before any parsing (default 8192).
	MaxTokenBytes int `json:"max_token_bytes"`
	// TokenCacheSize bounds the verified-token cache (default 10000; 0 turns it off).
	TokenCacheSize *int `json:"token_cache_size"`
	// JWKS fetch and cache settings, shared by every issuer of this config.
	JWKS JWKSConfig `json:"jwks"`
	// Store is shared by gateway nodes (introspection answers, replay marks).
	Store StoreConfig `json:"store"`
}

// Issuer is one trusted token issuer (a Keycloak realm), or with
// {tenant} in Issuer a pattern of many (a realm per tenant).
type Issuer struct {
	// Issuer is the exact "iss" of its tokens, e.g.
	// https://sso.example.com/realms/prod; or a pattern such as
	// https://sso.example.com/realms/{tenant}, whose realms are discovered
	// on first use (DiscoveryURL and JWKSURI then hold {tenant} too).
	Issuer string `json:"issuer"`
	// DiscoveryURL overrides where the discovery document is fetched.
	DiscoveryURL string `json:"discovery_url"`
	// JWKSURI fetches keys from this URL directly, skipping discovery.
	JWKSURI string `json:"jwks_uri"`
	// TenantAllowList or TenantRegex (one of them, for a pattern only):
	// the tenants whose realms may be discovered; the regex (RE2) must
	// match the whole tenant.
	TenantAllowList []string `json:"tenant_allow_list"`
	TenantRegex     string   `json:"tenant_regex"`
	// MaxTenants bounds the realms of the pattern held at once (default
	// 1000); TenantIdleSeconds drops a realm unused that long (default
	// 3600); TenantDiscoveriesPerMinute bounds the new realms discovered
	// per minute (default 60); TenantAbsentSeconds is how long a realm
	// whose discovery failed is refused without asking again (default 300).
	MaxTenants                 int `json:"max_tenants"`
	TenantIdleSeconds          int `json:"tenant_idle_seconds"`
	TenantDiscoveriesPerMinute int `json:"tenant_discoveries_per_minute"`
	TenantAbsentSeconds        int `json:"tenant_absent_seconds"`
}

// isPattern reports whether the issuer is a pattern of realms.
func (is Issuer) isPattern() bool { return strings.Contains(is.Issuer, jwks.TenantPlaceholder) }

// tenantSpec compiles a pattern issuer, collecting every error.
func (is Issuer) tenantSpec(field, iss string, cfg jwks.Config) (jwks.TenantSpec, []error) {
	var errs []error
	bound := func(name string, v, maxV int) int {
		if v < 0 || v > maxV {
			errs = append(errs, cfgErr(field+"."+name, "must be between 0 (default) and %d, got %d", maxV, v))
			return 0
		}
		return v
	}
	s := time.Second
	t := jwks.TenantSpec{Issuer: iss, DiscoveryURL: is.DiscoveryURL, JWKSURI: is.JWKSURI,
		Allow: is.TenantAllowList, Pattern: is.TenantRegex, Config: cfg,
		MaxTenants:           bound("max_tenants", is.MaxTenants, 1_000_000),
		IdleAfter:            time.Duration(bound("tenant_idle_seconds", is.TenantIdleSeconds, maxJWKSSeconds)) * s,
		DiscoveriesPerMinute: bound("tenant_discoveries_per_minute", is.TenantDiscoveriesPerMinute, 100_000),
		AbsentFor:            time.Duration(bound("tenant_absent_seconds", is.TenantAbsentSeconds, maxJWKSSeconds)) * s,
	}
	if len(errs) == 0 {
		if err := t.Validate(); err != nil {
			errs = append(errs, cfgErr(field, "%s", strings.TrimPrefix(err.Error(), jwks.ErrInvalidSpec.Error()+": ")))
		}
	}
	return t, errs
}

// tenantFields names the fields that only a pattern may set.
func (is Issuer) tenantFields() []string {
	var set []string
	if is.TenantAllowList != nil {
		set = append(set, "tenant_allow_list")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"tenant_regex", is.TenantRegex != ""}, {"max_tenants", is.MaxTenants != 0},
		{"tenant_idle_seconds", is.TenantIdleSeconds != 0}, {"tenant_discoveries_per_minute", is.TenantDiscoveriesPerMinute != 0},
		{"tenant_absent_seconds", is.TenantAbsentSeconds != 0}} {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// JWKSConfig is the operator-facing form of jwks.Config (seconds and bytes).
type JWKSConfig struct {
	MinRefreshIntervalSeconds int    `json:"min_refresh_interval_seconds"`
	DefaultTTLSeconds         int    `json:"default_ttl_seconds"`
	MinTTLSeconds             int    `json:"min_ttl_seconds"`
	MaxTTLSeconds             int    `json:"max_ttl_seconds"`
	MaxStaleSeconds           int    `json:"max_stale_seconds"`
	FetchTimeoutSeconds       int    `json:"fetch_timeout_seconds"`
	MaxResponseBytes          int    `json:"max_response_bytes"`
	CAFile                    string `json:"ca_file"`
	InsecureSkipVerify        bool   `json:"insecure_skip_verify"`
}

func (j JWKSConfig) toJWKS() jwks.Config {
	s := func(n int) time.Duration { return time.Duration(n) * time.Second }
	return jwks.Config{
		MinRefreshInterval: s(j.MinRefreshIntervalSeconds),
		DefaultTTL:         s(j.DefaultTTLSeconds),
		MinTTL:             s(j.MinTTLSeconds),
		MaxTTL:             s(j.MaxTTLSeconds),
		MaxStale:           s(j.MaxStaleSeconds),
		FetchTimeout:       s(j.FetchTimeoutSeconds),
		MaxResponseBytes:   int64(j.MaxResponseBytes),
		CAFile:             j.CAFile,
		InsecureSkipVerify: j.InsecureSkipVerify,
	}
}

// Algorithms the engine can verify: the one table, in jwks.
var supportedAlgs = jwks.AlgorithmNames()

// ConfigError names the field that is wrong.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

func cfgErr(field, format string, a ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// requirement is a compiled "these values, all or any" rule.
type requirement struct {
	values []string
	any    bool
}

func (r requirement) satisfiedBy(have []string) bool {
	if len(r.values) == 0 {
		return true
	}
	for _, want := range r.values {
		found := contains(have, want)
		if r.any && found {
			return true
		}
		if !r.any && !found {
			return false
		}
	}
	return !r.any
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func compileMatch(field, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", MatchAll:
		return false, nil
	case MatchAny:
		return true, nil
	}
	return false, cfgErr(field, "must be %q or %q, got %q", MatchAll, MatchAny, v)
}

func nonEmpty(field string, list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for i, v := range list {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, cfgErr(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
		}
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Validate compiles nothing but reports every configuration error (joined
// with errors.Join, each a *ConfigError naming its field).
func (c Config) Validate() error {
	_, err := c.compileRules()
	return err
}

// rules is the compiled, key-independent part of a Config.
type rules struct {
	issuers      []jwks.Spec
	patterns     []jwks.TenantSpec
	tenants      []string
	audiences    []string
	clients      []string
	algs         []string
	acceptBearer bool
	acceptATJWT  bool
	acceptUntyp  bool
	scopes       requirement
	realmRoles   requirement
	clientRoles  []clientRole
	clientAny    bool
	leeway       int64
	maxBytes     int
	cacheSize    int
	intro        *introSpec         // nil: no introspection
	redis        *store.RedisConfig // nil: no shared store
}

type clientRole struct{ client, role string }

// maxJWKSSeconds bounds every jwks.*_seconds field (a year): larger values
// are mistakes, and far larger ones would overflow time.Duration and wrap to
// a tiny interval.
const maxJWKSSeconds = 365 * 24 * 3600

// check validates the JWKS settings in the operator's terms: each field by
// its own name and unit, and the relation between min and max TTL after the
// defaults apply. jwks.Config.Validate then has nothing left to refuse.
func (j JWKSConfig) check() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"min_refresh_interval_seconds", j.MinRefreshIntervalSeconds},
		{"default_ttl_seconds", j.DefaultTTLSeconds},
		{"min_ttl_seconds", j.MinTTLSeconds},
		{"max_ttl_seconds", j.MaxTTLSeconds},
		{"max_stale_seconds", j.MaxStaleSeconds},
		{"fetch_timeout_seconds", j.FetchTimeoutSeconds},
	} {
		if f.v < 0 || f.v > maxJWKSSeconds {
			errs = append(errs, cfgErr("jwks."+f.name, "must be between 0 (default) and %d, got %d", maxJWKSSeconds, f.v))
		}
	}
	if j.MaxResponseBytes < 0 {
		errs = append(errs, cfgErr("jwks.max_response_bytes", "must not be negative, got %d", j.MaxResponseBytes))
	}
	if len(errs) > 0 {
		return errs
	}
	orDef := func(v int, def time.Duration) int {
		if v == 0 {
			return int(def / time.Second)
		}
		return v
	}
	minTTL, maxTTL := orDef(j.MinTTLSeconds, jwks.DefaultMinTTL), orDef(j.MaxTTLSeconds, jwks.DefaultMaxTTL)
	if minTTL > maxTTL {
		note := func(set int) string {
			if set == 0 {
				return ", the default"
			}
			return ""
		}
		field := "jwks.min_ttl_seconds"
		if j.MinTTLSeconds == 0 {
			field = "jwks.max_ttl_seconds"
		}
		return []error{cfgErr(field, "jwks.min_ttl_seconds (%d%s) is greater than jwks.max_ttl_seconds (%d%s)",
			minTTL, note(j.MinTTLSeconds), maxTTL, note(j.MaxTTLSeconds))}
	}
	return nil
}

// compileRules compiles the key-independent rules, collecting every error.
func (c Config) compileRules() (*rules, error) {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	r := &rules{}
	errs = append(errs, c.JWKS.check()...)
	jwksOK := len(errs) == 0
	if len(c.Issuers) == 0 {
		add(cfgErr("issuers", "at least one trusted issuer is required"))
	}
	seen := map[string]bool{}
	for i, is := range c.Issuers {
		field := fmt.Sprintf("issuers[%d]", i)
		iss := strings.TrimSpace(is.Issuer)
		if iss == "" {
			add(cfgErr(field+".issuer", "is required (the exact iss claim of the realm's tokens)"))
			continue
		}
		if strings.Contains(iss, "/realms/") && strings.HasSuffix(iss, "/") {
			add(cfgErr(field+".issuer", "%q ends with '/': a Keycloak realm's iss never does, so no token would match; write %q",
				iss, strings.TrimRight(iss, "/")))
			continue
		}
		if seen[iss] {
			add(cfgErr(field+".issuer", "%q is listed twice", iss))
			continue
		}
		seen[iss] = true
		cfg := c.JWKS.toJWKS()
		if !jwksOK {
			cfg = jwks.Config{} // already reported in the operator's terms
		}
		if is.isPattern() {
			t, terrs := is.tenantSpec(field, iss, cfg)
			errs = append(errs, terrs...)
			if len(terrs) == 0 {
				r.patterns = append(r.patterns, t)
			}
			continue
		}
		if f := is.tenantFields(); len(f) > 0 {
			add(cfgErr(field+"."+f[0], "is only for an issuer pattern (an issuer holding %s)", jwks.TenantPlaceholder))
			continue
		}
		spec := jwks.Spec{Issuer: iss, DiscoveryURL: is.DiscoveryURL, JWKSURI: is.JWKSURI, Config: cfg}
		if err := spec.Validate(); err != nil {
			add(cfgErr(field, "%s", strings.TrimPrefix(err.Error(), jwks.ErrInvalidSpec.Error()+": ")))
			continue
		}
		r.issuers = append(r.issuers, spec)
	}
	var err error
	r.audiences, err = nonEmpty("audiences", c.Audiences)
	add(err)
	if err == nil && len(r.audiences) == 0 {
		add(cfgErr("audiences", "at least one audience is required; Keycloak adds the API to \"aud\" "+
			"only with an Audience mapper (client scope) — see the README"))
	}
	r.clients, err = nonEmpty("allowed_clients", c.AllowedClients)
	add(err)
	r.algs, err = nonEmpty("algorithms", c.Algorithms)
	add(err)
	if len(r.algs) == 0 {
		r.algs = []string{"RS256"}
	}
	for i, a := range r.algs {
		if alg, ok := jwks.LookupAlgorithm(a); ok {
			r.algs[i] = alg.Name // "Ed25519" is EdDSA
			continue
		}
		why := "not supported"
		if strings.HasPrefix(strings.ToUpper(a), "HS") || strings.EqualFold(a, "none") {
			why = "never allowed (a shared secret or no signature cannot authenticate a realm's token)"
		}
		add(cfgErr(fmt.Sprintf("algorithms[%d]", i), "%q is %s; choose from %v", a, why, supportedAlgs))
	}
	types, err := nonEmpty("token_types", c.TokenTypes)
	add(err)
	if len(types) == 0 {
		types = []string{TypeBearer, TypeATJWT}
	}
	for i, t := range types {
		switch {
		case strings.EqualFold(t, TypeBearer):
			r.acceptBearer = true
		case strings.EqualFold(t, TypeATJWT):
			r.acceptATJWT = true
		case strings.EqualFold(t, TypeUntyped):
			r.acceptUntyp = true
		default:
			add(cfgErr(fmt.Sprintf("token_types[%d]", i), "must be %q, %q or %q, got %q", TypeBearer, TypeATJWT, TypeUntyped, t))
		}
	}
	r.scopes.values, err = nonEmpty("scopes_required", c.ScopesRequired)
	add(err)
	for i, s := range r.scopes.values {
		if strings.ContainsAny(s, " \t\"\\") {
			add(cfgErr(fmt.Sprintf("scopes_required[%d]", i), "%q: a scope has no spaces, quotes or backslashes", s))
		}
	}
	r.scopes.any, err = compileMatch("scopes_match", c.ScopesMatch)
	add(err)
	r.realmRoles.values, err = nonEmpty("realm_roles_required", c.RealmRolesRequired)
	add(err)
	r.realmRoles.any, err = compileMatch("realm_roles_match", c.RealmRolesMatch)
	add(err)
	crs, err := nonEmpty("client_roles_required", c.ClientRolesRequired)
	add(err)
	for i, cr := range crs {
		client, role, ok := strings.Cut(cr, ":")
		if !ok || client == "" || role == "" {
			add(cfgErr(fmt.Sprintf("client_roles_required[%d]", i), "%q must be written client:role", cr))
			continue
		}
		r.clientRoles = append(r.clientRoles, clientRole{client, role})
	}
	r.clientAny, err = compileMatch("client_roles_match", c.ClientRolesMatch)
	add(err)
	r.tenants, err = nonEmpty("tenants", c.Tenants)
	add(err)
	if err == nil && len(r.tenants) > 0 && len(r.patterns) == 0 && len(c.Issuers) > 0 {
		add(cfgErr("tenants", "requires an issuer pattern (an issuer holding %s): tokens of fixed issuers have no tenant", jwks.TenantPlaceholder))
	}
	r.leeway = DefaultLeewaySeconds
	if c.LeewaySeconds != nil {
		if *c.LeewaySeconds < 0 || *c.LeewaySeconds > 3600 {
			add(cfgErr("leeway_seconds", "must be between 0 and 3600, got %d", *c.LeewaySeconds))
		}
		r.leeway = int64(*c.LeewaySeconds)
	}
	r.maxBytes = DefaultMaxTokenBytes
	if c.MaxTokenBytes != 0 {
		if c.MaxTokenBytes < 256 || c.MaxTokenBytes > 1<<20 {
			add(cfgErr("max_token_bytes", "must be between 256 and 1048576, got %d", c.MaxTokenBytes))
		}
		r.maxBytes = c.MaxTokenBytes
	}
	r.cacheSize = DefaultTokenCacheSize
	if c.TokenCacheSize != nil {
		if *c.TokenCacheSize < 0 || *c.TokenCacheSize > 10_000_000 {
			add(cfgErr("token_cache_size", "must be between 0 and 10000000, got %d", *c.TokenCacheSize))
		}
		r.cacheSize = *c.TokenCacheSize
	}
	errs = append(errs, c.compileStore(r)...)
	errs = append(errs, c.compileIntrospection(r)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}
