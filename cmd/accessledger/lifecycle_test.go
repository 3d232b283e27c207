package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// TestGracefulShutdown sends SIGTERM under load: the process must exit 0
// (the bound is generous: the 5s grace and closing Badger take longer on a
// loaded machine, but a hang still fails), and the checkpoint it signed on
// the way out must cover every acknowledged event. The checkpoint cadence
// is an hour, so that only the shutdown can have signed it.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--checkpoint-interval", "1h")
	rec := &crashRecord{t: t, acks: map[uint64]ack{}, checkpoints: map[uint64]checkpoint{}}
	var counter atomic.Int64
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	for w := range 4 {
		wr := rand.New(rand.NewPCG(1, uint64(w)))
		wg.Go(func() { loadWorker(ctx, t, s, rec, wr, 0, w, &counter) })
	}
	// SIGTERM once the load is really under way, however long that takes
	// to start on a loaded machine.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rec.mu.Lock()
		n := len(rec.acks)
		rec.mu.Unlock()
		if n >= 50 {
			break
		}
		if s.exited() || time.Now().After(deadline) {
			t.Fatalf("%d events acknowledged before SIGTERM, want at least 50 (server exited: %v)\nstderr:\n%s", n, s.exited(), s.stderr)
		}
	}
	start := time.Now()
	code := s.terminate(30 * time.Second)
	took := time.Since(start)
	stop()
	wg.Wait()
	if code != 0 {
		t.Fatalf("SIGTERM under load: exit code %d, want 0\nstderr:\n%s", code, s.stderr)
	}
	t.Logf("exited 0 %s after SIGTERM; %d events acknowledged", took.Round(time.Millisecond), len(rec.acks))
	if len(rec.acks) == 0 {
		t.Fatal("no event was acknowledged before SIGTERM")
	}

	acks := slices.SortedFunc(maps.Values(rec.acks), func(a, b ack) int { return cmp.Compare(a.index, b.index) })
	maxIndex := acks[len(acks)-1].index

	s = startServer(t, dir, "--checkpoint-interval", "1h")
	cp := s.latestCheckpoint()
	if cp.size < maxIndex+1 {
		t.Fatalf("after SIGTERM and restart GET /checkpoint has size %d, want >= %d (every acknowledged event)", cp.size, maxIndex+1)
	}
	var info struct {
		Size     uint64 `json:"size"`
		RootHash string `json:"root_hash"`
	}
	s.get("/v1/log", &info)
	if info.Size != cp.size || decodeHash(t, "root_hash", info.RootHash) != cp.hash {
		t.Errorf("GET /v1/log = size %d root %s, want the checkpoint's %d %x", info.Size, info.RootHash, cp.size, cp.hash)
	}
	checkBundles(t, s, cp, acks)
	for _, k := range []int{0, len(acks) / 3, len(acks) / 2, len(acks) - 1} {
		s.checkInclusion(cp, acks[k].index, acks[k].leaf)
	}
	// Nothing was appended after the restart, so nothing needed signing:
	// the checkpoint is still the one signed at shutdown.
	if again := s.latestCheckpoint(); string(again.raw) != string(cp.raw) {
		t.Errorf("GET /checkpoint changed without appends:\n%s\nthen\n%s", cp.raw, again.raw)
	}
}

