package respond

import (
	"testing"
	"time"
)

// TestFollowGathersAlertsWithinGap: the first alert after a quiet spell is
// handled at once; alerts that follow within minFlushGap of that save
// wait for the gap to end and are then saved together, by the gap's
// timer alone (the periodic save is switched off here), and none is lost.
func TestFollowGathersAlertsWithinGap(t *testing.T) {
	// Restored by a cleanup registered before the service's, so after
	// the service has stopped reading them.
	oldGap, oldTick := minFlushGap, followTick
	t.Cleanup(func() { minFlushGap, followTick = oldGap, oldTick })
	const gap = 400 * time.Millisecond
	minFlushGap, followTick = gap, time.Hour

	l := newTestLedger(t)
	f := newFakeSender()
	runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})

	t0 := time.Now()
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.1", 0))
	waitFor(t, "the first alert delivered", func() bool { return len(f.delivered()) == 1 })
	// Five more, each in a commit of its own.
	for i := 1; i <= 5; i++ {
		appendAlerts(t, l, testAlert("r1", "high", "203.0.113.1", i))
	}
	time.Sleep(gap / 4)
	// The first save happened after t0, so none can happen before t0+gap;
	// checked only if this goroutine got here in time.
	if time.Since(t0) < gap {
		if n := len(f.delivered()); n != 1 {
			t.Errorf("%d alerts delivered within the gap after the first save; want 1 (the rest wait for the gap)", n)
		}
	}
	waitFor(t, "every alert delivered", func() bool { return len(f.delivered()) == 6 })
	if d := time.Since(t0); d < gap {
		t.Errorf("the five later alerts were delivered %v after the first was appended; want no sooner than the gap (%v)", d, gap)
	}
}
