package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// checkCheckpoint verifies a signed checkpoint with the independent
// note and log-format libraries only, and checks that it commits to the
// reference tree of its size.
func checkCheckpoint(t *testing.T, vkey string, cp *Checkpoint, ref *reftree.Tree) {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", vkey, err)
	}
	n, err := note.Open(cp.Note, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(checkpoint of size %d) = %v\n%s", cp.Size, err, cp.Note)
	}
	want := ref.Root(t, cp.Size)
	wantText := fmt.Sprintf("%s\n%d\n%s\n", testOrigin, cp.Size, base64.StdEncoding.EncodeToString(want[:]))
	if n.Text != wantText {
		t.Errorf("checkpoint text = %q, want %q", n.Text, wantText)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || n.Sigs[0].Hash != v.KeyHash() {
		t.Errorf("checkpoint signatures = %+v, want one by %s+%08x", n.Sigs, testOrigin, v.KeyHash())
	}
	c, _, _, err := log.ParseCheckpoint(cp.Note, testOrigin, v)
	if err != nil {
		t.Fatalf("log.ParseCheckpoint(checkpoint of size %d) = %v", cp.Size, err)
	}
	if c.Origin != testOrigin || c.Size != cp.Size || !bytes.Equal(c.Hash, want[:]) {
		t.Errorf("log.ParseCheckpoint = {%q %d %x}, want {%q %d %x}", c.Origin, c.Size, c.Hash, testOrigin, cp.Size, want)
	}
	if !bytes.Equal(cp.Hash, want[:]) {
		t.Errorf("Checkpoint.Hash = %x, want %x", cp.Hash, want)
	}
}

func TestCheckpointVerifiesWithIndependentLibraries(t *testing.T) {
	l, _ := newTestLedger(t)
	ref := &reftree.Tree{}

	cp0 := l.Latest()
	if cp0 == nil || cp0.Size != 0 {
		t.Fatalf("Latest() after Create = %+v, want size 0", cp0)
	}
	checkCheckpoint(t, l.VerifierKey(), cp0, ref)
	wantEmpty := testOrigin + "\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	if text := string(cp0.Note[:len(wantEmpty)]); text != wantEmpty {
		t.Errorf("empty checkpoint text = %q, want %q", text, wantEmpty)
	}

	for _, n := range []int{1, 2, 255, 256, 257, 1000} {
		appendN(t, l, int(ref.Size()), n-int(ref.Size()), 500)
		addN(t, ref, int(ref.Size()), n-int(ref.Size()))
		cp, err := l.SignCheckpoint(bg)
		if err != nil {
			t.Fatalf("SignCheckpoint() = %v", err)
		}
		if cp.Size != uint64(n) {
			t.Fatalf("SignCheckpoint().Size = %d, want %d", cp.Size, n)
		}
		checkCheckpoint(t, l.VerifierKey(), cp, ref)
		if got := l.Latest(); got.Size != cp.Size || !bytes.Equal(got.Note, cp.Note) {
			t.Errorf("Latest() = size %d, want the checkpoint just signed (size %d)", got.Size, cp.Size)
		}
		stored, err := l.CheckpointAt(bg, cp.Size)
		if err != nil {
			t.Fatalf("CheckpointAt(%d) = %v", cp.Size, err)
		}
		if !bytes.Equal(stored.Note, cp.Note) {
			t.Errorf("CheckpointAt(%d).Note = %q, want %q", cp.Size, stored.Note, cp.Note)
		}
	}

	// Signing again without growth returns the same checkpoint.
	again, err := l.SignCheckpoint(bg)
	if err != nil || again.Size != ref.Size() {
		t.Errorf("SignCheckpoint() without growth = %v, %v; want the size %d checkpoint", again, err, ref.Size())
	}

	// A verifier of another key must reject the checkpoint: the check
	// above is not vacuous.
	other := newTestSigner(t, testOrigin)
	ov, err := note.NewVerifier(other.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(l.Latest().Note, note.VerifierList(ov)); err == nil {
		t.Errorf("note.Open(checkpoint, other key) = nil error, want failure")
	}
	if _, _, _, err := log.ParseCheckpoint(l.Latest().Note, "other.example/log", mustVerifier(t, l.VerifierKey())); err == nil {
		t.Errorf("log.ParseCheckpoint(checkpoint, wrong origin) = nil error, want failure")
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q) = %v", vkey, err)
	}
	return v
}

