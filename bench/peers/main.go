// Command peers runs the sidecar beside a peer product that validates the
// same Keycloak JWTs, oauth2-proxy, and beside a plain reverse proxy, in
// interleaved rounds with the project's load generator, on loopback only:
//
//	peers run -sidecar bench/bin/keycloak-jwt-sidecar -oauth2-proxy bench/bin/oauth2-proxy [-rounds 3] [-duration 5s]
//
// (bench/peers/run.sh installs oauth2-proxy at its pinned version and
// builds the rest). Two scenarios, each at concurrency 1, 16 and 64:
// warm, one token again and again (the sidecar's verified-token cache on);
// cold, 10,000 distinct tokens in turn (the sidecar's cache off, so every
// request is verified, as oauth2-proxy verifies every request anyway).
//
// oauth2-proxy really validates the tokens: its OIDC provider is the test
// realm (signature by the realm's JWKS, issuer, expiry, and audience: the
// client id is the API's audience), and bearer tokens are accepted
// (skip_jwt_bearer_tokens). It has no scope check for bearer tokens, so it
// does less work than the sidecar, whose route requires a scope. Before
// the load, every product must answer 200 to a valid token and refuse a
// tampered one and one for another audience, or the run fails; the load
// runs fail on any answer but 200.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/keycloak-jwt/keycloak-jwt/bench/benchproc"
	"github.com/keycloak-jwt/keycloak-jwt/bench/loadgen"
	"github.com/keycloak-jwt/keycloak-jwt/internal/testidp"
)

var clients = []testidp.Client{
	{ID: "orders-service", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"orders-api"}},
	{ID: "other-api-client", Secret: "s", Scopes: []string{"orders:read"}, Audience: []string{"billing-api"}},
}

func main() { benchproc.Main("peers", run) }

type target struct {
	name string
	url  string
	proc *benchproc.Proc
	auth bool // checks tokens (the plain proxy does not)
}

