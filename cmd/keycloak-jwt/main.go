// Command keycloak-jwt is the Kong plugin server of the keycloak-jwt plugin
// (go-pdk embedded server). Kong starts it with -kong-prefix and queries its
// schema with -dump; Kong derives the plugin name from this executable's
// name, so the binary must be called keycloak-jwt.
package main

import (
	"github.com/Kong/go-pdk/server"

	"github.com/keycloak-jwt/keycloak-jwt/plugin"
)

func main() {
	_ = server.StartServer(plugin.New, plugin.Version, plugin.Priority)
}
