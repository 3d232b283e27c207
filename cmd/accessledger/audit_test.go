package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/ledger"
)

// auditReportOf decodes "audit --json" output (one report per line) and
// returns the last report.
func auditReportOf(t *testing.T, stdout string) auditReport {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r auditReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("audit output %q: %v", stdout, err)
	}
	return r
}

// runAudit runs "accessledger audit" against s with an admin key.
func runAudit(t *testing.T, s *server, state string, extra ...string) (int, auditReport, string) {
	t.Helper()
	args := append([]string{"audit", "--url", s.base, "--vkey", s.vkey, "--state", state, "--json"}, extra...)
	code, stdout, stderr := runCLI(t, []string{"ACCESSLEDGER_AUDIT_API_KEY=" + s.token}, args...)
	return code, auditReportOf(t, stdout), stderr
}

func findingKinds(r auditReport) string {
	var k []string
	for _, f := range r.Findings {
		k = append(k, f.Kind)
	}
	return strings.Join(k, ",")
}

// TestAuditFull audits a real server: the whole tree recomputed, then a
// resumed run after growth, then a plain consistency check.
func TestAuditFull(t *testing.T) {
	// Reads are not recorded, so that the log grows only as posted: the
	// admin leaf of the generated key, then the events.
	s := startServer(t, t.TempDir(), "--audit-reads=false")
	postN(s, 0, 600)
	s.waitCheckpoint(601, 10*time.Second)
	state := t.TempDir()
	code, r, stderr := runAudit(t, s, state, "--full")
	if code != 0 || !r.OK || r.Full == nil || r.Full.Leaves != 601 || r.Size != 601 {
		t.Fatalf("audit --full = %d, %+v (%s), want OK over 601 leaves", code, r, stderr)
	}
	// 3 level-0 tiles (the last one partial) and the partial level-1
	// tile 1/000.p/2.
	if r.Full.Tiles != 4 {
		t.Errorf("audit --full checked %d tiles, want 4", r.Full.Tiles)
	}

	postN(s, 600, 100)
	s.waitCheckpoint(701, 10*time.Second)
	code, r, stderr = runAudit(t, s, state, "--full")
	if code != 0 || !r.OK || r.Full.Resumed != 512 || r.Full.Leaves != 701-512 || r.Previous == nil || *r.Previous != 601 {
		t.Fatalf("second audit --full = %d, %+v (%s), want OK, resumed at 512 and consistent with 601", code, r, stderr)
	}
	code, r, _ = runAudit(t, s, state)
	if code != 0 || !r.OK || r.Full != nil {
		t.Fatalf("audit = %d, %+v, want OK", code, r)
	}
	// The text report.
	code, stdout, _ := runCLI(t, []string{"ACCESSLEDGER_AUDIT_API_KEY=" + s.token}, "audit", "--url", s.base, "--vkey", s.vkey, "--state", state)
	if code != 0 || !strings.Contains(stdout, "checkpoint: size 701") || !strings.Contains(stdout, "\nOK (") {
		t.Errorf("audit (text) = %d:\n%s", code, stdout)
	}
	// Without a key, entry bundles are refused: a precise failure.
	code, stdout, _ = runCLI(t, nil, "audit", "--url", s.base, "--vkey", s.vkey, "--state", t.TempDir(), "--json")
	if r := auditReportOf(t, stdout); code != exitIncomplete || r.OK || !strings.Contains(r.Findings[0].Message, "401") || !strings.Contains(r.Findings[0].Message, "set ACCESSLEDGER_AUDIT_API_KEY") {
		t.Errorf("audit without a key = %d, %+v; want a failure naming the refusal and the key to give", code, r)
	}
}

