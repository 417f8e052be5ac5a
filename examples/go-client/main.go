// Command go-client is an example machine client of an API behind
// keycloak-jwt. It gets access tokens from Keycloak with the OAuth 2.0
// client-credentials grant (golang.org/x/oauth2/clientcredentials), renews
// each token before it expires, and calls the API in a loop.
//
//	go run ./examples/go-client                                  # GET http://localhost:8000/orders every 2s
//	go run ./examples/go-client -client-id reports-job -method POST -count 3
//	CLIENT_SECRET=... go run ./examples/go-client -token-url https://sso.example.com/realms/prod/protocol/openid-connect/token
//
// Every flag has an environment variable (shown by -h); the client secret is
// read from CLIENT_SECRET or -client-secret-file, never from a flag. For the
// demo clients of examples/keycloak/realm-demo.json it defaults to their demo
// secret. Tokens are never logged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// config is everything the client needs; see flags for the meaning.
type config struct {
	TokenURL      string
	ClientID      string
	ClientSecret  string
	Auth          string // client_secret_basic, client_secret_post or auto
	Scopes        []string
	APIURL        string
	Method        string
	Interval      time.Duration
	Count         int // 0: until interrupted
	RefreshBefore time.Duration
	Timeout       time.Duration
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.ReadFile)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log.Default(), time.Now); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func parseFlags(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	durationEnv := func(name string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(getenv(name)); err == nil {
			return d
		}
		return def
	}
	var cfg config
	var scope, secretFile string
	fs := flag.NewFlagSet("go-client", flag.ContinueOnError)
	fs.StringVar(&cfg.TokenURL, "token-url", env("TOKEN_URL", "http://localhost:8080/realms/demo/protocol/openid-connect/token"),
		"token endpoint of the realm (env TOKEN_URL)")
	fs.StringVar(&cfg.ClientID, "client-id", env("CLIENT_ID", "orders-service"), "client id (env CLIENT_ID)")
	fs.StringVar(&secretFile, "client-secret-file", env("CLIENT_SECRET_FILE", ""),
		"file holding the client secret (env CLIENT_SECRET_FILE; or the secret itself in env CLIENT_SECRET)")
	fs.StringVar(&cfg.Auth, "auth", env("CLIENT_AUTH", "client_secret_basic"),
		"client authentication: client_secret_basic, client_secret_post or auto (env CLIENT_AUTH)")
	fs.StringVar(&scope, "scope", env("SCOPE", ""), "space-separated scopes to request; empty: the client's default scopes (env SCOPE)")
	fs.StringVar(&cfg.APIURL, "api-url", env("API_URL", "http://localhost:8000/orders"), "URL to call (env API_URL)")
	fs.StringVar(&cfg.Method, "method", env("METHOD", http.MethodGet), "HTTP method of the calls (env METHOD)")
	fs.DurationVar(&cfg.Interval, "interval", durationEnv("INTERVAL", 2*time.Second), "pause between calls (env INTERVAL)")
	count, _ := strconv.Atoi(getenv("COUNT"))
	fs.IntVar(&cfg.Count, "count", count, "number of calls; 0 calls until interrupted (env COUNT)")
	fs.DurationVar(&cfg.RefreshBefore, "refresh-before", durationEnv("REFRESH_BEFORE", 30*time.Second),
		"renew a token this long before it expires (env REFRESH_BEFORE)")
	fs.DurationVar(&cfg.Timeout, "timeout", durationEnv("TIMEOUT", 10*time.Second), "timeout of each HTTP request (env TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Scopes = strings.Fields(scope)
	cfg.ClientSecret = getenv("CLIENT_SECRET")
	if secretFile != "" {
		b, err := readFile(secretFile)
		if err != nil {
			return cfg, fmt.Errorf("client secret: %w", err)
		}
		cfg.ClientSecret = strings.TrimSpace(string(b))
	}
	if cfg.ClientSecret == "" {
		switch cfg.ClientID {
		case "orders-service", "reports-job", "no-audience-client":
			cfg.ClientSecret = cfg.ClientID + "-demo-secret"
		default:
			return cfg, fmt.Errorf("no client secret for %s: set CLIENT_SECRET or -client-secret-file", cfg.ClientID)
		}
	}
	if _, err := authStyle(cfg.Auth); err != nil {
		return cfg, err
	}
	for name, u := range map[string]string{"token-url": cfg.TokenURL, "api-url": cfg.APIURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return cfg, fmt.Errorf("-%s %q is not an http(s) URL", name, u)
		}
	}
	if cfg.Count < 0 || cfg.Interval < 0 || cfg.RefreshBefore < 0 || cfg.Timeout <= 0 {
		return cfg, errors.New("-count, -interval and -refresh-before must not be negative, -timeout must be positive")
	}
	return cfg, nil
}

