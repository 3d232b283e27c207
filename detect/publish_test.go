package detect

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/ledger"
)

// heldAppendLog is a ledger whose appends wait until release is closed or
// their context ends (a log slow to commit), telling held when the first
// one starts waiting.
type heldAppendLog struct {
	*ledger.Ledger
	release chan struct{}
	held    chan struct{}
	once    *sync.Once
}

func newHeldAppendLog(l *ledger.Ledger) heldAppendLog {
	return heldAppendLog{Ledger: l, release: make(chan struct{}), held: make(chan struct{}), once: &sync.Once{}}
}

func (h heldAppendLog) Append(ctx context.Context, entries ...ledger.Entry) ([]ledger.Result, error) {
	h.once.Do(func() { close(h.held) })
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Ledger.Append(ctx, entries...)
}

// waitProcessed waits until the detector's engine has seen n leaves.
func waitProcessed(t *testing.T, d *Detector, n uint64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.processed.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the detector processed %d leaves in 10 s, want %d", what, d.processed.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDetectorGoesOnWhileAlertsCommit: while the log commits an alert,
// the detector goes on with the leaves after it, and the alerts they raise
// go out once the log is done with the first.
func TestDetectorGoesOnWhileAlertsCommit(t *testing.T) {
	l := newTestLedger(t)
	log := newHeldAppendLog(l)
	e := compileYAML(t, detectorRules, Config{})
	d, err := OpenDetector(bg, DetectorConfig{Log: log, Engine: e, Dir: t.TempDir(), BadgerOptions: smallBadger, SaveInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := startDetector(t, d)
	defer stop()
	appendEvents(t, l, bursts(t, 1)) // an alert, held by the log
	select {
	case <-log.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert appended within 10 s")
	}
	appendEvents(t, l, bursts(t, 3)[7:]) // two more bursts, two more alerts
	size, _ := l.Size()
	waitProcessed(t, d, size, "with an alert being committed")
	close(log.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := d.Alerts(bg, AlertQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Alerts) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts indexed 10 s after the log let them through, want 3", len(page.Alerts))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDetectorStopsWithAnAlertInFlight: an alert whose append the
// detector's stop interrupted is appended by the stop's final flush,
// before the state that covers its leaves is saved.
func TestDetectorStopsWithAnAlertInFlight(t *testing.T) {
	l := newTestLedger(t)
	log := newHeldAppendLog(l)
	e := compileYAML(t, detectorRules, Config{})
	dir := t.TempDir()
	d, err := OpenDetector(bg, DetectorConfig{Log: log, Engine: e, Dir: dir, BadgerOptions: smallBadger, SaveInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	appendEvents(t, l, bursts(t, 1))
	select {
	case <-log.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert appended within 10 s")
	}
	events, _ := l.Size()
	waitProcessed(t, d, events, "before the stop")
	cancel()
	time.AfterFunc(100*time.Millisecond, func() { close(log.release) })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of its stop")
	}
	if got := d.Cursor(); got != events {
		t.Errorf("saved cursor %d, want %d", got, events)
	}
	if size, _ := l.Size(); size != events+1 {
		t.Errorf("log size %d after the stop, want %d: the %d events and their alert", size, events+1, events)
	}
	page, err := d.Alerts(bg, AlertQuery{})
	if err != nil || len(page.Alerts) != 1 {
		t.Errorf("Alerts() = %d alerts, %v; want 1", len(page.Alerts), err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
}
