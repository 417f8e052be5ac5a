package sidecar

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// JWKSPath is where the admin listener serves the upstream JWT's public
// JWKS (also served at upstream_jwt.jwks_path).
const JWKSPath = "/.well-known/jwks.json"

// newAdminHandler serves /healthz, /readyz, /metrics and the JWKS.
func (s *Server) newAdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.registerStatus(mux)
	// The configured JWKS path is matched by hand, not registered as a mux
	// pattern: any path the upstream package accepts is then served as is.
	// The signer is the live configuration's (a reload may change it).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sg := s.live.Load().gate.Signer()
		if sg != nil && (r.URL.Path == JWKSPath || r.URL.Path == sg.JWKSPath()) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			body := sg.JWKS()
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// issuerStatus is one key source in the /readyz answer.
type issuerStatus struct {
	Issuer    string     `json:"issuer"`
	Ready     bool       `json:"ready"`
	Keys      int        `json:"keys"`
	FetchedAt *time.Time `json:"fetched_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// serveReady answers 200 when every realm of the live configuration has its
// keys loaded and the server is not shutting down, else 503; the body lists
// each issuer and tells which configuration is live (see Reload).
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	ready := !s.draining.Load()
	var list []issuerStatus
	for _, src := range s.live.Load().sources() {
		st := src.Status()
		is := issuerStatus{Issuer: st.Issuer, Ready: st.Ready, Keys: st.Keys, LastError: st.LastError}
		if !st.FetchedAt.IsZero() {
			t := st.FetchedAt.UTC()
			is.FetchedAt = &t
		}
		ready = ready && st.Ready
		list = append(list, is)
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, struct {
		Ready    bool           `json:"ready"`
		Draining bool           `json:"draining"`
		Issuers  []issuerStatus `json:"issuers"`
		Config   ConfigStatus   `json:"config"`
	}{ready, s.draining.Load(), list, s.ConfigStatus()})
}

// Ready reports what /readyz reports.
func (s *Server) Ready() bool {
	if s.draining.Load() {
		return false
	}
	for _, src := range s.live.Load().sources() {
		if !src.Status().Ready {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
