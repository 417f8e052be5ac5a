package sidecar

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
)

// maxExplainBody bounds a POST /explain body (a token is a few KB).
const maxExplainBody = 64 << 10

// recentDenials keeps counts of denials by reason and the last few, for
// the status page. It holds no token: reason, route, client id and time.
type recentDenials struct {
	mu       sync.Mutex
	byReason map[string]int64
	last     [20]denial
	n        int
}

type denial struct {
	At     time.Time
	Reason string
	Route  string
	Status int
}

func (d *recentDenials) add(at time.Time, reason, route string, status int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byReason == nil {
		d.byReason = map[string]int64{}
	}
	d.byReason[reason]++
	d.last[d.n%len(d.last)] = denial{At: at, Reason: reason, Route: route, Status: status}
	d.n++
}

// snapshot returns the counts (by reason, sorted) and the last denials,
// newest first.
func (d *recentDenials) snapshot() ([]reasonCount, []denial) {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := make([]reasonCount, 0, len(d.byReason))
	for r, c := range d.byReason {
		counts = append(counts, reasonCount{r, c})
	}
	sort.Slice(counts, func(i, j int) bool {
		return counts[i].Count > counts[j].Count || counts[i].Count == counts[j].Count && counts[i].Reason < counts[j].Reason
	})
	var last []denial
	for i := 1; i <= min(d.n, len(d.last)); i++ {
		last = append(last, d.last[(d.n-i)%len(d.last)])
	}
	return counts, last
}

type reasonCount struct {
	Reason string
	Count  int64
}

// loopbackOnly answers 403 to peers that are not on loopback, and to
// cross-site browser requests: the page and the explain API are for the
// operator on the host.
func loopbackOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			writeMessage(w, http.StatusForbidden, "The status page answers loopback peers only")
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				writeMessage(w, http.StatusForbidden, "Cross-site requests are refused")
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		h(w, r)
	}
}

// registerStatus adds the status page and the explain API to the admin mux
// when status_page.enabled is set.
func (s *Server) registerStatus(mux *http.ServeMux) {
	if !s.c.statusPage {
		return
	}
	mux.HandleFunc("GET /{$}", loopbackOnly(s.serveStatus))
	mux.HandleFunc("POST /explain", loopbackOnly(s.serveExplain))
}

// statusData is what the page shows.
type statusData struct {
	Now        time.Time
	Upstream   string
	Forward    bool
	Routes     []routeRow
	Realms     []realmRow
	Reasons    []reasonCount
	Recent     []denial
	Explained  *authz.Explanation
	Form       explainForm
	FormError  string
	RouteNames []string
}

type routeRow struct {
	Routes       string
	Hits, Misses int64
	HitRate      string
}

type realmRow struct {
	Issuer, URL, LastError          string
	Ready, Stale                    bool
	FetchedAt, RefreshAt, ExpiresAt time.Time
	Keys                            []keyRow
	Fetches, Failures               int64
}

type keyRow struct{ ID, Alg, Type string }

type explainForm struct {
	Method, Path string
}

func (s *Server) statusData() *statusData {
	c := s.live.Load()
	d := &statusData{Now: s.now().UTC(), Forward: c.fwdEnabled, Upstream: "none", Form: explainForm{Method: "GET", Path: "/"}}
	if c.upstreamURL != nil {
		d.Upstream = c.upstreamURL.Redacted()
	}
	for _, u := range c.gate.Policies() {
		hits, misses := u.Policy.CacheStats()
		row := routeRow{Routes: strings.Join(u.Routes, " | "), Hits: hits, Misses: misses, HitRate: "–"}
		if hits+misses > 0 {
			row.HitRate = formatPercent(float64(hits) / float64(hits+misses))
		}
		d.Routes = append(d.Routes, row)
		d.RouteNames = append(d.RouteNames, u.Routes...)
	}
	for _, src := range s.keys.Sources() {
		st := src.Status()
		row := realmRow{Issuer: st.Issuer, URL: st.URL, Ready: st.Ready, LastError: st.LastError, Fetches: st.Fetches, Failures: st.Failures}
		if set := src.Current(); set != nil {
			row.FetchedAt, row.RefreshAt, row.ExpiresAt = set.FetchedAt.UTC(), set.RefreshAt.UTC(), set.ExpiresAt.UTC()
			row.Stale = !s.now().Before(set.ExpiresAt)
			for _, k := range set.Keys() {
				row.Keys = append(row.Keys, keyRow{ID: k.ID, Alg: k.Alg, Type: keyType(k.Public)})
			}
		}
		d.Realms = append(d.Realms, row)
	}
	d.Reasons, d.Recent = s.metrics.recent.snapshot()
	return d
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	s.renderStatus(w, http.StatusOK, s.statusData())
}

func (s *Server) renderStatus(w http.ResponseWriter, status int, d *statusData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = statusPage.Execute(w, d)
}

// explainRequest is the JSON form of POST /explain.
type explainRequest struct {
	Token  string `json:"token"`
	Method string `json:"method"`
	Path   string `json:"path"`
}