// TestTamperedEntryRefusesToStart edits a stored entry directly in Badger
// while the server is stopped; the server must refuse to start, saying
// that storage is inconsistent and which entry is wrong (for the edge
// bundle, whose hash tile is not stored, which tree).
func TestTamperedEntryRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bundle uint64 // entry bundle to edit; its first entry is edited
		flags  []string
		want   string
	}{
		// A full bundle: only the full re-hash at start-up sees it.
		{"full bundle", 0, nil, "entry 0 "},
		// The partial edge bundle is re-hashed even by a quick open.
		{"edge bundle quick open", 1, []string{"--quick-open"}, "stored tree of size 301 has root "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := startServer(t, dir)
			for b := range 3 {
				events := make([]json.RawMessage, 100)
				for i := range events {
					events[i] = testEvent("", b*100+i)
				}
				s.mustPost(events...)
			}
			if code := s.terminate(10 * time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit code %d, want 0", code)
			}

			flipEntryByte(t, filepath.Join(dir, "badger"), tc.bundle)

			args := append([]string{"serve", "--data", dir, "--listen", freeAddr(t)}, tc.flags...)
			s = spawn(t, dir, "", nil, args)
			select {
			case <-s.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("server with a tampered entry still running after 20s\nstderr:\n%s", s.stderr)
			}
			stderr := s.stderr.String()
			if code := s.state.ExitCode(); code == 0 {
				t.Errorf("server with a tampered entry: exit code 0, want non-zero")
			}
			if !strings.Contains(stderr, "storage is inconsistent") || !strings.Contains(stderr, tc.want) {
				t.Errorf("server with a tampered entry: stderr does not say %q and %q:\n%s", "storage is inconsistent", tc.want, stderr)
			}
			if strings.Contains(stderr, "listening") {
				t.Errorf("server with a tampered entry started listening:\n%s", stderr)
			}
		})
	}
}

// flipEntryByte opens the stopped server's Badger directory and flips one
// byte inside the first entry of an entry bundle, as ledger/keys.go
// documents the layout: a full bundle is 'b' + 8-byte big-endian index,
// value a codec byte (1: zstd) and the C2SP bundle (uint16 big-endian
// length-prefixed entries); the edge bundle is stored as chunks 'q' +
// index + first entry, coded the same way, the first of which starts at
// entry 0.
func flipEntryByte(t *testing.T, dir string, bundle uint64) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithValueThreshold(64 << 10).
		WithMemTableSize(32 << 20).
		WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatalf("badger.Open(%s) = %v", dir, err)
	}
	flip := func(v []byte) []byte {
		n := int(binary.BigEndian.Uint16(v))
		if n < 10 || 2+n > len(v) {
			t.Fatalf("bundle %d starts with an entry of %d bytes in %d", bundle, n, len(v))
		}
		// A digit from the middle on (of the actor's id, as the events
		// of the tests are), flipped to another: the entry stays the
		// JSON it was, so only the hashes tell.
		i := 2 + n/2
		for i < 2+n && (v[i] < '0' || v[i] > '9') {
			i++
		}
		if i == 2+n {
			t.Fatalf("bundle %d starts with an entry with no digit after its middle", bundle)
		}
		v[i] ^= 0x01
		return v
	}
	err = db.Update(func(txn *badger.Txn) error {
		key := binary.BigEndian.AppendUint64([]byte{'b'}, bundle)
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			key = append(binary.BigEndian.AppendUint64([]byte{'q'}, bundle), 0)
			item, err = txn.Get(key)
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if v[0] != 1 {
			t.Fatalf("%q has codec %d, want 1 (zstd)", key, v[0])
		}
		raw, err := zstd.NewReader(nil)
		if err != nil {
			return err
		}
		defer raw.Close()
		plain, err := raw.DecodeAll(v[1:], nil)
		if err != nil {
			return err
		}
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			return err
		}
		return txn.Set(key, enc.EncodeAll(flip(plain), []byte{1}))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("editing entry bundle %d: %v", bundle, err)
	}
}

