package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const statusYAML = baseYAML + `
status_page:
  enabled: true
`

// TestStatusPage: the page shows the routes, the realm's keys and the
// denials; the explain API and form give the gateway's verdict; none of it
// shows a token; only loopback peers get an answer; off by default.
func TestStatusPage(t *testing.T) {
	idp := sharedIdP(t)
	h := start(t, harnessOpt{yaml: statusYAML})
	reports := token(t, idp, "reports-job")
	waitFor(t, "keys", 5e9, func() bool { return h.srv.Ready() })
	if r := do(t, "POST", h.url+"/orders", reports, nil, nil); r.status != 403 {
		t.Fatalf("POST /orders as reports-job: %d", r.status)
	}
	page := get(t, h.admin+"/")
	body := string(page.body)
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", page.status, page.header.Get("Content-Type"))
	}
	for _, want := range []string{"POST,PUT,DELETE /orders", idp.Issuer(), "missing_scope", "RS256", `id="explain"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The explain API: JSON in, the gateway's verdict out.
	b, _ := json.Marshal(explainRequest{Token: reports, Method: "POST", Path: "/orders"})
	r := do(t, "POST", h.admin+"/explain", "", http.Header{"Content-Type": {"application/json"}}, strings.NewReader(string(b)))
	var ex struct {
		Allow  bool   `json:"allow"`
		Status int    `json:"status"`
		Reason string `json:"reason"`
		Steps  []struct{ Check, Result, Fix string }
	}
	if r.status != 200 || json.Unmarshal(r.body, &ex) != nil || ex.Allow || ex.Status != 403 || ex.Reason != "missing_scope" {
		t.Fatalf("explain: %d %s", r.status, r.body)
	}
	// The form: HTML with the steps, without the token.
	form := url.Values{"token": {reports}, "method": {"POST"}, "path": {"/orders"}}
	r = do(t, "POST", h.admin+"/explain", "", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(form.Encode()))
	if r.status != 200 || !strings.Contains(string(r.body), "deny 403 missing_scope") || !strings.Contains(string(r.body), "request scope=orders:write") {
		t.Fatalf("form: %d %s", r.status, r.body)
	}
	parts := strings.Split(reports, ".")
	for _, out := range []string{body, string(r.body)} {
		if strings.Contains(out, parts[1]) || strings.Contains(out, parts[2]) {
			t.Fatal("the page shows a token")
		}
	}
	// Loopback peers only; no cross-site posts.
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://admin/", nil)
	req.RemoteAddr = "10.0.0.7:5555"
	h.srv.AdminHandler().ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Fatalf("non-loopback peer: %d", w.Code)
	}
	r = do(t, "POST", h.admin+"/explain", "", http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"application/json"}}, strings.NewReader(string(b)))
	if r.status != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", r.status)
	}
	// Off by default.
	off := start(t, harnessOpt{})
	if r := get(t, off.admin+"/"); r.status != http.StatusNotFound {
		t.Fatalf("status page off: %d", r.status)
	}
}
