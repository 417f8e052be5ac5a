package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// fakeRealm is a token endpoint issuing "tok-1", "tok-2", ... and an API
// accepting the tokens it issued, minus the ones in revoked.
type fakeRealm struct {
	expiresIn int
	issued    atomic.Int64
	auth      atomic.Value // "basic" or "post" of the last token request
	mu        sync.Mutex
	revoked   map[string]bool
	apiCalls  atomic.Int64
}

func newFakeRealm(t *testing.T, expiresIn int) (*fakeRealm, *httptest.Server, *httptest.Server) {
	r := &fakeRealm{expiresIn: expiresIn, revoked: map[string]bool{}}
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil || req.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		id, secret, basic := req.BasicAuth()
		if basic {
			r.auth.Store("basic")
		} else {
			id, secret = req.PostForm.Get("client_id"), req.PostForm.Get("client_secret")
			r.auth.Store("post")
		}
		if id != "orders-service" || secret != "orders-service-demo-secret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		n := r.issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d,"scope":%q}`,
			n, r.expiresIn, req.PostForm.Get("scope"))
	}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.apiCalls.Add(1)
		tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		r.mu.Lock()
		bad := r.revoked[tok] || !strings.HasPrefix(tok, "tok-")
		r.mu.Unlock()
		if bad {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orders-api", error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"token":%q}`, tok)
	}))
	t.Cleanup(tokenSrv.Close)
	t.Cleanup(api.Close)
	return r, tokenSrv, api
}

