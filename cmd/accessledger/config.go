package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/internal/strictyaml"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/respond"
)

// Config is the serve command's configuration. Precedence, lowest first:
// these defaults, the YAML file (--config), ACCESSLEDGER_* environment
// variables, command-line flags.
type Config struct {
	// Data is the data directory: storage, signing key, verifier key.
	Data string `yaml:"data"`
	// Listen is the HTTP listen address.
	Listen string `yaml:"listen"`
	// Origin names the log (checkpoint origin and key name). Default: the
	// origin recorded in the data directory, or a new random one at
	// creation.
	Origin string `yaml:"origin"`
	// Key is the Ed25519 signing key file (PKCS#8 PEM, mode 0600).
	// Default: <data>/log.key, generated at creation.
	Key string `yaml:"key"`

	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	MaxBatchSize       int           `yaml:"max_batch_size"`
	MaxBatchAge        time.Duration `yaml:"max_batch_age"`
	// CommitInterval is, after a storage commit of concurrent requests,
	// the least time until the next one begins
	// (ledger.Config.CommitInterval).
	CommitInterval time.Duration `yaml:"commit_interval"`
	QueueSize      int           `yaml:"queue_size"`
	// QueueBytes bounds the memory held by events waiting to be
	// committed; beyond it appends get 503 with Retry-After.
	QueueBytes int64 `yaml:"queue_bytes"`
	// SignTimeout bounds one checkpoint signature.
	SignTimeout  time.Duration `yaml:"sign_timeout"`
	MaxBodyBytes int64         `yaml:"max_body_bytes"`
	// MaxInflightBodyBytes bounds the bytes of all request bodies being
	// read or held at once; a request that cannot get its share within a
	// second is answered 503 with Retry-After.
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes"`
	// MaxConnections bounds the connections open at once (0: the file
	// descriptor limit less 1024), MaxConnectionsPerIP those from one
	// address (0: no bound); beyond, a connection is closed as soon as
	// accepted (connlimit.go).
	MaxConnections      int      `yaml:"max_connections"`
	MaxConnectionsPerIP int      `yaml:"max_connections_per_ip"`
	TrustedProxies      []string `yaml:"trusted_proxies"`
	// ConfigFile is the config file read (--config), if any.
	ConfigFile string `yaml:"-"`
	// UnknownEnv are the ACCESSLEDGER_* variables set that name no
	// setting (misspelt?), which serve warns about.
	UnknownEnv []string `yaml:"-"`
	// APIKeys are API keys given in the config file (hashed).
	APIKeys []api.APIKey `yaml:"api_keys"`
	// APIKeysFile holds more keys; default <data>/api_keys.yaml. The
	// server re-reads it when it changes (and on SIGHUP), and changes it
	// through its admin API (apikeys.go).
	APIKeysFile string `yaml:"api_keys_file"`
	// RateLimit is the rate limit of each API key that has none of its
	// own; per_second 0 (the default): none.
	RateLimit api.RateLimit `yaml:"rate_limit"`
	// AuditReads records every read of personal data (entries, entry
	// bundles, queries, evidence) in the log, as an access event of
	// service accessledger naming the API key.
	AuditReads bool `yaml:"audit_reads"`
	// TLSCert and TLSKey, set together, make serve speak HTTPS with this
	// certificate (PEM, chain after it) and key; both are re-read on
	// SIGHUP (tls.go).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// PublicTiles serves checkpoints, hash tiles and proofs without a key.
	PublicTiles bool `yaml:"public_tiles"`
	// PublicMetrics serves /metrics without a key.
	PublicMetrics bool `yaml:"public_metrics"`
	// QuickOpen skips re-hashing every entry at start-up.
	QuickOpen bool `yaml:"quick_open"`
	// GCSchedule is the cron schedule of value-log garbage collection.
	GCSchedule string `yaml:"gc_schedule"`
	// MemoryLimit is the Go runtime's soft memory limit in MiB (0: none).
	// The GOMEMLIMIT environment variable, if set, wins.
	MemoryLimit int64 `yaml:"memory_limit_mib"`
	// StorageTrimInterval is how often the server checks whether to hand
	// the pages of the databases' mapped files back to the kernel, so
	// that RSS does not count them (0: never; see
	// ledger.Config.TrimInterval).
	StorageTrimInterval time.Duration `yaml:"storage_trim_interval"`
	// StorageTrimAbove is the file-backed resident memory, in MiB, above
	// which a check drops those pages; above half of it, those of the
	// write-ahead and value logs only (0: all of them at every check; see
	// ledger.Config.TrimAbove).
	StorageTrimAbove int64 `yaml:"storage_trim_above_mib"`
	// MinFreeDisk is the free space, in MiB, of the file system holding
	// the log below which appends are refused (503) until space is freed
	// (0: no check; see ledger.DefaultMinFreeDisk).
	MinFreeDisk int64 `yaml:"min_free_disk_mib"`
	// Index keeps the query indexes (<data>/index) and serves the query
	// and evidence endpoints.
	Index bool `yaml:"index"`
	// IndexMaxLag bounds how many committed entries the index may lag
	// behind the log once it has caught up: beyond it, appends get 503
	// with Retry-After until it catches up. 0: no bound.
	IndexMaxLag int64 `yaml:"index_max_lag"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// PprofListen, if set, serves Go's net/http/pprof profiles on this
	// loopback address (off by default: profiles reveal internals).
	PprofListen string `yaml:"pprof_listen"`

	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`

	// WitnessPolicy is a C2SP tlog-policy file naming the witnesses
	// (with their URLs) to push checkpoints to and the quorum GET
	// /checkpoint waits for; empty: no witnessing.
	WitnessPolicy string `yaml:"witness_policy"`
	// WitnessFailOpen serves the latest checkpoint, with the
	// cosignatures it has, when the quorum is not met for it.
	WitnessFailOpen bool `yaml:"witness_fail_open"`
	// WitnessTimeout bounds one request to a witness.
	WitnessTimeout time.Duration `yaml:"witness_timeout"`

	// Detect configures detection: rules, named lists, enrichment (see
	// DetectConfig in rules.go).
	Detect DetectConfig `yaml:"detect"`

	// Respond runs the responders' service (<data>/respond): the alert
	// feed, acknowledgements, deliveries and decisions.
	Respond bool `yaml:"respond"`
	// Responders are where alerts are delivered; Delivery is their retry
	// policy (see respond.ResponderConfig and examples/serve.yaml).
	Responders []respond.ResponderConfig `yaml:"responders"`
	Delivery   respond.DeliveryConfig    `yaml:"delivery"`
	// Decisions serves IP decisions to bouncers (CrowdSec Local API).
	Decisions DecisionSettings `yaml:"decisions"`
	// SelfAuditSchedule is the cron schedule of the integrity self-audit;
	// DigestSchedule that of the daily digest (of the UTC day just
	// ended). Empty: never.
	SelfAuditSchedule string `yaml:"self_audit_schedule"`
	DigestSchedule    string `yaml:"digest_schedule"`
}

