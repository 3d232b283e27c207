package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/internal/powerfs"
)

var witnessKeyLine = regexp.MustCompile(`(?m)^witness verifier key: (\S+)$`)

// witnessProc is one "accessledger witness" subprocess.
type witnessProc struct {
	*server
	vkey string
}

// startWitness runs "accessledger witness" on a free loopback port with
// the data directory dir, the policy file and extra flags, and waits until
// it answers /healthz.
func startWitness(t *testing.T, dir, policy string, extra ...string) *witnessProc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		args := append([]string{"witness", "--data", dir, "--listen", addr, "--policy", policy}, extra...)
		s := spawn(t, dir, addr, nil, args)
		err := s.waitReady(30 * time.Second)
		if err == nil {
			var m []string
			for deadline := time.Now().Add(5 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				m = witnessKeyLine.FindStringSubmatch(s.stdout.String())
			}
			if m == nil {
				t.Fatalf("witness stdout has no verifier key line:\n%s", s.stdout)
			}
			return &witnessProc{server: s, vkey: m[1]}
		}
		if attempt < 4 && strings.Contains(s.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("accessledger %v did not become ready: %v\nstderr:\n%s", args, err, s.stderr)
	}
}

// post sends an add-checkpoint body and returns the status, content type
// and body.
func (w *witnessProc) post(t *testing.T, body []byte) (int, string, []byte) {
	t.Helper()
	resp, err := w.client.Post(w.base+"/add-checkpoint", "", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /add-checkpoint: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b.Bytes()
}

// noteLog is a minimal log for the CLI tests: a key and checkpoints over
// leaf hashes, built with golang.org/x/mod/sumdb/tlog.
type noteLog struct {
	origin, skey, vkey string
	signer             note.Signer
}

func newNoteLog(t *testing.T, origin string) *noteLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &noteLog{origin: origin, skey: skey, vkey: vkey, signer: s}
}

