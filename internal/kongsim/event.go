package kongsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	kpp "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

// Request is the simulated client request (and surrounding Kong state) that
// PDK calls are answered from. Zero fields get defaults: Method "GET", Scheme
// "http", Host "localhost", Port 8000 (8443 for https), Path "/".
type Request struct {
	Method   string
	Scheme   string
	Host     string
	Port     int
	Path     string // raw path, as sent by the client (kong.request.get_path normalizes it)
	RawQuery string // without "?"

	// Headers are the incoming request headers. Names are case-insensitive
	// (lowercased internally, like nginx). A "host" header is synthesized
	// from Host/Port when absent.
	Headers map[string][]string

	// Consumers is the simulated consumers table used by
	// kong.client.load_consumer (by id, or by username when asked to).
	Consumers []Consumer

	// State left by earlier plugins (kong.client.get_credential).
	AuthenticatedConsumer   *Consumer
	AuthenticatedCredential *Credential
}

// Consumer is a Kong consumer entity. Kong only loads consumers by id when the
// id is a UUID (otherwise load_consumer raises unless search_by_username).
type Consumer struct {
	ID        string
	Username  string
	CustomID  string
	CreatedAt int64
	Tags      []string
}

// Credential is what kong.client.authenticate records as the credential.
type Credential struct {
	ID         string
	ConsumerID string
}

// Result records what the plugin did during one event.
type Result struct {
	Phase string

	// Exited is set by kong.response.exit, and also when Kong aborts the event
	// with a 500 because of a Lua-side error (see KongError).
	Exited      bool
	Status      int
	Body        []byte
	ExitHeaders map[string][]string // as passed to kong.response.exit (keys as given)

	// Upstream request changes. Keys are canonical (http.CanonicalHeaderKey).
	UpstreamSet     map[string][]string // set_headers, minus later clears
	UpstreamCleared []string            // clear_header, minus later sets

	// After kong.client.authenticate (initially Request.AuthenticatedConsumer/Credential).
	AuthenticatedConsumer   *Consumer
	AuthenticatedCredential *Credential

	Logs      []string // kong.log.err, formatted "[err] message"
	Calls     []string // every PDK method called, in order
	Unhandled []string // PDK methods the harness/Kong could not answer

	// KongError is the Lua error Kong would have raised (unknown method, PDK
	// called in the wrong phase, invalid arguments...). The event is aborted
	// and, in request phases, answered 500.
	KongError string

	headerOps []headerOp
}

// KongError is returned by HandleEvent when Kong itself would have failed the
// event (the Result is returned too).
type KongError struct {
	Method  string // PDK method being served, if any
	Message string
}

func (e *KongError) Error() string {
	if e.Method != "" {
		return fmt.Sprintf("kongsim: Kong aborted the event in %s: %s", e.Method, e.Message)
	}
	return "kongsim: Kong aborted the event: " + e.Message
}

type headerOp struct {
	op    string // "set", "clear"
	name  string
	value []string
}

// event is Kong's per-request state while one handle_event is running.
type event struct {
	phase  string
	req    Request
	res    *Result
	reqHdr headerList
	exit   bool
}

var requestPhases = map[string]bool{"rewrite": true, "access": true, "response": true}