func defaultConfig() Config {
	return Config{
		Data:                 "./data",
		Listen:               "127.0.0.1:8080",
		CheckpointInterval:   time.Second,
		MaxBatchSize:         4096,
		CommitInterval:       time.Millisecond,
		QueueSize:            65536,
		QueueBytes:           64 << 20,
		SignTimeout:          10 * time.Second,
		MaxBodyBytes:         8 << 20,
		MaxInflightBodyBytes: api.DefaultMaxInflightBodyBytes,
		MaxConnectionsPerIP:  1024,
		GCSchedule:           "@every 10m",
		MemoryLimit:          256,
		StorageTrimInterval:  250 * time.Millisecond,
		StorageTrimAbove:     ledger.DefaultTrimAbove >> 20,
		MinFreeDisk:          ledger.DefaultMinFreeDisk >> 20,
		ShutdownTimeout:      15 * time.Second,
		Index:                true,
		IndexMaxLag:          131072,
		AuditReads:           true,
		LogLevel:             "info",
		LogFormat:            "text",
		WitnessTimeout:       5 * time.Second,
		Detect:               defaultDetectConfig(),
		Respond:              true,
		Delivery:             respond.DefaultDelivery(),
		Decisions:            DecisionSettings{Enabled: true},
		SelfAuditSchedule:    "CRON_TZ=UTC 30 3 * * *",
		DigestSchedule:       "CRON_TZ=UTC 5 0 * * *",
	}
}

// configField binds one setting to its flag and environment variable.
type configField struct {
	name  string // flag name; env is ACCESSLEDGER_ + upper(name with - → _)
	usage string
	ptr   any
}

