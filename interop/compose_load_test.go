package interop

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadComposeProject loads a compose file with compose-go, the parser and
// loader docker compose v2 itself uses: schema validation, interpolation
// (with an empty environment: a required `${VAR:?}` fails, a plain unset
// `${VAR}` only warns, hence plainVariables), normalisation and the
// project's consistency checks (depends_on targets, networks, volumes).
func loadComposeProject(file string) (*types.Project, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("keycloak-jwt", true) })
}

// plainVariable is a `$NAME` or `${NAME}` without a default or a required
// marker (and not escaped as `$$`): compose would silently substitute "".
var plainVariable = regexp.MustCompile(`(^|[^$])\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_])`)

// TestComposeLoads loads docker-compose.yml as `docker compose` would, and
// checks that the loader refuses what it should, so the check can fail.
func TestComposeLoads(t *testing.T) {
	raw, err := os.ReadFile(repoPath(composeFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(raw), "\n") {
		if m := plainVariable.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			t.Errorf("%s:%d: %q has no default (${NAME:-default}) nor a required marker (${NAME:?message})", composeFile, i+1, m)
		}
	}
	for _, s := range []string{"a: ${X}", "a: $X", "a: x${Y}"} {
		if !plainVariable.MatchString(s) {
			t.Errorf("plainVariable misses %q", s)
		}
	}
	for _, s := range []string{"a: ${X:-d}", "a: ${X:?m}", "a: $${X}", "a: $$X", "a: ${X-d}"} {
		if plainVariable.MatchString(s) {
			t.Errorf("plainVariable flags %q", s)
		}
	}
	p, err := loadComposeProject(repoPath(composeFile))
	if err != nil {
		t.Fatalf("compose-go refuses %s: %v", composeFile, err)
	}
	for _, name := range []string{"echo", "keycloak", "kong", "sidecar"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %q missing after loading", name)
		}
	}
	// Kong waits for a healthy Keycloak: the dependency and its health check
	// survive normalisation.
	if dep, ok := p.Services["kong"].DependsOn["keycloak"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("kong depends_on keycloak = %+v, want condition %s", dep, types.ServiceConditionHealthy)
	}
	if p.Services["keycloak"].HealthCheck == nil {
		t.Error("keycloak has no health check")
	}

	for name, doc := range map[string]string{
		"undefined dependency": "services:\n  a:\n    image: x:1\n    depends_on: [b]\n",
		"misspelt key":         "services:\n  a:\n    image: x:1\n    healthcheck:\n      intervall: 5s\n",
		"unset variable":       "services:\n  a:\n    image: \"x:${TAG:?TAG is required}\"\n",
	} {
		file := filepath.Join(t.TempDir(), "docker-compose.yml")
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadComposeProject(file); err == nil {
			t.Errorf("%s: loaded without an error", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", name)
		}
	}
}
