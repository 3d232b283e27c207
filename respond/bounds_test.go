package respond

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// metricValue returns the value of the gauge or counter name with the
// given responder label in reg (none if responder is ""), and whether
// there is one.
func metricValue(t *testing.T, reg *prometheus.Registry, name, responder string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			label := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "responder" {
					label = lp.GetValue()
				}
			}
			if label != responder {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// wantMetric checks the value of a responder's metric.
func wantMetric(t *testing.T, reg *prometheus.Registry, name, responder string, want float64) {
	t.Helper()
	if got, ok := metricValue(t, reg, name, responder); !ok || got != want {
		t.Errorf("%s{responder=%q} = %v (present: %v), want %v", name, responder, got, ok, want)
	}
}

// TestDeliveryCountsAcrossRestart: the queued messages and dead letters
// of each responder are counted at Open from what is stored, and kept
// as messages come and go (Redeliver); GET /v1/responders and the
// metrics read those counts (the dead letters were counted by a scan of
// the list at each request, and had no metric).
func TestDeliveryCountsAcrossRestart(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	// Group a's alert is dead-lettered, group b's waits for a retry.
	down := newOrderSender(func(m *Message, _ int) Outcome {
		if m.Alert.Group[0].Value == "a" {
			return Outcome{Err: errors.New("400"), Status: 400, Permanent: true}
		}
		return Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 3 * time.Hour}
	})
	hooks := []ResponderConfig{{Name: "hook", Type: TypeWebhook}}
	s, stop := runService(t, Config{Log: l, Dir: dir, Delivery: d, Responders: hooks, Senders: map[string]Sender{"hook": down}})
	appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	waitFor(t, "a dead letter and a message waiting", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Dead == 1 && st[0].Queued == 1
	})
	stop()

	reg := prometheus.NewRegistry()
	s, err := Open(bg, Config{Log: l, Dir: dir, Delivery: d, BadgerOptions: smallBadger, Registerer: reg,
		Responders: hooks, Senders: map[string]Sender{"hook": newOrderSender(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(when string, queued, dead int) {
		t.Helper()
		st, err := s.Responders(bg)
		if err != nil || st[0].Queued != queued || st[0].Dead != dead {
			t.Errorf("%s: Responders() = %+v, %v; want %d queued, %d dead letters", when, st, err, queued, dead)
		}
		wantMetric(t, reg, "accessledger_delivery_responder_queue_depth", "hook", float64(queued))
		wantMetric(t, reg, "accessledger_delivery_responder_dead_letters", "hook", float64(dead))
	}
	check("after the restart", 1, 1)
	if n, err := s.Redeliver(bg, "hook", 0); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	check("after the redelivery", 2, 0)
}

// heldSender answers 429, retry in 3 hours, to every message: each stays
// in the outbox.
func heldSender() *orderSender {
	return newOrderSender(func(*Message, int) Outcome {
		return Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 3 * time.Hour}
	})
}

// TestQueueFullDeadLettersAtOnce: with delivery.max_queued messages in a
// responder's outbox, a new message goes straight to its dead-letter
// list, unsent, given up for a full queue: recorded as dead_lettered in
// the log, counted, shown by Responders, and logged once a minute at
// most. The outbox grew without bound while the responder was down.
func TestQueueFullDeadLettersAtOnce(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	d.MaxQueued = 2
	reg := prometheus.NewRegistry()
	var logged bytes.Buffer
	down := heldSender()
	s, stop := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d, Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(&logged, nil)),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": down}})
	status := func() ResponderStatus {
		st, err := s.Responders(bg)
		if err != nil {
			t.Fatal(err)
		}
		return st[0]
	}
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	waitFor(t, "the outbox full", func() bool { return status().Queued == 2 })
	// One at a time: each is dead-lettered by a commit of its own.
	for i := range 4 {
		idx = append(idx, appendAlerts(t, l, testAlert("r1", "high", fmt.Sprintf("c%d", i), 3+i))...)
		waitFor(t, "a dead letter", func() bool { return status().Dead == i+1 })
	}
	if st := status(); st.Queued != 2 || st.Dead != 4 || st.MaxQueued != 2 || st.QueueFull != 4 {
		t.Errorf("Responders() = %+v; want 2 queued of at most 2, 4 dead letters, 4 dead-lettered for a full queue", st)
	}
	dead, err := s.DeadLetters(bg, "hook", 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, dl := range dead {
		if dl.Message.AlertIndex != idx[2+i] || dl.Attempts != 0 || !strings.HasPrefix(dl.LastError, "queue full: 2 messages wait") {
			t.Errorf("dead letter %d = alert %d, %d attempts, error %q; want alert %d, unsent, given up for a full queue",
				i, dl.Message.AlertIndex, dl.Attempts, dl.LastError, idx[2+i])
		}
	}
	if sent, _ := down.got(); len(sent) != 2 {
		t.Errorf("sent %d messages, want only the 2 queued", len(sent))
	}
	waitFor(t, "the dead-letterings recorded in the log", func() bool {
		n := 0
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDeadLettered && r.Responder == "hook" && r.Attempts == 0 && strings.HasPrefix(r.Error, "queue full") {
				n++
			}
		}
		return n == 4
	})
	wantMetric(t, reg, "accessledger_delivery_queue_full_total", "hook", 4)
	wantMetric(t, reg, "accessledger_delivery_dead_lettered_total", "hook", 4)
	wantMetric(t, reg, "accessledger_delivery_responder_queue_depth", "hook", 2)
	wantMetric(t, reg, "accessledger_delivery_max_queued", "", 2)
	stop()
	if n := strings.Count(logged.String(), "outbox is full"); n != 1 {
		t.Errorf("%d log lines about the full outbox in 4 commits, want 1 (at most one a minute):\n%s", n, logged.String())
	}
}

// TestQueueFullAcrossRestart: the outbox's count is restored at Open:
// after a restart, a full outbox still sends a new message to the
// dead-letter list.
func TestQueueFullAcrossRestart(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	d.MaxQueued = 2
	cfg := Config{Log: l, Dir: dir, Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": heldSender()}}
	s, stop := runService(t, cfg)
	appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2), testAlert("r1", "high", "c", 3))
	waitFor(t, "2 queued, 1 dead letter", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 2 && st[0].Dead == 1
	})
	stop()

	s, _ = runService(t, cfg)
	if st, err := s.Responders(bg); err != nil || st[0].Queued != 2 || st[0].Dead != 1 {
		t.Errorf("after the restart, Responders() = %+v, %v; want the 2 queued and the dead letter counted", st, err)
	}
	last := appendAlerts(t, l, testAlert("r1", "high", "d", 4))[0]
	waitFor(t, "the new alert dead-lettered", func() bool {
		dead, err := s.DeadLetters(bg, "hook", 10)
		return err == nil && len(dead) == 2 && dead[1].Message.AlertIndex == last
	})
	if st, err := s.Responders(bg); err != nil || st[0].Queued != 2 || st[0].Dead != 2 {
		t.Errorf("Responders() = %+v, %v; want 2 queued, 2 dead letters", st, err)
	}
}

