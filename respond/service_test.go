package respond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

func TestDeliveryRetriesUntilDelivered(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender(
		Outcome{Err: errors.New("connection refused")},
		Outcome{Err: errors.New("500"), Status: 500},
		Outcome{Err: errors.New("429"), Status: 429, RetryAfter: 300 * time.Millisecond},
		Outcome{Status: 200},
	)
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
	waitFor(t, "delivery", func() bool { return len(f.delivered()) == 1 })
	f.mu.Lock()
	attempts, times := f.attempts, slices.Clone(f.times)
	f.mu.Unlock()
	if attempts != 4 {
		t.Errorf("attempts = %d, want 4 (refused, 500, 429, 200)", attempts)
	}
	if gap := times[3].Sub(times[2]); gap < 300*time.Millisecond {
		t.Errorf("the attempt after 429 Retry-After 300ms came %v later", gap)
	}
	m := f.delivered()[0]
	if m.ID != wantMessageID(t, l, AlertID(idx[0])) || m.Type != TypeAlertRaised || m.Alert == nil || m.Alert.Rule.ID != "r1" || m.Count != 1 {
		t.Errorf("delivered %+v", m)
	}
	waitFor(t, "the delivered leaf", func() bool {
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDelivered && r.Responder == "hook" && r.Attempts == 4 && r.Message == m.ID && *r.Alert == idx[0] {
				return true
			}
		}
		return false
	})
}

// A receiver deduplicating on the message id, as Standard Webhooks
// advises, must not drop a second log's alert at the same index, nor a
// recreated log's: alert 0 of two logs has two ids.
func TestMessageIDsDifferAcrossLogs(t *testing.T) {
	var ids []string
	for range 2 {
		l := newTestLedger(t)
		f := newFakeSender(Outcome{Status: 200})
		_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
			Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
		idx := appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
		waitFor(t, "delivery", func() bool { return len(f.delivered()) == 1 })
		id := f.delivered()[0].ID
		if want := wantMessageID(t, l, AlertID(idx[0])); id != want || !strings.HasSuffix(id, "_0") || strings.Contains(id, ".") {
			t.Errorf("message id %q, want %q: the log's first leaf hash, then the alert id 0", id, want)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Errorf("alert 0 of two logs has one message id, %s", ids[0])
	}
}

func TestDeadLetterAndRedeliver(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender(Outcome{Err: errors.New("500"), Status: 500})
	d := fastDelivery()
	d.MaxAttempts = 3
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
	var dead []DeadLetter
	waitFor(t, "a dead letter", func() bool {
		var err error
		dead, err = s.DeadLetters(bg, "hook", 10)
		return err == nil && len(dead) == 1
	})
	if dead[0].Attempts != 3 || dead[0].LastStatus != 500 {
		t.Errorf("dead letter %+v, want 3 attempts, last status 500", dead[0])
	}
	waitFor(t, "the dead_lettered leaf", func() bool {
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDeadLettered && r.Attempts == 3 && r.Status == 500 {
				return true
			}
		}
		return false
	})
	// Redelivered, and given up again: its own leaf, which the log kept
	// as a duplicate of the first (the same action, responder and
	// message), so the second failure was in no record.
	f.mu.Lock()
	f.script = []Outcome{{Err: errors.New("503"), Status: 503}}
	f.attempts = 0
	f.mu.Unlock()
	if n, err := s.Redeliver(bg, "hook", dead[0].ID); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	waitFor(t, "the second dead_lettered leaf", func() bool {
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDeadLettered && r.Status == 503 {
				return true
			}
		}
		return false
	})
	dead, _ = s.DeadLetters(bg, "hook", 10)
	if len(dead) != 1 {
		t.Fatalf("dead letters after the second failure: %d, want 1", len(dead))
	}
	f.mu.Lock()
	f.script = []Outcome{{Status: 200}}
	f.attempts = 0
	f.mu.Unlock()
	if n, err := s.Redeliver(bg, "hook", dead[0].ID); err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	waitFor(t, "redelivery", func() bool { return len(f.delivered()) == 1 })
	if dead, _ := s.DeadLetters(bg, "hook", 10); len(dead) != 0 {
		t.Errorf("dead letters after redelivery: %d", len(dead))
	}
	if _, err := s.Redeliver(bg, "nobody", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Redeliver(unknown responder) = %v, want ErrNotFound", err)
	}
}

