package sidecar

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// compileRoutes compiles one policy per distinct effective configuration
// (policy defaults merged with the route's overrides); all of them share
// deps.Keys, so one realm is fetched once.
func (o *compiled) compileRoutes(c *Config, deps policy.Deps) error {
	if err := c.Policy.Validate(); err != nil {
		return prefixField("policy", err)
	}
	routes := c.Routes
	if len(routes) == 0 {
		routes = []Route{{Prefix: "/"}}
	}
	var errs []error
	byKey := map[string]*compiledPolicy{}
	compiledRoutes := make([]*route, 0, len(routes))
	fields := make([]string, 0, len(routes))
	for i, rc := range routes {
		field := fmt.Sprintf("routes[%d]", i)
		r, err := compileRoute(field, rc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !r.public {
			merged := mergePolicy(c.Policy, rc)
			key, err := json.Marshal(merged)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
				continue
			}
			cp := byKey[string(key)]
			if cp == nil {
				p, err := policy.Compile(merged, deps)
				if err != nil {
					errs = append(errs, routeFieldErr(field, err))
					continue
				}
				cp = &compiledPolicy{p: p}
				byKey[string(key)] = cp
				o.policies = append(o.policies, cp)
			}
			cp.routes = append(cp.routes, r.name)
			r.policy = cp.p
		}
		compiledRoutes = append(compiledRoutes, r)
		fields = append(fields, field)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	t, err := newRouteTable(compiledRoutes, fields)
	if err != nil {
		return err
	}
	o.routes = t
	return nil
}

// compileRoute checks the route's own fields (not its requirements, which
// policy.Compile checks).
func compileRoute(field string, rc Route) (*route, error) {
	if err := checkPrefix(rc.Prefix); err != nil {
		return nil, cfgErr(field+".prefix", "%v", err)
	}
	methods, err := compileMethods(field+".methods", rc.Methods)
	if err != nil {
		return nil, err
	}
	if rc.Public {
		set := []string{}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"audiences", rc.Audiences != nil}, {"allowed_clients", rc.AllowedClients != nil},
			{"scopes_required", rc.ScopesRequired != nil}, {"scopes_match", rc.ScopesMatch != ""},
			{"realm_roles_required", rc.RealmRolesRequired != nil}, {"realm_roles_match", rc.RealmRolesMatch != ""},
			{"client_roles_required", rc.ClientRolesRequired != nil}, {"client_roles_match", rc.ClientRolesMatch != ""},
		} {
			if f.set {
				set = append(set, f.name)
			}
		}
		if len(set) > 0 {
			return nil, cfgErr(field+".public", "a public route takes no token, so it cannot require anything (remove %s)", strings.Join(set, ", "))
		}
	}
	return &route{name: routeName(rc.Prefix, methods), prefix: rc.Prefix, methods: methods, public: rc.Public}, nil
}

// mergePolicy applies a route's overrides to the shared policy defaults.
func mergePolicy(base policy.Config, r Route) policy.Config {
	c := base
	lists := []struct {
		dst *[]string
		src []string
	}{
		{&c.Audiences, r.Audiences}, {&c.AllowedClients, r.AllowedClients},
		{&c.ScopesRequired, r.ScopesRequired}, {&c.RealmRolesRequired, r.RealmRolesRequired},
		{&c.ClientRolesRequired, r.ClientRolesRequired},
	}
	for _, l := range lists {
		if l.src != nil {
			*l.dst = l.src
		}
	}
	for _, m := range []struct {
		dst *string
		src string
	}{{&c.ScopesMatch, r.ScopesMatch}, {&c.RealmRolesMatch, r.RealmRolesMatch}, {&c.ClientRolesMatch, r.ClientRolesMatch}} {
		if m.src != "" {
			*m.dst = m.src
		}
	}
	return c
}

// routeOverrides are the policy fields a route may set.
var routeOverrides = map[string]bool{
	"audiences": true, "allowed_clients": true,
	"scopes_required": true, "scopes_match": true,
	"realm_roles_required": true, "realm_roles_match": true,
	"client_roles_required": true, "client_roles_match": true,
}

// routeFieldErr names a policy.Compile error of a route by the field that
// holds the bad value: the route's own override, or the shared policy.
func routeFieldErr(field string, err error) error {
	var ce *policy.ConfigError
	if errors.As(err, &ce) {
		base := ce.Field
		if i := strings.IndexAny(base, "[."); i >= 0 {
			base = base[:i]
		}
		if routeOverrides[base] {
			return &policy.ConfigError{Field: field + "." + ce.Field, Msg: ce.Msg}
		}
		return &policy.ConfigError{Field: "policy." + ce.Field, Msg: ce.Msg}
	}
	return fmt.Errorf("%s: %w", field, err)
}
