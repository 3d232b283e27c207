package main

// The log restored from a backup behind what its witnesses cosigned:
// serve must not take events at the indexes it lost (README: Restoring
// from a backup).

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/prooftest"
	"github.com/accessledger/accessledger/ledger"
)

// logSize returns the size of the log's latest checkpoint (GET /v1/log).
func logSize(t *testing.T, s *server) uint64 {
	t.Helper()
	var info struct {
		Size uint64 `json:"size"`
	}
	s.get("/v1/log", &info)
	return info.Size
}

// witnessedLog makes a log key and starts our witness for it. It returns
// the witness and the serve flags of the key and a policy with that
// witness alone (quorum 1), reached at url (the witness's if "").
func witnessedLog(t *testing.T, origin string) (w *witnessProc, flags func(url string) []string) {
	t.Helper()
	keyPath, vkey := logKey(t, origin)
	wpolicy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+vkey+"\nquorum none\n")
	w = startWitness(t, filepath.Join(t.TempDir(), "w"), wpolicy, "--name", "w1.example")
	return w, func(url string) []string {
		if url == "" {
			url = w.base
		}
		policy := writeFile(t, filepath.Join(t.TempDir(), "log-policy"), fmt.Sprintf("witness w1 %s %s\nquorum w1\n", w.vkey, url))
		return []string{"--key", keyPath, "--witness-policy", policy, "--witness-timeout", "3s"}
	}
}

// slowProxy forwards to target after a delay: a witness that answers
// late.
func slowProxy(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// copyTree copies a stopped server's data directory as a backup does.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}

// wantBehind checks that the server refuses events as a log behind its
// witnessed size lost, says so on /readyz and in its metrics, and took
// nothing.
func wantBehind(t *testing.T, s *server, lost, size uint64, when string) {
	t.Helper()
	status, _, body, err := s.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 99)})
	want := fmt.Sprintf("the log is behind a checkpoint its witnesses cosigned (size %d)", lost)
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
		t.Fatalf("%s: POST /v1/events = %d %s, %v; want 503 saying %q\nstderr:\n%s", when, status, body, err, want, s.stderr)
	}
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
		t.Errorf("%s: GET /readyz = %d %s, want 503 saying %q", when, status, body, want)
	}
	if got := metricSum(t, s, "accessledger_witness_log_behind"); got != 1 {
		t.Errorf("%s: accessledger_witness_log_behind = %v, want 1", when, got)
	}
	if got := logSize(t, s); got != size {
		t.Errorf("%s: the log's size = %d, want %d (the restored size)", when, got, size)
	}
	if !strings.Contains(s.stderr.String(), "level=ERROR") || !strings.Contains(s.stderr.String(), "Restoring from a backup") {
		t.Errorf("%s: stderr has no error line saying what to do:\n%s", when, s.stderr)
	}
}

// TestRestoredBackupRefusesEvents is the reviewer's reproduction, on the
// real binaries: a backup of the stopped server; an event appended and
// cosigned by the witness; the backup restored. The server used to start,
// log a warning and take the next event at the index of the acknowledged
// one it lost: a fork under its own key. Now it refuses events from its
// first request (it asks the witness before it takes any), also after a
// restart with the witness down (the record) and after a restart without
// the record (the witness says it again).
func TestRestoredBackupRefusesEvents(t *testing.T) {
	w, flags := witnessedLog(t, "restore.example/log")
	args := flags("")
	dir := filepath.Join(t.TempDir(), "data")
	backup := filepath.Join(t.TempDir(), "backup")

	s := startServer(t, dir, args...)
	postN(s, 0, 3)
	waitCosigned(t, s, 3, 20*time.Second, w.vkey)
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit code %d", code)
	}
	copyTree(t, dir, backup)

	s = startServer(t, dir, args...)
	acked := s.mustPost(testEvent("", 3))[0].Index
	lost := waitCosigned(t, s, acked+1, 20*time.Second, w.vkey)
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit code %d", code)
	}

	// The backup put back.
	copyTree(t, backup, dir)
	s = startServer(t, dir, args...)
	size := logSize(t, s)
	if size >= lost {
		t.Fatalf("the restored log's size %d is not behind the witnessed %d", size, lost)
	}
	wantBehind(t, s, lost, size, "restored")
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Errorf("serve exit code %d after the halt, want 0", code)
	}

	// Restarted without the record, the witness answering late (1.5 s):
	// the server asks it before it takes the first event.
	if err := os.Remove(filepath.Join(dir, behindFile)); err != nil {
		t.Fatalf("the halt was not recorded: %v", err)
	}
	s = startServer(t, dir, flags(slowProxy(t, w.base, 1500*time.Millisecond))...)
	wantBehind(t, s, lost, size, "restarted, without the record, the witness slow")
	s.terminate(20 * time.Second)

	// Restarted with the witness down: the record says it.
	w.terminate(20 * time.Second)
	s = startServer(t, dir, args...)
	wantBehind(t, s, lost, size, "restarted, the witness down")
}