// checkpoint signs a checkpoint of the tree whose leaves are the first
// size of the records "r0", "r1", ….
func (l *noteLog) checkpoint(t *testing.T, size int64) []byte {
	t.Helper()
	root := treeRoot(t, size)
	text := fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, root)
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// treeRoot is the base64 RFC 6962 root of the leaves "r0", "r1", … up to
// size, computed with golang.org/x/mod/sumdb/tlog.
func treeRoot(t *testing.T, size int64) string {
	t.Helper()
	var hashes hashList
	for i := int64(0); i < size; i++ {
		hs, err := tlog.StoredHashes(i, fmt.Appendf(nil, "r%d", i), hashes)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	h, err := tlog.TreeHash(size, hashes)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// hashList is an in-memory tlog.HashReader.
type hashList []tlog.Hash

func (l hashList) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = l[x]
	}
	return out, nil
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWitnessKeygen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "w.key")
	code, stdout, stderr := runCLI(t, nil, "witness", "keygen", "--name", "witness.example/w1", "--out", out)
	if code != 0 {
		t.Fatalf("witness keygen = %d, stderr %s", code, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	vkey := strings.TrimSpace(stdout)
	if got := strings.TrimSpace(string(mustRead(t, out+".vkey"))); got != vkey {
		t.Errorf("%s.vkey = %q, want the printed %q", out, got, vkey)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil || v.Name() != "witness.example/w1" {
		t.Errorf("NewVerifierForCosignatureV1(%q) = %v", vkey, err)
	}
	if code, _, stderr := runCLI(t, nil, "witness", "keygen", "--name", "witness.example/w1", "--out", out); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("witness keygen over an existing key = %d, %s; want a refusal", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "witness", "keygen", "--name", "bad name", "--out", out+"2"); code == 0 || !strings.Contains(stderr, "not a valid key name") {
		t.Errorf("witness keygen --name 'bad name' = %d, %s; want a refusal", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "witness", "--data", dir); code != 1 || !strings.Contains(stderr, "--policy is required") {
		t.Errorf("witness without --policy = %d, %s; want a refusal naming --policy", code, stderr)
	}
}

// TestWitnessCommand runs the witness binary: it cosigns, keeps its state
// across a restart, and refuses to start over when its state vanished.
func TestWitnessCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	lg := newNoteLog(t, "log.example/cli")
	policy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "# trusted logs\nlog "+lg.vkey+"\nquorum none\n")
	w := startWitness(t, dir, policy, "--name", "witness.example/cli")
	if fi, err := os.Stat(filepath.Join(dir, "witness.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated witness key: %v, %v; want mode 0600", fi, err)
	}
	status, ctype, body := w.post(t, []byte("old 0\n\n"+string(lg.checkpoint(t, 3))))
	if status != 200 || ctype != "text/plain; charset=utf-8" {
		t.Fatalf("POST /add-checkpoint = %d %q %q, want 200", status, ctype, body)
	}
	v, err := fnote.NewVerifierForCosignatureV1(w.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(append(lg.checkpoint(t, 3), body...), note.VerifierList(v)); err != nil {
		t.Fatalf("the cosignature %q does not verify with the printed key: %v", body, err)
	}
	if code := w.terminate(15 * time.Second); code != 0 {
		t.Fatalf("witness exit code after SIGTERM = %d, want 0\n%s", code, w.stderr)
	}

	// Restarted without --name: the name is recorded; the state is kept.
	w = startWitness(t, dir, policy)
	status, ctype, body = w.post(t, []byte("old 0\n\n"+string(lg.checkpoint(t, 3))))
	if status != 409 || ctype != "text/x.tlog.size" || string(body) != "3\n" {
		t.Errorf("POST /add-checkpoint after restart = %d %q %q, want 409 text/x.tlog.size \"3\\n\"", status, ctype, body)
	}
	sum := sha256.Sum256([]byte(lg.origin))
	resp, err := w.client.Get(w.base + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET monitoring checkpoint = %v, %v", resp, err)
	}
	resp.Body.Close()
	w.terminate(15 * time.Second)

	// State lost: refuse to start over.
	if err := os.RemoveAll(filepath.Join(dir, "badger")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "witness", "--data", dir, "--listen", freeAddr(t), "--policy", policy)
	if code != 1 || !strings.Contains(stderr, "Refusing to start over") {
		t.Errorf("witness with lost state = %d, %s; want a refusal", code, stderr)
	}
	// With witness.created removed too, witness.vkey still records that
	// state existed: the same key started over and cosigned a fork.
	if err := os.Remove(filepath.Join(dir, "witness.created")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, nil, "witness", "--data", dir, "--listen", freeAddr(t), "--policy", policy)
	if code != 1 || !strings.Contains(stderr, "Refusing to start over") || !strings.Contains(stderr, "witness.vkey") {
		t.Errorf("witness with lost state and no witness.created = %d, %s; want a refusal naming witness.vkey", code, stderr)
	}
	// Another name for the same key: refused.
	code, _, stderr = runCLI(t, nil, "witness", "--data", dir, "--listen", freeAddr(t), "--policy", policy, "--name", "witness.example/other")
	if code != 1 || !strings.Contains(stderr, "ambiguous") || !strings.Contains(stderr, `"witness.example/cli" in `+filepath.Join(dir, "witness.vkey")+";") {
		t.Errorf("witness --name other = %d, %s; want a refusal", code, stderr)
	}
}

// toolsDirs are where interop tests look for third-party programs, before
// PATH: $ACCESSLEDGER_TOOLS and ~/.cache/accessledger-tools/bin (where
// .ci/run installs them).
func toolsDirs() []string {
	var dirs []string
	if d := os.Getenv("ACCESSLEDGER_TOOLS"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "accessledger-tools", "bin"))
	}
	return dirs
}

