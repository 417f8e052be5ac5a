// Package benchproc starts and watches the processes of the load
// benchmarks in bench/ (loadbench, peers): the echo upstream and the plain
// reverse proxy that the benchmark binaries serve themselves, the sidecar
// binary, and their CPU time and resident memory. Loopback only.
package benchproc

import (
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Main is the main function of a benchmark binary named name: subcommand
// "run" calls run with the remaining arguments; "echo ADDR" and
// "plainproxy ADDR TARGET" serve the baselines it starts as processes of
// itself.
func Main(name string, run func(args []string) error) {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s run|echo|plainproxy ...\n", name)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "echo":
		err = ServeEcho(os.Args[2])
	case "plainproxy":
		err = ServePlainProxy(os.Args[2], os.Args[3])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// ServeEcho answers every request with a small JSON body.
func ServeEcho(addr string) error {
	body := []byte(`{"ok":true,"service":"orders"}`)
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

// ServePlainProxy is the baseline proxy: httputil.ReverseProxy, no checks.
func ServePlainProxy(addr, target string) error {
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

// Proc is a started process and the address it serves.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string
}

// Stop kills the process and waits for it.
func (p *Proc) Stop() {
	if p != nil && p.Cmd.Process != nil {
		_ = p.Cmd.Process.Kill()
		_ = p.Cmd.Wait()
	}
}

// FreeAddr is a free loopback address.
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs name with args; its standard error is the caller's.
func Start(name string, args ...string) (*Proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the run
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Proc{Cmd: cmd}, nil
}

// WaitHTTP polls u until it answers want, for at most 20 seconds.
func WaitHTTP(u string, want int) error {
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

// StartSidecar writes a config and starts the sidecar (the route of the
// load benchmarks: /orders, scope orders:read); it waits for /readyz.
func StartSidecar(bin, dir, name, issuer, upstreamURL, alg string, cacheSize int) (*Proc, error) {
	listen, admin := FreeAddr(), FreeAddr()
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
`, listen, admin, upstreamURL, issuer, alg, cacheSize)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := Start(bin, "--config", path)
	if err != nil {
		return nil, err
	}
	p.Addr = listen
	if err := WaitHTTP("http://"+admin+"/readyz", 200); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Workdir returns the path of the running benchmark binary (to start its
// baselines) and a fresh temporary directory for configs; remove cleans it.
func Workdir() (self, dir string, remove func(), err error) {
	if self, err = os.Executable(); err != nil {
		return "", "", nil, err
	}
	if dir, err = os.MkdirTemp("", "keycloak-jwt-bench"); err != nil {
		return "", "", nil, err
	}
	return self, dir, func() { _ = os.RemoveAll(dir) }, nil
}

// StartBaselines starts, as processes of the benchmark binary self, the echo
// upstream and the plain reverse proxy in front of it; both answer when it
// returns. The caller stops them.
func StartBaselines(self string) (echo, plain *Proc, err error) {
	echoAddr := FreeAddr()
	if echo, err = Start(self, "echo", echoAddr); err != nil {
		return nil, nil, err
	}
	echo.Addr = echoAddr
	plainAddr := FreeAddr()
	if plain, err = Start(self, "plainproxy", plainAddr, "http://"+echoAddr); err != nil {
		echo.Stop()
		return nil, nil, err
	}
	plain.Addr = plainAddr
	for _, p := range []*Proc{echo, plain} {
		if err = WaitHTTP("http://"+p.Addr+"/", 200); err != nil {
			echo.Stop()
			plain.Stop()
			return nil, nil, err
		}
	}
	return echo, plain, nil
}

// StartSidecars starts two sidecars in front of upstream for the realm
// issuer (RS256): one with a 10,000-token cache, one with the cache off.
func StartSidecars(bin, dir, issuer, upstream string) (warm, cold *Proc, err error) {
	if warm, err = StartSidecar(bin, dir, "warm", issuer, upstream, "RS256", 10000); err != nil {
		return nil, nil, err
	}
	if cold, err = StartSidecar(bin, dir, "nocache", issuer, upstream, "RS256", 0); err != nil {
		warm.Stop()
		return nil, nil, err
	}
	return warm, cold, nil
}

// CPU is the user+system CPU time the process has used so far.
func (p *Proc) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
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

// RSSKiB is the process's resident set size, -1 when unknown.
func (p *Proc) RSSKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
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

// Median of xs (the mean of the middle two for an even count); 0 when empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MinMax of xs.
func MinMax(xs []float64) (lo, hi float64) {
	for i, x := range xs {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}
