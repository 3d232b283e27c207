package main

// Helpers for the end-to-end tests: they build the real binary once, run it
// as a subprocess on a loopback port and talk to it over HTTP, verifying
// everything it serves with independent libraries (golang.org/x/mod/sumdb
// note and tlog, transparency-dev/formats), never with our own code.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/internal/syncbuf"
)

// binPath is the accessledger binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "accessledger-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating build directory:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binPath = filepath.Join(tmp, "accessledger")
	// go test runs a package's tests in the package directory, so "."
	// is this command. go test puts its own toolchain first in PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "no go binary to build accessledger with:", err)
		return 1
	}
	build := exec.Command(gobin, "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build -o", binPath, ". failed:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer = syncbuf.Buffer

// cleanEnv returns the environment without ACCESSLEDGER_* variables, plus
// extra, so that the developer's environment cannot change a test.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ACCESSLEDGER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCLI runs the binary to completion, in a directory of its own, and
// returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIIn(t, t.TempDir(), env, args...) // so that defaults such as ./data land there
}

// runCLIIn is runCLI in the working directory dir.
func runCLIIn(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
	default:
		t.Fatalf("running accessledger %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// server is one accessledger serve subprocess.
type server struct {
	t      *testing.T
	dir    string // data directory ("" if given by env or config only)
	addr   string
	base   string // http://addr
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed once the process has exited
	state  *os.ProcessState

	token    string // admin API token, from <dir>/admin.key
	origin   string
	vkey     string
	verifier note.Verifier
	client   *http.Client
}

// serverOpts says how to start a server.
type serverOpts struct {
	// args after "serve"; --listen is added unless noListenFlag.
	args []string
	// env is added to the (cleaned) environment.
	env []string
	// noListenFlag leaves the listen address to env or config; addr is
	// then used as the address to poll.
	noListenFlag bool
	addr         string
	// dir is the data directory, to read admin.key from.
	dir string
}

// startServer starts "accessledger serve" with --data dir, a free loopback
// port, a fast checkpoint cadence and the given extra flags, and waits
// until it answers /healthz. The process is SIGKILLed when the test ends
// if it is still running.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"--data", dir, "--checkpoint-interval", "100ms"}, extra...)
	return startServerOpts(t, serverOpts{args: args, dir: dir})
}

func startServerOpts(t *testing.T, o serverOpts) *server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := o.addr
		args := append([]string{"serve"}, o.args...)
		if !o.noListenFlag {
			addr = freeAddr(t)
			args = append(args, "--listen", addr)
		}
		s := spawn(t, o.dir, addr, o.env, args)
		err := s.waitReady(30 * time.Second)
		if err == nil {
			s.loadIdentity()
			return s
		}
		// Another process may have taken the port between freeAddr and
		// the server's listen: try another one.
		if !o.noListenFlag && attempt < 4 && strings.Contains(s.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("accessledger %v did not become ready: %v\nstdout:\n%s\nstderr:\n%s", args, err, s.stdout, s.stderr)
	}
}

// spawn starts the binary without waiting for readiness.
func spawn(t *testing.T, dir, addr string, env, args []string) *server {
	t.Helper()
	s := &server{
		t:      t,
		dir:    dir,
		addr:   addr,
		base:   "http://" + addr,
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        32,
				MaxIdleConnsPerHost: 32,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = cleanEnv(env...)
	s.cmd.Dir = t.TempDir() // relative paths and defaults land there
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting accessledger %v: %v", args, err)
	}
	go func() {
		s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.done)
	}()
	t.Cleanup(func() {
		running := !s.exited()
		s.kill()
		s.client.CloseIdleConnections()
		if running && t.Failed() {
			t.Logf("server %s (still running at the end) stderr:\n%s", addr, s.stderr)
		}
	})
	return s
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitReady polls /healthz until it answers 200, the process exits, or
// the timeout passes.
func (s *server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if s.exited() {
			return fmt.Errorf("process exited: %v", s.state)
		}
		resp, err := c.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no healthy answer from %s within %s", s.base, timeout)
}

var verifierKeyLine = regexp.MustCompile(`(?m)^verifier key: (\S+)$`)