func TestVerifierKeyFormat(t *testing.T) {
	l, cfg := newTestLedger(t)
	vkey := l.VerifierKey()
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		t.Fatalf("VerifierKey() = %q, want <name>+<hex8>+<base64>", vkey)
	}
	if parts[0] != testOrigin || l.Origin() != testOrigin {
		t.Errorf("key name = %q, Origin() = %q, want both %q", parts[0], l.Origin(), testOrigin)
	}
	if len(parts[1]) != 8 || strings.ToLower(parts[1]) != parts[1] {
		t.Errorf("key hash = %q, want 8 lower-case hex digits", parts[1])
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("decoding key %q: %v", parts[2], err)
	}
	pub, err := cfg.Signer.(*NoteSigner).s.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := append([]byte{0x01}, pub.(ed25519.PublicKey)...)
	if !bytes.Equal(raw, wantRaw) {
		t.Errorf("decoded key = %x, want 0x01 || public key = %x", raw, wantRaw)
	}
	// The key ID is the first four bytes of SHA-256(name || "\n" || key).
	sum := sha256.Sum256(append([]byte(testOrigin+"\n"), wantRaw...))
	if want := hex.EncodeToString(sum[:4]); parts[1] != want {
		t.Errorf("key hash = %s, want %s", parts[1], want)
	}
	if got, want := cfg.Signer.KeyHash(), binary.BigEndian.Uint32(sum[:4]); got != want {
		t.Errorf("Signer.KeyHash() = %08x, want %08x", got, want)
	}
}

func TestCheckpointsAllRetrievableAndConsistent(t *testing.T) {
	l, cfg := newTestLedger(t, func(c *Config) { c.CheckpointInterval = 2 * time.Millisecond })
	ref := &reftree.Tree{}
	for i := range 12 {
		n := 1 + i*37
		appendN(t, l, int(ref.Size()), n, n)
		addN(t, ref, int(ref.Size()), n)
		if i%3 == 0 {
			if _, err := l.SignCheckpoint(bg); err != nil {
				t.Fatalf("SignCheckpoint() = %v", err)
			}
		} else {
			time.Sleep(5 * time.Millisecond) // let the signer loop run
		}
	}
	closeLedger(t, l)
	l = openTestLedger(t, cfg)

	var cps []*Checkpoint
	if err := l.Checkpoints(bg, 0, func(cp *Checkpoint) bool { cps = append(cps, cp); return true }); err != nil {
		t.Fatalf("Checkpoints() = %v", err)
	}
	if len(cps) < 5 {
		t.Fatalf("Checkpoints() yielded %d checkpoints, want at least 5 (create, 4 explicit, close)", len(cps))
	}
	if cps[0].Size != 0 {
		t.Errorf("first checkpoint size = %d, want 0", cps[0].Size)
	}
	if last := cps[len(cps)-1]; last.Size != ref.Size() {
		t.Errorf("last checkpoint size = %d, want %d (Close signs over everything)", last.Size, ref.Size())
	}
	if got := l.Latest(); got.Size != ref.Size() {
		t.Errorf("Latest().Size after reopen = %d, want %d", got.Size, ref.Size())
	}
	for i, cp := range cps {
		if i > 0 && cp.Size <= cps[i-1].Size {
			t.Errorf("checkpoint %d has size %d after size %d, want increasing", i, cp.Size, cps[i-1].Size)
		}
		checkCheckpoint(t, l.VerifierKey(), cp, ref)
		at, err := l.CheckpointAt(bg, cp.Size)
		if err != nil {
			t.Fatalf("CheckpointAt(%d) = %v", cp.Size, err)
		}
		if !bytes.Equal(at.Note, cp.Note) {
			t.Errorf("CheckpointAt(%d) differs from Checkpoints()", cp.Size)
		}
		if i == 0 || cps[i-1].Size == 0 {
			continue
		}
		prev := cps[i-1]
		p, err := l.ConsistencyProof(bg, prev.Size, cp.Size)
		if err != nil {
			t.Fatalf("ConsistencyProof(%d, %d) = %v", prev.Size, cp.Size, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, p, prev.Hash, cp.Hash); err != nil {
			t.Errorf("VerifyConsistency(%d, %d) between checkpoints = %v", prev.Size, cp.Size, err)
		}
		if err := tlog.CheckTree(reftree.ToTlog(t, p), int64(cp.Size), tlog.Hash(cp.Hash), int64(prev.Size), tlog.Hash(prev.Hash)); err != nil {
			t.Errorf("tlog.CheckTree(%d, %d) between checkpoints = %v", prev.Size, cp.Size, err)
		}
	}
	// Early stop.
	count := 0
	if err := l.Checkpoints(bg, 0, func(*Checkpoint) bool { count++; return false }); err != nil || count != 1 {
		t.Errorf("Checkpoints(stop at once) = %v after %d calls, want nil after 1", err, count)
	}
	// Starting at a signed size, and between two signed sizes.
	for _, from := range []uint64{cps[2].Size, cps[1].Size + 1} {
		var sizes []uint64
		if err := l.Checkpoints(bg, from, func(cp *Checkpoint) bool { sizes = append(sizes, cp.Size); return true }); err != nil {
			t.Fatalf("Checkpoints(from %d) = %v", from, err)
		}
		var want []uint64
		for _, cp := range cps[2:] {
			want = append(want, cp.Size)
		}
		if !slices.Equal(sizes, want) {
			t.Errorf("Checkpoints(from %d) = sizes %v, want %v", from, sizes, want)
		}
	}
	if _, err := l.CheckpointAt(bg, ref.Size()+1); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckpointAt(%d) = %v, want ErrNotFound", ref.Size()+1, err)
	}
}

