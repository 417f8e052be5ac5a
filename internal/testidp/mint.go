package testidp

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// refreshTTL is the lifetime of refresh tokens (Keycloak's default SSO
// session idle timeout).
const refreshTTL = 30 * time.Minute

// mint collects the MintOptions of one call.
type mint struct {
	claimEdits  []func(map[string]any)
	headerEdits []func(map[string]any)
	ttl         time.Duration
	hasTTL      bool
	kid         string
	scope       string
	hasScope    bool
}

// MintOption adjusts a token minted by Token, Sign or RefreshToken.
type MintOption func(*mint)

// WithClaim sets payload claim k to v, overriding the default value. v is
// encoded with encoding/json, so a json.RawMessage can inject any literal
// (e.g. a fractional or string "exp").
func WithClaim(k string, v any) MintOption {
	return func(m *mint) {
		m.claimEdits = append(m.claimEdits, func(c map[string]any) { c[k] = v })
	}
}

// WithoutClaim removes payload claim k.
func WithoutClaim(k string) MintOption {
	return func(m *mint) {
		m.claimEdits = append(m.claimEdits, func(c map[string]any) { delete(c, k) })
	}
}

// WithHeader sets JOSE header member k to v. The signature is still made
// with the signing key's real algorithm, so WithHeader("alg", ...) produces a
// token whose header lies about its algorithm.
func WithHeader(k string, v any) MintOption {
	return func(m *mint) {
		m.headerEdits = append(m.headerEdits, func(h map[string]any) { h[k] = v })
	}
}

// WithoutHeader removes JOSE header member k.
func WithoutHeader(k string) MintOption {
	return func(m *mint) {
		m.headerEdits = append(m.headerEdits, func(h map[string]any) { delete(h, k) })
	}
}

// WithTTL sets exp to iat+d (d may be negative for an already expired token).
// With Sign it also sets iat to the current time.
func WithTTL(d time.Duration) MintOption {
	return func(m *mint) { m.ttl, m.hasTTL = d, true }
}

// WithKid signs with the key that has this kid (published or not, including
// the enc key, which then signs with RS256) instead of the current key. It
// has no effect on RefreshToken.
func WithKid(kid string) MintOption {
	return func(m *mint) { m.kid = kid }
}

// WithScope requests scopes, as the token endpoint's scope parameter does:
// with Token the requested (space-separated) scopes must be a subset of the
// client's; with Sign, s becomes the "scope" claim verbatim.
func WithScope(s string) MintOption {
	return func(m *mint) { m.scope, m.hasScope = s, true }
}

func newMint(opts []MintOption) *mint {
	m := &mint{}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	return m
}

// Token returns an access token for the registered client clientID, exactly
// as the token endpoint would issue it (with clientHost and clientAddress
// set to 127.0.0.1).
func (i *IdP) Token(clientID string, opts ...MintOption) (string, error) {
	c, ok := i.client(clientID)
	if !ok {
		return "", fmt.Errorf("testidp: unknown client %q", clientID)
	}
	m := newMint(opts)
	scope, err := grantedScope(c, m.scope, i.shape)
	if err != nil {
		return "", err
	}
	return i.signAccess(c, scope, "127.0.0.1", m)
}

// signAccess mints and signs the access token of client c.
func (i *IdP) signAccess(c Client, scope, clientAddr string, m *mint) (string, error) {
	ttl := i.ttl
	if m.hasTTL {
		ttl = m.ttl
	}
	return i.signWithKey(i.accessClaims(c, scope, clientAddr, i.clock(), ttl), m)
}

