package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// Paths of the deployment files, relative to the repository root.
const (
	composeFile    = "docker-compose.yml"
	dockerfileFile = "Dockerfile"
	dockerignore   = ".dockerignore"
	realmFile      = "examples/keycloak/realm-demo.json"
	kongFile       = "examples/kong/kong.yml"
)

func repoPath(rel string) string { return filepath.Join(RepoRoot(), filepath.FromSlash(rel)) }

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlToJSON parses a YAML document (anchors and all) into JSON, the form
// every other check here decodes.
func yamlToJSON(t *testing.T, rel string) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSON(readRepoFile(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return j
}

// realmExport is the part of a Keycloak realm representation (the JSON of
// `kc.sh export` and of --import-realm) that the demo relies on. Booleans are
// pointers so that a missing field is told apart from false.
type realmExport struct {
	Realm   string `json:"realm"`
	Enabled *bool  `json:"enabled"`
	Roles   struct {
		Realm  []realmRole            `json:"realm"`
		Client map[string][]realmRole `json:"client"`
	} `json:"roles"`
	ClientScopes []clientScope `json:"clientScopes"`
	Clients      []realmClient `json:"clients"`
	Users        []realmUser   `json:"users"`
}

type realmRole struct {
	Name string `json:"name"`
}

type clientScope struct {
	Name            string            `json:"name"`
	Protocol        string            `json:"protocol"`
	Attributes      map[string]string `json:"attributes"`
	ProtocolMappers []protocolMapper  `json:"protocolMappers"`
}

type protocolMapper struct {
	Name           string            `json:"name"`
	Protocol       string            `json:"protocol"`
	ProtocolMapper string            `json:"protocolMapper"`
	Config         map[string]string `json:"config"`
}

type realmClient struct {
	ClientID                  string            `json:"clientId"`
	Enabled                   *bool             `json:"enabled"`
	Protocol                  string            `json:"protocol"`
	BearerOnly                *bool             `json:"bearerOnly"`
	PublicClient              *bool             `json:"publicClient"`
	ClientAuthenticatorType   string            `json:"clientAuthenticatorType"`
	Secret                    string            `json:"secret"`
	ServiceAccountsEnabled    *bool             `json:"serviceAccountsEnabled"`
	StandardFlowEnabled       *bool             `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       *bool             `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled *bool             `json:"directAccessGrantsEnabled"`
	Attributes                map[string]string `json:"attributes"`
	DefaultClientScopes       []string          `json:"defaultClientScopes"`
	OptionalClientScopes      []string          `json:"optionalClientScopes"`
}

type realmUser struct {
	Username               string              `json:"username"`
	Enabled                *bool               `json:"enabled"`
	ServiceAccountClientID string              `json:"serviceAccountClientId"`
	RealmRoles             []string            `json:"realmRoles"`
	ClientRoles            map[string][]string `json:"clientRoles"`
	Credentials            []json.RawMessage   `json:"credentials"`
}

func loadRealm(t *testing.T) *realmExport {
	t.Helper()
	var r realmExport
	if err := json.Unmarshal(readRepoFile(t, realmFile), &r); err != nil {
		t.Fatalf("%s: %v", realmFile, err)
	}
	return &r
}

func (r *realmExport) scope(name string) *clientScope {
	for i := range r.ClientScopes {
		if r.ClientScopes[i].Name == name {
			return &r.ClientScopes[i]
		}
	}
	return nil
}

func (r *realmExport) client(id string) *realmClient {
	for i := range r.Clients {
		if r.Clients[i].ClientID == id {
			return &r.Clients[i]
		}
	}
	return nil
}

func (r *realmExport) serviceAccount(clientID string) *realmUser {
	for i := range r.Users {
		if r.Users[i].ServiceAccountClientID == clientID {
			return &r.Users[i]
		}
	}
	return nil
}

func (r *realmExport) hasRealmRole(name string) bool {
	for _, role := range r.Roles.Realm {
		if role.Name == name {
			return true
		}
	}
	return false
}

func (r *realmExport) hasClientRole(client, name string) bool {
	for _, role := range r.Roles.Client[client] {
		if role.Name == name {
			return true
		}
	}
	return false
}

// grantedScopes are the scopes Keycloak writes into the "scope" claim of the
// client's tokens when the request names none: its default client scopes
// that are included in the token scope.
func (r *realmExport) grantedScopes(c *realmClient) []string {
	var out []string
	for _, name := range c.DefaultClientScopes {
		if s := r.scope(name); s != nil && s.Attributes["include.in.token.scope"] == "true" {
			out = append(out, name)
		}
	}
	return out
}

// audiences are the aud values the audience mappers of the client's default
// scopes add.
func (r *realmExport) audiences(c *realmClient) []string {
	var out []string
	for _, name := range c.DefaultClientScopes {
		s := r.scope(name)
		if s == nil {
			continue
		}
		for _, m := range s.ProtocolMappers {
			if m.ProtocolMapper != "oidc-audience-mapper" || m.Config["access.token.claim"] != "true" {
				continue
			}
			for _, k := range []string{"included.client.audience", "included.custom.audience"} {
				if v := m.Config[k]; v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// serviceClients are the clients that get tokens with the client-credentials grant.
func (r *realmExport) serviceClients() []*realmClient {
	var out []*realmClient
	for i := range r.Clients {
		if c := &r.Clients[i]; isTrue(c.ServiceAccountsEnabled) {
			out = append(out, c)
		}
	}
	return out
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }
