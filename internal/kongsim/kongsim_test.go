package kongsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const samplePkg = "./internal/kongsim/testdata/sampleplugin"

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startSample(t *testing.T, opts ...Option) *Server {
	t.Helper()
	bin := Build(t, samplePkg)
	s, err := Start(bin, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustInstance(t *testing.T, s *Server, config string) int {
	t.Helper()
	id, err := s.StartInstance("sampleplugin", []byte(config))
	if err != nil {
		t.Fatalf("StartInstance(%s): %v", config, err)
	}
	return id
}

func mustEvent(t *testing.T, s *Server, id int, phase string, req Request) *Result {
	t.Helper()
	res, err := s.HandleEvent(id, phase, req)
	if err != nil {
		t.Fatalf("HandleEvent(%d, %s): %v", id, phase, err)
	}
	if len(res.Unhandled) > 0 {
		t.Fatalf("unhandled PDK methods: %v", res.Unhandled)
	}
	return res
}

func TestDump(t *testing.T) {
	bin := Build(t, samplePkg)
	out, err := Dump(bin)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Protocol string
		Plugins  []struct {
			Name     string
			Version  string
			Priority int
			Phases   []string
			Schema   struct {
				Name   string                       `json:"name"`
				Fields []map[string]json.RawMessage `json:"fields"`
			}
		}
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("dump is not JSON: %v\n%s", err, out)
	}
	if d.Protocol != "ProtoBuf:1" || len(d.Plugins) != 1 {
		t.Fatalf("unexpected dump: %s", out)
	}
	p := d.Plugins[0]
	if p.Name != "sampleplugin" || p.Version != "0.1.0" || p.Priority != 1005 {
		t.Errorf("name/version/priority = %q/%q/%d", p.Name, p.Version, p.Priority)
	}
	if !slices.Contains(p.Phases, "access") || !slices.Contains(p.Phases, "rewrite") {
		t.Errorf("phases = %v", p.Phases)
	}
	if p.Schema.Name != "sampleplugin" || len(p.Schema.Fields) != 1 || p.Schema.Fields[0]["config"] == nil {
		t.Fatalf("schema = %+v", p.Schema)
	}
	cfg := string(p.Schema.Fields[0]["config"])
	for _, f := range []string{`"realm"`, `"token_header"`, `"clear_headers"`, `"by_username"`} {
		if !strings.Contains(cfg, f) {
			t.Errorf("config schema lacks %s: %s", f, cfg)
		}
	}

	info, err := DumpInfo(bin)
	if err != nil || info.Plugins[0].Name != "sampleplugin" {
		t.Fatalf("DumpInfo = %+v, %v", info, err)
	}
	if _, err := Dump("/nonexistent/binary"); err == nil {
		t.Error("Dump of a missing binary succeeded")
	}
}

func TestStartInstanceAndStatus(t *testing.T) {
	s := startSample(t)
	if s.Name() != "sampleplugin" || !strings.HasSuffix(s.SocketPath(), "/sampleplugin.socket") {
		t.Errorf("name %q socket %q", s.Name(), s.SocketPath())
	}
	before := time.Now().Add(-2 * time.Second)
	id := mustInstance(t, s, `{"realm":"r1","token_header":"X-Jwt"}`)
	if id != 1 {
		t.Errorf("first instance id = %d, want 1 (Kong's __seq__)", id)
	}
	st, err := s.InstanceStatus(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != id || st.StartedAt.Before(before) {
		t.Errorf("status = %+v", st)
	}

	// A config the plugin cannot decode: go-pdk drops the connection and logs.
	_, err = s.StartInstance("sampleplugin", []byte(`{"realm":5}`))
	if err == nil || !strings.Contains(err.Error(), "decoding config") {
		t.Fatalf("bad config error = %v", err)
	}
	// The server is still usable afterwards.
	if id2 := mustInstance(t, s, `{}`); id2 == id {
		t.Errorf("second instance reused id %d", id2)
	}
}

func TestRawConfig(t *testing.T) {
	s := startSample(t, WithRawConfig())
	id := mustInstance(t, s, `{"realm":"raw"}`)
	if id == 0 {
		t.Fatal("zero id")
	}
	// Explicit __seq__ is honoured by go-pdk.
	if id := mustInstance(t, s, `{"__seq__":77}`); id != 77 {
		t.Errorf("id = %d, want 77", id)
	}
}

func TestExit401(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"realm":"kongsim"}`)
	res := mustEvent(t, s, id, "access", Request{Path: "/api"})
	if !res.Exited || res.Status != 401 {
		t.Fatalf("exited=%v status=%d", res.Exited, res.Status)
	}
	if string(res.Body) != `{"message":"Unauthorized"}` {
		t.Errorf("body = %q", res.Body)
	}
	if got := res.ExitHeaders["WWW-Authenticate"]; !slices.Equal(got, []string{`Bearer realm="kongsim"`}) {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	if got := res.ExitHeaders["Content-Type"]; !slices.Equal(got, []string{"application/json"}) {
		t.Errorf("Content-Type = %q", got)
	}
	want := []string{"kong.request.get_header", "kong.response.exit"}
	if !slices.Equal(res.Calls, want) {
		t.Errorf("calls = %v, want %v", res.Calls, want)
	}
	if len(res.UpstreamSet) != 0 || res.KongError != "" {
		t.Errorf("unexpected upstream/kong error: %v %q", res.UpstreamSet, res.KongError)
	}
	// The plugin server keeps working after an exit (the exit connection is
	// dropped, as in Kong).
	for i := 0; i < 3; i++ {
		res = mustEvent(t, s, id, "access", Request{Headers: map[string][]string{"Authorization": {"Bearer t"}}})
		if res.Exited {
			t.Fatalf("iteration %d exited with %d", i, res.Status)
		}
	}
}

func TestPassThroughUpstreamHeaders(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"token_header":"X-Jwt","instance_tag":"t1","clear_headers":["Cookie","x-remove"]}`)
	in := Request{
		Method: "post",
		Path:   "/orders",
		Headers: map[string][]string{
			"authorization": {"Bearer abc.def"},
			"Cookie":        {"session=1"},
			"X-Remove":      {"1", "2"},
			"X-Keep":        {"k"},
		},
	}
	res := mustEvent(t, s, id, "access", in)
	if res.Exited {
		t.Fatalf("unexpected exit %d %s", res.Status, res.Body)
	}
	if got := res.UpstreamSet["X-Jwt"]; !slices.Equal(got, []string{"abc.def"}) {
		t.Errorf("X-Jwt = %q", got)
	}
	if got := res.UpstreamSet["X-Instance"]; !slices.Equal(got, []string{"t1"}) {
		t.Errorf("X-Instance = %q", got)
	}
	if !slices.Equal(res.UpstreamCleared, []string{"Cookie", "X-Remove"}) {
		t.Errorf("cleared = %v", res.UpstreamCleared)
	}
	up := s.UpstreamHeaders(res, in)
	if up.Get("Authorization") != "Bearer abc.def" || up.Get("X-Keep") != "k" || up.Get("X-Jwt") != "abc.def" {
		t.Errorf("upstream headers = %v", up)
	}
	if _, ok := up["Cookie"]; ok {
		t.Errorf("Cookie not cleared: %v", up)
	}
	if _, ok := up["X-Remove"]; ok {
		t.Errorf("X-Remove not cleared: %v", up)
	}
	if !slices.Contains(res.Logs, "[info] authorized token abc.def") {
		t.Errorf("logs = %v", res.Logs)
	}
}

