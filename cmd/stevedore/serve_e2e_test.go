package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
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
	return startServeTLS(t, root, false, extra...)
}

func startServeTLS(t *testing.T, root string, tlsOn bool, extra ...string) string {
	t.Helper()
	scheme, client := "http", http.DefaultClient
	if tlsOn {
		scheme = "https"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(binDir, "stevedore"), append([]string{"serve", "--root", root, "--addr", addr, "--access-log=false"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
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
	if _, errOut, err := runCLI(t, "gc", "--root", root, "--grace", "-1s"); err == nil || !strings.Contains(errOut, "--grace -1s is negative") {
		t.Fatalf("gc --grace -1s: %v %s", err, errOut)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir, and the
// certificate again as ca.crt into dir/ca (a --cert-dir for clients).
func selfSigned(t *testing.T, dir string) (cert, key, caDir string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, key, caDir = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca")
	os.MkdirAll(caDir, 0o755)
	for p, b := range map[string][]byte{cert: certPEM, key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), filepath.Join(caDir, "ca.crt"): certPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, caDir
}

// Our docker:// transport round-trips single images and indexes through
// our own registry, digests identical, over plain HTTP and over TLS.
func TestDockerTransportAgainstServe(t *testing.T) {
	needPlugin(t, "oci")
	needPlugin(t, "docker")
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "tls"}[tlsOn], func(t *testing.T) {
			dir := t.TempDir()
			img := genImage(t, filepath.Join(dir, "src"), "v1", 2, 200<<10)
			idx := genIndex(t, filepath.Join(dir, "src"), "multi")
			var serveArgs, push, pull []string
			if tlsOn {
				cert, key, caDir := selfSigned(t, dir)
				serveArgs = []string{"--tls-cert", cert, "--tls-key", key}
				push, pull = []string{"--dest-cert-dir", caDir}, []string{"--src-cert-dir", caDir}
			} else {
				push, pull = []string{"--dest-tls-verify=false"}, []string{"--src-tls-verify=false"}
			}
			addr := startServeTLS(t, t.TempDir(), tlsOn, serveArgs...)
			reg := "docker://" + addr + "/team/app"

			out := mustRun(t, append(append([]string{"copy"}, push...), "oci:"+dir+"/src:v1", reg+":v1")...)
			if strings.TrimSpace(out) != img.Manifest.Digest.String() {
				t.Fatalf("push printed %s, want %s", out, img.Manifest.Digest)
			}
			mustRun(t, append(append([]string{"copy", "--all"}, push...), "oci:"+dir+"/src:multi", reg+":multi")...)
			mustRun(t, append(append([]string{"copy"}, pull...), reg+":v1", "oci:"+dir+"/back:v1")...)
			mustRun(t, append(append([]string{"copy", "--all"}, pull...), reg+":multi", "oci:"+dir+"/back:multi")...)
			if got := rawSHA(t, "oci:"+dir+"/back:v1"); got != img.Manifest.Digest.String() {
				t.Fatalf("image round trip: %s, want %s", got, img.Manifest.Digest)
			}
			if got := rawSHA(t, "oci:"+dir+"/back:multi"); got != idx.Digest.String() {
				t.Fatalf("index round trip: %s, want %s", got, idx.Digest)
			}
			tagsFlag := []string{"--tls-verify=false"}
			if tlsOn {
				tagsFlag = []string{"--cert-dir", pull[1]}
			}
			var tags struct{ Tags []string }
			json.Unmarshal([]byte(mustRun(t, append(append([]string{"list-tags"}, tagsFlag...), reg)...)), &tags)
			if strings.Join(tags.Tags, ",") != "multi,v1" {
				t.Fatalf("tags %v", tags.Tags)
			}
			// The server's catalog, through the docker plugin.
			if out := mustRun(t, append(append([]string{"list-repositories"}, tagsFlag...), "docker://"+addr)...); out != addr+"/team/app\n" {
				t.Fatalf("list-repositories printed %q", out)
			}
			// A second push moves no blob: the registry has them all.
			_, errOut, err := runCLI(t, append(append([]string{"copy", "--progress=json"}, push...), "oci:"+dir+"/src:v1", reg+":v2")...)
			if err != nil || !strings.Contains(errOut, `"blobsCopied":0`) {
				t.Fatalf("re-push: %v %s", err, errOut)
			}
		})
	}
}

// serve drains its requests for its --shutdown-timeout after SIGTERM: the
// CLI's bound on a wedged command's stop (10 s) is not serve's (it cut a
// 25 s drain short, an upload in flight with it).
func TestServeDrainsForItsShutdownTimeout(t *testing.T) {
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(binDir, "stevedore"), "serve", "--root", t.TempDir(), "--addr", addr, "--access-log=false", "--shutdown-timeout", "20s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // harmless once it exited
	})
	var loc string
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Post("http://"+addr+"/v2/drain/blobs/uploads/", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("upload start: %d", resp.StatusCode)
			}
			loc = resp.Header.Get("Location")
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("serve did not answer: %v", err)
		}
	}
	// A PATCH whose body has not all arrived: in flight when SIGTERM comes.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\nsome", loc, addr)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		t.Fatalf("serve exited (%v) while draining, before 12 s of its 20 s", err)
	case <-time.After(12 * time.Second):
	}
	conn.Write(bytes.Repeat([]byte("x"), 96)) // the upload ends; serve may stop
	answer := make([]byte, 64)
	if n, err := conn.Read(answer); err != nil || !strings.HasPrefix(string(answer[:n]), "HTTP/1.1 202") {
		t.Fatalf("the PATCH in flight at SIGTERM: %q %v, want 202", answer[:n], err)
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after draining", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop once its last request ended")
	}
}
