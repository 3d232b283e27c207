package main

import (
	"context"
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/witness"
)

// Files in the witness's data directory.
const (
	witnessStorageDir  = "badger"
	witnessKeyFile     = "witness.key"
	witnessVKeyFile    = "witness.vkey"    // the cosignature verifier key, which records the name
	witnessCreatedFile = "witness.created" // state was created here: its loss is an error
)

const witnessUsage = `usage: accessledger witness [flags]                      run a C2SP tlog-witness
       accessledger witness keygen --name NAME --out FILE  write a witness key

The witness cosigns (cosignature/v1, Ed25519) checkpoints of the logs listed
in a C2SP tlog-policy file ("log <vkey>" lines; the file also needs a quorum
line, such as "quorum none"). It serves POST /add-checkpoint and the
monitoring read GET /<hex sha256 of origin>/checkpoint without a key, and
GET /v1/witness/evidence (refused, validly signed checkpoints) to admin keys.
On first start it generates its key (<data>/witness.key, mode 0600) unless
--key names one, and an admin API key (<data>/admin.key) if there is none.
SIGHUP reloads the policy file and the API keys.

Every flag can also be set as ACCESSLEDGER_WITNESSD_<FLAG> (upper case, - as _;
ACCESSLEDGER_WITNESS_* are serve's witnessing settings).

flags:
`

// witnessConfig is the witness command's configuration.
type witnessConfig struct {
	Data            string
	Listen          string
	Policy          string
	Name            string
	Key             string
	APIKeysFile     string
	MaxBodyBytes    int64
	PublicMetrics   bool
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string

	// MaxConnections bounds the connections open at once (0: the file
	// descriptor limit less 1024), MaxConnectionsPerIP those from one
	// address (0: none), as serve's max_connections and
	// max_connections_per_ip do.
	MaxConnections      int
	MaxConnectionsPerIP int
}

// witnessEnvPrefix begins the witness command's variables. It was
// ACCESSLEDGER_WITNESS_, which serve's witnessing settings also begin
// with: ACCESSLEDGER_WITNESS_POLICY was serve's list of witnesses to ask
// and the witness's list of logs to witness (found by review).
const witnessEnvPrefix = "ACCESSLEDGER_WITNESSD_"

// witnessEnv is the environment variable of a witness flag.
func witnessEnv(flagName string) string {
	return witnessEnvPrefix + envName(flagName)[len(envPrefix):]
}

// oldWitnessEnv is the variable a witness flag was read from before
// witnessEnvPrefix, if that is not one of serve's settings.
func oldWitnessEnv(flagName string) (string, bool) {
	v := envPrefix + "WITNESS_" + envName(flagName)[len(envPrefix):]
	cfg := defaultConfig()
	return v, !slices.ContainsFunc(cfg.fields(), func(f configField) bool { return envName(f.name) == v })
}