// gatedSender fails the alert.raised of group a's alerts while open is
// false, and delivers everything else.
func gatedSender(open *atomic.Bool) *orderSender {
	return newOrderSender(func(m *Message, _ int) Outcome {
		if m.Type == TypeAlertRaised && m.Alert.Group[0].Value == "a" && !open.Load() {
			return Outcome{Err: errors.New("503"), Status: 503}
		}
		return Outcome{Status: 202}
	})
}

// retrying retries every 50 ms, for long.
func retrying(maxQueued int) DeliveryConfig {
	return DeliveryConfig{Schedule: []time.Duration{0, 50 * time.Millisecond}, MaxAttempts: 1000, Timeout: time.Second, MaxQueued: maxQueued}
}

// TestQueueFullResolutionQueuedBehindItsAlert: with the outbox full, an
// alert's resolution is still queued when the alert's alert.raised waits
// in it (a dead-lettered resolution would leave the receiver's incident
// open once the alert.raised went through), and goes after it; a new
// alert's alert.raised is not.
func TestQueueFullResolutionQueuedBehindItsAlert(t *testing.T) {
	l := newTestLedger(t)
	var open atomic.Bool
	pd := gatedSender(&open)
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: retrying(1),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	x := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	raisedID := wantMessageID(t, l, AlertID(x))
	waitFor(t, "the alert.raised failing", func() bool { return pd.attempts(raisedID) >= 2 })
	if _, err := s.Respond(bg, x, event.ActionResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	w := appendAlerts(t, l, testAlert("r1", "high", "b", 2))[0]
	waitFor(t, "the resolution queued and the new alert dead-lettered", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 2 && st[0].Dead == 1
	})
	if dead, err := s.DeadLetters(bg, "pd", 10); err != nil || len(dead) != 1 || dead[0].Message.AlertIndex != w || dead[0].Message.Type != TypeAlertRaised {
		t.Errorf("dead letters %+v, %v; want alert %d's alert.raised", dead, err, w)
	}
	open.Store(true)
	waitFor(t, "the alert raised and resolved", func() bool { _, delivered := pd.got(); return len(delivered) == 2 })
	sent, delivered := pd.got()
	if want := []string{TypeAlertRaised, TypeAlertResolved}; !slices.Equal(types(delivered), want) {
		t.Errorf("delivered %s, want %s", types(delivered), want)
	}
	if n := len(sent) - 1; position(sent, x, TypeAlertResolved) != n {
		t.Errorf("sent %s: the resolution before the alert.raised was delivered", types(sent))
	}
}