// TestAuditFullDamagedProgress: a damaged --full progress in the state
// (a flipped byte in a saved hash) made the next resumed run report a
// root mismatch, accusing the log. The run now checks the whole tree again
// before it reports, finds the log sound and replaces the progress.
func TestAuditFullDamagedProgress(t *testing.T) {
	s := startServer(t, t.TempDir(), "--audit-reads=false")
	postN(s, 0, 600)
	s.waitCheckpoint(601, 10*time.Second)
	state := t.TempDir()
	if code, r, stderr := runAudit(t, s, state, "--full"); code != 0 || !r.OK {
		t.Fatalf("audit --full = %d, %+v (%s)", code, r, stderr)
	}
	path := filepath.Join(state, stateFile)
	var st auditState
	if err := json.Unmarshal(mustRead(t, path), &st); err != nil || st.Full == nil || len(st.Full.Range) == 0 {
		t.Fatalf("state %s: %v, %+v; want --full progress", path, err, st)
	}
	st.Full.Range[0][3] ^= 0x10
	raw, _ := json.Marshal(st)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	postN(s, 600, 100)
	s.waitCheckpoint(701, 10*time.Second)
	// A check from the start cut short (the first bundle not served)
	// forgets the damaged progress all the same: every run resumed from
	// it. (On a copy of the state.)
	cut := t.TempDir()
	if err := os.WriteFile(filepath.Join(cut, stateFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	v := logView(t, s, 701, regexp.MustCompile(`^/tile/entries/000$`))
	if code, r, _ := runAudit(t, v, cut, "--full", "--workers", "1"); code != exitIncomplete || r.Full == nil || r.Full.Discarded != 512 {
		t.Fatalf("audit --full with damaged progress, bundle 0 not served = %d, %+v %+v; want unavailable after discarding 512 leaves", code, r, r.Full)
	}
	if st, err := loadAuditState(cut); err != nil || st.Full != nil {
		t.Fatalf("state after the check from the start was cut short: %+v, %v; want the damaged progress gone", st.Full, err)
	}
	code, r, stderr := runAudit(t, s, state, "--full")
	if code != 0 || !r.OK || r.Full == nil || r.Full.Resumed != 0 || r.Full.Leaves != 701 || r.Full.Discarded != 512 {
		t.Fatalf("audit --full with damaged progress = %d, %+v %+v (%s); want OK, the whole tree checked again, 512 leaves of progress discarded", code, r, r.Full, stderr)
	}
	if !strings.Contains(stderr, "was damaged") {
		t.Errorf("stderr %q does not say the saved progress was damaged", stderr)
	}
	// The replaced progress resumes the next run.
	postN(s, 700, 100)
	s.waitCheckpoint(801, 10*time.Second)
	if code, r, stderr := runAudit(t, s, state, "--full"); code != 0 || !r.OK || r.Full.Resumed != 512 || r.Full.Discarded != 0 {
		t.Fatalf("audit --full after the progress was replaced = %d, %+v %+v (%s); want OK, resumed at 512", code, r, r.Full, stderr)
	}
}

// flipTileByte flips one byte of a stored hash tile of a stopped server
// ('t' level:1 index:8, see ledger/keys.go).
func flipTileByte(t *testing.T, dir string, level uint8, index uint64, hash int) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithNumVersionsToKeep(1).
		WithValueThreshold(8<<10 + 1).WithMemTableSize(32 << 20).WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatalf("badger.Open(%s) = %v", dir, err)
	}
	defer db.Close()
	key := binary.BigEndian.AppendUint64([]byte{'t', level}, index)
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[32*hash+7] ^= 0x01
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatalf("editing tile %d/%d: %v", level, index, err)
	}
}

// TestAuditTamper: one changed byte of a stored entry or tile of a stopped
// server (restarted with --quick-open, which does not re-hash old
// entries) makes audit --full fail and say what is wrong.
func TestAuditTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string
	}{
		// Bundle 1: entry 0 of bundle 0 is the admin leaf of the
		// generated key, which a flipped byte makes invalid JSON.
		{"entry", func(t *testing.T, dir string) { flipEntryByte(t, dir, 1) },
			[]string{"tile_mismatch", "tile/0/001 differs from the leaf hashes of entry bundle tile/entries/001", "hash 0 is"}},
		{"tile", func(t *testing.T, dir string) { flipTileByte(t, dir, 0, 0, 5) },
			[]string{"tile_mismatch", "tile/0/000", "hash 5 is"}},
		// Tile 1, when the workers read it after tile 0, comes from the
		// server's read-ahead window (ledger/serve_tiles.go), as bundle
		// 1 above may come from its bundle window.
		{"tile read ahead", func(t *testing.T, dir string) { flipTileByte(t, dir, 0, 1, 200) },
			[]string{"tile_mismatch", "tile/0/001", "hash 200 is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := startServer(t, dir)
			postN(s, 0, 600)
			s.waitCheckpoint(600, 10*time.Second)
			if code := s.terminate(20 * time.Second); code != 0 {
				t.Fatalf("serve exit %d", code)
			}
			tc.tamper(t, filepath.Join(dir, "badger"))
			s = startServer(t, dir, "--quick-open")
			code, r, stderr := runAudit(t, s, t.TempDir(), "--full")
			if code != 1 || r.OK || len(r.Findings) != 1 {
				t.Fatalf("audit --full of a tampered log = %d, %+v (%s), want one finding", code, r, stderr)
			}
			got := r.Findings[0].Kind + ": " + r.Findings[0].Message
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("finding %q does not say %q", got, w)
				}
			}
		})
	}
}

