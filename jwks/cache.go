package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
)

// Errors returned by Source.Key. Both mean "deny".
var (
	// ErrUnknownKey: the issuer's current key set has no key with that kid.
	ErrUnknownKey = errors.New("unknown key id")
	// ErrUnavailable: no usable key set (never fetched, or stale beyond MaxStale).
	ErrUnavailable = errors.New("issuer keys unavailable")
)

// Options configure a Cache.
type Options struct {
	Logger *zap.Logger
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Transport overrides the HTTP transport (tests); when nil each source
	// builds one from its TLS settings.
	Transport http.RoundTripper
}

// Cache is the process-wide registry of key sources.
type Cache struct {
	log       *zap.Logger
	now       func() time.Time
	transport http.RoundTripper

	mu      sync.Mutex
	sources map[string]*Source
	tenants map[string]*TenantSet // by TenantSpec.cacheKey
}

// NewCache returns an empty cache.
func NewCache(o Options) *Cache {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Cache{log: o.Logger, now: o.Clock, transport: o.Transport, sources: map[string]*Source{}, tenants: map[string]*TenantSet{}}
}

// Source returns the shared source for spec, creating it on first use. It
// does not fetch; the first Key call (or Warm) does.
func (c *Cache) Source(spec Spec) (*Source, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	key := spec.cacheKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sources[key]; ok {
		return s, nil
	}
	client, err := c.httpClient(spec)
	if err != nil {
		return nil, err
	}
	s := c.newSource(spec, client)
	if spec.InsecureSkipVerify {
		s.log.Warn("TLS verification is OFF for this key source (insecure_skip_verify): development only")
	}
	c.sources[key] = s
	return s, nil
}

func (c *Cache) newSource(spec Spec, client *http.Client) *Source {
	s := &Source{spec: spec, cfg: spec.Config.withDefaults(), cache: c, client: client}
	s.log = c.log.With(zap.String("issuer", spec.Issuer), zap.String("keys_from", s.where()))
	return s
}

// Sources lists every registered source, for readiness checks and metrics.
func (c *Cache) Sources() []*Source {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Source, 0, len(c.sources))
	for _, s := range c.sources {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Issuer < out[j].spec.Issuer })
	return out
}

// maxRedirects bounds the redirects one discovery or JWKS request follows.
const maxRedirects = 3

// checkRedirect follows at most maxRedirects redirects, and never one from
// https to http: keys asked for over TLS are not then read in clear text.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if from := via[len(via)-1].URL; from.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused the redirect from %s to %s: keys asked for over https are never fetched over plain http",
			from.Redacted(), req.URL.Redacted())
	}
	return nil
}