// TestRestartAtTheWitnessSizeTakesEvents: a server restarted at the very
// size its witness cosigned (the witness's 409 names the log's own size)
// takes events, and they are cosigned.
func TestRestartAtTheWitnessSizeTakesEvents(t *testing.T) {
	w, flags := witnessedLog(t, "restart.example/log")
	args := flags("")
	dir := t.TempDir()
	s := startServer(t, dir, args...)
	postN(s, 0, 3)
	var size uint64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		size = waitCosigned(t, s, 3, 20*time.Second, w.vkey)
		if size == logSize(t, s) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not cosign the log's latest checkpoint within 20s: %d, the log at %d", size, logSize(t, s))
		}
	}
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit code %d", code)
	}

	s = startServer(t, dir, args...)
	if got := logSize(t, s); got != size {
		t.Fatalf("the restarted log's size = %d, want the witnessed %d", got, size)
	}
	next := s.mustPost(testEvent("", 3))[0].Index
	waitCosigned(t, s, next+1, 20*time.Second, w.vkey)
	if got := metricSum(t, s, "accessledger_witness_log_behind"); got != 0 {
		t.Errorf("accessledger_witness_log_behind = %v, want 0", got)
	}
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/readyz", "", nil); status != http.StatusOK {
		t.Errorf("GET /readyz = %d %s, want 200", status, body)
	}
}

// TestDownWitnessDelaysTheStart: serve waits for a witness that refuses
// connections (twice witness_timeout) before it takes events, and then
// names it in its warning. The first round used to end with the first
// failed request: serve took events a millisecond after it asked, and
// said nothing.
func TestDownWitnessDelaysTheStart(t *testing.T) {
	keyPath, _ := logKey(t, "down.example/log")
	_, cvkey := prooftest.WitnessKey(t, "down.example/w")
	policy := writeFile(t, filepath.Join(t.TempDir(), "log-policy"), fmt.Sprintf("witness down %s http://%s\nquorum none\n", cvkey, freeAddr(t)))
	start := time.Now()
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--key", keyPath, "--witness-policy", policy, "--witness-timeout", "1s")
	if took := time.Since(start); took < 1800*time.Millisecond {
		t.Errorf("serve was ready %v after it started, want about 2s (twice witness_timeout) with the witness down", took.Round(time.Millisecond))
	}
	var warning string
	for line := range strings.Lines(s.stderr.String()) {
		if strings.Contains(line, "taking events before every witness answered") {
			warning = line
		}
	}
	if !strings.Contains(warning, "level=WARN") || !strings.Contains(warning, "down") {
		t.Errorf("stderr has no warning naming the witness down:\n%s", s.stderr)
	}
	s.mustPost(testEvent("", 0))
}

