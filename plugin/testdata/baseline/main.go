// Command baseline is a go-pdk plugin that makes the same PDK calls as
// keycloak-jwt's allow path (get_headers, then one set_headers) without
// checking anything. Benchmarks subtract it to isolate the engine's cost
// from the plugin-server round trips.
package main

import (
	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
)

// Config is empty: the baseline has nothing to configure.
type Config struct{}

// New is the go-pdk constructor.
func New() interface{} { return &Config{} }

// Access reads the headers and writes one upstream header.
func (c *Config) Access(kong *pdk.PDK) {
	h, err := kong.Request.GetHeaders(200)
	if err != nil {
		return
	}
	// The same four identity headers, with values of the same size.
	_ = kong.ServiceRequest.SetHeaders(map[string][]string{
		"X-Client-Id":      {first(h["authorization"])},
		"X-Client-Subject": {"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
		"X-Client-Scopes":  {"profile email orders:read orders:write"},
		"X-Client-Roles":   {"default-roles-demo,offline_access,uma_authorization,account:manage-account,account:manage-account-links,account:view-profile,orders-api:reader,orders-api:writer"},
	})
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0][:min(len(v[0]), 16)]
}

func main() { _ = server.StartServer(New, "0.0.0", 1000) }
