package sidecar

import (
	"github.com/keycloak-jwt/keycloak-jwt/authz"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

// metricsNamespace prefixes every metric of the sidecar.
const metricsNamespace = "keycloak_jwt"

// metrics are the sidecar's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg            *prometheus.Registry
	decisions      *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	inFlight       prometheus.Gauge

	// Children of the vectors by label values: their label sets are small
	// and fixed (routes, reason codes, status codes), and a map hit costs a
	// fraction of WithLabelValues on every request.
	decisionChildren sync.Map // decisionLabels → prometheus.Counter
	durationChildren sync.Map // durationLabels → prometheus.Observer

	// recent are the denials the status page shows.
	recent recentDenials
}

type decisionLabels struct{ mode, route, outcome, reason string }

type durationLabels struct {
	mode   string
	status int
}

// decision returns the counter of one label set.
func (m *metrics) decision(mode, route, outcome, reason string) prometheus.Counter {
	k := decisionLabels{mode, route, outcome, reason}
	if c, ok := m.decisionChildren.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := m.decisions.WithLabelValues(mode, route, outcome, reason)
	m.decisionChildren.Store(k, c)
	return c
}

// observeDuration records one request's duration.
func (m *metrics) observeDuration(mode string, status int, seconds float64) {
	k := durationLabels{mode, status}
	o, ok := m.durationChildren.Load(k)
	if !ok {
		o = m.duration.WithLabelValues(mode, strconv.Itoa(status))
		m.durationChildren.Store(k, o)
	}
	o.(prometheus.Observer).Observe(seconds)
}

// newMetrics registers the request metrics, the Go and process collectors,
// and collectors that read the key sources and the verified-token caches at
// scrape time.
// policies returns the live configuration's policies (they change on reload).
func newMetrics(keys *jwks.Cache, policies func() []*authz.PolicyUse, now func() time.Time) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "decisions_total",
			Help: "Access decisions by mode (proxy, forward_auth, grpc), route, outcome (allow, deny, public) and reason.",
		}, []string{"mode", "route", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "request_duration_seconds",
			Help:    "Time from request received to handler done (upstream included), by mode and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"mode", "code"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "upstream_errors_total",
			Help: "Failed upstream exchanges by kind (unavailable: 502, timeout: 504, client_gone).",
		}, []string{"kind"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "in_flight_requests",
			Help: "Requests being served on the main listener.",
		}),
	}
	m.reg.MustRegister(m.decisions, m.duration, m.upstreamErrors, m.inFlight,
		&keysCollector{keys: keys, now: now}, &tenantsCollector{keys: keys}, &cacheCollector{policies: policies},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descFetches = prometheus.NewDesc(metricsNamespace+"_jwks_fetches_total",
		"JWKS fetch attempts (discovery and JWKS counted once) per issuer.", []string{"issuer"}, nil)
	descFailures = prometheus.NewDesc(metricsNamespace+"_jwks_fetch_failures_total",
		"Failed JWKS fetches per issuer.", []string{"issuer"}, nil)
	descKeys = prometheus.NewDesc(metricsNamespace+"_jwks_keys",
		"Signature keys loaded per issuer.", []string{"issuer"}, nil)
	descReady = prometheus.NewDesc(metricsNamespace+"_jwks_ready",
		"1 when the issuer's key set is loaded and within its stale limit.", []string{"issuer"}, nil)
	descAge = prometheus.NewDesc(metricsNamespace+"_jwks_age_seconds",
		"Seconds since the issuer's key set was fetched (absent before the first fetch).", []string{"issuer"}, nil)
	descHits = prometheus.NewDesc(metricsNamespace+"_token_cache_hits_total",
		"Verified-token cache hits per policy (the routes sharing it).", []string{"policy"}, nil)
	descMisses = prometheus.NewDesc(metricsNamespace+"_token_cache_misses_total",
		"Verified-token cache misses per policy (the routes sharing it).", []string{"policy"}, nil)
)

// keysCollector reports jwks.Cache.Sources at scrape time.
type keysCollector struct {
	keys *jwks.Cache
	now  func() time.Time
}

func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFetches, descFailures, descKeys, descReady, descAge} {
		ch <- d
	}
}

func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	seen := map[string]bool{}
	for _, src := range c.keys.Sources() {
		st := src.Status()
		if seen[st.Issuer] { // one series per issuer (the sidecar registers one source per issuer)
			continue
		}
		seen[st.Issuer] = true
		ready := 0.0
		if st.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(st.Fetches), st.Issuer)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.Failures), st.Issuer)
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(st.Keys), st.Issuer)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready, st.Issuer)
		if !st.FetchedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(st.FetchedAt).Seconds(), st.Issuer)
		}
	}
}

// cacheCollector reports Policy.CacheStats of the live policies at scrape
// time (a reload starts their counts again; the cached tokens survive).
type cacheCollector struct{ policies func() []*authz.PolicyUse }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHits
	ch <- descMisses
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.policies() {
		hits, misses := p.Policy.CacheStats()
		label := strings.Join(p.Routes, " | ")
		ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(hits), label)
		ch <- prometheus.MustNewConstMetric(descMisses, prometheus.CounterValue, float64(misses), label)
	}
}
