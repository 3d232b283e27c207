package respond

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
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

// orderSender answers each attempt with answer(message, its attempt
// number from 1) and records, in order, the messages it was sent (as
// each attempt begins: what the receiver sees) and those delivered.
type orderSender struct {
	mu        sync.Mutex
	answer    func(m *Message, attempt int) Outcome
	tries     map[string]int
	sent      []Message
	delivered []Message
}

func newOrderSender(answer func(m *Message, attempt int) Outcome) *orderSender {
	return &orderSender{answer: answer, tries: make(map[string]int)}
}

func (o *orderSender) Send(_ context.Context, m *Message) Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tries[m.ID]++
	o.sent = append(o.sent, *m)
	out := Outcome{Status: 200}
	if o.answer != nil {
		out = o.answer(m, o.tries[m.ID])
	}
	if out.Err == nil {
		o.delivered = append(o.delivered, *m)
	}
	return out
}

func (o *orderSender) attempts(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tries[id]
}

func (o *orderSender) got() (sent, delivered []Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sent), slices.Clone(o.delivered)
}

// position returns where the message of type typ about alert is in ms,
// -1 if it is not.
func position(ms []Message, alert uint64, typ string) int {
	return slices.IndexFunc(ms, func(m Message) bool { return m.AlertIndex == alert && m.Type == typ })
}

// TestAlertMessagesInOrder: an alert's alert.raised fails once and the
// alert is resolved while it waits for its retry: the receiver gets the
// alert.raised, then the resolution (it got the resolution first, and
// the retried trigger opened the PagerDuty incident again). Another
// alert's messages do not wait for it.
func TestAlertMessagesInOrder(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.Schedule = []time.Duration{0, 1500 * time.Millisecond}
	// The first alert's alert.raised fails once.
	pd := newOrderSender(func(m *Message, attempt int) Outcome {
		if m.Alert.DedupKey == "r1|a|1" && m.Type == TypeAlertRaised && attempt == 1 {
			return Outcome{Err: errors.New("500"), Status: 500}
		}
		return Outcome{Status: 202}
	})
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	first, other := idx[0], idx[1]
	raisedID := wantMessageID(t, l, AlertID(first))
	waitFor(t, "the first alert's failed attempt and the other's delivery", func() bool {
		_, delivered := pd.got()
		return pd.attempts(raisedID) == 1 && position(delivered, other, TypeAlertRaised) >= 0
	})
	rec, err := s.Respond(bg, first, event.ActionResolved, "alice", "blocked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Respond(bg, other, event.ActionResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both alerts raised and resolved", func() bool {
		_, delivered := pd.got()
		return len(delivered) == 4
	})
	sent, delivered := pd.got()
	if a, r := position(sent, first, TypeAlertRaised), position(sent, first, TypeAlertResolved); r < a {
		t.Errorf("sent %s: the resolution of alert %d before its alert.raised", types(sent), first)
	}
	if a, r := position(delivered, first, TypeAlertRaised), position(delivered, first, TypeAlertResolved); r < a {
		t.Errorf("delivered %s: the resolution of alert %d before its alert.raised", types(delivered), first)
	}
	// The other alert went on meanwhile: its resolution did not wait for
	// the first alert's retry.
	if a, r := position(delivered, first, TypeAlertRaised), position(delivered, other, TypeAlertResolved); r > a {
		t.Errorf("delivered %s: alert %d's resolution waited for alert %d's retry", types(delivered), other, first)
	}
	// The ids are the ones receivers deduplicate on, as before.
	if got, want := delivered[position(delivered, first, TypeAlertResolved)].ID, wantMessageID(t, l, fmt.Sprintf("%d_%d", first, rec.Index)); got != want {
		t.Errorf("resolution id %s, want %s", got, want)
	}
	if n := pd.attempts(raisedID); n != 2 {
		t.Errorf("alert.raised attempted %d times, want 2", n)
	}
}

