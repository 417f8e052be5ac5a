// Package testidp is an in-process, Keycloak-shaped OAuth2/OIDC issuer for
// tests and the demo.
//
// An IdP behaves like a Keycloak 24+ realm as far as the client-credentials
// flow is concerned: it serves the OpenID discovery document, the JWKS
// ("certs") endpoint and the token endpoint on a loopback listener, and it
// mints access tokens whose header and payload have the same shape as the ones
// Keycloak issues to service accounts. On top of that it offers the knobs a
// verifier test needs: key rotation and removal, hand-crafted and hostile
// tokens, injected faults on the discovery and JWKS endpoints, and request
// counters.
//
// All methods are safe for concurrent use.
package testidp

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a confidential client registered in the realm, with its service
// account enabled.
type Client struct {
	// ID and Secret are the client credentials. A client with an empty
	// Secret cannot authenticate at the token endpoint, but Token still mints
	// tokens for it.
	ID, Secret string
	// Scopes are the client scopes granted to the client, e.g. "orders:read".
	Scopes []string
	// RealmRoles are realm roles of the service account in addition to the
	// default ones (default-roles-<realm>, offline_access, uma_authorization).
	RealmRoles []string
	// ClientRoles are placed in resource_access: client id -> roles. Roles for
	// "account" are merged with the default account roles.
	ClientRoles map[string][]string
	// OptionalScopes are optional client scopes: in a token only when the
	// token request asks for them (scope=...).
	OptionalScopes []string
	// Audience lists extra aud values, as an audience mapper would add them.
	// With ShapeConsole tokens always carry "account" as well.
	Audience []string
}

// Shape selects which of Keycloak's token shapes an IdP mints.
type Shape int

const (
	// ShapeConsole (the default) is a realm made in the admin console,
	// with Keycloak's built-in client scopes and default roles: aud always
	// holds "account", realm_access the default roles, resource_access the
	// account roles, scope "profile email ...", plus allowed-origins,
	// email_verified and clientId.
	ShapeConsole Shape = iota
	// ShapeExport is what Keycloak 26 issues for a realm imported from an
	// export that declares its own client scopes, as
	// examples/keycloak/realm-demo.json does: only the claims of the
	// declared mappers (aud only from audience mappers, roles exactly as
	// assigned, scope "profile ...", client_id), the default scopes always
	// granted and optional ones added on request.
	ShapeExport
)

// clone returns a deep copy of c, so that the IdP never shares mutable state
// with its caller.
func (c Client) clone() Client {
	out := c
	out.Scopes = slices.Clone(c.Scopes)
	out.OptionalScopes = slices.Clone(c.OptionalScopes)
	out.RealmRoles = slices.Clone(c.RealmRoles)
	out.Audience = slices.Clone(c.Audience)
	if c.ClientRoles != nil {
		out.ClientRoles = make(map[string][]string, len(c.ClientRoles))
		for k, v := range c.ClientRoles {
			out.ClientRoles[k] = slices.Clone(v)
		}
	}
	return out
}

// Options configures New. The zero value is usable.
type Options struct {
	// Realm is the realm name; default "demo". It may contain only
	// letters, digits, '.', '_' and '-'.
	Realm string
	// Alg is the signing algorithm of generated keys: "RS256" (default,
	// RSA-2048), "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
	// "ES384", "ES512" or "EdDSA" (Ed25519).
	Alg string
	// TokenTTL is the access-token lifetime; default 5m.
	TokenTTL time.Duration
	// Clients are the clients registered in the realm.
	Clients []Client
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Clock returns the current time used for iat and exp; default time.Now.
	Clock func() time.Time
	// Shape is the shape of the access tokens; default ShapeConsole.
	// Realm.Options sets ShapeExport.
	Shape Shape
}

// Fault describes a failure injected into the discovery and/or JWKS
// endpoints. The zero value means "behave normally". When several fields are
// set, Slow is applied first, then the first of Reset, Down, BadJSON and
// HugeBytes that is set.
type Fault struct {
	// Down makes the endpoint answer 503 Service Unavailable.
	Down bool
	// BadJSON makes the endpoint answer 200 with a truncated, invalid JSON
	// document.
	BadJSON bool
	// Slow delays the answer by this long. The delay ends early, without an
	// answer, if the request context is cancelled or the IdP is closed.
	Slow time.Duration
	// HugeBytes pads the (otherwise valid) JSON document with an extra
	// "x-padding" member so that the body is HugeBytes long. The body is
	// streamed without a Content-Length header when it is large.
	HugeBytes int
	// Reset closes the connection (with a TCP RST where possible) without
	// sending any response.
	Reset bool
}