// witnessFlags parses the witness command's flags over defaults and
// ACCESSLEDGER_WITNESSD_* variables. A variable of the earlier prefix is
// refused rather than ignored: a witness started on the default data
// directory instead of its own would have no memory of what it cosigned.
func witnessFlags(args []string, getenv func(string) string, stderr io.Writer) (witnessConfig, error) {
	c := witnessConfig{
		Data:                "./witness-data",
		Listen:              "127.0.0.1:7380",
		MaxBodyBytes:        api.DefaultWitnessMaxBodyBytes,
		MaxConnectionsPerIP: 1024,
		ShutdownTimeout:     15 * time.Second,
		LogLevel:            "info",
		LogFormat:           "text",
	}
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), witnessUsage)
		fs.PrintDefaults()
	}
	var envErr error
	str := func(p *string, name, usage string) {
		if v := getenv(witnessEnv(name)); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage)
	}
	str(&c.Data, "data", "data directory: state, key, API keys")
	str(&c.Listen, "listen", "HTTP listen address")
	str(&c.Policy, "policy", "C2SP tlog-policy file whose log lines are the logs to witness (required)")
	str(&c.Name, "name", "the witness's key name, a schema-less URL such as witness.example.com/w1 (required at first start, then recorded)")
	str(&c.Key, "key", "witness key file, PKCS#8 PEM Ed25519, mode 0600 (default <data>/witness.key, generated)")
	str(&c.APIKeysFile, "api-keys-file", "API keys file (default <data>/api_keys.yaml)")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text or json")
	if v := getenv(witnessEnv("max-body-bytes")); v != "" {
		c.MaxBodyBytes, envErr = strconv.ParseInt(v, 10, 64)
	}
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "add-checkpoint body limit, in bytes")
	for _, f := range []struct {
		name, usage string
		p           *int
	}{
		{"max-connections", "bound on the connections open at once (0: the open-file limit less 1024)", &c.MaxConnections},
		{"max-connections-per-ip", "bound on the connections open from one address, an IPv6 /64 (0: none; a proxy counts as one)", &c.MaxConnectionsPerIP},
	} {
		if v := getenv(witnessEnv(f.name)); v != "" && envErr == nil {
			*f.p, envErr = strconv.Atoi(v)
		}
		fs.IntVar(f.p, f.name, *f.p, f.usage)
	}
	if v := getenv(witnessEnv("public-metrics")); v != "" && envErr == nil {
		c.PublicMetrics, envErr = parseBool(v)
	}
	fs.BoolVar(&c.PublicMetrics, "public-metrics", c.PublicMetrics, "serve /metrics without an API key")
	if v := getenv(witnessEnv("shutdown-timeout")); v != "" && envErr == nil {
		c.ShutdownTimeout, envErr = time.ParseDuration(v)
	}
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful shutdown bound")
	if envErr != nil {
		return c, fmt.Errorf("environment: %w", envErr)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if old, ok := oldWitnessEnv(f.Name); ok && getenv(old) != "" && envErr == nil {
			envErr = fmt.Errorf("environment: %s is no longer read: the witness command's variables begin with %s (set %s)",
				old, witnessEnvPrefix, witnessEnv(f.Name))
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.Policy == "" && getenv(envPrefix+"WITNESS_POLICY") != "":
		return c, fmt.Errorf("--policy is required: a C2SP tlog-policy file listing the logs to witness (%s; %sWITNESS_POLICY, which is set, is serve's list of witnesses)", witnessEnv("policy"), envPrefix)
	case c.Policy == "":
		return c, errors.New("--policy is required: a C2SP tlog-policy file listing the logs to witness (\"log <vkey>\" lines and a quorum line)")
	case c.Data == "":
		return c, errors.New("--data must not be empty")
	case c.MaxBodyBytes < 1024:
		return c, fmt.Errorf("--max-body-bytes %d is below 1024", c.MaxBodyBytes)
	case c.MaxConnections < 0:
		return c, fmt.Errorf("--max-connections %d is negative (0: the open-file limit less 1024)", c.MaxConnections)
	case c.MaxConnectionsPerIP < 0:
		return c, fmt.Errorf("--max-connections-per-ip %d is negative (0: no bound)", c.MaxConnectionsPerIP)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return c, fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return c, err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("--listen %q: want host:port, such as 127.0.0.1:7380", c.Listen)
	}
	return c, nil
}

// witnessCmd is "accessledger witness": keygen, or run the witness.
func witnessCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "keygen" {
		return witnessKeygen(args[1:], stdout, stderr)
	}
	c, err := witnessFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	return runWitness(ctx, c, stdout, stderr)
}