func (c *Cache) httpClient(spec Spec) (*http.Client, error) {
	if c.transport != nil {
		return &http.Client{Transport: c.transport, CheckRedirect: checkRedirect}, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if spec.CAFile != "" {
		pem, err := limitedfile.Read(spec.CAFile, maxCAFileBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: ca_file: %w", ErrInvalidSpec, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca_file %q holds no PEM certificate", ErrInvalidSpec, spec.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.TLSClientConfig.InsecureSkipVerify = spec.InsecureSkipVerify //nolint:gosec // explicit, logged dev option
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}, nil
}

// maxCAFileBytes bounds ca_file (a whole system bundle is ~250 KiB).
const maxCAFileBytes = 4 << 20

// Source is the key set of one issuer, fetched and refreshed on demand.
type Source struct {
	spec   Spec
	cfg    Config
	cache  *Cache
	client *http.Client
	log    *zap.Logger

	set atomic.Pointer[KeySet]

	mu             sync.Mutex
	inflight       chan struct{} // closed when the running fetch ends
	lastAttempt    time.Time     // start of the last fetch, whatever its cause
	lastUnknownKid time.Time     // start of the last fetch caused by an unknown kid
	lastErr        error
	jwksURI        string // discovered (or configured) JWKS location

	fetches, failures atomic.Int64
}

// Issuer is the issuer string this source holds keys for.
func (s *Source) Issuer() string { return s.spec.Issuer }

func (s *Source) where() string {
	if s.spec.JWKSURI != "" {
		return s.spec.JWKSURI
	}
	return s.spec.discoveryURL()
}

// Status is a snapshot for readiness and metrics.
type Status struct {
	Issuer    string
	URL       string
	Ready     bool // a key set within its stale limit is loaded
	Keys      int
	FetchedAt time.Time
	Fetches   int64 // fetch attempts (discovery + JWKS counted once)
	Failures  int64
	LastError string
}

// Status reports the source's state.
func (s *Source) Status() Status {
	set := s.set.Load()
	st := Status{Issuer: s.spec.Issuer, URL: s.where(), Fetches: s.fetches.Load(), Failures: s.failures.Load()}
	if set != nil {
		st.Keys = set.Len()
		st.FetchedAt = set.FetchedAt
		st.Ready = s.usable(set, s.cache.now())
	}
	s.mu.Lock()
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	s.mu.Unlock()
	return st
}

// Current returns the loaded key set (nil before the first good fetch).
func (s *Source) Current() *KeySet { return s.set.Load() }

// Fresh returns the loaded key set if it is still usable (nil once it is
// past its expiry plus max_stale, as Key would refuse it), and starts a
// background refresh when the set is due for one. Callers that skip Key (a
// cache of verified tokens) use it so that rotation, removal and outages
// still take effect.
func (s *Source) Fresh() *KeySet {
	now := s.cache.now()
	set := s.set.Load()
	if set != nil && !now.Before(set.RefreshAt) {
		s.startFetch(causeDue)
	}
	if !s.usable(set, now) {
		return nil
	}
	return set
}

func (s *Source) usable(set *KeySet, now time.Time) bool {
	return set != nil && now.Before(set.ExpiresAt.Add(s.cfg.MaxStale))
}

// Warm fetches the keys now unless a usable set is loaded, waiting for the
// result. Use it at start-up so the first request does not pay for the fetch.
func (s *Source) Warm(ctx context.Context) error {
	if s.usable(s.set.Load(), s.cache.now()) {
		return nil
	}
	return s.fetchAndWait(ctx, causeWarm)
}

// Key returns the key for kid that allows alg. It never calls the issuer on
// the fast path: a refresh due by TTL runs in the background, and an unknown
// kid triggers at most one fetch per MinRefreshInterval (see
// causeUnknownKid), shared by all concurrent callers.
func (s *Source) Key(ctx context.Context, kid, alg string) (*Key, error) {
	now := s.cache.now()
	set := s.set.Load()
	if set != nil && !now.Before(set.RefreshAt) {
		s.startFetch(causeDue)
	}
	if !s.usable(set, now) {
		err := s.fetchAndWait(ctx, causeDue)
		// Another caller's fetch may have succeeded meanwhile: look again.
		if set = s.set.Load(); !s.usable(set, s.cache.now()) {
			if err == nil {
				err = errors.New("no usable key set")
			}
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if k, ok := set.Lookup(kid, alg); ok {
		return k, nil
	}
	// Unknown kid: maybe the issuer rotated. Refetch (rate-limited, shared
	// with concurrent callers), then look in whatever set is current.
	_ = s.fetchAndWait(ctx, causeUnknownKid)
	if k, ok := s.set.Load().Lookup(kid, alg); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

var errRateLimited = errors.New("refetch skipped: min_refresh_interval not elapsed")

// fetchCause is why a fetch is asked for; it decides which limit applies.
type fetchCause int

const (
	// causeWarm: Warm, at start-up. Never limited.
	causeWarm fetchCause = iota
	// causeDue: the set is due for its refresh, or there is no usable set.
	// At most one attempt per MinRefreshInterval, counted from any fetch.
	causeDue
	// causeUnknownKid: a token names a kid the set lacks. At most one such
	// fetch per MinRefreshInterval, counted from the last fetch of this
	// cause only: the first token with a new kid right after a start-up or
	// scheduled fetch is not refused for the rest of the interval. While
	// the realm fails (the last attempt, of any cause, failed within the
	// interval), none at all.
	causeUnknownKid
)

// startFetch starts a background fetch unless one is running or the limit
// of cause forbids it. It returns the channel closed when the running fetch
// ends (which may be one started for another cause), or nil with the reason
// no fetch runs.
func (s *Source) startFetch(cause fetchCause) (chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight, nil
	}
	now := s.cache.now()
	recent := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) < s.cfg.MinRefreshInterval }
	limited := false
	switch cause {
	case causeDue:
		limited = recent(s.lastAttempt)
	case causeUnknownKid:
		limited = recent(s.lastUnknownKid) || (s.lastErr != nil && recent(s.lastAttempt))
	}
	if limited {
		if s.lastErr != nil {
			return nil, fmt.Errorf("%w; last error: %w", errRateLimited, s.lastErr)
		}
		return nil, errRateLimited
	}
	if cause == causeUnknownKid {
		s.lastUnknownKid = now
	}
	s.lastAttempt = now
	done := make(chan struct{})
	s.inflight = done
	go s.fetch(done)
	return done, nil
}

func (s *Source) fetchAndWait(ctx context.Context, cause fetchCause) error {
	done, err := s.startFetch(cause)
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// fetch runs one discovery (when needed) + JWKS fetch, detached from any
// request context, and publishes the result.
func (s *Source) fetch(done chan struct{}) {
	s.fetches.Add(1)
	span := s.startFetchSpan()
	set, err := s.fetchSet()
	endFetchSpan(span, set, err)
	s.mu.Lock()
	s.lastErr = err
	s.inflight = nil
	if err != nil {
		s.jwksURI = "" // rediscover next time
	}
	s.mu.Unlock()
	if err != nil {
		s.failures.Add(1)
		old := s.set.Load()
		if s.usable(old, s.cache.now()) {
			s.log.Error("JWKS refresh failed; serving the last good key set",
				zap.Error(err), zap.Time("keys_fetched_at", old.FetchedAt),
				zap.Time("stale_until", old.ExpiresAt.Add(s.cfg.MaxStale)))
		} else {
			s.log.Error("JWKS fetch failed; no usable keys, tokens of this issuer are denied", zap.Error(err))
		}
	} else {
		first := s.set.Swap(set) == nil
		lvl := s.log.Debug
		if first {
			lvl = s.log.Info
		}
		lvl("JWKS loaded", zap.Strings("kids", set.IDs()), zap.Strings("skipped", set.Skipped),
			zap.Time("refresh_at", set.RefreshAt))
	}
	close(done)
}

func (s *Source) fetchSet() (*KeySet, error) {
	s.mu.Lock()
	uri := s.jwksURI
	s.mu.Unlock()
	if uri == "" {
		uri = s.spec.JWKSURI
	}
	if uri == "" {
		var err error
		if uri, err = s.discover(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.jwksURI = uri
		s.mu.Unlock()
	}
	body, hdr, err := s.get(uri)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", uri, err)
	}
	set, err := ParseSet(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", uri, err)
	}
	set.reuse(s.set.Load())
	now := s.cache.now()
	ttl := s.ttl(hdr.Get("Cache-Control"))
	set.FetchedAt = now
	set.ExpiresAt = now.Add(ttl)
	set.RefreshAt = now.Add(ttl * 4 / 5)
	return set, nil
}

// ttl derives the cache lifetime from Cache-Control, within [MinTTL, MaxTTL].
func (s *Source) ttl(cc string) time.Duration {
	ttl := s.cfg.DefaultTTL
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			ttl = s.cfg.MinTTL
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.TrimPrefix(d, "max-age="), 10, 64); err == nil && n >= 0 {
				if n > int64(s.cfg.MaxTTL/time.Second) {
					n = int64(s.cfg.MaxTTL / time.Second)
				}
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, s.cfg.MinTTL), s.cfg.MaxTTL)
}

func (s *Source) discover() (string, error) {
	u := s.spec.discoveryURL()
	body, _, err := s.get(u)
	if err != nil {
		return "", fmt.Errorf("discovery %s: %w", u, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: not a JSON discovery document: %w", u, err)
	}
	if doc.Issuer != s.spec.Issuer {
		return "", fmt.Errorf("discovery %s: document says issuer %q but the configured issuer is %q "+
			"(tokens are checked against the configured one; fix the issuer, set Keycloak's hostname "+
			"(KC_HOSTNAME) so both agree, or set jwks_uri to skip discovery)", u, doc.Issuer, s.spec.Issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery %s: document has no jwks_uri", u)
	}
	ju, err := url.Parse(doc.JWKSURI)
	if err != nil || (ju.Scheme != "http" && ju.Scheme != "https") || ju.Host == "" {
		return "", fmt.Errorf("discovery %s: jwks_uri %q is not an absolute http(s) URL", u, doc.JWKSURI)
	}
	if du, _ := url.Parse(u); du != nil && du.Scheme == "https" && ju.Scheme == "http" {
		return "", fmt.Errorf("discovery %s of issuer %s names jwks_uri %s over plain http: refused, keys found "+
			"over https are fetched over https only (a Keycloak behind a TLS proxy needs KC_PROXY_HEADERS or an "+
			"https KC_HOSTNAME; or set jwks_uri yourself)", u, s.spec.Issuer, ju.Redacted())
	}
	return doc.JWKSURI, nil
}

// get performs one bounded GET.
func (s *Source) get(u string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(body)) > s.cfg.MaxResponseBytes {
		return nil, nil, fmt.Errorf("response larger than %d bytes", s.cfg.MaxResponseBytes)
	}
	return body, resp.Header, nil
}
