package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/plugin"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// kongDoc is the part of Kong's declarative format (3.0) the demo uses.
type kongDoc struct {
	FormatVersion string         `json:"_format_version"`
	Services      []kongService  `json:"services"`
	Routes        []kongRoute    `json:"routes"`
	Consumers     []kongConsumer `json:"consumers"`
	Plugins       []kongPlugin   `json:"plugins"`
}

type kongService struct {
	Name    string       `json:"name"`
	URL     string       `json:"url"`
	Routes  []kongRoute  `json:"routes"`
	Plugins []kongPlugin `json:"plugins"`
}

type kongRoute struct {
	Name    string       `json:"name"`
	Paths   []string     `json:"paths"`
	Methods []string     `json:"methods"`
	Plugins []kongPlugin `json:"plugins"`
}

type kongConsumer struct {
	Username string       `json:"username"`
	CustomID string       `json:"custom_id"`
	Plugins  []kongPlugin `json:"plugins"`
}

type kongPlugin struct {
	Name    string          `json:"name"`
	Config  json.RawMessage `json:"config"`
	Enabled *bool           `json:"enabled"`
}

// placedPlugin is a plugin entry and the entity it is attached to.
type placedPlugin struct {
	Where string // e.g. "route orders-read" or "service reports-api"
	Owner string // the name of that route, service or consumer
	kongPlugin
}

func loadKong(t *testing.T) *kongDoc {
	t.Helper()
	var d kongDoc
	if err := json.Unmarshal(yamlToJSON(t, kongFile), &d); err != nil {
		t.Fatalf("%s: %v", kongFile, err)
	}
	mapKongKeyFiles(t, &d)
	return &d
}

// plugins lists every plugin entry of the file, wherever it is nested.
func (d *kongDoc) plugins() []placedPlugin {
	var out []placedPlugin
	add := func(where, name string, ps []kongPlugin) {
		for _, p := range ps {
			out = append(out, placedPlugin{where + " " + name, name, p})
		}
	}
	add("top-level", "plugins", d.Plugins)
	for _, s := range d.Services {
		add("service", s.Name, s.Plugins)
		for _, r := range s.Routes {
			add("route", r.Name, r.Plugins)
		}
	}
	for _, r := range d.Routes {
		add("route", r.Name, r.Plugins)
	}
	for _, c := range d.Consumers {
		add("consumer", c.Username, c.Plugins)
	}
	return out
}

func (d *kongDoc) consumer(username string) *kongConsumer {
	for i := range d.Consumers {
		if d.Consumers[i].Username == username {
			return &d.Consumers[i]
		}
	}
	return nil
}