// findTool returns the path of a third-party program, or skips the test
// with the command that installs it.
func findTool(t *testing.T, name, pkg string) string {
	t.Helper()
	for _, d := range toolsDirs() {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	// On PATH, only the Go program of pkg: "fsck" there is util-linux's.
	if p, err := exec.LookPath(name); err == nil && builtFrom(p, pkg) {
		return p
	}
	t.Skipf("%s is not installed: GOBIN=$HOME/.cache/accessledger-tools/bin go install %s (or run .ci/run, or set ACCESSLEDGER_TOOLS to its folder)", name, pkg)
	return ""
}

// builtFrom reports whether the program at path is a Go binary built
// from pkg (its path, before any @version), as go version -m tells.
func builtFrom(path, pkg string) bool {
	pkgPath, _, _ := strings.Cut(pkg, "@")
	out, err := exec.Command("go", "version", "-m", path).Output()
	return err == nil && strings.Contains(string(out), "\tpath\t"+pkgPath+"\n")
}

// runTool runs a program to completion within timeout and returns its
// combined output.
func runTool(t *testing.T, timeout time.Duration, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const posixOneshotPkg = "github.com/transparency-dev/tessera/cmd/examples/posix-oneshot@v1.0.4"

// TestTesseraPushesToOurWitness has Tessera's posix-oneshot (v1.0.4) push
// its checkpoints to our witness binary: our witness cosigns, Tessera
// accepts the cosignatures (it verifies them with transparency-dev/formats
// NewVerifierForCosignatureV1), and when the log grew without the witness
// Tessera learns the witness's size from our 409 and catches it up with a
// consistency proof.
func TestTesseraPushesToOurWitness(t *testing.T) {
	oneshot := findTool(t, "posix-oneshot", posixOneshotPkg)
	work := t.TempDir()
	lg := newNoteLog(t, "tessera.example/log")
	keyFile := writeFile(t, filepath.Join(work, "log.key"), lg.skey)
	wpolicy := writeFile(t, filepath.Join(work, "witness-policy"), "log "+lg.vkey+"\nquorum none\n")
	w := startWitness(t, filepath.Join(work, "witness"), wpolicy, "--name", "witness.example/ours")
	lpolicy := writeFile(t, filepath.Join(work, "log-policy"), fmt.Sprintf("witness ours %s %s\nquorum ours\n", w.vkey, w.base))
	wv, err := fnote.NewVerifierForCosignatureV1(w.vkey)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(lg.vkey)
	if err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(work, "log")
	add := func(withWitness bool, names ...string) {
		t.Helper()
		dir := filepath.Join(work, "entries-"+names[0])
		os.MkdirAll(dir, 0o755)
		for _, n := range names {
			writeFile(t, filepath.Join(dir, n), "entry "+n+"\n")
		}
		args := []string{"--storage_dir", storage, "--entries", filepath.Join(dir, "*"), "--private_key", keyFile}
		if withWitness {
			args = append(args, "--witness_policy_file", lpolicy, "--witness_timeout", "10s")
		}
		if out, err := runTool(t, 45*time.Second, work, oneshot, args...); err != nil {
			t.Fatalf("posix-oneshot %v: %v\n%s", args, err, out)
		}
	}
	checkpoint := func(wantSize string, cosigned bool) {
		t.Helper()
		raw := mustRead(t, filepath.Join(storage, "checkpoint"))
		vs := []note.Verifier{lv}
		if cosigned {
			vs = append(vs, wv)
		}
		n, err := note.Open(raw, note.VerifierList(vs...))
		if err != nil {
			t.Fatalf("Tessera's checkpoint %q: %v", raw, err)
		}
		if lines := strings.Split(n.Text, "\n"); lines[1] != wantSize {
			t.Fatalf("Tessera's checkpoint has size %s, want %s", lines[1], wantSize)
		}
		if cosigned && len(n.Sigs) != 2 {
			t.Fatalf("Tessera's checkpoint %q: %d verified signatures, want the log's and our witness's", raw, len(n.Sigs))
		}
	}

	add(true, "a", "b", "c")
	checkpoint("3", true)
	add(false, "d", "e") // the witness does not see size 5
	checkpoint("5", false)
	add(true, "f", "g") // Tessera starts at 5, we answer 409 "3", it proves 3 → 7
	checkpoint("7", true)

	logs := w.stderr.String()
	if !strings.Contains(logs, "status=409") {
		t.Errorf("our witness never answered 409; its log:\n%s", logs)
	}
	sum := sha256.Sum256([]byte(lg.origin))
	resp, err := w.client.Get(w.base + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if n, err := note.Open(b.Bytes(), note.VerifierList(lv, wv)); err != nil || !strings.HasPrefix(n.Text, lg.origin+"\n7\n") {
		t.Errorf("our witness's monitoring checkpoint = %q (%v), want size 7 signed by both", b.Bytes(), err)
	}
}

// TestWitnessShutdownBoundedWhenStorageFails removes the witness's storage
// under it, then sends SIGTERM: Badger cannot write its last memtable and
// retries for ever inside Close; the process must still exit, non-zero and
// saying why, within shutdown_timeout and its grace.
func TestWitnessShutdownBoundedWhenStorageFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	lg := newNoteLog(t, "log.example/gone")
	policy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+lg.vkey+"\nquorum none\n")
	w := startWitness(t, dir, policy, "--name", "witness.example/gone", "--shutdown-timeout", "1s")
	if status, _, body := w.post(t, []byte("old 0\n\n"+string(lg.checkpoint(t, 3)))); status != 200 {
		t.Fatalf("POST /add-checkpoint = %d %q, want 200", status, body)
	}
	if err := os.RemoveAll(filepath.Join(dir, "badger")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code := w.terminate(1*time.Second + shutdownGrace + 10*time.Second)
	if code == 0 || !strings.Contains(w.stderr.String(), "shutdown did not finish") {
		t.Fatalf("SIGTERM with the witness's storage gone: exit %d after %s; want a non-zero exit saying the shutdown was cut short\nstderr:\n%s",
			code, time.Since(start), w.stderr)
	}
	t.Logf("exited %d %s after SIGTERM", code, time.Since(start).Round(time.Millisecond))
}

// TestEvidenceWaitsForQuorum: with witnessing on, evidence bundles are
// proved against the checkpoint the quorum cosigned, as GET /checkpoint
// serves. Until there is one, both answer 503 (evidence had used the log's
// own checkpoint, which no witness saw: a split view witnessing is there
// to catch); with witness_fail_open both use the latest.
func TestEvidenceWaitsForQuorum(t *testing.T) {
	// A witness that never cosigns our log: its policy trusts another.
	other := newNoteLog(t, "other.example/log")
	wpolicy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+other.vkey+"\nquorum none\n")
	w := startWitness(t, filepath.Join(t.TempDir(), "w"), wpolicy, "--name", "w.example")
	policy := writeFile(t, filepath.Join(t.TempDir(), "log-policy"), fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, w.base))
	for _, failOpen := range []bool{false, true} {
		args := []string{"--witness-policy", policy, "--witness-fail-open=" + strconv.FormatBool(failOpen)}
		s := startServer(t, t.TempDir(), args...)
		postN(s, 0, 3)
		want := http.StatusServiceUnavailable
		if failOpen {
			want = http.StatusOK
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			cpStatus, _, err := s.do(t.Context(), http.MethodGet, "/checkpoint", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			evStatus, body, err := s.do(t.Context(), http.MethodGet, "/v1/evidence?service=e2e", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if cpStatus != want {
				t.Fatalf("fail open %v: GET /checkpoint = %d, want %d", failOpen, cpStatus, want)
			}
			if failOpen && evStatus == http.StatusOK && strings.Count(string(body), `"index"`) == 3 {
				break // the three events, once indexed
			}
			if !failOpen {
				if evStatus != want || !strings.Contains(string(body), "witness quorum") {
					t.Fatalf("GET /v1/evidence without a witnessed checkpoint = %d %s, want 503 naming the quorum", evStatus, body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fail open: GET /v1/evidence = %d %s, want the three events", evStatus, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.terminate(20 * time.Second)
	}
}

// TestWitnessSurvivesCrashes submits checkpoints of three logs
// concurrently to a witness, kills it at a random moment (SIGKILL; on a
// powerfs mount, a power cut first), restarts it on the same data, and
// checks that it starts (its record of the states stored, badger/COSIGNED,
// is never ahead of the storage after a crash) and still holds, for each
// log, at least the largest checkpoint it cosigned before, with that
// log's root. It repeats this on the same witness.
func TestWitnessSurvivesCrashes(t *testing.T) {
	for _, mode := range []string{"kill", "power"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "w")
			var fs *powerfs.FS
			var mnt *powerfs.Mount
			if mode == "power" {
				if err := powerfs.Available(); err != nil {
					t.Skipf("power cuts need a FUSE mount: %v", err)
				}
				fs = powerfs.New()
				mntDir := filepath.Join(t.TempDir(), "powerfs")
				var err error
				if mnt, err = fs.Mount(mntDir); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { mnt.Unmount() })
				dir = filepath.Join(mntDir, "w")
			}
			var logs []*crashLog
			var policy strings.Builder
			for i := range 3 {
				l := &crashLog{noteLog: newNoteLog(t, fmt.Sprintf("log.example/crash%d", i))}
				logs = append(logs, l)
				fmt.Fprintf(&policy, "log %s\n", l.vkey)
			}
			policy.WriteString("quorum none\n")
			policyPath := writeFile(t, filepath.Join(t.TempDir(), "policy"), policy.String())
			rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 0))
			for cycle := range 4 {
				w := startWitness(t, dir, policyPath, "--name", "witness.example/crash")
				for _, l := range logs {
					l.check(t, w, cycle)
				}
				var cut atomic.Bool
				var wg sync.WaitGroup
				for _, l := range logs {
					wg.Go(func() { l.load(w, &cut) })
				}
				time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
				cut.Store(true) // what is answered from now on is not checked
				if mode == "power" {
					fs.PowerCut()
				}
				w.kill()
				wg.Wait()
				if mode == "power" {
					if err := mnt.Unmount(); err != nil {
						t.Fatal(err)
					}
					var err error
					if mnt, err = fs.Mount(mnt.Dir()); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("%s %d: cosigned sizes %d, %d, %d", mode, cycle, logs[0].acked, logs[1].acked, logs[2].acked)
			}
			w := startWitness(t, dir, policyPath)
			for _, l := range logs {
				l.check(t, w, 4)
			}
			if code := w.terminate(15 * time.Second); code != 0 {
				t.Errorf("after the crashes, SIGTERM: exit code %d, want 0", code)
			}
		})
	}
}

// crashLog is a log of TestWitnessSurvivesCrashes: its entries ("r0",
// "r1", …), the size it believes the witness holds and the largest size
// the witness cosigned before the last crash. Its fields belong to its
// load goroutine while it runs.
type crashLog struct {
	*noteLog
	hashes   hashList
	n        int64
	believed int64
	acked    int64
}

func (l *crashLog) grow(n int64) {
	for ; l.n < n; l.n++ {
		hs, err := tlog.StoredHashes(l.n, fmt.Appendf(nil, "r%d", l.n), l.hashes)
		if err != nil {
			panic(err)
		}
		l.hashes = append(l.hashes, hs...)
	}
}

func (l *crashLog) root(size int64) tlog.Hash {
	h, err := tlog.TreeHash(size, l.hashes)
	if err != nil {
		panic(err)
	}
	return h
}

// request is the add-checkpoint body from the believed size to the
// current one.
func (l *crashLog) request() []byte {
	text := fmt.Sprintf("%s\n%d\n%s\n", l.origin, l.n, l.root(l.n))
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		panic(err)
	}
	body := fmt.Appendf(nil, "old %d\n", l.believed)
	if l.believed > 0 && l.believed < l.n {
		p, err := tlog.ProveTree(l.n, l.believed, l.hashes)
		if err != nil {
			panic(err)
		}
		for _, h := range p {
			body = fmt.Appendf(body, "%s\n", h)
		}
	}
	return append(append(body, '\n'), signed...)
}

