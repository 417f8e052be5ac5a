package sidecar

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/keycloak-jwt/keycloak-jwt/policy"
)

// Reasons the sidecar adds to policy's vocabulary, for the decisions it makes
// itself (no token involved, or after the engine allowed). They appear in
// logs and in the "reason" label.
const (
	ReasonNoRoute        = "no_route"            // no rule covers the method and path: 403
	ReasonBadPath        = "bad_path"            // the path is not canonical: 400
	ReasonBadMethod      = "bad_method"          // the method is not upper case: 400
	ReasonBadForwardAuth = "bad_forward_auth"    // forward auth cannot tell the original request: 400
	ReasonPublic         = "public"              // a public route: no token checked
	ReasonSignFailed     = "upstream_jwt_failed" // the upstream JWT could not be signed: 500
)

// Outcomes of a request (the "outcome" label).
const (
	outcomeAllow  = "allow"
	outcomeDeny   = "deny"
	outcomePublic = "public"
)

// RequestIDHeader carries the request id to the upstream and back to the client.
const RequestIDHeader = "X-Request-Id"

// sidecarDeny builds a decision the sidecar makes itself (no token involved).
// It is rendered like a policy decision but without a Bearer challenge: no
// token would change the answer.
func sidecarDeny(status int, reason, message, detail string) *policy.Decision {
	return &policy.Decision{Status: status, Reason: reason, Message: message, Detail: detail}
}

// ownReason reports whether a decision was made by the sidecar rather than
// by policy.
func ownReason(reason string) bool {
	switch reason {
	case ReasonNoRoute, ReasonBadPath, ReasonBadMethod, ReasonBadForwardAuth, ReasonSignFailed:
		return true
	}
	return false
}

// writeDecision renders a denied decision: its status, the RFC 6750
// challenge for the 400/401/403 decided by policy, and the JSON body.
func (s *Server) writeDecision(w http.ResponseWriter, d *policy.Decision) {
	h := w.Header()
	switch d.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		if !ownReason(d.Reason) {
			h.Set("WWW-Authenticate", d.WWWAuthenticate(s.c.realm))
		}
	}
	body := d.Body()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}

// writeMessage writes a JSON {"message": msg} response.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// requestID returns the incoming id when it is sane (1 to 128 characters
// of [A-Za-z0-9._:-]), else a fresh random one.
func requestID(in string) string {
	if n := len(in); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := in[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		}
		if ok {
			return in
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// recorder remembers the status and size of a response. Unwrap lets
// http.ResponseController (used by httputil.ReverseProxy) reach the
// underlying writer's Flush and Hijack.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