// TestKongDeclarativeConfig checks examples/kong/kong.yml: Kong's format,
// every keycloak-jwt plugin config (strictly decoded and validated by the
// engine), and that each names what the realm export and the compose file
// really provide.
func TestKongDeclarativeConfig(t *testing.T) {
	d := loadKong(t)
	realm := loadRealm(t)
	compose := loadCompose(t)
	if d.FormatVersion != "3.0" {
		t.Errorf("_format_version %q, want \"3.0\"", d.FormatVersion)
	}
	names := map[string]bool{}
	for _, s := range d.Services {
		if s.Name == "" || names[s.Name] {
			t.Errorf("service name %q is empty or repeated", s.Name)
		}
		names[s.Name] = true
		if u, err := url.Parse(s.URL); err != nil || u.Host == "" {
			t.Errorf("service %s: url %q", s.Name, s.URL)
		} else if _, ok := compose.Services[u.Hostname()]; !ok {
			t.Errorf("service %s: upstream host %q is not a compose service", s.Name, u.Hostname())
		}
		for _, r := range s.Routes {
			if r.Name == "" || names[r.Name] || len(r.Paths) == 0 {
				t.Errorf("route %q: needs a unique name and paths", r.Name)
			}
			names[r.Name] = true
		}
	}

	issuer := composeIssuer(t, compose)
	var tokenScopes, audiences []string
	for _, c := range realm.serviceClients() {
		tokenScopes = append(tokenScopes, realm.grantedScopes(c)...)
		audiences = append(audiences, realm.audiences(c)...)
	}

	plugins := d.plugins()
	for _, p := range plugins {
		switch p.Name {
		case "keycloak-jwt", "rate-limiting":
		default:
			t.Errorf("%s: plugin %q is not part of the demo", p.Where, p.Name)
			continue
		}
		if p.Name == "rate-limiting" {
			checkRateLimiting(t, p)
			continue
		}
		c, err := plugin.ParseConfig(p.Config)
		if err != nil {
			t.Errorf("%s: keycloak-jwt config: %v", p.Where, err)
			continue
		}
		for _, is := range c.Issuers {
			if is.Issuer != issuer {
				t.Errorf("%s: issuer %q, but Keycloak issues %q (KC_HOSTNAME in %s)", p.Where, is.Issuer, issuer, composeFile)
			}
			u, err := url.Parse(is.JWKSURI)
			if err != nil || u.Hostname() != "keycloak" || u.Port() != "8080" ||
				u.Path != "/realms/"+realm.Realm+"/protocol/openid-connect/certs" {
				t.Errorf("%s: jwks_uri %q, want Keycloak's certs URL inside the compose network", p.Where, is.JWKSURI)
			}
		}
		for _, a := range c.Audiences {
			if !slices.Contains(audiences, a) {
				t.Errorf("%s: audience %q is added by no audience mapper of the realm", p.Where, a)
			}
		}
		for _, s := range c.ScopesRequired {
			if !slices.Contains(tokenScopes, s) {
				t.Errorf("%s: scope %q reaches no client's token", p.Where, s)
			}
		}
		for _, role := range c.RealmRolesRequired {
			if !realm.hasRealmRole(role) {
				t.Errorf("%s: realm role %q is not in the realm", p.Where, role)
			}
		}
		for _, cr := range c.ClientRolesRequired {
			client, role, _ := strings.Cut(cr, ":")
			if !realm.hasClientRole(client, role) {
				t.Errorf("%s: client role %q is not in the realm", p.Where, cr)
			}
		}
		for _, id := range c.AllowedClients {
			if cl := realm.client(id); cl == nil || !isTrue(cl.ServiceAccountsEnabled) {
				t.Errorf("%s: allowed client %q is not a service-account client of the realm", p.Where, id)
			}
		}
		if c.Anonymous != "" && d.consumer(c.Anonymous) == nil {
			t.Errorf("%s: anonymous consumer %q is not declared", p.Where, c.Anonymous)
		}
		if c.ConsumerMapping && c.ConsumerClaim != "" && c.ConsumerClaim != "azp" && c.ConsumerClaim != "client_id" {
			t.Errorf("%s: consumer_claim %q: the demo maps consumers by client id", p.Where, c.ConsumerClaim)
		}
	}
	for _, c := range d.Consumers {
		if c.Username != "anonymous" && realm.client(c.Username) == nil {
			t.Errorf("consumer %q is named after no client of the realm", c.Username)
		}
	}
}

func checkRateLimiting(t *testing.T, p placedPlugin) {
	t.Helper()
	var c struct {
		Second, Minute, Hour, Day int
		Policy                    string `json:"policy"`
		LimitBy                   string `json:"limit_by"`
	}
	if err := json.Unmarshal(p.Config, &c); err != nil {
		t.Errorf("%s: rate-limiting config: %v", p.Where, err)
		return
	}
	if c.Second+c.Minute+c.Hour+c.Day <= 0 {
		t.Errorf("%s: rate-limiting sets no limit", p.Where)
	}
	if c.Policy != "local" {
		t.Errorf("%s: rate-limiting policy %q: DB-less Kong without Redis needs local", p.Where, c.Policy)
	}
	if c.LimitBy != "consumer" {
		t.Errorf("%s: rate-limiting limit_by %q, want consumer", p.Where, c.LimitBy)
	}
}

