package kongsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

const samplePkg = "./internal/kongsim/testdata/sampleplugin"

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}

func startSample(t *testing.T) *Server {
	t.Helper()
	bin := Build(t, samplePkg)
	s, err := Start(bin)
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

func TestStartInstance(t *testing.T) {
	s := startSample(t)
	if !strings.HasSuffix(s.socket, "/sampleplugin.socket") {
		t.Errorf("socket %q", s.socket)
	}
	id := mustInstance(t, s, `{"realm":"r1","token_header":"X-Jwt"}`)
	if id != 1 {
		t.Errorf("first instance id = %d, want 1 (Kong's __seq__)", id)
	}

	// A config the plugin cannot decode: go-pdk drops the connection and logs.
	_, err := s.StartInstance("sampleplugin", []byte(`{"realm":5}`))
	if err == nil || !strings.Contains(err.Error(), "decoding config") {
		t.Fatalf("bad config error = %v", err)
	}
	// So does an event for an instance that does not exist.
	if _, err := s.HandleEvent(999, "access", Request{}); err == nil || !strings.Contains(err.Error(), "no plugin instance 999") {
		t.Errorf("event for a missing instance: %v", err)
	}
	// The server is still usable afterwards.
	if id2 := mustInstance(t, s, `{}`); id2 == id {
		t.Errorf("second instance reused id %d", id2)
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
	want := []string{"kong.request.get_headers", "kong.response.exit"}
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
	id := mustInstance(t, s, `{"token_header":"X-Jwt","instance_tag":"t1","clear_headers":["Cookie","x-remove"],"empty_headers":["x-empty"]}`)
	in := Request{
		Method: "post",
		Path:   "/orders",
		Headers: map[string][]string{
			"authorization": {"Bearer abc.def"},
			"Cookie":        {"session=1"},
			"X-Remove":      {"1", "2"},
			"X-Keep":        {"k"},
			"X-Empty":       {"e"},
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
	// set_headers with an empty list removes the header, like clear_header.
	if !slices.Equal(res.UpstreamCleared, []string{"X-Empty", "Cookie", "X-Remove"}) {
		t.Errorf("cleared = %v", res.UpstreamCleared)
	}
	up := s.UpstreamHeaders(res, in)
	if up.Get("Authorization") != "Bearer abc.def" || up.Get("X-Keep") != "k" || up.Get("X-Jwt") != "abc.def" {
		t.Errorf("upstream headers = %v", up)
	}
	if _, ok := up["Cookie"]; ok {
		t.Errorf("Cookie not cleared: %v", up)
	}
	for _, h := range []string{"X-Remove", "X-Empty"} {
		if _, ok := up[h]; ok {
			t.Errorf("%s not cleared: %v", h, up)
		}
	}
	if !slices.Equal(res.Logs, []string{"[err] authorized token abc.def (2 true)"}) {
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
		"kong.request.get_headers",
		"kong.service.request.set_headers",
		"kong.service.request.clear_header",
		"kong.service.request.clear_header",
		"kong.service.request.clear_header",
		"kong.client.load_consumer",
		"kong.client.authenticate",
		"kong.service.request.set_headers",
		"kong.log.err",
	}
	if !slices.Equal(res.Calls, want) {
		t.Errorf("calls:\n got %v\nwant %v", res.Calls, want)
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

func TestUnhandledMethod(t *testing.T) {
	s := startSample(t)
	for _, tc := range []struct{ probe, method, msg string }{
		{"unknown", "kong.request.get_forwarded_path", "not found"},
		{"unsimulated", "kong.request.get_scheme", "is not simulated by kongsim"},
	} {
		id := mustInstance(t, s, `{"probe":"`+tc.probe+`"}`)
		res, err := s.HandleEvent(id, "access", Request{})
		var ke *KongError
		if !errors.As(err, &ke) || ke.Method != tc.method || !strings.Contains(ke.Message, tc.msg) ||
			!strings.HasPrefix(err.Error(), "kongsim: Kong aborted the event in "+tc.method+": ") {
			t.Fatalf("%s: err = %v", tc.probe, err)
		}
		if !slices.Equal(res.Unhandled, []string{tc.method}) {
			t.Errorf("%s: unhandled = %v", tc.probe, res.Unhandled)
		}
		if !res.Exited || res.Status != 500 || slices.Contains(res.Calls, "kong.service.request.set_headers") {
			t.Errorf("%s: result = %+v", tc.probe, res)
		}
	}
	// Still usable.
	id := mustInstance(t, s, `{}`)
	mustEvent(t, s, id, "access", Request{})
}

func TestGetters(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{"probe":"getters"}`)
	req := Request{
		Method:   "put",
		Scheme:   "https",
		Host:     "API.Example.com",
		Path:     "/a/./b//c/%7Euser/%2f/../d",
		RawQuery: "?q=hello%20world&q=2&flag&e=",
		Headers: map[string][]string{
			"X-Multi": {"m1", "m2"},
			"x-one":   {"1"},
		},
		AuthenticatedCredential: &Credential{ID: "pc", ConsumerID: aliceID},
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
	for k, w := range map[string]string{
		"X-Method":         "PUT",
		"X-Path":           "/a/b/c/~user/d",
		"X-Raw-Query":      "q=hello%20world&q=2&flag&e=",
		"X-Headers-Max2":   "1", // the first two lines are both x-multi
		"X-Pre-Credential": "pc|" + aliceID,
	} {
		if g := got(k); g != w {
			t.Errorf("%s = %q, want %q", k, g, w)
		}
	}
	var h map[string][]string
	if err := json.Unmarshal([]byte(got("X-Headers")), &h); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"host": {"api.example.com:8443"}, "x-multi": {"m1", "m2"}, "x-one": {"1"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("headers = %v, want %v", h, want)
	}

	// No earlier credential: get_credential answers nil.
	res = mustEvent(t, s, id, "access", Request{})
	if g := got("X-Pre-Credential"); g != "|" {
		t.Errorf("X-Pre-Credential = %q, want empty", g)
	}
}

// TestKongErrors: arguments Kong's PDK refuses abort the event with a 500.
func TestKongErrors(t *testing.T) {
	s := startSample(t)
	for config, msg := range map[string]string{
		`{"probe":"max_headers","max_headers":0}`:    "max_headers must be >= 1",
		`{"probe":"max_headers","max_headers":1001}`: "max_headers must be <= 1000",
		`{"probe":"bad_exit"}`:                       "code must be a number between 100 and 599",
		`{"probe":"authenticate_nothing"}`:           "either credential or consumer must be provided",
	} {
		id := mustInstance(t, s, config)
		res, err := s.HandleEvent(id, "access", Request{})
		var ke *KongError
		if !errors.As(err, &ke) || ke.Message != msg || res.Status != 500 || res.KongError != msg {
			t.Errorf("%s: %v (status %d)", config, err, res.Status)
		}
	}
}

func TestPhases(t *testing.T) {
	s := startSample(t)
	id := mustInstance(t, s, `{}`)
	res := mustEvent(t, s, id, "rewrite", Request{})
	if !slices.Equal(res.Logs, []string{"[err] rewrite done"}) {
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
	s := startSample(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Exited() {
		t.Error("process still running after Close")
	}
	if _, err := os.Stat(s.socket); !os.IsNotExist(err) {
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
	for name := range handlers {
		if m, ok := pdkMethods[name]; !ok || m.handler == nil {
			t.Errorf("handler %s matches no proto method", name)
		}
	}
	// What the keycloak-jwt plugin calls (grep plugin/*.go for "kong.").
	for _, n := range []string{
		"kong.client.authenticate", "kong.client.get_credential", "kong.client.load_consumer",
		"kong.log.err", "kong.request.get_headers", "kong.request.get_method", "kong.request.get_path",
		"kong.request.get_raw_query", "kong.response.exit", "kong.service.request.clear_header",
		"kong.service.request.set_headers",
	} {
		if _, ok := handlers[n]; !ok {
			t.Errorf("%s not simulated", n)
		}
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 "/",
		"/a/../b/":          "/b/",
		"//x//y":            "/x/y",
		"/t/Abc%20123%2f/.": "/t/Abc 123%2F/",
		"/%7e%41":           "/~A",
		"/bad%zz%4":         "/bad%zz%4",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
	l := newHeaderList(map[string][]string{"Cookie": {"a=1", "b=2"}, "X-Y": {"1"}})
	if got := fmt.Sprint(l.table(100)); got != "map[cookie:[a=1 b=2] x-y:[1]]" {
		t.Errorf("table = %s", got)
	}
	if got := fmt.Sprint(l.table(1)); got != "map[cookie:[a=1]]" {
		t.Errorf("table(1) = %s", got)
	}
	for _, tc := range []struct {
		in   any
		want string
	}{
		{3.0, "3"}, {0.5, "0.5"}, {1e15, "1e+15"}, {math.Inf(1), "inf"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"},
		{nil, "nil"}, {true, "true"}, {false, "false"}, {"s", "s"}, {[]any{"a"}, "table: 0x00000000"},
	} {
		if got := luaToString(tc.in); got != tc.want {
			t.Errorf("luaToString(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Kong's pb_unwrap: false is nil, a nil ends a list, an empty list is an
	// empty table.
	v, err := structpb.NewValue(map[string]any{
		"s": "x", "n": 2.0, "t": true, "f": false, "null": nil,
		"list": []any{"a", nil, "b"}, "empty": []any{}, "obj": map[string]any{"k": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(luaValue(v)), "map[empty:map[] list:[a] n:2 obj:map[k:v] s:x t:true]"; got != want {
		t.Errorf("luaValue = %s, want %s", got, want)
	}
	if luaValue(nil) != nil || luaValue(structpb.NewNullValue()) != nil {
		t.Error("luaValue of nil or null is not nil")
	}
	// The synthesized Host header leaves out the scheme's default port, and a
	// Host header the client sent is kept.
	for req, want := range map[string]Request{
		"example.com":      {Host: "Example.com", Port: 80},
		"example.com:8443": {Scheme: "https", Host: "example.com"},
		"sent.example":     {Headers: map[string][]string{"HOST": {"sent.example"}}},
	} {
		if got := newEvent("access", want).reqHdr.table(100)["host"]; !slices.Equal(got, []string{req}) {
			t.Errorf("host of %+v = %q, want %q", want, got, req)
		}
	}
	if got := newEvent("access", Request{Scheme: "https", Port: 443}).req.hostHeader(); got != "localhost" {
		t.Errorf("https on 443: host %q", got)
	}
	// Header values as kong.pdk.private.checks validates them.
	for _, tc := range []struct {
		in   any
		want string // fmt.Sprint of the values, or the error
	}{
		{"v", "[v]"},
		{2.5, "[2.5]"},
		{true, "[true]"},
		{[]any{"a", "b"}, "[a b]"},
		{map[string]any{}, "[]"}, // an empty table: the header is removed
		{[]any{"a", 1.0}, `invalid header value in array "X": got number, expected string`},
		{map[string]any{"k": "v"}, `invalid header value for "X": got table, expected array of string, string, number or boolean`},
	} {
		vals, err := headerValues("X", tc.in)
		got := fmt.Sprint(vals)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("headerValues(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