func (c *Config) fields() []configField {
	return []configField{
		{"data", "data directory", &c.Data},
		{"listen", "HTTP listen address", &c.Listen},
		{"origin", "log origin (default: recorded in the data directory, or generated)", &c.Origin},
		{"key", "signing key file (default <data>/log.key)", &c.Key},
		{"checkpoint-interval", "checkpoint signing cadence", &c.CheckpointInterval},
		{"max-batch-size", "entries per storage transaction", &c.MaxBatchSize},
		{"max-batch-age", "how long a batch may wait to fill", &c.MaxBatchAge},
		{"commit-interval", "after a storage commit of concurrent requests, the least time until the next begins; 0 for none", &c.CommitInterval},
		{"queue-size", "append queue bound, in entries", &c.QueueSize},
		{"queue-bytes", "append queue bound, in bytes of events held", &c.QueueBytes},
		{"sign-timeout", "longest wait for one checkpoint signature", &c.SignTimeout},
		{"max-body-bytes", "request body limit, in bytes", &c.MaxBodyBytes},
		{"max-inflight-body-bytes", "bound on the bytes of all request bodies read at once", &c.MaxInflightBodyBytes},
		{"max-connections", "bound on the connections open at once (0: the open-file limit less 1024)", &c.MaxConnections},
		{"max-connections-per-ip", "bound on the connections open from one address (0: none; a proxy counts as one)", &c.MaxConnectionsPerIP},
		{"api-keys-file", "API keys file (default <data>/api_keys.yaml)", &c.APIKeysFile},
		{"audit-reads", "record who read personal data (entries, bundles, queries, evidence) in the log", &c.AuditReads},
		{"tls-cert", "TLS certificate file (PEM, chain after it): serve HTTPS; re-read on SIGHUP", &c.TLSCert},
		{"tls-key", "TLS private key file (PEM) of --tls-cert; re-read on SIGHUP", &c.TLSKey},
		{"public-tiles", "serve checkpoints, hash tiles and proofs without an API key", &c.PublicTiles},
		{"public-metrics", "serve /metrics without an API key", &c.PublicMetrics},
		{"quick-open", "skip re-hashing every entry at start-up", &c.QuickOpen},
		{"gc-schedule", "cron schedule of value-log GC", &c.GCSchedule},
		{"respond", "run the responders: alert feed, acknowledgements, deliveries, decisions", &c.Respond},
		{"self-audit-schedule", "cron schedule of the integrity self-audit (empty: never)", &c.SelfAuditSchedule},
		{"digest-schedule", "cron schedule of the daily digest (empty: never)", &c.DigestSchedule},
		{"memory-limit-mib", "Go soft memory limit in MiB, 0 for none (GOMEMLIMIT wins)", &c.MemoryLimit},
		{"storage-trim-interval", "how often to check whether to drop the storage's mapped pages from RSS (and the page cache); 0: never", &c.StorageTrimInterval},
		{"storage-trim-above-mib", "drop them when file-backed RSS exceeds this many MiB, and the logs' pages above half of it; 0: all at every check", &c.StorageTrimAbove},
		{"min-free-disk-mib", "refuse appends (503) while the log's file system has less free space than this many MiB; 0: no check", &c.MinFreeDisk},
		{"shutdown-timeout", "graceful shutdown bound", &c.ShutdownTimeout},
		{"index", "keep the query indexes and serve queries and evidence", &c.Index},
		{"index-max-lag", "entries the index may lag the log before appends get 503 (0: no bound)", &c.IndexMaxLag},
		{"pprof-listen", "serve Go profiles (net/http/pprof) on this loopback address; off when empty", &c.PprofListen},
		{"log-level", "debug, info, warn or error", &c.LogLevel},
		{"log-format", "text or json", &c.LogFormat},
		{"witness-policy", "C2SP tlog-policy file: witnesses to push checkpoints to, and the quorum /checkpoint waits for", &c.WitnessPolicy},
		{"witness-fail-open", "serve the latest checkpoint even when its witness quorum is not met", &c.WitnessFailOpen},
		{"witness-timeout", "longest wait for one witness answer", &c.WitnessTimeout},
		{"detect", "run the detection rules and append their alerts to the log", &c.Detect.Enabled},
		{"rules-dir", "directory of your own Sigma rules, loaded with the default pack", &c.Detect.RulesDir},
		{"lists-dir", "directory of named lists (<name>.txt) replacing the starter lists", &c.Detect.ListsDir},
		{"geoip-city", "MaxMind City or Country database for enrichment (off when empty)", &c.Detect.GeoIPCity},
		{"geoip-asn", "MaxMind ASN database for enrichment (off when empty)", &c.Detect.GeoIPASN},
		{"detect-max-lag", "leaves the detector may lag the log before appends get 503 (0: no bound)", &c.Detect.MaxLag},
	}
}

