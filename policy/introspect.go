package policy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"
	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
	"github.com/keycloak-jwt/keycloak-jwt/store"
)

// Defaults and bounds of Introspection.
const (
	DefaultIntrospectionMaxAgeSeconds      = 60
	DefaultIntrospectionInactiveTTLSeconds = 10
	DefaultIntrospectionTimeoutSeconds     = 2
	DefaultIntrospectionCacheSize          = 10000
	maxIntrospectionAnswerBytes            = 64 << 10
	maxSecretFileBytes                     = 64 << 10
	// sharedPause is how long the shared store is left alone after it
	// failed: requests meanwhile use the node's own cache and the endpoint,
	// instead of each waiting for Redis's timeout.
	sharedPause = 5 * time.Second
	// discoveryPause spaces the attempts to read the introspection
	// endpoint from a discovery document that failed.
	discoveryPause = 5 * time.Second
)

// Introspection asks the issuer whether a token is active (RFC 7662)
// before accepting it, on the routes that turn it on: a revoked token stops
// working within MaxAgeSeconds instead of at its exp, and tokens that carry
// too little to be checked locally (opaque tokens, Keycloak's lightweight
// access tokens) are checked with the claims of the answer. The requirements
// (audiences, scopes, roles, clients, token type, issuer) apply to those
// claims exactly as to a JWT's.
type Introspection struct {
	// Enabled turns introspection on (a route may set false to turn off
	// what the shared requirements turn on).
	Enabled bool `json:"enabled"`
	// Endpoint is the introspection URL. Default: introspection_endpoint
	// of the discovery document of the one trusted issuer (required when
	// several issuers are trusted, or an issuer pattern).
	Endpoint string `json:"endpoint"`
	// ClientID and its secret (ClientSecretEnv or ClientSecretFile,
	// exactly one) are the gateway's own confidential client, sent with
	// HTTP Basic authentication. The secret is never logged.
	ClientID         string `json:"client_id"`
	ClientSecretEnv  string `json:"client_secret_env"`
	ClientSecretFile string `json:"client_secret_file"`
	// MaxAgeSeconds: an active answer is reused until the token's exp or
	// this age, whichever comes first (default 60, 1 to 86400): the longest
	// a revoked token keeps working.
	MaxAgeSeconds int `json:"max_age_seconds"`
	// InactiveTTLSeconds: an inactive answer is reused this long (default
	// 10, 1 to 3600).
	InactiveTTLSeconds int `json:"inactive_ttl_seconds"`
	// TimeoutSeconds bounds one introspection request (default 2, 1 to 60).
	TimeoutSeconds int `json:"timeout_seconds"`
	// CacheSize bounds the answers this node keeps (default 10000; 0 keeps
	// none: every request asks the shared store or the endpoint).
	CacheSize *int `json:"cache_size"`
}

// StoreConfig is the store shared by gateway nodes (Config.Store).
type StoreConfig struct {
	// Redis, when its address is set, holds introspection answers (with
	// their TTL) for every node, and is the replay store of proofs.
	Redis *store.RedisConfig `json:"redis"`
}

// introSpec is a compiled Introspection.
type introSpec struct {
	endpoint     string // "" when read from discovery
	discoveryURL string
	issuer       string // the one trusted issuer, "" when several
	clientID     string
	secret       string
	maxAge       int64
	inactiveTTL  int64
	timeout      time.Duration
	cacheSize    int
	// key names the answers of this endpoint and client in the shared store.
	key string
}

