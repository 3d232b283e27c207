package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/witness"
)

// witnessFixture is our witness behind its HTTP server, trusting logs
// that are real ledgers.
type witnessFixture struct {
	w      *witness.Witness
	srv    *httptest.Server
	tokens map[api.Role]string
	vkey   string
}

// newWitnessFixture serves a new witness trusting the ledgers' keys.
func newWitnessFixture(t *testing.T, maxBody int64, logs ...*ledger.Ledger) *witnessFixture {
	t.Helper()
	var policy strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&policy, "log %s\n", l.VerifierKey())
	}
	policy.WriteString("quorum none\n")
	p, err := witness.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := witness.NewCosigner("witness.example/w1", sv, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.Create(bg, witness.Config{Dir: t.TempDir(), Signer: cs, Logs: p.Logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	kr, tokens := newKeys(t)
	ws, err := api.NewWitness(api.WitnessConfig{Witness: w, Keys: kr, MaxBodyBytes: maxBody, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ws.Handler())
	t.Cleanup(srv.Close)
	return &witnessFixture{w: w, srv: srv, tokens: tokens, vkey: cs.VerifierKey()}
}

// grow appends n entries to l and signs a checkpoint over them.
func grow(t *testing.T, l *ledger.Ledger, n int, seed string) *ledger.Checkpoint {
	t.Helper()
	entries := make([]ledger.Entry, n)
	for i := range entries {
		entries[i].Data = fmt.Appendf(nil, "%s %d", seed, i)
	}
	if _, err := l.Append(bg, entries...); err != nil {
		t.Fatal(err)
	}
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// addBody is the add-checkpoint body from old to cp, with the ledger's
// consistency proof.
func addBody(t *testing.T, l *ledger.Ledger, old uint64, cp *ledger.Checkpoint) []byte {
	t.Helper()
	var p [][]byte
	if old > 0 && old < cp.Size {
		var err error
		if p, err = l.ConsistencyProof(bg, old, cp.Size); err != nil {
			t.Fatal(err)
		}
	}
	return witness.AddRequest{OldSize: old, Proof: p, Checkpoint: cp.Note}.Marshal()
}

// signText signs any note text with a ledger's key.
func signText(t *testing.T, s note.Signer, text string) []byte {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

var cosigLine = regexp.MustCompile(`^— witness\.example/w1 [A-Za-z0-9+/]{102}==\n$`)

// TestWitnessProtocol checks every status code of POST /add-checkpoint,
// with byte-exact bodies and content types, against a witness that has
// cosigned the log at size 5.
func TestWitnessProtocol(t *testing.T) {
	signer := newTestSigner(t)
	a, _ := newTestLedger(t, func(c *ledger.Config) { c.Signer = signer })
	cp5 := grow(t, a, 5, "a")
	cp12 := grow(t, a, 7, "a")
	fork, _ := newTestLedger(t, func(c *ledger.Config) { c.Signer = signer }) // same key and origin, other entries
	fork5 := grow(t, fork, 5, "fork")
	fork9 := grow(t, fork, 4, "fork")
	impostor, _ := newTestLedger(t) // same origin, another key
	imp12 := grow(t, impostor, 12, "a")
	otherSigner := mustNoteSigner(t, "other.example/log")
	other, _ := newTestLedger(t, func(c *ledger.Config) { c.Origin, c.Signer = "other.example/log", otherSigner })
	otherCP := grow(t, other, 2, "o")
	freshSigner := mustNoteSigner(t, "fresh.example/log")
	fresh, _ := newTestLedger(t, func(c *ledger.Config) { c.Origin, c.Signer = "fresh.example/log", freshSigner })
	fresh3 := grow(t, fresh, 3, "f")

	tampered := func() []byte {
		// The log's signature line with one base64 digit of the
		// signature changed to another (flipping a bit could make it
		// '*' or '{', no longer base64: a malformed note, not a bad
		// signature).
		b := bytes.Clone(addBody(t, a, 5, cp12))
		i := bytes.LastIndex(b, []byte(" ")) + 20
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return b
	}
	hash := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	tooMany := "old 5\n" + strings.Repeat(hash(make([]byte, 32))+"\n", 64) + "\n" + string(cp12.Note)
	badProof := func() []byte {
		p, _ := a.ConsistencyProof(bg, 5, 12)
		p[0] = bytes.Repeat([]byte{7}, 32)
		return witness.AddRequest{OldSize: 5, Proof: p, Checkpoint: cp12.Note}.Marshal()
	}

	tests := []struct {
		name        string
		body        []byte
		status      int
		contentType string
		body200     bool   // the body is one cosignature line
		wantBody    string // exact body, if set
	}{
		{"consistent", addBody(t, a, 5, cp12), 200, "text/plain; charset=utf-8", true, ""},
		{"same checkpoint", addBody(t, a, 5, cp5), 200, "text/plain; charset=utf-8", true, ""},
		{"stale old size", addBody(t, a, 0, cp12), 409, "text/x.tlog.size", false, "5\n"},
		{"older checkpoint", witness.AddRequest{OldSize: 3, Checkpoint: mustCheckpointAt(t, a, signer, 3)}.Marshal(), 409, "text/x.tlog.size", false, "5\n"},
		{"unknown origin", addBody(t, other, 0, otherCP), 404, "text/plain; charset=utf-8", false, ""},
		{"no trusted signature", addBody(t, impostor, 5, imp12), 403, "text/plain; charset=utf-8", false, ""},
		{"failing signature", tampered(), 403, "text/plain; charset=utf-8", false, ""},
		{"not a request", []byte("hello"), 400, "text/plain; charset=utf-8", false, ""},
		{"leading zero", bytes.Replace(addBody(t, a, 5, cp12), []byte("old 5"), []byte("old 05"), 1), 400, "text/plain; charset=utf-8", false, ""},
		{"64 proof lines", []byte(tooMany), 400, "text/plain; charset=utf-8", false, ""},
		// A line of 48 base64 characters (36 bytes) made the parser
		// panic, answered 500 by the recovery; found by FuzzParseAddRequest.
		{"long proof line", []byte("old 5\n" + strings.Repeat("A", 48) + "\n\n" + string(cp12.Note)), 400, "text/plain; charset=utf-8", false, ""},
		{"old larger than size", witness.AddRequest{OldSize: 13, Checkpoint: cp12.Note}.Marshal(), 400, "text/plain; charset=utf-8", false, ""},
		{"bad proof", badProof(), 422, "text/plain; charset=utf-8", false, ""},
		{"fork at the same size", addBody(t, fork, 5, fork5), 422, "text/plain; charset=utf-8", false, ""},
		{"fork with its own proof", addBody(t, fork, 5, fork9), 422, "text/plain; charset=utf-8", false, ""},
		{"proof from size 0", witness.AddRequest{OldSize: 0, Proof: [][]byte{make([]byte, 32)}, Checkpoint: fresh3.Note}.Marshal(), 422, "text/plain; charset=utf-8", false, ""},
		{"size 0 with a root", witness.AddRequest{Checkpoint: signText(t, freshSigner, "fresh.example/log\n0\n"+hash(bytes.Repeat([]byte{1}, 32))+"\n")}.Marshal(), 422, "text/plain; charset=utf-8", false, ""},
		{"too large", append(addBody(t, a, 5, cp12), strings.Repeat("— x.example/y AAAA\n", 400)...), 413, "text/plain; charset=utf-8", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := newWitnessFixture(t, 4096, a, fresh)
			if r := call(t, wf.srv.URL, "POST", "/add-checkpoint", "", "", addBody(t, a, 0, cp5)); r.status != 200 {
				t.Fatalf("POST /add-checkpoint (0 → 5) = %v, want 200", r)
			}
			r := call(t, wf.srv.URL, "POST", "/add-checkpoint", "", "", tt.body)
			if r.status != tt.status {
				t.Fatalf("POST /add-checkpoint = %v, want %d", r, tt.status)
			}
			if got := r.header.Values("Content-Type"); len(got) != 1 || got[0] != tt.contentType {
				t.Errorf("Content-Type = %q, want exactly %q", got, tt.contentType)
			}
			if tt.wantBody != "" && string(r.body) != tt.wantBody {
				t.Errorf("body = %q, want %q", r.body, tt.wantBody)
			}
			if tt.body200 && !cosigLine.Match(r.body) {
				t.Errorf("body = %q, want one cosignature/v1 line", r.body)
			}
			if !tt.body200 && tt.wantBody == "" && (!bytes.HasSuffix(r.body, []byte("\n")) || bytes.Count(r.body, []byte("\n")) != 1) {
				t.Errorf("body = %q, want one line of text", r.body)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
	t.Run("GET add-checkpoint", func(t *testing.T) {
		wf := newWitnessFixture(t, 0, a)
		if r := call(t, wf.srv.URL, "GET", "/add-checkpoint", "", "", nil); r.status != 405 {
			t.Errorf("GET /add-checkpoint = %v, want 405", r)
		}
	})
}

func mustSV(t *testing.T) signature.SignerVerifier {
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func mustNoteSigner(t *testing.T, origin string) *ledger.NoteSigner {
	s, err := ledger.NewNoteSigner(origin, mustSV(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustCheckpointAt returns the ledger's checkpoint at size, signed with
// its key s (the ledger itself signs only at its current size).
func mustCheckpointAt(t *testing.T, l *ledger.Ledger, s note.Signer, size uint64) []byte {
	t.Helper()
	root, err := l.RootAt(bg, size)
	if err != nil {
		t.Fatal(err)
	}
	return signText(t, s, string(log.Checkpoint{Origin: l.Origin(), Size: size, Hash: root}.Marshal()))
}

// TestWitnessMonitoringAndEvidence checks the monitoring read, the
// witness's log list and the admin-only evidence list.
func TestWitnessMonitoringAndEvidence(t *testing.T) {
	signer := newTestSigner(t)
	a, _ := newTestLedger(t, func(c *ledger.Config) { c.Signer = signer })
	cp4 := grow(t, a, 4, "a")
	fork, _ := newTestLedger(t, func(c *ledger.Config) { c.Signer = signer })
	fork4 := grow(t, fork, 4, "b")
	wf := newWitnessFixture(t, 0, a)
	sum := sha256.Sum256([]byte(a.Origin()))
	path := "/" + hex.EncodeToString(sum[:]) + "/checkpoint"

	if r := call(t, wf.srv.URL, "GET", path, "", "", nil); r.status != 404 {
		t.Errorf("GET %s before any cosignature = %v, want 404", path, r)
	}
	if r := call(t, wf.srv.URL, "POST", "/add-checkpoint", "", "", addBody(t, a, 0, cp4)); r.status != 200 {
		t.Fatalf("POST /add-checkpoint = %v", r)
	}
	r := call(t, wf.srv.URL, "GET", path, "", "", nil)
	if r.status != 200 {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	wv, _ := fnote.NewVerifierForCosignatureV1(wf.vkey)
	lv, _ := note.NewVerifier(a.VerifierKey())
	if n, err := note.Open(r.body, note.VerifierList(wv, lv)); err != nil || len(n.Sigs) != 2 || !strings.HasPrefix(n.Text, string(textOfNote(cp4.Note))) {
		t.Errorf("GET %s = %q (%v), want the checkpoint with the log's signature and the cosignature", path, r.body, err)
	}
	for _, bad := range []string{"/" + strings.ToUpper(hex.EncodeToString(sum[:])) + "/checkpoint", "/abc/checkpoint"} {
		if r := call(t, wf.srv.URL, "GET", bad, "", "", nil); r.status != 404 {
			t.Errorf("GET %s = %v, want 404", bad, r)
		}
	}

	// The fork is refused and kept; only admins list evidence.
	if r := call(t, wf.srv.URL, "POST", "/add-checkpoint", "", "", addBody(t, fork, 4, fork4)); r.status != 422 {
		t.Fatalf("POST /add-checkpoint (fork) = %v, want 422", r)
	}
	if r := call(t, wf.srv.URL, "GET", "/v1/witness/evidence", "", "", nil); r.status != 401 {
		t.Errorf("GET /v1/witness/evidence without a key = %v, want 401", r)
	}
	if r := call(t, wf.srv.URL, "GET", "/v1/witness/evidence", wf.tokens[api.RoleAuditor], "", nil); r.status != 403 {
		t.Errorf("GET /v1/witness/evidence as auditor = %v, want 403", r)
	}
	r = call(t, wf.srv.URL, "GET", "/v1/witness/evidence", wf.tokens[api.RoleAdmin], "", nil)
	var page struct {
		Evidence []witness.Evidence `json:"evidence"`
		Next     *uint64            `json:"next"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil || len(page.Evidence) != 1 || page.Next != nil {
		t.Fatalf("GET /v1/witness/evidence = %v, want one record", r)
	}
	ev := page.Evidence[0]
	if ev.Reason != witness.ReasonFork || !strings.HasSuffix(ev.Request, string(fork4.Note)) || !strings.HasPrefix(ev.Latest, string(textOfNote(cp4.Note))) {
		t.Errorf("evidence = %+v, want the fork and the cosigned checkpoint", ev)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
		t.Errorf("evidence time %q: %v", ev.Time, err)
	}

	r = call(t, wf.srv.URL, "GET", "/v1/witness", "", "", nil)
	var info struct {
		Name        string            `json:"name"`
		VerifierKey string            `json:"verifier_key"`
		Logs        []witness.LogInfo `json:"logs"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &info) != nil || info.VerifierKey != wf.vkey || len(info.Logs) != 1 || info.Logs[0].Size != 4 {
		t.Errorf("GET /v1/witness = %v, want the key and the log at size 4", r)
	}
}

// textOfNote returns a signed note's text.
func textOfNote(signed []byte) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	return signed[:i+1]
}
