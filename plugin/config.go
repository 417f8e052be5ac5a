// Package plugin is the Kong adapter of keycloak-jwt: a go-pdk plugin whose
// Config is the schema Kong sees. It translates Kong's request into the
// engine's input (policy.ExtractToken, Policy.Check) and the decision into
// Kong's response or upstream request. It re-implements no check.
package plugin

import (
	"fmt"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// Config is the plugin configuration as Kong stores it. go-pdk derives the
// schema from the fields and their json tags (no defaults, no validation in
// Kong), so defaults are applied and the whole config is validated by
// Compile when an instance handles its first request. Field documentation
// lives in the README's configuration reference (kept in sync by a test).
//
// The engine fields repeat policy.Config's instead of embedding it: go-pdk's
// schema generator turns an embedded struct into a nested "config" record
// while encoding/json flattens it, so Kong and the plugin would disagree.
// TestConfigCoversPolicy keeps the two lists in step.
type Config struct {
	Issuers             []policy.Issuer   `json:"issuers"`
	Audiences           []string          `json:"audiences"`
	AllowedClients      []string          `json:"allowed_clients"`
	Algorithms          []string          `json:"algorithms"`
	TokenTypes          []string          `json:"token_types"`
	ScopesRequired      []string          `json:"scopes_required"`
	ScopesMatch         string            `json:"scopes_match"`
	RealmRolesRequired  []string          `json:"realm_roles_required"`
	RealmRolesMatch     string            `json:"realm_roles_match"`
	ClientRolesRequired []string          `json:"client_roles_required"`
	ClientRolesMatch    string            `json:"client_roles_match"`
	LeewaySeconds       *int              `json:"leeway_seconds"`
	MaxTokenBytes       int               `json:"max_token_bytes"`
	TokenCacheSize      *int              `json:"token_cache_size"`
	JWKS                policy.JWKSConfig `json:"jwks"`

	Realm         string   `json:"realm"`
	HeaderNames   []string `json:"header_names"`
	URIParamNames []string `json:"uri_param_names"`
	CookieNames   []string `json:"cookie_names"`

	Anonymous        string `json:"anonymous"`
	ConsumerMapping  bool   `json:"consumer_mapping"`
	ConsumerClaim    string `json:"consumer_claim"`
	ConsumerOptional bool   `json:"consumer_optional"`

	UpstreamHeaders upstream.HeadersConfig `json:"upstream_headers"`
	UpstreamJWT     upstream.JWTConfig     `json:"upstream_jwt"`

	// Compiled on the first request; unexported, so not part of the schema.
	once sync.Once
	inst *Instance
	err  error
	// errLogged: the config error went to Kong's own log once.
	errLogged sync.Once
}

// Defaults of the adapter-level settings.
const (
	DefaultRealm         = "kong"
	DefaultHeaderName    = "authorization"
	DefaultConsumerClaim = "azp"
)

// Kong's consumer headers, set like Kong's own authentication plugins do.
const (
	HeaderConsumerID       = "X-Consumer-Id"
	HeaderConsumerCustomID = "X-Consumer-Custom-Id"
	HeaderConsumerUsername = "X-Consumer-Username"
	HeaderCredential       = "X-Credential-Identifier"
	HeaderAnonymous        = "X-Anonymous-Consumer"
)

// Instance is everything a request needs, compiled once per plugin instance.
type Instance struct {
	policy        *policy.Policy
	headers       *upstream.Headers
	signer        *upstream.Signer
	realm         string
	headerNames   []string // lower-case
	uriParamNames []string
	cookieNames   []string
	anonymous     string
	mapping       bool
	consumerClaim string
	optional      bool
	// strip lists, lower-case, every header this instance may set upstream;
	// client-supplied copies are removed on every request.
	strip []string
	// lookalikes matches underscore spellings of strip (X_Client_Id), which
	// reach the upstream when nginx runs with underscores_in_headers on.
	lookalikes upstream.Lookalikes
}

// PolicyConfig is the engine part of the plugin configuration.
func (c *Config) PolicyConfig() policy.Config {
	return policy.Config{
		Issuers: c.Issuers, Audiences: c.Audiences, AllowedClients: c.AllowedClients,
		Algorithms: c.Algorithms, TokenTypes: c.TokenTypes,
		ScopesRequired: c.ScopesRequired, ScopesMatch: c.ScopesMatch,
		RealmRolesRequired: c.RealmRolesRequired, RealmRolesMatch: c.RealmRolesMatch,
		ClientRolesRequired: c.ClientRolesRequired, ClientRolesMatch: c.ClientRolesMatch,
		LeewaySeconds: c.LeewaySeconds, MaxTokenBytes: c.MaxTokenBytes, TokenCacheSize: c.TokenCacheSize,
		JWKS: c.JWKS,
	}
}

// Compile validates the configuration with the engine's own code and builds
// what requests need. Errors name the configuration field. It is what the
// plugin runs on an instance's first request and what keycloak-jwt-lint runs
// offline.
func Compile(c *Config, deps policy.Deps) (*Instance, error) {
	pol, err := policy.Compile(c.PolicyConfig(), deps)
	if err != nil {
		return nil, err
	}
	out := &Instance{policy: pol, realm: c.Realm, anonymous: strings.TrimSpace(c.Anonymous),
		mapping: c.ConsumerMapping, consumerClaim: c.ConsumerClaim, optional: c.ConsumerOptional}
	if out.realm == "" {
		out.realm = DefaultRealm
	}
	if strings.ContainsAny(out.realm, "\"\\\r\n") {
		return nil, &policy.ConfigError{Field: "realm", Msg: "must not contain quotes, backslashes or line breaks"}
	}
	if out.consumerClaim == "" {
		out.consumerClaim = DefaultConsumerClaim
	}
	names := c.HeaderNames
	if len(names) == 0 {
		names = []string{DefaultHeaderName}
	}
	for i, n := range names {
		if err := upstream.CheckHeaderName(n); err != nil && !strings.EqualFold(n, "authorization") {
			return nil, &policy.ConfigError{Field: fmt.Sprintf("header_names[%d]", i), Msg: err.Error()}
		}
		out.headerNames = append(out.headerNames, strings.ToLower(n))
	}
	for i, n := range c.URIParamNames {
		if strings.TrimSpace(n) == "" {
			return nil, &policy.ConfigError{Field: fmt.Sprintf("uri_param_names[%d]", i), Msg: "must not be empty"}
		}
		out.uriParamNames = append(out.uriParamNames, n)
	}
	for i, n := range c.CookieNames {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, "=; ") {
			return nil, &policy.ConfigError{Field: fmt.Sprintf("cookie_names[%d]", i), Msg: "must be a cookie name"}
		}
		out.cookieNames = append(out.cookieNames, n)
	}
	if out.headers, err = upstream.CompileHeaders(c.UpstreamHeaders); err != nil {
		return nil, err
	}
	now := deps.Clock
	if now == nil {
		now = time.Now
	}
	if out.signer, err = upstream.NewSigner(c.UpstreamJWT, now); err != nil {
		return nil, err
	}
	if out.signer != nil {
		if err := out.headers.CheckSigner(out.signer); err != nil {
			return nil, err
		}
	}
	for _, n := range out.headers.Names() {
		out.strip = append(out.strip, strings.ToLower(n))
	}
	if out.signer != nil {
		out.strip = append(out.strip, strings.ToLower(out.signer.Header()))
	}
	for _, n := range []string{HeaderConsumerID, HeaderConsumerCustomID, HeaderConsumerUsername, HeaderCredential, HeaderAnonymous} {
		out.strip = append(out.strip, strings.ToLower(n))
	}
	out.lookalikes = upstream.NewLookalikes(out.strip)
	for _, n := range out.strip {
		if contains(out.headerNames, n) {
			return nil, &policy.ConfigError{Field: "header_names", Msg: fmt.Sprintf("%q is also a header the plugin sets upstream", textproto.CanonicalMIMEHeaderKey(n))}
		}
	}
	return out, nil
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