// TestAlertMessagesInOrderAcrossRestart: the order holds when the
// service restarts while the alert.raised waits for its retry and the
// resolution waits for it: after the restart, both due, the resolution
// (due first) still waits.
func TestAlertMessagesInOrderAcrossRestart(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour}
	down := newOrderSender(func(m *Message, _ int) Outcome {
		if m.Type == TypeAlertRaised {
			return Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 3 * time.Hour}
		}
		return Outcome{Err: errors.New("500"), Status: 500}
	})
	s, stop := runService(t, Config{Log: l, Dir: dir, Delivery: d,
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": down}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	waitFor(t, "the failed alert.raised", func() bool { return down.attempts(wantMessageID(t, l, AlertID(idx))) == 1 })
	if _, err := s.Respond(bg, idx, event.ActionResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolution queued", func() bool {
		st, err := s.Responders(bg)
		return err == nil && st[0].Queued == 2
	})
	time.Sleep(200 * time.Millisecond) // an attempt of the resolution would be made by now
	if sent, _ := down.got(); len(sent) != 1 {
		t.Errorf("before the restart, sent %s; want only the alert.raised (the resolution waits for it)", types(sent))
	}
	stop()

	// Hours later: the alert.raised is due, and the resolution, queued
	// before its retry, is due first.
	later := func() time.Time { return time.Now().Add(4 * time.Hour) }
	up := newOrderSender(nil)
	_, _ = runService(t, Config{Log: l, Dir: dir, Delivery: d, Clock: later,
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": up}})
	waitFor(t, "both delivered", func() bool { _, delivered := up.got(); return len(delivered) == 2 })
	sent, delivered := up.got()
	want := []string{TypeAlertRaised, TypeAlertResolved}
	if !slices.Equal(types(sent), want) || !slices.Equal(types(delivered), want) {
		t.Errorf("after the restart, sent %s and delivered %s; want %s", types(sent), types(delivered), want)
	}
}

// TestLaterMessageGoesOnAfterDeadLetter: a resolution held for its
// alert.raised goes on once that one is dead-lettered (it does not wait
// for a redelivery no one may ask for), and is attempted only then.
func TestLaterMessageGoesOnAfterDeadLetter(t *testing.T) {
	l := newTestLedger(t)
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Second}
	pd := newOrderSender(func(m *Message, attempt int) Outcome {
		switch {
		case m.Type != TypeAlertRaised:
			return Outcome{Status: 202}
		case attempt == 1:
			return Outcome{Err: errors.New("500"), Status: 500}
		}
		return Outcome{Err: errors.New("400"), Status: 400, Permanent: true}
	})
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	waitFor(t, "the failed alert.raised", func() bool { return pd.attempts(wantMessageID(t, l, AlertID(idx))) == 1 })
	if _, err := s.Respond(bg, idx, event.ActionResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolution delivered", func() bool { _, delivered := pd.got(); return len(delivered) == 1 })
	sent, delivered := pd.got()
	if want := []string{TypeAlertRaised, TypeAlertRaised, TypeAlertResolved}; !slices.Equal(types(sent), want) {
		t.Errorf("sent %s, want %s: the resolution after the alert.raised was given up", types(sent), want)
	}
	if delivered[0].Type != TypeAlertResolved {
		t.Errorf("delivered %s", types(delivered))
	}
	if dead, err := s.DeadLetters(bg, "pd", 10); err != nil || len(dead) != 1 || dead[0].Message.Type != TypeAlertRaised {
		t.Errorf("dead letters %+v, %v; want the alert.raised", dead, err)
	}
}

func types(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Type
	}
	return out
}

// TestOrderKeysForAnOlderOutbox: messages queued by an earlier version,
// without order keys, get them when the service opens, so that a
// resolution queued after the upgrade still waits for them.
func TestOrderKeysForAnOlderOutbox(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	cfg := Config{Log: l, Dir: dir, BadgerOptions: smallBadger, Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": newOrderSender(nil)}}
	s, err := Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	raised := outboxRecord{Message: Message{ID: "7", Type: TypeAlertRaised, AlertIndex: 7}}
	digest := outboxRecord{Message: Message{ID: "digest_9", Type: TypeDigest}}
	err = s.db.Update(func(txn *badger.Txn) error {
		for i, rec := range []outboxRecord{raised, digest} {
			v, err := json.Marshal(&rec)
			if err != nil {
				return err
			}
			if err := txn.Set(responderKey(keyOutboxPfx, "pd", uint64(10+i)), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var keys [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyOrderPfx})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := orderKey("pd", &raised.Message, 10); len(keys) != 1 || !bytes.Equal(keys[0], want) {
		t.Errorf("order keys after opening %q, want only the alert.raised's, %q", keys, want)
	}
	resolved := &outboxRecord{Message: Message{ID: "7_12", Type: TypeAlertResolved, AlertIndex: 7}}
	if held, err := s.heldBack(s.byName["pd"], 13, resolved); err != nil || !held {
		t.Errorf("heldBack(a resolution of alert 7) = %v, %v; want held for the alert.raised queued before the upgrade", held, err)
	}
}

// TestThrottledAlertResolvedWhileHeld: a throttled responder's second
// alert of a group is held back; resolved meanwhile, its resolution goes
// out, and the end of the period sends no alert.raised after it, which
// would open the PagerDuty incident again, for good (found by review).
func TestThrottledAlertResolvedWhileHeld(t *testing.T) {
	l := newTestLedger(t)
	pd := newOrderSender(nil)
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty, Throttle: time.Second}},
		Senders:    map[string]Sender{"pd": pd}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "a", 2))
	second := idx[1]
	waitFor(t, "the first alert raised", func() bool { _, d := pd.got(); return len(d) == 1 })
	if _, err := s.Respond(bg, second, event.ActionResolved, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolution", func() bool { _, d := pd.got(); return position(d, second, TypeAlertResolved) >= 0 })
	// The period (1 s) ends, and the flusher (every second) has run.
	time.Sleep(2500 * time.Millisecond)
	_, d := pd.got()
	if a, r := position(d, second, TypeAlertRaised), position(d, second, TypeAlertResolved); a > r {
		t.Errorf("delivered %v: alert %d raised after its resolution: the incident opens again", types(d), second)
	}
}
