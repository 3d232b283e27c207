package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestMemoryLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name                            string
		configured, current, live, want int64
	}{
		{"small live heap keeps the configured limit", 256 * mib, 256 * mib, 100 * mib, 256 * mib},
		{"live heap at half the limit keeps it", 256 * mib, 256 * mib, 128 * mib, 256 * mib},
		{"live heap near the limit raises it", 256 * mib, 256 * mib, 200 * mib, 328 * mib},
		{"live heap above the limit keeps half of it of room", 256 * mib, 256 * mib, 400 * mib, 600 * mib},
		{"a large live heap keeps half of it of room", 256 * mib, 256 * mib, 1000 * mib, 1500 * mib},
		{"half the limit of room while that is more than half the live heap", 1024 * mib, 1024 * mib, 900 * mib, 1412 * mib},
		{"a raised limit follows the live heap up", 1024 * mib, 1200 * mib, 900 * mib, 1412 * mib},
		{"a small drop does not lower it", 1024 * mib, 1500 * mib, 900 * mib, 1500 * mib},
		{"a large drop lowers it", 256 * mib, 528 * mib, 180 * mib, 308 * mib},
		{"never below the configured limit", 256 * mib, 384 * mib, 10 * mib, 256 * mib},
	} {
		if got := memoryLimitFor(tc.configured, tc.current, tc.live); got != tc.want {
			t.Errorf("%s: memoryLimitFor(%d, %d, %d MiB live) = %d MiB, want %d MiB", tc.name,
				tc.configured/mib, tc.current/mib, tc.live/mib, got/mib, tc.want/mib)
		}
	}
}

// TestGuardLooksAfterEachCollection checks that the guard raises the
// limit as soon as a collection finds the live heap near it, not at its
// next periodic look (an hour away here): between two looks a limit the
// live heap has reached makes the collector run back to back.
func TestGuardLooksAfterEachCollection(t *testing.T) {
	const mib = 1 << 20
	saved := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(saved)
	savedInterval := limitCheckInterval
	limitCheckInterval = time.Hour
	defer func() { limitCheckInterval = savedInterval }()

	const configured = 16 // MiB
	debug.SetMemoryLimit(configured * mib)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		guardMemoryLimit(ctx, configured, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		<-done
	}()

	live := make([]byte, 64*mib) // four times the configured limit
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 64*mib {
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d MiB 10 s after collections found %d MiB live; want it raised above the live heap",
				debug.SetMemoryLimit(-1)/mib, len(live)/mib)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
}