// loadIdentity reads the verifier key the server printed and the admin
// token it wrote.
func (s *server) loadIdentity() {
	t := s.t
	t.Helper()
	// The process wrote the line before it served /healthz, but copying
	// it from the pipe into s.stdout may lag behind.
	m := verifierKeyLine.FindStringSubmatch(s.stdout.String())
	for deadline := time.Now().Add(5 * time.Second); m == nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		m = verifierKeyLine.FindStringSubmatch(s.stdout.String())
	}
	if m == nil {
		t.Fatalf("server stdout has no verifier key line:\n%s", s.stdout)
	}
	s.vkey = m[1]
	v, err := note.NewVerifier(s.vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", s.vkey, err)
	}
	s.verifier = v
	s.origin = v.Name()
	if s.dir != "" {
		raw, err := os.ReadFile(filepath.Join(s.dir, "admin.key"))
		if err != nil {
			t.Fatalf("reading admin key: %v", err)
		}
		s.token = strings.TrimSpace(string(raw))
	}
}

// kill SIGKILLs the process, if running, and waits for it to exit.
func (s *server) kill() {
	if s.exited() {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// terminate sends SIGTERM and waits up to timeout for the exit. It
// returns the exit code, or fails the test (and SIGKILLs) on a timeout.
func (s *server) terminate(timeout time.Duration) int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("sending SIGTERM: %v", err)
	}
	select {
	case <-s.done:
		code := s.state.ExitCode()
		if code != 0 {
			s.t.Logf("server exited with code %d after SIGTERM\nstderr:\n%s", code, s.stderr)
		}
		return code
	case <-time.After(timeout):
		s.kill()
		s.t.Fatalf("server did not exit within %s of SIGTERM\nstderr:\n%s", timeout, s.stderr)
		return -1
	}
}

// do sends a request with the admin token (or token, if given) and returns
// the status and body.
func (s *server) do(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if token == "" {
		token = s.token
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get GETs path with the admin token, wants 200 and decodes JSON into v
// (or returns the raw body if v is nil).
func (s *server) get(path string, v any) []byte {
	s.t.Helper()
	status, body, err := s.do(s.t.Context(), http.MethodGet, path, "", nil)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	if status != http.StatusOK {
		s.t.Fatalf("GET %s = %d %s, want 200", path, status, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			s.t.Fatalf("GET %s: decoding %s: %v", path, body, err)
		}
	}
	return body
}

// checkpoint is a verified checkpoint.
type checkpoint struct {
	size uint64
	hash tlog.Hash
	raw  []byte
}

// parseCheckpoint verifies a signed note as a checkpoint of this log with
// transparency-dev/formats and x/mod/sumdb/note.
func (s *server) parseCheckpoint(raw []byte) (checkpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(raw, s.origin, s.verifier)
	if err != nil {
		return checkpoint{}, fmt.Errorf("log.ParseCheckpoint(%q) = %v", raw, err)
	}
	if len(cp.Hash) != tlog.HashSize {
		return checkpoint{}, fmt.Errorf("checkpoint root is %d bytes", len(cp.Hash))
	}
	var h tlog.Hash
	copy(h[:], cp.Hash)
	return checkpoint{size: cp.Size, hash: h, raw: raw}, nil
}

// latestCheckpoint fetches and verifies GET /checkpoint.
func (s *server) latestCheckpoint() checkpoint {
	s.t.Helper()
	raw := s.get("/checkpoint", nil)
	cp, err := s.parseCheckpoint(raw)
	if err != nil {
		s.t.Fatalf("GET /checkpoint: %v", err)
	}
	return cp
}

// waitCheckpoint polls /checkpoint until it covers size entries.
func (s *server) waitCheckpoint(size uint64, timeout time.Duration) checkpoint {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cp := s.latestCheckpoint()
		if cp.size >= size {
			return cp
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("checkpoint size %d after %s, want >= %d", cp.size, timeout, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leafHash is the RFC 6962 leaf hash, computed here rather than by the
// code under test.
func leafHash(entry []byte) tlog.Hash {
	return sha256.Sum256(append([]byte{0}, entry...))
}

// parseHash decodes a base64 SHA-256 hash.
func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, fmt.Errorf("%q is not a base64 SHA-256 hash", s)
	}
	copy(h[:], b)
	return h, nil
}

// decodeHash is parseHash for the test goroutine: it fails the test.
func decodeHash(t *testing.T, what, s string) tlog.Hash {
	t.Helper()
	h, err := parseHash(s)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return h
}

// entryResponse is GET /v1/entries/<i>.
type entryResponse struct {
	Index       uint64          `json:"index"`
	LeafHash    string          `json:"leaf_hash"`
	Entry       json.RawMessage `json:"entry"`
	EntryBase64 []byte          `json:"entry_base64"`
}

// entry fetches an entry and returns its exact stored bytes, checking that
// the leaf hash the server claims is the hash of those bytes.
func (s *server) entry(ctx context.Context, index uint64) ([]byte, tlog.Hash, error) {
	path := "/v1/entries/" + strconv.FormatUint(index, 10)
	status, body, err := s.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("GET %s: %v", path, err)
	}
	if status != http.StatusOK {
		return nil, tlog.Hash{}, fmt.Errorf("GET %s = %d %s, want 200", path, status, body)
	}
	var r entryResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, tlog.Hash{}, fmt.Errorf("GET %s: decoding: %v", path, err)
	}
	data := []byte(r.Entry)
	if r.EntryBase64 != nil {
		data = r.EntryBase64
	}
	h := leafHash(data)
	if r.Index != index || base64.StdEncoding.EncodeToString(h[:]) != r.LeafHash {
		return nil, tlog.Hash{}, fmt.Errorf("GET %s = index %d leaf_hash %s, but SHA-256(0x00||entry) = %x", path, r.Index, r.LeafHash, h)
	}
	return data, h, nil
}

// proofResponse is an inclusion or consistency proof.
type proofResponse struct {
	Hashes []string `json:"hashes"`
}

func (s *server) proofHashes(path string) []tlog.Hash {
	s.t.Helper()
	var p proofResponse
	s.get(path, &p)
	out := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		out[i] = decodeHash(s.t, path, h)
	}
	return out
}

