package main

// Interop tests of the log's side of witnessing: our log ("accessledger
// serve --witness-policy") pushes its checkpoints to witnesses we did not
// write (torchwood's litewitness, transparency-dev's omniwitness) and to
// ours, and serves them cosigned.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// witnessUnderTest is a running witness: its cosignature verifier key and
// its submission URL.
type witnessUnderTest struct {
	vkey string
	url  string
}

// logKey writes a log key with keygen and returns its path and verifier
// key.
func logKey(t *testing.T, origin string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.key")
	code, stdout, stderr := runCLI(t, nil, "keygen", "--origin", origin, "--out", path)
	if code != 0 {
		t.Fatalf("keygen = %d: %s", code, stderr)
	}
	return path, strings.TrimSpace(stdout)
}

// waitCosigned polls GET /checkpoint until it serves a checkpoint of at
// least size entries, signed by the log and cosigned by every one of
// vkeys, and returns its size.
func waitCosigned(t *testing.T, s *server, size uint64, timeout time.Duration, vkeys ...string) uint64 {
	t.Helper()
	var vs []note.Verifier
	for _, vk := range vkeys {
		v, err := fnote.NewVerifierForCosignatureV1(vk)
		if err != nil {
			t.Fatalf("NewVerifierForCosignatureV1(%q) = %v", vk, err)
		}
		vs = append(vs, v)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		status, body, err := s.do(t.Context(), http.MethodGet, "/checkpoint", "", nil)
		last = fmt.Sprintf("%d %q %v", status, body, err)
		if err == nil && status == http.StatusOK {
			cp, err := s.parseCheckpoint(body)
			ok := err == nil && cp.size >= size
			for _, v := range vs {
				_, err := note.Open(body, note.VerifierList(v))
				ok = ok && err == nil
			}
			if ok {
				return cp.size
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var info map[string]any
	s.get("/v1/log", &info)
	t.Fatalf("no checkpoint of size >= %d cosigned by %d witnesses within %s; last GET /checkpoint: %s; /v1/log: %v", size, len(vkeys), timeout, last, info)
	return 0
}

// witnessStates returns GET /v1/log's witnesses.
func witnessStates(t *testing.T, s *server) []map[string]any {
	t.Helper()
	var info struct {
		Witnesses []map[string]any `json:"witnesses"`
	}
	s.get("/v1/log", &info)
	return info.Witnesses
}

// metricSum sums the samples of a metric whose labels contain every
// fragment, from GET /metrics.
func metricSum(t *testing.T, s *server, name string, fragments ...string) float64 {
	t.Helper()
	body := s.get("/metrics", nil)
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, f := range fragments {
			match = match && strings.Contains(line, f)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func postN(s *server, from, n int) {
	evs := make([]json.RawMessage, n)
	for i := range evs {
		evs[i] = testEvent("", from+i)
	}
	s.mustPost(evs...)
}

// checkLogWithWitness runs our log against one witness: it cosigns our
// checkpoints; after a restart of the log (which then starts from size 0)
// the log learns the witness's size from its 409 and is cosigned again;
// and a fork of our log (same key and origin, other entries) is refused,
// and takes no events: neither empty (behind the witness) nor grown past
// the witness's size without it (refused with 422).
func checkLogWithWitness(t *testing.T, origin, keyPath string, w witnessUnderTest) {
	t.Helper()
	policy := writeFile(t, filepath.Join(t.TempDir(), "witness-policy"), fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, w.url))
	dir := t.TempDir()
	args := []string{"--key", keyPath, "--witness-policy", policy, "--witness-timeout", "2s"}
	s := startServer(t, dir, args...)
	postN(s, 0, 10)
	size := waitCosigned(t, s, 10, 20*time.Second, w.vkey)
	if st := witnessStates(t, s); len(st) != 1 || st[0]["cosigned_size"].(float64) < 10 {
		t.Errorf("GET /v1/log witnesses = %v, want w cosigned at 10 or more", st)
	}
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit code %d\n%s", code, s.stderr)
	}

	// Restarted, the log believes the witness is at 0: the witness's 409
	// tells it the size, and new checkpoints are cosigned.
	s = startServer(t, dir, args...)
	postN(s, 10, 5)
	waitCosigned(t, s, size+5, 20*time.Second, w.vkey)
	if got := metricSum(t, s, "accessledger_witness_requests_total", `result="conflict"`); got < 1 {
		t.Errorf("accessledger_witness_requests_total{result=\"conflict\"} = %v, want the 409 that told the log the witness's size", got)
	}
	final := waitCosigned(t, s, size+5, 20*time.Second, w.vkey)

	// A fork: another log with the same key and origin. Empty, it is
	// behind what the witness cosigned, and takes no events.
	forkDir := t.TempDir()
	fork := startServer(t, forkDir, args...)
	status, _, body, err := fork.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 1000)})
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), "the log is behind a checkpoint its witnesses cosigned") {
		t.Errorf("POST /v1/events to an empty fork = %d %s, %v; want 503, the log behind its witnesses", status, body, err)
	}
	fork.terminate(20 * time.Second)
	// Grown without the witness to other entries beyond what it
	// cosigned, the fork is refused by it (422), and then takes no
	// events either.
	if err := os.Remove(filepath.Join(forkDir, behindFile)); err != nil {
		t.Fatal(err)
	}
	fork = startServer(t, forkDir, "--key", keyPath)
	postN(fork, 1000, int(final)+7)
	fork.terminate(20 * time.Second)
	fork = startServer(t, forkDir, args...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := witnessStates(t, fork)
		if e, _ := st[0]["last_error"].(string); strings.Contains(e, "status 422") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not refuse our fork with 422 within 20s; fork's view: %v\nfork stderr:\n%s", st, fork.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, body, _ := fork.do(t.Context(), http.MethodGet, "/checkpoint", "", nil); status != http.StatusServiceUnavailable {
		t.Errorf("fork's GET /checkpoint = %d %s, want 503 (no quorum)", status, body)
	}
	status, _, body, err = fork.postEvents(t.Context(), "", []json.RawMessage{testEvent("", 2000)})
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(body), "the log disagrees with a checkpoint its witnesses cosigned") {
		t.Errorf("POST /v1/events to a fork the witness refused = %d %s, %v; want 503, the log disagreeing with its witnesses", status, body, err)
	}
	// The original is unaffected.
	postN(s, 20, 1)
	waitCosigned(t, s, final+1, 20*time.Second, w.vkey)
}

