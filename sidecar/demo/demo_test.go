package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
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
	for _, want := range []string{e.URL + "/orders", e.TokenURL(), "-u reports-job:reports-job-demo-secret", "client_secret=orders-service-demo-secret", "export KEYCLOAK_URL=", "grant_type=client_credentials"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("instructions lack %q", want)
		}
	}
}

// TestExampleScriptsAgainstTheDemo: the documented scripts work against the
// demo unchanged, with the environment the README gives (the demo realm is
// the realm export: same clients and secrets).
func TestExampleScriptsAgainstTheDemo(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	e, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cases := []struct {
		env  []string
		args []string
		code int
	}{
		{nil, []string{"GET", "/orders"}, 0},
		{[]string{"CLIENT_AUTH=client_secret_post"}, []string{"POST", "/orders"}, 0},
		{[]string{"CLIENT_ID=reports-job"}, []string{"POST", "/orders"}, 1},
		{[]string{"CLIENT_ID=reports-job", "SCOPE=orders:export"}, []string{"GET", "/orders"}, 0},
		{[]string{"CLIENT_ID=no-audience-client"}, []string{"GET", "/orders"}, 1},
	}
	for _, tc := range cases {
		cmd := exec.Command("bash", append([]string{"../../examples/call-api.sh"}, tc.args...)...)
		cmd.Env = append(os.Environ(), "KEYCLOAK_URL="+e.IdP.URL(), "API_URL="+e.URL, "TOKEN=", "CLIENT_ID=", "CLIENT_SECRET=", "SCOPE=", "CLIENT_AUTH=")
		cmd.Env = append(cmd.Env, tc.env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("call-api.sh %v %v: exit %d, want %d\n%s", tc.env, tc.args, code, tc.code, out)
		}
	}
}
