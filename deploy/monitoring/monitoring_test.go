// Package monitoring holds the Grafana dashboard and the Prometheus alert
// rules for the sidecar's metrics, and the test that every metric and label
// they query exists under that name in a running sidecar's /metrics.
package monitoring

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/keycloak-jwt/keycloak-jwt/internal/sidecartest"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

// targetLabels are added by Prometheus when it scrapes, not by the sidecar.
var targetLabels = []string{"instance", "job"}

// ruleFile is the Prometheus rule file format (unknown fields are errors).
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// query is one PromQL expression and where it is written.
type query struct{ where, expr string }

func ruleQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile("prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	var out []query
	seen := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert + r.Record
			switch {
			case (r.Alert == "") == (r.Record == ""):
				t.Errorf("%s: a rule is an alert or a record", where)
			case seen[r.Alert+r.Record]:
				t.Errorf("%s: defined twice", where)
			case r.Expr == "":
				t.Errorf("%s: no expr", where)
			}
			seen[r.Alert+r.Record] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			if r.Alert != "" {
				if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
					t.Errorf("%s: severity %q", where, r.Labels["severity"])
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: summary and description annotations are required", where)
				}
			}
			out = append(out, query{where, r.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("no rules")
	}
	return out
}

// dashboardQueries are the dashboard's target expressions, after a check
// of its shape: unique panel ids, every panel on the Prometheus datasource
// variable, every target with an expr.
func dashboardQueries(t *testing.T) (qs []query, labelValues [][2]string) {
	t.Helper()
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, schemaVersion %d", d.UID, d.SchemaVersion)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or reused", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q target %s: no expr", p.Title, tg.RefID)
			}
			qs = append(qs, query{"panel " + p.Title, tg.Expr})
		}
	}
	lv := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		m := lv.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(metric, label)", v.Name, q.Query)
		}
		labelValues = append(labelValues, [2]string{m[1], m[2]})
	}
	return qs, labelValues
}

// selector is a metric name and the label names its matchers use.
type selector struct {
	metric string
	labels []string
}

// parsed is what an expression reads: its selectors and grouping labels.
type parsed struct {
	selectors []selector
	grouping  []string
}

// promFuncs are the PromQL functions and aggregations the files may call.
var promFuncs = map[string]bool{"rate": true, "irate": true, "increase": true, "sum": true, "min": true,
	"max": true, "avg": true, "count": true, "histogram_quantile": true, "clamp_min": true, "clamp_max": true,
	"abs": true, "absent": true, "topk": true, "bottomk": true, "max_over_time": true, "min_over_time": true}

var (
	identRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	numberRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`)
	matchRE  = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?`)
)

// parse reads the metric names, label matchers and grouping labels of a
// PromQL expression: a lexer, enough for the expressions these files use;
// anything else is an error, so that a name never slips past the check.
func parse(expr string) (parsed, error) {
	var p parsed
	s := expr
	var last *selector
	depth := 0
	for len(s) > 0 {
		switch c := s[0]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			s = s[1:]
		case c == '(' || c == ')':
			depth += map[byte]int{'(': 1, ')': -1}[c]
			if depth < 0 {
				return p, fmt.Errorf("unbalanced ) in %q", expr)
			}
			s = s[1:]
			last = nil
		case strings.ContainsRune("+-*/<>=!^%", rune(c)):
			s = s[1:]
			last = nil
		case c == '[': // a range: [5m], [$__rate_interval]
			i := strings.IndexByte(s, ']')
			if i < 0 {
				return p, fmt.Errorf("unclosed [ in %q", s)
			}
			s = s[i+1:]
		case c == '{':
			if last == nil {
				return p, fmt.Errorf("label matchers without a metric name at %q", s)
			}
			s = s[1:]
			for !strings.HasPrefix(strings.TrimLeft(s, " "), "}") {
				m := matchRE.FindStringSubmatch(s)
				if m == nil {
					return p, fmt.Errorf("bad label matcher at %q", s)
				}
				last.labels = append(last.labels, m[1])
				s = s[len(m[0]):]
			}
			s = strings.TrimLeft(s, " ")[1:]
			last = nil
		case numberRE.MatchString(s):
			s = s[len(numberRE.FindString(s)):]
		default:
			id := identRE.FindString(s)
			if id == "" {
				return p, fmt.Errorf("unexpected %q", s)
			}
			s = s[len(id):]
			rest := strings.TrimLeft(s, " \n\t")
			switch {
			case id == "by" || id == "without" || id == "on" || id == "ignoring" || id == "group_left" || id == "group_right":
				if !strings.HasPrefix(rest, "(") {
					return p, fmt.Errorf("%s without a label list", id)
				}
				end := strings.IndexByte(rest, ')')
				for _, l := range strings.Split(rest[1:end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						p.grouping = append(p.grouping, l)
					}
				}
				s = rest[end+1:]
			case id == "and" || id == "or" || id == "unless" || id == "bool" || id == "offset":
			case strings.HasPrefix(rest, "(") || identRE.FindString(rest) == "by" || identRE.FindString(rest) == "without":
				if !promFuncs[id] {
					return p, fmt.Errorf("unknown function %s", id)
				}
			default:
				p.selectors = append(p.selectors, selector{metric: id})
				last = &p.selectors[len(p.selectors)-1]
			}
		}
	}
	if depth != 0 {
		return p, fmt.Errorf("unbalanced ( in %q", expr)
	}
	return p, nil
}

