// Command keycloak-jwt-explain says why a token is allowed or refused: it
// judges one request with the same request layer and engine as the gateway
// (so its verdict is the gateway's), and prints every check in order with
// the values compared and, for each failure, the fix on the Keycloak side.
//
//	keycloak-jwt-explain --kong kong.yml --route orders-write --token "$TOKEN"
//	keycloak-jwt-explain --sidecar sidecar.yaml --method POST --path /orders --token - < token.txt
//	keycloak-jwt-explain --kong kong.yml --route orders-read \
//	    --token-url http://localhost:8080/realms/demo/protocol/openid-connect/token \
//	    --client-id reports-job --client-secret-env CLIENT_SECRET --scope orders:read
//
// It fetches the realm's keys as the gateway does (so run it where the
// gateway runs). It never prints the token or its signature. --json prints
// the explanation as JSON. Exit status: 0 allowed, 1 refused, 2 usage or
// configuration error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/plugin"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
)

const (
	exitAllowed = 0
	exitRefused = 1
	exitUsage   = 2
)

// maxTokenInput bounds what is read from stdin or a token endpoint.
const maxTokenInput = 1 << 20

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

type options struct {
	kong, route, sidecarFile, method, path string
	token, tokenURL, clientID, secretEnv   string
	scope                                  string
	json                                   bool
	timeout                                time.Duration
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	var o options
	fs := flag.NewFlagSet("keycloak-jwt-explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kong, "kong", "", "Kong declarative configuration (kong.yml)")
	fs.StringVar(&o.route, "route", "", "with --kong: the route (or service) whose plugin judges the request")
	fs.StringVar(&o.sidecarFile, "sidecar", "", "sidecar configuration (YAML)")
	fs.StringVar(&o.method, "method", "GET", "with --sidecar: the request method")
	fs.StringVar(&o.path, "path", "/", "with --sidecar: the request path (may carry ?query)")
	fs.StringVar(&o.token, "token", "", "the access token, or - to read it from stdin")
	fs.StringVar(&o.tokenURL, "token-url", "", "instead of --token: get one from this token endpoint (client credentials)")
	fs.StringVar(&o.clientID, "client-id", "", "with --token-url: the client id")
	fs.StringVar(&o.secretEnv, "client-secret-env", "CLIENT_SECRET", "with --token-url: the environment variable holding the client secret")
	fs.StringVar(&o.scope, "scope", "", "with --token-url: the scope parameter (optional client scopes)")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "bound on fetching a token and the realm's keys")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || (o.kong == "") == (o.sidecarFile == "") || o.kong != "" && o.route == "" {
		fmt.Fprintln(stderr, "usage: keycloak-jwt-explain (--kong FILE --route NAME | --sidecar FILE [--method M] [--path P])\n"+
			"                            (--token TOKEN|- | --token-url URL --client-id ID [--client-secret-env VAR] [--scope S]) [--json]")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	token, err := o.getToken(ctx, stdin, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "keycloak-jwt-explain:", err)
		return exitUsage
	}
	gate, where, req, err := o.gate(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "keycloak-jwt-explain:", err)
		return exitUsage
	}
	req.Header = map[string][]string{"Authorization": {"Bearer " + token}}
	ex := gate.Explain(ctx, req)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Config string `json:"config"`
			*authz.Explanation
		}{where, ex})
	} else {
		printText(stdout, where, ex)
	}
	if ex.Allow {
		return exitAllowed
	}
	return exitRefused
}

// gate compiles the configuration the request is judged by.
func (o *options) gate(getenv func(string) string) (*authz.Gate, string, *authz.Request, error) {
	deps := policy.Deps{Keys: jwks.NewCache(jwks.Options{})}
	if o.kong != "" {
		doc, err := os.ReadFile(o.kong)
		if err != nil {
			return nil, "", nil, err
		}
		cfg, where, err := plugin.ConfigFor(doc, o.route)
		if err != nil {
			return nil, "", nil, err
		}
		inst, err := plugin.Compile(cfg, deps)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %s: invalid configuration: %w", o.kong, where, err)
		}
		return inst.Gate(), o.kong + ": " + where, &authz.Request{NoQuery: true}, nil
	}
	cfg, err := sidecar.LoadConfigFile(o.sidecarFile, func(k string) (string, bool) { v := getenv(k); return v, v != "" })
	if err != nil {
		return nil, "", nil, err
	}
	g, err := sidecar.CompileGate(cfg, deps)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: invalid configuration: %w", o.sidecarFile, err)
	}
	path, query, _ := strings.Cut(o.path, "?")
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	return g, o.sidecarFile + ": " + o.method + " " + o.path, &authz.Request{Method: o.method, Path: path, RawQuery: query}, nil
}

// getToken reads the token, or fetches one by client credentials.
func (o *options) getToken(ctx context.Context, stdin io.Reader, getenv func(string) string) (string, error) {
	switch {
	case o.token != "" && o.tokenURL != "":
		return "", errors.New("give --token or --token-url, not both")
	case o.token == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxTokenInput))
		return strings.TrimSpace(string(b)), err
	case o.token != "":
		return strings.TrimSpace(o.token), nil
	case o.tokenURL == "":
		return "", errors.New("give --token (or - for stdin) or --token-url")
	}
	secret := getenv(o.secretEnv)
	if o.clientID == "" || secret == "" {
		return "", fmt.Errorf("--token-url needs --client-id and the secret in $%s", o.secretEnv)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if o.scope != "" {
		form.Set("scope", o.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(url.QueryEscape(o.clientID), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenInput)).Decode(&body); err != nil {
		return "", fmt.Errorf("token endpoint answered %d with no JSON", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d: %s %s (Keycloak: is the client confidential, with Service accounts roles on, "+
			"and the secret right? is the scope a client scope of the client?)", resp.StatusCode, body.Error, body.Description)
	}
	return body.AccessToken, nil
}

func printText(w io.Writer, where string, ex *authz.Explanation) {
	fmt.Fprintf(w, "config   %s\n", where)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, s := range ex.Steps {
		result := s.Result
		if result == policy.StepFail {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%2d. %s\t%s\t%s\n", i+1, s.Check, result, s.Detail)
		if s.Fix != "" {
			fmt.Fprintf(tw, "    \t\tfix: %s\n", s.Fix)
		}
	}
	_ = tw.Flush()
	if ex.Allow {
		fmt.Fprintf(w, "verdict  allow (%s)\n", ex.Reason)
		return
	}
	fmt.Fprintf(w, "verdict  deny %d %s: %s\n", ex.Status, ex.Reason, ex.Message)
}
