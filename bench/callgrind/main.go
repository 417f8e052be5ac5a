// Command callgrind runs one operation of keycloak-jwt n times inside
// measure, for bench/callgrind.sh, which runs it under
// valgrind --tool=callgrind --toggle-collect=main.measure so that only that
// function's instructions are counted (setup, key fetches and the warm-up
// call are not):
//
//	callgrind raw|cold|warm|fwdauth [n]
//
//	raw      sha256 + rsa.VerifyPKCS1v15 of the token, key in hand (the floor)
//	cold     policy.Check of the same RS256 token, verified-token cache off
//	warm     policy.Check of the same token, cache hit
//	fwdauth  one forward-auth request through the sidecar's handler
//	         (in-process: httptest request and recorder, warm cache): the
//	         route, the token, the check, the identity headers, the metrics
//	         and the answer
//
// A request through the reverse proxy is not counted: its upstream hop parks
// the goroutine, and callgrind's per-thread toggle then counts whatever the
// thread runs meanwhile (three runs gave 3 k, 206 k and 288 k instructions).
//
// It prints nothing on success. Run it with GOGC=off and GOMAXPROCS=1, as
// the script does, so that no collection or other thread lands in the
// count.
package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

var clients = []testidp.Client{{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read"},
	ClientRoles: map[string][]string{"orders-api": {"reader"}}, Audience: []string{"orders-api"}}}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: callgrind raw|cold|warm|fwdauth [n]")
		os.Exit(2)
	}
	n := 20
	if len(os.Args) > 2 {
		var err error
		if n, err = strconv.Atoi(os.Args[2]); err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "callgrind: n must be a positive integer")
			os.Exit(2)
		}
	}
	if err := run(os.Args[1], n); err != nil {
		fmt.Fprintln(os.Stderr, "callgrind:", err)
		os.Exit(1)
	}
}

func run(mode string, n int) error {
	idp, err := testidp.New(testidp.Options{Clients: clients, TokenTTL: time.Hour})
	if err != nil {
		return err
	}
	defer idp.Close()
	tok, err := idp.Token("orders-service")
	if err != nil {
		return err
	}
	var op func() error
	switch mode {
	case "raw":
		op, err = rawVerify(idp, tok)
	case "cold", "warm":
		op, err = engine(idp, tok, mode == "warm")
	case "fwdauth":
		op, err = forwardAuth(idp, tok)
	default:
		return fmt.Errorf("unknown operation %q", mode)
	}
	if err != nil {
		return err
	}
	if err := op(); err != nil { // keys fetched, cache filled, pools primed
		return err
	}
	return measure(op, n)
}

// measure is the only function callgrind counts.
//
//go:noinline
func measure(op func() error, n int) error {
	for range n {
		if err := op(); err != nil {
			return err
		}
	}
	return nil
}

// rawVerify is the floor of a cold check: hash the signing input and
// verify the signature with the standard library, the key in hand.
func rawVerify(idp *testidp.IdP, tok string) (func() error, error) {
	keys := jwks.NewCache(jwks.Options{})
	src, err := keys.Source(jwks.Spec{Issuer: idp.Issuer()})
	if err != nil {
		return nil, err
	}
	key, err := src.Key(context.Background(), idp.CurrentKid(), "RS256")
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key %s is %T, not RSA", key.ID, key.Public)
	}
	dot := strings.LastIndexByte(tok, '.')
	input := tok[:dot]
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return nil, err
	}
	return func() error {
		d := sha256.Sum256([]byte(input))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
	}, nil
}

// engine compiles the policy of the engine's benchmarks (one required scope,
// one client role) and returns one Check of tok.
func engine(idp *testidp.IdP, tok string, cache bool) (func() error, error) {
	size := 0
	if cache {
		size = 10000
	}
	p, err := policy.Compile(policy.Config{
		Requirements: policy.Requirements{
			Issuers:             []policy.Issuer{{Issuer: idp.Issuer()}},
			Audiences:           []string{"orders-api"},
			ScopesRequired:      []string{"orders:read"},
			ClientRolesRequired: []string{"orders-api:reader"},
		},
		Algorithms:     []string{"RS256"},
		TokenCacheSize: &size,
	}, policy.Deps{Keys: jwks.NewCache(jwks.Options{})})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if cache {
		p.Check(ctx, tok) // verified once: every measured check is a hit
	}
	return func() error {
		if d := p.Check(ctx, tok); !d.Allow || d.CachedResult != cache {
			return fmt.Errorf("check: allow %v cached %v: %s", d.Allow, d.CachedResult, d.Detail)
		}
		return nil
	}, nil
}

// forwardAuth builds a forward-auth sidecar with the load benchmark's route
// (warm cache) and returns one request through its handler.
func forwardAuth(idp *testidp.IdP, tok string) (func() error, error) {
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
policy:
  issuers: [{issuer: %q}]
  audiences: [orders-api]
  algorithms: [RS256]
  token_cache_size: 10000
routes:
  - prefix: /orders
    scopes_required: [orders:read]
log:
  level: error
`, idp.Issuer())
	hdr := http.Header{"Authorization": {"Bearer " + tok}, "X-Forwarded-Uri": {"/orders/42"}, "X-Forwarded-Method": {"GET"}}
	c, err := sidecar.ParseConfig([]byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, err
	}
	// The sidecar's own JSON logger, at its level, writing nowhere.
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.ErrorLevel))
	s, err := sidecar.New(c, sidecar.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	h := s.Handler()
	return func() error {
		req := httptest.NewRequest(http.MethodGet, "http://sidecar/auth", nil)
		req.Header = hdr.Clone()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("X-Client-Id") == "" {
			return fmt.Errorf("forward auth: status %d, X-Client-Id %q: %s", rec.Code, rec.Header().Get("X-Client-Id"), rec.Body)
		}
		return nil
	}, nil
}
