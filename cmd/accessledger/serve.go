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
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
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
	"github.com/accessledger/accessledger/witness"
)

// Files in the data directory.
const (
	storageDir = "badger"
	keyFile    = "log.key"
	vkeyFile   = "log.vkey"
	// createdFile records that a log was created in the data directory,
	// so that storage that later holds no log is refused, not replaced.
	createdFile = "log.created"
)

// serve runs the service until ctx ends, then shuts down gracefully, in
// this order (the one place it is written down): stop accepting
// connections and finish in-flight requests; append the reads recorded
// (read auditing) and stop watching the keys file; stop the followers of the log
// (the query index, the witness distributor, the detector, each saving its
// cursor); stop the scheduled jobs; stop the responders (they record what
// they delivered); drain the append queue, sign a final checkpoint and
// close storage. If that has not finished shutdownGrace after
// shutdown_timeout, the process exits with status 1 without it.
//
// It writes nothing before everything that can be checked is checked and
// the port is bound: a bad configuration, a key for another origin or a
// taken port leaves no data directory, key or admin key behind.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	// Take SIGHUP before anything else: its default action would kill a
	// server that is still starting.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(cfg, stderr)
	log.Debug("scheduler", "procs", raiseMaxProcs(os.Getenv), "cpus", runtime.NumCPU())
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the garbage collector works harder near it, and
		// the runtime returns memory sooner. It never fails allocations.
		debug.SetMemoryLimit(cfg.MemoryLimit << 20)
		// Keep the limit above the live heap (memlimit.go).
		gctx, stopGuard := context.WithCancel(ctx)
		defer stopGuard()
		go guardMemoryLimit(gctx, cfg.MemoryLimit, log)
	}

	// Check, without writing.
	for _, name := range cfg.UnknownEnv {
		log.Warn("ignoring an environment variable that names no setting: misspelt? (accessledger serve -h lists them)", "name", name)
	}
	warnReadableSecrets(cfg, log)
	id, err := resolveIdentity(cfg)
	if err != nil {
		return err
	}
	configured, err := readKeys(cfg)
	if err != nil {
		return err
	}
	if err := checkKeysHeld(cfg, configured); err != nil {
		return err
	}
	engine, enricher, err := buildEngine(cfg.Detect)
	if err != nil {
		return err
	}
	witnessPolicy, err := loadWitnessPolicy(cfg.WitnessPolicy)
	if err != nil {
		return err
	}
	certs, err := loadCerts(cfg) // HTTPS, nil if off (tls.go)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer lis.Close() // after a failed start; Serve closes it otherwise
	if cfg.PprofListen != "" {
		plis, err := net.Listen("tcp", cfg.PprofListen)
		if err != nil {
			return fmt.Errorf("listening on %s for pprof: %w", cfg.PprofListen, err)
		}
		ps := servePprof(plis, log)
		defer ps.Close()
	}

	// Create.
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l, err := openOrCreate(ctx, cfg, id, log, reg)
	if err != nil {
		return err
	}
	if cfg.LogFormat == "json" {
		// Everything on stderr is then one JSON record per line.
		log.Info("accessledger started", "version", version, "origin", l.Origin(), "verifier_key", l.VerifierKey())
	} else {
		fmt.Fprintf(stdout, "accessledger %s: origin %s\nverifier key: %s\n", version, l.Origin(), l.VerifierKey())
	}

	// Sign what the previous process stored, as its Close would have,
	// before any witness is asked: a crash-consistent copy (a snapshot)
	// holds entries durable but unsigned, which the witnesses may have
	// cosigned since; asked before the signer's first tick, a witness
	// would answer with a size beyond the latest checkpoint, and the log
	// would halt although it lost nothing. A log halted at Open (the
	// record in log.behind) signs nothing.
	if _, err := l.SignCheckpoint(ctx); err != nil && !errors.Is(err, ledger.ErrHalted) {
		log.Error("signing a checkpoint over the stored entries at start failed: a witness that cosigned more than the latest checkpoint will take the log for behind", "err", err)
	}

	keys, generated, err := loadKeyring(cfg, configured, log)
	if err != nil {
		l.Close(ctx)
		return err
	}
	// Witnessing pushes checkpoints to the policy's witnesses (witness.go).
	// It starts before anything that appends, and returns once every
	// witness answered (or after a bounded wait): a log restored behind
	// what its witnesses cosigned is halted before it appends anything.
	witnessing, stopWitnessing, err := startWitnessing(ctx, cfg, witnessPolicy, l, log, reg)
	if err != nil {
		l.Close(ctx)
		return err
	}
	det, err := startDetector(ctx, cfg.Data, cfg.Detect.MaxLag, engine, enricher, l, log, reg)
	if err != nil {
		stopWitnessing()
		l.Close(ctx)
		return err
	}
	idx, err := startIndex(cfg, l, log, reg)
	if err != nil {
		stopWitnessing()
		det.stop()
		l.Close(ctx)
		return err
	}
	// The responders follow the log too: the alert feed, deliveries and
	// decisions (respond.go).
	rsp, err := startRespond(cfg, l, log, reg)
	if err != nil {
		idx.stop()
		stopWitnessing()
		det.stop()
		l.Close(ctx)
		return err
	}
	srv, err := api.New(api.Config{
		Index:                idx.searcher(),
		CosignedCheckpoint:   cosignedCheckpoint(witnessing, witnessPolicy, l),
		Witnessing:           witnessing,
		Detections:           det.detections(),
		Responses:            rsp.responses(),
		Decisions:            rsp.decisions(),
		Keys:                 keys,
		KeyFile:              api.NewKeyFile(cfg.keysPath()), // watched and administered (apikeys.go)
		ConfigKeys:           cfg.APIKeys,
		ConfigKeysFrom:       cfg.configKeysFrom(),
		GeneratedKey:         generated,
		RateLimit:            cfg.RateLimit,
		ReadAudit:            api.ReadAudit{Enabled: cfg.AuditReads},
		PublicTiles:          cfg.PublicTiles,
		PublicMetrics:        cfg.PublicMetrics,
		Ledger:               l,
		Logger:               log,
		Gatherer:             reg,
		Registerer:           reg,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		MaxInflightBodyBytes: cfg.MaxInflightBodyBytes,
		// A request never carries more events than one append takes.
		MaxBatchEvents: min(api.DefaultMaxBatchEvents, cfg.MaxBatchSize),
		TrustedProxies: cfg.TrustedProxies,
	})
	if err != nil {
		rsp.stop()
		idx.stop()
		stopWitnessing()
		det.stop()
		l.Close(ctx)
		return err
	}

	// The log records who may write it before the first request; a
	// failure is retried every second (api/admin.go).
	if err := srv.ReloadKeys(ctx); err != nil {
		log.Error("recording the API keys in the log failed", "err", err)
	}
	go reloadOnHUP(ctx, hup, log, srv, certs) // API keys and TLS certificate (tls.go)

	// Scheduled duties: a panic is recovered and logged, and a run still
	// going when the next is due is skipped.
	jobs := cron.New(cron.WithLogger(cronLogger{log}), cron.WithChain(cron.Recover(cronLogger{log}), cron.SkipIfStillRunning(cronLogger{log})))
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
	if err := addDuties(jobs, cfg, l, rsp.service(), log, ctx); err != nil {
		l.Close(ctx)
		return err
	}
	jobs.Start()
	// Watching the keys file and read auditing stop after the HTTP
	// server, so that every read is recorded, and before the log closes.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(runCtx) }()

	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          serverErrorLog(log, reg),
	}
	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = defaultMaxConnections()
	}
	log.Info("listening", "addr", lis.Addr().String(), "data", cfg.Data, "origin", l.Origin(),
		"max_connections", maxConns, "max_connections_per_ip", cfg.MaxConnectionsPerIP)
	serveErr := make(chan error, 1)
	limited := newLimitListener(lis, maxConns, cfg.MaxConnectionsPerIP, reg)
	go func() { serveErr <- serveHTTP(hs, limited, certs, log) }()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("HTTP server failed", "err", err)
	}
	defer shutdownWatchdog(log, cfg.ShutdownTimeout,
		"acknowledged events are synced; the next start rebuilds from the log what the index, the detector and the responders had not saved").Stop()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Answers in flight get half the budget; then the connections still
	// open are closed: a client that does not read its answer must not
	// take the time the log needs to close (it took all of it, and the
	// stop failed with "draining append queue").
	hctx, hcancel := context.WithTimeout(sctx, cfg.ShutdownTimeout/2)
	if serr := hs.Shutdown(hctx); serr != nil {
		log.Warn("HTTP shutdown incomplete: closing the connections of clients still being answered", "err", serr)
		hs.Close()
	}
	hcancel()
	stopRun()
	if rerr := <-runDone; rerr != nil {
		log.Error("read auditing stop", "err", rerr)
	}
	// The index writes what it indexed while the log is open.
	if ierr := idx.stop(); ierr != nil {
		log.Error("index stop", "err", ierr)
	}
	stopWitnessing()
	// The detector appends its pending alerts while the log is open.
	if derr := det.stop(); derr != nil {
		log.Error("detector stop", "err", derr)
	}
	<-jobs.Stop().Done()
	// The responders record what they delivered while the log is open.
	if rerr := rsp.stop(); rerr != nil {
		log.Error("responders stop", "err", rerr)
	}
	if cerr := l.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	cp := l.Latest()
	log.Info("stopped", "checkpoint_size", cp.Size)
	return err
}