// TestServeEmbeddedDefaults starts serve with nothing but a data directory
// and a listen address, first as flags and then as environment variables.
func TestServeEmbeddedDefaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // serve creates it
	s := startServerOpts(t, serverOpts{args: []string{"--data", dir}, dir: dir})

	for _, f := range []string{"log.key", "admin.key", "api_keys.yaml"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("after first start: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, perm)
		}
	}
	if !strings.Contains(s.stdout.String(), "origin "+s.origin+"\n") {
		t.Errorf("stdout does not name origin %q (the verifier key's name):\n%s", s.origin, s.stdout)
	}
	checkVerifierKeyFormat(t, s.vkey, s.origin)
	var info struct {
		Origin      string `json:"origin"`
		VerifierKey string `json:"verifier_key"`
	}
	s.get("/v1/log", &info)
	if info.Origin != s.origin || info.VerifierKey != s.vkey {
		t.Errorf("GET /v1/log = origin %q verifier_key %q, want %q and the printed %q", info.Origin, info.VerifierKey, s.origin, s.vkey)
	}
	s.mustPost(testEvent("", 1))
	cp := s.waitCheckpoint(1, 10*time.Second) // default cadence: 1s
	origin, vkey, token := s.origin, s.vkey, s.token
	key, err := os.ReadFile(filepath.Join(dir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	if code := s.terminate(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}

	// The same, configured through the environment only.
	addr := freeAddr(t)
	s = startServerOpts(t, serverOpts{
		env:          []string{"ACCESSLEDGER_DATA=" + dir, "ACCESSLEDGER_LISTEN=" + addr},
		noListenFlag: true,
		addr:         addr,
		dir:          dir,
	})
	if s.origin != origin || s.vkey != vkey {
		t.Errorf("after restart: origin %q key %q, want the same %q and %q", s.origin, s.vkey, origin, vkey)
	}
	if s.token != token {
		t.Errorf("after restart admin.key changed")
	}
	if key2, _ := os.ReadFile(filepath.Join(dir, "log.key")); string(key2) != string(key) {
		t.Errorf("after restart log.key changed")
	}
	if got := s.latestCheckpoint(); got.size < cp.size { // verified with the first run's key
		t.Errorf("after restart checkpoint size %d, want >= %d", got.size, cp.size)
	}
}

// checkVerifierKeyFormat checks <name>+<hex8>+<base64(0x01||32-byte key)>.
func checkVerifierKeyFormat(t *testing.T, vkey, name string) {
	t.Helper()
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || parts[0] != name || len(parts[1]) != 8 || strings.ToLower(parts[1]) != parts[1] {
		t.Errorf("verifier key %q is not %s+<hex8>+<base64>", vkey, name)
		return
	}
	var k []byte
	if err := json.Unmarshal([]byte(`"`+parts[2]+`"`), &k); err != nil || len(k) != 33 || k[0] != 0x01 {
		t.Errorf("verifier key %q: want base64 of 0x01 and a 32-byte Ed25519 key", vkey)
	}
}

// TestServeConfigFile configures listen, data and checkpoint_interval in a
// YAML file only.
func TestServeConfigFile(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "from-config")
	addr := freeAddr(t)
	cfgPath := filepath.Join(tmp, "accessledger.yaml")
	yaml := "listen: " + addr + "\ndata: " + dir + "\ncheckpoint_interval: 1h\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerOpts(t, serverOpts{args: []string{"--config", cfgPath}, noListenFlag: true, addr: addr, dir: dir})
	if _, err := os.Stat(filepath.Join(dir, "log.key")); err != nil {
		t.Errorf("data directory from the config file not used: %v", err)
	}
	s.mustPost(testEvent("", 1))
	// The default cadence (1s) would have signed by now; the file's 1h
	// must not.
	time.Sleep(1500 * time.Millisecond)
	if cp := s.latestCheckpoint(); cp.size != 0 {
		t.Errorf("checkpoint size %d 1.5s after an append with checkpoint_interval 1h, want 0", cp.size)
	}
}

// TestServeRejectsInvalidSetting checks the binary fails fast, naming the
// setting.
func TestServeRejectsInvalidSetting(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t), "--checkpoint-interval", "1ms")
	if code != 1 || !strings.Contains(stderr, "checkpoint_interval") {
		t.Errorf("serve --checkpoint-interval 1ms = exit %d, stderr %q; want 1 and a message naming checkpoint_interval", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("serve with an invalid setting wrote to the data directory: %v", entries)
	}
}