func (r *fakeRealm) revoke(tok string) {
	r.mu.Lock()
	r.revoked[tok] = true
	r.mu.Unlock()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig(tokenURL, apiURL string) config {
	return config{
		TokenURL: tokenURL, ClientID: "orders-service", ClientSecret: "orders-service-demo-secret",
		Auth: "client_secret_basic", Scopes: []string{"orders:read"}, APIURL: apiURL, Method: http.MethodGet,
		Count: 3, RefreshBefore: 30 * time.Second, Timeout: 5 * time.Second,
	}
}

func quietLogger(t *testing.T) *log.Logger {
	return log.New(testWriter{t}, "", 0)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestRunReusesTheTokenAndCallsTheAPI(t *testing.T) {
	for _, auth := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(auth, func(t *testing.T) {
			realm, tokenSrv, api := newFakeRealm(t, 300)
			cfg := testConfig(tokenSrv.URL, api.URL)
			cfg.Auth = auth
			if err := run(context.Background(), cfg, quietLogger(t), time.Now); err != nil {
				t.Fatal(err)
			}
			if got := realm.issued.Load(); got != 1 {
				t.Errorf("%d token requests, want 1 for 3 calls within the token's lifetime", got)
			}
			if got := realm.apiCalls.Load(); got != 3 {
				t.Errorf("%d API calls, want 3", got)
			}
			if want := strings.TrimPrefix(auth, "client_secret_"); realm.auth.Load() != want {
				t.Errorf("client authentication %v, want %s", realm.auth.Load(), want)
			}
		})
	}
}

func TestTokenRenewedBeforeExpiry(t *testing.T) {
	clk := &clock{t: time.Now()}
	var fetches int
	ts := &tokenSource{
		fetch: func(context.Context) (*oauth2.Token, error) {
			fetches++
			return &oauth2.Token{AccessToken: fmt.Sprint("t", fetches), Expiry: clk.Now().Add(300 * time.Second)}, nil
		},
		early: 30 * time.Second, now: clk.Now, log: quietLogger(t), name: "orders-service",
	}
	ctx := context.Background()
	first, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(269 * time.Second) // 31s before expiry: still good
	if tok, _ := ts.Token(ctx); tok != first || fetches != 1 {
		t.Fatalf("renewed too early (fetches %d)", fetches)
	}
	clk.Advance(2 * time.Second) // 29s before expiry: inside the renewal window
	second, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || fetches != 2 {
		t.Fatalf("not renewed 29s before expiry (fetches %d)", fetches)
	}
}

func TestShortTokensRenewHalfway(t *testing.T) {
	clk := &clock{t: time.Now()}
	var fetches int
	ts := &tokenSource{
		fetch: func(context.Context) (*oauth2.Token, error) {
			fetches++
			return &oauth2.Token{AccessToken: fmt.Sprint("t", fetches), Expiry: clk.Now().Add(20 * time.Second)}, nil
		},
		early: 30 * time.Second, now: clk.Now, log: quietLogger(t), name: "c",
	}
	ctx := context.Background()
	_, _ = ts.Token(ctx)
	clk.Advance(9 * time.Second)
	_, _ = ts.Token(ctx)
	if fetches != 1 {
		t.Fatalf("a 20s token was renewed after 9s (fetches %d)", fetches)
	}
	clk.Advance(2 * time.Second)
	_, _ = ts.Token(ctx)
	if fetches != 2 {
		t.Fatalf("a 20s token was not renewed after 11s (fetches %d)", fetches)
	}
}

func TestRefusedTokenIsReplacedOnce(t *testing.T) {
	realm, tokenSrv, api := newFakeRealm(t, 300)
	realm.revoke("tok-1") // e.g. signed with a key the gateway no longer trusts
	cfg := testConfig(tokenSrv.URL, api.URL)
	cfg.Count = 2
	if err := run(context.Background(), cfg, quietLogger(t), time.Now); err != nil {
		t.Fatal(err)
	}
	if got := realm.issued.Load(); got != 2 {
		t.Errorf("%d token requests, want 2 (the refused token replaced once)", got)
	}
	if got := realm.apiCalls.Load(); got != 3 {
		t.Errorf("%d API calls, want 3 (one retry)", got)
	}
}

func TestWrongSecretIsReported(t *testing.T) {
	_, tokenSrv, api := newFakeRealm(t, 300)
	cfg := testConfig(tokenSrv.URL, api.URL)
	cfg.ClientSecret = "wrong"
	cfg.Count = 1
	var out strings.Builder
	if err := run(context.Background(), cfg, log.New(&out, "", 0), time.Now); !errors.Is(err, errAllFailed) {
		t.Fatalf("run: %v, want errAllFailed (the command exits non-zero when every call failed)", err)
	}
	if !strings.Contains(out.String(), "invalid_client") {
		t.Errorf("log %q should name the token endpoint's error", out.String())
	}
}

// TestExitStatus: the command fails when every call failed (refused or
// unreachable), and succeeds when at least one call got a 2xx answer.
func TestExitStatus(t *testing.T) {
	_, tokenSrv, api := newFakeRealm(t, 300)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(refusing.Close)
	cfg := testConfig(tokenSrv.URL, refusing.URL)
	if err := run(context.Background(), cfg, quietLogger(t), time.Now); !errors.Is(err, errAllFailed) {
		t.Errorf("every call 403: run returned %v, want errAllFailed", err)
	}
	cfg = testConfig(tokenSrv.URL, api.URL)
	if err := run(context.Background(), cfg, quietLogger(t), time.Now); err != nil {
		t.Errorf("every call 200: run returned %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, cfg, quietLogger(t), time.Now); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted before any call: %v, want context.Canceled (exit 0)", err)
	}
}

func TestParseFlags(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := parseFlags(nil, env(nil), noFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "orders-service" || cfg.ClientSecret != "orders-service-demo-secret" ||
		cfg.TokenURL != "http://localhost:8080/realms/demo/protocol/openid-connect/token" ||
		cfg.APIURL != "http://localhost:8000/orders" || cfg.Count != 0 || cfg.Interval != 2*time.Second {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"-scope", "orders:read orders:write", "-count", "5"},
		env(map[string]string{"CLIENT_ID": "app", "CLIENT_SECRET": "s", "CLIENT_AUTH": "client_secret_post", "INTERVAL": "1s"}), noFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "app" || cfg.ClientSecret != "s" || cfg.Auth != "client_secret_post" ||
		len(cfg.Scopes) != 2 || cfg.Count != 5 || cfg.Interval != time.Second {
		t.Errorf("env and flags: %+v", cfg)
	}
	if _, err := parseFlags(nil, env(map[string]string{"CLIENT_ID": "app"}), noFile); err == nil {
		t.Error("a non-demo client without a secret must be refused")
	}
	if _, err := parseFlags([]string{"-auth", "private_key_jwt"}, env(nil), noFile); err == nil {
		t.Error("an unsupported -auth must be refused")
	}
	if _, err := parseFlags([]string{"-api-url", "localhost:8000"}, env(nil), noFile); err == nil {
		t.Error("an API URL without a scheme must be refused")
	}
	file := func(string) ([]byte, error) { return []byte("from-file\n"), nil }
	if cfg, err := parseFlags([]string{"-client-secret-file", "x"}, env(nil), file); err != nil || cfg.ClientSecret != "from-file" {
		t.Errorf("secret file: %q %v", cfg.ClientSecret, err)
	}
	if _, err := parseFlags([]string{"-h"}, env(nil), noFile); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
