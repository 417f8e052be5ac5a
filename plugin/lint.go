package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Name is the plugin name Kong knows it by.
const Name = "keycloak-jwt"

// Finding is one problem of one keycloak-jwt plugin entry in a declarative file.
type Finding struct {
	// Where locates the plugin entry, e.g. `services[0] "orders" > routes[1] "orders-write"`.
	Where string
	// Err is what is wrong; a *policy.ConfigError names the field.
	Err error
	// Warning findings do not fail the check.
	Warning bool
}

func (f Finding) String() string {
	kind := "error"
	if f.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s: %s: %v", f.Where, kind, f.Err)
}

// LintOptions tune Lint.
type LintOptions struct {
	// IgnoreMissingKeys downgrades an unreadable upstream_jwt private key
	// (file or environment variable absent on the machine running the check)
	// to a warning: the key usually exists only inside the gateway.
	IgnoreMissingKeys bool
}

// Lint validates every keycloak-jwt plugin entry of a Kong declarative
// configuration (YAML or JSON) with the plugin's own Compile, since Kong
// cannot validate a Go plugin's config beyond its types. It returns how many
// entries it checked and what it found.
func Lint(doc []byte, opts LintOptions) (int, []Finding, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return 0, nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	var root map[string]any
	if err := json.Unmarshal(js, &root); err != nil {
		return 0, nil, fmt.Errorf("the declarative configuration must be a mapping: %w", err)
	}
	if root == nil {
		return 0, nil, errors.New("empty declarative configuration")
	}
	var entries []pluginEntry
	collect(root, "", &entries)
	var findings []Finding
	cache := jwks.NewCache(jwks.Options{}) // never fetched: Compile registers sources only
	for _, e := range entries {
		if e.consumer {
			findings = append(findings, Finding{Where: e.where, Err: errConsumerScoped})
			continue
		}
		cfg, err := decodeStrict(e.config)
		if err != nil {
			findings = append(findings, Finding{Where: e.where, Err: err})
			continue
		}
		if _, err := Compile(cfg, policy.Deps{Keys: cache}); err != nil {
			// One finding per problem: Compile reports every one at once.
			for _, err := range authz.Errors(err) {
				var ce *policy.ConfigError
				warn := opts.IgnoreMissingKeys && errors.As(err, &ce) && strings.HasPrefix(ce.Field, "upstream_jwt.private_key")
				findings = append(findings, Finding{Where: e.where, Err: err, Warning: warn})
			}
		}
	}
	return len(entries), findings, nil
}

// errConsumerScoped is the finding for an entry on a consumer or consumer
// group. Kong's own authentication plugins refuse that in their schema
// (no_consumer); a Go plugin's generated schema cannot say it.
var errConsumerScoped = errors.New("keycloak-jwt authenticates requests, so it cannot be scoped to a consumer " +
	"or consumer group: Kong runs such plugins only once a consumer is known; put it on the service or route")

type pluginEntry struct {
	where    string
	config   json.RawMessage
	consumer bool   // on a consumer or consumer group
	service  string // the service it is on, or the route's service ("" when global)
	route    string // the route it is on ("" on a service or global)
}

// collect walks the entity collections that may carry plugins.
func collect(node map[string]any, where string, out *[]pluginEntry) {
	collectIn(node, where, false, "", "", out)
}

func collectIn(node map[string]any, where string, consumer bool, service, route string, out *[]pluginEntry) {
	if plugins, ok := node["plugins"].([]any); ok {
		for i, p := range plugins {
			pm, ok := p.(map[string]any)
			if !ok || pm["name"] != Name {
				continue
			}
			if enabled, ok := pm["enabled"].(bool); ok && !enabled {
				continue
			}
			cfg, _ := json.Marshal(pm["config"])
			// A top-level entry may name its consumer or group itself.
			scoped := consumer || pm["consumer"] != nil || pm["consumer_group"] != nil
			*out = append(*out, pluginEntry{where: join(where, fmt.Sprintf("plugins[%d]", i)), config: cfg, consumer: scoped,
				service: service, route: route})
		}
	}
	for _, coll := range []string{"services", "routes", "consumers", "consumer_groups"} {
		list, ok := node[coll].([]any)
		if !ok {
			continue
		}
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			label := fmt.Sprintf("%s[%d]", coll, i)
			if name, ok := m["name"].(string); ok {
				label += fmt.Sprintf(" %q", name)
			} else if name, ok := m["username"].(string); ok {
				label += fmt.Sprintf(" %q", name)
			}
			name, _ := m["name"].(string)
			svc, rt := service, route
			switch coll {
			case "services":
				svc = name
			case "routes":
				rt = name
				if ref, ok := m["service"].(string); ok && svc == "" {
					svc = ref
				} else if ref, ok := m["service"].(map[string]any); ok && svc == "" {
					svc, _ = ref["name"].(string)
				}
			}
			collectIn(m, join(where, label), consumer || coll == "consumers" || coll == "consumer_groups", svc, rt, out)
		}
	}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + " > " + b
}

