package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Dir is the directory of this package (interop/ in the repository).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("interop: cannot locate the package source")
	}
	return filepath.Dir(file)
}

// RepoRoot is the root of the repository.
func RepoRoot() string { return filepath.Dir(Dir()) }

// minNodeMajor is the oldest Node.js major version the Node projects of this
// package support (see their package.json "engines").
const minNodeMajor = 20

// npmTimeout bounds one `npm ci`.
const npmTimeout = 5 * time.Minute

// stampFile, inside node_modules, records the package-lock.json and Node.js
// version it was installed from; `npm ci` runs again when either changes.
const stampFile = ".keycloak-jwt-npm-ci"

var (
	nodeOnce sync.Once
	nodePath string
	nodeErr  error

	installMu sync.Mutex
	installed = map[string]error{}
)

// RequireNode skips t when node or npm is not on PATH, and fails it when
// node is older than the supported version. It returns the path of node.
func RequireNode(t testing.TB) string {
	t.Helper()
	nodeOnce.Do(func() { nodePath, nodeErr = findNode() })
	if errors.Is(nodeErr, exec.ErrNotFound) {
		t.Skipf("interop: skipped, Node.js is not installed (%v); install node >= %d and npm to run this test", nodeErr, minNodeMajor)
	}
	if nodeErr != nil {
		t.Fatalf("interop: %v", nodeErr)
	}
	return nodePath
}

func findNode() (string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("npm: %w", err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("node --version: %w", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n < minNodeMajor {
		return "", fmt.Errorf("node %s is too old: Node.js >= %d is required", v, minNodeMajor)
	}
	return node, nil
}

// NPMInstall makes sure dir (a Node project with a package-lock.json) has
// its node_modules installed with `npm ci`, once: the result is kept in
// dir/node_modules and reused by later runs until package-lock.json or the
// Node.js version changes. Concurrent test processes take turns through a
// lock file. It skips t when Node.js is missing.
func NPMInstall(t testing.TB, dir string) {
	t.Helper()
	RequireNode(t)
	installMu.Lock()
	defer installMu.Unlock()
	err, done := installed[dir]
	if !done {
		err = npmInstall(dir)
		installed[dir] = err
	}
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
}

func npmInstall(dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("npm project %s: %w", dir, err)
	}
	version, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %w", err)
	}
	sum := sha256.Sum256(append(lock, version...))
	want := hex.EncodeToString(sum[:])

	// One installer at a time per project, across processes: `go test ./...`
	// runs packages in parallel and npm ci deletes node_modules first.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "keycloak-jwt-npm-"+shortHash(dir)+".lock"))
	if err != nil {
		return err
	}
	defer unlock()

	stamp := filepath.Join(dir, "node_modules", stampFile)
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out.String())
	}
	// A go.mod makes node_modules a module of its own, so that `go vet ./...`
	// and `go test ./...` never wander into Go files some package may ship.
	if err := os.WriteFile(filepath.Join(dir, "node_modules", "go.mod"),
		[]byte("// Installed by npm ci; not part of github.com/keycloak-jwt/keycloak-jwt.\nmodule ignored/node_modules\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(want), 0o644)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}
