// Command keycloak-jwt is the Kong plugin server of the keycloak-jwt plugin
// (go-pdk embedded server). Kong starts it with -kong-prefix and queries its
// schema with -dump. go-pdk names the plugin after this executable (and its
// socket <prefix>/<name>.socket), so the binary must be called keycloak-jwt.
//
// -log-level sets the plugin's log level (debug, info, warn, error; default
// info, or KEYCLOAK_JWT_LOG_LEVEL). Under Kong, put it in the start command:
// nginx clears the environment of the process that starts the plugin server.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/Kong/go-pdk/server"

	"github.com/keycloak-jwt/keycloak-jwt/plugin"
)

func main() {
	level := flag.String("log-level", "", "log level: debug, info, warn or error (default info, or $KEYCLOAK_JWT_LOG_LEVEL)")
	// go-pdk parses the same command line again in StartServer.
	flag.Parse()
	if *level != "" {
		if err := plugin.SetLogLevel(*level); err != nil {
			fmt.Fprintln(os.Stderr, "keycloak-jwt:", err)
			os.Exit(2)
		}
	}
	_ = server.StartServer(plugin.New, plugin.Version, plugin.Priority)
}
