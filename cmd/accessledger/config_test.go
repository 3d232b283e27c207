package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a YAML config file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "accessledger.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envMap(kv ...string) environment {
	m := environment{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

// TestLoadConfigPrecedence checks defaults < file < environment < flags,
// setting by setting.
func TestLoadConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
listen: 127.0.0.1:1001
data: /from/file
checkpoint_interval: 2s
public_tiles: true
max_batch_size: 100
queue_size: 1000
`)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		// want
		listen   string
		data     string
		interval time.Duration
		public   bool
		batch    int
	}{
		{
			name:   "defaults",
			listen: "127.0.0.1:8080", data: "./data", interval: time.Second, batch: 4096,
		},
		{
			name:   "file",
			args:   []string{"--config", file},
			listen: "127.0.0.1:1001", data: "/from/file", interval: 2 * time.Second, public: true, batch: 100,
		},
		{
			name:   "file from ACCESSLEDGER_CONFIG",
			env:    []string{"ACCESSLEDGER_CONFIG=" + file},
			listen: "127.0.0.1:1001", data: "/from/file", interval: 2 * time.Second, public: true, batch: 100,
		},
		{
			name: "env over file",
			args: []string{"--config", file},
			env: []string{"ACCESSLEDGER_LISTEN=127.0.0.1:1002", "ACCESSLEDGER_CHECKPOINT_INTERVAL=3s",
				"ACCESSLEDGER_PUBLIC_TILES=false"},
			listen: "127.0.0.1:1002", data: "/from/file", interval: 3 * time.Second, public: false, batch: 100,
		},
		{
			name: "flags over env over file",
			args: []string{"--config", file, "--listen", "127.0.0.1:1003", "--data", "/from/flag",
				"--max-batch-size", "200"},
			env: []string{"ACCESSLEDGER_LISTEN=127.0.0.1:1002", "ACCESSLEDGER_DATA=/from/env",
				"ACCESSLEDGER_CHECKPOINT_INTERVAL=3s"},
			listen: "127.0.0.1:1003", data: "/from/flag", interval: 3 * time.Second, public: true, batch: 200,
		},
		{
			// A flag given its default value still overrides.
			name:   "flag equal to the default",
			args:   []string{"--config", file, "--checkpoint-interval", "1s", "--public-tiles=false"},
			env:    []string{"ACCESSLEDGER_CHECKPOINT_INTERVAL=3s"},
			listen: "127.0.0.1:1001", data: "/from/file", interval: time.Second, public: false, batch: 100,
		},
		{
			name:   "env without file",
			env:    []string{"ACCESSLEDGER_DATA=/from/env", "ACCESSLEDGER_LISTEN=127.0.0.1:1004"},
			listen: "127.0.0.1:1004", data: "/from/env", interval: time.Second, batch: 4096,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(tc.args, envMap(tc.env...), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig(%q, env %q) = %v", tc.args, tc.env, err)
			}
			if cfg.Listen != tc.listen || cfg.Data != tc.data || cfg.CheckpointInterval != tc.interval ||
				cfg.PublicTiles != tc.public || cfg.MaxBatchSize != tc.batch {
				t.Errorf("loadConfig(%q, env %q) = listen %q data %q checkpoint_interval %s public_tiles %v max_batch_size %d, want %q %q %s %v %d",
					tc.args, tc.env, cfg.Listen, cfg.Data, cfg.CheckpointInterval, cfg.PublicTiles, cfg.MaxBatchSize,
					tc.listen, tc.data, tc.interval, tc.public, tc.batch)
			}
		})
	}
}

// TestLoadConfigErrors checks that bad settings, wherever they come from,
// are refused with an error naming the setting.
func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string // written to a file passed with --config if set
		args []string
		env  []string
		want string
	}{
		{name: "unknown key", yaml: "listen: 127.0.0.1:1\nbogus_setting: 1\n", want: "bogus_setting"},
		{name: "dashed key", yaml: "checkpoint-interval: 1s\n", want: "checkpoint-interval"},
		{name: "file interval 1ms", yaml: "checkpoint_interval: 1ms\n", want: "checkpoint_interval"},
		{name: "file log_format xml", yaml: "log_format: xml\n", want: "log_format"},
		{name: "file max_batch_size 0", yaml: "max_batch_size: 0\n", want: "max_batch_size"},
		{name: "file max_batch_size too big", yaml: "max_batch_size: 70000\nqueue_size: 100000\n", want: "max_batch_size"},
		{name: "file log_level", yaml: "log_level: loud\n", want: "log_level"},
		{name: "file not YAML", yaml: "listen: [\n", want: "parsing config"},
		{name: "flag interval 1ms", args: []string{"--checkpoint-interval", "1ms"}, want: "checkpoint_interval"},
		{name: "flag max_batch_size 0", args: []string{"--max-batch-size", "0"}, want: "max_batch_size"},
		{name: "flag log_format xml", args: []string{"--log-format", "xml"}, want: "log_format"},
		{name: "flag unknown", args: []string{"--no-such-flag"}, want: "no-such-flag"},
		{name: "env interval 1ms", env: []string{"ACCESSLEDGER_CHECKPOINT_INTERVAL=1ms"}, want: "checkpoint_interval"},
		{name: "env log_format xml", env: []string{"ACCESSLEDGER_LOG_FORMAT=xml"}, want: "log_format"},
		{name: "env max_batch_size 0", env: []string{"ACCESSLEDGER_MAX_BATCH_SIZE=0"}, want: "max_batch_size"},
		{name: "env unparsable", env: []string{"ACCESSLEDGER_CHECKPOINT_INTERVAL=soon"}, want: "ACCESSLEDGER_CHECKPOINT_INTERVAL"},
		{name: "missing file", args: []string{"--config", "/nonexistent/accessledger.yaml"}, want: "reading config"},
		{name: "file max_inflight_body_bytes below max_body_bytes", yaml: "max_inflight_body_bytes: 4096\n", want: "max_inflight_body_bytes"},
		{name: "env max_inflight_body_bytes below max_body_bytes", env: []string{"ACCESSLEDGER_MAX_INFLIGHT_BODY_BYTES=4096"}, want: "max_inflight_body_bytes"},
		{name: "file gc_schedule", yaml: "gc_schedule: sometimes\n", want: "gc_schedule"},
		{name: "file second document", yaml: "listen: 127.0.0.1:9000\n---\nquick_open: true\n", want: "second YAML document"},
		{name: "file trusted proxy", yaml: "trusted_proxies: [proxy.example.com]\n", want: "trusted_proxies"},
		{name: "flag listen without port", args: []string{"--listen", "localhost"}, want: "listen"},
		{name: "file queue_bytes too small", yaml: "queue_bytes: 1048576\n", want: "queue_bytes"},
		{name: "flag sign_timeout too short", args: []string{"--sign-timeout", "1ms"}, want: "sign_timeout"},
		{name: "env queue_bytes unparsable", env: []string{"ACCESSLEDGER_QUEUE_BYTES=lots"}, want: "ACCESSLEDGER_QUEUE_BYTES"},
		{name: "pprof on all interfaces", args: []string{"--pprof-listen", ":6060"}, want: "pprof_listen"},
		{name: "pprof on a public address", yaml: "pprof_listen: 192.0.2.1:6060\n", want: "pprof_listen"},
		{name: "flag storage_trim_interval negative", args: []string{"--storage-trim-interval", "-1s"}, want: "storage_trim_interval"},
		{name: "file storage_trim_interval too long", yaml: "storage_trim_interval: 2m\n", want: "storage_trim_interval"},
		{name: "flag commit_interval negative", args: []string{"--commit-interval", "-1ms"}, want: "commit_interval"},
		{name: "file commit_interval too long", yaml: "commit_interval: 1s\n", want: "commit_interval"},
		{name: "flag storage_trim_above_mib negative", args: []string{"--storage-trim-above-mib", "-1"}, want: "storage_trim_above_mib"},
		{name: "file storage_trim_above_mib too large", yaml: "storage_trim_above_mib: 2000000\n", want: "storage_trim_above_mib"},
		{name: "flag min_free_disk_mib negative", args: []string{"--min-free-disk-mib", "-1"}, want: "min_free_disk_mib -1 outside 0..16777216"},
		{name: "file min_free_disk_mib too large", yaml: "min_free_disk_mib: 16777217\n", want: "min_free_disk_mib"},
		{name: "file detect max_lag negative", yaml: "detect: {max_lag: -1}\n", want: "max_lag"},
		{name: "flag detect-max-lag negative", args: []string{"--detect-max-lag", "-5"}, want: "max_lag"},
		{name: "flag memory_limit_mib huge", args: []string{"--memory-limit-mib", "17592186044416"}, want: "memory_limit_mib"},
		{name: "file shutdown_timeout negative", yaml: "shutdown_timeout: -5s\n", want: "shutdown_timeout"},
		{name: "flag shutdown_timeout zero", args: []string{"--shutdown-timeout", "0s"}, want: "shutdown_timeout"},
		{name: "file detect lateness negative", yaml: "detect: {lateness: -2m}\n", want: "lateness"},
		{name: "file detect max_groups negative", yaml: "detect: {max_groups: -5}\n", want: "max_groups"},
		{name: "file detect max_events_per_group negative", yaml: "detect: {max_events_per_group: -1}\n", want: "max_events_per_group"},
		{name: "file decisions default_duration negative", yaml: "decisions: {enabled: true, default_duration: -4h}\n", want: "default_duration"},
		{name: "file decisions history negative", yaml: "decisions: {enabled: true, history: -1h}\n", want: "history"},
		// Accepted, it failed every delivery until each message was
		// dead-lettered; a responder's own timeout was refused already.
		{name: "file delivery timeout under 100ms", yaml: "delivery: {timeout: 1ms}\n", want: "delivery.timeout 1ms is too short"},
		{name: "file delivery max_queued 0", yaml: "delivery: {max_queued: 0}\n", want: "delivery.max_queued 0: want 1 to 10000000"},
		{name: "file delivery max_queued negative", yaml: "delivery: {max_queued: -5}\n", want: "delivery.max_queued -5"},
		{name: "file delivery max_queued huge", yaml: "delivery: {max_queued: 10000000000}\n", want: "delivery.max_queued 10000000000"},
		{name: "file delivery max_dead_letters 0", yaml: "delivery: {max_dead_letters: 0}\n", want: "delivery.max_dead_letters 0: want 1 to 10000000"},
		{name: "file delivery max_dead_letters negative", yaml: "delivery: {max_dead_letters: -1}\n", want: "delivery.max_dead_letters -1"},
		{name: "file delivery max_dead_letters huge", yaml: "delivery: {max_dead_letters: 20000000}\n", want: "delivery.max_dead_letters 20000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tc.yaml)}, args...)
			}
			_, err := loadConfig(args, envMap(tc.env...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig(%q, env %q, yaml %q) = %v, want an error naming %q", args, tc.env, tc.yaml, err, tc.want)
			}
		})
	}
}

// TestStorageTrimInterval: the default checks four times a second and
// trims above 256 MiB of file-backed RSS; an interval of 0 turns trimming
// off (a negative ledger interval), a bound of 0 trims at every check (a
// negative ledger bound); other values are passed on.
func TestStorageTrimInterval(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      time.Duration
		wantAbove int64
	}{
		{nil, 250 * time.Millisecond, 256 << 20},
		{[]string{"--storage-trim-interval", "0"}, -1, 256 << 20},
		{[]string{"--storage-trim-interval", "2s"}, 2 * time.Second, 256 << 20},
		{[]string{"--storage-trim-above-mib", "0"}, 250 * time.Millisecond, -1},
		{[]string{"--storage-trim-above-mib", "1024"}, 250 * time.Millisecond, 1 << 30},
	} {
		cfg, err := loadConfig(tc.args, envMap(), io.Discard)
		if err != nil {
			t.Fatalf("loadConfig(%q) = %v", tc.args, err)
		}
		if got := trimInterval(cfg.StorageTrimInterval); got != tc.want {
			t.Errorf("loadConfig(%q): ledger trim interval %v, want %v", tc.args, got, tc.want)
		}
		if got := trimAbove(cfg.StorageTrimAbove); got != tc.wantAbove {
			t.Errorf("loadConfig(%q): ledger trim bound %d, want %d", tc.args, got, tc.wantAbove)
		}
	}
}

// TestLoadConfigEnvironment: an environment variable set to "" left its
// setting as it was (ACCESSLEDGER_DIGEST_SCHEDULE= did not turn the
// digest off, as --digest-schedule= does); a boolean the config file
// takes (yes, off) was refused in the environment; and a misspelt
// variable was ignored without a word.
func TestLoadConfigEnvironment(t *testing.T) {
	file := writeConfig(t, "gc_schedule: \"@every 1h\"\npprof_listen: 127.0.0.1:6060\npublic_tiles: yes\n")
	cfg, err := loadConfig([]string{"--config", file}, envMap(
		"ACCESSLEDGER_DIGEST_SCHEDULE=", "ACCESSLEDGER_SELF_AUDIT_SCHEDULE=", "ACCESSLEDGER_GC_SCHEDULE=",
		"ACCESSLEDGER_PPROF_LISTEN=", "ACCESSLEDGER_CHECKPOINT_INTERVAL=",
		"ACCESSLEDGER_PUBLIC_TILES=off", "ACCESSLEDGER_PUBLIC_METRICS=yes",
		"ACCESSLEDGER_DIGEST_SCHEDUEL=@daily", "ACCESSLEDGER_API_KEY=k", "ACCESSLEDGER_AUDIT_API_KEY=k", "ACCESSLEDGER_WITNESSD_DATA=w",
	), io.Discard)
	if err != nil {
		t.Fatalf("loadConfig() = %v", err)
	}
	if cfg.DigestSchedule != "" || cfg.SelfAuditSchedule != "" || cfg.GCSchedule != "" || cfg.PprofListen != "" {
		t.Errorf("schedules and pprof_listen set to \"\" in the environment = %q %q %q %q, want all empty (off)",
			cfg.DigestSchedule, cfg.SelfAuditSchedule, cfg.GCSchedule, cfg.PprofListen)
	}
	if cfg.CheckpointInterval != time.Second {
		t.Errorf("ACCESSLEDGER_CHECKPOINT_INTERVAL= gave checkpoint_interval %s, want the default (empty: unset)", cfg.CheckpointInterval)
	}
	if cfg.PublicTiles || !cfg.PublicMetrics {
		t.Errorf("public_tiles, public_metrics = %v, %v from off and yes in the environment, want false, true", cfg.PublicTiles, cfg.PublicMetrics)
	}
	if want := []string{"ACCESSLEDGER_DIGEST_SCHEDUEL"}; !slices.Equal(cfg.UnknownEnv, want) {
		t.Errorf("unknown variables = %q, want %q", cfg.UnknownEnv, want)
	}
	if _, err := loadConfig(nil, envMap("ACCESSLEDGER_PUBLIC_TILES=maybe"), io.Discard); err == nil || !strings.Contains(err.Error(), "ACCESSLEDGER_PUBLIC_TILES") {
		t.Errorf("ACCESSLEDGER_PUBLIC_TILES=maybe: loadConfig() = %v, want an error naming it", err)
	}
	// "" turns off only what empty turns off: a template's unset
	// variable must not empty the data directory or the listen address.
	dataFile := writeConfig(t, "data: /from/file\n")
	if cfg, err := loadConfig([]string{"--config", dataFile}, envMap("ACCESSLEDGER_DATA=", "ACCESSLEDGER_LISTEN=", "ACCESSLEDGER_LOG_LEVEL="), io.Discard); err != nil ||
		cfg.Data != "/from/file" || cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("ACCESSLEDGER_DATA= and _LISTEN=: loadConfig() = %v, data %q, listen %q; want the file's and the default", err, cfg.Data, cfg.Listen)
	}
	// What the environment took before still parses.
	if cfg, err := loadConfig(nil, envMap("ACCESSLEDGER_PUBLIC_TILES=1", "ACCESSLEDGER_DETECT=0"), io.Discard); err != nil || !cfg.PublicTiles || cfg.Detect.Enabled {
		t.Errorf("ACCESSLEDGER_PUBLIC_TILES=1, ACCESSLEDGER_DETECT=0: loadConfig() = %v, public_tiles %v, detect %v; want true, false", err, cfg.PublicTiles, cfg.Detect.Enabled)
	}

	code, _, stderr := runCLI(t, []string{"ACCESSLEDGER_DIGEST_SCHEDUEL=@daily"}, "serve", "--data", t.TempDir(), "--origin", "my log")
	if code != 1 || !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, "ACCESSLEDGER_DIGEST_SCHEDUEL") {
		t.Errorf("serve with a misspelt variable = exit %d, %q; want a warning naming it", code, stderr)
	}
}

// TestEveryEnvironmentVariableIsKnown: every ACCESSLEDGER_* variable the
// code names is a setting of serve or in otherEnv, so that serve does not
// warn about a variable another command reads.
func TestEveryEnvironmentVariableIsKnown(t *testing.T) {
	name := regexp.MustCompile(`"(ACCESSLEDGER_[A-Z0-9_]+)"`)
	cfg := defaultConfig()
	fields := cfg.fields()
	for _, dir := range []string{".", "../loadgen", "../../respond", "../../api"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, m := range name.FindAllStringSubmatch(string(mustRead(t, f)), -1) {
				if m[1] == "ACCESSLEDGER_" || strings.HasPrefix(m[1], otherEnvPrefix) {
					continue
				}
				if got := unknownEnv(environment{m[1]: ""}, fields); len(got) > 0 {
					t.Errorf("%s reads %s, which serve would warn about: add it to otherEnv", f, m[1])
				}
			}
		}
	}
}

// TestNoVariableMeansTwoThings: a variable another command reads is none
// of serve's settings. ACCESSLEDGER_KEY was simulate's API key and
// serve's signing-key path (serve wrote a new signing key to a file named
// after the secret, and logged it); ACCESSLEDGER_WITNESS_POLICY was
// serve's witnesses and the witness command's logs (found by review).
func TestNoVariableMeansTwoThings(t *testing.T) {
	cfg := defaultConfig()
	serves := map[string]bool{}
	for _, f := range cfg.fields() {
		serves[envName(f.name)] = true
	}
	for _, v := range otherEnv {
		if serves[v] {
			t.Errorf("%s is in otherEnv (another command's) and a setting of serve", v)
		}
	}
	var asked []string
	getenv := func(k string) string { asked = append(asked, k); return "" }
	if _, err := witnessFlags([]string{"--policy", "p"}, getenv, io.Discard); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range asked {
		if strings.HasPrefix(v, witnessEnvPrefix) {
			n++
			if serves[v] {
				t.Errorf("the witness command reads %s, a setting of serve", v)
			}
		}
	}
	if n < 10 {
		t.Errorf("the witness command read %d variables of its prefix (%q), want one per flag", n, asked)
	}

	// The earlier prefix is refused, naming the new variable; serve's
	// own ACCESSLEDGER_WITNESS_POLICY is left to serve.
	_, err := witnessFlags([]string{"--policy", "p"}, envMap("ACCESSLEDGER_WITNESS_DATA=/srv/w").get, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ACCESSLEDGER_WITNESSD_DATA") {
		t.Errorf("witness with ACCESSLEDGER_WITNESS_DATA set = %v, want an error naming ACCESSLEDGER_WITNESSD_DATA", err)
	}
	c, err := witnessFlags(nil, envMap("ACCESSLEDGER_WITNESS_POLICY=/etc/serve-witnesses", "ACCESSLEDGER_WITNESSD_POLICY=/etc/logs").get, io.Discard)
	if err != nil || c.Policy != "/etc/logs" {
		t.Errorf("witness with serve's ACCESSLEDGER_WITNESS_POLICY and its own = %v, policy %q; want its own", err, c.Policy)
	}
	// serve's alone: the error says which variable the witness reads.
	_, err = witnessFlags(nil, envMap("ACCESSLEDGER_WITNESS_POLICY=/etc/serve-witnesses").get, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ACCESSLEDGER_WITNESSD_POLICY") {
		t.Errorf("witness with serve's ACCESSLEDGER_WITNESS_POLICY alone = %v, want the error to name ACCESSLEDGER_WITNESSD_POLICY", err)
	}
}