// ParseConfig decodes one plugin config strictly (unknown fields are
// errors, as in Kong's schema) and validates it with Compile, without
// fetching any key. Errors name the field.
func ParseConfig(raw []byte) (*Config, error) {
	cfg, err := decodeStrict(raw)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(cfg, policy.Deps{Keys: jwks.NewCache(jwks.Options{})}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeStrict decodes a plugin config as Kong would accept it: unknown
// fields are errors (Kong's schema refuses them too).
func decodeStrict(raw json.RawMessage) (*Config, error) {
	cfg := &Config{}
	if len(raw) == 0 || string(raw) == "null" {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// ConfigFor returns the keycloak-jwt configuration Kong runs for the route
// or service called name in a declarative configuration: the plugin on
// that route, else on its service, else a global one (Kong's precedence),
// and where it stands in the file.
func ConfigFor(doc []byte, name string) (*Config, string, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, "", fmt.Errorf("not YAML or JSON: %w", err)
	}
	var root map[string]any
	if err := json.Unmarshal(js, &root); err != nil || root == nil {
		return nil, "", errors.New("the declarative configuration must be a mapping")
	}
	var entries []pluginEntry
	collect(root, "", &entries)
	// The service of the route called name, if name is a route.
	service := name
	if svc := serviceOf(root, name); svc != "" {
		service = svc
	}
	var pick *pluginEntry
	for _, want := range []func(e pluginEntry) bool{
		func(e pluginEntry) bool { return e.route == name },
		func(e pluginEntry) bool { return e.route == "" && e.service == service },
		func(e pluginEntry) bool {
			return e.route == "" && e.service == "" && (routeNamed(root, name) || serviceNamed(root, name))
		},
	} {
		for i := range entries {
			if !entries[i].consumer && want(entries[i]) {
				pick = &entries[i]
				break
			}
		}
		if pick != nil {
			break
		}
	}
	if pick == nil {
		return nil, "", fmt.Errorf("no enabled %s plugin applies to a route or service named %q", Name, name)
	}
	cfg, err := decodeStrict(pick.config)
	if err != nil {
		return nil, pick.where, err
	}
	return cfg, pick.where, nil
}

// serviceOf is the name of the service of the route called route ("" when
// there is no such route, or it has no service).
func serviceOf(root map[string]any, route string) string {
	services, _ := root["services"].([]any)
	for _, item := range services {
		svc, _ := item.(map[string]any)
		routes, _ := svc["routes"].([]any)
		for _, r := range routes {
			if m, ok := r.(map[string]any); ok && m["name"] == route {
				name, _ := svc["name"].(string)
				return name
			}
		}
	}
	routes, _ := root["routes"].([]any)
	for _, r := range routes {
		m, _ := r.(map[string]any)
		if m["name"] != route {
			continue
		}
		switch ref := m["service"].(type) {
		case string:
			return ref
		case map[string]any:
			name, _ := ref["name"].(string)
			return name
		}
	}
	return ""
}

// routeNamed and serviceNamed report whether the file defines that entity.
func routeNamed(root map[string]any, name string) bool {
	found := false
	walk(root, func(coll string, m map[string]any) {
		found = found || coll == "routes" && m["name"] == name
	})
	return found
}

func serviceNamed(root map[string]any, name string) bool {
	found := false
	walk(root, func(coll string, m map[string]any) {
		found = found || coll == "services" && m["name"] == name
	})
	return found
}

func walk(node map[string]any, visit func(coll string, m map[string]any)) {
	for _, coll := range []string{"services", "routes"} {
		list, _ := node[coll].([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				visit(coll, m)
				walk(m, visit)
			}
		}
	}
}