const aliceID = "6a1f0b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b"

func TestConsumerAuthenticate(t *testing.T) {
	s := startSample(t)
	consumers := []Consumer{
		{ID: aliceID, Username: "alice", CustomID: "a-1", CreatedAt: 1700000001},
		{ID: "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", Username: "bob"},
	}
	req := Request{Headers: map[string][]string{"Authorization": {"Bearer tok"}}, Consumers: consumers}

	byName := mustInstance(t, s, `{"load_consumer":"alice","by_username":true}`)
	res := mustEvent(t, s, byName, "access", req)
	if res.Exited {
		t.Fatalf("exit %d %s", res.Status, res.Body)
	}
	c := res.AuthenticatedConsumer
	if c == nil || c.ID != aliceID || c.Username != "alice" || c.CustomID != "a-1" || c.CreatedAt != 1700000001 {
		t.Fatalf("consumer = %+v", c)
	}
	if cr := res.AuthenticatedCredential; cr == nil || cr.ID != "cred-tok" || cr.ConsumerID != aliceID {
		t.Errorf("credential = %+v", cr)
	}
	if res.ContextShared["sample.consumer"] != "alice" {
		t.Errorf("ctx.shared = %v", res.ContextShared)
	}
	if got := res.UpstreamSet["X-Consumer-Username"]; !slices.Equal(got, []string{"alice"}) {
		t.Errorf("X-Consumer-Username = %q", got)
	}

	// By id (a UUID), no username search.
	byID := mustInstance(t, s, `{"load_consumer":"`+aliceID+`"}`)
	res = mustEvent(t, s, byID, "access", req)
	if res.AuthenticatedConsumer == nil || res.AuthenticatedConsumer.Username != "alice" {
		t.Fatalf("by id: consumer = %+v", res.AuthenticatedConsumer)
	}

	// Unknown consumer: Kong answers nil, the plugin sees an empty Consumer.
	unknown := mustInstance(t, s, `{"load_consumer":"carol","by_username":true}`)
	res = mustEvent(t, s, unknown, "access", req)
	if !res.Exited || res.Status != 403 || res.AuthenticatedConsumer != nil {
		t.Fatalf("unknown consumer: exited=%v status=%d consumer=%+v", res.Exited, res.Status, res.AuthenticatedConsumer)
	}

	// A non-UUID id without username search makes Kong raise an error.
	bad := mustInstance(t, s, `{"load_consumer":"alice"}`)
	res, err := s.HandleEvent(bad, "access", req)
	var ke *KongError
	if !errors.As(err, &ke) || !strings.Contains(ke.Message, "not a uuid") {
		t.Fatalf("err = %v", err)
	}
	if !res.Exited || res.Status != 500 || !strings.Contains(res.KongError, "not a uuid") {
		t.Errorf("result = exited %v status %d kongerr %q", res.Exited, res.Status, res.KongError)
	}
}

