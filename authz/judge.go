package authz

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Reasons the layer adds to policy's vocabulary, for the decisions it makes
// itself. They appear in logs and in metrics labels.
const (
	ReasonNoRoute         = "no_route"              // no rule covers the method and path: 403
	ReasonBadPath         = "bad_path"              // the path is not canonical: 400
	ReasonBadMethod       = "bad_method"            // the method is not an upper-case token: 400
	ReasonBadForwardAuth  = "bad_forward_auth"      // forward auth cannot tell the original request: 400
	ReasonPublic          = "public"                // a public route: no token checked
	ReasonSignFailed      = "upstream_jwt_failed"   // the upstream JWT could not be signed: 500
	ReasonTooManyHeaders  = "too_many_headers"      // the adapter could not read every header: 400
	ReasonMalformedQuery  = "malformed_query"       // uri_param_names is set and the query does not parse: 400
	ReasonAmbiguous       = "ambiguous_credentials" // a header, parameter or cookie spelled like a token source: 400
	ReasonForgedHeader    = "forged_header"         // forward auth: a copy of a header the gateway sets: 400
	ReasonMethodOverride  = "method_override"       // a method override where methods decide: 400
	ReasonAdapterFailure  = "adapter_error"         // the adapter failed to read or write the request: 500
	ReasonPreflight       = "preflight"             // a CORS preflight let through unchecked (Kong run_on_preflight)
	ReasonAuthenticatedBy = "authenticated_before"  // another authentication plugin already did (Kong)
)

// Request is the adapter-neutral view of one request.
type Request struct {
	// Method is the request method as received (not upper-cased).
	Method string
	// Path is the percent-decoded request path.
	Path string
	// RawQuery is the query string without '?'.
	RawQuery string
	// NoQuery: the adapter did not read the query (Kong reads it only when
	// it is needed); the _method parameter is then not checked.
	NoQuery bool
	// Header holds every header line as received: keys in any case (one key
	// per spelling), values in order, repeats kept.
	Header map[string][]string
	// HeadersTruncated: the adapter could not read every header line (Kong's
	// get_headers limit); a header past the cut could not be checked.
	HeadersTruncated bool
	// KeepAdapterHeaders: the adapter sets none of its own headers
	// (Options.Owned) upstream — Envoy sets its own x-request-id — so their
	// exact spellings are left alone; their look-alikes are still removed.
	KeepAdapterHeaders bool
	// ClientCertPEM is the client's TLS certificate (PEM, or URL-encoded PEM),
	// when the adapter terminated TLS itself; "" otherwise (certificate_header
	// is then read).
	ClientCertPEM string
	// CannotStrip: the adapter cannot remove headers from what goes upstream
	// (forward auth answers a proxy, which forwards the original request):
	// a request that would need it is refused.
	CannotStrip bool
}

// Plan is what to change in the upstream request.
type Plan struct {
	// Delete are keys of Request.Header to remove (client copies of owned
	// headers in every spelling, Authorization when stripped, method
	// overrides when stripped).
	Delete []string
	// Set are canonical header names and values; each replaces every value
	// of its name.
	Set [][2]string
}

// Response is the whole answer to a denied request.
type Response struct {
	Status int
	Header [][2]string
	Body   []byte
}

// Result is the layer's judgement of one request.
type Result struct {
	// Allow: the request goes upstream (a verified token, or a public route).
	Allow bool
	// Public: allowed by a public route, without a token.
	Public bool
	// Route names the rule that matched ("" when none).
	Route string
	// Decision is the engine's decision, or the layer's own (Reason* here).
	Decision policy.Decision
	// Plan is what to change upstream when allowed. When denied it holds
	// the deletions alone, for an adapter that lets the request through
	// anyway (Kong's anonymous consumer).
	Plan Plan
	// Response is the answer when denied.
	Response Response
	// CredentialRefused: not authenticated (no token, a malformed or an
	// invalid one: 400 or 401), as opposed to authenticated but not
	// allowed (403), refused for the request's shape, or failed: Kong's
	// anonymous consumer may take over such a request.
	CredentialRefused bool

	scan scan // the header pass, kept here to save an allocation per request
}