// TestServeWritesNothingBeforeItCanStart checks that serve validates its
// whole configuration and binds its port before it creates the data
// directory, the signing key or the admin key: a start that fails leaves
// nothing behind, and the corrected command starts afresh.
func TestServeWritesNothingBeforeItCanStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	defer taken.Close()
	emptyKeys := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(emptyKeys, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Any local user could have added an admin key to these.
	writableKeys := func(mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "keys.yaml")
		if err := os.WriteFile(p, []byte("keys: []\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	worldWritable, groupWritable := writableKeys(0o666), writableKeys(0o620)
	for _, tc := range []struct {
		name string
		yaml string // a config file, if set
		args []string
		want string
	}{
		{name: "port taken", args: []string{"--listen", taken.Addr().String()}, want: "listening on " + taken.Addr().String()},
		{name: "listen not host:port", args: []string{"--listen", "8080"}, want: "listen"},
		{name: "bad gc_schedule", args: []string{"--gc-schedule", "every tuesday"}, want: "gc_schedule"},
		{name: "bad trusted proxy", yaml: "trusted_proxies: [\"10.0.0.0/33\"]\n", want: "trusted_proxies"},
		{name: "bad api key in config", yaml: "api_keys:\n  - name: k\n    sha256: abcd\n    roles: [submitter]\n", want: "sha256"},
		{name: "inflight below body limit", args: []string{"--max-inflight-body-bytes", "2048", "--max-body-bytes", "4096"}, want: "max_inflight_body_bytes"},
		{name: "bad origin", args: []string{"--origin", "my log"}, want: "origin"},
		// It was checked after the log was created, whose origin then
		// refused the corrected command's --origin.
		{name: "keys file with no key", args: []string{"--api-keys-file", emptyKeys}, want: "holds no API key"},
		{name: "keys file others may write", args: []string{"--api-keys-file", worldWritable}, want: worldWritable + " has mode 0666"},
		{name: "keys file its group may write", args: []string{"--api-keys-file", groupWritable}, want: groupWritable + " has mode 0620"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"serve", "--data", data}
			if !slices.Contains(tc.args, "--listen") {
				args = append(args, "--listen", freeAddr(t))
			}
			args = append(args, tc.args...)
			if tc.yaml != "" {
				args = append(args, "--config", writeConfig(t, tc.yaml))
			}
			code, _, stderr := runCLI(t, nil, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("accessledger %q = exit %d, stderr %q; want 1 and a message naming %q", args, code, stderr, tc.want)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("accessledger %q failed but created %s (%v): %q", args, data, err, listFiles(t, data))
			}
		})
	}
}

// TestServeJSONLogs checks that with --log-format json everything the
// server writes is JSON log records on stderr, the start banner included,
// and nothing goes to stdout.
func TestServeJSONLogs(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s := spawn(t, dir, addr, nil, []string{"serve", "--data", dir, "--listen", addr, "--log-format", "json"})
	if err := s.waitReady(30 * time.Second); err != nil {
		t.Fatalf("serve --log-format json: %v\nstderr:\n%s", err, s.stderr)
	}
	s.token = strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "admin.key"))))
	if status, body, err := s.do(t.Context(), http.MethodGet, "/v1/log", "", nil); err != nil || status != http.StatusOK {
		t.Fatalf("GET /v1/log = %d %s, %v; want 200", status, body, err)
	}
	if code := s.terminate(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	if out := s.stdout.String(); out != "" {
		t.Errorf("serve --log-format json wrote to stdout:\n%s", out)
	}
	var banner map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("serve --log-format json wrote a line that is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "accessledger started" {
			banner = rec
		}
	}
	if banner == nil {
		t.Fatalf("serve --log-format json logged no start record:\n%s", s.stderr)
	}
	vkey, _ := banner["verifier_key"].(string)
	origin, _ := banner["origin"].(string)
	checkVerifierKeyFormat(t, vkey, origin)
	if _, ok := banner["version"].(string); !ok {
		t.Errorf("start record %v has no version", banner)
	}

	// A start that fails (the port is taken) says why in JSON too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stdout, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", ln.Addr().String(), "--log-format", "json")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); code != 1 || stdout != "" || err != nil ||
		last["level"] != "ERROR" || !strings.Contains(fmt.Sprint(last["err"]), "address already in use") {
		t.Errorf("serve --log-format json on a taken port = exit %d, stdout %q, last line %q; want 1 and a JSON error record", code, stdout, lines[len(lines)-1])
	}
}