// checkInclusion verifies with tlog.CheckRecord that the leaf at index is
// in the tree of cp.
func (s *server) checkInclusion(cp checkpoint, index uint64, leaf tlog.Hash) {
	s.t.Helper()
	path := fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", index, cp.size)
	p := s.proofHashes(path)
	if err := tlog.CheckRecord(p, int64(cp.size), cp.hash, int64(index), leaf); err != nil {
		s.t.Errorf("tlog.CheckRecord(GET %s, leaf %x) = %v", path, leaf, err)
	}
}

// checkConsistency verifies with tlog.CheckTree that old is a prefix of
// cp.
func (s *server) checkConsistency(old, cp checkpoint) {
	s.t.Helper()
	if old.size > cp.size {
		s.t.Errorf("checkpoint size went from %d to %d: the log shrank", old.size, cp.size)
		return
	}
	if old.size == 0 {
		if old.hash != tlog.Hash(sha256.Sum256(nil)) {
			s.t.Errorf("size-0 checkpoint has root %x, want SHA-256 of nothing", old.hash)
		}
		return
	}
	path := fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.size, cp.size)
	p := s.proofHashes(path)
	if err := tlog.CheckTree(p, int64(cp.size), cp.hash, int64(old.size), old.hash); err != nil {
		s.t.Errorf("tlog.CheckTree(GET %s) = %v: checkpoint %d (%x) is not a prefix of %d (%x)",
			path, err, old.size, old.hash, cp.size, cp.hash)
	}
}

// postResult is one element of a POST /v1/events answer.
type postResult struct {
	Index     uint64 `json:"index"`
	LeafHash  string `json:"leaf_hash"`
	Duplicate bool   `json:"duplicate"`
}

// postEvents posts a batch and returns the status, the results (for 2xx)
// and the body.
func (s *server) postEvents(ctx context.Context, token string, events []json.RawMessage) (int, []postResult, []byte, error) {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return 0, nil, nil, err
	}
	status, resp, err := s.do(ctx, http.MethodPost, "/v1/events", token, body)
	if err != nil || status/100 != 2 {
		return status, nil, resp, err
	}
	var r struct {
		Results []postResult `json:"results"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return status, nil, resp, fmt.Errorf("decoding %s: %v", resp, err)
	}
	if len(r.Results) != len(events) {
		return status, nil, resp, fmt.Errorf("%d results for %d events", len(r.Results), len(events))
	}
	return status, r.Results, resp, nil
}

// testEvent returns a valid access event; id is omitted if empty.
func testEvent(id string, n int) json.RawMessage {
	ev := map[string]any{
		"time":     time.Date(2026, 1, 2, 15, 4, 5, n, time.UTC).Format(time.RFC3339Nano),
		"service":  "e2e",
		"actor":    map[string]any{"id": fmt.Sprintf("user-%d", n%97), "type": "user"},
		"source":   map[string]any{"ip": fmt.Sprintf("10.0.%d.%d", n/256%256, n%256)},
		"action":   "read",
		"category": "data_access",
		"outcome":  "success",
		"resource": map[string]any{"type": "doc", "id": strconv.Itoa(n)},
	}
	if id != "" {
		ev["id"] = id
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// mustPost posts events and fails the test unless they are appended (201).
func (s *server) mustPost(events ...json.RawMessage) []postResult {
	s.t.Helper()
	status, res, body, err := s.postEvents(s.t.Context(), "", events)
	if err != nil || status != http.StatusCreated {
		s.t.Fatalf("POST /v1/events = %d %s, %v; want 201", status, body, err)
	}
	return res
}
