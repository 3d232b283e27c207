package detect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	done, stop := startDetector(t, d)
	appendEvents(t, l, evs)
	waitCursor(t, d, l)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after a failed read; want it to retry", err)
	default:
	}
	stop()
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

// TestDetectorRetriesAFailedSave: a save of the state that fails does not
// stop detection either. Alerts still go out; the saved cursor stays
// where it was until a save succeeds, which the detector tries again
// after a pause; the failures are counted. Once storage works again the
// state is saved (a snapshot: the failed saves took the engine's changes
// with them), and a detector opened on it resumes at the log's end with
// the same alerts.
func TestDetectorRetriesAFailedSave(t *testing.T) {
	evs := bursts(t, 4)
	want := uninterruptedAlerts(t, evs)

	l := newTestLedger(t)
	dir := t.TempDir()
	e := compileYAML(t, detectorRules, Config{})
	d, err := OpenDetector(bg, DetectorConfig{Log: l, Engine: e, Dir: dir, BadgerOptions: smallBadger, SaveInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A file where the state directory was: every save fails.
	stateDir := filepath.Join(dir, stateDirName)
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	done, stop := startDetector(t, d)
	appendEvents(t, l, evs)

	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(d.metrics.saveFailures) < 3 || len(alertLeaves(t, l)) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %v failed saves, %d of %d alerts", testutil.ToFloat64(d.metrics.saveFailures), len(alertLeaves(t, l)), len(want))
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v after a failed save; want it to go on", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if c := d.Cursor(); c != 0 {
		t.Errorf("saved cursor %d with every save failing, want 0", c)
	}

	// Storage works again: the next retry saves.
	if err := os.Remove(stateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, d, l)
	stop()
	if got := alertLeaves(t, l); !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v (as without the failures)", got, want)
	}

	d2, err := OpenDetector(bg, DetectorConfig{Log: l, Engine: compileYAML(t, detectorRules, Config{}), Dir: dir, BadgerOptions: smallBadger})
	if err != nil {
		t.Fatalf("OpenDetector after the failures: %v", err)
	}
	defer d2.Close()
	if size, _ := l.Size(); d2.Cursor() != size {
		t.Errorf("reopened at cursor %d, want the log's size %d", d2.Cursor(), size)
	}
}

// failingAppendLog is a ledger whose appends fail: the log has stopped
// taking entries (a storage fault).
type failingAppendLog struct{ *ledger.Ledger }

var errAppendsFail = errors.New("injected: appends fail")

func (failingAppendLog) Append(context.Context, ...ledger.Entry) ([]ledger.Result, error) {
	return nil, errAppendsFail
}

// TestDetectorStopsWhenAlertsCannotBeAppended: when the log refuses the
// alerts, Run returns the error (it cannot go on without losing them), and
// returns promptly, with the log still open and idle: its follower is
// stopped, not waited for.
func TestDetectorStopsWhenAlertsCannotBeAppended(t *testing.T) {
	l := newTestLedger(t)
	e := compileYAML(t, detectorRules, Config{})
	d, err := OpenDetector(bg, DetectorConfig{Log: failingAppendLog{l}, Engine: e, Dir: t.TempDir(), BadgerOptions: smallBadger, SaveInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(bg) }()
	appendEvents(t, l, bursts(t, 1)) // one burst: an alert to append
	select {
	case err := <-done:
		if !errors.Is(err, errAppendsFail) {
			t.Errorf("Run = %v, want the append error", err)
		}
	case <-time.After(10 * time.Second):
		// Close would wait for Run: leave the detector as it is.
		t.Fatal("Run did not return within 10 s of its alerts failing to append")
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
}
