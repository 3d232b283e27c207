package main

import "runtime"

// minProcs is the fewest Ps (threads running Go code at once) serve asks
// the Go scheduler for, whatever the number of CPUs.
//
// On two cores the default (one P per core) makes goroutines wait for a P
// behind others for up to the scheduler's 10 ms time slice; the
// sequencer, which every append waits for, is one of them, and a thread
// stalled in a page fault of Badger's memory-mapped files keeps its P
// meanwhile (the runtime cannot see the fault). With four Ps the kernel
// interleaves the threads instead. Measured on two cores, interleaved
// (BENCHMARKS.md): p99 of single events at 64 clients lower in 11 of 11
// pairs, by up to 5 ms; throughput the same within the machine's noise.
const minProcs = 4

// raiseMaxProcs gives the scheduler at least minProcs Ps unless the
// GOMAXPROCS environment variable sets their number, and returns the
// number in use.
func raiseMaxProcs(getenv func(string) string) int {
	n := runtime.GOMAXPROCS(0)
	if getenv("GOMAXPROCS") != "" || n >= minProcs {
		return n
	}
	runtime.GOMAXPROCS(minProcs)
	return minProcs
}