// TestQueueFullDeadLetterHoldsNothingBack: an alert.raised dead-lettered
// for a full queue holds back none of its alert's later messages: once
// the outbox has room, the alert's resolution is delivered (as after any
// dead-lettering), not held for ever for a message never queued.
func TestQueueFullDeadLetterHoldsNothingBack(t *testing.T) {
	l := newTestLedger(t)
	var open atomic.Bool
	pd := gatedSender(&open)
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: retrying(1),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	x := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	waitFor(t, "the alert.raised failing", func() bool { return pd.attempts(wantMessageID(t, l, AlertID(x))) >= 1 })
	y := appendAlerts(t, l, testAlert("r1", "high", "b", 2))[0]
	waitFor(t, "the second alert dead-lettered", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Dead == 1
	})
	open.Store(true)
	waitFor(t, "the outbox emptied", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 0
	})
	for _, action := range []string{event.ActionAcknowledged, event.ActionResolved} {
		if _, err := s.Respond(bg, y, action, "alice", ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the second alert's acknowledgement and resolution delivered", func() bool {
		_, delivered := pd.got()
		return position(delivered, y, TypeAlertResolved) >= 0
	})
	sent, delivered := pd.got()
	if position(sent, y, TypeAlertRaised) >= 0 {
		t.Errorf("sent %s: the dead-lettered alert.raised went out", types(sent))
	}
	if a, r := position(delivered, y, TypeAlertAcknowledged), position(delivered, y, TypeAlertResolved); a < 0 || a > r {
		t.Errorf("delivered %s: want the acknowledgement, then the resolution", types(delivered))
	}
}

// refusingSender refuses every message for good: each is dead-lettered
// at its first attempt.
func refusingSender() *orderSender {
	return newOrderSender(func(*Message, int) Outcome {
		return Outcome{Err: errors.New("400"), Status: 400, Permanent: true}
	})
}