func TestCallsCounting(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"clear_headers":["A","B","C"],"load_consumer":"bob","by_username":true}`)
	res := mustEvent(t, s, id, "access", Request{
		Headers:   map[string][]string{"Authorization": {"Bearer x"}},
		Consumers: []Consumer{{ID: aliceID, Username: "bob"}},
	})
	want := []string{
		"kong.request.get_header",
		"kong.service.request.set_headers",
		"kong.service.request.clear_header",
		"kong.service.request.clear_header",
		"kong.service.request.clear_header",
		"kong.client.load_consumer",
		"kong.client.authenticate",
		"kong.ctx.shared.set",
		"kong.service.request.set_header",
		"kong.log.info",
	}
	if !slices.Equal(res.Calls, want) {
		t.Errorf("calls:\n got %v\nwant %v", res.Calls, want)
	}
	if n := res.Count("kong.service.request.clear_header"); n != 3 {
		t.Errorf("clear_header count = %d", n)
	}
	if !res.Called("kong.client.authenticate") || res.Called("kong.response.exit") {
		t.Error("Called() mismatch")
	}
}

func TestTwoInstances(t *testing.T) {
	s := startSample(t)
	id1 := mustInstance(t, s, `{"token_header":"X-A","instance_tag":"one"}`)
	id2 := mustInstance(t, s, `{"token_header":"X-B","instance_tag":"two"}`)
	if id1 == id2 {
		t.Fatalf("same id %d", id1)
	}
	req := Request{Headers: map[string][]string{"Authorization": {"Bearer z"}}}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		for _, tc := range []struct {
			id        int
			hdr, inst string
		}{{id1, "X-A", "one"}, {id2, "X-B", "two"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := s.HandleEvent(tc.id, "access", req)
				if err != nil {
					t.Error(err)
					return
				}
				if got := res.UpstreamSet[tc.hdr]; !slices.Equal(got, []string{"z"}) {
					t.Errorf("instance %d: %s = %q (%v)", tc.id, tc.hdr, got, res.UpstreamSet)
				}
				if got := res.UpstreamSet["X-Instance"]; !slices.Equal(got, []string{tc.inst}) {
					t.Errorf("instance %d: X-Instance = %q", tc.id, got)
				}
			}()
		}
	}
	wg.Wait()
}

func TestCloseInstance(t *testing.T) {
	s := startSample(t)
	id1 := mustInstance(t, s, `{}`)
	id2 := mustInstance(t, s, `{}`)
	if err := s.CloseInstance(id1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InstanceStatus(id1); err == nil || !strings.Contains(err.Error(), "no plugin instance") {
		t.Errorf("status after close: %v", err)
	}
	_, err := s.HandleEvent(id1, "access", Request{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no plugin instance %d", id1)) {
		t.Errorf("event after close: %v", err)
	}
	if err := s.CloseInstance(id1); err == nil {
		t.Error("closing twice succeeded")
	}
	// The other instance is unaffected.
	res := mustEvent(t, s, id2, "access", Request{})
	if !res.Exited || res.Status != 401 {
		t.Errorf("instance 2: %+v", res)
	}
}

func TestUnhandledMethod(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"probe":"unknown"}`)
	res, err := s.HandleEvent(id, "access", Request{})
	var ke *KongError
	if !errors.As(err, &ke) {
		t.Fatalf("err = %v", err)
	}
	if !slices.Equal(res.Unhandled, []string{"kong.request.get_forwarded_path"}) {
		t.Errorf("unhandled = %v", res.Unhandled)
	}
	if !res.Exited || res.Status != 500 || res.Called("kong.service.request.set_header") {
		t.Errorf("result = %+v", res)
	}
	// Still usable.
	id2 := mustInstance(t, s, `{}`)
	mustEvent(t, s, id2, "access", Request{})
}

