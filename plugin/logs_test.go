package plugin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/kongsim"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testkeys"
)

// TestLogsHoldNoToken (hole 12): at debug level, over the allow path, every
// kind of denial and an invalid configuration, the plugin's log never holds
// a token, a token's payload or signature, or the upstream JWT.
func TestLogsHoldNoToken(t *testing.T) {
	h := start(t, kongsim.WithArgs("-log-level", "debug"))
	key := testkeys.WriteEC(t)
	ok := h.instance(t, func(c map[string]any) {
		c["cookie_names"] = []string{"access_token"}
		c["upstream_jwt"] = map[string]any{"enabled": true, "issuer": "gw", "audience": "up", "private_key_file": key}
	})
	write := h.instance(t, func(c map[string]any) { c["scopes_required"] = []string{"orders:write"} })
	bad := h.instance(t, func(c map[string]any) { c["scopes_match"] = "some" })
	good := h.token(t, "orders-service")
	reports := h.token(t, "reports-job")
	expired := h.token(t, "orders-service", testidp.WithTTL(-time.Hour))
	tampered := good[:len(good)-4] + "AAAA"
	secrets := []string{good, reports, expired, tampered}
	var sent []string
	send := func(id int, hdr map[string][]string) {
		res := access(t, h, id, kongsim.Request{Headers: hdr})
		if !res.Exited {
			sent = append(sent, h.srv.UpstreamHeaders(res, kongsim.Request{Headers: hdr}).Get("X-Upstream-Jwt"))
		}
	}
	send(ok, bearer(good))                                                                          // allowed, upstream JWT signed
	send(ok, bearer(good))                                                                          // allowed from the cache
	send(write, bearer(reports))                                                                    // 403 scope
	send(ok, bearer(expired))                                                                       // 401 expired
	send(ok, bearer(tampered))                                                                      // 401 signature
	send(ok, map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + reports}})         // 400 two lines
	send(ok, map[string][]string{"Authorization": {"Bearer\t" + good}})                             // 400 malformed
	send(ok, map[string][]string{"Cookie": {"access.token=" + reports + "; access_token=" + good}}) // 400 ambiguous
	send(bad, bearer(good))                                                                         // 500 configuration
	for _, s := range sent {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) < 5 {
		t.Fatalf("no upstream JWT was issued")
	}
	time.Sleep(300 * time.Millisecond) // stderr arrives asynchronously
	out := h.srv.Output()
	if !strings.Contains(out, `"reason":"missing_scope"`) || !strings.Contains(out, `"msg":"token allowed"`) {
		t.Fatalf("the log lacks the decisions it should hold:\n%s", out)
	}
	for _, s := range secrets {
		parts := strings.Split(s, ".")
		for _, needle := range []string{s, parts[1], parts[len(parts)-1]} {
			if strings.Contains(out, needle) {
				t.Fatalf("the log holds a token part %q…", needle[:16])
			}
		}
	}
}
