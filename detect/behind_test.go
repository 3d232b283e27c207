package detect

import (
	"context"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// gatedLog is a real ledger whose Follow stops handing leaves on while
// its gate is shut: a detector over it falls behind on demand, as one
// does when the write path takes the CPU it needs.
type gatedLog struct {
	*ledger.Ledger
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGatedLog(l *ledger.Ledger) *gatedLog {
	g := &gatedLog{Ledger: l, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedLog) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *gatedLog) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gatedLog) Follow(ctx context.Context, from uint64) iter.Seq2[ledger.Leaf, error] {
	return func(yield func(ledger.Leaf, error) bool) {
		for lf, err := range g.Ledger.Follow(ctx, from) {
			g.mu.Lock()
			open := g.open
			g.mu.Unlock()
			select {
			case <-open:
			case <-ctx.Done():
				return
			}
			if !yield(lf, err) {
				return
			}
		}
	}
}

// logins returns n successful logins, which raise no alert.
func logins(t testing.TB, n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = success(t, time.Duration(i)*time.Second, "192.0.2.7", "u")
	}
	return evs
}

// waitBehind waits until d.Behind() is want, for at most 10 s.
func waitBehind(t *testing.T, d *Detector, want bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; {
		if d.Behind() == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("Behind() stayed %v for 10s", !want)
}

// TestDetectorBehind checks when a detector holds appends back: only
// while it runs, has caught up, lags the log by more than MaxLag, and
// is making progress; never before it has caught up, once it has stalled
// for stalledAfter, or after Run returns.
func TestDetectorBehind(t *testing.T) {
	defer func(d time.Duration) { stalledAfter = d }(stalledAfter)
	// Long enough that the checks of a detector held back (two synced
	// appends after its last progress) stay within it on a loaded
	// machine; short enough to wait for it once.
	stalledAfter = 5 * time.Second

	l := newTestLedger(t)
	g := newGatedLog(l)
	appendEvents(t, l, logins(t, 200))

	// Not running: a log far ahead never holds appends back.
	e := compileYAML(t, detectorRules, Config{})
	idle, err := OpenDetector(bg, DetectorConfig{Log: g, Engine: e, Dir: t.TempDir(), BadgerOptions: smallBadger, MaxLag: 50})
	if err != nil {
		t.Fatal(err)
	}
	if idle.Behind() {
		t.Error("Behind() before Run = true")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}

	d, stop := runDetectorWith(t, DetectorConfig{Log: g, Engine: compileYAML(t, detectorRules, Config{}), Dir: t.TempDir(), MaxLag: 50})
	stopped := false
	defer func() {
		if !stopped {
			g.reopen()
			stop()
		}
	}()
	waitCursor(t, d, l)
	if d.Behind() {
		t.Fatal("Behind() caught up = true")
	}

	// Within MaxLag: appends go on.
	g.shut()
	appendEvents(t, l, logins(t, 40))
	if d.Behind() {
		t.Fatal("Behind() 40 leaves behind, MaxLag 50 = true")
	}
	// Beyond it, while the detector has just been processing: held back.
	appendEvents(t, l, logins(t, 40))
	if !d.Behind() {
		size, _ := l.Size()
		t.Fatalf("Behind() 80 leaves behind, MaxLag 50 = false (cursor %d, log %d)", d.Status().Cursor, size)
	}
	// A detector that processes nothing for stalledAfter is stuck: it no
	// longer holds the log back (waitBehind fails after 10 s).
	waitBehind(t, d, false)
	if st := d.Status(); st.Cursor >= st.LogSize {
		t.Fatalf("detector caught up (cursor %d, log %d) with its gate shut", st.Cursor, st.LogSize)
	}

	// It catches up, and holds appends back again when it falls behind.
	g.reopen()
	waitCursor(t, d, l)
	if d.Behind() {
		t.Fatal("Behind() caught up again = true")
	}
	g.shut()
	appendEvents(t, l, logins(t, 80))
	if !d.Behind() {
		t.Fatal("Behind() 80 leaves behind after catching up again = false")
	}
	g.reopen()
	waitCursor(t, d, l)
	g.shut()
	appendEvents(t, l, logins(t, 80))

	// Run has returned: never, though the log is ahead.
	if !d.Behind() {
		t.Fatal("Behind() before stopping = false")
	}
	stop()
	stopped = true
	if d.Behind() {
		t.Fatal("Behind() after Run returned = true")
	}
}

// TestDetectorBehindUnbounded checks that MaxLag 0 never holds appends
// back.
func TestDetectorBehindUnbounded(t *testing.T) {
	l := newTestLedger(t)
	g := newGatedLog(l)
	d, stop := runDetectorWith(t, DetectorConfig{Log: g, Engine: compileYAML(t, detectorRules, Config{}), Dir: t.TempDir()})
	defer stop()
	appendEvents(t, l, logins(t, 10))
	waitCursor(t, d, l)
	g.shut()
	appendEvents(t, l, logins(t, 500))
	if d.Behind() {
		t.Fatal("Behind() with MaxLag 0 = true")
	}
	g.reopen()
}
