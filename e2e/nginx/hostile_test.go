package nginx

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// Who answered a request.
const (
	byAPI     = "api"     // the upstream: nginx and the sidecar let it through
	bySidecar = "sidecar" // the sidecar's JSON denial, passed on by nginx
	byNginx   = "nginx"   // nginx's own page (its error, or auth_request's status)
)

// want is one setup's answer to a case.
type want struct {
	status int
	by     string
}

// The four setups, in the order of hostileCase.want.
var setupNames = [4]string{"auth_request", "auth_request permissive", "proxy", "proxy permissive"}

// hostileCase is one request through nginx and what each setup answers.
// The cases are those of sidecar/hostile_test.go that reach headers, plus
// the ones nginx itself treats specially.
type hostileCase struct {
	name           string
	method, target string
	client         string // the token's client; "" sends none
	lines          []line // after the Authorization line
	want           [4]want
	challenge      [4]string // a substring of WWW-Authenticate ("" none)
}

func all(w want) [4]want { return [4]want{w, w, w, w} }

func hostileCases() []hostileCase {
	api := want{200, byAPI}
	refused := want{500, byNginx} // auth_request: a 400 from the sidecar is nginx's 500
	side400 := want{400, bySidecar}
	return []hostileCase{
		{name: "allowed", method: "GET", target: "/orders", client: "orders-service", want: all(api)},
		{name: "no token", method: "GET", target: "/orders",
			want:      [4]want{{401, byNginx}, {401, byNginx}, {401, bySidecar}, {401, bySidecar}},
			challenge: [4]string{`Bearer realm="orders-api"`, `Bearer realm="orders-api"`, `Bearer realm="orders-api"`, `Bearer realm="orders-api"`}},
		{name: "missing scope", method: "POST", target: "/orders", client: "reports-job",
			want: [4]want{{403, byNginx}, {403, byNginx}, {403, bySidecar}, {403, bySidecar}},
			// auth_request passes the challenge of a 401 only.
			challenge: [4]string{"", "", `error="insufficient_scope"`, `error="insufficient_scope"`}},
		{name: "no route", method: "GET", target: "/admin", client: "orders-service",
			want: [4]want{{403, byNginx}, {403, byNginx}, {403, bySidecar}, {403, bySidecar}}},
		{name: "public route", method: "GET", target: "/healthz", want: all(api)},
		// Hole 1 of sidecar/hostile_test.go: copies of identity headers.
		{name: "forged X-Client-Id", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X-Client-Id", "ops-admin"}, {"X-Client-Roles", "admin"}},
			want:  [4]want{refused, refused, api, api}},
		{name: "underscore identity headers", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X_Client_Id", "ops-admin"}, {"X_client_roles", "admin"}, {"X_Forwarded_For", "6.6.6.6"}},
			// nginx drops them by default; passed on, the sidecar refuses
			// (forward auth) or strips (proxy) them.
			want: [4]want{api, refused, api, api}},
		{name: "dotted identity headers", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X.Client.Id", "ops-admin"}, {"X_client.id", "ops-admin"}, {"X.Request.Id", "forged"}},
			want:  [4]want{api, refused, api, api}},
		// Hole 4: Authorization is one line. nginx refuses a second one.
		{name: "second Authorization line", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"Authorization", "Bearer forged"}}, want: all(want{400, byNginx})},
		{name: "Authorization with a tab", method: "GET", target: "/orders",
			lines: []line{{"Authorization", "Bearer\tforged"}}, want: [4]want{refused, refused, side400, side400}},
		// Hole 5: method overrides where methods decide.
		{name: "method override header", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X-HTTP-Method-Override", "DELETE"}}, want: [4]want{refused, refused, side400, side400}},
		{name: "underscore method override", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X_HTTP_Method_Override", "DELETE"}}, want: [4]want{api, refused, api, side400}},
		{name: "_method parameter", method: "GET", target: "/orders?_method=DELETE", client: "orders-service",
			want: [4]want{refused, refused, side400, side400}},
		// The forward-auth sources: a client cannot name another request.
		{name: "forged X-Original-URI", method: "GET", target: "/orders", lines: []line{{"X-Original-URI", "/healthz"}},
			want:      [4]want{{401, byNginx}, {401, byNginx}, {401, bySidecar}, {401, bySidecar}},
			challenge: [4]string{"Bearer", "Bearer", "Bearer", "Bearer"}},
		{name: "forged X-Original-Method", method: "POST", target: "/orders", client: "reports-job",
			lines:     []line{{"X-Original-Method", "GET"}, {"X-Forwarded-Method", "GET"}},
			want:      [4]want{{403, byNginx}, {403, byNginx}, {403, bySidecar}, {403, bySidecar}},
			challenge: [4]string{"", "", `error="insufficient_scope"`, `error="insufficient_scope"`}},
		// nginx resolves dot segments in $uri but sends $request_uri as is.
		{name: "dot segment", method: "GET", target: "/healthz/../orders", want: [4]want{refused, refused, side400, side400}},
		{name: "encoded dot segment", method: "GET", target: "/healthz/%2e%2e/orders", want: [4]want{refused, refused, side400, side400}},
		// A client's request id.
		{name: "X-Request-Id", method: "GET", target: "/orders", client: "orders-service",
			lines: []line{{"X-Request-Id", "client-rid"}}, want: all(api)},
	}
}