// TestAPIKeyAddAndReload adds a submitter key to a running server's data
// directory and loads it with SIGHUP.
func TestAPIKeyAddAndReload(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)

	code, stdout, stderr := runCLI(t, nil, "apikey", "add", "--data", dir, "--name", "svc", "--role", "submitter")
	token := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(token, "al_") || strings.Contains(token, "\n") {
		t.Fatalf("apikey add = exit %d, stdout %q, stderr %q; want 0 and one token", code, stdout, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "api_keys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), token) {
		t.Errorf("api_keys.yaml holds the secret token, want only its hash")
	}

	post := func() int {
		status, _, _, err := s.postEvents(t.Context(), token, []json.RawMessage{testEvent("", 1)})
		if err != nil {
			t.Fatalf("POST /v1/events: %v", err)
		}
		return status
	}
	if status := post(); status != http.StatusUnauthorized {
		t.Errorf("POST with the new key before SIGHUP = %d, want 401", status)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for post() != http.StatusCreated {
		if time.Now().After(deadline) || s.exited() {
			t.Fatalf("POST with the new key after SIGHUP never answered 201 (exited: %v)\nstderr:\n%s", s.exited(), s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/v1/entries/0", token, nil); status != http.StatusForbidden {
		t.Errorf("GET /v1/entries/0 with a submitter key = %d %s, want 403", status, body)
	}
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/checkpoint", token, nil); status != http.StatusOK {
		t.Errorf("GET /checkpoint with a submitter key = %d %s, want 200", status, body)
	}
	// The admin key still works after the reload.
	s.get("/v1/entries/0", nil)

	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"apikey", "add", "--data", dir, "--name", "x", "--role", "superuser"}, nil, "unknown role"},
		{[]string{"apikey", "add", "--data", dir, "--name", "svc", "--role", "auditor"}, nil, "already exists"},
		{[]string{"apikey", "add", "--data", dir, "--role", "auditor"}, nil, "--name and --role are required"},
		{[]string{"apikey", "remove"}, nil, "apikey add"},
	} {
		code, stdout, stderr := runCLI(t, tc.env, tc.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("accessledger %v = exit %d, stdout %q, stderr %q; want 1, no output and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	code, stdout, _ = runCLI(t, []string{"ACCESSLEDGER_DATA=" + dir}, "apikey", "list")
	if code != 0 || !strings.Contains(stdout, "svc\t[submitter]") || !strings.Contains(stdout, "admin\t[admin]") {
		t.Errorf("apikey list (data from env) = exit %d, %q; want 0, svc and admin", code, stdout)
	}

	// With the server's config file, apikey finds the keys file the
	// server reads (api_keys_file there wins over <data>/api_keys.yaml).
	other := filepath.Join(t.TempDir(), "keys.yaml")
	conf := filepath.Join(t.TempDir(), "accessledger.yaml")
	if err := os.WriteFile(conf, []byte("data: "+dir+"\napi_keys_file: "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, nil, "apikey", "add", "--config", conf, "--name", "via-config", "--role", "auditor"); code != 0 {
		t.Fatalf("apikey add --config = exit %d: %s", code, stderr)
	}
	code, stdout, _ = runCLI(t, []string{"ACCESSLEDGER_CONFIG=" + conf}, "apikey", "list")
	if code != 0 || !strings.Contains(stdout, "via-config\t[auditor]") || strings.Contains(stdout, "svc") {
		t.Errorf("apikey list (config from env) = exit %d, %q; want only via-config, from %s", code, stdout, other)
	}
}

// TestServeSurvivesEarlySIGHUP sends SIGHUP (reload API keys) while the
// server is still starting up. It must not kill the server.
func TestServeSurvivesEarlySIGHUP(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s := spawn(t, dir, addr, nil, []string{"serve", "--data", dir, "--listen", addr})
	// "generated signing key" is logged before the log is created, well
	// into main but before the HUP handler is installed.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stderr.String(), "generated signing key") {
		if time.Now().After(deadline) || s.exited() {
			t.Fatalf("server never logged key generation\nstderr:\n%s", s.stderr)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := s.waitReady(20 * time.Second); err != nil {
		t.Fatalf("SIGHUP during start-up: %v (want the server to keep starting)\nstderr:\n%s", err, s.stderr)
	}
}

// TestCrashDuringFirstStart SIGKILLs the server at random moments while it
// creates a new log (key generation, storage creation, first checkpoint,
// verifier key file), then starts it again with the same plain command
// line. Whatever the moment, the restarted server must come up and serve
// the log: a crash must not leave a data directory it refuses to open.
func TestCrashDuringFirstStart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 8 {
		dir := t.TempDir()
		addr := freeAddr(t)
		args := []string{"serve", "--data", dir, "--listen", addr, "--checkpoint-interval", "100ms"}
		s := spawn(t, dir, addr, nil, args)
		delay := time.Duration(rng.Int64N(int64(60 * time.Millisecond)))
		time.Sleep(delay)
		s.kill()
		var left []string
		if entries, err := os.ReadDir(dir); err == nil {
			for _, e := range entries {
				left = append(left, e.Name())
			}
		}

		addr = freeAddr(t)
		args = []string{"serve", "--data", dir, "--listen", addr, "--checkpoint-interval", "100ms"}
		s = spawn(t, dir, addr, nil, args)
		if err := s.waitReady(20 * time.Second); err != nil {
			t.Errorf("killed %s into the first start (data directory then held %q); restart: %v\nstderr:\n%s",
				delay.Round(time.Millisecond), left, err, s.stderr)
			continue
		}
		s.loadIdentity()
		s.mustPost(testEvent("", i))
		s.waitCheckpoint(1, 10*time.Second)
		s.kill()
	}
}

// TestLostStorageRefusesToStart checks that serve never replaces a log
// whose storage vanished with a new, empty one under the same key and
// origin (which would rewrite history unseen): with the storage directory
// emptied, it refuses to start and says how to recover.
func TestLostStorageRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustPost(testEvent("", 1), testEvent("", 2))
	if code := s.terminate(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	if err := os.RemoveAll(filepath.Join(dir, "badger")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "holds no log") || !strings.Contains(stderr, "log.created") {
		t.Errorf("serve on a data directory whose storage was removed = exit %d, stderr %q; want 1 and a message naming log.created", code, stderr)
	}
	// And it did not create a new log on the way: it refuses again.
	if code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t)); code != 1 || !strings.Contains(stderr, "holds no log") {
		t.Errorf("second serve on the lost storage = exit %d, stderr %q; want it refused again", code, stderr)
	}
}

// TestLostRespondStorageRefusesToStart: with the responders' storage
// removed, serve refuses to start (new storage would notify every
// responder of every past alert again), saying how to recover; removing
// respond.created on purpose starts them afresh.
func TestLostRespondStorageRefusesToStart(t *testing.T) {
	dir := logWithOneEvent(t)
	if _, err := os.Stat(filepath.Join(dir, respondCreatedFile)); err != nil {
		t.Fatalf("no %s after a start: %v", respondCreatedFile, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, respondDir)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "notify every responder") || !strings.Contains(stderr, respondCreatedFile) {
		t.Errorf("serve with the responders' storage removed = exit %d, stderr %q; want 1 and a message naming %s", code, stderr, respondCreatedFile)
	}
	if _, err := os.Stat(filepath.Join(dir, respondDir)); err == nil {
		t.Errorf("the refused start made %s", respondDir)
	}
	if err := os.Remove(filepath.Join(dir, respondCreatedFile)); err != nil {
		t.Fatal(err)
	}
	if code := startServer(t, dir).terminate(10 * time.Second); code != 0 {
		t.Fatalf("start after removing %s: exit code %d, want 0", respondCreatedFile, code)
	}
}

// logWithOneEvent returns a data directory holding a log of one event,
// its server stopped cleanly.
func logWithOneEvent(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustPost(testEvent("", 1))
	if code := s.terminate(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	return dir
}

// TestLostVerifierKey: with log.vkey lost, the log starts with the origin
// log.created records (it was refused as a mismatch with a new random
// origin) and log.vkey is written again; with the signing key lost too,
// it refuses naming the key, and leaves no new key behind.
func TestLostVerifierKey(t *testing.T) {
	dir := logWithOneEvent(t)
	vkey, err := os.ReadFile(filepath.Join(dir, vkeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, vkeyFile)); err != nil {
		t.Fatal(err)
	}
	if code := startServer(t, dir).terminate(10 * time.Second); code != 0 {
		t.Fatalf("start without log.vkey: exit code %d, want 0", code)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, vkeyFile)); string(got) != string(vkey) {
		t.Errorf("log.vkey after the start = %q, want %q again", got, vkey)
	}
	for _, f := range []string{vkeyFile, keyFile, keyFile + ".pub", keyFile + ".vkey"} {
		os.Remove(filepath.Join(dir, f))
	}
	code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "is missing but") || !strings.Contains(stderr, "restore the key") {
		t.Errorf("serve without its signing key = exit %d, stderr %q; want 1 and a message naming the key", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		t.Errorf("the refused start left a new signing key behind")
	}
}

// TestPprofOptIn checks that Go's profiles are served only when asked
// for, and then only on the separate loopback address given.
func TestPprofOptIn(t *testing.T) {
	dir := t.TempDir()
	pprofAddr := freeAddr(t)
	s := startServer(t, dir, "--pprof-listen", pprofAddr)
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("GET /debug/pprof/cmdline on %s: %v", pprofAddr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/cmdline on the pprof address = %d, want 200", resp.StatusCode)
	}
	if status, _, _ := s.do(t.Context(), http.MethodGet, "/debug/pprof/cmdline", "", nil); status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/cmdline on the API address = %d, want 404", status)
	}
}

