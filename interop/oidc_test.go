package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// offsetClock is the real time plus an adjustable offset: tokens from the
// server carry real iat/exp, while the key cache's refetch rate limit can be
// stepped over without sleeping.
type offsetClock struct{ d atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.d.Add(int64(d)) }

// engine compiles policies against one key cache, as a gateway process does.
type engine struct {
	srv   *OIDCServer
	clock *offsetClock
	keys  *jwks.Cache
}

func newEngine(srv *OIDCServer) *engine {
	clock := &offsetClock{}
	return &engine{srv: srv, clock: clock, keys: jwks.NewCache(jwks.Options{Clock: clock.Now})}
}

// baseConfig trusts the server by its issuer alone (keys found through
// discovery), for aud orders-api, refetching at most once a second.
func (e *engine) baseConfig() policy.Config {
	return policy.Config{
		Requirements: policy.Requirements{
			Issuers:   []policy.Issuer{{Issuer: e.srv.Issuer()}},
			Audiences: []string{"orders-api"},
		},
		JWKS: policy.JWKSConfig{MinRefreshIntervalSeconds: 1},
	}
}

func (e *engine) compile(t *testing.T, edit func(*policy.Config)) *policy.Policy {
	t.Helper()
	cfg := e.baseConfig()
	if edit != nil {
		edit(&cfg)
	}
	p, err := policy.Compile(cfg, policy.Deps{Keys: e.keys, Clock: e.clock.Now})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func (e *engine) token(t *testing.T, r TokenRequest) string {
	t.Helper()
	if r.ClientSecret == "" {
		r.ClientSecret = DemoSecret(r.ClientID)
	}
	tok, err := e.srv.RequestToken(context.Background(), r)
	if err != nil {
		t.Fatalf("token for %s: %v", r.ClientID, err)
	}
	return tok.AccessToken
}

func check(p *policy.Policy, tok string) policy.Decision { return p.Check(context.Background(), tok) }

func wantAllow(t *testing.T, d policy.Decision, client string) {
	t.Helper()
	if !d.Allow {
		t.Fatalf("denied (status %d, reason %s): %s", d.Status, d.Reason, d.Detail)
	}
	if got := d.ClientID(); got != client {
		t.Errorf("client id %q, want %q", got, client)
	}
}

func wantDeny(t *testing.T, d policy.Decision, status int, reason string) {
	t.Helper()
	if d.Allow || d.Status != status || d.Reason != reason {
		t.Fatalf("got allow=%t status %d reason %q (%s), want status %d reason %q",
			d.Allow, d.Status, d.Reason, d.Detail, status, reason)
	}
}

// jwtHeader decodes the JOSE header of a compact JWS, without verifying it.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h
}