func TestParse(t *testing.T) {
	p, err := parse(`histogram_quantile(0.99, sum by (le, mode) (rate(a_bucket{mode=~"x|y",instance=~"$instance"}[$__rate_interval]))) / b > 0.25 and c{k="v\"w"}`)
	if err != nil {
		t.Fatal(err)
	}
	want := parsed{selectors: []selector{{"a_bucket", []string{"mode", "instance"}}, {"b", nil}, {"c", []string{"k"}}}, grouping: []string{"le", "mode"}}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("parsed %v, want %v", p, want)
	}
	for _, bad := range []string{`nosuchfunc(x)`, `x{y}`, `{a="b"}`, `rate(x[5m]`} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// exposition is what /metrics exposes: the label names of each series name
// (a histogram's _bucket, _sum and _count included).
type exposition map[string]map[string]bool

func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := exposition{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	labelRE := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := identRE.FindString(line)
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if rest := line[len(name):]; strings.HasPrefix(rest, "{") {
			for _, m := range labelRE.FindAllStringSubmatch(rest[:strings.LastIndexByte(rest, '}')], -1) {
				out[name][m[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// exercise starts a sidecar (proxy with an unreachable upstream, and the
// gRPC listener) and sends what makes every labelled series appear: an
// allowed request (its upstream fails: 502), a denied one, a gRPC check.
func exercise(t *testing.T) string {
	t.Helper()
	idp, err := testidp.New(testidp.Options{Clients: []testidp.Client{{ID: "orders-service", Secret: "s",
		Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	srv := sidecartest.Start(t, `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: {url: "http://`+closed+`", connect_timeout_seconds: 2}
grpc: {listen: "127.0.0.1:0"}
policy:
  issuers: [{issuer: "${ISSUER}"}]
  audiences: [orders-api]
routes:
  - prefix: /orders
    scopes_required: [orders:read]
`, map[string]string{"ISSUER": idp.Issuer()})
	tok, err := idp.Token("orders-service")
	if err != nil {
		t.Fatal(err)
	}
	for _, bearer := range []string{tok, ""} {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/orders", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/orders",
			Headers: map[string]string{"authorization": "Bearer " + tok}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + srv.AdminAddr() + "/metrics"
}

// TestQueriesMatchMetrics: every metric the dashboard and the alert rules
// query is exposed by the sidecar under that name, with the labels they
// match and group by.
func TestQueriesMatchMetrics(t *testing.T) {
	rules := ruleQueries(t)
	panels, labelValues := dashboardQueries(t)
	exp := scrape(t, exercise(t))
	hasLabel := func(metric, label string) bool {
		return exp[metric][label] || slices.Contains(targetLabels, label) || (label == "le" && strings.HasSuffix(metric, "_bucket"))
	}
	queried := map[string]bool{}
	for _, q := range append(rules, panels...) {
		p, err := parse(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %q", q.where, err, q.expr)
			continue
		}
		if len(p.selectors) == 0 {
			t.Errorf("%s: queries no metric", q.where)
		}
		for _, sel := range p.selectors {
			queried[sel.metric] = true
			if _, ok := exp[sel.metric]; !ok {
				t.Errorf("%s: metric %s is not in the sidecar's /metrics", q.where, sel.metric)
				continue
			}
			for _, l := range sel.labels {
				if !hasLabel(sel.metric, l) {
					t.Errorf("%s: %s has no label %q", q.where, sel.metric, l)
				}
			}
		}
		for _, l := range p.grouping {
			found := false
			for _, sel := range p.selectors {
				found = found || hasLabel(sel.metric, l)
			}
			if !found {
				t.Errorf("%s: groups by %q, which none of its metrics has", q.where, l)
			}
		}
	}
	for _, lv := range labelValues {
		if _, ok := exp[lv[0]]; !ok || !hasLabel(lv[0], lv[1]) {
			t.Errorf("variable: label_values(%s, %s) reads nothing the sidecar exposes", lv[0], lv[1])
		}
	}
	// The list: denials by reason, key-fetch failures and
	// staleness, cache hit rate, latency added.
	for _, m := range []string{"keycloak_jwt_decisions_total", "keycloak_jwt_jwks_fetch_failures_total", "keycloak_jwt_jwks_age_seconds",
		"keycloak_jwt_jwks_ready", "keycloak_jwt_token_cache_hits_total", "keycloak_jwt_request_duration_seconds_bucket"} {
		if !queried[m] {
			t.Errorf("nothing queries %s", m)
		}
	}
}
