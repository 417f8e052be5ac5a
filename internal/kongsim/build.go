package kongsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// build cache: one directory per test-binary run, one binary per (package, flags).
var builds struct {
	mu      sync.Mutex
	dir     string
	entries map[string]*buildEntry
}

type buildEntry struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the main package pkg (for example "./cmd/keycloak-jwt") into a
// temporary directory and returns the path of the binary. The binary is named
// after the last element of the package path, because go-pdk derives the plugin
// name (and the socket name) from the executable's base name.
//
// Relative package paths are resolved against the module root first and then
// against the current directory (the package directory while testing), so both
// "./internal/kongsim/testdata/sampleplugin" and "./testdata/sampleplugin" work
// from this package's tests. Directories named testdata are ignored by
// "go build ./...", but can be built by explicit path like this.
//
// Results are cached for the lifetime of the test binary; concurrent callers
// share a single build. Call CleanupBuilds (typically from TestMain) to remove
// the binaries.
//
// If the build fails only because go.sum/go.mod lack entries (for example
// go-pdk's server package needs github.com/ugorji/go/codec), Build retries with
// a throw-away copy of go.mod/go.sum (-modfile, -mod=mod) so that the real
// files are never touched, and logs a note saying so.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	return BuildWith(t, pkg)
}

// BuildWith is Build with extra "go build" flags (for example "-race" or
// "-tags=foo"). Each distinct (pkg, flags) combination is built once.
func BuildWith(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	key := pkg + "\x00" + strings.Join(flags, "\x00")

	builds.mu.Lock()
	if builds.entries == nil {
		builds.entries = map[string]*buildEntry{}
	}
	e := builds.entries[key]
	if e == nil {
		e = &buildEntry{}
		builds.entries[key] = e
	}
	builds.mu.Unlock()

	e.once.Do(func() {
		var note string
		e.path, note, e.err = build(pkg, flags)
		if note != "" {
			t.Log(note)
		}
	})
	if e.err != nil {
		t.Fatalf("kongsim.Build(%q): %v", pkg, e.err)
	}
	return e.path
}

// CleanupBuilds removes every binary produced by Build/BuildWith. Call it at the
// end of TestMain; later Build calls will rebuild.
func CleanupBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	builds.dir = ""
	builds.entries = nil
}

func buildDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "kongsim-bin-")
		if err != nil {
			return "", err
		}
		builds.dir = d
	}
	return builds.dir, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// moduleRoot returns the directory holding the main module's go.mod, as seen
// from the current directory.
func moduleRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func resolvePackage(root, pkg string) string {
	if !strings.HasPrefix(pkg, "./") && !strings.HasPrefix(pkg, "../") && !filepath.IsAbs(pkg) && pkg != "." {
		return pkg // import path
	}
	if filepath.IsAbs(pkg) {
		return pkg
	}
	if st, err := os.Stat(filepath.Join(root, pkg)); err == nil && st.IsDir() {
		return filepath.Join(root, pkg)
	}
	if abs, err := filepath.Abs(pkg); err == nil {
		if st, err := os.Stat(abs); err == nil && st.IsDir() {
			return abs
		}
	}
	return filepath.Join(root, pkg)
}