// IdP is a running Keycloak-like realm. Create it with New and stop it with
// Close.
type IdP struct {
	realm string
	shape Shape
	alg   string
	ttl   time.Duration
	clock func() time.Time

	ln      net.Listener
	srv     *http.Server
	handler http.Handler
	url     string

	closeOnce sync.Once
	closed    chan struct{}

	discoveryFetches atomic.Int64
	jwksFetches      atomic.Int64

	// hmacKid and hmacSecret are the realm's HS512 key, used for refresh
	// tokens. They never change.
	hmacKid    string
	hmacSecret []byte

	mu             sync.RWMutex
	clients        map[string]Client
	keys           []*key          // in creation order
	byKid          map[string]*key // same keys, by kid
	currentKid     string
	encKid         string
	discoveryFault Fault
	jwksFault      Fault
	cacheControl   string
	issuerOverride string
}

var realmPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// New creates a realm with one signing key of opts.Alg and one RSA-OAEP
// encryption key, and starts serving it on opts.Addr.
func New(opts Options) (*IdP, error) {
	i := &IdP{
		realm:        opts.Realm,
		shape:        opts.Shape,
		alg:          opts.Alg,
		ttl:          opts.TokenTTL,
		clock:        opts.Clock,
		closed:       make(chan struct{}),
		clients:      make(map[string]Client, len(opts.Clients)),
		byKid:        make(map[string]*key),
		cacheControl: "max-age=300",
	}
	if i.realm == "" {
		i.realm = "demo"
	}
	if !realmPattern.MatchString(i.realm) {
		return nil, fmt.Errorf("testidp: invalid realm name %q", i.realm)
	}
	if i.alg == "" {
		i.alg = "RS256"
	}
	if _, ok := algorithms[i.alg]; !ok {
		return nil, fmt.Errorf("testidp: unsupported signing algorithm %q", i.alg)
	}
	if i.ttl <= 0 {
		i.ttl = 5 * time.Minute
	}
	if i.clock == nil {
		i.clock = time.Now
	}
	for _, c := range opts.Clients {
		if err := i.AddClient(c); err != nil {
			return nil, err
		}
	}

	if _, err := i.addKey(i.alg, "sig", true); err != nil {
		return nil, err
	}
	i.currentKid = i.keys[0].kid
	enc, err := i.addKey("RS256", "enc", true)
	if err != nil {
		return nil, err
	}
	i.encKid = enc.kid

	i.hmacKid = newUUID()
	i.hmacSecret = randomBytes(64)

	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testidp: listen: %w", err)
	}
	i.ln = ln
	i.url = "http://" + ln.Addr().String()
	i.handler = i.routes()
	i.srv = &http.Server{
		Handler:           i.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Aborted and hijacked connections are expected here; keep the
		// test output clean.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = i.srv.Serve(ln) }()
	return i, nil
}

