package plugin

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/entities"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Version of the plugin, reported to Kong.
const Version = "0.1.0"

// Priority places the plugin among Kong's authentication plugins: just
// after Kong's own jwt plugin (1450) and before oauth2 (1400), key-auth
// (1250) and everything that needs an authenticated consumer (acl 950,
// rate-limiting 910, request-transformer 801).
const Priority = 1440

// ReasonNoConsumer is the reason code of a valid token whose client has no
// Kong consumer while consumer mapping is required.
const ReasonNoConsumer = "no_consumer"

// maxHeaders is what kong.request.get_headers is asked for: Kong's upper
// bound. get_headers stops there without an error, so a request with that
// many header lines is refused: a second token or a forged identity header
// could hide past the cut, unseen and so not removed.
const maxHeaders = 1000

// ReasonMalformedQuery is the reason code of a request refused because
// uri_param_names is set and its query string does not parse.
const ReasonMalformedQuery = "malformed_query"

// ReasonTooManyHeaders is the reason code of a request refused because it
// has maxHeaders header lines or more.
const ReasonTooManyHeaders = "too_many_headers"

// Process-wide state shared by every plugin instance of this plugin server:
// one JWKS cache (so N instances naming one realm fetch its keys once) and
// one verified-token cache per configured size (so routes share verified
// tokens and memory stays bounded by the size, not size × routes), and one
// logger (stderr, which Kong copies into its error log).
var (
	logger      = newLogger()
	keys        = jwks.NewCache(jwks.Options{Logger: logger})
	tokenCaches = policy.NewTokenCaches()
)

// logLevel is the level of logger: info, or KEYCLOAK_JWT_LOG_LEVEL, or what
// SetLogLevel sets (the -log-level flag of cmd/keycloak-jwt).
var logLevel = zap.NewAtomicLevelAt(zapcore.InfoLevel)

// SetLogLevel sets the plugin's log level: debug, info, warn or error. Under
// Kong, prefer it (a flag in the start command) to KEYCLOAK_JWT_LOG_LEVEL:
// nginx clears the environment of the worker that starts the plugin server.
func SetLogLevel(level string) error {
	l, err := zapcore.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	logLevel.SetLevel(l)
	return nil
}

func newLogger() *zap.Logger {
	if v := os.Getenv("KEYCLOAK_JWT_LOG_LEVEL"); v != "" {
		if l, err := zapcore.ParseLevel(v); err == nil {
			logLevel.SetLevel(l)
		}
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = logLevel
	cfg.Sampling = nil
	cfg.DisableStacktrace = true
	cfg.OutputPaths = []string{"stderr"}
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l.Named("keycloak-jwt")
}

// New is the constructor go-pdk calls for each plugin instance.
func New() interface{} { return &Config{} }

// instance compiles the configuration once. On error every request of this
// instance is denied (fail closed) and the error is logged once.
func (c *Config) instance() (*Instance, error) {
	c.once.Do(func() {
		c.inst, c.err = Compile(c, policy.Deps{Keys: keys, Logger: logger, TokenCaches: tokenCaches})
		if c.err != nil {
			logger.Error("invalid keycloak-jwt configuration: every request on this route is denied with 500",
				zap.Error(c.err))
			return
		}
		// Fetch the realm keys now, so the first request rarely waits.
		go func(p *policy.Policy) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = p.Warm(ctx)
		}(c.inst.policy)
	})
	return c.inst, c.err
}

// Access runs in Kong's access phase for every request on the route.
func (c *Config) Access(kong *pdk.PDK) {
	inst, err := c.instance()
	if err != nil {
		// The plugin's own log reaches Kong's error log at info only, below
		// Kong's default level (notice): say it once through Kong's log too.
		c.errLogged.Do(func() {
			_ = kong.Log.Err("keycloak-jwt: invalid configuration, every request on this route is denied with 500: ", err.Error())
		})
		exit(kong, policy.Misconfigured(err), "")
		return
	}
	inst.access(kong)
}

