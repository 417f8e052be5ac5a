package authz

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// route is one compiled Route.
type route struct {
	name    string // metrics label and logs, e.g. "GET,HEAD /orders" or "* /"
	prefix  string
	methods []string // upper-case; empty means any method
	public  bool
	policy  *policy.Policy // nil when public
}

// routeGroup holds the rules of one prefix.
type routeGroup struct {
	prefix   string
	byMethod map[string]*route
	any      *route // the rule without methods, if any
}

// routeTable picks the rule for a request: longest prefix first, then method.
type routeTable struct {
	groups []*routeGroup // longest prefix first
}

// match returns the rule for method and path (a canonical path), or nil.
// Once the longest matching prefix is found, its rules alone decide: a
// method none of them covers is not passed on to a shorter prefix.
func (t *routeTable) match(method, path string) *route {
	for _, g := range t.groups {
		if !prefixMatch(g.prefix, path) {
			continue
		}
		if r, ok := g.byMethod[method]; ok {
			return r
		}
		if method == http.MethodHead {
			if r, ok := g.byMethod[http.MethodGet]; ok {
				return r
			}
		}
		return g.any
	}
	return nil
}

// prefixMatch reports whether prefix covers path on segment boundaries.
func prefixMatch(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// newRouteTable groups routes by prefix. Rules of one prefix must not claim
// the same method, and at most one may omit methods. fields[i] names
// routes[i] in errors.
func newRouteTable(routes []*route, fields []string) (*routeTable, error) {
	byPrefix := map[string]*routeGroup{}
	owner := map[string]string{} // prefix + " " + method -> field
	t := &routeTable{}
	for i, r := range routes {
		g := byPrefix[r.prefix]
		if g == nil {
			g = &routeGroup{prefix: r.prefix, byMethod: map[string]*route{}}
			byPrefix[r.prefix] = g
			t.groups = append(t.groups, g)
		}
		if len(r.methods) == 0 {
			if prev, dup := owner[r.prefix+" *"]; dup {
				return nil, cfgErr(fields[i]+".methods", "%s already has a rule for every method (%s); list methods to split them", r.prefix, prev)
			}
			owner[r.prefix+" *"] = fields[i]
			g.any = r
			continue
		}
		for _, m := range r.methods {
			if prev, dup := owner[r.prefix+" "+m]; dup {
				return nil, cfgErr(fields[i]+".methods", "%s %s is already covered by %s", m, r.prefix, prev)
			}
			owner[r.prefix+" "+m] = fields[i]
			g.byMethod[m] = r
		}
	}
	sort.SliceStable(t.groups, func(a, b int) bool { return len(t.groups[a].prefix) > len(t.groups[b].prefix) })
	return t, nil
}

// checkPrefix validates a route prefix.
func checkPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("is required (a path prefix such as \"/orders\" or \"/\")")
	}
	if strings.ContainsAny(p, "?#%") {
		return fmt.Errorf("%q: a prefix is a decoded path, without '?', '#' or '%%'", p)
	}
	if err := checkPath(p); err != nil {
		return fmt.Errorf("%q: %v", p, err)
	}
	return nil
}

// compileMethods upper-cases and validates route methods.
func compileMethods(field string, ms []string) ([]string, error) {
	out := make([]string, 0, len(ms))
	for i, m := range ms {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !validMethod(m) {
			return nil, cfgErr(fmt.Sprintf("%s[%d]", field, i), "%q is not an HTTP method", ms[i])
		}
		for _, have := range out {
			if have == m {
				return nil, cfgErr(fmt.Sprintf("%s[%d]", field, i), "%s is listed twice", m)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// routeName is the label of a rule in metrics and logs.
func routeName(prefix string, methods []string) string {
	if len(methods) == 0 {
		return "* " + prefix
	}
	return strings.Join(methods, ",") + " " + prefix
}

func cfgErr(field, format string, a ...any) error {
	return &policy.ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// PrefixMatch reports whether prefix covers path on segment boundaries
// ("/orders" covers "/orders" and "/orders/1", not "/ordersX").
func PrefixMatch(prefix, path string) bool { return prefixMatch(prefix, path) }

// CheckPrefix validates a path prefix (a route's, or an endpoint's).
func CheckPrefix(p string) error { return checkPrefix(p) }