// loadPolicy reads the trusted logs from a tlog-policy file.
func loadPolicy(path string) (*witness.Policy, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	p, err := witness.ParsePolicy(raw)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// witnessIdentity resolves the witness's name and key, writing nothing: the
// name comes from --name, else the data directory's record, else the
// key's own <key>.vkey; disagreements are refused.
func witnessIdentity(c witnessConfig) (name, keyPath string, key *witness.Cosigner, err error) {
	keyPath = c.Key
	if keyPath == "" {
		keyPath = filepath.Join(c.Data, witnessKeyFile)
	}
	recorded, err := readVerifierKey(filepath.Join(c.Data, witnessVKeyFile))
	if err != nil {
		return "", "", nil, err
	}
	keyVKey, err := readVerifierKey(keyPath + ".vkey")
	if err != nil {
		return "", "", nil, err
	}
	name = firstNonEmpty(c.Name, keyName(recorded), keyName(keyVKey))
	for _, other := range []struct{ name, file string }{
		{keyName(recorded), filepath.Join(c.Data, witnessVKeyFile)},
		{keyName(keyVKey), keyPath + ".vkey"},
	} {
		if other.name != "" && other.name != name {
			return "", "", nil, fmt.Errorf("the witness name is ambiguous: %q (--name or recorded) but %q in %s; a witness's name is fixed with its key: drop --name or use the recorded one",
				name, other.name, other.file)
		}
	}
	if name == "" {
		return "", "", nil, errors.New("--name is required the first time: the witness's key name, such as witness.example.com/w1")
	}
	if err := witness.CheckName(name); err != nil {
		return "", "", nil, err
	}
	switch _, statErr := os.Stat(keyPath); {
	case statErr == nil:
		sv, err := ledger.LoadKeyFile(keyPath)
		if err != nil {
			return "", "", nil, err
		}
		if key, err = witness.NewCosigner(name, sv, nil); err != nil {
			return "", "", nil, err
		}
		for _, vk := range []string{recorded, keyVKey} {
			if vk != "" && vk != key.VerifierKey() {
				return "", "", nil, fmt.Errorf("witness key %s does not match the recorded verifier key %s: use the witness's own key", keyPath, vk)
			}
		}
	case errors.Is(statErr, os.ErrNotExist) && recorded != "":
		return "", "", nil, fmt.Errorf("witness key %s is missing but %s records one: restore the key", keyPath, filepath.Join(c.Data, witnessVKeyFile))
	case errors.Is(statErr, os.ErrNotExist) && c.Key != "":
		return "", "", nil, fmt.Errorf("witness key %s does not exist; make one with \"accessledger witness keygen\"", keyPath)
	case errors.Is(statErr, os.ErrNotExist):
	default:
		return "", "", nil, fmt.Errorf("reading witness key: %w", statErr)
	}
	return name, keyPath, key, nil
}

// runWitness runs the witness until ctx ends, then shuts down: stop
// accepting connections and finish requests in flight, then close storage.
// Like serve, it checks everything and binds its port before it writes
// anything.
func runWitness(ctx context.Context, c witnessConfig, stdout, stderr io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(Config{LogLevel: c.LogLevel, LogFormat: c.LogFormat}, stderr)
	policy, err := loadPolicy(c.Policy)
	if err != nil {
		return err
	}
	if len(policy.Logs) == 0 {
		log.Warn("the policy lists no log: every submission will be answered 404", "policy", c.Policy)
	}
	name, keyPath, key, err := witnessIdentity(c)
	if err != nil {
		return err
	}
	keysCfg := Config{Data: c.Data, APIKeysFile: c.APIKeysFile}
	configured, err := readKeys(keysCfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Listen, err)
	}
	defer lis.Close()

	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	// witness.vkey is written once the state exists (below): a witness
	// that finds it has had state here.
	vkeyPath := filepath.Join(c.Data, witnessVKeyFile)
	_, vkeyErr := os.Stat(vkeyPath)
	hadState := vkeyErr == nil
	if key == nil {
		sv, err := ledger.GenerateKeyFile(keyPath)
		if err != nil {
			return err
		}
		if key, err = witness.NewCosigner(name, sv, nil); err != nil {
			return err
		}
		log.Info("generated witness key", "path", keyPath)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := openOrCreateWitness(ctx, c, hadState, witness.Config{
		Dir:        filepath.Join(c.Data, witnessStorageDir),
		Signer:     key,
		Logs:       policy.Logs,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	if err := writeVerifierKey(vkeyPath, key.VerifierKey()); err != nil {
		return err
	}
	keys, _, err := loadKeyring(keysCfg, configured, log)
	if err != nil {
		return err
	}
	ws, err := api.NewWitness(api.WitnessConfig{
		Witness:       w,
		Logger:        log,
		Gatherer:      reg,
		Registerer:    reg,
		Keys:          keys,
		PublicMetrics: c.PublicMetrics,
		MaxBodyBytes:  c.MaxBodyBytes,
	})
	if err != nil {
		return err
	}
	if c.LogFormat == "json" {
		log.Info("accessledger witness started", "version", version, "name", name, "verifier_key", key.VerifierKey())
	} else {
		fmt.Fprintf(stdout, "accessledger %s witness: name %s\nwitness verifier key: %s\n", version, name, key.VerifierKey())
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadWitness(c, keysCfg, log, w, ws)
			}
		}
	}()
	hs := &http.Server{
		Handler:           ws.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          serverErrorLog(log, reg),
	}
	maxConns := c.MaxConnections
	if maxConns == 0 {
		maxConns = defaultMaxConnections()
	}
	log.Info("witness listening", "addr", lis.Addr().String(), "data", c.Data, "name", name, "logs", len(policy.Logs),
		"max_connections", maxConns, "max_connections_per_ip", c.MaxConnectionsPerIP)
	limited := newLimitListener(lis, maxConns, c.MaxConnectionsPerIP, reg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(limited) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("HTTP server failed", "err", err)
	}
	defer shutdownWatchdog(log, c.ShutdownTimeout, "every cosignature answered was synced first").Stop()
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		log.Warn("HTTP shutdown incomplete", "err", serr)
	}
	if cerr := w.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	log.Info("stopped")
	return err
}

