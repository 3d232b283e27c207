package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
)

// certReloader serves HTTPS with the certificate and key of two PEM files
// (tls_cert, tls_key), which reload re-reads (on SIGHUP): connections made
// after a reload get the new certificate, those open keep theirs. A
// failed reload keeps the old pair. It is safe for concurrent use.
type certReloader struct {
	certPath, keyPath string
	cert              atomic.Pointer[tls.Certificate]
}

// loadCerts loads the TLS certificate and key of cfg; nil if TLS is off.
// It writes nothing, so serve can call it before anything else.
func loadCerts(cfg Config) (*certReloader, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	r := &certReloader{certPath: cfg.TLSCert, keyPath: cfg.TLSKey}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload re-reads the certificate and key and returns the certificate.
func (r *certReloader) reload() (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		// The error names the files, never their content.
		return nil, fmt.Errorf("loading the TLS certificate %s and key %s: %w", r.certPath, r.keyPath, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the TLS certificate %s: %w", r.certPath, err)
		}
		pair.Leaf = leaf
	}
	r.cert.Store(&pair)
	return leaf, nil
}

// config returns the TLS configuration that serves the current
// certificate.
func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// checkKeyMode warns about a TLS key that others may read.
func (r *certReloader) checkKeyMode(log *slog.Logger) {
	warnIfReadable(log, "the TLS key", r.keyPath, 0o007, "chmod o-rwx")
}

// logCert logs which certificate is served and warns if it is not valid
// now.
func logCert(log *slog.Logger, msg string, leaf *x509.Certificate) {
	attrs := []any{"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	now := time.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		log.Warn(msg+"; it is not valid now", attrs...)
		return
	}
	log.Info(msg, attrs...)
}

// reloadOnHUP reloads, whenever the process gets SIGHUP, the API keys
// (which the server also re-reads when their file changes) and the TLS
// certificate (certs, nil without TLS). What fails to load keeps the old.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, log *slog.Logger, srv *api.Server, certs *certReloader) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.ReloadKeys(ctx); err != nil {
				log.Error("reloading API keys failed", "err", err)
			} else {
				log.Info("reloaded API keys")
			}
			if certs != nil {
				leaf, err := certs.reload()
				if err != nil {
					log.Error("reloading the TLS certificate failed; keeping the old one", "err", err)
					continue
				}
				certs.checkKeyMode(log)
				logCert(log, "reloaded the TLS certificate", leaf)
			}
		}
	}
}

// serveHTTP serves hs on lis until it is shut down: HTTPS with the
// certificate of certs, or plain HTTP if certs is nil.
func serveHTTP(hs *http.Server, lis net.Listener, certs *certReloader, log *slog.Logger) error {
	if certs == nil {
		return hs.Serve(lis)
	}
	hs.TLSConfig = certs.config()
	certs.checkKeyMode(log)
	logCert(log, "serving HTTPS", certs.cert.Load().Leaf)
	return hs.ServeTLS(lis, "", "")
}

// serverErrorLog is an http.Server's ErrorLog: its lines at WARN, except
// failed TLS handshakes, which anyone who can connect makes (scanners,
// clients that do not trust the certificate), and which flooded the log
// with a line per connection: those are at DEBUG, and counted in
// accessledger_tls_handshake_errors_total.
func serverErrorLog(log *slog.Logger, reg prometheus.Registerer) *stdlog.Logger {
	handshakes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accessledger_tls_handshake_errors_total",
		Help: "TLS handshakes that failed (logged at debug level).",
	})
	if reg != nil {
		reg.MustRegister(handshakes)
	}
	return stdlog.New(errorLogWriter{log: log, handshakes: handshakes}, "", 0)
}

type errorLogWriter struct {
	log        *slog.Logger
	handshakes prometheus.Counter
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, "http: TLS handshake error from ") {
		w.handshakes.Inc()
		w.log.Debug(msg)
		return len(p), nil
	}
	w.log.Warn(msg)
	return len(p), nil
}