// identity is the log's origin and signing key, resolved before anything
// is written.
type identity struct {
	origin   string
	keyPath  string
	vkeyPath string                   // <data>/log.vkey, which records the origin
	key      signature.SignerVerifier // nil: to be generated at keyPath
	recorded string                   // the origin recorded in the data directory
}

// resolveIdentity decides the log's origin and loads its signing key,
// writing nothing. The origin comes from the origin setting, else the data
// directory (log.vkey, written when the log was created), else the key's
// name (<key>.vkey, written by keygen), else a new random one. Where two of
// these disagree it refuses, saying how to fix it: a checkpoint signed
// under another name would verify with no published key.
func resolveIdentity(cfg Config) (identity, error) {
	id := identity{keyPath: cfg.Key, vkeyPath: filepath.Join(cfg.Data, vkeyFile)}
	if id.keyPath == "" {
		id.keyPath = filepath.Join(cfg.Data, keyFile)
	}
	recordedKey, err := readVerifierKey(id.vkeyPath)
	if err != nil {
		return id, err
	}
	keyVKeyPath := id.keyPath + ".vkey"
	keyVKey, err := readVerifierKey(keyVKeyPath)
	if err != nil {
		return id, err
	}
	id.recorded = keyName(recordedKey)
	keyOrigin := keyName(keyVKey)
	if err := checkOrigins(cfg, id.recorded, keyOrigin, keyVKeyPath); err != nil {
		return id, err
	}
	// log.created names the origin too: with log.vkey lost, it is the
	// log's origin, not a new random one the stored log then refuses.
	createdPath := filepath.Join(cfg.Data, createdFile)
	createdOrigin := ""
	if raw, err := os.ReadFile(createdPath); err == nil {
		if rest, ok := strings.CutPrefix(string(raw), "origin "); ok {
			createdOrigin, _, _ = strings.Cut(rest, ",")
		}
	}
	id.origin = firstNonEmpty(cfg.Origin, id.recorded, keyOrigin, createdOrigin)
	if id.origin == "" {
		id.origin = "accessledger.local/" + randomHex(4)
	}
	if err := ledger.CheckOrigin(id.origin); err != nil {
		return id, err
	}

	_, statErr := os.Stat(id.keyPath)
	switch {
	case statErr == nil:
		sv, err := ledger.LoadKeyFile(id.keyPath)
		if err != nil {
			return id, err
		}
		signer, err := ledger.NewNoteSigner(id.origin, sv)
		if err != nil {
			return id, err
		}
		if keyVKey != "" && signer.VerifierKey() != keyVKey {
			return id, fmt.Errorf("signing key %s does not match its verifier key %s: restore the pair keygen wrote, or make a new one", id.keyPath, keyVKeyPath)
		}
		if recordedKey != "" && signer.VerifierKey() != recordedKey {
			return id, fmt.Errorf("signing key %s is not the key of the log in %s (its verifier key, in %s, is %s): use the key this log was created with", id.keyPath, cfg.Data, id.vkeyPath, recordedKey)
		}
		id.key = sv
	case errors.Is(statErr, os.ErrNotExist) && recordedKey != "":
		return id, fmt.Errorf("signing key %s is missing but %s says this log exists; restore the key", id.keyPath, id.vkeyPath)
	case errors.Is(statErr, os.ErrNotExist) && keyVKey != "":
		return id, fmt.Errorf("signing key %s is missing but its verifier key %s is there; restore the key, or point --key at another one", id.keyPath, keyVKeyPath)
	case errors.Is(statErr, os.ErrNotExist) && createdOrigin != "":
		// A new key would only be refused by the stored log, and left behind.
		return id, fmt.Errorf("signing key %s is missing but %s records that the log %s was created here; restore the key", id.keyPath, createdPath, createdOrigin)
	case errors.Is(statErr, os.ErrNotExist):
	default:
		return id, fmt.Errorf("reading signing key: %w", statErr)
	}
	return id, nil
}

