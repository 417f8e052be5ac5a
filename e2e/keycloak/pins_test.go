package keycloak

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestComposePinsTheCIVersion: docker-compose.yml runs the Keycloak version
// that scripts/keycloak.sh imports the realm into on CI. It needs no
// Keycloak.
func TestComposePinsTheCIVersion(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	script := regexp.MustCompile(`(?m)^VERSION="\$\{KEYCLOAK_VERSION:-([0-9.]+)\}"`).FindStringSubmatch(read("scripts/keycloak.sh"))
	compose := regexp.MustCompile(`(?m)^\s*image:\s*quay\.io/keycloak/keycloak:([0-9.]+)\s*$`).FindStringSubmatch(read("docker-compose.yml"))
	if script == nil || compose == nil {
		t.Fatalf("no pinned version found: scripts/keycloak.sh %v, docker-compose.yml %v", script, compose)
	}
	if script[1] != compose[1] {
		t.Errorf("docker-compose.yml runs Keycloak %s, CI (scripts/keycloak.sh) %s: pin the same version", compose[1], script[1])
	}
}
