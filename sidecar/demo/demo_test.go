package demo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSelftest runs the demo's whole flow in-process on ephemeral ports.
func TestSelftest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := Selftest(ctx, Options{}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if strings.Count(out.String(), "✓") < 10 || strings.Contains(out.String(), "✗") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestConfigIsTheExample keeps the embedded configuration identical to the
// committed example file.
func TestConfigIsTheExample(t *testing.T) {
	example, err := os.ReadFile("../../examples/sidecar/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, ConfigYAML) {
		t.Fatal("sidecar/demo/sidecar.yaml differs from examples/sidecar/sidecar.yaml: copy the example over it")
	}
}

// TestInstructions: the printed commands name the running addresses and
// both client authentication methods.
func TestInstructions(t *testing.T) {
	e, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out bytes.Buffer
	e.PrintInstructions(&out)
	for _, want := range []string{e.URL + "/orders", e.TokenURL(), "-u reports-job:reports-secret", "client_secret=orders-secret", "grant_type=client_credentials"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("instructions lack %q", want)
		}
	}
}
