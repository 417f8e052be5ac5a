// Command sampleplugin is a tiny go-pdk plugin used to test kongsim: it makes
// the PDK calls kongsim answers (those of the keycloak-jwt plugin) and a few
// it does not. It is under testdata/ so that "go build ./..." and "go vet
// ./..." skip it.
package main

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/server"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
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
	EmptyHeaders []string `json:"empty_headers"` // set to no value (removed) upstream
	// LoadConsumer, when set, is looked up with load_consumer(value, by_username)
	// and authenticated.
	LoadConsumer string `json:"load_consumer"`
	ByUsername   bool   `json:"by_username"`
	// MaxHeaders is what the "max_headers" probe asks get_headers for.
	MaxHeaders int `json:"max_headers"`
	// Probe selects test behaviours: "getters", "unknown", "unsimulated",
	// "max_headers", "bad_exit", "authenticate_nothing", "panic",
	// "rewrite_auth".
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
	case "unknown", "unsimulated":
		if c.Probe == "unknown" {
			// Not a PDK method at all.
			out := new(kong_plugin_protocol.String)
			_ = kong.Request.Ask("kong.request.get_forwarded_path", nil, out)
		} else {
			// A PDK method kongsim does not simulate.
			_, _ = kong.Request.GetScheme()
		}
		_ = kong.ServiceRequest.SetHeaders(map[string][]string{"X-After": {"yes"}})
		return
	case "max_headers":
		_, _ = kong.Request.GetHeaders(c.MaxHeaders)
		return
	case "bad_exit":
		kong.Response.Exit(99, nil, nil)
		return
	case "authenticate_nothing":
		// go-pdk's Authenticate refuses this itself; Kong does too.
		_ = kong.Client.Ask("kong.client.authenticate", &kong_plugin_protocol.AuthenticateArgs{}, nil)
		return
	}

	in, err := kong.Request.GetHeaders(-1)
	if err != nil {
		_ = kong.Log.Err("get_headers failed: ", err.Error())
	}
	var auth string
	if v := in["authorization"]; len(v) > 0 {
		auth = v[0]
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
	set := map[string][]string{hdrName: {token}, "X-Instance": {c.InstanceTag}}
	for _, h := range c.EmptyHeaders {
		set[h] = []string{}
	}
	if err := kong.ServiceRequest.SetHeaders(set); err != nil {
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
		_ = kong.ServiceRequest.SetHeaders(map[string][]string{"X-Consumer-Username": {consumer.Username}})
	}
	// Numbers and booleans are formatted as Lua's tostring does.
	_ = kong.Log.Err("authorized token ", token, " (", 2, " ", true, ")")
}

// Rewrite implements the rewrite phase.
func (c *Config) Rewrite(kong *pdk.PDK) {
	if c.Probe == "rewrite_auth" {
		// Not allowed in rewrite: Kong raises an error.
		_ = kong.Client.Authenticate(nil, &client.AuthenticatedCredential{Id: "x"})
	}
	_ = kong.Log.Err("rewrite done")
}

// getters calls the PDK getters and reports the answers as upstream headers.
func (c *Config) getters(kong *pdk.PDK) {
	set := map[string][]string{}
	put := func(k string, v string, err error) {
		if err != nil {
			v = "ERR:" + err.Error()
		}
		set[k] = []string{v}
	}
	s, err := kong.Request.GetMethod()
	put("X-Method", s, err)
	s, err = kong.Request.GetPath()
	put("X-Path", s, err)
	s, err = kong.Request.GetRawQuery()
	put("X-Raw-Query", s, err)
	h, err := kong.Request.GetHeaders(-1)
	b, _ := json.Marshal(h)
	put("X-Headers", string(b), err)
	h, err = kong.Request.GetHeaders(2)
	put("X-Headers-Max2", strconv.Itoa(len(h)), err)
	cred, err := kong.Client.GetCredential()
	put("X-Pre-Credential", cred.Id+"|"+cred.ConsumerId, err)
	_ = kong.ServiceRequest.SetHeaders(set)
}

func main() {
	_ = server.StartServer(New, Version, Priority)
}
