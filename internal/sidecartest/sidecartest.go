// Package sidecartest runs a sidecar in-process for tests outside the
// sidecar package (e2e/nginx, deploy/monitoring): configured from YAML,
// listening on the addresses the YAML names, served until the test ends.
package sidecartest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

// Start parses yaml (its ${...} from env, nothing else), serves it until the
// test ends (a shutdown error fails the test) and waits until every realm's
// keys are loaded.
func Start(t testing.TB, yaml string, env map[string]string) *sidecar.Server {
	t.Helper()
	cfg, err := sidecar.ParseConfig([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sidecar.New(cfg, sidecar.Options{Logger: zap.NewNop(), WarmRetry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("sidecar: keys not loaded within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv
}
