package ledger

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/syncbuf"
)

// TestAppendsStopOnLowDisk checks that appends are refused, and Healthy
// says why, while the free space is below MinFreeDisk, and accepted again
// once there is room, with one log line each way.
func TestAppendsStopOnLowDisk(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	var logs syncbuf.Buffer
	l, _ := newTestLedger(t, func(c *Config) {
		c.MinFreeDisk = 100 << 20
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.freeSpace = func(string) (uint64, error) { return free.Load(), nil }
	})
	appendN(t, l, 0, 3, 3)

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	free.Store(99 << 20)
	waitFor("appends to be refused", func() bool { return l.noSpace() != nil })
	_, err := l.Append(bg, Entry{Data: entryData(3)})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "99 MiB free") || !strings.Contains(err.Error(), "need 100 MiB") {
		t.Fatalf("Append with 99 MiB free = %v, want ErrNoSpace with the figures", err)
	}
	if err := l.Healthy(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Healthy() with 99 MiB free = %v, want ErrNoSpace", err)
	}
	// Just above the line is not enough room to start again.
	free.Store(101 << 20)
	time.Sleep(3 * diskInterval)
	if _, err := l.Append(bg, Entry{Data: entryData(3)}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Append with 101 MiB free after a refusal = %v, want ErrNoSpace until there is some room", err)
	}
	free.Store(200 << 20)
	waitFor("appends to be accepted again", func() bool { return l.noSpace() == nil })
	appendN(t, l, 3, 2, 2)
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy() with room again = %v", err)
	}
	if size, _ := l.Size(); size != 5 {
		t.Fatalf("Size() = %d, want 5", size)
	}
	out := logs.String()
	if strings.Count(out, "free disk space is below the minimum") != 1 || strings.Count(out, "free disk space is back above the minimum") != 1 {
		t.Errorf("logs = %s\nwant one line when appends stop and one when they resume", out)
	}
}

// TestLowDiskMeasured checks the real measure: a minimum above any disk's
// free space refuses appends from the start, and a negative one turns the
// check off (the space is still measured for the metric).
func TestLowDiskMeasured(t *testing.T) {
	l, cfg := newTestLedger(t, func(c *Config) { c.MinFreeDisk = 1 << 62 })
	if _, err := l.Append(bg, Entry{Data: entryData(0)}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Append with MinFreeDisk 4 EiB = %v, want ErrNoSpace", err)
	}
	closeLedger(t, l)
	cfg.MinFreeDisk = -1
	l = openTestLedger(t, cfg)
	appendN(t, l, 0, 1, 1)
	// Off, the space is still measured, for the metric.
	if free := l.disk.Load().free; free == 0 {
		t.Errorf("free space with the check off = 0, want it measured")
	}
}
