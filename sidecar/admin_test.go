package sidecar

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// TestReadiness: /readyz is 503 while the realm's keys cannot be fetched and
// turns 200 once the background warm-up succeeds; /healthz is 200 throughout.
func TestReadiness(t *testing.T) {
	idp := newIdP(t)
	idp.SetFault(testidp.Fault{Down: true})
	h := start(t, harnessOpt{idp: idp})

	waitFor(t, "a failed fetch", 5*time.Second, func() bool {
		_, jwks := idp.Fetches()
		d, _ := idp.Fetches()
		return d+jwks > 0
	})
	r := get(t, h.admin+"/readyz")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"ready":false`) ||
		!strings.Contains(string(r.body), idp.Issuer()) || !strings.Contains(string(r.body), "last_error") {
		t.Fatalf("/readyz before keys: %d %s", r.status, r.body)
	}
	if r := get(t, h.admin+"/healthz"); r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Errorf("/healthz: %d %s", r.status, r.body)
	}
	// A request meanwhile is denied (fail closed), not forwarded.
	if r := do(t, "GET", h.url+"/orders", token(t, idp, "orders-service"), nil, nil); r.status != http.StatusUnauthorized || h.up.Hits() != 0 {
		t.Errorf("request without keys: %d, upstream hits %d", r.status, h.up.Hits())
	}

	idp.SetFault(testidp.Fault{})
	waitFor(t, "readiness", 5*time.Second, func() bool { return get(t, h.admin+"/readyz").status == http.StatusOK })
	r = get(t, h.admin+"/readyz")
	if !strings.Contains(string(r.body), `"ready":true`) || !strings.Contains(string(r.body), `"keys":1`) {
		t.Errorf("/readyz after keys: %s", r.body)
	}
}

// TestMetrics checks the counters after a few requests.
func TestMetrics(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{})
	tok := token(t, idp, "orders-service")
	for range 3 {
		do(t, "GET", h.url+"/orders", tok, nil, nil)
	}
	do(t, "GET", h.url+"/orders", "", nil, nil)
	do(t, "POST", h.url+"/orders", token(t, idp, "reports-job"), nil, nil)
	do(t, "GET", h.url+"/nowhere", "", nil, nil)
	do(t, "GET", h.url+"/healthz", "", nil, nil)

	r := get(t, h.admin+"/metrics")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	text := string(r.body)
	for series, want := range map[string]string{
		`keycloak_jwt_decisions_total{mode="proxy",outcome="allow",reason="ok",route="GET /orders"}`:                       "3",
		`keycloak_jwt_decisions_total{mode="proxy",outcome="deny",reason="no_token",route="GET /orders"}`:                  "1",
		`keycloak_jwt_decisions_total{mode="proxy",outcome="deny",reason="missing_scope",route="POST,PUT,DELETE /orders"}`: "1",
		`keycloak_jwt_decisions_total{mode="proxy",outcome="deny",reason="no_route",route="none"}`:                         "1",
		`keycloak_jwt_decisions_total{mode="proxy",outcome="public",reason="public",route="* /healthz"}`:                   "1",
		`keycloak_jwt_token_cache_hits_total{policy="GET /orders"}`:                                                        "2",
		`keycloak_jwt_token_cache_misses_total{policy="GET /orders"}`:                                                      "1",
		`keycloak_jwt_jwks_ready{issuer="` + idp.Issuer() + `"}`:                                                           "1",
		`keycloak_jwt_jwks_keys{issuer="` + idp.Issuer() + `"}`:                                                            "1",
		`keycloak_jwt_jwks_fetch_failures_total{issuer="` + idp.Issuer() + `"}`:                                            "0",
		`keycloak_jwt_request_duration_seconds_count{code="200",mode="proxy"}`:                                             "4",
		`keycloak_jwt_in_flight_requests`:                                                                                  "0",
	} {
		got, err := metricValue(text, series)
		if err != nil || got != want {
			t.Errorf("%s = %q (%v), want %s", series, got, err, want)
		}
	}
	for _, series := range []string{
		`keycloak_jwt_jwks_fetches_total{issuer="` + idp.Issuer() + `"}`,
		`keycloak_jwt_jwks_age_seconds{issuer="` + idp.Issuer() + `"}`,
	} {
		v, err := metricValue(text, series)
		if f, perr := strconv.ParseFloat(v, 64); err != nil || perr != nil || f < 0 {
			t.Errorf("%s = %q (%v)", series, v, err)
		}
	}
	for _, family := range []string{"keycloak_jwt_request_duration_seconds_bucket", "go_goroutines", "process_"} {
		if !strings.Contains(text, family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
}
