package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
)

// Files in the data directory.
const (
	storageDir = "badger"
	keyFile    = "log.key"
	vkeyFile   = "log.vkey"
)

// serve runs the service until ctx ends, then shuts down gracefully: stop
// accepting connections and finish in-flight requests, then drain the
// append queue and sign a final checkpoint, then close storage.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	// Take SIGHUP before anything else: its default action would kill a
	// server that is still starting.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(cfg, stderr)
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the garbage collector works harder near it, and
		// the runtime returns memory sooner. It never fails allocations.
		debug.SetMemoryLimit(cfg.MemoryLimit << 20)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l, err := openOrCreate(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accessledger %s: origin %s\nverifier key: %s\n", version, l.Origin(), l.VerifierKey())

	keys, err := loadKeyring(cfg, log)
	if err != nil {
		l.Close(ctx)
		return err
	}
	srv, err := api.New(api.Config{
		Keys:           keys,
		PublicTiles:    cfg.PublicTiles,
		PublicMetrics:  cfg.PublicMetrics,
		Ledger:         l,
		Logger:         log,
		Gatherer:       reg,
		Registerer:     reg,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxBatchEvents: api.DefaultMaxBatchEvents,
		TrustedProxies: cfg.TrustedProxies,
	})
	if err != nil {
		l.Close(ctx)
		return err
	}

	go reloadKeysOnHUP(ctx, hup, cfg, log, srv)

	jobs := cron.New(cron.WithLogger(cronLogger{log}), cron.WithChain(cron.SkipIfStillRunning(cronLogger{log})))
	if cfg.GCSchedule != "" {
		if _, err := jobs.AddFunc(cfg.GCSchedule, func() {
			if err := l.RunValueLogGC(ctx); err != nil && ctx.Err() == nil {
				log.Error("value log GC failed", "err", err)
			}
		}); err != nil {
			l.Close(ctx)
			return fmt.Errorf("gc_schedule %q: %w", cfg.GCSchedule, err)
		}
	}
	jobs.Start()

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		<-jobs.Stop().Done()
		l.Close(ctx)
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", lis.Addr().String(), "data", cfg.Data, "origin", l.Origin())
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(lis) }()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("HTTP server failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		log.Warn("HTTP shutdown incomplete", "err", serr)
	}
	<-jobs.Stop().Done()
	if cerr := l.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	cp := l.Latest()
	log.Info("stopped", "checkpoint_size", cp.Size)
	return err
}

// openOrCreate opens the log in the data directory, or creates it (with a
// new signing key and origin, unless configured) if there is none. Every
// step is crash-safe: the key and the verifier key (which records the
// origin) are written atomically before the log is created, and whether a
// log exists is decided by the ledger itself (ErrNoLog), so a start killed
// at any point can simply be run again.
func openOrCreate(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*ledger.Ledger, error) {
	dir := filepath.Join(cfg.Data, storageDir)
	keyPath := cfg.Key
	if keyPath == "" {
		keyPath = filepath.Join(cfg.Data, keyFile)
	}
	vkeyPath := filepath.Join(cfg.Data, vkeyFile)

	origin := cfg.Origin
	recorded := ""
	if raw, err := os.ReadFile(vkeyPath); err == nil {
		recorded, _, _ = strings.Cut(strings.TrimSpace(string(raw)), "+")
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading verifier key: %w", err)
	}
	if origin == "" {
		origin = recorded
	}
	if origin == "" {
		origin = "accessledger.local/" + randomHex(4)
	}
	if err := ledger.CheckOrigin(origin); err != nil {
		return nil, err
	}

	var sv signature.SignerVerifier
	_, statErr := os.Stat(keyPath)
	switch {
	case statErr == nil:
		s, err := ledger.LoadKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		sv = s
	case errors.Is(statErr, os.ErrNotExist) && recorded != "":
		return nil, fmt.Errorf("signing key %s is missing but %s says this log exists; restore the key", keyPath, vkeyPath)
	case errors.Is(statErr, os.ErrNotExist):
		s, err := ledger.GenerateKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		log.Info("generated signing key", "path", keyPath)
		sv = s
	default:
		return nil, fmt.Errorf("reading signing key: %w", statErr)
	}
	signer, err := ledger.NewNoteSigner(origin, sv)
	if err != nil {
		return nil, err
	}
	lc := ledger.Config{
		Dir:                dir,
		Origin:             origin,
		Signer:             signer,
		Logger:             log,
		Registerer:         reg,
		QueueSize:          cfg.QueueSize,
		MaxBatchSize:       cfg.MaxBatchSize,
		MaxBatchAge:        cfg.MaxBatchAge,
		CheckpointInterval: cfg.CheckpointInterval,
		QuickOpen:          cfg.QuickOpen,
		// Test-only: the power-loss test shows that it catches lost
		// writes by running the server with syncing off.
		UnsafeNoSyncForTesting: os.Getenv("ACCESSLEDGER_UNSAFE_NO_SYNC_FOR_TESTING") == "1",
	}
	l, err := ledger.Open(ctx, lc)
	if errors.Is(err, ledger.ErrNoLog) {
		// Record the origin before the log exists, so that a crash right
		// after creating it cannot leave a log whose origin is unknown.
		if err := writeVerifierKey(vkeyPath, signer.VerifierKey()); err != nil {
			return nil, err
		}
		l, err = ledger.Create(ctx, lc)
	}
	if err != nil {
		return nil, err
	}
	if err := writeVerifierKey(vkeyPath, signer.VerifierKey()); err != nil {
		l.Close(ctx)
		return nil, err
	}
	return l, nil
}

func writeVerifierKey(path, vkey string) error {
	if raw, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(raw)) == vkey {
		return nil
	}
	if err := ledger.WriteFileAtomic(path, []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing verifier key: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// keygen writes a new signing key and prints its verifier key.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	origin := fs.String("origin", "", "log origin, which is the key name (required)")
	out := fs.String("out", "log.key", "private key file to write (mode 0600); the public key goes to <out>.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *origin == "" {
		return errors.New("--origin is required: the key name is the log's origin")
	}
	if err := ledger.CheckOrigin(*origin); err != nil {
		return err
	}
	sv, err := ledger.GenerateKeyFile(*out)
	if err != nil {
		return err
	}
	signer, err := ledger.NewNoteSigner(*origin, sv)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, signer.VerifierKey())
	return nil
}

// cronLogger adapts robfig/cron's logger to slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug(msg, append([]any{"component", "cron"}, kv...)...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append([]any{"component", "cron", "err", err}, kv...)...)
}

// reloadKeysOnHUP re-reads the API keys whenever the process gets SIGHUP.
// A bad keys file keeps the old keys.
func reloadKeysOnHUP(ctx context.Context, hup <-chan os.Signal, cfg Config, log *slog.Logger, srv *api.Server) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			keys, err := loadKeyring(cfg, log)
			if err != nil {
				log.Error("reloading API keys failed; keeping the old ones", "err", err)
				continue
			}
			srv.SetKeyring(keys)
			log.Info("reloaded API keys", "count", keys.Len())
		}
	}
}