// compileStore validates the shared store.
func (c Config) compileStore(r *rules) []error {
	if c.Store.Redis == nil || *c.Store.Redis == (store.RedisConfig{}) {
		return nil // unset (Kong sends a record of nulls)
	}
	if err := c.Store.Redis.Validate(); err != nil {
		var errs []error
		for _, e := range unjoin(err) {
			var fe *store.FieldError
			if errors.As(e, &fe) {
				errs = append(errs, cfgErr("store.redis."+fe.Field, "%s", fe.Msg))
			} else {
				errs = append(errs, cfgErr("store.redis", "%v", e))
			}
		}
		return errs
	}
	rc := *c.Store.Redis
	r.redis = &rc
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// compileIntrospection validates Introspection (only when enabled),
// reading the client secret now so that a missing one is a config error.
func (c Config) compileIntrospection(r *rules) []error {
	in := c.Introspection
	if in == nil || !in.Enabled {
		return nil
	}
	const f = "introspection."
	var errs []error
	add := func(field, format string, a ...any) { errs = append(errs, cfgErr(f+field, format, a...)) }
	s := &introSpec{clientID: strings.TrimSpace(in.ClientID)}
	if s.clientID == "" {
		add("client_id", "is required: the gateway's own confidential client in the realm (Client authentication on)")
	}
	switch {
	case in.ClientSecretEnv != "" && in.ClientSecretFile != "":
		add("client_secret_file", "set exactly one of client_secret_env and client_secret_file, not both")
	case in.ClientSecretEnv != "":
		v, ok := os.LookupEnv(in.ClientSecretEnv)
		if !ok || v == "" {
			add("client_secret_env", "environment variable %q is not set or empty", in.ClientSecretEnv)
		}
		s.secret = v
	case in.ClientSecretFile != "":
		b, err := limitedfile.Read(in.ClientSecretFile, maxSecretFileBytes)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			add("client_secret_file", "cannot read %q: %v", in.ClientSecretFile, err)
		}
		s.secret = strings.TrimRight(string(b), "\r\n")
		if err == nil && s.secret == "" {
			add("client_secret_file", "%q is empty", in.ClientSecretFile)
		}
	default:
		add("client_secret_env", "one of client_secret_env and client_secret_file is required (the client's secret: Clients → client → Credentials)")
	}
	bound := func(field string, v, def, maxV int) int64 {
		switch {
		case v == 0:
			return int64(def)
		case v < 0 || v > maxV:
			add(field, "must be between 1 and %d (0: the default, %d), got %d", maxV, def, v)
		}
		return int64(v)
	}
	s.maxAge = bound("max_age_seconds", in.MaxAgeSeconds, DefaultIntrospectionMaxAgeSeconds, 86400)
	s.inactiveTTL = bound("inactive_ttl_seconds", in.InactiveTTLSeconds, DefaultIntrospectionInactiveTTLSeconds, 3600)
	s.timeout = time.Duration(bound("timeout_seconds", in.TimeoutSeconds, DefaultIntrospectionTimeoutSeconds, 60)) * time.Second
	s.cacheSize = DefaultIntrospectionCacheSize
	if in.CacheSize != nil {
		if *in.CacheSize < 0 || *in.CacheSize > 10_000_000 {
			add("cache_size", "must be between 0 and 10000000, got %d", *in.CacheSize)
		}
		s.cacheSize = *in.CacheSize
	}
	if len(c.Issuers) == 1 && !c.Issuers[0].isPattern() {
		is := c.Issuers[0]
		s.issuer = strings.TrimSpace(is.Issuer)
		s.discoveryURL = is.DiscoveryURL
		if s.discoveryURL == "" {
			s.discoveryURL = strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
		}
	}
	if in.Endpoint != "" {
		if err := httpURL(in.Endpoint); err != nil {
			add("endpoint", "%v", err)
		}
		s.endpoint = in.Endpoint
	} else if s.issuer == "" && len(c.Issuers) > 0 {
		add("endpoint", "is required when several issuers (or an issuer pattern) are trusted: "+
			"the endpoint of a token that is not a JWT cannot be told from its issuer")
	}
	where := s.endpoint
	if where == "" {
		where = "discovery:" + s.discoveryURL
	}
	sum := sha256.Sum256([]byte(where + "\x00" + s.clientID))
	s.key = "introspect:" + base64.RawURLEncoding.EncodeToString(sum[:9]) + ":"
	r.intro = s
	return errs
}

func httpURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

// introspector asks one endpoint, as one client, and caches the answers.
type introspector struct {
	spec   *introSpec
	client *http.Client
	log    *zap.Logger
	// shared is the store of every node (nil: this node's cache only).
	shared      store.Store
	sharedUntil atomic.Int64 // Unix ns until which shared is left alone

	endpoint  atomic.Pointer[string] // configured, or discovered once
	discMu    sync.Mutex
	discLast  time.Time
	discErr   error
	mu        sync.RWMutex // cache and flights
	cache     map[string]introEntry
	flights   map[string]*introFlight
	requests  atomic.Int64
	hits      atomic.Int64
	sharedHit atomic.Int64
	failures  atomic.Int64
	sharedErr atomic.Int64
}

// introEntry is one answer: claims nil when the token is not active.
type introEntry struct {
	claims *Claims
	until  int64 // Unix second from which it is not reused
}

type introFlight struct {
	done  chan struct{}
	entry introEntry
	err   error
}

