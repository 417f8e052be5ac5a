package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// composeProject is the part of the Compose Specification the checks read.
// Fields with a short and a long syntax stay raw and are read by helpers.
type composeProject struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       json.RawMessage   `json:"build"`
	Command     json.RawMessage   `json:"command"`
	Environment json.RawMessage   `json:"environment"`
	Volumes     []json.RawMessage `json:"volumes"`
	Ports       []json.RawMessage `json:"ports"`
	DependsOn   json.RawMessage   `json:"depends_on"`
	Healthcheck *struct {
		Test        json.RawMessage `json:"test"`
		Interval    string          `json:"interval"`
		Timeout     string          `json:"timeout"`
		StartPeriod string          `json:"start_period"`
		Retries     json.RawMessage `json:"retries"`
		Disable     bool            `json:"disable"`
	} `json:"healthcheck"`
}

func loadCompose(t *testing.T) *composeProject {
	t.Helper()
	var p composeProject
	if err := json.Unmarshal(yamlToJSON(t, composeFile), &p); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return &p
}

// env returns the service's environment (map or KEY=VALUE list syntax).
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if len(s.Environment) == 0 {
		return out
	}
	var m map[string]any
	if json.Unmarshal(s.Environment, &m) == nil {
		for k, v := range m {
			if str, ok := v.(string); ok {
				out[k] = str
			} else {
				t.Errorf("environment %s: write the value as a string (got %T)", k, v)
			}
		}
		return out
	}
	var list []string
	if err := json.Unmarshal(s.Environment, &list); err != nil {
		t.Fatalf("environment: %v", err)
	}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// command returns the service's command as a list of words.
func (s composeService) command(t *testing.T) []string {
	t.Helper()
	if len(s.Command) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(s.Command, &list) == nil {
		return list
	}
	var str string
	if err := json.Unmarshal(s.Command, &str); err != nil {
		t.Fatalf("command: %v", err)
	}
	return strings.Fields(str)
}

// dependsOn maps each dependency to its condition (short syntax: service_started).
func (s composeService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if len(s.DependsOn) == 0 {
		return out
	}
	var list []string
	if json.Unmarshal(s.DependsOn, &list) == nil {
		for _, d := range list {
			out[d] = "service_started"
		}
		return out
	}
	var m map[string]struct {
		Condition string `json:"condition"`
	}
	if err := json.Unmarshal(s.DependsOn, &m); err != nil {
		t.Fatalf("depends_on: %v", err)
	}
	for d, v := range m {
		c := v.Condition
		if c == "" {
			c = "service_started"
		}
		out[d] = c
	}
	return out
}

type composeMount struct{ Source, Target string }

// binds returns the bind mounts (short "src:dst[:mode]" or long syntax).
func (s composeService) binds(t *testing.T) []composeMount {
	t.Helper()
	var out []composeMount
	for _, raw := range s.Volumes {
		var short string
		if json.Unmarshal(raw, &short) == nil {
			parts := strings.Split(short, ":")
			if len(parts) >= 2 && (strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/")) {
				out = append(out, composeMount{parts[0], parts[1]})
			}
			continue
		}
		var long struct{ Type, Source, Target string }
		if err := json.Unmarshal(raw, &long); err != nil {
			t.Fatalf("volumes: %v", err)
		}
		if long.Type == "bind" {
			out = append(out, composeMount{long.Source, long.Target})
		}
	}
	return out
}

// build returns the build context and target ("" when the service is not built).
func (s composeService) build(t *testing.T) (context, target string) {
	t.Helper()
	if len(s.Build) == 0 {
		return "", ""
	}
	if json.Unmarshal(s.Build, &context) == nil {
		return context, ""
	}
	var b struct {
		Context    string `json:"context"`
		Target     string `json:"target"`
		Dockerfile string `json:"dockerfile"`
	}
	if err := json.Unmarshal(s.Build, &b); err != nil {
		t.Fatalf("build: %v", err)
	}
	if b.Dockerfile != "" && b.Dockerfile != "Dockerfile" {
		t.Errorf("build.dockerfile %q: the checks here cover ./Dockerfile only", b.Dockerfile)
	}
	return b.Context, b.Target
}

// pinnedImage matches an image reference with an explicit tag (or digest).
var pinnedImage = regexp.MustCompile(`^[a-z0-9.\-/:]+:[A-Za-z0-9._\-]+(@sha256:[a-f0-9]{64})?$`)

