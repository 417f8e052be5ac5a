// Package jwks fetches, caches and refreshes the signing keys of trusted
// token issuers (Keycloak realms or any OIDC provider).
//
// One Cache serves a whole process: every policy that names the same key
// source with the same fetch settings shares one Source, so a Kong node
// running many plugin instances for one realm fetches its keys once.
package jwks

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultTTL                = 5 * time.Minute
	DefaultMinTTL             = 1 * time.Minute
	DefaultMaxTTL             = 24 * time.Hour
	DefaultMaxStale           = 24 * time.Hour
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxResponseBytes   = 1 << 20
)

// Config holds the fetch and cache settings of one key source. Zero values
// mean "use the default".
type Config struct {
	// MinRefreshInterval bounds how often keys are refetched because tokens
	// name unknown kids (one such fetch per interval; a start-up or scheduled
	// fetch does not delay the next one), and how often a failing or never
	// fetched realm is retried.
	MinRefreshInterval time.Duration
	// DefaultTTL is used when the JWKS response carries no Cache-Control max-age.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL clamp the max-age the issuer asks for.
	MinTTL, MaxTTL time.Duration
	// MaxStale is how long the last good key set keeps being served past its
	// TTL while the issuer cannot be reached or returns garbage.
	MaxStale time.Duration
	// FetchTimeout bounds one discovery or JWKS request.
	FetchTimeout time.Duration
	// MaxResponseBytes bounds a discovery or JWKS response body.
	MaxResponseBytes int64
	// CAFile is a PEM bundle of CAs trusted for HTTPS key fetches, in
	// addition to none: when set, only these CAs are trusted.
	CAFile string
	// InsecureSkipVerify disables TLS verification. Development only; logged
	// at warn level whenever a source using it is created.
	InsecureSkipVerify bool
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MinRefreshInterval, DefaultMinRefreshInterval)
	def(&c.DefaultTTL, DefaultTTL)
	def(&c.MinTTL, DefaultMinTTL)
	def(&c.MaxTTL, DefaultMaxTTL)
	def(&c.MaxStale, DefaultMaxStale)
	def(&c.FetchTimeout, DefaultFetchTimeout)
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return c
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"min_refresh_interval", c.MinRefreshInterval},
		{"default_ttl", c.DefaultTTL},
		{"min_ttl", c.MinTTL},
		{"max_ttl", c.MaxTTL},
		{"max_stale", c.MaxStale},
		{"fetch_timeout", c.FetchTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("jwks.%s: must not be negative (got %s)", d.name, d.v)
		}
	}
	if c.MaxResponseBytes < 0 {
		return fmt.Errorf("jwks.max_response_bytes: must not be negative (got %d)", c.MaxResponseBytes)
	}
	d := c.withDefaults()
	if d.MinTTL > d.MaxTTL {
		return fmt.Errorf("jwks.min_ttl (%s) is greater than jwks.max_ttl (%s)", d.MinTTL, d.MaxTTL)
	}
	return nil
}

// Spec names one key source: the issuer string that tokens carry, and where
// its keys are fetched from.
type Spec struct {
	// Issuer is the exact "iss" value of tokens, e.g. http://localhost:8080/realms/demo.
	Issuer string
	// DiscoveryURL overrides where the OpenID discovery document is read
	// (default Issuer + "/.well-known/openid-configuration"). Use it when the
	// gateway reaches the issuer under another host name than clients do.
	DiscoveryURL string
	// JWKSURI, when set, is fetched directly and discovery is skipped.
	JWKSURI string
	Config
}

// ErrInvalidSpec wraps every Spec validation error.
var ErrInvalidSpec = errors.New("invalid key source")

// Validate checks the URLs of a Spec.
func (s Spec) Validate() error {
	if s.Issuer == "" {
		return fmt.Errorf("%w: issuer is empty", ErrInvalidSpec)
	}
	check := func(field, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: %s %q is not an absolute http(s) URL", ErrInvalidSpec, field, v)
		}
		return nil
	}
	if s.JWKSURI == "" && s.DiscoveryURL == "" {
		if err := check("issuer (used for discovery)", s.Issuer); err != nil {
			return err
		}
	}
	if err := check("discovery_url", s.DiscoveryURL); err != nil {
		return err
	}
	if err := check("jwks_uri", s.JWKSURI); err != nil {
		return err
	}
	return s.Config.Validate()
}

// discoveryURL is where the discovery document is read from.
func (s Spec) discoveryURL() string {
	if s.DiscoveryURL != "" {
		return s.DiscoveryURL
	}
	return strings.TrimSuffix(s.Issuer, "/") + "/.well-known/openid-configuration"
}

// cacheKey identifies a source: its URLs and every setting that changes how
// keys are fetched or trusted. Policies with equal keys share one Source.
func (s Spec) cacheKey() string {
	c := s.Config.withDefaults()
	where := s.JWKSURI
	if where == "" {
		where = "discovery:" + s.discoveryURL()
	}
	return fmt.Sprintf("%s|iss=%s|%d|%d|%d|%d|%d|%d|%d|ca=%s|insecure=%t",
		where, s.Issuer,
		c.MinRefreshInterval, c.DefaultTTL, c.MinTTL, c.MaxTTL, c.MaxStale, c.FetchTimeout,
		c.MaxResponseBytes, c.CAFile, c.InsecureSkipVerify)
}
