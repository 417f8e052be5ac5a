package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/upstream"
)

// Selftest starts the demo (ephemeral ports unless o names them), runs the
// whole flow over real sockets and prints each step with ✓ or ✗. It returns
// nil only if every step behaved.
func Selftest(ctx context.Context, o Options, w io.Writer) error {
	e, err := Start(o)
	if err != nil {
		return err
	}
	t := &tester{e: e, ctx: ctx, w: w, client: &http.Client{Timeout: 10 * time.Second}}
	fmt.Fprintf(w, "keycloak-jwt sidecar selftest: realm %s, sidecar %s, upstream %s\n", e.IdP.URL(), e.URL, e.EchoURL)
	t.run()
	if err := e.Close(); err != nil {
		t.failed++
		fmt.Fprintf(w, "  ✗ graceful shutdown: %v\n", err)
	}
	if t.failed > 0 {
		fmt.Fprintf(w, "FAIL: %d of %d steps did not behave\n", t.failed, t.steps)
		return fmt.Errorf("%w: %d of %d steps", errFailed, t.failed, t.steps)
	}
	fmt.Fprintf(w, "PASS: all %d steps behaved\n", t.steps)
	return nil
}

type tester struct {
	e             *Env
	ctx           context.Context
	w             io.Writer
	client        *http.Client
	steps, failed int
}

// step runs one check and prints its result.
func (t *tester) step(name string, f func() (string, error)) {
	t.steps++
	note, err := f()
	if err != nil {
		t.failed++
		fmt.Fprintf(t.w, "  ✗ %s: %v\n", name, err)
		return
	}
	if note != "" {
		note = " (" + note + ")"
	}
	fmt.Fprintf(t.w, "  ✓ %s%s\n", name, note)
}

func (t *tester) run() {
	var orders, reports string
	t.step("sidecar ready: realm keys loaded (/readyz 200)", t.waitReady)
	t.step("token for "+OrdersClient+" from the token endpoint (client_secret_post)", func() (string, error) {
		var err error
		orders, err = t.token(url.Values{"client_id": {OrdersClient}, "client_secret": {OrdersSecret}}, "", "")
		return "", err
	})
	t.step("token for "+ReportsClient+" from the token endpoint (HTTP Basic)", func() (string, error) {
		var err error
		reports, err = t.token(url.Values{}, ReportsClient, ReportsSecret)
		return "", err
	})
	t.step("GET /orders with "+OrdersClient+" → 200, identity headers at the upstream", func() (string, error) {
		return t.allowed(http.MethodGet, orders)
	})
	t.step("POST /orders with "+OrdersClient+" (orders:write) → 200", func() (string, error) {
		resp, _, err := t.call(http.MethodPost, "/orders", orders, nil)
		return "", expect(resp, err, http.StatusOK, "")
	})
	t.step("GET /orders without a token → 401 with a Bearer challenge", func() (string, error) {
		resp, _, err := t.call(http.MethodGet, "/orders", "", nil)
		return "", expect(resp, err, http.StatusUnauthorized, "Bearer")
	})
	t.step("POST /orders with "+ReportsClient+" (orders:read only) → 403 insufficient_scope", func() (string, error) {
		resp, _, err := t.call(http.MethodPost, "/orders", reports, nil)
		return "", expect(resp, err, http.StatusForbidden, `error="insufficient_scope"`)
	})
	t.step("POST /orders with a tampered token (scope widened, signature kept) → 401 invalid_token", func() (string, error) {
		forged, err := widenScope(reports, "orders:write")
		if err != nil {
			return "", err
		}
		resp, _, err := t.call(http.MethodPost, "/orders", forged, nil)
		return "", expect(resp, err, http.StatusUnauthorized, `error="invalid_token"`)
	})
	t.step("GET /orders with "+NoAudienceClient+" (no audience mapper) → 401 invalid_token", func() (string, error) {
		tok, err := t.token(url.Values{}, NoAudienceClient, NoAudienceSecret)
		if err != nil {
			return "", err
		}
		resp, _, err := t.call(http.MethodGet, "/orders", tok, nil)
		return "", expect(resp, err, http.StatusUnauthorized, `error="invalid_token"`)
	})
	t.step("PATCH /orders (no route) → 403", func() (string, error) {
		resp, _, err := t.call(http.MethodPatch, "/orders", orders, nil)
		return "", expect(resp, err, http.StatusForbidden, "")
	})
	t.step("GET /healthz without a token → 200 (public route)", func() (string, error) {
		resp, _, err := t.call(http.MethodGet, "/healthz", "", nil)
		return "", expect(resp, err, http.StatusOK, "")
	})
	t.step("/metrics counts the decisions", t.metrics)
}

