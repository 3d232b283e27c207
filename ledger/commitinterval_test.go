package ledger

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCommitInterval checks Config.CommitInterval: a lone caller
// appending one request after another is never held back by it, while
// requests that follow a commit of concurrent callers wait for it (or for
// intervalQuorum of them) and share one commit. The interval is an hour,
// so that being held back is unmistakable, and Close (which commits at
// once) releases what it holds.
func TestCommitInterval(t *testing.T) {
	var commits atomic.Int32
	var holdOnce sync.Once
	held, release := make(chan struct{}), make(chan struct{})
	hold := atomic.Bool{}
	l, cfg := newTestLedger(t, func(c *Config) {
		c.CommitInterval = time.Hour
		c.faultHook = func(step commitStep) error {
			if step != stepBeforeWrite {
				return nil
			}
			commits.Add(1)
			if hold.Load() {
				holdOnce.Do(func() {
					close(held)
					<-release
				})
			}
			return nil
		}
	})
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()

	// A lone caller: each append is a commit of its own, at once.
	for i := range 3 {
		if _, err := l.Append(ctx, Entry{Data: entryData(i)}); err != nil {
			t.Fatalf("lone Append(%d) = %v; want it committed without waiting for the interval", i, err)
		}
	}
	if n := commits.Load(); n != 3 {
		t.Fatalf("commits after 3 lone appends = %d, want 3", n)
	}

	// Concurrent callers: hold a commit while two more requests queue, so
	// that the next commit carries both.
	hold.Store(true)
	var wg sync.WaitGroup
	appendAsync := func(i int) {
		wg.Go(func() {
			if _, err := l.Append(bg, Entry{Data: entryData(i)}); err != nil {
				t.Errorf("Append(%d) = %v", i, err)
			}
		})
	}
	appendAsync(3)
	<-held
	appendAsync(4)
	appendAsync(5)
	waitFor(t, "QueueDepth() == 2", func() bool { return l.QueueDepth() == 2 })
	close(release)
	wg.Wait()
	if n := commits.Load(); n != 5 {
		t.Fatalf("commits after the held one = %d, want 5 (one for entry 3, one for entries 4 and 5)", n)
	}

	// That commit carried two requests: the next ones wait for the
	// interval...
	appendAsync(6)
	appendAsync(7)
	waitFor(t, "QueueDepth() == 2", func() bool { return l.QueueDepth() == 2 })
	time.Sleep(50 * time.Millisecond)
	if d, n := l.QueueDepth(), commits.Load(); d != 2 || n != 5 {
		t.Fatalf("50 ms after a commit of two requests: queue depth %d, commits %d; want 2 and 5 (held for the interval)", d, n)
	}
	// ... until intervalQuorum of them wait: those are worth a commit at
	// once (clients catching up would only be slowed down).
	end := 6 + intervalQuorum
	for i := 8; i < end; i++ {
		appendAsync(i)
	}
	waitFor(t, "the queue committed", func() bool { return l.QueueDepth() == 0 && commits.Load() >= 6 })
	wg.Wait()
	if n := commits.Load(); n != 6 {
		t.Fatalf("commits once %d requests waited = %d, want 6 (all of them in one, without waiting for the interval)", intervalQuorum, n)
	}

	// The interval holds again after that commit; Close commits at once.
	appendAsync(end)
	waitFor(t, "QueueDepth() == 1", func() bool { return l.QueueDepth() == 1 })
	closeLedger(t, l)
	wg.Wait()
	if n := commits.Load(); n != 7 {
		t.Errorf("commits after Close = %d, want 7", n)
	}
	l = openTestLedger(t, cfg)
	if size, _ := l.Size(); size != uint64(end+1) {
		t.Errorf("Size() after reopen = %d, want %d", size, end+1)
	}
}
