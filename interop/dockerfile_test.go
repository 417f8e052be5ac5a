package interop

import (
	"bufio"
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dfInstr is one Dockerfile instruction, continuation lines joined.
type dfInstr struct {
	Cmd  string // upper case
	Args string
	Line int
}

type dfStage struct {
	Name, Base string
	Instrs     []dfInstr
}

// parseDockerfile splits the Dockerfile into build stages. It knows the
// syntax the project's Dockerfile uses: comments, "\" continuations,
// FROM [--platform=...] image [AS name].
func parseDockerfile(t *testing.T) []dfStage {
	t.Helper()
	var stages []dfStage
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, dockerfileFile)))
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		in := dfInstr{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := dfStage{}
			if len(f) > 0 {
				st.Base = f[0]
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.Line, in.Cmd)
			}
			continue
		}
		stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func dockerfileStages(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, s := range parseDockerfile(t) {
		names = append(names, s.Name)
	}
	return names
}

// words splits instruction arguments on blanks outside double quotes and
// removes the quotes.
func words(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case (c == ' ' || c == '\t') && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// env collects the stage's ENV settings (KEY=VALUE form).
func (s dfStage) env() map[string]string {
	out := map[string]string{}
	for _, in := range s.Instrs {
		if in.Cmd != "ENV" {
			continue
		}
		for _, w := range words(in.Args) {
			if k, v, ok := strings.Cut(w, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// copied lists the destination paths of the files the stage copies from
// other stages.
func (s dfStage) copied() []string {
	var out []string
	for _, in := range s.Instrs {
		if in.Cmd != "COPY" {
			continue
		}
		f := slices.DeleteFunc(words(in.Args), func(w string) bool { return strings.HasPrefix(w, "--") })
		if len(f) < 2 {
			continue
		}
		dst := f[len(f)-1]
		for _, src := range f[:len(f)-1] {
			if strings.HasSuffix(dst, "/") {
				out = append(out, dst+path.Base(src))
			} else {
				out = append(out, dst)
			}
		}
	}
	return out
}

func (s dfStage) user() string {
	u := "root"
	for _, in := range s.Instrs {
		if in.Cmd == "USER" {
			u = in.Args
		}
	}
	return u
}

func (s dfStage) run() string {
	var b strings.Builder
	for _, in := range s.Instrs {
		if in.Cmd == "RUN" {
			b.WriteString(in.Args + "\n")
		}
	}
	return b.String()
}

// TestDockerfile checks the Dockerfile's stages against what Kong's plugin
// server, go-pdk and the compose file need.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	byName := map[string]dfStage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	for _, want := range []string{"build", "sidecar", "kong"} {
		if _, ok := byName[want]; !ok {
			t.Fatalf("stage %q is missing (stages %v)", want, dockerfileStages(t))
		}
	}
	if last := stages[len(stages)-1].Name; last != "kong" {
		t.Errorf("the last (default) stage is %q, want kong", last)
	}
	for _, s := range stages {
		if s.Base == "scratch" || byName[s.Base].Name != "" {
			continue
		}
		checkPinned(t, "FROM "+s.Base, s.Base)
	}

	t.Run("build", func(t *testing.T) {
		b := byName["build"]
		goMod := string(readRepoFile(t, "go.mod"))
		goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
		if goVersion == nil || !strings.HasPrefix(b.Base, "golang:"+goVersion[1]+".") {
			t.Errorf("build image %q does not match go.mod's go %v", b.Base, goVersion)
		}
		run := b.run()
		if !strings.Contains(run, "CGO_ENABLED=0") {
			t.Error("binaries must be static (CGO_ENABLED=0): the sidecar stage is scratch")
		}
		for _, pkg := range []string{"./cmd/keycloak-jwt", "./cmd/keycloak-jwt-sidecar", "./cmd/keycloak-jwt-lint"} {
			if !regexp.MustCompile(regexp.QuoteMeta(pkg) + `(\s|$)`).MatchString(run) {
				t.Errorf("the build stage does not build %s", pkg)
				continue
			}
			checkMainPackage(t, pkg)
		}
	})

	t.Run("kong", func(t *testing.T) {
		k := byName["kong"]
		env := k.env()
		copied := k.copied()
		if p := strings.Split(env["KONG_PLUGINS"], ","); !slices.Contains(p, "bundled") || !slices.Contains(p, "keycloak-jwt") {
			t.Errorf("KONG_PLUGINS %q must list bundled and keycloak-jwt", env["KONG_PLUGINS"])
		}
		names := strings.Split(env["KONG_PLUGINSERVER_NAMES"], ",")
		if !slices.Contains(names, "keycloak-jwt") {
			t.Errorf("KONG_PLUGINSERVER_NAMES %q must list keycloak-jwt", env["KONG_PLUGINSERVER_NAMES"])
		}
		for _, name := range names {
			prefix := "KONG_PLUGINSERVER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
			start := strings.Fields(env[prefix+"START_CMD"])
			if len(start) == 0 {
				t.Errorf("%sSTART_CMD is not set", prefix)
				continue
			}
			bin := start[0]
			if !slices.Contains(copied, bin) {
				t.Errorf("%sSTART_CMD runs %s, which the stage does not install (it copies %v)", prefix, bin, copied)
			}
			// go-pdk names the plugin and its socket after the executable.
			if path.Base(bin) != name {
				t.Errorf("%sSTART_CMD runs %s: the executable must be named %q", prefix, bin, name)
			}
			if q := env[prefix+"QUERY_CMD"]; q != bin+" -dump" {
				t.Errorf("%sQUERY_CMD %q, want %q", prefix, q, bin+" -dump")
			}
			kongPrefix := "/usr/local/kong" // go-pdk's default -kong-prefix
			if i := slices.Index(start, "-kong-prefix"); i >= 0 && i+1 < len(start) {
				kongPrefix = start[i+1]
			}
			want := kongPrefix + "/" + name + ".socket"
			if got := env[prefix+"SOCKET"]; got != "" && got != want {
				t.Errorf("%sSOCKET %q, but the plugin server listens on %q", prefix, got, want)
			}
			if got := env[prefix+"SOCKET"]; got == "" && want != "/usr/local/kong/"+name+".socket" {
				t.Errorf("%sSOCKET unset: Kong looks for /usr/local/kong/%s.socket, the server listens on %q", prefix, name, want)
			}
		}
		if !slices.Contains(copied, "/usr/local/bin/keycloak-jwt-lint") {
			t.Error("the Kong image must ship keycloak-jwt-lint")
		}
		if u := k.user(); u != "kong" {
			t.Errorf("the Kong stage runs as %q, want kong", u)
		}
	})

	t.Run("sidecar", func(t *testing.T) {
		s := byName["sidecar"]
		if u := s.user(); u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
			t.Errorf("the sidecar runs as %q, want a non-root user", u)
		}
		if !slices.Contains(s.copied(), "/etc/ssl/certs/ca-certificates.crt") {
			t.Error("the sidecar image needs a CA bundle for https key fetches")
		}
		hasEntry := slices.ContainsFunc(s.Instrs, func(in dfInstr) bool {
			return in.Cmd == "ENTRYPOINT" && strings.Contains(in.Args, "keycloak-jwt-sidecar")
		})
		if !hasEntry {
			t.Error("the sidecar stage needs an ENTRYPOINT running keycloak-jwt-sidecar")
		}
	})

	t.Run("dockerignore", func(t *testing.T) {
		var patterns []string
		for _, l := range strings.Split(string(readRepoFile(t, dockerignore)), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				patterns = append(patterns, strings.TrimPrefix(l, "/"))
			}
		}
		ignored := func(p string) bool {
			return slices.ContainsFunc(patterns, func(pat string) bool {
				ok, _ := filepath.Match(strings.TrimPrefix(pat, "**/"), path.Base(p))
				full, _ := filepath.Match(pat, p)
				return full || (strings.HasPrefix(pat, "**/") && ok)
			})
		}
		for _, need := range []string{"go.mod", "go.sum", "cmd", "policy", "jwks", "upstream", "internal"} {
			if ignored(need) {
				t.Errorf(".dockerignore excludes %s, which the build needs", need)
			}
		}
		for _, keepOut := range []string{".git", "interop", "interop/oidc-server/node_modules"} {
			if !ignored(keepOut) {
				t.Errorf(".dockerignore should exclude %s", keepOut)
			}
		}
	})
}

// checkMainPackage fails when the Dockerfile builds a directory that holds
// no main package. A command not written yet is only logged.
func checkMainPackage(t *testing.T, pkg string) {
	t.Helper()
	dir := repoPath(pkg)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		t.Logf("%s does not exist yet; the image build needs it", pkg)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name != "main" {
			t.Errorf("%s is package %s, not main", pkg, f.Name.Name)
		}
		return
	}
	t.Errorf("%s has no Go files", pkg)
}