// IntrospectionStats count a policy's introspection work.
type IntrospectionStats struct {
	// Requests sent to the endpoint; Failures among them (down, slow,
	// refused, not an answer).
	Requests, Failures int64
	// CacheHits served by this node's cache; SharedHits by the shared
	// store; SharedErrors are the shared store's failures (each falls back
	// to this node).
	CacheHits, SharedHits, SharedErrors int64
}

// IntrospectionStats reports the counts (zero when introspection is off).
func (p *Policy) IntrospectionStats() IntrospectionStats {
	in := p.intro
	if in == nil {
		return IntrospectionStats{}
	}
	return IntrospectionStats{Requests: in.requests.Load(), Failures: in.failures.Load(),
		CacheHits: in.hits.Load(), SharedHits: in.sharedHit.Load(), SharedErrors: in.sharedErr.Load()}
}

// SharedStore is the store shared by gateway nodes (store.redis), nil when
// none is configured. A replay check that uses it must refuse on its errors.
func (p *Policy) SharedStore() store.Store { return p.shared }

// newIntrospector builds the introspector of spec; the HTTP client trusts
// what the JWKS settings trust (ca_file, insecure_skip_verify).
func newIntrospector(spec *introSpec, shared store.Store, j JWKSConfig, log *zap.Logger) (*introspector, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: j.InsecureSkipVerify} //nolint:gosec // explicit dev option
	if j.CAFile != "" {
		pem, err := limitedfile.Read(j.CAFile, 4<<20)
		if err != nil {
			return nil, cfgErr("jwks.ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, cfgErr("jwks.ca_file", "%q holds no PEM certificate", j.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	in := &introspector{spec: spec, log: log, cache: map[string]introEntry{}, flights: map[string]*introFlight{},
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the introspection endpoint redirected: refused (the client secret is not sent on)")
		}}}
	in.shared = shared
	if spec.endpoint != "" {
		e := spec.endpoint
		in.endpoint.Store(&e)
	}
	return in, nil
}

// finish decides on a token whose signature (if it is a JWT) is verified:
// with the token's own claims, or, where introspection is on, with the
// claims of the issuer's answer.
func (p *Policy) finish(ctx context.Context, token string, jwt *Claims, now int64, cached bool) Decision {
	if p.intro == nil {
		return p.checkClaims(jwt, now, cached)
	}
	e, hit, err := p.intro.lookup(ctx, token, jwt, now)
	if err != nil {
		p.intro.log.Warn("token introspection failed: request refused", zap.Error(err), zap.String("jti", jtiOf(jwt)))
		d := deny(http.StatusServiceUnavailable, "", ReasonIntrospection,
			"The gateway could not check the access token; try again later", "introspection: "+err.Error())
		d.Introspected = true
		return d
	}
	if e.claims == nil {
		d := invalidToken(ReasonInactive, "The access token is not active",
			"introspection says active false (revoked, expired, or unknown to the issuer)")
		d.Introspected, d.CachedResult = true, hit
		return d
	}
	d := p.checkClaims(e.claims, now, cached || (jwt == nil && hit))
	d.Introspected = true
	if d.Allow && d.AcceptedUntil > e.until {
		// What is derived from the decision (the upstream JWT) does not
		// outlive the answer it rests on.
		d.AcceptedUntil = e.until
	}
	return d
}

func jtiOf(c *Claims) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// looksOpaque reports whether token is not a compact JWS (two dots), so that
// only introspection can check it. It must be an RFC 6750 b64token.
func looksOpaque(token string) (opaque, ok bool) {
	if strings.Count(token, ".") == 2 {
		return false, true
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		case c == '=' && i > 0 && strings.TrimRight(token[i:], "=") == "":
			return true, true
		default:
			return true, false
		}
	}
	return true, true
}

// lookup returns the answer for token: from this node's cache, else the
// shared store, else the endpoint. Concurrent lookups of one token share one
// flight; a waiter gives up when its own context ends.
func (in *introspector) lookup(ctx context.Context, token string, jwt *Claims, now int64) (introEntry, bool, error) {
	in.mu.RLock()
	e, ok := in.cache[token]
	in.mu.RUnlock()
	if ok && e.until > now {
		in.hits.Add(1)
		return e, true, nil
	}
	in.mu.Lock()
	if e, ok := in.cache[token]; ok && e.until > now { // a flight landed meanwhile
		in.mu.Unlock()
		in.hits.Add(1)
		return e, true, nil
	}
	f := in.flights[token]
	if f == nil {
		f = &introFlight{done: make(chan struct{})}
		in.flights[token] = f
		in.mu.Unlock()
		// Detached from the first caller: its cancellation must not fail
		// the others waiting on this flight.
		go in.fly(context.WithoutCancel(ctx), f, token, jwt, now)
	} else {
		in.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.entry, false, f.err
	case <-ctx.Done():
		return introEntry{}, false, fmt.Errorf("gave up waiting: %w", ctx.Err())
	}
}

