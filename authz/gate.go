package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/store"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// Spec is everything an adapter's configuration says about judging
// requests: the layer's own fields, the shared policy, the routes (nil: one
// route for "/" with the shared requirements, as in the Kong plugin) and the
// outputs for allowed requests.
type Spec struct {
	Config  Config
	Policy  policy.Config
	Routes  []Route
	Headers upstream.HeadersConfig
	JWT     upstream.JWTConfig
}

// Options are what the adapter adds.
type Options struct {
	// Deps are the engine's process-wide dependencies (key cache, token
	// caches, clock, the engine's logger).
	Deps policy.Deps
	// Logger receives one line per request the layer itself refuses (its
	// shape, its token sources); nil: none. Token decisions are logged by
	// the engine (Deps.Logger).
	Logger *zap.Logger
	// PolicyField is the configuration section that holds the shared policy
	// ("policy" in the sidecar; "" when its fields are top-level, as in the
	// Kong plugin). It prefixes the names of fields in errors.
	PolicyField string
	// DefaultRealm is the challenge's realm when Config.Realm is empty.
	DefaultRealm string
	// Owned are headers the adapter sets upstream itself (Kong's consumer
	// headers, the sidecar's request id): client copies are removed in every
	// spelling, like the identity headers'.
	Owned []string
	// Routed: the adapter has routed the request itself (Kong): the table
	// is one route for "/" without methods, and the request's path and
	// method are neither read nor checked here.
	Routed bool
	// ReplayStore is where DPoP proofs are remembered; nil: in memory, per
	// node (dpop.replay_cache_size).
	ReplayStore ReplayStore
	// MethodRulesElsewhere: the adapter's own routing distinguishes methods
	// (Kong routes may list methods), so method overrides are refused by
	// default even though this table has no method rules.
	MethodRulesElsewhere bool
}

// proxyHeaders are set by the proxy in front of every adapter (Kong, the
// sidecar's reverse proxy): their exact spelling is the proxy's business,
// their look-alikes are removed.
var proxyHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Port", "X-Forwarded-Path", "X-Forwarded-Prefix", "X-Real-Ip"}

// methodOverrideHeaders are the method override headers frameworks honour.
var methodOverrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// methodParam is the method override parameter of Rails, Laravel and Symfony.
const methodParam = "_method"

// kind is what a header name (by its fold) is to the layer.
type kind uint8

const (
	kindToken       kind = iota + 1 // a token source (header_names)
	kindOwned                       // set upstream by the layer (identity, upstream JWT)
	kindAdapter                     // set upstream by the adapter (Options.Owned)
	kindProxy                       // set by the proxy (proxyHeaders)
	kindOverride                    // a method override header
	kindCookie                      // the Cookie header (when cookie_names is set)
	kindDPoP                        // the DPoP proof header (when dpop is on)
	kindCertificate                 // certificate_header: read, then removed
)

type nameInfo struct {
	kind kind
	name string // the canonical spelling
}

// Gate judges requests. It is immutable and safe for concurrent use.
type Gate struct {
	realm    string
	routes   *routeTable
	policies []*PolicyUse
	routed   bool // Options.Routed

	names         map[string]nameInfo // by fold
	tokenHeaders  []string            // canonical
	uriParams     []string
	cookies       []string
	override      string // effective method override mode
	checkOverride bool

	headers *upstream.Headers
	signer  *upstream.Signer
	log     *zap.Logger

	publicURL *url.URL
	dpop      *dpopPolicy // nil: DPoP off
	certified bool        // certificate_header is set
	metadata  []byte      // RFC 9728 document; nil: off
	// metadataURL is the document's URL, named in challenges.
	metadataURL string
}

// PolicyUse is one distinct compiled policy and the routes that use it.
type PolicyUse struct {
	Policy *policy.Policy
	Routes []string
}

// Policies are the distinct policies of the route table, in route order.
func (g *Gate) Policies() []*PolicyUse { return g.policies }

// Realm is the challenge's realm.
func (g *Gate) Realm() string { return g.realm }

// Signer is the upstream JWT signer (nil when off).
func (g *Gate) Signer() *upstream.Signer { return g.signer }

