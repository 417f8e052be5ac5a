package interop

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
)

// TestPluginWithOIDCProvider drives the real Kong plugin binary through the
// plugin-server socket protocol with tokens from the independent
// oidc-provider server: allow, wrong audience, missing scope, key rotation.
func TestPluginWithOIDCProvider(t *testing.T) {
	srv := StartOIDCServer(t)
	bin := kongsim.Build(t, "github.com/keycloak-jwt/keycloak-jwt/cmd/keycloak-jwt")
	kong, err := kongsim.Start(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer kong.Close()
	instance := func(scopes ...string) int {
		cfg, _ := json.Marshal(map[string]any{
			"issuers":         []map[string]string{{"issuer": srv.Issuer()}},
			"audiences":       []string{"orders-api"},
			"scopes_required": scopes,
			"jwks":            map[string]int{"min_refresh_interval_seconds": 1},
		})
		id, err := kong.StartInstance("keycloak-jwt", cfg)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	read, write := instance("orders:read"), instance("orders:write")
	token := func(client, scope string) string {
		tok, err := srv.Token(client, DemoSecret(client), scope)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(id int, tok string) *kongsim.Result {
		t.Helper()
		req := kongsim.Request{Path: "/orders", Headers: map[string][]string{"Authorization": {"Bearer " + tok}}}
		res, err := kong.HandleEvent(id, "access", req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	wantStatus := func(name string, res *kongsim.Result, status int, challenge string) {
		t.Helper()
		if status == 0 {
			if res.Exited {
				t.Fatalf("%s: denied %d %s", name, res.Status, res.Body)
			}
			return
		}
		if !res.Exited || res.Status != status || !strings.Contains(strings.Join(res.ExitHeaders["WWW-Authenticate"], ""), challenge) {
			t.Fatalf("%s: got %d %v, want %d %s", name, res.Status, res.ExitHeaders, status, challenge)
		}
	}

	res := call(write, token(OrdersService, "orders:read orders:write"))
	wantStatus("allow", res, 0, "")
	if got := res.UpstreamSet["X-Client-Id"]; len(got) != 1 || got[0] != OrdersService {
		t.Fatalf("X-Client-Id %v (oidc-provider sends client_id, not azp)", got)
	}
	wantStatus("wrong audience", call(read, token(NoAudienceClient, "orders:read")), 401, `error="invalid_token"`)
	wantStatus("missing scope", call(write, token(ReportsJob, "orders:read")), 403, `scope="orders:write"`)

	// Key rotation on the server: the new key is fetched on the first token
	// that names it (one refetch, allowed once min_refresh_interval has passed).
	if _, err := srv.Rotate(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	wantStatus("token of the rotated key", call(read, token(ReportsJob, "orders:read")), 0, "")
}