// AddClient registers another client. It fails if the ID is empty or already
// registered.
func (i *IdP) AddClient(c Client) error {
	if c.ID == "" {
		return errors.New("testidp: client with empty ID")
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, dup := i.clients[c.ID]; dup {
		return fmt.Errorf("testidp: duplicate client %q", c.ID)
	}
	i.clients[c.ID] = c.clone()
	return nil
}

// client returns the registered client with the given ID.
func (i *IdP) client(id string) (Client, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	c, ok := i.clients[id]
	return c, ok
}

// URL returns the base URL of the server, e.g. "http://127.0.0.1:41234".
func (i *IdP) URL() string { return i.url }

// Realm returns the realm name.
func (i *IdP) Realm() string { return i.realm }

// Issuer returns the realm's issuer, URL()+"/realms/"+realm. Tokens carry it
// in "iss" regardless of SetIssuerOverride.
func (i *IdP) Issuer() string { return i.url + "/realms/" + i.realm }

// DiscoveryURL returns the URL of the OpenID discovery document.
func (i *IdP) DiscoveryURL() string { return i.Issuer() + "/.well-known/openid-configuration" }

// JWKSURL returns the URL of the JWKS ("certs") endpoint.
func (i *IdP) JWKSURL() string { return i.Issuer() + "/protocol/openid-connect/certs" }

// TokenURL returns the URL of the token endpoint.
func (i *IdP) TokenURL() string { return i.Issuer() + "/protocol/openid-connect/token" }

// Handler returns the HTTP handler serving the realm endpoints, for mounting
// in another server. Documents it serves still refer to URL().
func (i *IdP) Handler() http.Handler { return i.handler }

// Close stops the server and closes all open connections. It is safe to call
// more than once.
func (i *IdP) Close() {
	i.closeOnce.Do(func() {
		close(i.closed)
		_ = i.srv.Close()
	})
}

// SetFault injects f into both the discovery and JWKS endpoints. Pass the
// zero Fault to restore normal behaviour. The token endpoint is unaffected.
func (i *IdP) SetFault(f Fault) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.discoveryFault = f
	i.jwksFault = f
}

// SetDiscoveryFault injects f into the discovery endpoint only.
func (i *IdP) SetDiscoveryFault(f Fault) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.discoveryFault = f
}

// SetJWKSFault injects f into the JWKS endpoint only.
func (i *IdP) SetJWKSFault(f Fault) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.jwksFault = f
}

// SetCacheControl sets the Cache-Control header of JWKS responses (default
// "max-age=300"). An empty value omits the header.
func (i *IdP) SetCacheControl(v string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cacheControl = v
}

// SetIssuerOverride makes the discovery document report iss as its issuer,
// to test issuer-mismatch handling. An empty value restores Issuer().
func (i *IdP) SetIssuerOverride(iss string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.issuerOverride = iss
}

// Fetches returns how many requests the discovery and JWKS endpoints have
// received, including those answered with an injected fault.
func (i *IdP) Fetches() (discovery, jwks int64) {
	return i.discoveryFetches.Load(), i.jwksFetches.Load()
}

// CurrentKid returns the kid of the key that signs tokens by default.
func (i *IdP) CurrentKid() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.currentKid
}

// EncKid returns the kid of the RSA-OAEP key published with use "enc".
func (i *IdP) EncKid() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.encKid
}

// RotateKey generates a new signing key of the realm's algorithm, publishes
// it and makes it current. Previous keys stay published until RemoveKey.
func (i *IdP) RotateKey() (newKid string, err error) {
	k, err := i.addKey(i.alg, "sig", true)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	i.currentKid = k.kid
	i.mu.Unlock()
	return k.kid, nil
}

// AddKey generates an additional signing key for alg (any algorithm New
// accepts), optionally publishing it, without making it current. Use it with
// WithKid to sign tokens with a key the verifier does not know (publish false)
// or with an unexpected algorithm.
func (i *IdP) AddKey(alg string, publish bool) (kid string, err error) {
	k, err := i.addKey(alg, "sig", publish)
	if err != nil {
		return "", err
	}
	return k.kid, nil
}

// RemoveKey stops publishing the key with the given kid. The key is kept, so
// PublicKey, PrivateKey and WithKid still work with it; removing the current
// key leaves it current, so new tokens carry an unpublished kid.
func (i *IdP) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if k, ok := i.byKid[kid]; ok {
		k.published = false
	}
}

// PublicKey returns the public key with the given kid (published or not), or
// nil if there is none.
func (i *IdP) PublicKey(kid string) crypto.PublicKey {
	if k := i.key(kid); k != nil {
		return k.signer.Public()
	}
	return nil
}

// PrivateKey returns the private key with the given kid (published or not,
// including the enc key), or nil if there is none. The concrete types are
// *rsa.PrivateKey, *ecdsa.PrivateKey and ed25519.PrivateKey.
func (i *IdP) PrivateKey(kid string) crypto.Signer {
	if k := i.key(kid); k != nil {
		return k.signer
	}
	return nil
}

// key returns the key with the given kid, or nil.
func (i *IdP) key(kid string) *key {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.byKid[kid]
}