// TestForkDetected: a second log with the same key and origin but other
// entries is refused (422) by our witness after it cosigned the first, the
// witness keeps the evidence, and the auditor reports the split view from
// the two checkpoints, both from its own state and against the witness's
// monitoring read.
func TestForkDetected(t *testing.T) {
	const origin = "fork.example/log"
	keyPath, vkey := logKey(t, origin)
	wpolicy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+vkey+"\nquorum none\n")
	w := startWitness(t, filepath.Join(t.TempDir(), "w"), wpolicy, "--name", "w.example")
	lpolicy := writeFile(t, filepath.Join(t.TempDir(), "log-policy"), fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, w.base))
	args := []string{"--key", keyPath, "--witness-policy", lpolicy}

	// Each log holds the admin leaf of its generated key and 300 events.
	a := startServer(t, t.TempDir(), args...)
	postN(a, 0, 300)
	waitCosigned(t, a, 301, 20*time.Second, w.vkey)
	stateA := t.TempDir()
	if code, r, stderr := runAudit(t, a, stateA, "--policy", lpolicy); code != 0 || !r.OK || r.QuorumMet == nil || !*r.QuorumMet {
		t.Fatalf("audit of the log = %d, %+v (%s), want OK with the quorum met", code, r, stderr)
	}
	a.terminate(20 * time.Second)

	// The fork, at the same size, grown without the witness (which would
	// stop it taking events: it is behind what the witness cosigned),
	// then pushing to it, fail-open so that it serves its checkpoint
	// although the witness refuses it.
	bDir := t.TempDir()
	b := startServer(t, bDir, "--key", keyPath)
	postN(b, 5000, 300)
	b.waitCheckpoint(301, 10*time.Second)
	b.terminate(20 * time.Second)
	b = startServer(t, bDir, append(args, "--witness-fail-open")...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := witnessStates(t, b)
		if e, _ := st[0]["last_error"].(string); strings.Contains(e, "status 422") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("our witness did not refuse the fork with 422: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status, body, err := w.do(t.Context(), http.MethodGet, "/v1/witness/evidence", adminToken(t, w.dir), nil)
	if err != nil || status != 200 || !strings.Contains(string(body), `"reason":"fork"`) {
		t.Errorf("GET /v1/witness/evidence = %d %s %v, want the fork kept", status, body, err)
	}

	code, r, _ := runAudit(t, b, stateA)
	if code != 1 || findingKinds(r) != findingSplitView || r.Findings[0].Evidence == nil ||
		!strings.HasPrefix(r.Findings[0].Evidence.Old, origin+"\n301\n") || !strings.HasPrefix(r.Findings[0].Evidence.New, origin+"\n301\n") {
		t.Errorf("audit of the fork = %d, %+v; want a split view with both checkpoints", code, r)
	}
	// The text report prints the evidence.
	_, stdout, _ := runCLI(t, []string{"ACCESSLEDGER_AUDIT_API_KEY=" + b.token}, "audit", "--url", b.base, "--vkey", b.vkey, "--state", stateA)
	if !strings.Contains(stdout, "SECURITY ERROR") || strings.Count(stdout, origin+"\n\t301\n") != 2 {
		t.Errorf("audit (text) of the fork:\n%s\nwant SECURITY ERROR and both checkpoints", stdout)
	}
	// A fresh auditor sees the split view against the witness's view.
	code, r, _ = runAudit(t, b, t.TempDir(), "--compare", w.base)
	if code != 1 || findingKinds(r) != findingSplitView {
		t.Errorf("audit --compare <witness> of the fork = %d, %+v; want a split view", code, r)
	}
	// And the fork grown (the witness's refusal stopped its events: it
	// is grown without the witness again): an inconsistency, with the
	// proof.
	b.terminate(20 * time.Second)
	if err := os.Remove(filepath.Join(bDir, behindFile)); err != nil {
		t.Fatal(err)
	}
	b = startServer(t, bDir, "--key", keyPath)
	postN(b, 6000, 50)
	b.waitCheckpoint(351, 10*time.Second)
	code, r, _ = runAudit(t, b, stateA)
	if code != 1 || findingKinds(r) != findingInconsistent || len(r.Findings[0].Evidence.Proof) == 0 {
		t.Errorf("audit of the grown fork = %d, %+v; want an inconsistency with the proof", code, r)
	}
	// The witness policy's quorum is not met by the fork.
	code, r, _ = runAudit(t, b, t.TempDir(), "--policy", lpolicy)
	if code != 1 || findingKinds(r) != findingQuorum || !strings.Contains(r.Findings[0].Message, "no cosignature from ") {
		t.Errorf("audit --policy of the fork = %d, %+v; want the quorum not met, naming the witness missing", code, r)
	}
}

// TestAuditFollowWebhook: --follow keeps auditing and posts findings.
func TestAuditFollowWebhook(t *testing.T) {
	s := startServer(t, t.TempDir())
	postN(s, 0, 10)
	s.waitCheckpoint(10, 10*time.Second)
	var mu sync.Mutex
	var posted []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		fmt.Fprint(&b, r.Header.Get("Content-Type"), " ")
		buf := make([]byte, 1<<16)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		mu.Lock()
		posted = append(posted, b.String())
		mu.Unlock()
	}))
	defer hook.Close()
	// A wrong key: every audit fails and is posted.
	_, otherKey := logKey(t, "other.example/log")
	p := spawn(t, "", "", []string{"ACCESSLEDGER_AUDIT_API_KEY=" + s.token},
		[]string{"audit", "--url", s.base, "--vkey", otherKey, "--state", t.TempDir(), "--follow", "--interval", "1s", "--webhook", hook.URL, "--json"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(posted)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("webhook got %d posts; audit output:\n%s\n%s", n, p.stdout, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := p.terminate(10 * time.Second); code != 1 {
		t.Errorf("audit --follow exit code after SIGTERM = %d, want 1 (it found problems)", code)
	}
	if !strings.HasPrefix(posted[0], "application/json ") || !strings.Contains(posted[0], `"kind":"bad_signature"`) {
		t.Errorf("webhook post = %q, want the JSON report with the finding", posted[0])
	}
}

const fsckPkg = "github.com/transparency-dev/tessera/cmd/fsck@v1.0.4"

// TestTesseraFsckChecksOurLog runs Tessera's fsck (v1.0.4) against our
// server: it succeeds on our log, and reports the corruption when a
// stored tile is changed. (v1.0.4 exits 0 even on failure with
// --ui=false: its output says which.)
func TestTesseraFsckChecksOurLog(t *testing.T) {
	fsck := findTool(t, "fsck", fsckPkg)
	dir := t.TempDir()
	s := startServer(t, dir)
	postN(s, 0, 700)
	s.waitCheckpoint(701, 10*time.Second) // and the admin leaf of the generated key
	pub := writeFile(t, filepath.Join(t.TempDir(), "log.pub"), s.vkey)
	run := func() string {
		t.Helper()
		out, err := runTool(t, 50*time.Second, t.TempDir(), fsck, "--storage_url", s.base+"/", "--bearer_token", s.token,
			"--public_key", pub, "--ui=false", "--N", "4")
		if err != nil {
			t.Fatalf("fsck: %v\n%s", err, out)
		}
		return out
	}
	if out := run(); !strings.Contains(out, "Successfully fsck'd log with size 701") {
		t.Fatalf("fsck of our log did not succeed:\n%s", out)
	}
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	flipTileByte(t, filepath.Join(dir, "badger"), 0, 1, 9)
	s = startServer(t, dir, "--quick-open")
	out := run()
	if strings.Contains(out, "Successfully fsck'd") || !strings.Contains(out, "fsck failed") {
		t.Errorf("fsck of our log with a changed tile did not report it:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "fsck failed") {
			t.Logf("fsck on the changed tile: %s", l)
		}
	}
}

// TestAuditFullEncodings audits through a proxy that changes how entry
// bundles are served: a server without zstd (the auditor reads plain
// bundles), one whose compressed bundles are damaged, one answering an
// encoding that was not asked for, and one that recompresses a changed
// entry. Only the first may pass, and the bundles must have been asked
// for with Accept-Encoding: zstd and served compressed by our server.
func TestAuditFullEncodings(t *testing.T) {
	s := startServer(t, t.TempDir(), "--audit-reads=false")
	postN(s, 0, 600)
	s.waitCheckpoint(601, 10*time.Second)
	target, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	bundle1 := regexp.MustCompile(`^/tile/entries/001$`)
	// changeFrame decompresses a served bundle, applies change to its
	// content and compresses it again; with oldChecksum the new frame
	// carries the served frame's checksum.
	changeFrame := func(change func(plain []byte), oldChecksum bool) func(*http.Response) error {
		return func(r *http.Response) error {
			return rewriteBody(r, func(b []byte) []byte {
				dec, _ := zstd.NewReader(nil)
				defer dec.Close()
				plain, err := dec.DecodeAll(b, nil)
				if err != nil {
					t.Errorf("decompressing the served bundle: %v", err)
					return b
				}
				change(plain)
				enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
				out := enc.EncodeAll(plain, nil)
				if oldChecksum {
					copy(out[len(out)-4:], b[len(b)-4:])
				}
				return out
			})
		}
	}
	for _, tc := range []struct {
		name   string
		modify func(r *http.Response) error // on full bundles
		strip  bool                         // drop Accept-Encoding
		want   []string                     // kind and message parts; nil: OK
	}{
		{"plain server", nil, true, nil},
		{"zstd", func(r *http.Response) error {
			if r.Header.Get("Content-Encoding") != "zstd" {
				return fmt.Errorf("bundle %s served with Content-Encoding %q, want zstd", r.Request.URL.Path, r.Header.Get("Content-Encoding"))
			}
			return nil
		}, false, nil},
		{"damaged frame", func(r *http.Response) error {
			return rewriteBody(r, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
		}, false, []string{"unavailable", "tile/entries/001", "does not decompress"}},
		// A changed byte of the content under the original frame's
		// checksum: only the checksum tells it is damaged (the workers
		// decode without checking it).
		{"damaged frame that decodes", changeFrame(func(plain []byte) { plain[len(plain)/2] ^= 0x01 }, true),
			false, []string{"unavailable", "tile/entries/001", "does not decompress"}},
		{"unasked encoding", func(r *http.Response) error {
			r.Header.Set("Content-Encoding", "gzip")
			return nil
		}, false, []string{"unavailable", "tile/entries/001", `Content-Encoding "gzip"`}},
		{"recompressed change", changeFrame(func(plain []byte) {
			i := bytes.Index(plain, []byte(`"received_at":"`)) + len(`"received_at":"`) + 3
			plain[i] ^= 0x01 // another digit of the year: still a valid leaf
		}, false), false, []string{"tile_mismatch", "tile/0/001 differs from the leaf hashes of entry bundle tile/entries/001", "hash 0 is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var compressed atomic.Int64
			p := &httputil.ReverseProxy{
				Rewrite: func(r *httputil.ProxyRequest) {
					r.SetURL(target)
					if tc.strip {
						r.Out.Header.Del("Accept-Encoding")
					}
				},
				Transport: &http.Transport{DisableCompression: true},
			}
			p.ModifyResponse = func(r *http.Response) error {
				if r.Header.Get("Content-Encoding") == "zstd" {
					compressed.Add(1)
				}
				if tc.modify != nil && bundle1.MatchString(r.Request.URL.Path) {
					return tc.modify(r)
				}
				return nil
			}
			proxy := httptest.NewServer(p)
			defer proxy.Close()
			via := *s
			via.base = proxy.URL
			code, r, stderr := runAudit(t, &via, t.TempDir(), "--full")
			if tc.want == nil {
				if code != 0 || !r.OK || r.Full == nil || r.Full.Leaves != 601 {
					t.Fatalf("audit --full = %d, %+v (%s), want OK over 601 leaves", code, r, stderr)
				}
				if got := compressed.Load(); tc.strip && got != 0 || !tc.strip && got != 2 {
					t.Errorf("%d bundles served compressed, want %d", got, map[bool]int{true: 0, false: 2}[tc.strip])
				}
				return
			}
			wantCode := 1 // the log is at fault
			if tc.want[0] == findingUnavailable {
				wantCode = exitIncomplete
			}
			if code != wantCode || r.OK || len(r.Findings) != 1 {
				t.Fatalf("audit --full = %d, %+v (%s), want %d and one finding", code, r, stderr, wantCode)
			}
			got := r.Findings[0].Kind + ": " + r.Findings[0].Message
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("finding %q does not say %q", got, w)
				}
			}
		})
	}
}

// rewriteBody replaces a response's body with edit's result.
func rewriteBody(r *http.Response, edit func([]byte) []byte) error {
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return err
	}
	b = edit(b)
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return nil
}

