package testidp

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// demoRealmJSON is examples/keycloak/realm-demo.json, the realm export that
// docker-compose.yml and CI import into Keycloak (a test keeps the copy
// identical).
//
//go:embed realm-demo.json
var demoRealmJSON []byte

// Realm is what the test realm takes from a Keycloak realm export: its name,
// the access-token lifespan and the machine clients with their scopes,
// audiences and service-account roles.
type Realm struct {
	Name     string
	TokenTTL time.Duration
	Clients  []Client
}

// DemoRealm returns the realm of examples/keycloak/realm-demo.json.
func DemoRealm() (*Realm, error) { return ParseRealm(demoRealmJSON) }

// DemoRealmJSON returns a copy of the embedded realm export.
func DemoRealmJSON() []byte { return slices.Clone(demoRealmJSON) }

// Options returns the options of an IdP serving r, with tokens shaped as
// Keycloak issues them for an imported realm (ShapeExport).
func (r *Realm) Options() Options {
	clients := make([]Client, len(r.Clients))
	for n, c := range r.Clients {
		clients[n] = c.clone()
	}
	return Options{Realm: r.Name, TokenTTL: r.TokenTTL, Clients: clients, Shape: ShapeExport}
}

// Client returns the client with the given id.
func (r *Realm) Client(id string) (Client, bool) {
	for _, c := range r.Clients {
		if c.ID == id {
			return c.clone(), true
		}
	}
	return Client{}, false
}

// realmExport is the part of a realm representation read here.
type realmExport struct {
	Realm               string `json:"realm"`
	AccessTokenLifespan int    `json:"accessTokenLifespan"`
	ClientScopes        []struct {
		Name       string            `json:"name"`
		Attributes map[string]string `json:"attributes"`
		Mappers    []struct {
			ProtocolMapper string            `json:"protocolMapper"`
			Config         map[string]string `json:"config"`
		} `json:"protocolMappers"`
	} `json:"clientScopes"`
	Clients []struct {
		ClientID               string   `json:"clientId"`
		Enabled                *bool    `json:"enabled"`
		BearerOnly             bool     `json:"bearerOnly"`
		PublicClient           bool     `json:"publicClient"`
		ServiceAccountsEnabled bool     `json:"serviceAccountsEnabled"`
		Secret                 string   `json:"secret"`
		DefaultClientScopes    []string `json:"defaultClientScopes"`
		OptionalClientScopes   []string `json:"optionalClientScopes"`
	} `json:"clients"`
	Users []struct {
		ServiceAccountClientID string              `json:"serviceAccountClientId"`
		RealmRoles             []string            `json:"realmRoles"`
		ClientRoles            map[string][]string `json:"clientRoles"`
	} `json:"users"`
}

// ParseRealm reads a Keycloak realm export (the JSON of `kc.sh export` and
// of --import-realm). Each enabled, confidential client with a service
// account becomes a Client: its default client scopes that are included in
// the token's scope claim are its Scopes, its optional ones its
// OptionalScopes, the audiences of the audience mappers of its default
// scopes its Audience, and its service-account user's roles its roles.
func ParseRealm(data []byte) (*Realm, error) {
	var ex realmExport
	if err := json.Unmarshal(data, &ex); err != nil {
		return nil, fmt.Errorf("testidp: realm export: %w", err)
	}
	if ex.Realm == "" {
		return nil, fmt.Errorf("testidp: realm export has no realm name")
	}
	type scopeInfo struct {
		inScope  bool
		audience []string
	}
	scopes := map[string]scopeInfo{}
	for _, s := range ex.ClientScopes {
		info := scopeInfo{inScope: s.Attributes["include.in.token.scope"] != "false"}
		for _, m := range s.Mappers {
			if m.ProtocolMapper == "oidc-audience-mapper" && m.Config["access.token.claim"] == "true" {
				if a := m.Config["included.client.audience"]; a != "" {
					info.audience = append(info.audience, a)
				}
				if a := m.Config["included.custom.audience"]; a != "" {
					info.audience = append(info.audience, a)
				}
			}
		}
		scopes[s.Name] = info
	}
	r := &Realm{Name: ex.Realm, TokenTTL: time.Duration(ex.AccessTokenLifespan) * time.Second}
	for _, c := range ex.Clients {
		if (c.Enabled != nil && !*c.Enabled) || c.BearerOnly || c.PublicClient || !c.ServiceAccountsEnabled {
			continue
		}
		cl := Client{ID: c.ClientID, Secret: c.Secret}
		for _, name := range c.DefaultClientScopes {
			info, ok := scopes[name]
			if !ok {
				continue // Keycloak ignores a scope the realm does not declare
			}
			if info.inScope {
				cl.Scopes = append(cl.Scopes, name)
			}
			for _, a := range info.audience {
				if !slices.Contains(cl.Audience, a) {
					cl.Audience = append(cl.Audience, a)
				}
			}
		}
		for _, name := range c.OptionalClientScopes {
			if info, ok := scopes[name]; ok && info.inScope {
				cl.OptionalScopes = append(cl.OptionalScopes, name)
			}
		}
		for _, u := range ex.Users {
			if u.ServiceAccountClientID == c.ClientID {
				cl.RealmRoles = slices.Clone(u.RealmRoles)
				for client, roles := range u.ClientRoles {
					if cl.ClientRoles == nil {
						cl.ClientRoles = map[string][]string{}
					}
					cl.ClientRoles[client] = slices.Clone(roles)
				}
			}
		}
		r.Clients = append(r.Clients, cl)
	}
	return r, nil
}
