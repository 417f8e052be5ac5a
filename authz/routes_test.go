package authz

import (
	"strings"
	"testing"
)

func TestRouteMatch(t *testing.T) {
	specs := []struct {
		prefix  string
		methods []string
	}{
		{"/", nil},
		{"/orders", []string{"GET"}},
		{"/orders", []string{"POST", "PUT"}},
		{"/orders/reports", nil},
		{"/orders/export/", []string{"GET"}},
		{"/files", []string{"GET", "HEAD"}},
		{"/files", nil},
	}
	var routes []*route
	var fields []string
	for i, s := range specs {
		routes = append(routes, &route{name: routeName(s.prefix, s.methods), prefix: s.prefix, methods: s.methods})
		fields = append(fields, "routes["+string(rune('0'+i))+"]")
	}
	table, err := newRouteTable(routes, fields)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, want string // want "" = no route
	}{
		{"GET", "/orders", "GET /orders"},
		{"GET", "/orders/", "GET /orders"},
		{"GET", "/orders/1/items", "GET /orders"},
		{"HEAD", "/orders", "GET /orders"},
		{"POST", "/orders/1", "POST,PUT /orders"},
		{"DELETE", "/orders", ""}, // no fall-through to "/"
		{"GET", "/ordersX", "* /"},
		{"GET", "/orders/reports", "* /orders/reports"},
		{"DELETE", "/orders/reports/9", "* /orders/reports"},
		{"GET", "/orders/reportsX", "GET /orders"},
		{"GET", "/orders/export", "GET /orders"}, // "/orders/export/" needs the slash
		{"GET", "/orders/export/", "GET /orders/export/"},
		{"GET", "/orders/export/a", "GET /orders/export/"},
		{"POST", "/orders/export/a", ""},
		{"HEAD", "/files/x", "GET,HEAD /files"},
		{"DELETE", "/files/x", "* /files"},
		{"GET", "/", "* /"},
		{"OPTIONS", "/anything", "* /"},
	}
	for _, tc := range tests {
		r := table.match(tc.method, tc.path)
		got := ""
		if r != nil {
			got = r.name
		}
		if got != tc.want {
			t.Errorf("%s %s: route %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestRouteMatchWithoutDefault(t *testing.T) {
	table, err := newRouteTable([]*route{{name: "* /a", prefix: "/a"}}, []string{"routes[0]"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/b", "/ab"} {
		if r := table.match("GET", p); r != nil {
			t.Errorf("%s matched %s", p, r.name)
		}
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		err  string
	}{
		{"/", ""},
		{"/a/b/", ""},
		{"/a.b/..c/.d", ""},
		{"/a b/%", ""},
		{"", "does not start"},
		{"a", "does not start"},
		{"*", "does not start"},
		{"//a", "empty segment"},
		{"/a//b", "empty segment"},
		{"/a/./b", "dot segment"},
		{"/a/..", "dot segment"},
		{"/..", "dot segment"},
		{"/.", "dot segment"},
		{"/a\\b", "backslash"},
		{"/a\x00b", "control"},
		{"/a\nb", "control"},
		{"/a\x7f", "control"},
		{"/public/..;/admin", "';'"},
		{"/admin;x", "';'"},
		{"/a;b/c", "';'"},
	}
	for _, tc := range tests {
		err := checkPath(tc.path)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("checkPath(%q) = %v, want %q", tc.path, err, tc.err)
		}
	}
}

// FuzzParseOriginalURI: no panic; an accepted URI yields a canonical path
// that starts with '/', and accepting is stable (the path parses to itself).
func FuzzParseOriginalURI(f *testing.F) {
	for _, s := range []string{"/orders?x=1", "/a%2Fb", "/a/../b", "//x", "http://h/x", "/%zz", "/a#f", "/%2e%2e/x", "/a\\b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parseOriginalURI(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("%q -> %q does not start with /", in, p)
		}
		if err := checkPath(p); err != nil {
			t.Fatalf("%q -> %q is not canonical: %v", in, p, err)
		}
		if strings.Contains(p, "\\") || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") {
			t.Fatalf("%q -> %q", in, p)
		}
	})
}

// FuzzRouteMatch: a matched route's prefix always covers the path on a
// segment boundary.
func FuzzRouteMatch(f *testing.F) {
	table, err := newRouteTable([]*route{
		{name: "GET /a", prefix: "/a", methods: []string{"GET"}},
		{name: "* /a/b/", prefix: "/a/b/"},
		{name: "* /c", prefix: "/c"},
	}, []string{"r0", "r1", "r2"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/a", "/ab", "/a/b", "/a/b/", "/c/d", "/"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r := table.match(method, path)
		if r == nil {
			return
		}
		if !strings.HasPrefix(path, r.prefix) {
			t.Fatalf("%s matched %s", path, r.prefix)
		}
		if rest := path[len(r.prefix):]; rest != "" && !strings.HasSuffix(r.prefix, "/") && rest[0] != '/' {
			t.Fatalf("%s matched %s off a segment boundary", path, r.prefix)
		}
	})
}
