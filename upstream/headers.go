// Package upstream renders what both adapters (the Kong plugin and the
// sidecar) send upstream for an allowed request: identity headers derived
// from the verified claims and, optionally, a short-lived JWT signed by the
// gateway. It never decides anything: policy decides, upstream only renders
// an allowed policy.Decision.
package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/textproto"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Default identity header names.
const (
	DefaultClientIDHeader = "X-Client-Id"
	DefaultSubjectHeader  = "X-Client-Subject"
	DefaultScopesHeader   = "X-Client-Scopes"
	DefaultRolesHeader    = "X-Client-Roles"
	DefaultTenantHeader   = "X-Tenant"
)

// Disabled is the header name that turns an identity header off.
const Disabled = "-"

// MaxValueBytes caps every rendered header value (longer values are
// truncated at a UTF-8 boundary).
const MaxValueBytes = 4096

// maxNameBytes caps a configured header name.
const maxNameBytes = 256

// HeadersConfig is the operator-facing configuration of the identity
// headers. The JSON names are the configuration names of the Kong config
// record "upstream_headers" and of the sidecar YAML.
type HeadersConfig struct {
	// ClientIDHeader carries the client id (azp, else client_id, else sub).
	// Default "X-Client-Id"; "-" disables it.
	ClientIDHeader string `json:"client_id_header"`
	// SubjectHeader carries "sub". Default "X-Client-Subject"; "-" disables it.
	SubjectHeader string `json:"subject_header"`
	// ScopesHeader carries the scopes, space-separated. Default
	// "X-Client-Scopes"; "-" disables it.
	ScopesHeader string `json:"scopes_header"`
	// RolesHeader carries the realm roles then the client roles as
	// "client:role", comma-separated. Default "X-Client-Roles"; "-" disables it.
	RolesHeader string `json:"roles_header"`
	// TenantHeader carries the tenant: the realm an issuer pattern
	// (issuers[].issuer with {tenant}) matched; not set for fixed issuers.
	// Default "X-Tenant"; "-" disables it.
	TenantHeader string `json:"tenant_header"`
	// ClaimHeaders maps a claim name to a header name, e.g.
	// {"clientHost": "X-Client-Host"}. A dotted name such as
	// "resource_access.orders-api.roles" reaches into nested objects when
	// the payload has no top-level claim of that exact name.
	ClaimHeaders map[string]string `json:"claim_headers"`
	// StripAuthorization removes the Authorization header before forwarding.
	StripAuthorization bool `json:"strip_authorization"`
}

// claimHeader is one compiled entry of ClaimHeaders.
type claimHeader struct {
	claim  string
	header string // canonical
}

// Headers is a compiled HeadersConfig. It is immutable and safe for
// concurrent use.
type Headers struct {
	clientID, subject, scopes, roles string // canonical, "" when disabled
	tenant                           string
	claims                           []claimHeader
	names                            []string
	strip                            bool
}

// configPrefix is the name of the configuration record in error messages.
const configPrefix = "upstream_headers"

