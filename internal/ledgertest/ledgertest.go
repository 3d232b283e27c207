// Package ledgertest creates real ledgers for other packages' tests: on
// disk in a temporary directory, signed with a fresh Ed25519 key.
package ledgertest

import (
	"context"
	"crypto/rand"
	"errors"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/ledger"
)

// SmallBadger shrinks Badger's memtables and caches, so that tests that
// open many databases stay small.
func SmallBadger(o badger.Options) badger.Options {
	return o.WithMemTableSize(8 << 20).WithBlockCacheSize(4 << 20).WithIndexCacheSize(2 << 20)
}

// New creates a ledger from cfg, filling in what it leaves empty: Dir (a
// temporary directory), Origin ("ledgertest.example/log"), Signer (a fresh
// Ed25519 key) and BadgerOptions (SmallBadger). The ledger is closed when
// the test ends.
func New(t testing.TB, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Origin == "" {
		cfg.Origin = "ledgertest.example/log"
	}
	if cfg.Signer == nil {
		sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Signer, err = ledger.NewNoteSigner(cfg.Origin, sv); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.BadgerOptions == nil {
		cfg.BadgerOptions = SmallBadger
	}
	l, err := ledger.Create(context.Background(), cfg)
	if err != nil {
		t.Fatalf("ledger.Create: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// FlakyLog is a ledger whose Follow fails when it reaches entry FailAt,
// as many times as Failures holds, as a storage read that fails for a
// while would; every other method is the ledger's. Follows counts the
// calls to Follow.
type FlakyLog struct {
	*ledger.Ledger
	FailAt   uint64
	Failures atomic.Int32
	Follows  atomic.Int32
}

// ErrInjected is the error FlakyLog's Follow yields.
var ErrInjected = errors.New("ledgertest: injected read failure")

// Follow is the ledger's Follow, failing at FailAt while Failures lasts.
func (f *FlakyLog) Follow(ctx context.Context, from uint64) iter.Seq2[ledger.Leaf, error] {
	f.Follows.Add(1)
	return func(yield func(ledger.Leaf, error) bool) {
		for lf, err := range f.Ledger.Follow(ctx, from) {
			if err == nil && lf.Index == f.FailAt && f.Failures.Add(-1) >= 0 {
				yield(ledger.Leaf{}, ErrInjected)
				return
			}
			if !yield(lf, err) {
				return
			}
		}
	}
}