// checkOrigins refuses an origin setting, a recorded origin and a key name
// that disagree, and says how to fix it.
func checkOrigins(cfg Config, recorded, keyOrigin, keyVKeyPath string) error {
	type source struct{ what, name string }
	var srcs []source
	if cfg.Origin != "" {
		srcs = append(srcs, source{"the origin setting (--origin, ACCESSLEDGER_ORIGIN or origin: in the config file) is", cfg.Origin})
	}
	if recorded != "" {
		srcs = append(srcs, source{fmt.Sprintf("the log in %s was created with", cfg.Data), recorded})
	}
	if keyOrigin != "" {
		srcs = append(srcs, source{fmt.Sprintf("the signing key %s was made for (%s)", firstNonEmpty(cfg.Key, filepath.Join(cfg.Data, keyFile)), keyVKeyPath), keyOrigin})
	}
	agree := true
	for _, s := range srcs {
		agree = agree && s.name == srcs[0].name
	}
	if agree {
		return nil
	}
	var says []string
	for _, s := range srcs {
		says = append(says, fmt.Sprintf("%s %q", s.what, s.name))
	}
	fix := ""
	switch {
	case recorded != "" && keyOrigin != "" && keyOrigin != recorded:
		fix = fmt.Sprintf("a log's origin is fixed when it is created: use the signing key this log was created with (for %q)", recorded)
		if cfg.Origin != "" && cfg.Origin != recorded {
			fix += ", and remove the origin setting"
		}
	case recorded != "":
		fix = fmt.Sprintf("a log's origin is fixed when it is created: remove the origin setting, or set it to %q", recorded)
	default:
		fix = fmt.Sprintf("the origin is the signing key's name: remove the origin setting to use %q, or make a key for %q with \"accessledger keygen --origin %s --out FILE\" and pass --key FILE",
			keyOrigin, cfg.Origin, cfg.Origin)
	}
	return fmt.Errorf("the log's origin is ambiguous: %s; %s", strings.Join(says, ", but "), fix)
}