// TestLimitedBody: a body up to its bound reads in full; one byte more is
// an error, not a read of whatever the server sends.
func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		size    int
		wantErr bool
	}{{0, false}, {100, false}, {101, true}, {5000, true}} {
		b := newLimitedBody(io.NopCloser(strings.NewReader(strings.Repeat("x", tc.size))), 100, "u")
		got, err := io.ReadAll(b)
		if (err != nil) != tc.wantErr || len(got) > 100 {
			t.Errorf("a body of %d bytes, bound 100: read %d bytes, err %v; want error %v", tc.size, len(got), err, tc.wantErr)
		}
	}
}

// logView is a proxy in front of a server that serves one of its earlier
// signed checkpoints as the latest, and answers 404 for the paths gone
// matches: a view of the log as a mirror, or a misbehaving log, shows it.
func logView(t *testing.T, s *server, size uint64, gone *regexp.Regexp) *server {
	return logViewModified(t, s, size, gone, nil)
}

// logViewModified is logView with modify applied to the answers it
// passes on.
func logViewModified(t *testing.T, s *server, size uint64, gone *regexp.Regexp, modify func(*http.Response) error) *server {
	t.Helper()
	return logViewOf(t, s, s.get(fmt.Sprintf("/v1/checkpoints/%d", size), nil), gone, modify)
}

