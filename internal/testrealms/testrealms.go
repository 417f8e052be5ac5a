// Package testrealms serves many test realms under one host, as one
// Keycloak serves a realm per tenant: https://host/realms/<name>. Each
// realm is a testidp.IdP whose discovery document names the shared host as
// its issuer; realms can be added while tests run, and every discovery
// request is counted, those for realms that do not exist included. Test
// support only.
package testrealms

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// Host is the shared host of the realms.
type Host struct {
	srv     *httptest.Server
	clients []testidp.Client
	clock   func() time.Time

	mu     sync.RWMutex
	realms map[string]*testidp.IdP

	discoveries, unknown atomic.Int64
}

// New starts an empty host; every realm added gets clients. clock is
// time.Now when nil.
func New(clients []testidp.Client, clock func() time.Time) *Host {
	h := &Host{clients: clients, clock: clock, realms: map[string]*testidp.IdP{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	return h
}

// URL is the host's base URL.
func (h *Host) URL() string { return h.srv.URL }

// Pattern is the issuer pattern of the host's realms.
func (h *Host) Pattern() string { return h.srv.URL + "/realms/{tenant}" }

// Issuer is the issuer of realm name.
func (h *Host) Issuer(name string) string { return h.srv.URL + "/realms/" + name }

// Add creates realm name (it is served from then on).
func (h *Host) Add(name string) (*testidp.IdP, error) {
	idp, err := testidp.New(testidp.Options{Realm: name, Clients: h.clients, Clock: h.clock})
	if err != nil {
		return nil, err
	}
	idp.SetIssuerOverride(h.Issuer(name))
	h.mu.Lock()
	h.realms[name] = idp
	h.mu.Unlock()
	return idp, nil
}

// Remove stops serving realm name (its discovery answers 404).
func (h *Host) Remove(name string) {
	h.mu.Lock()
	idp := h.realms[name]
	delete(h.realms, name)
	h.mu.Unlock()
	if idp != nil {
		idp.Close()
	}
}

// Token mints an access token of client in realm name, with the host's
// issuer.
func (h *Host) Token(name, client string, opts ...testidp.MintOption) (string, error) {
	h.mu.RLock()
	idp := h.realms[name]
	h.mu.RUnlock()
	if idp == nil {
		return "", fmt.Errorf("testrealms: no realm %q", name)
	}
	return idp.Token(client, append([]testidp.MintOption{testidp.WithClaim("iss", h.Issuer(name))}, opts...)...)
}

// Discoveries counts discovery requests: all, and those for realms that do
// not exist.
func (h *Host) Discoveries() (all, unknown int64) { return h.discoveries.Load(), h.unknown.Load() }

// JWKSFetches sums the JWKS requests the realms received.
func (h *Host) JWKSFetches() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var n int64
	for _, idp := range h.realms {
		_, j := idp.Fetches()
		n += j
	}
	return n
}

func (h *Host) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/realms/")
	name, _, _ := strings.Cut(rest, "/")
	discovery := strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration")
	if discovery {
		h.discoveries.Add(1)
	}
	h.mu.RLock()
	idp := h.realms[name]
	h.mu.RUnlock()
	if !ok || idp == nil {
		if discovery {
			h.unknown.Add(1)
		}
		http.Error(w, `{"error":"Realm does not exist"}`, http.StatusNotFound)
		return
	}
	idp.Handler().ServeHTTP(w, r)
}

// Close stops the host and every realm.
func (h *Host) Close() {
	h.srv.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, idp := range h.realms {
		idp.Close()
	}
}