func TestGoneDisablesResponder(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender(Outcome{Err: errors.New("410"), Status: 410, Gone: true})
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
	waitFor(t, "disabling", func() bool {
		st, _ := s.Responders(bg)
		return len(st) == 1 && st[0].Disabled
	})
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.8", 2))
	waitFor(t, "the second alert queued", func() bool {
		st, _ := s.Responders(bg)
		return st[0].Queued == 2
	})
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	attempts := f.attempts
	f.script = []Outcome{{Status: 200}}
	f.mu.Unlock()
	if attempts != 1 {
		t.Errorf("%d attempts to a disabled responder, want 1", attempts)
	}
	if err := s.Enable(bg, "hook"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both delivered after enabling", func() bool { return len(f.delivered()) == 2 })
}

func TestFilterSelectsAlerts(t *testing.T) {
	l := newTestLedger(t)
	high, all := newFakeSender(), newFakeSender()
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{
			{Name: "high", Type: TypeWebhook, Filter: Filter{Levels: []string{"high", "critical"}, Tags: []string{"attack.t1110"}}},
			{Name: "all", Type: TypeWebhook},
		},
		Senders: map[string]Sender{"high": high, "all": all}})
	appendAlerts(t, l, testAlert("r1", "medium", "a", 1), testAlert("r2", "high", "b", 2), testAlert("r3", "critical", "c", 3))
	waitFor(t, "deliveries", func() bool { return len(all.delivered()) == 3 && len(high.delivered()) == 2 })
	for _, m := range high.delivered() {
		if m.Alert.Rule.Level == "medium" {
			t.Errorf("the high-only responder got a medium alert")
		}
	}
	f := Filter{Rules: []string{"r9"}}
	if f.Match(testAlert("r1", "high", "a", 1)) {
		t.Errorf("a rules filter matched another rule")
	}
}

// TestThrottleGroupsAlerts checks that a throttled responder is sent the
// first alert of each rule and group at once and the others, counted, in
// one notification at the end of the period. The period starts when the
// follower admits the first alert, which is after t0, so the counted
// notification comes at least the period after t0; a loaded machine can
// only make it later, never earlier, and nothing is asserted about how
// soon the first two come.
func TestThrottleGroupsAlerts(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender()
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "slack", Type: TypeSlack, Throttle: 1500 * time.Millisecond}},
		Senders:    map[string]Sender{"slack": f}})
	var alerts []*event.Alert
	for i := range 5 {
		alerts = append(alerts, testAlert("r1", "high", "203.0.113.7", i))
	}
	alerts = append(alerts, testAlert("r1", "high", "198.51.100.1", 9)) // another group
	// One append: the follower sees the alerts together, so all of the
	// first group's fall within the period its first one starts.
	var entries []ledger.Entry
	for _, a := range alerts {
		leaf, err := event.EncodeAlertLeaf(a, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ledger.Entry{Data: leaf})
	}
	t0 := time.Now()
	if _, err := l.Append(bg, entries...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the counted notification at the end of the period", func() bool { return len(f.delivered()) >= 3 })
	// Nothing more is owed: a fourth notification (an alert let through,
	// the held ones sent twice) would follow at once; give it a moment to
	// show. Load can only hide it here, never make one up.
	time.Sleep(200 * time.Millisecond)
	got := f.delivered()
	f.mu.Lock()
	times := slices.Clone(f.times)
	f.mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d notifications, want 3 (one per group, then one counting the held alerts)", len(got))
	}
	first := map[string]bool{got[0].Alert.DedupKey: true, got[1].Alert.DedupKey: true}
	if !first[alerts[0].DedupKey] || !first[alerts[5].DedupKey] || got[0].Count != 1 || got[1].Count != 1 {
		t.Errorf("first notifications: %s (count %d) and %s (count %d), want the first alert of each group, %s and %s, count 1",
			got[0].Alert.DedupKey, got[0].Count, got[1].Alert.DedupKey, got[1].Count, alerts[0].DedupKey, alerts[5].DedupKey)
	}
	if got[2].Count != 4 || got[2].Alert.DedupKey != alerts[4].DedupKey {
		t.Errorf("end-of-period notification: count %d for %s, want 4 for the latest alert %s", got[2].Count, got[2].Alert.DedupKey, alerts[4].DedupKey)
	}
	if d := times[2].Sub(t0); d < 1500*time.Millisecond {
		t.Errorf("end-of-period notification sent %v after the alerts were appended, want at least the 1.5s period", d)
	}
}

