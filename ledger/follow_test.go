package ledger

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// follower runs Follow in a goroutine and hands over what it yields.
type follower struct {
	leaves chan Leaf
	err    chan error // the error that ended the sequence
}

func startFollower(ctx context.Context, l *Ledger, from uint64) *follower {
	f := &follower{leaves: make(chan Leaf, 1024), err: make(chan error, 1)}
	go func() {
		for lf, err := range l.Follow(ctx, from) {
			if err != nil {
				f.err <- err
				return
			}
			f.leaves <- lf
		}
		f.err <- nil
	}()
	return f
}

// expect receives the leaves [from, to) in order.
func (f *follower) expect(t *testing.T, from, to uint64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i := from; i < to; i++ {
		select {
		case lf := <-f.leaves:
			want := entryData(int(i))
			if lf.Index != i || !bytes.Equal(lf.Data, want) || !bytes.Equal(lf.Hash(), rfc6962.DefaultHasher.HashLeaf(want)) {
				t.Fatalf("Follow yielded {%d %q %x}, want {%d %q %x}", lf.Index, lf.Data, lf.Hash(), i, want, rfc6962.DefaultHasher.HashLeaf(want))
			}
		case err := <-f.err:
			t.Fatalf("Follow ended with %v before entry %d", err, i)
		case <-timeout:
			t.Fatalf("Follow did not yield entry %d within 10s", i)
		}
	}
}

// expectNothing checks that nothing more is yielded for a short while.
func (f *follower) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case lf := <-f.leaves:
		t.Fatalf("Follow yielded entry %d, want nothing yet", lf.Index)
	case err := <-f.err:
		t.Fatalf("Follow ended with %v, want it to wait", err)
	case <-time.After(20 * time.Millisecond):
	}
}

// expectEnd waits for the sequence to end with an error matching want.
func (f *follower) expectEnd(t *testing.T, want error) {
	t.Helper()
	select {
	case lf := <-f.leaves:
		t.Fatalf("Follow yielded entry %d, want it to end with %v", lf.Index, want)
	case err := <-f.err:
		if !errors.Is(err, want) {
			t.Fatalf("Follow ended with %v, want %v", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Follow did not end within 10s, want %v", want)
	}
}

func TestFollowFromStartThenLive(t *testing.T) {
	const n = 600 // spans full and partial bundles
	l, _ := newTestLedger(t)
	appendN(t, l, 0, n, 200)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	f := startFollower(ctx, l, 0)
	f.expect(t, 0, n)
	f.expectNothing(t)

	// New commits wake the follower, one at a time and in batches, across
	// a bundle boundary.
	appendN(t, l, n, 1, 1)
	f.expect(t, n, n+1)
	appendN(t, l, n+1, 300, 300)
	f.expect(t, n+1, n+301)
	f.expectNothing(t)

	cancel()
	f.expectEnd(t, context.Canceled)
}

func TestFollowFrom(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 700, 700)
	for _, from := range []uint64{1, 255, 256, 257, 511, 699} {
		ctx, cancel := context.WithCancel(bg)
		f := startFollower(ctx, l, from)
		f.expect(t, from, 700)
		f.expectNothing(t)
		cancel()
		f.expectEnd(t, context.Canceled)
	}
}

func TestFollowAheadOfLog(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 5, 5)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	f := startFollower(ctx, l, 7)
	appendN(t, l, 5, 1, 1)
	f.expectNothing(t)
	appendN(t, l, 6, 3, 3)
	f.expect(t, 7, 9)
}

func TestFollowWakesOnFirstCommit(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	f := startFollower(ctx, l, 0)
	f.expectNothing(t)
	appendN(t, l, 0, 1, 1)
	f.expect(t, 0, 1)
	appendN(t, l, 1, 2, 2)
	f.expect(t, 1, 3)
}

func TestFollowEndsOnClose(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 3, 3)
	f := startFollower(bg, l, 0)
	f.expect(t, 0, 3)
	closeLedger(t, l)
	f.expectEnd(t, ErrClosed)
}

func TestFollowCancelledContext(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 300, 300)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	var got []uint64
	var end error
	for lf, err := range l.Follow(ctx, 0) {
		if err != nil {
			end = err
			break
		}
		got = append(got, lf.Index)
	}
	if !errors.Is(end, context.Canceled) {
		t.Errorf("Follow(cancelled ctx) ended with %v, want context.Canceled", end)
	}
	// It may deliver what it had already read, but not the whole log.
	if len(got) >= 300 {
		t.Errorf("Follow(cancelled ctx) yielded %d entries, want it to stop before the end", len(got))
	}
}

func TestFollowStopsWhenConsumerBreaks(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 10, 10)
	count := 0
	for _, err := range l.Follow(bg, 0) {
		if err != nil {
			t.Fatalf("Follow() yielded %v", err)
		}
		if count++; count == 4 {
			break
		}
	}
	if count != 4 {
		t.Errorf("consumed %d entries, want 4", count)
	}
}

// TestReadsAfterCloseFail checks that reads racing with or following Close
// get ErrClosed instead of touching closed storage.
func TestReadsAfterCloseFail(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 300, 100)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ; i = (i + 37) % 300 {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := l.Entry(bg, i); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Entry(%d) during Close = %v, want nil or ErrClosed", i, err)
					return
				}
				if _, err := l.InclusionProof(bg, i, 300); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("InclusionProof(%d) during Close = %v, want nil or ErrClosed", i, err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(bg); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, _, err := l.Entry(bg, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Entry(0) after Close = %v, want ErrClosed", err)
	}
	if _, err := l.SignCheckpoint(bg); !errors.Is(err, ErrClosed) && err != nil {
		t.Errorf("SignCheckpoint() after Close = %v, want ErrClosed or the latest", err)
	}
}

// TestFollowRetrying (through FollowInto): reads that fail are read again from the entry after
// the last one yielded, after doubling pauses reported to OnError; the
// sequence goes on in order, without gaps or repeats, and ends only when
// the ledger closes.
func TestFollowRetrying(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 6, 2)
	failures := 3
	flaky := func(ctx context.Context, from uint64) iter.Seq2[Leaf, error] {
		return func(yield func(Leaf, error) bool) {
			for lf, err := range l.Follow(ctx, from) {
				if err == nil && lf.Index == 4 && failures > 0 {
					failures--
					yield(Leaf{}, errors.New("injected read failure"))
					return
				}
				if !yield(lf, err) {
					return
				}
			}
		}
	}
	var pauses []time.Duration
	var at []uint64
	r := Retry{Min: time.Millisecond, Max: 3 * time.Millisecond, OnError: func(i uint64, p time.Duration, err error) {
		at, pauses = append(at, i), append(pauses, p)
	}}
	f := &follower{leaves: make(chan Leaf, 1024), err: make(chan error, 1)}
	go func() { f.err <- FollowInto(bg, flaky, 1, r, f.leaves) }()
	f.expect(t, 1, 6)
	appendN(t, l, 6, 2, 2)
	f.expect(t, 6, 8)
	f.expectNothing(t)
	closeLedger(t, l)
	f.expectEnd(t, ErrClosed)
	if !slices.Equal(at, []uint64{4, 4, 4}) || !slices.Equal(pauses, []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}) {
		t.Errorf("OnError told at %v after pauses %v, want at 4, 4, 4 after 1ms, 2ms, 3ms", at, pauses)
	}
}