// load grows the log and submits its checkpoints until the witness dies.
func (l *crashLog) load(w *witnessProc, cut *atomic.Bool) {
	for {
		l.grow(l.n + 1 + int64(len(l.hashes)%7))
		resp, err := w.client.Post(w.base+"/add-checkpoint", "", bytes.NewReader(l.request()))
		if err != nil {
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return
		case resp.StatusCode == http.StatusOK:
			l.believed = l.n
			if !cut.Load() {
				l.acked = l.n
			}
		case resp.StatusCode == http.StatusConflict:
			size, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
			if err != nil {
				return
			}
			l.believed = size
		default:
			if !cut.Load() {
				w.t.Errorf("%s: add-checkpoint = %d %q", l.origin, resp.StatusCode, body)
			}
			return
		}
	}
}

// check reads the witness's latest checkpoint of the log: it must be at
// least the largest cosigned before the crash, with the log's root.
func (l *crashLog) check(t *testing.T, w *witnessProc, cycle int) {
	t.Helper()
	sum := sha256.Sum256([]byte(l.origin))
	resp, err := w.client.Get(w.base + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && l.acked == 0 {
		l.believed = 0
		return
	}
	lines := strings.Split(string(body), "\n")
	if resp.StatusCode != http.StatusOK || len(lines) < 3 {
		t.Fatalf("start %d: %s: GET monitoring checkpoint = %d %q, want its checkpoint", cycle, l.origin, resp.StatusCode, body)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < l.acked || size > l.n || lines[2] != l.root(size).String() {
		t.Fatalf("start %d: %s: the witness holds %q, having cosigned size %d (root %s); want it or a later one of this log",
			cycle, l.origin, body, l.acked, l.root(l.acked))
	}
	l.believed = size
}