// TestThrottleCountIsTheResponders: when a throttled responder's period
// has ended with alerts held back that the flusher has not sent yet, the
// next alert's notification to it counts them; the responders after it in
// the configuration, unthrottled, were given that count too (PagerDuty's
// summary said "(2 alerts)" for one).
func TestThrottleCountIsTheResponders(t *testing.T) {
	var now atomic.Int64
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	l := newTestLedger(t)
	slack, hook := newFakeSender(), newFakeSender()
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Clock: func() time.Time { return time.Unix(0, now.Load()) },
		Responders: []ResponderConfig{
			{Name: "slack", Type: TypeSlack, Throttle: time.Hour},
			{Name: "hook", Type: TypeWebhook},
		},
		Senders: map[string]Sender{"slack": slack, "hook": hook}})
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1), testAlert("r1", "high", "203.0.113.7", 2))
	waitFor(t, "both alerts to the webhook, the first to Slack", func() bool {
		return len(hook.delivered()) == 2 && len(slack.delivered()) == 1
	})
	// The period ends; the next alert comes before the flusher (which
	// ticks every second) sends the held one.
	now.Store(t0.Add(2 * time.Hour).UnixNano())
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 3))
	waitFor(t, "the third alert to both", func() bool { return len(hook.delivered()) == 3 && len(slack.delivered()) == 2 })
	for _, m := range hook.delivered() {
		if m.Count != 1 {
			t.Errorf("the unthrottled webhook got %s with count %d, want 1", m.ID, m.Count)
		}
	}
	if m := slack.delivered()[1]; m.Count != 2 {
		t.Errorf("Slack's notification after its period: count %d, want 2 (this alert and the one held back)", m.Count)
	}
}

func TestRestartDeliversWhatWasOwed(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	down := newFakeSender(Outcome{Err: errors.New("connection refused")})
	d := fastDelivery()
	d.Schedule = []time.Duration{0, time.Hour} // the retry would be far away
	_, stop := runService(t, Config{Log: l, Dir: dir, Delivery: d,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": down}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r1", "high", "b", 2))
	waitFor(t, "two failed attempts", func() bool {
		down.mu.Lock()
		defer down.mu.Unlock()
		return down.attempts == 2
	})
	stop()
	up := newFakeSender()
	d.Schedule = []time.Duration{0}
	s, _ := runService(t, Config{Log: l, Dir: dir, Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": up}})
	// The retry is an hour away: it comes as scheduled, not at once.
	time.Sleep(150 * time.Millisecond)
	if n := len(up.delivered()); n != 0 {
		t.Fatalf("%d delivered before the scheduled retry", n)
	}
	appendAlerts(t, l, testAlert("r1", "high", "c", 3))
	waitFor(t, "the new alert", func() bool { return len(up.delivered()) == 1 })
	if got := up.delivered()[0].AlertIndex; got <= idx[1] {
		t.Errorf("after a restart, alert %d was processed again", got)
	}
	if st, _ := s.Responders(bg); st[0].Queued != 2 {
		t.Errorf("outbox after restart holds %d, want the 2 owed", st[0].Queued)
	}
}

func TestLifecycle(t *testing.T) {
	l := newTestLedger(t)
	pd := newFakeSender()
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "pd", Type: TypePagerDuty}}, Senders: map[string]Sender{"pd": pd}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	appendEvent(t, l)
	if _, err := s.Respond(bg, idx+1, event.ActionAcknowledged, "alice", ""); !errors.Is(err, ErrNoAlert) {
		t.Errorf("acknowledging an event leaf = %v, want ErrNoAlert", err)
	}
	rec, err := s.Respond(bg, idx, event.ActionAcknowledged, "alice", "looking")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status acknowledged", func() bool {
		fa, err := s.Alert(bg, idx)
		return err == nil && fa.Status == StatusAcknowledged
	})
	if _, err := s.Respond(bg, idx, event.ActionAcknowledged, "bob", ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second acknowledgement = %v, want ErrConflict", err)
	}
	if _, err := s.Respond(bg, idx, event.ActionResolved, "alice", "blocked at the edge"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status resolved", func() bool {
		fa, _ := s.Alert(bg, idx)
		return fa.Status == StatusResolved
	})
	if _, err := s.Respond(bg, idx, event.ActionResolved, "alice", ""); !errors.Is(err, ErrConflict) {
		t.Errorf("resolving twice = %v, want ErrConflict", err)
	}
	waitFor(t, "trigger, acknowledge, resolve", func() bool { return len(pd.delivered()) == 3 })
	var types []string
	for _, m := range pd.delivered() {
		types = append(types, m.Type)
		if m.Alert == nil || m.Alert.DedupKey != "r1|a|1" {
			t.Errorf("message %s carries alert %+v", m.Type, m.Alert)
		}
	}
	slices.Sort(types)
	if want := []string{TypeAlertAcknowledged, TypeAlertRaised, TypeAlertResolved}; !slices.Equal(types, want) {
		t.Errorf("pagerduty got %v, want %v", types, want)
	}
	inc, err := s.Incident(bg, idx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(inc.Responses, rec.Index) || !slices.IsSorted(inc.Responses) {
		t.Errorf("incident responses %v, want them in log order, with the acknowledgement %d", inc.Responses, rec.Index)
	}
	if inc.Alert.Status != StatusResolved {
		t.Errorf("incident status %s", inc.Alert.Status)
	}
}

