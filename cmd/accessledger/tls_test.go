package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCert is a self-signed certificate for 127.0.0.1, as PEM files.
type testCert struct {
	der          []byte
	certPEM, key []byte
	serialNumber int64
	commonName   string
	x509         *x509.Certificate
}

func newTestCert(t *testing.T, serial int64) testCert {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := "accessledger-test-" + big.NewInt(serial).String()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true, // self-signed: it is its own root
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		der:          der,
		certPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serialNumber: serial,
		commonName:   name,
		x509:         c,
	}
}

// install writes the certificate and key to the paths, each atomically
// (a rename), as a certificate manager does.
func (c testCert) install(t *testing.T, certPath, keyPath string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyPath, c.key}, {certPath, c.certPEM}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCert connects to addr over TLS, trusting roots, and returns the
// certificate the server presents.
func servedCert(t *testing.T, addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestServeTLS serves over real TLS on loopback: the client verifies the
// certificate, the API works over it, plain HTTP is refused, and SIGHUP
// swaps in a new certificate (new connections see it) while a broken one
// is refused and the old kept.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certDir := t.TempDir()
	certPath, keyPath := filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key")
	first, second := newTestCert(t, 1), newTestCert(t, 2)
	first.install(t, certPath, keyPath)
	roots := x509.NewCertPool()
	roots.AddCert(first.x509)
	roots.AddCert(second.x509)

	addr := freeAddr(t)
	s := spawn(t, dir, addr, nil, []string{"serve", "--data", dir, "--listen", addr, "--checkpoint-interval", "100ms",
		"--tls-cert", certPath, "--tls-key", keyPath})
	s.base = "https://" + addr
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if s.exited() || time.Now().After(deadline) {
			t.Fatalf("serve over TLS never became ready (exited %v): %v\nstderr:\n%s", s.exited(), err, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.loadIdentity()
	if resp, err := s.client.Get(s.base + "/healthz"); err != nil || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz over TLS = %v, %v; want HTTP/2", resp, err)
	} else {
		resp.Body.Close()
	}

	// The API works over TLS, verified against the served checkpoint.
	res := s.mustPost(testEvent("tls-1", 1))
	cp := s.waitCheckpoint(res[0].Index+1, 10*time.Second) // the log starts with the admin key's leaf
	s.checkInclusion(cp, res[0].Index, decodeHash(t, "leaf_hash", res[0].LeafHash))
	if got, err := servedCert(t, addr, roots); err != nil || !bytes.Equal(got.Raw, first.der) {
		t.Fatalf("served certificate = %v, %v; want the first", got.Subject, err)
	}
	// Plain HTTP gets no answer of the API.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP GET /healthz = 200, want it refused")
		}
	}
	// Failed handshakes, which anyone can make, are counted, not logged
	// at the default level (a line each flooded the log): a client that
	// does not trust the certificate.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: x509.NewCertPool()}); err == nil {
		c.Close()
		t.Fatalf("a TLS client trusting nothing connected")
	}
	counted := regexp.MustCompile(`(?m)^accessledger_tls_handshake_errors_total [1-9]`)
	for deadline := time.Now().Add(10 * time.Second); !counted.Match(s.get("/metrics", nil)); {
		if time.Now().After(deadline) {
			t.Fatalf("a failed handshake is not counted in accessledger_tls_handshake_errors_total")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(s.stderr.String(), "TLS handshake error") {
		t.Errorf("a failed handshake was logged at the default level:\n%s", s.stderr)
	}

	// SIGHUP swaps the certificate: new connections get the second.
	second.install(t, certPath, keyPath)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitCert(t, addr, roots, second)
	s.client.CloseIdleConnections()
	s.get("/v1/log", nil)

	// A broken certificate is refused and the second kept.
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.stderr.String(), "reloading the TLS certificate failed"); {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a broken certificate:\n%s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := servedCert(t, addr, roots); err != nil || !bytes.Equal(got.Raw, second.der) {
		t.Errorf("served certificate after a broken reload = %v, %v; want the second", got.Subject, err)
	}
	if strings.Contains(s.stderr.String(), "PRIVATE KEY") {
		t.Errorf("the server logged key material:\n%s", s.stderr)
	}
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Errorf("serve over TLS exited %d after SIGTERM\nstderr:\n%s", code, s.stderr)
	}
}

// waitCert waits until new TLS connections to addr are served want.
func waitCert(t *testing.T, addr string, roots *x509.CertPool, want testCert) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := servedCert(t, addr, roots)
		if err == nil && bytes.Equal(got.Raw, want.der) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("served certificate %v (%v) 10s after SIGHUP, want %s", got.Subject, err, want.commonName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeTLSRefusesABadPair: a certificate and a key that do not match
// (or one without the other) stop serve before it writes anything.
func TestServeTLSRefusesABadPair(t *testing.T) {
	certDir := t.TempDir()
	certPath, keyPath := filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key")
	a, b := newTestCert(t, 1), newTestCert(t, 2)
	if err := os.WriteFile(certPath, a.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, b.key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", certPath, "--tls-key", keyPath}, "loading the TLS certificate " + certPath},
		{[]string{"--tls-cert", certPath}, "tls_cert and tls_key go together"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		code, _, stderr := runCLI(t, nil, append([]string{"serve", "--data", dir, "--listen", freeAddr(t)}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v = exit %d, stderr %q; want 1 and %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("serve %v with a bad TLS pair created its data directory", tc.args)
		}
	}
}
