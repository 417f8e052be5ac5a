package authz

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseBearer: an accepted value is exactly "Bearer", one space and a
// b64token; a value whose scheme is not Bearer is never read as a token.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a.b.c", "Basic x", "Bearer a b", "Bearer ==", "", "Bearer\tx", "BearerX y", " Bearer a "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, bearer, ok := parseBearer(v)
		if ok && !bearer {
			t.Fatalf("%q: ok without the Bearer scheme", v)
		}
		if !ok {
			return
		}
		if !isB64Token(tok) || !strings.EqualFold(strings.Trim(v, " \t"), "Bearer "+tok) {
			t.Fatalf("%q read as %q", v, tok)
		}
	})
}

// FuzzJudge: arbitrary header names, values, cookies and queries never
// panic, always get a status the layer documents, and every header that an
// upstream reads as an owned one is deleted from an allowed request.
func FuzzJudge(f *testing.F) {
	e := newEnv(f)
	g := e.gate(f, func(s *Spec) {
		s.Config.CookieNames = []string{"access_token"}
		s.Config.URIParamNames = []string{"access_token"}
	}, Options{Owned: []string{"X-Request-Id"}})
	seeds := [][5]string{
		{"GET", "/public", "X.Client.Id", "x", ""},
		{"POST", "/orders", "X-Http-Method-Override", "DELETE", "_method=PUT"},
		{"GET", "/orders", "Cookie", "access.token=a; access_token=b", "access_token=c"},
		{"GET", "/public/x", "Authorization", "Bearer\ta", "a=%zz"},
		{"get", "//x", "X_request_id", "1", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	statuses := map[int]bool{200: true, 400: true, 401: true, 403: true}
	f.Fuzz(func(t *testing.T, method, path, name, value, query string) {
		h := map[string][]string{name: {value}}
		res := g.Judge(context.Background(), &Request{Method: method, Path: path, RawQuery: query, Header: h})
		if !statuses[res.Decision.Status] {
			t.Fatalf("status %d (%s)", res.Decision.Status, res.Decision.Reason)
		}
		if !res.Allow {
			if res.Response.Status != res.Decision.Status || len(res.Response.Body) == 0 {
				t.Fatalf("denial without a response: %+v", res.Response)
			}
			return
		}
		if res.Decision.Reason != ReasonPublic {
			t.Fatalf("allowed without a token: %+v", res.Decision)
		}
		if info, ok := g.names[FoldHeader(name)]; ok && (info.kind == kindOwned || info.kind == kindAdapter) {
			found := false
			for _, k := range res.Plan.Delete {
				found = found || k == name
			}
			if !found {
				t.Fatalf("owned look-alike %q not deleted (plan %v)", name, res.Plan.Delete)
			}
		}
		if res.Decision.Status != http.StatusOK || res.Decision.Error != "" {
			t.Fatalf("%+v", res.Decision)
		}
	})
}

// FuzzSplitCookies: every name is trimmed and none holds a separator.
func FuzzSplitCookies(f *testing.F) {
	for _, s := range []string{"a=1; b=2", `x="q"`, "access%5Ftoken=1,y=2", ";;=;", " a = b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		splitCookies([]string{line}, func(raw, decoded, value string) bool {
			if strings.ContainsAny(raw, ";,") || strings.ContainsAny(value, ";,") || raw != strings.Trim(raw, " \t") {
				t.Fatalf("%q: name %q value %q", line, raw, value)
			}
			return true
		})
	})
}
