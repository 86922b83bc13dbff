package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// verifyExtraFirst trusts the directory's CAs (then the system's), and
// still checks the host name and refuses servers no trusted CA signed.
func TestVerifyExtraFirst(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	pemOf := func(s *httptest.Server) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	}
	// Another CA (httptest servers all share one certificate).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	otherDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherDER})
	get := func(pems [][]byte, serverName string) error {
		conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		var cas []*x509.Certificate
		for _, p := range pems {
			cas = append(cas, parseCerts(p)...)
		}
		verifyExtraFirst(conf, cas)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get([][]byte{pemOf(srv)}, ""); err != nil {
		t.Fatalf("server signed by the directory's CA: %v", err)
	}
	var hostErr x509.HostnameError
	if err := get([][]byte{pemOf(srv)}, "not-the-server.invalid"); !errors.As(err, &hostErr) {
		t.Fatalf("wrong host name: %v, want a host name error", err)
	}
	var authErr x509.UnknownAuthorityError
	if err := get([][]byte{otherCA}, ""); !errors.As(err, &authErr) {
		t.Fatalf("server no trusted CA signed: %v, want unknown authority", err)
	}
}