// deadAlerts returns the alerts of r's dead letters, oldest first.
func deadAlerts(t *testing.T, s *Service, r string) []uint64 {
	t.Helper()
	dead, err := s.DeadLetters(bg, r, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, dl := range dead {
		out = append(out, dl.Message.AlertIndex)
	}
	return out
}

// countDeadLettered counts the dead_lettered leaves of responder r.
func countDeadLettered(leaves []*event.Response, r string) int {
	n := 0
	for _, resp := range leaves {
		if resp.Action == event.ActionDeadLettered && resp.Responder == r {
			n++
		}
	}
	return n
}

// TestDeadLettersBoundDropsOldest: past delivery.max_dead_letters, a new
// dead letter deletes the oldest; each dead-lettering stays a leaf of
// the log; the deletions are counted, shown by Responders and logged
// once a minute at most. The list grew without bound.
func TestDeadLettersBoundDropsOldest(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.MaxDeadLetters = 2
	reg := prometheus.NewRegistry()
	var logged bytes.Buffer
	// One worker: each dead-lettering, and each deletion, comes after
	// the one before.
	s, stop := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d, Registerer: reg, Workers: 1,
		Logger:     slog.New(slog.NewTextHandler(&logged, nil)),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": refusingSender()}})
	var alerts []*event.Alert
	for i := range 5 {
		alerts = append(alerts, testAlert("r1", "high", fmt.Sprintf("g%d", i), i))
	}
	idx := appendAlerts(t, l, alerts...)
	waitFor(t, "5 dead-letterings", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].DeadDropped == 3
	})
	if st, _ := s.Responders(bg); st[0].Dead != 2 || st[0].DeadDropped != 3 || st[0].MaxDeadLetters != 2 {
		t.Errorf("Responders() = %+v; want 2 dead letters of at most 2, 3 deleted", st[0])
	}
	if got, want := deadAlerts(t, s, "hook"), idx[3:]; !slices.Equal(got, want) {
		t.Errorf("dead letters of alerts %v, want the newest, %v", got, want)
	}
	waitFor(t, "the 5 dead-letterings recorded in the log", func() bool {
		return countDeadLettered(responseLeaves(t, l), "hook") == 5
	})
	wantMetric(t, reg, "accessledger_delivery_dead_letters_dropped_total", "hook", 3)
	wantMetric(t, reg, "accessledger_delivery_dead_lettered_total", "hook", 5)
	wantMetric(t, reg, "accessledger_delivery_responder_dead_letters", "hook", 2)
	wantMetric(t, reg, "accessledger_delivery_max_dead_letters", "", 2)
	stop()
	if n := strings.Count(logged.String(), "dead-letter list is full"); n != 1 {
		t.Errorf("%d log lines about the full dead-letter list for 3 deletions, want 1 (at most one a minute):\n%s", n, logged.String())
	}
}

// TestDeadLettersBoundAcrossRestart: the dead letters are counted at
// Open, and a list over the bound (lowered since) loses its oldest
// then; the bound holds for the dead letters that follow.
func TestDeadLettersBoundAcrossRestart(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.MaxDeadLetters = 5
	cfg := Config{Log: l, Dir: dir, Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": refusingSender()}}
	s, stop := runService(t, cfg)
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2), testAlert("r1", "high", "c", 3))
	waitFor(t, "3 dead letters", func() bool { return len(deadAlerts(t, s, "hook")) == 3 })
	stop()

	cfg.Delivery.MaxDeadLetters = 1
	s, _ = runService(t, cfg)
	if st, err := s.Responders(bg); err != nil || st[0].Dead != 1 || st[0].DeadDropped != 2 {
		t.Errorf("after a restart with max_dead_letters 1, Responders() = %+v, %v; want 1 dead letter, 2 deleted", st, err)
	}
	if got := deadAlerts(t, s, "hook"); !slices.Equal(got, idx[2:]) {
		t.Errorf("dead letters of alerts %v, want the newest, %v", got, idx[2:])
	}
	last := appendAlerts(t, l, testAlert("r1", "high", "d", 4))[0]
	waitFor(t, "the new dead letter, in place of the old", func() bool {
		got := deadAlerts(t, s, "hook")
		return len(got) == 1 && got[0] == last
	})
	if st, err := s.Responders(bg); err != nil || st[0].Dead != 1 || st[0].DeadDropped != 3 {
		t.Errorf("Responders() = %+v, %v; want 1 dead letter, 3 deleted", st, err)
	}
}