// HandleEvent runs one event (phase "access", "rewrite", "response", "log",
// "certificate" or "preread") on an instance, answering every PDK call from req
// the way Kong 3.x would, and returns what the plugin did.
//
// The error is nil for a normal end and for kong.response.exit. It is a
// *KongError (with a non-nil Result) when Kong would have aborted the event:
// an unknown/unsupported PDK method, a PDK function called in the wrong phase,
// or arguments Kong rejects. Other errors mean the plugin server failed (it
// closed the connection — e.g. "no plugin instance N" — or crashed, or timed
// out); Kong would then restart the instance or answer 500.
func (s *Server) HandleEvent(instanceID int, phase string, req Request) (*Result, error) {
	if !slices.Contains(s.info.Phases, phase) {
		return nil, fmt.Errorf("kongsim: plugin %s does not implement phase %q (phases: %v); Kong would not call it", s.info.Name, phase, s.info.Phases)
	}
	ev := newEvent(phase, req)
	res := ev.res

	c, err := s.getConn()
	if err != nil {
		return res, err
	}
	outBefore := s.output.Len()
	rc := &kpp.RpcCall{
		Sequence: s.nextSeq(),
		Call: &kpp.RpcCall_CmdHandleEvent{CmdHandleEvent: &kpp.CmdHandleEvent{
			InstanceId: int32(instanceID),
			EventName:  phase,
		}},
	}
	data, err := proto.Marshal(rc)
	if err != nil {
		_ = c.Close()
		return res, err
	}
	if err := writeFrame(c, data); err != nil {
		_ = c.Close()
		return res, s.connError("cmd_handle_event", err, outBefore)
	}

	// The bridge loop: the plugin sends [method][args] frame pairs and Kong
	// answers each with one frame; an empty method frame ends the event, and
	// the RpcReturn for cmd_handle_event follows.
	for {
		m, err := readFrame(c, callTimeout)
		if err != nil {
			_ = c.Close()
			ev.finish()
			return res, s.connError("cmd_handle_event "+phase, err, outBefore)
		}
		if len(m) == 0 {
			break
		}
		method := string(m)
		args, err := readFrame(c, callTimeout)
		if err != nil {
			_ = c.Close()
			ev.finish()
			return res, s.connError("reading arguments of "+method, err, outBefore)
		}
		res.Calls = append(res.Calls, method)

		reply, kerr := ev.dispatch(method, args)
		if kerr != nil {
			// Kong stops the bridge loop (the socket is abandoned) and fails
			// the request.
			_ = c.Close()
			ev.abort(kerr)
			ev.finish()
			return res, kerr
		}
		if ev.exit {
			// kong.response.exit never returns inside Kong (the plugin
			// coroutine is parked with a delayed response, or ngx.exit runs),
			// so no reply is sent; the socket is dropped when the request
			// ends. go-pdk's Exit then closes its side too.
			_ = c.Close()
			ev.finish()
			return res, nil
		}
		if err := writeFrame(c, reply); err != nil {
			_ = c.Close()
			ev.finish()
			return res, s.connError("answering "+method, err, outBefore)
		}
	}

	reply, err := readFrame(c, callTimeout)
	if err != nil {
		_ = c.Close()
		ev.finish()
		return res, s.connError("cmd_handle_event return", err, outBefore)
	}
	var ret kpp.RpcReturn
	if err := proto.Unmarshal(reply, &ret); err != nil || ret.Sequence != rc.Sequence {
		_ = c.Close()
		ev.finish()
		return res, fmt.Errorf("kongsim: bad cmd_handle_event return (seq %d, want %d, err %v)", ret.Sequence, rc.Sequence, err)
	}
	s.putConn(c)
	ev.finish()
	return res, nil
}

func newEvent(phase string, req Request) *event {
	req = req.withDefaults()
	ev := &event{
		phase: phase,
		req:   req,
		res: &Result{
			Phase:                   phase,
			UpstreamSet:             map[string][]string{},
			AuthenticatedConsumer:   req.AuthenticatedConsumer,
			AuthenticatedCredential: req.AuthenticatedCredential,
		},
	}
	ev.reqHdr = newHeaderList(req.Headers)
	if !ev.reqHdr.has("host") {
		ev.reqHdr = append(ev.reqHdr, hdr{"host", req.hostHeader()})
	}
	return ev
}

func (ev *event) abort(kerr *KongError) {
	ev.res.KongError = kerr.Message
	if requestPhases[ev.phase] && !ev.res.Exited {
		// kong.response.error(500) from handle_event / the runloop.
		ev.res.Exited = true
		ev.res.Status = 500
		ev.res.Body = []byte(`{"message":"An unexpected error occurred"}`)
		ev.res.ExitHeaders = map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}
	}
}

func (ev *event) finish() {
	if len(ev.res.UpstreamCleared) == 0 {
		ev.res.UpstreamCleared = nil
	}
}

func (r Request) withDefaults() Request {
	if r.Method == "" {
		r.Method = "GET"
	}
	r.Method = strings.ToUpper(r.Method)
	if r.Scheme == "" {
		r.Scheme = "http"
	}
	r.Scheme = strings.ToLower(r.Scheme)
	if r.Host == "" {
		r.Host = "localhost"
	}
	r.Host = strings.ToLower(r.Host)
	if r.Port == 0 {
		if r.Scheme == "https" {
			r.Port = 8443
		} else {
			r.Port = 8000
		}
	}
	if r.Path == "" {
		r.Path = "/"
	}
	r.RawQuery = strings.TrimPrefix(r.RawQuery, "?")
	return r
}

func (r Request) hostHeader() string {
	if (r.Scheme == "http" && r.Port == 80) || (r.Scheme == "https" && r.Port == 443) {
		return r.Host
	}
	return fmt.Sprintf("%s:%d", r.Host, r.Port)
}

// UpstreamHeaders returns the request headers the upstream service would
// receive: in.Headers with the plugin's set/clear operations from r
// applied in order. Kong's own additions (Host rewriting, X-Forwarded-*) are
// not simulated. Keys are canonicalized.
func (s *Server) UpstreamHeaders(r *Result, in Request) http.Header {
	l := newHeaderList(in.Headers)
	for _, op := range r.headerOps {
		switch op.op {
		case "set":
			l.set(op.name, op.value)
		case "clear":
			l.clear(op.name)
		}
	}
	h := http.Header{}
	for _, e := range l {
		k := http.CanonicalHeaderKey(e.name)
		h[k] = append(h[k], e.value)
	}
	return h
}
