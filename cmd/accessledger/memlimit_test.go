package main

import (
	"context"
	"log/slog"
	"math"
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

// TestGuardReturnsIdleGarbage checks that the guard collects what a burst
// of allocation left once the server goes quiet, and returns the memory,
// instead of leaving it in RSS until the runtime's forced collection
// minutes later; and that it leaves a server that stays quiet alone.
func TestGuardReturnsIdleGarbage(t *testing.T) {
	const mib = 1 << 20
	savedLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(savedLimit)
	savedInterval := limitCheckInterval
	limitCheckInterval = 50 * time.Millisecond
	defer func() { limitCheckInterval = savedInterval }()
	// No collection of the runtime's own: only the guard's would run.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	runtime.GC()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		guardMemoryLimit(ctx, 256, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		<-done
	}()

	var quiet runtime.MemStats
	runtime.ReadMemStats(&quiet)
	time.Sleep(20 * limitCheckInterval)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumGC != quiet.NumGC {
		t.Fatalf("%d collections in 20 intervals of a quiet process, want none", after.NumGC-quiet.NumGC)
	}

	garbage := make([][]byte, 0, 128)
	for range 128 {
		garbage = append(garbage, make([]byte, mib))
	}
	for _, b := range garbage {
		b[0] = 1
	}
	garbage = nil
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if before.HeapAlloc < 128*mib {
		t.Fatalf("heap holds %d MiB after 128 MiB of garbage, want at least that", before.HeapAlloc/mib)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		if now.NumGC > before.NumGC && now.HeapAlloc < before.HeapAlloc-100*mib && now.HeapReleased >= before.HeapReleased+100*mib {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after a burst of 128 MiB of garbage: %d collections (want more than %d), heap %d MiB (was %d), released %d MiB (was %d)",
				now.NumGC, before.NumGC, now.HeapAlloc/mib, before.HeapAlloc/mib, now.HeapReleased/mib, before.HeapReleased/mib)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