func TestFeedAndDigest(t *testing.T) {
	l := newTestLedger(t)
	dg := newFakeSender()
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "mail", Type: TypeWebhook, Digest: true, Filter: Filter{Levels: []string{"critical"}}}},
		Senders:    map[string]Sender{"mail": dg}})
	changed := s.AlertsChanged()
	appendEvent(t, l)
	appendEvent(t, l)
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1), testAlert("r2", "low", "b", 2))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("AlertsChanged not closed after alerts were appended")
	}
	waitFor(t, "the feed", func() bool {
		fa, err := s.AlertsAfter(bg, -1, 10)
		return err == nil && len(fa) == 2
	})
	fa, _ := s.AlertsAfter(bg, int64(idx[0]), 10)
	if len(fa) != 1 || fa[0].Index != idx[1] || fa[0].Status != StatusOpen {
		t.Errorf("AlertsAfter(%d) = %+v", idx[0], fa)
	}
	if _, err := s.Respond(bg, idx[0], event.ActionAcknowledged, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acknowledged", func() bool { a, _ := s.Alert(bg, idx[0]); return a.Status == StatusAcknowledged })
	rec, err := s.Digest(bg, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Response.By != "accessledger" {
		t.Errorf("the schedule's digest is by %q, want accessledger", rec.Response.By)
	}
	d := rec.Response.Digest
	if d.Events != 2 || d.Alerts != 2 || d.AlertsByRule["r1"] != 1 || d.AlertsByLevel["low"] != 1 || d.OpenAlerts != 1 || d.Acknowledged != 1 {
		t.Errorf("digest %+v", d)
	}
	again, err := s.Digest(bg, time.Now(), "")
	if err != nil || again.Index != rec.Index {
		t.Errorf("a second digest of the same day = %v, %v; want the first one, %d", again, err, rec.Index)
	}
	waitFor(t, "the digest delivered", func() bool { return len(dg.delivered()) == 1 })
	m := dg.delivered()[0]
	if m.Type != TypeDigest || m.Digest == nil || m.Digest.Alerts != 2 {
		t.Errorf("digest message %+v", m)
	}
	// The outcome is recorded, once, and the digest is not sent again:
	// its delivered leaf, which has no alert, was refused, and the
	// digest went out every second, forever.
	waitFor(t, "the digest's delivery recorded", func() bool {
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDelivered && r.Message == m.ID && r.Alert == nil {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second) // fastDelivery retries within this
	if n := len(dg.delivered()); n != 1 {
		t.Errorf("the digest was sent %d times, want once", n)
	}
}

// TestBanMakesOneDecision: an alert whose response bans its source makes
// one decision, recorded once in the log, even when the service processes
// the alert again (as after a crash before its cursor was saved).
func TestBanMakesOneDecision(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	dc := DefaultDecisionsConfig()
	s, stop := runService(t, Config{Log: l, Dir: dir, Decisions: &dc})
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1), testAlert("r1", "high", "127.0.0.1", 2))
	list := func(s *Service) []DecisionInfo { return activeDecisions(t, s) }
	waitFor(t, "the decision", func() bool { return len(list(s)) == 1 })
	if d := list(s)[0]; d.Value != "203.0.113.7" || d.Scenario != "r1" {
		t.Errorf("decision %+v", d)
	}
	countAdded := func() int { return countResponses(t, l, event.ActionDecisionAdded) }
	waitFor(t, "the decision_added leaf", func() bool { return countAdded() == 1 })
	stop()
	// Forget the cursor: the alerts are processed again.
	db, err := openDB(dir, nil, smallBadger)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(keyCursor) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, _ = runService(t, Config{Log: l, Dir: dir, Decisions: &dc})
	size, _ := l.Size()
	waitFor(t, "the replay", func() bool { return s.Cursor() >= size })
	time.Sleep(100 * time.Millisecond)
	if n := len(list(s)); n != 1 {
		t.Errorf("%d decisions after a replay, want 1", n)
	}
	if n := countAdded(); n != 1 {
		t.Errorf("%d decision_added leaves after a replay, want 1", n)
	}
}

// TestManyAlertsMakeTheirDecisions: a batch of alerts larger than one
// group of decisions (decisionsPerCommit) makes every decision, each
// recorded once in the log.
func TestManyAlertsMakeTheirDecisions(t *testing.T) {
	l := newTestLedger(t)
	dc := DefaultDecisionsConfig()
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir(), Decisions: &dc})
	const n = 2*decisionsPerCommit + 88
	alerts := make([]*event.Alert, n)
	for i := range alerts {
		alerts[i] = testAlert("r1", "high", fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250), i)
	}
	appendAlerts(t, l, alerts...)
	added := func() int { return countResponses(t, l, event.ActionDecisionAdded) }
	waitFor(t, "every decision and its decision_added leaf", func() bool { return len(activeDecisions(t, s)) == n && added() == n })
	time.Sleep(50 * time.Millisecond) // a repeated leaf would be appended by now
	if k := added(); k != n {
		t.Errorf("%d decision_added leaves, want %d", k, n)
	}
}

