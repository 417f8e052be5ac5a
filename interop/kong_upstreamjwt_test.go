package interop

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/plugin"
	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// upstreamKeyFields are the upstream_jwt fields that name a key file.
var upstreamKeyFields = []string{"private_key_file", "next_private_key_file", "previous_private_key_file"}

// mapKongKeyFiles rewrites the upstream_jwt key files of every keycloak-jwt
// entry, paths inside the Kong container, to the repository files that
// docker-compose.yml mounts there, so that the engine can compile the
// entries here. A key file no bind mount of the kong service provides fails
// the test: Kong would refuse the entry.
func mapKongKeyFiles(t *testing.T, d *kongDoc) {
	t.Helper()
	binds := loadCompose(t).Services["kong"].binds(t)
	fix := func(where string, ps []kongPlugin) {
		for i := range ps {
			if ps[i].Name != "keycloak-jwt" || len(ps[i].Config) == 0 {
				continue
			}
			var cfg map[string]any
			if json.Unmarshal(ps[i].Config, &cfg) != nil {
				continue
			}
			uj, _ := cfg["upstream_jwt"].(map[string]any)
			changed := false
			for _, field := range upstreamKeyFields {
				file, _ := uj[field].(string)
				if file == "" {
					continue
				}
				src := ""
				for _, m := range binds {
					if rest, ok := strings.CutPrefix(file, m.Target); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
						src = repoPath(m.Source + rest)
					}
				}
				if src == "" {
					t.Errorf("%s: upstream_jwt.%s %s is mounted into the kong service by no volume of %s", where, field, file, composeFile)
					continue
				}
				uj[field], changed = src, true
			}
			if changed {
				ps[i].Config, _ = json.Marshal(cfg)
			}
		}
	}
	fix("top-level plugins", d.Plugins)
	for si := range d.Services {
		s := &d.Services[si]
		fix("service "+s.Name, s.Plugins)
		for ri := range s.Routes {
			fix("route "+s.Routes[ri].Name, s.Routes[ri].Plugins)
		}
	}
	for ri := range d.Routes {
		fix("route "+d.Routes[ri].Name, d.Routes[ri].Plugins)
	}
}

// TestKongUpstreamJWT: the entries of kong.yml that sign an upstream JWT
// have their JWKS served. The plugin answers upstream_jwt.jwks_path only on
// a route it runs on, so a route of that exact path must carry an entry
// publishing the same keys; and the sidecar of the compose stack signs with
// a key its volumes provide.
func TestKongUpstreamJWT(t *testing.T) {
	d := loadKong(t)
	type route struct {
		name  string
		paths []string
		cfg   *plugin.Config
	}
	var routes []route
	for _, s := range d.Services {
		for _, r := range s.Routes {
			for _, p := range r.Plugins {
				if p.Name != "keycloak-jwt" {
					continue
				}
				c, err := plugin.ParseConfig(p.Config)
				if err != nil {
					t.Fatalf("route %s: %v", r.Name, err)
				}
				routes = append(routes, route{r.Name, r.Paths, c})
			}
		}
	}
	jwksOf := func(c *plugin.Config) (string, string) {
		sg, err := upstream.NewSigner(c.UpstreamJWT, nil)
		if err != nil || sg == nil {
			return "", ""
		}
		return sg.JWKSPath(), string(sg.JWKS())
	}
	signing := 0
	for _, r := range routes {
		path, keys := jwksOf(r.cfg)
		if path == "" {
			continue
		}
		signing++
		served := false
		for _, o := range routes {
			op, okeys := jwksOf(o.cfg)
			for _, p := range o.paths {
				if p == path && op == path && okeys == keys {
					served = true
				}
			}
		}
		if !served {
			t.Errorf("route %s signs an upstream JWT, but no route of path %s runs keycloak-jwt with the same keys: its JWKS is not served", r.name, path)
		}
	}
	if signing == 0 {
		t.Error("no route of kong.yml signs an upstream JWT (docs/upstream-jwt.md shows one)")
	}

	sc := loadCompose(t).Services["sidecar"]
	env := sc.env(t)
	if env["UPSTREAM_JWT_ENABLED"] == "true" {
		file := env["UPSTREAM_JWT_KEY_FILE"]
		found := false
		for _, m := range sc.binds(t) {
			if rest, ok := strings.CutPrefix(file, m.Target); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
				if _, err := os.Stat(repoPath(m.Source + rest)); err == nil {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("sidecar: UPSTREAM_JWT_KEY_FILE %q is no file of its volumes", file)
		}
	}
}