// scan is what one pass over the header lines found.
type scan struct {
	del         []string // owned copies, look-alikes, stripped overrides
	adapterDel  []string // the exact adapter-owned keys among del
	adapterAny  []string // every adapter-owned key among del, look-alikes too
	tokenKeys   []string
	tokenLines  []string // may alias the request's own slice: never append in place
	cookieLines []string
	ambiguous   string // a look-alike of a token header
	override    string // a method override header
	keysBuf     [1]string
	dpopLines   []string // the DPoP proof header's lines
	certLines   []string // certificate_header's lines
	dpopScheme  bool     // the token came with the DPoP scheme
}

// scanHeaders makes one pass over the header lines into s.
func (g *Gate) scanHeaders(h map[string][]string, s *scan) *scan {
	s.tokenKeys = s.keysBuf[:0]
	var buf [maxFoldBytes]byte
	for key, values := range h {
		info, ok := g.names[string(foldHeader(key, &buf))]
		if !ok {
			continue
		}
		exact := strings.EqualFold(key, info.name)
		switch info.kind {
		case kindToken:
			if !exact {
				s.ambiguous = key
				continue
			}
			s.tokenKeys = append(s.tokenKeys, key)
			if s.tokenLines == nil {
				s.tokenLines = values[:len(values):len(values)] // a later append copies
			} else {
				s.tokenLines = append(s.tokenLines, values...)
			}
		case kindOwned:
			s.del = append(s.del, key)
		case kindAdapter:
			s.del = append(s.del, key)
			s.adapterAny = append(s.adapterAny, key)
			if exact {
				s.adapterDel = append(s.adapterDel, key)
			}
		case kindProxy:
			if !exact {
				s.del = append(s.del, key)
			}
		case kindOverride:
			s.override = key
		case kindCookie:
			if exact {
				s.cookieLines = append(s.cookieLines, values...)
			}
		case kindDPoP:
			if !exact {
				s.ambiguous = key
				continue
			}
			s.dpopLines = append(s.dpopLines, values...)
			s.tokenKeys = append(s.tokenKeys, key) // a credential too: strip_authorization removes it
		case kindCertificate:
			// Read (the proxy in front set it), then removed; a look-alike
			// is removed unread.
			s.del = append(s.del, key)
			if exact {
				s.certLines = append(s.certLines, values...)
			}
		}
	}
	return s
}

