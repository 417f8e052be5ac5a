// Command keycloak-jwt-lint validates every keycloak-jwt plugin entry of Kong
// declarative configuration files offline, with the same code the plugin
// runs. Kong only checks a Go plugin's field types; run this in CI before
// deploying a kong.yml, or before deck gateway sync.
//
//	keycloak-jwt-lint [-ignore-missing-keys] kong.yml [more.yml | dir ...]
//
// The files are read together as decK reads them (one state: a plugin's
// _config may name a _plugin_configs entry of another file; a directory
// stands for its .yaml, .yml and .json files); decK's
// ${{ env "DECK_..." }} references are rendered from the environment.
// A file of Kubernetes manifests is read as the Kong Ingress Controller
// reads it: the config of each keycloak-jwt KongPlugin and
// KongClusterPlugin is checked, other objects are skipped.
// Each problem is printed as file:line: where: error: what.
//
// Exit status: 0 all valid, 1 a plugin entry is invalid, 2 a file could not
// be read or parsed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/plugin"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keycloak-jwt-lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ignoreKeys := fs.Bool("ignore-missing-keys", false,
		"report an unreadable upstream_jwt private key as a warning (the key exists only on the gateway)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keycloak-jwt-lint [-ignore-missing-keys] kong.yml [more.yml | dir ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var files []plugin.File
	for _, path := range fs.Args() {
		more, err := readPath(path)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			return 2
		}
		files = append(files, more...)
	}
	n, findings, err := plugin.LintFiles(files, plugin.LintOptions{IgnoreMissingKeys: *ignoreKeys})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	errs := 0
	for _, f := range findings {
		fmt.Fprintf(stderr, "%s: %s\n", f.Location(), f)
		if !f.Warning {
			errs++
		}
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	fmt.Fprintf(stdout, "%s: %d keycloak-jwt plugin entr%s checked, %d invalid\n", strings.Join(names, ", "), n, plural(n), errs)
	if errs > 0 {
		return 1
	}
	return 0
}

// readPath reads a file, or the .yaml, .yml and .json files of a directory
// (not its subdirectories), as decK does.
func readPath(path string) ([]plugin.File, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return []plugin.File{{Name: path, Data: data}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []plugin.File
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		p := filepath.Join(path, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, plugin.File{Name: p, Data: data})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no .yaml, .yml or .json file in the directory")
	}
	return out, nil
}

func plural(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}
