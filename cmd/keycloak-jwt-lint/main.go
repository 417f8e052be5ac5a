// Command keycloak-jwt-lint validates every keycloak-jwt plugin entry of Kong
// declarative configuration files offline, with the same code the plugin
// runs. Kong only checks a Go plugin's field types; run this in CI before
// deploying a kong.yml.
//
//	keycloak-jwt-lint [-ignore-missing-keys] kong.yml [more.yml ...]
//
// Exit status: 0 all valid, 1 a plugin entry is invalid, 2 a file could not
// be read or parsed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

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
		fmt.Fprintln(stderr, "usage: keycloak-jwt-lint [-ignore-missing-keys] kong.yml [more.yml ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	status := 0
	for _, path := range fs.Args() {
		doc, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			status = 2
			continue
		}
		n, findings, err := plugin.Lint(doc, plugin.LintOptions{IgnoreMissingKeys: *ignoreKeys})
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			status = 2
			continue
		}
		errs := 0
		for _, f := range findings {
			fmt.Fprintf(stderr, "%s: %s\n", path, f)
			if !f.Warning {
				errs++
			}
		}
		if errs > 0 && status == 0 {
			status = 1
		}
		fmt.Fprintf(stdout, "%s: %d keycloak-jwt plugin entr%s checked, %d invalid\n", path, n, plural(n), errs)
	}
	return status
}

func plural(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}