// Judge decides on one request.
func (g *Gate) Judge(ctx context.Context, req *Request) *Result {
	res := &Result{}
	if req.HeadersTruncated {
		return g.refuse(res, http.StatusBadRequest, policy.ErrInvalidRequest, ReasonTooManyHeaders,
			"The request has too many headers", "the adapter could not read every header line")
	}
	rt := g.routes.groups[0].any // the one route of a routed adapter
	if !g.routed {
		if err := checkPath(req.Path); err != nil {
			return g.refuse(res, http.StatusBadRequest, "", ReasonBadPath, "The request path is not in canonical form", err.Error())
		}
		// Methods are case-sensitive, but upstreams disagree: Django runs
		// "delete" as DELETE, Go and Spring as an unknown method. Refused
		// rather than guessed, like a non-canonical path.
		if !validMethod(req.Method) || hasLower(req.Method) {
			return g.refuse(res, http.StatusBadRequest, "", ReasonBadMethod, "The request method must be upper case",
				fmt.Sprintf("method %q is not an upper-case token", req.Method))
		}
		if rt = g.routes.match(req.Method, req.Path); rt == nil {
			return g.refuse(res, http.StatusForbidden, "", ReasonNoRoute, "No route allows this request",
				"no route rule covers "+req.Method+" "+req.Path)
		}
	}
	res.Route = rt.name
	s := g.scanHeaders(req.Header, &res.scan)
	res.Plan.Delete = s.del
	if req.KeepAdapterHeaders {
		res.Plan.Delete = without(s.del, s.adapterDel)
	}
	if s.ambiguous != "" {
		return g.refuse(res, http.StatusBadRequest, policy.ErrInvalidRequest, ReasonAmbiguous, "The request carries an ambiguous credential",
			fmt.Sprintf("header %q is read by some upstreams as the token header", s.ambiguous))
	}
	var q url.Values
	if req.RawQuery != "" && !req.NoQuery && (len(g.uriParams) > 0 || g.checkOverride) {
		var err error
		q, err = url.ParseQuery(req.RawQuery)
		if err != nil && len(g.uriParams) > 0 {
			// A pair Go cannot parse (bad escape, ';') might still be read
			// as a token by the upstream: refuse rather than skip it.
			return g.refuse(res, http.StatusBadRequest, policy.ErrInvalidRequest, ReasonMalformedQuery, "The query string is malformed", err.Error())
		}
	}
	if g.checkOverride {
		if d := g.checkMethodOverride(res, req, s, q); d != nil {
			return d
		}
	}
	// An adapter that cannot strip (forward auth) sets none of its own
	// headers upstream either (the request id stays with the proxy): only
	// copies of the layer's headers are forged there.
	if forged := without(res.Plan.Delete, s.adapterAny); req.CannotStrip && len(forged) > 0 {
		return g.refuse(res, http.StatusBadRequest, policy.ErrInvalidRequest, ReasonForgedHeader,
			"The request carries a header that the gateway sets",
			fmt.Sprintf("header %q is set by the gateway (or read as such by upstreams) and cannot be removed here", forged[0]))
	}
	if rt.public {
		res.Allow, res.Public = true, true
		res.Decision = policy.Decision{Allow: true, Status: http.StatusOK, Reason: ReasonPublic}
		if g.headers.StripAuthorization() {
			res.Plan.Delete = append(res.Plan.Delete, s.tokenKeys...)
		}
		return res
	}
	token, deny := g.extract(s, q)
	if deny != nil {
		res.CredentialRefused = true
		return g.refuse(res, deny.Status, deny.Error, deny.Reason, deny.Message, deny.Detail)
	}
	res.Decision = rt.policy.Check(ctx, token)
	if res.Decision.Allow {
		if d := g.checkBinding(req, s, token, &res.Decision); d != nil {
			res.Decision = *d
		}
	}
	if !res.Decision.Allow {
		res.CredentialRefused = res.Decision.Status == http.StatusUnauthorized || res.Decision.Status == http.StatusBadRequest
		res.Response = g.Render(&res.Decision)
		return res
	}
	res.Allow = true
	res.Plan.Set = g.headers.Values(&res.Decision)
	if g.headers.StripAuthorization() {
		res.Plan.Delete = append(res.Plan.Delete, s.tokenKeys...)
	}
	if g.signer != nil {
		jwt, err := g.signer.Sign(&res.Decision)
		if err != nil {
			res.Allow = false
			res.Plan.Set = nil
			return g.refuse(res, http.StatusInternalServerError, "", ReasonSignFailed, "An unexpected error occurred", err.Error())
		}
		res.Plan.Set = append(res.Plan.Set, [2]string{g.signer.Header(), jwt})
	}
	res.Plan.Delete = withoutSet(res.Plan.Delete, res.Plan.Set)
	return res
}

// withoutSet drops from del the keys that a Set entry replaces anyway (the
// same name in another case): one call fewer for Kong, one map write fewer
// for net/http.
func withoutSet(del []string, set [][2]string) []string {
	if len(del) == 0 || len(set) == 0 {
		return del
	}
	out := del[:0]
next:
	for _, k := range del {
		for _, kv := range set {
			if strings.EqualFold(k, kv[0]) {
				continue next
			}
		}
		out = append(out, k)
	}
	return out
}

func (g *Gate) checkMethodOverride(res *Result, req *Request, s *scan, q url.Values) *Result {
	for key := range q {
		if key == methodParam {
			return g.refuse(res, http.StatusBadRequest, "", ReasonMethodOverride, "Method overrides are not accepted here",
				"the query carries "+methodParam+"; routes decide by method (method_override)")
		}
		if _, ok := lookalike(key, []string{methodParam}); ok {
			return g.refuse(res, http.StatusBadRequest, "", ReasonMethodOverride, "Method overrides are not accepted here",
				fmt.Sprintf("query parameter %q is read as %s by some upstreams (method_override)", key, methodParam))
		}
	}
	if s.override == "" {
		return nil
	}
	if g.override == MethodOverrideStrip && !req.CannotStrip {
		res.Plan.Delete = append(res.Plan.Delete, s.override)
		return nil
	}
	return g.refuse(res, http.StatusBadRequest, "", ReasonMethodOverride, "Method overrides are not accepted here",
		fmt.Sprintf("header %q overrides the method; routes decide by method (method_override: %s)", s.override, g.override))
}

