package evidence_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/internal/prooftest"
	"github.com/accessledger/accessledger/ledger"
)

const testOrigin = "example.com/accessledger/evidence-test"

var bg = context.Background()

// testLog is a real ledger with n entries and a signed checkpoint over
// them, cosigned by the given witnesses.
type testLog struct {
	l         *ledger.Ledger
	vkey      string
	cp        []byte // signed (and cosigned) checkpoint
	size      uint64
	witnesses []string // cosignature/v1 verifier keys
}

// newWitness returns a cosignature/v1 signer and its verifier key.
func newWitness(t testing.TB, name string) (note.Signer, string) {
	return prooftest.WitnessKey(t, name)
}

func newTestLog(t testing.TB, entries [][]byte, witnesses ...string) *testLog {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Create(bg, ledger.Config{Dir: t.TempDir(), Origin: testOrigin, Signer: s, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("ledger.Create() = %v", err)
	}
	t.Cleanup(func() { l.Close(bg) })
	var batch []ledger.Entry
	for _, e := range entries {
		batch = append(batch, ledger.Entry{Data: e})
	}
	if _, err := l.Append(bg, batch...); err != nil {
		t.Fatalf("Append() = %v", err)
	}
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatalf("SignCheckpoint() = %v", err)
	}
	tl := &testLog{l: l, vkey: l.VerifierKey(), cp: cp.Note, size: cp.Size}
	if len(witnesses) > 0 {
		logV, _ := note.NewVerifier(tl.vkey)
		n, err := note.Open(cp.Note, note.VerifierList(logV))
		if err != nil {
			t.Fatal(err)
		}
		var signers []note.Signer
		for _, name := range witnesses {
			s, vkey := newWitness(t, name)
			signers = append(signers, s)
			tl.witnesses = append(tl.witnesses, vkey)
		}
		if tl.cp, err = note.Sign(n, signers...); err != nil {
			t.Fatal(err)
		}
	}
	return tl
}

