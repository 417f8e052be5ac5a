package plugin

import (
	"os"
	"strings"
	"testing"
)

// dumpEnv resolves the dump's ${{ env "DECK_REALM_URL" }}.
func dumpEnv(name string) (string, bool) {
	if name == "DECK_REALM_URL" {
		return "https://sso.example.com/realms/demo", true
	}
	return "", false
}

func readDump(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/deck/dump.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineOf is the 1-based line of the n-th (1-based) occurrence of s in doc.
func lineOf(t *testing.T, doc, s string, n int) int {
	t.Helper()
	off := 0
	for range n {
		i := strings.Index(doc[off:], s)
		if i < 0 {
			t.Fatalf("fixture lacks %q (occurrence %d)", s, n)
		}
		off += i + len(s)
	}
	return 1 + strings.Count(doc[:off-len(s)], "\n")
}

func TestLintDeckDump(t *testing.T) {
	dump := readDump(t)
	n, findings, err := LintFiles([]File{{Name: "dump.yaml", Data: []byte(dump)}}, LintOptions{LookupEnv: dumpEnv})
	if err != nil {
		t.Fatal(err)
	}
	// global, top-level on route "reports" by id, service, two routes; the
	// disabled entry is not checked.
	if n != 5 || len(findings) != 0 {
		t.Fatalf("%d entries, findings %v; want 5, none", n, findings)
	}

	// Kong's precedence over the dump, the _config merged in.
	for _, tc := range []struct {
		name, where string
		scopes      []string
		maxStale    int
	}{
		{"orders-read", `services[0] "orders" > routes[0] "orders-read" > plugins[0] (_config "orders-realm")`, []string{"orders:read"}, 0},
		{"orders-write", `services[0] "orders" > routes[1] "orders-write" > plugins[0] (_config "orders-realm")`, []string{"orders:write"}, 600},
		{"orders", `services[0] "orders" > plugins[0] (_config "orders-realm")`, nil, 0},
		{"reports", `plugins[2] (_config "orders-realm")`, []string{"reports:read"}, 0},
	} {
		rendered, _ := renderEnv(File{Data: []byte(dump)}, dumpEnv)
		cfg, where, err := ConfigFor(rendered, tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if where != tc.where || strings.Join(cfg.ScopesRequired, ",") != strings.Join(tc.scopes, ",") ||
			len(cfg.Audiences) != 1 || cfg.Audiences[0] != "orders-api" || cfg.JWKS.MinTTLSeconds != 60 || cfg.JWKS.MaxStaleSeconds != tc.maxStale {
			t.Errorf("%s: at %s, scopes %v, audiences %v, jwks %+v", tc.name, where, cfg.ScopesRequired, cfg.Audiences, cfg.JWKS)
		}
	}
}

func TestLintDeckFindings(t *testing.T) {
	dump := readDump(t)
	type want struct {
		file  string
		line  int
		where string
		text  string
	}
	cases := []struct {
		name  string
		files func() []File
		env   func(string) (string, bool)
		wants func() []want
	}{
		{"shared config broken: every user, at the shared field", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "    - RS256\n", "    - HS256\n", 1))}}
		}, dumpEnv, func() []want {
			l := lineOf(t, dump, "    - RS256\n", 1)
			return []want{
				{"dump.yaml", l, `plugins[2] (_config "orders-realm")`, "algorithms[0]"},
				{"dump.yaml", l, `services[0] "orders" > plugins[0] (_config "orders-realm")`, "algorithms[0]"},
				{"dump.yaml", l, `routes[0] "orders-read" > plugins[0]`, "algorithms[0]"},
				{"dump.yaml", l, `routes[1] "orders-write" > plugins[0]`, "algorithms[0]"},
			}
		}},
		{"override broken: at the override", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "max_stale_seconds: 600", "max_stale_seconds: -1", 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "max_stale_seconds: 600", 1), `routes[1] "orders-write" > plugins[0]`, "jwks.max_stale_seconds"}}
		}},
		{"unknown field in an override", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "        - orders:read\n", "        - orders:read\n        scope_match: any\n", 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "        - orders:read\n", 1) + 1, `routes[0] "orders-read" > plugins[0]`, `unknown field "scope_match"`}}
		}},
		{"_config naming nothing", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "  - _config: orders-realm\n    enabled: true\n    id:", "  - _config: orders-relm\n    enabled: true\n    id:", 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "  - _config: orders-realm\n    enabled: true\n    id:", 1), `services[0] "orders" > plugins[0]`, `no _plugin_configs entry named "orders-relm"`}}
		}},
		{"environment variable not set", func() []File {
			return []File{{"dump.yaml", []byte(dump)}}
		}, func(string) (string, bool) { return "", false }, func() []want {
			return []want{
				{"dump.yaml", lineOf(t, dump, `${{ env "DECK_REALM_URL" }}`, 1), "${{ env }}", "DECK_REALM_URL is referenced but not set"},
				{"dump.yaml", lineOf(t, dump, `${{ env "DECK_REALM_URL" }}`, 2), "${{ env }}", "DECK_REALM_URL is referenced but not set"},
			}
		}},
		{"format version", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, `_format_version: "3.0"`, `_format_version: "4.0"`, 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "_format_version", 1), "_format_version", "not a format Kong 3 reads"}}
		}},
		{"select_tags not a list of tags", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "  select_tags:\n  - orders-team\n", "  select_tags: orders-team\n", 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "select_tags", 1), "_info/select_tags", "list of non-empty tags"}}
		}},
		{"_plugin_configs in another file, broken there", func() []File {
			i, j := strings.Index(dump, "_plugin_configs:"), strings.Index(dump, "\nconsumers:")
			shared := "_format_version: \"3.0\"\n" + strings.Replace(dump[i:j], "    - RS256\n", "    - none\n", 1)
			return []File{{"kong.yaml", []byte(dump[:i] + dump[j+1:])}, {"plugin-configs.yaml", []byte(shared)}}
		}, dumpEnv, func() []want {
			i := strings.Index(dump, "_plugin_configs:")
			l := lineOf(t, dump, "    - RS256\n", 1) - strings.Count(dump[:i], "\n") + 1
			return []want{
				{"plugin-configs.yaml", l, `services[0] "orders" > plugins[0] (_config "orders-realm")`, "algorithms[0]"},
				{"plugin-configs.yaml", l, `routes[1] "orders-write" > plugins[0]`, "algorithms[0]"},
			}
		}},
		{"on a consumer, by a top-level entry", func() []File {
			return []File{{"dump.yaml", []byte(strings.Replace(dump, "  name: rate-limiting\n  protocols:", "  name: keycloak-jwt\n  protocols:", 1))}}
		}, dumpEnv, func() []want {
			return []want{{"dump.yaml", lineOf(t, dump, "- config:\n      minute: 5", 1), "plugins[1]", "cannot be scoped to a consumer"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, findings, err := LintFiles(tc.files(), LintOptions{LookupEnv: tc.env})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wants() {
				found := false
				for _, f := range findings {
					if f.File == w.file && f.Line == w.line && strings.Contains(f.Where, w.where) && strings.Contains(f.Err.Error(), w.text) && !f.Warning {
						found = true
					}
				}
				if !found {
					t.Errorf("no finding %s:%d %s %q in:", w.file, w.line, w.where, w.text)
					for _, f := range findings {
						t.Logf("  %s: %s", f.Location(), f)
					}
				}
			}
		})
	}
}
