// Command keycloak-jwt-demo runs the sidecar end to end on loopback, without
// Docker or Keycloak: the demo realm of examples/keycloak/realm-demo.json
// (same clients, secrets, scopes, roles and audience mappers, served by an
// in-process Keycloak-shaped issuer), an echo upstream, and the sidecar
// configured with examples/sidecar/sidecar.yaml.
//
//	keycloak-jwt-demo                       serve; prints how to call it
//	keycloak-jwt-demo --selftest            the whole flow, checked, exit 0 only if all behaved
//	keycloak-jwt-demo --config FILE         an edited sidecar config against the demo realm
//
// It is a command of its own so that the production sidecar binary carries
// no test support.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keycloak-jwt/keycloak-jwt/internal/limitedfile"
	"github.com/keycloak-jwt/keycloak-jwt/sidecar/demo"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // serve error, failed selftest
	exitUsage  = 2
)

// maxConfigBytes bounds the --config file.
const maxConfigBytes = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop() // a second signal terminates at once, without waiting for the drain
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; ctx ends on SIGTERM/SIGINT.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keycloak-jwt-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	selftest := fs.Bool("selftest", false, "run the whole flow over real sockets, print each step, exit 0 only if all behaved (ephemeral ports unless given)")
	var o demo.Options
	fs.StringVar(&o.Addr, "addr", "", "sidecar listen address (default "+demo.DefaultAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.AdminAddr, "admin-addr", "", "sidecar admin address (default "+demo.DefaultAdminAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.IdPAddr, "idp-addr", "", "demo realm address (default "+demo.DefaultIdPAddr+"; selftest: ephemeral)")
	fs.StringVar(&o.UpstreamAddr, "upstream-addr", "", "echo upstream address (default "+demo.DefaultUpstreamAddr+"; selftest: ephemeral)")
	config := fs.String("config", "", "sidecar configuration to run instead of examples/sidecar/sidecar.yaml (an edited copy of it)")
	verbose := fs.Bool("v", false, "log every request (debug level)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keycloak-jwt-demo [--selftest] [--config FILE] [--addr A] [--admin-addr A] [--idp-addr A] [--upstream-addr A] [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if *config != "" {
		b, err := limitedfile.Read(*config, maxConfigBytes)
		if err != nil {
			fmt.Fprintf(stderr, "--config: %v\n", err)
			return exitFailed
		}
		o.ConfigYAML, o.ConfigName = b, *config
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