// bundle writes an evidence bundle of the given entries of tl.
func (tl *testLog) bundle(t testing.TB, indexes ...uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := evidence.NewWriter(&b, evidence.Header{
		Origin: testOrigin, VerifierKey: tl.vkey, WitnessKeys: tl.witnesses, Checkpoint: tl.cp,
		Query: "actor=alice&since=2026-01-01T00:00:00Z", IndexedSize: tl.size, Created: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range indexes {
		entry, _, err := tl.l.Entry(bg, i)
		if err != nil {
			t.Fatal(err)
		}
		p, err := tl.l.InclusionProof(bg, i, tl.size)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(i, entry, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testEntries(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, []byte(fmt.Sprintf(`{"kind":"event","received_at":"2026-11-24T10:00:00.000000000Z","body":{"id":"e%d","time":"2026-11-24T10:00:00.000000000Z","service":"sso","actor":{"id":"al\"ice"},"source":{"ip":"203.0.113.7"},"action":"login","category":"authentication","outcome":"failure"}}`, i)))
	}
	return out
}

// redigest recomputes a bundle's closing digest after an edit.
func redigest(b []byte) []byte {
	i := bytes.LastIndex(b, []byte(`"sha256":"`))
	if i < 0 {
		return b
	}
	sum := sha256.Sum256(b[:i])
	return append(b[:i:i], []byte(`"sha256":"`+hex.EncodeToString(sum[:])+"\"}\n")...)
}

func TestVerifyAcceptsBundles(t *testing.T) {
	entries := testEntries(300)
	entries[7] = []byte("not JSON: carried as entry_base64")
	entries[8] = []byte(`{"spaced": true}`)
	for _, tc := range []struct {
		name      string
		witnesses []string
		indexes   []uint64
	}{
		{"NoEntries", nil, nil},
		{"OneEntry", nil, []uint64{0}},
		{"ManyEntries", nil, []uint64{0, 1, 7, 8, 255, 256, 299}},
		{"Cosigned", []string{"witness1.example", "witness2.example"}, []uint64{3, 299}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLog(t, entries, tc.witnesses...)
			b := tl.bundle(t, tc.indexes...)
			sum, err := evidence.Verify(bytes.NewReader(b), tl.vkey)
			if err != nil {
				t.Fatalf("Verify() = %v\n%s", err, b)
			}
			if sum.Entries != uint64(len(tc.indexes)) || sum.Size != 300 || sum.Origin != testOrigin || len(sum.Witnesses) != len(tc.witnesses) {
				t.Errorf("Verify() = %+v, want %d entries of size 300, %d witnesses", sum, len(tc.indexes), len(tc.witnesses))
			}
			if !json.Valid(b) {
				t.Errorf("the bundle is not valid JSON:\n%s", b)
			}
			// Witnesses by name and key hash: a name alone is anyone's.
			for i, w := range sum.Witnesses {
				if name, hash, ok := strings.Cut(w, "+"); !ok || name != tc.witnesses[i] || len(hash) != 8 {
					t.Errorf("Witnesses[%d] = %q, want %s+<key hash>", i, w, tc.witnesses[i])
				}
			}
		})
	}
}

// TestEveryByteChangeFails changes every byte of a small bundle, in
// several ways, and wants Verify to fail every time.
func TestEveryByteChangeFails(t *testing.T) {
	tl := newTestLog(t, testEntries(20), "witness1.example")
	b := tl.bundle(t, 2, 19)
	if _, err := evidence.Verify(bytes.NewReader(b), tl.vkey); err != nil {
		t.Fatalf("Verify(unchanged) = %v", err)
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x02, 0x20, 0x80, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= x
			if _, err := evidence.Verify(bytes.NewReader(c), tl.vkey); err == nil {
				t.Errorf("Verify(byte %d %q ^ %#x) = nil, want an error", i, b[i], x)
			}
		}
	}
	// Truncation anywhere fails too.
	for n := 0; n < len(b); n += 7 {
		if _, err := evidence.Verify(bytes.NewReader(b[:n]), tl.vkey); err == nil {
			t.Errorf("Verify(first %d bytes) = nil, want an error", n)
		}
	}
}

// TestEveryAuthenticatedByteFails changes every byte and then fixes the
// digest, as a forger would: every change outside the members that only
// describe the bundle (query, indexed_size, created) still fails, by the
// signatures, the proofs or the encoding.
func TestEveryAuthenticatedByteFails(t *testing.T) {
	tl := newTestLog(t, testEntries(20), "witness1.example")
	b := tl.bundle(t, 2, 19)
	descriptive := func(i int) bool {
		start := bytes.LastIndexByte(b[:i], '\n') + 1
		line := string(b[start:])
		for _, m := range []string{`"query":`, `"indexed_size":`, `"created":`} {
			if strings.HasPrefix(line, m) && i >= start+len(m) && b[i] != ',' && b[i] != '\n' {
				return true
			}
		}
		return false
	}
	digestAt := bytes.LastIndex(b, []byte(`"sha256":"`))
	for i := range b[:digestAt] {
		if descriptive(i) {
			continue
		}
		for _, x := range []byte{0x01, 0x20, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= x
			if _, err := evidence.Verify(bytes.NewReader(redigest(c)), tl.vkey); err == nil {
				t.Errorf("Verify(byte %d %q ^ %#x, digest fixed) = nil, want an error", i, b[i], x)
			} else if errors.Is(err, evidence.ErrDigest) {
				t.Errorf("Verify(byte %d ^ %#x, digest fixed) = %v, want a failure other than the digest", i, x, err)
			}
		}
	}
}

func TestVerifyNamesTheFailingEntry(t *testing.T) {
	tl := newTestLog(t, testEntries(40))
	b := tl.bundle(t, 3, 17, 30)
	// Change the second entry's content (keeping the file well formed).
	c := bytes.Replace(b, []byte(`"id":"e17"`), []byte(`"id":"e99"`), 1)
	_, err := evidence.Verify(bytes.NewReader(redigest(c)), tl.vkey)
	var ee *evidence.EntryError
	if !errors.As(err, &ee) || ee.Position != 1 || ee.Index != 17 || !errors.Is(err, evidence.ErrInclusion) {
		t.Fatalf("Verify(entry 17 changed) = %v, want an EntryError for position 1, index 17, wrapping ErrInclusion", err)
	}
	if !strings.Contains(err.Error(), "entry 1 of the bundle (log index 17)") {
		t.Errorf("error %q does not name the entry", err)
	}
	// An entry line that cannot be read claims no index: the error says
	// so, rather than naming log index 0.
	c = bytes.Replace(b, []byte(`{"index":17,`), []byte(`{"index":"17",`), 1)
	_, err = evidence.Verify(bytes.NewReader(redigest(c)), tl.vkey)
	if !errors.As(err, &ee) || ee.Position != 1 || ee.HasIndex || !errors.Is(err, evidence.ErrMalformed) {
		t.Fatalf("Verify(entry line 1 unreadable) = %v, want an EntryError for position 1 without an index, wrapping ErrMalformed", err)
	}
	if !strings.Contains(err.Error(), "entry 1 of the bundle (log index unknown)") {
		t.Errorf("error %q does not say the entry's index is unknown", err)
	}
}

// TestOtherLogKeyFails proves entries against a checkpoint signed by
// another log key (under the same origin): it fails whether the bundle
// names that key or claims the trusted one.
func TestOtherLogKeyFails(t *testing.T) {
	entries := testEntries(10)
	a, b := newTestLog(t, entries), newTestLog(t, entries)
	bundleB := b.bundle(t, 4)
	if _, err := evidence.Verify(bytes.NewReader(bundleB), a.vkey); !errors.Is(err, evidence.ErrWrongKey) {
		t.Errorf("Verify(bundle of log B, key of A) = %v, want ErrWrongKey", err)
	}
	// B's checkpoint, claiming to be A's.
	forged := bytes.Replace(bundleB, []byte(quoteJSON(b.vkey)), []byte(quoteJSON(a.vkey)), 1)
	if _, err := evidence.Verify(bytes.NewReader(redigest(forged)), a.vkey); !errors.Is(err, evidence.ErrCheckpoint) {
		t.Errorf("Verify(checkpoint of B under the key of A) = %v, want ErrCheckpoint", err)
	}
	// A's own bundle verifies.
	if _, err := evidence.Verify(bytes.NewReader(a.bundle(t, 4)), a.vkey); err != nil {
		t.Errorf("Verify(bundle of A) = %v", err)
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestTorchwoodVerifiesEachProof checks every entry's tlog-proof with
// filippo.io/torchwood (VerifyProof, with a policy from ParsePolicy): the
// log's key, and a quorum of the witnesses that cosigned.
func TestTorchwoodVerifiesEachProof(t *testing.T) {
	tl := newTestLog(t, testEntries(600), "witness1.example", "witness2.example")
	b := tl.bundle(t, 0, 1, 255, 256, 511, 599)
	var bundle struct {
		Entries []struct {
			Index     uint64          `json:"index"`
			Entry     json.RawMessage `json:"entry"`
			TLogProof string          `json:"tlog_proof"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	policy, err := torchwood.ParsePolicy([]byte(fmt.Sprintf("log %s\nwitness w1 %s\nwitness w2 %s\ngroup both all w1 w2\nquorum both\n",
		tl.vkey, tl.witnesses[0], tl.witnesses[1])))
	if err != nil {
		t.Fatalf("torchwood.ParsePolicy() = %v", err)
	}
	for _, e := range bundle.Entries {
		if err := torchwood.VerifyProof(policy, tlog.RecordHash(e.Entry), []byte(e.TLogProof)); err != nil {
			t.Errorf("torchwood.VerifyProof(entry %d) = %v", e.Index, err)
		}
		var vre *torchwood.VerifyRecordError
		other := tlog.RecordHash(append([]byte("x"), e.Entry...))
		if err := torchwood.VerifyProof(policy, other, []byte(e.TLogProof)); !errors.As(err, &vre) {
			t.Errorf("torchwood.VerifyProof(entry %d, another record) = %v, want a VerifyRecordError", e.Index, err)
		}
	}
	// A policy naming a witness that did not cosign refuses the proof.
	_, other := newWitness(t, "witness3.example")
	strict, err := torchwood.ParsePolicy([]byte(fmt.Sprintf("log %s\nwitness w3 %s\nquorum w3\n", tl.vkey, other)))
	if err != nil {
		t.Fatal(err)
	}
	if err := torchwood.VerifyProof(strict, tlog.RecordHash(bundle.Entries[0].Entry), []byte(bundle.Entries[0].TLogProof)); err == nil {
		t.Errorf("torchwood.VerifyProof(policy needing witness3) = nil, want an error")
	}
}

func TestParseProofRejects(t *testing.T) {
	h := "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ="
	cp := "example.com/log\n2\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n— example.com/log abc=\n"
	good := "c2sp.org/tlog-proof@v1\nindex 1\n" + h + "\n\n" + cp
	if p, err := evidence.ParseProof([]byte(good)); err != nil || p.Index != 1 || len(p.Hashes) != 1 || string(p.Checkpoint) != cp {
		t.Fatalf("ParseProof(good) = %+v, %v", p, err)
	}
	if p, err := evidence.ParseProof([]byte("c2sp.org/tlog-proof@v1\nextra aGk=\nindex 0\n\n" + cp)); err != nil || string(p.Extra) != "hi" {
		t.Errorf("ParseProof(with extra) = %+v, %v", p, err)
	}
	for _, tc := range []struct{ name, proof string }{
		{"Empty", ""},
		{"WrongHeader", strings.Replace(good, "@v1", "@v2", 1)},
		{"NoIndex", "c2sp.org/tlog-proof@v1\n" + h + "\n\n" + cp},
		{"LeadingZero", strings.Replace(good, "index 1", "index 01", 1)},
		{"NegativeIndex", strings.Replace(good, "index 1", "index -1", 1)},
		{"ShortHash", strings.Replace(good, h, h[:40], 1)},
		{"NonCanonicalBase64", strings.Replace(good, "PlQ=", "PlR=", 1)},
		{"NoBlankLine", "c2sp.org/tlog-proof@v1\nindex 1\n" + h + "\n"},
		{"NoCheckpoint", "c2sp.org/tlog-proof@v1\nindex 1\n" + h + "\n\n"},
		{"BadExtra", "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\n" + cp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := evidence.ParseProof([]byte(tc.proof)); !errors.Is(err, evidence.ErrMalformedProof) {
				t.Errorf("ParseProof(%q) = %+v, %v, want ErrMalformedProof", tc.proof, p, err)
			}
		})
	}
	// What FormatProof writes parses back.
	p := evidence.FormatProof(5, [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}, []byte(cp))
	if got, err := evidence.ParseProof(p); err != nil || got.Index != 5 || len(got.Hashes) != 2 {
		t.Errorf("ParseProof(FormatProof()) = %+v, %v", got, err)
	}
}

// TestCosignedKeepsKnownWitnesses: a checkpoint cosigned by two policy
// witnesses and one unknown one keeps the log's signature and the two,
// and a bundle over it verifies.
func TestCosignedKeepsKnownWitnesses(t *testing.T) {
	tl := newTestLog(t, testEntries(5), "w1.example", "w2.example", "stranger.example")
	cp, keys, err := evidence.Cosigned(tl.cp, tl.vkey, tl.witnesses[:2])
	if err != nil {
		t.Fatalf("Cosigned() = %v", err)
	}
	if len(keys) != 2 || keys[0] != tl.witnesses[0] || keys[1] != tl.witnesses[1] || bytes.Contains(cp, []byte("stranger")) {
		t.Fatalf("Cosigned() = %q, %q; want the log's and w1, w2's signatures", cp, keys)
	}
	// With the stranger left in, the bundle does not verify.
	if _, err := evidence.Verify(bytes.NewReader(tl.bundle(t, 1)), tl.vkey); err != nil {
		t.Fatalf("Verify(all three listed) = %v", err)
	}
	tl.witnesses = tl.witnesses[:2]
	if _, err := evidence.Verify(bytes.NewReader(tl.bundle(t, 1)), tl.vkey); !errors.Is(err, evidence.ErrCheckpoint) {
		t.Errorf("Verify(stranger not listed) = %v, want ErrCheckpoint", err)
	}
	tl.cp = cp
	if _, err := evidence.Verify(bytes.NewReader(tl.bundle(t, 1)), tl.vkey); err != nil {
		t.Errorf("Verify(Cosigned checkpoint) = %v", err)
	}
	if _, _, err := evidence.Cosigned(tl.cp, "other+00000000+AQ", nil); err == nil {
		t.Errorf("Cosigned(wrong log key) = nil error")
	}
}

// TestProofBuilderMatchesLedger: the proofs built from tiles with shared
// nodes are the ledger's own, for every entry of trees of many sizes.
func TestProofBuilderMatchesLedger(t *testing.T) {
	tl := newTestLog(t, testEntries(1500))
	for _, size := range []uint64{1, 2, 3, 255, 256, 257, 511, 512, 513, 1000, 1500} {
		b := evidence.NewProofBuilder(tl.l, size)
		for _, i := range append([]uint64{size - 1, 0}, func() []uint64 {
			var all []uint64
			for i := range size {
				all = append(all, i)
			}
			return all
		}()...) {
			got, err := b.Inclusion(bg, i)
			if err != nil {
				t.Fatalf("Inclusion(%d) in size %d = %v", i, size, err)
			}
			want, err := tl.l.InclusionProof(bg, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Inclusion(%d) in size %d: %d hashes, want %d", i, size, len(got), len(want))
			}
			for k := range got {
				if !bytes.Equal(got[k], want[k]) {
					t.Fatalf("Inclusion(%d) in size %d: hash %d differs", i, size, k)
				}
			}
		}
	}
}

// paddedTiles is a TileReader whose tiles have 32 bytes more than asked
// for.
type paddedTiles struct{ evidence.TileReader }

func (p paddedTiles) ReadTile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	t, err := p.TileReader.ReadTile(ctx, level, index, width)
	return append(t, make([]byte, 32)...), err
}

// TestProofBuilderChecksTileSize: a tile that is not 32 bytes for each
// hash asked for is refused, not read as far as the proof needs.
func TestProofBuilderChecksTileSize(t *testing.T) {
	tl := newTestLog(t, testEntries(300))
	for _, size := range []uint64{100, 256, 300} {
		if p, err := evidence.NewProofBuilder(paddedTiles{tl.l}, size).Inclusion(bg, 7); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("Inclusion(7) in size %d from tiles 32 bytes too long = %d hashes, %v; want an error", size, len(p), err)
		}
	}
}

// TestRepeatedOrReorderedEntriesFail: a bundle whose entries are repeated
// or out of index order does not verify, even with its count and digest
// recomputed as a forger would: a repeated entry would inflate what the
// bundle seems to prove. The Writer refuses to write one.
func TestRepeatedOrReorderedEntriesFail(t *testing.T) {
	tl := newTestLog(t, testEntries(10))
	b := tl.bundle(t, 3, 5)
	lines := bytes.Split(b, []byte("\n"))
	var e3, e5 int
	for i, l := range lines {
		switch {
		case bytes.HasPrefix(l, []byte(`{"index":3,`)):
			e3 = i
		case bytes.HasPrefix(l, []byte(`{"index":5,`)):
			e5 = i
		}
	}
	if e3 == 0 || e5 != e3+1 {
		t.Fatalf("entry lines not found in\n%s", b)
	}
	forge := func(first, second []byte) []byte {
		out := slices.Clone(lines)
		out[e3] = append(bytes.TrimSuffix(slices.Clone(first), []byte(",")), ',')
		out[e5] = bytes.TrimSuffix(slices.Clone(second), []byte(","))
		return redigest(bytes.Join(out, []byte("\n")))
	}
	for name, forged := range map[string][]byte{
		"repeated":  forge(lines[e3], lines[e3]),
		"reordered": forge(lines[e5], lines[e3]),
	} {
		if _, err := evidence.Verify(bytes.NewReader(forged), tl.vkey); !errors.Is(err, evidence.ErrMalformed) || !strings.Contains(err.Error(), "increasing index order") {
			t.Errorf("%s entries: Verify() = %v, want ErrMalformed about the order\n%s", name, err, forged)
		}
	}
	w, err := evidence.NewWriter(io.Discard, evidence.Header{Origin: testOrigin, VerifierKey: tl.vkey, Checkpoint: tl.cp})
	if err != nil {
		t.Fatal(err)
	}
	entry, _, _ := tl.l.Entry(bg, 3)
	p, _ := tl.l.InclusionProof(bg, 3, tl.size)
	if err := w.Add(3, entry, p); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(3, entry, p); err == nil {
		t.Error("Writer.Add of the same index twice = nil, want an error")
	}
}

// TestLongLineFails: a file whose first line never ends is refused once
// it is longer than any line of a bundle, not read into memory whole.
func TestLongLineFails(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`{"format":"`), zeros{})
	if _, err := evidence.Verify(r, "k"); !errors.Is(err, evidence.ErrMalformed) || !strings.Contains(err.Error(), "line longer than") {
		t.Fatalf("Verify(endless line) = %v, want ErrMalformed about the line", err)
	}
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestRepeatedSignatureLineFails: a second signature line by the log's
// key, valid (a copy) or not, in the checkpoint and the entries' proofs,
// with the digest recomputed, is refused. note.Open skips a key's later
// lines, and such a bundle verified.
func TestRepeatedSignatureLineFails(t *testing.T) {
	tl := newTestLog(t, testEntries(10))
	b := tl.bundle(t, 3, 5)
	_, after, _ := bytes.Cut(tl.cp, []byte("\n\n"))
	sig := bytes.TrimSuffix(after, []byte("\n")) // "— origin base64"
	name, b64, _ := bytes.Cut(bytes.TrimPrefix(sig, []byte("— ")), []byte(" "))
	raw, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil {
		t.Fatal(err)
	}
	garbage := append(raw[:4:4], make([]byte, 64)...)
	for what, extra := range map[string][]byte{
		"a copy":        sig,
		"a failing one": fmt.Appendf(nil, "— %s %s", name, base64.StdEncoding.EncodeToString(garbage)),
	} {
		// In JSON the lines end with \n, escaped.
		forged := redigest(bytes.ReplaceAll(b, append(slices.Clone(sig), `\n`...), append(append(append(slices.Clone(sig), `\n`...), extra...), `\n`...)))
		if bytes.Equal(forged, redigest(b)) {
			t.Fatalf("%s: the signature line was not found in the bundle", what)
		}
		if _, err := evidence.Verify(bytes.NewReader(forged), tl.vkey); !errors.Is(err, evidence.ErrCheckpoint) {
			t.Errorf("checkpoint with %s of the log's signature line: Verify() = %v, want ErrCheckpoint", what, err)
		}
	}
}