// TestKongRoutesAgainstRealm compiles every keycloak-jwt entry of kong.yml
// with the engine and checks its decision for each client of the realm
// export, using tokens shaped as Keycloak would issue them for that client
// (its default scopes, audience mappers, service-account roles), minted by
// the Keycloak-shaped test issuer. It pins the demo's intent: who may call
// which route, and the status of a refusal.
func TestKongRoutesAgainstRealm(t *testing.T) {
	d := loadKong(t)
	realm := loadRealm(t)

	var clients []testidp.Client
	for _, c := range realm.serviceClients() {
		u := realm.serviceAccount(c.ClientID)
		if u == nil {
			t.Fatalf("client %s has no service account", c.ClientID)
		}
		clients = append(clients, testidp.Client{
			ID: c.ClientID, Secret: c.Secret,
			Scopes:      slices.DeleteFunc(realm.grantedScopes(c), func(s string) bool { return s == "profile" }),
			RealmRoles:  u.RealmRoles,
			ClientRoles: u.ClientRoles,
			Audience:    realm.audiences(c),
		})
	}
	idp, err := testidp.New(testidp.Options{Realm: realm.Realm, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	keys := jwks.NewCache(jwks.Options{})

	const ok, unauthorized, forbidden = http.StatusOK, http.StatusUnauthorized, http.StatusForbidden
	want := map[string]map[string]int{
		"orders-read":  {OrdersService: ok, ReportsJob: ok, NoAudienceClient: unauthorized},
		"orders-write": {OrdersService: ok, ReportsJob: forbidden, NoAudienceClient: unauthorized},
		"orders-admin": {OrdersService: ok, ReportsJob: unauthorized, NoAudienceClient: unauthorized},
		"catalog":      {OrdersService: ok, ReportsJob: ok, NoAudienceClient: unauthorized},
		"reports-api":  {OrdersService: ok, ReportsJob: ok, NoAudienceClient: unauthorized},
		// Answers its JWKS path before any check; other paths need a token.
		"upstream-jwt-jwks": {OrdersService: ok, ReportsJob: ok, NoAudienceClient: unauthorized},
	}
	seen := map[string]bool{}
	for _, p := range d.plugins() {
		if p.Name != "keycloak-jwt" {
			continue
		}
		c, err := plugin.ParseConfig(p.Config)
		if err != nil {
			t.Fatalf("%s: %v", p.Where, err)
		}
		expect, listed := want[p.Owner]
		if !listed {
			t.Errorf("%s: no expected decisions for this entry; add it to the table", p.Where)
			continue
		}
		seen[p.Owner] = true
		cfg := c.PolicyConfig()
		cfg.Issuers = []policy.Issuer{{Issuer: idp.Issuer(), JWKSURI: idp.JWKSURL()}}
		pol, err := policy.Compile(cfg, policy.Deps{Keys: keys})
		if err != nil {
			t.Fatalf("%s: %v", p.Where, err)
		}
		for client, status := range expect {
			tok, err := idp.Token(client)
			if err != nil {
				t.Fatal(err)
			}
			dec := pol.Check(context.Background(), tok)
			if dec.Status != status {
				t.Errorf("%s, %s: status %d (%s: %s), want %d", p.Where, client, dec.Status, dec.Reason, dec.Detail, status)
			}
			// A client let through by a route that maps consumers must
			// have its consumer, or Kong refuses it after all.
			if dec.Allow && c.ConsumerMapping && !c.ConsumerOptional && d.consumer(client) == nil {
				t.Errorf("%s: %s is allowed but has no consumer", p.Where, client)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no keycloak-jwt entry on %s", name)
		}
	}
}