// TestShutdownBoundedWhenStorageFails removes the index's directory under
// a running server, then sends SIGTERM. Badger cannot write the index's
// last memtable and retries for ever inside Close (as it would on a full
// disk); the process must still exit, non-zero and saying why, within
// shutdown_timeout and its grace, and a restart must serve every
// acknowledged event, with the index rebuilt from the log.
func TestShutdownBoundedWhenStorageFails(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--shutdown-timeout", "1s")
	var last uint64
	for i := range 20 {
		res := s.mustPost(testEvent("", i))
		last = res[0].Index
	}
	if err := os.RemoveAll(filepath.Join(dir, indexDir)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code := s.terminate(1*time.Second + shutdownGrace + 10*time.Second)
	took := time.Since(start)
	if code == 0 {
		t.Fatalf("SIGTERM with the index's storage gone: exit 0 after %s; want a non-zero exit (its state was not saved)\nstderr:\n%s", took, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "shutdown did not finish") {
		t.Errorf("exit %d after %s without saying the shutdown was cut short\nstderr:\n%s", code, took, s.stderr)
	}
	t.Logf("exited %d %s after SIGTERM", code, took.Round(time.Millisecond))

	s = startServer(t, dir)
	if cp := s.waitCheckpoint(last+1, 10*time.Second); cp.size < last+1 {
		t.Fatalf("after the restart the checkpoint has size %d, want >= %d (every acknowledged event)", cp.size, last+1)
	}
	for i := range last + 1 {
		if _, _, err := s.entry(t.Context(), i); err != nil {
			t.Fatalf("entry %d after the restart: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := len(s.queryEntries("service=e2e"))
		if got == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/events?service=e2e after the restart: %d events, want the 20 posted (the index rebuilt from the log)", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStorageMetricsPerDatabase: /metrics describes each of the server's
// databases, and the ledger's storage size is what its files hold (it
// read 0 for ever while Badger's own metrics, which it came from, were
// off).
func TestStorageMetricsPerDatabase(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	postN(s, 0, 300) // more than a bundle: a full one goes to the value log

	for _, db := range []string{"ledger", "index", "detector", "respond"} {
		label := `db="` + db + `"`
		if v := metricSum(t, s, "accessledger_storage_level0_stall_tables", label); v < 1 {
			t.Errorf("%s: level0 stall tables = %v, want Badger's setting", db, v)
		}
		if v := metricSum(t, s, "accessledger_storage_bytes", label, `part="memtable"`); v <= 0 {
			t.Errorf("%s: memtable bytes = %v, want the write-ahead log written so far", db, v)
		}
		if v := metricSum(t, s, "accessledger_storage_level_tables", label, `level="0"`); v < 0 {
			t.Errorf("%s: level-0 tables = %v", db, v)
		}
	}
	if v := metricSum(t, s, "accessledger_storage_level0_stall_tables", `db="ledger"`); v != 8 {
		t.Errorf("ledger: level0 stall tables = %v, want the ledger's setting, 8", v)
	}
	// The full bundle is in the ledger's value log, and the value log's
	// files hold at least what the metric says.
	vlog := metricSum(t, s, "accessledger_storage_bytes", `db="ledger"`, `part="value_log"`)
	if vlog <= 0 {
		t.Fatalf("ledger: value log bytes = %v after a full bundle, want more than 0", vlog)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "badger", "*.vlog"))
	var apparent int64
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			apparent += fi.Size()
		}
	}
	if vlog > float64(apparent) {
		t.Errorf("ledger: value log bytes = %v, more than its files' %d bytes", vlog, apparent)
	}
}

// TestShutdownWithAClientNotReading: a client that asked for a stream
// and does not read it keeps its answer from finishing; SIGTERM must
// still stop the server cleanly (exit 0) within shutdown_timeout, closing
// that connection, rather than spend the whole budget on it and fail to
// close the log.
func TestShutdownWithAClientNotReading(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--shutdown-timeout", "2s")
	for i := range 30 {
		evs := make([]json.RawMessage, 1000)
		for j := range evs {
			evs[j] = testEvent("", i*1000+j)
		}
		s.mustPost(evs...) // ~9 MB of NDJSON: more than loopback's socket buffers hold
	}
	s.waitCheckpoint(30000, 20*time.Second)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events?format=ndjson HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", s.token)
	time.Sleep(500 * time.Millisecond) // the server is now blocked writing to it
	start := time.Now()
	code := s.terminate(2*time.Second + shutdownGrace + 10*time.Second)
	if code != 0 {
		t.Fatalf("SIGTERM with a client not reading = exit %d after %s, want 0\nstderr:\n%s", code, time.Since(start), s.stderr)
	}
	if took := time.Since(start); took > 2*time.Second+shutdownGrace {
		t.Errorf("the stop took %s, more than shutdown_timeout and its grace", took)
	}
}

// TestEmptiedKeysFileRefusesToStart: a keys file emptied (by a failed
// edit, a full disk) made the next start generate a new admin key in
// place of every key, saying only that no keys were configured. It is
// refused now; removing the file generates one on purpose. A keys file
// with a second YAML document is refused too (its keys were ignored).
func TestEmptiedKeysFileRefusesToStart(t *testing.T) {
	dir := logWithOneEvent(t)
	keys := filepath.Join(dir, "api_keys.yaml")
	admin := mustRead(t, filepath.Join(dir, "admin.key"))
	if err := os.WriteFile(keys, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "serve", "--data", dir, "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "holds no API key") || !strings.Contains(stderr, "remove it") {
		t.Errorf("serve with an emptied keys file = exit %d, stderr %q; want 1 and a message saying what to do", code, stderr)
	}
	if got := mustRead(t, filepath.Join(dir, "admin.key")); !bytes.Equal(got, admin) {
		t.Errorf("the refused start replaced admin.key")
	}

	if err := os.WriteFile(keys, []byte("keys: []\n---\nkeys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, nil, "apikey", "list", "--data", dir); code != 1 || !strings.Contains(stderr, "second YAML document") {
		t.Errorf("apikey list of a keys file with two documents = exit %d, stderr %q; want 1 naming the second document", code, stderr)
	}

	if err := os.Remove(keys); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir)
	if got := mustRead(t, filepath.Join(dir, "admin.key")); bytes.Equal(got, admin) {
		t.Errorf("start without a keys file kept the old admin.key, want a new admin key")
	}
	if code := s.terminate(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
}
