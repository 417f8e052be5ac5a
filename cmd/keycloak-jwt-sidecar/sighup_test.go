//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReloads: SIGHUP re-reads the file (it used to end the process);
// /readyz shows the new generation.
func TestSIGHUPReloads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	_ = ln.Close()
	body := "listen: 127.0.0.1:0\nadmin_listen: " + admin + "\nupstream: {url: 'http://127.0.0.1:9'}\n" +
		"policy: {issuers: [{issuer: 'http://127.0.0.1:9/realms/x'}], audiences: [api]}\nlog: {level: error}\n"
	cfg := write(t, body)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"--config", cfg}, &stdout, &stderr, env(nil)) }()
	generation := func() int64 {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var r struct {
			Config struct{ Generation int64 } `json:"config"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return r.Config.Generation
	}
	waitGen := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); generation() != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("generation %d, want %d; stderr: %s", generation(), want, stderr.String())
			}
		}
	}
	waitGen(1)
	if err := os.WriteFile(cfg, []byte(strings.Replace(body, "audiences: [api]", "audiences: [api, api2]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitGen(2)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("code %d: %s", code, stderr.String())
	}
}
