package main

import (
	"runtime"
	"testing"
)

// TestRaiseMaxProcs: serve raises the scheduler's Ps to minProcs on a
// small machine, never lowers them, and leaves them alone when
// GOMAXPROCS is set.
func TestRaiseMaxProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		before int
		env    string
		want   int
	}{
		{before: 1, want: minProcs},
		{before: 2, want: minProcs},
		{before: 2, env: "2", want: 2},
		{before: minProcs + 4, want: minProcs + 4},
	} {
		runtime.GOMAXPROCS(tc.before)
		getenv := func(k string) string {
			if k == "GOMAXPROCS" {
				return tc.env
			}
			return ""
		}
		if got := raiseMaxProcs(getenv); got != tc.want || runtime.GOMAXPROCS(0) != tc.want {
			t.Errorf("with %d Ps and GOMAXPROCS=%q: raiseMaxProcs() = %d, scheduler has %d; want %d",
				tc.before, tc.env, got, runtime.GOMAXPROCS(0), tc.want)
		}
	}
}