// TestOIDCProviderTokens checks the engine against real client-credentials
// tokens of an independent authorization server: RFC 9068 JWTs (typ at+jwt,
// client_id instead of azp), keys found through discovery, a JWKS that also
// holds an encryption key.
func TestOIDCProviderTokens(t *testing.T) {
	t.Parallel()
	srv := StartOIDCServer(t)
	e := newEngine(srv)
	read := e.compile(t, func(c *policy.Config) { c.ScopesRequired = []string{"orders:read"} })
	write := e.compile(t, func(c *policy.Config) { c.ScopesRequired = []string{"orders:write"} })

	t.Run("client_secret_basic token is allowed", func(t *testing.T) {
		tok := e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read orders:write", Auth: AuthBasic})
		if h := jwtHeader(t, tok); h["typ"] != "at+jwt" || h["alg"] != "RS256" {
			t.Fatalf("header %v: want an RS256 at+jwt token from oidc-provider", h)
		}
		d := check(read, tok)
		wantAllow(t, d, OrdersService)
		if d.Claims.AuthorizedParty != "" || d.Claims.ClientIDClaim != OrdersService {
			t.Errorf("azp %q client_id %q: the client should be named by client_id only",
				d.Claims.AuthorizedParty, d.Claims.ClientIDClaim)
		}
		if !slices.Equal(d.Claims.Scopes, []string{"orders:read", "orders:write"}) {
			t.Errorf("scopes %v", d.Claims.Scopes)
		}
		wantAllow(t, check(write, tok), OrdersService)
		if d := check(read, tok); !d.Allow || !d.CachedResult {
			t.Errorf("second check: allow=%t cached=%t, want a verified-token cache hit", d.Allow, d.CachedResult)
		}
	})

	t.Run("client_secret_post token is allowed", func(t *testing.T) {
		tok := e.token(t, TokenRequest{ClientID: ReportsJob, Scope: "orders:read", Auth: AuthPost})
		wantAllow(t, check(read, tok), ReportsJob)
	})

	t.Run("wrong audience is 401", func(t *testing.T) {
		tok := e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read", Resource: ResourceOtherAPI})
		d := check(read, tok)
		wantDeny(t, d, http.StatusUnauthorized, policy.ReasonAudience)
		if d.Error != policy.ErrInvalidToken {
			t.Errorf("error %q, want invalid_token", d.Error)
		}
		tok = e.token(t, TokenRequest{ClientID: NoAudienceClient, Scope: "orders:read"})
		wantDeny(t, check(read, tok), http.StatusUnauthorized, policy.ReasonAudience)
	})

	t.Run("missing scope is 403", func(t *testing.T) {
		tok := e.token(t, TokenRequest{ClientID: ReportsJob, Scope: "orders:read"})
		d := check(write, tok)
		wantDeny(t, d, http.StatusForbidden, policy.ReasonScope)
		if d.Error != policy.ErrInsufficientScope {
			t.Errorf("error %q, want insufficient_scope", d.Error)
		}
		if got := d.WWWAuthenticate("orders"); !strings.Contains(got, `error="insufficient_scope"`) ||
			!strings.Contains(got, `scope="orders:write"`) {
			t.Errorf("WWW-Authenticate %q", got)
		}
		// Without any scope the token carries no scope claim at all.
		tok = e.token(t, TokenRequest{ClientID: OrdersService})
		wantDeny(t, check(read, tok), http.StatusForbidden, policy.ReasonScope)
	})

	t.Run("roles from resource_access and realm_access", func(t *testing.T) {
		p := e.compile(t, func(c *policy.Config) {
			c.RealmRolesRequired = []string{"api-client", "orders-admin"}
			c.ClientRolesRequired = []string{"orders-api:reader", "orders-api:writer"}
		})
		wantAllow(t, check(p, e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read"})), OrdersService)
		wantDeny(t, check(p, e.token(t, TokenRequest{ClientID: ReportsJob, Scope: "orders:read"})),
			http.StatusForbidden, policy.ReasonRealmRole)
		p = e.compile(t, func(c *policy.Config) { c.ClientRolesRequired = []string{"orders-api:writer"} })
		wantDeny(t, check(p, e.token(t, TokenRequest{ClientID: ReportsJob, Scope: "orders:read"})),
			http.StatusForbidden, policy.ReasonClientRole)
	})

	t.Run("allowed_clients matches client_id", func(t *testing.T) {
		p := e.compile(t, func(c *policy.Config) { c.AllowedClients = []string{ReportsJob} })
		wantAllow(t, check(p, e.token(t, TokenRequest{ClientID: ReportsJob, Scope: "orders:read"})), ReportsJob)
		wantDeny(t, check(p, e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read"})),
			http.StatusUnauthorized, policy.ReasonClient)
	})

	t.Run("token_types", func(t *testing.T) {
		tok := e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read"})
		onlyKeycloak := e.compile(t, func(c *policy.Config) { c.TokenTypes = []string{policy.TypeBearer} })
		wantDeny(t, check(onlyKeycloak, tok), http.StatusUnauthorized, policy.ReasonType)
		onlyRFC9068 := e.compile(t, func(c *policy.Config) { c.TokenTypes = []string{policy.TypeATJWT} })
		wantAllow(t, check(onlyRFC9068, tok), OrdersService)
	})

	t.Run("jwks_uri without discovery", func(t *testing.T) {
		p := e.compile(t, func(c *policy.Config) {
			c.Issuers = []policy.Issuer{{Issuer: srv.Issuer(), JWKSURI: srv.JWKSURI()}}
		})
		wantAllow(t, check(p, e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read"})), OrdersService)
	})

	t.Run("issuer under another host name is refused", func(t *testing.T) {
		// The classic deployment mistake: the gateway trusts the URL it can
		// reach, while tokens name the issuer their clients used.
		other := strings.Replace(srv.Issuer(), "127.0.0.1", "localhost", 1)
		p := e.compile(t, func(c *policy.Config) {
			c.Issuers = []policy.Issuer{{Issuer: other, JWKSURI: srv.JWKSURI()}}
		})
		wantDeny(t, check(p, e.token(t, TokenRequest{ClientID: OrdersService, Scope: "orders:read"})),
			http.StatusUnauthorized, policy.ReasonIssuer)
	})

	t.Run("the server refuses what the realm does not grant", func(t *testing.T) {
		_, err := srv.RequestToken(context.Background(),
			TokenRequest{ClientID: ReportsJob, ClientSecret: DemoSecret(ReportsJob), Scope: "orders:write"})
		if !IsOAuthError(err, "invalid_scope") {
			t.Errorf("reports-job asking for orders:write: %v, want invalid_scope", err)
		}
		_, err = srv.Token(OrdersService, "not-the-secret", "orders:read")
		if !IsOAuthError(err, "invalid_client") {
			t.Errorf("wrong secret: %v, want invalid_client", err)
		}
	})
}

// TestOIDCProviderKeyRotation rotates the server's signing key: a token
// signed with the new key is accepted after exactly one refetch of the JWKS,
// tokens of the previous (still published) key stay valid, and once the old
// key is unpublished its tokens are refused.
func TestOIDCProviderKeyRotation(t *testing.T) {
	t.Parallel()
	srv := StartOIDCServer(t)
	e := newEngine(srv)
	p := e.compile(t, func(c *policy.Config) { c.ScopesRequired = []string{"orders:read"} })
	src := p.Sources()[0]
	req := TokenRequest{ClientID: OrdersService, Scope: "orders:read"}

	old := e.token(t, req)
	wantAllow(t, check(p, old), OrdersService)
	oldKid, published, err := srv.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if kid := jwtHeader(t, old)["kid"]; kid != oldKid || len(published) != 1 {
		t.Fatalf("token kid %v, server signs with %s and publishes %v", kid, oldKid, published)
	}
	fetches := src.Status().Fetches

	newKid, err := srv.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.token(t, req)
	if kid := jwtHeader(t, fresh)["kid"]; kid != newKid || newKid == oldKid {
		t.Fatalf("after rotation the token has kid %v, want the new kid %s (old %s)", kid, newKid, oldKid)
	}
	// Step past min_refresh_interval (1s) since the first fetch: the unknown
	// kid triggers one refetch, which finds the new key.
	e.clock.Advance(2 * time.Second)
	wantAllow(t, check(p, fresh), OrdersService)
	if got := src.Status().Fetches; got != fetches+1 {
		t.Errorf("JWKS fetches %d, want %d: exactly one refetch for the new kid", got, fetches+1)
	}
	wantAllow(t, check(p, fresh), OrdersService)
	wantAllow(t, check(p, old), OrdersService) // the previous key is still published
	if got := src.Status().Fetches; got != fetches+1 {
		t.Errorf("JWKS fetches %d after more checks, want still %d", got, fetches+1)
	}

	// Retire every older key: the next refetch drops the first key, and
	// tokens it signed are refused even though they are in the token cache.
	if _, err := srv.RotateRetiringOld(); err != nil {
		t.Fatal(err)
	}
	newest := e.token(t, req)
	e.clock.Advance(2 * time.Second)
	wantAllow(t, check(p, newest), OrdersService)
	wantDeny(t, check(p, old), http.StatusUnauthorized, policy.ReasonUnknownKey)
	wantDeny(t, check(p, fresh), http.StatusUnauthorized, policy.ReasonUnknownKey)
}