// accessClaims builds the payload of a Keycloak client-credentials access
// token.
func (i *IdP) accessClaims(c Client, scope, clientAddr string, now time.Time, ttl time.Duration) map[string]any {
	var aud []string
	for _, a := range append(slices.Clone(c.Audience), "account") {
		if !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	var audClaim any = aud
	if len(aud) == 1 {
		audClaim = aud[0]
	}

	realmRoles := []string{"default-roles-" + i.realm, "offline_access", "uma_authorization"}
	for _, r := range c.RealmRoles {
		if !slices.Contains(realmRoles, r) {
			realmRoles = append(realmRoles, r)
		}
	}

	resourceAccess := map[string]any{}
	accountRoles := []string{"manage-account", "manage-account-links", "view-profile"}
	for client, roles := range c.ClientRoles {
		if client == "account" {
			for _, r := range roles {
				if !slices.Contains(accountRoles, r) {
					accountRoles = append(accountRoles, r)
				}
			}
			continue
		}
		resourceAccess[client] = map[string]any{"roles": slices.Clone(roles)}
	}
	resourceAccess["account"] = map[string]any{"roles": accountRoles}

	iat := now.Unix()
	if i.shape == ShapeExport {
		return i.exportClaims(c, scope, clientAddr, iat, ttl)
	}
	return map[string]any{
		"exp":                iat + int64(ttl/time.Second),
		"iat":                iat,
		"jti":                newUUID(),
		"iss":                i.Issuer(),
		"aud":                audClaim,
		"sub":                i.subject(c.ID),
		"typ":                "Bearer",
		"azp":                c.ID,
		"acr":                "1",
		"allowed-origins":    []string{"/*"},
		"realm_access":       map[string]any{"roles": realmRoles},
		"resource_access":    resourceAccess,
		"scope":              scope,
		"email_verified":     false,
		"clientHost":         clientAddr,
		"preferred_username": "service-account-" + strings.ToLower(c.ID),
		"clientAddress":      clientAddr,
		"clientId":           c.ID,
	}
}

// exportClaims builds the payload Keycloak 26 issues to a service account
// of an imported realm that declares its own client scopes (ShapeExport):
// the claims of the declared mappers only.
func (i *IdP) exportClaims(c Client, scope, clientAddr string, iat int64, ttl time.Duration) map[string]any {
	claims := map[string]any{
		"exp":                iat + int64(ttl/time.Second),
		"iat":                iat,
		"jti":                "trrtcc:" + newUUID(),
		"iss":                i.Issuer(),
		"sub":                i.subject(c.ID),
		"typ":                "Bearer",
		"azp":                c.ID,
		"acr":                "1",
		"scope":              scope,
		"clientHost":         clientAddr,
		"preferred_username": "service-account-" + strings.ToLower(c.ID),
		"clientAddress":      clientAddr,
		"client_id":          c.ID,
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		claims["aud"] = c.Audience[0]
	default:
		claims["aud"] = slices.Clone(c.Audience)
	}
	if len(c.RealmRoles) > 0 {
		claims["realm_access"] = map[string]any{"roles": slices.Clone(c.RealmRoles)}
	}
	if len(c.ClientRoles) > 0 {
		ra := map[string]any{}
		for client, roles := range c.ClientRoles {
			ra[client] = map[string]any{"roles": slices.Clone(roles)}
		}
		claims["resource_access"] = ra
	}
	return claims
}

// accessClaimOrder is the member order of Keycloak access tokens; other
// members follow in lexical order.
var accessClaimOrder = []string{
	"exp", "iat", "jti", "iss", "aud", "sub", "typ", "azp", "acr",
	"allowed-origins", "realm_access", "resource_access", "scope",
	"email_verified", "clientHost", "preferred_username", "clientAddress", "clientId", "client_id",
}

// headerOrder is the member order of Keycloak JOSE headers.
var headerOrder = []string{"alg", "typ", "kid"}

// ScopeError reports requested scopes the client is not granted. The token
// endpoint answers it with 400 invalid_scope.
type ScopeError struct {
	Scopes []string
}

func (e *ScopeError) Error() string {
	return "Invalid scopes: " + strings.Join(e.Scopes, " ")
}

// grantedScope returns the scope claim for client c given the requested
// scope parameter. ShapeConsole: "profile email" plus the requested client
// scopes, or all of the client's scopes when none is requested. ShapeExport:
// the client's default scopes (Scopes, "profile" among them when declared)
// always, plus the requested optional ones. "openid" may be requested and
// is then listed first.
func grantedScope(c Client, requested string, shape Shape) (string, error) {
	if shape == ShapeExport {
		return exportScope(c, requested)
	}
	fields := strings.Fields(requested)
	openid := false
	var extra, invalid []string
	for _, s := range fields {
		switch {
		case s == "openid":
			openid = true
		case s == "profile" || s == "email":
		case slices.Contains(c.Scopes, s) || slices.Contains(c.OptionalScopes, s):
			if !slices.Contains(extra, s) {
				extra = append(extra, s)
			}
		default:
			invalid = append(invalid, s)
		}
	}
	if len(invalid) > 0 {
		return "", &ScopeError{Scopes: invalid}
	}
	if len(fields) == 0 {
		extra = c.Scopes
	}
	var parts []string
	if openid {
		parts = append(parts, "openid")
	}
	parts = append(parts, "profile", "email")
	for _, s := range extra {
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " "), nil
}

// exportScope is grantedScope for ShapeExport.
func exportScope(c Client, requested string) (string, error) {
	var parts, invalid, extra []string
	for _, s := range strings.Fields(requested) {
		switch {
		case s == "openid":
			if !slices.Contains(parts, s) {
				parts = append(parts, s)
			}
		case slices.Contains(c.Scopes, s):
		case slices.Contains(c.OptionalScopes, s):
			if !slices.Contains(extra, s) {
				extra = append(extra, s)
			}
		default:
			invalid = append(invalid, s)
		}
	}
	if len(invalid) > 0 {
		return "", &ScopeError{Scopes: invalid}
	}
	parts = append(parts, c.Scopes...)
	return strings.Join(append(parts, extra...), " "), nil
}

// Sign signs arbitrary claims with the current key (or WithKid's) under a
// header {"alg":..,"typ":"JWT","kid":..}. Nothing is added to the claims
// except what WithTTL, WithScope and WithClaim ask for.
func (i *IdP) Sign(claims map[string]any, opts ...MintOption) (string, error) {
	m := newMint(opts)
	c := make(map[string]any, len(claims)+2)
	for k, v := range claims {
		c[k] = v
	}
	if m.hasTTL {
		iat := i.clock().Unix()
		c["iat"] = iat
		c["exp"] = iat + int64(m.ttl/time.Second)
	}
	if m.hasScope {
		c["scope"] = m.scope
	}
	return i.signWithKey(c, m)
}

// signWithKey applies the edits of m to claims and signs them with m's key
// or the current one.
func (i *IdP) signWithKey(claims map[string]any, m *mint) (string, error) {
	kid := m.kid
	if kid == "" {
		kid = i.CurrentKid()
	}
	k := i.key(kid)
	if k == nil {
		return "", fmt.Errorf("testidp: unknown kid %q", kid)
	}
	header := map[string]any{"alg": k.alg, "typ": "JWT", "kid": k.kid}
	return encodeJWS(header, claims, m, func(input []byte) ([]byte, error) {
		return sign(k.alg, k.signer, input)
	})
}

// SignRaw signs the exact header and payload bytes (which need not be valid
// JSON) with the current key's algorithm and returns the compact JWS.
func (i *IdP) SignRaw(header, payload []byte) (string, error) {
	k := i.key(i.CurrentKid())
	if k == nil {
		return "", fmt.Errorf("testidp: no current key")
	}
	return compact(header, payload, func(input []byte) ([]byte, error) {
		return sign(k.alg, k.signer, input)
	})
}

// RefreshToken returns a Keycloak-like refresh token for the registered
// client clientID: signed with the realm's HS512 key, header typ "JWT",
// payload typ "Refresh" and aud the issuer. WithKid is ignored.
func (i *IdP) RefreshToken(clientID string, opts ...MintOption) (string, error) {
	c, ok := i.client(clientID)
	if !ok {
		return "", fmt.Errorf("testidp: unknown client %q", clientID)
	}
	m := newMint(opts)
	scope, err := grantedScope(c, m.scope, i.shape)
	if err != nil {
		return "", err
	}
	ttl := refreshTTL
	if m.hasTTL {
		ttl = m.ttl
	}
	iat := i.clock().Unix()
	claims := map[string]any{
		"exp":   iat + int64(ttl/time.Second),
		"iat":   iat,
		"jti":   newUUID(),
		"iss":   i.Issuer(),
		"aud":   i.Issuer(),
		"sub":   i.subject(c.ID),
		"typ":   "Refresh",
		"azp":   c.ID,
		"scope": scope,
		"sid":   newUUID(),
	}
	header := map[string]any{"alg": "HS512", "typ": "JWT", "kid": i.hmacKid}
	return encodeJWS(header, claims, m, func(input []byte) ([]byte, error) {
		mac := hmac.New(sha512.New, i.hmacSecret)
		mac.Write(input)
		return mac.Sum(nil), nil
	})
}

// encodeJWS applies m's edits to header and claims, encodes both in
// Keycloak's member order and signs them.
func encodeJWS(header, claims map[string]any, m *mint, signFn func([]byte) ([]byte, error)) (string, error) {
	for _, e := range m.headerEdits {
		e(header)
	}
	for _, e := range m.claimEdits {
		e(claims)
	}
	h, err := marshalOrdered(header, headerOrder)
	if err != nil {
		return "", err
	}
	p, err := marshalOrdered(claims, accessClaimOrder)
	if err != nil {
		return "", err
	}
	return compact(h, p, signFn)
}

// compact returns base64url(header).base64url(payload).base64url(signature).
func compact(header, payload []byte, signFn func([]byte) ([]byte, error)) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(header) + "." + b64(payload)
	sig, err := signFn([]byte(input))
	if err != nil {
		return "", fmt.Errorf("testidp: sign: %w", err)
	}
	return input + "." + b64(sig), nil
}

// marshalOrdered encodes m as a JSON object with the keys in order first
// (those present), then the remaining keys sorted. HTML characters are not
// escaped, as in Keycloak's output.
func marshalOrdered(m map[string]any, order []string) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for _, k := range order {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	keys = append(keys, rest...)

	var buf bytes.Buffer
	buf.WriteByte('{')
	for n, k := range keys {
		if n > 0 {
			buf.WriteByte(',')
		}
		kb, err := marshalJSON(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshalJSON(m[k])
		if err != nil {
			return nil, fmt.Errorf("testidp: encode %q: %w", k, err)
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshalJSON is json.Marshal without HTML escaping.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// subject returns the stable service-account user id of a client.
func (i *IdP) subject(clientID string) string {
	sum := sha256.Sum256([]byte("testidp/service-account/" + i.realm + "/" + clientID))
	return formatUUID(sum[:16])
}

// newUUID returns a random version-4 UUID.
func newUUID() string { return formatUUID(randomBytes(16)) }

// formatUUID formats 16 bytes as a version-4, RFC 4122 variant UUID.
func formatUUID(b []byte) string {
	u := slices.Clone(b[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return b
}
