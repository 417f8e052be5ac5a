// Command loadbench measures what the sidecar adds to a request, against
// baselines measured in the same run, on loopback only:
//
//	loadbench run -sidecar ./bin/keycloak-jwt-sidecar [-duration 10s] [-concurrency 32] [-tokens 1000000]
//
// It starts a Keycloak-shaped realm (internal/testidp) in-process, and as
// separate processes: an echo upstream and a plain httputil.ReverseProxy
// (this same binary, subcommands "echo" and "plainproxy") and the real
// sidecar binary (cache on, and cache off). It then runs, for each target,
// a closed-loop peak-throughput run and, for the plain proxy and the warm
// sidecar, an open-loop run at 50 % of the plain proxy's peak (latency
// without coordinated omission); last, it feeds a fresh sidecar distinct
// valid tokens and samples its resident memory, to show the verified-token
// cache bound holds. The open-loop run is repeated in interleaved rounds
// (-rounds, default 5), each at half the plain proxy's peak measured in that
// round, and the added p99 reported as median and worst of the rounds.
// Results are printed as Markdown.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/bench/benchproc"
	"github.com/keycloak-jwt/keycloak-jwt/bench/loadgen"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func main() { benchproc.Main("loadbench", run) }

var clients = []testidp.Client{{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}}}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	sidecarBin := fs.String("sidecar", "", "path of the keycloak-jwt-sidecar binary (required)")
	duration := fs.Duration("duration", 10*time.Second, "length of each measured run")
	conc := fs.Int("concurrency", 32, "workers (closed loop) / max in flight (open loop)")
	tokens := fs.Int("tokens", 1_000_000, "distinct tokens for the memory run (0 skips it)")
	cacheSize := fs.Int("cache", 10000, "token_cache_size of the memory run's sidecar")
	rounds := fs.Int("rounds", 5, "open-loop latency rounds (each: warm sidecar and plain proxy)")
	clientKind := fs.String("client", "conn", "how the load generator sends: "+loadgen.ClientKinds)
	_ = fs.Parse(args)
	if *sidecarBin == "" {
		return fmt.Errorf("-sidecar is required")
	}
	self, dir, remove, err := benchproc.Workdir()
	if err != nil {
		return err
	}
	defer remove()

	idp, err := testidp.New(testidp.Options{Clients: clients, TokenTTL: time.Hour})
	if err != nil {
		return err
	}
	defer idp.Close()
	tok, err := idp.Token("orders-service")
	if err != nil {
		return err
	}

	echo, plain, err := benchproc.StartBaselines(self)
	if err != nil {
		return err
	}
	defer echo.Stop()
	defer plain.Stop()
	echoAddr, plainAddr := echo.Addr, plain.Addr
	warm, cold, err := benchproc.StartSidecars(*sidecarBin, dir, idp.Issuer(), "http://"+echoAddr)
	if err != nil {
		return err
	}
	defer warm.Stop()
	defer cold.Stop()

	auth := http.Header{"Authorization": {"Bearer " + tok}}
	headers := func(int64) http.Header { return auth.Clone() }
	targets := []struct {
		name, url string
		proxy     *benchproc.Proc // the process whose CPU per request is reported
	}{
		{"echo upstream, direct", "http://" + echoAddr + "/orders", nil},
		{"plain httputil.ReverseProxy", "http://" + plainAddr + "/orders", plain},
		{"sidecar, warm token cache", "http://" + warm.Addr + "/orders", warm},
		{"sidecar, token cache off", "http://" + cold.Addr + "/orders", cold},
	}
	ctx := context.Background()
	client, err := loadgen.ClientFor(*clientKind, *conc)
	if err != nil {
		return err
	}
	fmt.Printf("## Load (closed loop, %d workers, %s per target, loopback, %s)\n\n", *conc, *duration, time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| target | req/s | p50 | p99 | × plain proxy throughput | proxy CPU per request |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	results := map[string]loadgen.Result{}
	cpu := map[string]time.Duration{}
	for _, t := range targets {
		loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: *conc, Duration: time.Second})
		var before time.Duration
		if t.proxy != nil {
			before = t.proxy.CPU()
		}
		r := loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: *conc, Duration: *duration})
		if r.Errors > 0 {
			return fmt.Errorf("%s: %d errors, first: %s", t.name, r.Errors, r.FirstError)
		}
		if t.proxy != nil && r.Requests > 0 {
			cpu[t.name] = (t.proxy.CPU() - before) / time.Duration(r.Requests)
		}
		results[t.name] = r
	}
	plainRPS := results[targets[1].name].RPS
	for _, t := range targets {
		r := results[t.name]
		c := "-"
		if d, ok := cpu[t.name]; ok {
			c = fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1000)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %.2f | %s |\n", t.name, r.RPS, us(r.P50), us(r.P99), r.RPS/plainRPS, c)
	}

	fmt.Printf("\n## Latency at 50 %% of the plain proxy's peak (open loop, %s each, %d rounds)\n\n", *duration, *rounds)
	fmt.Println("Each round measures the plain proxy's peak again (closed loop, a third of the run length), then runs the")
	fmt.Println("warm sidecar and the plain proxy open loop at half that rate, one after the other (the order alternates),")
	fmt.Println("so drift on a shared machine hits both alike; the added p99 is the sidecar's minus the plain proxy's.")
	fmt.Println()
	fmt.Println("| round | rate (req/s) | sidecar p50 | sidecar p90 | sidecar p99 | plain p50 | plain p90 | plain p99 | p99 added |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	var added []float64
	for round := range *rounds {
		order := []int{2, 1}
		if round%2 == 1 {
			order = []int{1, 2}
		}
		peak := loadgen.Run(ctx, client, loadgen.Options{URL: targets[1].url, Headers: headers, Concurrency: *conc, Duration: *duration / 3})
		if peak.Errors > 0 || peak.RPS == 0 {
			return fmt.Errorf("plain proxy peak, round %d: %d errors, first: %s", round+1, peak.Errors, peak.FirstError)
		}
		rate := peak.RPS / 2
		res := map[int]loadgen.Result{}
		for _, i := range order {
			t := targets[i]
			r := loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: 256, Duration: *duration, Rate: rate})
			if r.Errors > 0 {
				return fmt.Errorf("%s (open loop): %d errors, first: %s", t.name, r.Errors, r.FirstError)
			}
			res[i] = r
		}
		sc, pl := res[2], res[1]
		d := sc.P99 - pl.P99
		added = append(added, float64(d))
		fmt.Printf("| %d | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", round+1, rate, us(sc.P50), us(sc.P90), us(sc.P99),
			us(pl.P50), us(pl.P90), us(pl.P99), us(d))
	}
	fmt.Printf("\nAdded p99 latency of the sidecar over the plain proxy, over %d rounds: median %s, worst %s, best %s\n",
		len(added), us(time.Duration(benchproc.Median(added))), us(time.Duration(slices.Max(added))), us(time.Duration(slices.Min(added))))

	if *tokens > 0 {
		if err := memoryRun(ctx, *sidecarBin, dir, echoAddr, *tokens, *cacheSize, *conc); err != nil {
			return err
		}
	}
	return nil
}