func TestCheckpointSignedAtUsesClock(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	l, _ := newTestLedger(t, func(c *Config) { c.Clock = func() time.Time { return now } })
	appendN(t, l, 0, 3, 3)
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatalf("SignCheckpoint() = %v", err)
	}
	if !cp.SignedAt.Equal(now) {
		t.Errorf("SignCheckpoint().SignedAt = %v, want %v", cp.SignedAt, now)
	}
}

func TestCloseSignsFinalCheckpoint(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 300, 64)
	if got := l.Latest().Size; got != 0 {
		t.Fatalf("Latest().Size before Close = %d, want 0 (the signer runs hourly here)", got)
	}
	closeLedger(t, l)
	if err := l.Close(bg); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	l = openTestLedger(t, cfg)
	ref := &reftree.Tree{}
	addN(t, ref, 0, 300)
	cp := l.Latest()
	if cp.Size != 300 {
		t.Fatalf("Latest().Size after reopen = %d, want 300", cp.Size)
	}
	checkCheckpoint(t, l.VerifierKey(), cp, ref)
}

func TestCreateAndOpenErrors(t *testing.T) {
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 10, 10)
	closeLedger(t, l)

	t.Run("CreateOverExisting", func(t *testing.T) {
		_, err := Create(bg, cfg)
		mustErrIs(t, "Create(existing log)", err, ErrExists)
	})
	t.Run("OpenEmptyDir", func(t *testing.T) {
		c := testConfig(t)
		_, err := Open(bg, c)
		mustErrIs(t, "Open(empty dir)", err, ErrNoLog)
	})
	// Another key is the wrong key, not damaged storage (which it was
	// reported as): the error names both and what to do.
	t.Run("OpenOtherKey", func(t *testing.T) {
		c := cfg
		c.Signer = newTestSigner(t, testOrigin)
		_, err := Open(bg, c)
		mustErrIs(t, "Open(other key)", err, ErrWrongKey)
		if errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the key this log was created with") {
			t.Errorf("Open(other key) = %v, want it to say which key to use, not that storage is damaged", err)
		}
	})
	t.Run("OpenWrongOrigin", func(t *testing.T) {
		c := cfg
		c.Origin = "other.example/log"
		c.Signer = newTestSigner(t, c.Origin)
		if _, err := Open(bg, c); err == nil {
			t.Errorf("Open(origin %q) = nil error, want failure", c.Origin)
		}
	})
	t.Run("OpenSignerNameMismatch", func(t *testing.T) {
		c := cfg
		c.Origin = ""
		c.Signer = newTestSigner(t, "other.example/log")
		if _, err := Open(bg, c); err == nil {
			t.Errorf("Open(signer named other.example/log) = nil error, want failure")
		}
	})
	t.Run("OpenStillWorks", func(t *testing.T) {
		c := cfg
		c.Origin = "" // Open does not need it
		l := openTestLedger(t, c)
		if size, _ := l.Size(); size != 10 {
			t.Errorf("Size() = %d, want 10", size)
		}
		closeLedger(t, l)
	})

	bad := []struct {
		name   string
		adjust func(*Config)
	}{
		{"NoDir", func(c *Config) { c.Dir = "" }},
		{"NoSigner", func(c *Config) { c.Signer = nil }},
		{"NoOrigin", func(c *Config) { c.Origin = "" }},
		{"SignerNameNotOrigin", func(c *Config) { c.Signer = newTestSigner(t, "other.example/log") }},
	}
	for _, tc := range bad {
		t.Run("Create"+tc.name, func(t *testing.T) {
			c := testConfig(t)
			tc.adjust(&c)
			l, err := Create(bg, c)
			if err == nil {
				l.Close(bg)
				t.Errorf("Create(%s) = nil error, want failure", tc.name)
			}
		})
	}
}