func (inst *Instance) access(kong *pdk.PDK) {
	if inst.signer != nil && inst.signer.JWKSPath() != "" {
		if path, err := kong.Request.GetPath(); err == nil && path == inst.signer.JWKSPath() {
			kong.Response.Exit(http.StatusOK, inst.signer.JWKS(), map[string][]string{
				"Content-Type": {"application/jwk-set+json"}, "Cache-Control": {"max-age=300"}})
			return
		}
	}
	in, err := kong.Request.GetHeaders(maxHeaders)
	if err != nil {
		logger.Error("kong.request.get_headers failed", zap.Error(err))
		exit(kong, policy.Misconfigured(err), "")
		return
	}
	if n := headerCount(in); n >= maxHeaders {
		// Before the policy: anonymous must not apply to it either.
		logger.Info("request refused: too many headers to check", zap.Int("headers", n))
		exit(kong, badRequest(ReasonTooManyHeaders, "The request has too many headers"), inst.realm)
		return
	}
	creds := policy.Credentials{}
	for _, n := range inst.headerNames {
		creds.Authorization = append(creds.Authorization, in[n]...)
	}
	if len(inst.cookieNames) > 0 {
		creds.Cookie = cookieValues(in["cookie"], inst.cookieNames)
	}
	if len(inst.uriParamNames) > 0 {
		// The raw query, parsed here: kong.request.get_query stops at its
		// max_args without an error, so a second token could hide past it.
		raw, err := kong.Request.GetRawQuery()
		if err != nil {
			logger.Error("kong.request.get_raw_query failed", zap.Error(err))
			exit(kong, policy.Misconfigured(err), "")
			return
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			// A pair Go cannot parse (bad escape, ';') might still be read
			// as a token by the upstream: refuse rather than skip it.
			logger.Info("request refused: malformed query string", zap.Error(err))
			exit(kong, badRequest(ReasonMalformedQuery, "The query string is malformed"), inst.realm)
			return
		}
		for key := range q {
			if n, ok := queryLookalike(key, inst.uriParamNames); ok {
				logger.Info("request refused: query parameter spelled like a token parameter",
					zap.String("parameter", key), zap.String("token_parameter", n))
				exit(kong, badRequest(ReasonMalformedQuery, "The query string is ambiguous"), inst.realm)
				return
			}
		}
		for _, n := range inst.uriParamNames {
			creds.Query = append(creds.Query, q[n]...)
		}
	}
	d := inst.policy.CheckRequest(context.Background(), creds)
	out := make(map[string][]string, 8)
	switch {
	case d.Allow:
		if inst.mapping {
			if !inst.mapConsumer(kong, &d, out) {
				return
			}
		}
		for _, kv := range inst.headers.Values(&d) {
			out[kv[0]] = []string{kv[1]}
		}
		if inst.signer != nil {
			tok, err := inst.signer.Sign(&d)
			if err != nil {
				logger.Error("signing the upstream JWT failed", zap.Error(err))
				exit(kong, policy.Misconfigured(err), "")
				return
			}
			out[inst.signer.Header()] = []string{tok}
		}
	case inst.anonymous != "" && (d.Status == http.StatusUnauthorized || d.Status == http.StatusBadRequest):
		if !inst.setAnonymous(kong, out) {
			return
		}
	default:
		exit(kong, d, inst.realm)
		return
	}
	inst.forward(kong, in, out)
}

// forward removes client-supplied copies of every header the plugin owns
// that it is not setting now, then writes all upstream headers in one call.
func (inst *Instance) forward(kong *pdk.PDK, in map[string][]string, out map[string][]string) {
	// in holds every header of the request (access refused the request if
	// get_headers could have cut it), so only the owned headers the client
	// sent are cleared, which is rare: the common path makes no call and
	// allocates nothing here. Keys of out are canonical header names;
	// inst.strip and the keys of in are lower case.
	for _, n := range inst.strip {
		if _, present := in[n]; present {
			if _, setting := out[textproto.CanonicalMIMEHeaderKey(n)]; !setting {
				_ = kong.ServiceRequest.ClearHeader(n)
			}
		}
	}
	for n := range in {
		if inst.lookalikes.Match(n) {
			_ = kong.ServiceRequest.ClearHeader(n)
		}
	}
	if inst.headers.StripAuthorization() {
		for _, n := range inst.headerNames {
			if _, present := in[n]; present {
				_ = kong.ServiceRequest.ClearHeader(n)
			}
		}
	}
	if len(out) > 0 {
		if err := kong.ServiceRequest.SetHeaders(out); err != nil {
			logger.Error("kong.service.request.set_headers failed", zap.Error(err))
			exit(kong, policy.Misconfigured(err), "")
		}
	}
}

var (
	phpFold        = strings.NewReplacer(" ", "_", ".", "_")
	phpFoldBracket = strings.NewReplacer(" ", "_", ".", "_", "[", "_")
)

