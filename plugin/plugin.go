package plugin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/entities"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
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
		go func(g *authz.Gate) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = g.Warm(ctx)
		}(c.inst.gate)
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
		exit(kong, authz.Misconfigured(err))
		return
	}
	inst.access(kong)
}

// access translates one request: Kong's view of it in, the request layer's
// Result out. Each PDK call is a socket round trip: only the headers are
// always read.
func (inst *Instance) access(kong *pdk.PDK) {
	path := ""
	sg := inst.gate.Signer()
	if sg != nil && sg.JWKSPath() != "" || inst.gate.MetadataEnabled() || inst.gate.NeedsRequestLine() {
		p, err := kong.Request.GetPath()
		if err != nil {
			inst.failed(kong, "kong.request.get_path", err)
			return
		}
		path = p
		if sg != nil && path == sg.JWKSPath() {
			kong.Response.Exit(http.StatusOK, sg.JWKS(), map[string][]string{
				"Content-Type": {"application/jwk-set+json"}, "Cache-Control": {"max-age=300"}})
			return
		}
		if meta, ok := inst.gate.Metadata(path); ok {
			exit(kong, meta)
			return
		}
	}
	in, err := kong.Request.GetHeaders(maxHeaders)
	if err != nil {
		inst.failed(kong, "kong.request.get_headers", err)
		return
	}
	req := &authz.Request{Path: path, Header: in, HeadersTruncated: headerCount(in) >= maxHeaders, NoQuery: !inst.needsQuery}
	if inst.gate.NeedsRequestLine() {
		// A DPoP proof names the method and the URL: its htu is public_url
		// plus the path Kong received.
		if req.Method, err = kong.Request.GetMethod(); err != nil {
			inst.failed(kong, "kong.request.get_method", err)
			return
		}
	}
	if !inst.preflight {
		// Kong's convention (jwt, key-auth): with run_on_preflight off, a
		// CORS preflight passes unauthenticated.
		if m, err := kong.Request.GetMethod(); err == nil && m == http.MethodOptions {
			inst.forward(kong, inst.gate.Strip(req), nil)
			return
		}
	}
	if inst.anonymous != "" {
		// Kong's multiple-authentication "OR": with anonymous set, a request
		// another authentication plugin already authenticated is left to it.
		if cred, err := kong.Client.GetCredential(); err == nil && cred.Id != "" {
			inst.forward(kong, inst.gate.Strip(req), nil)
			return
		}
	}
	if inst.needsQuery {
		// The raw query, parsed by the request layer: kong.request.get_query
		// stops at its max_args without an error, so a second token could
		// hide past it.
		if req.RawQuery, err = kong.Request.GetRawQuery(); err != nil {
			inst.failed(kong, "kong.request.get_raw_query", err)
			return
		}
	}
	res := inst.gate.Judge(context.Background(), req)
	set := make(map[string][]string, len(res.Plan.Set)+3)
	for _, kv := range res.Plan.Set {
		set[kv[0]] = []string{kv[1]}
	}
	switch {
	case res.Allow:
		if inst.mapping && !inst.mapConsumer(kong, &res.Decision, set) {
			return
		}
	case inst.anonymous != "" && res.CredentialRefused:
		if !inst.setAnonymous(kong, set) {
			return
		}
	default:
		exit(kong, res.Response)
		return
	}
	inst.forward(kong, res.Plan, set)
}

// forward applies the plan to the upstream request: deletions first, then
// every header set in one call.
func (inst *Instance) forward(kong *pdk.PDK, plan authz.Plan, set map[string][]string) {
	for _, k := range plan.Delete {
		_ = kong.ServiceRequest.ClearHeader(k)
	}
	if len(set) > 0 {
		if err := kong.ServiceRequest.SetHeaders(set); err != nil {
			inst.failed(kong, "kong.service.request.set_headers", err)
		}
	}
}

// failed answers a request whose PDK call failed: fail closed with a 500.
func (inst *Instance) failed(kong *pdk.PDK, call string, err error) {
	logger.Error(call+" failed", zap.Error(err))
	exit(kong, inst.gate.Refuse(http.StatusInternalServerError, authz.ReasonAdapterFailure, "An unexpected error occurred", err.Error()).Response)
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
	key := authz.ClaimString(d, inst.consumerClaim)
	if key != "" {
		consumer, err := kong.Client.LoadConsumer(key, true)
		if err == nil && consumer.Id != "" {
			cred := client.AuthenticatedCredential{Id: d.ClientID(), ConsumerId: consumer.Id}
			if err := kong.Client.Authenticate(&consumer, &cred); err != nil {
				inst.failed(kong, "kong.client.authenticate", err)
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
	exit(kong, inst.gate.Render(&deny))
	return false
}

// setAnonymous authenticates the configured anonymous consumer, as Kong's
// own authentication plugins do when authentication fails.
func (inst *Instance) setAnonymous(kong *pdk.PDK, out map[string][]string) bool {
	consumer, err := kong.Client.LoadConsumer(inst.anonymous, true)
	if err != nil || consumer.Id == "" {
		logger.Error("the anonymous consumer does not exist", zap.String("anonymous", inst.anonymous), zap.Error(err))
		exit(kong, authz.Misconfigured(err))
		return false
	}
	if err := kong.Client.Authenticate(&consumer, nil); err != nil {
		inst.failed(kong, "kong.client.authenticate", err)
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

// exit answers a denied request with the response the request layer rendered.
func exit(kong *pdk.PDK, r authz.Response) {
	h := make(map[string][]string, len(r.Header))
	for _, kv := range r.Header {
		h[kv[0]] = append(h[kv[0]], kv[1]) // WWW-Authenticate may come twice (Bearer, DPoP)
	}
	kong.Response.Exit(r.Status, r.Body, h)
}
