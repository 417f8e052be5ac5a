package plugin

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// FuzzParseConfig feeds arbitrary plugin configs (what Kong sends as JSON)
// to the plugin's decoder and Compile: never a panic; an accepted config
// always names an issuer and an audience (the two fields without a default);
// a refused one says which field is wrong when the JSON itself decoded.
func FuzzParseConfig(f *testing.F) {
	valid := []string{
		`{"issuers":[{"issuer":"https://sso.example.com/realms/demo"}],"audiences":["orders-api"]}`,
		`{"issuers":[{"issuer":"http://localhost:8080/realms/demo","jwks_uri":"http://keycloak:8080/realms/demo/protocol/openid-connect/certs"}],"audiences":["orders-api"],"scopes_required":["orders:write"],"client_roles_required":["orders-api:writer"],"consumer_mapping":true}`,
		`{"issuers":[{"issuer":"https://x/realms/y"}],"audiences":["a"],"algorithms":["ES256","EdDSA"],"leeway_seconds":5,"uri_param_names":["access_token"],"cookie_names":["at"]}`,
		`{"issuers":[{"issuer":"https://x/realms/y"}],"audiences":["a"],"upstream_headers":{"claim_headers":{"azp":"X-Client"},"strip_authorization":true}}`,
	}
	// The valid seeds must pass, or the corpus covers less than it claims.
	for _, s := range valid {
		if _, err := ParseConfig([]byte(s)); err != nil {
			f.Fatalf("seed %s: %v", s, err)
		}
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"issuers":[{"issuer":"https://x/realms/y"}],"audiences":["a"],"upstream_jwt":{"enabled":true,"issuer":"gw","audience":"up","private_key_file":"/nonexistent"}}`,
		`{"issuers":[],"audiences":null}`, `{"leeway_seconds":-1}`, `null`, `{}`, `[]`, `{"unknown":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw)
		if err == nil {
			if cfg == nil || len(cfg.Issuers) == 0 || len(cfg.Audiences) == 0 {
				t.Fatalf("accepted a config without issuer or audience: %q", raw)
			}
			return
		}
		var ce *policy.ConfigError
		if errors.As(err, &ce) && ce.Field == "" {
			t.Fatalf("config error without a field: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "config: ") && !errors.As(err, &ce) {
			t.Fatalf("error neither a decoding error nor a ConfigError: %v", err)
		}
	})
}

// FuzzLint feeds arbitrary declarative files to Lint: never a panic, every
// finding complete, and a file without entries reports only findings about
// the file-level keys decK writes (_format_version, _info), one per key.
func FuzzLint(f *testing.F) {
	example, err := os.ReadFile("../examples/kong/kong.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"_format_version: '3.0'\nplugins:\n- name: keycloak-jwt\n  config: {}\n",
		"services:\n- name: s\n  routes:\n  - name: r\n    plugins:\n    - name: keycloak-jwt\n      enabled: false\n",
		"consumers: [{username: u, plugins: [{name: keycloak-jwt, config: {audiences: [a]}}]}]",
		"a: &x [*x]", "[1, 2]", "", "plugins: 3", "{\"plugins\": [null, 1, \"keycloak-jwt\"]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		n, findings, err := Lint(doc, LintOptions{IgnoreMissingKeys: true})
		if err != nil {
			if n != 0 || findings != nil {
				t.Fatalf("error %v with %d entries and findings %v", err, n, findings)
			}
			return
		}
		perEntry, header := 0, map[string]int{}
		for _, fd := range findings {
			if fd.Where == "" || fd.Err == nil {
				t.Fatalf("incomplete finding %+v", fd)
			}
			if fd.Where == "_format_version" || fd.Where == "_info" {
				if header[fd.Where]++; header[fd.Where] > 1 {
					t.Fatalf("%d findings for %s", header[fd.Where], fd.Where)
				}
				continue
			}
			perEntry++
		}
		if n == 0 && perEntry > 0 {
			t.Fatalf("%d findings for no entry: %v", perEntry, findings)
		}
	})
}
