package sidecar

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/keycloak-jwt/keycloak-jwt/authz"
)

// Outcomes of a request (the "outcome" label).
const (
	outcomeAllow  = "allow"
	outcomeDeny   = "deny"
	outcomePublic = "public"
)

// RequestIDHeader carries the request id to the upstream and back to the client.
const RequestIDHeader = "X-Request-Id"

// writeResponse writes a denial as the request layer rendered it.
func writeResponse(w http.ResponseWriter, resp *authz.Response) {
	h := w.Header()
	for _, kv := range resp.Header {
		h.Add(kv[0], kv[1]) // WWW-Authenticate may come twice (Bearer, DPoP)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
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
