package demo

import (
	"encoding/json"
	"io"
	"net/http"
)

// EchoResponse is what the echo upstream answers: the request it received.
type EchoResponse struct {
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Query     string              `json:"query,omitempty"`
	Headers   map[string][]string `json:"headers"`
	BodyBytes int64               `json:"body_bytes"`
}

// Echo is the demo upstream: it reads the request body and answers 200 with
// an EchoResponse. It stands for any API behind the sidecar.
func Echo(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	body, err := json.MarshalIndent(EchoResponse{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: r.Header, BodyBytes: n,
	}, "", "  ")
	if err != nil {
		http.Error(w, "encoding error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}