func TestGetters(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"probe":"getters"}`)
	req := Request{
		Method:   "PUT",
		Scheme:   "https",
		Host:     "API.Example.com",
		Port:     8443,
		Path:     "/a/./b//c/%7Euser",
		RawQuery: "q=hello%20world&q=2&flag&e=",
		Headers: map[string][]string{
			"X-Multi":          {"m1", "m2"},
			"X-Forwarded-Host": {"public.example.org:9443"},
			"X-Real-IP":        {"203.0.113.9"},
		},
		Body:                    []byte("payload"),
		ClientIP:                "10.1.2.3",
		TrustedIPs:              []string{"10.0.0.0/8"},
		AuthenticatedConsumer:   &Consumer{ID: aliceID, Username: "pre"},
		AuthenticatedCredential: &Credential{ID: "pc"},
		Shared:                  map[string]any{"preset": []string{"a", "b"}},
	}
	res := mustEvent(t, s, id, "access", req)
	got := func(k string) string {
		v := res.UpstreamSet[k]
		if len(v) != 1 {
			t.Errorf("%s = %q", k, v)
			return ""
		}
		return v[0]
	}
	want := map[string]string{
		"X-Method":          "PUT",
		"X-Scheme":          "https",
		"X-Host":            "api.example.com",
		"X-Port":            "8443",
		"X-Path":            "/a/b/c/~user",
		"X-Raw-Query":       "q=hello%20world&q=2&flag&e=",
		"X-Path-With-Query": "/a/./b//c/%7Euser?q=hello%20world&q=2&flag&e=",
		"X-Query-Q":         "hello world",
		"X-Headers-Max2":    "2",
		"X-Multi":           "m1, m2",
		"X-Fwd-Host":        "public.example.org",
		"X-Fwd-Scheme":      "https",
		"X-Fwd-Port":        "9443",
		"X-Http-Version":    "1.1",
		"X-Body":            "payload",
		"X-Client-Ip":       "10.1.2.3",
		"X-Client-Fwd-Ip":   "203.0.113.9",
		"X-Client-Port":     "54321",
		"X-Protocol":        "https",
		"X-Pre-Consumer":    "pre",
		"X-Pre-Credential":  "pc",
		"X-Route":           "kongsim-route|" + defaultService.Id,
		"X-Service":         "kongsim-service|upstream.kongsim.test|80",
		"X-Node-Id":         s.opts.nodeID,
		"X-Mem":             "5242880",
		"X-Var-Request-Uri": "/a/./b//c/%7Euser?q=hello%20world&q=2&flag&e=",
		"X-Var-Missing":     "",
		"X-Subsystem":       "http",
		"X-Start-Positive":  "true",
		"X-Trusted":         "true",
		"X-Shared-Preset":   `["a","b"]`,
		"X-Shared-Missing":  "null",
	}
	for k, w := range want {
		if g := got(k); g != w {
			t.Errorf("%s = %q, want %q", k, g, w)
		}
	}
	// get_query: go-pdk keeps strings and string lists; the valueless "flag"
	// (Lua true) is dropped by go-pdk's UnwrapHeaders.
	var q map[string][]string
	if err := json.Unmarshal([]byte(got("X-Query")), &q); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q["q"], []string{"hello world", "2"}) || !slices.Equal(q["e"], []string{""}) {
		t.Errorf("query = %v", q)
	}
	if _, ok := q["flag"]; ok {
		t.Errorf("flag should have been dropped by go-pdk: %v", q)
	}
	var h map[string][]string
	if err := json.Unmarshal([]byte(got("X-Headers")), &h); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h["x-multi"], []string{"m1", "m2"}) || !slices.Equal(h["host"], []string{"api.example.com:8443"}) {
		t.Errorf("headers = %v", h)
	}
}

func TestCtxLogsAndSerialize(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"probe":"ctx"}`)
	res := mustEvent(t, s, id, "access", Request{Shared: map[string]any{"in": "hello"}})
	if res.ContextShared["out"] != "got:hello" || res.ContextShared["num"] != float64(42) || res.ContextShared["in"] != "hello" {
		t.Errorf("ctx.shared = %v", res.ContextShared)
	}
	if res.NginxCtx["nctx"] != "n1" || res.UpstreamSet["X-Nginx-Ctx"][0] != "n1" {
		t.Errorf("nginx ctx = %v / %v", res.NginxCtx, res.UpstreamSet)
	}
	if !slices.Contains(res.Logs, "[warn] count=3 ok=true") {
		t.Errorf("logs = %q", res.Logs)
	}
	if res.SerializeValues["custom.field"] != "v1" {
		t.Errorf("serialize values = %v", res.SerializeValues)
	}
	if l := res.UpstreamSet["X-Serialized-Len"]; len(l) != 1 || l[0] == "0" {
		t.Errorf("serialize len = %v", l)
	}
}