// TestServePushesToOurWitnesses: two of our witness processes, quorum of
// both; then the same interop flow as for third-party witnesses.
func TestServePushesToOurWitnesses(t *testing.T) {
	const origin = "interop.example/ours"
	keyPath, vkey := logKey(t, origin)
	quorumKey, quorumVKey := logKey(t, "interop.example/quorum")
	wpolicy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+vkey+"\nlog "+quorumVKey+"\nquorum none\n")
	w1 := startWitness(t, filepath.Join(t.TempDir(), "w1"), wpolicy, "--name", "w1.example")
	w2 := startWitness(t, filepath.Join(t.TempDir(), "w2"), wpolicy, "--name", "w2.example")
	policy := writeFile(t, filepath.Join(t.TempDir(), "log-policy"),
		fmt.Sprintf("log %s\nwitness a %s %s\nwitness b %s %s\ngroup ab all a b\nquorum ab\n", quorumVKey, w1.vkey, w1.base, w2.vkey, w2.base))
	s := startServer(t, t.TempDir(), "--key", quorumKey, "--witness-policy", policy)
	postN(s, 0, 20)
	waitCosigned(t, s, 20, 20*time.Second, w1.vkey, w2.vkey)
	s.terminate(20 * time.Second)

	checkLogWithWitness(t, origin, keyPath, witnessUnderTest{vkey: w1.vkey, url: w1.base})
	// Our witness kept the fork as evidence.
	status, body, err := w1.do(t.Context(), http.MethodGet, "/v1/witness/evidence", adminToken(t, w1.dir), nil)
	if err != nil || status != 200 || !strings.Contains(string(body), `"reason":"inconsistent_proof"`) {
		t.Errorf("GET /v1/witness/evidence = %d %s %v, want the fork kept", status, body, err)
	}
}

func adminToken(t *testing.T, dir string) string {
	t.Helper()
	return strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "admin.key"))))
}

const litewitnessPkg = "filippo.io/torchwood/cmd/litewitness@v0.9.0"

var litewitnessVKey = regexp.MustCompile(`msg="verifier key" vkey=(\S+)`)

