package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSelftest(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--selftest"}, &stdout, &stderr); code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "PASS") || strings.Contains(stdout.String(), "✗") {
		t.Errorf("selftest output:\n%s", stdout.String())
	}
}

// TestSelftestWithConfig: --config runs an edited copy of the example.
func TestSelftestWithConfig(t *testing.T) {
	example, err := os.ReadFile("../../examples/sidecar/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(edited, bytes.Replace(example, []byte("realm: orders-api"), []byte("realm: edited-realm"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--selftest", "--config", edited}, &stdout, &stderr); code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var bad bytes.Buffer
	if code := run(context.Background(), []string{"--selftest", "--config", "/nonexistent.yaml"}, &bad, &bad); code != exitFailed {
		t.Errorf("missing --config file: code %d", code)
	}
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"extra"}, &out, &out); code != exitUsage || !strings.Contains(out.String(), "usage") {
		t.Errorf("code %d: %s", code, out.String())
	}
}

// TestSidecarBinaryCarriesNoTestSupport: the production sidecar links
// neither the demo nor the Keycloak-shaped test issuer.
func TestSidecarBinaryCarriesNoTestSupport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt-sidecar").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/internal/testidp") || strings.HasSuffix(pkg, "/sidecar/demo") || strings.HasSuffix(pkg, "/internal/kongsim") {
			t.Errorf("cmd/keycloak-jwt-sidecar depends on %s (test support in the production binary)", pkg)
		}
	}
}