func checkPinned(t *testing.T, where, image string) {
	t.Helper()
	_, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	if !pinnedImage.MatchString(image) || tag == "" || strings.HasPrefix(tag, "latest") {
		t.Errorf("%s: image %q is not pinned to a version tag", where, image)
	}
}

// TestComposeFile checks docker-compose.yml beyond its schema: what the
// services need from each other and from the repository.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"echo", "keycloak", "kong", "sidecar"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %q is missing", name)
		}
	}
	stages := dockerfileStages(t)
	for name, s := range p.Services {
		ctx, target := s.build(t)
		switch {
		case ctx != "":
			if filepath.Clean(ctx) != "." {
				t.Errorf("%s: build context %q, want the repository root", name, ctx)
			}
			if !slices.Contains(stages, target) {
				t.Errorf("%s: build target %q is not a stage of the Dockerfile %v", name, target, stages)
			}
		case s.Image == "":
			t.Errorf("%s: neither image nor build", name)
		default:
			checkPinned(t, name, s.Image)
		}
		for dep, cond := range s.dependsOn(t) {
			d, ok := p.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on unknown service %q", name, dep)
			case cond == "service_healthy" && (d.Healthcheck == nil || d.Healthcheck.Disable):
				t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			case cond != "service_healthy" && cond != "service_started" && cond != "service_completed_successfully":
				t.Errorf("%s: depends_on %s: unknown condition %q", name, dep, cond)
			}
		}
		if h := s.Healthcheck; h != nil && !h.Disable {
			for field, v := range map[string]string{"interval": h.Interval, "timeout": h.Timeout, "start_period": h.StartPeriod} {
				if _, err := time.ParseDuration(v); v != "" && err != nil {
					t.Errorf("%s: healthcheck.%s %q is not a duration", name, field, v)
				}
			}
			var retries int
			if len(h.Retries) > 0 && json.Unmarshal(h.Retries, &retries) != nil {
				t.Errorf("%s: healthcheck.retries %s is not a number", name, h.Retries)
			}
			var test []string
			if json.Unmarshal(h.Test, &test) != nil || len(test) < 2 ||
				(test[0] != "CMD" && test[0] != "CMD-SHELL") {
				t.Errorf("%s: healthcheck.test %s: want [CMD, ...] or [CMD-SHELL, cmd]", name, h.Test)
			}
		}
		for _, m := range s.binds(t) {
			src := repoPath(m.Source)
			if _, err := os.Stat(src); err != nil {
				if m.Source == "./examples/sidecar" {
					// Written by the sidecar's author; checked once it exists.
					t.Logf("%s: bind source %s does not exist yet", name, m.Source)
					continue
				}
				t.Errorf("%s: bind source %s: %v", name, m.Source, err)
			}
		}
		for _, raw := range s.Ports {
			var port string
			if err := json.Unmarshal(raw, &port); err != nil {
				t.Errorf("%s: ports: write %s as a quoted string", name, raw)
				continue
			}
			if !strings.HasPrefix(port, "127.0.0.1:") {
				t.Errorf("%s: port %q is published on every interface; bind it to 127.0.0.1", name, port)
			}
		}
	}

	t.Run("keycloak", func(t *testing.T) {
		kc := p.Services["keycloak"]
		if !strings.HasPrefix(kc.Image, "quay.io/keycloak/keycloak:26.") {
			t.Errorf("image %q, want quay.io/keycloak/keycloak:26.x", kc.Image)
		}
		cmd := kc.command(t)
		if !slices.Contains(cmd, "start-dev") || !slices.Contains(cmd, "--import-realm") {
			t.Errorf("command %v, want start-dev --import-realm", cmd)
		}
		if !slices.Contains(kc.binds(t), composeMount{"./examples/keycloak", "/opt/keycloak/data/import"}) {
			t.Errorf("examples/keycloak must be mounted at /opt/keycloak/data/import (what --import-realm reads)")
		}
		if u, err := url.Parse(kc.env(t)["KC_HOSTNAME"]); err != nil || u.Scheme == "" || u.Host == "" {
			t.Errorf("KC_HOSTNAME %q: want a full URL, so that the issuer does not depend on how Keycloak is reached",
				kc.env(t)["KC_HOSTNAME"])
		}
	})

	t.Run("kong", func(t *testing.T) {
		kong := p.Services["kong"]
		env := kong.env(t)
		if env["KONG_DATABASE"] != "off" {
			t.Errorf("KONG_DATABASE %q, want off (DB-less)", env["KONG_DATABASE"])
		}
		decl := env["KONG_DECLARATIVE_CONFIG"]
		if !slices.Contains(kong.binds(t), composeMount{"./" + kongFile, decl}) {
			t.Errorf("KONG_DECLARATIVE_CONFIG %q is not where ./%s is mounted", decl, kongFile)
		}
		if dep := kong.dependsOn(t); dep["keycloak"] != "service_healthy" {
			t.Errorf("kong must wait for keycloak to be healthy (got %q)", dep["keycloak"])
		}
	})

	t.Run("issuer", func(t *testing.T) {
		iss := composeIssuer(t, p)
		if iss != "http://localhost:8080/realms/demo" {
			t.Errorf("issuer %q: clients on the host reach Keycloak at http://localhost:8080", iss)
		}
	})

	t.Run("sidecar", func(t *testing.T) {
		sc := p.Services["sidecar"]
		env := sc.env(t)
		if got, want := env["KJ_ISSUER_URL"], composeIssuer(t, p); got != want {
			t.Errorf("KJ_ISSUER_URL %q, but Keycloak issues %q", got, want)
		}
		if u, err := url.Parse(env["KJ_JWKS_URI"]); err != nil || u.Hostname() != "keycloak" {
			t.Errorf("KJ_JWKS_URI %q: the sidecar must fetch keys from the keycloak service", env["KJ_JWKS_URI"])
		}
		if u, err := url.Parse(env["KJ_UPSTREAM_URL"]); err != nil || p.Services[u.Hostname()].Image == "" {
			t.Errorf("KJ_UPSTREAM_URL %q is not a compose service", env["KJ_UPSTREAM_URL"])
		}
		cmd := sc.command(t)
		if i := slices.Index(cmd, "--config"); i < 0 || i+1 >= len(cmd) ||
			!slices.ContainsFunc(sc.binds(t), func(m composeMount) bool { return strings.HasPrefix(cmd[i+1], m.Target+"/") }) {
			t.Errorf("command %v: --config must name a file of a mounted directory", cmd)
		}
	})
}