// Compile validates s and builds the Gate. Every problem is reported
// (errors.Join), each a *policy.ConfigError naming the operator's field.
// Policies register their key sources in o.Deps.Keys without fetching.
func Compile(s Spec, o Options) (*Gate, error) {
	g := &Gate{realm: s.Config.Realm, log: o.Logger, names: map[string]nameInfo{}}
	if g.realm == "" {
		g.realm = o.DefaultRealm
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if strings.ContainsAny(g.realm, "\"\\\r\n") {
		add(cfgErr("realm", "must not contain quotes, backslashes or line breaks"))
	}
	add(g.compileRoutes(s, o))
	add(g.compileSources(s.Config))
	add(g.compileOutputs(s, o))
	add(g.compileOverride(s.Config, o))
	add(g.compileBinding(s.Config, o))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	g.compileMetadata(s.Config)
	return g, nil
}

// compileBinding compiles public_url, dpop and certificate_header.
func (g *Gate) compileBinding(c Config, o Options) error {
	var errs []error
	if s := strings.TrimSpace(c.PublicURL); s != "" {
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, cfgErr("public_url", "%q is not an absolute http(s) URL", s))
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, cfgErr("public_url", "must not have user info, a query or a fragment"))
		default:
			g.publicURL = u
		}
	}
	clock := o.Deps.Clock
	if clock == nil {
		clock = time.Now
	}
	replay := o.ReplayStore
	if replay == nil {
		// The policies' shared store (store.redis), when configured: a
		// proof used on one gateway node is then refused on every other.
		for _, u := range g.policies {
			if shared := u.Policy.SharedStore(); shared != nil {
				replay = store.Replay{Store: shared, Namespace: "dpop:"}
				break
			}
		}
	}
	d, err := compileDPoP(c.DPoP, g.publicURL, clock, replay)
	if err != nil {
		errs = append(errs, err)
	}
	g.dpop = d
	if d != nil {
		g.names[FoldHeader("DPoP")] = nameInfo{kind: kindDPoP, name: "Dpop"}
	}
	if h := strings.TrimSpace(c.CertificateHeader); h != "" {
		if err := upstream.CheckHeaderName(h); err != nil {
			errs = append(errs, cfgErr("certificate_header", "%v", err))
		} else if _, taken := g.names[FoldHeader(h)]; taken {
			errs = append(errs, cfgErr("certificate_header", "%q is already a header the gateway reads or sets", h))
		} else {
			g.names[FoldHeader(h)] = nameInfo{kind: kindCertificate, name: textproto.CanonicalMIMEHeaderKey(h)}
			g.certified = true
		}
	}
	if c.ResourceMetadata && g.publicURL == nil {
		errs = append(errs, cfgErr("resource_metadata", "needs public_url (the resource the metadata describes)"))
	}
	return errors.Join(errs...)
}

func (g *Gate) compileSources(c Config) error {
	var errs []error
	names := c.HeaderNames
	if len(names) == 0 {
		names = []string{DefaultHeaderName}
	}
	for i, n := range names {
		n = strings.TrimSpace(n)
		if err := upstream.CheckHeaderName(n); err != nil && !strings.EqualFold(n, "authorization") {
			errs = append(errs, cfgErr(fmt.Sprintf("header_names[%d]", i), "%v", err))
			continue
		}
		g.tokenHeaders = append(g.tokenHeaders, textproto.CanonicalMIMEHeaderKey(n))
	}
	for i, n := range c.URIParamNames {
		if strings.TrimSpace(n) == "" || n != strings.TrimSpace(n) {
			errs = append(errs, cfgErr(fmt.Sprintf("uri_param_names[%d]", i), "%q must be a parameter name without surrounding spaces", n))
			continue
		}
		g.uriParams = append(g.uriParams, n)
	}
	for i, n := range c.CookieNames {
		if n == "" || strings.ContainsAny(n, "=;, \t\"") {
			errs = append(errs, cfgErr(fmt.Sprintf("cookie_names[%d]", i), "%q must be a cookie name", n))
			continue
		}
		g.cookies = append(g.cookies, n)
	}
	return errors.Join(errs...)
}

// compileOutputs compiles the identity headers and the upstream JWT signer
// and registers every header name the layer watches by its fold.
func (g *Gate) compileOutputs(s Spec, o Options) error {
	var errs []error
	h, err := upstream.CompileHeaders(s.Headers)
	if err != nil {
		errs = append(errs, err)
	}
	clock := o.Deps.Clock
	if clock == nil {
		clock = time.Now
	}
	signer, err := upstream.NewSigner(s.JWT, clock)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := h.CheckSigner(signer); err != nil {
		return err
	}
	g.headers, g.signer = h, signer
	register := func(field, name string, k kind) error {
		f := FoldHeader(name)
		if prev, dup := g.names[f]; dup && (prev.kind != k || prev.name != textproto.CanonicalMIMEHeaderKey(name)) {
			if prev.kind == kindToken {
				return cfgErr("header_names", "%q is read by upstreams as %q, which the gateway sets upstream", prev.name, name)
			}
			return cfgErr(field, "%q is read by upstreams as the same header as %q", name, prev.name)
		}
		g.names[f] = nameInfo{kind: k, name: textproto.CanonicalMIMEHeaderKey(name)}
		return nil
	}
	for _, n := range g.tokenHeaders {
		errs = append(errs, register("header_names", n, kindToken))
	}
	for _, n := range h.Names() {
		errs = append(errs, register("upstream_headers", n, kindOwned))
	}
	if signer != nil {
		errs = append(errs, register("upstream_jwt.header", signer.Header(), kindOwned))
	}
	for _, n := range o.Owned {
		errs = append(errs, register("upstream_headers", n, kindAdapter))
	}
	for _, n := range proxyHeaders {
		if _, taken := g.names[FoldHeader(n)]; !taken {
			g.names[FoldHeader(n)] = nameInfo{kind: kindProxy, name: n}
		}
	}
	for _, n := range methodOverrideHeaders {
		errs = append(errs, register("upstream_headers", n, kindOverride))
	}
	if len(g.cookies) > 0 {
		g.names[FoldHeader("Cookie")] = nameInfo{kind: kindCookie, name: "Cookie"}
	}
	return errors.Join(errs...)
}

