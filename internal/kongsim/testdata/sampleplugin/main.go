// Command sampleplugin is a tiny go-pdk plugin used to test kongsim. It is
// under testdata/ so that "go build ./..." and "go vet ./..." skip it.
package main

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/server"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/types/known/structpb"
)

// Version and Priority are reported through -dump.
const (
	Version  = "0.1.0"
	Priority = 1005
)

// Config is the plugin configuration.
type Config struct {
	Realm        string   `json:"realm"`
	TokenHeader  string   `json:"token_header"`  // upstream header receiving the bearer token
	InstanceTag  string   `json:"instance_tag"`  // sent upstream as X-Instance
	ClearHeaders []string `json:"clear_headers"` // removed from the upstream request
	// LoadConsumer, when set, is looked up with load_consumer(value, by_username)
	// and authenticated.
	LoadConsumer string `json:"load_consumer"`
	ByUsername   bool   `json:"by_username"`
	// Probe selects test behaviours: "getters", "unknown", "ctx", "rewrite_auth".
	Probe string `json:"probe"`
}

// New is the constructor passed to the plugin server.
func New() interface{} { return &Config{} }

// Access implements the access phase.
func (c *Config) Access(kong *pdk.PDK) {
	switch c.Probe {
	case "getters":
		c.getters(kong)
		return
	case "panic":
		panic("sampleplugin: boom")
	case "unknown":
		out := new(kong_plugin_protocol.String)
		if err := kong.Request.Ask("kong.request.get_forwarded_path", nil, out); err != nil {
			_ = kong.Log.Err("ask: ", err.Error())
		}
		_ = kong.ServiceRequest.SetHeader("X-After-Unknown", "yes")
		return
	case "ctx":
		v, _ := kong.Ctx.GetSharedString("in")
		_ = kong.Ctx.SetShared("out", "got:"+v)
		_ = kong.Ctx.SetShared("num", 42)
		_ = kong.Nginx.SetCtx("nctx", "n1")
		n, _ := kong.Nginx.GetCtxString("nctx")
		_ = kong.ServiceRequest.SetHeader("X-Nginx-Ctx", n)
		_ = kong.Log.Warn("count=", 3, " ok=", true)
		// go-pdk 0.11 has no wrapper for kong.log.set_serialize_value.
		_ = kong.Log.Ask("kong.log.set_serialize_value",
			&kong_plugin_protocol.KV{K: "custom.field", V: structpb.NewStringValue("v1")}, nil)
		s, _ := kong.Log.Serialize()
		_ = kong.ServiceRequest.SetHeader("X-Serialized-Len", strconv.Itoa(len(s)))
		return
	}

	auth, err := kong.Request.GetHeader("Authorization")
	if err != nil {
		_ = kong.Log.Err("get_header failed: ", err.Error())
	}
	if auth == "" {
		kong.Response.Exit(401, []byte(`{"message":"Unauthorized"}`), map[string][]string{
			"WWW-Authenticate": {`Bearer realm="` + c.Realm + `"`},
			"Content-Type":     {"application/json"},
		})
		return
	}
	token := strings.TrimSpace(strings.TrimPrefix(auth, "Bearer "))

	hdrName := c.TokenHeader
	if hdrName == "" {
		hdrName = "X-Token"
	}
	if err := kong.ServiceRequest.SetHeaders(map[string][]string{
		hdrName:      {token},
		"X-Instance": {c.InstanceTag},
	}); err != nil {
		_ = kong.Log.Err("set_headers: ", err.Error())
	}
	for _, h := range c.ClearHeaders {
		_ = kong.ServiceRequest.ClearHeader(h)
	}

	if c.LoadConsumer != "" {
		consumer, err := kong.Client.LoadConsumer(c.LoadConsumer, c.ByUsername)
		if err != nil || consumer.Id == "" {
			kong.Response.Exit(403, []byte(`{"message":"unknown consumer"}`), nil)
			return
		}
		cred := client.AuthenticatedCredential{Id: "cred-" + token, ConsumerId: consumer.Id}
		if err := kong.Client.Authenticate(&consumer, &cred); err != nil {
			_ = kong.Log.Err("authenticate: ", err.Error())
		}
		_ = kong.Ctx.SetShared("sample.consumer", consumer.Username)
		_ = kong.ServiceRequest.SetHeader("X-Consumer-Username", consumer.Username)
	}
	_ = kong.Log.Info("authorized token ", token)
}

// Rewrite implements the rewrite phase.
func (c *Config) Rewrite(kong *pdk.PDK) {
	if c.Probe == "rewrite_auth" {
		// Not allowed in rewrite: Kong raises an error.
		_ = kong.Client.Authenticate(nil, &client.AuthenticatedCredential{Id: "x"})
	}
	_ = kong.Log.Debug("rewrite done")
}

