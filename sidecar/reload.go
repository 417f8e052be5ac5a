package sidecar

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
	"github.com/keycloak-jwt/keycloak-jwt/jwks"
	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// ConfigStatus tells which configuration is live: /readyz shows it under
// "config", and the keycloak_jwt_config_* metrics carry the same values.
type ConfigStatus struct {
	// Generation is 1 at start and grows by one per applied reload.
	Generation int64 `json:"generation"`
	// File is the configuration file; SHA256 the hash of the bytes of it
	// that are live (empty when the server was not started from a file).
	File     string    `json:"file,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	LoadedAt time.Time `json:"loaded_at"`
	// RestartRequired names the settings of the live file that differ from
	// what is served: they keep their start-up values until a restart.
	RestartRequired []string `json:"restart_required,omitempty"`
	// LastReload is the last reload attempt (nil before the first).
	LastReload *ReloadResult `json:"last_reload,omitempty"`
}

// ReloadResult is the outcome of one reload.
type ReloadResult struct {
	// Applied is true when the new configuration is live.
	Applied bool      `json:"applied"`
	At      time.Time `json:"at"`
	SHA256  string    `json:"sha256,omitempty"`
	// Errors are every problem of a refused file, one per line of the
	// compile error, each naming its field.
	Errors []string `json:"errors,omitempty"`
	// RestartRequired: see ConfigStatus.
	RestartRequired []string `json:"restart_required,omitempty"`
}

// reloader holds what a reload compiles with and what it did.
type reloader struct {
	deps   policy.Deps // the server's key cache and token caches: they survive reloads
	now    func() time.Time
	file   string
	lookup LookupEnv

	run sync.Mutex // one reload at a time

	mu        sync.Mutex
	status    ConfigStatus
	succeeded int64
	failed    int64
}

func newReloader(deps policy.Deps, now func() time.Time, file string, lookup LookupEnv) *reloader {
	r := &reloader{deps: deps, now: now, file: file, lookup: lookup}
	r.status = ConfigStatus{Generation: 1, File: file, LoadedAt: now().UTC()}
	if file != "" {
		if data, err := limitedfile.Read(file, maxConfigBytes); err == nil {
			r.status.SHA256 = hashOf(data)
		}
	}
	return r
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ConfigStatus reports which configuration is live.
func (s *Server) ConfigStatus() ConfigStatus {
	r := s.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.RestartRequired = slices.Clone(st.RestartRequired)
	if st.LastReload != nil {
		lr := *st.LastReload
		st.LastReload = &lr
	}
	return st
}

// ReloadFile re-reads the configuration file (Options.ConfigFile),
// compiles it and, when it is valid, swaps it in atomically: requests
// already being served finish on the configuration they started with, new
// ones get the new one, and the key cache and the verified-token caches are
// kept. An invalid file is refused (the result lists every error, the log
// too) and the live configuration keeps serving. Settings that only a
// restart changes (listeners, server limits, the upstream transport, the
// log) keep their start-up values and are named in RestartRequired.
func (s *Server) ReloadFile() ReloadResult {
	r := s.reload
	if r.file == "" {
		return s.finishReload(ReloadResult{At: r.now().UTC(), Errors: []string{"the server was not started from a configuration file"}}, nil)
	}
	data, err := limitedfile.Read(r.file, maxConfigBytes)
	if err != nil {
		return s.finishReload(ReloadResult{At: r.now().UTC(), Errors: []string{fmt.Sprintf("config: %v", err)}}, nil)
	}
	return s.Reload(data)
}

// Reload is ReloadFile with the file's content given.
func (s *Server) Reload(data []byte) ReloadResult {
	r := s.reload
	r.run.Lock()
	defer r.run.Unlock()
	res := ReloadResult{At: r.now().UTC(), SHA256: hashOf(data)}
	cfg, err := ParseConfig(data, r.lookup)
	if err == nil {
		// Validate against a scratch key cache first, so that a refused
		// file registers no key source in the live one.
		err = Check(cfg)
	}
	var next *compiled
	if err == nil {
		next, err = compile(cfg, r.deps, r.now)
	}
	if err != nil {
		res.Errors = strings.Split(err.Error(), "\n")
		return s.finishReload(res, nil)
	}
	res.Applied = true
	res.RestartRequired = s.keepRestartOnly(next)
	return s.finishReload(res, next)
}

// finishReload swaps next in (when not nil), records the result and logs it.
func (s *Server) finishReload(res ReloadResult, next *compiled) ReloadResult {
	r := s.reload
	r.mu.Lock()
	if next != nil {
		s.live.Store(next)
		r.succeeded++
		r.status.Generation++
		r.status.SHA256, r.status.LoadedAt, r.status.RestartRequired = res.SHA256, res.At, res.RestartRequired
	} else {
		r.failed++
	}
	last := res
	r.status.LastReload = &last
	gen := r.status.Generation
	r.mu.Unlock()
	if next == nil {
		s.log.Error("configuration reload refused; the previous configuration keeps serving",
			zap.String("file", r.file), zap.String("sha256", res.SHA256), zap.Strings("errors", res.Errors),
			zap.Int64("generation", gen))
		return res
	}
	fields := []zap.Field{zap.String("file", r.file), zap.String("sha256", res.SHA256), zap.Int64("generation", gen)}
	if len(res.RestartRequired) > 0 {
		s.log.Warn("configuration reloaded; some settings take effect only after a restart and keep their values",
			append(fields, zap.Strings("restart_required", res.RestartRequired))...)
	} else {
		s.log.Info("configuration reloaded", fields...)
	}
	return res
}

// restartOnly are the settings that only a restart changes: the listeners
// and their limits, the upstream transport, the logger. A reload keeps
// their start-up values.
var restartOnly = []struct {
	field string
	get   func(*compiled) any
}{
	{"listen", func(c *compiled) any { return c.listen }},
	{"admin_listen", func(c *compiled) any { return c.adminListen }},
	{"upstream.url (adding or removing the reverse proxy)", func(c *compiled) any { return c.upstreamURL != nil }},
	{"upstream.timeout_seconds", func(c *compiled) any { return c.upstreamTimeout }},
	{"upstream.connect_timeout_seconds", func(c *compiled) any { return c.connectTimeout }},
	{"upstream.max_idle_conns_per_host", func(c *compiled) any { return c.maxIdlePerHost }},
	{"server.read_header_timeout_seconds", func(c *compiled) any { return c.readHeaderTimeout }},
	{"server.idle_timeout_seconds", func(c *compiled) any { return c.idleTimeout }},
	{"server.shutdown_timeout_seconds", func(c *compiled) any { return c.shutdownTimeout }},
	{"server.max_header_bytes", func(c *compiled) any { return c.maxHeaderBytes }},
	{"server.body_read_timeout_seconds", func(c *compiled) any { return c.bodyReadTimeout }},
	{"server.max_connections", func(c *compiled) any { return c.maxConnections }},
	{"grpc", func(c *compiled) any { return c.grpc.settings() }},
	{"log.level", func(c *compiled) any { return c.logLevel }},
	{"log.format", func(c *compiled) any { return c.logFormat }},
}

// keepRestartOnly gives next the start-up values of every restart-only
// setting and names those the file changed. What a reload does change is
// the request layer (routes, requirements, token sources, upstream headers
// and JWT), forward_auth, and the upstream URL, preserve_host and
// trust_forwarded_headers while a reverse proxy runs.
func (s *Server) keepRestartOnly(next *compiled) []string {
	var changed []string
	for _, f := range restartOnly {
		if f.get(next) != f.get(s.c) {
			changed = append(changed, f.field)
		}
	}
	live := *s.c
	live.gate = next.gate
	live.fwdEnabled, live.fwdPath = next.fwdEnabled, next.fwdPath
	live.uriHeaders, live.methodHeaders = next.uriHeaders, next.methodHeaders
	if (next.upstreamURL != nil) == (s.c.upstreamURL != nil) {
		live.upstreamURL, live.upstreamSet = next.upstreamURL, next.upstreamSet
		live.preserveHost, live.trustForwarded = next.preserveHost, next.trustForwarded
	}
	*next = live
	return changed
}

// WatchConfigFile reloads the configuration file whenever its content
// changes, checking every interval until ctx ends. It compares content
// hashes, so an editor's rename, a Kubernetes ConfigMap's symlink swap and
// an unchanged touch are all handled; a file that fails is not retried
// until its content changes again.
func (s *Server) WatchConfigFile(ctx context.Context, interval time.Duration) error {
	r := s.reload
	if r.file == "" {
		return errors.New("watch: the server was not started from a configuration file")
	}
	last := s.ConfigStatus().SHA256
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		data, err := os.ReadFile(r.file) //nolint:gosec // the operator's own configuration file
		if err != nil || len(data) > maxConfigBytes {
			continue // mid-replace, or too large: ReloadFile reports it when asked
		}
		if h := hashOf(data); h != last {
			last = h
			s.Reload(data)
		}
	}
}

// sources are the key sources of the live configuration's policies, by
// issuer: readiness and the key warmer follow them, so a realm dropped by a
// reload no longer holds /readyz.
func (c *compiled) sources() []*jwks.Source {
	var out []*jwks.Source
	for _, pu := range c.gate.Policies() {
		for _, src := range pu.Policy.Sources() {
			if !slices.Contains(out, src) {
				out = append(out, src)
			}
		}
	}
	slices.SortFunc(out, func(a, b *jwks.Source) int { return strings.Compare(a.Issuer(), b.Issuer()) })
	return out
}

var (
	descGeneration = prometheus.NewDesc(metricsNamespace+"_config_generation",
		"Generation of the live configuration: 1 at start, +1 per applied reload.", nil, nil)
	descConfigInfo = prometheus.NewDesc(metricsNamespace+"_config_info",
		"Always 1; sha256 is the hash of the live configuration file.", []string{"sha256"}, nil)
	descReloads = prometheus.NewDesc(metricsNamespace+"_config_reloads_total",
		"Configuration reloads by result (applied, refused).", []string{"result"}, nil)
	descLastReloadOK = prometheus.NewDesc(metricsNamespace+"_config_last_reload_success",
		"1 when the last reload was applied (or none was attempted), 0 when it was refused.", nil, nil)
	descLastReloadAt = prometheus.NewDesc(metricsNamespace+"_config_last_reload_timestamp_seconds",
		"Unix time of the last reload attempt (absent before the first).", nil, nil)
	descRestartRequired = prometheus.NewDesc(metricsNamespace+"_config_restart_required",
		"Settings of the live file that take effect only after a restart.", nil, nil)
)

func (r *reloader) collectors() []prometheus.Collector { return []prometheus.Collector{r} }

func (r *reloader) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGeneration, descConfigInfo, descReloads, descLastReloadOK, descLastReloadAt, descRestartRequired} {
		ch <- d
	}
}

func (r *reloader) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	st, ok, failed := r.status, r.succeeded, r.failed
	r.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descGeneration, float64(st.Generation))
	gauge(descConfigInfo, 1, st.SHA256)
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(ok), "applied")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(failed), "refused")
	lastOK := 1.0
	if st.LastReload != nil {
		if !st.LastReload.Applied {
			lastOK = 0
		}
		gauge(descLastReloadAt, float64(st.LastReload.At.UnixNano())/1e9)
	}
	gauge(descLastReloadOK, lastOK)
	gauge(descRestartRequired, float64(len(st.RestartRequired)))
}
