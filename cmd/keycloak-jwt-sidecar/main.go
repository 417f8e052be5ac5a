// Command keycloak-jwt-sidecar is a reverse proxy and forward-auth server
// that lets only requests with a valid Keycloak client-credentials token
// through. See sidecar/CONFIG.md for the configuration file.
//
//	keycloak-jwt-sidecar --config sidecar.yaml           serve
//	keycloak-jwt-sidecar --config sidecar.yaml --check   validate the file and exit
//	keycloak-jwt-sidecar --config sidecar.yaml --watch   serve, reloading the file when it changes
//
// SIGHUP reloads the configuration file without a restart (an invalid file
// is refused and the running configuration keeps serving); SIGTERM and
// SIGINT shut down gracefully.
//
// The local demo (realm + echo upstream + sidecar) is cmd/keycloak-jwt-demo:
// this binary carries no test support.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
	"github.com/keycloak-jwt/keycloak-jwt/tracing"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // invalid configuration, serve error, failed selftest
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop() // a second signal terminates at once, without waiting for the drain
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run is the whole command; ctx ends on SIGTERM/SIGINT.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup sidecar.LookupEnv) int {
	if len(args) > 0 && args[0] == "demo" {
		fmt.Fprintln(stderr, "the demo is a command of its own: go run ./cmd/keycloak-jwt-demo [--selftest]")
		return exitUsage
	}
	fs := flag.NewFlagSet("keycloak-jwt-sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defConfig, _ := lookup("KJ_CONFIG")
	configPath := fs.String("config", defConfig, "configuration file (YAML); env KJ_CONFIG")
	check := fs.Bool("check", false, "validate the configuration (compiles every policy, loads the upstream JWT key) and exit")
	watch := fs.Bool("watch", false, "reload the configuration file when its content changes (SIGHUP always reloads)")
	watchEvery := fs.Duration("watch-interval", 2*time.Second, "how often --watch reads the file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keycloak-jwt-sidecar --config FILE [--check | --watch]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || *configPath == "" || *watch && *watchEvery <= 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := sidecar.LoadConfigFile(*configPath, lookup)
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration: %v\n", err)
		return exitFailed
	}
	if *check {
		if err := sidecar.Check(cfg); err != nil {
			printConfigErrors(stderr, *configPath, err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "%s: configuration OK\n", *configPath)
		return exitOK
	}
	srv, err := sidecar.New(cfg, sidecar.Options{ConfigFile: *configPath, Lookup: lookup})
	if err != nil {
		printConfigErrors(stderr, *configPath, err)
		return exitFailed
	}
	defer func() { _ = srv.Logger().Sync() }()
	// OpenTelemetry traces, when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
	traced, stopTracing, err := tracing.Setup(ctx, "keycloak-jwt-sidecar", lookup)
	if err != nil {
		fmt.Fprintf(stderr, "tracing: %v\n", err)
		return exitFailed
	}
	if traced {
		srv.Logger().Info("tracing on: spans exported over OTLP/HTTP (OTEL_* variables)")
		defer func() {
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = stopTracing(flushCtx)
		}()
	}
	// SIGHUP reloads: without this handler it would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadCtx, stopReloads := context.WithCancel(ctx)
	defer stopReloads()
	go func() {
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-hup:
				srv.ReloadFile() // logs the outcome; /readyz and the metrics show it
			}
		}
	}()
	if *watch {
		go func() { _ = srv.WatchConfigFile(reloadCtx, *watchEvery) }()
	}
	if err := srv.Serve(ctx); err != nil {
		srv.Logger().Error("sidecar stopped with an error", zap.Error(err))
		return exitFailed
	}
	return exitOK
}

// printConfigErrors prints one problem per line.
func printConfigErrors(w io.Writer, path string, err error) {
	fmt.Fprintf(w, "%s: invalid configuration:\n", path)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "  - %s\n", line)
	}
}