func envName(flagName string) string {
	return "ACCESSLEDGER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig parses args for the serve command and applies the layers. A
// variable of env set to "" sets a string setting to "", as the flag
// given "" does (an empty schedule turns its job off); for other settings
// it counts as unset.
func loadConfig(args []string, env environment, stderr io.Writer) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", env.get("ACCESSLEDGER_CONFIG"), "YAML configuration file (env ACCESSLEDGER_CONFIG)")
	// Flags are registered on a scratch copy so that parsing them does
	// not overwrite the file and environment layers; only flags the user
	// set are applied afterwards. The copy holds the defaults, so that
	// -h shows them.
	flagged := defaultConfig()
	for _, f := range flagged.fields() {
		usage := f.usage + " (env " + envName(f.name) + ")"
		switch p := f.ptr.(type) {
		case *string:
			fs.StringVar(p, f.name, *p, usage)
		case *int:
			fs.IntVar(p, f.name, *p, usage)
		case *int64:
			fs.Int64Var(p, f.name, *p, usage)
		case *bool:
			fs.BoolVar(p, f.name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, f.name, *p, usage)
		}
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: accessledger serve [flags]\n\n"+
			"Settings come from these defaults, then the YAML file (--config), then the\n"+
			"ACCESSLEDGER_* environment variables, then the flags.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := readConfigFile(*configPath, &cfg); err != nil {
		return cfg, err
	}
	fields := cfg.fields()
	cfg.UnknownEnv = unknownEnv(env, fields)
	for _, f := range fields {
		v, ok := env.lookup(envName(f.name))
		if !ok || v == "" && !emptyMeansOff[f.name] {
			// Empty is unset, but where it turns something off: a
			// template's ${UNSET} must not empty the data directory,
			// the rules or the TLS files.
			continue
		}
		if err := setFromString(f.ptr, v); err != nil {
			return cfg, fmt.Errorf("%s: %w", envName(f.name), err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, f := range flagged.fields() {
		if set[f.name] {
			copyValue(fields[i].ptr, f.ptr)
		}
	}
	return cfg, cfg.validate()
}

// emptyMeansOff are the settings an environment variable set to "" turns
// off, as the flag given "" does; for every other setting "" is unset.
var emptyMeansOff = map[string]bool{
	"gc-schedule": true, "self-audit-schedule": true, "digest-schedule": true, "pprof-listen": true,
}

// readConfigFile applies a YAML config file to cfg, rejecting unknown keys
// and a second document, and records its path; no path: none.
func readConfigFile(path string, cfg *Config) error {
	if path == "" {
		return nil
	}
	cfg.ConfigFile = path
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if err := strictyaml.Decode(raw, cfg); err != nil {
		return fmt.Errorf("parsing config %s: %w", path, err)
	}
	return nil
}

func setFromString(ptr any, v string) error {
	var err error
	switch p := ptr.(type) {
	case *string:
		*p = v
	case *int:
		*p, err = strconv.Atoi(v)
	case *int64:
		*p, err = strconv.ParseInt(v, 10, 64)
	case *bool:
		*p, err = parseBool(v)
	case *time.Duration:
		*p, err = time.ParseDuration(v)
	}
	return err
}

func copyValue(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *int:
		*d = *src.(*int)
	case *int64:
		*d = *src.(*int64)
	case *bool:
		*d = *src.(*bool)
	case *time.Duration:
		*d = *src.(*time.Duration)
	}
}

// maxMemoryLimitMiB bounds memory_limit_mib (16 TiB).
const maxMemoryLimitMiB = 1 << 24

func (c *Config) validate() error {
	switch {
	case c.Data == "":
		return errors.New("data directory must not be empty")
	case c.Listen == "":
		return errors.New("listen address must not be empty")
	case c.CheckpointInterval < 10*time.Millisecond:
		return fmt.Errorf("checkpoint_interval %s is below 10ms", c.CheckpointInterval)
	case c.MaxBatchSize < 1 || c.MaxBatchSize > 65536:
		return fmt.Errorf("max_batch_size %d outside 1..65536", c.MaxBatchSize)
	case c.QueueSize < c.MaxBatchSize:
		return fmt.Errorf("queue_size %d is below max_batch_size %d", c.QueueSize, c.MaxBatchSize)
	case c.QueueBytes < 2*ledger.MaxCallBytes:
		return fmt.Errorf("queue_bytes %d is below %d: twice the largest request's events must fit", c.QueueBytes, 2*ledger.MaxCallBytes)
	case c.SignTimeout < 100*time.Millisecond || c.SignTimeout > 5*time.Minute:
		return fmt.Errorf("sign_timeout %s outside 100ms..5m", c.SignTimeout)
	case c.MaxBatchAge < 0 || c.MaxBatchAge > time.Second:
		return fmt.Errorf("max_batch_age %s outside 0..1s", c.MaxBatchAge)
	case c.CommitInterval < 0 || c.CommitInterval > 100*time.Millisecond:
		return fmt.Errorf("commit_interval %s outside 0..100ms", c.CommitInterval)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("max_body_bytes %d is below 1024", c.MaxBodyBytes)
	case c.MaxInflightBodyBytes < c.MaxBodyBytes:
		return fmt.Errorf("max_inflight_body_bytes %d is below max_body_bytes %d: a request of the largest size could never be read", c.MaxInflightBodyBytes, c.MaxBodyBytes)
	case c.MaxConnections < 0:
		return fmt.Errorf("max_connections %d is negative (0: the open-file limit less 1024)", c.MaxConnections)
	case c.MaxConnectionsPerIP < 0:
		return fmt.Errorf("max_connections_per_ip %d is negative (0: no bound)", c.MaxConnectionsPerIP)
	case c.WitnessTimeout < 100*time.Millisecond || c.WitnessTimeout > time.Minute:
		return fmt.Errorf("witness_timeout %s outside 100ms..1m", c.WitnessTimeout)
	case c.IndexMaxLag < 0:
		return fmt.Errorf("index_max_lag %d is negative", c.IndexMaxLag)
	case c.Detect.MaxLag < 0:
		return fmt.Errorf("detect max_lag %d is negative", c.Detect.MaxLag)
	case c.MemoryLimit < 0:
		return fmt.Errorf("memory_limit_mib %d is negative", c.MemoryLimit)
	case c.MemoryLimit > maxMemoryLimitMiB:
		// Far above any machine; larger values overflowed into a tiny limit.
		return fmt.Errorf("memory_limit_mib %d is above %d (16 TiB)", c.MemoryLimit, maxMemoryLimitMiB)
	case c.ShutdownTimeout <= 0:
		// Zero or less skipped the final checkpoint and the followers'
		// saves at every stop.
		return fmt.Errorf("shutdown_timeout %s must be positive, such as 15s", c.ShutdownTimeout)
	case c.Detect.Lateness < 0:
		return fmt.Errorf("detect lateness %s must not be negative (0: the default, 2m)", c.Detect.Lateness)
	case c.Detect.MaxGroups < 0 || c.Detect.MaxEventsPerGroup < 0:
		return fmt.Errorf("detect max_groups %d and max_events_per_group %d must not be negative (0: the default)", c.Detect.MaxGroups, c.Detect.MaxEventsPerGroup)
	case c.Decisions.DefaultDuration < 0 || c.Decisions.History < 0:
		return fmt.Errorf("decisions default_duration %s and history %s must not be negative (0: the default)", c.Decisions.DefaultDuration, c.Decisions.History)
	case c.StorageTrimInterval < 0 || c.StorageTrimInterval > time.Minute:
		return fmt.Errorf("storage_trim_interval %s outside 0..1m (0: never)", c.StorageTrimInterval)
	case c.StorageTrimAbove < 0 || c.StorageTrimAbove > 1<<20:
		return fmt.Errorf("storage_trim_above_mib %d outside 0..1048576 (0: at every check)", c.StorageTrimAbove)
	case c.MinFreeDisk < 0 || c.MinFreeDisk > 1<<24:
		return fmt.Errorf("min_free_disk_mib %d outside 0..16777216 (0: no check)", c.MinFreeDisk)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together: set both to serve HTTPS, or neither")
	}
	if err := c.RateLimit.Check(); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port, such as 127.0.0.1:8080", c.Listen)
	}
	if c.PprofListen != "" {
		host, _, err := net.SplitHostPort(c.PprofListen)
		ip, perr := netip.ParseAddr(host)
		if err != nil || (host != "localhost" && (perr != nil || !ip.IsLoopback())) {
			return fmt.Errorf("pprof_listen %q: want a loopback host:port, such as 127.0.0.1:6060 (profiles must not be reachable from the network)", c.PprofListen)
		}
	}
	if c.GCSchedule != "" {
		if _, err := cron.ParseStandard(c.GCSchedule); err != nil {
			return fmt.Errorf("gc_schedule %q: %w", c.GCSchedule, err)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return fmt.Errorf("trusted_proxies: %q is neither an IP address nor a CIDR range", p)
		}
	}
	return checkRespondConfig(*c)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(c Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