func (g *Gate) compileOverride(c Config, o Options) error {
	hasMethods := o.MethodRulesElsewhere
	for _, grp := range g.routesOrEmpty() {
		if len(grp.byMethod) > 0 {
			hasMethods = true
		}
	}
	switch strings.ToLower(strings.TrimSpace(c.MethodOverride)) {
	case "":
		g.override = MethodOverrideAllow
		if hasMethods {
			g.override = MethodOverrideRefuse
		}
	case MethodOverrideRefuse:
		g.override = MethodOverrideRefuse
	case MethodOverrideStrip:
		g.override = MethodOverrideStrip
	case MethodOverrideAllow:
		g.override = MethodOverrideAllow
	default:
		return cfgErr("method_override", "must be %q, %q or %q, got %q", MethodOverrideRefuse, MethodOverrideStrip, MethodOverrideAllow, c.MethodOverride)
	}
	g.checkOverride = g.override != MethodOverrideAllow
	return nil
}

func (g *Gate) routesOrEmpty() []*routeGroup {
	if g.routes == nil {
		return nil
	}
	return g.routes.groups
}

// compileRoutes compiles one policy per distinct effective configuration
// (the shared policy with the route's requirements over it); all of them
// share o.Deps.Keys, so one realm is fetched once.
func (g *Gate) compileRoutes(s Spec, o Options) error {
	policyField := func(f string) string {
		if o.PolicyField == "" {
			return f
		}
		return o.PolicyField + "." + f
	}
	var errs []error
	baseOK := true
	if err := s.Policy.Validate(); err != nil {
		baseOK = false
		errs = append(errs, renameFields(err, policyField))
	}
	routes := s.Routes
	if len(routes) == 0 {
		routes = []Route{{Prefix: "/"}}
	}
	g.routed = o.Routed
	byKey := map[string]*PolicyUse{}
	compiled := make([]*route, 0, len(routes))
	fields := make([]string, 0, len(routes))
	for i, rc := range routes {
		field := fmt.Sprintf("routes[%d]", i)
		r, err := compileRoute(field, rc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !r.public && baseOK {
			merged := s.Policy
			merged.Requirements = rc.Requirements.Over(s.Policy.Requirements)
			key, err := json.Marshal(merged)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
				continue
			}
			use := byKey[string(key)]
			if use == nil {
				p, err := policy.Compile(merged, o.Deps)
				if err != nil {
					errs = append(errs, renameFields(err, func(f string) string {
						if policy.IsRequirementField(f) && len(s.Routes) > 0 {
							return field + "." + f
						}
						return policyField(f)
					}))
					continue
				}
				use = &PolicyUse{Policy: p}
				byKey[string(key)] = use
				g.policies = append(g.policies, use)
			}
			use.Routes = append(use.Routes, r.name)
			r.policy = use.Policy
		}
		compiled = append(compiled, r)
		fields = append(fields, field)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	t, err := newRouteTable(compiled, fields)
	if err != nil {
		return err
	}
	g.routes = t
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
		if set := rc.Requirements.Set(); len(set) > 0 {
			return nil, cfgErr(field+".public", "a public route takes no token, so it cannot require anything (remove %s)", strings.Join(set, ", "))
		}
	}
	return &route{name: routeName(rc.Prefix, methods), prefix: rc.Prefix, methods: methods, public: rc.Public}, nil
}

// Errors lists the problems of a configuration error: the errors joined
// in it (nested joins flattened), or err itself.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, Errors(e)...)
	}
	return out
}

// renameFields renames the fields of every ConfigError in err (a joined
// error or a single one).
func renameFields(err error, rename func(string) string) error {
	list := Errors(err)
	out := make([]error, 0, len(list))
	for _, e := range list {
		var ce *policy.ConfigError
		if errors.As(e, &ce) {
			out = append(out, &policy.ConfigError{Field: rename(ce.Field), Msg: ce.Msg})
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}
