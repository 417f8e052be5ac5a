// Command keycloak-jwt-sidecar is a reverse proxy and forward-auth server
// that lets only requests with a valid Keycloak client-credentials token
// through. See sidecar/CONFIG.md for the configuration file.
//
//	keycloak-jwt-sidecar --config sidecar.yaml           serve
//	keycloak-jwt-sidecar --config sidecar.yaml --check   validate the file and exit
//	keycloak-jwt-sidecar demo [--selftest]               local realm + echo upstream + sidecar
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/sidecar"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar/demo"
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
		return runDemo(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("keycloak-jwt-sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defConfig, _ := lookup("KJ_CONFIG")
	configPath := fs.String("config", defConfig, "configuration file (YAML); env KJ_CONFIG")
	check := fs.Bool("check", false, "validate the configuration (compiles every policy, loads the upstream JWT key) and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keycloak-jwt-sidecar --config FILE [--check]\n       keycloak-jwt-sidecar demo [--selftest] [--addr A] [--admin-addr A] [--idp-addr A] [--upstream-addr A]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || *configPath == "" {
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
	srv, err := sidecar.New(cfg, sidecar.Options{})
	if err != nil {
		printConfigErrors(stderr, *configPath, err)
		return exitFailed
	}
	defer func() { _ = srv.Logger().Sync() }()
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

// runDemo runs the demo, interactively or as a selftest.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keycloak-jwt-sidecar demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	selftest := fs.Bool("selftest", false, "run the whole flow over real sockets, print each step, exit 0 only if all behaved (ephemeral ports unless given)")
	var o demo.Options
	fs.StringVar(&o.Addr, "addr", "", "sidecar listen address (default "+demo.DefaultAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.AdminAddr, "admin-addr", "", "sidecar admin address (default "+demo.DefaultAdminAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.IdPAddr, "idp-addr", "", "demo realm address (default "+demo.DefaultIdPAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.UpstreamAddr, "upstream-addr", "", "echo upstream address (default "+demo.DefaultUpstreamAddr+"; selftest: ephemeral)")
	verbose := fs.Bool("v", false, "log every request (debug level)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	level := zapcore.InfoLevel
	if *verbose {
		level = zapcore.DebugLevel
	}
	if *selftest {
		if *verbose {
			o.Logger = consoleLogger(stderr, level)
		}
		if err := demo.Selftest(ctx, o, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailed
		}
		return exitOK
	}
	o.Logger = consoleLogger(stderr, level)
	if err := demo.Run(ctx, o, stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	return exitOK
}

// consoleLogger logs human-readable lines to w.
func consoleLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}