// Response implements the response phase (buffered proxying).
func (c *Config) Response(kong *pdk.PDK) {
	st, _ := kong.ServiceResponse.GetStatus()
	up, _ := kong.ServiceResponse.GetHeader("X-Upstream")
	body, _ := kong.ServiceResponse.GetRawBody()
	rs, _ := kong.Response.GetStatus()
	src, _ := kong.Response.GetSource()
	_ = kong.Response.SetHeader("X-Seen", strconv.Itoa(st)+"|"+up+"|"+string(body)+"|"+strconv.Itoa(rs)+"|"+src)
	_ = kong.Response.AddHeader("X-Multi", "1")
	_ = kong.Response.AddHeader("X-Multi", "2")
	_ = kong.Response.ClearHeader("X-Secret")
	if st >= 500 {
		kong.Response.Exit(502, []byte("bad gateway"), nil)
	}
}

// Log implements the log phase.
func (c *Config) Log(kong *pdk.PDK) {
	s, _ := kong.Log.Serialize()
	cons, _ := kong.Client.GetConsumer()
	_ = kong.Log.Notice("served ", cons.Username, " ", len(s) > 0)
}

// getters calls many PDK getters and reports the answers as upstream headers.
func (c *Config) getters(kong *pdk.PDK) {
	set := map[string][]string{}
	put := func(k string, v string, err error) {
		if err != nil {
			v = "ERR:" + err.Error()
		}
		set[k] = []string{v}
	}
	putJSON := func(k string, v any, err error) {
		b, _ := json.Marshal(v)
		put(k, string(b), err)
	}
	s, err := kong.Request.GetMethod()
	put("X-Method", s, err)
	s, err = kong.Request.GetScheme()
	put("X-Scheme", s, err)
	s, err = kong.Request.GetHost()
	put("X-Host", s, err)
	n, err := kong.Request.GetPort()
	put("X-Port", strconv.Itoa(n), err)
	s, err = kong.Request.GetPath()
	put("X-Path", s, err)
	s, err = kong.Request.GetRawQuery()
	put("X-Raw-Query", s, err)
	s, err = kong.Request.GetPathWithQuery()
	put("X-Path-With-Query", s, err)
	s, err = kong.Request.GetQueryArg("q")
	put("X-Query-Q", s, err)
	q, err := kong.Request.GetQuery(-1)
	putJSON("X-Query", q, err)
	h, err := kong.Request.GetHeaders(-1)
	putJSON("X-Headers", h, err)
	h, err = kong.Request.GetHeaders(2)
	put("X-Headers-Max2", strconv.Itoa(len(h)), err)
	s, err = kong.Request.GetHeader("x_multi")
	put("X-Multi", s, err)
	s, err = kong.Request.GetForwardedHost()
	put("X-Fwd-Host", s, err)
	s, err = kong.Request.GetForwardedScheme()
	put("X-Fwd-Scheme", s, err)
	n, err = kong.Request.GetForwardedPort()
	put("X-Fwd-Port", strconv.Itoa(n), err)
	f, err := kong.Request.GetHttpVersion()
	put("X-Http-Version", strconv.FormatFloat(f, 'f', -1, 64), err)
	b, err := kong.Request.GetRawBody()
	put("X-Body", string(b), err)
	s, err = kong.Client.GetIp()
	put("X-Client-Ip", s, err)
	s, err = kong.Client.GetForwardedIp()
	put("X-Client-Fwd-Ip", s, err)
	n, err = kong.Client.GetPort()
	put("X-Client-Port", strconv.Itoa(n), err)
	s, err = kong.Client.GetProtocol(true)
	put("X-Protocol", s, err)
	cons, err := kong.Client.GetConsumer()
	put("X-Pre-Consumer", cons.Username, err)
	cred, err := kong.Client.GetCredential()
	put("X-Pre-Credential", cred.Id, err)
	route, err := kong.Router.GetRoute()
	put("X-Route", route.Name+"|"+route.Service.Id, err)
	svc, err := kong.Router.GetService()
	put("X-Service", svc.Name+"|"+svc.Host+"|"+strconv.Itoa(svc.Port), err)
	s, err = kong.Node.GetId()
	put("X-Node-Id", s, err)
	ms, err := kong.Node.GetMemoryStats()
	put("X-Mem", strconv.FormatInt(ms.LuaSharedDicts.Kong.Capacity, 10), err)
	s, err = kong.Nginx.GetVar("request_uri")
	put("X-Var-Request-Uri", s, err)
	s, err = kong.Nginx.GetVar("no_such_var")
	put("X-Var-Missing", s, err)
	s, err = kong.Nginx.GetSubsystem()
	put("X-Subsystem", s, err)
	f, err = kong.Nginx.ReqStartTime()
	put("X-Start-Positive", strconv.FormatBool(f > 0), err)
	ok, err := kong.IP.IsTrusted("10.1.2.3")
	put("X-Trusted", strconv.FormatBool(ok), err)
	v, err := kong.Ctx.GetSharedAny("preset")
	putJSON("X-Shared-Preset", v, err)
	v, err = kong.Ctx.GetSharedAny("missing")
	putJSON("X-Shared-Missing", v, err)
	_ = kong.ServiceRequest.SetHeaders(set)
}

func main() {
	_ = server.StartServer(New, Version, Priority)
}