func (in *introspector) fly(ctx context.Context, f *introFlight, token string, jwt *Claims, now int64) {
	f.entry, f.err = in.answer(ctx, token, jwt, now)
	in.mu.Lock()
	delete(in.flights, token)
	if f.err == nil && in.spec.cacheSize > 0 {
		in.remember(token, f.entry, now)
	}
	in.mu.Unlock()
	close(f.done)
}

// remember caches e (in.mu held), within the size bound.
func (in *introspector) remember(token string, e introEntry, now int64) {
	if _, ok := in.cache[token]; !ok && len(in.cache) >= in.spec.cacheSize {
		for k, old := range in.cache {
			if old.until <= now {
				delete(in.cache, k)
			}
		}
		for k := range in.cache { // still full: drop a tenth, at random
			if len(in.cache) < in.spec.cacheSize*9/10 {
				break
			}
			delete(in.cache, k)
		}
	}
	in.cache[token] = e
}

// answer asks the shared store, then the endpoint (storing its answer in
// the shared store). A failing shared store is skipped, not fatal.
func (in *introspector) answer(ctx context.Context, token string, jwt *Claims, now int64) (introEntry, error) {
	var key string
	useShared := in.shared != nil && time.Now().UnixNano() >= in.sharedUntil.Load()
	if useShared {
		sum := sha256.Sum256([]byte(token))
		key = in.spec.key + base64.RawURLEncoding.EncodeToString(sum[:])
		v, ok, err := in.shared.Get(ctx, key)
		switch {
		case err != nil:
			in.sharedFailed(err)
			useShared = false
		case ok:
			if until, raw, ok := strings.Cut(string(v), "\n"); ok {
				if u, err := strconv.ParseInt(until, 10, 64); err == nil && u > now {
					if e, err := in.parse([]byte(raw), jwt, now); err == nil {
						e.until = min(e.until, u)
						in.sharedHit.Add(1)
						return e, nil
					}
				}
			}
		}
	}
	raw, err := in.ask(ctx, token)
	if err != nil {
		in.failures.Add(1)
		return introEntry{}, err
	}
	e, err := in.parse(raw, jwt, now)
	if err != nil {
		in.failures.Add(1)
		return introEntry{}, err
	}
	if useShared && e.until > now {
		v := strconv.AppendInt(nil, e.until, 10)
		v = append(append(v, '\n'), raw...)
		if err := in.shared.Set(ctx, key, v, time.Duration(e.until-now)*time.Second); err != nil {
			in.sharedFailed(err)
		}
	}
	return e, nil
}

func (in *introspector) sharedFailed(err error) {
	in.sharedErr.Add(1)
	in.sharedUntil.Store(time.Now().Add(sharedPause).UnixNano())
	in.log.Warn("shared store failed: introspection answers cached on this node only for a while",
		zap.Error(err), zap.Duration("pause", sharedPause))
}

// ask POSTs the token to the endpoint (RFC 7662 §2.1) as the gateway's client.
func (in *introspector) ask(ctx context.Context, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, in.spec.timeout)
	defer cancel()
	endpoint, err := in.endpointURL(ctx)
	if err != nil {
		return nil, err
	}
	in.requests.Add(1)
	body := url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %v", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: both form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(in.spec.clientID), url.QueryEscape(in.spec.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", endpoint, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionAnswerBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("endpoint %s: reading the answer: %v", endpoint, err)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("endpoint %s refused the gateway's client %q (HTTP %d): check introspection.client_id and its secret",
			endpoint, in.spec.clientID, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("endpoint %s answered HTTP %d", endpoint, resp.StatusCode)
	case len(b) > maxIntrospectionAnswerBytes:
		return nil, fmt.Errorf("endpoint %s: answer larger than %d bytes", endpoint, maxIntrospectionAnswerBytes)
	}
	return b, nil
}

// endpointURL is the configured endpoint, or the one the discovery
// document names (read once; a failure is retried after discoveryPause).
func (in *introspector) endpointURL(ctx context.Context) (string, error) {
	if e := in.endpoint.Load(); e != nil {
		return *e, nil
	}
	in.discMu.Lock()
	defer in.discMu.Unlock()
	if e := in.endpoint.Load(); e != nil {
		return *e, nil
	}
	if in.discErr != nil && time.Since(in.discLast) < discoveryPause {
		return "", in.discErr
	}
	in.discLast = time.Now()
	e, err := in.discover(ctx)
	if err != nil {
		in.discErr = err
		return "", err
	}
	in.discErr = nil
	in.endpoint.Store(&e)
	return e, nil
}