// TestEveryAlertDelivered: many alerts arriving in many small batches,
// delivered by several workers at once, each arrive (the benchmark once
// lost one when a worker looked for a message before its transaction
// committed).
func TestEveryAlertDelivered(t *testing.T) {
	l := newTestLedger(t)
	f := newFakeSender()
	f.delay = 5 * time.Millisecond // workers busy while the follower saves
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(), Workers: 8,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	const n = 1500
	var entries []ledger.Entry
	for i := range n {
		leaf, err := event.EncodeAlertLeaf(testAlert("r1", "high", "203.0.113.9", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ledger.Entry{Data: leaf})
		if len(entries) == 1+i%7 {
			if _, err := l.Append(bg, entries...); err != nil {
				t.Fatal(err)
			}
			entries = entries[:0]
		}
	}
	if len(entries) > 0 {
		if _, err := l.Append(bg, entries...); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every alert delivered", func() bool { return len(f.delivered()) >= n })
	seen := map[string]bool{}
	for _, m := range f.delivered() {
		seen[m.ID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct alerts delivered, want %d", len(seen), n)
	}
}

// TestExecFailureRecorded: a real command that fails is retried, then
// dead-lettered, and the log records its exit status and output.
func TestExecFailureRecorded(t *testing.T) {
	l := newTestLedger(t)
	script := filepath.Join(t.TempDir(), "fail.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat >/dev/null\necho cannot reach the firewall >&2\nexit 3\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := fastDelivery()
	d.MaxAttempts = 2
	_, _ = runService(t, Config{Log: l, Dir: t.TempDir(), Delivery: d,
		Responders: []ResponderConfig{{Name: "fw", Type: TypeExec, Command: []string{script}, Timeout: 5 * time.Second}}})
	idx := appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))[0]
	var got *event.Response
	waitFor(t, "the dead_lettered leaf", func() bool {
		for _, r := range responseLeaves(t, l) {
			if r.Action == event.ActionDeadLettered && r.Responder == "fw" {
				got = r
				return true
			}
		}
		return false
	})
	if got.Attempts != 2 || got.Status != 3 || !strings.Contains(got.Output, "cannot reach the firewall") || *got.Alert != idx {
		t.Errorf("recorded %+v, want 2 attempts, exit status 3, the command's output, alert %d", got, idx)
	}
}

// TestStatusReportsAStop: a service whose storage fails stops, and says so.
func TestStatusReportsAStop(t *testing.T) {
	l := newTestLedger(t)
	s, err := Open(bg, Config{Log: l, Dir: t.TempDir(), BadgerOptions: smallBadger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "running", func() bool { return s.Status().Running })
	s.db.Close() // the storage goes away under the running service
	appendAlerts(t, l, testAlert("r1", "high", "203.0.113.7", 1))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its storage failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after its storage failed")
	}
	if st := s.Status(); st.Running || st.Error == "" {
		t.Errorf("Status() = %+v, want not running, with the error", st)
	}
}

// TestRedeliverAllSpansTransactions moves more dead letters back at once
// than one storage transaction holds (two writes each), as an operator
// does after a receiver's long outage: every one must move.
func TestRedeliverAllSpansTransactions(t *testing.T) {
	l := newTestLedger(t)
	s, err := Open(bg, Config{Log: l, Dir: t.TempDir(), Delivery: fastDelivery(), BadgerOptions: smallBadger,
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": newFakeSender()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 9000
	wb := s.db.NewWriteBatch()
	for i := range n {
		rec := outboxRecord{Message: Message{ID: fmt.Sprintf("msg-%d", i), Type: TypeAlertRaised}, Attempts: 3, LastStatus: 500}
		v, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := wb.Set(responderKey(keyDeadPfx, "hook", s.nextSeq()), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	moved, err := s.Redeliver(bg, "hook", 0)
	if err != nil || moved != n {
		t.Fatalf("Redeliver(all of %d dead letters) = %d, %v", n, moved, err)
	}
	if dead, err := s.DeadLetters(bg, "hook", 10); err != nil || len(dead) != 0 {
		t.Errorf("DeadLetters after redelivering all = %d, %v; want none", len(dead), err)
	}
}

// activeDecisions lists the decisions s holds.
func activeDecisions(t testing.TB, s *Service) []DecisionInfo {
	t.Helper()
	dl, err := s.Decisions().List(bg, DecisionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return dl.Decisions
}

// countResponses counts the response leaves of action in the log.
func countResponses(t testing.TB, l *ledger.Ledger, action string) int {
	t.Helper()
	n := 0
	for _, r := range responseLeaves(t, l) {
		if r.Action == action {
			n++
		}
	}
	return n
}

// TestOpenRefusesALogBehindItsCursor: responders that processed more of
// the log than it now holds (the log lost acknowledged entries, or was
// restored from an older backup than theirs) refuse to open: going on
// would append over the lost entries and never deliver their alerts.
func TestOpenRefusesALogBehindItsCursor(t *testing.T) {
	l := newTestLedger(t)
	dir := t.TempDir()
	s, stop := runService(t, Config{Log: l, Dir: dir, Delivery: fastDelivery()})
	appendAlerts(t, l, testAlert("r1", "high", "a", 1))
	appendEvent(t, l)
	waitFor(t, "the cursor at the log's end", func() bool { n, _ := l.Size(); return s.Cursor() == n })
	stop()
	shorter := newTestLedger(t)
	appendEvent(t, shorter)
	_, err := Open(bg, Config{Log: shorter, Dir: dir, BadgerOptions: smallBadger})
	if !errors.Is(err, ErrAheadOfLog) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("Open on a log shorter than the cursor = %v, want ErrAheadOfLog saying what to restore", err)
	}
	// The same log opens.
	if _, stop := runService(t, Config{Log: l, Dir: dir, Delivery: fastDelivery()}); stop != nil {
		stop()
	}
}

// TestConcurrentRespond: of ten acknowledgements of one alert sent at
// once, one is recorded and nine get ErrConflict; then of ten
// resolutions, one. They all checked the status the service had
// processed, so seven acknowledgements were appended.
func TestConcurrentRespond(t *testing.T) {
	l := newTestLedger(t)
	s, _ := runService(t, Config{Log: l, Dir: t.TempDir()})
	idx := appendAlerts(t, l, testAlert("r1", "high", "a", 1))[0]
	waitFor(t, "the alert", func() bool { _, err := s.Alert(bg, idx); return err == nil })
	for _, action := range []string{event.ActionAcknowledged, event.ActionResolved} {
		var wg sync.WaitGroup
		var ok, conflict atomic.Int32
		for i := range 10 {
			wg.Go(func() {
				_, err := s.Respond(bg, idx, action, fmt.Sprintf("analyst-%d", i), "")
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrConflict):
					conflict.Add(1)
				default:
					t.Errorf("Respond(%s) = %v", action, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || conflict.Load() != 9 {
			t.Errorf("10 concurrent %s: %d recorded, %d conflicts; want 1 and 9", action, ok.Load(), conflict.Load())
		}
	}
	n := 0
	for _, r := range responseLeaves(t, l) {
		if r.Alert != nil && *r.Alert == idx && (r.Action == event.ActionAcknowledged || r.Action == event.ActionResolved) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d acknowledged or resolved leaves in the log, want 2", n)
	}
}
