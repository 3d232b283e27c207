package respond

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestFirstAttemptWaitsTheSchedule: delivery.schedule is the delay before
// each attempt, the first one included (it was ignored: the first attempt
// came at once). An admin's redelivery of a dead letter goes now, not
// after the schedule's first delay.
func TestFirstAttemptWaitsTheSchedule(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender(Outcome{Err: errors.New("400"), Status: 400, Permanent: true}, Outcome{Status: 200})
	const first = 1500 * time.Millisecond
	d := fastDelivery()
	d.Schedule = []time.Duration{first, 20 * time.Millisecond}
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	t0 := time.Now()
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
	var dead []DeadLetter
	waitFor(t, "the first attempt, dead-lettered", func() bool {
		var err error
		dead, err = s.DeadLetters(bg, "hook", 10)
		return err == nil && len(dead) == 1
	})
	f.mu.Lock()
	times := slices.Clone(f.times)
	f.mu.Unlock()
	// The schedule's delays get up to ±10 % of jitter.
	if got := times[0].Sub(t0); got < first*9/10 {
		t.Fatalf("the first attempt came %v after the alert, want at least the schedule's first delay, %v (less its jitter)", got, first)
	}
	t1 := time.Now()
	if n, err := s.Redeliver(bg, "hook", dead[0].ID); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	waitFor(t, "the redelivery", func() bool { return len(f.delivered()) == 1 })
	f.mu.Lock()
	redelivered := f.times[len(f.times)-1]
	f.mu.Unlock()
	if got := redelivered.Sub(t1); got >= first*9/10 {
		t.Errorf("a redelivery came %v after the admin asked, want at once, not after the schedule's first delay %v", got, first)
	}
}