// TestLitewitnessCosigns runs our log against torchwood's litewitness
// (v0.9.0): its key in a dedicated ssh-agent, our log in its SQLite "log"
// and "key" tables.
func TestLitewitnessCosigns(t *testing.T) {
	lw := findTool(t, "litewitness", litewitnessPkg)
	for _, tool := range []string{"ssh-agent", "ssh-keygen", "ssh-add", "sqlite3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install openssh-client sqlite3): litewitness needs it", tool)
		}
	}
	const origin = "interop.example/litewitness"
	keyPath, vkey := logKey(t, origin)
	work := t.TempDir()

	// A dedicated ssh-agent holding a fresh Ed25519 key.
	sshKey := filepath.Join(work, "id_ed25519")
	if out, err := runTool(t, 30*time.Second, work, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "litewitness", "-f", sshKey); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	sock := filepath.Join(work, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not create its socket")
		}
	}
	add := exec.Command("ssh-add", sshKey)
	add.Env = append(cleanEnv(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	fp, err := runTool(t, 10*time.Second, work, "ssh-keygen", "-l", "-E", "sha256", "-f", sshKey+".pub")
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v\n%s", err, fp)
	}
	fingerprint := strings.Fields(fp)[1] // "256 SHA256:... comment (ED25519)"

	// The log, in litewitness's tables (what witnessctl add-log and
	// add-key write): size 0 with the empty tree's root hash, and the key.
	db := filepath.Join(work, "litewitness.db")
	schema := `CREATE TABLE log (origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, tree_hash TEXT NOT NULL);
CREATE TABLE key (origin TEXT NOT NULL, key TEXT NOT NULL, FOREIGN KEY(origin) REFERENCES log(origin));
CREATE TABLE bastion (origin TEXT NOT NULL, bastion TEXT NOT NULL, FOREIGN KEY(origin) REFERENCES log(origin));
INSERT INTO log (origin, tree_size, tree_hash) VALUES ('` + origin + `', 0, '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
INSERT INTO key (origin, key) VALUES ('` + origin + `', '` + vkey + `');
`
	if out, err := runTool(t, 10*time.Second, work, "sqlite3", db, schema); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	var stderr syncBuffer
	cmd := exec.Command(lw, "-name", "litewitness.example/w", "-db", db, "-ssh-agent", sock, "-key", fingerprint, "-listen", addr)
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var wvkey string
	for deadline := time.Now().Add(10 * time.Second); wvkey == "" || !strings.Contains(stderr.String(), "listening"); time.Sleep(10 * time.Millisecond) {
		if m := litewitnessVKey.FindStringSubmatch(stderr.String()); m != nil {
			wvkey = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("litewitness did not start:\n%s", stderr.String())
		}
	}
	waitListening(t, addr)
	checkLogWithWitness(t, origin, keyPath, witnessUnderTest{vkey: wvkey, url: "http://" + addr})
	// litewitness's own record of our log.
	out, err := runTool(t, 10*time.Second, work, "sqlite3", db, "SELECT tree_size FROM log")
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); err != nil || n < 16 {
		t.Errorf("litewitness's tree_size = %q (%v), want our log's size", out, err)
	}
}

// waitListening waits until addr accepts HTTP.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", addr, err)
		}
	}
}

const omniwitnessPkg = "github.com/transparency-dev/witness/cmd/omniwitness@v0.0.0-20260720115447-2e1c6971d19e"

// TestOmniwitnessCosigns runs our log against transparency-dev's
// omniwitness (newest pseudo-version on the module proxy), configured with
// --additional_logs and SQLite persistence.
func TestOmniwitnessCosigns(t *testing.T) {
	ow := findTool(t, "omniwitness", omniwitnessPkg)
	const origin = "interop.example/omniwitness"
	keyPath, vkey := logKey(t, origin)
	work := t.TempDir()
	wl := newNoteLog(t, "omniwitness.example/w") // its key, in note format
	keyFile := writeFile(t, filepath.Join(work, "witness.key"), wl.skey)
	wvkey, err := fnote.VKeyToCosignatureV1(wl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	logs := writeFile(t, filepath.Join(work, "logs.yaml"), fmt.Sprintf("Logs:\n  - Origin: %s\n    PublicKey: %s\n    URL: http://unused.invalid/\n", origin, vkey))
	addr := freeAddr(t)
	var stderr syncBuffer
	cmd := exec.Command(ow, "--listen", addr, "--metrics_listen", "", "--private_key_path", keyFile,
		"--additional_logs", logs, "--db_file", filepath.Join(work, "omniwitness.db"))
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("omniwitness output:\n%s", stderr.String())
		}
	})
	waitListening(t, addr)
	checkLogWithWitness(t, origin, keyPath, witnessUnderTest{vkey: wvkey, url: "http://" + addr})
}