// readVerifierKey reads a verifier key file; it returns "" if there is
// none.
func readVerifierKey(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading verifier key: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// keyName returns the name (the origin) of a verifier key, "" for none.
func keyName(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}

// openOrCreate opens the log in the data directory, or creates it (with a
// new signing key, unless there is one) if there is none. Every step is
// crash-safe: the key and the verifier key (which records the origin) are
// written atomically before the log is created, and whether a log exists
// is decided by the ledger itself (ErrNoLog), so a start killed at any
// point can simply be run again.
func openOrCreate(ctx context.Context, cfg Config, id identity, log *slog.Logger, reg prometheus.Registerer) (*ledger.Ledger, error) {
	sv := id.key
	if sv == nil {
		s, err := ledger.GenerateKeyFile(id.keyPath)
		if err != nil {
			return nil, err
		}
		log.Info("generated signing key", "path", id.keyPath)
		sv = s
	}
	signer, err := ledger.NewNoteSigner(id.origin, sv)
	if err != nil {
		return nil, err
	}
	lc := ledger.Config{
		Dir:                filepath.Join(cfg.Data, storageDir),
		TrimDir:            cfg.Data, // the index, detection and response databases too
		TrimInterval:       trimInterval(cfg.StorageTrimInterval),
		TrimAbove:          trimAbove(cfg.StorageTrimAbove),
		MinFreeDisk:        minFreeDisk(cfg.MinFreeDisk),
		Origin:             id.origin,
		Signer:             signer,
		Logger:             log,
		Registerer:         reg,
		QueueSize:          cfg.QueueSize,
		QueueBytes:         cfg.QueueBytes,
		SignTimeout:        cfg.SignTimeout,
		MaxBatchSize:       cfg.MaxBatchSize,
		MaxBatchAge:        cfg.MaxBatchAge,
		CommitInterval:     cfg.CommitInterval,
		CheckpointInterval: cfg.CheckpointInterval,
		QuickOpen:          cfg.QuickOpen,
		// Test-only: the power-loss test shows that it catches lost
		// writes by running the server with syncing off.
		UnsafeNoSyncForTesting: os.Getenv("ACCESSLEDGER_UNSAFE_NO_SYNC_FOR_TESTING") == "1",
	}
	// A log recorded as behind its witnesses (log.behind) is halted
	// before its signer starts: the signer's first tick would sign the
	// entries stored since its latest checkpoint, and then that
	// checkpoint could reach the size in the record, which would void it.
	var recordErr error
	lc.HaltAtOpen = func(latest *ledger.Checkpoint) error {
		rec, err := witness.LoadBehind(filepath.Join(cfg.Data, behindFile), latest.Size, log)
		switch {
		case err != nil:
			recordErr = err
			return err
		case rec != nil:
			return rec
		}
		return nil
	}
	createdPath := filepath.Join(cfg.Data, createdFile)
	l, err := ledger.Open(ctx, lc)
	if errors.Is(err, ledger.ErrNoLog) {
		if created, rerr := os.ReadFile(createdPath); rerr == nil {
			// A new, empty log under the same key and origin would
			// rewrite history unseen: refuse.
			return nil, fmt.Errorf("%s records that a log was created here (%s), but %s holds no log: its storage was lost or replaced. "+
				"Refusing to start a new, empty log under the same key and origin, which would hide the loss from everyone who saw its checkpoints. "+
				"Restore %s from a backup; to start a new log on purpose, remove %s and use a new origin",
				createdPath, strings.TrimSpace(string(created)), lc.Dir, lc.Dir, createdPath)
		}
		// Record the origin before the log exists, so that a crash right
		// after creating it cannot leave a log whose origin is unknown.
		if err := writeVerifierKey(id.vkeyPath, signer.VerifierKey()); err != nil {
			return nil, err
		}
		l, err = ledger.Create(ctx, lc)
	}
	if err != nil {
		return nil, err
	}
	if recordErr != nil {
		l.Close(ctx)
		return nil, recordErr
	}
	if err := writeVerifierKey(id.vkeyPath, signer.VerifierKey()); err != nil {
		l.Close(ctx)
		return nil, err
	}
	if _, err := os.Stat(createdPath); errors.Is(err, os.ErrNotExist) {
		// From now on a missing log is an error, not a first start.
		record := fmt.Sprintf("origin %s, recorded %s\n", l.Origin(), time.Now().UTC().Format(time.RFC3339))
		if err := ledger.WriteFileAtomic(createdPath, []byte(record), 0o644); err != nil {
			l.Close(ctx)
			return nil, fmt.Errorf("recording that the log exists: %w", err)
		}
	}
	return l, nil
}

// servePprof serves Go's profiles on lis (an opt-in loopback address) until
// the returned server is closed.
func servePprof(lis net.Listener, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving Go profiles", "addr", lis.Addr().String(), "path", "/debug/pprof/")
	go ps.Serve(lis)
	return ps
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

// keygen writes a new signing key and prints its verifier key. It records
// the key's name next to it, as the verifier key in <out>.vkey, so that
// serve --key <out> takes its origin from there.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	origin := fs.String("origin", "", "log origin, which is the key name (required)")
	out := fs.String("out", "log.key", "private key file to write (mode 0600); the public key goes to <out>.pub, the verifier key (which records the origin) to <out>.vkey")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *origin == "" {
		return errors.New("--origin is required: the key name is the log's origin")
	}
	if err := ledger.CheckOrigin(*origin); err != nil {
		return err
	}
	vkey, err := generateKeyFiles(*out, func(sv signature.SignerVerifier) (string, error) {
		signer, err := ledger.NewNoteSigner(*origin, sv)
		if err != nil {
			return "", err
		}
		return signer.VerifierKey(), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}

// generateKeyFiles writes a new signing key to out, its public key to
// out.pub and its verifier key, as vkey makes it, to out.vkey: all three
// or none. Each destination is checked before the key is made, and what
// was written is removed if a later step fails, so that the command can
// be run again with the same out; it never replaces a file.
func generateKeyFiles(out string, vkey func(signature.SignerVerifier) (string, error)) (string, error) {
	for _, p := range []string{out, out + ".pub", out + ".vkey"} {
		switch _, err := os.Lstat(p); {
		case err == nil:
			return "", fmt.Errorf("%s already exists: remove it or choose another --out (keygen writes over no file)", p)
		case !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("checking %s: %w", p, err)
		}
	}
	sv, err := ledger.GenerateKeyFile(out)
	if err != nil {
		return "", err
	}
	vk, err := vkey(sv)
	if err == nil {
		if err = ledger.WriteFileAtomic(out+".vkey", []byte(vk+"\n"), 0o644); err != nil {
			err = fmt.Errorf("writing verifier key: %w", err)
		}
	}
	if err != nil {
		for _, p := range []string{out, out + ".pub"} {
			if rerr := os.Remove(p); rerr != nil {
				err = fmt.Errorf("%w (and removing %s: %v)", err, p, rerr)
			}
		}
		return "", err
	}
	return vk, nil
}

// cronLogger adapts robfig/cron's logger to slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug(msg, append([]any{"component", "cron"}, kv...)...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append([]any{"component", "cron", "err", err}, kv...)...)
}

// trimAbove maps storage_trim_above_mib (0: at every check) to
// ledger.Config.TrimAbove in bytes (negative: at every check).
func trimAbove(mib int64) int64 {
	if mib == 0 {
		return -1
	}
	return mib << 20
}

// minFreeDisk maps min_free_disk_mib (0: no check) to
// ledger.Config.MinFreeDisk (negative: no check).
func minFreeDisk(mib int64) int64 {
	if mib == 0 {
		return -1
	}
	return mib << 20
}

// trimInterval maps storage_trim_interval (0: never) to
// ledger.Config.TrimInterval (negative: never).
func trimInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