// Strip is the plan for a request an adapter lets through without a check
// (Kong: a CORS preflight with run_on_preflight off; a request another
// authentication plugin has authenticated): client copies of the layer's
// headers are removed in every spelling; of the adapter's own headers,
// which another plugin may have set, only the look-alikes.
func (g *Gate) Strip(req *Request) Plan {
	s := g.scanHeaders(req.Header, &scan{})
	return Plan{Delete: without(s.del, s.adapterDel)}
}

// without is keys minus drop (a new slice when anything is dropped).
func without(keys, drop []string) []string {
	if len(drop) == 0 {
		return keys
	}
	out := make([]string, 0, len(keys))
next:
	for _, k := range keys {
		for _, d := range drop {
			if k == d {
				continue next
			}
		}
		out = append(out, k)
	}
	return out
}

// refuse fills res as a denial the layer makes itself, logs it and returns it.
func (g *Gate) refuse(res *Result, status int, code, reason, msg, detail string) *Result {
	res.Allow = false
	res.Decision = policy.Decision{Status: status, Error: code, Reason: reason, Message: msg, Detail: detail}
	res.Response = g.Render(&res.Decision)
	if ce := g.log.Check(zap.InfoLevel, "request refused"); ce != nil {
		ce.Write(zap.Int("status", status), zap.String("reason", reason), zap.String("detail", detail),
			zap.String("route", res.Route))
	}
	return res
}

// Refuse is the rendered denial of a request that an adapter cannot even
// turn into a Request (forward auth without the original URI; a failed
// PDK call): reason is one of the Reason* codes of this package.
func (g *Gate) Refuse(status int, reason, msg, detail string) *Result {
	return g.refuse(&Result{}, status, "", reason, msg, detail)
}

// Render is the whole response to a denied decision: its status, the
// challenges when the denial is about the credential (a 401, or an error
// code) — RFC 6750's Bearer, and with DPoP on RFC 9449's DPoP (alone for a
// bad proof), each naming the resource metadata when it is served — and
// the JSON body {"message": "..."} that Kong's own plugins answer with.
// Header may hold WWW-Authenticate twice: adapters add, not set.
func (g *Gate) Render(d *policy.Decision) Response {
	h := make([][2]string, 0, 4)
	switch d.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		if d.Error == "" && d.Status != http.StatusUnauthorized {
			break
		}
		meta := ""
		if g != nil && g.metadataURL != "" {
			meta = `, resource_metadata="` + g.metadataURL + `"`
		}
		if d.Error != ErrInvalidDPoPProof {
			h = append(h, [2]string{"WWW-Authenticate", d.WWWAuthenticate(g.realmOrNone()) + meta})
		}
		if g != nil && g.dpop != nil && (d.Status == http.StatusUnauthorized || d.Error == ErrInvalidDPoPProof) {
			h = append(h, [2]string{"WWW-Authenticate", g.dpopChallenge(d) + meta})
		}
	}
	if d.Status == http.StatusServiceUnavailable {
		// The gateway could not check (introspection down): the client may
		// retry the same token shortly (RFC 9110 §10.2.3).
		h = append(h, [2]string{"Retry-After", "5"})
	}
	h = append(h, [2]string{"Content-Type", "application/json; charset=utf-8"}, [2]string{"Cache-Control", "no-store"})
	return Response{Status: d.Status, Header: h, Body: d.Body()}
}

func (g *Gate) realmOrNone() string {
	if g == nil {
		return ""
	}
	return g.realm
}

// dpopChallenge is RFC 9449 §7.1's challenge: the proof algorithms, and
// the error of a bad proof or token.
func (g *Gate) dpopChallenge(d *policy.Decision) string {
	c := `DPoP algs="` + strings.Join(g.dpop.algs, " ") + `"`
	if g.realm != "" {
		c += `, realm="` + g.realm + `"`
	}
	if d.Error != "" {
		c += `, error="` + d.Error + `"`
		if d.Message != "" {
			c += `, error_description="` + d.Message + `"`
		}
	}
	return c
}