func TestPhases(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{}`)
	res := mustEvent(t, s, id, "rewrite", Request{})
	if !slices.Equal(res.Logs, []string{"[debug] rewrite done"}) {
		t.Errorf("logs = %v", res.Logs)
	}

	// kong.client.authenticate is access-only: Kong raises in rewrite.
	bad := mustInstance(t, s, `{"probe":"rewrite_auth"}`)
	res, err := s.HandleEvent(bad, "rewrite", Request{})
	var ke *KongError
	if !errors.As(err, &ke) || !strings.Contains(ke.Message, "cannot be called in rewrite phase") {
		t.Fatalf("err = %v", err)
	}
	if res.Status != 500 {
		t.Errorf("status = %d", res.Status)
	}

	// Phases the plugin does not implement are refused (Kong never sends them).
	if _, err := s.HandleEvent(id, "certificate", Request{}); err == nil {
		t.Error("certificate phase accepted")
	}
}

func TestResponseAndLogPhases(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{}`)
	sr := &ServiceResponse{
		Status:  201,
		Headers: map[string][]string{"X-Upstream": {"u1"}, "X-Secret": {"s"}},
		Body:    []byte("created"),
	}
	res := mustEvent(t, s, id, "response", Request{ServiceResponse: sr})
	if got := res.ResponseHeaders["X-Seen"]; !slices.Equal(got, []string{"201|u1|created|201|service"}) {
		t.Errorf("X-Seen = %q", got)
	}
	if got := res.ResponseHeaders["X-Multi"]; !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("X-Multi = %q", got)
	}
	if !slices.Equal(res.ResponseCleared, []string{"X-Secret"}) || res.Exited {
		t.Errorf("cleared = %v exited = %v", res.ResponseCleared, res.Exited)
	}

	res = mustEvent(t, s, id, "response", Request{ServiceResponse: &ServiceResponse{Status: 503}})
	if !res.Exited || res.Status != 502 || string(res.Body) != "bad gateway" {
		t.Errorf("exit = %v %d %q", res.Exited, res.Status, res.Body)
	}

	res = mustEvent(t, s, id, "log", Request{
		AuthenticatedConsumer: &Consumer{ID: aliceID, Username: "alice"},
		ServiceResponse:       sr,
	})
	if !slices.Equal(res.Logs, []string{"[notice] served alice true"}) {
		t.Errorf("logs = %q", res.Logs)
	}
}

