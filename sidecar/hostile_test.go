package sidecar

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileYAML: the base routes plus token cookies and parameters, so that
// every token source is on.
const hostileYAML = baseYAML + `
cookie_names: [access_token]
uri_param_names: [access_token]
`

// phpRouter answers with what PHP's own variables hold: $_SERVER's HTTP_*
// entries (how PHP reads header names), $_COOKIE and $_GET.
const phpRouter = `<?php
header('Content-Type: application/json');
$h = [];
foreach ($_SERVER as $k => $v) { if (strncmp($k, 'HTTP_', 5) === 0) { $h[$k] = $v; } }
echo json_encode(['method' => $_SERVER['REQUEST_METHOD'], 'server' => $h, 'cookie' => (object)$_COOKIE, 'get' => (object)$_GET]);
`

// phpSeen is what the PHP upstream answered.
type phpSeen struct {
	Method string            `json:"method"`
	Server map[string]string `json:"server"`
	Cookie map[string]any    `json:"cookie"`
	Get    map[string]any    `json:"get"`
}

// startPHP runs `php -S` on loopback with phpRouter. Where php is missing
// the test is skipped, except on CI (CI=true), where it fails: scripts/test.sh
// installs php-cli.
func startPHP(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("php not found on CI: scripts/test.sh installs php-cli")
		}
		t.Skip("php not found (apt-get install php-cli); CI runs this test")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "router.php"), []byte(phpRouter), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(php, "-n", "-S", addr, "-t", dir, filepath.Join(dir, "router.php"))
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "php -S "+addr, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// hostileCase is one attack on the proxy: the request's extra headers and
// query, and what the upstream may see.
type hostileCase struct {
	name   string
	method string
	path   string
	header http.Header
	status int // the sidecar's answer; 200 means it forwarded
}

func hostileCases(tok string) []hostileCase {
	return []hostileCase{
		// Hole 1: look-alike spellings of identity headers, sorted after the
		// real ones, win in PHP (the last write of HTTP_X_CLIENT_ID).
		{"dotted identity headers", "GET", "/orders", http.Header{
			"X.Client.Id": {"ops-admin"}, "X_client.id": {"ops-admin"}, "X.Client.Roles": {"admin"},
			"X.Client.Subject": {"root"}, "X.Client.Scopes": {"orders:write"}, "X.Forwarded.For": {"6.6.6.6"},
			"X.Request.Id": {"forged"}}, 200},
		// Hole 2: look-alike cookies (PHP keeps the first access_token).
		{"dotted cookie", "GET", "/orders", http.Header{"Cookie": {"access.token=FORGED"}}, 400},
		{"spaced cookie", "GET", "/orders", http.Header{"Cookie": {"access token=FORGED"}}, 400},
		{"array cookie", "GET", "/orders", http.Header{"Cookie": {"access_token[]=FORGED"}}, 400},
		{"upper-case cookie", "GET", "/orders", http.Header{"Cookie": {"ACCESS_TOKEN=FORGED"}}, 400},
		// Hole 4: Authorization is one line; Bearer is followed by one space.
		{"second Authorization line", "GET", "/orders", http.Header{"Authorization": {"Bearer\tforged"}}, 400},
		// Hole 5: method overrides where methods decide.
		{"method override header", "GET", "/orders", http.Header{"X-Http-Method-Override": {"DELETE"}}, 400},
		{"underscore method override", "GET", "/orders", http.Header{"X_http_method_override": {"DELETE"}}, 400},
		{"_method parameter", "GET", "/orders?_method=DELETE", nil, 400},
		{"look-alike token parameter", "GET", "/orders?access.token=FORGED", nil, 400},
	}
}

// sendHostile sends a case with a valid token for orders-service; the
// token's Authorization line comes first, the case's lines after it.
func sendHostile(t *testing.T, base, tok string, c hostileCase) result {
	t.Helper()
	h := http.Header{}
	for k, v := range c.header {
		h[k] = v
	}
	h["Authorization"] = append([]string{"Bearer " + tok}, c.header["Authorization"]...)
	if cookies := c.header["Cookie"]; len(cookies) > 0 {
		h["Cookie"] = []string{cookies[0] + "; access_token=" + tok}
		h["Authorization"] = h["Authorization"][1:] // the cookie carries the token
	}
	return do(t, c.method, base+c.path, "", h, nil)
}

// TestHostileRequestsGoUpstream: the attacks against the proxy, with a Go
// upstream (net/http canonical header names).
func TestHostileRequestsGoUpstream(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{yaml: hostileYAML})
	tok := token(t, idp, "orders-service")
	for _, c := range hostileCases(tok) {
		t.Run(c.name, func(t *testing.T) {
			r := sendHostile(t, h.url, tok, c)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if r.status != 200 {
				return
			}
			got := r.echo(t).Headers
			for k := range got {
				if strings.ContainsAny(k, "._") {
					t.Errorf("upstream saw look-alike %s %q", k, got[k])
				}
			}
			if v := got.Values("X-Client-Id"); len(v) != 1 || v[0] != "orders-service" {
				t.Errorf("X-Client-Id %q", v)
			}
		})
	}
}

// TestHostileRequestsPHPUpstream: the same attacks, read by a real PHP
// upstream (php -S): what PHP's own variables hold is the assertion.
func TestHostileRequestsPHPUpstream(t *testing.T) {
	idp := sharedIdP(t)
	php := startPHP(t)
	h := start(t, harnessOpt{yaml: hostileYAML, env: map[string]string{"UPSTREAM": php}})
	tok := token(t, idp, "orders-service")
	for _, c := range hostileCases(tok) {
		t.Run(c.name, func(t *testing.T) {
			r := sendHostile(t, h.url, tok, c)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if r.status != 200 {
				return
			}
			var seen phpSeen
			if err := json.Unmarshal(r.body, &seen); err != nil {
				t.Fatalf("PHP answered %q: %v", r.body, err)
			}
			if got := seen.Server["HTTP_X_CLIENT_ID"]; got != "orders-service" {
				t.Errorf("PHP reads HTTP_X_CLIENT_ID %q", got)
			}
			if got := seen.Server["HTTP_X_CLIENT_ROLES"]; strings.Contains(got, "admin") {
				t.Errorf("PHP reads HTTP_X_CLIENT_ROLES %q", got)
			}
			if got := seen.Server["HTTP_X_FORWARDED_FOR"]; got != "127.0.0.1" {
				t.Errorf("PHP reads HTTP_X_FORWARDED_FOR %q", got)
			}
			if got := seen.Server["HTTP_X_REQUEST_ID"]; got == "forged" {
				t.Errorf("PHP reads HTTP_X_REQUEST_ID %q", got)
			}
		})
	}
	// Without an attack, PHP sees the token cookie the sidecar verified.
	r := do(t, "GET", h.url+"/orders", "", http.Header{"Cookie": {"a=1; access_token=" + tok}}, nil)
	var seen phpSeen
	if r.status != 200 || json.Unmarshal(r.body, &seen) != nil || seen.Cookie["access_token"] != tok {
		t.Fatalf("cookie token: %d %s", r.status, r.body)
	}
	if seen.Method != "GET" || seen.Server["HTTP_X_CLIENT_ID"] != "orders-service" {
		t.Fatalf("PHP saw %+v", seen)
	}
}
