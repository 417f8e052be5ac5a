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
// cache bound holds. Results are printed as Markdown.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/bench/loadgen"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadbench run|echo|plainproxy ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "echo":
		err = serveEcho(os.Args[2])
	case "plainproxy":
		err = servePlainProxy(os.Args[2], os.Args[3])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// serveEcho answers every request with a small JSON body.
func serveEcho(addr string) error {
	body := []byte(`{"ok":true,"service":"orders"}`)
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

// servePlainProxy is the baseline proxy: httputil.ReverseProxy, no checks.
func servePlainProxy(addr, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.SetXForwarded() }, Transport: tr,
		ErrorLog: log.New(io.Discard, "", 0)} // runs end by cancelling requests in flight
	return http.ListenAndServe(addr, p)
}

type proc struct {
	cmd  *exec.Cmd
	addr string
}

func (p *proc) stop() {
	if p != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the run
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd}, nil
}

func waitHTTP(u string, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within 20s", u, want)
}

// startSidecar writes a config and starts the sidecar; it waits for /readyz.
func startSidecar(bin, dir, name string, idp *testidp.IdP, upstreamURL, alg string, cacheSize int) (*proc, error) {
	listen, admin := freeAddr(), freeAddr()
	cfg := fmt.Sprintf(`listen: %q
admin_listen: %q
upstream:
  url: %q
policy:
  issuers: [{issuer: %q}]
  audiences: [orders-api]
  algorithms: [%s]
  token_cache_size: %d
routes:
  - prefix: /orders
    scopes_required: [orders:read]
log:
  level: error
`, listen, admin, upstreamURL, idp.Issuer(), alg, cacheSize)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(bin, "--config", path)
	if err != nil {
		return nil, err
	}
	p.addr = listen
	if err := waitHTTP("http://"+admin+"/readyz", 200); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// cpuTime is the user+system CPU time a process has used so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses): utime is the
	// 14th field of the line, stime the 15th, in clock ticks (100 per second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return -1
}

var clients = []testidp.Client{{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}}}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	sidecarBin := fs.String("sidecar", "", "path of the keycloak-jwt-sidecar binary (required)")
	duration := fs.Duration("duration", 10*time.Second, "length of each measured run")
	conc := fs.Int("concurrency", 32, "workers (closed loop) / max in flight (open loop)")
	tokens := fs.Int("tokens", 1_000_000, "distinct tokens for the memory run (0 skips it)")
	cacheSize := fs.Int("cache", 10000, "token_cache_size of the memory run's sidecar")
	_ = fs.Parse(args)
	if *sidecarBin == "" {
		return fmt.Errorf("-sidecar is required")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "loadbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	idp, err := testidp.New(testidp.Options{Clients: clients, TokenTTL: time.Hour})
	if err != nil {
		return err
	}
	defer idp.Close()
	tok, err := idp.Token("orders-service")
	if err != nil {
		return err
	}

	echoAddr := freeAddr()
	echo, err := startProc(self, "echo", echoAddr)
	if err != nil {
		return err
	}
	defer echo.stop()
	if err := waitHTTP("http://"+echoAddr+"/", 200); err != nil {
		return err
	}
	plainAddr := freeAddr()
	plain, err := startProc(self, "plainproxy", plainAddr, "http://"+echoAddr)
	if err != nil {
		return err
	}
	defer plain.stop()
	if err := waitHTTP("http://"+plainAddr+"/", 200); err != nil {
		return err
	}
	warm, err := startSidecar(*sidecarBin, dir, "warm", idp, "http://"+echoAddr, "RS256", 10000)
	if err != nil {
		return err
	}
	defer warm.stop()
	cold, err := startSidecar(*sidecarBin, dir, "nocache", idp, "http://"+echoAddr, "RS256", 0)
	if err != nil {
		return err
	}
	defer cold.stop()

	auth := http.Header{"Authorization": {"Bearer " + tok}}
	headers := func(int64) http.Header { return auth.Clone() }
	targets := []struct {
		name, url string
		proxy     *proc // the process whose CPU per request is reported
	}{
		{"echo upstream, direct", "http://" + echoAddr + "/orders", nil},
		{"plain httputil.ReverseProxy", "http://" + plainAddr + "/orders", plain},
		{"sidecar, warm token cache", "http://" + warm.addr + "/orders", warm},
		{"sidecar, token cache off", "http://" + cold.addr + "/orders", cold},
	}
	ctx := context.Background()
	client := loadgen.NewClient(*conc)
	fmt.Printf("## Load (closed loop, %d workers, %s per target, loopback, %s)\n\n", *conc, *duration, time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| target | req/s | p50 | p99 | × plain proxy throughput | proxy CPU per request |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	results := map[string]loadgen.Result{}
	cpu := map[string]time.Duration{}
	for _, t := range targets {
		loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: *conc, Duration: time.Second})
		var before time.Duration
		if t.proxy != nil {
			before = cpuTime(t.proxy.cmd.Process.Pid)
		}
		r := loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: *conc, Duration: *duration})
		if r.Errors > 0 {
			return fmt.Errorf("%s: %d errors, first: %s", t.name, r.Errors, r.FirstError)
		}
		if t.proxy != nil && r.Requests > 0 {
			cpu[t.name] = (cpuTime(t.proxy.cmd.Process.Pid) - before) / time.Duration(r.Requests)
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

	rate := plainRPS / 2
	fmt.Printf("\n## Latency at 50 %% of the plain proxy's peak (open loop, %.0f req/s, %s each)\n\n", rate, *duration)
	fmt.Println("| target | p50 | p90 | p99 |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	// Interleaved, twice each, so drift on a shared machine hits both alike.
	p99 := map[string][]time.Duration{}
	for _, i := range []int{2, 1, 2, 1} {
		t := targets[i]
		r := loadgen.Run(ctx, client, loadgen.Options{URL: t.url, Headers: headers, Concurrency: 256, Duration: *duration, Rate: rate})
		if r.Errors > 0 {
			return fmt.Errorf("%s (open loop): %d errors, first: %s", t.name, r.Errors, r.FirstError)
		}
		p99[t.name] = append(p99[t.name], r.P99)
		fmt.Printf("| %s | %s | %s | %s |\n", t.name, us(r.P50), us(r.P90), us(r.P99))
	}
	mean := func(d []time.Duration) time.Duration { return (d[0] + d[1]) / 2 }
	fmt.Printf("\nAdded p99 latency of the sidecar over the plain proxy (mean of two runs each): %s\n",
		us(mean(p99[targets[2].name])-mean(p99[targets[1].name])))

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
	sc, err := startSidecar(bin, dir, "memory", idp, "http://"+echoAddr, "EdDSA", cacheSize)
	if err != nil {
		return err
	}
	defer sc.stop()
	fmt.Printf("\n## Memory: %d distinct valid tokens through one sidecar (token_cache_size %d)\n\n", n, cacheSize)
	fmt.Println("| tokens sent | sidecar RSS (MiB) |")
	fmt.Println("| ---: | ---: |")
	fmt.Printf("| 0 | %.1f |\n", float64(rssKiB(sc.cmd.Process.Pid))/1024)
	client := loadgen.NewClient(conc)
	sent := int64(0)
	for _, checkpoint := range checkpoints(n) {
		base := sent
		r := loadgen.Run(ctx, client, loadgen.Options{
			URL: "http://" + sc.addr + "/orders", Concurrency: conc, Duration: time.Hour,
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
		fmt.Printf("| %d | %.1f |\n", sent, float64(rssKiB(sc.cmd.Process.Pid))/1024)
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