// queryLookalike reports whether key is not one of names but an upstream
// may read it as one (returned): PHP's $_GET ends a name at NUL, drops
// leading spaces, turns ' ', '.' and an unmatched '[' into '_' and reads
// "name[...]" as name; ASP.NET ignores case. A second token under such a
// name would reach the upstream unchecked, like X_Client_Id for headers.
func queryLookalike(key string, names []string) (string, bool) {
	for _, n := range names {
		if key == n {
			return "", false
		}
	}
	k := strings.ToLower(key)
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	k = strings.TrimLeft(k, " ")
	forms := []string{phpFoldBracket.Replace(k)}
	if i := strings.IndexByte(k, '['); i > 0 {
		forms = append(forms, phpFold.Replace(k[:i]))
	}
	for _, n := range names {
		fn := phpFold.Replace(strings.ToLower(n))
		for _, f := range forms {
			if f == fn {
				return n, true
			}
		}
	}
	return "", false
}

// badRequest is the 400 invalid_request for a request the plugin refuses
// for its shape, before any token is read.
func badRequest(reason, message string) policy.Decision {
	return policy.Decision{Status: http.StatusBadRequest, Error: policy.ErrInvalidRequest, Reason: reason, Message: message}
}

// headerCount counts header lines as get_headers does (each value).
func headerCount(in map[string][]string) int {
	n := 0
	for _, v := range in {
		n += len(v)
	}
	return n
}

// mapConsumer finds the Kong consumer for the client (by id or username,
// as kong.client.load_consumer does) and authenticates it. It returns false
// when it has answered the request itself.
func (inst *Instance) mapConsumer(kong *pdk.PDK, d *policy.Decision, out map[string][]string) bool {
	var key string
	if inst.consumerClaim == DefaultConsumerClaim {
		key = d.ClientID()
	} else if v, ok := d.Claims.Get(inst.consumerClaim); ok {
		key, _ = v.(string)
	}
	if key != "" {
		consumer, err := kong.Client.LoadConsumer(key, true)
		if err == nil && consumer.Id != "" {
			cred := client.AuthenticatedCredential{Id: d.ClientID(), ConsumerId: consumer.Id}
			if err := kong.Client.Authenticate(&consumer, &cred); err != nil {
				logger.Error("kong.client.authenticate failed", zap.Error(err))
				exit(kong, policy.Misconfigured(err), "")
				return false
			}
			consumerHeaders(out, &consumer, d.ClientID())
			return true
		}
	}
	if inst.optional {
		return true
	}
	logger.Info("token valid but no Kong consumer matches", zap.String("claim", inst.consumerClaim),
		zap.String("value", key), zap.String("client_id", d.ClientID()))
	if inst.anonymous != "" {
		return inst.setAnonymous(kong, out)
	}
	deny := policy.Decision{Status: http.StatusUnauthorized, Error: policy.ErrInvalidToken,
		Reason: ReasonNoConsumer, Message: "The client is not registered at this gateway"}
	exit(kong, deny, inst.realm)
	return false
}

// setAnonymous authenticates the configured anonymous consumer, as Kong's
// own authentication plugins do when authentication fails.
func (inst *Instance) setAnonymous(kong *pdk.PDK, out map[string][]string) bool {
	consumer, err := kong.Client.LoadConsumer(inst.anonymous, true)
	if err != nil || consumer.Id == "" {
		logger.Error("the anonymous consumer does not exist", zap.String("anonymous", inst.anonymous), zap.Error(err))
		exit(kong, policy.Misconfigured(err), "")
		return false
	}
	if err := kong.Client.Authenticate(&consumer, nil); err != nil {
		logger.Error("kong.client.authenticate failed", zap.Error(err))
		exit(kong, policy.Misconfigured(err), "")
		return false
	}
	consumerHeaders(out, &consumer, "")
	out[HeaderAnonymous] = []string{"true"}
	return true
}

func consumerHeaders(out map[string][]string, c *entities.Consumer, credential string) {
	out[HeaderConsumerID] = []string{c.Id}
	if c.CustomId != "" {
		out[HeaderConsumerCustomID] = []string{c.CustomId}
	}
	if c.Username != "" {
		out[HeaderConsumerUsername] = []string{c.Username}
	}
	if credential != "" {
		out[HeaderCredential] = []string{credential}
	}
}

// exit answers a denied request: RFC 6750 challenge plus Kong's JSON body.
func exit(kong *pdk.PDK, d policy.Decision, realm string) {
	h := map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}
	if d.Status == http.StatusUnauthorized || d.Status == http.StatusForbidden || d.Status == http.StatusBadRequest {
		h["WWW-Authenticate"] = []string{d.WWWAuthenticate(realm)}
	}
	kong.Response.Exit(d.Status, d.Body(), h)
}

// cookieValues returns the values of the named cookies, parsed by net/http
// (which skips malformed cookies and unquotes values).
func cookieValues(headers []string, names []string) []string {
	var out []string
	for _, c := range (&http.Request{Header: http.Header{"Cookie": headers}}).Cookies() {
		if contains(names, c.Name) {
			out = append(out, c.Value)
		}
	}
	return out
}