// Misconfigured is the response for every request of a configuration that
// failed to compile: fail closed with a 500 that reveals nothing.
func Misconfigured(err error) Response {
	d := policy.Misconfigured(err)
	return (*Gate)(nil).Render(&d)
}

// ClaimString is the string value of a verified claim of an allowed
// decision ("" when absent or not a string); the name "azp" means the
// client id (azp, else client_id, else sub). Kong's consumer mapping looks
// consumers up by it.
func ClaimString(d *policy.Decision, name string) string {
	if name == "azp" {
		return d.ClientID()
	}
	if d.Claims == nil {
		return ""
	}
	v, _ := d.Claims.Get(name)
	s, _ := v.(string)
	return s
}

// Warm fetches the keys of every realm the routes trust, returning the
// first error.
func (g *Gate) Warm(ctx context.Context) error {
	var first error
	for _, u := range g.policies {
		if err := u.Policy.Warm(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Explanation is the layer's account of one request: the route, the token
// source, then every check of the engine (policy.Explain). Its verdict is
// Judge's own.
type Explanation struct {
	Route   string        `json:"route,omitempty"`
	Allow   bool          `json:"allow"`
	Status  int           `json:"status"`
	Reason  string        `json:"reason"`
	Message string        `json:"message,omitempty"`
	Steps   []policy.Step `json:"steps"`
}

// Explain judges req as Judge does and explains how: the request's shape
// and route, where the token came from, and every check of the token.
func (g *Gate) Explain(ctx context.Context, req *Request) *Explanation {
	res := g.Judge(ctx, req)
	ex := &Explanation{Route: res.Route, Allow: res.Allow, Status: res.Decision.Status, Reason: res.Decision.Reason,
		Message: res.Decision.Message}
	step := func(check string, ok bool, reason, detail, fix string) {
		st := policy.Step{Check: check, Result: policy.StepPass, Detail: detail}
		if !ok {
			st.Result, st.Reason, st.Fix = policy.StepFail, reason, fix
		}
		ex.Steps = append(ex.Steps, st)
	}
	if res.Route == "" {
		step("route", false, res.Decision.Reason, res.Decision.Detail,
			"no rule covers this method and path: add a route (routes[].prefix, methods), or send the request the route expects")
		return ex
	}
	step("route", true, "", res.Route, "")
	if res.Public {
		step("token", true, "", "a public route: no token is read", "")
		return ex
	}
	s := g.scanHeaders(req.Header, &scan{})
	var q url.Values
	if !req.NoQuery && req.RawQuery != "" {
		q, _ = url.ParseQuery(req.RawQuery)
	}
	token, deny := g.extract(s, q)
	if deny != nil || (res.Decision.Reason != "" && isLayerReason(res.Decision.Reason)) {
		d := res.Decision
		if deny != nil && !isLayerReason(d.Reason) {
			d = *deny
		}
		fix := "send the token as \"Authorization: Bearer <access_token>\", once"
		if d.Reason == ReasonMethodOverride {
			fix = "drop the method override header or parameter, or set method_override"
		}
		step("token", false, d.Reason, d.Detail, fix)
		return ex
	}
	step("token", true, "", fmt.Sprintf("one token, %d bytes", len(token)), "")
	rt := g.routes.groups[0].any
	if !g.routed {
		rt = g.routes.match(req.Method, req.Path)
	}
	pe := rt.policy.Explain(ctx, token)
	ex.Steps = append(ex.Steps, pe.Steps...)
	if res.Allow && res.Decision.Reason == policy.ReasonOK {
		return ex
	}
	if !res.Allow && res.Decision.Reason == ReasonSignFailed {
		step("upstream JWT", false, ReasonSignFailed, res.Decision.Detail, "check upstream_jwt's key")
	}
	return ex
}

// isLayerReason reports whether reason is one of the layer's own refusals
// of a request's shape (not the engine's verdict on a token).
func isLayerReason(reason string) bool {
	switch reason {
	case ReasonNoRoute, ReasonBadPath, ReasonBadMethod, ReasonBadForwardAuth, ReasonTooManyHeaders,
		ReasonMalformedQuery, ReasonAmbiguous, ReasonForgedHeader, ReasonMethodOverride, ReasonAdapterFailure:
		return true
	}
	return false
}
