package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The soft memory limit (memory_limit_mib) is there to bound garbage: the
// collector works harder as the heap nears it, so bursts of large requests
// do not grow the process. It cannot bound live data. When the live heap
// itself (the detector's state, the storage engines' memtables and table
// builders) nears the limit, the collector runs without pause, even on an
// idle server: a measured server with 300 MB live under a 256 MiB limit
// spent 1.5 cores on collection with no request in flight, and ingest
// halved. The guard watches the live heap and keeps the limit at least
// half the configured limit, or half the live heap if that is more, above
// it, and says in the log (once) that the configured limit is too small
// for the state the server holds.
//
// An earlier guard stopped at 3/2 of the configured limit. Under 10
// minutes of sustained load the live heap grew past that cap (Badger's
// memtables and pooled table builders alone hold 150-250 MB), the
// collector ran 7 times a second and took 40 % of the server's CPU, and
// throughput fell below 80 % of its median. The state is bounded on its
// own (max_groups, memtable and cache sizes); what the limit bounds is the
// garbage on top of it. The price: a million-event fill peaks above the
// 512 MiB of RSS that the capped guard kept it under, when the followers
// catch up after the load (507-559 MiB; 437-515 during the load, with the
// smaller memtables of ledger/storage.go and ledger/index/index.go). Most
// of the live heap then is Badger's pooled table-builder buffers, one
// pool per database (BENCHMARKS.md, "Late afternoon session").
//
// Room of a fixed size (half the configured limit) was not enough either.
// The detector's state grows with the entities it watches: after 3 M
// single events the live heap was 900 MB, 128 MiB of room made the
// collector run 2.5 times a second, each cycle costing more as the state
// grew (a seventh of the two cores' time by the fifth minute), and
// throughput fell 13 % over five minutes. With room of half the live heap (what
// GOGC=50 gives) it held flat, at 10 % less CPU per request, for 50 %
// more RSS (BENCHMARKS.md, "Morning session").
//
// The guard looks after every collection: that is when the live heap
// changes, and when a limit set too tight starts to cost. It looked once
// a second before, and a storage engine's burst of allocation (a
// memtable flush's table buffers) raised the live heap to the limit
// between two looks: the collector then ran back to back, 19-24 cycles in
// under a second, at the half of the processors the runtime lets it take
// near the limit, and a server paced at 8,000 req/s answered at a third
// of that for the rest of the second (BENCHMARKS.md, "The slow seconds
// were the collector against the memory limit").
//
// After a burst the guard also hands garbage back to the system. An idle
// server allocates nothing, so nothing starts a collection, and what a
// burst left stays in RSS until the runtime's forced collection two
// minutes later: a server that had just taken a million events held
// 680 MiB for those two minutes, and 316 MiB after (BENCHMARKS.md, "Memory
// after a burst"). Much of it is the storage engines' pooled table
// buffers, which their pools drop one at a time, every 2 s, once unused:
// live at the burst's last collection, garbage a few seconds later, and
// invisible to any count short of a collection. So at each of the first
// quietTicks intervals in which the server allocates less than burstBytes,
// after one in which it allocated more, the guard collects and returns the
// memory. A server that stays idle, or busy, is never collected by it.
var limitCheckInterval = 10 * time.Second

// burstBytes is the allocation in one limitCheckInterval above which the
// guard counts the server as busy, and quietTicks the number of quiet
// intervals after a busy one at whose end it collects.
const (
	burstBytes = 64 << 20
	quietTicks = 2
)

// guardMemoryLimit runs until ctx ends, raising the soft memory limit
// (configured in MiB) when the live heap grows past half of it. It looks
// after every garbage collection, and every limitCheckInterval.
func guardMemoryLimit(ctx context.Context, configuredMiB int64, log *slog.Logger) {
	configured := configuredMiB << 20
	current := configured
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	collected := notifyEachGC(ctx)
	t := time.NewTicker(limitCheckInterval)
	defer t.Stop()
	warned := false
	var allocated uint64 // by the last tick
	if metrics.Read(sample); sample[1].Value.Kind() == metrics.KindUint64 {
		allocated = sample[1].Value.Uint64()
	}
	quiet := quietTicks // quiet intervals since the last busy one
	for {
		tick := false
		select {
		case <-ctx.Done():
			return
		case <-collected:
		case <-t.C:
			tick = true
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return // the runtime does not report it: nothing to guard with
		}
		if tick && sample[1].Value.Kind() == metrics.KindUint64 {
			now := sample[1].Value.Uint64()
			busy := now-allocated >= burstBytes
			allocated = now
			if busy {
				quiet = 0
			} else if quiet < quietTicks {
				quiet++
				// The collection this forces wakes the loop through
				// collected, which then looks at the new live heap.
				debug.FreeOSMemory()
				log.Debug("collected what a burst left and returned it to the system", "live_heap_mib_before", sample[0].Value.Uint64()>>20)
				continue
			}
		}
		next := memoryLimitFor(configured, current, int64(sample[0].Value.Uint64()))
		if next == current {
			continue
		}
		debug.SetMemoryLimit(next)
		if next > current && !warned {
			warned = true
			log.Warn("the live heap (detection state, storage buffers) is near memory_limit_mib: raising the soft limit above it, so that garbage collection does not run without pause; set memory_limit_mib to what the machine can give this server",
				"memory_limit_mib", configuredMiB, "live_heap_mib", sample[0].Value.Uint64()>>20, "raised_to_mib", next>>20)
		}
		current = next
	}
}

// notifyEachGC returns a channel that receives after each garbage
// collection (at most one pending), until ctx ends. The runtime has no
// such notification: a cleanup attached to an unreachable object runs
// once the collector has found it unreachable, and each one attaches the
// next.
func notifyEachGC(ctx context.Context) <-chan struct{} {
	c := make(chan struct{}, 1)
	var arm func()
	arm = func() {
		// Large enough not to share a tiny-allocator block, whose
		// cleanups can wait for its neighbours.
		sentinel := new([16]uint64)
		runtime.AddCleanup(sentinel, func(struct{}) {
			if ctx.Err() != nil {
				return
			}
			select {
			case c <- struct{}{}:
			default:
			}
			arm()
		}, struct{}{})
	}
	arm()
	return c
}

// memoryLimitFor returns the soft limit to use for a live heap of live
// bytes: the configured one while live stays below half of it, else live
// plus half the configured limit or half of live, whichever is more
// (never lowering the current one by less than a quarter, so that it does
// not flap).
func memoryLimitFor(configured, current, live int64) int64 {
	want := max(configured, live+max(configured, live)/2)
	if want >= current || want < current*3/4 {
		return want
	}
	return current
}