// logViewOf is logViewModified serving checkpoint cp.
func logViewOf(t *testing.T, s *server, cp []byte, gone *regexp.Regexp, modify func(*http.Response) error) *server {
	t.Helper()
	target, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, Transport: &http.Transport{DisableCompression: true},
		ModifyResponse: modify}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/checkpoint":
			w.Write(cp)
		case gone != nil && gone.MatchString(r.URL.Path):
			http.NotFound(w, r)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(proxy.Close)
	via := *s
	via.base = proxy.URL
	return &via
}

// TestAuditViews audits views of a real log that a mirror, or a log
// hiding something, serves.
func TestAuditViews(t *testing.T) {
	s := startServer(t, t.TempDir(), "--audit-reads=false")
	postN(s, 0, 100)
	s.waitCheckpoint(101, 10*time.Second)
	postN(s, 100, 500)
	s.waitCheckpoint(601, 10*time.Second)

	// tlog-tiles lets a log delete a partial tile once the full one
	// exists (Tessera does): tile 0 is full now, and the fetcher reads it
	// for 0/000.p/101 and entries/000.p/101, of which the first 101
	// hashes and entries are the partial ones.
	t.Run("partial tiles deleted", func(t *testing.T) {
		v := logView(t, s, 101, regexp.MustCompile(`\.p/`))
		if code, r, stderr := runAudit(t, v, t.TempDir(), "--full"); code != 0 || !r.OK || r.Full == nil || r.Full.Leaves != 101 {
			t.Errorf("audit --full of size 101 without partial tiles = %d, %+v (%s); want OK over 101 leaves", code, r, stderr)
		}
	})

	// A partial bundle served with more after its entries is not the
	// full bundle the fetcher falls back to: it is refused whole.
	t.Run("partial bundle with more after it", func(t *testing.T) {
		v := logViewModified(t, s, 101, nil, func(r *http.Response) error {
			if r.Request.URL.Path != "/tile/entries/000.p/101" {
				return nil
			}
			return rewriteBody(r, func(b []byte) []byte { return append(b, 0, 3, 'x', 'y', 'z') })
		})
		code, r, stderr := runAudit(t, v, t.TempDir(), "--full")
		if code != 1 || findingKinds(r) != findingEntry {
			t.Errorf("audit --full of a partial bundle with an extra item = %d, %+v (%s); want invalid_entry", code, r, stderr)
		}
	})

	// A second line by the log's key that does not verify, after a valid
	// one: signed-note says a verifier MUST verify every signature of a
	// known key; the first line alone was checked, and the audit passed.
	t.Run("second log signature invalid", func(t *testing.T) {
		cp := s.get("/v1/checkpoints/601", nil)
		var logLine string
		for _, l := range strings.Split(string(cp), "\n") {
			if strings.HasPrefix(l, "— ") {
				logLine = l
				break
			}
		}
		name, b64, _ := strings.Cut(strings.TrimPrefix(logLine, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)-1] ^= 1
		twice := append(bytes.Clone(cp), "— "+name+" "+base64.StdEncoding.EncodeToString(sig)+"\n"...)
		target, err := url.Parse(s.base)
		if err != nil {
			t.Fatal(err)
		}
		rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/checkpoint" {
				w.Write(twice)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		defer proxy.Close()
		via := *s
		via.base = proxy.URL
		code, r, stderr := runAudit(t, &via, t.TempDir())
		if code != 1 || findingKinds(r) != findingSignature {
			t.Errorf("audit of a checkpoint with a second, invalid log signature = %d, %+v (%s); want %s", code, r, stderr, findingSignature)
		}
	})

	// A --vkey that the policy contradicts (its log line for the origin
	// is another key) is refused before anything is fetched, as verify
	// refuses it.
	t.Run("vkey contradicts the policy", func(t *testing.T) {
		v, err := note.NewVerifier(s.vkey)
		if err != nil {
			t.Fatal(err)
		}
		_, otherKey := logKey(t, v.Name())
		policy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+otherKey+"\nquorum none\n")
		code, _, stderr := runCLI(t, []string{"ACCESSLEDGER_AUDIT_API_KEY=" + s.token},
			"audit", "--url", s.base, "--vkey", s.vkey, "--state", t.TempDir(), "--policy", policy)
		if code != 2 || !strings.Contains(stderr, "is not the key the policy") {
			t.Errorf("audit --vkey with a policy naming another key = %d (%s), want 2 naming the policy's key", code, stderr)
		}
	})

	// --vkey takes the key or a file holding it, as verify's does.
	t.Run("vkey from a file", func(t *testing.T) {
		file := writeFile(t, filepath.Join(t.TempDir(), "log.vkey"), s.vkey+"\n")
		if code, r, stderr := runAudit(t, s, t.TempDir(), "--vkey", file); code != 0 || !r.OK {
			t.Errorf("audit --vkey %s = %d, %+v (%s); want OK", file, code, r, stderr)
		}
		missing := filepath.Join(t.TempDir(), "log.vkey")
		code, stdout, stderr := runCLI(t, nil, "audit", "--url", s.base, "--vkey", missing, "--state", t.TempDir())
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "is neither a verifier key") || !strings.Contains(stderr, "nor a readable file") {
			t.Errorf("audit --vkey %s (no such file) = %d, %q, %q; want 2, saying it is neither a key nor a file", missing, code, stdout, stderr)
		}
	})

	// A key that may read checkpoints but not entry bundles is told
	// which role it needs.
	t.Run("bundles refused", func(t *testing.T) {
		status, body, err := s.do(t.Context(), http.MethodPost, "/v1/admin/keys", "", []byte(`{"name":"sub","roles":["submitter"]}`))
		var created struct {
			Secret string `json:"secret"`
		}
		if err != nil || status != http.StatusCreated || json.Unmarshal(body, &created) != nil {
			t.Fatalf("POST /v1/admin/keys = %d %s, %v", status, body, err)
		}
		code, stdout, _ := runCLI(t, []string{"ACCESSLEDGER_AUDIT_API_KEY=" + created.Secret}, "audit", "--url", s.base, "--vkey", s.vkey, "--state", t.TempDir(), "--full", "--json")
		if r := auditReportOf(t, stdout); code != exitIncomplete || len(r.Findings) == 0 || !strings.Contains(r.Findings[0].Message, "auditor role") {
			t.Errorf("audit --full with a submitter key = %d, %+v; want the bundles' 403 naming the role needed", code, r)
		}
	})

	// The empty tree's root is SHA-256 of nothing, which the log signed
	// when it was created.
	t.Run("size 0", func(t *testing.T) {
		v := logView(t, s, 0, nil)
		if code, r, stderr := runAudit(t, v, t.TempDir(), "--full"); code != 0 || !r.OK || r.Full == nil || r.Full.Leaves != 0 {
			t.Errorf("audit --full of size 0 = %d, %+v (%s); want OK", code, r, stderr)
		}
	})

	// A checkpoint of size 2^64-1, signed by the log's key: the number of
	// entry bundles, (size+255)/256, wrapped to 0, and --full checked
	// nothing and said "recomputed 0 leaves, want 18446744073709551615".
	// It checks them from the first, here up to the third, which the
	// log does not hold full.
	t.Run("size 2^64-1", func(t *testing.T) {
		sv, err := ledger.LoadKeyFile(filepath.Join(s.dir, "log.key"))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ledger.NewNoteSigner(s.origin, sv)
		if err != nil {
			t.Fatal(err)
		}
		root := sha256.Sum256([]byte("not the root"))
		cp, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", s.origin, uint64(math.MaxUint64), base64.StdEncoding.EncodeToString(root[:]))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		v := logViewOf(t, s, cp, nil, nil)
		code, r, stderr := runAudit(t, v, t.TempDir(), "--full", "--workers", "1")
		if code != exitIncomplete || findingKinds(r) != findingUnavailable || r.Full == nil || r.Full.Leaves != 512 ||
			!strings.Contains(r.Findings[0].Message, "fetching entry bundle tile/entries/002") {
			t.Errorf("audit --full of a checkpoint of size 2^64-1 = %d, %+v %+v (%s); want 512 leaves checked, then bundle 2 not served", code, r, r.Full, stderr)
		}
	})

	// A --full run that cannot read a bundle still keeps the checkpoint,
	// verified consistent before the run began, and its progress: a log
	// that fails one run on purpose must still extend that checkpoint
	// in the next.
	t.Run("bundle not served", func(t *testing.T) {
		state := t.TempDir()
		v := logView(t, s, 601, regexp.MustCompile(`^/tile/entries/001$`))
		code, r, stderr := runAudit(t, v, state, "--full", "--workers", "1")
		if code != exitIncomplete || findingKinds(r) != findingUnavailable || r.Full == nil || r.Full.Leaves != 256 {
			t.Fatalf("audit --full without bundle 1 = %d, %+v %+v (%s); want unavailable after 256 leaves", code, r, r.Full, stderr)
		}
		st, err := loadAuditState(state)
		if err != nil || !strings.HasPrefix(st.Checkpoint, s.origin+"\n601\n") || st.Full == nil || st.Full.Size != 256 {
			t.Fatalf("state after the failed run: %+v, %v; want the checkpoint of size 601 and progress at 256", st, err)
		}
		if code, r, stderr := runAudit(t, s, state, "--full"); code != 0 || !r.OK || r.Full.Resumed != 256 || *r.Previous != 601 {
			t.Errorf("audit --full after the failed run = %d, %+v %+v (%s); want OK, resumed at 256", code, r, r.Full, stderr)
		}
	})

	// A smaller checkpoint whose consistency with the one held cannot be
	// checked (no tiles) is a rollback, not a proven inconsistency.
	t.Run("rollback unproven", func(t *testing.T) {
		state := t.TempDir()
		if code, r, stderr := runAudit(t, s, state); code != 0 || !r.OK {
			t.Fatalf("audit = %d, %+v (%s)", code, r, stderr)
		}
		v := logView(t, s, 101, regexp.MustCompile(`^/tile/`))
		code, r, _ := runAudit(t, v, state)
		if code != 1 || findingKinds(r) != findingRollback || r.Findings[0].Evidence != nil || !strings.Contains(r.Findings[0].Message, "could not be checked") {
			t.Errorf("audit of an unprovable rollback = %d, %+v; want a rollback without evidence", code, r)
		}
	})

	// --compare with another view ahead of the served checkpoint: the
	// served tiles must prove that it extends the served one. Tiles not
	// served (a 503, a mirror that lags behind the other view and 404s)
	// prove nothing: the run is incomplete (exit 3), not a split view,
	// which stops --follow. A proof built from the tiles that does not
	// verify is a split view, with the proof.
	t.Run("compare ahead", func(t *testing.T) {
		// At 601, or more: "bundles refused" made a key, an admin leaf.
		ahead := t.TempDir()
		code, r, stderr := runAudit(t, s, ahead)
		if code != 0 || !r.OK || r.Size < 601 {
			t.Fatalf("audit = %d, %+v (%s); want OK", code, r, stderr)
		}
		aheadSize := r.Size
		hashTiles := regexp.MustCompile(`^/tile/[0-9]`)
		onHashTiles := func(edit func(r *http.Response) error) func(*http.Response) error {
			return func(r *http.Response) error {
				if hashTiles.MatchString(r.Request.URL.Path) {
					return edit(r)
				}
				return nil
			}
		}
		for _, tc := range []struct {
			name   string
			gone   *regexp.Regexp
			modify func(*http.Response) error
			code   int
			kind   string
		}{
			{"tiles 503", nil, onHashTiles(func(r *http.Response) error {
				r.StatusCode, r.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
				return nil
			}), exitIncomplete, findingUnavailable},
			{"tiles 404", hashTiles, nil, exitIncomplete, findingUnavailable},
			{"tiles altered", nil, onHashTiles(func(r *http.Response) error {
				return rewriteBody(r, func(b []byte) []byte {
					for i := 7; i < len(b); i += 32 {
						b[i] ^= 0x01
					}
					return b
				})
			}), 1, findingSplitView},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v := logViewModified(t, s, 101, tc.gone, tc.modify)
				code, r, stderr := runAudit(t, v, t.TempDir(), "--compare", ahead)
				if code != tc.code || findingKinds(r) != tc.kind {
					t.Fatalf("audit --compare (other view at %d, served 101, %s) = %d, %s: %+v (%s); want %d, %s", aheadSize, tc.name, code, findingKinds(r), r.Findings, stderr, tc.code, tc.kind)
				}
				f := r.Findings[0]
				switch {
				case tc.kind == findingSplitView && (f.Evidence == nil || len(f.Evidence.Proof) == 0 ||
					!strings.HasPrefix(f.Evidence.Old, s.origin+"\n101\n") || !strings.HasPrefix(f.Evidence.New, fmt.Sprintf("%s\n%d\n", s.origin, aheadSize))):
					t.Errorf("split view evidence = %+v; want both checkpoints and the proof that fails", f.Evidence)
				case tc.kind != findingSplitView && f.Evidence != nil:
					t.Errorf("finding %+v carries evidence; nothing was proven", f)
				}
			})
		}
	})
}