func (t *tester) waitReady() (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := t.get(t.e.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "", nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not ready after 10s (last: %v)", statusOrErr(resp, err))
		}
		select {
		case <-t.ctx.Done():
			return "", t.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// token runs the client-credentials grant: form credentials, or HTTP Basic
// when user is set.
func (t *tester) token(form url.Values, user, pass string) (string, error) {
	form.Set("grant_type", "client_credentials")
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, t.e.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: HTTP %d, decode error %v", resp.StatusCode, err)
	}
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "Bearer") {
		return "", fmt.Errorf("token endpoint: no Bearer access_token in the answer")
	}
	return tr.AccessToken, nil
}

// allowed calls /orders with a spoofed identity header and checks what the
// upstream received: the real identity, no Authorization, a request id and
// an upstream JWT that verifies against the admin listener's JWKS.
func (t *tester) allowed(method, token string) (string, error) {
	resp, body, err := t.call(method, "/orders", token, http.Header{"X-Client-Id": {"spoofed-admin"}})
	if err := expect(resp, err, http.StatusOK, ""); err != nil {
		return "", err
	}
	var echo EchoResponse
	if err := json.Unmarshal(body, &echo); err != nil {
		return "", fmt.Errorf("upstream answer: %w", err)
	}
	h := http.Header(echo.Headers)
	switch {
	case h.Get("X-Client-Id") != OrdersClient || len(h.Values("X-Client-Id")) != 1:
		return "", fmt.Errorf("upstream saw X-Client-Id %q, want only %q", h.Values("X-Client-Id"), OrdersClient)
	case !strings.Contains(h.Get("X-Client-Scopes"), "orders:read"):
		return "", fmt.Errorf("upstream saw X-Client-Scopes %q", h.Get("X-Client-Scopes"))
	case h.Get("Authorization") != "":
		return "", fmt.Errorf("the upstream received the Authorization header (strip_authorization is on)")
	case h.Get("X-Request-Id") == "":
		return "", fmt.Errorf("the upstream received no X-Request-Id")
	}
	jwksResp, err := t.get(t.e.AdminURL + "/.well-known/jwks.json")
	if err != nil {
		return "", err
	}
	defer jwksResp.Body.Close()
	set, err := io.ReadAll(io.LimitReader(jwksResp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	claims, err := upstream.Verify(set, h.Get(t.e.JWTHeader), UpstreamIssuer, Audience, time.Now())
	if err != nil {
		return "", fmt.Errorf("upstream JWT: %w", err)
	}
	return fmt.Sprintf("X-Client-Id=%s, spoofed copy removed, upstream JWT verified for sub=%v", OrdersClient, claims["sub"]), nil
}

func (t *tester) metrics() (string, error) {
	resp, err := t.get(t.e.AdminURL + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	for _, want := range []string{
		`keycloak_jwt_decisions_total{mode="proxy",outcome="allow",reason="ok",route="GET /orders"}`,
		`outcome="deny",reason="missing_scope"`,
		`keycloak_jwt_jwks_ready{issuer="` + t.e.IdP.Issuer() + `"} 1`,
		`keycloak_jwt_token_cache_misses_total`,
	} {
		if !strings.Contains(string(body), want) {
			return "", fmt.Errorf("/metrics has no %s", want)
		}
	}
	return "", nil
}

// call sends a request through the sidecar and reads the whole answer.
func (t *tester) call(method, path, token string, extra http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(t.ctx, method, t.e.URL+path, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

func (t *tester) get(u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return t.client.Do(req)
}

// expect checks the status and, when challenge is set, that WWW-Authenticate
// contains it.
func expect(resp *http.Response, err error, status int, challenge string) error {
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("got HTTP %d, want %d", resp.StatusCode, status)
	}
	if challenge != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), challenge) {
		return fmt.Errorf("WWW-Authenticate %q lacks %s", resp.Header.Get("WWW-Authenticate"), challenge)
	}
	return nil
}

func statusOrErr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// widenScope forges a token: the payload's scope gains extra, the header
// and signature are kept. A verifier must refuse it.
func widenScope(token, extra string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("token is not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("token payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("token payload: %w", err)
	}
	scope, _ := claims["scope"].(string)
	claims["scope"] = strings.TrimSpace(scope + " " + extra)
	forged, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(forged)
	return strings.Join(parts, "."), nil
}