// TestNginxHostileHeaders runs every case through the four setups.
func TestNginxHostileHeaders(t *testing.T) {
	nginxBinary(t)
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	setups := [4]setup{
		authRequestSetup(t, idp, ""), authRequestSetup(t, idp, permissive),
		proxySetup(t, idp, ""), proxySetup(t, idp, permissive),
	}
	tokens := map[string]string{}
	for _, c := range []string{"orders-service", "reports-job"} {
		if tokens[c], err = idp.Token(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range hostileCases() {
		for i, s := range setups {
			t.Run(c.name+"/"+setupNames[i], func(t *testing.T) {
				var lines []line
				if c.client != "" {
					lines = append(lines, line{"Authorization", "Bearer " + tokens[c.client]})
				}
				lines = append(lines, c.lines...)
				hits := s.api.Hits()
				status, h, body := send(t, s.base, c.method, c.target, lines)
				by := answeredBy(body)
				if status != c.want[i].status || by != c.want[i].by {
					t.Fatalf("%d from %s, want %d from %s: %.300s", status, by, c.want[i].status, c.want[i].by, body)
				}
				if reached := s.api.Hits() > hits; reached != (by == byAPI) {
					t.Fatalf("upstream reached: %v, answered by %s", reached, by)
				}
				if www := h.Get("WWW-Authenticate"); !strings.Contains(www, c.challenge[i]) || (c.challenge[i] == "" && www != "" && status == 403) {
					t.Fatalf("WWW-Authenticate %q, want %q", www, c.challenge[i])
				}
				if by == byAPI {
					checkUpstream(t, body, c, i)
				}
			})
		}
	}
}

// checkUpstream asserts what the API saw: only the gateway's identity, in
// one spelling, and no method override.
func checkUpstream(t *testing.T, body []byte, c hostileCase, setupIdx int) {
	t.Helper()
	var got seen
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("upstream answer %q: %v", body, err)
	}
	for k, v := range got.Headers {
		if strings.ContainsAny(k, "._") {
			t.Errorf("upstream saw look-alike %s %q", k, v)
		}
	}
	id := got.Headers.Values("X-Client-Id")
	switch {
	case c.client == "" && len(id) != 0:
		t.Errorf("public route: upstream saw X-Client-Id %q", id)
	case c.client != "" && (len(id) != 1 || id[0] != c.client):
		t.Errorf("X-Client-Id %q, want %q", id, c.client)
	}
	if v := got.Headers.Get("X-Client-Roles"); strings.Contains(v, "admin") && !strings.Contains(v, "manage") {
		t.Errorf("upstream saw forged X-Client-Roles %q", v)
	}
	if v := got.Headers.Get("X-Http-Method-Override"); v != "" {
		t.Errorf("upstream saw X-HTTP-Method-Override %q", v)
	}
	if got.Method != c.method {
		t.Errorf("upstream saw method %s", got.Method)
	}
	if rid := got.Headers.Get("X-Request-Id"); c.name == "X-Request-Id" && rid != "client-rid" {
		// Both nginx setups pass the client's request id on: the proxy
		// keeps it as its request id, forward auth leaves it alone.
		t.Errorf("%s: upstream saw X-Request-Id %q", setupNames[setupIdx], rid)
	}
}

// answeredBy tells who wrote a response body.
func answeredBy(body []byte) string {
	if strings.Contains(string(body), "<center>nginx") {
		return byNginx
	}
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		if _, ok := m["headers"]; ok {
			return byAPI
		}
		if _, ok := m["message"]; ok {
			return bySidecar
		}
	}
	return "unknown"
}

// TestNginxSnippetIdentity: with CONFIG.md's snippet, the upstream gets the
// identity the sidecar verified, and the sidecar's 401 challenge reaches
// the client.
func TestNginxSnippetIdentity(t *testing.T) {
	nginxBinary(t)
	idp, err := testidp.New(testidp.Options{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	s := authRequestSetup(t, idp, "")
	tok, err := idp.Token("reports-job")
	if err != nil {
		t.Fatal(err)
	}
	status, _, body := send(t, s.base, "GET", "/orders/7?page=2", []line{{"Authorization", "Bearer " + tok}})
	var got seen
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", status, body)
	}
	if got.URI != "/orders/7?page=2" || got.Headers.Get("X-Client-Id") != "reports-job" || got.Headers.Get("Authorization") == "" {
		t.Fatalf("upstream saw %+v", got)
	}
	if got.Headers.Get("X-Upstream-Jwt") != "" {
		t.Fatalf("an empty auth_request_set variable must send no header: %q", got.Headers.Get("X-Upstream-Jwt"))
	}
}