func TestPluginCrash(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"probe":"panic"}`)
	_, err := s.HandleEvent(id, "access", Request{})
	if err == nil || !strings.Contains(err.Error(), "sampleplugin: boom") {
		t.Fatalf("err = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Exited() {
		t.Error("plugin process still running after panic")
	}
	if !strings.Contains(s.Output(), "panic: sampleplugin: boom") {
		t.Errorf("output = %s", s.Output())
	}
}

func TestConcurrentEvents(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{}`)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := fmt.Sprintf("tok-%d", i)
			req := Request{}
			if i%3 != 0 {
				req.Headers = map[string][]string{"Authorization": {"Bearer " + tok}}
			}
			res, err := s.HandleEvent(id, "access", req)
			if err != nil {
				t.Error(err)
				return
			}
			if i%3 == 0 {
				if res.Status != 401 {
					t.Errorf("%d: status %d", i, res.Status)
				}
				return
			}
			if got := res.UpstreamSet["X-Token"]; !slices.Equal(got, []string{tok}) {
				t.Errorf("%d: X-Token = %q", i, got)
			}
		}()
	}
	wg.Wait()
}

func TestStartErrors(t *testing.T) {
	if _, err := Start("/nonexistent/plugin"); err == nil {
		t.Error("Start of a missing binary succeeded")
	}
	s := startSample(t, WithLogOutput(tLogWriter{t}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Exited() {
		t.Error("process still running after Close")
	}
	if _, err := os.Stat(s.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("socket dir not removed: %v", err)
	}
	if _, err := s.StartInstance("sampleplugin", []byte(`{}`)); err == nil {
		t.Error("StartInstance after Close succeeded")
	}
}

func TestMethodTable(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"Kong", "Client_GetIp"}:               "kong.client.get_ip",
		{"Kong", "Nginx_GetTls1VersionStr"}:    "kong.nginx.get_tls1_version_str",
		{"Kong", "Service_Request_SetRawBody"}: "kong.service.request.set_raw_body",
		{"Kong", "Request_GetPathWithQuery"}:   "kong.request.get_path_with_query",
	} {
		if got := luaMethodName(in[0], in[1]); got != want {
			t.Errorf("luaMethodName(%v) = %q, want %q", in, got, want)
		}
	}
	if pdkInitErr != nil {
		t.Fatal(pdkInitErr)
	}
	for name, m := range pdkMethods {
		if m.handler == nil {
			t.Errorf("proto method %s (%s) has no handler", name, m.rpc)
		}
	}
	for name := range handlers {
		if _, ok := pdkMethods[name]; !ok {
			t.Errorf("handler %s matches no proto method", name)
		}
	}
	for _, n := range []string{"kong.ctx.shared.get", "kong.ctx.shared.set", "kong.response.exit"} {
		if !slices.Contains(SupportedMethods(), n) {
			t.Errorf("%s not supported", n)
		}
	}
}

func TestHelpers(t *testing.T) {
	args := argsTable(parseArgs("a=1&a=2&b&c=&d=x+y%21&=skip", 100))
	if fmt.Sprint(args["a"]) != "[1 2]" || args["b"] != true || args["c"] != "" || args["d"] != "x y!" || len(args) != 4 {
		t.Errorf("args = %#v", args)
	}
	for in, want := range map[string]string{
		"/":                 "/",
		"/a/../b/":          "/b/",
		"//x//y":            "/x/y",
		"/t/Abc%20123%2f/.": "/t/Abc 123%2F/",
		"/%7e%41":           "/~A",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
	l := newHeaderList(map[string][]string{"Cookie": {"a=1", "b=2"}, "X-Y": {"1", "2"}})
	if v, _ := l.get("cookie"); v != "a=1; b=2" {
		t.Errorf("cookie = %q", v)
	}
	if v, _ := l.get("x_y"); v != "1, 2" {
		t.Errorf("x_y = %q", v)
	}
	if luaToString(3.0) != "3" || luaToString(0.5) != "0.5" || luaToString(nil) != "nil" {
		t.Error("luaToString")
	}
}