func build(pkg string, flags []string) (binPath, note string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err := buildDir()
	if err != nil {
		return "", "", err
	}
	target := resolvePackage(root, pkg)
	name := path.Base(filepath.ToSlash(strings.TrimRight(pkg, "/")))
	if name == "." || name == "" || name == "/" {
		name = filepath.Base(target)
	}
	// Distinct flag sets must not overwrite each other, but the file name must
	// stay the plugin name, so use a sub-directory per build.
	sub, err := os.MkdirTemp(dir, name+"-")
	if err != nil {
		return "", "", err
	}
	binPath = filepath.Join(sub, name)

	args := append([]string{"build", "-o", binPath}, flags...)
	args = append(args, target)
	out, err := runGo(root, args)
	if err == nil {
		return binPath, "", nil
	}
	if !needsModfileFallback(out) {
		return "", "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	// Retry against a scratch copy of go.mod/go.sum so that missing checksums or
	// requirements can be resolved without editing the project's files.
	scratch, merr := os.MkdirTemp(dir, "modfile-")
	if merr != nil {
		return "", "", merr
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		data, rerr := os.ReadFile(filepath.Join(root, f))
		if rerr != nil && !(f == "go.sum" && os.IsNotExist(rerr)) {
			return "", "", rerr
		}
		if werr := os.WriteFile(filepath.Join(scratch, f), data, 0o644); werr != nil {
			return "", "", werr
		}
	}
	args2 := append([]string{"build", "-mod=mod", "-modfile=" + filepath.Join(scratch, "go.mod"), "-o", binPath}, flags...)
	args2 = append(args2, target)
	out2, err2 := runGo(root, args2)
	if err2 != nil {
		return "", "", fmt.Errorf("go %s: %v\n%s\n(first attempt: %s)", strings.Join(args2, " "), err2, out2, strings.TrimSpace(string(out)))
	}
	note = fmt.Sprintf("kongsim: built %s with a scratch copy of go.mod/go.sum because the project's module files are incomplete:\n%s\n"+
		"(the owner of go.mod should run e.g. `go get github.com/Kong/go-pdk/server@v0.11.2`)", pkg, strings.TrimSpace(string(out)))
	return binPath, note, nil
}

func runGo(dir string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func needsModfileFallback(out []byte) bool {
	for _, s := range []string{"missing go.sum entry", "updates to go.mod needed", "no required module provides package"} {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

// DumpOutput is what an embedded go-pdk plugin server prints for -dump, the
// same document Kong's plugin-server manager reads with its query_cmd.
type DumpOutput struct {
	Protocol   string       `json:"Protocol"`
	SocketPath string       `json:"SocketPath"`
	Plugins    []PluginInfo `json:"Plugins"`
}

// PluginInfo describes one plugin in the -dump output.
type PluginInfo struct {
	Name     string         `json:"Name"`
	Phases   []string       `json:"Phases"`
	Version  string         `json:"Version"`
	Priority int            `json:"Priority"`
	Schema   map[string]any `json:"Schema"`
}

// Dump runs "binary -dump" and returns its JSON output after checking that it
// parses and carries what Kong needs (Protocol, and for each plugin a name,
// version, priority and schema).
func Dump(binary string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-dump")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s -dump: %v (stderr: %s)", binary, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := parseDump(out); err != nil {
		return out, fmt.Errorf("%s -dump: %w", binary, err)
	}
	return out, nil
}

// DumpInfo runs Dump and returns the parsed document.
func DumpInfo(binary string) (*DumpOutput, error) {
	out, err := Dump(binary)
	if err != nil {
		return nil, err
	}
	return parseDump(out)
}

func parseDump(out []byte) (*DumpOutput, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("output is not a JSON object: %v: %q", err, out)
	}
	var d DumpOutput
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("unexpected dump layout: %v", err)
	}
	if d.Protocol != "ProtoBuf:1" && d.Protocol != "MsgPack:1" {
		return nil, fmt.Errorf("unsupported Protocol %q", d.Protocol)
	}
	if len(d.Plugins) == 0 {
		return nil, errors.New("no Plugins in dump")
	}
	var plugins []map[string]json.RawMessage
	if err := json.Unmarshal(raw["Plugins"], &plugins); err != nil {
		return nil, err
	}
	for i, p := range plugins {
		for _, k := range []string{"Name", "Version", "Priority", "Schema", "Phases"} {
			if _, ok := p[k]; !ok {
				return nil, fmt.Errorf("plugin %d: missing %s", i, k)
			}
		}
		if d.Plugins[i].Name == "" {
			return nil, fmt.Errorf("plugin %d: empty Name", i)
		}
		if d.Plugins[i].Schema == nil {
			return nil, fmt.Errorf("plugin %q: null Schema", d.Plugins[i].Name)
		}
		if _, ok := d.Plugins[i].Schema["fields"]; !ok {
			return nil, fmt.Errorf("plugin %q: Schema has no fields", d.Plugins[i].Name)
		}
	}
	return &d, nil
}
