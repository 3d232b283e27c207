package ledger

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Leaf is a committed entry, as streamed by Follow. Data is shared with
// the ledger's cache: read it, never modify it.
type Leaf struct {
	Index uint64
	Data  []byte
	// Decoded is the Entry.Decoded the entry was appended with, if the
	// entry was still held in memory when read (nil otherwise, and
	// always after a restart). Read it, never modify it.
	Decoded any
}

// Hash returns the leaf's RFC 6962 leaf hash. Followers that need it
// compute it; most never do.
func (lf Leaf) Hash() []byte { return hasher.HashLeaf(lf.Data) }

// Follow streams committed entries in index order, starting at from, and
// then waits for new commits, until ctx ends or the ledger closes. The
// sequence ends by yielding the error that stopped it (ctx.Err(),
// ErrClosed or a storage error). Each follower reads storage on its own, so
// a slow follower never holds up appends.
func (l *Ledger) Follow(ctx context.Context, from uint64) iter.Seq2[Leaf, error] {
	return func(yield func(Leaf, error) bool) {
		next := from
		var recent []Leaf // reused: leaves are yielded by value
		for {
			// Take the commit channel before reading the size, so that a
			// commit in between is not missed.
			wake := l.Committed()
			size, _ := l.Size()
			for next < size {
				leaves := l.recent.read(recent[:0], next, int(min(size-next, TileWidth)))
				if len(leaves) > 0 {
					recent = leaves
				} else {
					var err error
					if leaves, err = l.readLeaves(next, size); err != nil {
						yield(Leaf{}, err)
						return
					}
				}
				for _, lf := range leaves {
					if !yield(lf, nil) {
						return
					}
				}
				next += uint64(len(leaves))
				clear(recent) // holds no entry longer than the ring does
				if err := ctx.Err(); err != nil {
					yield(Leaf{}, err)
					return
				}
			}
			select {
			case <-wake:
			case <-ctx.Done():
				yield(Leaf{}, ctx.Err())
				return
			case <-l.stop:
				yield(Leaf{}, ErrClosed)
				return
			}
		}
	}
}

// Retry says how FollowRetrying waits after a read that failed: Min is
// the first pause, doubled at each failure in a row up to Max; OnError,
// if set, is told of each failure (where, how long the pause, why)
// before the pause.
type Retry struct {
	Min, Max time.Duration
	OnError  func(at uint64, pause time.Duration, err error)
}

// DefaultRetry is the Retry of the log's followers in the server: a first
// pause of 100 ms, doubling up to 30 s.
var DefaultRetry = Retry{Min: 100 * time.Millisecond, Max: 30 * time.Second}

// FollowRetrying is follow (a Ledger's Follow, or what wraps it) for a
// follower that must not stop on a read that fails: it reads again from
// the entry after the last one yielded, after a pause (see Retry), and
// yields only the error that ends it: ctx's, ErrClosed or ErrFailed. A
// follower that keeps its state in memory thus goes on where it was.
func FollowRetrying(ctx context.Context, follow func(context.Context, uint64) iter.Seq2[Leaf, error], from uint64, r Retry) iter.Seq2[Leaf, error] {
	return func(yield func(Leaf, error) bool) {
		pause := r.Min
		for {
			var ferr error
			for lf, err := range follow(ctx, from) {
				if err != nil {
					ferr = err
					break
				}
				if !yield(lf, nil) {
					return
				}
				from = lf.Index + 1
				pause = r.Min
			}
			switch {
			case ctx.Err() != nil:
				yield(Leaf{}, ctx.Err())
				return
			case ferr == nil:
				ferr = fmt.Errorf("following entry %d: the entries ended without an error: %w", from, ErrCorrupt)
			case errors.Is(ferr, ErrClosed), errors.Is(ferr, ErrFailed):
				yield(Leaf{}, ferr)
				return
			}
			if r.OnError != nil {
				r.OnError(from, pause, ferr)
			}
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				yield(Leaf{}, ctx.Err())
				return
			}
			pause = min(2*pause, r.Max)
		}
	}
}

// FollowInto sends what FollowRetrying(ctx, follow, from, r) yields to
// out, in order, and returns the error that ends it: ctx's, ErrClosed or
// ErrFailed. Followers run it in a goroutine of their own, so that reading
// the log overlaps with processing what was read.
func FollowInto(ctx context.Context, follow func(context.Context, uint64) iter.Seq2[Leaf, error], from uint64, r Retry, out chan<- Leaf) error {
	for lf, err := range FollowRetrying(ctx, follow, from, r) {
		if err != nil {
			return err
		}
		select {
		case out <- lf:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// RecentLeaves appends to out the committed entries from index from on,
// at most limit of them, if the ledger still holds them in memory (with
// what they were appended with, Leaf.Decoded); none if entry from is not
// held or not committed. Followers that read entry bundles on their own
// try it first.
func (l *Ledger) RecentLeaves(out []Leaf, from uint64, limit int) []Leaf {
	return l.recent.read(out, from, limit)
}

// readLeaves reads the entries from index from up to one bundle's end (and
// below size).
func (l *Ledger) readLeaves(from, size uint64) ([]Leaf, error) {
	var out []Leaf
	err := l.view(func(txn *badger.Txn) error {
		b, _, err := l.readBundle(txn, from/TileWidth)
		if err != nil {
			return err
		}
		// Walk the framing in place: a follower woken by every commit
		// reads the edge bundle each time, and splitting it whole
		// allocated more than anything else on the way of a
		// single-event request.
		base := from / TileWidth * TileWidth
		out = make([]Leaf, 0, min(size-from, base+TileWidth-from))
		var entry []byte
		for i, off := base, 0; i < size && off < len(b); i++ {
			if i >= base+TileWidth {
				return fmt.Errorf("entry bundle %d holds more than %d entries: %w", from/TileWidth, TileWidth, ErrCorrupt)
			}
			if entry, off, err = nextEntry(b, off); err != nil {
				return fmt.Errorf("%v: %w", err, ErrCorrupt)
			}
			if i >= from {
				out = append(out, Leaf{Index: i, Data: entry})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("following entry %d: %w", from, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("following entry %d: %w", from, ErrCorrupt)
	}
	return out, nil
}
