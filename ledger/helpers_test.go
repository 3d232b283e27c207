package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/reftree"

	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"
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

func addN(t testing.TB, r *reftree.Tree, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		r.Add(t, entryData(i))
	}
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

// waitRuns waits until the hash runs of the first n chunks are stored.
func waitRuns(t testing.TB, l *Ledger, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.runs.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("hash runs of %d chunks after 10s, want %d", l.runs.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