// memoryRun sends distinct valid tokens (EdDSA, cheap to mint) to a fresh
// sidecar and samples its resident set size.
func memoryRun(ctx context.Context, bin, dir, echoAddr string, n, cacheSize, conc int) error {
	idp, err := testidp.New(testidp.Options{Clients: clients, Alg: "EdDSA", TokenTTL: time.Hour})
	if err != nil {
		return err
	}
	defer idp.Close()
	sc, err := benchproc.StartSidecar(bin, dir, "memory", idp.Issuer(), "http://"+echoAddr, "EdDSA", cacheSize)
	if err != nil {
		return err
	}
	defer sc.Stop()
	fmt.Printf("\n## Memory: %d distinct valid tokens through one sidecar (token_cache_size %d)\n\n", n, cacheSize)
	fmt.Println("| tokens sent | sidecar RSS (MiB) |")
	fmt.Println("| ---: | ---: |")
	fmt.Printf("| 0 | %.1f |\n", float64(sc.RSSKiB())/1024)
	client := loadgen.NewClient(conc)
	sent := int64(0)
	for _, checkpoint := range checkpoints(n) {
		base := sent
		r := loadgen.Run(ctx, client, loadgen.Options{
			URL: "http://" + sc.Addr + "/orders", Concurrency: conc, Duration: time.Hour,
			MaxRequests: checkpoint - sent,
			Headers: func(i int64) http.Header {
				tok, _ := idp.Token("orders-service", testidp.WithClaim("n", base+i))
				return http.Header{"Authorization": {"Bearer " + tok}}
			},
		})
		if r.Errors > 0 {
			return fmt.Errorf("memory run: %d errors, first: %s", r.Errors, r.FirstError)
		}
		sent = checkpoint
		fmt.Printf("| %d | %.1f |\n", sent, float64(sc.RSSKiB())/1024)
	}
	return nil
}

func checkpoints(n int) []int64 {
	var out []int64
	for _, f := range []float64{0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1} {
		c := int64(float64(n) * f)
		if c > 0 && (len(out) == 0 || c > out[len(out)-1]) {
			out = append(out, c)
		}
	}
	return out
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())) }