// sample is one measured run of one target.
type sample struct {
	rps, cpuUS, p50US float64
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	sidecarBin := fs.String("sidecar", "", "keycloak-jwt-sidecar binary (required)")
	o2pBin := fs.String("oauth2-proxy", "", "oauth2-proxy binary (required)")
	o2pVersion := fs.String("oauth2-proxy-version", "", "its module version, as installed")
	duration := fs.Duration("duration", 5*time.Second, "length of each measured run")
	rounds := fs.Int("rounds", 3, "interleaved rounds")
	nTokens := fs.Int("tokens", 10000, "distinct tokens of the cold scenario")
	clientKind := fs.String("client", "conn", "how the load generator sends: "+loadgen.ClientKinds)
	_ = fs.Parse(args)
	if *sidecarBin == "" || *o2pBin == "" {
		return fmt.Errorf("-sidecar and -oauth2-proxy are required")
	}
	self, dir, remove, err := benchproc.Workdir()
	if err != nil {
		return err
	}
	defer remove()

	idp, err := testidp.New(testidp.Options{Clients: clients, TokenTTL: 2 * time.Hour})
	if err != nil {
		return err
	}
	defer idp.Close()
	tok, err := idp.Token("orders-service")
	if err != nil {
		return err
	}
	toks, err := mint(idp, *nTokens)
	if err != nil {
		return err
	}

	echo, plain, err := benchproc.StartBaselines(self)
	if err != nil {
		return err
	}
	defer echo.Stop()
	defer plain.Stop()
	upstream, plainAddr := "http://"+echo.Addr, plain.Addr
	warm, cold, err := benchproc.StartSidecars(*sidecarBin, dir, idp.Issuer(), upstream)
	if err != nil {
		return err
	}
	defer warm.Stop()
	defer cold.Stop()
	o2p, err := startOAuth2Proxy(*o2pBin, idp.Issuer(), upstream)
	if err != nil {
		return err
	}
	defer o2p.Stop()

	plainT := target{"plain httputil.ReverseProxy", "http://" + plainAddr + "/orders", plain, false}
	o2pT := target{"oauth2-proxy", "http://" + o2p.Addr + "/orders", o2p, true}
	scenarios := []struct {
		name    string
		sidecar target
		headers func(int64) http.Header
	}{
		{"warm (one token; sidecar cache on)", target{"sidecar", "http://" + warm.Addr + "/orders", warm, true},
			func(int64) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }},
		{fmt.Sprintf("cold (%d distinct tokens; sidecar cache off)", len(toks)), target{"sidecar", "http://" + cold.Addr + "/orders", cold, true},
			func(i int64) http.Header { return http.Header{"Authorization": {"Bearer " + toks[i%int64(len(toks))]}} }},
	}

	// Correctness first, in this same run.
	other, err := idp.Token("other-api-client")
	if err != nil {
		return err
	}
	for _, t := range []target{scenarios[0].sidecar, scenarios[1].sidecar, o2pT} {
		if err := verifies(t, tok, other); err != nil {
			return err
		}
	}
	fmt.Printf("# Peers: the sidecar, oauth2-proxy and a plain reverse proxy (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("- %d rounds, %s per run, loopback, %d cores; versions: %s\n", *rounds, *duration, runtime.NumCPU(), version(*o2pVersion))
	fmt.Printf("- load generator: bench/loadgen, client %q\n", *clientKind)
	fmt.Println("- correctness, checked before the load in this run: the sidecar (cache on and off) and oauth2-proxy answered 200")
	fmt.Println("  to a valid token, and refused a token with a tampered signature and a token for another audience")
	fmt.Println()

	ctx := context.Background()
	concs := []int{1, 16, 64}
	// results[scenario][conc][target name] = samples over rounds
	results := make([]map[int]map[string][]sample, len(scenarios))
	for i := range results {
		results[i] = map[int]map[string][]sample{}
		for _, c := range concs {
			results[i][c] = map[string][]sample{}
		}
	}
	clientsByConc := map[int]*http.Client{}
	for _, c := range concs {
		if clientsByConc[c], err = loadgen.ClientFor(*clientKind, c); err != nil {
			return err
		}
	}
	for round := range *rounds {
		for si, sc := range scenarios {
			for _, c := range concs {
				ts := []target{sc.sidecar, o2pT, plainT}
				// Rotate the order per round, so no product always runs first.
				k := round % len(ts)
				ts = append(ts[k:], ts[:k]...)
				for _, t := range ts {
					cl := clientsByConc[c]
					loadgen.Run(ctx, cl, loadgen.Options{URL: t.url, Headers: sc.headers, Concurrency: c, Duration: time.Second / 2})
					before := t.proc.CPU()
					r := loadgen.Run(ctx, cl, loadgen.Options{URL: t.url, Headers: sc.headers, Concurrency: c, Duration: *duration})
					if r.Errors > 0 {
						return fmt.Errorf("%s, %s, concurrency %d: %d errors, first: %s", t.name, sc.name, c, r.Errors, r.FirstError)
					}
					cpu := t.proc.CPU() - before
					results[si][c][t.name] = append(results[si][c][t.name], sample{
						rps: r.RPS, cpuUS: float64(cpu.Microseconds()) / float64(r.Requests), p50US: float64(r.P50.Microseconds()),
					})
				}
			}
		}
		fmt.Fprintf(os.Stderr, "peers: round %d of %d done\n", round+1, *rounds)
	}

	for si, sc := range scenarios {
		fmt.Printf("## %s\n\n", sc.name)
		fmt.Println("Ratios are per round (both products measured in the same round), median and min–max over the rounds;")
		fmt.Println("CPU per request is the proxy process's user+system time over its requests.")
		fmt.Println()
		fmt.Println("| concurrency | sidecar ÷ oauth2-proxy throughput | sidecar ÷ plain proxy throughput | oauth2-proxy ÷ sidecar CPU per request | sidecar ÷ plain CPU per request | req/s sidecar / oauth2-proxy / plain | CPU µs per request sidecar / oauth2-proxy / plain | p50 µs sidecar / oauth2-proxy / plain |")
		fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, c := range concs {
			s, o, p := results[si][c]["sidecar"], results[si][c]["oauth2-proxy"], results[si][c][plainT.name]
			ratio := func(a, b []sample, f func(sample) float64) string {
				var rs []float64
				for i := range a {
					rs = append(rs, f(a[i])/f(b[i]))
				}
				lo, hi := benchproc.MinMax(rs)
				return fmt.Sprintf("%.2f (%.2f–%.2f)", benchproc.Median(rs), lo, hi)
			}
			med := func(x []sample, f func(sample) float64) float64 {
				var v []float64
				for _, e := range x {
					v = append(v, f(e))
				}
				return benchproc.Median(v)
			}
			rps := func(x sample) float64 { return x.rps }
			cpu := func(x sample) float64 { return x.cpuUS }
			p50 := func(x sample) float64 { return x.p50US }
			fmt.Printf("| %d | %s | %s | %s | %s | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f |\n", c,
				ratio(s, o, rps), ratio(s, p, rps), ratio(o, s, cpu), ratio(s, p, cpu),
				med(s, rps), med(o, rps), med(p, rps), med(s, cpu), med(o, cpu), med(p, cpu), med(s, p50), med(o, p50), med(p, p50))
		}
		fmt.Println()
	}

	// Memory: a fresh sidecar with the cache on gets every distinct token
	// once; the cache-off sidecar and oauth2-proxy have seen them all.
	mem, err := benchproc.StartSidecar(*sidecarBin, dir, "memory", idp.Issuer(), upstream, "RS256", 10000)
	if err != nil {
		return err
	}
	defer mem.Stop()
	cl := loadgen.NewClient(16)
	idle := mem.RSSKiB()
	r := loadgen.Run(ctx, cl, loadgen.Options{URL: "http://" + mem.Addr + "/orders", Concurrency: 16, Duration: time.Hour,
		MaxRequests: int64(len(toks)), Headers: scenarios[1].headers})
	if r.Errors > 0 {
		return fmt.Errorf("memory run: %d errors, first: %s", r.Errors, r.FirstError)
	}
	fmt.Printf("## Resident memory after the %d distinct tokens (about %d bytes each)\n\n", len(toks), len(toks[0]))
	fmt.Println("| process | RSS |")
	fmt.Println("| --- | ---: |")
	fmt.Printf("| sidecar, token_cache_size 10000, fresh, before any token | %.1f MiB |\n", float64(idle)/1024)
	fmt.Printf("| sidecar, token_cache_size 10000, after each token once | %.1f MiB |\n", float64(mem.RSSKiB())/1024)
	fmt.Printf("| sidecar, cache off, after the rounds above | %.1f MiB |\n", float64(cold.RSSKiB())/1024)
	fmt.Printf("| oauth2-proxy, after the rounds above | %.1f MiB |\n", float64(o2p.RSSKiB())/1024)
	return nil
}