// TestReopenEmptyLog creates a log, closes it without appending and opens
// it again: the size-0 checkpoint signs the RFC 6962 empty root, which the
// tree rebuilt at Open must match.
func TestReopenEmptyLog(t *testing.T) {
	for _, quick := range []bool{false, true} {
		t.Run(fmt.Sprintf("QuickOpen=%v", quick), func(t *testing.T) {
			l, cfg := newTestLedger(t)
			closeLedger(t, l)
			cfg.QuickOpen = quick
			l, err := Open(bg, cfg)
			if err != nil {
				t.Fatalf("Open(empty log) = %v, want nil", err)
			}
			defer l.Close(bg)
			size, root := l.Size()
			want := reftree.EmptyRoot()
			if size != 0 || !bytes.Equal(root, want[:]) {
				t.Errorf("Size() = %d, %x; want 0, %x", size, root, want)
			}
			appendN(t, l, 0, 1, 1)
			ref := &reftree.Tree{}
			addN(t, ref, 0, 1)
			cp, err := l.SignCheckpoint(bg)
			if err != nil {
				t.Fatalf("SignCheckpoint() = %v", err)
			}
			checkCheckpoint(t, l.VerifierKey(), cp, ref)
		})
	}
}

func TestReopenAndContinue(t *testing.T) {
	for _, quick := range []bool{false, true} {
		t.Run(fmt.Sprintf("QuickOpen=%v", quick), func(t *testing.T) {
			l, cfg := newTestLedger(t)
			ref := &reftree.Tree{}
			// Stop at sizes inside bundles, on bundle boundaries and
			// on a level-1 boundary, reopening in between.
			for _, n := range []int{3, 256, 300, 511, 512, 700} {
				add := n - int(ref.Size())
				appendN(t, l, int(ref.Size()), add, 100)
				addN(t, ref, int(ref.Size()), add)
				closeLedger(t, l)
				cfg.QuickOpen = quick
				l = openTestLedger(t, cfg)
				size, root := l.Size()
				want := ref.Root(t, ref.Size())
				if size != ref.Size() || !bytes.Equal(root, want[:]) {
					t.Fatalf("after reopen at %d: Size() = %d, %x; want %d, %x", n, size, root, ref.Size(), want)
				}
				checkCheckpoint(t, l.VerifierKey(), l.Latest(), ref)
			}
			for i := range ref.Size() {
				data, leaf, err := l.Entry(bg, i)
				if err != nil {
					t.Fatalf("Entry(%d) = %v", i, err)
				}
				if !bytes.Equal(data, ref.Data[i]) || tlog.Hash(leaf) != ref.LeafHash(i) {
					t.Fatalf("Entry(%d) = %q, %x; want %q, %x", i, data, leaf, ref.Data[i], ref.LeafHash(i))
				}
			}
			if _, _, err := l.Entry(bg, ref.Size()); !errors.Is(err, ErrNotFound) {
				t.Errorf("Entry(%d) = %v, want ErrNotFound", ref.Size(), err)
			}
		})
	}
}

