package sidecar

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// maxConfigBytes bounds a configuration file.
const maxConfigBytes = 1 << 20

// Environment overrides, applied after the file is decoded. A variable that
// is unset or empty leaves the file's value alone.
const (
	EnvListen       = "KJ_LISTEN"        // listen
	EnvAdminListen  = "KJ_ADMIN_LISTEN"  // admin_listen
	EnvUpstreamURL  = "KJ_UPSTREAM_URL"  // upstream.url
	EnvIssuerURL    = "KJ_ISSUER_URL"    // policy.issuers[0].issuer
	EnvDiscoveryURL = "KJ_DISCOVERY_URL" // policy.issuers[0].discovery_url
	EnvJWKSURI      = "KJ_JWKS_URI"      // policy.issuers[0].jwks_uri
	EnvLogLevel     = "KJ_LOG_LEVEL"     // log.level
)

// LoadConfigFile reads, expands and decodes the configuration file at path
// (see ParseConfig). lookup is os.LookupEnv when nil.
func LoadConfigFile(path string, lookup LookupEnv) (*Config, error) {
	data, err := limitedfile.Read(path, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data, lookup)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a YAML (or JSON) configuration: it replaces the
// ${NAME} placeholders (expandEnv), decodes strictly (unknown and duplicate
// fields are errors) and applies the KJ_* environment overrides. It does not
// validate: Check and New do. lookup is os.LookupEnv when nil.
func ParseConfig(data []byte, lookup LookupEnv) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	data, err := expandEnv(data, lookup)
	if err != nil {
		return nil, fmt.Errorf("expanding environment placeholders: %w", err)
	}
	cfg := new(Config)
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return nil, fmt.Errorf("decoding: %w", cleanYAMLError(err))
	}
	if err := cfg.applyEnv(lookup); err != nil {
		return nil, err
	}
	return cfg, nil
}

// cleanYAMLError drops the decoder's layered prefixes, keeping the part that
// names the problem (e.g. `json: unknown field "scope_required"`).
func cleanYAMLError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	msg = strings.TrimPrefix(msg, "json: ")
	return errors.New(msg)
}

// applyEnv applies the KJ_* overrides.
func (c *Config) applyEnv(lookup LookupEnv) error {
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	for _, o := range []struct {
		env string
		dst *string
	}{
		{EnvListen, &c.Listen},
		{EnvAdminListen, &c.AdminListen},
		{EnvUpstreamURL, &c.Upstream.URL},
		{EnvLogLevel, &c.Log.Level},
	} {
		if v, ok := get(o.env); ok {
			*o.dst = v
		}
	}
	for _, o := range []struct {
		env string
		set func(*policy.Issuer, string)
	}{
		{EnvIssuerURL, func(is *policy.Issuer, v string) { is.Issuer = v }},
		{EnvDiscoveryURL, func(is *policy.Issuer, v string) { is.DiscoveryURL = v }},
		{EnvJWKSURI, func(is *policy.Issuer, v string) { is.JWKSURI = v }},
	} {
		v, ok := get(o.env)
		if !ok {
			continue
		}
		switch len(c.Policy.Issuers) {
		case 0:
			c.Policy.Issuers = []policy.Issuer{{}}
		case 1:
		default:
			return &policy.ConfigError{Field: o.env, Msg: fmt.Sprintf(
				"overrides policy.issuers[0], but the file lists %d issuers; use ${NAME} placeholders instead",
				len(c.Policy.Issuers))}
		}
		o.set(&c.Policy.Issuers[0], v)
	}
	return nil
}