// serveExplain explains a token on a route: JSON in and out, or the page's
// form (HTML). The token is used for the check and then forgotten: it is
// neither logged nor shown.
func (s *Server) serveExplain(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxExplainBody)
	isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	var in explainRequest
	if isJSON {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if err != nil {
			writeMessage(w, http.StatusBadRequest, "The body must be JSON: {\"token\", \"method\", \"path\"}")
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeMessage(w, http.StatusBadRequest, "The form does not parse")
			return
		}
		in = explainRequest{Token: r.PostForm.Get("token"), Method: r.PostForm.Get("method"), Path: r.PostForm.Get("path")}
	}
	in.Token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(in.Token), "Bearer "))
	if in.Method == "" {
		in.Method = http.MethodGet
	}
	if in.Path == "" {
		in.Path = "/"
	}
	path, query, _ := strings.Cut(in.Path, "?")
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	req := &authz.Request{Method: in.Method, Path: path, RawQuery: query,
		Header: map[string][]string{"Authorization": {"Bearer " + in.Token}}}
	ex := s.live.Load().gate.Explain(r.Context(), req)
	if isJSON {
		writeJSON(w, http.StatusOK, ex)
		return
	}
	d := s.statusData()
	d.Explained, d.Form = ex, explainForm{Method: in.Method, Path: in.Path}
	s.renderStatus(w, http.StatusOK, d)
}

func formatPercent(f float64) string {
	b, _ := json.Marshal(float64(int(f*1000+0.5)) / 10)
	return string(b) + " %"
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.Format("2006-01-02 15:04:05Z")
	},
}).Parse(statusHTML))

const statusHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keycloak-jwt sidecar</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.pass{color:#176}.fail{color:#b00;font-weight:600}.skipped{color:#888}
.bad{color:#b00}.ok{color:#176}code{font-size:.95em}textarea{width:100%;font-family:monospace}
.verdict{font-size:1.1em;font-weight:600;margin:.6em 0}
</style></head><body>
<h1>keycloak-jwt sidecar</h1>
<p>At {{ts .Now}} · upstream <code>{{.Upstream}}</code> · forward auth {{if .Forward}}on{{else}}off{{end}}</p>

<h2>Routes and token cache</h2>
<table id="routes"><tr><th>routes (sharing one policy)</th><th>cache hits</th><th>misses</th><th>hit rate</th></tr>
{{range .Routes}}<tr><td><code>{{.Routes}}</code></td><td>{{.Hits}}</td><td>{{.Misses}}</td><td>{{.HitRate}}</td></tr>{{end}}
</table>

<h2>Realms and keys</h2>
<table id="realms"><tr><th>issuer</th><th>state</th><th>keys (kid, alg)</th><th>fetched</th><th>next refresh</th><th>fetches / failures</th></tr>
{{range .Realms}}<tr><td><code>{{.Issuer}}</code><br><small>{{.URL}}</small></td>
<td>{{if .Ready}}<span class="ok">ready</span>{{else}}<span class="bad">not ready</span>{{end}}{{if .Stale}} <span class="bad">stale</span>{{end}}{{if .LastError}}<br><small class="bad">{{.LastError}}</small>{{end}}</td>
<td>{{range .Keys}}<code>{{.ID}}</code> {{.Alg}} {{.Type}}<br>{{else}}none{{end}}</td>
<td>{{ts .FetchedAt}}</td><td>{{ts .RefreshAt}}</td><td>{{.Fetches}} / {{.Failures}}</td></tr>{{end}}
</table>

<h2>Denials</h2>
<table id="reasons"><tr><th>reason</th><th>count</th></tr>
{{range .Reasons}}<tr><td><code>{{.Reason}}</code></td><td>{{.Count}}</td></tr>{{else}}<tr><td colspan="2">none yet</td></tr>{{end}}
</table>
{{if .Recent}}<table id="recent"><tr><th>when</th><th>status</th><th>reason</th><th>route</th></tr>
{{range .Recent}}<tr><td>{{ts .At}}</td><td>{{.Status}}</td><td><code>{{.Reason}}</code></td><td><code>{{.Route}}</code></td></tr>{{end}}
</table>{{end}}

<h2>Explain a token</h2>
<form method="post" action="/explain" id="explain">
<p><label>method <input name="method" value="{{.Form.Method}}" size="8"></label>
<label>path <input name="path" value="{{.Form.Path}}" size="40" list="routes-list"></label></p>
<datalist id="routes-list">{{range .RouteNames}}<option value="{{.}}">{{end}}</datalist>
<p><label>access token<br><textarea name="token" rows="5" placeholder="eyJ... (it is checked, then forgotten: never logged nor shown)"></textarea></label></p>
<p><button type="submit">Explain</button></p>
</form>
{{with .Explained}}<div id="explanation">
<p class="verdict">{{if .Allow}}<span class="ok">allow</span>{{else}}<span class="bad">deny {{.Status}} {{.Reason}}</span>: {{.Message}}{{end}}{{if .Route}} · route <code>{{.Route}}</code>{{end}}</p>
<table><tr><th>#</th><th>check</th><th>result</th><th>values</th><th>fix</th></tr>
{{range $i, $s := .Steps}}<tr><td>{{$i}}</td><td>{{$s.Check}}</td><td class="{{$s.Result}}">{{$s.Result}}</td><td>{{$s.Detail}}</td><td>{{$s.Fix}}</td></tr>{{end}}
</table></div>{{end}}
</body></html>
`

// keyType names a public key's type for the page.
func keyType(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA-" + strconv.Itoa(k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return ""
}