func TestAppendResults(t *testing.T) {
	l, _ := newTestLedger(t)
	res, err := l.Append(bg)
	if err != nil || len(res) != 0 {
		t.Errorf("Append() with no entries = %v, %v; want nil, nil", res, err)
	}
	ref := &reftree.Tree{}
	for _, batch := range []int{1, 5, 250, 1} {
		first := int(ref.Size())
		data := make([][]byte, batch)
		for i := range data {
			data[i] = entryData(first + i)
		}
		res := appendData(t, l, data...)
		ref.Add(t, data...)
		for i, r := range res {
			if r.Index != uint64(first+i) || r.Duplicate || tlog.Hash(r.LeafHash) != ref.LeafHash(uint64(first+i)) {
				t.Errorf("Append(...)[%d] = %+v, want index %d, leaf hash %x", i, r, first+i, ref.LeafHash(uint64(first+i)))
			}
		}
		size, root := l.Size()
		want := ref.Root(t, ref.Size())
		if size != ref.Size() || !bytes.Equal(root, want[:]) {
			t.Errorf("Size() = %d, %x; want %d, %x", size, root, ref.Size(), want)
		}
	}
	// An empty entry is a valid leaf.
	res = appendData(t, l, []byte{})
	ref.Add(t, []byte{})
	if data, _, err := l.Entry(bg, res[0].Index); err != nil || len(data) != 0 {
		t.Errorf("Entry(%d) = %q, %v; want empty, nil", res[0].Index, data, err)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() = %v, want nil", err)
	}
}

func TestDedup(t *testing.T) {
	fp := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	l, cfg := newTestLedger(t)
	appendN(t, l, 0, 5, 5)

	// Within one call: the second entry repeats the first.
	res, err := l.Append(bg,
		Entry{Data: []byte("a@t1"), DedupKey: []byte("a"), Fingerprint: fp("a")},
		Entry{Data: []byte("b"), DedupKey: []byte("b"), Fingerprint: fp("b")},
		Entry{Data: []byte("a@t2"), DedupKey: []byte("a"), Fingerprint: fp("a")},
	)
	if err != nil {
		t.Fatalf("Append(a, b, a) = %v", err)
	}
	want := []Result{{Index: 5}, {Index: 6}, {Index: 5, Duplicate: true}}
	for i := range want {
		if res[i].Index != want[i].Index || res[i].Duplicate != want[i].Duplicate || res[i].Err != nil {
			t.Errorf("Append(a, b, a)[%d] = %+v, want index %d, duplicate %v", i, res[i], want[i].Index, want[i].Duplicate)
		}
	}
	if res[2].LeafHash != res[0].LeafHash {
		t.Errorf("duplicate leaf hash = %x, want the original's %x", res[2].LeafHash, res[0].LeafHash)
	}
	if size, _ := l.Size(); size != 7 {
		t.Errorf("Size() after Append(a, b, a) = %d, want 7", size)
	}

	checkDups := func(t *testing.T, l *Ledger) {
		t.Helper()
		// Across calls: same key and fingerprint, other data.
		res, err := l.Append(bg,
			Entry{Data: []byte("a@t3"), DedupKey: []byte("a"), Fingerprint: fp("a")},
			Entry{Data: []byte("b@t3"), DedupKey: []byte("b"), Fingerprint: fp("b")},
		)
		if err != nil {
			t.Fatalf("Append(a, b) again = %v", err)
		}
		for i, wantIndex := range []uint64{5, 6} {
			if res[i].Index != wantIndex || !res[i].Duplicate || res[i].Err != nil {
				t.Errorf("Append(a, b) again [%d] = %+v, want duplicate of %d", i, res[i], wantIndex)
			}
		}
		if size, _ := l.Size(); size != 7 {
			t.Errorf("Size() after duplicates = %d, want 7", size)
		}
		// Same key, other fingerprint: a conflict, nothing appended, even
		// the new entry of the same call.
		res, err = l.Append(bg,
			Entry{Data: []byte("c"), DedupKey: []byte("c"), Fingerprint: fp("c")},
			Entry{Data: []byte("a-other"), DedupKey: []byte("a"), Fingerprint: fp("a-other")},
		)
		if !errors.Is(err, ErrIDConflict) {
			t.Errorf("Append(c, a with other fingerprint) = %v, want ErrIDConflict", err)
		}
		if len(res) != 2 || !errors.Is(res[1].Err, ErrIDConflict) || res[0].Err != nil {
			t.Errorf("Append(c, a with other fingerprint) results = %+v, want ErrIDConflict on the second only", res)
		}
		if size, _ := l.Size(); size != 7 {
			t.Errorf("Size() after conflict = %d, want 7", size)
		}
		// The refused new key is still free.
		res, err = l.Append(bg, Entry{Data: []byte("c"), DedupKey: []byte("c"), Fingerprint: fp("c")})
		if err != nil || res[0].Duplicate || res[0].Index != 7 {
			t.Errorf("Append(c) after the refused call = %+v, %v; want new entry 7", res, err)
		}
	}
	t.Run("AcrossCalls", func(t *testing.T) { checkDups(t, l) })

	t.Run("ConflictWithinCall", func(t *testing.T) {
		res, err := l.Append(bg,
			Entry{Data: []byte("d1"), DedupKey: []byte("d"), Fingerprint: fp("d1")},
			Entry{Data: []byte("d2"), DedupKey: []byte("d"), Fingerprint: fp("d2")},
		)
		if !errors.Is(err, ErrIDConflict) {
			t.Errorf("Append(d1, d2 with the same key) = %v, want ErrIDConflict", err)
		}
		if len(res) != 2 || !errors.Is(res[1].Err, ErrIDConflict) {
			t.Errorf("Append(d1, d2 with the same key) results = %+v, want ErrIDConflict on the second", res)
		}
		if size, _ := l.Size(); size != 8 {
			t.Errorf("Size() = %d, want 8", size)
		}
	})

	t.Run("AfterReopen", func(t *testing.T) {
		closeLedger(t, l)
		l := openTestLedger(t, cfg)
		res, err := l.Append(bg, Entry{Data: []byte("c"), DedupKey: []byte("c"), Fingerprint: fp("c")})
		if err != nil || !res[0].Duplicate || res[0].Index != 7 {
			t.Errorf("Append(c) after reopen = %+v, %v; want duplicate of 7", res, err)
		}
		res, err = l.Append(bg, Entry{Data: []byte("a"), DedupKey: []byte("a"), Fingerprint: fp("a")})
		if err != nil || !res[0].Duplicate || res[0].Index != 5 {
			t.Errorf("Append(a) after reopen = %+v, %v; want duplicate of 5", res, err)
		}
		res, err = l.Append(bg, Entry{Data: []byte("a"), DedupKey: []byte("a"), Fingerprint: fp("x")})
		if !errors.Is(err, ErrIDConflict) || len(res) != 1 || !errors.Is(res[0].Err, ErrIDConflict) {
			t.Errorf("Append(a, other fingerprint) after reopen = %+v, %v; want ErrIDConflict", res, err)
		}
		if size, _ := l.Size(); size != 8 {
			t.Errorf("Size() after reopen and duplicates = %d, want 8", size)
		}
	})
}