// TestSnapshotWithAnUnsignedTailTakesEvents is the reviewer's
// reproduction of a false alarm: a crash-consistent copy (a file-system
// snapshot) holds entries durable but not yet signed; the log, started
// again, signs them and its witness cosigns them. Restored, the copy
// holds every entry the witness cosigned, but its latest checkpoint is
// smaller: serve asked the witness before its signer's first tick, took
// the 409 for a loss, and halted for good (a halted log never signs).
// Now serve signs what the copy holds before it asks, and the witness
// finds it the same tree.
func TestSnapshotWithAnUnsignedTailTakesEvents(t *testing.T) {
	w, flags := witnessedLog(t, "snapshot.example/log")
	args := flags("")
	dir := filepath.Join(t.TempDir(), "data")
	snapshot := filepath.Join(t.TempDir(), "snapshot")

	s := startServer(t, dir, append(args, "--checkpoint-interval", "1h")...)
	postN(s, 0, 3)
	time.Sleep(500 * time.Millisecond)
	s.kill()
	copyTree(t, dir, snapshot)

	s = startServer(t, dir, args...)
	cosigned := waitCosigned(t, s, 4, 20*time.Second, w.vkey)
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit code %d", code)
	}

	copyTree(t, snapshot, dir)
	s = startServer(t, dir, args...)
	status, _, body, err := s.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 3)})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /v1/events on the restored snapshot = %d %s, %v; want 201\nstderr:\n%s", status, body, err, s.stderr)
	}
	for i := range cosigned {
		if _, _, err := s.entry(t.Context(), i); err != nil {
			t.Errorf("entry %d of the restored snapshot: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, behindFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) = %v, want no record", behindFile, err)
	}
}

// behindSetup makes a log in a new data directory holding two entries
// its latest checkpoint (size 0) does not cover, closed without signing
// them, and a log.behind record beyond it; it returns the configuration
// to open it with, the signer ticking every 10ms.
func behindSetup(t *testing.T) (Config, identity) {
	t.Helper()
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	cfg.CheckpointInterval = time.Hour
	id, err := resolveIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	l, err := openOrCreate(t.Context(), cfg, id, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), ledger.Entry{Data: []byte("a")}, ledger.Entry{Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	l.Halt(errors.New("closing without a final checkpoint"))
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfg.Data, behindFile), `{"witness":"w1","witness_size":9,"log_size":0}`+"\n")
	cfg.CheckpointInterval = 10 * time.Millisecond
	if id, err = resolveIdentity(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, id
}

// TestBehindRecordHaltsAtOpen: the log.behind record halts the log as
// it opens, before its signer's first tick, which would sign the entries
// stored since its latest checkpoint. serve used to halt it only later,
// when it started witnessing.
func TestBehindRecordHaltsAtOpen(t *testing.T) {
	cfg, id := behindSetup(t)
	l, err := openOrCreate(t.Context(), cfg, id, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(t.Context())
	if err := l.Healthy(); !errors.Is(err, ledger.ErrHalted) {
		t.Errorf("Healthy() once opened with a log.behind record = %v, want ErrHalted", err)
	}
	time.Sleep(100 * time.Millisecond) // ten ticks of the signer
	if got := l.Latest().Size; got != 0 {
		t.Errorf("Latest().Size = %d, want 0: the halted log signed the entries stored since", got)
	}
}

// TestBehindRecordWithoutPolicyMetric: with the record and no witness
// policy, accessledger_witness_log_behind is 1, as README says; it was
// not there at all.
func TestBehindRecordWithoutPolicyMetric(t *testing.T) {
	cfg, id := behindSetup(t)
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	l, err := openOrCreate(t.Context(), cfg, id, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(t.Context())
	if _, stop, err := startWitnessing(t.Context(), cfg, nil, l, log, reg); err != nil {
		t.Fatal(err)
	} else {
		defer stop()
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "accessledger_witness_log_behind" {
			got = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if got != 1 {
		t.Errorf("accessledger_witness_log_behind = %v (-1: absent), want 1", got)
	}
}