// TestDeliveryBoundsUnderLoad: a responder whose outbox is full and
// whose every attempt fails for good, with messages dead-lettered both
// by its workers and for a full queue, ends with its dead letters at the
// bound, counted as stored, the newest kept, and every dead-lettering in
// the log.
func TestDeliveryBoundsUnderLoad(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.MaxQueued, d.MaxDeadLetters = 3, 5
	refuse := refusingSender()
	slow := refuse.answer
	refuse.answer = func(m *Message, attempt int) Outcome {
		time.Sleep(20 * time.Millisecond)
		return slow(m, attempt)
	}
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": refuse}})
	var idx []uint64
	for i := range 50 {
		idx = append(idx, appendAlerts(t, l, testAlert("r1", "high", fmt.Sprintf("g%d", i), i))...)
	}
	// Each deletion follows the commit that added the dead letters: the
	// list is over its bound for that moment.
	waitFor(t, "every alert dead-lettered, the oldest deleted", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 0 && st[0].Dead == 5 && st[0].DeadDropped == 45
	})
	st, _ := s.Responders(bg)
	if stored := countKeys(t, s.db, "x/hook\x00"); st[0].Dead != 5 || stored != 5 || st[0].QueueFull == 0 {
		t.Errorf("Responders() = %+v with %d dead letters stored; want 5 counted and stored, some dead-lettered for a full queue", st[0], stored)
	}
	if got := deadAlerts(t, s, "hook"); !slices.Equal(got, idx[45:]) {
		t.Errorf("dead letters of alerts %v, want the newest, %v", got, idx[45:])
	}
	waitFor(t, "the 50 dead-letterings recorded in the log", func() bool {
		return countDeadLettered(responseLeaves(t, l), "hook") == 50
	})
}

// TestQueueFullBoundsDeadLettersToo: the messages dead-lettered for a
// full queue count against delivery.max_dead_letters like the others,
// with no delivery attempt to trim after.
func TestQueueFullBoundsDeadLettersToo(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	d.MaxQueued, d.MaxDeadLetters = 1, 2
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": heldSender()}})
	var idx []uint64
	for i := range 5 {
		idx = append(idx, appendAlerts(t, l, testAlert("r1", "high", fmt.Sprintf("g%d", i), i))...)
	}
	waitFor(t, "4 dead-lettered for a full queue", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].QueueFull == 4
	})
	waitFor(t, "the oldest 2 deleted", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].DeadDropped == 2
	})
	if st, _ := s.Responders(bg); st[0].Queued != 1 || st[0].Dead != 2 {
		t.Errorf("Responders() = %+v; want 1 queued, 2 dead letters", st[0])
	}
	if got := deadAlerts(t, s, "hook"); !slices.Equal(got, idx[3:]) {
		t.Errorf("dead letters of alerts %v, want the newest, %v", got, idx[3:])
	}
}

// TestQueueFullResolutionInTheSameBatch: an alert and its resolution
// processed in one transaction, with room for the alert only: the
// resolution is queued behind the alert.raised that transaction queued.
func TestQueueFullResolutionInTheSameBatch(t *testing.T) {
	l := newTestLedger(t)
	// Both leaves are in the log before the service starts: its first
	// batch holds them.
	x := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	leaf, err := event.EncodeResponseLeaf(&event.Response{Action: event.ActionResolved, Time: time.Now(), Alert: &x, By: "alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(bg, ledger.Entry{Data: leaf}); err != nil {
		t.Fatal(err)
	}
	var open atomic.Bool
	pd := gatedSender(&open)
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: retrying(1),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	waitFor(t, "the alert.raised and its resolution queued", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 2
	})
	if st, _ := s.Responders(bg); st[0].Dead != 0 {
		t.Errorf("Responders() = %+v; want nothing dead-lettered", st[0])
	}
	open.Store(true)
	waitFor(t, "the alert raised and resolved", func() bool { _, delivered := pd.got(); return len(delivered) == 2 })
	if _, delivered := pd.got(); !slices.Equal(types(delivered), []string{TypeAlertRaised, TypeAlertResolved}) {
		t.Errorf("delivered %s", types(delivered))
	}
}
