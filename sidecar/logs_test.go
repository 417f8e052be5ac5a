package sidecar

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoToken (hole 12): at debug level, over the allow path,
// every kind of denial and a configuration error, the sidecar's log holds no
// token, no token payload or signature, no upstream JWT and no private key.
func TestLogsHoldNoToken(t *testing.T) {
	idp := sharedIdP(t)
	var buf syncBuffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	h := start(t, harnessOpt{yaml: hostileYAML, env: map[string]string{"JWT": "true", "JWT_KEY": testkeys.WriteEC(t)},
		opts: Options{Logger: logger}})
	good := token(t, idp, "orders-service")
	reports := token(t, idp, "reports-job")
	expired := token(t, idp, "orders-service", testidp.WithTTL(-time.Hour))
	tampered := good[:len(good)-4] + "AAAA"
	secrets := []string{good, reports, expired, tampered}
	for _, c := range []struct {
		method, path string
		hdr          http.Header
	}{
		{"GET", "/orders", http.Header{"Authorization": {"Bearer " + good}}},
		{"GET", "/orders?access_token=" + reports, nil},
		{"POST", "/orders", http.Header{"Authorization": {"Bearer " + reports}}},
		{"GET", "/orders", http.Header{"Authorization": {"Bearer " + expired}}},
		{"GET", "/orders", http.Header{"Authorization": {"Bearer " + tampered}}},
		{"GET", "/orders", http.Header{"Authorization": {"Bearer " + good, "Bearer " + reports}}},
		{"GET", "/orders", http.Header{"Authorization": {"Bearer\t" + good}}},
		{"GET", "/orders", http.Header{"Cookie": {"access.token=" + reports + "; access_token=" + good}}},
		{"GET", "/orders?access.token=" + reports, http.Header{"Authorization": {"Bearer " + good}}},
		{"GET", "/nowhere/../orders", http.Header{"Authorization": {"Bearer " + good}}},
	} {
		r := do(t, c.method, h.url+c.path, "", c.hdr, nil)
		if r.status == 200 {
			secrets = append(secrets, r.echo(t).Headers.Get("X-Upstream-Jwt"))
		}
	}
	if len(secrets) != 6 || secrets[4] == "" {
		t.Fatalf("expected two allowed requests with upstream JWTs, got %d secrets", len(secrets))
	}
	// A configuration error with a private key that is not a key.
	cfg, err := ParseConfig([]byte(baseYAML), mapEnv(map[string]string{"ISSUER": idp.Issuer(), "UPSTREAM": "http://127.0.0.1:1",
		"JWT": "true", "JWT_KEY": "/nonexistent/SECRETKEYFILE"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.UpstreamJWT.PrivateKeyFile, cfg.UpstreamJWT.PrivateKeyEnv = "", "KJ_TEST_KEY"
	t.Setenv("KJ_TEST_KEY", "-----BEGIN PRIVATE KEY-----\nU0VDUkVUS0VZTUFURVJJQUw=\n-----END PRIVATE KEY-----\n")
	if err := Check(cfg); err == nil {
		t.Fatal("a bogus key was accepted")
	} else {
		logger.Error("invalid configuration", zap.Error(err))
		secrets = append(secrets, "U0VDUkVUS0VZTUFURVJJQUw")
	}
	out := buf.String()
	if !strings.Contains(out, `"reason":"missing_scope"`) || !strings.Contains(out, `"reason":"ambiguous_credentials"`) {
		t.Fatalf("the log lacks the decisions it should hold:\n%s", out)
	}
	for _, s := range secrets {
		parts := strings.Split(s, ".")
		for _, needle := range []string{s, parts[len(parts)-1], parts[min(1, len(parts)-1)]} {
			if strings.Contains(out, needle) {
				t.Fatalf("the log holds a secret part %q…:\n%s", needle[:min(16, len(needle))], out)
			}
		}
	}
}
