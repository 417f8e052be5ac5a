package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keycloak-jwt/keycloak-jwt/jwks"
)

var (
	descTenantRealms = prometheus.NewDesc(metricsNamespace+"_tenant_realms",
		"Realms of an issuer pattern held (each with its keys), and remembered as absent.", []string{"pattern", "state"}, nil)
	descTenantDiscoveries = prometheus.NewDesc(metricsNamespace+"_tenant_discoveries_total",
		"New realms of an issuer pattern discovered (one discovery and one JWKS request each), by result.", []string{"pattern", "result"}, nil)
	descTenantRefused = prometheus.NewDesc(metricsNamespace+"_tenant_refused_total",
		"New realms not discovered: over tenant_discoveries_per_minute (rate) or max_tenants with none idle (full).", []string{"pattern", "why"}, nil)
	descTenantEvictions = prometheus.NewDesc(metricsNamespace+"_tenant_evictions_total",
		"Realms dropped after tenant_idle_seconds unused.", []string{"pattern"}, nil)
)

// tenantsCollector reports the issuer patterns' realm sets at scrape time.
type tenantsCollector struct{ keys *jwks.Cache }

func (c *tenantsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTenantRealms, descTenantDiscoveries, descTenantRefused, descTenantEvictions} {
		ch <- d
	}
}

func (c *tenantsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, set := range c.keys.TenantSets() {
		st := set.Stats()
		p := st.Pattern
		gauge := func(d *prometheus.Desc, v float64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter := func(d *prometheus.Desc, v int64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
		}
		gauge(descTenantRealms, float64(st.Held), p, "held")
		gauge(descTenantRealms, float64(st.Absent), p, "absent")
		counter(descTenantDiscoveries, st.Discoveries-st.Failures, p, "ok")
		counter(descTenantDiscoveries, st.Failures, p, "failed")
		counter(descTenantRefused, st.RefusedRate, p, "rate")
		counter(descTenantRefused, st.RefusedFull, p, "full")
		counter(descTenantEvictions, st.Evictions, p)
	}
}
