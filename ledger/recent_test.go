package ledger

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// recentIndexes returns the indexes r holds, oldest first.
func recentIndexes(r *recentLeaves) (first uint64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.n
}

func leavesFrom(first uint64, n, size int) []Leaf {
	out := make([]Leaf, n)
	for i := range out {
		out[i] = Leaf{Index: first + uint64(i), Data: make([]byte, size), Decoded: int(first) + i}
	}
	return out
}

func TestRecentLeavesBounds(t *testing.T) {
	r := newRecentLeaves()
	r.add(leavesFrom(100, 10, 1))
	if got := r.read(nil, 99, 5); len(got) != 0 {
		t.Errorf("read(99) = %d leaves, want none: 99 was never added", len(got))
	}
	got := r.read(nil, 104, 100)
	if len(got) != 6 || got[0].Index != 104 || got[5].Index != 109 || got[0].Decoded != 104 {
		t.Fatalf("read(104, 100) = %+v, want entries 104-109 with what they were added with", got)
	}
	if got := r.read(nil, 105, 2); len(got) != 2 || got[1].Index != 106 {
		t.Errorf("read(105, 2) = %+v, want entries 105-106", got)
	}
	if got := r.read(nil, 110, 5); len(got) != 0 {
		t.Errorf("read(110) = %d leaves, want none: not added yet", len(got))
	}

	// A gap (the sequencer restarted from storage) starts the ring again.
	r.add(leavesFrom(200, 3, 1))
	if first, n := recentIndexes(r); first != 200 || n != 3 {
		t.Errorf("after a gap the ring holds %d entries from %d, want 3 from 200", n, first)
	}

	// By count: the oldest go first, and what is held stays consecutive.
	r.add(leavesFrom(203, recentEntries, 1))
	first, n := recentIndexes(r)
	if n > recentEntries || first+uint64(n) != 203+recentEntries {
		t.Fatalf("after %d more entries the ring holds %d from %d; want at most %d, ending at %d", recentEntries, n, first, recentEntries, 203+recentEntries)
	}
	if got := r.read(nil, first, 1); len(got) != 1 || got[0].Index != first || got[0].Decoded != int(first) {
		t.Errorf("read(oldest %d) = %+v", first, got)
	}
	if got := r.read(nil, first-1, 1); len(got) != 0 {
		t.Errorf("read(%d) = %+v, want none: dropped", first-1, got)
	}

	// By bytes: large entries are held only up to recentBytes.
	big := 64 << 10
	r.add(leavesFrom(first+uint64(n), 1000, big))
	r.mu.Lock()
	held, bytes := r.n, r.bytes
	r.mu.Unlock()
	if bytes > recentBytes || held > recentBytes/big {
		t.Errorf("with 64 KiB entries the ring holds %d entries, %d bytes; want at most %d bytes", held, bytes, recentBytes)
	}
}

// TestFollowYieldsDecoded: a follower that keeps up gets each entry with
// what it was appended with, and the same bytes as storage holds; after a
// reopen (nothing in memory) it gets the bytes alone.
func TestFollowYieldsDecoded(t *testing.T) {
	l, cfg := newTestLedger(t)
	const n = 300 // a full bundle and part of the next
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Data: entryData(i), Decoded: i}
	}
	if _, err := l.Append(bg, entries[:200]...); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(bg, entries[200:]...); err != nil {
		t.Fatal(err)
	}
	check := func(l *Ledger, wantDecoded bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		i := 0
		for lf, err := range l.Follow(ctx, 0) {
			if err != nil {
				t.Fatalf("Follow: %v", err)
			}
			if lf.Index != uint64(i) || !bytes.Equal(lf.Data, entryData(i)) {
				t.Fatalf("Follow yielded {%d %q}, want {%d %q}", lf.Index, lf.Data, i, entryData(i))
			}
			switch {
			case wantDecoded && lf.Decoded != i:
				t.Fatalf("entry %d: Decoded = %v, want %d", i, lf.Decoded, i)
			case !wantDecoded && lf.Decoded != nil:
				t.Fatalf("entry %d after reopening: Decoded = %v, want nil", i, lf.Decoded)
			}
			if i++; i == n {
				break
			}
		}
		if got := l.RecentLeaves(nil, 250, 10); wantDecoded && (len(got) != 10 || got[0].Index != 250 || got[0].Decoded != 250 || !bytes.Equal(got[0].Data, entryData(250))) {
			t.Errorf("RecentLeaves(250, 10) = %+v", got)
		}
	}
	check(l, true)
	closeLedger(t, l)
	l = openTestLedger(t, cfg)
	check(l, false)
	if got := l.RecentLeaves(nil, 0, 10); len(got) != 0 {
		t.Errorf("RecentLeaves after reopening = %d entries, want none", len(got))
	}
}

// TestFailedCommitPublishesNoRecent: the entries of a commit that failed
// are not handed to followers.
func TestFailedCommitPublishesNoRecent(t *testing.T) {
	var fail atomic.Bool
	l, _ := newTestLedger(t, func(c *Config) {
		c.faultHook = func(step commitStep) error {
			if fail.Load() && step == stepDuringWrite {
				return errors.New("injected fault")
			}
			return nil
		}
	})
	appendN(t, l, 0, 5, 5)
	fail.Store(true)
	if _, err := l.Append(bg, Entry{Data: entryData(5), Decoded: 5}); err == nil {
		t.Fatal("Append with a failing commit succeeded")
	}
	if got := l.RecentLeaves(nil, 5, 1); len(got) != 0 {
		t.Errorf("RecentLeaves(5) after a failed commit = %+v, want none", got)
	}
}