func TestPushback(t *testing.T) {
	l, cfg := newTestLedger(t, func(c *Config) {
		c.QueueSize = 5
		c.MaxBatchSize = 5
		c.MaxBatchAge = time.Hour // the sequencer holds the batch until it is full
	})
	type outcome struct {
		res []Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := l.Append(bg, Entry{Data: []byte("0")}, Entry{Data: []byte("1")}, Entry{Data: []byte("2")})
		done <- outcome{res, err}
	}()
	waitFor(t, "QueueDepth() == 3", func() bool { return l.QueueDepth() == 3 })

	// One more fits, three do not.
	if _, err := l.Append(bg, Entry{Data: []byte("x")}, Entry{Data: []byte("y")}, Entry{Data: []byte("w")}); !errors.Is(err, ErrPushback) {
		t.Errorf("Append(3 entries) on a queue of 3/5 = %v, want ErrPushback", err)
	}
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Append(ctx, Entry{Data: []byte("3")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append(1 entry) on a queue of 3/5 = %v, want to wait until the deadline", err)
	}
	if _, err := l.Append(bg, Entry{Data: []byte("z")}, Entry{Data: []byte("q")}); !errors.Is(err, ErrPushback) {
		t.Errorf("Append(2 entries) on a queue of 4/5 = %v, want ErrPushback", err)
	}
	if size, _ := l.Size(); size != 0 {
		t.Errorf("Size() while the batch is held = %d, want 0", size)
	}

	// Close drains the queue: the held entries are committed.
	closeLedger(t, l)
	o := <-done
	if o.err != nil || len(o.res) != 3 {
		t.Fatalf("held Append() = %v, %v; want 3 results", o.res, o.err)
	}
	l = openTestLedger(t, cfg)
	if size, _ := l.Size(); size != 4 {
		t.Errorf("Size() after reopen = %d, want 4 (3 held entries and the one whose caller gave up)", size)
	}
}

func TestAppendLimits(t *testing.T) {
	l, _ := newTestLedger(t, func(c *Config) { c.MaxBatchSize = 8 })

	big := bytes.Repeat([]byte{'x'}, MaxEntrySize)
	res := appendData(t, l, big)
	if data, _, err := l.Entry(bg, res[0].Index); err != nil || !bytes.Equal(data, big) {
		t.Errorf("Entry(%d) of a %d-byte entry = %d bytes, %v", res[0].Index, MaxEntrySize, len(data), err)
	}
	tests := []struct {
		name    string
		entries []Entry
	}{
		{"EntryTooLarge", []Entry{{Data: []byte("ok")}, {Data: append(big, 'x')}}},
		{"TooManyEntries", make([]Entry, 9)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Append(bg, tc.entries...)
			mustErrIs(t, "Append()", err, ErrTooLarge)
		})
	}
	appendData(t, l, make([][]byte, 8)...)
	if size, _ := l.Size(); size != 9 {
		t.Errorf("Size() = %d, want 9", size)
	}
}