// TestAuditMalformedTiles: a hash tile that is not 32 bytes for each of
// its hashes is the log's fault (tile_mismatch, exit 1) whichever check
// reads it. The consistency check took a tile with 32 extra bytes and
// called a short one unavailable (exit 3), while --full called both
// tile_mismatch.
func TestAuditMalformedTiles(t *testing.T) {
	s := startServer(t, t.TempDir(), "--audit-reads=false")
	postN(s, 0, 100)
	s.waitCheckpoint(101, 10*time.Second)
	postN(s, 100, 500)
	s.waitCheckpoint(601, 10*time.Second)
	at101 := t.TempDir()
	if code, r, stderr := runAudit(t, logView(t, s, 101, nil), at101); code != 0 || !r.OK {
		t.Fatalf("audit at 101 = %d, %+v (%s)", code, r, stderr)
	}
	at601 := t.TempDir()
	if code, r, stderr := runAudit(t, s, at601); code != 0 || !r.OK {
		t.Fatalf("audit at 601 = %d, %+v (%s)", code, r, stderr)
	}
	hashTiles := regexp.MustCompile(`^/tile/[0-9]`)
	for _, mangle := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"32 extra bytes", func(b []byte) []byte { return append(b, make([]byte, 32)...) }},
		{"a hash short", func(b []byte) []byte { return b[:len(b)-32] }},
		{"odd length", func(b []byte) []byte { return append(b, 1, 2, 3) }},
	} {
		for _, path := range []struct {
			name  string
			size  uint64 // the served checkpoint
			state string // copied for the run; "": a fresh one
			args  []string
			kinds string
		}{
			{"consistency", 601, at101, nil, findingTile},
			{"compare ahead", 101, "", []string{"--compare", at601}, findingTile},
			{"full", 601, "", []string{"--full"}, findingTile},
			// The tiles of the larger tree, read to check the rollback.
			{"rollback", 101, at601, nil, findingRollback + "," + findingTile},
		} {
			t.Run(mangle.name+"/"+path.name, func(t *testing.T) {
				v := logViewModified(t, s, path.size, nil, func(r *http.Response) error {
					if !hashTiles.MatchString(r.Request.URL.Path) {
						return nil
					}
					return rewriteBody(r, mangle.edit)
				})
				state := t.TempDir()
				if path.state != "" {
					writeFile(t, filepath.Join(state, stateFile), string(mustRead(t, filepath.Join(path.state, stateFile))))
				}
				code, r, stderr := runAudit(t, v, state, path.args...)
				if code != 1 || findingKinds(r) != path.kinds || !strings.Contains(r.Findings[len(r.Findings)-1].Message, "is malformed: it has") {
					t.Errorf("audit %v (%s) of a log serving hash tiles with %s = %d, %s: %+v (%s); want 1, %s: ... is malformed", path.args, path.name, mangle.name, code, findingKinds(r), r.Findings, stderr, path.kinds)
				}
			})
		}
	}
}