// openOrCreateWitness opens the witness state, or creates it on first
// start. State that vanished after it was created is refused: a witness
// that started over would cosign a log that rolled back, or a fork of one
// it cosigned. witness.created records that state was created, and so
// does witness.vkey (hadState), written after it: with both removed, the
// same key started over and cosigned a fork.
func openOrCreateWitness(ctx context.Context, c witnessConfig, hadState bool, wc witness.Config) (*witness.Witness, error) {
	createdPath := filepath.Join(c.Data, witnessCreatedFile)
	w, err := witness.Open(ctx, wc)
	if errors.Is(err, witness.ErrNoState) {
		const refusal = "Refusing to start over under the same key, which would let logs that rolled back, or forks of what it cosigned, be cosigned. " +
			"Restore %s from a backup; to start a new witness on purpose, use a new key and name in a new data directory"
		if created, rerr := os.ReadFile(createdPath); rerr == nil {
			return nil, fmt.Errorf("%s records that witness state was created here (%s), but %s holds none: it was lost or replaced. "+refusal,
				createdPath, strings.TrimSpace(string(created)), wc.Dir, wc.Dir)
		}
		if hadState {
			return nil, fmt.Errorf("%s records this witness's key, written once its state existed, but %s holds no state: it was lost or replaced. "+refusal,
				filepath.Join(c.Data, witnessVKeyFile), wc.Dir, wc.Dir)
		}
		w, err = witness.Create(ctx, wc)
	}
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(createdPath); errors.Is(err, os.ErrNotExist) {
		record := fmt.Sprintf("witness %s, recorded %s\n", wc.Signer.Name(), time.Now().UTC().Format(time.RFC3339))
		if err := ledger.WriteFileAtomic(createdPath, []byte(record), 0o644); err != nil {
			w.Close()
			return nil, fmt.Errorf("recording that the witness state exists: %w", err)
		}
	}
	return w, nil
}

// reloadWitness re-reads the policy file and the API keys; a bad file
// keeps the old settings.
func reloadWitness(c witnessConfig, keysCfg Config, log *slog.Logger, w *witness.Witness, ws *api.WitnessServer) {
	if p, err := loadPolicy(c.Policy); err != nil {
		log.Error("reloading the policy failed; keeping the old one", "err", err)
	} else {
		w.SetLogs(p.Logs)
		log.Info("reloaded the policy", "logs", len(p.Logs))
	}
	keys, err := readKeys(keysCfg)
	var kr *api.Keyring
	if err == nil {
		kr, _, err = loadKeyring(keysCfg, keys, log)
	}
	if err != nil {
		log.Error("reloading API keys failed; keeping the old ones", "err", err)
		return
	}
	ws.SetKeyring(kr)
	log.Info("reloaded API keys", "count", kr.Len())
}

