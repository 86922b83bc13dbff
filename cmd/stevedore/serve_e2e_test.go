package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs `stevedore serve` from the built binary and waits until it
// answers /v2/.
func startServe(t *testing.T, root string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(binDir, "stevedore"), append([]string{"serve", "--root", root, "--addr", addr, "--access-log=false"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/v2/ answered %d", resp.StatusCode)
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			cmd.Process.Kill()
			t.Fatalf("stevedore serve did not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("serve answered after %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve exited with %v after SIGTERM", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("serve did not stop on SIGTERM")
		}
	})
	return addr
}

func TestServeAndGC(t *testing.T) {
	root := t.TempDir()
	startServe(t, root)
	out := mustRun(t, "gc", "--root", root, "--dry-run")
	if strings.Contains(strings.ToLower(out), "error") {
		t.Fatalf("gc --dry-run: %s", out)
	}
}
