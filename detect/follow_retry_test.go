package detect

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// TestDetectorRetriesAFailedRead: a read of the log that fails does not
// stop detection. The detector follows again from the leaf after the last
// one it processed, with its state, so an alert whose evidence spans the
// failure is raised once, as in a run without it; the retries are counted.
func TestDetectorRetriesAFailedRead(t *testing.T) {
	defer func(r ledger.Retry) { followRetry = r }(followRetry)
	followRetry = ledger.Retry{Min: time.Millisecond, Max: 4 * time.Millisecond}

	evs := bursts(t, 3)
	want := uninterruptedAlerts(t, evs)

	l := newTestLedger(t)
	// Leaf 3 is the fourth failed login of the first burst: the alert
	// needs leaves on both sides of the failure.
	fl := &ledgertest.FlakyLog{Ledger: l, FailAt: 3}
	fl.Failures.Store(3)
	e := compileYAML(t, detectorRules, Config{})
	d, err := OpenDetector(bg, DetectorConfig{Log: fl, Engine: e, Dir: t.TempDir(), BadgerOptions: smallBadger, SaveInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	appendEvents(t, l, evs)
	waitCursor(t, d, l)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after a failed read; want it to retry", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	if got := alertLeaves(t, l); !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v (as without the failure)", got, want)
	}
	if n := fl.Follows.Load(); n != 4 {
		t.Errorf("Follow called %d times, want 4 (the first and three retries)", n)
	}
	if v := testutil.ToFloat64(d.metrics.followErrors); v != 3 {
		t.Errorf("accessledger_detect_follow_errors_total = %v, want 3", v)
	}
}
