// Package plugin is the Kong adapter of keycloak-jwt: a go-pdk plugin whose
// Config is the schema Kong sees. It translates Kong's request into the
// request layer's (authz.Request), and the layer's Result into Kong's
// response or upstream request. It re-implements no check.
package plugin

//go:generate go test -run ^TestConfigGenerated$ -update .

import (
	"strings"
	"sync"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// kongFields are the settings only the Kong adapter has. Config (generated
// into config_gen.go) holds them flat beside the fields of policy.Config
// and authz.Config. Field documentation lives in the README's configuration
// reference (kept in sync by a test).
type kongFields struct {
	Anonymous        string `json:"anonymous"`
	ConsumerMapping  bool   `json:"consumer_mapping"`
	ConsumerClaim    string `json:"consumer_claim"`
	ConsumerOptional bool   `json:"consumer_optional"`
	RunOnPreflight   *bool  `json:"run_on_preflight"`

	UpstreamHeaders upstream.HeadersConfig `json:"upstream_headers"`
	UpstreamJWT     upstream.JWTConfig     `json:"upstream_jwt"`
}

// state is compiled on an instance's first request; unexported, so not
// part of the schema.
type state struct {
	once sync.Once
	inst *Instance
	err  error
	// errLogged: the config error went to Kong's own log once.
	errLogged sync.Once
}

// Defaults of the adapter-level settings.
const (
	DefaultRealm         = "kong"
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

var consumerHeaderNames = []string{HeaderConsumerID, HeaderConsumerCustomID, HeaderConsumerUsername, HeaderCredential, HeaderAnonymous}

// Instance is everything a request needs, compiled once per plugin instance.
type Instance struct {
	gate          *authz.Gate
	needsQuery    bool // read the raw query (uri_param_names, method_override)
	anonymous     string
	mapping       bool
	consumerClaim string
	optional      bool
	preflight     bool // run_on_preflight
}

// PolicyConfig is the engine part of the plugin configuration.
func (c *Config) PolicyConfig() policy.Config {
	p, _, _ := c.parts()
	return p
}

// Compile validates the configuration with the engine's and the request
// layer's own code and builds what requests need. Every error is reported,
// each naming its configuration field. It is what the plugin runs on an
// instance's first request and what keycloak-jwt-lint runs offline.
func Compile(c *Config, deps policy.Deps) (*Instance, error) {
	pc, ac, kc := c.parts()
	gate, err := authz.Compile(authz.Spec{Config: ac, Policy: pc, Headers: kc.UpstreamHeaders, JWT: kc.UpstreamJWT},
		authz.Options{Deps: deps, Logger: deps.Logger, DefaultRealm: DefaultRealm, Owned: consumerHeaderNames,
			Routed: true, MethodRulesElsewhere: true})
	if err != nil {
		return nil, err
	}
	out := &Instance{gate: gate, anonymous: strings.TrimSpace(kc.Anonymous), mapping: kc.ConsumerMapping,
		consumerClaim: kc.ConsumerClaim, optional: kc.ConsumerOptional,
		needsQuery: len(ac.URIParamNames) > 0 || ac.MethodOverride != "" && ac.MethodOverride != authz.MethodOverrideAllow,
		preflight:  kc.RunOnPreflight == nil || *kc.RunOnPreflight}
	if out.consumerClaim == "" {
		out.consumerClaim = DefaultConsumerClaim
	}
	return out, nil
}

// Gate is the instance's request layer (keycloak-jwt-explain judges
// requests with it, as the plugin does).
func (inst *Instance) Gate() *authz.Gate { return inst.gate }