// TestBundlesOf: size/256 rounded up, also where (size+255)/256
// overflows.
func TestBundlesOf(t *testing.T) {
	for _, tc := range []struct{ size, want uint64 }{
		{0, 0}, {1, 1}, {255, 1}, {256, 1}, {257, 2},
		{math.MaxUint64 - 255, 1<<56 - 1}, {math.MaxUint64 - 254, 1 << 56}, {math.MaxUint64, 1 << 56},
	} {
		if got := bundlesOf(tc.size); got != tc.want {
			t.Errorf("bundlesOf(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

// TestAuditEmptiedState: a state file that parses but holds no
// checkpoint was taken for a first run, and the checkpoint the log serves
// now pinned: a rollback the auditor would not notice. It is refused, as
// a truncated one is (exit 3), and left as it is.
func TestAuditEmptiedState(t *testing.T) {
	s := startServer(t, t.TempDir())
	postN(s, 0, 10)
	s.waitCheckpoint(11, 10*time.Second)
	for _, content := range []string{`{}`, `null`, fmt.Sprintf(`{"origin":%q,"checkpoint":""}`, s.origin), `{`} {
		state := t.TempDir()
		path := writeFile(t, filepath.Join(state, stateFile), content)
		code, r, stderr := runAudit(t, s, state)
		if code != exitIncomplete || findingKinds(r) != findingUnavailable || !strings.Contains(r.Findings[0].Message, "audit state "+path) {
			t.Errorf("audit with the state %s = %d, %+v (%s); want 3, the state refused", content, code, r, stderr)
		}
		if got := string(mustRead(t, path)); got != content {
			t.Errorf("audit with the state %s rewrote it: %s", content, got)
		}
	}
}

// TestAuditFollowKeepsTheWorst: --follow ended with the last failing
// run's status: a finding against the log, then a run cut short by Ctrl-C,
// exited 3 ("nothing found against the log").
func TestAuditFollowKeepsTheWorst(t *testing.T) {
	againstLog := (&auditReport{Findings: []finding{{Kind: findingTile}}}).err()
	incomplete := (&auditReport{Findings: []finding{{Kind: findingUnavailable}}}).err()
	code := func(err error) int {
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	for _, tc := range []struct {
		runs []error
		want int
	}{
		{[]error{againstLog, incomplete}, 1},
		{[]error{incomplete, againstLog, incomplete}, 1},
		{[]error{incomplete, incomplete}, exitIncomplete},
	} {
		var failed error
		for _, err := range tc.runs {
			failed = worse(failed, err)
		}
		if got := code(failed); got != tc.want {
			t.Errorf("runs %v: exit %d, want %d", tc.runs, got, tc.want)
		}
	}
}