func TestAppendAfterClose(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 1, 1)
	closeLedger(t, l)
	_, err := l.Append(bg, Entry{Data: []byte("late")})
	mustErrIs(t, "Append() after Close", err, ErrClosed)
	mustErrIs(t, "Healthy() after Close", l.Healthy(), ErrClosed)
}

func TestConcurrentAppend(t *testing.T) {
	const writers, perWriter = 8, 500
	l, _ := newTestLedger(t)
	indexes := make([][]uint64, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; {
				// Mix single entries and small batches.
				n := 1 + (i+w)%3
				n = min(n, perWriter-i)
				entries := make([]Entry, n)
				for j := range entries {
					entries[j] = Entry{Data: fmt.Appendf(nil, "writer %d entry %d", w, i+j)}
				}
				res, err := l.Append(bg, entries...)
				if err != nil {
					errs <- fmt.Errorf("writer %d: Append() = %v", w, err)
					return
				}
				for _, r := range res {
					indexes[w] = append(indexes[w], r.Index)
				}
				i += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * perWriter
	seen := make([]bool, total)
	for w, idx := range indexes {
		for i, x := range idx {
			if x >= total || seen[x] {
				t.Fatalf("writer %d entry %d got index %d, out of range or taken twice", w, i, x)
			}
			seen[x] = true
			if i > 0 && x <= idx[i-1] {
				t.Errorf("writer %d entry %d got index %d after %d, want increasing", w, i, x, idx[i-1])
			}
			data, _, err := l.Entry(bg, x)
			if want := fmt.Sprintf("writer %d entry %d", w, i); err != nil || string(data) != want {
				t.Fatalf("Entry(%d) = %q, %v; want %q", x, data, err, want)
			}
		}
	}
	ref := &reftree.Tree{}
	for i := range uint64(total) {
		data, _, err := l.Entry(bg, i)
		if err != nil {
			t.Fatalf("Entry(%d) = %v", i, err)
		}
		ref.Add(t, data)
	}
	size, root := l.Size()
	want := ref.Root(t, total)
	if size != total || !bytes.Equal(root, want[:]) {
		t.Errorf("Size() = %d, %x; want %d, %x", size, root, total, want)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, cfg := newTestLedger(t, func(c *Config) { c.Registerer = reg })
	appendN(t, l, 0, 10, 4)
	if _, err := l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10, 5, 5)
	want := map[string]float64{
		"accessledger_appended_entries_total":  15,
		"accessledger_commits_total":           4,
		"accessledger_pushback_total":          0,
		"accessledger_queue_depth_entries":     0,
		"accessledger_tree_size_entries":       15,
		"accessledger_checkpoint_size_entries": 10,
	}
	checkMetrics(t, reg, want)
	closeLedger(t, l)

	// Opening the log again in the same process, with the same registry,
	// must not panic on the metrics registered by the closed ledger.
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Open() with the registerer of a closed ledger panicked: %v", r)
			}
		}()
		l, err := Open(bg, cfg)
		if err != nil {
			t.Errorf("Open() = %v", err)
			return
		}
		defer l.Close(bg)
		checkMetrics(t, reg, map[string]float64{"accessledger_tree_size_entries": 15})
	}()
}

func checkMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	got := make(map[string]float64)
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	for name, w := range want {
		if v, ok := got[name]; !ok || v != w {
			t.Errorf("metric %s = %v (present %v), want %v", name, v, ok, w)
		}
	}
}