// composeIssuer is the issuer Keycloak writes into tokens: KC_HOSTNAME plus
// the realm path.
func composeIssuer(t *testing.T, p *composeProject) string {
	t.Helper()
	base := strings.TrimSuffix(p.Services["keycloak"].env(t)["KC_HOSTNAME"], "/")
	return base + "/realms/" + loadRealm(t).Realm
}

// TestComposeSchema validates docker-compose.yml against the Compose
// Specification JSON schema with dclint (pinned in compose-lint/), which also
// enforces explicit image tags and a few conventions; warnings fail too.
func TestComposeSchema(t *testing.T) {
	dir := filepath.Join(Dir(), "compose-lint")
	NPMInstall(t, dir)

	t.Run("docker-compose.yml", func(t *testing.T) {
		if msgs := dclint(t, dir, repoPath(composeFile)); len(msgs) > 0 {
			t.Errorf("dclint:\n  %s", strings.Join(msgs, "\n  "))
		}
	})
	t.Run("the validator rejects an invalid file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "docker-compose.yml")
		doc := "services:\n  echo:\n    image: ealen/echo-server:0.9.2\n    healthcheck:\n      intervall: 5s\n"
		if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		msgs := dclint(t, dir, bad)
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "invalid-schema") }) {
			t.Errorf("a misspelt healthcheck key passed: %v", msgs)
		}
	})
}

// dclint lints one compose file and returns its messages (none when clean).
func dclint(t *testing.T, dir, file string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("node_modules", "dclint", "bin", "dclint.cjs"),
		"--config", "dclintrc.json", "--formatter", "json", "--max-warnings", "0", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var report []struct {
		FilePath string `json:"filePath"`
		Messages []struct {
			Rule    string `json:"rule"`
			Type    string `json:"type"`
			Message string `json:"message"`
			Line    int    `json:"line"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("dclint did not report (%v, exit %v):\n%s\n%s", err, runErr, stdout.String(), stderr.String())
	}
	var msgs []string
	for _, f := range report {
		for _, m := range f.Messages {
			msgs = append(msgs, strings.Join([]string{
				filepath.Base(f.FilePath) + ":" + strconv.Itoa(m.Line), m.Type, m.Rule, m.Message}, " "))
		}
	}
	if runErr != nil && len(msgs) == 0 {
		t.Fatalf("dclint failed without messages: %v\n%s", runErr, stderr.String())
	}
	return msgs
}
