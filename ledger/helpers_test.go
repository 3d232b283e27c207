package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "example.com/accessledger/test"

// newTestSigner returns a NoteSigner over a fresh Ed25519 key.
func newTestSigner(t testing.TB, name string) *NoteSigner {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatalf("NewED25519SignerVerifier: %v", err)
	}
	s, err := NewNoteSigner(name, sv)
	if err != nil {
		t.Fatalf("NewNoteSigner(%q) = %v", name, err)
	}
	return s
}

// testConfig returns a Config for a new log in a fresh temporary
// directory. The checkpoint cadence is an hour, so that checkpoints are
// signed only when a test asks (or at Close), unless the test changes it.
func testConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		Dir:                t.TempDir(),
		Origin:             testOrigin,
		Signer:             newTestSigner(t, testOrigin),
		CheckpointInterval: time.Hour,
		BadgerOptions: func(o badger.Options) badger.Options {
			// Small memtables keep Open fast; the layout is unchanged.
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
		},
	}
}

// newTestLedger creates a ledger with testConfig, adjusted by the given
// functions, and closes it when the test ends.
func newTestLedger(t testing.TB, adjust ...func(*Config)) (*Ledger, Config) {
	t.Helper()
	cfg := testConfig(t)
	for _, f := range adjust {
		f(&cfg)
	}
	l, err := Create(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Create(%s) = %v", cfg.Dir, err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l, cfg
}

// openTestLedger opens the ledger of cfg and closes it when the test ends.
func openTestLedger(t testing.TB, cfg Config) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s) = %v", cfg.Dir, err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// closeLedger closes l and fails the test if that fails.
func closeLedger(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close() = %v", err)
	}
}

// entryData is the deterministic content of test entry i.
func entryData(i int) []byte {
	return fmt.Appendf(nil, `{"test":"entry","n":%d}`, i)
}

// appendData appends entries with the given contents in one call and
// fails the test on any error.
func appendData(t testing.TB, l *Ledger, data ...[]byte) []Result {
	t.Helper()
	entries := make([]Entry, len(data))
	for i, d := range data {
		entries[i] = Entry{Data: d}
	}
	res, err := l.Append(context.Background(), entries...)
	if err != nil {
		t.Fatalf("Append(%d entries) = %v", len(entries), err)
	}
	if len(res) != len(entries) {
		t.Fatalf("Append(%d entries) returned %d results", len(entries), len(res))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Append(...)[%d].Err = %v, want nil", i, r.Err)
		}
	}
	return res
}

// appendN appends entries entryData(first) .. entryData(first+n-1) in
// calls of at most batch entries.
func appendN(t testing.TB, l *Ledger, first, n, batch int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(batch, n-done)
		data := make([][]byte, k)
		for i := range data {
			data[i] = entryData(first + done + i)
		}
		appendData(t, l, data...)
		done += k
	}
}

// refTree is an independent model of the log: the go.sum transparency log
// code of golang.org/x/mod/sumdb/tlog, fed with the same entries. Roots and
// tiles expected from the ledger are computed here, never by the ledger.
type refTree struct {
	data   [][]byte
	stored []tlog.Hash // tlog stored hashes, indexed by tlog.StoredHashIndex
}

func (r *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(r.stored)) {
			return nil, fmt.Errorf("refTree: no stored hash %d", x)
		}
		out[i] = r.stored[x]
	}
	return out, nil
}

func (r *refTree) add(t testing.TB, data ...[]byte) {
	t.Helper()
	for _, d := range data {
		hashes, err := tlog.StoredHashes(int64(len(r.data)), d, r)
		if err != nil {
			t.Fatalf("tlog.StoredHashes(%d) = %v", len(r.data), err)
		}
		r.stored = append(r.stored, hashes...)
		r.data = append(r.data, d)
	}
}

func (r *refTree) addN(t testing.TB, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		r.add(t, entryData(i))
	}
}

func (r *refTree) size() uint64 { return uint64(len(r.data)) }

// root returns the RFC 6962 root of the first n entries, per tlog.
func (r *refTree) root(t testing.TB, n uint64) tlog.Hash {
	t.Helper()
	if n == 0 {
		return tlog.Hash(emptyRoot())
	}
	h, err := tlog.TreeHash(int64(n), r)
	if err != nil {
		t.Fatalf("tlog.TreeHash(%d) = %v", n, err)
	}
	return h
}

// leafHash returns the leaf hash of entry i, per tlog.
func (r *refTree) leafHash(i uint64) tlog.Hash { return tlog.RecordHash(r.data[i]) }

// emptyRoot is SHA-256 of the empty string, the RFC 6962 root of an empty
// tree.
func emptyRoot() [32]byte {
	return [32]byte{
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	}
}

// toTlog converts a proof to tlog hashes, failing on a hash of the wrong
// size.
func toTlog(t testing.TB, p [][]byte) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		if len(h) != tlog.HashSize {
			t.Fatalf("proof hash %d has %d bytes, want %d", i, len(h), tlog.HashSize)
		}
		copy(out[i][:], h)
	}
	return out
}

// mustErrIs fails unless errors.Is(err, target).
func mustErrIs(t testing.TB, call string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s = %v, want %v", call, err, target)
	}
}

// bg is the context of calls that a test does not bound.
var bg = context.Background()