func (in *introspector) discover(ctx context.Context) (string, error) {
	u := in.spec.discoveryURL
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("discovery %s: %v", u, err)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery %s: %w", u, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery %s: HTTP %d %v", u, resp.StatusCode, err)
	}
	var doc struct {
		Endpoint string `json:"introspection_endpoint"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: not a JSON discovery document", u)
	}
	if doc.Endpoint == "" {
		return "", fmt.Errorf("discovery %s names no introspection_endpoint: set introspection.endpoint", u)
	}
	if err := httpURL(doc.Endpoint); err != nil {
		return "", fmt.Errorf("discovery %s: introspection_endpoint %v", u, err)
	}
	if strings.HasPrefix(u, "https:") && !strings.HasPrefix(doc.Endpoint, "https:") {
		return "", fmt.Errorf("discovery %s names introspection_endpoint %s over plain http: refused, the client secret would travel in clear text", u, doc.Endpoint)
	}
	return doc.Endpoint, nil
}

// parse reads an answer. An active one becomes Claims, read by the same
// parser and rules as a JWT's payload; what the answer leaves out is taken
// from the verified JWT (iss, exp, header typ) or, for an opaque token,
// from the configuration (the one trusted issuer; exp: the maximum age).
// token_type "Bearer" stands for Keycloak's typ claim when typ is absent.
func (in *introspector) parse(raw []byte, jwt *Claims, now int64) (introEntry, error) {
	obj, parser, err := parseObject(raw)
	if err != nil {
		return introEntry{}, fmt.Errorf("the answer %w", err)
	}
	active := obj.Get("active")
	isActive := active != nil && active.Type() == fastjson.TypeTrue
	absent := func(name string) bool { v := obj.Get(name); return v == nil || v.Type() == fastjson.TypeNull }
	var fill []byte
	addMember := func(name string, v []byte) {
		fill = append(fill, '"')
		fill = append(fill, name...)
		fill = append(fill, `":`...)
		fill = append(fill, v...)
		fill = append(fill, ',')
	}
	if isActive {
		if absent("exp") {
			exp := now + in.spec.maxAge
			if jwt != nil {
				exp = jwt.Expiry
			}
			addMember("exp", strconv.AppendInt(nil, exp, 10))
		}
		if absent("iss") {
			iss := in.spec.issuer
			if jwt != nil {
				iss = jwt.Issuer
			}
			if iss != "" {
				addMember("iss", jsonString(iss))
			}
		}
		if tt := obj.Get("token_type"); absent("typ") && tt != nil && strings.EqualFold(string(tt.GetStringBytes()), TypeBearer) {
			addMember("typ", jsonString(TypeBearer))
		}
	}
	jsonParsers.Put(parser)
	if !isActive {
		return introEntry{until: now + in.spec.inactiveTTL}, nil
	}
	payload := raw
	if len(fill) > 0 {
		// The answer is an object with at least "active": the members
		// filled in go first, so that the answer's own (null) ones are read
		// last by Claims.Get.
		payload = append(append([]byte{'{'}, fill...), raw[1:]...)
	}
	h := &header{}
	if jwt != nil {
		h.Alg, h.Kid, h.Typ = jwt.Algorithm, jwt.KeyID, jwt.HeaderType
	}
	c, err := decodeClaims(payload, h)
	if err != nil {
		return introEntry{}, fmt.Errorf("the answer's %v", err)
	}
	until := now + in.spec.maxAge
	if c.Expiry < until {
		until = max(c.Expiry, now+1) // an expired token: the expiry rule refuses it
	}
	return introEntry{claims: c, until: until}, nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// compileShared connects the policy to the shared store and builds its
// introspector.
func (p *Policy) compileShared(r *rules, j JWKSConfig, deps Deps) error {
	if r.redis != nil {
		pool := deps.Stores
		if pool == nil {
			pool = store.DefaultPool()
		}
		rs, err := pool.Redis(*r.redis)
		if err != nil {
			return cfgErr("store.redis", "%v", err)
		}
		p.shared = rs
	}
	if r.intro != nil {
		in, err := newIntrospector(r.intro, p.shared, j, p.log)
		if err != nil {
			return err
		}
		p.intro = in
	}
	return nil
}
