package keycloak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTerraformExampleParses checks examples/terraform with OpenTofu's own
// parser (tofu fmt -check: syntax and canonical layout). It is not applied:
// the Keycloak provider is not served by the Go module proxy and the
// provider registry is out of reach here (docs/keycloak.md). It needs no
// Keycloak, only the tofu that scripts/keycloak.sh builds.
func TestTerraformExampleParses(t *testing.T) {
	tofu := os.Getenv("KEYCLOAK_E2E_TOFU")
	if tofu == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYCLOAK_E2E_TOFU is not set on CI: scripts/keycloak.sh start builds OpenTofu")
		}
		t.Skip("KEYCLOAK_E2E_TOFU is not set (scripts/keycloak.sh start builds OpenTofu; eval its env)")
	}
	cfg := filepath.Join(t.TempDir(), "tofurc")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TF_CLI_CONFIG_FILE=" + cfg, "TF_IN_AUTOMATION=1"}
	code, out, errOut := runExample(t, env, tofu, "fmt", "-check", "-diff", "-recursive", "examples/terraform")
	if code != 0 {
		t.Fatalf("tofu fmt -check examples/terraform: exit %d\n%s%s", code, out, errOut)
	}
	// The parse really happened: a broken file is refused.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "main.tf"), []byte("resource \"keycloak_openid_client\" \"x\" {\n  realm_id = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(bad)
	if code, _, errOut := runExample(t, env, tofu, "fmt", "-check", abs); code == 0 || !strings.Contains(errOut, "rror") {
		t.Errorf("tofu fmt accepted a broken file: exit %d, %s", code, errOut)
	}
}