// mint signs n distinct tokens (RS256; a few seconds per thousand per core).
func mint(idp *testidp.IdP, n int) ([]string, error) {
	toks := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				t, err := idp.Token("orders-service")
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				toks[i] = t
			}
		})
	}
	wg.Wait()
	return toks, first
}

// startOAuth2Proxy runs oauth2-proxy as a bearer-token gateway for the
// realm: OIDC provider = the realm, client id = the API's audience, bearer
// JWTs accepted and verified, no logs per request.
func startOAuth2Proxy(bin, issuer, upstream string) (*benchproc.Proc, error) {
	addr := benchproc.FreeAddr()
	p, err := benchproc.Start(bin,
		"--http-address="+addr,
		"--upstream="+upstream,
		"--provider=oidc",
		"--oidc-issuer-url="+issuer,
		"--client-id=orders-api",
		"--client-secret=unused-for-bearer-tokens",
		"--cookie-secret=0123456789abcdef0123456789abcdef",
		"--email-domain=*",
		"--skip-jwt-bearer-tokens=true",
		"--extra-jwt-issuers="+issuer+"=orders-api",
		"--oidc-email-claim=azp",
		"--insecure-oidc-allow-unverified-email=true",
		"--redirect-url=http://"+addr+"/oauth2/callback",
		"--request-logging=false",
		"--auth-logging=false",
		"--standard-logging=false",
	)
	if err != nil {
		return nil, err
	}
	p.Addr = addr
	if err := benchproc.WaitHTTP("http://"+addr+"/ping", 200); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// verifies checks that t lets a valid token through and refuses a tampered
// one and one minted for another audience.
func verifies(t target, good, otherAudience string) error {
	dot := strings.LastIndexByte(good, '.')
	i := dot + 10
	c := byte('A')
	if good[i] == 'A' {
		c = 'B'
	}
	tampered := good[:i] + string(c) + good[i+1:]
	for _, tc := range []struct {
		what, tok string
		allow     bool
	}{{"a valid token", good, true}, {"a tampered signature", tampered, false}, {"another audience", otherAudience, false}} {
		req, _ := http.NewRequest(http.MethodGet, t.url, nil)
		req.Header.Set("Authorization", "Bearer "+tc.tok)
		cl := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Do(req)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", t.name, tc.what, err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != tc.allow {
			return fmt.Errorf("%s answered %d to %s", t.name, resp.StatusCode, tc.what)
		}
	}
	return nil
}

func version(o2p string) string {
	if o2p == "" {
		o2p = "(version not given)"
	}
	return fmt.Sprintf("oauth2-proxy %s, sidecar and oauth2-proxy built with %s", o2p, runtime.Version())
}