// CompileHeaders validates c and applies the defaults. Errors are
// *policy.ConfigError values naming the offending field.
func CompileHeaders(c HeadersConfig) (*Headers, error) {
	h := &Headers{strip: c.StripAuthorization}
	seen := map[string]string{} // canonical name -> field that set it
	use := func(field, name string) error {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if prev, ok := seen[canon]; ok {
			return cfgErr(field, "header %q is already set by %s", name, prev)
		}
		seen[canon] = field
		return nil
	}
	identity := []struct {
		field, value, def string
		dst               *string
	}{
		{"client_id_header", c.ClientIDHeader, DefaultClientIDHeader, &h.clientID},
		{"subject_header", c.SubjectHeader, DefaultSubjectHeader, &h.subject},
		{"scopes_header", c.ScopesHeader, DefaultScopesHeader, &h.scopes},
		{"roles_header", c.RolesHeader, DefaultRolesHeader, &h.roles},
		{"tenant_header", c.TenantHeader, DefaultTenantHeader, &h.tenant},
	}
	for _, id := range identity {
		field := configPrefix + "." + id.field
		name := strings.TrimSpace(id.value)
		switch name {
		case Disabled:
			continue
		case "":
			name = id.def
		}
		if err := CheckHeaderName(name); err != nil {
			return nil, cfgErr(field, "%v", err)
		}
		if err := use(field, name); err != nil {
			return nil, err
		}
		*id.dst = textproto.CanonicalMIMEHeaderKey(name)
	}

	claims := make([]string, 0, len(c.ClaimHeaders))
	for claim := range c.ClaimHeaders {
		claims = append(claims, claim)
	}
	sort.Strings(claims) // deterministic error reporting
	for _, claim := range claims {
		field := fmt.Sprintf("%s.claim_headers[%q]", configPrefix, claim)
		if err := checkClaimName(claim); err != nil {
			return nil, cfgErr(field, "%v", err)
		}
		name := strings.TrimSpace(c.ClaimHeaders[claim])
		if name == Disabled {
			continue
		}
		if err := CheckHeaderName(name); err != nil {
			return nil, cfgErr(field, "%v", err)
		}
		if err := use(field, name); err != nil {
			return nil, err
		}
		h.claims = append(h.claims, claimHeader{claim: claim, header: textproto.CanonicalMIMEHeaderKey(name)})
	}
	// Stable output order: claim headers by header name.
	sort.Slice(h.claims, func(i, j int) bool { return h.claims[i].header < h.claims[j].header })
	for _, n := range []string{h.clientID, h.subject, h.scopes, h.roles, h.tenant} {
		if n != "" {
			h.names = append(h.names, n)
		}
	}
	for _, ch := range h.claims {
		h.names = append(h.names, ch.header)
	}
	return h, nil
}

func cfgErr(field, format string, a ...any) error {
	return &policy.ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

func checkClaimName(claim string) error {
	switch {
	case claim == "":
		return fmt.Errorf("claim name is empty")
	case strings.HasPrefix(claim, ".") || strings.HasSuffix(claim, ".") || strings.Contains(claim, ".."):
		return fmt.Errorf("claim path has an empty segment")
	case !utf8.ValidString(claim):
		return fmt.Errorf("claim name is not valid UTF-8")
	}
	return nil
}

// reservedHeaders may not be set from a token: hop-by-hop headers, framing
// headers, credentials and the headers proxies set themselves.
var reservedHeaders = map[string]bool{
	"Authorization":       true,
	"Connection":          true,
	"Content-Encoding":    true,
	"Content-Length":      true,
	"Content-Type":        true,
	"Cookie":              true,
	"Expect":              true,
	"Forwarded":           true,
	"Host":                true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Set-Cookie":          true,
	"Te":                  true,
	"Trailer":             true,
	"Trailers":            true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Via":                 true,
	"Www-Authenticate":    true,
	"X-Forwarded-For":     true,
	"X-Forwarded-Host":    true,
	"X-Forwarded-Path":    true,
	"X-Forwarded-Port":    true,
	"X-Forwarded-Prefix":  true,
	"X-Forwarded-Proto":   true,
	"X-Real-Ip":           true,
}

// CheckHeaderName reports whether name may be set upstream: an RFC 7230
// token without '_' that is not a hop-by-hop, framing, credential or proxy
// header. '_' is refused because nginx drops such headers by default and
// CGI-style upstreams read "X_A" and "X-A" as one header: the adapters
// remove client copies of an owned name in both spellings (authz folds every non-alphanumeric character),
// which only works when the owned name is the '-' one.
func CheckHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("header name is empty")
	}
	if len(name) > maxNameBytes {
		return fmt.Errorf("header name is longer than %d bytes", maxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("header name %q has a character that is not allowed in an HTTP header name (RFC 7230 token)", name)
		}
		if name[i] == '_' {
			return fmt.Errorf("header name %q has '_': use '-' (nginx drops names with '_' by default, and CGI-style upstreams read both spellings as one header)", name)
		}
	}
	if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
		return fmt.Errorf("header %q may not be set by this plugin (hop-by-hop, framing, credential or proxy header)", name)
	}
	return nil
}

// isTokenChar reports whether c is an RFC 7230 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Names returns the canonical names of every header this configuration may
// set (identity headers, then claim headers). Adapters delete client-supplied
// copies of all of them on every request, allowed or not. The slice is a
// copy. The signed JWT header (Signer.Header) is not included.
func (h *Headers) Names() []string {
	return slices.Clone(h.names)
}

