package sidecar

import (
	"os"
	"testing"
)

// FuzzConfig feeds arbitrary configuration files through what --check does
// (ParseConfig, then Check) and through New: never a panic, Check and New
// agree, and every refusal is an error value with a message.
func FuzzConfig(f *testing.F) {
	example, err := os.ReadFile("../examples/sidecar/sidecar.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"upstream: {url: 'http://127.0.0.1:1'}\npolicy: {issuers: [{issuer: 'https://x/realms/y'}], audiences: [a]}\n",
		"forward_auth: {enabled: true}\npolicy: {issuers: [{issuer: 'https://x/realms/y', jwks_uri: 'http://k/certs'}], audiences: [a]}\nroutes: [{prefix: /a, methods: [GET], scopes_required: [s]}, {prefix: /, public: true}]\n",
		"upstream: {url: '${U:-http://u}'}\nlisten: '${L}'\n", "policy: [1]", "listen: 8080", "a: &x [*x]", "", "{}",
	} {
		f.Add([]byte(s))
	}
	env := mapEnv(map[string]string{"U": "http://127.0.0.1:9", "L": ":0"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, env)
		if err != nil {
			if cfg != nil || err.Error() == "" {
				t.Fatalf("ParseConfig: %v with config %+v", err, cfg)
			}
			return
		}
		// --check's verdict is the server's: a file it passes starts, one it
		// refuses does not.
		checkErr := Check(cfg)
		_, newErr := New(cfg, Options{})
		if (checkErr == nil) != (newErr == nil) {
			t.Fatalf("Check: %v, New: %v", checkErr, newErr)
		}
		if checkErr != nil && checkErr.Error() == "" {
			t.Fatal("Check refused with an empty message")
		}
	})
}