// witnessKeygen writes a witness key (0600), its public key and its
// cosignature verifier key (<out>.vkey), and prints the verifier key: the
// key of the witness line in log operators' policy files.
func witnessKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("witness keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the witness's key name, such as witness.example.com/w1 (required)")
	out := fs.String("out", "witness.key", "private key file to write (mode 0600); the public key goes to <out>.pub, the verifier key to <out>.vkey")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *name == "" {
		return errors.New("--name is required: the witness's key name")
	}
	if err := witness.CheckName(*name); err != nil {
		return err
	}
	vkey, err := generateKeyFiles(*out, func(sv signature.SignerVerifier) (string, error) {
		cs, err := witness.NewCosigner(*name, sv, nil)
		if err != nil {
			return "", err
		}
		return cs.VerifierKey(), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}

// witnessedFile keeps the newest witnessed checkpoint across restarts.
const witnessedFile = "witnessed.checkpoint"

// behindFile records that a witness holds a checkpoint the log does not
// contain: the log takes no appends while it applies (README: Restoring
// from a backup).
const behindFile = "log.behind"

// loadWitnessPolicy reads serve's witness_policy, writing nothing; nil if
// none is set. Every witness needs a URL: the log pushes to it.
func loadWitnessPolicy(path string) (*witness.Policy, error) {
	if path == "" {
		return nil, nil
	}
	p, err := loadPolicy(path)
	if err != nil {
		return nil, fmt.Errorf("witness_policy: %w", err)
	}
	for _, w := range p.Witnesses {
		if w.URL == "" {
			return nil, fmt.Errorf("witness_policy %s: witness %s has no URL; the log pushes its checkpoints to each witness's submission URL (\"witness <name> <vkey> <url>\")", path, w.Name)
		}
	}
	return p, nil
}

// ledgerLog adapts the ledger to witness.Log.
type ledgerLog struct{ *ledger.Ledger }

func (l ledgerLog) LatestCheckpoint() (uint64, []byte, time.Time) {
	cp := l.Latest()
	return cp.Size, cp.Note, cp.SignedAt
}

// startWitnessing starts pushing the log's checkpoints to the policy's
// witnesses. It returns what the API serves (nil without a policy) and a
// stop function that waits for the pushers to end; serve calls it after
// the HTTP server stopped and before the ledger closes.
//
// A witness that holds a checkpoint the log does not contain halts the
// ledger (ledger.Halt): the log lost entries it published, and whatever
// it appended would fork it. So that nothing is appended before the
// witnesses are heard, serve calls startWitnessing before it starts
// anything that appends (the detector, the responders, the API), and
// startWitnessing waits for every witness's first answer, or at most
// twice witness_timeout (until ctx ends), whatever witness_fail_open
// says: a witness that does not answer delays the start, never stops it.
// An answer is a status the witness decided on: no connection, a timeout,
// a 5xx or a 429 is none (witness.Distributor.WaitFirstRound), and the
// warning after the wait names every witness without one.
// The record in behindFile halts the ledger at once, with or without a
// policy.
func startWitnessing(ctx context.Context, cfg Config, p *witness.Policy, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (api.Witnessing, func(), error) {
	if p == nil {
		rec, err := witness.LoadBehind(filepath.Join(cfg.Data, behindFile), l.Latest().Size, log)
		if err != nil {
			return nil, nil, err
		}
		if rec != nil {
			l.Halt(rec) // done at Open (openOrCreate); kept for whoever calls it otherwise
			if err := witness.RegisterLogBehind(reg); err != nil {
				return nil, nil, err
			}
			log.Error("the log is behind a checkpoint its witnesses cosigned, as recorded (with no witness policy now): it takes no appends (README: Restoring from a backup)", "err", rec, "record", filepath.Join(cfg.Data, behindFile))
		}
		return nil, func() {}, nil
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		return nil, nil, err
	}
	d, err := witness.NewDistributor(witness.DistributorConfig{
		Policy:      p,
		Log:         ledgerLog{l},
		LogVerifier: v,
		FailOpen:    cfg.WitnessFailOpen,
		StateFile:   filepath.Join(cfg.Data, witnessedFile),
		WriteFile:   func(path string, data []byte) error { return ledger.WriteFileAtomic(path, data, 0o644) },
		Timeout:     cfg.WitnessTimeout,
		Logger:      log.With("component", "witnessing"),
		Registerer:  reg,
		OnBehind:    l.Halt,
		BehindFile:  filepath.Join(cfg.Data, behindFile),
		SignDurable: l.SignDurable,
	})
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(rctx)
	}()
	log.Info("witnessing", "witnesses", len(p.Witnesses), "quorum_none", p.QuorumNone(), "fail_open", cfg.WitnessFailOpen)
	wctx, wcancel := context.WithTimeout(ctx, 2*cfg.WitnessTimeout)
	defer wcancel()
	if err := d.WaitFirstRound(wctx); errors.Is(err, context.DeadlineExceeded) {
		// Down, black-holed, or behind a proxy answering 5xx or 429:
		// each is still asked every quarter-second or so.
		log.Warn("taking events before every witness answered: a log restored behind what a silent witness cosigned is stopped only once it answers (README: Restoring from a backup)",
			"waited", 2*cfg.WitnessTimeout, "witnesses", d.Unanswered())
	}
	return d, func() { cancel(); <-done }, nil
}