func authStyle(auth string) (oauth2.AuthStyle, error) {
	switch auth {
	case "client_secret_basic", "basic":
		return oauth2.AuthStyleInHeader, nil
	case "client_secret_post", "post":
		return oauth2.AuthStyleInParams, nil
	case "auto":
		return oauth2.AuthStyleAutoDetect, nil
	}
	return 0, fmt.Errorf("-auth %q: want client_secret_basic, client_secret_post or auto", auth)
}

// errAllFailed is returned by run when calls were made and none got a 2xx
// answer, so that the command exits non-zero.
var errAllFailed = errors.New("every call failed")

// run calls the API cfg.Count times (forever when 0), cfg.Interval apart.
// A failed call is logged and the loop goes on; run returns when ctx ends
// or the calls are done, with errAllFailed when not one call succeeded.
func run(ctx context.Context, cfg config, logger *log.Logger, now func() time.Time) error {
	style, err := authStyle(cfg.Auth)
	if err != nil {
		return err
	}
	httpClient := &http.Client{Timeout: cfg.Timeout}
	cc := clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.TokenURL,
		Scopes:       cfg.Scopes,
		AuthStyle:    style,
	}
	tokens := &tokenSource{
		fetch: func(ctx context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
		},
		early: cfg.RefreshBefore,
		now:   now,
		log:   logger,
		name:  cfg.ClientID,
	}
	calls, succeeded := 0, 0
	done := func(err error) error {
		if calls > 0 && succeeded == 0 {
			return fmt.Errorf("%w (%d of %d)", errAllFailed, calls, calls)
		}
		return err
	}
	for i := 0; cfg.Count == 0 || i < cfg.Count; i++ {
		if i > 0 && cfg.Interval > 0 {
			select {
			case <-ctx.Done():
				return done(ctx.Err())
			case <-time.After(cfg.Interval):
			}
		}
		if err := ctx.Err(); err != nil {
			return done(err)
		}
		calls++
		status, body, err := call(ctx, httpClient, tokens, cfg.Method, cfg.APIURL)
		switch {
		case err != nil:
			logger.Printf("%s %s: %v", cfg.Method, cfg.APIURL, err)
		default:
			if status >= 200 && status < 300 {
				succeeded++
			}
			logger.Printf("%s %s -> %d %s", cfg.Method, cfg.APIURL, status, summarize(body))
		}
	}
	return done(nil)
}

// call makes one request with a bearer token. A 401 with
// error="invalid_token" (the gateway no longer accepts the token, e.g.
// after a key rotation) drops the token and retries once with a new one.
func call(ctx context.Context, client *http.Client, tokens *tokenSource, method, target string) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := tokens.Token(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("token: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, nil)
		if err != nil {
			return 0, nil, err
		}
		tok.SetAuthHeader(req)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, nil, err
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(challenge, `error="invalid_token"`) && attempt == 0 {
			tokens.Invalidate(tok)
			continue
		}
		if challenge != "" && resp.StatusCode >= 400 {
			body = append([]byte(challenge+" "), body...)
		}
		return resp.StatusCode, body, nil
	}
}

// summarize shortens a response body for the log.
func summarize(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// tokenSource hands out the current access token and renews it ahead of
// its expiry: at expiry minus early, or halfway through the token's
// lifetime when that comes first (for tokens shorter than 2*early). It is
// safe for concurrent use; concurrent callers share one renewal.
type tokenSource struct {
	fetch func(context.Context) (*oauth2.Token, error)
	early time.Duration
	now   func() time.Time
	log   *log.Logger
	name  string

	mu      sync.Mutex
	tok     *oauth2.Token
	renewAt time.Time // zero: the token has no expiry
}

// Token returns a token that is not due for renewal, fetching one if needed.
func (s *tokenSource) Token(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.tok != nil && (s.renewAt.IsZero() || now.Before(s.renewAt)) {
		return s.tok, nil
	}
	tok, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.tok, s.renewAt = tok, time.Time{}
	if !tok.Expiry.IsZero() {
		early := s.early
		if life := tok.Expiry.Sub(now); life < 2*early {
			early = life / 2
		}
		s.renewAt = tok.Expiry.Add(-early)
		s.log.Printf("new token for %s: expires in %s, renewing in %s",
			s.name, tok.Expiry.Sub(now).Round(time.Second), s.renewAt.Sub(now).Round(time.Second))
	} else {
		s.log.Printf("new token for %s (no expiry given; kept until refused)", s.name)
	}
	return tok, nil
}

// Invalidate drops tok, if it is still the current token.
func (s *tokenSource) Invalidate(tok *oauth2.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == tok {
		s.tok = nil
		s.log.Printf("token for %s refused by the API: getting a new one", s.name)
	}
}