// StripAuthorization reports whether the Authorization header is removed
// before forwarding.
func (h *Headers) StripAuthorization() bool { return h.strip }

// Values returns the name/value pairs to set upstream for an allowed
// decision, in a stable order: client id, subject, scopes, roles, tenant, then the
// claim headers by header name. Missing claims and empty values produce no
// pair. A decision that is not allowed, or has no claims, yields nil.
func (h *Headers) Values(d *policy.Decision) [][2]string {
	if d == nil || !d.Allow || d.Claims == nil {
		return nil
	}
	c := d.Claims
	out := make([][2]string, 0, 4+len(h.claims))
	add := func(name, value string) {
		if name == "" {
			return
		}
		if v := sanitize(value); v != "" {
			out = append(out, [2]string{name, v})
		}
	}
	add(h.clientID, d.ClientID())
	add(h.subject, c.Subject)
	if h.scopes != "" {
		add(h.scopes, strings.Join(c.Scopes, " "))
	}
	if h.roles != "" {
		add(h.roles, joinRoles(c))
	}
	add(h.tenant, d.Tenant)
	for _, ch := range h.claims {
		v, ok := lookupClaim(c, ch.claim)
		if !ok {
			continue
		}
		if s, ok := renderValue(v); ok {
			add(ch.header, s)
		}
	}
	return out
}

// joinRoles renders realm roles, then client roles as "client:role"
// (clients in name order), comma-separated.
func joinRoles(c *policy.Claims) string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
	}
	for _, r := range c.RealmRoles {
		sep()
		b.WriteString(r)
	}
	clients := make([]string, 0, len(c.ClientRoles))
	for client := range c.ClientRoles {
		clients = append(clients, client)
	}
	sort.Strings(clients)
	for _, client := range clients {
		for _, r := range c.ClientRoles[client] {
			sep()
			b.WriteString(client)
			b.WriteByte(':')
			b.WriteString(r)
		}
	}
	return b.String()
}

// lookupClaim finds a claim by name; when the payload has no top-level
// claim of that exact name, a dotted name walks into nested objects (keys
// that themselves contain dots are tried too). A JSON null counts as missing.
func lookupClaim(c *policy.Claims, name string) (any, bool) {
	if v, ok := c.Get(name); ok {
		return v, v != nil
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if v, ok := c.Get(name[:i]); ok {
			if m, ok := v.(map[string]any); ok {
				if v, ok := lookupPath(m, name[i+1:]); ok {
					return v, true
				}
			}
		}
	}
	return nil, false
}

func lookupPath(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, v != nil
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if v, ok := m[path[:i]]; ok {
			if inner, ok := v.(map[string]any); ok {
				if v, ok := lookupPath(inner, path[i+1:]); ok {
					return v, true
				}
			}
		}
	}
	return nil, false
}

// renderValue renders a JSON-decoded claim value as a header value: strings
// as is, numbers without exponent when integral, booleans, arrays of scalars
// joined with ",", anything else as compact JSON.
func renderValue(v any) (string, bool) {
	if s, ok := renderScalar(v); ok {
		return s, true
	}
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := renderScalar(e)
			if !ok {
				return compactJSON(v)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	case nil:
		return "", false
	}
	return compactJSON(v)
}

func renderScalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return formatNumber(x)
	case json.Number:
		return x.String(), true
	}
	return "", false
}

func formatNumber(f float64) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	if f == math.Trunc(f) {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	b, err := json.Marshal(f)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func compactJSON(v any) (string, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", false
	}
	return strings.TrimSuffix(buf.String(), "\n"), true
}

// sanitize makes s safe as a header value: control characters (CR, LF,
// NUL, TAB, DEL, C1...) are dropped, surrounding spaces trimmed, and the
// result is capped at MaxValueBytes without splitting a UTF-8 sequence.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || unicode.IsControl(r) {
				return -1
			}
			return r
		}, s)
	}
	s = strings.Trim(s, " ")
	if len(s) > MaxValueBytes {
		cut := MaxValueBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRight(s[:cut], " ")
	}
	return s
}
